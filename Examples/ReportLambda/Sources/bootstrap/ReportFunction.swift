// The report function of the case study: its INIT parses large reference data (endpoints.json)
// into a Codable model, derives indexes and renders templates. That derived state, not the raw
// input, is what the cache stores, so a hydrated cold start skips all of the work.
//
// This file is shared, unchanged, by Examples/ReportLambda (the `bootstrap` executable) and by
// the root package's `tiercache-demo` (which runs it as a child process per environment).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TierCache
import TierCacheDisk
import TierCacheLambda
import TierCacheS3
import TierCacheZstd

// MARK: The input model

struct EndpointsFile: Decodable {
    struct Partition: Decodable {
        var partition: String
        var partitionName: String
        var dnsSuffix: String
        var regions: [String: Region]
        var services: [String: Service]
    }
    struct Region: Decodable {
        var description: String?
    }
    struct Service: Decodable {
        var endpoints: [String: Endpoint]
        var isRegionalized: Bool?
        var partitionEndpoint: String?
    }
    struct Endpoint: Decodable {
        var hostname: String?
        var deprecated: Bool?
        var variants: [Variant]?
    }
    struct Variant: Decodable {
        var hostname: String?
        var tags: [String]
    }
    var partitions: [Partition]
    var version: Int
}

// MARK: The derived state (what is cached)

struct ReportState: Codable, Sendable {
    struct RegionSummary: Codable, Sendable {
        var region: String
        var description: String
        var partition: String
        var services: Int
        var fipsEndpoints: Int
        var dualStackEndpoints: Int
    }
    struct ServiceSummary: Codable, Sendable {
        var service: String
        var regions: Int
        var global: Bool
    }
    var version: Int
    var regions: [RegionSummary]
    var services: [ServiceSummary]
    /// Region -> services offered there (sorted), the index the report queries.
    var servicesByRegion: [String: [String]]
    /// Region -> the rendered report page (a Markdown table of every endpoint).
    var pages: [String: String]
}

enum ReportBuilder {
    /// The full initialization: read, parse, derive, render. Real work, no sleeps.
    static func build(dataPath: String) throws -> ReportState {
        let bytes = try readFile(dataPath)
        let file = try JSONDecoder().decode(EndpointsFile.self, from: Data(bytes))
        var regions: [ReportState.RegionSummary] = []
        var servicesByRegion: [String: [String]] = [:]
        var hostsByRegion: [String: [(service: String, host: String, fips: Bool, dualStack: Bool)]] = [:]
        var services: [ReportState.ServiceSummary] = []
        for partition in file.partitions {
            for (name, service) in partition.services {
                var count = 0
                for (region, endpoint) in service.endpoints {
                    count += 1
                    let host = endpoint.hostname
                        ?? "\(name).\(region).\(partition.dnsSuffix)"
                    let tags = (endpoint.variants ?? []).flatMap(\.tags)
                    servicesByRegion[region, default: []].append(name)
                    hostsByRegion[region, default: []].append((name, host, tags.contains("fips"), tags.contains("dualstack")))
                }
                services.append(.init(service: name, regions: count, global: service.isRegionalized == false))
            }
            for (region, info) in partition.regions {
                let hosts = hostsByRegion[region] ?? []
                regions.append(.init(region: region, description: info.description ?? region, partition: partition.partition,
                                     services: hosts.count, fipsEndpoints: hosts.filter(\.fips).count,
                                     dualStackEndpoints: hosts.filter(\.dualStack).count))
            }
        }
        for key in servicesByRegion.keys { servicesByRegion[key]?.sort() }
        regions.sort { $0.region < $1.region }
        services.sort { $0.service < $1.service }
        var pages: [String: String] = [:]
        for summary in regions {
            let rows = (hostsByRegion[summary.region] ?? []).sorted { $0.service < $1.service }
            pages[summary.region] = render(summary, rows: rows)
        }
        return ReportState(version: file.version, regions: regions, services: services,
                           servicesByRegion: servicesByRegion, pages: pages)
    }

