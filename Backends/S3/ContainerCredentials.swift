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
public import Logging
public import TierCache
public import TierCacheHTTP

/// Credentials from the container credentials endpoint (ECS tasks, EKS Pod Identity, Lambda's
/// SnapStart and local emulators): `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on
/// `http://169.254.170.2`) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the `Authorization`
/// header from `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read at every fetch, it rotates) or
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
///
/// The credentials are cached and refreshed in the background before they expire by one
/// ``RefreshingCredentialProvider`` (single flight, backoff after failures). A full URI must use
/// HTTPS, or plain HTTP to an IP literal that is a loopback address (`127.0.0.0/8`, `::1`) or the
/// ECS / EKS endpoint (`169.254.170.2`, `169.254.170.23`, `fd00:ec2::23`), as the AWS SDKs
/// require; host names are not resolved, so `http://localhost/…` and
/// `http://127.0.0.1.example.com/…` are refused. Answers above 64 KiB are refused unread.
public struct ContainerCredentialProvider: AWSCredentialProvider {
    /// The credentials endpoint, or nil when the environment names none.
    public let endpoint: String?
    private let refresher: RefreshingCredentialProvider?
    private let problem: String?

    /// Creates a provider for an explicit endpoint.
    /// - Parameters:
    ///   - endpoint: the full URL of the credentials endpoint.
    ///   - authorizationToken: the `Authorization` header value, if any.
    ///   - authorizationTokenFile: a file holding the header value (wins over the token).
    ///   - httpClient: the client to fetch with.
    ///   - timeout: deadline for one fetch.
    ///   - refreshBefore: refresh when less than this is left before expiry.
    public init(endpoint: String, authorizationToken: String? = nil, authorizationTokenFile: String? = nil,
                httpClient: HTTPClient, timeout: Duration = .seconds(2), refreshBefore: Duration = .seconds(300),
                clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.endpoint = endpoint
        if let reason = Self.validate(endpoint) {
            problem = reason
            refresher = nil
            return
        }
        problem = nil
        refresher = RefreshingCredentialProvider(refreshBefore: refreshBefore, clock: clock, logger: logger) {
            () throws(TierCacheError) -> AWSCredentials in
            try await Self.fetch(endpoint: endpoint, token: authorizationToken, tokenFile: authorizationTokenFile,
                                 httpClient: httpClient, timeout: timeout)
        }
    }

    /// Creates a provider from the `AWS_CONTAINER_*` variables of `environment`; it answers
    /// ``TierCacheError/Code/credentialsNotFound`` when neither URI variable is set.
    public init(environment: [String: String], httpClient: HTTPClient, clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        let endpoint: String? =
            if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !relative.isEmpty {
                "http://169.254.170.2" + (relative.hasPrefix("/") ? relative : "/" + relative)
            } else if let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"], !full.isEmpty {
                full
            } else {
                nil
            }
        guard let endpoint else {
            self.init(unconfigured: ())
            return
        }
        self.init(endpoint: endpoint,
                  authorizationToken: environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
                  authorizationTokenFile: environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 },
                  httpClient: httpClient, clock: clock, logger: logger)
    }

    private init(unconfigured: Void) {
        endpoint = nil
        refresher = nil
        problem = nil
    }

    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        if let problem { throw TierCacheError(.credentialsFailed, problem) }
        guard let refresher else {
            throw TierCacheError(.credentialsNotFound,
                                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI are not set")
        }
        return try await refresher.credentials()
    }

    /// As ``credentials()``, waiting for the endpoint no later than `deadline`.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        if let problem { throw TierCacheError(.credentialsFailed, problem) }
        guard let refresher else {
            throw TierCacheError(.credentialsNotFound,
                                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI are not set")
        }
        return try await refresher.credentials(deadline: deadline)
    }

    /// Waits for a background refresh in flight (tests).
    func waitForRefresh() async {
        await refresher?.waitForRefresh()
    }

    /// How many times the endpoint was fetched (for tests and diagnostics).
    public var fetchCount: Int {
        get async { await refresher?.fetchCount ?? 0 }
    }

    /// Why `endpoint` may not be used, or nil when it may.
    static func validate(_ endpoint: String) -> String? {
        guard let parsed = Endpoint(endpoint) else { return "container credentials URI is not an http(s) URL" }
        if parsed.scheme == "https" || isAllowedPlainHTTPHost(parsed.host) { return nil }
        return "container credentials URI must use https, or http to a loopback IP address, 169.254.170.2, "
            + "169.254.170.23 or [fd00:ec2::23]; not '\(parsed.host)'"
    }

    /// Whether `host` (as written in a URL: an IPv6 address in brackets) is an IP literal the AWS
    /// SDKs let a plain-HTTP credentials endpoint use. Parsed with `inet_pton`, which takes only
    /// the canonical forms: no host names, no `127.1`, no octal or hexadecimal parts, no zone ids.
    static func isAllowedPlainHTTPHost(_ host: String) -> Bool {
        if host.hasPrefix("["), host.hasSuffix("]") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, String(host.dropFirst().dropLast()), &address) == 1 else { return false }
            let bytes = withUnsafeBytes(of: &address) { Array($0) }
            let loopback: [UInt8] = Array(repeating: 0, count: 15) + [1]
            let eksPodIdentity: [UInt8] = [0xFD, 0x00, 0x0E, 0xC2] + Array(repeating: 0, count: 11) + [0x23]
            return bytes == loopback || bytes == eksPodIdentity
        }
        var address = in_addr()
        guard inet_pton(AF_INET, host, &address) == 1 else { return false }
        let bytes = withUnsafeBytes(of: &address) { Array($0) }  // network order: a.b.c.d
        return bytes[0] == 127 || bytes == [169, 254, 170, 2] || bytes == [169, 254, 170, 23]
    }

    private struct Reply: Decodable {
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
    }

    static func fetch(endpoint: String, token: String?, tokenFile: String?, httpClient: HTTPClient,
                      timeout: Duration) async throws(TierCacheError) -> AWSCredentials {
        var headers = HTTPHeaders()
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile), data.count < 16_384 else {
                throw TierCacheError(.credentialsFailed, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE '\(tokenFile)'")
            }
            headers.add(name: "Authorization", value: String(decoding: data, as: UTF8.self).trimmedSpacesAndNewlines)
        } else if let token {
            headers.add(name: "Authorization", value: token)
        }
        headers.add(name: "Accept", value: "application/json")
        let response: HTTPResponse
        do {
            response = try await httpClient.execute(HTTPRequest(method: .get, url: endpoint, headers: headers,
                                                                timeout: timeout, connectTimeout: timeout,
                                                                maxResponseBodyBytes: CredentialAnswers.maxBytes))
        } catch {
            throw TierCacheError(.credentialsFailed, "container credentials endpoint: \(error)")
        }
        guard response.status == 200 else {
            throw TierCacheError(.credentialsFailed, "container credentials endpoint answered HTTP \(response.status)")
        }
        guard let reply = try? JSONDecoder().decode(Reply.self, from: Data(response.body)),
              let id = reply.AccessKeyId, !id.isEmpty, let secret = reply.SecretAccessKey, !secret.isEmpty
        else {
            throw TierCacheError(.credentialsFailed, "container credentials endpoint answered without AccessKeyId / SecretAccessKey")
        }
        var expiration: WallTime?
        if let text = reply.Expiration {
            guard let parsed = AWSTimestamp.parseISO8601(text) else {
                throw TierCacheError(.credentialsFailed, "container credentials have an unreadable Expiration '\(text)'")
            }
            expiration = parsed
        }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: reply.Token, expiration: expiration)
    }
}

