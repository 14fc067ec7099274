import CTierCacheZstd
public import TierCache

/// Zstandard compression for cache payloads, over the system's libzstd.
///
/// A `Sendable` value type: copies share their digested dictionaries, and every codec of the
/// process shares one pool of compression and decompression contexts (taken and given back under
/// the project's lock), so the hot path allocates no zstd context: only the output array.
///
/// What it stores:
/// - Payloads shorter than ``minimumInputSize``, and payloads that zstd cannot make
///   smaller, are declined (`compress` returns nil) and the cache stores them raw with
///   ``CodecID/identity``.
/// - Otherwise one standard zstd frame (readable by `zstd -d`), with the content size in its
///   header. With a ``Configuration/dictionary`` the frame omits the dictionary id (the envelope
///   carries it in ``CompressedPayload/dictionaryID``).
///
/// What it refuses on read:
/// - a declared length above ``Configuration/maximumDecompressedSize``
///   (``TierCacheError/Code/sizeLimitExceeded``), before allocating anything;
/// - a dictionary id it has not loaded (``TierCacheError/Code/dictionaryNotLoaded``);
/// - corrupt or truncated frames, and frames whose content is not exactly the declared length
///   (``TierCacheError/Code/codec``, with libzstd's error code and name in the message).
/// Decompression writes into a buffer of exactly the declared length and never past it.
public struct ZstdCodec: Codec {
    /// How the codec compresses and what it accepts when decompressing.
    public struct Configuration: Sendable {
        /// The compression level: negative levels are zstd's "fast" levels (down to
        /// ``ZstdCodec/levels``' lower bound), 1...19 trade speed for ratio, 0 means zstd's
        /// default (3). Default 3.
        public var level: Int
        /// The dictionary to compress with, also loaded for decompression. Default none.
        public var dictionary: ZstdDictionary?
        /// More dictionaries loaded for decompression only: keep the previous dictionary here
        /// while entries compressed with it may still be read. Default none.
        public var additionalDictionaries: [ZstdDictionary]
        /// Payloads shorter than this many bytes are stored raw. nil (the default) picks the
        /// measured default: ``ZstdCodec/defaultMinimumInputSize`` (128 B) without a dictionary,
        /// ``ZstdCodec/defaultMinimumInputSizeWithDictionary`` (32 B) with one (docs/codecs.md
        /// shows the measurement).
        public var minimumInputSize: Int?
        /// The largest decompressed length accepted; a longer declared length is rejected before
        /// any allocation. Default ``ZstdCodec/defaultMaximumDecompressedSize`` (256 MiB).
        public var maximumDecompressedSize: Int

        /// Creates a configuration; every argument has a default.
        public init(
            level: Int = ZstdCodec.defaultLevel,
            dictionary: ZstdDictionary? = nil,
            additionalDictionaries: [ZstdDictionary] = [],
            minimumInputSize: Int? = nil,
            maximumDecompressedSize: Int = ZstdCodec.defaultMaximumDecompressedSize
        ) {
            self.level = level
            self.dictionary = dictionary
            self.additionalDictionaries = additionalDictionaries
            self.minimumInputSize = minimumInputSize
            self.maximumDecompressedSize = maximumDecompressedSize
        }
    }

    /// The default level, 3 (zstd's own default).
    public static let defaultLevel = 3
    /// The default small-payload threshold without a dictionary, 128 bytes: below it zstd saves
    /// little (5% at 64 B, where half the payloads do not shrink at all) for a per-frame cost of
    /// several microseconds.
    public static let defaultMinimumInputSize = 128
    /// The default small-payload threshold with a dictionary, 32 bytes: a dictionary makes even
    /// 32-byte payloads shrink by a third.
    public static let defaultMinimumInputSizeWithDictionary = 32
    /// The default decompressed-size ceiling, 256 MiB.
    public static let defaultMaximumDecompressedSize = 256 << 20
    /// The levels this codec accepts: libzstd's fastest negative level through 19. (Levels 20-22
    /// need windows of up to 128 MiB on both sides and are not offered.)
    public static var levels: ClosedRange<Int> { Int(ZSTD_minCLevel())...19 }

    /// The configuration this codec was created with.
    public let configuration: Configuration
    /// The small-payload threshold in effect: payloads shorter than this are stored raw.
    public let minimumInputSize: Int
    private let engine: Engine

    /// ``CodecID/zstd``.
    public var id: CodecID { .zstd }

