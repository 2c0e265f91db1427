#!/usr/bin/env bash
# bench/vdo-vm-series.sh — real dm-vdo's thread CPU per GiB written, in a
# series of write phases (duplicate share 0 / 50 / 90 %, compression off and
# on, two index fills), recorded by dedupd in the VM of tests/vm (Debian 13,
# kernel 6.12's dm-vdo, qemu TCG), then the cost model fitted to it.
#
# The guest CPU is emulated: absolute costs are TCG's, not this machine's;
# the shape (how cost moves with duplicate share, index entries and
# compression) is VDO's own. bench/README.md describes the series.
#
#   bench/vdo-vm-series.sh                  # as root: the VM run (~6-8 min), then the report
#   bench/vdo-vm-series.sh --report-only    # the report from the results dir again (no VM)
#   PHASE_SECONDS=4 ROUNDS=1 FILL_SECONDS=20 bench/vdo-vm-series.sh --out /var/tmp/series   # quick
#
# Reuses tests/vm (lib.sh: the cached guest root, the chroot build, the root
# image, the boot; guest-init.sh runs bench/vdo-vm-series/guest-series.sh as
# its "series" mode). Host side: the result disk's series.jsonl, phases.tsv
# and stats into OUT (default bench/vdo-vm-series/results), a dedupctl built
# in BUILD (default ./build-series) and bench/vdo-vm-series/report.py: the
# per-phase table and `dedupctl model fit` on the rows in time order and
# interleaved.
#
# Environment: PHASE_SECONDS (6), ROUNDS (2: each fill's seven phases run this
# many times, interleaved), FILL_SECONDS (120: the unique writes between the
# two fills), GAP_SECONDS (2), NICE (qemu's nice level, -10; 0 leaves it),
# QUIET_WAIT (seconds to wait for a quiet host before the boot; 0),
# BUILD, DEDUPCTL (skips the build), and
# tests/vm's DEDUPD_VM_CACHE, DEDUPD_VM_WORKDIR, DEDUPD_VM_MIRROR,
# DEDUPD_VM_TIMEOUT (default here 780), DEDUPD_VM_KEEP.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
sdir=$here/vdo-vm-series
out=$sdir/results
report_only=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --report-only) report_only=1 ;;
    --out) out=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "vdo-vm-series: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
  shift
done
PHASE_SECONDS=${PHASE_SECONDS:-6}
ROUNDS=${ROUNDS:-2}
FILL_SECONDS=${FILL_SECONDS:-120}
GAP_SECONDS=${GAP_SECONDS:-2}
BUILD=${BUILD:-$src/build-series}

# a dedupctl for `model fit` (a build dir of its own)
dedupctl_bin() {
  if [ -n "${DEDUPCTL:-}" ]; then
    echo "$DEDUPCTL"
    return
  fi
  # configured once, then built incrementally (model fit as the tree is now)
  mkdir -p "$BUILD"
  if ! { { [ -f "$BUILD/CMakeCache.txt" ] ||
    cmake -S "$src" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF; } &&
    cmake --build "$BUILD" -j"$(nproc)" --target dedupctl; } >"$BUILD/vdo-vm-series-build.log" 2>&1; then
    echo "vdo-vm-series: building dedupctl in $BUILD failed; see $BUILD/vdo-vm-series-build.log" >&2
    exit 1
  fi
  echo "$BUILD/dedupctl"
}

if [ $report_only = 0 ]; then
  # shellcheck source=tests/vm/lib.sh
  . "$src/tests/vm/lib.sh"
  t_all=$(dd_vm_now)
  dd_vm_host_ready "the series" 16
  dd_vm_work_init
  work=$DD_VM_WORK
  dd_vm_unpack_root
  # shellcheck disable=SC2016 # pkg-config runs in the chroot
  dd_vm_chroot_build 'gcc -O2 -Wall -Wextra -Werror -o /vmtest/vmseries /src/bench/vdo-vm-series/vmseries.c $(pkg-config --cflags --libs jansson)'

  t=$(dd_vm_now)
  install -m 0644 "$sdir/guest-series.sh" "$DD_VM_ROOT/vmtest/mode-series.sh"
  cat >"$DD_VM_ROOT/vmtest/series.conf" <<EOF
