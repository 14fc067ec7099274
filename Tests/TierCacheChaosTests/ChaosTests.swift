import Foundation
import Logging
import Testing
import TierCache
import TierCacheDisk
import TierCacheHTTP
import TierCacheS3
import TierCacheTesting

/// Memory + disk + S3, with a ``FaultProxy`` between the S3 tier and S3 (moto, or the in-process
/// stand-in). Whatever the proxy does, the cache answers from a healthy tier or the loader, within
/// a bound set by its deadlines (never a hang), and never returns a corrupt or foreign value.
@Suite("Chaos: memory + disk + S3 through a fault proxy", .serialized)
struct ChaosTests {
    /// A generous bound on one call: the S3 read deadline (200 ms) plus a loader that answers at
    /// once plus scheduling slack on a loaded 2-core machine. Faults that would hang (a stall of
    /// a minute) or be slow (seconds of latency) must not stretch a call past it.
    static let callBound: Duration = .seconds(5)

    struct Rig {
        let upstream: Upstream
        let proxy: FaultProxy
        let bucket: String
        let diskRoot: String

        init() async throws {
            upstream = try Upstream()
            proxy = try FaultProxy(upstreamPort: upstream.port)
            bucket = "chaos-\(UInt32.random(in: 0...UInt32.max))"
            diskRoot = NSTemporaryDirectory() + "tiercache-chaos-\(UUID().uuidString)"
            try await upstream.client(through: proxy).createBucket(bucket)
            print("chaos upstream: \(upstream.kind)")
        }

        func stop() {
            proxy.stop()
            upstream.stop()
            try? FileManager.default.removeItem(atPath: diskRoot)
        }

        /// A fresh cache (empty memory) over the shared disk root and S3 through the proxy.
        func cache(disk: Bool = true, s3Write: TierChain.WriteMode = .writeBehind) throws -> Cache<StampedValue> {
            var tiers: [TierChain.Tier] = []
            if disk {
                tiers.append(.local(DiskTier(configuration: .init(root: diskRoot, maxBytes: 64 << 20))))
            }
            let s3 = S3Tier(client: try upstream.client(through: proxy),
                            configuration: .init(bucket: bucket, prefix: "chaos", readTimeout: .seconds(1), writeTimeout: .seconds(2)))
            tiers.append(TierChain.Tier(s3, readDeadline: .milliseconds(200), writeDeadline: .seconds(3), writeMode: s3Write))
            return Cache(configuration: .init(name: "chaos", serializer: BinarySerializer()), chain: TierChain(tiers))
        }
    }

    static func keys(_ count: Int, _ stem: String) throws -> [CacheKey] {
        try (0..<count).map { try CacheKey(namespace: "chaos", name: "\(stem)-\($0)") }
    }

    static func value(_ key: CacheKey, sequence: Int = 1) -> StampedValue {
        StampedValue(key: key.rendered, writer: "seed", sequence: sequence, size: 64 + sequence % 7 * 300)
    }

    /// Checks a value read for `key`: intact, for that key, and the one expected.
    static func check(_ value: StampedValue, for key: CacheKey, expected: StampedValue,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(value.isIntact, "corrupt value for \(key.rendered)", sourceLocation: sourceLocation)
        #expect(value.key == key.rendered, "foreign value: \(value.key) for \(key.rendered)", sourceLocation: sourceLocation)
        #expect(value == expected, "not the value written for \(key.rendered)", sourceLocation: sourceLocation)
    }

    /// Writes the keys through a cache with S3 write-through, so that S3 holds them all.
    static func seed(_ rig: Rig, _ keys: [CacheKey], disk: Bool = true) async throws {
        let writer = try rig.cache(disk: disk, s3Write: .writeThrough)
        for key in keys { try await writer.set(key, value(key)) }
        _ = await writer.flush()
    }

    @Test("resets, 503 bursts, truncated and corrupted bodies, slow and stalled answers from S3: every answer is right and in time")
    func mixedS3Faults() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let keys = try Self.keys(40, "mixed")
        try await Self.seed(rig, keys, disk: false)

