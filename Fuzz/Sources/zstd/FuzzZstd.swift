import FuzzSupport
import TierCache
import TierCacheZstd

// One codec per process; a second, small-ceiling one checks the size cap.
nonisolated(unsafe) let codec = try! ZstdCodec()
nonisolated(unsafe) let capped = try! ZstdCodec(configuration: .init(maximumDecompressedSize: 1 << 16))

/// zstd decompress path: the first 4 bytes are the declared length (as an envelope would give
/// it), the rest is the frame. Hostile frames throw, never trap, never produce a value of
/// another length. Then a differential round trip of the input itself.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard bytes.count >= 4 else { return 0 }
    let raw = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3] & 0x7F) << 24
    // The default codec gets lengths up to 4 MiB (a 256 MiB allocation per input would crawl);
    // the capped one gets the raw 31-bit length and must refuse anything over its ceiling.
    let declared = raw & 0x3F_FFFF
    let frame = Array(bytes[4...])
    if let out = try? codec.decompress(frame, uncompressedLength: declared, dictionaryID: 0) {
        precondition(out.count == declared, "zstd returned \(out.count) bytes, \(declared) declared")
    }
    if let out = try? capped.decompress(frame, uncompressedLength: raw, dictionaryID: 0) {
        precondition(out.count == raw && raw <= 1 << 16, "capped zstd returned \(out.count) bytes, \(raw) declared")
    }
    _ = try? codec.decompress(frame, uncompressedLength: declared, dictionaryID: 0xDEAD)
    do {
        if let compressed = try codec.compress(frame) {
            let back = try codec.decompress(compressed.bytes, uncompressedLength: frame.count, dictionaryID: compressed.dictionaryID)
            precondition(back == frame, "zstd round trip changed the bytes")
        }
    } catch { preconditionFailure("zstd round trip threw: \(error)") }
    return 0
}

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

#if canImport(Glibc)
import Glibc
#endif

func writeSeeds() throws {
    let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog. ", count: 20).utf8)
    writeSeed("text", le32(text.count) + (try codec.compress(text)!.bytes))
    writeSeed("empty", le32(0))
}

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_zstd_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
