#!/usr/bin/env bash
# Live capture against tcpdump on the same traffic: bounded wrk load against nginx on loopback while
# `connscope capture` (its default buffer and snaplen) and `tcpdump -B 65536 -w FILE` both run; then
# tcpdump's file is analysed offline by `connscope analyze`. Prints per run: wrk's requests/s, the
# live capture's packets received and drops (kernel, interface), tcpdump's kernel drops, and whether
# the live report's counts equal the offline analysis' (the differing fields when not). Two modes,
# keep-alive (wrk -t2 -c64) and `Connection: close` (wrk -t2 -c32), RUNS runs each; the machine's
# load (`uptime`) is printed before and after each mode. Needs root (capture), nginx, wrk, tcpdump,
# python3 (to read the JSON reports).
#
#   scripts/bench/live-vs-tcpdump.sh                      # 3 runs of 10 s per mode
#   RUNS=1 SECONDS_OF_LOAD=5 CONNSCOPE=/tmp/cs scripts/bench/live-vs-tcpdump.sh
#
# Exit status 0 when every run had 0 drops on both sides and equal counts, 1 otherwise.
# Only processes this script starts are ever signalled, by their PIDs.
set -euo pipefail

LOAD=${SECONDS_OF_LOAD:-10}
(( LOAD > 10 )) && LOAD=10
(( LOAD < 1 )) && LOAD=1
RUNS=${RUNS:-3}
(( RUNS > 10 )) && RUNS=10
(( RUNS < 1 )) && RUNS=1
. "$(dirname "$0")/live-lib.sh"
live_setup live-vs-tcpdump 'keepalive_requests 1000000;'

# One run: both captures, the load, both stopped, tcpdump's file analysed; prints the run's line.
# Arguments: mode name, run number, then wrk's extra arguments.
run() {
    local mode=$1 n=$2 cs td rps
    shift 2
    local dir=$WORK/$mode-$n
    mkdir -p "$dir"
    # tcpdump writes its file as root (-Z root): the temp dir is root's, mode 700.
    timeout $((LOAD + 60)) tcpdump -i lo -nn -B 65536 -Z root -w "$dir/tcpdump.pcap" "tcp port $PORT" 2>"$dir/tcpdump.err" &
    td=$!
    PIDS+=($td)
    timeout $((LOAD + 60)) "$BIN" capture --port "$PORT" -q --format json >"$dir/live.json" 2>"$dir/live.err" &
    cs=$!
    PIDS+=($cs)
    for _ in $(seq 50); do grep -q "listening on" "$dir/tcpdump.err" && break; sleep 0.1; done
    sleep 1.5
    rps=$(timeout $((LOAD + 10)) wrk "$@" -d"${LOAD}s" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}')
    sleep 1
    live_stop live-vs-tcpdump "$cs"
    live_stop live-vs-tcpdump "$td"
    timeout 300 "$BIN" analyze "$dir/tcpdump.pcap" --port "$PORT" --format json >"$dir/offline.json"
    python3 - "$mode" "$n" "${rps:-?}" "$dir" <<'EOF'
import json, re, sys
mode, n, rps, d = sys.argv[1:5]
try:
    live = json.load(open(f"{d}/live.json"))
except ValueError:
    sys.exit(f"{mode} run {n}: no JSON report from connscope capture: {open(f'{d}/live.err').read().strip()}")
offline = json.load(open(f"{d}/offline.json"))
m = re.search(r"(\d+) packets? dropped by kernel", open(f"{d}/tcpdump.err").read())
td_drop = int(m.group(1)) if m else -1

def get(report, dotted):
    v = report
    for part in dotted.split("."):
        v = v[part]
    return v

fields = ["summary.connections", "summary.handshakes", "summary.http_requests", "summary.http_responses",
          "summary.fin_first.client", "summary.fin_first.server", "summary.rst_connections",
          "summary.keepalive_probes", "summary.evicted_connections", "summary.stream_gaps", "packets.matched"]
diff = [f"{f.removeprefix('summary.')} live {get(live, f)} offline {get(offline, f)}"
        for f in fields if get(live, f) != get(offline, f)]
c = live["capture"]
no_drops = c["dropped_by_kernel"] == 0 and c["dropped_by_interface"] == 0 and td_drop == 0
print(f"{mode:10} run {n}: wrk {rps:>9} req/s | live: received {c['received']}, dropped_by_kernel {c['dropped_by_kernel']}, "
      f"dropped_by_interface {c['dropped_by_interface']} | tcpdump dropped by kernel {td_drop} | "
      f"connections {get(live, 'summary.connections')}, http_requests {get(live, 'summary.http_requests')}, "
      f"packets matched {get(live, 'packets.matched')} | counts {'equal' if not diff else 'DIFFER: ' + '; '.join(diff)}"
      f"{'' if no_drops else ' | DROPS'}")
with open(f"{d}/../results", "a") as out:
    out.write(f"{int(no_drops)} {int(not diff)}\n")
EOF
    rm -f "$dir/tcpdump.pcap"
}

echo "live-vs-tcpdump: nginx on 127.0.0.1:$PORT; $BIN capture --port $PORT -q --format json (defaults) alongside"
echo "  tcpdump -i lo -nn -B 65536 -w FILE 'tcp port $PORT', then $BIN analyze FILE --port $PORT; $RUNS runs of ${LOAD}s per mode"
for mode in keepalive close; do
    echo "uptime before $mode: $(uptime)"
    for n in $(seq "$RUNS"); do
        if [[ $mode == keepalive ]]; then
            run "$mode" "$n" -t2 -c64
        else
            run "$mode" "$n" -t2 -c32 -H 'Connection: close'
        fi
    done
    echo "uptime after $mode: $(uptime)"
done
read -r total clean equal < <(awk '{t++; c+=$1; e+=$2} END {print t+0, c+0, e+0}' "$WORK/results")
echo "total: $total runs; $clean with 0 drops on both (live kernel+interface, tcpdump kernel); $equal with equal counts"
(( clean == total && equal == total ))
