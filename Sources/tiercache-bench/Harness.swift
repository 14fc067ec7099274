#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a benchmark line's ratio is judged: its floor from the issue.
enum Goal: CustomStringConvertible {
    case atMost(Double)
    case atLeast(Double)

    func isMet(by ratio: Double) -> Bool {
        switch self {
        case .atMost(let limit): ratio <= limit
        case .atLeast(let floor): ratio >= floor
        }
    }

    var description: String {
        switch self {
        case .atMost(let limit): "goal=<=\(format(limit))"
        case .atLeast(let floor): "goal=>=\(format(floor))"
        }
    }
}

/// Every comparison prints one line ending in `ratio=<x> goal=<op><y>`, so a script can check
/// all of them (`scripts/check-bench.sh`). `what` says what the ratio divides.
enum Report {
    nonisolated(unsafe) static var failures = 0

    static func line(_ suite: String, _ what: String, ratio: Double, goal: Goal, detail: String = "") {
        if !goal.isMet(by: ratio) { failures += 1 }
        let extra = detail.isEmpty ? "" : " \(detail)"
        print("\(suite): \(what)\(extra) ratio=\(format(ratio)) \(goal)")
        fflush(nil)
    }

    /// An informational line with no goal (figures a user wants to see, not a comparison).
    static func info(_ suite: String, _ text: String) {
        print("\(suite): \(text)")
        fflush(nil)
    }
}

func format(_ value: Double) -> String {
    if value.isNaN || value.isInfinite { return "\(value)" }
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
}

/// Monotonic nanoseconds.
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Runs `body` (which performs `operationsPerCall` operations) repeatedly, interleaving with the
/// other candidates of a comparison is the caller's job; returns the best nanoseconds per call
/// over `rounds` rounds of at least `minimumNanoseconds` each. Best-of is the least noisy
/// statistic on a shared machine.
func bestTime(rounds: Int = 5, minimumNanoseconds: UInt64 = 50_000_000, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<rounds {
        var calls: UInt64 = 0
        let start = nowNanoseconds()
        var elapsed: UInt64 = 0
        repeat {
            try body()
            calls += 1
            elapsed = nowNanoseconds() - start
        } while elapsed < minimumNanoseconds
        best = min(best, Double(elapsed) / Double(calls))
    }
    return best
}

/// Alternates the candidates round by round, so drift in machine load hits them alike, and
/// returns each one's best nanoseconds per call.
func compare(rounds: Int = 7, minimumNanoseconds: UInt64 = 40_000_000, _ candidates: [() throws -> Void]) throws -> [Double] {
    var best = [Double](repeating: .infinity, count: candidates.count)
    for _ in 0..<rounds {
        for (index, body) in candidates.enumerated() {
            best[index] = min(best[index], try bestTime(rounds: 1, minimumNanoseconds: minimumNanoseconds, body))
        }
    }
    return best
}

/// Keeps a value alive and opaque to the optimizer.
@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}

/// The benchmark corpus (bench-data/ in the repository).
enum Corpus {
    static let directory: String = {
        var dir = #filePath
        for _ in 0..<3 { dir = String(dir[..<(dir.lastIndex(of: "/") ?? dir.startIndex)]) }
        return dir + "/bench-data"
    }()

    static let files = ["partitions.json", "s3-examples.json", "endpoints.json"]

    static func read(_ name: String) -> [UInt8] {
        let path = directory + "/" + name
        guard let file = fopen(path, "rb") else { fatalError("cannot open \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }
}
