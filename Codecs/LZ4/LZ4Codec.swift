#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CTierCacheLZ4
public import TierCache

/// LZ4 block compression for cache payloads, over the system's liblz4.
///
/// The LZ4 *block* format: no frame header, no checksum; the envelope already carries the
/// decompressed length and a checksum, and the frame API costs up to 10× more on small inputs.
/// Two modes: ``Mode/fast`` (with an acceleration: higher is faster and compresses less) and
/// ``Mode/highCompression`` (LZ4 HC, levels 3-12: slower to compress, same decompression speed).
///
/// A `Sendable` value type; every codec of the process shares one pool of compression states,
/// taken and given back under the project's lock, so the hot path allocates no lz4 state: only
/// the output array. Decompression needs no state.
///
/// Payloads shorter than ``Configuration/minimumInputSize``, or that lz4 cannot make smaller, are
/// declined (`compress` returns nil) and stored raw with ``CodecID/identity``.
///
/// Decompression writes into a buffer of exactly the declared length and never past it; it
/// refuses, before allocating (``TierCacheError/Code/sizeLimitExceeded``), a declared length
/// above ``Configuration/maximumDecompressedSize`` or above ``maximumRatio`` (255) times the
/// block's size, which no LZ4 block can expand to; it refuses any dictionary id
/// (``TierCacheError/Code/dictionaryNotLoaded``: this codec uses no dictionaries), and malformed
/// blocks or blocks of another length than declared (``TierCacheError/Code/codec``, with liblz4's
/// return code in the message).
public struct LZ4Codec: Codec {
    /// How LZ4 compresses: fast (with an acceleration) or high compression (with a level).
    public struct Mode: Sendable, Hashable, CustomStringConvertible {
        enum Kind: Hashable {
            case fast(acceleration: Int)
            case highCompression(level: Int)
        }

        let kind: Kind

        /// Fast mode, acceleration 1 (what `lz4 -1` does).
        public static let fast = Mode(kind: .fast(acceleration: 1))
        /// High-compression mode at liblz4's default HC level, 9 (what `lz4 -9` does).
        public static let highCompression = Mode(kind: .highCompression(level: Int(CTierCacheLZ4_hcLevelDefault())))

        /// Fast mode with an acceleration from 1 to 65537: each step trades about 3% of ratio
        /// for speed (`lz4 --fast=N`).
        public static func fast(acceleration: Int) -> Mode { Mode(kind: .fast(acceleration: acceleration)) }

        /// High-compression mode (LZ4 HC) at a level from 3 to 12 (`lz4 -3` ... `lz4 -12`).
        public static func highCompression(level: Int) -> Mode { Mode(kind: .highCompression(level: level)) }

        /// `fast(acceleration: N)` or `highCompression(level: N)`.
        public var description: String {
            switch kind {
            case .fast(let acceleration): "fast(acceleration: \(acceleration))"
            case .highCompression(let level): "highCompression(level: \(level))"
            }
        }
    }

    /// How the codec compresses and what it accepts when decompressing.
    public struct Configuration: Sendable {
        /// Fast or high-compression mode. Default ``Mode/fast``.
        public var mode: Mode
        /// Payloads shorter than this many bytes are stored raw. Default
        /// ``LZ4Codec/defaultMinimumInputSize`` (see docs/codecs.md for the measurement).
        public var minimumInputSize: Int
        /// The largest decompressed length accepted; a longer declared length is rejected before
        /// any allocation. Default ``LZ4Codec/defaultMaximumDecompressedSize`` (256 MiB).
        public var maximumDecompressedSize: Int

        /// Creates a configuration; every argument has a default.
        public init(
            mode: Mode = .fast,
            minimumInputSize: Int = LZ4Codec.defaultMinimumInputSize,
            maximumDecompressedSize: Int = LZ4Codec.defaultMaximumDecompressedSize
        ) {
            self.mode = mode
            self.minimumInputSize = minimumInputSize
            self.maximumDecompressedSize = maximumDecompressedSize
        }
    }

    /// The default small-payload threshold, 64 bytes: below it lz4 saves little (a 32-byte
    /// payload often does not shrink at all), and the envelope's own header dominates the entry.
    public static let defaultMinimumInputSize = 64
    /// The default decompressed-size ceiling, 256 MiB.
    public static let defaultMaximumDecompressedSize = 256 << 20
    /// The most an LZ4 block expands: each byte of a match's length extension stands for at most
    /// 255 bytes of output, and every other byte of a block for fewer. A declared length above
    /// this many times the block's size cannot be honest and is refused before allocating.
    public static let maximumRatio = 255

