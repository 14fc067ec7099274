import Crypto
public import TierCache

/// AWS Signature Version 4: signs a request in its `Authorization` header or presigns it as a URL.
///
/// The signer is pure: it takes the request as it will go on the wire (method, encoded path,
/// encoded query, headers, payload) plus credentials and a time, and returns what to add. It
/// never reads the clock or the environment, so it is tested against AWS's published vectors.
///
/// Two rule sets matter (``Rules``): AWS services in general normalize the path (`/a/./b/..`
/// becomes `/a/`) and URI-encode the already-encoded path a second time; S3 does neither and
/// signs the path exactly as sent.
public struct SigV4Signer: Sendable {
    /// How the canonical path is derived from the wire path.
    public struct Rules: Sendable, Hashable {
        /// Remove `.` and `..` segments and empty segments before signing.
        public var normalizesPath: Bool
        /// URI-encode the (already encoded) wire path again.
        public var encodesPathTwice: Bool

        /// Creates rules.
        public init(normalizesPath: Bool, encodesPathTwice: Bool) {
            self.normalizesPath = normalizesPath
            self.encodesPathTwice = encodesPathTwice
        }

        /// S3's rules: the path is signed exactly as sent (no normalization, no double encoding).
        public static let s3 = Rules(normalizesPath: false, encodesPathTwice: false)
        /// The rules of most AWS services: normalized and encoded twice.
        public static let generic = Rules(normalizesPath: true, encodesPathTwice: true)
        /// The generic rules with path normalization switched on or off.
        public static func generic(normalizesPath: Bool) -> Rules {
            Rules(normalizesPath: normalizesPath, encodesPathTwice: true)
        }
    }

    /// What the canonical request's last line (the payload hash) is.
    public struct Payload: Sendable, Hashable {
        /// The hex SHA-256 of the body, or a literal such as `UNSIGNED-PAYLOAD`.
        public let hash: String

        /// The SHA-256 of these bytes.
        public static func bytes(_ body: [UInt8]) -> Payload { Payload(hash: Hex.encode(SHA256.hash(data: body))) }
        /// A hex SHA-256 computed elsewhere.
        public static func precomputed(_ hexSHA256: String) -> Payload { Payload(hash: hexSHA256) }
        /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature (S3 only).
        public static let unsigned = Payload(hash: "UNSIGNED-PAYLOAD")
        /// The SHA-256 of an empty body.
        public static let empty = Payload(hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// The outcome of signing, with the intermediate texts for diagnosis.
    ///
    /// `canonicalRequest` and `stringToSign` hold no secret (a session token, if signed, is in the
    /// canonical request: do not log it).
    public struct Signature: Sendable {
        /// The canonical request that was hashed.
        public let canonicalRequest: String
        /// The string that was signed.
        public let stringToSign: String
        /// The hex signature.
        public let signature: String
        /// Headers to add to the request, in this order (header signing), or the ones the request
        /// still needs (presigning: a session token added after signing, otherwise none).
        public let headers: [(name: String, value: String)]
        /// For presigning: the query string to send (the original query followed by the
        /// `X-Amz-*` parameters and the signature). For header signing: the original query.
        public let query: String
    }

    /// The region in the credential scope (`us-east-1`, …).
    public var region: String
    /// The service in the credential scope (`s3`, …).
    public var service: String
    /// Path rules.
    public var rules: Rules

    /// Creates a signer.
    /// - Parameters:
    ///   - region: the signing region.
    ///   - service: the signing name of the service (`s3`).
    ///   - rules: ``Rules/s3`` for S3 (the default when `service` is `s3`), else ``Rules/generic``.
    public init(region: String, service: String = "s3", rules: Rules? = nil) {
        self.region = region
        self.service = service
        self.rules = rules ?? (service == "s3" ? .s3 : .generic)
    }

    /// Signs a request in the `Authorization` header.
    ///
    /// - Parameters:
    ///   - method: the HTTP method.
    ///   - path: the path as sent, percent-encoded (`/bucket/a%20b`).
    ///   - query: the query as sent, without `?` (may be empty).
    ///   - headers: every header that will be sent, `Host` included; `Authorization`,
    ///     `User-Agent`, `Expect` and hop-by-hop headers are not signed.
    ///   - payload: the payload hash.
    ///   - addContentSHA256Header: add and sign `x-amz-content-sha256` (S3 requires it).
    ///   - omitSessionToken: add the session token after signing rather than signing it (some
    ///     services want that); normally false.
    /// - Returns: the headers to add (`X-Amz-Security-Token`, `X-Amz-Date`,
    ///   `x-amz-content-sha256`, `Authorization`) and the intermediate texts.
    public func sign(
        method: String, path: String, query: String, headers: [(name: String, value: String)],
        payload: Payload, credentials: AWSCredentials, date: WallTime,
        addContentSHA256Header: Bool = true, omitSessionToken: Bool = false
    ) -> Signature {
        let time = AWSTimestamp(date)
        let amzDate = time.amzDate
        var (extra, signed) = Self.signingHeaders(headers, credentials: credentials, amzDate: amzDate, payload: payload,
                                                  addContentSHA256Header: addContentSHA256Header, omitSessionToken: omitSessionToken)
        let (canonicalRequest, signedHeaderNames) = Self.canonicalRequest(method: method, canonicalPath: canonicalPath(path),
                                                                          query: query, signed: signed, payloadHash: payload.hash)
        let scope = time.date + "/" + region + "/" + service + "/aws4_request"
        let stringToSign = Self.stringToSign(canonicalRequest, amzDate: amzDate, scope: scope)
        let signature = Self.signature(stringToSign, secret: credentials.secretAccessKey, date: time.date,
                                       region: region, service: service)
        extra.append(("Authorization",
                      "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaderNames), Signature=\(signature)"))
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                         headers: extra, query: query)
    }

