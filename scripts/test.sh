#!/usr/bin/env bash
# The project's one test command (README): prepares the machine (scripts/services.sh), then
# runs every test of the workspace: unit, end-to-end and process-level, the chaos group, the
# small multi-host drill (root: network namespaces) and the schemathesis run included.
# `scripts/test.sh --quick` is the everyday loop: the same without those three (nextest's
# `quick` profile). Other arguments go to nextest
# (e.g. a filter: `scripts/test.sh --quick likes::`). Ends with the slowest tests and their
# times, then one line of totals.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=default
if [ "${1:-}" = "--quick" ]; then
  profile=quick
  shift
fi

bash scripts/services.sh

# The shipped Prometheus configuration and alert rules are valid (a real Prometheus runs them
# in tests/tests/e2e/prometheus.rs).
promtool check config observability/prometheus.yml >/dev/null
promtool check rules observability/alerts.yml >/dev/null

# No import loops among the project's files (docs/architecture.md): a module's children import
# its leaves, never the module itself.
python3 scripts/import-loops.py

# The process-level tests start the shipped binaries (maple, maple-core, maple-proxy), which
# nextest does not build for another package's tests: build them first, together with the
# tests, so both share one feature set. (Built alone, the binaries resolve their dependencies'
# features without the dev-dependencies', and nextest then compiles some 40 crates again.)
cargo build --workspace --bins --tests --examples
status=0
cargo nextest run --workspace --no-fail-fast --profile "$profile" "$@" || status=$?
python3 scripts/slowest-tests.py "${CARGO_TARGET_DIR:-target}/nextest/$profile/junit.xml" 10
exit "$status"
