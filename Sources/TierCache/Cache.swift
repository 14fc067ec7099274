public import CoreMetrics
public import Logging
import Metrics

/// Where a value came from.
public enum CacheSource: Sendable, Hashable, CustomStringConvertible {
    /// The in-process memory tier: no decoding happened.
    case memory
    /// A byte tier of the chain, by name (`disk`, `s3`, …).
    case tier(String)
    /// The loader ran.
    case loader

    public var description: String {
        switch self {
        case .memory: "memory"
        case .tier(let name): "tier(\(name))"
        case .loader: "loader"
        }
    }
}

/// A value with its provenance.
public struct CacheResult<Value: Sendable>: Sendable {
    /// The value.
    public var value: Value
    /// Where it came from.
    public var source: CacheSource
    /// Whether it is past its fresh-until time (served because reloading failed, or asked for).
    public var isStale: Bool
    /// Until when it is fresh.
    public var freshUntil: WallTime
    /// Until when it may be served stale.
    public var staleUntil: WallTime
    /// From when `getOrLoad` refreshes it ahead of expiry (RefreshAhead.swift).
    @usableFromInline var refreshAt: WallTime

    @usableFromInline
    init(value: Value, source: CacheSource, isStale: Bool, freshUntil: WallTime, staleUntil: WallTime, refreshAt: WallTime? = nil) {
        self.value = value
        self.source = source
        self.isStale = isStale
        self.freshUntil = freshUntil
        self.staleUntil = staleUntil
        self.refreshAt = refreshAt ?? freshUntil
    }
}

/// A typed cache: a memory tier of decoded values over a ``TierChain`` of byte tiers, with a
/// serializer and a codec between them.
///
/// - ``getOrLoad(_:ttl:staleFor:coordination:loader:)`` is the cold-start path: memory, then each byte tier
///   under its deadline, then the loader, run once per key however many callers wait
///   (single-flight). A loaded value goes into memory at once and into the byte tiers
///   write-through or write-behind; ``flush(deadline:)`` awaits the latter.
/// - With ``LoadCoordination`` on (per cache or per call; off by default), a key that missed
///   everywhere is loaded once across processes: see ``LoadCoordinator``.
/// - Tier failures and timeouts are misses (counted, logged), never thrown. What a caller can
///   see thrown: its own loader's error (when no stale value exists to fall back on) and, from
///   ``set(_:_:ttl:staleFor:)``, a ``TierCacheError`` when the value cannot be serialized.
public final class Cache<Value: Codable & Sendable>: Sendable {
    /// How the cache encodes, stores and times entries.
    public struct Configuration: Sendable {
        /// The `cache` dimension on metrics and a name in logs.
        public var name: String
        /// How long a loaded value is fresh (the seed's 15 minutes).
        public var defaultTTL: Duration
        /// How long after expiring a value may still be served if reloading fails (fail-safe).
        public var defaultStaleFor: Duration
        /// How values become bytes.
        public var serializer: any Serializer
        /// How bytes are compressed when written.
        public var codec: any Codec
        /// Further codecs to read entries written by other configurations; the write codec and
        /// identity are always readable.
        public var readCodecs: [any Codec]
        /// The memory tier's limits; nil for no memory tier.
        public var memory: MemoryTier<Value>.Configuration?
        /// Where time comes from.
        public var clock: any CacheClock
        /// Where log lines go.
        public var logger: Logger
        /// Where metrics go (the memory tier's and the cache's own; the chain has its own setting).
        public var metricsFactory: any MetricsFactory
        /// Refresh entries that `getOrLoad` reads late in their lifetime, in the background, before
        /// they expire; nil (the default) for none. See ``RefreshAheadPolicy``.
        public var refreshAhead: RefreshAheadPolicy?
        /// Whether loads are coordinated across processes when a call does not say (off by
        /// default); see ``LoadCoordinator``.
        public var coordination: LoadCoordination
        /// The largest decompressed payload an entry may declare; a larger one is refused before
        /// anything is allocated (``TierCacheError/Code/sizeLimitExceeded``; in a read, a counted
        /// decode failure and a miss). nil (the default) derives it from the cache's budgets: the
        /// larger of the memory tier's ``MemoryTier/Configuration/maxBytes`` and the largest
        /// ``CacheTier/maxEntryBytes`` of the chain's tiers, or
        /// ``Cache/fallbackMaximumDecompressedSize`` (256 MiB) when neither is set. The codecs'
        /// own ceilings apply too.
        public var maximumDecompressedSize: Int?

