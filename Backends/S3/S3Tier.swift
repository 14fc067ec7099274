public import Logging
public import Metrics
public import TierCache

/// A ``CacheTier`` over an S3 bucket: each entry is one object whose body is the envelope
/// (``CacheEntry/encoded()``).
///
/// Object keys are `<prefix>/<namespace>/<name>.v<schema>` with the name percent-encoded (every
/// byte but `A-Z a-z 0-9 - _ . ~`, so `/` too: one key segment per name); when that would pass
/// S3's 1024-byte key limit the name part is the key's ``CacheKey/fingerprint`` instead (the
/// envelope holds the full key, and the chain checks it on read).
///
/// Expiry is mirrored in user metadata, so lifecycle tooling and the CLI can read it with a HEAD:
/// `x-amz-meta-fresh-until`, `x-amz-meta-stale-until`, `x-amz-meta-created-at` (milliseconds since
/// 1970, decimal), `x-amz-meta-schema-version` and `x-amz-meta-format-version`.
///
/// Reads revalidate: the tier remembers the ETag of the entries it read or wrote most recently
/// (a least-recently-used map bounded by ``Configuration/revalidationCapacity`` entries and
/// ``Configuration/revalidationMaxBytes`` bytes) and sends `If-None-Match`; a 304 returns the
/// remembered entry without a download.
///
/// Reads are bounded: an object above ``Configuration/maxEntryBytes`` is refused from its
/// `Content-Length` (or as soon as its body passes the limit) without being read whole, and is
/// thrown as ``TierCacheError/Code/sizeLimitExceeded`` (in a chain, a counted miss); an entry
/// above it is not written either.
///
/// Every operation runs under the tier's own deadline (``Configuration/readTimeout``,
/// ``Configuration/writeTimeout``) on top of the chain's; retries are the client's. Errors are
/// thrown as ``TierCacheError`` (`storage`, `timeout`, `cancelled`, or the envelope's decoding
/// codes); a missing object is a miss (nil), never an error.
public final class S3Tier: CacheTier {
    /// Tier settings; every one but the bucket has a default.
    public struct Configuration: Sendable {
        /// The tier's name in logs and metrics.
        public var name: String
        /// The bucket.
        public var bucket: String
        /// The key prefix (no leading or trailing `/`); empty for none.
        public var prefix: String
        /// Deadline for a read, retries included.
        public var readTimeout: Duration
        /// Deadline for a write or delete, retries included.
        public var writeTimeout: Duration
        /// Write with `If-None-Match: *`: the first writer of a key wins and later writes of the
        /// same key are dropped (counted and logged at debug) until it is removed.
        public var firstWriterWins: Bool
        /// How many ETags (with their entries) are remembered for revalidation; 0 turns it off.
        public var revalidationCapacity: Int
        /// Largest envelope kept for revalidation, in bytes.
        public var revalidationMaxEntryBytes: Int
        /// The byte budget of the revalidation memory (envelopes, keys and ETags together): the
        /// least recently used are dropped beyond it. Default 8 MiB.
        public var revalidationMaxBytes: Int
        /// The largest envelope read or written, in bytes (default 32 MiB). A GET announcing a
        /// larger object is refused before its body is read (so a planted or oversized object
        /// cannot exhaust a small function's memory); a larger entry is not written. ``Cache``
        /// also takes it into account for its decompression ceiling (``CacheTier/maxEntryBytes``).
        public var maxEntryBytes: Int
        /// Options for every PutObject (integrity, encryption, storage class); content type and
        /// metadata are set by the tier.
        public var putOptions: S3PutOptions

        /// Creates a configuration.
        public init(
            name: String = "s3",
            bucket: String,
            prefix: String = "tiercache",
            readTimeout: Duration = .seconds(2),
            writeTimeout: Duration = .seconds(10),
            firstWriterWins: Bool = false,
            revalidationCapacity: Int = 128,
            revalidationMaxEntryBytes: Int = 1 << 20,
            putOptions: S3PutOptions = S3PutOptions(),
            revalidationMaxBytes: Int = 8 << 20,
            maxEntryBytes: Int = S3Tier.defaultMaxEntryBytes
        ) {
            self.name = name
            self.bucket = bucket
            self.prefix = prefix
            self.readTimeout = readTimeout
            self.writeTimeout = writeTimeout
            self.firstWriterWins = firstWriterWins
            self.revalidationCapacity = revalidationCapacity
            self.revalidationMaxEntryBytes = revalidationMaxEntryBytes
            self.putOptions = putOptions
            self.revalidationMaxBytes = revalidationMaxBytes
            self.maxEntryBytes = maxEntryBytes
        }
    }

