import TierCache

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A small HTTP/1.1 server on `127.0.0.1` for tests: real sockets, keep-alive, and scriptable
/// faults (never answer, close, reset, delay, truncated body, error statuses).
///
/// Each accepted connection is served by its own thread, at most
/// ``Configuration/maxConnections`` at once (further clients wait in the listen backlog). Requests
/// on a connection are answered in order by calling the handler, unless a queued ``Fault`` takes
/// the request instead. Bodies are read by `Content-Length` or chunked transfer coding; `Expect:
/// 100-continue` is honoured. Responses get a `Content-Length` unless the handler sets one.
///
/// ``stop()`` wakes every thread (they poll a shared stop pipe), joins them and closes every
/// descriptor; it is idempotent and also runs on deinit. Call it explicitly when the handler
/// captures the server (a reference cycle that deinit alone would never break). Handlers run on server threads and may
/// block (a long poll, for example); they must return for ``stop()`` to finish.
///
/// ```swift
/// let server = try LoopbackHTTPServer { request in
///     .init(status: 200, headers: [("Content-Type", "text/plain")], body: Array("hi".utf8))
/// }
/// defer { server.stop() }
/// server.enqueue(.status(503), count: 2)   // the next two requests get 503, then the handler answers
/// ```
public final class LoopbackHTTPServer: Sendable {
    /// A request as the server parsed it.
    public struct Request: Sendable {
        /// The method token, as sent.
        public var method: String
        /// The request target as sent (path and query, still percent-encoded).
        public var target: String
        /// The path part of the target (before `?`).
        public var path: String
        /// The query part of the target (after `?`), or `nil` when there is none.
        public var query: String?
        /// Header fields in the order and case the client sent them.
        public var headers: [(name: String, value: String)]
        /// The body, de-chunked if it came chunked.
        public var body: [UInt8]
        /// Which accepted connection carried the request (0 for the first).
        public var connection: Int

        /// The first value of the header `name`, compared case-insensitively.
        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// A response from the handler.
    public struct Response: Sendable {
        /// The status code.
        public var status: Int
        /// Header fields, sent in this order. `Content-Length` is added unless the handler sets
        /// it or `Transfer-Encoding` (then `body` must already be encoded, e.g. chunked);
        /// `Connection: close` makes the server close the connection after the response.
        public var headers: [(name: String, value: String)]
        /// The body; not sent for `HEAD` requests or statuses without a body (1xx, 204, 304).
        public var body: [UInt8]

        /// Creates a response.
        public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }

    /// A misbehaviour applied to one request instead of (or around) the handler's answer.
    public struct Fault: Sendable, CustomStringConvertible {
        enum Kind: Sendable {
            case neverAnswer
            case close
            case reset
            case delay(Duration)
            case truncateBody(keeping: Int)
            case closeDelimitedBody
            case status(Int)
            case loseAnswer
        }

        let kind: Kind

        /// Reads the request and never answers; the connection stays open until the client
        /// closes it or the server stops.
        public static let neverAnswer = Fault(kind: .neverAnswer)
        /// Reads the request and closes the connection without answering.
        public static let close = Fault(kind: .close)
        /// Reads the request and resets the connection (TCP RST, via `SO_LINGER` 0).
        public static let reset = Fault(kind: .reset)
        /// Waits, then answers with the handler's response. The wait ends early on ``stop()``.
        public static func delay(_ duration: Duration) -> Fault { Fault(kind: .delay(duration)) }
        /// Sends the handler's status and headers with the full `Content-Length`, then only the
        /// first `keeping` bytes of the body, then closes.
        public static func truncateBody(keeping: Int) -> Fault { Fault(kind: .truncateBody(keeping: keeping)) }
        /// Sends the handler's response with neither `Content-Length` nor chunked coding: the body
        /// ends when the server closes the connection (HTTP/1.1's last resort, RFC 9112 §6.3).
        public static let closeDelimitedBody = Fault(kind: .closeDelimitedBody)
        /// Answers with this status and a short text body without calling the handler.
        public static func status(_ code: Int) -> Fault { Fault(kind: .status(code)) }
        /// Calls the handler, so the request takes effect (a ``FaultProxy`` forwards it upstream),
        /// then resets the connection instead of answering: the client cannot tell whether its
        /// request was applied, as when an answer is lost on the way back.
        public static let loseAnswer = Fault(kind: .loseAnswer)

