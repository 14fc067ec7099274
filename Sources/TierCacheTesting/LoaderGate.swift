import TierCache

/// A gate for loaders in tests: ``pass()`` counts the call and suspends until ``open()``.
///
/// Shows who waits for whom without timing anything: a cache read that returns while the loader
/// it started is held at a shut gate did not wait for it (a refresh-ahead, for instance).
///
/// ```swift
/// let gate = LoaderGate()
/// let hit = try await cache.getOrLoad(key) { await gate.pass(); return build() }
/// await gate.waitForWaiting(1)   // the refresh the hit started is running
/// gate.open()
/// ```
public final class LoaderGate: Sendable {
    private struct State {
        var open: Bool
        var calls = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: LockedValueBox<State>

    /// Creates a gate, shut unless `open`.
    public init(open: Bool = false) {
        state = LockedValueBox(State(open: open))
    }

    /// Counts a call, then returns once the gate is open (at once if it is).
    public func pass() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state in
                state.calls += 1
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Opens the gate: releases every caller held and lets later ones through.
    public func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Shuts the gate for later callers.
    public func close() {
        state.withLock { $0.open = false }
    }

    /// Calls to ``pass()`` so far.
    public var calls: Int { state.withLock { $0.calls } }

    /// Callers held at the gate now.
    public var waiting: Int { state.withLock { $0.waiters.count } }

    /// Returns once at least `count` callers are held at the gate (polls every millisecond; no
    /// deadline of its own, so bound it with the test's time limit).
    public func waitForWaiting(_ count: Int) async {
        while waiting < count { try? await Task.sleep(for: .milliseconds(1)) }
    }
}
