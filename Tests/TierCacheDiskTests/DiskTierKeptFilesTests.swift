#if canImport(Glibc)
import Glibc
#endif
import Logging
import MetricsTestKit
import TierCache
import TierCacheDisk
import TierCacheTesting
import Testing

/// What this process has open under `path`, from /proc/self/fd: each descriptor's target, which
/// ends in " (deleted)" for a file no longer linked.
func openDescriptors(under path: String) -> [String] {
    listNames("/proc/self/fd").compactMap { name -> String? in
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/" + name, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.hasPrefix(path + "/") ? target : nil
    }
}

/// Entry files only (not the kept `ns` folder, nor folders the index scan has open).
func openEntryFiles(under root: String) -> [String] {
    openDescriptors(under: root).filter { target in
        let name = target.split(separator: "/").last.map(String.init) ?? ""
        return name.prefix(32).allSatisfy(\.isHexDigit) && name.count >= 32
    }
}

/// Whether /tmp, where the tests make their roots, is on a file system where the tier keeps files
/// open (docs/disk-tier.md, "Local file systems only"), told from /proc/mounts rather than by the
/// tier itself, so that a tier wrongly keeping none fails these tests instead of skipping them.
let temporaryFolderKeepsFiles: Bool = {
    guard let mounts = readFile("/proc/mounts") else { return false }
    var best: (point: String, type: String) = ("", "")
    for line in String(decoding: mounts, as: UTF8.self).split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { continue }
        let point = String(fields[1])
        let contains = point == "/" || point == "/tmp" || "/tmp".hasPrefix(point + "/")
        if contains, point.count >= best.point.count { best = (point, String(fields[2])) }
    }
    return ["ext2", "ext3", "ext4", "tmpfs", "xfs", "btrfs", "f2fs", "zfs", "bcachefs"].contains(best.type)
}()

@Suite(
    "DiskTier kept open files",
    .enabled(if: temporaryFolderKeepsFiles, "/tmp is not on a local file system where the disk tier keeps files open (see /proc/mounts)"))
