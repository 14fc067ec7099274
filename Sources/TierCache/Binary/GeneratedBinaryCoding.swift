#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A type whose binary coding is generated at compile time by the `@GeneratedBinaryCoding`
/// macro (product `TierCacheMacros`), or one of the standard types the generated code builds on.
///
/// ``BinarySerializer`` uses this conformance instead of `Codable` when the value's type has it:
/// the generated code writes and reads exactly the bytes the `Codable` path would
/// (docs/binary-format.md), without containers, existentials or runtime type checks, several
/// times faster. Do not conform a type by hand: the guarantee that both paths agree comes from
/// the macro, which derives the code from the same declaration that synthesized `Codable` uses.
///
/// The standard scalars, `String`, `Bool`, `Array`, `Set`, `Dictionary` and `Optional` of
/// conforming types, and `Date`, `Data`, `UUID`, `URL`, `Decimal` conform here.
public protocol GeneratedBinaryCoding {
    /// Appends the value's bytes.
    func encodeBinary(to writer: inout BinarySerializer.Writer)

    /// Reads a value, as the `Codable` path reads one of this type anywhere in a payload.
    /// - Throws: ``TierCacheError`` (``TierCacheError/Code/serialization``) for malformed input.
    init(binaryFrom reader: inout BinarySerializer.Reader) throws(TierCacheError)

    /// Reads a value as a stored property of a struct or an associated value of an enum case:
    /// what synthesized `init(from:)` does with `decode(_:forKey:)`, or, for `Optional`,
    /// `decodeIfPresent(_:forKey:)` (a field missing at the end of the struct's bytes is `nil`).
    /// - Parameter name: the field's name, for the error when its value is missing.
    static func decodeBinaryField(from reader: inout BinarySerializer.Reader, named name: StaticString) throws(TierCacheError) -> Self
}

extension GeneratedBinaryCoding {
    /// A required field: there must be bytes left in the struct.
    @inlinable @inline(__always)
    public static func decodeBinaryField(from reader: inout BinarySerializer.Reader, named name: StaticString) throws(TierCacheError) -> Self {
        guard reader.cursor < reader.limit else { throw reader.missingField(name) }
        return try reader.decode(Self.self)
    }
}

// MARK: The writer

extension BinarySerializer {
    /// The byte buffer that generated `encodeBinary(to:)` code appends to. Public for the code the
    /// `@GeneratedBinaryCoding` macro writes into your module; not meant to be called by hand.
    public struct Writer {
        @usableFromInline var bytes: [UInt8]

        @inlinable
        init() {
            bytes = []
            bytes.reserveCapacity(256)
        }

        @inlinable @inline(__always)
        public mutating func writeByte(_ byte: UInt8) {
            bytes.append(byte)
        }

        @inlinable @inline(__always)
        public mutating func writeBool(_ value: Bool) {
            bytes.append(value ? 1 : 0)
        }

