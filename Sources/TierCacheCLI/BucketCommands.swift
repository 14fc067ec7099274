import ArgumentParser
import TierCache
import TierCacheDisk
import TierCacheS3
import TierCacheZstd

// MARK: - lifecycle

struct LifecycleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lifecycle",
        abstract: "Set, remove or read the bucket's expiry rule for the cache prefix.",
        discussion: """
            Only the rule named tiercache-expire-<prefix> is ever changed: every other rule of the \
            bucket is written back exactly as S3 returned it.

            Examples:
              tiercache lifecycle apply s3://my-bucket/tiercache --days 1
              tiercache lifecycle apply s3://my-bucket/tiercache --days 1 --dry-run
              tiercache lifecycle show s3://my-bucket/tiercache
              tiercache lifecycle remove s3://my-bucket/tiercache
            """,
        subcommands: [LifecycleApply.self, LifecycleRemove.self, LifecycleShow.self]
    )

    /// `s3://bucket/prefix` as bucket and prefix (without a trailing `/`).
    static func target(_ location: String) throws(CLIError) -> (bucket: String, prefix: String)? {
        guard case .s3(let bucket, let key) = try Location.parse(location, disk: nil) else { return nil }
        return (bucket, String(key.reversed().drop { $0 == "/" }.reversed()))
    }

    /// Prints what a change did or, in a dry run, the configuration it would write.
    static func report(_ update: S3LifecycleUpdate, bucket: String, prefix: String, dryRun: Bool, json: Bool,
                       console: Console) throws(CLIError) {
        guard dryRun else {
            try LifecycleShow.report(update.after, bucket: bucket, prefix: prefix, json: json, console: console)
            return
        }
        struct DryRun: Encodable {
            var bucket: String
            var prefix: String
            var dryRun = true
            var changes: Bool
            /// The document PutBucketLifecycleConfiguration would send; nil when the bucket's
            /// lifecycle would be deleted (no rule left).
            var configuration: String?
        }
        let document = update.after.rules.isEmpty ? nil : update.after.xml
        if json {
            console.print(renderJSON(DryRun(bucket: bucket, prefix: prefix, changes: update.changes, configuration: document)))
            return
        }
        if !update.changes {
            console.print("dry run: s3://\(bucket) already has this configuration; nothing would be written")
        } else if let document {
            console.print("dry run: s3://\(bucket) would get this lifecycle configuration:")
            console.print(document)
        } else {
            console.print("dry run: s3://\(bucket) would have no rule left; its lifecycle configuration would be deleted")
        }
    }
}

struct LifecycleApply: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Install (or replace) the rule that expires objects under the prefix after N days.",
        discussion: """
            The rule is named tiercache-expire-<prefix> and filters on "<prefix>/"; the bucket's \
            other rules are written back exactly as S3 returned them, whatever they filter on or \
            do. S3 counts days from the object's creation and deletes within about a day after \
            that, so keep the envelope's own --ttl shorter than the rule. --dry-run prints the \
            configuration that would be written and writes nothing.

            Examples:
              tiercache lifecycle apply s3://my-bucket/tiercache --days 1
              tiercache lifecycle apply s3://my-bucket/tiercache --days 1 --dry-run
              tiercache lifecycle apply s3://my-bucket/tiercache --days 7 --json
            """
    )

    @Argument(help: "s3://bucket/prefix (the S3 tier's prefix, without a trailing /).") var location: String
    @Option(help: "Days after creation at which S3 deletes the objects (the seed's 24 h is 1).") var days: Int = 1
    @Flag(help: "Print the configuration that would be written; write nothing.") var dryRun = false
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func execute(_ console: Console) async throws(CLIError) {
        guard days >= 1 else { throw .usage("--days must be at least 1") }
        guard let (bucket, prefix) = try LifecycleCommand.target(location) else { return }
        let client = try store.s3Settings(console).makeClient()
        defer { client.shutdown() }
        let tier = S3Tier(client: client, configuration: .init(bucket: bucket, prefix: prefix))
        let update: S3LifecycleUpdate
        do {
            update = try await tier.applyExpirationLifecycle(days: days, dryRun: dryRun)
        } catch {
            throw .from(error, doing: "setting the lifecycle of s3://\(bucket)")
        }
        try LifecycleCommand.report(update, bucket: bucket, prefix: prefix, dryRun: dryRun, json: output.json, console: console)
    }
}

