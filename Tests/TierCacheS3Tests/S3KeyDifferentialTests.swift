import Foundation
import Testing
import TierCache
@testable import TierCacheS3

/// Every object key boto3 round-trips through moto (signature checking on) round-trips with our
/// client too, and lands under the very same key: boto3 reads what we wrote and we read what boto3
/// wrote. moto's own signature check rejects some characters for every client; the keys it
/// rejects for boto3 are printed (docs/s3-tier.md lists them) and not held against us.
@Suite("Object keys: differential against boto3", .enabled(if: Moto.isAvailable, "moto is not running"))
struct S3KeyDifferentialTests {
    static let keys: [String] = {
        var keys = [
            // Dot segments and empty segments.
            "a/./b", "a/../b", "./a", "../a", "a/.", "a/..", ".", "..", "...", "a/.../b", "./", "../../x", "a/./../b/.",
            "a//b", "//a", "a/", "a///", "/lead",
            // Spaces and characters with a meaning in URLs or in S3's encoding.
            "a b", " lead", "trail ", "a  b", "a~b", "a?b", "a?x=1&y=2", "a#b", "a+b", "a%b", "a%20b", "a%2Fb", "a%2E%2E",
            "a&b", "a=b", "a'b", "a!b", "a*b", "a:b", "a@b", "a;b", "a,b", "a$b", "a(b)", "a[b]", "a{b}", "a|b", "a^b",
            "a`b", "a\"b", "a<b>", "a\\b", "a\tb",
            // Unicode: accents, CJK, an emoji, a combining mark.
            "caf\u{E9}", "\u{65E5}\u{672C}/\u{8A9E}", "\u{1F600}", "e\u{301}",
            // Long keys: exactly S3's 1,024 bytes, in ASCII and in two-byte characters.
            String(repeating: "k", count: 1024), "u/" + String(repeating: "\u{E9}", count: 511),
            "d/" + String(repeating: "./", count: 300) + "end",
        ]
        keys.append(contentsOf: ["mixed/./a b/../c+d%e/\u{E9}"])
        return keys
    }()

    /// boto3, path-style like our client on an IP endpoint. `MODE=roundtrip`: put, get, head and
    /// list each key itself; `MODE=read`: read what Swift wrote (body `swift-<i>`), then overwrite
    /// it with `boto3-<i>`. Prints one JSON object: index -> {op: "ok" | error code}.
    static let script = """
        import boto3, json, os
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url=os.environ["EP"], region_name="us-east-1",
                          aws_access_key_id=os.environ["AK"], aws_secret_access_key=os.environ["SK"],
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        bucket, mode = os.environ["BUCKET"], os.environ["MODE"]
        keys = json.loads(os.environ["KEYS"])
        def code(e):
            return getattr(e, "response", {}).get("Error", {}).get("Code") or type(e).__name__
        def attempt(result, op, fn):
            try:
                result[op] = "ok" if fn() is not False else "mismatch"
            except Exception as e:
                result[op] = code(e)
        out = {}
        listed = None
        def all_keys():
            found, token = [], None
            while True:
                page = s3.list_objects_v2(Bucket=bucket, **({"ContinuationToken": token} if token else {}))
                found += [o["Key"] for o in page.get("Contents", [])]
                token = page.get("NextContinuationToken")
                if not token:
                    return set(found)
        for i, key in enumerate(keys):
            r = out[str(i)] = {}
            if mode == "roundtrip":
                body = ("boto3-%d" % i).encode()
                attempt(r, "put", lambda: s3.put_object(Bucket=bucket, Key=key, Body=body))
                attempt(r, "get", lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body)
                attempt(r, "head", lambda: s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body))
            else:
                body = ("swift-%d" % i).encode()
                attempt(r, "head", lambda: s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body))
                attempt(r, "get", lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body)
                attempt(r, "put", lambda: s3.put_object(Bucket=bucket, Key=key, Body=("boto3-%d" % i).encode()))
        try:
            listed = all_keys()
        except Exception as e:
            listed = None
        for i, key in enumerate(keys):
            r = out[str(i)]
            r["listed"] = "ok" if listed is not None and key in listed else ("list failed" if listed is None else "absent")
            attempt(r, "prefix", lambda: key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])])
            if mode == "roundtrip":
                attempt(r, "delete", lambda: s3.delete_object(Bucket=bucket, Key=key))
        print(json.dumps(out))
        """

    typealias Results = [String: [String: String]]