    /// The configuration this codec was created with.
    public let configuration: Configuration

    /// ``CodecID/lz4``.
    public var id: CodecID { .lz4 }

    /// Creates a codec.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/invalidConfiguration`` for an
    ///   acceleration outside 1...65537, an HC level outside 3...12, a negative threshold, or a
    ///   ceiling outside 1...`LZ4_MAX_INPUT_SIZE` (about 2 GB, the block format's limit).
    public init(configuration: Configuration = Configuration()) throws(TierCacheError) {
        switch configuration.mode.kind {
        case .fast(let acceleration):
            guard (1...Int(CTierCacheLZ4_accelerationMax())).contains(acceleration) else {
                throw TierCacheError(.invalidConfiguration, "lz4: acceleration \(acceleration) is outside 1...\(CTierCacheLZ4_accelerationMax())")
            }
        case .highCompression(let level):
            let levels = Int(CTierCacheLZ4_hcLevelMin())...Int(CTierCacheLZ4_hcLevelMax())
            guard levels.contains(level) else {
                throw TierCacheError(.invalidConfiguration, "lz4: HC level \(level) is outside \(levels)")
            }
        }
        guard configuration.minimumInputSize >= 0 else {
            throw TierCacheError(.invalidConfiguration, "lz4: minimumInputSize \(configuration.minimumInputSize) is negative")
        }
        guard (1...Int(CTierCacheLZ4_maxInputSize())).contains(configuration.maximumDecompressedSize) else {
            throw TierCacheError(
                .invalidConfiguration,
                "lz4: maximumDecompressedSize \(configuration.maximumDecompressedSize) is outside 1...\(CTierCacheLZ4_maxInputSize())"
            )
        }
        self.configuration = configuration
    }

    /// Creates a codec in `mode`, other settings at their defaults.
    /// - Throws: as ``init(configuration:)``.
    public init(mode: Mode) throws(TierCacheError) {
        try self.init(configuration: Configuration(mode: mode))
    }

    /// Compresses `input` into one LZ4 block, or returns nil to have it stored raw (shorter than
    /// ``Configuration/minimumInputSize``, or the block would not be smaller).
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/codec`` when the input is
    ///   larger than the block format allows (about 2 GB), memory runs out, or liblz4 fails.
    public func compress(_ input: [UInt8]) throws(TierCacheError) -> CompressedPayload? {
        guard !input.isEmpty, input.count >= configuration.minimumInputSize else { return nil }
        guard input.count <= Int(CTierCacheLZ4_maxInputSize()) else {
            throw TierCacheError(.codec, "lz4: \(input.count) bytes is above the block format's limit \(CTierCacheLZ4_maxInputSize())")
        }
        let count = Int32(input.count)
        let bound = CTierCacheLZ4_compressBound(count)
        switch configuration.mode.kind {
        case .fast(let acceleration):
            guard let context = fastContexts.acquire() else {
                throw TierCacheError(.codec, "lz4: cannot allocate a compression state")
            }
            defer { fastContexts.release(context) }
            guard let destination = context.scratch.reserve(Int(bound)) else {
                throw TierCacheError(.codec, "lz4: cannot allocate \(bound) bytes of output")
            }
            defer { context.scratch.trim() }
            let written = input.withUnsafeBytes { source in
                LZ4_compress_fast_extState(
                    context.state, source.baseAddress, destination, count, bound, Int32(acceleration)
                )
            }
            return try payload(destination, written: written, of: input.count, function: "LZ4_compress_fast_extState")
        case .highCompression(let level):
            guard let context = highCompressionContexts.acquire() else {
                throw TierCacheError(.codec, "lz4: cannot allocate an HC compression state")
            }
            defer { highCompressionContexts.release(context) }
            guard let destination = context.scratch.reserve(Int(bound)) else {
                throw TierCacheError(.codec, "lz4: cannot allocate \(bound) bytes of output")
            }
            defer { context.scratch.trim() }
            let written = input.withUnsafeBytes { source in
                // A fast reset keeps the 256 KB state's tables and starts a new, independent
                // block: the same output as LZ4_compress_HC, without clearing the state each call.
                LZ4_resetStreamHC_fast(context.stream, Int32(level))
                return LZ4_compress_HC_continue(context.stream, source.baseAddress, destination, count, bound)
            }
            return try payload(destination, written: written, of: input.count, function: "LZ4_compress_HC_continue")
        }
    }

