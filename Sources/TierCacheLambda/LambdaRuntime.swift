#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
public import TierCache

/// The Lambda runtime loop with INIT hydration and freeze-safe persistence.
///
/// ```swift
/// let runtime = try LambdaRuntime(environment: .fromProcess(), logger: logger)
/// var warm = WarmSet()
/// let model = warm.add(try runtime.environment.cacheKey("model", schemaVersion: 1), in: cache) { try buildModel() }
/// await LambdaRuntime.exit(runtime.run(warmSet: warm) {
///     .codable(Request.self) { request, context in try await render(request, model.get()) }
/// })
/// ```
///
/// INIT: register the SHUTDOWN extension (optional), hydrate the warm set under
/// ``Configuration/hydrationDeadline``, call `setup`, flush. Any error there is posted to
/// `/runtime/init/error` and ``run(warmSet:setup:)`` returns a non-zero exit status. Then, per
/// invocation: build the ``LambdaContext`` (and `_X_AMZN_TRACE_ID`), call the handler, flush
/// refreshes a read started (``RefreshAheadPolicy``) and pending writes under
/// ``Configuration/flushDeadline`` (never past the invocation's remaining time; what cannot
/// finish is abandoned, counted and logged), post the response or the error, and write one EMF
/// line.
public final class LambdaRuntime: Sendable {
    /// Settings; every property has a default.
    public struct Configuration: Sendable {
        /// One deadline for reading the whole warm set at INIT. Default 200 ms.
        public var hydrationDeadline: Duration
        /// How long pending writes may hold a response (or the end of INIT). Default 300 ms.
        public var flushDeadline: Duration
        /// Time kept back from the invocation's remaining time when bounding a flush. Default 20 ms.
        public var flushSafetyMargin: Duration
        /// Register an internal extension for `SHUTDOWN` and flush there. Default true.
        public var registerShutdownExtension: Bool
        /// The `Lambda-Extension-Name` to register with.
        public var extensionName: String
        /// Write an EMF line per invocation. Default true.
        public var emitMetrics: Bool
        /// Stop after this many invocations (tests, the demo); nil serves forever.
        public var maxInvocations: Int?
        /// When the process started, for `InitDuration`; the runtime's creation when nil.
        public var processStart: ContinuousClock.Instant?

        /// Creates a configuration.
        public init(
            hydrationDeadline: Duration = .milliseconds(200), flushDeadline: Duration = .milliseconds(300),
            flushSafetyMargin: Duration = .milliseconds(20), registerShutdownExtension: Bool = true,
            extensionName: String = "tiercache-flush", emitMetrics: Bool = true, maxInvocations: Int? = nil,
            processStart: ContinuousClock.Instant? = nil
        ) {
            self.hydrationDeadline = hydrationDeadline
            self.flushDeadline = flushDeadline
            self.flushSafetyMargin = flushSafetyMargin
            self.registerShutdownExtension = registerShutdownExtension
            self.extensionName = extensionName
            self.emitMetrics = emitMetrics
            self.maxInvocations = maxInvocations
            self.processStart = processStart
        }
    }

    /// How a run ended.
    public struct RunResult: Sendable {
        /// The exit status a process should end with (0 only after ``Configuration/maxInvocations``).
        public var exitStatus: Int32
        /// Why the loop ended.
        public var reason: String
        /// Invocations answered (responses and errors).
        public var invocations: Int
        /// What INIT hydration did, if it ran.
        public var hydration: HydrationReport?
    }

    /// The environment read at creation.
    public let environment: LambdaEnvironment
    /// The settings.
    public let configuration: Configuration
    /// The EMF backend; pass it to your caches' and chains' `metricsFactory`, or bootstrap it.
    public let metrics: EMFMetricsFactory
    let logger: Logger
    let client: RuntimeAPIClient
    let flusher: Flusher
    let created = ContinuousClock.now

    /// Creates a runtime.
    /// - Parameters:
    ///   - environment: from ``LambdaEnvironment/fromProcess()`` in a function.
    ///   - configuration: deadlines and options.
    ///   - metrics: the EMF backend; one writing to stdout with a `FunctionName` dimension when nil.
    ///   - logger: where the runtime logs (its level is raised or lowered by `LOG_LEVEL`).
    public init(environment: LambdaEnvironment, configuration: Configuration = .init(),
                metrics: EMFMetricsFactory? = nil, logger: Logger = .tierCacheNoOp) {
        self.environment = environment
        self.configuration = configuration
        var logger = logger
        if let level = environment.logLevel { logger.logLevel = level }
        self.logger = logger
        self.metrics = metrics ?? EMFMetricsFactory(configuration: .init(dimensions: [("FunctionName", environment.functionName)]))
        self.client = RuntimeAPIClient(runtimeAPI: environment.runtimeAPI)
        self.flusher = Flusher(logger: logger)
    }

