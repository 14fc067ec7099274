import Testing
@testable import TierCache

@Suite struct XXH64Tests {
    // Reference values from the xxHash C library (through Python's xxhash binding).
    @Test(arguments: [
        (0, UInt64(0), UInt64(0xEF46_DB37_51D8_E999)),
        (1, 0, 0xD24E_C4F1_A98C_6E5B),
        (3, 0, 0x44BC_2CF5_AD77_0999),
        (43, 0, 0x0B24_2D36_1FDA_71BC),
        (768, 0, 0x8E03_C838_C596_036F),
        (0, 7, 0x95F0_626F_6F0A_4409),
        (3, 7, 0x9E75_5206_1566_76D7),
        (43, 7, 0x7322_9526_FB86_A735),
        (768, 7, 0xB1E1_0F6C_5294_CD6B),
    ])
    func referenceVectors(length: Int, seed: UInt64, expected: UInt64) {
        let input: [UInt8] = switch length {
        case 1: Array("a".utf8)
        case 3: Array("abc".utf8)
        case 43: Array("The quick brown fox jumps over the lazy dog".utf8)
        case 768: (0..<768).map { UInt8($0 % 256) }
        default: []
        }
        #expect(XXH64.hash(input, seed: seed) == expected)
    }

    @Test func twoBuffersHashAsTheirConcatenation() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for length in Array(0...100) + [255, 1000, 4133] {
            let bytes = (0..<length).map { _ -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 33)
            }
            for seed: UInt64 in [0, 7] {
                let whole = XXH64.hash(bytes, seed: seed)
                for cut in 0...length {
                    let split = bytes.withUnsafeBytes { raw in
                        XXH64.hash(UnsafeRawBufferPointer(rebasing: raw[..<cut]), UnsafeRawBufferPointer(rebasing: raw[cut...]), seed: seed)
                    }
                    #expect(split == whole, "length \(length), cut at \(cut), seed \(seed)")
                }
            }
        }
    }
}

@Suite struct CacheKeyTests {
    @Test func rendersDeterministically() throws {
        let a = try CacheKey(namespace: "reports", name: "endpoints/model", schemaVersion: 3)
        let b = try CacheKey(namespace: "reports", name: "endpoints/model", schemaVersion: 3)
        #expect(a.rendered == "reports/endpoints/model#v3")
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(a.fingerprint == b.fingerprint)
        #expect(a.fingerprint.count == 32)
        #expect(a.fingerprint.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        let other = try CacheKey(namespace: "reports", name: "endpoints/model", schemaVersion: 4)
        #expect(other != a)
        #expect(other.fingerprint != a.fingerprint)
    }

    @Test func fingerprintIsTheTwoHashesOfTheRenderingInHex() throws {
        // File and object names already on disk and in S3 depend on this exact spelling.
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        for (namespace, name, version) in [
            ("ns", "a", UInt32(1)), ("reports", "endpoints/model", 0), ("x", "ünïcødé/🚀", 10),
            ("n-s_1.2", String(repeating: "k", count: 4096), UInt32.max), ("ns", "v", 999_999_999),
        ] {
            let key = try CacheKey(namespace: namespace, name: name, schemaVersion: version)
            let rendered = "\(namespace)/\(name)#v\(version)"
            #expect(key.rendered == rendered)
            #expect(key.fingerprint == hex(XXH64.hash(rendered, seed: 0)) + hex(XXH64.hash(rendered, seed: 0x7469_6572_6361_6368)))
        }
    }

    @Test(arguments: [
        ("", "x"), ("ns/x", "x"), (".", "x"), ("..", "x"), ("näme", "x"), (String(repeating: "n", count: 65), "x"),
        ("ns", ""), ("ns", "a\u{0}b"), ("ns", "line\nbreak"), ("ns", "del\u{7F}"), ("ns", "c1\u{85}"),
        ("ns", String(repeating: "é", count: 2049)),
    ])
    func rejectsInvalidParts(namespace: String, name: String) {
        #expect(throws: TierCacheError.self) { try CacheKey(namespace: namespace, name: name) }
        do {
            _ = try CacheKey(namespace: namespace, name: name)
        } catch {
            #expect(error.code == .invalidKey)
            #expect(!error.message.isEmpty)
        }
    }

    @Test func acceptsOddButValidNames() throws {
        for name in ["../../etc/passwd", "ünïcødé/🚀", String(repeating: "k", count: 4096), " spaced ", "a%2Fb?c=d#e"] {
            let key = try CacheKey(namespace: "ns", name: name)
            #expect(key.name == name)
        }
    }
}

@Suite struct EnvelopeTests {
    static func sample(payload: [UInt8] = Array("hello, envelope".utf8)) throws -> CacheEntry {
        CacheEntry(
            key: try CacheKey(namespace: "ns", name: "some/key", schemaVersion: 7),
            serializerID: .binary, codecID: .zstd, dictionaryID: 42,
            createdAt: WallTime(millisecondsSince1970: 1_700_000_000_000),
            freshUntil: WallTime(millisecondsSince1970: 1_700_000_900_000),
            staleUntil: WallTime(millisecondsSince1970: 1_700_003_600_000),
            uncompressedLength: 99, etag: "\"abc\"", tags: ["team": "reports", "build": "42"],
            payload: payload
        )
    }

    @Test func roundTrips() throws {
        let entry = try Self.sample()
        let decoded = try CacheEntry(decoding: entry.encoded())
        #expect(decoded == entry)
        #expect(decoded.schemaVersion == 7)
        #expect(entry.encoded() == entry.encoded())  // deterministic, tags sorted
        let empty = try Self.sample(payload: [])
        #expect(try CacheEntry(decoding: empty.encoded()) == empty)
    }

