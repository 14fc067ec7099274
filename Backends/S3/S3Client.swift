#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
public import Logging
public import Metrics
public import TierCache
public import TierCacheHTTP

/// A small S3 client: the operations a cache needs, signed with SigV4, over the package's libcurl
/// ``HTTPClient``.
///
/// - Addressing: virtual-hosted (`bucket.s3.region.amazonaws.com`) by default; path-style
///   (`host/bucket/key`) automatically for IP-literal and `localhost` endpoints and for bucket
///   names that are not DNS-safe, or always when ``Configuration/addressingStyle`` says so;
///   ``AddressingStyle/accessPoint`` for an endpoint that is the bucket's own (`host/key`).
/// - Retries: the AWS SDKs' standard mode: up to ``Configuration/maxAttempts`` attempts (3),
///   exponential backoff with full jitter, on 5xx answers (`SlowDown` included), connection
///   failures and timeouts; never on other 4xx. No attempt and no backoff goes past the call's
///   deadline.
/// - Errors: every method throws ``S3Error``; a missing key is not an error but `nil`.
/// - Transfers run on the HTTP client's own thread, never blocking the cooperative pool; task
///   cancellation aborts them.
public final class S3Client: Sendable {
    /// How bucket names go into URLs.
    public struct AddressingStyle: Hashable, Sendable {
        let kind: UInt8
        /// Path-style for IP-literal and `localhost` endpoints and non-DNS-safe bucket names,
        /// virtual-hosted otherwise.
        public static let automatic = AddressingStyle(kind: 0)
        /// Always `bucket.host/key`.
        public static let virtualHosted = AddressingStyle(kind: 1)
        /// Always `host/bucket/key`.
        public static let path = AddressingStyle(kind: 2)
        /// `host/key`: the endpoint's host already names the bucket, as an access point's or a
        /// Multi-Region Access Point's does (`<alias>.accesspoint.s3-global.amazonaws.com`); the
        /// bucket name is in neither the host nor the path.
        public static let accessPoint = AddressingStyle(kind: 3)
    }

    /// Client settings; every one has a default.
    public struct Configuration: Sendable {
        /// The region requests are signed for (and, without ``endpoint``, sent to).
        public var region: AWSRegion
        /// A custom endpoint such as `http://127.0.0.1:9000` (MinIO, R2, Ceph RGW, moto); nil for
        /// AWS's regional endpoint `https://s3.<region>.amazonaws.com`. A path after the host is
        /// kept as a prefix of every request path.
        public var endpoint: String?
        /// Addressing style.
        public var addressingStyle: AddressingStyle
        /// Where credentials come from.
        public var credentials: any AWSCredentialProvider
        /// Attempts per operation, the first included (standard mode: 3).
        public var maxAttempts: Int
        /// The base of the exponential backoff: before attempt n+1 the client sleeps a random
        /// time in `0 ... min(baseDelay * 2^(n-1), maxBackoff)`.
        public var baseDelay: Duration
        /// The cap on one backoff sleep (standard mode: 20 s).
        public var maxBackoff: Duration
        /// The deadline of an operation (all attempts and backoff) when the caller gives none.
        public var operationTimeout: Duration
        /// The deadline of one attempt (further shortened by the operation's deadline).
        public var attemptTimeout: Duration
        /// The connect deadline of one attempt.
        public var connectTimeout: Duration
        /// Whether PutObject signs the body's SHA-256 (true) or sends `UNSIGNED-PAYLOAD` (only
        /// sensible over HTTPS, where TLS protects the body; the integrity header still applies).
        public var signsPayload: Bool
        /// The clock requests are dated with.
        public var clock: any CacheClock
        /// When set, requests are signed with SigV4a for this region set (`*` for any region), as
        /// Multi-Region Access Points require, instead of SigV4. Presigned URLs stay SigV4.
        public var sigV4aRegionSet: String? = nil
        /// The largest object ``S3Client/getObject(bucket:key:ifNoneMatch:maxBodyBytes:deadline:)``
        /// reads when the call names no limit (256 MiB). ``S3Tier`` passes its own
        /// ``S3Tier/Configuration/maxEntryBytes`` instead.
        public var maxObjectBytes: Int = S3Client.defaultMaxObjectBytes

