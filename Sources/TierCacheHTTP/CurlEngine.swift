internal import CTierCacheCurl
internal import Logging
internal import TierCache

#if canImport(Glibc)
internal import Glibc
#elseif canImport(Musl)
internal import Musl
#elseif canImport(Darwin)
internal import Darwin
#endif

/// `curl_global_init` runs once per process: a global's initializer runs exactly once, under
/// the runtime's `swift_once`, whichever thread gets there first.
private let curlGlobalInitResult: CURLcode = CTierCacheCurl_global_init_all()

typealias TransferContinuation = CheckedContinuation<Result<HTTPResponse, HTTPClientError>, Never>

/// One request in flight. Fields marked "loop" are touched only on the engine's thread; fields
/// marked "lock" only under the engine's lock.
final class Transfer: @unchecked Sendable {
    enum State {
        case created, queued, active, finished
    }

    let request: HTTPRequest
    let connectTimeoutMilliseconds: Int
    /// 0 means no deadline.
    let timeoutMilliseconds: Int
    /// Largest body accepted with a 2xx status.
    let successBodyLimit: Int
    /// Largest body accepted with any other status (never above ``successBodyLimit``).
    let errorBodyLimit: Int

    // loop
    var handle: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var uploadOffset = 0
    var responseHeaders = HTTPHeaders()
    var responseBody: [UInt8] = []
    /// The status of the response being received (0 until its status line arrives).
    var responseStatus = 0
    /// The body limit for ``responseStatus``.
    var responseLimit: Int
    /// Set by the callbacks when the body passed ``responseLimit`` (they then abort the transfer).
    var exceededLimit = false
    let errorBuffer: UnsafeMutablePointer<CChar>

    // lock
    var state = State.created
    var cancelRequested = false
    var continuation: TransferContinuation?

    init(request: HTTPRequest, configuration: HTTPClient.Configuration) {
        self.request = request
        self.connectTimeoutMilliseconds = milliseconds(request.connectTimeout ?? configuration.connectTimeout)
        if let timeout = request.timeout ?? configuration.timeout {
            self.timeoutMilliseconds = milliseconds(timeout)
        } else {
            self.timeoutMilliseconds = 0
        }
        let successBodyLimit = max(0, request.maxResponseBodyBytes ?? configuration.maxResponseBodyBytes ?? Int.max)
        self.successBodyLimit = successBodyLimit
        self.errorBodyLimit = min(successBodyLimit, max(0, request.maxErrorBodyBytes ?? configuration.maxErrorBodyBytes ?? Int.max))
        self.responseLimit = successBodyLimit
        let size = CTierCacheCurl_error_size()
        errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
        errorBuffer.initialize(repeating: 0, count: size)
    }

    deinit {
        errorBuffer.deallocate()
    }

    /// Whether the request carries a body (sent with a Content-Length).
    var sendsBody: Bool {
        !request.body.isEmpty || request.method == .put || request.method == .post
    }

    func takeContinuation() -> TransferContinuation? {
        defer { continuation = nil }
        return continuation
    }
}

/// A duration as whole milliseconds for libcurl, rounded up, at least 1, saturating.
private func milliseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 1 }
    let limit: Int64 = 1 << 40
    if seconds >= limit / 1000 { return Int(limit) }
    let fraction = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int(seconds * 1000 + fraction)
}

