import Foundation
import Logging
import Testing
import TierCache
import TierCacheTesting
@testable import TierCacheS3

/// Collects every log line (message and metadata) so tests can grep them for secrets.
final class CapturedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
    var count: Int { lock.lock(); defer { lock.unlock() }; return lines.count }

    func logger() -> Logger {
        var logger = Logger(label: "test") { _ in Handler(sink: self) }
        logger.logLevel = .trace
        return logger
    }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = self.metadata.merging(event.metadata ?? [:]) { $1 }
            let error = event.error.map { " error=\($0)" } ?? ""
            sink.append("\(event.level) \(event.message) \(all.map { "\($0)=\($1)" }.sorted().joined(separator: " "))\(error)")
        }
    }
}

/// A temporary directory removed at deinit.
final class TemporaryDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "tiercache-s3-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite("Credentials")
struct CredentialTests {
    @Test("environment provider reads the three variables, and only from the dictionary it is given")
    func environment() async throws {
        let env = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_SESSION_TOKEN": "envtoken"]
        let c = try await EnvironmentCredentialProvider(environment: env).credentials()
        #expect(c.accessKeyID == "AKIDENV")
        #expect(c.secretAccessKey == "envsecret")
        #expect(c.sessionToken == "envtoken")
        await #expect(throws: TierCacheError.self) { try await EnvironmentCredentialProvider(environment: [:]).credentials() }
        do {
            _ = try await EnvironmentCredentialProvider(environment: ["AWS_ACCESS_KEY_ID": "x"]).credentials()
            Issue.record("a key id without a secret resolved")
        } catch {
            #expect(error.code == .credentialsNotFound)
        }
    }

    @Test("profiles from the credentials and config files, AWS_PROFILE and file overrides")
    func profiles() async throws {
        let dir = try TemporaryDirectory()
        let credentialsFile = try dir.write("credentials", """
            # comment
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = defaultsecret

            [work]
            aws_access_key_id=AKIDWORK
            aws_secret_access_key=worksecret
            aws_session_token = worktoken
            """)
        let configFile = try dir.write("config", """
            [default]
            region = eu-west-1
            [profile other]
            region = ap-south-1
            aws_access_key_id = AKIDOTHER
            aws_secret_access_key = othersecret
              s3 =
                addressing_style = path
            """)
        let base = ["AWS_SHARED_CREDENTIALS_FILE": credentialsFile, "AWS_CONFIG_FILE": configFile, "HOME": dir.path]
        let d = try await ProfileCredentialProvider(environment: base).credentials()
        #expect(d.accessKeyID == "AKIDDEFAULT" && d.secretAccessKey == "defaultsecret" && d.sessionToken == nil)
        #expect(ProfileCredentialProvider(environment: base).region() == "eu-west-1")
        var env = base
        env["AWS_PROFILE"] = "work"
        let w = try await ProfileCredentialProvider(environment: env).credentials()
        #expect(w.accessKeyID == "AKIDWORK" && w.sessionToken == "worktoken")
        env["AWS_PROFILE"] = "other"
        let o = try await ProfileCredentialProvider(environment: env).credentials()
        #expect(o.accessKeyID == "AKIDOTHER" && o.secretAccessKey == "othersecret")
        #expect(ProfileCredentialProvider(environment: env).region() == "ap-south-1")
        env["AWS_PROFILE"] = "missing"
        do {
            _ = try await ProfileCredentialProvider(environment: env).credentials()
            Issue.record("a missing profile resolved")
        } catch {
            #expect(error.code == .credentialsNotFound)
        }
    }

    @Test("a chain skips sources without credentials, stops at a failing one, and logs no secret")
    func chain() async throws {
        let logs = CapturedLogs()
        let chain = CredentialChain([
            .environment([:]),
            .profile("none", credentialsFile: "/nonexistent/credentials", configFile: nil),
            .static(accessKeyID: "AKIDSTATIC", secretAccessKey: "chainsecret-xyz", sessionToken: "chaintoken-xyz"),
        ], logger: logs.logger())
        let c = try await chain.credentials()
        #expect(c.accessKeyID == "AKIDSTATIC")
        #expect(logs.text.contains("AKIDSTATIC"))
        #expect(!logs.text.contains("chainsecret-xyz"))
        #expect(!logs.text.contains("chaintoken-xyz"))

        let empty = CredentialChain([.environment([:])])
        do {
            _ = try await empty.credentials()
            Issue.record("an empty chain resolved")
        } catch {
            #expect(error.code == .credentialsNotFound)
            #expect(error.message.contains("AWS_ACCESS_KEY_ID"))
        }

        let dir = try TemporaryDirectory()
        let broken = try dir.write("credentials", "[default]\naws_access_key_id = AKIDBROKEN\n")
        let stops = CredentialChain([.profile(credentialsFile: broken, configFile: nil), .static(accessKeyID: "B", secretAccessKey: "b")])
        do {
            _ = try await stops.credentials()
            Issue.record("the chain fell through a failing source")
        } catch {
            #expect(error.code == .credentialsFailed)
        }
    }

    @Test("refreshing provider: single flight, refresh before expiry, cached on failure, no secrets logged")
    func refreshing() async throws {
        let clock = ManualClock(start: WallTime(millisecondsSince1970: 1_000_000_000))
        let calls = LockedCounter()
        let failNext = LockedFlag()
        let logs = CapturedLogs()
        let provider = RefreshingCredentialProvider(refreshBefore: .seconds(300), clock: clock, logger: logs.logger()) {
            () throws(TierCacheError) -> AWSCredentials in
            let n = calls.increment()
            try? await Task.sleep(for: .milliseconds(20))
            if failNext.value { throw TierCacheError(.credentialsFailed, "endpoint said no") }
            return AWSCredentials(accessKeyID: "ASIA\(n)", secretAccessKey: "refreshsecret-\(n)",
                                  sessionToken: "refreshtoken-\(n)", expiration: clock.now().advanced(by: .seconds(3600)))
        }
        // Ten concurrent callers share one fetch.
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<10 { group.addTask { try await provider.credentials().accessKeyID } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(Set(ids) == ["ASIA1"])
        #expect(calls.value == 1)
        // Still well before expiry: cached.
        clock.advance(by: .seconds(3000))
        #expect(try await provider.credentials().accessKeyID == "ASIA1")
        #expect(calls.value == 1)
        // Inside the refresh window: refreshed.
        clock.advance(by: .seconds(400))
        #expect(try await provider.credentials().accessKeyID == "ASIA2")
        #expect(calls.value == 2)
        // A failed refresh while still valid returns the cached credentials and logs a warning.
        failNext.set(true)
        clock.advance(by: .seconds(3400))
        #expect(try await provider.credentials().accessKeyID == "ASIA2")
        // Once expired, the failure is thrown.
        clock.advance(by: .seconds(600))
        await #expect(throws: TierCacheError.self) { try await provider.credentials() }
        #expect(logs.text.contains("credential refresh failed"))
        #expect(!logs.text.contains("refreshsecret"))
        #expect(!logs.text.contains("refreshtoken"))
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; count += 1; return count }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set(_ value: Bool) { lock.lock(); flag = value; lock.unlock() }
    var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
}

/// A wall clock the test moves by hand.
final class ManualClock: CacheClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: WallTime
    init(start: WallTime) { current = start }
    func now() -> WallTime { lock.lock(); defer { lock.unlock() }; return current }
    func advance(by duration: Duration) { lock.lock(); current = current.advanced(by: duration); lock.unlock() }
}
