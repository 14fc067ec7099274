#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import TierCache

extension DiskTier {
    // MARK: - Writing (on the pool)

    func writeEntry(_ key: CacheKey, _ bytes: [UInt8]) {
        let fingerprint = Fingerprint(key)
        let handle: RootHandle
        switch verifiedRoot() {
        case .success(let verified): handle = verified
        case .failure(let error):
            noteWriteWithoutRoot(key, error)
            return
        }
        do {
            let counters = try writeEntry(handle, key, fingerprint, bytes)
            index.record(namespace: key.namespace, fingerprint: fingerprint, size: UInt64(bytes.count), usedAt: realTimeMilliseconds())
            stats.withLock { $0.writes += 1 }
            if counters.bytes > maxBytes || counters.entries > UInt64(maxEntries) {
                evict(checkedRoot ?? handle)  // the write may have found the root made anew
            }
        } catch let rootError as DiskRootError {
            noteWriteWithoutRoot(key, rootError)  // the root was removed, and what is there now fails the check
        } catch {
            let failure = error as? IOFailure
            if let failure, failure.isLockTimeout { noteLockTimeout(failure, nil) }
            noteWriteError(reason: failure?.reason ?? "error", "write of \(key) skipped: \(error)")
            releaseKeptFilesIfOutOfDescriptors(error)
            let current = checkedRoot ?? handle
            if let failure, failure.errno == ENOSPC || failure.errno == EDQUOT,
               let used = sharedUsage.snapshot(in: current, wait: configuration.lockWait)?.bytes, used > 0 {
                // The file system filled before the budget did: give back a tenth of what the
                // tier holds, so that later writes fit again.
                evict(current, bytesBelow: used - used / 10)
            }
        }
    }

    /// Writes the entry file: a temporary file in the shard folder, then, under the folder's lock
    /// and within ``Configuration/lockWait``, the counters and the rename over the entry's name.
    /// Returns the counters after the write. A root removed meanwhile is checked again and the
    /// write made once more in the new one.
    private func writeEntry(_ handle: RootHandle, _ key: CacheKey, _ fingerprint: Fingerprint, _ bytes: [UInt8]) throws -> UsageCounters {
        var handle = handle
        var opened: Int32?
        do throws(IOFailure) {
            opened = try makeShard(handle, key.namespace, fingerprint)
        } catch {
            guard error.errno == ENOENT, !handle.isLinked else { throw error }
        }
        if opened == nil {
            // The root was removed: check its path again (and make it anew).
            switch recheckRoot(replacing: handle) {
            case .success(let fresh): handle = fresh
            case .failure(let rootError): throw rootError
            }
            opened = try makeShard(handle, key.namespace, fingerprint)
        }
        guard let shardFolder = opened else { throw IOFailure(operation: "open", path: root, errno: ENOENT) }
        defer { fileSystem.close(shardFolder) }  // closing the folder drops its lock
        let directory = shardPath(key.namespace, fingerprint.shard)
        let name = fingerprint.description
        let path = directory + "/" + name
        let serial = sequence.withLock { value -> UInt64 in
            value &+= 1
            return value
        }
        let temporary = DiskLayout.temporaryPrefix + name + "." + String(processID) + "." + String(serial)
        try writeTemporary(temporary, in: shardFolder, path: directory + "/" + temporary, bytes)
        var deadline = LockDeadline(after: configuration.lockWait)
        do {
            // The shard folder's lock makes "what does this rename replace" exact across
            // processes. The counters are updated before the rename, under the root's lock held
            // only for that: a write that cannot have the counters in time is skipped whole.
            try fileSystem.lock(shardFolder, until: &deadline, path: directory)
            var replaced: UInt64?
            if let previous = try fileSystem.status(name, in: shardFolder, path: path) {
                if FileSystem.isRegularFile(previous) {
                    replaced = UInt64(previous.st_size)
                } else {
                    try removeUnexpected(name, previous, in: shardFolder, path: path)
                }
            }
            let size = UInt64(bytes.count)
            let counters = try sharedUsage.withLock(in: handle, until: &deadline) { counters in
                if let replaced { counters.release(replaced) }
                counters.bytes &+= size
                counters.entries &+= 1
                return counters
            }
            do {
                try fileSystem.rename(temporary, to: name, in: shardFolder, path: path)
            } catch {
                // Nothing was replaced: give back what was counted (a best effort; failing that,
                // the counters hold one entry too many, which only makes eviction come sooner).
                var undo = LockDeadline(after: configuration.lockWait)
                _ = try? sharedUsage.withLock(in: handle, until: &undo) { counters in
                    counters.release(size)
                    if let replaced {
                        counters.bytes &+= replaced
                        counters.entries &+= 1
                    }
                }
                throw error
            }
            keptFiles.drop(fingerprint)  // the replaced file: its space goes now, not at the next read
            if configuration.fsync { try? fileSystem.sync(shardFolder, path: directory) }
            return counters
        } catch {
            _ = try? fileSystem.remove(temporary, in: shardFolder, path: directory + "/" + temporary)
            throw error
        }
    }

