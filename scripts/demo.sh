#!/usr/bin/env bash
# The main job: run the demo scenario suite on an embedded Temporal dev server and write reports
# (reports/latest/{report.md,report.json,junit.xml}) whose rows link to the Temporal Web UI.
# Extra arguments go to `chaos run`, e.g. --keep-server to keep the UI up for the links.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-tools.sh
exec cargo run --quiet -p temporal-chaos --bin chaos -- run scenarios "$@"
