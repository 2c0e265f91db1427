#!/usr/bin/env bash
# Quick start command (1): install dependencies, build a Release dedupd and
# dedupctl, and start the main job: dedupd with the embedded default (role
# all, RocksDB under a local data directory, 127.0.0.1:7450). Then it asks
# the daemon for its status, its volumes and an estimate of a sample data
# set, the way an operator would.
#
# VDO volumes are read through libdevmapper when this machine has any. A
# machine without device-mapper VDO (a development box, a CI runner) gets a
# *simulated* replay from `dedupctl vdo-sim` instead, and says so: the
# figures are then the simulator's, not a real VDO's.
#
# The daemon keeps running in the background after this script returns
# (stop it with the printed kill command); --foreground keeps it attached
# until Ctrl-C. Environment: DEDUPD_DATA_DIR (default /var/lib/dedupd),
# DEDUPD_LISTEN (127.0.0.1:7450), DEDUPD_SAMPLE_DIR (/var/tmp/dedupd-sample),
# DEDUPD_RUN_DIR (/var/tmp/dedupd-quickstart: log, pid, simulated replay).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
foreground=0
[ "${1:-}" = "--foreground" ] && foreground=1

scripts/install-deps.sh
cmake -S "$root" -B "$root/build-release" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build-release" -j"$(nproc)" --target dedupd dedupctl
bin=$root/build-release

data=${DEDUPD_DATA_DIR:-/var/lib/dedupd}
listen=${DEDUPD_LISTEN:-127.0.0.1:7450}
url=http://$listen
run=${DEDUPD_RUN_DIR:-/var/tmp/dedupd-quickstart}
sample=${DEDUPD_SAMPLE_DIR:-/var/tmp/dedupd-sample}
mkdir -p "$run"

# a sample data set for the estimate: a "dataset" with 60 % duplicate
# blocks, two model checkpoints sharing most of their blocks, zero-filled
# padding and text logs
if [ ! -f "$sample/.complete" ]; then
  echo "creating a sample data set in $sample"
  rm -rf "$sample"
  mkdir -p "$sample/checkpoints" "$sample/logs"
  fio --name=dataset --filename="$sample/dataset.bin" --rw=write --bs=4k --size=256M \
      --dedupe_percentage=60 --refill_buffers --ioengine=psync --output=/dev/null
  fio --name=ckpt --filename="$sample/checkpoints/step-1000.ckpt" --rw=write --bs=4k \
      --size=64M --refill_buffers --ioengine=psync --output=/dev/null
  cp "$sample/checkpoints/step-1000.ckpt" "$sample/checkpoints/step-2000.ckpt"
  dd if=/dev/urandom of="$sample/checkpoints/step-2000.ckpt" bs=4k count=2048 \
     seek=4096 conv=notrunc status=none
  head -c 32M /dev/zero > "$sample/padding.bin"
  for i in $(seq 1 200000); do echo "step $((i % 5000)) loss 0.$((i % 97)) lr 0.001 gpu $((i % 8)) ok"; done \
    > "$sample/logs/train.log"
  touch "$sample/.complete"
fi

# real VDO through libdevmapper when there is any, else the simulator
if "$bin/dedupctl" vdostats --source dm >/dev/null 2>&1; then
  source=dm
  echo "VDO volumes found through device-mapper: dedupd samples them"
else
  source=replay:$run/replay
  echo "no VDO volume through device-mapper here: dedupd serves a SIMULATED replay"
  echo "(dedupctl vdo-sim, three volumes, one hour at 10 s; not real VDO)"
  if [ ! -f "$run/replay/.complete" ]; then
    rm -rf "$run/replay"
    cat > "$run/workload.json" <<'EOF'
{"node": {"cpus": 8},
 "volumes": [
  {"name": "models", "write_mbps": 150, "read_mbps": 600, "duplicate_share": 0.6,
   "zero_share": 0.05, "compressible_share": 0.2, "index_entries": 40000000,
   "stored_gib": 300, "cpu_load": 0.15, "compression": true},
  {"name": "datasets", "write_mbps": 60, "read_mbps": 900, "duplicate_share": 0.3,
   "index_entries": 120000000, "stored_gib": 600, "cpu_load": 0.2},
  {"name": "scratch", "write_mbps": 20, "read_mbps": 40, "duplicate_share": 0.05,
   "index_entries": 2000000, "stored_gib": 20, "cpu_load": 0.05}],
 "phases": [{"at_interval": 180, "volumes": {"datasets": {"cpu_load": 0.6}}}]}
EOF
    "$bin/dedupctl" vdo-sim --workload "$run/workload.json" --intervals 360 \
      --interval-seconds 10 --seed 1 --out "$run/replay"
    touch "$run/replay/.complete"
  fi
fi

# one quick-start daemon at a time
if [ -f "$run/dedupd.pid" ] && kill -0 "$(cat "$run/dedupd.pid")" 2>/dev/null; then
  echo "stopping the previous quick-start dedupd (pid $(cat "$run/dedupd.pid"))"
  kill "$(cat "$run/dedupd.pid")"
  while kill -0 "$(cat "$run/dedupd.pid")" 2>/dev/null; do sleep 0.2; done
fi
mkdir -p "$data"
"$bin/dedupd" --role all --listen "$listen" --data-dir "$data" --source "$source" \
  --interval 10 --estimate-root "$sample" 2>"$run/dedupd.log" &
pid=$!
echo "$pid" > "$run/dedupd.pid"
for _ in $(seq 1 100); do
  if "$bin/dedupctl" status --remote "$url" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dedupd exited; its log ($run/dedupd.log):" >&2
    cat "$run/dedupd.log" >&2
    exit 1
  fi
  sleep 0.2
done
# the second sample brings the interval rates and features
sleep 11

echo
echo "\$ dedupctl status --remote $url"
"$bin/dedupctl" status --remote "$url"
echo
echo "\$ dedupctl volumes --remote $url"
"$bin/dedupctl" volumes --remote "$url"
echo
echo "\$ dedupctl estimate --remote $url $sample"
"$bin/dedupctl" estimate --remote "$url" "$sample"
echo
if [ "$foreground" = 1 ]; then
  echo "dedupd (pid $pid) serves $url; Ctrl-C stops it"
  trap 'kill "$pid" 2>/dev/null' INT TERM
  wait "$pid"
else
  echo "dedupd (pid $pid) keeps serving $url; log: $run/dedupd.log"
  echo "stop it with: kill \$(cat $run/dedupd.pid)"
fi
