public import CoreMetrics
public import Logging
import Metrics

/// Byte tiers, fastest first, read in order and written per tier.
///
/// - Reads: the first fresh hit wins and is promoted into the tiers above it with the entry's
///   remaining lifetime (its absolute expiry times are kept, so nothing is refreshed by copying).
///   A stale hit is remembered while lower tiers are tried; it is returned, flagged stale, only
///   when no tier has a fresh entry. Each tier is read under its own deadline; a tier that throws,
///   times out or returns an entry for another key is a miss: counted, logged, never thrown.
/// - Writes: write-through tiers are awaited; write-behind tiers are written in the background,
///   in order per key, and ``flush(deadline:)`` awaits them. Write errors are counted and logged.
public final class TierChain: Sendable {
    /// How writes reach a tier.
    public enum WriteMode: Sendable, Hashable {
        /// The write is awaited by the caller.
        case writeThrough
        /// The write runs in the background; ``TierChain/flush(deadline:)`` awaits it.
        case writeBehind
    }

    /// A tier and how the chain treats it.
    public struct Tier: Sendable {
        /// The tier.
        public var tier: any CacheTier
        /// How long a read may take before it counts as a miss; nil for no deadline.
        public var readDeadline: Duration?
        /// How long a write or remove may take before it is abandoned (counted, logged).
        public var writeDeadline: Duration?
        /// How writes reach the tier.
        public var writeMode: WriteMode

        /// Creates a tier entry.
        public init(_ tier: any CacheTier, readDeadline: Duration?, writeDeadline: Duration? = .seconds(5), writeMode: WriteMode) {
            self.tier = tier
            self.readDeadline = readDeadline
            self.writeDeadline = writeDeadline
            self.writeMode = writeMode
        }

        /// A local tier (disk): 50 ms read deadline, write-through.
        public static func local(_ tier: any CacheTier, readDeadline: Duration = .milliseconds(50)) -> Tier {
            Tier(tier, readDeadline: readDeadline, writeDeadline: .seconds(1), writeMode: .writeThrough)
        }

        /// A remote tier (S3): 200 ms read deadline (the seed's INIT budget), write-behind.
        public static func remote(_ tier: any CacheTier, readDeadline: Duration = .milliseconds(200)) -> Tier {
            Tier(tier, readDeadline: readDeadline, writeDeadline: .seconds(5), writeMode: .writeBehind)
        }
    }

    /// Settings of a chain.
    public struct Configuration: Sendable {
        /// The `cache` dimension on metrics.
        public var metricsLabel: String
        /// Write-behind operations allowed in flight before new writes are awaited instead
        /// (back-pressure rather than unbounded memory).
        public var maxPendingWrites: Int
        /// Where log lines go.
        public var logger: Logger
        /// Where metrics go.
        public var metricsFactory: any MetricsFactory

        /// Creates a configuration.
        public init(
            metricsLabel: String = "default", maxPendingWrites: Int = 1024, logger: Logger = .tierCacheNoOp,
            metricsFactory: any MetricsFactory = MetricsSystem.factory
        ) {
            self.metricsLabel = metricsLabel
            self.maxPendingWrites = maxPendingWrites
            self.logger = logger
            self.metricsFactory = metricsFactory
        }
    }

    /// A successful read.
    public struct Hit: Sendable {
        /// The entry.
        public var entry: CacheEntry
        /// The name of the tier it came from.
        public var tierName: String
        /// The position of that tier in the chain (0 is the fastest).
        public var tierIndex: Int
        /// Whether the entry is past its fresh-until time.
        public var isStale: Bool
    }

    /// What a flush achieved.
    public struct FlushResult: Sendable, Hashable {
        /// Write-behind operations that finished (successfully or not) during the flush.
        public var completed: Int
        /// Operations still running at the deadline; they go on in the background.
        public var pending: Int
    }

    /// The tiers, fastest first.
    public let tiers: [Tier]
    let configuration: Configuration
    let metrics: [TierMetrics]
    let writes: WriteBehindQueue
    /// Keeps reads that overlap a `remove` from promoting what they read (see ``RemovalFence``).
    package let fence = RemovalFence()
    var logger: Logger { configuration.logger }

    /// Creates a chain over `tiers`, fastest first.
    public init(_ tiers: [Tier], configuration: Configuration = .init()) {
        self.tiers = tiers
        self.configuration = configuration
        self.metrics = tiers.map { TierMetrics(cache: configuration.metricsLabel, tier: $0.tier.name, factory: configuration.metricsFactory) }
        self.writes = WriteBehindQueue(cache: configuration.metricsLabel, factory: configuration.metricsFactory)
    }

    /// Whether the chain has no tiers.
    public var isEmpty: Bool { tiers.isEmpty }

