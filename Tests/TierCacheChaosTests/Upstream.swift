import Foundation
import Logging
import TierCache
import TierCacheS3
import TierCacheTesting

/// The S3 the chaos tests talk to, through a ``FaultProxy``: moto when scripts/start-moto.sh
/// exported its endpoint and key (SigV4 verified), otherwise a small in-process S3 stand-in
/// (path-style GET/PUT/HEAD/DELETE with user metadata and ETags, nothing verified) so that the
/// chaos tests run in a plain `swift test` too.
final class Upstream: Sendable {
    let port: Int
    let credentials: AWSCredentials
    let kind: String
    private let standIn: LoopbackHTTPServer?

    init() throws {
        let environment = ProcessInfo.processInfo.environment
        if let endpoint = environment["TIERCACHE_TEST_S3_ENDPOINT"], !endpoint.isEmpty,
           let id = environment["TIERCACHE_TEST_ACCESS_KEY_ID"], let secret = environment["TIERCACHE_TEST_SECRET_ACCESS_KEY"],
           let port = endpoint.split(separator: ":").last.flatMap({ Int($0.filter(\.isNumber)) }) {
            self.port = port
            credentials = AWSCredentials(accessKeyID: id, secretAccessKey: secret)
            kind = "moto"
            standIn = nil
        } else {
            let store = LockedStore()
            let server = try LoopbackHTTPServer(configuration: .init(maxConnections: 256)) { store.handle($0) }
            port = server.port
            credentials = AWSCredentials(accessKeyID: "AKIDCHAOS", secretAccessKey: "chaos-secret")
            kind = "in-process S3 stand-in (moto not running: scripts/test.sh sources scripts/start-moto.sh)"
            standIn = server
        }
    }

    func stop() { standIn?.stop() }

    /// An S3 client whose endpoint is `proxy`, with few retries and short timeouts so that a
    /// fault costs the test little time.
    func client(through proxy: FaultProxy) throws -> S3Client {
        let configuration = S3Client.Configuration(
            region: .usEast1, endpoint: proxy.baseURL, addressingStyle: .path, credentials: .static(credentials),
            maxAttempts: 2, baseDelay: .milliseconds(5), maxBackoff: .milliseconds(20),
            operationTimeout: .seconds(3), attemptTimeout: .seconds(1), connectTimeout: .milliseconds(500))
        return try S3Client(configuration: configuration)
    }
}

/// The stand-in's objects: bucket/key -> body, user metadata, ETag.
private final class LockedStore: Sendable {
    struct Object { var body: [UInt8]; var metadata: [(String, String)]; var etag: String }
    private let objects = LockedValueBox([String: Object]())
    private let buckets = LockedValueBox(Set<String>())

    func handle(_ request: LoopbackHTTPServer.Request) -> LoopbackHTTPServer.Response {
        let parts = request.path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true).map(String.init)
        guard let bucket = parts.first else { return .init(status: 400) }
        if parts.count == 1 {
            if request.method == "PUT" { buckets.withLock { _ = $0.insert(bucket) } }
            return .init(status: 200)
        }
        let name = bucket + "/" + parts[1]
        switch request.method {
        case "PUT":
            if request.header("If-None-Match") == "*", objects.withLock({ $0[name] != nil }) {
                return Self.error(412, "PreconditionFailed")
            }
            let etag = "\"\(String(UInt64(bitPattern: Int64(request.body.hashValue)), radix: 16))-\(request.body.count)\""
            let metadata = request.headers.filter { $0.name.lowercased().hasPrefix("x-amz-meta-") }.map { ($0.name.lowercased(), $0.value) }
            objects.withLock { $0[name] = Object(body: request.body, metadata: metadata, etag: etag) }
            return .init(status: 200, headers: [("ETag", etag)])
        case "GET", "HEAD":
            guard let object = objects.withLock({ $0[name] }) else {
                return request.method == "HEAD" ? .init(status: 404) : Self.error(404, "NoSuchKey")
            }
            if let match = request.header("If-None-Match"), match == object.etag {
                return .init(status: 304, headers: [("ETag", object.etag)])
            }
            let headers = [("ETag", object.etag), ("Content-Type", "application/octet-stream")] + object.metadata
            if request.method == "HEAD" {
                return .init(status: 200, headers: headers + [("Content-Length", String(object.body.count))])
            }
            return .init(status: 200, headers: headers, body: object.body)
        case "DELETE":
            objects.withLock { _ = $0.removeValue(forKey: name) }
            return .init(status: 204)
        default:
            return .init(status: 405)
        }
    }

    static func error(_ status: Int, _ code: String) -> LoopbackHTTPServer.Response {
        .init(status: status, headers: [("Content-Type", "application/xml")],
              body: Array("<?xml version=\"1.0\"?><Error><Code>\(code)</Code><Message>\(code)</Message></Error>".utf8))
    }
}
