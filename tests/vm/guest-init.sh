#!/bin/bash
# The VM test's guest side: runs as PID 1 (init=/vmtest/guest-init.sh) in
# the Debian 13 guest, drives a real dm-vdo and dedupd, stores every output
# under /out (the result disk, /dev/vdd) and powers off with sysrq 'o'.
# It must never exit (PID 1 exiting panics the kernel): everything runs in a
# subshell and the power-off follows whatever happens there.
#
# Disks: vda root, vdb bare VDO backing (12 GiB), vdc LVM PV (12 GiB), vdd out
# (another mode, named on the kernel command line, has its own: at the end).
# No udev runs here: libdevmapper makes the /dev/mapper nodes itself
# (DM_DISABLE_UDEV=1) and LVM is told not to wait for udev.
# Outputs: /out/<name>.out|.err|.rc per command (cap), /out/timings.txt
# ("guest PHASE SECONDS"), /out/guest.log, /out/done when the script ended.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1 LC_ALL=C HOME=/root
LVMCONF='activation { udev_sync = 0 udev_rules = 0 } devices { obtain_device_list_from_udev = 0 } allocation { vdo_slab_size_mb = 512 vdo_index_memory_size_mb = 256 }'
O=/out
URL=http://127.0.0.1:7450
# our binaries run with a PATH that holds only a dmsetup that records being
# called: they must use libdevmapper, never the dmsetup program
TRAP=/vmtest/trap
OURS=(env "PATH=$TRAP")
BIN=/usr/local/bin
SHIM=/vmtest/vanish-shim.so

power_off() {
  sync
  umount /out 2>/dev/null
  sync
  echo 1 >/proc/sys/kernel/sysrq
  echo o >/proc/sysrq-trigger
  sleep 600
}

