#if canImport(Glibc)
import Glibc
#endif
import Testing
import TierCache
import TierCacheTesting

/// The report function (tiercache-demo --function) in a real child process against the emulator.
enum ReportChild {
    /// tiercache-demo, built next to the test bundle.
    static func executable() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        var directory = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while !directory.isEmpty {
            directory = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
            if access(directory + "/tiercache-demo", X_OK) == 0 { return directory + "/tiercache-demo" }
            if directory.hasSuffix(".build") { break }
        }
        return nil
    }

    /// Runs the function with `environment` added to this process's; returns its exit status.
    static func run(_ path: String, environment: [String: String]) throws -> pid_t {
        var merged: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if !environment.keys.contains(where: { text.hasPrefix($0 + "=") }) { merged.append(text) }
            cursor += 1
        }
        merged += environment.map { "\($0.key)=\($0.value)" }
        let argv = [strdup(path), strdup("--function"), nil]
        let envp = merged.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, nil, nil, argv, envp)
        guard rc == 0 else { throw TierCacheError(.storage, "posix_spawn failed: \(rc)") }
        return pid
    }

    static func exitStatus(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    }

    static let data: String = {
        var dir = #filePath
        for _ in 0..<3 { dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)]) }
        return dir + "/Examples/ReportLambda/Data/endpoints.json"
    }()
}

extension LambdaTests {
@Suite("The report function in a child process")
struct ChildProcessTests {
    @Test("an INIT failure posts /init/error and the process exits non-zero")
    func initFailureExits() async throws {
        let path = try #require(ReportChild.executable(), "tiercache-demo is built next to the test bundle")
        let emulator = try LambdaRuntimeAPIEmulator()
        defer { emulator.stop() }
        let pid = try ReportChild.run(path, environment: [
            "AWS_LAMBDA_RUNTIME_API": emulator.runtimeAPI, "AWS_LAMBDA_FUNCTION_NAME": "report",
            "TIERCACHE_DISABLED": "1", "REPORT_DATA": "/nonexistent/endpoints.json", "LOG_LEVEL": "CRITICAL",
        ])
        let posted = await emulator.initError(timeout: .seconds(30))
        let status = ReportChild.exitStatus(pid)
        #expect(status == 1)
        let error = try #require(posted)
        #expect(error.errorTypeHeader == "Runtime.warmSetUnavailable")
        let body = try JSON.parse(String(decoding: error.body, as: UTF8.self))
        #expect(body["errorMessage"]?.string?.contains("/nonexistent/endpoints.json") == true)
        #expect(body["errorType"]?.string == "Runtime.warmSetUnavailable")
        #expect(emulator.nextCalls == 0)
    }

    @Test("built, then hydrated: two environments of the report function share a bucket folder")
    func builtThenHydrated() async throws {
        let path = try #require(ReportChild.executable(), "tiercache-demo is built next to the test bundle")
        let work = "/tmp/tiercache-lambda-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { removeTree(work) }
        var answers: [String] = []
        for environment in 0..<2 {
            let emulator = try LambdaRuntimeAPIEmulator()
            defer { emulator.stop() }
            let id = emulator.enqueue(json: "{}", timeout: .seconds(60))
            let pid = try ReportChild.run(path, environment: [
                "AWS_LAMBDA_RUNTIME_API": emulator.runtimeAPI, "AWS_LAMBDA_FUNCTION_NAME": "report",
                "REPORT_DATA": ReportChild.data, "TIERCACHE_BUCKET_DIR": work + "/bucket",
                "TIERCACHE_DISK_DIR": work + "/tmp-\(environment)", "LOG_LEVEL": "CRITICAL",
            ])
            let outcome = await emulator.outcome(for: id, timeout: .seconds(60))
            emulator.shutdown()
            #expect(ReportChild.exitStatus(pid) == 2, "next answered 500: the loop ended")
            let answer = try #require(outcome)
            #expect(answer.kind == .response)
            answers.append(try #require(try JSON.parse(answer.text)["init"]?.string))
            let report = try JSON.parse(answer.text)
            #expect((report["regions"]?.number ?? 0) > 30)
            #expect((report["regionServices"]?.number ?? 0) > 100)
        }
        #expect(answers == ["built", "hydrated"])
    }
}
}
