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

    @Test("refreshing provider: single flight at start, cached while valid, refreshed in the background, no secrets logged")
    func refreshing() async throws {
        let clock = ManualClock(start: WallTime(millisecondsSince1970: 1_000_000_000))
        let calls = LockedCounter()
        let gate = Gate()
        gate.open()
        let logs = CapturedLogs()
        let provider = RefreshingCredentialProvider(refreshBefore: .seconds(300), clock: clock, logger: logs.logger()) {
            () throws(TierCacheError) -> AWSCredentials in
            let n = calls.increment()
            await gate.wait()
            return AWSCredentials(accessKeyID: "ASIA\(n)", secretAccessKey: "refreshsecret-\(n)",
                                  sessionToken: "refreshtoken-\(n)", expiration: clock.now().advanced(by: .seconds(3600)))
        }
        // Ten concurrent callers with nothing cached share one fetch.
        gate.close()
        let waiting = Task {
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<10 { group.addTask { try await provider.credentials().accessKeyID } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
        }
        try await waitUntil { calls.value == 1 }
        gate.open()
        #expect(Set(try await waiting.value) == ["ASIA1"])
        #expect(calls.value == 1)
        // Well before expiry: cached, nothing fetched.
        clock.advance(by: .seconds(3000))
        #expect(try await provider.credentials().accessKeyID == "ASIA1")
        #expect(calls.value == 1)
        // Inside the refresh window, with the source hanging: the cached credentials come back at
        // once, from every caller, while one refresh runs in the background.
        gate.close()
        clock.advance(by: .seconds(400))
        for _ in 0..<5 { #expect(try await provider.credentials().accessKeyID == "ASIA1") }
        #expect(await provider.fetchCount == 2)
        gate.open()
        await provider.waitForRefresh()
        #expect(try await provider.credentials().accessKeyID == "ASIA2")
        #expect(calls.value == 2)
        #expect(!logs.text.contains("refreshsecret"))
        #expect(!logs.text.contains("refreshtoken"))
    }

    @Test("refreshing provider: failed refreshes back off (1 s, 2 s, ...) while cached credentials are served; expired ones fail fast")
    func refreshBackoff() async throws {
        let clock = ManualClock(start: WallTime(millisecondsSince1970: 1_000_000_000))
        let calls = LockedCounter()
        let failing = LockedFlag()
        let logs = CapturedLogs()
        let provider = RefreshingCredentialProvider(refreshBefore: .seconds(300), retryBackoff: .seconds(1), maxRetryBackoff: .seconds(4),
                                                    clock: clock, logger: logs.logger()) {
            () throws(TierCacheError) -> AWSCredentials in
            let n = calls.increment()
            if failing.value { throw TierCacheError(.credentialsFailed, "endpoint said no") }
            return AWSCredentials(accessKeyID: "ASIA\(n)", secretAccessKey: "s", expiration: clock.now().advanced(by: .seconds(3600)))
        }
        #expect(try await provider.credentials().accessKeyID == "ASIA1")
        failing.set(true)
        clock.advance(by: .seconds(3400))  // 200 s left: inside the window
        // Each call below would have started a refresh without the backoff.
        func serveCached(expectingCalls expected: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
            #expect(try await provider.credentials().accessKeyID == "ASIA1", sourceLocation: sourceLocation)
            await provider.waitForRefresh()
            #expect(calls.value == expected, sourceLocation: sourceLocation)
        }
        try await serveCached(expectingCalls: 2)            // failure 1: next try in 1 s
        try await serveCached(expectingCalls: 2)
        clock.advance(by: .milliseconds(900))
        try await serveCached(expectingCalls: 2)
        clock.advance(by: .milliseconds(200))
        try await serveCached(expectingCalls: 3)            // failure 2: next try in 2 s
        clock.advance(by: .milliseconds(1500))
        try await serveCached(expectingCalls: 3)
        clock.advance(by: .milliseconds(600))
        try await serveCached(expectingCalls: 4)            // failure 3: next try in 4 s (the cap)
        clock.advance(by: .milliseconds(4100))
        try await serveCached(expectingCalls: 5)            // failure 4: still 4 s
        clock.advance(by: .milliseconds(3900))
        try await serveCached(expectingCalls: 5)
        #expect(logs.text.contains("credential refresh failed; using cached credentials until they expire"))

        // Expired: a caller waits for a refresh and gets its failure; callers inside the backoff
        // get the same failure at once, without asking the source again.
        clock.advance(by: .seconds(300))
        await #expect(throws: TierCacheError.self) { try await provider.credentials() }
        let afterExpiry = calls.value
        for _ in 0..<5 { await #expect(throws: TierCacheError.self) { try await provider.credentials() } }
        #expect(calls.value == afterExpiry)
        // The source recovers; after the backoff the next caller gets fresh credentials.
        failing.set(false)
        clock.advance(by: .seconds(5))
        #expect(try await provider.credentials().accessKeyID == "ASIA\(afterExpiry + 1)")
    }

    @Test("refreshing provider: a caller with nothing cached gives up at its deadline; the refresh goes on for the next caller")
    func refreshUnderDeadline() async throws {
        let clock = ManualClock(start: WallTime(millisecondsSince1970: 1_000_000_000))
        let calls = LockedCounter()
        let gate = Gate()
        let provider = RefreshingCredentialProvider(clock: clock) { () throws(TierCacheError) -> AWSCredentials in
            let n = calls.increment()
            await gate.wait()
            return AWSCredentials(accessKeyID: "ASIA\(n)", secretAccessKey: "s", expiration: clock.now().advanced(by: .seconds(3600)))
        }
        do {
            _ = try await provider.credentials(deadline: .now.advanced(by: .milliseconds(100)))
            Issue.record("resolved while the source hangs")
        } catch {
            #expect(error.code == .timeout)
        }
        do {
            _ = try await provider.credentials(deadline: .now.advanced(by: .milliseconds(50)))
            Issue.record("resolved while the source hangs")
        } catch {
            #expect(error.code == .timeout)
        }
        #expect(calls.value == 1, "the second caller joined the refresh in flight")
        gate.open()
        await provider.waitForRefresh()
        #expect(try await provider.credentials(deadline: .now.advanced(by: .milliseconds(1))).accessKeyID == "ASIA1")
        #expect(calls.value == 1)
    }
}

/// An async gate: `wait()` returns once the gate is open, or after `limit` (so that a test of
/// code that blocks fails instead of hanging).
final class Gate: @unchecked Sendable {
    private let lock = NSLock()
    private var isOpen = false
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextID = 0

    func open() {
        lock.lock()
        isOpen = true
        let all = waiters.values
        waiters = [:]
        lock.unlock()
        for waiter in all { waiter.resume() }
    }

    func close() { lock.lock(); isOpen = false; lock.unlock() }

    private func timeOut(_ id: Int) {
        lock.lock()
        let waiter = waiters.removeValue(forKey: id)
        lock.unlock()
        waiter?.resume()
    }

    func wait(limit: Duration = .seconds(30)) async {
        let id: Int? = {
            lock.lock(); defer { lock.unlock() }
            if isOpen { return nil }
            nextID += 1
            return nextID
        }()
        guard let id else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if isOpen {
                lock.unlock()
                continuation.resume()
                return
            }
            waiters[id] = continuation
            lock.unlock()
            Task {
                try? await Task.sleep(for: limit)
                self.timeOut(id)
            }
        }
    }
}

/// Polls `condition` every 5 ms for up to 30 s; fails the test if it never holds.
func waitUntil(_ what: String = "condition", sourceLocation: SourceLocation = #_sourceLocation,
               _ condition: @Sendable () async -> Bool) async throws {
    for _ in 0..<6000 {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("\(what) never held", sourceLocation: sourceLocation)
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
