#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import CTierCacheDisk
import Synchronization
import TierCache

extension DiskTier {
    // MARK: - Reading (on the pool)

    func readEntry(_ key: CacheKey) -> CacheEntry? {
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
    func removeIfUnchanged(path: String, _ st: stat) -> Bool {
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
    enum FastRead {
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
    func readWithoutBlocking(_ key: CacheKey) -> FastRead {
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
    func readWithoutBlocking(_ fd: Int32, _ st: stat, _ key: CacheKey, _ fingerprint: Fingerprint) -> CacheEntry? {
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
    func openCached(_ namespace: String, _ fingerprint: Fingerprint) -> FileSystem.CachedOpen {
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
    func openNamespaceDirectory() -> Int32 {
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
    static let directoryUnopened: Int32 = -1
    static let directoryGone: Int32 = -2

    /// `verifiedChecksum` when the configuration trusts an already verified file version.
    func trusted(_ verifiedChecksum: UInt64?) -> UInt64? {
        configuration.checksumVerification == .oncePerFileVersion ? verifiedChecksum : nil
    }

    /// After a read decoded a plain envelope whose checksum is `checksum`: counts the payload
    /// hash the read made (none when `trusted`, the checksum it was allowed to trust, is that
    /// one) and remembers the version as verified.
    func noteVerified(_ fingerprint: Fingerprint, _ version: FileVersion, _ checksum: UInt64, trusted: UInt64?, now: Int64) {
        guard self.trusted(trusted) != checksum else { return }
        payloadsHashed.increment()
        guard configuration.checksumVerification == .oncePerFileVersion else { return }
        index.noteVerified(fingerprint: fingerprint, RecencyIndex.VerifiedFile(version: version, checksum: checksum), now: now)
    }
}
