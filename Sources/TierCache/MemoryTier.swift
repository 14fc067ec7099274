public import CoreMetrics
import Metrics

/// The in-process tier: holds decoded values, so a hit neither deserializes nor decompresses.
///
/// Bounded by entry count and by bytes (an entry's weight is its serialized size), TTL-aware
/// through the cache's ``CacheClock``. Keys are spread over shards, each with its own locks and
/// eviction policy; the budgets are split evenly between shards. A hit takes only a lock of its
/// own thread's (one per shard per thread stripe), so hits on different threads neither wait
/// on each other nor write a common cache line; writes take all of a shard's locks.
public final class MemoryTier<Value: Sendable>: Sendable {
    /// Limits and policy.
    public struct Configuration: Sendable {
        /// The most entries held.
        public var maxEntries: Int
        /// The most bytes held, counted as serialized sizes.
        public var maxBytes: Int
        /// How a full shard picks its victim.
        public var eviction: EvictionPolicyFactory
        /// Number of shards (rounded up to a power of two); nil picks one from `maxEntries`.
        public var shards: Int?

        /// Creates a configuration. Defaults: 10,000 entries, 64 MiB, SIEVE.
        public init(maxEntries: Int = 10_000, maxBytes: Int = 64 << 20, eviction: EvictionPolicyFactory = .sieve, shards: Int? = nil) {
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
            self.eviction = eviction
            self.shards = shards
        }
    }

    /// A value found in memory with its expiry.
    public struct Hit: Sendable {
        /// The value.
        public var value: Value
        /// Until when it is fresh.
        public var freshUntil: WallTime
        /// Until when it may be served stale.
        public var staleUntil: WallTime
        /// From when a `getOrLoad` hit starts a refresh-ahead (``RefreshAheadPolicy``); equal to
        /// `freshUntil` when none is due before expiry.
        public var refreshAt: WallTime

        @usableFromInline
        init(value: Value, freshUntil: WallTime, staleUntil: WallTime, refreshAt: WallTime) {
            self.value = value
            self.freshUntil = freshUntil
            self.staleUntil = staleUntil
            self.refreshAt = refreshAt
        }
    }

    /// Owns the shards.
    private let shards: [Shard]
    /// The same shards, unretained: a hit borrows its shard from here without touching the
    /// shard's reference count (a retain and release per hit would write the shard's header
    /// line, which every thread using that shard then has to fetch back).
    /// Written once in `init`, read-only after.
    @usableFromInline nonisolated(unsafe) let shardRefs: UnsafeMutablePointer<Unmanaged<Shard>>
    @usableFromInline let shardMask: Int
    private let evictions: Counter

    /// Creates a memory tier.
    /// - Parameters:
    ///   - metricsLabel: the `cache` dimension of its metrics.
    ///   - metricsFactory: where its metrics go.
    public init(configuration: Configuration = .init(), metricsLabel: String = "default", metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        let wanted = configuration.shards ?? Self.defaultShardCount(maxEntries: configuration.maxEntries)
        var count = 1
        while count < min(max(wanted, 1), 1024) { count <<= 1 }
        let entriesPerShard = max(1, configuration.maxEntries / count)
        let bytesPerShard = max(1, configuration.maxBytes / count)
        let shards = (0..<count).map { _ in
            Shard(maxEntries: entriesPerShard, maxBytes: bytesPerShard, policy: configuration.eviction.make?())
        }
        self.shards = shards
        shardRefs = .allocate(capacity: count)
        shardRefs.initialize(from: shards.map { Unmanaged.passUnretained($0) }, count: count)
        shardMask = count - 1
        evictions = Counter(label: TierCacheMetrics.evictions, dimensions: [("cache", metricsLabel)], factory: metricsFactory)
    }

    deinit {
        shardRefs.deallocate()
    }

    /// About 256 entries a shard, at most 16 shards: enough parallelism for a function's few
    /// threads without splitting small caches into uselessly small pieces.
    static func defaultShardCount(maxEntries: Int) -> Int {
        min(16, max(1, maxEntries / 256))
    }

