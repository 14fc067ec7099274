public import Crypto
public import TierCache

/// AWS Signature Version 4a: the asymmetric variant of SigV4 that Multi-Region Access Points
/// require. The request is signed with ECDSA P-256 over SHA-256, for a *region set*
/// (`X-Amz-Region-Set`, such as `*` or `us-east-1,eu-west-1`) instead of one region.
///
/// The P-256 key is derived from the secret access key as AWS specifies (a NIST SP 800-108
/// counter-mode KDF with HMAC-SHA256, keyed with `"AWS4A" + secret`, over the label
/// `AWS4-ECDSA-P256-SHA256` and the access key id, retried with a higher counter byte until the
/// candidate is below the curve order minus one). Derivation costs a few HMACs; ``signingKey(for:)``
/// does it, and callers that sign often keep the result (``SigningKey``) for the credentials'
/// lifetime.
///
/// ECDSA signatures are randomized, so two signatures of one request differ; both verify.
/// Canonicalization (path, query, headers) is SigV4's (``SigV4Signer``).
public struct SigV4aSigner: Sendable {
    /// The algorithm name in `Authorization` and `X-Amz-Algorithm`.
    public static let algorithm = "AWS4-ECDSA-P256-SHA256"

    /// A P-256 key pair derived from one set of credentials.
    public struct SigningKey: Sendable {
        /// The access key id the key was derived with.
        public let accessKeyID: String
        /// The private scalar, big-endian (swift-crypto's key type is not `Sendable`).
        let scalar: [UInt8]
        /// The private key.
        public var privateKey: P256.Signing.PrivateKey {
            // The scalar was validated when the key was derived.
            try! P256.Signing.PrivateKey(rawRepresentation: scalar)
        }
        /// The public key (what AWS verifies with).
        public var publicKey: P256.Signing.PublicKey { privateKey.publicKey }
    }

    /// The region set signed for (`*` for every region, or a comma-separated list).
    public var regionSet: String
    /// The service in the credential scope (`s3`, …).
    public var service: String
    /// Path rules, as in SigV4.
    public var rules: SigV4Signer.Rules

    /// Creates a signer.
    /// - Parameters:
    ///   - regionSet: the value of `X-Amz-Region-Set`; `*` lets a Multi-Region Access Point route
    ///     to any of its regions.
    ///   - service: the signing name (`s3`).
    ///   - rules: ``SigV4Signer/Rules/s3`` for S3 (the default when `service` is `s3`), else the
    ///     generic rules.
    public init(regionSet: String = "*", service: String = "s3", rules: SigV4Signer.Rules? = nil) {
        self.regionSet = regionSet
        self.service = service
        self.rules = rules ?? (service == "s3" ? .s3 : .generic)
    }

    // MARK: - Key derivation

