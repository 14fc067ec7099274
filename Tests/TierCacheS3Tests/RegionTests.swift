import Foundation
import Testing
import TierCache
@testable import TierCacheS3

/// A clock the test moves by hand.
final class ManualTestClock: CacheClock {
    private let time = LockedValueBox(WallTime(millisecondsSince1970: 1_700_000_000_000))
    func now() -> WallTime { time.withLock { $0 } }
    func advance(_ duration: Duration) { time.withLock { $0 = $0.advanced(by: duration) } }
}

@Suite("Regions")
struct RegionTests {
    @Test("every region in endpoints.json's aws, aws-cn and aws-us-gov partitions is known, with host and coordinates")
    func generatedTableMatchesEndpoints() throws {
        // Re-read the source data, so the generated Swift cannot drift from it unnoticed.
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var path: String?
        for _ in 0..<4 {
            let candidate = dir.deletingLastPathComponent().appendingPathComponent("shared/bench-data/endpoints.json").path
            if FileManager.default.fileExists(atPath: candidate) { path = candidate; break }
            dir = dir.deletingLastPathComponent()
        }
        guard let path else {
            print("RegionTests: shared/bench-data/endpoints.json not found; skipping the comparison with it")
            return
        }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let partitions = try #require(json["partitions"] as? [[String: Any]])
        var expected: [String: String] = [:]
        for partition in partitions {
            let id = try #require(partition["partition"] as? String)
            guard ["aws", "aws-cn", "aws-us-gov"].contains(id) else { continue }
            for region in try #require(partition["regions"] as? [String: Any]).keys { expected[region] = id }
        }
        #expect(Set(Region.allKnown.map(\.rawValue)) == Set(expected.keys))
        for (name, partition) in expected {
            let region = Region(rawValue: name)
            #expect(region.partition.rawValue == partition, "\(name)")
            #expect(region.coordinates != nil, "\(name) has coordinates")
            #expect(region.s3Host == "s3.\(name).\(partition == "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com")", "\(name)")
        }
    }

    @Test("static members, partitions and hosts, known or not")
    func members() {
        #expect(Region.euCentral1.rawValue == "eu-central-1")
        #expect(Region.cnNorth1.partition == .awsChina)
        #expect(Region.cnNorth1.s3Host == "s3.cn-north-1.amazonaws.com.cn")
        #expect(Region.usGovWest1.partition == .awsGovCloud)
        let future = Region(rawValue: "cn-east-9")
        #expect(!future.isKnown)
        #expect(future.partition == .awsChina)
        #expect(future.s3Host == "s3.cn-east-9.amazonaws.com.cn")
        #expect(future.coordinates == nil)
    }

    @Test("distance ordering: eu-central-1 reads eu-west-1 before us-east-1, itself first, unknown regions last")
    func ordering() throws {
        let regions: [Region] = [.usEast1, "xx-unknown-1", .apNortheast1, .euWest1, .euCentral1]
        #expect(Region.euCentral1.byDistance(regions) == [.euCentral1, .euWest1, .usEast1, .apNortheast1, "xx-unknown-1"])
        // From Oregon, Dublin (about 7300 km) is nearer than Tokyo (7800) and Frankfurt (8300).
        #expect(Region.usWest2.byDistance(regions) == [.usEast1, .euWest1, .apNortheast1, .euCentral1, "xx-unknown-1"])
        let frankfurtDublin = try #require(Region.euCentral1.distance(to: .euWest1))
        #expect(frankfurtDublin > 900 && frankfurtDublin < 1300, "Frankfurt-Dublin is about 1090 km")
        #expect(Region.euWest1.distance(to: .euWest1) == 0)
        #expect(Region.euWest1.distance(to: "xx-unknown-1") == nil)
    }

    static let key = try! CacheKey(namespace: "ns", name: "k")

