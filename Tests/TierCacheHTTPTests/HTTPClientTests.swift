import Testing
import TierCache
import TierCacheHTTP
import TierCacheTesting

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Echoes the request back: status from `?status=N`, the request's method, path, query and
/// headers as `x-echo-*` response headers, the body as the body.
private func echo(_ request: LoopbackHTTPServer.Request) -> LoopbackHTTPServer.Response {
    var status = 200
    if let query = request.query, query.hasPrefix("status="), let value = Int(query.dropFirst(7)) {
        status = value
    }
    var headers: [(name: String, value: String)] = [
        ("X-Echo-Method", request.method),
        ("X-Echo-Path", request.path),
        ("X-Echo-Query", request.query ?? ""),
    ]
    for field in request.headers {
        headers.append((name: "X-Echo-Header", value: "\(field.name)=\(field.value)"))
    }
    return .init(status: status, headers: headers, body: request.body)
}

/// Deterministic, incompressible-looking bytes (xorshift64*), cheap even in a debug build.
private func pseudoRandomBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        var index = 0
        while index < count {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            var word = state &* 0x2545_F491_4F6C_DD1D
            for _ in 0..<8 where index < count {
                buffer[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        initialized = count
    }
}

/// Every easy handle is back in the pool or cleaned up, none attached to a transfer.
private func expectNoLeakedHandles(_ client: HTTPClient, sourceLocation: SourceLocation = #_sourceLocation) {
    let statistics = client.handleStatistics
    #expect(statistics.active == 0, sourceLocation: sourceLocation)
    #expect(statistics.created == statistics.idle + statistics.cleanedUp, sourceLocation: sourceLocation)
    #expect(statistics.idle <= client.configuration.maxIdleHandles, sourceLocation: sourceLocation)
}

/// A listening socket on 127.0.0.1 that never accepts, with its backlog filled by `fillers`
/// connections, so that a further connect attempt hangs in SYN_SENT (Linux drops SYNs to a full
/// accept queue). Returns the port and the descriptors to close.
private func unresponsiveListener() throws -> (port: Int, descriptors: [Int32]) {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard listener >= 0 else { throw TierCacheError(.storage, "socket failed") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(listener, $0, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, $0, &length) == 0
        }
    }
    guard bound else { throw TierCacheError(.storage, "bind/listen failed: errno \(errno)") }
    var descriptors = [listener]
    for _ in 0..<3 {
        let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        descriptors.append(filler)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, length) }
        }
    }
    return (Int(UInt16(bigEndian: address.sin_port)), descriptors)
}

/// A port on 127.0.0.1 with nothing listening: bound, then closed.
private func closedPort() throws -> Int {
    let server = try LoopbackHTTPServer { _ in .init() }
    let port = server.port
    server.stop()
    return port
}

@Suite("HTTPClient")
struct HTTPClientTests {
    @Test("GET returns status, headers and body; header lookup is case-insensitive")
    func get() async throws {
        let server = try LoopbackHTTPServer { request in
            .init(status: 200, headers: [("Content-Type", "text/plain"), ("X-Multi", "a"), ("x-multi", "b")],
                  body: Array("hello \(request.path)".utf8))
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/greeting"))
        #expect(response.status == 200)
        #expect(response.body == Array("hello /greeting".utf8))
        #expect(response.headers["content-type"] == "text/plain")
        #expect(response.headers["CONTENT-TYPE"] == "text/plain")
        #expect(response.headers.values(for: "X-MULTI") == ["a", "b"])
        // Names keep the server's case.
        #expect(response.headers.contains { $0.name == "Content-Type" })
        #expect(response.headers.contains { $0.name == "x-multi" })
        let recorded = try #require(server.recordedRequests.last)
        #expect(recorded.method == "GET")
        #expect(recorded.header("User-Agent") == "swift-tiercache")
    }

    @Test("PUT sends the body with Content-Length, never chunked, never Expect")
    func put() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let body = Array("payload-∂-bytes".utf8)
        let response = try await client.execute(HTTPRequest(
            method: .put, url: server.baseURL + "/bucket/key?x-id=PutObject",
            headers: ["X-Amz-Meta-Expiry": "123", "Content-Type": "application/octet-stream"],
            body: body
        ))
        #expect(response.status == 200)
        #expect(response.body == body)
        let recorded = try #require(server.recordedRequests.last)
        #expect(recorded.method == "PUT")
        #expect(recorded.path == "/bucket/key")
        #expect(recorded.query == "x-id=PutObject")
        #expect(recorded.header("content-length") == String(body.count))
        #expect(recorded.header("transfer-encoding") == nil)
        #expect(recorded.header("expect") == nil)
        #expect(recorded.header("x-amz-meta-expiry") == "123")
        #expect(recorded.header("content-type") == "application/octet-stream")
    }

