#!/usr/bin/env bash
# Runs tests under a sanitizer in a build folder of its own.
#   scripts/sanitize.sh thread  [test filter]     ThreadSanitizer
#   scripts/sanitize.sh address [test filter]     AddressSanitizer
# With no filter: under ThreadSanitizer the concurrent parts (chain, cache, memory tier, removal
# fence, disk tier, the S3 lease, credential refresh); under AddressSanitizer every test, with moto started as
# scripts/test.sh does (unless TIERCACHE_TEST_S3_ENDPOINT already points at one) so the S3,
# multi-region, CLI and chaos tests run against it instead of skipping.
# Any report fails the run (halt_on_error). Suppressions: none for TSan. For ASan, leak
# detection is off (detect_leaks=0): the XCTest runner that hosts `swift test` leaks 144 bytes
# of its own at exit on Linux whatever the tests do, and LeakSanitizer would fail every run on
# it. Leaks in our code are covered instead by the fuzz targets (scripts/fuzz.sh), which run
# with detect_leaks=1 outside XCTest.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: scripts/sanitize.sh thread|address [filter]}
if [[ $kind == address ]]; then default='.*'; else default='TierChainTests|CacheTests|MemoryTierTests|RemovalFenceTests|DiskTier|S3LeaseMotoTests|S3LeaseReleaseTests|CredentialTests|CredentialSourceTests'; fi
filter=${2:-$default}
scratch=".build-$kind"
swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" 2>&1 | grep -E "error|warning: .*(Sources|Tests|Codecs|Backends)/" && exit 1

services=()
cleanup() { for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
if [[ $kind == address && -z ${TIERCACHE_TEST_S3_ENDPOINT:-} && -x scripts/start-moto.sh ]]; then
    # shellcheck source=/dev/null
    source scripts/start-moto.sh
    services+=("${MOTO_PID:-}")
fi

export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=0 halt_on_error=1"
swift test --skip-build --no-parallel --sanitize="$kind" --scratch-path "$scratch" --filter "$filter"
