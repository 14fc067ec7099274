#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import TierCache
import TierCacheDisk
import TierCacheTesting

/// One child process's cold start.
struct ColdStart {
    /// From spawning the process to its first `GET .../invocation/next`.
    var readyMs: Double
    var initMs: Double
    var hydrationMs: Double
    var firstResponseMs: Double
    var initKind: String
    var hits: Double
    var misses: Double
    var bytesRead: Double
}

enum Demo {
    struct Options {
        var runs = 5
        var data = ""
        var s3Endpoint: String?
        var bucket: String?
        var work = "/tmp/tiercache-demo-\(getpid())"
        /// A folder named with `--work` is the caller's to look into afterwards; the default one
        /// is removed at the end.
        var keepWork = false
    }

    static func usage() -> Never {
        print("""
        usage: tiercache-demo [--runs N] [--data endpoints.json] [--work DIR]
                              [--s3-endpoint URL --bucket NAME]   (AWS_* credentials from the environment)
        """)
        exit(2)
    }

    static func parse() -> Options {
        var options = Options()
        var arguments = Array(CommandLine.arguments.dropFirst())
        while !arguments.isEmpty {
            let flag = arguments.removeFirst()
            guard !arguments.isEmpty else { usage() }
            let value = arguments.removeFirst()
            switch flag {
            case "--runs": options.runs = max(1, Int(value) ?? 5)
            case "--data": options.data = value
            case "--s3-endpoint": options.s3Endpoint = value
            case "--bucket": options.bucket = value
            case "--work":
                options.work = value
                options.keepWork = true
            default: usage()
            }
        }
        if options.data.isEmpty {
            options.data = ["Examples/ReportLambda/Data/endpoints.json", "bench-data/endpoints.json"]
                .first { access($0, R_OK) == 0 } ?? "bench-data/endpoints.json"
        }
        if (options.s3Endpoint == nil) != (options.bucket == nil) { usage() }
        return options
    }

