import Foundation
import Logging
import MetricsTestKit
import Testing
import TierCache
import TierCacheHTTP
import TierCacheTesting
@testable import TierCacheS3

@Suite("Credential sources: container URIs, deadlines, IMDSv2, web identity, the default chain's order")
struct CredentialSourceTests {
    static let start = WallTime(millisecondsSince1970: 1_800_000_000_000)

    @Test("AWS_CONTAINER_CREDENTIALS_FULL_URI: https anywhere; plain http only to loopback, ECS and EKS IP literals")
    func containerFullURIHosts() async throws {
        let accepted = [
            "https://creds.example.com/x", "https://127.0.0.1.example.com/x", "http://127.0.0.1:8080/v1/creds",
            "http://127.1.2.3/x", "http://[::1]:1234/x", "http://[0:0:0:0:0:0:0:1]/x", "http://169.254.170.2/v2/credentials/a",
            "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/v1/credentials", "http://[FD00:EC2:0:0:0:0:0:23]:80/x",
        ]
        let refused = [
            "http://127.0.0.1.example.com/x", "http://localhost/x", "http://localhost.:8080/x", "http://127.1/x",
            "http://0127.0.0.1/x", "http://2130706433/x", "http://0x7f.0.0.1/x", "http://127.0.0.1./x", "http://169.254.170.3/x",
            "http://169.254.170.2.nip.io/x", "http://[::2]/x", "http://[fe80::1%25eth0]/x", "http://[::ffff:127.0.0.1]/x",
            "http://evil.example.com/x", "http://127.0.0.1@evil.example.com/x", "http://127.0.0.1:80@evil.example.com/x",
            "http://evil.example.com#@127.0.0.1/x", "ftp://127.0.0.1/x", "127.0.0.1/x",
        ]
        for url in accepted {
            #expect(ContainerCredentialProvider.validate(url) == nil, "\(url) should be accepted")
        }
        for url in refused {
            #expect(ContainerCredentialProvider.validate(url) != nil, "\(url) should be refused")
        }
        // A refused URI fails the provider without a request.
        let server = try LoopbackHTTPServer { _ in .init(status: 500) }
        defer { server.stop() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let disguised = "http://127.0.0.1.example.com:\(server.port)/creds"
        do {
            _ = try await ContainerCredentialProvider(environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": disguised],
                                                      httpClient: http).credentials()
            Issue.record("a host name that starts with 127. was used")
        } catch {
            #expect(error.code == .credentialsFailed)
            #expect(error.message.contains("127.0.0.1.example.com"))
        }
        #expect(server.requestCount == 0)
    }

    @Test("a hung credentials endpoint never holds a read past its deadline: a counted timeout miss, one request shared")
    func hungEndpointUnderDeadline() async throws {
        let credentialsServer = try LoopbackHTTPServer { _ in .init(status: 500) }
        credentialsServer.setFaultRule { _, _ in .neverAnswer }
        defer { credentialsServer.stop() }
        let s3Server = try LoopbackHTTPServer { _ in .init(status: 404) }
        defer { s3Server.stop() }
        let http = HTTPClient()
        defer { http.shutdown() }
        // The endpoint's own timeout is a minute: only the operations' deadlines can cut it short.
        let provider = ContainerCredentialProvider(endpoint: credentialsServer.baseURL + "/creds", httpClient: http,
                                                   timeout: .seconds(60))
        let client = try S3Client(configuration: .init(endpoint: s3Server.baseURL, credentials: provider), httpClient: http)
        let tier = S3Tier(client: client, configuration: .init(bucket: "bucket", readTimeout: .milliseconds(300)))
        let metrics = TestMetrics()
        // No chain deadline either: the tier's own deadline is the only bound.
        let chain = TierChain([TierChain.Tier(tier, readDeadline: nil, writeMode: .writeBehind)],
                              configuration: .init(metricsLabel: "hung", metricsFactory: metrics))
        let cache = Cache<String>(configuration: .init(name: "hung", memory: nil, metricsFactory: metrics), chain: chain)
        let key = try CacheKey(namespace: "ns", name: "value")

        #expect(await cache.get(key) == nil)
        #expect(await cache.get(key) == nil)
        let timeouts = try metrics.expectCounter(TierCacheMetrics.tierRequests,
                                                 [("cache", "hung"), ("tier", "s3"), ("op", "get"), ("result", "timeout")])
        #expect(timeouts.totalValue == 2)
        do {
            _ = try await client.getObject(bucket: "bucket", key: "k", deadline: .now.advanced(by: .milliseconds(200)))
            Issue.record("a read succeeded without credentials")
        } catch {
            #expect(error.code == .timeout)
            #expect(error.message.contains("credentials"))
        }
        // Every read joined the one refresh in flight; none reached S3 unsigned.
        #expect(credentialsServer.requestCount == 1)
        #expect(await provider.fetchCount == 1)
        #expect(s3Server.requestCount == 0)
    }

    // MARK: IMDSv2

    @Test("IMDSv2: token PUT with its TTL header, role name, role credentials; the token is reused, and renewed after a 401")
    func imdsV2() async throws {
        let clock = ManualCacheClock(start: Self.start)
        let emulator = try InstanceMetadataEmulator(configuration: .init(credentialLifetime: .seconds(3600)), clock: clock)
        defer { emulator.stop() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let logs = CapturedLogs()
        let provider = InstanceMetadataCredentialProvider(
            environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.endpoint + "/"], httpClient: http, clock: clock,
            logger: logs.logger())
        let first = try await provider.credentials()
        #expect(first.accessKeyID == "ASIAIMDS1")
        #expect(first.sessionToken == "imds-token-1")
        #expect(first.expiration == Self.start.advanced(by: .seconds(3600)))
        let requests = emulator.requests
        #expect(requests.map { "\($0.method) \($0.path)" } == [
            "PUT /latest/api/token", "GET /latest/meta-data/iam/security-credentials/",
            "GET /latest/meta-data/iam/security-credentials/tiercache-test-role",
        ])
        #expect(requests[0].header("X-aws-ec2-metadata-token-ttl-seconds") == "21600")
        #expect(requests[0].header("X-aws-ec2-metadata-token") == nil)
        let token = try #require(requests[1].header("X-aws-ec2-metadata-token"))
        #expect(requests[2].header("X-aws-ec2-metadata-token") == token)
        #expect(emulator.unauthorizedAnswers == 0)

