import Foundation
import Logging
import MetricsTestKit
import Testing
import TierCache
import TierCacheTesting
@testable import TierCacheS3

/// Leases never outlive the load that took them. moto (signature checking on) behind the
/// project's ``FaultProxy``, which fails, stalls or loses the answers a test picks.
@Suite("S3 leases are given back", .enabled(if: Moto.isAvailable, "moto is not running"))
struct S3LeaseReleaseTests {
    static var motoPort: Int {
        get throws {
            let endpoint = try #require(Moto.endpoint)
            return try #require(endpoint.split(separator: ":").last.flatMap { Int($0) })
        }
    }

    /// A tier whose requests go through `proxy` (or straight to moto).
    static func tier(_ bucket: String, through proxy: FaultProxy? = nil, logger: Logger? = nil) throws -> S3Tier {
        let client = try Moto.client(logger: logger) { configuration in
            if let proxy { configuration.endpoint = proxy.baseURL }
            configuration.baseDelay = .milliseconds(5)
        }
        return S3Tier(client: client, configuration: .init(bucket: bucket, prefix: "cache", readTimeout: .seconds(30),
                                                           writeTimeout: .seconds(30)))
    }

    static func coordinator(_ tier: S3Tier, holder: String, logger: Logger? = nil,
                            configure: (inout S3LeaseCoordinator.Configuration) -> Void = { _ in }) -> S3LeaseCoordinator {
        var configuration = S3LeaseCoordinator.Configuration(
            leaseDuration: .seconds(30), waitDeadline: .seconds(3), initialPoll: .milliseconds(20),
            maxPoll: .milliseconds(200), requestTimeout: .seconds(20), holderID: holder)
        configure(&configuration)
        return S3LeaseCoordinator(tier: tier, configuration: configuration,
                                  logger: logger ?? Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    static func bucket(_ stem: String) async throws -> String {
        let bucket = Moto.uniqueBucket(stem)
        try await Moto.client().createBucket(bucket)
        return bucket
    }

    /// The lease object as stored now (read straight from moto).
    static func lease(_ bucket: String, _ key: CacheKey) async throws -> S3LeaseCoordinator.Lease? {
        let direct = try tier(bucket)
        let leaseKey = coordinator(direct, holder: "reader").leaseObjectKey(for: key)
        guard let object = try await direct.client.getObject(bucket: bucket, key: leaseKey) else { return nil }
        return try JSONDecoder().decode(S3LeaseCoordinator.Lease.self, from: Data(object.body))
    }

    /// Polls until the lease is gone, for at most `limit`; whether it went.
    static func leaseGone(_ bucket: String, _ key: CacheKey, within limit: Duration = .seconds(20)) async throws -> Bool {
        let end = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < end {
            if try await lease(bucket, key) == nil { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    let key = try! CacheKey(namespace: "fn", name: "init")

    @Test("the confirmation after a won create fails (503): the lease is released, the next process leads at once")
    func confirmationFailureReleases() async throws {
        let bucket = try await Self.bucket("lease-confirm")
        let proxy = try FaultProxy(upstreamPort: try Self.motoPort)
        defer { proxy.stop() }
        proxy.script { request, _ in request.method == "HEAD" ? .status(503) : nil }
        let holder = Self.coordinator(try Self.tier(bucket, through: proxy), holder: "a") { $0.waitDeadline = .seconds(60) }
        let turn = await holder.begin(key)
        #expect(turn.proceedReason == "error")
        #expect(try await Self.lease(bucket, key) == nil, "the lease was kept")
        let next = await Self.coordinator(try Self.tier(bucket), holder: "b").begin(key)
        #expect(next.isLead)
        await next.release()
    }

    @Test("a caller cancelled while its lease is being confirmed releases it")
    func cancelledConfirmationReleases() async throws {
        let bucket = try await Self.bucket("lease-cancel")
        let proxy = try FaultProxy(upstreamPort: try Self.motoPort)
        defer { proxy.stop() }
        let headSeen = LockedValueBox(false)
        proxy.script { request, _ in
            guard request.method == "HEAD" else { return nil }
            headSeen.withLock { $0 = true }
            return .neverAnswer
        }
        let holder = Self.coordinator(try Self.tier(bucket, through: proxy), holder: "a") { $0.waitDeadline = .seconds(60) }
        let key = self.key
        let begun = Task { await holder.begin(key) }
        let end = ContinuousClock.now.advanced(by: .seconds(20))
        while !headSeen.withLock({ $0 }), ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(10)) }
        try #require(headSeen.withLock { $0 }, "the confirmation never started")
        #expect(try await Self.lease(bucket, key)?.holder == "a")
        begun.cancel()
        #expect(await begun.value.proceedReason == "cancelled")
        #expect(try await Self.lease(bucket, key) == nil, "the lease was kept")
    }

    @Test("a lead turn dropped without a release gives its lease back and stops renewing")
    func droppedTurnReleases() async throws {
        let bucket = try await Self.bucket("lease-dropped")
        let holder = Self.coordinator(try Self.tier(bucket), holder: "a") { $0.leaseDuration = .seconds(3) }
        do {
            let turn = await holder.begin(key)
            try #require(turn.isLead)
            #expect(try await Self.lease(bucket, key)?.holder == "a")
        }
        #expect(try await Self.leaseGone(bucket, key))
    }

    @Test("renewals stop at maxHold: the lease then expires on its own")
    func maxHoldCapsRenewals() async throws {
        let bucket = try await Self.bucket("lease-maxhold")
        let logs = CapturedLogs()
        let holder = Self.coordinator(try Self.tier(bucket), holder: "a", logger: logs.logger()) {
            $0.leaseDuration = .milliseconds(600)  // a renewal every 200 ms
            $0.maxHold = .zero
        }
        let turn = await holder.begin(key)
        try #require(turn.isLead)
        let taken = try #require(try await Self.lease(bucket, key))
        let end = ContinuousClock.now.advanced(by: .seconds(20))
        while !logs.text.contains("no longer renewed"), ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(20)) }
        #expect(logs.text.contains("no longer renewed"))
        #expect(try await Self.lease(bucket, key) == taken, "renewed past maxHold")
        await turn.release()
    }

    @Test("a live lease holding this process's id is its own: taken at once, not waited out")
    func ownLeaseIsTaken() async throws {
        let bucket = try await Self.bucket("lease-own")
        let tier = try Self.tier(bucket)
        // Left behind by an earlier run under the fixed id "worker-1", live for another minute.
        let now = SystemCacheClock().now()
        let lease = S3LeaseCoordinator.Lease(holder: "worker-1", key: key.rendered, acquiredAt: now.millisecondsSince1970,
                                             expiresAt: now.advanced(by: .seconds(60)).millisecondsSince1970)
        let leaseKey = Self.coordinator(tier, holder: "x").leaseObjectKey(for: key)
        try await tier.client.putObject(bucket: bucket, key: leaseKey, body: Array(try JSONEncoder().encode(lease)))

        let other = await Self.coordinator(tier, holder: "worker-2").begin(key)
        #expect(other.proceedReason == "deadline", "another holder's live lease is waited out")

        let same = Self.coordinator(tier, holder: "worker-1")
        let turn = await same.begin(key)
        #expect(turn.isLead)
        // ... but not twice in one process: a second load here waits for the first.
        #expect(await same.begin(key).proceedReason == "deadline")
        await turn.release()
        #expect(try await Self.lease(bucket, key) == nil)
    }

    @Test("the answer to the lease's create is lost: the process still leads, and releases")
    func lostCreateAnswerLeads() async throws {
        let bucket = try await Self.bucket("lease-lost")
        let proxy = try FaultProxy(upstreamPort: try Self.motoPort)
        defer { proxy.stop() }
        proxy.enqueue(.loseAnswer)
        let holder = Self.coordinator(try Self.tier(bucket, through: proxy), holder: "a")
        let turn = await holder.begin(key)
        #expect(turn.isLead)
        await turn.release()
        #expect(try await Self.lease(bucket, key) == nil)
    }
}