struct DiskTierKeptFilesTests {
    @Test func hotFilesStayOpenWithinTheLimitAndServeReads() async throws {
        let dir = TemporaryRoot("kept")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, keptOpenFiles: 16))
        #expect(tier.keptOpenFileCapacity == 16)
        let keys = try (0..<40).map { try key("k\($0)") }
        for k in keys { try await tier.put(makeEntry(k, size: 300)) }
        for k in keys { #expect(try await tier.get(k) != nil) }
        #expect(tier.statistics.hitsOnKeptFiles == 0, "a first read opens the file by name")
        let kept = tier.keptOpenFileCount
        #expect(kept > 0 && kept <= 16)
        let open = openEntryFiles(under: dir.root)
        #expect(open.count == kept, "each kept file is one descriptor")
        let keptKeys = keys.filter { k in open.contains { $0.hasSuffix("/" + k.fingerprint) } }
        #expect(keptKeys.count == kept)
        for k in keptKeys { #expect(try await tier.get(k)?.payload == makeEntry(k, size: 300).payload) }
        #expect(tier.statistics.hitsOnKeptFiles == kept, "reads of kept files open nothing")
        #expect(openEntryFiles(under: dir.root) == open, "and close nothing")
    }

    /// Keys whose files share one stripe of kept files when the tier keeps 32 (16 stripes of two
    /// slots, chosen by bits 8-11 of the fingerprint's low half: `KeptFiles.stripe`).
    func keysInOneStripe(_ count: Int) throws -> [CacheKey] {
        var found: [CacheKey] = []
        var index = 0
        while found.count < count {
            let k = try key("s\(index)")
            if (UInt64(k.fingerprint.suffix(16), radix: 16)! >> 8) % 16 == 0 { found.append(k) }
            index += 1
        }
        return found
    }

    /// Which of `keys` have their file kept open.
    func kept(_ keys: [CacheKey], under root: String) -> [CacheKey] {
        let open = openEntryFiles(under: root)
        return keys.filter { k in open.contains { $0.hasSuffix("/" + k.fingerprint) } }
    }

    @Test func aFullStripeLetsInAFileOnItsSecondReadOverOneNotReadLately() async throws {
        let dir = TemporaryRoot("keptclock")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, keptOpenFiles: 32))
        let keys = try keysInOneStripe(3)
        let (p, q, r) = (keys[0], keys[1], keys[2])
        for k in keys { try await tier.put(makeEntry(k, size: 100)) }
        _ = try await tier.get(p)
        _ = try await tier.get(q)
        #expect(kept(keys, under: dir.root) == [p, q], "free slots take every file")
        _ = try await tier.get(p)  // p is read again; q is not
        _ = try await tier.get(r)
        #expect(kept(keys, under: dir.root) == [p, q], "a full stripe refuses a file's first read")
        _ = try await tier.get(r)
        #expect(kept(keys, under: dir.root) == [p, r], "its second read lets it in, over the file not read lately")
        #expect(tier.statistics.hitsOnKeptFiles == 1)
    }

    @Test func aScanOverMoreKeysThanSlotsLeavesTheKeptFilesAlone() async throws {
        let dir = TemporaryRoot("keptscan")
        defer { dir.remove() }
        // One slot, two remembered refusals: a scan over three other keys never comes back to a
        // key before it is forgotten.
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, keptOpenFiles: 1))
        let hot = try key("hot")
        let scanned = try (0..<3).map { try key("scan\($0)") }
        for k in [hot] + scanned { try await tier.put(makeEntry(k, size: 100)) }
        _ = try await tier.get(hot)
        for _ in 0..<5 {
            for k in scanned { #expect(try await tier.get(k) != nil) }
        }
        #expect(kept([hot] + scanned, under: dir.root) == [hot])
        _ = try await tier.get(hot)
        #expect(tier.statistics.hitsOnKeptFiles == 1, "the hot file was still kept")
    }

    @Test func aKeptFileReplacedOrRemovedByAnotherInstanceIsSeen() async throws {
        let dir = TemporaryRoot("keptother")
        defer { dir.remove() }
        let reader = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let writer = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("shared")
        try await writer.put(makeEntry(k, size: 500, seed: 1))
        #expect(try await reader.get(k)?.payload == makeEntry(k, size: 500, seed: 1).payload)
        #expect(reader.keptOpenFileCount == 1)
        // The same size, so that only the link count tells the kept file is not the name's now.
        try await writer.put(makeEntry(k, size: 500, seed: 2))
        #expect(try await reader.get(k)?.payload == makeEntry(k, size: 500, seed: 2).payload, "the kept file was replaced")
        #expect(try await reader.get(k)?.payload == makeEntry(k, size: 500, seed: 2).payload)
        #expect(reader.statistics.hitsOnKeptFiles == 1, "the new file is kept in turn")
        // The replaced file is let go on the pool (its last close may wait on the journal).
        for _ in 0..<200 where openDescriptors(under: dir.root).contains(where: { $0.hasSuffix(" (deleted)") }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(!openDescriptors(under: dir.root).contains { $0.hasSuffix(" (deleted)") }, "the replaced file was let go")
        try await writer.remove(k)
        #expect(try await reader.get(k) == nil, "the kept file was removed")
        #expect(reader.keptOpenFileCount == 0)
        #expect(openEntryFiles(under: dir.root).isEmpty)
        #expect(reader.statistics.corrupt == 0)
    }

    @Test func ownWritesRemovalsAndEvictionsLetGoOfTheFileAtOnce() async throws {
        let dir = TemporaryRoot("keptown")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, maxEntries: 10))
        let k = try key("own")
        try await tier.put(makeEntry(k, size: 500, seed: 1))
        _ = try await tier.get(k)
        #expect(tier.keptOpenFileCount == 1)
        try await tier.put(makeEntry(k, size: 500, seed: 2))
        #expect(tier.keptOpenFileCount == 0, "a write replaced the file: its space goes now")
        #expect(openEntryFiles(under: dir.root).isEmpty)
        #expect(try await tier.get(k)?.payload == makeEntry(k, size: 500, seed: 2).payload)
        try await tier.remove(k)
        #expect(tier.keptOpenFileCount == 0)
        #expect(openEntryFiles(under: dir.root).isEmpty)
        // Evictions: read the first entries, then write enough to evict them.
        let keys = try (0..<30).map { try key("e\($0)") }
        for k in keys.prefix(5) {
            try await tier.put(makeEntry(k, size: 100))
            _ = try await tier.get(k)
        }
        #expect(tier.keptOpenFileCount == 5)
        for k in keys.dropFirst(5) { try await tier.put(makeEntry(k, size: 100)) }
        #expect(tier.statistics.evictions >= 5)
        #expect(!openDescriptors(under: dir.root).contains { $0.hasSuffix(" (deleted)") }, "no evicted file is held")
    }

    @Test func largeFilesAndAZeroLimitKeepNothing() async throws {
        let dir = TemporaryRoot("keptnone")
        defer { dir.remove() }
        let k = try key("big")
        let large = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, keptOpenFileMaxSize: 4096))
        try await large.put(makeEntry(k, size: 5000))
        let small = try key("small")
        try await large.put(makeEntry(small, size: 100))
        for _ in 0..<3 {
            #expect(try await large.get(k) != nil)
            #expect(try await large.get(small) != nil)
        }
        #expect(large.keptOpenFileCount == 1, "only the file under the size limit is kept")
        #expect(large.statistics.hitsOnKeptFiles == 2)

        let none = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, keptOpenFiles: 0))
        for _ in 0..<3 { #expect(try await none.get(small) != nil) }
        #expect(none.keptOpenFileCapacity == 0)
        #expect(none.keptOpenFileCount == 0)
        #expect(none.statistics.hitsOnKeptFiles == 0)
    }

    @Test func theTiersOfAProcessShareOneBudgetOfKeptFiles() async throws {
        let dir = TemporaryRoot("keptbudget")
        defer { dir.remove() }
        let budget = KeptFileBudget(limit: 6)
        func tier(_ namespace: String) -> DiskTier {
            DiskTier(
                configuration: .init(root: dir.path + "/" + namespace, maxBytes: 10 << 20),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                metricsFactory: nil, faults: nil, keptFileBudget: budget)
        }
        let first = tier("a")
        var second: DiskTier? = tier("b")
        #expect(first.keptOpenFileCapacity == 6, "one tier alone may use the whole budget")
        let keys = try (0..<20).map { try key("b\($0)") }
        for k in keys {
            try await first.put(makeEntry(k, size: 100))
            try await second!.put(makeEntry(k, size: 100))
        }
        for _ in 0..<2 {
            for k in keys {
                #expect(try await first.get(k) != nil)
                #expect(try await second!.get(k) != nil)
            }
        }
        #expect(first.keptOpenFileCount + second!.keptOpenFileCount <= 6, "together within the budget")
        #expect(first.keptOpenFileCount > 0)
        #expect(openEntryFiles(under: dir.path).count == first.keptOpenFileCount + second!.keptOpenFileCount)
        // A tier that goes gives its share back: the other can keep more.
        second = nil
        for _ in 0..<200 where budget.inUseForTests != first.keptOpenFileCount {
            try await Task.sleep(for: .milliseconds(10))
        }
        let before = first.keptOpenFileCount
        for _ in 0..<3 { for k in keys { _ = try await first.get(k) } }
        #expect(first.keptOpenFileCount > before || before == 6)
        #expect(first.keptOpenFileCount <= 6)
    }

    @Test(arguments: [EMFILE, ENFILE])
    func runningOutOfDescriptorsLetsGoOfTheKeptFiles(_ code: Int32) async throws {
        let dir = TemporaryRoot("keptemfile")
        defer { dir.remove() }
        let faults = FaultSwitch()
        let tier = faultyTier(dir.root, faults, TestMetrics())
        let keys = try (0..<3).map { try key("m\($0)") }
        for k in keys {
            try await tier.put(makeEntry(k, size: 100))
            _ = try await tier.get(k)
        }
        #expect(tier.keptOpenFileCount == 3)
        faults.active.withLock { $0 = (.openForRead, code) }
        #expect(try await tier.get(try key("absent")) == nil)
        #expect(tier.statistics.readErrors == 1)
        #expect(tier.keptOpenFileCount == 0, "a read that ran out of descriptors closed the kept files")
        #expect(openEntryFiles(under: dir.root).isEmpty)
        faults.active.withLock { $0 = nil }
        for k in keys { #expect(try await tier.get(k) != nil) }
        #expect(tier.keptOpenFileCount == 3, "kept again as reads find them")
        faults.active.withLock { $0 = (.createTemporary, code) }
        try await tier.put(makeEntry(try key("w"), size: 100))
        #expect(tier.statistics.writeErrors == 1)
        #expect(tier.keptOpenFileCount == 0, "so did a write")
    }

    @Test func releasingTheTierClosesItsFiles() async throws {
        let dir = TemporaryRoot("keptclose")
        defer { dir.remove() }
        var tier: DiskTier? = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        for index in 0..<5 {
            let k = try key("c\(index)")
            try await tier!.put(makeEntry(k, size: 100))
            _ = try await tier!.get(k)
        }
        #expect(openEntryFiles(under: dir.root).count == 5)
        #expect(openDescriptors(under: dir.root).contains(dir.root + "/ns"))
        tier = nil
        // The background index scan holds the tier while one of its steps runs: wait it out.
        for _ in 0..<200 where !openDescriptors(under: dir.root).isEmpty {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(openDescriptors(under: dir.root).isEmpty)
    }

    @Test func concurrentReadsWhileAnotherInstanceRewritesAndKeptFilesTurnOver() async throws {
        let dir = TemporaryRoot("keptrace")
        defer { dir.remove() }
        // Two slots for eight keys: kept files are replaced, and closed, all the time.
        let reader = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, keptOpenFiles: 2))
        let writer = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let keys = try (0..<8).map { try key("r\($0)") }
        for k in keys { try await writer.put(makeEntry(k, size: 700, seed: 0)) }
        let seeds: [UInt8] = [0, 1, 2, 3]
        let wrong = LockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for round in 1..<40 {
                    for k in keys { try await writer.put(makeEntry(k, size: 700, seed: seeds[round % seeds.count])) }
                }
            }
            for worker in 0..<4 {
                group.addTask {
                    for step in 0..<600 {
                        let k = keys[(worker + step) % keys.count]
                        let entry = try await reader.get(k)
                        if entry == nil || !seeds.contains(where: { makeEntry(k, size: 700, seed: $0).payload == entry!.payload }) {
                            wrong.withLock { $0 += 1 }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(wrong.withLock { $0 } == 0, "every read is one of the entries written, whole")
        #expect(reader.statistics.corrupt == 0)
        #expect(reader.keptOpenFileCount <= 2)
        for k in keys { #expect(try await reader.get(k)?.payload == (try await writer.get(k))?.payload) }
    }
}
