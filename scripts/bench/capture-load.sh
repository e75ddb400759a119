#!/usr/bin/env bash
# Capture under load: the same bounded wrk load on loopback, once while `connscope capture` runs and
# once while `tcpdump -w /dev/null` runs, with the same filter, buffer and snaplen. Prints packets
# handled, packets/s and drops for each. Needs root (capture), nginx, wrk (installed from Debian's
# `wrk` package if missing), python3 (to read the JSON report).
#
#   scripts/bench/capture-load.sh            # 10 s of wrk -t2 -c50 each
#   SECONDS_OF_LOAD=5 CONNECTIONS=100 BUFFER_MIB=8 scripts/bench/capture-load.sh
#
# Only processes this script starts are ever signalled, by their PIDs.
set -euo pipefail

LOAD=${SECONDS_OF_LOAD:-10}
(( LOAD > 10 )) && LOAD=10
CONNECTIONS=${CONNECTIONS:-50}
BUFFER_MIB=${BUFFER_MIB:-64}
SNAPLEN=262144
. "$(dirname "$0")/live-lib.sh"
live_setup capture-load

# Runs the load; prints wrk's requests/s.
load() {
    timeout $((LOAD + 10)) wrk -t2 -c"$CONNECTIONS" -d"${LOAD}s" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}'
}

echo "load: wrk -t2 -c$CONNECTIONS -d${LOAD}s against nginx on 127.0.0.1:$PORT; capture filter 'tcp port $PORT', buffer $BUFFER_MIB MiB, snaplen $SNAPLEN"

"$BIN" capture --port "$PORT" -B "$BUFFER_MIB" -s "$SNAPLEN" -q --format json >"$WORK/connscope.json" &
CS=$!
PIDS+=($CS)
sleep 1
RPS=$(load)
sleep 1
live_stop capture-load "$CS"
python3 - "$WORK/connscope.json" "$RPS" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["capture"]
print(f"connscope capture : {c['received']:>9} packets in {c['duration']:.1f} s ({c['received'] / c['duration']:,.0f}/s), "
      f"dropped by kernel {c['dropped_by_kernel']}, by interface {c['dropped_by_interface']}; "
      f"{r['summary']['connections']} connections, wrk {sys.argv[2]} req/s")
EOF

timeout $((LOAD + 30)) tcpdump -i lo -nn -B $((BUFFER_MIB * 1024)) -s "$SNAPLEN" -w /dev/null "tcp port $PORT" 2>"$WORK/tcpdump.err" &
TD=$!
PIDS+=($TD)
sleep 1
START=$(date +%s.%N)
RPS=$(load)
sleep 1
END=$(date +%s.%N)
live_stop capture-load "$TD"
python3 - "$WORK/tcpdump.err" "$RPS" "$START" "$END" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def n(pattern):
    m = re.search(r"(\d+) packets? " + pattern, text)
    return int(m.group(1)) if m else -1
captured, dropped = n("captured"), n("dropped by kernel")
seconds = float(sys.argv[4]) - float(sys.argv[3]) + 1
print(f"tcpdump -w /dev/null: {captured:>9} packets in ~{seconds:.1f} s ({captured / seconds:,.0f}/s), "
      f"dropped by kernel {dropped}, received by filter {n('received by filter')} (libpcap's count; doubled on lo); wrk {sys.argv[2]} req/s")
EOF
