import Foundation
import MetricsTestKit
import Testing
import TierCache
import TierCacheHTTP
import TierCacheTesting
@testable import TierCacheS3

/// Every S3 read is bounded: GetObject by the tier's entry ceiling (or the client's), error
/// documents and other answers by small caps; over the limit is a typed error, never retried,
/// and inside a chain a counted miss.
@Suite("S3 response-size limits")
struct S3SizeLimitTests {
    static func entry(_ key: CacheKey, payloadBytes: Int) -> CacheEntry {
        let payload = (0..<payloadBytes).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        return CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 0),
                          freshUntil: WallTime(millisecondsSince1970: 4_000_000_000_000),
                          staleUntil: WallTime(millisecondsSince1970: 4_000_000_000_000),
                          uncompressedLength: UInt64(payloadBytes), payload: payload)
    }

    @Test("against moto: an object above the tier's maxEntryBytes is refused unread, counted as a miss, and never written")
    func oversizedObjectAgainstMoto() async throws {
        guard Moto.isAvailable else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("moto is required under CI=true: \(Moto.skipReason)") }
            return
        }
        let metrics = TestMetrics()
        let client = try S3Client(configuration: .init(endpoint: Moto.endpoint, credentials: .static(try #require(Moto.credentials))),
                                  metricsFactory: metrics)
        let bucket = Moto.uniqueBucket("limits")
        try await client.createBucket(bucket)
        let key = try CacheKey(namespace: "limits", name: "planted")
        // Someone with write access plants a 2 MB envelope; a tier that allows 1 MiB reads it.
        let writer = S3Tier(client: client, configuration: .init(bucket: bucket))
        try await writer.put(Self.entry(key, payloadBytes: 2_000_000))
        let reader = S3Tier(client: client, configuration: .init(bucket: bucket, maxEntryBytes: 1 << 20))
        #expect(reader.maxEntryBytes == 1 << 20)
        do {
            _ = try await reader.get(key)
            Issue.record("an object above maxEntryBytes was read")
        } catch let error as TierCacheError {
            #expect(error.code == .sizeLimitExceeded)
            #expect(error.message.contains("1048576"))
        }
        // In a cache: a counted miss.
        let chain = TierChain([.remote(reader, readDeadline: .seconds(30))], configuration: .init(metricsLabel: "limits", metricsFactory: metrics))
        let cache = Cache<String>(configuration: .init(name: "limits", memory: nil, metricsFactory: metrics), chain: chain)
        #expect(await cache.get(key) == nil)
        #expect(try metrics.expectCounter(TierCacheMetrics.tierRequests,
                                          [("cache", "limits"), ("tier", "s3"), ("op", "get"), ("result", "error")]).totalValue == 1)
        // Not retried: one GET per read, two reads so far.
        #expect(try metrics.expectCounter("tiercache_s3_requests_total", [("op", "get"), ("result", "error")]).totalValue == 2)
        #expect(try metrics.expectCounter("tiercache_s3_retries_total").totalValue == 0)
        // An entry above the ceiling is not written (nothing reaches S3).
        let other = try CacheKey(namespace: "limits", name: "too-big-to-write")
        await #expect(throws: TierCacheError.self) { try await reader.put(Self.entry(other, payloadBytes: 1_100_000)) }
        #expect(try await client.headObject(bucket: bucket, key: reader.objectKey(for: other)) == nil)
        // Under the ceiling, the same tier reads and writes as before.
        let small = try CacheKey(namespace: "limits", name: "small")
        try await reader.put(Self.entry(small, payloadBytes: 500_000))
        #expect(try await reader.get(small)?.payload.count == 500_000)
    }

    @Test("over loopback: a streamed (chunked) body, an error document and the client's default limit; none is retried")
    func streamedAndErrorBodies() async throws {
        let server = try LoopbackHTTPServer { request in
            switch request.path {
            case "/bucket/chunked":
                var wire: [UInt8] = []
                for _ in 0..<50 { wire += Array("1000\r\n".utf8) + [UInt8](repeating: 0x41, count: 4096) + [13, 10] }
                wire += Array("0\r\n\r\n".utf8)
                return .init(status: 200, headers: [("Transfer-Encoding", "chunked")], body: wire)
            case "/bucket/error":
                return .init(status: 500, body: Array("<Error><Code>InternalError</Code><Message>".utf8)
                    + [UInt8](repeating: 0x20, count: 200_000) + Array("</Message></Error>".utf8))
            case "/bucket/sized":
                return .init(status: 200, body: [UInt8](repeating: 0x42, count: 3000))
            default:
                return .init(status: 404)
            }
        }
        defer { server.stop() }
        let client = try S3Client(configuration: {
            var configuration = S3Client.Configuration(endpoint: server.baseURL, credentials: .static(accessKeyID: "a", secretAccessKey: "b"),
                                                       baseDelay: .milliseconds(5))
            configuration.maxObjectBytes = 2000
            return configuration
        }())
        func expectTooLarge(_ key: String, maxBodyBytes: Int?, sourceLocation: SourceLocation = #_sourceLocation) async {
            let before = server.requestCount
            do {
                _ = try await client.getObject(bucket: "bucket", key: key, maxBodyBytes: maxBodyBytes)
                Issue.record("\(key) was read", sourceLocation: sourceLocation)
            } catch {
                #expect(error.code == .responseTooLarge, "\(error)", sourceLocation: sourceLocation)
                #expect(!error.isRetryable, sourceLocation: sourceLocation)
                #expect(error.tierCacheError.code == .sizeLimitExceeded, sourceLocation: sourceLocation)
            }
            #expect(server.requestCount == before + 1, "not retried", sourceLocation: sourceLocation)
        }
        await expectTooLarge("chunked", maxBodyBytes: 100_000)
        #expect(try await client.getObject(bucket: "bucket", key: "chunked", maxBodyBytes: 1 << 20)?.body.count == 50 * 4096)
        // An error document far above S3's own sizes is refused, not read.
        await expectTooLarge("error", maxBodyBytes: 1 << 20)
        // Without a limit of the call's own, the client's maxObjectBytes applies.
        await expectTooLarge("sized", maxBodyBytes: nil)
        #expect(try await client.getObject(bucket: "bucket", key: "sized", maxBodyBytes: 3000)?.body.count == 3000)
    }

    @Test("the tier's ceiling counts toward the cache's decompression ceiling")
    func ceilingReachesTheCache() throws {
        let client = try S3Client(configuration: .init(endpoint: "http://127.0.0.1:9", credentials: .static(accessKeyID: "a", secretAccessKey: "b")))
        let tier = S3Tier(client: client, configuration: .init(bucket: "bucket", maxEntryBytes: 96 << 20))
        #expect(S3Tier(client: client, configuration: .init(bucket: "bucket")).maxEntryBytes == S3Tier.defaultMaxEntryBytes)
        let cache = Cache<String>(configuration: .init(memory: .init(maxBytes: 64 << 20)), chain: TierChain([.remote(tier)]))
        #expect(cache.maximumDecompressedSize == 96 << 20)
        let small = Cache<String>(configuration: .init(memory: .init(maxBytes: 4 << 20)),
                                  chain: TierChain([.remote(S3Tier(client: client, configuration: .init(bucket: "bucket", maxEntryBytes: 1 << 20)))]))
        #expect(small.maximumDecompressedSize == 4 << 20)
    }
}
