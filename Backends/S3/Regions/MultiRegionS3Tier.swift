public import Logging
public import Metrics
public import TierCache
public import TierCacheHTTP

/// A ``CacheTier`` over several S3 buckets, typically one per region, chosen per operation by a
/// ``BucketResolver``.
///
/// - Reads try the resolver's targets in order (nearest first), skipping any whose circuit is
///   open (``BucketCircuitBreaker``), and fail over to the next on an error or, with
///   ``Configuration/missFallsThrough``, on a miss, all within one deadline
///   (``Configuration/readTimeout``); each bucket gets at most
///   ``Configuration/bucketReadTimeout`` of it. A failed read opens the bucket's circuit for the
///   cool-down; after it, one read probes the bucket again.
/// - Writes go to every target the resolver gives for ``BucketOperation/write`` (the home bucket,
///   or all with ``WritePolicy/everyBucket``): the first (home) is awaited and its failure is
///   thrown; the others are written concurrently and, with ``Configuration/replicatesInBackground``,
///   in the background (await ``flush()``); their failures are logged and counted in
///   `tiercache_s3_replication_failures_total`, never thrown.
/// - Each target gets its own ``S3Tier`` over its own ``S3Client`` (region, endpoint), all
///   sharing one ``HTTPClient``.
/// - Errors thrown are ``TierCacheError``: `timeout` when the deadline passes, `storage` when every
///   target failed or was skipped (the message lists each), `invalidConfiguration` for a target the
///   client cannot reach (a bad endpoint). SigV4a targets are signed with SigV4a.
///   A miss everywhere is nil.
public final class MultiRegionS3Tier: CacheTier {
    /// Tier settings; every one has a default.
    public struct Configuration: Sendable {
        /// The tier's name in logs and metrics.
        public var name: String
        /// The key prefix for targets that set none.
        public var prefix: String
        /// The deadline of a whole read, failovers included.
        public var readTimeout: Duration
        /// The most one bucket may take of a read.
        public var bucketReadTimeout: Duration
        /// The deadline of a write to one bucket.
        public var writeTimeout: Duration
        /// Whether a miss in one bucket moves on to the next (true: a bucket that does not receive
        /// writes still finds entries written in the home bucket).
        public var missFallsThrough: Bool
        /// Whether writes to buckets other than the first run in the background (awaited by
        /// ``MultiRegionS3Tier/flush()``) rather than before `put` returns.
        public var replicatesInBackground: Bool
        /// Circuit breaker settings.
        public var breaker: BucketCircuitBreaker.Configuration
        /// Settings each per-bucket ``S3Tier`` starts from (bucket, prefix and timeouts are set
        /// per target).
        public var tierTemplate: S3Tier.Configuration

        /// Creates a configuration.
        public init(
            name: String = "s3",
            prefix: String = "tiercache",
            readTimeout: Duration = .seconds(2),
            bucketReadTimeout: Duration = .milliseconds(1200),
            writeTimeout: Duration = .seconds(10),
            missFallsThrough: Bool = true,
            replicatesInBackground: Bool = false,
            breaker: BucketCircuitBreaker.Configuration = .init(),
            tierTemplate: S3Tier.Configuration = .init(bucket: "unset")
        ) {
            self.name = name
            self.prefix = prefix
            self.readTimeout = readTimeout
            self.bucketReadTimeout = bucketReadTimeout
            self.writeTimeout = writeTimeout
            self.missFallsThrough = missFallsThrough
            self.replicatesInBackground = replicatesInBackground
            self.breaker = breaker
            self.tierTemplate = tierTemplate
        }
    }

    /// The tier's name in logs and metrics (``Configuration/name``).
    public var name: String { configuration.name }
    /// The template's ``S3Tier/Configuration/maxEntryBytes``, which every bucket's tier uses.
    public var maxEntryBytes: Int? { configuration.tierTemplate.maxEntryBytes }
    /// The configuration in use.
    public let configuration: Configuration
    /// The resolver consulted per operation.
    public let resolver: any BucketResolver
    /// The per-bucket circuit breakers.
    public let breaker: BucketCircuitBreaker
    private let clientTemplate: S3Client.Configuration
    private let httpClient: HTTPClient
    private let ownsHTTPClient: Bool
    private let logger: Logger
    private let metricsFactory: any MetricsFactory
    private let tiers = LockedValueBox<[BucketTarget: S3Tier]>([:])
    private let background = LockedValueBox<(next: Int, tasks: [Int: Task<Void, Never>])>((0, [:]))
    private let failovers: Counter
    private let skips: Counter
    private let replicationFailures: Counter

