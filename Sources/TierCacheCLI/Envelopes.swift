import ArgumentParser
import TierCache
import TierCacheLZ4
import TierCacheZstd

extension SerializerID {
    /// "Raw bytes": the payload is a file's bytes as given, with no serializer. Written by
    /// `tiercache put` and `tiercache warm` (docs/format.md reserves id 3 for it).
    static let rawBytes = SerializerID(rawValue: 3)
}

/// The codec a user names on the command line.
enum CodecChoice: String, CaseIterable, Sendable {
    case zstd, lz4
    case identity = "none"
}

/// Parses `--serializer`: `raw` (3), `json` (1), `binary` (2) or a number 128...255.
func parseSerializer(_ text: String) throws(CLIError) -> SerializerID {
    switch text.lowercased() {
    case "raw": return .rawBytes
    case "json": return .json
    case "binary": return .binary
    default:
        guard let n = UInt8(text), n >= 128 else {
            throw .usage("--serializer must be raw, json, binary or a number from 128 to 255, not '\(text)'")
        }
        return SerializerID(rawValue: n)
    }
}

/// How `put` and `warm` wrap a file: serializer id, codec, level, dictionary and lifetimes.
struct WrapOptions: Sendable {
    var serializer: SerializerID = .rawBytes
    var codec: CodecChoice = .zstd
    var level: Int?
    var dictionary: ZstdDictionary?
    var ttl: Duration = .seconds(86_400)
    var staleFor: Duration = .zero
    var tags: [String: String] = [:]
    var etag: String?
}

/// The options `put` and `warm` share: how a file becomes an envelope.
struct WrapOptionGroup: ParsableArguments {
    @Option(help: ArgumentHelp("The serializer id recorded: raw (3, the file as bytes), json (1) or binary (2) when the file is a value the library's serializer wrote, or 128-255 (default: raw for put, json for warm).", valueName: "raw|json|binary|id"))
    var serializer: String?
    @Option(help: "Codec: zstd, lz4 or none.") var codec: String = "zstd"
    @Option(help: "Compression level (zstd: -7...19, default 3; lz4: 0 fast, 1...12 high compression).") var level: Int?
    @Option(help: ArgumentHelp("A zstd dictionary to compress with (tiercache dict train).", valueName: "file")) var dict: String?
    @Option(help: "How long the entry stays fresh: 90s, 15m, 24h, 7d, 1h30m.") var ttl: String = "24h"
    @Option(name: .customLong("stale-for"), help: "How long after --ttl a stale entry may still be served.") var staleFor: String = "0s"

    /// The parsed options; `defaultSerializer` applies when `--serializer` is not given.
    func wrapOptions(defaultSerializer: SerializerID) throws(CLIError) -> WrapOptions {
        guard let choice = CodecChoice(rawValue: codec.lowercased()) else {
            throw .usage("--codec must be zstd, lz4 or none, not '\(codec)'")
        }
        var options = WrapOptions(codec: choice, level: level)
        options.serializer = try serializer.map(parseSerializer) ?? defaultSerializer
        options.ttl = try parseTTL(ttl, option: "--ttl")
        options.staleFor = try parseTTL(staleFor, option: "--stale-for")
        if let dict {
            guard choice == .zstd else { throw .usage("--dict needs --codec zstd") }
            options.dictionary = try Envelopes.loadDictionaries([dict]).first
        }
        return options
    }
}

enum Envelopes {
    /// Wraps `bytes` as the raw-bytes payload of an envelope for `key`.
    static func wrap(_ bytes: [UInt8], key: CacheKey, options: WrapOptions, now: WallTime) throws(CLIError) -> CacheEntry {
        let codec: any Codec
        do {
            switch options.codec {
            case .zstd:
                codec = try ZstdCodec(configuration: .init(level: options.level ?? ZstdCodec.defaultLevel,
                                                           dictionary: options.dictionary))
            case .lz4:
                if let level = options.level {
                    codec = try LZ4Codec(mode: level <= 0 ? .fast : .highCompression(level: level))
                } else {
                    codec = try LZ4Codec(mode: .fast)
                }
            case .identity:
                codec = IdentityCodec()
            }
        } catch {
            throw .usage("codec \(options.codec.rawValue): \(error.message)")
        }
        let compressed: CompressedPayload?
        do {
            compressed = try codec.compress(bytes)
        } catch {
            throw .failure("compressing with \(options.codec.rawValue) failed: \(error.message)")
        }
        let fresh = now.advanced(by: options.ttl)
        return CacheEntry(
            key: key, serializerID: options.serializer, codecID: compressed == nil ? .identity : codec.id,
            dictionaryID: compressed?.dictionaryID ?? 0, createdAt: now, freshUntil: fresh,
            staleUntil: fresh.advanced(by: options.staleFor), uncompressedLength: UInt64(bytes.count),
            etag: options.etag, tags: options.tags, payload: compressed?.bytes ?? bytes)
    }

