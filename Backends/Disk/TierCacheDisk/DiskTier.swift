#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
public import Metrics
import Synchronization
public import TierCache

/// A byte tier on a local folder: `/tmp` on AWS Lambda, a persistent cache elsewhere.
///
/// Layout under ``Configuration/root`` (by default `/tmp/tiercache-<uid>`):
/// `ns/<namespace>/<xx>/<fingerprint>`, where the fingerprint is ``CacheKey/fingerprint`` (32 hex
/// digits) and `xx` its first two digits, plus one `usage` file. No key can name a path outside
/// the root; the key itself is stored in the envelope and compared on read. Files are created
/// 0600 and folders 0700.
///
/// - The root is checked on first use: a folder, not a symbolic link, owned by this user and not
///   writable by others (``DiskRootError`` says what failed). Everything below it is reached
///   relative to the verified folder's descriptor, never through a symbolic link, and nothing is
///   read that is not a regular file: a link, FIFO or device planted where an entry belongs is a
///   miss (docs/disk-tier.md, "Sharing /tmp with strangers").
/// - Writes go to a temporary file in the entry's folder, optionally `fsync`ed, then `rename`d
///   into place: a reader sees the old entry or the new one, never part of one, even if the
///   writer is killed.
/// - Reads verify the envelope and the key; the payload's checksum is recomputed on the first
///   read of each version of a file in this process (``ChecksumVerification``). A corrupt or
///   truncated file is a miss, is removed and counted. An entry past its hard expiry
///   (`staleUntil`) is a miss and is removed.
/// - A byte budget and an entry budget hold across every process sharing the root: the root's
///   `usage` file counts bytes and entries under an advisory `flock`, and the process whose write
///   goes over budget evicts least recently used entries (docs/disk-tier.md). Locks are waited
///   for at most ``Configuration/lockWait``; reads take none.
/// - Opening a root costs the same whatever it holds: nothing is scanned before the first get.
/// - File I/O that may block runs on a ``BlockingPool``, never on Swift's cooperative threads; a
///   read the kernel can serve from its caches without blocking runs on the caller's thread.
/// - The files of entries read often stay open (``Configuration/keptOpenFiles``): a read of
///   one is an `fstat` and a `preadv`, with no `open` or `close`.
///
/// Failures never reach the caller: a write that fails (`ENOSPC`, `EACCES`, `EROFS`, a vanished
/// folder, a lock held too long, a refused root) is skipped, counted and logged; a read that
/// fails is a miss, counted and logged. Only task cancellation is thrown (`CancellationError`,
/// before the I/O starts); ``checkRoot()`` throws the root's ``DiskRootError`` for callers that
/// want to know at start-up.
///
/// The code is split by concern: DiskTierConfiguration.swift, DiskRoot.swift (the root check),
/// DiskTierReads.swift, DiskTierWrites.swift, DiskTierEviction.swift, DiskTierIndexScan.swift,
/// DiskTierSweep.swift, DiskTierBudget.swift, DiskTierMetrics.swift, and FileSystem.swift (every
/// system call the tier makes).
public final class DiskTier: CacheTier {
    /// The tier's name in logs and metrics.
    public let name: String
    /// The configuration the tier was created with.
    public let configuration: Configuration
    /// The byte budget in force (``Configuration/maxBytes`` or sized from free space).
    public let maxBytes: UInt64
    /// The entry budget in force.
    public let maxEntries: Int
    /// The largest envelope written (``Configuration/maxEntrySize`` or a quarter of the byte
    /// budget); ``Cache`` derives its decompression ceiling from it.
    public var maxEntryBytes: Int? { maxEntrySize }

    /// The configured root without trailing slashes.
    let root: String
    let maxEntrySize: Int
    let touchMilliseconds: Int64
    let fileSystem: FileSystem
    let sharedUsage: SharedUsage
    let index = RecencyIndex()
    let pool: BlockingPool
    let logger: Logger
    let metrics: DiskMetrics
    let stats = LockedValueBox(Statistics())
    // Counted on every hit, by every thread: not under `stats`' lock, and not on a cache line
    // that the other threads' reads of this object's fields would then miss.
    let hitsOnThePool = StripedCounter()
    let hitsWithoutBlocking = StripedCounter()
    let payloadsHashed = StripedCounter()
    let hitsOnKeptFiles = StripedCounter()
    /// The root: unchecked, verified and open, or refused (DiskTierRoot.swift).
    let rootState = LockedValueBox<RootState>(.unchecked)
    /// Held while the root is checked, so that two threads do not check it at once.
    let rootCheck = Lock()
    /// The checked root's `ns` folder, for the calling-thread read path, which then takes no
    /// lock (-1 until the root is checked, and for good once it was replaced too often). The
    /// handle that owns it, and every handle replaced since, stays open until the tier goes:
    /// a descriptor read here is never closed (and its number reused) under a reader.
    let namespacesForFastReads = Atomic<Int32>(-1)
    /// Handles replaced after their root was removed (guarded by `rootCheck`).
    nonisolated(unsafe) var replacedRoots: [RootHandle] = []
    let sequence = LockedValueBox<UInt64>(0)
    let processID = getpid()
    // Cleared for good when the kernel has no openat2(RESOLVE_CACHED) / RWF_NOWAIT.
    let fastReads = Atomic<Bool>(true)
    // Cleared for good when the kernel has no openat2 at all: folders are then walked one at a time.
    let opensBeneath = Atomic<Bool>(true)
    let keptFiles: KeptFiles
    // Set when the root is verified, if its file system is local (`KeptFiles`).
    let keepsFiles = Atomic<Bool>(false)

