#!/usr/bin/env bash
# Install what the test suite drives besides Python packages: skopeo, buildah (ACR Tasks builds), containerd (its
# ctr pulls as Kubernetes nodes do), nginx and node/npm (Debian), Azurite
# (npm, into .tools/ by scripts/cloud-stores.sh). PostgreSQL comes with scripts/postgres.sh. Quick when present.
set -euo pipefail
missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if (( ${#missing[@]} )); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$(dirname "$0")/cloud-stores.sh" install
