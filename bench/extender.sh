#!/usr/bin/env bash
# bench/extender.sh - the scheduler extender under wrk, beside a trivial
# libmicrohttpd hello server in the same run.
#
# One `dedupd --role placement` (pinned to core 1 with taskset, its default
# 4 HTTP threads, the prior cost model) gets a cluster view of NODES nodes x
# 16 volumes from dedupd-ingest-gen (pinned to core 0), one pass at the real
# rate (NODES / 10 s), then the generator stops; --stale-after keeps the
# reports fresh for the run. The pod is the reference pod
# (tests/fixtures/k8s/pod.gpu-trainer: 2 GPUs, two PVCs) with the annotation
# dedupd.io/pool: pool-0 (a pool of every reported node), and no Kubernetes
# cache, so both claims resolve to the pool and prioritize runs the model on
# 2 claims x 2 rows for every candidate node. wrk (core 0) POSTs one
# compact ExtenderArgs body per row to /scheduler/prioritize and
# /scheduler/filter:
#   names mode with 100, 500 (kube-scheduler's share at 5,000 nodes),
#   1,000 and 5,000 names (a random sample of the reported nodes), and
#   full-Nodes mode with 1,000 Node objects (tests/fixtures/k8s/node.gpu-node-a,
#   renamed);
# the baseline, dedupd-hello-server (same MHD flags and thread pool, pinned
# to core 1 too), gets the same bodies at 100 and 5,000 names.
# Printed per row: req/s, p50, p99, the server's CPU time per request
# (/proc/PID/stat; a sharper figure than wall time on a shared machine),
# req/s over the hello server's at 100 names, and the goals (p99 <= 2.5 ms
# at 5,000 names; >= 0.5 x hello's req/s at 100 names). Before wrk, one
# prioritize reply per names row is checked: every node answered, and the
# spread of its scores (all neutral would mean the model never ran).
#
# Usage: bench/extender.sh [--build DIR] [--duration S] [--connections N]
#                          [--nodes N] [--http-threads N] [--keep]
#   --duration S      wrk -d per row (default 10)
#   --connections N   wrk -c (default 1: kube-scheduler calls an extender
#                     one request at a time)
#   --nodes N         reported nodes (default 5000)
# Environment: BUILD (default ./build-bench), DEDUPD (the daemon to measure,
# default $BUILD/dedupd: an older binary for a before/after comparison).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-1}
NODES=${NODES:-5000}
HTTP_THREADS=${HTTP_THREADS:-4}
KEEP=${KEEP:-0}
DEDUPD=${DEDUPD:-}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --http-threads) HTTP_THREADS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "extender: unknown option $1" >&2; exit 2 ;;
    esac
done

if [ "$(nproc)" -lt 2 ]; then
    echo "extender: needs 2 cores (server on one, wrk and the generator on the other)" >&2
    exit 1
fi
for t in wrk curl python3 taskset; do
    command -v "$t" >/dev/null || { echo "extender: $t is missing" >&2; exit 1; }
done
if [ "$NODES" -lt 5000 ]; then
    echo "extender: --nodes must be >= 5000 (the largest row asks for 5,000 names)" >&2
    exit 2
fi
if [ ! -x "$BUILD/dedupd" ] || [ ! -x "$BUILD/dedupd-ingest-gen" ] ||
    [ ! -x "$BUILD/dedupd-hello-server" ]; then
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target dedupd dedupd-ingest-gen dedupd-hello-server >/dev/null

DEDUPD=${DEDUPD:-$BUILD/dedupd}

