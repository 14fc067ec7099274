import Testing
import TierCache
import TierCacheTesting

/// A read that overlaps a `remove` must not bring the removed entry back into a faster tier or
/// memory. The lower tier holds the read after it has fetched the old entry, the remove runs to
/// completion, then the read is let go: without the fence it would promote the old entry.
@Suite struct RemovalFenceTests {
    let clock = ManualCacheClock()

    private func key(_ name: String) throws -> CacheKey { try CacheKey(namespace: "fence", name: name) }

    private func entry(_ key: CacheKey, payload: [UInt8] = [7, 7, 7]) -> CacheEntry {
        let now = clock.now()
        return CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: now,
                          freshUntil: now.advanced(by: .seconds(60)), staleUntil: now.advanced(by: .seconds(600)),
                          uncompressedLength: UInt64(payload.count), payload: payload)
    }

    /// A cache over an upper tier and a lower one whose reads can be held, the lower holding
    /// "old" for the key `name`.
    private func cacheWithOldValueBelow(_ name: String) async throws
        -> (cache: Cache<String>, upper: DictionaryTier, lowerBase: DictionaryTier, lower: FaultInjectingTier, key: CacheKey)
    {
        let upper = DictionaryTier(name: "upper"), lowerBase = DictionaryTier(name: "lower")
        let lower = FaultInjectingTier(lowerBase)
        let cache = Cache<String>(configuration: .init(clock: clock), chain: TierChain([.test(upper), .test(lower)]))
        let k = try key(name)
        let now = clock.now()
        try await lowerBase.put(cache.encode(k, value: "old", createdAt: now, freshUntil: now.advanced(by: .seconds(60)),
                                             staleUntil: now.advanced(by: .seconds(600))))
        return (cache, upper, lowerBase, lower, k)
    }

    @Test func chainReadOverlappingARemoveDoesNotPromote() async throws {
        let upper = DictionaryTier(name: "upper"), lowerBase = DictionaryTier(name: "lower")
        let lower = FaultInjectingTier(lowerBase)
        let chain = TierChain([.test(upper), .test(lower)])
        let k = try key("chain")
        try await lowerBase.put(entry(k))

        lower.holdReads()
        let now = clock.now()
        let read = Task { await chain.get(k, now: now) }
        await lower.readHeld()
        await chain.remove(k)
        #expect(lowerBase.rawBytes(for: k) == nil)
        lower.releaseReads()

        // The overlapping read may return what it read (it is ordered before the remove)...
        let hit = try #require(await read.value)
        #expect(hit.tierName == "lower")
        // ...but stores it nowhere.
        await chain.flush()
        #expect(upper.rawBytes(for: k) == nil)
        #expect(lowerBase.rawBytes(for: k) == nil)
        #expect(await chain.get(k, now: clock.now()) == nil)
        #expect(chain.fence.trackedKeys == 0)

        // A read after the remove, of a key written again, promotes as usual.
        try await lowerBase.put(entry(k))
        _ = try #require(await chain.get(k, now: clock.now()))
        await chain.flush()
        #expect(upper.rawBytes(for: k) != nil)
    }

    @Test func cacheReadOverlappingARemoveFillsNeitherMemoryNorUpperTiers() async throws {
        let (cache, upper, lowerBase, lower, k) = try await cacheWithOldValueBelow("cache")

        lower.holdReads()
        let read = Task { await cache.get(k) }
        await lower.readHeld()
        await cache.remove(k)
        lower.releaseReads()

        let result = try #require(await read.value)
        #expect(result.value == "old")
        #expect(result.source == .tier("lower"))
        await cache.flush()
        #expect(cache.memory?.get(k, now: clock.now()) == nil)
        #expect(upper.rawBytes(for: k) == nil)
        #expect(lowerBase.rawBytes(for: k) == nil)
        #expect(await cache.get(k, allowStale: true) == nil)
    }

    @Test func cacheReadOverlappingASetLeavesTheNewerValue() async throws {
        let (cache, upper, _, lower, k) = try await cacheWithOldValueBelow("set")

        lower.holdReads()
        let read = Task { await cache.get(k) }
        await lower.readHeld()
        try await cache.set(k, "new")
        lower.releaseReads()

        // The read returns what it read, but neither memory nor the upper tier goes back to it.
        #expect(try #require(await read.value).value == "old")
        await cache.flush()
        #expect(cache.memory?.get(k, now: clock.now())?.value == "new")
        let promoted = try #require(upper.rawBytes(for: k))
        #expect(try cache.decode(CacheEntry(decoding: promoted)) == "new")
        #expect(try #require(await cache.get(k)).value == "new")
        #expect(cache.chain.fence.trackedKeys == 0)
    }

    @Test func getManyOverlappingARemoveDoesNotPromoteThatKey() async throws {
        let upper = DictionaryTier(name: "upper"), lowerBase = DictionaryTier(name: "lower")
        let lower = FaultInjectingTier(lowerBase)
        let chain = TierChain([.test(upper), .test(lower)])
        let removed = try key("removed"), kept = try key("kept")
        try await lowerBase.put(entry(removed))
        try await lowerBase.put(entry(kept))

        // DictionaryTier's getMany reads key by key through `get`, so the hold catches it.
        lower.holdReads()
        let now = clock.now()
        let read = Task { await chain.getMany([removed, kept], now: now) }
        await lower.readHeld()
        await chain.remove(removed)
        lower.releaseReads()
        // Later reads of the batch are not held once released.
        let found = await read.value
        await chain.flush()
        #expect(upper.rawBytes(for: removed) == nil)
        if found[kept] != nil { #expect(upper.rawBytes(for: kept) != nil) }
        #expect(chain.fence.trackedKeys == 0)
    }

    @Test func fenceRules() throws {
        let fence = RemovalFence()
        let k = try key("rules")

        // A read with no removal stores.
        let clean = fence.enter(k)
        #expect(fence.unlessRemoved(clean) {})
        fence.leave(clean)
        #expect(fence.trackedKeys == 0)

        // A read that began before a removal is void during it and after it.
        let before = fence.enter(k)
        fence.beginRemoval(k)
        // A read that began during a removal is void too, even once the removal has ended: it may
        // have read a lower tier before the removal reached it.
        let during = fence.enter(k)
        #expect(!fence.unlessRemoved(before) {})
        #expect(!fence.unlessRemoved(during) {})
        fence.endRemoval(k)
        #expect(!fence.unlessRemoved(before) {})
        #expect(!fence.unlessRemoved(during) {})
        // A read that began after the removal ended stores.
        let after = fence.enter(k)
        #expect(fence.unlessRemoved(after) {})
        for ticket in [before, during, after] { fence.leave(ticket) }
        #expect(fence.trackedKeys == 0)

        // A removal of another key does not touch this one.
        let other = try key("other")
        let unrelated = fence.enter(k)
        fence.beginRemoval(other)
        #expect(fence.unlessRemoved(unrelated) {})
        fence.endRemoval(other)
        fence.leave(unrelated)
        #expect(fence.trackedKeys == 0)
    }
}
