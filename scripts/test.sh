#!/usr/bin/env bash
# Runs every test: unit tests, fixture tests (real captures in fixtures/ with their exact counts),
# and the live-capture tests on loopback (they need root or CAP_NET_RAW; CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
cargo test --locked "$@"
