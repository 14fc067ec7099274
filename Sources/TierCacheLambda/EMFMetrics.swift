#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import CoreMetrics
public import TierCache

/// A swift-metrics backend that aggregates and writes CloudWatch Embedded Metric Format lines.
///
/// Pass it to caches and chains (`metricsFactory:`) or bootstrap it (`MetricsSystem.bootstrap`).
/// It sums every counter and timer it is given; ``emit(_:)`` then writes one JSON line with what
/// changed since the previous emit, per the EMF specification:
///
/// ```json
/// {"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"TierCache",
///   "Dimensions":[["FunctionName"]],"Metrics":[{"Name":"s3.Hits","Unit":"Count"}, ...]}]},
///  "FunctionName":"report","s3.Hits":1, ...}
/// ```
///
/// From the core's metrics (``TierCacheMetrics``) it derives, per tier: `<tier>.Hits`,
/// `<tier>.Misses`, `<tier>.StaleServes`, `<tier>.Errors` (errors, timeouts, corrupt entries on
/// reads and writes), `<tier>.BytesRead` (Bytes), plus `memory.Hits`, `memory.StaleServes`,
/// `Loads`, `LoaderStaleServes`, `Refreshes`, `RefreshFailures` and `EstimatedS3CostUSD`
/// (requests to the tier named ``Configuration/s3TierName`` at the configured prices). The
/// ``LambdaRuntime`` adds `ColdStart`, `WarmStart`, `InitDuration`, `HydrationDuration`,
/// `FlushDuration` and `AbandonedWrites` per invocation, and `FlushedRefreshes` and
/// `AbandonedRefreshes` when a flush awaited refreshes.
public final class EMFMetricsFactory: MetricsFactory, Sendable {
    /// Settings; every property has a default.
    public struct Configuration: Sendable {
        /// The CloudWatch namespace.
        public var namespace: String
        /// Dimensions written on every line (name, value), e.g. `FunctionName`.
        public var dimensions: [(String, String)]
        /// The tier whose requests are priced as S3 requests.
        public var s3TierName: String
        /// USD per 1,000 GET requests (S3 Standard, us-east-1: 0.0004).
        public var s3GetPricePerThousand: Double
        /// USD per 1,000 PUT requests (S3 Standard, us-east-1: 0.005).
        public var s3PutPricePerThousand: Double
        /// Where lines go; stdout (flushed per line) by default.
        public var output: @Sendable (String) -> Void

        /// Creates a configuration.
        public init(
            namespace: String = "TierCache", dimensions: [(String, String)] = [], s3TierName: String = "s3",
            s3GetPricePerThousand: Double = 0.0004, s3PutPricePerThousand: Double = 0.005,
            output: @escaping @Sendable (String) -> Void = EMFMetricsFactory.writeToStandardOutput
        ) {
            self.namespace = namespace
            self.dimensions = dimensions
            self.s3TierName = s3TierName
            self.s3GetPricePerThousand = s3GetPricePerThousand
            self.s3PutPricePerThousand = s3PutPricePerThousand
            self.output = output
        }
    }

    /// A metric of one EMF line.
    public struct Metric: Sendable, Hashable {
        /// The metric name.
        public var name: String
        /// The value.
        public var value: Double
        /// A CloudWatch unit (`Count`, `Milliseconds`, `Bytes`, `None`, …).
        public var unit: String

        /// Creates a metric.
        public init(_ name: String, _ value: Double, unit: String) {
            self.name = name
            self.value = value
            self.unit = unit
        }
    }

    struct Key: Hashable {
        var label: String
        var dimensions: [String: String]
    }

    private struct State {
        var counters: [Key: Int64] = [:]
        var emitted: [Key: Int64] = [:]
        var timers: [Key: Int64] = [:]
        var recorders: [Key: Double] = [:]
    }

    /// The configuration in use.
    public let configuration: Configuration
    private let state = LockedValueBox(State())

