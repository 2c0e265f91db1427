#!/usr/bin/env bash
# bench/admission.sh - the right-sizing webhook (POST /admission/mutate) at
# a fixed request rate, beside a trivial libmicrohttpd hello server and the
# daemon's own /healthz in the same run.
#
# One `dedupd --role placement` (pinned to core 1, its default 4 HTTP
# threads) gets a cluster view of NODES nodes x 16 volumes from
# dedupd-ingest-gen (one pass, then it stops; --stale-after keeps the
# reports fresh), and OUTCOMES outcomes of the owner Deployment "loader"
# on POST /v1/observations (its history: the prediction's source). The
# review is tests/fixtures/k8s/admission/admission-review.request.deployment-pod
# (a Deployment's pod with an empty name, opted in by its annotation),
# with the annotation dedupd.io/pool: pool-0 so the live-state scoring runs
# the cost model on 64 candidate nodes for both of its claims. Rows, each
# RATE req/s for DURATION s (wrk -t2 -c2 with a Lua delay of 2/RATE s per
# request: closed loop with think time, so the achieved rate is a little
# under RATE and printed):
#   hello       dedupd-hello-server (same MHD flags and threads, core 1)
#   healthz     GET /healthz of the same daemon
#   mutate      POST /admission/mutate, the opted-in review (patched)
#   not-opted   POST /admission/mutate, the same pod without the annotation
#               (the fail-open path: a warning, no prediction)
# Before wrk, one answer is checked: allowed, uid echoed, a JSONPatch.
# Printed per row: achieved req/s, p50, p99, p99 over hello's p99, and the
# goal (p99 < 5 ms for mutate).
#
# Usage: bench/admission.sh [--build DIR] [--duration S] [--rate R]
#                           [--nodes N] [--outcomes N] [--keep]
# Environment: BUILD (default ./build-bench), DEDUPD (default $BUILD/dedupd).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
DURATION=${DURATION:-20}
RATE=${RATE:-200}
NODES=${NODES:-1000}
OUTCOMES=${OUTCOMES:-200}
KEEP=${KEEP:-0}
DEDUPD=${DEDUPD:-}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --outcomes) OUTCOMES=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "admission: unknown option $1" >&2; exit 2 ;;
    esac
done

if [ "$(nproc)" -lt 2 ]; then
    echo "admission: needs 2 cores (server on one, wrk and the generator on the other)" >&2
    exit 1
fi
for t in wrk curl python3 taskset; do
    command -v "$t" >/dev/null || { echo "admission: $t is missing" >&2; exit 1; }
done
if [ ! -x "$BUILD/dedupd" ] || [ ! -x "$BUILD/dedupd-ingest-gen" ] ||
    [ ! -x "$BUILD/dedupd-hello-server" ]; then
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target dedupd dedupd-ingest-gen dedupd-hello-server >/dev/null
DEDUPD=${DEDUPD:-$BUILD/dedupd}

WORK=$(mktemp -d /var/tmp/dedupd-admission.XXXXXX)
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
AUTH="Authorization: Bearer $(cat "$WORK/token")"

echo "== admission: $NODES reported nodes x 16 volumes, $OUTCOMES outcomes, ${RATE} req/s x ${DURATION} s per row"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tree: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'); daemon $DEDUPD"

taskset -c 1 "$DEDUPD" --role placement --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --token-file "$WORK/token" --min-train-samples 100000000 --stale-after 3600 \
    2>"$WORK/placement.log" &
PID=$!
for _ in $(seq 100); do
    curl -sf "$URL/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { cat "$WORK/placement.log"; exit 1; }

taskset -c 0 "$BUILD/dedupd-ingest-gen" --url "$URL" --token-file "$WORK/token" \
    --nodes "$NODES" --volumes 16 --interval 10 --duration 10 >"$WORK/gen.json" || true
echo "cluster view: $(curl -sf -H "$AUTH" "$URL/v1/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])') nodes"

