import Foundation
import Testing
import TierCache
import TierCacheTesting

// The README's usage example, verbatim between the markers: this file keeps it compiling, and
// the test below keeps the README and this copy identical.
// README-EXAMPLE-BEGIN
struct ReferenceData: Codable, Sendable {
    var regions: [String: [String]]
}

func buildReferenceData() async throws -> ReferenceData {
    // The expensive part of a cold start: parse, derive, compile.
    ReferenceData(regions: ["aws": ["us-east-1", "eu-west-1"]])
}

func coldStart(lowerTier: any CacheTier) async throws -> ReferenceData {
    let cache = Cache<ReferenceData>(
        configuration: .init(defaultTTL: .seconds(15 * 60), serializer: .json),
        chain: TierChain([.remote(lowerTier)])  // e.g. S3Tier or DiskTier
    )
    let key = try CacheKey(namespace: "my-function", name: "reference-data", schemaVersion: 1)
    let result = try await cache.getOrLoad(key) { try await buildReferenceData() }
    print("reference data from \(result.source)")  // loader, tier(s3) or memory
    await cache.flush(deadline: .milliseconds(300))  // before the environment freezes
    return result.value
}
// README-EXAMPLE-END

@Test func readmeExampleRunsAndMatchesTheReadme() async throws {
    let tier = DictionaryTier(name: "lower")
    let first = try await coldStart(lowerTier: tier)
    let second = try await coldStart(lowerTier: tier)
    #expect(first.regions == second.regions)
    #expect(tier.count == 1)

    func between(_ text: String, _ begin: String, _ end: String) -> String? {
        guard let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex) else { return nil }
        return String(text[start.upperBound..<stop.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let root = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
    let readme = try String(contentsOfFile: "/" + root + "/README.md", encoding: .utf8)
    let source = try String(contentsOfFile: #filePath, encoding: .utf8)
    let inReadme = try #require(between(readme, "```swift\n", "```"))
    let inSource = try #require(between(source, "// README-EXAMPLE-BEGIN\n", "// README-EXAMPLE-END"))
    #expect(inReadme == inSource)
}
