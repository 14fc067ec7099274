/// The envelope: one self-describing binary format for an entry in every byte tier.
///
/// docs/format.md gives the layout byte by byte. ``encoded()`` produces it; ``init(decoding:)``
/// reads it back and never traps: truncated, bit-flipped, wrong-magic, wrong-version or
/// wrong-checksum input throws a ``TierCacheError``.
public struct CacheEntry: Hashable, Sendable {
    /// The four bytes every envelope starts with: "TCEN".
    public static let magic: [UInt8] = [0x54, 0x43, 0x45, 0x4E]
    /// The format version written by this build, and the only one it reads.
    public static let formatVersion: UInt8 = 1
    /// Bytes before the variable-length fields.
    static let fixedHeaderSize = 60
    /// The trailing XXH64 checksum.
    static let checksumSize = 8

    /// The key the entry belongs to (checked on read).
    public var key: CacheKey
    /// How the value was serialized.
    public var serializerID: SerializerID
    /// How the payload was compressed (``CodecID/identity`` when stored raw).
    public var codecID: CodecID
    /// The compression dictionary used, 0 for none.
    public var dictionaryID: UInt32
    /// When the value was built.
    public var createdAt: WallTime
    /// Until when the entry is fresh (soft expiry).
    public var freshUntil: WallTime
    /// Until when a stale entry may still be served if reloading fails (hard expiry).
    public var staleUntil: WallTime
    /// The payload's length after decompression.
    public var uncompressedLength: UInt64
    /// An optional entity tag, e.g. of the source the value was built from.
    public var etag: String?
    /// Optional user tags; stored sorted by name.
    public var tags: [String: String]
    /// The (possibly compressed) serialized value.
    public var payload: [UInt8]

    /// Creates an entry.
    public init(
        key: CacheKey,
        serializerID: SerializerID,
        codecID: CodecID,
        dictionaryID: UInt32 = 0,
        createdAt: WallTime,
        freshUntil: WallTime,
        staleUntil: WallTime,
        uncompressedLength: UInt64,
        etag: String? = nil,
        tags: [String: String] = [:],
        payload: [UInt8]
    ) {
        self.key = key
        self.serializerID = serializerID
        self.codecID = codecID
        self.dictionaryID = dictionaryID
        self.createdAt = createdAt
        self.freshUntil = freshUntil
        self.staleUntil = max(staleUntil, freshUntil)
        self.uncompressedLength = uncompressedLength
        self.etag = etag
        self.tags = tags
        self.payload = payload
    }

    /// The schema version of the value (the key's).
    public var schemaVersion: UInt32 { key.schemaVersion }

    /// Whether the entry is fresh at `now`.
    public func isFresh(at now: WallTime) -> Bool { now < freshUntil }
    /// Whether the entry may still be served, fresh or stale, at `now`.
    public func isUsable(at now: WallTime) -> Bool { now < staleUntil }
}

// MARK: - Encoding

extension CacheEntry {
    /// The envelope's bytes.
    public func encoded() -> [UInt8] {
        let namespace = Array(key.namespace.utf8)
        let name = Array(key.name.utf8)
        let etagBytes = etag.map { Array($0.utf8.prefix(Int(UInt16.max))) } ?? []
        let sortedTags = tags.sorted { $0.key < $1.key }.prefix(Int(UInt16.max)).map {
            (Array($0.key.utf8.prefix(Int(UInt16.max))), Array($0.value.utf8.prefix(Int(UInt16.max))))
        }
        let tagBytes = sortedTags.reduce(0) { $0 + 4 + $1.0.count + $1.1.count }
        let total = Self.fixedHeaderSize + namespace.count + name.count + etagBytes.count + tagBytes
            + payload.count + Self.checksumSize
        var out = [UInt8]()
        out.reserveCapacity(total)
        out += Self.magic
        out.append(Self.formatVersion)
        out.append(serializerID.rawValue)
        out.append(codecID.rawValue)
        out.append(0)  // flags, reserved
        out.appendLE(dictionaryID)
        out.appendLE(key.schemaVersion)
        out.appendLE(UInt64(bitPattern: createdAt.millisecondsSince1970))
        out.appendLE(UInt64(bitPattern: freshUntil.millisecondsSince1970))
        out.appendLE(UInt64(bitPattern: staleUntil.millisecondsSince1970))
        out.appendLE(uncompressedLength)
        out.appendLE(UInt32(payload.count))
        out.appendLE(UInt16(namespace.count))
        out.appendLE(UInt16(name.count))
        out.appendLE(UInt16(etagBytes.count))
        out.appendLE(UInt16(sortedTags.count))
        out += namespace
        out += name
        out += etagBytes
        for (k, v) in sortedTags {
            out.appendLE(UInt16(k.count))
            out.appendLE(UInt16(v.count))
            out += k
            out += v
        }
        out += payload
        out.appendLE(XXH64.hash(out))
        return out
    }

