#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The project's one lock type: a heap-allocated `pthread_mutex_t`.
///
/// Not `Synchronization.Mutex`: on Linux that sits on futexes ThreadSanitizer cannot see, and we
/// run TSan (docs/decisions.md, note 1). Use it for short, synchronous critical sections only;
/// state that spans an `await` belongs in an actor.
@usableFromInline
package final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    // Each mutex gets a cache line (two, against adjacent-line prefetch) of its own: the memory
    // tier's shard locks sit side by side, and false sharing between them would serialize
    // threads that touch different shards.
    private static let allocationSize = max(128, MemoryLayout<pthread_mutex_t>.stride)

    package init() {
        mutex = UnsafeMutableRawPointer.allocate(byteCount: Self.allocationSize, alignment: 128)
            .bindMemory(to: pthread_mutex_t.self, capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let rc = pthread_mutex_init(mutex, nil)
        precondition(rc == 0, "pthread_mutex_init failed: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        UnsafeMutableRawPointer(mutex).deallocate()
    }

    @inlinable
    package func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    @usableFromInline
    func lock() {
        let rc = pthread_mutex_lock(mutex)
        precondition(rc == 0, "pthread_mutex_lock failed: \(rc)")
    }

    /// Waits on `condition`, releasing this lock while waiting and holding it again on return.
    /// Call only with the lock held (inside ``withLock(_:)``); spurious wake-ups happen, so wait
    /// in a loop that re-checks the predicate. Used by ``BlockingPool``.
    func wait(on condition: UnsafeMutablePointer<pthread_cond_t>) {
        let rc = pthread_cond_wait(condition, mutex)
        precondition(rc == 0, "pthread_cond_wait failed: \(rc)")
    }

    @usableFromInline
    func unlock() {
        let rc = pthread_mutex_unlock(mutex)
        precondition(rc == 0, "pthread_mutex_unlock failed: \(rc)")
    }
}

/// A value guarded by a ``Lock``.
package final class LockedValueBox<Value>: @unchecked Sendable {
    @usableFromInline let lock = Lock()
    @usableFromInline var value: Value

    package init(_ value: Value) {
        self.value = value
    }

    @inlinable
    package func withLock<T, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
