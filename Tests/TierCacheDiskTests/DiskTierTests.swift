#if canImport(Glibc)
import Glibc
#endif
import Logging
import Metrics
import MetricsTestKit
import TierCache
import TierCacheDisk
import Testing

@Suite("DiskTier basics")
struct DiskTierBasicTests {
    @Test func putGetRemoveRoundTrip() async throws {
        let dir = TemporaryRoot("basic")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("alpha")
        #expect(try await tier.get(k) == nil)
        let entry = makeEntry(k, size: 5000)
        try await tier.put(entry)
        #expect(try await tier.get(k) == entry)
        let replacement = makeEntry(k, size: 100, seed: 9)
        try await tier.put(replacement)
        #expect(try await tier.get(k) == replacement)
        let usage = try #require(try await tier.usage())
        #expect(usage.entries == 1)
        #expect(usage.bytes == UInt64(replacement.encoded().count))
        try await tier.remove(k)
        #expect(try await tier.get(k) == nil)
        let emptied = try #require(try await tier.usage())
        #expect(emptied.bytes == 0 && emptied.entries == 0)
        let stats = tier.statistics
        #expect(stats.hits == 2)
        #expect(stats.misses == 2)
        #expect(stats.writes == 2)
    }

    @Test func entriesWithAnETagAndTagsRoundTrip() async throws {
        let dir = TemporaryRoot("tagged")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("tagged")
        var entry = makeEntry(k, size: 70_000)
        entry.etag = "\"v1\""
        entry.tags = ["team": "reports", "build": "42"]
        try await tier.put(entry)
        #expect(try await tier.get(k) == entry)
        #expect(try await tier.get(k) == entry)
        #expect(tier.statistics.corrupt == 0)
    }

    @Test func anotherInstanceReplacingAnEntryWithAnotherSizeIsSeen() async throws {
        let dir = TemporaryRoot("resized")
        defer { dir.remove() }
        let reader = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let writer = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("resized")
        let first = makeEntry(k, size: 5000)
        try await reader.put(first)
        #expect(try await reader.get(k) == first)
        // The reader knows the entry's old size; the files it now finds are shorter, then longer.
        for (size, seed) in [(100, UInt8(2)), (9000, 3), (9000, 4)] {
            let replacement = makeEntry(k, size: size, seed: seed)
            try await writer.put(replacement)
            #expect(try await reader.get(k) == replacement)
        }
        let stats = reader.statistics
        #expect(stats.corrupt == 0)
        #expect(stats.hits == 4)
    }

    @Test func layoutPermissionsAndNoTemporaryLeftovers() async throws {
        let dir = TemporaryRoot("layout")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("layout/entry", namespace: "ns-1")
        try await tier.put(makeEntry(k, size: 10))
        let fingerprint = k.fingerprint
        let expected = "\(dir.root)/ns/ns-1/\(fingerprint.prefix(2))/\(fingerprint)"
        let tree = walk(dir.root)
        #expect(tree.files.map(\.path).sorted() == [expected, dir.root + "/usage"].sorted())
        for file in tree.files { #expect(file.mode == 0o600, "\(file.path)") }
        for folder in tree.folders { #expect(folder.mode == 0o700, "\(folder.path)") }
        // The file is exactly the envelope, and it names its key.
        let bytes = try #require(readFile(expected))
        #expect(try CacheEntry(decoding: bytes).key == k)
    }

    @Test func hardExpiredEntryIsAMissAndRemoved() async throws {
        let dir = TemporaryRoot("expiry")
        defer { dir.remove() }
        let clock = TestClock()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, clock: clock))
        let k = try key("short")
        try await tier.put(makeEntry(k, size: 10, freshFor: .seconds(10), now: clock.now()))
        #expect(try await tier.get(k) != nil)
        clock.advance(.seconds(11))
        #expect(try await tier.get(k) == nil)
        #expect(entryFiles(dir.root).isEmpty)
        #expect(tier.statistics.expired == 1)
        #expect(try await tier.usage()?.entries == 0)
    }

