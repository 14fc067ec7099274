#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
import TierCache
public import TierCacheMacros

// @GeneratedBinaryCoding against the Codable path of the same serializer: the same bytes, each
// path reading the other's, the same schema changes survived, the same errors on bad input.
// `codable` is the binary serializer with generated code switched off, so both paths code the
// very same types.

private let generated = BinarySerializer()
private let codable = BinarySerializer(configuration: .init(usesGeneratedCode: false))

/// Both paths give the same bytes, and each reads the other's back to the value.
private func expectSameBytes<T: Codable & Equatable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(T.self is any GeneratedBinaryCoding.Type, "\(T.self) has no generated coding", sourceLocation: sourceLocation)
    let fast = try generated.encode(value)
    let slow = try codable.encode(value)
    #expect(fast == slow, "\(T.self): generated \(fast.count) B, Codable \(slow.count) B", sourceLocation: sourceLocation)
    #expect(try generated.decode(T.self, from: slow) == value, sourceLocation: sourceLocation)
    #expect(try codable.decode(T.self, from: fast) == value, sourceLocation: sourceLocation)
}

// MARK: One type per shape

@GeneratedBinaryCoding
struct GInner: Codable, Equatable, Hashable {
    var name: String
    var weight: Double
    var tags: [String]
}

@GeneratedBinaryCoding
struct GOuter: Codable, Equatable {
    var id: Int
    var inner: GInner
    var inners: [GInner]
    var optionalInner: GInner?
    var nested: [[Int]]
    var flag: Bool
}

@GeneratedBinaryCoding
enum GShape: Codable, Equatable, Sendable {
    case circle(radius: Double)
    case rectangle(width: Double, height: Double)
    case polygon([GShape])
    case labelled(String, Int?)
    case mixed(_ count: Int, name: String?, [String: GInner])
    case empty
    indirect case wrapped(GShape)
    case `default`
}

@GeneratedBinaryCoding
enum GColor: String, Codable, Hashable, CodingKeyRepresentable {
    case red, green, blue = "BLUE"
}

@GeneratedBinaryCoding
enum GLevel: Int, Codable, Hashable {
    case low = 1, high = 2, extreme = -300
}

@GeneratedBinaryCoding
enum GRatio: Double, Codable {
    case half = 0.5, third = 0.333
}

@GeneratedBinaryCoding
enum GDirection: Codable, Hashable {
    case up, down
}

@GeneratedBinaryCoding
struct GOptionals: Codable, Equatable, Sendable {
    var a: Int?
    var b: Int??
    var c: String?
    var d: [Int?]
    var e: [String: Int?]
    var f: GInner?
    var g: Bool??
    var h: [GShape]?
    var i: Optional<GLevel>
}

@GeneratedBinaryCoding
struct GScalars: Codable, Equatable {
    var bool: Bool
    var int: Int, int8: Int8, int16: Int16, int32: Int32, int64: Int64, int128: Int128
    var uint: UInt, uint8: UInt8, uint16: UInt16, uint32: UInt32, uint64: UInt64, uint128: UInt128
    var float: Float
    var double: Double
    var string: String
    var bytes: [UInt8]
    var lists: [[Int16]]
}

@GeneratedBinaryCoding
struct GFoundations: Codable, Equatable {
    var date: Date
    var data: Data
    var uuid: UUID
    var url: URL
    var relativeURL: URL
    var decimal: Decimal
    var dates: [Date]
    var optionalURL: URL?
}

@GeneratedBinaryCoding
struct GCollections: Codable, Equatable {
    var byString: [String: Int]
    var byInt: [Int: String]
    var byEnum: [GColor: [GLevel]]
    var byCaseEnum: [GDirection: Int]
    var byUUID: [UUID: String]
    var byStruct: [GInner: Bool]
    var nested: [String: [String: [Int]]]
    var set: Set<String>
    var sets: [Set<Int>]
    var empty: [String: GInner]
}

/// The type's own CodingKeys decide the order and leave `skipped` out (it keeps its default).
@GeneratedBinaryCoding
struct GKeyed: Codable, Equatable {
    var a: Int
    var b: String
    var skipped = 7
    var c: [Double]?

