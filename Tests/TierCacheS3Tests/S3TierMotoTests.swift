import Foundation
import Logging
import Testing
import TierCache
@testable import TierCacheS3

/// The tier against moto, and interoperability with boto3 (python3 subprocess).
@Suite("S3 tier against moto", .enabled(if: Moto.isAvailable, "moto is not running"))
struct S3TierMotoTests {
    static func entry(_ key: CacheKey, payload: [UInt8] = Array("{\"hello\":\"world\"}".utf8)) -> CacheEntry {
        CacheEntry(key: key, serializerID: .json, codecID: .identity,
                   createdAt: WallTime(millisecondsSince1970: 1_700_000_000_000),
                   freshUntil: WallTime(millisecondsSince1970: 1_700_000_900_000),
                   staleUntil: WallTime(millisecondsSince1970: 1_700_086_400_000),
                   uncompressedLength: UInt64(payload.count), etag: "src-1", tags: ["team": "reports"], payload: payload)
    }

    static func tier(_ bucket: String, configure: (inout S3Tier.Configuration) -> Void = { _ in }) async throws -> S3Tier {
        let client = try Moto.client()
        try await client.createBucket(bucket)
        // Long deadlines: the suite runs in parallel on a loaded machine.
        var configuration = S3Tier.Configuration(bucket: bucket, prefix: "cache", readTimeout: .seconds(30), writeTimeout: .seconds(30))
        configure(&configuration)
        return S3Tier(client: client, configuration: configuration)
    }

    @Test("put, get, revalidate, expiry from metadata, remove")
    func roundTrip() async throws {
        let tier = try await Self.tier(Moto.uniqueBucket("tier"))
        // Unreserved characters only: moto cannot check signatures of keys holding "%"
        // (S3TierUnitTests covers the encoding of the others).
        let key = try CacheKey(namespace: "reports", name: "pdf-generator_v42", schemaVersion: 2)
        #expect(try await tier.get(key) == nil)
        let entry = Self.entry(key)
        try await tier.put(entry)
        #expect(try await tier.get(key) == entry)
        #expect(try await tier.get(key) == entry)  // revalidated with If-None-Match
        let expiry = try #require(try await tier.expiry(of: key))
        #expect(expiry.freshUntil == entry.freshUntil)
        #expect(expiry.staleUntil == entry.staleUntil)
        #expect(expiry.createdAt == entry.createdAt)
        #expect(expiry.schemaVersion == 2)
        #expect(expiry.objectKey == "cache/reports/pdf-generator_v42.v2")
        // Another schema version is another object.
        #expect(try await tier.get(try CacheKey(namespace: "reports", name: "pdf-generator_v42", schemaVersion: 3)) == nil)
        try await tier.remove(key)
        #expect(try await tier.get(key) == nil)
        #expect(try await tier.expiry(of: key) == nil)
    }

    @Test("an entry changed by another writer is re-downloaded, not served from the ETag cache")
    func revalidationSeesChanges() async throws {
        let bucket = Moto.uniqueBucket("changes")
        let a = try await Self.tier(bucket)
        let b = try await Self.tier(bucket)
        let key = try CacheKey(namespace: "ns", name: "shared")
        try await a.put(Self.entry(key, payload: [1]))
        #expect(try await a.get(key)?.payload == [1])
        try await b.put(Self.entry(key, payload: [2, 2]))
        #expect(try await a.get(key)?.payload == [2, 2])
    }

    @Test("first writer wins: a second put of the same key is dropped, not thrown")
    func firstWriterWins() async throws {
        let bucket = Moto.uniqueBucket("fww")
        let tier = try await Self.tier(bucket) { $0.firstWriterWins = true }
        let key = try CacheKey(namespace: "ns", name: "once")
        try await tier.put(Self.entry(key, payload: [1]))
        try await tier.put(Self.entry(key, payload: [9]))
        let fresh = try await Self.tier(bucket)
        #expect(try await fresh.get(key)?.payload == [1])
    }

    @Test("long names fall back to the fingerprint and stay within S3's key limit")
    func longNames() async throws {
        let tier = try await Self.tier(Moto.uniqueBucket("long"))
        let key = try CacheKey(namespace: "ns", name: String(repeating: "n", count: 2000))
        let objectKey = tier.objectKey(for: key)
        #expect(objectKey == "cache/ns/" + key.fingerprint)
        try await tier.put(Self.entry(key))
        #expect(try await tier.get(key) == Self.entry(key))
    }

