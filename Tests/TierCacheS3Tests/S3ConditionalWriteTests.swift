import Foundation
import MetricsTestKit
import Testing
import TierCache
import TierCacheTesting
@testable import TierCacheS3

/// A conditional write whose answer was lost, retried, gets 412 for its own write: the client
/// reads the object back and recognises it. moto (signature checking on) behind the project's
/// ``FaultProxy``, which loses the first answer.
@Suite("Conditional writes after a lost answer", .enabled(if: Moto.isAvailable, "moto is not running"))
struct S3ConditionalWriteTests {
    let key = try! CacheKey(namespace: "fn", name: "init")

    @Test("If-None-Match: * whose answer is lost: the retry's 412 is recognised as this write's own")
    func lostAnswerIfNoneMatch() async throws {
        let bucket = try await S3LeaseReleaseTests.bucket("cas-lost")
        let proxy = try FaultProxy(upstreamPort: try S3LeaseReleaseTests.motoPort)
        defer { proxy.stop() }
        let client = try S3LeaseReleaseTests.tier(bucket, through: proxy).client
        var options = S3PutOptions(ifNoneMatch: "*")
        options.metadata = ["lease-holder": "a"]
        proxy.enqueue(.loseAnswer)
        let result = try await client.putObject(bucket: bucket, key: "k", body: [1, 2, 3], options: options)
        let stored = try #require(try await Moto.client().headObject(bucket: bucket, key: "k"))
        #expect(result.etag == stored.etag)
        #expect(stored.metadata["lease-holder"] == "a")
        #expect(proxy.requestCount >= 3, "PUT, lost; PUT, 412; HEAD")
    }

    @Test("If-Match whose answer is lost: the retry's 412 is recognised, and the new ETag returned")
    func lostAnswerIfMatch() async throws {
        let bucket = try await S3LeaseReleaseTests.bucket("cas-lost-match")
        let proxy = try FaultProxy(upstreamPort: try S3LeaseReleaseTests.motoPort)
        defer { proxy.stop() }
        let client = try S3LeaseReleaseTests.tier(bucket, through: proxy).client
        let first = try await client.putObject(bucket: bucket, key: "k", body: [1])
        var options = S3PutOptions()
        options.ifMatch = first.etag
        proxy.enqueue(.loseAnswer)
        let second = try await client.putObject(bucket: bucket, key: "k", body: [2], options: options)
        let stored = try #require(try await Moto.client().getObject(bucket: bucket, key: "k"))
        #expect(stored.body == [2])
        #expect(second.etag == stored.etag)
        #expect(second.etag != first.etag)
    }

    @Test("a race lost for real still fails after a retry: another writer's object is not taken for ours")
    func realRaceAfterRetry() async throws {
        let bucket = try await S3LeaseReleaseTests.bucket("cas-real")
        let proxy = try FaultProxy(upstreamPort: try S3LeaseReleaseTests.motoPort)
        defer { proxy.stop() }
        try await Moto.client().putObject(bucket: bucket, key: "k", body: [9], options: S3PutOptions(ifNoneMatch: "*"))
        let client = try S3LeaseReleaseTests.tier(bucket, through: proxy).client
        proxy.enqueue(.status(503))  // a failed first attempt: the retry is what meets the other writer
        do {
            try await client.putObject(bucket: bucket, key: "k", body: [1], options: S3PutOptions(ifNoneMatch: "*"))
            Issue.record("a conditional PUT on another writer's object succeeded")
        } catch {
            #expect(error.code == .preconditionFailed)
        }
        #expect(try await Moto.client().getObject(bucket: bucket, key: "k")?.body == [9])
    }

    @Test("firstWriterWins: a write whose answer was lost is not counted as lost")
    func tierFirstWriterLostAnswer() async throws {
        let bucket = try await S3LeaseReleaseTests.bucket("fww-lost")
        let proxy = try FaultProxy(upstreamPort: try S3LeaseReleaseTests.motoPort)
        defer { proxy.stop() }
        let metrics = TestMetrics()
        let base = try S3LeaseReleaseTests.tier(bucket, through: proxy)
        var configuration = base.configuration
        configuration.firstWriterWins = true
        let tier = S3Tier(client: base.client, configuration: configuration, metricsFactory: metrics)
        let entry = CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 0),
                               freshUntil: WallTime(millisecondsSince1970: 1), staleUntil: WallTime(millisecondsSince1970: 2),
                               uncompressedLength: 2, payload: [1, 2])
        proxy.enqueue(.loseAnswer)
        try await tier.put(entry)
        #expect(try metrics.expectCounter("tiercache_s3_writes_lost_total", [("tier", "s3")]).totalValue == 0)
        #expect(try await tier.get(key) == entry)
    }
}
