#!/usr/bin/env bash
# Runs tests under a sanitizer in a build folder of its own.
#   scripts/sanitize.sh thread  [test filter]     ThreadSanitizer
#   scripts/sanitize.sh address [test filter]     AddressSanitizer
# With no filter, the concurrent parts: chain, cache, memory tier, disk tier.
# Suppressions: none. Any report fails the run (TSAN_OPTIONS halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh thread|address [filter]}
filter=${2:-'TierChainTests|CacheTests|MemoryTierTests|DiskTier'}
scratch=".build-$kind"
swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" 2>&1 | grep -E "error|warning: .*(Sources|Tests|Codecs|Backends)/" && exit 1
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=0 halt_on_error=1"
swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" --filter "$filter"
