import Logging
import ServiceLifecycle
import TierCache
import TierCacheDisk

/// The state the service needs and builds slowly: what a cold start would otherwise pay for.
struct ReferenceData: Codable, Sendable {
    var version: Int
    var regions: [String: [String]]
}

/// Keeps the hot key fresh: reads memory, then the disk tier, then S3, and runs the loader only
/// when every tier misses. Loops until a graceful shutdown (SIGTERM / SIGINT), then flushes the
/// write-behind queue so nothing the loader built is lost.
struct RefreshService: Service {
    let cache: Cache<ReferenceData>
    let key: CacheKey
    let interval: Duration
    let logger: Logger

    func run() async throws {
        // On SIGTERM / SIGINT the loop is cancelled (its sleep throws CancellationError): that is
        // the normal way out, and the flush below still runs.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let result = try await cache.getOrLoad(key) { try await buildReferenceData() }
                    logger.info("reference data ready", metadata: [
                        "source": "\(result.source)", "stale": "\(result.isStale)",
                        "regions": "\(result.value.regions.count)",
                    ])
                } catch {
                    // The loader failed and no stale entry exists: try again next round.
                    logger.error("reference data unavailable", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: interval)
            }
        }
        let flushed = await cache.flush(deadline: .seconds(5))
        logger.info("flushed", metadata: ["completed": "\(flushed.completed)", "pending": "\(flushed.pending)"])
    }

    private func buildReferenceData() async throws -> ReferenceData {
        try await Task.sleep(for: .milliseconds(300))  // stands in for seconds of parsing and deriving
        return ReferenceData(version: 1, regions: ["aws": ["us-east-1", "eu-west-1"], "aws-cn": ["cn-north-1"]])
    }
}

/// Removes expired and corrupt files from the disk tier every minute.
struct DiskSweepService: Service {
    let disk: DiskTier

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await disk.runSweeper(every: .seconds(60))
        }
    }
}
