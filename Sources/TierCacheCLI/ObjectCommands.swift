import ArgumentParser
import TierCache
import TierCacheDisk
import TierCacheS3
import TierCacheZstd

// MARK: - put

struct PutCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Store a file's bytes as the payload of an envelope.",
        discussion: """
            The payload is the file as given (serializer id 3, "raw bytes"), compressed with the \
            chosen codec unless that would not make it smaller. The cache key comes from the \
            location: an S3 object key in S3Tier's layout (<prefix>/<namespace>/<name>.v<N>) gives \
            that key, so the library reads the entry back; any other object key gives cli/<object key>. \
            With --disk the location is the key itself. --key overrides both.

            Examples:
              tiercache put s3://my-bucket/tiercache/reports/daily.v1 daily.json --ttl 24h
              tiercache put s3://my-bucket/blobs/model.bin model.bin --codec lz4 --json
              tiercache put --disk /tmp/tiercache-1000 reports/daily#v1 daily.json --codec none
              cat daily.json | tiercache put s3://my-bucket/x/y.v1 - --dict reports.zdict
            """
    )

    @Argument(help: "s3://bucket/key, or a key (namespace/name[#vN]) with --disk.") var location: String
    @Argument(help: "The file to store; - reads stdin.") var file: String
    @OptionGroup var wrap: WrapOptionGroup
    @Option(help: ArgumentHelp("A tag stored in the envelope, repeatable.", valueName: "name=value")) var tag: [String] = []
    @Option(help: ArgumentHelp("The cache key to record, overriding the one taken from the location.", valueName: "namespace/name[#vN]"))
    var key: String?
    @Option(help: ArgumentHelp("S3 server-side encryption: AES256 or aws:kms (with --sse-kms-key-id).", valueName: "algorithm")) var sse: String?
    @Option(name: .customLong("sse-kms-key-id"), help: "KMS key for --sse aws:kms.") var sseKMSKeyID: String?
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    struct Result: Encodable {
        var location: String
        var key: String
        var codec: String
        var dictionaryID: UInt32
        var fileBytes: Int
        var storedPayloadBytes: Int
        var envelopeBytes: Int
        var ratio: Double
        var createdAt: Int64
        var freshUntil: Int64
        var staleUntil: Int64
        var etag: String?
    }

    func execute(_ console: Console) async throws(CLIError) {
        let location = try store.location(location)
        var options = try wrap.wrapOptions(defaultSerializer: .rawBytes)
        for t in tag {
            guard let eq = t.firstIndex(of: "="), eq != t.startIndex else { throw .usage("--tag '\(t)' must be name=value") }
            options.tags[String(t[..<eq])] = String(t[t.index(after: eq)...])
        }
        let bytes = file == "-" ? console.readStdin() : try LocalFile.read(file)
        let cacheKey: CacheKey
        switch location {
        case .s3(_, let objectKey):
            guard !objectKey.isEmpty else { throw .usage("\(location) names a bucket, not an object") }
            if let key { cacheKey = try KeyText.parse(key) } else { cacheKey = try KeyText.forObjectKey(objectKey) }
        case .disk(_, let text):
            cacheKey = try KeyText.parse(key ?? text)
        }
        let entry = try Envelopes.wrap(bytes, key: cacheKey, options: options, now: wallNow())
        let envelopeBytes = entry.encoded().count
        var etag: String?
        switch location {
        case .s3(let bucket, let objectKey):
            let encryption: S3ServerSideEncryption?
            switch sse?.lowercased() {
            case nil: encryption = sseKMSKeyID.map { .kms(keyID: $0) }
            case "aes256": encryption = .s3
            case "aws:kms": encryption = .kms(keyID: sseKMSKeyID)
            case let other?: throw .usage("--sse must be AES256 or aws:kms, not '\(other)'")
            }
            let client = try store.s3Settings(console).makeClient()
            defer { client.shutdown() }
            etag = try await S3Objects.putEntry(entry, client: client, bucket: bucket, key: objectKey, encryption: encryption).etag
        case .disk(let root, _):
            let folder = DiskFolder(root: root)
            let tier = try await folder.tier()
            let before = tier.statistics.writeErrors
            do {
                try await tier.put(entry)
            } catch {
                throw .storage("writing to \(root): \(error)")
            }
            guard tier.statistics.writeErrors == before, folder.exists(cacheKey) else {
                throw .storage("the disk tier at \(root) did not store the entry (no room within its budget, or the folder is not writable)")
            }
        }
        let result = Result(
            location: location.description, key: cacheKey.rendered, codec: entry.codecID.description,
            dictionaryID: entry.dictionaryID, fileBytes: bytes.count, storedPayloadBytes: entry.payload.count,
            envelopeBytes: envelopeBytes,
            ratio: entry.payload.isEmpty ? 1 : Double(bytes.count) / Double(entry.payload.count),
            createdAt: entry.createdAt.millisecondsSince1970, freshUntil: entry.freshUntil.millisecondsSince1970,
            staleUntil: entry.staleUntil.millisecondsSince1970, etag: etag)
        if output.json {
            console.print(renderJSON(result))
        } else {
            let codecText = entry.codecID == .identity && options.codec != .identity ? "stored raw: \(options.codec.rawValue) did not help" : entry.codecID.description
            console.print("put \(location): \(bytes.count) bytes -> \(entry.payload.count) stored (\(codecText), ratio \(formatRatio(result.ratio))), key \(cacheKey.rendered), fresh until \(formatHuman(entry.freshUntil, now: entry.createdAt))")
        }
    }
}

