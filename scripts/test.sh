#!/usr/bin/env bash
# The tests: unit tests, scenario validation, every scenario against real dev servers (embedded;
# testcontainers when a Docker daemon answers), the remote target and doctor, the deployment files
# (and their schema-wait script against a throwaway PostgreSQL), and headless Chromium checks of
# the HTML report and the UI links; and the Python example app (its virtualenv with the Python SDK
# from PyPI) broken through the wire proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-tools.sh
source scripts/ensure-browser.sh
source scripts/ensure-postgres.sh
examples/python-worker/setup.sh
# A Docker daemon that answers (test.sh starts none; .ci/run does) gets the local dev-server image,
# so that the testcontainers test runs instead of skipping.
if docker info >/dev/null 2>&1; then source scripts/docker-image.sh; fi
cargo test --workspace "$@"