        // From now on most S3 requests meet a fault, chosen per request.
        rig.proxy.script { _, number in
            switch number % 10 {
            case 0: .reset
            case 1: .status(503)
            case 2: .truncateBody(keeping: 17)
            case 3: .delay(.milliseconds(600))  // past the 200 ms read deadline
            case 4: .neverAnswer                // a stall: only the deadline ends it
            case 5: .close
            default: nil
            }
        }
        rig.proxy.corrupt { _ in Int.random(in: 0..<4) == 0 }
        let loads = LockedValueBox(0)
        var sources: [String: Int] = [:]
        for round in 0..<2 {
            let cache = try rig.cache(disk: false)
            for key in keys {
                let clock = ContinuousClock()
                let start = clock.now
                let result = try await cache.getOrLoad(key) {
                    loads.withLock { $0 += 1 }
                    return Self.value(key)
                }
                let elapsed = clock.now - start
                Self.check(result.value, for: key, expected: Self.value(key))
                #expect(elapsed < Self.callBound, "round \(round) \(key.rendered) took \(elapsed) (source \(result.source))")
                sources[result.source.description, default: 0] += 1
            }
        }
        print("mixed S3 faults: sources \(sources), loader runs \(loads.withLock { $0 }), proxy requests \(rig.proxy.requestCount)")
        // Both paths were taken: some answers came from S3 despite the faults, some from the loader.
        #expect(sources["loader", default: 0] > 0)
        #expect(sources.keys.contains { $0.contains("s3") })
    }

    @Test("S3 stalls on every request: a fresh process answers from disk, within the deadline")
    func stalledS3DiskAnswers() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let keys = try Self.keys(12, "stall")
        try await Self.seed(rig, keys)
        rig.proxy.script { _, _ in .neverAnswer }
        let cache = try rig.cache()
        for key in keys {
            let clock = ContinuousClock()
            let start = clock.now
            let result = try #require(await cache.get(key))
            #expect(clock.now - start < Self.callBound)
            Self.check(result.value, for: key, expected: Self.value(key))
            #expect(result.source == .tier("disk"), "answered by \(result.source)")
        }
        // A key on no tier: the stalled S3 is abandoned at its deadline and the loader answers.
        let missing = try CacheKey(namespace: "chaos", name: "stall-missing")
        let clock = ContinuousClock()
        let start = clock.now
        let loaded = try await cache.getOrLoad(missing) { Self.value(missing) }
        #expect(clock.now - start < Self.callBound)
        #expect(loaded.source == .loader)
        Self.check(loaded.value, for: missing, expected: Self.value(missing))
        rig.proxy.script(nil)
    }

    @Test("corrupt disk files: the cache falls through to S3 and never serves the damaged bytes")
    func corruptDiskFallsThrough() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let keys = try Self.keys(12, "disk-rot")
        try await Self.seed(rig, keys)
        // Flip a byte in the second half of every file the disk tier wrote.
        var damaged = 0
        let files = FileManager.default.enumerator(atPath: rig.diskRoot)?.compactMap { $0 as? String } ?? []
        for file in files {
            let path = rig.diskRoot + "/" + file
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  var bytes = FileManager.default.contents(atPath: path).map(Array.init), bytes.count > 100 else { continue }
            bytes[bytes.count - 10] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            damaged += 1
        }
        #expect(damaged >= keys.count, "found \(damaged) entry files under \(rig.diskRoot)")
        let cache = try rig.cache()
        for key in keys {
            let result = try await cache.getOrLoad(key) { Self.value(key) }
            Self.check(result.value, for: key, expected: Self.value(key))
            #expect(result.source == .tier("s3"), "answered by \(result.source)")
        }
    }

    @Test("every S3 body corrupted in flight: misses and loader runs, never a corrupt value")
    func corruptedInFlight() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let keys = try Self.keys(12, "flip")
        try await Self.seed(rig, keys, disk: false)
        rig.proxy.corrupt { $0.method == "GET" }
        let cache = try rig.cache(disk: false)
        for key in keys {
            let result = try await cache.getOrLoad(key) { Self.value(key, sequence: 2) }
            // The flipped S3 copy is rejected, so the loader's (newer) value is what comes back.
            Self.check(result.value, for: key, expected: Self.value(key, sequence: 2))
            #expect(result.source == .loader)
        }
    }

    @Test("writes meet resets and 503s: flush ends, and S3 then holds the value written or nothing")
    func writesUnderFaults() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let keys = try Self.keys(30, "writes")
        rig.proxy.script { _, number in [.reset, .status(503), .close, nil, .truncateBody(keeping: 0)][number % 5] }
        let writer = try rig.cache(disk: false)
        for key in keys { try await writer.set(key, Self.value(key, sequence: 3)) }
        let flushed = await writer.flush(deadline: .seconds(30))
        #expect(flushed.pending == 0)
        rig.proxy.script(nil)
        let reader = try rig.cache(disk: false)
        var present = 0
        for key in keys {
            if let result = await reader.get(key) {
                present += 1
                Self.check(result.value, for: key, expected: Self.value(key, sequence: 3))
            }
        }
        print("writes under faults: \(present) of \(keys.count) keys reached S3")
        #expect(present > 0)
    }

    @Test("latency above the read deadline turns S3 into misses; latency below it gives S3 hits")
    func latencyAndJitter() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let keys = try Self.keys(8, "latency")
        try await Self.seed(rig, keys, disk: false)
        rig.proxy.setDelay(latency: .milliseconds(500), jitter: .milliseconds(100))
        let slow = try rig.cache(disk: false)
        for key in keys {
            let clock = ContinuousClock()
            let start = clock.now
            let result = try await slow.getOrLoad(key) { Self.value(key) }
            #expect(clock.now - start < Self.callBound)
            #expect(result.source == .loader)
            Self.check(result.value, for: key, expected: Self.value(key))
        }
        rig.proxy.setDelay(latency: .milliseconds(5), jitter: .milliseconds(20))
        let fast = try rig.cache(disk: false)
        var fromS3 = 0
        for key in keys {
            let result = try await fast.getOrLoad(key) { Self.value(key) }
            Self.check(result.value, for: key, expected: Self.value(key))
            if result.source == .tier("s3") { fromS3 += 1 }
        }
        #expect(fromS3 > 0, "no S3 hit at 5-25 ms of latency")
    }
}

