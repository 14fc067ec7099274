import Crypto
import Foundation
import Testing
import TierCache
@testable import TierCacheS3

/// Walks every case folder of the AWS SigV4a test suite (../shared/sigv4a-suite beside the
/// repository, or `TIERCACHE_SIGV4A_SUITE`): the key derived from the secret must match
/// public-key.json, canonical requests and strings to sign must match, the suite's signatures must
/// verify with the derived key, and a fresh signature of ours must verify too.
enum SigV4aSuite {
    static let directory: String? = {
        if let override = ProcessInfo.processInfo.environment["TIERCACHE_SIGV4A_SUITE"], !override.isEmpty {
            return override
        }
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.deletingLastPathComponent().appendingPathComponent("shared/sigv4a-suite").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }()

    static func cases() -> [String] {
        guard let directory, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { FileManager.default.fileExists(atPath: directory + "/" + $0 + "/context.json") }.sorted()
    }

    static func read(_ folder: String, _ file: String) -> String? {
        guard let directory, let data = FileManager.default.contents(atPath: "\(directory)/\(folder)/\(file)") else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    struct PublicKey: Decodable {
        var X: String
        var Y: String
    }
}

@Suite("SigV4a test suite")
struct SigV4aSuiteTests {
    @Test("the suite is found and holds cases")
    func suiteFound() throws {
        let directory = try #require(SigV4aSuite.directory, "sigv4a-suite not found: set TIERCACHE_SIGV4A_SUITE")
        #expect(SigV4aSuite.cases().count > 0, "no case folders in \(directory)")
    }

    @Test("every case", arguments: SigV4aSuite.cases())
    func signCase(_ name: String) throws {
        let context = try JSONDecoder().decode(
            SigV4Suite.Context.self, from: Data(try #require(SigV4aSuite.read(name, "context.json")).utf8))
        let request = try SigV4Suite.RawRequest(try #require(SigV4aSuite.read(name, "request.txt")))
        let credentials = AWSCredentials(
            accessKeyID: context.credentials.access_key_id, secretAccessKey: context.credentials.secret_access_key,
            sessionToken: context.credentials.token)
        let date = try #require(AWSTimestamp.parseISO8601(context.timestamp))
        let key = try SigV4aSigner.signingKey(for: credentials)

        // The derived public key: raw representation is X || Y.
        if let json = SigV4aSuite.read(name, "public-key.json") {
            let expected = try JSONDecoder().decode(SigV4aSuite.PublicKey.self, from: Data(json.utf8))
            let raw = Array(key.publicKey.rawRepresentation)
            #expect(Hex.encode(raw[0..<32]) == expected.X.lowercased(), "\(name): public key X")
            #expect(Hex.encode(raw[32...]) == expected.Y.lowercased(), "\(name): public key Y")
        }

        let signer = SigV4aSigner(regionSet: context.region, service: context.service,
                                  rules: .generic(normalizesPath: context.normalize))
        let payload = SigV4Signer.Payload.bytes(request.body)
        let omit = context.omit_session_token ?? false
        var compared = 0

        // Cases with only context.json and request.txt (no expectations) still get a fresh
        // signature in both modes that must verify with the derived key.
        let header = try signer.sign(
            method: request.method, path: request.path, query: request.query, headers: request.headers,
            payload: payload, credentials: credentials, key: key, date: date,
            addContentSHA256Header: context.sign_body ?? false, omitSessionToken: omit)
        #expect(SigV4aSigner.isValid(signatureHex: header.signature, stringToSign: header.stringToSign,
                                     publicKey: key.publicKey), "\(name): our header signature verifies")
        let query = try signer.presign(
            method: request.method, path: request.path, query: request.query, headers: request.headers,
            payload: payload, credentials: credentials, key: key, date: date,
            expires: context.expiration_in_seconds ?? 3600, omitSessionToken: omit)
        #expect(SigV4aSigner.isValid(signatureHex: query.signature, stringToSign: query.stringToSign,
                                     publicKey: key.publicKey), "\(name): our query signature verifies")

        if let canonical = SigV4aSuite.read(name, "header-canonical-request.txt") {
            let signed = header
            #expect(signed.canonicalRequest == canonical, "\(name): header canonical request")
            let stringToSign = try #require(SigV4aSuite.read(name, "header-string-to-sign.txt"))
            #expect(signed.stringToSign == stringToSign, "\(name): header string to sign")
            if let given = SigV4aSuite.read(name, "header-signature.txt") {
                #expect(SigV4aSigner.isValid(signatureHex: given.trimmingCharacters(in: .whitespacesAndNewlines),
                                             stringToSign: stringToSign, publicKey: key.publicKey),
                        "\(name): the suite's header signature verifies")
            }
            let authorization = try #require(signed.headers.first { $0.name == "Authorization" }?.value)
            #expect(authorization.hasSuffix("Signature=" + signed.signature))
            compared += 1
        }
        if let canonical = SigV4aSuite.read(name, "query-canonical-request.txt") {
            let signed = query
            #expect(signed.canonicalRequest == canonical, "\(name): query canonical request")
            let stringToSign = try #require(SigV4aSuite.read(name, "query-string-to-sign.txt"))
            #expect(signed.stringToSign == stringToSign, "\(name): query string to sign")
            if let given = SigV4aSuite.read(name, "query-signature.txt") {
                #expect(SigV4aSigner.isValid(signatureHex: given.trimmingCharacters(in: .whitespacesAndNewlines),
                                             stringToSign: stringToSign, publicKey: key.publicKey),
                        "\(name): the suite's query signature verifies")
            }
            #expect(signed.query.hasSuffix("X-Amz-Signature=" + signed.signature))
            compared += 1
        }
        if compared == 0 {
            print("SigV4a \(name): no expected texts in the case folder; checked only that fresh signatures verify")
        }
    }

    @Test("a signature does not verify for another string to sign or another key")
    func negative() throws {
        let a = try SigV4aSigner.signingKey(for: AWSCredentials(accessKeyID: "AKIDA", secretAccessKey: "secret-a"))
        let b = try SigV4aSigner.signingKey(for: AWSCredentials(accessKeyID: "AKIDB", secretAccessKey: "secret-a"))
        #expect(a.publicKey.rawRepresentation != b.publicKey.rawRepresentation, "the access key id enters the KDF")
        let signature = Hex.encode(try a.privateKey.signature(for: Array("text".utf8)).derRepresentation)
        #expect(SigV4aSigner.isValid(signatureHex: signature, stringToSign: "text", publicKey: a.publicKey))
        #expect(!SigV4aSigner.isValid(signatureHex: signature, stringToSign: "texT", publicKey: a.publicKey))
        #expect(!SigV4aSigner.isValid(signatureHex: signature, stringToSign: "text", publicKey: b.publicKey))
        #expect(!SigV4aSigner.isValid(signatureHex: "zz", stringToSign: "text", publicKey: a.publicKey))
    }
}
