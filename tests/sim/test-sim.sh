#!/usr/bin/env bash
# dedupd-sim's tests (ctest runs one mode per entry):
#   independence  the truth (sim/truth.{h,c}) includes nothing of placement/,
#                 dedupd/ or the stats simulator, its object names none of
#                 their symbols, and no prior coefficient appears in it
#   args          bad arguments exit 2 naming the argument
#   interface     summary.json carries every key of the fixed interface
#   determinism   the same seed gives the same summary.json (and --jobs
#                 does not change it)
#   null          under the null truth dedupd ties the default within noise
#   experiments   (Release) every experiment at its default size over 5 seeds;
#                 the truth ranks packing I/O (gpu-binpack) below spreading
#   rightsize     --rightsize (the webhook's dd_adm_rewrite) on a small cluster
#                 whose users ask twice what they need: requested/used falls for CPU and memory, OOM kills stay
#                 bounded and each one raises the rerun's memory limit (with a
#                 margin of 1 and no step limit, kills happen and all are fed
#                 back), the runs without right-sizing are the plain runs, and
#                 the same seed gives the same figures
# Usage: test-sim.sh MODE DEDUPD_SIM TRUTH_OBJECT_LIB
set -euo pipefail
mode=$1 sim=$2 lib=${3:-}
src=${DD_SOURCE_DIR:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# mean of a column of results.csv for one policy
mean_of() { # DIR POLICY COLUMN-NAME
  awk -F, -v p="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
    $4 == p { s += $k; n++ } END { if (n) printf "%.6f\n", s / n; else print "nan" }' "$1/results.csv"
}

# mean of a column of rightsize.csv for one policy and setting (on|off)
rs_of() { # DIR POLICY SETTING COLUMN-NAME
  awk -F, -v p="$2" -v w="$3" -v c="$4" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
    $2 == p && $3 == w { s += $k; n++ } END { if (n && k) printf "%.6f\n", s / n; else print "nan" }' "$1/rightsize.csv"
}

case "$mode" in
independence)
  for f in "$src/sim/truth.c" "$src/sim/truth.h"; do
    if grep -nE '#\s*include\s*[<"](placement|dedupd|sim/sim\.h|vdo)/?' "$f"; then
      fail "$f includes placement/, dedupd/ or the stats simulator"
    fi
    grep -q 'include "sim/sim.h"' "$f" && fail "$f includes the simulator's own header"
  done
  # the truth's object: no symbol of the cost model, the scorer, the
  # features' what-if or the VDO stats simulator, defined or used
  syms=$(nm "$lib")
  if echo "$syms" | grep -E '\b(dd_cm_|dd_score|dd_features_|dd_what_if|dd_vdo_sim|dd_sim_model|dd_placer|dd_ledger)'; then
    fail "the truth's object names placement or stats-simulator symbols"
  fi
  echo "$syms" | grep -q 'T sim_truth_eval' || fail "sim_truth_eval not found in $lib"
  # no coefficient of the prior (placement/costmodel.c dd_cm_prior_defaults)
  coeffs=$(sed -n '/dd_cm_prior_defaults/,/^}/p' "$src/placement/costmodel.c" |
    grep -oE '[0-9]+\.[0-9]+' | sort -u)
  [ -n "$coeffs" ] || fail "could not read the prior's coefficients"
  for c in $coeffs; do
    case "$c" in 0.0|1.0) continue ;; esac
    if grep -nE "(^|[^0-9.])$c([^0-9]|$)" "$src/sim/truth.c" "$src/sim/truth.json"; then
      fail "the prior's coefficient $c appears in the truth"
    fi
  done
  echo "independence: ok"
  ;;
