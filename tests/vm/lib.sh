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

# --- the host side of a VM run ------------------------------------------------
# Shared by tests/vm/run-vm-test.sh and bench/vdo-vm-series.sh. These run in
# the caller's shell (set -euo pipefail) and exit it where the run cannot go
# on. State: DD_VM_WORK (the work dir), DD_VM_ROOT (the unpacked root),
# DD_VM_VERSIONS (the cached root's versions file), DD_VM_QPID (qemu).
DD_VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DD_VM_SRC=$(cd "$DD_VM_LIB_DIR/../.." && pwd)
DD_VM_QPID=

# dd_vm_host_ready WHAT NEED_GIB: root, host packages, can qemu run at all
# (if not: exit 77, ctest's skip), the host tools, NEED_GIB free in the work
# base. WHAT names the caller in messages ("the test").
# A skip outside CI; under CI=true a test that cannot run is a failure,
# never a green run.
dd_vm_skip() {
  if [ "${CI:-}" = true ]; then
    echo "vm: FAIL (CI=true, a skip is a failure): $*" >&2
    exit 1
  fi
  echo "vm: SKIP: $*"
  exit 77
}

dd_vm_host_ready() {
  local what=$1 need_gib=$2 t qerr qrc tool base free_kb
  if [ "$(id -u)" -ne 0 ]; then
    echo "vm: FAIL: needs root (debootstrap, chroot, mke2fs -d of a root tree)" >&2
    exit 1
  fi
  t=$(dd_vm_now)
  bash "$DD_VM_LIB_DIR/host-deps.sh" || echo "vm: host packages could not all be installed" >&2
  dd_vm_phase host-packages "$t"
  if ! command -v qemu-system-x86_64 >/dev/null; then
    dd_vm_skip "qemu cannot run at all: qemu-system-x86_64 is not installed and could not be (apt-get install qemu-system-x86)"
  fi
  qerr=$(mktemp)
  set +e
  timeout 10 qemu-system-x86_64 -machine q35,accel=tcg -m 64 -display none -nodefaults -S \
    -monitor none >"$qerr" 2>&1
  qrc=$?
  set -e
  if [ $qrc -ne 124 ]; then
    local why
    why=$(head -c 400 "$qerr")
    rm -f "$qerr"
    dd_vm_skip "qemu cannot run at all: a paused TCG machine exited at once (status $qrc): $why"
  fi
  rm -f "$qerr"
  for tool in debootstrap mke2fs debugfs zstd python3 chroot; do
    command -v $tool >/dev/null || { echo "vm: FAIL: $tool is missing (tests/vm/host-deps.sh installs it)" >&2; exit 1; }
  done
  echo "vm: $(qemu-system-x86_64 --version | head -n 1), no KVM needed (accel=tcg)"

  base=$(dd_vm_work_base)
  free_kb=$(df -Pk "$base" | awk 'NR == 2 { print $4 }')
  if [ "$free_kb" -lt $((need_gib * 1024 * 1024)) ]; then
    echo "vm: FAIL: $base has $((free_kb / 1024)) MiB free; $what needs about $need_gib GiB (DEDUPD_VM_WORKDIR moves it)" >&2
    exit 1
  fi
}

# dd_vm_cleanup: the EXIT trap of dd_vm_work_init (stops qemu; removes the
# work dir, or keeps it with DEDUPD_VM_KEEP=1)
dd_vm_cleanup() {
  [ -n "$DD_VM_QPID" ] && kill "$DD_VM_QPID" 2>/dev/null
  if [ "${DEDUPD_VM_KEEP:-0}" = 1 ]; then
    dd_vm_umount_below "$DD_VM_WORK" || true
    echo "vm: kept $DD_VM_WORK"
  else
    dd_vm_remove_tree "$DD_VM_WORK" || true
  fi
}

