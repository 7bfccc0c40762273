#!/usr/bin/env bash
# Load on core's equipment route, the way the original service was measured: the whole
# embedded stack (`maple`: simulator, proxy, core with SQLite; release build) on this machine,
# with the load generator (tests/src/bin/load-gen.rs) sharing its 2 cores.
#   1. 500 users, 0.1–0.5 s think time, 60 s (the original test's shape, GET equipment only:
#      the likes half arrives with the likes issue),
#   2. closed loop, no think time, 64 users, 30 s, with and without Accept-Encoding: gzip.
# Usage: scripts/bench-core.sh        (SECONDS_THINK=60 SECONDS_MAX=30 to change; the
#        environment reaches maple, e.g. MAPLE_ACCESS_LOG=off MAPLE_LOG_FORMAT=json)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SECONDS_THINK=${SECONDS_THINK:-60}
SECONDS_MAX=${SECONDS_MAX:-30}
CORE=127.0.0.1:18080

cargo build --release --workspace --bins -q
work=$(mktemp -d /tmp/maple-bench-core.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=warn MAPLE_SIM_LISTEN=127.0.0.1:18090 MAPLE_PROXY_UPSTREAM=http://127.0.0.1:18090 \
  MAPLE_PROXY_LISTEN=127.0.0.1:18081 MAPLE_PROXY_ADMIN_LISTEN=127.0.0.1:19081 \
  MAPLE_PROXY_URL=http://127.0.0.1:18081 MAPLE_CORE_LISTEN=$CORE MAPLE_CORE_CLIENT_RATE=0 MAPLE_CORE_CLIENT_MISS_RATE=0 \
  DATABASE_URL="sqlite://$work/maple.db" target/release/maple >"$work/maple.log" 2>&1 &
pid=$!
wait_ready "http://$CORE" 20 "$pid" "$work/maple.log"

echo "# bench-core $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, maple $(git rev-parse --short HEAD), embedded (SQLite), 200 characters warmed"
echo
echo "| run | users | think | requests | req/s | likes/s | p50 ms | p90 ms | p99 ms | max ms | failed | MB/s | count |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
target/release/load-gen --label "think, gzip" --target "http://$CORE" --users 500 \
  --think-min-ms 100 --think-max-ms 500 --seconds "$SECONDS_THINK"
target/release/load-gen --label "closed loop, gzip" --target "http://$CORE" --users 64 \
  --think-min-ms 0 --think-max-ms 0 --seconds "$SECONDS_MAX"
target/release/load-gen --label "closed loop, identity" --target "http://$CORE" --users 64 \
  --think-min-ms 0 --think-max-ms 0 --seconds "$SECONDS_MAX" --gzip false
