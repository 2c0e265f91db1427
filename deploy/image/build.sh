#!/usr/bin/env bash
# Builds the dedupd container image without a container engine:
#   1. base layer: a Debian 12 root made by mmdebstrap (variant essential,
#      plus the run-time libraries below and ca-certificates), no apt, no
#      docs; cached as an OCI layout under $DEDUPD_IMAGE_CACHE (default
#      /var/cache/dedupd-image), keyed by the suite, this recipe's version
#      and the package list, so only a changed list goes to the mirror;
#   2. app layer: dedupd and dedupctl from BUILD_DIR (a Release build) in
#      /usr/bin, an empty /var/lib/dedupd;
#   3. umoci writes the image config (entrypoint /usr/bin/dedupd, port
#      7450, labels) and the layout is packed as an OCI archive
#      OUT_DIR/dedupd-VERSION.oci.tar (skopeo/podman/crane's
#      "oci-archive:" form: a tar of the OCI image layout, tag VERSION);
#   4. check: the image is unpacked with umoci and `dedupd --version` and
#      `dedupctl --help` run from its root in a chroot (the image's own
#      libraries, not the host's).
#
#   deploy/image/build.sh BUILD_DIR OUT_DIR
#
# Needs root (mmdebstrap's root mode, umoci unpack, chroot), mmdebstrap and
# umoci (scripts/install-deps.sh). Mirror: $DEDUPD_IMAGE_MIRROR, else the
# host's /etc/apt/sources.list.d/debian.sources as it is (mmdebstrap reads
# a deb822 file), else deb.debian.org. Exit 3 when the mirror cannot be
# reached and nothing is cached (the caller decides: a skip outside CI, a
# failure under CI=true). Time budget: ~2 min cold on 2 cores (the mirror
# download and dpkg), ~15 s from the cache; prints TIMING lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:?usage: build.sh BUILD_DIR OUT_DIR}
out=${2:?usage: build.sh BUILD_DIR OUT_DIR}
build=$(cd "$build" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

SUITE=bookworm
# bump when the way the base is made changes (not only its package list)
RECIPE=1
# run-time libraries of dedupd and dedupctl (Debian 12 names; keep in step
# with scripts/install-deps.sh's -dev packages); NVML (libnvidia-ml.so.1)
# is not here: the NVIDIA container runtime mounts the host's into the pod
PACKAGES=(
  libdevmapper1.02.1 libblkid1 libxxhash0 libxgboost0 libmicrohttpd12 libgnutls30
  libjansson4 librocksdb7.8 liblz4-1 libcurl4 ca-certificates
)

now() { date +%s.%N; }
phase() { awk -v n="$1" -v a="$2" -v b="$(now)" 'BEGIN { printf "TIMING image %s: %.1f s\n", n, b - a }'; }

[ "$(id -u)" -eq 0 ] || { echo "image: needs root (mmdebstrap, umoci unpack, chroot)" >&2; exit 1; }
for tool in mmdebstrap umoci; do
  command -v "$tool" >/dev/null || { echo "image: $tool is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done
for bin in dedupd dedupctl; do
  [ -x "$build/$bin" ] || { echo "image: $build/$bin is missing (build it first)" >&2; exit 1; }
done
version=$("$build/dedupd" --version | awk '{ print $2 }')

cache=${DEDUPD_IMAGE_CACHE:-/var/cache/dedupd-image}
key=$(printf '%s\n' "$SUITE" "$RECIPE" "${PACKAGES[@]}" | sha256sum | cut -c1-12)
base=$cache/base-$SUITE-$key # an OCI layout holding tag "base"
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/dedupd-image.XXXXXX")
cleanup() {
  # umoci unpack makes no mounts; nothing below $work is mounted
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

exec 9>"$cache/.lock"
flock 9 # one builder at a time; a second one finds the cached base
if [ -s "$base/index.json" ]; then
  echo "image: base layer cached in $base"
else
  mirror=${DEDUPD_IMAGE_MIRROR:-}
  if [ -z "$mirror" ]; then
    if [ -s /etc/apt/sources.list.d/debian.sources ]; then
      mirror=/etc/apt/sources.list.d/debian.sources
    else
      mirror=http://deb.debian.org/debian
    fi
  fi
  t=$(now)
  include=$(IFS=,; echo "${PACKAGES[*]}")
  log=$cache/mmdebstrap-$key.log
  echo "image: mmdebstrap $SUITE (essential + $include) from $mirror (log: $log)"
  # --mode=root: we are root, and unshare may be refused inside a container
  if ! mmdebstrap --mode=root --variant=essential --include="$include" \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' \
      --customize-hook='rm -rf "$1"/var/cache/apt "$1"/var/lib/apt/lists' \
      "$SUITE" "$work/base.tar" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    if grep -qiE "could not resolve|failed to fetch|unable to connect|temporary failure|connection (refused|timed out)|no route" "$log"; then
      echo "image: the Debian mirror ($mirror) cannot be reached and no base is cached" >&2
      exit 3
    fi
    echo "image: mmdebstrap failed (log: $log)" >&2
    exit 1
  fi
  phase mmdebstrap "$t"
  t=$(now)
  umoci init --layout "$work/base"
  umoci new --image "$work/base:base"
  umoci raw add-layer --image "$work/base:base" \
    --history.created_by "mmdebstrap --variant=essential $SUITE (deploy/image/build.sh recipe $RECIPE)" \
    "$work/base.tar"
  rm -f "$work/base.tar"
  rm -rf "$base.tmp"
  mv "$work/base" "$base.tmp"
  mv "$base.tmp" "$base"
  # bases built from other package lists are not used any more
  for old in "$cache"/base-"$SUITE"-*; do
    [ "$old" = "$base" ] || [ "$old" = "$cache/mmdebstrap-$key.log" ] || rm -rf "$old"
  done
  phase base-layer "$t"
fi
exec 9>&-

t=$(now)
cp -a "$base" "$work/layout"
# the app layer: owned by root, fixed times (a rebuild of the same binaries
# gives the same layer)
mkdir -p "$work/app/usr/bin" "$work/app/var/lib/dedupd"
install -m 0755 "$build/dedupd" "$build/dedupctl" "$work/app/usr/bin/"
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)}
tar -C "$work/app" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -cf "$work/app.tar" usr var
umoci raw add-layer --image "$work/layout:base" --tag "$version" \
  --history.created_by "deploy/image/build.sh: dedupd and dedupctl $version" "$work/app.tar"
umoci config --image "$work/layout:$version" \
  --config.entrypoint /usr/bin/dedupd \
  --config.exposedports 7450/tcp \
  --config.workingdir / \
  --config.volume /var/lib/dedupd \
  --config.label "org.opencontainers.image.title=dedupd" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.base.name=debian:$SUITE" \
  --os linux --architecture amd64
umoci gc --layout "$work/layout"
# the archive holds one tag: drop "base"
umoci rm --image "$work/layout:base"
umoci gc --layout "$work/layout"
phase app-layer "$t"

t=$(now)
umoci unpack --image "$work/layout:$version" "$work/bundle" >/dev/null
got=$(chroot "$work/bundle/rootfs" /usr/bin/dedupd --version)
[ "$got" = "dedupd $version" ] || { echo "image: chroot dedupd --version said '$got'" >&2; exit 1; }
chroot "$work/bundle/rootfs" /usr/bin/dedupctl --help >/dev/null 2>&1 ||
  chroot "$work/bundle/rootfs" /usr/bin/dedupctl --help 2>&1 | head -n 3 | grep -qi usage ||
  { echo "image: chroot dedupctl --help failed" >&2; exit 1; }
echo "image: chroot $work/bundle/rootfs /usr/bin/dedupd --version: $got"
phase chroot-check "$t"

t=$(now)
archive=$out/dedupd-$version.oci.tar
tar -C "$work/layout" --sort=name -cf "$archive.tmp" .
mv "$archive.tmp" "$archive"
phase archive "$t"
echo "image: $archive ($(du -h "$archive" | cut -f1)), tag $version"