struct LifecycleRemove: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove the rule that apply installed for the prefix, keeping every other rule.",
        discussion: """
            Removes the rule named tiercache-expire-<prefix>; the bucket's other rules are written \
            back exactly as S3 returned them (with none left, the bucket's lifecycle configuration \
            is deleted, as S3 takes no empty one). Exit code 3 when there is no such rule. \
            --dry-run prints the configuration that would be written and writes nothing.

            Examples:
              tiercache lifecycle remove s3://my-bucket/tiercache
              tiercache lifecycle remove s3://my-bucket/tiercache --dry-run
            """
    )

    @Argument(help: "s3://bucket/prefix (the S3 tier's prefix, without a trailing /).") var location: String
    @Flag(help: "Print the configuration that would be written; write nothing.") var dryRun = false
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func execute(_ console: Console) async throws(CLIError) {
        guard let (bucket, prefix) = try LifecycleCommand.target(location) else { return }
        let client = try store.s3Settings(console).makeClient()
        defer { client.shutdown() }
        let tier = S3Tier(client: client, configuration: .init(bucket: bucket, prefix: prefix))
        let update: S3LifecycleUpdate
        do {
            update = try await tier.removeExpirationLifecycle(dryRun: dryRun)
        } catch {
            throw .from(error, doing: "removing the lifecycle rule of s3://\(bucket)")
        }
        guard update.changes else { throw .notFound("s3://\(bucket) has no rule \(tier.expirationRuleID)") }
        if dryRun {
            try LifecycleCommand.report(update, bucket: bucket, prefix: prefix, dryRun: true, json: output.json, console: console)
        } else if output.json {
            struct Removed: Encodable {
                var bucket: String
                var removed: String
                var rulesLeft: Int
            }
            console.print(renderJSON(Removed(bucket: bucket, removed: tier.expirationRuleID, rulesLeft: update.after.rules.count)))
        } else {
            console.print("removed \(tier.expirationRuleID) from s3://\(bucket); \(update.after.rules.count) other rule(s) kept")
        }
    }
}

