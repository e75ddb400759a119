#!/usr/bin/env bash
# run.sh [CAPTURE [PORT [RUNS]]]
#
# Without CAPTURE: the shared bench capture, $BENCH_CAPTURE (default
# /tmp/connscope-perf/big.pcap, where `../shared/bench/make_big_pcap.sh` writes it; made first when
# missing, with a 1 GiB tcpdump buffer so that the kernel drops nothing), on port 18080.
#
# Times, on one capture and in one run, side by side and in turns (A B C A B C ..., RUNS rounds,
# default 5):
#   the libpcap floor (a bare pcap_next_ex loop), the mmap floor (a walk of the record headers),
#   connscope analyze --format json (default threads and --threads 1), connscope analyze (table),
#   tcpdump -nr FILE -w /dev/null; then tshark -q -z conv,tcp and -z http,tree (SLOW_RUNS times)
# and prints Markdown tables on stdout (paste into docs/performance.md):
#   wall time (median over the rounds), packets/s, MB/s (10^6 bytes of file per second), peak RSS
#   (/usr/bin/time %M), connscope's time over the libpcap floor's (the median over the rounds of
#   the ratio within each round) next to issue 16's targets, a memory check on the capture doubled
#   with `mergecap -a` (peak RSS must not grow with the file), and connscope's counts next to the
#   reference counter's (`pcap_flows --full`) and to make-capture.sh's reference.txt, if present.
# The floors and the reference counter are the shared bench's C programs (../shared/bench/c beside
# the repository, or BENCH_C), built here; without them, floor.c stands in for the libpcap floor.
# Progress goes to stderr.
#
# Environment:
#   CONNSCOPE   binary to time (default: target/release/connscope of this repository,
#               built with `cargo build --release` if missing)
#   BENCH_C     the shared bench's C sources (default: ../shared/bench/c beside the repository)
#   OUTDIR      where the doubled capture goes (default: the capture's directory)
#   SLOW_RUNS   runs for the tshark commands (default 1; 0 leaves them out)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
capture=${1:-${BENCH_CAPTURE:-/tmp/connscope-perf/big.pcap}}
port=${2:-18080}
runs=${3:-5}
slow_runs=${SLOW_RUNS:-1}
outdir=${OUTDIR:-$(dirname "$capture")}
connscope=${CONNSCOPE:-$repo/target/release/connscope}
bench_c=${BENCH_C:-$repo/../shared/bench/c}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log() { printf '[run %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || { echo "missing: $c (apt-get install ...)" >&2; exit 1; }
    done
}

build() {
    if [[ ! -x $connscope ]]; then
        log "building connscope (cargo build --release in $repo)"
        (cd "$repo" && cargo build --release)
    fi
    if [[ -x $bench_c/build.sh ]]; then
        "$bench_c/build.sh" "$tmp/bin" >&2
        ln -s "$tmp/bin/pcap_floor" "$tmp/floor"
    else
        log "no shared bench programs in $bench_c: floor.c is the libpcap floor, no mmap floor, no reference counts"
        cc -O2 "$here/floor.c" -lpcap -o "$tmp/floor"
    fi
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# run_once ID COMMAND...: one timed run of COMMAND (stdout to /dev/null), appended to ID's wall
# times and peak RSS; a failing command shows up as "exit N" in the table.
run_once() {
    local id=$1; shift
    local t0 t1 rc=0
    log "$id: $*"
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$tmp/$id.time" "$@" >/dev/null 2>"$tmp/$id.err" || rc=$?
    t1=$EPOCHREALTIME
    if ((rc != 0)); then echo "exit $rc" >"$tmp/$id.status"; log "$id failed: $(tail -3 "$tmp/$id.err")"; fi
    echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}' >>"$tmp/$id.times"
    tail -1 "$tmp/$id.time" >>"$tmp/$id.rss"
}