    private func payload(_ destination: UnsafeMutableRawPointer, written: Int32, of inputCount: Int, function: String) throws(TierCacheError) -> CompressedPayload? {
        guard written > 0 else {
            throw TierCacheError(.codec, "lz4: \(function) failed (returned \(written)) on \(inputCount) bytes")
        }
        guard Int(written) < inputCount else { return nil }
        return CompressedPayload(bytes: copyBytes(destination, count: Int(written)))
    }

    /// Decompresses one LZ4 block into exactly `uncompressedLength` bytes.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/sizeLimitExceeded`` when
    ///   `uncompressedLength` is above ``Configuration/maximumDecompressedSize`` or above
    ///   ``maximumRatio`` times `input.count` (nothing is allocated),
    ///   ``TierCacheError/Code/dictionaryNotLoaded`` for any non-zero `dictionaryID`,
    ///   ``TierCacheError/Code/codec`` for a negative length, a malformed or truncated block
    ///   (`LZ4_decompress_safe`'s negative return code in the message), or a block that holds
    ///   another length than declared.
    public func decompress(_ input: [UInt8], uncompressedLength: Int, dictionaryID: UInt32) throws(TierCacheError) -> [UInt8] {
        guard uncompressedLength >= 0 else {
            throw TierCacheError(.codec, "lz4: declared length \(uncompressedLength) is negative")
        }
        guard uncompressedLength <= configuration.maximumDecompressedSize else {
            throw TierCacheError(
                .sizeLimitExceeded,
                "lz4: declared length \(uncompressedLength) is above the ceiling \(configuration.maximumDecompressedSize)"
            )
        }
        let (possible, overflow) = input.count.multipliedReportingOverflow(by: Self.maximumRatio)
        guard overflow || uncompressedLength <= possible else {
            throw TierCacheError(
                .sizeLimitExceeded,
                "lz4: declared length \(uncompressedLength) is more than \(Self.maximumRatio) times the \(input.count)-byte block"
            )
        }
        guard dictionaryID == 0 else {
            throw TierCacheError(.dictionaryNotLoaded, "lz4: dictionary \(dictionaryID) is not loaded (LZ4Codec uses no dictionaries)")
        }
        guard input.count <= Int(Int32.max) else {
            throw TierCacheError(.codec, "lz4: a \(input.count)-byte block is above the block format's limit")
        }
        var failure: Int32 = 0
        let output = [UInt8](unsafeUninitializedCapacity: uncompressedLength) { buffer, count in
            let result = input.withUnsafeBytes { source -> Int32 in
                guard let base = source.baseAddress else { return -1 }
                // Reads at most input.count bytes, writes at most uncompressedLength bytes.
                return LZ4_decompress_safe(base, buffer.baseAddress, Int32(source.count), Int32(uncompressedLength))
            }
            if result < 0 {
                failure = result
                count = 0
            } else {
                count = min(Int(result), uncompressedLength)
            }
        }
        if failure < 0 {
            throw TierCacheError(
                .codec,
                "lz4: LZ4_decompress_safe failed: malformed or truncated block (returned \(failure): error near input byte \(-Int(failure) - 1))"
            )
        }
        guard output.count == uncompressedLength else {
            throw TierCacheError(.codec, "lz4: the block holds \(output.count) bytes; the envelope declares \(uncompressedLength)")
        }
        return output
    }
}

extension Codec where Self == LZ4Codec {
    /// LZ4 fast mode (acceleration 1), default limits.
    public static var lz4: LZ4Codec { LZ4Codec.standard }
}

extension LZ4Codec {
    static let standard: LZ4Codec = {
        do { return try LZ4Codec() } catch { fatalError("the default lz4 configuration is valid: \(error)") }
    }()
}

/// The fast mode's state (LZ4_sizeofState bytes) and its scratch output buffer.
final class FastContext {
    let state: UnsafeMutableRawPointer
    let scratch = ScratchBuffer()

    init?() {
        guard let state = malloc(Int(LZ4_sizeofState())) else { return nil }
        self.state = state
    }

    deinit {
        free(state)
    }
}

/// The HC mode's stream state and its scratch output buffer.
final class HighCompressionContext {
    let stream: UnsafeMutablePointer<LZ4_streamHC_t>
    let scratch = ScratchBuffer()

    init?() {
        guard let stream = LZ4_createStreamHC() else { return nil }
        self.stream = stream
    }

    deinit {
        LZ4_freeStreamHC(stream)
    }
}

/// Process-wide state pools, shared by every ``LZ4Codec``.
let fastContexts = ContextPool<FastContext> { FastContext() }
let highCompressionContexts = ContextPool<HighCompressionContext> { HighCompressionContext() }
