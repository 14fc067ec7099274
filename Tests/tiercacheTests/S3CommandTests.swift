import Foundation
import Testing
import TierCache
import TierCacheCLI
import TierCacheS3
import TierCacheZstd

/// The commands against moto's S3 (scripts/start-moto.sh), in-process. Prefixes hold no "/" and
/// keys no "%": moto re-encodes both before checking signatures and rejects them (the aws CLI
/// fails the same way), which real S3 does not.
@Suite("tiercache against S3 (moto)")
struct S3CommandTests {
    static func bucket() -> String { "cli-\(UUID().uuidString.prefix(8).lowercased())" }

    static func makeBucket(_ moto: Moto, _ name: String) async throws {
        let client = try S3Client(configuration: .init(
            endpoint: moto.endpoint, addressingStyle: .path,
            credentials: .static(accessKeyID: moto.environment["AWS_ACCESS_KEY_ID"] ?? "",
                                 secretAccessKey: moto.environment["AWS_SECRET_ACCESS_KEY"] ?? "")))
        defer { client.shutdown() }
        try await client.createBucket(name)
    }

    @Test("put, get, inspect, ls, stats and rm on an object")
    func objectCommands() async throws {
        let (found, reason) = Moto.fromEnvironment()
        guard let moto = found else { print(reason); return }
        let bucket = Self.bucket()
        try await Self.makeBucket(moto, bucket)
        let env = moto.environment
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = sampleJSON()
        try writeFile(dir + "/in.json", input)
        let location = "s3://\(bucket)/tiercache/reports/daily.v1"

        let put = await run(["put", location, dir + "/in.json", "--ttl", "1h", "--json"], environment: env)
        #expect(put.code == 0, "\(put.stderr)")
        #expect(try put.json()["key"] as? String == "reports/daily#v1")

        let get = await run(["get", location], environment: env)
        #expect(get.code == 0, "\(get.stderr)")
        #expect(get.stdout == input)

        let inspect = await run(["inspect", location, "--json"], environment: env)
        #expect(inspect.code == 0)
        let fields = try inspect.json()
        #expect(fields["codec"] as? String == "zstd")
        #expect(fields["checksum"] as? String == "ok")
        #expect(fields["source"] as? String == location)

        // The entry is where the library's S3 tier looks for reports/daily#v1, with its metadata.
        let client = try S3Client(configuration: .init(
            endpoint: moto.endpoint, addressingStyle: .path,
            credentials: .static(accessKeyID: env["AWS_ACCESS_KEY_ID"] ?? "", secretAccessKey: env["AWS_SECRET_ACCESS_KEY"] ?? "")))
        defer { client.shutdown() }
        let tier = S3Tier(client: client, configuration: .init(bucket: bucket, prefix: "tiercache"))
        let key = try CacheKey(namespace: "reports", name: "daily", schemaVersion: 1)
        let expiry = try #require(try await tier.expiry(of: key))
        #expect(expiry.createdAt.map { $0.duration(to: expiry.freshUntil) } == .seconds(3600))
        #expect(try await tier.get(key)?.uncompressedLength == UInt64(input.count))

        try await client.putObject(bucket: bucket, key: "tiercache/raw.json", body: input)
        let notEnvelope = await run(["get", "s3://\(bucket)/tiercache/raw.json", "-o", dir + "/x"], environment: env)
        #expect(notEnvelope.code == ExitStatus.invalidEnvelope)
        #expect(notEnvelope.stderr.contains("not a valid TierCache envelope"))

        let ls = await run(["ls", "s3://\(bucket)/tiercache", "--expiry", "--json"], environment: env)
        #expect(ls.code == 0, "\(ls.stderr)")
        let items = try ls.jsonArray()
        #expect(items.compactMap { $0["name"] as? String } == ["tiercache/raw.json", "tiercache/reports/daily.v1"])
        let daily = try #require(items.first { $0["name"] as? String == "tiercache/reports/daily.v1" })
        #expect(daily["expirySource"] as? String == "metadata")
        #expect(daily["freshUntil"] as? Int64 == expiry.freshUntil.millisecondsSince1970)

        let stats = await run(["stats", "s3://\(bucket)/tiercache", "--json"], environment: env)
        #expect(stats.code == 0)
        let report = try stats.json()
        #expect(report["entries"] as? Int == 2)
        #expect(report["fresh"] as? Int == 1)
        #expect(report["unknown"] as? Int == 1)

        #expect(await run(["rm", location], environment: env).code == 0)
        #expect(await run(["get", location], environment: env).code == ExitStatus.notFound)
        #expect(await run(["rm", location], environment: env).code == ExitStatus.notFound)
        #expect(await run(["get", "s3://\(bucket)-missing/x"], environment: env).code == ExitStatus.notFound)
    }

