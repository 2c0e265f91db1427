#!/usr/bin/env bash
# Installs the Debian 12 packages dedupd needs to build, test and benchmark.
# Idempotent: apt-get runs only when something is missing. Run as root.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libdevmapper-dev libblkid-dev libxxhash-dev libxgboost-dev libmicrohttpd-dev
  libjansson-dev librocksdb-dev liblz4-dev libcmocka-dev libcurl4-openssl-dev libgnutls28-dev
  fio e2fsprogs openssl
)
if [ "${1:-}" = "--bench" ]; then
  PACKAGES+=(duperemove time sqlite3 wrk prometheus-node-exporter stress-ng gnuplot-nox libmurmurhash-dev)
fi

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
