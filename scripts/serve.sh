#!/usr/bin/env bash
# Quick start: install cargohold into .venv and run it on the embedded default
# (SQLite + filesystem store under ./data, http://127.0.0.1:5000). Extra arguments go to `cargohold serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/cargohold serve "$@"
