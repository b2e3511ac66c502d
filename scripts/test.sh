#!/usr/bin/env bash
# Install everything the tests need (Python packages into .venv; skopeo, nginx and PostgreSQL from Debian;
# Azurite from npm), then run the whole suite twice: on the embedded defaults (SQLite, filesystem store), then
# on PostgreSQL with the Azure Blob store (Azurite). Extra arguments go to pytest.
# Under CI=true a skipped test fails the run. CARGOHOLD_TEST_BACKENDS=embedded runs only the first pass.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test
./scripts/install-test-deps.sh

echo "== suite on SQLite + filesystem" >&2
.venv/bin/python -m pytest "$@"

if [[ "${CARGOHOLD_TEST_BACKENDS:-all}" != "embedded" ]]; then
  echo "== suite on PostgreSQL" >&2
  pg_url="$(./scripts/postgres.sh start)"
  trap './scripts/postgres.sh stop' EXIT
  CARGOHOLD_TEST_POSTGRES="$pg_url" .venv/bin/python -m pytest "$@"
fi
