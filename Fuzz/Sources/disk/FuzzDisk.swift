import FuzzSupport
import TierCache
@testable import TierCacheDisk

#if canImport(Glibc)
import Glibc
#endif

/// The disk tier's own reader: an entry file read with one `preadv` into header, payload and
/// checksum (`FileSystem.readEntry`), decoded by the split decoder
/// (`CacheEntry.decode(header:payload:checksum:expecting:verifiedChecksum:)`), on any bytes up to
/// 1 MiB (scripts/fuzz.sh gives this target `-max_len=1048576`). Checked: nothing traps; the
/// split decoder accepts exactly what the whole-envelope decoder (`CacheEntry(decoding:)`)
/// accepts as a plain entry (no ETag, no tags) of the expected key, with the same fields; what
/// it declines comes back byte for byte for the whole decoder to judge; a read never comes back
/// short from a file that is all there.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let key = expectedKey(bytes)
    let file = scratchFile.descriptor
    precondition(ftruncate(file, 0) == 0, "ftruncate: \(errno)")
    precondition(bytes.withUnsafeBytes { pwrite(file, $0.baseAddress, $0.count, 0) } == size, "pwrite: \(errno)")

    let fileSystem = FileSystem(faults: nil)
    let full = try? CacheEntry(decoding: bytes)
    let isPlainEntryOfKey = full.map { $0.key == key && $0.etag == nil && $0.tags.isEmpty } ?? false
    let read: FileSystem.EntryRead
    do {
        read = try fileSystem.readEntry(file, size: size, key: key, nowait: false, verifiedChecksum: nil, path: "fuzz")
    } catch {
        preconditionFailure("reading a file that is all there failed: \(error)")
    }
    switch read {
    case .entry(let entry, let checksum):
        guard let full else { preconditionFailure("the split decoder accepted what the whole decoder refuses") }
        precondition(isPlainEntryOfKey, "the split decoder accepted an entry the key does not own, or one with an ETag or tags")
        precondition(same(entry, full), "the two decoders disagree on the entry's fields")
        precondition(checksum == storedChecksum(bytes), "the checksum reported is not the file's")
    case .bytes(let whole):
        precondition(whole == bytes, "the bytes handed back are not the file's")
        precondition(!isPlainEntryOfKey, "the split decoder declined a plain entry of its key")
    case .incomplete:
        preconditionFailure("a complete file was read short")
    }

    // The same file read again with the checksum taken as verified (a version read before): no
    // hash, every other check still made, so whatever it accepts is the key's plain entry with
    // the fields its header says.
    if size >= 8, let trusted = try? fileSystem.readEntry(
        file, size: size, key: key, nowait: false, verifiedChecksum: storedChecksum(bytes), path: "fuzz"),
       case .entry(let entry, _) = trusted {
        precondition(entry.key == key && entry.etag == nil && entry.tags.isEmpty, "a trusted read accepted another key's entry")
        precondition(entry.staleUntil >= entry.freshUntil, "a trusted read accepted expiry out of order")
        precondition(entry.payload.count == size - (60 + key.namespace.utf8.count + key.name.utf8.count) - 8, "a trusted read mis-split the file")
        if let full, isPlainEntryOfKey { precondition(same(entry, full), "the trusted read disagrees with the whole decoder") }
    }
    // A read from the page cache only gives the same answer, or an error (never a different entry).
    if let cached = try? fileSystem.readEntry(file, size: size, key: key, nowait: true, verifiedChecksum: nil, path: "fuzz") {
        switch (cached, read) {
        case (.entry(let a, _), .entry(let b, _)): precondition(same(a, b), "a non-blocking read gave another entry")
        case (.bytes(let a), .bytes(let b)): precondition(a == b, "a non-blocking read gave other bytes")
        case (.incomplete, _): break  // the page cache did not hold all of it
        default: preconditionFailure("a non-blocking read decided otherwise")
        }
    }
    // The sweep's peek reads the first 60 bytes.
    let prefix = try? fileSystem.readPrefix(file, count: 60, path: "fuzz")
    precondition(prefix == Array(bytes.prefix(60)), "the prefix read is not the file's")
    return 0
}

/// The key the file is read for: the one its header names when that is a valid key (so that
/// mutations keep reaching the split decoder's deeper checks), otherwise `fuzz/seed#v3`.
func expectedKey(_ bytes: [UInt8]) -> CacheKey {
    let fallback = try! CacheKey(namespace: "fuzz", name: "seed", schemaVersion: 3)
    guard bytes.count >= 60 else { return fallback }
    func le<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
    let nsLength = Int(le(52, UInt16.self))
    let nameLength = Int(le(54, UInt16.self))
    guard bytes.count >= 60 + nsLength + nameLength,
          let namespace = String(validating: bytes[60..<(60 + nsLength)], as: UTF8.self),
          let name = String(validating: bytes[(60 + nsLength)..<(60 + nsLength + nameLength)], as: UTF8.self),
          let key = try? CacheKey(namespace: namespace, name: name, schemaVersion: le(12, UInt32.self))
    else { return fallback }
    return key
}

func storedChecksum(_ bytes: [UInt8]) -> UInt64 {
    guard bytes.count >= 8 else { return 0 }
    return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self)) }
}

func same(_ a: CacheEntry, _ b: CacheEntry) -> Bool {
    a.key == b.key && a.payload == b.payload && a.serializerID == b.serializerID && a.codecID == b.codecID
        && a.dictionaryID == b.dictionaryID && a.createdAt == b.createdAt && a.freshUntil == b.freshUntil
        && a.staleUntil == b.staleUntil && a.uncompressedLength == b.uncompressedLength && a.etag == b.etag && a.tags == b.tags
}

/// One file, rewritten for each input (removed from its folder at once: only the descriptor is used).
final class ScratchFile: Sendable {
    let descriptor: Int32
    init() {
        var template = Array("/tmp/tiercache-fuzz-disk-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "mkstemp: \(errno)")
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        descriptor = fd
    }
}

let scratchFile = ScratchFile()

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

func writeSeeds() throws {
    let now = WallTime(millisecondsSince1970: 1_700_000_000_000)
    func entry(_ key: CacheKey, payload: [UInt8], etag: String? = nil, tags: [String: String] = [:]) -> CacheEntry {
        CacheEntry(key: key, serializerID: .json, codecID: .identity, createdAt: now,
                   freshUntil: now.advanced(by: .seconds(900)), staleUntil: now.advanced(by: .seconds(86400)),
                   uncompressedLength: UInt64(payload.count), etag: etag, tags: tags, payload: payload)
    }
    let key = try CacheKey(namespace: "fuzz", name: "seed", schemaVersion: 3)
    writeSeed("plain", entry(key, payload: Array("{\"seed\":\"plain\",\"n\":[1,2,3]}".utf8)).encoded())
    writeSeed("empty-payload", entry(key, payload: []).encoded())
    writeSeed("tagged", entry(key, payload: Array("{}".utf8), etag: "\"v1\"", tags: ["team": "a"]).encoded())
    let other = try CacheKey(namespace: ".hidden", name: "日本語/key", schemaVersion: 1)
    writeSeed("other-key", entry(other, payload: Array(repeating: 7, count: 300)).encoded())
    // Near the top of the input size: a payload of just under 1 MiB (patterned, so that the
    // repository stores it small).
    let large = (0..<((1 << 20) - 200)).map { UInt8(truncatingIfNeeded: $0 % 251) }
    writeSeed("large", entry(key, payload: large).encoded())
}

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_disk_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
