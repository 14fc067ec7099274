import SwiftSyntax
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacros
import SwiftSyntaxMacrosGenericTestSupport
import Testing
import TierCacheMacrosPlugin

private let specs = [
    "GeneratedBinaryCoding": MacroSpec(
        type: GeneratedBinaryCodingMacro.self,
        conformances: [TypeSyntax(IdentifierTypeSyntax(name: .identifier("GeneratedBinaryCoding")))]),
]

private func expectExpansion(_ source: String, _ expanded: String, diagnostics: [DiagnosticSpec] = [],
                             sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    assertMacroExpansion(source, expandedSource: expanded, diagnostics: diagnostics, macroSpecs: specs) { failure in
        Issue.record(Comment(rawValue: failure.message), sourceLocation: sourceLocation)
    }
}

private func diagnostic(_ message: String, _ line: Int, _ column: Int) -> DiagnosticSpec {
    DiagnosticSpec(message: message, line: line, column: column)
}

@Suite("@GeneratedBinaryCoding expansion")
struct GeneratedBinaryCodingMacroTests {
    // MARK: Shapes

    @Test func structFieldsInDeclarationOrder() {
        expectExpansion("""
            @GeneratedBinaryCoding
            struct Point: Codable {
                static let origin = 0
                var x: Int
                var label: String? { didSet { print(label ?? "") } }
                var doubled: Int { x * 2 }
                let `default`: [String: [Double]]
                var a, b: UInt8
                var inferred = "text"
            }
            """, """
            struct Point: Codable {
                static let origin = 0
                var x: Int
                var label: String? { didSet { print(label ?? "") } }
                var doubled: Int { x * 2 }
                let `default`: [String: [Double]]
                var a, b: UInt8
                var inferred = "text"
            }

            extension Point: TierCache.GeneratedBinaryCoding {
                func encodeBinary(to writer: inout TierCache.BinarySerializer.Writer) {
                    let header = writer.beginStruct()
                    writer.encode(self.x)
                    writer.encode(self.label)
                    writer.encode(self.`default`)
                    writer.encode(self.a)
                    writer.encode(self.b)
                    writer.encode(self.inferred)
                    writer.endStruct(header)
                }

                init(binaryFrom reader: inout TierCache.BinarySerializer.Reader) throws(TierCache.TierCacheError) {
                    let parentLimit = try reader.beginStruct()
                    self.x = try reader.decodeField(named: "x")
                    self.label = try reader.decodeField(named: "label")
                    self.`default` = try reader.decodeField(named: "default")
                    self.a = try reader.decodeField(named: "a")
                    self.b = try reader.decodeField(named: "b")
                    self.inferred = try reader.decodeField(named: "inferred")
                    reader.endStruct(parentLimit)
                }
            }
            """)
    }

    @Test func structCodingKeysGiveOrderAndOmissions() {
        expectExpansion("""
            @GeneratedBinaryCoding
            struct Keyed: Codable {
                var a: Int
                var b: String
                var skipped = 7
                enum CodingKeys: String, CodingKey {
                    case b = "bee"
                    case a
                }
            }
            """, """
            struct Keyed: Codable {
                var a: Int
                var b: String
                var skipped = 7
                enum CodingKeys: String, CodingKey {
                    case b = "bee"
                    case a
                }
            }

            extension Keyed: TierCache.GeneratedBinaryCoding {
                func encodeBinary(to writer: inout TierCache.BinarySerializer.Writer) {
                    let header = writer.beginStruct()
                    writer.encode(self.b)
                    writer.encode(self.a)
                    writer.endStruct(header)
                }

                init(binaryFrom reader: inout TierCache.BinarySerializer.Reader) throws(TierCache.TierCacheError) {
                    let parentLimit = try reader.beginStruct()
                    self.b = try reader.decodeField(named: "b")
                    self.a = try reader.decodeField(named: "a")
                    reader.endStruct(parentLimit)
                }
            }
            """)
    }

