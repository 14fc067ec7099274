#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed set of dedicated threads for blocking work (file I/O, blocking C calls), so that such
/// work never occupies a thread of Swift's cooperative pool.
///
/// `await pool.run { ... }` queues the closure and suspends the calling task; one of the pool's
/// threads runs it and resumes the task with its result or error. Jobs start in the order they
/// were queued. The queue is guarded by the project's ``Lock`` and a `pthread_cond_t`; idle
/// threads sleep on the condition variable.
///
/// Cancellation: a job whose task is cancelled before a thread has started it never runs, and the
/// task resumes at once with `CancellationError`. Once started, a job runs to completion (a
/// blocking call cannot be interrupted safely); check a flag of your own inside long jobs.
///
/// Use ``shared`` unless you need isolation; a pool you create lives until ``shutdown()``.
///
/// Jobs resume their tasks through `CheckedContinuation`: with `UnsafeContinuation` resumed from
/// a thread of ours, ThreadSanitizer reports a race inside the runtime (swiftlang/swift#57803),
/// and we run TSan.
package final class BlockingPool: @unchecked Sendable {
    /// The process-wide pool: `max(4, 2 × cores)` threads, at most 16. Never shut down.
    package static let shared: BlockingPool = {
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return BlockingPool(threadCount: min(16, max(4, 2 * max(1, cores))))
    }()

    /// The number of threads.
    package let threadCount: Int

    private let lock = Lock()
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `lock`: a FIFO as an array plus a head index, compacted now and then.
    private var queue: [any PoolJob] = []
    private var head = 0
    private var stopping = false
    private var threads: [pthread_t] = []

    /// Starts `threadCount` threads (at least 1).
    package init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        let rc = pthread_cond_init(condition, nil)
        precondition(rc == 0, "pthread_cond_init failed: \(rc)")
        var started: [pthread_t] = []
        for _ in 0..<self.threadCount {
            started.append(Self.startThread { [self] in self.workerLoop() })
        }
        lock.withLock { threads = started }
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deinitialize(count: 1)
        condition.deallocate()
    }

    /// Runs `body` on one of the pool's threads and returns its result.
    /// - Throws: `CancellationError` when the task is cancelled before the job starts (the body
    ///   then never runs); otherwise whatever `body` throws.
    package func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try Task.checkCancellation()
        let job = Job(body)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let accepted: Bool = lock.withLock {
                    if job.cancelled || stopping { return false }
                    job.continuation = continuation
                    queue.append(job)
                    return true
                }
                if accepted {
                    pthread_cond_signal(condition)
                } else {
                    continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let waiting: CheckedContinuation<T, any Error>? = lock.withLock {
                job.cancelled = true
                defer { job.continuation = nil }
                return job.continuation
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    /// Queues `body` to run on one of the pool's threads and returns at once (fire and forget):
    /// for best-effort work nobody waits for. Dropped when the pool is shutting down.
    package func execute(_ body: @escaping @Sendable () -> Void) {
        let job = FireAndForget(body)
        let accepted: Bool = lock.withLock {
            if stopping { return false }
            queue.append(job)
            return true
        }
        if accepted { pthread_cond_signal(condition) }
    }

    /// Stops the threads after they have finished the jobs already queued, and waits for them.
    /// Later calls to ``run(_:)`` throw `CancellationError`. Never call it on ``shared``, nor from
    /// one of the pool's own threads.
    package func shutdown() {
        let toJoin: [pthread_t] = lock.withLock {
            stopping = true
            defer { threads = [] }
            return threads
        }
        pthread_cond_broadcast(condition)
        for thread in toJoin {
            pthread_join(thread, nil)
        }
    }

    private func workerLoop() {
        while true {
            let work: (() -> Void)? = lock.withLock {
                while head == queue.count {
                    if stopping { return nil }
                    lock.wait(on: condition)
                }
                let job = queue[head]
                head += 1
                if head == queue.count {
                    queue.removeAll(keepingCapacity: true)
                    head = 0
                } else if head >= 1024, head * 2 >= queue.count {
                    queue.removeFirst(head)
                    head = 0
                }
                // A cancelled job yields no work: its task has been resumed already.
                return job.start() ?? {}
            }
            guard let work else { return }
            work()
        }
    }

    private static func startThread(_ body: @escaping () -> Void) -> pthread_t {
        final class Box {
            let body: () -> Void
            init(body: @escaping () -> Void) { self.body = body }
        }
        let box = Unmanaged.passRetained(Box(body: body)).toOpaque()
        #if canImport(Darwin)
        var thread: pthread_t?
        #else
        var thread = pthread_t()
        #endif
        let rc = pthread_create(&thread, nil, { raw in
            #if canImport(Darwin)
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            #else
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            #endif
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        #if canImport(Darwin)
        return thread!
        #else
        return thread
        #endif
    }
}

/// A queued job; `start()` is called with the pool's lock held.
private protocol PoolJob: AnyObject {
    /// Claims the job and returns the work to run outside the lock, or nil if it was cancelled.
    func start() -> (() -> Void)?
}

private final class Job<T: Sendable>: PoolJob, @unchecked Sendable {
    let body: @Sendable () throws -> T
    // Guarded by the pool's lock.
    var continuation: CheckedContinuation<T, any Error>?
    var cancelled = false

    init(_ body: @escaping @Sendable () throws -> T) {
        self.body = body
    }

    func start() -> (() -> Void)? {
        guard !cancelled, let continuation else { return nil }
        self.continuation = nil
        let body = self.body
        return { continuation.resume(with: Result { try body() }) }
    }
}

private final class FireAndForget: PoolJob, @unchecked Sendable {
    let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
    }

    func start() -> (() -> Void)? { body }
}
