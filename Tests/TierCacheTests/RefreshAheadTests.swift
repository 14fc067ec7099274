import MetricsTestKit
import Testing
@testable import TierCache
import TierCacheTesting

struct RefreshFailure: Error {}

@Suite struct RefreshAheadTests {
    let clock = ManualCacheClock()
    let metrics = TestMetrics()
    let logs = LogCapture()
    let k = try! CacheKey(namespace: "t", name: "refresh")

    func makeCache(tiers: [TierChain.Tier] = [], memory: Bool = true,
                   policy: RefreshAheadPolicy? = RefreshAheadPolicy(fraction: 0.5, retryDelay: .seconds(10))) -> Cache<Report> {
        Cache(
            configuration: .init(defaultTTL: .seconds(60), defaultStaleFor: .seconds(600), memory: memory ? .init() : nil,
                                 clock: clock, logger: logs.logger(), metricsFactory: metrics, refreshAhead: policy),
            chain: TierChain(tiers, configuration: .init(logger: logs.logger(), metricsFactory: metrics))
        )
    }

    func stored(_ tier: DictionaryTier, in cache: Cache<Report>) throws -> (value: Report, freshUntil: WallTime)? {
        guard let bytes = tier.rawBytes(for: k) else { return nil }
        let entry = try CacheEntry(decoding: bytes)
        return (try cache.decode(entry), entry.freshUntil)
    }

    static func report(_ n: Int) -> Report { Report(title: "v\(n)", numbers: [n]) }

    @Test func refreshPointIsTheFractionOfTheLifetime() {
        let created = WallTime(millisecondsSince1970: 1_000_000)
        let fresh = created.advanced(by: .seconds(100))
        #expect(RefreshAheadPolicy(fraction: 0.8).refreshPoint(createdAt: created, freshUntil: fresh) == created.advanced(by: .seconds(80)))
        #expect(RefreshAheadPolicy(fraction: 0.25).refreshPoint(createdAt: created, freshUntil: fresh) == created.advanced(by: .seconds(25)))
        #expect(RefreshAheadPolicy(fraction: 1).refreshPoint(createdAt: created, freshUntil: fresh) == fresh)
        #expect(RefreshAheadPolicy(fraction: 7).refreshPoint(createdAt: created, freshUntil: fresh) == fresh, "clamped")
        #expect(RefreshAheadPolicy(fraction: -1).refreshPoint(createdAt: created, freshUntil: fresh) == created, "clamped")
        #expect(RefreshAheadPolicy(fraction: .nan).refreshPoint(createdAt: created, freshUntil: fresh) == fresh)
        #expect(RefreshAheadPolicy().refreshPoint(createdAt: fresh, freshUntil: created) == created, "no lifetime: never early")
    }

