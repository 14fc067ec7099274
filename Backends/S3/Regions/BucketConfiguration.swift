#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TierCache

/// A set of regional buckets with a home region, from code, from one environment variable or
/// from a JSON file (see docs/multi-region.md for both formats).
///
/// Everything is validated when parsed: a bad entry fails at start-up with a
/// ``TierCacheError`` of code `invalidConfiguration` whose message names the entry, never later
/// at the first request.
public struct BucketConfiguration: Sendable, Hashable {
    /// The buckets, one per region, in the order given.
    public var buckets: [BucketTarget]
    /// The region whose bucket receives writes.
    public var home: Region
    /// Where writes go.
    public var writes: WritePolicy

    /// The environment variable ``fromEnvironment(_:)`` reads.
    public static let environmentVariable = "TIERCACHE_BUCKETS"

    /// Creates and validates a configuration.
    /// - Parameters:
    ///   - home: nil for the first bucket's region.
    /// - Throws: ``TierCacheError`` `invalidConfiguration` naming the bad bucket.
    public init(buckets: [BucketTarget], home: Region? = nil, writes: WritePolicy = .home) throws {
        for (index, target) in buckets.enumerated() {
            let label = "bucket \(index + 1) (\(target))"
            try Self.validate(region: target.region.rawValue, label)
            try Self.validate(bucket: target.bucket, label)
            if let endpoint = target.endpoint { try Self.validate(endpoint: endpoint, label) }
            if let prefix = target.prefix { try Self.validate(prefix: prefix, label) }
        }
        _ = try RegionalBucketResolver(buckets: buckets, home: home, current: nil, writes: writes)
        self.buckets = buckets
        self.home = home ?? buckets[0].region
        self.writes = writes
    }

    /// A resolver over these buckets, reading nearest first from `current` (or in the given
    /// order when nil).
    public func resolver(current: Region?) -> RegionalBucketResolver {
        // Validated in init.
        try! RegionalBucketResolver(buckets: buckets, home: home, current: current, writes: writes)
    }

    // MARK: - Environment variable

    /// Parses the `TIERCACHE_BUCKETS` format: comma-separated entries
    /// `[*]region=bucket[/prefix][@endpoint]`; `*` marks the home region (default: the first
    /// entry). Spaces around entries are ignored.
    ///
    /// Example: `*us-east-1=cache-use1,eu-west-1=cache-euw1/fn-a@http://127.0.0.1:9000`.
    /// - Parameter source: the name used in error messages.
    /// - Throws: ``TierCacheError`` `invalidConfiguration` naming the entry (position and text).
    public static func parse(_ text: String, writes: WritePolicy = .home, source: String = environmentVariable) throws -> BucketConfiguration {
        var buckets: [BucketTarget] = []
        var home: Region?
        let entries = text.split(separator: ",", omittingEmptySubsequences: false)
        for (index, rawEntry) in entries.enumerated() {
            var entry = Substring(trim(rawEntry))
            let label = "\(source) entry \(index + 1) '\(entry)'"
            guard !entry.isEmpty else { throw invalid(label, "is empty") }
            var isHome = false
            if entry.first == "*" {
                isHome = true
                entry = entry.dropFirst()
            }
            guard let eq = entry.firstIndex(of: "=") else { throw invalid(label, "has no '=' between region and bucket") }
            let region = String(entry[..<eq])
            var rest = entry[entry.index(after: eq)...]
            var endpoint: String?
            if let at = rest.firstIndex(of: "@") {
                endpoint = String(rest[rest.index(after: at)...])
                rest = rest[..<at]
            }
            var prefix: String?
            if let slash = rest.firstIndex(of: "/") {
                prefix = String(rest[rest.index(after: slash)...])
                rest = rest[..<slash]
            }
            let bucket = String(rest)
            try validate(region: region, label)
            try validate(bucket: bucket, label)
            if let endpoint { try validate(endpoint: endpoint, label) }
            if let prefix { try validate(prefix: prefix, label) }
            if buckets.contains(where: { $0.region.rawValue == region }) {
                throw invalid(label, "repeats region \(region)")
            }
            if isHome {
                if let home { throw invalid(label, "is a second home region (\(home) is already home)") }
                home = Region(rawValue: region)
            }
            buckets.append(BucketTarget(region: Region(rawValue: region), bucket: bucket, endpoint: endpoint, prefix: prefix))
        }
        return try BucketConfiguration(buckets: buckets, home: home, writes: writes)
    }

    /// Reads `TIERCACHE_BUCKETS` from the given environment (pass
    /// `ProcessInfo.processInfo.environment` at your program's edge).
    /// - Returns: nil when the variable is unset or empty.
    /// - Throws: as ``parse(_:writes:source:)``.
    public static func fromEnvironment(_ environment: [String: String], writes: WritePolicy = .home) throws -> BucketConfiguration? {
        guard let text = environment[environmentVariable], !trim(Substring(text)).isEmpty else { return nil }
        return try parse(text, writes: writes)
    }

    // MARK: - JSON

    private struct JSONFile: Decodable {
        struct Bucket: Decodable {
            var region: String?
            var bucket: String?
            var endpoint: String?
            var prefix: String?
        }
        var home: String?
        var writes: String?
        var buckets: [Bucket]?
    }

