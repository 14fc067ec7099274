#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TierCache
import TierCacheHTTP

/// The documented error body of `/invocation/{id}/error` and `/init/error`.
struct ErrorReport: Codable, Sendable {
    var errorMessage: String
    var errorType: String
    var stackTrace: [String]
}

/// An invocation as `next` delivered it.
struct Invocation: Sendable {
    var requestID: String
    var deadlineMs: Int64
    var invokedFunctionARN: String
    var traceID: String?
    var clientContext: String?
    var cognitoIdentity: String?
    var payload: [UInt8]
}

/// An Extensions API event.
struct ExtensionEvent: Decodable, Sendable {
    var eventType: String
    var deadlineMs: Int64?
    var shutdownReason: String?
}

/// The Runtime API (2018-06-01) and Extensions API (2020-01-01) over the project's libcurl client.
struct RuntimeAPIClient: Sendable {
    let http: HTTPClient
    let base: String
    /// Deadline for posts (response, error, init error, register).
    let postTimeout: Duration
    /// The largest event `next` accepts: above Lambda's invocation payload limit (6 MB for
    /// synchronous invocations, less for asynchronous ones), with room to spare.
    static let maxEventBytes = 8 << 20
    /// The largest answer to anything else (acknowledgements, registration, extension events,
    /// error documents): they are a few hundred bytes.
    static let maxAnswerBytes = 64 << 10

    init(runtimeAPI: String, postTimeout: Duration = .seconds(10)) {
        // No total timeout by default: `next` is a long poll that may wait for hours.
        // Every answer but an event is small; `next` raises the limit for its own request.
        http = HTTPClient(configuration: .init(connectTimeout: .seconds(1), timeout: nil, maxConnectionsPerHost: 4,
                                               userAgent: "swift-tiercache-lambda", maxResponseBodyBytes: Self.maxAnswerBytes))
        base = "http://\(runtimeAPI)"
        self.postTimeout = postTimeout
    }

    func shutdown() { http.shutdown() }

    private func execute(_ request: HTTPRequest) async throws(LambdaRuntimeError) -> HTTPResponse {
        do {
            return try await http.execute(request)
        } catch {
            throw LambdaRuntimeError(.transport, "\(request.method) \(request.url): \(error)")
        }
    }

    /// `GET /2018-06-01/runtime/invocation/next`, with no timeout.
    func next() async throws(LambdaRuntimeError) -> Invocation {
        let response = try await execute(HTTPRequest(method: .get, url: "\(base)/2018-06-01/runtime/invocation/next",
                                                     maxResponseBodyBytes: Self.maxEventBytes, maxErrorBodyBytes: Self.maxAnswerBytes))
        return try Self.invocation(from: response)
    }

    /// Reads `next`'s answer: status 200, a request id and a numeric deadline, or a typed error.
    /// Separate from the transfer so that the fuzz target `runtime` reaches it.
    static func invocation(from response: HTTPResponse) throws(LambdaRuntimeError) -> Invocation {
        guard response.status == 200 else {
            throw LambdaRuntimeError(.unexpectedStatus, "next answered \(response.status): \(String(decoding: response.body.prefix(256), as: UTF8.self))", status: response.status)
        }
        guard let id = response.headers["Lambda-Runtime-Aws-Request-Id"], !id.isEmpty,
              let deadline = response.headers["Lambda-Runtime-Deadline-Ms"].flatMap({ Int64($0) }) else {
            throw LambdaRuntimeError(.invalidInvocation, "next answered without Lambda-Runtime-Aws-Request-Id or Lambda-Runtime-Deadline-Ms")
        }
        return Invocation(
            requestID: id, deadlineMs: deadline,
            invokedFunctionARN: response.headers["Lambda-Runtime-Invoked-Function-Arn"] ?? "",
            traceID: response.headers["Lambda-Runtime-Trace-Id"],
            clientContext: response.headers["Lambda-Runtime-Client-Context"],
            cognitoIdentity: response.headers["Lambda-Runtime-Cognito-Identity"],
            payload: response.body)
    }

    /// `POST /2018-06-01/runtime/invocation/{id}/response`; 202 expected.
    func postResponse(requestID: String, body: [UInt8]) async throws(LambdaRuntimeError) {
        let response = try await execute(HTTPRequest(
            method: .post, url: "\(base)/2018-06-01/runtime/invocation/\(requestID)/response",
            body: body, timeout: postTimeout))
        try expectAccepted(response, "response")
    }

    /// `POST /2018-06-01/runtime/invocation/{id}/error`; 202 expected.
    func postError(requestID: String, _ report: ErrorReport, errorTypeHeader: String) async throws(LambdaRuntimeError) {
        let response = try await execute(HTTPRequest(
            method: .post, url: "\(base)/2018-06-01/runtime/invocation/\(requestID)/error",
            headers: ["Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": errorTypeHeader],
            body: Self.encode(report), timeout: postTimeout))
        try expectAccepted(response, "error")
    }

    /// `POST /2018-06-01/runtime/init/error`; 202 expected.
    func postInitError(_ report: ErrorReport, errorTypeHeader: String) async throws(LambdaRuntimeError) {
        let response = try await execute(HTTPRequest(
            method: .post, url: "\(base)/2018-06-01/runtime/init/error",
            headers: ["Content-Type": "application/json", "Lambda-Runtime-Function-Error-Type": errorTypeHeader],
            body: Self.encode(report), timeout: postTimeout))
        try expectAccepted(response, "init/error")
    }

    /// `POST /2020-01-01/extension/register`; returns the `Lambda-Extension-Identifier`.
    func registerExtension(name: String, events: [String]) async throws(LambdaRuntimeError) -> String {
        struct Body: Encodable { var events: [String] }
        let body = (try? JSONEncoder().encode(Body(events: events))).map { Array($0) } ?? []
        let response = try await execute(HTTPRequest(
            method: .post, url: "\(base)/2020-01-01/extension/register",
            headers: ["Content-Type": "application/json", "Lambda-Extension-Name": name],
            body: body, timeout: postTimeout))
        guard response.status == 200, let id = response.headers["Lambda-Extension-Identifier"], !id.isEmpty else {
            throw LambdaRuntimeError(.unexpectedStatus, "extension register answered \(response.status)", status: response.status)
        }
        return id
    }

    /// `GET /2020-01-01/extension/event/next`, with no timeout.
    func nextExtensionEvent(identifier: String) async throws(LambdaRuntimeError) -> ExtensionEvent {
        let response = try await execute(HTTPRequest(
            method: .get, url: "\(base)/2020-01-01/extension/event/next",
            headers: ["Lambda-Extension-Identifier": identifier]))
        guard response.status == 200 else {
            throw LambdaRuntimeError(.unexpectedStatus, "extension next answered \(response.status)", status: response.status)
        }
        do {
            return try JSONDecoder().decode(ExtensionEvent.self, from: Data(response.body))
        } catch {
            throw LambdaRuntimeError(.invalidInvocation, "extension event is not the documented JSON: \(error)")
        }
    }

    private func expectAccepted(_ response: HTTPResponse, _ what: String) throws(LambdaRuntimeError) {
        guard response.status == 202 else {
            throw LambdaRuntimeError(.unexpectedStatus, "\(what) answered \(response.status): \(String(decoding: response.body.prefix(256), as: UTF8.self))", status: response.status)
        }
    }

    static func encode(_ report: ErrorReport) -> [UInt8] {
        (try? JSONEncoder().encode(report)).map { Array($0) } ?? Array(#"{"errorMessage":"unencodable error","errorType":"Runtime.Unknown","stackTrace":[]}"#.utf8)
    }
}
