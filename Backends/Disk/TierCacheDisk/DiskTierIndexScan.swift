#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache

extension DiskTier {
    // MARK: - Index scan

    /// Starts the background scan that fills the recency index, once, after the first write.
    func startBackgroundScan() {
        guard index.claimBackgroundScan() else { return }
        let pool = self.pool
        Task.detached(priority: .background) { [weak self] in
            while true {
                guard let tier = self else { return }
                guard let more = try? await pool.run({ tier.scanStep() }), more else { return }
            }
        }
    }

    /// Scans the next shard folder into the index; false when the current pass is complete (or
    /// the root is not checked yet). Regular files with entry names only; links are not followed.
    @discardableResult
    func scanStep() -> Bool {
        guard let handle = checkedRoot else { return false }
        guard let shard = index.claimNextShard(listNamespaces: {
            fileSystem.names(in: handle.namespaces, path: root + "/ns").sorted()
        }) else { return false }
        let shardName = DiskLayout.shardName(shard.shard)
        guard let folder = try? openShard(handle, namespace: shard.namespace, shard: shardName, create: false) else { return true }
        defer { fileSystem.close(folder) }
        let directory = shardPath(shard.namespace, shardName)
        for name in fileSystem.names(in: folder, path: directory) {
            guard let fingerprint = Fingerprint(fileName: name),
                  let st = try? fileSystem.status(name, in: folder, path: directory + "/" + name), FileSystem.isRegularFile(st)
            else { continue }
            index.record(namespace: shard.namespace, fingerprint: fingerprint, size: UInt64(st.st_size), usedAt: st.modifiedMilliseconds)
        }
        return true
    }
}
