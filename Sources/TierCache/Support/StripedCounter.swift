import Synchronization

/// A counter that threads add to on every operation without writing a common cache line: one
/// atomic slot per ``ThreadStripe``, each on lines of its own; reading sums them.
package final class StripedCounter: @unchecked Sendable {
    // 128 bytes apart: a line each, and none shared with the next by adjacent-line prefetch.
    private static let slotSize = 128
    private let slots: UnsafeMutableRawPointer

    package init() {
        slots = .allocate(byteCount: Self.slotSize * ThreadStripe.count, alignment: Self.slotSize)
        for stripe in 0..<ThreadStripe.count {
            slot(stripe).initialize(to: Atomic(0))
        }
    }

    deinit {
        for stripe in 0..<ThreadStripe.count {
            _ = slot(stripe).deinitialize(count: 1)
        }
        slots.deallocate()
    }

    private func slot(_ stripe: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (slots + Self.slotSize * stripe).assumingMemoryBound(to: Atomic<Int>.self)
    }

    /// Adds one for the calling thread.
    package func increment() {
        slot(ThreadStripe.current()).pointee.add(1, ordering: .relaxed)
    }

    /// The sum of every thread's additions so far.
    package var value: Int {
        (0..<ThreadStripe.count).reduce(0) { $0 + slot($1).pointee.load(ordering: .relaxed) }
    }
}
