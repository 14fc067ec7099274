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
        /// The file version whose payload this process last verified, with its checksum: a read
        /// of that same version needs no XXH64 pass (``DiskTier/ChecksumVerification``).
        var verified: VerifiedFile?
        /// When this process last had the file's mtime refreshed: the refresh runs later on the
        /// pool, and reads until then still see the old mtime; one request per granularity.
        var refreshedAt: Int64 = .min

        /// ``RecencyIndex/noteRead(namespace:fingerprint:version:now:granularity:)`` on a known
        /// record: returns the checksum verified for `version`, if any, and whether to refresh
        /// the mtime; forgets the checksum when the file is another version now or about to be.
        mutating func noteRead(_ version: FileVersion, now: Int64, granularity: Int64) -> (verifiedChecksum: UInt64?, refresh: Bool) {
            // Stores only what changed: on another core, a store would cost a miss of this line.
            let checksum = verified.flatMap { $0.version == version ? $0.checksum : nil }
            let refresh = now - version.modifiedMilliseconds > granularity && refreshedAt < now - granularity
            if refresh { refreshedAt = now }
            if size != UInt64(version.size) { size = UInt64(version.size) }
            if now > lastUse { lastUse = now }
            if verified != nil, refresh || checksum == nil { verified = nil }
            return (checksum, refresh)
        }
    }

    struct VerifiedFile {
        var version: FileVersion
        var checksum: UInt64
    }

    struct Candidate {
        var namespace: String
        var fingerprint: Fingerprint
        var lastUse: Int64
    }

    /// One shard folder to scan: `ns/<namespace>/<shard>`.
    struct ShardRef {
        var namespace: String
        var shard: Int
    }

    /// Records in stripes chosen by fingerprint, each under its own lock: every read updates a
    /// record, and reads on different threads should not queue on one lock. Keyed by fingerprint
    /// alone: it hashes the namespace too, so it is unique across namespaces.
    private final class Stripe: @unchecked Sendable {
        let lock = Lock()
        var records: [Fingerprint: Record] = [:]  // guarded by `lock`
        // Each stripe's object on lines of its own (its reference count is written on every
        // use): 16 bytes of header, 16 of fields and these 96 make 128.
        private let padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    }

    private let stripes: [Stripe] = (0..<16).map { _ in Stripe() }

    @inline(__always)
    private func stripe(_ fingerprint: Fingerprint) -> Stripe {
        stripes[Int(truncatingIfNeeded: fingerprint.low & 15)]
    }

    /// Taken before a stripe's lock when both are held (`nextCandidates`), never after.
    private let lock = Lock()
    // Everything below is guarded by `lock`.
    private var candidates: [Candidate] = []
    private var candidateHead = 0
    private var namespaces: [String]?  // the scan's list, read when a pass starts
    private var cursor = (namespace: 0, shard: 0)
    private var passComplete = false
    private var backgroundStarted = false
    private var evicting = false
    private var evictionRequested = false

    var count: Int { stripes.reduce(0) { total, stripe in total + stripe.lock.withLock { stripe.records.count } } }

    /// Notes that an entry exists and was used at `time` (keeps the later of the two uses).
    /// `time` is the file's modification time or later (a `stat`'s mtime, or the time of a write).
    func record(namespace: String, fingerprint: Fingerprint, size: UInt64, usedAt time: Int64) {
        let stripe = stripe(fingerprint)
        stripe.lock.withLock {
            if let old = stripe.records[fingerprint] {
                if time > old.lastUse || size != old.size {
                    // A write or a scan: the file may be another version now.
                    stripe.records[fingerprint] = Record(namespace: namespace, size: size, lastUse: max(old.lastUse, time))
                }
            } else {
                stripe.records[fingerprint] = Record(namespace: namespace, size: size, lastUse: time)
            }
        }
    }

    /// Notes a read at `now` of `version` of an entry's file (just `fstat`ed), in one locked step:
    /// the entry's size and last use are recorded, and the file's recency is refreshed when its
    /// mtime (`version.modified`) is older than `granularity` milliseconds (once per granularity:
    /// reads before the refresh lands do not ask again).
    /// - Returns: `verifiedChecksum`, the checksum of this very version when this process has
    ///   already verified its payload (nil otherwise: the caller hashes it and, when it verifies,
    ///   calls ``noteVerified(fingerprint:_:)``); and `refresh`, true when the caller should
    ///   refresh the file's mtime (which makes a new version, so the next read hashes it again).
    func noteRead(namespace: String, fingerprint: Fingerprint, version: FileVersion, now: Int64, granularity: Int64)
        -> (verifiedChecksum: UInt64?, refresh: Bool)
    {
        let stripe = stripe(fingerprint)
        return stripe.lock.withLock {
            guard let index = stripe.records.index(forKey: fingerprint) else {
                var record = Record(namespace: namespace, size: UInt64(version.size), lastUse: now)
                let outcome = record.noteRead(version, now: now, granularity: granularity)
                stripe.records[fingerprint] = record
                return outcome
            }
            // Updated in place (one hash lookup, no copy of the record): every read comes here.
            return stripe.records.values[index].noteRead(version, now: now, granularity: granularity)
        }
    }

    /// Records that this process verified the payload of `verified.version` of an entry's file at
    /// `now`; ignored unless the version is settled (``FileVersion/isSettled(now:)``), so that a
    /// change to it cannot go unseen.
    func noteVerified(fingerprint: Fingerprint, _ verified: VerifiedFile, now: Int64) {
        guard verified.version.isSettled(now: now) else { return }
        let stripe = stripe(fingerprint)
        stripe.lock.withLock {
            guard var record = stripe.records[fingerprint], record.size == UInt64(verified.version.size) else { return }
            record.verified = verified
            stripe.records[fingerprint] = record
        }
    }

    /// The recorded last use of an entry, nil when the index does not know it.
    func lastUse(namespace: String, fingerprint: Fingerprint) -> Int64? {
        let stripe = stripe(fingerprint)
        return stripe.lock.withLock { stripe.records[fingerprint]?.lastUse }
    }

    func forget(namespace: String, fingerprint: Fingerprint) {
        let stripe = stripe(fingerprint)
        _ = stripe.lock.withLock { stripe.records.removeValue(forKey: fingerprint) }
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
                    let stripe = stripe(candidate.fingerprint)
                    if stripe.lock.withLock({ stripe.records[candidate.fingerprint]?.lastUse }) == candidate.lastUse {
                        out.append(candidate)
                    }
                }
                if !out.isEmpty || pass == 1 { break }
                // Used up: sort what the index holds now.
                candidates = stripes.flatMap { stripe in
                    stripe.lock.withLock {
                        stripe.records.map { fingerprint, record in
                            Candidate(namespace: record.namespace, fingerprint: fingerprint, lastUse: record.lastUse)
                        }
                    }
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