    @Test("wrong credentials exit 6")
    func badCredentials() async throws {
        let (found, reason) = Moto.fromEnvironment()
        guard let moto = found else { print(reason); return }
        let bucket = Self.bucket()
        try await Self.makeBucket(moto, bucket)
        var env = moto.environment
        env["AWS_SECRET_ACCESS_KEY"] = "wrong"
        let outcome = await run(["get", "s3://\(bucket)/k"], environment: env)
        #expect(outcome.code == ExitStatus.credentials)
        #expect(!outcome.stderr.contains("wrong"), "the secret is never printed")
    }

    @Test("an endpoint that refuses connections exits 5; no credentials at all exits 6")
    func unreachableAndNoCredentials() async throws {
        // A port that was free a moment ago: nothing listens there.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        close(fd)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let env = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1",
                   "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"]
        let refused = await run(["get", "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:\(port)"], environment: env)
        #expect(refused.code == ExitStatus.storage, "\(refused.stderr)")
        #expect(refused.stderr.contains("reading s3://bucket/key"))

        let none = await run(["get", "s3://bucket/key", "--endpoint-url", "http://127.0.0.1:\(port)"],
                             environment: ["AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                                           "HOME": "/nonexistent"])
        #expect(none.code == ExitStatus.credentials, "\(none.stderr)")
    }

    @Test("lifecycle apply then show reports the rule for the prefix")
    func lifecycle() async throws {
        let (found, reason) = Moto.fromEnvironment()
        guard let moto = found else { print(reason); return }
        let bucket = Self.bucket()
        try await Self.makeBucket(moto, bucket)
        let env = moto.environment
        #expect(await run(["lifecycle", "show", "s3://\(bucket)/tiercache"], environment: env).code == ExitStatus.notFound)
        let apply = await run(["lifecycle", "apply", "s3://\(bucket)/tiercache", "--days", "2"], environment: env)
        #expect(apply.code == 0, "\(apply.stderr)")
        let show = await run(["lifecycle", "show", "s3://\(bucket)/tiercache", "--json"], environment: env)
        #expect(show.code == 0)
        let report = try show.json()
        #expect(report["effectiveExpirationDays"] as? Int == 2)
        let rules = try #require(report["rules"] as? [[String: Any]])
        #expect(rules.count == 1)
        #expect(rules.first?["prefix"] as? String == "tiercache/")
        #expect(await run(["lifecycle", "show", "s3://\(bucket)/elsewhere"], environment: env).code == ExitStatus.notFound)
    }

    /// boto3 against moto: `set` installs rules of every kind, `read` prints them as boto3 reads
    /// them, `parse` prints how boto3 parses the document in `$DOC` (what a dry run printed).
    static let lifecycleScript = """
        import boto3, json, os
        from botocore.parsers import RestXMLParser
        s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
        bucket, mode = os.environ["BUCKET"], os.environ["MODE"]
        if mode == "set":
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
                {"ID": "tagged", "Filter": {"Tag": {"Key": "class", "Value": "scratch"}}, "Status": "Enabled", "Expiration": {"Days": 3}},
                {"ID": "and", "Filter": {"And": {"Prefix": "tiercache/", "Tags": [{"Key": "a", "Value": "1"}]}}, "Status": "Enabled",
                 "Expiration": {"Days": 1}},
                {"ID": "transition", "Filter": {"Prefix": "archive/"}, "Status": "Enabled",
                 "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]},
                {"ID": "noncurrent", "Filter": {"Prefix": ""}, "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 10}},
                {"ID": "abort", "Filter": {"Prefix": "uploads/"}, "Status": "Enabled", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
                {"ID": "dated", "Filter": {"Prefix": "old/"}, "Status": "Enabled", "Expiration": {"Date": "2030-01-01T00:00:00Z"}}]})
            rules = []
        elif mode == "read":
            rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        else:
            model = s3.meta.service_model.operation_model("GetBucketLifecycleConfiguration")
            rules = RestXMLParser().parse({"body": os.environ["DOC"].encode(), "headers": {}, "status_code": 200},
                                          model.output_shape)["Rules"]
        print(json.dumps(rules, default=str, sort_keys=True))
        """

    static func boto3Rules(_ mode: String, bucket: String, _ moto: Moto, document: String = "") throws -> String {
        var env = moto.environment
        env["BUCKET"] = bucket
        env["MODE"] = mode
        env["DOC"] = document
        return try runPython(lifecycleScript, environment: env)
    }

    @Test("lifecycle apply, --dry-run and remove keep every rule boto3 set")
    func lifecycleKeepsOtherRules() async throws {
        let (found, reason) = Moto.fromEnvironment()
        guard let moto = found else { print(reason); return }
        let bucket = Self.bucket()
        try await Self.makeBucket(moto, bucket)
        let env = moto.environment
        _ = try Self.boto3Rules("set", bucket: bucket, moto)
        let before = try Self.boto3Rules("read", bucket: bucket, moto)
        let ours = #"{"Expiration": {"Days": 2}, "Filter": {"Prefix": "tiercache/"}, "ID": "tiercache-expire-tiercache", "Status": "Enabled"}"#
        let withOurs = String(before.dropLast(2)) + ", " + ours + "]\n"

        // Rules filtered on tags do not expire the whole prefix: nothing covers it yet.
        #expect(await run(["lifecycle", "show", "s3://\(bucket)/tiercache"], environment: env).code == ExitStatus.notFound)

        let dryRun = await run(["lifecycle", "apply", "s3://\(bucket)/tiercache", "--days", "2", "--dry-run", "--json"],
                               environment: env)
        #expect(dryRun.code == 0, "\(dryRun.stderr)")
        let plan = try dryRun.json()
        #expect(plan["changes"] as? Bool == true)
        let document = try #require(plan["configuration"] as? String)
        #expect(try Self.boto3Rules("parse", bucket: bucket, moto, document: document) == withOurs)
        #expect(try Self.boto3Rules("read", bucket: bucket, moto) == before, "a dry run wrote")
        let textDryRun = await run(["lifecycle", "apply", "s3://\(bucket)/tiercache", "--days", "2", "--dry-run"], environment: env)
        #expect(textDryRun.text.contains(document))

        let apply = await run(["lifecycle", "apply", "s3://\(bucket)/tiercache", "--days", "2"], environment: env)
        #expect(apply.code == 0, "\(apply.stderr)")
        #expect(try Self.boto3Rules("read", bucket: bucket, moto) == withOurs)

        let show = try await run(["lifecycle", "show", "s3://\(bucket)/tiercache", "--json"], environment: env).json()
        #expect(show["effectiveExpirationDays"] as? Int == 2)
        let shown = try #require(show["rules"] as? [[String: Any]])
        #expect(shown.filter { $0["coversPrefix"] as? Bool == true }.compactMap { $0["id"] as? String }
            == ["tiercache-expire-tiercache"])

        let removePlan = await run(["lifecycle", "remove", "s3://\(bucket)/tiercache", "--dry-run", "--json"], environment: env)
        #expect(removePlan.code == 0, "\(removePlan.stderr)")
        let removeDocument = try #require(try removePlan.json()["configuration"] as? String)
        #expect(try Self.boto3Rules("parse", bucket: bucket, moto, document: removeDocument) == before)
        #expect(try Self.boto3Rules("read", bucket: bucket, moto) == withOurs, "a dry run wrote")
        let remove = await run(["lifecycle", "remove", "s3://\(bucket)/tiercache"], environment: env)
        #expect(remove.code == 0, "\(remove.stderr)")
        #expect(try Self.boto3Rules("read", bucket: bucket, moto) == before)
        #expect(await run(["lifecycle", "remove", "s3://\(bucket)/tiercache"], environment: env).code == ExitStatus.notFound)
    }