    @Test func metricsCarryTheTierDimension() async throws {
        let dir = TemporaryRoot("metrics")
        defer { dir.remove() }
        let metrics = TestMetrics()
        let tier = DiskTier(configuration: .init(name: "disk-a", root: dir.root, maxBytes: 10 << 20), metricsFactory: metrics)
        let k = try key("m")
        _ = try await tier.get(k)
        try await tier.put(makeEntry(k, size: 10))
        _ = try await tier.get(k)
        _ = try await tier.get(k)
        #expect(try metrics.expectCounter("tiercache_tier_hits", [("tier", "disk-a")]).totalValue == 2)
        #expect(try metrics.expectCounter("tiercache_tier_misses", [("tier", "disk-a")]).totalValue == 1)
    }

    @Test func cachedReadsDoNotHandOffToThePool() async throws {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(separator: ".").prefix(2).compactMap { Int($0.prefix { $0.isNumber }) }
        guard parts.count == 2, parts[0] > 5 || (parts[0] == 5 && parts[1] >= 12) else {
            print("skipped: kernel \(release) has no openat2(RESOLVE_CACHED) (5.12+); every read uses the pool")
            return
        }
        let dir = TemporaryRoot("fast")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("hot")
        try await tier.put(makeEntry(k, size: 2000))
        for _ in 0..<10 { #expect(try await tier.get(k)?.payload.count == 2000) }
        let stats = tier.statistics
        #expect(stats.hits == 10)
        #expect(stats.hitsWithoutBlocking >= 9, "a file just written is in the page cache: \(stats)")
    }

    @Test func cancelledTaskDoesNotWrite() async throws {
        let dir = TemporaryRoot("cancel")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("never")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await tier.put(makeEntry(k, size: 10))
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(entryFiles(dir.root).isEmpty)
    }
}

@Suite("DiskTier corruption and odd keys")
struct DiskTierCorruptionTests {
    @Test(arguments: ["flip", "truncate", "empty", "garbage"])
    func corruptFileIsAMissRemovedAndCounted(_ damage: String) async throws {
        let dir = TemporaryRoot("corrupt")
        defer { dir.remove() }
        let metrics = TestMetrics()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20), metricsFactory: metrics)
        let k = try key("victim")
        try await tier.put(makeEntry(k, size: 3000))
        let path = try #require(entryFiles(dir.root).first?.path)
        var bytes = try #require(readFile(path))
        switch damage {
        case "flip": bytes[bytes.count / 2] ^= 0x40
        case "truncate": bytes.removeLast(100)
        case "empty": bytes = []
        default: bytes = Array("not an envelope at all, just text that is long enough to pass".utf8)
        }
        writeFile(path, bytes)
        #expect(try await tier.get(k) == nil)
        #expect(access(path, F_OK) != 0, "the corrupt file is removed")
        #expect(tier.statistics.corrupt == 1)
        #expect(try metrics.expectCounter("tiercache_tier_corrupt", [("tier", "disk")]).totalValue == 1)
        #expect(try await tier.usage()?.entries == 0)
        // The key works again afterwards.
        try await tier.put(makeEntry(k, size: 10))
        #expect(try await tier.get(k)?.payload.count == 10)
    }

    @Test func aVerifiedFileIsNotHashedAgainUntilItChanges() async throws {
        let dir = TemporaryRoot("verified")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("hot")
        try await tier.put(makeEntry(k, size: 5000))
        // A version is trusted only once its change time is settled (past the clock's tick).
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await tier.get(k)?.payload.count == 5000)
        #expect(tier.statistics.payloadsHashed == 1)
        for _ in 0..<3 { #expect(try await tier.get(k)?.payload.count == 5000) }
        #expect(tier.statistics.payloadsHashed == 1, "the same file version is not hashed again")

        // One payload byte changed in place, size unchanged: a new version, hashed, found corrupt.
        let path = try #require(entryFiles(dir.root).first?.path)
        let fd = open(path, O_RDWR)
        #expect(fd >= 0)
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, 2000) == 1)
        byte ^= 0xFF
        #expect(pwrite(fd, &byte, 1, 2000) == 1)
        close(fd)
        #expect(try await tier.get(k) == nil)
        #expect(tier.statistics.corrupt == 1)
        #expect(tier.statistics.payloadsHashed > 1, "the changed file is hashed again")
    }

    @Test func aFileReplacedBySameSizeEntryIsHashedAgain() async throws {
        let dir = TemporaryRoot("replaced")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let other = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let k = try key("hot")
        try await tier.put(makeEntry(k, size: 5000, seed: 1))
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await tier.get(k)?.payload == makeEntry(k, size: 5000, seed: 1).payload)
        #expect(try await tier.get(k)?.payload == makeEntry(k, size: 5000, seed: 1).payload)
        #expect(tier.statistics.payloadsHashed == 1)
        // Another instance (another process, as far as this one knows) renames a new file of the
        // same size over it: a new version, hashed, and its bytes are the ones returned.
        try await other.put(makeEntry(k, size: 5000, seed: 2))
        #expect(try await tier.get(k)?.payload == makeEntry(k, size: 5000, seed: 2).payload)
        #expect(tier.statistics.payloadsHashed == 2)
    }

    @Test func aReadRefreshesAnOldModificationTimeOnce() async throws {
        let dir = TemporaryRoot("touch")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, touchGranularity: .seconds(60)))
        let k = try key("old")
        try await tier.put(makeEntry(k, size: 500))
        let path = try #require(entryFiles(dir.root).first?.path)
        // Ten minutes old: older than the granularity, so a read refreshes it (on the pool).
        var times = [timespec(tv_sec: time(nil) - 600, tv_nsec: 0), timespec(tv_sec: time(nil) - 600, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        func modified() -> Int {
            var st = stat()
            stat(path, &st)
            return st.st_mtim.tv_sec
        }
        for _ in 0..<20 { #expect(try await tier.get(k) != nil) }
        var waited = 0
        while modified() < time(nil) - 60, waited < 200 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        #expect(modified() >= time(nil) - 60, "the read refreshed the file's mtime (its recency for every process)")
        // The refresh made a new version of the file: the next read hashes it again.
        let hashed = tier.statistics.payloadsHashed
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await tier.get(k) != nil)
        #expect(tier.statistics.payloadsHashed == hashed + 1)
    }

    @Test func everyReadHashesEveryRead() async throws {
        let dir = TemporaryRoot("every")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, checksumVerification: .everyRead))
        let k = try key("hot")
        try await tier.put(makeEntry(k, size: 5000))
        try await Task.sleep(for: .milliseconds(50))
        for _ in 0..<3 { #expect(try await tier.get(k)?.payload.count == 5000) }
        #expect(tier.statistics.payloadsHashed == 3)
    }

    @Test func entryForAnotherKeyIsAMissAndKept() async throws {
        let dir = TemporaryRoot("mismatch")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        let a = try key("a")
        let b = try key("b")
        try await tier.put(makeEntry(a, size: 10))
        try await tier.put(makeEntry(b, size: 10))
        // Put b's envelope where a's belongs, as a fingerprint collision would.
        let pathA = dir.root + "/ns/test/\(a.fingerprint.prefix(2))/\(a.fingerprint)"
        let pathB = dir.root + "/ns/test/\(b.fingerprint.prefix(2))/\(b.fingerprint)"
        writeFile(pathA, try #require(readFile(pathB)))
        #expect(try await tier.get(a) == nil)
        #expect(access(pathA, F_OK) == 0)
        #expect(try await tier.get(b)?.key == b)
    }

    @Test func pathTraversalAndOddKeysStayInsideTheRoot() async throws {
        let dir = TemporaryRoot("odd")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        // Namespaces are folder names: traversal and separators are refused by CacheKey.
        for bad in ["..", ".", "../x", "a/b", "x\u{0}y", ""] {
            #expect(throws: TierCacheError.self) { try CacheKey(namespace: bad, name: "n") }
        }
        #expect(throws: TierCacheError.self) { try CacheKey(namespace: "ns", name: "a\u{0}b") }
        #expect(throws: TierCacheError.self) { try CacheKey(namespace: "ns", name: String(repeating: "x", count: 4097)) }
        let names = [
            "../../../../etc/passwd", "/absolute/path", "..", ".", "usage", "../usage", "a/../../b",
            String(repeating: "long/", count: 819) + "x",  // 4096 bytes
            String(repeating: "é", count: 2048),  // 4096 bytes of two-byte UTF-8
            "日本語のキー", "emoji 🗝️ key", "e\u{301}", "\u{e9}", "back\\slash", "space name ",
        ]
        var keys: [CacheKey] = []
        for (index, name) in names.enumerated() {
            let k = try CacheKey(namespace: "odd..ns", name: name)
            keys.append(k)
            try await tier.put(makeEntry(k, size: 50, seed: UInt8(index)))
        }
        for (index, k) in keys.enumerated() {
            let entry = try #require(try await tier.get(k), "\(names[index].prefix(40))")
            #expect(entry.key.name.utf8.elementsEqual(names[index].utf8))
            #expect(entry.payload == makeEntry(k, size: 50, seed: UInt8(index)).payload)
        }
        let files = entryFiles(dir.root)
        #expect(files.count == names.count, "every key, including e+U+0301 and U+00E9, has its own file")
        for file in files {
            #expect(file.path.hasPrefix(dir.root + "/ns/odd..ns/"))
            #expect(file.path.split(separator: "/").last?.count == 32)
        }
        #expect(walk(dir.path).files.count == names.count + 1, "nothing was written outside the root")
    }
}