    @Test("PUT and POST with an empty body send Content-Length: 0 and no Content-Type")
    func emptyBodies() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        for method in [HTTPMethod.put, .post] {
            let response = try await client.execute(HTTPRequest(method: method, url: server.baseURL + "/empty"))
            #expect(response.status == 200)
            let recorded = try #require(server.recordedRequests.last)
            #expect(recorded.method == method.rawValue)
            #expect(recorded.header("content-length") == "0")
            #expect(recorded.header("content-type") == nil)
            #expect(recorded.header("expect") == nil)
        }
    }

    @Test("POST with a body, DELETE, and a custom method")
    func otherMethods() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let posted = try await client.execute(HTTPRequest(method: .post, url: server.baseURL + "/p", body: [1, 2, 3]))
        #expect(posted.headers["x-echo-method"] == "POST")
        #expect(posted.body == [1, 2, 3])
        let deleted = try await client.execute(HTTPRequest(method: .delete, url: server.baseURL + "/d?status=204"))
        #expect(deleted.status == 204)
        #expect(deleted.headers["x-echo-method"] == "DELETE")
        #expect(server.recordedRequests.last?.header("content-length") == nil)
        let patched = try await client.execute(HTTPRequest(method: HTTPMethod(rawValue: "PATCH"), url: server.baseURL + "/x", body: [9]))
        #expect(patched.headers["x-echo-method"] == "PATCH")
        #expect(patched.body == [9])
    }

    @Test("HEAD reads headers only, even when the server announces a length")
    func head() async throws {
        let server = try LoopbackHTTPServer { _ in
            .init(status: 200, headers: [("ETag", "\"abc\"")], body: [UInt8](repeating: 7, count: 5000))
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let response = try await client.execute(HTTPRequest(method: .head, url: server.baseURL + "/obj"))
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(response.headers["etag"] == "\"abc\"")
        #expect(response.headers["content-length"] == "5000")
        // The connection stays usable: the next request on it succeeds.
        let next = try await client.execute(HTTPRequest(url: server.baseURL + "/obj"))
        #expect(next.body.count == 5000)
        #expect(client.connectionsOpened == 1)
    }

    @Test("Request headers go out in order, with empty values, replacing libcurl's own")
    func requestHeaders() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        var headers = HTTPHeaders()
        headers.add(name: "X-First", value: "1")
        headers.add(name: "X-Empty", value: "")
        headers.add(name: "X-First", value: "2")
        headers.add(name: "User-Agent", value: "custom/1.0")
        headers.add(name: "Accept", value: "application/xml")
        _ = try await client.execute(HTTPRequest(url: server.baseURL + "/h", headers: headers))
        let recorded = try #require(server.recordedRequests.last)
        let firsts = recorded.headers.filter { $0.name == "X-First" }.map(\.value)
        #expect(firsts == ["1", "2"])
        #expect(recorded.header("x-empty") == "")
        #expect(recorded.headers.filter { $0.name.lowercased() == "user-agent" }.map(\.value) == ["custom/1.0"])
        #expect(recorded.headers.filter { $0.name.lowercased() == "accept" }.map(\.value) == ["application/xml"])
    }

    @Test("Invalid requests are rejected before anything is sent")
    func invalidRequests() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        let cases = [
            HTTPRequest(url: "http://127.0.0.1:1/a b"),
            HTTPRequest(url: "http://127.0.0.1:1/", headers: ["X-Bad": "a\r\nInjected: yes"]),
            HTTPRequest(url: "http://127.0.0.1:1/", headers: ["Bad Name": "x"]),
            HTTPRequest(method: HTTPMethod(rawValue: "GE T"), url: "http://127.0.0.1:1/"),
            HTTPRequest(url: "ftp://127.0.0.1:1/file"),
            HTTPRequest(url: "not a url at all"),
        ]
        for request in cases {
            let error = await #expect(throws: HTTPClientError.self) { try await client.execute(request) }
            #expect(error?.code == .invalidRequest, "\(request.url): \(String(describing: error))")
            #expect(error?.isRetryable == false)
        }
        expectNoLeakedHandles(client)
    }

    @Test("Clients created concurrently from many tasks all work (curl_global_init runs once)")
    func concurrentClients() async throws {
        let server = try LoopbackHTTPServer { request in .init(status: 200, body: Array(request.path.utf8)) }
        defer { server.stop() }
        try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let client = HTTPClient()
                    defer { client.shutdown() }
                    let response = try await client.execute(HTTPRequest(url: server.baseURL + "/client/\(index)"))
                    #expect(response.body == Array("/client/\(index)".utf8))
                    return client.connectionsOpened
                }
            }
            var total = 0
            for try await opened in group { total += opened }
            #expect(total == 8)
        }
        #expect(server.connectionsAccepted == 8)
    }

    @Test("1,000 sequential requests to one host open one connection")
    func connectionReuse() async throws {
        let server = try LoopbackHTTPServer { request in .init(status: 200, body: Array(request.path.utf8)) }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        for index in 0..<1000 {
            let response = try await client.execute(HTTPRequest(url: server.baseURL + "/item/\(index)"))
            #expect(response.status == 200)
            #expect(response.body == Array("/item/\(index)".utf8))
        }
        #expect(client.connectionsOpened == 1)
        #expect(server.connectionsAccepted == 1)
        #expect(server.requestCount == 1000)
        // One easy handle served every request from the reuse pool.
        #expect(client.handleStatistics.created == 1)
    }

    @Test("Connection refused fails fast as connectFailed, retryable")
    func connectionRefused() async throws {
        let port = try closedPort()
        let client = HTTPClient()
        defer { client.shutdown() }
        let error = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/"))
        }
        #expect(error?.code == .connectFailed)
        #expect(error?.curlCode == 7)
        #expect(error?.curlCodeName?.isEmpty == false)
        #expect(error?.isConnectionError == true)
        #expect(error?.isRetryable == true)
        expectNoLeakedHandles(client)
    }

    @Test("A connect that hangs gives .timeout within the request's connect deadline, not connected")
    func connectTimeout() async throws {
        let (port, descriptors) = try unresponsiveListener()
        defer { for descriptor in descriptors { close(descriptor) } }
        let client = HTTPClient()
        defer { client.shutdown() }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/", timeout: .seconds(20), connectTimeout: .milliseconds(200)))
        }
        let elapsed = clock.now - start
        #expect(error?.code == .timeout, "\(String(describing: error))")
        #expect(error?.connected == false)
        #expect(error?.isConnectionError == true)
        #expect(elapsed >= .milliseconds(190))
        #expect(elapsed < .seconds(10))
        expectNoLeakedHandles(client)
    }

    @Test("A server that never answers gives .timeout within the request's deadline")
    func timeout() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        server.enqueue(.neverAnswer)
        let client = HTTPClient()
        defer { client.shutdown() }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/slow", timeout: .milliseconds(300)))
        }
        let elapsed = clock.now - start
        #expect(error?.code == .timeout)
        #expect(error?.connected == true)
        #expect(error?.isConnectionError == false)
        #expect(error?.isRetryable == true)
        // Bound, not speed: the deadline fired, and well before the 30 s default.
        #expect(elapsed >= .milliseconds(290))
        #expect(elapsed < .seconds(10))
        // The client still works after a timeout.
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/after"))
        #expect(response.status == 200)
        expectNoLeakedHandles(client)
    }

    @Test("The configuration's total timeout applies when the request sets none")
    func configuredTimeout() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        server.enqueue(.delay(.seconds(5)))
        let client = HTTPClient(configuration: .init(timeout: .milliseconds(200)))
        defer { client.shutdown() }
        let error = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/delayed"))
        }
        #expect(error?.code == .timeout)
    }

    @Test("With no total timeout (a long poll), a slow answer arrives; the connect timeout does not cap it")
    func longPoll() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        server.enqueue(.delay(.milliseconds(600)))
        let client = HTTPClient(configuration: .init(connectTimeout: .milliseconds(200), timeout: nil))
        defer { client.shutdown() }
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/next"))
        #expect(response.status == 200)
        #expect(response.headers["x-echo-path"] == "/next")
    }

    @Test("A delay shorter than the deadline succeeds")
    func delayWithinDeadline() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        server.enqueue(.delay(.milliseconds(100)))
        let client = HTTPClient()
        defer { client.shutdown() }
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/d", timeout: .seconds(10)))
        #expect(response.status == 200)
    }

    @Test("Cancelling the task aborts the transfer promptly")
    func cancellation() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        server.enqueue(.neverAnswer)
        let client = HTTPClient(configuration: .init(timeout: nil))
        defer { client.shutdown() }
        let task = Task {
            try await client.execute(HTTPRequest(url: server.baseURL + "/forever"))
        }
        // Wait until the server has the request, so the transfer is really in flight.
        while server.requestCount == 0 {
            try await Task.sleep(for: .milliseconds(5))
        }
        task.cancel()
        let result = await task.result
        switch result {
        case .success:
            Issue.record("a request to a server that never answers succeeded")
        case .failure(let error):
            #expect((error as? HTTPClientError)?.code == .cancelled)
        }
        // The handle went back to the pool.
        expectNoLeakedHandles(client)
    }

    @Test("A task cancelled before it starts throws .cancelled without sending")
    func cancelledBeforeStart() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.execute(HTTPRequest(url: server.baseURL + "/never-sent"))
        }
        let result = await task.result
        #expect(throws: HTTPClientError.self) { try result.get() }
        if case .failure(let error) = result {
            #expect((error as? HTTPClientError)?.code == .cancelled)
        }
        #expect(server.requestCount == 0)
    }

    @Test("Cancellation racing with submission and completion never hangs or leaks a handle")
    func cancellationRaces() async throws {
        let server = try LoopbackHTTPServer { request in
            .init(status: 200, body: Array(request.path.utf8))
        }
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(maxConnectionsPerHost: 4))
        defer { client.shutdown() }
        var tasks: [Task<HTTPResponse, any Error>] = []
        for index in 0..<120 {
            if index % 3 == 0 { server.enqueue(.delay(.milliseconds(20))) }
            tasks.append(Task { try await client.execute(HTTPRequest(url: server.baseURL + "/r/\(index)")) })
            if index % 2 == 0 {
                // Cancel some at once (often before the transfer thread sees them), some later.
                if index % 4 == 0 { tasks[index].cancel() } else {
                    let task = tasks[index]
                    Task { try? await Task.sleep(for: .milliseconds(Int.random(in: 0...30))); task.cancel() }
                }
            }
        }
        var succeeded = 0
        var cancelled = 0
        for (index, task) in tasks.enumerated() {
            switch await task.result {
            case .success(let response):
                #expect(response.body == Array("/r/\(index)".utf8))
                succeeded += 1
            case .failure(let error):
                #expect((error as? HTTPClientError)?.code == .cancelled, "\(error)")
                #expect(index % 2 == 0, "an uncancelled request failed: \(error)")
                cancelled += 1
            }
        }
        #expect(succeeded + cancelled == 120)
        #expect(succeeded >= 60)
        expectNoLeakedHandles(client)
        // The client is still healthy.
        let after = try await client.execute(HTTPRequest(url: server.baseURL + "/after"))
        #expect(after.status == 200)
    }

    @Test("Concurrent requests from many tasks each get their own response")
    func concurrency() async throws {
        let server = try LoopbackHTTPServer { request in .init(status: 200, body: request.body + Array(request.path.utf8)) }
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(maxConnectionsPerHost: 8))
        defer { client.shutdown() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let body = Array("body-\(index)-".utf8)
                    let response = try await client.execute(HTTPRequest(method: .post, url: server.baseURL + "/c/\(index)", body: body))
                    #expect(response.status == 200)
                    #expect(response.body == body + Array("/c/\(index)".utf8))
                }
            }
            try await group.waitForAll()
        }
        #expect(server.requestCount == 200)
        #expect(client.connectionsOpened <= 8)
        #expect(server.connectionsAccepted <= 8)
        expectNoLeakedHandles(client)
    }

    @Test("Bodies of a few MB go up and come back byte-exact")
    func largeBodies() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let body = pseudoRandomBytes(count: (5 << 20) + 123, seed: 0x9E37_79B9_7F4A_7C15)
        let response = try await client.execute(HTTPRequest(method: .put, url: server.baseURL + "/big", body: body))
        #expect(response.status == 200)
        #expect(response.body.count == body.count)
        #expect(response.body == body)
        #expect(server.recordedRequests.last?.body == body)
    }

    @Test("Faults: close, reset and a truncated body are transport errors, retryable")
    func transportFaults() async throws {
        let server = try LoopbackHTTPServer { _ in .init(status: 200, body: [UInt8](repeating: 1, count: 10_000)) }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        for fault in [LoopbackHTTPServer.Fault.close, .reset, .truncateBody(keeping: 100)] {
            server.enqueue(fault)
            let error = await #expect(throws: HTTPClientError.self, "\(fault)") {
                try await client.execute(HTTPRequest(url: server.baseURL + "/f"))
            }
            #expect(error?.code == .transport, "\(fault): \(String(describing: error))")
            #expect(error?.isConnectionError == true)
            #expect(error?.isRetryable == true)
        }
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/ok"))
        #expect(response.body.count == 10_000)
        expectNoLeakedHandles(client)
    }

    @Test("Status faults: 503 twice, then the handler answers")
    func statusFaults() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        server.enqueue(.status(503), count: 2)
        let client = HTTPClient()
        defer { client.shutdown() }
        var statuses: [Int] = []
        for _ in 0..<3 {
            statuses.append(try await client.execute(HTTPRequest(url: server.baseURL + "/s")).status)
        }
        #expect(statuses == [503, 503, 200])
        #expect(server.pendingFaults == 0)
        #expect(client.connectionsOpened == 1)
    }

    @Test("https against a plain-HTTP server is a TLS error; a missing CA bundle is too")
    func tlsFailures() async throws {
        // A tiny request limit makes the server answer the ClientHello with a plain-text 413.
        let server = try LoopbackHTTPServer(configuration: .init(maxRequestBytes: 64), handler: echo)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let error = await #expect(throws: HTTPClientError.self) {
            // The connect deadline covers the handshake: keep it far from a loaded machine's pace.
            try await client.execute(HTTPRequest(url: "https://127.0.0.1:\(server.port)/", connectTimeout: .seconds(20)))
        }
        #expect(error?.code == .tls, "\(String(describing: error))")
        #expect(error?.isRetryable == false)

        let badBundle = HTTPClient(configuration: .init(caBundlePath: "/nonexistent/ca-bundle.pem"))
        defer { badBundle.shutdown() }
        let bundleError = await #expect(throws: HTTPClientError.self) {
            try await badBundle.execute(HTTPRequest(url: "https://127.0.0.1:\(server.port)/"))
        }
        #expect(bundleError?.code == .tls, "\(String(describing: bundleError))")
    }

    @Test("Shutdown fails transfers in flight and refuses later ones; it is idempotent")
    func shutdown() async throws {
        let server = try LoopbackHTTPServer(handler: echo)
        defer { server.stop() }
        server.enqueue(.neverAnswer)
        let client = HTTPClient(configuration: .init(timeout: nil))
        let inFlight = Task {
            try await client.execute(HTTPRequest(url: server.baseURL + "/stuck"))
        }
        while server.requestCount == 0 {
            try await Task.sleep(for: .milliseconds(5))
        }
        client.shutdown()
        client.shutdown()
        let result = await inFlight.result
        if case .failure(let error) = result {
            #expect((error as? HTTPClientError)?.code == .shutdown)
        } else {
            Issue.record("the stuck request succeeded")
        }
        let later = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/later"))
        }
        #expect(later?.code == .shutdown)
        // The transfer thread cleans everything up and exits.
        var statistics = client.handleStatistics
        for _ in 0..<200 where !statistics.multiCleanedUp {
            try await Task.sleep(for: .milliseconds(10))
            statistics = client.handleStatistics
        }
        #expect(statistics.multiCleanedUp)
        #expect(statistics.active == 0)
        #expect(statistics.idle == 0)
        #expect(statistics.created == statistics.cleanedUp)
    }
}

