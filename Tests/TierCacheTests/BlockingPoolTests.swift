#if canImport(Glibc)
import Glibc
#endif
import TierCache
import Testing

@Suite("BlockingPool")
struct BlockingPoolTests {
    struct Boom: Error, Equatable {}

    @Test func returnsResultsAndErrors() async throws {
        let pool = BlockingPool(threadCount: 2)
        defer { pool.shutdown() }
        #expect(try await pool.run { 6 * 7 } == 42)
        await #expect(throws: Boom.self) { try await pool.run { () throws -> Int in throw Boom() } }
    }

    @Test func runsJobsOnItsOwnThreads() async throws {
        let pool = BlockingPool(threadCount: 3)
        defer { pool.shutdown() }
        let threads = try await withThrowingTaskGroup(of: UInt.self) { group in
            for _ in 0..<200 {
                group.addTask { try await pool.run { pthread_self() } }
            }
            var seen = Set<UInt>()
            for try await thread in group { seen.insert(thread) }
            return seen
        }
        #expect(!threads.isEmpty && threads.count <= 3, "only the pool's three threads ran jobs: \(threads.count)")
        let caller = pthread_self()
        #expect(!threads.contains(caller))
    }

    @Test func cancelledJobNeverStarts() async throws {
        let pool = BlockingPool(threadCount: 1)
        defer { pool.shutdown() }
        let release = LockedValueBox(false)
        let started = LockedValueBox(false)
        // Occupy the only thread until released.
        let blocker = Task {
            try await pool.run {
                started.withLock { $0 = true }
                while !release.withLock({ $0 }) { usleep(1000) }
            }
        }
        while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(1)) }
        let ran = LockedValueBox(false)
        let queued = Task { try await pool.run { ran.withLock { $0 = true } } }
        try await Task.sleep(for: .milliseconds(20))
        queued.cancel()
        // The cancelled job's task resumes while the thread is still busy: cancellation is prompt.
        await #expect(throws: CancellationError.self) { try await queued.value }
        #expect(release.withLock { $0 } == false)
        release.withLock { $0 = true }
        try await blocker.value
        #expect(try await pool.run { 1 } == 1)
        #expect(ran.withLock { $0 } == false, "the cancelled job never ran")
    }

    @Test func alreadyCancelledTaskThrowsWithoutQueueing() async throws {
        let pool = BlockingPool(threadCount: 1)
        defer { pool.shutdown() }
        let ran = LockedValueBox(false)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await pool.run { ran.withLock { $0 = true } }
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(ran.withLock { $0 } == false)
    }

    @Test func shutdownFinishesQueuedJobsThenRefuses() async throws {
        let pool = BlockingPool(threadCount: 2)
        let count = LockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask { try await pool.run { count.withLock { $0 += 1 } } }
            }
            try await group.waitForAll()
        }
        pool.shutdown()
        #expect(count.withLock { $0 } == 50)
        await #expect(throws: CancellationError.self) { try await pool.run { 1 } }
    }
}
