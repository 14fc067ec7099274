public import TierCache
import Logging

/// A value of the warm set: hydrated or built at INIT, then read from its cache.
public final class WarmValue<Value: Codable & Sendable>: Sendable {
    /// The key.
    public let key: CacheKey
    /// The cache that holds it.
    public let cache: Cache<Value>
    /// How long a built value stays fresh; the cache's default when nil.
    public let ttl: Duration?
    /// Whether building the value is coordinated across processes; the cache's
    /// ``Cache/Configuration/coordination`` when nil.
    public let coordination: LoadCoordination?
    let loader: @Sendable () async throws -> Value
    private let box = LockedValueBox<WarmResult<Value>?>(nil)

    init(key: CacheKey, cache: Cache<Value>, ttl: Duration?, coordination: LoadCoordination?,
         loader: @escaping @Sendable () async throws -> Value) {
        self.key = key
        self.cache = cache
        self.ttl = ttl
        self.coordination = coordination
        self.loader = loader
    }

    /// What INIT produced (value and provenance), or nil before INIT.
    public var initResult: WarmResult<Value>? { box.withLock { $0 } }

    /// The current value: from memory when fresh, else the byte tiers, else the loader
    /// (``Cache/getOrLoad(_:ttl:staleFor:coordination:loader:)``). When the cache has a `RefreshAheadPolicy`
    /// and the value is late in its lifetime, this read also starts a refresh with the loader,
    /// which the runtime's flush before the response awaits.
    /// - Throws: the loader's error when no tier has a usable value.
    public func get() async throws -> Value {
        try await cache.getOrLoad(key, ttl: ttl, coordination: coordination, loader: loader).value
    }

    func set(_ result: WarmResult<Value>) { box.withLock { $0 = result } }
}

/// What INIT produced for one warm-set member.
public struct WarmResult<Value: Sendable>: Sendable {
    /// The value.
    public var value: Value
    /// Where it came from (`.tier("pack")` for a packed warm set, `.loader` when built).
    public var source: CacheSource
    /// Whether it is past its fresh-until time (its loader failed, so the stale value is used).
    public var isStale: Bool
    /// Until when it is fresh.
    public var freshUntil: WallTime
    /// Until when it may be served stale.
    public var staleUntil: WallTime
}

/// The values a function hydrates at INIT: keys, each with its cache and its loader (the full
/// initialization). Values may be of different types.
///
/// At INIT, ``LambdaRuntime`` reads every key in parallel under one deadline
/// (``LambdaRuntime/Configuration/hydrationDeadline``). Whatever misses, is stale, fails or
/// times out is built by its loader (in parallel), put into memory at once and persisted in the
/// background; the runtime flushes those writes under the flush deadline. A loader that throws
/// while a stale value exists leaves the stale value in use; one that throws with nothing to
/// fall back on fails INIT (`/init/error`).
///
/// With ``LoadCoordination`` on (per member, per warm set, or in the member's cache), a member
/// that missed everywhere takes a lease before its loader runs (see `S3LeaseCoordinator`): of many
/// environments starting together, one builds; the others wait for its entry, within the
/// coordinator's deadline, and count it as hydrated. A packed warm set (``pack``) is not
/// coordinated at INIT: its members are stored only inside the pack, where a waiting process's
/// lease cannot see them appear.
public struct WarmSet: Sendable {
    /// Where a packed warm set is stored: one object holding every member's envelope, so
    /// hydration costs one GET.
    public struct Pack: Sendable {
        /// The chain holding the packed object (usually the same tiers as the members' caches).
        public var chain: TierChain
        /// The packed object's key.
        public var key: CacheKey
        /// How long a rewritten pack is fresh and then usable stale.
        public var ttl: Duration
        /// How long after `ttl` the pack may still be read.
        public var staleFor: Duration

        /// Creates a pack location.
        public init(chain: TierChain, key: CacheKey, ttl: Duration = .seconds(15 * 60), staleFor: Duration = .seconds(60 * 60)) {
            self.chain = chain
            self.key = key
            self.ttl = ttl
            self.staleFor = staleFor
        }
    }