PHASE_SECONDS=$PHASE_SECONDS
ROUNDS=$ROUNDS
FILL_SECONDS=$FILL_SECONDS
GAP_SECONDS=$GAP_SECONDS
PHYSICAL_GIB=24
EOF
  dd_vm_root_image
  # VDO's backing device: 24 GiB (sparse; about 8 GiB are written), the
  # physical size guest-series.sh's table names
  truncate -s 24G "$work/vdo0.img"
  mke2fs -q -t ext4 -L dedupd-vm-out "$work/out.img" 256M >/dev/null
  dd_vm_phase images "$t"

  # The host's load, every second: TCG's guest time is host time, so a vCPU
  # the host does not run still has its guest thread charged: other load on
  # the host inflates VDO's measured cost. host-load.txt: ms, host busy and
  # idle jiffies (all CPUs), qemu's utime + stime jiffies.
  # qemu runs at nice NICE (default -10) so that other processes take less
  # of its time; what they still take is recorded and flagged in the report.
  export DD_VM_QEMU_PIDFILE=$work/qemu.pid DD_VM_QEMU_NICE=${NICE:--10}
  host_monitor() {
    local q p
    echo "# host cpus $(nproc) clk_tck $(getconf CLK_TCK)"
    while kill -0 $$ 2>/dev/null; do
      q=0
      p=$(cat "$DD_VM_QEMU_PIDFILE" 2>/dev/null || true)
      [ -n "$p" ] && q=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
      echo "$(date +%s%3N) $(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat) ${q:-0}"
      sleep 1
    done
  }
  # QUIET_WAIT=S: wait up to S seconds for a 10 s stretch in which the host's
  # other load stays under 0.2 cores before booting
  if [ "${QUIET_WAIT:-0}" -gt 0 ]; then
    t=$(dd_vm_now)
    waited=0
    while [ "$waited" -lt "$QUIET_WAIT" ]; do
      b0=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat)
      sleep 10
      b1=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat)
      busy=$(awk -v a="$b0" -v b="$b1" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / t / 10 }')
      awk -v x="$busy" 'BEGIN { exit !(x < 0.2) }' && break
      waited=$((waited + 10))
    done
    echo "vdo-vm-series: the host's load before the boot: $busy cores (waited $waited s of QUIET_WAIT=$QUIET_WAIT)"
    dd_vm_phase quiet-wait "$t"
  fi
  host_monitor >"$work/host-load.txt" &
  mon=$!
  read -r la0 _ </proc/loadavg
  dd_vm_boot "${DEDUPD_VM_TIMEOUT:-780}" "dedupd_vm_mode=series dedupd_vm_out=/dev/vdc" \
    "$work/vdo0.img" "$work/out.img"
  kill "$mon" 2>/dev/null || true
  read -r la1 _ </proc/loadavg
  host_busy=$(awk 'NR == 2 { b0 = $2; i0 = $3 } NF == 4 && $1 ~ /^[0-9]/ { b1 = $2; i1 = $3; q1 = $4; if (!q0) q0 = $4 }
    END { printf "%.0f %% busy, qemu %.0f %%", 100 * (b1 - b0) / (b1 - b0 + i1 - i0 + 1e-9), 100 * (q1 - q0) / (b1 - b0 + i1 - i0 + 1e-9) }' "$work/host-load.txt")
  echo "vdo-vm-series: the host's $(nproc) cores during the VM: $host_busy (loadavg $la0 -> $la1)"

  dd_vm_read_results "$work/out.img" "$work/out"
  du -sh "$work"/*.img 2>/dev/null | sed 's/^/vm: disk use /'
  if [ ! -e "$work/out/done" ] || [ ! -s "$work/out/series.jsonl" ]; then
    echo "vdo-vm-series: FAIL: the guest left no series (qemu status $DD_VM_QRC); the end of its log:"
    tail -n 40 "$work/out/guest.log" 2>/dev/null || tail -n 40 "$work/serial.log"
    exit 1
  fi
  mkdir -p "$out"
  cp "$DD_VM_TIMINGS" "$work/out/host-timings.txt"
  cp "$work/host-load.txt" "$work/out/host-load.txt"
  python3 "$sdir/report.py" collect --from "$work/out" --versions "$DD_VM_VERSIONS" --out "$out"
  dd_vm_phase total "$t_all"
  grep -h '^TIMING' "$work/out/guest.log" || true
fi

python3 "$sdir/report.py" report --results "$out" --dedupctl "$(dedupctl_bin)"
