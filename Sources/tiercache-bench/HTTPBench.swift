import TierCacheHTTP

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `tiercache-bench http`: the bare HTTP client against the curl command-line tool.
///
/// 1,000 sequential GETs of a 4 KiB file from nginx on loopback, through one `HTTPClient`, versus
/// one `curl` process fetching the same 1,000 URLs (it reuses its connection too). This is the S3
/// benchmark without signing: the client's own share of the S3 suite's 1.3x budget. Needs `nginx`
/// and `curl` on PATH (scripts/setup.sh installs them); prints why and skips otherwise.
enum HTTPBench {
    static let suite = "http"
    static let requests = 1000

    static func run() async throws {
        guard let nginx = Nginx.start() else {
            Report.info(suite, "skipped: nginx or curl not found (run scripts/setup.sh)")
            return
        }
        defer { nginx.stop() }
        let urls = (0..<requests).map { "\(nginx.baseURL)/obj4k?i=\($0)" }
        let config = nginx.directory + "/curl-urls.cfg"
        let lines = urls.map { "url = \"\($0)\"\noutput = \"/dev/null\"\n" }.joined()
        guard writeFile(config, Array(lines.utf8)) else {
            Report.info(suite, "skipped: cannot write \(config)")
            return
        }

        let client = HTTPClient()
        defer { client.shutdown() }
        // Warm up both (connection, page cache, curl's binary).
        _ = try await client.execute(HTTPRequest(url: urls[0]))
        _ = runProcess(["curl", "-s", "-K", config])

        var bestOurs = Double.infinity
        var bestCurl = Double.infinity
        var bytes = 0
        for _ in 0..<5 {
            let start = nowNanoseconds()
            for url in urls {
                let response = try await client.execute(HTTPRequest(url: url))
                guard response.status == 200 else { throw BenchError("GET \(url): status \(response.status)") }
                bytes += response.body.count
            }
            bestOurs = min(bestOurs, Double(nowNanoseconds() - start))
            let curlStart = nowNanoseconds()
            guard runProcess(["curl", "-s", "-f", "-K", config]) == 0 else { throw BenchError("curl failed") }
            bestCurl = min(bestCurl, Double(nowNanoseconds() - curlStart))
        }
        // Over the whole run, warm-up included: 1 means every request reused the first connection.
        let connections = client.connectionsOpened
        guard bytes == 5 * requests * 4096 else { throw BenchError("short bodies: \(bytes) bytes") }
        Report.line(
            suite, "1000 sequential 4 KiB GETs, HTTPClient time / curl CLI time",
            ratio: bestOurs / bestCurl, goal: .atMost(1.3),
            detail: "ours=\(format(bestOurs / 1e6))ms curl=\(format(bestCurl / 1e6))ms connections=\(connections)"
        )
    }
}

extension HTTPBench {
    struct BenchError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// nginx serving a 4 KiB file on a free loopback port, from a temporary directory.
    struct Nginx {
        let directory: String
        let port: Int
        var baseURL: String { "http://127.0.0.1:\(port)" }

        static func start() -> Nginx? {
            guard runProcess(["sh", "-c", "command -v nginx >/dev/null && command -v curl >/dev/null"]) == 0 else { return nil }
            var template = Array("/tmp/tiercache-nginx-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { return nil }
            let directory = String(cString: made)
        chmod(directory, 0o755)  // nginx workers run as an unprivileged user
            mkdir(directory + "/www", 0o755)
            mkdir(directory + "/logs", 0o755)
            var object = [UInt8](repeating: 0, count: 4096)
            for index in object.indices { object[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
            guard writeFile(directory + "/www/obj4k", object) else { return nil }
            for attempt in 0..<10 {
                let port = 20000 + Int(getpid() % 20000) + attempt * 97
                let config = """
                    worker_processes 1;
                    daemon on;
                    pid \(directory)/nginx.pid;
                    error_log \(directory)/logs/error.log;
                    events { worker_connections 64; }
                    http {
                        access_log off;
                        keepalive_requests 1000000;
                        keepalive_timeout 60s;
                        client_body_temp_path \(directory)/logs;
                        proxy_temp_path \(directory)/logs;
                        fastcgi_temp_path \(directory)/logs;
                        uwsgi_temp_path \(directory)/logs;
                        scgi_temp_path \(directory)/logs;
                        server { listen 127.0.0.1:\(port); root \(directory)/www; }
                    }

                    """
                guard writeFile(directory + "/nginx.conf", Array(config.utf8)) else { return nil }
                if runProcess(["nginx", "-q", "-c", directory + "/nginx.conf", "-p", directory]) == 0 {
                    return Nginx(directory: directory, port: port)
                }
            }
            return nil
        }

        func stop() {
            _ = runProcess(["nginx", "-q", "-c", directory + "/nginx.conf", "-p", directory, "-s", "stop"])
            _ = runProcess(["rm", "-rf", directory])
        }
    }

    @discardableResult
    static func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
        guard let file = fopen(path, "wb") else { return false }
        defer { fclose(file) }
        return fwrite(bytes, 1, bytes.count, file) == bytes.count
    }

    /// Runs a command found on PATH, stdout and stderr to /dev/null; returns its exit status.
    static func runProcess(_ arguments: [String]) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        guard posix_spawnp(&pid, arguments[0], &actions, nil, &argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : -1
    }
}
