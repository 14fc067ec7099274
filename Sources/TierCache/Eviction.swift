/// Decides which entry a full memory-tier shard gives up.
///
/// Entries live in numbered slots; a policy sees only slot numbers. The memory tier makes one
/// policy per shard and calls it only under that shard's lock, so an implementation needs no
/// locking of its own and must not block.
public protocol EvictionPolicy: AnyObject {
    /// An entry now occupies `slot`.
    func didInsert(slot: Int)
    /// The entry in `slot` was read.
    func didAccess(slot: Int)
    /// The entry in `slot` is gone (evicted, expired, replaced or removed); the slot may be reused.
    func didRemove(slot: Int)
    /// The occupied slot to evict next, or nil when the shard is empty. The memory tier removes
    /// it and then calls ``didRemove(slot:)``.
    func victim() -> Int?
}

/// Makes the eviction policy of each memory-tier shard.
public struct EvictionPolicyFactory: Sendable {
    /// A name for logs.
    public let name: String
    /// Nil for the built-in SIEVE, which the memory tier runs in-line rather than through
    /// ``EvictionPolicy`` (a hit then costs a byte test, not a protocol call).
    let make: (@Sendable () -> any EvictionPolicy)?

    /// A policy of your own.
    public static func custom(name: String, _ make: @escaping @Sendable () -> any EvictionPolicy) -> Self {
        Self(name: name, make: make)
    }

    /// Least recently used.
    public static let lru = Self(name: "lru", make: { LRUPolicy() })

    /// SIEVE (Zhang et al., NSDI'24): a FIFO queue with a visited bit and a moving hand. Simpler
    /// than LRU (a hit only sets a bit) and fewer misses on skewed workloads; the default.
    public static let sieve = Self(name: "sieve", make: nil)
}

/// Intrusive doubly linked list over slot numbers, shared by both built-in policies.
struct SlotList {
    private(set) var head = -1  // newest
    private(set) var tail = -1  // oldest
    private var next: [Int32] = []
    private var prev: [Int32] = []

    mutating func ensureCapacity(_ slot: Int) {
        if slot >= next.count {
            let grow = max(slot + 1, next.count * 2)
            next += repeatElement(-1, count: grow - next.count)
            prev += repeatElement(-1, count: grow - prev.count)
        }
    }

    func nextOf(_ slot: Int) -> Int { Int(next[slot]) }
    func prevOf(_ slot: Int) -> Int { Int(prev[slot]) }

    mutating func pushHead(_ slot: Int) {
        ensureCapacity(slot)
        prev[slot] = -1
        next[slot] = Int32(head)
        if head >= 0 { prev[head] = Int32(slot) }
        head = slot
        if tail < 0 { tail = slot }
    }

    mutating func unlink(_ slot: Int) {
        let p = Int(prev[slot]), n = Int(next[slot])
        if p >= 0 { next[p] = Int32(n) } else { head = n }
        if n >= 0 { prev[n] = Int32(p) } else { tail = p }
        prev[slot] = -1
        next[slot] = -1
    }
}

final class LRUPolicy: EvictionPolicy {
    private var list = SlotList()

    func didInsert(slot: Int) { list.pushHead(slot) }

    func didAccess(slot: Int) {
        guard list.head != slot else { return }
        list.unlink(slot)
        list.pushHead(slot)
    }

    func didRemove(slot: Int) { list.unlink(slot) }

    func victim() -> Int? { list.tail >= 0 ? list.tail : nil }
}

/// SIEVE's queue and hand. The visited bits live with the memory-tier shard that runs it (one
/// byte per slot, set by a hit only when it changes, so a hot entry's line stays shared between
/// the cores reading it); every call passes them in, under the shard's lock.
struct SIEVEQueue {
    private var list = SlotList()
    /// Where the hand stands; -1 means "start from the tail".
    private var hand = -1

    mutating func didInsert(slot: Int, visited: UnsafeMutablePointer<UInt8>) {
        list.pushHead(slot)
        visited[slot] = 0
    }

    mutating func didRemove(slot: Int, visited: UnsafeMutablePointer<UInt8>) {
        if hand == slot { hand = list.prevOf(slot) }
        list.unlink(slot)
        visited[slot] = 0
    }

    /// Moves the hand from the tail toward the head, clearing visited bits, to the first
    /// unvisited entry; the hand then rests just past it.
    mutating func victim(visited: UnsafeMutablePointer<UInt8>) -> Int? {
        guard list.tail >= 0 else { return nil }
        var candidate = hand >= 0 ? hand : list.tail
        while visited[candidate] != 0 {
            visited[candidate] = 0
            let toward = list.prevOf(candidate)
            candidate = toward >= 0 ? toward : list.tail
        }
        hand = list.prevOf(candidate)
        return candidate
    }
}