        /// Creates a configuration.
        public init(
            name: String = "default",
            defaultTTL: Duration = .seconds(15 * 60),
            defaultStaleFor: Duration = .seconds(60 * 60),
            serializer: any Serializer = JSONSerializer(),
            codec: any Codec = IdentityCodec(),
            readCodecs: [any Codec] = [],
            memory: MemoryTier<Value>.Configuration? = .init(),
            clock: any CacheClock = SystemCacheClock(),
            logger: Logger = .tierCacheNoOp,
            metricsFactory: any MetricsFactory = MetricsSystem.factory,
            refreshAhead: RefreshAheadPolicy? = nil,
            coordination: LoadCoordination = .off,
            maximumDecompressedSize: Int? = nil
        ) {
            self.name = name
            self.defaultTTL = defaultTTL
            self.defaultStaleFor = defaultStaleFor
            self.serializer = serializer
            self.codec = codec
            self.readCodecs = readCodecs
            self.memory = memory
            self.clock = clock
            self.logger = logger
            self.metricsFactory = metricsFactory
            self.refreshAhead = refreshAhead
            self.coordination = coordination
            self.maximumDecompressedSize = maximumDecompressedSize
        }
    }

    /// The decompression ceiling when neither the configuration nor any budget gives one.
    public static var fallbackMaximumDecompressedSize: Int { 256 << 20 }

    /// The settings this cache was made with.
    public let configuration: Configuration
    /// The byte tiers below memory.
    public let chain: TierChain
    /// The memory tier, if configured.
    public let memory: MemoryTier<Value>?
    /// The decompression ceiling in force: ``Configuration/maximumDecompressedSize``, or the one
    /// derived from the budgets.
    public let maximumDecompressedSize: Int

    private let codecs: [CodecID: any Codec]
    let inflight = LockedValueBox<[CacheKey: Task<CacheResult<Value>, any Error>]>([:])
    let metrics: CacheMetrics
    let refreshes: RefreshTracker<Value>
    @usableFromInline let memoryFreshCounter: Counter

    /// Creates a cache over `chain`.
    public init(configuration: Configuration = .init(), chain: TierChain = TierChain([])) {
        self.configuration = configuration
        self.chain = chain
        self.memory = configuration.memory.map { MemoryTier(configuration: $0, metricsLabel: configuration.name, metricsFactory: configuration.metricsFactory) }
        var codecs: [CodecID: any Codec] = [.identity: IdentityCodec()]
        for codec in configuration.readCodecs { codecs[codec.id] = codec }
        codecs[configuration.codec.id] = configuration.codec
        self.codecs = codecs
        let budgets = [configuration.memory?.maxBytes].compactMap { $0 } + chain.tiers.compactMap(\.tier.maxEntryBytes)
        self.maximumDecompressedSize = max(0, configuration.maximumDecompressedSize ?? budgets.max() ?? Self.fallbackMaximumDecompressedSize)
        self.metrics = CacheMetrics(cache: configuration.name, tiers: chain.tiers.map(\.tier.name), factory: configuration.metricsFactory)
        self.memoryFreshCounter = metrics.memoryFresh
        self.refreshes = RefreshTracker(cache: configuration.name, factory: configuration.metricsFactory)
    }

    var logger: Logger { configuration.logger }

    // MARK: Reads

    /// The value for `key` from memory or the byte tiers, without loading.
    /// - Parameter allowStale: also return a value past its fresh-until time (flagged stale).
    /// - Returns: nil when no tier holds a usable value.
    @inlinable
    public func get(_ key: CacheKey, allowStale: Bool = false) async -> CacheResult<Value>? {
        if let hit = freshFromMemory(key, now: configuration.clock.now()) { return hit }
        return await getBelowMemory(key, allowStale: allowStale)
    }

