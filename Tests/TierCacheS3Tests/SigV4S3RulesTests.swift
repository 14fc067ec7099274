import Testing
import TierCache
@testable import TierCacheS3

/// S3's signing rules differ from the generic suite's: the path is signed as sent, never
/// normalized, never encoded twice. The published S3 examples (AWS's "Signature Calculations for
/// the Authorization Header" and "Query String Authentication" pages) pin the results.
@Suite("SigV4 S3 rules")
struct SigV4S3RulesTests {
    let credentials = AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                     secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    let date = AWSTimestamp(year: 2013, month: 5, day: 24, hour: 0, minute: 0, second: 0).wallTime

    @Test("S3 GET object example from the AWS documentation")
    func getObjectExample() {
        let signer = SigV4Signer(region: "us-east-1")
        let signed = signer.sign(
            method: "GET", path: "/test.txt", query: "",
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9")],
            payload: .empty, credentials: credentials, date: date)
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(signed.headers.map(\.name) == ["X-Amz-Date", "x-amz-content-sha256", "Authorization"])
    }

    @Test("S3 presigned URL example from the AWS documentation")
    func presignExample() {
        let signer = SigV4Signer(region: "us-east-1")
        let signed = signer.presign(
            method: "GET", path: "/test.txt", query: "", headers: [("Host", "examplebucket.s3.amazonaws.com")],
            payload: .unsigned, credentials: credentials, date: date, expires: 86400)
        #expect(signed.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        #expect(signed.query.hasSuffix("&X-Amz-Signature=" + signed.signature))
        #expect(signed.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
    }

    @Test("S3 paths are signed as sent: no normalization, no second encoding")
    func s3PathRules() {
        let s3 = SigV4Signer(region: "us-east-1", service: "s3")
        let generic = SigV4Signer(region: "us-east-1", service: "service")
        #expect(s3.rules == .s3)
        #expect(generic.rules == .generic)
        let path = "/bucket/a%20b//./x/../c"
        #expect(s3.canonicalPath(path) == path)
        #expect(generic.canonicalPath(path) == "/bucket/a%2520b/c")
        #expect(SigV4Signer(region: "r", service: "s3", rules: .generic(normalizesPath: false)).canonicalPath(path)
            == "/bucket/a%2520b//./x/../c")
    }

    @Test("a session token is signed and sent; UNSIGNED-PAYLOAD goes in x-amz-content-sha256")
    func sessionTokenAndUnsignedPayload() throws {
        var temporary = credentials
        temporary.sessionToken = "token/with+specials="
        let signed = SigV4Signer(region: "eu-west-1").sign(
            method: "PUT", path: "/k", query: "", headers: [("Host", "b.s3.eu-west-1.amazonaws.com")],
            payload: .unsigned, credentials: temporary, date: date)
        let headers = Dictionary(signed.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(headers["x-amz-security-token"] == "token/with+specials=")
        #expect(headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD")
        let authorization = try #require(headers["authorization"])
        #expect(authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"))
        #expect(authorization.contains("/20130524/eu-west-1/s3/aws4_request"))
        #expect(!authorization.contains(credentials.secretAccessKey))
    }

    @Test("credentials never print their secret")
    func credentialsRedacted() {
        let c = AWSCredentials(accessKeyID: "AKIDVISIBLE", secretAccessKey: "SECRETSECRET", sessionToken: "TOKENTOKEN")
        for text in [c.description, c.debugDescription, "\(c)", String(reflecting: c), { var s = ""; dump(c, to: &s); return s }()] {
            #expect(text.contains("AKIDVISIBLE"))
            #expect(!text.contains("SECRETSECRET"))
            #expect(!text.contains("TOKENTOKEN"))
        }
    }

    @Test("timestamps round-trip through the civil calendar")
    func timestamps() throws {
        for text in ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59Z", "2015-08-30T12:36:00Z", "2099-12-31T00:00:01Z"] {
            let time = try #require(AWSTimestamp.parseISO8601(text))
            #expect(AWSTimestamp(time).iso8601 == text)
        }
        #expect(AWSTimestamp.parseISO8601("2015-08-30T12:36:00.500+02:00")?.millisecondsSince1970 == 1_440_930_960_500)
        #expect(AWSTimestamp.parseISO8601("2015-08-30") == nil)
        #expect(AWSTimestamp.parseISO8601("2015-13-30T12:36:00Z") == nil)
    }
}