    /// Decodes and verifies an envelope.
    /// - Throws: ``TierCacheError`` (``TierCacheError/Code/malformedEntry``,
    ///   ``TierCacheError/Code/unsupportedFormatVersion``, ``TierCacheError/Code/checksumMismatch``
    ///   or ``TierCacheError/Code/invalidKey``); never traps, whatever the bytes.
    public init(decoding bytes: [UInt8]) throws(TierCacheError) {
        // withUnsafeBytes rethrows untyped errors, so the typed error travels in a Result.
        self = try bytes.withUnsafeBytes { buffer in Result { () throws(TierCacheError) in try Self.decode(buffer) } }.get()
    }

    /// Reads only the fixed header's expiry fields, without verifying the checksum: for sweeps and
    /// listings that must not read whole payloads. Returns nil when the bytes are not an envelope.
    public static func peekExpiry(_ prefix: [UInt8]) -> (freshUntil: WallTime, staleUntil: WallTime)? {
        guard prefix.count >= fixedHeaderSize, Array(prefix[0..<4]) == magic, prefix[4] == formatVersion else {
            return nil
        }
        return prefix.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            reader.offset = 24
            guard let fresh = reader.readLE(UInt64.self), let stale = reader.readLE(UInt64.self) else { return nil }
            return (WallTime(millisecondsSince1970: Int64(bitPattern: fresh)),
                    WallTime(millisecondsSince1970: Int64(bitPattern: stale)))
        }
    }

    private static func decode(_ raw: UnsafeRawBufferPointer) throws(TierCacheError) -> CacheEntry {
        guard raw.count >= fixedHeaderSize + checksumSize else {
            throw .malformedEntry("envelope is \(raw.count) bytes; the smallest is \(fixedHeaderSize + checksumSize)")
        }
        guard raw[0] == magic[0], raw[1] == magic[1], raw[2] == magic[2], raw[3] == magic[3] else {
            throw .malformedEntry("not an envelope: wrong magic")
        }
        guard raw[4] == formatVersion else {
            throw TierCacheError(.unsupportedFormatVersion, "envelope format version \(raw[4]); this build reads \(formatVersion)")
        }
        let body = UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count - checksumSize)])
        let stored = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - checksumSize, as: UInt64.self))
        guard XXH64.hash(body) == stored else {
            throw TierCacheError(.checksumMismatch, "envelope checksum does not match its bytes")
        }
        var r = ByteReader(body)
        r.offset = 5
        // The checksum matched, so the fixed header is all there; the reads below cannot fail.
        guard let serializer = r.readLE(UInt8.self), let codec = r.readLE(UInt8.self), let flags = r.readLE(UInt8.self),
              let dictionaryID = r.readLE(UInt32.self), let schema = r.readLE(UInt32.self),
              let created = r.readLE(UInt64.self), let fresh = r.readLE(UInt64.self), let stale = r.readLE(UInt64.self),
              let uncompressed = r.readLE(UInt64.self), let payloadLength = r.readLE(UInt32.self),
              let nsLength = r.readLE(UInt16.self), let nameLength = r.readLE(UInt16.self),
              let etagLength = r.readLE(UInt16.self), let tagCount = r.readLE(UInt16.self)
        else { throw .malformedEntry("truncated header") }
        guard flags == 0 else { throw .malformedEntry("unknown flags \(flags)") }
        guard let ns = r.readString(Int(nsLength)), let name = r.readString(Int(nameLength)) else {
            throw .malformedEntry("truncated or non-UTF-8 key")
        }
        let key = try CacheKey(namespace: ns, name: name, schemaVersion: schema)
        var etag: String?
        if etagLength > 0 {
            guard let value = r.readString(Int(etagLength)) else { throw .malformedEntry("truncated or non-UTF-8 etag") }
            etag = value
        }
        var tags: [String: String] = [:]
        for _ in 0..<tagCount {
            guard let kl = r.readLE(UInt16.self), let vl = r.readLE(UInt16.self),
                  let k = r.readString(Int(kl)), let v = r.readString(Int(vl))
            else { throw .malformedEntry("truncated or non-UTF-8 tag") }
            tags[k] = v
        }
        guard r.remaining == Int(payloadLength) else {
            throw .malformedEntry("payload length \(payloadLength) does not match the \(r.remaining) bytes present")
        }
        let payload = Array(UnsafeRawBufferPointer(rebasing: body[r.offset...]))
        let freshUntil = WallTime(millisecondsSince1970: Int64(bitPattern: fresh))
        let staleUntil = WallTime(millisecondsSince1970: Int64(bitPattern: stale))
        guard staleUntil >= freshUntil else { throw .malformedEntry("stale-until precedes fresh-until") }
        return CacheEntry(
            key: key, serializerID: SerializerID(rawValue: serializer), codecID: CodecID(rawValue: codec),
            dictionaryID: dictionaryID, createdAt: WallTime(millisecondsSince1970: Int64(bitPattern: created)),
            freshUntil: freshUntil, staleUntil: staleUntil, uncompressedLength: uncompressed,
            etag: etag, tags: tags, payload: payload
        )
    }
}