        /// Creates a configuration.
        public init(
            region: AWSRegion = .usEast1,
            endpoint: String? = nil,
            addressingStyle: AddressingStyle = .automatic,
            credentials: any AWSCredentialProvider,
            maxAttempts: Int = 3,
            baseDelay: Duration = .milliseconds(100),
            maxBackoff: Duration = .seconds(20),
            operationTimeout: Duration = .seconds(30),
            attemptTimeout: Duration = .seconds(10),
            connectTimeout: Duration = .seconds(1),
            signsPayload: Bool = true,
            clock: any CacheClock = SystemCacheClock()
        ) {
            self.region = region
            self.endpoint = endpoint
            self.addressingStyle = addressingStyle
            self.credentials = credentials
            self.maxAttempts = maxAttempts
            self.baseDelay = baseDelay
            self.maxBackoff = maxBackoff
            self.operationTimeout = operationTimeout
            self.attemptTimeout = attemptTimeout
            self.connectTimeout = connectTimeout
            self.signsPayload = signsPayload
            self.clock = clock
        }
    }

    /// ``Configuration/maxObjectBytes``' default, 256 MiB.
    public static let defaultMaxObjectBytes = 256 << 20
    /// The largest error document read (S3's are under 1 KB; a larger body with an error status
    /// is not S3's, and is refused rather than read).
    static let maxErrorBodyBytes = 64 << 10
    /// The largest answer read from operations other than GetObject: a ListObjectsV2 page of
    /// 1,000 keys of 1,024 bytes is about 1.3 MB, a lifecycle configuration of 1,000 rules less.
    static let maxDocumentBytes = 16 << 20

    /// The configuration in use.
    public let configuration: Configuration
    /// The HTTP client requests go through.
    public let httpClient: HTTPClient
    private let ownsHTTPClient: Bool
    private let endpoint: Endpoint
    private let signer: SigV4Signer
    private let sigV4aSigner: SigV4aSigner?
    /// The SigV4a key derived from the last credentials seen: deriving it costs an EC scalar
    /// search, so it is redone only when the access key changes.
    private let sigV4aKey = LockedValueBox<SigV4aSigner.SigningKey?>(nil)
    private let logger: Logger
    private let metrics: S3Metrics

    /// Creates a client.
    /// - Parameters:
    ///   - configuration: region, endpoint, credentials, retry and timeout settings.
    ///   - httpClient: a shared client, or nil to create one owned (and shut down) by this client.
    ///   - logger: receives `debug` lines per failed attempt and retry; never secrets.
    ///   - metricsFactory: where the S3 counters go; the bootstrapped `MetricsSystem` by default.
    /// - Throws: ``S3Error`` with code ``S3Error/Code/invalidRequest`` for an unparseable endpoint.
    public init(
        configuration: Configuration,
        httpClient: HTTPClient? = nil,
        logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil
    ) throws(S3Error) {
        self.configuration = configuration
        let endpointText = configuration.endpoint
            ?? "https://s3.\(configuration.region.rawValue).\(configuration.region.dnsSuffix)"
        guard let endpoint = Endpoint(endpointText) else {
            throw S3Error(.invalidRequest, "cannot parse the endpoint URL '\(endpointText)'")
        }
        self.endpoint = endpoint
        self.signer = SigV4Signer(region: configuration.region.rawValue, service: "s3", rules: .s3)
        self.sigV4aSigner = configuration.sigV4aRegionSet.map { SigV4aSigner(regionSet: $0, service: "s3", rules: .s3) }
        self.logger = logger
        self.metrics = S3Metrics(factory: metricsFactory ?? MetricsSystem.factory)
        if let httpClient {
            self.httpClient = httpClient
            ownsHTTPClient = false
        } else {
            self.httpClient = HTTPClient(
                configuration: .init(connectTimeout: configuration.connectTimeout, timeout: configuration.attemptTimeout),
                logger: logger)
            ownsHTTPClient = true
        }
    }

    deinit {
        if ownsHTTPClient { httpClient.shutdown() }
    }

    /// Shuts down the HTTP client if this client created it; later calls fail.
    public func shutdown() {
        if ownsHTTPClient { httpClient.shutdown() }
    }

    // MARK: - Object operations

