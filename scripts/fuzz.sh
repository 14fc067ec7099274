#!/usr/bin/env bash
# Runs the libFuzzer targets of Fuzz/ (their own package, built into .build-fuzz with
# -sanitize=fuzzer,address, so the root package's build and tests never see these flags).
#   scripts/fuzz.sh [target|all] [runs]     default: all, 100000 inputs per target
#   scripts/fuzz.sh all 5000                the short pass CI runs
#   scripts/fuzz.sh --seeds                 rewrites the binary seeds (envelopes, binary values,
#                                           zstd frames, lz4 blocks) in Fuzz/corpus/<target>/
# Targets: envelope binary zstd lz4 s3xml sigv4 runtime disk. Inputs are up to 8 KiB, but for
# disk (the disk tier's file reader and split decoder), up to 1 MiB.
# Seeds come from Fuzz/corpus/<target>/ (kept in the repo, read only); inputs the fuzzer finds
# go to .build-fuzz/corpus/<target>/ and a crash to .build-fuzz/artifacts/. Any crash, leak,
# ASan report or timeout fails the run and prints the reproducer's path:
#   .build-fuzz/debug/fuzz-<target> <reproducer>     replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
all=(envelope binary zstd lz4 s3xml sigv4 runtime disk)
target=${1:-all}
runs=${2:-100000}
seeds=0
if [[ $target == --seeds ]]; then seeds=1; target=all; fi
if [[ $target == all ]]; then targets=("${all[@]}"); else targets=("$target"); fi

scratch="$root/.build-fuzz"
# -enable-testing: the targets `@testable import` internal parsers (S3 XML, Runtime API).
# -parse-as-library: no top-level code; libFuzzer supplies main.
# One product at a time: each links libFuzzer's main (and fuzz-seeds is not a fuzz target).
# The binary target uses @GeneratedBinaryCoding: its plug-in is built by the root package with the
# ordinary flags (the fuzzer flags would reach it too, and it does not link with them) and loaded
# explicitly (Fuzz/Sources/binary/Macro.swift).
plugin=()
if [[ " ${targets[*]} " == *" binary "* ]]; then
    swift build --target TierCacheMacrosPlugin >/dev/null 2>&1 \
        || { swift build --target TierCacheMacrosPlugin 2>&1 | grep -E "error:" >&2; exit 1; }
    plugin=(-Xswiftc -load-plugin-executable -Xswiftc "$root/.build/debug/TierCacheMacrosPlugin-tool#TierCacheMacrosPlugin")
fi
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (one of: ${all[*]})" >&2; exit 2; }
    log=$(swift build --package-path Fuzz --scratch-path "$scratch" --product "fuzz-$t" "${plugin[@]}" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing 2>&1) \
        || { echo "$log" | grep -E "error:" >&2; exit 1; }
    if echo "$log" | grep -E "warning: .*$root/Fuzz/"; then echo "fuzz.sh: warnings in Fuzz/ (above)" >&2; exit 1; fi
done
bin="$scratch/debug"
mkdir -p "$scratch/artifacts"

if [[ $seeds == 1 ]]; then
    for t in "${targets[@]}"; do
        mkdir -p "Fuzz/corpus/$t"
        TIERCACHE_FUZZ_WRITE_SEEDS="$root/Fuzz/corpus/$t" "$bin/fuzz-$t"
    done
    echo "seeds written under Fuzz/corpus/"
    exit 0
fi

# Leak checks stay on: every target is a pure function of its input, so a leak is ours.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1"
failed=0
for t in "${targets[@]}"; do
    work="$scratch/corpus/$t"
    mkdir -p "$work"
    start=$(date +%s)
    max_len=8192
    [[ $t == disk ]] && max_len=1048576
    if "$bin/fuzz-$t" -runs="$runs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$scratch/artifacts/$t-" "$work" "Fuzz/corpus/$t" >"$scratch/$t.log" 2>&1; then
        execs=$(grep -E "stat::number_of_executed_units" "$scratch/$t.log" | awk '{print $2}')
        cov=$(grep -oE "cov: [0-9]+" "$scratch/$t.log" | tail -1)
        echo "fuzz $t: ok, $execs inputs, $cov, $(( $(date +%s) - start )) s"
    else
        echo "fuzz $t: FAILED (log: $scratch/$t.log)"
        grep -E "ERROR|Fatal error|Test unit written|SUMMARY|deadly signal|timeout" "$scratch/$t.log" | head -20
        failed=1
    fi
done
exit $failed
