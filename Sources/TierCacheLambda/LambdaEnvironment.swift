#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
public import TierCache

/// The Lambda environment variables this adapter reads; the only place in the library that
/// reads the environment.
public struct LambdaEnvironment: Sendable {
    /// `AWS_LAMBDA_RUNTIME_API`: `host:port` of the Runtime API.
    public var runtimeAPI: String
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    public var functionName: String
    /// `AWS_LAMBDA_FUNCTION_VERSION` (`$LATEST` or a number).
    public var functionVersion: String
    /// `AWS_REGION`, if set.
    public var region: String?
    /// `AWS_LAMBDA_INITIALIZATION_TYPE` (`on-demand`, `provisioned-concurrency`, `snap-start`), if set.
    public var initializationType: String?
    /// `LOG_LEVEL` mapped to a swift-log level (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`), if set and known.
    public var logLevel: Logger.Level?

    /// Creates an environment by hand (tests, the demo).
    public init(runtimeAPI: String, functionName: String = "function", functionVersion: String = "$LATEST",
                region: String? = nil, initializationType: String? = nil, logLevel: Logger.Level? = nil) {
        self.runtimeAPI = runtimeAPI
        self.functionName = functionName
        self.functionVersion = functionVersion
        self.region = region
        self.initializationType = initializationType
        self.logLevel = logLevel
    }

    /// Reads the process environment.
    /// - Throws: ``LambdaRuntimeError`` (`.missingEnvironment`) when `AWS_LAMBDA_RUNTIME_API` is
    ///   not set; every other variable is optional (function name `function`, version `$LATEST`).
    public static func fromProcess() throws(LambdaRuntimeError) -> LambdaEnvironment {
        func variable(_ name: String) -> String? {
            guard let value = getenv(name) else { return nil }
            let string = String(cString: value)
            return string.isEmpty ? nil : string
        }
        guard let api = variable("AWS_LAMBDA_RUNTIME_API") else {
            throw LambdaRuntimeError(.missingEnvironment, "AWS_LAMBDA_RUNTIME_API is not set: not running under a Lambda Runtime API")
        }
        return LambdaEnvironment(
            runtimeAPI: api,
            functionName: variable("AWS_LAMBDA_FUNCTION_NAME") ?? "function",
            functionVersion: variable("AWS_LAMBDA_FUNCTION_VERSION") ?? "$LATEST",
            region: variable("AWS_REGION"),
            initializationType: variable("AWS_LAMBDA_INITIALIZATION_TYPE"),
            logLevel: variable("LOG_LEVEL").flatMap(Self.level(named:)))
    }

    static func level(named name: String) -> Logger.Level? {
        switch name.uppercased() {
        case "TRACE": .trace
        case "DEBUG": .debug
        case "INFO": .info
        case "NOTICE": .notice
        case "WARN", "WARNING": .warning
        case "ERROR": .error
        case "FATAL", "CRITICAL": .critical
        default: nil
        }
    }

    /// The cache namespace for this function: its name, with any character a ``CacheKey``
    /// namespace does not allow replaced by `-`, at most 64 bytes.
    public var cacheNamespace: String {
        var out = String(functionName.unicodeScalars.prefix(CacheKey.maxNamespaceLength).map { scalar -> Character in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": Character(scalar)
            default: "-"
            }
        })
        if out.isEmpty || out == "." || out == ".." { out = "function" }
        return out
    }

    /// The default key for `name`: namespace = the function name, name = `<function version>/<name>`,
    /// schema version = yours. A new deploy (a new version) or a new shape (bump
    /// `schemaVersion`) never reads an entry written by the old one.
    /// - Throws: ``TierCacheError`` (`.invalidKey`) when `name` is not a valid key name.
    public func cacheKey(_ name: String, schemaVersion: UInt32) throws(TierCacheError) -> CacheKey {
        try CacheKey(namespace: cacheNamespace, name: "\(functionVersion)/\(name)", schemaVersion: schemaVersion)
    }
}
