#!/usr/bin/env bash
# bench/estimate.sh - side-by-side benchmark of `dedupctl estimate`.
#
# Measures, in one run and on the same page-cached files:
#   1. estimator throughput / `cat FILE > /dev/null` throughput, exact and sampled
#      (goal >= 0.9 exact, >= 1.0 sampled, 2 cores);
#   2. duperemove hashing the same file vs dedupctl --mode exact (goal >= 10x faster);
#   3. peak RSS of `dedupctl estimate --mode sampled` on a 4 GiB input (goal <= 64 MiB).
# It prints ratios against the goals, not pass/fail verdicts: the machines drift about
# +-20 % between runs, so only compare numbers taken side by side in one run.
#
# Usage: bench/estimate.sh [--build DIR] [--workdir DIR] [--size-gib N] [--reps N]
#                          [--dupe-reps N] [--threads N] [--skip-rss] [--keep] [--rebuild]
# Every option has an environment variable of the same meaning (see --help).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

BUILD=${BUILD:-$REPO/build-bench}
DEDUPCTL=${DEDUPCTL:-}
WORKDIR=${WORKDIR:-}
SIZE_GIB=${SIZE_GIB:-2}
REPS=${REPS:-5}
DUPE_REPS=${DUPE_REPS:-2}
DUPE_BS=${DUPE_BS:-4k}
RSS_GIB=${RSS_GIB:-4}
RSS_REPS=${RSS_REPS:-3}
SKIP_RSS=${SKIP_RSS:-0}
SKIP_DUPEREMOVE=${SKIP_DUPEREMOVE:-0}
THREADS=${THREADS:-2}
DEDUPE_PCT=${DEDUPE_PCT:-50}
WS_PCT=${WS_PCT:-10}
LAYOUTS=${LAYOUTS:-"repeat working_set"}
FIO_EXTRA=${FIO_EXTRA:-}
KEEP=${KEEP:-0}
REBUILD=${REBUILD:-0}

usage() {
    cat <<EOF
Usage: $0 [options]

  --build DIR       build dir holding dedupctl (env BUILD, default $REPO/build-bench;
                    a Release build is made there when dedupctl is missing)
  --dedupctl PATH   use this binary instead (env DEDUPCTL)
  --rebuild         run 'cmake --build' on BUILD even if dedupctl exists (env REBUILD=1)
  --workdir DIR     data directory (env WORKDIR, default a new /var/tmp/dedupd-bench.XXXXXX);
                    an existing data file of the right size there is reused
  --size-gib N      size of the throughput files in GiB (env SIZE_GIB, default 2)
  --reps N          interleaved repetitions of cat/exact/sampled (env REPS, default 5)
  --dupe-reps N     duperemove repetitions, 0 skips it (env DUPE_REPS, default 2)
  --threads N       dedupctl --threads (env THREADS, default 2: the goals are for 2 cores)
  --skip-rss        skip the ${RSS_GIB} GiB peak-RSS part (env SKIP_RSS=1)
  --keep            keep the data files on exit (env KEEP=1)
  -h, --help        this text

Other environment: RSS_GIB (4), RSS_REPS (3), DUPE_BS (duperemove -b, 4k = the
estimator's block size), DEDUPE_PCT (fio --dedupe_percentage, 50), LAYOUTS
("repeat working_set": fio --dedupe_mode of each throughput file; the first one is
also used for duperemove), WS_PCT (--dedupe_working_set_percentage, 10),
FIO_EXTRA (extra fio arguments, e.g. "--buffer_compress_percentage=50").
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift 2 ;;
        --dedupctl) DEDUPCTL=$2; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --size-gib) SIZE_GIB=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --dupe-reps) DUPE_REPS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --skip-rss) SKIP_RSS=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done

for v in SIZE_GIB REPS DUPE_REPS THREADS RSS_GIB RSS_REPS DEDUPE_PCT WS_PCT; do
    case ${!v} in ''|*[!0-9]*) echo "$v must be a non-negative integer, got '${!v}'" >&2; exit 2 ;; esac
