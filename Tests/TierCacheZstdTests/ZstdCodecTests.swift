import CodecTestSupport
import Foundation
import Testing
import TierCache
import TierCacheZstd

@Suite struct ZstdRoundTripTests {
    @Test(arguments: Corpus.files)
    func corpusRoundTrips(file: String) throws {
        let input = try Corpus.read(file)
        let codec = try ZstdCodec()
        #expect(codec.id == .zstd)
        let payload = try #require(try codec.compress(input))
        #expect(payload.dictionaryID == 0)
        #expect(payload.bytes.count < input.count)
        // A standard frame: zstd's magic number, little-endian.
        #expect(Array(payload.bytes.prefix(4)) == [0x28, 0xB5, 0x2F, 0xFD])
        let output = try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: 0)
        #expect(output == input)
    }

    @Test func emptyAndOneByteAreStoredRaw() throws {
        let codec = try ZstdCodec(configuration: .init(minimumInputSize: 0))
        #expect(try codec.compress([]) == nil)
        #expect(try codec.compress([0x41]) == nil)
    }

    @Test func thresholdBoundary() throws {
        let threshold = 100
        let codec = try ZstdCodec(configuration: .init(minimumInputSize: threshold))
        let below = [UInt8](repeating: 0x61, count: threshold - 1)
        let at = [UInt8](repeating: 0x61, count: threshold)
        #expect(try codec.compress(below) == nil)
        let payload = try #require(try codec.compress(at))
        #expect(try codec.decompress(payload.bytes, uncompressedLength: threshold, dictionaryID: 0) == at)
        let above = [UInt8](repeating: 0x61, count: threshold + 1)
        let payloadAbove = try #require(try codec.compress(above))
        #expect(try codec.decompress(payloadAbove.bytes, uncompressedLength: threshold + 1, dictionaryID: 0) == above)
    }

    @Test func defaultThresholdApplies() throws {
        let codec = ZstdCodec.zstd
        #expect(codec.minimumInputSize == ZstdCodec.defaultMinimumInputSize)
        let justBelow = try jsonPayload(ZstdCodec.defaultMinimumInputSize - 1)
        #expect(try codec.compress(justBelow) == nil)
        let large = try jsonPayload(4096)
        #expect(try codec.compress(large) != nil)
        // With a dictionary the default threshold is lower, and small records do compress.
        let withDictionary = try ZstdCodec(level: 3, dictionary: try Fixtures.dictionary())
        #expect(withDictionary.minimumInputSize == ZstdCodec.defaultMinimumInputSizeWithDictionary)
        let record = try #require(try Fixtures.split().held.first { $0.count > 100 })
        #expect(try withDictionary.compress(Array(record.prefix(ZstdCodec.defaultMinimumInputSizeWithDictionary - 1))) == nil)
        #expect(try withDictionary.compress(Array(record.prefix(100))) != nil)
    }

    @Test func incompressibleInputIsStoredRaw() throws {
        var rng = SeededGenerator(seed: 7)
        let noise = rng.bytes(20_000)
        #expect(try ZstdCodec().compress(noise) == nil)
    }

    @Test(arguments: [Int(-131072), -50, -5, -1, 0, 1, 3, 9, 15, 19])
    func levelsRoundTrip(level: Int) throws {
        // Runs of spaces give even the fastest level something to find.
        let input = try jsonPayload(8192) + [UInt8](repeating: 0x20, count: 8192)
        let codec = try ZstdCodec(level: level)
        guard let payload = try codec.compress(input) else {
            // The fastest levels skip so much of the input that they may find nothing to gain.
            #expect(level < -1000, "level \(level) declined to compress")
            return
        }
        #expect(try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: 0) == input)
    }

    @Test func higherLevelsCompressSmaller() throws {
        let input = try Corpus.read("s3-examples.json")
        func size(_ level: Int) throws -> Int { try #require(try ZstdCodec(level: level).compress(input)).bytes.count }
        let fast = try size(-5), one = try size(1), nineteen = try size(19)
        #expect(fast > one)
        #expect(one > nineteen)
    }

    @Test func invalidConfigurationsAreRejected() {
        for configuration in [
            ZstdCodec.Configuration(level: 20),
            ZstdCodec.Configuration(level: Int(Int32.min)),
            ZstdCodec.Configuration(minimumInputSize: -1),
            ZstdCodec.Configuration(maximumDecompressedSize: 0),
        ] {
            #expect {
                _ = try ZstdCodec(configuration: configuration)
            } throws: { ($0 as? TierCacheError)?.code == .invalidConfiguration }
        }
        #expect(ZstdCodec.levels.upperBound == 19)
        #expect(ZstdCodec.levels.lowerBound < 0)
    }
}

