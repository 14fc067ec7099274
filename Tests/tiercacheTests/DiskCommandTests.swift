import Foundation
import Testing
import TierCache
import TierCacheCLI
import TierCacheDisk
import TierCacheZstd

/// The commands against a disk-tier folder, in-process.
@Suite("tiercache against a disk folder")
struct DiskCommandTests {
    @Test("put then get gives the file back byte for byte, with each codec", arguments: ["zstd", "lz4", "none"])
    func roundTrip(codec: String) async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = sampleJSON()
        try writeFile(dir + "/in.json", input)
        let put = await run(["put", "--disk", dir + "/cache", "reports/daily#v2", dir + "/in.json", "--codec", codec, "--json"])
        #expect(put.code == 0, "\(put.stderr)")
        let summary = try put.json()
        #expect(summary["key"] as? String == "reports/daily#v2")
        #expect(summary["fileBytes"] as? Int == input.count)
        #expect(summary["codec"] as? String == (codec == "none" ? "identity" : codec))
        if codec != "none" { #expect((summary["storedPayloadBytes"] as? Int ?? .max) < input.count) }

        let get = await run(["get", "--disk", dir + "/cache", "reports/daily#v2", "-o", dir + "/out.json"])
        #expect(get.code == 0, "\(get.stderr)")
        #expect(try readFile(dir + "/out.json") == input)

        let toStdout = await run(["get", "--disk", dir + "/cache", "reports/daily#v2"])
        #expect(toStdout.code == 0)
        #expect(toStdout.stdout == input)
    }

