import Testing
import TierCache
import TierCacheLambda
import TierCacheTesting

extension LambdaTests {
@Suite("CloudWatch Embedded Metric Format")
struct EMFTests {
    static let units: Set<String> = ["Count", "Milliseconds", "Bytes", "None", "Seconds", "Microseconds"]

    /// Checks one line against the EMF specification and returns the root object.
    static func validate(_ line: String, functionName: String) throws -> [String: JSON] {
        let root = try #require(try JSON.parse(line).object)
        let aws = try #require(root["_aws"]?.object)
        let timestamp = try #require(aws["Timestamp"]?.number)
        let now = Double(SystemCacheClock().now().millisecondsSince1970)
        #expect(abs(timestamp - now) < 60_000, "Timestamp is epoch milliseconds")
        let directives = try #require(aws["CloudWatchMetrics"]?.array)
        try #require(directives.count == 1)
        let directive = try #require(directives[0].object)
        #expect(directive["Namespace"]?.string == "TierCache")
        let dimensionSets = try #require(directive["Dimensions"]?.array)
        #expect(dimensionSets == [.array([.string("FunctionName")])])
        #expect(root["FunctionName"]?.string == functionName, "dimension values are at the root")
        let metrics = try #require(directive["Metrics"]?.array)
        #expect(!metrics.isEmpty)
        for metric in metrics {
            let name = try #require(metric["Name"]?.string)
            let unit = try #require(metric["Unit"]?.string)
            #expect(units.contains(unit), "\(name) has unit \(unit)")
            #expect(root[name]?.number != nil, "\(name) has a numeric value at the root")
        }
        return root
    }

    @Test("one valid line per invocation: cold vs warm, init and hydration, per-tier counts, S3 cost")
    func lines() async throws {
        let bucket = DictionaryTier(name: "s3")
        let loads = Counter()
        // Environment 1 misses and builds.
        let first = try HydrationTests.environment(bucket: bucket, loads: loads, configuration: .init(registerShutdownExtension: false, maxInvocations: 1))
        let run1 = Task { await first.h.runtime.run(warmSet: first.warm) { .raw { _, _ in [] } } }
        first.h.emulator.enqueue(json: "{}")
        _ = await run1.value
        first.h.emulator.stop()
        let miss = try Self.validate(try #require(first.h.lines.lines.first), functionName: "test-fn")
        #expect(miss["s3.Misses"]?.number == 2)
        #expect(miss["s3.Hits"] == nil)
        #expect(miss["BuiltValues"]?.number == 2)
        // Two GETs (misses) and two PUTs.
        let missCost = try #require(miss["EstimatedS3CostUSD"]?.number)
        #expect(abs(missCost - (2 * 0.0004 + 2 * 0.005) / 1000) < 1e-12)

        // Environment 2 hydrates, then serves a warm invocation from memory.
        let second = try HydrationTests.environment(bucket: bucket, loads: loads, configuration: .init(registerShutdownExtension: false, maxInvocations: 2))
        let model = second.model
        let run2 = Task { await second.h.runtime.run(warmSet: second.warm) { .raw { _, _ in _ = try await model.get(); return [] } } }
        second.h.emulator.enqueue(json: "{}")
        second.h.emulator.enqueue(json: "{}")
        _ = await run2.value
        second.h.emulator.stop()
        let lines = second.h.lines.lines
        try #require(lines.count == 2)
        let cold = try Self.validate(lines[0], functionName: "test-fn")
        let warm = try Self.validate(lines[1], functionName: "test-fn")
        #expect(cold["ColdStart"]?.number == 1)
        #expect(cold["WarmStart"]?.number == 0)
        #expect(warm["ColdStart"]?.number == 0)
        #expect(warm["WarmStart"]?.number == 1)
        let initMs = try #require(cold["InitDuration"]?.number)
        let hydrationMs = try #require(cold["HydrationDuration"]?.number)
        #expect(hydrationMs > 0 && hydrationMs <= initMs)
        #expect(warm["InitDuration"] == nil, "INIT is reported once")
        #expect(cold["s3.Hits"]?.number == 2)
        #expect(cold["HydratedValues"]?.number == 2)
        let stored = try [bucket.rawBytes(for: second.model.key), bucket.rawBytes(for: second.names.key)].map {
            try CacheEntry(decoding: try #require($0)).payload.count
        }
        #expect(cold["s3.BytesRead"]?.number == Double(stored.reduce(0, +)))
        let hitCost = try #require(cold["EstimatedS3CostUSD"]?.number)
        #expect(abs(hitCost - 2 * 0.0004 / 1000) < 1e-12)
        #expect(cold["memory.Hits"]?.number == 1)
        #expect(warm["memory.Hits"]?.number == 1)
        #expect(warm["s3.Hits"] == nil, "the warm invocation never reached S3")
        #expect(warm["EstimatedS3CostUSD"] == nil)
    }

    @Test("the factory serves swift-metrics users outside Lambda too")
    func asMetricsFactory() throws {
        let capture = LineCapture()
        let factory = EMFMetricsFactory(configuration: .init(namespace: "TierCache", dimensions: [("FunctionName", "svc")], output: capture.output))
        let tier = DictionaryTier(name: "disk")
        let chain = TierChain([.local(tier)], configuration: .init(metricsFactory: factory))
        _ = chain  // handles are created eagerly
        let pending = factory.pending()
        #expect(pending.isEmpty)
        let line = factory.emit([.init("Custom \"quoted\"", 2.5, unit: "None")])
        let root = try Self.validate(line, functionName: "svc")
        #expect(root["Custom \"quoted\""]?.number == 2.5)
        #expect(capture.lines == [line])
    }
}
}
