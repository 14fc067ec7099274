import TierCache
