#!/usr/bin/env bash
# bench/kube-cache.sh - the Kubernetes cache (placement/kube fed by
# dedupd/kubewatch) at cluster scale, against the loopback test API server
# (tests/kubeapi) in a child process loaded with NODES nodes, PODS pods and
# PVCS PVCs and PVs. Prints the initial list time, watch events applied per
# second and the cache's RSS per cached pod (goal <= 1 KiB), beside the
# baseline: the bytes of list JSON the server sent.
#
# Usage: bench/kube-cache.sh [--build DIR] [NODES PODS PVCS EVENTS]
#        (defaults 5000 150000 50000 100000)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
if [[ ${1:-} == --build ]]; then
  BUILD=$2
  shift 2
fi
if [[ ! -x $BUILD/tests/dedupd-kube-bench ]]; then
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target dedupd-kube-bench >/dev/null
fi
echo "== kube-cache: ${1:-5000} nodes, ${2:-150000} pods, ${3:-50000} PVCs and PVs, ${4:-100000} events"
"$BUILD/tests/dedupd-kube-bench" "$@"
