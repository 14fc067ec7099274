import ArgumentParser
import TierCacheCLI

/// The executable's entry point: the command tree lives in TierCacheCLI, where tests drive it.
@main
struct TierCacheMain: AsyncParsableCommand {
    static let configuration = TierCacheCommand.configuration
}