        /// Unsigned LEB128.
        @inlinable @inline(__always)
        public mutating func writeVarint(_ value: UInt64) {
            if value < 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value))
            } else {
                writeVarintSlow(value)
            }
        }

        @usableFromInline @inline(never)
        mutating func writeVarintSlow(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(truncatingIfNeeded: value))
        }

        /// Zigzag, then LEB128.
        @inlinable @inline(__always)
        public mutating func writeSigned(_ value: Int64) {
            writeVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
        }

        public mutating func writeVarint128(_ value: UInt128) {
            var value = value
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(truncatingIfNeeded: value))
        }

        public mutating func writeSigned128(_ value: Int128) {
            writeVarint128(UInt128(bitPattern: (value << 1) ^ (value >> 127)))
        }

        @inlinable @inline(__always)
        public mutating func writeFixed64(_ value: UInt64) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        @inlinable @inline(__always)
        public mutating func writeFixed32(_ value: UInt32) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        /// Length in UTF-8 bytes, then the UTF-8.
        @inlinable @inline(__always)
        public mutating func writeString(_ string: String) {
            var string = string
            string.withUTF8 { utf8 in
                writeVarint(UInt64(utf8.count))
                bytes.append(contentsOf: utf8)
            }
        }

        /// 0 + the decimal string, or 1 for NaN.
        public mutating func writeDecimal(_ decimal: Decimal) {
            if decimal.isNaN {
                bytes.append(1)
            } else {
                bytes.append(0)
                writeString(decimal.description)
            }
        }

        /// Appends any value with generated coding (the commonest leaf types in line, as
        /// ``Reader/decode(_:)`` reads them).
        @inlinable @inline(__always)
        public mutating func encode<T: GeneratedBinaryCoding>(_ value: T) {
            if T.self == String.self { return writeString(unsafeBitCast(value, to: String.self)) }
            if T.self == Int.self { return writeSigned(Int64(unsafeBitCast(value, to: Int.self))) }
            if T.self == Bool.self { return writeBool(unsafeBitCast(value, to: Bool.self)) }
            if T.self == Double.self { return writeFixed64(unsafeBitCast(value, to: Double.self).bitPattern) }
            value.encodeBinary(to: &self)
        }

        /// Opens a struct's body: a one-byte placeholder for its byte length. Returns where it is.
        @inlinable @inline(__always)
        public mutating func beginStruct() -> Int {
            let header = bytes.count
            bytes.append(0)
            return header
        }

        /// Closes a struct's body, writing its byte length into the placeholder (widened in place
        /// when the body passed 127 bytes).
        @inlinable @inline(__always)
        public mutating func endStruct(_ header: Int) {
            let length = bytes.count - header - 1
            if length < 0x80 {
                bytes[header] = UInt8(truncatingIfNeeded: length)
            } else {
                widenHeader(at: header, to: length)
            }
        }

        @usableFromInline @inline(never)
        mutating func widenHeader(at header: Int, to value: Int) {
            var varint: [UInt8] = []
            var rest = UInt64(value)
            while rest >= 0x80 {
                varint.append(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            varint.append(UInt8(truncatingIfNeeded: rest))
            bytes[header] = varint[0]
            bytes.insert(contentsOf: varint[1...], at: header + 1)
        }

        /// Opens an enum case as synthesized `Codable` writes it: a keyed container of one entry
        /// (count 1, the case name as its key, the entry's byte length) holding the positional
        /// container of the associated values (its byte length, then the values).
        @inlinable
        public mutating func beginEnumCase(_ name: StaticString) -> EnumCaseHeaders {
            bytes.append(1)
            bytes.append(0)
            name.withUTF8Buffer { utf8 in
                writeVarint(UInt64(utf8.count))
                bytes.append(contentsOf: utf8)
            }
            let entry = beginStruct()
            return EnumCaseHeaders(entry: entry, values: beginStruct())
        }

        /// Closes what ``beginEnumCase(_:)`` opened, innermost first.
        @inlinable @inline(__always)
        public mutating func endEnumCase(_ headers: EnumCaseHeaders) {
            endStruct(headers.values)
            endStruct(headers.entry)
        }

        /// The two placeholders an enum case opens.
        public struct EnumCaseHeaders {
            @usableFromInline let entry: Int
            @usableFromInline let values: Int

            @inlinable
            init(entry: Int, values: Int) {
                self.entry = entry
                self.values = values
            }
        }
    }
}

// MARK: The reader

extension BinarySerializer {
    /// The cursor that generated `init(binaryFrom:)` code reads with: every read is bounded by
    /// ``limit`` (the end of the innermost struct), every count is checked against the bytes that
    /// remain, and nesting is bounded by ``Configuration/maximumDepth``, exactly as in the
    /// `Codable` decoder. Public for the code the `@GeneratedBinaryCoding` macro writes into your
    /// module; not meant to be called by hand.
    public struct Reader {
        @usableFromInline let base: UnsafePointer<UInt8>
        /// The next byte to read.
        public var cursor: Int
        /// The end of the innermost container whose byte length is known.
        public var limit: Int
        @usableFromInline var depth: Int
        @usableFromInline let maximumDepth: Int

        @inlinable
        init(base: UnsafePointer<UInt8>, count: Int, maximumDepth: Int) {
            self.base = base
            self.cursor = 0
            self.limit = count
            self.depth = 0
            self.maximumDepth = maximumDepth
        }

