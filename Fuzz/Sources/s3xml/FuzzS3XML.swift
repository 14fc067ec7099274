import FuzzSupport
@testable import TierCacheS3

/// S3's XML reader and the readers on top of it (error bodies, ListObjectsV2 pages, lifecycle
/// configurations): malformed, deep or huge documents give nil or a typed error, never a trap; a
/// lifecycle configuration written back (its rules' own bytes) reads back with the same rules.
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
    if let lifecycle = try? S3LifecycleConfiguration.parse(bytes, transitionDefaultMinimumObjectSize: nil, status: 200) {
        let again = try? S3LifecycleConfiguration.parse(Array(lifecycle.xml.utf8), transitionDefaultMinimumObjectSize: nil,
                                                        status: 200)
        precondition(again?.rules == lifecycle.rules, "a lifecycle configuration does not read back as written")
    }
    return 0
}

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

#if canImport(Glibc)
import Glibc
#endif

func writeSeeds() throws {}  // text seeds: files in Fuzz/corpus/s3xml/

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_s3xml_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
