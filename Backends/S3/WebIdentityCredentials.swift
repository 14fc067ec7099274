#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
public import TierCache
public import TierCacheHTTP

/// Credentials for an IAM role assumed with a web identity token (OIDC): EKS's IAM Roles for
/// Service Accounts, GitHub Actions and other federated workloads.
///
/// Each fetch reads the token file again (it rotates) and calls STS `AssumeRoleWithWebIdentity`,
/// an unsigned `POST` of `Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=…&
/// RoleSessionName=…&WebIdentityToken=…`; the temporary credentials are cached and refreshed in
/// the background before they expire by one ``RefreshingCredentialProvider`` (single flight,
/// backoff after failures). STS errors come back as ``TierCacheError/Code/credentialsFailed``
/// with STS's code (`InvalidIdentityToken`, `ExpiredTokenException`, `AccessDenied`, …); the
/// token never appears in a message or a log line. Answers above 64 KiB are refused unread.
public struct WebIdentityCredentialProvider: AWSCredentialProvider {
    /// The STS endpoint called, or nil when the environment does not configure web identity.
    public let stsEndpoint: String?
    /// The role assumed, or nil when not configured.
    public let roleARN: String?
    private let refresher: RefreshingCredentialProvider?
    private let missing: String?

    /// Creates a provider.
    /// - Parameters:
    ///   - tokenFile: the file holding the web identity token (read at every fetch).
    ///   - roleARN: the role to assume.
    ///   - roleSessionName: the session name recorded in CloudTrail; nil for `tiercache-<ms>`.
    ///   - stsEndpoint: the STS URL; nil for STS in `region` (`https://sts.<region>.amazonaws.com`),
    ///     or the global `https://sts.amazonaws.com` without a region.
    ///   - region: the region whose STS endpoint is used when `stsEndpoint` is nil.
    ///   - httpClient: the client to call STS with.
    ///   - timeout: the deadline of one STS call.
    ///   - refreshBefore: refresh when less than this is left before expiry.
    public init(tokenFile: String, roleARN: String, roleSessionName: String? = nil, stsEndpoint: String? = nil,
                region: AWSRegion? = nil, httpClient: HTTPClient, timeout: Duration = .seconds(5),
                refreshBefore: Duration = .seconds(300), clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        let endpoint = stsEndpoint ?? region.map { "https://sts.\($0.rawValue).\($0.dnsSuffix)" } ?? "https://sts.amazonaws.com"
        self.stsEndpoint = endpoint
        self.roleARN = roleARN
        missing = nil
        let sessionName = roleSessionName ?? "tiercache-\(clock.now().millisecondsSince1970)"
        refresher = RefreshingCredentialProvider(refreshBefore: refreshBefore, clock: clock, logger: logger) {
            () throws(TierCacheError) -> AWSCredentials in
            try await Self.assumeRole(endpoint: endpoint, tokenFile: tokenFile, roleARN: roleARN, sessionName: sessionName,
                                      httpClient: httpClient, timeout: timeout)
        }
    }

    /// Creates a provider from the variables the AWS SDKs read: `AWS_WEB_IDENTITY_TOKEN_FILE` and
    /// `AWS_ROLE_ARN` (both needed; without them the provider answers
    /// ``TierCacheError/Code/credentialsNotFound``), `AWS_ROLE_SESSION_NAME`, the endpoint from
    /// `AWS_ENDPOINT_URL_STS` or `AWS_ENDPOINT_URL`, else STS in `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, else the global endpoint.
    public init(environment: [String: String], httpClient: HTTPClient, clock: any CacheClock = SystemCacheClock(),
                logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        guard let tokenFile = value("AWS_WEB_IDENTITY_TOKEN_FILE"), let roleARN = value("AWS_ROLE_ARN") else {
            self.init(missing: value("AWS_WEB_IDENTITY_TOKEN_FILE") == nil
                ? "AWS_WEB_IDENTITY_TOKEN_FILE is not set" : "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not")
            return
        }
        self.init(tokenFile: tokenFile, roleARN: roleARN, roleSessionName: value("AWS_ROLE_SESSION_NAME"),
                  stsEndpoint: value("AWS_ENDPOINT_URL_STS") ?? value("AWS_ENDPOINT_URL"),
                  region: (value("AWS_REGION") ?? value("AWS_DEFAULT_REGION")).map { AWSRegion(rawValue: $0) },
                  httpClient: httpClient, clock: clock, logger: logger)
    }

