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
    /// The root's usage as shared by every process using it.
    public struct Usage: Sendable, Hashable {
        /// Bytes of entry files.
        public var bytes: UInt64
        /// Entry files.
        public var entries: UInt64
    }

    // MARK: - Budget

    static func budgetFromFreeSpace(root: String, configuration: Configuration) -> UInt64 {
        // The root may not exist yet: ask the nearest existing folder above it.
        var path = root
        var info = statvfs()
        while statvfs(path, &info) != 0 {
            guard let slash = path.lastIndex(of: "/"), !path.isEmpty else { return min(configuration.maxBytesCap, 64 << 20) }
            path = slash == path.startIndex ? "/" : String(path[..<slash])
            if path == "/" {
                if statvfs(path, &info) != 0 { return min(configuration.maxBytesCap, 64 << 20) }
                break
            }
        }
        let free = Double(info.f_bavail) * Double(info.f_frsize)
        let share = UInt64(max(0, min(free * configuration.freeSpaceFraction, Double(UInt64.max / 2))))
        return min(configuration.maxBytesCap, share)
    }
}

extension UsageCounters {
    /// Takes one entry of `size` bytes off the counters (saturating at zero).
    mutating func release(_ size: UInt64) {
        bytes = bytes >= size ? bytes - size : 0
        entries = entries > 0 ? entries - 1 : 0
    }
}
