#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache

/// Reusable C state (a compression or decompression context and its scratch buffer) handed to
/// one caller at a time.
///
/// `acquire` pops an idle context under the project's ``Lock`` (no allocation once the pool is
/// warm), `release` pushes it back; contexts above `limit` idle ones are freed. A context is
/// owned by exactly one caller between acquire and release, which is what makes the
/// `@unchecked Sendable` hand-over sound.
final class ContextPool<Context: AnyObject>: @unchecked Sendable {
    private let idle: LockedValueBox<[Context]>
    private let limit: Int
    private let make: @Sendable () -> Context?

    init(limit: Int = 16, make: @escaping @Sendable () -> Context?) {
        self.limit = limit
        self.make = make
        var initial: [Context] = []
        initial.reserveCapacity(limit)
        self.idle = LockedValueBox(initial)
    }

    /// An idle context, or a new one; nil only when the C library cannot allocate one.
    func acquire() -> Context? {
        if let context = idle.withLock({ $0.popLast() }) { return context }
        return make()
    }

    func release(_ context: Context) {
        var dropped: Context? = context
        idle.withLock { contexts in
            if contexts.count < limit, let kept = dropped {
                contexts.append(kept)
                dropped = nil
            }
        }
        // A context beyond the limit is freed here, outside the lock.
        dropped = nil
    }
}

/// A malloc'ed byte buffer that grows on demand and is given back to the system when a rare
/// large payload left it bigger than `retainLimit`.
struct ScratchBuffer {
    private(set) var pointer: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    static let retainLimit = 8 << 20

    /// A buffer of at least `count` bytes, or nil when malloc fails.
    mutating func reserve(_ count: Int) -> UnsafeMutableRawPointer? {
        if capacity >= count, let pointer { return pointer }
        free(pointer)
        pointer = malloc(max(count, 1))
        capacity = pointer == nil ? 0 : count
        return pointer
    }

    mutating func trim() {
        if capacity > Self.retainLimit { release() }
    }

    mutating func release() {
        free(pointer)
        pointer = nil
        capacity = 0
    }
}

/// An array holding a copy of `count` bytes at `source` (one memcpy).
@inline(__always)
func copyBytes(_ source: UnsafeRawPointer, count: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        if let base = buffer.baseAddress, count > 0 { memcpy(base, source, count) }
        initialized = count
    }
}