    private init(missing: String) {
        stsEndpoint = nil
        roleARN = nil
        refresher = nil
        self.missing = missing
    }

    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        guard let refresher else { throw TierCacheError(.credentialsNotFound, missing ?? "web identity is not configured") }
        return try await refresher.credentials()
    }

    /// As ``credentials()``, waiting for STS no later than `deadline`.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        guard let refresher else { throw TierCacheError(.credentialsNotFound, missing ?? "web identity is not configured") }
        return try await refresher.credentials(deadline: deadline)
    }

    /// How many times STS was called (for tests and diagnostics).
    public var fetchCount: Int {
        get async { await refresher?.fetchCount ?? 0 }
    }

    static func assumeRole(endpoint: String, tokenFile: String, roleARN: String, sessionName: String,
                           httpClient: HTTPClient, timeout: Duration) async throws(TierCacheError) -> AWSCredentials {
        guard let data = FileManager.default.contents(atPath: tokenFile), data.count <= CredentialAnswers.maxBytes else {
            throw TierCacheError(.credentialsFailed, "cannot read AWS_WEB_IDENTITY_TOKEN_FILE '\(tokenFile)' (missing, unreadable or over 64 KiB)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmedSpacesAndNewlines
        guard !token.isEmpty else { throw TierCacheError(.credentialsFailed, "AWS_WEB_IDENTITY_TOKEN_FILE '\(tokenFile)' is empty") }
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
            ("RoleSessionName", sessionName), ("WebIdentityToken", token),
        ].map { PercentEncoding.encode($0.0, keepSlash: false) + "=" + PercentEncoding.encode($0.1, keepSlash: false) }
            .joined(separator: "&")
        var url = endpoint
        while url.hasSuffix("/") { url.removeLast() }
        let response: HTTPResponse
        do {
            response = try await httpClient.execute(HTTPRequest(
                method: .post, url: url + "/",
                headers: ["Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Accept": "text/xml"],
                body: Array(form.utf8), timeout: timeout, connectTimeout: timeout,
                maxResponseBodyBytes: CredentialAnswers.maxBytes))
        } catch {
            throw TierCacheError(.credentialsFailed, "STS AssumeRoleWithWebIdentity failed: \(error)")
        }
        return try credentials(from: response)
    }

    /// Reads STS's answer: the credentials of a 200, or the `Code` and `Message` of an error.
    static func credentials(from response: HTTPResponse) throws(TierCacheError) -> AWSCredentials {
        let root = XMLElement.parse(response.body)
        guard response.status == 200 else {
            let error = root?.child("Error")
            let code = error?["Code"] ?? "HTTP \(response.status)"
            throw TierCacheError(.credentialsFailed, "STS AssumeRoleWithWebIdentity answered \(code): \(error?["Message"] ?? "")")
        }
        guard let root, root.name == "AssumeRoleWithWebIdentityResponse",
              let credentials = root.child("AssumeRoleWithWebIdentityResult")?.child("Credentials"),
              let id = credentials["AccessKeyId"], !id.isEmpty, let secret = credentials["SecretAccessKey"], !secret.isEmpty,
              let token = credentials["SessionToken"], !token.isEmpty
        else {
            throw TierCacheError(.credentialsFailed, "STS AssumeRoleWithWebIdentity answered without credentials")
        }
        guard let text = credentials["Expiration"], let expiration = AWSTimestamp.parseISO8601(text) else {
            throw TierCacheError(.credentialsFailed, "STS credentials have no readable Expiration")
        }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token, expiration: expiration)
    }
}
