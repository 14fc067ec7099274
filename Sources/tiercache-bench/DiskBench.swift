#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import TierCache
import TierCacheDisk
import TierCacheTesting

/// `tiercache-bench disk`: the disk tier against plain POSIX calls on the same bytes, and the cost
/// of opening a big root against a small one.
enum DiskBench {
    static func run() async throws {
        let base = "/tmp/tiercache-bench-disk-\(getpid())"
        _ = mkdir(base, 0o700)
        defer { removeTree(base) }
        // TIERCACHE_DISK_CPU=1: CPU time per get instead (process CPU time, which other
        // processes' load does not inflate), ours and POSIX, 8 in flight, best of 5 rounds each.
        // A payload size in bytes instead of 1 (TIERCACHE_DISK_CPU=4096) runs that size alone.
        if let selected = getenv("TIERCACHE_DISK_CPU").map({ String(cString: $0) }) {
            let sizes = [("4 KiB", 4 << 10), ("64 KiB", 64 << 10), ("1 MiB", 1 << 20)]
            for (label, size) in sizes where Int(selected) == size || !sizes.contains(where: { Int(selected) == $0.1 }) {
                try await cpuPerGet(label: label, payloadSize: size, base: base + "/cpu\(size)")
            }
            if Int(selected) == 4 << 10 || !sizes.contains(where: { Int(selected) == $0.1 }) {
                // More keys than the tier keeps files open, read in turn: what hot-file keeping
                // costs a workload it cannot help.
                try await cpuPerGet(label: "4 KiB", payloadSize: 4 << 10, base: base + "/cpuscan", keys: 1024)
            }
            return
        }
        for (label, size) in [("4 KiB", 4 << 10), ("64 KiB", 64 << 10), ("1 MiB", 1 << 20)] {
            try await putAndGet(label: label, payloadSize: size, base: base + "/\(size)")
        }
        try await openCost()
    }

    // MARK: - Put and get

    /// Keys rotate over a set small enough to stay in the page cache, large enough that each put
    /// replaces a file rather than rewriting one hot inode.
    static let keyCount = 32

    /// A tier and a plain folder holding the same `keys` envelopes of `payloadSize` bytes, for
    /// the put/get comparison and the CPU-time mode alike.
    static func prefilled(payloadSize: Int, base: String, keys: Int = keyCount) async throws
        -> (tier: DiskTier, entries: [CacheEntry], envelope: [UInt8], posixDirectory: String, posixPaths: [String])
    {
        let tier = DiskTier(configuration: .init(root: base + "/tier", maxBytes: 4 << 30, maxEntries: 1_000_000, maxEntrySize: 8 << 20))
        let now = SystemCacheClock().now()
        let payload = (0..<payloadSize).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        let entries = try (0..<keys).map { index in
            CacheEntry(
                key: try CacheKey(namespace: "bench", name: "entry-\(index)"), serializerID: .binary, codecID: .identity,
                createdAt: now, freshUntil: now.advanced(by: .seconds(3600)), staleUntil: now.advanced(by: .seconds(7200)),
                uncompressedLength: UInt64(payloadSize), payload: payload)
        }
        // The baseline writes the very bytes the tier stores: the encoded envelope.
        let envelope = entries[0].encoded()
        let posixDirectory = base + "/posix"
        _ = mkdir(base, 0o700)
        _ = mkdir(posixDirectory, 0o700)
        let posixPaths = (0..<keys).map { posixDirectory + "/" + entries[$0].key.fingerprint }
        for (index, entry) in entries.enumerated() {
            try await tier.put(entry)
            posixWrite(envelope, to: posixPaths[index], temporary: posixDirectory + "/.tmp.prefill")
        }
        return (tier, entries, envelope, posixDirectory, posixPaths)
    }