    enum CodingKeys: String, CodingKey {
        case b = "bee"
        case c, a
    }
}

/// Observers, computed and static properties, backticked names, `let`s without initial values.
@GeneratedBinaryCoding
struct GMembers: Codable, Equatable {
    static let unrelated = 1
    var observed: Int { didSet { _ = oldValue } }
    var computed: Int { observed * 2 }
    let `default`: String
    var first, second: UInt16
    var inferred = "default value"
}

@GeneratedBinaryCoding
struct GGeneric<Element: Codable & Equatable>: Codable, Equatable {
    // Sendable when its elements are (below).
    var elements: [Element]
    var name: String
}

extension GGeneric: Sendable where Element: Sendable {}

@GeneratedBinaryCoding
public struct GPublic: Codable, Equatable {
    public var value: Int
}

// MARK: Schema versions of one type (docs/binary-format.md)

@GeneratedBinaryCoding struct GPersonV1: Codable, Equatable { var name: String; var age: Int }
@GeneratedBinaryCoding struct GPersonV2: Codable, Equatable { var name: String; var age: Int; var email: String? }
@GeneratedBinaryCoding struct GPersonV3: Codable, Equatable { var name: String; var age: Int; var email: String }
@GeneratedBinaryCoding struct GPersonRenamed: Codable, Equatable { var fullName: String; var years: Int64 }
@GeneratedBinaryCoding enum GEventV1: Codable, Equatable { case created(id: Int), deleted }
@GeneratedBinaryCoding enum GEventV2: Codable, Equatable { case created(id: Int), deleted, archived(reason: String) }
@GeneratedBinaryCoding struct GLookupV1: Codable, Equatable { var names: [String: GPersonV1] }
@GeneratedBinaryCoding struct GLookupRenamedKeys: Codable, Equatable { var names: [GColor: GPersonV1] }

/// Generated coding wins over a `Codable` implementation the macro could not see (written in an
/// extension): the generated path writes the synthesized layout, the Codable path this one.
@GeneratedBinaryCoding
struct GHiddenCustomCoding: Codable, Equatable {
    var value: Int
}

extension GHiddenCustomCoding {
    init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int.self) }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

// MARK: Samples

private let inner = GInner(name: "inner ü", weight: -2.5, tags: ["a", "", "日本"])

private func sampleShapes() -> [GShape] {
    [
        .circle(radius: 2), .rectangle(width: 1, height: -0.5), .polygon([.empty, .circle(radius: 1)]),
        .labelled("é", nil), .labelled("", 7), .empty, .wrapped(.wrapped(.polygon([]))), .default,
        .mixed(-3, name: nil, ["k": inner]), .mixed(0, name: "n", [:]),
    ]
}

private func sampleOuter(size: Int) -> GOuter {
    let big = GInner(name: String(repeating: "n", count: size), weight: 2, tags: (0..<size).map(String.init))
    return GOuter(id: -42, inner: big, inners: Array(repeating: big, count: size / 3 + 1), optionalInner: inner,
                  nested: (0..<size).map { Array(0..<$0) }, flag: true)
}

private func sampleOptionals() -> [GOptionals] {
    [
        GOptionals(a: nil, b: .some(nil), c: "", d: [1, nil, 3], e: ["x": nil, "y": 2], f: nil, g: .some(.some(false)),
                   h: nil, i: .high),
        GOptionals(a: 1, b: 2, c: nil, d: [], e: [:], f: inner, g: nil, h: sampleShapes(), i: nil),
        GOptionals(a: nil, b: nil, c: nil, d: [nil], e: ["": nil], f: nil, g: .some(nil), h: [], i: .extreme),
    ]
}

