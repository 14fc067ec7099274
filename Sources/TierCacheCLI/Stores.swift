#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import TierCache
import TierCacheDisk
import TierCacheHTTP
import TierCacheS3

// MARK: - Locations

/// Where a command points: an S3 object (or prefix) written as the aws CLI writes it, or a key in a
/// disk-tier folder.
enum Location: Sendable, CustomStringConvertible {
    /// `s3://bucket/key`; `key` may be empty (the whole bucket) or a prefix.
    case s3(bucket: String, key: String)
    /// A key (`namespace/name[#vN]`) or a prefix (`namespace/`, `` for all) in a disk-tier folder.
    case disk(root: String, key: String)

    /// Parses a location. With `disk` set, `text` is a key in that folder; otherwise it must be an
    /// `s3://` URL.
    static func parse(_ text: String, disk: String?) throws(CLIError) -> Location {
        if let disk {
            if text.hasPrefix("s3://") { throw .usage("give either --disk DIR and a key, or an s3:// location, not both") }
            return .disk(root: disk, key: text)
        }
        guard text.hasPrefix("s3://") else {
            throw .usage("'\(text)' is not a location: write s3://bucket/key, or --disk DIR with a key such as namespace/name")
        }
        let rest = text.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard !bucket.isEmpty else { throw .usage("'\(text)' names no bucket") }
        // One "/" separates bucket and key; any further one is part of the key ("s3://b//a" is
        // the key "/a", as in the aws CLI).
        let key = rest.dropFirst(bucket.count).dropFirst()
        return .s3(bucket: String(bucket), key: String(key))
    }

    var description: String {
        switch self {
        case .s3(let bucket, let key): "s3://\(bucket)/\(key)"
        case .disk(let root, let key): "\(key) in \(root)"
        }
    }

    var isS3: Bool { if case .s3 = self { true } else { false } }
}

/// Cache keys as the CLI writes them.
enum KeyText {
    /// Parses `namespace/name[#vN]`, the form ``CacheKey/rendered`` prints.
    static func parse(_ text: String) throws(CLIError) -> CacheKey {
        var body = Substring(text)
        var schema: UInt32 = 1
        if let hash = body.lastIndex(of: "#"), body[body.index(after: hash)...].hasPrefix("v"),
           let v = UInt32(body[body.index(hash, offsetBy: 2)...]) {
            schema = v
            body = body[..<hash]
        }
        guard let slash = body.firstIndex(of: "/") else {
            throw .usage("key '\(text)' must be namespace/name (optionally #vN for the schema version)")
        }
        do {
            return try CacheKey(namespace: String(body[..<slash]), name: String(body[body.index(after: slash)...]),
                                schemaVersion: schema)
        } catch {
            throw .usage("key '\(text)': \(error.message)")
        }
    }

    /// The cache key for an S3 object key: the key S3Tier would have stored there when the object
    /// key has its layout (`<prefix>/<namespace>/<percent-encoded name>.v<N>`), else
    /// `cli/<object key>` (schema 1).
    static func forObjectKey(_ objectKey: String) throws(CLIError) -> CacheKey {
        let segments = objectKey.split(separator: "/", omittingEmptySubsequences: false)
        if segments.count >= 2, let last = segments.last, let dot = last.lastIndex(of: "."),
           last[last.index(after: dot)...].hasPrefix("v"),
           let schema = UInt32(last[last.index(dot, offsetBy: 2)...]),
           let name = percentDecode(String(last[..<dot])),
           let key = try? CacheKey(namespace: String(segments[segments.count - 2]), name: name, schemaVersion: schema),
           S3Tier.objectKey(for: key, prefix: segments.dropLast(2).joined(separator: "/")) == objectKey {
            return key
        }
        do {
            return try CacheKey(namespace: "cli", name: objectKey)
        } catch {
            throw .usage("object key '\(objectKey)' cannot be a cache key name: \(error.message); pass --key")
        }
    }

