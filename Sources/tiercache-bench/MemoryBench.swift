#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import TierCache

/// Suite `memory`: the memory tier's hit cost against a bare mutex-guarded dictionary, its
/// scaling from one thread to two, and SIEVE against LRU on a Zipf trace.
enum MemoryBench {
    struct Value: Sendable {
        var id: Int
        var name: String
    }

    static func run() async throws {
        // TIERCACHE_BENCH_ONLY=hitCost (or scaling, hitRatios) runs one part, for profiling.
        let only = getenv("TIERCACHE_BENCH_ONLY").map { String(cString: $0) }
        if only == nil || only == "hitCost" { try hitCost() }
        if only == nil || only == "scaling" { try scaling() }
        if only == nil || only == "hitRatios" { try hitRatios() }
    }

    static let keyCount = 10_000

    /// The same lookups, in the same order, through the memory tier and a `Mutex<[String: Value]>`.
    static func hitCost() throws {
        let names = (0..<keyCount).map { "item-\($0)" }
        let keys = try names.map { try CacheKey(namespace: "bench", name: $0) }
        let clock = SystemCacheClock()
        let tier = MemoryTier<Value>(configuration: .init(maxEntries: keyCount * 2))
        let bare = Mutex<[String: Value]>([:])
        let now = clock.now()
        for i in 0..<keyCount {
            let value = Value(id: i, name: names[i])
            tier.set(keys[i], value: value, weight: 32, freshUntil: now.advanced(by: .seconds(3600)), staleUntil: now.advanced(by: .seconds(3600)))
            bare.withLock { $0[names[i]] = value }
        }
        var rng = SystemRandomNumberGenerator()
        let order = (0..<100_000).map { _ in Int.random(in: 0..<keyCount, using: &rng) }
        let times = try compare([
            {
                var sum = 0
                for i in order {
                    if let hit = tier.get(keys[i], now: clock.now()) { sum &+= hit.value.id }
                }
                blackHole(sum)
            },
            {
                var sum = 0
                for i in order {
                    if let value = bare.withLock({ $0[names[i]] }) { sum &+= value.id }
                }
                blackHole(sum)
            },
        ])
        let perOp = times.map { $0 / Double(order.count) }
        Report.line("memory", "hit cost, memory tier / Mutex<[String: Value]> lookup", ratio: perOp[0] / perOp[1], goal: .atMost(1.5),
                    detail: "(\(format(perOp[0])) ns vs \(format(perOp[1])) ns per hit, clock read included)")
    }

    /// Throughput of two threads hitting the tier against one thread, same work per thread.
    static func scaling() throws {
        let keys = try (0..<keyCount).map { try CacheKey(namespace: "bench", name: "item-\($0)") }
        let clock = SystemCacheClock()
        let tier = MemoryTier<Value>(configuration: .init(maxEntries: keyCount * 2))
        let now = clock.now()
        for (i, key) in keys.enumerated() {
            tier.set(key, value: Value(id: i, name: key.name), weight: 32, freshUntil: now.advanced(by: .seconds(3600)), staleUntil: now.advanced(by: .seconds(3600)))
        }
        let opsPerThread = 2_000_000
        @Sendable func work(seed: Int) {
            // Each thread gets its own copy of the key array, so that the threads share nothing
            // but the tier (a shared array buffer would be one more shared cache line).
            blackHole(hammer(tier, keys.map { $0 }, clock: clock, operations: opsPerThread, seed: seed))
        }
        var one = Double.infinity, two = Double.infinity
        for _ in 0..<5 {
            one = min(one, timeThreads(1, work))
            two = min(two, timeThreads(2, work))
        }
        let throughputOne = Double(opsPerThread) / one
        let throughputTwo = Double(2 * opsPerThread) / two
        Report.line("memory", "hit throughput, two threads / one thread", ratio: throughputTwo / throughputOne, goal: .atLeast(1.6),
                    detail: "(\(format(throughputOne / 1e6)) vs \(format(throughputTwo / 1e6)) M hits/s)")
    }

    /// The scaling loop. Arguments are borrowed, so the loop retains nothing per iteration.
    @inline(never)
    static func hammer(_ tier: MemoryTier<Value>, _ keys: [CacheKey], clock: SystemCacheClock, operations: Int, seed: Int) -> Int {
        var sum = 0
        var index = seed
        for _ in 0..<operations {
            index = (index &* 1_103_515_245 &+ 12345) & 0x7FFF_FFFF
            if let hit = tier.get(keys[index % keys.count], now: clock.now()) { sum &+= hit.value.id }
        }
        return sum
    }

    /// Hit ratio of SIEVE and LRU replaying one Zipf(1.0) trace, cache at 1% and 10% of the keys.
    static func hitRatios() throws {
        let universe = 100_000
        let keys = try (0..<universe).map { try CacheKey(namespace: "bench", name: "z\($0)") }
        let trace = zipfTrace(keys: universe, length: 1_000_000, exponent: 1.0, seed: 42)
        let now = SystemCacheClock().now()
        for share in [0.01, 0.10] {
            var ratios: [String: Double] = [:]
            for policy in [EvictionPolicyFactory.sieve, .lru] {
                let capacity = Int(Double(universe) * share)
                let tier = MemoryTier<Int>(configuration: .init(maxEntries: capacity, maxBytes: .max / 2, eviction: policy, shards: 1))
                var hits = 0
                for index in trace {
                    if tier.get(keys[index], now: now) != nil {
                        hits += 1
                    } else {
                        tier.set(keys[index], value: index, weight: 1, freshUntil: now.advanced(by: .seconds(3600)), staleUntil: now.advanced(by: .seconds(3600)))
                    }
                }
                ratios[policy.name] = Double(hits) / Double(trace.count)
            }
            let sieve = ratios["sieve"] ?? 0, lru = ratios["lru"] ?? 0
            Report.line("memory", "hit ratio at \(Int(share * 100))% of \(universe) keys, Zipf 1.0, SIEVE / LRU", ratio: sieve / lru, goal: .atLeast(1.0),
                        detail: "(SIEVE \(format(sieve * 100))%, LRU \(format(lru * 100))%)")
        }
    }

    /// Item indexes drawn from a Zipf distribution by inverse transform over the cumulative weights.
    static func zipfTrace(keys: Int, length: Int, exponent: Double, seed: UInt64) -> [Int] {
        var cumulative = [Double](repeating: 0, count: keys)
        var total = 0.0
        for rank in 0..<keys {
            total += 1.0 / pow(Double(rank + 1), exponent)
            cumulative[rank] = total
        }
        var state = seed
        return (0..<length).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Double(state >> 11) / Double(1 << 53) * total
            var low = 0, high = keys - 1
            while low < high {
                let mid = (low + high) / 2
                if cumulative[mid] < u { low = mid + 1 } else { high = mid }
            }
            // Scatter ranks over key ids so popularity is not correlated with shard or slot order.
            return (low &* 48_271) % keys
        }
    }
}

/// Runs `body` on `count` threads at once and returns the wall time in seconds.
func timeThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) -> Double {
    final class Box: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let seed: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ seed: Int) { self.body = body; self.seed = seed }
    }
    let start = nowNanoseconds()
    var threads: [pthread_t] = []
    for index in 0..<count {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body, index * 7919 + 1)).toOpaque()
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body(box.seed)
            return nil
        }, box)
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
    return Double(nowNanoseconds() - start) / 1e9
}