        /// The fault's kind and parameters, for test output.
        public var description: String { "\(kind)" }
    }

    /// Server limits; every property has a default.
    public struct Configuration: Sendable {
        /// Most connections served at once. Default 64.
        public var maxConnections: Int
        /// Largest request head plus body accepted; a larger request gets 413 and a close.
        /// Default 64 MiB.
        public var maxRequestBytes: Int
        /// How many of the most recent requests ``recordedRequests`` keeps. Default 1,000.
        public var recordLimit: Int

        /// Creates a configuration.
        public init(maxConnections: Int = 64, maxRequestBytes: Int = 64 << 20, recordLimit: Int = 1000) {
            self.maxConnections = maxConnections
            self.maxRequestBytes = maxRequestBytes
            self.recordLimit = recordLimit
        }
    }

    /// A handler answering every request that no fault takes.
    public typealias Handler = @Sendable (Request) -> Response

    /// The ephemeral port the server listens on.
    public let port: Int
    /// The configuration in use.
    public let configuration: Configuration

    private let state: ServerState

    /// `http://127.0.0.1:<port>`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts listening on `127.0.0.1` with an ephemeral port.
    /// - Parameters:
    ///   - configuration: Limits.
    ///   - handler: Answers requests; runs on a server thread, one call per request.
    /// - Throws: `TierCacheError` with code `.storage` if the socket cannot be set up.
    public init(configuration: Configuration = Configuration(), handler: @escaping Handler) throws {
        self.configuration = configuration
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw Self.error("socket", errno) }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        guard bound == 0, listen(listener, 128) == 0 else {
            let code = errno
            close(listener)
            throw Self.error("bind/listen", code)
        }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        guard named == 0 else {
            let code = errno
            close(listener)
            throw Self.error("getsockname", code)
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            let code = errno
            close(listener)
            throw Self.error("pipe", code)
        }
        state = ServerState(
            listener: listener, stopRead: pipeFDs[0], stopWrite: pipeFDs[1],
            configuration: configuration, handler: handler
        )
        guard let thread = spawnThread({ [state] in state.acceptLoop() }) else {
            state.closeDescriptors()
            throw Self.error("pthread_create", errno)
        }
        state.setAcceptThread(thread)
    }

    deinit {
        stop()
    }

    /// Queues faults for the next requests, in order, whichever connection they arrive on.
    public func enqueue(_ faults: [Fault]) {
        state.box.withLock { $0.faults.append(contentsOf: faults) }
    }

    /// Queues `count` copies of one fault for the next requests.
    public func enqueue(_ fault: Fault, count: Int = 1) {
        enqueue(Array(repeating: fault, count: count))
    }

    /// Sets a rule that picks a fault for each request the queue does not cover (nil answers
    /// normally); `nil` removes the rule. The rule runs on a server thread, under the server's
    /// lock: keep it short and do not call back into the server from it.
    /// - Parameter rule: given the request and its number since start (1-based).
    public func setFaultRule(_ rule: (@Sendable (Request, Int) -> Fault?)?) {
        state.box.withLock { $0.faultRule = rule }
    }

    /// How many faults are still queued.
    public var pendingFaults: Int {
        state.box.withLock { $0.faults.count }
    }

    /// Connections accepted since start.
    public var connectionsAccepted: Int {
        state.box.withLock { $0.connectionsAccepted }
    }

    /// Requests read since start (including those a fault took).
    public var requestCount: Int {
        state.box.withLock { $0.requestCount }
    }

    /// The most recent requests (up to ``Configuration/recordLimit``), oldest first.
    public var recordedRequests: [Request] {
        state.box.withLock { $0.recorded }
    }

    /// Connections open right now.
    public var openConnections: Int {
        state.box.withLock { $0.connectionFDs.count }
    }

    /// Whether ``stop()`` has been called. A handler that blocks (a long poll) should watch
    /// this and return once it is `true`.
    public var isStopping: Bool {
        state.box.withLock { $0.stopped }
    }

    /// Stops accepting, wakes and joins every server thread, and closes every descriptor.
    /// Blocks until the threads have exited (a handler still running is waited for).
    /// Idempotent.
    public func stop() {
        state.stop()
    }

    private static func error(_ call: String, _ code: Int32) -> TierCacheError {
        TierCacheError(.storage, "LoopbackHTTPServer: \(call) failed (errno \(code))")
    }
}

