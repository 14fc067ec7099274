import Testing
import TierCache
import TierCacheLambda
import TierCacheTesting

extension LambdaTests {
@Suite("Refresh-ahead inside an invocation")
struct RefreshAheadLambdaTests {
    /// A bucket holding `model` written `age` ago with a 60 s lifetime, and a cache over it that
    /// refreshes past half the lifetime, on a manual clock.
    static func setUp(_ h: Harness, age: Duration) async throws -> (bucket: DictionaryTier, cache: Cache<Model>, key: CacheKey, clock: ManualCacheClock) {
        let bucket = DictionaryTier(name: "s3")
        let clock = ManualCacheClock()
        let key = try h.runtime.environment.cacheKey("model", schemaVersion: 1)
        let writer = Cache<Model>(configuration: .init(defaultTTL: .seconds(60), clock: clock), chain: TierChain([.remote(bucket)]))
        try await writer.set(key, Model(words: ["version": 1]))
        await writer.flush()
        clock.advance(by: age)
        let cache = Cache<Model>(
            configuration: .init(name: "models", defaultTTL: .seconds(60), clock: clock, metricsFactory: h.runtime.metrics,
                                 refreshAhead: RefreshAheadPolicy(fraction: 0.5)),
            chain: TierChain([.remote(bucket)], configuration: .init(metricsLabel: "models", metricsFactory: h.runtime.metrics)))
        return (bucket, cache, key, clock)
    }

    static func storedVersion(_ bucket: DictionaryTier, _ cache: Cache<Model>, _ key: CacheKey) -> Int? {
        guard let bytes = bucket.rawBytes(for: key), let entry = try? CacheEntry(decoding: bytes) else { return nil }
        return (try? cache.decode(entry))?.words["version"]
    }