    var items: [WarmItem] = []
    /// When set, members are read from and written to one packed object instead of one each.
    public var pack: Pack?
    /// Coordination for members added afterwards that do not set their own; nil leaves it to
    /// each member's cache (``Cache/Configuration/coordination``).
    public var coordination: LoadCoordination?

    /// Creates an empty warm set.
    /// - Parameters:
    ///   - pack: where a packed warm set is stored, or nil for one object per member.
    ///   - coordination: whether members' loads are coordinated across processes (see
    ///     ``LoadCoordinator``); nil leaves it to each member's cache.
    public init(pack: Pack? = nil, coordination: LoadCoordination? = nil) {
        self.pack = pack
        self.coordination = coordination
    }

    /// The number of members.
    public var count: Int { items.count }

    /// Adds a member.
    /// - Parameters:
    ///   - key: its key (see ``LambdaEnvironment/cacheKey(_:schemaVersion:)`` for the default shape).
    ///   - cache: the cache it lives in; its chain is flushed before every response.
    ///   - ttl: how long a built value stays fresh; the cache's default when nil.
    ///   - coordination: whether building it is coordinated across processes; the warm set's
    ///     ``coordination``, then the cache's, when nil.
    ///   - loader: the full initialization of this value.
    /// - Returns: a handle for reading the value after INIT.
    @discardableResult
    public mutating func add<Value: Codable & Sendable>(
        _ key: CacheKey, in cache: Cache<Value>, ttl: Duration? = nil, coordination: LoadCoordination? = nil,
        loader: @escaping @Sendable () async throws -> Value
    ) -> WarmValue<Value> {
        let handle = WarmValue(key: key, cache: cache, ttl: ttl, coordination: coordination ?? self.coordination, loader: loader)
        items.append(WarmItem(handle))
        return handle
    }
}

/// One member, type-erased.
struct WarmItem: Sendable {
    enum ReadOutcome: Sendable {
        case fresh(CacheSource)
        case stale(CacheSource)
    }

    let key: CacheKey
    let chain: TierChain
    /// The cache's refreshes, which every flush awaits.
    let refreshes: RefreshWaiter
    /// Reads the member from the cache (memory, then tiers); the value is kept when found.
    let read: @Sendable () async -> ReadOutcome?
    /// Decodes a packed envelope into memory; nil when it does not decode or is unusable.
    let adopt: @Sendable (CacheEntry, WallTime) -> ReadOutcome?
    /// Runs the loader (after taking a lease when coordinated), keeps the value in memory, and
    /// returns the envelope to persist with the lease to release once it is stored; no envelope
    /// when another process stored the entry while this one waited (read into memory). The
    /// argument says whether coordination may apply (not for a packed warm set).
    let build: @Sendable (_ coordinated: Bool) async throws -> (entry: CacheEntry?, turn: CoordinatedTurn?)
    /// The envelope of the current value (for a repacked object).
    let export: @Sendable () -> CacheEntry?

