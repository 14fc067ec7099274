#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Identifies a serializer in the envelope. Ids below 128 are reserved for TierCache; use 128
/// and up for your own.
public struct SerializerID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
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
public struct JSONSerializer: Serializer {
    public var id: SerializerID { .json }

    /// Creates a JSON serializer.
    public init() {}

    public func encode<Value: Encodable>(_ value: Value) throws(TierCacheError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw TierCacheError(.serialization, "JSON encoding of \(Value.self) failed: \(error)")
        }
    }

    public func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws(TierCacheError) -> Value {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        do {
            return try decoder.decode(Value.self, from: Data(bytes))
        } catch {
            throw TierCacheError(.serialization, "JSON decoding of \(Value.self) failed: \(error)")
        }
    }
}

extension Serializer where Self == JSONSerializer {
    /// JSON through FoundationEssentials.
    public static var json: JSONSerializer { JSONSerializer() }
}
