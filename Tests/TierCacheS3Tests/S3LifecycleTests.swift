import Crypto
import Foundation
import Testing
import TierCache
import TierCacheTesting
@testable import TierCacheS3

/// The bucket's lifecycle is the user's: applying or removing our rule keeps every other rule as
/// S3 returned it. boto3 sets and reads the rules through moto (signature checking on); a loopback
/// server checks the bytes sent, for the filters moto itself does not store (object sizes).
@Suite("lifecycle: only our rule changes")
struct S3LifecycleTests {
    /// Rules of every kind a user may have, as boto3 writes them.
    static let userRules = """
        [
          {"ID": "tagged", "Filter": {"Tag": {"Key": "class", "Value": "scratch"}}, "Status": "Enabled", "Expiration": {"Days": 3}},
          {"ID": "big", "Filter": {"ObjectSizeGreaterThan": 1048576}, "Status": "Enabled", "Expiration": {"Days": 7}},
          {"ID": "and", "Filter": {"And": {"Prefix": "logs/", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
                                          "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 1000}},
           "Status": "Enabled", "Expiration": {"Days": 30}},
          {"ID": "transition", "Filter": {"Prefix": "archive/"}, "Status": "Enabled",
           "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]},
          {"ID": "noncurrent", "Filter": {"Prefix": ""}, "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 10}},
          {"ID": "abort", "Filter": {"Prefix": "uploads/"}, "Status": "Disabled",
           "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
          {"ID": "dated", "Filter": {"Prefix": "old/"}, "Status": "Enabled", "Expiration": {"Date": "2030-01-01T00:00:00Z"}}
        ]
        """

    /// boto3 against moto: `set` puts ``userRules`` (and a transition default), `read` prints the
    /// rules and the default as boto3 parses them, `parse` prints how boto3 parses the document
    /// in `$DOC` (what a dry run printed) as a GetBucketLifecycleConfiguration answer.
    static let script = """
        import boto3, json, os, sys
        from botocore.parsers import RestXMLParser
        s3 = boto3.client("s3", endpoint_url=os.environ["EP"], region_name="us-east-1",
                          aws_access_key_id=os.environ["AK"], aws_secret_access_key=os.environ["SK"])
        bucket, mode = os.environ["BUCKET"], os.environ["MODE"]
        def canonical(rules):
            return json.loads(json.dumps(rules, default=str, sort_keys=True))
        if mode == "set":
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, TransitionDefaultMinimumObjectSize="varies_by_storage_class",
                                                  LifecycleConfiguration={"Rules": json.loads(os.environ["RULES"])})
            print("{}")
        elif mode == "read":
            try:
                got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
                print(json.dumps({"rules": canonical(got["Rules"]),
                                  "transitionDefault": got.get("TransitionDefaultMinimumObjectSize")}))
            except s3.exceptions.ClientError as e:
                print(json.dumps({"rules": [], "error": e.response["Error"]["Code"]}))
        elif mode == "parse":
            model = s3.meta.service_model.operation_model("GetBucketLifecycleConfiguration")
            parsed = RestXMLParser().parse({"body": os.environ["DOC"].encode(), "headers": {}, "status_code": 200},
                                           model.output_shape)
            print(json.dumps({"rules": canonical(parsed["Rules"])}))
        """

    struct Read: Decodable, Equatable {
        var rules: [JSONValue]
        var transitionDefault: String?
    }

    static func boto3(_ mode: String, bucket: String, extra: [String: String] = [:]) throws -> Read {
        let python = try #require(Python.path, "python3 with boto3 is needed")
        let credentials = try #require(Moto.credentials)
        var environment = ["EP": try #require(Moto.endpoint), "AK": credentials.accessKeyID,
                           "SK": credentials.secretAccessKey, "BUCKET": bucket, "MODE": mode, "RULES": userRules]
        environment.merge(extra) { $1 }
        let output = try Python.run(python, script: script, environment: environment)
        if mode == "set" { return Read(rules: []) }
        return try JSONDecoder().decode(Read.self, from: Data(output.utf8))
    }

    /// Our rule as boto3 reads it.
    static func ours(_ id: String, prefix: String, days: Int) -> JSONValue {
        .object(["ID": .string(id), "Filter": .object(["Prefix": .string(prefix)]), "Status": .string("Enabled"),
                 "Expiration": .object(["Days": .number(Double(days))])])
    }