    @Test func genericAndPublicTypes() {
        expectExpansion("""
            @GeneratedBinaryCoding
            public struct Page<Item: Codable, Cursor>: Codable {
                public var items: [Item]
                public var next: Cursor?
            }
            """, """
            public struct Page<Item: Codable, Cursor>: Codable {
                public var items: [Item]
                public var next: Cursor?
            }

            extension Page: TierCache.GeneratedBinaryCoding where Item: TierCache.GeneratedBinaryCoding, Cursor: TierCache.GeneratedBinaryCoding {
                public func encodeBinary(to writer: inout TierCache.BinarySerializer.Writer) {
                    let header = writer.beginStruct()
                    writer.encode(self.items)
                    writer.encode(self.next)
                    writer.endStruct(header)
                }

                public init(binaryFrom reader: inout TierCache.BinarySerializer.Reader) throws(TierCache.TierCacheError) {
                    let parentLimit = try reader.beginStruct()
                    self.items = try reader.decodeField(named: "items")
                    self.next = try reader.decodeField(named: "next")
                    reader.endStruct(parentLimit)
                }
            }
            """)
    }

    @Test func enumWithAssociatedValues() {
        expectExpansion("""
            @GeneratedBinaryCoding
            indirect enum Shape: Codable {
                case circle(radius: Double)
                case labelled(String, Int?)
                case empty, `default`
                case tree(_ left: Shape, right: Shape)
            }
            """, """
            indirect enum Shape: Codable {
                case circle(radius: Double)
                case labelled(String, Int?)
                case empty, `default`
                case tree(_ left: Shape, right: Shape)
            }

            extension Shape: TierCache.GeneratedBinaryCoding {
                func encodeBinary(to writer: inout TierCache.BinarySerializer.Writer) {
                    switch self {
                    case .circle(let value0):
                        let headers = writer.beginEnumCase("circle")
                        writer.encode(value0)
                        writer.endEnumCase(headers)
                    case .labelled(let value0, let value1):
                        let headers = writer.beginEnumCase("labelled")
                        writer.encode(value0)
                        writer.encode(value1)
                        writer.endEnumCase(headers)
                    case .empty:
                        let headers = writer.beginEnumCase("empty")
                        writer.endEnumCase(headers)
                    case .`default`:
                        let headers = writer.beginEnumCase("default")
                        writer.endEnumCase(headers)
                    case .tree(let value0, let value1):
                        let headers = writer.beginEnumCase("tree")
                        writer.encode(value0)
                        writer.encode(value1)
                        writer.endEnumCase(headers)
                    }
                }

                init(binaryFrom reader: inout TierCache.BinarySerializer.Reader) throws(TierCache.TierCacheError) {
                    let (index, limits) = try reader.beginEnumCase(named: { position in
                        switch position {
                        case 0:
                            "circle"
                        case 1:
                            "labelled"
                        case 2:
                            "empty"
                        case 3:
                            "default"
                        case 4:
                            "tree"
                        default:
                            nil
                        }
                    })
                    switch index {
                    case 0:
                        self = .circle(radius: try reader.decodeField(named: "radius"))
                    case 1:
                        self = .labelled(try reader.decodeField(named: "_0"), try reader.decodeField(named: "_1"))
                    case 2:
                        self = .empty
                    case 3:
                        self = .`default`
                    default:
                        self = .tree(try reader.decodeField(named: "_0"), right: try reader.decodeField(named: "right"))
                    }
                    reader.endEnumCase(limits)
                }
            }
            """)
    }

    @Test func enumWithRawValues() {
        expectExpansion("""
            @GeneratedBinaryCoding
            enum Color: String, Codable {
                case red, blue = "BLUE"
            }
            """, """
            enum Color: String, Codable {
                case red, blue = "BLUE"
            }

            extension Color: TierCache.GeneratedBinaryCoding {
                func encodeBinary(to writer: inout TierCache.BinarySerializer.Writer) {
                    writer.encode(self.rawValue)
                }

                init(binaryFrom reader: inout TierCache.BinarySerializer.Reader) throws(TierCache.TierCacheError) {
                    try reader.descend()
                    let rawValue = try RawValue(binaryFrom: &reader)
                    guard let value = Self(rawValue: rawValue) else {
                        throw reader.invalidRawValue(rawValue, of: Self.self)
                    }
                    reader.ascend()
                    self = value
                }
            }
            """)
    }