# summarise ID: median wall time, median peak RSS, min and max time, status, into $tmp/ID.res.
summarise() {
    local id=$1 status=ok
    [[ -f $tmp/$id.status ]] && status=$(cat "$tmp/$id.status")
    echo "$(median <"$tmp/$id.times") $(median <"$tmp/$id.rss") $(sort -g "$tmp/$id.times" | sed -n '1p;$p' | paste -sd' ') $status" >"$tmp/$id.res"
}

# measure ID N COMMAND...: N runs of COMMAND in a row, summarised.
measure() {
    local id=$1 n=$2 i; shift 2
    for ((i = 1; i <= n; i++)); do run_once "$id" "$@"; done
    summarise "$id"
}

# row ID LABEL RUNS COMMAND FILE_BYTES PACKETS: one Markdown table row from $tmp/ID.res.
row() {
    local id=$1 label=$2 n=$3 cmd=$4 bytes=$5 packets=$6
    read -r secs rss lo hi status <"$tmp/$id.res"
    awk -v l="$label" -v n="$n" -v c="$cmd" -v s="$secs" -v r="$rss" -v b="$bytes" \
        -v p="$packets" -v st="$status" -v lo="$lo" -v hi="$hi" 'BEGIN {
        note = (st == "ok") ? "" : " (" st ")"
        range = (n > 1) ? sprintf("%.2f–%.2f", lo, hi) : "(1 run)"
        printf "| %s%s | `%s` | %d | %.2f | %s | %.2f M | %.0f | %.1f |\n", l, note, c, n, s, range, p / s / 1e6, b / s / 1e6, r / 1024
    }'
}

secs() { awk '{printf "%.2f", $1}' "$tmp/$1.res"; }
rss_mib() { awk '{printf "%.1f", $2 / 1024}' "$tmp/$1.res"; }
ratio() { awk -v a="$(secs "$1")" -v b="$(secs "$2")" 'BEGIN {printf "%.2f", a / b}'; }

timings() {
    local bytes packets f=$capture
    bytes=$(stat -c %s "$f")
    log "warming the page cache (every tool then reads the file from memory)"
    cat "$f" >/dev/null
    packets=$("$tmp/floor" "$f" | sed -n 's/^packets=\([0-9]*\).*/\1/p')

    # The fast commands take turns, run after run: this VM's speed drifts over minutes, and turns
    # keep the ratios between them fair.
    local i ids=(floor json json1 table tcpdump)
    [[ -x $tmp/bin/pcap_raw ]] && ids+=(raw)
    for ((i = 1; i <= runs; i++)); do
        run_once floor "$tmp/floor" "$f"
        run_once json "$connscope" analyze "$f" --port "$port" --format json
        run_once json1 "$connscope" analyze "$f" --port "$port" --format json --threads 1
        run_once table "$connscope" analyze "$f" --port "$port"
        run_once tcpdump tcpdump -nr "$f" -w /dev/null
        [[ -x $tmp/bin/pcap_raw ]] && run_once raw "$tmp/bin/pcap_raw" "$f"
    done
    for id in "${ids[@]}"; do summarise "$id"; done
    "$connscope" analyze "$f" --port "$port" --format json >"$tmp/report.json" 2>/dev/null || true
    if ((slow_runs > 0)); then
        measure conv "$slow_runs" tshark -r "$f" -q -z conv,tcp
        measure http "$slow_runs" tshark -r "$f" -q -z http,tree
    fi

    echo "Capture: \`$f\` — $packets packets, $bytes bytes; page cache warm; median wall time over the runs shown."
    echo
    echo "| program | command | runs | wall s (median) | min–max s | packets/s | MB/s | peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|"
    row json "connscope JSON" "$runs" "connscope analyze FILE --port $port --format json" "$bytes" "$packets"
    row json1 "connscope JSON, 1 thread" "$runs" "connscope analyze FILE --port $port --format json --threads 1" "$bytes" "$packets"
    row table "connscope table" "$runs" "connscope analyze FILE --port $port" "$bytes" "$packets"
    row floor "libpcap floor" "$runs" "pcap_floor FILE" "$bytes" "$packets"
    [[ -f $tmp/raw.res ]] && row raw "mmap floor" "$runs" "pcap_raw FILE" "$bytes" "$packets"
    row tcpdump "tcpdump" "$runs" "tcpdump -nr FILE -w /dev/null" "$bytes" "$packets"
    if ((slow_runs > 0)); then
        row conv "tshark conv" "$slow_runs" "tshark -r FILE -q -z conv,tcp" "$bytes" "$packets"
        row http "tshark http" "$slow_runs" "tshark -r FILE -q -z http,tree" "$bytes" "$packets"
    fi
    echo
    echo "| ratio (median over the rounds of the ratio within a round) | value | target (issue 16) |"
    echo "|---|---|---|"
    echo "| connscope JSON, default threads / libpcap floor | $(paired_ratio json floor) | ≤ 0.8 |"
    echo "| connscope JSON, 1 thread / libpcap floor | $(paired_ratio json1 floor) | ≤ 1.0 |"
    echo "| connscope table / libpcap floor | $(paired_ratio table floor) | |"
    [[ -f $tmp/raw.res ]] && echo "| mmap floor / libpcap floor | $(paired_ratio raw floor) | |"
    if ((slow_runs > 0)); then
        echo "| tshark conv,tcp / connscope JSON (time) | $(ratio conv json) | |"
        echo "| tshark http,tree / connscope JSON (time) | $(ratio http json) | |"
    fi
    echo "| connscope JSON peak RSS, default threads | $(rss_mib json) MiB | ≤ 64 MiB |"
    echo "| connscope JSON peak RSS, 1 thread | $(rss_mib json1) MiB | ≤ 64 MiB |"
}

