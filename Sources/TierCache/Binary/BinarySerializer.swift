#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A compact binary `Codable` format of TierCache's own: varints, length-prefixed strings and
/// data, and no field names (a struct's fields are written in encoding order).
///
/// Several times faster than JSON and markedly smaller (docs/benchmarks.md, `serializers`), at
/// the price of schema tolerance: the bytes carry no field names or types, so a value must be
/// read by the type that wrote it, give or take the changes docs/binary-format.md lists (for
/// example, an optional field appended at the end). Bump your ``CacheKey`` schema version on any
/// other change to a cached type.
///
/// Decoding is defensive: malformed input (random, truncated or bit-flipped bytes, lying lengths,
/// nesting deeper than ``Configuration/maximumDepth``) throws ``TierCacheError`` with code
/// ``TierCacheError/Code/serialization``; it never traps and never allocates from a length it has
/// not checked against the bytes that remain.
public struct BinarySerializer: Serializer {
    /// Limits applied while decoding.
    public struct Configuration: Sendable {
        /// The deepest nesting of containers and optionals a decoder accepts before it throws,
        /// so hostile input cannot exhaust the stack through a recursive type. Default 512.
        public var maximumDepth: Int

        /// Creates a configuration.
        /// - Parameter maximumDepth: the deepest nesting decoding accepts (default 512).
        public init(maximumDepth: Int = 512) {
            self.maximumDepth = maximumDepth
        }
    }

    /// The limits this serializer applies.
    public let configuration: Configuration

    /// ``SerializerID/binary``.
    public var id: SerializerID { .binary }

    /// Creates a binary serializer.
    /// - Parameter configuration: decoding limits.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Encodes a value.
    /// - Throws: ``TierCacheError`` (``TierCacheError/Code/serialization``) when the value's own
    ///   `encode(to:)` throws or misuses its containers.
    public func encode<Value: Encodable>(_ value: Value) throws(TierCacheError) -> [UInt8] {
        let encoder = BinaryEncoderState()
        do {
            try encoder.encodeValue(value)
            try encoder.closeFrames(keeping: 0)
            if let error = encoder.deferredError { throw error }
        } catch let error as TierCacheError {
            throw error
        } catch {
            throw TierCacheError(.serialization, "binary encoding of \(Value.self) failed: \(error)")
        }
        return encoder.bytes
    }

    /// Decodes a value of the type that was encoded.
    /// - Throws: ``TierCacheError`` (``TierCacheError/Code/serialization``) for malformed or
    ///   truncated bytes, bytes left over after the value, or an error from the value's own
    ///   `init(from:)`.
    public func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws(TierCacheError) -> Value {
        do {
            return try bytes.withUnsafeBufferPointer { buffer in
                // An empty array may have no base address; any non-nil pointer will do for zero bytes.
                let base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
                let decoder = BinaryDecoderState(base: base, count: buffer.count, maximumDepth: configuration.maximumDepth)
                let value = try decoder.decodeValue(Value.self)
                decoder.popFrames(keeping: 0)
                guard decoder.cursor == buffer.count else {
                    throw decoder.malformed("\(buffer.count - decoder.cursor) bytes left after the value")
                }
                return value
            }
        } catch let error as TierCacheError {
            throw error
        } catch {
            throw TierCacheError(.serialization, "binary decoding of \(Value.self) failed: \(error)")
        }
    }
}

extension Serializer where Self == BinarySerializer {
    /// The compact binary format (``BinarySerializer``) with default limits.
    public static var binary: BinarySerializer { BinarySerializer() }
}
