// Shared by the zstd and lz4 test targets: the corpus, a seeded generator and frame mutation.
import Foundation

/// The benchmark corpus (bench-data/ at the repository root).
public enum Corpus {
    public static let directory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("bench-data").path
    }()

    public static let files = ["partitions.json", "s3-examples.json", "endpoints.json"]

    public static func read(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
    }

    /// endpoints.json split into one record per (partition, service): each record is the
    /// service's JSON object under its partition and service names, keys sorted.
    public static func endpointRecords() throws -> [[UInt8]] {
        try cachedRecords.get()
    }

    private static let cachedRecords = Result { try splitEndpoints() }

    private static func splitEndpoints() throws -> [[UInt8]] {
        let root = try JSONDecoder().decode(JSONValue.self, from: Data(try read("endpoints.json")))
        guard case .object(let top) = root, case .array(let partitions)? = top["partitions"] else {
            throw CocoaError(.coderInvalidValue)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var records: [[UInt8]] = []
        for case .object(let partition) in partitions {
            guard case .object(let services)? = partition["services"], let name = partition["partition"] else { continue }
            for service in services.keys.sorted() {
                let record = JSONValue.object(["partition": name, "service": .string(service), "endpoints": services[service]!])
                records.append([UInt8](try encoder.encode(record)))
            }
        }
        return records
    }
}

/// Any JSON document, to split the corpus without a schema.
public enum JSONValue: Codable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// A seeded generator (SplitMix64), so a failing fuzz case can be replayed.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}

/// Applies 1-4 random edits (flip, overwrite, insert, delete, truncate, extend) to `frame`.
public func mutate(_ frame: [UInt8], using rng: inout SeededGenerator) -> [UInt8] {
    var bytes = frame
    for _ in 0..<Int.random(in: 1...4, using: &rng) {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0 where !bytes.isEmpty:
            let index = Int.random(in: 0..<bytes.count, using: &rng)
            bytes[index] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
        case 1 where !bytes.isEmpty:
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        case 2:
            bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
        case 3 where !bytes.isEmpty:
            bytes.remove(at: Int.random(in: 0..<bytes.count, using: &rng))
        case 4 where !bytes.isEmpty:
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
        default:
            bytes += rng.bytes(Int.random(in: 1...16, using: &rng))
        }
    }
    return bytes
}

/// A compressible payload of `count` bytes cut from real JSON.
public func jsonPayload(_ count: Int) throws -> [UInt8] {
    let source = try Corpus.read("s3-examples.json")
    var out: [UInt8] = []
    while out.count < count { out += source.prefix(count - out.count) }
    return out
}