    static func percentDecode(_ text: String) -> String? {
        var out: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%") {
                guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}

// MARK: - Connection options → clients

/// What it takes to reach S3, resolved from options and the environment (the aws CLI's rules).
struct S3Settings: Sendable {
    var endpoint: String?
    var region: String
    var profile: String?
    var environment: [String: String]

    init(endpointURL: String?, region: String?, profile: String?, environment: [String: String]) {
        self.environment = environment
        self.profile = profile ?? environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 }
        self.endpoint = endpointURL
            ?? environment["AWS_ENDPOINT_URL_S3"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_ENDPOINT_URL"].flatMap { $0.isEmpty ? nil : $0 }
        var profileEnvironment = environment
        if let profile = self.profile { profileEnvironment["AWS_PROFILE"] = profile }
        self.region = region
            ?? environment["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_DEFAULT_REGION"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ProfileCredentialProvider(environment: profileEnvironment).region()
            ?? "us-east-1"
    }

    /// A client with the library's credential chain (or only the profile, when one is named).
    func makeClient() throws(CLIError) -> S3Client {
        let http = HTTPClient(configuration: .init(connectTimeout: .seconds(5), timeout: .seconds(60)))
        let credentials: any AWSCredentialProvider
        if let profile {
            var env = environment
            env["AWS_PROFILE"] = profile
            credentials = ProfileCredentialProvider(environment: env)
        } else {
            credentials = CredentialChain.default(environment: environment, httpClient: http)
        }
        do {
            return try S3Client(
                configuration: .init(region: AWSRegion(rawValue: region), endpoint: endpoint,
                                     addressingStyle: endpoint == nil ? .automatic : .path,
                                     credentials: credentials, connectTimeout: .seconds(5)),
                httpClient: http)
        } catch {
            throw .usage(error.message)
        }
    }
}

extension CLIError {
    /// Maps an S3 failure to an exit code and a message naming what failed.
    static func from(_ error: S3Error, doing what: String) -> CLIError {
        let detail = "\(what): \(error.message.isEmpty ? error.code.rawValue : error.message)"
            + (error.status.map { " (HTTP \($0))" } ?? "")
        switch error.code {
        case .noSuchKey: return .notFound(detail)
        case .noSuchBucket: return .notFound(detail)
        case .accessDenied, .signatureDoesNotMatch, .invalidAccessKeyID, .credentials: return .credentials(detail)
        case .invalidRequest: return .usage(detail)
        default: return .storage(detail)
        }
    }

    static func from(tier error: any Error, doing what: String) -> CLIError {
        if let error = error as? CLIError { return error }
        if let error = error as? S3Error { return .from(error, doing: what) }
        if let error = error as? TierCacheError {
            if error.code == .credentialsNotFound || error.code == .credentialsFailed {
                return .credentials("\(what): \(error.message)")
            }
            return .storage("\(what): \(error.message)")
        }
        return .storage("\(what): \(error)")
    }
}

// MARK: - Listing

/// One entry found by `ls` or `stats`.
struct ListedObject: Encodable, Sendable {
    /// The object key (S3) or the rendered cache key (disk).
    var name: String
    var size: Int
    var lastModified: String?
    var createdAt: Int64?
    var freshUntil: Int64?
    var staleUntil: Int64?
    /// Where the expiry came from: `metadata` (S3 HEAD), `header` (envelope prefix), or nil.
    var expirySource: String?
}

// MARK: - Disk folders

/// Direct access to a disk tier's files, for reading without side effects (the tier removes what
/// it cannot decode; an operator wants to see it instead) and for listing. Like the tier, it
/// never follows a symbolic link below the root and reads only regular files (a FIFO planted
/// where an entry belongs cannot make it wait).
struct DiskFolder: Sendable {
    var root: String

    func path(for key: CacheKey) -> String {
        "\(root)/ns/\(key.namespace)/\(key.fingerprint.prefix(2))/\(key.fingerprint)"
    }

