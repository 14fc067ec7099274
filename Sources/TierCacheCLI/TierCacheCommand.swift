public import ArgumentParser
import TierCache

/// The `tiercache` command: operator tools for TierCache's envelopes in S3 and disk tiers.
public struct TierCacheCommand: AsyncParsableCommand {
    /// The command tree.
    public static let configuration = CommandConfiguration(
        commandName: "tiercache",
        abstract: "Inspect, move and manage TierCache entries in S3 buckets and disk-tier folders.",
        discussion: """
            Locations are written as the aws CLI writes them, s3://bucket/key, or as a key \
            (namespace/name, optionally #vN) together with --disk DIR for a disk-tier folder.
            S3 settings come from --endpoint-url / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, \
            --region / AWS_REGION, --profile / AWS_PROFILE and the SDKs' credential chain.

            Exit codes: 0 ok, 1 other failure, 3 not found, 4 not a valid envelope, \
            5 storage or network failure, 6 credentials or access denied, 7 local file error, \
            64 bad arguments.

            Examples:
              tiercache put s3://my-bucket/tiercache/reports/daily.v1 report.json --ttl 24h
              tiercache get s3://my-bucket/tiercache/reports/daily.v1 -o report.json
              tiercache inspect s3://my-bucket/tiercache/reports/daily.v1
              tiercache ls --disk /tmp/tiercache-1000 reports/
              tiercache stats s3://my-bucket/tiercache/
            """,
        version: "0.1.0",
        subcommands: [
            PutCommand.self, GetCommand.self, RemoveCommand.self, ListCommand.self, InspectCommand.self,
            LifecycleCommand.self, WarmCommand.self, StatsCommand.self, DictCommand.self,
        ]
    )

    /// Creates the command (argument parser).
    public init() {}
}

// MARK: - Shared option groups

struct StoreOptions: ParsableArguments {
    @Option(name: .customLong("endpoint-url"), help: "S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS).")
    var endpointURL: String?

    @Option(help: "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1).")
    var region: String?

    @Option(help: "Shared-config profile to take credentials from (default: AWS_PROFILE, then the default chain).")
    var profile: String?

    @Option(help: ArgumentHelp("A disk-tier folder; the location is then a key such as namespace/name#v1.", valueName: "dir"))
    var disk: String?

    func location(_ text: String) throws(CLIError) -> Location {
        try Location.parse(text, disk: disk)
    }

    func s3Settings(_ console: Console) -> S3Settings {
        S3Settings(endpointURL: endpointURL, region: region, profile: profile, environment: console.environment)
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print machine-readable JSON on stdout (errors as JSON on stderr).")
    var json = false
}

/// A command whose failures are ``CLIError``s: reported in one line (or JSON) on stderr and
/// turned into their exit code.
protocol ReportingCommand: AsyncParsableCommand {
    var output: OutputOptions { get }
    func execute(_ console: Console) async throws(CLIError)
}

extension ReportingCommand {
    mutating func run() async throws {
        let console = Console.current
        do {
            try await execute(console)
        } catch {
            console.endProgress()
            if output.json {
                console.error(renderJSON(JSONErrorReport(error: .init(kind: error.kind, message: error.message,
                                                                     exitCode: error.exitCode))))
            } else {
                console.error("tiercache: error: \(error.message)")
            }
            throw ExitCode(error.exitCode)
        }
    }
}

func parseTTL(_ text: String, option: String) throws(CLIError) -> Duration {
    guard let d = parseDuration(text) else {
        throw .usage("\(option) '\(text)' is not a duration: write e.g. 90s, 15m, 24h, 7d or 1h30m")
    }
    return d
}

func wallNow() -> WallTime { SystemCacheClock().now() }
