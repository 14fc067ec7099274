/// An error of the Lambda adapter: an opaque struct with a code, as the core's errors are.
public struct LambdaRuntimeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        init(_ name: String) { self.name = name }

        /// A required environment variable is missing.
        public static let missingEnvironment = Code("missingEnvironment")
        /// The Runtime API could not be reached (connection refused, reset, timed out).
        public static let transport = Code("transport")
        /// The Runtime API answered with an unexpected status.
        public static let unexpectedStatus = Code("unexpectedStatus")
        /// The Runtime API answered `next` without a request id or deadline.
        public static let invalidInvocation = Code("invalidInvocation")
        /// The event could not be decoded into the handler's event type.
        public static let undecodableEvent = Code("undecodableEvent")
        /// The handler's output could not be encoded.
        public static let unencodableOutput = Code("unencodableOutput")
        /// A warm-set value could be neither hydrated nor built by its loader.
        public static let warmSetUnavailable = Code("warmSetUnavailable")

        public var description: String { name }
    }

    /// The code.
    public let code: Code
    /// A human-readable message.
    public let message: String
    /// The HTTP status, for ``Code/unexpectedStatus``.
    public let status: Int?

    /// Creates an error.
    public init(_ code: Code, _ message: String, status: Int? = nil) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "LambdaRuntimeError(\(code)): \(message)" }
}
