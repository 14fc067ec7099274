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
    // MARK: - Writing (on the pool)

    func writeEntry(_ key: CacheKey, _ bytes: [UInt8]) {
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
    func writeTemporary(_ temporary: String, directory: String, _ bytes: [UInt8]) throws(IOFailure) {
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
}
