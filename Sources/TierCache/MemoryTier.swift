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
    }

    private let shards: [Shard]
    private let shardMask: Int
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

    @inline(__always)
    private func shard(for key: CacheKey) -> Shard {
        shards[Int(truncatingIfNeeded: key.hash64 >> 40) & shardMask]
    }

    /// The value for `key` if it is still usable (fresh or stale) at `now`; expired entries are
    /// dropped on the way.
    public func get(_ key: CacheKey, now: WallTime) -> Hit? {
        shard(for: key).get(key, now: now)
    }

    /// Stores a value. An entry heavier than a shard's byte budget is not stored.
    public func set(_ key: CacheKey, value: Value, weight: Int, freshUntil: WallTime, staleUntil: WallTime) {
        let evicted = shard(for: key).set(key, value: value, weight: max(weight, 0), freshUntil: freshUntil, staleUntil: max(staleUntil, freshUntil))
        if evicted > 0 { evictions.increment(by: evicted) }
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

    private final class Shard: @unchecked Sendable {
        private struct Slot {
            var key: CacheKey
            var value: Value
            var weight: Int
            var freshUntil: WallTime
            var staleUntil: WallTime
        }

        private let lock = Lock()
        // Everything below is guarded by `lock`.
        private var index: [CacheKey: Int] = [:]
        private var slots: [Slot?] = []
        private var freeSlots: [Int] = []
        private var bytes = 0
        private let policy: any EvictionPolicy
        private let maxEntries: Int
        private let maxBytes: Int

        init(maxEntries: Int, maxBytes: Int, policy: any EvictionPolicy) {
            self.maxEntries = maxEntries
            self.maxBytes = maxBytes
            self.policy = policy
        }

        var count: Int { lock.withLock { index.count } }
        var weight: Int { lock.withLock { bytes } }

        func get(_ key: CacheKey, now: WallTime) -> Hit? {
            lock.withLock {
                guard let slotIndex = index[key], let slot = slots[slotIndex] else { return nil }
                guard now < slot.staleUntil else {
                    removeSlot(slotIndex)
                    return nil
                }
                policy.didAccess(slot: slotIndex)
                return Hit(value: slot.value, freshUntil: slot.freshUntil, staleUntil: slot.staleUntil)
            }
        }

        /// Returns the number of entries evicted to make room.
        func set(_ key: CacheKey, value: Value, weight: Int, freshUntil: WallTime, staleUntil: WallTime) -> Int {
            lock.withLock {
                if let existing = index[key] { removeSlot(existing) }
                guard weight <= maxBytes else { return 0 }
                var evicted = 0
                while index.count >= maxEntries || bytes + weight > maxBytes, let victim = policy.victim() {
                    removeSlot(victim)
                    evicted += 1
                }
                let slot = Slot(key: key, value: value, weight: weight, freshUntil: freshUntil, staleUntil: staleUntil)
                let slotIndex: Int
                if let free = freeSlots.popLast() {
                    slotIndex = free
                    slots[free] = slot
                } else {
                    slotIndex = slots.count
                    slots.append(slot)
                }
                index[key] = slotIndex
                bytes += weight
                policy.didInsert(slot: slotIndex)
                return evicted
            }
        }

        func remove(_ key: CacheKey) {
            lock.withLock {
                if let slotIndex = index[key] { removeSlot(slotIndex) }
            }
        }

        func removeAll() {
            lock.withLock {
                for slotIndex in index.values { policy.didRemove(slot: slotIndex) }
                index.removeAll()
                slots.removeAll()
                freeSlots.removeAll()
                bytes = 0
            }
        }

        /// Must hold `lock`.
        private func removeSlot(_ slotIndex: Int) {
            guard let slot = slots[slotIndex] else { return }
            index[slot.key] = nil
            bytes -= slot.weight
            slots[slotIndex] = nil
            freeSlots.append(slotIndex)
            policy.didRemove(slot: slotIndex)
        }
    }
}