    /// GetObject: reads a whole object into memory, at most `maxBodyBytes` of it.
    /// - Parameters:
    ///   - ifNoneMatch: an ETag the caller holds; if the object still has it S3 answers 304 and the
    ///     result has ``S3Object/isNotModified`` set and no body.
    ///   - maxBodyBytes: the largest object read; nil for ``Configuration/maxObjectBytes``. A
    ///     larger `Content-Length` is refused before any byte of the body is read.
    ///   - deadline: when to give up (attempts and backoff included); nil for
    ///     ``Configuration/operationTimeout`` from now.
    /// - Returns: the object, or nil when the key does not exist (`NoSuchKey`).
    /// - Throws: ``S3Error`` for everything else (missing bucket, access, transport, timeout;
    ///   ``S3Error/Code/responseTooLarge``, not retried, for an object above `maxBodyBytes`).
    public func getObject(bucket: String, key: String, ifNoneMatch: String? = nil, maxBodyBytes: Int? = nil,
                          deadline: ContinuousClock.Instant? = nil) async throws(S3Error) -> S3Object? {
        var headers: [(String, String)] = []
        if let ifNoneMatch { headers.append(("If-None-Match", ifNoneMatch)) }
        do {
            let response = try await send(.get, bucket: bucket, key: key, headers: headers,
                                          maxBodyBytes: maxBodyBytes ?? configuration.maxObjectBytes, op: "get", deadline: deadline)
            return Self.object(from: response, keepBody: true)
        } catch where error.code == .noSuchKey {
            return nil
        }
    }

    /// HeadObject: reads an object's metadata without its body.
    /// - Returns: the object with an empty body, or nil when the key does not exist.
    /// - Throws: ``S3Error``.
    public func headObject(bucket: String, key: String, deadline: ContinuousClock.Instant? = nil) async throws(S3Error) -> S3Object? {
        do {
            let response = try await send(.head, bucket: bucket, key: key, op: "head", deadline: deadline)
            return Self.object(from: response, keepBody: false)
        } catch where error.code == .noSuchKey {
            return nil
        }
    }

    /// PutObject: writes an object in one request.
    ///
    /// A conditional write (``S3PutOptions/ifNoneMatch`` or ``S3PutOptions/ifMatch``) carries a
    /// random id in `x-amz-meta-tiercache-write-id`. When it gets 412 (or 409), an earlier
    /// attempt whose answer was lost may be the write the condition now fails against: a retry
    /// of ours, or libcurl's own silent re-send when a reused connection dies before answering.
    /// So the object is read back (HEAD): if it holds this write's id, the write succeeded and its
    /// ETag is returned; only otherwise was the race lost.
    /// - Throws: ``S3Error``; with ``S3PutOptions/ifNoneMatch`` `"*"` on an existing key, or
    ///   ``S3PutOptions/ifMatch`` on an object whose ETag changed,
    ///   ``S3Error/Code/preconditionFailed``; with `ifMatch` on a missing key,
    ///   ``S3Error/Code/noSuchKey``.
    @discardableResult
    public func putObject(bucket: String, key: String, body: [UInt8], options: S3PutOptions = S3PutOptions(),
                          deadline: ContinuousClock.Instant? = nil) async throws(S3Error) -> S3PutResult {
        var headers: [(String, String)] = []
        if let contentType = options.contentType { headers.append(("Content-Type", contentType)) }
        if let cacheControl = options.cacheControl { headers.append(("Cache-Control", cacheControl)) }
        switch options.integrity {
        case .contentMD5: headers.append(("Content-MD5", Self.base64(Array(Insecure.MD5.hash(data: body)))))
        case .crc32c:
            let crc = CRC32C.checksum(body)
            headers.append(("x-amz-checksum-crc32c", Self.base64(withUnsafeBytes(of: crc.bigEndian) { Array($0) })))
        default: break
        }
        if let ifNoneMatch = options.ifNoneMatch { headers.append(("If-None-Match", ifNoneMatch)) }
        if let ifMatch = options.ifMatch { headers.append(("If-Match", ifMatch)) }
        if let sse = options.serverSideEncryption {
            headers.append(("x-amz-server-side-encryption", sse.algorithm))
            if let keyID = sse.kmsKeyID { headers.append(("x-amz-server-side-encryption-aws-kms-key-id", keyID)) }
        }
        if let storageClass = options.storageClass { headers.append(("x-amz-storage-class", storageClass.rawValue)) }
        for (name, value) in options.metadata.sorted(by: { $0.key < $1.key }) {
            headers.append(("x-amz-meta-" + SigV4Signer.lowercased(name), value))
        }
        let writeID = options.ifNoneMatch != nil || options.ifMatch != nil ? Self.randomWriteID() : nil
        if let writeID { headers.append(("x-amz-meta-" + Self.writeIDMetadata, writeID)) }
        let payload: SigV4Signer.Payload = configuration.signsPayload ? .bytes(body) : .unsigned
        do {
            let response = try await send(.put, bucket: bucket, key: key, headers: headers, body: body, payload: payload,
                                          op: "put", deadline: deadline)
            return S3PutResult(etag: response.headers["ETag"], versionID: response.headers["x-amz-version-id"])
        } catch where writeID != nil && (error.status == 412 || error.status == 409) {
            // Our own earlier attempt may be what the condition now fails against.
            guard let stored = try await headObject(bucket: bucket, key: key, deadline: deadline),
                  stored.metadata[Self.writeIDMetadata] == writeID
            else { throw error }
            logger.debug("conditional PUT: the object already holds this write (an answer was lost); not a lost race",
                         metadata: ["op": "put"])
            return S3PutResult(etag: stored.etag, versionID: stored.versionID)
        }
    }

