#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
public import Metrics
import CTierCacheDisk
import Synchronization
public import TierCache

/// A byte tier on a local folder: `/tmp` on AWS Lambda, a persistent cache elsewhere.
///
/// Layout under ``Configuration/root``: `ns/<namespace>/<xx>/<fingerprint>`, where the
/// fingerprint is ``CacheKey/fingerprint`` (32 hex digits) and `xx` its first two digits, plus one
/// `usage` file. No key can name a path outside the root; the key itself is stored in the envelope
/// and compared on read. Files are created 0600 and folders 0700.
///
/// - Writes go to a temporary file in the entry's folder, optionally `fsync`ed, then `rename`d
///   into place: a reader sees the old entry or the new one, never part of one, even if the
///   writer is killed.
/// - Reads verify the envelope and the key; the payload's checksum is recomputed on the first
///   read of each version of a file in this process (``ChecksumVerification``). A corrupt or
///   truncated file is a miss, is removed and counted. An entry past its hard expiry
///   (`staleUntil`) is a miss and is removed.
/// - A byte budget and an entry budget hold across every process sharing the root: the root's
///   `usage` file counts bytes and entries under an advisory `flock`, and the process whose write
///   goes over budget evicts least recently used entries (docs/disk-tier.md).
/// - Opening a root costs the same whatever it holds: nothing is scanned before the first get.
/// - File I/O that may block runs on a ``BlockingPool``, never on Swift's cooperative threads; a
///   read the kernel can serve from its caches without blocking runs on the caller's thread.
/// - The files of entries read often stay open (``Configuration/keptOpenFiles``): a read of
///   one is an `fstat` and a `preadv`, with no `open` or `close`.
///
/// Failures never reach the caller: a write that fails (`ENOSPC`, `EACCES`, `EROFS`, a vanished
/// folder) is skipped, counted and logged; a read that fails is a miss, counted and logged. Only
/// task cancellation is thrown (`CancellationError`, before the I/O starts).
public final class DiskTier: CacheTier {
    /// How a ``DiskTier`` stores entries and how much room it may take.
    public struct Configuration: Sendable {
        /// The tier's name in logs and in the `tier` dimension of metrics.
        public var name: String
        /// The folder holding the tier, created (0700) on first write if missing.
        public var root: String
        /// The byte budget across every process sharing the root; nil sizes it from the
        /// file system: ``freeSpaceFraction`` of the free space, at most ``maxBytesCap``.
        public var maxBytes: UInt64?
        /// The cap on a budget sized from free space (Lambda's `/tmp` is small: 512 MB by default).
        public var maxBytesCap: UInt64
        /// The share of the file system's free space a budget sized from it takes.
        public var freeSpaceFraction: Double
        /// The entry budget across every process sharing the root.
        public var maxEntries: Int
        /// The largest envelope written; larger ones are skipped and counted. nil: a quarter of
        /// the byte budget.
        public var maxEntrySize: Int?
        /// Whether to `fsync` each file and its folder before and after the rename. Off by
        /// default: `/tmp` does not outlive the machine, and atomicity comes from the rename.
        public var fsync: Bool
        /// A read refreshes a file's modification time (its recency for eviction, seen by every
        /// process) when it is older than this; coarser means fewer writes of metadata.
        public var touchGranularity: Duration
        /// ``DiskTier/sweep()`` removes temporary files older than this (left by killed writers).
        public var temporaryFileMaxAge: Duration
        /// The clock that decides hard expiry on reads and in sweeps.
        public var clock: any CacheClock
        /// When reads recompute the payload's checksum (the envelope's other checks are made on
        /// every read whatever this says).
        public var checksumVerification: ChecksumVerification
        /// How many entry files the tier keeps open between reads; 0 keeps none. A read of a kept
        /// file makes two system calls (`fstat`, `preadv`) where a read by name makes four. Once
        /// the slots are full, a file is let in on its second read, over one not read lately.
        /// Only on local file systems (a kept descriptor is trusted while its file still has a
        /// link); every tier of the process together keeps at most an eighth of its open-file
        /// limit (docs/disk-tier.md).
        public var keptOpenFiles: Int
        /// Only files up to this size are kept open. A kept file that another process removes or
        /// replaces keeps its disk space until this process reads that entry again or stops
        /// keeping the file, so `keptOpenFiles` times this bounds the space held that way.
        public var keptOpenFileMaxSize: Int

