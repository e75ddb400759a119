#!/usr/bin/env bash
# Regenerate every capture in fixtures/ from real loopback traffic.
#
# Needs root (tcpdump on lo/any). Installs golang-go, tcpdump, tshark, curl,
# nginx-light with apt-get when missing. Builds the Go programs in
# scripts/fixtures/ into a temporary directory (no binaries are committed).
# Usage: scripts/make-fixtures.sh [fixture-name ...]   (default: all)
#
# Each fixture: start tcpdump first and wait until it is listening, start the
# server, run the client, wait so the closing segments are captured, stop
# tcpdump with SIGINT (by PID), stop the server (by PID).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$ROOT/scripts/fixtures
OUT=$ROOT/fixtures
WORK=$(mktemp -d /tmp/connscope-fixtures.XXXXXX)
chmod 755 "$WORK"      # tcpdump may drop privileges to user tcpdump before writing
BIN=$WORK/bin
mkdir -p "$OUT" "$BIN" "$WORK/cap"
chmod 777 "$WORK/cap"

TCPDUMP_PID=
SERVER_PID=
cleanup() {
	[ -n "$TCPDUMP_PID" ] && kill -INT "$TCPDUMP_PID" 2>/dev/null || true
	[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "== $*" >&2; }

ensure_tools() {
	local missing=()
	command -v go >/dev/null || missing+=(golang-go)
	command -v tcpdump >/dev/null || missing+=(tcpdump)
	command -v tshark >/dev/null || missing+=(tshark)
	command -v editcap >/dev/null || missing+=(wireshark-common)
	command -v curl >/dev/null || missing+=(curl)
	command -v nginx >/dev/null || missing+=(nginx-light)
	command -v python3 >/dev/null || missing+=(python3)
	command -v redis-server >/dev/null || missing+=(redis-server)
	command -v ip >/dev/null || missing+=(iproute2)
	command -v nft >/dev/null || missing+=(nftables)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
	fi
	[ "$(id -u)" = 0 ] || { echo "run as root (tcpdump needs it)" >&2; exit 1; }
	# hyper-h2 (h2c client and Upgrade server), aiosmtpd, pyftpdlib: from PyPI when missing
	python3 -c 'import h2, aiosmtpd, pyftpdlib' 2>/dev/null || pip install h2 aiosmtpd pyftpdlib
}

build() {
	log "building Go programs into $BIN"
	(cd "$SRC" && GO111MODULE=off go build -o "$BIN/server" server.go \
		&& GO111MODULE=off go build -o "$BIN/client" client.go)
}

# tcpdump_ready LOG: waits (at most 5 s) until the tcpdump writing LOG is capturing, and a moment
# more; fails, showing LOG, if it never says so.
tcpdump_ready() {
	local log=$1 i
	for i in $(seq 1 50); do
		grep -q "listening on" "$log" 2>/dev/null && break
		sleep 0.1
	done
	grep -q "listening on" "$log" || { cat "$log" >&2; exit 1; }
	sleep 0.3
}

# nginx_run DIR LISTEN [DIRECTIVES [SERVER_DIRECTIVES]]: nginx in the foreground (one process, no
# master) serving DIR/www (hello.txt, lines.txt) on `listen LISTEN` (several: "A; listen B"), with
# extra http-level DIRECTIVES and server-level SERVER_DIRECTIVES (certificates); SERVER_PID is its
# PID (server_stop stops it).
nginx_run() {
	local d=$1 listen=$2 extra=${3:-} in_server=${4:-}
	mkdir -p "$d/www" "$d/tmp"; echo hello >"$d/www/hello.txt"
	seq 1 400 | sed 's/^/line /' >"$d/www/lines.txt"
	cat >"$d/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $d/tmp; proxy_temp_path $d/tmp; fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp; scgi_temp_path $d/tmp;
    $extra
    server { listen $listen; root $d/www; $in_server }
}
CONF
	nginx -c "$d/nginx.conf" &
	SERVER_PID=$!
}