    /// The user-metadata name (without `x-amz-meta-`) of a conditional write's id.
    static let writeIDMetadata = "tiercache-write-id"

    static func randomWriteID() -> String {
        let text = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }

    /// DeleteObject. Deleting a key that does not exist succeeds, as in S3.
    /// - Parameter ifMatch: delete only if the object still has this ETag (a conditional
    ///   delete); otherwise S3 answers 412 and the call throws ``S3Error/Code/preconditionFailed``.
    /// - Throws: ``S3Error``.
    public func deleteObject(bucket: String, key: String, ifMatch: String? = nil,
                             deadline: ContinuousClock.Instant? = nil) async throws(S3Error) {
        let headers: [(String, String)] = ifMatch.map { [("If-Match", $0)] } ?? []
        do {
            _ = try await send(.delete, bucket: bucket, key: key, headers: headers, op: "delete", deadline: deadline)
        } catch where error.code == .noSuchKey {
            return
        }
    }

    /// ListObjectsV2: one page of keys under a prefix, in key order.
    /// - Parameters:
    ///   - continuationToken: the previous page's ``S3ListPage/nextContinuationToken``.
    ///   - maxKeys: the page size (S3 caps it at 1000).
    /// - Throws: ``S3Error``; ``S3Error/Code/malformedResponse`` when the listing cannot be read.
    public func listObjectsV2(bucket: String, prefix: String? = nil, continuationToken: String? = nil, maxKeys: Int? = nil,
                              deadline: ContinuousClock.Instant? = nil) async throws(S3Error) -> S3ListPage {
        var query: [(String, String)] = [("list-type", "2")]
        if let prefix, !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        if let maxKeys { query.append(("max-keys", String(maxKeys))) }
        let response = try await send(.get, bucket: bucket, key: nil, query: query, op: "list", deadline: deadline)
        return try Self.listPage(from: response.body, status: response.status)
    }

    /// Reads a ListObjectsV2 answer. Separate from the transfer so that the fuzz target `s3xml`
    /// reaches it.
    /// - Throws: ``S3Error/Code/malformedResponse`` when the body is not a usable listing.
    static func listPage(from body: [UInt8], status: Int) throws(S3Error) -> S3ListPage {
        guard let root = XMLElement.parse(body), root.name == "ListBucketResult" else {
            throw S3Error(.malformedResponse, "ListObjectsV2 answer is not a ListBucketResult", status: status)
        }
        let objects = root.children("Contents").map { c in
            S3ObjectSummary(key: c["Key"] ?? "", size: Int(c["Size"] ?? "") ?? 0, etag: c["ETag"],
                            lastModified: c["LastModified"], storageClass: c["StorageClass"])
        }
        let truncated = root["IsTruncated"] == "true"
        let token = root["NextContinuationToken"].flatMap { $0.isEmpty ? nil : $0 }
        if truncated, token == nil {
            throw S3Error(.malformedResponse, "truncated listing without a continuation token", status: status)
        }
        return S3ListPage(objects: objects, nextContinuationToken: truncated ? token : nil)
    }