# dd_vm_work_init: removes work dirs of runs that were killed, makes
# DD_VM_WORK and DD_VM_TIMINGS, sets the traps
dd_vm_work_init() {
  local base stale
  base=$(dd_vm_work_base)
  # work dirs of runs that were killed (a ctest timeout sends SIGKILL)
  find "$base" -maxdepth 1 \( -name 'dedupd-vm.*' -o -name 'dedupd-vm-root.*' \) -type d -mmin +180 |
    while read -r stale; do
      echo "vm: removing a stale work dir $stale"
      dd_vm_remove_tree "$stale" || true
    done
  DD_VM_WORK=$(mktemp -d "$base/dedupd-vm.XXXXXX")
  export DD_VM_TIMINGS=$DD_VM_WORK/host-timings.txt
  : >"$DD_VM_TIMINGS"
  DD_VM_QPID=
  trap dd_vm_cleanup EXIT
  trap 'exit 130' INT TERM
}

# dd_vm_unpack_root: the cached trixie root (build-root.sh builds it the
# first time), unpacked into DD_VM_ROOT
dd_vm_unpack_root() {
  local t tarball
  t=$(dd_vm_now)
  tarball=$(bash "$DD_VM_LIB_DIR/build-root.sh" | tail -n 1)
  dd_vm_phase guest-root "$t"
  DD_VM_VERSIONS=${tarball%.tar.zst}.versions
  echo "vm: guest root $(basename "$tarball"): $(tr '\n' ';' <"$DD_VM_VERSIONS" | sed 's/;/; /g')"

  t=$(dd_vm_now)
  DD_VM_ROOT=$DD_VM_WORK/root
  mkdir -p "$DD_VM_ROOT"
  tar -C "$DD_VM_ROOT" --zstd -xpf "$tarball"
  dd_vm_phase unpack "$t"
}

# dd_vm_chroot_build EXTRA: builds dedupd and dedupctl for the guest in its
# root (Release, -Werror; installed in /usr/local/bin), then runs the shell
# commands EXTRA there (the source is /src, /vmtest exists). The log is
# DD_VM_WORK/guest-build.log; a failed build exits 1 with its end.
dd_vm_chroot_build() {
  local extra=$1 t brc root=$DD_VM_ROOT
  t=$(dd_vm_now)
  mkdir -p "$root/src"
  tar -C "$DD_VM_SRC" --exclude=./.git --exclude='./build*' --exclude=./out -cf - . | tar -C "$root/src" -xf -
  mount -t proc proc "$root/proc"
  set +e
  # shellcheck disable=SC2016 # $(nproc) expands in the chroot
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 TERM=dumb \
    chroot "$root" /bin/sh -ec '
      cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF -DDD_WERROR=ON
      cmake --build /build -j"$(nproc)" --target dedupd dedupctl
      install -m 0755 /build/dedupd /build/dedupctl /usr/local/bin/
      mkdir -p /vmtest
      '"$extra"'
      gcc --version | head -n 1; cmake --version | head -n 1' >"$DD_VM_WORK/guest-build.log" 2>&1
  brc=$?
  set -e
  umount "$root/proc"
  dd_vm_phase chroot-build "$t"
  if [ $brc -ne 0 ]; then
    echo "vm: FAIL: building dedupd and dedupctl on Debian 13 (chroot) failed; the end of its log:"
    tail -n 40 "$DD_VM_WORK/guest-build.log"
    exit 1
  fi
  echo "vm: built on Debian 13: $(grep -m1 '^gcc' "$DD_VM_WORK/guest-build.log"), $(grep -c 'warning:' "$DD_VM_WORK/guest-build.log") warnings"
  rm -rf "$root/src" "$root/build"
}

