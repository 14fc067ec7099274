#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The decoder reads straight from the caller's bytes through a cursor. Every read is bounded by
// `limit`, the end of the innermost container with a known byte length, so a lying length can
// never make it read outside its container, let alone outside the input; every count or length
// is checked against the bytes that remain before anything is allocated from it.

/// One open container on the decoder's stack.
struct BinaryDecoderFrame {
    /// Where the container ends, or the enclosing limit for containers without a byte length.
    let end: Int
    /// The limit to restore when the frame is popped.
    let parentLimit: Int
    /// Whether `end` is exact, so that popping skips any entries the reader did not consume.
    let exact: Bool
}

/// The state of one decoding run; it is also the `Decoder` handed to `init(from:)`.
final class BinaryDecoderState: Decoder {
    let base: UnsafePointer<UInt8>
    // One run is confined to one thread and never holds overlapping accesses to these, so the
    // dynamic exclusivity checks (a third of the run time when measured) are switched off.
    @exclusivity(unchecked) var cursor = 0
    @exclusivity(unchecked) var limit: Int
    @exclusivity(unchecked) var frames: [BinaryDecoderFrame] = []
    @exclusivity(unchecked) var depth = 0
    let maximumDepth: Int
    var valueIsEnum = false

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(base: UnsafePointer<UInt8>, count: Int, maximumDepth: Int) {
        self.base = base
        self.limit = count
        self.maximumDepth = maximumDepth
    }

    // MARK: Errors

    func malformed(_ what: String) -> TierCacheError {
        TierCacheError(.serialization, "binary decoding failed at byte \(cursor): \(what)")
    }

    // MARK: Primitive reads

    @inline(__always)
    var remaining: Int { limit - cursor }

    @inline(__always)
    func readByte() throws -> UInt8 {
        guard cursor < limit else { throw malformed("unexpected end of input") }
        let byte = base[cursor]
        cursor += 1
        return byte
    }

    @inline(__always)
    func readVarint() throws -> UInt64 {
        guard cursor < limit else { throw malformed("unexpected end of input") }
        let first = base[cursor]
        if first < 0x80 {
            cursor += 1
            return UInt64(first)
        }
        return try readVarintSlow()
    }

    @inline(never)
    func readVarintSlow() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readByte()
            if shift == 63 && byte > 1 { throw malformed("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw malformed("varint longer than 10 bytes") }
        }
    }

