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
# Builds the release binaries as the user who runs it, then runs the drill as root (through
# sudo when not root: it makes network namespaces). No container engine.
#   scripts/drill.sh                       # the whole drill (about 4.5 minutes after the build)
#   scripts/drill.sh --window-s 15         # shorter windows
#   scripts/drill.sh --delay-us 500 --jitter-us 100 --slow-ms 50 --redis-mbit 100
#   scripts/drill.sh --report drill.json   # the figures as JSON too
#   scripts/drill.sh --capacity            # the capacity model's steps (docs/scaling.md)
# Every flag: the doc comment of tests/src/bin/drill.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "drill.sh: the drill makes network namespaces: run it as root" >&2
    exit 2
  fi
  as_root=(sudo)
fi

# cmake for the build, HAProxy for the balancer host, and the hosts' own servers and tools
# from Debian's packages, each installed when its command is missing.
bash scripts/build-deps.sh haproxy ip:iproute2 tc:iproute2 redis-server \
  mariadbd:mariadb-server mariadb-install-db:mariadb-server mariadb:mariadb-client

cargo build --release -p maple-core -p maple-proxy -p maple-sim -p maple-tests --bins
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release"

# The namespaces' prefix, as the drill picks it.
prefix=mdrill
previous=""
for arg in "$@"; do
  [ "$arg" = "--small" ] && prefix=mdsmall
  [ "$previous" = "--prefix" ] && prefix="$arg"
  previous="$arg"
done
# The drill tears its hosts down itself, on success, failure, Ctrl-C or SIGTERM; this covers a
# drill that was killed outright, or interrupted before it had started its hosts.
trap '"${as_root[@]}" "$bin/drill" --tear-down --prefix "$prefix"' EXIT

"${as_root[@]}" "$bin/drill" --bin-dir "$bin" "$@"
