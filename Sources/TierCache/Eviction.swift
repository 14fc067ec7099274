/// Decides which entry a full memory-tier shard gives up.
///
/// Entries live in numbered slots; a policy sees only slot numbers. The memory tier makes one
/// policy per shard and never calls it from two threads at once (writes hold all the shard's
/// locks; a hit's ``didAccess(slot:)`` holds a lock kept for it), so an implementation needs no
/// locking of its own and must not block. The built-in SIEVE runs in-line instead, so that hits
/// on several threads do not queue on that lock.
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

/// SIEVE's visited marks: a row of one byte per slot for each ``ThreadStripe``, so that a hit
/// marks an entry in its own thread's row, under its own reader lock, and threads never write one
/// line. A slot is visited when any row marks it. Rows are whole cache-line pairs apart.
@usableFromInline
struct VisitedBytes {
    @usableFromInline let base: UnsafeMutablePointer<UInt8>
    @usableFromInline let rowStride: Int
    let capacity: Int

    /// Zeroed marks for `capacity` slots.
    init(capacity: Int) {
        self.capacity = capacity
        rowStride = (capacity + 127) & ~127
        let bytes = rowStride * ThreadStripe.count
        base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128).bindMemory(to: UInt8.self, capacity: bytes)
        base.initialize(repeating: 0, count: bytes)
    }

    /// Marks `slot` in `row`, writing only when the mark changes: a hot entry's line then stays
    /// shared instead of bouncing. Call under that row's reader lock (or all of them).
    @inlinable
    func mark(_ slot: Int, row: Int) {
        let byte = base + (row &* rowStride &+ slot)
        if byte.pointee == 0 { byte.pointee = 1 }
    }

    /// Under all the shard's locks.
    func isSet(_ slot: Int) -> Bool {
        for row in 0..<ThreadStripe.count where base[row * rowStride + slot] != 0 { return true }
        return false
    }

    /// Under all the shard's locks.
    func clear(_ slot: Int) {
        for row in 0..<ThreadStripe.count { base[row * rowStride + slot] = 0 }
    }

    func clearAll() {
        base.update(repeating: 0, count: rowStride * ThreadStripe.count)
    }

    /// A copy with room for `capacity` slots; deallocates this one.
    func grown(to capacity: Int) -> VisitedBytes {
        let bigger = VisitedBytes(capacity: capacity)
        for row in 0..<ThreadStripe.count {
            (bigger.base + row * bigger.rowStride).update(from: base + row * rowStride, count: self.capacity)
        }
        deallocate()
        return bigger
    }

    func deallocate() {
        UnsafeMutableRawPointer(base).deallocate()
    }
}

/// SIEVE's queue and hand; the visited marks live with the memory-tier shard that runs it and
/// every call passes them in, under all the shard's locks.
struct SIEVEQueue {
    private var list = SlotList()
    /// Where the hand stands; -1 means "start from the tail".
    private var hand = -1

    mutating func didInsert(slot: Int, visited: VisitedBytes) {
        list.pushHead(slot)
        visited.clear(slot)
    }

    mutating func didRemove(slot: Int, visited: VisitedBytes) {
        if hand == slot { hand = list.prevOf(slot) }
        list.unlink(slot)
        visited.clear(slot)
    }

    /// Moves the hand from the tail toward the head, clearing visited marks, to the first
    /// unvisited entry; the hand then rests just past it.
    mutating func victim(visited: VisitedBytes) -> Int? {
        guard list.tail >= 0 else { return nil }
        var candidate = hand >= 0 ? hand : list.tail
        while visited.isSet(candidate) {
            visited.clear(candidate)
            let toward = list.prevOf(candidate)
            candidate = toward >= 0 ? toward : list.tail
        }
        hand = list.prevOf(candidate)
        return candidate
    }
}
