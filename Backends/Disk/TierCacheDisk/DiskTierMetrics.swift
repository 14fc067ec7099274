#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization
public import Metrics
import TierCache

extension DiskTier {
    /// What this instance has done since it was created (this process only).
    public struct Statistics: Sendable, Hashable {
        /// Reads that returned an entry.
        public var hits = 0
        /// Reads that found nothing usable (absent, corrupt, expired, for another key, or failed).
        public var misses = 0
        /// Files found corrupt or truncated (and removed).
        public var corrupt = 0
        /// Reads that failed with an I/O error.
        public var readErrors = 0
        /// Entries written.
        public var writes = 0
        /// Writes skipped because of an error or because the entry was too large.
        public var writeErrors = 0
        /// Entries removed to stay within budget.
        public var evictions = 0
        /// Entries removed because they were past their hard expiry.
        public var expired = 0
        /// Hits served on the calling thread from the kernel's caches (no hand-off to the pool).
        public var hitsWithoutBlocking = 0
        /// Reads that hashed an entry's whole payload to verify it (``ChecksumVerification``);
        /// the other hits checked a version of the file verified before.
        public var payloadsHashed = 0
        /// Hits read from a file the tier kept open, with no open or close
        /// (``Configuration/keptOpenFiles``); part of ``hitsWithoutBlocking``.
        public var hitsOnKeptFiles = 0
    }
}

extension DiskTier {
    // MARK: - Accounting

    func noteMiss() {
        stats.withLock { $0.misses += 1 }
        metrics.misses.increment()
    }

    func noteReadError(_ error: any Error) {
        stats.withLock {
            $0.readErrors += 1
            $0.misses += 1
        }
        metrics.readErrors.increment()
        metrics.misses.increment()
        logger.warning("disk tier: read failed, treated as a miss", metadata: ["tier": "\(name)", "error": "\(error)"])
        releaseKeptFilesIfOutOfDescriptors(error)
    }

    /// After a call failed for want of descriptors (`EMFILE`, `ENFILE`), lets go of every kept
    /// file: a cache must not hold what the rest of the process needs. Files are kept again as
    /// reads find them.
    func releaseKeptFilesIfOutOfDescriptors(_ error: any Error) {
        guard let failure = error as? IOFailure, failure.errno == EMFILE || failure.errno == ENFILE else { return }
        let released = keptFiles.dropAll()
        if released > 0 {
            logger.warning("disk tier: out of file descriptors; closed the kept entry files", metadata: [
                "tier": "\(name)", "closed": "\(released)",
            ])
        }
    }

    func noteCorrupt(path: String, _ st: stat, _ why: String) {
        removeIfUnchanged(path: path, st)
        stats.withLock {
            $0.corrupt += 1
            $0.misses += 1
        }
        metrics.corrupt.increment()
        metrics.misses.increment()
        logger.warning("disk tier: corrupt file removed", metadata: ["tier": "\(name)", "path": "\(path)", "reason": "\(why)"])
    }

    func noteWriteError(reason: String, _ message: String) {
        stats.withLock { $0.writeErrors += 1 }
        metrics.writeError(reason: reason)
        logger.warning("disk tier: write skipped", metadata: ["tier": "\(name)", "reason": "\(reason)", "detail": "\(message)"])
    }
}

/// The tier's counters, each with a `tier` dimension.
struct DiskMetrics: Sendable {
    static let hitsLabel = "tiercache_tier_hits"
    static let missesLabel = "tiercache_tier_misses"
    static let corruptLabel = "tiercache_tier_corrupt"
    static let readErrorsLabel = "tiercache_tier_read_errors"
    static let writeErrorsLabel = "tiercache_tier_write_errors"
    static let evictionsLabel = "tiercache_tier_evictions"

    let tier: String
    let factory: any MetricsFactory
    let hits: Counter
    let misses: Counter
    let corrupt: Counter
    let readErrors: Counter
    let evictions: Counter

    init(tier: String, factory: any MetricsFactory) {
        self.tier = tier
        self.factory = factory
        let dimensions = [("tier", tier)]
        hits = Counter(label: Self.hitsLabel, dimensions: dimensions, factory: factory)
        misses = Counter(label: Self.missesLabel, dimensions: dimensions, factory: factory)
        corrupt = Counter(label: Self.corruptLabel, dimensions: dimensions, factory: factory)
        readErrors = Counter(label: Self.readErrorsLabel, dimensions: dimensions, factory: factory)
        evictions = Counter(label: Self.evictionsLabel, dimensions: dimensions, factory: factory)
    }

    /// Write errors carry a `reason` dimension too (`ENOSPC`, `EACCES`, `tooLarge`, …).
    func writeError(reason: String) {
        Counter(label: Self.writeErrorsLabel, dimensions: [("tier", tier), ("reason", reason)], factory: factory).increment()
    }
}
