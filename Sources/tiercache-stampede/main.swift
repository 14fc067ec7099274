// One environment of a cold-start burst: an empty memory tier over an S3 tier, one key, a loader
// that takes --build-ms, with or without the S3 lease (distributed single-flight). scripts/stampede.sh
// starts many at once and sums what they print; TierCacheStampedeTests spawns it too.
//
//   tiercache-stampede --bucket B [--key init] [--build-ms 1500] [--protect] [--lease-ms 30000]
//                      [--wait-ms 10000] [--request-timeout-ms 2000] [--start-at <ms since 1970>]
//                      [--size 65536]
//   tiercache-stampede --bucket B --create-bucket      (creates the bucket and exits)
//
// S3 comes from TIERCACHE_TEST_S3_ENDPOINT / TIERCACHE_TEST_ACCESS_KEY_ID /
// TIERCACHE_TEST_SECRET_ACCESS_KEY (scripts/start-moto.sh sets them). --start-at is a barrier:
// every process waits for that wall time, so that process start-up is not part of the race, and
// the cold start is timed from it. The loader first writes a marker object `markers/<pid>` (so a
// parent can count loader runs, even of a process it kills), then sleeps --build-ms.
// Output: one JSON line, e.g.
//   {"pid":123,"source":"loader","ms":1534,"loaderRuns":1,"entryPuts":1,"leasePuts":1,"s3Requests":5}
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MetricsTestKit
import TierCache
import TierCacheS3

struct Options {
    var bucket = ""
    var key = "init"
    var buildMs = 1500
    var protect = false
    var leaseMs = 30_000
    var waitMs = 10_000
    var requestTimeoutMs = 2000
    var startAt: Int64?
    var size = 65_536
    var createBucket = false

    init(_ arguments: [String]) {
        var i = 1
        func next() -> String {
            i += 1
            guard i < arguments.count else { fail("missing value after \(arguments[i - 1])") }
            return arguments[i]
        }
        func number(_ text: String) -> Int {
            guard let value = Int(text) else { fail("not a number: \(text)") }
            return value
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--bucket": bucket = next()
            case "--key": key = next()
            case "--build-ms": buildMs = number(next())
            case "--protect": protect = true
            case "--lease-ms": leaseMs = number(next())
            case "--wait-ms": waitMs = number(next())
            case "--request-timeout-ms": requestTimeoutMs = number(next())
            case "--start-at": startAt = Int64(number(next()))
            case "--size": size = number(next())
            case "--create-bucket": createBucket = true
            default: fail("unknown argument \(arguments[i])")
            }
            i += 1
        }
        if bucket.isEmpty { fail("--bucket is required") }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("tiercache-stampede: \(message)\n".utf8))
    exit(2)
}

func total(_ metrics: TestMetrics, _ label: String, _ dimensions: [(String, String)]) -> Int64 {
    metrics.counters(label: label, dimensions: dimensions).reduce(0) { $0 + $1.totalValue }
}

let options = Options(CommandLine.arguments)
let environment = ProcessInfo.processInfo.environment
guard let endpoint = environment["TIERCACHE_TEST_S3_ENDPOINT"], let accessKey = environment["TIERCACHE_TEST_ACCESS_KEY_ID"],
      let secret = environment["TIERCACHE_TEST_SECRET_ACCESS_KEY"]
else { fail("TIERCACHE_TEST_S3_ENDPOINT / TIERCACHE_TEST_ACCESS_KEY_ID / TIERCACHE_TEST_SECRET_ACCESS_KEY are not set") }

// TIERCACHE_STAMPEDE_LOG=debug (or notice, ...) sends the cache's and the coordinator's log lines
// to stderr.
var logger = Logger(label: "stampede", factory: { StreamLogHandler.standardError(label: $0) })
logger.logLevel = environment["TIERCACHE_STAMPEDE_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
logger[metadataKey: "pid"] = "\(getpid())"
let metrics = TestMetrics()
let client = try S3Client(configuration: .init(region: .usEast1, endpoint: endpoint,
                                               credentials: .static(AWSCredentials(accessKeyID: accessKey, secretAccessKey: secret))),
                          metricsFactory: metrics)
if options.createBucket {
    try await client.createBucket(options.bucket)
    exit(0)
}
let tier = S3Tier(client: client, configuration: .init(bucket: options.bucket, prefix: "cache", readTimeout: .seconds(10),
                                                        writeTimeout: .seconds(10)))
let pid = getpid()
let coordinator = S3LeaseCoordinator(tier: tier, configuration: .init(
    leaseDuration: .milliseconds(options.leaseMs), waitDeadline: .milliseconds(options.waitMs),
    requestTimeout: .milliseconds(options.requestTimeoutMs), holderID: "pid-\(pid)"), logger: logger)
let cache = Cache<[String]>(
    configuration: .init(name: "stampede", logger: logger, metricsFactory: metrics, coordination: options.protect ? .lease(coordinator) : .off),
    chain: TierChain([.remote(tier, readDeadline: .seconds(10))], configuration: .init(metricsLabel: "stampede", logger: logger, metricsFactory: metrics)))
let key = try CacheKey(namespace: "stampede", name: options.key)

if let startAt = options.startAt {
    let wait = startAt - SystemCacheClock().now().millisecondsSince1970
    if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) }
}
let started = ContinuousClock.now
let loaderRuns = LockedValueBox(0)
let result = try await cache.getOrLoad(key) {
    loaderRuns.withLock { $0 += 1 }
    try await client.putObject(bucket: options.bucket, key: "markers/\(pid)", body: [1])
    try await Task.sleep(for: .milliseconds(options.buildMs))
    let item = String(repeating: "x", count: 1024)
    return Array(repeating: item, count: max(1, options.size / 1024))
}
let elapsed = ContinuousClock.now - started
await cache.flush(deadline: .seconds(10))

let runs = loaderRuns.withLock { $0 }
let puts = total(metrics, "tiercache_s3_requests_total", [("op", "put"), ("result", "ok")])
    + total(metrics, "tiercache_s3_requests_total", [("op", "put"), ("result", "4xx")])
let entryPuts = total(metrics, TierCacheMetrics.tierRequests, [("cache", "stampede"), ("tier", "s3"), ("op", "put"), ("result", "ok")])
let requests = metrics.counters(label: "tiercache_s3_requests_total").reduce(0) { $0 + $1.totalValue }
// What the coordinator answered (lead, appeared, deadline, error, ...), empty without protection.
let coordination = metrics.counters(label: TierCacheMetrics.coordinations).filter { $0.totalValue > 0 }
    .compactMap { counter in counter.dimensions.first { $0.0 == "result" }?.1 }.sorted().joined(separator: ",")
let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
print("{\"pid\":\(pid),\"source\":\"\(result.source)\",\"ms\":\(Int(ms.rounded())),\"loaderRuns\":\(runs),"
    + "\"entryPuts\":\(entryPuts),\"leasePuts\":\(puts - entryPuts - Int64(runs)),\"s3Requests\":\(requests),"
    + "\"coordination\":\"\(coordination)\",\"valid\":\(result.value.count == max(1, options.size / 1024))}")