    /// The order of P-256 minus two, big-endian: a candidate above it is rejected.
    private static let orderMinusTwo: [UInt8] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x4F,
    ]

    /// Derives the P-256 key pair of a set of credentials (deterministic: the same credentials
    /// always give the same key).
    /// - Throws: ``TierCacheError`` with code `invalidConfiguration` only if no candidate in 254
    ///   tries is usable (probability about 2^-8000; in practice never).
    public static func signingKey(for credentials: AWSCredentials) throws -> SigningKey {
        let key = SymmetricKey(data: Array(("AWS4A" + credentials.secretAccessKey).utf8))
        let label = Array(algorithm.utf8)
        let accessKey = Array(credentials.accessKeyID.utf8)
        var counter: UInt8 = 1
        while counter < 255 {
            // SP 800-108 counter mode, one block: i || label || 0x00 || context || L.
            var input: [UInt8] = [0, 0, 0, 1]
            input += label
            input.append(0)
            input += accessKey
            input.append(counter)
            input += [0, 0, 1, 0]  // L = 256 bits
            let candidate = Array(HMAC<SHA256>.authenticationCode(for: input, using: key))
            if !greater(candidate, orderMinusTwo) {
                let scalar = plusOne(candidate)
                _ = try P256.Signing.PrivateKey(rawRepresentation: scalar)  // validates the scalar
                return SigningKey(accessKeyID: credentials.accessKeyID, scalar: scalar)
            }
            counter += 1
        }
        throw TierCacheError(.invalidConfiguration, "SigV4a: no usable P-256 key derives from these credentials")
    }

    /// Big-endian comparison of equal-length byte strings, without early exit.
    static func greater(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var result = 0  // 1: a > b, -1: a < b, decided by the first differing byte
        for i in 0..<a.count {
            let x = Int(a[i]), y = Int(b[i])
            let decided = result != 0
            let here = x > y ? 1 : (x < y ? -1 : 0)
            result = decided ? result : here
        }
        return result > 0
    }

    /// Adds one to a big-endian unsigned integer (no overflow possible below the order).
    static func plusOne(_ bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        var i = out.count - 1
        while i >= 0 {
            let (sum, overflow) = out[i].addingReportingOverflow(1)
            out[i] = sum
            if !overflow { break }
            i -= 1
        }
        return out
    }

    // MARK: - Signing

    /// Signs a request in the `Authorization` header.
    ///
    /// - Parameters: as ``SigV4Signer/sign(method:path:query:headers:payload:credentials:date:addContentSHA256Header:omitSessionToken:)``,
    ///   plus `key`, the key derived from the same credentials (``signingKey(for:)``).
    /// - Returns: the headers to add (`X-Amz-Security-Token`, `X-Amz-Date`, `X-Amz-Region-Set`,
    ///   `x-amz-content-sha256`, `Authorization`); the signature is hex DER.
    /// - Throws: ``TierCacheError`` (`invalidConfiguration`) if `key` was derived from other
    ///   credentials, or if the ECDSA signing itself fails.
    public func sign(
        method: String, path: String, query: String, headers: [(name: String, value: String)],
        payload: SigV4Signer.Payload, credentials: AWSCredentials, key: SigningKey, date: WallTime,
        addContentSHA256Header: Bool = true, omitSessionToken: Bool = false
    ) throws -> SigV4Signer.Signature {
        guard key.accessKeyID == credentials.accessKeyID else {
            throw TierCacheError(.invalidConfiguration, "SigV4a: signing key belongs to other credentials")
        }
        let time = AWSTimestamp(date)
        let amzDate = time.amzDate
        var (extra, signed) = SigV4Signer.signingHeaders(
            headers, credentials: credentials, amzDate: amzDate, additional: [("X-Amz-Region-Set", regionSet)],
            payload: payload, addContentSHA256Header: addContentSHA256Header, omitSessionToken: omitSessionToken)
        let (canonicalRequest, signedHeaderNames) = SigV4Signer.canonicalRequest(
            method: method, canonicalPath: canonicalPath(path), query: query, signed: signed, payloadHash: payload.hash)
        let scope = time.date + "/" + service + "/aws4_request"
        let stringToSign = Self.stringToSign(canonicalRequest, amzDate: amzDate, scope: scope)
        let signature = try Self.signature(stringToSign, key: key)
        extra.append(("Authorization",
                      "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaderNames), Signature=\(signature)"))
        return SigV4Signer.Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                                     headers: extra, query: query)
    }

    /// Presigns a request (signature in the query string).
    /// - Returns: the query string to send in ``SigV4Signer/Signature/query``.
    /// - Throws: as ``sign(method:path:query:headers:payload:credentials:key:date:addContentSHA256Header:omitSessionToken:)``.
    public func presign(
        method: String, path: String, query: String, headers: [(name: String, value: String)],
        payload: SigV4Signer.Payload, credentials: AWSCredentials, key: SigningKey, date: WallTime, expires: Int,
        omitSessionToken: Bool = false
    ) throws -> SigV4Signer.Signature {
        guard key.accessKeyID == credentials.accessKeyID else {
            throw TierCacheError(.invalidConfiguration, "SigV4a: signing key belongs to other credentials")
        }
        let time = AWSTimestamp(date)
        let amzDate = time.amzDate
        let scope = time.date + "/" + service + "/aws4_request"
        let (canonicalHeaders, signedHeaderNames) = SigV4Signer.canonicalHeaders(headers)
        func enc(_ s: String) -> String { PercentEncoding.encode(s, keepSlash: false) }
        var added: [(String, String)] = [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", enc(credentials.accessKeyID + "/" + scope)),
            ("X-Amz-Date", amzDate),
            ("X-Amz-SignedHeaders", enc(signedHeaderNames)),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-Region-Set", enc(regionSet)),
        ]
        var tokenParameter: (String, String)?
        if let token = credentials.sessionToken {
            tokenParameter = ("X-Amz-Security-Token", enc(token))
            if !omitSessionToken { added.append(tokenParameter!) }
        }
        let canonicalRequest = method + "\n" + canonicalPath(path) + "\n" + SigV4Signer.canonicalQuery(query, adding: added) + "\n"
            + canonicalHeaders + "\n" + signedHeaderNames + "\n" + payload.hash
        let stringToSign = Self.stringToSign(canonicalRequest, amzDate: amzDate, scope: scope)
        let signature = try Self.signature(stringToSign, key: key)
        if omitSessionToken, let tokenParameter { added.append(tokenParameter) }
        added.append(("X-Amz-Signature", signature))
        var out = query
        for (name, value) in added {
            if !out.isEmpty { out += "&" }
            out += name + "=" + value
        }
        return SigV4Signer.Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                                     headers: [], query: out)
    }

    /// Checks a hex DER signature of a string to sign against a public key.
    /// - Returns: false for a malformed or non-matching signature (never throws).
    public static func isValid(signatureHex: String, stringToSign: String, publicKey: P256.Signing.PublicKey) -> Bool {
        guard let der = Hex.decode(signatureHex),
              let signature = try? P256.Signing.ECDSASignature(derRepresentation: der) else { return false }
        return publicKey.isValidSignature(signature, for: Array(stringToSign.utf8))
    }

    func canonicalPath(_ wirePath: String) -> String {
        SigV4Signer(region: "", service: service, rules: rules).canonicalPath(wirePath)
    }

    static func stringToSign(_ canonicalRequest: String, amzDate: String, scope: String) -> String {
        algorithm + "\n" + amzDate + "\n" + scope + "\n" + Hex.encode(SHA256.hash(data: Array(canonicalRequest.utf8)))
    }

    static func signature(_ stringToSign: String, key: SigningKey) throws -> String {
        Hex.encode(try key.privateKey.signature(for: Array(stringToSign.utf8)).derRepresentation)
    }
}

extension Hex {
    /// Decodes lower- or upper-case hex; nil for odd length or a non-hex digit.
    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
