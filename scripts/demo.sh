#!/usr/bin/env bash
# The README's main job: set-up, then the cold-start demo.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift run -c release tiercache-demo "$@"