    @Test("the tier's lifecycle rule expires its prefix after N days")
    func lifecycle() async throws {
        let tier = try await Self.tier(Moto.uniqueBucket("tierlife"))
        let other = S3LifecycleConfiguration.Rule(S3LifecycleRule(id: "other", prefix: "logs/", expirationDays: 30))
        try await tier.client.putBucketLifecycleConfiguration(bucket: tier.configuration.bucket, S3LifecycleConfiguration(rules: [other]))
        try await tier.applyExpirationLifecycle(days: 1)
        try await tier.applyExpirationLifecycle(days: 2)  // replaces its own rule
        let rules = try await tier.client.getBucketLifecycleConfiguration(bucket: tier.configuration.bucket).rules
        #expect(rules.map(\.id) == ["other", "tiercache-expire-cache"])
        #expect(rules.map(\.prefix) == ["logs/", "cache/"])
        #expect(rules.map(\.expirationDays) == [30, 2])
    }

    @Test("boto3 reads what the tier wrote (body and metadata), and the client reads what boto3 wrote")
    func boto3Interop() async throws {
        guard let python = Python.path else {
            print("skipping boto3 interop: python3 not found")
            return
        }
        let bucket = Moto.uniqueBucket("interop")
        let tier = try await Self.tier(bucket)
        let key = try CacheKey(namespace: "interop", name: "written-by-swift", schemaVersion: 5)
        let entry = Self.entry(key)
        try await tier.put(entry)
        let objectKey = tier.objectKey(for: key)
        let credentials = try #require(Moto.credentials)
        let script = """
            import boto3, hashlib, json, os, sys
            s3 = boto3.client("s3", endpoint_url=os.environ["EP"], region_name="us-east-1",
                              aws_access_key_id=os.environ["AK"], aws_secret_access_key=os.environ["SK"])
            got = s3.get_object(Bucket=os.environ["BUCKET"], Key=os.environ["KEY"])
            body = got["Body"].read()
            s3.put_object(Bucket=os.environ["BUCKET"], Key="from-boto3/object", Body=b"boto3 bytes \\x00\\xff",
                          Metadata={"origin": "boto3", "fresh-until": "42"})
            print(json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "metadata": got["Metadata"],
                              "contentType": got["ContentType"]}))
            """
        let output = try Python.run(python, script: script, environment: [
            "EP": try #require(Moto.endpoint), "AK": credentials.accessKeyID, "SK": credentials.secretAccessKey,
            "BUCKET": bucket, "KEY": objectKey,
        ])
        struct Reply: Decodable {
            var sha256: String
            var metadata: [String: String]
            var contentType: String
        }
        let reply = try JSONDecoder().decode(Reply.self, from: Data(output.utf8))
        #expect(reply.sha256 == Hex.encode(SHA256Helper.digest(entry.encoded())))
        #expect(reply.metadata["fresh-until"] == String(entry.freshUntil.millisecondsSince1970))
        #expect(reply.metadata["stale-until"] == String(entry.staleUntil.millisecondsSince1970))
        #expect(reply.metadata["schema-version"] == "5")
        #expect(reply.contentType == "application/vnd.tiercache.entry")

        let object = try #require(try await tier.client.getObject(bucket: bucket, key: "from-boto3/object"))
        #expect(object.body == Array("boto3 bytes ".utf8) + [0, 0xFF])
        #expect(object.metadata == ["origin": "boto3", "fresh-until": "42"])
    }
}

import Crypto

enum SHA256Helper {
    static func digest(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}

enum Python {
    static var path: String? {
        for candidate in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(candidate)/python3"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    struct Failed: Error, CustomStringConvertible {
        var status: Int32
        var stderr: String
        var description: String { "python3 exited \(status): \(stderr)" }
    }

    static func run(_ python: String, script: String, environment: [String: String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", script]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failed(status: process.terminationStatus, stderr: String(decoding: stderr, as: UTF8.self))
        }
        return String(decoding: stdout, as: UTF8.self)
    }
}
