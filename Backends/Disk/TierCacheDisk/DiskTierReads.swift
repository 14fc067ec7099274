#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Metrics
import Synchronization
import TierCache

extension DiskTier {
    // MARK: - Reading (on the pool)

    func readEntry(_ key: CacheKey) -> CacheEntry? {
        // CacheKey derives its fingerprint on each access: once per operation.
        let fingerprint = Fingerprint(key)
        var handle: RootHandle
        switch verifiedRoot() {
        case .success(let verified): handle = verified
        case .failure(let error):
            noteReadWithoutRoot(error)
            return nil
        }
        var opened = openEntry(handle, key.namespace, fingerprint)
        if case .success(.absent) = opened, !handle.isLinked {
            // The root was removed: check its path again (another root may be there) and look once more.
            switch recheckRoot(replacing: handle) {
            case .success(let fresh):
                handle = fresh
                opened = openEntry(fresh, key.namespace, fingerprint)
            case .failure(let error):
                noteReadWithoutRoot(error)
                return nil
            }
        }
        let fd: Int32
        switch opened {
        case .success(.opened(let descriptor)):
            fd = descriptor
        case .success(.notPlain):
            noteLinkOnTheWay(handle, key.namespace, fingerprint)
            return nil
        case .success:
            noteMiss()
            return nil
        case .failure(let error):
            noteReadError(error)
            return nil
        }
        // Closed when the read is done, unless the hit keeps it open for the next reads.
        let file = KeptFiles.File(fd, fileSystem)
        do {
            let st = try fileSystem.status(fd, path: entryPath(key.namespace, fingerprint))
            guard FileSystem.isRegularFile(st) else {
                // A FIFO, socket, device or folder where the entry belongs: opened without
                // waiting (O_NONBLOCK), never read.
                noteNotARegularFile(handle, key.namespace, fingerprint, st)
                return nil
            }
            let size = Int(st.st_size)
            // A file larger than any entry we write cannot be one of ours; do not read it whole.
            guard size <= max(maxEntrySize, 64 << 20) else {
                noteCorrupt(handle, key.namespace, fingerprint, st, "file is \(size) bytes, larger than any entry")
                return nil
            }
            let version = FileVersion(st)
            let now = realTimeMilliseconds()
            let read = index.noteRead(namespace: key.namespace, fingerprint: fingerprint, version: version, now: now, granularity: touchMilliseconds)
            let entry: CacheEntry
            switch try fileSystem.readEntry(
                fd, size: size, key: key, nowait: false, verifiedChecksum: trusted(read.verifiedChecksum),
                path: entryPath(key.namespace, fingerprint))
            {
            case .entry(let decoded, let checksum):
                entry = decoded
                noteVerified(fingerprint, version, checksum, trusted: read.verifiedChecksum, now: now)
            case .bytes(let bytes):
                payloadsHashed.increment()
                do {
                    entry = try CacheEntry(decoding: bytes)
                } catch {
                    noteCorrupt(handle, key.namespace, fingerprint, st, "\(error)")
                    return nil
                }
            case .incomplete:
                noteCorrupt(handle, key.namespace, fingerprint, st, "the file ended before its \(size) bytes")
                return nil
            }
            guard entry.key == key else {
                // Two keys with one 128-bit fingerprint: keep the file, report a miss.
                logger.warning("disk tier: file holds another key", metadata: [
                    "tier": "\(name)", "path": "\(entryPath(key.namespace, fingerprint))",
                ])
                noteMiss()
                return nil
            }
            if !entry.isUsable(at: configuration.clock.now()) {
                var deadline = LockDeadline.once
                removeIfUnchanged(handle, key.namespace, fingerprint, st, until: &deadline)
                forget(namespace: key.namespace, fingerprint: fingerprint)
                stats.withLock { $0.expired += 1 }
                noteMiss()
                return nil
            }
            if read.refresh {
                fileSystem.touch(fd)  // best effort: recency for every process
            }
            if fastReads.load(ordering: .relaxed), keepsFiles.load(ordering: .relaxed), size <= configuration.keptOpenFileMaxSize {
                keptFiles.keep(file, for: fingerprint)  // read from the calling thread next time
            }
            hitsOnThePool.increment()
            metrics.hits.increment()
            return entry
        } catch {
            noteReadError(error)
            return nil
        }
    }

