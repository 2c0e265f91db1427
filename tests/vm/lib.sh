# Shared helpers of the VM test's host scripts (sourced, not run).
# shellcheck shell=bash

# The guest's Debian suite and the packages its root carries. Changing this
# list changes the cache key, so the cached root is built again.
DD_VM_SUITE=trixie
DD_VM_PACKAGES=(
  # boot: kernel 6.12 with dm-vdo as a module, an initramfs that loads
  # virtio_blk and ext4 (udev does the coldplug)
  linux-image-amd64 initramfs-tools udev kmod systemd-sysv
  # VDO: vdoformat, vdostats, dmsetup/libdevmapper, lvm2
  vdo lvm2 dmsetup
  # the guest script's tools (iproute2: the loopback dedupd listens on)
  procps util-linux curl iproute2
  # the chroot build of dedupd and dedupctl (Debian 13's compilers and -dev
  # packages; keep in step with scripts/install-deps.sh)
  cmake make gcc libc6-dev pkg-config
  libdevmapper-dev libblkid-dev libxxhash-dev libxgboost-dev libmicrohttpd-dev
  libgnutls28-dev libjansson-dev librocksdb-dev liblz4-dev libcmocka-dev
  libcurl4-openssl-dev
)
# bump when the way the root is made changes (not only its package list)
DD_VM_ROOT_RECIPE=1

dd_vm_cache_dir() { echo "${DEDUPD_VM_CACHE:-/var/cache/dedupd-vm}"; }
dd_vm_work_base() { echo "${DEDUPD_VM_WORKDIR:-/var/tmp}"; }

# The cache key: suite, recipe and package list.
dd_vm_cache_key() {
  printf '%s\n' "$DD_VM_SUITE" "$DD_VM_ROOT_RECIPE" "${DD_VM_PACKAGES[@]}" |
    sha256sum | cut -c1-12
}

# The mirror: DEDUPD_VM_MIRROR, else the first .../debian URI of the host's
# apt sources, else deb.debian.org.
dd_vm_mirror() {
  local m=${DEDUPD_VM_MIRROR:-}
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
      awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
  fi
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }')
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# Unmounts everything mounted at or below DIR (deepest first).
dd_vm_umount_below() {
  local dir m
  dir=$(realpath -m "$1")
  for _ in 1 2 3; do
    mapfile -t ms < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r)
    [ ${#ms[@]} -eq 0 ] && return 0
    for m in "${ms[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
  mapfile -t ms < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts)
  [ ${#ms[@]} -eq 0 ]
}

# Removes DIR, but only once nothing is mounted below it (a bind-mounted /dev
# or /proc inside a chroot must never be followed by rm -rf).
dd_vm_remove_tree() {
  local dir=$1
  [ -n "$dir" ] && [ "$dir" != / ] || return 1
  [ -e "$dir" ] || return 0
  if ! dd_vm_umount_below "$dir"; then
    echo "vm: still mounted below $dir; not removing it" >&2
    return 1
  fi
  rm -rf --one-file-system "$dir"
}

dd_vm_now() { date +%s.%N; }
# dd_vm_phase NAME START: prints the phase's time and appends it to $DD_VM_TIMINGS
dd_vm_phase() {
  local s
  s=$(awk -v a="$2" -v b="$(dd_vm_now)" 'BEGIN { printf "%.1f", b - a }')
  echo "TIMING host ${1}: ${s} s"
  [ -n "${DD_VM_TIMINGS:-}" ] && echo "host $1 $s" >>"$DD_VM_TIMINGS"
  return 0
}