    @Test(arguments: [true, false])
    func oneRefreshPerEntryHoweverManyHits(memory: Bool) async throws {
        let tier = DictionaryTier(name: "lower")
        let cache = makeCache(tiers: [.test(tier, behind: true)], memory: memory)
        let gate = LoaderGate(open: true)
        let version = LockedValueBox(0)
        let loader: @Sendable () async throws -> Report = {
            await gate.pass()
            return Self.report(version.withLock { $0 += 1; return $0 })
        }
        #expect(try await cache.getOrLoad(k, loader: loader).value == Self.report(1))
        await cache.flush()
        let firstExpiry = try #require(try stored(tier, in: cache)).freshUntil

        // Before half the lifetime: hits only.
        clock.advance(by: .seconds(29))
        for _ in 0..<10 { _ = try await cache.getOrLoad(k, loader: loader) }
        #expect(gate.calls == 1)
        #expect(cache.refreshesInFlight == 0)

        // Past it: a hundred concurrent hits, all answered with the current value while the one
        // refresh they started is held at the gate.
        gate.close()
        clock.advance(by: .seconds(2))
        let results = try await withThrowingTaskGroup(of: CacheResult<Report>.self) { group in
            for _ in 0..<100 { group.addTask { try await cache.getOrLoad(k, loader: loader) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0.value == Self.report(1) && !$0.isStale })
        #expect(results.allSatisfy { $0.source != .loader })
        await gate.waitForWaiting(1)
        #expect(gate.calls == 2, "one refresh for a hundred hits")
        #expect(cache.refreshesInFlight == 1)

        gate.open()
        await cache.flush()
        #expect(cache.refreshesInFlight == 0)
        let refreshed = try #require(try stored(tier, in: cache))
        #expect(refreshed.value == Self.report(2), "the refresh reached the lower tier")
        #expect(refreshed.freshUntil == firstExpiry.advanced(by: .seconds(31)), "with a lifetime counted from the refresh")
        let after = try await cache.getOrLoad(k, loader: loader)
        #expect(after.value == Self.report(2))
        #expect(after.freshUntil == refreshed.freshUntil)
        #expect(gate.calls == 2, "the new entry is not past its own refresh point")
        #expect(metrics.total(TierCacheMetrics.refreshes, [("result", "ok")]) == 1)

        // The new entry is refreshed once in its turn.
        clock.advance(by: .seconds(31))
        for _ in 0..<10 { _ = try await cache.getOrLoad(k, loader: loader) }
        await cache.flush()
        #expect(gate.calls == 3)
        #expect(try stored(tier, in: cache)?.value == Self.report(3))
    }

    @Test(arguments: [true, false])
    func aHitNeverWaitsForTheRefresh(memory: Bool) async throws {
        let tier = DictionaryTier(name: "lower")
        let cache = makeCache(tiers: [.test(tier)], memory: memory)
        let gate = LoaderGate()
        _ = try await cache.getOrLoad(k) { Self.report(1) }
        clock.advance(by: .seconds(40))
        let slowLoader: @Sendable () async throws -> Report = {
            await gate.pass()
            return Self.report(2)
        }
        // The gate stays shut until every hit below has returned: a hit that waited would hang.
        let first = try await cache.getOrLoad(k, loader: slowLoader)
        #expect(first.value == Self.report(1))
        #expect(first.source == (memory ? .memory : .tier("lower")))
        await gate.waitForWaiting(1)
        for _ in 0..<5 {
            let hit = try await cache.getOrLoad(k, loader: slowLoader)
            #expect(hit.value == Self.report(1))
            #expect(!hit.isStale)
        }
        #expect(await cache.get(k)?.value == Self.report(1))
        #expect(gate.calls == 1)
        #expect(cache.refreshesInFlight == 1)
        gate.open()
        await cache.flush()
        #expect(try await cache.getOrLoad(k, loader: slowLoader).value == Self.report(2))
        #expect(gate.calls == 1)
    }

    @Test func aMissDuringARefreshSharesItsLoaderRun() async throws {
        let tier = DictionaryTier(name: "lower")
        let cache = makeCache(tiers: [.test(tier)], memory: false)
        let gate = LoaderGate()
        _ = try await cache.getOrLoad(k) { Self.report(1) }
        clock.advance(by: .seconds(40))
        let loader: @Sendable () async throws -> Report = {
            await gate.pass()
            return Self.report(2)
        }
        _ = try await cache.getOrLoad(k, loader: loader)
        await gate.waitForWaiting(1)
        // The entry expires while the refresh is still running: the next caller misses, and
        // joins the refresh instead of running the loader a second time.
        clock.advance(by: .seconds(30))
        let staleReads = metrics.total(TierCacheMetrics.tierRequests, [("result", "stale")])
        let miss = Task { try await cache.getOrLoad(k, loader: loader) }
        // Its read of the tier found the entry stale: it is about to wait for the flight.
        while metrics.total(TierCacheMetrics.tierRequests, [("result", "stale")]) == staleReads { try await Task.sleep(for: .milliseconds(1)) }
        gate.open()
        let result = try await miss.value
        #expect(result.value == Self.report(2))
        #expect(result.source == .loader)
        #expect(gate.calls == 1, "one loader run for the refresh and the miss")
    }

    @Test(arguments: [true, false])
    func aFailedRefreshKeepsTheValueIsCountedAndBacksOff(memory: Bool) async throws {
        let tier = DictionaryTier(name: "lower")
        let cache = makeCache(tiers: [.test(tier)], memory: memory)
        _ = try await cache.getOrLoad(k) { Self.report(1) }
        let calls = LockedValueBox(0)
        let failing: @Sendable () async throws -> Report = {
            calls.withLock { $0 += 1 }
            throw RefreshFailure()
        }
        clock.advance(by: .seconds(31))
        let hit = try await cache.getOrLoad(k, loader: failing)
        #expect(hit.value == Self.report(1))
        await cache.flush()
        #expect(calls.withLock { $0 } == 1)
        #expect(metrics.total(TierCacheMetrics.refreshes, [("result", "error")]) == 1)
        #expect(metrics.total(TierCacheMetrics.loads, [("result", "error")]) == 1)
        #expect(logs.text.contains("refresh failed"))

        // The old value is still served, fresh, and the loader is not run on every hit.
        for _ in 0..<20 {
            let again = try await cache.getOrLoad(k, loader: failing)
            #expect(again.value == Self.report(1))
            #expect(!again.isStale)
        }
        await cache.flush()
        #expect(calls.withLock { $0 } == 1, "backing off for the retry delay")
        #expect(try stored(tier, in: cache)?.value == Self.report(1), "the tier keeps the old value")

        // After the retry delay, the next hit tries again.
        clock.advance(by: .seconds(10))
        _ = try await cache.getOrLoad(k) { Self.report(2) }
        await cache.flush()
        #expect(try stored(tier, in: cache)?.value == Self.report(2))
        #expect(try await cache.getOrLoad(k, loader: failing).value == Self.report(2))
        #expect(metrics.total(TierCacheMetrics.refreshes, [("result", "ok")]) == 1)
        #expect(metrics.total(TierCacheMetrics.refreshes, [("result", "error")]) == 1)
    }

    @Test func flushAwaitsARefreshAndGivesUpAtItsDeadline() async throws {
        let tier = DictionaryTier(name: "lower")
        let cache = makeCache(tiers: [.test(tier, behind: true)])
        let gate = LoaderGate()
        _ = try await cache.getOrLoad(k) { Self.report(1) }
        await cache.flush()
        clock.advance(by: .seconds(45))
        _ = try await cache.getOrLoad(k) {
            await gate.pass()
            return Self.report(2)
        }
        await gate.waitForWaiting(1)

        // The loader is held: the flush returns at its deadline, leaving the refresh running.
        let short = await cache.flush(deadline: .milliseconds(30))
        #expect(short.pending == 0)
        #expect(cache.refreshesInFlight == 1)
        #expect(logs.text.contains("refreshes still running"))
        #expect(try stored(tier, in: cache)?.value == Self.report(1))

        // A flush with time to spare returns only after the refresh and its write-behind write.
        let returned = LockedValueBox(false)
        let flush = Task {
            let result = await cache.flush(deadline: .seconds(30))
            returned.withLock { $0 = true }
            return result
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!returned.withLock { $0 }, "the flush waits for the refresh")
        gate.open()
        let result = await flush.value
        #expect(result.pending == 0)
        #expect(cache.refreshesInFlight == 0)
        #expect(try stored(tier, in: cache)?.value == Self.report(2), "written by the time the flush returned")
    }

    @Test func withoutAPolicyNothingIsRefreshed() async throws {
        let tier = DictionaryTier(name: "lower")
        let cache = makeCache(tiers: [.test(tier)], policy: nil)
        let calls = LockedValueBox(0)
        let loader: @Sendable () async throws -> Report = { Self.report(calls.withLock { $0 += 1; return $0 }) }
        _ = try await cache.getOrLoad(k, loader: loader)
        clock.advance(by: .seconds(59))
        for _ in 0..<5 { _ = try await cache.getOrLoad(k, loader: loader) }
        await cache.flush()
        #expect(calls.withLock { $0 } == 1)
        clock.advance(by: .seconds(1))
        #expect(try await cache.getOrLoad(k, loader: loader).value == Self.report(2), "expired: loaded")
        #expect(metrics.total(TierCacheMetrics.refreshes) == 0)
    }
}
