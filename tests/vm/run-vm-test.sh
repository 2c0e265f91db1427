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
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"

t_all=$(dd_vm_now)
# --- root, host packages, can qemu run at all (lib.sh) -------------------------
dd_vm_host_ready "the test" 6

# --- the cached guest root -------------------------------------------------------
dd_vm_work_init
work=$DD_VM_WORK
dd_vm_unpack_root
versions=$DD_VM_VERSIONS
root=$DD_VM_ROOT

# --- dedupd and dedupctl built for the guest, in its root ------------------------
dd_vm_chroot_build 'gcc -O2 -Wall -shared -fPIC -o /vmtest/vanish-shim.so /src/tests/vm/vanish-shim.c'

# --- data, guest script, images ------------------------------------------------
t=$(dd_vm_now)
python3 "$here/mkdata.py" "$root/data"
cp "$root/data/manifest.json" "$work/manifest.json"
dd_vm_phase data "$t"
t=$(dd_vm_now)
dd_vm_root_image
truncate -s 12G "$work/vdo0.img"
truncate -s 12G "$work/lvm.img"
mke2fs -q -t ext4 -L dedupd-vm-out "$work/out.img" 256M >/dev/null
dd_vm_phase images "$t"

# --- boot -----------------------------------------------------------------------
dd_vm_boot "${DEDUPD_VM_TIMEOUT:-900}" "" "$work/vdo0.img" "$work/lvm.img" "$work/out.img"
qrc=$DD_VM_QRC

# --- results -------------------------------------------------------------------------
dd_vm_read_results "$work/out.img" "$work/out"
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