    /// The page template: a header, a summary line, and one table row per endpoint.
    static func render(_ region: ReportState.RegionSummary,
                       rows: [(service: String, host: String, fips: Bool, dualStack: Bool)]) -> String {
        var page = "# \(region.description) (\(region.region), \(region.partition))\n\n"
        page += "\(region.services) endpoints, \(region.fipsEndpoints) with FIPS, \(region.dualStackEndpoints) dual-stack.\n\n"
        page += "| service | endpoint | FIPS | dual-stack |\n|---|---|---|---|\n"
        for row in rows {
            page += "| \(row.service) | https://\(row.host) | \(row.fips ? "yes" : "no") | \(row.dualStack ? "yes" : "no") |\n"
        }
        return page
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw TierCacheError(.storage, "cannot open \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while case let n = fread(&chunk, 1, chunk.count, file), n > 0 { bytes += chunk[0..<n] }
        return bytes
    }
}

// MARK: The function

/// The answer to any JSON event.
struct ReportAnswer: Encodable {
    var `init`: String
    var regions: Int
    var services: Int
    var region: String
    var regionServices: Int
    var pageBytes: Int
}

/// Any JSON value (the handler accepts every JSON event, `{}` included).
struct AnyJSON: Decodable {
    var region: String?
    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: Key.self) {
            region = try? object.decode(String.self, forKey: Key(stringValue: "region")!)
        } else {
            _ = try decoder.singleValueContainer()
            region = nil
        }
    }
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

enum ReportFunction {
    static func variable(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let string = String(cString: value)
        return string.isEmpty ? nil : string
    }

    /// Runs the function: cache settings from the environment (see the example's README).
    static func main(processStart: ContinuousClock.Instant) async -> Never {
        var logger = Logger(label: "report", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .warning
        let environment: LambdaEnvironment
        do {
            environment = try LambdaEnvironment.fromProcess()
        } catch {
            logger.critical("\(error)")
            exit(1)
        }
        var configuration = LambdaRuntime.Configuration(processStart: processStart)
        if let ms = variable("TIERCACHE_HYDRATION_DEADLINE_MS").flatMap(Int.init) {
            configuration.hydrationDeadline = .milliseconds(ms)
        }
        if let count = variable("TIERCACHE_MAX_INVOCATIONS").flatMap(Int.init) { configuration.maxInvocations = count }
        let runtime = LambdaRuntime(environment: environment, configuration: configuration, logger: logger)
        let dataPath = variable("REPORT_DATA") ?? "endpoints.json"

        var tiers: [TierChain.Tier] = []
        if variable("TIERCACHE_DISABLED") == nil {
            if let dir = variable("TIERCACHE_DISK_DIR") {
                tiers.append(.local(DiskTier(configuration: .init(name: "disk", root: dir), logger: logger, metricsFactory: runtime.metrics)))
            }
            if let dir = variable("TIERCACHE_BUCKET_DIR") {
                // A local folder standing in for the bucket (the demo's default).
                tiers.append(.remote(DiskTier(configuration: .init(name: "bucket", root: dir, touchGranularity: .seconds(3600)),
                                              logger: logger, metricsFactory: runtime.metrics)))
            } else if let bucket = variable("TIERCACHE_BUCKET") {
                do {
                    let client = try S3Client(configuration: .init(
                        region: AWSRegion(rawValue: environment.region ?? "us-east-1"),
                        endpoint: variable("AWS_ENDPOINT_URL_S3"),
                        credentials: .environment), logger: logger, metricsFactory: runtime.metrics)
                    tiers.append(.remote(S3Tier(client: client, configuration: .init(bucket: bucket, prefix: variable("TIERCACHE_PREFIX") ?? "tiercache"),
                                                logger: logger, metricsFactory: runtime.metrics)))
                } catch {
                    logger.error("S3 tier not configured; running without it", metadata: ["error": "\(error)"])
                }
            }
        }
        let chain = TierChain(tiers, configuration: .init(metricsLabel: "report", logger: logger, metricsFactory: runtime.metrics))
        let cache = Cache<ReportState>(
            configuration: .init(name: "report", serializer: BinarySerializer(), codec: ZstdCodec.zstd, logger: logger,
                                 metricsFactory: runtime.metrics),
            chain: chain)
        var warm = WarmSet()
        let key: CacheKey
        do {
            key = try environment.cacheKey("report-state", schemaVersion: 1)
        } catch {
            logger.critical("\(error)")
            exit(1)
        }
        let state = warm.add(key, in: cache) { try ReportBuilder.build(dataPath: dataPath) }
        let result = await runtime.run(warmSet: warm) {
            .codable(AnyJSON.self) { event, _ in
                let report = try await state.get()
                let how = state.initResult?.source == .loader ? "built" : "hydrated"
                let region = event.region ?? "us-east-1"
                return ReportAnswer(init: how, regions: report.regions.count, services: report.services.count, region: region,
                                    regionServices: report.servicesByRegion[region]?.count ?? 0,
                                    pageBytes: report.pages[region]?.utf8.count ?? 0)
            }
        }
        LambdaRuntime.exit(result)
    }
}