    /// Lists every key under a prefix, page after page.
    /// - Parameter limit: stop after this many objects.
    /// - Throws: ``S3Error``.
    public func listAllObjects(bucket: String, prefix: String? = nil, pageSize: Int = 1000, limit: Int = .max,
                               deadline: ContinuousClock.Instant? = nil) async throws(S3Error) -> [S3ObjectSummary] {
        var all: [S3ObjectSummary] = []
        var token: String?
        repeat {
            let page = try await listObjectsV2(bucket: bucket, prefix: prefix, continuationToken: token,
                                               maxKeys: min(pageSize, 1000), deadline: deadline)
            all += page.objects
            token = page.nextContinuationToken
        } while token != nil && all.count < limit
        return all.count > limit ? Array(all.prefix(limit)) : all
    }

    // MARK: - Bucket operations

    /// CreateBucket (for tests and set-up). A bucket the caller already owns is not an error.
    /// - Throws: ``S3Error``.
    public func createBucket(_ bucket: String, deadline: ContinuousClock.Instant? = nil) async throws(S3Error) {
        var body: [UInt8] = []
        if configuration.region != .usEast1 {
            body = Array(("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>"
                + xmlEscape(configuration.region.rawValue) + "</LocationConstraint></CreateBucketConfiguration>").utf8)
        }
        do {
            _ = try await send(.put, bucket: bucket, key: nil, body: body, payload: .bytes(body), op: "createBucket",
                               deadline: deadline)
        } catch where error.code == .bucketAlreadyOwnedByYou {
            return
        }
    }

    /// GetBucketLifecycleConfiguration: the bucket's rules, each kept as the XML S3 returned
    /// (see ``S3LifecycleConfiguration``); a bucket without a configuration gives no rules.
    /// - Throws: ``S3Error``; ``S3Error/Code/malformedResponse`` when the answer cannot be read.
    public func getBucketLifecycleConfiguration(bucket: String, deadline: ContinuousClock.Instant? = nil)
        async throws(S3Error) -> S3LifecycleConfiguration
    {
        let response: HTTPResponse
        do {
            response = try await send(.get, bucket: bucket, key: nil, query: [("lifecycle", "")], op: "getLifecycle",
                                      deadline: deadline)
        } catch where error.code == .noSuchLifecycleConfiguration {
            return S3LifecycleConfiguration()
        }
        return try S3LifecycleConfiguration.parse(
            response.body, transitionDefaultMinimumObjectSize: response.headers[Self.transitionDefaultHeader],
            status: response.status)
    }

    /// PutBucketLifecycleConfiguration: makes `configuration` the bucket's lifecycle, sending
    /// every rule's XML as it is; with no rules, DeleteBucketLifecycle (S3 accepts no empty
    /// configuration). S3 has no conditional write for lifecycles: read, change and write from
    /// one place (a deploy step), not from many processes at once.
    /// - Throws: ``S3Error``.
    public func putBucketLifecycleConfiguration(bucket: String, _ configuration: S3LifecycleConfiguration,
                                                deadline: ContinuousClock.Instant? = nil) async throws(S3Error)
    {
        guard !configuration.rules.isEmpty else {
            try await deleteBucketLifecycle(bucket: bucket, deadline: deadline)
            return
        }
        let body = Array(configuration.xml.utf8)
        var headers = [("Content-Type", "application/xml"), ("Content-MD5", Self.base64(Array(Insecure.MD5.hash(data: body))))]
        if let size = configuration.transitionDefaultMinimumObjectSize { headers.append((Self.transitionDefaultHeader, size)) }
        _ = try await send(.put, bucket: bucket, key: nil, query: [("lifecycle", "")], headers: headers,
                           body: body, payload: .bytes(body), op: "putLifecycle", deadline: deadline)
    }

    /// DeleteBucketLifecycle: removes every lifecycle rule of the bucket.
    /// - Throws: ``S3Error``.
    public func deleteBucketLifecycle(bucket: String, deadline: ContinuousClock.Instant? = nil) async throws(S3Error) {
        _ = try await send(.delete, bucket: bucket, key: nil, query: [("lifecycle", "")], op: "deleteLifecycle",
                           deadline: deadline)
    }

    static let transitionDefaultHeader = "x-amz-transition-default-minimum-object-size"