    init<Value: Codable & Sendable>(_ handle: WarmValue<Value>) {
        let cache = handle.cache
        let key = handle.key
        self.key = key
        self.chain = cache.chain
        self.refreshes = RefreshWaiter(cache)
        read = {
            guard let found = await cache.get(key, allowStale: true) else { return nil }
            handle.set(WarmResult(value: found.value, source: found.source, isStale: found.isStale,
                                  freshUntil: found.freshUntil, staleUntil: found.staleUntil))
            return found.isStale ? .stale(found.source) : .fresh(found.source)
        }
        adopt = { entry, now in
            guard entry.key == key, entry.isUsable(at: now), let value = try? cache.decode(entry) else { return nil }
            cache.keepInMemory(key, value: value, weight: Int(clamping: entry.uncompressedLength),
                               createdAt: entry.createdAt, freshUntil: entry.freshUntil, staleUntil: entry.staleUntil)
            let stale = !entry.isFresh(at: now)
            handle.set(WarmResult(value: value, source: .tier("pack"), isStale: stale,
                                   freshUntil: entry.freshUntil, staleUntil: entry.staleUntil))
            return stale ? .stale(.tier("pack")) : .fresh(.tier("pack"))
        }
        build = { coordinated in
            let configuration = cache.configuration
            let turn = await (coordinated ? handle.coordination ?? configuration.coordination : .off).begin(
                key, cacheName: configuration.name, factory: configuration.metricsFactory, logger: configuration.logger)
            if let turn, turn.hasAppeared {
                if let found = await cache.get(key) {
                    handle.set(WarmResult(value: found.value, source: found.source, isStale: false,
                                          freshUntil: found.freshUntil, staleUntil: found.staleUntil))
                    return (nil, nil)
                }
                turn.unreadable(key)
            }
            let value: Value
            do {
                value = try await handle.loader()
            } catch {
                await turn?.release()
                throw error
            }
            let now = cache.configuration.clock.now()
            let fresh = now.advanced(by: handle.ttl ?? cache.configuration.defaultTTL)
            let stale = fresh.advanced(by: cache.configuration.defaultStaleFor)
            let entry: CacheEntry
            do {
                entry = try cache.encode(key, value: value, createdAt: now, freshUntil: fresh, staleUntil: stale)
            } catch {
                await turn?.release()  // nothing will be stored: let the next process build it
                throw error
            }
            cache.keepInMemory(key, value: value, weight: Int(clamping: entry.uncompressedLength), createdAt: now, freshUntil: fresh, staleUntil: stale)
            handle.set(WarmResult(value: value, source: .loader, isStale: false, freshUntil: fresh, staleUntil: stale))
            return (entry, turn)
        }
        export = {
            guard let result = handle.initResult else { return nil }
            return try? cache.encode(key, value: result.value, createdAt: cache.configuration.clock.now(),
                                     freshUntil: result.freshUntil, staleUntil: result.staleUntil)
        }
    }
}

/// What INIT hydration did.
public struct HydrationReport: Sendable {
    /// Members found fresh in a tier (or the pack).
    public var hydrated: Int
    /// Members built by their loader.
    public var built: Int
    /// Members whose loader failed and that run on a stale value.
    public var stale: Int
    /// How long the read phase took (bounded by the hydration deadline).
    public var readDuration: Duration
    /// How long the whole hydration took (reads and loaders).
    public var duration: Duration
    /// Whether every member was hydrated without running a loader.
    public var fullyHydrated: Bool { built == 0 && stale == 0 }
}

/// The packed object's payload: `u32 count`, then per member `u32 length` + envelope bytes
/// (big-endian). Members keep their own serializer and codec.
enum WarmPackFormat {
    static let serializerID = SerializerID(rawValue: 0xF0)

    static func encode(_ entries: [CacheEntry]) -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).bigEndian) { out.append(contentsOf: $0) } }
        u32(entries.count)
        for entry in entries {
            let bytes = entry.encoded()
            u32(bytes.count)
            out += bytes
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> [CacheEntry] {
        var offset = 0
        func u32() -> Int? {
            guard offset + 4 <= bytes.count else { return nil }
            defer { offset += 4 }
            return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        }
        guard let count = u32() else { return [] }
        var entries: [CacheEntry] = []
        for _ in 0..<count {
            guard let length = u32(), offset + length <= bytes.count else { break }
            if let entry = try? CacheEntry(decoding: Array(bytes[offset..<offset + length])) { entries.append(entry) }
            offset += length
        }
        return entries
    }
}