/// Drives every transfer of one ``HTTPClient`` on one dedicated thread through a curl multi
/// handle. Callers hand transfers over under the lock and wake the thread with
/// `curl_multi_wakeup`; the thread resumes each caller's continuation when its transfer ends.
package final class CurlEngine: @unchecked Sendable {
    /// Handle counters, for leak checks.
    package struct HandleStatistics: Sendable, Equatable {
        /// Easy handles created over the engine's life.
        package var created = 0
        /// Easy handles destroyed with `curl_easy_cleanup`.
        package var cleanedUp = 0
        /// Easy handles waiting in the reuse pool.
        package var idle = 0
        /// Easy handles attached to a transfer in flight.
        package var active = 0
        /// Whether the multi handle has been destroyed (after shutdown).
        package var multiCleanedUp = false
    }

    private let configuration: HTTPClient.Configuration
    private let logger: Logger
    /// Written only in `init`.
    private var startupError: HTTPClientError?
    private let multi: UnsafeMutableRawPointer?

    // lock
    private let lock = Lock()
    private var pendingAdds: [Transfer] = []
    private var pendingCancels: [Transfer] = []
    private var isShutdown = false
    private var multiAlive = false
    private var connections = 0
    private var statistics = HandleStatistics()

    // loop
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    private var idle: [UnsafeMutableRawPointer] = []

    init(configuration: HTTPClient.Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        let initResult = curlGlobalInitResult
        guard initResult == CURLE_OK else {
            startupError = HTTPClientError(curlCode: initResult, detail: "curl_global_init failed", connected: false)
            multi = nil
            return
        }
        guard let multi = curl_multi_init() else {
            startupError = HTTPClientError(code: .transport, message: "curl_multi_init failed")
            self.multi = nil
            return
        }
        self.multi = multi
        _ = CTierCacheCurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max(1, configuration.maxConnectionsPerHost))

        startupError = nil
        multiAlive = true
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { argument in
            let engine = Unmanaged<CurlEngine>.fromOpaque(argument!).takeRetainedValue()
            engine.run()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<CurlEngine>.fromOpaque(context).release()
            curl_multi_cleanup(multi)
            multiAlive = false
            startupError = HTTPClientError(code: .transport, message: "could not start the transfer thread (errno \(rc))")
            return
        }
        pthread_detach(thread)
    }

    var connectionsOpened: Int {
        lock.withLock { connections }
    }

    var handleStatistics: HandleStatistics {
        lock.withLock { statistics }
    }

    // MARK: Caller side

    func submit(_ transfer: Transfer, continuation: TransferContinuation) {
        if let startupError {
            continuation.resume(returning: .failure(startupError))
            return
        }
        let refusal: HTTPClientError? = lock.withLock {
            if isShutdown { return .shutdown }
            if transfer.cancelRequested {
                transfer.state = .finished
                return .cancelled
            }
            transfer.continuation = continuation
            transfer.state = .queued
            pendingAdds.append(transfer)
            _ = curl_multi_wakeup(multi)
            return nil
        }
        if let refusal {
            continuation.resume(returning: .failure(refusal))
        }
    }

    func cancel(_ transfer: Transfer) {
        let continuation: TransferContinuation? = lock.withLock {
            transfer.cancelRequested = true
            switch transfer.state {
            case .created, .finished:
                return nil
            case .queued:
                pendingAdds.removeAll { $0 === transfer }
                transfer.state = .finished
                return transfer.takeContinuation()
            case .active:
                pendingCancels.append(transfer)
                if multiAlive { _ = curl_multi_wakeup(multi) }
                return nil
            }
        }
        continuation?.resume(returning: .failure(.cancelled))
    }

    func shutdown() {
        let refused: [TransferContinuation] = lock.withLock {
            guard !isShutdown else { return [] }
            isShutdown = true
            let queued = pendingAdds
            pendingAdds = []
            for transfer in queued { transfer.state = .finished }
            if multiAlive { _ = curl_multi_wakeup(multi) }
            return queued.compactMap { $0.takeContinuation() }
        }
        for continuation in refused {
            continuation.resume(returning: .failure(.shutdown))
        }
    }

    // MARK: Transfer thread

    private func run() {
        guard let multi else { return }
        var running: Int32 = 0
        var queuedMessages: Int32 = 0
        while true {
            let (adds, cancels, stopping) = lock.withLock {
                let adds = pendingAdds
                pendingAdds = []
                for transfer in adds { transfer.state = .active }
                let cancels = pendingCancels
                pendingCancels = []
                return (adds, cancels, isShutdown)
            }
            for transfer in cancels {
                if let handle = transfer.handle {
                    detach(transfer, handle: handle)
                    finish(transfer, .failure(.cancelled))
                }
            }
            if stopping {
                for transfer in adds {
                    finish(transfer, .failure(.shutdown))
                }
                for (handle, transfer) in active {
                    detach(transfer, handle: handle)
                    finish(transfer, .failure(.shutdown))
                }
                for handle in idle {
                    curl_easy_cleanup(handle)
                }
                let cleaned = idle.count
                idle = []
                lock.withLock {
                    statistics.cleanedUp += cleaned
                    statistics.idle = 0
                    multiAlive = false
                }
                curl_multi_cleanup(multi)
                lock.withLock { statistics.multiCleanedUp = true }
                return
            }
            for transfer in adds {
                start(transfer, multi: multi)
            }
            _ = curl_multi_perform(multi, &running)
            while let message = curl_multi_info_read(multi, &queuedMessages) {
                guard CTierCacheCurl_msg_is_done(message) != 0, let handle = message.pointee.easy_handle else { continue }
                let result = CTierCacheCurl_msg_result(message)
                if let transfer = active[handle] {
                    complete(transfer, handle: handle, result: result)
                }
            }
            if curl_multi_poll(multi, nil, 0, 1000, nil) != CURLM_OK {
                // Not expected with a valid multi handle; never spin on it.
                usleep(1000)
            }
        }
    }

    private func start(_ transfer: Transfer, multi: UnsafeMutableRawPointer) {
        let handle: UnsafeMutableRawPointer
        if let pooled = idle.popLast() {
            handle = pooled
            lock.withLock {
                statistics.idle -= 1
                statistics.active += 1
            }
        } else if let created = curl_easy_init() {
            handle = created
            lock.withLock {
                statistics.created += 1
                statistics.active += 1
            }
        } else {
            finish(transfer, .failure(HTTPClientError(code: .transport, message: "curl_easy_init failed")))
            return
        }
        transfer.handle = handle
        if let error = configure(handle, for: transfer) {
            release(transfer, handle: handle)
            finish(transfer, .failure(error))
            return
        }
        let rc = curl_multi_add_handle(multi, handle)
        guard rc == CURLM_OK else {
            release(transfer, handle: handle)
            let name = String(cString: curl_multi_strerror(rc))
            finish(transfer, .failure(HTTPClientError(code: .transport, message: "curl_multi_add_handle: \(name)")))
            return
        }
        active[handle] = transfer
    }

    private func complete(_ transfer: Transfer, handle: UnsafeMutableRawPointer, result: CURLcode) {
        var status = 0
        _ = CTierCacheCurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        let outcome: Result<HTTPResponse, HTTPClientError>
        if transfer.exceededLimit {
            outcome = .failure(.responseTooLarge(status: transfer.responseStatus, limit: transfer.responseLimit))
        } else if result == CURLE_OK {
            outcome = .success(HTTPResponse(status: status, headers: transfer.responseHeaders, body: transfer.responseBody))
        } else {
            var pretransfer: curl_off_t = 0
            _ = CTierCacheCurl_easy_getinfo_off_t(handle, CURLINFO_PRETRANSFER_TIME_T, &pretransfer)
            let detail = String(cString: transfer.errorBuffer)
            let error = HTTPClientError(curlCode: result, detail: detail, connected: pretransfer > 0 || status != 0)
            logger.debug(
                "HTTP transfer failed",
                metadata: [
                    "method": "\(transfer.request.method)",
                    "url": "\(Self.redacted(transfer.request.url))",
                    "error": "\(error)",
                ]
            )
            outcome = .failure(error)
        }
        detach(transfer, handle: handle)
        finish(transfer, outcome)
    }

    /// Removes a transfer's handle from the multi handle and returns it to the pool.
    private func detach(_ transfer: Transfer, handle: UnsafeMutableRawPointer) {
        if let multi {
            _ = curl_multi_remove_handle(multi, handle)
        }
        active[handle] = nil
        release(transfer, handle: handle)
    }

    /// Returns a handle not (or no longer) in the multi handle to the pool, or destroys it.
    private func release(_ transfer: Transfer, handle: UnsafeMutableRawPointer) {
        var opened = 0
        _ = CTierCacheCurl_easy_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &opened)
        if let list = transfer.headerList {
            curl_slist_free_all(list)
            transfer.headerList = nil
        }
        transfer.handle = nil
        curl_easy_reset(handle)
        let keep = idle.count < configuration.maxIdleHandles
        if keep {
            idle.append(handle)
        } else {
            curl_easy_cleanup(handle)
        }
        lock.withLock {
            connections += opened
            statistics.active -= 1
            if keep { statistics.idle += 1 } else { statistics.cleanedUp += 1 }
        }
    }

    private func finish(_ transfer: Transfer, _ outcome: Result<HTTPResponse, HTTPClientError>) {
        let continuation: TransferContinuation? = lock.withLock {
            guard transfer.state != .finished else { return nil }
            transfer.state = .finished
            return transfer.takeContinuation()
        }
        continuation?.resume(returning: outcome)
    }

    /// The URL without its query (presigned URLs carry signatures there).
    static func redacted(_ url: String) -> Substring {
        url.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(url)
    }

    // MARK: Configuring an easy handle

    private func configure(_ handle: UnsafeMutableRawPointer, for transfer: Transfer) -> HTTPClientError? {
        let request = transfer.request
        var failure: CURLcode = CURLE_OK
        func check(_ rc: CURLcode) {
            if rc != CURLE_OK && failure == CURLE_OK { failure = rc }
        }
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        transfer.errorBuffer[0] = 0

        check(request.url.withCString { CTierCacheCurl_easy_setopt_string(handle, CURLOPT_URL, $0) })
        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        check(CTierCacheCurl_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, transfer.errorBuffer))
        check(CTierCacheCurl_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, CTierCacheCurl_http_version_1_1()))
        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        // The path goes out exactly as given: "." and ".." segments are not resolved away (an S3
        // key may hold them, and the request was signed over the path as given).
        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_PATH_AS_IS, 1))
        check(CTierCacheCurl_easy_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, writeCallback))
        check(CTierCacheCurl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
        check(CTierCacheCurl_easy_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback))
        check(CTierCacheCurl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context))

        if transfer.sendsBody {
            check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_UPLOAD, 1))
            check(CTierCacheCurl_easy_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.count)))
            check(CTierCacheCurl_easy_setopt_data_callback(handle, CURLOPT_READFUNCTION, readCallback))
            check(CTierCacheCurl_easy_setopt_pointer(handle, CURLOPT_READDATA, context))
            check(CTierCacheCurl_easy_setopt_seek_callback(handle, CURLOPT_SEEKFUNCTION, seekCallback))
            check(CTierCacheCurl_easy_setopt_pointer(handle, CURLOPT_SEEKDATA, context))
            transfer.uploadOffset = 0
            if request.method != .put {
                check(request.method.rawValue.withCString { CTierCacheCurl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, $0) })
            }
            if request.method == .head {
                return .invalidRequest("a HEAD request cannot carry a body")
            }
        } else if request.method == .head {
            check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_NOBODY, 1))
        } else if request.method == .get {
            check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_HTTPGET, 1))
        } else {
            check(request.method.rawValue.withCString { CTierCacheCurl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, $0) })
        }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        var listFailed = false
        func append(_ line: String) {
            guard !listFailed else { return }
            if let next = line.withCString({ curl_slist_append(list, $0) }) {
                list = next
            } else {
                listFailed = true
            }
        }
        for field in request.headers {
            // "Name;" is libcurl's spelling of a header sent with an empty value.
            append(field.value.isEmpty ? "\(field.name);" : "\(field.name): \(field.value)")
        }
        // libcurl adds `Expect: 100-continue` to uploads; S3 and our servers answer directly.
        if !request.headers.contains(name: "Expect") {
            append("Expect:")
        }
        transfer.headerList = list
        if listFailed {
            return HTTPClientError(code: .transport, message: "out of memory building the header list")
        }
        check(CTierCacheCurl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, list))

        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, transfer.connectTimeoutMilliseconds))
        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, transfer.timeoutMilliseconds))
        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, configuration.verifyTLS ? 1 : 0))
        check(CTierCacheCurl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, configuration.verifyTLS ? 2 : 0))
        if let caBundlePath = configuration.caBundlePath {
            check(caBundlePath.withCString { CTierCacheCurl_easy_setopt_string(handle, CURLOPT_CAINFO, $0) })
        }
        check(configuration.userAgent.withCString { CTierCacheCurl_easy_setopt_string(handle, CURLOPT_USERAGENT, $0) })

        if failure != CURLE_OK {
            return HTTPClientError(curlCode: failure, detail: String(cString: transfer.errorBuffer), connected: false)
        }
        return nil
    }
}

