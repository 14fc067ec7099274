#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Testing
import TierCache
import TierCacheLambda
import TierCacheTesting

/// A JSON value for parsing what the runtime posts and the EMF lines.
enum JSON: Decodable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSON]), object([String: JSON])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSON].self)) }
    }

    static func parse(_ text: String) throws -> JSON {
        try JSONDecoder().decode(JSON.self, from: Data(text.utf8))
    }

    subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
    subscript(index: Int) -> JSON? {
        if case .array(let a) = self, a.indices.contains(index) { return a[index] }
        return nil
    }
    var string: String? { if case .string(let s) = self { return s }; return nil }
    var number: Double? { if case .number(let n) = self { return n }; return nil }
    var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    var object: [String: JSON]? { if case .object(let o) = self { return o }; return nil }
}

/// Lines the EMF backend wrote.
final class LineCapture: Sendable {
    private let box = LockedValueBox<[String]>([])
    var lines: [String] { box.withLock { $0 } }
    var output: @Sendable (String) -> Void { { line in self.box.withLock { $0.append(line) } } }
}

struct Greeting: Codable, Sendable, Equatable {
    var name: String
}

struct Answer: Codable, Sendable, Equatable {
    var message: String
}

struct Model: Codable, Sendable, Equatable {
    var words: [String: Int]
}

/// A runtime against an emulator, its EMF lines captured.
struct Harness {
    let emulator: LambdaRuntimeAPIEmulator
    let runtime: LambdaRuntime
    let lines: LineCapture

    init(functionName: String = "test-fn", configuration: LambdaRuntime.Configuration = .init()) throws {
        emulator = try LambdaRuntimeAPIEmulator(configuration: .init(functionName: functionName))
        lines = LineCapture()
        let environment = LambdaEnvironment(runtimeAPI: emulator.runtimeAPI, functionName: functionName, functionVersion: "7")
        runtime = LambdaRuntime(
            environment: environment, configuration: configuration,
            metrics: EMFMetricsFactory(configuration: .init(dimensions: [("FunctionName", functionName)], output: lines.output)),
            logger: {
                var logger = Logger(label: "test", factory: { StreamLogHandler.standardError(label: $0) })
                logger.logLevel = .error
                return logger
            }())
    }

    /// A cache over `tiers` whose metrics go to the runtime's EMF backend.
    func cache<Value: Codable & Sendable>(_ type: Value.Type, name: String = "warm", tiers: [TierChain.Tier]) -> Cache<Value> {
        Cache<Value>(configuration: .init(name: name, metricsFactory: runtime.metrics),
                     chain: TierChain(tiers, configuration: .init(metricsLabel: name, metricsFactory: runtime.metrics)))
    }
}

func errorBody(_ outcome: LambdaRuntimeAPIEmulator.Outcome) throws -> (message: String, type: String, stackTrace: [JSON]) {
    let json = try JSON.parse(outcome.text)
    return (json["errorMessage"]?.string ?? "<missing>", json["errorType"]?.string ?? "<missing>", json["stackTrace"]?.array ?? [.null])
}

final class Counter: Sendable {
    private let box = LockedValueBox(0)
    func increment() { box.withLock { $0 += 1 } }
    var value: Int { box.withLock { $0 } }
}

/// Every runtime sets the process-wide `_X_AMZN_TRACE_ID`, so the suites run one test at a time.
@Suite(.serialized) struct LambdaTests {}
