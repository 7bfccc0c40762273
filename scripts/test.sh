#!/usr/bin/env bash
# The project's one test command (README): prepares the machine (scripts/services.sh), then
# runs every test of the workspace: unit, end-to-end and process-level.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh

# --workspace builds every binary, which the process-level tests start.
exec cargo nextest run --workspace --no-fail-fast "$@"