    static func putAndGet(label: String, payloadSize: Int, base: String) async throws {
        let (tier, entries, envelope, posixDirectory, posixPaths) = try await prefilled(payloadSize: payloadSize, base: base)
        // Throughput: `concurrency` operations in flight, in both candidates. Ours: that many tasks
        // calling the tier (its I/O runs on the blocking pool); POSIX: that many threads making
        // the plain calls. Each call of a candidate performs `operations` operations.
        let concurrency = 8
        let operations = concurrency * (payloadSize >= 1 << 20 ? 2 : 8)
        let perWorker = operations / concurrency
        let put = try await asyncCompare([
            {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<concurrency {
                        group.addTask {
                            for step in 0..<perWorker { try await tier.put(entries[(worker * perWorker + step) % keyCount]) }
                        }
                    }
                    try await group.waitForAll()
                }
            },
            {
                let round = nowNanoseconds()
                DispatchQueue.concurrentPerform(iterations: concurrency) { worker in
                    for step in 0..<perWorker {
                        let slot = (worker * perWorker + step) % keyCount
                        posixWrite(envelope, to: posixPaths[slot], temporary: posixDirectory + "/.tmp.\(round).\(worker).\(step)")
                    }
                }
            },
        ])
        report("put", label, oursNanoseconds: put[0], posixNanoseconds: put[1], operations: operations, concurrency: concurrency)

