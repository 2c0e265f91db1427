#!/usr/bin/env bash
# bench/calibrate/calibrate.sh - calibration bench for the cost model's prior.
#
# Measures dedupd-calibrate, a USERSPACE PROXY of VDO's per-4-KiB-block write
# work (zero check, MurmurHash3 x64_128, index lookup/insert, verify,
# refcount, LZ4, pwrite to tmpfs) -- not VDO -- on this machine, across index
# size E, duplicate share u, zero share z, compression and competing CPU load
# from stress-ng, then fits the prior's coefficients and plots the curves:
#   (a) cost vs E in {1,4,16,64,256} Mi        (u=0.5, z=0.05, no load)
#   (b) cost vs u in {0,.1,.3,.5,.7,.9}        (E=16 Mi)
#   (c) cost vs load in {0,25,50,75,100} %     (E=16 Mi, u=0.5)
#   (d) compression off/on at two mixes        (E=16 Mi)
#   (e) a seeded random grid for the fit       (mixing E, u, z, s, c, load)
# Points are run grouped by E (one index build per E, reused by its points).
# Output in OUT: data.jsonl (one JSON line per point, the store's feature
# names), prior-fit.json, cost-vs-index.png, cost-vs-dup.png,
# cost-vs-load.png, fit-vs-measured.png, run.log.
#
# Usage: bench/calibrate/calibrate.sh [--quick] [--out DIR] [--max-entries N] ...
# Every option has an environment variable of the same meaning (see --help).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)

BUILD=${BUILD:-$REPO/build-bench}
CALIBRATE=${CALIBRATE:-}
OUT=${OUT:-}
QUICK=${QUICK:-0}
MAX_ENTRIES=${MAX_ENTRIES:-}
GRID_POINTS=${GRID_POINTS:-}
SEED=${SEED:-1}
SETTLE=${SETTLE:-}
MIN_MIB=${MIN_MIB:-}
MIN_SECONDS=${MIN_SECONDS:-}
STREAM_MIB=${STREAM_MIB:-}
POOL_BLOCKS=${POOL_BLOCKS:-}
WRITE_DIR=${WRITE_DIR:-/dev/shm}
CPU_METHOD=${CPU_METHOD:-int64}
INDEX_MAX_LOAD=${INDEX_MAX_LOAD:-0.75}
HUGEPAGES=${HUGEPAGES:-0}
QUIET_SHARE=${QUIET_SHARE:-0.25}
QUIET_WAIT=${QUIET_WAIT:-}
QUIET_BUDGET=${QUIET_BUDGET:-600}
REBUILD=${REBUILD:-0}
FIT_ONLY=${FIT_ONLY:-0}
NO_PLOT=${NO_PLOT:-0}
ONLY_ENTRIES=${ONLY_ENTRIES:-}