    /// Opens the entry's shard folder, making it and its namespace folder if missing.
    private func makeShard(_ handle: RootHandle, _ namespace: String, _ fingerprint: Fingerprint) throws(IOFailure) -> Int32 {
        guard let folder = try openShard(handle, namespace: namespace, shard: fingerprint.shard, create: true) else {
            throw IOFailure(operation: "mkdir", path: shardPath(namespace, fingerprint.shard), errno: ENOENT)
        }
        return folder
    }

    /// Creates `temporary` in the open folder `directory` and writes `bytes` to it.
    private func writeTemporary(_ temporary: String, in directory: Int32, path: String, _ bytes: [UInt8]) throws(IOFailure) {
        let fd = try fileSystem.createExclusive(temporary, in: directory, path: path)
        var failure: IOFailure?
        failure = bytes.withUnsafeBytes { raw -> IOFailure? in
            do throws(IOFailure) {
                try fileSystem.writeAll(fd, raw, path: path)
                return nil
            } catch {
                return error
            }
        }
        if failure == nil, configuration.fsync {
            do { try fileSystem.sync(fd, path: path) } catch { failure = error }
        }
        do { try fileSystem.closeAfterWriting(fd, path: path) } catch { failure = failure ?? error }
        if let failure {
            _ = try? fileSystem.remove(temporary, in: directory, path: path)
            throw failure
        }
    }

    /// Removes what has an entry's name and is not a regular file (`st`, not following a link),
    /// before a write puts the entry there: the name only, never what a link points to; a folder
    /// only when empty and this user's (else the write fails: it cannot replace a folder).
    func removeUnexpected(_ name: String, _ st: stat, in directory: Int32, path: String) throws(IOFailure) {
        let isFolder = FileSystem.isDirectory(st)
        if isFolder, st.st_uid != fileSystem.effectiveUserID() {
            throw IOFailure(operation: "replace", path: path, errno: EISDIR)
        }
        try fileSystem.remove(name, in: directory, folder: isFolder, path: path)
        noteUnexpected(path, FileSystem.kind(st) + "; removed")
    }

    // MARK: - Removing (on the pool)

    func removeEntry(_ key: CacheKey) {
        let fingerprint = Fingerprint(key)
        guard case .success(let handle) = verifiedRoot() else { return }  // a refused root holds nothing of ours
        let name = fingerprint.description
        let path = entryPath(key.namespace, fingerprint)
        do {
            guard let shard = try openShard(handle, namespace: key.namespace, shard: fingerprint.shard, create: false) else {
                forget(namespace: key.namespace, fingerprint: fingerprint)
                return  // no shard folder: nothing to remove
            }
            defer { fileSystem.close(shard) }  // closing the folder drops its lock
            var deadline = LockDeadline(after: configuration.lockWait)
            try fileSystem.lock(shard, until: &deadline, path: shardPath(key.namespace, fingerprint.shard))
            if let st = try fileSystem.status(name, in: shard, path: path) {
                if FileSystem.isRegularFile(st) {
                    try removeCounted(name, size: UInt64(st.st_size), in: shard, handle, until: &deadline, path: path)
                } else {
                    try removeUnexpected(name, st, in: shard, path: path)
                }
            }
            forget(namespace: key.namespace, fingerprint: fingerprint)
        } catch let failure as IOFailure where failure.isLockTimeout {
            noteLockTimeout(failure, "remove of \(key) skipped")
        } catch {
            logger.warning("disk tier: remove failed", metadata: ["tier": "\(self.name)", "error": "\(error)"])
            releaseKeptFilesIfOutOfDescriptors(error)
        }
    }

    /// Removes the entry file `name` (`size` bytes) from the open shard folder `shard`, whose lock
    /// the caller holds: first takes it off the shared counters (waiting for their lock until
    /// `deadline`), then unlinks it, so that a lock not had in time leaves both as they were.
    /// Returns whether a file was removed.
    @discardableResult
    func removeCounted(
        _ name: String, size: UInt64, in shard: Int32, _ handle: RootHandle, until deadline: inout LockDeadline, path: String
    ) throws -> Bool {
        try sharedUsage.withLock(in: handle, until: &deadline) { $0.release(size) }
        let removed: Bool
        do {
            removed = try fileSystem.remove(name, in: shard, path: path)
        } catch {
            restoreCounters(handle, size: size)
            throw error
        }
        if !removed { restoreCounters(handle, size: size) }
        return removed
    }

    /// Counts an entry of `size` bytes again after a removal counted in advance did not happen
    /// (a best effort: failing that, the counters hold one entry too few until it is removed).
    private func restoreCounters(_ handle: RootHandle, size: UInt64) {
        var deadline = LockDeadline(after: configuration.lockWait)
        _ = try? sharedUsage.withLock(in: handle, until: &deadline) { counters in
            counters.bytes &+= size
            counters.entries &+= 1
        }
    }
}
