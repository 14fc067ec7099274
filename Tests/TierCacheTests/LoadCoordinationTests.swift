import MetricsTestKit
import Testing
@testable import TierCache
import TierCacheTesting

/// A coordinator that answers what the test tells it to, and records what it was asked. For a
/// lead it reports, at release time, whether the entry was already in `tier` (as another process
/// would then read it).
final class ScriptedCoordinator: LoadCoordinator {
    enum Answer: Sendable {
        case lead
        case appeared(by: @Sendable (CacheKey) async -> Void)
        case proceed(String)
    }

    let answer: Answer
    let tier: DictionaryTier
    private let state = LockedValueBox((asked: 0, releases: [Bool]()))

    init(_ answer: Answer, tier: DictionaryTier) {
        self.answer = answer
        self.tier = tier
    }

    var asked: Int { state.withLock { $0.asked } }
    /// Per release: whether the entry was in the tier when the lease went.
    var releases: [Bool] { state.withLock { $0.releases } }

    func begin(_ key: CacheKey) async -> LoadTurn {
        state.withLock { $0.asked += 1 }
        switch answer {
        case .lead:
            return .lead {
                let stored = self.tier.rawBytes(for: key) != nil
                self.state.withLock { $0.releases.append(stored) }
            }
        case .appeared(let store):
            await store(key)
            return .appeared
        case .proceed(let reason):
            return .proceed(reason: reason)
        }
    }
}

@Suite struct LoadCoordinationTests {
    let metrics = TestMetrics()
    let key = try! CacheKey(namespace: "fn", name: "init")

    /// A cache over a write-behind tier whose writes take 200 ms.
    func cache(_ tier: DictionaryTier, coordination: LoadCoordination = .off) -> Cache<[String]> {
        let slow = FaultInjectingTier(tier)
        slow.setWriteFault(.delay(.milliseconds(200)))
        return Cache(configuration: .init(name: "c", metricsFactory: metrics, coordination: coordination),
                     chain: TierChain([TierChain.Tier(slow, readDeadline: nil, writeMode: .writeBehind)],
                                      configuration: .init(metricsFactory: metrics)))
    }

    func count(_ result: String) -> Int64 {
        metrics.counters(label: TierCacheMetrics.coordinations, dimensions: [("cache", "c"), ("result", result)])
            .reduce(0) { $0 + $1.totalValue }
    }

    @Test("off by default; on per call; never asked on a hit")
    func offByDefault() async throws {
        let tier = DictionaryTier(name: "s3")
        let coordinator = ScriptedCoordinator(.lead, tier: tier)
        let cache = cache(tier)
        _ = try await cache.getOrLoad(key) { ["a"] }
        #expect(coordinator.asked == 0)
        await cache.remove(key)
        _ = try await cache.getOrLoad(key, coordination: .lease(coordinator)) { ["b"] }
        #expect(coordinator.asked == 1)
        _ = try await cache.getOrLoad(key, coordination: .lease(coordinator)) { ["c"] }
        #expect(coordinator.asked == 1, "a memory hit does not ask")
    }

    @Test("the lead releases only once the write-behind write is stored")
    func releaseAfterWrite() async throws {
        let tier = DictionaryTier(name: "s3")
        let coordinator = ScriptedCoordinator(.lead, tier: tier)
        let cache = cache(tier, coordination: .lease(coordinator))
        let result = try await cache.getOrLoad(key) { ["built"] }
        #expect(result.source == .loader)
        #expect(coordinator.releases == [true])
        #expect(count("lead") == 1)
    }

    @Test("a failed loader releases the lease")
    func failureReleases() async throws {
        let tier = DictionaryTier(name: "s3")
        let coordinator = ScriptedCoordinator(.lead, tier: tier)
        let cache = cache(tier, coordination: .lease(coordinator))
        await #expect(throws: LoaderFailure.self) { try await cache.getOrLoad(key) { throw LoaderFailure() } }
        #expect(coordinator.releases == [false])
    }

    @Test("appeared: the entry another process stored is served, the loader does not run")
    func appeared() async throws {
        let tier = DictionaryTier(name: "s3")
        let other = cache(DictionaryTier())  // "another process", to encode the entry
        let coordinator = ScriptedCoordinator(.appeared(by: { key in
            let now = SystemCacheClock().now()
            try? await tier.put(try! other.encode(key, value: ["theirs"], createdAt: now, freshUntil: now.advanced(by: .seconds(60)),
                                                  staleUntil: now.advanced(by: .seconds(120))))
        }), tier: tier)
        let cache = cache(tier, coordination: .lease(coordinator))
        let probe = LoaderProbe()
        let result = try await cache.getOrLoad(key) {
            await probe.call()
            return ["mine"]
        }
        #expect(result.value == ["theirs"])
        #expect(result.source == .tier("s3"))
        #expect(await probe.calls == 0)
        #expect(count("appeared") == 1)
    }

    @Test("appeared but unreadable, or proceed: the loader runs, counted with the reason")
    func loaderRunsAnyway() async throws {
        let tier = DictionaryTier(name: "s3")
        let liar = cache(tier, coordination: .lease(ScriptedCoordinator(.appeared(by: { _ in }), tier: tier)))
        #expect(try await liar.getOrLoad(key) { ["mine"] }.source == .loader)
        #expect(count("unreadable") == 1)

        let late = cache(DictionaryTier(name: "s3"), coordination: .lease(ScriptedCoordinator(.proceed("deadline"), tier: tier)))
        #expect(try await late.getOrLoad(key) { ["mine"] }.source == .loader)
        #expect(count("deadline") == 1)
    }
}
