#!/usr/bin/env bash
# Benchmark: `chaos proxy` deployed as a service, held under load, and its resident memory over
# time (from its own admin listener, GET /health). The setup is render.yaml's on loopback: a dev
# server, `chaos proxy --admin` in front of it, the harness's `chaos worker` polling through the
# proxy, and `chaos load --external-worker --inject wire` starting workflows whose faults the
# proxy injects, back to back, until the time is up.
#
#   scripts/bench-proxy-memory.sh [MINUTES] [KEEP_ATTEMPTS]     # defaults: 10, 50000
#
# Writes target/bench-proxy-memory/samples.csv (one row per 15 s: elapsed_s, resident_bytes, kept,
# dropped, polls) and prints the resident memory at the start (the first sample after one minute
# of load, past warm-up) and at the end. With a small KEEP_ATTEMPTS the log reaches its bound
# early, which shows whether memory stays flat once it is full.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-tools.sh
minutes="${1:-10}"
keep="${2:-50000}"
out="target/bench-proxy-memory"
mkdir -p "$out"
cargo build --release --quiet -p temporal-chaos --bin chaos
chaos="$PWD/target/release/chaos"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
server_port="$(free_port)"; listen_port="$(free_port)"; admin_port="$(free_port)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

temporal server start-dev --ip 127.0.0.1 --port "$server_port" --headless --log-level error >"$out/server.log" 2>&1 &
pids+=($!)
"$chaos" proxy --listen "127.0.0.1:$listen_port" --admin "127.0.0.1:$admin_port" \
  --upstream "127.0.0.1:$server_port" --keep-attempts "$keep" >"$out/proxy.log" 2>&1 &
pids+=($!)
"$chaos" worker --address "127.0.0.1:$listen_port" --task-queue bench >"$out/worker.log" 2>&1 &
pids+=($!)

health() { curl -fsS "http://127.0.0.1:$admin_port/health"; }
for _ in $(seq 1 600); do
  health 2>/dev/null | grep -q '"server_version":"' && break
  sleep 0.1
done

deadline=$(( $(date +%s) + minutes * 60 ))
echo "elapsed_s,resident_bytes,kept,dropped,polls" >"$out/samples.csv"
(
  began=$(date +%s)
  while [ "$(date +%s)" -lt "$deadline" ]; do
    health | python3 -c '
import json, sys, time
h = json.load(sys.stdin)
a = h["attempts"]
row = [int(time.time()) - int(sys.argv[1]), h["resident_bytes"], a["kept"], a["dropped"], h["polls"]]
print(",".join(str(v) for v in row))
' "$began" >>"$out/samples.csv" || true
    sleep 15
  done
) &
sampler=$!
pids+=("$sampler")

runs=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  "$chaos" load --target remote --address "127.0.0.1:$server_port" --external-worker --task-queue bench \
    --inject wire --workflows 1000 --rate 40 --concurrency 50 --reports "$out/reports" \
    >"$out/load.log" 2>&1 || { echo "chaos load failed: see $out/load.log" >&2; exit 1; }
  runs=$((runs + 1))
done
wait "$sampler" || true
health >"$out/health.json"

python3 - "$out/samples.csv" "$runs" "$keep" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
mib = lambda r: int(r["resident_bytes"]) / 2**20
end = rows[-1]
print(f"chaos proxy under load for {end['elapsed_s']} s ({sys.argv[2]} load runs of 1000 workflows, --keep-attempts {sys.argv[3]}):")
print(f"  resident memory at start {mib(rows[0]):.1f} MiB, at the end {mib(end):.1f} MiB ({end['kept']} attempts kept, {end['dropped']} dropped); peak {max(mib(r) for r in rows):.1f} MiB")
minute = [next((r for r in rows if int(r["elapsed_s"]) >= 60 * m), None) for m in range(1, 11)]
print("  by minute: " + ", ".join(f"{m + 1}: {mib(r):.1f} MiB ({r['kept']} kept)" for m, r in enumerate(minute) if r))
full = next((r for r in rows if int(r["kept"]) >= int(sys.argv[3])), None)
if full:
    after = [mib(r) for r in rows if int(r["elapsed_s"]) >= int(full["elapsed_s"])]
    print(f"  the log was full from {full['elapsed_s']} s on; from then: {min(after):.1f} to {max(after):.1f} MiB")
print(f"  samples in {sys.argv[1]}")
EOF
