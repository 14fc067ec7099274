import CoreMetrics
import Logging
import Metrics

/// When ``Cache/getOrLoad(_:ttl:staleFor:loader:)`` refreshes an entry before it expires
/// (``Cache/Configuration/refreshAhead``).
///
/// A long-lived process serves a hot entry until it expires, then one unlucky caller pays the
/// rebuild. With this policy, a fresh hit (memory or a byte tier) on an entry past ``fraction``
/// of its lifetime (fresh-until minus created-at) is returned at once and starts a refresh in the
/// background: the loader runs again and the new value goes into memory and every byte tier.
///
/// - At most one refresh runs per key, and it holds the key's single-flight slot: a caller that
///   misses while it runs shares its result instead of running the loader a second time. Hits
///   never wait for it (a caller finding no value in memory first reads the byte tiers).
/// - A refresh that fails keeps the current value until its normal expiry, then the usual
///   fail-safe applies. It is counted (``TierCacheMetrics/refreshes`` with `result=error`, and as
///   a loader error) and logged at warning; the key is not tried again before ``retryDelay`` has
///   passed (a fixed delay, never past the entry's fresh-until time), so a failing loader is
///   not run on every hit.
/// - Refreshes in flight are awaited by ``Cache/flush(deadline:)`` before it flushes write-behind
///   writes, within its deadline. On Lambda the runtime's flush before each response does the same
///   for its caches, so a refresh started by a read during an invocation runs in that invocation,
///   in parallel with the handler, bounded by the flush deadline (nothing runs while the
///   environment is frozen). In a long-running server nothing needs to await them.
/// - ``Cache/get(_:allowStale:)`` has no loader and never starts a refresh.
public struct RefreshAheadPolicy: Sendable, Hashable {
    /// The share of an entry's lifetime after which a hit starts a refresh, from 0 to 1 (values
    /// outside are clamped; 1 never refreshes ahead). Default 0.8: an entry fresh for 15 minutes
    /// is refreshed by the first read after 12.
    public var fraction: Double
    /// How long after a failed refresh the key may be refreshed again. Default 30 s.
    public var retryDelay: Duration

    /// Creates a policy.
    /// - Parameters:
    ///   - fraction: the share of the lifetime after which a hit starts a refresh (0...1).
    ///   - retryDelay: the back-off after a failed refresh.
    public init(fraction: Double = 0.8, retryDelay: Duration = .seconds(30)) {
        self.fraction = fraction
        self.retryDelay = retryDelay
    }

    /// The instant from which a hit on an entry created at `createdAt` and fresh until
    /// `freshUntil` starts a refresh: `createdAt + fraction × lifetime`, never after `freshUntil`.
    public func refreshPoint(createdAt: WallTime, freshUntil: WallTime) -> WallTime {
        let lifetime = freshUntil.millisecondsSince1970 &- createdAt.millisecondsSince1970
        guard lifetime > 0, fraction < 1 else { return freshUntil }
        let share = fraction > 0 ? Double(lifetime) * fraction : 0
        return min(createdAt.advanced(by: .milliseconds(Int64(share))), freshUntil)
    }
}

extension TierCacheMetrics {
    /// Counter: refresh-ahead runs (``RefreshAheadPolicy``). Dimensions `cache`, `result` (`ok`,
    /// `error`).
    public static let refreshes = "tiercache_refreshes_total"
}

/// The refreshes of one cache: those in flight (for flushes to await) and the keys backing off
/// after a failure.
final class RefreshTracker<Value: Sendable>: Sendable {
    struct Running {
        var id: UInt64
        /// Nil for the instant between ``reserve(_:now:)`` and ``started(_:id:task:)``.
        var task: Task<CacheResult<Value>, any Error>?
        /// An earlier wait gave up on it: per-response flushes do not wait for it again.
        var abandoned: Bool
    }

    struct State {
        var nextID: UInt64 = 0
        var running: [CacheKey: Running] = [:]
        /// No refresh of the key before then: after a failure, the retry delay; after a success,
        /// the new entry's refresh point (a tier written behind may still return the old entry).
        var notBefore: [CacheKey: WallTime] = [:]
    }

    let state = LockedValueBox(State())
    let succeeded: Counter
    let failed: Counter