private func sampleScalars() -> [GScalars] {
    [
        GScalars(bool: true, int: .min, int8: .min, int16: .min, int32: .min, int64: .min, int128: .min,
                 uint: .max, uint8: .max, uint16: .max, uint32: .max, uint64: .max, uint128: .max,
                 float: -.infinity, double: -0.0, string: "👩‍👩‍👧‍👦", bytes: [0, 1, 255], lists: [[.min, .max], []]),
        GScalars(bool: false, int: .max, int8: .max, int16: .max, int32: .max, int64: .max, int128: .max,
                 uint: 0, uint8: 0, uint16: 0, uint32: 0, uint64: 0, uint128: 0,
                 float: .leastNonzeroMagnitude, double: .greatestFiniteMagnitude, string: "", bytes: [], lists: []),
        GScalars(bool: true, int: -64, int8: -1, int16: 128, int32: -65, int64: 1 << 40, int128: -1,
                 uint: 127, uint8: 128, uint16: 300, uint32: 1 << 31, uint64: 1 << 63, uint128: 1 << 127,
                 float: 1.5, double: .pi, string: String(repeating: "ß", count: 300), bytes: Array(repeating: 7, count: 200),
                 lists: [[1]]),
    ]
}

private func sampleFoundations() -> GFoundations {
    GFoundations(
        date: Date(timeIntervalSinceReferenceDate: 123_456.789_012_345), data: Data([0, 1, 2, 255]), uuid: UUID(),
        url: URL(string: "https://example.com/a%20b?q=1#frag")!,
        relativeURL: URL(string: "path/file.txt", relativeTo: URL(string: "https://example.com/base/")!)!,
        decimal: Decimal(string: "-12345678901234567890.123456789")!,
        dates: [Date(timeIntervalSince1970: 0), Date.distantFuture, Date.distantPast], optionalURL: URL(string: "a/b"))
}

private func sampleCollections() -> GCollections {
    GCollections(
        byString: ["a": 1, "b": -2, "": 0, "123": 4], byInt: [1: "one", -2: "minus two", Int.max: "max"],
        byEnum: [.red: [.low], .blue: [.high, .extreme], .green: []], byCaseEnum: [.up: 1, .down: -1],
        byUUID: [UUID(): "u", UUID(): "v"], byStruct: [inner: true, GInner(name: "", weight: 0, tags: []): false],
        nested: ["outer": ["inner": [1, 2]], "empty": [:]], set: ["a", "b", "c"], sets: [[], [1, -1]], empty: [:])
}

@Suite("Generated binary coding")
struct GeneratedBinaryCodingTests {
    // MARK: Same bytes, either path reads the other

    @Test func structsAndNesting() throws {
        try expectSameBytes(inner)
        try expectSameBytes(GOuter(id: 0, inner: inner, inners: [], optionalInner: nil, nested: [], flag: false))
        // Bodies past 127 bytes widen their length headers in place on both paths.
        try expectSameBytes(sampleOuter(size: 200))
        try expectSameBytes(GPublic(value: -1))
        try expectSameBytes(GGeneric(elements: [inner, inner], name: "g"))
        try expectSameBytes(GGeneric(elements: [GGeneric(elements: [1, 2], name: "inner")], name: "outer"))
    }

    @Test func enumsOfEveryKind() throws {
        for shape in sampleShapes() { try expectSameBytes(shape) }
        try expectSameBytes(sampleShapes())
        try expectSameBytes([GColor.red, .green, .blue])
        try expectSameBytes([GLevel.low, .high, .extreme])
        try expectSameBytes([GRatio.half, .third])
        try expectSameBytes([GDirection.up, .down])
        // A case without associated values: its name plus five bytes (docs/binary-format.md).
        #expect(try generated.encode(GDirection.up).count == "up".utf8.count + 5)
    }

    @Test func optionalsIncludingNested() throws {
        for value in sampleOptionals() { try expectSameBytes(value) }
        let decoded = try generated.decode(GOptionals.self, from: codable.encode(sampleOptionals()[0]))
        #expect(decoded.b == .some(nil))
        try expectSameBytes(GInner?.none)
        try expectSameBytes(GInner??.some(nil))
        try expectSameBytes([GInner?.none, inner])
    }

