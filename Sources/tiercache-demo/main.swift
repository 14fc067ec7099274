// The core on its own: two "environments" share a byte tier standing in for the bucket. The
// first builds the derived state from endpoints.json (the full initialization) and stores it;
// the second hydrates it. Run with `./scripts/demo.sh`.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import TierCache

struct Endpoints: Decodable {
    struct Partition: Decodable {
        struct Service: Decodable {
            var endpoints: [String: Endpoint]
        }
        struct Endpoint: Decodable {
            var hostname: String?
        }
        var partition: String
        var dnsSuffix: String
        var services: [String: Service]
    }
    var partitions: [Partition]
}

/// The derived state worth caching: for every region, the services it offers and their hosts.
struct ServiceIndex: Codable, Sendable {
    var hostsByRegion: [String: [String: String]]
}

func buildIndex(from path: String) throws -> ServiceIndex {
    guard let file = fopen(path, "rb") else { throw TierCacheError(.storage, "cannot open \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while case let n = fread(&chunk, 1, chunk.count, file), n > 0 { bytes += chunk[0..<n] }
    let model = try JSONDecoder().decode(Endpoints.self, from: Data(bytes))
    var index: [String: [String: String]] = [:]
    for partition in model.partitions {
        for (service, info) in partition.services {
            for (region, endpoint) in info.endpoints {
                index[region, default: [:]][service] = endpoint.hostname ?? "\(service).\(region).\(partition.dnsSuffix)"
            }
        }
    }
    return ServiceIndex(hostsByRegion: index)
}

/// A byte tier held in this process, standing in for S3 in this demo.
actor SharedTier: CacheTier {
    nonisolated let name = "shared"
    private var objects: [String: [UInt8]] = [:]
    var bytesStored: Int { objects.values.reduce(0) { $0 + $1.count } }
    func get(_ key: CacheKey) async throws -> CacheEntry? { try objects[key.fingerprint].map { try CacheEntry(decoding: $0) } }
    func put(_ entry: CacheEntry) async throws { objects[entry.key.fingerprint] = entry.encoded() }
    func remove(_ key: CacheKey) async throws { objects[key.fingerprint] = nil }
}

let corpus = CommandLine.arguments.dropFirst().first ?? "bench-data/endpoints.json"
let shared = SharedTier()
let key = try CacheKey(namespace: "demo", name: "service-index", schemaVersion: 1)

for environment in 1...3 {
    let cache = Cache<ServiceIndex>(configuration: .init(serializer: .json), chain: TierChain([.remote(shared)]))
    let start = ContinuousClock.now
    let result = try await cache.getOrLoad(key) { try buildIndex(from: corpus) }
    let elapsed = ContinuousClock.now - start
    await cache.flush()
    print("environment \(environment): \(result.value.hostsByRegion.count) regions from \(result.source) in \(elapsed)")
}
print("stored in the shared tier: \(await shared.bytesStored) bytes")