    @Test func enumWithoutCases() {
        expectExpansion("""
            @GeneratedBinaryCoding
            enum Never2: Codable {
            }
            """, """
            enum Never2: Codable {
            }

            extension Never2: TierCache.GeneratedBinaryCoding {
                func encodeBinary(to writer: inout TierCache.BinarySerializer.Writer) {
                    switch self {
                    }
                }

                init(binaryFrom reader: inout TierCache.BinarySerializer.Reader) throws(TierCache.TierCacheError) {
                    throw reader.noCases(Self.self)
                }
            }
            """)
    }

    @Test func alreadyConformingTypeGetsNoSecondExtension() {
        assertMacroExpansion("""
            @GeneratedBinaryCoding
            struct Done: Codable {
                var x: Int
            }
            """, expandedSource: """
            struct Done: Codable {
                var x: Int
            }
            """, macroSpecs: ["GeneratedBinaryCoding": MacroSpec(type: GeneratedBinaryCodingMacro.self, conformances: [])]) { failure in
            Issue.record(Comment(rawValue: failure.message))
        }
    }

    // MARK: Diagnostics, one per refusal

    @Test func refusesClassesAndActors() {
        expectExpansion("""
            @GeneratedBinaryCoding
            class Box: Codable {
                var x = 0
            }
            """, """
            class Box: Codable {
                var x = 0
            }
            """, diagnostics: [diagnostic("@GeneratedBinaryCoding applies to a struct or an enum, not a class", 1, 1)])
        expectExpansion("""
            @GeneratedBinaryCoding
            actor Counter {
            }
            """, """
            actor Counter {
            }
            """, diagnostics: [diagnostic("@GeneratedBinaryCoding applies to a struct or an enum, not an actor", 1, 1)])
    }

    @Test func refusesHandWrittenCoding() {
        let ownCoding = "cannot be used with a hand-written"
        expectExpansion("""
            @GeneratedBinaryCoding
            struct Custom: Codable {
                var x: Int
                func encode(to encoder: any Encoder) throws {}
                init(from decoder: any Decoder) throws { x = 0 }
            }
            """, """
            struct Custom: Codable {
                var x: Int
                func encode(to encoder: any Encoder) throws {}
                init(from decoder: any Decoder) throws { x = 0 }
            }
            """, diagnostics: [
                diagnostic("@GeneratedBinaryCoding \(ownCoding) encode(to:): the generated code writes what synthesized Codable writes, which would no longer be what this type writes; remove one of them", 4, 10),
                diagnostic("@GeneratedBinaryCoding \(ownCoding) init(from:): the generated code writes what synthesized Codable writes, which would no longer be what this type writes; remove one of them", 5, 5),
            ])
    }

    @Test func refusesMembersItCannotCode() {
        expectExpansion("""
            @GeneratedBinaryCoding
            struct Bad: Codable {
                var (a, b): (Int, Int)
                lazy var c: Int = 1
                weak var d: AnyObject?
                @Clamped var e: Int
                let f = 3
                var g: (Int, String)
                var h: () -> Void
                var i: any Error
                var j: [String: any Codable]
                var k: Int!
                var l: Int.Type
                var m: Codable & Hashable
                var n: (Int)
            }
            """, """
            struct Bad: Codable {
                var (a, b): (Int, Int)
                lazy var c: Int = 1
                weak var d: AnyObject?
                @Clamped var e: Int
                let f = 3
                var g: (Int, String)
                var h: () -> Void
                var i: any Error
                var j: [String: any Codable]
                var k: Int!
                var l: Int.Type
                var m: Codable & Hashable
                var n: (Int)
            }
            """, diagnostics: [
                diagnostic("stored property '(a, b)' destructures a tuple: declare one property per binding for @GeneratedBinaryCoding", 3, 9),
                diagnostic("lazy property 'c' is not supported by @GeneratedBinaryCoding: make it a stored or computed property", 4, 5),
                diagnostic("weak property 'd' is not supported by @GeneratedBinaryCoding: it holds a class reference", 5, 5),
                diagnostic("property 'e' has a property wrapper (@Clamped), which Codable codes in its own way; @GeneratedBinaryCoding does not support it", 6, 5),
                diagnostic("'let f' has an initial value, so Codable writes it but never reads it back, which a positional format cannot skip; make it 'var' or drop the initial value (or leave it out of CodingKeys)", 7, 9),
                diagnostic("'g' has type '(Int, String)', which @GeneratedBinaryCoding cannot code: a tuple is not Codable", 8, 12),
                diagnostic("'h' has type '() -> Void', which @GeneratedBinaryCoding cannot code: a function is not Codable", 9, 12),
                diagnostic("'i' has type 'any Error', which @GeneratedBinaryCoding cannot code: an existential has no static type to generate code for", 10, 12),
                diagnostic("'j' has type 'any Codable', which @GeneratedBinaryCoding cannot code: an existential has no static type to generate code for", 11, 21),
                diagnostic("'k' has type 'Int!', which @GeneratedBinaryCoding cannot code: write it as an Optional (`?`)", 12, 12),
                diagnostic("'l' has type 'Int.Type', which @GeneratedBinaryCoding cannot code: a metatype is not Codable", 13, 12),
                diagnostic("'m' has type 'Codable & Hashable', which @GeneratedBinaryCoding cannot code: a protocol composition has no static type to generate code for", 14, 12),
            ])
    }