    /// The fresh value for `key`, loading it once when no tier has it.
    ///
    /// Concurrent calls for one key share one loader run. When the loader throws and a stale value
    /// exists (in memory or any tier, before its stale-until), that value is returned flagged
    /// stale; otherwise the loader's error is rethrown.
    /// - Parameters:
    ///   - ttl: how long the loaded value stays fresh; the configuration's default when nil.
    ///   - staleFor: how long after that it may be served if reloading fails.
    ///   - coordination: whether to take a lease across processes before loading (see
    ///     ``LoadCoordinator``); the configuration's ``Configuration/coordination`` when nil.
    ///   - loader: the full initialization.
    ///
    /// With ``Configuration/refreshAhead``, a fresh hit past the policy's share of its lifetime is
    /// returned at once and starts a background refresh with this `loader` (see
    /// ``RefreshAheadPolicy``).
    @inlinable
    public func getOrLoad(
        _ key: CacheKey,
        ttl: Duration? = nil,
        staleFor: Duration? = nil,
        coordination: LoadCoordination? = nil,
        loader: @escaping @Sendable () async throws -> Value
    ) async throws -> CacheResult<Value> {
        let now = configuration.clock.now()
        if let hit = freshFromMemory(key, now: now) {
            if now >= hit.refreshAt { startRefresh(key, after: hit, ttl: ttl, staleFor: staleFor, loader: loader) }
            return hit
        }
        return try await loadOnce(key, ttl: ttl, staleFor: staleFor, coordination: coordination, loader: loader)
    }

    /// A fresh memory hit. Inlinable, like the two reads above, so that the hit path is
    /// specialized for `Value` in the caller's module (unspecialized generic code costs several
    /// times the lookup).
    @inlinable
    func freshFromMemory(_ key: CacheKey, now: WallTime) -> CacheResult<Value>? {
        guard let hit = memory?.get(key, now: now), now < hit.freshUntil else { return nil }
        memoryFreshCounter.increment()
        return CacheResult(value: hit.value, source: .memory, isStale: false, freshUntil: hit.freshUntil, staleUntil: hit.staleUntil, refreshAt: hit.refreshAt)
    }

    @usableFromInline
    func getBelowMemory(_ key: CacheKey, allowStale: Bool) async -> CacheResult<Value>? {
        let now = configuration.clock.now()
        if let found = await readChain(key, now: now), !found.isStale || allowStale {
            return found
        }
        if allowStale, let memoryHit = memory?.get(key, now: now) {
            (now < memoryHit.freshUntil ? metrics.memoryFresh : metrics.memoryStale).increment()
            return result(memoryHit, source: .memory, now: now)
        }
        return nil
    }

    /// Joins the flight for `key`, or starts it.
    @usableFromInline
    func loadOnce(
        _ key: CacheKey, ttl: Duration?, staleFor: Duration?, coordination: LoadCoordination? = nil,
        loader: @escaping @Sendable () async throws -> Value
    ) async throws -> CacheResult<Value> {
        let task: Task<CacheResult<Value>, any Error> = inflight.withLock { inflight in
            if let running = inflight[key] { return running }
            let task = Task {
                defer { _ = self.inflight.withLock { $0.removeValue(forKey: key) } }
                return try await self.load(key, ttl: ttl, staleFor: staleFor, coordination: coordination, loader: loader)
            }
            inflight[key] = task
            return task
        }
        return try await result(of: task, for: key, ttl: ttl, staleFor: staleFor, loader: loader)
    }

    /// The single-flight body: chain, then loader, then fail-safe.
    private func load(
        _ key: CacheKey, ttl: Duration?, staleFor: Duration?, coordination: LoadCoordination?,
        loader: @Sendable () async throws -> Value
    ) async throws -> CacheResult<Value> {
        let now = configuration.clock.now()
        // A caller that finished just before this flight started may have filled memory.
        if let hit = memory?.get(key, now: now), now < hit.freshUntil {
            metrics.memoryFresh.increment()
            return result(hit, source: .memory, now: now)
        }
        let stale = await readChain(key, now: now)
        if let stale, !stale.isStale { return stale }

        // Distributed single-flight (off unless asked for): lead, or serve what another process stored.
        let turn = await (coordination ?? configuration.coordination).begin(
            key, cacheName: configuration.name, factory: configuration.metricsFactory, logger: logger)
        if let turn, turn.hasAppeared {
            if let found = await readChain(key, now: configuration.clock.now()), !found.isStale { return found }
            turn.unreadable(key)
        }

        let value: Value
        do {
            value = try await runLoader(loader)
        } catch {
            await turn?.release()
            let fallback = stale ?? memory?.get(key, now: configuration.clock.now()).map {
                result($0, source: .memory, now: configuration.clock.now())
            }
            if var fallback {
                fallback.isStale = true
                metrics.staleServes.increment()
                logger.warning("loader failed; serving a stale value", metadata: [
                    "key": "\(key)", "source": "\(fallback.source)", "error": "\(error)",
                ])
                return fallback
            }
            throw error
        }
        let times = expiry(ttl: ttl, staleFor: staleFor, now: configuration.clock.now())
        do {
            try await store(key, value: value, freshUntil: times.fresh, staleUntil: times.stale)
        } catch {
            // The caller still gets the value it asked for; only persisting failed.
            logger.error("loaded value could not be serialized; it is not cached", metadata: [
                "key": "\(key)", "error": "\(error)",
            ])
        }
        if let turn {
            await chain.settle(key)  // the entry is visible in every tier before the lease goes
            await turn.release()
        }
        metrics.loaderResult.increment()
        return CacheResult(value: value, source: .loader, isStale: false, freshUntil: times.fresh, staleUntil: times.stale)
    }

