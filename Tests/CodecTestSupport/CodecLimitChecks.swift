// The hard limits every codec promises (issue 3), checked the same way for zstd and lz4.
public import TierCache
public import Testing

/// Checks of a codec's decompression limits, shared by the codec test targets.
public enum CodecLimitChecks {
    /// A declared length above the reader's ceiling is `sizeLimitExceeded` before any allocation
    /// (`Int.max` would trap an allocation); a negative one is a `codec` error.
    public static func declaredLengthAboveCeiling(_ codec: any Codec, ceiling: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let input = try Corpus.read("partitions.json")
        let payload = try #require(try codec.compress(input), sourceLocation: sourceLocation)
        for declared in [ceiling + 1, Int.max] {
            #expect(sourceLocation: sourceLocation) {
                _ = try codec.decompress(payload.bytes, uncompressedLength: declared, dictionaryID: 0)
            } throws: { ($0 as? TierCacheError)?.code == .sizeLimitExceeded }
        }
        #expect(sourceLocation: sourceLocation) {
            _ = try codec.decompress(payload.bytes, uncompressedLength: -1, dictionaryID: 0)
        } throws: { ($0 as? TierCacheError)?.code == .codec }
    }

    /// 16 MiB of zeros, compressed by `writer` to under `compressedAtMost` bytes, is a bomb for
    /// `reader` (capped at 1 MiB): declaring its true length is `sizeLimitExceeded`, and declaring
    /// less to slip under the ceiling stops at the declared length with a `codec` error.
    public static func bombRejected(writer: any Codec, reader: any Codec, compressedAtMost: Int,
                                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bomb = [UInt8](repeating: 0, count: 16 << 20)
        let payload = try #require(try writer.compress(bomb), sourceLocation: sourceLocation)
        #expect(payload.bytes.count <= compressedAtMost, sourceLocation: sourceLocation)
        #expect(sourceLocation: sourceLocation) {
            _ = try reader.decompress(payload.bytes, uncompressedLength: bomb.count, dictionaryID: 0)
        } throws: { ($0 as? TierCacheError)?.code == .sizeLimitExceeded }
        #expect(sourceLocation: sourceLocation) {
            _ = try reader.decompress(payload.bytes, uncompressedLength: 1000, dictionaryID: 0)
        } throws: { ($0 as? TierCacheError)?.code == .codec }
    }
}