    func read(_ key: CacheKey) throws(CLIError) -> [UInt8]? {
        do {
            return try LocalFile.read(path(for: key), regularFileOnly: true)
        } catch where error.exitCode == ExitStatus.notFound {
            return nil
        }
    }

    func exists(_ key: CacheKey) -> Bool {
        var st = stat()
        return lstat(path(for: key), &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// The library's tier on this folder, its root checked first (the tier refuses a root another
    /// user owns or others can write into; the CLI says so instead of failing quietly).
    func tier() async throws(CLIError) -> DiskTier {
        let tier = DiskTier(configuration: .init(root: root))
        do {
            try await tier.checkRoot()
        } catch let error as DiskRootError {
            throw .storage(error.message)
        } catch {
            throw .storage("checking \(root): \(error)")
        }
        return tier
    }

    /// Every entry file under the root whose rendered key starts with `prefix`, with expiry read
    /// from the first bytes of each file.
    func list(prefix: String, progress: ProgressLine?) -> [ListedObject] {
        let namespaces = Self.folders(root + "/ns")
        var result: [ListedObject] = []
        for ns in namespaces where ns.hasPrefix(prefix.split(separator: "/", maxSplits: 1).first.map(String.init) ?? "") {
            for shard in Self.folders("\(root)/ns/\(ns)") where shard.count == 2 {
                for file in Self.children("\(root)/ns/\(ns)/\(shard)") where file.count == 32 {
                    let path = "\(root)/ns/\(ns)/\(shard)/\(file)"
                    guard let item = Self.peek(path: path, fallbackName: "\(ns)/?\(file)") else { continue }
                    if item.name.hasPrefix(prefix) { result.append(item) }
                    progress?.advance()
                }
            }
        }
        return result.sorted { $0.name < $1.name }
    }

    /// The names in `dir` (all of them, a leading dot or not, but `.` and `..`), sorted.
    static func children(_ dir: String) -> [String] {
        guard let handle = opendir(dir) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The folders in `dir`, not symbolic links to folders (never followed, as the tier does not).
    static func folders(_ dir: String) -> [String] {
        children(dir).filter { name in
            var st = stat()
            return lstat(dir + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }
    }

    /// Reads the fixed header and the key of one entry file (not the payload).
    static func peek(path: String, fallbackName: String) -> ListedObject? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var head = [UInt8](repeating: 0, count: 60 + 64 + 4096)
        let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return ListedObject(name: fallbackName, size: Int(st.st_size)) }
        head.removeSubrange(n...)
        var item = ListedObject(name: fallbackName, size: Int(st.st_size))
        if let expiry = CacheEntry.peekExpiry(head) {
            item.freshUntil = expiry.freshUntil.millisecondsSince1970
            item.staleUntil = expiry.staleUntil.millisecondsSince1970
            item.createdAt = Int64(bitPattern: le64(head, 16))
            item.expirySource = "header"
            let schema = UInt32(truncatingIfNeeded: le64(head, 12) & 0xFFFF_FFFF)
            let nsLength = Int(head[52]) | Int(head[53]) << 8
            let nameLength = Int(head[54]) | Int(head[55]) << 8
            if head.count >= 60 + nsLength + nameLength,
               let ns = String(validating: head[60..<(60 + nsLength)], as: UTF8.self),
               let name = String(validating: head[(60 + nsLength)..<(60 + nsLength + nameLength)], as: UTF8.self) {
                item.name = "\(ns)/\(name)#v\(schema)"
            }
        }
        return item
    }

    private static func le64(_ b: [UInt8], _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(b[at + i]) }
        return v
    }
}

// MARK: - S3 helpers

enum S3Objects {
    /// The metadata S3Tier writes next to every envelope, so lifecycle tooling and `stats` read
    /// expiry with a HEAD.
    static func metadata(for entry: CacheEntry) -> [String: String] {
        [
            "fresh-until": String(entry.freshUntil.millisecondsSince1970),
            "stale-until": String(entry.staleUntil.millisecondsSince1970),
            "created-at": String(entry.createdAt.millisecondsSince1970),
            "schema-version": String(entry.schemaVersion),
            "format-version": String(CacheEntry.formatVersion),
        ]
    }

