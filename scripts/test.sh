#!/usr/bin/env bash
# Quick start command (2): install dependencies, then build and run the whole
# test suite twice: a Debug build with ASan+UBSan (no recovery) and a Release
# build, both with warnings as errors; then the threaded tests and the
# daemon's tests under TSan. Also checks formatting and banned functions. CI
# (.ci/run) runs exactly this. One suite alone, for a local check:
#   scripts/test.sh asan|release|tsan|fuzz|vm
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)
only=${1:-}
case "$only" in
  ""|asan|release|tsan|fuzz|vm) ;;
  *) echo "test.sh: unknown suite '$only' (asan, release, tsan, fuzz, vm)" >&2; exit 2 ;;
esac
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

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

want asan && run_suite asan "" -DCMAKE_BUILD_TYPE=Debug -DDD_ASAN=ON
want release && run_suite release "" -DCMAKE_BUILD_TYPE=Release
# ThreadSanitizer: the scanner's threads (reader workers, ordered merge),
# concurrent predictions on one model, and the daemon's threads (sampler,
# HTTP workers, trainer and model swap, report pusher, cluster view,
# estimate jobs; test-csi-publish: the capacity publisher, the estimate
# job follower, the leader and the Kubernetes watch in one process). The daemon tests start dedupd from
# this build, so the daemons run instrumented too. Every process writes its
# reports under tsan-reports/ (a daemon's stderr is its test's log file), and
# any report fails the suite, whatever the test made of the exit status.
if want tsan; then
  reports=$root/build-tsan/tsan-reports
  rm -rf "$reports"
  mkdir -p "$reports"
  chmod 1777 "$reports" # test-daemon runs one dedupd as nobody
  # tests/tsan.supp: uninstrumented libraries only, each with its reason.
  # OMP_NUM_THREADS=1: libgomp (XGBoost's OpenMP) is not built with TSan and
  # synchronises its team with futexes TSan cannot see (GCC PR 55561), so
  # every parallel region it runs on a team of threads, such as loading a
  # stored model, reports races between its own threads. With one thread
  # XGBoost runs on the calling dedupd thread, where its memory operations
  # are still checked against the daemon's other threads.
  status=0
  TSAN_OPTIONS="suppressions=$root/tests/tsan.supp log_path=$reports/tsan second_deadlock_stack=1" \
    OMP_NUM_THREADS=1 \
    run_suite tsan "-R ^(test-scan-files|test-dedupctl|test-http|test-http-client|test-costmodel|test-daemon|test-model|test-cluster|test-push-resolve|test-rightsize-daemon|test-observe|test-csi-publish|test-extender)$" \
    -DCMAKE_BUILD_TYPE=Debug -DDD_TSAN=ON || status=$?
  if compgen -G "$reports/tsan.*" >/dev/null; then
    cat "$reports"/tsan.*
    echo "== ThreadSanitizer reported in: $(cd "$reports" && echo tsan.*)" >&2
    status=1
  fi
  [ "$status" -eq 0 ] || exit "$status"
fi
# libFuzzer targets, built with clang, each run briefly from its corpus so a
# regression in a target or its build shows here (long runs: tests/fuzz/).
# Every target under tests/fuzz/ (fuzz-NAME.c) runs, each from its corpus
# tests/fuzz/corpus/NAME, which must exist. Without clang the suite fails
# under CI=true and is skipped with its reason only outside CI.
if want fuzz && ! command -v clang >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "test.sh: clang is missing: the fuzz suite cannot run (CI=true)" >&2
    exit 1
  fi
  echo "== fuzz smoke SKIPPED: clang is not installed (outside CI only)"
elif want fuzz; then
  echo "== fuzz smoke (clang, libFuzzer)"
  CC=clang cmake -S "$root" -B "$root/build-fuzz" -DDD_WERROR=ON -DDD_FUZZ=ON >/dev/null
  targets=""
  for src in "$root"/tests/fuzz/fuzz-*.c; do
    t=$(basename "$src" .c)
    t=${t#fuzz-}
    [ "$t" = main ] && continue
    if [ ! -d "$root/tests/fuzz/corpus/$t" ]; then
      echo "test.sh: fuzz target $t has no corpus tests/fuzz/corpus/$t" >&2
      exit 1
    fi
    targets="$targets $t"
  done
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
if want vm; then
  echo "== vm test (real dm-vdo in a qemu VM)"
  if [ ! -d "$root/build-release" ]; then # the vm suite alone
    cmake -S "$root" -B "$root/build-release" -DDD_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  (cd "$root/build-release" && ctest -V -L vm --timeout 1800)
fi
if [ -n "$only" ]; then echo "== $only suite passed"; else echo "== all suites passed"; fi
