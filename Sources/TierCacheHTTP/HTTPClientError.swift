internal import CTierCacheCurl

/// The error thrown by ``HTTPClient/execute(_:)``.
///
/// An opaque struct: compare ``code`` against the static members of ``Code``. When the failure
/// comes from libcurl, ``curlCode`` and ``curlCodeName`` name libcurl's own `CURLcode`, and
/// ``message`` carries libcurl's detail (for example "Failed to connect to 127.0.0.1 port 9:
/// Connection refused"). An HTTP status of any value is a response, never this error.
public struct HTTPClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// No connection could be made: refused, unreachable, or the host did not resolve.
        public static let connectFailed = Code("connectFailed")
        /// The connect or the total deadline passed (`CURLE_OPERATION_TIMEDOUT`).
        public static let timeout = Code("timeout")
        /// The calling task was cancelled; the transfer was aborted.
        public static let cancelled = Code("cancelled")
        /// TLS failed: handshake, certificate verification, or an unreadable CA bundle.
        public static let tls = Code("tls")
        /// The connection broke or the server answered something that is not HTTP: reset,
        /// closed without a response, truncated body, send or receive failure.
        public static let transport = Code("transport")
        /// The request cannot be sent: malformed URL, unsupported scheme, a header with a line
        /// break, an invalid method token.
        public static let invalidRequest = Code("invalidRequest")
        /// The response body exceeded the request's limit (``HTTPRequest/maxResponseBodyBytes``,
        /// ``HTTPRequest/maxErrorBodyBytes`` or the configuration's); the transfer was aborted
        /// and its connection closed. Never retryable: the same request would fail the same way.
        public static let responseTooLarge = Code("responseTooLarge")
        /// The client was shut down before or during the transfer.
        public static let shutdown = Code("shutdown")

        /// The code's name, for logs.
        public var description: String { name }
    }

    /// What kind of failure this is.
    public let code: Code
    /// libcurl's `CURLcode` as an integer, when libcurl reported the failure.
    public let curlCode: Int?
    /// libcurl's name for ``curlCode`` (`curl_easy_strerror`), when libcurl reported the failure.
    public let curlCodeName: String?
    /// A human-readable detail, safe to log: it never holds header values or bodies.
    public let message: String
    /// Whether a connection to the server was established before the failure.
    public let connected: Bool

    init(code: Code, curlCode: Int? = nil, curlCodeName: String? = nil, message: String, connected: Bool = false) {
        self.code = code
        self.curlCode = curlCode
        self.curlCodeName = curlCodeName
        self.message = message
        self.connected = connected
    }

    /// The transfer was cancelled by its task.
    static let cancelled = HTTPClientError(code: .cancelled, message: "the task was cancelled")
    /// The client was shut down.
    static let shutdown = HTTPClientError(code: .shutdown, message: "the HTTP client was shut down")

    /// A response body above the request's limit for its status.
    static func responseTooLarge(status: Int, limit: Int) -> HTTPClientError {
        HTTPClientError(code: .responseTooLarge,
                        message: "the body of the HTTP \(status) response exceeds the limit of \(limit) bytes", connected: true)
    }

    /// An invalid request.
    static func invalidRequest(_ message: String) -> HTTPClientError {
        HTTPClientError(code: .invalidRequest, message: message)
    }

    /// Maps a libcurl result to an error.
    init(curlCode: CURLcode, detail: String, connected: Bool) {
        let name = String(cString: curl_easy_strerror(curlCode))
        self.init(
            code: Self.classify(curlCode),
            curlCode: Int(curlCode.rawValue),
            curlCodeName: name,
            message: detail.isEmpty ? name : detail,
            connected: connected
        )
    }

    static func classify(_ code: CURLcode) -> Code {
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .connectFailed
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ENGINE_NOTFOUND,
            CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_USE_SSL_FAILED,
            CURLE_SSL_SHUTDOWN_FAILED, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR,
            CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT:
            return .tls
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT,
            CURLE_NOT_BUILT_IN, CURLE_UNKNOWN_OPTION:
            return .invalidRequest
        case CURLE_ABORTED_BY_CALLBACK:
            return .cancelled
        default:
            return .transport
        }
    }

    /// Whether the failure is about the connection rather than the request: the connect failed,
    /// timed out before a connection was made, or the connection broke (reset, closed without a
    /// response, send or receive failure). Such failures are safe to retry on a new connection
    /// for idempotent requests.
    public var isConnectionError: Bool {
        if code == .connectFailed { return true }
        if code == .timeout { return !connected }
        if code == .transport { return true }
        return false
    }

    /// Whether retrying the same request may succeed: connection errors and timeouts. Never
    /// cancellation, shutdown, TLS, oversized responses or invalid requests. The caller still decides whether the
    /// request is idempotent and whether its deadline allows another attempt.
    public var isRetryable: Bool {
        isConnectionError || code == .timeout
    }

    /// The code, the message and libcurl's code and name when present; safe to log.
    public var description: String {
        var text = "HTTPClientError(\(code)): \(message)"
        if let curlCode, let curlCodeName {
            text += " [curl \(curlCode): \(curlCodeName)]"
        }
        return text
    }
}