    @Test func scalarsAtTheirExtremes() throws {
        for value in sampleScalars() { try expectSameBytes(value) }
        // NaN is not equal to itself: compare the bytes and the bit patterns.
        var nan = sampleScalars()[0]
        nan.double = -.nan
        nan.float = .signalingNaN
        let bytes = try generated.encode(nan)
        #expect(bytes == (try codable.encode(nan)))
        let back = try generated.decode(GScalars.self, from: bytes)
        #expect(back.double.bitPattern == nan.double.bitPattern && back.float.bitPattern == nan.float.bitPattern)
    }

    @Test func foundationValues() throws {
        try expectSameBytes(sampleFoundations())
        var nan = sampleFoundations()
        nan.decimal = .nan
        let bytes = try generated.encode(nan)
        #expect(bytes == (try codable.encode(nan)))
        #expect(try generated.decode(GFoundations.self, from: bytes).decimal.isNaN)
    }

    @Test func collections() throws {
        try expectSameBytes(sampleCollections())
        let big = GCollections(
            byString: Dictionary(uniqueKeysWithValues: (0..<300).map { ("k\($0)", $0) }), byInt: [:], byEnum: [:],
            byCaseEnum: [:], byUUID: [:], byStruct: [:], nested: [:], set: Set((0..<200).map(String.init)),
            sets: [Set(0..<300)], empty: [:])
        try expectSameBytes(big)
    }

    @Test func codingKeysAndMemberKinds() throws {
        let keyed = GKeyed(a: 1, b: "b", skipped: 99, c: [1.5])
        try expectSameBytes(GKeyed(a: 1, b: "b", c: nil))
        // `skipped` is not coded: it comes back as its default.
        #expect(try generated.decode(GKeyed.self, from: generated.encode(keyed)).skipped == 7)
        #expect(try generated.encode(keyed) == (try codable.encode(keyed)))
        try expectSameBytes(GMembers(observed: 3, default: "d", first: 1, second: 2, inferred: "i"))
    }

    @Test func endpointsModel() throws {
        let path = repositoryRoot() + "/bench-data/endpoints.json"
        let json = try #require(FileManager.default.contents(atPath: path), "bench-data/endpoints.json missing at \(path)")
        let document = try JSONDecoder().decode(EndpointsDocument.self, from: json)
        #expect(document.partitions.count > 1)
        try expectSameBytes(document)
        try expectSameBytes(smallEndpointsDocument())
    }

    @Test func theSerializerTakesTheGeneratedPath() throws {
        // Only the generated path writes the synthesized layout for this type (a struct: a byte
        // length, then the field); its hidden Codable writes the bare integer.
        let value = GHiddenCustomCoding(value: 5)
        #expect(try generated.encode(value) == [1, 10])
        #expect(try codable.encode(value) == [10])
        #expect(try generated.decode(GHiddenCustomCoding.self, from: [1, 10]) == value)
        // Types without generated coding take the Codable path, as before.
        #expect(!(Inner.self is any GeneratedBinaryCoding.Type))
        let plain = Inner(name: "a", weight: 1, tags: [])
        #expect(try generated.encode(plain) == (try codable.encode(plain)))
    }

    // MARK: Schema changes (docs/binary-format.md), through either path

    @Test func appendedOptionalFieldReadsAsNil() throws {
        for writer in [generated, codable] {
            let old = try writer.encode(GGeneric(elements: [GPersonV1(name: "a", age: 1)], name: "t"))
            for reader in [generated, codable] {
                let new = try reader.decode(GGeneric<GPersonV2>.self, from: old)
                #expect(new == GGeneric(elements: [GPersonV2(name: "a", age: 1, email: nil)], name: "t"))
            }
        }
    }

    @Test func oldReaderSkipsAppendedFields() throws {
        for writer in [generated, codable] {
            let newer = try writer.encode(GGeneric(elements: [GPersonV2(name: "a", age: 1, email: "a@b")], name: "t"))
            for reader in [generated, codable] {
                let old = try reader.decode(GGeneric<GPersonV1>.self, from: newer)
                #expect(old == GGeneric(elements: [GPersonV1(name: "a", age: 1)], name: "t"))
            }
        }
    }

