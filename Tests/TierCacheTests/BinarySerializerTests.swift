#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
import TierCache

// EndpointsModel.swift in this directory is a symbolic link to the bench target's model, so the
// test and the benchmark use the same types.

private let binary = BinarySerializer()

private func roundTrip<T: Codable & Equatable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    let bytes = try binary.encode(value)
    let decoded = try binary.decode(T.self, from: bytes)
    #expect(decoded == value, sourceLocation: sourceLocation)
    return decoded
}

// MARK: Shapes

struct Inner: Codable, Equatable {
    var name: String
    var weight: Double
    var tags: [String]
}

struct Outer: Codable, Equatable {
    var id: Int
    var inner: Inner
    var inners: [Inner]
    var optionalInner: Inner?
    var nested: [[Int]]
    var flag: Bool
}

enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rectangle(width: Double, height: Double)
    case polygon([Shape])
    case labelled(String, Int?)
    case empty
    indirect case wrapped(Shape)
}

enum Color: String, Codable, CodingKeyRepresentable {
    case red, green, blue
}

enum Level: Int, Codable {
    case low = 1, high = 2
}

/// A String-backed enum that is not CodingKeyRepresentable: Swift encodes dictionaries keyed by
/// it as an unkeyed array of alternating keys and values.
enum Suit: String, Codable, Hashable {
    case hearts, spades
}

struct Optionals: Codable, Equatable {
    var a: Int?
    var b: Int??
    var c: String?
    var d: [Int?]
    var e: [String: Int?]
    var f: Inner?
    var g: Bool??
}

struct Integers: Codable, Equatable {
    var i8: [Int8]
    var i16: [Int16]
    var i32: [Int32]
    var i64: [Int64]
    var int: [Int]
    var u8: [UInt8]
    var u16: [UInt16]
    var u32: [UInt32]
    var u64: [UInt64]
    var uint: [UInt]
    var i128: [Int128]
    var u128: [UInt128]
    var single8: Int8
    var single16: UInt16
    var single128: Int128
}

struct Foundations: Codable, Equatable {
    var date: Date
    var data: Data
    var uuid: UUID
    var url: URL
    var decimal: Decimal
    var dates: [Date]
    var optionalURL: URL?
}

/// Coded by hand with dynamic keys, a nested unkeyed container and a super-encoder.
struct Custom: Codable, Equatable {
    var values: [String: Int]
    var list: [Int]

    struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    enum Keys: String, CodingKey { case list, values, extra }

    init(values: [String: Int], list: [Int]) {
        self.values = values
        self.list = list
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var list = container.nestedUnkeyedContainer(forKey: .list)
        for value in self.list { try list.encode(value) }
        var dynamic = container.nestedContainer(keyedBy: DynamicKey.self, forKey: .values)
        for (key, value) in values { try dynamic.encode(value, forKey: DynamicKey(stringValue: key)) }
        // A dictionary passed straight to a super-encoder takes the generic (keyed) path.
        try values.encode(to: container.superEncoder(forKey: .extra))
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        var list = try container.nestedUnkeyedContainer(forKey: .list)
        var values: [Int] = []
        while !list.isAtEnd { values.append(try list.decode(Int.self)) }
        self.list = values
        let dynamic = try container.nestedContainer(keyedBy: DynamicKey.self, forKey: .values)
        var dictionary: [String: Int] = [:]
        for key in dynamic.allKeys { dictionary[key.stringValue] = try dynamic.decode(Int.self, forKey: key) }
        self.values = dictionary
        let extra = try [String: Int](from: container.superDecoder(forKey: .extra))
        guard extra == dictionary else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "super-decoder copy differs"))
        }
    }
}

/// Every primitive through a hand-written unkeyed container and through single-value wrappers.
struct Primitives: Codable, Equatable {
    var values: (Bool, Float, Int8, Int16, Int32, Int64, UInt, UInt8, UInt16, UInt32, UInt64, Double, String, Int)
    var absent: Int?
    var wrapped: [Wrapper<Float>]
    var wrappedOptional: Wrapper<Int?>

    static func == (lhs: Primitives, rhs: Primitives) -> Bool {
        // Tuples of more than six elements have no ==; their descriptions print every bit that matters here.
        "\(lhs.values)" == "\(rhs.values)" && lhs.absent == rhs.absent && lhs.wrapped == rhs.wrapped && lhs.wrappedOptional == rhs.wrappedOptional
    }