args)
  check() { # EXPECTED-ARG-IN-MESSAGE ARGS...
    local want=$1; shift
    set +e
    "$sim" "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "'$*' exited $rc, want 2"
    grep -q -- "$want" "$work/err" || fail "'$*': message does not name $want: $(cat "$work/err")"
  }
  check --experiment --out "$work/o"
  check --experiment --experiment bogus --out "$work/o"
  check --out --experiment completion
  check --seed --experiment completion --seed x --out "$work/o"
  check --seeds --experiment completion --seeds 0 --out "$work/o"
  check --nodes --experiment completion --nodes 0 --pods 10 --out "$work/o"
  check --pods --experiment completion --nodes 10 --out "$work/o"
  check --nodes --experiment completion --pods 10 --out "$work/o"
  check --truth --experiment completion --truth bogus --out "$work/o"
  check --truth-file --experiment completion --truth-file "$work/none.json" --out "$work/o"
  echo '{"variants": {"default": {"burst_cv": "x"}}}' >"$work/bad.json"
  check --truth-file --experiment completion --truth-file "$work/bad.json" --out "$work/o"
  check --policies --experiment completion --policies default,bogus --out "$work/o"
  check --jobs --experiment completion --jobs 0 --out "$work/o"
  check --frobnicate --experiment completion --frobnicate --out "$work/o"
  check --request-inflation --experiment completion --request-inflation 9 --out "$work/o"
  check --rightsize-margin --experiment completion --rightsize --rightsize-margin 0.5 --out "$work/o"
  check --rightsize-every --experiment completion --rightsize --rightsize-every x --out "$work/o"
  check --rightsize-max-down --experiment completion --rightsize --rightsize-max-down 0 --out "$work/o"
  check "need --rightsize" --experiment completion --rightsize-margin 1.5 --out "$work/o"
  echo "args: ok"
  ;;
interface)
  for ex in completion gpu-curve io-load dedup scale; do
    "$sim" --experiment "$ex" --seed 3 --nodes 8 --pods 24 --quiet --out "$work/$ex"
    j="$work/$ex/summary.json"
    for k in experiment seed nodes pods truth policies; do
      grep -q "^  \"$k\":" "$j" || fail "$ex: summary.json lacks $k"
    done
    grep -q "\"experiment\": \"$ex\"" "$j" || fail "$ex: experiment not named"
    for p in default gpu-binpack capacity target-load dedupd dedupd-no-ledger dedupd-stale oracle; do
      grep -q "^    \"$p\": {" "$j" || fail "$ex: summary.json lacks policy $p"
    done
    for m in makespan_s mean_completion_s p95_completion_s gpu_idle_fraction; do
      n=$(grep -c "^      \"$m\": [0-9]" "$j" || true)
      [ "$n" -ge 8 ] || fail "$ex: $m present for $n policies, want 8"
    done
    for f in results.csv table.md; do [ -s "$work/$ex/$f" ] || fail "$ex: no $f"; done
  done
  echo "interface: ok"
  ;;
determinism)
  "$sim" --experiment completion --seed 7 --nodes 12 --pods 60 --quiet --jobs 1 --out "$work/a"
  "$sim" --experiment completion --seed 7 --nodes 12 --pods 60 --quiet --jobs 2 --out "$work/b"
  cmp "$work/a/summary.json" "$work/b/summary.json" || fail "same seed, different summary.json"
  "$sim" --experiment completion --seed 8 --nodes 12 --pods 60 --quiet --out "$work/c"
  if cmp -s "$work/a/summary.json" "$work/c/summary.json"; then fail "seed 8 gave seed 7's summary"; fi
  echo "determinism: ok"
  ;;
null)
  "$sim" --experiment completion --truth null --seeds 3 --nodes 16 --pods 160 --quiet \
    --policies default,dedupd,oracle --out "$work/n"
  d=$(mean_of "$work/n" default mean_completion_s)
  x=$(mean_of "$work/n" dedupd mean_completion_s)
  s=$(mean_of "$work/n" dedupd mean_run_stretch)
  echo "null truth: default $d s, dedupd $x s, dedupd run stretch $s"
  awk -v s="$s" 'BEGIN { exit !(s < 1e-9) }' || fail "null truth stretched runs ($s)"
  # within noise: the seeds' completion spread is several %; 5 % bounds it
  awk -v d="$d" -v x="$x" 'BEGIN { r = (x - d) / d; exit !(r < 0.05 && r > -0.05) }' ||
    fail "null truth: dedupd $x s vs default $d s, more than 5 % apart"
  echo "null: ok"
  ;;