    /// Runs a loader (a load's or a refresh's), counting its outcome and timing a success.
    func runLoader(_ loader: @Sendable () async throws -> Value) async throws -> Value {
        let start = ContinuousClock.now
        do {
            let value = try await loader()
            metrics.loadOK.increment()
            metrics.loadDuration.recordInterval(since: start)
            return value
        } catch {
            metrics.loadError.increment()
            throw error
        }
    }

    /// Reads the chain and decodes; a hit that does not decode is a miss (counted, logged).
    func readChain(_ key: CacheKey, now: WallTime) async -> CacheResult<Value>? {
        guard !chain.isEmpty else { return nil }
        // The ticket spans the memory fill: a read that overlapped a `remove` returns what it read
        // but stores it nowhere, so it cannot bring the removed entry back.
        let ticket = chain.fence.enter(key)
        defer { chain.fence.leave(ticket) }
        guard let hit = await chain.get(key, now: now, ticket: ticket) else { return nil }
        do {
            let value = try decode(hit.entry)
            let refreshAt = refreshPoint(createdAt: hit.entry.createdAt, freshUntil: hit.entry.freshUntil)
            chain.fence.unlessRemoved(ticket) {
                memory?.set(key, value: value, weight: Int(clamping: hit.entry.uncompressedLength),
                            freshUntil: hit.entry.freshUntil, staleUntil: hit.entry.staleUntil, refreshAt: refreshAt)
            }
            (hit.isStale ? metrics.tierStale : metrics.tierFresh).increment()
            return CacheResult(value: value, source: .tier(hit.tierName), isStale: hit.isStale,
                               freshUntil: hit.entry.freshUntil, staleUntil: hit.entry.staleUntil, refreshAt: refreshAt)
        } catch {
            metrics.decodeFailures[hit.tierIndex].increment()
            logger.warning("entry could not be decoded; treated as a miss", metadata: [
                "key": "\(key)", "tier": "\(hit.tierName)", "error": "\(error)",
            ])
            return nil
        }
    }

    // MARK: Writes

    /// Stores a value in memory and every byte tier.
    /// - Throws: ``TierCacheError`` when the value cannot be serialized or compressed; tier write
    ///   failures are counted and logged, not thrown.
    public func set(_ key: CacheKey, _ value: Value, ttl: Duration? = nil, staleFor: Duration? = nil) async throws(TierCacheError) {
        let times = expiry(ttl: ttl, staleFor: staleFor, now: configuration.clock.now())
        try await store(key, value: value, freshUntil: times.fresh, staleUntil: times.stale)
    }

    /// Removes `key` from memory and every byte tier, awaited in each (lowest tier first, after any
    /// write queued for the key); see ``TierChain/remove(_:)``.
    /// A read that overlaps the remove returns what it read but puts it back in no tier.
    public func remove(_ key: CacheKey) async {
        await chain.remove(key) { memory?.remove(key) }
    }

    /// Waits for refreshes in flight (``RefreshAheadPolicy``), then for write-behind writes
    /// (theirs included), all within `deadline`; see ``TierChain/flush(deadline:)``.
    ///
    /// A refresh still running at the deadline is not cancelled: it goes on in the background and
    /// is logged; ``refreshesInFlight`` counts it.
    @discardableResult
    public func flush(deadline: Duration = .seconds(5)) async -> TierChain.FlushResult {
        let start = ContinuousClock.now
        await awaitRefreshes(deadline: deadline, includeAbandoned: true)
        return await chain.flush(deadline: max(deadline - (ContinuousClock.now - start), .zero))
    }

    func store(_ key: CacheKey, value: Value, freshUntil: WallTime, staleUntil: WallTime) async throws(TierCacheError) {
        let now = configuration.clock.now()
        let entry = try encode(key, value: value, createdAt: now, freshUntil: freshUntil, staleUntil: staleUntil)
        // Reads of the key in flight may hold an older value: void them so that they store it
        // nowhere (the chain's write below replaces what they may already have promoted).
        chain.fence.supersede(key) {
            memory?.set(key, value: value, weight: Int(clamping: entry.uncompressedLength), freshUntil: freshUntil, staleUntil: staleUntil,
                        refreshAt: refreshPoint(createdAt: now, freshUntil: freshUntil))
        }
        if !chain.isEmpty { await chain.put(entry) }
    }

