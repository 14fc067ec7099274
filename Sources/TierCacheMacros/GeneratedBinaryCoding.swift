@_exported public import TierCache

/// Generates the binary serializer's coding for a struct or an enum at compile time, so that
/// ``BinarySerializer`` encodes and decodes it without `Codable`'s containers, existentials and
/// runtime type checks, several times faster (docs/generated-coding.md).
///
/// The generated code writes exactly the bytes that the type's synthesized `Codable` conformance
/// writes through ``BinarySerializer`` (docs/binary-format.md): fields in declaration order (or in
/// the order of the type's own `CodingKeys`), enums by case name, raw-value enums by raw value. A
/// value written by either path is read by the other, and the schema changes the format survives
/// (an optional field appended, fields removed from the end) are survived the same way.
///
/// ```swift
/// import TierCacheMacros
///
/// @GeneratedBinaryCoding
/// struct Report: Codable {
///     var title: String
///     var rows: [Row]
///     var footnote: String?
/// }
///
/// @GeneratedBinaryCoding
/// enum Row: Codable {
///     case text(String)
///     case figure(name: String, value: Double)
/// }
/// ```
///
/// Every stored property (every associated value) must be of a type that has generated coding
/// too: another `@GeneratedBinaryCoding` type, a standard scalar, `String`, `Date`, `Data`,
/// `UUID`, `URL`, `Decimal`, or an `Optional`, `Array`, `Set` or `Dictionary` of those. A member
/// the macro cannot code (a tuple, a closure, an existential, a property wrapper, a `let` with an
/// initial value) is a compile-time error naming the member; so is a field whose type lacks
/// generated coding, reported by the compiler at the line of the expansion that codes it.
@attached(extension, conformances: GeneratedBinaryCoding, names: named(encodeBinary(to:)), named(init(binaryFrom:)))
public macro GeneratedBinaryCoding() = #externalMacro(module: "TierCacheMacrosPlugin", type: "GeneratedBinaryCodingMacro")
