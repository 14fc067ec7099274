import SwiftCompilerPlugin
import SwiftSyntaxMacros

/// The compiler plug-in behind the `TierCacheMacros` product.
@main
struct TierCacheMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [GeneratedBinaryCodingMacro.self]
}
