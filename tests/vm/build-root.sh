#!/usr/bin/env bash
# Builds the guest's Debian 13 (trixie) root with debootstrap into a folder
# (the host's apt sources are not touched) and caches it as a zstd tarball:
#   $DEDUPD_VM_CACHE/rootfs-trixie-<key>.tar.zst   (default /var/cache/dedupd-vm)
#   $DEDUPD_VM_CACHE/rootfs-trixie-<key>.versions  kernel, vdo, lvm2, ... versions
# <key> hashes the suite, the recipe and the package list (lib.sh), so a
# changed list builds a new root. An existing tarball is reused as it is.
# Prints the tarball's path as its last line. Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"

cache=$(dd_vm_cache_dir)
key=$(dd_vm_cache_key)
tarball=$cache/rootfs-$DD_VM_SUITE-$key.tar.zst
mkdir -p "$cache"

exec 9>"$cache/.lock"
flock 9 # one builder at a time; a second caller then finds the tarball
if [ -s "$tarball" ] && [ -s "${tarball%.tar.zst}.versions" ]; then
  echo "vm root: cached $tarball ($(du -h "$tarball" | cut -f1))" >&2
  echo "$tarball"
  exit 0
fi

mirror=$(dd_vm_mirror)
root=$(mktemp -d "$(dd_vm_work_base)/dedupd-vm-root.XXXXXX")
log=$cache/debootstrap-$key.log
cleanup() { dd_vm_remove_tree "$root" || true; rm -f "$tarball.tmp"; }
trap cleanup EXIT

echo "vm root: debootstrap $DD_VM_SUITE from $mirror into $root (log: $log)" >&2
t0=$(dd_vm_now)
include=$(IFS=,; echo "${DD_VM_PACKAGES[*]}")
for try in 1 2; do
  if debootstrap --variant=minbase --include="$include" "$DD_VM_SUITE" "$root" "$mirror" >"$log" 2>&1; then
    break
  fi
  echo "vm root: debootstrap failed (try $try); the end of $log:" >&2
  tail -n 30 "$log" >&2
  [ "$try" = 2 ] && exit 1
  # once more from nothing (a mirror hiccup)
  dd_vm_remove_tree "$root"
  mkdir -p "$root"
done
dd_vm_phase debootstrap "$t0" >&2
dd_vm_umount_below "$root" # debootstrap's own /proc and /sys, should it leave them

chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
# shellcheck disable=SC2012 # Debian's kernel file names
kver=$(basename "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)")
kver=${kver#vmlinuz-}
{
  echo "kernel $kver"
  # shellcheck disable=SC2016 # dpkg-query's format
  chroot "$root" dpkg-query -W -f='${Package} ${Version}\n' \
    linux-image-amd64 "linux-image-$kver" vdo dmsetup libdevmapper1.02.1 lvm2 cmake gcc \
    librocksdb-dev libxgboost-dev 2>/dev/null || true
  echo "mirror $mirror"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"${tarball%.tar.zst}.versions.tmp"

t0=$(dd_vm_now)
tar -C "$root" --zstd -cpf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
mv "${tarball%.tar.zst}.versions.tmp" "${tarball%.tar.zst}.versions"
dd_vm_phase root-tarball "$t0" >&2
# roots built from other package lists are not used any more
for old in "$cache"/rootfs-"$DD_VM_SUITE"-*.tar.zst; do
  [ "$old" = "$tarball" ] || rm -f "$old" "${old%.tar.zst}.versions" "$cache/debootstrap-$(basename "${old%.tar.zst}" | sed "s/^rootfs-$DD_VM_SUITE-//").log"
done
echo "vm root: built $tarball ($(du -h "$tarball" | cut -f1))" >&2
echo "$tarball"
