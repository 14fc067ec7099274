#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A function handler, type-erased to bytes in and bytes out.
///
/// Build one with ``raw(_:)`` or ``codable(_:_:)``. What the runtime posts:
/// - a value returned: `/response` with its bytes;
/// - an error thrown by your code: `/error` with `Lambda-Runtime-Function-Error-Type:
///   Function.<TypeName>` and `errorType` = the Swift type's name;
/// - an event that does not decode (not JSON, wrong shape): `/error` with `Runtime.UnmarshalError`;
/// - an output that does not encode: `/error` with `Runtime.MarshalError`.
/// The runtime keeps serving after each of these.
public struct LambdaHandler: Sendable {
    let body: @Sendable ([UInt8], LambdaContext) async throws -> [UInt8]

    /// A handler on raw event bytes, returning raw response bytes.
    public static func raw(_ body: @escaping @Sendable ([UInt8], LambdaContext) async throws -> [UInt8]) -> LambdaHandler {
        LambdaHandler(body: body)
    }

    /// A handler from a `Decodable` event to an `Encodable` output, both JSON.
    /// - Parameters:
    ///   - event: the event type; an event that does not decode is answered with an error of type
    ///     `Runtime.UnmarshalError`.
    ///   - body: your code.
    public static func codable<Event: Decodable & Sendable, Output: Encodable & Sendable>(
        _ event: Event.Type,
        _ body: @escaping @Sendable (Event, LambdaContext) async throws -> Output
    ) -> LambdaHandler {
        LambdaHandler { bytes, context in
            let decoded: Event
            do {
                decoded = try JSONDecoder().decode(Event.self, from: Data(bytes))
            } catch {
                throw LambdaRuntimeError(.undecodableEvent, "the event does not decode as \(Event.self): \(error)")
            }
            let output = try await body(decoded, context)
            do {
                return Array(try JSONEncoder().encode(output))
            } catch {
                throw LambdaRuntimeError(.unencodableOutput, "the output of type \(Output.self) does not encode: \(error)")
            }
        }
    }
}

extension LambdaRuntimeError {
    /// The documented error type for a failure, and the `Lambda-Runtime-Function-Error-Type` header.
    static func classify(_ error: any Error) -> (errorType: String, header: String) {
        if let error = error as? LambdaRuntimeError {
            switch error.code {
            case .undecodableEvent: return ("Runtime.UnmarshalError", "Runtime.UnmarshalError")
            case .unencodableOutput: return ("Runtime.MarshalError", "Runtime.MarshalError")
            default: return ("Runtime.\(error.code)", "Runtime.\(error.code)")
            }
        }
        let name = String(describing: type(of: error))
        return (name, "Function.\(name)")
    }
}