    /// Replaces the bucket's lifecycle with expiration rules built from `rules`, dropping every
    /// rule already there.
    @available(*, deprecated, message: "drops the bucket's other rules; use getBucketLifecycleConfiguration, replacing(_:) and putBucketLifecycleConfiguration")
    public func putBucketLifecycle(bucket: String, rules: [S3LifecycleRule], deadline: ContinuousClock.Instant? = nil)
        async throws(S3Error)
    {
        try await putBucketLifecycleConfiguration(
            bucket: bucket, S3LifecycleConfiguration(rules: rules.map(S3LifecycleConfiguration.Rule.init)), deadline: deadline)
    }

    /// The bucket's rules read as prefix + expiration days (a rule that filters on more than a
    /// prefix, or does not expire after days, reads as prefix `""` or 0 days).
    @available(*, deprecated, message: "loses every filter and action but prefix and days; use getBucketLifecycleConfiguration")
    public func getBucketLifecycle(bucket: String, deadline: ContinuousClock.Instant? = nil) async throws(S3Error) -> [S3LifecycleRule] {
        try await getBucketLifecycleConfiguration(bucket: bucket, deadline: deadline).rules.map {
            S3LifecycleRule(id: $0.id, prefix: $0.prefix ?? "", expirationDays: $0.expirationDays ?? 0, isEnabled: $0.isEnabled)
        }
    }

    /// A presigned GET URL for an object, valid for `expires`.
    /// - Throws: ``S3Error`` with code ``S3Error/Code/credentials`` when credentials fail, or
    ///   ``S3Error/Code/timeout`` when they take longer than ``Configuration/operationTimeout``.
    public func presignedGetURL(bucket: String, key: String, expires: Duration = .seconds(3600)) async throws(S3Error) -> String {
        let credentials = try await resolveCredentials(deadline: .now.advanced(by: configuration.operationTimeout))
        let target = try target(bucket: bucket, key: key, query: [])
        let signature = signer.presign(method: "GET", path: target.path, query: target.query,
                                       headers: [("Host", target.hostHeader)], payload: .unsigned,
                                       credentials: credentials, date: configuration.clock.now(),
                                       expires: Int(expires.components.seconds))
        return target.base + target.path + "?" + signature.query
    }

    // MARK: - Request machinery

    struct Target {
        var base: String  // scheme://host[:port]
        var hostHeader: String
        var path: String
        var query: String
    }

    func target(bucket: String?, key: String?, query: [(String, String)]) throws(S3Error) -> Target {
        var host = endpoint.host
        var path = endpoint.basePath
        if let bucket {
            guard Self.isValidBucketName(bucket) else { throw S3Error(.invalidRequest, "invalid bucket name '\(bucket)'") }
            if configuration.addressingStyle == .accessPoint {
                // The endpoint is the bucket's own.
            } else if usesVirtualHost(for: bucket) {
                host = bucket + "." + host
            } else {
                path += "/" + bucket
            }
        }
        if let key {
            // S3 keys are opaque: "." and ".." segments and "//" are part of the key, signed and
            // sent as they are (the HTTP client sends the path as given: CURLOPT_PATH_AS_IS).
            path += "/" + PercentEncoding.encode(key, keepSlash: true)
        }
        if path.isEmpty { path = "/" }
        let hostHeader = endpoint.port.map { host + ":\($0)" } ?? host
        let wireQuery = query.map { name, value in
            value.isEmpty && name == "lifecycle" ? name
                : PercentEncoding.encode(name, keepSlash: false) + "=" + PercentEncoding.encode(value, keepSlash: false)
        }.joined(separator: "&")
        return Target(base: endpoint.scheme + "://" + hostHeader, hostHeader: hostHeader, path: path, query: wireQuery)
    }

    private func usesVirtualHost(for bucket: String) -> Bool {
        switch configuration.addressingStyle {
        case .path: return false
        case .virtualHosted: return true
        default:
            if endpoint.isIPLiteralOrLocalhost { return false }
            // Dots break TLS wildcard certificates; upper case and underscores are not DNS-safe.
            if endpoint.scheme == "https", bucket.contains(".") { return false }
            return bucket.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
        }
    }

    static func isValidBucketName(_ name: String) -> Bool {
        let count = name.utf8.count
        guard count >= 3, count <= 255 else { return false }
        return name.utf8.allSatisfy {
            ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 || $0 == 95
        }
    }

