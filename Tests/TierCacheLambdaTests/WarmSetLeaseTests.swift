import Testing
import TierCache
import TierCacheLambda
import TierCacheS3
import TierCacheTesting

extension LambdaTests {
@Suite("A warm set with the S3 lease (moto)", .enabled(if: MotoS3.isAvailable, "moto is not running"))
struct WarmSetLeaseTests {
    @Test("four environments start together: one builds, the others hydrate what it stored; no lease is left")
    func burst() async throws {
        let credentials = AWSCredentials(accessKeyID: try #require(MotoS3.variable("TIERCACHE_TEST_ACCESS_KEY_ID")),
                                         secretAccessKey: try #require(MotoS3.variable("TIERCACHE_TEST_SECRET_ACCESS_KEY")))
        let setupClient = try S3Client(configuration: .init(region: .usEast1, endpoint: MotoS3.variable("TIERCACHE_TEST_S3_ENDPOINT"),
                                                            credentials: .static(credentials)))
        let bucket = "lambda-lease-\(UInt32.random(in: 0...UInt32.max))"
        try await setupClient.createBucket(bucket)
        let loads = Counter()

        let reports = try await withThrowingTaskGroup(of: HydrationReport?.self) { group in
            for _ in 0..<4 {
                // One environment: its own client, tier, coordinator, caches and runtime.
                let client = try S3Client(configuration: .init(region: .usEast1, endpoint: MotoS3.variable("TIERCACHE_TEST_S3_ENDPOINT"),
                                                               credentials: .static(credentials)))
                let s3 = S3Tier(client: client, configuration: .init(bucket: bucket, readTimeout: .seconds(30), writeTimeout: .seconds(30)))
                let leases = S3LeaseCoordinator(tier: s3, configuration: .init(waitDeadline: .seconds(30), initialPoll: .milliseconds(20),
                                                                              maxPoll: .milliseconds(200), requestTimeout: .seconds(30)))
                let h = try Harness(configuration: .init(hydrationDeadline: .seconds(30), flushDeadline: .seconds(10), registerShutdownExtension: false, maxInvocations: 1))
                let models = h.cache(Model.self, name: "models", tiers: [.remote(s3, readDeadline: .seconds(30))])
                var warm = WarmSet(coordination: .lease(leases))
                let model = warm.add(try h.runtime.environment.cacheKey("model", schemaVersion: 1), in: models) {
                    loads.increment()
                    try await Task.sleep(for: .milliseconds(300))
                    return Model(words: ["alpha": 1])
                }
                let warmSet = warm
                group.addTask {
                    let run = Task { await h.runtime.run(warmSet: warmSet) { .raw { _, _ in Array("\(try await model.get().words["alpha"]!)".utf8) } } }
                    let id = h.emulator.enqueue(json: "{}")
                    let result = await run.value
                    let answer = await h.emulator.outcome(for: id, timeout: .seconds(5))?.text
                    h.emulator.stop()
                    return answer == "1" ? result.hydration : nil
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(loads.value == 1)
        let done = reports.compactMap { $0 }
        try #require(done.count == 4, "every environment answered")
        #expect(done.filter { $0.built == 1 }.count == 1)
        #expect(done.filter { $0.hydrated == 1 }.count == 3)
        let leases = try await setupClient.listAllObjects(bucket: bucket, prefix: "tiercache").filter { $0.key.hasSuffix(".lease") }
        #expect(leases.isEmpty, "released after the flush wrote the entry")
    }
}
}