    @Test("warm uploads files that S3Tier and a Cache read under the library's keys")
    func warm() async throws {
        let (found, reason) = Moto.fromEnvironment()
        guard let moto = found else { print(reason); return }
        let bucket = Self.bucket()
        try await Self.makeBucket(moto, bucket)
        let env = moto.environment
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for i in 0..<12 { try writeFile("\(dir)/item\(i).json", Array("{\"n\":\(i)}".utf8)) }
        let warm = await run(["warm", "s3://\(bucket)/tiercache/items", dir, "--strip-extension", "--schema-version", "2",
                              "--concurrency", "4", "--json"], environment: env)
        #expect(warm.code == 0, "\(warm.stderr)")
        #expect(try warm.json()["entries"] as? Int == 12)

        let client = try S3Client(configuration: .init(
            endpoint: moto.endpoint, addressingStyle: .path,
            credentials: .static(accessKeyID: env["AWS_ACCESS_KEY_ID"] ?? "", secretAccessKey: env["AWS_SECRET_ACCESS_KEY"] ?? "")))
        defer { client.shutdown() }
        let tier = S3Tier(client: client, configuration: .init(bucket: bucket, prefix: "tiercache"))
        let cache = Cache<[String: Int]>(configuration: .init(codec: ZstdCodec.zstd, memory: nil),
                                         chain: TierChain([.remote(tier, readDeadline: .seconds(5))]))
        for i in [0, 5, 11] {
            let result = try await cache.getOrLoad(CacheKey(namespace: "items", name: "item\(i)", schemaVersion: 2)) { [:] }
            #expect(result.source == .tier("s3"))
            #expect(result.value == ["n": i])
        }
        let stats = try await run(["stats", "s3://\(bucket)/tiercache", "--json"], environment: env).json()
        #expect(stats["entries"] as? Int == 12)
        #expect(stats["fresh"] as? Int == 12)
    }
}
