#!/usr/bin/env bash
# Where a like over HTTP spends its instructions: the embedded release stack (`maple`:
# simulator, proxy, core with SQLite) runs under `valgrind --tool=callgrind`, 200 characters
# are resolved first (not measured), then LIKES likes are POSTed over CONNECTIONS keep-alive
# connections with instrumentation on. Instruction counts do not depend on what else the
# machine does, so two runs of one binary agree; seconds under valgrind mean nothing.
# Prints instructions per like, the inclusive cost of the functions that matter, and leaves
# the callgrind file in target/profile-likes/ for callgrind_annotate or kcachegrind.
# Usage: scripts/profile-likes.sh      (LIKES=20000 CONNECTIONS=64 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

LIKES=${LIKES:-20000}
CONNECTIONS=${CONNECTIONS:-64}
CORE=127.0.0.1:18080
out=target/profile-likes
command -v valgrind >/dev/null 2>&1 ||
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind)
cargo build --release --bin maple -q
mkdir -p "$out"
rm -f "$out"/callgrind.out*
work=$(mktemp -d /tmp/maple-profile-likes.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

env RUST_LOG=warn MAPLE_SIM_LISTEN=127.0.0.1:18090 MAPLE_PROXY_UPSTREAM=http://127.0.0.1:18090 \
  MAPLE_PROXY_LISTEN=127.0.0.1:18081 MAPLE_PROXY_ADMIN_LISTEN=127.0.0.1:19081 \
  MAPLE_PROXY_URL=http://127.0.0.1:18081 MAPLE_CORE_LISTEN=$CORE MAPLE_CORE_CLIENT_RATE=0 \
  MAPLE_CORE_CLIENT_MISS_RATE=0 MAPLE_CORE_LIKES_RATE=0 MAPLE_CORE_REQUEST_TIMEOUT_MS=600000 \
  MAPLE_CORE_BACKUP_DIR="$work/backup" DATABASE_URL="sqlite://$work/maple.db" \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out" \
  target/release/maple >"$work/maple.log" 2>&1 &
pid=$!
# Under valgrind start-up is slow: up to ten minutes.
wait_ready "http://$CORE" 600 "$pid" "$work/maple.log"

# One client process outside valgrind: CONNECTIONS threads, each a keep-alive connection.
python3 - "$CORE" "$LIKES" "$CONNECTIONS" "$pid" <<'PY'
import http.client, subprocess, sys, threading
core, likes, connections, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
host, port = core.split(":")
names = ["prof" + chr(97 + i // 26) + chr(97 + i % 26) for i in range(200)]

def post(conn, name):
    conn.request("POST", f"/v1/characters/{name}/likes", body=b"", headers={"content-length": "0"})
    response = conn.getresponse()
    response.read()
    if response.status != 202:
        raise SystemExit(f"like for {name}: HTTP {response.status}")

warm = http.client.HTTPConnection(host, int(port), timeout=600)
for name in names:
    post(warm, name)
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, stdout=subprocess.DEVNULL)
failed = []
def client(k):
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=600)
        for i in range(k, likes, connections):
            post(conn, names[i % len(names)])
    except BaseException as e:
        failed.append(repr(e))
threads = [threading.Thread(target=client, args=(k,)) for k in range(connections)]
for t in threads: t.start()
for t in threads: t.join()
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, stdout=subprocess.DEVNULL)
subprocess.run(["callgrind_control", "-d", pid], check=True, stdout=subprocess.DEVNULL)
if failed:
    raise SystemExit(f"{len(failed)} clients failed: {failed[0]}")
PY
kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=

file=$(ls -S "$out"/callgrind.out* | head -1)
total=$(callgrind_annotate "$file" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
echo "# profile-likes $(date -u +%Y-%m-%dT%H:%M:%SZ), maple $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core common || echo '+changes'), $LIKES likes over $CONNECTIONS connections"
echo "instructions: $total in all, $((total / LIKES)) per like"
echo
echo "## inclusive, per like (functions at ≥ 1% of the total)"
callgrind_annotate --inclusive=yes --threshold=100 "$file" 2>/dev/null |
  awk -v likes="$LIKES" -v total="$total" '
    /^ *[0-9,]+ / {
      n = $1; gsub(",", "", n)
      if (n + 0 < total / 100) next
      $1 = ""; sub(/\(\)$/, "")
      if (++shown > 80) next
      printf "%9d  %5.1f%%  %s\n", n / likes, 100 * n / total, substr($0, 2, 150)
    }' 
echo
echo "callgrind file: $file (callgrind_annotate --inclusive=yes $file)"
