import CoreMetrics
import Metrics

/// The names and dimensions of the metrics TierCache emits through swift-metrics.
///
/// Every counter carries a `tier` dimension (`memory`, a byte tier's name, or `loader`) and, where
/// it applies, `op` (`get`, `put`, `remove`) and `result`. Bootstrap a metrics backend (Prometheus,
/// OpenTelemetry, CloudWatch EMF through TierCacheLambda) to collect them.
public enum TierCacheMetrics {
    /// Counter: operations on a tier. Dimensions `cache`, `tier`, `op`, `result` where result is
    /// `hit`, `stale`, `miss`, `error`, `timeout`, `corrupt` (get) or `ok`, `error`, `timeout` (put, remove).
    public static let tierRequests = "tiercache_tier_requests_total"
    /// Timer: how long a tier operation took. Dimensions `cache`, `tier`, `op`.
    public static let tierDuration = "tiercache_tier_duration_seconds"
    /// Counter: envelope bytes read from (`op=get`) or written to (`op=put`) a tier.
    public static let tierBytes = "tiercache_tier_bytes_total"
    /// Counter: entries copied into an upper tier after a hit below it. Dimension `tier` is the
    /// tier written to.
    public static let promotions = "tiercache_promotions_total"
    /// Counter: results of typed cache reads. Dimensions `cache`, `source` (`memory`, `tier`,
    /// `loader`), `result` (`fresh`, `stale`).
    public static let cacheResults = "tiercache_results_total"
    /// Counter: loader runs. Dimensions `cache`, `result` (`ok`, `error`).
    public static let loads = "tiercache_loads_total"
    /// Timer: loader duration. Dimension `cache`.
    public static let loadDuration = "tiercache_load_duration_seconds"
    /// Counter: stale values served because the loader failed. Dimension `cache`.
    public static let staleServes = "tiercache_stale_serves_total"
    /// Counter: entries a tier returned that could not be decoded into a value (unknown codec,
    /// missing dictionary, serializer failure). Dimensions `cache`, `tier`.
    public static let decodeFailures = "tiercache_decode_failures_total"
    /// Counter: memory-tier evictions. Dimension `cache`.
    public static let evictions = "tiercache_evictions_total"
    /// Gauge: write-behind operations not yet finished. Dimension `cache`.
    public static let pendingWrites = "tiercache_pending_writes"
}

/// Pre-created metric handles for one tier, so the hot path never looks a metric up by name.
struct TierMetrics: Sendable {
    let getHit, getStale, getMiss, getError, getTimeout, getCorrupt: Counter
    let putOK, putError, putTimeout, removeOK, removeError: Counter
    let getDuration, putDuration: Timer
    let bytesRead, bytesWritten: Counter
    let promotions: Counter

    init(cache: String, tier: String, factory: any MetricsFactory) {
        func requests(_ op: String, _ result: String) -> Counter {
            Counter(label: TierCacheMetrics.tierRequests,
                    dimensions: [("cache", cache), ("tier", tier), ("op", op), ("result", result)], factory: factory)
        }
        getHit = requests("get", "hit")
        getStale = requests("get", "stale")
        getMiss = requests("get", "miss")
        getError = requests("get", "error")
        getTimeout = requests("get", "timeout")
        getCorrupt = requests("get", "corrupt")
        putOK = requests("put", "ok")
        putError = requests("put", "error")
        putTimeout = requests("put", "timeout")
        removeOK = requests("remove", "ok")
        removeError = requests("remove", "error")
        getDuration = Timer(label: TierCacheMetrics.tierDuration, dimensions: [("cache", cache), ("tier", tier), ("op", "get")], factory: factory)
        putDuration = Timer(label: TierCacheMetrics.tierDuration, dimensions: [("cache", cache), ("tier", tier), ("op", "put")], factory: factory)
        bytesRead = Counter(label: TierCacheMetrics.tierBytes, dimensions: [("cache", cache), ("tier", tier), ("op", "get")], factory: factory)
        bytesWritten = Counter(label: TierCacheMetrics.tierBytes, dimensions: [("cache", cache), ("tier", tier), ("op", "put")], factory: factory)
        promotions = Counter(label: TierCacheMetrics.promotions, dimensions: [("cache", cache), ("tier", tier)], factory: factory)
    }
}