    /// ``Configuration/maxEntryBytes``' default, 32 MiB.
    public static let defaultMaxEntryBytes = 32 << 20

    /// Expiry and schema as mirrored in an object's metadata.
    public struct ObjectExpiry: Sendable, Hashable {
        /// The object key.
        public var objectKey: String
        /// Fresh until (soft expiry).
        public var freshUntil: WallTime
        /// Stale until (hard expiry).
        public var staleUntil: WallTime
        /// When the value was built, if recorded.
        public var createdAt: WallTime?
        /// The schema version.
        public var schemaVersion: UInt32
        /// The object's size in bytes.
        public var size: Int
    }

    /// S3's limit on key length, in bytes.
    public static let maxObjectKeyBytes = 1024

    /// The tier's name in logs and metrics (``Configuration/name``).
    public var name: String { configuration.name }
    /// The configuration in use.
    public let configuration: Configuration
    /// The client requests go through.
    public let client: S3Client
    /// ``Configuration/maxEntryBytes``.
    public var maxEntryBytes: Int? { configuration.maxEntryBytes }
    /// Bytes held by the revalidation memory now (at most ``Configuration/revalidationMaxBytes``);
    /// also reported as the gauge `tiercache_s3_revalidation_bytes`.
    public var revalidationBytes: Int { revalidation.withLock { $0.bytes } }
    /// Entries held by the revalidation memory now (at most ``Configuration/revalidationCapacity``).
    public var revalidationCount: Int { revalidation.withLock { $0.count } }
    /// Node slots allocated by the revalidation memory (never more than its capacity plus one).
    var revalidationSlots: Int { revalidation.withLock { $0.slots } }
    private let logger: Logger
    private let revalidation: LockedValueBox<RevalidationCache>
    private let revalidationGauge: Gauge
    private let revalidated: Counter
    private let refetched: Counter
    private let writesLost: Counter