    @Test("an entry put by the CLI is read by the library's disk tier under the same key")
    func libraryReadsCLIEntries() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = sampleJSON()
        try writeFile(dir + "/in.json", input)
        let put = await run(["put", "--disk", dir, "reports/daily#v3", dir + "/in.json", "--ttl", "90m", "--tag", "team=ops"])
        #expect(put.code == 0, "\(put.stderr)")
        let tier = DiskTier(configuration: .init(root: dir))
        let entry = try #require(try await tier.get(CacheKey(namespace: "reports", name: "daily", schemaVersion: 3)))
        #expect(entry.serializerID.rawValue == 3)
        #expect(entry.codecID == .zstd)
        #expect(entry.tags == ["team": "ops"])
        #expect(entry.createdAt.duration(to: entry.freshUntil) == .seconds(90 * 60))
        let payload = try ZstdCodec.zstd.decompress(entry.payload, uncompressedLength: Int(entry.uncompressedLength), dictionaryID: 0)
        #expect(payload == input)
    }

    @Test("get and inspect refuse bytes that are not an envelope, with exit code 4")
    func notAnEnvelope() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try CacheKey(namespace: "reports", name: "junk")
        let path = "\(dir)/ns/reports/\(key.fingerprint.prefix(2))/\(key.fingerprint)"
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try writeFile(path, Array("{\"not\": \"an envelope\", \"but\": \"long enough to be read as one: more than 68 bytes\"}".utf8))

        let get = await run(["get", "--disk", dir, "reports/junk", "-o", dir + "/out"])
        #expect(get.code == ExitStatus.invalidEnvelope)
        #expect(get.stderr.contains("not a valid TierCache envelope"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))

        let inspect = await run(["inspect", path])
        #expect(inspect.code == ExitStatus.invalidEnvelope)
        #expect(inspect.stderr.contains("wrong magic"))

        let json = await run(["inspect", path, "--json"])
        #expect(json.code == ExitStatus.invalidEnvelope)
        let report = try JSONSerialization.jsonObject(with: Data(json.stderr.utf8)) as? [String: Any]
        let error = try #require(report?["error"] as? [String: Any])
        #expect(error["kind"] as? String == "invalidEnvelope")
        #expect(error["exitCode"] as? Int == Int(ExitStatus.invalidEnvelope))
    }

    @Test("inspect shows every header field, and a flipped byte as a checksum mismatch")
    func inspectFields() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = sampleJSON()
        try writeFile(dir + "/in.json", input)
        #expect(await run(["put", "--disk", dir, "ref/data#v7", dir + "/in.json", "--ttl", "2h", "--stale-for", "1h",
                           "--codec", "lz4", "--tag", "a=1"]).code == 0)
        let key = try CacheKey(namespace: "ref", name: "data", schemaVersion: 7)
        let path = "\(dir)/ns/ref/\(key.fingerprint.prefix(2))/\(key.fingerprint)"
        let envelope = try readFile(path)

        let report = await run(["inspect", path, "--json"])
        #expect(report.code == 0, "\(report.stderr)")
        let fields = try report.json()
        #expect(fields["key"] as? String == "ref/data#v7")
        #expect(fields["namespace"] as? String == "ref")
        #expect(fields["schemaVersion"] as? Int == 7)
        #expect(fields["fingerprint"] as? String == key.fingerprint)
        #expect(fields["serializer"] as? String == "raw bytes")
        #expect(fields["codec"] as? String == "lz4")
        #expect(fields["uncompressedBytes"] as? Int == input.count)
        #expect(fields["envelopeBytes"] as? Int == envelope.count)
        #expect(fields["checksum"] as? String == "ok")
        #expect(fields["payload"] as? String == "ok")
        #expect(fields["state"] as? String == "fresh")
        #expect(fields["tags"] as? [String: String] == ["a": "1"])
        let created = try #require((fields["createdAt"] as? [String: Any])?["millisecondsSince1970"] as? Int64)
        let fresh = try #require((fields["freshUntil"] as? [String: Any])?["millisecondsSince1970"] as? Int64)
        let stale = try #require((fields["staleUntil"] as? [String: Any])?["millisecondsSince1970"] as? Int64)
        #expect(fresh - created == 2 * 3_600_000)
        #expect(stale - fresh == 3_600_000)
        let ratio = try #require(fields["ratio"] as? Double)
        #expect(abs(ratio - Double(input.count) / Double(fields["payloadBytes"] as? Int ?? 1)) < 1e-9)

        let text = await run(["inspect", "-"], stdin: envelope)
        #expect(text.code == 0)
        for label in ["key:", "serializer:", "codec:", "created:", "fresh until:", "stale until:", "checksum:", "ratio"] {
            #expect(text.text.contains(label), "inspect prints \(label)")
        }
        #expect(text.text.contains("(in 1h 59m)") || text.text.contains("(in 2h 0m)"))

        var flipped = envelope
        flipped[envelope.count / 2] ^= 0x40
        let bad = await run(["inspect", "-", "--json"], stdin: flipped)
        #expect(bad.code == ExitStatus.invalidEnvelope)
        let badFields = try bad.json()
        #expect(badFields["checksum"] as? String == "mismatch")
        #expect(badFields["key"] as? String == "ref/data#v7")
    }

    @Test("rm removes an entry; a second rm and a get of it exit 3")
    func remove() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/in", Array("hello".utf8))
        #expect(await run(["put", "--disk", dir, "a/b", dir + "/in"]).code == 0)
        #expect(await run(["rm", "--disk", dir, "a/b"]).code == 0)
        #expect(await run(["rm", "--disk", dir, "a/b"]).code == ExitStatus.notFound)
        #expect(await run(["get", "--disk", dir, "a/b"]).code == ExitStatus.notFound)
        #expect(await run(["put", "--disk", dir, "a/b", dir + "/missing"]).code == ExitStatus.notFound)
    }

    @Test("ls and stats count entries, bytes, ages and the expired share")
    func listAndStats() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/in", sampleJSON())
        #expect(await run(["put", "--disk", dir, "ns1/one", dir + "/in"]).code == 0)
        #expect(await run(["put", "--disk", dir, "ns1/two", dir + "/in", "--ttl", "1h"]).code == 0)
        #expect(await run(["put", "--disk", dir, "ns2/gone", dir + "/in", "--ttl", "0s"]).code == 0)

        let all = await run(["ls", "--disk", dir, "--json"])
        #expect(all.code == 0)
        let items = try all.jsonArray()
        #expect(items.compactMap { $0["name"] as? String } == ["ns1/one#v1", "ns1/two#v1", "ns2/gone#v1"])

        let prefixed = try await run(["ls", "--disk", dir, "ns1/", "--json"]).jsonArray()
        #expect(prefixed.count == 2)

        let stats = await run(["stats", "--disk", dir, "--json"])
        #expect(stats.code == 0)
        let report = try stats.json()
        #expect(report["entries"] as? Int == 3)
        #expect(report["fresh"] as? Int == 2)
        #expect(report["expired"] as? Int == 1)
        #expect(abs((report["expiredShare"] as? Double ?? -1) - 1.0 / 3.0) < 1e-9)
        #expect(report["bytes"] as? Int == items.reduce(0) { $0 + ($1["size"] as? Int ?? 0) })
        let histogram = try #require(report["ageHistogram"] as? [[String: Any]])
        #expect(histogram.first?["label"] as? String == "< 1m")
        #expect(histogram.first?["entries"] as? Int == 3)

        let text = await run(["stats", "--disk", dir])
        #expect(text.text.contains("3 entries"))
        #expect(text.text.contains("expired share 33.3%"))
    }

    @Test("a folder others can write into is refused with the reason, exit 5, and nothing is written")
    func refusedRoot() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/in", Array("hello".utf8))
        let open = dir + "/open"
        #expect(mkdir(open, 0o700) == 0 && chmod(open, 0o777) == 0)
        let put = await run(["put", "--disk", open, "a/b", dir + "/in"])
        #expect(put.code == ExitStatus.storage)
        #expect(put.stderr.contains("777"), "the message says what is wrong: \(put.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: open).isEmpty)
        let warm = await run(["warm", "--disk", open, "a", dir + "/in"])
        #expect(warm.code == ExitStatus.storage)
    }

    @Test("ls, get and stats neither follow links nor wait on a FIFO, and list dot namespaces")
    func hostileFolder() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/in", Array("hello".utf8))
        let cache = dir + "/cache"
        #expect(await run(["put", "--disk", cache, ".hidden/one", dir + "/in"]).code == 0)
        #expect(await run(["put", "--disk", cache, "plain/two", dir + "/in"]).code == 0)
        // A FIFO where an entry belongs, and a namespace that is a link to a folder of entries.
        let fifoKey = try CacheKey(namespace: "plain", name: "fifo")
        let fifo = "\(cache)/ns/plain/\(fifoKey.fingerprint.prefix(2))/\(fifoKey.fingerprint)"
        try FileManager.default.createDirectory(atPath: (fifo as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(symlink(cache + "/ns/plain", cache + "/ns/linked") == 0)

        let listed = await run(["ls", "--disk", cache, "--json"])
        #expect(listed.code == 0, "\(listed.stderr)")
        let names = try listed.jsonArray().compactMap { $0["name"] as? String }
        #expect(names.contains(".hidden/one#v1"), "a namespace starting with a dot is listed: \(names)")
        #expect(names.contains("plain/two#v1"))
        #expect(!names.contains { $0.hasPrefix("linked/") }, "the linked namespace is not followed: \(names)")
        #expect(names.count == 2, "the FIFO is not listed as an entry: \(names)")
        let get = await run(["get", "--disk", cache, "plain/fifo"])
        #expect(get.code == ExitStatus.localIO, "\(get.stderr)")
        #expect(get.stderr.contains("not a regular file"))
        #expect(try await run(["stats", "--disk", cache, "--json"]).json()["entries"] as? Int == 2)
    }

    @Test("warm writes prepared JSON files that a Cache<Value> reads without running its loader")
    func warmThenLibraryHit() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = dir + "/prepared"
        try FileManager.default.createDirectory(atPath: source + "/eu", withIntermediateDirectories: true)
        try writeFile(source + "/prices.json", Array("{\"tea\":3.5,\"coffee\":4}".utf8))
        try writeFile(source + "/eu/prices.json", Array("{\"tea\":3.2}".utf8))

        let warm = await run(["warm", "--disk", dir + "/cache", "shop", source, "--strip-extension", "--json"])
        #expect(warm.code == 0, "\(warm.stderr)")
        let report = try warm.json()
        #expect(report["entries"] as? Int == 2)
        #expect((report["items"] as? [[String: Any]])?.compactMap { $0["key"] as? String } == ["shop/eu/prices#v1", "shop/prices#v1"])

        let cache = Cache<[String: Double]>(
            configuration: .init(serializer: JSONSerializer(), codec: ZstdCodec.zstd, memory: nil),
            chain: TierChain([.local(DiskTier(configuration: .init(root: dir + "/cache")))]))
        let hit = try await cache.getOrLoad(CacheKey(namespace: "shop", name: "prices")) { [:] }
        #expect(hit.source == .tier("disk"))
        #expect(hit.value == ["tea": 3.5, "coffee": 4])
        let nested = try await cache.getOrLoad(CacheKey(namespace: "shop", name: "eu/prices")) { [:] }
        #expect(nested.value == ["tea": 3.2])

        let dry = await run(["warm", "--disk", dir + "/other", "shop", source, "--dry-run"])
        #expect(dry.code == 0)
        #expect(dry.text.contains("would warm 2 entries"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/other/ns"))
    }

    @Test("dict train writes a dictionary that put uses and get needs")
    func dictionary() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/samples", withIntermediateDirectories: true)
        for i in 0..<400 {
            let record = "{\"id\":\(i),\"customer\":\"customer-\(i % 37)\",\"region\":\"eu-west-\(i % 3)\",\"status\":\"\(i % 2 == 0 ? "shipped" : "pending")\",\"items\":[{\"sku\":\"SKU-\(i % 11)\",\"qty\":\(i % 5)}]}"
            try writeFile(dir + "/samples/\(i).json", Array(record.utf8))
        }
        let train = await run(["dict", "train", dir + "/samples", "-o", dir + "/d.zdict", "--size", "4096", "--json"])
        #expect(train.code == 0, "\(train.stderr)")
        let report = try train.json()
        let dictionary = try ZstdDictionary(contentsOfFile: dir + "/d.zdict")
        #expect(report["dictionaryID"] as? Int == Int(dictionary.id))
        #expect(report["samples"] as? Int == 400)
        #expect((report["ratioWith"] as? Double ?? 0) > (report["ratioWithout"] as? Double ?? .infinity))

        let record = try readFile(dir + "/samples/7.json")
        try writeFile(dir + "/one.json", record)
        #expect(await run(["put", "--disk", dir + "/c", "o/seven", dir + "/one.json", "--dict", dir + "/d.zdict"]).code == 0)
        let without = await run(["get", "--disk", dir + "/c", "o/seven"])
        #expect(without.code == ExitStatus.invalidEnvelope)
        #expect(without.stderr.contains("dictionary \(dictionary.id)"))
        let with = await run(["get", "--disk", dir + "/c", "o/seven", "--dict", dir + "/d.zdict"])
        #expect(with.code == 0)
        #expect(with.stdout == record)
    }

    @Test("bad arguments exit 64 with a message naming the problem")
    func usageErrors() async throws {
        #expect(await run(["put", "--disk", "/tmp/x", "a/b", "/etc/hostname", "--ttl", "soon"]).code == ExitStatus.usage)
        #expect(await run(["put", "--disk", "/tmp/x", "a/b", "/etc/hostname", "--codec", "brotli"]).code == ExitStatus.usage)
        #expect(await run(["get", "not-a-location"]).code == ExitStatus.usage)
        #expect(await run(["get", "--disk", "/tmp/x", "no-namespace"]).code == ExitStatus.usage)
        #expect(await run(["get", "--disk", "/tmp/x", "a/b", "--json"]).stderr.contains("needs -o FILE"))
        #expect(await run(["frobnicate"]).code == ExitStatus.usage)
    }

    @Test("durations parse as the docs say")
    func durations() async throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeFile(dir + "/in", Array("x".utf8))
        for (text, ms) in [("90s", 90_000), ("15m", 900_000), ("1h30m", 5_400_000), ("7d", 604_800_000), ("45", 45_000), ("500ms", 500)] {
            let put = await run(["put", "--disk", dir, "d/\(ms)", dir + "/in", "--ttl", text, "--json"])
            let fields = try put.json()
            let created = try #require(fields["createdAt"] as? Int64)
            let fresh = try #require(fields["freshUntil"] as? Int64)
            #expect(fresh - created == Int64(ms), "--ttl \(text)")
        }
    }
}
