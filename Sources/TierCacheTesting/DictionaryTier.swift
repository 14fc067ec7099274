public import TierCache

/// A byte tier backed by a dictionary of encoded envelopes: a stand-in for a lower tier in tests.
/// It stores and returns the envelope's bytes, so every read goes through decoding and checksum
/// verification as with a real backend.
public final class DictionaryTier: CacheTier, @unchecked Sendable {
    public let name: String
    private let lock = Lock()
    private var storage: [CacheKey: [UInt8]] = [:]
    private var counts = (gets: 0, puts: 0, removes: 0)

    /// Creates an empty tier.
    public init(name: String = "dictionary") {
        self.name = name
    }

    public func get(_ key: CacheKey) async throws -> CacheEntry? {
        let bytes = lock.withLock {
            counts.gets += 1
            return storage[key]
        }
        return try bytes.map { try CacheEntry(decoding: $0) }
    }

    public func put(_ entry: CacheEntry) async throws {
        let bytes = entry.encoded()
        lock.withLock {
            counts.puts += 1
            storage[entry.key] = bytes
        }
    }

    public func remove(_ key: CacheKey) async throws {
        lock.withLock {
            counts.removes += 1
            storage[key] = nil
        }
    }

    /// The stored envelope bytes for `key`.
    public func rawBytes(for key: CacheKey) -> [UInt8]? { lock.withLock { storage[key] } }

    /// Replaces the stored bytes for `key` (to plant corrupt or foreign data).
    public func setRawBytes(_ bytes: [UInt8]?, for key: CacheKey) { lock.withLock { storage[key] = bytes } }

    /// Entries stored.
    public var count: Int { lock.withLock { storage.count } }
    /// Calls to get, put and remove so far.
    public var operationCounts: (gets: Int, puts: Int, removes: Int) { lock.withLock { counts } }
}
