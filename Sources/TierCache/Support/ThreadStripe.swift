#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A small number for the calling thread, so that structures split per thread (the memory tier's
/// reader locks) give each live thread its own part.
///
/// A thread gets the least used number on first call and keeps it until it exits, so up to
/// ``count`` threads that are alive at once get different numbers; more share.
@usableFromInline
enum ThreadStripe {
    /// How many numbers there are: the processor count rounded up to a power of two, 2 to 8.
    /// More threads than processors cannot all run at once, so they gain nothing from more.
    @usableFromInline static let count: Int = {
        let processors = max(2, min(8, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        var count = 2
        while count < processors { count <<= 1 }
        return count
    }()

    /// Threads holding each number.
    private static let users = LockedValueBox([Int](repeating: 0, count: count))

    /// The thread's number plus one (0, "none yet", is what an unset key reads as); the
    /// destructor gives the number back when the thread exits.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key) { value in
            guard let value else { return }
            let stripe = Int(bitPattern: UInt(bitPattern: value)) - 1
            ThreadStripe.users.withLock { $0[stripe] -= 1 }
        }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    /// The calling thread's number, in `0..<count`.
    @usableFromInline
    static func current() -> Int {
        if let value = pthread_getspecific(key) {
            return Int(bitPattern: UInt(bitPattern: value)) - 1
        }
        let stripe = users.withLock { users in
            let least = users.indices.min { users[$0] < users[$1] } ?? 0
            users[least] += 1
            return least
        }
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: UInt(stripe + 1)))
        return stripe
    }
}
