#!/usr/bin/env bash
# make-capture.sh OUTDIR [SECONDS]
#
# Makes the connscope benchmark capture on loopback and its reference counts:
#   OUTDIR/bench.pcap      tcpdump capture of 'tcp port PORT' during two load phases
#   OUTDIR/reference.txt   counts computed by tshark (one pass over the file)
#   OUTDIR/fields.tsv      the per-packet tshark fields those counts come from
#   OUTDIR/wrk-*.txt, OUTDIR/tcpdump.log   what the load generator and tcpdump said
#
# Load (each phase bounded by wrk's -d and by `timeout`):
#   1. keep-alive:  wrk -t2 -c50 -d${SECONDS}s               (few connections, many requests)
#   2. close:       wrk -t2 -c50 -d${CLOSE_SECONDS}s -H 'Connection: close'
#                   (one connection per request: tens of thousands of short connections,
#                    and Linux reuses client ports, so 4-tuples repeat)
# SECONDS (default 4) is the keep-alive phase; CLOSE_SECONDS defaults to 2×SECONDS.
# Environment: PORT (18087), THREADS (2), CONNS (50), BODY_BYTES (4096), CLOSE_SECONDS.
# The capture is large (GBs): never put OUTDIR inside the repository.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
outdir=${1:?usage: make-capture.sh OUTDIR [SECONDS]}
keepalive_s=${2:-4}
close_s=${CLOSE_SECONDS:-$((keepalive_s * 2))}
port=${PORT:-18087}
threads=${THREADS:-2}
conns=${CONNS:-50}
export BODY_BYTES=${BODY_BYTES:-4096}

pcap=$outdir/bench.pcap
tmp=$(mktemp -d)
server_pid=""
tcpdump_pid=""

