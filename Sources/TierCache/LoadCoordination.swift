package import CoreMetrics
package import Logging
import Metrics

/// Single-flight across processes: decides, for a key that missed in memory and in every byte
/// tier, whether this process runs the loader or waits for another process to store the entry.
///
/// ``Cache`` consults a coordinator (when ``LoadCoordination`` turns it on) after the chain
/// missed and before its loader runs. The coordinator answers with a ``LoadTurn``:
/// - ``LoadTurn/lead(_:)``: this process holds the lease. The cache runs the loader, writes the
///   entry to every tier and awaits those writes (write-behind ones included), then calls the
///   turn's release, so other processes see the entry before the lease disappears. The lease is
///   released when the loader fails, too.
/// - ``LoadTurn/appeared``: another process stored the entry while this one waited; the cache
///   reads the chain again and serves it.
/// - ``LoadTurn/proceed(reason:)``: the wait deadline passed, the lease store failed, or the
///   wait was cancelled; the loader runs anyway (counted with the reason, logged). Coordination
///   never fails a caller and never delays a cold start by more than the coordinator's deadline.
///
/// Implementations must not throw: a failure to coordinate is a ``LoadTurn/proceed(reason:)``.
/// TierCacheS3's `S3LeaseCoordinator` is the implementation over S3 conditional writes.
public protocol LoadCoordinator: Sendable {
    /// Takes the lease for `key`, or waits (within the coordinator's own deadline) until the
    /// entry appears or the lease can be taken.
    func begin(_ key: CacheKey) async -> LoadTurn
}

/// A coordinator's answer for one key; see ``LoadCoordinator``.
public struct LoadTurn: Sendable {
    enum Kind: Sendable {
        case lead(@Sendable () async -> Void)
        case appeared
        case proceed(String)
    }

    let kind: Kind

    /// This process holds the lease: run the loader, store the entry, then call `release`
    /// (exactly once; the cache does).
    public static func lead(_ release: @escaping @Sendable () async -> Void) -> LoadTurn {
        LoadTurn(kind: .lead(release))
    }

    /// Another process stored the entry: read it from the chain.
    public static let appeared = LoadTurn(kind: .appeared)

    /// Run the loader without a lease; `reason` is a short word for metrics and logs
    /// (`deadline`, `error`, `cancelled`).
    public static func proceed(reason: String) -> LoadTurn {
        LoadTurn(kind: .proceed(reason))
    }

    /// Whether this turn holds the lease.
    public var isLead: Bool {
        if case .lead = kind { return true }
        return false
    }

    /// Whether the entry appeared while waiting.
    public var hasAppeared: Bool {
        if case .appeared = kind { return true }
        return false
    }

    /// The reason of a ``proceed(reason:)`` turn; nil for the others.
    public var proceedReason: String? {
        if case .proceed(let reason) = kind { return reason }
        return nil
    }

    /// Gives the lease back (a no-op for turns that hold none).
    public func release() async {
        if case .lead(let release) = kind { await release() }
    }
}

/// Whether a load is coordinated across processes, and by which coordinator.
///
/// Off by default (``off``): the loader runs as soon as every tier missed, single-flight only
/// within this process. Turn it on per cache (``Cache/Configuration/coordination``), per call
/// (``Cache/getOrLoad(_:ttl:staleFor:coordination:loader:)``) or per warm-set member.
public struct LoadCoordination: Sendable {
    /// The coordinator, or nil when off.
    public var coordinator: (any LoadCoordinator)?

    /// Creates a setting; nil is ``off``.
    public init(_ coordinator: (any LoadCoordinator)?) {
        self.coordinator = coordinator
    }

    /// No coordination: today's behaviour.
    public static let off = LoadCoordination(nil)

    /// Coordinate through `coordinator` (a lease per key).
    public static func lease(_ coordinator: any LoadCoordinator) -> LoadCoordination {
        LoadCoordination(coordinator)
    }

    /// Whether loads are coordinated.
    public var isOn: Bool { coordinator != nil }
}

extension TierCacheMetrics {
    /// Counter: answers of a ``LoadCoordinator`` for loads that missed everywhere. Dimensions
    /// `cache`, `result` (`lead`, `appeared`, or the proceed reason: `deadline`, `error`,
    /// `cancelled`, `unreadable` when the entry appeared but could not be read back).
    public static let coordinations = "tiercache_coordinations_total"
}

extension TierChain {
    /// Waits until every write queued so far for `key` (write-behind tiers included) finished,
    /// so that a lease is released only once the entry is visible in every tier.
    package func settle(_ key: CacheKey) async {
        for index in tiers.indices {
            await writes.last(for: key, tier: index)?.value
        }
    }
}

extension LoadCoordination {
    /// Asks the coordinator for a turn (counted and logged); nil when coordination is off.
    package func begin(_ key: CacheKey, cacheName: String, factory: any MetricsFactory, logger: Logger) async -> CoordinatedTurn? {
        guard let coordinator else { return nil }
        let load = CoordinatedLoad(coordinator: coordinator, cacheName: cacheName, factory: factory, logger: logger)
        return CoordinatedTurn(turn: await load.begin(key), load: load)
    }
}

/// A turn with the metrics and logger it reports to.
package struct CoordinatedTurn: Sendable {
    package let turn: LoadTurn
    let load: CoordinatedLoad

    package var hasAppeared: Bool { turn.hasAppeared }
    package var isLead: Bool { turn.isLead }
    package func release() async { await turn.release() }
    /// Counts and logs an entry that was reported as stored but could not be read back.
    package func unreadable(_ key: CacheKey) { load.unreadable(key) }
}

/// The coordinated part of a load, shared by ``Cache`` and the Lambda warm set.
package struct CoordinatedLoad: Sendable {
    let coordinator: any LoadCoordinator
    let cacheName: String
    let factory: any MetricsFactory
    let logger: Logger

    package init(coordinator: any LoadCoordinator, cacheName: String, factory: any MetricsFactory, logger: Logger) {
        self.coordinator = coordinator
        self.cacheName = cacheName
        self.factory = factory
        self.logger = logger
    }

    /// Asks the coordinator, counts and logs its answer.
    package func begin(_ key: CacheKey) async -> LoadTurn {
        let turn = await coordinator.begin(key)
        switch turn.kind {
        case .lead: count("lead")
        case .appeared: count("appeared")
        case .proceed(let reason):
            count(reason)
            logger.notice("load coordination gave up; running the loader without a lease", metadata: [
                "key": "\(key)", "reason": "\(reason)",
            ])
        }
        return turn
    }

    /// Counts an entry that was reported as appeared but could not be read back.
    package func unreadable(_ key: CacheKey) {
        count("unreadable")
        logger.warning("entry reported as stored by another process could not be read; running the loader", metadata: [
            "key": "\(key)",
        ])
    }

    private func count(_ result: String) {
        Counter(label: TierCacheMetrics.coordinations, dimensions: [("cache", cacheName), ("result", result)], factory: factory)
            .increment()
    }
}
