#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in wall-clock time, in milliseconds since 1970-01-01 UTC.
///
/// Expiry is stored as wall time in envelopes because entries cross processes and machines; a
/// monotonic clock's instants mean nothing outside the process that read them.
public struct WallTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch.
    public var millisecondsSince1970: Int64

    /// Creates a wall time from milliseconds since the Unix epoch.
    public init(millisecondsSince1970: Int64) {
        self.millisecondsSince1970 = millisecondsSince1970
    }

    public static func < (lhs: WallTime, rhs: WallTime) -> Bool {
        lhs.millisecondsSince1970 < rhs.millisecondsSince1970
    }

    /// This time moved by `duration` (saturating; sub-millisecond parts are truncated).
    public func advanced(by duration: Duration) -> WallTime {
        WallTime(millisecondsSince1970: millisecondsSince1970.addingSaturating(duration.milliseconds))
    }

    /// The duration from this time to `other` (negative when `other` is earlier).
    public func duration(to other: WallTime) -> Duration {
        .milliseconds(other.millisecondsSince1970 &- millisecondsSince1970)
    }

    public var description: String { "\(millisecondsSince1970)ms" }
}

/// Where the cache reads the time for expiry decisions.
///
/// Pass ``SystemCacheClock`` in production and `ManualCacheClock` (TierCacheTesting) in tests,
/// so TTL behaviour is tested without sleeping.
public protocol CacheClock: Sendable {
    /// The current wall time.
    func now() -> WallTime
}

/// The system's real-time clock, read coarsely (`CLOCK_REALTIME_COARSE`: a few milliseconds of
/// resolution at a fraction of the cost). Expiry is measured in seconds and minutes, and the clock
/// is read on every memory hit.
public struct SystemCacheClock: CacheClock {
    /// Creates the system clock.
    public init() {}

    public func now() -> WallTime {
        var ts = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        #else
        clock_gettime(CLOCK_REALTIME, &ts)
        #endif
        return WallTime(millisecondsSince1970: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
}

extension CacheClock where Self == SystemCacheClock {
    /// The system's real-time clock, read coarsely.
    public static var system: SystemCacheClock { SystemCacheClock() }
}

extension Duration {
    /// Whole milliseconds, truncated, saturating at `Int64`'s bounds.
    package var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        return ms.addingSaturating(attoseconds / 1_000_000_000_000_000)
    }
}

extension Int64 {
    package func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        if overflow { return other < 0 ? .min : .max }
        return sum
    }
}
