#if canImport(Glibc)
import Glibc
#endif
import Testing
import TierCache
import TierCacheTesting

@Suite struct MemoryTierTests {
    let clock = ManualCacheClock()

    func keys(_ count: Int) throws -> [CacheKey] { try (0..<count).map { try CacheKey(namespace: "m", name: "k\($0)") } }

    func put(_ tier: MemoryTier<Int>, _ key: CacheKey, _ value: Int, weight: Int = 1, ttl: Duration = .seconds(60)) {
        let now = clock.now()
        tier.set(key, value: value, weight: weight, freshUntil: now.advanced(by: ttl), staleUntil: now.advanced(by: ttl))
    }

    @Test(arguments: [EvictionPolicyFactory.lru, .sieve])
    func entryBudgetHolds(policy: EvictionPolicyFactory) throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 100, eviction: policy, shards: 1))
        for (i, k) in try keys(1000).enumerated() { put(tier, k, i) }
        #expect(tier.count == 100)
    }

    @Test func byteBudgetHoldsAndOversizedValuesAreSkipped() throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 1000, maxBytes: 1000, shards: 1))
        for (i, k) in try keys(50).enumerated() { put(tier, k, i, weight: 100) }
        #expect(tier.weight <= 1000)
        #expect(tier.count == 10)
        let big = try CacheKey(namespace: "m", name: "big")
        put(tier, big, 1, weight: 1001)
        #expect(tier.get(big, now: clock.now()) == nil)
    }

    @Test func expiredEntriesAreDropped() throws {
        let tier = MemoryTier<Int>()
        let k = try CacheKey(namespace: "m", name: "ttl")
        put(tier, k, 1, ttl: .seconds(5))
        #expect(tier.get(k, now: clock.now())?.value == 1)
        clock.advance(by: .seconds(5))
        #expect(tier.get(k, now: clock.now()) == nil)
        #expect(tier.count == 0)
    }

    @Test func lruEvictsTheLeastRecentlyUsed() throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 3, eviction: .lru, shards: 1))
        let k = try keys(4)
        put(tier, k[0], 0); put(tier, k[1], 1); put(tier, k[2], 2)
        _ = tier.get(k[0], now: clock.now())
        put(tier, k[3], 3)
        #expect(tier.get(k[1], now: clock.now()) == nil)
        #expect(tier.get(k[0], now: clock.now()) != nil)
    }

    @Test func sieveKeepsVisitedEntriesAndEvictsTheOldestUnvisited() throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 3, eviction: .sieve, shards: 1))
        let k = try keys(5)
        put(tier, k[0], 0); put(tier, k[1], 1); put(tier, k[2], 2)
        _ = tier.get(k[0], now: clock.now())  // visited
        put(tier, k[3], 3)  // hand passes k0 (clears its bit), evicts k1
        #expect(tier.get(k[1], now: clock.now()) == nil)
        #expect(tier.get(k[0], now: clock.now()) != nil)  // visited again
        put(tier, k[4], 4)  // hand moved on from k1's place: k2 is next unvisited
        #expect(tier.get(k[2], now: clock.now()) == nil)
        #expect(tier.get(k[0], now: clock.now()) != nil)
        #expect(tier.count == 3)
    }

    /// A hit marks its entry in its own thread's row of SIEVE's visited bytes; eviction must
    /// see a visit made on any thread.
    @Test func sieveSeesVisitsFromOtherThreads() throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 3, eviction: .sieve, shards: 1))
        let k = try keys(4)
        put(tier, k[0], 0); put(tier, k[1], 1); put(tier, k[2], 2)
        let now = clock.now()
        onNewThread { _ = tier.get(k[0], now: now) }
        put(tier, k[3], 3)
        #expect(tier.get(k[1], now: now) == nil)
        #expect(tier.get(k[0], now: now) != nil)
    }

    /// Runs `body` on a thread of its own and waits for it.
    func onNewThread(_ body: @escaping @Sendable () -> Void) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        #expect(rc == 0)
        pthread_join(thread, nil)
    }

    final class NewestFirst: EvictionPolicy {
        var order: [Int] = []
        func didInsert(slot: Int) { order.append(slot) }
        func didAccess(slot: Int) {}
        func didRemove(slot: Int) { order.removeAll { $0 == slot } }
        func victim() -> Int? { order.last }
    }

    @Test func customPolicyPlugsIn() throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 2, eviction: .custom(name: "newest") { NewestFirst() }, shards: 1))
        let k = try keys(3)
        put(tier, k[0], 0); put(tier, k[1], 1); put(tier, k[2], 2)
        #expect(tier.get(k[0], now: clock.now()) != nil)
        #expect(tier.get(k[1], now: clock.now()) == nil)
    }

    @Test func concurrentUseKeepsTheBudget() async throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 256, shards: 4))
        let all = try keys(2000)
        let now = clock.now()
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<5000 {
                        // Yield now and then: a long synchronous loop would starve the
                        // cooperative pool that other tests' deadline timers run on.
                        if i % 64 == 0 { await Task.yield() }
                        let k = all[(i * 7 + t * 13) % all.count]
                        if i % 3 == 0 {
                            tier.set(k, value: i, weight: 1, freshUntil: now.advanced(by: .seconds(60)), staleUntil: now.advanced(by: .seconds(60)))
                        } else if let hit = tier.get(k, now: now) {
                            #expect(hit.value >= 0)
                        }
                    }
                }
            }
        }
        #expect(tier.count <= 256)
    }

    /// Random sets, removes, replacements and clears against a dictionary, through table growth
    /// and removals in the middle of probe runs: every key reads back exactly what the model holds.
    @Test(arguments: [EvictionPolicyFactory.sieve, .lru])
    func matchesADictionaryThroughGrowthAndRemoval(policy: EvictionPolicyFactory) throws {
        let tier = MemoryTier<Int>(configuration: .init(maxEntries: 100_000, eviction: policy, shards: 1))
        let all = try keys(3000)
        var model: [Int: Int] = [:]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33) % bound
        }
        for step in 0..<60_000 {
            let k = next(all.count)
            switch next(10) {
            case 0..<5:
                put(tier, all[k], step)
                model[k] = step
            case 5..<8:
                tier.remove(all[k])
                model[k] = nil
            default:
                #expect(tier.get(all[k], now: clock.now())?.value == model[k])
            }
            if step == 30_000 {
                tier.removeAll()
                model = [:]
            }
        }
        #expect(tier.count == model.count)
        for (k, key) in all.enumerated() {
            #expect(tier.get(key, now: clock.now())?.value == model[k])
        }
    }

    final class Tracked: Sendable {
        let live: LockedValueBox<Int>
        init(_ live: LockedValueBox<Int>) {
            self.live = live
            live.withLock { $0 += 1 }
        }
        deinit { live.withLock { $0 -= 1 } }
    }

    /// Values the tier gives up (replaced, removed, evicted, expired, cleared, or held when the
    /// tier goes away) are released exactly once.
    @Test func releasesEveryValueItDropsAndNothingElse() throws {
        let live = LockedValueBox(0)
        do {
            let tier = MemoryTier<Tracked>(configuration: .init(maxEntries: 50, shards: 2))
            let all = try keys(200)
            let now = clock.now()
            for key in all {
                tier.set(key, value: Tracked(live), weight: 1, freshUntil: now.advanced(by: .seconds(10)), staleUntil: now.advanced(by: .seconds(10)))
            }
            #expect(live.withLock { $0 } == tier.count)
            for key in all.prefix(20) {
                tier.set(key, value: Tracked(live), weight: 1, freshUntil: now.advanced(by: .seconds(10)), staleUntil: now.advanced(by: .seconds(10)))
            }
            #expect(live.withLock { $0 } == tier.count)
            for key in all.prefix(10) { tier.remove(key) }
            #expect(live.withLock { $0 } == tier.count)
            for key in all { _ = tier.get(key, now: now.advanced(by: .seconds(11))) }  // all expired
            #expect(tier.count == 0)
            #expect(live.withLock { $0 } == 0)
            for key in all.prefix(30) {
                tier.set(key, value: Tracked(live), weight: 1, freshUntil: now.advanced(by: .seconds(10)), staleUntil: now.advanced(by: .seconds(10)))
            }
            #expect(live.withLock { $0 } == 30)
            tier.removeAll()
            #expect(live.withLock { $0 } == 0)
            for key in all.prefix(40) {
                tier.set(key, value: Tracked(live), weight: 1, freshUntil: now.advanced(by: .seconds(10)), staleUntil: now.advanced(by: .seconds(10)))
            }
            #expect(live.withLock { $0 } == 40)
        }
        #expect(live.withLock { $0 } == 0)
    }
}