        // Every key exists in both now; reads come from the page cache in both. The keys fit in
        // the files the tier keeps open; the information line after the goal line reads the same
        // root through a tier that keeps none, as for keys beyond the kept files.
        let byName = DiskTier(configuration: withNoKeptFiles(tier.configuration))
        let misses = LockedValueBox(0)
        func tierGets(_ tier: DiskTier) -> () async throws -> Void {
            {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<concurrency {
                        group.addTask {
                            for step in 0..<perWorker where try await tier.get(entries[(worker * perWorker + step) % keyCount].key) == nil {
                                misses.withLock { $0 += 1 }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
        let get = try await asyncCompare([
            tierGets(tier),
            {
                DispatchQueue.concurrentPerform(iterations: concurrency) { worker in
                    for step in 0..<perWorker { blackHole(posixRead(posixPaths[(worker * perWorker + step) % keyCount])) }
                }
            },
            tierGets(byName),
        ])
        precondition(misses.withLock { $0 } == 0, "the tier missed reads")
        report("get", label, oursNanoseconds: get[0], posixNanoseconds: get[1], operations: operations, concurrency: concurrency)
        Report.info("disk", "get \(label) throughput with keptOpenFiles 0 (every read opens the file by name): ours/posix=\(format(get[1] / get[2]))")

        // Where a get's time goes (no goal): the envelope check every read must make costs about
        // as much as the read itself, which caps the get ratio whatever the tier does around it.
        let sample = posixRead(posixPaths[0])
        let pieces = try compare([
            { blackHole(posixRead(posixPaths[0])) },
            { blackHole(try CacheEntry(decoding: sample)) },
            { blackHole(XXH64.hash(sample)) },
        ])
        Report.info("disk", "get \(label) pieces: posix read=\(Int(pieces[0]))ns, CacheEntry(decoding:)=\(Int(pieces[1]))ns of which XXH64=\(Int(pieces[2]))ns")

        // One caller at a time (latency, no goal).
        var next = 0
        let sequential = try await asyncCompare(rounds: 3, [
            {
                _ = try await tier.get(entries[next % keyCount].key)
                next += 1
            },
            {
                blackHole(posixRead(posixPaths[next % keyCount]))
                next += 1
            },
        ])
        Report.info("disk", "get \(label) one caller: ours=\(Int(sequential[0] / 1000))us posix=\(Int(sequential[1] / 1000))us per get")
    }

    /// CPU time per get, ours and POSIX. With more `keys` than the default, information lines
    /// only: the workers read the keys in turn, each read a different key from the one before.
    static func cpuPerGet(label: String, payloadSize: Int, base: String, keys: Int = keyCount) async throws {
        let (tier, entries, _, _, posixPaths) = try await prefilled(payloadSize: payloadSize, base: base, keys: keys)
        // The same root read by a tier that hashes every payload on every read.
        var everyRead = tier.configuration
        everyRead.checksumVerification = .everyRead
        let hashingTier = DiskTier(configuration: everyRead)
        let byName = DiskTier(configuration: withNoKeptFiles(tier.configuration))
        let perWorker = max(512, (128 << 20) / payloadSize / 8)
        /// Process CPU time per get of one round of `body` (8 × `perWorker` gets), in nanoseconds.
        func perGet(_ body: () async throws -> Void) async rethrows -> Double {
            func cpuNanoseconds() -> Double {
                var ts = timespec()
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
                return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec)
            }
            let start = cpuNanoseconds()
            try await body()
            return (cpuNanoseconds() - start) / Double(8 * perWorker)
        }
        func tierRound(_ tier: DiskTier) async throws -> Double {
            try await perGet {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<8 {
                        group.addTask {
                            for step in 0..<perWorker {
                                let entry = try await tier.get(entries[(worker * perWorker + step) % keys].key)
                                precondition(entry != nil, "the tier missed a read")
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
        let scan = keys != keyCount
        var best = (ours: Double.infinity, hashing: Double.infinity, byName: Double.infinity, posix: Double.infinity)
        for _ in 0..<5 {
            best.ours = min(best.ours, try await tierRound(tier))
            if !scan { best.hashing = min(best.hashing, try await tierRound(hashingTier)) }
            best.byName = min(best.byName, try await tierRound(byName))
            best.posix = min(best.posix, await perGet {
                DispatchQueue.concurrentPerform(iterations: 8) { worker in
                    for step in 0..<perWorker { blackHole(posixRead(posixPaths[(worker * perWorker + step) % keys])) }
                }
            })
        }
        if scan {
            Report.info("disk", "get \(label), \(keys) keys read in turn (more than the \(tier.configuration.keptOpenFiles) kept files), CPU time per get: "
                + "ours=\(Int(best.ours))ns posix=\(Int(best.posix))ns posix/ours=\(format(best.posix / best.ours)); "
                + "with keptOpenFiles 0: ours=\(Int(best.byName))ns posix/ours=\(format(best.posix / best.byName))")
            return
        }
        Report.line("disk", "get \(label) CPU time per get, posix/ours (8 in flight)", ratio: best.posix / best.ours, goal: .atLeast(0.8),
                    detail: "ours=\(Int(best.ours))ns posix=\(Int(best.posix))ns")
        Report.info("disk", "get \(label) CPU time per get with checksumVerification .everyRead: ours=\(Int(best.hashing))ns, posix/ours=\(format(best.posix / best.hashing))")
        Report.info("disk", "get \(label) CPU time per get with keptOpenFiles 0 (every read opens the file by name): ours=\(Int(best.byName))ns, posix/ours=\(format(best.posix / best.byName))")
    }

    static func withNoKeptFiles(_ configuration: DiskTier.Configuration) -> DiskTier.Configuration {
        var configuration = configuration
        configuration.keptOpenFiles = 0
        return configuration
    }

    static func report(_ operation: String, _ label: String, oursNanoseconds: Double, posixNanoseconds: Double, operations: Int, concurrency: Int) {
        let oursPerSecond = Double(operations) * 1e9 / oursNanoseconds
        let posixPerSecond = Double(operations) * 1e9 / posixNanoseconds
        Report.line(
            "disk", "\(operation) \(label) throughput ours/posix (\(concurrency) in flight)", ratio: oursPerSecond / posixPerSecond, goal: .atLeast(0.8),
            detail: "ours=\(Int(oursPerSecond))/s posix=\(Int(posixPerSecond))/s")
    }

    /// open(O_EXCL) + write + close + rename: what an atomic write costs with nothing around it.
    static func posixWrite(_ bytes: [UInt8], to path: String, temporary: String) {
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "open \(temporary): \(errno)")
        var offset = 0
        bytes.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                precondition(n > 0, "write: \(errno)")
                offset += n
            }
        }
        close(fd)
        precondition(rename(temporary, path) == 0, "rename: \(errno)")
    }

    /// open + fstat + read + close.
    static func posixRead(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        precondition(fd >= 0, "open \(path): \(errno)")
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var offset = 0
            while offset < size {
                let n = pread(fd, buffer.baseAddress! + offset, size - offset, off_t(offset))
                if n <= 0 { break }
                offset += n
            }
            count = offset
        }
    }

    // MARK: - Opening a root

    /// Opens a root holding 100,000 entries and one holding 10, serves one get from each, and
    /// compares the times. The big root is kept in /tmp between runs (it takes a while to build).
    static func openCost() async throws {
        let big = try await prepareRoot("/tmp/tiercache-bench-open-100000", entries: 100_000)
        let small = try await prepareRoot("/tmp/tiercache-bench-open-10", entries: 10)
        let probe = try CacheKey(namespace: "open", name: "entry-7")
        var bigBest = Double.infinity
        var smallBest = Double.infinity
        for _ in 0..<15 {
            for (root, isBig) in [(big, true), (small, false)] {
                let start = nowNanoseconds()
                let tier = DiskTier(configuration: .init(root: root, maxBytes: 4 << 30, maxEntries: 1_000_000))
                let entry = try await tier.get(probe)
                let elapsed = Double(nowNanoseconds() - start)
                precondition(entry != nil, "the probe entry is missing from \(root)")
                if isBig { bigBest = min(bigBest, elapsed) } else { smallBest = min(smallBest, elapsed) }
            }
        }
        Report.line(
            "disk", "open root + first get, 100,000 entries / 10 entries (time)", ratio: bigBest / smallBest, goal: .atMost(1.5),
            detail: "big=\(Int(bigBest / 1000))us small=\(Int(smallBest / 1000))us")
    }

    static func prepareRoot(_ root: String, entries count: Int) async throws -> String {
        let tier = DiskTier(configuration: .init(root: root, maxBytes: 4 << 30, maxEntries: 1_000_000))
        if let usage = try await tier.usage(), usage.entries == UInt64(count) { return root }
        removeTree(root)
        let now = SystemCacheClock().now()
        let fresh = DiskTier(configuration: .init(root: root, maxBytes: 4 << 30, maxEntries: 1_000_000))
        let batch = 256
        for start in stride(from: 0, to: count, by: batch) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in start..<min(count, start + batch) {
                    group.addTask {
                        let payload = Array("value \(index)".utf8)
                        try await fresh.put(CacheEntry(
                            key: try CacheKey(namespace: "open", name: "entry-\(index)"), serializerID: .binary, codecID: .identity,
                            createdAt: now, freshUntil: now.advanced(by: .seconds(86_400 * 365)),
                            staleUntil: now.advanced(by: .seconds(86_400 * 365)),
                            uncompressedLength: UInt64(payload.count), payload: payload))
                    }
                }
                try await group.waitForAll()
            }
        }
        let usage = try await fresh.usage()
        precondition(usage?.entries == UInt64(count), "building \(root) gave \(String(describing: usage))")
        return root
    }

    // MARK: - Helpers

    /// ``compare(rounds:minimumNanoseconds:_:)`` for async candidates: alternates them round by
    /// round and returns each one's best nanoseconds per call.
    static func asyncCompare(rounds: Int = 7, minimumNanoseconds: UInt64 = 40_000_000, _ candidates: [() async throws -> Void]) async throws -> [Double] {
        var best = [Double](repeating: .infinity, count: candidates.count)
        for _ in 0..<rounds {
            for (index, body) in candidates.enumerated() {
                var calls: UInt64 = 0
                let start = nowNanoseconds()
                var elapsed: UInt64 = 0
                repeat {
                    try await body()
                    calls += 1
                    elapsed = nowNanoseconds() - start
                } while elapsed < minimumNanoseconds
                best[index] = min(best[index], Double(elapsed) / Double(calls))
            }
        }
        return best
    }
}
