#!/usr/bin/env bash
# The demo: builds connscope and analyses bundled captures of real programs on loopback:
#   1. curl fetching 3 URLs from `python3 -m http.server` (the server closes every connection first);
#   2. a Go client reusing one keep-alive connection for 5 requests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cargo build --release --locked --quiet
bin=target/release/connscope
for f in python-http-server-curl go-keepalive-reuse; do
  args=$(sed -n 's/^args *= *\([^#]*\).*/\1/p' "fixtures/$f.expect")
  echo "\$ connscope analyze fixtures/$f.pcap $args"
  # shellcheck disable=SC2086
  "$bin" analyze "fixtures/$f.pcap" $args
  echo
done
