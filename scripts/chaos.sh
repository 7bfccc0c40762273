#!/usr/bin/env bash
# The chaos suite alone and at full length (tests/tests/e2e/chaos.rs; the test command runs it
# with each fault held only as long as what it proves needs): the distributed shape on real
# processes under load through ten faults held as long as an incident might last (Nexon down
# 60 s, MariaDB 30 s, the rest 10 s: MAPLE_CHAOS_LONG=1), plus chaos::stores (Redis slow, a
# full disk under the backup folder, 10 s each) and chaos::backlog (MariaDB down 5 min,
# MAPLE_CHAOS_DB_OUTAGE_S, likes to 5,000 characters). About 13 minutes. Fails if any acknowledged
# like is lost or counted twice, or a duplicate row appears, or (here only: a wall-clock figure)
# the p99 during "Nexon slow" and the core <-> proxy partition is above 500 ms. `scripts/chaos.sh N` runs it N
# times in a row (each run's table is printed); the last run's table, with its date and
# commit, replaces the part of docs/chaos.md between the "latest run" markers.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-1}
bash scripts/services.sh
cargo build --workspace --bins --tests --examples
report=$(mktemp)
stores=$(mktemp)
backlog=$(mktemp)
for run in $(seq 1 "$runs"); do
  echo "chaos run $run of $runs"
  MAPLE_CHAOS_LONG=1 MAPLE_CHAOS_DB_OUTAGE_S="${MAPLE_CHAOS_DB_OUTAGE_S:-300}" \
    MAPLE_CHAOS_P99_BOUND_MS=500 MAPLE_CHAOS_REPORT="$report" MAPLE_CHAOS_STORES_REPORT="$stores" \
    MAPLE_CHAOS_BACKLOG_REPORT="$backlog" cargo nextest run -p maple-tests --test e2e 'chaos::'
  cat "$report" "$stores" "$backlog"
done
block=$(mktemp)
{
  echo "Run $(date -u +%Y-%m-%dT%H:%M:%SZ) at commit $(git rev-parse --short HEAD) on $(nproc) cores (debug build), \`scripts/chaos.sh${1:+ $1}\` (the last of $runs):"
  echo
  cat "$report"
  echo
  echo "The stores' faults (\`chaos::stores\`: one core, Redis behind a TCP fault proxy, the backup folder on a 1 MiB tmpfs):"
  echo
  cat "$stores"
  echo
  echo "The long database outage (\`chaos::backlog\`):"
  echo
  echo "| fault | likes | backlog | drain | stored |"
  echo "|---|---|---|---|---|"
  cat "$backlog"
} > "$block"
python3 - "$block" <<'PY'
import re, sys
block = open(sys.argv[1]).read().strip()
path = "docs/chaos.md"
text = open(path).read()
start, end = "<!-- latest run -->", "<!-- /latest run -->"
assert start in text and end in text, "docs/chaos.md lost its latest-run markers"
head, rest = text.split(start, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(f"{head}{start}\n{block}\n{end}{tail}")
PY
rm -f "$report" "$stores" "$backlog" "$block"
echo "updated docs/chaos.md"
