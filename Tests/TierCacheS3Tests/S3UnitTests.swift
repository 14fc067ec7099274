import Testing
import TierCache
@testable import TierCacheS3

@Suite("S3 unit")
struct S3UnitTests {
    @Test("object keys: names percent-encoded into one segment, schema suffix, fingerprint when too long")
    func objectKeys() throws {
        func key(_ name: String, _ schema: UInt32 = 1) throws -> CacheKey { try CacheKey(namespace: "ns", name: name, schemaVersion: schema) }
        #expect(S3Tier.objectKey(for: try key("plain-name_1.json"), prefix: "p") == "p/ns/plain-name_1.json.v1")
        #expect(S3Tier.objectKey(for: try key("a/b c", 7), prefix: "p") == "p/ns/a%2Fb%20c.v7")
        #expect(S3Tier.objectKey(for: try key("ü%"), prefix: "") == "ns/%C3%BC%25.v1")
        #expect(S3Tier.objectKey(for: try key(".."), prefix: "p") == "p/ns/...v1")
        // Distinct keys give distinct object keys, even when names look like suffixes.
        let names = ["a", "a.v1", "a.v1.v1", "a%2F", "a/", "A"]
        let objectKeys = try names.map { S3Tier.objectKey(for: try key($0), prefix: "p") }
        #expect(Set(objectKeys).count == names.count)
        let long = try key(String(repeating: "é", count: 600))
        let objectKey = S3Tier.objectKey(for: long, prefix: "p")
        #expect(objectKey == "p/ns/" + long.fingerprint)
        let limit = try key(String(repeating: "x", count: 1024 - "p/ns/".utf8.count - ".v1".utf8.count))
        #expect(S3Tier.objectKey(for: limit, prefix: "p").utf8.count == 1024)
        let over = try key(String(repeating: "x", count: 1025 - "p/ns/".utf8.count - ".v1".utf8.count))
        #expect(S3Tier.objectKey(for: over, prefix: "p") == "p/ns/" + over.fingerprint)
    }