    /// Credentials under the operation's deadline: a credentials endpoint that hangs fails this
    /// operation at its deadline (the provider's own refresh may go on in the background).
    private func resolveCredentials(deadline: ContinuousClock.Instant) async throws(S3Error) -> AWSCredentials {
        do {
            return try await configuration.credentials.credentials(deadline: deadline)
        } catch where error.code == .timeout {
            throw S3Error(.timeout, "credentials: \(error.message)")
        } catch where error.code == .cancelled {
            throw S3Error(.cancelled, "credentials: \(error.message)")
        } catch {
            throw S3Error(.credentials, error.message)
        }
    }

    /// Signs with SigV4, or SigV4a when the configuration names a region set.
    private func sign(
        method: String, path: String, query: String, headers: [(name: String, value: String)],
        payload: SigV4Signer.Payload, credentials: AWSCredentials
    ) throws(S3Error) -> SigV4Signer.Signature {
        let date = configuration.clock.now()
        guard let sigV4aSigner else {
            return signer.sign(method: method, path: path, query: query, headers: headers, payload: payload,
                               credentials: credentials, date: date)
        }
        do {
            let key: SigV4aSigner.SigningKey
            if let cached = sigV4aKey.withLock({ $0 }), cached.accessKeyID == credentials.accessKeyID {
                key = cached
            } else {
                key = try SigV4aSigner.signingKey(for: credentials)
                sigV4aKey.withLock { $0 = key }
            }
            return try sigV4aSigner.sign(method: method, path: path, query: query, headers: headers, payload: payload,
                                         credentials: credentials, key: key, date: date)
        } catch {
            throw S3Error(.credentials, "SigV4a signing failed: \(error)")
        }
    }

    /// Sends one operation with retries; returns a 2xx or 304 response, throws for anything else.
    func send(
        _ method: HTTPMethod, bucket: String?, key: String?, query: [(String, String)] = [],
        headers extraHeaders: [(String, String)] = [], body: [UInt8] = [], payload: SigV4Signer.Payload = .empty,
        maxBodyBytes: Int = S3Client.maxDocumentBytes, op: String, deadline callerDeadline: ContinuousClock.Instant?
    ) async throws(S3Error) -> HTTPResponse {
        let clock = ContinuousClock()
        let deadline = callerDeadline ?? clock.now.advanced(by: configuration.operationTimeout)
        let target = try target(bucket: bucket, key: key, query: query)
        let url = target.base + target.path + (target.query.isEmpty ? "" : "?" + target.query)
        let started = clock.now
        var attempt = 0
        var lastFailure: S3Error?
        while true {
            attempt += 1
            if Task.isCancelled { throw S3Error(.cancelled, "\(op) cancelled") }
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else {
                // The deadline passed during the backoff: the last failure says more than "timeout".
                metrics.record(op: op, result: "timeout", since: started, clock: clock)
                throw lastFailure ?? S3Error(.timeout, "\(op) deadline passed before attempt \(attempt)")
            }
            let credentials = try await resolveCredentials(deadline: deadline)
            var signedHeaders: [(name: String, value: String)] = [("Host", target.hostHeader)]
            for (name, value) in extraHeaders { signedHeaders.append((name, value)) }
            let signature = try sign(method: method.rawValue, path: target.path, query: target.query,
                                     headers: signedHeaders, payload: payload, credentials: credentials)
            var httpHeaders = HTTPHeaders()
            for (name, value) in signedHeaders { httpHeaders.add(name: name, value: value) }
            for (name, value) in signature.headers { httpHeaders.add(name: name, value: value) }
            let request = HTTPRequest(method: method, url: url, headers: httpHeaders, body: body,
                                      timeout: min(configuration.attemptTimeout, remaining),
                                      connectTimeout: min(configuration.connectTimeout, remaining),
                                      maxResponseBodyBytes: maxBodyBytes, maxErrorBodyBytes: Self.maxErrorBodyBytes)
            let failure: S3Error
            do {
                let response = try await httpClient.execute(request)
                if (200..<300).contains(response.status) || response.status == 304 {
                    metrics.record(op: op, result: "ok", since: started, clock: clock)
                    return response
                }
                failure = S3Error.fromResponse(status: response.status, body: response.body,
                                               requestID: response.headers["x-amz-request-id"])
            } catch {
                failure = Self.map(error, op: op)
            }
            guard failure.isRetryable, attempt < configuration.maxAttempts else {
                metrics.record(op: op, result: failure.status.map { $0 == 404 ? "notFound" : "\($0 / 100)xx" } ?? "error",
                               since: started, clock: clock)
                throw failure
            }
            let cap = min(configuration.baseDelay * (1 << (attempt - 1)), configuration.maxBackoff)
            let delay = Duration.nanoseconds(Int64.random(in: 0...max(0, cap.nanoseconds)))
            if clock.now.advanced(by: delay) >= deadline {
                metrics.record(op: op, result: "timeout", since: started, clock: clock)
                throw failure
            }
            lastFailure = failure
            logger.debug("S3 request failed; retrying", metadata: [
                "op": "\(op)", "attempt": "\(attempt)", "error": "\(failure)", "backoff-ms": "\(delay.nanoseconds / 1_000_000)",
            ])
            metrics.retries.increment()
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw S3Error(.cancelled, "\(op) cancelled during backoff")
            }
        }
    }

    static func map(_ error: HTTPClientError, op: String) -> S3Error {
        switch error.code {
        case .timeout: S3Error(.timeout, "\(op): \(error.message)")
        case .cancelled: S3Error(.cancelled, "\(op): \(error.message)")
        case .tls, .invalidRequest: S3Error(.invalidRequest, "\(op): \(error)")
        case .responseTooLarge: S3Error(.responseTooLarge, "\(op): \(error.message)")
        default: S3Error(.connection, "\(op): \(error)")
        }
    }

    static func object(from response: HTTPResponse, keepBody: Bool) -> S3Object {
        var metadata: [String: String] = [:]
        for (name, value) in response.headers {
            let lower = SigV4Signer.lowercased(name)
            if lower.hasPrefix("x-amz-meta-") { metadata[String(lower.dropFirst(11))] = value }
        }
        return S3Object(
            body: keepBody && response.status != 304 ? response.body : [],
            etag: response.headers["ETag"], metadata: metadata,
            contentLength: Int(response.headers["Content-Length"] ?? "") ?? response.body.count,
            contentType: response.headers["Content-Type"], lastModified: response.headers["Last-Modified"],
            storageClass: response.headers["x-amz-storage-class"],
            serverSideEncryption: response.headers["x-amz-server-side-encryption"],
            isNotModified: response.status == 304, versionID: response.headers["x-amz-version-id"])
    }

    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}

