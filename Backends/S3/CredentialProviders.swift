#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
public import TierCache

/// Where an S3 client gets its credentials: one source, or a chain of them.
///
/// Built-ins are static members: ``StaticCredentialProvider`` (`.static(_:)`), the environment
/// (`.environment(_:)`), shared credentials/config files (`.profile(...)`) and
/// ``CredentialChain`` (`.chain(_:)`, `.default(...)`); the HTTP-backed sources are
/// ``WebIdentityCredentialProvider``, ``ContainerCredentialProvider`` and
/// ``InstanceMetadataCredentialProvider``. Nothing reads the process environment unless the
/// caller asks for an environment-based provider.
public protocol AWSCredentialProvider: Sendable {
    /// Returns current credentials.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/credentialsNotFound`` when this
    ///   source has none (a chain then tries the next), or another code when the source exists but
    ///   failed (a chain stops there). Messages never contain secrets.
    func credentials() async throws(TierCacheError) -> AWSCredentials

    /// Returns current credentials, or gives up at `deadline`: what ``S3Client`` calls, with the
    /// deadline of the operation that needs them, so that a credentials endpoint that hangs fails
    /// that operation in time instead of holding it.
    ///
    /// A default implementation runs ``credentials()`` and, at the deadline, cancels it and
    /// throws; the built-in providers implement it themselves (cached credentials come back at
    /// once, and a refresh that the deadline cuts short goes on in the background for the next
    /// caller).
    /// - Throws: as ``credentials()``, or ``TierCacheError/Code/timeout`` at the deadline.
    func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials
}

extension AWSCredentialProvider {
    /// Runs ``credentials()`` under `deadline`; at the deadline the call is cancelled and left to
    /// finish in the background, and this throws ``TierCacheError/Code/timeout``.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        do {
            return try await withDeadline(ContinuousClock.now.duration(to: deadline)) { try await self.credentials() }
        } catch let error as TierCacheError {
            throw error
        } catch is CancellationError {
            throw TierCacheError(.cancelled, "credentials: the task was cancelled")
        } catch {
            throw TierCacheError(.credentialsFailed, "credentials: \(error)")
        }
    }
}

extension TierCacheError.Code {
    /// A credential source has no credentials (not configured, variable unset, no such profile).
    public static var credentialsNotFound: Self { .custom("credentialsNotFound") }
    /// A credential source is configured but failed (bad file, endpoint error, malformed reply).
    public static var credentialsFailed: Self { .custom("credentialsFailed") }
}

// MARK: - Static

/// Fixed credentials given by the caller.
public struct StaticCredentialProvider: AWSCredentialProvider {
    let value: AWSCredentials
    /// Creates a provider that always returns `credentials`.
    public init(_ credentials: AWSCredentials) { value = credentials }
    public func credentials() async throws(TierCacheError) -> AWSCredentials { value }
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials { value }
}

extension AWSCredentialProvider where Self == StaticCredentialProvider {
    /// Fixed credentials.
    public static func `static`(_ credentials: AWSCredentials) -> StaticCredentialProvider {
        StaticCredentialProvider(credentials)
    }

    /// Fixed credentials from a key id, secret and optional session token.
    public static func `static`(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil)
        -> StaticCredentialProvider
    {
        StaticCredentialProvider(AWSCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey,
                                                sessionToken: sessionToken))
    }
}