        /// Creates a configuration; every argument has a default.
        public init(
            name: String = "disk",
            root: String = "/tmp/tiercache",
            maxBytes: UInt64? = nil,
            maxBytesCap: UInt64 = 1 << 30,
            freeSpaceFraction: Double = 0.5,
            maxEntries: Int = 100_000,
            maxEntrySize: Int? = nil,
            fsync: Bool = false,
            touchGranularity: Duration = .seconds(60),
            temporaryFileMaxAge: Duration = .seconds(600),
            clock: any CacheClock = SystemCacheClock(),
            checksumVerification: ChecksumVerification = .oncePerFileVersion,
            keptOpenFiles: Int = 128,
            keptOpenFileMaxSize: Int = 128 << 10
        ) {
            self.name = name
            self.root = root
            self.maxBytes = maxBytes
            self.maxBytesCap = maxBytesCap
            self.freeSpaceFraction = freeSpaceFraction
            self.maxEntries = maxEntries
            self.maxEntrySize = maxEntrySize
            self.fsync = fsync
            self.touchGranularity = touchGranularity
            self.temporaryFileMaxAge = temporaryFileMaxAge
            self.clock = clock
            self.checksumVerification = checksumVerification
            self.keptOpenFiles = keptOpenFiles
            self.keptOpenFileMaxSize = keptOpenFileMaxSize
        }
    }

    /// When a read recomputes the XXH64 checksum over an entry's payload. Every read checks the
    /// envelope's magic, version, lengths, key and expiry, and that the file's stored checksum is
    /// the one verified; what this decides is how often the whole payload is hashed again.
    public enum ChecksumVerification: Sendable, Hashable {
        /// The first read of each version of a file in this process hashes the payload; later
        /// reads of that same version do not. A version is the file's device, inode, size,
        /// modification and change times (`fstat`, made on every read): entry files are never
        /// written in place, and a write to the inode by anyone, or any change of its times,
        /// moves the change time, which no program can set. The tier's own recency refresh
        /// (``Configuration/touchGranularity``) also makes a new version, so a hot entry is hashed
        /// again at least that often. What this does not catch is a change to the bytes that goes
        /// around the file system (a storage fault below the page cache that returns wrong data
        /// without an error). The default: hashing costs as much as reading (docs/disk-tier.md).
        case oncePerFileVersion
        /// Every read hashes the whole payload.
        case everyRead
        // Entries with an ETag or tags take the whole-envelope decode, which always hashes.
    }

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

    /// The root's usage as shared by every process using it.
    public struct Usage: Sendable, Hashable {
        /// Bytes of entry files.
        public var bytes: UInt64
        /// Entry files.
        public var entries: UInt64
    }

    /// What one ``DiskTier/sweep()`` did.
    public struct SweepResult: Sendable, Hashable {
        /// Entry files looked at.
        public var examined = 0
        /// Entries removed because they were past their hard expiry.
        public var expiredRemoved = 0
        /// Files removed because they were not readable envelopes.
        public var corruptRemoved = 0
        /// Leftover temporary files removed.
        public var temporaryRemoved = 0
        /// Bytes freed by the removals.
        public var bytesFreed: UInt64 = 0
    }

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

    let root: String
    private let maxEntrySize: Int
    private let touchMilliseconds: Int64
    private let fileSystem: FileSystem
    private let sharedUsage: SharedUsage
    let index = RecencyIndex()
    private let pool: BlockingPool
    private let logger: Logger
    private let metrics: DiskMetrics
    private let stats = LockedValueBox(Statistics())
    // Counted on every hit, by every thread: not under `stats`' lock, and not on a cache line
    // that the other threads' reads of this object's fields would then miss.
    private let hitsOnThePool = StripedCounter()
    private let hitsWithoutBlocking = StripedCounter()
    private let payloadsHashed = StripedCounter()
    private let hitsOnKeptFiles = StripedCounter()
    // The root's `ns` folder, kept open (O_PATH) for reads: see `openCached(_:_:)`.
    private let namespaceDirectory = Atomic<Int32>(DiskTier.directoryUnopened)
    private let retiredNamespaceDirectory = Atomic<Int32>(-1)
    private let sequence = LockedValueBox<UInt64>(0)
    private let processID = getpid()
    // Cleared for good when the kernel has no openat2(RESOLVE_CACHED) / RWF_NOWAIT.
    private let fastReads = Atomic<Bool>(true)
    private let keptFiles: KeptFiles
    // Set when the kept `ns` folder is opened, if its file system is local (`KeptFiles`).
    private let keepsFiles = Atomic<Bool>(false)

    /// Creates the tier. Nothing is read or created on disk until the first operation (apart from
    /// one `statvfs` when the byte budget is sized from free space), so this is cheap whatever the
    /// root holds, and it never fails: a root that cannot be used makes writes skip and reads miss.
    /// - Parameters:
    ///   - configuration: Where and how much.
    ///   - logger: Where skipped writes, failed reads and corrupt files are logged; defaults to none.
    ///   - metricsFactory: Where counters go; defaults to the bootstrapped `MetricsSystem`.
    public convenience init(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.init(configuration: configuration, logger: logger, metricsFactory: metricsFactory, faults: nil)
    }

    /// Creates the tier with faults injected into its file-system calls (tests).
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
        let budget = configuration.maxBytes ?? Self.budgetFromFreeSpace(root: root, configuration: configuration)
        self.maxBytes = max(budget, 1)
        self.maxEntries = max(configuration.maxEntries, 1)
        self.maxEntrySize = configuration.maxEntrySize ?? Int(clamping: self.maxBytes / 4)
        self.touchMilliseconds = max(0, configuration.touchGranularity.milliseconds)
        self.keptFiles = KeptFiles(capacity: configuration.keptOpenFiles, budget: keptFileBudget)
        self.fileSystem = FileSystem(faults: faults)
        self.sharedUsage = SharedUsage(root: root, fileSystem: fileSystem)
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

