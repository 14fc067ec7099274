import Logging
import MetricsTestKit
import Testing
import TierCache
import TierCacheTesting

/// A value type for the cache tests.
struct Report: Codable, Sendable, Equatable {
    var title: String
    var numbers: [Int]
}

extension TierChain.Tier {
    /// A tier with deadlines long enough for a loaded CI machine: tests about deadlines set
    /// their own.
    static func test(_ tier: any CacheTier, behind: Bool = false) -> Self {
        Self(tier, readDeadline: .seconds(10), writeDeadline: .seconds(10), writeMode: behind ? .writeBehind : .writeThrough)
    }
}

private func key(_ name: String) throws -> CacheKey { try CacheKey(namespace: "test", name: name) }

private func entry(_ key: CacheKey, clock: ManualCacheClock, fresh: Duration = .seconds(60), stale: Duration = .seconds(600), payload: [UInt8] = [1, 2, 3]) -> CacheEntry {
    let now = clock.now()
    return CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: now,
                      freshUntil: now.advanced(by: fresh), staleUntil: now.advanced(by: fresh + stale),
                      uncompressedLength: UInt64(payload.count), payload: payload)
}

@Suite struct TierChainTests {
    let clock = ManualCacheClock()
    let metrics = TestMetrics()
    let logs = LogCapture()

    func chain(_ tiers: [TierChain.Tier]) -> TierChain {
        TierChain(tiers, configuration: .init(logger: logs.logger(), metricsFactory: metrics))
    }

    @Test func firstFreshHitWinsAndIsPromotedWithItsRemainingLifetime() async throws {
        let upper = DictionaryTier(name: "upper"), lower = DictionaryTier(name: "lower")
        let chain = chain([.test(upper), .test(lower, behind: true)])
        let k = try key("a")
        let stored = entry(k, clock: clock)
        try await lower.put(stored)
        clock.advance(by: .seconds(30))

        let hit = try #require(await chain.get(k, now: clock.now()))
        #expect(hit.tierName == "lower")
        #expect(hit.isStale == false)
        await chain.flush()
        let promoted = try #require(try await upper.get(k))
        #expect(promoted.freshUntil == stored.freshUntil)  // remaining lifetime, not a fresh TTL
        #expect(promoted.staleUntil == stored.staleUntil)
        #expect(metrics.total(TierCacheMetrics.promotions, [("tier", "upper")]) == 1)

        let again = try #require(await chain.get(k, now: clock.now()))
        #expect(again.tierName == "upper")
    }

    @Test func staleUpperEntryGivesWayToAFreshLowerOne() async throws {
        let upper = DictionaryTier(name: "upper"), lower = DictionaryTier(name: "lower")
        let chain = chain([.test(upper), .test(lower)])
        let k = try key("b")
        try await upper.put(entry(k, clock: clock, fresh: .seconds(10)))
        try await lower.put(entry(k, clock: clock, fresh: .seconds(100), payload: [9]))
        clock.advance(by: .seconds(20))
        let hit = try #require(await chain.get(k, now: clock.now()))
        #expect(hit.tierName == "lower")
        #expect(hit.entry.payload == [9])
    }

    @Test func staleOnlyIsReturnedFlaggedAndExpiredIsAMiss() async throws {
        let tier = DictionaryTier()
        let chain = chain([.test(tier)])
        let k = try key("c")
        try await tier.put(entry(k, clock: clock, fresh: .seconds(10), stale: .seconds(10)))
        clock.advance(by: .seconds(15))
        let hit = try #require(await chain.get(k, now: clock.now()))
        #expect(hit.isStale)
        clock.advance(by: .seconds(10))
        #expect(await chain.get(k, now: clock.now()) == nil)
    }

    @Test func failingTierIsACountedLoggedMiss() async throws {
        let broken = FaultInjectingTier(DictionaryTier(name: "broken"))
        let good = DictionaryTier(name: "good")
        let chain = chain([.test(broken), .test(good)])
        let k = try key("d")
        try await good.put(entry(k, clock: clock))
        broken.setReadFault(.fail)
        let hit = try #require(await chain.get(k, now: clock.now()))
        #expect(hit.tierName == "good")
        #expect(metrics.total(TierCacheMetrics.tierRequests, [("tier", "broken"), ("result", "error")]) == 1)
        #expect(logs.text.contains("tier read failed"))
    }

