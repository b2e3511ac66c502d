#!/usr/bin/env bash
# Install the third-party programs the benchmark harness drives (docker-registry, nginx, wrk, hey, curl).
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

# httpx is the harness's only non-stdlib Python dependency.
python3 -c "import httpx" 2>/dev/null || python3 -m pip install --quiet httpx

# hey: wrk (4.1) cannot do HEAD requests (wg/wrk#198: its parser waits for a body), so HEAD uses hey.
packages=(docker-registry nginx wrk hey curl)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "bench/setup.sh: all packages present (${packages[*]})"
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "bench/setup.sh: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"

# Debian's postinst may start nginx/docker-registry via init scripts when possible; stop them so
# they do not hold ports or CPU during the benchmark.
for svc in nginx docker-registry; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        $SUDO systemctl stop "$svc" || true
    fi
done
