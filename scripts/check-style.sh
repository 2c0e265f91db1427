#!/usr/bin/env bash
# clang-format is applied to every C file, and the functions STYLE.md bans
# (sprintf, strcpy, strcat, strtok, atoi, atol, gets) are not used.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
bad=0
if command -v clang-format >/dev/null; then
  for f in $files; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
      echo "not clang-formatted: $f (run: clang-format -i $f)"; bad=1
    fi
  done
else
  echo "check-style: clang-format not installed; format check skipped" >&2
fi
if grep -nE '\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|strtok)\s*\(' $files; then
  echo "banned functions used (see STYLE.md section 8)"; bad=1
fi
exit $bad
