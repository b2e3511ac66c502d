#!/usr/bin/env bash
# Install everything the tests need (Python packages into .venv, skopeo and friends from Debian),
# then run the whole suite. Extra arguments go to pytest. Under CI=true a skipped test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test
./scripts/install-test-deps.sh
exec .venv/bin/python -m pytest "$@"
