import Foundation
import Logging
import Testing
import TierCache
import TierCacheHTTP
import TierCacheTesting
@testable import TierCacheS3

/// Faults through the loopback server: refused connections, a server that never answers, 503s
/// then success, and 4xx that must not be retried. The tier must miss (throw, which the chain
/// counts as a miss) within its deadline, or succeed after retries.
///
/// The whole test suite runs in parallel on a loaded 2-core machine, where a task can wait
/// seconds for a thread: deadlines meant to be reached are short, deadlines meant not to matter
/// are long (30 s), and "within its deadline" allows `slack` for scheduling.
@Suite("S3 faults")
struct S3FaultTests {
    static let key = try! CacheKey(namespace: "faults", name: "entry", schemaVersion: 3)

    static func entry() -> CacheEntry {
        CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 1_000),
                   freshUntil: WallTime(millisecondsSince1970: 2_000), staleUntil: WallTime(millisecondsSince1970: 3_000),
                   uncompressedLength: 3, payload: [1, 2, 3])
    }

    static let slack = Duration.seconds(10)

    static func tier(endpoint: String, readTimeout: Duration = .seconds(30), maxAttempts: Int = 3) throws -> S3Tier {
        let client = try S3Client(configuration: .init(
            region: .usEast1, endpoint: endpoint, credentials: .static(accessKeyID: "AKIDFAULT", secretAccessKey: "faultsecret"),
            maxAttempts: maxAttempts, baseDelay: .milliseconds(20), connectTimeout: .milliseconds(500)))
        return S3Tier(client: client, configuration: .init(bucket: "bucket", readTimeout: readTimeout))
    }

    /// Serves the envelope for GETs of the entry's object, 404 otherwise.
    static func objectServer() throws -> LoopbackHTTPServer {
        let body = entry().encoded()
        let path = "/bucket/" + S3Tier.objectKey(for: key, prefix: "tiercache")
        return try LoopbackHTTPServer { request in
            guard request.path == path else { return .init(status: 404) }
            if request.header("If-None-Match") == "\"etag-1\"" { return .init(status: 304, headers: [("ETag", "\"etag-1\"")]) }
            return .init(status: 200, headers: [("ETag", "\"etag-1\""), ("x-amz-request-id", "R1")], body: body)
        }
    }

    @Test("connection refused: the read fails fast, within its deadline, after the standard retries")
    func connectionRefused() async throws {
        // A port that was just free and is now closed.
        let server = try LoopbackHTTPServer { _ in .init(status: 200) }
        let port = server.port
        server.stop()
        let tier = try Self.tier(endpoint: "http://127.0.0.1:\(port)", readTimeout: .seconds(10))
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await tier.get(Self.key)
            Issue.record("a read from a closed port succeeded")
        } catch let error as TierCacheError {
            #expect(error.code == .storage)
            #expect(error.message.contains("connection"))
        }
        #expect(start.duration(to: clock.now) < .seconds(10) + Self.slack)
    }

    @Test("a server that accepts and never answers: the read gives up at its deadline")
    func neverAnswers() async throws {
        let server = try Self.objectServer()
        defer { server.stop() }
        server.enqueue(.neverAnswer, count: 10)
        let tier = try Self.tier(endpoint: server.baseURL, readTimeout: .milliseconds(400))
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await tier.get(Self.key)
            Issue.record("a read from a silent server succeeded")
        } catch let error as TierCacheError {
            #expect(error.code == .timeout)
        }
        let elapsed = start.duration(to: clock.now)
        #expect(elapsed >= .milliseconds(350))
        #expect(elapsed < .milliseconds(400) + Self.slack)
    }

    @Test("503 twice, then 200: the read succeeds on the third attempt")
    func retriesThenSucceeds() async throws {
        let server = try Self.objectServer()
        defer { server.stop() }
        server.enqueue(.status(503), count: 2)
        let tier = try Self.tier(endpoint: server.baseURL)
        let entry = try #require(try await tier.get(Self.key))
        #expect(entry == Self.entry())
        #expect(server.requestCount == 3)
    }

    @Test("503 three times exhausts the three attempts and fails")
    func retriesExhausted() async throws {
        let server = try Self.objectServer()
        defer { server.stop() }
        server.enqueue(.status(503), count: 3)
        let tier = try Self.tier(endpoint: server.baseURL)
        await #expect(throws: TierCacheError.self) { try await tier.get(Self.key) }
        #expect(server.requestCount == 3)
    }

    @Test("SlowDown with its XML body is retried; its request id and code are parsed")
    func slowDown() async throws {
        let body = S3FaultTests.entry().encoded()
        let calls = LockedCounter()
        let server = try LoopbackHTTPServer { _ in
            if calls.increment() == 1 {
                return .init(status: 503, headers: [("Content-Type", "application/xml")], body: Array("""
                    <?xml version="1.0" encoding="UTF-8"?>
                    <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>REQ123</RequestId></Error>
                    """.utf8))
            }
            return .init(status: 200, headers: [("ETag", "\"e\"")], body: body)
        }
        defer { server.stop() }
        let logs = CapturedLogs()
        let client = try S3Client(configuration: .init(
            endpoint: server.baseURL, credentials: .static(accessKeyID: "AKIDSLOW", secretAccessKey: "slowsecret-123"),
            baseDelay: .milliseconds(10)), logger: logs.logger())
        let object = try await client.getObject(bucket: "bucket", key: "k")
        #expect(object?.body == body)
        #expect(calls.value == 2)
        #expect(logs.text.contains("SlowDown"))
        #expect(logs.text.contains("REQ123"))
        #expect(!logs.text.contains("slowsecret-123"))
    }

    @Test("403 and 400 are not retried")
    func clientErrorsNotRetried() async throws {
        for status in [400, 403] {
            let server = try Self.objectServer()
            defer { server.stop() }
            server.enqueue(.status(status), count: 3)
            let tier = try Self.tier(endpoint: server.baseURL)
            await #expect(throws: TierCacheError.self) { try await tier.get(Self.key) }
            #expect(server.requestCount == 1, "status \(status) was retried")
        }
    }

    @Test("a missing object is a miss after one request; a stored ETag revalidates with a 304")
    func missAndRevalidation() async throws {
        let server = try Self.objectServer()
        defer { server.stop() }
        let tier = try Self.tier(endpoint: server.baseURL)
        #expect(try await tier.get(try CacheKey(namespace: "faults", name: "other")) == nil)
        #expect(server.requestCount == 1)
        let first = try await tier.get(Self.key)
        let second = try await tier.get(Self.key)
        #expect(first == Self.entry() && second == Self.entry())
        let requests = server.recordedRequests
        #expect(requests.count == 3)
        #expect(requests.last?.header("If-None-Match") == "\"etag-1\"")
        // Requests are signed: the Authorization header names the key id, never the secret.
        let authorization = try #require(requests.last?.header("Authorization"))
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDFAULT/"))
        #expect(requests.allSatisfy { r in !r.headers.contains { $0.value.contains("faultsecret") } })
    }

    @Test("a corrupt object throws a decoding error (a miss for the chain)")
    func corruptObject() async throws {
        let server = try LoopbackHTTPServer { _ in .init(status: 200, body: Array("not an envelope at all, just text".utf8)) }
        defer { server.stop() }
        let tier = try Self.tier(endpoint: server.baseURL)
        await #expect(throws: TierCacheError.self) { try await tier.get(Self.key) }
    }

    @Test("cancelling the calling task ends the read promptly")
    func cancellation() async throws {
        let server = try Self.objectServer()
        defer { server.stop() }
        server.enqueue(.neverAnswer, count: 5)
        let tier = try Self.tier(endpoint: server.baseURL, readTimeout: .seconds(60))
        let clock = ContinuousClock()
        let start = clock.now
        let task = Task { try await tier.get(Self.key) }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let result = await task.result
        #expect(throws: (any Error).self) { try result.get() }
        #expect(start.duration(to: clock.now) < Self.slack + .seconds(10))
    }

    @Test("dot segments and empty segments in keys reach the server as signed, unresolved")
    func dotSegments() async throws {
        let server = try LoopbackHTTPServer { _ in .init(status: 200, body: [1]) }
        defer { server.stop() }
        let client = try S3Client(configuration: .init(endpoint: server.baseURL, credentials: .static(accessKeyID: "a", secretAccessKey: "b")))
        for (key, path) in [("a/../b/./c", "/bucket/a/../b/./c"), ("../x", "/bucket/../x"), ("a/..", "/bucket/a/.."),
                            ("//a//b", "/bucket///a//b"), (".", "/bucket/.")] {
            _ = try await client.getObject(bucket: "bucket", key: key)
            #expect(server.recordedRequests.last?.path == path)
        }
    }

    @Test("a backoff that would end past the deadline is not slept: the last failure is thrown at once")
    func backoffNeverPastDeadline() async throws {
        let server = try Self.objectServer()
        defer { server.stop() }
        server.enqueue(.status(503), count: 10)
        let client = try S3Client(configuration: .init(
            endpoint: server.baseURL, credentials: .static(accessKeyID: "a", secretAccessKey: "b"),
            baseDelay: .seconds(60), maxBackoff: .seconds(60)))
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await client.getObject(bucket: "bucket", key: "k", deadline: clock.now.advanced(by: .milliseconds(300)))
            Issue.record("a 503 was returned as success")
        } catch {
            #expect(error.status == 503)
        }
        // A slept backoff would be uniform in 0...60 s.
        #expect(start.duration(to: clock.now) < .milliseconds(300) + Self.slack)
    }
}
