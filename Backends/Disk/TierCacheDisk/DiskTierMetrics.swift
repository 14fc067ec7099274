#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import TierCache

extension DiskTier {
    /// What this instance has done since it was created (this process only).
    public struct Statistics: Sendable, Hashable {
        /// Reads that returned an entry.
        public var hits = 0
        /// Reads that found nothing usable (absent, corrupt, expired, for another key, not a
        /// regular file, a refused root, or failed).
        public var misses = 0
        /// Files found corrupt or truncated (and removed).
        public var corrupt = 0
        /// Reads that failed with an I/O error, or found the root refused or unusable.
        public var readErrors = 0
        /// Entries written.
        public var writes = 0
        /// Writes skipped because of an error, a lock held past ``Configuration/lockWait``, a
        /// refused root, or because the entry was too large.
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
        /// Things the tier did not make found where an entry file or one of its folders belongs
        /// (a symbolic link, a FIFO, a socket, a device, a folder in place of a file): never
        /// followed, opened for reading or read; a read of one is a miss. Removed (the name
        /// only) when they sit inside the verified root, except folders of another user's.
        public var unexpectedFiles = 0
        /// Operations that gave up waiting for a lock another process held past
        /// ``Configuration/lockWait``: writes skipped (also in ``writeErrors``), removes,
        /// evictions and clean-ups left for later.
        public var lockTimeouts = 0
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

    /// A read while the root is refused or could not be opened: a miss and a read error; logged
    /// when the root could not be opened (a refusal was logged once, when it was made).
    func noteReadWithoutRoot(_ error: DiskRootError) {
        stats.withLock {
            $0.readErrors += 1
            $0.misses += 1
        }
        metrics.readErrors.increment()
        metrics.misses.increment()
        if !error.isRefusal {
            logger.warning("disk tier: read failed, treated as a miss", metadata: ["tier": "\(name)", "error": "\(error)"])
        }
    }

    /// A write skipped while the root is refused (reason `rootRefused`, not logged again) or
    /// could not be opened (the `errno`'s reason, logged).
    func noteWriteWithoutRoot(_ key: CacheKey, _ error: DiskRootError) {
        if error.isRefusal {
            stats.withLock { $0.writeErrors += 1 }
            metrics.writeError(reason: "rootRefused")
        } else {
            noteWriteError(reason: IOFailure(operation: "open", path: root, errno: error.errno).reason, "write of \(key) skipped: \(error)")
        }
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

    /// A corrupt entry file found by a read: counted, logged, and removed if it is still the
    /// file `st` describes (one attempt at the lock: a later read or a sweep removes it if not).
    func noteCorrupt(_ handle: RootHandle, _ namespace: String, _ fingerprint: Fingerprint, _ st: stat, _ why: String) {
        var deadline = LockDeadline.once
        removeIfUnchanged(handle, namespace, fingerprint, st, until: &deadline)
        stats.withLock {
            $0.corrupt += 1
            $0.misses += 1
        }
        metrics.corrupt.increment()
        metrics.misses.increment()
        logger.warning("disk tier: corrupt file removed", metadata: [
            "tier": "\(name)", "path": "\(entryPath(namespace, fingerprint))", "reason": "\(why)",
        ])
    }

    /// Something the tier did not make where one of its files or folders belongs (counted and
    /// logged; the caller says what it did with it).
    func noteUnexpected(_ path: String, _ what: String) {
        stats.withLock { $0.unexpectedFiles += 1 }
        metrics.unexpectedFiles.increment()
        logger.warning("disk tier: unexpected file", metadata: ["tier": "\(name)", "path": "\(path)", "found": "\(what)"])
    }

    /// An operation that gave up waiting for a lock: counted, and logged with `what` it left
    /// undone (nil: the caller logs it).
    func noteLockTimeout(_ failure: IOFailure, _ what: String?) {
        stats.withLock { $0.lockTimeouts += 1 }
        metrics.lockTimeouts.increment()
        guard let what else { return }
        logger.warning("disk tier: lock held by another process; \(what)", metadata: [
            "tier": "\(name)", "path": "\(failure.path)", "waited": "\(configuration.lockWait)",
        ])
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
    static let unexpectedFilesLabel = "tiercache_disk_unexpected_files_total"
    static let lockTimeoutsLabel = "tiercache_disk_lock_timeouts_total"

    let tier: String
    let factory: any MetricsFactory
    let hits: Counter
    let misses: Counter
    let corrupt: Counter
    let readErrors: Counter
    let evictions: Counter
    let unexpectedFiles: Counter
    let lockTimeouts: Counter

    init(tier: String, factory: any MetricsFactory) {
        self.tier = tier
        self.factory = factory
        let dimensions = [("tier", tier)]
        hits = Counter(label: Self.hitsLabel, dimensions: dimensions, factory: factory)
        misses = Counter(label: Self.missesLabel, dimensions: dimensions, factory: factory)
        corrupt = Counter(label: Self.corruptLabel, dimensions: dimensions, factory: factory)
        readErrors = Counter(label: Self.readErrorsLabel, dimensions: dimensions, factory: factory)
        evictions = Counter(label: Self.evictionsLabel, dimensions: dimensions, factory: factory)
        unexpectedFiles = Counter(label: Self.unexpectedFilesLabel, dimensions: dimensions, factory: factory)
        lockTimeouts = Counter(label: Self.lockTimeoutsLabel, dimensions: dimensions, factory: factory)
    }

    /// Write errors carry a `reason` dimension too (`ENOSPC`, `EACCES`, `tooLarge`,
    /// `lockTimeout`, `rootRefused`, …).
    func writeError(reason: String) {
        Counter(label: Self.writeErrorsLabel, dimensions: [("tier", tier), ("reason", reason)], factory: factory).increment()
    }
}