# the owner's history
python3 - "$URL" "$(cat "$WORK/token")" "$OUTCOMES" <<'EOF'
import json, random, sys, urllib.request
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(7)
for i in range(n):
    body = {"pod_uid": f"bench-{i}", "namespace": "vision",
            "owner": {"kind": "Deployment", "name": "loader"}, "annotations": {},
            "requests": {"cpu": "3", "memory": "12Gi"}, "limits": {"cpu": "4", "memory": "16Gi"},
            "node": "node-00001", "started_at": 1000 + i, "finished_at": 4600 + i,
            "peak_cpu_cores": 1.5 + rng.random(), "peak_memory_bytes": int((5 + rng.random()) * 2**30),
            "read_mbps": 200 + 100 * rng.random(), "write_mbps": 20 + 10 * rng.random(),
            "exit_code": 0, "reason": "Completed"}
    req = urllib.request.Request(url + "/v1/observations", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + token})
    urllib.request.urlopen(req).read()
print(f"outcomes: {n} posted for Deployment vision/loader")
EOF

# the reviews (compact JSON)
python3 - "$WORK" "$REPO" <<'EOF'
import json, os, sys
work, repo = sys.argv[1], sys.argv[2]
rv = json.load(open(os.path.join(repo, "tests/fixtures/k8s/admission/admission-review.request.deployment-pod.json")))
rv["request"]["object"]["metadata"]["annotations"]["dedupd.io/pool"] = "pool-0"
open(os.path.join(work, "mutate.json"), "w").write(json.dumps(rv, separators=(",", ":")))
del rv["request"]["object"]["metadata"]["annotations"]["dedupd.io/rightsize"]
open(os.path.join(work, "not-opted.json"), "w").write(json.dumps(rv, separators=(",", ":")))
EOF
curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/mutate.json" \
    "$URL/admission/mutate" | python3 -c '
import base64, json, sys
r = json.load(sys.stdin)["response"]
assert r["allowed"] is True and r["uid"] == "3f9c2a71-5b0e-4d8a-9c61-2e7f4b8a1d05", r
p = json.loads(base64.b64decode(r["patch"]))
ann = [o for o in p if "rightsize-prediction" in o["path"]][0]["value"]
print("mutate: %d patch ops; live %s" % (len(p), json.dumps(json.loads(ann)["live"])))'

taskset -c 1 "$BUILD/dedupd-hello-server" "$HPORT" 4 &
HPID=$!
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$HPORT/" >/dev/null && break
    sleep 0.1
done

DELAY_MS=$(python3 -c "print(2000.0 / $RATE)")
cat >"$WORK/req.lua" <<EOF
local body = os.getenv("BODY")
if body ~= "" then
    local f = assert(io.open(body, "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
end
function delay() return $DELAY_MS end
done = function(summary, latency, requests)
    io.write(string.format("RESULT %d %d %d %.1f %.1f\n", summary.requests,
        summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout,
        summary.duration, latency:percentile(50), latency:percentile(99)))
end
EOF
row() { # LABEL URL BODY|""
    BODY=$3 taskset -c 0 wrk -t2 -c2 -d"${DURATION}s" --timeout 10s -s "$WORK/req.lua" "$2" \
        >"$WORK/wrk-$1.txt" 2>&1 || true
    awk -v label="$1" '$1 == "RESULT" { printf "%s %.1f %.3f %.3f %d\n", label, $2 / ($4 / 1e6), $5 / 1000, $6 / 1000, $3; found = 1 }
        END { if (!found) printf "%s nan nan nan -1\n", label }' "$WORK/wrk-$1.txt"
}
{
    row hello "http://127.0.0.1:$HPORT/" "$WORK/mutate.json"
    row healthz "$URL/healthz" ""
    row mutate "$URL/admission/mutate" "$WORK/mutate.json"
    row not-opted "$URL/admission/mutate" "$WORK/not-opted.json"
    row hello2 "http://127.0.0.1:$HPORT/" "$WORK/mutate.json"
} >"$WORK/rows.txt"
curl -sf "$URL/metrics" | grep -E '^dedupd_admission_requests_total\{route="mutate"' | awk '$2 > 0'

python3 - "$WORK/rows.txt" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
hello = min(float(r[3]) for r in rows if r[0].startswith("hello"))
print(f"{'row':10s} {'req/s':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'p99/hello':>9s}  goal")
for label, rps, p50, p99, err in rows:
    goal = ""
    if label == "mutate":
        goal = f"p99 < 5 ms: {'met' if float(p99) < 5 else 'missed'}"
    if int(err):
        goal += f"  {err} errors"
    print(f"{label:10s} {float(rps):7.0f} {float(p50):8.3f} {float(p99):8.3f} {float(p99) / hello:9.2f}  {goal}")
EOF