// MARK: Threads

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts a joinable thread.
private func spawnThread(_ body: @escaping () -> Void) -> pthread_t? {
    var thread = pthread_t()
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { argument in
        let body = Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue()
        body.body()
        return nil
    }, context)
    if rc != 0 {
        Unmanaged<ThreadBody>.fromOpaque(context).release()
        return nil
    }
    return thread
}

// MARK: Server state

private final class ServerState: @unchecked Sendable {
    struct Shared {
        var faults: [LoopbackHTTPServer.Fault] = []
        var faultRule: (@Sendable (LoopbackHTTPServer.Request, Int) -> LoopbackHTTPServer.Fault?)?
        var connectionsAccepted = 0
        var requestCount = 0
        var recorded: [LoopbackHTTPServer.Request] = []
        var stopped = false
        var acceptThread: pthread_t?
        var connectionThreads: [Int: pthread_t] = [:]
        var finishedThreads: Set<Int> = []
        var connectionFDs: [Int: Int32] = [:]
    }

    let listener: Int32
    let stopRead: Int32
    let stopWrite: Int32
    let configuration: LoopbackHTTPServer.Configuration
    let handler: LoopbackHTTPServer.Handler
    let box = LockedValueBox(Shared())

    init(
        listener: Int32, stopRead: Int32, stopWrite: Int32,
        configuration: LoopbackHTTPServer.Configuration, handler: @escaping LoopbackHTTPServer.Handler
    ) {
        self.listener = listener
        self.stopRead = stopRead
        self.stopWrite = stopWrite
        self.configuration = configuration
        self.handler = handler
    }

    func setAcceptThread(_ thread: pthread_t) {
        box.withLock { $0.acceptThread = thread }
    }

    func closeDescriptors() {
        close(listener)
        close(stopRead)
        close(stopWrite)
    }

