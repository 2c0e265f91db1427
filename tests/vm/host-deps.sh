#!/usr/bin/env bash
# Installs the Debian 12 host packages the VM test needs (debootstrap, qemu
# for x86-64 under TCG, e2fsprogs for mke2fs -d and debugfs, zstd for the
# cached root tarball, python3 for the checker). Idempotent: apt-get runs
# only when something is missing. Needs root to install; without root it
# only reports what is missing (exit 1).
set -euo pipefail

PACKAGES=(debootstrap qemu-system-x86 qemu-utils e2fsprogs zstd python3)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "vm host-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "vm host-deps: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "vm host-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
