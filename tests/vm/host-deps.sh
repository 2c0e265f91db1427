#!/usr/bin/env bash
# The VM test's host packages (debootstrap, qemu for x86-64 under TCG,
# e2fsprogs, zstd, python3): scripts/install-deps.sh --vm, which installs
# only what is missing and, without root, names what is missing (exit 1).
set -euo pipefail
exec "$(dirname "$0")/../../scripts/install-deps.sh" --vm