// MARK: - Decoding into a payload read on its own

extension CacheEntry {
    /// The length of the header (everything before the payload) of an envelope for `key` with no
    /// ETag and no tags: what a reader can predict before reading, to read the payload straight
    /// into its own array (``decode(header:payload:checksum:expecting:)``).
    package static func plainHeaderLength(for key: CacheKey) -> Int {
        fixedHeaderSize + key.namespace.utf8.count + key.name.utf8.count
    }

    /// Decodes an envelope read in three parts: `header` (its first
    /// ``plainHeaderLength(for:)`` bytes), `payload` and the 8-byte `checksum` that ends it,
    /// keeping `payload` as the entry's payload (no copy). Verifies exactly what
    /// ``init(decoding:)`` verifies: magic, version, the XXH64 checksum over header and payload,
    /// every length, flags and expiry order, and that the entry is `expected`'s (compared byte for
    /// byte).
    ///
    /// Returns nil, without throwing, whenever the bytes are not such an envelope for `expected`
    /// (corrupt, another key, an ETag or tags making the header longer, another version): the
    /// caller then decodes the whole file with ``init(decoding:)``, which says what is wrong.
    ///
    /// - Parameter verifiedChecksum: the checksum of bytes the caller has already verified and
    ///   knows to be these very bytes (the disk tier: the same file, unchanged since). When
    ///   `checksum` equals it the XXH64 pass is skipped; every other check is still made.
    package static func decode(
        header: UnsafeRawBufferPointer, payload: [UInt8], checksum: UInt64, expecting expected: CacheKey,
        verifiedChecksum: UInt64? = nil
    ) -> CacheEntry? {
        guard header.count == plainHeaderLength(for: expected), let base = header.baseAddress else { return nil }
        guard header[0] == magic[0], header[1] == magic[1], header[2] == magic[2], header[3] == magic[3],
              header[4] == formatVersion
        else { return nil }
        if checksum != verifiedChecksum {
            let computed = payload.withUnsafeBytes { XXH64.hash(header, $0) }
            guard computed == checksum else { return nil }
        }
        @inline(__always) func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        var namespace = expected.namespace
        var name = expected.name
        let nsCount = namespace.utf8.count
        let nameCount = name.utf8.count
        guard header[7] == 0,  // flags
              load(12, UInt32.self) == expected.schemaVersion,
              load(48, UInt32.self) == UInt32(truncatingIfNeeded: payload.count), payload.count <= Int(UInt32.max),
              load(52, UInt16.self) == UInt16(truncatingIfNeeded: nsCount),
              load(54, UInt16.self) == UInt16(truncatingIfNeeded: nameCount),
              load(56, UInt16.self) == 0, load(58, UInt16.self) == 0  // no ETag, no tags
        else { return nil }
        let keyMatches = namespace.withUTF8 { ns in
            name.withUTF8 { nm in
                UnsafeRawBufferPointer(rebasing: header[fixedHeaderSize..<(fixedHeaderSize + nsCount)]).elementsEqual(ns)
                    && UnsafeRawBufferPointer(rebasing: header[(fixedHeaderSize + nsCount)...]).elementsEqual(nm)
            }
        }
        guard keyMatches else { return nil }
        let freshUntil = WallTime(millisecondsSince1970: Int64(bitPattern: load(24, UInt64.self)))
        let staleUntil = WallTime(millisecondsSince1970: Int64(bitPattern: load(32, UInt64.self)))
        guard staleUntil >= freshUntil else { return nil }
        return CacheEntry(
            key: expected, serializerID: SerializerID(rawValue: header[5]), codecID: CodecID(rawValue: header[6]),
            dictionaryID: load(8, UInt32.self), createdAt: WallTime(millisecondsSince1970: Int64(bitPattern: load(16, UInt64.self))),
            freshUntil: freshUntil, staleUntil: staleUntil, uncompressedLength: load(40, UInt64.self),
            payload: payload
        )
    }
}

// MARK: - Byte helpers

extension Array where Element == UInt8 {
    @inline(__always)
    package mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

/// A bounds-checked little-endian reader: every read returns nil instead of reading past the end.
package struct ByteReader {
    package let buffer: UnsafeRawBufferPointer
    package var offset = 0

    package init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    package var remaining: Int { buffer.count - offset }

    @inline(__always)
    package mutating func readLE<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size, let base = buffer.baseAddress else { return nil }
        let value = T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += size
        return value
    }

    package mutating func readBytes(_ count: Int) -> UnsafeRawBufferPointer? {
        guard count >= 0, remaining >= count else { return nil }
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + count)])
        offset += count
        return slice
    }

    package mutating func readString(_ count: Int) -> String? {
        guard let bytes = readBytes(count) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
