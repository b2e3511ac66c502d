#!/usr/bin/env bash
# Install what the test suite drives besides Python packages: skopeo and nginx (Debian). Quick when present.
set -euo pipefail
missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
if (( ${#missing[@]} )); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
