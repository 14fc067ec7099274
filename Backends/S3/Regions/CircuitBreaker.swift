public import TierCache

/// Per-bucket circuit breakers: a bucket that fails is skipped for a cool-down, then tried again
/// with a single probe (half-open) whose outcome closes the circuit or opens it for another
/// cool-down.
///
/// Time comes from a ``CacheClock`` so tests can drive it. Thread-safe; every call is a short
/// critical section.
public final class BucketCircuitBreaker: Sendable {
    /// Breaker settings.
    public struct Configuration: Sendable {
        /// Consecutive failures that open a circuit (at least 1).
        public var failureThreshold: Int
        /// How long an open circuit skips its bucket before a probe is let through. A probe that
        /// never reports (its task was cancelled) is forgotten after the same time.
        public var coolDown: Duration

        /// Creates a configuration.
        public init(failureThreshold: Int = 1, coolDown: Duration = .seconds(30)) {
            self.failureThreshold = max(1, failureThreshold)
            self.coolDown = coolDown
        }
    }

    /// The state of one bucket's circuit.
    public struct State: Sendable, Hashable, CustomStringConvertible {
        let kind: UInt8
        /// Requests flow.
        public static let closed = State(kind: 0)
        /// Requests skip the bucket until the cool-down ends.
        public static let open = State(kind: 1)
        /// One probe is in flight; other requests skip the bucket.
        public static let halfOpen = State(kind: 2)
        public var description: String { ["closed", "open", "halfOpen"][Int(kind)] }
    }

    /// What ``acquire(_:)`` grants.
    public struct Permit: Sendable, Hashable {
        /// Whether this request is the half-open probe.
        public let isProbe: Bool
    }

    private struct Circuit {
        var failures = 0
        var state = State.closed
        var until = WallTime(millisecondsSince1970: 0)  // open: end of cool-down; halfOpen: probe expiry
        var skipped = 0
    }

    /// The settings in use.
    public let configuration: Configuration
    private let clock: any CacheClock
    private let circuits = LockedValueBox<[String: Circuit]>([:])

    /// Creates breakers (all closed).
    public init(configuration: Configuration = Configuration(), clock: any CacheClock = SystemCacheClock()) {
        self.configuration = configuration
        self.clock = clock
    }

    /// Asks to send a request to a bucket.
    /// - Returns: nil when the bucket is to be skipped (open, or a probe already in flight); a
    ///   permit otherwise, marked as the probe when the cool-down just ended.
    public func acquire(_ id: String) -> Permit? {
        let now = clock.now()
        return circuits.withLock { circuits -> Permit? in
            var circuit = circuits[id, default: Circuit()]
            defer { circuits[id] = circuit }
            switch circuit.state {
            case .closed:
                return Permit(isProbe: false)
            default:
                guard now >= circuit.until else {
                    circuit.skipped += 1
                    return nil
                }
                circuit.state = .halfOpen
                circuit.until = now.advanced(by: configuration.coolDown)
                return Permit(isProbe: true)
            }
        }
    }

    /// Records a success: the circuit closes.
    public func recordSuccess(_ id: String) {
        circuits.withLock { circuits in
            var circuit = Circuit()
            circuit.skipped = circuits[id]?.skipped ?? 0
            circuits[id] = circuit
        }
    }

    /// Records a failure: a failed probe, or the threshold-th consecutive failure, opens the
    /// circuit for ``Configuration/coolDown``.
    public func recordFailure(_ id: String) {
        let now = clock.now()
        circuits.withLock { circuits in
            var circuit = circuits[id, default: Circuit()]
            circuit.failures += 1
            if circuit.state == .halfOpen || circuit.failures >= configuration.failureThreshold {
                circuit.state = .open
                circuit.until = now.advanced(by: configuration.coolDown)
            }
            circuits[id] = circuit
        }
    }

    /// Gives a probe permit back without an outcome (the request was cancelled): the next
    /// request may probe at once.
    public func release(_ id: String, _ permit: Permit) {
        guard permit.isProbe else { return }
        let now = clock.now()
        circuits.withLock { circuits in
            guard var circuit = circuits[id], circuit.state == .halfOpen else { return }
            circuit.state = .open
            circuit.until = now
            circuits[id] = circuit
        }
    }

    /// How many requests ``acquire(_:)`` has turned away from a bucket so far (diagnostics).
    public func skips(of id: String) -> Int {
        circuits.withLock { $0[id]?.skipped ?? 0 }
    }

    /// The current state of a bucket's circuit (an open circuit whose cool-down has ended still
    /// reads `open` until a request probes it).
    public func state(of id: String) -> State {
        circuits.withLock { $0[id]?.state ?? .closed }
    }
}
