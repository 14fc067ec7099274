import FuzzSupport
import TierCache

/// A shape that reaches every container kind of the binary format: keyed, unkeyed, single
/// value, nested, optionals, enums, strings, dictionaries, sets, class inheritance (super).
struct Shape: Codable, Equatable {
    enum Kind: String, Codable { case a, b, c }
    enum Payload: Codable, Equatable { case none, int(Int64), text(String), list([UInt8]) }
    var id: Int
    var flag: Bool
    var ratio: Double
    var name: String
    var kind: Kind
    var tags: [String: Int]
    var items: [[Int16]]
    var set: Set<String>
    var optional: String?
    var nested: [Shape]?
    var payload: Payload
    var big: UInt64
}

class Base: Codable { var base: String = "" }
final class Derived: Base {
    var extra: [Int32] = []
    enum CodingKeys: CodingKey { case extra }
    override init() { super.init() }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        extra = try container.decode([Int32].self, forKey: .extra)
        try super.init(from: container.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(extra, forKey: .extra)
        try super.encode(to: container.superEncoder())
    }
}

/// Binary deserializer: arbitrary bytes decode or throw, never trap or over-allocate; whatever
/// decodes re-encodes and decodes to an equal value.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let serializer = BinarySerializer(configuration: .init(maximumDepth: 64))
    switch data[0] % 4 {
    case 0:
        guard let value = try? serializer.decode(Shape.self, from: bytes) else { return 0 }
        do {
            let again = try serializer.decode(Shape.self, from: serializer.encode(value))
            // NaN is not equal to itself; compare the bit patterns for it.
            precondition(again == value || (value.ratio.isNaN && again.ratio.isNaN), "binary round trip changed the value")
        } catch { preconditionFailure("re-encoded value does not decode: \(error)") }
    case 1:
        _ = try? serializer.decode([String: [Int?]].self, from: bytes)
    case 2:
        _ = try? serializer.decode(Derived.self, from: bytes)
    default:
        _ = try? serializer.decode([Shape.Payload].self, from: bytes)
    }
    return 0
}

// MARK: Seeds
// `TIERCACHE_FUZZ_WRITE_SEEDS=<folder> fuzz-NAME` writes this target's binary seeds into the
// folder and exits (scripts/fuzz.sh --seeds does it for every target into Fuzz/corpus/).

#if canImport(Glibc)
import Glibc
#endif

func writeSeeds() throws {
    let leaf = Shape(id: 1, flag: true, ratio: 0.5, name: "leaf", kind: .b, tags: ["x": 1], items: [[1, 2], []],
                     set: ["s"], optional: nil, nested: nil, payload: .text("hi"), big: .max)
    let tree = Shape(id: -7, flag: false, ratio: -1e300, name: "tree ünïcødé", kind: .c, tags: ["a": 1, "b": -2],
                     items: [[Int16.min, Int16.max]], set: ["p", "q"], optional: "o", nested: [leaf, leaf],
                     payload: .list([0, 255]), big: 42)
    let serializer = BinarySerializer()
    let derived = Derived()
    derived.base = "base"
    derived.extra = [1, -1]
    writeSeed("shape-leaf", [0] + (try serializer.encode(leaf)))
    writeSeed("shape-tree", [0] + (try serializer.encode(tree)))
    writeSeed("dictionary", [1] + (try serializer.encode(["k": [1, nil, 3]] as [String: [Int?]])))
    writeSeed("derived", [2] + (try serializer.encode(derived)))
    writeSeed("payloads", [3] + (try serializer.encode([Shape.Payload.none, .int(5), .text("t"), .list([1])])))
}

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_binary_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
