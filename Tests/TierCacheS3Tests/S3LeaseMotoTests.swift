import Foundation
import Logging
import MetricsTestKit
import Testing
import TierCache
import TierCacheTesting
@testable import TierCacheS3

/// Distributed single-flight over S3 against moto (signature checking on): conditional PUTs,
/// takeover of expired leases, waiting for the entry, the deadline. Each "process" is a
/// coordinator (and a cache) with its own S3 client and holder id.
@Suite("S3 lease coordinator against moto", .enabled(if: Moto.isAvailable, "moto is not running"))
struct S3LeaseMotoTests {
    static func tier(_ bucket: String, create: Bool = false) async throws -> S3Tier {
        let client = try Moto.client()
        if create { try await client.createBucket(bucket) }
        return S3Tier(client: client, configuration: .init(bucket: bucket, prefix: "cache", readTimeout: .seconds(30),
                                                           writeTimeout: .seconds(30)))
    }

    static func coordinator(_ tier: S3Tier, holder: String, configure: (inout S3LeaseCoordinator.Configuration) -> Void = { _ in })
        -> S3LeaseCoordinator
    {
        var configuration = S3LeaseCoordinator.Configuration(
            leaseDuration: .seconds(30), waitDeadline: .seconds(20), initialPoll: .milliseconds(20),
            maxPoll: .milliseconds(200), requestTimeout: .seconds(30), holderID: holder)
        configure(&configuration)
        return S3LeaseCoordinator(tier: tier, configuration: configuration)
    }

    static func lease(_ tier: S3Tier, _ coordinator: S3LeaseCoordinator, _ key: CacheKey) async throws -> S3LeaseCoordinator.Lease? {
        guard let object = try await tier.client.getObject(bucket: tier.configuration.bucket, key: coordinator.leaseObjectKey(for: key))
        else { return nil }
        return try JSONDecoder().decode(S3LeaseCoordinator.Lease.self, from: Data(object.body))
    }

    /// A cache over memory and an S3 tier (write-behind, as ``TierChain/Tier/remote(_:readDeadline:)`` sets it).
    static func cache(_ tier: S3Tier, coordinator: S3LeaseCoordinator, metrics: TestMetrics? = nil) -> Cache<[String]> {
        let chain = TierChain([.remote(tier, readDeadline: .seconds(30))])
        return Cache(configuration: .init(name: "lease", metricsFactory: metrics ?? TestMetrics(),
                                          coordination: .lease(coordinator)), chain: chain)
    }

    @Test("the lease object sits under the tier's prefix, so its lifecycle rule expires leases too")
    func leaseKey() async throws {
        let tier = try await Self.tier("lease-key")
        let coordinator = Self.coordinator(tier, holder: "a")
        let key = try CacheKey(namespace: "fn", name: "init")
        #expect(coordinator.leaseObjectKey(for: key) == tier.objectKey(for: key) + ".lease")
        #expect(coordinator.leaseObjectKey(for: key).hasPrefix(tier.configuration.prefix + "/"))
        let long = try CacheKey(namespace: "fn", name: String(repeating: "x", count: 1100))
        let leaseKey = coordinator.leaseObjectKey(for: long)
        #expect(leaseKey.utf8.count <= S3Tier.maxObjectKeyBytes)
        #expect(leaseKey == "cache/fn/\(long.fingerprint).lease")
    }

    @Test("PutObject If-Match and DeleteObject If-Match: compare-and-swap on the ETag")
    func conditionalWrites() async throws {
        let tier = try await Self.tier(Moto.uniqueBucket("cas"), create: true)
        let client = tier.client
        let bucket = tier.configuration.bucket
        let first = try await client.putObject(bucket: bucket, key: "k", body: [1])
        var options = S3PutOptions()
        options.ifMatch = "\"0123456789abcdef0123456789abcdef\""
        await #expect(throws: S3Error.self) { try await client.putObject(bucket: bucket, key: "k", body: [2], options: options) }
        try #require(first.etag != nil)
        options.ifMatch = first.etag
        let second = try await client.putObject(bucket: bucket, key: "k", body: [3], options: options)
        #expect(try await client.getObject(bucket: bucket, key: "k")?.body == [3])
        // The old ETag no longer matches: neither a write nor a delete goes through.
        do {
            try await client.putObject(bucket: bucket, key: "k", body: [4], options: options)
            Issue.record("a PUT with a stale If-Match succeeded")
        } catch {
            #expect(S3LeaseCoordinator.lostRace(error))
        }
        do {
            try await client.deleteObject(bucket: bucket, key: "k", ifMatch: first.etag)
            Issue.record("a DELETE with a stale If-Match succeeded")
        } catch {
            #expect(S3LeaseCoordinator.lostRace(error))
        }
        try await client.deleteObject(bucket: bucket, key: "k", ifMatch: second.etag)
        #expect(try await client.getObject(bucket: bucket, key: "k") == nil)
    }

