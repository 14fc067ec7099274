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

    /// Scans the next shard folder into the index; false when the current pass is complete.
    @discardableResult
    func scanStep() -> Bool {
        let namespaceRoot = root + "/ns"
        guard let shard = index.claimNextShard(listNamespaces: {
            fileSystem.listDirectory(namespaceRoot).filter { !$0.hasPrefix(".") }.sorted()
        }) else { return false }
        let directory = namespacePath(shard.namespace) + "/" + DiskLayout.shardName(shard.shard)
        for name in fileSystem.listDirectory(directory) {
            guard let fingerprint = Fingerprint(fileName: name), let st = try? fileSystem.status(directory + "/" + name) else { continue }
            index.record(namespace: shard.namespace, fingerprint: fingerprint, size: UInt64(st.st_size), usedAt: st.modifiedMilliseconds)
        }
        return true
    }
}