    /// Creates a tier.
    /// - Parameters:
    ///   - resolver: which buckets to use per operation.
    ///   - client: the S3 client settings each target starts from (credentials, retries, timeouts);
    ///     region and endpoint are set per target. Fewer attempts (`maxAttempts` 1 or 2) make
    ///     failover faster.
    ///   - configuration: deadlines, fail-over and breaker settings.
    ///   - httpClient: a shared HTTP client, or nil to create one owned by this tier.
    ///   - clock: the clock of the circuit breakers (cool-downs).
    ///   - logger: `debug` per failover, skipped bucket and failed replica; never secrets.
    ///   - metricsFactory: `tiercache_s3_failovers_total`, `tiercache_s3_breaker_skips_total`,
    ///     `tiercache_s3_replication_failures_total` (dimension `tier`), plus each ``S3Tier``'s.
    public init(
        resolver: any BucketResolver,
        client: S3Client.Configuration,
        configuration: Configuration = Configuration(),
        httpClient: HTTPClient? = nil,
        clock: any CacheClock = SystemCacheClock(),
        logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil
    ) {
        self.resolver = resolver
        self.clientTemplate = client
        self.configuration = configuration
        self.breaker = BucketCircuitBreaker(configuration: configuration.breaker, clock: clock)
        if let httpClient {
            self.httpClient = httpClient
            ownsHTTPClient = false
        } else {
            self.httpClient = HTTPClient(
                configuration: .init(connectTimeout: client.connectTimeout, timeout: client.attemptTimeout), logger: logger)
            ownsHTTPClient = true
        }
        self.logger = logger
        let factory = metricsFactory ?? MetricsSystem.factory
        self.metricsFactory = factory
        failovers = Counter(label: "tiercache_s3_failovers_total", dimensions: [("tier", configuration.name)], factory: factory)
        skips = Counter(label: "tiercache_s3_breaker_skips_total", dimensions: [("tier", configuration.name)], factory: factory)
        replicationFailures = Counter(label: "tiercache_s3_replication_failures_total",
                                      dimensions: [("tier", configuration.name)], factory: factory)
    }

    deinit {
        if ownsHTTPClient { httpClient.shutdown() }
    }

    /// Shuts down the HTTP client if this tier created it.
    public func shutdown() {
        if ownsHTTPClient { httpClient.shutdown() }
    }

    /// The per-bucket tier of a target, created on first use.
    /// - Throws: ``TierCacheError`` `invalidConfiguration` for a bad endpoint.
    public func tier(for target: BucketTarget) throws -> S3Tier {
        if let tier = tiers.withLock({ $0[target] }) { return tier }
        var clientConfiguration = clientTemplate
        clientConfiguration.region = target.region
        clientConfiguration.endpoint = target.resolvedEndpoint
        clientConfiguration.sigV4aRegionSet = target.signing.regionSet
        if let style = target.addressingStyle { clientConfiguration.addressingStyle = style }
        let client: S3Client
        do {
            client = try S3Client(configuration: clientConfiguration, httpClient: httpClient, logger: logger,
                                  metricsFactory: metricsFactory)
        } catch {
            throw TierCacheError(.invalidConfiguration, "\(target): \(error)")
        }
        var tierConfiguration = configuration.tierTemplate
        tierConfiguration.name = configuration.name + "/" + target.description
        tierConfiguration.bucket = target.bucket
        tierConfiguration.prefix = target.prefix ?? configuration.prefix
        tierConfiguration.readTimeout = configuration.bucketReadTimeout
        tierConfiguration.writeTimeout = configuration.writeTimeout
        let tier = S3Tier(client: client, configuration: tierConfiguration, logger: logger, metricsFactory: metricsFactory)
        return tiers.withLock { tiers in
            if let existing = tiers[target] { return existing }
            tiers[target] = tier
            return tier
        }
    }

    // MARK: - CacheTier