    static func boto3(_ mode: String, bucket: String) throws -> Results {
        let python = try #require(Python.path, "python3 with boto3 is needed")
        let credentials = try #require(Moto.credentials)
        let keysJSON = String(decoding: try JSONEncoder().encode(keys), as: UTF8.self)
        let output = try Python.run(python, script: script, environment: [
            "EP": try #require(Moto.endpoint), "AK": credentials.accessKeyID, "SK": credentials.secretAccessKey,
            "BUCKET": bucket, "MODE": mode, "KEYS": keysJSON,
        ])
        return try JSONDecoder().decode(Results.self, from: Data(output.utf8))
    }

    static func describe(_ key: String) -> String {
        let shown = key.utf8.count > 40 ? String(key.prefix(20)) + "… (\(key.utf8.count) bytes)" : key
        return shown.debugDescription
    }

    @Test("every key boto3 round-trips, ours round-trips too, under the same object key")
    func differential() async throws {
        let client = try Moto.client { $0.maxAttempts = 1 }
        let bucket = Moto.uniqueBucket("keys")
        try await client.createBucket(bucket)

        // 1. boto3 alone: which keys survive moto's signature check at all.
        let reference = try Self.boto3("roundtrip", bucket: bucket)
        let boto3RoundTrips = Self.keys.indices.filter { i in
            ["put", "get", "head", "listed", "delete"].allSatisfy { reference["\(i)"]?[$0] == "ok" }
        }

        // 2. Ours: put, get, head each key; one listing of the bucket.
        var ours: [Int: [String: String]] = [:]
        for (i, key) in Self.keys.enumerated() {
            let body = Array("swift-\(i)".utf8)
            var result: [String: String] = [:]
            do {
                try await client.putObject(bucket: bucket, key: key, body: body)
                result["put"] = "ok"
            } catch { result["put"] = error.code.rawValue }
            do {
                result["get"] = try await client.getObject(bucket: bucket, key: key)?.body == body ? "ok" : "mismatch"
            } catch { result["get"] = error.code.rawValue }
            do {
                result["head"] = try await client.headObject(bucket: bucket, key: key)?.contentLength == body.count ? "ok" : "mismatch"
            } catch { result["head"] = error.code.rawValue }
            do {
                let page = try await client.listObjectsV2(bucket: bucket, prefix: key)
                result["prefix"] = page.objects.contains { $0.key == key } ? "ok" : "absent"
            } catch { result["prefix"] = error.code.rawValue }
            ours[i] = result
        }
        let listed = Set(try await client.listAllObjects(bucket: bucket).map(\.key))

        // 3. boto3 reads what we wrote, under the same key, then overwrites it; 4. we read that.
        let crossed = try Self.boto3("read", bucket: bucket)
        var reverse: [Int: String] = [:]
        for (i, key) in Self.keys.enumerated() {
            do {
                reverse[i] = try await client.getObject(bucket: bucket, key: key)?.body == Array("boto3-\(i)".utf8) ? "ok" : "mismatch"
                try await client.deleteObject(bucket: bucket, key: key)
            } catch { reverse[i] = error.code.rawValue }
        }
        #expect(try await client.listAllObjects(bucket: bucket).isEmpty, "every key was deleted under its own name")

        var rejectedByMoto: [String] = []
        for (i, key) in Self.keys.enumerated() {
            let name = Self.describe(key)
            guard boto3RoundTrips.contains(i) else {
                rejectedByMoto.append("\(name): boto3 \(reference["\(i)"] ?? [:]); ours \(ours[i] ?? [:])")
                continue
            }
            let mine = ours[i] ?? [:]
            #expect(mine["put"] == "ok" && mine["get"] == "ok" && mine["head"] == "ok", "\(name): ours \(mine)")
            #expect(listed.contains(key), "\(name): not listed under its own key by our client")
            let read = crossed["\(i)"] ?? [:]
            #expect(read["head"] == "ok" && read["get"] == "ok" && read["listed"] == "ok",
                    "\(name): boto3 does not find what we wrote under this key: \(read)")
            #expect(reverse[i] == "ok", "\(name): we do not read what boto3 wrote: \(reverse[i] ?? "-")")
            // A listing by the key as prefix: ours must work wherever boto3's does.
            if reference["\(i)"]?["prefix"] == "ok" { #expect(mine["prefix"] == "ok", "\(name): prefix listing \(mine)") }
        }
        // The classes of keys this test is about are among those moto lets through for boto3.
        for key in ["a/./b", "a/../b", "../a", "a//b", "//a", "a b", "a~b", "a?b", String(repeating: "k", count: 1024)] {
            #expect(boto3RoundTrips.contains { Self.keys[$0] == key }, "boto3 no longer round-trips \(Self.describe(key)) through moto")
        }
        print("moto rejects for boto3 (\(rejectedByMoto.count) of \(Self.keys.count) keys):\n  "
            + rejectedByMoto.joined(separator: "\n  "))
    }
}
