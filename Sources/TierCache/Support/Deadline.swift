/// Runs `operation` under a deadline and returns when either finishes first.
///
/// Unlike a task group, this returns at the deadline even when `operation` ignores cancellation:
/// the operation is cancelled and left to finish in the background, its result discarded. That is
/// what a cache on the start-up path needs: a stuck tier must not hold the caller.
/// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/timeout`` at the deadline, or
///   whatever `operation` throws.
package func withDeadline<T: Sendable>(
    _ timeout: Duration?,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    guard let timeout else { return try await operation() }
    guard timeout > .zero else { throw TierCacheError(.timeout, "deadline of \(timeout) already passed") }
    try Task.checkCancellation()

    let race = LockedValueBox(DeadlineRace<T>())

    /// Hands the outcome to the waiter once; later outcomes are dropped.
    @Sendable func finish(_ result: Result<T, any Error>) {
        let (continuation, work, timer) = race.withLock { state in
            let taken = (state.continuation, state.work, state.timer)
            state.continuation = nil
            return taken
        }
        guard let continuation else { return }
        work?.cancel()
        timer?.cancel()
        continuation.resume(with: result)
    }

    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.withLock { $0.continuation = continuation }
            let work = Task {
                do {
                    finish(.success(try await operation()))
                } catch {
                    finish(.failure(error))
                }
            }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                finish(.failure(TierCacheError(.timeout, "no answer within \(timeout)")))
            }
            let finishedAlready = race.withLock { state in
                state.work = work
                state.timer = timer
                return state.continuation == nil
            }
            if finishedAlready {
                work.cancel()
                timer.cancel()
            }
        }
    } onCancel: {
        finish(.failure(CancellationError()))
    }
}

/// The shared state of one ``withDeadline(_:_:)`` call, guarded by its box's lock.
private struct DeadlineRace<T: Sendable> {
    var continuation: CheckedContinuation<T, any Error>?
    var work: Task<Void, Never>?
    var timer: Task<Void, Never>?
}