    /// The headers a header signature adds (`extra`) and every header it signs (`signed`): the
    /// session token, `X-Amz-Date`, `additional` (SigV4a's region set) and the payload hash unless
    /// the caller sent one. Shared by SigV4 and SigV4a.
    static func signingHeaders(
        _ headers: [(name: String, value: String)], credentials: AWSCredentials, amzDate: String,
        additional: [(name: String, value: String)] = [], payload: Payload,
        addContentSHA256Header: Bool, omitSessionToken: Bool
    ) -> (extra: [(name: String, value: String)], signed: [(name: String, value: String)]) {
        var extra: [(name: String, value: String)] = []
        var signed = headers
        if let token = credentials.sessionToken {
            extra.append(("X-Amz-Security-Token", token))
            if !omitSessionToken { signed.append(("X-Amz-Security-Token", token)) }
        }
        extra.append(("X-Amz-Date", amzDate))
        signed.append(("X-Amz-Date", amzDate))
        extra += additional
        signed += additional
        if addContentSHA256Header, !headers.contains(where: { lowercased($0.name) == "x-amz-content-sha256" }) {
            extra.append(("x-amz-content-sha256", payload.hash))
            signed.append(("x-amz-content-sha256", payload.hash))
        }
        return (extra, signed)
    }

    /// The canonical request of a header signature and its signed-header list.
    static func canonicalRequest(
        method: String, canonicalPath: String, query: String, signed: [(name: String, value: String)], payloadHash: String
    ) -> (request: String, signedHeaderNames: String) {
        let (canonicalHeaders, signedHeaderNames) = canonicalHeaders(signed)
        let request = method + "\n" + canonicalPath + "\n" + canonicalQuery(query, adding: []) + "\n"
            + canonicalHeaders + "\n" + signedHeaderNames + "\n" + payloadHash
        return (request, signedHeaderNames)
    }

