public import TierCache

/// An error from S3 or from talking to it.
///
/// An opaque struct: compare ``code`` with the static members of ``Code`` (S3's own error codes
/// such as `NoSuchKey` come through as they are, so any code S3 sends can be matched with
/// `Code(rawValue:)`). ``message`` comes from S3 or describes the local failure; neither it nor
/// ``description`` ever contains credentials or request signatures.
public struct S3Error: Error, Sendable, Hashable, CustomStringConvertible {
    /// An S3 error code (`NoSuchKey`, `SlowDown`, …) or one of ours for local failures.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        /// The name as S3 writes it.
        public let rawValue: String
        /// Creates a code; S3's codes are case-sensitive, as S3 sends them.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The key does not exist (a miss for the tier).
        public static let noSuchKey = Code(rawValue: "NoSuchKey")
        /// The bucket does not exist.
        public static let noSuchBucket = Code(rawValue: "NoSuchBucket")
        /// A conditional request's precondition failed (`If-None-Match: *` on an existing key).
        public static let preconditionFailed = Code(rawValue: "PreconditionFailed")
        /// The signature did not verify: wrong secret, clock skew, or a signing bug.
        public static let signatureDoesNotMatch = Code(rawValue: "SignatureDoesNotMatch")
        /// The access key id is unknown to the endpoint.
        public static let invalidAccessKeyID = Code(rawValue: "InvalidAccessKeyId")
        /// The identity may not perform the operation.
        public static let accessDenied = Code(rawValue: "AccessDenied")
        /// S3 asks the client to slow down (503).
        public static let slowDown = Code(rawValue: "SlowDown")
        /// The bucket already exists and is owned by the caller.
        public static let bucketAlreadyOwnedByYou = Code(rawValue: "BucketAlreadyOwnedByYou")
        /// The bucket has no lifecycle configuration.
        public static let noSuchLifecycleConfiguration = Code(rawValue: "NoSuchLifecycleConfiguration")
        /// The uploaded bytes did not match their declared digest or checksum.
        public static let badDigest = Code(rawValue: "BadDigest")
        /// An HTTP error status without a parseable S3 error body.
        public static let httpError = Code(rawValue: "tiercache.httpError")
        /// The connection failed or broke (refused, reset, closed without an answer).
        public static let connection = Code(rawValue: "tiercache.connection")
        /// The request did not complete before its deadline.
        public static let timeout = Code(rawValue: "tiercache.timeout")
        /// The calling task was cancelled.
        public static let cancelled = Code(rawValue: "tiercache.cancelled")
        /// S3 answered with something this client cannot read.
        public static let malformedResponse = Code(rawValue: "tiercache.malformedResponse")
        /// Credentials could not be obtained.
        public static let credentials = Code(rawValue: "tiercache.credentials")
        /// The answer's body was larger than the operation accepts (for GetObject, its
        /// `maxBodyBytes`); the transfer was aborted before reading it whole. Not retried.
        public static let responseTooLarge = Code(rawValue: "tiercache.responseTooLarge")
        /// The request cannot be made (invalid bucket name, bad endpoint, TLS set-up).
        public static let invalidRequest = Code(rawValue: "tiercache.invalidRequest")

        public var description: String { rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// A human-readable explanation (S3's `Message`, or ours).
    public let message: String
    /// The HTTP status, when S3 answered.
    public let status: Int?
    /// S3's request id (`x-amz-request-id` or the error body's `RequestId`), for support cases.
    public let requestID: String?

    /// Creates an error.
    public init(_ code: Code, _ message: String, status: Int? = nil, requestID: String? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.requestID = requestID
    }

    /// Whether the standard retry policy retries this error: 5xx answers (including `SlowDown`),
    /// connection failures and timeouts; never other 4xx, cancellation or local errors.
    public var isRetryable: Bool {
        if let status, status >= 500 { return true }
        return code == .connection || code == .timeout || code == .slowDown
    }

    public var description: String {
        var text = "S3Error(\(code)"
        if let status { text += ", \(status)" }
        text += "): \(message)"
        if let requestID { text += " [request id \(requestID)]" }
        return text
    }

    /// The same failure as a ``TierCacheError`` (code `storage`, `timeout`, `cancelled`, or
    /// `sizeLimitExceeded` for ``Code/responseTooLarge``).
    public var tierCacheError: TierCacheError {
        switch code {
        case .timeout: TierCacheError(.timeout, description)
        case .cancelled: TierCacheError(.cancelled, description)
        case .responseTooLarge: TierCacheError(.sizeLimitExceeded, description)
        default: TierCacheError(.storage, description)
        }
    }

    /// Reads an S3 error response: the XML body's `Code`, `Message` and `RequestId` when there is
    /// one (HEAD answers have none), otherwise the status alone.
    static func fromResponse(status: Int, body: [UInt8], requestID: String?) -> S3Error {
        if !body.isEmpty, let root = XMLElement.parse(body), root.name == "Error", let code = root["Code"], !code.isEmpty {
            return S3Error(Code(rawValue: code), root["Message"] ?? "", status: status, requestID: root["RequestId"] ?? requestID)
        }
        let code: Code = switch status {
        case 404: .noSuchKey
        case 412: .preconditionFailed
        case 403: .accessDenied
        default: .httpError
        }
        return S3Error(code, "HTTP \(status)", status: status, requestID: requestID)
    }
}