# dd_vm_root_image: guest-init.sh and the recording dmsetup into the root,
# the kernel and initrd out of it (DD_VM_KVER), the root tree into
# DD_VM_WORK/rootfs.img (4 GiB ext4), and the tree removed
dd_vm_root_image() {
  local root=$DD_VM_ROOT kernel
  mkdir -p "$root/vmtest/trap" "$root/out"
  install -m 0755 "$DD_VM_LIB_DIR/guest-init.sh" "$root/vmtest/guest-init.sh"
  cat >"$root/vmtest/trap/dmsetup" <<'EOS'
#!/bin/sh
# dedupd and dedupctl run with only this on their PATH: they must never call it
echo "dmsetup $*" >>/vmtest/trap/called
exit 1
EOS
  chmod 0755 "$root/vmtest/trap/dmsetup"
  # shellcheck disable=SC2012 # Debian's kernel file names
  kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
  DD_VM_KVER=${kernel##*/vmlinuz-}
  cp "$kernel" "$DD_VM_WORK/vmlinuz"
  cp "$root/boot/initrd.img-$DD_VM_KVER" "$DD_VM_WORK/initrd.img"
  mke2fs -q -t ext4 -L dedupd-vm-root -d "$root" "$DD_VM_WORK/rootfs.img" 4G >/dev/null
  dd_vm_remove_tree "$root"
}

# dd_vm_boot TIMEOUT APPEND DISK...: boots DD_VM_WORK's kernel (qemu TCG,
# 2 vCPUs, 4 GiB) with rootfs.img as vda and each DISK after it (vdb, ...;
# the last one is the result disk, written without discard), guest-init.sh
# as PID 1, APPEND added to the kernel command line. Sets DD_VM_QRC (qemu's
# status; 124 when it ran past TIMEOUT seconds) and prints the console's end
# when qemu failed. DD_VM_QEMU_PIDFILE, when set, gets qemu's pid (-pidfile);
# DD_VM_QEMU_NICE, when set, runs qemu at that nice level; DD_VM_QEMU_SMP
# (default 2) is the vCPU count; DD_VM_QEMU_ARGS adds qemu options (split at
# spaces).
dd_vm_boot() {
  local vm_timeout=$1 append=$2 t i drives=() extra=()
  shift 2
  for ((i = 1; i <= $#; i++)); do
    if [ $i -lt $# ]; then
      drives+=(-drive "file=${!i},format=raw,if=virtio,cache=unsafe,discard=unmap")
    else
      drives+=(-drive "file=${!i},format=raw,if=virtio")
    fi
  done
  read -r -a extra <<<"${DD_VM_QEMU_ARGS:-}"
  t=$(dd_vm_now)
  echo "vm: booting $DD_VM_KVER (qemu TCG, ${DD_VM_QEMU_SMP:-2} vCPUs, 4 GiB${DD_VM_QEMU_ARGS:+, $DD_VM_QEMU_ARGS}; at most $vm_timeout s)"
  set +e
  ${DD_VM_QEMU_NICE:+nice -n "$DD_VM_QEMU_NICE"} timeout "$vm_timeout" qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp "${DD_VM_QEMU_SMP:-2}" -m 4G \
    -display none -monitor none -serial "file:$DD_VM_WORK/serial.log" -no-reboot \
    -kernel "$DD_VM_WORK/vmlinuz" -initrd "$DD_VM_WORK/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 init=/vmtest/guest-init.sh panic=-1 loglevel=5${append:+ $append}" \
    -drive "file=$DD_VM_WORK/rootfs.img,format=raw,if=virtio,cache=unsafe" \
    "${drives[@]}" ${DD_VM_QEMU_PIDFILE:+-pidfile "$DD_VM_QEMU_PIDFILE"} "${extra[@]}" &
  DD_VM_QPID=$!
  wait $DD_VM_QPID
  DD_VM_QRC=$?
  DD_VM_QPID=
  set -e
  dd_vm_phase vm "$t"
  if [ $DD_VM_QRC -ne 0 ]; then
    echo "vm: qemu exited with status $DD_VM_QRC$([ $DD_VM_QRC -eq 124 ] && echo " (timed out after $vm_timeout s)"); the end of the console:"
    tail -n 40 "$DD_VM_WORK/serial.log"
  fi
}

# dd_vm_read_results IMAGE DIR: the result disk's files into DIR (debugfs)
dd_vm_read_results() {
  local t
  t=$(dd_vm_now)
  mkdir -p "$2"
  debugfs -R "rdump / $2" "$1" >/dev/null 2>"$DD_VM_WORK/debugfs.err" || true
  dd_vm_phase results "$t"
}
