#!/usr/bin/env bash
# The bounded soak/load test (docs/reliability.md): processes x tasks running get / getOrLoad /
# set / remove on memory + disk + S3 (moto on loopback) for a fixed number of operations, with
# every value read checked against what its writer last wrote.
#   scripts/soak.sh [tiercache-soak options]     e.g. --processes 4 --tasks 8 --ops 20000
# Without moto (python3 -m moto not installed) it runs memory + disk only and says so.
# Exits non-zero on a corrupt or foreign value or a failed worker.
# The release build goes to a build folder of its own (.build-release), so it neither waits for
# nor invalidates a debug build in .build; SOAK_CONFIGURATION=debug uses .build's debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
configuration=${SOAK_CONFIGURATION:-release}
if [[ $configuration == release ]]; then scratch=.build-release; else scratch=.build; fi
swift build -c "$configuration" --product tiercache-soak --scratch-path "$scratch" 2>&1 | grep -E "error:" && exit 1
services=()
cleanup() { for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
if [[ -x scripts/start-moto.sh ]] && python3 -c "import moto" 2>/dev/null; then
    # shellcheck source=/dev/null
    source scripts/start-moto.sh
    services+=("$MOTO_PID")
fi
"$scratch/$configuration/tiercache-soak" "$@"