    /// Creates a factory.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    /// Writes a line to stdout and flushes.
    public static let writeToStandardOutput: @Sendable (String) -> Void = { line in
        fflush(nil)  // anything print() buffered goes first
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if written <= 0 { if errno == EINTR { continue } else { return } }
            offset += written
        }
    }

    // MARK: MetricsFactory

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(factory: self, key: Key(label: label, dimensions: Dictionary(dimensions, uniquingKeysWith: { $1 })))
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(factory: self, key: Key(label: label, dimensions: Dictionary(dimensions, uniquingKeysWith: { $1 })))
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(factory: self, key: Key(label: label, dimensions: Dictionary(dimensions, uniquingKeysWith: { $1 })))
    }

    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}

    private final class Handler: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        let factory: EMFMetricsFactory
        let key: Key
        init(factory: EMFMetricsFactory, key: Key) {
            self.factory = factory
            self.key = key
        }
        func increment(by amount: Int64) { factory.state.withLock { $0.counters[key, default: 0] += amount } }
        func reset() { factory.state.withLock { $0.counters[key] = 0 } }
        func record(_ value: Int64) { record(Double(value)) }
        func record(_ value: Double) { factory.state.withLock { $0.recorders[key] = value } }
        func recordNanoseconds(_ duration: Int64) { factory.state.withLock { $0.timers[key, default: 0] += duration } }
    }

    // MARK: EMF

    /// The metrics derived from what changed since the last ``emit(_:)``, without emitting.
    public func pending() -> [Metric] {
        let deltas: [Key: Int64] = state.withLock { state in
            var out: [Key: Int64] = [:]
            for (key, value) in state.counters {
                let delta = value - state.emitted[key, default: 0]
                if delta != 0 { out[key] = delta }
            }
            return out
        }
        return derive(deltas)
    }

    /// Writes one EMF line with the cache metrics accumulated since the last emit plus `extra`,
    /// and starts a new period. Returns the line.
    @discardableResult
    public func emit(_ extra: [Metric] = [], timestamp: WallTime? = nil) -> String {
        let deltas: [Key: Int64] = state.withLock { state in
            var out: [Key: Int64] = [:]
            for (key, value) in state.counters {
                let delta = value - state.emitted[key, default: 0]
                if delta != 0 { out[key] = delta }
                state.emitted[key] = value
            }
            return out
        }
        let line = Self.render(derive(deltas) + extra, namespace: configuration.namespace,
                               dimensions: configuration.dimensions, timestamp: timestamp ?? SystemCacheClock().now())
        configuration.output(line)
        return line
    }

    private func derive(_ deltas: [Key: Int64]) -> [Metric] {
        var values: [String: (Double, String)] = [:]
        func add(_ name: String, _ value: Int64, _ unit: String) {
            values[name, default: (0, unit)].0 += Double(value)
        }
        var s3Gets: Int64 = 0
        var s3Puts: Int64 = 0
        for (key, delta) in deltas {
            let tier = key.dimensions["tier"] ?? ""
            let op = key.dimensions["op"] ?? ""
            let result = key.dimensions["result"] ?? ""
            switch key.label {
            case TierCacheMetrics.tierRequests:
                if tier == configuration.s3TierName {
                    if op == "get" { s3Gets += delta } else if op == "put" { s3Puts += delta }
                }
                switch (op, result) {
                case ("get", "hit"): add("\(tier).Hits", delta, "Count")
                case ("get", "miss"): add("\(tier).Misses", delta, "Count")
                case ("get", "stale"): add("\(tier).StaleServes", delta, "Count")
                case (_, "error"), (_, "timeout"), (_, "corrupt"): add("\(tier).Errors", delta, "Count")
                default: break
                }
            case TierCacheMetrics.tierBytes where op == "get":
                add("\(tier).BytesRead", delta, "Bytes")
            case TierCacheMetrics.cacheResults where key.dimensions["source"] == "memory":
                add(result == "stale" ? "memory.StaleServes" : "memory.Hits", delta, "Count")
            case TierCacheMetrics.loads where result == "ok":
                add("Loads", delta, "Count")
            case TierCacheMetrics.staleServes:
                add("LoaderStaleServes", delta, "Count")
            case TierCacheMetrics.refreshes:
                add(result == "ok" ? "Refreshes" : "RefreshFailures", delta, "Count")
            default:
                break
            }
        }
        var metrics = values.map { Metric($0.key, $0.value.0, unit: $0.value.1) }.sorted { $0.name < $1.name }
        if s3Gets + s3Puts > 0 {
            let cost = Double(s3Gets) * configuration.s3GetPricePerThousand / 1000 + Double(s3Puts) * configuration.s3PutPricePerThousand / 1000
            metrics.append(Metric("EstimatedS3CostUSD", cost, unit: "None"))
        }
        return metrics
    }

    /// Renders one EMF document: metadata under `_aws`, dimension and metric values at the root.
    static func render(_ metrics: [Metric], namespace: String, dimensions: [(String, String)], timestamp: WallTime) -> String {
        var seen = Set<String>()
        let unique = metrics.filter { metric in seen.insert(metric.name).inserted && !dimensions.contains(where: { $0.0 == metric.name }) }
        var out = "{\"_aws\":{\"Timestamp\":\(timestamp.millisecondsSince1970),\"CloudWatchMetrics\":[{\"Namespace\":"
        out += JSONText.quoted(namespace)
        out += ",\"Dimensions\":[[" + dimensions.map { JSONText.quoted($0.0) }.joined(separator: ",") + "]]"
        out += ",\"Metrics\":[" + unique.map { "{\"Name\":\(JSONText.quoted($0.name)),\"Unit\":\(JSONText.quoted($0.unit))}" }.joined(separator: ",") + "]}]}"
        for (name, value) in dimensions { out += ",\(JSONText.quoted(name)):\(JSONText.quoted(value))" }
        for metric in unique { out += ",\(JSONText.quoted(metric.name)):\(JSONText.number(metric.value))" }
        return out + "}"
    }
}