now() { date +%s.%N; }
# phase NAME START: a guest timing line
phase() {
  local s
  s=$(awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  echo "guest $1 $s" >>$O/timings.txt
  echo "TIMING guest $1: $s s"
}
# cap NAME CMD...: stdout, stderr, exit status and command line, apart
cap() {
  local name=$1
  shift
  printf '%s\n' "$*" >"$O/$name.cmd"
  "$@" >"$O/$name.out" 2>"$O/$name.err"
  echo $? >"$O/$name.rc"
  return 0
}
stats() { cap "$1" dmsetup message "$2" 0 stats; }
get() { cap "$1" curl -sS -m 20 -o "$O/$1.body" -w '%{http_code}\n' "$URL$2"; }
# wait_file PATH: up to 60 s
wait_file() {
  for _ in $(seq 1 600); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  echo "guest: $1 did not appear in 60 s"
  return 1
}
vdo_threads() { cap "$1" sh -c "ps -eo pid,ppid,comm | awk '\$3 ~ /^vdo[0-9]+:/'"; }

guest_main() {
  set -x
  local t tall
  tall=$(now)
  echo "guest: up $(cut -d' ' -f1 /proc/uptime) s after boot"
  cut -d' ' -f1 /proc/uptime >$O/boot-uptime.txt
  # no init brings the loopback up; dedupd listens on it
  ip link set lo up

  # --- versions and tools --------------------------------------------------
  t=$(now)
  cap modprobe modprobe dm-vdo
  phase modprobe "$t"
  cap uname uname -r
  cap targets dmsetup targets
  cap dmsetup-version dmsetup version
  cap vdostats-version vdostats --version
  cap lvm-version lvm version
  cap vdostats-help vdostats --help
  cap nproc nproc
  cap clk-tck getconf CLK_TCK
  cap strings-dmsetup sh -c "grep -c -a -e '/dmsetup' -e 'dmsetup ' $BIN/dedupd $BIN/dedupctl"

  # --- two VDO volumes ------------------------------------------------------
  t=$(now)
  cap vdoformat vdoformat --uds-memory-size=0.25 --slab-bits=17 --logical-size=20G /dev/vdb
  # bare V4 table: 20 GiB logical (sectors), 12 GiB physical (4 KiB blocks),
  # minimum I/O 4096, block map cache 32768 blocks, era 16380; kernel
  # defaults otherwise: compression off
  VDO0_TABLE="0 41943040 vdo V4 /dev/vdb 3145728 4096 32768 16380"
  cap create-vdo0 dmsetup create vdo0 --table "$VDO0_TABLE"
  phase create-vdo0 "$t"
  t=$(now)
  cap pvcreate pvcreate --config "$LVMCONF" /dev/vdc
  cap vgcreate vgcreate --config "$LVMCONF" vg0 /dev/vdc
  cap lvcreate lvcreate --config "$LVMCONF" -y --type vdo -L 10G -V 20G -n lv0 vg0/vpool0
  phase create-lvm-vdo "$t"
  cap ls-target-vdo dmsetup ls --target vdo
  for v in vdo0 vg0-vpool0-vpool; do
    cap "status0-$v" dmsetup status "$v"
    cap "table0-$v" dmsetup table "$v"
    cap "config0-$v" dmsetup message "$v" 0 config
  done
  vdo_threads threads0

  # --- estimates, before the data is written -----------------------------------
  t=$(now)
  cap est-vdo0 "${OURS[@]}" $BIN/dedupctl estimate --json --mode exact --compress-sample 1 /data/w-vdo0.bin
  cap est-lv0 "${OURS[@]}" $BIN/dedupctl estimate --json --mode exact --compress-sample 1 /data/w-lv0.bin
  # the second write to vdo0 meets the first one's data on the volume:
  # estimate both, in the order written
  cap est-vdo0-both "${OURS[@]}" $BIN/dedupctl estimate --json --mode exact --compress-sample 1 \
    /data/w-vdo0.bin /data/w-vdo0b.bin
  phase estimate "$t"

  # --- dedupd sampling every 0.5 s while the data is written -----------------
  mkdir -p /tmp/dd /tmp/vanish-d
  # under the shim (pass-through until armed, below)
  env LD_PRELOAD=$SHIM DD_VANISH_DIR=/tmp/vanish-d PATH=$TRAP $BIN/dedupd --role all --source dm --interval 0.5 --data-dir /tmp/dd \
    --listen 127.0.0.1:7450 >$O/dedupd.log 2>&1 &
  DEDUPD_PID=$!
  echo "$DEDUPD_PID" >$O/dedupd.pid
  t=$(now)
  for _ in $(seq 1 300); do
    [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' $URL/readyz)" = 200 ] && break
    sleep 0.2
  done
  phase dedupd-ready "$t"
  get healthz0 /healthz
  get volumes0 /v1/volumes

  stats stats-before-vdo0 vdo0
  stats stats-before-lvm vg0-vpool0-vpool
  date +%s.%N >$O/write-vdo0.start
  t=$(now)
  cap dd-vdo0 dd if=/data/w-vdo0.bin of=/dev/mapper/vdo0 bs=1M oflag=direct conv=fsync
  phase write-vdo0 "$t"
  date +%s.%N >$O/write-vdo0.end
  sleep 1.5
  stats stats-after-vdo0 vdo0
  stats stats-mid-lvm vg0-vpool0-vpool
  vdo_threads threads1
  date +%s.%N >$O/write-lv0.start
  t=$(now)
  cap dd-lv0 dd if=/data/w-lv0.bin of=/dev/mapper/vg0-lv0 bs=1M oflag=direct conv=fsync
  phase write-lv0 "$t"
  date +%s.%N >$O/write-lv0.end
  sleep 1.5
  stats stats-after-lvm vg0-vpool0-vpool
  stats stats-mid-vdo0 vdo0

  # --- dedupctl vdostats against vdostats, writes quiesced ------------------------
  sleep 1
  t=$(now)
  for form in default:'' verbose:--verbose human:--human-readable si:--si help:-h; do
    name=${form%%:*}
    arg=${form#*:}
    # shellcheck disable=SC2086
    cap "cmp-$name-ours" "${OURS[@]}" $BIN/dedupctl vdostats $arg
    # shellcheck disable=SC2086
    cap "cmp-$name-real" vdostats $arg
  done
  cap vdostats-json "${OURS[@]}" $BIN/dedupctl vdostats --json
  # the raw texts the JSON is checked against (read right after it)
  for v in vdo0 vg0-vpool0-vpool; do
    stats "raw-stats-$v" "$v"
    cap "raw-status-$v" dmsetup status "$v"
    cap "raw-table-$v" dmsetup table "$v"
    cap "raw-config-$v" dmsetup message "$v" 0 config
  done
  cap vdostats-json-interval "${OURS[@]}" $BIN/dedupctl vdostats --json --interval 1
  phase vdostats-compare "$t"

  # --- the daemon's view ----------------------------------------------------
  get volumes1 /v1/volumes
  get node1 /v1/node
  get metrics1 /metrics
  cap status-remote "${OURS[@]}" $BIN/dedupctl status --remote $URL --json
  cap volumes-remote "${OURS[@]}" $BIN/dedupctl volumes --remote $URL
  cap history-vdo0 "${OURS[@]}" $BIN/dedupctl history vdo0 --remote $URL --json
  cap history-lvm "${OURS[@]}" $BIN/dedupctl history vg0-vpool0-vpool --remote $URL --json

  # --- errors: a linear LV and a name that does not exist --------------------------
  cap err-linear "${OURS[@]}" $BIN/dedupctl vdostats vg0-lv0
  cap err-nosuch "${OURS[@]}" $BIN/dedupctl vdostats nosuchdev
  cap err-linear-json "${OURS[@]}" $BIN/dedupctl vdostats --json vg0-lv0
  cap real-linear-stats dmsetup message vg0-lv0 0 stats
  cap real-bogus dmsetup message vdo0 0 bogus
  cap real-nosuch vdostats nosuchdev

  # --- a message the kernel refuses, sent by our own code path -----------------------
  # the shim turns the next "stats" message to vdo0 into "bogus", which
  # dm-vdo refuses with EINVAL (as `dmsetup message vdo0 0 bogus` above)
  mkdir -p /tmp/badmsg
  for form in json:--json default:''; do
    name=${form%%:*}
    arg=${form#*:}
    echo vdo0 >/tmp/badmsg/badmsg
    # shellcheck disable=SC2086
    env LD_PRELOAD=$SHIM DD_VANISH_DIR=/tmp/badmsg PATH=$TRAP $BIN/dedupctl vdostats $arg \
      >"$O/badmsg-ctl-$name.out" 2>"$O/badmsg-ctl-$name.err"
    echo $? >"$O/badmsg-ctl-$name.rc"
  done
  get metrics-pre-badmsg /metrics
  date +%s.%N >$O/badmsg-d.at
  echo vdo0 >/tmp/vanish-d/badmsg
  for _ in $(seq 1 100); do
    [ -e /tmp/vanish-d/badmsg ] || break
    sleep 0.1
  done
  sleep 1
  get metrics-post-badmsg /metrics
  get healthz-badmsg /healthz

  # --- a volume that disappears between listing and reading ------------------------
  # The shim (vanish-shim.c, LD_PRELOAD) holds the first read of the armed
  # volume after a listing found it, until the script has taken the volume
  # away: the real race, on cue. dedupctl: vdo0 renamed away meanwhile.
  t=$(now)
  for form in json:--json default:''; do
    name=${form%%:*}
    arg=${form#*:}
    mkdir -p /tmp/vanish-ctl
    rm -f /tmp/vanish-ctl/*
    echo vdo0 >/tmp/vanish-ctl/arm
    # shellcheck disable=SC2086
    env LD_PRELOAD=$SHIM DD_VANISH_DIR=/tmp/vanish-ctl PATH=$TRAP $BIN/dedupctl vdostats $arg \
      >$O/vanish-ctl-$name.out 2>$O/vanish-ctl-$name.err &
    pid=$!
    wait_file /tmp/vanish-ctl/listed
    cap "vanish-ctl-$name-rename" dmsetup rename vdo0 vdo0-away
    touch /tmp/vanish-ctl/go
    wait $pid
    echo $? >"$O/vanish-ctl-$name.rc"
    cap "vanish-ctl-$name-rename-back" dmsetup rename vdo0-away vdo0
  done
  # dedupd (started under the shim): vdo0 removed for good while the sampler
  # holds a listing that has it
  get metrics-pre-vanish /metrics
  date +%s.%N >$O/vanish-d.at
  echo vdo0 >/tmp/vanish-d/arm
  wait_file /tmp/vanish-d/listed
  cap remove-vdo0 dmsetup remove vdo0
  touch /tmp/vanish-d/go
  date +%s.%N >$O/removed-vdo0.at
  sleep 0.3
  get volumes-vanish /v1/volumes
  sleep 1.2
  phase disappear "$t"
  get volumes-removed /v1/volumes
  get metrics-removed /metrics
  get healthz-removed /healthz
  cap pgrep-dedupd kill -0 "$DEDUPD_PID"

  # --- re-created under a new instance number, written again ------------------------
  t=$(now)
  cap recreate-vdo0 dmsetup create vdo0 --table "$VDO0_TABLE"
  phase recreate-vdo0 "$t"
  date +%s.%N >$O/recreated-vdo0.at
  vdo_threads threads2
  sleep 1
  stats stats-before-vdo0b vdo0
  date +%s.%N >$O/write-vdo0b.start
  t=$(now)
  cap dd-vdo0b dd if=/data/w-vdo0b.bin of=/dev/mapper/vdo0 bs=1M seek=1024 oflag=direct conv=fsync
  phase write-vdo0b "$t"
  date +%s.%N >$O/write-vdo0b.end
  sleep 1.5
  stats stats-after-vdo0b vdo0
  get volumes2 /v1/volumes
  get metrics2 /metrics
  cap history-vdo0-2 "${OURS[@]}" $BIN/dedupctl history vdo0 --remote $URL --json
  cap history-lvm-2 "${OURS[@]}" $BIN/dedupctl history vg0-vpool0-vpool --remote $URL --json
  cap vdostats-json2 "${OURS[@]}" $BIN/dedupctl vdostats --json

  # --- stop the daemon, tear down -------------------------------------------------
  t=$(now)
  kill -TERM "$DEDUPD_PID"
  wait "$DEDUPD_PID"
  echo $? >$O/dedupd.rc
  phase dedupd-stop "$t"
  t=$(now)
  cap lvchange lvchange --config "$LVMCONF" -an vg0/lv0
  cap remove-vdo0-final dmsetup remove vdo0
  phase teardown "$t"
  cap dmesg sh -c 'dmesg | grep -i -e vdo -e device-mapper'
  [ -e $TRAP/called ] && cp $TRAP/called $O/dmsetup-called
  phase total "$tall"
}

# The kernel command line may name another guest mode, dedupd_vm_mode=NAME:
# /vmtest/mode-NAME.sh is sourced and its mode_main runs instead of
# guest_main, with the helpers above (bench/vdo-vm-series.sh uses this), and
# the result disk, dedupd_vm_out=/dev/vdX (default /dev/vdd).
cmdline_arg() { tr ' ' '\n' </proc/cmdline | sed -n "s|^$1=||p" | tail -n 1; }
OUTDEV=$(cmdline_arg dedupd_vm_out)
OUTDEV=${OUTDEV:-/dev/vdd}
MODE=$(cmdline_arg dedupd_vm_mode)
mkdir -p /out
if ! mount -t ext4 "$OUTDEV" /out; then
  echo "guest: cannot mount the result disk $OUTDEV" >/dev/console
  power_off
fi
main=guest_main
if [ -n "$MODE" ]; then
  main=mode_main
  # shellcheck disable=SC1090 # the mode's script, installed by its driver
  . "/vmtest/mode-$MODE.sh" >$O/mode.log 2>&1 ||
    mode_main() { echo "guest: mode $MODE: /vmtest/mode-$MODE.sh did not load"; cat $O/mode.log; }
fi
( $main ) >$O/guest.log 2>&1 </dev/null
echo "guest script done" >$O/done
grep '^TIMING' $O/guest.log >/dev/console
power_off
