public import Logging
public import TierCache

/// Caches temporary credentials and refreshes them in the background before they expire, one
/// refresh at a time, backing off after failures.
///
/// - While the cached credentials are valid they are returned at once, without waiting for
///   anything. Once less than `refreshBefore` of their life is left, the first caller starts a
///   refresh in the background and still gets the cached credentials; so do callers after it,
///   until the refresh lands.
/// - Only a caller with nothing valid to use (the first call, or after expiry) waits for a
///   refresh, and only until its deadline (``credentials(deadline:)``): the refresh itself is not
///   cancelled when a waiter gives up, so the next caller finds it done or joins it.
/// - A failed refresh is logged (never with a secret) and retried no sooner than `retryBackoff`
///   later, doubling with each failure in a row up to `maxRetryBackoff`. While the cached
///   credentials are still valid they keep being served; without valid credentials, a call
///   inside the backoff throws the last failure at once instead of asking the source again.
public actor RefreshingCredentialProvider: AWSCredentialProvider {
    /// Fetches fresh credentials.
    public typealias Fetch = @Sendable () async throws(TierCacheError) -> AWSCredentials
    typealias Outcome = Result<AWSCredentials, TierCacheError>

    private let fetch: Fetch
    private let refreshBefore: Duration
    private let retryBackoff: Duration
    private let maxRetryBackoff: Duration
    private let clock: any CacheClock
    private let logger: Logger
    private var cached: AWSCredentials?
    private var inFlight: Task<Outcome, Never>?
    private var failuresInARow = 0
    private var lastFailure: TierCacheError?
    /// No refresh starts before this wall time (the backoff after a failure).
    private var retryAfter: WallTime?
    /// How many times the source was fetched (for tests and diagnostics).
    public private(set) var fetchCount = 0

    /// Creates a refreshing provider.
    /// - Parameters:
    ///   - refreshBefore: refresh when less than this is left before expiry (default 5 minutes,
    ///     as the AWS SDKs do).
    ///   - retryBackoff: the wait after a failed refresh before the next one (default 1 second),
    ///     doubled after each further failure.
    ///   - maxRetryBackoff: the cap on that wait (default 30 seconds).
    ///   - clock: the wall clock that expiry and backoff are measured with.
    ///   - fetch: gets fresh credentials (called by one task at a time); it should bound its own
    ///     time (the built-in sources give each request a timeout).
    public init(refreshBefore: Duration = .seconds(300), retryBackoff: Duration = .seconds(1),
                maxRetryBackoff: Duration = .seconds(30), clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() }),
                fetch: @escaping Fetch) {
        self.fetch = fetch
        self.refreshBefore = refreshBefore
        self.retryBackoff = max(retryBackoff, .zero)
        self.maxRetryBackoff = max(maxRetryBackoff, .zero)
        self.clock = clock
        self.logger = logger
    }

    /// The cached credentials while valid (starting a background refresh when they are near
    /// expiry); otherwise waits for a refresh, without a deadline.
    /// - Throws: the refresh's error when there are no valid credentials to fall back on.
    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        try await resolve(deadline: nil)
    }

    /// As ``credentials()``, but a caller that has to wait for a refresh gives up at `deadline`
    /// (``TierCacheError/Code/timeout``); the refresh goes on in the background.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        try await resolve(deadline: deadline)
    }

    /// Waits for the refresh in flight, if any (tests, and a clean shutdown).
    func waitForRefresh() async {
        _ = await inFlight?.value
    }

    private func resolve(deadline: ContinuousClock.Instant?) async throws(TierCacheError) -> AWSCredentials {
        let now = clock.now()
        if let cached, isValid(cached, at: now) {
            if needsRefresh(cached, at: now), inFlight == nil, retryAfter.map({ now >= $0 }) ?? true {
                _ = startRefresh()
            }
            return cached
        }
        let task: Task<Outcome, Never>
        if let inFlight {
            task = inFlight
        } else if let retryAfter, now < retryAfter, let lastFailure {
            throw lastFailure
        } else {
            task = startRefresh()
        }
        let outcome: Outcome
        if let deadline {
            do {
                outcome = try await withDeadline(ContinuousClock.now.duration(to: deadline)) { await task.value }
            } catch let error as TierCacheError {
                throw error
            } catch {
                throw TierCacheError(.cancelled, "credentials: the task was cancelled while a refresh was in flight")
            }
        } else {
            outcome = await task.value
        }
        return try outcome.get()
    }

    private func startRefresh() -> Task<Outcome, Never> {
        fetchCount += 1
        let task = Self.refresh(self, with: fetch)
        inFlight = task
        return task
    }

    /// The refresh, as a task of its own: no caller owns it, so none cancels it by leaving.
    private nonisolated static func refresh(_ provider: RefreshingCredentialProvider, with fetch: @escaping Fetch) -> Task<Outcome, Never> {
        Task {
            let outcome: Outcome
            do throws(TierCacheError) {
                outcome = .success(try await fetch())
            } catch {
                outcome = .failure(error)
            }
            await provider.finishRefresh(outcome)
            return outcome
        }
    }

    private func finishRefresh(_ outcome: Outcome) {
        inFlight = nil
        switch outcome {
        case .success(let fresh):
            cached = fresh
            failuresInARow = 0
            lastFailure = nil
            retryAfter = nil
            logger.debug("credentials refreshed", metadata: ["access-key-id": "\(fresh.accessKeyID)"])
        case .failure(let error):
            failuresInARow += 1
            lastFailure = error
            let wait = backoff(afterFailures: failuresInARow)
            retryAfter = clock.now().advanced(by: wait)
            let stillValid = cached.map { isValid($0, at: clock.now()) } ?? false
            logger.warning(
                stillValid ? "credential refresh failed; using cached credentials until they expire" : "credential refresh failed",
                metadata: ["error": "\(error)", "retry-after-ms": "\(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)"])
        }
    }

    /// `retryBackoff * 2^(failures - 1)`, at most `maxRetryBackoff`.
    private func backoff(afterFailures failures: Int) -> Duration {
        var wait = retryBackoff
        for _ in 1..<max(1, min(failures, 32)) where wait < maxRetryBackoff {
            wait *= 2
        }
        return min(wait, maxRetryBackoff)
    }

    private func isValid(_ credentials: AWSCredentials, at now: WallTime) -> Bool {
        credentials.expiration.map { now < $0 } ?? true
    }

    private func needsRefresh(_ credentials: AWSCredentials, at now: WallTime) -> Bool {
        guard let expiration = credentials.expiration else { return false }
        return now >= expiration.advanced(by: .zero - refreshBefore)
    }
}
