// A bounded soak/load test of memory + disk + S3: several processes x tasks running
// get/getOrLoad/set/remove for a fixed number of operations, every value checked.
//
//   tiercache-soak [--processes 4] [--tasks 8] [--ops 20000] [--keys 256] [--size 2048]
//                  [--disk-root /tmp/tiercache-soak] [--no-s3] [--sample-ops N]
// S3 comes from TIERCACHE_TEST_S3_ENDPOINT / TIERCACHE_TEST_ACCESS_KEY_ID /
// TIERCACHE_TEST_SECRET_ACCESS_KEY (scripts/soak.sh starts moto and sets them); without them,
// or with --no-s3, the chain is memory + disk. `--ops` is per process.
//
// Every key has one owner (process, task): only it sets, removes and loads the key, so it knows
// the last value written and checks that its reads return exactly that. Any process reads any
// key and checks that the value is intact (checksum), for that key (not foreign) and by its
// owner. The parent prints throughput, p50/p99 latency per operation, errors, every anomaly,
// and each worker's descriptors, threads and RSS after warm-up and at the end, and sampled every
// N operations of the process during the run (--sample-ops; default a twentieth of --ops).
import Foundation
import TierCache
import TierCacheDisk
import TierCacheS3
import TierCacheTesting

struct Options {
    var processes = 4
    var tasks = 8
    var ops = 20_000
    var keys = 256
    var size = 2048
    var diskRoot = "/tmp/tiercache-soak"
    var useS3 = true
    var bucket = ""
    var worker: Int?
    var sampleOps = 0  // 0: a twentieth of the run

    init(_ arguments: [String]) {
        var i = 0
        func next() -> String {
            i += 1
            guard i < arguments.count else { fatalError("missing value after \(arguments[i - 1])") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--processes": processes = Int(next())!
            case "--tasks": tasks = Int(next())!
            case "--ops": ops = Int(next())!
            case "--keys": keys = Int(next())!
            case "--size": size = Int(next())!
            case "--disk-root": diskRoot = next()
            case "--no-s3": useS3 = false
            case "--bucket": bucket = next()
            case "--worker": worker = Int(next())!
            case "--sample-ops": sampleOps = Int(next())!
            default: fatalError("unknown argument \(arguments[i])")
            }
            i += 1
        }
    }

    var passThrough: [String] {
        ["--processes", "\(processes)", "--tasks", "\(tasks)", "--ops", "\(ops)", "--keys", "\(keys)",
         "--size", "\(size)", "--disk-root", diskRoot, "--bucket", bucket, "--sample-ops", "\(sampleOps)"] + (useS3 ? [] : ["--no-s3"])
    }
}

/// One worker's figures, sent to the parent as one JSON line.
struct WorkerReport: Codable {
    var worker: Int
    var seconds: Double
    var latencies: [String: [UInt32]]  // microseconds per op kind
    var errors: [String: Int]
    var anomalies: [String: Int]
    var examples: [String]
    var resources: [String: [Int]]  // fds, threads, rssKB: [start, after warm-up, end]
    var samples: [[Int]]  // [ops done, fds, threads, rssKB], every --sample-ops operations per process
    var finalChecked: Int
}

enum Resources {
    static func fds() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }
    static func status(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? -1
        }
        return -1
    }
    static func sample() -> (fds: Int, threads: Int, rssKB: Int) { (fds(), status("Threads"), status("VmRSS")) }
}

