#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
public import TierCache

/// Distributed single-flight over S3: a lease object next to each entry decides which of many
/// processes (Lambda environments started by one deploy or burst) runs the loader for a key that
/// missed everywhere; the others wait for the entry instead of building it too.
///
/// - Taking the lease: `PUT <entry key>.lease` with `If-None-Match: *`, holding the holder's id
///   and an expiry as JSON. S3 lets exactly one such PUT succeed; the others get 412.
/// - Waiting: a process that did not get the lease polls, with exponential backoff and full
///   jitter, a HEAD of the entry (fresh per its `x-amz-meta-fresh-until`) and a GET of the lease.
///   The entry fresh: ``LoadTurn/appeared``. The lease gone (released after a failed load): it
///   tries to take it. The lease expired (its holder died): it takes it over with
///   `PUT If-Match: <the lease's ETag>`; S3 lets one taker win, the others get 412.
///   ``Configuration/waitDeadline`` passed: ``LoadTurn/proceed(reason:)`` with `deadline`, and the
///   caller runs its loader anyway. Requests made while waiting end at that deadline too; only
///   the first attempt (and the re-check after winning) may take up to
///   ``Configuration/requestTimeout`` on its own.
/// - Before building, a process that got the lease looks at the entry once more (HEAD): a
///   holder that stored it and released its lease just before this process's lease was taken
///   leaves nothing to build, and the new lease is released at once (``LoadTurn/appeared``).
///   It also reads the lease's ETag back (HEAD) and leads only if it is its own: a store that
///   does not serialize conditional writes (moto) can let two creates succeed, and the one whose
///   lease was overwritten then waits like any other loser.
/// - Holding: while the loader runs, the lease is renewed (`PUT If-Match`) every third of
///   ``Configuration/leaseDuration``, so a long build keeps it and a crashed holder costs at most
///   one lease duration. Renewals stop with the load: at its release, when its turn is dropped
///   without one (the lease is then released), or after ``Configuration/maxHold``. Releasing
///   deletes it with `If-Match`, so a lease taken over by another process is never deleted by the
///   old holder; it runs in a task of its own, so a cancelled caller still releases.
/// - Every way out of ``begin(_:)`` that does not lead releases what this process wrote: the
///   entry appeared, the lease read back is another holder's, a confirmation request failed or
///   timed out, the task was cancelled. A lease write whose answer never came (timeout,
///   cancellation, 5xx) is followed by a read of the lease, deleted when its holder is this
///   process. A live lease whose holder id is this coordinator's and that no load here leads with
///   is taken at once (`If-Match`) instead of waited out.
/// - Failures: an S3 error while taking or reading the lease is ``LoadTurn/proceed(reason:)`` with
///   `error` (logged); renewal and release failures are logged and the lease is left to expire.
///   Nothing is thrown.
///
/// Expiry compares the lease's expiry (the holder's wall clock) with this process's wall clock
/// plus ``Configuration/clockSkewTolerance``; docs/stampede.md discusses the assumption.
/// Lease objects live under the tier's prefix, so the tier's lifecycle rule
/// (``S3Tier/applyExpirationLifecycle(days:dryRun:)``) expires leftover leases as well.
public final class S3LeaseCoordinator: LoadCoordinator {
    /// Lease settings; every one has a default.
    public struct Configuration: Sendable {
        /// How long a lease holds without renewal: what a crashed holder costs the others.
        public var leaseDuration: Duration
        /// How long a process without the lease waits for the entry before it runs its loader
        /// anyway. Protection never delays a cold start by more than this.
        public var waitDeadline: Duration
        /// The first poll interval; doubled after every poll (full jitter) up to ``maxPoll``.
        public var initialPoll: Duration
        /// The longest poll interval.
        public var maxPoll: Duration
        /// How far this process's clock may be ahead of the holder's: a lease counts as expired
        /// only this long after the expiry it holds.
        public var clockSkewTolerance: Duration
        /// Whether the holder renews its lease while its loader runs.
        public var renews: Bool
        /// The deadline of one S3 request (retries included).
        public var requestTimeout: Duration
        /// Appended to the entry's object key to name the lease object.
        public var suffix: String
        /// Who holds a lease taken by this coordinator (in the lease's JSON and in logs). A live
        /// lease with this id that no load of this coordinator holds is taken as this process's
        /// own (left behind by a write whose answer was lost, or by an earlier run under a fixed
        /// id), without waiting for it to expire.
        public var holderID: String
        /// How long a holder may keep its lease by renewing it. A loader still running after this
        /// stops renewing, so its lease expires one ``leaseDuration`` later and another process
        /// may take over. Default 15 minutes, Lambda's longest invocation.
        public var maxHold: Duration

