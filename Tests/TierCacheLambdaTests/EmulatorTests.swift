import Testing
import TierCache
import TierCacheHTTP
import TierCacheTesting

extension LambdaTests {
@Suite("Runtime API emulator")
struct EmulatorTests {
    func send(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, headers: HTTPHeaders = [:], body: [UInt8] = []) async throws -> HTTPResponse {
        try await client.execute(HTTPRequest(method: method, url: url, headers: headers, body: body, timeout: .seconds(5)))
    }

    @Test("statuses follow the published API")
    func statuses() async throws {
        let emulator = try LambdaRuntimeAPIEmulator(configuration: .init(maxResponseBytes: 1000))
        defer { emulator.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let base = "http://\(emulator.runtimeAPI)"

        // INIT: register is allowed, init/error is accepted.
        var register = try await send(client, .post, base + "/2020-01-01/extension/register",
                                      headers: ["Lambda-Extension-Name": "x"], body: Array(#"{"events":["SHUTDOWN"]}"#.utf8))
        #expect(register.status == 200)
        let extensionID = try #require(register.headers["Lambda-Extension-Identifier"])
        #expect(try JSON.parse(String(decoding: register.body, as: UTF8.self))["functionName"]?.string == "test-function")
        register = try await send(client, .post, base + "/2020-01-01/extension/register", body: Array(#"{"events":["SHUTDOWN"]}"#.utf8))
        #expect(register.status == 400, "no Lambda-Extension-Name")
        register = try await send(client, .post, base + "/2020-01-01/extension/register",
                                  headers: ["Lambda-Extension-Name": "y"], body: Array(#"{"events":["BOGUS"]}"#.utf8))
        #expect(register.status == 400, "unknown event type")
        #expect(try await send(client, .post, base + "/2018-06-01/runtime/init/error", body: Array("{}".utf8)).status == 202)

        // INVOKE.
        let id = emulator.enqueue(json: #"{"a":1}"#)
        let next = try await send(client, .get, base + "/2018-06-01/runtime/invocation/next")
        #expect(next.status == 200)
        #expect(next.headers["Lambda-Runtime-Aws-Request-Id"] == id)
        #expect(next.headers["Lambda-Runtime-Deadline-Ms"].flatMap { Int64($0) } != nil)
        #expect(next.headers["Lambda-Runtime-Invoked-Function-Arn"]?.hasPrefix("arn:aws:lambda:") == true)
        #expect(next.headers["Lambda-Runtime-Trace-Id"]?.hasPrefix("Root=1-") == true)
        #expect(next.body == Array(#"{"a":1}"#.utf8))

        #expect(try await send(client, .post, base + "/2018-06-01/runtime/invocation/\(id)/response", body: Array(repeating: 0x41, count: 1001)).status == 413)
        #expect(try await send(client, .post, base + "/2018-06-01/runtime/invocation/nope/response", body: [1]).status == 400)
        #expect(try await send(client, .post, base + "/2018-06-01/runtime/invocation/\(id)/response", body: Array("ok".utf8)).status == 202)
        #expect(try await send(client, .post, base + "/2018-06-01/runtime/invocation/\(id)/error", body: Array("{}".utf8)).status == 403, "already answered")
        #expect(try await send(client, .post, base + "/2018-06-01/runtime/init/error", body: Array("{}".utf8)).status == 403, "INIT is over")
        #expect(try await send(client, .post, base + "/2020-01-01/extension/register",
                               headers: ["Lambda-Extension-Name": "late"], body: Array(#"{"events":["SHUTDOWN"]}"#.utf8)).status == 403)
        #expect(try await send(client, .get, base + "/2018-06-01/runtime/nothing").status == 500)
        #expect(try await send(client, .get, base + "/2020-01-01/extension/event/next", headers: ["Lambda-Extension-Identifier": "wrong"]).status == 403)
        #expect(emulator.outcomes.map(\.requestID) == [id])

        // SHUTDOWN: the extension gets the event, next answers 500.
        emulator.shutdown(reason: "spindown", deadline: .seconds(2))
        let event = try await send(client, .get, base + "/2020-01-01/extension/event/next", headers: ["Lambda-Extension-Identifier": extensionID])
        #expect(event.status == 200)
        let json = try JSON.parse(String(decoding: event.body, as: UTF8.self))
        #expect(json["eventType"]?.string == "SHUTDOWN")
        #expect(json["shutdownReason"]?.string == "spindown")
        #expect(json["deadlineMs"]?.number != nil)
        #expect(try await send(client, .get, base + "/2018-06-01/runtime/invocation/next").status == 500)
    }

    @Test("next is a long poll: it answers once an event is queued")
    func longPoll() async throws {
        let emulator = try LambdaRuntimeAPIEmulator()
        defer { emulator.stop() }
        let client = HTTPClient(configuration: .init(timeout: nil))
        defer { client.shutdown() }
        let poll = Task { try await client.execute(HTTPRequest(url: "http://\(emulator.runtimeAPI)/2018-06-01/runtime/invocation/next")) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(emulator.nextCalls == 1)
        let id = emulator.enqueue(json: "{}")
        let response = try await poll.value
        #expect(response.headers["Lambda-Runtime-Aws-Request-Id"] == id)
    }
}
}
