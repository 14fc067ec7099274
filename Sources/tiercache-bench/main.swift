#if canImport(Glibc)
import Glibc
#endif

// `tiercache-bench <suite>...` runs the named suites (all when none is named). Each suite prints
// lines ending in `ratio=<x> goal=<op><y>`; the exit status is non-zero when a goal is missed.
// Add a suite: write `enum XBench { static func run() async throws }` in its own file and list
// it here.
let suites: [(name: String, run: () async throws -> Void)] = [
    ("memory", MemoryBench.run),
    ("http", HTTPBench.run),
    ("serializers", SerializersBench.run),
    ("codecs", CodecsBench.run),
    ("disk", DiskBench.run),
]

let requested = Array(CommandLine.arguments.dropFirst())
let unknown = requested.filter { name in !suites.contains { $0.name == name } }
if !unknown.isEmpty {
    print("unknown suite(s): \(unknown.joined(separator: ", ")); known: \(suites.map(\.name).joined(separator: ", "))")
    exit(2)
}
for suite in suites where requested.isEmpty || requested.contains(suite.name) {
    try await suite.run()
}
if Report.failures > 0 {
    print("\(Report.failures) goal(s) missed")
    exit(1)
}
