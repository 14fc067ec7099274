#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CTierCacheZstd
public import TierCache

/// A zstd dictionary: trained from sample payloads, saved next to the code that uses it, loaded
/// by every writer and reader of the cache.
///
/// Small records (a few hundred bytes to a few KB) compress poorly on their own because each
/// frame starts with no history; a dictionary trained on typical records supplies that history,
/// and often doubles or triples the ratio. The dictionary's ``id`` is written into every envelope
/// it compressed, so a reader that has not loaded it fails with
/// ``TierCacheError/Code/dictionaryNotLoaded`` (a miss in a chain) instead of returning garbage.
///
/// Dictionaries are immutable and cheap to copy; the digested decompression form is built once,
/// when the dictionary is created, and shared by every codec that loads it.
public struct ZstdDictionary: Sendable, Hashable {
    /// The dictionary's id, as recorded in ``CompressedPayload/dictionaryID`` and the envelope.
    /// Never 0 (0 means "no dictionary").
    public let id: UInt32

    let storage: Storage

    /// The dictionary's bytes in zstd's dictionary format: what ``write(toFile:)`` saves.
    public var bytes: [UInt8] { storage.bytes }

    /// Loads a dictionary from its bytes (as produced by ``train(samples:capacity:)``,
    /// ``bytes`` or `zstd --train`).
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/invalidConfiguration`` when
    ///   the bytes are not a zstd-format dictionary with a non-zero id (raw-content dictionaries
    ///   carry no id and are not accepted), or ``TierCacheError/Code/codec`` when libzstd cannot
    ///   digest it.
    public init(bytes: [UInt8]) throws(TierCacheError) {
        let id = bytes.withUnsafeBytes { ZDICT_getDictID($0.baseAddress, $0.count) }
        guard id != 0 else {
            throw TierCacheError(
                .invalidConfiguration,
                "zstd: \(bytes.count) bytes are not a zstd dictionary with an id (raw-content dictionaries are not accepted)"
            )
        }
        let ddict = bytes.withUnsafeBytes { ZSTD_createDDict($0.baseAddress, $0.count) }
        guard let ddict else {
            throw TierCacheError(.codec, "zstd: ZSTD_createDDict failed for dictionary \(id)")
        }
        self.id = id
        self.storage = Storage(bytes: bytes, ddict: ddict)
    }

    /// Loads a dictionary saved with ``write(toFile:)`` (or `zstd --train -o`).
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/invalidConfiguration`` when
    ///   the file cannot be read or does not hold a zstd dictionary.
    public init(contentsOfFile path: String) throws(TierCacheError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TierCacheError(.invalidConfiguration, "zstd: cannot read dictionary file \(path): \(error)")
        }
        try self.init(bytes: [UInt8](data))
    }

    /// Saves ``bytes`` to `path`, atomically (written aside, then renamed).
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/storage`` when the file
    ///   cannot be written.
    public func write(toFile path: String) throws(TierCacheError) {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TierCacheError(.storage, "zstd: cannot write dictionary file \(path): \(error)")
        }
    }

    /// Trains a dictionary from sample payloads with zstd's dictionary builder (ZDICT).
    ///
    /// Give it representative records, each as the cache would store it (serialized, before
    /// compression): a few hundred samples and a total of about 100× `capacity` work well; too few
    /// or too uniform samples fail. The result is deterministic for the same samples.
    /// - Parameters:
    ///   - samples: the sample payloads; empty ones are skipped.
    ///   - capacity: the largest dictionary size in bytes (16 KiB by default; 4-112 KiB is the
    ///     useful range).
    /// - Throws: ``TierCacheError`` with code ``TierCacheError/Code/invalidConfiguration`` when
    ///   there are no samples or `capacity` is below 256 bytes, or ``TierCacheError/Code/codec``
    ///   with ZDICT's error name when training fails (typically: not enough samples).
    public static func train(samples: [[UInt8]], capacity: Int = 16 << 10) throws(TierCacheError) -> ZstdDictionary {
        let used = samples.filter { !$0.isEmpty }
        guard !used.isEmpty else {
            throw TierCacheError(.invalidConfiguration, "zstd: dictionary training needs at least one non-empty sample")
        }
        guard capacity >= 256 else {
            throw TierCacheError(.invalidConfiguration, "zstd: dictionary capacity \(capacity) is below 256 bytes")
        }
        var concatenated: [UInt8] = []
        concatenated.reserveCapacity(used.reduce(0) { $0 + $1.count })
        for sample in used { concatenated += sample }
        let sizes = used.map { $0.count }
        var dictionary = [UInt8](repeating: 0, count: capacity)
        let result = dictionary.withUnsafeMutableBytes { out in
            concatenated.withUnsafeBytes { src in
                sizes.withUnsafeBufferPointer { sizes in
                    ZDICT_trainFromBuffer(out.baseAddress, out.count, src.baseAddress, sizes.baseAddress, UInt32(sizes.count))
                }
            }
        }
        if ZDICT_isError(result) != 0 { throw zdictError(result, in: "ZDICT_trainFromBuffer") }
        dictionary.removeSubrange(result...)
        return try ZstdDictionary(bytes: dictionary)
    }

    public static func == (lhs: ZstdDictionary, rhs: ZstdDictionary) -> Bool {
        lhs.id == rhs.id && (lhs.storage === rhs.storage || lhs.storage.bytes == rhs.storage.bytes)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(storage.bytes.count)
    }

    /// The bytes and the digested decompression dictionary, freed with the last copy.
    /// Immutable after init; libzstd allows one DDict to be used by many threads at once.
    final class Storage: @unchecked Sendable {
        let bytes: [UInt8]
        let ddict: OpaquePointer

        init(bytes: [UInt8], ddict: OpaquePointer) {
            self.bytes = bytes
            self.ddict = ddict
        }

        deinit { ZSTD_freeDDict(ddict) }
    }
}