    /// Opens an entry file for reading below the verified root: one `openat2` that refuses
    /// symbolic links on the way, or, where the kernel has none, one folder at a time with
    /// `O_NOFOLLOW`.
    func openEntry(_ handle: RootHandle, _ namespace: String, _ fingerprint: Fingerprint) -> Result<FileSystem.Opened, IOFailure> {
        if opensBeneath.load(ordering: .relaxed) {
            let opened = withRelativeEntryPath(namespace, fingerprint) { path in
                fileSystem.openBeneath(path, in: handle.namespaces, cachedOnly: false)
            }
            guard case .success(.unsupported) = opened else { return opened }
            opensBeneath.store(false, ordering: .relaxed)
        }
        do throws(IOFailure) {
            guard let shard = try openShard(handle, namespace: namespace, shard: fingerprint.shard, create: false) else {
                return .success(.absent)
            }
            defer { fileSystem.close(shard) }
            return .success(try fileSystem.openFile(fingerprint.description, in: shard, path: entryPath(namespace, fingerprint)))
        } catch where error.errno == ELOOP || error.errno == ENOTDIR {
            return .success(.notPlain)
        } catch {
            return .failure(error)
        }
    }

    /// A read found a symbolic link on the way to an entry, or something that is not a folder
    /// where one belongs: a miss. The entry's own name, if that is the link, is removed; a link
    /// or file in place of a folder is left to the next write there or the next sweep, which
    /// replace it.
    func noteLinkOnTheWay(_ handle: RootHandle, _ namespace: String, _ fingerprint: Fingerprint) {
        let path = entryPath(namespace, fingerprint)
        do throws(IOFailure) {
            guard let shard = try openShard(handle, namespace: namespace, shard: fingerprint.shard, create: false) else {
                noteMiss()
                return
            }
            defer { fileSystem.close(shard) }
            if let st = try fileSystem.status(fingerprint.description, in: shard, path: path), !FileSystem.isRegularFile(st) {
                noteNotARegularFile(handle, namespace, fingerprint, st)
                return
            }
            noteMiss()  // replaced by a regular file meanwhile
        } catch where error.errno == ELOOP || error.errno == ENOTDIR {
            noteUnexpected(
                shardPath(namespace, fingerprint.shard), "a symbolic link or file where a folder belongs; left for the next write or sweep")
            noteMiss()
        } catch {
            noteReadError(error)
        }
    }

    /// Something that is not a regular file where an entry belongs (`st` describes it, as a
    /// `fstat` or an `fstatat` that did not follow a link saw it): a miss, counted; removed if it
    /// is still there (one attempt at the lock), unless it is a folder of another user's or not
    /// empty.
    func noteNotARegularFile(_ handle: RootHandle, _ namespace: String, _ fingerprint: Fingerprint, _ st: stat) {
        var deadline = LockDeadline.once
        let removed = removeIfUnchanged(handle, namespace, fingerprint, st, until: &deadline) == .removed
        noteUnexpected(entryPath(namespace, fingerprint), FileSystem.kind(st) + (removed ? "; removed" : "; left in place"))
        noteMiss()
    }

    /// What ``removeIfUnchanged(_:_:_:_:until:)`` did.
    enum Removal {
        case removed
        /// Not removed: gone, replaced, a folder of another user's or not empty, or an error
        /// (logged).
        case kept
        /// Not removed: its shard folder's lock was not had before the deadline (counted).
        case lockTimedOut
    }

