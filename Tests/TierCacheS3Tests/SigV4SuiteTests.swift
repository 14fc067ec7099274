import Foundation
import Testing
import TierCache
@testable import TierCacheS3

/// Walks every case folder of the AWS SigV4 test suite (../shared/sigv4-suite from the repository
/// root, or `TIERCACHE_SIGV4_SUITE`) and checks the signer against it: canonical request, string to
/// sign, signature and signed request, for header signing and for presigned URLs.
enum SigV4Suite {
    static let directory: String? = {
        if let override = ProcessInfo.processInfo.environment["TIERCACHE_SIGV4_SUITE"], !override.isEmpty {
            return override
        }
        // The repository root is three levels above this file; the suite sits in ../shared
        // beside it (a worktree nested deeper finds it in an ancestor's sibling).
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.deletingLastPathComponent().appendingPathComponent("shared/sigv4-suite").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }()

    static func cases() -> [String] {
        guard let directory, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { name in
            FileManager.default.fileExists(atPath: directory + "/" + name + "/context.json")
        }.sorted()
    }

    struct Context: Decodable {
        struct Credentials: Decodable {
            var access_key_id: String
            var secret_access_key: String
            var token: String?
        }
        var credentials: Credentials
        var expiration_in_seconds: Int?
        var normalize: Bool
        var region: String
        var service: String
        var sign_body: Bool?
        var timestamp: String
        var omit_session_token: Bool?
    }

    struct RawRequest {
        var method: String
        var target: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        var path: String { target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target }
        var query: String { target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) } ?? "" }

        init(_ text: String) throws {
            let bytes = Array(text.utf8)
            // Head and body split at the first empty line.
            var headEnd = bytes.count
            var bodyStart = bytes.count
            var i = 0
            while i + 1 < bytes.count {
                if bytes[i] == 10, bytes[i + 1] == 10 { headEnd = i; bodyStart = i + 2; break }
                i += 1
            }
            body = Array(bytes[bodyStart...])
            let head = String(decoding: bytes[..<headEnd], as: UTF8.self)
            var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let requestLine = lines.removeFirst()
            let firstSpace = try #require(requestLine.firstIndex(of: " "))
            let lastSpace = try #require(requestLine.lastIndex(of: " "))
            method = String(requestLine[..<firstSpace])
            target = String(requestLine[requestLine.index(after: firstSpace)..<lastSpace])
            headers = try lines.filter { !$0.isEmpty }.map { line in
                let colon = try #require(line.firstIndex(of: ":"))
                return (String(line[..<colon]), String(line[line.index(after: colon)...]))
            }
        }

        func rendered(target: String, extraHeaders: [(name: String, value: String)]) -> String {
            var text = "\(method) \(target) HTTP/1.1\n"
            for (name, value) in headers + extraHeaders { text += "\(name):\(value)\n" }
            return text + "\n" + String(decoding: body, as: UTF8.self)
        }
    }

    static func read(_ folder: String, _ file: String) -> String? {
        guard let directory, let data = FileManager.default.contents(atPath: "\(directory)/\(folder)/\(file)") else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}

@Suite("SigV4 test suite")
struct SigV4SuiteTests {
    @Test("the suite is found and holds cases")
    func suiteFound() throws {
        let directory = try #require(SigV4Suite.directory, "sigv4-suite not found: set TIERCACHE_SIGV4_SUITE")
        #expect(SigV4Suite.cases().count > 0, "no case folders in \(directory)")
    }

    @Test("every case", arguments: SigV4Suite.cases())
    func signCase(_ name: String) throws {
        let context = try JSONDecoder().decode(
            SigV4Suite.Context.self, from: Data(try #require(SigV4Suite.read(name, "context.json")).utf8))
        let request = try SigV4Suite.RawRequest(try #require(SigV4Suite.read(name, "request.txt")))
        let credentials = AWSCredentials(
            accessKeyID: context.credentials.access_key_id, secretAccessKey: context.credentials.secret_access_key,
            sessionToken: context.credentials.token)
        let date = try #require(AWSTimestamp.parseISO8601(context.timestamp))
        let signer = SigV4Signer(region: context.region, service: context.service,
                                 rules: .generic(normalizesPath: context.normalize))
        let payload = SigV4Signer.Payload.bytes(request.body)
        let omit = context.omit_session_token ?? false
        var compared = 0

        if let canonical = SigV4Suite.read(name, "header-canonical-request.txt") {
            let signed = signer.sign(
                method: request.method, path: request.path, query: request.query, headers: request.headers,
                payload: payload, credentials: credentials, date: date,
                addContentSHA256Header: context.sign_body ?? false, omitSessionToken: omit)
            #expect(signed.canonicalRequest == canonical, "\(name): header canonical request")
            if let expected = SigV4Suite.read(name, "header-string-to-sign.txt") {
                #expect(signed.stringToSign == expected, "\(name): header string to sign")
            }
            if let expected = SigV4Suite.read(name, "header-signature.txt") {
                #expect(signed.signature == expected.trimmingCharacters(in: .whitespacesAndNewlines), "\(name): header signature")
            }
            if let expected = SigV4Suite.read(name, "header-signed-request.txt") {
                #expect(request.rendered(target: request.target, extraHeaders: signed.headers) == expected,
                        "\(name): header signed request")
            }
            compared += 1
        }
        if let canonical = SigV4Suite.read(name, "query-canonical-request.txt") {
            let signed = signer.presign(
                method: request.method, path: request.path, query: request.query, headers: request.headers,
                payload: payload, credentials: credentials, date: date,
                expires: context.expiration_in_seconds ?? 3600, omitSessionToken: omit)
            #expect(signed.canonicalRequest == canonical, "\(name): query canonical request")
            if let expected = SigV4Suite.read(name, "query-string-to-sign.txt") {
                #expect(signed.stringToSign == expected, "\(name): query string to sign")
            }
            if let expected = SigV4Suite.read(name, "query-signature.txt") {
                #expect(signed.signature == expected.trimmingCharacters(in: .whitespacesAndNewlines), "\(name): query signature")
            }
            if let expected = SigV4Suite.read(name, "query-signed-request.txt") {
                #expect(request.rendered(target: request.path + "?" + signed.query, extraHeaders: signed.headers) == expected,
                        "\(name): query signed request")
            }
            compared += 1
        }
        #expect(compared > 0, "\(name) has neither header- nor query- expectations")
    }
}
