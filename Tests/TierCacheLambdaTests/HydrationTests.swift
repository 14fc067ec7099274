import Testing
import TierCache
import TierCacheLambda
import TierCacheTesting

extension LambdaTests {
@Suite("INIT hydration and flushing")
struct HydrationTests {
    /// One "environment": a fresh runtime and fresh caches over the shared bucket tier.
    struct Environment {
        let h: Harness
        var warm: WarmSet
        let model: WarmValue<Model>
        let names: WarmValue<[String]>
    }

    static func environment(bucket: any CacheTier, loads: Counter, pack: Bool = false,
                            configuration: LambdaRuntime.Configuration = .init(registerShutdownExtension: false, maxInvocations: 1)) throws -> Environment {
        let h = try Harness(configuration: configuration)
        let models = h.cache(Model.self, name: "models", tiers: [.remote(bucket)])
        let lists = h.cache([String].self, name: "lists", tiers: [.remote(bucket)])
        var warm = WarmSet()
        if pack {
            warm.pack = WarmSet.Pack(chain: TierChain([.remote(bucket)], configuration: .init(metricsLabel: "pack", metricsFactory: h.runtime.metrics)),
                                     key: try h.runtime.environment.cacheKey("warm-pack", schemaVersion: 1))
        }
        let model = warm.add(try h.runtime.environment.cacheKey("model", schemaVersion: 1), in: models) {
            loads.increment()
            return Model(words: ["alpha": 1, "beta": 2])
        }
        let names = warm.add(try h.runtime.environment.cacheKey("names", schemaVersion: 1), in: lists) {
            loads.increment()
            return ["x", "y", "z"]
        }
        return Environment(h: h, warm: warm, model: model, names: names)
    }

    @Test("a second environment hydrates what the first built, without running loaders", arguments: [false, true])
    func hydrateAcrossEnvironments(packed: Bool) async throws {
        let bucket = DictionaryTier(name: "s3")
        let loads = Counter()

        let first = try Self.environment(bucket: bucket, loads: loads, pack: packed)
        let model1 = first.model
        let run1 = Task { await first.h.runtime.run(warmSet: first.warm) { .raw { _, _ in Array("\(try await model1.get().words.count)".utf8) } } }
        let id1 = first.h.emulator.enqueue(json: "{}")
        let result1 = await run1.value
        #expect(result1.hydration?.built == 2)
        #expect(result1.hydration?.hydrated == 0)
        #expect(loads.value == 2)
        #expect(try #require(await first.h.emulator.outcome(for: id1, timeout: .seconds(1))).text == "2")
        #expect(bucket.count == (packed ? 1 : 2), "persisted before the process could be frozen")
        first.h.emulator.stop()

        let getsBefore = bucket.operationCounts.gets
        let second = try Self.environment(bucket: bucket, loads: loads, pack: packed)
        let model2 = second.model
        let names2 = second.names
        let run2 = Task {
            await second.h.runtime.run(warmSet: second.warm) {
                .raw { _, _ in Array("\(try await model2.get().words["beta"]!) \(try await names2.get().joined())".utf8) }
            }
        }
        let id2 = second.h.emulator.enqueue(json: "{}")
        let result2 = await run2.value
        #expect(result2.hydration?.hydrated == 2)
        #expect(result2.hydration?.built == 0)
        #expect(loads.value == 2, "no loader ran in the hydrated environment")
        #expect(second.model.initResult?.value == Model(words: ["alpha": 1, "beta": 2]))
        #expect(second.names.initResult?.source == (packed ? .tier("pack") : .tier("s3")))
        #expect(try #require(await second.h.emulator.outcome(for: id2, timeout: .seconds(1))).text == "2 xyz")
        #expect(bucket.operationCounts.gets - getsBefore == (packed ? 1 : 2), "a packed warm set costs one GET")
        second.h.emulator.stop()
    }

