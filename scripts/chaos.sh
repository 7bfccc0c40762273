#!/usr/bin/env bash
# The chaos suite alone (tests/tests/e2e/chaos.rs): the distributed shape on real processes
# under load through eight faults; writes the table to docs/chaos.md with the run's date and
# commit. Fails if any acknowledged like is lost or counted twice, or a duplicate row appears.
# The test is marked ignored, so .ci/run does not run it (see docs/chaos.md for why).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
cargo build --workspace --bins
report=$(mktemp)
MAPLE_CHAOS_REPORT="$report" cargo nextest run -p maple-tests --test e2e --run-ignored only 'chaos::'
{
  echo "# Chaos suite"
  echo
  echo "Command: \`scripts/chaos.sh\` — run $(date -u +%Y-%m-%dT%H:%M:%SZ) at commit $(git rev-parse --short HEAD) on $(nproc) cores (debug build, load generator in the same process as one core instance)."
  echo
  echo "Set-up: private MariaDB, Redis primary + replica + 3 sentinels (core finds the primary through them, like batches wait for the replica), the simulator, the proxy (cache off, so Nexon faults reach core), core A in-process and core B as a \`maple-core\` process reaching the proxy through a TCP fault proxy (tests/src/tcp_fault.rs). Six workers read the equipment of 12 characters from both instances (core keeps it fresh for 2 s) and every third step send a like with its own idempotency key, retried on the other instance until acknowledged. Each fault: 2 s before, 8 s of fault, 6 s after. \"other\" counts requests to the instance that was down (a client would retry elsewhere); \"recovered after\": from the fault's end until a whole second of answers is fresh."
  echo
  cat "$report"
} > docs/chaos.md
rm -f "$report"
echo "wrote docs/chaos.md"