struct LifecycleShow: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show the bucket's lifecycle rules and which of them expire the prefix.",
        discussion: """
            A rule covers the prefix when it is filtered on a prefix alone (or not filtered) that \
            contains it and expires objects a number of days after creation; a rule filtered on \
            tags or object size covers only some objects and does not count. Exit code 3 when no \
            enabled rule covers the prefix.

            Examples:
              tiercache lifecycle show s3://my-bucket/tiercache
              tiercache lifecycle show s3://my-bucket --json
            """
    )

    @Argument(help: "s3://bucket[/prefix].") var location: String
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    struct Rule: Encodable {
        var id: String
        /// The prefix the rule is limited to; nil when it also filters on tags or object size.
        var prefix: String?
        /// Days after creation when objects expire; nil when the rule does not expire after days.
        var expirationDays: Int?
        var actions: [String]
        var enabled: Bool
        var coversPrefix: Bool
        /// The rule as S3 returned it.
        var xml: String
    }

    struct Report: Encodable {
        var bucket: String
        var prefix: String
        var rules: [Rule]
        var effectiveExpirationDays: Int?
    }

    func execute(_ console: Console) async throws(CLIError) {
        guard let (bucket, prefix) = try LifecycleCommand.target(location) else { return }
        let client = try store.s3Settings(console).makeClient()
        defer { client.shutdown() }
        let lifecycle: S3LifecycleConfiguration
        do {
            lifecycle = try await client.getBucketLifecycleConfiguration(bucket: bucket)
        } catch {
            throw .from(error, doing: "reading the lifecycle of s3://\(bucket)")
        }
        try Self.report(lifecycle, bucket: bucket, prefix: prefix, json: output.json, console: console)
    }

    static func report(_ lifecycle: S3LifecycleConfiguration, bucket: String, prefix: String, json: Bool,
                       console: Console) throws(CLIError) {
        let target = prefix.isEmpty ? "" : prefix + "/"
        let shown = lifecycle.rules.map { rule in
            let covers = (rule.prefix.map { target.hasPrefix($0) } ?? false) && (rule.expirationDays ?? 0) > 0
            return Rule(id: rule.id, prefix: rule.prefix, expirationDays: rule.expirationDays, actions: rule.actions,
                        enabled: rule.isEnabled, coversPrefix: covers, xml: rule.xml)
        }
        let effective = shown.filter { $0.enabled && $0.coversPrefix }.compactMap(\.expirationDays).min()
        if json {
            console.print(renderJSON(Report(bucket: bucket, prefix: prefix, rules: shown, effectiveExpirationDays: effective)))
        } else {
            if shown.isEmpty { console.print("s3://\(bucket) has no lifecycle rules") }
            for r in shown {
                let filter = r.prefix.map { "prefix '\($0)'" } ?? "a filter on more than a prefix (tags or size)"
                let action = r.expirationDays.map { "expire after \($0) day(s)" } ?? r.actions.joined(separator: ", ")
                console.print("\(r.coversPrefix ? "*" : " ") \(r.id): \(filter), \(action), \(r.enabled ? "enabled" : "disabled")")
            }
            console.print(effective.map { "objects under s3://\(bucket)/\(target) expire \($0) day(s) after creation" }
                ?? "no enabled expiry rule covers s3://\(bucket)/\(target)")
        }
        if effective == nil { throw .notFound("no enabled expiry rule covers s3://\(bucket)/\(target)") }
    }
}

// MARK: - warm

