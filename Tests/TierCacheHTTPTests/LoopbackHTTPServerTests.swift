import Testing
import TierCache
import TierCacheHTTP
import TierCacheTesting

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens a TCP connection to 127.0.0.1:`port`, sends `bytes`, and reads until the server closes.
/// Blocking, so it runs on a detached task: these tests exercise the server with raw bytes the
/// client would never send (chunked bodies, pipelining, HTTP/1.0).
private func exchange(port: Int, sending bytes: [UInt8]) async throws -> String {
    try await Task.detached {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TierCacheError(.storage, "socket failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw TierCacheError(.storage, "connect failed: errno \(errno)") }
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw TierCacheError(.storage, "short send") }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            received.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: received, as: UTF8.self)
    }.value
}

private func occurrences(of needle: String, in text: String) -> Int {
    text.split(separator: needle, omittingEmptySubsequences: false).count - 1
}

@Suite("LoopbackHTTPServer")
struct LoopbackHTTPServerTests {
    @Test("Chunked bodies are decoded and pipelined requests answered in order on one connection")
    func chunkedAndPipelined() async throws {
        let server = try LoopbackHTTPServer { request in
            .init(status: 200, body: Array("[\(request.path):".utf8) + request.body + Array("]".utf8))
        }
        defer { server.stop() }
        let wire = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            + "GET /b?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        let text = try await exchange(port: server.port, sending: Array(wire.utf8))
        #expect(occurrences(of: "HTTP/1.1 200 OK\r\n", in: text) == 2)
        let first = try #require(text.firstRange(of: "[/a:hello world]"))
        let second = try #require(text.firstRange(of: "[/b:]"))
        #expect(first.lowerBound < second.lowerBound)
        let recorded = server.recordedRequests
        #expect(recorded.count == 2)
        #expect(recorded.first?.body == Array("hello world".utf8))
        #expect(recorded.last?.path == "/b")
        #expect(recorded.last?.query == "q=1")
        #expect(recorded.first?.connection == recorded.last?.connection)
        #expect(server.connectionsAccepted == 1)
    }

    @Test("HTTP/1.0 without keep-alive gets one response and a close")
    func http10Closes() async throws {
        let server = try LoopbackHTTPServer { _ in .init(status: 200, body: Array("ok".utf8)) }
        defer { server.stop() }
        let text = try await exchange(port: server.port, sending: Array("GET / HTTP/1.0\r\n\r\n".utf8))
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.hasSuffix("\r\n\r\nok"))
        #expect(text.contains("Content-Length: 2\r\n"))
    }

    @Test("Expect: 100-continue gets an interim 100; the client returns the final response only")
    func expectContinue() async throws {
        let server = try LoopbackHTTPServer { request in
            .init(status: 201, headers: [("X-Final", "yes")], body: request.body)
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let response = try await client.execute(HTTPRequest(
            method: .put, url: server.baseURL + "/e", headers: ["Expect": "100-continue"], body: [1, 2, 3]
        ))
        #expect(response.status == 201)
        #expect(response.body == [1, 2, 3])
        #expect(response.headers["x-final"] == "yes")
        #expect(response.headers.count == 2)  // X-Final and Content-Length: nothing from the 100
        #expect(server.recordedRequests.last?.header("expect") == "100-continue")
    }

    @Test("A request above maxRequestBytes gets 413 and a close")
    func requestLimit() async throws {
        let server = try LoopbackHTTPServer(configuration: .init(maxRequestBytes: 1024)) { _ in .init() }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let response = try await client.execute(HTTPRequest(method: .put, url: server.baseURL + "/big", body: [UInt8](repeating: 0, count: 4096)))
        #expect(response.status == 413)
        #expect(server.requestCount == 0)
    }

    @Test("stop() ends stuck connections, joins every thread and closes the port")
    func stopWithStuckConnections() async throws {
        let server = try LoopbackHTTPServer { _ in .init() }
        server.enqueue([.neverAnswer, .delay(.seconds(60))])
        let client = HTTPClient(configuration: .init(timeout: nil))
        defer { client.shutdown() }
        let first = Task { try await client.execute(HTTPRequest(url: server.baseURL + "/1")) }
        let second = Task { try await client.execute(HTTPRequest(url: server.baseURL + "/2")) }
        while server.requestCount < 2 {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(server.openConnections == 2)
        server.stop()
        server.stop()
        #expect(server.openConnections == 0)
        for task in [first, second] {
            let result = await task.result
            if case .failure(let error) = result {
                #expect((error as? HTTPClientError)?.code == .transport, "\(error)")
            } else {
                Issue.record("a request to a stopped server succeeded")
            }
        }
        let refused = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/after-stop"))
        }
        #expect(refused?.code == .connectFailed)
    }
}
