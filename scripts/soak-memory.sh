#!/usr/bin/env bash
# The memory soak: the embedded stack (`maple`, release build: simulator, proxy and core in one
# process, access log off, per-client limits lifted) prices N new characters (default 15,000;
# one expectation each, 8 at a time). The process's RSS is sampled every 1,000 characters, and
# at the end each cache's entries and weighed bytes are read from core's and the proxy's
# metrics, to set against the sum of the declared bounds (docs/operations.md, "Memory"). Prints Markdown for docs/benchmarks.md.
#
#   scripts/soak-memory.sh [N]
#
# Uses the default ports (8080 core, 8081 proxy, 9081 its admin, 8090 simulator); a scratch
# folder for var/ (SQLite).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/lib.sh"
n="${1:-15000}"
cargo build --release --quiet --bin maple --manifest-path "$root/Cargo.toml"
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
(
  cd "$work"
  export MAPLE_ACCESS_LOG=off RUST_LOG=warn
  export MAPLE_CORE_CLIENT_RATE=0 MAPLE_CORE_CLIENT_MISS_RATE=0 MAPLE_CORE_PRICING_PER_CLIENT=0
  export MAPLE_PROXY_RATELIMIT_RPS=100000
  exec "$root/target/release/maple"
) &
pid=$!
wait_ready http://127.0.0.1:8080 10 "$pid"
python3 "$root/scripts/soak_memory.py" --pid "$pid" --characters "$n"
