#!/usr/bin/env bash
# The product's own endpoint against the cache: GET /v1/characters/{name}/expectation on the
# whole embedded stack (`maple`: simulator, proxy, core with SQLite; release build), wrk as
# the client on the same 2 cores (2 threads, 32 connections), per-client rate limits off.
#   1. equipment hit (gzip): 200 characters whose equipment is in L1 — the yardstick;
#   2. expectation hit (gzip, then identity): the same 200, valuations cached;
#   3. equipment cached, valuation not: 3,000 characters whose equipment is in L1, each
#      request a (character, option set) pair not asked before, out of 96 option sets (8
#      star-force variants × 12 cube variants). Twice: first with the star-force spreads
#      cold (a star-force variant not seen before simulates the spreads of every level band
#      and star range it meets, up to ~0.1 s of a core each, shared by all bodies), on 3,000
#      other characters, which warms them; then with the spreads warm: what a new option set
#      costs for a body once the process has priced that star-force variant for anyone.
# With OLD_REV set (e.g. OLD_REV=1ab686b) that revision is built too (in a worktree under
# target/, its own target dir seeded from this one's release build) and measured first in the
# same run, stack for stack, so old and new face the same machine.
# Usage: scripts/bench-expectation.sh      (SECONDS_RUN=20 CHARS=3000 OLD_REV=… to change)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SECONDS_RUN=${SECONDS_RUN:-20}
CHARS=${CHARS:-3000}
OLD_REV=${OLD_REV:-}
CORE=127.0.0.1:18080
command -v wrk >/dev/null 2>&1 ||
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
cargo build --release --workspace --bins -q
work=$(mktemp -d /tmp/maple-bench-expectation.XXXXXX)
pid=
stop_stack() {
  if [ -n "$pid" ]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=
}
cleanup() {
  stop_stack
  rm -rf "$work"
}
trap cleanup EXIT

binaries=()
labels=()
if [ -n "$OLD_REV" ]; then
  old_tree=target/bench-old/tree
  rm -rf "$old_tree"
  git worktree prune
  git worktree add -q --detach "$old_tree" "$OLD_REV"
  # Seed its target dir from this build: only the workspace's own crates compile again.
  if [ ! -d target/bench-old/target/release ]; then
    mkdir -p target/bench-old/target
    cp -r target/release target/bench-old/target/
    # CMake refuses a build folder configured under another path: those builds start over.
    find target/bench-old/target/release/build -name CMakeCache.txt -delete
  fi
  (cd "$old_tree" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release -q --bin maple)
  cp target/bench-old/target/release/maple "$work/maple-old"
  git worktree remove --force "$old_tree"
  binaries+=("$work/maple-old")
  labels+=("old ($(git rev-parse --short "$OLD_REV"))")
fi
cp target/release/maple "$work/maple-new"
binaries+=("$work/maple-new")
labels+=("new ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core common proxy sim || echo '+changes'))")

start_stack() { # binary
  rm -rf "$work/db" && mkdir -p "$work/db"
  env RUST_LOG=warn MAPLE_SIM_LISTEN=127.0.0.1:18090 MAPLE_PROXY_UPSTREAM=http://127.0.0.1:18090 \
    MAPLE_PROXY_LISTEN=127.0.0.1:18081 MAPLE_PROXY_ADMIN_LISTEN=127.0.0.1:19081 \
    MAPLE_PROXY_URL=http://127.0.0.1:18081 MAPLE_CORE_LISTEN=$CORE MAPLE_CORE_CLIENT_RATE=0 \
    MAPLE_CORE_CLIENT_MISS_RATE=0 MAPLE_CORE_L1_MAX_BYTES=$((512 << 20)) \
    MAPLE_CORE_PARSED_MAX_BYTES=$((512 << 20)) \
    MAPLE_CORE_EQUIPMENT_FRESH_S=3600 MAPLE_ACCESS_LOG=off \
    DATABASE_URL="sqlite://$work/db/maple.db" "$1" >>"$work/maple.log" 2>&1 &
  pid=$!
  wait_ready "http://$CORE" 30 "$pid" "$work/maple.log"
}

# Names: "bench" and five letters from the index (any name exists in the simulated world).
python3 - "$work" "$CHARS" <<'PY'
import sys
work, chars = sys.argv[1], int(sys.argv[2])
def name(i):
    s = "bench"
    for _ in range(5):
        s += chr(ord("a") + i % 26); i //= 26
    return s
names = [name(i) for i in range(2 * chars)]
open(f"{work}/names", "w").write("\n".join(names) + "\n")
def lua_list(items):
    return ",".join(f'"{item}"' for item in items)