    deinit {
        client.shutdown()
    }

    /// Adds a cache whose pending writes and refreshes in flight (``RefreshAheadPolicy``) every
    /// flush awaits (warm-set caches are added already).
    public func flushBeforeResponding<Value>(_ cache: Cache<Value>) {
        flusher.register(cache.chain)
        flusher.register(RefreshWaiter(cache))
    }

    /// Awaits pending writes up to `deadline`; what cannot finish is abandoned, counted and logged.
    @discardableResult
    public func flush(deadline: Duration? = nil) async -> FlushReport {
        await flusher.flush(deadline: deadline ?? configuration.flushDeadline)
    }

    /// Ends the process with `result`'s exit status.
    public static func exit(_ result: RunResult) -> Never {
        endProcess(result.exitStatus)
    }

    /// Runs INIT, then serves invocations until the Runtime API fails or says to stop, or
    /// ``Configuration/maxInvocations`` is reached.
    /// - Parameters:
    ///   - warmSet: the values to hydrate at INIT.
    ///   - setup: the rest of your initialization; returns the handler. Runs after hydration.
    /// - Returns: how the run ended; pass it to ``exit(_:)`` in a function's `main`. INIT
    ///   failures are posted to `/init/error` and give exit status 1; nothing is thrown.
    public func run(warmSet: WarmSet = WarmSet(), setup: @Sendable () async throws -> LambdaHandler) async -> RunResult {
        let initStart = configuration.processStart ?? created
        var extensionTask: Task<Void, Never>?
        if configuration.registerShutdownExtension {
            do {
                let id = try await client.registerExtension(name: configuration.extensionName, events: ["SHUTDOWN"])
                extensionTask = Task { await self.extensionLoop(identifier: id) }
            } catch {
                logger.warning("could not register the SHUTDOWN extension; flushing before responses only", metadata: ["error": "\(error)"])
            }
        }
        defer { extensionTask?.cancel() }

        // INIT
        let hydration: HydrationReport
        let handler: LambdaHandler
        do {
            hydration = try await warmSet.hydrate(deadline: configuration.hydrationDeadline, flusher: flusher, logger: logger)
            handler = try await setup()
        } catch {
            let (type, header) = LambdaRuntimeError.classify(error)
            logger.error("INIT failed", metadata: ["error": "\(error)"])
            do {
                try await client.postInitError(ErrorReport(errorMessage: "\(error)", errorType: type, stackTrace: []), errorTypeHeader: header)
            } catch {
                logger.error("could not post the init error", metadata: ["error": "\(error)"])
            }
            return RunResult(exitStatus: 1, reason: "init failed: \(error)", invocations: 0, hydration: nil)
        }
        let initFlush = await flusher.flush(deadline: configuration.flushDeadline)
        let initDuration = ContinuousClock.now - initStart

        // INVOKE
        var invocations = 0
        var cold = true
        while true {
            if let limit = configuration.maxInvocations, invocations >= limit {
                // Not a shutdown: nothing will send SHUTDOWN, so flush here instead.
                _ = await flusher.flush(deadline: configuration.flushDeadline, includeAbandoned: true)
                return RunResult(exitStatus: 0, reason: "served \(invocations) invocation(s)", invocations: invocations, hydration: hydration)
            }
            let invocation: Invocation
            do {
                invocation = try await client.next()
            } catch {
                logger.info("the Runtime API ended the loop", metadata: ["error": "\(error)"])
                await finish(extensionTask)
                return RunResult(exitStatus: 2, reason: "next failed: \(error)", invocations: invocations, hydration: hydration)
            }
            let started = ContinuousClock.now
            if let trace = invocation.traceID { setenv("_X_AMZN_TRACE_ID", trace, 1) } else { unsetenv("_X_AMZN_TRACE_ID") }
            var invocationLogger = logger
            invocationLogger[metadataKey: "requestID"] = "\(invocation.requestID)"
            let context = LambdaContext(
                requestID: invocation.requestID, deadline: WallTime(millisecondsSince1970: invocation.deadlineMs),
                invokedFunctionARN: invocation.invokedFunctionARN, traceID: invocation.traceID,
                clientContext: invocation.clientContext, cognitoIdentity: invocation.cognitoIdentity,
                isColdStart: cold, environment: environment, logger: invocationLogger)

            let outcome: Result<[UInt8], any Error>
            do {
                outcome = .success(try await handler.body(invocation.payload, context))
            } catch {
                outcome = .failure(error)
            }
            // Nothing written during the invocation may be lost to the freeze after the post.
            let budget = min(configuration.flushDeadline, context.remainingTime - configuration.flushSafetyMargin)
            let flush = await flusher.flush(deadline: max(budget, .zero))
            do {
                switch outcome {
                case .success(let body):
                    try await client.postResponse(requestID: invocation.requestID, body: body)
                case .failure(let error):
                    let (type, header) = LambdaRuntimeError.classify(error)
                    invocationLogger.error("invocation failed", metadata: ["errorType": "\(type)", "error": "\(error)"])
                    try await client.postError(requestID: invocation.requestID,
                                               ErrorReport(errorMessage: "\(error)", errorType: type, stackTrace: []),
                                               errorTypeHeader: header)
                }
            } catch {
                invocationLogger.error("could not post the invocation's answer", metadata: ["error": "\(error)"])
                if error.status == 500 {
                    await finish(extensionTask)
                    return RunResult(exitStatus: 2, reason: "the Runtime API reported a container error", invocations: invocations, hydration: hydration)
                }
            }
            invocations += 1
            if configuration.emitMetrics {
                var extra: [EMFMetricsFactory.Metric] = [
                    .init("ColdStart", cold ? 1 : 0, unit: "Count"),
                    .init("WarmStart", cold ? 0 : 1, unit: "Count"),
                    .init("Duration", (ContinuousClock.now - started).milliseconds, unit: "Milliseconds"),
                    .init("FlushDuration", flush.duration.milliseconds, unit: "Milliseconds"),
                    .init("AbandonedWrites", Double(flush.abandoned + (cold ? initFlush.abandoned : 0)), unit: "Count"),
                ]
                if flush.refreshes + flush.abandonedRefreshes > 0 {
                    extra += [
                        .init("FlushedRefreshes", Double(flush.refreshes), unit: "Count"),
                        .init("AbandonedRefreshes", Double(flush.abandonedRefreshes), unit: "Count"),
                    ]
                }
                if case .failure = outcome { extra.append(.init("Errors", 1, unit: "Count")) }
                if cold {
                    extra += [
                        .init("InitDuration", initDuration.milliseconds, unit: "Milliseconds"),
                        .init("HydrationDuration", hydration.duration.milliseconds, unit: "Milliseconds"),
                        .init("HydratedValues", Double(hydration.hydrated), unit: "Count"),
                        .init("BuiltValues", Double(hydration.built), unit: "Count"),
                    ]
                }
                metrics.emit(extra)
            }
            cold = false
        }
    }

