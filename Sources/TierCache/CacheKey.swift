/// The identity of a cache entry: a namespace, a name and the schema version of the value.
///
/// Keys are validated when created, so every key that exists is valid:
/// - `namespace`: 1–64 ASCII letters, digits, `.`, `_` or `-`, and not `.` or `..`. Backends use
///   it as a folder or prefix.
/// - `name`: 1–4096 bytes of UTF-8 with no control characters (C0, DEL, C1).
///
/// Backends never trust a name raw: they encode or hash it (see ``fingerprint``). Bumping
/// `schemaVersion` when the value's shape changes makes old entries unreachable, so a deploy never
/// reads an old shape.
public struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    /// The longest namespace, in bytes.
    public static let maxNamespaceLength = 64
    /// The longest name, in UTF-8 bytes.
    public static let maxNameLength = 4096

    /// A group of keys: a folder in the disk tier, a prefix in S3.
    public let namespace: String
    /// The entry's name within the namespace.
    public let name: String
    /// The version of the value's shape.
    public let schemaVersion: UInt32
    // Precomputed so that a memory-tier hit hashes one integer, not two strings. The key holds
    // nothing else on the heap (short names stay inline), so copying one costs no reference
    // counting; ``rendered`` and ``fingerprint`` are derived on demand for that reason.
    @usableFromInline package let hash64: UInt64

    /// Creates a validated key.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/invalidKey`` naming the problem.
    public init(namespace: String, name: String, schemaVersion: UInt32 = 1) throws(TierCacheError) {
        try Self.validate(namespace: namespace)
        try Self.validate(name: name)
        self.namespace = namespace
        self.name = name
        self.schemaVersion = schemaVersion
        self.hash64 = XXH64.hash(Self.render(namespace, name, schemaVersion), seed: 0)
    }

    private static func render(_ namespace: String, _ name: String, _ schemaVersion: UInt32) -> String {
        "\(namespace)/\(name)#v\(schemaVersion)"
    }

    /// The deterministic rendering `namespace/name#vN`, unique per key.
    public var rendered: String { Self.render(namespace, name, schemaVersion) }

    /// A 128-bit hash of ``rendered`` as 32 lowercase hex digits: a safe file or object name.
    public var fingerprint: String {
        let halves = fingerprintHalves
        // Written digit by digit into one 32-byte string: backends derive it on every operation.
        return String(unsafeUninitializedCapacity: 32) { buffer in
            Self.writeFingerprintDigits(halves, to: buffer.baseAddress!)
            return 32
        }
    }

    /// Writes the 32 digits of the fingerprint whose two integers are `halves`
    /// (``fingerprintHalves``) at `out`: the spelling of ``fingerprint``, for backends that build
    /// names without a string.
    @inlinable
    package static func writeFingerprintDigits(_ halves: (UInt64, UInt64), to out: UnsafeMutablePointer<UInt8>) {
        let digits: StaticString = "0123456789abcdef"
        let table = digits.utf8Start
        for nibble in 0..<16 {
            out[nibble] = table[Int((halves.0 >> UInt64(60 - 4 * nibble)) & 0xF)]
            out[16 + nibble] = table[Int((halves.1 >> UInt64(60 - 4 * nibble)) & 0xF)]
        }
    }

    /// ``fingerprint`` as the two integers its digits spell, most significant first (backends
    /// that keep fingerprints in tables need no string).
    package var fingerprintHalves: (UInt64, UInt64) {
        (hash64, renderedHash(seed: 0x7469_6572_6361_6368))  // "tiercach"
    }

    /// XXH64 of ``rendered`` without building the string.
    private func renderedHash(seed: UInt64) -> UInt64 {
        var namespace = self.namespace
        var name = self.name
        let version = schemaVersion
        return namespace.withUTF8 { ns in
            name.withUTF8 { nm in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: ns.count + nm.count + 16) { out in
                    var count = 0
                    for byte in ns { out[count] = byte; count += 1 }
                    out[count] = UInt8(ascii: "/"); count += 1
                    for byte in nm { out[count] = byte; count += 1 }
                    out[count] = UInt8(ascii: "#"); out[count + 1] = UInt8(ascii: "v"); count += 2
                    // Decimal digits of the version, most significant first.
                    var digits = 1
                    var scale: UInt32 = 1
                    while version / scale >= 10 { scale *= 10; digits += 1 }
                    var rest = version
                    for _ in 0..<digits {
                        out[count] = UInt8(ascii: "0") + UInt8(rest / scale)
                        rest %= scale
                        scale /= 10
                        count += 1
                    }
                    return XXH64.hash(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: out[0..<count])), seed: seed)
                }
            }
        }
    }

    public var description: String { rendered }

    @inlinable
    public func hash(into hasher: inout Hasher) {
        hasher.combine(hash64)
    }

    @inlinable
    public static func == (lhs: CacheKey, rhs: CacheKey) -> Bool {
        lhs.hash64 == rhs.hash64 && lhs.schemaVersion == rhs.schemaVersion
            && lhs.name == rhs.name && lhs.namespace == rhs.namespace
    }

    static func validate(namespace: String) throws(TierCacheError) {
        let utf8 = namespace.utf8
        guard !utf8.isEmpty else { throw .invalidKey("namespace is empty") }
        guard utf8.count <= maxNamespaceLength else {
            throw .invalidKey("namespace is \(utf8.count) bytes; the limit is \(maxNamespaceLength)")
        }
        guard namespace != ".", namespace != ".." else {
            throw .invalidKey("namespace may not be '.' or '..'")
        }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                throw .invalidKey("namespace may hold only ASCII letters, digits, '.', '_' and '-'")
            }
        }
    }

    static func validate(name: String) throws(TierCacheError) {
        let count = name.utf8.count
        guard count > 0 else { throw .invalidKey("name is empty") }
        guard count <= maxNameLength else {
            throw .invalidKey("name is \(count) bytes; the limit is \(maxNameLength)")
        }
        for scalar in name.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || (0x7F...0x9F).contains(v) {
                throw .invalidKey("name holds the control character U+\(hex(UInt64(v), width: 4))")
            }
        }
    }

    private static func hex(_ value: UInt64, width: Int = 16) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