    /// The shard of a key: the hash's top bits (a shard's table indexes by the low ones).
    @inlinable
    func shardIndex(_ key: CacheKey) -> Int {
        Int(truncatingIfNeeded: key.hash64 >> 40) & shardMask
    }

    func shard(for key: CacheKey) -> Shard {
        shards[shardIndex(key)]
    }

    /// The value for `key` if it is still usable (fresh or stale) at `now`; expired entries are
    /// dropped on the way.
    @inlinable
    public func get(_ key: CacheKey, now: WallTime) -> Hit? {
        shardRefs[shardIndex(key)]._withUnsafeGuaranteedRef { $0.get(key, now: now) }
    }

    /// Stores a value. An entry heavier than a shard's byte budget is not stored.
    /// - Parameter refreshAt: from when a `getOrLoad` hit starts a refresh-ahead; `freshUntil`
    ///   (no refresh before expiry) when nil.
    public func set(_ key: CacheKey, value: Value, weight: Int, freshUntil: WallTime, staleUntil: WallTime, refreshAt: WallTime? = nil) {
        let evicted = shard(for: key).set(key, value: value, weight: max(weight, 0), freshUntil: freshUntil, staleUntil: max(staleUntil, freshUntil),
                                          refreshAt: min(refreshAt ?? freshUntil, freshUntil))
        if evicted > 0 { evictions.increment(by: evicted) }
    }

    /// Moves the refresh-ahead instant of the entry for `key`, if the entry held is still the one
    /// fresh until `freshUntil` (a newer value keeps its own).
    package func postponeRefresh(_ key: CacheKey, to refreshAt: WallTime, ifFreshUntil freshUntil: WallTime) {
        shard(for: key).postponeRefresh(key, to: min(refreshAt, freshUntil), ifFreshUntil: freshUntil)
    }

    /// Removes the value for `key`.
    public func remove(_ key: CacheKey) {
        shard(for: key).remove(key)
    }

    /// Removes everything.
    public func removeAll() {
        for shard in shards { shard.removeAll() }
    }

    /// Entries held.
    public var count: Int { shards.reduce(0) { $0 + $1.count } }
    /// Bytes held (serialized sizes).
    public var weight: Int { shards.reduce(0) { $0 + $1.weight } }

    // The read path is inlinable so that it is specialized for the caller's `Value`: unspecialized
    // generic code, copying values through witness tables, costs several times a dictionary hit.
    // State lives behind a pointer (a class's stored properties would pay a dynamic exclusivity
    // check on every access).
    //
    // A hit reads one word of an open-addressing table and one `Slot`: the key's precomputed
    // `hash64` picks the shard (top bits) and the table bucket (low bits), so no `Hasher` runs;
    // the table keeps 32 bits of the hash beside each slot number, so a probe rarely reads a slot
    // it does not want; the full key in the slot is compared before anything is returned.
    //
    // Locking is a "big reader" lock made of the project's `Lock`: one lock per `ThreadStripe`.
    // A hit takes only its own thread's, so hits on different threads write no common line
    // (with one lock per shard, every hit wrote the lock's line, and half the time the other core
    // had it); anything that changes the shard takes all of them, in order. Under a reader lock
    // the shard is only read, except SIEVE's visited byte, which a hit writes in its thread's
    // own row, and a custom policy's `didAccess`, which `policyLock` serializes.
    @usableFromInline
    final class Shard: @unchecked Sendable {
        /// One entry: what a hit reads, together.
        @usableFromInline
        struct Slot {
            @usableFromInline let key: CacheKey
            @usableFromInline let staleUntil: WallTime
            @usableFromInline let freshUntil: WallTime
            /// Changed only holding every lock (``postponeRefresh(_:to:ifFreshUntil:)``).
            @usableFromInline var refreshAt: WallTime
            @usableFromInline let value: Value
            @usableFromInline let weight: Int

