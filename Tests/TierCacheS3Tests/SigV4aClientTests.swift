import Crypto
import Testing
@testable import TierCache
@testable import TierCacheS3
import TierCacheTesting

/// The S3 client signs with SigV4a when configured for a region set (Multi-Region Access Points):
/// the request that reaches a loopback server carries a signature that verifies with the key
/// derived from the secret, over the string to sign of that very request.
@Suite struct SigV4aClientTests {
    @Test func clientSignsRequestsWithSigV4aForARegionSet() async throws {
        let server = try LoopbackHTTPServer { _ in .init(status: 404) }
        defer { server.stop() }
        let clock = ManualCacheClock(start: WallTime(millisecondsSince1970: 1_767_225_600_000))
        let credentials = AWSCredentials(accessKeyID: "AKIDSIGV4A", secretAccessKey: "sigv4a-secret")
        var configuration = S3Client.Configuration(endpoint: server.baseURL, credentials: .static(credentials),
                                                   maxAttempts: 1, clock: clock)
        configuration.sigV4aRegionSet = "*"
        let client = try S3Client(configuration: configuration)
        defer { client.shutdown() }

        #expect(try await client.getObject(bucket: "bucket", key: "some-key") == nil)

        let request = try #require(server.recordedRequests.last)
        #expect(request.header("X-Amz-Region-Set") == "*")
        let authorization = try #require(request.header("Authorization"))
        #expect(authorization.hasPrefix(SigV4aSigner.algorithm + " Credential=AKIDSIGV4A/20260101/s3/aws4_request"))
        let signatureHex = try #require(authorization.split(separator: "=").last.map(String.init))

        // The same request signed again gives the same string to sign (ECDSA signatures differ).
        let key = try SigV4aSigner.signingKey(for: credentials)
        let expected = try SigV4aSigner(regionSet: "*", service: "s3", rules: .s3).sign(
            method: "GET", path: request.path, query: "", headers: [("Host", try #require(request.header("Host")))],
            payload: .empty, credentials: credentials, key: key, date: clock.now())
        let der = try #require(Hex.decode(signatureHex))
        let signature = try P256.Signing.ECDSASignature(derRepresentation: der)
        #expect(key.publicKey.isValidSignature(signature, for: Array(expected.stringToSign.utf8)))
        #expect(!key.publicKey.isValidSignature(signature, for: Array((expected.stringToSign + "x").utf8)))
    }
}
