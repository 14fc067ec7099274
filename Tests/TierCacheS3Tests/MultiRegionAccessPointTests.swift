import Crypto
import Testing
@testable import TierCache
@testable import TierCacheS3
import TierCacheTesting

/// A Multi-Region Access Point is addressed as the AWS SDKs address it: host
/// `<alias>.accesspoint.s3-global.amazonaws.com`, the object key as the whole path, SigV4a over the
/// region set. The requests are captured on a loopback server standing in for the access point.
@Suite struct MultiRegionAccessPointTests {
    static let alias = "mfzwi23gnjvgw.mrap"
    static let key = try! CacheKey(namespace: "fn", name: "model", schemaVersion: 3)
    static let credentials = AWSCredentials(accessKeyID: "AKIDMRAP", secretAccessKey: "mrap-secret")
    static let clock = ManualCacheClock(start: WallTime(millisecondsSince1970: 1_767_225_600_000))

    static func tier(_ resolver: FixedBucketResolver) -> MultiRegionS3Tier {
        MultiRegionS3Tier(resolver: resolver,
                          client: S3Client.Configuration(credentials: .static(credentials), maxAttempts: 1, clock: clock),
                          configuration: .init(readTimeout: .seconds(30), bucketReadTimeout: .seconds(30), writeTimeout: .seconds(30)))
    }

    static func entry() -> CacheEntry {
        CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 1),
                   freshUntil: WallTime(millisecondsSince1970: 4_102_444_800_000),
                   staleUntil: WallTime(millisecondsSince1970: 4_102_444_800_000), uncompressedLength: 2, payload: [1, 2])
    }

    /// Checks the SigV4a signature of a captured request with the key derived from the secret.
    static func verify(_ request: LoopbackHTTPServer.Request, regionSet: String, payload: SigV4Signer.Payload) throws {
        #expect(request.header("X-Amz-Region-Set") == regionSet)
        let authorization = try #require(request.header("Authorization"))
        #expect(authorization.hasPrefix(SigV4aSigner.algorithm + " Credential=AKIDMRAP/20260101/s3/aws4_request"))
        let signedNames = try #require(authorization.split(separator: " ").first { $0.hasPrefix("SignedHeaders=") })
            .dropFirst("SignedHeaders=".count).dropLast().split(separator: ";").map(String.init)
        #expect(signedNames.contains("host") && signedNames.contains("x-amz-region-set"))
        // Sign the captured request again: its string to sign must verify the captured signature.
        let unsigned = signedNames.filter { !["x-amz-date", "x-amz-region-set", "x-amz-content-sha256"].contains($0) }
        let headers = try unsigned.map { name in (name, try #require(request.header(name))) }
        let key = try SigV4aSigner.signingKey(for: credentials)
        let expected = try SigV4aSigner(regionSet: regionSet, service: "s3", rules: .s3).sign(
            method: request.method, path: request.path, query: request.query ?? "", headers: headers, payload: payload,
            credentials: credentials, key: key, date: clock.now())
        let signatureHex = try #require(authorization.split(separator: "=").last.map(String.init))
        #expect(SigV4aSigner.isValid(signatureHex: signatureHex, stringToSign: expected.stringToSign, publicKey: key.publicKey))
    }

    @Test("requests go to the access point with the key as the path, signed with SigV4a")
    func requestLineAndHeaders() async throws {
        let stored = LockedValueBox<[UInt8]?>(nil)
        let server = try LoopbackHTTPServer { request in
            switch request.method {
            case "PUT":
                stored.withLock { $0 = request.body }
                return .init(status: 200, headers: [("ETag", "\"e1\"")])
            case "GET":
                guard let body = stored.withLock({ $0 }) else { return .init(status: 404) }
                return .init(status: 200, headers: [("ETag", "\"e1\"")], body: body)
            default:
                return .init(status: 204)
            }
        }
        defer { server.stop() }
        for regionSet in ["*", "us-east-1,eu-west-1"] {
            let tier = Self.tier(.multiRegionAccessPoint(alias: Self.alias, regionSet: regionSet, endpoint: server.baseURL))
            defer { tier.shutdown() }
            let entry = Self.entry()
            try await tier.put(entry)
            #expect(try await tier.get(Self.key) == entry)
            try await tier.remove(Self.key)

            let requests = server.recordedRequests.suffix(3)
            #expect(requests.map(\.method) == ["PUT", "GET", "DELETE"])
            for request in requests {
                // The key is the whole path: no alias (nor bucket) segment before it, no query.
                #expect(request.target == "/tiercache/fn/model.v3")
                #expect(request.header("Host") == "127.0.0.1:\(server.port)")
                try Self.verify(request, regionSet: regionSet, payload: request.method == "PUT" ? .bytes(entry.encoded()) : .empty)
            }
        }
    }

    @Test("without an endpoint: the global access point host, the key as the path; an ARN names it too")
    func globalEndpoint() throws {
        for alias in [Self.alias, "arn:aws:s3::123456789012:accesspoint/" + Self.alias] {
            let resolver = FixedBucketResolver.multiRegionAccessPoint(alias: alias)
            #expect(resolver.target.bucket == Self.alias)
            let tier = Self.tier(resolver)
            defer { tier.shutdown() }
            let s3 = try tier.tier(for: resolver.target)
            let target = try s3.client.target(bucket: s3.configuration.bucket, key: s3.objectKey(for: Self.key), query: [])
            #expect(target.base == "https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com")
            #expect(target.hostHeader == "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com")
            #expect(target.path == "/tiercache/fn/model.v3")
            #expect(s3.client.configuration.sigV4aRegionSet == "*")
            let listing = try s3.client.target(bucket: s3.configuration.bucket, key: nil, query: [("list-type", "2")])
            #expect(listing.path == "/" && listing.query == "list-type=2")
        }
    }
}
