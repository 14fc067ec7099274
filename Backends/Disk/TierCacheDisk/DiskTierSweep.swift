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
}
