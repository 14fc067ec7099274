import ArgumentParser
import Testing
import TierCache
import TierCacheS3
@testable import TierCacheCLI

/// Locations, keys, durations and times as the CLI reads and prints them.
@Suite("tiercache parsing")
struct ParsingTests {
    @Test("s3:// locations split into bucket and key as the aws CLI writes them")
    func locations() throws {
        guard case .s3(let bucket, let key) = try Location.parse("s3://b/a/b/c.v1", disk: nil) else {
            Issue.record("not an S3 location")
            return
        }
        #expect(bucket == "b")
        #expect(key == "a/b/c.v1")
        guard case .s3(_, let empty) = try Location.parse("s3://b", disk: nil) else { return }
        #expect(empty.isEmpty)
        for (text, expected) in [("s3://b/", ""), ("s3://b//a", "/a"), ("s3://b/a//b/./c/../d", "a//b/./c/../d")] {
            guard case .s3(_, let key) = try Location.parse(text, disk: nil) else { return }
            #expect(key == expected, "\(text)")
        }
        #expect(throws: CLIError.self) { try Location.parse("b/key", disk: nil) }
        #expect(throws: CLIError.self) { try Location.parse("s3:///key", disk: nil) }
        #expect(throws: CLIError.self) { try Location.parse("s3://b/k", disk: "/tmp/x") }
        guard case .disk(let root, let text) = try Location.parse("ns/name#v2", disk: "/tmp/x") else { return }
        #expect(root == "/tmp/x")
        #expect(text == "ns/name#v2")
    }

    @Test("an object key in S3Tier's layout gives back the key S3Tier stored there")
    func objectKeys() throws {
        for key in [try CacheKey(namespace: "reports", name: "daily", schemaVersion: 1),
                    try CacheKey(namespace: "reports", name: "eu/west 1 %ü", schemaVersion: 12),
                    try CacheKey(namespace: "a.b-c_d", name: "x.v2", schemaVersion: 3)] {
            for prefix in ["tiercache", "", "deep/er/prefix"] {
                let objectKey = S3Tier.objectKey(for: key, prefix: prefix)
                #expect(try KeyText.forObjectKey(objectKey) == key, "\(objectKey)")
            }
        }
        // Anything else is cli/<object key>, schema 1.
        #expect(try KeyText.forObjectKey("blobs/model.bin") == CacheKey(namespace: "cli", name: "blobs/model.bin"))
        #expect(try KeyText.forObjectKey("tiercache/ns/a%2.v1") == CacheKey(namespace: "cli", name: "tiercache/ns/a%2.v1"))
        #expect(try KeyText.parse("ns/a/b#v4") == CacheKey(namespace: "ns", name: "a/b", schemaVersion: 4))
        #expect(try KeyText.parse("ns/tag#1") == CacheKey(namespace: "ns", name: "tag#1"))
        #expect(throws: CLIError.self) { try KeyText.parse("../etc/passwd") }
    }

    @Test("put and warm parse their shared encoding options with one rule set, each with its own default serializer")
    func wrapOptions() throws {
        let put = try PutCommand.parse(["--disk", "/tmp/x", "a/b", "f", "--codec", "LZ4", "--level", "9", "--ttl", "15m"])
        let putOptions = try put.wrap.wrapOptions(defaultSerializer: .rawBytes)
        #expect(putOptions.serializer == .rawBytes)
        #expect(putOptions.codec == .lz4)
        #expect(putOptions.level == 9)
        #expect(putOptions.ttl == .seconds(900))
        let warm = try WarmCommand.parse(["--disk", "/tmp/x", "ns", "dir", "--stale-for", "1h", "--serializer", "binary"])
        let warmOptions = try warm.wrap.wrapOptions(defaultSerializer: .json)
        #expect(warmOptions.serializer == .binary)
        #expect(warmOptions.codec == .zstd)
        #expect(warmOptions.staleFor == .seconds(3600))
        #expect(try WarmCommand.parse(["--disk", "/tmp/x", "ns", "dir"]).wrap.wrapOptions(defaultSerializer: .json).serializer == .json)
        // A dictionary is a zstd feature, for warm as for put; bad values are usage errors.
        for command in [["--codec", "lz4", "--dict", "d.zdict"], ["--codec", "brotli"], ["--ttl", "soon"], ["--serializer", "7"]] {
            let parsed = try WarmCommand.parse(["--disk", "/tmp/x", "ns", "dir"] + command)
            #expect(throws: CLIError.self, "\(command)") { try parsed.wrap.wrapOptions(defaultSerializer: .json) }
        }
    }

    @Test("durations")
    func durations() {
        #expect(parseDuration("90s") == .seconds(90))
        #expect(parseDuration("1h30m") == .seconds(5400))
        #expect(parseDuration("2d") == .seconds(172_800))
        #expect(parseDuration("1w") == .seconds(604_800))
        #expect(parseDuration("250ms") == .milliseconds(250))
        #expect(parseDuration("0") == .zero)
        for bad in ["", "soon", "5x", "m5", "-5", "1.5h", "h"] {
            #expect(parseDuration(bad) == nil, "'\(bad)'")
        }
    }

    @Test("times print as UTC ISO 8601 with a relative span")
    func times() {
        #expect(formatISO(WallTime(millisecondsSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(formatISO(WallTime(millisecondsSince1970: 1_795_758_975_841)) == "2026-11-27T05:56:15.841Z")
        #expect(formatISO(WallTime(millisecondsSince1970: -1)) == "1969-12-31T23:59:59.999Z")
        let now = WallTime(millisecondsSince1970: 1_000_000_000)
        #expect(formatHuman(now.advanced(by: .seconds(5400)), now: now).hasSuffix("(in 1h 30m)"))
        #expect(formatHuman(now.advanced(by: .seconds(-90_000)), now: now).hasSuffix("(1d 1h ago)"))
        #expect(formatSpan(milliseconds: 350) == "350ms")
        #expect(fixed(2.005, digits: 1) == "2.0")
        #expect(fixed(16.929, digits: 2) == "16.93")
        #expect(formatBytes(1536) == "1.5 KiB")
    }
}
