#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TierCache
import TierCacheLZ4
import TierCacheZstd

/// `tiercache-bench codecs`: our codecs against the zstd and lz4 command-line tools on the same
/// file and level, measured in the same run, plus the dictionary gain on small records, the
/// small-payload threshold sweep and a codec/level table.
///
/// How the tools measure (zstd 1.5 `benchzstd.c`, lz4 1.9 `bench.c`): `-i N` is a time budget in
/// seconds, not a count; inside it the tool times runs of about one second each (as many calls
/// as fit), on one buffer it reuses, single-threaded, and reports the fastest run's per-call
/// speed in MB/s (10^6 bytes per second of uncompressed data, for compression and for
/// decompression). We measure ours the same way: best of three runs of one second each, through
/// the public `Codec` API (context from the pool, output array allocated and sized per call).
enum CodecsBench {
    static let suite = "codecs"
    static let toolSeconds = 3
    static let runNanoseconds: UInt64 = 1_000_000_000
    static let runs = 3
    /// Tool-then-ours passes per comparison (TIERCACHE_BENCH_PASSES, default 2).
    static let passes = getenv("TIERCACHE_BENCH_PASSES").flatMap { Int(String(cString: $0)) }.map { max(1, $0) } ?? 2

    /// TIERCACHE_BENCH_CASES="lz4 -1,zstd -3" limits the tool comparison to some cases.
    static func only(_ name: String) -> Bool {
        guard let filter = getenv("TIERCACHE_BENCH_CASES") else { return true }
        return String(cString: filter).split(separator: ",").contains { $0 == name }
    }

    static func best(_ a: ToolResult?, _ b: ToolResult) -> ToolResult {
        guard let a else { return b }
        return ToolResult(
            compressedSize: b.compressedSize,
            compressMBps: max(a.compressMBps, b.compressMBps),
            decompressMBps: max(a.decompressMBps, b.decompressMBps)
        )
    }

    struct ToolResult {
        var compressedSize: Int
        var compressMBps: Double
        var decompressMBps: Double
    }

    struct Case {
        var name: String
        var tool: String
        var arguments: [String]
        var codec: any Codec
    }

    static func run() async throws {
        let cases = [
            Case(name: "zstd -3", tool: "zstd", arguments: ["-b3", "-i\(toolSeconds)"], codec: try ZstdCodec(level: 3)),
            Case(name: "zstd -1", tool: "zstd", arguments: ["-b1", "-i\(toolSeconds)"], codec: try ZstdCodec(level: 1)),
            Case(name: "lz4 -1", tool: "lz4", arguments: ["-b1", "-i\(toolSeconds)"], codec: try LZ4Codec(mode: .fast)),
        ]
        // TIERCACHE_BENCH_FILES=a.json,b.json limits the tool comparison to some files.
        let files = getenv("TIERCACHE_BENCH_FILES").map { String(cString: $0).split(separator: ",").map(String.init) } ?? Corpus.files
        for file in files {
            let input = Corpus.read(file)
            let path = Corpus.directory + "/" + file
            let speedGoal = input.count < 16_384 ? 0.85 : 0.9
            for item in cases where only(item.name) {
                // Alternate the tool and ours, keeping each one's best, so that a burst of load
                // from other processes does not land on one side only.
                var tool: ToolResult?
                var ours: ToolResult?
                for _ in 0..<passes {
                    if let result = runTool(item.tool, item.arguments + [path]) { tool = best(tool, result) }
                    ours = best(ours, try measure(item.codec, input))
                }
                guard let tool, let ours else {
                    Report.info(suite, "\(item.name) \(file): skipped, `\(item.tool)` did not run or its output did not parse (scripts/setup.sh installs it)")
                    continue
                }
                let label = "\(item.name) \(file) (\(input.count) B)"
                Report.line(
                    suite, "\(label) compress MB/s ours/\(item.tool)-CLI", ratio: ours.compressMBps / tool.compressMBps,
                    goal: .atLeast(speedGoal), detail: "ours=\(format(ours.compressMBps)) tool=\(format(tool.compressMBps))"
                )
                Report.line(
                    suite, "\(label) decompress MB/s ours/\(item.tool)-CLI", ratio: ours.decompressMBps / tool.decompressMBps,
                    goal: .atLeast(speedGoal), detail: "ours=\(format(ours.decompressMBps)) tool=\(format(tool.decompressMBps))"
                )
                let sizeRatio = Double(ours.compressedSize) / Double(tool.compressedSize)
                Report.line(
                    suite, "\(label) compressed size max(ours/tool, tool/ours)", ratio: max(sizeRatio, 1 / sizeRatio),
                    goal: .atMost(1.01), detail: "ours=\(ours.compressedSize) tool=\(tool.compressedSize)"
                )
            }
        }
        if getenv("TIERCACHE_BENCH_FILES") != nil { return }
        try dictionaryGain()
        try thresholdSweep()
        try chooserTable()
    }

