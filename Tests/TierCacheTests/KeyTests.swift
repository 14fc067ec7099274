import Testing
@testable import TierCache
