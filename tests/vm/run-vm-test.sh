#!/usr/bin/env bash
# The real dm-vdo end-to-end test: a Debian 13 guest under qemu (TCG, no KVM
# needed) with kernel 6.12's dm-vdo, dedupd and dedupctl built for it inside
# its root, and a checker that turns the guest's outputs into PASS/FAIL lines.
#
#   tests/vm/run-vm-test.sh        (as root; ctest -L vm runs it)
#
# Steps (each timed): host packages (host-deps.sh) -> can qemu run at all
# (if not: exit 77, ctest's skip) -> the cached trixie root (build-root.sh)
# -> unpack it into a work dir -> build dedupd and dedupctl in it with chroot
# (Release, Debian 13's -dev packages) -> test data (mkdata.py) and images
# (mke2fs -d) -> boot (guest-init.sh as PID 1) -> read the result disk with
# debugfs -> check.py.
#
# Environment: DEDUPD_VM_CACHE (cached root, default /var/cache/dedupd-vm),
# DEDUPD_VM_WORKDIR (work dirs, default /var/tmp), DEDUPD_VM_MIRROR (default:
# the host's Debian mirror), DEDUPD_VM_TIMEOUT (VM seconds, default 900),
# DEDUPD_VM_KEEP=1 keeps the work dir (images, outputs, logs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"
SKIP=77

t_all=$(dd_vm_now)
if [ "$(id -u)" -ne 0 ]; then
  echo "vm: FAIL: needs root (debootstrap, chroot, mke2fs -d of a root tree)" >&2
  exit 1
fi

# --- host packages, and can qemu run at all ----------------------------------
t=$(dd_vm_now)
bash "$here/host-deps.sh" || echo "vm: host packages could not all be installed" >&2
dd_vm_phase host-packages "$t"
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "vm: SKIP: qemu cannot run at all: qemu-system-x86_64 is not installed and could not be (apt-get install qemu-system-x86)"
  exit $SKIP
fi
qerr=$(mktemp)
set +e
timeout 10 qemu-system-x86_64 -machine q35,accel=tcg -m 64 -display none -nodefaults -S \
  -monitor none >"$qerr" 2>&1
qrc=$?
set -e
if [ $qrc -ne 124 ]; then
  echo "vm: SKIP: qemu cannot run at all: a paused TCG machine exited at once (status $qrc): $(head -c 400 "$qerr")"
  rm -f "$qerr"
  exit $SKIP
fi
rm -f "$qerr"
for tool in debootstrap mke2fs debugfs zstd python3 chroot; do
  command -v $tool >/dev/null || { echo "vm: FAIL: $tool is missing (tests/vm/host-deps.sh installs it)" >&2; exit 1; }
done
echo "vm: $(qemu-system-x86_64 --version | head -n 1), no KVM needed (accel=tcg)"

base=$(dd_vm_work_base)
free_kb=$(df -Pk "$base" | awk 'NR == 2 { print $4 }')
if [ "$free_kb" -lt $((6 * 1024 * 1024)) ]; then
  echo "vm: FAIL: $base has $((free_kb / 1024)) MiB free; the test needs about 6 GiB (DEDUPD_VM_WORKDIR moves it)" >&2
  exit 1
fi

# --- the cached guest root -------------------------------------------------------
# work dirs of runs that were killed (a ctest timeout sends SIGKILL)
find "$base" -maxdepth 1 \( -name 'dedupd-vm.*' -o -name 'dedupd-vm-root.*' \) -type d -mmin +180 |
  while read -r stale; do
    echo "vm: removing a stale work dir $stale"
    dd_vm_remove_tree "$stale" || true
  done
work=$(mktemp -d "$base/dedupd-vm.XXXXXX")
export DD_VM_TIMINGS=$work/host-timings.txt
: >"$DD_VM_TIMINGS"
qpid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null
  if [ "${DEDUPD_VM_KEEP:-0}" = 1 ]; then
    dd_vm_umount_below "$work" || true
    echo "vm: kept $work"
  else
    dd_vm_remove_tree "$work" || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t=$(dd_vm_now)
tarball=$(bash "$here/build-root.sh" | tail -n 1)
dd_vm_phase guest-root "$t"
versions=${tarball%.tar.zst}.versions
echo "vm: guest root $(basename "$tarball"): $(tr '\n' ';' <"$versions" | sed 's/;/; /g')"

t=$(dd_vm_now)
root=$work/root
mkdir -p "$root"
tar -C "$root" --zstd -xpf "$tarball"
dd_vm_phase unpack "$t"

