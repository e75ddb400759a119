#!/usr/bin/env bash
# A complete CI check of connection reuse: start a server, run a client under `connscope capture`,
# and fail the job (exit 1) when the requests stop sharing one connection.
#
#   examples/ci-reuse-check.sh              # passes: 5 requests over 1 kept-alive connection
#   BREAK_REUSE=1 examples/ci-reuse-check.sh # fails: the server closes after every response
#
# The server is the Go net/http server of the fixtures (scripts/fixtures/server.go); the client is
# curl fetching 5 URLs in one invocation, which reuses its connection when the server allows it.
# Capturing needs root (or CAP_NET_RAW on the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
connscope=${CONNSCOPE:-target/release/connscope}
[ -x "$connscope" ] || cargo build --release --locked --quiet

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Build and start the server on a free port; stop it by its PID however the script ends.
go build -o "$work/server" scripts/fixtures/server.go
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
keepalives=true
[ "${BREAK_REUSE:-0}" = 1 ] && keepalives=false
"$work/server" -port "$port" -keepalives="$keepalives" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 50); do   # wait until it listens (5 s at most)
  curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break
  sleep 0.1
done

# 2. Run the client under connscope: the capture starts before curl and ends after it exits
#    (plus --linger for the closing FINs). Each assertion prints PASS/FAIL on stderr.
url="http://127.0.0.1:$port/hello"
"$connscope" capture --port "$port" --format json -q \
  --assert 'handshakes == 1' \
  --assert 'http_requests == 5' \
  --assert 'reused_connections == connections' \
  --assert 'rst_connections == 0' \
  --assert 'client_states.CLOSE_WAIT == 0' \
  -- curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null "$url" "$url" "$url" "$url" "$url" \
  > "$work/report.json"
echo "connection reuse holds: $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print(s["http_requests"], "requests over", s["connections"], "connection(s)")' "$work/report.json")"
