// This module imports only TierCache's public API, as a user's package would: it proves that a
// tier written outside the library plugs into a chain and a typed cache.
import Testing
import TierCache

/// A tier as a user might write it: an actor over a dictionary of envelope bytes.
actor UserTier: CacheTier {
    nonisolated let name = "user-kv"
    private var storage: [String: [UInt8]] = [:]
    private(set) var writes = 0

    func get(_ key: CacheKey) async throws -> CacheEntry? {
        try storage[key.fingerprint].map { try CacheEntry(decoding: $0) }
    }

    func put(_ entry: CacheEntry) async throws {
        writes += 1
        storage[entry.key.fingerprint] = entry.encoded()
    }

    func remove(_ key: CacheKey) async throws {
        storage[key.fingerprint] = nil
    }
}

struct Settings: Codable, Sendable, Equatable {
    var region: String
    var limits: [String: Int]
}

@Test func userTierServesAFreshProcess() async throws {
    let tier = UserTier()
    let key = try CacheKey(namespace: "svc", name: "settings", schemaVersion: 2)
    let first = Cache<Settings>(chain: TierChain([.remote(tier)]))
    let built = try await first.getOrLoad(key) { Settings(region: "eu-west-1", limits: ["rps": 10]) }
    #expect(built.source == .loader)
    await first.flush()
    #expect(await tier.writes == 1)

    let second = Cache<Settings>(chain: TierChain([.remote(tier)]))
    let hydrated = try await second.getOrLoad(key) { Settings(region: "wrong", limits: [:]) }
    #expect(hydrated.source == .tier("user-kv"))
    #expect(hydrated.value == built.value)
}
