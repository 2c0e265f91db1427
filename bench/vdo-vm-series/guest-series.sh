# shellcheck shell=bash
# bench/vdo-vm-series.sh's guest side: installed as /vmtest/mode-series.sh and
# sourced by tests/vm/guest-init.sh (PID 1) when the kernel command line says
# dedupd_vm_mode=series; mode_main runs with guest-init's helpers (cap,
# stats, get, phase, now) and writes under /out (the result disk, /dev/vdc
# here: dedupd_vm_out=/dev/vdc). Disks: vda root, vdb the VDO backing device.
#
# One bare V4 VDO volume (0.25 GB index, compression switched per phase with
# `dmsetup message vdo0 0 compression on|off`) and dedupd --interval 1 only
# recording (--min-train-samples 1000000) while a series of write phases runs:
# per index fill, ROUNDS rounds of: duplicate share 0 / 0.5 / 0.9 of random
# blocks with compression off, text blocks with compression off (a control),
# and 0 / 0.5 / 0.9 of text blocks with compression on (rounds, so that a
# stretch of load on the host spoils a part of every phase rather than all of
# some); then a long run of unique blocks raises the index's entries and the
# same phases run again on fresh data. Duplicates are copies of the blocks
# the fill's first 0 % phase of that kind wrote (vmseries gen regenerates
# them). Each phase writes for PHASE_SECONDS at fresh logical addresses (dd
# oflag=direct, 1 MiB), then GAP_SECONDS idle.
#
# Outputs: phases.tsv (one line per phase run: its window, blocks, VDO thread
# CPU read from /proc around it, dd's own CPU), stats-NAME-rROUND-before|after
# .out (the raw stats replies), base.tsv (the pipe alone), history-vdo0.json
# and series.jsonl (dedupd's stored samples, one per line), timings.txt,
# dedupd.log.
# /vmtest/series.conf (written by the driver) sets the variables below.

SERIES_GEN=/vmtest/vmseries
PHASE_SECONDS=6
ROUNDS=2
FILL_SECONDS=120
GAP_SECONDS=2
LOGICAL_GIB=48
PHYSICAL_GIB=24
PHASE_MAX_MIB=1024
FILL_MAX_MIB=6144

# the VDO kernel threads' utime + stime, in clock ticks
series_vdo_ticks() {
  cat /proc/[0-9]*/stat 2>/dev/null |
    awk '$2 ~ /^\(vdo[0-9]+:/ { s += $14 + $15 } END { printf "%d\n", s }'
}

