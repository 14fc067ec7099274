#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import TierCache

/// The EC2 Instance Metadata Service on `127.0.0.1`, as far as credentials go, following the
/// published IMDSv2 protocol: for tests of credential providers, with no EC2 instance.
///
/// - `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` between 1 and 21,600
///   (else 400) and no `X-Forwarded-For` (else 403); it answers a session token, with its TTL
///   echoed in the same header.
/// - `GET /latest/meta-data/iam/security-credentials/` answers the role's name (404 without a
///   role); `GET …/security-credentials/<role>` answers the credentials as JSON (`Code`,
///   `LastUpdated`, `Type`, `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`), numbered
///   `ASIAIMDS1`, `ASIAIMDS2`, … and valid for ``Configuration/credentialLifetime``.
/// - Every GET needs a live token in `X-aws-ec2-metadata-token`: a missing (unless
///   ``Configuration/allowsIMDSv1``), unknown or expired one gets 401. A `PUT` elsewhere and other
///   methods get 405.
///
/// Token lifetimes and expirations follow the `clock` given (a ``ManualCacheClock`` in tests).
public final class InstanceMetadataEmulator: Sendable {
    /// How the instance is set up.
    public struct Configuration: Sendable {
        /// The instance profile's role, or nil for an instance without one.
        public var roleName: String?
        /// How long each set of credentials is valid.
        public var credentialLifetime: Duration
        /// Whether GETs without a token are answered (`HttpTokens: optional`); false by default,
        /// as on instances that require IMDSv2.
        public var allowsIMDSv1: Bool
        /// Whether the metadata endpoint is turned off (`HttpEndpoint: disabled`): every request
        /// then gets 403.
        public var isDisabled: Bool

        /// Creates a configuration.
        public init(roleName: String? = "tiercache-test-role", credentialLifetime: Duration = .seconds(6 * 3600),
                    allowsIMDSv1: Bool = false, isDisabled: Bool = false) {
            self.roleName = roleName
            self.credentialLifetime = credentialLifetime
            self.allowsIMDSv1 = allowsIMDSv1
            self.isDisabled = isDisabled
        }
    }

    private struct State {
        var tokens: [String: WallTime] = [:]
        var tokensIssued = 0
        var credentialsServed = 0
        var unauthorized = 0
    }

    private let server: LoopbackHTTPServer
    private let state: LockedValueBox<State>

    /// `http://127.0.0.1:<port>`: the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    public var endpoint: String { server.baseURL }

    /// Starts the emulator on an ephemeral loopback port.
    /// - Throws: `TierCacheError` with code `.storage` if the socket cannot be set up.
    public init(configuration: Configuration = Configuration(), clock: any CacheClock = SystemCacheClock()) throws {
        let state = LockedValueBox(State())
        self.state = state
        server = try LoopbackHTTPServer { request in
            Self.answer(request, configuration: configuration, clock: clock, state: state)
        }
    }

    deinit {
        server.stop()
    }

    /// Session tokens issued so far.
    public var tokensIssued: Int { state.withLock { $0.tokensIssued } }
    /// Sets of credentials served so far.
    public var credentialsServed: Int { state.withLock { $0.credentialsServed } }
    /// Requests answered 401 so far.
    public var unauthorizedAnswers: Int { state.withLock { $0.unauthorized } }
    /// Every request received (the most recent 1,000), oldest first.
    public var requests: [LoopbackHTTPServer.Request] { server.recordedRequests }

    /// Invalidates every token issued so far, as a restart of the instance does: they get 401.
    public func expireTokens() {
        state.withLock { $0.tokens = [:] }
    }

    /// Stops the server; idempotent.
    public func stop() {
        server.stop()
    }

    private static func answer(_ request: LoopbackHTTPServer.Request, configuration: Configuration, clock: any CacheClock,
                               state: LockedValueBox<State>) -> LoopbackHTTPServer.Response {
        func text(_ status: Int, _ body: String, headers: [(name: String, value: String)] = []) -> LoopbackHTTPServer.Response {
            .init(status: status, headers: [("Content-Type", "text/plain")] + headers, body: Array(body.utf8))
        }
        if configuration.isDisabled { return text(403, "Forbidden") }
        let now = clock.now()
        if request.path == "/latest/api/token" {
            guard request.method == "PUT" else { return text(405, "Method Not Allowed") }
            if request.header("X-Forwarded-For") != nil { return text(403, "Forbidden") }
            guard let ttl = request.header("X-aws-ec2-metadata-token-ttl-seconds").flatMap({ Int($0) }), (1...21_600).contains(ttl) else {
                return text(400, "Bad Request")
            }
            let token = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined(separator: "-")
            state.withLock {
                $0.tokens[token] = now.advanced(by: .seconds(ttl))
                $0.tokensIssued += 1
            }
            return text(200, token, headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(ttl))])
        }
        guard request.method == "GET" || request.method == "HEAD" else { return text(405, "Method Not Allowed") }
        let authorized: Bool = state.withLock { state in
            let ok: Bool
            if let token = request.header("X-aws-ec2-metadata-token") {
                ok = state.tokens[token].map { now < $0 } ?? false
            } else {
                ok = configuration.allowsIMDSv1
            }
            if !ok { state.unauthorized += 1 }
            return ok
        }
        guard authorized else { return text(401, "Unauthorized") }
        let prefix = "/latest/meta-data/iam/security-credentials"
        guard request.path == prefix || request.path.hasPrefix(prefix + "/") else { return text(404, "Not Found") }
        let rest = request.path.dropFirst(prefix.count).drop { $0 == "/" }
        guard let role = configuration.roleName else { return text(404, "Not Found") }
        if rest.isEmpty { return text(200, role) }
        guard rest == role else { return text(404, "Not Found") }
        let n = state.withLock {
            $0.credentialsServed += 1
            return $0.credentialsServed
        }
        let json = """
            {
              "Code" : "Success",
              "LastUpdated" : "\(iso8601(now))",
              "Type" : "AWS-HMAC",
              "AccessKeyId" : "ASIAIMDS\(n)",
              "SecretAccessKey" : "imds-secret-\(n)",
              "Token" : "imds-token-\(n)",
              "Expiration" : "\(iso8601(now.advanced(by: configuration.credentialLifetime)))"
            }
            """
        return text(200, json)
    }

    private static func iso8601(_ time: WallTime) -> String {
        Date(timeIntervalSince1970: Double(time.millisecondsSince1970 / 1000)).formatted(.iso8601)
    }
}
