# Sourced by the live-capture benchmarks (capture-load.sh, live-vs-tcpdump.sh): root check, the
# tools, a temp dir, nginx on a free 127.0.0.1 port, and stopping a capture by PID.
#
#   live_setup NAME [NGINX_HTTP_DIRECTIVES]   sets WORK, PORT, PIDS, BIN; starts nginx
#   live_stop NAME PID [TENTHS]               SIGINT, then waits at most TENTHS/10 s (default 300)
# Only processes the calling script starts are ever signalled, by their PIDs.

live_setup() {
    local name=$1 directives=${2:-}
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    BIN=${CONNSCOPE:-${CARGO_TARGET_DIR:-$ROOT/target}/release/connscope}
    if [[ $(id -u) -ne 0 ]]; then
        echo "$name: run as root (live capture)" >&2
        exit 2
    fi
    command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
    command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light >/dev/null
    command -v tcpdump >/dev/null || apt-get install -y tcpdump >/dev/null
    [[ -x $BIN ]] || (cd "$ROOT" && cargo build --release --quiet)

    WORK=$(mktemp -d)
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    PIDS=()
    trap live_cleanup EXIT
    cat >"$WORK/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    $directives
    server {
        listen 127.0.0.1:$PORT;
        location / { return 200 "ok\n"; }
    }
}
CONF
    nginx -p "$WORK" -c "$WORK/nginx.conf" &
    PIDS+=($!)
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
}

live_cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}

live_stop() {
    local name=$1 pid=$2 tenths=${3:-300}
    kill -INT "$pid"
    for _ in $(seq "$tenths"); do kill -0 "$pid" 2>/dev/null || { wait "$pid" || true; return 0; }; sleep 0.1; done
    echo "$name: pid $pid did not stop after SIGINT" >&2
    return 1
}
