import TierCache

/// This process's view of which entries exist and when each was last used, for eviction.
///
/// It starts empty (opening a root costs the same whatever it holds) and fills from three
/// sources: entries this process writes or reads, and an incremental scan of the root one shard
/// folder at a time, run in the background after the first write or on demand by an eviction that
/// has run out of candidates. Recency across processes travels through file modification times:
/// a read refreshes a file's mtime when it is older than the configured granularity, and the
/// scan and the evictor read mtimes.
final class RecencyIndex: @unchecked Sendable {
    struct Record {
        var namespace: String
        var size: UInt64
        var lastUse: Int64
        /// A time the file's modification time is known to be at or after (from a `stat`, this
        /// process's write or its last refresh of the mtime): a read whose entry has a recent one
        /// needs neither a `fstat` nor a refresh.
        var modifiedAtLeast: Int64
    }

    struct Candidate {
        var namespace: String
        var fingerprint: String
        var lastUse: Int64
    }

    /// One shard folder to scan: `ns/<namespace>/<shard>`.
    struct ShardRef {
        var namespace: String
        var shard: Int
    }

    private let lock = Lock()
    // Everything below is guarded by `lock`.
    // Keyed by fingerprint alone: it hashes the namespace too, so it is unique across namespaces.
    private var records: [String: Record] = [:]
    private var candidates: [Candidate] = []
    private var candidateHead = 0
    private var namespaces: [String]?  // the scan's list, read when a pass starts
    private var cursor = (namespace: 0, shard: 0)
    private var passComplete = false
    private var backgroundStarted = false
    private var evicting = false
    private var evictionRequested = false

    var count: Int { lock.withLock { records.count } }

    /// Notes that an entry exists and was used at `time` (keeps the later of the two uses).
    /// `time` is the file's modification time or later (a `stat`'s mtime, or the time of a write).
    func record(namespace: String, fingerprint: String, size: UInt64, usedAt time: Int64) {
        lock.withLock {
            if let old = records[fingerprint] {
                if time > old.lastUse || size != old.size {
                    records[fingerprint] = Record(
                        namespace: namespace, size: size, lastUse: max(old.lastUse, time),
                        modifiedAtLeast: max(old.modifiedAtLeast, time))
                }
            } else {
                records[fingerprint] = Record(namespace: namespace, size: size, lastUse: time, modifiedAtLeast: time)
            }
        }
    }

    /// What a read may assume before looking at the file: its size when this process last saw
    /// it, and a time its mtime is at or after; nil when the index does not know the entry.
    func readHint(fingerprint: String) -> (size: UInt64, modifiedAtLeast: Int64)? {
        lock.withLock { records[fingerprint].map { ($0.size, $0.modifiedAtLeast) } }
    }

    /// Notes a hit at `now` on a file of `size` bytes whose mtime is `modified` when the reader
    /// looked (`fstat`), or unknown (nil: the index's bound stands in). Returns true when the
    /// mtime is older than `granularity` (or unknown altogether): the caller refreshes it, and the
    /// index counts it as refreshed.
    func noteHit(namespace: String, fingerprint: String, size: UInt64, now: Int64, modified: Int64?, granularity: Int64) -> Bool {
        lock.withLock {
            let old = records[fingerprint]
            guard let known = modified ?? old?.modifiedAtLeast else {
                records[fingerprint] = Record(namespace: namespace, size: size, lastUse: now, modifiedAtLeast: now)
                return true
            }
            let refresh = now - known > granularity
            records[fingerprint] = Record(
                namespace: namespace, size: size, lastUse: max(old?.lastUse ?? now, now),
                modifiedAtLeast: refresh ? now : known)
            return refresh
        }
    }

    /// The recorded last use of an entry, nil when the index does not know it.
    func lastUse(namespace: String, fingerprint: String) -> Int64? {
        lock.withLock { records[fingerprint]?.lastUse }
    }

    func forget(namespace: String, fingerprint: String) {
        _ = lock.withLock { records.removeValue(forKey: fingerprint) }
    }

    /// Returns true once: the caller starts the background scan.
    func claimBackgroundScan() -> Bool {
        lock.withLock {
            if backgroundStarted { return false }
            backgroundStarted = true
            return true
        }
    }

    /// Only one evictor per process at a time; returns false when another is running, which is
    /// then asked to go round once more (so a write that lands as it finishes is not missed).
    func beginEviction() -> Bool {
        lock.withLock {
            if evicting {
                evictionRequested = true
                return false
            }
            evicting = true
            return true
        }
    }

    /// Ends an eviction; false when another write asked for one meanwhile (the caller goes again).
    func endEviction() -> Bool {
        lock.withLock {
            if evictionRequested {
                evictionRequested = false
                return false
            }
            evicting = false
            return true
        }
    }

    /// The next eviction candidates, least recently used first. A candidate whose record changed
    /// since the list was sorted is skipped; the list is rebuilt when used up. Empty when the index
    /// knows no entries.
    func nextCandidates(_ limit: Int) -> [Candidate] {
        lock.withLock {
            var out: [Candidate] = []
            for pass in 0..<2 {
                while out.count < limit, candidateHead < candidates.count {
                    let candidate = candidates[candidateHead]
                    candidateHead += 1
                    if let record = records[candidate.fingerprint],
                       record.lastUse == candidate.lastUse {
                        out.append(candidate)
                    }
                }
                if !out.isEmpty || pass == 1 { break }
                // Used up: sort what the index holds now.
                candidates = records.map { fingerprint, record in
                    Candidate(namespace: record.namespace, fingerprint: fingerprint, lastUse: record.lastUse)
                }
                candidates.sort { $0.lastUse < $1.lastUse }
                candidateHead = 0
            }
            return out
        }
    }

    /// Claims the next shard folder of the current scan pass; nil when the pass is complete.
    /// `listNamespaces` (one `readdir`) is called under the index's lock when a pass starts.
    func claimNextShard(listNamespaces: () -> [String]) -> ShardRef? {
        lock.withLock {
            if passComplete { return nil }
            if namespaces == nil { namespaces = listNamespaces() }
            let list = namespaces!
            guard cursor.namespace < list.count else {
                passComplete = true
                return nil
            }
            let ref = ShardRef(namespace: list[cursor.namespace], shard: cursor.shard)
            cursor.shard += 1
            if cursor.shard == DiskLayout.shardCount {
                cursor = (cursor.namespace + 1, 0)
            }
            return ref
        }
    }

    /// Whether the current scan pass has visited every shard folder.
    var isPassComplete: Bool { lock.withLock { passComplete } }

    /// Starts a new scan pass (to find entries other processes wrote since the last one).
    func restartPass() {
        lock.withLock {
            namespaces = nil
            cursor = (0, 0)
            passComplete = false
        }
    }
}

/// Where files live under a root.
enum DiskLayout {
    /// Shard folders per namespace: the first two hex digits of the fingerprint.
    static let shardCount = 256

    static func shardName(_ index: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[index >> 4], digits[index & 15]], as: UTF8.self)
    }
}