    /// Creates a tier.
    /// - Parameters:
    ///   - client: the S3 client (share one per process).
    ///   - logger: `debug` for misses and dropped writes; never secrets or payloads.
    ///   - metricsFactory: where the tier's own counters go (`tiercache_s3_revalidations_total`
    ///     with `result` = `notModified` or `changed`, `tiercache_s3_writes_lost_total`); the chain
    ///     counts hits and misses itself.
    public init(client: S3Client, configuration: Configuration,
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() }),
                metricsFactory: (any MetricsFactory)? = nil) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        self.revalidation = LockedValueBox(RevalidationCache(capacity: configuration.revalidationCapacity,
                                                             maxBytes: configuration.revalidationMaxBytes))
        let factory = metricsFactory ?? MetricsSystem.factory
        revalidationGauge = Gauge(label: "tiercache_s3_revalidation_bytes", dimensions: [("tier", configuration.name)], factory: factory)
        revalidated = Counter(label: "tiercache_s3_revalidations_total",
                              dimensions: [("tier", configuration.name), ("result", "notModified")], factory: factory)
        refetched = Counter(label: "tiercache_s3_revalidations_total",
                            dimensions: [("tier", configuration.name), ("result", "changed")], factory: factory)
        writesLost = Counter(label: "tiercache_s3_writes_lost_total", dimensions: [("tier", configuration.name)], factory: factory)
    }

    // MARK: - CacheTier

    /// Reads the entry's object (revalidating a remembered copy with `If-None-Match`).
    /// - Returns: the entry, or nil when there is no object.
    /// - Throws: ``TierCacheError``: `storage` / `timeout` / `cancelled` for S3 failures (after the
    ///   client's retries, within ``Configuration/readTimeout``), or the envelope's decoding codes
    ///   for a corrupt object, `sizeLimitExceeded` for an object above
    ///   ``Configuration/maxEntryBytes``.
    public func get(_ key: CacheKey) async throws -> CacheEntry? {
        let objectKey = objectKey(for: key)
        let remembered = revalidation.withLock { $0.get(objectKey) }
        let object: S3Object?
        do {
            object = try await client.getObject(bucket: configuration.bucket, key: objectKey, ifNoneMatch: remembered?.etag,
                                                maxBodyBytes: configuration.maxEntryBytes,
                                                deadline: ContinuousClock.now.advanced(by: configuration.readTimeout))
        } catch {
            throw error.tierCacheError
        }
        guard let object else {
            forget(objectKey)
            logger.trace("s3 miss", metadata: ["key": "\(objectKey)"])
            return nil
        }
        if object.isNotModified, let remembered {
            revalidated.increment()
            return remembered.entry
        }
        if remembered != nil { refetched.increment() }
        let entry = try CacheEntry(decoding: object.body)
        remember(objectKey, etag: object.etag, entry: entry, size: object.body.count)
        return entry
    }

    /// Writes the entry's object with its expiry in metadata. With
    /// ``Configuration/firstWriterWins`` a write that loses the race is dropped and counted.
    /// - Throws: ``TierCacheError`` (`storage`, `timeout`, `cancelled`; `sizeLimitExceeded`,
    ///   without a request, for an envelope above ``Configuration/maxEntryBytes``).
    public func put(_ entry: CacheEntry) async throws {
        let objectKey = objectKey(for: entry.key)
        let body = entry.encoded()
        guard body.count <= configuration.maxEntryBytes else {
            throw TierCacheError(.sizeLimitExceeded,
                                 "entry \(entry.key) is \(body.count) bytes; the tier's maxEntryBytes is \(configuration.maxEntryBytes)")
        }
        var options = configuration.putOptions
        options.contentType = "application/vnd.tiercache.entry"
        options.metadata = Self.metadata(for: entry)
        if configuration.firstWriterWins { options.ifNoneMatch = "*" }
        do {
            let result = try await client.putObject(bucket: configuration.bucket, key: objectKey, body: body, options: options,
                                                    deadline: ContinuousClock.now.advanced(by: configuration.writeTimeout))
            remember(objectKey, etag: result.etag, entry: entry, size: body.count)
        } catch where error.code == .preconditionFailed && configuration.firstWriterWins {
            writesLost.increment()
            logger.debug("s3 write dropped: another writer created the key first", metadata: ["key": "\(objectKey)"])
        } catch {
            throw error.tierCacheError
        }
    }

    /// Deletes the entry's object (deleting a missing object succeeds).
    /// - Throws: ``TierCacheError`` (`storage`, `timeout`, `cancelled`).
    public func remove(_ key: CacheKey) async throws {
        let objectKey = objectKey(for: key)
        forget(objectKey)
        do {
            try await client.deleteObject(bucket: configuration.bucket, key: objectKey,
                                          deadline: ContinuousClock.now.advanced(by: configuration.writeTimeout))
        } catch {
            throw error.tierCacheError
        }
    }

    // MARK: - Beyond CacheTier

    /// Reads an entry's expiry from its object's metadata with a HEAD (no download).
    /// - Returns: nil when there is no object or it has no TierCache metadata.
    /// - Throws: ``TierCacheError`` as ``get(_:)`` does.
    public func expiry(of key: CacheKey) async throws -> ObjectExpiry? {
        let objectKey = objectKey(for: key)
        let head: S3Object?
        do {
            head = try await client.headObject(bucket: configuration.bucket, key: objectKey,
                                               deadline: ContinuousClock.now.advanced(by: configuration.readTimeout))
        } catch {
            throw error.tierCacheError
        }
        guard let head else { return nil }
        return Self.expiry(objectKey: objectKey, metadata: head.metadata, size: head.contentLength)
    }

    /// Reads expiry metadata as ``put(_:)`` writes it; nil when the fields are absent or malformed.
    public static func expiry(objectKey: String, metadata: [String: String], size: Int) -> ObjectExpiry? {
        guard let fresh = metadata["fresh-until"].flatMap({ Int64($0) }),
              let stale = metadata["stale-until"].flatMap({ Int64($0) }),
              let schema = metadata["schema-version"].flatMap({ UInt32($0) })
        else { return nil }
        return ObjectExpiry(objectKey: objectKey, freshUntil: WallTime(millisecondsSince1970: fresh),
                            staleUntil: WallTime(millisecondsSince1970: stale),
                            createdAt: metadata["created-at"].flatMap { Int64($0) }.map { WallTime(millisecondsSince1970: $0) },
                            schemaVersion: schema, size: size)
    }

    /// The ID of the lifecycle rule that expires this tier's objects:
    /// `tiercache-expire-<prefix>` (`tiercache-expire-all` without a prefix).
    public var expirationRuleID: String {
        "tiercache-expire-" + (configuration.prefix.isEmpty ? "all" : configuration.prefix)
    }

    /// The lifecycle rule that expires this tier's objects (its prefix plus `/`) `days` after
    /// they were written.
    public func expirationRule(days: Int) -> S3LifecycleConfiguration.Rule {
        S3LifecycleConfiguration.Rule(S3LifecycleRule(
            id: expirationRuleID, prefix: configuration.prefix.isEmpty ? "" : configuration.prefix + "/", expirationDays: days))
    }

    /// Installs (or replaces) the bucket lifecycle rule that expires this tier's objects `days`
    /// after they were written (the seed's 24 h is `days: 1`).
    ///
    /// Only the rule with ``expirationRuleID`` is touched: every other rule of the bucket is
    /// written back exactly as S3 returned it (see ``S3LifecycleConfiguration``), and so is the
    /// bucket's `x-amz-transition-default-minimum-object-size`. When the rule is already in
    /// place, nothing is written.
    /// - Parameter dryRun: read and compute the new configuration, but write nothing.
    /// - Returns: the configuration before and after.
    /// - Throws: ``S3Error``.
    @discardableResult
    public func applyExpirationLifecycle(days: Int = 1, dryRun: Bool = false) async throws(S3Error) -> S3LifecycleUpdate {
        let before = try await client.getBucketLifecycleConfiguration(bucket: configuration.bucket)
        let rule = expirationRule(days: days)
        let after: S3LifecycleConfiguration
        if let current = before.rule(id: rule.id), current.prefix == rule.prefix, current.expirationDays == rule.expirationDays,
           current.isEnabled, current.actions == rule.actions {
            after = before  // already in place (S3 may spell it differently): leave it
        } else {
            after = before.replacing(rule)
        }
        return try await update(before: before, after: after, dryRun: dryRun)
    }

    /// Removes the rule ``applyExpirationLifecycle(days:dryRun:)`` installs, keeping every other
    /// rule exactly as S3 returned it (with no rule left, the bucket's lifecycle is deleted, as S3
    /// accepts no empty configuration).
    /// - Parameter dryRun: read and compute the new configuration, but write nothing.
    /// - Returns: the configuration before and after (the same when there was no such rule).
    /// - Throws: ``S3Error``.
    @discardableResult
    public func removeExpirationLifecycle(dryRun: Bool = false) async throws(S3Error) -> S3LifecycleUpdate {
        let before = try await client.getBucketLifecycleConfiguration(bucket: configuration.bucket)
        return try await update(before: before, after: before.removing(id: expirationRuleID), dryRun: dryRun)
    }

    private func update(before: S3LifecycleConfiguration, after: S3LifecycleConfiguration, dryRun: Bool)
        async throws(S3Error) -> S3LifecycleUpdate
    {
        guard !dryRun, before != after else { return S3LifecycleUpdate(before: before, after: after, written: false) }
        try await client.putBucketLifecycleConfiguration(bucket: configuration.bucket, after)
        return S3LifecycleUpdate(before: before, after: after, written: true)
    }

    /// The object key for a cache key.
    public func objectKey(for key: CacheKey) -> String {
        Self.objectKey(for: key, prefix: configuration.prefix)
    }

    /// The object key for a cache key under `prefix` (see the type's documentation).
    public static func objectKey(for key: CacheKey, prefix: String) -> String {
        let base = prefix.isEmpty ? key.namespace + "/" : prefix + "/" + key.namespace + "/"
        let name = encodeName(key.name) + ".v" + String(key.schemaVersion)
        if base.utf8.count + name.utf8.count <= maxObjectKeyBytes { return base + name }
        return base + key.fingerprint
    }

    /// Percent-encodes every byte but `A-Z a-z 0-9 - _ . ~`.
    static func encodeName(_ name: String) -> String {
        PercentEncoding.encode(name.utf8, keepSlash: false)
    }

    static func metadata(for entry: CacheEntry) -> [String: String] {
        [
            "fresh-until": String(entry.freshUntil.millisecondsSince1970),
            "stale-until": String(entry.staleUntil.millisecondsSince1970),
            "created-at": String(entry.createdAt.millisecondsSince1970),
            "schema-version": String(entry.schemaVersion),
            "format-version": String(CacheEntry.formatVersion),
        ]
    }

    private func remember(_ objectKey: String, etag: String?, entry: CacheEntry, size: Int) {
        guard configuration.revalidationCapacity > 0 else { return }
        let bytes = revalidation.withLock { cache in
            if let etag, size <= configuration.revalidationMaxEntryBytes {
                cache.set(objectKey, RevalidationCache.Item(etag: etag, entry: entry), envelopeBytes: size)
            } else {
                cache.remove(objectKey)
            }
            return cache.bytes
        }
        revalidationGauge.record(bytes)
    }

    private func forget(_ objectKey: String) {
        guard configuration.revalidationCapacity > 0 else { return }
        let bytes = revalidation.withLock { cache in
            cache.remove(objectKey)
            return cache.bytes
        }
        revalidationGauge.record(bytes)
    }
}

