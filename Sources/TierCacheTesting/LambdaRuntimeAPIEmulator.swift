#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TierCache

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A loopback emulator of the AWS Lambda Runtime API (`2018-06-01`) and the Extensions API
/// (`2020-01-01`), for tests and the cold-start demo.
///
/// Point a runtime at it with `AWS_LAMBDA_RUNTIME_API=<runtimeAPI>`. It follows the published API:
/// - `GET /2018-06-01/runtime/invocation/next` blocks until an event is queued (a long poll), then
///   answers 200 with the event as body and the `Lambda-Runtime-Aws-Request-Id`,
///   `-Deadline-Ms`, `-Invoked-Function-Arn`, `-Trace-Id` and (when set) `-Client-Context`,
///   `-Cognito-Identity` headers. After ``shutdown(reason:)`` it answers 500 (the documented
///   "container error, the runtime should exit").
/// - `POST …/invocation/{id}/response` and `…/{id}/error`: 202 Accepted; 400 for an id never
///   handed out, 403 for one already answered, 413 for a response over
///   ``Configuration/maxResponseBytes`` (6 MB as documented).
/// - `POST /2018-06-01/runtime/init/error`: 202; 403 once the runtime has asked for an event.
/// - `POST /2020-01-01/extension/register` (header `Lambda-Extension-Name`, body
///   `{"events": [...]}`): 200 with a `Lambda-Extension-Identifier`; 400 for a missing name or a
///   bad body, 403 after INIT ended. `GET /2020-01-01/extension/event/next` (with that
///   identifier, else 403) blocks until an event for the extension: `INVOKE` for each invocation
///   if registered for it, `SHUTDOWN` after ``shutdown(reason:)``.
/// - Any other path: 500.
public final class LambdaRuntimeAPIEmulator: Sendable {
    /// Limits and identity of the emulated function.
    public struct Configuration: Sendable {
        /// The function name reported to extensions and put in ARNs.
        public var functionName: String
        /// The function version reported to extensions.
        public var functionVersion: String
        /// The largest response body accepted (413 beyond). Default 6 MB as documented.
        public var maxResponseBytes: Int
        /// How long the emulator waits for an invocation's answer before ``outcome(for:timeout:)``
        /// gives up; informative only.
        public var defaultTimeout: Duration

        /// Creates a configuration.
        public init(functionName: String = "test-function", functionVersion: String = "$LATEST",
                    maxResponseBytes: Int = 6 * 1024 * 1024, defaultTimeout: Duration = .seconds(3)) {
            self.functionName = functionName
            self.functionVersion = functionVersion
            self.maxResponseBytes = maxResponseBytes
            self.defaultTimeout = defaultTimeout
        }
    }

    /// An event waiting for (or handed to) the runtime.
    public struct Invocation: Sendable {
        /// The request id.
        public var requestID: String
        /// The event body.
        public var payload: [UInt8]
        /// The deadline, in milliseconds since 1970, sent as `Lambda-Runtime-Deadline-Ms`.
        public var deadlineMs: Int64
        /// The ARN sent as `Lambda-Runtime-Invoked-Function-Arn`.
        public var invokedFunctionARN: String
        /// The X-Ray header sent as `Lambda-Runtime-Trace-Id`.
        public var traceID: String
        /// Sent as `Lambda-Runtime-Client-Context` when not nil.
        public var clientContext: String?
        /// Sent as `Lambda-Runtime-Cognito-Identity` when not nil.
        public var cognitoIdentity: String?
    }

    /// What the runtime answered for an invocation.
    public struct Outcome: Sendable {
        /// Whether the runtime posted a response or an error.
        public enum Kind: Sendable, Equatable {
            /// `POST …/response`.
            case response
            /// `POST …/error`.
            case error
        }

        /// The request id.
        public var requestID: String
        /// Response or error.
        public var kind: Kind
        /// The posted body.
        public var body: [UInt8]
        /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
        public var errorTypeHeader: String?
        /// When the emulator received it.
        public var receivedAt: ContinuousClock.Instant

        /// The body as UTF-8 text.
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// A posted init error.
    public struct InitError: Sendable {
        /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
        public var errorTypeHeader: String?
        /// The posted body.
        public var body: [UInt8]
    }

    /// A registered extension.
    public struct Extension: Sendable {
        /// The `Lambda-Extension-Name` it registered with.
        public var name: String
        /// The identifier handed back.
        public var identifier: String
        /// The events it registered for.
        public var events: [String]
        /// How many times it has asked for its next event.
        public var nextCalls: Int
    }

    private struct State {
        var queue: [Invocation] = []
        var issued: [String: Invocation] = [:]
        var answered: Set<String> = []
        var outcomes: [Outcome] = []
        var initErrors: [InitError] = []
        var extensions: [String: Extension] = [:]
        var extensionEvents: [String: [[String: JSONValue]]] = [:]
        var initDone = false
        var shuttingDown = false
        var shutdownReason = "spindown"
        var nextCalls = 0
        var firstNextAt: ContinuousClock.Instant?
    }

