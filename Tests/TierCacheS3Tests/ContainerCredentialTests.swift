import Foundation
import Logging
import Testing
import TierCache
import TierCacheHTTP
import TierCacheTesting
@testable import TierCacheS3

@Suite("Container credentials")
struct ContainerCredentialTests {
    /// A loopback credentials endpoint: checks the Authorization header and hands out numbered
    /// credentials expiring `lifetime` after the manual clock's now.
    final class Endpoint: @unchecked Sendable {
        let server: LoopbackHTTPServer
        let served = LockedCounter()

        init(expectedToken: String?, clock: ManualClock, lifetime: Duration = .seconds(3600)) throws {
            let served = self.served
            server = try LoopbackHTTPServer { request in
                guard request.path == "/v2/credentials/abc" else { return .init(status: 404) }
                if let expectedToken, request.header("Authorization") != expectedToken {
                    return .init(status: 401, body: Array("{\"message\":\"bad token\"}".utf8))
                }
                let n = served.increment()
                let expiration = AWSTimestamp(clock.now().advanced(by: lifetime)).iso8601
                let json = """
                    {"AccessKeyId":"ASIACONTAINER\(n)","SecretAccessKey":"containersecret-\(n)",
                     "Token":"containertoken-\(n)","Expiration":"\(expiration)","RoleArn":"arn:aws:iam::1:role/x"}
                    """
                return .init(status: 200, headers: [("Content-Type", "application/json")], body: Array(json.utf8))
            }
        }

        var url: String { server.baseURL + "/v2/credentials/abc" }
        deinit { server.stop() }
    }

    @Test("full URI with a token: fetched once, cached, refreshed before expiry; secrets never logged")
    func fullURIWithToken() async throws {
        let clock = ManualClock(start: WallTime(millisecondsSince1970: 1_800_000_000_000))
        let endpoint = try Endpoint(expectedToken: "Bearer tok-1", clock: clock)
        let http = HTTPClient()
        defer { http.shutdown() }
        let logs = CapturedLogs()
        let provider = ContainerCredentialProvider(
            environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Bearer tok-1"],
            httpClient: http, clock: clock, logger: logs.logger())
        let results = try await withThrowingTaskGroup(of: AWSCredentials.self) { group in
            for _ in 0..<8 { group.addTask { try await provider.credentials() } }
            return try await group.reduce(into: [AWSCredentials]()) { $0.append($1) }
        }
        #expect(Set(results.map(\.accessKeyID)) == ["ASIACONTAINER1"])
        #expect(results[0].sessionToken == "containertoken-1")
        #expect(results[0].expiration == clock.now().advanced(by: .seconds(3600)))
        #expect(endpoint.served.value == 1)
        clock.advance(by: .seconds(3000))
        #expect(try await provider.credentials().accessKeyID == "ASIACONTAINER1")
        clock.advance(by: .seconds(400))  // inside the 5-minute refresh window
        // Still valid: served at once while the refresh runs in the background.
        #expect(try await provider.credentials().accessKeyID == "ASIACONTAINER1")
        await provider.waitForRefresh()
        #expect(try await provider.credentials().accessKeyID == "ASIACONTAINER2")
        #expect(endpoint.served.value == 2)
        #expect(await provider.fetchCount == 2)
        #expect(!logs.text.contains("containersecret"))
        #expect(!logs.text.contains("containertoken"))
        #expect(!logs.text.contains("tok-1"))
    }

    @Test("the token file wins over the token variable and is re-read at each fetch")
    func tokenFile() async throws {
        let clock = ManualClock(start: WallTime(millisecondsSince1970: 1_800_000_000_000))
        let endpoint = try Endpoint(expectedToken: "from-file", clock: clock)
        let dir = try TemporaryDirectory()
        let file = try dir.write("token", "from-file\n")
        let http = HTTPClient()
        defer { http.shutdown() }
        let provider = ContainerCredentialProvider(
            environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "from-variable",
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": file],
            httpClient: http, clock: clock)
        #expect(try await provider.credentials().accessKeyID == "ASIACONTAINER1")

        let wrong = ContainerCredentialProvider(endpoint: endpoint.url, authorizationToken: "wrong", httpClient: http, clock: clock)
        do {
            _ = try await wrong.credentials()
            Issue.record("a wrong token was accepted")
        } catch {
            #expect(error.code == .credentialsFailed)
            #expect(error.message.contains("401"))
            #expect(!error.message.contains("wrong"))
        }
    }

    @Test("relative URI targets 169.254.170.2; unset variables mean not found; plain-http remote hosts are refused")
    func endpoints() async throws {
        let http = HTTPClient()
        defer { http.shutdown() }
        let relative = ContainerCredentialProvider(environment: ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/creds"], httpClient: http)
        #expect(relative.endpoint == "http://169.254.170.2/v2/creds")
        do {
            _ = try await ContainerCredentialProvider(environment: [:], httpClient: http).credentials()
            Issue.record("resolved without variables")
        } catch {
            #expect(error.code == .credentialsNotFound)
        }
        do {
            _ = try await ContainerCredentialProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://evil.example.com/c"],
                                                      httpClient: http).credentials()
            Issue.record("a plain-http remote endpoint was used")
        } catch {
            #expect(error.code == .credentialsFailed)
        }
        #expect(ContainerCredentialProvider.validate("https://creds.example.com/x") == nil)
        #expect(ContainerCredentialProvider.validate("http://127.0.0.1:8080/x") == nil)
        #expect(ContainerCredentialProvider.validate("http://169.254.170.23/v1/credentials") == nil)
    }

    @Test("the default chain: environment, then profile, then container (IMDS off)")
    func defaultChain() async throws {
        let clock = ManualClock(start: WallTime(millisecondsSince1970: 1_800_000_000_000))
        let endpoint = try Endpoint(expectedToken: nil, clock: clock)
        let http = HTTPClient()
        defer { http.shutdown() }
        let dir = try TemporaryDirectory()
        let credentialsFile = try dir.write("credentials", "[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = p\n")
        let base = ["HOME": dir.path, "AWS_SHARED_CREDENTIALS_FILE": credentialsFile, "AWS_EC2_METADATA_DISABLED": "true"]

        var env = base
        env["AWS_ACCESS_KEY_ID"] = "AKIDENV"
        env["AWS_SECRET_ACCESS_KEY"] = "e"
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = endpoint.url
        #expect(try await CredentialChain.default(environment: env, httpClient: http).credentials().accessKeyID == "AKIDENV")
        #expect(try await CredentialChain.default(explicit: AWSCredentials(accessKeyID: "AKIDEXPLICIT", secretAccessKey: "x"),
                                                  environment: env, httpClient: http).credentials().accessKeyID == "AKIDEXPLICIT")
        env["AWS_ACCESS_KEY_ID"] = nil
        #expect(try await CredentialChain.default(environment: env, httpClient: http).credentials().accessKeyID == "AKIDPROFILE")
        env["AWS_SHARED_CREDENTIALS_FILE"] = dir.path + "/none"
        #expect(try await CredentialChain.default(environment: env, httpClient: http).credentials().accessKeyID == "ASIACONTAINER1")
        #expect(try await CredentialChain.default(environment: base, httpClient: http).credentials().accessKeyID == "AKIDPROFILE")
    }
}