    @Test("nearest resolver: reads by distance, writes home or everywhere")
    func nearestResolver() throws {
        let buckets = [
            BucketTarget(region: .usEast1, bucket: "cache-use1"),
            BucketTarget(region: .euWest1, bucket: "cache-euw1"),
            BucketTarget(region: .apSoutheast2, bucket: "cache-apse2"),
        ]
        let resolver = try RegionalBucketResolver.nearest(buckets, from: .euCentral1)
        #expect(resolver.targets(for: .read, key: Self.key).map(\.bucket) == ["cache-euw1", "cache-use1", "cache-apse2"])
        #expect(resolver.targets(for: .write, key: Self.key).map(\.bucket) == ["cache-use1"])
        let replicated = try RegionalBucketResolver.nearest(buckets, from: .apSoutheast4, home: .euWest1, writes: .everyBucket)
        #expect(replicated.targets(for: .read, key: Self.key).map(\.bucket) == ["cache-apse2", "cache-use1", "cache-euw1"])
        #expect(replicated.targets(for: .write, key: Self.key).map(\.bucket) == ["cache-euw1", "cache-use1", "cache-apse2"])
        let listed = try RegionalBucketResolver.perRegion(buckets, home: .apSoutheast2)
        #expect(listed.targets(for: .read, key: Self.key).map(\.bucket) == ["cache-use1", "cache-euw1", "cache-apse2"])
        #expect(listed.targets(for: .remove, key: Self.key).first?.bucket == "cache-apse2")

        #expect(throws: TierCacheError.self) { try RegionalBucketResolver.perRegion([]) }
        #expect(throws: TierCacheError.self) { try RegionalBucketResolver.perRegion(buckets, home: .euCentral1) }
        #expect(throws: TierCacheError.self) { try RegionalBucketResolver.perRegion(buckets + [buckets[0]]) }
    }

    @Test("fixed, Multi-Region Access Point and custom resolvers")
    func otherResolvers() {
        let fixed = FixedBucketResolver.fixed(region: .euWest1, bucket: "b-1", prefix: "p")
        #expect(fixed.targets(for: .write, key: Self.key) == [BucketTarget(region: .euWest1, bucket: "b-1", prefix: "p")])
        #expect(fixed.target.resolvedEndpoint == "https://s3.eu-west-1.amazonaws.com")
        let mrap = FixedBucketResolver.multiRegionAccessPoint(alias: "mfzwi23gnjvgw.mrap")
        #expect(mrap.target.signing.sigV4aRegionSet == "*")
        #expect(mrap.target.resolvedEndpoint == "https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com")
        let custom = ClosureBucketResolver.custom { operation, key in
            [BucketTarget(region: operation == .write ? .usEast1 : .euWest1, bucket: "c-" + key.namespace)]
        }
        #expect(custom.targets(for: .write, key: Self.key) == [BucketTarget(region: .usEast1, bucket: "c-ns")])
        #expect(custom.targets(for: .read, key: Self.key) == [BucketTarget(region: .euWest1, bucket: "c-ns")])
    }

    @Test("circuit breaker: opens on failure, skips during the cool-down, lets one probe through, closes on success")
    func breaker() {
        let clock = ManualTestClock()
        let breaker = BucketCircuitBreaker(configuration: .init(failureThreshold: 2, coolDown: .seconds(30)), clock: clock)
        #expect(breaker.acquire("a") == BucketCircuitBreaker.Permit(isProbe: false))
        breaker.recordFailure("a")
        #expect(breaker.state(of: "a") == .closed, "one failure is below the threshold of 2")
        breaker.recordFailure("a")
        #expect(breaker.state(of: "a") == .open)
        #expect(breaker.acquire("a") == nil)
        #expect(breaker.acquire("b") != nil, "circuits are per bucket")
        clock.advance(.seconds(29))
        #expect(breaker.acquire("a") == nil, "still cooling down")
        clock.advance(.seconds(1))
        #expect(breaker.acquire("a") == BucketCircuitBreaker.Permit(isProbe: true))
        #expect(breaker.state(of: "a") == .halfOpen)
        #expect(breaker.acquire("a") == nil, "only one probe at a time")
        breaker.recordFailure("a")
        #expect(breaker.state(of: "a") == .open, "a failed probe reopens at once")
        clock.advance(.seconds(30))
        let probe = breaker.acquire("a")
        #expect(probe?.isProbe == true)
        breaker.release("a", probe!)
        #expect(breaker.acquire("a")?.isProbe == true, "a released probe lets the next request probe")
        breaker.recordSuccess("a")
        #expect(breaker.state(of: "a") == .closed)
        #expect(breaker.acquire("a") == BucketCircuitBreaker.Permit(isProbe: false))
    }

    @Test("a probe that never reports is forgotten after a cool-down")
    func lostProbe() {
        let clock = ManualTestClock()
        let breaker = BucketCircuitBreaker(configuration: .init(coolDown: .seconds(10)), clock: clock)
        breaker.recordFailure("a")
        clock.advance(.seconds(10))
        #expect(breaker.acquire("a")?.isProbe == true)
        clock.advance(.seconds(9))
        #expect(breaker.acquire("a") == nil)
        clock.advance(.seconds(1))
        #expect(breaker.acquire("a")?.isProbe == true)
    }
}

