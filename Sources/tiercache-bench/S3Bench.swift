import TierCacheHTTP
import TierCacheS3

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `tiercache-bench s3`: S3 GetObject through `S3Client` (SigV4 signing, URL building, response
/// parsing included) against the curl command-line tool.
///
/// nginx on loopback (a temporary config on a free port, files in a temporary root; it ignores
/// the signature) serves 1,000 distinct 4 KiB objects under `/bench-bucket/`; the client fetches
/// them sequentially with path-style addressing, curl fetches the same 1,000 URLs in one process
/// (`curl -K`, output to /dev/null). Ratio = our time / curl's, goal <= 1.3, with one connection
/// for a whole run. Needs nginx and curl (scripts/setup.sh); prints why and skips otherwise.
enum S3Bench {
    static let suite = "s3"
    static let requests = 1000

    static func run() async throws {
        guard let nginx = HTTPBench.Nginx.start() else {
            Report.info(suite, "skipped: nginx or curl not found (run scripts/setup.sh)")
            return
        }
        defer { nginx.stop() }
        mkdir(nginx.directory + "/www/bench-bucket", 0o755)
        var object = [UInt8](repeating: 0, count: 4096)
        let keys = (0..<requests).map { "objects/obj-\($0)" }
        mkdir(nginx.directory + "/www/bench-bucket/objects", 0o755)
        for (index, key) in keys.enumerated() {
            for i in object.indices { object[i] = UInt8(truncatingIfNeeded: i &* 31 &+ index) }
            guard HTTPBench.writeFile(nginx.directory + "/www/bench-bucket/" + key, object) else {
                throw HTTPBench.BenchError("cannot write the object files")
            }
        }
        let config = nginx.directory + "/curl-s3.cfg"
        let lines = keys.map { "url = \"\(nginx.baseURL)/bench-bucket/\($0)\"\noutput = \"/dev/null\"\n" }.joined()
        guard HTTPBench.writeFile(config, Array(lines.utf8)) else { throw HTTPBench.BenchError("cannot write \(config)") }

        let credentials = AWSCredentials(accessKeyID: "AKIDBENCH", secretAccessKey: "bench-secret")
        func makeClient() throws -> S3Client {
            try S3Client(configuration: .init(region: .usEast1, endpoint: nginx.baseURL, credentials: .static(credentials)))
        }
        // Warm-up: page cache, curl's binary, the client's code paths.
        let warm = try makeClient()
        _ = try await warm.getObject(bucket: "bench-bucket", key: keys[0])
        warm.shutdown()
        _ = HTTPBench.runProcess(["curl", "-s", "-K", config])

        var bestOurs = Double.infinity
        var bestCurl = Double.infinity
        var connections: [Int] = []
        for _ in 0..<5 {
            // A fresh client per round, so its connection count is this round's alone.
            let client = try makeClient()
            let start = nowNanoseconds()
            var bytes = 0
            for key in keys {
                guard let got = try await client.getObject(bucket: "bench-bucket", key: key) else {
                    throw HTTPBench.BenchError("GET \(key): missing")
                }
                bytes += got.body.count
            }
            bestOurs = min(bestOurs, Double(nowNanoseconds() - start))
            connections.append(client.httpClient.connectionsOpened)
            client.shutdown()
            guard bytes == requests * 4096 else { throw HTTPBench.BenchError("short bodies: \(bytes) bytes") }
            let curlStart = nowNanoseconds()
            guard HTTPBench.runProcess(["curl", "-s", "-f", "-K", config]) == 0 else { throw HTTPBench.BenchError("curl failed") }
            bestCurl = min(bestCurl, Double(nowNanoseconds() - curlStart))
        }
        Report.line(
            suite, "1000 sequential signed 4 KiB GetObjects, S3Client time / curl CLI time",
            ratio: bestOurs / bestCurl, goal: .atMost(1.3),
            detail: "ours=\(format(bestOurs / 1e6))ms curl=\(format(bestCurl / 1e6))ms connections-per-run=\(connections.max() ?? 0)")
        Report.line(suite, "connections opened per 1000-GET run (one expected)", ratio: Double(connections.max() ?? 0),
                    goal: .atMost(1))
    }
}
