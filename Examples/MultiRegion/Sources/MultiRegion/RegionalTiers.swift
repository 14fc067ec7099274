import TierCache
import TierCacheHTTP
import TierCacheS3

/// Where each region's cache lives: one bucket per region, named from a template
/// (`my-cache-{region}` → `my-cache-eu-west-1`), the same prefix everywhere.
struct RegionalBuckets: Sendable {
    var template: String
    var prefix: String
    var regions: [AWSRegion]

    func bucket(in region: AWSRegion) -> String {
        template.replacing("{region}", with: region.rawValue)
    }

    /// The tiers for a process running in `home`: its own region's bucket first, under the
    /// cold-start deadline; then, when `fallback` is given, another region's bucket with a longer
    /// deadline and no writes (a process writes only to its own region; each region warms itself).
    func tiers(home: AWSRegion, fallback: AWSRegion?, endpoint: String?, http: HTTPClient,
               credentials: any AWSCredentialProvider) throws -> [TierChain.Tier] {
        func tier(_ region: AWSRegion) throws -> S3Tier {
            let client = try S3Client(
                configuration: .init(region: region, endpoint: endpoint, credentials: credentials), httpClient: http)
            return S3Tier(client: client, configuration: .init(name: "s3-\(region.rawValue)", bucket: bucket(in: region),
                                                               prefix: prefix))
        }
        var tiers: [TierChain.Tier] = [.remote(try tier(home), readDeadline: .milliseconds(200))]
        if let fallback, fallback != home {
            tiers.append(.init(ReadOnlyTier(try tier(fallback)), readDeadline: .milliseconds(400),
                               writeDeadline: nil, writeMode: .writeBehind))
        }
        return tiers
    }
}

/// Wraps a tier so that writes and removals are dropped: for another region's bucket, read as a
/// fallback but never written from here.
struct ReadOnlyTier: CacheTier {
    let base: any CacheTier
    init(_ base: any CacheTier) { self.base = base }
    var name: String { base.name }
    func get(_ key: CacheKey) async throws -> CacheEntry? { try await base.get(key) }
    func put(_ entry: CacheEntry) async throws {}
    func remove(_ key: CacheKey) async throws {}
}