    /// The server underneath (its recorded requests and faults are available to tests).
    public let server: LoopbackHTTPServer
    /// The configuration in use.
    public let configuration: Configuration
    private let state: LockedValueBox<State>
    private let onOutcome: LockedValueBox<(@Sendable (Outcome) -> Void)?>

    /// `127.0.0.1:<port>`: the value for `AWS_LAMBDA_RUNTIME_API`.
    public var runtimeAPI: String { "127.0.0.1:\(server.port)" }

    /// Starts the emulator on an ephemeral loopback port.
    /// - Throws: `TierCacheError` (`.storage`) when the socket cannot be set up.
    public init(configuration: Configuration = Configuration()) throws {
        let state = LockedValueBox(State())
        let onOutcome = LockedValueBox<(@Sendable (Outcome) -> Void)?>(nil)
        self.state = state
        self.onOutcome = onOutcome
        self.configuration = configuration
        let box = LockedValueBox<LoopbackHTTPServer?>(nil)
        server = try LoopbackHTTPServer(configuration: .init(maxConnections: 64, maxRequestBytes: 64 << 20)) { request in
            Self.handle(request, state: state, onOutcome: onOutcome, configuration: configuration,
                        isStopping: { box.withLock { $0?.isStopping ?? false } })
        }
        box.withLock { $0 = server }
    }

    deinit {
        stop()
    }

    /// Stops the server (ending any long poll) and joins its threads.
    public func stop() {
        server.stop()
    }

    /// Called on the server thread for each posted response or error, before the 202 goes out:
    /// what it observes is the state at the moment the runtime's answer arrived.
    public func setOnOutcome(_ body: (@Sendable (Outcome) -> Void)?) {
        onOutcome.withLock { $0 = body }
    }

    /// Queues an event.
    /// - Parameters:
    ///   - payload: the event body.
    ///   - timeout: how far in the future the deadline is.
    ///   - traceID: the `Lambda-Runtime-Trace-Id` value; a generated X-Ray header when nil.
    /// - Returns: the request id.
    @discardableResult
    public func enqueue(_ payload: [UInt8], timeout: Duration = .seconds(3), traceID: String? = nil,
                        clientContext: String? = nil, cognitoIdentity: String? = nil) -> String {
        let id = Self.requestID()
        let now = WallTime.nowForEmulator()
        let invocation = Invocation(
            requestID: id, payload: payload,
            deadlineMs: now.advanced(by: timeout).millisecondsSince1970,
            invokedFunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:\(configuration.functionName)",
            traceID: traceID ?? "Root=1-\(Self.hex(8))-\(Self.hex(24));Parent=\(Self.hex(16));Sampled=0",
            clientContext: clientContext, cognitoIdentity: cognitoIdentity)
        state.withLock { $0.queue.append(invocation) }
        return id
    }

    /// Queues a JSON text event.
    @discardableResult
    public func enqueue(json: String, timeout: Duration = .seconds(3), traceID: String? = nil) -> String {
        enqueue(Array(json.utf8), timeout: timeout, traceID: traceID)
    }

    /// Starts the SHUTDOWN phase: extensions registered for `SHUTDOWN` receive the event, and
    /// `next` answers 500 from now on (pending long polls included).
    public func shutdown(reason: String = "spindown", deadline: Duration = .seconds(2)) {
        let deadlineMs = WallTime.nowForEmulator().advanced(by: deadline).millisecondsSince1970
        state.withLock { state in
            state.shuttingDown = true
            state.shutdownReason = reason
            for (id, ext) in state.extensions where ext.events.contains("SHUTDOWN") {
                state.extensionEvents[id, default: []].append([
                    "eventType": .string("SHUTDOWN"), "shutdownReason": .string(reason),
                    "deadlineMs": .number(Double(deadlineMs)),
                ])
            }
        }
    }

    /// Every response and error posted so far, in arrival order.
    public var outcomes: [Outcome] { state.withLock { $0.outcomes } }
    /// Every init error posted so far.
    public var initErrors: [InitError] { state.withLock { $0.initErrors } }
    /// Registered extensions.
    public var extensions: [Extension] { state.withLock { Array($0.extensions.values) } }
    /// Calls to `next` so far.
    public var nextCalls: Int { state.withLock { $0.nextCalls } }
    /// When the runtime first asked for an event: the end of its INIT, "ready for the first event".
    public var firstNextAt: ContinuousClock.Instant? { state.withLock { $0.firstNextAt } }
    /// Whether an extension has an undelivered event.
    public var pendingExtensionEvents: Int { state.withLock { $0.extensionEvents.values.reduce(0) { $0 + $1.count } } }

