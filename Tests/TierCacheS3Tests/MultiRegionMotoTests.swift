import Foundation
import Testing
import TierCache
@testable import TierCacheS3

#if canImport(Glibc)
import Glibc
#endif

/// A moto S3 server started by the test on a free loopback port, standing for one region.
/// These two run without signature checking, deliberately: moto's IAM hands out a random key pair
/// per server, while the tier signs every region with one set of credentials (one IAM user, as in
/// AWS), so two signature-checking servers could never both accept it. Signing is covered against
/// the signature-checking moto of scripts/start-moto.sh (S3ClientMotoTests, S3TierMotoTests); here
/// routing, failover and the circuit breaker are what is tested.
final class MotoServer: @unchecked Sendable {
    let process: Process
    let endpoint: String

    /// Whether `python3 -m moto.server` can run here.
    static let isAvailable: Bool = {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import moto.server"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        let available = probe.terminationStatus == 0
        if !available { print("skipping multi-region moto test: python3 cannot import moto.server (pip install 'moto[server]')") }
        return available
    }()

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        try #require(bound, "cannot bind a loopback port")
        return Int(UInt16(bigEndian: address.sin_port))
    }

    init() async throws {
        let port = try Self.freePort()
        endpoint = "http://127.0.0.1:\(port)"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)]
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "INITIAL_NO_AUTH_ACTION_COUNT")
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when a TCP connection is accepted (up to 30 s on a loaded machine).
        for _ in 0..<300 {
            if Self.accepts(port) { return }
            try #require(process.isRunning, "moto exited early")
            try await Task.sleep(for: .milliseconds(100))
        }
        stop()
        Issue.record("moto did not start listening on \(endpoint)")
        throw CancellationError()
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// Freezes the server (SIGSTOP): connections are still accepted by the kernel but never
    /// answered, the worst case for a client: only deadlines get it out.
    func freeze() { kill(process.processIdentifier, SIGSTOP) }
    /// Resumes a frozen server, state intact.
    func resume() { kill(process.processIdentifier, SIGCONT) }

    func stop() {
        // SIGKILL: moto's server does not always exit on SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

@Suite("Multi-region tier against two moto servers", .enabled(if: MotoServer.isAvailable, "moto is not installed"))
struct MultiRegionMotoTests {
    static func entry(_ key: CacheKey, _ payload: String) -> CacheEntry {
        let bytes = Array(payload.utf8)
        return CacheEntry(key: key, serializerID: .json, codecID: .identity,
                          createdAt: WallTime(millisecondsSince1970: 1_700_000_000_000),
                          freshUntil: WallTime(millisecondsSince1970: 4_000_000_000_000),
                          staleUntil: WallTime(millisecondsSince1970: 4_000_000_000_000),
                          uncompressedLength: UInt64(bytes.count), payload: bytes)
    }

    @Test("reads fail over from a frozen region within the deadline, writes land at home, the frozen bucket is skipped until its cool-down ends and probed again when back")
    func failover() async throws {
        async let startedEU = MotoServer()
        async let startedUS = MotoServer()
        let (eu, us) = try await (startedEU, startedUS)
        defer {
            eu.stop()
            us.stop()
        }
        let euTarget = BucketTarget(region: .euWest1, bucket: "cache-euw1", endpoint: eu.endpoint)
        let usTarget = BucketTarget(region: .usEast1, bucket: "cache-use1", endpoint: us.endpoint)
        // A function in eu-central-1: reads eu-west-1 first; writes go home to us-east-1 and are
        // replicated to eu-west-1 in the background.
        let resolver = try RegionalBucketResolver.nearest([usTarget, euTarget], from: .euCentral1, home: .usEast1,
                                                          writes: .everyBucket)
        #expect(resolver.readOrder == [euTarget, usTarget])
        let clock = ManualTestClock()
        let readTimeout = Duration.seconds(4)
        let tier = MultiRegionS3Tier(
            resolver: resolver,
            client: S3Client.Configuration(credentials: .static(accessKeyID: "AKIDTEST", secretAccessKey: "secret"),
                                           maxAttempts: 1, attemptTimeout: .seconds(2), connectTimeout: .seconds(1)),
            configuration: .init(readTimeout: readTimeout, bucketReadTimeout: .milliseconds(1500), writeTimeout: .milliseconds(1500),
                                 replicatesInBackground: true, breaker: .init(failureThreshold: 1, coolDown: .seconds(30))),
            clock: clock)
        defer { tier.shutdown() }
        try await tier.tier(for: euTarget).client.createBucket(euTarget.bucket)
        try await tier.tier(for: usTarget).client.createBucket(usTarget.bucket)

        // Different payloads per bucket show which one served a read.
        let key = try CacheKey(namespace: "fn", name: "state")
        try await tier.tier(for: euTarget).put(Self.entry(key, "from-eu"))
        try await tier.tier(for: usTarget).put(Self.entry(key, "from-us"))
        #expect(try await tier.get(key)?.payload == Array("from-eu".utf8), "the nearest bucket serves")

        // A write goes home and to the replica.
        let written = try CacheKey(namespace: "fn", name: "written")
        try await tier.put(Self.entry(written, "v1"))
        await tier.flush()
        #expect(try await tier.tier(for: usTarget).get(written)?.payload == Array("v1".utf8))
        #expect(try await tier.tier(for: euTarget).get(written)?.payload == Array("v1".utf8))

        // Freeze eu-west-1: the read fails over to us-east-1 within the overall deadline.
        eu.freeze()
        let started = ContinuousClock.now
        #expect(try await tier.get(key)?.payload == Array("from-us".utf8))
        #expect(ContinuousClock.now - started < readTimeout, "failover stays within the read deadline")
        #expect(tier.breaker.state(of: euTarget.description) == .open)

        // Writes still land at home; the replica write to the frozen region fails quietly.
        let later = try CacheKey(namespace: "fn", name: "later")
        try await tier.put(Self.entry(later, "v2"))
        #expect(try await tier.tier(for: usTarget).get(later)?.payload == Array("v2".utf8))
        await tier.flush()

        // During the cool-down the frozen bucket is skipped, not tried.
        let skips = tier.breaker.skips(of: euTarget.description)
        #expect(try await tier.get(key)?.payload == Array("from-us".utf8))
        #expect(tier.breaker.skips(of: euTarget.description) == skips + 1)

        // Cool-down over, still frozen: one probe, which fails and reopens the circuit.
        clock.advance(.seconds(30))
        #expect(try await tier.get(key)?.payload == Array("from-us".utf8))
        #expect(tier.breaker.skips(of: euTarget.description) == skips + 1, "the probe was sent, not skipped")
        #expect(tier.breaker.state(of: euTarget.description) == .open)

        // Back up, but the new cool-down still runs: skipped.
        eu.resume()
        #expect(try await tier.get(key)?.payload == Array("from-us".utf8))
        #expect(tier.breaker.skips(of: euTarget.description) == skips + 2)

        // After the cool-down the probe succeeds: the nearest bucket serves again, circuit closed.
        clock.advance(.seconds(30))
        #expect(try await tier.get(key)?.payload == Array("from-eu".utf8))
        #expect(tier.breaker.state(of: euTarget.description) == .closed)

        // A miss in the nearest bucket falls through to home (an entry only home holds).
        let homeOnly = try CacheKey(namespace: "fn", name: "home-only")
        try await tier.tier(for: usTarget).put(Self.entry(homeOnly, "home"))
        #expect(try await tier.get(homeOnly)?.payload == Array("home".utf8))
        #expect(try await tier.get(try CacheKey(namespace: "fn", name: "nowhere")) == nil)

        // Remove reaches every bucket.
        try await tier.remove(key)
        #expect(try await tier.tier(for: euTarget).get(key) == nil)
        #expect(try await tier.tier(for: usTarget).get(key) == nil)
    }

    @Test("with every bucket's circuit open a read fails fast with storage, naming the skipped buckets")
    func allOpen() async throws {
        let clock = ManualTestClock()
        let target = BucketTarget(region: .euWest1, bucket: "cache-x", endpoint: "http://127.0.0.1:9")
        let tier = MultiRegionS3Tier(
            resolver: FixedBucketResolver(target),
            client: S3Client.Configuration(credentials: .static(accessKeyID: "AKIDTEST", secretAccessKey: "secret"), maxAttempts: 1),
            clock: clock)
        defer { tier.shutdown() }
        let key = try CacheKey(namespace: "fn", name: "x")
        await #expect(throws: TierCacheError.self) { try await tier.get(key) }  // connection refused: opens
        do {
            _ = try await tier.get(key)
            Issue.record("a read with every circuit open succeeded")
        } catch let error as TierCacheError {
            #expect(error.code == .storage)
            #expect(error.message.contains("eu-west-1/cache-x: skipped"))
        }
    }
}
