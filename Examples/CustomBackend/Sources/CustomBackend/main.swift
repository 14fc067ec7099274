#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache
import TierCacheHTTP
import TierCacheTesting

// A stand-in key-value store on loopback, so the example runs anywhere. Point
// HTTPKeyValueTier at your own store's URL instead.
final class KeyValueStore: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var values: [String: [UInt8]] = [:]
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func with<T>(_ body: (inout [String: [UInt8]]) -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body(&values)
    }
}

struct Catalog: Codable, Sendable {
    var products: [String: Double]
}

let store = KeyValueStore()
let server = try LoopbackHTTPServer { request in
    switch request.method {
    case "GET":
        if let body = store.with({ $0[request.path] }) { return .init(status: 200, body: body) }
        return .init(status: 404)
    case "PUT":
        store.with { $0[request.path] = request.body }
        return .init(status: 204)
    case "DELETE":
        store.with { $0[request.path] = nil }
        return .init(status: 204)
    default:
        return .init(status: 405)
    }
}
defer { server.stop() }

let http = HTTPClient()
defer { http.shutdown() }
let tier = HTTPKeyValueTier(configuration: .init(baseURL: server.baseURL + "/cache"), client: http)
let key = try CacheKey(namespace: "shop", name: "catalog", schemaVersion: 1)

// First process: a miss everywhere, so the loader runs and the result is written through.
let first = Cache<Catalog>(chain: TierChain([.init(tier, readDeadline: .milliseconds(500), writeMode: .writeThrough)]))
let built = try await first.getOrLoad(key) { Catalog(products: ["tea": 3.5, "coffee": 4.0]) }
_ = await first.flush()
print("first process: \(built.source)")

// A "new process" (an empty memory tier): the entry comes from the custom tier.
let second = Cache<Catalog>(chain: TierChain([.init(tier, readDeadline: .milliseconds(500), writeMode: .writeThrough)]))
let hydrated = try await second.getOrLoad(key) { fatalError("the loader must not run: the tier has the entry") }
print("second process: \(hydrated.source), \(hydrated.value.products.count) products")