# series_phase NAME FILL ROUND on|off random|text DUP SEED DUP_SEED DUP_BLOCKS SECONDS MAX_MIB
# (a run's files are NAME-rROUND.*)
series_phase() {
  local name=$1 fill=$2 round=$3 comp=$4 kind=$5 dup=$6 seed=$7 dseed=$8 dblocks=$9 secs=${10} max=${11}
  local t0 t1 t2 c0 c1 rc blocks=0 ndup=0 ddt dup_args=() id=$1-r$3
  if [ "$comp" != "$SERIES_COMP" ]; then
    cap "compression-$id" dmsetup message vdo0 0 compression "$comp"
    SERIES_COMP=$comp
    sleep 1.5
  fi
  [ "$dup" != 0 ] && dup_args=(--dup "$dup" --dup-seed "$dseed" --dup-blocks "$dblocks")
  stats "stats-$id-before" vdo0
  c0=$(series_vdo_ticks)
  t0=$(date +%s%3N)
  # dd in its own shell, so that `times` gives dd's CPU alone (the VDO work
  # done in the submitter's context is there, not in the VDO threads)
  "$SERIES_GEN" gen --kind "$kind" --seed "$seed" "${dup_args[@]}" --seconds "$secs" \
    --max-blocks $((max * 256)) --count-file "$O/count-$id.txt" 2>"$O/gen-$id.err" |
    bash -c 'dd of=/dev/mapper/vdo0 bs=1M iflag=fullblock oflag=direct seek="$1" conv=fsync 2>"$2"
      rc=$?; times >"$3"; exit $rc' dd "$SERIES_OFF_MIB" "$O/dd-$id.err" "$O/dd-$id.times"
  rc=$?
  t1=$(date +%s%3N)
  stats "stats-$id-after" vdo0
  sleep "$GAP_SECONDS"
  c1=$(series_vdo_ticks)
  t2=$(date +%s%3N)
  read -r blocks ndup <"$O/count-$id.txt" || true
  # dd's children's user and sys (the second line of `times`: 0m0.010s 0m1.230s)
  ddt=$(sed -n 2p "$O/dd-$id.times" 2>/dev/null |
    awk '{ n = split($0, a, /[ ms]+/); u = a[1] * 60 + a[2]; s = a[3] * 60 + a[4]; printf "%.2f %.2f", u, s }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$fill" "$round" \
    "$comp" "$kind" "$dup" "$t0" "$t1" "$t2" "$blocks" "$ndup" "$c0" "$c1" "${ddt% *}" "${ddt#* }" "$rc" \
    >>"$O/phases.tsv"
  echo "phase $id: $blocks blocks ($ndup copies) in $((t1 - t0)) ms, dd exit $rc"
  SERIES_OFF_MIB=$((SERIES_OFF_MIB + (blocks + 255) / 256))
  SERIES_LAST_BLOCKS=$blocks
}

# series_pipe KIND SECONDS: the generator into dd of=/dev/null, no VDO: what
# the pipe costs dd (its read side), to set against dd's CPU when it writes
# to VDO (base.tsv: kind, ms, blocks, dd user s, dd sys s)
series_pipe() {
  local kind=$1 secs=$2 t0 t1 blocks ndup ddt
  t0=$(date +%s%3N)
  "$SERIES_GEN" gen --kind "$kind" --seed 7 --seconds "$secs" --count-file "$O/count-pipe-$kind.txt" |
    bash -c 'dd of=/dev/null bs=1M iflag=fullblock 2>/dev/null; times >"$1"' dd "$O/pipe-$kind.times"
  t1=$(date +%s%3N)
  read -r blocks ndup <"$O/count-pipe-$kind.txt" || true
  ddt=$(sed -n 2p "$O/pipe-$kind.times" 2>/dev/null |
    awk '{ n = split($0, a, /[ ms]+/); u = a[1] * 60 + a[2]; s = a[3] * 60 + a[4]; printf "%.2f\t%.2f", u, s }')
  printf '%s\t%s\t%s\t%s\n' "$kind" $((t1 - t0)) "$blocks" "$ddt" >>"$O/base.tsv"
}

# series_fill F: ROUNDS rounds of the seven phases (a round: random blocks
# with 0 / 50 / 90 % copies and text blocks with compression off, then text
# blocks with 0 / 50 / 90 % copies with compression on). Copies are of the
# blocks the first round's 0 % phase of that kind wrote; every other stream is
# fresh (seed F00 + 10 round + phase).
series_fill() {
  local f=$1 r s p=$PHASE_SECONDS m=$PHASE_MAX_MIB nr=0 nt=0
  for ((r = 1; r <= ROUNDS; r++)); do
    s=$((f * 100 + r * 10))
    series_phase "f$f-off-rand-u0" "$f" "$r" off random 0 $((s + 1)) 0 0 "$p" "$m"
    [ "$r" = 1 ] && nr=$SERIES_LAST_BLOCKS
    series_phase "f$f-off-rand-u50" "$f" "$r" off random 0.5 $((s + 2)) $((f * 100 + 11)) "$nr" "$p" "$m"
    series_phase "f$f-off-rand-u90" "$f" "$r" off random 0.9 $((s + 3)) $((f * 100 + 11)) "$nr" "$p" "$m"
    series_phase "f$f-off-text-u0" "$f" "$r" off text 0 $((s + 4)) 0 0 "$p" "$m"
    series_phase "f$f-on-text-u0" "$f" "$r" on text 0 $((s + 5)) 0 0 "$p" "$m"
    [ "$r" = 1 ] && nt=$SERIES_LAST_BLOCKS
    series_phase "f$f-on-text-u50" "$f" "$r" on text 0.5 $((s + 6)) $((f * 100 + 15)) "$nt" "$p" "$m"
    series_phase "f$f-on-text-u90" "$f" "$r" on text 0.9 $((s + 7)) $((f * 100 + 15)) "$nt" "$p" "$m"
  done
}

mode_main() {
  set -x
  local t tall table
  tall=$(now)
  # shellcheck disable=SC1091 # written by bench/vdo-vm-series.sh
  [ -e /vmtest/series.conf ] && . /vmtest/series.conf
  echo "guest: up $(cut -d' ' -f1 /proc/uptime) s after boot"
  cut -d' ' -f1 /proc/uptime >"$O"/boot-uptime.txt
  ip link set lo up
  t=$(now)
  cap modprobe modprobe dm-vdo
  cap uname uname -r
  cap targets dmsetup targets
  cap vdostats-version vdostats --version
  cap nproc nproc
  cap clk-tck getconf CLK_TCK
  cap series-conf cat /vmtest/series.conf
  cap vdoformat vdoformat --uds-memory-size=0.25 --slab-bits=17 --logical-size="${LOGICAL_GIB}G" /dev/vdb
  # bare V4 table as in the VM test: logical sectors, physical 4 KiB blocks,
  # minimum I/O 4096, block map cache 32768 blocks, era 16380; compression
  # off (the kernel's default) until a phase switches it on
  table="0 $((LOGICAL_GIB * 2097152)) vdo V4 /dev/vdb $((PHYSICAL_GIB * 262144)) 4096 32768 16380"
  cap create-vdo0 dmsetup create vdo0 --table "$table"
  SERIES_COMP=off
  SERIES_OFF_MIB=0
  phase create-vdo0 "$t"
  cap status0 dmsetup status vdo0
  cap table0 dmsetup table vdo0
  cap config0 dmsetup message vdo0 0 config

  mkdir -p /tmp/dd
  env PATH="$TRAP" "$BIN"/dedupd --role all --source dm --interval 1 --data-dir /tmp/dd \
    --min-train-samples 1000000 --listen 127.0.0.1:7450 >"$O"/dedupd.log 2>&1 &
  DEDUPD_PID=$!
  t=$(now)
  for _ in $(seq 1 300); do
    [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "$URL"/readyz)" = 200 ] && break
    sleep 0.2
  done
  phase dedupd-ready "$t"
  printf 'kind\tms\tblocks\tdd_user_s\tdd_sys_s\n' >"$O/base.tsv"
  series_pipe random 3
  series_pipe text 3
  sleep "$GAP_SECONDS"

  printf 'name\tfill\tround\tcompression\tkind\tdup\tstart_ms\tend_ms\tgap_end_ms\tblocks\tdup_blocks\tvdo_ticks_start\tvdo_ticks_end\tdd_user_s\tdd_sys_s\tdd_rc\n' >"$O"/phases.tsv
  t=$(now)
  series_fill 1
  phase fill-1 "$t"
  t=$(now)
  series_phase fill-rand fill 1 off random 0 900 0 0 "$FILL_SECONDS" "$FILL_MAX_MIB"
  phase index-fill "$t"
  t=$(now)
  series_fill 2
  phase fill-2 "$t"

  t=$(now)
  cap status1 dmsetup status vdo0
  stats stats-end vdo0
  get volumes-end /v1/volumes
  get model /v1/model
  cap history-curl curl -sS -m 60 -o "$O"/history-vdo0.json "$URL/v1/volumes/vdo0/history?from=0"
  cap jsonl sh -c "/vmtest/vmseries jsonl vdo0 <$O/history-vdo0.json >$O/series.jsonl"
  kill -TERM "$DEDUPD_PID"
  wait "$DEDUPD_PID"
  echo $? >"$O"/dedupd.rc
  phase export "$t"
  cap remove-vdo0 dmsetup remove vdo0
  cap dmesg sh -c 'dmesg | grep -i -e vdo -e device-mapper'
  phase total "$tall"
}
