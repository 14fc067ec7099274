#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import TierCache

extension DiskTier {
    /// How a ``DiskTier`` stores entries and how much room it may take.
    public struct Configuration: Sendable {
        /// The tier's name in logs and in the `tier` dimension of metrics.
        public var name: String
        /// The folder holding the tier: ``defaultRoot`` (`/tmp/tiercache-<uid>`) unless set.
        /// Checked on first use: it must be a folder (not a symbolic link), owned by this
        /// process's effective user and not writable by its group or others; it is created 0700
        /// (with missing parents) if it does not exist. A root that fails the check is refused
        /// (``DiskTier/rootRefusal``, ``DiskRootError``): every read is then a miss and every
        /// write is skipped, counted, while the rest of a chain works on.
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
        /// How long a write, a remove, an eviction or a sweep waits for a lock another process
        /// holds (a shard folder's, or the root's `usage` file's) before it skips that work and
        /// counts it (``DiskTier/Statistics/lockTimeouts``): non-blocking attempts with jittered
        /// pauses, so a process stopped while it holds a lock (SIGSTOP, a paused container, a
        /// debugger) delays the others by at most this much per lock. A read takes no lock; the
        /// clean-ups it makes on the way (removing a corrupt or expired file) try once. Keep it
        /// well under the chain's write deadline (1 s for a local tier).
        public var lockWait: Duration

        /// The default root: `/tmp/tiercache-<uid>`, one per effective user, so that users of a
        /// shared machine never share (or fight over) one folder. Not `$XDG_RUNTIME_DIR`: the
        /// library reads no environment variables (an application may pass
        /// `root: env["XDG_RUNTIME_DIR"].map { $0 + "/tiercache" }` itself), and that folder is
        /// a small memory-backed one that goes at logout (docs/disk-tier.md, "The root").
        public static var defaultRoot: String { "/tmp/tiercache-\(geteuid())" }

        /// Creates a configuration; every argument has a default.
        public init(
            name: String = "disk",
            root: String = Configuration.defaultRoot,
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
            keptOpenFileMaxSize: Int = 128 << 10,
            lockWait: Duration = .milliseconds(200)
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
            self.lockWait = lockWait
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
}
