#!/usr/bin/env bash
# The run store's benchmarks in SQLite and PostgreSQL: recording a 25-scenario run, and the
# dashboard's main page over 1,000 stored runs of 25 scenarios (criterion, `hot_paths` bench).
# Starts a throwaway PostgreSQL (Debian's server, scripts/ensure-postgres.sh) on a free loopback
# port in a temporary folder, removed at the end.
#
#   ./scripts/bench-store.sh            # both stores
#   ./scripts/bench-store.sh --quick    # a shorter measurement
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-tools.sh
source scripts/ensure-postgres.sh
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# PostgreSQL refuses to run as root: run it as the `postgres` user then.
run_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
run_pg "$bin/initdb" -U chaos --auth=trust --no-sync -D "$dir/data" >/dev/null
run_pg "$bin/postgres" -D "$dir/data" -c listen_addresses=127.0.0.1 -c "port=$port" \
  -c "unix_socket_directories=$dir" >"$dir/log" 2>&1 &
pg=$!
trap 'status=$?; kill "$pg" 2>/dev/null; wait "$pg" 2>/dev/null || true; rm -rf "$dir"; exit $status' EXIT
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
export CHAOS_BENCH_POSTGRES_URL="postgres://chaos@127.0.0.1:$port/postgres"
extra=()
[ "${1:-}" = "--quick" ] && extra=(--warm-up-time 1 --measurement-time 3)
cargo bench -p temporal-chaos --bench hot_paths -- 'record a|dashboard page' "${extra[@]}"
