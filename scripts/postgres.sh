#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite and benchmarks, from Debian's packages.
#   scripts/postgres.sh start   install if needed, init a cluster in $CARGOHOLD_PG_DIR, start it on
#                               127.0.0.1:$CARGOHOLD_PG_PORT with trust auth, print its URL
#   scripts/postgres.sh stop
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
set -euo pipefail
dir="${CARGOHOLD_PG_DIR:-/tmp/cargohold-pg}"
port="${CARGOHOLD_PG_PORT:-55432}"

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

as_owner() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "${1:-start}" in
  start)
    if [[ -z "$(bin_dir)" ]]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    bin="$(bin_dir)"
    if [[ ! -f "$dir/PG_VERSION" ]]; then
      mkdir -p "$dir"
      [[ $(id -u) == 0 ]] && chown postgres: "$dir"
      as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=on" >/dev/null
    fi
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    bin="$(bin_dir)"
    [[ -n "$bin" && -f "$dir/PG_VERSION" ]] && as_owner "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null || true
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