usage() {
    cat <<EOF
Usage: $0 [options]

Measures a userspace proxy of VDO's per-block write work (not VDO) and fits the
cost model's prior to it. Results go to OUT (data.jsonl, prior-fit.json, PNGs).

  --quick             smoke run, under a minute: E up to 4 Mi, few points, short
                      measurements; OUT defaults to BUILD/calibrate-quick (env QUICK=1)
  --out DIR           results directory (env OUT, default $SCRIPT_DIR/results)
  --max-entries N     largest index size, binary suffixes (env MAX_ENTRIES,
                      default 256M; 4M with --quick); the E=16 Mi sweeps use
                      min(16M, N)
  --grid N            random grid points for the fit (env GRID_POINTS, default 40; 6 quick)
  --seed N            grid and stream seed (env SEED, default 1)
  --settle S          seconds between starting stress-ng and measuring (env SETTLE, 1)
  --min-mib N         measure at least N MiB per point (env MIN_MIB, 256)
  --min-seconds S     and at least S seconds (env MIN_SECONDS, 2)
  --stream-mib N      generated stream per pass (env STREAM_MIB, 256)
  --pool-blocks N     real blocks duplicates come from (env POOL_BLOCKS, 64K)
  --write-dir DIR     tmpfs for the write file (env WRITE_DIR, /dev/shm)
  --cpu-method M      stress-ng --cpu-method (env CPU_METHOD, int64)
  --quiet-share F     before each point, wait until the node's CPU busy share over
                      1 s (this bench idle) is at most F (env QUIET_SHARE, 0.25) ...
  --quiet-wait S      ... for at most S seconds, then measure anyway and say so
                      (env QUIET_WAIT, default 120; 0 with --quick; 0 disables);
                      all waits together stop after QUIET_BUDGET s (env, 600)
  --hugepages         MADV_HUGEPAGE on the index (env HUGEPAGES=1; default 4 KiB
                      pages, like UDS's vmalloc'd index)
  --build DIR         build dir (env BUILD, default $REPO/build-bench; a Release build
                      of the dedupd-calibrate target is made there)
  --calibrate PATH    use this binary (env CALIBRATE)
  --rebuild           rebuild even if the binary exists (env REBUILD=1)
  --only-entries L    re-measure only the points of these index sizes (comma list,
                      e.g. 64M,256M) and replace their lines in OUT/data.jsonl, keeping
                      the rest; the same seed gives the same points (env ONLY_ENTRIES)
  --fit-only          no measurements: refit and replot OUT/data.jsonl (env FIT_ONLY=1)
  --no-plot           skip gnuplot (env NO_PLOT=1)
  -h, --help          this text

Other environment: INDEX_MAX_LOAD (index capacity = (E + stream) / this, 0.75).
Tools: cmake, stress-ng (load sweep), python3 (fit), gnuplot (plots). The
script installs nothing; it names the apt-get line for what is missing.
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        --max-entries) MAX_ENTRIES=$2; shift 2 ;;
        --grid) GRID_POINTS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --settle) SETTLE=$2; shift 2 ;;
        --min-mib) MIN_MIB=$2; shift 2 ;;
        --min-seconds) MIN_SECONDS=$2; shift 2 ;;
        --stream-mib) STREAM_MIB=$2; shift 2 ;;
        --pool-blocks) POOL_BLOCKS=$2; shift 2 ;;
        --write-dir) WRITE_DIR=$2; shift 2 ;;
        --cpu-method) CPU_METHOD=$2; shift 2 ;;
        --hugepages) HUGEPAGES=1; shift ;;
        --quiet-share) QUIET_SHARE=$2; shift 2 ;;
        --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        --calibrate) CALIBRATE=$2; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --only-entries) ONLY_ENTRIES=$2; shift 2 ;;
        --fit-only) FIT_ONLY=1; shift ;;
        --no-plot) NO_PLOT=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done

# quick and full defaults
if [ "$QUICK" = 1 ]; then
    : "${MAX_ENTRIES:=4M}" "${GRID_POINTS:=6}" "${SETTLE:=0.3}" "${MIN_MIB:=16}"
    : "${MIN_SECONDS:=0.2}" "${STREAM_MIB:=16}" "${POOL_BLOCKS:=4K}" "${OUT:=$BUILD/calibrate-quick}"
    : "${QUIET_WAIT:=0}"
else
    : "${MAX_ENTRIES:=256M}" "${GRID_POINTS:=40}" "${SETTLE:=1}" "${MIN_MIB:=256}"
    : "${MIN_SECONDS:=2}" "${STREAM_MIB:=256}" "${POOL_BLOCKS:=64K}" "${OUT:=$SCRIPT_DIR/results}"
    : "${QUIET_WAIT:=120}"
fi
for v in GRID_POINTS SEED MIN_MIB STREAM_MIB QUIET_WAIT QUIET_BUDGET; do
    case ${!v} in ''|*[!0-9]*) echo "$v must be a non-negative integer, got '${!v}'" >&2; exit 2 ;; esac
done

