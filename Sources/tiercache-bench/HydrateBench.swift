#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TierCache
import TierCacheHTTP
import TierCacheS3
import TierCacheTesting
import TierCacheZstd

/// `tiercache-bench hydrate`: hydrating the endpoints.json model (binary, zstd) through a
/// ``Cache`` over a ``TierChain`` with the S3 tier, from a loopback server, vs the floor measured
/// in the same run: fetch the same object's bytes with the HTTP client, decompress, decode, with
/// no cache code (no envelope, no chain, no tier). The model has @GeneratedBinaryCoding, so both
/// decode through the generated code; the parts line gives the Codable path's decode beside it.
enum HydrateBench {
    static let suite = "hydrate"

    static func run() async throws {
        let json = Corpus.read("endpoints.json")
        let document = try JSONDecoder().decode(EndpointsDocument.self, from: Data(json))
        let serializer = BinarySerializer()
        let codec = ZstdCodec.zstd
        let key = try CacheKey(namespace: "bench", name: "endpoints-model", schemaVersion: 1)
        let writer = Cache<EndpointsDocument>(configuration: .init(serializer: serializer, codec: codec, memory: nil))
        let now = SystemCacheClock().now()
        let entry = try writer.encode(key, value: document, createdAt: now, freshUntil: now.advanced(by: .seconds(3600)),
                                      staleUntil: now.advanced(by: .seconds(7200)))
        let envelope = entry.encoded()
        let raw = try serializer.encode(document)
        let compressed = try codec.compress(raw)?.bytes ?? raw

        // One loopback server: the envelope at its S3 object key, the bare compressed bytes at /floor.
        let objectPath = "/bench/" + S3Tier.objectKey(for: key, prefix: "tiercache")
        let server = try LoopbackHTTPServer { request in
            switch request.path {
            case "/floor": return .init(status: 200, headers: [("ETag", "\"f\"")], body: compressed)
            case objectPath: return .init(status: 200, headers: [("ETag", "\"e\""), ("Content-Type", "application/octet-stream")], body: envelope)
            default: return .init(status: 404, body: Array("<Error><Code>NoSuchKey</Code></Error>".utf8))
            }
        }
        defer { server.stop() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let s3 = try S3Client(configuration: .init(region: .usEast1, endpoint: server.baseURL, addressingStyle: .path,
                                                   credentials: .static(accessKeyID: "bench", secretAccessKey: "bench")), httpClient: http)
        let tier = S3Tier(client: s3, configuration: .init(bucket: "bench", revalidationCapacity: 0))
        let cache = Cache<EndpointsDocument>(
            configuration: .init(serializer: serializer, codec: codec, memory: nil),
            chain: TierChain([.remote(tier, readDeadline: .seconds(10))]))
        let floorURL = server.baseURL + "/floor"

        // Correctness first: both paths give the same model.
        guard let viaCache = await cache.get(key), viaCache.value == document else { fatalError("hydrate: the chain did not return the model") }
        let floorBytes = try await http.execute(HTTPRequest(url: floorURL)).body
        guard try serializer.decode(EndpointsDocument.self, from: try codec.decompress(floorBytes, uncompressedLength: raw.count, dictionaryID: 0)) == document else {
            fatalError("hydrate: the floor did not return the model")
        }

        // The same decode through the Codable path, for the parts line.
        let codablePath = BinarySerializer(configuration: .init(usesGeneratedCode: false))
        var best = [Double.infinity, Double.infinity, Double.infinity, Double.infinity, Double.infinity, Double.infinity]
        let objectURL = server.baseURL + objectPath
        for _ in 0..<7 {
            best[2] = min(best[2], try await time { blackHole(try await http.execute(HTTPRequest(url: floorURL)).body) })
            best[3] = min(best[3], try await time { blackHole(try await http.execute(HTTPRequest(url: objectURL)).body) })
            best[4] = min(best[4], try await time {
                blackHole(try serializer.decode(EndpointsDocument.self, from: try codec.decompress(compressed, uncompressedLength: raw.count, dictionaryID: 0)))
            })
            best[5] = min(best[5], try await time {
                blackHole(try codablePath.decode(EndpointsDocument.self, from: try codec.decompress(compressed, uncompressedLength: raw.count, dictionaryID: 0)))
            })
            best[0] = min(best[0], try await time {
                blackHole(await cache.get(key))
            })
            best[1] = min(best[1], try await time {
                let body = try await http.execute(HTTPRequest(url: floorURL)).body
                blackHole(try serializer.decode(EndpointsDocument.self, from: try codec.decompress(body, uncompressedLength: raw.count, dictionaryID: 0)))
            })
        }
        Report.line(suite, "hydrate endpoints model (binary+zstd, \(envelope.count) B object) via Cache+TierChain+S3Tier / floor (GET + decompress + decode)",
                    ratio: best[0] / best[1], goal: .atMost(1.5),
                    detail: "ours \(format(best[0] / 1e6)) ms, floor \(format(best[1] / 1e6)) ms, \(raw.count) B serialized")
        Report.info(suite, "parts: GET floor object \(format(best[2] / 1e6)) ms, GET envelope object \(format(best[3] / 1e6)) ms, decompress+decode \(format(best[4] / 1e6)) ms "
                    + "(with the Codable path instead of the generated code: \(format(best[5] / 1e6)) ms)")
    }

    /// Best-of-one-round nanoseconds per call for an async body, at least 40 ms per round.
    static func time(_ body: () async throws -> Void) async throws -> Double {
        var calls: UInt64 = 0
        let start = nowNanoseconds()
        var elapsed: UInt64 = 0
        repeat {
            try await body()
            calls += 1
            elapsed = nowNanoseconds() - start
        } while elapsed < 40_000_000
        return Double(elapsed) / Double(calls)
    }
}
