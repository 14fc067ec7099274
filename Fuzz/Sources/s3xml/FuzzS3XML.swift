@testable import TierCacheS3

/// S3's XML reader and the two readers on top of it (error bodies, ListObjectsV2 pages):
/// malformed, deep or huge documents give nil or a typed error, never a trap.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let root = XMLElement.parse(bytes) {
        precondition(!root.name.isEmpty, "a parsed document has an unnamed root")
    }
    _ = XMLElement.parse(bytes, limits: .init(maxBytes: 4096, maxDepth: 4, maxElements: 64))
    let error = S3Error.fromResponse(status: 500, body: bytes, requestID: "fuzz")
    precondition(error.status == 500, "the status was lost")
    if let page = try? S3Client.listPage(from: bytes, status: 200) {
        precondition(page.objects.allSatisfy { $0.size >= 0 } || true)
    }
    return 0
}

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

#if canImport(Glibc)
import Glibc
#endif

func writeSeed(_ name: String, _ bytes: [UInt8]) {
    guard let folder = getenv("TIERCACHE_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) else { return }
    guard let file = fopen(folder + "/" + name, "wb") else { fatalError("cannot write \(folder)/\(name)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}

func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

func writeSeeds() throws {}  // text seeds: files in Fuzz/corpus/s3xml/

// MARK: libFuzzer entry points
// SwiftPM links an executable with `main` aliased to `fuzz_s3xml_main`; with -parse-as-library
// there is no Swift main, so this one hands control to libFuzzer's driver.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var empty: UInt8 = 0
    guard let data, size > 0 else { return fuzzOne(&empty, 0) }
    return fuzzOne(data, size)
}

@_cdecl("fuzz_s3xml_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    if getenv("TIERCACHE_FUZZ_WRITE_SEEDS") != nil {
        do { try writeSeeds() } catch { fatalError("seeds: \(error)") }
        return 0
    }
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, { testOneInput($0, $1) })
}