        /// Creates a configuration.
        public init(
            leaseDuration: Duration = .seconds(30),
            waitDeadline: Duration = .seconds(10),
            initialPoll: Duration = .milliseconds(50),
            maxPoll: Duration = .milliseconds(500),
            clockSkewTolerance: Duration = .milliseconds(500),
            renews: Bool = true,
            requestTimeout: Duration = .seconds(2),
            suffix: String = ".lease",
            holderID: String = S3LeaseCoordinator.randomHolderID(),
            maxHold: Duration = .seconds(15 * 60)
        ) {
            self.leaseDuration = leaseDuration
            self.waitDeadline = waitDeadline
            self.initialPoll = initialPoll
            self.maxPoll = maxPoll
            self.clockSkewTolerance = clockSkewTolerance
            self.renews = renews
            self.requestTimeout = requestTimeout
            self.suffix = suffix
            self.holderID = holderID
            self.maxHold = maxHold
        }
    }

    /// A lease as stored: the object's JSON body.
    public struct Lease: Codable, Sendable, Hashable {
        /// Who holds it.
        public var holder: String
        /// The entry's rendered key, for operators.
        public var key: String
        /// When it was taken, in milliseconds since 1970 (the holder's clock).
        public var acquiredAt: Int64
        /// When it expires unless renewed, in milliseconds since 1970 (the holder's clock).
        public var expiresAt: Int64
    }

    /// The settings in use.
    public let configuration: Configuration
    /// The tier whose entries the leases protect.
    public let tier: S3Tier
    private let clock: any CacheClock
    private let logger: Logger
    /// Lease keys a load of this coordinator leads with right now (with how many loads).
    private let leading = LockedValueBox<[String: Int]>([:])

