#!/usr/bin/env bash
# Like ingest: how many likes/s one core instance acknowledges (each 202 only after the like is
# stored: Redis, else the database, else a backup file) and whether every one was counted.
# The whole stack (`maple`: simulator, proxy, core; release build) runs on this machine with
# the load generator sharing its 2 cores; per-client rate limiting is off.
#   1. embedded (SQLite): likes only, closed loop; the original's 3:1 equipment/like mix,
#      closed loop and with 0.1–0.5 s think time;
#   2. distributed (the machine's MariaDB and Redis, one instance): likes only, closed loop,
#      then the database's total is compared with the acknowledged likes after the sync, and
#      the flush-to-database delay is read from maple_core_like_sync_delay_seconds;
#   3. wrk (C, lighter than load-gen) as the client, likes only, against each stack in turn
#      (after 1 and after 2), for the HTTP ceiling of one instance; wrk
#      does not count requests cut off when it stops, so its check is a range.
# Usage: scripts/bench-likes.sh          (SECONDS_RUN=20 USERS=256 to change; MAPLE_BIN=path
#        to measure another build of `maple`, e.g. an older commit's, MAPLE_BIN_LABEL to name it)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SECONDS_RUN=${SECONDS_RUN:-20}
USERS=${USERS:-256}
MAPLE_BIN=${MAPLE_BIN:-target/release/maple}
CORE=127.0.0.1:18080

# wrk (the third part's client) is installed here when missing, as bench-proxy.sh does.
command -v wrk >/dev/null 2>&1 ||
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)

cargo build --release --workspace --bins -q
work=$(mktemp -d /tmp/maple-bench-likes.XXXXXX)
pid=
database=maple_bench_$$
stop_stack() {
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=
}
cleanup() {
  stop_stack
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $database" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_stack() { # extra env as arguments
  env RUST_LOG=warn MAPLE_SIM_LISTEN=127.0.0.1:18090 MAPLE_PROXY_UPSTREAM=http://127.0.0.1:18090 \
    MAPLE_PROXY_LISTEN=127.0.0.1:18081 MAPLE_PROXY_ADMIN_LISTEN=127.0.0.1:19081 \
    MAPLE_PROXY_URL=http://127.0.0.1:18081 MAPLE_CORE_LISTEN=$CORE MAPLE_CORE_CLIENT_RATE=0 MAPLE_CORE_CLIENT_MISS_RATE=0 MAPLE_CORE_LIKES_RATE=0 \
    MAPLE_CORE_BACKUP_DIR="$work/backup" "$@" "$MAPLE_BIN" >>"$work/maple.log" 2>&1 &
  pid=$!
  wait_ready "http://$CORE" 30 "$pid" "$work/maple.log"
}

header() {
  echo
  echo "| run | users | think | requests | req/s | likes/s | p50 ms | p90 ms | p99 ms | max ms | failed | MB/s | count |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
}

# The 200 characters wrk likes: their names once (for the sum below), then wrk's script.
python3 - "$work/names" "$work/likes.lua" <<'PY'
import sys
def name(i):
    s = "load"
    for _ in range(6):
        s += chr(ord("a") + i % 26); i //= 26
    return s
names = [name(i) for i in range(200)]
open(sys.argv[1], "w").write("\n".join(names) + "\n")
paths = ",".join(f'"/v1/characters/{n}/likes"' for n in names)
open(sys.argv[2], "w").write(f"""
local paths = {{{paths}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", paths[(n % #paths) + 1])
end
""")
PY
sum_likes() {
  python3 - "$CORE" "$work/names" <<'PY'
import json, sys, urllib.request
total = 0
for name in open(sys.argv[2]).read().split():
    with urllib.request.urlopen(f"http://{sys.argv[1]}/v1/characters/{name}/likes") as r:
        total += json.load(r)["likes"]
print(total)
PY
}
# wrk (C, lighter than load-gen) as the client against the stack running now: likes only, one
# thread, $USERS connections; every like is counted by reading the 200 counts before and after.
# Also the CPU `maple` spent meanwhile (user and system, from /proc), per like acknowledged: what
# the server costs, apart from the client that shares its cores.
wrk_likes() {
  local before after completed non2xx acked cpu0 cpu1 tick
  before=$(sum_likes)
  tick=$(getconf CLK_TCK)
  cpu0=$(awk '{print $14, $15}' "/proc/$pid/stat")
  wrk -t1 -c"$USERS" -d"${SECONDS_RUN}s" --latency -s "$work/likes.lua" "http://$CORE" | tee "$work/wrk"
  cpu1=$(awk '{print $14, $15}' "/proc/$pid/stat")
  sleep 1
  after=$(sum_likes)
  completed=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$work/wrk")
  completed=${completed:-0}
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$work/wrk")
  acked=$((completed - ${non2xx:-0}))
  echo
  echo "wrk: $acked acknowledged (202) of $completed completed; counts grew by $((after - before)) (at most $USERS more than acknowledged: requests in flight when wrk stopped)."
  echo "$cpu0 $cpu1" | awk -v n="$acked" -v tick="$tick" -v s="$SECONDS_RUN" '{
    user = ($3 - $1) / tick; sys = ($4 - $2) / tick
    if (n <= 0) { print "maple CPU while wrk ran: no like acknowledged"; exit }
    printf "maple CPU while wrk ran: %.2f cores (user %.1f s, system %.1f s): %.1f µs user + %.1f µs system per like\n",
      (user + sys) / s, user, sys, 1e6 * user / n, 1e6 * sys / n }'
}