    struct Wrapper<T: Codable & Equatable>: Codable, Equatable {
        var value: T
        init(_ value: T) { self.value = value }
        init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(T.self) }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(value)
        }
    }

    init(values: (Bool, Float, Int8, Int16, Int32, Int64, UInt, UInt8, UInt16, UInt32, UInt64, Double, String, Int),
         absent: Int?, wrapped: [Wrapper<Float>], wrappedOptional: Wrapper<Int?>) {
        self.values = values
        self.absent = absent
        self.wrapped = wrapped
        self.wrappedOptional = wrappedOptional
    }

    enum Keys: CodingKey { case values, absent, wrapped, wrappedOptional }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var list = container.nestedUnkeyedContainer(forKey: .values)
        let v = values
        try list.encode(v.0); try list.encode(v.1); try list.encode(v.2); try list.encode(v.3); try list.encode(v.4)
        try list.encode(v.5); try list.encode(v.6); try list.encode(v.7); try list.encode(v.8); try list.encode(v.9)
        try list.encode(v.10); try list.encode(v.11); try list.encode(v.12); try list.encode(v.13)
        if let absent { try list.encode(absent) } else { try list.encodeNil() }
        try container.encode(wrapped, forKey: .wrapped)
        try container.encode(wrappedOptional, forKey: .wrappedOptional)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        var list = try container.nestedUnkeyedContainer(forKey: .values)
        #expect(list.count == 15)
        values = (try list.decode(Bool.self), try list.decode(Float.self), try list.decode(Int8.self), try list.decode(Int16.self),
                  try list.decode(Int32.self), try list.decode(Int64.self), try list.decode(UInt.self), try list.decode(UInt8.self),
                  try list.decode(UInt16.self), try list.decode(UInt32.self), try list.decode(UInt64.self), try list.decode(Double.self),
                  try list.decode(String.self), try list.decode(Int.self))
        absent = try list.decodeNil() ? nil : try list.decode(Int.self)
        #expect(list.isAtEnd)
        wrapped = try container.decode([Wrapper<Float>].self, forKey: .wrapped)
        wrappedOptional = try container.decode(Wrapper<Int?>.self, forKey: .wrappedOptional)
    }
}

class Animal: Codable, Equatable {
    var name: String
    init(name: String) { self.name = name }
    static func == (lhs: Animal, rhs: Animal) -> Bool { lhs.name == rhs.name && type(of: lhs) == type(of: rhs) }
}

final class Dog: Animal {
    var tricks: [String]
    enum Keys: CodingKey { case tricks }
    init(name: String, tricks: [String]) {
        self.tricks = tricks
        super.init(name: name)
    }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        tricks = try container.decode([String].self, forKey: .tricks)
        try super.init(from: container.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(tricks, forKey: .tricks)
        try super.encode(to: container.superEncoder())
    }
    static func == (lhs: Dog, rhs: Dog) -> Bool { lhs.name == rhs.name && lhs.tricks == rhs.tricks }
}

/// The other common inheritance pattern: the subclass hands its own encoder to `super`.
final class Cat: Animal {
    var lives: Int
    enum Keys: CodingKey { case lives }
    init(name: String, lives: Int) {
        self.lives = lives
        super.init(name: name)
    }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        lives = try container.decode(Int.self, forKey: .lives)
        try super.init(from: decoder)
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(lives, forKey: .lives)
        try super.encode(to: encoder)
    }
}

@Suite("BinarySerializer")
struct BinarySerializerTests {
    @Test func nestedStructs() throws {
        let inner = Inner(name: "a", weight: 1.5, tags: ["x", "y"])
        _ = try roundTrip(Outer(id: -42, inner: inner, inners: [inner, Inner(name: "", weight: 0, tags: [])],
                                optionalInner: inner, nested: [[], [1, 2, 3], [Int.min]], flag: true))
        _ = try roundTrip(Outer(id: 0, inner: inner, inners: [], optionalInner: nil, nested: [], flag: false))
    }

    @Test func optionalsIncludingNested() throws {
        let value = Optionals(a: nil, b: .some(nil), c: "", d: [1, nil, 3], e: ["x": nil, "y": 2],
                              f: nil, g: .some(.some(false)))
        let decoded = try roundTrip(value)
        // `.some(nil)` must not collapse into `nil`.
        #expect(decoded.b == .some(nil))
        #expect(decoded.b != nil)
        _ = try roundTrip(Optionals(a: 1, b: 2, c: nil, d: [], e: [:], f: Inner(name: "f", weight: -1, tags: []), g: nil))
        _ = try roundTrip(Optional<Int>.none)
        _ = try roundTrip(Optional<Optional<Int>>.some(nil))
        _ = try roundTrip([Optional<Optional<String>>.some(nil), nil, "x"])
    }

