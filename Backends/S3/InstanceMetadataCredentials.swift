#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
public import TierCache
public import TierCacheHTTP

/// Credentials of the EC2 instance's IAM role, from the Instance Metadata Service, IMDSv2 only.
///
/// The protocol, as EC2 publishes it:
/// 1. `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (here 21,600, six
///    hours) answers a session token, kept and reused until shortly before its TTL ends;
/// 2. `GET /latest/meta-data/iam/security-credentials/` with `X-aws-ec2-metadata-token` answers
///    the role's name;
/// 3. `GET /latest/meta-data/iam/security-credentials/<role>` answers the credentials as JSON.
///
/// A `401` on either GET (the token expired, or the instance was restarted) gets a new token and
/// one more try. There is no IMDSv1 fallback (no request without a token): when the token `PUT`
/// is refused (`403`, `404`, `405`: IMDS disabled or IMDSv1 only) or nothing answers, the
/// provider has no credentials (``TierCacheError/Code/credentialsNotFound``), so a chain moves
/// on. Each request has a 1-second timeout; answers above 64 KiB are refused unread. The
/// credentials are cached and refreshed in the background by one
/// ``RefreshingCredentialProvider`` (single flight, backoff after failures).
public struct InstanceMetadataCredentialProvider: AWSCredentialProvider {
    /// The metadata service's base URL, or nil when disabled (`AWS_EC2_METADATA_DISABLED`).
    public let endpoint: String?
    private let refresher: RefreshingCredentialProvider?

    /// EC2's IPv4 endpoint, the default.
    public static let defaultEndpoint = "http://169.254.169.254"
    /// EC2's IPv6 endpoint (`AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`).
    public static let defaultIPv6Endpoint = "http://[fd00:ec2::254]"

    /// Creates a provider for an explicit endpoint.
    /// - Parameters:
    ///   - endpoint: the metadata service's base URL (no trailing path).
    ///   - httpClient: the client to fetch with.
    ///   - timeout: the deadline of each request (connect included).
    ///   - tokenTTL: the session token's lifetime asked for (1 second to 6 hours).
    ///   - refreshBefore: refresh the credentials when less than this is left before expiry.
    public init(endpoint: String = InstanceMetadataCredentialProvider.defaultEndpoint, httpClient: HTTPClient,
                timeout: Duration = .seconds(1), tokenTTL: Duration = .seconds(21_600), refreshBefore: Duration = .seconds(300),
                clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        var base = endpoint
        while base.hasSuffix("/") { base.removeLast() }
        self.endpoint = base
        let session = Session(base: base, httpClient: httpClient, timeout: timeout,
                              tokenTTLSeconds: min(max(Int(tokenTTL.components.seconds), 1), 21_600), clock: clock)
        refresher = RefreshingCredentialProvider(refreshBefore: refreshBefore, clock: clock, logger: logger) {
            () throws(TierCacheError) -> AWSCredentials in
            try await session.roleCredentials()
        }
    }