    @Test func peekExpiryReadsTheHeaderOnly() throws {
        let entry = try Self.sample()
        let prefix = Array(entry.encoded().prefix(60))
        let expiry = try #require(CacheEntry.peekExpiry(prefix))
        #expect(expiry.freshUntil == entry.freshUntil)
        #expect(expiry.staleUntil == entry.staleUntil)
        #expect(CacheEntry.peekExpiry(Array(prefix.prefix(59))) == nil)
        #expect(CacheEntry.peekExpiry(Array(repeating: 0, count: 60)) == nil)
    }

    @Test func everyTruncationIsATypedError() throws {
        let bytes = try Self.sample().encoded()
        for length in 0..<bytes.count {
            #expect(throws: TierCacheError.self) { try CacheEntry(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: TierCacheError.self) { try CacheEntry(decoding: bytes + [0]) }
    }

    @Test func everyBitFlipIsDetected() throws {
        let bytes = try Self.sample().encoded()
        for index in bytes.indices {
            for bit in 0..<8 {
                var mutated = bytes
                mutated[index] ^= UInt8(1 << bit)
                #expect(throws: TierCacheError.self) { try CacheEntry(decoding: mutated) }
            }
        }
    }

    @Test func wrongMagicVersionAndChecksumHaveTheirCodes() throws {
        var bytes = try Self.sample().encoded()
        var wrongMagic = bytes
        wrongMagic[0] = UInt8(ascii: "X")
        #expect(code(of: wrongMagic) == .malformedEntry)
        var wrongVersion = bytes
        wrongVersion[4] = 2
        #expect(code(of: wrongVersion) == .unsupportedFormatVersion)
        bytes[bytes.count - 20] ^= 0xFF
        #expect(code(of: bytes) == .checksumMismatch)
    }

    @Test func randomBytesNeverTrap() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let valid = (try? Self.sample().encoded()) ?? []
        for round in 0..<5_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if round % 4 == 0, bytes.count >= 5 { bytes.replaceSubrange(0..<5, with: CacheEntry.magic + [1]) }
            } else {
                bytes = valid
                for _ in 0..<(1 + rng.next() % 4) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            if let entry = try? CacheEntry(decoding: bytes) {
                // Only an unmodified envelope may decode.
                #expect(entry.encoded() == bytes)
            }
        }
    }

    private func code(of bytes: [UInt8]) -> TierCacheError.Code? {
        do {
            _ = try CacheEntry(decoding: bytes)
            return nil
        } catch {
            return error.code
        }
    }
}

@Suite struct SplitDecodeTests {
    static func plain(_ key: CacheKey, payload: [UInt8]) -> CacheEntry {
        CacheEntry(
            key: key, serializerID: .binary, codecID: .lz4, dictionaryID: 3,
            createdAt: WallTime(millisecondsSince1970: 1_700_000_000_000),
            freshUntil: WallTime(millisecondsSince1970: 1_700_000_900_000),
            staleUntil: WallTime(millisecondsSince1970: 1_700_003_600_000),
            uncompressedLength: 1234, payload: payload)
    }

    /// Splits `bytes` as a reader that predicted the header from `key` does.
    static func decode(_ bytes: [UInt8], expecting key: CacheKey) -> CacheEntry? {
        let headerLength = CacheEntry.plainHeaderLength(for: key)
        guard bytes.count >= headerLength + 8 else { return nil }
        let payload = Array(bytes[headerLength..<(bytes.count - 8)])
        let checksum = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self)) }
        return bytes.withUnsafeBytes { raw in
            CacheEntry.decode(header: UnsafeRawBufferPointer(rebasing: raw[..<headerLength]), payload: payload, checksum: checksum, expecting: key)
        }
    }

    @Test func agreesWithTheWholeDecode() throws {
        let key = try CacheKey(namespace: "ns", name: "ünï/key", schemaVersion: 5)
        for size in [0, 1, 31, 32, 100, 5000] {
            let entry = Self.plain(key, payload: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13) })
            let bytes = entry.encoded()
            let split = try #require(Self.decode(bytes, expecting: key))
            #expect(split == entry)
            #expect(split == (try CacheEntry(decoding: bytes)))
        }
    }

    @Test func everyBitFlipIsRefused() throws {
        let key = try CacheKey(namespace: "ns", name: "flip")
        let bytes = Self.plain(key, payload: Array(0..<40)).encoded()
        for bit in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(Self.decode(flipped, expecting: key) == nil, "bit \(bit)")
        }
    }

    @Test func anotherKeyAnETagOrTagsAreLeftToTheWholeDecode() throws {
        let key = try CacheKey(namespace: "ns", name: "aaaa", schemaVersion: 2)
        let payload = Array("payload".utf8)
        var others = [
            Self.plain(try CacheKey(namespace: "ns", name: "aaab", schemaVersion: 2), payload: payload),
            Self.plain(try CacheKey(namespace: "ns", name: "aaaa", schemaVersion: 3), payload: payload),
            Self.plain(try CacheKey(namespace: "nt", name: "aaaa", schemaVersion: 2), payload: payload),
        ]
        var tagged = Self.plain(key, payload: payload)
        tagged.etag = "e"
        others.append(tagged)
        tagged.etag = nil
        tagged.tags = ["t": "v"]
        others.append(tagged)
        for other in others {
            let bytes = other.encoded()
            #expect(Self.decode(bytes, expecting: key) == nil, "\(other.key) etag \(String(describing: other.etag)) tags \(other.tags)")
            // The whole decode still reads every one of them.
            #expect(try CacheEntry(decoding: bytes) == other)
        }
    }
}
