#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache

extension DiskTier {
    /// The root's usage as shared by every process using it.
    public struct Usage: Sendable, Hashable {
        /// Bytes of entry files.
        public var bytes: UInt64
        /// Entry files.
        public var entries: UInt64
    }

    /// The root's usage as every process sees it, or nil when the root is refused, cannot be
    /// read, or its lock is held by another process past ``Configuration/lockWait``.
    public func usage() async throws -> Usage? {
        try await pool.run {
            guard case .success(let handle) = self.verifiedRoot(),
                  let counters = self.sharedUsage.snapshot(in: handle, wait: self.configuration.lockWait)
            else { return nil }
            return Usage(bytes: counters.bytes, entries: counters.entries)
        }
    }

    // MARK: - Budget

    /// ``Configuration/freeSpaceFraction`` of the free space of the file system holding `root`
    /// (or its nearest existing parent: it may not exist yet), at most ``Configuration/maxBytesCap``.
    static func budgetFromFreeSpace(root: String, configuration: Configuration, fileSystem: FileSystem) -> UInt64 {
        let fallback = min(configuration.maxBytesCap, 64 << 20)
        var path = root
        var status = fileSystem.fileSystemStatus(path)
        while status == nil {
            guard let slash = path.lastIndex(of: "/"), !path.isEmpty, path != "/" else { return fallback }
            path = slash == path.startIndex ? "/" : String(path[..<slash])
            status = fileSystem.fileSystemStatus(path)
        }
        guard let info = status else { return fallback }
        let free = Double(info.f_bavail) * Double(info.f_frsize)
        let share = UInt64(max(0, min(free * configuration.freeSpaceFraction, Double(UInt64.max / 2))))
        return min(configuration.maxBytesCap, share)
    }
}
