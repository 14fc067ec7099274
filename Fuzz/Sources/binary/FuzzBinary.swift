import FuzzSupport
import TierCache

/// A shape that reaches every container kind of the binary format: keyed, unkeyed, single
/// value, nested, optionals, enums, strings, dictionaries, sets, class inheritance (super).
/// `Shape` and its enums have generated coding (@GeneratedBinaryCoding): every input is decoded
/// by the generated code and by the Codable path, which must agree.
@GeneratedBinaryCoding
struct Shape: Codable, Equatable {
    @GeneratedBinaryCoding
    enum Kind: String, Codable { case a, b, c }
    @GeneratedBinaryCoding
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

let generated = BinarySerializer(configuration: .init(maximumDepth: 64))
let codable = BinarySerializer(configuration: .init(maximumDepth: 64, usesGeneratedCode: false))
let shallowGenerated = BinarySerializer(configuration: .init(maximumDepth: 4))
let shallowCodable = BinarySerializer(configuration: .init(maximumDepth: 4, usesGeneratedCode: false))

/// Binary deserializer: arbitrary bytes decode or throw, never trap or over-allocate; the
/// generated code and the Codable path decode the same values from the same bytes or both throw;
/// whatever decodes re-encodes to the same bytes on both paths and decodes to an equal value.
func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    // NaN is not equal to itself; compare the bit patterns for it.
    let sameShape = { (a: Shape, b: Shape) in a == b || (a.ratio.isNaN && b.ratio.isNaN) }
    switch data[0] % 5 {
    case 0:
        agree(Shape.self, bytes, generated, codable, same: sameShape)
    case 1:
        agree([String: [Int?]].self, bytes, generated, codable, same: ==)
    case 2:
        // Class inheritance has no generated coding: the Codable path alone.
        _ = try? generated.decode(Derived.self, from: bytes)
    case 3:
        agree([Shape.Payload].self, bytes, generated, codable, same: ==)
    default:
        // The same nesting limit refuses the same inputs on both paths.
        agree(Shape.self, bytes, shallowGenerated, shallowCodable, same: sameShape)
    }
    return 0
}

func agree<T: Codable>(_: T.Type, _ bytes: [UInt8], _ fast: BinarySerializer, _ slow: BinarySerializer,
                       same: (T, T) -> Bool) {
    // Without the macro's expansion both serializers would take the Codable path.
    precondition(T.self is any GeneratedBinaryCoding.Type, "\(T.self) has no generated coding")
    let fastResult = Result { () throws(TierCacheError) -> T in try fast.decode(T.self, from: bytes) }
    let slowResult = Result { () throws(TierCacheError) -> T in try slow.decode(T.self, from: bytes) }
    switch (fastResult, slowResult) {
    case (.success(let value), .success(let other)):
        precondition(same(value, other), "the generated code and the Codable path decoded different values")
        do {
            let again = try fast.encode(value)
            let slowBytes = try slow.encode(value)
            precondition(again == slowBytes, "the generated code and the Codable path wrote different bytes")
            let back = try fast.decode(T.self, from: again)
            precondition(same(back, value), "binary round trip changed the value")
        } catch { preconditionFailure("re-encoded value does not decode: \(error)") }
    case (.failure(let error), .failure(let other)):
        precondition(error.code == .serialization && other.code == .serialization, "an error of the wrong code")
    case (.success, .failure(let error)):
        preconditionFailure("only the Codable path threw: \(error)")
    case (.failure(let error), .success):
        preconditionFailure("only the generated code threw: \(error)")
    }
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
    writeSeed("shape-shallow", [4] + (try serializer.encode(tree)))
}

// MARK: libFuzzer entry point (FuzzSupport does the rest)

@_cdecl("fuzz_binary_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, writeSeeds: writeSeeds, fuzzOne: fuzzOne)
}