# Stop only what this script started, whatever way it exits.
cleanup() {
    [[ -n $tcpdump_pid ]] && kill -INT "$tcpdump_pid" 2>/dev/null && wait "$tcpdump_pid" 2>/dev/null || true
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

log() { printf '[make-capture %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || { echo "missing: $c" >&2; exit 1; }
    done
}

# Build the stdlib-only Go server into the temp dir (no module, no network).
start_server() {
    log "building server.go"
    GOFLAGS= go build -o "$tmp/connscope-bench-server" "$here/server.go"
    "$tmp/connscope-bench-server" "127.0.0.1:$port" 2>"$outdir/server.log" &
    server_pid=$!
    # Wait (bounded) until it accepts connections. This probe happens before
    # tcpdump starts, so it is not in the capture.
    local i
    for i in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server did not start:" >&2; cat "$outdir/server.log" >&2; exit 1
}

# tcpdump with a 64 MiB kernel buffer (-B, in KiB) so the loopback burst is not
# dropped, and full snaplen so HTTP payloads are whole.
start_tcpdump() {
    tcpdump -i lo -s 262144 -B 65536 -w "$pcap" "tcp port $port" 2>"$outdir/tcpdump.log" &
    tcpdump_pid=$!
    local i
    for i in $(seq 50); do
        grep -q 'listening on' "$outdir/tcpdump.log" && return 0
        sleep 0.1
    done
    echo "tcpdump did not start:" >&2; cat "$outdir/tcpdump.log" >&2; exit 1
}

stop_tcpdump() {
    sleep 0.5   # let the last FINs/ACKs reach the capture
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || true
    tcpdump_pid=""
    cat "$outdir/tcpdump.log" >&2
}

# A capture made while the server was down is full of SYN/RST: refuse it.
check_server() {
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server (pid $server_pid) died during $1; its log:" >&2
        cat "$outdir/server.log" >&2
        wait "$server_pid" || echo "exit status $?" >&2
        server_pid=""
        exit 1
    fi
}

load() {
    local url=http://127.0.0.1:$port/
    log "phase 1: keep-alive, ${keepalive_s}s"
    timeout $((keepalive_s + 15)) wrk -t"$threads" -c"$conns" -d"${keepalive_s}s" "$url" \
        | tee "$outdir/wrk-keepalive.txt" >&2
    check_server "the keep-alive phase"
    log "phase 2: Connection: close, ${close_s}s"
    timeout $((close_s + 15)) wrk -t"$threads" -c"$conns" -d"${close_s}s" \
        -H 'Connection: close' "$url" | tee "$outdir/wrk-close.txt" >&2
    check_server "the Connection: close phase"
}

# One tshark pass (they take minutes and GBs on millions of packets): per-packet
# fields for awk, plus the conv,tcp table printed after them.
reference() {
    local f=$outdir/fields.tsv raw=$tmp/tshark.out
    log "tshark reference pass (slow: minutes)"
    tshark -r "$pcap" -n -d "tcp.port==$port,http" -T fields -E separator=/t \
        -e tcp.stream -e frame.time_epoch -e ip.src -e tcp.srcport -e ip.dst -e tcp.dstport \
        -e tcp.flags.syn -e tcp.flags.ack -e tcp.flags.fin -e tcp.flags.reset \
        -e http.request.method \
        -z conv,tcp >"$raw"
    # Split: field lines come first, then the statistics block ("=====...").
    awk -v f="$f" -v c="$outdir/conv-tcp.txt" \
        '/^====/ {s=1} { if (s) print > c; else print > f }' "$raw"
    rm -f "$raw"

    local npackets nbytes nconv
    npackets=$(capinfos -M -c "$pcap" | awk -F': *' '/Number of packets/ {print $2}')
    nbytes=$(stat -c %s "$pcap")
    nconv=$(grep -c '<->' "$outdir/conv-tcp.txt" || true)
    {
        echo "# connscope bench capture reference counts (tshark $(tshark --version | head -1 | awk '{print $3}'))"
        echo "# file: $pcap   port: $port   made: $(date -u +%FT%TZ)"
        echo "packets=$npackets"
        echo "file_bytes=$nbytes"
        echo "connections_conv_tcp=$nconv"
        awk -F'\t' -v port="$port" -f /dev/stdin "$f" <<'AWK'
# Columns: 1 stream, 2 epoch, 3 src, 4 sport, 5 dst, 6 dport, 7 syn, 8 ack, 9 fin, 10 rst, 11 methods
{
    s = $1; a = $3 ":" $4; b = $5 ":" $6
    streams[s] = 1
    # Distinct 4-tuples, direction-independent.
    key = (a < b) ? a "-" b : b "-" a
    tuples[key] = 1
    # Timestamp regressions in file order (compare seconds, then the fraction).
    split($2, t, ".")
    if (NR > 1 && (t[1] < ps || (t[1] == ps && t[2] + 0 < pf))) regress++
    ps = t[1] + 0; pf = t[2] + 0
    # Initial SYN (SYN without ACK): its sender is the client.
    if ($7 == 1 && $8 == 0) { syn[s] = 1; if (!(s in client)) client[s] = a }
    # Without a SYN, the client is the side not on the server port.
    if (!(s in client) && !(s in guess)) guess[s] = ($4 == port) ? b : a
    if ($9 == 1 && !(s in finby)) finby[s] = a
    if ($10 == 1) rst[s] = 1
    if ($11 != "") { reqframes++; reqs += split($11, m, ",") }
}
END {
    for (s in streams) {
        n++
        c = (s in client) ? client[s] : guess[s]
        if (!(s in finby)) fnone++
        else if (finby[s] == c) fclient++
        else fserver++
    }
    for (k in tuples) nt++
    for (s in syn) nsyn++
    for (s in rst) nrst++
    print "tcp_streams=" n
    print "handshakes_initial_syn=" nsyn + 0
    print "fin_first_client=" fclient + 0
    print "fin_first_server=" fserver + 0
    print "fin_first_none=" fnone + 0
    print "streams_with_rst=" nrst + 0
    print "http_requests=" reqframes + 0
    print "http_request_lines=" reqs + 0
    print "distinct_4tuples=" nt
    print "timestamp_regressions=" regress + 0
}
AWK
        echo "tcpdump_dropped_by_kernel=$(awk '/dropped by kernel/ {print $1}' "$outdir/tcpdump.log")"
        echo "keepalive_seconds=$keepalive_s"
        echo "close_seconds=$close_s"
        echo "wrk=-t$threads -c$conns body_bytes=$BODY_BYTES"
    } >"$outdir/reference.txt"
    cat "$outdir/reference.txt"
}

main() {
    need go wrk tcpdump tshark capinfos timeout
    mkdir -p "$outdir"
    start_server
    start_tcpdump
    load
    stop_tcpdump
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    capinfos "$pcap" >&2
    if [[ ${SKIP_REFERENCE:-0} == 1 ]]; then
        log "SKIP_REFERENCE=1: no tshark pass"
    else
        reference
    fi
}

main
