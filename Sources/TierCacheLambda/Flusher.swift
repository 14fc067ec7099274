import Logging
import TierCache

/// What one flush achieved.
public struct FlushReport: Sendable, Hashable {
    /// Writes that finished during the flush (or had finished before it).
    public var completed: Int
    /// Writes that could not finish before the deadline: abandoned to the background, counted
    /// and logged; the response was not held for them.
    public var abandoned: Int
    /// How long the flush waited.
    public var duration: Duration
    /// Refreshes (``RefreshAheadPolicy``) that finished during the flush.
    public var refreshes: Int = 0
    /// Refreshes still running at the deadline: left to the background (they go on when the
    /// environment thaws), not awaited again until SHUTDOWN, counted and logged.
    public var abandonedRefreshes: Int = 0
}

/// A cache's refreshes in flight, type-erased for the flusher.
struct RefreshWaiter: Sendable {
    let id: ObjectIdentifier
    let wait: @Sendable (Duration, Bool) async -> (completed: Int, pending: Int)

    init<Value>(_ cache: Cache<Value>) {
        id = ObjectIdentifier(cache)
        wait = { deadline, includeAbandoned in await cache.awaitRefreshes(deadline: deadline, includeAbandoned: includeAbandoned) }
    }
}

/// Tracks writes the runtime started (warm-set persistence), the caches whose refreshes and the
/// chains whose write-behind queues must be drained before the process may be frozen.
final class Flusher: Sendable {
    private struct State {
        var nextID = 0
        var tasks: [Int: Task<Void, Never>] = [:]
        var chains: [ObjectIdentifier: (chain: TierChain, abandonedPending: Int)] = [:]
        var refreshers: [ObjectIdentifier: RefreshWaiter] = [:]
        var abandonedTotal = 0
    }

    private let state = LockedValueBox(State())
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Adds a chain whose write-behind writes every flush awaits.
    func register(_ chain: TierChain) {
        state.withLock { state in
            let id = ObjectIdentifier(chain)
            if state.chains[id] == nil { state.chains[id] = (chain, 0) }
        }
    }

    /// Adds a cache whose refreshes in flight every flush awaits, before the chains.
    func register(_ refreshes: RefreshWaiter) {
        state.withLock { $0.refreshers[refreshes.id] = refreshes }
    }

    /// Starts `operation` in the background; flushes await it.
    func track(_ operation: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.tasks[id] = Task {
                await operation()
                _ = self.state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Writes abandoned over the process's life.
    var abandonedTotal: Int { state.withLock { $0.abandonedTotal } }

    /// Awaits tracked writes, then every cache's refreshes in flight, then every chain's
    /// write-behind queue (refreshes write there), all within `deadline`.
    ///
    /// Writes still running at the deadline are abandoned: tracked tasks are cancelled, chain
    /// writes and refreshes go on in the background. A refresh given up on is not awaited again
    /// before SHUTDOWN (a stuck loader costs the deadline once), nor is a chain whose only pending
    /// writes are ones an earlier flush already abandoned (a store that is down would otherwise
    /// cost the full deadline at every freeze point).
    /// - Parameter includeAbandoned: wait for those too (SHUTDOWN: the last chance).
    func flush(deadline: Duration, includeAbandoned: Bool = false) async -> FlushReport {
        let start = ContinuousClock.now
        let end = start.advanced(by: max(deadline, .zero))
        let tasks = state.withLock { Array($0.tasks) }
        var abandoned = 0
        var completed = 0
        if !tasks.isEmpty {
            let done = LockedValueBox(Set<Int>())
            _ = try? await withDeadline(max(deadline, .milliseconds(1))) {
                await withTaskGroup(of: Void.self) { group in
                    for (id, task) in tasks {
                        group.addTask {
                            await task.value
                            _ = done.withLock { $0.insert(id) }
                        }
                    }
                }
            }
            let finished = done.withLock { $0 }
            completed += finished.count
            for (id, task) in tasks where !finished.contains(id) {
                task.cancel()
                abandoned += 1
                _ = state.withLock { $0.tasks.removeValue(forKey: id) }
            }
        }
        var refreshes = 0
        var abandonedRefreshes = 0
        for waiter in state.withLock({ Array($0.refreshers.values) }) {
            let result = await waiter.wait(max(ContinuousClock.now.duration(to: end), .zero), includeAbandoned)
            refreshes += result.completed
            abandonedRefreshes += result.pending
        }
        let chains = state.withLock { Array($0.chains) }
        for (id, entry) in chains {
            let pending = entry.chain.pendingWrites
            if pending == 0 { continue }
            if !includeAbandoned, pending <= entry.abandonedPending {
                // Only writes an earlier flush gave up on; they go on in the background.
                continue
            }
            let left = ContinuousClock.now.duration(to: end)
            let result = await entry.chain.flush(deadline: max(left, .milliseconds(1)))
            completed += result.completed
            abandoned += result.pending
            state.withLock { $0.chains[id]?.abandonedPending = result.pending }
        }
        if abandoned > 0 {
            state.withLock { $0.abandonedTotal += abandoned }
            logger.warning("flush deadline passed; writes abandoned to the background", metadata: [
                "abandoned": "\(abandoned)", "deadline": "\(deadline)",
            ])
        }
        return FlushReport(completed: completed, abandoned: abandoned, duration: ContinuousClock.now - start,
                           refreshes: refreshes, abandonedRefreshes: abandonedRefreshes)
    }
}
