/// Keeps a read that overlapped a `remove` or a `set` of its key from copying what it read back
/// into faster tiers (promotion in ``TierChain``, the memory fill in ``Cache``).
///
/// A read takes a ticket before its first tier and gives it back when done with the value; a
/// removal bumps the key's generation when it starts and again when every tier has removed the
/// key. A ticket whose generation changed, or that is checked while a removal is running, is
/// void: the value it read may be the removed one, so it is returned to its caller (a read that
/// overlaps a remove may be ordered before it) but not stored anywhere. The check and the store
/// happen under the fence's lock, and so does the start of a removal, so a store either happens
/// before the removal starts (and is then removed by it, after any queued write for the key) or
/// not at all.
///
/// State exists only for keys with a read or a removal in flight, so the fence stays as small as
/// the number of concurrent operations. It covers one process: another process sharing a disk
/// root can still copy an entry up from S3 around a remove (docs/reliability.md).
package final class RemovalFence: Sendable {
    private struct Slot {
        var readers = 0
        var removals = 0
        var generation: UInt64 = 0
    }

    /// A read's claim on a key, valid while no removal of that key overlaps the read.
    package struct Ticket: Sendable {
        let key: CacheKey
        let generation: UInt64
    }

    private let slots = LockedValueBox<[CacheKey: Slot]>([:])

    package init() {}

    /// Registers a read of `key`; pair with ``leave(_:)``.
    package func enter(_ key: CacheKey) -> Ticket {
        slots.withLock { slots in
            slots[key, default: Slot()].readers += 1
            return Ticket(key: key, generation: slots[key]!.generation)
        }
    }

    /// Ends a read.
    package func leave(_ ticket: Ticket) {
        slots.withLock { slots in
            guard var slot = slots[ticket.key] else { return }
            slot.readers -= 1
            slots[ticket.key] = slot.readers == 0 && slot.removals == 0 ? nil : slot
        }
    }

    /// Runs `store` (under the fence's lock, so it must be short and must not take this fence)
    /// when no removal of the ticket's key has overlapped the read; returns whether it ran.
    @discardableResult
    package func unlessRemoved(_ ticket: Ticket, _ store: () -> Void) -> Bool {
        slots.withLock { slots in
            guard let slot = slots[ticket.key], slot.removals == 0, slot.generation == ticket.generation else { return false }
            store()
            return true
        }
    }

    /// Voids the tickets of reads of `key` in flight, then runs `body` under the fence's lock (the
    /// memory tier's store of a newer value): such a read may hold an older value, which must not
    /// be stored over the newer one. Keeps no state when no read of `key` is in flight.
    package func supersede(_ key: CacheKey, _ body: () -> Void) {
        slots.withLock { slots in
            slots[key]?.generation &+= 1
            body()
        }
    }

    /// Marks the start of a removal of `key` and runs `body` under the fence's lock (for the
    /// memory tier's removal); pair with ``endRemoval(_:)``.
    package func beginRemoval(_ key: CacheKey, _ body: () -> Void = {}) {
        slots.withLock { slots in
            slots[key, default: Slot()].removals += 1
            slots[key]!.generation &+= 1
            body()
        }
    }

    /// Marks the end of a removal: reads that started during it are void too (they may have read
    /// a lower tier before the removal reached it).
    package func endRemoval(_ key: CacheKey) {
        slots.withLock { slots in
            guard var slot = slots[key] else { return }
            slot.removals -= 1
            slot.generation &+= 1
            slots[key] = slot.readers == 0 && slot.removals == 0 ? nil : slot
        }
    }

    /// Keys with a read or removal in flight (for tests).
    package var trackedKeys: Int { slots.withLock { $0.count } }
}
