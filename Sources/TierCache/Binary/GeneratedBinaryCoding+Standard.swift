#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

// The standard types generated code is built from, each coded exactly as the `Codable` decoder
// codes it (BinaryDecoder.swift `decodeValue`): scalars and Foundation values in their compact
// forms at no nesting cost, collections and optionals one level deeper.

extension String: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeString(self) }
    @inlinable @inline(__always) public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readString() }
}

extension Bool: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeBool(self) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readBool() }
}

extension Double: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeFixed64(bitPattern) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        self = Double(bitPattern: try reader.readFixed64())
    }
}

extension Float: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeFixed32(bitPattern) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        self = Float(bitPattern: try reader.readFixed32())
    }
}

extension Int: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeSigned(Int64(self)) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readInt(Int.self) }
}

extension Int8: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeByte(UInt8(bitPattern: self)) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        self = Int8(bitPattern: try reader.readByte())
    }
}

extension Int16: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeSigned(Int64(self)) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readInt(Int16.self) }
}

extension Int32: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeSigned(Int64(self)) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readInt(Int32.self) }
}

extension Int64: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeSigned(self) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readSigned() }
}

extension Int128: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeSigned128(self) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readSigned128() }
}

extension UInt: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeVarint(UInt64(self)) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readUInt(UInt.self) }
}

extension UInt8: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeByte(self) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readByte() }
}

extension UInt16: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeVarint(UInt64(self)) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readUInt(UInt16.self) }
}

extension UInt32: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeVarint(UInt64(self)) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readUInt(UInt32.self) }
}

extension UInt64: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeVarint(self) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readVarint() }
}

extension UInt128: GeneratedBinaryCoding {
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeVarint128(self) }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readVarint128() }
}

// MARK: Foundation value types

extension Date: GeneratedBinaryCoding {
    /// The exact Double the Date holds: no precision is lost.
    @inlinable public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        writer.writeFixed64(timeIntervalSinceReferenceDate.bitPattern)
    }
    @inlinable public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        self = Date(timeIntervalSinceReferenceDate: Double(bitPattern: try reader.readFixed64()))
    }
}

extension Data: GeneratedBinaryCoding {
    public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        writer.writeVarint(UInt64(count))
        withUnsafeBytes { writer.bytes.append(contentsOf: $0) }
    }
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readData() }
}

extension UUID: GeneratedBinaryCoding {
    public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        withUnsafeBytes(of: uuid) { writer.bytes.append(contentsOf: $0) }
    }
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readUUID() }
}

extension URL: GeneratedBinaryCoding {
    public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        writer.writeString(relativeString)
        if let base = baseURL {
            writer.writeByte(1)
            writer.writeString(base.absoluteString)
        } else {
            writer.writeByte(0)
        }
    }
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readURL() }
}

extension Decimal: GeneratedBinaryCoding {
    public func encodeBinary(to writer: inout BinarySerializer.Writer) { writer.writeDecimal(self) }
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) { self = try reader.readDecimal() }
}

// MARK: Optionals and collections

extension Optional: GeneratedBinaryCoding where Wrapped: GeneratedBinaryCoding {
    /// Presence, then the value when present.
    @inlinable
    public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        switch self {
        case .none:
            writer.writeByte(0)
        case .some(let wrapped):
            writer.writeByte(1)
            writer.encode(wrapped)
        }
    }

    /// An optional as a value (an array element, a dictionary value, the inner level of `T??`).
    @inlinable @inline(__always)
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        try reader.descend()
        self = try reader.readPresence() ? try reader.decode(Wrapped.self) : nil
        reader.ascend()
    }

    /// An optional field (`decodeIfPresent`): `nil` when the struct's bytes end before it.
    @inlinable @inline(__always)
    public static func decodeBinaryField(from reader: inout BinarySerializer.Reader, named name: StaticString) throws(TierCacheError) -> Self {
        guard reader.cursor < reader.limit else { return nil }
        return try reader.readPresence() ? try reader.decode(Wrapped.self) : nil
    }
}

extension Array: GeneratedBinaryCoding where Element: GeneratedBinaryCoding {
    /// The count, then the elements.
    @inlinable
    public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        writer.writeVarint(UInt64(count))
        if Element.self == UInt8.self {
            writer.bytes.append(contentsOf: unsafeBitCast(self, to: [UInt8].self))
        } else {
            for element in self { writer.encode(element) }
        }
    }

    @inlinable
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        try reader.descend()
        let count = try reader.readCount()
        if Element.self == UInt8.self {
            self = unsafeBitCast(try reader.readBytes(count), to: [Element].self)
        } else {
            var result: [Element] = []
            result.reserveCapacity(Swift.min(count, BinarySerializer.Reader.maximumReservation))
            for _ in 0..<count { result.append(try reader.decode(Element.self)) }
            self = result
        }
        reader.ascend()
    }
}

extension Set: GeneratedBinaryCoding where Element: GeneratedBinaryCoding {
    /// The count, then the elements, as an array.
    @inlinable
    public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        writer.writeVarint(UInt64(count))
        for element in self { writer.encode(element) }
    }

    @inlinable
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        try reader.descend()
        let count = try reader.readCount()
        var result = Set<Element>()
        for _ in 0..<count { result.insert(try reader.decode(Element.self)) }
        self = result
        reader.ascend()
    }
}

extension Dictionary: GeneratedBinaryCoding where Key: GeneratedBinaryCoding, Value: GeneratedBinaryCoding {
    /// The entry count, then key, value, key, value...
    @inlinable
    public func encodeBinary(to writer: inout BinarySerializer.Writer) {
        writer.writeVarint(UInt64(count))
        for (key, value) in self {
            writer.encode(key)
            writer.encode(value)
        }
    }

    @inlinable
    public init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError) {
        try reader.descend()
        // Each entry takes at least two bytes, so the count is checked against half the input.
        let count = try reader.readCount(minimumBytesEach: 2)
        var result: [Key: Value] = [:]
        result.reserveCapacity(Swift.min(count, BinarySerializer.Reader.maximumReservation))
        for _ in 0..<count {
            let key = try reader.decode(Key.self)
            // `updateValue` takes the value by move; the subscript would copy it into an Optional.
            result.updateValue(try reader.decode(Value.self), forKey: key)
        }
        self = result
        reader.ascend()
    }
}