    static func main() async -> Never {
        let options = parse()
        guard access(options.data, R_OK) == 0 else {
            print("cannot read \(options.data); pass --data path/to/endpoints.json")
            exit(1)
        }
        let bucketDir = "\(options.work)/bucket"
        let tierName = options.bucket == nil ? "bucket" : "s3"
        mkdir(options.work, 0o755)
        print("report function: full init parses \(options.data), derives indexes and renders a page per region")
        print("store: \(options.bucket.map { "s3://\($0) at \(options.s3Endpoint ?? "")" } ?? "local folder \(bucketDir) (standing in for the bucket)")")
        print("\(options.runs) fresh environments per mode; times in ms\n")

        var base: [String: String] = [
            "AWS_LAMBDA_FUNCTION_NAME": "report", "AWS_LAMBDA_FUNCTION_VERSION": "1", "AWS_REGION": "us-east-1",
            "REPORT_DATA": options.data, "LOG_LEVEL": "ERROR",
        ]
        if let bucket = options.bucket, let endpoint = options.s3Endpoint {
            base["TIERCACHE_BUCKET"] = bucket
            base["AWS_ENDPOINT_URL_S3"] = endpoint
            base["TIERCACHE_PREFIX"] = "tiercache-demo-\(getpid())"
        } else {
            base["TIERCACHE_BUCKET_DIR"] = bucketDir
        }

        func runs(_ label: String, count: Int, extra: [String: String]) async -> [ColdStart] {
            var results: [ColdStart] = []
            for i in 0..<count {
                var env = base.merging(extra) { $1 }
                env["TIERCACHE_DISK_DIR"] = "\(options.work)/tmp-\(label)-\(i)"
                do {
                    results.append(try await coldStart(environment: env, tier: tierName))
                } catch {
                    print("  \(label) run \(i + 1) failed: \(error)")
                }
            }
            return results
        }

        let full = await runs("full", count: options.runs, extra: ["TIERCACHE_DISABLED": "1"])
        let seed = await runs("seed", count: 1, extra: [:])
        let hydrated = await runs("hydrated", count: options.runs, extra: [:])

        func p(_ values: [Double], _ q: Double) -> Double {
            guard !values.isEmpty else { return .nan }
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
        }
        func f(_ v: Double) -> String { v.isNaN ? "-" : String(format1(v)) }
        func row(_ name: String, _ r: [ColdStart]) {
            let inits = r.map(\.initMs), firsts = r.map(\.firstResponseMs)
            let hits = r.map(\.hits).reduce(0, +), misses = r.map(\.misses).reduce(0, +)
            let ratio = hits + misses > 0 ? "\(Int((100 * hits / (hits + misses)).rounded()))%" : "-"
            let kinds = Dictionary(grouping: r.map(\.initKind), by: { $0 }).map { "\($0.value.count) \($0.key)" }.sorted().joined(separator: ", ")
            print(pad(name, 22) + pad(f(p(inits, 0.5)), 10) + pad(f(p(inits, 0.95)), 10) + pad(f(p(firsts, 0.5)), 12)
                  + pad(f(p(firsts, 0.95)), 12) + pad(ratio, 10) + pad("\(Int(r.map(\.bytesRead).reduce(0, +)))", 12) + kinds)
        }
        print(pad("mode", 22) + pad("INIT p50", 10) + pad("INIT p95", 10) + pad("1st resp p50", 12) + pad("1st resp p95", 12)
              + pad("hit ratio", 10) + pad("bytes read", 12) + "init")
        row("full init (no cache)", full)
        row("first deploy (seed)", seed)
        row("hydrated", hydrated)

        let speedup = p(full.map(\.initMs), 0.5) / p(hydrated.map(\.initMs), 0.5)
        print("\nhydrated INIT is \(f(speedup))x shorter than full init at p50 (goal >= 5x)")
        let hello = (0..<options.runs).compactMap { _ in helloWorldMs() }
        if !hello.isEmpty {
            let ready = p(hydrated.map(\.readyMs), 0.5), baseline = p(hello, 0.5)
            print("ready for the first event (spawn to first /next), hydrated p50 \(f(ready)) ms; full init p50 "
                  + "\(f(p(full.map(\.readyMs), 0.5))) ms; a Swift hello world, spawn to exit, p50 \(f(baseline)) ms: "
                  + "\(f(ready / baseline))x a hello world")
        }
        if options.bucket == nil, let ratio = compressionRatio(bucketDir: bucketDir) {
            print("stored state: \(ratio.stored) bytes for \(ratio.raw) bytes serialized: compression ratio \(f(Double(ratio.raw) / Double(ratio.stored)))")
        }
        if !options.keepWork { removeTree(options.work) }
        exit(hydrated.count == options.runs && full.count == options.runs ? 0 : 1)
    }

    static func compressionRatio(bucketDir: String) -> (raw: UInt64, stored: Int)? {
        guard let key = try? CacheKey(namespace: "report", name: "1.report-state", schemaVersion: 1) else { return nil }
        let tier = DiskTier(configuration: .init(name: "bucket", root: bucketDir))
        let box = LockedValueBox<CacheEntry?>(nil)
        let done = LockedValueBox(false)
        Task {
            let entry = (try? await tier.get(key)) ?? nil
            box.withLock { $0 = entry }
            done.withLock { $0 = true }
        }
        while !done.withLock({ $0 }) { usleep(1000) }
        return box.withLock { $0 }.map { ($0.uncompressedLength, $0.payload.count) }
    }

    /// Starts one child, sends it `{}`, waits for its answer, shuts it down and reads its EMF line.
    static func coldStart(environment: [String: String], tier: String) async throws -> ColdStart {
        let emulator = try LambdaRuntimeAPIEmulator(configuration: .init(functionName: "report", functionVersion: "1"))
        defer { emulator.stop() }
        var env = environment
        env["AWS_LAMBDA_RUNTIME_API"] = emulator.runtimeAPI
        let id = emulator.enqueue(json: "{}", timeout: .seconds(60))
        let start = ContinuousClock.now
        let child = try Child(arguments: ["/proc/self/exe", "--function"], environment: env)
        guard let outcome = await emulator.outcome(for: id, timeout: .seconds(60)) else {
            child.kill()
            throw TierCacheError(.timeout, "no answer within 60 s")
        }
        let firstResponse = outcome.receivedAt - start
        let ready = (emulator.firstNextAt ?? outcome.receivedAt) - start
        emulator.shutdown(deadline: .seconds(2))
        let output = child.wait()
        guard outcome.kind == .response else { throw TierCacheError(.storage, "the function failed: \(outcome.text)") }
        let answer = try JSONDecoder().decode([String: Value].self, from: Data(outcome.body))
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("{\"_aws\"") }) else {
            throw TierCacheError(.storage, "no EMF line on the child's stdout")
        }
        let metrics = try JSONDecoder().decode([String: Value].self, from: Data(line.utf8))
        return ColdStart(
            readyMs: milliseconds(ready),
            initMs: metrics["InitDuration"]?.number ?? .nan,
            hydrationMs: metrics["HydrationDuration"]?.number ?? .nan,
            firstResponseMs: milliseconds(firstResponse),
            initKind: answer["init"]?.text ?? "?",
            hits: metrics["\(tier).Hits"]?.number ?? 0,
            misses: metrics["\(tier).Misses"]?.number ?? 0,
            bytesRead: metrics["\(tier).BytesRead"]?.number ?? 0)
    }

    static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    /// Spawn-to-exit of a Swift hello world (tiercache-hello, built beside this executable).
    static func helloWorldMs() -> Double? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let hello = String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/tiercache-hello"
        guard access(hello, X_OK) == 0 else { return nil }
        let start = ContinuousClock.now
        guard let child = try? Child(arguments: [hello], environment: [:]) else { return nil }
        _ = child.wait()
        return milliseconds(ContinuousClock.now - start)
    }

    /// A JSON scalar or anything else (ignored).
    enum Value: Decodable {
        case number(Double), text(String), other
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Double.self) { self = .number(n) }
            else if let s = try? c.decode(String.self) { self = .text(s) }
            else { self = .other }
        }
        var number: Double? { if case .number(let n) = self { return n }; return nil }
        var text: String? { if case .text(let s) = self { return s }; return nil }
    }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    static func format1(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}

/// A child process with its stdout captured (posix_spawn; stderr inherited).
final class Child {
    let pid: pid_t
    let stdoutRead: Int32

    init(arguments: [String], environment: [String: String]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TierCacheError(.storage, "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var merged: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { merged[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            cursor += 1
        }
        merged.merge(environment) { $1 }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw TierCacheError(.storage, "posix_spawn \(arguments[0]) failed: \(rc)")
        }
        self.pid = pid
        self.stdoutRead = fds[0]
    }

    func kill() { _ = Glibc.kill(pid, SIGKILL) }

    /// Reads stdout to the end and reaps the child.
    func wait() -> String {
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(stdoutRead, &buffer, buffer.count)
            if n > 0 { output += buffer[0..<n] } else if n < 0, errno == EINTR { continue } else { break }
        }
        close(stdoutRead)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return String(decoding: output, as: UTF8.self)
    }
}
