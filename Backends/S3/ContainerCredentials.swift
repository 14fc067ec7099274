#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
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
/// The credentials are cached and refreshed before they expire by one
/// ``RefreshingCredentialProvider`` (single flight). A full URI must use HTTPS or point at a
/// loopback address or the ECS/EKS link-local endpoints, as the AWS SDKs require.
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

    /// How many times the endpoint was fetched (for tests and diagnostics).
    public var fetchCount: Int {
        get async { await refresher?.fetchCount ?? 0 }
    }

    static func validate(_ endpoint: String) -> String? {
        guard let parsed = Endpoint(endpoint) else { return "container credentials URI is not an http(s) URL" }
        if parsed.scheme == "https" { return nil }
        let host = parsed.host.lowercased()
        let allowed = host == "localhost" || host.hasPrefix("127.") || host == "[::1]" || host == "169.254.170.2"
            || host == "169.254.170.23" || host == "[fd00:ec2::23]"
        return allowed ? nil : "container credentials URI must use https or a loopback / ECS / EKS address, not '\(parsed.host)'"
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
                                                                timeout: timeout, connectTimeout: timeout))
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

extension AWSCredentialProvider where Self == CredentialChain {
    /// The AWS SDKs' default chain, from an environment dictionary: environment variables, then
    /// container credentials, then the shared credentials/config files (`AWS_PROFILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, `~/.aws`). Explicit credentials, when
    /// you have them, go in front: pass `.static(...)` instead of this chain, or `explicit:`.
    /// - Parameters:
    ///   - environment: the variables to read; nil reads this process's environment (do that
    ///     only at the edges of a program, such as `main` or a Lambda handler's set-up).
    ///   - httpClient: the client the container provider fetches with.
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
        providers.append(ContainerCredentialProvider(environment: environment, httpClient: httpClient, logger: logger))
        providers.append(ProfileCredentialProvider(environment: environment))
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
