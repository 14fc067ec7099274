#if canImport(Glibc)
import Glibc
#endif
import Logging
import MetricsTestKit
import TierCache
import TierCacheDisk
import TierCacheTesting
import Testing

/// A fault switched on and off by the test.
final class FaultSwitch: Sendable {
    let active = LockedValueBox<(DiskFaults.Operation, Int32)?>(nil)

    var faults: DiskFaults {
        DiskFaults { [active] operation, _ in
            active.withLock { current in current.flatMap { $0.0 == operation ? $0.1 : nil } }
        }
    }
}

func faultyTier(_ root: String, _ faults: FaultSwitch, _ metrics: TestMetrics, maxBytes: UInt64 = 10 << 20) -> DiskTier {
    DiskTier(
        configuration: .init(root: root, maxBytes: maxBytes),
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: metrics, faults: faults.faults)
}

struct WriteFault: Sendable, CustomTestStringConvertible {
    var operation: DiskFaults.Operation
    var errno: Int32
    var reason: String
    var testDescription: String { "\(operation) fails with \(reason)" }
}

@Suite("DiskTier faults")
struct DiskTierFaultTests {
    @Test(arguments: [
        WriteFault(operation: .write, errno: ENOSPC, reason: "ENOSPC"),
        WriteFault(operation: .write, errno: EDQUOT, reason: "EDQUOT"),
        WriteFault(operation: .createTemporary, errno: EACCES, reason: "EACCES"),
        WriteFault(operation: .makeDirectory, errno: EACCES, reason: "EACCES"),
        WriteFault(operation: .rename, errno: EROFS, reason: "EROFS"),
        WriteFault(operation: .lockFile, errno: EACCES, reason: "EACCES"),
        // Another process holding the lock for good: the write gives up after `lockWait`.
        WriteFault(operation: .lockFile, errno: EWOULDBLOCK, reason: "lockTimeout"),
    ])
    func failedWriteIsSkippedCountedAndLeavesNothingBehind(_ fault: WriteFault) async throws {
        let dir = TemporaryRoot("fault")
        defer { dir.remove() }
        let faults = FaultSwitch()
        let metrics = TestMetrics()
        let tier = faultyTier(dir.root, faults, metrics)
        let kept = try key("kept")
        try await tier.put(makeEntry(kept, size: 100))
        faults.active.withLock { $0 = (fault.operation, fault.errno) }
        // Another namespace, so that the write needs new folders (reaches makeDirectory).
        let lost = try key("lost", namespace: "other")
        try await tier.put(makeEntry(lost, size: 100))
        #expect(tier.statistics.writeErrors == 1)
        #expect(try metrics.expectCounter("tiercache_tier_write_errors", [("tier", "disk"), ("reason", fault.reason)]).totalValue == 1)
        #expect(try await tier.get(lost) == nil)
        #expect(walk(dir.root).files.allSatisfy { !$0.path.contains("/.tmp.") }, "no temporary file left")
        if fault.errno == ENOSPC || fault.errno == EDQUOT {
            // A full file system makes the tier give back a tenth of what it holds: here, its one entry.
            #expect(tier.statistics.evictions == 1)
            #expect(try await tier.get(kept) == nil)
        } else {
            #expect(tier.statistics.evictions == 0)
            #expect(try await tier.get(kept) != nil, "earlier entries still read")
        }
        faults.active.withLock { $0 = nil }
        #expect(try await tier.usage()?.entries == UInt64(entryFiles(dir.root).count))
        try await tier.put(makeEntry(lost, size: 100))
        #expect(try await tier.get(lost) != nil, "the tier works again once the fault is gone")
    }

    @Test(arguments: [EACCES, EIO])
    func failedReadIsAMissAndKeepsTheFile(_ code: Int32) async throws {
        let dir = TemporaryRoot("readfault")
        defer { dir.remove() }
        let faults = FaultSwitch()
        let metrics = TestMetrics()
        let tier = faultyTier(dir.root, faults, metrics)
        let k = try key("r")
        try await tier.put(makeEntry(k, size: 100))
        faults.active.withLock { $0 = (.openForRead, code) }
        #expect(try await tier.get(k) == nil)
        #expect(tier.statistics.readErrors == 1)
        #expect(try metrics.expectCounter("tiercache_tier_read_errors", [("tier", "disk")]).totalValue == 1)
        faults.active.withLock { $0 = nil }
        #expect(try await tier.get(k) != nil)
    }

    @Test func vanishedRootMissesThenRecovers() async throws {
        let dir = TemporaryRoot("vanish")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("v")
        try await tier.put(makeEntry(k, size: 100))
        removeTree(dir.root)
        #expect(try await tier.get(k) == nil)
        try await tier.remove(k)
        try await tier.put(makeEntry(k, size: 100))
        #expect(try await tier.get(k) != nil)
        let usage = try #require(try await tier.usage())
        #expect(usage.entries == 1, "counting restarts in the new root")
        #expect(try await tier.sweep().examined == 1)
    }

