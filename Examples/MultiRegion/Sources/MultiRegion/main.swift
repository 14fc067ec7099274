#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache
import TierCacheHTTP
import TierCacheS3

// Read at the edge of the program:
//   AWS_REGION                  the region this process runs in (Lambda sets it)
//   TIERCACHE_BUCKET_TEMPLATE   e.g. my-cache-{region}
//   TIERCACHE_FALLBACK_REGION   optional: a second region's bucket to read when the home one misses
//   AWS_ENDPOINT_URL_S3         optional: a local S3 (moto, MinIO) for trying it out
let environment = ProcessInfo.processInfo.environment
let home = AWSRegion(rawValue: environment["AWS_REGION"] ?? "us-east-1")
let fallback = environment["TIERCACHE_FALLBACK_REGION"].map { AWSRegion(rawValue: $0) }
let buckets = RegionalBuckets(template: environment["TIERCACHE_BUCKET_TEMPLATE"] ?? "my-cache-{region}",
                              prefix: "tiercache", regions: [.usEast1, .euWest1])

let http = HTTPClient()
defer { http.shutdown() }
let tiers = try buckets.tiers(home: home, fallback: fallback, endpoint: environment["AWS_ENDPOINT_URL_S3"], http: http,
                              credentials: CredentialChain.default(httpClient: http))
print("home region \(home): reading \(tiers.map(\.tier.name).joined(separator: ", then "))")
for region in buckets.regions {
    print("  \(region): s3://\(buckets.bucket(in: region))/\(buckets.prefix)/  (tiercache lifecycle apply s3://\(buckets.bucket(in: region))/\(buckets.prefix) --days 1 --region \(region))")
}

guard environment["TIERCACHE_BUCKET_TEMPLATE"] != nil else {
    print("set TIERCACHE_BUCKET_TEMPLATE (and AWS credentials) to read and write through the chain")
    exit(0)
}
struct Settings: Codable, Sendable { var featureFlags: [String: Bool] }
let cache = Cache<Settings>(chain: TierChain(tiers))
let key = try CacheKey(namespace: "multi-region-example", name: "settings", schemaVersion: 1)
let result = try await cache.getOrLoad(key) { Settings(featureFlags: ["newCheckout": true]) }
_ = await cache.flush()
print("settings from \(result.source)")