    @Test("a refused, slow or blackholed lower tier at INIT does not hold the first response",
          arguments: [("refused", FaultInjectingTier.Fault.fail), ("slow", .delay(.seconds(2))), ("blackholed", .hang(.seconds(4)))])
    func badTierAtInit(name: String, fault: FaultInjectingTier.Fault) async throws {
        let bucket = FaultInjectingTier(DictionaryTier(name: "s3"))
        bucket.setReadFault(fault)
        bucket.setWriteFault(fault)
        let h = try Harness(configuration: .init(registerShutdownExtension: false, maxInvocations: 1))
        // No read deadline of the tier's own: only the runtime's hydration deadline bounds it.
        let cache = h.cache(Model.self, tiers: [TierChain.Tier(bucket, readDeadline: nil, writeDeadline: .seconds(10), writeMode: .writeBehind)])
        let throughCache = h.cache(Model.self, name: "through", tiers: [TierChain.Tier(bucket, readDeadline: nil, writeDeadline: .seconds(10), writeMode: .writeThrough)])
        var warm = WarmSet()
        let loaderTime = Duration.milliseconds(50)
        let model = warm.add(try h.runtime.environment.cacheKey("model", schemaVersion: 1), in: cache) {
            try await Task.sleep(for: loaderTime)
            return Model(words: ["a": 1])
        }
        warm.add(try h.runtime.environment.cacheKey("other", schemaVersion: 1), in: throughCache) {
            try await Task.sleep(for: loaderTime)
            return Model(words: ["b": 2])
        }
        let id = h.emulator.enqueue(json: "{}", timeout: .seconds(10))
        let start = ContinuousClock.now
        let run = Task { await h.runtime.run(warmSet: warm) { .raw { _, _ in Array("\(try await model.get().words["a"]!)".utf8) } } }
        let outcome = try #require(await h.emulator.outcome(for: id, timeout: .seconds(5)))
        let elapsed = outcome.receivedAt - start
        #expect(outcome.kind == .response, "\(name): \(outcome.text)")
        #expect(outcome.text == "1")
        let bound = h.runtime.configuration.hydrationDeadline + loaderTime + h.runtime.configuration.flushDeadline + .milliseconds(400)
        // The slack is for scheduling on a loaded machine or under a sanitizer; the bound stays
        // well under the slow tier's 2 s, so waiting on that tier fails the test.
        #expect(elapsed <= bound, "\(name): first response after \(elapsed), bound \(bound)")
        _ = await run.value
        if name == "blackholed" {
            let line = try JSON.parse(try #require(h.lines.lines.first))
            #expect((line["AbandonedWrites"]?.number ?? 0) >= 1, "abandoned writes are counted")
        }
        h.emulator.stop()
    }

    @Test("every entry written during an invocation is in the lower tier when the response arrives")
    func flushBeforeResponse() async throws {
        let store = DictionaryTier(name: "s3")
        let slow = FaultInjectingTier(store)
        slow.setWriteFault(.delay(.milliseconds(60)))
        let h = try Harness(configuration: .init(registerShutdownExtension: false, maxInvocations: 2))
        let cache = h.cache(Model.self, tiers: [.remote(slow)])
        h.runtime.flushBeforeResponding(cache)
        let seenAtResponse = LockedValueBox<[Int]>([])
        h.emulator.setOnOutcome { _ in seenAtResponse.withLock { $0.append(store.count) } }
        let env = h.runtime.environment
        let run = Task {
            await h.runtime.run {
                .codable(Greeting.self) { event, _ in
                    for i in 0..<5 {
                        try await cache.set(try env.cacheKey("\(event.name)-\(i)", schemaVersion: 1), Model(words: [event.name: i]))
                    }
                    return Answer(message: "stored")
                }
            }
        }
        h.emulator.enqueue(json: #"{"name":"a"}"#)
        h.emulator.enqueue(json: #"{"name":"b"}"#)
        _ = await run.value
        #expect(seenAtResponse.withLock { $0 } == [5, 10])
        h.emulator.stop()
    }

    @Test("a flush never runs past the invocation's remaining time")
    func flushBoundedByRemainingTime() async throws {
        let store = DictionaryTier(name: "s3")
        let stuck = FaultInjectingTier(store)
        stuck.setWriteFault(.hang(.seconds(3)))
        // A wide safety margin: what is checked is that the flush is cut at the remaining time
        // (without that it would wait out the 3 s flush deadline), not how long posting the
        // response takes on a loaded machine or under a sanitizer.
        let h = try Harness(configuration: .init(flushDeadline: .seconds(3), flushSafetyMargin: .milliseconds(200),
                                                 registerShutdownExtension: false, maxInvocations: 1))
        let cache = h.cache(Model.self, tiers: [.remote(stuck)])
        h.runtime.flushBeforeResponding(cache)
        let key = try h.runtime.environment.cacheKey("k", schemaVersion: 1)
        let run = Task {
            await h.runtime.run { .raw { _, _ in try await cache.set(key, Model(words: [:])); return [] } }
        }
        let start = ContinuousClock.now
        let id = h.emulator.enqueue(json: "{}", timeout: .milliseconds(700))
        let outcome = try #require(await h.emulator.outcome(for: id, timeout: .seconds(5)))
        #expect(outcome.kind == .response)
        #expect(outcome.receivedAt - start < .milliseconds(700), "posted before the invocation's deadline")
        _ = await run.value
        h.emulator.stop()
    }

    @Test("the SHUTDOWN extension flushes writes a response flush abandoned")
    func shutdownFlush() async throws {
        let store = DictionaryTier(name: "s3")
        let slow = FaultInjectingTier(store)
        slow.setWriteFault(.delay(.milliseconds(200)))
        let h = try Harness(configuration: .init(flushDeadline: .milliseconds(20)))
        let cache = h.cache(Model.self, tiers: [.remote(slow)])
        h.runtime.flushBeforeResponding(cache)
        let atResponse = LockedValueBox<Int?>(nil)
        h.emulator.setOnOutcome { _ in atResponse.withLock { $0 = store.count } }
        let key = try h.runtime.environment.cacheKey("late", schemaVersion: 1)
        let run = Task { await h.runtime.run { .raw { _, _ in try await cache.set(key, Model(words: ["late": 1])); return [] } } }
        let id = h.emulator.enqueue(json: "{}")
        _ = try #require(await h.emulator.outcome(for: id))
        #expect(atResponse.withLock { $0 } == 0, "the write outlived the 20 ms flush")
        #expect(h.emulator.extensions.map(\.events) == [["SHUTDOWN"]])
        h.emulator.shutdown(deadline: .seconds(2))
        let result = await run.value
        #expect(result.invocations == 1)
        #expect(store.count == 1, "flushed on SHUTDOWN")
        let line = try JSON.parse(try #require(h.lines.lines.first))
        #expect(line["AbandonedWrites"]?.number == 1)
        h.emulator.stop()
    }
}
}