    /// Reads from the resolver's read targets in order under one deadline
    /// (``Configuration/readTimeout``), skipping buckets whose circuit is open; a failing bucket
    /// fails over to the next, and so does a miss when ``Configuration/missFallsThrough``.
    /// - Returns: the first entry found; nil when a bucket answered that the key is absent.
    /// - Throws: ``TierCacheError``: `.timeout` past the deadline, `.storage` when no bucket could
    ///   answer. The chain counts either as a miss.
    public func get(_ key: CacheKey) async throws -> CacheEntry? {
        let targets = resolver.targets(for: .read, key: key)
        let deadline = ContinuousClock.now.advanced(by: configuration.readTimeout)
        var problems: [String] = []
        var missed = false
        for (index, target) in targets.enumerated() {
            try Task.checkCancellation()
            let id = target.description
            guard let permit = breaker.acquire(id) else {
                skips.increment()
                problems.append("\(id): skipped (circuit open)")
                continue
            }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else {
                breaker.release(id, permit)
                throw TierCacheError(.timeout, "read of \(key.rendered) passed its \(configuration.readTimeout) deadline; "
                                     + problems.joined(separator: "; "))
            }
            if index > 0, !problems.isEmpty || missed { failovers.increment() }
            do {
                let tier = try tier(for: target)
                let entry = try await Self.withTimeout(min(remaining, configuration.bucketReadTimeout)) {
                    try await tier.get(key)
                }
                breaker.recordSuccess(id)
                if let entry { return entry }
                missed = true
                if !configuration.missFallsThrough { return nil }
            } catch let error as TierCacheError where Self.isBucketFailure(error) {
                if Task.isCancelled {
                    breaker.release(id, permit)
                    throw TierCacheError(.cancelled, "read of \(key.rendered) cancelled")
                }
                breaker.recordFailure(id)
                problems.append("\(id): \(error.message)")
                logger.debug("s3 bucket failed, failing over",
                             metadata: ["bucket": "\(id)", "error": "\(error)", "probe": "\(permit.isProbe)"])
            } catch {
                // The bucket answered (a damaged entry, for instance): healthy, but no entry.
                breaker.recordSuccess(id)
                throw error
            }
        }
        if missed { return nil }
        throw TierCacheError(.storage, "no bucket could serve \(key.rendered): " + problems.joined(separator: "; "))
    }

    /// Writes to the first write target (awaited) and replicates to the others, in the background
    /// or awaited as ``Configuration`` says; replica failures are counted and logged.
    /// - Throws: the home bucket's error, or `.invalidConfiguration` when the resolver gives no bucket.
    public func put(_ entry: CacheEntry) async throws {
        let targets = resolver.targets(for: .write, key: entry.key)
        guard let home = targets.first else {
            throw TierCacheError(.invalidConfiguration, "the resolver gave no bucket to write \(entry.key.rendered) to")
        }
        let replicas = Array(targets.dropFirst())
        if configuration.replicatesInBackground {
            if !replicas.isEmpty { startBackground { await self.replicate(entry, to: replicas) } }
            try await write(entry, to: home)
        } else {
            async let replicated: Void = replicate(entry, to: replicas)
            do {
                try await write(entry, to: home)
            } catch {
                await replicated
                throw error
            }
            await replicated
        }
    }

    /// Removes the key from every remove target at once.
    /// - Throws: the home (first) bucket's error; replica failures are counted and logged.
    public func remove(_ key: CacheKey) async throws {
        let targets = resolver.targets(for: .remove, key: key)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, target) in targets.enumerated() {
                group.addTask {
                    do {
                        try await self.tier(for: target).remove(key)
                    } catch {
                        if index == 0 { throw error }
                        self.replicationFailures.increment()
                        self.logger.debug("s3 remove failed on a replica", metadata: ["bucket": "\(target)", "error": "\(error)"])
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Waits until every background replica write started so far has finished (successfully or
    /// not: failures are counted, not thrown).
    public func flush() async {
        while true {
            let tasks = background.withLock { Array($0.tasks.values) }
            if tasks.isEmpty { return }
            for task in tasks { await task.value }
        }
    }

    // MARK: - Internals

    private func write(_ entry: CacheEntry, to target: BucketTarget) async throws {
        let id = target.description
        do {
            try await tier(for: target).put(entry)
            breaker.recordSuccess(id)
        } catch let error as TierCacheError {
            if Self.isBucketFailure(error), !Task.isCancelled { breaker.recordFailure(id) }
            throw error
        }
    }

    private func replicate(_ entry: CacheEntry, to targets: [BucketTarget]) async {
        await withTaskGroup(of: Void.self) { group in
            for target in targets {
                group.addTask {
                    do {
                        try await self.write(entry, to: target)
                    } catch {
                        self.replicationFailures.increment()
                        self.logger.debug("s3 replica write failed", metadata: ["bucket": "\(target)", "error": "\(error)"])
                    }
                }
            }
        }
    }

    private func startBackground(_ body: @escaping @Sendable () async -> Void) {
        background.withLock { state in
            let id = state.next
            state.next += 1
            state.tasks[id] = Task {
                await body()
                self.background.withLock { _ = $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Storage, timeout and configuration errors count against a bucket; entry errors do not.
    static func isBucketFailure(_ error: TierCacheError) -> Bool {
        error.code == .storage || error.code == .timeout || error.code == .invalidConfiguration || error.code == .cancelled
    }

    /// Runs `body`, cancelling it and throwing `timeout` when `limit` passes first.
    static func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
                // The timer fired first (or was cancelled with the caller).
                if Task.isCancelled { throw TierCacheError(.cancelled, "cancelled") }
                throw TierCacheError(.timeout, "no answer within \(limit)")
            }
            throw TierCacheError(.cancelled, "cancelled")
        }
    }
}
