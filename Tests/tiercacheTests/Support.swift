import ArgumentParser
import Foundation
import TierCache
import TierCacheCLI

/// What a command printed and how it ended.
struct Outcome: Sendable {
    var code: Int32
    var stdout: [UInt8]
    var stderr: String
    var text: String { String(decoding: stdout, as: UTF8.self) }

    func json() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(stdout))
        guard let dictionary = object as? [String: Any] else { throw CocoaError(.coderReadCorrupt) }
        return dictionary
    }

    func jsonArray() throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(stdout))
        guard let array = object as? [[String: Any]] else { throw CocoaError(.coderReadCorrupt) }
        return array
    }
}

final class Capture: @unchecked Sendable {
    private let lock = NSRecursiveLockFree()
    private var out: [UInt8] = []
    private var err = ""
    func addOut(_ b: [UInt8]) { lock.with { out += b } }
    func addErr(_ s: String) { lock.with { err += s } }
    var result: ([UInt8], String) { lock.with { (out, err) } }
}

/// A tiny pthread mutex for the capture (the project's Lock is package-internal to the library).
final class NSRecursiveLockFree: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func with<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// Runs `tiercache <arguments>` in this process, capturing its output.
func run(_ arguments: [String], stdin: [UInt8] = [], environment: [String: String] = [:], terminal: Bool = false) async -> Outcome {
    let capture = Capture()
    let console = Console(out: { capture.addOut($0) }, err: { capture.addErr($0) }, isTerminal: terminal,
                          stdin: { stdin }, environment: environment)
    var code: Int32 = 0
    do {
        var command = try TierCacheCommand.parseAsRoot(arguments)
        if var async = command as? any AsyncParsableCommand {
            try await Console.$current.withValue(console) { try await async.run() }
        } else {
            try command.run()
        }
    } catch let exit as ExitCode {
        code = exit.rawValue
    } catch {
        code = TierCacheCommand.exitCode(for: error).rawValue
        capture.addErr(TierCacheCommand.fullMessage(for: error))
    }
    let (out, err) = capture.result
    return Outcome(code: code, stdout: out, stderr: err)
}

/// A fresh temporary folder, removed by the caller.
func temporaryFolder() throws -> String {
    let path = NSTemporaryDirectory() + "tiercache-cli-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Real reference data from ../shared/bench-data, or generated JSON when it is absent.
func sampleJSON() -> [UInt8] {
    for candidate in ["../shared/bench-data", "/work/shared/bench-data"] {
        let dir = URL(fileURLWithPath: candidate)
        if let names = try? FileManager.default.contentsOfDirectory(atPath: dir.path),
           let name = names.filter({ $0.hasSuffix(".json") }).sorted().first,
           let data = try? Data(contentsOf: dir.appendingPathComponent(name)), data.count > 256 {
            return [UInt8](data)
        }
    }
    let rows = (0..<200).map { "{\"id\":\($0),\"name\":\"item-\($0)\",\"region\":\"eu-west-\($0 % 3)\",\"price\":\(Double($0) * 1.25)}" }
    return Array(("[" + rows.joined(separator: ",") + "]").utf8)
}

/// The built `tiercache` executable, next to the test bundle.
func executablePath() -> String? {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { directory = link }
    while !directory.isEmpty, directory != "/" {
        directory = (directory as NSString).deletingLastPathComponent
        let candidate = directory + "/tiercache"
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
           FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        if directory.hasSuffix(".build") { break }
    }
    return nil
}

/// Runs the executable as a child process with stdout and stderr as pipes.
func runChild(_ arguments: [String], stdin: [UInt8] = [], environment: [String: String] = [:]) throws -> Outcome {
    guard let path = executablePath() else { throw CocoaError(.fileNoSuchFile) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    let done = DispatchGroup()
    let errBox = Capture()
    DispatchQueue.global().async(group: done) {
        errBox.addErr(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }
    DispatchQueue.global().async(group: done) {
        input.fileHandleForWriting.write(Data(stdin))
        try? input.fileHandleForWriting.close()
    }
    let stdout = [UInt8](out.fileHandleForReading.readDataToEndOfFile())
    process.waitUntilExit()
    done.wait()
    return Outcome(code: process.terminationStatus, stdout: stdout, stderr: errBox.result.1)
}


/// moto, started by scripts/start-moto.sh, or nil with the reason to print.
struct Moto {
    var endpoint: String
    var environment: [String: String]

    static func fromEnvironment() -> (Moto?, String) {
        let env = ProcessInfo.processInfo.environment
        guard let endpoint = env["TIERCACHE_TEST_S3_ENDPOINT"], !endpoint.isEmpty,
              let id = env["TIERCACHE_TEST_ACCESS_KEY_ID"], let secret = env["TIERCACHE_TEST_SECRET_ACCESS_KEY"]
        else {
            return (nil, "skipped: TIERCACHE_TEST_S3_ENDPOINT / TIERCACHE_TEST_ACCESS_KEY_ID / TIERCACHE_TEST_SECRET_ACCESS_KEY are not set (source scripts/start-moto.sh first)")
        }
        return (Moto(endpoint: endpoint, environment: [
            "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        ]), "")
    }
}

/// Runs a python3 script (boto3 as the reference client) and returns what it printed.
func runPython(_ script: String, environment: [String: String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script]
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let errBox = Capture()
    let done = DispatchGroup()
    DispatchQueue.global().async(group: done) {
        errBox.addErr(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    done.wait()
    guard process.terminationStatus == 0 else {
        throw PythonFailed(status: process.terminationStatus, stderr: errBox.result.1)
    }
    return String(decoding: stdout, as: UTF8.self)
}

struct PythonFailed: Error, CustomStringConvertible {
    var status: Int32
    var stderr: String
    var description: String { "python3 exited \(status): \(stderr)" }
}