@Suite struct ZstdDictionaryTests {
    static func split() throws -> (training: [[UInt8]], held: [[UInt8]]) { try Fixtures.split() }

    @Test func dictionaryRoundTripsAndShrinksSmallRecords() throws {
        let (_, held) = try Self.split()
        #expect(held.count > 500)
        let dictionary = try Fixtures.dictionary()
        #expect(dictionary.id != 0)
        #expect(dictionary.bytes.count <= 16 << 10)
        let plain = try ZstdCodec(configuration: .init(minimumInputSize: 0))
        let withDictionary = try ZstdCodec(configuration: .init(dictionary: dictionary, minimumInputSize: 0))
        var plainBytes = 0, dictionaryBytes = 0
        for record in held {
            let p = try plain.compress(record)
            plainBytes += p?.bytes.count ?? record.count
            let payload = try #require(try withDictionary.compress(record))
            #expect(payload.dictionaryID == dictionary.id)
            dictionaryBytes += payload.bytes.count
            #expect(try withDictionary.decompress(payload.bytes, uncompressedLength: record.count, dictionaryID: dictionary.id) == record)
        }
        #expect(dictionaryBytes < plainBytes)
        print("zstd dictionary on \(held.count) held-out endpoint records: \(plainBytes) -> \(dictionaryBytes) bytes")
    }

    @Test func missingDictionaryIsATypedError() throws {
        let (_, held) = try Self.split()
        let dictionary = try Fixtures.dictionary()
        let other = try Fixtures.otherDictionary()
        #expect(other.id != dictionary.id)
        let writer = try ZstdCodec(configuration: .init(dictionary: dictionary, minimumInputSize: 0))
        let record = held[3]
        let payload = try #require(try writer.compress(record))
        for reader in [try ZstdCodec(), try ZstdCodec(level: 3, dictionary: other)] {
            #expect {
                _ = try reader.decompress(payload.bytes, uncompressedLength: record.count, dictionaryID: payload.dictionaryID)
            } throws: { ($0 as? TierCacheError)?.code == .dictionaryNotLoaded }
        }
        // A reader that keeps the previous dictionary for reading still reads old entries.
        let rotated = try ZstdCodec(configuration: .init(dictionary: other, additionalDictionaries: [dictionary]))
        #expect(try rotated.decompress(payload.bytes, uncompressedLength: record.count, dictionaryID: dictionary.id) == record)
        // A frame that needs a dictionary, read as if it needed none, is an error, not garbage.
        do {
            let output = try ZstdCodec().decompress(payload.bytes, uncompressedLength: record.count, dictionaryID: 0)
            #expect(output != record, "read without its dictionary, the frame cannot decode to the record")
        } catch {
            #expect(error.code == .codec)
        }
    }

    @Test func saveAndLoad() throws {
        let (training, held) = try Self.split()
        let dictionary = try ZstdDictionary.train(samples: training, capacity: 8 << 10)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tiercache-\(UUID()).zdict").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try dictionary.write(toFile: path)
        let loaded = try ZstdDictionary(contentsOfFile: path)
        #expect(loaded == dictionary)
        #expect(loaded.id == dictionary.id)
        let payload = try #require(try ZstdCodec(level: 3, dictionary: dictionary).compress(held[10]))
        let reader = try ZstdCodec(level: 1, dictionary: loaded)
        #expect(try reader.decompress(payload.bytes, uncompressedLength: held[10].count, dictionaryID: loaded.id) == held[10])
    }

    @Test func badDictionariesAreRejected() throws {
        #expect {
            _ = try ZstdDictionary(bytes: Array("not a dictionary".utf8))
        } throws: { ($0 as? TierCacheError)?.code == .invalidConfiguration }
        #expect {
            _ = try ZstdDictionary(contentsOfFile: "/nonexistent/tiercache.zdict")
        } throws: { ($0 as? TierCacheError)?.code == .invalidConfiguration }
        #expect {
            _ = try ZstdDictionary.train(samples: [])
        } throws: { ($0 as? TierCacheError)?.code == .invalidConfiguration }
        // Too few samples: ZDICT's own error, wrapped with its name.
        #expect {
            _ = try ZstdDictionary.train(samples: [Array("{\"a\":1}".utf8)])
        } throws: { error in
            guard let error = error as? TierCacheError else { return false }
            return error.code == .codec && error.message.contains("ZDICT_trainFromBuffer")
        }
    }
}