    @Test("a read late in an entry's life refreshes it during the invocation, before the response is posted")
    func refreshCompletesBeforeTheResponse() async throws {
        let h = try Harness(configuration: .init(flushDeadline: .seconds(10), registerShutdownExtension: false, maxInvocations: 1))
        let (bucket, cache, key, _) = try await Self.setUp(h, age: .seconds(40))
        let gate = LoaderGate()
        var warm = WarmSet()
        let model = warm.add(key, in: cache) {
            await gate.pass()
            return Model(words: ["version": 2])
        }
        let atResponse = LockedValueBox<(stored: Int?, inFlight: Int)?>(nil)
        h.emulator.setOnOutcome { _ in
            atResponse.withLock { $0 = (Self.storedVersion(bucket, cache, key), cache.refreshesInFlight) }
        }
        let run = Task {
            await h.runtime.run(warmSet: warm) {
                .raw { _, _ in
                    // Hydrated from the bucket at INIT, 40 s into a 60 s life: this read starts
                    // a refresh and returns the current value without waiting for it.
                    let value = try await model.get()
                    let refreshing = cache.refreshesInFlight
                    // The loader is let go after the handler has returned: only the flush before
                    // the response can then hold the response until the refresh is stored.
                    Task {
                        try await Task.sleep(for: .milliseconds(50))
                        gate.open()
                    }
                    return Array("\(value.words["version"]!) \(refreshing)".utf8)
                }
            }
        }
        let id = h.emulator.enqueue(json: "{}", timeout: .seconds(30))
        let result = await run.value
        let outcome = try #require(await h.emulator.outcome(for: id, timeout: .seconds(1)))
        #expect(result.hydration?.hydrated == 1)
        #expect(outcome.text == "1 1", "the handler got the current value while the refresh ran")
        let seen = try #require(atResponse.withLock { $0 })
        #expect(seen.stored == 2, "the refreshed value was in the bucket when the response arrived")
        #expect(seen.inFlight == 0)
        #expect(gate.calls == 1)
        let line = try JSON.parse(try #require(h.lines.lines.first))
        #expect(line["Refreshes"]?.number == 1)
        #expect((line["AbandonedRefreshes"]?.number ?? 0) == 0)
        h.emulator.stop()
    }

    @Test("a value built at INIT keeps its refresh point: a late read refreshes it", arguments: [false, true])
    func builtAtInitIsRefreshed(packed: Bool) async throws {
        let h = try Harness(configuration: .init(flushDeadline: .seconds(10), registerShutdownExtension: false, maxInvocations: 1))
        let bucket = DictionaryTier(name: "s3")
        let clock = ManualCacheClock()
        let key = try h.runtime.environment.cacheKey("model", schemaVersion: 1)
        let cache = Cache<Model>(
            configuration: .init(name: "models", defaultTTL: .seconds(60), clock: clock, metricsFactory: h.runtime.metrics,
                                 refreshAhead: RefreshAheadPolicy(fraction: 0.5)),
            chain: TierChain([.remote(bucket)], configuration: .init(metricsLabel: "models", metricsFactory: h.runtime.metrics)))
        var warm = WarmSet()
        if packed {
            warm.pack = WarmSet.Pack(chain: TierChain([.remote(bucket)]), key: try h.runtime.environment.cacheKey("pack", schemaVersion: 1))
        }
        let builds = LockedValueBox(0)
        let model = warm.add(key, in: cache) {
            Model(words: ["version": builds.withLock { $0 += 1; return $0 }])
        }
        let run = Task {
            await h.runtime.run(warmSet: warm) {
                .raw { _, _ in
                    clock.advance(by: .seconds(31))
                    return Array("\(try await model.get().words["version"]!)".utf8)
                }
            }
        }
        let id = h.emulator.enqueue(json: "{}", timeout: .seconds(30))
        let result = await run.value
        #expect(result.hydration?.built == 1)
        #expect(try #require(await h.emulator.outcome(for: id, timeout: .seconds(1))).text == "1")
        #expect(builds.withLock { $0 } == 2, "built at INIT, refreshed by the read 31 s into a 60 s life")
        #expect(Self.storedVersion(bucket, cache, key) == 2)
        h.emulator.stop()
    }

    @Test("a refresh that outlives the flush deadline is abandoned to the background, and the response goes out")
    func refreshAbandonedAtTheFlushDeadline() async throws {
        let h = try Harness(configuration: .init(flushDeadline: .milliseconds(50), registerShutdownExtension: false, maxInvocations: 2))
        let (bucket, cache, key, _) = try await Self.setUp(h, age: .seconds(40))
        h.runtime.flushBeforeResponding(cache)
        let gate = LoaderGate()
        let atResponse = LockedValueBox<[Int?]>([])
        h.emulator.setOnOutcome { _ in atResponse.withLock { $0.append(Self.storedVersion(bucket, cache, key)) } }
        let run = Task {
            await h.runtime.run {
                .raw { _, _ in
                    let value = try await cache.getOrLoad(key) {
                        await gate.pass()
                        return Model(words: ["version": 2])
                    }
                    return Array("\(value.value.words["version"]!)".utf8)
                }
            }
        }
        let first = h.emulator.enqueue(json: "{}", timeout: .seconds(30))
        #expect(try #require(await h.emulator.outcome(for: first, timeout: .seconds(5))).text == "1")
        #expect(gate.calls == 1)
        #expect(cache.refreshesInFlight == 1, "still held at the gate: abandoned, not cancelled")
        // Released between invocations; the next flush writes what the refresh stored.
        gate.open()
        while cache.refreshesInFlight > 0 { try await Task.sleep(for: .milliseconds(1)) }
        let second = h.emulator.enqueue(json: "{}", timeout: .seconds(30))
        #expect(try #require(await h.emulator.outcome(for: second, timeout: .seconds(5))).text == "2")
        _ = await run.value
        #expect(atResponse.withLock { $0 } == [1, 2])
        #expect(gate.calls == 1)
        let line = try JSON.parse(try #require(h.lines.lines.first))
        #expect(line["AbandonedRefreshes"]?.number == 1)
        h.emulator.stop()
    }
}
}