log() { printf '%s\n' "$*" | tee -a "$RUNLOG"; }
hdr() { printf '\n== %s\n' "$*" | tee -a "$RUNLOG"; }
have() { command -v "$1" >/dev/null 2>&1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DATA=$OUT/data.jsonl
RUNLOG=$OUT/run.log
FIT=$SCRIPT_DIR/fit.py

# ---------------------------------------------------------------- tools
MISSING_PKGS=()
have stress-ng || MISSING_PKGS+=(stress-ng)
have python3 || MISSING_PKGS+=(python3)
have gnuplot || MISSING_PKGS+=(gnuplot-nox)
if [ "$FIT_ONLY" != 1 ] && [ -z "$CALIBRATE" ] && ! pkg-config --exists libmurmurhash 2>/dev/null; then
    MISSING_PKGS+=(libmurmurhash-dev)
fi
# a measuring run starts a new log; --fit-only appends to the one it refits
# (and --only-entries appends to the log of the run it updates)
[ "$FIT_ONLY" = 1 ] || [ -n "$ONLY_ENTRIES" ] || : >"$RUNLOG"
if [ ${#MISSING_PKGS[@]} -gt 0 ]; then
    log "missing tools; install with:  apt-get install ${MISSING_PKGS[*]}"
fi

# ---------------------------------------------------------------- fit + plots
fit_and_plot() {
    if ! have python3; then log "python3 missing: no fit, no plots (package: python3)"; return 0; fi
    hdr "fit of the prior (bench/calibrate/fit.py)"
    python3 "$FIT" --data "$DATA" --out "$OUT/prior-fit.json" --plot-dir "$OUT/.plot" \
        --meta "bg_loadavg_start=${BG_START:-}" --meta "bg_loadavg_end=${BG_END:-}" \
        --meta "cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)" \
        --meta "nproc=$(nproc)" --meta "kernel=$(uname -r)" \
        --meta "mem_gib=$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)" \
        --meta "stress_ng_cpu_method=$CPU_METHOD" --meta "quick=$QUICK" | tee -a "$RUNLOG"
    if [ "$NO_PLOT" = 1 ]; then return 0; fi
    if ! have gnuplot; then log "gnuplot missing: no plots (apt-get install gnuplot-nox)"; return 0; fi
    gnuplot -e "dir='$OUT/.plot'; out='$OUT'" "$SCRIPT_DIR/plot.gp"
    log "plots: $(cd "$OUT" && printf '%s ' ./*.png)"
}

if [ "$FIT_ONLY" = 1 ]; then
    [ -s "$DATA" ] || { log "no data in $DATA"; exit 1; }
    fit_and_plot
    exit 0
fi

# ---------------------------------------------------------------- binary
if [ -z "$CALIBRATE" ]; then
    CALIBRATE=$BUILD/bench/calibrate/dedupd-calibrate
    if [ ! -x "$CALIBRATE" ] || [ "$REBUILD" = 1 ]; then
        have cmake || { log "cmake missing (apt-get install cmake)"; exit 1; }
        pkg-config --exists libmurmurhash 2>/dev/null || {
            log "libmurmurhash missing (apt-get install libmurmurhash-dev)"; exit 1; }
        if [ ! -f "$BUILD/CMakeCache.txt" ]; then
            log "configuring a Release build in $BUILD"
            cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF >/dev/null
        elif ! grep -q 'dedupd-calibrate' "$BUILD/Makefile" "$BUILD/build.ninja" 2>/dev/null; then
            cmake "$BUILD" >/dev/null   # configured before bench/calibrate existed
        fi
        log "building dedupd-calibrate in $BUILD"
        cmake --build "$BUILD" -j"$(nproc)" --target dedupd-calibrate >/dev/null
    fi
    bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
    [ "$bt" = Release ] || log "WARNING: $BUILD has CMAKE_BUILD_TYPE='$bt', not Release"
fi
[ -x "$CALIBRATE" ] || { log "no dedupd-calibrate at $CALIBRATE"; exit 1; }
"$CALIBRATE" --self-test | tee -a "$RUNLOG"

HAVE_STRESS=1
have stress-ng || { HAVE_STRESS=0; log "stress-ng missing: points with load > 0 are skipped (apt-get install stress-ng)"; }

# ---------------------------------------------------------------- points
to_entries() { numfmt --from=iec "$1"; }
MAXE=$(to_entries "$MAX_ENTRIES")
MI=1048576
ES=()
if [ "$QUICK" = 1 ]; then cand="1 4"; else cand="1 4 16 64 256"; fi
for m in $cand; do [ $((m * MI)) -le "$MAXE" ] && ES+=($((m * MI))); done
[ ${#ES[@]} -gt 0 ] || ES=("$MAXE")
EMID=$((16 * MI)); [ "$EMID" -le "$MAXE" ] || EMID=${ES[-1]}
if [ "$QUICK" = 1 ]; then DUPS="0 0.5 0.9"; LOADS="0 50 100"; else
    DUPS="0 0.1 0.3 0.5 0.7 0.9"; LOADS="0 25 50 75 100"; fi

# one line per point: E sweep u z s c L
POINTS=()
for e in "${ES[@]}"; do POINTS+=("$e index 0.5 0.05 0.5 0 0"); done
for u in $DUPS; do POINTS+=("$EMID dup $u 0.05 0.5 0 0"); done
for l in $LOADS; do POINTS+=("$EMID load 0.5 0.05 0.5 0 $l"); done
for c in 0 1; do
    POINTS+=("$EMID compression 0.5 0.05 0.5 $c 0")
    POINTS+=("$EMID compression 0 0.05 1 $c 0")
done
RANDOM=$SEED
ZS=(0 0.05 0.1 0.2); SS=(0 0.25 0.5 0.75 1); LS=(0 25 50 75 100)
for ((i = 0; i < GRID_POINTS; i++)); do
    e=${ES[RANDOM % ${#ES[@]}]}
    z=${ZS[RANDOM % 4]}
    u=$(awk -v r=$((RANDOM % 19)) -v z="$z" 'BEGIN { u = r * 0.05; if (u + z > 0.95) u = 0.95 - z; printf "%.2f", u }')
    POINTS+=("$e grid $u $z ${SS[RANDOM % 5]} $((RANDOM % 2)) ${LS[RANDOM % 5]}")
done
# grouped by E (stable: sweep order kept within a group), ascending
mapfile -t POINTS < <(printf '%s\n' "${POINTS[@]}" | sort -s -n -k1,1)
# --only-entries: keep the points (and their seeds) of those sizes only
ONLY=()
if [ -n "$ONLY_ENTRIES" ]; then
    for x in ${ONLY_ENTRIES//,/ }; do ONLY+=("$(to_entries "$x")"); done
    [ -s "$DATA" ] || { log "--only-entries needs an existing $DATA to update"; exit 1; }
fi
in_only() { local x; for x in "${ONLY[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }

# ---------------------------------------------------------------- load + cleanup
LOAD_PID=""
CAL_PID=""
start_load() {
    LOAD_PID=""
    [ "$1" = 0 ] && return 0
    stress-ng --cpu "$(nproc)" --cpu-load "$1" --cpu-method "$CPU_METHOD" --timeout 0 -q \
        >/dev/null 2>&1 &
    LOAD_PID=$!
}
stop_load() {
    if [ -n "$LOAD_PID" ]; then
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        wait "$LOAD_PID" 2>/dev/null || true
        LOAD_PID=""
    fi
}
cleanup() {
    local rc=$?
    stop_load
    if [ -n "$CAL_PID" ]; then kill -TERM "$CAL_PID" 2>/dev/null || true; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Node CPU busy share over one second, from /proc/stat's aggregate line
# (busy = user nice system irq softirq steal; total adds idle and iowait).
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
bg_share() {
    local b0 t0 b1 t1
    read -r b0 t0 < <(cpu_ticks); sleep 1; read -r b1 t1 < <(cpu_ticks)
    awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", (t > 0 ? b / t : 0) }'
}
# Waits (at most QUIET_WAIT s) until other work on the node is below
# QUIET_SHARE: contention from other jobs distorts every point, and the load
# sweep most. Sets BG to the last share seen.
WAITED=0
wait_quiet() {
    BG=""
    [ "$QUIET_WAIT" -gt 0 ] || return 0
    local t0=$SECONDS limit=$QUIET_WAIT
    [ $((QUIET_BUDGET - WAITED)) -ge "$limit" ] || limit=$((QUIET_BUDGET - WAITED))
    while :; do
        BG=$(bg_share)
        awk -v x="$BG" -v m="$QUIET_SHARE" 'BEGIN { exit !(x <= m) }' && break
        if [ $((SECONDS - t0)) -ge "$limit" ]; then
            log "# background share $BG > $QUIET_SHARE after waiting $((SECONDS - t0)) s: measuring anyway"
            break
        fi
        sleep 4
    done
    WAITED=$((WAITED + SECONDS - t0))
    [ $((SECONDS - t0)) -le 1 ] || log "# waited $((SECONDS - t0)) s for the background (now $BG)"
}

# ---------------------------------------------------------------- run
T0=$SECONDS
BG_START=$(cut -d' ' -f1-3 /proc/loadavg)
hdr "calibration: ${#POINTS[@]} points, E in {$(printf '%s ' "${ES[@]}" | awk '{for (i = 1; i <= NF; i++) printf "%s%d Mi", (i > 1 ? ", " : ""), $i / 1048576}')}"
log "background load before the run (1/5/15 min): $BG_START; $(nproc) CPUs"
log "per point: >= $MIN_MIB MiB and >= $MIN_SECONDS s, stream $STREAM_MIB MiB, settle $SETTLE s; stress-ng --cpu $(nproc) --cpu-method $CPU_METHOD"
log "before each point: wait up to $QUIET_WAIT s for the node's busy share to be <= $QUIET_SHARE"
: >"$DATA.tmp"
printf '%-11s %6s %5s %5s %5s %2s %4s %5s %6s | %8s %8s %8s %7s\n' sweep E_Mi u z s c L bg L_meas \
    "cost" "MiB/s" "lat_us" "passes" | tee -a "$RUNLOG"

cal_args=(--serve --pool-blocks "$POOL_BLOCKS" --stream-mib "$STREAM_MIB" --ring-mib "$STREAM_MIB"
          --min-mib "$MIN_MIB" --min-seconds "$MIN_SECONDS" --write-dir "$WRITE_DIR"
          --max-load "$INDEX_MAX_LOAD" --seed "$SEED")
[ "$HUGEPAGES" = 1 ] && cal_args+=(--hugepages)

reply() {   # reads one line from the coprocess into REPLY_LINE, or fails
    REPLY_LINE=""
    IFS= read -r -t "$1" REPLY_LINE <&"${CAL[0]}" || { log "dedupd-calibrate did not answer (see $RUNLOG)"; return 1; }
    case $REPLY_LINE in error*) log "dedupd-calibrate: $REPLY_LINE"; return 1 ;; esac
}

n=0; cur_e=""
for p in "${POINTS[@]}" END; do
    read -r e sweep u z s c l <<<"$p"
    if [ -n "$cur_e" ] && [ "$e" != "$cur_e" ]; then
        echo quit >&"${CAL[1]}"; wait "$CAL_PID" || true; CAL_PID=""; cur_e=""
    fi
    [ "$p" = END ] && break
    if [ -z "$cur_e" ] && { [ ${#ONLY[@]} -eq 0 ] || in_only "$e"; }; then
        cur_e=$e
        tb=$SECONDS
        coproc CAL { exec "$CALIBRATE" "${cal_args[@]}" --entries "$e" 2>>"$RUNLOG"; }
        CAL_PID=$!
        reply 1800 || exit 1
        log "# index $((e / MI)) Mi entries ready in $((SECONDS - tb)) s: $REPLY_LINE"
    fi
    n=$((n + 1))
    if [ "$l" != 0 ] && [ "$HAVE_STRESS" = 0 ]; then continue; fi
    if [ ${#ONLY[@]} -gt 0 ] && ! in_only "$e"; then continue; fi
    echo "point dup=$u zero=$z compressible=$s compression=$c load=$l seed=$((SEED * 1000 + n)) sweep=$sweep" >&"${CAL[1]}"
    reply 600 || exit 1
    wait_quiet
    start_load "$l"
    sleep "$SETTLE"
    echo go >&"${CAL[1]}"
    reply 3600 || { stop_load; exit 1; }
    stop_load
    printf '%s\n' "$REPLY_LINE" >>"$DATA.tmp"
    python3 -c '
import json, sys
d = json.loads(sys.argv[1]); f = d["features"]; p = d["point"]
lm = f["node_cpu_util_ex_vdo"]
print("%-11s %6d %5.2f %5.2f %5.2f %2d %4d %5s %6s | %8.3f %8.1f %8.2f %7d" % (d.get("sweep", ""),
      p["index_entries"] // 1048576, p["duplicate_share"], p["zero_share"], p["compressible_share"],
      p["compression"], p["cpu_load"], sys.argv[2] or "-", "-" if lm is None else "%.2f" % lm,
      f["cost"], d["throughput_mib_s"], f["latency"] * 1000, d["counts"]["passes"]))' "$REPLY_LINE" "$BG" 2>/dev/null \
        | tee -a "$RUNLOG" || log "point $n measured (python3 missing: no summary line)"
done
if [ ${#ONLY[@]} -gt 0 ]; then
    # the other sizes' lines first (their time order), then the new ones
    python3 - "$DATA" "$DATA.tmp" "${ONLY[@]}" <<'PY'
import json, sys
data, new, only = sys.argv[1], sys.argv[2], {int(x) for x in sys.argv[3:]}
keep = [l for l in open(data) if l.strip() and json.loads(l)["point"]["index_entries"] not in only]
with open(data + ".merge", "w") as fh:
    fh.writelines(keep + [l for l in open(new) if l.strip()])
PY
    mv "$DATA.merge" "$DATA"; rm -f "$DATA.tmp"
    log "replaced the points of E in {${ONLY_ENTRIES}} in $DATA"
else
    mv "$DATA.tmp" "$DATA"
fi
BG_END=$(cut -d' ' -f1-3 /proc/loadavg)
log "background load after the run (1/5/15 min): $BG_END"
log "measured $(wc -l <"$DATA") points in $((SECONDS - T0)) s (of which $WAITED s waiting for a quiet node) -> $DATA ($(du -h "$DATA" | cut -f1))"

fit_and_plot