@Suite("Bucket configuration")
struct BucketConfigurationTests {
    @Test("TIERCACHE_BUCKETS: regions, buckets, prefixes, endpoints and the home mark")
    func parseGood() throws {
        let config = try BucketConfiguration.parse(
            " us-east-1=cache-use1 , *eu-west-1=cache-euw1/fn-a/v2@http://127.0.0.1:9000,ap-south-1=cache.aps1@https://s3.example.com/base")
        #expect(config.home == .euWest1)
        #expect(config.buckets == [
            BucketTarget(region: .usEast1, bucket: "cache-use1"),
            BucketTarget(region: .euWest1, bucket: "cache-euw1", endpoint: "http://127.0.0.1:9000", prefix: "fn-a/v2"),
            BucketTarget(region: .apSouth1, bucket: "cache.aps1", endpoint: "https://s3.example.com/base"),
        ])
        let plain = try BucketConfiguration.parse("us-east-1=cache-use1,eu-west-1=cache-euw1", writes: .everyBucket)
        #expect(plain.home == .usEast1, "the first entry is home by default")
        #expect(plain.resolver(current: .euCentral1).targets(for: .read, key: RegionTests.key).map(\.bucket)
                == ["cache-euw1", "cache-use1"])
        #expect(plain.resolver(current: nil).targets(for: .write, key: RegionTests.key).count == 2)
        #expect(try BucketConfiguration.fromEnvironment(["OTHER": "x"]) == nil)
        #expect(try BucketConfiguration.fromEnvironment(["TIERCACHE_BUCKETS": "us-east-1=abc"])?.buckets.count == 1)
    }

    @Test("bad TIERCACHE_BUCKETS entries fail with invalidConfiguration naming the entry",
          arguments: [
              ("us-east-1=cache-use1,", "entry 2"),
              ("us-east-1", "entry 1 'us-east-1'"),
              ("us-east-1=ok-bucket,Eu-West-1=cache", "entry 2 'Eu-West-1=cache'"),
              ("us-east-1=Bad_Bucket", "'Bad_Bucket'"),
              ("us-east-1=ab", "'ab'"),
              ("us-east-1=a..b", "'a..b'"),
              ("us-east-1=abc@ftp://host", "'ftp://host'"),
              ("us-east-1=abc@http://", "endpoint"),
              ("us-east-1=abc//x", "prefix"),
              ("us-east-1=abc,us-east-1=def", "repeats region us-east-1"),
              ("*us-east-1=abc,*eu-west-1=def", "second home"),
              ("", "entry 1"),
          ])
    func parseBad(_ text: String, _ mention: String) throws {
        do {
            _ = try BucketConfiguration.parse(text)
            Issue.record("'\(text)' was accepted")
        } catch let error as TierCacheError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(mention), "\(error.message) should mention \(mention)")
        }
    }

    @Test("JSON: good file, and bad ones named by index or field")
    func json() throws {
        let good = #"""
        {"home": "eu-west-1", "writes": "all", "buckets": [
          {"region": "us-east-1", "bucket": "cache-use1"},
          {"region": "eu-west-1", "bucket": "cache-euw1", "endpoint": "http://127.0.0.1:9000", "prefix": "p"}]}
        """#
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("buckets-\(UUID().uuidString).json").path
        try Data(good.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let config = try BucketConfiguration.load(jsonFile: path)
        #expect(config.home == .euWest1)
        #expect(config.writes == .everyBucket)
        #expect(config.buckets[1] == BucketTarget(region: .euWest1, bucket: "cache-euw1", endpoint: "http://127.0.0.1:9000", prefix: "p"))

        let bad: [(String, String)] = [
            (#"{"buckets": []}"#, "missing or empty"),
            (#"{"buckets": [{"region": "us-east-1"}]}"#, "buckets[0] (us-east-1) has no 'bucket'"),
            (#"{"buckets": [{"region": "us-east-1", "bucket": "ok-1"}, {"region": "eu-west-1", "bucket": "X"}]}"#, "buckets[1] (eu-west-1)"),
            (#"{"home": "ap-south-1", "buckets": [{"region": "us-east-1", "bucket": "ok-1"}]}"#, "'home' is ap-south-1"),
            (#"{"writes": "some", "buckets": [{"region": "us-east-1", "bucket": "ok-1"}]}"#, "'writes'"),
            (#"[1, 2]"#, "not a bucket configuration"),
        ]
        for (text, mention) in bad {
            do {
                _ = try BucketConfiguration.decodeJSON(Array(text.utf8), source: "test.json")
                Issue.record("\(text) was accepted")
            } catch let error as TierCacheError {
                #expect(error.code == .invalidConfiguration)
                #expect(error.message.contains(mention), "\(error.message) should mention \(mention)")
            }
        }
        #expect(throws: TierCacheError.self) { try BucketConfiguration.load(jsonFile: "/nonexistent/buckets.json") }
    }
}