@Suite struct ZstdLimitTests {
    @Test func declaredLengthAboveCeilingIsRejectedBeforeAllocating() throws {
        try CodecLimitChecks.declaredLengthAboveCeiling(ZstdCodec(), ceiling: ZstdCodec.defaultMaximumDecompressedSize)
    }

    @Test func bombIsRejectedByAConfiguredCeiling() throws {
        try CodecLimitChecks.bombRejected(writer: ZstdCodec(), reader: ZstdCodec(configuration: .init(maximumDecompressedSize: 1 << 20)),
                                          compressedAtMost: 4096)
    }

    /// A frame that does not declare its content size (as streaming writers produce), holding one
    /// raw block of `content`.
    static func frameWithoutContentSize(_ content: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]
        frame.append(0x00)  // frame header descriptor: no content size, not single-segment, no checksum
        frame.append(0x58)  // window descriptor: 2^(10 + 11) = 2 MiB window
        let header = UInt32(content.count) << 3 | 1  // raw block, last
        frame += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF)]
        return frame + content
    }

    @Test func framesWithoutContentSizeNeverWritePastTheDeclaredLength() throws {
        let content = try jsonPayload(1000)
        let frame = Self.frameWithoutContentSize(content)
        let codec = try ZstdCodec()
        #expect(try codec.decompress(frame, uncompressedLength: 1000, dictionaryID: 0) == content)
        for declared in [0, 10, 999, 1001, 5000] {
            #expect {
                _ = try codec.decompress(frame, uncompressedLength: declared, dictionaryID: 0)
            } throws: { error in
                guard let error = error as? TierCacheError else { return false }
                return error.code == .codec
            }
        }
    }

    @Test func truncatedFramesAreTypedErrors() throws {
        let input = try Corpus.read("partitions.json")
        let codec = try ZstdCodec()
        let frame = try #require(try codec.compress(input)).bytes
        for length in 0..<frame.count {
            #expect {
                _ = try codec.decompress(Array(frame.prefix(length)), uncompressedLength: input.count, dictionaryID: 0)
            } throws: { ($0 as? TierCacheError)?.code == .codec }
        }
    }

    @Test func libraryErrorsKeepTheirCodeAndName() throws {
        let input = try Corpus.read("s3-examples.json")
        let codec = try ZstdCodec()
        var frame = try #require(try codec.compress(input)).bytes
        frame.removeLast(frame.count / 2)
        do {
            _ = try codec.decompress(frame, uncompressedLength: input.count, dictionaryID: 0)
            Issue.record("a half frame decompressed")
        } catch {
            #expect(error.code == .codec)
            #expect(error.message.contains("ZSTD_decompressDCtx"))
            #expect(error.message.contains("ZSTD_ErrorCode"))
        }
    }
}

@Suite struct ZstdFuzzTests {
    static let allowed: Set<TierCacheError.Code> = [.codec, .sizeLimitExceeded]