// MARK: libcurl callbacks (run on the engine thread, inside curl_multi_perform)

/// Most bytes reserved up front from a response's Content-Length; larger bodies grow.
private let maximumReservation = 64 << 20

private let writeCallback: CTierCacheCurl_data_callback = { buffer, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    if length > transfer.responseLimit - transfer.responseBody.count {
        transfer.exceededLimit = true
        return 0  // anything but `length` makes libcurl abort with CURLE_WRITE_ERROR
    }
    if length > 0, let buffer {
        let bytes = UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self)
        transfer.responseBody.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
    }
    return length
}

private let headerCallback: CTierCacheCurl_data_callback = { buffer, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    guard length > 0, let buffer else { return length }
    let line = UnsafeRawBufferPointer(start: buffer, count: length)
    parseHeaderLine(line, into: transfer)
    return transfer.exceededLimit ? 0 : length
}

private func parseHeaderLine(_ line: UnsafeRawBufferPointer, into transfer: Transfer) {
    var end = line.count
    while end > 0 && (line[end - 1] == 0x0A || line[end - 1] == 0x0D) { end -= 1 }
    guard end > 0 else { return }
    // A status line starts a new response (after a 1xx): keep only the last one's fields, and
    // take the body limit for its status ("HTTP/1.1 404 Not Found": three digits after a space).
    if end >= 5 && line[0] == 0x48 && line[1] == 0x54 && line[2] == 0x54 && line[3] == 0x50 && line[4] == 0x2F {
        transfer.responseHeaders = HTTPHeaders()
        transfer.responseBody.removeAll(keepingCapacity: true)
        var status = 0
        if var index = line[0..<end].firstIndex(of: 0x20) {
            index += 1
            while index < end, line[index] >= 0x30, line[index] <= 0x39, status < 1000 {
                status = status * 10 + Int(line[index] - 0x30)
                index += 1
            }
        }
        transfer.responseStatus = status
        transfer.responseLimit = (200..<300).contains(status) ? transfer.successBodyLimit : transfer.errorBodyLimit
        return
    }
    guard let colon = line[0..<end].firstIndex(of: 0x3A) else { return }
    let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<colon]), as: UTF8.self)
    var start = colon + 1
    while start < end && (line[start] == 0x20 || line[start] == 0x09) { start += 1 }
    var stop = end
    while stop > start && (line[stop - 1] == 0x20 || line[stop - 1] == 0x09) { stop -= 1 }
    let value = String(decoding: UnsafeRawBufferPointer(rebasing: line[start..<stop]), as: UTF8.self)
    transfer.responseHeaders.add(name: name, value: value)
    if transfer.request.method != .head, HTTPHeaders.equalsIgnoringCase(name, "Content-Length"),
        let length = Int(value), length > 0
    {
        if length > transfer.responseLimit {
            transfer.exceededLimit = true
        } else {
            transfer.responseBody.reserveCapacity(min(length, maximumReservation))
        }
    }
}

private let readCallback: CTierCacheCurl_data_callback = { buffer, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    guard let buffer else { return 0 }
    let capacity = size * count
    let body = transfer.request.body
    let length = min(capacity, body.count - transfer.uploadOffset)
    guard length > 0 else { return 0 }
    body.withUnsafeBytes { source in
        UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + transfer.uploadOffset, byteCount: length)
    }
    transfer.uploadOffset += length
    return length
}

private let seekCallback: CTierCacheCurl_seek_callback = { context, offset, origin in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    guard origin == SEEK_SET, offset >= 0, offset <= transfer.request.body.count else {
        return CTierCacheCurl_seekfunc_fail()
    }
    transfer.uploadOffset = Int(offset)
    return CTierCacheCurl_seekfunc_ok()
}