    @Test("twelve processes miss together: one loader run, the others read the entry it stored")
    func race() async throws {
        let bucket = Moto.uniqueBucket("race")
        _ = try await Self.tier(bucket, create: true)
        let key = try CacheKey(namespace: "fn", name: "report-init")
        let runs = LockedValueBox(0)
        let metrics = TestMetrics()
        let results = try await withThrowingTaskGroup(of: CacheResult<[String]>.self) { group in
            for index in 0..<12 {
                let tier = try await Self.tier(bucket)
                let cache = Self.cache(tier, coordinator: Self.coordinator(tier, holder: "p\(index)"), metrics: metrics)
                group.addTask {
                    try await cache.getOrLoad(key) {
                        runs.withLock { $0 += 1 }
                        try await Task.sleep(for: .milliseconds(300))
                        return ["built"]
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(runs.withLock { $0 } == 1)
        #expect(results.allSatisfy { $0.value == ["built"] })
        #expect(results.filter { $0.source == .loader }.count == 1)
        #expect(results.filter { $0.source == .tier("s3") }.count == 11)
        let counts = { (result: String) in
            metrics.counters(label: TierCacheMetrics.coordinations, dimensions: [("cache", "lease"), ("result", result)])
                .reduce(0) { $0 + $1.totalValue }
        }
        #expect(counts("lead") == 1)
        #expect(counts("appeared") == 11)
        // The winner deleted its lease after the entry was written.
        let tier = try await Self.tier(bucket)
        #expect(try await Self.lease(tier, Self.coordinator(tier, holder: "x"), key) == nil)
        #expect(try await tier.get(key) != nil)
    }

    @Test("an expired lease is taken over by exactly one of many takers")
    func takeoverRace() async throws {
        let bucket = Moto.uniqueBucket("takeover")
        let tier = try await Self.tier(bucket, create: true)
        let key = try CacheKey(namespace: "fn", name: "init")
        // A holder that died: its lease expired a minute ago.
        let dead = S3LeaseCoordinator.Lease(holder: "dead", key: key.rendered, acquiredAt: 0,
                                            expiresAt: SystemCacheClock().now().millisecondsSince1970 - 60_000)
        let leaseKey = Self.coordinator(tier, holder: "x").leaseObjectKey(for: key)
        try await tier.client.putObject(bucket: bucket, key: leaseKey, body: Array(try JSONEncoder().encode(dead)))

        let turns = try await withThrowingTaskGroup(of: (String, LoadTurn).self) { group in
            for index in 0..<10 {
                let coordinator = Self.coordinator(try await Self.tier(bucket), holder: "t\(index)") {
                    $0.waitDeadline = .milliseconds(600)
                    $0.renews = false
                }
                group.addTask { ("t\(index)", await coordinator.begin(key)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let leads = turns.filter { $0.1.isLead }
        try #require(leads.count == 1, "leaders: \(leads.map(\.0))")
        #expect(turns.filter { $0.1.proceedReason == "deadline" }.count == 9)
        let stored = try #require(try await Self.lease(tier, Self.coordinator(tier, holder: "x"), key))
        #expect(stored.holder == leads[0].0)
        #expect(stored.expiresAt > SystemCacheClock().now().millisecondsSince1970)
        await leads[0].1.release()
        #expect(try await Self.lease(tier, Self.coordinator(tier, holder: "x"), key) == nil)
    }

    @Test("a holder that stops renewing loses the lease at expiry; its late release leaves the new lease alone")
    func takeoverAfterExpiry() async throws {
        let bucket = Moto.uniqueBucket("expiry")
        let tier = try await Self.tier(bucket, create: true)
        let key = try CacheKey(namespace: "fn", name: "init")
        let a = Self.coordinator(tier, holder: "a") {
            $0.leaseDuration = .milliseconds(800)
            $0.renews = false
        }
        let b = Self.coordinator(try await Self.tier(bucket), holder: "b") { $0.clockSkewTolerance = .zero }
        let first = await a.begin(key)
        try #require(first.isLead)
        let dead = try #require(try await Self.lease(tier, a, key))
        let second = await b.begin(key)
        try #require(second.isLead)
        let taken = try #require(try await Self.lease(tier, b, key))
        #expect(taken.holder == "b")
        // Both leases were dated by this machine's clock: b's starts once a's had expired.
        #expect(taken.acquiredAt >= dead.expiresAt)
        await first.release()  // If-Match on a's ETag: refused, b keeps the lease
        #expect(try await Self.lease(tier, b, key)?.holder == "b")
        await second.release()
        #expect(try await Self.lease(tier, b, key) == nil)
    }

    @Test("a holder renews its lease while it loads: the expiry moves forward, the holder stays")
    func renewal() async throws {
        let bucket = Moto.uniqueBucket("renew")
        let tier = try await Self.tier(bucket, create: true)
        let key = try CacheKey(namespace: "fn", name: "init")
        let a = Self.coordinator(tier, holder: "a") { $0.leaseDuration = .milliseconds(900) }
        let held = await a.begin(key)
        try #require(held.isLead)
        let taken = try #require(try await Self.lease(tier, a, key))
        // Renewals every 300 ms: wait until one has landed (bounded, in case none ever does).
        var renewed = taken
        let giveUp = ContinuousClock.now.advanced(by: .seconds(20))
        while renewed.expiresAt == taken.expiresAt, ContinuousClock.now < giveUp {
            try await Task.sleep(for: .milliseconds(100))
            renewed = try #require(try await Self.lease(tier, a, key))
        }
        #expect(renewed.holder == "a")
        #expect(renewed.expiresAt > taken.expiresAt)
        #expect(renewed.acquiredAt > taken.acquiredAt)
        await held.release()
        #expect(try await Self.lease(tier, a, key) == nil, "released with the renewed ETag")
    }

    @Test("the wait deadline passes: the loader runs anyway, counted with the reason")
    func deadline() async throws {
        let bucket = Moto.uniqueBucket("deadline")
        let tier = try await Self.tier(bucket, create: true)
        let key = try CacheKey(namespace: "fn", name: "init")
        let holder = await Self.coordinator(tier, holder: "slow").begin(key)
        try #require(holder.isLead)
        let metrics = TestMetrics()
        let waiting = Self.coordinator(try await Self.tier(bucket), holder: "w") { $0.waitDeadline = .milliseconds(300) }
        let cache = Self.cache(waiting.tier, coordinator: waiting, metrics: metrics)
        let result = try await cache.getOrLoad(key) { ["mine"] }
        #expect(result.source == .loader)
        #expect(result.value == ["mine"])
        let deadlines = try metrics.expectCounter(TierCacheMetrics.coordinations, [("cache", "lease"), ("result", "deadline")])
        #expect(deadlines.totalValue == 1)
        await holder.release()
    }

    @Test("a failed load releases the lease at once; the next process takes it")
    func failedLoadReleases() async throws {
        let bucket = Moto.uniqueBucket("fail")
        let tier = try await Self.tier(bucket, create: true)
        let key = try CacheKey(namespace: "fn", name: "init")
        let coordinator = Self.coordinator(tier, holder: "a")
        let cache = Self.cache(tier, coordinator: coordinator)
        struct Boom: Error {}
        await #expect(throws: Boom.self) { try await cache.getOrLoad(key) { throw Boom() } }
        #expect(try await Self.lease(tier, coordinator, key) == nil)
        let next = await Self.coordinator(try await Self.tier(bucket), holder: "b") { $0.waitDeadline = .zero }.begin(key)
        #expect(next.isLead)
        await next.release()
    }

    @Test("an unreachable lease store: the loader runs, counted as an error")
    func storeDown() async throws {
        let client = try S3Client(configuration: .init(endpoint: "http://127.0.0.1:1", credentials: .static(.init(accessKeyID: "a", secretAccessKey: "b")),
                                                       maxAttempts: 1))
        let tier = S3Tier(client: client, configuration: .init(bucket: "nowhere", readTimeout: .seconds(1)))
        let metrics = TestMetrics()
        let cache = Cache<[String]>(configuration: .init(name: "lease", metricsFactory: metrics,
                                                         coordination: .lease(S3LeaseCoordinator(tier: tier))))
        let key = try CacheKey(namespace: "fn", name: "init")
        #expect(try await cache.getOrLoad(key) { ["built"] }.source == .loader)
        #expect(try metrics.expectCounter(TierCacheMetrics.coordinations, [("cache", "lease"), ("result", "error")]).totalValue == 1)
    }
}
