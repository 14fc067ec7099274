#!/usr/bin/env bash
# Reproduces a cold-start burst: N processes (tiercache-stampede) start at one instant against an
# empty bucket, each needing the same entry whose loader takes BUILD_MS; first without protection,
# then with the S3 lease (distributed single-flight). Prints, per mode and averaged over ROUNDS
# bursts: loader runs, entry PUTs, lease PUTs, all S3 requests, and the p50/p95 cold start (from
# the common start instant to the value in hand; process start-up is before the barrier).
#
#   scripts/stampede.sh [N=20] [ROUNDS=3] [BUILD_MS=1500]
#   CONFIG=release scripts/stampede.sh      (build the tool in release mode; debug by default)
#
# Uses moto from scripts/start-moto.sh (started here unless TIERCACHE_TEST_S3_ENDPOINT is set).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
ROUNDS=${2:-3}
BUILD_MS=${3:-1500}
CONFIG=${CONFIG:-debug}

swift build -c "$CONFIG" --product tiercache-stampede >/dev/null
bin="$(swift build -c "$CONFIG" --show-bin-path)/tiercache-stampede"

if [[ -z ${TIERCACHE_TEST_S3_ENDPOINT:-} ]]; then
    # shellcheck source=/dev/null
    source scripts/start-moto.sh
    trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
fi

out=$(mktemp -d -t stampede.XXXXXX)
for mode in off on; do
    flag=()
    [[ $mode == on ]] && flag=(--protect)
    for round in $(seq 1 "$ROUNDS"); do
        bucket="stampede-$mode-$round-$RANDOM$RANDOM"
        "$bin" --bucket "$bucket" --create-bucket
        start_at=$(( $(date +%s%3N) + 2000 ))
        pids=()
        for i in $(seq 1 "$N"); do
            "$bin" --bucket "$bucket" --build-ms "$BUILD_MS" --start-at "$start_at" "${flag[@]}" \
                >"$out/$mode-$round-$i.json" &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid"; done
    done
done

python3 - "$out" "$N" "$ROUNDS" "$BUILD_MS" <<'PY'
import glob, json, sys
out, n, rounds, build = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
print(f"stampede: {n} processes x {rounds} bursts, loader {build} ms, moto on loopback")
print(f"{'protection':<11}{'loader runs':>12}{'entry PUTs':>11}{'lease PUTs':>11}{'S3 requests':>12}{'p50 ms':>8}{'p95 ms':>8}")
for mode in ("off", "on"):
    rows = [json.loads(open(f).read()) for f in sorted(glob.glob(f"{out}/{mode}-*.json"))]
    if len(rows) != n * rounds or not all(r["valid"] for r in rows):
        sys.exit(f"stampede: {mode}: {len(rows)} of {n * rounds} processes answered")
    per = lambda field: sum(r[field] for r in rows) / rounds
    ms = [r["ms"] for r in rows]
    print(f"{mode:<11}{per('loaderRuns'):>12.1f}{per('entryPuts'):>11.1f}{per('leasePuts'):>11.1f}"
          f"{per('s3Requests'):>12.1f}{pct(ms, 50):>8}{pct(ms, 95):>8}")
PY
rm -rf "$out"