    /// Presigns a request: the signature goes in the query string, so the URL alone authorizes it
    /// until it expires.
    ///
    /// - Parameters:
    ///   - expires: how long the URL stays valid, in seconds (S3 allows 1…604800).
    ///   - payload: usually ``Payload/unsigned`` for S3.
    ///   - omitSessionToken: put the session token in the URL after signing rather than signing it.
    /// - Returns: the query string to send in ``Signature/query``.
    public func presign(
        method: String, path: String, query: String, headers: [(name: String, value: String)],
        payload: Payload, credentials: AWSCredentials, date: WallTime, expires: Int,
        omitSessionToken: Bool = false
    ) -> Signature {
        let time = AWSTimestamp(date)
        let amzDate = time.amzDate
        let scope = time.date + "/" + region + "/" + service + "/aws4_request"
        let (canonicalHeaders, signedHeaderNames) = Self.canonicalHeaders(headers)
        func enc(_ s: String) -> String { PercentEncoding.encode(s, keepSlash: false) }
        var added: [(String, String)] = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", enc(credentials.accessKeyID + "/" + scope)),
            ("X-Amz-Date", amzDate),
            ("X-Amz-SignedHeaders", enc(signedHeaderNames)),
            ("X-Amz-Expires", String(expires)),
        ]
        var tokenParameter: (String, String)?
        if let token = credentials.sessionToken {
            tokenParameter = ("X-Amz-Security-Token", enc(token))
            if !omitSessionToken { added.append(tokenParameter!) }
        }
        let canonicalRequest = method + "\n" + canonicalPath(path) + "\n" + Self.canonicalQuery(query, adding: added) + "\n"
            + canonicalHeaders + "\n" + signedHeaderNames + "\n" + payload.hash
        let stringToSign = Self.stringToSign(canonicalRequest, amzDate: amzDate, scope: scope)
        let signature = Self.signature(stringToSign, secret: credentials.secretAccessKey, date: time.date,
                                       region: region, service: service)
        if omitSessionToken, let tokenParameter { added.append(tokenParameter) }
        added.append(("X-Amz-Signature", signature))
        var out = query
        for (name, value) in added {
            if !out.isEmpty { out += "&" }
            out += name + "=" + value
        }
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                         headers: [], query: out)
    }

    // MARK: - Canonical parts

    func canonicalPath(_ wirePath: String) -> String {
        var path = wirePath.isEmpty ? "/" : wirePath
        if rules.normalizesPath { path = Self.normalize(path) }
        if rules.encodesPathTwice { path = PercentEncoding.encode(path, keepSlash: true) }
        return path
    }

    /// Removes `.`, `..` and empty segments; keeps a trailing slash.
    static func normalize(_ path: String) -> String {
        var segments: [Substring] = []
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        for part in parts {
            if part == "." { continue }
            if part == ".." { _ = segments.popLast(); continue }
            segments.append(part)
        }
        var out = "/" + segments.joined(separator: "/")
        let trailing = path.hasSuffix("/") || path.hasSuffix("/.") || path.hasSuffix("/..")
        if trailing, !segments.isEmpty { out += "/" }
        return out
    }

    /// Decodes each name and value of the wire query, re-encodes them with AWS's rules, adds
    /// `adding` (already encoded) and sorts by name, then value.
    static func canonicalQuery(_ query: String, adding: [(String, String)]) -> String {
        var pairs: [(String, String)] = []
        for item in query.split(separator: "&", omittingEmptySubsequences: true) {
            let name: Substring, value: Substring
            if let eq = item.firstIndex(of: "=") {
                name = item[..<eq]
                value = item[item.index(after: eq)...]
            } else {
                name = item
                value = ""
            }
            pairs.append((PercentEncoding.encode(PercentEncoding.decode(String(name)), keepSlash: false),
                          PercentEncoding.encode(PercentEncoding.decode(String(value)), keepSlash: false)))
        }
        pairs += adding
        pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        return pairs.map { $0.0 + "=" + $0.1 }.joined(separator: "&")
    }

    private static let unsignedHeaders: Set<String> = [
        "authorization", "user-agent", "expect", "connection", "transfer-encoding", "x-amzn-trace-id",
        "keep-alive", "proxy-authorization", "te", "upgrade",
    ]

    /// Lower-cased names, trimmed values with inner runs of spaces collapsed, repeated headers
    /// joined with `,` in order, sorted by name.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var order: [String] = []
        var values: [String: String] = [:]
        for (rawName, rawValue) in headers {
            let name = lowercased(rawName)
            if unsignedHeaders.contains(name) { continue }
            let value = trimmedValue(rawValue)
            if let existing = values[name] {
                values[name] = existing + "," + value
            } else {
                values[name] = value
                order.append(name)
            }
        }
        order.sort()
        var canonical = ""
        for name in order { canonical += name + ":" + values[name, default: ""] + "\n" }
        return (canonical, order.joined(separator: ";"))
    }

    static func lowercased(_ name: String) -> String {
        String(decoding: name.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }

    static func trimmedValue(_ value: String) -> String {
        var out: [UInt8] = []
        var pendingSpace = false
        for byte in value.utf8 {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(UInt8(ascii: " ")) }
                pendingSpace = false
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func stringToSign(_ canonicalRequest: String, amzDate: String, scope: String) -> String {
        "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + Hex.encode(SHA256.hash(data: Array(canonicalRequest.utf8)))
    }

    static func signature(_ stringToSign: String, secret: String, date: String, region: String, service: String) -> String {
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        return Hex.encode(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
    }
}
