public import Logging
public import TierCache

/// One invocation's context: the Runtime API's invocation headers and the time left.
public struct LambdaContext: Sendable {
    /// `Lambda-Runtime-Aws-Request-Id`.
    public var requestID: String
    /// `Lambda-Runtime-Deadline-Ms`: when the invocation times out (wall clock).
    public var deadline: WallTime
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    public var invokedFunctionARN: String
    /// `Lambda-Runtime-Trace-Id` (also set as `_X_AMZN_TRACE_ID` for the invocation).
    public var traceID: String?
    /// `Lambda-Runtime-Client-Context` (mobile SDK clients), as sent.
    public var clientContext: String?
    /// `Lambda-Runtime-Cognito-Identity` (mobile SDK clients), as sent.
    public var cognitoIdentity: String?
    /// Whether this is the first invocation of the execution environment.
    public var isColdStart: Bool
    /// The environment the runtime read.
    public var environment: LambdaEnvironment
    /// A logger with the request id attached.
    public var logger: Logger

    /// The time left before ``deadline`` (zero or negative once it has passed).
    public var remainingTime: Duration {
        SystemCacheClock().now().duration(to: deadline)
    }

    /// Creates a context (the runtime does; tests of handlers may too).
    public init(requestID: String, deadline: WallTime, invokedFunctionARN: String, traceID: String? = nil,
                clientContext: String? = nil, cognitoIdentity: String? = nil, isColdStart: Bool = false,
                environment: LambdaEnvironment, logger: Logger = .tierCacheNoOp) {
        self.requestID = requestID
        self.deadline = deadline
        self.invokedFunctionARN = invokedFunctionARN
        self.traceID = traceID
        self.clientContext = clientContext
        self.cognitoIdentity = cognitoIdentity
        self.isColdStart = isColdStart
        self.environment = environment
        self.logger = logger
    }
}
