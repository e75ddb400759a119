#!/usr/bin/env bash
# Peak RSS and time of `connscope analyze` on a SYN flood of N half-open connections (default 1,000,000),
# with the default --max-connections and with --max-connections 100000; then with a cap of N (all open
# at once) and of 1000 (the baseline: binary, mapped capture file, report) for the bytes per open
# connection. A benchmark, not a test: numbers are in docs/memory.md.
# Usage: scripts/hostile/flood-rss.sh [N]      (needs python3 and /usr/bin/time; builds --release)
set -euo pipefail
n=${1:-1000000}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/connscope-flood.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cargo build --release --manifest-path "$root/Cargo.toml" --quiet
bin=${CARGO_TARGET_DIR:-$root/target}/release/connscope
python3 "$root/scripts/hostile/make-captures.py" "$dir" --flood "$n"
pcap=$dir/syn-flood-$n.pcap
echo "capture: $(du -h "$pcap" | cut -f1), $n SYNs"
# Runs the analysis with extra arguments; prints peak RSS, time and the report's counts; sets $rss_kb.
run() {
    local label=$1; shift
    local stats counts
    stats=$( { /usr/bin/time -f '%M KB %e s' "$bin" analyze "$pcap" --format json "$@" > "$dir/report.json"; } 2>&1 | tail -n 1)
    counts=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print("connections", s["connections"], "evicted", s["evicted_connections"])' "$dir/report.json")
    rss_kb=${stats%% KB*}
    echo "$label: peak RSS $stats; $counts"
}
run "default --max-connections"
run "--max-connections 100000" --max-connections 100000
run "--max-connections $n (all open)" --max-connections "$n"
all_open=$rss_kb
run "--max-connections 1000 (baseline)" --max-connections 1000
echo "bytes per open connection: $((all_open * 1024 / n)) (RSS / N), $(((all_open - rss_kb) * 1024 / n)) (above the baseline)"
