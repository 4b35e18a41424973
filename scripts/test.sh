#!/usr/bin/env bash
# The tests: unit tests, `chaos check`, and every scenario against real embedded dev servers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-tools.sh
cargo test --workspace "$@"