struct WarmCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "warm",
        abstract: "Upload prepared files into a namespace as envelopes the library reads.",
        discussion: """
            Every regular file under SOURCE becomes one entry: key <namespace>/<path relative to \
            SOURCE>#v<schema>, written exactly as the library's S3 tier (object \
            <prefix>/<namespace>/<encoded name>.v<schema>, expiry in x-amz-meta-*) or disk tier \
            writes it. The location's last segment is the namespace. Files are recorded as JSON \
            values by default (serializer id 1), so a Cache<Value> with JSONSerializer reads them; \
            --serializer raw stores opaque bytes. To run loaders of your own instead of uploading \
            files, see docs/cli.md ("Warming with your own loaders").

            Examples:
              tiercache warm s3://my-bucket/tiercache/reports ./prepared --ttl 24h
              tiercache warm s3://my-bucket/tiercache/reports ./prepared --strip-extension --schema-version 2
              tiercache warm --disk /tmp/tiercache-1000 reports ./prepared --codec lz4
            """
    )

    @Argument(help: "s3://bucket/prefix/namespace, or a namespace with --disk.") var location: String
    @Argument(help: "A folder of prepared files (or one file).") var source: String
    @Option(name: .customLong("schema-version"), help: "Schema version of the keys.") var schemaVersion: UInt32 = 1
    @Flag(name: .customLong("strip-extension"), help: "Drop each file's extension from its key name (a.json -> a).")
    var stripExtension = false
    @OptionGroup var wrap: WrapOptionGroup
    @Option(help: "Uploads in flight at once.") var concurrency: Int = 8
    @Flag(name: .customLong("dry-run"), help: "Show what would be written, write nothing.") var dryRun = false
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    struct Item: Encodable, Sendable {
        var file: String
        var key: String
        var destination: String
        var bytes: Int
        var storedBytes: Int
    }

    struct Report: Encodable {
        var entries: Int
        var bytes: Int
        var storedBytes: Int
        var ratio: Double
        var dryRun: Bool
        var items: [Item]
    }

    func execute(_ console: Console) async throws(CLIError) {
        guard concurrency >= 1 else { throw .usage("--concurrency must be at least 1") }
        let options = try wrap.wrapOptions(defaultSerializer: .json)

        let parsed = try store.location(location)
        let namespace: String
        let target: any CacheTier
        let client: S3Client?
        let describe: @Sendable (CacheKey) -> String
        switch parsed {
        case .s3(let bucket, let key):
            let segments = key.split(separator: "/").map(String.init)
            guard let last = segments.last else { throw .usage("\(parsed) needs a namespace: s3://bucket/prefix/namespace") }
            namespace = last
            let prefix = segments.dropLast().joined(separator: "/")
            let made = try store.s3Settings(console).makeClient()
            client = made
            target = S3Tier(client: made, configuration: .init(bucket: bucket, prefix: prefix, writeTimeout: .seconds(60)))
            describe = { "s3://\(bucket)/\(S3Tier.objectKey(for: $0, prefix: prefix))" }
        case .disk(let root, let key):
            namespace = key
            // A dry run writes nothing, and so makes no folder either.
            target = dryRun ? DiskTier(configuration: .init(root: root)) : try await DiskFolder(root: root).tier()
            client = nil
            describe = { "\($0.rendered) in \(root)" }
        }
        defer { client?.shutdown() }

        let files = try LocalFile.files(under: source)
        guard !files.isEmpty else { throw .notFound("no files under \(source)") }
        var planned: [(path: String, key: CacheKey)] = []
        for file in files {
            var name = file.relative
            if stripExtension, let dot = name.lastIndex(of: "."), !name[name.index(after: dot)...].contains("/"),
               dot != name.startIndex, name[name.index(before: dot)] != "/" {
                name = String(name[..<dot])
            }
            do {
                planned.append((file.path, try CacheKey(namespace: namespace, name: name, schemaVersion: schemaVersion)))
            } catch {
                throw .usage("\(file.path): \(error.message)")
            }
        }
        let progress = ProgressLine(dryRun ? "planning" : "warming", total: planned.count, console: console)
        defer { progress.finish() }
        let now = wallNow()
        let dry = dryRun
        let items: [Item]
        do {
            items = try await withThrowingTaskGroup(of: Item.self) { group in
                var next = 0
                var out: [Item] = []
                func add() {
                    let (path, key) = planned[next]
                    next += 1
                    group.addTask {
                        let bytes = try LocalFile.read(path)
                        let entry = try Envelopes.wrap(bytes, key: key, options: options, now: now)
                        if !dry { try await target.put(entry) }
                        return Item(file: path, key: key.rendered, destination: describe(key), bytes: bytes.count,
                                    storedBytes: entry.payload.count)
                    }
                }
                while next < min(concurrency, planned.count) { add() }
                while let item = try await group.next() {
                    out.append(item)
                    progress.advance()
                    if next < planned.count { add() }
                }
                return out.sorted { $0.key < $1.key }
            }
        } catch {
            throw .from(tier: error, doing: "warming \(parsed)")
        }
        if case .disk(let root, _) = parsed, !dryRun {
            let folder = DiskFolder(root: root)
            let missing = planned.filter { !folder.exists($0.key) }
            if !missing.isEmpty {
                throw .storage("the disk tier at \(root) did not store \(missing.count) of \(planned.count) entries (budget or permissions)")
            }
        }
        let bytes = items.reduce(0) { $0 + $1.bytes }
        let stored = items.reduce(0) { $0 + $1.storedBytes }
        let report = Report(entries: items.count, bytes: bytes, storedBytes: stored,
                            ratio: stored == 0 ? 1 : Double(bytes) / Double(stored), dryRun: dryRun, items: items)
        if output.json {
            console.print(renderJSON(report))
        } else {
            if dryRun { for item in items { console.print("would write \(item.key) -> \(item.destination)") } }
            console.print("\(dryRun ? "would warm" : "warmed") \(items.count) entries: \(formatBytes(UInt64(bytes))) -> \(formatBytes(UInt64(stored))) (ratio \(formatRatio(report.ratio)))")
        }
    }
}

// MARK: - stats

