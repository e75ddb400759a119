#!/usr/bin/env bash
# The code habits CI enforces: formatting (rustfmt.toml), clippy with every warning an error, and
# rustdoc with every warning an error. Installs the rustup components and libpcap when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
for tool in rustfmt clippy; do
	if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
		rustup component add "$tool"
	fi
done
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps
echo "lint: fmt, clippy and rustdoc clean"