// MARK: - Environment

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`, read from the
/// environment dictionary given at creation.
public struct EnvironmentCredentialProvider: AWSCredentialProvider {
    let environment: [String: String]

    /// Creates a provider over `environment` (pass `ProcessInfo.processInfo.environment`, or use
    /// ``AWSCredentialProvider/environment``).
    public init(environment: [String: String]) { self.environment = environment }

    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
              let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else {
            throw TierCacheError(.credentialsNotFound, "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set")
        }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    /// As ``credentials()``: a dictionary lookup needs no deadline.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        try await credentials()
    }
}

extension AWSCredentialProvider where Self == EnvironmentCredentialProvider {
    /// Credentials from this process's environment variables, read now.
    public static var environment: EnvironmentCredentialProvider {
        EnvironmentCredentialProvider(environment: ProcessInfo.processInfo.environment)
    }

    /// Credentials from the given environment variables.
    public static func environment(_ environment: [String: String]) -> EnvironmentCredentialProvider {
        EnvironmentCredentialProvider(environment: environment)
    }
}

// MARK: - Shared files

/// A profile from the shared credentials file (`~/.aws/credentials`, `[name]` sections) and the
/// config file (`~/.aws/config`, `[profile name]` or `[default]`); the credentials file wins
/// where both set a key. Files are read on every call (they are small and may be rotated).
public struct ProfileCredentialProvider: AWSCredentialProvider {
    /// The profile name.
    public let profile: String
    /// The shared credentials file path.
    public let credentialsFile: String?
    /// The config file path.
    public let configFile: String?

    /// Creates a provider for a profile.
    /// - Parameters:
    ///   - profile: the profile name (`default` when nil).
    ///   - credentialsFile: path of the shared credentials file, nil to skip it.
    ///   - configFile: path of the config file, nil to skip it.
    public init(profile: String? = nil, credentialsFile: String?, configFile: String?) {
        self.profile = profile ?? "default"
        self.credentialsFile = credentialsFile
        self.configFile = configFile
    }

    /// Creates a provider with the AWS CLI's conventions, from an environment dictionary:
    /// `AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, else `$HOME/.aws/…`.
    public init(environment: [String: String]) {
        let home = environment["HOME"] ?? ""
        self.init(profile: environment["AWS_PROFILE"].flatMap { $0.isEmpty ? nil : $0 },
                  credentialsFile: environment["AWS_SHARED_CREDENTIALS_FILE"] ?? (home.isEmpty ? nil : home + "/.aws/credentials"),
                  configFile: environment["AWS_CONFIG_FILE"] ?? (home.isEmpty ? nil : home + "/.aws/config"))
    }

    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        var merged: [String: String] = [:]
        if let configFile, let text = Self.readFile(configFile) {
            let sections = Self.parseINI(text)
            let name = profile == "default" ? "default" : "profile " + profile
            for (k, v) in sections[name] ?? sections[profile == "default" ? "profile default" : profile] ?? [:] { merged[k] = v }
        }
        if let credentialsFile, let text = Self.readFile(credentialsFile) {
            for (k, v) in Self.parseINI(text)[profile] ?? [:] { merged[k] = v }
        }
        guard let id = merged["aws_access_key_id"], !id.isEmpty else {
            throw TierCacheError(.credentialsNotFound, "profile '\(profile)' has no aws_access_key_id")
        }
        guard let secret = merged["aws_secret_access_key"], !secret.isEmpty else {
            throw TierCacheError(.credentialsFailed, "profile '\(profile)' has an access key id but no aws_secret_access_key")
        }
        let token = merged["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    /// As ``credentials()``: two small local files (at most 1 MiB each) are read at once.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        try await credentials()
    }

    /// The profile's `region` from the config file, if set.
    public func region() -> String? {
        guard let configFile, let text = Self.readFile(configFile) else { return nil }
        let sections = Self.parseINI(text)
        return (sections[profile == "default" ? "default" : "profile " + profile])?["region"]
    }

    static func readFile(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// A forgiving INI reader: `[section]`, `key = value`, `#`/`;` comments; indented lines
    /// (sub-properties) are skipped; section and key names are trimmed, keys lower-cased.
    static func parseINI(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            if rawLine.first == " " || rawLine.first == "\t" { continue }
            let line = rawLine.trimmedSpaces
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().trimmedSpaces
                let collapsed = name.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                current = collapsed
                if sections[collapsed] == nil { sections[collapsed] = [:] }
                continue
            }
            guard let current, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmedSpaces.lowercased()
            let value = line[line.index(after: eq)...].trimmedSpaces
            sections[current, default: [:]][key] = value
        }
        return sections
    }
}

extension AWSCredentialProvider where Self == ProfileCredentialProvider {
    /// A named profile from explicit file paths.
    public static func profile(_ name: String? = nil, credentialsFile: String?, configFile: String?) -> ProfileCredentialProvider {
        ProfileCredentialProvider(profile: name, credentialsFile: credentialsFile, configFile: configFile)
    }
}

// MARK: - Chain

/// Tries providers in order and returns the first one's credentials.
///
/// A provider that throws ``TierCacheError/Code/credentialsNotFound`` is skipped; any other error
/// ends the search and is rethrown (a configured source that fails should not silently fall
/// through to another identity). The provider that answered is remembered, so later calls go
/// straight to it (and a refreshing provider keeps its cache).
public struct CredentialChain: AWSCredentialProvider {
    let providers: [any AWSCredentialProvider]
    let logger: Logger
    private let chosen = LockedValueBox<Int?>(nil)

    /// Creates a chain.
    public init(_ providers: [any AWSCredentialProvider], logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.providers = providers
        self.logger = logger
    }

    public func credentials() async throws(TierCacheError) -> AWSCredentials {
        try await resolve(deadline: nil)
    }

    /// Asks each provider under `deadline`, in order, as ``credentials()`` does.
    public func credentials(deadline: ContinuousClock.Instant) async throws(TierCacheError) -> AWSCredentials {
        try await resolve(deadline: deadline)
    }

    private func resolve(deadline: ContinuousClock.Instant?) async throws(TierCacheError) -> AWSCredentials {
        func ask(_ provider: any AWSCredentialProvider) async throws(TierCacheError) -> AWSCredentials {
            if let deadline { try await provider.credentials(deadline: deadline) } else { try await provider.credentials() }
        }
        if let index = chosen.withLock({ $0 }) {
            return try await ask(providers[index])
        }
        var reasons: [String] = []
        for (index, provider) in providers.enumerated() {
            do {
                let credentials = try await ask(provider)
                chosen.withLock { $0 = index }
                logger.debug("credentials resolved", metadata: [
                    "source": "\(type(of: provider))", "access-key-id": "\(credentials.accessKeyID)",
                ])
                return credentials
            } catch where error.code == .credentialsNotFound {
                reasons.append(error.message)
            }
        }
        throw TierCacheError(.credentialsNotFound, "no credentials in the chain: " + reasons.joined(separator: "; "))
    }
}

extension AWSCredentialProvider where Self == CredentialChain {
    /// A chain of providers tried in order.
    public static func chain(_ providers: [any AWSCredentialProvider], logger: Logger = Logger(label: "tiercache", factory: { _ in SwiftLogNoOpLogHandler() })) -> CredentialChain {
        CredentialChain(providers, logger: logger)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmedSpaces: String {
        let bytes = Array(utf8)
        var start = 0, end = bytes.count
        while start < end, bytes[start] == 32 || bytes[start] == 9 { start += 1 }
        while end > start, bytes[end - 1] == 32 || bytes[end - 1] == 9 { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