/// A parsed endpoint URL.
struct Endpoint: Sendable {
    var scheme: String
    var host: String
    var port: Int?
    var basePath: String

    init?(_ text: String) {
        let lowered = text.lowercased()
        if lowered.hasPrefix("http://") {
            scheme = "http"
        } else if lowered.hasPrefix("https://") {
            scheme = "https"
        } else {
            return nil
        }
        var rest = Substring(text.dropFirst(scheme.count + 3))
        if let slash = rest.firstIndex(of: "/") {
            var path = String(rest[slash...])
            while path.hasSuffix("/") { path.removeLast() }
            basePath = path
            rest = rest[..<slash]
        } else {
            basePath = ""
        }
        // [v6]:port, host:port, host
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[...close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            host = String(rest)
        }
        guard !host.isEmpty, !host.contains("@") else { return nil }
        if (scheme == "http" && port == 80) || (scheme == "https" && port == 443) { port = nil }
    }

    var isIPLiteralOrLocalhost: Bool {
        if host.hasPrefix("[") { return true }
        let lower = host.lowercased()
        if lower == "localhost" || lower.hasSuffix(".localhost") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// S3-level metrics: `tiercache_s3_requests_total` (dimensions `op`, `result`),
/// `tiercache_s3_duration_seconds` (`op`) and `tiercache_s3_retries_total`.
struct S3Metrics: Sendable {
    let factory: any MetricsFactory
    let retries: Counter

    init(factory: any MetricsFactory) {
        self.factory = factory
        retries = Counter(label: "tiercache_s3_retries_total", factory: factory)
    }

    func record(op: String, result: String, since start: ContinuousClock.Instant, clock: ContinuousClock) {
        Counter(label: "tiercache_s3_requests_total", dimensions: [("op", op), ("result", result)], factory: factory).increment()
        Timer(label: "tiercache_s3_duration_seconds", dimensions: [("op", op)], factory: factory)
            .recordNanoseconds(start.duration(to: clock.now).nanoseconds)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s.multipliedReportingOverflow(by: 1_000_000_000).overflow ? .max : s * 1_000_000_000 + a / 1_000_000_000
    }
}