        // MARK: Errors

        @usableFromInline
        func malformed(_ what: String) -> TierCacheError {
            TierCacheError(.serialization, "binary decoding failed at byte \(cursor): \(what)")
        }

        @usableFromInline @inline(never)
        func endOfInput() -> TierCacheError {
            malformed("unexpected end of input")
        }

        /// The error for a required field whose struct's bytes end before it.
        @inline(never)
        public func missingField(_ name: StaticString) -> TierCacheError {
            malformed("no value for \(name): the struct's bytes end before it")
        }

        // MARK: Primitives

        @inlinable
        var remaining: Int { limit - cursor }

        @inlinable @inline(__always)
        public mutating func readByte() throws(TierCacheError) -> UInt8 {
            guard cursor < limit else { throw endOfInput() }
            let byte = base[cursor]
            cursor += 1
            return byte
        }

        @inlinable @inline(__always)
        public mutating func readVarint() throws(TierCacheError) -> UInt64 {
            guard cursor < limit else { throw endOfInput() }
            let first = base[cursor]
            if first < 0x80 {
                cursor += 1
                return UInt64(first)
            }
            return try readVarintSlow()
        }

        @usableFromInline @inline(never)
        mutating func readVarintSlow() throws(TierCacheError) -> UInt64 {
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

        public mutating func readVarint128() throws(TierCacheError) -> UInt128 {
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

        @inlinable @inline(__always)
        public mutating func readSigned() throws(TierCacheError) -> Int64 {
            let raw = try readVarint()
            return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        }

        public mutating func readSigned128() throws(TierCacheError) -> Int128 {
            let raw = try readVarint128()
            return Int128(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        }

        @inlinable @inline(__always)
        public mutating func readInt<T: FixedWidthInteger & SignedInteger>(_: T.Type) throws(TierCacheError) -> T {
            let value = try readSigned()
            guard let result = T(exactly: value) else { throw doesNotFit(value, T.self) }
            return result
        }

        @inlinable @inline(__always)
        public mutating func readUInt<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(TierCacheError) -> T {
            let value = try readVarint()
            guard let result = T(exactly: value) else { throw doesNotFit(value, T.self) }
            return result
        }

        @usableFromInline @inline(never)
        func doesNotFit(_ value: some BinaryInteger, _ type: Any.Type) -> TierCacheError {
            malformed("integer \(value) does not fit \(type)")
        }

        @inlinable @inline(__always)
        public mutating func readFixed64() throws(TierCacheError) -> UInt64 {
            guard remaining >= 8 else { throw endOfInput() }
            let value = UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt64.self)
            cursor += 8
            return UInt64(littleEndian: value)
        }

        @inlinable @inline(__always)
        public mutating func readFixed32() throws(TierCacheError) -> UInt32 {
            guard remaining >= 4 else { throw endOfInput() }
            let value = UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt32.self)
            cursor += 4
            return UInt32(littleEndian: value)
        }

        @inlinable @inline(__always)
        public mutating func readBool() throws(TierCacheError) -> Bool {
            switch try readByte() {
            case 0: return false
            case 1: return true
            case let byte: throw malformed("\(byte) is not a Bool")
            }
        }

        /// A presence byte: 0 absent, 1 present.
        @inlinable @inline(__always)
        public mutating func readPresence() throws(TierCacheError) -> Bool {
            switch try readByte() {
            case 0: return false
            case 1: return true
            case let byte: throw malformed("\(byte) is not an optional's presence byte")
            }
        }

        /// A count or length, checked against the bytes that remain (at `minimumBytesEach` per
        /// item) before anyone allocates from it.
        @inlinable @inline(__always)
        public mutating func readCount(minimumBytesEach: Int = 1) throws(TierCacheError) -> Int {
            let value = try readVarint()
            // The common case (one byte per item) without a division.
            let most = minimumBytesEach == 1 ? remaining : remaining / minimumBytesEach
            guard value <= UInt64(most) else { throw countTooLarge(value) }
            return Int(value)
        }

        @usableFromInline @inline(never)
        func countTooLarge(_ value: UInt64) -> TierCacheError {
            malformed("count \(value) exceeds the \(remaining) bytes that remain")
        }

        @inlinable @inline(__always)
        public mutating func readString() throws(TierCacheError) -> String {
            let length = try readCount()
            let utf8 = UnsafeBufferPointer(start: base + cursor, count: length)
            // `_tryFromUTF8` is the validating initializer that `String(validating:as:)` ends in,
            // without the generic, unspecialized layers above it.
            guard let string = String._tryFromUTF8(utf8) else { throw malformed("invalid UTF-8") }
            cursor += length
            return string
        }

        /// `count` raw bytes (already checked against the input by the caller or here).
        @inlinable
        public mutating func readBytes(_ count: Int) throws(TierCacheError) -> [UInt8] {
            guard count <= remaining else { throw endOfInput() }
            let bytes = Array(UnsafeBufferPointer(start: base + cursor, count: count))
            cursor += count
            return bytes
        }

        public mutating func readData() throws(TierCacheError) -> Data {
            let count = try readCount()
            let data = Data(UnsafeBufferPointer(start: base + cursor, count: count))
            cursor += count
            return data
        }

        public mutating func readUUID() throws(TierCacheError) -> UUID {
            guard remaining >= 16 else { throw endOfInput() }
            var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &uuid) { $0.copyMemory(from: UnsafeRawBufferPointer(start: base + cursor, count: 16)) }
            cursor += 16
            return UUID(uuid: uuid)
        }

