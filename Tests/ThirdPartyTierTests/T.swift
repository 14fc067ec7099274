import Testing
import TierCache
