import MetricsTestKit
import Testing
import TierCache
import TierCacheTesting
@testable import TierCacheS3

/// The S3 tier inside a `TierChain`: S3 failures become counted misses within the chain's
/// deadline; hits are promoted into the tier above.
@Suite("S3 tier in a chain")
struct S3ChainTests {
    static let now = WallTime(millisecondsSince1970: 1_500)  // fresh for S3FaultTests.entry()

    @Test("a server that never answers is a miss within the chain's read deadline, counted as a timeout")
    func silentServerIsAMiss() async throws {
        let server = try S3FaultTests.objectServer()
        defer { server.stop() }
        server.enqueue(.neverAnswer, count: 10)
        let metrics = TestMetrics()
        let s3 = try S3FaultTests.tier(endpoint: server.baseURL, readTimeout: .seconds(60))
        let chain = TierChain([.local(DictionaryTier(name: "memory")), .remote(s3, readDeadline: .milliseconds(200))],
                              configuration: .init(metricsFactory: metrics))
        let clock = ContinuousClock()
        let start = clock.now
        let hit = await chain.get(S3FaultTests.key, now: Self.now)
        #expect(hit == nil)
        #expect(start.duration(to: clock.now) < .milliseconds(200) + S3FaultTests.slack)
        let timeouts = metrics.counters(label: TierCacheMetrics.tierRequests,
                                        dimensions: [("tier", "s3"), ("op", "get"), ("result", "timeout")])
        #expect(timeouts.map(\.totalValue).reduce(0, +) == 1)
    }

    @Test("refused connections are a miss; 503 twice then 200 is a hit, promoted upwards")
    func retriesInsideTheChain() async throws {
        let server = try S3FaultTests.objectServer()
        defer { server.stop() }
        let upper = DictionaryTier(name: "memory")
        let s3 = try S3FaultTests.tier(endpoint: server.baseURL)
        let chain = TierChain([.local(upper), .remote(s3, readDeadline: .seconds(30))])
        server.enqueue(.status(503), count: 2)
        let hit = try #require(await chain.get(S3FaultTests.key, now: Self.now))
        #expect(hit.tierName == "s3")
        #expect(hit.entry == S3FaultTests.entry())
        #expect(server.requestCount == 3)
        _ = await chain.flush()
        #expect(try await upper.get(S3FaultTests.key) != nil)

        let closed = try LoopbackHTTPServer { _ in .init(status: 200) }
        let port = closed.port
        closed.stop()
        let refused = TierChain([.remote(try S3FaultTests.tier(endpoint: "http://127.0.0.1:\(port)"), readDeadline: .seconds(30))])
        #expect(await refused.get(S3FaultTests.key, now: Self.now) == nil)
    }

    @Test("write-behind to S3 through the chain, flushed, read back by a fresh chain",
          .enabled(if: Moto.isAvailable, "moto is not running"))
    func writeBehindAgainstMoto() async throws {
        let bucket = Moto.uniqueBucket("chain")
        let client = try Moto.client()
        try await client.createBucket(bucket)
        let writer = TierChain([.init(S3Tier(client: client, configuration: .init(bucket: bucket, writeTimeout: .seconds(30))),
                                      readDeadline: .seconds(30), writeDeadline: .seconds(30), writeMode: .writeBehind)])
        await writer.put(S3FaultTests.entry())
        let flushed = await writer.flush(deadline: .seconds(60))
        #expect(flushed.pending == 0)
        let reader = TierChain([.remote(S3Tier(client: try Moto.client(), configuration: .init(bucket: bucket, readTimeout: .seconds(30))),
                                        readDeadline: .seconds(30))])
        let hit = try #require(await reader.get(S3FaultTests.key, now: Self.now))
        #expect(hit.entry == S3FaultTests.entry())
        #expect(!hit.isStale)
    }
}