done
if [ "$REPS" -lt 1 ] || [ "$SIZE_GIB" -lt 1 ] || [ "$THREADS" -lt 1 ]; then
    echo "REPS, SIZE_GIB and THREADS must be >= 1" >&2; exit 2; fi

T_START=${EPOCHREALTIME:-$(date +%s.%N)}
log() { printf '%s\n' "$*"; }
hdr() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- tools
MISSING_PKGS=()
have() { command -v "$1" >/dev/null 2>&1; }
need_pkg() { MISSING_PKGS+=("$1"); }

HAVE_FIO=1; HAVE_DUPE=1; HAVE_GTIME=1; HAVE_SQLITE=1
have fio || { HAVE_FIO=0; need_pkg fio; }
have duperemove || { HAVE_DUPE=0; need_pkg duperemove; }
if [ ! -x /usr/bin/time ] || ! /usr/bin/time --version 2>&1 | grep -q GNU; then
    HAVE_GTIME=0; need_pkg time
fi
have sqlite3 || { HAVE_SQLITE=0; need_pkg sqlite3; }
if [ ${#MISSING_PKGS[@]} -gt 0 ]; then
    log "missing tools; install with:  apt-get install ${MISSING_PKGS[*]}"
fi
if [ "$HAVE_FIO" = 0 ]; then
    log "fio is required to make the test data (Debian package: fio)"; exit 1
fi
[ "$HAVE_DUPE" = 1 ] || log "duperemove missing: skipping the duperemove comparison (package: duperemove)"
[ "$HAVE_GTIME" = 1 ] || log "GNU time missing: skipping the peak-RSS part (package: time)"
[ "$HAVE_SQLITE" = 1 ] || log "sqlite3 missing: cannot count the blocks in duperemove's hashfile (package: sqlite3)"

# ---------------------------------------------------------------- dedupctl
if [ -z "$DEDUPCTL" ]; then
    if [ ! -x "$BUILD/dedupctl" ] || [ "$REBUILD" = 1 ]; then
        have cmake || { log "cmake missing (apt-get install cmake)"; exit 1; }
        if [ ! -f "$BUILD/CMakeCache.txt" ]; then
            log "configuring a Release build in $BUILD"
            cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF >/dev/null
        fi
        log "building dedupctl in $BUILD"
        cmake --build "$BUILD" -j"$(nproc)" --target dedupctl >/dev/null
    fi
    DEDUPCTL=$BUILD/dedupctl
    bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
    [ "$bt" = Release ] || log "WARNING: $BUILD has CMAKE_BUILD_TYPE='$bt', not Release"
fi
[ -x "$DEDUPCTL" ] || { log "no dedupctl at $DEDUPCTL"; exit 1; }

# ---------------------------------------------------------------- workdir + cleanup
MADE_WORKDIR=0
if [ -z "$WORKDIR" ]; then
    WORKDIR=$(mktemp -d /var/tmp/dedupd-bench.XXXXXX); MADE_WORKDIR=1
else
    mkdir -p "$WORKDIR"
fi
WORKDIR=$(cd "$WORKDIR" && pwd)
CREATED=()          # data files this run made (removed on exit unless KEEP=1)
cleanup() {
    local rc=$?
    rm -f "$WORKDIR"/dupe.db "$WORKDIR"/dupe.db-* "$WORKDIR"/dupe.log \
          "$WORKDIR"/ex.json "$WORKDIR"/sa.json "$WORKDIR"/rss.json "$WORKDIR"/rss.time
    if [ "$KEEP" = 1 ]; then
        log "KEEP=1: data left in $WORKDIR"
    else
        [ ${#CREATED[@]} -gt 0 ] && rm -f "${CREATED[@]}"
        if [ "$MADE_WORKDIR" = 1 ]; then rmdir "$WORKDIR" 2>/dev/null || true; fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_gib=$(( SIZE_GIB * $(wc -w <<<"$LAYOUTS") + ( SKIP_RSS == 1 ? 0 : RSS_GIB ) + 1 ))
avail_kib=$(df -Pk "$WORKDIR" | awk 'NR==2 {print $4}')
if [ "$avail_kib" -lt $(( need_gib * 1024 * 1024 )) ]; then
    log "WARNING: $WORKDIR has $(( avail_kib / 1048576 )) GiB free, this run needs about $need_gib GiB"
fi

# ---------------------------------------------------------------- helpers
now() { if [ -n "${EPOCHREALTIME:-}" ]; then printf '%s' "$EPOCHREALTIME"; else date +%s.%N; fi; }
# elapsed START END -> seconds
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) printf "%.4g\n", v[(NR + 1) / 2]; else printf "%.4g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
# jget FILE KEY -> top-level scalar from dedupctl --json
jget() {
    if have jq; then jq -r --arg k "$2" '.[$k] // "null"' "$1"
    else sed -n "s/^  \"$2\": \\(.*[^,]\\),\\{0,1\\}\$/\\1/p" "$1" | head -n1 | tr -d '"'; fi
}
fsize() { stat -c %s "$1"; }
warm() { cat "$1" >/dev/null; cat "$1" >/dev/null; }
cached() { if have fincore; then fincore -n -o RES "$1" | awk '{print $1}'; else echo "?"; fi; }

# make_data FILE GIB LAYOUT  (fio, 4 KiB writes, known duplicate share)
make_data() {
    local f=$1 gib=$2 layout=$3 want=$(( $2 * 1024 * 1024 * 1024 ))
    if [ -f "$f" ] && [ "$(fsize "$f")" = "$want" ]; then
        log "reusing $f"; return
    fi
    local extra=()
    [ "$layout" = working_set ] && extra=(--dedupe_mode=working_set --dedupe_working_set_percentage="$WS_PCT")
    CREATED+=("$f")
    local t0 t1; t0=$(now)
    # shellcheck disable=SC2086
    fio --name=gen --filename="$f" --rw=write --bs=4k --size="${gib}G" \
        --dedupe_percentage="$DEDUPE_PCT" --refill_buffers "${extra[@]}" \
        --ioengine=psync --end_fsync=1 --output-format=terse $FIO_EXTRA >/dev/null
    t1=$(now)
    log "made $f ($gib GiB, fio dedupe_percentage=$DEDUPE_PCT, layout=$layout${extra:+, working set $WS_PCT %}) in $(calc "$(elapsed "$t0" "$t1")" 1) s"
}

# run_dd MODE FILE OUTJSON -> prints wall seconds
run_dd() {
    local t0 t1
    t0=$(now)
    "$DEDUPCTL" estimate --mode "$1" --threads "$THREADS" --json --no-progress "$2" >"$3"
    t1=$(now)
    elapsed "$t0" "$t1"
}
run_cat() {
    local t0 t1
    t0=$(now); cat "$1" >/dev/null; t1=$(now)
    elapsed "$t0" "$t1"
}

# ---------------------------------------------------------------- header
hdr "setup"
log "dedupctl:   $DEDUPCTL ($(date -r "$DEDUPCTL" '+%F %T'), tree $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"
log "machine:    $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)"
log "tools:      $(fio --version 2>/dev/null), $( [ "$HAVE_DUPE" = 1 ] && duperemove --version 2>&1 | head -n1 || echo 'no duperemove'), $(cat --version | head -n1)"
log "workdir:    $WORKDIR"
log "settings:   SIZE_GIB=$SIZE_GIB REPS=$REPS THREADS=$THREADS DUPE_REPS=$DUPE_REPS DUPE_BS=$DUPE_BS SKIP_RSS=$SKIP_RSS RSS_GIB=$RSS_GIB LAYOUTS='$LAYOUTS'"

# ---------------------------------------------------------------- 1. throughput vs cat
declare -A R_CAT R_EX R_SA R_RATIO_EX R_RATIO_SA R_SAV_EX R_SAV_SA R_INT_EX R_INT_SA R_SRATE
PRIMARY=""
for layout in $LAYOUTS; do
    f=$WORKDIR/data-$layout-${SIZE_GIB}g.bin
    hdr "throughput: $layout layout, ${SIZE_GIB} GiB"
    make_data "$f" "$SIZE_GIB" "$layout"
    [ -n "$PRIMARY" ] || PRIMARY=$f
    bytes=$(fsize "$f")
    warm "$f"
    log "page cache: $(cached "$f") of $bytes bytes resident after 2x cat"
    cats=(); exs=(); sas=(); rex=(); rsa=(); iex=(); isa=()
    printf '%-4s %10s %10s %10s %9s %9s\n' rep cat_GB/s exact_GB/s samp_GB/s ex/cat samp/cat
    for ((i = 1; i <= REPS; i++)); do
        # rotate the order each repetition so no tool always runs first
        case $(( i % 3 )) in
            1) order="cat exact sampled" ;; 2) order="exact sampled cat" ;; 0) order="sampled cat exact" ;;
        esac
        for what in $order; do
            case $what in
                cat) tc=$(run_cat "$f") ;;
                exact) te=$(run_dd exact "$f" "$WORKDIR/ex.json") ;;
                sampled) ts=$(run_dd sampled "$f" "$WORKDIR/sa.json") ;;
            esac
        done
        gc=$(calc "$bytes / $tc / 1e9"); ge=$(calc "$bytes / $te / 1e9"); gs=$(calc "$bytes / $ts / 1e9")
        cats+=("$gc"); exs+=("$ge"); sas+=("$gs")
        rex+=("$(calc "$tc / $te")"); rsa+=("$(calc "$tc / $ts")")
        iex+=("$(calc "$(jget "$WORKDIR/ex.json" bytes_per_second) / 1e9")")
        isa+=("$(calc "$(jget "$WORKDIR/sa.json" bytes_per_second) / 1e9")")
        printf '%-4s %10s %10s %10s %9s %9s\n' "$i" "$gc" "$ge" "$gs" "${rex[-1]}" "${rsa[-1]}"
    done
    for m in exact sampled; do
        j=$WORKDIR/$( [ $m = exact ] && echo ex || echo sa ).json
        [ "$(jget "$j" mode)" = "$m" ] || log "WARNING: dedupctl reported mode $(jget "$j" mode) for --mode $m"
    done
    R_CAT[$layout]=$(median "${cats[@]}"); R_EX[$layout]=$(median "${exs[@]}"); R_SA[$layout]=$(median "${sas[@]}")
    R_RATIO_EX[$layout]=$(median "${rex[@]}"); R_RATIO_SA[$layout]=$(median "${rsa[@]}")
    R_INT_EX[$layout]=$(median "${iex[@]}"); R_INT_SA[$layout]=$(median "${isa[@]}")
    R_SAV_EX[$layout]=$(calc "$(jget "$WORKDIR/ex.json" dedup_savings_percent)" 2)
    R_SAV_SA[$layout]=$(calc "$(jget "$WORKDIR/sa.json" dedup_savings_percent)" 2)
    R_SRATE[$layout]=$(jget "$WORKDIR/sa.json" sampling_rate)
    log "median (wall clock, incl. process start): cat ${R_CAT[$layout]} GB/s, exact ${R_EX[$layout]} GB/s, sampled ${R_SA[$layout]} GB/s"
    log "median of per-rep ratios: exact/cat ${R_RATIO_EX[$layout]} (goal >= 0.9), sampled/cat ${R_RATIO_SA[$layout]} (goal >= 1.0)"
    log "dedupctl's own bytes_per_second (median): exact ${R_INT_EX[$layout]} GB/s, sampled ${R_INT_SA[$layout]} GB/s"
    log "dedup savings: exact ${R_SAV_EX[$layout]} %, sampled ${R_SAV_SA[$layout]} % (sampling_rate ${R_SRATE[$layout]}); fio asked for $DEDUPE_PCT %"
