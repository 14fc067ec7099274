import MetricsTestKit
import Testing
@testable import TierCache
import TierCacheTesting

/// Counts the work a serializer does, to prove a memory hit does none.
final class CountingSerializer: Serializer {
    let base = JSONSerializer()
    private let counts = LockedValueBox((encodes: 0, decodes: 0))
    var id: SerializerID { base.id }
    var decodes: Int { counts.withLock { $0.decodes } }

    func encode<Value: Encodable>(_ value: Value) throws(TierCacheError) -> [UInt8] {
        counts.withLock { $0.encodes += 1 }
        return try base.encode(value)
    }

    func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws(TierCacheError) -> Value {
        counts.withLock { $0.decodes += 1 }
        return try base.decode(type, from: bytes)
    }
}

/// A loader that counts its runs.
actor LoaderProbe {
    var calls = 0
    func call() { calls += 1 }
}

struct LoaderFailure: Error {}

@Suite struct CacheTests {
    let clock = ManualCacheClock()
    let metrics = TestMetrics()
    let logs = LogCapture()

    func makeCache(tiers: [TierChain.Tier] = [], serializer: any Serializer = JSONSerializer(), memory: MemoryTier<Report>.Configuration? = .init()) -> Cache<Report> {
        Cache(
            configuration: .init(defaultTTL: .seconds(60), defaultStaleFor: .seconds(600), serializer: serializer,
                                 memory: memory, clock: clock, logger: logs.logger(), metricsFactory: metrics),
            chain: TierChain(tiers, configuration: .init(logger: logs.logger(), metricsFactory: metrics))
        )
    }

    @Test func hundredConcurrentCallsRunTheLoaderOnce() async throws {
        let tier = DictionaryTier()
        let cache = makeCache(tiers: [.test(tier, behind: true)])
        let probe = LoaderProbe()
        let k = try CacheKey(namespace: "t", name: "single-flight")
        let results = try await withThrowingTaskGroup(of: CacheResult<Report>.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    try await cache.getOrLoad(k) {
                        await probe.call()
                        try await Task.sleep(for: .milliseconds(20))
                        return Report(title: "built", numbers: [1, 2, 3])
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(await probe.calls == 1)
        #expect(results.count == 100)
        #expect(results.allSatisfy { $0.value == Report(title: "built", numbers: [1, 2, 3]) })
        await cache.flush()
        #expect(tier.count == 1)
    }

    @Test func provenanceFollowsTheTiers() async throws {
        let tier = DictionaryTier(name: "lower")
        let cache = makeCache(tiers: [.test(tier)])
        let k = try CacheKey(namespace: "t", name: "provenance")
        let first = try await cache.getOrLoad(k) { Report(title: "x", numbers: []) }
        #expect(first.source == .loader)
        let second = try await cache.getOrLoad(k) { Issue.record("loader ran again"); return Report(title: "y", numbers: []) }
        #expect(second.source == .memory)

        // A fresh process: empty memory, same lower tier.
        let other = makeCache(tiers: [.test(tier)])
        let third = try await other.getOrLoad(k) { Issue.record("loader ran again"); return Report(title: "z", numbers: []) }
        #expect(third.source == .tier("lower"))
        #expect(third.value.title == "x")
    }

    @Test func memoryHitNeitherDeserializesNorDecompresses() async throws {
        let serializer = CountingSerializer()
        let cache = makeCache(tiers: [.test(DictionaryTier())], serializer: serializer)
        let k = try CacheKey(namespace: "t", name: "no-decode")
        try await cache.set(k, Report(title: "m", numbers: [7]))
        for _ in 0..<10 { #expect(await cache.get(k)?.source == .memory) }
        #expect(serializer.decodes == 0)
    }

    @Test func ttlExpiresThroughTheClock() async throws {
        let cache = makeCache()
        let k = try CacheKey(namespace: "t", name: "ttl")
        try await cache.set(k, Report(title: "v1", numbers: []), ttl: .seconds(10), staleFor: .seconds(5))
        #expect(await cache.get(k)?.value.title == "v1")
        clock.advance(by: .seconds(11))
        #expect(await cache.get(k) == nil)
        #expect(await cache.get(k, allowStale: true)?.isStale == true)
        clock.advance(by: .seconds(5))
        #expect(await cache.get(k, allowStale: true) == nil)
    }

    @Test func failedLoaderServesStaleFromALowerTier() async throws {
        let tier = DictionaryTier(name: "s3ish")
        let writer = makeCache(tiers: [.test(tier)])
        let k = try CacheKey(namespace: "t", name: "fail-safe")
        try await writer.set(k, Report(title: "old", numbers: [1]), ttl: .seconds(10), staleFor: .seconds(100))
        clock.advance(by: .seconds(20))

        let reader = makeCache(tiers: [.test(tier)])
        let result = try await reader.getOrLoad(k) { throw LoaderFailure() }
        #expect(result.value.title == "old")
        #expect(result.isStale)
        #expect(result.source == .tier("s3ish"))
        #expect(metrics.total(TierCacheMetrics.staleServes) == 1)

        clock.advance(by: .seconds(200))
        await #expect(throws: LoaderFailure.self) { try await reader.getOrLoad(k) { throw LoaderFailure() } }
    }

    @Test func failingAndCorruptTiersNeverReachTheCaller() async throws {
        let broken = FaultInjectingTier(DictionaryTier(name: "broken"))
        let cache = makeCache(tiers: [.test(broken)], memory: nil)
        let k = try CacheKey(namespace: "t", name: "faults")
        try await cache.set(k, Report(title: "stored", numbers: []))
        broken.setReadFault(.corrupt)
        let corrupt = try await cache.getOrLoad(k) { Report(title: "rebuilt", numbers: []) }
        #expect(corrupt.source == .loader)
        broken.setReadFault(.fail)
        broken.setWriteFault(.fail)
        let failed = try await cache.getOrLoad(k) { Report(title: "rebuilt again", numbers: []) }
        #expect(failed.value.title == "rebuilt again")
    }

    @Test func entryFromAnotherSerializerIsADecodeMiss() async throws {
        let tier = DictionaryTier(name: "shared")
        let k = try CacheKey(namespace: "t", name: "serializer")
        let now = clock.now()
        try await tier.put(CacheEntry(key: k, serializerID: SerializerID(rawValue: 200), codecID: .identity, createdAt: now,
                                      freshUntil: now.advanced(by: .seconds(60)), staleUntil: now.advanced(by: .seconds(60)),
                                      uncompressedLength: 2, payload: [1, 2]))
        let cache = makeCache(tiers: [.test(tier)])
        let result = try await cache.getOrLoad(k) { Report(title: "fresh", numbers: []) }
        #expect(result.source == .loader)
        #expect(metrics.total(TierCacheMetrics.decodeFailures) == 1)
    }

    @Test func removeReachesEveryTier() async throws {
        let upper = DictionaryTier(name: "u"), lower = DictionaryTier(name: "l")
        let cache = makeCache(tiers: [.test(upper), .test(lower, behind: true)])
        let k = try CacheKey(namespace: "t", name: "remove")
        try await cache.set(k, Report(title: "r", numbers: []))
        await cache.remove(k)
        await cache.flush()
        #expect(upper.count == 0)
        #expect(lower.count == 0)
        #expect(await cache.get(k) == nil)
    }
}
