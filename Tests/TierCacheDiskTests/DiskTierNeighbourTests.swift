#if canImport(Glibc)
import Glibc
#endif
import Logging
import MetricsTestKit
import TierCache
import TierCacheDisk
import TierCacheTesting
import Testing

// The disk tier on a /tmp it shares with strangers (issue 17): what another user, or another
// process of the same user, can put in its way, and what the tier must do about it. Each test
// plays the neighbour with plain system calls, or with the helper executable as another process.

/// `<root>/ns/<namespace>/<xx>/<fingerprint>`: where the tier keeps `key`'s entry.
func entryPath(_ root: String, _ key: CacheKey) -> String {
    "\(root)/ns/\(key.namespace)/\(key.fingerprint.prefix(2))/\(key.fingerprint)"
}

/// The file's bytes and modification time, to tell that nobody wrote to it.
func snapshot(_ path: String) -> (bytes: [UInt8]?, modified: Int, inode: UInt) {
    var st = stat()
    guard stat(path, &st) == 0 else { return (nil, 0, 0) }
    return (readFile(path), st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec, st.st_ino)
}

func fileType(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

/// A cache of strings over memory and `disk`, to show the rest of a chain works whatever the
/// disk tier does.
func stringCache(over disk: DiskTier) -> Cache<String> {
    Cache<String>(configuration: .init(defaultTTL: .seconds(600), serializer: .json), chain: TierChain([.local(disk)]))
}

@Suite("DiskTier among hostile neighbours", .serialized)
struct DiskTierNeighbourTests {
    // MARK: - The root

    @Test func aRootMadeByAnotherUserIsRefusedAndNothingInItIsReadOrWritten() async throws {
        let dir = TemporaryRoot("foreign")
        defer { dir.remove() }
        let victim = dir.path + "/victim"
        writeFile(victim, Array("a file of the user's own".utf8))
        let before = snapshot(victim)
        let planted = try key("report", namespace: "reports")
        let root: String
        if geteuid() == 0 {
            // Root plays both parts: the helper drops to `nobody` and prepares a root where the
            // tier will look, with `usage` linked to the victim and an entry planted for a key.
            let helper = try #require(helperPath(), "tiercache-disk-helper is built next to the test bundle")
            #expect(chmod(dir.path, 0o711) == 0)
            let shared = dir.path + "/shared"  // a /tmp of its own: sticky, world-writable
            #expect(mkdir(shared, 0o1777) == 0 && chmod(shared, 0o1777) == 0)
            root = shared + "/tiercache-0"
            let child = try Child.spawn(helper, ["plant-root", root, "65534", victim, planted.namespace, planted.name])
            let (status, output) = child.finish()
            try #require(exitCode(status) == 0 && output.contains("planted"), "the neighbour planted its root: \(output)")
            var st = stat()
            #expect(stat(root, &st) == 0 && st.st_uid == 65534)
        } else {
            // Without root no other user's folder can be made here; one that exists stands in.
            root = "/usr"
            print("not root: a folder of another user's (/usr) stands in for a planted root, with no planted files")
        }
        let metrics = TestMetrics()
        let tier = DiskTier(configuration: .init(root: root, maxBytes: 10 << 20), metricsFactory: metrics)
        #expect(try await tier.get(planted) == nil, "the planted entry is not served")
        try await tier.put(makeEntry(planted, size: 100))
        try await tier.remove(planted)
        #expect(try await tier.get(planted) == nil)
        #expect(try await tier.usage() == nil)
        let swept = try await tier.sweep()
        #expect(swept.examined == 0 && swept.unexpectedRemoved == 0, "a sweep does nothing in a refused root")

        let refusal = try #require(tier.rootRefusal, "the tier refused the root")
        #expect(refusal.reason == .ownedByAnotherUser)
        #expect(refusal.root == root)
        #expect(refusal.message.contains("belongs to user"), "\(refusal.message)")
        let thrown = await #expect(throws: DiskRootError.self) { try await tier.checkRoot() }
        #expect(thrown?.reason == .ownedByAnotherUser, "checkRoot() names the reason")
        let stats = tier.statistics
        #expect(stats.misses == 2 && stats.hits == 0)
        #expect(stats.writeErrors == 1)
        #expect(try metrics.expectCounter("tiercache_tier_write_errors", [("tier", "disk"), ("reason", "rootRefused")]).totalValue == 1)
        let after = snapshot(victim)
        #expect(after.bytes == before.bytes && after.modified == before.modified, "the victim behind `usage` is unchanged")

        // The rest of the chain works: the loader's value, from memory the second time.
        let cache = stringCache(over: tier)
        let loaded = try await cache.getOrLoad(planted) { "built" }
        #expect(loaded.value == "built")
        #expect(try await cache.getOrLoad(planted) { "built again" }.value == "built")
    }

    @Test func aRootOthersCanWriteIntoIsRefusedWithTheReason() async throws {
        let dir = TemporaryRoot("open")
        defer { dir.remove() }
        #expect(mkdir(dir.root, 0o700) == 0 && chmod(dir.root, 0o777) == 0)
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let error = await #expect(throws: DiskRootError.self) { try await tier.checkRoot() }
        #expect(error?.reason == .writableByOthers)
        #expect(error?.message.contains("777") == true, "the message says what was found: \(String(describing: error))")
        let k = try key("k")
        try await tier.put(makeEntry(k, size: 10))
        #expect(try await tier.get(k) == nil)
        #expect(tier.statistics.writeErrors == 1)
        #expect(listNames(dir.root).isEmpty, "nothing was made inside the refused root")
        #expect(tier.rootRefusal?.reason == .writableByOthers)
        // Refused for the tier's life, even once the mode is fixed; a new tier checks again.
        #expect(chmod(dir.root, 0o700) == 0)
        try await tier.put(makeEntry(k, size: 10))
        #expect(try await tier.get(k) == nil)
        let fresh = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        try await fresh.checkRoot()
        try await fresh.put(makeEntry(k, size: 10))
        #expect(try await fresh.get(k) != nil)
    }

    @Test func aRootRemovedAndMadeAgainByAnotherIsCheckedAgain() async throws {
        let dir = TemporaryRoot("remade")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("k")
        try await tier.put(makeEntry(k, size: 100))
        #expect(try await tier.get(k) != nil)
        // Someone removes the root and makes one anyone can write into, at the same path.
        removeTree(dir.root)
        #expect(mkdir(dir.root, 0o700) == 0 && chmod(dir.root, 0o777) == 0)
        #expect(try await tier.get(k) == nil)
        try await tier.put(makeEntry(k, size: 100))
        #expect(tier.rootRefusal?.reason == .writableByOthers, "the new folder was checked like the first")
        #expect(listNames(dir.root).isEmpty, "and nothing was made in it")
        #expect(tier.statistics.writeErrors == 1)
    }

    @Test func aRootThatIsASymbolicLinkOrAFileIsRefused() async throws {
        let dir = TemporaryRoot("linkroot")
        defer { dir.remove() }
        let target = dir.path + "/target"
        #expect(mkdir(target, 0o700) == 0)
        #expect(symlink(target, dir.root) == 0)
        let linked = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let linkError = await #expect(throws: DiskRootError.self) { try await linked.checkRoot() }
        #expect(linkError?.reason == .symbolicLink)
        try await linked.put(makeEntry(try key("k"), size: 10))
        #expect(listNames(target).isEmpty, "nothing was written through the link")

        let file = dir.path + "/file"
        writeFile(file, [1, 2, 3])
        let onAFile = DiskTier(configuration: .init(root: file, maxBytes: 10 << 20))
        let fileError = await #expect(throws: DiskRootError.self) { try await onAFile.checkRoot() }
        #expect(fileError?.reason == .notADirectory)
    }

    @Test func theDefaultRootIsPerUserAndMadePrivate() async throws {
        #expect(DiskTier.Configuration().root == "/tmp/tiercache-\(geteuid())")
        #expect(DiskTier.Configuration.defaultRoot == "/tmp/tiercache-\(geteuid())")
        // A root that does not exist is made 0700, with its missing parents.
        let dir = TemporaryRoot("made")
        defer { dir.remove() }
        let root = dir.path + "/a/b/root"
        let tier = DiskTier(configuration: .init(root: root, maxBytes: 10 << 20))
        try await tier.checkRoot()
        var st = stat()
        #expect(stat(root, &st) == 0 && st.st_mode & 0o777 == 0o700 && st.st_uid == geteuid())
        #expect(stat(root + "/ns", &st) == 0 && st.st_mode & 0o777 == 0o700)
    }

    // MARK: - Links and FIFOs inside the root

    @Test func aUsageLinkToAVictimLeavesTheVictimUnchanged() async throws {
        let dir = TemporaryRoot("usagelink")
        defer { dir.remove() }
        let victim = dir.path + "/victim"
        writeFile(victim, Array(repeating: 0x41, count: 64))
        let before = snapshot(victim)
        #expect(mkdir(dir.root, 0o700) == 0)
        #expect(symlink(victim, dir.root + "/usage") == 0)
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("k")
        try await tier.put(makeEntry(k, size: 100))
        #expect(try await tier.get(k) != nil)
        let after = snapshot(victim)
        #expect(after.bytes == before.bytes && after.modified == before.modified, "the victim's first 32 bytes are not overwritten")
        #expect(fileType(dir.root + "/usage") == S_IFREG, "the link was replaced by the tier's own usage file")
        #expect(try await tier.usage()?.entries == 1)

        // A FIFO there, too, is replaced rather than opened for good.
        removeTree(dir.root + "/usage")
        #expect(mkfifo(dir.root + "/usage", 0o600) == 0)
        try await tier.put(makeEntry(try key("k2"), size: 100))
        #expect(fileType(dir.root + "/usage") == S_IFREG)
        #expect(tier.statistics.writeErrors == 0)
    }

    @Test func aFIFOWhereAnEntryBelongsIsAMissAndNothingHangs() async throws {
        let dir = TemporaryRoot("fifo")
        defer { dir.remove() }
        let metrics = TestMetrics()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20), metricsFactory: metrics)
        let written = try key("written")
        try await tier.put(makeEntry(written, size: 100))
        // More FIFOs than the blocking pool has threads: an open that waited on any of them would
        // hold a thread for good, and with all of them, every disk operation of the process.
        let fifos = try [written] + (0..<(BlockingPool.shared.threadCount + 8)).map { try key("fifo\($0)") }
        for k in fifos {
            let path = entryPath(dir.root, k)
            removeTree(path)
            mkdir(String(path.dropLast(33)), 0o700)
            #expect(mkfifo(path, 0o600) == 0)
        }
        let hits = try await withDeadline(.seconds(60)) {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for k in fifos { group.addTask { try await tier.get(k) != nil } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
        }
        #expect(hits == 0, "a FIFO is never read as an entry")
        #expect(tier.statistics.unexpectedFiles == fifos.count)
        #expect(try metrics.expectCounter("tiercache_disk_unexpected_files_total", [("tier", "disk")]).totalValue == Int64(fifos.count))
        for k in fifos { #expect(fileType(entryPath(dir.root, k)) == nil, "the FIFO inside the root was removed") }
        // The process stays responsive: the pool serves other work.
        let other = try key("other")
        try await withDeadline(.seconds(60)) {
            try await tier.put(makeEntry(other, size: 100))
            #expect(try await tier.get(other) != nil)
        }
        // And a chain over it answers within its read deadline.
        let k = try key("fifo-through-chain")
        let path = entryPath(dir.root, k)
        mkdir(String(path.dropLast(33)), 0o700)
        #expect(mkfifo(path, 0o600) == 0)
        let cache = stringCache(over: tier)
        #expect(try await withDeadline(.seconds(60)) { try await cache.getOrLoad(k) { "built" }.value } == "built")
    }

    @Test func aSymbolicLinkWhereAnEntryBelongsIsNeitherFollowedNorItsTargetRemoved() async throws {
        let dir = TemporaryRoot("entrylink")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("linked")
        try await tier.put(makeEntry(k, size: 100))
        // The link points at a good envelope for the very key: following it would make a hit.
        let victim = dir.path + "/victim"
        writeFile(victim, makeEntry(k, size: 100, seed: 7).encoded())
        let before = snapshot(victim)
        let path = entryPath(dir.root, k)
        removeTree(path)
        #expect(symlink(victim, path) == 0)
        #expect(try await tier.get(k) == nil)
        #expect(fileType(path) == nil, "the link was removed")
        #expect(snapshot(victim).bytes == before.bytes, "its target was not")
        // A write replaces a link put back meanwhile, not what it points to.
        #expect(symlink(victim, path) == 0)
        try await tier.put(makeEntry(k, size: 100, seed: 3))
        #expect(try await tier.get(k)?.payload == makeEntry(k, size: 100, seed: 3).payload)
        #expect(fileType(path) == S_IFREG)
        #expect(snapshot(victim).bytes == before.bytes)
        #expect(tier.statistics.unexpectedFiles == 2, "the read found the first link, the write the second")
    }

    @Test func aSymlinkedShardFolderIsNeverSweptOrReadThrough() async throws {
        let dir = TemporaryRoot("shardlink")
        defer { dir.remove() }
        let clock = TestClock()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, temporaryFileMaxAge: .zero, clock: clock))
        let k = try key("target")
        try await tier.put(makeEntry(k, size: 100, freshFor: .seconds(10), now: clock.now()))
        // The user's own folder, full of files a sweep would remove if it looked: an expired
        // envelope under the key's own name, garbage under entry names, a "temporary" file.
        let victims = dir.path + "/victims"
        #expect(mkdir(victims, 0o700) == 0)
        writeFile(victims + "/" + k.fingerprint, makeEntry(k, size: 100, freshFor: .seconds(10), now: clock.now()).encoded())
        writeFile(victims + "/" + String(repeating: "a", count: 32), Array("garbage".utf8))
        writeFile(victims + "/.tmp.x.1.1", [1])
        #expect(mkdir(victims + "/ab", 0o700) == 0)
        writeFile(victims + "/ab/" + String(repeating: "b", count: 32), Array("garbage".utf8))
        let before = walk(victims).files.map { ($0.path, snapshot($0.path).bytes) }
        // The key's shard folder becomes a link to it, and so does a whole namespace.
        let shard = String(entryPath(dir.root, k).dropLast(33))
        removeTree(shard)
        #expect(symlink(victims, shard) == 0)
        #expect(symlink(victims, dir.root + "/ns/linked") == 0)
        // Reads do not go through the link (the envelope behind it is a good one for `k`).
        #expect(try await tier.get(k) == nil)
        clock.advance(.seconds(100))
        let result = try await tier.sweep()
        let after = walk(victims).files.map { ($0.path, snapshot($0.path).bytes) }
        #expect(after.map(\.0) == before.map(\.0), "the sweep deleted nothing behind the links")
        #expect(zip(after, before).allSatisfy { $0.1 == $1.1 }, "nor changed anything")
        #expect(result.unexpectedRemoved == 2, "it removed the two links themselves: \(result)")
        #expect(fileType(shard) == nil && fileType(dir.root + "/ns/linked") == nil)
        #expect(result.expiredRemoved == 0 && result.corruptRemoved == 0 && result.temporaryRemoved == 0)
        // A write makes the shard folder anew.
        try await tier.put(makeEntry(k, size: 100, now: clock.now()))
        #expect(fileType(shard) == S_IFDIR)
        #expect(try await tier.get(k) != nil)
    }

    @Test func aLinkInPlaceOfAShardFolderIsReplacedByAWrite() async throws {
        let dir = TemporaryRoot("shardwrite")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        try await tier.checkRoot()
        let k = try key("w")
        let victims = dir.path + "/victims"
        #expect(mkdir(victims, 0o700) == 0)
        #expect(mkdir(dir.root + "/ns/test", 0o700) == 0)
        let shard = String(entryPath(dir.root, k).dropLast(33))
        #expect(symlink(victims, shard) == 0)
        try await tier.put(makeEntry(k, size: 100))
        #expect(listNames(victims).isEmpty, "nothing was written through the link")
        #expect(fileType(shard) == S_IFDIR)
        #expect(try await tier.get(k) != nil)
    }

    // MARK: - Namespaces with a leading dot

    @Test func namespacesWithALeadingDotAreSweptAndEvictedLikeAnyOther() async throws {
        let dir = TemporaryRoot("dotns")
        defer { dir.remove() }
        let clock = TestClock()
        let first = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, maxEntries: 20, clock: clock))
        for i in 0..<10 { try await first.put(makeEntry(try key("h\(i)", namespace: ".hidden"), size: 10, freshFor: .seconds(10), now: clock.now())) }
        for i in 0..<10 { try await first.put(makeEntry(try key("d\(i)", namespace: "..dots"), size: 10, now: clock.now())) }
        #expect(try await first.get(try key("h0", namespace: ".hidden")) != nil)
        // Another instance (another process, as far as the index knows) evicts them like any.
        let second = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, maxEntries: 20, clock: clock))
        try await Task.sleep(for: .milliseconds(5))
        for i in 0..<5 { try await second.put(makeEntry(try key("v\(i)", namespace: "visible"), size: 10, now: clock.now())) }
        let usage = try #require(try await second.usage())
        #expect(usage.entries <= 20)
        #expect(usage.entries == UInt64(entryFiles(dir.root).count))
        // The oldest entries were .hidden's: those are the ones evicted.
        #expect(second.statistics.evictions >= 5)
        #expect(entryFiles(dir.root + "/ns/.hidden").count <= 10 - second.statistics.evictions, "entries of a dot namespace are evicted")
        #expect(entryFiles(dir.root + "/ns/visible").count == 5)
        // The sweep removes the expired ones that are left.
        let left = entryFiles(dir.root + "/ns/.hidden").count
        #expect(left > 0)
        clock.advance(.seconds(100))
        let swept = try await second.sweep()
        #expect(swept.expiredRemoved == left)
        #expect(entryFiles(dir.root + "/ns/.hidden").isEmpty, "every expired entry of .hidden was swept")
    }

    // MARK: - Locks

    @Test func aLockHeldByAStoppedProcessDelaysOtherProcessesOnlyUpToTheLockWait() async throws {
        let helper = try #require(helperPath(), "tiercache-disk-helper is built next to the test bundle")
        let dir = TemporaryRoot("stopped")
        defer { dir.remove() }
        let metrics = TestMetrics()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, lockWait: .milliseconds(100)), metricsFactory: metrics)
        let present = try key("present")
        let locked = try key("locked")
        try await tier.put(makeEntry(present, size: 100))
        try await tier.put(makeEntry(locked, size: 100))
        let shard = "ns/test/\(locked.fingerprint.prefix(2))"
        // Another process takes the shard folder's lock and the root's usage lock, then stops.
        let child = try Child.spawn(helper, ["hold-locks", dir.root, "0", shard, "usage"])
        #expect(child.readLine() == "locked")
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, WUNTRACED) == child.pid && (status & 0xFF) == 0x7F, "the child is stopped")
        var reaped = false
        func reap() {
            guard !reaped else { return }
            reaped = true
            child.kill(SIGKILL)
            child.kill(SIGCONT)
            _ = child.finish()
        }
        defer { reap() }
        let done = try await withDeadline(.seconds(60)) { () -> Bool in
            #expect(try await tier.get(present) != nil, "reads take no lock")
            #expect(try await tier.get(locked) != nil)
            try await tier.put(makeEntry(locked, size: 100, seed: 2))  // its shard folder is locked
            try await tier.put(makeEntry(try key("elsewhere"), size: 100))  // the usage file is
            try await tier.remove(present)
            #expect(try await tier.usage() == nil)
            return true
        }
        #expect(done)
        let stats = tier.statistics
        #expect(stats.writeErrors == 2, "both writes were skipped")
        #expect(stats.lockTimeouts == 3, "and counted, with the remove: \(stats)")
        #expect(try metrics.expectCounter("tiercache_tier_write_errors", [("tier", "disk"), ("reason", "lockTimeout")]).totalValue == 2)
        #expect(try await tier.get(locked)?.payload == makeEntry(locked, size: 100).payload, "the old entry is intact")
        #expect(try await tier.get(present) != nil, "the skipped remove left it")
        // A chain over the tier still loads and serves.
        let cache = stringCache(over: tier)
        #expect(try await withDeadline(.seconds(60)) { try await cache.getOrLoad(try key("chain")) { "built" }.value } == "built")

        // Once the holder is gone, everything works again.
        reap()
        try await tier.put(makeEntry(locked, size: 100, seed: 3))
        #expect(try await tier.get(locked)?.payload == makeEntry(locked, size: 100, seed: 3).payload)
        try await tier.remove(present)
        #expect(try await tier.get(present) == nil)
        #expect(try await tier.usage() != nil)
    }

    // MARK: - One system-call layer

    @Test func everyKindOfSystemCallGoesThroughTheInjectableLayer() async throws {
        let dir = TemporaryRoot("layer")
        defer { dir.remove() }
        let seen = LockedValueBox(Set<DiskFaults.Operation>())
        let recorder = DiskFaults { operation, _ in
            seen.withLock { _ = $0.insert(operation) }
            return nil
        }
        let clock = TestClock()
        let tier = DiskTier(
            configuration: .init(root: dir.root, fsync: true, touchGranularity: .zero, temporaryFileMaxAge: .zero, clock: clock),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), metricsFactory: TestMetrics(), faults: recorder)
        let k = try key("k")
        try await tier.put(makeEntry(k, size: 100, freshFor: .seconds(10), now: clock.now()))
        try await Task.sleep(for: .milliseconds(5))
        #expect(try await tier.get(k) != nil)
        #expect(try await tier.get(k) != nil)
        try await tier.remove(k)
        try await tier.put(makeEntry(k, size: 100, freshFor: .seconds(10), now: clock.now()))
        clock.advance(.seconds(100))
        _ = try await tier.sweep()
        #expect(seen.withLock { $0 } == Set(DiskFaults.Operation.allCases), "never asked about: \(Set(DiskFaults.Operation.allCases).subtracting(seen.withLock { $0 }))")
    }

    @Test func withoutOpenat2FoldersAreWalkedOneAtATimeAndLinksStillRefused() async throws {
        let dir = TemporaryRoot("walk")
        defer { dir.remove() }
        // ENOSYS from every openat2 (its paths are relative: `<namespace>/<xx>/<fingerprint>`).
        let noOpenat2 = DiskFaults { operation, path in operation == .openForRead && !path.hasPrefix("/") ? ENOSYS : nil }
        let tier = DiskTier(
            configuration: .init(root: dir.root, maxBytes: 10 << 20),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }), metricsFactory: TestMetrics(), faults: noOpenat2)
        let k = try key("k")
        try await tier.put(makeEntry(k, size: 100))
        for _ in 0..<3 { #expect(try await tier.get(k)?.payload == makeEntry(k, size: 100).payload) }
        #expect(tier.statistics.hitsWithoutBlocking == 0, "without openat2 every read is made on the pool")
        let victim = dir.path + "/victim"
        let victimBytes = makeEntry(k, size: 100, seed: 9).encoded()
        writeFile(victim, victimBytes)
        removeTree(entryPath(dir.root, k))
        #expect(symlink(victim, entryPath(dir.root, k)) == 0)
        #expect(try await tier.get(k) == nil)
        #expect(tier.statistics.unexpectedFiles == 1)
        #expect(fileType(entryPath(dir.root, k)) == nil, "the link was removed")
        #expect(readFile(victim) == victimBytes, "its target was not touched")
    }
}