    // MARK: Reads

    /// Reads `key`: the first fresh hit, else the first stale-but-usable one, else nil.
    public func get(_ key: CacheKey, now: WallTime) async -> Hit? {
        let ticket = fence.enter(key)
        defer { fence.leave(ticket) }
        return await get(key, now: now, ticket: ticket)
    }

    /// Reads `key` under a ticket the caller holds from ``fence`` (``Cache`` keeps it until its
    /// memory fill); a hit is promoted only if no `remove` of the key overlapped the read.
    package func get(_ key: CacheKey, now: WallTime, ticket: RemovalFence.Ticket) async -> Hit? {
        var stale: Hit?
        for index in tiers.indices {
            guard let entry = await read(key, from: index, now: now) else { continue }
            if entry.isFresh(at: now) {
                fence.unlessRemoved(ticket) { promote(entry, above: index) }
                return Hit(entry: entry, tierName: tiers[index].tier.name, tierIndex: index, isStale: false)
            }
            if stale == nil {
                stale = Hit(entry: entry, tierName: tiers[index].tier.name, tierIndex: index, isStale: true)
            }
        }
        return stale
    }

    /// Reads several keys, each tier once with a batch read for the keys still missing.
    public func getMany(_ keys: [CacheKey], now: WallTime) async -> [CacheKey: Hit] {
        var found: [CacheKey: Hit] = [:]
        var remaining = Array(Set(keys))
        let tickets = Dictionary(uniqueKeysWithValues: remaining.map { ($0, fence.enter($0)) })
        defer { for ticket in tickets.values { fence.leave(ticket) } }
        for index in tiers.indices where !remaining.isEmpty {
            let tier = tiers[index]
            let metrics = metrics[index]
            let start = ContinuousClock.now
            let batch: [CacheKey: CacheEntry]
            do {
                let wanted = remaining
                batch = try await withDeadline(tier.readDeadline) { try await tier.tier.getMany(wanted) }
            } catch {
                record(error, reading: "\(remaining.count) keys", from: index)
                continue
            }
            metrics.getDuration.recordInterval(since: start)
            var stillMissing: [CacheKey] = []
            for key in remaining {
                guard let entry = batch[key], let usable = accept(entry, for: key, from: index, now: now) else {
                    stillMissing.append(key)
                    continue
                }
                if usable.isFresh(at: now) {
                    fence.unlessRemoved(tickets[key]!) { promote(usable, above: index) }
                    found[key] = Hit(entry: usable, tierName: tier.tier.name, tierIndex: index, isStale: false)
                } else {
                    if found[key] == nil {
                        found[key] = Hit(entry: usable, tierName: tier.tier.name, tierIndex: index, isStale: true)
                    }
                    stillMissing.append(key)
                }
            }
            remaining = stillMissing
        }
        return found
    }

    private func read(_ key: CacheKey, from index: Int, now: WallTime) async -> CacheEntry? {
        let tier = tiers[index]
        let start = ContinuousClock.now
        let entry: CacheEntry?
        do {
            entry = try await withDeadline(tier.readDeadline) { try await tier.tier.get(key) }
        } catch {
            record(error, reading: key.rendered, from: index)
            return nil
        }
        metrics[index].getDuration.recordInterval(since: start)
        guard let entry else {
            metrics[index].getMiss.increment()
            return nil
        }
        return accept(entry, for: key, from: index, now: now)
    }

    /// Checks an entry a tier returned and counts the outcome; nil when it is not usable.
    private func accept(_ entry: CacheEntry, for key: CacheKey, from index: Int, now: WallTime) -> CacheEntry? {
        let metrics = metrics[index]
        guard entry.key == key else {
            metrics.getCorrupt.increment()
            logger.warning("tier returned an entry for another key", metadata: [
                "tier": "\(tiers[index].tier.name)", "key": "\(key)", "entryKey": "\(entry.key)",
            ])
            return nil
        }
        metrics.bytesRead.increment(by: Int64(clamping: entry.payload.count))
        if entry.isFresh(at: now) {
            metrics.getHit.increment()
            return entry
        }
        if entry.isUsable(at: now) {
            metrics.getStale.increment()
            return entry
        }
        metrics.getMiss.increment()
        return nil
    }

    private func record(_ error: any Error, reading what: String, from index: Int) {
        let name = tiers[index].tier.name
        if let error = error as? TierCacheError, error.code == .timeout {
            metrics[index].getTimeout.increment()
            logger.notice("tier read timed out; treated as a miss", metadata: ["tier": "\(name)", "key": "\(what)"])
        } else if let error = error as? TierCacheError,
                  [.checksumMismatch, .malformedEntry, .unsupportedFormatVersion, .keyMismatch].contains(error.code) {
            metrics[index].getCorrupt.increment()
            logger.warning("tier returned a corrupt entry; treated as a miss", metadata: [
                "tier": "\(name)", "key": "\(what)", "error": "\(error)",
            ])
        } else {
            metrics[index].getError.increment()
            logger.warning("tier read failed; treated as a miss", metadata: [
                "tier": "\(name)", "key": "\(what)", "error": "\(error)",
            ])
        }
    }