@Suite("HTTPClient limits")
struct HTTPClientLimitTests {
    @Test("A body above maxResponseBodyBytes fails with .responseTooLarge, announced or not")
    func responseLimit() async throws {
        let server = try LoopbackHTTPServer { request in
            let size = Int(request.path.dropFirst()) ?? 0
            if request.query == "chunked" {
                // No Content-Length: the limit trips while receiving.
                var wire: [UInt8] = []
                var left = size
                while left > 0 {
                    let piece = min(left, 1000)
                    wire += Array("\(String(piece, radix: 16))\r\n".utf8) + [UInt8](repeating: 65, count: piece) + [13, 10]
                    left -= piece
                }
                wire += Array("0\r\n\r\n".utf8)
                return .init(status: 200, headers: [("Transfer-Encoding", "chunked")], body: wire)
            }
            return .init(status: 200, body: [UInt8](repeating: 66, count: size))
        }
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(maxResponseBodyBytes: 10_000))
        defer { client.shutdown() }
        let fits = try await client.execute(HTTPRequest(url: server.baseURL + "/10000"))
        #expect(fits.body.count == 10_000)
        let announced = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/10001"))
        }
        #expect(announced?.code == .responseTooLarge)
        #expect(announced?.isRetryable == false)
        let streamed = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/50000?chunked"))
        }
        #expect(streamed?.code == .responseTooLarge)
        // The same chunked body under the limit decodes to the right bytes.
        let chunked = try await client.execute(HTTPRequest(url: server.baseURL + "/9999?chunked"))
        #expect(chunked.body == [UInt8](repeating: 65, count: 9999))
        #expect(chunked.headers["content-length"] == nil)
        // HEAD announces a large length but carries no body: fine.
        let head = try await client.execute(HTTPRequest(method: .head, url: server.baseURL + "/20000"))
        #expect(head.status == 200)
        let statistics = client.handleStatistics
        #expect(statistics.active == 0)
        #expect(statistics.created == statistics.idle + statistics.cleanedUp)
    }
}

