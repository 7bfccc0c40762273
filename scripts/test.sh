#!/usr/bin/env bash
# The project's one test command (README): prepares the machine (scripts/services.sh), then
# runs every test of the workspace: unit, end-to-end and process-level.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# The shipped Prometheus configuration and alert rules are valid (a real Prometheus runs them
# in tests/tests/e2e/prometheus.rs).
promtool check config observability/prometheus.yml
promtool check rules observability/alerts.yml

# No import loops among the project's files (docs/architecture.md): a module's children import
# its leaves, never the module itself.
python3 scripts/import-loops.py

# The process-level tests start the shipped binaries (maple, maple-core, maple-proxy), which
# nextest does not build for another package's tests: build them first.
cargo build --workspace --bins
exec cargo nextest run --workspace --no-fail-fast "$@"
