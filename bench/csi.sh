#!/usr/bin/env bash
# bench/csi.sh - the CSI-adjacent API under wrk at cluster scale.
#
# The setup of bench/extender.sh: one `dedupd --role placement` (pinned to
# core 1, its default 4 HTTP threads, the prior cost model) gets a cluster
# view of NODES nodes x 16 volumes (pools pool-0..3) from dedupd-ingest-gen
# (core 0), one pass, then the generator stops; --stale-after keeps the
# reports fresh. Unlike the extender the CSI API needs the Kubernetes cache
# (the PVC, its pod, the StorageClass, the Node labels a segment matches),
# so dedupd-kube-stub (core 0) serves the test API server with NODES Node
# objects (labels: hostname, the reference driver's key
# topology.vdo.csi.example.io/node, zone-<k % 10>), StorageClass vdo-dedup
# (pool-0), PVC ml/ckpt-trainer-0 and pod ml/trainer-0, and the daemon
# watches it (--kube-api).
#
# Rows (wrk -t1 -cCONNECTIONS, core 0; p50 and p99):
#   preferred:1      POST /v1/csi/preferred, a CreateVolumeRequest whose
#                    requisite is one node segment (--strict-topology)
#   preferred:500    500 node segments (a random sample)
#   preferred:5000   every node's segment (external-provisioner without
#                    --strict-topology sends every node the driver runs on)
#   capacity:node    GET /v1/csi/capacity, one node's segment
#   capacity:zone    GET, a zone segment (500 nodes match)
#   capacity:post    POST a GetCapacityRequest (class found by parameters)
# The machine is shared: other sessions' builds and tests run beside it, so
# the figures are an upper bound; run it twice and keep the lower.
#
# Usage: bench/csi.sh [--build DIR] [--duration S] [--connections N] [--nodes N] [--keep]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-1}
NODES=${NODES:-5000}
KEEP=${KEEP:-0}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "csi: unknown option $1" >&2; exit 2 ;;
    esac
done
for t in wrk curl python3 taskset; do
    command -v "$t" >/dev/null || { echo "csi: $t is missing" >&2; exit 1; }
done
if [ ! -x "$BUILD/dedupd" ] || [ ! -x "$BUILD/dedupd-ingest-gen" ] ||
    [ ! -x "$BUILD/tests/dedupd-kube-stub" ]; then
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target dedupd dedupd-ingest-gen dedupd-kube-stub >/dev/null