    @Test func randomBytesOnlyThrowTypedErrors() throws {
        var rng = SeededGenerator(seed: 0x2A5D)
        let codec = try ZstdCodec(configuration: .init(maximumDecompressedSize: 1 << 20))
        var thrown = 0
        for _ in 0..<4000 {
            var input = rng.bytes(Int.random(in: 0...256, using: &rng))
            // Half of the cases start with a valid magic number, to get past the first check.
            if Bool.random(using: &rng), input.count >= 4 { input.replaceSubrange(0..<4, with: [0x28, 0xB5, 0x2F, 0xFD]) }
            let declared = Int.random(in: 0...(2 << 20), using: &rng)
            do {
                let output = try codec.decompress(input, uncompressedLength: declared, dictionaryID: 0)
                #expect(output.count == declared)
            } catch {
                #expect(Self.allowed.contains(error.code), "\(error)")
                thrown += 1
            }
        }
        #expect(thrown > 0)
    }

    @Test func mutatedFramesOnlyThrowTypedErrors() throws {
        var rng = SeededGenerator(seed: 0x5EED)
        let records = try Corpus.endpointRecords()
        let dictionary = try Fixtures.dictionary()
        let plain = try ZstdCodec(configuration: .init(minimumInputSize: 0))
        let withDictionary = try ZstdCodec(configuration: .init(dictionary: dictionary, minimumInputSize: 0))
        var inputs = records.filter { $0.count > 200 }.prefix(20).map { $0 }
        inputs.append(try Corpus.read("partitions.json"))
        var frames: [(codec: ZstdCodec, frame: [UInt8], length: Int, dictionaryID: UInt32)] = []
        for input in inputs {
            for codec in [plain, withDictionary] {
                let payload = try #require(try codec.compress(input))
                frames.append((codec, payload.bytes, input.count, payload.dictionaryID))
            }
        }
        var thrown = 0, cases = 0
        for _ in 0..<6000 {
            let pick = frames[Int.random(in: 0..<frames.count, using: &rng)]
            let mutated = mutate(pick.frame, using: &rng)
            // Sometimes the envelope's length is wrong too.
            let declared = Bool.random(using: &rng) ? pick.length : max(0, pick.length + Int.random(in: -64...64, using: &rng))
            cases += 1
            do {
                let output = try pick.codec.decompress(mutated, uncompressedLength: declared, dictionaryID: pick.dictionaryID)
                #expect(output.count == declared)
            } catch {
                #expect(Self.allowed.contains(error.code), "\(error)")
                thrown += 1
            }
        }
        #expect(cases == 6000)
        #expect(thrown > cases / 2)
    }
}

