#!/bin/sh
# Makes the two small loopback captures the ladder golden tests read. Run as root (tcpdump on lo):
#   sh tests/data/make.sh
# server-first.pcap: python http.server (HTTP/1.0, closes after each response) + curl GET /hello.
# client-first.pcap: a socket server that never closes first + a client that sends two keep-alive
#                    requests, idles long enough for two TCP keep-alive probes, then closes first.
# Every process started here is stopped by its PID.
set -eu
cd "$(dirname "$0")"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

capture() { # capture FILE PORT: starts tcpdump in the background, prints its PID
    tcpdump -i lo -U -s 262144 -Z root -w "$1" "tcp port $2" >/dev/null 2>&1 &
    echo $!
}

# --- server closes first -------------------------------------------------------------------
PORT=18471
mkdir -p "$WORK/www" && echo "hello" > "$WORK/www/hello"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
SERVER=$!
TCPDUMP=$(capture server-first.pcap "$PORT")
sleep 1
curl -s -o /dev/null "http://127.0.0.1:$PORT/hello"
sleep 1
kill -INT "$TCPDUMP"; wait "$TCPDUMP" || true
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true

# --- client closes first -------------------------------------------------------------------
PORT=18472
cat > "$WORK/server.py" <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
conn, _ = s.accept()
buf = b""
while True:
    data = conn.recv(4096)
    if not data:          # the client closed: only now does the server close its side
        break
    buf += data
    while b"\r\n\r\n" in buf:
        _, buf = buf.split(b"\r\n\r\n", 1)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n")
conn.close()
PY
cat > "$WORK/client.py" <<'PY'
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
for path in ("/hello", "/again"):
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    got = b""
    while not got.endswith(b"hello\n"):
        got += c.recv(4096)
    if path == "/hello":
        time.sleep(2.5)   # idle: the kernel sends keep-alive probes after 1 s, then every 1 s
c.close()                 # the client closes first
PY
python3 "$WORK/server.py" "$PORT" &
SERVER=$!
sleep 0.5
TCPDUMP=$(capture client-first.pcap "$PORT")
sleep 1
python3 "$WORK/client.py" "$PORT"
sleep 1
kill -INT "$TCPDUMP"; wait "$TCPDUMP" || true
wait "$SERVER" 2>/dev/null || kill "$SERVER"
ls -l server-first.pcap client-first.pcap