# paired_ratio A B: the median over the rounds of A's time over B's in the same round.
paired_ratio() {
    paste "$tmp/$1.times" "$tmp/$2.times" | awk '{printf "%.3f\n", $1 / $2}' | median | awk '{printf "%.2f", $1}'
}

# peak_anon FILE: one more connscope run, polling RssAnon in /proc/PID/status every 20 ms.
# %M (VmHWM) also counts the pages of a memory-mapped input file, which grow with the file
# but are clean page cache the kernel can drop; RssAnon is the heap and stacks alone.
# Sampling can miss a spike shorter than 20 ms.
peak_anon() {
    local pid kib peak=0
    "$connscope" analyze "$1" --port "$port" --format json >/dev/null 2>&1 &
    pid=$!
    while kib=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [[ -n $kib ]]; do
        ((kib > peak)) && peak=$kib
        sleep 0.02
    done
    wait "$pid" || true
    awk -v k="$peak" 'BEGIN {printf "%.1f", k / 1024}'
}

# Peak RSS on the capture and on the capture twice (mergecap -a: the same packets again,
# same timestamps and ISNs, after the first copy). It must not grow with the file.
memory_check() {
    local x2=$outdir/$(basename "${capture%.*}")-x2.pcap n=$((runs < 3 ? runs : 3))
    if [[ ! -s $x2 || $x2 -ot $capture ]]; then
        log "mergecap -a -F pcap -w $x2 (capture twice)"
        mergecap -a -F pcap -w "$x2" "$capture" "$capture"
    fi
    cat "$x2" >/dev/null
    measure x2 "$n" "$connscope" analyze "$x2" --port "$port" --format json
    echo
    echo "Memory check: \`connscope analyze FILE --port $port --format json\`, peak RSS (median of runs)."
    echo
    echo "| file | size bytes | wall s | peak RSS MiB | peak anonymous RSS MiB (sampled) |"
    echo "|---|---|---|---|---|"
    echo "| capture | $(stat -c %s "$capture") | $(secs json) | $(rss_mib json) | $(peak_anon "$capture") |"
    echo "| capture twice (\`mergecap -a\`) | $(stat -c %s "$x2") | $(secs x2) | $(rss_mib x2)$(awk '$5 != "ok" {print " (" $5 " " $6 ")"}' "$tmp/x2.res") | $(peak_anon "$x2") |"
}