/// A least-recently-used map of object key -> (ETag, entry), bounded by a count and a byte budget.
///
/// Nodes live in one array linked by index (most recent at `head`); a removed node's slot is
/// reused by the next insert, so put/remove cycles over ever new keys allocate nothing and the
/// array never holds more than `capacity + 1` slots.
struct RevalidationCache {
    struct Item {
        var etag: String
        var entry: CacheEntry
    }

    private struct Node {
        var key: String
        var item: Item?
        var size: Int
        var previous: Int
        var next: Int
    }

    let capacity: Int
    let maxBytes: Int
    private var index: [String: Int] = [:]
    private var nodes: [Node] = []
    private var freeSlots: [Int] = []
    private var head = -1
    private var tail = -1
    /// Bytes held: envelopes, keys and ETags.
    private(set) var bytes = 0

    init(capacity: Int, maxBytes: Int) {
        self.capacity = max(0, capacity)
        self.maxBytes = max(0, maxBytes)
    }

    /// Entries held.
    var count: Int { index.count }
    /// Node slots allocated.
    var slots: Int { nodes.count }

    /// The item for `key`, made the most recently used.
    mutating func get(_ key: String) -> Item? {
        guard let slot = index[key] else { return nil }
        moveToFront(slot)
        return nodes[slot].item
    }