struct StatsCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Summarize a prefix: entries, bytes, age histogram, expired share.",
        discussion: """
            S3: lists the prefix and reads each object's expiry and creation time from its \
            x-amz-meta-* headers with a HEAD (no download); objects without them are downloaded \
            and their envelope header read. Disk: reads each entry file's header.

            Examples:
              tiercache stats s3://my-bucket/tiercache/
              tiercache stats s3://my-bucket/tiercache/reports/ --json
              tiercache stats --disk /tmp/tiercache-1000
            """
    )

    @Argument(help: "s3://bucket/prefix, or a key prefix with --disk (empty for all).") var location: String = ""
    @Option(help: "Concurrent HEAD requests.") var concurrency: Int = 16
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    struct Bucket: Encodable {
        var label: String
        var entries: Int
        var bytes: Int
    }

    struct Report: Encodable {
        var location: String
        var entries: Int
        var bytes: Int
        var fresh: Int
        var stale: Int
        var expired: Int
        var unknown: Int
        /// expired / entries with known expiry (0...1).
        var expiredShare: Double
        /// (stale + expired) / entries with known expiry.
        var notFreshShare: Double
        var ageHistogram: [Bucket]
        var oldest: Int64?
        var newest: Int64?
    }

    static let ageBounds: [(Int64, String)] = [
        (60_000, "< 1m"), (900_000, "1m-15m"), (3_600_000, "15m-1h"), (21_600_000, "1h-6h"),
        (86_400_000, "6h-24h"), (604_800_000, "1d-7d"), (Int64.max, ">= 7d"),
    ]

    static func summarize(_ items: [ListedObject], location: String, now: WallTime) -> Report {
        var histogram = ageBounds.map { Bucket(label: $0.1, entries: 0, bytes: 0) }
        var unknownAge = Bucket(label: "unknown", entries: 0, bytes: 0)
        var fresh = 0, stale = 0, expired = 0, unknown = 0
        let n = now.millisecondsSince1970
        for item in items {
            if let f = item.freshUntil, let s = item.staleUntil {
                if n < f { fresh += 1 } else if n < s { stale += 1 } else { expired += 1 }
            } else {
                unknown += 1
            }
            if let created = item.createdAt {
                let age = max(0, n - created)
                let index = ageBounds.firstIndex { age < $0.0 } ?? ageBounds.count - 1
                histogram[index].entries += 1
                histogram[index].bytes += item.size
            } else {
                unknownAge.entries += 1
                unknownAge.bytes += item.size
            }
        }
        if unknownAge.entries > 0 { histogram.append(unknownAge) }
        let known = fresh + stale + expired
        let created = items.compactMap(\.createdAt)
        return Report(location: location, entries: items.count, bytes: items.reduce(0) { $0 + $1.size },
                      fresh: fresh, stale: stale, expired: expired, unknown: unknown,
                      expiredShare: known == 0 ? 0 : Double(expired) / Double(known),
                      notFreshShare: known == 0 ? 0 : Double(stale + expired) / Double(known),
                      ageHistogram: histogram, oldest: created.min(), newest: created.max())
    }

    func execute(_ console: Console) async throws(CLIError) {
        let items = try await Listing.list(location, store: store, withExpiry: true, concurrency: concurrency, console: console)
        let where_ = store.disk.map { "\(location.isEmpty ? "everything" : location) in \($0)" } ?? location
        let report = Self.summarize(items, location: where_, now: wallNow())
        if output.json {
            console.print(renderJSON(report))
            return
        }
        console.print("\(report.location): \(report.entries) entries, \(formatBytes(UInt64(report.bytes)))")
        console.print("fresh \(report.fresh), stale \(report.stale), expired \(report.expired)"
            + (report.unknown > 0 ? ", no expiry information \(report.unknown)" : "")
            + "; expired share \(fixed(report.expiredShare * 100, digits: 1))%")
        let top = report.ageHistogram.map(\.entries).max() ?? 0
        console.print("age (since created):")
        for b in report.ageHistogram {
            let bar = top == 0 ? "" : String(repeating: "#", count: (b.entries * 40 + top - 1) / top)
            let label = b.label + String(repeating: " ", count: max(0, 8 - b.label.count))
            let count = String(b.entries)
            console.print("  \(label) \(String(repeating: " ", count: max(0, 7 - count.count)))\(count)  \(bar)")
        }
    }
}

