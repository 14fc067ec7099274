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
    // MARK: - Eviction (on the pool)

    /// Removes least recently used entries until the root is at 90% of both budgets. One evictor
    /// per process at a time; a write that finds one running leaves the work to it.
    /// - Parameter bytesBelow: a lower byte target than the budget's, after the file system said
    ///   it is full (`ENOSPC`): the budget was more than the disk could hold.
    func evict(bytesBelow: UInt64? = nil) {
        guard index.beginEviction() else { return }
        repeat {
            evictOnce(bytesBelow: bytesBelow)
        } while !index.endEviction()
    }

    func evictOnce(bytesBelow: UInt64?) {
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
    func evictIfUnused(_ candidate: RecencyIndex.Candidate) throws -> UInt64? {
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
}