    /// Our compress and decompress speed, best of `runs` runs of one second, as the tools do.
    static func measure(_ codec: any Codec, _ input: [UInt8]) throws -> ToolResult {
        guard let payload = try codec.compress(input) else { throw TierCacheError(.codec, "\(codec.id) declined \(input.count) bytes") }
        let check = try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: payload.dictionaryID)
        precondition(check == input, "round trip failed")
        var compressNs = Double.infinity, decompressNs = Double.infinity
        for _ in 0..<runs {
            // As the tools do before each run: yield the processor for 1 ms first.
            usleep(1000)
            compressNs = min(compressNs, try bestTime(rounds: 1, minimumNanoseconds: runNanoseconds) {
                blackHole(try codec.compress(input))
            })
            usleep(1000)
            decompressNs = min(decompressNs, try bestTime(rounds: 1, minimumNanoseconds: runNanoseconds) {
                blackHole(try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: payload.dictionaryID))
            })
        }
        return ToolResult(
            compressedSize: payload.bytes.count,
            compressMBps: Double(input.count) / compressNs * 1000,
            decompressMBps: Double(input.count) / decompressNs * 1000
        )
    }

    // MARK: The command-line tools

    /// Runs `tool arguments` as a child process (posix_spawnp, stdout and stderr into one pipe)
    /// and parses its last benchmark line: `<src> -> <dst> (x<ratio>), <c> MB/s, <d> MB/s`
    /// (zstd) or `<src> -> <dst> (<ratio>),<c> MB/s ,<d> MB/s` (lz4).
    static func runTool(_ tool: String, _ arguments: [String]) -> ToolResult? {
        guard let output = spawnCapturingOutput([tool] + arguments) else { return nil }
        let lines = output.split(whereSeparator: { $0 == "\r" || $0 == "\n" })
        for line in lines.reversed() {
            if let result = parseBenchLine(String(line)) { return result }
        }
        return nil
    }

    static func parseBenchLine(_ line: String) -> ToolResult? {
        let halves = line.split(separator: "->", omittingEmptySubsequences: false)
        guard halves.count == 2 else { return nil }
        let rest = halves[1]
        let mbps = rest.split(separator: "MB/s", omittingEmptySubsequences: false)
        guard mbps.count >= 3 else { return nil }
        func lastNumber(_ text: some StringProtocol) -> Double? {
            let tokens = text.split(whereSeparator: { !($0.isNumber || $0 == ".") })
            return tokens.last.flatMap { Double($0) }
        }
        let sizeToken = rest.split(whereSeparator: { $0 == " " }).first
        guard let sizeToken, let size = Int(sizeToken), let compress = lastNumber(mbps[0]), let decompress = lastNumber(mbps[1]) else {
            return nil
        }
        return ToolResult(compressedSize: size, compressMBps: compress, decompressMBps: decompress)
    }

    static func spawnCapturingOutput(_ argv: [String]) -> String? {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, &cArguments, environ)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            return nil
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(pipeFDs[0], &chunk, chunk.count)
            if n > 0 { output += chunk[0..<n] } else if n == 0 || errno != EINTR { break }
        }
        close(pipeFDs[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { return nil }
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: Dictionary gain on small records

    /// endpoints.json split into one record per (partition, service), keys sorted.
    static func endpointRecords() throws -> [[UInt8]] {
        let root = try JSONDecoder().decode(JSONValue.self, from: Data(Corpus.read("endpoints.json")))
        guard case .object(let top) = root, case .array(let partitions)? = top["partitions"] else {
            throw TierCacheError(.serialization, "endpoints.json has no partitions")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var records: [[UInt8]] = []
        for case .object(let partition) in partitions {
            guard case .object(let services)? = partition["services"], let name = partition["partition"] else { continue }
            for service in services.keys.sorted() {
                let record = JSONValue.object(["partition": name, "service": .string(service), "endpoints": services[service]!])
                records.append([UInt8](try encoder.encode(record)))
            }
        }
        return records
    }

    static func storedSize(_ codec: any Codec, _ records: [[UInt8]]) throws -> Int {
        try records.reduce(0) { $0 + (try codec.compress($1)?.bytes.count ?? $1.count) }
    }

    static func dictionaryGain() throws {
        let records = try endpointRecords()
        // Train on half the records, measure on the other half: the dictionary has not seen them.
        let training = records.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let held = records.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        let total = held.reduce(0) { $0 + $1.count }
        let median = held.map(\.count).sorted()[held.count / 2]
        let start = nowNanoseconds()
        let dictionary = try ZstdDictionary.train(samples: training)
        let trainMs = Double(nowNanoseconds() - start) / 1e6
        let plain = try ZstdCodec(level: 3)
        let withDictionary = try ZstdCodec(level: 3, dictionary: dictionary)
        let plainRatio = Double(total) / Double(try storedSize(plain, held))
        let dictionaryRatio = Double(total) / Double(try storedSize(withDictionary, held))
        Report.line(
            suite,
            "zstd -3 dictionary on \(held.count) endpoint records (median \(median) B) compression ratio with/without dictionary",
            ratio: dictionaryRatio / plainRatio, goal: .atLeast(2),
            detail: "with=\(format(dictionaryRatio)) without=\(format(plainRatio)) dictionary=\(dictionary.bytes.count)B trained-in=\(format(trainMs))ms"
        )
        let lz4Ratio = Double(total) / Double(try storedSize(try LZ4Codec(mode: .fast), held))
        Report.info(suite, "the same records: lz4 fast ratio \(format(lz4Ratio)), lz4 HC ratio \(format(Double(total) / Double(try storedSize(try LZ4Codec(mode: .highCompression), held))))")
        // Speed on small records, per record.
        let sample = Array(held.prefix(200))
        let payloads = try sample.map { try withDictionary.compress($0) }
        let best = try compare(rounds: 3, minimumNanoseconds: 100_000_000, [
            { for record in sample { blackHole(try plain.compress(record)) } },
            { for record in sample { blackHole(try withDictionary.compress(record)) } },
            {
                for (record, payload) in zip(sample, payloads) {
                    if let payload { blackHole(try withDictionary.decompress(payload.bytes, uncompressedLength: record.count, dictionaryID: payload.dictionaryID)) }
                }
            },
        ])
        let perRecord = best.map { $0 / Double(sample.count) / 1000 }
        Report.info(suite, "small records, per record: compress \(format(perRecord[0])) us without dictionary, \(format(perRecord[1])) us with; decompress with dictionary \(format(perRecord[2])) us")
    }

    // MARK: Small-payload threshold

    /// For payloads cut from real records at each size: what compression saves, and what it
    /// costs per payload (compress + decompress), to pick the default raw threshold.
    static func thresholdSweep() throws {
        let records = try endpointRecords()
        let training = records.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let dictionary = try ZstdDictionary.train(samples: training)
        // Held-out records only, so the dictionary has not seen the payloads it compresses.
        let held = records.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        let codecs: [(String, any Codec)] = [
            ("zstd -3", try ZstdCodec(configuration: .init(level: 3, minimumInputSize: 0))),
            ("zstd -3 + dictionary", try ZstdCodec(configuration: .init(level: 3, dictionary: dictionary, minimumInputSize: 0))),
            ("lz4", try LZ4Codec(configuration: .init(minimumInputSize: 0))),
        ]
        for size in [16, 32, 48, 64, 96, 128, 192, 256, 512] {
            let inputs = held.filter { $0.count >= size }.prefix(300).map { Array($0.prefix(size)) }
            var cells: [String] = []
            for (name, codec) in codecs {
                var stored = 0, declined = 0
                for input in inputs {
                    if let payload = try codec.compress(input) { stored += payload.bytes.count } else { stored += input.count; declined += 1 }
                }
                let saved = 1 - Double(stored) / Double(inputs.count * size)
                let payloads = try inputs.map { try codec.compress($0) }
                let ns = try bestTime(rounds: 3, minimumNanoseconds: 30_000_000) {
                    for (input, payload) in zip(inputs, payloads) {
                        blackHole(try codec.compress(input))
                        if let payload { blackHole(try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: payload.dictionaryID)) }
                    }
                } / Double(inputs.count)
                cells.append("\(name) saves \(format(saved * 100))% (\(declined)/\(inputs.count) not smaller) for \(format(ns / 1000)) us")
            }
            Report.info(suite, "threshold sweep \(size) B: " + cells.joined(separator: "; "))
        }
    }

    // MARK: Choosing a codec and level

    static func chooserTable() throws {
        let records = try endpointRecords()
        let record = records.sorted { $0.count < $1.count }[records.count * 3 / 4]
        let inputs: [(String, [UInt8])] = [("record \(record.count) B", record)] + Corpus.files.map { ($0, Corpus.read($0)) }
        let codecs: [(String, any Codec)] = [
            ("zstd -5", try ZstdCodec(level: -5)), ("zstd 1", try ZstdCodec(level: 1)), ("zstd 3", try ZstdCodec(level: 3)),
            ("zstd 9", try ZstdCodec(level: 9)), ("zstd 19", try ZstdCodec(level: 19)),
            ("lz4 fast", try LZ4Codec(mode: .fast)), ("lz4 HC 9", try LZ4Codec(mode: .highCompression)),
        ]
        Report.info(suite, "table: input | codec | ratio | compress MB/s | decompress MB/s")
        for (inputName, input) in inputs {
            for (codecName, codec) in codecs {
                guard let payload = try codec.compress(input) else {
                    Report.info(suite, "table: \(inputName) | \(codecName) | stored raw | - | -")
                    continue
                }
                let best = try compare(rounds: 3, minimumNanoseconds: 60_000_000, [
                    { blackHole(try codec.compress(input)) },
                    { blackHole(try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: 0)) },
                ])
                let ratio = Double(input.count) / Double(payload.bytes.count)
                Report.info(
                    suite,
                    "table: \(inputName) | \(codecName) | \(format(ratio)) | \(Int(Double(input.count) / best[0] * 1000)) | \(Int(Double(input.count) / best[1] * 1000))"
                )
            }
        }
    }
}

/// Any JSON document, to split the corpus without a schema.
enum JSONValue: Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