@Suite struct ZstdConcurrencyTests {
    @Test func manyTasksShareContexts() async throws {
        let records = try Corpus.endpointRecords()
        let dictionary = try Fixtures.dictionary()
        let codecs = [try ZstdCodec(), try ZstdCodec(level: -3), try ZstdCodec(level: 3, dictionary: dictionary)]
        let inputs = [try Corpus.read("partitions.json"), try Corpus.read("s3-examples.json")] + records.prefix(30)
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<64 {
                group.addTask {
                    var failures = 0
                    for round in 0..<40 {
                        let codec = codecs[(task + round) % codecs.count]
                        let input = inputs[(task * 7 + round) % inputs.count]
                        guard let payload = try codec.compress(input) else { continue }
                        let output = try codec.decompress(payload.bytes, uncompressedLength: input.count, dictionaryID: payload.dictionaryID)
                        if output != input { failures += 1 }
                    }
                    return failures
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}

@Suite struct ZstdInteropTests {
    /// Our frames are standard: the zstd command-line tool reads them back.
    @Test func commandLineToolReadsOurFrames() throws {
        let tool = "/usr/bin/zstd"
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            print("skipped: \(tool) is not installed (scripts/setup.sh installs it)")
            return
        }
        let input = try Corpus.read("s3-examples.json")
        let payload = try #require(try ZstdCodec(level: 5).compress(input))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tiercache-\(UUID()).zst").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(payload.bytes).write(to: URL(fileURLWithPath: path))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["-d", "-c", "-q", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect([UInt8](output) == input)
    }
}

/// Dictionaries trained once per test run (training takes a while in a debug build).
enum Fixtures {
    static func split() throws -> (training: [[UInt8]], held: [[UInt8]]) {
        let records = try Corpus.endpointRecords()
        let training = records.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let held = records.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        return (training, held)
    }

    /// Trained on the even-numbered endpoint records.
    static func dictionary() throws -> ZstdDictionary { try trained.get() }
    /// Trained on the odd-numbered ones: another id.
    static func otherDictionary() throws -> ZstdDictionary { try other.get() }

    private static let trained = Result { try ZstdDictionary.train(samples: try split().training) }
    private static let other = Result { try ZstdDictionary.train(samples: try split().held) }
}

/// The cache's decompression ceiling: derived from its budgets unless set, checked before the
/// codec allocates anything.
@Suite struct DecompressionCeilingTests {
    /// A tier holding one entry, with an optional entry ceiling.
    struct OneEntryTier: CacheTier {
        let entry: CacheEntry
        let maxEntryBytes: Int?
        var name: String { "one" }
        func get(_ key: CacheKey) async throws -> CacheEntry? { key == entry.key ? entry : nil }
        func put(_ entry: CacheEntry) async throws {}
        func remove(_ key: CacheKey) async throws {}
    }

    @Test("a small entry that declares more than the cache's budgets allow is refused, unless the ceiling is raised")
    func derivedFromBudgets() async throws {
        let key = try CacheKey(namespace: "bomb", name: "three-mebibytes")
        let now = WallTime(millisecondsSince1970: 1_000_000)
        let writer = Cache<String>(configuration: .init(codec: try ZstdCodec(), memory: nil))
        let entry = try writer.encode(key, value: String(repeating: "a", count: 3 << 20), createdAt: now,
                                      freshUntil: now.advanced(by: .seconds(3600)), staleUntil: now.advanced(by: .seconds(7200)))
        #expect(entry.payload.count < 1024, "3 MiB of one letter compresses to almost nothing")
        #expect(entry.uncompressedLength > 3 << 20)

        // The default: the larger of the memory budget and the tiers' entry ceilings.
        let clock = FixedClock(time: now)
        func cache(memory: Int?, tierCeiling: Int?, override: Int? = nil) -> Cache<String> {
            Cache<String>(configuration: .init(codec: try! ZstdCodec(), memory: memory.map { .init(maxBytes: $0) }, clock: clock,
                                               maximumDecompressedSize: override),
                          chain: TierChain([.remote(OneEntryTier(entry: entry, maxEntryBytes: tierCeiling))]))
        }
        let small = cache(memory: 1 << 20, tierCeiling: 2 << 20)
        #expect(small.maximumDecompressedSize == 2 << 20)
        do {
            _ = try small.decode(entry)
            Issue.record("a 3 MiB payload decoded under a 2 MiB ceiling")
        } catch {
            #expect(error.code == .sizeLimitExceeded)
        }
        #expect(await small.get(key) == nil, "in a read, a counted decode failure: a miss")
        #expect(cache(memory: 8 << 20, tierCeiling: 1 << 20).maximumDecompressedSize == 8 << 20)
        #expect(try cache(memory: 8 << 20, tierCeiling: 1 << 20).decode(entry).count == 3 << 20)
        #expect(await cache(memory: nil, tierCeiling: 4 << 20).get(key)?.value.count == 3 << 20)
        // An override wins both ways.
        #expect(try cache(memory: 1 << 20, tierCeiling: nil, override: 16 << 20).decode(entry).count == 3 << 20)
        #expect(cache(memory: 64 << 20, tierCeiling: 64 << 20, override: 1 << 20).maximumDecompressedSize == 1 << 20)
        // No budget anywhere: the codecs' former default.
        #expect(cache(memory: nil, tierCeiling: nil).maximumDecompressedSize == Cache<String>.fallbackMaximumDecompressedSize)
        #expect(Cache<String>.fallbackMaximumDecompressedSize == 256 << 20)
    }
}

/// A clock standing still.
struct FixedClock: CacheClock {
    let time: WallTime
    func now() -> WallTime { time }
}
