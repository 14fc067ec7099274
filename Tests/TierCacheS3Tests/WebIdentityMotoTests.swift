import Foundation
import Logging
import Testing
import TierCache
import TierCacheHTTP
@testable import TierCacheS3

#if canImport(Glibc)
import Glibc
#endif

/// A moto server of the test's own, started with `INITIAL_NO_AUTH_ACTION_COUNT` set: moto counts
/// unauthenticated calls per server, so the shared server of scripts/start-moto.sh cannot let one
/// unsigned STS call through without letting other tests' requests through too. After the first
/// `unauthenticatedCalls` requests it verifies every signature, as the shared one does.
final class PrivateMoto {
    let endpoint: String
    private let process: Process

    /// Runs blocking work (waiting for a child process) on a thread of its own, off the
    /// cooperative pool that the tests running beside this one need.
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Why moto cannot run here, or nil when it can.
    static func unavailableReason() async -> String? {
        do {
            return try await offPool { probe() }
        } catch {
            return "python3 cannot be started: \(error)"
        }
    }

    private static func probe() -> String? {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import moto.server, boto3"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        do { try probe.run() } catch { return "python3 cannot be started: \(error)" }
        probe.waitUntilExit()
        return probe.terminationStatus == 0 ? nil : "python3 has no moto or boto3 (scripts/setup.sh installs them)"
    }

    init(unauthenticatedCalls: Int) async throws {
        let port = try Self.freePort()
        endpoint = "http://127.0.0.1:\(port)"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)]
        var environment = ProcessInfo.processInfo.environment
        environment["INITIAL_NO_AUTH_ACTION_COUNT"] = String(unauthenticatedCalls)
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let http = HTTPClient()
        defer { http.shutdown() }
        for _ in 0..<300 {
            if let response = try? await http.execute(HTTPRequest(url: endpoint + "/moto-api/", timeout: .seconds(1))),
               response.status == 200 {
                return
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        stop()
        throw TierCacheError(.storage, "moto did not start on \(endpoint)")
    }

    /// Kills the server (moto's SIGTERM handler does not stop its threaded server); the process
    /// is reaped in the background.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
    }

    deinit { stop() }

    /// Runs a Python snippet with boto3 against this server (dummy credentials) and returns its
    /// standard output, trimmed.
    func boto3(_ script: String) async throws -> String {
        let endpoint = endpoint
        return try await Self.offPool { try Self.boto3(script, endpoint: endpoint) }
    }

    private static func boto3(_ script: String, endpoint: String) throws -> String {
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import boto3\nendpoint = '\(endpoint)'\n" + script]
        var environment = ProcessInfo.processInfo.environment
        environment["AWS_ACCESS_KEY_ID"] = "bootstrap"
        environment["AWS_SECRET_ACCESS_KEY"] = "bootstrap"
        environment["AWS_DEFAULT_REGION"] = "us-east-1"
        environment["AWS_CONFIG_FILE"] = "/dev/null"
        environment["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        environment["AWS_PROFILE"] = nil
        python.environment = environment
        let output = Pipe()
        python.standardOutput = output
        try python.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        python.waitUntilExit()
        guard python.terminationStatus == 0 else { throw TierCacheError(.storage, "boto3 script failed: \(script)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TierCacheError(.storage, "socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else { throw TierCacheError(.storage, "bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

@Suite("Web identity against moto")
struct WebIdentityMotoTests {
    @Test("AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN through moto's STS; the role's credentials sign S3 requests moto verifies")
    func assumeRoleWithWebIdentity() async throws {
        if let reason = await PrivateMoto.unavailableReason() {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("moto is required under CI=true: \(reason)")
            } else {
                print("skipping the web identity test against moto: \(reason)")
            }
            return
        }
        // Three unauthenticated calls: boto3 creates the role and its policy, then the unsigned
        // AssumeRoleWithWebIdentity. Everything after is checked (signature and the role's policy).
        let moto = try await PrivateMoto(unauthenticatedCalls: 3)
        defer { moto.stop() }
        let roleARN = try await moto.boto3("""
            iam = boto3.client('iam', endpoint_url=endpoint)
            trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.example.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}'
            arn = iam.create_role(RoleName='tiercache-web', AssumeRolePolicyDocument=trust)['Role']['Arn']
            iam.put_role_policy(RoleName='tiercache-web', PolicyName='s3', PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}')
            print(arn)
            """)
        let dir = try TemporaryDirectory()
        let tokenFile = try dir.write("token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bnM6c2EifQ.c2ln\n")
        let http = HTTPClient()
        defer { http.shutdown() }
        let logs = CapturedLogs()
        let environment = [
            "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_ARN": roleARN, "AWS_ROLE_SESSION_NAME": "tiercache-test",
            "AWS_ENDPOINT_URL_STS": moto.endpoint, "AWS_REGION": "us-east-1", "HOME": dir.path, "AWS_EC2_METADATA_DISABLED": "true",
        ]
        // Through the default chain, as a pod with IRSA would get them.
        let chain = CredentialChain.default(environment: environment, httpClient: http, logger: logs.logger())
        let credentials = try await chain.credentials()
        #expect(credentials.accessKeyID.hasPrefix("ASIA"))
        #expect(credentials.sessionToken?.isEmpty == false)
        #expect(credentials.expiration != nil)

        let client = try S3Client(configuration: .init(endpoint: moto.endpoint, credentials: chain), httpClient: http)
        let bucket = "web-identity-\(UInt32.random(in: 0...UInt32.max))"
        try await client.createBucket(bucket)
        let tier = S3Tier(client: client, configuration: .init(bucket: bucket))
        let key = try CacheKey(namespace: "irsa", name: "model")
        let entry = CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: WallTime(millisecondsSince1970: 0),
                               freshUntil: WallTime(millisecondsSince1970: 4_000_000_000_000),
                               staleUntil: WallTime(millisecondsSince1970: 4_000_000_000_000),
                               uncompressedLength: 5, payload: Array("hello".utf8))
        try await tier.put(entry)
        #expect(try await tier.get(key)?.payload == Array("hello".utf8))

        // moto checks what it is sent: the same key with a wrong secret is refused.
        var forged = credentials
        forged.secretAccessKey = "not-the-secret"
        let refused = try S3Client(configuration: .init(endpoint: moto.endpoint, credentials: .static(forged)), httpClient: http)
        await #expect(throws: S3Error.self) { _ = try await refused.getObject(bucket: bucket, key: tier.objectKey(for: key)) }
        #expect(!logs.text.contains("eyJhbGciOi"))
        #expect(!logs.text.contains(credentials.secretAccessKey))
    }
}