@Suite("DiskTier budgets and eviction")
struct DiskTierBudgetTests {
    @Test func entryBudgetEvictsLeastRecentlyUsed() async throws {
        let dir = TemporaryRoot("lru")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, maxEntries: 10))
        var keys: [CacheKey] = []
        for i in 0..<10 {
            let k = try key("k\(i)")
            keys.append(k)
            try await tier.put(makeEntry(k, size: 100))
            try await Task.sleep(for: .milliseconds(3))
        }
        // k0 becomes the most recently used.
        #expect(try await tier.get(keys[0]) != nil)
        try await Task.sleep(for: .milliseconds(3))
        try await tier.put(makeEntry(try key("k10"), size: 100))
        let usage = try #require(try await tier.usage())
        #expect(usage.entries <= 10)
        #expect(usage.entries == UInt64(entryFiles(dir.root).count))
        #expect(try await tier.get(keys[0]) != nil, "the entry just read survives")
        #expect(try await tier.get(keys[1]) == nil, "the least recently used is gone")
        #expect(try await tier.get(try key("k10")) != nil, "the newest survives")
        #expect(tier.statistics.evictions >= 1)
    }

    @Test func byteBudgetHoldsAndCountersMatchTheDisk() async throws {
        let dir = TemporaryRoot("bytes")
        defer { dir.remove() }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 200_000, maxEntrySize: 50_000))
        for i in 0..<100 {
            try await tier.put(makeEntry(try key("b\(i)"), size: 9_000 + i * 37))
        }
        let usage = try #require(try await tier.usage())
        let files = entryFiles(dir.root)
        #expect(usage.bytes <= 200_000)
        #expect(usage.bytes == UInt64(files.reduce(0) { $0 + $1.size }))
        #expect(usage.entries == UInt64(files.count))
        #expect(try await tier.get(try key("b99")) != nil)
    }

    @Test func entryCeilingBoundsTheCachesDecompression() throws {
        let dir = TemporaryRoot("ceiling")
        defer { dir.remove() }
        let explicit = DiskTier(configuration: .init(root: dir.root, maxBytes: 400 << 20, maxEntrySize: 48 << 20))
        #expect(explicit.maxEntryBytes == 48 << 20)
        let derived = DiskTier(configuration: .init(root: dir.root, maxBytes: 400 << 20))
        #expect(derived.maxEntryBytes == 100 << 20)
        // The cache takes the larger of its memory budget and the tiers' ceilings.
        let cache = Cache<String>(configuration: .init(memory: .init(maxBytes: 16 << 20)), chain: TierChain([.local(explicit)]))
        #expect(cache.maximumDecompressedSize == 48 << 20)
    }

    @Test func tooLargeEntryIsSkippedAndCounted() async throws {
        let dir = TemporaryRoot("large")
        defer { dir.remove() }
        let metrics = TestMetrics()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 100_000, maxEntrySize: 10_000), metricsFactory: metrics)
        let k = try key("big")
        try await tier.put(makeEntry(k, size: 20_000))
        #expect(try await tier.get(k) == nil)
        #expect(tier.statistics.writeErrors == 1)
        #expect(try metrics.expectCounter("tiercache_tier_write_errors", [("tier", "disk"), ("reason", "tooLarge")]).totalValue == 1)
    }

    @Test func defaultBudgetComesFromFreeSpaceAndIsCapped() throws {
        let dir = TemporaryRoot("default")
        defer { dir.remove() }
        var info = statvfs()
        #expect(statvfs(dir.path, &info) == 0)
        let free = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        let capped = DiskTier(configuration: .init(root: dir.root + "/not/yet/there", maxBytesCap: 1 << 20))
        #expect(capped.maxBytes == min(1 << 20, free / 2))
        let fraction = DiskTier(configuration: .init(root: dir.root, maxBytesCap: .max, freeSpaceFraction: 0.001))
        let expected = Double(free) * 0.001
        #expect(abs(Double(fraction.maxBytes) - expected) < expected * 0.05 + 1_000_000)
    }

    @Test func openingARootScansNothingBeforeTheFirstGet() async throws {
        let dir = TemporaryRoot("open")
        defer { dir.remove() }
        let writer = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        for i in 0..<300 { try await writer.put(makeEntry(try key("o\(i)"), size: 10)) }
        let reader = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20))
        #expect(reader.indexedEntryCount == 0)
        #expect(try await reader.get(try key("o123")) != nil)
        #expect(reader.indexedEntryCount == 1, "the get indexed its own entry and nothing else")
    }

    @Test func evictionFindsEntriesWrittenByAnotherInstance() async throws {
        let dir = TemporaryRoot("scan")
        defer { dir.remove() }
        let first = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, maxEntries: 50))
        for i in 0..<50 { try await first.put(makeEntry(try key("s\(i)"), size: 10)) }
        // A second instance (as another process would) knows none of them; its writes must still
        // bring the shared root back under budget by finding them on disk.
        let second = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, maxEntries: 50))
        for i in 0..<10 { try await second.put(makeEntry(try key("t\(i)"), size: 10)) }
        let usage = try #require(try await second.usage())
        #expect(usage.entries <= 50)
        #expect(usage.entries == UInt64(entryFiles(dir.root).count))
        #expect(second.statistics.evictions >= 10)
        #expect(try await second.get(try key("t9")) != nil, "the newest entry survives")
        #expect(try await second.get(try key("s0")) == nil, "the oldest entry, written by the other instance, is gone")
    }
}