// MARK: - Reading an envelope from a location

enum EnvelopeSource {
    /// The bytes stored at a location; throws notFound when there are none.
    static func read(_ location: Location, store: StoreOptions, console: Console) async throws(CLIError) -> [UInt8] {
        switch location {
        case .s3(let bucket, let key):
            guard !key.isEmpty else { throw .usage("\(location) names a bucket, not an object") }
            let client = try store.s3Settings(console).makeClient()
            defer { client.shutdown() }
            let object: S3Object?
            do {
                object = try await client.getObject(bucket: bucket, key: key)
            } catch {
                throw .from(error, doing: "reading \(location)")
            }
            guard let object else { throw .notFound("\(location) does not exist") }
            return object.body
        case .disk(let root, let text):
            let key = try KeyText.parse(text)
            guard let bytes = try DiskFolder(root: root).read(key) else {
                throw .notFound("no entry for \(key.rendered) in \(root)")
            }
            return bytes
        }
    }
}

// MARK: - get

struct GetCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Write an entry's payload back, byte for byte.",
        discussion: """
            Verifies the envelope (magic, version, checksum) and decompresses the payload; an \
            object that is not a valid envelope fails with exit code 4. Expired entries are \
            written too, with a warning on stderr.

            Examples:
              tiercache get s3://my-bucket/tiercache/reports/daily.v1 -o daily.json
              tiercache get --disk /tmp/tiercache-1000 reports/daily#v1 > daily.json
              tiercache get s3://my-bucket/x/y.v1 -o y.json --dict reports.zdict --json
            """
    )

    @Argument(help: "s3://bucket/key, or a key (namespace/name[#vN]) with --disk.") var location: String
    @Option(name: [.short, .customLong("output")], help: "Write the payload to this file instead of stdout.") var outputFile: String?
    @Option(help: ArgumentHelp("A zstd dictionary for payloads compressed with one; repeatable.", valueName: "file")) var dict: [String] = []
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    struct Result: Encodable {
        var location: String
        var key: String
        var bytes: Int
        var state: String
        var file: String
    }

    func execute(_ console: Console) async throws(CLIError) {
        let location = try store.location(location)
        if output.json, outputFile == nil { throw .usage("--json prints a summary on stdout, so it needs -o FILE for the payload") }
        let dictionaries = try Envelopes.loadDictionaries(dict)
        let bytes = try await EnvelopeSource.read(location, store: store, console: console)
        let entry = try Envelopes.decode(bytes, source: location.description)
        let payload = try Envelopes.unwrap(entry, dictionaries: dictionaries, source: location.description)
        let now = wallNow()
        let state = entry.isFresh(at: now) ? "fresh" : entry.isUsable(at: now) ? "stale" : "expired"
        if let path = outputFile, path != "-" {
            try LocalFile.write(payload, to: path)
        } else {
            console.write(payload)
        }
        if state != "fresh", !output.json {
            console.error("tiercache: warning: \(entry.key.rendered) is \(state) (fresh until \(formatHuman(entry.freshUntil, now: now)))")
        }
        if output.json {
            console.print(renderJSON(Result(location: location.description, key: entry.key.rendered, bytes: payload.count,
                                            state: state, file: outputFile ?? "-")))
        } else if let path = outputFile, path != "-" {
            console.print("get \(location): \(payload.count) bytes written to \(path) (\(state))")
        }
    }
}

// MARK: - rm

struct RemoveCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Remove an entry.",
        discussion: """
            Fails with exit code 3 when there is nothing to remove.

            Examples:
              tiercache rm s3://my-bucket/tiercache/reports/daily.v1
              tiercache rm --disk /tmp/tiercache-1000 reports/daily#v1
            """
    )

    @Argument(help: "s3://bucket/key, or a key (namespace/name[#vN]) with --disk.") var location: String
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    struct Result: Encodable {
        var location: String
        var removed: Bool
    }

    func execute(_ console: Console) async throws(CLIError) {
        let location = try store.location(location)
        switch location {
        case .s3(let bucket, let key):
            guard !key.isEmpty else { throw .usage("\(location) names a bucket, not an object") }
            let client = try store.s3Settings(console).makeClient()
            defer { client.shutdown() }
            do {
                guard try await client.headObject(bucket: bucket, key: key) != nil else {
                    throw CLIError.notFound("\(location) does not exist")
                }
                try await client.deleteObject(bucket: bucket, key: key)
            } catch let error as CLIError {
                throw error
            } catch {
                throw .from(tier: error, doing: "removing \(location)")
            }
        case .disk(let root, let text):
            let key = try KeyText.parse(text)
            let folder = DiskFolder(root: root)
            guard folder.exists(key) else { throw .notFound("no entry for \(key.rendered) in \(root)") }
            let tier = try await folder.tier()
            do {
                try await tier.remove(key)
            } catch {
                throw .storage("removing \(key.rendered) from \(root): \(error)")
            }
            guard !folder.exists(key) else { throw .storage("could not remove \(folder.path(for: key))") }
        }
        if output.json {
            console.print(renderJSON(Result(location: location.description, removed: true)))
        } else {
            console.print("removed \(location)")
        }
    }
}