WORK=$(mktemp -d /var/tmp/dedupd-extender.XXXXXX)
PID= HPID=
cleanup() {
    for p in $PID $HPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    [ "$KEEP" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
PORT=$(free_port)
HPORT=$(free_port)
URL=http://127.0.0.1:$PORT

echo "== extender: $NODES reported nodes x 16 volumes, wrk -t1 -c$CONNECTIONS -d${DURATION}s per row"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tree: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'); daemon $DEDUPD"

taskset -c 1 "$DEDUPD" --role placement --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --token-file "$WORK/token" --min-train-samples 100000000 --stale-after 3600 \
    --http-threads "$HTTP_THREADS" 2>"$WORK/placement.log" &
PID=$!
for _ in $(seq 100); do
    curl -sf "$URL/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { cat "$WORK/placement.log"; exit 1; }

# ---- the cluster view: one pass of every node at the real rate, then stop
t0=$(date +%s.%N)
taskset -c 0 "$BUILD/dedupd-ingest-gen" --url "$URL" --token-file "$WORK/token" \
    --nodes "$NODES" --volumes 16 --interval 10 --duration 10 >"$WORK/gen.json" || true
t1=$(date +%s.%N)
reported=$(curl -sf -H "Authorization: Bearer $(cat "$WORK/token")" "$URL/v1/cluster" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); n=d.get("nodes", d); print(len(n) if isinstance(n, list) else n)')
echo "cluster view: $reported nodes reported in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s" \
    "($(python3 -c 'import json,sys; g=json.load(open(sys.argv[1])); print("%d reports accepted, ingest p99 %.1f ms" % (g["accepted"], g["p99_ms"]))' "$WORK/gen.json")); generator stopped"
if [ "$reported" -lt 5000 ]; then
    echo "extender: only $reported nodes in the view" >&2
    exit 1
fi

# ---- the bodies (compact JSON)
python3 - "$WORK" "$NODES" "$REPO" <<'EOF'
import json, random, sys, os
work, nodes = sys.argv[1], int(sys.argv[2])
fx = os.path.join(sys.argv[3], "tests", "fixtures", "k8s")
pod = json.load(open(os.path.join(fx, "pod.gpu-trainer.scheduled-view.json")))
pod["metadata"].setdefault("annotations", {})["dedupd.io/pool"] = "pool-0"
node = json.load(open(os.path.join(fx, "node.gpu-node-a.json")))
rng = random.Random(1)
every = [f"node-{i:05d}" for i in range(nodes)]
def dump(name, doc):
    with open(os.path.join(work, name), "w") as f:
        f.write(json.dumps(doc, separators=(",", ":")))
for n in (100, 500, 1000, 5000):
    dump(f"names-{n}.json", {"Pod": pod, "Nodes": None, "NodeNames": rng.sample(every, n)})
items = []
for name in rng.sample(every, 1000):
    it = json.loads(json.dumps(node))
    it["metadata"]["name"] = name
    it["metadata"].setdefault("labels", {})["kubernetes.io/hostname"] = name
    items.append(it)
dump("full-1000.json", {"Pod": pod, "Nodes": {"metadata": {}, "items": items}, "NodeNames": None})
EOF

# ---- one reply per names row: every node answered, and the scores' spread
for n in 100 500 1000 5000; do
    curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/names-$n.json" \
        "$URL/scheduler/prioritize" >"$WORK/reply-$n.json"
    python3 - "$WORK/reply-$n.json" "$n" <<'EOF'
import json, sys, collections
r = json.load(open(sys.argv[1]))
c = collections.Counter(h["Score"] for h in r)
print(f"prioritize, {sys.argv[2]:>4} names: {len(r)} hosts; scores " +
      " ".join(f"{s}:{c[s]}" for s in sorted(c)) + ("  (ALL NEUTRAL: the model did not run)" if set(c) == {5} else ""))
if len(r) != int(sys.argv[2]):
    sys.exit("extender: a reply without every node")
EOF
done
curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/full-1000.json" \
    "$URL/scheduler/filter" | python3 -c 'import json,sys; d=json.load(sys.stdin)
print("filter, full-Nodes 1000: %d pass, %d unresolvable, Error %r" % (len(d["Nodes"]["items"]), len(d["FailedAndUnresolvableNodes"]), d["Error"]))'
curl -sf "$URL/metrics" | grep -E '^dedupd_extender_(scored|neutral)_nodes_total' | tr '\n' ' '
echo

# ---- the baseline
taskset -c 1 "$BUILD/dedupd-hello-server" "$HPORT" "$HTTP_THREADS" &
HPID=$!
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$HPORT/" >/dev/null && break
    sleep 0.1
done

cat >"$WORK/post.lua" <<'EOF'
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
    io.write(string.format("RESULT %d %d %d %.1f %.1f\n", summary.requests,
        summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout,
        summary.duration, latency:percentile(50), latency:percentile(99)))
end
EOF
# CPU time (user + system, clock ticks) a process has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
# wrk_row LABEL URL BODY PID -> "LABEL req/s p50_ms p99_ms errors cpu_ms_per_request"
# (the server's CPU per request: less sensitive than wall time to other
# jobs on the machine taking turns on its core)
wrk_row() {
    local c0 c1
    c0=$(cpu_ticks "$4")
    BODY=$3 taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
        -s "$WORK/post.lua" "$2" >"$WORK/wrk-$1.txt" 2>&1 || true
    c1=$(cpu_ticks "$4")
    awk -v label="$1" -v ms="$(( (c1 - c0) * 1000 / TICK ))" '$1 == "RESULT" { printf "%s %.1f %.3f %.3f %d %.3f\n", label, $2 / ($4 / 1e6), $5 / 1000, $6 / 1000, $3, $2 ? ms / $2 : 0; found = 1 }
        END { if (!found) printf "%s nan nan nan -1 nan\n", label }' "$WORK/wrk-$1.txt"
}
{
    wrk_row hello:names:100 "http://127.0.0.1:$HPORT/" "$WORK/names-100.json" "$HPID"
    for n in 100 500 1000 5000; do
        wrk_row prioritize:names:$n "$URL/scheduler/prioritize" "$WORK/names-$n.json" "$PID"
        wrk_row filter:names:$n "$URL/scheduler/filter" "$WORK/names-$n.json" "$PID"
    done
    wrk_row prioritize:full:1000 "$URL/scheduler/prioritize" "$WORK/full-1000.json" "$PID"
    wrk_row filter:full:1000 "$URL/scheduler/filter" "$WORK/full-1000.json" "$PID"
    wrk_row hello:names:5000 "http://127.0.0.1:$HPORT/" "$WORK/names-5000.json" "$HPID"
} >"$WORK/rows.txt"
curl -sf "$URL/metrics" | grep -E '^dedupd_extender_requests_total.*(bad_request|model_error)' |
    awk '$2 > 0 { print "extender: " $0 }'
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")

python3 - "$WORK/rows.txt" "$hwm_kb" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
hello = next((float(r[1]) for r in rows if r[0] == "hello:names:100"), float("nan"))
print(f"{'mode':10s} {'verb':10s} {'names':>5s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
      f"{'cpu ms/req':>10s} {'/hello@100':>10s}  goal")
for label, rps, p50, p99, err, cpu in rows:
    verb, mode, n = label.split(":")
    rps, p50, p99, n = float(rps), float(p50), float(p99), int(n)
    goal = ""
    if verb != "hello" and mode == "names" and n == 5000:
        goal = f"p99 <= 2.5 ms: {'met' if p99 <= 2.5 else 'missed'} ({p99 / 2.5:.2f} x)"
    if verb != "hello" and mode == "names" and n == 100:
        goal = f">= 0.5 x hello: {'met' if rps / hello >= 0.5 else 'missed'}"
    if int(err):
        goal += f"  {err} errors"
    print(f"{mode:10s} {verb:10s} {n:5d} {rps:9.0f} {p50:8.3f} {p99:8.3f} {float(cpu):10.3f} "
          f"{rps / hello:10.2f}  {goal}")
print(f"placement peak RSS (VmHWM): {int(sys.argv[2]) / 1024:.1f} MiB")
EOF