            @usableFromInline
            init(key: CacheKey, staleUntil: WallTime, freshUntil: WallTime, refreshAt: WallTime, value: Value, weight: Int) {
                self.key = key
                self.staleUntil = staleUntil
                self.freshUntil = freshUntil
                self.refreshAt = refreshAt
                self.value = value
                self.weight = weight
            }
        }

        /// A table word: the hash's top 32 bits, then the slot number plus one; 0 is empty.
        @usableFromInline static var tagMask: UInt64 { 0xFFFF_FFFF_0000_0000 }

        @usableFromInline
        struct State {
            /// Open addressing with linear probing, at most half full; removal shifts later
            /// entries back, so there are no tombstones.
            @usableFromInline var table: UnsafeMutablePointer<UInt64>
            @usableFromInline var tableMask: Int
            /// `slots[i]` is initialized exactly when some table word names slot `i`.
            @usableFromInline var slots: UnsafeMutablePointer<Slot>
            /// SIEVE's visited marks; nil under another policy.
            @usableFromInline var visited: VisitedBytes?
            var slotCapacity: Int
            /// Slots below this have been used at least once; free ones are in `freeSlots`.
            var slotsUsed = 0
            var freeSlots: [Int32] = []
            var count = 0
            var bytes = 0
            var sieve = SIEVEQueue()

            init(sieve: Bool) {
                let tableSize = 32
                table = .allocate(capacity: tableSize)
                table.initialize(repeating: 0, count: tableSize)
                tableMask = tableSize - 1
                slotCapacity = tableSize / 2
                slots = .allocate(capacity: slotCapacity)
                visited = sieve ? VisitedBytes(capacity: slotCapacity) : nil
            }
        }

        /// One reader lock per ``ThreadStripe``, unretained (owned by `locks`).
        @usableFromInline let readLocks: UnsafeMutablePointer<Unmanaged<Lock>>
        private let locks: [Lock]
        /// Serializes a custom policy's `didAccess` between readers.
        private let policyLock = Lock()
        @usableFromInline let state: UnsafeMutablePointer<State>
        /// A custom or LRU policy; nil when the shard runs SIEVE in-line.
        @usableFromInline let policy: (any EvictionPolicy)?
        private let maxEntries: Int
        private let maxBytes: Int

        init(maxEntries: Int, maxBytes: Int, policy: (any EvictionPolicy)?) {
            precondition(maxEntries < Int(Int32.max), "a memory-tier shard holds fewer than 2^31 entries")
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
            self.policy = policy
            locks = (0..<ThreadStripe.count).map { _ in Lock() }
            readLocks = .allocate(capacity: locks.count)
            readLocks.initialize(from: locks.map { Unmanaged.passUnretained($0) }, count: locks.count)
            state = .allocate(capacity: 1)
            state.initialize(to: State(sieve: policy == nil))
        }

        deinit {
            deinitializeSlots()
            state.pointee.table.deallocate()
            state.pointee.slots.deallocate()
            state.pointee.visited?.deallocate()
            state.deinitialize(count: 1)
            state.deallocate()
            readLocks.deallocate()
        }

        /// Runs `body` holding every lock: no reader is inside.
        private func exclusively<T>(_ body: () -> T) -> T {
            for lock in locks { lock.lock() }
            defer { for lock in locks.reversed() { lock.unlock() } }
            return body()
        }

        var count: Int { exclusively { state.pointee.count } }
        var weight: Int { exclusively { state.pointee.bytes } }

        /// The slot holding `key`, if any. Must hold a lock.
        @inlinable
        func find(_ key: CacheKey) -> Int? {
            let table = state.pointee.table, mask = state.pointee.tableMask, slots = state.pointee.slots
            let hash = key.hash64
            let tag = hash & Self.tagMask
            var index = Int(truncatingIfNeeded: hash) & mask
            while true {
                let word = table[index]
                if word == 0 { return nil }
                if word & Self.tagMask == tag {
                    let slot = Int(truncatingIfNeeded: word & ~Self.tagMask) &- 1
                    if slots[slot].key == key { return slot }
                }
                index = (index &+ 1) & mask
            }
        }