@Suite("HTTPClient per-request limits")
struct HTTPClientRequestLimitTests {
    /// `/N` answers N bytes: with a Content-Length by default, chunked with `?chunked`, and with
    /// the status from `?status=S`. `/announce` announces a gigabyte and sends ten bytes.
    static func server() throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer { request in
            if request.path == "/announce" {
                return .init(status: 200, headers: [("Content-Length", "1073741824")], body: Array("0123456789".utf8))
            }
            let size = Int(request.path.dropFirst()) ?? 0
            var status = 200
            if let query = request.query, query.hasPrefix("status="), let value = Int(query.dropFirst(7)) { status = value }
            if request.query == "chunked" {
                var wire: [UInt8] = []
                var left = size
                while left > 0 {
                    let piece = min(left, 4096)
                    wire += Array("\(String(piece, radix: 16))\r\n".utf8) + [UInt8](repeating: 67, count: piece) + [13, 10]
                    left -= piece
                }
                wire += Array("0\r\n\r\n".utf8)
                return .init(status: status, headers: [("Transfer-Encoding", "chunked")], body: wire)
            }
            return .init(status: status, body: [UInt8](repeating: 68, count: size))
        }
    }

    @Test("a request's own limit: Content-Length checked before reading, chunked and close-delimited bodies cut while streaming")
    func perRequestLimit() async throws {
        let server = try Self.server()
        defer { server.stop() }
        let client = HTTPClient()  // no limit of its own
        defer { client.shutdown() }
        func get(_ path: String, limit: Int?, errorLimit: Int? = nil) async throws -> HTTPResponse {
            try await client.execute(HTTPRequest(url: server.baseURL + path, timeout: .seconds(60),
                                                 maxResponseBodyBytes: limit, maxErrorBodyBytes: errorLimit))
        }
        func tooLarge(_ path: String, limit: Int?, errorLimit: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) async {
            let error = await #expect(throws: HTTPClientError.self, sourceLocation: sourceLocation) {
                try await get(path, limit: limit, errorLimit: errorLimit)
            }
            #expect(error?.code == .responseTooLarge, sourceLocation: sourceLocation)
            #expect(error?.isRetryable == false, sourceLocation: sourceLocation)
        }

        #expect(try await get("/100000", limit: 100_000).body.count == 100_000)
        await tooLarge("/100001", limit: 100_000)
        // A gigabyte announced: refused from the header, without waiting for a body that never comes.
        await tooLarge("/announce", limit: 1 << 20)
        await tooLarge("/300000?chunked", limit: 100_000)
        #expect(try await get("/99999?chunked", limit: 100_000).body == [UInt8](repeating: 67, count: 99_999))
        server.enqueue(.closeDelimitedBody)
        await tooLarge("/300000", limit: 100_000)
        server.enqueue(.closeDelimitedBody)
        let delimited = try await get("/90000", limit: 100_000)
        #expect(delimited.body == [UInt8](repeating: 68, count: 90_000))
        #expect(delimited.headers["content-length"] == nil)
        // Without a limit anywhere, the same bodies come back whole.
        #expect(try await get("/300000?chunked", limit: nil).body.count == 300_000)

        // Error bodies have their own, smaller cap; a small error body is still a response.
        await tooLarge("/100000?status=404", limit: 1 << 20, errorLimit: 65_536)
        let notFound = try await get("/1000?status=404", limit: 1 << 20, errorLimit: 65_536)
        #expect(notFound.status == 404 && notFound.body.count == 1000)
        // The error cap never raises the success limit, and does not apply to a 2xx body.
        await tooLarge("/5000?status=500", limit: 4096, errorLimit: 65_536)
        #expect(try await get("/100000", limit: 1 << 20, errorLimit: 65_536).body.count == 100_000)
        expectNoLeakedHandles(client)
    }

    @Test("the request's limit overrides the client's; the client's applies when the request sets none")
    func requestOverridesConfiguration() async throws {
        let server = try Self.server()
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(maxResponseBodyBytes: 1000, maxErrorBodyBytes: 100))
        defer { client.shutdown() }
        let raised = try await client.execute(HTTPRequest(url: server.baseURL + "/5000", maxResponseBodyBytes: 10_000))
        #expect(raised.body.count == 5000)
        let configured = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/5000"))
        }
        #expect(configured?.code == .responseTooLarge)
        let errorBody = await #expect(throws: HTTPClientError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/500?status=503"))
        }
        #expect(errorBody?.code == .responseTooLarge)
        #expect(errorBody?.message.contains("503") == true)
        #expect(try await client.execute(HTTPRequest(url: server.baseURL + "/100?status=503")).status == 503)
        expectNoLeakedHandles(client)
    }
}
