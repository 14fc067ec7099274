import CoreMetrics
import Metrics

/// Background writes, ordered per (tier, key), awaited by ``flush(deadline:)``.
final class WriteBehindQueue: Sendable {
    private struct Slot: Hashable {
        let tier: Int
        let key: CacheKey
    }

    private struct State {
        var nextID: UInt64 = 0
        var pending: [UInt64: Task<Void, Never>] = [:]
        /// The newest operation per slot, which the next one for that slot waits on.
        var last: [Slot: (id: UInt64, task: Task<Void, Never>)] = [:]
        /// Operations finished over the queue's life.
        var finished = 0
    }

    private let state = LockedValueBox(State())
    private let gauge: Gauge

    init(cache: String, factory: any MetricsFactory) {
        gauge = Gauge(label: TierCacheMetrics.pendingWrites, dimensions: [("cache", cache)], factory: factory)
    }

    var count: Int { state.withLock { $0.pending.count } }

    func last(for key: CacheKey, tier: Int) -> Task<Void, Never>? {
        state.withLock { $0.last[Slot(tier: tier, key: key)]?.task }
    }

    /// Starts `operation` after any earlier operation for the same tier and key.
    func submit(key: CacheKey, tier: Int, _ operation: @escaping @Sendable () async -> Void) {
        let slot = Slot(tier: tier, key: key)
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            let previous = state.last[slot]?.task
            let task = Task {
                await previous?.value
                await operation()
                self.finished(id, slot: slot)
            }
            state.pending[id] = task
            state.last[slot] = (id, task)
            gauge.record(state.pending.count)
        }
    }

    private func finished(_ id: UInt64, slot: Slot) {
        state.withLock { state in
            state.pending[id] = nil
            if state.last[slot]?.id == id { state.last[slot] = nil }
            state.finished += 1
            gauge.record(state.pending.count)
        }
    }

    func flush(deadline: Duration) async -> TierChain.FlushResult {
        let end = ContinuousClock.now.advanced(by: deadline)
        let finishedBefore = state.withLock { $0.finished }
        // Loops because an operation may enqueue another (a promotion) while we wait.
        while true {
            let snapshot = state.withLock { Array($0.pending.values) }
            if snapshot.isEmpty { break }
            do {
                try await withDeadline(end - ContinuousClock.now) {
                    for task in snapshot { await task.value }
                }
            } catch {
                break
            }
        }
        return state.withLock { state in
            .init(completed: state.finished - finishedBefore, pending: state.pending.count)
        }
    }
}