    /// Waits (polling) until the runtime answered `requestID`, up to `timeout`.
    public func outcome(for requestID: String, timeout: Duration = .seconds(10)) async -> Outcome? {
        let end = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < end {
            if let found = state.withLock({ $0.outcomes.first { $0.requestID == requestID } }) { return found }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return nil
    }

    /// Waits (polling) until an init error was posted, up to `timeout`.
    public func initError(timeout: Duration = .seconds(10)) async -> InitError? {
        let end = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < end {
            if let found = state.withLock({ $0.initErrors.first }) { return found }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return nil
    }

    // MARK: Request handling (server threads)

    private static let runtimePrefix = "/2018-06-01/runtime/"
    private static let extensionPrefix = "/2020-01-01/extension/"

    private static func handle(
        _ request: LoopbackHTTPServer.Request, state: LockedValueBox<State>,
        onOutcome: LockedValueBox<(@Sendable (Outcome) -> Void)?>, configuration: Configuration,
        isStopping: @Sendable () -> Bool
    ) -> LoopbackHTTPServer.Response {
        let path = request.path
        switch (request.method, path) {
        case ("GET", runtimePrefix + "invocation/next"):
            return next(state: state, isStopping: isStopping)
        case ("POST", runtimePrefix + "init/error"):
            return state.withLock { state in
                if state.initDone { return error(403, "InvalidStateTransition", "init/error after the runtime asked for an event") }
                state.initErrors.append(InitError(errorTypeHeader: request.header("Lambda-Runtime-Function-Error-Type"), body: request.body))
                return accepted()
            }
        case ("POST", _) where path.hasPrefix(runtimePrefix + "invocation/"):
            let rest = path.dropFirst((runtimePrefix + "invocation/").count).split(separator: "/", omittingEmptySubsequences: false)
            guard rest.count == 2, !rest[0].isEmpty, rest[1] == "response" || rest[1] == "error" else {
                return error(500, "UnknownEndpoint", "no such endpoint: \(request.method) \(path)")
            }
            let id = String(rest[0])
            let kind: Outcome.Kind = rest[1] == "response" ? .response : .error
            if kind == .response, request.body.count > configuration.maxResponseBytes {
                return error(413, "RequestEntityTooLarge", "response of \(request.body.count) bytes exceeds \(configuration.maxResponseBytes)")
            }
            let outcome = Outcome(requestID: id, kind: kind, body: request.body,
                                  errorTypeHeader: request.header("Lambda-Runtime-Function-Error-Type"),
                                  receivedAt: .now)
            let verdict: LoopbackHTTPServer.Response? = state.withLock { state in
                guard state.issued[id] != nil else { return error(400, "InvalidRequestID", "unknown request id \(id)") }
                guard !state.answered.contains(id) else { return error(403, "InvalidStateTransition", "request \(id) was already answered") }
                return nil
            }
            if let verdict { return verdict }
            // The hook runs before the answer is recorded and acknowledged: it sees the world as
            // it is when the runtime's post arrives.
            onOutcome.withLock { $0 }?(outcome)
            state.withLock { state in
                state.answered.insert(id)
                state.outcomes.append(outcome)
            }
            return accepted()
        case ("POST", extensionPrefix + "register"):
            return register(request, state: state, configuration: configuration)
        case ("GET", extensionPrefix + "event/next"):
            return extensionNext(request, state: state, isStopping: isStopping)
        default:
            return error(500, "UnknownEndpoint", "no such endpoint: \(request.method) \(path)")
        }
    }

    private static func next(state: LockedValueBox<State>, isStopping: @Sendable () -> Bool) -> LoopbackHTTPServer.Response {
        state.withLock { state in
            state.nextCalls += 1
            state.initDone = true
            if state.firstNextAt == nil { state.firstNextAt = .now }
        }
        while !isStopping() {
            enum Step { case wait, shutdown, deliver(Invocation) }
            let step: Step = state.withLock { state in
                if state.shuttingDown { return .shutdown }
                guard !state.queue.isEmpty else { return .wait }
                let invocation = state.queue.removeFirst()
                state.issued[invocation.requestID] = invocation
                for (id, ext) in state.extensions where ext.events.contains("INVOKE") {
                    state.extensionEvents[id, default: []].append([
                        "eventType": .string("INVOKE"), "deadlineMs": .number(Double(invocation.deadlineMs)),
                        "requestId": .string(invocation.requestID),
                        "invokedFunctionArn": .string(invocation.invokedFunctionARN),
                        "tracing": .object(["type": .string("X-Amzn-Trace-Id"), "value": .string(invocation.traceID)]),
                    ])
                }
                return .deliver(invocation)
            }
            switch step {
            case .wait:
                usleep(1000)
            case .shutdown:
                return error(500, "ContainerShutdown", "the execution environment is shutting down")
            case .deliver(let invocation):
                var headers: [(name: String, value: String)] = [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", invocation.requestID),
                    ("Lambda-Runtime-Deadline-Ms", String(invocation.deadlineMs)),
                    ("Lambda-Runtime-Invoked-Function-Arn", invocation.invokedFunctionARN),
                    ("Lambda-Runtime-Trace-Id", invocation.traceID),
                ]
                if let context = invocation.clientContext { headers.append(("Lambda-Runtime-Client-Context", context)) }
                if let identity = invocation.cognitoIdentity { headers.append(("Lambda-Runtime-Cognito-Identity", identity)) }
                return .init(status: 200, headers: headers, body: invocation.payload)
            }
        }
        return error(500, "ContainerShutdown", "the emulator is stopping")
    }

    private struct RegisterBody: Decodable {
        var events: [String]
    }

    private static func register(_ request: LoopbackHTTPServer.Request, state: LockedValueBox<State>, configuration: Configuration) -> LoopbackHTTPServer.Response {
        guard let name = request.header("Lambda-Extension-Name"), !name.isEmpty else {
            return error(400, "InvalidRequest", "missing Lambda-Extension-Name header")
        }
        guard let body = try? JSONDecoder().decode(RegisterBody.self, from: Data(request.body)),
              body.events.allSatisfy({ $0 == "INVOKE" || $0 == "SHUTDOWN" }) else {
            return error(400, "InvalidRequest", "the body must be {\"events\": [\"INVOKE\" | \"SHUTDOWN\", ...]}")
        }
        return state.withLock { state in
            if state.initDone { return error(403, "InvalidStateTransition", "extensions register during INIT only") }
            let id = requestID()
            state.extensions[id] = Extension(name: name, identifier: id, events: body.events, nextCalls: 0)
            let answer: [String: JSONValue] = [
                "functionName": .string(configuration.functionName),
                "functionVersion": .string(configuration.functionVersion),
                "handler": .string("bootstrap"),
            ]
            return .init(status: 200, headers: [("Content-Type", "application/json"), ("Lambda-Extension-Identifier", id)],
                         body: JSONValue.object(answer).encoded())
        }
    }

    private static func extensionNext(_ request: LoopbackHTTPServer.Request, state: LockedValueBox<State>, isStopping: @Sendable () -> Bool) -> LoopbackHTTPServer.Response {
        guard let id = request.header("Lambda-Extension-Identifier"),
              state.withLock({ state -> Bool in
                  guard state.extensions[id] != nil else { return false }
                  state.extensions[id]?.nextCalls += 1
                  return true
              }) else {
            return error(403, "Extension.UnknownExtensionIdentifier", "missing or unknown Lambda-Extension-Identifier")
        }
        while !isStopping() {
            let event: [String: JSONValue]? = state.withLock { state in
                guard var events = state.extensionEvents[id], !events.isEmpty else { return nil }
                let first = events.removeFirst()
                state.extensionEvents[id] = events
                return first
            }
            if let event {
                return .init(status: 200, headers: [("Content-Type", "application/json"), ("Lambda-Extension-Event-Identifier", requestID())],
                             body: JSONValue.object(event).encoded())
            }
            usleep(1000)
        }
        return error(500, "ContainerShutdown", "the emulator is stopping")
    }

    private static func accepted() -> LoopbackHTTPServer.Response {
        .init(status: 202, headers: [("Content-Type", "application/json")], body: Array(#"{"status":"OK"}"#.utf8))
    }

    private static func error(_ status: Int, _ type: String, _ message: String) -> LoopbackHTTPServer.Response {
        .init(status: status, headers: [("Content-Type", "application/json")],
              body: JSONValue.object(["errorType": .string(type), "errorMessage": .string(message)]).encoded())
    }

    private static func hex(_ digits: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<digits).map { _ in "0123456789abcdef".randomElement(using: &generator)! })
    }

    private static func requestID() -> String {
        "\(hex(8))-\(hex(4))-4\(hex(3))-a\(hex(3))-\(hex(12))"
    }
}

/// A minimal JSON value for the emulator's answers.
private enum JSONValue: Sendable {
    case string(String)
    case number(Double)
    case object([String: JSONValue])

    func encoded() -> [UInt8] {
        Array(render().utf8)
    }

    private func render() -> String {
        switch self {
        case .string(let s):
            return JSONText.quoted(s)
        case .number(let n):
            return JSONText.number(n)
        case .object(let fields):
            return "{" + fields.sorted { $0.key < $1.key }.map { JSONValue.string($0.key).render() + ":" + $0.value.render() }.joined(separator: ",") + "}"
        }
    }
}

extension WallTime {
    /// The real wall clock.
    fileprivate static func nowForEmulator() -> WallTime { SystemCacheClock().now() }
}
