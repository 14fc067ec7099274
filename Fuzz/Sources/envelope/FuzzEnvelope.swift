import FuzzSupport
import TierCache

/// Envelope decoder: any bytes decode or throw a typed error, never trap; whatever decodes
/// re-encodes to a value that decodes to the same entry; the expiry peek agrees with the decoder.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let peeked = CacheEntry.peekExpiry(Array(bytes.prefix(60)))
    guard let entry = try? CacheEntry(decoding: bytes) else { return 0 }
    if let peeked {
        precondition(peeked.freshUntil == entry.freshUntil && peeked.staleUntil == entry.staleUntil,
                     "peekExpiry disagrees with the decoder")
    }
    let again: CacheEntry
    do { again = try CacheEntry(decoding: entry.encoded()) } catch { preconditionFailure("re-encoded entry does not decode: \(error)") }
    precondition(again.key == entry.key && again.payload == entry.payload && again.freshUntil == entry.freshUntil
                 && again.staleUntil == entry.staleUntil && again.codecID == entry.codecID
                 && again.serializerID == entry.serializerID && again.etag == entry.etag && again.tags == entry.tags,
                 "envelope round trip changed the entry")
    return 0
}

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

#if canImport(Glibc)
import Glibc
#endif

func writeSeeds() throws {
    let key = try CacheKey(namespace: "fuzz", name: "seed", schemaVersion: 3)
    let now = WallTime(millisecondsSince1970: 1_700_000_000_000)
    for (name, codecID, tags) in [("raw", CodecID.identity, [:]), ("zstd", CodecID.zstd, ["team": "a"]),
                                  ("lz4", CodecID.lz4, ["a": "1", "b": "2"])] as [(String, CodecID, [String: String])] {
        let payload = Array("{\"seed\":\"\(name)\",\"n\":[1,2,3]}".utf8)
        let entry = CacheEntry(key: key, serializerID: .json, codecID: codecID, createdAt: now,
                               freshUntil: now.advanced(by: .seconds(900)), staleUntil: now.advanced(by: .seconds(86400)),
                               uncompressedLength: UInt64(payload.count), etag: name == "raw" ? "\"etag\"" : nil,
                               tags: tags, payload: payload)
        writeSeed(name, entry.encoded())
    }
}

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_envelope_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