    /// Creates the tier. Nothing is read or created on disk until the first operation (apart from
    /// one `statvfs` when the byte budget is sized from free space), so this is cheap whatever the
    /// root holds, and it never fails: a root that cannot be used makes writes skip and reads miss
    /// (``checkRoot()`` says why).
    /// - Parameters:
    ///   - configuration: Where and how much.
    ///   - logger: Where skipped writes, failed reads, corrupt files and a refused root are
    ///     logged; defaults to none.
    ///   - metricsFactory: Where counters go; defaults to the bootstrapped `MetricsSystem`.
    public convenience init(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.init(configuration: configuration, logger: logger, metricsFactory: metricsFactory, faults: nil)
    }

    /// Creates the tier with faults injected into its system calls (tests).
    package init(
        configuration: Configuration,
        logger: Logger,
        metricsFactory: (any MetricsFactory)?,
        faults: DiskFaults?,
        pool: BlockingPool = .shared,
        keptFileBudget: KeptFileBudget = .process
    ) {
        var root = configuration.root
        while root.count > 1, root.hasSuffix("/") { root.removeLast() }
        self.root = root
        self.name = configuration.name
        self.configuration = configuration
        self.fileSystem = FileSystem(faults: faults)
        let budget = configuration.maxBytes ?? Self.budgetFromFreeSpace(root: root, configuration: configuration, fileSystem: fileSystem)
        self.maxBytes = max(budget, 1)
        self.maxEntries = max(configuration.maxEntries, 1)
        self.maxEntrySize = configuration.maxEntrySize ?? Int(clamping: self.maxBytes / 4)
        self.touchMilliseconds = max(0, configuration.touchGranularity.milliseconds)
        self.keptFiles = KeptFiles(capacity: configuration.keptOpenFiles, budget: keptFileBudget)
        self.sharedUsage = SharedUsage(fileSystem: fileSystem)
        self.pool = pool
        self.logger = logger
        self.metrics = DiskMetrics(tier: configuration.name, factory: metricsFactory ?? MetricsSystem.factory)
    }

    /// What this instance has done so far.
    public var statistics: Statistics {
        var statistics = stats.withLock { $0 }
        statistics.hitsWithoutBlocking = hitsWithoutBlocking.value
        statistics.hits = hitsOnThePool.value + statistics.hitsWithoutBlocking
        statistics.payloadsHashed = payloadsHashed.value
        statistics.hitsOnKeptFiles = hitsOnKeptFiles.value
        return statistics
    }

    /// How many entries this process's recency index knows (tests: opening a root scans nothing).
    package var indexedEntryCount: Int { index.count }

    /// How many entry files the tier keeps open now (``Configuration/keptOpenFiles``).
    package var keptOpenFileCount: Int { keptFiles.count }

    /// The most entry files the tier keeps open (``Configuration/keptOpenFiles``, within the
    /// budget it shares with the process's other tiers).
    package var keptOpenFileCapacity: Int { keptFiles.capacity }

    // MARK: - CacheTier

    /// Reads the entry for `key`. Absent, corrupt (removed), hard-expired (removed) or unreadable
    /// files, anything that is not a regular file, entries for another key and a refused root are
    /// misses, counted and logged, never thrown.
    /// - Throws: `CancellationError` only, when cancelled before the read started.
    public func get(_ key: CacheKey) async throws -> CacheEntry? {
        try Task.checkCancellation()
        switch readWithoutBlocking(key) {
        case .hit(let entry): return entry
        case .miss: return nil
        case .fallBack: return try await pool.run { self.readEntry(key) }
        }
    }

    /// Writes `entry`, replacing any previous one, then evicts if the root is over budget. A write
    /// that fails, is too large, finds its locks held past ``Configuration/lockWait`` or finds the
    /// root refused is skipped, counted (`writeErrors`) and logged, never thrown.
    /// - Throws: `CancellationError` only, when cancelled before the write started.
    public func put(_ entry: CacheEntry) async throws {
        let bytes = entry.encoded()
        guard bytes.count <= maxEntrySize else {
            noteWriteError(reason: "tooLarge", "entry \(entry.key) is \(bytes.count) bytes; the limit is \(maxEntrySize)")
            return
        }
        let key = entry.key
        try await pool.run { self.writeEntry(key, bytes) }
        startBackgroundScan()
    }

    /// Removes the entry for `key`, if any. Failures (a lock held past
    /// ``Configuration/lockWait`` among them) are counted and logged, never thrown.
    /// - Throws: `CancellationError` only.
    public func remove(_ key: CacheKey) async throws {
        try await pool.run { self.removeEntry(key) }
    }
}