    /// Decodes the JSON format:
    /// `{"home": "us-east-1", "writes": "home" | "all", "buckets": [{"region": "us-east-1",
    /// "bucket": "cache-use1", "endpoint": "https://…", "prefix": "fn-a"}]}`; `home`, `writes`,
    /// `endpoint` and `prefix` are optional.
    /// - Parameter source: the name used in error messages (a file path).
    /// - Throws: ``TierCacheError`` `invalidConfiguration` for unreadable JSON or a bad entry
    ///   (named by its index and region).
    public static func decodeJSON(_ bytes: [UInt8], source: String = "bucket configuration") throws -> BucketConfiguration {
        let file: JSONFile
        do {
            file = try JSONDecoder().decode(JSONFile.self, from: Data(bytes))
        } catch {
            throw TierCacheError(.invalidConfiguration, "\(source): not a bucket configuration object: \(error)")
        }
        guard let entries = file.buckets, !entries.isEmpty else {
            throw TierCacheError(.invalidConfiguration, "\(source): 'buckets' is missing or empty")
        }
        var buckets: [BucketTarget] = []
        for (index, entry) in entries.enumerated() {
            let label = "\(source) buckets[\(index)]" + (entry.region.map { " (\($0))" } ?? "")
            guard let region = entry.region else { throw invalid(label, "has no 'region'") }
            guard let bucket = entry.bucket else { throw invalid(label, "has no 'bucket'") }
            try validate(region: region, label)
            try validate(bucket: bucket, label)
            if let endpoint = entry.endpoint { try validate(endpoint: endpoint, label) }
            if let prefix = entry.prefix { try validate(prefix: prefix, label) }
            if buckets.contains(where: { $0.region.rawValue == region }) { throw invalid(label, "repeats region \(region)") }
            buckets.append(BucketTarget(region: Region(rawValue: region), bucket: bucket, endpoint: entry.endpoint, prefix: entry.prefix))
        }
        let writes: WritePolicy
        switch file.writes {
        case nil, "home": writes = .home
        case "all": writes = .everyBucket
        case let other?: throw TierCacheError(.invalidConfiguration, "\(source): 'writes' is '\(other)', expected 'home' or 'all'")
        }
        if let home = file.home {
            guard buckets.contains(where: { $0.region.rawValue == home }) else {
                throw TierCacheError(.invalidConfiguration, "\(source): 'home' is \(home), which has no bucket")
            }
        }
        return try BucketConfiguration(buckets: buckets, home: file.home.map(Region.init(rawValue:)), writes: writes)
    }

    /// Reads and decodes a JSON file.
    /// - Throws: ``TierCacheError`` `invalidConfiguration` when the file cannot be read, or as
    ///   ``decodeJSON(_:source:)``.
    public static func load(jsonFile path: String) throws -> BucketConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TierCacheError(.invalidConfiguration, "cannot read the bucket configuration file \(path)")
        }
        return try decodeJSON(Array(data), source: path)
    }

    // MARK: - Validation

    private static func invalid(_ label: String, _ problem: String) -> TierCacheError {
        TierCacheError(.invalidConfiguration, "\(label) \(problem)")
    }

    private static func trim(_ text: Substring) -> String {
        String(text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }

    /// `xx-name-N`: lower-case letters in dash-separated parts, a number last.
    static func validate(region: String, _ label: String) throws {
        let parts = region.split(separator: "-", omittingEmptySubsequences: false)
        let lettersOK = parts.dropLast().allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 97 && $0 <= 122 } }
        let numberOK = parts.last.map { !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } } ?? false
        guard parts.count >= 3, lettersOK, numberOK else {
            throw invalid(label, "has an invalid region '\(region)' (expected a name such as eu-west-1)")
        }
    }

    /// S3's naming rules: 3–63 characters of `a-z 0-9 . -`, starting and ending with a letter
    /// or digit, no `..`.
    static func validate(bucket: String, _ label: String) throws {
        let bytes = Array(bucket.utf8)
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard (3...63).contains(bytes.count), bytes.allSatisfy({ alnum($0) || $0 == 46 || $0 == 45 }),
              alnum(bytes[0]), alnum(bytes[bytes.count - 1]), !bucket.contains("..") else {
            throw invalid(label, "has an invalid bucket name '\(bucket)' (3-63 characters of a-z 0-9 . -)")
        }
    }

    static func validate(endpoint: String, _ label: String) throws {
        let scheme = endpoint.hasPrefix("https://") ? 8 : endpoint.hasPrefix("http://") ? 7 : 0
        let host = endpoint.dropFirst(scheme).prefix { $0 != "/" }
        guard scheme > 0, !host.isEmpty, !endpoint.contains(" "), !endpoint.contains(",") else {
            throw invalid(label, "has an invalid endpoint '\(endpoint)' (expected http://host[:port] or https://…)")
        }
    }

    static func validate(prefix: String, _ label: String) throws {
        guard !prefix.isEmpty, !prefix.hasPrefix("/"), !prefix.hasSuffix("/"), prefix.utf8.count <= 512,
              !prefix.contains("@"), !prefix.contains(",") else {
            throw invalid(label, "has an invalid key prefix '\(prefix)' (non-empty, no leading or trailing '/')")
        }
    }
}