    /// Creates a codec.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/invalidConfiguration`` for a
    ///   level outside ``levels``, a negative threshold, a ceiling below 1, or two loaded
    ///   dictionaries with the same id and different bytes; ``TierCacheError/Code/codec`` when
    ///   libzstd cannot digest the dictionary.
    public init(configuration: Configuration = Configuration()) throws(TierCacheError) {
        guard Self.levels.contains(configuration.level) else {
            throw TierCacheError(.invalidConfiguration, "zstd: level \(configuration.level) is outside \(Self.levels)")
        }
        if let minimum = configuration.minimumInputSize, minimum < 0 {
            throw TierCacheError(.invalidConfiguration, "zstd: minimumInputSize \(minimum) is negative")
        }
        guard configuration.maximumDecompressedSize >= 1 else {
            throw TierCacheError(.invalidConfiguration, "zstd: maximumDecompressedSize \(configuration.maximumDecompressedSize) is below 1")
        }
        self.configuration = configuration
        self.minimumInputSize = configuration.minimumInputSize
            ?? (configuration.dictionary == nil ? Self.defaultMinimumInputSize : Self.defaultMinimumInputSizeWithDictionary)
        self.engine = try Engine(configuration: configuration)
    }

    /// Creates a codec at `level`, optionally with a dictionary, other settings at their defaults.
    /// - Throws: as ``init(configuration:)``.
    public init(level: Int, dictionary: ZstdDictionary? = nil) throws(TierCacheError) {
        try self.init(configuration: Configuration(level: level, dictionary: dictionary))
    }

    /// Compresses `input` into one zstd frame, or returns nil to have it stored raw (shorter than
    /// ``minimumInputSize``, or the frame would not be smaller).
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/codec`` when libzstd fails
    ///   (its error code and name in the message) or cannot allocate a context.
    public func compress(_ input: [UInt8]) throws(TierCacheError) -> CompressedPayload? {
        guard !input.isEmpty, input.count >= minimumInputSize else { return nil }
        let bound = ZSTD_compressBound(input.count)
        if ZSTD_isError(bound) != 0 { throw zstdError(bound, in: "ZSTD_compressBound") }
        guard let context = compressionContexts.acquire() else {
            throw TierCacheError(.codec, "zstd: ZSTD_createCCtx failed (out of memory)")
        }
        defer { compressionContexts.release(context) }
        guard let destination = context.scratch.reserve(bound) else {
            throw TierCacheError(.codec, "zstd: cannot allocate \(bound) bytes of output")
        }
        defer { context.scratch.trim() }
        let cctx = context.cctx
        let level = Int32(configuration.level)
        let written: Int
        if let cdict = engine.cdict {
            written = input.withUnsafeBytes { source in
                // The envelope carries the dictionary id; the frame need not repeat it.
                var result = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters)
                if ZSTD_isError(result) == 0 { result = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level) }
                if ZSTD_isError(result) == 0 { result = ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 0) }
                if ZSTD_isError(result) == 0 { result = ZSTD_CCtx_refCDict(cctx, cdict) }
                if ZSTD_isError(result) == 0 {
                    result = ZSTD_compress2(cctx, destination, bound, source.baseAddress, source.count)
                }
                // Drop the reference so a pooled context never points at a freed dictionary.
                _ = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters)
                return result
            }
        } else {
            written = input.withUnsafeBytes { source in
                ZSTD_compressCCtx(cctx, destination, bound, source.baseAddress, source.count, level)
            }
        }
        let size = try checkZstd(written, in: engine.cdict == nil ? "ZSTD_compressCCtx" : "ZSTD_compress2")
        guard size < input.count else { return nil }
        let bytes = copyBytes(destination, count: size)
        return CompressedPayload(bytes: bytes, dictionaryID: engine.compressionDictionaryID)
    }

    /// Decompresses one payload this codec (or `zstd`) produced into exactly
    /// `uncompressedLength` bytes.
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/sizeLimitExceeded`` when
    ///   `uncompressedLength` is above ``Configuration/maximumDecompressedSize`` (nothing is
    ///   allocated), ``TierCacheError/Code/dictionaryNotLoaded`` when `dictionaryID` is not
    ///   loaded, ``TierCacheError/Code/codec`` for a negative length, a corrupt or truncated
    ///   frame, or content of another length than declared.
    public func decompress(_ input: [UInt8], uncompressedLength: Int, dictionaryID: UInt32) throws(TierCacheError) -> [UInt8] {
        guard uncompressedLength >= 0 else {
            throw TierCacheError(.codec, "zstd: declared length \(uncompressedLength) is negative")
        }
        guard uncompressedLength <= configuration.maximumDecompressedSize else {
            throw TierCacheError(
                .sizeLimitExceeded,
                "zstd: declared length \(uncompressedLength) is above the ceiling \(configuration.maximumDecompressedSize)"
            )
        }
        var ddict: OpaquePointer?
        if dictionaryID != 0 {
            guard let dictionary = engine.dictionaries[dictionaryID] else {
                throw TierCacheError(.dictionaryNotLoaded, "zstd: dictionary \(dictionaryID) is not loaded")
            }
            ddict = dictionary.storage.ddict
        }
        let declared = input.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        if declared == CTierCacheZstd_contentSizeError() {
            throw TierCacheError(.codec, "zstd: \(input.count) bytes do not start with a zstd frame header")
        }
        if declared != CTierCacheZstd_contentSizeUnknown(), declared != UInt64(uncompressedLength) {
            throw TierCacheError(.codec, "zstd: the frame declares \(declared) bytes; the envelope declares \(uncompressedLength)")
        }
        guard let context = decompressionContexts.acquire() else {
            throw TierCacheError(.codec, "zstd: ZSTD_createDCtx failed (out of memory)")
        }
        defer { decompressionContexts.release(context) }
        let dctx = context.dctx
        var failure = 0
        let output = [UInt8](unsafeUninitializedCapacity: uncompressedLength) { buffer, count in
            let result = input.withUnsafeBytes { source in
                if let ddict {
                    ZSTD_decompress_usingDDict(dctx, buffer.baseAddress, uncompressedLength, source.baseAddress, source.count, ddict)
                } else {
                    ZSTD_decompressDCtx(dctx, buffer.baseAddress, uncompressedLength, source.baseAddress, source.count)
                }
            }
            if ZSTD_isError(result) != 0 {
                failure = result
                count = 0
            } else {
                count = min(result, uncompressedLength)
            }
        }
        if failure != 0 {
            throw zstdError(failure, in: ddict == nil ? "ZSTD_decompressDCtx" : "ZSTD_decompress_usingDDict")
        }
        guard output.count == uncompressedLength else {
            throw TierCacheError(.codec, "zstd: the frame holds \(output.count) bytes; the envelope declares \(uncompressedLength)")
        }
        return output
    }
}

