#!/usr/bin/env bash
# Quick start command (1): install dependencies, build a Release dedupctl,
# create a sample data set and estimate how it will shrink on VDO.
# (Later the main job becomes the dedupd daemon.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
cmake -S "$root" -B "$root/build-release" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build-release" -j"$(nproc)" --target dedupctl

sample=${DEDUPD_SAMPLE_DIR:-/var/tmp/dedupd-sample}
if [ ! -f "$sample/.complete" ]; then
  echo "creating a sample data set in $sample"
  rm -rf "$sample"
  mkdir -p "$sample/checkpoints" "$sample/logs"
  # a "dataset" with 60 % duplicate blocks, two model checkpoints sharing
  # most of their blocks, some zero-filled padding and text logs
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
"$root/build-release/dedupctl" estimate "$sample"
