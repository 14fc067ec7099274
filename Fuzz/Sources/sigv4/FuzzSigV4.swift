import FuzzSupport
import TierCache
import TierCacheS3

let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                 sessionToken: "token")
let signers = [SigV4Signer(region: "us-east-1"), SigV4Signer(region: "eu-west-1", service: "lambda", rules: .generic)]

/// SigV4 canonicalizer: lines of the input are method, path, query, then `name:value` headers.
/// Any text (invalid percent-escapes, dot segments, odd query pairs, non-ASCII, empty names)
/// signs without a trap, deterministically.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    while lines.count < 3 { lines.append("") }
    let headers: [(name: String, value: String)] = lines.dropFirst(3).map { line in
        guard let colon = line.firstIndex(of: ":") else { return (line, "") }
        return (String(line[..<colon]), String(line[line.index(after: colon)...]))
    }
    let date = WallTime(millisecondsSince1970: 1_440_938_160_000)
    // One signer per input (the first byte's parity picks S3 or generic rules): each signature
    // is several HMAC rounds, slow in a debug ASan build.
    let signer = signers[Int(size > 0 ? data[0] & 1 : 0)]
    let signature = signer.sign(method: lines[0], path: lines[1], query: lines[2], headers: headers,
                                payload: .unsigned, credentials: credentials, date: date)
    precondition(signature.signature.utf8.count == 64, "a signature is not 32 hex bytes")
    if size > 0, data[0] & 2 != 0 {
        _ = signer.presign(method: lines[0], path: lines[1], query: lines[2], headers: headers,
                           payload: .unsigned, credentials: credentials, date: date, expires: 60)
    }
    return 0
}

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

#if canImport(Glibc)
import Glibc
#endif

func writeSeeds() throws {}  // text seeds: files in Fuzz/corpus/sigv4/

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_sigv4_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