extension Codec where Self == ZstdCodec {
    /// Zstandard at level 3, no dictionary, default limits.
    public static var zstd: ZstdCodec { ZstdCodec.standard }
}

extension ZstdCodec {
    // The default configuration cannot fail: level 3 is valid and there is no dictionary.
    static let standard: ZstdCodec = {
        do { return try ZstdCodec() } catch { fatalError("the default zstd configuration is valid: \(error)") }
    }()
}

/// The digested compression dictionary and the loaded dictionaries of one codec (and its copies).
/// Immutable after init; libzstd allows a CDict to be shared by many contexts at once.
private final class Engine: @unchecked Sendable {
    let cdict: OpaquePointer?
    let compressionDictionaryID: UInt32
    let dictionaries: [UInt32: ZstdDictionary]

    init(configuration: ZstdCodec.Configuration) throws(TierCacheError) {
        var dictionaries: [UInt32: ZstdDictionary] = [:]
        for dictionary in [configuration.dictionary].compactMap({ $0 }) + configuration.additionalDictionaries {
            if let existing = dictionaries[dictionary.id], existing != dictionary {
                throw TierCacheError(.invalidConfiguration, "zstd: two different dictionaries have the id \(dictionary.id)")
            }
            dictionaries[dictionary.id] = dictionary
        }
        self.dictionaries = dictionaries
        if let dictionary = configuration.dictionary {
            let cdict = dictionary.bytes.withUnsafeBytes {
                ZSTD_createCDict($0.baseAddress, $0.count, Int32(configuration.level))
            }
            guard let cdict else {
                throw TierCacheError(.codec, "zstd: ZSTD_createCDict failed for dictionary \(dictionary.id)")
            }
            self.cdict = cdict
            self.compressionDictionaryID = dictionary.id
        } else {
            self.cdict = nil
            self.compressionDictionaryID = 0
        }
    }

    deinit {
        if let cdict { ZSTD_freeCDict(cdict) }
    }
}

/// A compression context and the scratch buffer it compresses into (the result is then copied
/// into an array of exactly its size). Owned by one caller at a time through the pool.
final class CompressionContext {
    let cctx: OpaquePointer
    var scratch = ScratchBuffer()

    init?() {
        guard let cctx = ZSTD_createCCtx() else { return nil }
        self.cctx = cctx
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        scratch.release()
    }
}

/// A decompression context. Owned by one caller at a time through the pool.
final class DecompressionContext {
    let dctx: OpaquePointer

    init?() {
        guard let dctx = ZSTD_createDCtx() else { return nil }
        self.dctx = dctx
    }

    deinit { ZSTD_freeDCtx(dctx) }
}

/// Process-wide context pools, shared by every ``ZstdCodec``.
let compressionContexts = ContextPool<CompressionContext> { CompressionContext() }
let decompressionContexts = ContextPool<DecompressionContext> { DecompressionContext() }
