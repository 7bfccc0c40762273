#!/usr/bin/env bash
# The multi-host drill (docs/scaling.md): the distributed stack on hosts of its own — network
# namespaces behind a switch, every link delayed by link-relay (0.25 ms each way by default) —
# with HAProxy (deploy/haproxy.cfg) in front of three cores and two proxies, Redis with a
# replica and three Sentinels, MariaDB and the simulator as Nexon. Users load it through the
# balancer while, in turn, a core host is killed, a core host is partitioned and healed, the
# Redis primary's host dies, the database host is down 30 s, a proxy host dies and the Redis
# primary's link turns slow. Ends with one line:
#   drill: N requests, F failed (…), likes acknowledged A, counted A, lost 0, double 0, upstream calls U for C characters
# and exits 0 only when nothing was lost or counted twice.
#
# Needs root (namespaces); no container engine. Builds the release binaries first.
#   sudo scripts/drill.sh                       # the whole drill (about 6 minutes)
#   sudo scripts/drill.sh --window-s 15         # shorter windows
#   sudo scripts/drill.sh --delay-us 500 --jitter-us 100 --slow-ms 50 --redis-mbit 100
#   sudo scripts/drill.sh --report drill.json   # the figures as JSON too
# Every flag: the doc comment of tests/src/bin/drill.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "drill.sh: run as root: the drill makes network namespaces" >&2
  exit 2
fi

# cmake for the build, HAProxy for the balancer host; the machine's own Redis and MariaDB
# binaries run on the hosts.
bash scripts/build-deps.sh haproxy
for tool in ip tc redis-server mariadbd mariadb-install-db mariadb; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "drill.sh: $tool is missing (iproute2, redis-server, mariadb-server, mariadb-client)" >&2
    exit 2
  fi
done

cargo build --release -p maple-core -p maple-proxy -p maple-sim -p maple-tests --bins
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release"

prefix=mdrill
previous=""
for arg in "$@"; do
  [ "$previous" = "--prefix" ] && prefix="$arg"
  previous="$arg"
done
# The drill tears its hosts down itself, on success, failure or Ctrl-C; this covers a drill
# that was killed outright.
trap '"$bin/drill" --tear-down --prefix "$prefix"' EXIT

"$bin/drill" --bin-dir "$bin" "$@"
