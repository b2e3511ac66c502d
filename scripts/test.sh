#!/usr/bin/env bash
# Install everything the tests need (Python packages into .venv; skopeo, nginx, node and PostgreSQL from Debian;
# Azurite from npm), then run the whole suite twice: on the embedded defaults (SQLite, filesystem store), then
# on PostgreSQL with the Azure Blob store (Azurite). The S3 store is exercised by the store contract tests in
# both passes. Extra arguments go to pytest. Under CI=true a skipped test fails the run.
# CARGOHOLD_TEST_BACKENDS=embedded runs only the first pass.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test
./scripts/install-test-deps.sh

echo "== suite on SQLite + filesystem" >&2
.venv/bin/python -m pytest "$@"

if [[ "${CARGOHOLD_TEST_BACKENDS:-all}" != "embedded" ]]; then
  echo "== suite on PostgreSQL + Azure Blob (Azurite)" >&2
  azurite_dir="$(mktemp -d /tmp/cargohold-azurite.XXXXXX)"
  stop_all() {
    ./scripts/cloud-stores.sh stop azurite "$azurite_dir" || true
    ./scripts/postgres.sh stop || true
  }
  trap stop_all EXIT
  pg_url="$(./scripts/postgres.sh start)"
  eval "$(./scripts/cloud-stores.sh start azurite "${CARGOHOLD_AZURITE_PORT:-10010}" "$azurite_dir")"
  CARGOHOLD_TEST_POSTGRES="$pg_url" CARGOHOLD_TEST_STORAGE=azure .venv/bin/python -m pytest "$@"
fi