    /// Decodes and verifies an envelope.
    static func decode(_ bytes: [UInt8], source: String) throws(CLIError) -> CacheEntry {
        do {
            return try CacheEntry(decoding: bytes)
        } catch {
            throw .invalidEnvelope("\(source) is not a valid TierCache envelope: \(error.message)")
        }
    }

    /// The payload after decompression.
    static func unwrap(_ entry: CacheEntry, dictionaries: [ZstdDictionary], source: String) throws(CLIError) -> [UInt8] {
        guard entry.uncompressedLength <= UInt64(Int.max) else {
            throw .invalidEnvelope("\(source): uncompressed length \(entry.uncompressedLength) is out of range")
        }
        let length = Int(entry.uncompressedLength)
        do throws(TierCacheError) {
            switch entry.codecID {
            case .identity:
                guard entry.payload.count == length else {
                    throw TierCacheError(.malformedEntry, "stored raw, but the payload is \(entry.payload.count) bytes, not \(length)")
                }
                return entry.payload
            case .zstd:
                let codec = try ZstdCodec(configuration: .init(
                    dictionary: dictionaries.first, additionalDictionaries: Array(dictionaries.dropFirst()),
                    maximumDecompressedSize: max(length, ZstdCodec.defaultMaximumDecompressedSize)))
                if entry.dictionaryID != 0, !dictionaries.contains(where: { $0.id == entry.dictionaryID }) {
                    throw TierCacheError(.dictionaryNotLoaded,
                                         "compressed with zstd dictionary \(entry.dictionaryID); pass it with --dict FILE")
                }
                return try codec.decompress(entry.payload, uncompressedLength: length, dictionaryID: entry.dictionaryID)
            case .lz4:
                let codec = try LZ4Codec(configuration: .init(
                    maximumDecompressedSize: max(length, LZ4Codec.defaultMaximumDecompressedSize)))
                return try codec.decompress(entry.payload, uncompressedLength: length, dictionaryID: entry.dictionaryID)
            default:
                throw TierCacheError(.unknownCodec, "codec id \(entry.codecID.rawValue) is not known to this build")
            }
        } catch {
            throw .invalidEnvelope("\(source): the payload does not decode: \(error.message)")
        }
    }

    static func loadDictionaries(_ paths: [String]) throws(CLIError) -> [ZstdDictionary] {
        var result: [ZstdDictionary] = []
        for path in paths {
            let bytes = try LocalFile.read(path)
            do {
                result.append(try ZstdDictionary(bytes: bytes))
            } catch {
                throw .usage("--dict \(path): \(error.message)")
            }
        }
        return result
    }
}

// MARK: - Inspection

/// Everything `inspect` reports about an envelope.
struct Inspection: Encodable, Sendable {
    struct Time: Encodable, Sendable {
        var millisecondsSince1970: Int64
        var iso8601: String
        var relative: String
    }

    var source: String
    var envelopeBytes: Int
    var formatVersion: Int
    var namespace: String
    var name: String
    var schemaVersion: UInt32
    var key: String
    var fingerprint: String
    var serializerID: Int
    var serializer: String
    var codecID: Int
    var codec: String
    var dictionaryID: UInt32
    var createdAt: Time
    var freshUntil: Time
    var staleUntil: Time
    /// `fresh`, `stale` (past fresh-until, before stale-until) or `expired`.
    var state: String
    var uncompressedBytes: UInt64
    var payloadBytes: Int
    /// uncompressed / stored payload (2.0 = half the size).
    var ratio: Double?
    var etag: String?
    var tags: [String: String]
    /// `ok` or `mismatch`.
    var checksum: String
    var storedChecksum: String
    var computedChecksum: String
    /// `ok`, `not checked` (dictionary missing) or the decoding error.
    var payload: String
    var problems: [String]

    var isValid: Bool { problems.isEmpty }

    static func time(_ t: WallTime, now: WallTime) -> Time {
        let delta = t.millisecondsSince1970 - now.millisecondsSince1970
        return Time(millisecondsSince1970: t.millisecondsSince1970, iso8601: formatISO(t),
                    relative: delta >= 0 ? "in \(formatSpan(milliseconds: delta))" : "\(formatSpan(milliseconds: delta)) ago")
    }