// MARK: - ls

struct ListCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List entries under a prefix.",
        discussion: """
            S3: lists with ListObjectsV2; --expiry also reads each object's expiry from its \
            x-amz-meta-* headers (a HEAD per object, no download). Disk: reads each entry's header, \
            so expiry is always shown.

            Examples:
              tiercache ls s3://my-bucket/tiercache/reports/
              tiercache ls s3://my-bucket/tiercache/ --expiry --json
              tiercache ls --disk /tmp/tiercache-1000 reports/
            """
    )

    @Argument(help: "s3://bucket/prefix, or a key prefix (namespace/...) with --disk (empty for all).") var location: String = ""
    @Flag(help: "S3: read every object's expiry metadata (one HEAD each).") var expiry = false
    @Option(help: "Concurrent HEAD requests with --expiry.") var concurrency: Int = 16
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func execute(_ console: Console) async throws(CLIError) {
        let items = try await Listing.list(location, store: store, withExpiry: expiry, concurrency: concurrency, console: console)
        if output.json {
            console.print(renderJSON(items))
            return
        }
        let now = wallNow()
        for item in items {
            let state: String
            if let fresh = item.freshUntil, let stale = item.staleUntil {
                let n = now.millisecondsSince1970
                state = n < fresh ? "fresh \(formatSpan(milliseconds: fresh - n)) left"
                    : n < stale ? "stale" : "expired"
            } else {
                state = item.lastModified ?? "-"
            }
            let size = String(item.size)
            console.print(String(repeating: " ", count: max(0, 10 - size.count)) + size + "  " + state + "  " + item.name)
        }
    }
}

enum Listing {
    static func list(_ text: String, store: StoreOptions, withExpiry: Bool, concurrency: Int,
                     console: Console) async throws(CLIError) -> [ListedObject] {
        guard concurrency >= 1 else { throw .usage("--concurrency must be at least 1") }
        if let disk = store.disk {
            guard LocalFile.isDirectory(disk) else { throw .notFound("\(disk) is not a folder") }
            let progress = ProgressLine("reading \(disk)", total: nil, console: console)
            defer { progress.finish() }
            return DiskFolder(root: disk).list(prefix: text, progress: progress)
        }
        guard case .s3(let bucket, let prefix) = try Location.parse(text, disk: nil) else { return [] }
        let client = try store.s3Settings(console).makeClient()
        defer { client.shutdown() }
        return try await S3Objects.list(client: client, bucket: bucket, prefix: prefix, withExpiry: withExpiry,
                                        concurrency: concurrency, console: console)
    }
}

// MARK: - inspect

struct InspectCommand: ReportingCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Decode an envelope and show every header field.",
        discussion: """
            Shows the key, serializer, codec and ratio, created / fresh-until / stale-until in UTC \
            and relative to now, tags, and the checksum status; then decompresses the payload to \
            check it. Input that is not an envelope, or whose checksum or payload is wrong, exits \
            with code 4 (the report is still printed when the header can be read).

            Examples:
              tiercache inspect s3://my-bucket/tiercache/reports/daily.v1
              tiercache inspect --disk /tmp/tiercache-1000 reports/daily#v1 --json
              tiercache inspect ./downloaded.entry
              aws s3 cp s3://my-bucket/tiercache/reports/daily.v1 - | tiercache inspect -
            """
    )

    @Argument(help: "s3://bucket/key, a key with --disk, a local file, or - for stdin.") var location: String
    @Option(help: ArgumentHelp("A zstd dictionary to check dictionary-compressed payloads; repeatable.", valueName: "file"))
    var dict: [String] = []
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    func execute(_ console: Console) async throws(CLIError) {
        let dictionaries = try Envelopes.loadDictionaries(dict)
        let bytes: [UInt8]
        let source: String
        if store.disk == nil, location == "-" {
            bytes = console.readStdin()
            source = "stdin"
        } else if store.disk == nil, !location.hasPrefix("s3://") {
            bytes = try LocalFile.read(location)
            source = location
        } else {
            let parsed = try store.location(location)
            bytes = try await EnvelopeSource.read(parsed, store: store, console: console)
            source = parsed.description
        }
        let report = try Inspection.inspect(bytes, source: source, dictionaries: dictionaries, now: wallNow())
        console.print(output.json ? renderJSON(report) : report.text)
        if !report.isValid {
            throw .invalidEnvelope("\(source): " + report.problems.joined(separator: "; "))
        }
    }
}
