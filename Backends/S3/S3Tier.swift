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
/// Reads revalidate: the tier remembers the ETag of the last entries it read or wrote (a bounded
/// map) and sends `If-None-Match`; a 304 returns the remembered entry without a download.
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
            putOptions: S3PutOptions = S3PutOptions()
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
        }
    }

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

    public var name: String { configuration.name }
    /// The configuration in use.
    public let configuration: Configuration
    /// The client requests go through.
    public let client: S3Client
    private let logger: Logger
    private let revalidation: LockedValueBox<RevalidationCache>
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
        self.revalidation = LockedValueBox(RevalidationCache(capacity: configuration.revalidationCapacity))
        let factory = metricsFactory ?? MetricsSystem.factory
        revalidated = Counter(label: "tiercache_s3_revalidations_total",
                              dimensions: [("tier", configuration.name), ("result", "notModified")], factory: factory)
        refetched = Counter(label: "tiercache_s3_revalidations_total",
                            dimensions: [("tier", configuration.name), ("result", "changed")], factory: factory)
        writesLost = Counter(label: "tiercache_s3_writes_lost_total", dimensions: [("tier", configuration.name)], factory: factory)
    }

    // MARK: - CacheTier

    public func get(_ key: CacheKey) async throws -> CacheEntry? {
        let objectKey = objectKey(for: key)
        let remembered = revalidation.withLock { $0.get(objectKey) }
        let object: S3Object?
        do {
            object = try await client.getObject(bucket: configuration.bucket, key: objectKey, ifNoneMatch: remembered?.etag,
                                                deadline: ContinuousClock.now.advanced(by: configuration.readTimeout))
        } catch {
            throw error.tierCacheError
        }
        guard let object else {
            revalidation.withLock { $0.remove(objectKey) }
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

    public func put(_ entry: CacheEntry) async throws {
        let objectKey = objectKey(for: entry.key)
        let body = entry.encoded()
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

    public func remove(_ key: CacheKey) async throws {
        let objectKey = objectKey(for: key)
        revalidation.withLock { $0.remove(objectKey) }
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

    /// Installs (or replaces) the bucket lifecycle rule that expires this tier's objects
    /// `days` after they were written (the seed's 24 h is `days: 1`). Other rules are kept.
    /// - Throws: ``S3Error``.
    public func applyExpirationLifecycle(days: Int = 1) async throws(S3Error) {
        let ruleID = "tiercache-expire-" + (configuration.prefix.isEmpty ? "all" : configuration.prefix)
        var rules = try await client.getBucketLifecycle(bucket: configuration.bucket).filter { $0.id != ruleID }
        rules.append(S3LifecycleRule(id: ruleID, prefix: configuration.prefix.isEmpty ? "" : configuration.prefix + "/",
                                     expirationDays: days))
        try await client.putBucketLifecycle(bucket: configuration.bucket, rules: rules)
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
        revalidation.withLock { cache in
            if let etag, size <= configuration.revalidationMaxEntryBytes {
                cache.set(objectKey, RevalidationCache.Item(etag: etag, entry: entry))
            } else {
                cache.remove(objectKey)
            }
        }
    }
}

/// A bounded map of object key -> (ETag, entry), evicting the least recently inserted.
struct RevalidationCache {
    struct Item {
        var etag: String
        var entry: CacheEntry
    }

    let capacity: Int
    private var items: [String: Item] = [:]
    private var order: [String] = []
    private var head = 0

    init(capacity: Int) { self.capacity = max(0, capacity) }

    func get(_ key: String) -> Item? { items[key] }

    mutating func set(_ key: String, _ item: Item) {
        guard capacity > 0 else { return }
        if items.updateValue(item, forKey: key) == nil {
            order.append(key)
            while items.count > capacity, head < order.count {
                items.removeValue(forKey: order[head])
                head += 1
            }
            if head > 1024, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    mutating func remove(_ key: String) {
        items.removeValue(forKey: key)
    }
}