    @Test func renamesWideningsAndNewCasesSurvive() throws {
        for writer in [generated, codable] {
            for reader in [generated, codable] {
                let renamed = try reader.decode(GPersonRenamed.self, from: writer.encode(GPersonV1(name: "n", age: -5)))
                #expect(renamed == GPersonRenamed(fullName: "n", years: -5))
                let events = try reader.decode([GEventV2].self, from: writer.encode([GEventV1.created(id: 3), .deleted]))
                #expect(events == [.created(id: 3), .deleted])
                // Dictionary keys reordered, added, removed, or retyped String -> String enum.
                let lookup = GLookupV1(names: ["red": GPersonV1(name: "r", age: 1), "BLUE": GPersonV1(name: "b", age: 2)])
                let bytes = try writer.encode(lookup)
                #expect(try reader.decode(GLookupV1.self, from: bytes) == lookup)
                let byColor = try reader.decode(GLookupRenamedKeys.self, from: bytes)
                #expect(byColor.names == [.red: GPersonV1(name: "r", age: 1), .blue: GPersonV1(name: "b", age: 2)])
            }
        }
    }

    @Test func whatTheFormatDoesNotSurviveThrows() throws {
        for writer in [generated, codable] {
            let old = try writer.encode(GPersonV1(name: "a", age: 1))
            for reader in [generated, codable] {
                let error = try #require(throws: TierCacheError.self) { try reader.decode(GPersonV3.self, from: old) }
                #expect(error.code == .serialization)
            }
            // A case an old reader does not know.
            let newer = try writer.encode(GEventV2.archived(reason: "r"))
            for reader in [generated, codable] {
                #expect(throws: TierCacheError.self) { try reader.decode(GEventV1.self, from: newer) }
            }
        }
    }

    // MARK: Malformed input: the same outcome as the Codable decoder

    @Test func malformedInputGivesTheSameOutcomeOnBothPaths() throws {
        var rng = SplitMix64(seed: 0x6E4E_C0DE)
        var counts = (thrown: 0, decoded: 0)
        for check in differentialChecks {
            let sample = try check.sample()
            // Truncation at every length.
            for length in 0..<sample.count {
                check.compare(Array(sample[..<length]), &counts)
            }
            // Random mutations: bit flips, byte replacements, huge varints, deletions, insertions.
            for _ in 0..<400 {
                var bytes = sample
                for _ in 0...(rng.next() % 4) where !bytes.isEmpty {
                    let position = Int(rng.next() % UInt64(bytes.count))
                    switch rng.next() % 5 {
                    case 0: bytes[position] ^= UInt8(1) << (rng.next() % 8)
                    case 1: bytes[position] = UInt8(truncatingIfNeeded: rng.next())
                    case 2: bytes.insert(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], at: position)
                    case 3: bytes.remove(at: position)
                    default: bytes.insert(UInt8(truncatingIfNeeded: rng.next() % 4), at: position)
                    }
                }
                check.compare(bytes, &counts)
            }
            // Random bytes.
            for _ in 0..<200 {
                check.compare((0..<(rng.next() % 48)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, &counts)
            }
        }
        #expect(counts.thrown > 10_000)
        #expect(counts.decoded > 100)
    }

