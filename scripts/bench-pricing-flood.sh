#!/usr/bin/env bash
# The pricing flood (issue 32, item 4): one client sends 600 valuations with distinct
# spare_mesos, 64 at a time, while another asks for its first valuation of a new character —
# alone first, then during the flood (tests/src/flood.rs). Runs the release `maple` twice: with
# the pricing gate as configured by default, and with the gate lifted by its settings (no
# per-client share, 1,024 at once, a line of 100,000, a 10-minute wait: what core did before
# the gate). Prints one line per run.
#
#   scripts/bench-pricing-flood.sh
#
# Uses the default ports (8080 core, 8081 proxy, 9081 its admin, 8090 simulator).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/lib.sh"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin maple
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p maple-tests --bin pricing-flood
run() {
  local label="$1"
  shift
  local work pid
  work="$(mktemp -d)"
  (
    cd "$work"
    export MAPLE_ACCESS_LOG=off RUST_LOG=error MAPLE_CORE_TRUSTED_PROXIES=127.0.0.1
    export MAPLE_CORE_CLIENT_RATE=0 MAPLE_CORE_CLIENT_MISS_RATE=0 MAPLE_PROXY_RATELIMIT_RPS=100000
    for setting in "$@"; do export "${setting?}"; done
    exec "$root/target/release/maple"
  ) &
  pid=$!
  wait_ready http://127.0.0.1:8080 10 "$pid"
  printf '%s: ' "$label"
  "$root/target/release/pricing-flood" --target http://127.0.0.1:8080 --tag "pf$(date +%s | tail -c 6)"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
run "gate (defaults)"
run "gate lifted" MAPLE_CORE_PRICING_PER_CLIENT=0 MAPLE_CORE_PRICING_CONCURRENCY=1024 \
  MAPLE_CORE_PRICING_QUEUE=100000 MAPLE_CORE_PRICING_WAIT_MS=600000
