public import TierCache

/// A clock that moves only when told: TTL tests without sleeping.
public final class ManualCacheClock: CacheClock, @unchecked Sendable {
    private let lock = Lock()
    private var current: WallTime

    /// Creates a clock standing at `start` (default: 2026-01-01T00:00:00Z).
    public init(start: WallTime = WallTime(millisecondsSince1970: 1_767_225_600_000)) {
        current = start
    }

    public func now() -> WallTime { lock.withLock { current } }

    /// Moves the clock forward by `duration`.
    public func advance(by duration: Duration) {
        lock.withLock { current = current.advanced(by: duration) }
    }

    /// Sets the clock.
    public func set(_ time: WallTime) {
        lock.withLock { current = time }
    }
}
