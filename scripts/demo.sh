#!/usr/bin/env bash
# The main job: run the scenario suite on an embedded Temporal dev server and write reports
# (reports/latest/{report.md,report.json,junit.xml,index.html}) whose rows link to the Temporal
# Web UI: the demo workflows in the harness's own worker, and the Python example app (its
# virtualenv is created first) with faults injected on the wire.
# Extra arguments go to `chaos run`, e.g. --keep-server to keep the UI up for the links.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-tools.sh
examples/python-worker/setup.sh
exec cargo run --quiet -p temporal-chaos --bin chaos -- run scenarios examples/python-worker/scenarios "$@"
