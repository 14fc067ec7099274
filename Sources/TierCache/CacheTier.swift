/// A byte tier: a store of envelopes (``CacheEntry``) under ``CacheKey``s.
///
/// Implement this to plug in a backend of your own; nothing else in the library needs to change.
/// The ``TierChain`` around a tier enforces its read deadline, verifies what it returns (an entry
/// for another key is a miss) and turns anything it throws into a counted, logged miss, so a tier
/// may throw freely. Tiers should honour task cancellation.
public protocol CacheTier: Sendable {
    /// A short name for logs and metrics (`disk`, `s3`, …).
    var name: String { get }
    /// Reads the entry for `key`, or nil when there is none. Expired entries may be returned; the
    /// chain decides what is fresh.
    func get(_ key: CacheKey) async throws -> CacheEntry?
    /// Reads several entries; missing keys are absent from the result.
    func getMany(_ keys: [CacheKey]) async throws -> [CacheKey: CacheEntry]
    /// Stores an entry under `entry.key`, replacing any previous one.
    func put(_ entry: CacheEntry) async throws
    /// Removes the entry for `key`, if any.
    func remove(_ key: CacheKey) async throws
    /// The largest envelope (``CacheEntry/encoded()``) the tier stores or reads, in bytes, or nil
    /// when it sets no ceiling. ``Cache`` derives its decompression ceiling from it (see
    /// ``Cache/Configuration/maximumDecompressedSize``). The default implementation returns nil.
    var maxEntryBytes: Int? { get }
}

extension CacheTier {
    /// No ceiling.
    public var maxEntryBytes: Int? { nil }
}

extension CacheTier {
    /// Reads the keys concurrently with ``get(_:)``; a key whose read throws is left out.
    public func getMany(_ keys: [CacheKey]) async throws -> [CacheKey: CacheEntry] {
        try await withThrowingTaskGroup(of: (CacheKey, CacheEntry?).self) { group in
            for key in keys {
                group.addTask { (key, try? await self.get(key)) }
            }
            var result: [CacheKey: CacheEntry] = [:]
            for try await (key, entry) in group {
                if let entry { result[key] = entry }
            }
            return result
        }
    }
}