experiments)
  for ex in completion gpu-curve io-load dedup; do
    "$sim" --experiment "$ex" --seeds 5 --quiet --out "$work/$ex"
  done
  d=$(mean_of "$work/completion" default mean_run_stretch)
  b=$(mean_of "$work/completion" gpu-binpack mean_run_stretch)
  echo "run stretch: default $d, gpu-binpack $b"
  awk -v d="$d" -v b="$b" 'BEGIN { exit !(b > d) }' ||
    fail "packing the GPUs (and their I/O) did not stretch runs more than spreading them"
  # the cost model trained from the reports beats the prior against the truth
  grep -q '"served_mape_cost_percent"' "$work/completion/summary.json" || fail "no cost model figures"
  echo "experiments: ok"
  ;;
rightsize)
  common=(--experiment completion --nodes 8 --pods 120 --request-inflation 2 --quiet
    --policies default,dedupd)
  for seed in 2 3; do
    "$sim" "${common[@]}" --seed "$seed" --rightsize --out "$work/r$seed"
    "$sim" "${common[@]}" --seed "$seed" --out "$work/p$seed"
    # the runs without right-sizing are the plain runs (wall_s, the last column, aside)
    cmp <(sed 's/,[^,]*$//' "$work/r$seed/results.csv") <(sed 's/,[^,]*$//' "$work/p$seed/results.csv") ||
      fail "seed $seed: --rightsize changed the runs without it"
    grep -q '"rightsize": {' "$work/r$seed/summary.json" || fail "summary.json lacks rightsize"
    grep -q '"packing": {' "$work/p$seed/summary.json" || fail "summary.json lacks packing"
    grep -q '^### Right-sizing' "$work/r$seed/table.md" || fail "table.md lacks the right-sizing table"
    for p in default dedupd; do
      for k in cpu_requested_over_used memory_requested_over_used; do
        off=$(rs_of "$work/r$seed" "$p" off "$k") on=$(rs_of "$work/r$seed" "$p" on "$k")
        echo "seed $seed $p $k: $off without, $on with right-sizing"
        awk -v a="$off" -v b="$on" 'BEGIN { exit !(a > 2 && b < 0.95 * a) }' ||
          fail "seed $seed $p: $k did not fall ($off -> $on)"
      done
      kills=$(rs_of "$work/r$seed" "$p" on oom_kills)
      raised=$(rs_of "$work/r$seed" "$p" on oom_kills_memory_raised)
      failed=$(rs_of "$work/r$seed" "$p" on failed_pods)
      rewritten=$(rs_of "$work/r$seed" "$p" on rightsize_rewritten)
      echo "seed $seed $p: $rewritten pods rewritten, $kills OOM kills ($raised raised), $failed failed"
      awk -v r="$rewritten" 'BEGIN { exit !(r >= 12) }' || fail "seed $seed $p: $rewritten rewrites"
      # bounded: at most a tenth of the pods, every kill fed back
      awk -v k="$kills" -v r="$raised" -v f="$failed" 'BEGIN { exit !(k <= 12 && r == k && f == 0) }' ||
        fail "seed $seed $p: $kills OOM kills, $raised raised, $failed failed"
    done
  done
  # no margin and no step limit: kills happen, each raises the next limit
  "$sim" "${common[@]}" --seed 2 --rightsize --rightsize-margin 1 --rightsize-max-down 0.05 \
    --out "$work/k"
  for p in default dedupd; do
    kills=$(rs_of "$work/k" "$p" on oom_kills) raised=$(rs_of "$work/k" "$p" on oom_kills_memory_raised)
    echo "margin 1, $p: $kills OOM kills, $raised raised"
    awk -v k="$kills" -v r="$raised" 'BEGIN { exit !(k > 0 && r == k) }' ||
      fail "margin 1, $p: $kills OOM kills, $raised raised (want > 0, all raised)"
  done
  # deterministic for a seed, whatever --jobs
  "$sim" "${common[@]}" --seed 2 --rightsize --jobs 1 --out "$work/d"
  cmp "$work/r2/summary.json" "$work/d/summary.json" || fail "same seed, different right-sizing figures"
  cmp "$work/r2/rightsize.csv" "$work/d/rightsize.csv" || fail "same seed, different rightsize.csv"
  echo "rightsize: ok"
  ;;
*) fail "unknown mode $mode" ;;
esac
