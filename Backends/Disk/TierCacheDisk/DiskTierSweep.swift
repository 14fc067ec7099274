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
        /// Things the tier did not make removed from where its files or folders belong: symbolic
        /// links (the links, never what they point to), FIFOs, sockets, devices, empty folders
        /// of this user's in place of entries (``Statistics/unexpectedFiles``).
        public var unexpectedRemoved = 0
        /// Bytes freed by the removals.
        public var bytesFreed: UInt64 = 0

        mutating func add(_ other: SweepResult) {
            examined += other.examined
            expiredRemoved += other.expiredRemoved
            corruptRemoved += other.corruptRemoved
            temporaryRemoved += other.temporaryRemoved
            unexpectedRemoved += other.unexpectedRemoved
            bytesFreed += other.bytesFreed
        }
    }

    // MARK: - Sweep

    /// Removes entries past their hard expiry (read from each file's first 60 bytes with
    /// ``CacheEntry/peekExpiry(_:)``, without reading payloads), files that are not envelopes,
    /// temporary files older than ``Configuration/temporaryFileMaxAge``, and symbolic links,
    /// FIFOs and the like where entries or folders belong. Never follows a symbolic link: a link
    /// in place of a namespace or shard folder is removed, and nothing behind it is looked at.
    /// Works one shard folder per job on the blocking pool, so gets and puts interleave with it.
    /// A shard folder whose lock another process holds past ``Configuration/lockWait`` is left
    /// for the next sweep. Does nothing when the root is refused.
    /// - Throws: `CancellationError` when cancelled (between shard folders); I/O errors are skipped.
    @discardableResult
    public func sweep() async throws -> SweepResult {
        let (handle, namespaces, listed) = try await pool.run { () -> (RootHandle?, [String], SweepResult) in
            guard case .success(let handle) = self.verifiedRoot() else { return (nil, [], SweepResult()) }
            let (namespaces, result) = self.sweepNamespaces(handle)
            return (handle, namespaces, result)
        }
        var total = listed
        if let handle {
            for namespace in namespaces {
                for shard in 0..<DiskLayout.shardCount {
                    total.add(try await pool.run { self.sweepShard(handle, namespace: namespace, shard: shard) })
                }
            }
        }
        logger.debug("disk tier: sweep done", metadata: [
            "tier": "\(name)", "examined": "\(total.examined)", "expired": "\(total.expiredRemoved)",
            "corrupt": "\(total.corruptRemoved)", "temporary": "\(total.temporaryRemoved)", "unexpected": "\(total.unexpectedRemoved)",
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

    /// The namespace folders to sweep (every folder in `ns` that is this user's, whatever its
    /// name); removes what else has a name there (a link, a file), counting it.
    private func sweepNamespaces(_ handle: RootHandle) -> ([String], SweepResult) {
        var result = SweepResult()
        var namespaces: [String] = []
        let user = fileSystem.effectiveUserID()
        for name in fileSystem.names(in: handle.namespaces, path: root + "/ns").sorted() {
            guard let st = try? fileSystem.status(name, in: handle.namespaces, path: namespacePath(name)) else { continue }
            if FileSystem.isDirectory(st) {
                if st.st_uid == user { namespaces.append(name) }
            } else if removeUnexpectedFolder(name, st, in: handle.namespaces, path: namespacePath(name)) {
                result.unexpectedRemoved += 1
            }
        }
        return (namespaces, result)
    }

    /// Removes `name`, which is not a folder, from where a folder belongs (a link: the link).
    private func removeUnexpectedFolder(_ name: String, _ st: stat, in parent: Int32, path: String) -> Bool {
        guard (try? fileSystem.remove(name, in: parent, path: path)) == true else { return false }
        noteUnexpected(path, FileSystem.kind(st) + " where a folder belongs; removed")
        return true
    }

    func sweepShard(_ handle: RootHandle, namespace: String, shard: Int) -> SweepResult {
        var result = SweepResult()
        let shardName = DiskLayout.shardName(shard)
        let directory = shardPath(namespace, shardName)
        guard let namespaceFolder = try? fileSystem.openDirectory(namespace, in: handle.namespaces, path: namespacePath(namespace)) else {
            return result
        }
        defer { fileSystem.close(namespaceFolder) }
        guard let st = try? fileSystem.status(shardName, in: namespaceFolder, path: directory) else { return result }
        guard FileSystem.isDirectory(st) else {
            // A link (or anything else) where the shard folder belongs: remove the name, and
            // look at nothing behind it.
            if removeUnexpectedFolder(shardName, st, in: namespaceFolder, path: directory) { result.unexpectedRemoved += 1 }
            return result
        }
        guard st.st_uid == fileSystem.effectiveUserID(),
              let folder = try? fileSystem.openDirectory(shardName, in: namespaceFolder, path: directory)
        else { return result }
        defer { fileSystem.close(folder) }
        let now = configuration.clock.now()
        let realNow = realTimeMilliseconds()
        let temporaryAge = configuration.temporaryFileMaxAge.milliseconds
        for name in fileSystem.names(in: folder, path: directory) {
            let path = directory + "/" + name
            if name.hasPrefix(DiskLayout.temporaryPrefix) {
                // Temporary files are not counted in the shared counters, and no reader opens
                // them: removed without the folder's lock.
                if let st = try? fileSystem.status(name, in: folder, path: path), !FileSystem.isDirectory(st),
                   !FileSystem.isRegularFile(st) || realNow - st.modifiedMilliseconds > temporaryAge,
                   (try? fileSystem.remove(name, in: folder, path: path)) == true {
                    if FileSystem.isRegularFile(st) {
                        result.temporaryRemoved += 1
                        result.bytesFreed += UInt64(st.st_size)
                    } else {
                        noteUnexpected(path, FileSystem.kind(st) + "; removed")
                        result.unexpectedRemoved += 1
                    }
                }
                continue
            }
            guard let fingerprint = Fingerprint(fileName: name) else { continue }  // not ours: left alone
            result.examined += 1
            var deadline = LockDeadline(after: configuration.lockWait)
            let outcome = sweepEntry(handle, namespace, fingerprint, in: folder, now: now, until: &deadline)
            switch outcome {
            case .expired(let bytes):
                result.expiredRemoved += 1
                result.bytesFreed += bytes
                forget(namespace: namespace, fingerprint: fingerprint)
            case .corrupt(let bytes):
                result.corruptRemoved += 1
                result.bytesFreed += bytes
                forget(namespace: namespace, fingerprint: fingerprint)
            case .unexpected:
                result.unexpectedRemoved += 1
            case .kept:
                break
            case .lockTimedOut:
                // Another process holds this folder (and may be stopped): the next sweep goes on.
                break
            }
            if case .lockTimedOut = outcome { break }
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

    /// What the sweep did with one entry's name.
    private enum SweptEntry {
        case expired(UInt64)
        case corrupt(UInt64)
        case unexpected
        case kept
        case lockTimedOut
    }

    /// Sweeps the entry `fingerprint` in the open shard folder `folder`.
    private func sweepEntry(
        _ handle: RootHandle, _ namespace: String, _ fingerprint: Fingerprint, in folder: Int32, now: WallTime,
        until deadline: inout LockDeadline
    ) -> SweptEntry {
        let name = fingerprint.description
        let path = entryPath(namespace, fingerprint)
        let st: stat
        let prefix: [UInt8]?
        switch try? fileSystem.openFile(name, in: folder, path: path) {
        case .opened(let fd)?:
            defer { fileSystem.close(fd) }
            guard let status = try? fileSystem.status(fd, path: path) else { return .kept }
            st = status
            prefix = FileSystem.isRegularFile(st) ? try? fileSystem.readPrefix(fd, count: 60, path: path) : nil
            if FileSystem.isRegularFile(st), prefix == nil { return .kept }  // a read error: next time
        case .notPlain?:
            // A symbolic link with an entry's name: the link is removed, what it points to is not
            // looked at.
            guard let status = try? fileSystem.status(name, in: folder, path: path) else { return .kept }
            st = status
            prefix = nil
        default:
            return .kept
        }
        func removed(_ outcome: Removal, _ swept: SweptEntry) -> SweptEntry {
            switch outcome {
            case .removed: swept
            case .kept: .kept
            case .lockTimedOut: .lockTimedOut
            }
        }
        guard FileSystem.isRegularFile(st), let prefix else {
            let outcome = removeIfUnchanged(handle, namespace, fingerprint, st, until: &deadline)
            if outcome == .removed { noteUnexpected(path, FileSystem.kind(st) + "; removed") }
            return removed(outcome, .unexpected)
        }
        if let expiry = CacheEntry.peekExpiry(prefix) {
            guard now >= expiry.staleUntil else { return .kept }
            return removed(removeIfUnchanged(handle, namespace, fingerprint, st, until: &deadline), .expired(UInt64(st.st_size)))
        }
        return removed(removeIfUnchanged(handle, namespace, fingerprint, st, until: &deadline), .corrupt(UInt64(st.st_size)))
    }
}