    /// The Runtime API ended the loop (a shutdown): lets the SHUTDOWN extension finish its flush,
    /// up to 3 seconds.
    private func finish(_ extensionTask: Task<Void, Never>?) async {
        guard let extensionTask else { return }
        _ = try? await withDeadline(.seconds(3)) { await extensionTask.value }
    }

    /// The internal extension: waits for `SHUTDOWN`, then flushes everything still pending
    /// (writes abandoned at earlier flushes included) within the event's `deadlineMs`.
    private func extensionLoop(identifier: String) async {
        while !Task.isCancelled {
            let event: ExtensionEvent
            do {
                event = try await client.nextExtensionEvent(identifier: identifier)
            } catch {
                logger.debug("extension loop ended", metadata: ["error": "\(error)"])
                return
            }
            guard event.eventType == "SHUTDOWN" else { continue }
            // The shutdown phase's own deadline bounds this flush, not the per-response one.
            var budget = configuration.flushDeadline
            if let deadlineMs = event.deadlineMs {
                budget = SystemCacheClock().now().duration(to: WallTime(millisecondsSince1970: deadlineMs)) - configuration.flushSafetyMargin
            }
            let report = await flusher.flush(deadline: max(budget, .zero), includeAbandoned: true)
            logger.info("SHUTDOWN: flushed", metadata: [
                "reason": "\(event.shutdownReason ?? "")", "completed": "\(report.completed)", "abandoned": "\(report.abandoned)",
            ])
            return
        }
    }
}

/// `exit(3)`, out of reach of ``LambdaRuntime/exit(_:)``'s name.
private func endProcess(_ status: Int32) -> Never {
    fflush(nil)
    exit(status)
}