# capture_start NAME PORT [tcpdump options...]  -- default: -i lo
capture_start() {
	local name=$1 port=$2; shift 2
	local opts=("$@")
	[ ${#opts[@]} -gt 0 ] || opts=(-i lo)
	CAP_NAME=$name
	CAP_FILE=$WORK/cap/$name.pcap
	tcpdump "${opts[@]}" -U -s "${SNAPLEN:-262144}" -w "$CAP_FILE" "${CAP_FILTER:-tcp port $port}" 2>"$WORK/$name.tcpdump.log" &
	TCPDUMP_PID=$!
	tcpdump_ready "$WORK/$name.tcpdump.log"
}

# capture_stop: let closing segments arrive, SIGINT tcpdump, move the file into fixtures/
capture_stop() {
	sleep "${SETTLE:-1.5}"
	kill -INT "$TCPDUMP_PID"
	wait "$TCPDUMP_PID" || true
	TCPDUMP_PID=
	cp "$CAP_FILE" "$OUT/$CAP_NAME.pcap"
	log "$CAP_NAME: $(tcpdump -nr "$OUT/$CAP_NAME.pcap" 2>/dev/null | wc -l) packets"
}

# wait_listen PORT: poll the socket table (sends no packets)
wait_listen() {
	local port=$1 i
	for i in $(seq 1 50); do
		ss -Hltn "sport = :$port" | grep -q . && return 0
		sleep 0.1
	done
	echo "nothing listening on $port" >&2; exit 1
}

# wait_output FILE: poll until a client has written its first line to FILE (at most 5 s)
wait_output() {
	local i
	for i in $(seq 1 50); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	echo "no output in $1" >&2; exit 1
}

# go_server PORT [server flags...]
go_server() {
	local port=$1; shift
	"$BIN/server" -port "$port" "$@" 2>"$WORK/server.$port.log" &
	SERVER_PID=$!
	wait_listen "$port"
}

server_stop() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

client() { "$BIN/client" "$@"; }

# ---------------------------------------------------------------- fixtures

fx_go_keepalive_reuse() {     # 1 connection, 5 requests, client closes idle conn deliberately
	local p=18101
	capture_start go-keepalive-reuse $p
	go_server $p
	client -n 5 -url http://127.0.0.1:$p/hello -read all -close -close-idle
	capture_stop; server_stop
}

fx_snaplen96() {              # same exchange as go-keepalive-reuse, 96-byte snaplen
	local p=18102
	SNAPLEN=96 capture_start snaplen96 $p
	go_server $p
	client -n 5 -url http://127.0.0.1:$p/hello -read all -close -close-idle
	capture_stop; server_stop
}

fx_go_new_client_no_close() { # seed 000 "100": body not read, not closed -> 3 ESTABLISHED
	local p=18103
	capture_start go-new-client-no-close $p
	go_server $p
	# -hold keeps the process (and its sockets) alive until tcpdump has stopped
	client -n 3 -new-client-per-request -url http://127.0.0.1:$p/hello -read none -hold 4s &
	local cpid=$!
	sleep 1.5
	capture_stop
	wait "$cpid" || true
	server_stop
}

fx_go_read_partial_close() {  # seed 000 "011"/"111": partial read + Close -> new conn each time
	local p=18104
	capture_start go-read-partial-close $p
	go_server $p
	client -n 3 -url http://127.0.0.1:$p/hello -read partial -close
	capture_stop; server_stop
}

fx_go_keepalive_off_server() { # server SetKeepAlivesEnabled(false): Connection: close, server FIN first
	local p=18105
	capture_start go-keepalive-off-server $p
	go_server $p -keepalives=false
	# -delay: the client waits 100 ms before reading the body, so the server's
	# FIN is always on the wire before the client could close.
	client -n 3 -url http://127.0.0.1:$p/hello -read all -close -delay 100ms
	capture_stop; server_stop
}

fx_go_disable_keepalives_client() { # client DisableKeepAlives: request says Connection: close
	local p=18106
	capture_start go-disable-keepalives-client $p
	go_server $p
	client -n 3 -url http://127.0.0.1:$p/hello -read all -close -disable-keepalives -delay 100ms
	capture_stop; server_stop
}

fx_python_http_server_curl() { # python http.server (HTTP/1.0) closes after each response
	local p=18107 d=$WORK/www
	mkdir -p "$d"; echo one >"$d/a.txt"; echo two >"$d/b.txt"; echo three >"$d/c.txt"
	capture_start python-http-server-curl $p
	python3 -m http.server --bind 127.0.0.1 --directory "$d" $p 2>"$WORK/pyhttp.log" &
	SERVER_PID=$!
	wait_listen $p
	# Python closes right after its HTTP/1.0 response and curl closes as soon as
	# it has the Content-Length bytes: left alone the two FINs race (a
	# simultaneous close was seen). curl writes each body into a FIFO that is
	# opened for reading 200 ms late; curl blocks in open() before it can end the
	# transfer, so the server's FIN is always first.
	mkfifo "$WORK/body1" "$WORK/body2" "$WORK/body3"
	( for i in 1 2 3; do sleep 0.2; timeout 5 cat "$WORK/body$i" >/dev/null || true; done ) &
	local rpid=$!
	curl -sS -o "$WORK/body1" -o "$WORK/body2" -o "$WORK/body3" \
		http://127.0.0.1:$p/a.txt http://127.0.0.1:$p/b.txt http://127.0.0.1:$p/c.txt
	wait "$rpid"
	capture_stop; server_stop
}

fx_curl_go_multi() {          # curl, 4 URLs in one invocation -> 1 connection, 4 requests
	local p=18108
	capture_start curl-go-multi $p
	go_server $p
	curl -sS -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
		http://127.0.0.1:$p/hello http://127.0.0.1:$p/hello http://127.0.0.1:$p/big http://127.0.0.1:$p/hello
	capture_stop; server_stop
}

fx_rst_abort() {              # raw socket, request, read response, close with SO_LINGER 0 -> RST
	local p=18109
	capture_start rst-abort $p
	go_server $p
	python3 "$SRC/rawclient.py" rst --port $p
	capture_stop; server_stop
}

fx_time_wait_rst() {          # client TIME_WAIT killed by the RST a replayed last ACK draws (RFC 1337)
	local p=19201
	capture_start time-wait-rst $p
	python3 "$SRC/timewait.py" rst --port $p --client-port 19251
	capture_stop
}

fx_time_wait_reuse() {        # second SYN from the same client port recycles the server's TIME_WAIT
	local p=19202
	capture_start time-wait-reuse $p
	python3 "$SRC/timewait.py" reuse --port $p --client-port 19252
	capture_stop
}

fx_refused() {                # nothing listens: SYN, RST/ACK
	local p=18110
	capture_start refused $p
	python3 "$SRC/rawclient.py" refused --port $p
	capture_stop
}

fx_ipv6() {                   # Go server on [::1], Go client, 2 requests on one connection
	local p=18111
	capture_start ipv6 $p
	go_server $p -addr ::1
	client -n 2 -url "http://[::1]:$p/hello" -read all -close -close-idle
	capture_stop; server_stop
}

fx_any_sll() {                # tcpdump -i any: default link type (SLL2), and -y LINUX_SLL
	local p=18112
	capture_start any-sll2 $p -i any
	go_server $p
	curl -sS -o /dev/null -o /dev/null http://127.0.0.1:$p/hello http://127.0.0.1:$p/hello
	capture_stop; server_stop
	p=18113
	capture_start any-sll $p -i any -y LINUX_SLL
	go_server $p
	curl -sS -o /dev/null -o /dev/null http://127.0.0.1:$p/hello http://127.0.0.1:$p/hello
	capture_stop; server_stop
}

fx_keepalive_probes() {       # Dialer.KeepAlive=1s, one request, 4.5 s idle -> TCP keep-alive probes
	local p=18114
	capture_start keepalive-probes $p
	go_server $p
	client -n 1 -url http://127.0.0.1:$p/hello -read all -close -keepalive 1s -idle 4500ms -close-idle
	capture_stop; server_stop
}

fx_pipelined() {              # 3 GETs in one send(); the last says Connection: close
	local p=18115
	capture_start pipelined $p
	go_server $p
	python3 "$SRC/rawclient.py" pipelined --port $p
	capture_stop; server_stop
}

fx_chunked() {                # 2 chunked responses on one connection
	local p=18116
	capture_start chunked $p
	go_server $p
	client -n 2 -url http://127.0.0.1:$p/chunked -read all -close -close-idle
	capture_stop; server_stop
}

fx_post_multisegment() {      # one POST with a 100 000-byte body
	local p=18117
	capture_start post-multisegment $p
	go_server $p
	client -n 1 -url http://127.0.0.1:$p/echo -post-size 100000 -post-chunk 1400 -read all -close -close-idle
	capture_stop; server_stop
}

fx_head_304() {               # HEAD, then conditional GET answered 304, one connection (curl --next)
	local p=18118
	capture_start head-304 $p
	go_server $p
	curl -sS -o /dev/null -I http://127.0.0.1:$p/hello \
		--next -sS -o /dev/null -H 'If-None-Match: "hello-v1"' http://127.0.0.1:$p/hello
	capture_stop; server_stop
}

# https_client_held CLIENT-ARGS...: the TLS connections are left open and the
# capture ends while the client still holds them. Closing them races: Go sends
# close_notify + FIN, the server answers with its own close_notify, and when that
# arrives after close() the client kernel answers RST (seen in some runs, not
# others). Holding the sockets makes the end deterministic: ESTABLISHED.
https_client_held() {
	client "$@" -hold 4s &
	local cpid=$!
	sleep 1.5
	capture_stop
	wait "$cpid" || true
}

fx_https_shared_client() {    # 3 POSTs over one TLS connection
	local p=18119
	capture_start https-shared-client $p
	go_server $p -tls
	https_client_held -n 3 -url https://127.0.0.1:$p/echo -tls-insecure -post-size 1000 -read all -close
	server_stop
}

fx_https_new_client() {       # 3 POSTs, new Transport each -> 3 TLS handshakes
	local p=18120
	capture_start https-new-client $p
	go_server $p -tls
	https_client_held -n 3 -new-client-per-request -url https://127.0.0.1:$p/echo -tls-insecure -post-size 1000 -read all -close
	server_stop
}

fx_h2c() {                    # nginx 'listen PORT http2' (cleartext), curl --http2-prior-knowledge, 1 URL
	# One URL only: curl 7.88.1 fails the second request on a reused h2c
	# connection ("Error in the HTTP2 framing layer", also with --parallel).
	local p=18121
	capture_start h2c $p
	nginx_run "$WORK/nginx" "127.0.0.1:$p http2"
	wait_listen $p
	curl -sS --http2-prior-knowledge -o /dev/null http://127.0.0.1:$p/hello.txt
	capture_stop; server_stop
}

# nginx_h2c PORT: nginx with 'listen 127.0.0.1:PORT http2' (cleartext h2, prior knowledge only)
nginx_h2c() {
	nginx_run "$WORK/nginx-$1" "127.0.0.1:$1 http2"
	wait_listen "$1"
}

fx_h2c_multi() {              # nginx h2c, hyper-h2 client: 5 requests on one connection (prior knowledge)
	# curl 7.88.1 cannot reuse an h2c connection (see fx_h2c): scripts/fixtures/h2_client.py can.
	local p=19501
	capture_start h2c-multi $p
	nginx_h2c $p
	python3 "$SRC/h2_client.py" --port $p /hello.txt /lines.txt /missing POST:/hello.txt /hello.txt
	capture_stop; server_stop
}

fx_h2c_snaplen() {            # h2c-multi's exchange with tcpdump -s 120: header blocks cut, HPACK state lost
	local p=19504
	SNAPLEN=120 capture_start h2c-snaplen $p
	nginx_h2c $p
	python3 "$SRC/h2_client.py" --port $p /hello.txt /lines.txt /missing POST:/hello.txt /hello.txt
	capture_stop; server_stop
}

fx_h2c_upgrade() {            # Upgrade: h2c + 101 (curl --http2, 3 URLs), then prior knowledge with a 100-continue
	local p=19502
	capture_start h2c-upgrade $p
	python3 "$SRC/h2_server.py" --port $p 2>"$WORK/h2server.log" &
	SERVER_PID=$!
	wait_listen $p
	curl -sS --http2 -o /dev/null -o /dev/null -o /dev/null \
		http://127.0.0.1:$p/first http://127.0.0.1:$p/second http://127.0.0.1:$p/missing
	python3 "$SRC/h2_client.py" --port $p /a POST:/upload
	capture_stop; server_stop
}

fx_midstream_body() {         # the capture starts inside a response body that quotes HTTP messages
	# body_server.py pauses the body of /big/2 for 2.5 s after its third piece; tcpdump is started
	# in that pause, so the first captured payload is the rest of that body (each piece a segment
	# that begins with a whole HTTP head). Then 5 more requests (2 POSTs whose bodies quote
	# messages) on the same keep-alive connection.
	local p=19503
	python3 "$SRC/body_server.py" --port $p --pause-on 2 --pause 2.5 &
	SERVER_PID=$!
	wait_listen $p
	python3 "$SRC/body_client.py" --port $p -n 7 >"$WORK/body_client.log" &
	local cpid=$!
	wait_output "$WORK/body_client.log" # /big/1 is read; /big/2's pause begins 0.12 s after its head
	sleep 0.3
	capture_start midstream-body $p
	wait "$cpid"
	capture_stop; server_stop
}

fx_redis_inline() {           # redis-server; inline commands (SET/GET/INCR...: method-like words), redis-cli
	local p=19510
	redis-server --port $p --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
	SERVER_PID=$!
	wait_listen $p
	# This connection starts before the capture: the capture sees it mid-stream.
	python3 "$SRC/text_clients.py" redis-inline --port $p --wait 2.5 >"$WORK/redis_client.log" &
	local cpid=$!
	wait_output "$WORK/redis_client.log" # the first command is answered; 2.5 s of silence follow
	capture_start redis-inline $p
	wait "$cpid"
	python3 "$SRC/text_clients.py" redis-inline --port $p >/dev/null
	redis-cli -p $p SET key value >/dev/null
	redis-cli -p $p GET key >/dev/null
	capture_stop; server_stop
}

fx_smtp() {                   # aiosmtpd; smtplib sends one mail whose body quotes an HTTP request and response
	local p=19511
	capture_start smtp $p
	python3 -m aiosmtpd -n -l 127.0.0.1:$p >"$WORK/smtp.log" 2>&1 &
	SERVER_PID=$!
	wait_listen $p
	python3 "$SRC/text_clients.py" smtp --port $p >/dev/null
	capture_stop; server_stop
}

fx_ftp() {                    # pyftpdlib (passive ports 19513-19514); ftplib: login, LIST, RETR of a file quoting HTTP
	local p=19512 d=$WORK/ftp
	mkdir -p "$d"
	printf 'GET /saved HTTP/1.1\r\nHost: example.com\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' >"$d/quoted.txt"
	CAP_FILTER="tcp portrange $p-19514" capture_start ftp $p
	python3 -m pyftpdlib -i 127.0.0.1 -p $p -r 19513-19514 -d "$d" >"$WORK/ftp.log" 2>&1 &
	SERVER_PID=$!
	wait_listen $p
	python3 "$SRC/text_clients.py" ftp --port $p >/dev/null
	capture_stop; server_stop
}

fx_concurrent_curls() {       # 24 curls at once: 12 with 3 URLs (reused), 12 with Connection: close
	# Connections interleave on the wire, as under load: what tests/threads.rs splits between workers.
	local p=18122 i pids=()
	capture_start concurrent-curls $p
	go_server $p
	for i in $(seq 1 12); do
		curl -sS -o /dev/null -o /dev/null -o /dev/null \
			http://127.0.0.1:$p/hello http://127.0.0.1:$p/big http://127.0.0.1:$p/hello &
		pids+=($!)
		curl -sS -o /dev/null -H 'Connection: close' http://127.0.0.1:$p/hello &
		pids+=($!)
	done
	wait "${pids[@]}"
	capture_stop; server_stop
}

fx_pcapng() {                 # a real capture rewritten as pcapng by editcap (same packets as curl-go-multi)
	editcap -F pcapng "$OUT/curl-go-multi.pcap" "$OUT/pcapng.pcapng"
	log "pcapng: $(capinfos -t "$OUT/pcapng.pcapng" | tail -1)"
}

fx_relink() {                 # link-type conversions of real captures (see scripts/fixtures/relink.py)
	python3 "$SRC/relink.py" null 2 "$OUT/go-keepalive-reuse.pcap" "$OUT/null-loopback.pcap"
	python3 "$SRC/relink.py" null 30 "$OUT/ipv6.pcap" "$OUT/null-loopback-ipv6.pcap"
	python3 "$SRC/relink.py" null 24 "$OUT/ipv6.pcap" "$OUT/null-loopback-ipv6-af24.pcap"
	python3 "$SRC/relink.py" raw 0 "$OUT/go-keepalive-reuse.pcap" "$OUT/raw-ip.pcap"
	python3 "$SRC/relink.py" raw 0 "$OUT/ipv6.pcap" "$OUT/raw-ip-ipv6.pcap"
}

# Issue 13's per-connection cases (keep-alive crossing, capture skew, Fast Open, one direction).
source "$SRC/flow-cases.sh"
source "$SRC/loss.sh"
# shellcheck source=fixtures/tls.sh
. "$SRC/tls.sh"
# the close-cause fixtures (issue 15): fx_* functions and CLOSE_CAUSE_FIXTURES
# shellcheck source=fixtures/close-causes.sh
. "$SRC/close-causes.sh"
# the HTTPS fixtures with key logs (issue 18): fx_* functions and HTTPS_KEYLOG_FIXTURES
# shellcheck source=fixtures/https-keylog.sh
. "$SRC/https-keylog.sh"

fx_lossy_link() {             # two netns, a veth pair, nftables dropping 6 % of each direction's segments; python http.server (1.1 and 1.0) + curl
	mkdir -p "$WORK/lossy"
	"$SRC/lossy-link.sh" "$WORK/lossy"
	tcpdump -r "$WORK/lossy/lossy-all.pcap" -w "$OUT/lossy-keepalive.pcap" 'tcp port 19901' 2>/dev/null
	tcpdump -r "$WORK/lossy/lossy-all.pcap" -w "$OUT/lossy-http10.pcap" 'tcp port 19902' 2>/dev/null
	cat "$WORK/lossy/ss.txt" >&2
}

fx_fragments() {              # router netns fragments IPv4 (real), veth Ethernet re-framed with FCS / 802.3 SNAP, IPv6 fragmented by relink.py frag6
	mkdir -p "$WORK/frag"
	"$SRC/fragments.sh" "$WORK/frag"
	cp "$WORK/frag/ipv4-fragments.pcap" "$OUT/ipv4-fragments.pcap"
	editcap -F pcap -s 96 "$OUT/ipv4-fragments.pcap" "$OUT/ipv4-fragments-snaplen96.pcap"
	python3 "$SRC/relink.py" frag6 1280 "$WORK/frag/ipv6-lo-big.pcap" "$OUT/ipv6-fragments.pcap"
	python3 "$SRC/relink.py" fcs 0 "$WORK/frag/veth-plain.pcap" "$OUT/ethernet-fcs.pcap"
	python3 "$SRC/relink.py" snap 0 "$WORK/frag/veth-plain.pcap" "$OUT/ieee8023-snap.pcap"
}

ALL=(go_keepalive_reuse snaplen96 go_new_client_no_close go_read_partial_close
	go_keepalive_off_server go_disable_keepalives_client python_http_server_curl
	curl_go_multi rst_abort time_wait_rst time_wait_reuse refused ipv6 any_sll keepalive_probes pipelined chunked
	post_multisegment head_304 https_shared_client https_new_client h2c concurrent_curls pcapng relink
	keepalive_crossing fast_open one_direction capture_skew \
	tls_hello_retry tls_split_hello tls_connect_tunnel fragments lossy_link \
	"${CLOSE_CAUSE_FIXTURES[@]}" "${HTTPS_KEYLOG_FIXTURES[@]}" \
	h2c_multi h2c_snaplen h2c_upgrade midstream_body redis_inline smtp ftp loss_retransmit)

main() {
	ensure_tools
	build
	local list=("$@")
	[ ${#list[@]} -gt 0 ] || list=("${ALL[@]}")
	local f
	for f in "${list[@]}"; do
		f=${f//-/_}
		log "fixture $f"
		"fx_$f"
	done
	log "cross-checking TCP-level keys of fixtures/*.expect (scripts/fixtures/check-expect.py)"
	python3 "$SRC/check-expect.py"
}

main "$@"