/// Limits shared by the HTTP-backed credential sources.
enum CredentialAnswers {
    /// The largest answer read from a credentials endpoint, IMDS or STS (theirs are 1-4 KB).
    static let maxBytes = 64 << 10
}

extension AWSCredentialProvider where Self == CredentialChain {
    /// The AWS SDKs' default chain, from an environment dictionary, in the order of the Java,
    /// Kotlin, Go and PHP SDKs:
    /// 1. environment variables (`AWS_ACCESS_KEY_ID`, …; what Lambda sets);
    /// 2. web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, through STS
    ///    `AssumeRoleWithWebIdentity`: EKS IRSA);
    /// 3. the shared credentials/config files (`AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`,
    ///    `AWS_CONFIG_FILE`, `~/.aws`);
    /// 4. container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI`: ECS, EKS
    ///    Pod Identity);
    /// 5. the EC2 instance's role through IMDSv2 (unless `AWS_EC2_METADATA_DISABLED=true`).
    ///
    /// Explicit credentials, when you have them, go in front: pass `.static(...)` instead of this
    /// chain, or `explicit:`.
    /// - Parameters:
    ///   - environment: the variables to read; nil reads this process's environment (do that
    ///     only at the edges of a program, such as `main` or a Lambda handler's set-up).
    ///   - httpClient: the client the HTTP-backed providers fetch with.
    public static func `default`(
        explicit: AWSCredentials? = nil,
        environment: [String: String]? = nil,
        httpClient: HTTPClient,
        logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })
    ) -> CredentialChain {
        let environment = environment ?? ProcessInfo.processInfo.environment
        var providers: [any AWSCredentialProvider] = []
        if let explicit { providers.append(StaticCredentialProvider(explicit)) }
        providers.append(EnvironmentCredentialProvider(environment: environment))
        providers.append(WebIdentityCredentialProvider(environment: environment, httpClient: httpClient, logger: logger))
        providers.append(ProfileCredentialProvider(environment: environment))
        providers.append(ContainerCredentialProvider(environment: environment, httpClient: httpClient, logger: logger))
        providers.append(InstanceMetadataCredentialProvider(environment: environment, httpClient: httpClient, logger: logger))
        return CredentialChain(providers, logger: logger)
    }
}

extension String {
    var trimmedSpacesAndNewlines: String {
        let bytes = Array(utf8)
        var start = 0, end = bytes.count
        func blank(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 10 || b == 13 }
        while start < end, blank(bytes[start]) { start += 1 }
        while end > start, blank(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
