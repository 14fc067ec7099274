public import Logging
public import MetricsTestKit
import TierCache

/// Collects log records in memory, for assertions about what was logged.
public final class LogCapture: @unchecked Sendable {
    /// One captured record.
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]
    }

    private let lock = Lock()
    private var storage: [Record] = []

    /// Creates an empty capture.
    public init() {}

    /// A logger writing into this capture.
    public func logger(label: String = "test", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    /// Everything captured so far.
    public var records: [Record] { lock.withLock { storage } }

    /// All captured text (messages and metadata), for grepping.
    public var text: String {
        records.map { "\($0.level) \($0.message) \($0.metadata.sorted { $0.key < $1.key })" }.joined(separator: "\n")
    }

    fileprivate func append(_ record: Record) { lock.withLock { storage.append(record) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { $1 } }
            capture.append(Record(level: event.level, message: "\(event.message)",
                                  metadata: merged.mapValues { "\($0)" }))
        }
    }
}

extension TestMetrics {
    /// The sum of every counter named `label` whose dimensions include all of `dimensions`.
    public func total(_ label: String, _ dimensions: [(String, String)] = []) -> Int64 {
        counters.filter { counter in
            counter.label == label && dimensions.allSatisfy { wanted in
                counter.dimensions.contains { $0.0 == wanted.0 && $0.1 == wanted.1 }
            }
        }.reduce(0) { $0 + $1.totalValue }
    }
}
