#!/usr/bin/env bash
# bench/csi-publish.sh - the API write rate of CSIStorageCapacity
# publishing (--publish-capacity) at NODES nodes x 4 StorageClasses against
# the loopback test API server (tests/kubeapi), with the coalescing rule
# (5 % and 1 GiB, the defaults) and without it (the baseline: every change
# written), the same seeded capacity movements in both, in one run; and the
# time of a reconcile pass. See bench/README.md for the movement model.
#
# Usage: bench/csi-publish.sh [--build DIR] [NODES ROUNDS INTERVAL_S]
#        (defaults 5000 6 1)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
if [[ ${1:-} == --build ]]; then
  BUILD=$2
  shift 2
fi
if [[ ! -x $BUILD/tests/dedupd-csi-publish-bench ]]; then
  cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target dedupd-csi-publish-bench >/dev/null
fi
echo "== csi-publish: ${1:-5000} nodes x 4 classes, ${2:-6} rounds, publisher interval ${3:-1} s"
"$BUILD/tests/dedupd-csi-publish-bench" "$@"