    /// Stores `item` as the most recently used, then drops the least recently used entries
    /// while over the count or the byte budget. An item larger than the whole budget is not kept.
    mutating func set(_ key: String, _ item: Item, envelopeBytes: Int) {
        let size = envelopeBytes + key.utf8.count + item.etag.utf8.count
        guard capacity > 0, size <= maxBytes else {
            remove(key)
            return
        }
        if let slot = index[key] {
            bytes += size - nodes[slot].size
            nodes[slot].item = item
            nodes[slot].size = size
            moveToFront(slot)
        } else {
            let node = Node(key: key, item: item, size: size, previous: -1, next: head)
            let slot: Int
            if let reused = freeSlots.popLast() {
                slot = reused
                nodes[slot] = node
            } else {
                slot = nodes.count
                nodes.append(node)
            }
            if head >= 0 { nodes[head].previous = slot }
            head = slot
            if tail < 0 { tail = slot }
            index[key] = slot
            bytes += size
        }
        while index.count > capacity || bytes > maxBytes, tail >= 0 {
            remove(nodes[tail].key)
        }
    }

    mutating func remove(_ key: String) {
        guard let slot = index.removeValue(forKey: key) else { return }
        unlink(slot)
        bytes -= nodes[slot].size
        nodes[slot].item = nil
        nodes[slot].key = ""
        nodes[slot].size = 0
        freeSlots.append(slot)
    }

    private mutating func moveToFront(_ slot: Int) {
        guard slot != head else { return }
        unlink(slot)
        nodes[slot].previous = -1
        nodes[slot].next = head
        if head >= 0 { nodes[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }

    private mutating func unlink(_ slot: Int) {
        let previous = nodes[slot].previous
        let next = nodes[slot].next
        if previous >= 0 { nodes[previous].next = next } else { head = next }
        if next >= 0 { nodes[next].previous = previous } else { tail = previous }
        nodes[slot].previous = -1
        nodes[slot].next = -1
    }
}