    /// Creates a coordinator for the entries of `tier` (same bucket, client and prefix).
    /// - Parameters:
    ///   - clock: the wall clock lease expiries are written and compared with.
    ///   - logger: `debug` per lease taken, lost or released; `notice` for takeovers; `warning`
    ///     for S3 failures.
    public init(tier: S3Tier, configuration: Configuration = .init(), clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.tier = tier
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    /// A random holder id (16 hex digits).
    public static func randomHolderID() -> String {
        let text = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }

    /// The lease object's key for `key`: the entry's object key plus the suffix, or the
    /// fingerprint form when that would pass S3's key limit.
    public func leaseObjectKey(for key: CacheKey) -> String {
        let entryKey = tier.objectKey(for: key)
        if entryKey.utf8.count + configuration.suffix.utf8.count <= S3Tier.maxObjectKeyBytes {
            return entryKey + configuration.suffix
        }
        let prefix = tier.configuration.prefix
        return (prefix.isEmpty ? "" : prefix + "/") + key.namespace + "/" + key.fingerprint + configuration.suffix
    }

    // MARK: - LoadCoordinator

    /// Takes the lease for `key`, or waits for the entry; see the type's documentation.
    public func begin(_ key: CacheKey) async -> LoadTurn {
        let leaseKey = leaseObjectKey(for: key)
        let deadline = ContinuousClock.now.advanced(by: configuration.waitDeadline)
        var poll = configuration.initialPoll
        var firstRound = true
        while true {
            do {
                // Requests while waiting end at the wait deadline; the first attempt gets its own.
                let end = firstRound ? nil : deadline
                if !firstRound, try await entryIsFresh(key, until: end) { return .appeared }
                if let taken = try await tryLease(key, leaseKey: leaseKey, create: firstRound, until: end) {
                    if let turn = try await confirm(key, leaseKey: leaseKey, taken: taken) { return turn }
                }
            } catch {
                if Task.isCancelled { return .proceed(reason: "cancelled") }
                if ContinuousClock.now >= deadline {
                    logger.notice("lease wait deadline passed; loading without a lease", metadata: [
                        "lease": "\(leaseKey)", "deadline": "\(configuration.waitDeadline)",
                    ])
                    return .proceed(reason: "deadline")
                }
                logger.warning("lease store failed; loading without a lease", metadata: [
                    "lease": "\(leaseKey)", "error": "\(error)",
                ])
                return .proceed(reason: "error")
            }
            firstRound = false
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero {
                logger.notice("lease wait deadline passed; loading without a lease", metadata: [
                    "lease": "\(leaseKey)", "deadline": "\(configuration.waitDeadline)",
                ])
                return .proceed(reason: "deadline")
            }
            let jittered = Duration.nanoseconds(Int64.random(in: 0...max(1, poll.nanoseconds)))
            do {
                try await Task.sleep(for: min(jittered, remaining))
            } catch {
                return .proceed(reason: "cancelled")
            }
            poll = min(poll * 2, configuration.maxPoll)
        }
    }

    /// A lease this process wrote and does not lead with yet.
    private struct Taken {
        var etag: String
        var takeover: Bool
    }

    /// Decides whether a lease just written leads: the entry may have appeared meanwhile, and a
    /// store that does not serialize conditional writes may have let another holder's lease
    /// replace it. Every way out that does not lead (the entry appeared, the lease was lost, a
    /// request failed or the task was cancelled) releases the lease before returning or throwing.
    /// - Returns: the lead turn, ``LoadTurn/appeared``, or nil when another holder's lease is
    ///   stored (keep waiting).
    private func confirm(_ key: CacheKey, leaseKey: String, taken: Taken) async throws(S3Error) -> LoadTurn? {
        do throws(S3Error) {
            // The previous holder may have stored the entry and released its lease between this
            // process's miss and its lease: look once more before building.
            if try await entryIsFresh(key, until: nil) {
                await release(leaseKey: leaseKey, etag: taken.etag)
                return .appeared
            }
            // S3 serializes conditional writes, but not every S3-compatible store does (moto
            // checks and writes without a lock, so two PUTs can both succeed): lead only if the
            // lease read back is the one this process wrote. Releasing a lost one is a conditional
            // DELETE on this process's ETag, which leaves the winner's lease alone.
            if try await leaseETag(leaseKey, until: nil) == taken.etag {
                return lead(key, leaseKey: leaseKey, etag: taken.etag, takeover: taken.takeover)
            }
        } catch {
            logger.debug("lease taken but not confirmed; releasing it", metadata: ["lease": "\(leaseKey)", "error": "\(error)"])
            await release(leaseKey: leaseKey, etag: taken.etag)
            throw error
        }
        logger.notice("lease write succeeded but another holder's lease is stored; waiting", metadata: [
            "lease": "\(leaseKey)", "holder": "\(configuration.holderID)",
        ])
        await release(leaseKey: leaseKey, etag: taken.etag)
        return nil
    }

    /// One attempt at the lease: create it when absent, take it over when expired or when it is
    /// this process's own (same holder id) and no load of this coordinator holds it.
    /// - Returns: the ETag of the lease written, or nil when another process holds a live lease.
    private func tryLease(_ key: CacheKey, leaseKey: String, create: Bool, until end: ContinuousClock.Instant?)
        async throws(S3Error) -> Taken?
    {
        if create, let etag = try await write(key, leaseKey: leaseKey, ifNoneMatch: "*", until: end) {
            return Taken(etag: etag, takeover: false)
        }
        guard let current = try await tier.client.getObject(bucket: tier.configuration.bucket, key: leaseKey,
                                                             deadline: requestDeadline(until: end)) else {
            // Released (a failed load) or expired away: try to take it.
            if let etag = try await write(key, leaseKey: leaseKey, ifNoneMatch: "*", until: end) {
                return Taken(etag: etag, takeover: false)
            }
            return nil
        }
        guard let etag = current.etag else { return nil }
        let lease = try? JSONDecoder().decode(Lease.self, from: Data(current.body))
        // An unreadable lease is treated as expired: no process could ever release it otherwise.
        if let lease, clock.now() < WallTime(millisecondsSince1970: lease.expiresAt).advanced(by: configuration.clockSkewTolerance) {
            // A live lease of this holder that no load here holds was left behind (an answer lost
            // on the way back, a restart under a fixed holder id): it is this process's to take.
            guard lease.holder == configuration.holderID, !isLeading(leaseKey) else { return nil }
        }
        guard let newETag = try await write(key, leaseKey: leaseKey, ifMatch: etag, until: end) else { return nil }
        logger.notice("took over a lease", metadata: [
            "lease": "\(leaseKey)", "previousHolder": "\(lease?.holder ?? "unreadable")", "holder": "\(configuration.holderID)",
        ])
        return Taken(etag: newETag, takeover: true)
    }

    /// A conditional PUT of a fresh lease body.
    /// - Returns: the new ETag, or nil when the condition failed (another process won).
    private func write(_ key: CacheKey, leaseKey: String, ifNoneMatch: String? = nil, ifMatch: String? = nil,
                       until end: ContinuousClock.Instant? = nil) async throws(S3Error) -> String?
    {
        let now = clock.now()
        let lease = Lease(holder: configuration.holderID, key: key.rendered, acquiredAt: now.millisecondsSince1970,
                          expiresAt: now.advanced(by: configuration.leaseDuration).millisecondsSince1970)
        var options = S3PutOptions(contentType: "application/json", integrity: .none, ifNoneMatch: ifNoneMatch)
        options.ifMatch = ifMatch
        options.metadata = ["lease-holder": configuration.holderID]
        let body = (try? JSONEncoder().encode(lease)).map { Array($0) } ?? []
        do throws(S3Error) {
            let result = try await tier.client.putObject(bucket: tier.configuration.bucket, key: leaseKey, body: body,
                                                         options: options, deadline: requestDeadline(until: end))
            guard let etag = result.etag else {
                throw S3Error(.malformedResponse, "conditional PUT answered without an ETag")
            }
            return etag
        } catch where Self.lostRace(error) {
            return nil
        } catch {
            // No answer (timeout, cancellation, a broken connection, 5xx): the write may have
            // been applied. Unless a load here leads with it, a lease of this holder is removed.
            if error.status.map({ $0 >= 500 }) ?? true { await releaseIfOwn(leaseKey: leaseKey) }
            throw error
        }
    }

    /// 412 (the condition failed), 409 (S3's `ConditionalRequestConflict`: a concurrent
    /// conditional write), or 404 on `If-Match` (the lease was deleted meanwhile): another
    /// process got there first.
    static func lostRace(_ error: S3Error) -> Bool {
        error.code == .preconditionFailed || error.status == 412 || error.status == 409 || error.code == .noSuchKey
    }

    /// The ETag of the lease object as stored now (HEAD); nil when there is none.
    private func leaseETag(_ leaseKey: String, until end: ContinuousClock.Instant?) async throws(S3Error) -> String? {
        try await tier.client.headObject(bucket: tier.configuration.bucket, key: leaseKey, deadline: requestDeadline(until: end))?.etag
    }

    /// Whether the entry's object exists and is fresh (HEAD, metadata only).
    private func entryIsFresh(_ key: CacheKey, until end: ContinuousClock.Instant?) async throws(S3Error) -> Bool {
        let head = try await tier.client.headObject(bucket: tier.configuration.bucket, key: tier.objectKey(for: key),
                                                    deadline: requestDeadline(until: end))
        guard let head, let expiry = S3Tier.expiry(objectKey: "", metadata: head.metadata, size: head.contentLength) else {
            return false
        }
        return clock.now() < expiry.freshUntil
    }

    /// One request's deadline: ``Configuration/requestTimeout`` from now, cut at `end`.
    private func requestDeadline(until end: ContinuousClock.Instant? = nil) -> ContinuousClock.Instant {
        let own = ContinuousClock.now.advanced(by: configuration.requestTimeout)
        return end.map { min($0, own) } ?? own
    }

    // MARK: - Holding

    /// Starts renewing a confirmed lease and returns the turn that releases it.
    ///
    /// Renewals are capped by the load itself: they stop when the turn is released, when the turn
    /// is dropped without a release (its guard then releases the lease), or after
    /// ``Configuration/maxHold``, whichever comes first.
    private func lead(_ key: CacheKey, leaseKey: String, etag: String, takeover: Bool) -> LoadTurn {
        logger.debug("lease taken", metadata: ["lease": "\(leaseKey)", "holder": "\(configuration.holderID)", "takeover": "\(takeover)"])
        leading.withLock { $0[leaseKey, default: 0] += 1 }
        let held = HeldLease(etag: etag)
        let renewal: Task<Void, Never>? = configuration.renews ? Task { await self.renew(key, leaseKey: leaseKey, held: held) } : nil
        let guardian = LeaseGuard { [self] in
            renewal?.cancel()
            await renewal?.value
            if let etag = held.etag { await release(leaseKey: leaseKey, etag: etag) }
            leading.withLock { leading in
                leading[leaseKey, default: 1] -= 1
                if leading[leaseKey] == 0 { leading.removeValue(forKey: leaseKey) }
            }
        }
        return .lead { await guardian.release() }
    }

    private func isLeading(_ leaseKey: String) -> Bool {
        leading.withLock { $0[leaseKey] != nil }
    }

    /// Renews the lease every third of its duration until cancelled, lost, or held for
    /// ``Configuration/maxHold``.
    private func renew(_ key: CacheKey, leaseKey: String, held: HeldLease) async {
        let interval = configuration.leaseDuration / 3
        let stop = ContinuousClock.now.advanced(by: configuration.maxHold)
        while true {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            guard let etag = held.etag else { return }
            guard ContinuousClock.now < stop else {
                logger.warning("lease held for maxHold; no longer renewed, it expires on its own", metadata: [
                    "lease": "\(leaseKey)", "maxHold": "\(configuration.maxHold)",
                ])
                return
            }
            // Unstructured, so that a release cancelling this loop does not abort a renewal whose
            // answer would then be unknown (and the lease's ETag with it).
            let outcome = await Task { () -> Result<String?, S3Error> in
                do throws(S3Error) {
                    return .success(try await self.write(key, leaseKey: leaseKey, ifMatch: etag))
                } catch {
                    return .failure(error)
                }
            }.value
            switch outcome {
            case .success(let newETag?):
                held.update(newETag)
            case .success(nil):
                held.update(nil)
                logger.warning("lease lost while loading: another process took it over", metadata: ["lease": "\(leaseKey)"])
                return
            case .failure(let error):
                logger.warning("lease renewal failed; will retry", metadata: ["lease": "\(leaseKey)", "error": "\(error)"])
            }
        }
    }

    /// Deletes the lease if it still has `etag`. Runs in a task of its own, so that a cancelled
    /// caller still gives its lease back (within ``Configuration/requestTimeout``).
    private func release(leaseKey: String, etag: String) async {
        await Task {
            do throws(S3Error) {
                try await tier.client.deleteObject(bucket: tier.configuration.bucket, key: leaseKey, ifMatch: etag,
                                                   deadline: requestDeadline())
                logger.debug("lease released", metadata: ["lease": "\(leaseKey)"])
            } catch where Self.lostRace(error) {
                logger.debug("lease not released: another process holds it now", metadata: ["lease": "\(leaseKey)"])
            } catch {
                logger.warning("lease release failed; it expires on its own", metadata: ["lease": "\(leaseKey)", "error": "\(error)"])
            }
        }.value
    }

    /// Deletes the lease when its holder is this process and no load here leads with it: the
    /// clean-up after a lease write whose answer never came.
    private func releaseIfOwn(leaseKey: String) async {
        guard !isLeading(leaseKey) else { return }
        let current: S3Object? = await Task {
            try? await tier.client.getObject(bucket: tier.configuration.bucket, key: leaseKey, deadline: requestDeadline())
        }.value
        guard let current, let etag = current.etag,
              let lease = try? JSONDecoder().decode(Lease.self, from: Data(current.body)), lease.holder == configuration.holderID,
              !isLeading(leaseKey)
        else { return }
        await release(leaseKey: leaseKey, etag: etag)
    }
}

/// Releases a lead turn's lease once: when the turn's release is called, or, if the turn is
/// dropped without one (a caller that forgot, a path that threw), when the last copy goes.
final class LeaseGuard: Sendable {
    private let action: LockedValueBox<(@Sendable () async -> Void)?>

    init(_ action: @escaping @Sendable () async -> Void) { self.action = LockedValueBox(action) }

    func release() async {
        let action = self.action.withLock { action in
            defer { action = nil }
            return action
        }
        await action?()
    }

    deinit {
        if let action = action.withLock({ $0 }) { Task { await action() } }
    }
}

/// The ETag of a lease this process holds; nil once lost.
final class HeldLease: Sendable {
    private let box: LockedValueBox<String?>

    init(etag: String) { box = LockedValueBox(etag) }

    var etag: String? { box.withLock { $0 } }

    func update(_ etag: String?) { box.withLock { $0 = etag } }
}