WORK=$(mktemp -d /var/tmp/dedupd-csi.XXXXXX)
PID= SPID=
cleanup() {
    for p in $PID $SPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    [ "$KEEP" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
AUTH="Authorization: Bearer $(cat "$WORK/token")"

echo "== csi: $NODES nodes x 16 volumes, wrk -t1 -c$CONNECTIONS -d${DURATION}s per row"
echo "machine: $(nproc) CPUs (shared with other sessions), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tree: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"

mkfifo "$WORK/stub.in"
taskset -c 0 "$BUILD/tests/dedupd-kube-stub" "$NODES" <"$WORK/stub.in" >"$WORK/stub.url" &
SPID=$!
exec 7>"$WORK/stub.in"
for _ in $(seq 100); do [ -s "$WORK/stub.url" ] && break; sleep 0.1; done
KUBE=$(head -n1 "$WORK/stub.url")

taskset -c 1 "$BUILD/dedupd" --role placement --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --token-file "$WORK/token" --min-train-samples 100000000 --stale-after 3600 \
    --kube-api "$KUBE" 2>"$WORK/placement.log" &
PID=$!
for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done
taskset -c 0 "$BUILD/dedupd-ingest-gen" --url "$URL" --token-file "$WORK/token" \
    --nodes "$NODES" --volumes 16 --interval 10 --duration 10 >"$WORK/gen.json" || true
for _ in $(seq 300); do
    curl -sf -H "$AUTH" "$URL/v1/csi/capacity?storage_class=vdo-dedup" >/dev/null && break
    sleep 0.1
done

python3 - "$WORK" "$NODES" <<'EOF'
import json, random, sys, os
work, nodes = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
every = [f"node-{i:05d}" for i in range(nodes)]
def seg(n): return {"segments": {"topology.vdo.csi.example.io/node": n}}
def cv(names):
    return {"name": "pvc-1", "capacityRange": {"requiredBytes": "536870912000"},
            "volumeCapabilities": [{"mount": {"fsType": "xfs"}, "accessMode": {"mode": "SINGLE_NODE_WRITER"}}],
            "parameters": {"vdo.csi.example.io/pool": "default", "csi.storage.k8s.io/pvc/name": "ckpt-trainer-0",
                           "csi.storage.k8s.io/pvc/namespace": "ml"},
            "accessibilityRequirements": {"requisite": [seg(n) for n in names], "preferred": [seg(n) for n in names]}}
def dump(name, doc):
    with open(os.path.join(work, name), "w") as f:
        f.write(json.dumps(doc, separators=(",", ":")))
dump("preferred-1.json", cv(rng.sample(every, 1)))
dump("preferred-500.json", cv(rng.sample(every, 500)))
dump("preferred-5000.json", cv(every[:5000]))
dump("capacity-post.json", {"parameters": {"vdo.csi.example.io/pool": "default"},
                            "accessibleTopology": seg(every[7])})
EOF
# one answer per row, checked
for n in 1 500 5000; do
    curl -sf -H "$AUTH" -X POST --data-binary "@$WORK/preferred-$n.json" "$URL/v1/csi/preferred" |
        python3 -c 'import json,sys,collections; d=json.load(sys.stdin)["preferred"]; c=collections.Counter(e["score"] for e in d)
print("preferred, %5s segments: %d entries; scores %s; first %s" % (sys.argv[1], len(d), " ".join("%d:%d" % (s, c[s]) for s in sorted(c)), d[0]["node"]))' "$n"
done
curl -sf -H "$AUTH" "$URL/v1/csi/capacity?storage_class=vdo-dedup&segment=topology.kubernetes.io%2Fzone%3Dzone-3&explain=true" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); e=d["explanation"]; print("capacity, zone-3: %s (best %s of %d nodes, reduction %.2f %s)" % (d["response"], e["best_node"], e["matching_nodes"], e["reduction"], e["reduction_source"]))'

cat >"$WORK/req.lua" <<'EOF'
local body = os.getenv("BODY")
if body ~= "" then
    local f = assert(io.open(body, "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
end
wrk.headers["Authorization"] = os.getenv("AUTH")
done = function(summary, latency, requests)
    io.write(string.format("RESULT %d %d %d %.1f %.1f\n", summary.requests,
        summary.errors.status + summary.errors.connect + summary.errors.read +
        summary.errors.write + summary.errors.timeout,
        summary.duration, latency:percentile(50), latency:percentile(99)))
end
EOF
wrk_row() { # LABEL URL [BODY]
    BODY=${3:-} AUTH=$AUTH taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
        -s "$WORK/req.lua" "$2" >"$WORK/wrk-$1.txt" 2>&1 || true
    awk -v label="$1" '$1 == "RESULT" { printf "%-16s %9.1f %9.3f %9.3f %6d\n", label, $2 / ($4 / 1e6), $5 / 1000, $6 / 1000, $3; found = 1 }
        END { if (!found) printf "%-16s nan nan nan -1\n", label }' "$WORK/wrk-$1.txt"
}
printf "%-16s %9s %9s %9s %6s\n" row req/s "p50 ms" "p99 ms" errors
for n in 1 500 5000; do
    wrk_row "preferred:$n" "$URL/v1/csi/preferred" "$WORK/preferred-$n.json"
done
wrk_row capacity:node "$URL/v1/csi/capacity?storage_class=vdo-dedup&segment=topology.vdo.csi.example.io%2Fnode%3Dnode-00007"
wrk_row capacity:zone "$URL/v1/csi/capacity?storage_class=vdo-dedup&segment=topology.kubernetes.io%2Fzone%3Dzone-3"
wrk_row capacity:post "$URL/v1/csi/capacity" "$WORK/capacity-post.json"
curl -sf -H "$AUTH" "$URL/metrics" | grep -E '^dedupd_csi_requests_total' | awk '$2 > 0'
echo "placement peak RSS (VmHWM): $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$PID/status")"
