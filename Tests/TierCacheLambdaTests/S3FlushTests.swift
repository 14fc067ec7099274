#if canImport(Glibc)
import Glibc
#endif
import Logging
import Testing
import TierCache
import TierCacheLambda
import TierCacheS3
import TierCacheTesting

/// moto's S3 server (scripts/start-moto.sh): found through the environment, skipped (saying why)
/// when absent.
enum MotoS3 {
    static func variable(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let string = String(cString: value)
        return string.isEmpty ? nil : string
    }

    static var isAvailable: Bool {
        let available = variable("TIERCACHE_TEST_S3_ENDPOINT") != nil && variable("TIERCACHE_TEST_ACCESS_KEY_ID") != nil
            && variable("TIERCACHE_TEST_SECRET_ACCESS_KEY") != nil
        if !available {
            print("skipping the Lambda-over-S3 test: TIERCACHE_TEST_S3_ENDPOINT / TIERCACHE_TEST_ACCESS_KEY_ID / TIERCACHE_TEST_SECRET_ACCESS_KEY not set (scripts/test.sh starts moto)")
        }
        return available
    }
}

extension LambdaTests {
@Suite("Lambda over S3 (moto)", .enabled(if: MotoS3.isAvailable, "moto is not running"))
struct S3FlushTests {
    @Test("every entry written during an invocation is in S3 when the emulator receives the response")
    func entriesInS3AtResponse() async throws {
        let credentials = AWSCredentials(accessKeyID: try #require(MotoS3.variable("TIERCACHE_TEST_ACCESS_KEY_ID")),
                                         secretAccessKey: try #require(MotoS3.variable("TIERCACHE_TEST_SECRET_ACCESS_KEY")))
        let client = try S3Client(configuration: .init(region: .usEast1, endpoint: MotoS3.variable("TIERCACHE_TEST_S3_ENDPOINT"),
                                                       credentials: .static(credentials)))
        let bucket = "lambda-flush-\(UInt32.random(in: 0...UInt32.max))"
        try await client.createBucket(bucket)
        let s3 = S3Tier(client: client, configuration: .init(bucket: bucket))
        let h = try Harness(configuration: .init(flushDeadline: .seconds(2), registerShutdownExtension: false, maxInvocations: 1))
        let cache = h.cache(Model.self, tiers: [.remote(s3)])
        h.runtime.flushBeforeResponding(cache)
        let keys = try (0..<4).map { try h.runtime.environment.cacheKey("entry-\($0)", schemaVersion: 1) }
        // At the instant the response arrives, read each key straight from S3 (HEAD).
        let found = LockedValueBox<[Bool]>([])
        h.emulator.setOnOutcome { _ in
            let semaphore = LockedValueBox<[Bool]?>(nil)
            Task {
                var present: [Bool] = []
                for key in keys {
                    present.append((try? await client.headObject(bucket: bucket, key: S3Tier.objectKey(for: key, prefix: "tiercache"))) != nil)
                }
                semaphore.withLock { $0 = present }
            }
            while semaphore.withLock({ $0 }) == nil { usleep(1000) }
            found.withLock { $0 = semaphore.withLock { $0 } ?? [] }
        }
        let run = Task {
            await h.runtime.run {
                .raw { _, _ in
                    for (i, key) in keys.enumerated() { try await cache.set(key, Model(words: ["n": i])) }
                    return []
                }
            }
        }
        h.emulator.enqueue(json: "{}")
        _ = await run.value
        #expect(found.withLock { $0 } == [true, true, true, true])
        h.emulator.stop()
    }
}
}