    /// Inspects `bytes`. Throws only when the bytes cannot be read as an envelope at all; a wrong
    /// checksum or an undecodable payload is reported in ``problems``.
    static func inspect(_ bytes: [UInt8], source: String, dictionaries: [ZstdDictionary], now: WallTime) throws(CLIError) -> Inspection {
        let stored: UInt64 = bytes.count >= 8
            ? bytes.suffix(8).reversed().reduce(0) { ($0 << 8) | UInt64($1) } : 0
        let computed = bytes.count >= 8 ? XXH64.hash(bytes.prefix(bytes.count - 8)) : 0
        var problems: [String] = []
        let entry: CacheEntry
        do {
            entry = try CacheEntry(decoding: bytes)
        } catch where error.code == .checksumMismatch {
            // Show the header anyway: decode a copy whose checksum is made to match.
            var repaired = bytes
            for i in 0..<8 { repaired[bytes.count - 8 + i] = UInt8(truncatingIfNeeded: computed >> (8 * UInt64(i))) }
            do {
                entry = try CacheEntry(decoding: repaired)
            } catch {
                throw .invalidEnvelope("\(source) is not a valid TierCache envelope: checksum mismatch, and \(error.message)")
            }
            problems.append("checksum mismatch: the bytes were changed after they were written")
        } catch {
            throw .invalidEnvelope("\(source) is not a valid TierCache envelope: \(error.message)")
        }
        var payloadStatus = "ok"
        if problems.isEmpty {
            do {
                let payload = try Envelopes.unwrap(entry, dictionaries: dictionaries, source: source)
                if payload.count != Int(entry.uncompressedLength) {
                    payloadStatus = "decompressed to \(payload.count) bytes, header says \(entry.uncompressedLength)"
                    problems.append(payloadStatus)
                }
            } catch {
                if entry.dictionaryID != 0, !dictionaries.contains(where: { $0.id == entry.dictionaryID }) {
                    payloadStatus = "not checked: needs zstd dictionary \(entry.dictionaryID) (--dict FILE)"
                } else {
                    payloadStatus = error.message
                    problems.append(error.message)
                }
            }
        } else {
            payloadStatus = "not checked"
        }
        let state = entry.isFresh(at: now) ? "fresh" : entry.isUsable(at: now) ? "stale" : "expired"
        return Inspection(
            source: source, envelopeBytes: bytes.count, formatVersion: Int(CacheEntry.formatVersion),
            namespace: entry.key.namespace, name: entry.key.name, schemaVersion: entry.key.schemaVersion,
            key: entry.key.rendered, fingerprint: entry.key.fingerprint,
            serializerID: Int(entry.serializerID.rawValue), serializer: serializerName(entry.serializerID),
            codecID: Int(entry.codecID.rawValue), codec: entry.codecID.description, dictionaryID: entry.dictionaryID,
            createdAt: time(entry.createdAt, now: now), freshUntil: time(entry.freshUntil, now: now),
            staleUntil: time(entry.staleUntil, now: now), state: state,
            uncompressedBytes: entry.uncompressedLength, payloadBytes: entry.payload.count,
            ratio: entry.payload.isEmpty ? nil : Double(entry.uncompressedLength) / Double(entry.payload.count),
            etag: entry.etag, tags: entry.tags,
            checksum: stored == computed ? "ok" : "mismatch",
            storedChecksum: hex(stored), computedChecksum: hex(computed),
            payload: payloadStatus, problems: problems)
    }

    static func serializerName(_ id: SerializerID) -> String {
        id == .rawBytes ? "raw bytes" : id.description
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    var text: String {
        var lines: [(String, String)] = [
            ("source", source),
            ("envelope", "\(envelopeBytes) bytes, format version \(formatVersion)"),
            ("key", key),
            ("namespace", namespace),
            ("name", name),
            ("schema version", String(schemaVersion)),
            ("fingerprint", fingerprint),
            ("serializer", "\(serializer) (id \(serializerID))"),
            ("codec", "\(codec) (id \(codecID))" + (dictionaryID != 0 ? ", dictionary \(dictionaryID)" : "")),
            ("size", "\(uncompressedBytes) bytes uncompressed, \(payloadBytes) stored"
                + (ratio.map { ", ratio \(formatRatio($0))" } ?? "")),
            ("created", "\(createdAt.iso8601) (\(createdAt.relative))"),
            ("fresh until", "\(freshUntil.iso8601) (\(freshUntil.relative))"),
            ("stale until", "\(staleUntil.iso8601) (\(staleUntil.relative))"),
            ("state", state),
            ("etag", etag ?? "-"),
        ]
        lines.append(("tags", tags.isEmpty ? "-" : tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")))
        lines.append(("checksum", checksum == "ok" ? "ok (XXH64 \(storedChecksum))"
                        : "MISMATCH (stored \(storedChecksum), computed \(computedChecksum))"))
        lines.append(("payload", payload))
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { $0.0 + ":" + String(repeating: " ", count: width - $0.0.count + 1) + $0.1 }.joined(separator: "\n")
    }
}
