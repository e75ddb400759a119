#!/usr/bin/env bash
# Runs every test: unit tests, fixture tests (real captures in fixtures/ with their exact counts),
# the tshark cross-check, and the live-capture and lab tests on loopback (they need root or
# CAP_NET_RAW; CI runs as root). Ends with one line totalling every test binary's results.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