    func readVarint128() throws -> UInt128 {
        var result: UInt128 = 0
        var shift: UInt128 = 0
        while true {
            let byte = try readByte()
            if shift == 126 && byte > 3 { throw malformed("varint overflows 128 bits") }
            result |= UInt128(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 126 { throw malformed("varint longer than 19 bytes") }
        }
    }

    @inline(__always)
    func readSigned() throws -> Int64 {
        let raw = try readVarint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    func readSigned128() throws -> Int128 {
        let raw = try readVarint128()
        return Int128(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    func readInt<T: FixedWidthInteger & SignedInteger>(_: T.Type) throws -> T {
        let value = try readSigned()
        guard let result = T(exactly: value) else { throw malformed("integer \(value) does not fit \(T.self)") }
        return result
    }

    func readUInt<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws -> T {
        let value = try readVarint()
        guard let result = T(exactly: value) else { throw malformed("integer \(value) does not fit \(T.self)") }
        return result
    }

    @inline(__always)
    func readFixed64() throws -> UInt64 {
        guard remaining >= 8 else { throw malformed("unexpected end of input") }
        let value = UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt64.self)
        cursor += 8
        return UInt64(littleEndian: value)
    }

    @inline(__always)
    func readFixed32() throws -> UInt32 {
        guard remaining >= 4 else { throw malformed("unexpected end of input") }
        let value = UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt32.self)
        cursor += 4
        return UInt32(littleEndian: value)
    }

    @inline(__always)
    func readBool() throws -> Bool {
        switch try readByte() {
        case 0: return false
        case 1: return true
        case let byte: throw malformed("\(byte) is not a Bool")
        }
    }

    /// A presence byte: 0 absent, 1 present.
    @inline(__always)
    func readPresence() throws -> Bool {
        switch try readByte() {
        case 0: return false
        case 1: return true
        case let byte: throw malformed("\(byte) is not an optional's presence byte")
        }
    }

    /// A count or length, checked against the bytes that remain (at `minimumBytesEach` per item)
    /// before anyone allocates from it.
    @inline(__always)
    func readCount(minimumBytesEach: Int = 1) throws -> Int {
        let value = try readVarint()
        guard value <= UInt64(remaining / minimumBytesEach) else {
            throw malformed("count \(value) exceeds the \(remaining) bytes that remain")
        }
        return Int(value)
    }

    @inline(__always)
    func readString() throws -> String {
        let length = try readCount()
        let utf8 = UnsafeBufferPointer(start: base + cursor, count: length)
        // `_tryFromUTF8` is the validating initializer that `String(validating:as:)` ends in, without
        // the generic, unspecialized layers above it (they showed as a tenth of decoding time).
        guard let string = String._tryFromUTF8(utf8) else { throw malformed("invalid UTF-8") }
        cursor += length
        return string
    }

    func readBytes(_ count: Int) throws -> [UInt8] {
        guard count <= remaining else { throw malformed("unexpected end of input") }
        let bytes = Array(UnsafeBufferPointer(start: base + cursor, count: count))
        cursor += count
        return bytes
    }

    // MARK: Values

    func decodeValue<T: Decodable>(_: T.Type) throws -> T {
        let kind = BinaryRuntime.kind(T.self)
        if kind == BinaryRuntime.structKind {
            if T.self == String.self { return unsafeBitCast(try readString(), to: T.self) }
            if T.self == Int.self { return unsafeBitCast(try readInt(Int.self), to: T.self) }
            if T.self == Bool.self { return unsafeBitCast(try readBool(), to: T.self) }
            if T.self == Double.self { return unsafeBitCast(Double(bitPattern: try readFixed64()), to: T.self) }
            let descriptor = BinaryRuntime.descriptor(T.self)
            if descriptor == BinaryRuntime.arrayDescriptor || descriptor == BinaryRuntime.dictionaryDescriptor,
               let collection = T.self as? any BinaryDecodableCollection.Type {
                try descend()
                defer { depth -= 1 }
                return try decodeCollection(collection, as: T.self)
            }
            // Checked first so the common case (a struct of the caller's) never builds `T?`.
            if BinaryRuntime.hasSpecialForm(T.self) { return try decodeSpecialForm(T.self) }
        } else if kind == BinaryRuntime.optionalKind, let optional = T.self as? any BinaryDecodableOptional.Type {
            try descend()
            defer { depth -= 1 }
            return try decodeOptional(optional, as: T.self)
        }
        try descend()
        defer { depth -= 1 }
        let mark = frames.count
        valueIsEnum = kind == BinaryRuntime.enumKind
        let value = try T(from: self)
        valueIsEnum = false
        if frames.count > mark { popFrames(keeping: mark) }
        return value
    }

    @inline(__always)
    func descend() throws {
        depth += 1
        guard depth <= maximumDepth else {
            depth -= 1
            throw malformed("nesting deeper than \(maximumDepth) levels")
        }
    }

    @inline(__always)
    func decodeCollection<T, C: BinaryDecodableCollection>(_: C.Type, as _: T.Type) throws -> T {
        unsafeBitCast(try C.binaryDecode(from: self), to: T.self)
    }

    @inline(__always)
    func decodeOptional<T, O: BinaryDecodableOptional>(_: O.Type, as _: T.Type) throws -> T {
        unsafeBitCast(try O.binaryDecode(from: self), to: T.self)
    }

    /// The remaining standard scalars and the Foundation value types with compact forms; only
    /// called for the types `BinaryRuntime.hasSpecialForm` accepts.
    func decodeSpecialForm<T: Decodable>(_: T.Type) throws -> T {
        if T.self == Int8.self { return unsafeBitCast(Int8(bitPattern: try readByte()), to: T.self) }
        if T.self == Int16.self { return unsafeBitCast(try readInt(Int16.self), to: T.self) }
        if T.self == Int32.self { return unsafeBitCast(try readInt(Int32.self), to: T.self) }
        if T.self == Int64.self { return unsafeBitCast(try readSigned(), to: T.self) }
        if T.self == UInt.self { return unsafeBitCast(try readUInt(UInt.self), to: T.self) }
        if T.self == UInt8.self { return unsafeBitCast(try readByte(), to: T.self) }
        if T.self == UInt16.self { return unsafeBitCast(try readUInt(UInt16.self), to: T.self) }
        if T.self == UInt32.self { return unsafeBitCast(try readUInt(UInt32.self), to: T.self) }
        if T.self == UInt64.self { return unsafeBitCast(try readVarint(), to: T.self) }
        if T.self == Float.self { return unsafeBitCast(Float(bitPattern: try readFixed32()), to: T.self) }
        if T.self == Int128.self { return unsafeBitCast(try readSigned128(), to: T.self) }
        if T.self == UInt128.self { return unsafeBitCast(try readVarint128(), to: T.self) }
        if T.self == Date.self {
            return unsafeBitCast(Date(timeIntervalSinceReferenceDate: Double(bitPattern: try readFixed64())), to: T.self)
        }
        if T.self == Data.self {
            let count = try readCount()
            let data = Data(UnsafeBufferPointer(start: base + cursor, count: count))
            cursor += count
            return unsafeBitCast(data, to: T.self)
        }
        if T.self == UUID.self {
            guard remaining >= 16 else { throw malformed("unexpected end of input") }
            var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &uuid) { $0.copyMemory(from: UnsafeRawBufferPointer(start: base + cursor, count: 16)) }
            cursor += 16
            return unsafeBitCast(UUID(uuid: uuid), to: T.self)
        }
        if T.self == URL.self {
            let relative = try readString()
            var base: URL?
            if try readPresence() {
                let baseString = try readString()
                guard let url = URL(string: baseString) else { throw malformed("invalid base URL") }
                base = url
            }
            guard let url = URL(string: relative, relativeTo: base) else { throw malformed("invalid URL") }
            return unsafeBitCast(url, to: T.self)
        }
        if T.self == Decimal.self {
            return unsafeBitCast(try readDecimal(), to: T.self)
        }
        throw malformed("no compact form for \(T.self)")
    }

    func readDecimal() throws -> Decimal {
        switch try readByte() {
        case 0:
            let string = try readString()
            guard let decimal = Decimal(string: string) else { throw malformed("invalid Decimal") }
            return decimal
        case 1:
            return Decimal.nan
        case let tag:
            throw malformed("\(tag) is not a Decimal form")
        }
    }

    // MARK: Containers

    func pushFrame(end: Int, exact: Bool) {
        frames.append(BinaryDecoderFrame(end: end, parentLimit: limit, exact: exact))
        limit = end
    }

    /// Pops every frame above the first `keeping`, skipping the unread rest of exact ones.
    func popFrames(keeping: Int) {
        while frames.count > keeping {
            let frame = frames.removeLast()
            if frame.exact { cursor = frame.end }
            limit = frame.parentLimit
        }
    }

    /// Makes the frame at `depth` the innermost one; false when it is gone (a stale container).
    @inline(__always)
    func enter(_ depth: Int) throws {
        if frames.count != depth + 1 {
            guard frames.count > depth else { throw malformed("a container was used after its value was finished") }
            popFrames(keeping: depth + 1)
        }
    }

    func keyedContainer<Key: CodingKey>(_: Key.Type, ownerIsEnum: Bool) throws -> KeyedDecodingContainer<Key> {
        if ownerIsEnum || !BinaryRuntime.isEnum(Key.self) {
            return KeyedDecodingContainer(try NamedKeyedDecoder<Key>(decoder: self))
        }
        let length = try readCount()
        pushFrame(end: cursor + length, exact: true)
        return KeyedDecodingContainer(PositionalKeyedDecoder<Key>(decoder: self, depth: frames.count - 1))
    }

    func unkeyed() throws -> any UnkeyedDecodingContainer {
        let count = try readCount()
        pushFrame(end: limit, exact: false)
        return BinaryUnkeyedDecoder(decoder: self, depth: frames.count - 1, total: count)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let ownerIsEnum = valueIsEnum
        valueIsEnum = false
        return try keyedContainer(type, ownerIsEnum: ownerIsEnum)
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        valueIsEnum = false
        return try unkeyed()
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        valueIsEnum = false
        return BinarySingleValueDecoder(decoder: self)
    }

    /// `decodeNil` everywhere: a 0 byte is nil (consumed), a 1 byte is the presence byte of a
    /// value that follows (consumed), anything else is a value (not consumed).
    func decodeNilMarker() -> Bool {
        guard cursor < limit else { return true }
        switch base[cursor] {
        case 0:
            cursor += 1
            return true
        case 1:
            cursor += 1
            return false
        default:
            return false
        }
    }
}

func keyNotFound(_ key: some CodingKey) -> DecodingError {
    DecodingError.keyNotFound(key, DecodingError.Context(codingPath: [], debugDescription: "no value for key \(key.stringValue)"))
}

/// Positional keyed container: the n-th decode reads the n-th value written.
struct PositionalKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: BinaryDecoderState
    let depth: Int

