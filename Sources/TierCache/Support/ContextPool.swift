#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reusable C state (a codec's compression or decompression context and its scratch buffer)
/// handed to one caller at a time; shared by the codec modules.
///
/// `acquire` pops an idle context under the project's ``Lock`` (no allocation once the pool is
/// warm), `release` pushes it back; contexts above `limit` idle ones are freed. A context is
/// owned by exactly one caller between acquire and release, which is what makes the
/// `@unchecked Sendable` hand-over sound.
package final class ContextPool<Context: AnyObject>: @unchecked Sendable {
    private let idle: LockedValueBox<[Context]>
    private let limit: Int
    private let make: @Sendable () -> Context?

    private let keep: @Sendable (Context) -> Bool

    /// - Parameters:
    ///   - limit: how many idle contexts to keep.
    ///   - keep: whether a released context is worth keeping (false frees it: a context that
    ///     grew huge for one rare large payload should not pin that memory).
    package init(limit: Int = 16, keep: @escaping @Sendable (Context) -> Bool = { _ in true }, make: @escaping @Sendable () -> Context?) {
        self.limit = limit
        self.keep = keep
        self.make = make
        var initial: [Context] = []
        initial.reserveCapacity(limit)
        self.idle = LockedValueBox(initial)
    }

    /// An idle context, or a new one; nil only when the C library cannot allocate one.
    package func acquire() -> Context? {
        if let context = idle.withLock({ $0.popLast() }) { return context }
        return make()
    }

    package func release(_ context: Context) {
        guard keep(context) else { return }
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
/// large payload left it bigger than `retainLimit`. A class, owned by one context, so that using
/// it costs no exclusivity bookkeeping on the hot path.
package final class ScratchBuffer {
    private var pointer: UnsafeMutableRawPointer?
    private var capacity = 0
    package static let retainLimit = 8 << 20

    package init() {}

    /// A buffer of at least `count` bytes, or nil when malloc fails.
    package func reserve(_ count: Int) -> UnsafeMutableRawPointer? {
        if capacity >= count, let pointer { return pointer }
        free(pointer)
        let fresh = malloc(max(count, 1))
        pointer = fresh
        capacity = fresh == nil ? 0 : count
        return fresh
    }

    package func trim() {
        if capacity > Self.retainLimit { release() }
    }

    package func release() {
        free(pointer)
        pointer = nil
        capacity = 0
    }

    deinit { free(pointer) }
}

/// An array holding a copy of `count` bytes at `source` (one memcpy).
@inline(__always)
package func copyBytes(_ source: UnsafeRawPointer, count: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        if let base = buffer.baseAddress, count > 0 { memcpy(base, source, count) }
        initialized = count
    }
}
