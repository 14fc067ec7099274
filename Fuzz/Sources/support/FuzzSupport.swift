// What every fuzz target shares: seed writing and the hand-over to libFuzzer's driver.
#if canImport(Glibc)
import Glibc
#endif

/// Writes one seed into the folder named by `TIERCACHE_FUZZ_WRITE_SEEDS`; does nothing without it.
public func writeSeed(_ name: String, _ bytes: [UInt8]) {
    guard let folder = getenv("TIERCACHE_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) else { return }
    guard let file = fopen(folder + "/" + name, "wb") else { fatalError("cannot write \(folder)/\(name)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}

/// `value` as four little-endian bytes.
public func le32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The target's input function; set once by ``runFuzzer(_:_:writeSeeds:fuzzOne:)`` before the
/// driver starts, read only by the driver's thread afterwards.
nonisolated(unsafe) private var currentTarget: ((UnsafePointer<UInt8>, Int) -> CInt)?

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = currentTarget else { return 0 }
    var empty: UInt8 = 0
    guard let data, size > 0 else { return target(&empty, 0) }
    return target(data, size)
}

/// The body of a target's `fuzz_<name>_main` (SwiftPM aliases the executable's `main` to it; with
/// -parse-as-library there is no Swift main): writes seeds when `TIERCACHE_FUZZ_WRITE_SEEDS` is
/// set, otherwise runs libFuzzer's driver over `fuzzOne`.
public func runFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    writeSeeds: () throws -> Void, fuzzOne: @escaping (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt {
    if getenv("TIERCACHE_FUZZ_WRITE_SEEDS") != nil {
        do { try writeSeeds() } catch { fatalError("seeds: \(error)") }
        return 0
    }
    currentTarget = fuzzOne
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, { testOneInput($0, $1) })
}