@Suite("DiskTier sweep")
struct DiskTierSweepTests {
    @Test func sweepRemovesExpiredGarbageAndOldTemporaryFiles() async throws {
        let dir = TemporaryRoot("sweep")
        defer { dir.remove() }
        let clock = TestClock()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, temporaryFileMaxAge: .zero, clock: clock))
        for i in 0..<20 {
            try await tier.put(makeEntry(try key("e\(i)"), size: 100, freshFor: .seconds(i < 8 ? 10 : 1000), now: clock.now()))
        }
        // e19's file rots into something that is not an envelope.
        let rotten = try key("e19")
        writeFile(dir.root + "/ns/test/\(rotten.fingerprint.prefix(2))/\(rotten.fingerprint)", Array("garbage".utf8))
        let shard = dir.root + "/ns/test/00"
        mkdir(shard, 0o700)
        writeFile(shard + "/.tmp.00000000000000000000000000000000.1.1", [1, 2, 3])
        writeFile(shard + "/unrelated-file", [1])
        try await Task.sleep(for: .milliseconds(5))
        clock.advance(.seconds(100))
        let result = try await tier.sweep()
        #expect(result.expiredRemoved == 8)
        #expect(result.corruptRemoved == 1)
        #expect(result.temporaryRemoved == 1)
        #expect(result.examined == 20)
        #expect(access(shard + "/unrelated-file", F_OK) == 0, "files the tier does not own are left alone")
        #expect(entryFiles(dir.root).count == 12)
        for i in 8..<19 { #expect(try await tier.get(try key("e\(i)")) != nil) }
        #expect(try await tier.usage()?.entries == 11)
    }

    @Test func backgroundSweeperStopsWhenCancelled() async throws {
        let dir = TemporaryRoot("sweeper")
        defer { dir.remove() }
        let clock = TestClock()
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 10 << 20, clock: clock))
        try await tier.put(makeEntry(try key("x"), size: 10, freshFor: .seconds(1), now: clock.now()))
        clock.advance(.seconds(5))
        let sweeper = Task { await tier.runSweeper(every: .milliseconds(20)) }
        var waited = 0
        while !entryFiles(dir.root).isEmpty, waited < 500 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        sweeper.cancel()
        await sweeper.value
        #expect(entryFiles(dir.root).isEmpty)
    }
}
