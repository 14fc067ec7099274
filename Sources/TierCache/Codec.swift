/// Identifies a compression codec in the envelope. Ids below 128 are reserved for TierCache.
public struct CodecID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The id byte in the envelope.
    public let rawValue: UInt8
    /// Wraps an id byte.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Stored raw, uncompressed.
    public static let identity = CodecID(rawValue: 0)
    /// Zstandard (TierCacheZstd).
    public static let zstd = CodecID(rawValue: 1)
    /// LZ4 block format, fast or HC (TierCacheLZ4).
    public static let lz4 = CodecID(rawValue: 2)

    public var description: String {
        switch self {
        case .identity: "identity"
        case .zstd: "zstd"
        case .lz4: "lz4"
        default: "codec-\(rawValue)"
        }
    }
}

/// A payload as a codec produced it.
public struct CompressedPayload: Sendable, Hashable {
    /// The compressed bytes.
    public var bytes: [UInt8]
    /// The dictionary used, 0 for none; recorded in the envelope.
    public var dictionaryID: UInt32

    /// Creates a compressed payload.
    public init(bytes: [UInt8], dictionaryID: UInt32 = 0) {
        self.bytes = bytes
        self.dictionaryID = dictionaryID
    }
}

/// Compresses serialized values.
///
/// A codec may decline to compress (the payload is small, or would not shrink) by returning nil:
/// the cache then stores the payload raw with ``CodecID/identity``, and any reader can read it.
public protocol Codec: Sendable {
    /// The id written into envelopes this codec compressed.
    var id: CodecID { get }
    /// Compresses `input`, or returns nil to have it stored raw.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/codec``.
    func compress(_ input: [UInt8]) throws(TierCacheError) -> CompressedPayload?
    /// Decompresses a payload this codec produced.
    ///
    /// Must never write more than `uncompressedLength` bytes and must reject a length above its
    /// ceiling before allocating.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/codec``,
    ///   ``TierCacheError/Code/sizeLimitExceeded`` or ``TierCacheError/Code/dictionaryNotLoaded``.
    func decompress(_ input: [UInt8], uncompressedLength: Int, dictionaryID: UInt32) throws(TierCacheError) -> [UInt8]
}

/// Stores payloads as they are.
public struct IdentityCodec: Codec {
    public var id: CodecID { .identity }

    /// Creates the identity codec.
    public init() {}

    public func compress(_ input: [UInt8]) throws(TierCacheError) -> CompressedPayload? { nil }

    public func decompress(_ input: [UInt8], uncompressedLength: Int, dictionaryID: UInt32) throws(TierCacheError) -> [UInt8] {
        guard input.count == uncompressedLength else {
            throw TierCacheError(.malformedEntry, "raw payload is \(input.count) bytes; the envelope declares \(uncompressedLength)")
        }
        return input
    }
}

extension Codec where Self == IdentityCodec {
    /// No compression.
    public static var identity: IdentityCodec { IdentityCodec() }
}