    @Test func hungTierIsAMissWithinItsDeadline() async throws {
        let hung = FaultInjectingTier(DictionaryTier(name: "hung"))
        let chain = chain([.init(hung, readDeadline: .milliseconds(100), writeMode: .writeThrough)])
        let k = try key("e")
        try await hung.base.put(entry(k, clock: clock))
        hung.setReadFault(.hang(.seconds(60)))
        let start = ContinuousClock.now
        #expect(await chain.get(k, now: clock.now()) == nil)
        // Without the deadline this takes the full minute. The bound is loose because tests run
        // in parallel on a two-thread cooperative pool that other suites' loops may hold for a
        // few seconds; the timeout counter below says the deadline, not the tier, ended the read.
        #expect(ContinuousClock.now - start < .seconds(30))
        #expect(metrics.total(TierCacheMetrics.tierRequests, [("tier", "hung"), ("result", "timeout")]) == 1)
    }

    @Test func corruptAndForeignEntriesAreMisses() async throws {
        let tier = DictionaryTier(name: "d")
        let faulty = FaultInjectingTier(tier)
        let chain = chain([.test(faulty)])
        let k = try key("f"), other = try key("g")
        try await tier.put(entry(k, clock: clock))
        var bytes = try #require(tier.rawBytes(for: k))
        bytes[bytes.count / 2] ^= 1
        tier.setRawBytes(bytes, for: k)
        #expect(await chain.get(k, now: clock.now()) == nil)
        tier.setRawBytes(entry(other, clock: clock).encoded(), for: k)
        #expect(await chain.get(k, now: clock.now()) == nil)
        #expect(metrics.total(TierCacheMetrics.tierRequests, [("result", "corrupt")]) == 2)
    }

    @Test func writeBehindIsAwaitedByFlushAndOrderedPerKey() async throws {
        let slow = FaultInjectingTier(DictionaryTier(name: "slow"))
        slow.setWriteFault(.delay(.milliseconds(50)))
        let chain = chain([.test(slow, behind: true)])
        let k = try key("h")
        await chain.put(entry(k, clock: clock, payload: [1]))
        await chain.put(entry(k, clock: clock, payload: [2]))
        #expect(chain.pendingWrites == 2)
        // A remove waits for the writes queued before it and is itself awaited.
        await chain.remove(k)
        #expect(chain.pendingWrites == 0)
        #expect(try await slow.base.get(k) == nil)
        await chain.put(entry(k, clock: clock, payload: [3]))
        await chain.put(entry(k, clock: clock, payload: [4]))
        let result = await chain.flush(deadline: .seconds(10))
        #expect(result.pending == 0)
        #expect(result.completed == 2)
        #expect(try await slow.base.get(k)?.payload == [4])
    }

    @Test func flushDeadlineReportsWhatIsStillPending() async throws {
        let stuck = FaultInjectingTier(DictionaryTier(name: "stuck"))
        stuck.setWriteFault(.delay(.seconds(2)))
        let chain = chain([.test(stuck, behind: true)])
        await chain.put(entry(try key("i"), clock: clock))
        let result = await chain.flush(deadline: .milliseconds(50))
        #expect(result.pending == 1)
        #expect(logs.text.contains("flush deadline passed"))
        stuck.setWriteFault(.none)
        let later = await chain.flush(deadline: .seconds(10))
        #expect(later.pending == 0)
        #expect(try await stuck.base.get(try key("i")) != nil)  // not dropped
    }

    @Test func failedWritesAreCountedNotThrown() async throws {
        let broken = FaultInjectingTier(DictionaryTier(name: "broken"))
        broken.setWriteFault(.fail)
        let chain = chain([.test(broken)])
        await chain.put(entry(try key("j"), clock: clock))
        #expect(metrics.total(TierCacheMetrics.tierRequests, [("tier", "broken"), ("op", "put"), ("result", "error")]) == 1)
    }

    @Test func getManyReadsEachTierOnceForWhatIsMissing() async throws {
        let upper = DictionaryTier(name: "upper"), lower = DictionaryTier(name: "lower")
        let chain = chain([.test(upper), .test(lower)])
        let keys = try (0..<5).map { try key("m\($0)") }
        try await upper.put(entry(keys[0], clock: clock))
        for k in keys[1..<4] { try await lower.put(entry(k, clock: clock)) }
        let hits = await chain.getMany(keys, now: clock.now())
        #expect(Set(hits.keys) == Set(keys[0..<4]))
        #expect(hits[keys[0]]?.tierName == "upper")
        #expect(hits[keys[2]]?.tierName == "lower")
        await chain.flush()
        #expect(upper.count == 4)  // promoted
    }
}
