#!/usr/bin/env bash
# The tests: unit tests, scenario validation, every scenario against real dev servers (embedded;
# testcontainers when a Docker daemon answers), the remote target and doctor, and headless
# Chromium checks of the HTML report and the UI links.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-tools.sh
source scripts/ensure-browser.sh
cargo test --workspace "$@"
