import FuzzSupport
import TierCache
import TierCacheLZ4

nonisolated(unsafe) let codec = try! LZ4Codec()
nonisolated(unsafe) let highCompression = try! LZ4Codec(mode: .highCompression)
nonisolated(unsafe) let capped = try! LZ4Codec(configuration: .init(maximumDecompressedSize: 1 << 16))

/// lz4 decompress path: first 4 bytes the declared length, the rest the block. Hostile blocks
/// throw, never trap or read/write out of bounds. Then a differential round trip in both modes.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard bytes.count >= 4 else { return 0 }
    let raw = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3] & 0x7F) << 24
    // The default codec gets lengths up to 4 MiB (a 256 MiB allocation per input would crawl);
    // the capped one gets the raw 31-bit length and must refuse anything over its ceiling.
    let declared = raw & 0x3F_FFFF
    let block = Array(bytes[4...])
    if let out = try? codec.decompress(block, uncompressedLength: declared, dictionaryID: 0) {
        precondition(out.count == declared, "lz4 returned \(out.count) bytes, \(declared) declared")
    }
    if let out = try? capped.decompress(block, uncompressedLength: raw, dictionaryID: 0) {
        precondition(out.count == raw && raw <= 1 << 16, "capped lz4 returned \(out.count) bytes, \(raw) declared")
    }
    do {
        for candidate in [codec, highCompression] {
            if let compressed = try candidate.compress(block) {
                let back = try candidate.decompress(compressed.bytes, uncompressedLength: block.count, dictionaryID: compressed.dictionaryID)
                precondition(back == block, "lz4 round trip changed the bytes")
            }
        }
    } catch { preconditionFailure("lz4 round trip threw: \(error)") }
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
    writeSeed("text-hc", le32(text.count) + (try highCompression.compress(text)!.bytes))
}

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_lz4_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
