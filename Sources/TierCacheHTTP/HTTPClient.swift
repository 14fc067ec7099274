public import Logging
internal import TierCache

/// An async HTTP/1.1 client over libcurl, shared by the S3 tier and the Lambda adapter.
///
/// One client owns one dedicated thread that drives every transfer through libcurl's multi
/// interface, so `execute` never blocks the cooperative thread pool. Connections are pooled per
/// host and reused across requests; a client meant to be reused should be created once and
/// shared (it is `Sendable`). Call ``shutdown()`` when done; dropping the last reference shuts it
/// down too. See docs/http-client.md.
public final class HTTPClient: Sendable {
    /// Settings for a client; every property has a default.
    public struct Configuration: Sendable {
        /// Deadline for establishing a connection (DNS, TCP, TLS) when a request does not set its
        /// own. Default 1 second.
        public var connectTimeout: Duration
        /// Deadline for a whole transfer when a request does not set its own; `nil` means none
        /// (a long poll, such as the Lambda Runtime API's `next`). Default 30 seconds.
        public var timeout: Duration?
        /// Whether TLS peers and host names are verified. Default `true`; turn off only for
        /// tests against self-signed endpoints.
        public var verifyTLS: Bool
        /// A PEM file of CA certificates to verify peers with, instead of the system store.
        public var caBundlePath: String?
        /// Most connections open at once to one host; further requests wait in line. Default 16.
        public var maxConnectionsPerHost: Int
        /// Most easy handles kept for reuse when idle. Default 16.
        public var maxIdleHandles: Int
        /// The `User-Agent` sent unless a request sets its own.
        public var userAgent: String
        /// Largest response body accepted when a request sets none
        /// (``HTTPRequest/maxResponseBodyBytes``), or `nil` for no limit (the default). A larger
        /// body (announced by `Content-Length` or received) aborts the transfer with
        /// ``HTTPClientError/Code/responseTooLarge``.
        public var maxResponseBodyBytes: Int?
        /// Largest body accepted with a non-2xx status when a request sets none
        /// (``HTTPRequest/maxErrorBodyBytes``), or `nil` for no limit beyond
        /// ``maxResponseBodyBytes`` (the default).
        public var maxErrorBodyBytes: Int?

        /// Creates a configuration.
        public init(
            connectTimeout: Duration = .seconds(1),
            timeout: Duration? = .seconds(30),
            verifyTLS: Bool = true,
            caBundlePath: String? = nil,
            maxConnectionsPerHost: Int = 16,
            maxIdleHandles: Int = 16,
            userAgent: String = "swift-tiercache",
            maxResponseBodyBytes: Int? = nil,
            maxErrorBodyBytes: Int? = nil
        ) {
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.verifyTLS = verifyTLS
            self.caBundlePath = caBundlePath
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.maxIdleHandles = maxIdleHandles
            self.userAgent = userAgent
            self.maxResponseBodyBytes = maxResponseBodyBytes
            self.maxErrorBodyBytes = maxErrorBodyBytes
        }
    }

    /// The configuration the client was created with.
    public let configuration: Configuration
    private let engine: CurlEngine

    /// Creates a client and starts its transfer thread.
    /// - Parameters:
    ///   - configuration: Timeouts, TLS and pool settings.
    ///   - logger: Receives `debug` lines for failed transfers (never header values or bodies);
    ///     a no-op logger by default.
    public init(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.configuration = configuration
        self.engine = CurlEngine(configuration: configuration, logger: logger)
    }

    deinit {
        engine.shutdown()
    }

    /// Sends a request and collects the whole response in memory.
    ///
    /// Any HTTP status is returned as a response. Cancelling the calling task aborts the transfer
    /// and throws ``HTTPClientError/Code/cancelled``.
    /// - Parameter request: The request; its timeouts override the configuration's.
    /// - Returns: The final response (interim `1xx` responses are skipped).
    /// - Throws: ``HTTPClientError`` with `.connectFailed`, `.timeout`, `.tls`, `.transport`,
    ///   `.invalidRequest`, `.responseTooLarge`, `.cancelled`, or `.shutdown` after
    ///   ``shutdown()``.
    public func execute(_ request: HTTPRequest) async throws(HTTPClientError) -> HTTPResponse {
        try Self.validate(request)
        if Task.isCancelled { throw HTTPClientError.cancelled }
        let transfer = Transfer(request: request, configuration: configuration)
        let engine = self.engine
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, HTTPClientError>, Never>) in
                engine.submit(transfer, continuation: continuation)
            }
        } onCancel: {
            engine.cancel(transfer)
        }
        return try result.get()
    }

    /// The number of connections opened over the client's life (the sum of libcurl's
    /// `CURLINFO_NUM_CONNECTS` over finished transfers). A reused connection adds nothing.
    public var connectionsOpened: Int {
        engine.connectionsOpened
    }

    /// Stops the client: transfers in flight fail with ``HTTPClientError/Code/shutdown``, later
    /// calls to ``execute(_:)`` throw it, pooled connections are closed and the transfer thread
    /// exits. Idempotent; does not wait for the thread.
    public func shutdown() {
        engine.shutdown()
    }

    /// Counters for leak checks in the package's tests.
    package var handleStatistics: CurlEngine.HandleStatistics {
        engine.handleStatistics
    }

    private static func validate(_ request: HTTPRequest) throws(HTTPClientError) {
        let method = request.method.rawValue.utf8
        if method.isEmpty || !method.allSatisfy(isTokenByte) {
            throw .invalidRequest("invalid method token")
        }
        if request.url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            throw .invalidRequest("the URL contains a space or a control character")
        }
        for field in request.headers {
            if field.name.utf8.isEmpty || !field.name.utf8.allSatisfy(isTokenByte) {
                throw .invalidRequest("invalid header name")
            }
            if field.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) {
                throw .invalidRequest("header \(field.name) has a line break or NUL in its value")
            }
        }
    }

    /// RFC 9110 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
