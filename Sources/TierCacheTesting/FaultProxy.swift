import TierCache

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A loopback HTTP proxy for chaos tests: it sits between a client (the S3 tier, say) and an
/// upstream HTTP server on `127.0.0.1` (moto, or a ``LoopbackHTTPServer``) and forwards each
/// request, adding latency, jitter and scripted faults on the way back.
///
/// Faults are ``LoopbackHTTPServer/Fault`` values: `.reset` (RST, nothing answered), `.close`,
/// `.neverAnswer` (a stall until the client gives up), `.delay(_:)`, `.truncateBody(keeping:)`
/// (the upstream's real answer, cut short), `.status(_:)` (for 503 bursts: answered without
/// reaching the upstream) and `.loseAnswer` (forwarded and applied upstream, then the client's
/// connection is reset: the answer is lost on the way back). Queue them with ``enqueue(_:)``, or script them per request with
/// ``script(_:)``; a queued fault goes first. ``Configuration/latency`` and
/// ``Configuration/jitter`` apply to every forwarded request.
///
/// The upstream is called with one connection per request (`Connection: close`); the client's
/// headers are forwarded as they are (so a SigV4 signature over `Host` stays valid: the
/// upstream sees the proxy's host), except hop-by-hop ones. An unreachable upstream is
/// answered with 502. ``stop()`` stops the proxy; it also runs on deinit.
///
/// ```swift
/// let proxy = try FaultProxy(upstreamPort: motoPort)
/// defer { proxy.stop() }
/// proxy.script { request, n in n % 10 == 0 ? .reset : nil }   // every tenth request is reset
/// proxy.enqueue(.status(503), count: 3)                         // a burst of three 503s first
/// ```
public final class FaultProxy: Sendable {
    /// How the proxy reaches its upstream and how much delay it adds.
    public struct Configuration: Sendable {
        /// The upstream's port on `127.0.0.1`.
        public var upstreamPort: Int
        /// Added before every forwarded request.
        public var latency: Duration
        /// A uniformly random extra delay in `0...jitter`, added to ``latency``.
        public var jitter: Duration
        /// How long the proxy waits for the upstream's whole answer before answering 504.
        public var upstreamTimeout: Duration

        /// Creates a configuration; every argument but the port has a default.
        public init(upstreamPort: Int, latency: Duration = .zero, jitter: Duration = .zero,
                    upstreamTimeout: Duration = .seconds(30)) {
            self.upstreamPort = upstreamPort
            self.latency = latency
            self.jitter = jitter
            self.upstreamTimeout = upstreamTimeout
        }
    }

    /// A rule that picks a fault for a request (nil forwards it): given the request and its
    /// number since start (1-based).
    public typealias Script = @Sendable (LoopbackHTTPServer.Request, Int) -> LoopbackHTTPServer.Fault?

    private let server: LoopbackHTTPServer
    private let counters: LockedValueBox<Counters>
    private let delays: LockedValueBox<(latency: Duration, jitter: Duration)>
    private let corruption: LockedValueBox<(@Sendable (LoopbackHTTPServer.Request) -> Bool)?>

    private struct Counters {
        var forwarded = 0
        var upstreamFailures = 0
    }

    /// The proxy's URL, `http://127.0.0.1:<port>`: give it to the client as its endpoint.
    public var baseURL: String { server.baseURL }
    /// The proxy's port.
    public var port: Int { server.port }

    /// Starts the proxy on an ephemeral loopback port.
    /// - Throws: `TierCacheError` with code `.storage` if the socket cannot be set up.
    public init(configuration: Configuration) throws {
        let counters = LockedValueBox(Counters())
        let delays = LockedValueBox((latency: configuration.latency, jitter: configuration.jitter))
        let corruption = LockedValueBox<(@Sendable (LoopbackHTTPServer.Request) -> Bool)?>(nil)
        let upstreamPort = configuration.upstreamPort
        let timeoutMs = Int(configuration.upstreamTimeout.components.seconds * 1000
            + configuration.upstreamTimeout.components.attoseconds / 1_000_000_000_000_000)
        server = try LoopbackHTTPServer(configuration: .init(maxConnections: 256)) { request in
            let (latency, jitter) = delays.withLock { ($0.latency, $0.jitter) }
            var wait = latency
            if jitter > .zero {
                let jitterNs = jitter.components.seconds * 1_000_000_000 + jitter.components.attoseconds / 1_000_000_000
                wait += .nanoseconds(Int64.random(in: 0...max(0, jitterNs)))
            }
            if wait > .zero {
                let ns = wait.components.seconds * 1_000_000_000 + wait.components.attoseconds / 1_000_000_000
                var spec = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
                var remaining = timespec()
                while nanosleep(&spec, &remaining) != 0 && errno == EINTR { spec = remaining }
            }
            var answer = UpstreamCall.forward(request, port: upstreamPort, timeoutMs: timeoutMs)
            if !answer.body.isEmpty, corruption.withLock({ $0?(request) ?? false }) {
                answer.body[answer.body.count / 2] ^= 0x20  // one flipped bit, length unchanged
                // A checksum header of the upstream would give the flip away at once; drop it so
                // that the client's own integrity check is what catches it.
                answer.headers.removeAll { $0.name.lowercased().hasPrefix("x-amz-checksum") || $0.name.lowercased() == "content-md5" }
            }
            counters.withLock {
                $0.forwarded += 1
                if answer.status >= 502 && answer.headers.contains(where: { $0.name == "X-Fault-Proxy" }) {
                    $0.upstreamFailures += 1
                }
            }
            return answer
        }
        self.counters = counters
        self.delays = delays
        self.corruption = corruption
    }

