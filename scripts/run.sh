#!/usr/bin/env bash
# The project's run command (README): installs what the build needs when missing
# (scripts/build-deps.sh: cmake for pingora's zlib-ng), then builds and runs `maple` in release
# mode — the Nexon simulator, the proxy and core in one process, embedded defaults (SQLite under
# var/, no Redis). Arguments go to `maple` (e.g. `scripts/run.sh --help`); settings come from
# the environment, as `cargo run --release` would take them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build-deps.sh
exec cargo run --release --bin maple -- "$@"