    var codingPath: [any CodingKey] { [] }
    /// Positional containers do not know their keys.
    var allKeys: [Key] { [] }

    /// Whether a value remains for this position. It cannot tell keys apart.
    func contains(_ key: Key) -> Bool {
        guard (try? decoder.enter(depth)) != nil else { return false }
        return decoder.cursor < decoder.limit
    }

    @inline(__always)
    private func next(_ key: Key) throws {
        try decoder.enter(depth)
        guard decoder.cursor < decoder.limit else { throw keyNotFound(key) }
    }

    /// Whether a value remains, for `decodeIfPresent`: a field missing at the end is nil.
    @inline(__always)
    private func present() throws -> Bool {
        try decoder.enter(depth)
        guard decoder.cursor < decoder.limit else { return false }
        return try decoder.readPresence()
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try decoder.enter(depth)
        return decoder.decodeNilMarker()
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try next(key); return try decoder.readBool() }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try next(key); return try decoder.readString() }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try next(key); return Double(bitPattern: try decoder.readFixed64()) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try next(key); return Float(bitPattern: try decoder.readFixed32()) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try next(key); return try decoder.readInt(Int.self) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try next(key); return Int8(bitPattern: try decoder.readByte()) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try next(key); return try decoder.readInt(Int16.self) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try next(key); return try decoder.readInt(Int32.self) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try next(key); return try decoder.readSigned() }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try next(key); return try decoder.readSigned128() }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try next(key); return try decoder.readUInt(UInt.self) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try next(key); return try decoder.readByte() }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try next(key); return try decoder.readUInt(UInt16.self) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try next(key); return try decoder.readUInt(UInt32.self) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try next(key); return try decoder.readVarint() }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try next(key); return try decoder.readVarint128() }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try next(key); return try decoder.decodeValue(T.self) }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try present() ? try decoder.readBool() : nil }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try present() ? try decoder.readString() : nil }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try present() ? try decoder.readInt(Int.self) : nil }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? {
        try present() ? Double(bitPattern: try decoder.readFixed64()) : nil
    }
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        try present() ? try decoder.decodeValue(T.self) : nil
    }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try generic(type) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try generic(type) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try generic(type) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try generic(type) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try generic(type) }
    func decodeIfPresent(_ type: Int128.Type, forKey key: Key) throws -> Int128? { try generic(type) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try generic(type) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try generic(type) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try generic(type) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try generic(type) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try generic(type) }
    func decodeIfPresent(_ type: UInt128.Type, forKey key: Key) throws -> UInt128? { try generic(type) }

    private func generic<T: Decodable>(_ type: T.Type) throws -> T? {
        try present() ? try decoder.decodeValue(T.self) : nil
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try next(key)
        return try decoder.keyedContainer(type, ownerIsEnum: false)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try next(key)
        return try decoder.unkeyed()
    }

    func superDecoder() throws -> any Decoder {
        try decoder.enter(depth)
        return decoder
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try next(key)
        return decoder
    }
}