hot = names[:200]
for route in ["equipment", "expectation"]:
    open(f"{work}/{route}.lua", "w").write(f"""
local paths = {{{lua_list(f"/v1/characters/{n}/{route}" for n in hot)}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
""")
# 96 option sets: 8 star-force variants (each its own spreads) × 12 cube variants (method ×
# miracle time: the same spreads). Every query names all of them, so no two are one key.
star = ["pc_room=false", "star_catch=true", "safeguard=true", "discount_30=true",
        "destroy_reduction=true", "event_5_10_15=true", "mvp=gold", "pc_room=true"]
cube = [f"method={m}&miracle_time={t}" for t in ["false", "true"]
        for m in ["meso", "red", "black", "master", "meister", "occult"]]
# Pair i → (character, star variant, cube variant). The cold run takes the star variants
# fastest (every variant's spreads are met within its first requests, over many bodies); the
# measured run takes the characters fastest (each body's first pricing is also its parse).
orders = {
    "unpriced-cold.lua": (names[chars:], """
  local star_i = i % #star
  local character = names[(math.floor(i / #star) % #names) + 1]
  local cube_i = math.floor(i / (#star * #names)) % #cube"""),
    "unpriced.lua": (names[:chars], """
  local character = names[(i % #names) + 1]
  local set = math.floor(i / #names)
  local star_i = set % #star
  local cube_i = math.floor(set / #star) % #cube"""),
}
for file, (part, pick) in orders.items():
    open(f"{work}/{file}", "w").write(f"""
local names = {{{lua_list(part)}}}
local star = {{{lua_list(star)}}}
local cube = {{{lua_list(cube)}}}
local threads = {{}}
function setup(thread)
  thread:set("first", #threads)
  table.insert(threads, thread)
end
function init(args)
  n = first
end
-- Thread k of 2 takes pairs k, k+2, k+4…: no pair is asked twice in one run (up to
-- {len(part) * 96:,} pairs).
request = function()
  local i = n
  n = n + 2{pick}
  return wrk.format("GET", "/v1/characters/" .. character .. "/expectation?" ..
    cube[cube_i + 1] .. "&" .. star[star_i + 1])
end
""")
PY

warm() { # route, how many names
  head -n "$2" "$work/names" | xargs -P 8 -I{} curl -fsS -o /dev/null -H 'accept-encoding: gzip' \
    "http://$CORE/v1/characters/{}/$1"
}

row() { # label, wrk output file
  python3 - "$1" "$2" <<'PY'
import re, sys
label, text = sys.argv[1], open(sys.argv[2]).read()
def find(pattern, default="–"):
    m = re.search(pattern, text, re.M)
    return m.group(1) if m else default
def ms(value):
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return value
    v = float(m[1]) * {"us": 0.001, "ms": 1, "s": 1000}[m[2]]
    return f"{v:.2f}"
requests = int(find(r"^\s*(\d+) requests in", "0"))
rps = find(r"^Requests/sec:\s*([\d.]+)")
rps = f"{float(rps):,.0f}" if rps != "–" else rps
p50, p99 = ms(find(r"^\s*50%\s+(\S+)")), ms(find(r"^\s*99%\s+(\S+)"))
transfer = find(r"^Transfer/sec:\s*(\S+)")
non2xx = find(r"Non-2xx or 3xx responses:\s*(\d+)", "0")
print(f"| {label} | {requests:,} | **{rps}** | {p50} | {p99} | {transfer} | {non2xx} |")
PY
}

run() { # label, lua, extra wrk args…
  local label=$1 lua=$2
  shift 2
  wrk -t2 -c32 -d"${SECONDS_RUN}s" --latency -s "$work/$lua" "$@" "http://$CORE" >"$work/wrk.out"
  row "$label" "$work/wrk.out"
}

echo "# bench-expectation $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, ${SECONDS_RUN} s per run, wrk -t2 -c32"
for i in "${!binaries[@]}"; do
  echo
  echo "## ${labels[$i]}"
  echo
  echo "| run | requests | req/s | p50 ms | p99 ms | transfer/s | non-2xx |"
  echo "|---|---|---|---|---|---|---|"
  start_stack "${binaries[$i]}"
  warm equipment 200
  warm expectation 200
  run "equipment hit, gzip (200 characters)" equipment.lua -H 'accept-encoding: gzip'
  run "expectation hit, gzip (200 characters)" expectation.lua -H 'accept-encoding: gzip'
  run "expectation hit, identity (200 characters)" expectation.lua
  stop_stack
  # A fresh stack: equipment in L1 for every character, no valuation priced yet.
  start_stack "${binaries[$i]}"
  warm equipment $((2 * CHARS))
  run "equipment cached, valuation not, spreads cold ($CHARS characters)" \
    unpriced-cold.lua -H 'accept-encoding: gzip'
  run "equipment cached, valuation not, spreads warm ($CHARS other characters)" \
    unpriced.lua -H 'accept-encoding: gzip'
  stop_stack
done
