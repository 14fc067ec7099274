import TierCache

// @GeneratedBinaryCoding as the TierCacheMacros product declares it, but resolved to a plug-in
// that scripts/fuzz.sh builds with the ordinary flags and loads with -load-plugin-executable:
// SwiftPM passes -Xswiftc flags to host tools too, and the macro plug-in linked with
// -sanitize=fuzzer,address does not link (gold fails). Depending on the product would build it
// that way.
@attached(extension, conformances: GeneratedBinaryCoding, names: named(encodeBinary(to:)), named(init(binaryFrom:)))
macro GeneratedBinaryCoding() = #externalMacro(module: "TierCacheMacrosPlugin", type: "GeneratedBinaryCodingMacro")
