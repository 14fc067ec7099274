import Foundation
import Logging
import Testing
import TierCache
import TierCacheHTTP
@testable import TierCacheS3

/// moto's S3 server started by scripts/start-moto.sh (SigV4 verification on, a key made through
/// its IAM API). Tests that need it skip, saying why, when the variables are absent.
enum Moto {
    static let environment = ProcessInfo.processInfo.environment

    static var endpoint: String? { environment["TIERCACHE_TEST_S3_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } }
    static var credentials: AWSCredentials? {
        guard let id = environment["TIERCACHE_TEST_ACCESS_KEY_ID"], let secret = environment["TIERCACHE_TEST_SECRET_ACCESS_KEY"],
              !id.isEmpty, !secret.isEmpty else { return nil }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret)
    }

    static let skipReason = "TIERCACHE_TEST_S3_ENDPOINT / TIERCACHE_TEST_ACCESS_KEY_ID / TIERCACHE_TEST_SECRET_ACCESS_KEY not set: "
        + "moto is not running (scripts/test.sh sources scripts/start-moto.sh)"

    static var isAvailable: Bool {
        let available = endpoint != nil && credentials != nil
        if !available { print("skipping moto-backed test: \(skipReason)") }
        return available
    }

    static func client(secret: String? = nil, logger: Logger? = nil, configure: (inout S3Client.Configuration) -> Void = { _ in })
        throws -> S3Client
    {
        var credentials = try #require(Self.credentials)
        if let secret { credentials.secretAccessKey = secret }
        var configuration = S3Client.Configuration(region: .usEast1, endpoint: endpoint,
                                                   credentials: .static(credentials))
        configure(&configuration)
        return try S3Client(configuration: configuration,
                            logger: logger ?? Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    static func uniqueBucket(_ stem: String) -> String {
        "\(stem)-\(UInt32.random(in: 0...UInt32.max))"
    }
}

@Suite("S3 client against moto", .enabled(if: Moto.isAvailable, "moto is not running"))
struct S3ClientMotoTests {
    @Test("put, get, head, conditional get, delete, with metadata, SSE and storage class")
    func objectRoundTrip() async throws {
        let client = try Moto.client()
        let bucket = Moto.uniqueBucket("objects")
        try await client.createBucket(bucket)
        try await client.createBucket(bucket)  // already owned: not an error
        let body = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        // moto re-quotes the path before checking signatures, so keys with characters beyond
        // letters, digits, "-._~ /" fail its check (boto3's too); S3 itself signs the path as sent.
        let key = "dir/sub dir/key-1_~.bin"
        let put = try await client.putObject(bucket: bucket, key: key, body: body, options: S3PutOptions(
            contentType: "application/x-test", metadata: ["Fresh-Until": "123", "schema": "7"],
            integrity: .contentMD5, serverSideEncryption: .s3, storageClass: .standardInfrequentAccess))
        let etag = try #require(put.etag)

        let got = try #require(try await client.getObject(bucket: bucket, key: key))
        #expect(got.body == body)
        #expect(got.etag == etag)
        #expect(got.metadata["fresh-until"] == "123")
        #expect(got.metadata["schema"] == "7")
        #expect(got.contentType == "application/x-test")
        #expect(!got.isNotModified)

        let head = try #require(try await client.headObject(bucket: bucket, key: key))
        #expect(head.body.isEmpty)
        #expect(head.contentLength == body.count)
        #expect(head.metadata["fresh-until"] == "123")
        #expect(head.storageClass == "STANDARD_IA")
        #expect(head.serverSideEncryption == "AES256")

        let revalidated = try #require(try await client.getObject(bucket: bucket, key: key, ifNoneMatch: etag))
        #expect(revalidated.isNotModified)
        #expect(revalidated.body.isEmpty)
        let changed = try #require(try await client.getObject(bucket: bucket, key: key, ifNoneMatch: "\"0000\""))
        #expect(!changed.isNotModified && changed.body == body)

        try await client.deleteObject(bucket: bucket, key: key)
        #expect(try await client.getObject(bucket: bucket, key: key) == nil)
        #expect(try await client.headObject(bucket: bucket, key: key) == nil)
        try await client.deleteObject(bucket: bucket, key: key)  // idempotent
    }

    @Test("CRC32C integrity, and a wrong checksum is refused")
    func checksums() async throws {
        let client = try Moto.client()
        let bucket = Moto.uniqueBucket("checksums")
        try await client.createBucket(bucket)
        let body = Array("123456789".utf8)
        #expect(CRC32C.checksum(body) == 0xE306_9283)  // the CRC-32C check value
        try await client.putObject(bucket: bucket, key: "crc", body: body, options: S3PutOptions(integrity: .crc32c))
        #expect(try await client.getObject(bucket: bucket, key: "crc")?.body == body)
        try await client.putObject(bucket: bucket, key: "none", body: body, options: S3PutOptions(integrity: .none))
        #expect(try await client.getObject(bucket: bucket, key: "none")?.body == body)
    }

    @Test("If-None-Match: * makes the second writer fail with a typed precondition failure")
    func firstWriterWins() async throws {
        let client = try Moto.client()
        let bucket = Moto.uniqueBucket("conditional")
        try await client.createBucket(bucket)
        let options = S3PutOptions(ifNoneMatch: "*")
        try await client.putObject(bucket: bucket, key: "k", body: [1], options: options)
        do {
            try await client.putObject(bucket: bucket, key: "k", body: [2], options: options)
            Issue.record("the second conditional put succeeded")
        } catch {
            #expect(error.code == .preconditionFailed)
            #expect(error.status == 412)
        }
        #expect(try await client.getObject(bucket: bucket, key: "k")?.body == [1])
    }

    @Test("ListObjectsV2 pages through every key under a prefix")
    func listing() async throws {
        let client = try Moto.client()
        let bucket = Moto.uniqueBucket("listing")
        try await client.createBucket(bucket)
        let keys = (0..<23).map { "p/k\(String(format: "%03d", $0))" }
        for key in keys { try await client.putObject(bucket: bucket, key: key, body: Array(key.utf8)) }
        try await client.putObject(bucket: bucket, key: "other/x", body: [0])
        // A "/" in the prefix trips moto's signature check (it re-encodes the query), so "p".
        let first = try await client.listObjectsV2(bucket: bucket, prefix: "p", maxKeys: 10)
        #expect(first.objects.map(\.key) == Array(keys.prefix(10)))
        #expect(first.nextContinuationToken != nil)
        let all = try await client.listAllObjects(bucket: bucket, prefix: "p", pageSize: 10)
        #expect(all.map(\.key) == keys)
        #expect(all.allSatisfy { $0.size == $0.key.utf8.count })
        #expect(try await client.listAllObjects(bucket: bucket).count == 24)
    }

    @Test("lifecycle: a rule expiring a prefix after N days round-trips")
    func lifecycle() async throws {
        let client = try Moto.client()
        let bucket = Moto.uniqueBucket("lifecycle")
        try await client.createBucket(bucket)
        #expect(try await client.getBucketLifecycleConfiguration(bucket: bucket).rules.isEmpty)
        let rule = S3LifecycleRule(id: "tiercache-expire", prefix: "cache/", expirationDays: 1)
        try await client.putBucketLifecycleConfiguration(bucket: bucket, S3LifecycleConfiguration(rules: [.init(rule)]))
        let read = try await client.getBucketLifecycleConfiguration(bucket: bucket).rules
        #expect(read.map(\.id) == ["tiercache-expire"])
        #expect(read.map(\.prefix) == ["cache/"])
        #expect(read.map(\.expirationDays) == [1])
        #expect(read.map(\.isEnabled) == [true])
        try await client.putBucketLifecycleConfiguration(bucket: bucket, S3LifecycleConfiguration())
        #expect(try await client.getBucketLifecycleConfiguration(bucket: bucket).rules.isEmpty)
    }

    @Test("a wrong secret gets SignatureDoesNotMatch, and no secret reaches the logs or the error")
    func wrongSecret() async throws {
        let logs = CapturedLogs()
        let good = try Moto.client()
        let bucket = Moto.uniqueBucket("auth")
        try await good.createBucket(bucket)
        let wrongSecret = "WRONG-secret-0123456789abcdefghijklmnopq"
        let bad = try Moto.client(secret: wrongSecret, logger: logs.logger())
        do {
            _ = try await bad.getObject(bucket: bucket, key: "anything")
            Issue.record("a request signed with the wrong secret succeeded")
        } catch {
            #expect(error.code == .signatureDoesNotMatch)
            #expect(error.status == 403)
            #expect(!"\(error)".contains(wrongSecret))
        }
        let realSecret = try #require(Moto.credentials).secretAccessKey
        for secret in [wrongSecret, realSecret] { #expect(!logs.text.contains(secret)) }
    }

    @Test("a missing bucket is an error, not a miss")
    func missingBucket() async throws {
        let client = try Moto.client()
        do {
            _ = try await client.getObject(bucket: Moto.uniqueBucket("absent"), key: "k")
            Issue.record("reading from a missing bucket did not throw")
        } catch {
            #expect(error.code == .noSuchBucket)
        }
    }
}