    @Test func refusesUnsupportedAssociatedValues() {
        expectExpansion("""
            @GeneratedBinaryCoding
            enum Event: Codable {
                case callback(handler: @Sendable () -> Void)
                case pair((Int, Int))
            }
            """, """
            enum Event: Codable {
                case callback(handler: @Sendable () -> Void)
                case pair((Int, Int))
            }
            """, diagnostics: [
                diagnostic("'callback.handler' has type '@Sendable () -> Void', which @GeneratedBinaryCoding cannot code: a function is not Codable", 3, 28),
                diagnostic("'pair._0' has type '(Int, Int)', which @GeneratedBinaryCoding cannot code: a tuple is not Codable", 4, 15),
            ])
    }

    @Test func refusesKeysItCannotFollow() {
        expectExpansion("""
            @GeneratedBinaryCoding
            enum Renamed: Codable {
                case a(Int)
                enum CodingKeys: String, CodingKey {
                    case a = "A"
                }
            }
            """, """
            enum Renamed: Codable {
                case a(Int)
                enum CodingKeys: String, CodingKey {
                    case a = "A"
                }
            }
            """, diagnostics: [
                diagnostic("@GeneratedBinaryCoding does not support an enum's own CodingKeys: case names are stored in the bytes, and it codes them as declared", 4, 5),
            ])
        expectExpansion("""
            @GeneratedBinaryCoding
            struct Dynamic: Codable {
                var a: Int
                struct CodingKeys: CodingKey {
                    var stringValue: String
                    var intValue: Int? { nil }
                    init(stringValue: String) { self.stringValue = stringValue }
                    init?(intValue: Int) { nil }
                }
            }
            """, """
            struct Dynamic: Codable {
                var a: Int
                struct CodingKeys: CodingKey {
                    var stringValue: String
                    var intValue: Int? { nil }
                    init(stringValue: String) { self.stringValue = stringValue }
                    init?(intValue: Int) { nil }
                }
            }
            """, diagnostics: [
                diagnostic("CodingKeys must be an enum for @GeneratedBinaryCoding: other key types make a keyed container with a different layout", 4, 5),
            ])
        expectExpansion("""
            @GeneratedBinaryCoding
            struct Misnamed: Codable {
                var a: Int
                enum CodingKeys: CodingKey {
                    case a, z
                }
            }
            """, """
            struct Misnamed: Codable {
                var a: Int
                enum CodingKeys: CodingKey {
                    case a, z
                }
            }
            """, diagnostics: [diagnostic("CodingKeys case 'z' names no stored property of this type", 5, 17)])
    }

    @Test func refusesConditionalMembers() {
        expectExpansion("""
            @GeneratedBinaryCoding
            struct Conditional: Codable {
                var a: Int
                #if DEBUG
                var trace: String
                #endif
            }
            """, """
            struct Conditional: Codable {
                var a: Int
                #if DEBUG
                var trace: String
                #endif
            }
            """, diagnostics: [
                diagnostic("@GeneratedBinaryCoding does not support properties or cases under #if: declare them unconditionally", 4, 5),
            ])
    }
}
