#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The encoder: one growable byte buffer shared by every container, and a stack of open
// containers whose headers (a byte length or an element count) are patched in when they close.
// A container closes when the value that opened it returns, or when a container below it on the
// stack writes again (nested containers and super-encoders have no explicit end).

/// One open container: where its one-byte header placeholder sits and what goes there.
struct BinaryEncoderFrame {
    enum Header { case byteLength, count }
    let headerAt: Int
    let header: Header
    let id: UInt32
    var count: Int = 0
}

/// The state of one encoding run; it is also the `Encoder` handed to `encode(to:)`.
final class BinaryEncoderState: Encoder {
    // One run is confined to one thread and never holds overlapping accesses to these, so the
    // dynamic exclusivity checks (a third of the run time when measured) are switched off.
    @exclusivity(unchecked) var bytes: [UInt8] = []
    @exclusivity(unchecked) var frames: [BinaryEncoderFrame] = []
    var nextFrameID: UInt32 = 0
    /// Set while an enum value is asked to encode itself: its first keyed container keeps keys.
    var valueIsEnum = false
    /// A misuse found where the `Encoder` API cannot throw (a stale nested container).
    var deferredError: (any Error)?

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init() {
        bytes.reserveCapacity(256)
    }

    // MARK: Primitive writes

    @inline(__always)
    func writeVarint(_ value: UInt64) {
        if value < 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value))
            return
        }
        writeVarintSlow(value)
    }

    @inline(never)
    func writeVarintSlow(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    func writeSigned(_ value: Int64) {
        writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    func writeVarint128(_ value: UInt128) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    func writeSigned128(_ value: Int128) {
        writeVarint128(UInt128(bitPattern: (value << 1) ^ (value >> 127)))
    }

    @inline(__always)
    func writeFixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    func writeFixed32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    func writeString(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    @inline(__always)
    func writeBool(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    // MARK: Values

    /// Encodes any value: fast paths for the standard scalars, compact forms for the Foundation
    /// value types, then collections and optionals, then the value's own `encode(to:)`.
    func encodeValue<T: Encodable>(_ value: T) throws {
        let kind = BinaryRuntime.kind(T.self)
        if kind == BinaryRuntime.structKind {
            if T.self == String.self { return writeString(unsafeBitCast(value, to: String.self)) }
            if T.self == Int.self { return writeSigned(Int64(unsafeBitCast(value, to: Int.self))) }
            if T.self == Bool.self { return writeBool(unsafeBitCast(value, to: Bool.self)) }
            if T.self == Double.self { return writeFixed64(unsafeBitCast(value, to: Double.self).bitPattern) }
            let descriptor = BinaryRuntime.descriptor(T.self)
            if descriptor == BinaryRuntime.arrayDescriptor || descriptor == BinaryRuntime.dictionaryDescriptor,
               let collection = T.self as? any BinaryEncodableCollection.Type {
                return try encodeCollection(value, as: collection)
            }
            if BinaryRuntime.hasSpecialForm(T.self) {
                if encodeScalar(value) || encodeFoundationValue(value) { return }
            }
        } else if kind == BinaryRuntime.optionalKind, let optional = T.self as? any BinaryEncodableOptional.Type {
            return try encodeOptional(value, as: optional)
        }
        let mark = frames.count
        valueIsEnum = kind == BinaryRuntime.enumKind
        try value.encode(to: self)
        valueIsEnum = false
        if frames.count > mark { try closeFrames(keeping: mark) }
    }

    @inline(__always)
    func encodeCollection<T, C: BinaryEncodableCollection>(_ value: T, as _: C.Type) throws {
        try unsafeBitCast(value, to: C.self).binaryEncode(into: self)
    }

    @inline(__always)
    func encodeOptional<T, O: BinaryEncodableOptional>(_ value: T, as _: O.Type) throws {
        try unsafeBitCast(value, to: O.self).binaryEncode(into: self)
    }

    /// The remaining standard scalars (Int8...UInt128, Float); false when `value` is none of them.
    func encodeScalar<T: Encodable>(_ value: T) -> Bool {
        if T.self == Int8.self { bytes.append(UInt8(bitPattern: unsafeBitCast(value, to: Int8.self))) }
        else if T.self == Int16.self { writeSigned(Int64(unsafeBitCast(value, to: Int16.self))) }
        else if T.self == Int32.self { writeSigned(Int64(unsafeBitCast(value, to: Int32.self))) }
        else if T.self == Int64.self { writeSigned(unsafeBitCast(value, to: Int64.self)) }
        else if T.self == UInt.self { writeVarint(UInt64(unsafeBitCast(value, to: UInt.self))) }
        else if T.self == UInt8.self { bytes.append(unsafeBitCast(value, to: UInt8.self)) }
        else if T.self == UInt16.self { writeVarint(UInt64(unsafeBitCast(value, to: UInt16.self))) }
        else if T.self == UInt32.self { writeVarint(UInt64(unsafeBitCast(value, to: UInt32.self))) }
        else if T.self == UInt64.self { writeVarint(unsafeBitCast(value, to: UInt64.self)) }
        else if T.self == Float.self { writeFixed32(unsafeBitCast(value, to: Float.self).bitPattern) }
        else if T.self == Int128.self { writeSigned128(unsafeBitCast(value, to: Int128.self)) }
        else if T.self == UInt128.self { writeVarint128(unsafeBitCast(value, to: UInt128.self)) }
        else { return false }
        return true
    }

    /// Compact forms for Date, Data, UUID, URL and Decimal; false for any other type.
    func encodeFoundationValue<T: Encodable>(_ value: T) -> Bool {
        if T.self == Date.self {
            // The exact Double the Date holds: no precision is lost.
            writeFixed64(unsafeBitCast(value, to: Date.self).timeIntervalSinceReferenceDate.bitPattern)
        } else if T.self == Data.self {
            let data = unsafeBitCast(value, to: Data.self)
            writeVarint(UInt64(data.count))
            data.withUnsafeBytes { bytes.append(contentsOf: $0) }
        } else if T.self == UUID.self {
            withUnsafeBytes(of: unsafeBitCast(value, to: UUID.self).uuid) { bytes.append(contentsOf: $0) }
        } else if T.self == URL.self {
            let url = unsafeBitCast(value, to: URL.self)
            writeString(url.relativeString)
            if let base = url.baseURL {
                bytes.append(1)
                writeString(base.absoluteString)
            } else {
                bytes.append(0)
            }
        } else if T.self == Decimal.self {
            writeDecimal(unsafeBitCast(value, to: Decimal.self))
        } else {
            return false
        }
        return true
    }

    /// 0 + the decimal string (exact: `Decimal(string:)` reads back the same number), or 1 for NaN.
    func writeDecimal(_ decimal: Decimal) {
        if decimal.isNaN {
            bytes.append(1)
        } else {
            bytes.append(0)
            writeString(decimal.description)
        }
    }

    // MARK: Containers

    func openFrame(_ header: BinaryEncoderFrame.Header) -> (depth: Int, id: UInt32) {
        nextFrameID &+= 1
        frames.append(BinaryEncoderFrame(headerAt: bytes.count, header: header, id: nextFrameID))
        bytes.append(0)
        return (frames.count - 1, nextFrameID)
    }

    /// Closes every frame above the first `keeping` ones, patching their headers.
    func closeFrames(keeping: Int) throws {
        guard frames.count >= keeping else {
            throw EncodingError.invalidValue((), EncodingError.Context(
                codingPath: [], debugDescription: "a container was used after its value was finished"))
        }
        while frames.count > keeping {
            let frame = frames.removeLast()
            let value = frame.header == .byteLength ? bytes.count - frame.headerAt - 1 : frame.count
            if value < 0x80 {
                bytes[frame.headerAt] = UInt8(truncatingIfNeeded: value)
            } else {
                var header: [UInt8] = []
                var rest = UInt64(value)
                while rest >= 0x80 {
                    header.append(UInt8(truncatingIfNeeded: rest) | 0x80)
                    rest >>= 7
                }
                header.append(UInt8(truncatingIfNeeded: rest))
                bytes[frame.headerAt] = header[0]
                bytes.insert(contentsOf: header[1...], at: frame.headerAt + 1)
            }
        }
    }

    /// Makes the frame at `depth` the innermost open one, closing nested frames above it, and
    /// checks that the container writing is still the one that owns that frame.
    @inline(__always)
    func enter(_ depth: Int, _ id: UInt32) throws {
        if frames.count != depth + 1 { try closeFrames(keeping: depth + 1) }
        guard frames[depth].id == id else {
            throw EncodingError.invalidValue((), EncodingError.Context(
                codingPath: [], debugDescription: "a container was used after its value was finished"))
        }
    }

    /// `enter` for the non-throwing parts of the Encoder API: a misuse is reported at the end.
    func enterDeferred(_ depth: Int, _ id: UInt32) -> Bool {
        do {
            try enter(depth, id)
            return true
        } catch {
            if deferredError == nil { deferredError = error }
            return false
        }
    }

    func keyedContainer<Key: CodingKey>(_: Key.Type, ownerIsEnum: Bool) -> KeyedEncodingContainer<Key> {
        if ownerIsEnum || !BinaryRuntime.isEnum(Key.self) {
            let (depth, id) = openFrame(.count)
            return KeyedEncodingContainer(NamedKeyedEncoder<Key>(encoder: self, depth: depth, id: id))
        }
        let (depth, id) = openFrame(.byteLength)
        return KeyedEncodingContainer(PositionalKeyedEncoder<Key>(encoder: self, depth: depth, id: id))
    }

    func unkeyed() -> any UnkeyedEncodingContainer {
        let (depth, id) = openFrame(.count)
        return BinaryUnkeyedEncoder(encoder: self, depth: depth, id: id)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let ownerIsEnum = valueIsEnum
        valueIsEnum = false
        return keyedContainer(type, ownerIsEnum: ownerIsEnum)
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        valueIsEnum = false
        return unkeyed()
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        valueIsEnum = false
        return BinarySingleValueEncoder(encoder: self)
    }

    /// Writes a key of a keyed container that keeps its keys: 0 + string, or 1 + zigzag integer
    /// when the key is an integer whose string form is its decimal digits.
    func writeKey(_ key: some CodingKey) {
        if let int = key.intValue, key.stringValue == String(int) {
            bytes.append(1)
            writeSigned(Int64(int))
        } else {
            bytes.append(0)
            writeString(key.stringValue)
        }
    }
}

/// A keyed container of a struct or class: values only, in encoding order, after the byte
/// length of the whole container (so readers can skip fields they do not know).
struct PositionalKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: BinaryEncoderState
    let depth: Int
    let id: UInt32

    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil(forKey key: Key) throws { try encoder.enter(depth, id); encoder.bytes.append(0) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeBool(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeFixed64(value.bitPattern) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeFixed32(value.bitPattern) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try encoder.enter(depth, id); encoder.bytes.append(UInt8(bitPattern: value)) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeSigned(value) }
    mutating func encode(_ value: Int128, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeSigned128(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeVarint(UInt64(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try encoder.enter(depth, id); encoder.bytes.append(value) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeVarint(UInt64(value)) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeVarint(UInt64(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeVarint(value) }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { try encoder.enter(depth, id); encoder.writeVarint128(value) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try encoder.enter(depth, id); try encoder.encodeValue(value) }

    // Absent optionals still take a slot (a 0 byte): positions are the only field identity.
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws {
        try encoder.enter(depth, id)
        if let value { encoder.bytes.append(1); encoder.writeBool(value) } else { encoder.bytes.append(0) }
    }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws {
        try encoder.enter(depth, id)
        if let value { encoder.bytes.append(1); encoder.writeString(value) } else { encoder.bytes.append(0) }
    }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws {
        try encoder.enter(depth, id)
        if let value { encoder.bytes.append(1); encoder.writeSigned(Int64(value)) } else { encoder.bytes.append(0) }
    }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws {
        try encoder.enter(depth, id)
        if let value { encoder.bytes.append(1); encoder.writeFixed64(value.bitPattern) } else { encoder.bytes.append(0) }
    }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        try encoder.enter(depth, id)
        if let value { encoder.bytes.append(1); try encoder.encodeValue(value) } else { encoder.bytes.append(0) }
    }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { try encodeIfPresent(value as Float?, generic: ()) }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { try encodeIfPresent(value as Int8?, generic: ()) }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { try encodeIfPresent(value as Int16?, generic: ()) }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { try encodeIfPresent(value as Int32?, generic: ()) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { try encodeIfPresent(value as Int64?, generic: ()) }
    mutating func encodeIfPresent(_ value: Int128?, forKey key: Key) throws { try encodeIfPresent(value as Int128?, generic: ()) }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { try encodeIfPresent(value as UInt?, generic: ()) }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { try encodeIfPresent(value as UInt8?, generic: ()) }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { try encodeIfPresent(value as UInt16?, generic: ()) }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { try encodeIfPresent(value as UInt32?, generic: ()) }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { try encodeIfPresent(value as UInt64?, generic: ()) }
    mutating func encodeIfPresent(_ value: UInt128?, forKey key: Key) throws { try encodeIfPresent(value as UInt128?, generic: ()) }

    private mutating func encodeIfPresent<T: Encodable>(_ value: T?, generic: Void) throws {
        try encoder.enter(depth, id)
        if let value { encoder.bytes.append(1); try encoder.encodeValue(value) } else { encoder.bytes.append(0) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        _ = encoder.enterDeferred(depth, id)
        return encoder.keyedContainer(keyType, ownerIsEnum: false)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        _ = encoder.enterDeferred(depth, id)
        return encoder.unkeyed()
    }

    mutating func superEncoder() -> any Encoder {
        _ = encoder.enterDeferred(depth, id)
        return encoder
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        _ = encoder.enterDeferred(depth, id)
        return encoder
    }
}

/// A keyed container that keeps its keys (dictionaries coded through their own `encode(to:)`,
/// the case selector of an enum, dynamic keys): entry count, then key + value byte length + value
/// per entry, so a reader can list `allKeys` and read entries in any order.
struct NamedKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: BinaryEncoderState
    let depth: Int
    let id: UInt32

    var codingPath: [any CodingKey] { [] }

    private func beginEntry(_ key: Key) throws {
        try encoder.enter(depth, id)
        encoder.frames[depth].count += 1
        encoder.writeKey(key)
    }

    private func beginEntryDeferred(_ key: Key) {
        guard encoder.enterDeferred(depth, id) else { return }
        encoder.frames[depth].count += 1
        encoder.writeKey(key)
        _ = encoder.openFrame(.byteLength)
    }

    mutating func encodeNil(forKey key: Key) throws {
        try beginEntry(key)
        encoder.bytes.append(1)
        encoder.bytes.append(0)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try beginEntry(key)
        _ = encoder.openFrame(.byteLength)
        try encoder.encodeValue(value)
        try encoder.closeFrames(keeping: depth + 1)
    }

    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        // An absent value is simply not written: readers find the key missing.
        guard let value else { return }
        try encode(value, forKey: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        beginEntryDeferred(key)
        return encoder.keyedContainer(keyType, ownerIsEnum: false)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        beginEntryDeferred(key)
        return encoder.unkeyed()
    }

    mutating func superEncoder() -> any Encoder {
        // The key the standard library uses for `super` ("super", or 0 for integer keys).
        if let key = Key(stringValue: "super") ?? Key(intValue: 0) {
            beginEntryDeferred(key)
        } else if encoder.deferredError == nil {
            encoder.deferredError = EncodingError.invalidValue((), EncodingError.Context(
                codingPath: [], debugDescription: "\(Key.self) has no key for super"))
        }
        return encoder
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        beginEntryDeferred(key)
        return encoder
    }
}

/// An unkeyed container: element count, then the elements.
struct BinaryUnkeyedEncoder: UnkeyedEncodingContainer {
    let encoder: BinaryEncoderState
    let depth: Int
    let id: UInt32

    var codingPath: [any CodingKey] { [] }
    var count: Int { depth < encoder.frames.count ? encoder.frames[depth].count : 0 }

    @inline(__always)
    private func begin() throws {
        try encoder.enter(depth, id)
        encoder.frames[depth].count += 1
    }

    mutating func encodeNil() throws { try begin(); encoder.bytes.append(0) }
    mutating func encode(_ value: Bool) throws { try begin(); encoder.writeBool(value) }
    mutating func encode(_ value: String) throws { try begin(); encoder.writeString(value) }
    mutating func encode(_ value: Double) throws { try begin(); encoder.writeFixed64(value.bitPattern) }
    mutating func encode(_ value: Int) throws { try begin(); encoder.writeSigned(Int64(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { try begin(); try encoder.encodeValue(value) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        if encoder.enterDeferred(depth, id) { encoder.frames[depth].count += 1 }
        return encoder.keyedContainer(keyType, ownerIsEnum: false)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        if encoder.enterDeferred(depth, id) { encoder.frames[depth].count += 1 }
        return encoder.unkeyed()
    }

    mutating func superEncoder() -> any Encoder {
        if encoder.enterDeferred(depth, id) { encoder.frames[depth].count += 1 }
        return encoder
    }
}

/// The single-value container writes straight into the shared buffer.
struct BinarySingleValueEncoder: SingleValueEncodingContainer {
    let encoder: BinaryEncoderState

    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil() throws { encoder.bytes.append(0) }
    mutating func encode(_ value: Bool) throws { encoder.writeBool(value) }
    mutating func encode(_ value: String) throws { encoder.writeString(value) }
    mutating func encode(_ value: Double) throws { encoder.writeFixed64(value.bitPattern) }
    mutating func encode(_ value: Float) throws { encoder.writeFixed32(value.bitPattern) }
    mutating func encode(_ value: Int) throws { encoder.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int8) throws { encoder.bytes.append(UInt8(bitPattern: value)) }
    mutating func encode(_ value: Int16) throws { encoder.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int32) throws { encoder.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int64) throws { encoder.writeSigned(value) }
    mutating func encode(_ value: Int128) throws { encoder.writeSigned128(value) }
    mutating func encode(_ value: UInt) throws { encoder.writeVarint(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { encoder.bytes.append(value) }
    mutating func encode(_ value: UInt16) throws { encoder.writeVarint(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { encoder.writeVarint(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { encoder.writeVarint(value) }
    mutating func encode(_ value: UInt128) throws { encoder.writeVarint128(value) }
    mutating func encode<T: Encodable>(_ value: T) throws { try encoder.encodeValue(value) }
}
