#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Identifies a serializer in the envelope. Ids below 128 are reserved for TierCache; use 128
/// and up for your own.
public struct SerializerID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The id byte in the envelope.
    public let rawValue: UInt8
    /// Wraps an id byte.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// ``JSONSerializer``.
    public static let json = SerializerID(rawValue: 1)
    /// ``BinarySerializer``.
    public static let binary = SerializerID(rawValue: 2)

    public var description: String {
        switch self {
        case .json: "json"
        case .binary: "binary"
        default: "serializer-\(rawValue)"
        }
    }
}

/// Turns values into bytes and back.
///
/// Generic methods rather than an associated type, so that a cache can hold `any Serializer`
/// chosen at run time (docs/decisions.md, note 3).
public protocol Serializer: Sendable {
    /// The id written into envelopes.
    var id: SerializerID { get }
    /// Encodes a value.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/serialization``.
    func encode<Value: Encodable>(_ value: Value) throws(TierCacheError) -> [UInt8]
    /// Decodes a value; malformed bytes throw, never trap.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/serialization``.
    func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws(TierCacheError) -> Value
}

/// JSON through FoundationEssentials' `JSONEncoder`/`JSONDecoder`, with sorted keys so equal
/// values give equal bytes. Dates are encoded as milliseconds since 1970.
///
/// The encoder and decoder are configured once, when the serializer is created, and shared by
/// every call (both are thread-safe); decoding reads the caller's bytes without copying them.
/// Measured on the endpoints model, the whole round trip costs within a few percent of calling a
/// default `JSONEncoder`/`JSONDecoder` directly, sorted keys included (docs/benchmarks.md,
/// `serializers`).
public struct JSONSerializer: Serializer {
    /// ``SerializerID/json``.
    public var id: SerializerID { .json }

    private let encoder: JSONEncoder
    private let decoder: JSONDecoder

    /// Creates a JSON serializer.
    public init() {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        self.encoder = encoder
        self.decoder = decoder
    }

    /// Encodes a value as JSON.
    /// - Throws: ``TierCacheError`` (``TierCacheError/Code/serialization``) wrapping the
    ///   encoder's error, for example for a non-finite Double.
    public func encode<Value: Encodable>(_ value: Value) throws(TierCacheError) -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw TierCacheError(.serialization, "JSON encoding of \(Value.self) failed: \(error)")
        }
    }

    /// Decodes a value from JSON.
    /// - Throws: ``TierCacheError`` (``TierCacheError/Code/serialization``) wrapping the
    ///   decoder's error for malformed JSON or a shape that does not match `Value`.
    public func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws(TierCacheError) -> Value {
        do {
            return try bytes.withUnsafeBytes { raw in
                // The Data borrows the caller's bytes for the duration of the call only.
                guard let base = raw.baseAddress, raw.count > 0 else {
                    return try decoder.decode(Value.self, from: Data())
                }
                let data = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: raw.count, deallocator: .none)
                return try decoder.decode(Value.self, from: data)
            }
        } catch {
            throw TierCacheError(.serialization, "JSON decoding of \(Value.self) failed: \(error)")
        }
    }
}

extension Serializer where Self == JSONSerializer {
    /// JSON through FoundationEssentials.
    public static var json: JSONSerializer { JSONSerializer() }
}