    static func putEntry(_ entry: CacheEntry, client: S3Client, bucket: String, key: String,
                         encryption: S3ServerSideEncryption?) async throws(CLIError) -> S3PutResult {
        var options = S3PutOptions(contentType: "application/vnd.tiercache.entry", metadata: metadata(for: entry))
        options.serverSideEncryption = encryption
        do {
            return try await client.putObject(bucket: bucket, key: key, body: entry.encoded(), options: options)
        } catch {
            throw .from(error, doing: "uploading s3://\(bucket)/\(key)")
        }
    }

    /// Lists a prefix; with `withExpiry`, HEADs every object (concurrently) for its expiry
    /// metadata, and for objects without it reads the envelope header from the body.
    static func list(client: S3Client, bucket: String, prefix: String, withExpiry: Bool, concurrency: Int,
                     console: Console) async throws(CLIError) -> [ListedObject] {
        let listing = ProgressLine("listing s3://\(bucket)/\(prefix)", total: nil, console: console)
        var summaries: [S3ObjectSummary] = []
        var token: String?
        do {
            repeat {
                let page = try await client.listObjectsV2(bucket: bucket, prefix: prefix, continuationToken: token, maxKeys: 1000)
                summaries += page.objects
                listing.advance(by: page.objects.count)
                token = page.nextContinuationToken
            } while token != nil
        } catch {
            listing.finish()
            throw .from(error, doing: "listing s3://\(bucket)/\(prefix)")
        }
        listing.finish()
        var items = summaries.map {
            ListedObject(name: $0.key, size: $0.size, lastModified: $0.lastModified)
        }
        guard withExpiry, !items.isEmpty else { return items }
        let progress = ProgressLine("reading expiry", total: items.count, console: console)
        defer { progress.finish() }
        let results: [(Int, ListedObject)]
        do {
            results = try await withThrowingTaskGroup(of: (Int, ListedObject).self) { group in
                var next = 0
                var out: [(Int, ListedObject)] = []
                func add() {
                    let index = next
                    let item = items[index]
                    group.addTask { (index, try await expiry(of: item, client: client, bucket: bucket)) }
                    next += 1
                }
                while next < min(concurrency, items.count) { add() }
                while let result = try await group.next() {
                    out.append(result)
                    progress.advance()
                    if next < items.count { add() }
                }
                return out
            }
        } catch {
            throw .from(tier: error, doing: "reading expiry under s3://\(bucket)/\(prefix)")
        }
        for (index, item) in results { items[index] = item }
        return items
    }

    private static func expiry(of item: ListedObject, client: S3Client, bucket: String) async throws -> ListedObject {
        var item = item
        if let head = try await client.headObject(bucket: bucket, key: item.name) {
            if let e = S3Tier.expiry(objectKey: item.name, metadata: head.metadata, size: head.contentLength) {
                item.freshUntil = e.freshUntil.millisecondsSince1970
                item.staleUntil = e.staleUntil.millisecondsSince1970
                item.createdAt = e.createdAt?.millisecondsSince1970
                item.expirySource = "metadata"
                return item
            }
        }
        // No metadata (written by another tool): read the envelope itself.
        if let object = try await client.getObject(bucket: bucket, key: item.name),
           let e = CacheEntry.peekExpiry(Array(object.body.prefix(60))) {
            item.freshUntil = e.freshUntil.millisecondsSince1970
            item.staleUntil = e.staleUntil.millisecondsSince1970
            var created: UInt64 = 0
            for i in (16..<24).reversed() { created = created << 8 | UInt64(object.body[i]) }
            item.createdAt = Int64(bitPattern: created)
            item.expirySource = "header"
        }
        return item
    }
}