    func stop() {
        let acceptThread: pthread_t? = box.withLock { shared in
            guard !shared.stopped else { return nil }
            shared.stopped = true
            defer { shared.acceptThread = nil }
            return shared.acceptThread
        }
        guard let acceptThread else { return }
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)
        pthread_join(acceptThread, nil)
        // The accept loop has exited: no new connection threads can appear.
        let threads = box.withLock { shared in
            defer {
                shared.connectionThreads = [:]
                shared.finishedThreads = []
            }
            return Array(shared.connectionThreads.values)
        }
        for thread in threads {
            pthread_join(thread, nil)
        }
        closeDescriptors()
    }

    // MARK: Accepting

    func acceptLoop() {
        var index = 0
        while true {
            reapFinishedThreads()
            let busy = box.withLock { $0.connectionThreads.count - $0.finishedThreads.count }
            if busy >= configuration.maxConnections {
                if waitForStop(milliseconds: 5) { return }
                continue
            }
            var fds = [
                pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, 100)
            if ready < 0 && errno != EINTR { return }
            if fds[1].revents != 0 { return }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let connection = index
            index += 1
            box.withLock {
                $0.connectionsAccepted += 1
                $0.connectionFDs[connection] = client
            }
            let thread = spawnThread { [self] in
                serve(fd: client, connection: connection)
            }
            if let thread {
                box.withLock { $0.connectionThreads[connection] = thread }
            } else {
                box.withLock { _ = $0.connectionFDs.removeValue(forKey: connection) }
                close(client)
            }
        }
    }

    private func reapFinishedThreads() {
        let finished: [pthread_t] = box.withLock { shared in
            let threads = shared.finishedThreads.compactMap { shared.connectionThreads.removeValue(forKey: $0) }
            shared.finishedThreads = shared.finishedThreads.filter { shared.connectionThreads[$0] != nil }
            return threads
        }
        for thread in finished {
            pthread_join(thread, nil)
        }
    }

    /// Sleeps up to `milliseconds`, returning `true` early if the server is stopping.
    func waitForStop(milliseconds: Int) -> Bool {
        var fds = [pollfd(fd: stopRead, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, Int32(clamping: milliseconds))
        return fds[0].revents != 0
    }

    // MARK: Serving a connection

    private func serve(fd: Int32, connection: Int) {
        var connectionState = Connection(fd: fd, server: self)
        var resetOnClose = false
        defer {
            if resetOnClose {
                var option = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
            }
            close(fd)
            box.withLock {
                _ = $0.connectionFDs.removeValue(forKey: connection)
                $0.finishedThreads.insert(connection)
            }
        }
        while true {
            let parsed: ParsedRequest
            switch connectionState.readRequest() {
            case .request(let request): parsed = request
            case .closed: return
            case .tooLarge:
                _ = connectionState.send(Self.head(status: 413, headers: [("Connection", "close")], contentLength: 0))
                return
            }
            var request = parsed.request
            request.connection = connection
            let fault: LoopbackHTTPServer.Fault? = box.withLock { shared in
                shared.requestCount += 1
                shared.recorded.append(request)
                if shared.recorded.count > configuration.recordLimit {
                    shared.recorded.removeFirst(shared.recorded.count - configuration.recordLimit)
                }
                if !shared.faults.isEmpty { return shared.faults.removeFirst() }
                return shared.faultRule?(request, shared.requestCount)
            }
            var response: LoopbackHTTPServer.Response
            var truncateTo: Int? = nil
            var closeDelimited = false
            switch fault?.kind {
            case .neverAnswer?:
                connectionState.waitUntilClosed()
                return
            case .close?:
                return
            case .reset?:
                resetOnClose = true
                return
            case .delay(let duration)?:
                let (seconds, attoseconds) = duration.components
                let milliseconds = Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
                if waitForStop(milliseconds: milliseconds) { return }
                response = handler(request)
            case .truncateBody(let keeping)?:
                response = handler(request)
                truncateTo = max(0, min(keeping, response.body.count))
            case .closeDelimitedBody?:
                response = handler(request)
                response.headers.removeAll {
                    ["content-length", "transfer-encoding", "connection"].contains($0.name.lowercased())
                }
                response.headers.append(("Connection", "close"))
                closeDelimited = true
            case .status(let code)?:
                response = .init(status: code, headers: [("Content-Type", "text/plain")], body: Array("injected fault: status \(code)\n".utf8))
            case .loseAnswer?:
                _ = handler(request)
                resetOnClose = true
                return
            case nil:
                response = handler(request)
            }
            let sendsBody = request.method != "HEAD" && !(100..<200).contains(response.status)
                && response.status != 204 && response.status != 304
            // A handler that frames the body itself (Content-Length, or Transfer-Encoding with
            // the body already encoded) gets no Content-Length added.
            let hasLength = response.headers.contains {
                let name = $0.name.lowercased()
                return name == "content-length" || name == "transfer-encoding"
            }
            var head = Self.head(
                status: response.status, headers: response.headers,
                contentLength: hasLength || closeDelimited || response.status == 204 || (100..<200).contains(response.status)
                    ? nil : response.body.count
            )
            var closeAfter = parsed.wantsClose
                || response.headers.contains { $0.name.lowercased() == "connection" && $0.value.lowercased() == "close" }
            if let truncateTo {
                closeAfter = true
                if sendsBody { head.append(contentsOf: response.body[0..<truncateTo]) }
                _ = connectionState.send(head)
                return
            }
            if sendsBody {
                head.append(contentsOf: response.body)
            }
            guard connectionState.send(head), !closeAfter else { return }
        }
    }

    static func head(status: Int, headers: [(name: String, value: String)], contentLength: Int?) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason(status))\r\n"
        for field in headers {
            text += "\(field.name): \(field.value)\r\n"
        }
        if let contentLength {
            text += "Content-Length: \(contentLength)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 409: "Conflict"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

// MARK: Reading requests

private struct ParsedRequest {
    var request: LoopbackHTTPServer.Request
    var wantsClose: Bool
}

private enum ReadOutcome {
    case request(ParsedRequest)
    case closed
    case tooLarge
}

private struct Connection {
    let fd: Int32
    let server: ServerState
    /// Bytes received but not yet consumed (pipelined requests stay here).
    var buffer: [UInt8] = []
    /// The receive buffer, reused across reads.
    var scratch = [UInt8](repeating: 0, count: 64 * 1024)

    init(fd: Int32, server: ServerState) {
        self.fd = fd
        self.server = server
    }

    /// Receives more bytes; `false` on end of stream, error, or stop.
    mutating func receive() -> Bool {
        var fds = [
            pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: server.stopRead, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return false
            }
            if fds[1].revents != 0 { return false }
            break
        }
        let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return false }
        buffer.append(contentsOf: scratch[0..<count])
        return true
    }

    /// Sends all bytes; `false` if the peer went away or the server is stopping.
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            var fds = [
                pollfd(fd: fd, events: Int16(POLLOUT), revents: 0),
                pollfd(fd: server.stopRead, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return false
            }
            if fds[1].revents != 0 { return false }
            if fds[0].revents & Int16(POLLERR | POLLHUP) != 0 { return false }
            let sent = bytes.withUnsafeBytes {
                sendNow(fd, $0.baseAddress! + offset, bytes.count - offset)
            }
            if sent < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return false
            }
            offset += sent
        }
        return true
    }

    /// Discards input until the peer closes or the server stops.
    mutating func waitUntilClosed() {
        while receive() { buffer.removeAll(keepingCapacity: true) }
    }

    mutating func readRequest() -> ReadOutcome {
        let limit = server.configuration.maxRequestBytes
        var headEnd: Int? = nil
        while true {
            if let end = Self.find(Self.crlfcrlf, in: buffer) {
                headEnd = end
                break
            }
            if buffer.count > limit { return .tooLarge }
            guard receive() else { return .closed }
        }
        guard let headEnd else { return .closed }
        let head = String(decoding: buffer[0..<headEnd], as: UTF8.self)
        buffer.removeFirst(headEnd + 4)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).makeIterator()
        guard let requestLine = lines.next() else { return .closed }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 2 else { return .closed }
        let method = String(parts[0])
        let target = String(parts[1])
        let version = parts.count > 2 ? String(parts[2]) : "HTTP/1.0"
        var headers: [(name: String, value: String)] = []
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            headers.append((name: name, value: value))
        }
        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name }?.value
        }
        let connectionHeader = header("connection")?.lowercased()
        let wantsClose = connectionHeader == "close" || (version == "HTTP/1.0" && connectionHeader != "keep-alive")
        if header("expect")?.lowercased() == "100-continue" {
            _ = send(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        var body: [UInt8] = []
        if header("transfer-encoding")?.lowercased().contains("chunked") == true {
            guard let decoded = readChunked(limit: limit) else { return .closed }
            body = decoded
        } else if let lengthText = header("content-length") {
            guard let length = Int(lengthText), length >= 0 else { return .closed }
            if length > limit { return .tooLarge }
            while buffer.count < length {
                guard receive() else { return .closed }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        }
        let query: String?
        let path: String
        if let mark = target.firstIndex(of: "?") {
            path = String(target[..<mark])
            query = String(target[target.index(after: mark)...])
        } else {
            path = target
            query = nil
        }
        let request = LoopbackHTTPServer.Request(
            method: method, target: target, path: path, query: query, headers: headers, body: body, connection: 0
        )
        return .request(ParsedRequest(request: request, wantsClose: wantsClose))
    }

    private mutating func readChunked(limit: Int) -> [UInt8]? {
        var body: [UInt8] = []
        while true {
            var lineEnd = Self.find(Self.crlf, in: buffer)
            while lineEnd == nil {
                guard receive() else { return nil }
                lineEnd = Self.find(Self.crlf, in: buffer)
            }
            let sizeLine = String(decoding: buffer[0..<lineEnd!], as: UTF8.self)
            buffer.removeFirst(lineEnd! + 2)
            let sizeText = sizeLine.split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: " \t"), radix: 16), size >= 0 else { return nil }
            if body.count + size > limit { return nil }
            if size == 0 {
                // Trailers end with an empty line.
                while true {
                    var end = Self.find(Self.crlf, in: buffer)
                    while end == nil {
                        guard receive() else { return nil }
                        end = Self.find(Self.crlf, in: buffer)
                    }
                    buffer.removeFirst(end! + 2)
                    if end == 0 { return body }
                }
            }
            while buffer.count < size + 2 {
                guard receive() else { return nil }
            }
            body.append(contentsOf: buffer[0..<size])
            buffer.removeFirst(size + 2)
        }
    }

    static let crlf: [UInt8] = [13, 10]
    static let crlfcrlf: [UInt8] = [13, 10, 13, 10]

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0] {
                var matched = true
                for offset in 1..<needle.count where haystack[index + offset] != needle[offset] {
                    matched = false
                    break
                }
                if matched { return index }
            }
            index += 1
        }
        return nil
    }
}

/// A non-blocking `send` that never raises SIGPIPE.
private func sendNow(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    send(fd, bytes, count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in characters: String) -> String {
        let set = Set(characters)
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