extension WarmSet {
    /// Hydrates every member; see the type's documentation.
    /// - Throws: ``LambdaRuntimeError`` (`.warmSetUnavailable`) naming the first member whose
    ///   loader failed with no stale value to fall back on.
    func hydrate(deadline: Duration, flusher: Flusher, logger: Logger) async throws -> HydrationReport {
        let start = ContinuousClock.now
        for item in items {
            flusher.register(item.chain)
            flusher.register(item.refreshes)
        }
        if let pack { flusher.register(pack.chain) }

        // Phase 1: every read in parallel under one deadline; late answers are ignored.
        let box = LockedValueBox((closed: false, results: [Int: WarmItem.ReadOutcome]()))
        let items = self.items
        if let pack {
            _ = try? await withDeadline(deadline) {
                let now = SystemCacheClock().now()
                guard let hit = await pack.chain.get(pack.key, now: now) else { return }
                let members = WarmPackFormat.decode(hit.entry.payload)
                let byKey = Dictionary(members.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
                for (index, item) in items.enumerated() {
                    guard let entry = byKey[item.key], let outcome = item.adopt(entry, now) else { continue }
                    box.withLock { if !$0.closed { $0.results[index] = outcome } }
                }
            }
        } else {
            _ = try? await withDeadline(deadline) {
                await withTaskGroup(of: Void.self) { group in
                    for (index, item) in items.enumerated() {
                        group.addTask {
                            guard let outcome = await item.read() else { return }
                            box.withLock { if !$0.closed { $0.results[index] = outcome } }
                        }
                    }
                }
            }
        }
        let reads = box.withLock { state in
            state.closed = true
            return state.results
        }
        let readDuration = ContinuousClock.now - start

        // Phase 2: build what is missing or stale, in parallel; persist in the background.
        var report = HydrationReport(hydrated: 0, built: 0, stale: 0, readDuration: readDuration, duration: .zero)
        var toBuild: [Int] = []
        for index in items.indices {
            if case .fresh = reads[index] { report.hydrated += 1 } else { toBuild.append(index) }
        }
        let pack = self.pack
        // Leases held for built members: released once their entries are stored everywhere.
        var turns: [(CacheKey, CoordinatedTurn)] = []
        var stored = 0
        let builtEntries = try await withThrowingTaskGroup(of: (Int, CacheEntry?, CoordinatedTurn?, Bool).self) { group in
            for index in toBuild {
                let item = items[index]
                let hadStale = reads[index] != nil
                group.addTask {
                    do {
                        let built = try await item.build(pack == nil)
                        return (index, built.entry, built.turn, built.entry == nil)
                    } catch {
                        guard hadStale else {
                            throw LambdaRuntimeError(.warmSetUnavailable, "warm-set value \(item.key) could not be built: \(error)")
                        }
                        logger.warning("warm-set loader failed; running on the stale value", metadata: [
                            "key": "\(item.key)", "error": "\(error)",
                        ])
                        return (index, nil, nil, false)
                    }
                }
            }
            var entries: [Int: CacheEntry] = [:]
            for try await (index, entry, turn, appeared) in group {
                if let entry { entries[index] = entry }
                if let turn { turns.append((items[index].key, turn)) }
                if appeared { stored += 1 }
            }
            return entries
        }
        report.built = builtEntries.count
        report.hydrated += stored
        report.stale = toBuild.count - builtEntries.count - stored

        if !builtEntries.isEmpty {
            if let pack {
                var members: [CacheEntry] = []
                for (index, item) in items.enumerated() {
                    if let entry = builtEntries[index] ?? item.export() { members.append(entry) }
                }
                let now = SystemCacheClock().now()
                let payload = WarmPackFormat.encode(members)
                let fresh = now.advanced(by: pack.ttl)
                let packed = CacheEntry(key: pack.key, serializerID: WarmPackFormat.serializerID, codecID: .identity,
                                        createdAt: now, freshUntil: fresh, staleUntil: fresh.advanced(by: pack.staleFor),
                                        uncompressedLength: UInt64(payload.count), payload: payload)
                flusher.track { await pack.chain.put(packed) }  // packs are not coordinated: no lease
            } else {
                for (index, entry) in builtEntries {
                    let chain = items[index].chain
                    let turn = turns.first { $0.0 == items[index].key }?.1
                    flusher.track {
                        if !chain.isEmpty {
                            await chain.put(entry)
                            await chain.settle(entry.key)
                        }
                        await turn?.release()
                    }
                }
            }
        }
        report.duration = ContinuousClock.now - start
        logger.info("warm set hydrated", metadata: [
            "hydrated": "\(report.hydrated)", "built": "\(report.built)", "stale": "\(report.stale)",
            "ms": "\(report.duration.milliseconds)",
        ])
        return report
    }
}

extension Duration {
    /// Whole and fractional milliseconds.
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
