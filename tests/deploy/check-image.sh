#!/usr/bin/env bash
# ctest test-deploy-image (label integration, Release builds only): builds
# the container image with deploy/image/build.sh from this build's dedupd
# and dedupctl (mmdebstrap + umoci, no container engine), packs it as an
# OCI archive and runs `dedupd --version` from the image's root in a
# chroot. Time budget: 2 min cold (the Debian mirror), 30 s from the
# cached base layer (/var/cache/dedupd-image). Without root or the
# tools, or when the mirror is unreachable and nothing is cached: a skip
# (exit 77) outside CI, a failure under CI=true.
set -euo pipefail
build=${DD_BUILD_DIR:?}
src=${DD_SOURCE_DIR:?}
skip() {
  if [ "${CI:-}" = true ]; then
    echo "test-deploy-image: FAIL (CI=true, a skip is a failure): $*" >&2
    exit 1
  fi
  echo "test-deploy-image: SKIP: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (mmdebstrap, chroot)"
for t in mmdebstrap umoci; do
  command -v "$t" >/dev/null || skip "$t is not installed (scripts/install-deps.sh)"
done
out=$(mktemp -d "${TMPDIR:-/tmp}/dedupd-image-out.XXXXXX")
trap 'rm -rf "$out"' EXIT
t0=$(date +%s)
rc=0
bash "$src/deploy/image/build.sh" "$build" "$out" || rc=$?
[ "$rc" = 3 ] && skip "the Debian mirror cannot be reached and no base layer is cached"
[ "$rc" = 0 ] || { echo "test-deploy-image: FAIL: deploy/image/build.sh exited $rc" >&2; exit 1; }
archive=$(ls "$out"/dedupd-*.oci.tar)
# the archive is an OCI image layout: oci-layout, index.json naming the tag
tar -xOf "$archive" ./oci-layout | grep -q '"imageLayoutVersion"' ||
  { echo "test-deploy-image: FAIL: no oci-layout in $archive" >&2; exit 1; }
tag=$(tar -xOf "$archive" ./index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])')
[ "$tag" = "$("$build/dedupd" --version | awk '{print $2}')" ] ||
  { echo "test-deploy-image: FAIL: the archive's tag is '$tag'" >&2; exit 1; }
echo "test-deploy-image: passed in $(($(date +%s) - t0)) s ($(du -h "$archive" | cut -f1), tag $tag)"