    init(cache: String, factory: any MetricsFactory) {
        succeeded = Counter(label: TierCacheMetrics.refreshes, dimensions: [("cache", cache), ("result", "ok")], factory: factory)
        failed = Counter(label: TierCacheMetrics.refreshes, dimensions: [("cache", cache), ("result", "error")], factory: factory)
    }

    func isRunning(_ key: CacheKey) -> Bool {
        state.withLock { $0.running[key] != nil }
    }

    var count: Int { state.withLock { $0.running.count } }

    /// Records a refresh about to start; nil when one runs already or the key is backing off.
    func reserve(_ key: CacheKey, now: WallTime) -> UInt64? {
        state.withLock { state in
            guard state.running[key] == nil else { return nil }
            if let after = state.notBefore[key] {
                if now < after { return nil }
                state.notBefore[key] = nil
            }
            let id = state.nextID
            state.nextID += 1
            state.running[key] = Running(id: id, task: nil, abandoned: false)
            return id
        }
    }

    /// Attaches the refresh's task, unless it has finished already.
    func started(_ key: CacheKey, id: UInt64, task: Task<CacheResult<Value>, any Error>) {
        state.withLock { state in
            if state.running[key]?.id == id { state.running[key]?.task = task }
        }
    }

    func finished(_ key: CacheKey, id: UInt64, notBefore: WallTime, now: WallTime) {
        state.withLock { state in
            if state.running[key]?.id == id { state.running[key] = nil }
            // Keys that are never read again would stay; drop the passed instants now and then.
            if state.notBefore.count >= 1024 { state.notBefore = state.notBefore.filter { now < $0.value } }
            state.notBefore[key] = notBefore
        }
    }

    /// Awaits the refreshes in flight, up to `deadline`; those still running are marked abandoned.
    func wait(deadline: Duration, includeAbandoned: Bool) async -> (completed: Int, pending: Int) {
        let waited = state.withLock { state in
            state.running.values.filter { includeAbandoned || !$0.abandoned }.compactMap { running in running.task.map { (running.id, $0) } }
        }
        guard !waited.isEmpty else { return (0, 0) }
        let tasks = waited.map(\.1)
        _ = try? await withDeadline(deadline) {
            for task in tasks { _ = try? await task.value }
        }
        let ids = Set(waited.map(\.0))
        return state.withLock { state in
            var pending = 0
            for (key, running) in state.running where ids.contains(running.id) {
                state.running[key]?.abandoned = true
                pending += 1
            }
            return (ids.count - pending, pending)
        }
    }
}

extension Cache {
    /// Refreshes in flight (``RefreshAheadPolicy``): started and not yet finished.
    public var refreshesInFlight: Int { refreshes.count }

    /// The instant from which a hit refreshes an entry, per the configured policy (`freshUntil`
    /// without one).
    package func refreshPoint(createdAt: WallTime, freshUntil: WallTime) -> WallTime {
        configuration.refreshAhead?.refreshPoint(createdAt: createdAt, freshUntil: freshUntil) ?? freshUntil
    }

    /// Puts a value into the memory tier with its refresh point (for values that bypass
    /// ``getOrLoad(_:ttl:staleFor:loader:)``, such as a Lambda warm set's).
    package func keepInMemory(_ key: CacheKey, value: Value, weight: Int, createdAt: WallTime, freshUntil: WallTime, staleUntil: WallTime) {
        memory?.set(key, value: value, weight: weight, freshUntil: freshUntil, staleUntil: staleUntil,
                    refreshAt: refreshPoint(createdAt: createdAt, freshUntil: freshUntil))
    }

    /// Awaits refreshes in flight up to `deadline`.
    /// - Parameter includeAbandoned: also wait for refreshes an earlier wait gave up on.
    /// - Returns: how many finished during the wait and how many still run (left to the background).
    @discardableResult
    package func awaitRefreshes(deadline: Duration, includeAbandoned: Bool) async -> (completed: Int, pending: Int) {
        let result = await refreshes.wait(deadline: deadline, includeAbandoned: includeAbandoned)
        if result.pending > 0 {
            logger.warning("flush deadline passed with refreshes still running; they go on in the background", metadata: [
                "pending": "\(result.pending)", "deadline": "\(deadline)",
            ])
        }
        return result
    }

