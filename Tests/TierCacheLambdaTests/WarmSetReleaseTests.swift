import Testing
import TierCache
import TierCacheLambda
import TierCacheTesting

/// A coordinator that always leads and counts the releases of its leases.
final class CountingCoordinator: LoadCoordinator {
    private let releases = LockedValueBox(0)
    var released: Int { releases.withLock { $0 } }

    func begin(_ key: CacheKey) async -> LoadTurn {
        .lead { self.releases.withLock { $0 += 1 } }
    }
}

/// A value the JSON serializer cannot encode (a non-finite number).
struct Unencodable: Codable, Sendable {
    var number = Double.nan
}

extension LambdaTests {
    @Suite("A warm set gives its lease back")
    struct WarmSetReleaseTests {
        @Test("a built value that cannot be encoded fails INIT and releases the lease it was built under")
        func encodeFailureReleases() async throws {
            let h = try Harness(configuration: .init(registerShutdownExtension: false))
            let cache = h.cache(Unencodable.self, tiers: [.remote(DictionaryTier(name: "s3"))])
            let coordinator = CountingCoordinator()
            var warm = WarmSet(coordination: .lease(coordinator))
            warm.add(try h.runtime.environment.cacheKey("unencodable", schemaVersion: 1), in: cache) { Unencodable() }
            let result = await h.runtime.run(warmSet: warm) { .raw { bytes, _ in bytes } }
            #expect(result.exitStatus == 1)
            #expect(try #require(await h.emulator.initError(timeout: .seconds(5))).errorTypeHeader == "Runtime.warmSetUnavailable")
            #expect(coordinator.released == 1)
            h.emulator.stop()
        }
    }
}
