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
    // MARK: - Eviction (on the pool)

    /// Removes least recently used entries until the root is at 90% of both budgets. One evictor
    /// per process at a time; a write that finds one running leaves the work to it.
    /// - Parameter bytesBelow: a lower byte target than the budget's, after the file system said
    ///   it is full (`ENOSPC`): the budget was more than the disk could hold.
    func evict(_ handle: RootHandle, bytesBelow: UInt64? = nil) {
        guard index.beginEviction() else { return }
        repeat {
            evictOnce(handle, bytesBelow: bytesBelow)
        } while !index.endEviction()
    }

    /// Lock timeouts after which one eviction round stops (each cost up to
    /// ``Configuration/lockWait``): the next write over budget goes on from there.
    static let lockTimeoutsPerEviction = 2

    private func evictOnce(_ handle: RootHandle, bytesBelow: UInt64?) {
        let byteTarget = min(maxBytes - maxBytes / 10, bytesBelow ?? .max)
        let entryTarget = UInt64(maxEntries - max(1, maxEntries / 10))
        // Evicting from a partial index would pick this process's own recent writes, the only
        // entries it knows: finish the scan pass first (the background scan usually has).
        while !index.isPassComplete, scanStep() {}
        var restarted = false
        var evicted = 0
        var lockTimeouts = 0
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
                var deadline = LockDeadline(after: configuration.lockWait)
                do {
                    let counters = try sharedUsage.withLock(in: handle, until: &deadline) { $0 }
                    if counters.bytes <= byteTarget, counters.entries <= entryTarget { return }
                    if try evictIfUnused(handle, candidate, until: &deadline) { evicted += 1 }
                } catch let failure as IOFailure where failure.isLockTimeout {
                    // Another process holds a lock (and may be stopped): leave this candidate
                    // until a scan finds it again, and stop after a few.
                    noteLockTimeout(failure, "an eviction left \(entryPath(candidate.namespace, candidate.fingerprint))")
                    index.forget(namespace: candidate.namespace, fingerprint: candidate.fingerprint)
                    lockTimeouts += 1
                    if lockTimeouts >= Self.lockTimeoutsPerEviction { return }
                } catch {
                    logger.warning("disk tier: eviction stopped", metadata: ["tier": "\(name)", "error": "\(error)"])
                    return
                }
            }
        }
    }

    /// Removes a candidate's file under its shard folder's lock unless another process used it
    /// since the index last looked, and takes it off the shared counters; returns whether it was
    /// removed. Updates the index either way.
    private func evictIfUnused(_ handle: RootHandle, _ candidate: RecencyIndex.Candidate, until deadline: inout LockDeadline) throws -> Bool {
        let name = candidate.fingerprint.description
        let path = entryPath(candidate.namespace, candidate.fingerprint)
        var opened: Int32?
        do throws(IOFailure) {
            opened = try openShard(handle, namespace: candidate.namespace, shard: candidate.fingerprint.shard, create: false)
        } catch {
            // A link or a file where the folder belongs is not ours (a sweep or the next write
            // replaces it).
            guard error.errno == ELOOP || error.errno == ENOTDIR else { throw error }
        }
        guard let shardFolder = opened else {
            forget(namespace: candidate.namespace, fingerprint: candidate.fingerprint)
            return false  // the shard folder vanished with its files, or is not ours
        }
        defer { fileSystem.close(shardFolder) }  // closing the folder drops its lock
        try fileSystem.lock(shardFolder, until: &deadline, path: shardPath(candidate.namespace, candidate.fingerprint.shard))
        guard let st = try fileSystem.status(name, in: shardFolder, path: path), FileSystem.isRegularFile(st) else {
            forget(namespace: candidate.namespace, fingerprint: candidate.fingerprint)
            return false
        }
        let modified = st.modifiedMilliseconds
        if modified > candidate.lastUse + touchMilliseconds {
            // Used or rewritten elsewhere: keep it.
            index.record(namespace: candidate.namespace, fingerprint: candidate.fingerprint, size: UInt64(st.st_size), usedAt: modified)
            return false
        }
        let removed = try removeCounted(name, size: UInt64(st.st_size), in: shardFolder, handle, until: &deadline, path: path)
        forget(namespace: candidate.namespace, fingerprint: candidate.fingerprint)
        return removed
    }
}