# --- dedupd and dedupctl built for the guest, in its root ------------------------
t=$(dd_vm_now)
mkdir -p "$root/src"
tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./out -cf - . | tar -C "$root/src" -xf -
mount -t proc proc "$root/proc"
set +e
# shellcheck disable=SC2016 # $(nproc) expands in the chroot
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 TERM=dumb \
  chroot "$root" /bin/sh -ec '
    cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF -DDD_WERROR=ON
    cmake --build /build -j"$(nproc)" --target dedupd dedupctl
    install -m 0755 /build/dedupd /build/dedupctl /usr/local/bin/
    mkdir -p /vmtest
    gcc -O2 -Wall -shared -fPIC -o /vmtest/vanish-shim.so /src/tests/vm/vanish-shim.c
    gcc --version | head -n 1; cmake --version | head -n 1' >"$work/guest-build.log" 2>&1
brc=$?
set -e
umount "$root/proc"
dd_vm_phase chroot-build "$t"
if [ $brc -ne 0 ]; then
  echo "vm: FAIL: building dedupd and dedupctl on Debian 13 (chroot) failed; the end of its log:"
  tail -n 40 "$work/guest-build.log"
  exit 1
fi
echo "vm: built on Debian 13: $(grep -m1 '^gcc' "$work/guest-build.log"), $(grep -c 'warning:' "$work/guest-build.log") warnings"
rm -rf "$root/src" "$root/build"

# --- data, guest script, images ------------------------------------------------
t=$(dd_vm_now)
python3 "$here/mkdata.py" "$root/data"
cp "$root/data/manifest.json" "$work/manifest.json"
dd_vm_phase data "$t"
t=$(dd_vm_now)
mkdir -p "$root/vmtest/trap" "$root/out"
install -m 0755 "$here/guest-init.sh" "$root/vmtest/guest-init.sh"
cat >"$root/vmtest/trap/dmsetup" <<'EOF'
#!/bin/sh
# dedupd and dedupctl run with only this on their PATH: they must never call it
echo "dmsetup $*" >>/vmtest/trap/called
exit 1
EOF
chmod 0755 "$root/vmtest/trap/dmsetup"
# shellcheck disable=SC2012 # Debian's kernel file names
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
kver=${kernel##*/vmlinuz-}
cp "$kernel" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd.img"
mke2fs -q -t ext4 -L dedupd-vm-root -d "$root" "$work/rootfs.img" 4G >/dev/null
dd_vm_remove_tree "$root"
truncate -s 12G "$work/vdo0.img"
truncate -s 12G "$work/lvm.img"
mke2fs -q -t ext4 -L dedupd-vm-out "$work/out.img" 256M >/dev/null
dd_vm_phase images "$t"

# --- boot -----------------------------------------------------------------------
t=$(dd_vm_now)
vm_timeout=${DEDUPD_VM_TIMEOUT:-900}
echo "vm: booting $kver (qemu TCG, 2 vCPUs, 4 GiB; at most $vm_timeout s)"
set +e
timeout "$vm_timeout" qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 2 -m 4G \
  -display none -monitor none -serial "file:$work/serial.log" -no-reboot \
  -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 init=/vmtest/guest-init.sh panic=-1 loglevel=5" \
  -drive "file=$work/rootfs.img,format=raw,if=virtio,cache=unsafe" \
  -drive "file=$work/vdo0.img,format=raw,if=virtio,cache=unsafe,discard=unmap" \
  -drive "file=$work/lvm.img,format=raw,if=virtio,cache=unsafe,discard=unmap" \
  -drive "file=$work/out.img,format=raw,if=virtio" &
qpid=$!
wait $qpid
qrc=$?
qpid=
set -e
dd_vm_phase vm "$t"
if [ $qrc -ne 0 ]; then
  echo "vm: qemu exited with status $qrc$([ $qrc -eq 124 ] && echo " (timed out after $vm_timeout s)"); the end of the console:"
  tail -n 40 "$work/serial.log"
fi

# --- results -------------------------------------------------------------------------
t=$(dd_vm_now)
mkdir -p "$work/out"
debugfs -R "rdump / $work/out" "$work/out.img" >/dev/null 2>"$work/debugfs.err" || true
dd_vm_phase results "$t"
du -sh "$work"/*.img 2>/dev/null | sed 's/^/vm: disk use /'
dd_vm_phase total "$t_all"
set +e
python3 "$here/check.py" --out "$work/out" --manifest "$work/manifest.json" \
  --versions "$versions" --host-timings "$DD_VM_TIMINGS" --serial "$work/serial.log"
crc=$?
set -e
if [ $qrc -ne 0 ] && [ $crc -eq 0 ]; then
  crc=1
fi
exit $crc