    deinit {
        for directory in [namespaceDirectory.load(ordering: .acquiring), retiredNamespaceDirectory.load(ordering: .acquiring)]
        where directory >= 0 {
            close(directory)
        }
    }

    /// How many entries this process's recency index knows (tests: opening a root scans nothing).
    package var indexedEntryCount: Int { index.count }

    /// How many entry files the tier keeps open now (``Configuration/keptOpenFiles``).
    package var keptOpenFileCount: Int { keptFiles.count }

    /// The most entry files the tier keeps open (``Configuration/keptOpenFiles``, within the
    /// budget it shares with the process's other tiers).
    package var keptOpenFileCapacity: Int { keptFiles.capacity }

    /// The root's usage as every process sees it, or nil when the root cannot be read or locked.
    public func usage() async throws -> Usage? {
        let shared = sharedUsage
        return try await pool.run { shared.snapshot().map { Usage(bytes: $0.bytes, entries: $0.entries) } }
    }

    // MARK: - CacheTier

    /// Reads the entry for `key`. Absent, corrupt (removed), hard-expired (removed) or unreadable
    /// files and entries for another key are misses, counted and logged, never thrown.
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
    /// that fails or is too large is skipped, counted (`writeErrors`) and logged, never thrown.
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

    /// Removes the entry for `key`, if any. Failures are logged, never thrown.
    /// - Throws: `CancellationError` only.
    public func remove(_ key: CacheKey) async throws {
        try await pool.run {
            let fingerprint = Fingerprint(key)
            let directory = self.shardPath(key.namespace, fingerprint)
            let path = directory + "/" + fingerprint.description
            do {
                let removed: UInt64? = try self.fileSystem.withDirectoryLock(directory) {
                    guard let st = try self.fileSystem.status(path), try self.fileSystem.removeFile(path) else { return nil }
                    return UInt64(st.st_size)
                }
                if let removed { try self.sharedUsage.withLock { $0.release(removed) } }
                self.forget(namespace: key.namespace, fingerprint: fingerprint)
            } catch let failure as IOFailure where failure.errno == ENOENT {
                // No shard folder: nothing to remove.
            } catch {
                self.logger.warning("disk tier: remove failed", metadata: ["tier": "\(self.name)", "error": "\(error)"])
                self.releaseKeptFilesIfOutOfDescriptors(error)
            }
        }
    }

    // MARK: - Sweep

    /// Removes entries past their hard expiry (read from each file's first 60 bytes with
    /// ``CacheEntry/peekExpiry(_:)``, without reading payloads), files that are not envelopes, and
    /// temporary files older than ``Configuration/temporaryFileMaxAge``. Works one shard folder per
    /// job on the blocking pool, so gets and puts interleave with it.
    /// - Throws: `CancellationError` when cancelled (between shard folders); I/O errors are skipped.
    @discardableResult
    public func sweep() async throws -> SweepResult {
        let namespaceRoot = root + "/ns"
        let fileSystem = self.fileSystem
        let namespaces = try await pool.run { fileSystem.listDirectory(namespaceRoot) }
        var total = SweepResult()
        for namespace in namespaces where !namespace.hasPrefix(".") {
            for shard in 0..<DiskLayout.shardCount {
                let part = try await pool.run { self.sweepShard(namespace: namespace, shard: shard) }
                total.examined += part.examined
                total.expiredRemoved += part.expiredRemoved
                total.corruptRemoved += part.corruptRemoved
                total.temporaryRemoved += part.temporaryRemoved
                total.bytesFreed += part.bytesFreed
            }
        }
        logger.debug("disk tier: sweep done", metadata: [
            "tier": "\(name)", "examined": "\(total.examined)", "expired": "\(total.expiredRemoved)",
            "corrupt": "\(total.corruptRemoved)", "temporary": "\(total.temporaryRemoved)",
        ])
        return total
    }

