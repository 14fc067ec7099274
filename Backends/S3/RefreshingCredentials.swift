public import Logging
public import TierCache

/// Caches temporary credentials and refreshes them before they expire, one refresh at a time.
///
/// Callers that arrive while a refresh is in flight wait for that refresh rather than starting
/// their own (single flight). Credentials are refreshed when less than `refreshBefore` of their
/// life is left; if a refresh fails while the cached credentials are still valid, the cached ones
/// are returned and the failure is logged (never with a secret); once they have expired, the
/// failure is thrown.
public actor RefreshingCredentialProvider: AWSCredentialProvider {
    /// Fetches fresh credentials.
    public typealias Fetch = @Sendable () async throws(TierCacheError) -> AWSCredentials

    private let fetch: Fetch
    private let refreshBefore: Duration
    private let clock: any CacheClock
    private let logger: Logger
    private var cached: AWSCredentials?
    private var inFlight: Task<Result<AWSCredentials, TierCacheError>, Never>?
    /// How many times the source was fetched (for tests and diagnostics).
    public private(set) var fetchCount = 0

    /// Creates a refreshing provider.
    /// - Parameters:
    ///   - refreshBefore: refresh when less than this is left before expiry (default 5 minutes,
    ///     as the AWS SDKs do).
    ///   - clock: the wall clock expiry is compared with.
    ///   - fetch: gets fresh credentials (called by one task at a time).
    public init(refreshBefore: Duration = .seconds(300), clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() }),
                fetch: @escaping Fetch) {
        self.fetch = fetch
        self.refreshBefore = refreshBefore
        self.clock = clock
        self.logger = logger
    }

    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        let now = clock.now()
        if let cached, !needsRefresh(cached, now: now) { return cached }
        let task: Task<Result<AWSCredentials, TierCacheError>, Never>
        if let inFlight {
            task = inFlight
        } else {
            fetchCount += 1
            let fetch = self.fetch
            task = Task { do throws(TierCacheError) { return .success(try await fetch()) } catch { return .failure(error) } }
            inFlight = task
        }
        let result = await task.value
        if inFlight == task { inFlight = nil }
        switch result {
        case .success(let fresh):
            cached = fresh
            logger.debug("credentials refreshed", metadata: ["access-key-id": "\(fresh.accessKeyID)"])
            return fresh
        case .failure(let error):
            if let cached, cached.expiration.map({ clock.now() < $0 }) ?? true {
                logger.warning("credential refresh failed; using cached credentials until they expire",
                               metadata: ["error": "\(error)"])
                return cached
            }
            throw error
        }
    }

    private func needsRefresh(_ credentials: AWSCredentials, now: WallTime) -> Bool {
        guard let expiration = credentials.expiration else { return false }
        return now >= expiration.advanced(by: .zero - refreshBefore)
    }
}