    @Test func enumsWithAssociatedValues() throws {
        let shapes: [Shape] = [
            .circle(radius: 2), .rectangle(width: 1, height: -0.5), .polygon([.empty, .circle(radius: 1)]),
            .labelled("é", nil), .labelled("", 7), .empty, .wrapped(.wrapped(.polygon([]))),
        ]
        _ = try roundTrip(shapes)
        for shape in shapes { _ = try roundTrip(shape) }
        _ = try roundTrip([Color.red, .blue])
        _ = try roundTrip([Level.high, .low])
        _ = try roundTrip(["k": Shape.rectangle(width: 3, height: 4)])
    }

    @Test func dictionaries() throws {
        _ = try roundTrip(["a": 1, "b": 2, "": 0, "123": 4])
        _ = try roundTrip([1: "one", -2: "minus two", Int.max: "max"])
        _ = try roundTrip([Color.red: 1, Color.green: 2])
        _ = try roundTrip([Suit.hearts: [1], Suit.spades: []])
        _ = try roundTrip([UUID(): "u", UUID(): "v"])
        _ = try roundTrip([Int8(-1): UInt8(255)])
        _ = try roundTrip([String: [String: Int]]())
        _ = try roundTrip(["outer": ["inner": [1, 2]]])
        _ = try roundTrip(Set(["a", "b", "c"]))
        _ = try roundTrip([Set<Int>(), Set([1, -1])])
    }

    @Test func integersAtTheirExtremes() throws {
        let value = Integers(
            i8: [.min, -1, 0, 1, .max], i16: [.min, -1, 0, .max], i32: [.min, 0, .max], i64: [.min, -1, 0, .max],
            int: [.min, -64, 63, 64, .max], u8: [0, 127, 128, .max], u16: [0, 128, .max], u32: [0, .max],
            u64: [0, 1 << 63, .max], uint: [0, .max], i128: [.min, -1, 0, .max], u128: [0, 1 << 127, .max],
            single8: .min, single16: .max, single128: .min)
        _ = try roundTrip(value)
        for int in [Int64.min, -1, 0, 1, Int64.max] { _ = try roundTrip(int) }
        for int in [UInt64.min, 300, UInt64.max] { _ = try roundTrip(int) }
        _ = try roundTrip(Int128.max)
        _ = try roundTrip(UInt128.max)
    }