    @Test("apply, re-apply and remove keep every rule boto3 set, read back by boto3 unchanged",
          .enabled(if: Moto.isAvailable, "moto is not running"))
    func keepsUserRules() async throws {
        let bucket = Moto.uniqueBucket("lifecycle-keep")
        _ = try Self.boto3("set", bucket: bucket)
        let before = try Self.boto3("read", bucket: bucket)
        #expect(before.rules.count == 7)

        let tier = S3Tier(client: try Moto.client(), configuration: .init(bucket: bucket, prefix: "cache"))
        // A dry run writes nothing and shows the whole configuration it would write.
        let planned = try await tier.applyExpirationLifecycle(days: 1, dryRun: true)
        #expect(!planned.written)
        #expect(planned.changes)
        #expect(try Self.boto3("read", bucket: bucket) == before)
        let plannedRules = try Self.boto3("parse", bucket: bucket, extra: ["DOC": planned.after.xml]).rules
        #expect(plannedRules == before.rules + [Self.ours("tiercache-expire-cache", prefix: "cache/", days: 1)])

        let applied = try await tier.applyExpirationLifecycle(days: 1)
        #expect(applied.written)
        var after = try Self.boto3("read", bucket: bucket)
        #expect(after.rules == before.rules + [Self.ours("tiercache-expire-cache", prefix: "cache/", days: 1)])
        // moto answers its default whatever was set; bytesCarriedThrough checks that we send it back.
        #expect(after.transitionDefault == before.transitionDefault)

        // Applying the same rule again writes nothing; another number of days replaces ours only.
        #expect(try await tier.applyExpirationLifecycle(days: 1).written == false)
        try await tier.applyExpirationLifecycle(days: 2)
        after = try Self.boto3("read", bucket: bucket)
        #expect(after.rules == before.rules + [Self.ours("tiercache-expire-cache", prefix: "cache/", days: 2)])

        // A second tier's rule sits beside the first.
        let other = S3Tier(client: try Moto.client(), configuration: .init(bucket: bucket, prefix: "other"))
        try await other.applyExpirationLifecycle(days: 5)
        after = try Self.boto3("read", bucket: bucket)
        #expect(after.rules == before.rules + [Self.ours("tiercache-expire-cache", prefix: "cache/", days: 2),
                                               Self.ours("tiercache-expire-other", prefix: "other/", days: 5)])

        // Removing ours gives back exactly what the user had.
        try await other.removeExpirationLifecycle()
        let removed = try await tier.removeExpirationLifecycle()
        #expect(removed.written)
        #expect(try Self.boto3("read", bucket: bucket) == before)
        #expect(try await tier.removeExpirationLifecycle().written == false)
    }

    @Test("removing the only rule deletes the configuration; applying to a bucket without one creates it",
          .enabled(if: Moto.isAvailable, "moto is not running"))
    func emptyBucket() async throws {
        let client = try Moto.client()
        let bucket = Moto.uniqueBucket("lifecycle-empty")
        try await client.createBucket(bucket)
        #expect(try await client.getBucketLifecycleConfiguration(bucket: bucket).rules.isEmpty)
        let tier = S3Tier(client: client, configuration: .init(bucket: bucket, prefix: ""))
        try await tier.applyExpirationLifecycle(days: 1)
        let rules = try await client.getBucketLifecycleConfiguration(bucket: bucket).rules
        #expect(rules.map(\.id) == ["tiercache-expire-all"])
        #expect(rules.first?.prefix == "")
        #expect(rules.first?.expirationDays == 1)
        try await tier.removeExpirationLifecycle()
        #expect(try await client.getBucketLifecycleConfiguration(bucket: bucket).rules.isEmpty)
    }

    /// A lifecycle document as S3 could send it: filters moto does not keep (object sizes),
    /// spacing, a comment, escaped text, a rule our ID names with other content, and an element
    /// this library has never heard of.
    static let served = """
        <?xml version="1.0" encoding="UTF-8"?>
        <LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
          <Rule>
            <ID>big &amp; old</ID>
            <Filter><And><Prefix>logs/</Prefix><ObjectSizeGreaterThan>1048576</ObjectSizeGreaterThan><Tag><Key>k</Key><Value>&lt;v&gt;</Value></Tag></And></Filter>
            <Status>Enabled</Status>
            <Expiration><Days>3</Days></Expiration>
          </Rule><!-- a comment between rules -->
          <Rule><ID>tiercache-expire-cache</ID><Filter><Prefix>cache/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>9</Days></Expiration></Rule>
          <Rule><ID>future</ID><Filter/><Status>Enabled</Status><SomethingNew a="1"><X>y</X></SomethingNew><NoncurrentVersionTransition><NoncurrentDays>30</NoncurrentDays><StorageClass>GLACIER_IR</StorageClass><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionTransition></Rule>
        </LifecycleConfiguration>
        """

    @Test("the rules sent back are the bytes S3 returned, in order, with its transition default")
    func bytesCarriedThrough() async throws {
        let written = LockedValueBox<LoopbackHTTPServer.Request?>(nil)
        let server = try LoopbackHTTPServer { request in
            if request.method == "PUT" {
                written.withLock { $0 = request }
                return .init(status: 200)
            }
            return .init(status: 200, headers: [("Content-Type", "application/xml"),
                                                ("x-amz-transition-default-minimum-object-size", "varies_by_storage_class")],
                         body: Array(Self.served.utf8))
        }
        defer { server.stop() }
        let client = try S3Client(configuration: .init(
            endpoint: server.baseURL, credentials: .static(accessKeyID: "AKIDLIFE", secretAccessKey: "lifesecret")))
        let tier = S3Tier(client: client, configuration: .init(bucket: "bucket", prefix: "cache"))
        let update = try await tier.applyExpirationLifecycle(days: 1)
        #expect(update.written)
        let request = try #require(written.withLock { $0 })
        #expect(request.path == "/bucket")
        #expect(request.query == "lifecycle")
        #expect(request.header("x-amz-transition-default-minimum-object-size") == "varies_by_storage_class")
        let body = String(decoding: request.body, as: UTF8.self)
        let original = Array(Self.served.utf8)
        let rules = try #require(XMLElement.parse(original)).children("Rule")
        let big = String(decoding: original[rules[0].range], as: UTF8.self)
        let future = String(decoding: original[rules[2].range], as: UTF8.self)
        let ours = "<Rule><ID>tiercache-expire-cache</ID><Filter><Prefix>cache/</Prefix></Filter><Status>Enabled</Status>"
            + "<Expiration><Days>1</Days></Expiration></Rule>"
        #expect(body == "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">" + big + ours + future
            + "</LifecycleConfiguration>")
        #expect(big.contains("<ObjectSizeGreaterThan>1048576</ObjectSizeGreaterThan>"))
        #expect(big.contains("<ID>big &amp; old</ID>"))
        #expect(future.contains("<SomethingNew a=\"1\"><X>y</X></SomethingNew>"))
        #expect(request.header("Content-MD5") == S3Client.base64(Array(Insecure.MD5.hash(data: request.body))))

        // What the library reads of them, for `lifecycle show`.
        #expect(update.before.rules.map(\.id) == ["big & old", "tiercache-expire-cache", "future"])
        #expect(update.before.rules.map(\.prefix) == [nil, "cache/", ""])
        #expect(update.before.rules.map(\.expirationDays) == [3, 9, nil])
        #expect(update.before.rules[2].actions == ["SomethingNew", "NoncurrentVersionTransition"])
    }

    @Test("a document with a namespace prefix is written back in it, and reads back the same")
    func prefixedDocument() throws {
        let served = Array("""
            <s3:LifecycleConfiguration xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:Rule><s3:ID>a</s3:ID>\
            <s3:Filter/><s3:Status>Enabled</s3:Status><s3:Expiration><s3:Days>4</s3:Days></s3:Expiration></s3:Rule>\
            </s3:LifecycleConfiguration>
            """.utf8)
        let read = try S3LifecycleConfiguration.parse(served, transitionDefaultMinimumObjectSize: nil, status: 200)
        #expect(read.xml == String(decoding: served, as: UTF8.self))
        #expect(read.rules.map(\.expirationDays) == [4])
        let empty = try S3LifecycleConfiguration.parse(Array("<LifecycleConfiguration/>".utf8),
                                                       transitionDefaultMinimumObjectSize: nil, status: 200)
        #expect(empty.rules.isEmpty)
        #expect(throws: S3Error.self) {
            try S3LifecycleConfiguration.parse(Array("<Error/>".utf8), transitionDefaultMinimumObjectSize: nil, status: 200)
        }
    }

    @Test("a rule already in place, however S3 spells it, is not written again")
    func idempotent() async throws {
        let puts = LockedValueBox(0)
        let server = try LoopbackHTTPServer { request in
            if request.method == "PUT" {
                puts.withLock { $0 += 1 }
                return .init(status: 200)
            }
            return .init(status: 200, body: Array("""
                <LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><Expiration><Days>1</Days></Expiration>\
                <ID>tiercache-expire-cache</ID><Filter><Prefix>cache/</Prefix></Filter><Status>Enabled</Status></Rule></LifecycleConfiguration>
                """.utf8))
        }
        defer { server.stop() }
        let client = try S3Client(configuration: .init(
            endpoint: server.baseURL, credentials: .static(accessKeyID: "AKIDLIFE", secretAccessKey: "lifesecret")))
        let tier = S3Tier(client: client, configuration: .init(bucket: "bucket", prefix: "cache"))
        #expect(try await tier.applyExpirationLifecycle(days: 1).written == false)
        #expect(puts.withLock { $0 } == 0)
        #expect(try await tier.applyExpirationLifecycle(days: 2).written)
        #expect(puts.withLock { $0 } == 1)
    }
}

/// A JSON value compared structurally (boto3's answers, decoded).
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