@Suite("FaultProxy")
struct FaultProxyTests {
    @Test("forwards requests and bodies both ways, and applies queued and scripted faults in order")
    func forwardsAndFaults() async throws {
        let upstream = try LoopbackHTTPServer { request in
            .init(status: 200, headers: [("X-Echo-Method", request.method)], body: Array("echo:".utf8) + request.body)
        }
        defer { upstream.stop() }
        let proxy = try FaultProxy(upstreamPort: upstream.port)
        defer { proxy.stop() }
        let http = HTTPClient(configuration: .init(connectTimeout: .seconds(1), timeout: .seconds(2)))
        defer { http.shutdown() }
        func call(_ body: String = "x") async -> Result<HTTPResponse, any Error> {
            do {
                // A connection per request: libcurl retries a request once on a reused connection
                // that dies, which would let one call consume two queued faults.
                return .success(try await http.execute(HTTPRequest(method: .put, url: proxy.baseURL + "/a?b=c",
                                                                   headers: ["Connection": "close"], body: Array(body.utf8))))
            } catch {
                return .failure(error)
            }
        }
        let ok = try await call("hello").get()
        #expect(ok.status == 200 && ok.body == Array("echo:hello".utf8) && ok.headers["X-Echo-Method"] == "PUT")
        #expect(upstream.recordedRequests.last?.target == "/a?b=c")

        proxy.enqueue(.status(503), count: 3)
        for _ in 0..<3 { #expect(try await call().get().status == 503) }
        #expect(try await call().get().status == 200)

        proxy.enqueue([.reset, .truncateBody(keeping: 2), .neverAnswer])
        if case .success = await call() { Issue.record("a reset answered") }
        if case .success = await call("longer body") { Issue.record("a truncated body passed as whole") }
        if case .success = await call() { Issue.record("a stall answered") }

        proxy.script { _, number in number % 2 == 0 ? .status(500) : nil }
        var statuses: [Int] = []
        for _ in 0..<4 { if case .success(let response) = await call() { statuses.append(response.status) } }
        #expect(statuses.sorted() == [200, 200, 500, 500])
        proxy.script(nil)

        proxy.corrupt { _ in true }
        let flipped = try await call("abcdefgh").get()
        #expect(flipped.status == 200 && flipped.body.count == "echo:abcdefgh".utf8.count && flipped.body != Array("echo:abcdefgh".utf8))
        proxy.corrupt(nil)
        #expect(proxy.forwardedCount >= 6)
    }

    @Test("an upstream that is gone is answered with 502, not a hang")
    func upstreamGone() async throws {
        let upstream = try LoopbackHTTPServer { _ in .init(status: 200) }
        let port = upstream.port
        upstream.stop()
        let proxy = try FaultProxy(upstreamPort: port)
        defer { proxy.stop() }
        let http = HTTPClient(configuration: .init(connectTimeout: .seconds(1), timeout: .seconds(5)))
        defer { http.shutdown() }
        let response = try await http.execute(HTTPRequest(method: .get, url: proxy.baseURL + "/"))
        #expect(response.status == 502)
        #expect(proxy.upstreamFailures == 1)
    }
}