    /// Creates a provider as the AWS SDKs configure it from the environment:
    /// `AWS_EC2_METADATA_DISABLED=true` turns it off (it then answers
    /// ``TierCacheError/Code/credentialsNotFound``); `AWS_EC2_METADATA_SERVICE_ENDPOINT` names the
    /// endpoint, else `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6` picks `http://[fd00:ec2::254]`,
    /// else `http://169.254.169.254`.
    public init(environment: [String: String], httpClient: HTTPClient, clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" {
            self.init(disabled: ())
            return
        }
        let endpoint: String =
            if let configured = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"], !configured.isEmpty {
                configured
            } else if environment["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"]?.lowercased() == "ipv6" {
                Self.defaultIPv6Endpoint
            } else {
                Self.defaultEndpoint
            }
        self.init(endpoint: endpoint, httpClient: httpClient, clock: clock, logger: logger)
    }

    private init(disabled: Void) {
        endpoint = nil
        refresher = nil
    }

    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        guard let refresher else { throw Self.disabled }
        return try await refresher.credentials()
    }

    /// As ``credentials()``, waiting for the metadata service no later than `deadline`.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        guard let refresher else { throw Self.disabled }
        return try await refresher.credentials(deadline: deadline)
    }

    /// How many times the credentials were fetched (for tests and diagnostics).
    public var fetchCount: Int {
        get async { await refresher?.fetchCount ?? 0 }
    }

    /// Waits for a background refresh in flight (tests).
    func waitForRefresh() async {
        await refresher?.waitForRefresh()
    }

    private static var disabled: TierCacheError {
        TierCacheError(.credentialsNotFound, "the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED=true)")
    }

    /// The token and the three requests. The token is shared by fetches (only one runs at a
    /// time: the refresher's single flight) and replaced when it nears its TTL or gets a 401.
    final class Session: Sendable {
        let base: String
        let httpClient: HTTPClient
        let timeout: Duration
        let tokenTTLSeconds: Int
        let clock: any CacheClock
        private let token = LockedValueBox<(value: String, renewAt: WallTime)?>(nil)

        init(base: String, httpClient: HTTPClient, timeout: Duration, tokenTTLSeconds: Int, clock: any CacheClock) {
            self.base = base
            self.httpClient = httpClient
            self.timeout = timeout
            self.tokenTTLSeconds = tokenTTLSeconds
            self.clock = clock
        }

        func roleCredentials() async throws(TierCacheError) -> AWSCredentials {
            let roles = try await authorizedGet("/latest/meta-data/iam/security-credentials/", what: "the role name")
            guard roles.status != 404 else {
                throw TierCacheError(.credentialsNotFound, "the instance has no IAM role (IMDS answered 404 for its role name)")
            }
            guard roles.status == 200 else {
                throw TierCacheError(.credentialsFailed, "IMDS answered HTTP \(roles.status) for the role name")
            }
            let role = String(decoding: roles.body, as: UTF8.self)
                .split(whereSeparator: { $0 == "\n" || $0 == "\r" }).first.map { String($0).trimmedSpacesAndNewlines } ?? ""
            guard !role.isEmpty, role.utf8.allSatisfy({ PercentEncoding.isUnreserved($0) || "+=,@".utf8.contains($0) }) else {
                throw TierCacheError(.credentialsFailed, "IMDS answered an unusable role name")
            }
            let answer = try await authorizedGet("/latest/meta-data/iam/security-credentials/" + role, what: "the role's credentials")
            guard answer.status == 200 else {
                throw TierCacheError(.credentialsFailed, "IMDS answered HTTP \(answer.status) for the credentials of role '\(role)'")
            }
            return try Self.credentials(from: answer.body)
        }

        private struct Reply: Decodable {
            var Code: String?
            var AccessKeyId: String?
            var SecretAccessKey: String?
            var Token: String?
            var Expiration: String?
        }

        static func credentials(from body: [UInt8]) throws(TierCacheError) -> AWSCredentials {
            guard let reply = try? JSONDecoder().decode(Reply.self, from: Data(body)) else {
                throw TierCacheError(.credentialsFailed, "IMDS credentials are not the documented JSON")
            }
            if let code = reply.Code, code != "Success" {
                throw TierCacheError(.credentialsFailed, "IMDS credentials answered Code '\(code)'")
            }
            guard let id = reply.AccessKeyId, !id.isEmpty, let secret = reply.SecretAccessKey, !secret.isEmpty else {
                throw TierCacheError(.credentialsFailed, "IMDS credentials have no AccessKeyId / SecretAccessKey")
            }
            var expiration: WallTime?
            if let text = reply.Expiration {
                guard let parsed = AWSTimestamp.parseISO8601(text) else {
                    throw TierCacheError(.credentialsFailed, "IMDS credentials have an unreadable Expiration '\(text)'")
                }
                expiration = parsed
            }
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: reply.Token, expiration: expiration)
        }

        /// A GET with the session token; on 401 a new token and one more try.
        private func authorizedGet(_ path: String, what: String) async throws(TierCacheError) -> HTTPResponse {
            var response = try await get(path, token: try await sessionToken(renew: false), what: what)
            if response.status == 401 {
                response = try await get(path, token: try await sessionToken(renew: true), what: what)
            }
            if response.status == 401 {
                throw TierCacheError(.credentialsFailed, "IMDS refused a fresh session token (401) for \(what)")
            }
            return response
        }

        private func get(_ path: String, token: String, what: String) async throws(TierCacheError) -> HTTPResponse {
            do {
                return try await httpClient.execute(HTTPRequest(
                    method: .get, url: base + path, headers: ["X-aws-ec2-metadata-token": token],
                    timeout: timeout, connectTimeout: timeout, maxResponseBodyBytes: CredentialAnswers.maxBytes))
            } catch {
                throw TierCacheError(.credentialsFailed, "IMDS request for \(what) failed: \(error)")
            }
        }

        /// The kept token, or a new one from `PUT /latest/api/token`.
        private func sessionToken(renew: Bool) async throws(TierCacheError) -> String {
            let now = clock.now()
            if !renew, let kept = token.withLock({ $0 }), now < kept.renewAt { return kept.value }
            let response: HTTPResponse
            do {
                response = try await httpClient.execute(HTTPRequest(
                    method: .put, url: base + "/latest/api/token",
                    headers: ["X-aws-ec2-metadata-token-ttl-seconds": String(tokenTTLSeconds)],
                    timeout: timeout, connectTimeout: timeout, maxResponseBodyBytes: CredentialAnswers.maxBytes))
            } catch where error.code == .connectFailed || (error.code == .timeout && !error.connected) {
                throw TierCacheError(.credentialsNotFound, "no instance metadata service at \(base): \(error)")
            } catch {
                throw TierCacheError(.credentialsFailed, "IMDS token request failed: \(error)")
            }
            switch response.status {
            case 200:
                break
            case 403, 404, 405:
                throw TierCacheError(.credentialsNotFound,
                                     "IMDS refused the IMDSv2 token request (HTTP \(response.status)); IMDSv1 is not used")
            default:
                throw TierCacheError(.credentialsFailed, "IMDS answered HTTP \(response.status) to the token request")
            }
            let value = String(decoding: response.body, as: UTF8.self).trimmedSpacesAndNewlines
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw TierCacheError(.credentialsFailed, "IMDS answered an unusable session token")
            }
            // Renewed when a tenth of its TTL (at most a minute) is left, so it never expires in flight.
            let margin = min(tokenTTLSeconds / 10, 60)
            token.withLock { $0 = (value, now.advanced(by: .seconds(tokenTTLSeconds - margin))) }
            return value
        }
    }
}
