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
    let make: @Sendable () -> any EvictionPolicy

    /// A policy of your own.
    public static func custom(name: String, _ make: @escaping @Sendable () -> any EvictionPolicy) -> Self {
        Self(name: name, make: make)
    }

    /// Least recently used.
    public static let lru = Self(name: "lru", make: { LRUPolicy() })

    /// SIEVE (Zhang et al., NSDI'24): a FIFO queue with a visited bit and a moving hand. Simpler
    /// than LRU (a hit only sets a bit) and fewer misses on skewed workloads; the default.
    public static let sieve = Self(name: "sieve", make: { SIEVEPolicy() })
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

final class SIEVEPolicy: EvictionPolicy {
    private var list = SlotList()
    // A hit only sets this bit, so it lives behind a pointer: an array in a class property would
    // pay a dynamic exclusivity check on every hit.
    private var visited: UnsafeMutablePointer<Bool>
    private var capacity: Int
    /// Where the hand stands; -1 means "start from the tail".
    private var hand = -1

    init() {
        capacity = 128
        visited = Self.allocate(capacity)
    }

    deinit {
        UnsafeMutableRawPointer(visited).deallocate()
    }

    /// Cache-line aligned and a multiple of two lines, so shards' bitmaps never share a line.
    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Bool> {
        let bytes = (capacity + 127) & ~127
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128).bindMemory(to: Bool.self, capacity: bytes)
        pointer.initialize(repeating: false, count: bytes)
        return pointer
    }

    func didInsert(slot: Int) {
        list.pushHead(slot)
        if slot >= capacity {
            let grown = (max(slot + 1, capacity * 2) + 127) & ~127
            let bigger = Self.allocate(grown)
            bigger.update(from: visited, count: capacity)
            UnsafeMutableRawPointer(visited).deallocate()
            visited = bigger
            capacity = grown
        }
        visited[slot] = false
    }

    // Only writes when the bit changes: a hot entry's line then stays shared between the cores
    // reading it instead of bouncing between them.
    func didAccess(slot: Int) {
        if !visited[slot] { visited[slot] = true }
    }

    func didRemove(slot: Int) {
        if hand == slot { hand = list.prevOf(slot) }
        list.unlink(slot)
        visited[slot] = false
    }

    func victim() -> Int? {
        guard list.tail >= 0 else { return nil }
        var candidate = hand >= 0 ? hand : list.tail
        while visited[candidate] {
            visited[candidate] = false
            let toward = list.prevOf(candidate)
            candidate = toward >= 0 ? toward : list.tail
        }
        hand = list.prevOf(candidate)
        return candidate
    }
}
