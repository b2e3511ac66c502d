#!/usr/bin/env bash
# Local stand-ins for the cloud blob stores: Azurite (Azure Blob, from npm) and moto's S3 server (from the venv).
#
#   scripts/cloud-stores.sh install                 npm-install Azurite into $CARGOHOLD_TOOLS_DIR (default .tools/);
#                                                   quick when it is there
#   scripts/cloud-stores.sh azurite PORT DIR        run Azurite's blob service on 127.0.0.1:PORT, data in DIR,
#                                                   in the foreground (exec: the caller's child is the server)
#   scripts/cloud-stores.sh moto PORT               run moto's server on 127.0.0.1:PORT in the foreground (exec)
#   scripts/cloud-stores.sh start azurite|moto PORT DIR
#                                                   the same in the background (pid and log in DIR), wait until it
#                                                   answers, and print what to export and the --storage-url to use
#   scripts/cloud-stores.sh stop azurite|moto DIR   stop what `start` started
#
# Azurite's account is the emulator's well-known devstoreaccount1 (its key is public, not a secret).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${CARGOHOLD_TOOLS_DIR:-$root/.tools}"
venv="${CARGOHOLD_VENV:-$root/.venv}"
azurite_version="${AZURITE_VERSION:-3.35.0}"
azurite_bin="$tools/node_modules/.bin/azurite-blob"
azurite_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

install_azurite() {
  if [[ -x "$azurite_bin" ]]; then
    return
  fi
  command -v npm >/dev/null 2>&1 || { echo "npm is needed to install Azurite (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$tools"
  [[ -f "$tools/package.json" ]] || echo '{"private": true, "description": "cargohold test tools"}' >"$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >&2
}

moto_bin() {
  if [[ -x "$venv/bin/moto_server" ]]; then
    echo "$venv/bin/moto_server"
  elif command -v moto_server >/dev/null 2>&1; then
    command -v moto_server
  else
    echo "moto_server is missing: install the test extras (./scripts/bootstrap.sh --test)" >&2
    exit 1
  fi
}

wait_for_port() {  # port pid
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

case "${1:-}" in
  install)
    install_azurite
    ;;
  azurite)
    [[ $# == 3 ]] || usage
    [[ -x "$azurite_bin" ]] || { echo "Azurite is not installed: run $0 install" >&2; exit 1; }
    mkdir -p "$3"
    exec "$azurite_bin" --blobHost 127.0.0.1 --blobPort "$2" --location "$3" --silent --skipApiVersionCheck \
      --disableTelemetry
    ;;
  moto)
    [[ $# == 2 ]] || usage
    exec "$(moto_bin)" -H 127.0.0.1 -p "$2"
    ;;
  start)
    [[ $# == 4 ]] || usage
    kind="$2" port="$3" dir="$4"
    [[ "$kind" == azurite || "$kind" == moto ]] || usage
    [[ "$kind" == azurite ]] && install_azurite
    mkdir -p "$dir"
    if [[ "$kind" == azurite ]]; then
      nohup "$0" azurite "$port" "$dir/azurite-data" >"$dir/azurite.log" 2>&1 &
    else
      nohup "$0" moto "$port" >"$dir/moto.log" 2>&1 &
    fi
    pid=$!
    echo "$pid" >"$dir/$kind.pid"
    if ! wait_for_port "$port" "$pid"; then
      echo "$kind did not start on port $port; see $dir/$kind.log" >&2
      exit 1
    fi
    if [[ "$kind" == azurite ]]; then
      echo "export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$azurite_key;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;'"
      echo "# --storage-url azure://cargohold"
    else
      echo "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1"
      echo "# --storage-url 's3://cargohold?endpoint_url=http://127.0.0.1:$port'"
    fi
    ;;
  stop)
    [[ $# == 3 ]] || usage
    kind="$2" dir="$3"
    if [[ -f "$dir/$kind.pid" ]]; then
      pid="$(cat "$dir/$kind.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$kind.pid"
    fi
    ;;
  *)
    usage
    ;;
esac
