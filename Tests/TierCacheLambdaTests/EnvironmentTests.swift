#if canImport(Glibc)
import Glibc
#endif
import Logging
import Testing
import TierCache
import TierCacheLambda

extension LambdaTests {
@Suite("Environment and keys")
struct EnvironmentTests {
    @Test("keys are namespaced by function name, versioned by function version and schema")
    func keys() throws {
        let env = LambdaEnvironment(runtimeAPI: "x", functionName: "report-gen", functionVersion: "12")
        let key = try env.cacheKey("model", schemaVersion: 3)
        #expect(key.namespace == "report-gen")
        #expect(key.name == "12/model")
        #expect(key.schemaVersion == 3)
        let next = LambdaEnvironment(runtimeAPI: "x", functionName: "report-gen", functionVersion: "13")
        #expect(try next.cacheKey("model", schemaVersion: 3) != key, "a new deploy never reads the old entry")
        #expect(try env.cacheKey("model", schemaVersion: 4) != key, "a new shape never reads the old entry")
        let odd = LambdaEnvironment(runtimeAPI: "x", functionName: "a b/c:" + String(repeating: "z", count: 100))
        #expect(odd.cacheNamespace.hasPrefix("a-b-c-"))
        #expect(odd.cacheNamespace.utf8.count == CacheKey.maxNamespaceLength)
        _ = try odd.cacheKey("m", schemaVersion: 1)
    }

    @Test("the process environment is read here")
    func fromProcess() throws {
        let names = ["AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION",
                     "AWS_LAMBDA_INITIALIZATION_TYPE", "LOG_LEVEL"]
        let saved = names.map { name in getenv(name).map { String(cString: $0) } }
        defer {
            for (name, value) in zip(names, saved) {
                if let value { setenv(name, value, 1) } else { unsetenv(name) }
            }
        }
        unsetenv("AWS_LAMBDA_RUNTIME_API")
        #expect(throws: LambdaRuntimeError.self) { try LambdaEnvironment.fromProcess() }
        for (name, value) in zip(names, ["127.0.0.1:9001", "fn", "5", "eu-west-1", "provisioned-concurrency", "DEBUG"]) {
            setenv(name, value, 1)
        }
        let env = try LambdaEnvironment.fromProcess()
        #expect(env.runtimeAPI == "127.0.0.1:9001")
        #expect(env.functionName == "fn")
        #expect(env.functionVersion == "5")
        #expect(env.region == "eu-west-1")
        #expect(env.initializationType == "provisioned-concurrency")
        #expect(env.logLevel == .debug)
    }
}
}