let environment = ProcessInfo.processInfo.environment
let s3Endpoint = environment["TIERCACHE_TEST_S3_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }
let s3Credentials: AWSCredentials? = {
    guard let id = environment["TIERCACHE_TEST_ACCESS_KEY_ID"], let secret = environment["TIERCACHE_TEST_SECRET_ACCESS_KEY"],
          !id.isEmpty, !secret.isEmpty else { return nil }
    return AWSCredentials(accessKeyID: id, secretAccessKey: secret)
}()

func s3Client() throws -> S3Client? {
    guard let s3Endpoint, let s3Credentials else { return nil }
    return try S3Client(configuration: .init(region: .usEast1, endpoint: s3Endpoint, addressingStyle: .path,
                                             credentials: .static(s3Credentials)))
}

func makeCache(_ options: Options, s3: S3Client?) -> Cache<StampedValue> {
    var tiers: [TierChain.Tier] = [.local(DiskTier(configuration: .init(root: options.diskRoot, maxBytes: 256 << 20)))]
    if let s3 {
        tiers.append(.remote(S3Tier(client: s3, configuration: .init(bucket: options.bucket, prefix: "soak"))))
    }
    return Cache(configuration: .init(name: "soak", serializer: BinarySerializer()), chain: TierChain(tiers))
}

/// What a task knows and counts; each task has its own, merged at the end.
struct TaskState {
    var latencies: [String: [UInt32]] = [:]
    var errors: [String: Int] = [:]
    var anomalies: [String: Int] = [:]
    var examples: [String] = []
    var lastWritten: [Int: Int] = [:]  // own key index -> sequence; absent = removed / never
    var nextSequence: [Int: Int] = [:]

    mutating func anomaly(_ kind: String, _ detail: String) {
        anomalies[kind, default: 0] += 1
        if examples.count < 5 { examples.append("\(kind): \(detail)") }
    }
}

/// Samples the process's descriptors, threads and RSS every `every` operations (of all tasks).
final class Sampler: @unchecked Sendable {
    private let lock = Lock()
    private var done = 0
    private var samples: [[Int]] = []
    let every: Int

    init(every: Int) { self.every = max(1, every) }

    func count() {
        let due = lock.withLock {
            done += 1
            return done % every == 0 ? done : nil
        }
        guard let due else { return }
        let sample = Resources.sample()
        lock.withLock { samples.append([due, sample.fds, sample.threads, sample.rssKB]) }
    }

    var all: [[Int]] { lock.withLock { samples } }
}

func runTask(_ options: Options, process: Int, task: Int, cache: Cache<StampedValue>, keys: [CacheKey], ops: Int,
             sampler: Sampler? = nil, state initial: TaskState = TaskState()) async -> TaskState {
    var state = initial
    let owners = options.processes * options.tasks
    let me = process * options.tasks + task
    let writer = "\(process)/\(task)"
    let own = keys.indices.filter { $0 % owners == me }
    var random = SystemRandomNumberGenerator()
    let clock = ContinuousClock()

    func check(_ value: StampedValue?, index: Int, op: String, state: inout TaskState) {
        let key = keys[index]
        guard let value else {
            if index % owners == me, let last = state.lastWritten[index] {
                state.anomaly("lost", "\(op) \(key.rendered): nil, seq \(last) written")
            }
            return
        }
        guard value.isIntact else { return state.anomaly("corrupt", "\(op) \(key.rendered)") }
        guard value.key == key.rendered else { return state.anomaly("foreign", "\(op) \(key.rendered) got \(value.key)") }
        let owner = index % owners
        guard value.writer == "\(owner / options.tasks)/\(owner % options.tasks)" else {
            return state.anomaly("foreign-writer", "\(op) \(key.rendered) by \(value.writer)")
        }
        if owner == me {
            if let last = state.lastWritten[index] {
                if value.sequence != last { state.anomaly("stale-own", "\(op) \(key.rendered): seq \(value.sequence), wrote \(last)") }
            } else {
                state.anomaly("resurrected", "\(op) \(key.rendered): seq \(value.sequence) after remove")
            }
        }
    }

    func newValue(_ index: Int, state: inout TaskState) -> StampedValue {
        let sequence = state.nextSequence[index, default: 0] + 1
        state.nextSequence[index] = sequence
        let size = options.size / 2 + (sequence * 131 + index * 17) % max(1, options.size)
        return StampedValue(key: keys[index].rendered, writer: writer, sequence: sequence, size: size)
    }

    for _ in 0..<ops {
        let roll = Int.random(in: 0..<100, using: &random)
        let start = clock.now
        let op: String
        if roll < 50 || own.isEmpty {
            op = "get"
            let index = Int.random(in: 0..<keys.count, using: &random)
            let result = await cache.get(keys[index])
            check(result?.value, index: index, op: op, state: &state)
        } else {
            let index = own.randomElement(using: &random)!
            if roll < 70 {
                op = "getOrLoad"
                let candidate = newValue(index, state: &state)
                do {
                    let result = try await cache.getOrLoad(keys[index]) { candidate }
                    if result.source == .loader, result.value == candidate { state.lastWritten[index] = candidate.sequence }
                    check(result.value, index: index, op: op, state: &state)
                } catch {
                    state.errors[op, default: 0] += 1
                }
            } else if roll < 90 {
                op = "set"
                let value = newValue(index, state: &state)
                do {
                    try await cache.set(keys[index], value)
                    state.lastWritten[index] = value.sequence
                } catch {
                    state.errors[op, default: 0] += 1
                }
            } else {
                op = "remove"
                await cache.remove(keys[index])
                state.lastWritten[index] = nil
            }
        }
        let elapsed = clock.now - start
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        state.latencies[op, default: []].append(UInt32(clamping: micros))
        sampler?.count()
    }
    return state
}

func runWorker(_ options: Options, index: Int) async throws -> WorkerReport {
    let start = Resources.sample()
    let s3 = options.useS3 ? try s3Client() : nil
    let cache = makeCache(options, s3: s3)
    let keys = try (0..<options.keys).map { try CacheKey(namespace: "soak", name: "key-\($0)") }
    let perTask = options.ops / options.tasks
    let warmUp = max(1, perTask / 10)
    let clock = ContinuousClock()
    let began = clock.now
    let sampler = Sampler(every: options.sampleOps > 0 ? options.sampleOps : max(1, options.ops / 20))

    // Warm-up (10%): thread pools, connections and the memory tier fill; resources are sampled
    // after it, so "end - warm" is growth under a steady load.
    // Each task keeps what it wrote during warm-up (its keys' last values) for the main run.
    let warmed = await withTaskGroup(of: (Int, TaskState).self) { group in
        for task in 0..<options.tasks {
            group.addTask { (task, await runTask(options, process: index, task: task, cache: cache, keys: keys, ops: warmUp)) }
        }
        return await group.reduce(into: [Int: TaskState]()) { $0[$1.0] = $1.1 }
    }
    let warm = Resources.sample()
    let states = await withTaskGroup(of: TaskState.self) { group in
        for task in 0..<options.tasks {
            group.addTask {
                await runTask(options, process: index, task: task, cache: cache, keys: keys, ops: perTask - warmUp,
                              sampler: sampler, state: warmed[task] ?? TaskState())
            }
        }
        return await group.reduce(into: [TaskState]()) { $0.append($1) }
    }
    let seconds = Double((clock.now - began).components.seconds) + Double((clock.now - began).components.attoseconds) / 1e18
    _ = await cache.flush(deadline: .seconds(30))
    let end = Resources.sample()

    var merged = TaskState()
    for state in states {
        for (op, values) in state.latencies { merged.latencies[op, default: []] += values }
        for (op, count) in state.errors { merged.errors[op, default: 0] += count }
        for (kind, count) in state.anomalies { merged.anomalies[kind, default: 0] += count }
        merged.examples += state.examples.prefix(5 - min(5, merged.examples.count))
    }
    // Final check through a fresh cache (empty memory): disk and S3 give back each owned key's
    // last value, or a miss; never another value.
    let fresh = makeCache(options, s3: s3)
    var checked = 0
    for state in states {
        for (keyIndex, _) in state.nextSequence {
            guard let result = await fresh.get(keys[keyIndex]) else { continue }
            checked += 1
            if !result.value.isIntact { merged.anomaly("final-corrupt", keys[keyIndex].rendered) }
            if let last = state.lastWritten[keyIndex], result.value.sequence != last {
                // Another process's disk write cannot touch this key (one owner), so a mismatch is
                // a lost or reordered write of this process.
                merged.anomaly("final-stale", "\(keys[keyIndex].rendered): seq \(result.value.sequence), wrote \(last)")
            }
        }
    }
    return WorkerReport(
        worker: index, seconds: seconds, latencies: merged.latencies, errors: merged.errors, anomalies: merged.anomalies,
        examples: merged.examples,
        resources: ["fds": [start.fds, warm.fds, end.fds], "threads": [start.threads, warm.threads, end.threads],
                    "rssKB": [start.rssKB, warm.rssKB, end.rssKB]],
        samples: sampler.all, finalChecked: checked)
}

func percentile(_ sorted: [UInt32], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
}

func runParent(_ options: Options) async throws -> Int32 {
    var options = options
    let s3 = options.useS3 ? try s3Client() : nil
    if options.useS3, s3 == nil {
        print("soak: no S3 (TIERCACHE_TEST_S3_ENDPOINT and keys not set): memory + disk only")
        options.useS3 = false
    }
    if let s3 {
        options.bucket = "soak-\(UInt32.random(in: 0...UInt32.max))"
        try await s3.createBucket(options.bucket)
    }
    try? FileManager.default.removeItem(atPath: options.diskRoot)
    print("soak: \(options.processes) processes x \(options.tasks) tasks, \(options.ops) ops per process, "
          + "\(options.keys) keys, values \(options.size / 2)-\(options.size * 3 / 2) B, tiers memory + disk\(options.useS3 ? " + S3 (moto)" : "")")
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    let clock = ContinuousClock()
    let began = clock.now
    var running: [(Process, Pipe)] = []
    for index in 0..<options.processes {
        let process = Process()
        process.executableURL = executable
        process.arguments = options.passThrough + ["--worker", "\(index)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        running.append((process, pipe))
    }
    var reports: [WorkerReport] = []
    var failures = 0
    for (process, pipe) in running {
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let line = String(decoding: output, as: UTF8.self).split(separator: "\n").last { $0.hasPrefix("RESULT ") }
        guard process.terminationStatus == 0, let line,
              let report = try? JSONDecoder().decode(WorkerReport.self, from: Data(line.dropFirst(7).utf8)) else {
            print("soak: a worker failed (status \(process.terminationStatus))")
            failures += 1
            continue
        }
        reports.append(report)
    }
    let wall = clock.now - began
    let wallSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18

    var all: [String: [UInt32]] = [:]
    var errors: [String: Int] = [:]
    var anomalies: [String: Int] = [:]
    for report in reports {
        for (op, values) in report.latencies { all[op, default: []] += values }
        for (op, count) in report.errors { errors[op, default: 0] += count }
        for (kind, count) in report.anomalies { anomalies[kind, default: 0] += count }
    }
    let total = all.values.reduce(0) { $0 + $1.count }
    print(String(format: "soak: %d ops in %.1f s wall: %.0f ops/s", total, wallSeconds, Double(total) / wallSeconds))
    print("| op | count | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for op in ["get", "getOrLoad", "set", "remove"] {
        let sorted = (all[op] ?? []).sorted()
        print(String(format: "| %@ | %d | %.3f | %.3f | %.3f |", op, sorted.count, percentile(sorted, 0.5), percentile(sorted, 0.99),
                     Double(sorted.last ?? 0) / 1000))
    }
    let everything = all.values.flatMap { $0 }.sorted()
    print(String(format: "| all | %d | %.3f | %.3f | %.3f |", everything.count, percentile(everything, 0.5),
                 percentile(everything, 0.99), Double(everything.last ?? 0) / 1000))
    print("errors: \(errors.isEmpty ? "none" : "\(errors)")")
    print("anomalies: \(anomalies.isEmpty ? "none" : "\(anomalies)")")
    for report in reports { for example in report.examples { print("  worker \(report.worker): \(example)") } }
    print("final check through a fresh cache: \(reports.reduce(0) { $0 + $1.finalChecked }) owned keys read back")
    print("resources per worker [start, after warm-up, end]:")
    for report in reports.sorted(by: { $0.worker < $1.worker }) {
        let r = report.resources
        print("  worker \(report.worker): fds \(r["fds"]!), threads \(r["threads"]!), rss KB \(r["rssKB"]!)")
    }
    // Sampled during the main run (after warm-up), every so many operations of the process:
    // the range of each figure, and RSS by fifths of the run, to tell a plateau from a climb.
    print("sampled during the run (after warm-up), per worker: fds min-max, threads min-max, rss KB min-max; rss KB at 0/25/50/75/100% of the samples:")
    for report in reports.sorted(by: { $0.worker < $1.worker }) where !report.samples.isEmpty {
        func range(_ column: Int) -> String {
            let values = report.samples.map { $0[column] }
            return "\(values.min()!)-\(values.max()!)"
        }
        let rss = report.samples.map { $0[3] }
        let marks = [0, 0.25, 0.5, 0.75, 1].map { rss[min(rss.count - 1, Int(Double(rss.count - 1) * $0))] }
        print("  worker \(report.worker): \(report.samples.count) samples; fds \(range(1)), threads \(range(2)), rss \(range(3)); rss \(marks)")
    }
    let corrupt = ["corrupt", "foreign", "foreign-writer", "final-corrupt"].reduce(0) { $0 + anomalies[$1, default: 0] }
    return failures > 0 || corrupt > 0 ? 1 : 0
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
if let worker = options.worker {
    let report = try await runWorker(options, index: worker)
    let data = try JSONEncoder().encode(report)
    print("RESULT " + String(decoding: data, as: UTF8.self))
} else {
    exit(try await runParent(options))
}