        public mutating func readURL() throws(TierCacheError) -> URL {
            let relative = try readString()
            var baseURL: URL?
            if try readPresence() {
                let baseString = try readString()
                guard let url = URL(string: baseString) else { throw malformed("invalid base URL") }
                baseURL = url
            }
            guard let url = URL(string: relative, relativeTo: baseURL) else { throw malformed("invalid URL") }
            return url
        }

        public mutating func readDecimal() throws(TierCacheError) -> Decimal {
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

        // MARK: Nesting

        /// One level deeper: every value the `Codable` decoder reaches through a container, an
        /// optional or a collection counts, so both paths refuse the same depth.
        @inlinable @inline(__always)
        public mutating func descend() throws(TierCacheError) {
            depth += 1
            guard depth <= maximumDepth else {
                depth -= 1
                throw tooDeep()
            }
        }

        @inlinable @inline(__always)
        public mutating func ascend() {
            depth -= 1
        }

        @usableFromInline @inline(never)
        func tooDeep() -> TierCacheError {
            malformed("nesting deeper than \(maximumDepth) levels")
        }

        /// Opens a struct's body: one level deeper, then its byte length, which becomes the limit.
        /// Returns the limit to restore.
        @inlinable @inline(__always)
        public mutating func beginStruct() throws(TierCacheError) -> Int {
            try descend()
            return try beginContainer()
        }

        @inlinable @inline(__always)
        mutating func beginContainer() throws(TierCacheError) -> Int {
            let length = try readCount()
            let parentLimit = limit
            limit = cursor + length
            return parentLimit
        }

        /// Closes a struct's body, skipping whatever fields the reader did not read (written by a
        /// newer version of the type).
        @inlinable @inline(__always)
        public mutating func endStruct(_ parentLimit: Int) {
            cursor = limit
            limit = parentLimit
            depth -= 1
        }

        /// Opens an enum value written by synthesized `Codable` (a keyed container whose one known
        /// entry names the case): one level deeper, then the entries are listed, keys this type
        /// does not know are skipped, and exactly one known key must remain. Positions the reader
        /// on the case's associated values (their container opened) and returns the case's index
        /// and what ``endEnumCase(_:)`` needs.
        /// - Parameter caseName: the name of the case at an index, nil past the last case.
        public mutating func beginEnumCase(named caseName: (Int) -> StaticString?) throws(TierCacheError) -> (index: Int, limits: EnumCaseLimits) {
            try descend()
            // Each entry takes at least three bytes (key tag, key, value length).
            let count = try readCount(minimumBytesEach: 3)
            var found: (index: Int, start: Int, end: Int)?
            var known = 0
            for _ in 0..<count {
                var index: Int?
                switch try readByte() {
                case 0:
                    index = try readCaseName(caseName)
                case 1:
                    // An integer key: synthesized keys of enum cases have no integer values.
                    _ = try readSigned()
                case let tag:
                    throw malformed("\(tag) is not a key tag")
                }
                let length = try readCount()
                let start = cursor
                cursor += length
                if let index {
                    known += 1
                    if found == nil { found = (index, start, start + length) }
                }
            }
            guard known == 1, let found else {
                throw malformed("an enum value needs exactly one known case, found \(known)")
            }
            let entriesEnd = cursor
            let parentLimit = limit
            cursor = found.start
            limit = found.end
            _ = try beginContainer()
            return (found.index, EnumCaseLimits(entriesEnd: entriesEnd, parentLimit: parentLimit))
        }

        /// Reads a key string and finds it among the case names: nil when it is none of them.
        /// Keys are validated as UTF-8 whether known or not, as the `Codable` decoder does.
        mutating func readCaseName(_ caseName: (Int) -> StaticString?) throws(TierCacheError) -> Int? {
            let length = try readCount()
            let utf8 = UnsafeBufferPointer(start: base + cursor, count: length)
            var index = 0
            while let name = caseName(index) {
                if name.utf8CodeUnitCount == length, name.withUTF8Buffer({ $0.elementsEqual(utf8) }) {
                    cursor += length
                    return index
                }
                index += 1
            }
            guard String._tryFromUTF8(utf8) != nil else { throw malformed("invalid UTF-8") }
            cursor += length
            return nil
        }

        /// Leaves an enum value: after all of its entries, in its parent's bounds.
        @inlinable @inline(__always)
        public mutating func endEnumCase(_ headers: EnumCaseLimits) {
            cursor = headers.entriesEnd
            limit = headers.parentLimit
            depth -= 1
        }

        /// Where an enum value's entries end and the limit to restore after it.
        public struct EnumCaseLimits {
            @usableFromInline let entriesEnd: Int
            @usableFromInline let parentLimit: Int

            @inlinable
            init(entriesEnd: Int, parentLimit: Int) {
                self.entriesEnd = entriesEnd
                self.parentLimit = parentLimit
            }
        }

        /// Collections reserve at most this many elements up front, whatever their (checked)
        /// count says: an element may be far larger in memory than its one encoded byte.
        @usableFromInline static let maximumReservation = 1024

        /// The error for an enum without cases (no value of it can exist).
        public func noCases(_ type: Any.Type) -> TierCacheError {
            malformed("\(type) has no cases")
        }

        /// A value of any type with generated coding.
        ///
        /// The commonest leaf types are read in line: once specialized, the comparisons fold away,
        /// where a call through the protocol across modules would not be inlined.
        @inlinable @inline(__always)
        public mutating func decode<T: GeneratedBinaryCoding>(_: T.Type = T.self) throws(TierCacheError) -> T {
            if T.self == String.self { return unsafeBitCast(try readString(), to: T.self) }
            if T.self == Int.self { return unsafeBitCast(try readInt(Int.self), to: T.self) }
            if T.self == Bool.self { return unsafeBitCast(try readBool(), to: T.self) }
            if T.self == Double.self { return unsafeBitCast(Double(bitPattern: try readFixed64()), to: T.self) }
            return try T(binaryFrom: &self)
        }

        /// A struct's field or an enum case's associated value (see
        /// ``GeneratedBinaryCoding/decodeBinaryField(from:named:)``); its type is inferred from
        /// the property it is assigned to.
        @inlinable @inline(__always)
        public mutating func decodeField<T: GeneratedBinaryCoding>(named name: StaticString) throws(TierCacheError) -> T {
            try T.decodeBinaryField(from: &self, named: name)
        }

        /// The error for a raw value no case of `type` has.
        public func invalidRawValue(_ value: some Any, of type: Any.Type) -> TierCacheError {
            malformed("\(value) is not a raw value of \(type)")
        }
    }
}