    @Test func nestingIsBoundedAlike() throws {
        var shape = GShape.empty
        for _ in 0..<600 { shape = .wrapped(shape) }
        let bytes = try generated.encode(shape)
        #expect(bytes == (try codable.encode(shape)))
        for serializer in [generated, codable] {
            let error = try #require(throws: TierCacheError.self) { try serializer.decode(GShape.self, from: bytes) }
            #expect(error.code == .serialization)
        }
        let lenient = BinarySerializer(configuration: .init(maximumDepth: 5000))
        #expect(try lenient.decode(GShape.self, from: bytes) == shape)
        // The exact depth at which each path gives up is the same.
        for depth in 1...12 {
            let fast = BinarySerializer(configuration: .init(maximumDepth: depth))
            let slow = BinarySerializer(configuration: .init(maximumDepth: depth, usesGeneratedCode: false))
            for value in sampleOptionals() {
                let bytes = try fast.encode(value)
                #expect((try? fast.decode(GOptionals.self, from: bytes)) == (try? slow.decode(GOptionals.self, from: bytes)),
                        "depth \(depth)")
            }
            let nested = try fast.encode(sampleShapes())
            #expect((try? fast.decode([GShape].self, from: nested)) == (try? slow.decode([GShape].self, from: nested)),
                    "depth \(depth)")
        }
    }

    @Test func absurdCountsAreRejectedBeforeAllocating() throws {
        let absurd: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]
        #expect(throws: TierCacheError.self) { try generated.decode([GInner].self, from: absurd) }
        #expect(throws: TierCacheError.self) { try generated.decode([String: GInner].self, from: absurd) }
        #expect(throws: TierCacheError.self) { try generated.decode(GShape.self, from: absurd) }
        let plausible: [UInt8] = [0x80, 0x08] + Array(repeating: 0, count: 1000)
        #expect(throws: TierCacheError.self) { try generated.decode([GInner].self, from: plausible) }
        #expect(throws: TierCacheError.self) { try generated.decode(Set<GInner>.self, from: plausible) }
        #expect(throws: TierCacheError.self) { try generated.decode(GInner.self, from: try generated.encode(inner) + [0]) }
    }
}

/// One sample type for the differential malformed-input test: its sample bytes, and a comparison
/// of both paths on any input (both decode to equal values, or both throw the typed error).
private struct DifferentialCheck: Sendable {
    let sample: @Sendable () throws -> [UInt8]
    let compare: @Sendable ([UInt8], inout (thrown: Int, decoded: Int)) -> Void

    init<T: Codable & Equatable & Sendable>(_ type: T.Type, maximumDepth: Int = 16, _ value: @escaping @Sendable () -> T) {
        let fast = BinarySerializer(configuration: .init(maximumDepth: maximumDepth))
        let slow = BinarySerializer(configuration: .init(maximumDepth: maximumDepth, usesGeneratedCode: false))
        sample = { try fast.encode(value()) }
        compare = { bytes, counts in
            let fastResult = Result { () throws(TierCacheError) -> T in try fast.decode(T.self, from: bytes) }
            let slowResult = Result { () throws(TierCacheError) -> T in try slow.decode(T.self, from: bytes) }
            switch (fastResult, slowResult) {
            case (.success(let a), .success(let b)):
                // NaN (random bytes make some) is the one value not equal to itself.
                let bothNaN = "\(a)".contains("nan") && "\(b)".contains("nan")
                #expect(a == b || bothNaN, "\(T.self): the paths decoded different values from \(bytes)")
                counts.decoded += 1
            case (.failure(let a), .failure(let b)):
                #expect(a.code == .serialization && b.code == .serialization)
                counts.thrown += 1
            case (.success, .failure(let error)):
                Issue.record("\(T.self): only the Codable path threw (\(error)) on \(bytes)")
            case (.failure(let error), .success):
                Issue.record("\(T.self): only the generated path threw (\(error)) on \(bytes)")
            }
        }
    }
}

private let differentialChecks: [DifferentialCheck] = [
    DifferentialCheck(GOuter.self) { sampleOuter(size: 3) },
    DifferentialCheck([GShape].self) { sampleShapes() },
    DifferentialCheck([GShape].self, maximumDepth: 4) { sampleShapes() },
    DifferentialCheck(GOptionals.self) { sampleOptionals()[0] },
    DifferentialCheck(GOptionals.self, maximumDepth: 3) { sampleOptionals()[1] },
    DifferentialCheck(GScalars.self) { sampleScalars()[2] },
    DifferentialCheck(GCollections.self) { sampleCollections() },
    DifferentialCheck(GFoundations.self) { sampleFoundations() },
    DifferentialCheck(GKeyed.self) { GKeyed(a: 300, b: "bee", c: [0.5, -1]) },
    DifferentialCheck([GColor: GLevel].self) { [.red: .extreme, .blue: .low] },
    DifferentialCheck(GGeneric<GPersonV2>.self) { GGeneric(elements: [GPersonV2(name: "p", age: 3, email: "e")], name: "n") },
    DifferentialCheck(EndpointsDocument.self) { smallEndpointsDocument() },
]