    @Test func aRootRemovedAfterReadsIsSeenAndReadsGoOn() async throws {
        let dir = TemporaryRoot("reopen")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("v")
        try await tier.put(makeEntry(k, size: 100, seed: 1))
        // The first read opens the root's `ns` folder, which the tier then keeps open.
        #expect(try await tier.get(k)?.payload == makeEntry(k, size: 100, seed: 1).payload)
        removeTree(dir.root)
        #expect(try await tier.get(k) == nil, "the kept folder was removed: a miss, not a stale hit")
        try await tier.put(makeEntry(k, size: 100, seed: 2))
        // (The kernel resolves a folder's first lookup after its creation the slow way, so the
        // first of these may go to the pool; the second no longer needs to.)
        for _ in 0..<2 {
            #expect(try await tier.get(k)?.payload == makeEntry(k, size: 100, seed: 2).payload, "reads find the new root")
        }
        #expect(tier.statistics.hitsWithoutBlocking >= 2, "reads by the whole path do not block either")
    }

    @Test func realENOSPCAndReadOnlyFileSystemOnATinyTmpfs() async throws {
        let dir = TemporaryRoot("tmpfs")
        defer { dir.remove() }
        let mountPoint = dir.path + "/mnt"
        mkdir(mountPoint, 0o700)
        let mounted = "size=256k,mode=0700".withCString { mount("tmpfs", mountPoint, "tmpfs", 0, $0) }
        guard mounted == 0 else {
            print("skipped the tmpfs part: mount(2) failed with errno \(errno) (needs root); the injected-fault tests cover ENOSPC and EROFS")
            return
        }
        defer { umount2(mountPoint, Int32(MNT_DETACH)) }
        let metrics = TestMetrics()
        // A budget far above the file system's size, so that the kernel says no first.
        let tier = DiskTier(configuration: .init(root: mountPoint + "/cache", maxBytes: 100 << 20, maxEntrySize: 1 << 20), metricsFactory: metrics)
        var keys: [CacheKey] = []
        for i in 0..<12 {
            let k = try key("fill\(i)")
            keys.append(k)
            try await tier.put(makeEntry(k, size: 40_000, seed: UInt8(i)))
        }
        #expect(tier.statistics.writeErrors > 0, "a 256 KiB tmpfs cannot hold 12 × 40 KB")
        #expect(try metrics.expectCounter("tiercache_tier_write_errors", [("tier", "disk"), ("reason", "ENOSPC")]).totalValue > 0)
        #expect(tier.statistics.evictions > 0, "ENOSPC makes the tier give back space")
        var present = 0
        for (i, k) in keys.enumerated() {
            if let entry = try await tier.get(k) {
                present += 1
                #expect(entry.payload == makeEntry(k, size: 40_000, seed: UInt8(i)).payload)
            }
        }
        #expect(present > 0)
        #expect(tier.statistics.corrupt == 0, "no partial file ever became an entry")
        // After the eviction a smaller write fits again.
        let errorsBefore = tier.statistics.writeErrors
        let after = try key("after")
        try await tier.put(makeEntry(after, size: 8_000))
        #expect(tier.statistics.writeErrors == errorsBefore)
        #expect(try await tier.get(after) != nil)
        #expect(walk(mountPoint).files.allSatisfy { !$0.path.contains("/.tmp.") }, "no partial temporary file left")
        let usage = try #require(try await tier.usage())
        #expect(usage.bytes == UInt64(entryFiles(mountPoint + "/cache").reduce(0) { $0 + $1.size }))

        // Read-only: the same files through a read-only bind mount. Writes skip with EROFS, reads
        // still hit, nothing throws.
        let readOnly = dir.path + "/ro"
        mkdir(readOnly, 0o700)
        guard mount(mountPoint, readOnly, nil, UInt(MS_BIND), nil) == 0 else {
            print("skipped the read-only part: bind mount failed with errno \(errno)")
            return
        }
        defer { umount2(readOnly, Int32(MNT_DETACH)) }
        guard mount(nil, readOnly, nil, UInt(MS_REMOUNT) | UInt(MS_BIND) | UInt(MS_RDONLY), nil) == 0 else {
            print("skipped the read-only part: read-only remount failed with errno \(errno)")
            return
        }
        let roMetrics = TestMetrics()
        let roTier = DiskTier(configuration: .init(root: readOnly + "/cache", maxBytes: 100 << 20), metricsFactory: roMetrics)
        try await roTier.put(makeEntry(try key("ro"), size: 10))
        #expect(roTier.statistics.writeErrors == 1)
        #expect(try roMetrics.expectCounter("tiercache_tier_write_errors", [("tier", "disk"), ("reason", "EROFS")]).totalValue == 1)
        #expect(try await roTier.get(after) != nil, "reads work on a read-only root")
        #expect(try await roTier.get(try key("ro")) == nil)
        try await roTier.remove(after)
        #expect(try await roTier.get(after) != nil, "a remove that cannot happen is logged, not thrown")
        #expect(try await roTier.sweep().examined == entryFiles(mountPoint + "/cache").count)
    }
}