        @inlinable
        func get(_ key: CacheKey, now: WallTime) -> Hit? {
            let stripe = ThreadStripe.current()
            let lock = readLocks[stripe]
            lock._withUnsafeGuaranteedRef { $0.lock() }
            var hit: Hit?
            var expired = false
            if let slot = find(key) {
                let entry = state.pointee.slots + slot
                if now < entry.pointee.staleUntil {
                    if let visited = state.pointee.visited {
                        visited.mark(slot, row: stripe)
                    } else {
                        policyDidAccess(slot)
                    }
                    hit = Hit(value: entry.pointee.value, freshUntil: entry.pointee.freshUntil, staleUntil: entry.pointee.staleUntil,
                              refreshAt: entry.pointee.refreshAt)
                } else {
                    expired = true
                }
            }
            lock._withUnsafeGuaranteedRef { $0.unlock() }
            if expired { removeIfExpired(key, now: now) }
            return hit
        }

        @usableFromInline
        func policyDidAccess(_ slot: Int) {
            policyLock.withLock { policy?.didAccess(slot: slot) }
        }

        /// Drops `key` if it is (still) past its stale-until time at `now`.
        @usableFromInline
        func removeIfExpired(_ key: CacheKey, now: WallTime) {
            exclusively {
                if let slot = find(key), !(now < state.pointee.slots[slot].staleUntil) { removeSlot(slot) }
            }
        }

        /// Returns the number of entries evicted to make room.
        func set(_ key: CacheKey, value: Value, weight: Int, freshUntil: WallTime, staleUntil: WallTime, refreshAt: WallTime) -> Int {
            exclusively {
                if let existing = find(key) { removeSlot(existing) }
                guard weight <= maxBytes else { return 0 }
                var evicted = 0
                while state.pointee.count >= maxEntries || state.pointee.bytes + weight > maxBytes, let victim = victim() {
                    removeSlot(victim)
                    evicted += 1
                }
                let slot = takeFreeSlot()
                (state.pointee.slots + slot).initialize(to: Slot(key: key, staleUntil: staleUntil, freshUntil: freshUntil, refreshAt: refreshAt, value: value, weight: weight))
                insertWord(hash: key.hash64, slot: slot)
                state.pointee.count += 1
                state.pointee.bytes += weight
                if let visited = state.pointee.visited {
                    state.pointee.sieve.didInsert(slot: slot, visited: visited)
                } else {
                    policy?.didInsert(slot: slot)
                }
                return evicted
            }
        }

        func postponeRefresh(_ key: CacheKey, to refreshAt: WallTime, ifFreshUntil freshUntil: WallTime) {
            exclusively {
                guard let slot = find(key), state.pointee.slots[slot].freshUntil == freshUntil else { return }
                state.pointee.slots[slot].refreshAt = refreshAt
            }
        }

        func remove(_ key: CacheKey) {
            exclusively {
                if let slot = find(key) { removeSlot(slot) }
            }
        }

        func removeAll() {
            exclusively {
                var occupied: [Int] = []
                forEachOccupiedSlot { occupied.append($0) }
                deinitializeSlots()
                let tableSize = state.pointee.tableMask + 1
                state.pointee.table.update(repeating: 0, count: tableSize)
                state.pointee.slotsUsed = 0
                state.pointee.freeSlots = []
                state.pointee.count = 0
                state.pointee.bytes = 0
                if let visited = state.pointee.visited {
                    state.pointee.sieve = SIEVEQueue()
                    visited.clearAll()
                } else if let policy {
                    for slot in occupied { policy.didRemove(slot: slot) }
                }
            }
        }

        /// Must hold every lock.
        private func victim() -> Int? {
            if let visited = state.pointee.visited {
                return state.pointee.sieve.victim(visited: visited)
            }
            return policy?.victim()
        }