/// The entries of a keyed container that keeps its keys, found when it is opened.
final class NamedEntries<Key: CodingKey> {
    struct Entry {
        let key: Key
        let start: Int
        let end: Int
    }
    var entries: [Entry] = []
    var hint = 0

    func find(_ key: Key) -> Entry? {
        if hint < entries.count, entries[hint].key.stringValue == key.stringValue {
            hint += 1
            return entries[hint - 1]
        }
        for (index, entry) in entries.enumerated() where entry.key.stringValue == key.stringValue {
            hint = index + 1
            return entry
        }
        return nil
    }
}

/// A keyed container with keys: random access by key.
struct NamedKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: BinaryDecoderState
    let depth: Int
    let table = NamedEntries<Key>()

    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { table.entries.map(\.key) }

    init(decoder: BinaryDecoderState) throws {
        self.decoder = decoder
        // Each entry takes at least three bytes (key tag, key, value length).
        let count = try decoder.readCount(minimumBytesEach: 3)
        table.entries.reserveCapacity(min(count, BinaryRuntime.maximumReservation))
        for _ in 0..<count {
            let key: Key?
            switch try decoder.readByte() {
            case 0:
                key = Key(stringValue: try decoder.readString())
            case 1:
                let int = try decoder.readSigned()
                guard let value = Int(exactly: int) else { throw decoder.malformed("key out of range") }
                key = Key(intValue: value) ?? Key(stringValue: String(value))
            case let tag:
                throw decoder.malformed("\(tag) is not a key tag")
            }
            let length = try decoder.readCount()
            let start = decoder.cursor
            decoder.cursor += length
            // Keys this type does not know are skipped, as JSON skips unknown members.
            if let key { table.entries.append(.init(key: key, start: start, end: start + length)) }
        }
        decoder.pushFrame(end: decoder.cursor, exact: true)
        depth = decoder.frames.count - 1
    }

    func contains(_ key: Key) -> Bool { table.find(key) != nil }

    /// Positions the cursor on `key`'s value, bounded by its length, in a frame of its own.
    private func seek(_ key: Key) throws {
        try decoder.enter(depth)
        guard let entry = table.find(key) else { throw keyNotFound(key) }
        decoder.cursor = entry.start
        decoder.pushFrame(end: entry.end, exact: true)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try seek(key)
        return decoder.decodeNilMarker()
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try seek(key)
        return try decoder.decodeValue(T.self)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        return try decode(T.self, forKey: key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try seek(key)
        return try decoder.keyedContainer(type, ownerIsEnum: false)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try seek(key)
        return try decoder.unkeyed()
    }

    func superDecoder() throws -> any Decoder {
        guard let key = Key(stringValue: "super") ?? Key(intValue: 0) else { throw decoder.malformed("no super key") }
        try seek(key)
        return decoder
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try seek(key)
        return decoder
    }
}

