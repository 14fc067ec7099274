#if canImport(Glibc)
import Glibc
#endif
import Testing
import TierCache
import TierCacheLambda
import TierCacheTesting

extension LambdaTests {
@Suite("Runtime API loop")
struct RuntimeLoopTests {
    @Test("happy path: a Codable event gets a Codable response, 202 from the emulator")
    func happyPath() async throws {
        let h = try Harness(configuration: .init(registerShutdownExtension: false))
        let run = Task {
            await h.runtime.run {
                .codable(Greeting.self) { event, _ in Answer(message: "hello \(event.name)") }
            }
        }
        let first = h.emulator.enqueue(json: #"{"name":"ada"}"#)
        let second = h.emulator.enqueue(json: #"{"name":"bob"}"#)
        let a = try #require(await h.emulator.outcome(for: first))
        let b = try #require(await h.emulator.outcome(for: second))
        #expect(a.kind == .response)
        #expect(try JSON.parse(a.text) == JSON.parse(#"{"message":"hello ada"}"#))
        #expect(b.kind == .response)
        #expect(try JSON.parse(b.text)["message"]?.string == "hello bob")
        h.emulator.shutdown()
        let result = await run.value
        #expect(result.invocations == 2)
        #expect(result.exitStatus != 0, "the loop ends when next answers 500")
        h.emulator.stop()
    }

    @Test("raw handler: bytes in, bytes out")
    func rawHandler() async throws {
        let h = try Harness(configuration: .init(registerShutdownExtension: false, maxInvocations: 1))
        let run = Task { await h.runtime.run { .raw { bytes, _ in Array(bytes.reversed()) } } }
        let id = h.emulator.enqueue([1, 2, 3, 250])
        let result = await run.value
        let outcome = try #require(await h.emulator.outcome(for: id, timeout: .seconds(1)))
        #expect(outcome.body == [250, 3, 2, 1])
        #expect(result.exitStatus == 0)
        h.emulator.stop()
    }

    @Test("Runtime API answers are bounded: a 5 MiB event is delivered, a 9 MiB one ends the loop with a typed error")
    func eventSizeBound() async throws {
        let h = try Harness(configuration: .init(registerShutdownExtension: false, maxInvocations: 2))
        let run = Task { await h.runtime.run { .raw { bytes, _ in Array(String(bytes.count).utf8) } } }
        let fits = h.emulator.enqueue([UInt8](repeating: 0x20, count: 5 << 20))
        let outcome = try #require(await h.emulator.outcome(for: fits))
        #expect(outcome.text == String(5 << 20))
        _ = h.emulator.enqueue([UInt8](repeating: 0x20, count: 9 << 20))
        let result = await run.value
        #expect(result.invocations == 1)
        #expect(result.exitStatus == 2)
        #expect(result.reason.contains("responseTooLarge"))
        h.emulator.stop()
    }

    struct Refused: Error {}

    @Test("a handler error is posted to /error with its type, and the loop goes on")
    func handlerError() async throws {
        let h = try Harness(configuration: .init(registerShutdownExtension: false, maxInvocations: 2))
        let run = Task {
            await h.runtime.run {
                .codable(Greeting.self) { event, _ in
                    if event.name == "bad" { throw Refused() }
                    return Answer(message: "ok")
                }
            }
        }
        let bad = h.emulator.enqueue(json: #"{"name":"bad"}"#)
        let good = h.emulator.enqueue(json: #"{"name":"good"}"#)
        _ = await run.value
        let failed = try #require(await h.emulator.outcome(for: bad, timeout: .seconds(1)))
        #expect(failed.kind == .error)
        #expect(failed.errorTypeHeader == "Function.Refused")
        let body = try errorBody(failed)
        #expect(body.type == "Refused")
        #expect(body.stackTrace.isEmpty)
        #expect(!body.message.isEmpty)
        #expect(try #require(await h.emulator.outcome(for: good, timeout: .seconds(1))).kind == .response)
        h.emulator.stop()
    }

    @Test("an event that does not decode is an UnmarshalError, and the runtime keeps serving")
    func undecodableEvent() async throws {
        let h = try Harness(configuration: .init(registerShutdownExtension: false, maxInvocations: 4))
        let run = Task {
            await h.runtime.run { .codable(Greeting.self) { event, _ in Answer(message: event.name) } }
        }
        let notJSON = h.emulator.enqueue(Array("not json at all".utf8))
        let wrongShape = h.emulator.enqueue(json: #"{"nom":"x"}"#)
        let empty = h.emulator.enqueue([])
        let fine = h.emulator.enqueue(json: #"{"name":"still here"}"#)
        let result = await run.value
        for id in [notJSON, wrongShape, empty] {
            let outcome = try #require(await h.emulator.outcome(for: id, timeout: .seconds(1)))
            #expect(outcome.kind == .error)
            #expect(outcome.errorTypeHeader == "Runtime.UnmarshalError")
            #expect(try errorBody(outcome).type == "Runtime.UnmarshalError")
        }
        let last = try #require(await h.emulator.outcome(for: fine, timeout: .seconds(1)))
        #expect(last.kind == .response)
        #expect(try JSON.parse(last.text)["message"]?.string == "still here")
        #expect(result.invocations == 4)
        // Every failed invocation is counted in its EMF line.
        let errors = try h.lines.lines.map { try JSON.parse($0)["Errors"]?.number ?? 0 }
        #expect(errors == [1, 1, 1, 0])
        h.emulator.stop()
    }

    struct BrokenInit: Error {}

    @Test("a failing setup posts /init/error and gives a non-zero exit status")
    func initFailure() async throws {
        let h = try Harness(configuration: .init(registerShutdownExtension: false))
        let result = await h.runtime.run { throw BrokenInit() }
        #expect(result.exitStatus == 1)
        let posted = try #require(await h.emulator.initError(timeout: .seconds(1)))
        #expect(posted.errorTypeHeader == "Function.BrokenInit")
        let body = try JSON.parse(String(decoding: posted.body, as: UTF8.self))
        #expect(body["errorType"]?.string == "BrokenInit")
        #expect(body["stackTrace"]?.array == [])
        #expect(h.emulator.nextCalls == 0, "no event is asked for after a failed INIT")
        h.emulator.stop()
    }

    @Test("a warm-set value that can be neither read nor built fails INIT")
    func warmSetFailure() async throws {
        let h = try Harness(configuration: .init(registerShutdownExtension: false))
        let cache = h.cache(Model.self, tiers: [.remote(DictionaryTier(name: "s3"))])
        var warm = WarmSet()
        warm.add(try h.runtime.environment.cacheKey("model", schemaVersion: 1), in: cache) { throw BrokenInit() }
        let result = await h.runtime.run(warmSet: warm) { .raw { bytes, _ in bytes } }
        #expect(result.exitStatus == 1)
        let posted = try #require(await h.emulator.initError(timeout: .seconds(1)))
        #expect(posted.errorTypeHeader == "Runtime.warmSetUnavailable")
        h.emulator.stop()
    }

    @Test("deadline, trace and mobile headers reach the context; _X_AMZN_TRACE_ID is set")
    func contextHeaders() async throws {
        struct Seen: Sendable {
            var context: LambdaContext
            var traceEnv: String?
        }
        let seen = LockedValueBox<[Seen]>([])
        let h = try Harness(configuration: .init(registerShutdownExtension: false, maxInvocations: 2))
        let run = Task {
            await h.runtime.run {
                .raw { bytes, context in
                    seen.withLock { $0.append(Seen(context: context, traceEnv: getenv("_X_AMZN_TRACE_ID").map { String(cString: $0) })) }
                    return bytes
                }
            }
        }
        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        let before = SystemCacheClock().now()
        let id = h.emulator.enqueue(Array("{}".utf8), timeout: .seconds(30), traceID: trace,
                                    clientContext: #"{"client":{"app_title":"t"}}"#, cognitoIdentity: #"{"cognitoIdentityId":"c"}"#)
        let other = h.emulator.enqueue(json: "{}", timeout: .seconds(5), traceID: "Root=1-other")
        _ = await run.value
        let contexts = seen.withLock { $0 }
        try #require(contexts.count == 2)
        let first = contexts[0]
        #expect(first.context.requestID == id)
        #expect(first.context.traceID == trace)
        #expect(first.traceEnv == trace)
        #expect(first.context.clientContext == #"{"client":{"app_title":"t"}}"#)
        #expect(first.context.cognitoIdentity == #"{"cognitoIdentityId":"c"}"#)
        #expect(first.context.invokedFunctionARN.hasSuffix(":function:test-fn"))
        #expect(first.context.isColdStart)
        let expectedDeadline = before.advanced(by: .seconds(30)).millisecondsSince1970
        #expect(abs(first.context.deadline.millisecondsSince1970 - expectedDeadline) < 2000)
        #expect(first.context.remainingTime > .seconds(20) && first.context.remainingTime <= .seconds(30))
        #expect(contexts[1].context.requestID == other)
        #expect(contexts[1].traceEnv == "Root=1-other")
        #expect(!contexts[1].context.isColdStart)
        #expect(contexts[1].context.remainingTime <= .seconds(5))
        h.emulator.stop()
    }
}
}