    /// Copies an entry found in tier `index` into every tier above it, in the background.
    private func promote(_ entry: CacheEntry, above index: Int) {
        for upper in 0..<index {
            metrics[upper].promotions.increment()
            enqueue(.put(entry), to: upper)
        }
    }

    // MARK: Writes

    private enum Write: Sendable {
        case put(CacheEntry)
        case remove(CacheKey)

        var key: CacheKey {
            switch self {
            case .put(let entry): entry.key
            case .remove(let key): key
            }
        }
    }

    /// Writes `entry` to every tier: awaited for write-through tiers, queued for write-behind ones.
    /// Failures are counted and logged, never thrown. A read of the key in flight, which may hold
    /// an older entry, promotes it nowhere (``RemovalFence``).
    public func put(_ entry: CacheEntry) async {
        fence.supersede(entry.key) {}
        await write(.put(entry))
    }

    /// Removes `key` from every tier: lowest tier first, each awaited (write-behind tiers too,
    /// after any write queued for the key), so that once this returns no tier holds the entry for
    /// another process's read to copy back up. A read in this process that overlaps the remove
    /// does not promote what it read (``RemovalFence``); a read in another process sharing a
    /// tier still can (docs/reliability.md).
    public func remove(_ key: CacheKey) async {
        await remove(key, whenStarting: {})
    }

    /// Removes `key`, running `whenStarting` (short; the memory tier's removal) at the point from
    /// which overlapping reads no longer store what they read.
    package func remove(_ key: CacheKey, whenStarting: () -> Void) async {
        fence.beginRemoval(key, whenStarting)
        defer { fence.endRemoval(key) }
        for index in tiers.indices.reversed() {
            await writes.last(for: key, tier: index)?.value
            await perform(.remove(key), on: index)
        }
    }

    private func write(_ operation: Write) async {
        await withTaskGroup(of: Void.self) { group in
            for index in tiers.indices {
                if tiers[index].writeMode == .writeBehind, writes.count < configuration.maxPendingWrites {
                    enqueue(operation, to: index)
                } else {
                    // Write-through, or write-behind under back-pressure: awaited, after any queued
                    // write for the same key so the order per key holds.
                    let previous = writes.last(for: operation.key, tier: index)
                    group.addTask {
                        await previous?.value
                        await self.perform(operation, on: index)
                    }
                }
            }
        }
    }

    private func enqueue(_ operation: Write, to index: Int) {
        writes.submit(key: operation.key, tier: index) {
            await self.perform(operation, on: index)
        }
    }

    private func perform(_ operation: Write, on index: Int) async {
        let tier = tiers[index]
        let metrics = metrics[index]
        let start = ContinuousClock.now
        do {
            switch operation {
            case .put(let entry):
                try await withDeadline(tier.writeDeadline) { try await tier.tier.put(entry) }
                metrics.putDuration.recordInterval(since: start)
                metrics.putOK.increment()
                metrics.bytesWritten.increment(by: Int64(clamping: entry.payload.count))
            case .remove(let key):
                try await withDeadline(tier.writeDeadline) { try await tier.tier.remove(key) }
                metrics.removeOK.increment()
            }
        } catch {
            let timedOut = (error as? TierCacheError)?.code == .timeout
            switch operation {
            case .put: (timedOut ? metrics.putTimeout : metrics.putError).increment()
            case .remove: metrics.removeError.increment()
            }
            logger.warning("tier write failed; the entry is not stored there", metadata: [
                "tier": "\(tier.tier.name)", "key": "\(operation.key)", "error": "\(error)",
            ])
        }
    }

    /// Waits for every write-behind operation queued so far, up to `deadline`.
    ///
    /// Operations still running at the deadline are not dropped: they go on in the background
    /// and are reported in ``FlushResult/pending`` (and logged).
    @discardableResult
    public func flush(deadline: Duration = .seconds(5)) async -> FlushResult {
        let result = await writes.flush(deadline: deadline)
        if result.pending > 0 {
            logger.warning("flush deadline passed with writes still pending", metadata: [
                "pending": "\(result.pending)", "deadline": "\(deadline)",
            ])
        }
        return result
    }

    /// Write-behind operations not yet finished.
    public var pendingWrites: Int { writes.count }
}

extension Logger {
    /// A logger that drops everything: the default wherever the caller passes none.
    public static var tierCacheNoOp: Logger {
        Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