/// An unkeyed container: a count, then that many values.
struct BinaryUnkeyedDecoder: UnkeyedDecodingContainer {
    let decoder: BinaryDecoderState
    let depth: Int
    let total: Int
    var currentIndex = 0

    var codingPath: [any CodingKey] { [] }
    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    private mutating func next() throws {
        try decoder.enter(depth)
        guard currentIndex < total else {
            throw DecodingError.valueNotFound(Any.self, DecodingError.Context(codingPath: [], debugDescription: "unkeyed container is at its end"))
        }
        currentIndex += 1
    }

    mutating func decodeNil() throws -> Bool {
        try decoder.enter(depth)
        guard currentIndex < total else { return false }
        let isNil = decoder.decodeNilMarker()
        if isNil { currentIndex += 1 }
        return isNil
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(); return try decoder.readBool() }
    mutating func decode(_ type: String.Type) throws -> String { try next(); return try decoder.readString() }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(); return Double(bitPattern: try decoder.readFixed64()) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(); return try decoder.readInt(Int.self) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next(); return try decoder.decodeValue(T.self) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next()
        return try decoder.keyedContainer(type, ownerIsEnum: false)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next()
        return try decoder.unkeyed()
    }

    mutating func superDecoder() throws -> any Decoder {
        try next()
        return decoder
    }
}

/// The single-value container reads straight from the cursor.
struct BinarySingleValueDecoder: SingleValueDecodingContainer {
    let decoder: BinaryDecoderState

    var codingPath: [any CodingKey] { [] }

    func decodeNil() -> Bool { decoder.decodeNilMarker() }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.readBool() }
    func decode(_ type: String.Type) throws -> String { try decoder.readString() }
    func decode(_ type: Double.Type) throws -> Double { Double(bitPattern: try decoder.readFixed64()) }
    func decode(_ type: Float.Type) throws -> Float { Float(bitPattern: try decoder.readFixed32()) }
    func decode(_ type: Int.Type) throws -> Int { try decoder.readInt(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { Int8(bitPattern: try decoder.readByte()) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.readInt(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.readInt(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.readSigned() }
    func decode(_ type: Int128.Type) throws -> Int128 { try decoder.readSigned128() }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.readUInt(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.readByte() }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.readUInt(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.readUInt(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.readVarint() }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try decoder.readVarint128() }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(T.self) }
}
