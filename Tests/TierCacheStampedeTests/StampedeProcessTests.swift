#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import TierCache
import TierCacheS3

/// moto from scripts/start-moto.sh (signature checking on), and the tiercache-stampede binary.
enum Stampede {
    static let environment = ProcessInfo.processInfo.environment

    static var client: S3Client? {
        guard let endpoint = environment["TIERCACHE_TEST_S3_ENDPOINT"], let id = environment["TIERCACHE_TEST_ACCESS_KEY_ID"],
              let secret = environment["TIERCACHE_TEST_SECRET_ACCESS_KEY"], !endpoint.isEmpty else { return nil }
        return try? S3Client(configuration: .init(region: .usEast1, endpoint: endpoint,
                                                  credentials: .static(AWSCredentials(accessKeyID: id, secretAccessKey: secret))))
    }

    /// tiercache-stampede, built next to the test bundle.
    static let executable: String? = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        var directory = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while !directory.isEmpty {
            directory = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
            if access(directory + "/tiercache-stampede", X_OK) == 0 { return directory + "/tiercache-stampede" }
            if directory.hasSuffix(".build") { break }
        }
        return nil
    }()

    static var isAvailable: Bool {
        if client == nil { print("skipping stampede process tests: moto is not running (scripts/test.sh sources scripts/start-moto.sh)") }
        if executable == nil { print("skipping stampede process tests: tiercache-stampede is not built next to the tests") }
        return client != nil && executable != nil
    }

    struct Outcome: Decodable {
        var pid: Int32
        var source: String
        var ms: Int
        var loaderRuns: Int
        var coordination: String
        var valid: Bool
    }

    /// Starts `count` processes that all begin at one wall-clock instant; their log lines
    /// (notice and above) go to `logs`.
    static func start(_ count: Int, bucket: String, logs: String, arguments: [String]) throws -> [(Process, Pipe)] {
        _ = FileManager.default.createFile(atPath: logs, contents: nil)
        let logFile = try #require(FileHandle(forWritingAtPath: logs))
        let startAt = SystemCacheClock().now().millisecondsSince1970 + 1500
        return try (0..<count).map { _ in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try #require(executable))
            process.arguments = ["--bucket", bucket, "--protect", "--start-at", String(startAt)] + arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = logFile
            process.environment = ProcessInfo.processInfo.environment.merging(["TIERCACHE_STAMPEDE_LOG": "notice"]) { $1 }
            try process.run()
            return (process, pipe)
        }
    }

    /// Waits for a process and reads its JSON line; nil when it was killed or printed nothing.
    static func finish(_ process: Process, _ pipe: Pipe) -> Outcome? {
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else { return nil }
        return try? JSONDecoder().decode(Outcome.self, from: data)
    }

    /// The log lines the processes wrote.
    static func logLines(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    static func markers(_ client: S3Client, _ bucket: String) async throws -> [String] {
        // "markers", not "markers/": moto mis-checks signatures of a prefix holding "/".
        try await client.listAllObjects(bucket: bucket, prefix: "markers").map(\.key)
    }
}

@Suite("A cold-start burst of processes against moto", .enabled(if: Stampede.isAvailable, "moto or tiercache-stampede is missing"),
       .serialized)
struct StampedeProcessTests {
    @Test("20 processes, an empty bucket, the lease on: the loader runs once, everyone gets the value")
    func burst() async throws {
        let client = try #require(Stampede.client)
        let bucket = "stampede-\(UInt32.random(in: 0...UInt32.max))"
        try await client.createBucket(bucket)
        let logs = NSTemporaryDirectory() + bucket + ".log"
        defer { unlink(logs) }
        let processes = try Stampede.start(20, bucket: bucket, logs: logs, arguments: ["--build-ms", "1000", "--wait-ms", "30000", "--request-timeout-ms", "10000"])
        let outcomes = processes.map { Stampede.finish($0.0, $0.1) }
        let finished = outcomes.compactMap { $0 }
        try #require(finished.count == 20, "\(20 - finished.count) processes failed")
        #expect(finished.allSatisfy { $0.valid })
        let markers = try await Stampede.markers(client, bucket)
        #expect(markers.count == 1, "loader runs: \(markers); answers: \(finished.map { $0.coordination }); logs:\n\(Stampede.logLines(logs))")
        #expect(finished.reduce(0) { $0 + $1.loaderRuns } == 1)
        #expect(finished.filter { $0.source == "loader" }.count == 1)
        #expect(finished.filter { $0.source == "tier(s3)" }.count == 19)
        // No lease is left behind.
        let leases = try await client.listAllObjects(bucket: bucket, prefix: "cache").filter { $0.key.hasSuffix(".lease") }
        #expect(leases.isEmpty)
    }

    @Test("the lease holder is killed mid-build: another process takes over after the lease expiry")
    func killedHolder() async throws {
        let client = try #require(Stampede.client)
        let bucket = "stampede-kill-\(UInt32.random(in: 0...UInt32.max))"
        try await client.createBucket(bucket)
        let logs = NSTemporaryDirectory() + bucket + ".log"
        defer { unlink(logs) }
        let processes = try Stampede.start(
            20, bucket: bucket, logs: logs, arguments: ["--build-ms", "2000", "--lease-ms", "1000", "--wait-ms", "30000", "--request-timeout-ms", "10000"])
        // The first loader run writes its marker, then builds for 2 s: kill it then.
        var victim: Int32?
        let giveUp = ContinuousClock.now.advanced(by: .seconds(30))
        while victim == nil, ContinuousClock.now < giveUp {
            if let marker = try await Stampede.markers(client, bucket).first {
                victim = Int32(marker.dropFirst("markers/".count))
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let killed = try #require(victim, "no loader started")
        let killedAt = SystemCacheClock().now()
        #expect(kill(killed, SIGKILL) == 0)
        let outcomes = processes.map { Stampede.finish($0.0, $0.1) }
        let finished = outcomes.compactMap { $0 }
        #expect(finished.count == 19)
        #expect(!finished.contains { $0.pid == killed })
        #expect(finished.allSatisfy { $0.valid })
        // Two loader runs: the killed holder's and the one that took over its expired lease.
        let markers = try await Stampede.markers(client, bucket)
        #expect(markers.count == 2, "loader runs: \(markers); answers: \(finished.map { $0.coordination }); logs:\n\(Stampede.logLines(logs))")
        #expect(finished.filter { $0.source == "loader" }.count == 1)
        #expect(finished.filter { $0.source == "tier(s3)" }.count == 18)
        // The entry appeared in the bucket, after the killed holder's lease expired.
        let entry = try #require(try await client.headObject(bucket: bucket, key: "cache/stampede/init.v1"))
        let created = try #require(S3Tier.expiry(objectKey: "", metadata: entry.metadata, size: entry.contentLength)?.createdAt)
        #expect(created > killedAt)
    }
}