    @Test("expiry metadata round-trips and malformed metadata reads as nil")
    func expiryMetadata() throws {
        let key = try CacheKey(namespace: "ns", name: "n", schemaVersion: 4)
        let entry = CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 5),
                               freshUntil: WallTime(millisecondsSince1970: 10), staleUntil: WallTime(millisecondsSince1970: 20),
                               uncompressedLength: 0, payload: [])
        let metadata = S3Tier.metadata(for: entry)
        let expiry = try #require(S3Tier.expiry(objectKey: "k", metadata: metadata, size: 1))
        #expect(expiry.freshUntil == entry.freshUntil && expiry.staleUntil == entry.staleUntil)
        #expect(expiry.createdAt == entry.createdAt && expiry.schemaVersion == 4)
        var broken = metadata
        broken["fresh-until"] = "soon"
        #expect(S3Tier.expiry(objectKey: "k", metadata: broken, size: 1) == nil)
    }

    @Test("endpoints and addressing: virtual-hosted for AWS, path-style for IP literals and localhost")
    func addressing() throws {
        func client(_ endpoint: String?, region: AWSRegion = .euWest1, style: S3Client.AddressingStyle = .automatic) throws -> S3Client {
            try S3Client(configuration: .init(region: region, endpoint: endpoint, addressingStyle: style,
                                              credentials: .static(accessKeyID: "a", secretAccessKey: "b")))
        }
        let aws = try client(nil).target(bucket: "my-bucket", key: "a b/c", query: [])
        #expect(aws.base == "https://my-bucket.s3.eu-west-1.amazonaws.com")
        #expect(aws.path == "/a%20b/c")
        let china = try client(nil, region: "cn-north-1").target(bucket: "bkt", key: "k", query: [])
        #expect(china.base == "https://bkt.s3.cn-north-1.amazonaws.com.cn")
        let dotted = try client(nil).target(bucket: "my.bucket", key: "k", query: [])
        #expect(dotted.base == "https://s3.eu-west-1.amazonaws.com" && dotted.path == "/my.bucket/k")
        let ip = try client("http://127.0.0.1:9000").target(bucket: "bkt", key: "k", query: [("list-type", "2"), ("prefix", "a/b")])
        #expect(ip.base == "http://127.0.0.1:9000" && ip.hostHeader == "127.0.0.1:9000")
        #expect(ip.path == "/bkt/k" && ip.query == "list-type=2&prefix=a%2Fb")
        let local = try client("http://localhost:4566/").target(bucket: "bkt", key: nil, query: [("lifecycle", "")])
        #expect(local.path == "/bkt" && local.query == "lifecycle")
        let dots = try client("http://127.0.0.1:9000").target(bucket: "bkt", key: "a/../b/./c/..d/.", query: [])
        #expect(dots.path == "/bkt/a/../b/./c/..d/.")
        let slashes = try client("http://127.0.0.1:9000").target(bucket: "bkt", key: "//a//b/", query: [])
        #expect(slashes.path == "/bkt///a//b/")
        let v6 = try client("http://[::1]:8080").target(bucket: "bkt", key: "k", query: [])
        #expect(v6.hostHeader == "[::1]:8080" && v6.path == "/bkt/k")
        let r2 = try client("https://acct.r2.cloudflarestorage.com").target(bucket: "bkt", key: "k", query: [])
        #expect(r2.base == "https://bkt.acct.r2.cloudflarestorage.com")
        let forcedPath = try client("https://minio.example.com:443/base", style: .path).target(bucket: "bkt", key: "k", query: [])
        #expect(forcedPath.base == "https://minio.example.com" && forcedPath.path == "/base/bkt/k")
        #expect(throws: S3Error.self) { try client("ftp://x") }
        #expect(throws: S3Error.self) { try client("http://host:99999") }
        #expect(throws: S3Error.self) { try client(nil).target(bucket: "a/b", key: "k", query: []) }
    }

    @Test("S3 error bodies parse into code, message and request id; bodiless answers map by status")
    func errors() {
        let xml = Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>NoSuchBucket</Code><Message>The bucket &amp; &lt;all&gt; &#x41;&#66;</Message>
            <BucketName>b</BucketName><RequestId>4442587FB7D0A2F9</RequestId></Error>
            """.utf8)
        let error = S3Error.fromResponse(status: 404, body: xml, requestID: "header-id")
        #expect(error.code == .noSuchBucket)
        #expect(error.message == "The bucket & <all> AB")
        #expect(error.requestID == "4442587FB7D0A2F9")
        #expect(!error.isRetryable)
        #expect(S3Error.fromResponse(status: 404, body: [], requestID: nil).code == .noSuchKey)
        #expect(S3Error.fromResponse(status: 412, body: [], requestID: nil).code == .preconditionFailed)
        #expect(S3Error.fromResponse(status: 500, body: Array("<html>".utf8), requestID: "r").isRetryable)
        #expect(S3Error.fromResponse(status: 503, body: Array("<Error><Code>SlowDown</Code></Error>".utf8), requestID: nil).code == .slowDown)
    }

    @Test("the XML reader reads S3 listings and never traps on malformed or hostile input")
    func xmlReader() throws {
        let listing = Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b</Name><IsTruncated>true</IsTruncated>
              <Contents><Key>a&amp;b</Key><Size>3</Size><ETag>&quot;e&quot;</ETag></Contents>
              <Contents><Key><![CDATA[<raw>]]></Key><Size>4</Size></Contents>
              <NextContinuationToken>tok==</NextContinuationToken><Empty/>
            </ListBucketResult>
            """.utf8)
        let root = try #require(XMLElement.parse(listing))
        #expect(root.name == "ListBucketResult")
        #expect(root.children("Contents").map { $0["Key"] } == ["a&b", "<raw>"])
        #expect(root.children("Contents").first?["ETag"] == "\"e\"")
        #expect(root["NextContinuationToken"] == "tok==")
        #expect(root["Empty"] == "")

        for bad in ["", "<a>", "<a></b>", "<a><b></a>", "text", "<a>&bogus;</a>", "<a>&#xFFFFFFFF;</a>", "<a x=\"1></a>",
                    "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "<a/><b/>", "<a>&#55296;</a>"] {
            #expect(XMLElement.parse(Array(bad.utf8)) == nil, "accepted \(bad)")
        }
        let deep = String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)
        #expect(XMLElement.parse(Array(deep.utf8)) == nil)
        // Random bytes and random truncations of a valid document: nil or a tree, never a trap.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<64, using: &generator)
            let alphabet = Array("<>/&;#x=\"' ab![]-?CDAT".utf8)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            _ = XMLElement.parse(bytes)
        }
        for cut in 0..<listing.count { _ = XMLElement.parse(Array(listing[..<cut])) }
    }

    @Test("the revalidation cache is a bounded LRU: count, byte budget, and 100,000 put/remove cycles stay at the bound")
    func revalidationCacheBounded() throws {
        let key = try CacheKey(namespace: "ns", name: "n")
        let entry = CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 0),
                               freshUntil: WallTime(millisecondsSince1970: 0), staleUntil: WallTime(millisecondsSince1970: 0),
                               uncompressedLength: 0, payload: [])
        // Each item below counts 1,000 envelope bytes + a 6-byte key + a 2-byte ETag.
        var cache = RevalidationCache(capacity: 3, maxBytes: 1 << 20)
        for i in 0..<5000 { cache.set("k\(i % 7)", .init(etag: "e\(i % 10)", entry: entry), envelopeBytes: 1000) }
        let present = (0..<7).filter { cache.get("k\($0)") != nil }
        #expect(present.count == 3)
        cache.remove("k\(present[0])")
        #expect(cache.get("k\(present[0])") == nil)

        // Least recently *used* goes first: reading a key keeps it.
        var lru = RevalidationCache(capacity: 3, maxBytes: 1 << 20)
        for name in ["aaaaaa", "bbbbbb", "cccccc"] { lru.set(name, .init(etag: "e1", entry: entry), envelopeBytes: 1000) }
        _ = lru.get("aaaaaa")
        lru.set("dddddd", .init(etag: "e1", entry: entry), envelopeBytes: 1000)
        #expect(lru.get("aaaaaa") != nil && lru.get("bbbbbb") == nil && lru.count == 3 && lru.bytes == 3 * 1008)

        // The byte budget evicts before the count does; an item above the budget is not kept.
        var budget = RevalidationCache(capacity: 100, maxBytes: 2500)
        for i in 0..<10 { budget.set("kkkkk\(i)", .init(etag: "e1", entry: entry), envelopeBytes: 1000) }
        #expect(budget.count == 2 && budget.bytes == 2016)
        budget.set("huge00", .init(etag: "e1", entry: entry), envelopeBytes: 5000)
        #expect(budget.get("huge00") == nil && budget.bytes == 2016)

        // A put then a remove of ever new keys (a tier writing and deleting entries) holds nothing
        // and allocates nothing more than its bound.
        var cycles = RevalidationCache(capacity: 128, maxBytes: 8 << 20)
        for i in 0..<100_000 {
            let name = "tiercache/ns/entry-\(i).v1"
            cycles.set(name, .init(etag: "\"\(i)\"", entry: entry), envelopeBytes: 100)
            if i % 1000 == 0 { #expect(cycles.count == 1) }
            cycles.remove(name)
        }
        #expect(cycles.count == 0 && cycles.bytes == 0)
        #expect(cycles.slots <= 129)
        // Filling it keeps it at its bound too.
        for i in 0..<100_000 { cycles.set("key-\(i)", .init(etag: "e", entry: entry), envelopeBytes: 100) }
        #expect(cycles.count == 128 && cycles.slots <= 129)
        #expect(cycles.bytes == (0..<128).reduce(0) { total, n in total + 100 + "key-\(99_872 + n)".utf8.count + 1 })
    }
}
