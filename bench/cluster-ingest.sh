#!/usr/bin/env bash
# bench/cluster-ingest.sh - one placement role taking node reports from a fleet.
#
# A load generator (dedupd-ingest-gen) posts reports as NODES nodes x VOLUMES
# volumes every INTERVAL seconds (5,000 x 16 every 10 s = 500 reports/s) to one
# `dedupd --role placement` for DURATION seconds. The generator and the placement
# role are pinned to different cores (taskset), and both are measured:
#   - sustained reports/s, p50/p99 ingest latency (request start to answer);
#   - the placement role's CPU (cores, from /proc/PID/stat) and peak RSS (VmHWM);
#   - the generator's own CPU;
#   - the store's growth, extrapolated to a day at that rate (bytes on disk
#     after the run, after RocksDB has flushed on shutdown).
# There is no other program that ingests these reports to run beside it, so
# the yardstick is issue 9's goals, printed as figure / goal for each:
#   500 reports/s, p99 <= 20 ms, <= 1 core, <= 512 MiB.
#
# Usage: bench/cluster-ingest.sh [--build DIR] [--duration S] [--nodes N]
#                                [--volumes N] [--interval S] [--threads N] [--keep]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
DURATION=${DURATION:-60}
NODES=${NODES:-5000}
VOLUMES=${VOLUMES:-16}
INTERVAL=${INTERVAL:-10}
THREADS=${THREADS:-8}
KEEP=${KEEP:-0}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --volumes) VOLUMES=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "cluster-ingest: unknown option $1" >&2; exit 2 ;;
    esac
done

if [ "$(nproc)" -lt 2 ]; then
    echo "cluster-ingest: needs 2 cores (generator and placement role on their own)" >&2
    exit 1
fi
if [ ! -x "$BUILD/dedupd" ] || [ ! -x "$BUILD/dedupd-ingest-gen" ]; then
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target dedupd dedupd-ingest-gen >/dev/null

WORK=$(mktemp -d /var/tmp/dedupd-ingest.XXXXXX)
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    [ "$KEEP" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TICK=$(getconf CLK_TCK)

taskset -c 1 "$BUILD/dedupd" --role placement --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --token-file "$WORK/token" --min-train-samples 100000000 2>"$WORK/placement.log" &
PID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$WORK/placement.log"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
before=$(cpu_ticks)
t0=$(date +%s.%N)
taskset -c 0 "$BUILD/dedupd-ingest-gen" --url "http://127.0.0.1:$PORT" --token-file "$WORK/token" \
    --nodes "$NODES" --volumes "$VOLUMES" --interval "$INTERVAL" --duration "$DURATION" \
    --threads "$THREADS" >"$WORK/gen.json" || true
t1=$(date +%s.%N)
after=$(cpu_ticks)
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=
store_bytes=$(du -sb "$WORK/data" | cut -f1)

python3 - "$WORK/gen.json" "$before" "$after" "$t0" "$t1" "$TICK" "$hwm_kb" "$store_bytes" \
    "$NODES" "$VOLUMES" "$INTERVAL" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))
before, after, t0, t1, tick, hwm, store = map(float, sys.argv[2:9])
nodes, vols, interval = int(sys.argv[9]), int(sys.argv[10]), float(sys.argv[11])
cores = (after - before) / tick / (t1 - t0)
rows = g["accepted"] * vols
per_row = store / rows if rows else float("nan")
rows_day = nodes * vols * 86400 / interval
print(f"load: {nodes} nodes x {vols} volumes every {interval:g} s "
      f"= {nodes/interval:.0f} reports/s, {g['seconds']:.1f} s")
print(f"sent {g['sent']}, accepted {g['accepted']}, errors {g['errors']} {g['first_error']}")
def line(name, v, goal, unit, lower_better=True):
    ratio = v / goal
    print(f"{name:28s} {v:10.2f} {unit:10s} goal {goal:g}  figure/goal {ratio:.2f}")
line("reports/s", g["reports_per_s"], 500, "", False)
print(f"{'p50 ingest latency':28s} {g['p50_ms']:10.2f} ms")
line("p99 ingest latency", g["p99_ms"], 20, "ms")
print(f"{'max latency / schedule lag':28s} {g['max_ms']:10.2f} ms / {g['max_lag_ms']} ms")
line("placement CPU", cores, 1, "cores")
line("placement peak RSS", hwm / 1024, 512, "MiB")
print(f"{'generator CPU':28s} {g['generator_cpu_s'] / (t1 - t0):10.2f} cores")
print(f"{'store on disk':28s} {store/2**20:10.1f} MiB for {rows} rows = {per_row:.1f} B/row")
print(f"{'store growth per day':28s} {per_row * rows_day / 1e9:10.1f} GB "
      f"({rows_day/1e6:.0f} M rows/day at full resolution)")
EOF
