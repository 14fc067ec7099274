#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import TierCache
import TierCacheDisk
import TierCacheHTTP
import TierCacheS3
import TierCacheZstd
import UnixSignals

// Configuration from the environment, read here at the edge of the program:
//   TIERCACHE_BUCKET   the S3 bucket (without it: memory + disk only)
//   TIERCACHE_PREFIX   the key prefix in the bucket (default "tiercache")
//   TIERCACHE_DISK     the disk tier's folder (default /var/cache/tiercache-example)
//   AWS_REGION, AWS_ENDPOINT_URL_S3 and the usual credential variables / profiles
let environment = ProcessInfo.processInfo.environment
var logger = Logger(label: "tiercache-example-server")
logger.logLevel = .info

let http = HTTPClient(logger: logger)
let disk = DiskTier(configuration: .init(root: environment["TIERCACHE_DISK"] ?? "/var/cache/tiercache-example",
                                         maxBytes: 256 << 20),
                    logger: logger)

var tiers: [TierChain.Tier] = [.local(disk)]
if let bucket = environment["TIERCACHE_BUCKET"], !bucket.isEmpty {
    let client = try S3Client(
        configuration: .init(
            region: AWSRegion(rawValue: environment["AWS_REGION"] ?? "us-east-1"),
            endpoint: environment["AWS_ENDPOINT_URL_S3"],
            credentials: CredentialChain.default(httpClient: http, logger: logger)),
        httpClient: http, logger: logger)
    let s3 = S3Tier(client: client, configuration: .init(bucket: bucket, prefix: environment["TIERCACHE_PREFIX"] ?? "tiercache"),
                    logger: logger)
    // A long-running server can wait longer for S3 than a cold start can.
    tiers.append(.remote(s3, readDeadline: .seconds(1)))
} else {
    logger.notice("TIERCACHE_BUCKET is not set: running with memory and disk tiers only")
}

let cache = Cache<ReferenceData>(
    configuration: .init(name: "reference", defaultTTL: .seconds(15 * 60), defaultStaleFor: .seconds(3600),
                         codec: ZstdCodec.zstd, logger: logger),
    chain: TierChain(tiers, configuration: .init(logger: logger)))

let refresher = RefreshService(
    cache: cache, key: try CacheKey(namespace: "example-server", name: "reference-data", schemaVersion: 1),
    interval: .seconds(60), logger: logger)

let group = ServiceGroup(
    services: [refresher, DiskSweepService(disk: disk)],
    gracefulShutdownSignals: [.sigterm, .sigint],
    logger: logger)
try await group.run()
http.shutdown()