    /// Removes an entry's name if it is still what `st` describes (same device and inode), under
    /// its shard folder's lock taken before `deadline`, and takes it off the shared counters when
    /// it was a regular file (an entry the counters hold). A folder is removed only when it is
    /// empty and this user's; a link is removed, never what it points to. A lock not had in time
    /// is counted (``Statistics/lockTimeouts``).
    @discardableResult
    func removeIfUnchanged(
        _ handle: RootHandle, _ namespace: String, _ fingerprint: Fingerprint, _ st: stat, until deadline: inout LockDeadline
    ) -> Removal {
        let name = fingerprint.description
        let path = entryPath(namespace, fingerprint)
        do {
            guard let shard = try openShard(handle, namespace: namespace, shard: fingerprint.shard, create: false) else { return .kept }
            defer { fileSystem.close(shard) }  // closing the folder drops its lock
            try fileSystem.lock(shard, until: &deadline, path: shardPath(namespace, fingerprint.shard))
            guard let now = try fileSystem.status(name, in: shard, path: path), now.st_dev == st.st_dev, now.st_ino == st.st_ino else {
                return .kept
            }
            if FileSystem.isRegularFile(now) {
                return try removeCounted(name, size: UInt64(now.st_size), in: shard, handle, until: &deadline, path: path) ? .removed : .kept
            }
            if FileSystem.isDirectory(now) {
                guard now.st_uid == fileSystem.effectiveUserID() else { return .kept }
                return try fileSystem.remove(name, in: shard, folder: true, path: path) ? .removed : .kept
            }
            return try fileSystem.remove(name, in: shard, path: path) ? .removed : .kept
        } catch let failure as IOFailure where failure.isLockTimeout {
            noteLockTimeout(failure, "left \(path) for later")
            return .lockTimedOut
        } catch {
            logger.warning("disk tier: cannot remove file", metadata: ["tier": "\(self.name)", "path": "\(path)", "error": "\(error)"])
            return .kept
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
    /// I/O needed, a root not checked yet, corrupt or expired files to remove, anything that is
    /// not a regular file, errors) falls back to the blocking pool.
    func readWithoutBlocking(_ key: CacheKey) -> FastRead {
        guard fastReads.load(ordering: .relaxed) else { return .fallBack }
        let fingerprint = Fingerprint(key)
        var st = stat()
        var kept = keepsFiles.load(ordering: .relaxed) ? keptFiles.file(for: fingerprint) : nil
        if let candidate = kept {
            if let status = try? fileSystem.status(candidate.descriptor, path: entryPath(key.namespace, fingerprint)), status.st_nlink > 0 {
                st = status
            } else {
                // Removed or replaced since it was kept. The last close of a removed file frees
                // its blocks, which may wait on the journal: the pool lets go of it.
                if let unlinked = keptFiles.drop(fingerprint, ifItIs: candidate) {
                    pool.execute { withExtendedLifetime(unlinked) {} }
                }
                kept = nil
            }
        }
        let file: KeptFiles.File
        let wasKept = kept != nil
        if let kept {
            file = kept
        } else {
            let namespaces = namespacesForFastReads.load(ordering: .acquiring)
            guard namespaces >= 0 else {
                if case .refused(let error) = rootState.withLock({ $0 }) {
                    noteReadWithoutRoot(error)
                    return .miss
                }
                return .fallBack  // not checked yet (the check may create folders): on the pool
            }
            switch openCached(namespaces, key.namespace, fingerprint) {
            case .opened(let opened): file = KeptFiles.File(opened, fileSystem)
            case .absent:
                // A removed root has no entries: the pool checks its path again.
                guard let st = try? fileSystem.status(namespaces, path: root + "/ns"), st.st_nlink > 0 else { return .fallBack }
                noteMiss()
                return .miss
            case .wouldBlock, .notPlain: return .fallBack
            case .unsupported:
                fastReads.store(false, ordering: .relaxed)
                return .fallBack
            }
            guard let status = try? fileSystem.status(file.descriptor, path: entryPath(key.namespace, fingerprint)),
                  FileSystem.isRegularFile(status)
            else { return .fallBack }
            st = status
        }
        guard let entry = readWithoutBlocking(file, st, key, fingerprint) else {
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

    /// The non-blocking read of the open entry file `file` (`st` its `fstat`): the entry when it
    /// is a clean hit, nil for the blocking path to redo.
    func readWithoutBlocking(_ file: KeptFiles.File, _ st: stat, _ key: CacheKey, _ fingerprint: Fingerprint) -> CacheEntry? {
        guard Int(st.st_size) <= max(maxEntrySize, 64 << 20) else { return nil }
        let version = FileVersion(st)
        let now = realTimeMilliseconds()
        let read = index.noteRead(namespace: key.namespace, fingerprint: fingerprint, version: version, now: now, granularity: touchMilliseconds)
        let entry: CacheEntry
        switch try? fileSystem.readEntry(
            file.descriptor, size: Int(st.st_size), key: key, nowait: true, verifiedChecksum: trusted(read.verifiedChecksum),
            path: entryPath(key.namespace, fingerprint))
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
            // The job holds the file open until it is done.
            let fileSystem = self.fileSystem
            pool.execute { fileSystem.touch(file.descriptor) }
        }
        return entry
    }

    /// Opens an entry file without blocking (`openat2(RESOLVE_CACHED)`), relative to the verified
    /// root's `ns` folder `namespaces`: three path components to resolve, none of them a link.
    func openCached(_ namespaces: Int32, _ namespace: String, _ fingerprint: Fingerprint) -> FileSystem.Opened {
        withRelativeEntryPath(namespace, fingerprint) { path in
            (try? fileSystem.openBeneath(path, in: namespaces, cachedOnly: true).get()) ?? .wouldBlock
        }
    }

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