# connscope's summary next to the reference counter's last line (`pcap_flows --full`).
flows_counts() {
    [[ -x $tmp/bin/pcap_flows && -s $tmp/report.json ]] || return 0
    log "pcap_flows --full $capture 'tcp port $port'"
    "$tmp/bin/pcap_flows" --full "$capture" "tcp port $port" | tail -n 1 >"$tmp/flows.txt"
    echo
    echo "Counts: connscope (JSON summary) vs \`pcap_flows --full FILE 'tcp port $port'\` (the shared bench's reference counter)."
    echo
    python3 - "$tmp/flows.txt" "$tmp/report.json" <<'PY'
import json, sys
ref = dict(field.split("=", 1) for field in open(sys.argv[1]).read().split() if "=" in field)
s = json.load(open(sys.argv[2]))["summary"]
rows = [
    ("connections", "connections", s["connections"]),
    ("handshakes (SYN seen)", "handshakes", s["handshakes"]),
    ("FIN first: client", "fin_first_client", s["fin_first"]["client"]),
    ("FIN first: server", "fin_first_server", s["fin_first"]["server"]),
    ("HTTP requests", "http_requests", s["http_requests"]),
    ("keep-alive probes", "keepalive_probes", s["keepalive_probes"]),
]
print("| count | pcap_flows | connscope | equal |")
print("|---|---|---|---|")
for name, key, got in rows:
    want = ref.get(key, "?")
    print(f"| {name} | {want} | {got} | {'yes' if str(got) == want else '**no**'} |")
PY
}

# connscope's summary next to make-capture.sh's reference counts.
counts() {
    local ref
    ref=$(dirname "$capture")/reference.txt
    [[ -s $ref && -s $tmp/report.json ]] || { log "no reference.txt or no JSON report: skipping counts"; return 0; }
    echo
    echo "Counts: connscope (JSON summary) vs reference (tshark, \`$ref\`)."
    echo
    python3 - "$ref" "$tmp/report.json" <<'PY'
import json, sys
ref = dict(l.strip().split("=", 1) for l in open(sys.argv[1]) if "=" in l and not l.startswith("#"))
s = json.load(open(sys.argv[2]))["summary"]
rows = [
    ("connections", "connections_conv_tcp", s["connections"]),
    ("handshakes (initial SYN seen)", "handshakes_initial_syn", s["handshakes"]),
    ("FIN first: client", "fin_first_client", s["fin_first"]["client"]),
    ("FIN first: server", "fin_first_server", s["fin_first"]["server"]),
    ("FIN first: none", "fin_first_none", s["fin_first"]["none"]),
    ("HTTP requests", "http_requests", s["http_requests"]),
    ("connections with RST", "streams_with_rst", s["rst_connections"]),
]
print("| count | reference | connscope | equal |")
print("|---|---|---|---|")
for name, key, got in rows:
    want = ref.get(key, "?")
    print(f"| {name} | {want} | {got} | {'yes' if str(got) == want else '**no**'} |")
PY
}

main() {
    need cc tcpdump mergecap python3 /usr/bin/time
    ((slow_runs > 0)) && need tshark
    if [[ ! -r $capture && $# -eq 0 && -x $bench_c/../make_big_pcap.sh ]]; then
        log "making the shared bench capture in $(dirname "$capture") (about a minute of load on loopback)"
        BUFKB=1048576 "$bench_c/../make_big_pcap.sh" "$(dirname "$capture")" >&2
    fi
    [[ -r $capture ]] || { echo "no such capture: $capture" >&2; exit 1; }
    build
    log "connscope: $connscope"
    timings
    memory_check
    flows_counts
    counts
}

main "$@"