        // Cached until the refresh window; then refreshed in the background with the same token
        // (it lives six hours).
        clock.advance(by: .seconds(1800))
        #expect(try await provider.credentials().accessKeyID == "ASIAIMDS1")
        #expect(emulator.credentialsServed == 1)
        clock.advance(by: .seconds(1800 - 240))
        #expect(try await provider.credentials().accessKeyID == "ASIAIMDS1")
        await provider.waitForRefresh()
        #expect(try await provider.credentials().accessKeyID == "ASIAIMDS2")
        #expect(emulator.tokensIssued == 1)

        // The instance restarts: the kept token gets 401, a new one is taken, the refresh succeeds.
        emulator.expireTokens()
        clock.advance(by: .seconds(3600 - 120))
        #expect(try await provider.credentials().accessKeyID == "ASIAIMDS2")
        await provider.waitForRefresh()
        #expect(try await provider.credentials().accessKeyID == "ASIAIMDS3")
        #expect(emulator.tokensIssued == 2)
        #expect(emulator.unauthorizedAnswers == 1)
        // No request ever went out without a token (no IMDSv1).
        #expect(emulator.requests.allSatisfy { $0.method == "PUT" || $0.header("X-aws-ec2-metadata-token") != nil })
        #expect(!logs.text.contains("imds-secret"))
        #expect(!logs.text.contains("imds-token"))
    }

    @Test("IMDSv2 refusals: 401 without a token, 400 without a TTL; disabled, role-less or absent IMDS means no credentials, never IMDSv1")
    func imdsRefusals() async throws {
        let clock = ManualCacheClock(start: Self.start)
        let emulator = try InstanceMetadataEmulator(clock: clock)
        defer { emulator.stop() }
        let http = HTTPClient()
        defer { http.shutdown() }
        // The emulator follows the protocol.
        let credentialsPath = emulator.endpoint + "/latest/meta-data/iam/security-credentials/"
        #expect(try await http.execute(HTTPRequest(url: credentialsPath)).status == 401)
        #expect(try await http.execute(HTTPRequest(url: credentialsPath, headers: ["X-aws-ec2-metadata-token": "forged"])).status == 401)
        #expect(try await http.execute(HTTPRequest(method: .put, url: emulator.endpoint + "/latest/api/token")).status == 400)
        #expect(try await http.execute(HTTPRequest(method: .put, url: emulator.endpoint + "/latest/api/token",
                                                   headers: ["X-aws-ec2-metadata-token-ttl-seconds": "21601"])).status == 400)
        #expect(try await http.execute(HTTPRequest(method: .put, url: emulator.endpoint + "/latest/api/token",
                                                   headers: ["X-aws-ec2-metadata-token-ttl-seconds": "60",
                                                             "X-Forwarded-For": "10.0.0.1"])).status == 403)

        func expectNotFound(_ provider: InstanceMetadataCredentialProvider, _ what: String,
                            sourceLocation: SourceLocation = #_sourceLocation) async {
            do {
                _ = try await provider.credentials()
                Issue.record("\(what): credentials resolved", sourceLocation: sourceLocation)
            } catch {
                #expect(error.code == .credentialsNotFound, "\(what): \(error)", sourceLocation: sourceLocation)
            }
        }
        // IMDS turned off on the instance: the token PUT gets 403; no tokenless GET follows.
        let disabled = try InstanceMetadataEmulator(configuration: .init(isDisabled: true), clock: clock)
        defer { disabled.stop() }
        await expectNotFound(InstanceMetadataCredentialProvider(endpoint: disabled.endpoint, httpClient: http, clock: clock), "disabled")
        #expect(disabled.requests.map(\.method) == ["PUT"])
        // An instance without a role.
        let roleless = try InstanceMetadataEmulator(configuration: .init(roleName: nil), clock: clock)
        defer { roleless.stop() }
        await expectNotFound(InstanceMetadataCredentialProvider(endpoint: roleless.endpoint, httpClient: http, clock: clock), "no role")
        // Nothing listening.
        let gone = try LoopbackHTTPServer { _ in .init(status: 200) }
        let port = gone.port
        gone.stop()
        await expectNotFound(InstanceMetadataCredentialProvider(endpoint: "http://127.0.0.1:\(port)", httpClient: http, clock: clock),
                             "nothing listening")
        // Turned off in the environment: not even asked.
        let before = emulator.requests.count
        await expectNotFound(InstanceMetadataCredentialProvider(
            environment: ["AWS_EC2_METADATA_DISABLED": "true", "AWS_EC2_METADATA_SERVICE_ENDPOINT": emulator.endpoint],
            httpClient: http, clock: clock), "AWS_EC2_METADATA_DISABLED")
        #expect(emulator.requests.count == before)
        #expect(InstanceMetadataCredentialProvider(environment: [:], httpClient: http).endpoint == "http://169.254.169.254")
        #expect(InstanceMetadataCredentialProvider(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"], httpClient: http)
            .endpoint == "http://[fd00:ec2::254]")
    }

    // MARK: Web identity and the default chain

    /// A loopback STS that answers AssumeRoleWithWebIdentity for `token`, or InvalidIdentityToken.
    static func stsServer(token: String, clock: ManualCacheClock) throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer { request in
            let form = Dictionary(String(decoding: request.body, as: UTF8.self).split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, uniquingKeysWith: { $1 })
            guard request.method == "POST", request.path == "/", request.header("Authorization") == nil,
                  form["Action"] == "AssumeRoleWithWebIdentity", form["Version"] == "2011-06-15",
                  form["RoleArn"] == "arn:aws:iam::123456789012:role/web", form["RoleSessionName"]?.isEmpty == false
            else { return .init(status: 400, body: Array("<ErrorResponse><Error><Code>MalformedInput</Code></Error></ErrorResponse>".utf8)) }
            guard form["WebIdentityToken"] == token else {
                return .init(status: 400, headers: [("Content-Type", "text/xml")], body: Array("""
                    <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>\
                    <Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key from your identity provider</Message>\
                    </Error><RequestId>r-1</RequestId></ErrorResponse>
                    """.utf8))
            }
            let expiration = Date(timeIntervalSince1970: Double(clock.now().advanced(by: .seconds(3600)).millisecondsSince1970 / 1000))
                .formatted(.iso8601)
            return .init(status: 200, headers: [("Content-Type", "text/xml")], body: Array("""
                <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
                  <AssumeRoleWithWebIdentityResult>
                    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
                    <Credentials>
                      <SessionToken>web-session-token</SessionToken>
                      <SecretAccessKey>web-secret</SecretAccessKey>
                      <Expiration>\(expiration)</Expiration>
                      <AccessKeyId>ASIAWEBIDENTITY1</AccessKeyId>
                    </Credentials>
                  </AssumeRoleWithWebIdentityResult>
                  <ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata>
                </AssumeRoleWithWebIdentityResponse>
                """.utf8))
        }
    }

    @Test("web identity: the token file is read at each fetch and posted unsigned to STS; STS errors are typed, the token never shown")
    func webIdentity() async throws {
        let clock = ManualCacheClock(start: Self.start)
        let sts = try Self.stsServer(token: "eyJhbGciOi.good.token", clock: clock)
        defer { sts.stop() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let dir = try TemporaryDirectory()
        let tokenFile = try dir.write("token", "eyJhbGciOi.good.token\n")
        let logs = CapturedLogs()
        let env = ["AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/web",
                   "AWS_ENDPOINT_URL_STS": sts.baseURL, "AWS_REGION": "eu-west-1"]
        let provider = WebIdentityCredentialProvider(environment: env, httpClient: http, clock: clock, logger: logs.logger())
        #expect(provider.stsEndpoint == sts.baseURL)
        let credentials = try await provider.credentials()
        #expect(credentials.accessKeyID == "ASIAWEBIDENTITY1")
        #expect(credentials.sessionToken == "web-session-token")
        #expect(credentials.expiration == Self.start.advanced(by: .seconds(3600)))
        #expect(sts.recordedRequests.last?.header("Content-Type")?.hasPrefix("application/x-www-form-urlencoded") == true)

        // The file rotates to a token STS refuses: a typed failure naming STS's code, not the token.
        _ = try dir.write("token", "eyJhbGciOi.revoked.token")
        let rotated = WebIdentityCredentialProvider(environment: env, httpClient: http, clock: clock, logger: logs.logger())
        do {
            _ = try await rotated.credentials()
            Issue.record("a refused token resolved")
        } catch {
            #expect(error.code == .credentialsFailed)
            #expect(error.message.contains("InvalidIdentityToken"))
            #expect(!error.message.contains("revoked"))
        }
        #expect(!logs.text.contains("eyJhbGciOi"))
        #expect(!logs.text.contains("web-secret"))
        // Half-configured or unset: not found, so a chain moves on.
        for partial in [["AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile], ["AWS_ROLE_ARN": "arn:aws:iam::1:role/r"], [:]] {
            do {
                _ = try await WebIdentityCredentialProvider(environment: partial, httpClient: http).credentials()
                Issue.record("resolved from \(partial)")
            } catch {
                #expect(error.code == .credentialsNotFound)
            }
        }
        #expect(WebIdentityCredentialProvider(environment: ["AWS_WEB_IDENTITY_TOKEN_FILE": "t", "AWS_ROLE_ARN": "r",
                                                            "AWS_REGION": "eu-west-1"], httpClient: http)
            .stsEndpoint == "https://sts.eu-west-1.amazonaws.com")
        #expect(WebIdentityCredentialProvider(environment: ["AWS_WEB_IDENTITY_TOKEN_FILE": "t", "AWS_ROLE_ARN": "r"], httpClient: http)
            .stsEndpoint == "https://sts.amazonaws.com")
    }

    @Test("the default chain in the AWS SDKs' order: environment, web identity, profile, container, IMDS")
    func defaultChainOrder() async throws {
        let clock = ManualCacheClock(start: Self.start)
        let http = HTTPClient()
        defer { http.shutdown() }
        let dir = try TemporaryDirectory()
        let sts = try Self.stsServer(token: "tok", clock: clock)
        defer { sts.stop() }
        let container = try LoopbackHTTPServer { _ in
            .init(status: 200, body: Array(#"{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"c","Token":"t","Expiration":"2099-01-01T00:00:00Z"}"#.utf8))
        }
        defer { container.stop() }
        let imds = try InstanceMetadataEmulator(clock: clock)
        defer { imds.stop() }
        var env = [
            "HOME": dir.path,
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "e",
            "AWS_WEB_IDENTITY_TOKEN_FILE": try dir.write("token", "tok"), "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/web",
            "AWS_ENDPOINT_URL_STS": sts.baseURL,
            "AWS_SHARED_CREDENTIALS_FILE": try dir.write("credentials", "[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = p\n"),
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": container.baseURL + "/creds",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint,
        ]
        func resolved() async throws -> String {
            try await CredentialChain.default(environment: env, httpClient: http).credentials().accessKeyID
        }
        #expect(try await resolved() == "AKIDENV")
        env["AWS_ACCESS_KEY_ID"] = nil
        #expect(try await resolved() == "ASIAWEBIDENTITY1")
        env["AWS_ROLE_ARN"] = nil
        #expect(try await resolved() == "AKIDPROFILE")
        env["AWS_SHARED_CREDENTIALS_FILE"] = dir.path + "/none"
        #expect(try await resolved() == "ASIACONTAINER")
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = nil
        #expect(try await resolved() == "ASIAIMDS1")
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        do {
            _ = try await resolved()
            Issue.record("resolved with every source gone")
        } catch let error as TierCacheError {
            #expect(error.code == .credentialsNotFound)
            for reason in ["AWS_ACCESS_KEY_ID", "AWS_ROLE_ARN", "aws_access_key_id", "AWS_CONTAINER_CREDENTIALS", "AWS_EC2_METADATA_DISABLED"] {
                #expect(error.message.contains(reason), "the error names \(reason)")
            }
        }
    }
}
