#!/usr/bin/env bash
# Installs the Debian 12 packages dedupd needs to build, test and benchmark
# (--bench adds the benchmarks' tools, --vm the VM test's host packages).
# Idempotent: apt-get runs only when something is missing. Run as root.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libdevmapper-dev libblkid-dev libxxhash-dev libxgboost-dev libmicrohttpd-dev
  libjansson-dev librocksdb-dev liblz4-dev libcmocka-dev libcurl4-openssl-dev libgnutls28-dev
  fio e2fsprogs openssl gnuplot-nox
  # deploy/: the image recipe (mmdebstrap, umoci) and the manifest checks
  # (promtool from prometheus, PyYAML)
  mmdebstrap umoci prometheus python3-yaml
)
for opt in "$@"; do
  case "$opt" in
    --bench) # benchmark baselines and tools (bench/)
      PACKAGES+=(duperemove time sqlite3 wrk prometheus-node-exporter stress-ng
                 libmurmurhash-dev) ;;
    --vm) # the real dm-vdo VM test (tests/vm): debootstrap, qemu under TCG, mke2fs -d and
          # debugfs, zstd for the cached root, python3 for the checker
      PACKAGES+=(debootstrap qemu-system-x86 qemu-utils e2fsprogs zstd python3) ;;
    *) echo "install-deps: unknown option '$opt' (--bench, --vm)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