        /// Removes the entry in an occupied slot. Must hold every lock.
        private func removeSlot(_ slot: Int) {
            let table = state.pointee.table, mask = state.pointee.tableMask, slots = state.pointee.slots
            let word = UInt64(slot + 1)
            var hole = Int(truncatingIfNeeded: slots[slot].key.hash64) & mask
            while table[hole] & ~Self.tagMask != word { hole = (hole &+ 1) & mask }
            // Shift back each later entry of the run that may sit in the hole (its home bucket
            // is not between the hole and where it is), so that every probe still finds it.
            var index = hole
            while true {
                index = (index &+ 1) & mask
                let next = table[index]
                if next == 0 { break }
                let home = Int(truncatingIfNeeded: slots[Int(truncatingIfNeeded: next & ~Self.tagMask) - 1].key.hash64) & mask
                if (index &- home) & mask >= (index &- hole) & mask {
                    table[hole] = next
                    hole = index
                }
            }
            table[hole] = 0
            state.pointee.bytes -= slots[slot].weight
            state.pointee.count -= 1
            (slots + slot).deinitialize(count: 1)
            state.pointee.freeSlots.append(Int32(slot))
            if let visited = state.pointee.visited {
                state.pointee.sieve.didRemove(slot: slot, visited: visited)
            } else {
                policy?.didRemove(slot: slot)
            }
        }

        /// A slot number to fill, growing the slot storage when none is free.
        private func takeFreeSlot() -> Int {
            if let free = state.pointee.freeSlots.popLast() { return Int(free) }
            if state.pointee.slotsUsed == state.pointee.slotCapacity { growSlots() }
            defer { state.pointee.slotsUsed += 1 }
            return state.pointee.slotsUsed
        }

        private func growSlots() {
            let capacity = state.pointee.slotCapacity * 2
            let old = state.pointee.slots
            let slots = UnsafeMutablePointer<Slot>.allocate(capacity: capacity)
            forEachOccupiedSlot { (slots + $0).moveInitialize(from: old + $0, count: 1) }
            old.deallocate()
            state.pointee.slots = slots
            state.pointee.visited = state.pointee.visited?.grown(to: capacity)
            state.pointee.slotCapacity = capacity
        }

        /// Adds a table word for `slot`, doubling the table first if it would pass half full.
        private func insertWord(hash: UInt64, slot: Int) {
            if (state.pointee.count + 1) * 2 > state.pointee.tableMask + 1 { growTable() }
            let table = state.pointee.table, mask = state.pointee.tableMask
            var index = Int(truncatingIfNeeded: hash) & mask
            while table[index] != 0 { index = (index &+ 1) & mask }
            table[index] = (hash & Self.tagMask) | UInt64(slot + 1)
        }

        private func growTable() {
            let old = state.pointee.table, oldSize = state.pointee.tableMask + 1
            let size = oldSize * 2, mask = size - 1
            let table = UnsafeMutablePointer<UInt64>.allocate(capacity: size)
            table.initialize(repeating: 0, count: size)
            let slots = state.pointee.slots
            for i in 0..<oldSize where old[i] != 0 {
                let word = old[i]
                var index = Int(truncatingIfNeeded: slots[Int(truncatingIfNeeded: word & ~Self.tagMask) - 1].key.hash64) & mask
                while table[index] != 0 { index = (index &+ 1) & mask }
                table[index] = word
            }
            old.deallocate()
            state.pointee.table = table
            state.pointee.tableMask = mask
        }

        private func forEachOccupiedSlot(_ body: (Int) -> Void) {
            let table = state.pointee.table
            for i in 0...state.pointee.tableMask where table[i] != 0 {
                body(Int(truncatingIfNeeded: table[i] & ~Self.tagMask) - 1)
            }
        }

        private func deinitializeSlots() {
            let slots = state.pointee.slots
            forEachOccupiedSlot { (slots + $0).deinitialize(count: 1) }
        }
    }
}
