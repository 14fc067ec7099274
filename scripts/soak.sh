#!/usr/bin/env bash
# The bounded soak/load test (docs/reliability.md): processes x tasks running get / getOrLoad /
# set / remove on memory + disk + S3 (moto on loopback) for a fixed number of operations, with
# every value read checked against what its writer last wrote.
#   scripts/soak.sh [tiercache-soak options]     e.g. --processes 4 --tasks 8 --ops 20000
# Without moto (python3 -m moto not installed) it runs memory + disk only and says so.
# Exits non-zero on a corrupt or foreign value or a failed worker.
# SOAK_CONFIGURATION=debug uses the debug build (what docs/reliability.md's figures were taken
# with, the release build of swift-crypto not fitting the time on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
configuration=${SOAK_CONFIGURATION:-release}
swift build -c "$configuration" --product tiercache-soak 2>&1 | grep -E "error:" && exit 1
services=()
cleanup() { for pid in "${services[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
if [[ -x scripts/start-moto.sh ]] && python3 -c "import moto" 2>/dev/null; then
    # shellcheck source=/dev/null
    source scripts/start-moto.sh
    services+=("$MOTO_PID")
fi
".build/$configuration/tiercache-soak" "$@"