    /// Starts a background refresh of `key`, whose fresh `hit` is past its refresh point, unless a
    /// load or a refresh of the key is in flight or the key is backing off after a failure.
    @usableFromInline
    func startRefresh(
        _ key: CacheKey, after hit: CacheResult<Value>, ttl: Duration?, staleFor: Duration?,
        loader: @escaping @Sendable () async throws -> Value
    ) {
        guard let policy = configuration.refreshAhead else { return }
        let now = configuration.clock.now()
        guard now < hit.freshUntil else { return }
        inflight.withLock { inflight in
            guard inflight[key] == nil, let id = refreshes.reserve(key, now: now) else { return }
            // Until the refresh ends, memory hits on the entry need not look here again.
            memory?.postponeRefresh(key, to: hit.freshUntil, ifFreshUntil: hit.freshUntil)
            let task = Task {
                defer { _ = self.inflight.withLock { $0.removeValue(forKey: key) } }
                return try await self.refresh(key, id: id, replacing: hit, policy: policy, ttl: ttl, staleFor: staleFor, loader: loader)
            }
            inflight[key] = task
            refreshes.started(key, id: id, task: task)
        }
    }

    /// The refresh body: the loader, then every tier; on failure the current value stays.
    private func refresh(
        _ key: CacheKey, id: UInt64, replacing current: CacheResult<Value>, policy: RefreshAheadPolicy,
        ttl: Duration?, staleFor: Duration?, loader: @Sendable () async throws -> Value
    ) async throws -> CacheResult<Value> {
        let value: Value
        do {
            value = try await runLoader(loader)
        } catch {
            backOff(key, id: id, current: current, policy: policy, error: error)
            let now = configuration.clock.now()
            // Callers that joined the flight found no fresh value: they get the current one, or
            // the error once it is past its stale-until time.
            guard now < current.staleUntil else { throw error }
            var fallback = current
            fallback.isStale = now >= current.freshUntil
            if fallback.isStale { metrics.staleServes.increment() }
            return fallback
        }
        let now = configuration.clock.now()
        let times = expiry(ttl: ttl, staleFor: staleFor, now: now)
        do {
            try await store(key, value: value, freshUntil: times.fresh, staleUntil: times.stale)
            refreshes.succeeded.increment()
            logger.debug("refreshed ahead of expiry", metadata: ["key": "\(key)", "freshUntil": "\(times.fresh)"])
            refreshes.finished(key, id: id, notBefore: policy.refreshPoint(createdAt: now, freshUntil: times.fresh), now: now)
        } catch {
            // The joined callers still get the new value; the tiers keep the current one.
            backOff(key, id: id, current: current, policy: policy, error: error)
        }
        return CacheResult(value: value, source: .loader, isStale: false, freshUntil: times.fresh, staleUntil: times.stale)
    }

    /// Counts and logs a failed refresh and sets the key's back-off.
    private func backOff(_ key: CacheKey, id: UInt64, current: CacheResult<Value>, policy: RefreshAheadPolicy, error: any Error) {
        refreshes.failed.increment()
        let now = configuration.clock.now()
        let retryAt = min(now.advanced(by: max(policy.retryDelay, .zero)), current.freshUntil)
        memory?.postponeRefresh(key, to: retryAt, ifFreshUntil: current.freshUntil)
        // Logged before `finished`, which wakes a flush waiting for this refresh: what a flush
        // waited for is complete, its log line included.
        logger.warning("refresh failed; the current value stays until it expires", metadata: [
            "key": "\(key)", "freshUntil": "\(current.freshUntil)", "retryAt": "\(retryAt)", "error": "\(error)",
        ])
        refreshes.finished(key, id: id, notBefore: retryAt, now: now)
    }

    /// The result of the flight `task` for `key`, as ``getOrLoad(_:ttl:staleFor:loader:)``
    /// returns it: when a refresh holds the flight, a fresh entry in the byte tiers is the answer
    /// (a hit never waits for a refresh); a fresh tier hit past its refresh point starts one.
    func result(
        of task: Task<CacheResult<Value>, any Error>, for key: CacheKey, ttl: Duration?, staleFor: Duration?,
        loader: @escaping @Sendable () async throws -> Value
    ) async throws -> CacheResult<Value> {
        guard configuration.refreshAhead != nil else { return try await task.value }
        if refreshes.isRunning(key), let found = await readChain(key, now: configuration.clock.now()), !found.isStale {
            return found
        }
        let result = try await task.value
        if !result.isStale, configuration.clock.now() >= result.refreshAt {
            startRefresh(key, after: result, ttl: ttl, staleFor: staleFor, loader: loader)
        }
        return result
    }
}
