import MetricsTestKit
import Testing
import TierCache
import TierCacheTesting
@testable import TierCacheS3

@Suite("S3 metrics")
struct S3MetricsTests {
    @Test("requests, retries and revalidations are counted")
    func counted() async throws {
        let metrics = TestMetrics()
        let server = try S3FaultTests.objectServer()
        defer { server.stop() }
        server.enqueue(.status(503), count: 1)
        let client = try S3Client(
            configuration: .init(endpoint: server.baseURL, credentials: .static(accessKeyID: "a", secretAccessKey: "b"),
                                 baseDelay: .milliseconds(5)),
            metricsFactory: metrics)
        let tier = S3Tier(client: client, configuration: .init(name: "s3-test", bucket: "bucket", readTimeout: .seconds(30)), metricsFactory: metrics)
        #expect(try await tier.get(S3FaultTests.key) != nil)  // one 503, then 200
        #expect(try await tier.get(S3FaultTests.key) != nil)  // 304
        #expect(try await tier.get(try CacheKey(namespace: "faults", name: "absent")) == nil)  // 404

        #expect(try metrics.expectCounter("tiercache_s3_retries_total").totalValue == 1)
        #expect(try metrics.expectCounter("tiercache_s3_requests_total", [("op", "get"), ("result", "ok")]).totalValue == 2)
        #expect(try metrics.expectCounter("tiercache_s3_requests_total", [("op", "get"), ("result", "notFound")]).totalValue == 1)
        #expect(try metrics.expectCounter("tiercache_s3_revalidations_total",
                                          [("tier", "s3-test"), ("result", "notModified")]).totalValue == 1)
    }
}