echo "# bench-likes $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, maple ${MAPLE_BIN_LABEL:-$(git rev-parse --short HEAD)}, ${SECONDS_RUN} s per run, 200 characters"

echo
echo "## embedded (SQLite)"
start_stack DATABASE_URL="sqlite://$work/maple.db"
header
target/release/load-gen --label "likes only, closed loop" --target "http://$CORE" --users "$USERS" \
  --think-min-ms 0 --think-max-ms 0 --seconds "$SECONDS_RUN" --like-share 1
target/release/load-gen --label "3:1 equipment:likes, closed loop, gzip" --target "http://$CORE" \
  --users 64 --think-min-ms 0 --think-max-ms 0 --seconds "$SECONDS_RUN" --like-share 0.25
target/release/load-gen --label "3:1 equipment:likes, think 0.1–0.5 s, gzip" --target "http://$CORE" \
  --users 500 --think-min-ms 100 --think-max-ms 500 --seconds "$SECONDS_RUN" --like-share 0.25
echo
echo "## embedded, wrk as the client (likes only, 1 thread, $USERS connections, ${SECONDS_RUN} s)"
wrk_likes
echo
echo "The HTTP stack alone, same stack and client: GET /health/live (middleware, span, access line; no like work)"
wrk -t1 -c"$USERS" -d"${SECONDS_RUN}s" "http://$CORE/health/live" | grep -E 'Requests/sec|Non-2xx'
stop_stack

echo
echo "## distributed (MariaDB + Redis, one core instance)"
mysql -h 127.0.0.1 -u root -e "CREATE DATABASE $database"
start_stack DATABASE_URL="mysql://root@127.0.0.1:3306/$database" REDIS_URL=redis://127.0.0.1:6379 \
  MAPLE_CORE_REDIS_NAMESPACE="bench-$$"
header
target/release/load-gen --label "likes only, closed loop" --target "http://$CORE" --users "$USERS" \
  --think-min-ms 0 --think-max-ms 0 --seconds "$SECONDS_RUN" --like-share 1 | tee "$work/row"
acked=$(sed -n 's/.*exact (\([0-9]*\) acked).*/\1/p' "$work/row")
for _ in $(seq 1 300); do
  stored=$(mysql -h 127.0.0.1 -u root -N -e "SELECT COALESCE(SUM(likes),0) FROM $database.character_likes")
  [ "$stored" = "$acked" ] && break
  sleep 0.2
done
echo
echo "Database after the sync: $stored likes stored for $acked acknowledged."
curl -fsS "http://$CORE/metrics" > "$work/metrics"
python3 - "$work/metrics" <<'PY'
import re, sys
buckets = []
for line in open(sys.argv[1]):
    m = re.match(r'maple_core_like_sync_delay_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.append((float("inf") if m[1] == "+Inf" else float(m[1]), float(m[2])))
total = buckets[-1][1] if buckets else 0
def quantile(q):
    for le, count in buckets:
        if count >= q * total:
            return le
print(f"Flush → database delay over {int(total)} batches (histogram bucket upper bounds): "
      f"p50 ≤ {quantile(0.5)} s, p99 ≤ {quantile(0.99)} s.")
PY
echo
echo "## distributed, wrk as the client (likes only, 1 thread, $USERS connections, ${SECONDS_RUN} s)"
wrk_likes
