#if canImport(Glibc)
import Glibc
#endif
import TierCache
import TierCacheDisk
import Testing

/// Exit code of a `waitpid` status, or nil when the child did not exit normally.
func exitCode(_ status: Int32) -> Int32? {
    (status & 0x7F) == 0 ? (status >> 8) & 0xFF : nil
}

/// Whether `entry` is what the helper writes for its key (see Tests/TierCacheDiskHelper).
func isHelperPayloadIntact(_ entry: CacheEntry) -> Bool {
    let name = entry.key.name
    guard entry.payload.count >= 8 else { return false }
    let generation = UInt64(littleEndian: entry.payload.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    let seed = UInt64(truncatingIfNeeded: name.utf8.reduce(0) { $0 &* 31 &+ Int($1) })
    for index in 0..<(entry.payload.count - 8)
    where entry.payload[8 + index] != UInt8(truncatingIfNeeded: (seed &+ generation &* 7 &+ UInt64(index) &* 13) >> 1) {
        return false
    }
    return true
}

/// An entry in the helper's format (a self-checking payload), written by this process.
func helperEntry(_ key: CacheKey, generation: UInt64, size: Int) -> CacheEntry {
    let seed = UInt64(truncatingIfNeeded: key.name.utf8.reduce(0) { $0 &* 31 &+ Int($1) })
    var bytes: [UInt8] = []
    bytes.appendLE(generation)
    for index in 0..<size { bytes.append(UInt8(truncatingIfNeeded: (seed &+ generation &* 7 &+ UInt64(index) &* 13) >> 1)) }
    return CacheEntry(
        key: key, serializerID: .binary, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 0),
        freshUntil: WallTime(millisecondsSince1970: .max / 2), staleUntil: WallTime(millisecondsSince1970: .max / 2),
        uncompressedLength: UInt64(bytes.count), payload: bytes)
}

@Suite("DiskTier across processes", .serialized)
struct DiskTierProcessTests {
    @Test func survivesWritersKilledAtRandomMoments() async throws {
        let helper = try #require(helperPath(), "tiercache-disk-helper is built next to the test bundle")
        let dir = TemporaryRoot("crash")
        defer { dir.remove() }
        var random = SystemRandomNumberGenerator()
        let kills = 24
        for round in 0..<kills {
            let child = try Child.spawn(helper, ["crash-writer", dir.root, "\(round + 1)"])
            #expect(child.readLine() == "ready")
            usleep(UInt32.random(in: 2_000...60_000, using: &random))
            child.kill(SIGKILL)
            let (status, _) = child.finish()
            #expect((status & 0x7F) == SIGKILL, "round \(round): the child was killed, not exited")
        }
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: 64 << 20, temporaryFileMaxAge: .zero))
        var hits = 0
        for i in 0..<50 {
            if let entry = try await tier.get(try CacheKey(namespace: "crash", name: "c\(i)")) {
                hits += 1
                #expect(isHelperPayloadIntact(entry), "c\(i) reads back intact")
            }
        }
        #expect(hits > 0, "the writers got some entries in")
        #expect(tier.statistics.corrupt == 0, "no reader ever sees a partial file")
        #expect(tier.statistics.readErrors == 0)
        // Killed writers leave temporary files behind; a sweep removes them and finds no damage.
        let result = try await tier.sweep()
        #expect(result.corruptRemoved == 0)
        #expect(walk(dir.root).files.allSatisfy { !$0.path.contains("/.tmp.") })
        // A kill between rename and the counter update can leave the count off by one per kill.
        let usage = try #require(try await tier.usage())
        let files = entryFiles(dir.root)
        #expect(abs(Int(usage.entries) - files.count) <= kills)
        print("crash test: \(kills) kills, \(files.count) entries on disk, \(hits) of 50 keys present, usage \(usage)")
    }

    @Test func twoProcessesAndSeveralTasksShareARoot() async throws {
        let helper = try #require(helperPath(), "tiercache-disk-helper is built next to the test bundle")
        let dir = TemporaryRoot("shared")
        defer { dir.remove() }
        let maxBytes: UInt64 = 300_000
        let maxEntries = 40
        let children = try (1...2).map { seed in
            try Child.spawn(helper, ["hammer", dir.root, "\(seed)", "1000", "\(maxBytes)", "\(maxEntries)"])
        }
        // This process hammers the same keys at the same time.
        let tier = DiskTier(configuration: .init(root: dir.root, maxBytes: maxBytes, maxEntries: maxEntries, maxEntrySize: 64 << 10))
        let bad = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<4 {
                group.addTask {
                    var bad = 0
                    for step in 0..<1000 {
                        let name = "h\((step * 7 + task * 13) % 100)"
                        let k = try CacheKey(namespace: "hammer", name: name)
                        if step % 2 == 0 {
                            let entry = helperEntry(k, generation: UInt64(1000 + task * 10_000 + step), size: (step * 97) % 16_000)
                            try await tier.put(entry)
                        } else if let entry = try await tier.get(k) {
                            if entry.key != k || !isHelperPayloadIntact(entry) { bad += 1 }
                        }
                    }
                    return bad
                }
            }
            var total = 0
            for try await count in group { total += count }
            return total
        }
        for child in children {
            let (status, output) = child.finish()
            #expect(exitCode(status) == 0, "helper: \(output)")
            #expect(output.contains("corrupt=0 bad=0"), "helper: \(output)")
            print("shared-root test: \(output.split(separator: "\n").last ?? "")")
        }
        #expect(bad == 0)
        #expect(tier.statistics.corrupt == 0)
        let usage = try #require(try await tier.usage())
        let files = entryFiles(dir.root)
        let onDisk = UInt64(files.reduce(0) { $0 + $1.size })
        #expect(usage.bytes == onDisk, "the shared counters match the files")
        #expect(usage.entries == UInt64(files.count))
        // Writers that land while an evictor finishes may leave the root a few entries over.
        let slack: UInt64 = 4 * 16_100
        #expect(onDisk <= maxBytes + slack, "\(onDisk) bytes on disk, budget \(maxBytes)")
        #expect(files.count <= maxEntries + 4, "\(files.count) entries on disk, budget \(maxEntries)")
        print("shared-root test: \(files.count) entries, \(onDisk) bytes on disk; budget \(maxEntries) entries, \(maxBytes) bytes")
    }
}
