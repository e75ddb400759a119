#!/usr/bin/env bash
# paired.sh CAPTURE [PORT] [ROUNDS]
#
# The libpcap floor and connscope side by side, in turn (floor, default threads, --threads 1,
# then again, ROUNDS times, default 7), so that each round's three runs share the machine's
# minute: prints every run, then the median wall time and peak RSS of each, and the median over
# the rounds of connscope's time divided by the floor's of the same round.
#
# Environment:
#   CONNSCOPE   binary to time (default: target/release/connscope of this repository)
#   FLOOR       the libpcap floor, a bare pcap_next_ex loop (default: scripts/bench/floor.c,
#               built with cc -O2 -lpcap)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
capture=${1:?usage: paired.sh CAPTURE [PORT] [ROUNDS]}
port=${2:-18080}
rounds=${3:-7}
connscope=${CONNSCOPE:-$repo/target/release/connscope}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
floor=${FLOOR:-}
if [[ -z $floor ]]; then
    cc -O2 "$here/floor.c" -lpcap -o "$tmp/floor"
    floor=$tmp/floor
fi

cat "$capture" > /dev/null # a warm page cache for every run
for round in $(seq 1 "$rounds"); do
    for what in floor threads threads1; do
        case $what in
            floor) command=("$floor" "$capture") ;;
            threads) command=("$connscope" analyze "$capture" --port "$port" --format json) ;;
            threads1) command=("$connscope" analyze "$capture" --port "$port" --format json --threads 1) ;;
        esac
        start=$EPOCHREALTIME
        /usr/bin/time -f '%M' -o "$tmp/rss" "${command[@]}" > /dev/null
        end=$EPOCHREALTIME
        echo "$round $what $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }') $(tail -n 1 "$tmp/rss")"
    done
done | tee "$tmp/runs"

python3 - "$tmp/runs" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    round_, what, wall, rss = line.split()
    runs.setdefault(what, {})[int(round_)] = (float(wall), int(rss))
for what, label in (("floor", "libpcap floor"), ("threads", "connscope --format json"), ("threads1", "connscope --format json --threads 1")):
    walls = [w for w, _ in runs[what].values()]
    rss = [r for _, r in runs[what].values()]
    line = f"{label}: median {statistics.median(walls):.3f} s (min {min(walls):.3f}, max {max(walls):.3f}), peak RSS median {statistics.median(rss)} KB (max {max(rss)})"
    if what != "floor":
        ratios = [runs[what][r][0] / runs["floor"][r][0] for r in runs[what]]
        line += f"; / floor per round: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"
    print(line)
EOF
