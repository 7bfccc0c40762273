#!/usr/bin/env bash
# The proxy's upstream client in isolation (issue 18, item 8): reqwest, which the proxy uses,
# against pingora's own HTTP/1 connector, each fetching the simulator's ~350 KB equipment body
# in a closed loop (tests/src/bin/upstream-client.rs). The simulator runs as its own process,
# so the tool's CPU time is the client's alone.
# Usage: scripts/bench-upstream-client.sh     (SECONDS_RUN=10 CONNECTIONS=32 ROUNDS=2 to change)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_RUN=${SECONDS_RUN:-10}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-2}
SIM=127.0.0.1:18190

cargo build --release --workspace --bins -q
pid=
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
RUST_LOG=warn MAPLE_SIM_LISTEN=$SIM target/release/nexon-sim >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://$SIM/-/stats" 2>/dev/null && break; sleep 0.1; done

echo "# bench-upstream-client $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, maple $(git rev-parse --short HEAD), ${SECONDS_RUN} s per run"
echo
target/release/upstream-client --sim "http://$SIM" --seconds "$SECONDS_RUN" \
  --concurrency "$CONNECTIONS" --rounds "$ROUNDS"
