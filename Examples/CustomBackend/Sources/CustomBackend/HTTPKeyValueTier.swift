public import TierCache
public import TierCacheHTTP

/// A ``CacheTier`` over any HTTP key-value store that speaks plain GET / PUT / DELETE on
/// `<baseURL>/<namespace>/<fingerprint>` (a webdis, an nginx WebDAV folder, a small service of
/// your own).
///
/// This is the whole extension point: four methods, bytes in and out. The tier stores the
/// library's envelope (``CacheEntry/encoded()``) as the body, so the chain verifies the checksum
/// and the key on every read; the tier itself only moves bytes. Anything it throws is a counted,
/// logged miss in the ``TierChain``, never an error for the cache's caller, so it may throw freely.
public struct HTTPKeyValueTier: CacheTier {
    /// Settings, with defaults.
    public struct Configuration: Sendable {
        /// The store's base URL, without a trailing slash.
        public var baseURL: String
        /// The tier's name in logs and metrics.
        public var name: String
        /// The deadline of one request.
        public var timeout: Duration

        /// Creates a configuration.
        public init(baseURL: String, name: String = "http-kv", timeout: Duration = .seconds(2)) {
            self.baseURL = baseURL
            self.name = name
            self.timeout = timeout
        }
    }

    /// The settings in use.
    public let configuration: Configuration
    private let client: HTTPClient

    /// Creates the tier over a shared client (the caller shuts the client down).
    public init(configuration: Configuration, client: HTTPClient) {
        self.configuration = configuration
        self.client = client
    }

    /// The tier's name.
    public var name: String { configuration.name }

    private func url(_ key: CacheKey) -> String {
        // The fingerprint is 32 hex digits: safe in a URL whatever the key's name holds.
        "\(configuration.baseURL)/\(key.namespace)/\(key.fingerprint)"
    }

    /// Reads the envelope; 404 is a miss.
    /// - Throws: ``HTTPClientError`` on transport failures, ``TierCacheError`` (`storage`) on an
    ///   unexpected status or (`malformedEntry`…) when the body is not an envelope.
    public func get(_ key: CacheKey) async throws -> CacheEntry? {
        let response = try await client.execute(HTTPRequest(method: .get, url: url(key), timeout: configuration.timeout))
        switch response.status {
        case 200: return try CacheEntry(decoding: response.body)
        case 404: return nil
        default: throw TierCacheError(.storage, "\(name): GET answered \(response.status)")
        }
    }

    /// Stores the envelope.
    /// - Throws: as ``get(_:)``.
    public func put(_ entry: CacheEntry) async throws {
        let response = try await client.execute(HTTPRequest(
            method: .put, url: url(entry.key), headers: ["Content-Type": "application/octet-stream"],
            body: entry.encoded(), timeout: configuration.timeout))
        guard (200..<300).contains(response.status) else {
            throw TierCacheError(.storage, "\(name): PUT answered \(response.status)")
        }
    }

    /// Removes the entry; removing a missing one is not an error.
    /// - Throws: as ``get(_:)``.
    public func remove(_ key: CacheKey) async throws {
        let response = try await client.execute(HTTPRequest(method: .delete, url: url(key), timeout: configuration.timeout))
        guard (200..<300).contains(response.status) || response.status == 404 else {
            throw TierCacheError(.storage, "\(name): DELETE answered \(response.status)")
        }
    }
}