done

# ---------------------------------------------------------------- 2. duperemove
D_STATUS="skipped"
if [ "$HAVE_DUPE" = 1 ] && [ "$DUPE_REPS" -ge 1 ] && [ "$SKIP_DUPEREMOVE" != 1 ]; then
    hdr "duperemove $DUPE_BS blocks vs dedupctl --mode exact, $(basename "$PRIMARY")"
    sync    # duperemove skips data that is not yet on disk (delalloc extents)
    warm "$PRIMARY"
    bytes=$(fsize "$PRIMARY")
    db=$WORKDIR/dupe.db
    dts=(); ets=(); drs=()
    for ((i = 1; i <= DUPE_REPS; i++)); do
        te=$(run_dd exact "$PRIMARY" "$WORKDIR/ex.json")
        rm -f "$db" "$db"-*        # a fresh hashfile, or duperemove reuses the old hashes
        t0=$(now)
        duperemove -q -b "$DUPE_BS" --io-threads="$THREADS" --cpu-threads="$THREADS" \
            --hashfile="$db" "$PRIMARY" >"$WORKDIR/dupe.log" 2>&1 || {
            log "duperemove failed:"; cat "$WORKDIR/dupe.log"; exit 1; }
        t1=$(now)
        td=$(elapsed "$t0" "$t1")
        dts+=("$td"); ets+=("$te"); drs+=("$(calc "$td / $te" 2)")
        log "rep $i: duperemove $(calc "$td" 2) s ($(calc "$bytes / $td / 1e9") GB/s), dedupctl exact $(calc "$te" 3) s, ratio ${drs[-1]}"
    done
    D_TIME=$(median "${dts[@]}"); D_EX_TIME=$(median "${ets[@]}"); D_RATIO=$(median "${drs[@]}")
    D_DD_BLOCKS=$(jget "$WORKDIR/ex.json" blocks_total)
    D_DD_DISTINCT=$(jget "$WORKDIR/ex.json" distinct_blocks)
    if [ "$HAVE_SQLITE" = 1 ]; then
        read -r D_BLOCKS D_DISTINCT D_BSIZE < <(sqlite3 -separator ' ' "$db" \
            "select (select count(*) from hashes), (select count(distinct digest) from hashes),
                    (select keyval from config where keyname='block_size');")
        expect=$(( (bytes + D_BSIZE - 1) / D_BSIZE ))
        if [ "$D_BLOCKS" = "$expect" ]; then
            D_STATUS="hashed whole file"
        else
            D_STATUS="PARTIAL: $D_BLOCKS of $expect blocks"
        fi
        log "duperemove hashfile: $D_BLOCKS blocks of $D_BSIZE bytes ($D_DISTINCT distinct); file has $expect -> $D_STATUS"
    else
        D_BLOCKS="?"; D_DISTINCT="?"; D_STATUS="unverified (no sqlite3)"
        log "sqlite3 missing: cannot verify that duperemove hashed the whole file"
    fi
    log "dedupctl exact: $D_DD_BLOCKS blocks of 4096 bytes ($D_DD_DISTINCT distinct)"
    log "median: duperemove $(calc "$D_TIME" 2) s, dedupctl exact $(calc "$D_EX_TIME" 3) s -> duperemove/dedupctl = $D_RATIO (goal >= 10)"
fi

# ---------------------------------------------------------------- 3. peak RSS
RSS_STATUS="skipped"
if [ "$SKIP_RSS" != 1 ] && [ "$HAVE_GTIME" = 1 ]; then
    hdr "peak RSS: dedupctl --mode sampled, default --max-memory, ${RSS_GIB} GiB"
    f=$WORKDIR/data-rss-${RSS_GIB}g.bin
    make_data "$f" "$RSS_GIB" repeat
    warm "$f"
    log "page cache: $(cached "$f") of $(fsize "$f") bytes resident after 2x cat"
    rss=(); rts=()
    for ((i = 1; i <= RSS_REPS; i++)); do
        /usr/bin/time -f '%M %e' -o "$WORKDIR/rss.time" \
            "$DEDUPCTL" estimate --mode sampled --threads "$THREADS" --json --no-progress "$f" >"$WORKDIR/rss.json"
        read -r kib secs <"$WORKDIR/rss.time"
        rss+=("$(calc "$kib / 1024" 1)"); rts+=("$secs")
        log "rep $i: max RSS $(calc "$kib / 1024" 1) MiB, $secs s, peak_table_bytes $(jget "$WORKDIR/rss.json" peak_table_bytes), sampling_rate $(jget "$WORKDIR/rss.json" sampling_rate)"
    done
    RSS_MIB=$(median "${rss[@]}")
    RSS_MAX=$(printf '%s\n' "${rss[@]}" | sort -g | tail -n1)
    RSS_RATIO=$(calc "$RSS_MAX / 64" 2)
    RSS_TABLE=$(calc "$(jget "$WORKDIR/rss.json" peak_table_bytes) / 1048576" 1)
    RSS_SAV=$(calc "$(jget "$WORKDIR/rss.json" dedup_savings_percent)" 2)
    RSS_STATUS="measured"
    log "peak RSS median $RSS_MIB MiB, max $RSS_MAX MiB -> max/64 MiB = $RSS_RATIO (goal <= 1.0); table $RSS_TABLE MiB; savings $RSS_SAV %"
fi

# ---------------------------------------------------------------- summary
T_END=$(now)
hdr "summary (medians; ratios are side by side in this run)"
printf '%-44s %12s %10s\n' "measure" "value" "goal"
for layout in $LAYOUTS; do
    printf '%-44s %12s %10s\n' "[$layout] cat GB/s" "${R_CAT[$layout]}" ""
    printf '%-44s %12s %10s\n' "[$layout] exact GB/s" "${R_EX[$layout]}" ""
    printf '%-44s %12s %10s\n' "[$layout] sampled GB/s" "${R_SA[$layout]}" ""
    printf '%-44s %12s %10s\n' "[$layout] exact / cat" "${R_RATIO_EX[$layout]}" ">= 0.9"
    printf '%-44s %12s %10s\n' "[$layout] sampled / cat" "${R_RATIO_SA[$layout]}" ">= 1.0"
    printf '%-44s %12s %10s\n' "[$layout] savings % exact / sampled" "${R_SAV_EX[$layout]}/${R_SAV_SA[$layout]}" "~$DEDUPE_PCT"
done
if [ "$D_STATUS" != skipped ]; then
    printf '%-44s %12s %10s\n' "duperemove time / dedupctl exact time" "$D_RATIO" ">= 10"
    printf '%-44s %12s %10s\n' "blocks hashed: duperemove ($DUPE_BS) / dedupctl" "$D_BLOCKS/$D_DD_BLOCKS" ""
    printf '%-44s %12s %10s\n' "distinct: duperemove / dedupctl" "$D_DISTINCT/$D_DD_DISTINCT" ""
    printf '%-44s %12s\n' "duperemove coverage" "$D_STATUS"
else
    printf '%-44s %12s\n' "duperemove comparison" "skipped"
fi
if [ "$RSS_STATUS" = measured ]; then
    printf '%-44s %12s %10s\n' "peak RSS sampled ${RSS_GIB} GiB, MiB (max of $RSS_REPS)" "$RSS_MAX" "<= 64"
    printf '%-44s %12s %10s\n' "peak RSS / 64 MiB" "$RSS_RATIO" "<= 1.0"
else
    printf '%-44s %12s\n' "peak RSS (${RSS_GIB} GiB)" "skipped"
fi
printf '%-44s %12s\n' "threads / REPS / file GiB" "$THREADS/$REPS/$SIZE_GIB"
printf '%-44s %12s\n' "total run time, s" "$(calc "$(elapsed "$T_START" "$T_END")" 1)"
