import SwiftDiagnostics
public import SwiftSyntax
import SwiftSyntaxBuilder
public import SwiftSyntaxMacros

/// `@GeneratedBinaryCoding`: an extension conforming the type to `GeneratedBinaryCoding`, whose
/// `encodeBinary(to:)` and `init(binaryFrom:)` write and read what the type's synthesized
/// `Codable` conformance writes and reads through `BinarySerializer` (docs/binary-format.md):
///
/// - a struct: its byte length, then its coded fields in order, each through
///   `decodeBinaryField` (required, or `decodeIfPresent` semantics for optionals); the fields are
///   the stored properties in declaration order, or the cases of its own `CodingKeys` enum;
/// - an enum with a raw type: its raw value;
/// - any other enum: a keyed container of one entry, the case name, holding the positional
///   container of the associated values.
///
/// The macro sees syntax only, so it refuses what it cannot match with certainty (a diagnostic
/// naming the member and why) and leaves type checking to the compiler: a field whose type has no
/// generated coding fails to compile at the line of the expansion that codes it.
public struct GeneratedBinaryCodingMacro: ExtensionMacro {
    public static func expansion(
        of node: AttributeSyntax,
        attachedTo declaration: some DeclGroupSyntax,
        providingExtensionsOf type: some TypeSyntaxProtocol,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [ExtensionDeclSyntax] {
        let diagnostics = Diagnostics(context: context)
        let body: String
        let genericParameters: GenericParameterClauseSyntax?
        if let structDecl = declaration.as(StructDeclSyntax.self) {
            genericParameters = structDecl.genericParameterClause
            checkNoOwnCoding(declaration, diagnostics)
            let fields = structFields(structDecl, diagnostics)
            body = structBody(fields, access: access(of: declaration))
        } else if let enumDecl = declaration.as(EnumDeclSyntax.self) {
            genericParameters = enumDecl.genericParameterClause
            checkNoOwnCoding(declaration, diagnostics)
            body = enumBody(enumDecl, access: access(of: declaration), diagnostics)
        } else {
            diagnostics.error(node, .notStructOrEnum(kind: kindName(declaration)))
            return []
        }
        guard !diagnostics.failed, !protocols.isEmpty else { return [] }

        var clause = ""
        if let genericParameters {
            let requirements = genericParameters.parameters.map {
                "\($0.name.trimmedDescription): TierCache.GeneratedBinaryCoding"
            }
            if !requirements.isEmpty { clause = " where " + requirements.joined(separator: ", ") }
        }
        let source: DeclSyntax = """
            extension \(type.trimmed): TierCache.GeneratedBinaryCoding\(raw: clause) {
            \(raw: body)
            }
            """
        guard let extensionDecl = source.as(ExtensionDeclSyntax.self) else { return [] }
        return [extensionDecl]
    }

    // MARK: Structs

    /// A coded field: the property's name as written (backticks kept) and as a key.
    struct Field {
        let identifier: String
        let name: String
    }

    static func structFields(_ decl: StructDeclSyntax, _ diagnostics: Diagnostics) -> [Field] {
        var stored: [(field: Field, binding: PatternBindingSyntax, variable: VariableDeclSyntax)] = []
        for member in decl.memberBlock.members {
            guard let variable = member.decl.as(VariableDeclSyntax.self), !isStatic(variable.modifiers) else { continue }
            for binding in variable.bindings where isStored(binding) {
                guard let pattern = binding.pattern.as(IdentifierPatternSyntax.self) else {
                    diagnostics.error(binding.pattern, .tuplePattern(binding.pattern.trimmedDescription))
                    continue
                }
                let identifier = pattern.identifier.trimmedDescription
                stored.append((Field(identifier: identifier, name: unescaped(identifier)), binding, variable))
            }
        }

        // The type's own CodingKeys decide which properties are coded and in which order.
        var coded = stored
        if let keys = codingKeys(in: decl.memberBlock, diagnostics) {
            coded = []
            for key in keys {
                guard let property = stored.first(where: { $0.field.name == key.name }) else {
                    diagnostics.error(key.node, .unknownCodingKey(key.name))
                    continue
                }
                coded.append(property)
            }
        }

        for (field, binding, variable) in coded {
            checkProperty(field.name, binding: binding, variable: variable, diagnostics)
        }
        return coded.map(\.field)
    }

    static func structBody(_ fields: [Field], access: String) -> String {
        var encode = ["let header = writer.beginStruct()"]
        var decode = ["let parentLimit = try reader.beginStruct()"]
        for field in fields {
            encode.append("writer.encode(self.\(field.identifier))")
            decode.append("self.\(field.identifier) = try reader.decodeField(named: \(literal(field.name)))")
        }
        encode.append("writer.endStruct(header)")
        decode.append("reader.endStruct(parentLimit)")
        return members(access: access, encode: encode, decode: decode)
    }

    static func members(access: String, encode: [String], decode: [String]) -> String {
        """
            \(access)func encodeBinary(to writer: inout TierCache.BinarySerializer.Writer) {
                \(encode.joined(separator: "\n        "))
            }

            \(access)init(binaryFrom reader: inout TierCache.BinarySerializer.Reader) throws(TierCache.TierCacheError) {
                \(decode.joined(separator: "\n        "))
            }
        """
    }

    /// Whether a binding stores a value: no accessors, or only observers.
    static func isStored(_ binding: PatternBindingSyntax) -> Bool {
        guard let accessorBlock = binding.accessorBlock else { return true }
        switch accessorBlock.accessors {
        case .getter:
            return false
        case .accessors(let accessors):
            return accessors.allSatisfy {
                [.keyword(.willSet), .keyword(.didSet)].contains($0.accessorSpecifier.tokenKind)
            }
        }
    }

    static func checkProperty(_ name: String, binding: PatternBindingSyntax, variable: VariableDeclSyntax,
                              _ diagnostics: Diagnostics) {
        for modifier in variable.modifiers {
            switch modifier.name.tokenKind {
            case .keyword(.lazy):
                diagnostics.error(modifier, .lazyProperty(name))
            case .keyword(.weak), .keyword(.unowned):
                diagnostics.error(modifier, .referenceProperty(name, modifier.name.text))
            default:
                break
            }
        }
        for attribute in variable.attributes {
            guard let attribute = attribute.as(AttributeSyntax.self) else { continue }
            let attributeName = attribute.attributeName.trimmedDescription
            // Built-in attributes are lower case (@available); property wrappers are types.
            if let first = attributeName.first, first.isUppercase {
                diagnostics.error(attribute, .propertyWrapper(name, attributeName))
            }
        }
        if variable.bindingSpecifier.tokenKind == .keyword(.let), binding.initializer != nil {
            diagnostics.error(binding, .letWithInitialValue(name))
        }
        if let type = binding.typeAnnotation?.type ?? typeOfLaterBinding(binding, in: variable) {
            checkType(type, member: name, diagnostics)
        }
    }

    /// `var a, b: Int`: `a` takes the type of the next binding that has one.
    static func typeOfLaterBinding(_ binding: PatternBindingSyntax, in variable: VariableDeclSyntax) -> TypeSyntax? {
        guard binding.initializer == nil else { return nil }
        var seen = false
        for other in variable.bindings {
            if other.id == binding.id { seen = true; continue }
            if seen, let type = other.typeAnnotation?.type { return type }
        }
        return nil
    }

    /// Types with no static shape to generate code for, anywhere inside a member's type.
    static func checkType(_ type: TypeSyntax, member: String, _ diagnostics: Diagnostics) {
        if let tuple = type.as(TupleTypeSyntax.self) {
            // `(Int)` is only parentheses.
            if tuple.elements.count == 1, let only = tuple.elements.first, only.firstName == nil {
                checkType(only.type, member: member, diagnostics)
            } else {
                diagnostics.error(type, .unsupportedType(member, type.trimmedDescription, "a tuple is not Codable"))
            }
            return
        }
        let reason: String? = if type.is(FunctionTypeSyntax.self) {
            "a function is not Codable"
        } else if let someOrAny = type.as(SomeOrAnyTypeSyntax.self) {
            someOrAny.someOrAnySpecifier.tokenKind == .keyword(.any)
                ? "an existential has no static type to generate code for"
                : "an opaque type has no static type to generate code for"
        } else if type.is(CompositionTypeSyntax.self) {
            "a protocol composition has no static type to generate code for"
        } else if type.is(MetatypeTypeSyntax.self) {
            "a metatype is not Codable"
        } else if type.is(ImplicitlyUnwrappedOptionalTypeSyntax.self) {
            "write it as an Optional (`?`)"
        } else if let attributed = type.as(AttributedTypeSyntax.self) {
            attributed.baseType.is(FunctionTypeSyntax.self) ? "a function is not Codable" : nil
        } else {
            nil
        }
        if let reason {
            diagnostics.error(type, .unsupportedType(member, type.trimmedDescription, reason))
            return
        }
        for child in type.children(viewMode: .sourceAccurate) {
            for nested in typesDirectlyInside(child) {
                checkType(nested, member: member, diagnostics)
            }
        }
    }

    /// The types one level inside a syntax node (generic arguments, optional and collection
    /// elements), without descending into the types themselves.
    static func typesDirectlyInside(_ node: Syntax) -> [TypeSyntax] {
        if let type = node.as(TypeSyntax.self) { return [type] }
        return node.children(viewMode: .sourceAccurate).flatMap { typesDirectlyInside($0) }
    }

    // MARK: Enums

    struct Case {
        let identifier: String
        let name: String
        /// Labels as written (nil when unlabeled) and the names the keys would have.
        let values: [(label: String?, key: String)]
    }

    static let rawValueTypes: Set<String> = [
        "String", "Int", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64",
        "Double", "Float",
    ]

    static func enumBody(_ decl: EnumDeclSyntax, access: String, _ diagnostics: Diagnostics) -> String {
        if let keys = decl.memberBlock.members.first(where: { isCodingKeys($0.decl) }) {
            diagnostics.error(keys.decl, .enumCodingKeys)
        }
        var cases: [Case] = []
        var hasRawValues = false
        for member in decl.memberBlock.members {
            guard let caseDecl = member.decl.as(EnumCaseDeclSyntax.self) else { continue }
            for element in caseDecl.elements {
                let identifier = element.name.trimmedDescription
                let name = unescaped(identifier)
                if element.rawValue != nil { hasRawValues = true }
                var values: [(String?, String)] = []
                for (index, parameter) in (element.parameterClause?.parameters ?? []).enumerated() {
                    let label = parameter.firstName.map { $0.tokenKind == .wildcard ? nil : $0.trimmedDescription } ?? nil
                    let key = label.map(unescaped) ?? "_\(index)"
                    checkType(parameter.type, member: "\(name).\(key)", diagnostics)
                    values.append((label, key))
                }
                cases.append(Case(identifier: identifier, name: name, values: values))
            }
        }
        let rawType = decl.inheritanceClause?.inheritedTypes.first.map { $0.type.trimmedDescription }
        let isRawValueEnum = hasRawValues
            || rawType.map { rawValueTypes.contains($0.hasPrefix("Swift.") ? String($0.dropFirst(6)) : $0) } ?? false
        if isRawValueEnum {
            return members(
                access: access,
                encode: ["writer.encode(self.rawValue)"],
                decode: [
                    "try reader.descend()",
                    "let rawValue = try RawValue(binaryFrom: &reader)",
                    "guard let value = Self(rawValue: rawValue) else {",
                    "    throw reader.invalidRawValue(rawValue, of: Self.self)",
                    "}",
                    "reader.ascend()",
                    "self = value",
                ])
        }
        guard !cases.isEmpty else {
            return members(access: access, encode: ["switch self {", "}"],
                           decode: ["throw reader.noCases(Self.self)"])
        }

        var encode = ["switch self {"]
        for item in cases {
            let bindings = item.values.indices.map { "let value\($0)" }.joined(separator: ", ")
            encode.append("case .\(item.identifier)\(item.values.isEmpty ? "" : "(\(bindings))"):")
            encode.append("    let headers = writer.beginEnumCase(\(literal(item.name)))")
            for index in item.values.indices {
                encode.append("    writer.encode(value\(index))")
            }
            encode.append("    writer.endEnumCase(headers)")
        }
        encode.append("}")

        var decode = ["let (index, limits) = try reader.beginEnumCase(named: { position in", "    switch position {"]
        for (index, item) in cases.enumerated() {
            decode += ["    case \(index):", "        \(literal(item.name))"]
        }
        decode += ["    default:", "        nil", "    }", "})", "switch index {"]
        for (index, item) in cases.enumerated() {
            decode.append(index == cases.count - 1 ? "default:" : "case \(index):")
            if item.values.isEmpty {
                decode.append("    self = .\(item.identifier)")
            } else {
                let arguments = item.values.map { value in
                    let read = "try reader.decodeField(named: \(literal(value.key)))"
                    return value.label.map { "\($0): \(read)" } ?? read
                }
                decode.append("    self = .\(item.identifier)(\(arguments.joined(separator: ", ")))")
            }
        }
        decode += ["}", "reader.endEnumCase(limits)"]
        return members(access: access, encode: encode, decode: decode)
    }

    // MARK: Shared checks

    /// A hand-written `encode(to:)` or `init(from:)` writes bytes the macro cannot know; stored
    /// properties or cases under `#if` are coded or not depending on the build.
    static func checkNoOwnCoding(_ declaration: some DeclGroupSyntax, _ diagnostics: Diagnostics) {
        for member in declaration.memberBlock.members {
            if let ifConfig = member.decl.as(IfConfigDeclSyntax.self),
               ifConfig.clauses.contains(where: { clause in
                   guard case .decls(let decls) = clause.elements else { return false }
                   return decls.contains { $0.decl.is(VariableDeclSyntax.self) || $0.decl.is(EnumCaseDeclSyntax.self) }
               }) {
                diagnostics.error(ifConfig, .conditionalMembers)
            }
            if let function = member.decl.as(FunctionDeclSyntax.self), function.name.text == "encode",
               function.signature.parameterClause.parameters.count == 1,
               function.signature.parameterClause.parameters.first?.firstName.text == "to" {
                diagnostics.error(function.name, .ownCoding("encode(to:)"))
            }
            if let initializer = member.decl.as(InitializerDeclSyntax.self),
               initializer.signature.parameterClause.parameters.count == 1,
               initializer.signature.parameterClause.parameters.first?.firstName.text == "from" {
                diagnostics.error(initializer.initKeyword, .ownCoding("init(from:)"))
            }
        }
    }

    static func isCodingKeys(_ decl: DeclSyntax) -> Bool {
        if let nested = decl.as(EnumDeclSyntax.self) { return nested.name.text == "CodingKeys" }
        if let nested = decl.as(StructDeclSyntax.self) { return nested.name.text == "CodingKeys" }
        if let alias = decl.as(TypeAliasDeclSyntax.self) { return alias.name.text == "CodingKeys" }
        return false
    }

    /// The cases of a struct's own `CodingKeys` enum, in order; nil when it has none.
    static func codingKeys(in members: MemberBlockSyntax, _ diagnostics: Diagnostics) -> [(name: String, node: Syntax)]? {
        guard let keysDecl = members.members.first(where: { isCodingKeys($0.decl) })?.decl else { return nil }
        guard let keys = keysDecl.as(EnumDeclSyntax.self) else {
            // A struct or alias of keys makes a keyed (named) container: not this layout.
            diagnostics.error(keysDecl, .codingKeysNotEnum)
            return nil
        }
        var names: [(String, Syntax)] = []
        for member in keys.memberBlock.members {
            guard let caseDecl = member.decl.as(EnumCaseDeclSyntax.self) else { continue }
            for element in caseDecl.elements {
                names.append((unescaped(element.name.trimmedDescription), Syntax(element)))
            }
        }
        return names
    }

    static func isStatic(_ modifiers: DeclModifierListSyntax) -> Bool {
        modifiers.contains { [.keyword(.static), .keyword(.class)].contains($0.name.tokenKind) }
    }

    /// The access level the generated members need: that of the type, when it is visible outside
    /// its module.
    static func access(of declaration: some DeclGroupSyntax) -> String {
        for modifier in declaration.modifiers {
            switch modifier.name.tokenKind {
            case .keyword(.public), .keyword(.open): return "public "
            case .keyword(.package): return "package "
            default: continue
            }
        }
        return ""
    }

    static func kindName(_ declaration: some DeclGroupSyntax) -> String {
        if declaration.is(ClassDeclSyntax.self) { return "a class" }
        if declaration.is(ActorDeclSyntax.self) { return "an actor" }
        if declaration.is(ProtocolDeclSyntax.self) { return "a protocol" }
        if declaration.is(ExtensionDeclSyntax.self) { return "an extension" }
        return "this declaration"
    }

    static func unescaped(_ identifier: String) -> String {
        identifier.hasPrefix("`") && identifier.hasSuffix("`") && identifier.count > 1
            ? String(identifier.dropFirst().dropLast()) : identifier
    }

    /// A Swift string literal for a name (identifiers need no escaping beyond backslash and quote).
    static func literal(_ text: String) -> String {
        var escaped = "\""
        for character in text {
            if character == "\\" || character == "\"" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped + "\""
    }
}

// MARK: Diagnostics

/// Collects the macro's errors; the expansion is empty once any was reported.
final class Diagnostics {
    let context: any MacroExpansionContext
    private(set) var failed = false

    init(context: some MacroExpansionContext) {
        self.context = context
    }

    func error(_ node: some SyntaxProtocol, _ message: GeneratedBinaryCodingDiagnostic) {
        failed = true
        context.diagnose(Diagnostic(node: Syntax(node), message: message))
    }
}

enum GeneratedBinaryCodingDiagnostic: DiagnosticMessage {
    case notStructOrEnum(kind: String)
    case ownCoding(String)
    case tuplePattern(String)
    case lazyProperty(String)
    case referenceProperty(String, String)
    case propertyWrapper(String, String)
    case letWithInitialValue(String)
    case unsupportedType(String, String, String)
    case enumCodingKeys
    case codingKeysNotEnum
    case unknownCodingKey(String)
    case conditionalMembers

    var message: String {
        switch self {
        case .notStructOrEnum(let kind):
            "@GeneratedBinaryCoding applies to a struct or an enum, not \(kind)"
        case .ownCoding(let function):
            "@GeneratedBinaryCoding cannot be used with a hand-written \(function): the generated code writes what synthesized Codable writes, which would no longer be what this type writes; remove one of them"
        case .tuplePattern(let pattern):
            "stored property '\(pattern)' destructures a tuple: declare one property per binding for @GeneratedBinaryCoding"
        case .lazyProperty(let name):
            "lazy property '\(name)' is not supported by @GeneratedBinaryCoding: make it a stored or computed property"
        case .referenceProperty(let name, let kind):
            "\(kind) property '\(name)' is not supported by @GeneratedBinaryCoding: it holds a class reference"
        case .propertyWrapper(let name, let wrapper):
            "property '\(name)' has a property wrapper (@\(wrapper)), which Codable codes in its own way; @GeneratedBinaryCoding does not support it"
        case .letWithInitialValue(let name):
            "'let \(name)' has an initial value, so Codable writes it but never reads it back, which a positional format cannot skip; make it 'var' or drop the initial value (or leave it out of CodingKeys)"
        case .unsupportedType(let member, let type, let reason):
            "'\(member)' has type '\(type)', which @GeneratedBinaryCoding cannot code: \(reason)"
        case .enumCodingKeys:
            "@GeneratedBinaryCoding does not support an enum's own CodingKeys: case names are stored in the bytes, and it codes them as declared"
        case .codingKeysNotEnum:
            "CodingKeys must be an enum for @GeneratedBinaryCoding: other key types make a keyed container with a different layout"
        case .unknownCodingKey(let name):
            "CodingKeys case '\(name)' names no stored property of this type"
        case .conditionalMembers:
            "@GeneratedBinaryCoding does not support properties or cases under #if: declare them unconditionally"
        }
    }

    var diagnosticID: MessageID {
        let id = switch self {
        case .notStructOrEnum: "notStructOrEnum"
        case .ownCoding: "ownCoding"
        case .tuplePattern: "tuplePattern"
        case .lazyProperty: "lazyProperty"
        case .referenceProperty: "referenceProperty"
        case .propertyWrapper: "propertyWrapper"
        case .letWithInitialValue: "letWithInitialValue"
        case .unsupportedType: "unsupportedType"
        case .enumCodingKeys: "enumCodingKeys"
        case .codingKeysNotEnum: "codingKeysNotEnum"
        case .unknownCodingKey: "unknownCodingKey"
        case .conditionalMembers: "conditionalMembers"
        }
        return MessageID(domain: "TierCacheMacros", id: id)
    }

    var severity: DiagnosticSeverity { .error }
}
