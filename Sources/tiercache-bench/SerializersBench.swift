#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TierCache

/// `tiercache-bench serializers`: binary vs JSON on the endpoints model (encode + decode, and
/// size), and the library's JSONSerializer vs calling JSONEncoder/JSONDecoder directly.
enum SerializersBench {
    static let suite = "serializers"

    static func run() async throws {
        let json = Corpus.read("endpoints.json")
        let document = try JSONDecoder().decode(EndpointsDocument.self, from: Data(json))

        let binary = BinarySerializer()
        let library = JSONSerializer()
        let binaryBytes = try binary.encode(document)
        let libraryBytes = try library.encode(document)
        guard try binary.decode(EndpointsDocument.self, from: binaryBytes) == document,
              try library.decode(EndpointsDocument.self, from: libraryBytes) == document else {
            fatalError("serializers: a round trip changed the endpoints model")
        }

        // The direct baseline: what a user writes without the library.
        let directEncoder = JSONEncoder()
        let directDecoder = JSONDecoder()
        let directBytes = try directEncoder.encode(document)

        // One call takes tens to hundreds of milliseconds, long enough that on a busy shared
        // machine almost every wall-clock round is interrupted; thread CPU time is not.
        let times = try compareCPUTime(rounds: 11, [
            {
                let bytes = try binary.encode(document)
                blackHole(try binary.decode(EndpointsDocument.self, from: bytes))
            },
            {
                let bytes = try library.encode(document)
                blackHole(try library.decode(EndpointsDocument.self, from: bytes))
            },
            {
                let bytes = try directEncoder.encode(document)
                blackHole(try directDecoder.decode(EndpointsDocument.self, from: bytes))
            },
        ])
        let (binaryTime, libraryTime, directTime) = (times[0], times[1], times[2])
        // The faster of the two JSON paths is the baseline binary has to beat.
        let jsonTime = min(libraryTime, directTime)
        Report.line(
            suite, "binary vs JSON encode+decode, endpoints model (json time / binary time)",
            ratio: jsonTime / binaryTime, goal: .atLeast(2),
            detail: "binary=\(ms(binaryTime)) json=\(ms(jsonTime))")
        Report.line(
            suite, "binary vs JSON size, endpoints model (binary bytes / json bytes)",
            ratio: Double(binaryBytes.count) / Double(libraryBytes.count), goal: .atMost(0.75),
            detail: "binary=\(binaryBytes.count)B json=\(libraryBytes.count)B direct-json=\(directBytes.count)B")
        Report.line(
            suite, "JSONSerializer vs JSONEncoder/JSONDecoder direct, encode+decode (library / direct)",
            ratio: libraryTime / directTime, goal: .atMost(1.1),
            detail: "library=\(ms(libraryTime)) direct=\(ms(directTime))")
    }

    /// `compare` (Harness.swift) on the calling thread's CPU time instead of wall time: the
    /// candidates alternate round by round and each keeps its best nanoseconds per call. Every
    /// candidate here is single-threaded and synchronous, so its CPU time is its cost; time spent
    /// descheduled while other processes run is left out.
    static func compareCPUTime(rounds: Int, minimumNanoseconds: UInt64 = 40_000_000, _ candidates: [() throws -> Void]) throws -> [Double] {
        var best = [Double](repeating: .infinity, count: candidates.count)
        for _ in 0..<rounds {
            for (index, body) in candidates.enumerated() {
                var calls: UInt64 = 0
                let start = threadCPUNanoseconds()
                var elapsed: UInt64 = 0
                repeat {
                    try body()
                    calls += 1
                    elapsed = threadCPUNanoseconds() - start
                } while elapsed < minimumNanoseconds
                best[index] = min(best[index], Double(elapsed) / Double(calls))
            }
        }
        return best
    }

    static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func ms(_ nanoseconds: Double) -> String {
        "\(format(nanoseconds / 1_000_000))ms"
    }
}
