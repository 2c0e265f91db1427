#!/usr/bin/env bash
# Quick start command (2): install dependencies, then build and run the whole
# test suite twice: a Debug build with ASan+UBSan (no recovery) and a Release
# build, both with warnings as errors; then the threaded tests under TSan.
# Also checks formatting and banned functions. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

scripts/install-deps.sh

echo "== format and banned-function checks"
scripts/check-style.sh

# run_suite NAME "CTEST ARGS" CMAKE ARGS...
run_suite() {
  local name=$1 filter=$2; shift 2
  local dir=$root/build-$name
  echo "== $name build ($*)"
  cmake -S "$root" -B "$dir" -DDD_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== $name tests"
  # the VM test (label vm) runs once, at the end
  # shellcheck disable=SC2086
  (cd "$dir" && ctest --output-on-failure --timeout 1800 -j1 -LE vm $filter)
}

run_suite asan "" -DCMAKE_BUILD_TYPE=Debug -DDD_ASAN=ON
run_suite release "" -DCMAKE_BUILD_TYPE=Release
# the threaded code (reader workers, ordered merge) under ThreadSanitizer
run_suite tsan "-R test-scan-files|test-dedupctl" -DCMAKE_BUILD_TYPE=Debug -DDD_TSAN=ON
# libFuzzer targets, built with clang, each run briefly from its corpus so a
# regression in a target or its build shows here (long runs: tests/fuzz/).
if command -v clang >/dev/null; then
  echo "== fuzz smoke (clang, libFuzzer)"
  CC=clang cmake -S "$root" -B "$root/build-fuzz" -DDD_WERROR=ON -DDD_FUZZ=ON >/dev/null
  targets="parse estimator vdo-stats vdo-line proc-stat sim-workload node-proc model token report
    estimate predict uri config replay model-summary kube extender"
  # shellcheck disable=SC2046
  cmake --build "$root/build-fuzz" -j"$jobs" --target $(printf 'fuzz-%s ' $targets)
  for t in $targets; do
    work=$(mktemp -d)
    "$root/build-fuzz/tests/fuzz/fuzz-$t" -max_total_time=15 -max_len=65536 \
      "$work" "$root/tests/fuzz/corpus/$t" 2>&1 | tail -n 2
    rm -rf "$work"
  done
fi
# the real dm-vdo end to end in a qemu VM (tests/vm/README.md): once, after
# the other suites; it builds its own guest binaries, so the release build
# directory only hosts the ctest entry. -V prints its figures and timings.
echo "== vm test (real dm-vdo in a qemu VM)"
(cd "$root/build-release" && ctest -V -L vm --timeout 1800)
echo "== all suites passed"
