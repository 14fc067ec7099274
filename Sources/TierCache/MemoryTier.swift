public import CoreMetrics
import Metrics

/// The in-process tier: holds decoded values, so a hit neither deserializes nor decompresses.
///
/// Bounded by entry count and by bytes (an entry's weight is its serialized size), TTL-aware
/// through the cache's ``CacheClock``. Keys are spread over shards, each with its own lock and
/// eviction policy, so threads touching different keys rarely wait on each other; the budgets are
/// split evenly between shards.
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

    @usableFromInline let shards: [Shard]
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
        shards = (0..<count).map { _ in
            Shard(maxEntries: entriesPerShard, maxBytes: bytesPerShard, policy: configuration.eviction.make())
        }
        shardMask = count - 1
        evictions = Counter(label: TierCacheMetrics.evictions, dimensions: [("cache", metricsLabel)], factory: metricsFactory)
    }

    /// About 256 entries a shard, at most 16 shards: enough parallelism for a function's few
    /// threads without splitting small caches into uselessly small pieces.
    static func defaultShardCount(maxEntries: Int) -> Int {
        min(16, max(1, maxEntries / 256))
    }

    @inlinable
    func shard(for key: CacheKey) -> Shard {
        shards[Int(truncatingIfNeeded: key.hash64 >> 40) & shardMask]
    }

    /// The value for `key` if it is still usable (fresh or stale) at `now`; expired entries are
    /// dropped on the way.
    @inlinable
    public func get(_ key: CacheKey, now: WallTime) -> Hit? {
        shard(for: key).get(key, now: now)
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
    // State lives behind a pointer and is touched only under `lock` (a class's stored properties
    // would pay a dynamic exclusivity check on every access); what a hit reads sits in one `Slot`.
    @usableFromInline
    final class Shard: @unchecked Sendable {
        /// What a hit reads, together in one element so that it costs one cache line.
        @usableFromInline
        struct Slot {
            @usableFromInline var staleUntil: WallTime
            @usableFromInline var freshUntil: WallTime
            @usableFromInline var refreshAt: WallTime
            @usableFromInline var value: Value?

            @usableFromInline
            init(staleUntil: WallTime, freshUntil: WallTime, refreshAt: WallTime, value: Value?) {
                self.staleUntil = staleUntil
                self.freshUntil = freshUntil
                self.refreshAt = refreshAt
                self.value = value
            }
        }

        @usableFromInline
        struct State {
            @usableFromInline var index: [CacheKey: Int] = [:]
            @usableFromInline var slots: ContiguousArray<Slot> = []
            @usableFromInline var keys: [CacheKey?] = []
            @usableFromInline var weights: [Int] = []
            @usableFromInline var freeSlots: [Int] = []
            @usableFromInline var bytes = 0

            @usableFromInline init() {}
        }

        @usableFromInline let lock = Lock()
        @usableFromInline let state: UnsafeMutablePointer<State>
        @usableFromInline let policy: any EvictionPolicy
        private let maxEntries: Int
        private let maxBytes: Int

        init(maxEntries: Int, maxBytes: Int, policy: any EvictionPolicy) {
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
            self.policy = policy
            state = .allocate(capacity: 1)
            state.initialize(to: State())
        }

        deinit {
            state.deinitialize(count: 1)
            state.deallocate()
        }

        var count: Int { lock.withLock { state.pointee.index.count } }
        var weight: Int { lock.withLock { state.pointee.bytes } }

        @inlinable
        func get(_ key: CacheKey, now: WallTime) -> Hit? {
            lock.lock()
            defer { lock.unlock() }
            guard let slot = state.pointee.index[key] else { return nil }
            let staleUntil = state.pointee.slots[slot].staleUntil
            guard now < staleUntil else {
                removeSlot(slot)
                return nil
            }
            policy.didAccess(slot: slot)
            guard let value = state.pointee.slots[slot].value else { return nil }
            return Hit(value: value, freshUntil: state.pointee.slots[slot].freshUntil, staleUntil: staleUntil,
                       refreshAt: state.pointee.slots[slot].refreshAt)
        }

        /// Returns the number of entries evicted to make room.
        func set(_ key: CacheKey, value: Value, weight: Int, freshUntil: WallTime, staleUntil: WallTime, refreshAt: WallTime) -> Int {
            lock.withLock {
                if let existing = state.pointee.index[key] { removeSlot(existing) }
                guard weight <= maxBytes else { return 0 }
                var evicted = 0
                while state.pointee.index.count >= maxEntries || state.pointee.bytes + weight > maxBytes, let victim = policy.victim() {
                    removeSlot(victim)
                    evicted += 1
                }
                let slot: Int
                if let free = state.pointee.freeSlots.popLast() {
                    slot = free
                    state.pointee.keys[slot] = key
                    state.pointee.slots[slot] = Slot(staleUntil: staleUntil, freshUntil: freshUntil, refreshAt: refreshAt, value: value)
                    state.pointee.weights[slot] = weight
                } else {
                    slot = state.pointee.keys.count
                    state.pointee.keys.append(key)
                    state.pointee.slots.append(Slot(staleUntil: staleUntil, freshUntil: freshUntil, refreshAt: refreshAt, value: value))
                    state.pointee.weights.append(weight)
                }
                state.pointee.index[key] = slot
                state.pointee.bytes += weight
                policy.didInsert(slot: slot)
                return evicted
            }
        }

        func postponeRefresh(_ key: CacheKey, to refreshAt: WallTime, ifFreshUntil freshUntil: WallTime) {
            lock.withLock {
                guard let slot = state.pointee.index[key], state.pointee.slots[slot].freshUntil == freshUntil else { return }
                state.pointee.slots[slot].refreshAt = refreshAt
            }
        }

        func remove(_ key: CacheKey) {
            lock.withLock {
                if let slot = state.pointee.index[key] { removeSlot(slot) }
            }
        }

        func removeAll() {
            lock.withLock {
                for slot in state.pointee.index.values { policy.didRemove(slot: slot) }
                state.pointee = State()
            }
        }

        /// Must hold `lock`.
        @usableFromInline
        func removeSlot(_ slot: Int) {
            guard let key = state.pointee.keys[slot] else { return }
            state.pointee.index[key] = nil
            state.pointee.bytes -= state.pointee.weights[slot]
            state.pointee.keys[slot] = nil
            state.pointee.slots[slot].value = nil
            state.pointee.freeSlots.append(slot)
            policy.didRemove(slot: slot)
        }
    }
}
