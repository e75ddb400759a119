#!/usr/bin/env bash
# Installs what connscope needs to build and test, when it is missing:
#   build: a C compiler and linker (gcc; cargo links with it, and the zstd and xz crates compile C),
#          pkg-config and libpcap (libpcap-dev on Debian/Ubuntu, libpcap from brew on macOS)
#   tests: tcpdump, tshark (cross-checks), golang-go, python3, curl (real peers on loopback),
#          iproute2 (`ip netns` and veth pairs in the fault tests, `ss`)
# Rust itself (>= 1.82) comes from rustup, not from here: see the README.
# nginx is not installed here: no test uses it; scripts/make-fixtures.sh and
# scripts/bench/capture-load.sh, which run it, install it themselves (nginx-light).
# Usage: scripts/install-deps.sh [build|test]   (default: build)
set -euo pipefail
want=${1:-build}

missing=()
have_header() { [ -f /usr/include/pcap.h ] || [ -f /usr/include/pcap/pcap.h ] || pkg-config --exists libpcap 2>/dev/null; }
have_header || missing+=(libpcap-dev)
if [ "$(uname -s)" != Darwin ]; then
  command -v cc >/dev/null || missing+=(gcc libc6-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
fi
if [ "$want" = test ]; then
  command -v tcpdump >/dev/null || missing+=(tcpdump)
  command -v tshark >/dev/null || missing+=(tshark)
  command -v go >/dev/null || missing+=(golang-go)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v ip >/dev/null || missing+=(iproute2)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

case "$(uname -s)" in
  Darwin)
    command -v brew >/dev/null || { echo "install Homebrew, then: brew install libpcap" >&2; exit 2; }
    brew install libpcap
    ;;
  *)
    if ! command -v apt-get >/dev/null; then
      echo "missing: ${missing[*]} — install them with your package manager" >&2
      exit 2
    fi
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    ;;
esac
