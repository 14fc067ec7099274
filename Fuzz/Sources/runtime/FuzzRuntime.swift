import FuzzSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TierCacheHTTP
@testable import TierCacheLambda

/// Runtime API answers: the first byte picks the status, lines up to an empty line are
/// `name: value` headers, the rest is the body. `next`'s reader gives an invocation or a typed
/// error; an Extensions API event body decodes or throws.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let status = [200, 200, 200, 400, 403, 500, 502, 0][Int(data[0] % 8)]
    let rest = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var headers = HTTPHeaders()
    var index = 0
    var bodyStart = rest.count
    while index < rest.count {
        let end = rest[index...].firstIndex(of: UInt8(ascii: "\n")) ?? rest.count
        let line = String(decoding: rest[index..<end], as: UTF8.self)
        index = end + 1
        if line.isEmpty { bodyStart = min(index, rest.count); break }
        if let colon = line.firstIndex(of: ":") {
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.add(name: String(line[..<colon]), value: String(value))
        }
    }
    let body = Array(rest[bodyStart...])
    let response = HTTPResponse(status: status, headers: headers, body: body)
    if let invocation = try? RuntimeAPIClient.invocation(from: response) {
        precondition(status == 200 && !invocation.requestID.isEmpty, "accepted an invocation it should refuse")
        precondition(invocation.payload == body, "the payload was altered")
    }
    _ = try? JSONDecoder().decode(ExtensionEvent.self, from: Data(body))
    return 0
}

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

#if canImport(Glibc)
import Glibc
#endif

func writeSeeds() throws {}  // text seeds: files in Fuzz/corpus/runtime/

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_runtime_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