// MARK: - dict

struct DictCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dict",
        abstract: "zstd dictionaries for small, similar payloads.",
        discussion: """
            Examples:
              tiercache dict train samples/ -o reports.zdict
              tiercache put s3://my-bucket/tiercache/reports/eu.v1 eu.json --dict reports.zdict
            """,
        subcommands: [DictTrain.self]
    )
}

struct DictTrain: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a zstd dictionary from sample files.",
        discussion: """
            Give it a few hundred representative payloads (files, or folders of them), each as the \
            cache stores it before compression. Prints the dictionary id and the ratio on the \
            samples with and without it at the chosen level. Load the file in the library with \
            ZstdDictionary(contentsOfFile:), and pass it to put/get/inspect with --dict.

            Examples:
              tiercache dict train samples/ -o reports.zdict
              tiercache dict train a.json b.json c.json -o small.zdict --size 4096 --json
            """
    )

    @Argument(help: "Sample files or folders.") var samples: [String]
    @Option(name: [.short, .customLong("output")], help: "Where to write the dictionary.") var outputFile: String
    @Option(help: "Largest dictionary size in bytes.") var size: Int = 16 << 10
    @Option(help: "Level used to measure the ratio.") var level: Int = 3
    @OptionGroup var output: OutputOptions

    struct Report: Encodable {
        var file: String
        var dictionaryID: UInt32
        var dictionaryBytes: Int
        var samples: Int
        var sampleBytes: Int
        var ratioWithout: Double
        var ratioWith: Double
    }

    func execute(_ console: Console) async throws(CLIError) {
        guard !samples.isEmpty else { throw .usage("give sample files or folders") }
        var data: [[UInt8]] = []
        for s in samples {
            for file in try LocalFile.files(under: s) { data.append(try LocalFile.read(file.path)) }
        }
        data.removeAll { $0.isEmpty }
        guard !data.isEmpty else { throw .notFound("no non-empty sample files in \(samples.joined(separator: ", "))") }
        let progress = ProgressLine("training on \(data.count) samples", total: nil, console: console)
        progress.advance(by: 0)
        let dictionary: ZstdDictionary
        do {
            dictionary = try ZstdDictionary.train(samples: data, capacity: size)
        } catch {
            progress.finish()
            throw .failure("training failed: \(error.message) (more, or more varied, samples help)")
        }
        progress.finish()
        do {
            try dictionary.write(toFile: outputFile)
        } catch {
            throw .localIO(error.message)
        }
        let total = data.reduce(0) { $0 + $1.count }
        var plain = 0, withDict = 0
        do {
            let a = try ZstdCodec(configuration: .init(level: level, minimumInputSize: 0))
            let b = try ZstdCodec(configuration: .init(level: level, dictionary: dictionary, minimumInputSize: 0))
            for d in data {
                plain += try a.compress(d)?.bytes.count ?? d.count
                withDict += try b.compress(d)?.bytes.count ?? d.count
            }
        } catch {
            throw .failure("measuring the dictionary failed: \(error.message)")
        }
        let report = Report(file: outputFile, dictionaryID: dictionary.id, dictionaryBytes: dictionary.bytes.count,
                            samples: data.count, sampleBytes: total,
                            ratioWithout: plain == 0 ? 1 : Double(total) / Double(plain),
                            ratioWith: withDict == 0 ? 1 : Double(total) / Double(withDict))
        if output.json {
            console.print(renderJSON(report))
        } else {
            console.print("wrote \(outputFile): dictionary id \(dictionary.id), \(dictionary.bytes.count) bytes, from \(data.count) samples (\(formatBytes(UInt64(total))))")
            console.print("ratio on the samples at level \(level): \(formatRatio(report.ratioWithout)) without, \(formatRatio(report.ratioWith)) with the dictionary")
        }
    }
}
