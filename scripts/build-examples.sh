#!/usr/bin/env bash
# Builds every standalone package under Examples/ (each depends on the root by path `../..`).
# CI calls this; each example keeps its own build folder (Examples/<name>/.build), and they all
# resolve the same mirrored packages. Usage: scripts/build-examples.sh [name ...]
set -euo pipefail
cd "$(dirname "$0")/.."

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
    for dir in Examples/*/; do
        [[ -f "$dir/Package.swift" ]] && names+=("$(basename "$dir")")
    done
fi

for name in "${names[@]}"; do
    dir="Examples/$name"
    echo "build-examples: $name"
    log=$(mktemp)
    if ! swift build --package-path "$dir" 2>&1 | tee "$log" | grep -E "error:|warning:" | grep -E "^$(pwd)/Examples/" ; then :; fi
    if ! grep -q "Build complete" "$log"; then
        cat "$log" >&2
        echo "build-examples: $name failed" >&2
        exit 1
    fi
    if grep -E "^$(pwd)/Examples/.*warning:" "$log" >/dev/null; then
        echo "build-examples: $name has warnings (above)" >&2
        exit 1
    fi
    # The macro product alone builds swift-syntax: an example that does not use it resolves the
    # package (SwiftPM resolves every dependency, and plans a build folder for each of its
    # modules) but must not compile any of it.
    if ! grep -q TierCacheMacros "$dir/Package.swift" \
        && [[ -n $(find "$dir/.build/debug/" -path '*SwiftSyntax*' \( -name '*.o' -o -name '*.swiftmodule' \) -print -quit) ]]; then
        echo "build-examples: $name compiled swift-syntax without using TierCacheMacros" >&2
        exit 1
    fi
    rm -f "$log"
done
echo "build-examples: built ${#names[@]} example(s)"