    /// Sweeps every `interval` until the calling task is cancelled; run it in a task of its own:
    /// `let sweeper = Task { await tier.runSweeper(every: .seconds(300)) }`.
    public func runSweeper(every interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
                try await sweep()
            } catch {
                return
            }
        }
    }

    // MARK: - Paths

    func namespacePath(_ namespace: String) -> String { root + "/ns/" + namespace }

    func shardPath(_ namespace: String, _ fingerprint: Fingerprint) -> String {
        namespacePath(namespace) + "/" + fingerprint.shard
    }

    /// `<root>/ns/<namespace>/<xx>/<fingerprint>`.
    func entryPath(_ namespace: String, _ fingerprint: Fingerprint) -> String {
        let name = fingerprint.description
        return root + "/ns/" + namespace + "/" + name.prefix(2) + "/" + name
    }

    /// Forgets an entry whose file was removed: its record, and its kept descriptor (which would
    /// hold the removed file's disk space).
    private func forget(namespace: String, fingerprint: Fingerprint) {
        index.forget(namespace: namespace, fingerprint: fingerprint)
        keptFiles.drop(fingerprint)
    }

    // MARK: - Reading (on the pool)

    private func readEntry(_ key: CacheKey) -> CacheEntry? {
        // CacheKey derives its fingerprint on each access: once per operation.
        let fingerprint = Fingerprint(key)
        let path = entryPath(key.namespace, fingerprint)
        let fd: Int32
        do {
            guard let opened = try fileSystem.openForRead(path) else {
                noteMiss()
                return nil
            }
            fd = opened
        } catch {
            noteReadError(error)
            return nil
        }
        defer { close(fd) }
        do {
            let st = try fileSystem.status(fd, path: path)
            let size = Int(st.st_size)
            // A file larger than any entry we write cannot be one of ours; do not read it whole.
            guard size <= max(maxEntrySize, 64 << 20) else {
                noteCorrupt(path: path, st, "file is \(size) bytes, larger than any entry")
                return nil
            }
            let version = FileVersion(st)
            let now = realTimeMilliseconds()
            let read = index.noteRead(namespace: key.namespace, fingerprint: fingerprint, version: version, now: now, granularity: touchMilliseconds)
            let entry: CacheEntry
            switch try fileSystem.readEntry(fd, size: size, key: key, nowait: false, verifiedChecksum: trusted(read.verifiedChecksum), path: path) {
            case .entry(let decoded, let checksum):
                entry = decoded
                noteVerified(fingerprint, version, checksum, trusted: read.verifiedChecksum, now: now)
            case .bytes(let bytes):
                payloadsHashed.increment()
                do {
                    entry = try CacheEntry(decoding: bytes)
                } catch {
                    noteCorrupt(path: path, st, "\(error)")
                    return nil
                }
            case .incomplete:
                noteCorrupt(path: path, st, "the file ended before its \(size) bytes")
                return nil
            }
            guard entry.key == key else {
                // Two keys with one 128-bit fingerprint: keep the file, report a miss.
                logger.warning("disk tier: file holds another key", metadata: ["tier": "\(name)", "path": "\(path)"])
                noteMiss()
                return nil
            }
            if !entry.isUsable(at: configuration.clock.now()) {
                removeIfUnchanged(path: path, st)
                forget(namespace: key.namespace, fingerprint: fingerprint)
                stats.withLock { $0.expired += 1 }
                noteMiss()
                return nil
            }
            if read.refresh {
                _ = futimens(fd, nil)  // best effort: recency for every process
            }
            hitsOnThePool.increment()
            metrics.hits.increment()
            return entry
        } catch {
            noteReadError(error)
            return nil
        }
    }

    /// Removes `path` if it is still the file `st` describes (same device and inode), adjusting the
    /// shared counters; another process may have replaced it with a good entry meanwhile.
    @discardableResult
    private func removeIfUnchanged(path: String, _ st: stat) -> Bool {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        do {
            let removed: UInt64? = try fileSystem.withDirectoryLock(directory) {
                guard let now = try fileSystem.status(path), now.st_dev == st.st_dev, now.st_ino == st.st_ino,
                      try fileSystem.removeFile(path) else { return nil }
                return UInt64(now.st_size)
            }
            guard let removed else { return false }
            try sharedUsage.withLock { $0.release(removed) }
            return true
        } catch {
            logger.warning("disk tier: cannot remove file", metadata: ["tier": "\(name)", "path": "\(path)", "error": "\(error)"])
            return false
        }
    }

    /// The outcome of a read that may not block.
    private enum FastRead {
        case hit(CacheEntry)
        case miss
        /// Anything but a clean hit or a clean miss: the blocking path redoes the read in full.
        case fallBack
    }

    /// Serves a read on the calling thread when the kernel can do it from its caches without
    /// blocking: `openat2(RESOLVE_CACHED)` and `preadv2(RWF_NOWAIT)` fail with `EAGAIN` rather than
    /// wait for the disk. A kept file (``KeptFiles``) needs no open: an `fstat` that finds it still
    /// linked, then the read. Only clean hits and clean misses finish here; everything else (disk
    /// I/O needed, corrupt or expired files to remove, errors) falls back to the blocking pool.
    private func readWithoutBlocking(_ key: CacheKey) -> FastRead {
        guard fastReads.load(ordering: .relaxed) else { return .fallBack }
        let fingerprint = Fingerprint(key)
        var st = stat()
        var kept = keepsFiles.load(ordering: .relaxed) ? keptFiles.file(for: fingerprint) : nil
        if let candidate = kept,
           fstat(candidate.descriptor, &st) != 0 || st.st_nlink == 0 || fileSystem.injectsOpenFault(entryPath(key.namespace, fingerprint))
        {
            // Removed or replaced since it was kept. The last close of a removed file frees its
            // blocks, which may wait on the journal: the pool lets go of it.
            if let unlinked = keptFiles.drop(fingerprint, ifItIs: candidate) {
                pool.execute { withExtendedLifetime(unlinked) {} }
            }
            kept = nil
        }
        let file: KeptFiles.File
        let wasKept = kept != nil
        if let kept {
            file = kept
        } else {
            switch openCached(key.namespace, fingerprint) {
            case .opened(let opened): file = KeptFiles.File(opened)
            case .absent:
                noteMiss()
                return .miss
            case .wouldBlock: return .fallBack
            case .unsupported:
                fastReads.store(false, ordering: .relaxed)
                return .fallBack
            }
            guard fstat(file.descriptor, &st) == 0 else { return .fallBack }
        }
        guard let entry = readWithoutBlocking(file.descriptor, st, key, fingerprint) else {
            // The blocking path reads the file by name: stop trusting this descriptor.
            if wasKept { keptFiles.drop(fingerprint, ifItIs: file) }
            return .fallBack
        }
        if wasKept {
            hitsOnKeptFiles.increment()
        } else if Int(st.st_size) <= configuration.keptOpenFileMaxSize, keepsFiles.load(ordering: .relaxed) {
            keptFiles.keep(file, for: fingerprint)
        }
        hitsWithoutBlocking.increment()
        metrics.hits.increment()
        return .hit(entry)
    }

    /// The non-blocking read of the open entry file `fd` (`st` its `fstat`): the entry when it is a
    /// clean hit, nil for the blocking path to redo.
    private func readWithoutBlocking(_ fd: Int32, _ st: stat, _ key: CacheKey, _ fingerprint: Fingerprint) -> CacheEntry? {
        guard Int(st.st_size) <= max(maxEntrySize, 64 << 20) else { return nil }
        let version = FileVersion(st)
        let now = realTimeMilliseconds()
        let read = index.noteRead(namespace: key.namespace, fingerprint: fingerprint, version: version, now: now, granularity: touchMilliseconds)
        let entry: CacheEntry
        switch try? fileSystem.readEntry(
            fd, size: Int(st.st_size), key: key, nowait: true, verifiedChecksum: trusted(read.verifiedChecksum), path: "")
        {
        case .entry(let decoded, let checksum)?:
            entry = decoded
            noteVerified(fingerprint, version, checksum, trusted: read.verifiedChecksum, now: now)
        case .bytes(let bytes)?:
            // An ETag or tags: the full decode. Another key or a corrupt file goes to the blocking
            // path, which says what is wrong and removes it if need be.
            payloadsHashed.increment()
            guard let decoded = try? CacheEntry(decoding: bytes), decoded.key == key else { return nil }
            entry = decoded
        case .incomplete?, nil:
            return nil
        }
        guard entry.isUsable(at: configuration.clock.now()) else { return nil }
        if read.refresh {
            // Updating the modification time may wait on the file system's journal: not here.
            let path = entryPath(key.namespace, fingerprint)
            pool.execute { _ = utimensat(AT_FDCWD, path, nil, 0) }
        }
        return entry
    }

    /// Opens an entry file without blocking (`openat2(RESOLVE_CACHED)`), relative to the root's
    /// `ns` folder, which the tier keeps open: three path components to resolve instead of the
    /// root's whole path. Falls back to the whole path while that folder cannot be opened, and
    /// for good once it was removed (a deleted folder has no links left; a new root may be made
    /// at the same path). Moving a root in use, or renaming folders inside it, is not supported.
    private func openCached(_ namespace: String, _ fingerprint: Fingerprint) -> FileSystem.CachedOpen {
        var directory = namespaceDirectory.load(ordering: .acquiring)
        if directory == Self.directoryUnopened {
            directory = openNamespaceDirectory()
        }
        guard directory >= 0 else {
            return (try? fileSystem.openCached(entryPath(namespace, fingerprint))) ?? .wouldBlock
        }
        // `<namespace>/<xx>/<fingerprint>`, NUL-terminated, built on the stack.
        var namespace = namespace
        let outcome = namespace.withUTF8 { name in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: name.count + 37) { path -> FileSystem.CachedOpen in
                let base = path.baseAddress!
                base.initialize(from: name.baseAddress!, count: name.count)
                let digits = base + name.count + 4
                fingerprint.writeDigits(to: digits)
                base[name.count] = UInt8(ascii: "/")
                base[name.count + 1] = digits[0]
                base[name.count + 2] = digits[1]
                base[name.count + 3] = UInt8(ascii: "/")
                base[name.count + 36] = 0
                return base.withMemoryRebound(to: CChar.self, capacity: name.count + 37) {
                    (try? fileSystem.openCached(relativeTo: directory, path: $0).get()) ?? .wouldBlock
                }
            }
        }
        // A miss, or a lookup the kernel cannot finish from its caches (the one a removed folder
        // gets): is the kept folder still there?
        switch outcome {
        case .absent, .wouldBlock: break
        case .opened, .unsupported: return outcome
        }
        var st = stat()
        if fstat(directory, &st) == 0, st.st_nlink > 0 { return outcome }
        // The folder was removed: every later read takes the whole path. The descriptor stays
        // open until the tier goes (another thread may be using it right now).
        if namespaceDirectory.compareExchange(expected: directory, desired: Self.directoryGone, ordering: .acquiringAndReleasing).exchanged {
            retiredNamespaceDirectory.store(directory, ordering: .releasing)
        }
        return (try? fileSystem.openCached(entryPath(namespace, fingerprint))) ?? .wouldBlock
    }

    /// Opens the root's `ns` folder (read-only, without blocking) and publishes it; returns it, or
    /// ``directoryUnopened`` when it cannot be opened yet (no entry written so far).
    private func openNamespaceDirectory() -> Int32 {
        let opened = ctiercachedisk_openat_cached(AT_FDCWD, root + "/ns", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard opened >= 0 else { return Self.directoryUnopened }
        let local = KeptFiles.isLocalFileSystem(opened)
        let (exchanged, current) = namespaceDirectory.compareExchange(
            expected: Self.directoryUnopened, desired: opened, ordering: .acquiringAndReleasing)
        if exchanged {
            keepsFiles.store(local, ordering: .relaxed)
            if configuration.keptOpenFiles > 0, !local {
                logger.debug("disk tier: root is not on a local file system; no entry file is kept open", metadata: [
                    "tier": "\(name)", "fileSystemType": "\(String(ctiercachedisk_filesystem_type(opened), radix: 16))",
                ])
            }
            return opened
        }
        close(opened)  // another thread opened it first
        return current
    }

    /// `namespaceDirectory` before the folder was opened, and after it was found removed.
    private static let directoryUnopened: Int32 = -1
    private static let directoryGone: Int32 = -2

    /// `verifiedChecksum` when the configuration trusts an already verified file version.
    private func trusted(_ verifiedChecksum: UInt64?) -> UInt64? {
        configuration.checksumVerification == .oncePerFileVersion ? verifiedChecksum : nil
    }

    /// After a read decoded a plain envelope whose checksum is `checksum`: counts the payload
    /// hash the read made (none when `trusted`, the checksum it was allowed to trust, is that
    /// one) and remembers the version as verified.
    private func noteVerified(_ fingerprint: Fingerprint, _ version: FileVersion, _ checksum: UInt64, trusted: UInt64?, now: Int64) {
        guard self.trusted(trusted) != checksum else { return }
        payloadsHashed.increment()
        guard configuration.checksumVerification == .oncePerFileVersion else { return }
        index.noteVerified(fingerprint: fingerprint, RecencyIndex.VerifiedFile(version: version, checksum: checksum), now: now)
    }

    // MARK: - Writing (on the pool)

    private func writeEntry(_ key: CacheKey, _ bytes: [UInt8]) {
        let fingerprint = Fingerprint(key)
        let directory = shardPath(key.namespace, fingerprint)
        let path = directory + "/" + fingerprint.description
        let serial = sequence.withLock { value -> UInt64 in
            value &+= 1
            return value
        }
        let temporary = directory + "/.tmp." + fingerprint.description + "." + String(processID) + "." + String(serial)
        var created = false
        do {
            try writeTemporary(temporary, directory: directory, bytes)
            created = true
            let size = UInt64(bytes.count)
            // The shard folder's lock makes "what did this rename replace" exact across
            // processes; the counters follow under the root's lock, held only for the update.
            let replaced: UInt64? = try fileSystem.withDirectoryLock(directory) {
                let previous = try fileSystem.status(path)
                try fileSystem.renameFile(temporary, path)
                return previous.map { UInt64($0.st_size) }
            }
            created = false
            keptFiles.drop(fingerprint)  // the replaced file: its space goes now, not at the next read
            let counters = try sharedUsage.withLock { counters in
                if let replaced { counters.release(replaced) }
                counters.bytes &+= size
                counters.entries &+= 1
                return counters
            }
            if configuration.fsync { fileSystem.fsyncDirectory(directory) }
            index.record(namespace: key.namespace, fingerprint: fingerprint, size: size, usedAt: realTimeMilliseconds())
            stats.withLock { $0.writes += 1 }
            if counters.bytes > maxBytes || counters.entries > UInt64(maxEntries) {
                evict()
            }
        } catch {
            if created { _ = try? fileSystem.removeFile(temporary) }
            let failure = error as? IOFailure
            noteWriteError(reason: failure?.reason ?? "error", "write of \(key) skipped: \(error)")
            releaseKeptFilesIfOutOfDescriptors(error)
            if let failure, failure.errno == ENOSPC || failure.errno == EDQUOT,
               let used = sharedUsage.snapshot()?.bytes, used > 0 {
                // The file system filled before the budget did: give back a tenth of what the
                // tier holds, so that later writes fit again.
                evict(bytesBelow: used - used / 10)
            }
        }
    }

    /// Creates `temporary` (making its folders if missing) and writes `bytes` to it.
    private func writeTemporary(_ temporary: String, directory: String, _ bytes: [UInt8]) throws(IOFailure) {
        var fd: Int32
        do {
            fd = try fileSystem.createExclusive(temporary)
        } catch {
            // First write to this shard, or the root vanished: make the folders, try once more.
            guard error.errno == ENOENT else { throw error }
            try fileSystem.makeDirectories(directory)
            fd = try fileSystem.createExclusive(temporary)
        }
        var failure: IOFailure?
        failure = bytes.withUnsafeBytes { raw -> IOFailure? in
            do throws(IOFailure) {
                try fileSystem.writeAll(fd, raw, path: temporary)
                return nil
            } catch {
                return error
            }
        }
        if failure == nil, configuration.fsync {
            do { try fileSystem.fsyncFile(fd, path: temporary) } catch { failure = error }
        }
        if close(fd) != 0, failure == nil {
            failure = IOFailure(operation: "close", path: temporary, errno: errno)
        }
        if let failure {
            _ = try? fileSystem.removeFile(temporary)
            throw failure
        }
    }

    // MARK: - Eviction (on the pool)

    /// Removes least recently used entries until the root is at 90% of both budgets. One evictor
    /// per process at a time; a write that finds one running leaves the work to it.
    /// - Parameter bytesBelow: a lower byte target than the budget's, after the file system said
    ///   it is full (`ENOSPC`): the budget was more than the disk could hold.
    private func evict(bytesBelow: UInt64? = nil) {
        guard index.beginEviction() else { return }
        repeat {
            evictOnce(bytesBelow: bytesBelow)
        } while !index.endEviction()
    }

    private func evictOnce(bytesBelow: UInt64?) {
        let byteTarget = min(maxBytes - maxBytes / 10, bytesBelow ?? .max)
        let entryTarget = UInt64(maxEntries - max(1, maxEntries / 10))
        // Evicting from a partial index would pick this process's own recent writes, the only
        // entries it knows: finish the scan pass first (the background scan usually has).
        while !index.isPassComplete, scanStep() {}
        var restarted = false
        var evicted = 0
        defer {
            if evicted > 0 {
                stats.withLock { $0.evictions += evicted }
                metrics.evictions.increment(by: Int64(evicted))
                logger.debug("disk tier: evicted", metadata: ["tier": "\(name)", "count": "\(evicted)"])
            }
        }
        while true {
            let batch = index.nextCandidates(32)
            if batch.isEmpty {
                // The index knows nothing more to evict: scan further (other processes' entries).
                if scanStep() { continue }
                if restarted { return }
                restarted = true
                index.restartPass()
                continue
            }
            for candidate in batch {
                do {
                    let counters = try sharedUsage.withLock { $0 }
                    if counters.bytes <= byteTarget, counters.entries <= entryTarget { return }
                    if let removed = try evictIfUnused(candidate) {
                        try sharedUsage.withLock { $0.release(removed) }
                        evicted += 1
                    }
                } catch {
                    logger.warning("disk tier: eviction stopped", metadata: ["tier": "\(name)", "error": "\(error)"])
                    return
                }
            }
        }
    }

    /// Removes a candidate's file under its shard folder's lock unless another process used it
    /// since the index last looked; returns the bytes freed. Updates the index either way.
    private func evictIfUnused(_ candidate: RecencyIndex.Candidate) throws -> UInt64? {
        let directory = shardPath(candidate.namespace, candidate.fingerprint)
        let path = directory + "/" + candidate.fingerprint.description
        let outcome: (removed: UInt64?, keptAt: Int64?, size: UInt64)
        do {
            outcome = try fileSystem.withDirectoryLock(directory) {
                guard let st = try fileSystem.status(path) else { return (nil, nil, 0) }
                let modified = st.modifiedMilliseconds
                if modified > candidate.lastUse + touchMilliseconds {
                    return (nil, modified, UInt64(st.st_size))  // used or rewritten elsewhere: keep
                }
                return (try fileSystem.removeFile(path) ? UInt64(st.st_size) : nil, nil, 0)
            }
        } catch let failure as IOFailure where failure.errno == ENOENT {
            outcome = (nil, nil, 0)  // the shard folder vanished with its files
        }
        if let keptAt = outcome.keptAt {
            index.record(namespace: candidate.namespace, fingerprint: candidate.fingerprint, size: outcome.size, usedAt: keptAt)
        } else {
            forget(namespace: candidate.namespace, fingerprint: candidate.fingerprint)
        }
        return outcome.removed
    }

    // MARK: - Index scan

    /// Starts the background scan that fills the recency index, once, after the first write.
    private func startBackgroundScan() {
        guard index.claimBackgroundScan() else { return }
        let pool = self.pool
        Task.detached(priority: .background) { [weak self] in
            while true {
                guard let tier = self else { return }
                guard let more = try? await pool.run({ tier.scanStep() }), more else { return }
            }
        }
    }

    /// Scans the next shard folder into the index; false when the current pass is complete.
    @discardableResult
    func scanStep() -> Bool {
        let namespaceRoot = root + "/ns"
        guard let shard = index.claimNextShard(listNamespaces: {
            fileSystem.listDirectory(namespaceRoot).filter { !$0.hasPrefix(".") }.sorted()
        }) else { return false }
        let directory = namespacePath(shard.namespace) + "/" + DiskLayout.shardName(shard.shard)
        for name in fileSystem.listDirectory(directory) {
            guard let fingerprint = Fingerprint(fileName: name), let st = try? fileSystem.status(directory + "/" + name) else { continue }
            index.record(namespace: shard.namespace, fingerprint: fingerprint, size: UInt64(st.st_size), usedAt: st.modifiedMilliseconds)
        }
        return true
    }

    private func sweepShard(namespace: String, shard: Int) -> SweepResult {
        var result = SweepResult()
        let directory = namespacePath(namespace) + "/" + DiskLayout.shardName(shard)
        let now = configuration.clock.now()
        let realNow = realTimeMilliseconds()
        let temporaryAge = configuration.temporaryFileMaxAge.milliseconds
        for name in fileSystem.listDirectory(directory) {
            let path = directory + "/" + name
            if name.hasPrefix(".tmp.") {
                if let st = try? fileSystem.status(path), realNow - st.modifiedMilliseconds > temporaryAge,
                   (try? fileSystem.removeFile(path)) == true {
                    result.temporaryRemoved += 1
                    result.bytesFreed += UInt64(st.st_size)
                }
                continue
            }
            guard let fingerprint = Fingerprint(fileName: name) else { continue }
            result.examined += 1
            guard let fd = try? fileSystem.openForRead(path) else { continue }
            defer { close(fd) }
            guard let st = try? fileSystem.status(fd, path: path),
                  let prefix = try? fileSystem.readPrefix(fd, count: 60, path: path) else { continue }
            if let expiry = CacheEntry.peekExpiry(prefix) {
                guard now >= expiry.staleUntil else { continue }
                if removeIfUnchanged(path: path, st) {
                    result.expiredRemoved += 1
                    result.bytesFreed += UInt64(st.st_size)
                    forget(namespace: namespace, fingerprint: fingerprint)
                }
            } else if removeIfUnchanged(path: path, st) {
                result.corruptRemoved += 1
                result.bytesFreed += UInt64(st.st_size)
                forget(namespace: namespace, fingerprint: fingerprint)
            }
        }
        if result.expiredRemoved + result.corruptRemoved > 0 {
            stats.withLock {
                $0.expired += result.expiredRemoved
                $0.corrupt += result.corruptRemoved
            }
            metrics.corrupt.increment(by: Int64(result.corruptRemoved))
        }
        return result
    }

    // MARK: - Budget

    private static func budgetFromFreeSpace(root: String, configuration: Configuration) -> UInt64 {
        // The root may not exist yet: ask the nearest existing folder above it.
        var path = root
        var info = statvfs()
        while statvfs(path, &info) != 0 {
            guard let slash = path.lastIndex(of: "/"), !path.isEmpty else { return min(configuration.maxBytesCap, 64 << 20) }
            path = slash == path.startIndex ? "/" : String(path[..<slash])
            if path == "/" {
                if statvfs(path, &info) != 0 { return min(configuration.maxBytesCap, 64 << 20) }
                break
            }
        }
        let free = Double(info.f_bavail) * Double(info.f_frsize)
        let share = UInt64(max(0, min(free * configuration.freeSpaceFraction, Double(UInt64.max / 2))))
        return min(configuration.maxBytesCap, share)
    }

    // MARK: - Accounting

    private func noteMiss() {
        stats.withLock { $0.misses += 1 }
        metrics.misses.increment()
    }

    private func noteReadError(_ error: any Error) {
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
    private func releaseKeptFilesIfOutOfDescriptors(_ error: any Error) {
        guard let failure = error as? IOFailure, failure.errno == EMFILE || failure.errno == ENFILE else { return }
        let released = keptFiles.dropAll()
        if released > 0 {
            logger.warning("disk tier: out of file descriptors; closed the kept entry files", metadata: [
                "tier": "\(name)", "closed": "\(released)",
            ])
        }
    }

    private func noteCorrupt(path: String, _ st: stat, _ why: String) {
        removeIfUnchanged(path: path, st)
        stats.withLock {
            $0.corrupt += 1
            $0.misses += 1
        }
        metrics.corrupt.increment()
        metrics.misses.increment()
        logger.warning("disk tier: corrupt file removed", metadata: ["tier": "\(name)", "path": "\(path)", "reason": "\(why)"])
    }

    private func noteWriteError(reason: String, _ message: String) {
        stats.withLock { $0.writeErrors += 1 }
        metrics.writeError(reason: reason)
        logger.warning("disk tier: write skipped", metadata: ["tier": "\(name)", "reason": "\(reason)", "detail": "\(message)"])
    }
}

extension UsageCounters {
    /// Takes one entry of `size` bytes off the counters (saturating at zero).
    mutating func release(_ size: UInt64) {
        bytes = bytes >= size ? bytes - size : 0
        entries = entries > 0 ? entries - 1 : 0
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