    /// Starts the proxy in front of `127.0.0.1:<upstreamPort>` with no added delay.
    public convenience init(upstreamPort: Int) throws {
        try self.init(configuration: Configuration(upstreamPort: upstreamPort))
    }

    deinit { server.stop() }

    /// Queues faults for the next requests, in order, whichever connection they arrive on.
    public func enqueue(_ faults: [LoopbackHTTPServer.Fault]) { server.enqueue(faults) }

    /// Queues `count` copies of one fault (a burst of 503s: `enqueue(.status(503), count: 5)`).
    public func enqueue(_ fault: LoopbackHTTPServer.Fault, count: Int = 1) { server.enqueue(fault, count: count) }

    /// Sets the rule consulted for every request the queue does not cover; nil removes it. It
    /// runs under the proxy's lock: keep it short.
    public func script(_ rule: Script?) { server.setFaultRule(rule) }

    /// Sets a rule that flips one bit in the middle of the upstream's body for the requests it
    /// picks (a silent corruption: status, length and ETag unchanged); nil removes it.
    public func corrupt(_ rule: (@Sendable (LoopbackHTTPServer.Request) -> Bool)?) {
        corruption.withLock { $0 = rule }
    }

    /// Changes the added latency and jitter from now on.
    public func setDelay(latency: Duration, jitter: Duration = .zero) {
        delays.withLock { $0 = (latency, jitter) }
    }

    /// Requests that reached the proxy (faulted or not).
    public var requestCount: Int { server.requestCount }
    /// Requests forwarded to the upstream (those no fault took, plus delayed and truncated ones).
    public var forwardedCount: Int { counters.withLock { $0.forwarded } }
    /// Forwarded requests the upstream did not answer (connection refused, timeout, garbage).
    public var upstreamFailures: Int { counters.withLock { $0.upstreamFailures } }
    /// Faults still queued.
    public var pendingFaults: Int { server.pendingFaults }
    /// Client connections open right now.
    public var openConnections: Int { server.openConnections }

    /// Stops the proxy: closes the listener and every connection, joins its threads.
    /// Idempotent.
    public func stop() { server.stop() }
}

/// One blocking request to the upstream over a fresh connection.
private enum UpstreamCall {
    static let hopByHop: Set<String> = ["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                                        "proxy-connection", "expect", "content-length"]

    static func failure(_ status: Int, _ message: String) -> LoopbackHTTPServer.Response {
        .init(status: status, headers: [("Content-Type", "text/plain"), ("X-Fault-Proxy", "upstream")],
              body: Array("fault proxy: \(message)\n".utf8))
    }

    static func forward(_ request: LoopbackHTTPServer.Request, port: Int, timeoutMs: Int) -> LoopbackHTTPServer.Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return failure(502, "socket: errno \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return failure(502, "connect: errno \(errno)") }

        var head = "\(request.method) \(request.target) HTTP/1.1\r\n"
        for (name, value) in request.headers where !hopByHop.contains(name.lowercased()) {
            head += "\(name): \(value)\r\n"
        }
        head += "Content-Length: \(request.body.count)\r\nConnection: close\r\n\r\n"
        guard sendAll(fd, Array(head.utf8) + request.body) else { return failure(502, "send: errno \(errno)") }

        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                received.append(contentsOf: buffer[0..<n])
            } else if n == 0 {
                break
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return failure(504, "upstream timed out")
            } else {
                break  // reset by the upstream: parse what arrived
            }
        }
        return parse(received, isHead: request.method == "HEAD") ?? failure(502, "unparseable upstream answer")
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            sent += n
        }
        return true
    }

    /// Parses an answer read to EOF: status line, headers, body by Content-Length, chunked
    /// coding or EOF. HEAD answers keep their Content-Length and have no body.
    static func parse(_ bytes: [UInt8], isHead: Bool) -> LoopbackHTTPServer.Response? {
        guard let end = find([13, 10, 13, 10], in: bytes, from: 0) else { return nil }
        let lines = String(decoding: bytes[0..<end], as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [(name: String, value: String)] = []
        var contentLength: Int?
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
            switch name.lowercased() {
            case "content-length": contentLength = Int(value)
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            default: break
            }
            if isHead && name.lowercased() == "content-length" {
                headers.append((name, value))
            } else if !hopByHop.contains(name.lowercased()) {
                headers.append((name, value))
            }
        }
        let rest = Array(bytes[(end + 4)...])
        if isHead || status == 204 || status == 304 || (100..<200).contains(status) {
            return .init(status: status, headers: headers, body: [])
        }
        var body: [UInt8]
        if chunked {
            guard let decoded = dechunk(rest) else { return nil }
            body = decoded
        } else if let contentLength {
            guard rest.count >= contentLength else { return nil }
            body = Array(rest[0..<contentLength])
        } else {
            body = rest
        }
        return .init(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        while true {
            guard let lineEnd = find([13, 10], in: bytes, from: i) else { return nil }
            let sizeText = String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingSpaces, radix: 16), size >= 0 else { return nil }
            i = lineEnd + 2
            if size == 0 { return out }
            guard bytes.count >= i + size + 2 else { return nil }
            out.append(contentsOf: bytes[i..<(i + size)])
            i += size + 2
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