    @Test func floatingPointEdges() throws {
        let doubles: [Double] = [0, -0.0, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude,
                                 -.leastNormalMagnitude, .pi, 1e-300]
        let decoded = try binary.decode([Double].self, from: binary.encode(doubles))
        #expect(decoded.map(\.bitPattern) == doubles.map(\.bitPattern))
        #expect(decoded[1].sign == .minus)
        let nan = try binary.decode(Double.self, from: binary.encode(Double.nan))
        #expect(nan.isNaN)
        let floats: [Float] = [-0.0, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
        let decodedFloats = try binary.decode([Float].self, from: binary.encode(floats))
        #expect(decodedFloats[0].sign == .minus && decodedFloats[0] == 0)
        #expect(decodedFloats[1] == .infinity && decodedFloats[2] == -.infinity)
        #expect(decodedFloats[3].isNaN)
        #expect(decodedFloats[4] == .greatestFiniteMagnitude && decodedFloats[5] == .leastNonzeroMagnitude)
        struct Doubles: Codable { var a: Double; var b: Float; var c: Double? }
        let fields = try binary.decode(Doubles.self, from: binary.encode(Doubles(a: -0.0, b: .nan, c: .nan)))
        #expect(fields.a.sign == .minus && fields.b.isNaN && fields.c?.isNaN == true)
    }

    @Test func foundationTypes() throws {
        let value = Foundations(
            date: Date(timeIntervalSinceReferenceDate: 123_456.789_012_345), data: Data([0, 1, 2, 255]), uuid: UUID(),
            url: URL(string: "https://example.com/a%20b?q=1#frag")!, decimal: Decimal(string: "-12345678901234567890.123456789")!,
            dates: [Date(timeIntervalSince1970: 0), Date.distantFuture, Date.distantPast], optionalURL: nil)
        _ = try roundTrip(value)
        _ = try roundTrip(URL(string: "path/file.txt", relativeTo: URL(string: "https://example.com/base/")!)!)
        _ = try roundTrip(Data())
        for decimal in [Decimal(0), Decimal(1), Decimal(-1), Decimal.greatestFiniteMagnitude, Decimal.leastFiniteMagnitude,
                        Decimal(string: "0.000000000000000000000000000001")!] {
            _ = try roundTrip(decimal)
        }
        #expect(try binary.decode(Decimal.self, from: binary.encode(Decimal.nan)).isNaN)
        // Compact forms: a UUID is its 16 bytes, a Date its 8.
        #expect(try binary.encode(UUID()).count == 16)
        #expect(try binary.encode(Date()).count == 8)
    }

    @Test func emptyValuesAndUnicode() throws {
        _ = try roundTrip("")
        _ = try roundTrip([String]())
        _ = try roundTrip([Int: Int]())
        _ = try roundTrip(["", "\u{0}", "é", "e\u{301}", "日本語", "👩‍👩‍👧‍👦", String(repeating: "ß", count: 1000)])
        _ = try roundTrip(["🔑": "値"])
    }

    @Test func everyPrimitiveThroughEveryContainer() throws {
        _ = try roundTrip(Primitives(
            values: (true, -1.5, .min, .min, .min, .min, .max, .max, .max, .max, .max, -0.0, "ü", .min),
            absent: nil, wrapped: [.init(.infinity), .init(0)], wrappedOptional: .init(nil)))
        _ = try roundTrip(Primitives(
            values: (false, .greatestFiniteMagnitude, .max, .max, .max, .max, 0, 0, 0, 0, 0, .infinity, "", .max),
            absent: 42, wrapped: [], wrappedOptional: .init(7)))
    }

    @Test func customContainersAndClasses() throws {
        _ = try roundTrip(Custom(values: ["a": 1, "b": -2, "7": 7], list: [3, 2, 1]))
        _ = try roundTrip(Custom(values: [:], list: []))
        let dog = try binary.decode(Dog.self, from: binary.encode(Dog(name: "Rex", tricks: ["sit", "roll"])))
        #expect(dog.name == "Rex" && dog.tricks == ["sit", "roll"])
        let cats = try binary.decode([Cat].self, from: binary.encode([Cat(name: "Tom", lives: 9), Cat(name: "", lives: -1)]))
        #expect(cats.map(\.name) == ["Tom", ""] && cats.map(\.lives) == [9, -1])
    }

    @Test func bigContainersUseMultiByteHeaders() throws {
        // Containers longer than 127 bytes or entries need their headers widened after the fact.
        let inner = Inner(name: String(repeating: "n", count: 300), weight: 2, tags: (0..<200).map(String.init))
        _ = try roundTrip(Outer(id: 1, inner: inner, inners: Array(repeating: inner, count: 130), optionalInner: inner,
                                nested: (0..<150).map { Array(0..<$0) }, flag: true))
        _ = try roundTrip(Custom(values: Dictionary(uniqueKeysWithValues: (0..<300).map { ("k\($0)", $0) }),
                                 list: Array(0..<500)))
    }

    // MARK: Schema changes (docs/binary-format.md)

    struct PersonV1: Codable, Equatable { var name: String; var age: Int }
    struct PersonV2: Codable, Equatable { var name: String; var age: Int; var email: String? }
    struct PersonV3: Codable, Equatable { var name: String; var age: Int; var email: String }
    struct Team<P: Codable & Equatable>: Codable, Equatable { var members: [P]; var name: String }

    @Test func appendedOptionalFieldReadsAsNil() throws {
        let old = try binary.encode(Team(members: [PersonV1(name: "a", age: 1)], name: "t"))
        let new = try binary.decode(Team<PersonV2>.self, from: old)
        #expect(new == Team(members: [PersonV2(name: "a", age: 1, email: nil)], name: "t"))
    }

    @Test func oldReaderSkipsAppendedFields() throws {
        let newer = try binary.encode(Team(members: [PersonV2(name: "a", age: 1, email: "a@b")], name: "t"))
        let old = try binary.decode(Team<PersonV1>.self, from: newer)
        #expect(old == Team(members: [PersonV1(name: "a", age: 1)], name: "t"))
    }

    @Test func appendedNonOptionalFieldThrows() throws {
        let old = try binary.encode(PersonV1(name: "a", age: 1))
        #expect(throws: TierCacheError.self) { try binary.decode(PersonV3.self, from: old) }
    }

    // MARK: Endpoints model

    @Test func endpointsModelRoundTrip() throws {
        let path = repositoryRoot() + "/bench-data/endpoints.json"
        let json = try #require(FileManager.default.contents(atPath: path), "bench-data/endpoints.json missing at \(path)")
        let document = try JSONDecoder().decode(EndpointsDocument.self, from: json)
        #expect(document.partitions.count > 1)
        let bytes = try binary.encode(document)
        #expect(try binary.decode(EndpointsDocument.self, from: bytes) == document)
        let jsonBytes = try JSONSerializer().encode(document)
        #expect(bytes.count * 4 <= jsonBytes.count * 3, "binary \(bytes.count) B vs JSON \(jsonBytes.count) B")
    }

    // MARK: Malformed input

    @Test func malformedInputOnlyThrowsTheTypedError() throws {
        var rng = SplitMix64(seed: 0x7133_CAC4E)
        let inner = Inner(name: "name", weight: 3, tags: ["a", "bb"])
        let samples: [[UInt8]] = [
            try binary.encode(Outer(id: 5, inner: inner, inners: [inner], optionalInner: nil, nested: [[1], [2, 3]], flag: true)),
            try binary.encode([Shape.polygon([.circle(radius: 1), .labelled("x", 2)]), .wrapped(.empty)]),
            try binary.encode(Optionals(a: 1, b: .some(nil), c: "c", d: [nil, 2], e: ["k": 1], f: inner, g: true)),
            try binary.encode(["a": [1: "x"], "b": [:]]),
            try binary.encode(Custom(values: ["a": 1], list: [1, 2])),
            try binary.encode(Foundations(date: Date(), data: Data([1, 2]), uuid: UUID(), url: URL(string: "https://x.y/z")!,
                                          decimal: 12.5, dates: [], optionalURL: URL(string: "a/b"))),
            try binary.encode(smallEndpointsDocument()),
        ]
        var outcomes = (thrown: 0, decoded: 0)
        func attempt(_ bytes: [UInt8]) {
            for decode in decoders {
                do {
                    try decode(bytes)
                    outcomes.decoded += 1
                } catch {
                    #expect((error as? TierCacheError)?.code == .serialization, "\(error)")
                    outcomes.thrown += 1
                }
            }
        }
        // Truncation at every length.
        for sample in samples {
            for length in 0..<sample.count { attempt(Array(sample[..<length])) }
        }
        // Random mutations: bit flips, byte replacements, insertions of huge varints, deletions.
        for _ in 0..<3000 {
            var bytes = samples[Int(rng.next() % UInt64(samples.count))]
            for _ in 0...(rng.next() % 4) {
                let position = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 4 {
                case 0: bytes[position] ^= UInt8(1) << (rng.next() % 8)
                case 1: bytes[position] = UInt8(truncatingIfNeeded: rng.next())
                case 2: bytes.insert(contentsOf: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], at: position)
                default: bytes.remove(at: position)
                }
                if bytes.isEmpty { break }
            }
            attempt(bytes)
        }
        // Purely random bytes.
        for _ in 0..<2000 {
            attempt((0..<(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        #expect(outcomes.thrown > 10_000)
    }

    @Test func absurdLengthsAreRejectedBeforeAllocating() throws {
        // A count of 2^62 elements followed by nothing.
        let absurd: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]
        for decode in decoders {
            #expect(throws: TierCacheError.self) { try decode(absurd) }
        }
        #expect(throws: TierCacheError.self) { try binary.decode([Int].self, from: absurd) }
        #expect(throws: TierCacheError.self) { try binary.decode(String.self, from: absurd) }
        #expect(throws: TierCacheError.self) { try binary.decode(Data.self, from: absurd) }
        #expect(throws: TierCacheError.self) { try binary.decode([String: Int].self, from: absurd) }
        // A count the input could hold (one byte each) but whose elements are missing.
        let plausible: [UInt8] = [0x80, 0x08] + Array(repeating: 0, count: 1000)
        #expect(throws: TierCacheError.self) { try binary.decode([Inner].self, from: plausible) }
        #expect(throws: TierCacheError.self) { try binary.decode([String: Inner].self, from: plausible) }
    }

    @Test func trailingBytesAndBadScalarsThrow() throws {
        #expect(throws: TierCacheError.self) { try binary.decode(Int.self, from: binary.encode(1) + [0]) }
        #expect(throws: TierCacheError.self) { try binary.decode(Bool.self, from: [2]) }
        #expect(throws: TierCacheError.self) { try binary.decode(String.self, from: [2, 0xC3, 0x28]) }
        #expect(throws: TierCacheError.self) { try binary.decode(Int8.self, from: []) }
        #expect(throws: TierCacheError.self) { try binary.decode(Int16.self, from: binary.encode(Int64.max)) }
        #expect(throws: TierCacheError.self) { try binary.decode(UInt64.self, from: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) }
    }

    @Test func deepNestingIsBounded() throws {
        var shape = Shape.empty
        for _ in 0..<600 { shape = .wrapped(shape) }
        let bytes = try binary.encode(shape)
        let error = try #require(throws: TierCacheError.self) { try binary.decode(Shape.self, from: bytes) }
        #expect(error.code == .serialization)
        let lenient = BinarySerializer(configuration: .init(maximumDepth: 5000))
        #expect(try lenient.decode(Shape.self, from: bytes) == shape)
    }

    // MARK: JSON

    @Test func jsonSerializerRoundTrips() throws {
        let json: any Serializer = .json
        #expect(json.id == .json)
        let value = Foundations(date: Date(timeIntervalSince1970: 1_700_000_000.123), data: Data([9, 8]), uuid: UUID(),
                                url: URL(string: "https://example.com")!, decimal: 1.25, dates: [], optionalURL: nil)
        #expect(try json.decode(Foundations.self, from: json.encode(value)) == value)
        let shapes: [Shape] = [.circle(radius: 1), .labelled("x", nil), .wrapped(.empty)]
        #expect(try json.decode([Shape].self, from: json.encode(shapes)) == shapes)
        let error = try #require(throws: TierCacheError.self) { try json.decode(Inner.self, from: Array("{".utf8)) }
        #expect(error.code == .serialization)
        #expect((BinarySerializer.binary as any Serializer).id == .binary)
    }
}

/// Decoders of every sample type, for the fuzz tests.
private let decoders: [@Sendable ([UInt8]) throws -> Void] = [
    { bytes in _ = try binary.decode(Outer.self, from: bytes) },
    { bytes in _ = try binary.decode([Shape].self, from: bytes) },
    { bytes in _ = try binary.decode(Optionals.self, from: bytes) },
    { bytes in _ = try binary.decode([String: [Int: String]].self, from: bytes) },
    { bytes in _ = try binary.decode(Custom.self, from: bytes) },
    { bytes in _ = try binary.decode(Foundations.self, from: bytes) },
    { bytes in _ = try binary.decode(EndpointsDocument.self, from: bytes) },
]

/// A two-partition slice of the endpoints model with every optional both set and unset.
func smallEndpointsDocument() -> EndpointsDocument {
    let variant = EndpointVariant(dnsSuffix: "api.aws", hostname: "{service}.{region}.{dnsSuffix}", tags: ["dualstack"])
    let defaults = EndpointProperties(credentialScope: nil, deprecated: nil, dnsSuffix: nil, hostname: "{service}.{region}",
                                      protocols: ["https"], signatureVersions: ["v4"], sslCommonName: nil, variants: [variant])
    let endpoint = EndpointProperties(credentialScope: CredentialScope(region: "us-east-1", service: nil), deprecated: true,
                                      dnsSuffix: "amazonaws.com", hostname: "s3.amazonaws.com", protocols: nil,
                                      signatureVersions: nil, sslCommonName: "x", variants: [])
    let service = Service(defaults: defaults, endpoints: ["us-east-1": endpoint, "fips": defaults], isRegionalized: false,
                          partitionEndpoint: "aws-global")
    let partition = Partition(defaults: defaults, dnsSuffix: "amazonaws.com", partition: "aws", partitionName: "AWS",
                              regionRegex: "^us$", regions: ["us-east-1": RegionInfo(description: "N. Virginia")],
                              services: ["s3": service, "empty": Service(defaults: nil, endpoints: [:], isRegionalized: nil,
                                                                          partitionEndpoint: nil)])
    return EndpointsDocument(partitions: [partition, partition], version: 3)
}


func repositoryRoot() -> String {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
    return path
}
