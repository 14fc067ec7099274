#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Type inspection shared by the binary encoder and decoder.
//
// The binary format decides a few things from the *type* being coded rather than from the bytes
// (it carries no type tags): whether a value is an Optional (presence byte), an Array or a
// Dictionary (fast paths), or an enum (its keyed container is written with keys, because the
// synthesized `init(from:)` of an enum with associated values asks for `allKeys`). Comparing
// metatypes is free; telling "any enum" or "any Optional" apart needs the metadata kind, the first
// word of a type's runtime metadata, which is part of Swift's stable ABI on every platform we run
// on (values from swift/ABI/MetadataKind.def).

@usableFromInline
enum BinaryRuntime {
    /// MetadataKind values (swift/ABI/MetadataKind.def).
    static let structKind: UInt = 0x200
    static let enumKind: UInt = 0x201
    static let optionalKind: UInt = 0x202

    @inline(__always)
    static func metadata(_ type: any Any.Type) -> UnsafeRawPointer {
        unsafeBitCast(type, to: UnsafeRawPointer.self)
    }

    /// The metadata kind of `type`; class metadata yields a value above 0x7FF (an isa pointer) or 0.
    @inline(__always)
    static func kind(_ type: any Any.Type) -> UInt {
        metadata(type).load(as: UInt.self)
    }

    /// The nominal type descriptor of a struct or enum (shared by all specializations of a
    /// generic type), so `[Int]` and `[Endpoint]` give the same pointer.
    @inline(__always)
    static func descriptor(_ type: any Any.Type) -> UnsafeRawPointer? {
        let pointer = metadata(type)
        let kind = pointer.load(as: UInt.self)
        guard kind == structKind || kind == enumKind || kind == optionalKind else { return nil }
        return pointer.load(fromByteOffset: MemoryLayout<UInt>.size, as: UnsafeRawPointer?.self)
    }

    /// Collections reserve at most this many elements up front, however many the (already
    /// checked) count announces: a count is bounded by the input's length, but an element may be
    /// far larger in memory than its one encoded byte, so larger collections grow as they fill.
    static let maximumReservation = 1024

    // Immutable after initialization: pointers into read-only runtime metadata.
    nonisolated(unsafe) static let arrayDescriptor = descriptor([Int].self)
    nonisolated(unsafe) static let dictionaryDescriptor = descriptor([Int: Int].self)

    /// Whether `type` is one of the scalars or Foundation value types with a compact form of its
    /// own (other than the String, Int, Bool and Double fast paths).
    @inline(__always)
    static func hasSpecialForm(_ type: any Any.Type) -> Bool {
        type == Int8.self || type == Int16.self || type == Int32.self || type == Int64.self
            || type == UInt.self || type == UInt8.self || type == UInt16.self || type == UInt32.self
            || type == UInt64.self || type == Float.self || type == Int128.self || type == UInt128.self
            || type == Date.self || type == Data.self || type == UUID.self || type == URL.self
            || type == Decimal.self
    }

    /// Whether a keyed container over `Key` is positional (values only, in encoding order).
    /// Synthesized `CodingKeys` are enums; dictionaries and hand-written dynamic keys are structs
    /// whose containers must keep their keys.
    @inline(__always)
    static func isEnum(_ type: any Any.Type) -> Bool {
        kind(type) == enumKind
    }
}

// Fast paths for the standard collections: the count is known up front, elements are coded
// without a container per collection, and String elements skip the generic machinery. The bytes
// are the same as the generic unkeyed-container path would write (count, then elements), except
// for dictionaries, which the generic path writes as a keyed container; both paths are symmetric.

protocol BinaryEncodableCollection {
    func binaryEncode(into encoder: BinaryEncoderState) throws
}

protocol BinaryDecodableCollection {
    static func binaryDecode(from decoder: BinaryDecoderState) throws -> Self
}

extension Array: BinaryEncodableCollection where Element: Encodable {
    func binaryEncode(into encoder: BinaryEncoderState) throws {
        encoder.writeVarint(UInt64(count))
        if Element.self == String.self {
            for string in unsafeBitCast(self, to: [String].self) { encoder.writeString(string) }
        } else if Element.self == UInt8.self {
            encoder.bytes.append(contentsOf: unsafeBitCast(self, to: [UInt8].self))
        } else {
            for element in self { try encoder.encodeValue(element) }
        }
    }
}

extension Array: BinaryDecodableCollection where Element: Decodable {
    static func binaryDecode(from decoder: BinaryDecoderState) throws -> [Element] {
        let count = try decoder.readCount()
        if Element.self == String.self {
            var strings: [String] = []
            strings.reserveCapacity(Swift.min(count, BinaryRuntime.maximumReservation))
            for _ in 0..<count { strings.append(try decoder.readString()) }
            return unsafeBitCast(strings, to: [Element].self)
        } else if Element.self == UInt8.self {
            return unsafeBitCast(try decoder.readBytes(count), to: [Element].self)
        }
        var result: [Element] = []
        result.reserveCapacity(Swift.min(count, BinaryRuntime.maximumReservation))
        for _ in 0..<count { result.append(try decoder.decodeValue(Element.self)) }
        return result
    }
}

extension Dictionary: BinaryEncodableCollection where Key: Encodable, Value: Encodable {
    func binaryEncode(into encoder: BinaryEncoderState) throws {
        encoder.writeVarint(UInt64(count))
        if Key.self == String.self {
            for (key, value) in self {
                encoder.writeString(unsafeBitCast(key, to: String.self))
                try encoder.encodeValue(value)
            }
        } else {
            for (key, value) in self {
                try encoder.encodeValue(key)
                try encoder.encodeValue(value)
            }
        }
    }
}

extension Dictionary: BinaryDecodableCollection where Key: Decodable, Value: Decodable {
    static func binaryDecode(from decoder: BinaryDecoderState) throws -> [Key: Value] {
        // Each entry takes at least two bytes, so the count is checked against half the input.
        let count = try decoder.readCount(minimumBytesEach: 2)
        var result: [Key: Value] = [:]
        result.reserveCapacity(Swift.min(count, BinaryRuntime.maximumReservation))
        if Key.self == String.self {
            for _ in 0..<count {
                let key = unsafeBitCast(try decoder.readString(), to: Key.self)
                result[key] = try decoder.decodeValue(Value.self)
            }
        } else {
            for _ in 0..<count {
                let key = try decoder.decodeValue(Key.self)
                result[key] = try decoder.decodeValue(Value.self)
            }
        }
        return result
    }
}

protocol BinaryEncodableOptional {
    func binaryEncode(into encoder: BinaryEncoderState) throws
}

protocol BinaryDecodableOptional {
    static func binaryDecode(from decoder: BinaryDecoderState) throws -> Self
}

extension Optional: BinaryEncodableOptional where Wrapped: Encodable {
    func binaryEncode(into encoder: BinaryEncoderState) throws {
        switch self {
        case .none: encoder.bytes.append(0)
        case .some(let wrapped):
            encoder.bytes.append(1)
            try encoder.encodeValue(wrapped)
        }
    }
}

extension Optional: BinaryDecodableOptional where Wrapped: Decodable {
    static func binaryDecode(from decoder: BinaryDecoderState) throws -> Wrapped? {
        try decoder.readPresence() ? try decoder.decodeValue(Wrapped.self) : nil
    }
}