    // MARK: Encoding

    /// Serializes and compresses a value into an envelope, as the byte tiers store it.
    public func encode(_ key: CacheKey, value: Value, createdAt: WallTime, freshUntil: WallTime, staleUntil: WallTime) throws(TierCacheError) -> CacheEntry {
        let bytes = try configuration.serializer.encode(value)
        let compressed = try configuration.codec.compress(bytes)
        return CacheEntry(
            key: key, serializerID: configuration.serializer.id,
            codecID: compressed == nil ? .identity : configuration.codec.id,
            dictionaryID: compressed?.dictionaryID ?? 0,
            createdAt: createdAt, freshUntil: freshUntil, staleUntil: staleUntil,
            uncompressedLength: UInt64(bytes.count), payload: compressed?.bytes ?? bytes
        )
    }

    /// Decompresses and deserializes an envelope's payload.
    /// - Throws: ``TierCacheError``: unknown serializer or codec, a missing dictionary, corrupt data.
    public func decode(_ entry: CacheEntry) throws(TierCacheError) -> Value {
        guard entry.serializerID == configuration.serializer.id else {
            throw TierCacheError(.unknownSerializer, "entry written by serializer \(entry.serializerID); this cache reads \(configuration.serializer.id)")
        }
        guard let codec = codecs[entry.codecID] else {
            throw TierCacheError(.unknownCodec, "entry compressed with \(entry.codecID), which this cache is not configured to read")
        }
        guard entry.uncompressedLength <= UInt64(maximumDecompressedSize) else {
            throw TierCacheError(.sizeLimitExceeded,
                                 "declared length \(entry.uncompressedLength) is above the cache's decompression ceiling \(maximumDecompressedSize)")
        }
        let bytes = try codec.decompress(entry.payload, uncompressedLength: Int(entry.uncompressedLength), dictionaryID: entry.dictionaryID)
        return try configuration.serializer.decode(Value.self, from: bytes)
    }

    // MARK: Helpers

    func expiry(ttl: Duration?, staleFor: Duration?, now: WallTime) -> (fresh: WallTime, stale: WallTime) {
        let fresh = now.advanced(by: max(ttl ?? configuration.defaultTTL, .zero))
        return (fresh, fresh.advanced(by: max(staleFor ?? configuration.defaultStaleFor, .zero)))
    }

    private func result(_ hit: MemoryTier<Value>.Hit, source: CacheSource, now: WallTime) -> CacheResult<Value> {
        CacheResult(value: hit.value, source: source, isStale: now >= hit.freshUntil, freshUntil: hit.freshUntil, staleUntil: hit.staleUntil,
                    refreshAt: hit.refreshAt)
    }
}

/// Pre-created handles for a cache's own metrics.
struct CacheMetrics: Sendable {
    let memoryFresh, memoryStale, tierFresh, tierStale, loaderResult: Counter
    let loadOK, loadError, staleServes: Counter
    let loadDuration: Timer
    let decodeFailures: [Counter]

    init(cache: String, tiers: [String], factory: any MetricsFactory) {
        func results(_ source: String, _ result: String) -> Counter {
            Counter(label: TierCacheMetrics.cacheResults, dimensions: [("cache", cache), ("source", source), ("result", result)], factory: factory)
        }
        memoryFresh = results("memory", "fresh")
        memoryStale = results("memory", "stale")
        tierFresh = results("tier", "fresh")
        tierStale = results("tier", "stale")
        loaderResult = results("loader", "fresh")
        loadOK = Counter(label: TierCacheMetrics.loads, dimensions: [("cache", cache), ("result", "ok")], factory: factory)
        loadError = Counter(label: TierCacheMetrics.loads, dimensions: [("cache", cache), ("result", "error")], factory: factory)
        staleServes = Counter(label: TierCacheMetrics.staleServes, dimensions: [("cache", cache)], factory: factory)
        loadDuration = Timer(label: TierCacheMetrics.loadDuration, dimensions: [("cache", cache)], factory: factory)
        decodeFailures = tiers.map { Counter(label: TierCacheMetrics.decodeFailures, dimensions: [("cache", cache), ("tier", $0)], factory: factory) }
    }
}
