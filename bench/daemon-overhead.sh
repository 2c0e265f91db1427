#!/usr/bin/env bash
# bench/daemon-overhead.sh - what dedupd costs a node, beside prometheus-node-exporter.
#
# Measures, in one run on the same machine:
#   1. dedupd sampling VOLUMES (16) replayed VDO volumes (`dedupctl vdo-sim`, `--source
#      replay:DIR`) every INTERVAL (10 s) for DURATION (600 s): CPU % of one core and
#      peak RSS (goal <= 0.5 % and <= 40 MiB), next to prometheus-node-exporter (default
#      collectors) running side by side for the same window; both are scraped once per
#      INTERVAL on /metrics, as Prometheus would;
#   2. wrk req/s and p99 latency on dedupd's /v1/volumes and /metrics, and on
#      node-exporter's /metrics as the baseline.
# It prints figures and ratios (dedupd / node-exporter, dedupd / goal), not pass/fail
# verdicts: only compare numbers taken side by side in one run.
#
# Usage: bench/daemon-overhead.sh [--build DIR] [--duration S] [--interval S] [--volumes N]
#                                 [--wrk-seconds S] [--wrk-connections N] [--workdir DIR] [--keep]
# Every option has an environment variable of the same meaning (see --help).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

BUILD=${BUILD:-$REPO/build-bench}
DEDUPD=${DEDUPD:-}
DEDUPCTL=${DEDUPCTL:-}
NODE_EXPORTER=${NODE_EXPORTER:-prometheus-node-exporter}
WORKDIR=${WORKDIR:-}
DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-10}
WARMUP=${WARMUP:-}
VOLUMES=${VOLUMES:-16}
WRK_SECONDS=${WRK_SECONDS:-15}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
SEED=${SEED:-1}
PORT=${PORT:-}
NE_PORT=${NE_PORT:-}
KEEP=${KEEP:-0}
# extra dedupd flags, word-split (e.g. "--role node --placement-url http://...
# --node-name bench" to measure a node role that pushes reports)
DEDUPD_ARGS=${DEDUPD_ARGS:-}
REBUILD=${REBUILD:-0}

GOAL_CPU_PCT=0.5
GOAL_RSS_MIB=40

usage() {
    cat <<EOF
Usage: $0 [options]

  --build DIR            build dir holding dedupd and dedupctl (env BUILD, default
                         $REPO/build-bench; a Release build of both is made there when
                         either is missing)
  --dedupd PATH          use this dedupd instead (env DEDUPD)
  --dedupctl PATH        use this dedupctl instead (env DEDUPCTL)
  --rebuild              run 'cmake --build' on BUILD even if both exist (env REBUILD=1)
  --duration S           measured window, seconds (env DURATION, default 600)
  --interval S           dedupd --interval, replay interval and scrape period
                         (env INTERVAL, default 10)
  --warmup S             seconds after both are ready before the window opens
                         (env WARMUP, default one INTERVAL)
  --volumes N            replayed VDO volumes, 1..64 (env VOLUMES, default 16)
  --wrk-seconds S        wrk -d per URL, 0 skips wrk (env WRK_SECONDS, default 15)
  --wrk-connections N    wrk -c (env WRK_CONNECTIONS, default 32)
  --workdir DIR          replay, store and logs (env WORKDIR, default a new
                         /var/tmp/dedupd-overhead.XXXXXX)
  --keep                 keep the work dir on exit (env KEEP=1)
  -h, --help             this text

Other environment: WRK_THREADS (wrk -t, 2), SEED (vdo-sim --seed, 1), PORT and
NE_PORT (dedupd's and node-exporter's loopback ports; default: free ones),
NODE_EXPORTER (the node-exporter binary, default prometheus-node-exporter).
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
        --build) BUILD=$2; shift 2 ;;
        --dedupd) DEDUPD=$2; shift 2 ;;
        --dedupctl) DEDUPCTL=$2; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --duration) DURATION=$2; shift 2 ;;
        --interval) INTERVAL=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --volumes) VOLUMES=$2; shift 2 ;;
        --wrk-seconds) WRK_SECONDS=$2; shift 2 ;;
        --wrk-connections) WRK_CONNECTIONS=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done

WARMUP=${WARMUP:-$INTERVAL}
for v in DURATION INTERVAL WARMUP VOLUMES WRK_SECONDS WRK_CONNECTIONS WRK_THREADS SEED; do
    case ${!v} in ''|*[!0-9]*) echo "$v must be a non-negative integer, got '${!v}'" >&2; exit 2 ;; esac
done
for v in PORT NE_PORT; do
    case ${!v} in *[!0-9]*) echo "$v must be a port number, got '${!v}'" >&2; exit 2 ;; esac
done
if [ "$DURATION" -lt 1 ] || [ "$INTERVAL" -lt 1 ] || [ "$VOLUMES" -lt 1 ] || [ "$VOLUMES" -gt 64 ] \
   || [ "$WRK_CONNECTIONS" -lt 1 ] || [ "$WRK_THREADS" -lt 1 ]; then
    echo "DURATION, INTERVAL, WRK_CONNECTIONS and WRK_THREADS must be >= 1, VOLUMES 1..64" >&2; exit 2
fi
if [ "$WRK_CONNECTIONS" -lt "$WRK_THREADS" ]; then
    echo "WRK_CONNECTIONS must be >= WRK_THREADS (wrk needs a connection per thread)" >&2; exit 2
fi

log() { printf '%s\n' "$*"; }
hdr() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- tools
MISSING_PKGS=()
have() { command -v "$1" >/dev/null 2>&1; }
HAVE_WRK=1; HAVE_NE=1
have curl || MISSING_PKGS+=(curl)
have "$NODE_EXPORTER" || { HAVE_NE=0; MISSING_PKGS+=(prometheus-node-exporter); }
if [ "$WRK_SECONDS" -gt 0 ] && ! have wrk; then HAVE_WRK=0; MISSING_PKGS+=(wrk); fi
if [ ${#MISSING_PKGS[@]} -gt 0 ]; then
    log "missing tools; install with:  apt-get install ${MISSING_PKGS[*]}"
fi
have curl || { log "curl is required to scrape the daemons (Debian package: curl)"; exit 1; }
[ "$HAVE_NE" = 1 ] || log "prometheus-node-exporter missing: dedupd is measured without its baseline"
[ "$HAVE_WRK" = 1 ] || log "wrk missing: skipping the request-rate part (package: wrk)"
[ "$WRK_SECONDS" -gt 0 ] || HAVE_WRK=0

# ---------------------------------------------------------------- dedupd + dedupctl
if [ -z "$DEDUPD" ] || [ -z "$DEDUPCTL" ]; then
    if [ ! -x "$BUILD/dedupd" ] || [ ! -x "$BUILD/dedupctl" ] || [ "$REBUILD" = 1 ]; then
        have cmake || { log "cmake missing (apt-get install cmake)"; exit 1; }
        if [ ! -f "$BUILD/CMakeCache.txt" ]; then
            log "configuring a Release build in $BUILD"
            cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDD_BUILD_TESTS=OFF >/dev/null
        fi
        log "building dedupd and dedupctl in $BUILD"
        cmake --build "$BUILD" -j"$(nproc)" --target dedupd dedupctl >/dev/null
    fi
    bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
    [ "$bt" = Release ] || log "WARNING: $BUILD has CMAKE_BUILD_TYPE='$bt', not Release"
    DEDUPD=${DEDUPD:-$BUILD/dedupd}
    DEDUPCTL=${DEDUPCTL:-$BUILD/dedupctl}
fi
[ -x "$DEDUPD" ] || { log "no dedupd at $DEDUPD"; exit 1; }
[ -x "$DEDUPCTL" ] || { log "no dedupctl at $DEDUPCTL"; exit 1; }

# ---------------------------------------------------------------- workdir + cleanup
MADE_WORKDIR=0
if [ -z "$WORKDIR" ]; then
    WORKDIR=$(mktemp -d /var/tmp/dedupd-overhead.XXXXXX); MADE_WORKDIR=1
else
    mkdir -p "$WORKDIR"
    for p in replay data; do
        [ ! -e "$WORKDIR/$p" ] || { log "$WORKDIR/$p exists; use an empty WORKDIR"; exit 1; }
    done
fi
WORKDIR=$(cd "$WORKDIR" && pwd)
DD_PID=""; NE_PID=""

# stop PID: SIGTERM, up to 10 s, then SIGKILL; sets STOP_RC to its exit status
# (not in a command substitution: only this shell can wait for its children)
STOP_RC=""
stop() {
    local pid=$1 i
    STOP_RC=0
    if kill -TERM "$pid" 2>/dev/null; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    wait "$pid" 2>/dev/null || STOP_RC=$?
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -z "$DD_PID" ] || stop "$DD_PID"
    [ -z "$NE_PID" ] || stop "$NE_PID"
    if [ "$KEEP" = 1 ]; then
        log "KEEP=1: replay, store and logs left in $WORKDIR"
    elif [ "$MADE_WORKDIR" = 1 ]; then
        rm -rf "$WORKDIR"
    else
        rm -rf "$WORKDIR"/replay "$WORKDIR"/data "$WORKDIR"/workload.json "$WORKDIR"/*.log \
               "$WORKDIR"/scrape.* "$WORKDIR"/rss.tsv "$WORKDIR"/wrk-*.txt
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
now() { if [ -n "${EPOCHREALTIME:-}" ]; then printf '%s' "$EPOCHREALTIME"; else date +%s.%N; fi; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
CLK_TCK=$(getconf CLK_TCK)
# ticks PID -> utime + stime of the whole process (all threads), in clock ticks
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# status_kib PID FIELD -> VmRSS / VmHWM in KiB
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
threads() { awk '$1 == "Threads:" { print $2 }' "/proc/$1/status"; }
# busy_ticks -> "busy total" jiffies of the whole machine from /proc/stat
busy_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
# port_free P: nothing accepts connections on 127.0.0.1:P
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p avoid=${1:-0} i
    for ((i = 0; i < 200; i++)); do
        p=$(( 20000 + RANDOM % 30000 ))
        [ "$p" != "$avoid" ] && port_free "$p" && { echo "$p"; return; }
    done
    log "no free port found" >&2; return 1
}
# wait_http URL SECONDS PID: until URL answers 200 (or PID dies / time runs out)
wait_http() {
    local url=$1 deadline=$(( SECONDS + $2 )) pid=$3
    while [ $SECONDS -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" = 200 ] && return 0
        sleep 0.2
    done
    return 1
}
# scrape NAME URL: one GET, appends "code bytes seconds" to scrape.NAME
scrape() {
    curl -s -o /dev/null --max-time "$INTERVAL" -w '%{http_code} %{size_download} %{time_total}\n' "$2" \
        >>"$WORKDIR/scrape.$1" 2>/dev/null || echo "000 0 0" >>"$WORKDIR/scrape.$1"
}
# scrape_summary NAME -> "n ok median_bytes median_ms max_ms"
scrape_summary() {
    sort -k3,3g "$WORKDIR/scrape.$1" | awk '{ n++; if ($1 == 200) ok++; b[n] = $2; t[n] = $3 * 1000 }
        END { if (n == 0) { print "0 0 - - -"; exit }
              m = int((n + 1) / 2); printf "%d %d %d %.2f %.2f\n", n, ok, b[m], t[m], t[n] }'
}
# wrk_run URL OUT -> "req_per_s p99_ms non2xx errors"
wrk_run() {
    wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --timeout 10s --latency "$1" >"$2" 2>&1 || true
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
                         if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
        $1 == "Requests/sec:" { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
        END { printf "%s %s %d %d\n", (rps == "" ? "nan" : rps), (p99 == "" ? "nan" : sprintf("%.2f", p99)), bad, err }' "$2"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "-"; else printf "%.2f\n", a / b }'; }

# ---------------------------------------------------------------- header
hdr "setup"
log "dedupd:     $DEDUPD ($(date -r "$DEDUPD" '+%F %T'), tree $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"
[ "$HAVE_NE" = 0 ] || log "baseline:   $("$NODE_EXPORTER" --version 2>&1 | head -n1), default collectors"
log "machine:    $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), load $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$HAVE_WRK" = 0 ] || log "wrk:        $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)"
log "workdir:    $WORKDIR"
log "settings:   VOLUMES=$VOLUMES DURATION=${DURATION}s INTERVAL=${INTERVAL}s WARMUP=${WARMUP}s WRK_SECONDS=$WRK_SECONDS WRK_CONNECTIONS=$WRK_CONNECTIONS WRK_THREADS=$WRK_THREADS SEED=$SEED"

# ---------------------------------------------------------------- replay
# Enough snapshots for the warm-up, the window and the wrk part, plus a few; past the
# last one the replay repeats it, which would make every rate 0.
INTERVALS=$(( (WARMUP + DURATION + 3 * WRK_SECONDS + 60) / INTERVAL + 5 ))
[ "$INTERVALS" -le 9998 ] || { log "DURATION/INTERVAL needs $INTERVALS snapshots, vdo-sim makes at most 9998"; exit 1; }
hdr "replay: $VOLUMES volumes, $INTERVALS intervals of ${INTERVAL}s"
NAMES=(pg-data kafka.logs vm-images ci_cache mail+archive home-dirs es-index backup.daily
       git-lfs mysql-01 object.store scratch_tmp redis-aof build.artifacts media-raw etcd-wal)
{
    printf '{"node": {"cpus": %d},\n "volumes": [\n' "$(nproc)"
    for ((i = 0; i < VOLUMES; i++)); do
        name=${NAMES[i % 16]}; [ "$i" -lt 16 ] || name=$name-$(( i / 16 ))
        # varied, deterministic: rates 2..~320 MB/s, shares 0..0.8, a few with compression
        w=$(( 2 + (i * 37 % 17) * (i % 4 + 1) * 5 )); r=$(( (i * 53 % 11) * 12 ))
        dup=$(calc "($i * 7 % 9) / 10" 2); zero=$(calc "($i % 3) * 0.04" 2)
        comp=$([ $(( i % 3 )) = 1 ] && echo true || echo false); cs=$(calc "($i * 5 % 7) / 10" 2)
        printf '  {"name": "%s", "write_mbps": %d, "read_mbps": %d, "duplicate_share": %s, "zero_share": %s,\n' \
            "$name" "$w" "$r" "$dup" "$zero"
        printf '   "compressible_share": %s, "compression": %s, "cpu_load": %s, "index_entries": %d, "stored_gib": %d}%s\n' \
            "$cs" "$comp" "$(calc "0.4 / $VOLUMES" 4)" $(( (i + 1) * 3000000 )) $(( 20 + i * 45 )) \
            "$(if [ $(( i + 1 )) -lt "$VOLUMES" ]; then echo ,; fi)"
    done
    # halfway, the first volumes change pace and one turns compression on
    printf ' ],\n "phases": [{"at_interval": %d, "volumes": {' $(( INTERVALS / 2 ))
    printf '"%s": {"write_mbps": 5, "cpu_load": 0.2}' "${NAMES[0]}"
    [ "$VOLUMES" -lt 2 ] || printf ', "%s": {"write_mbps": 150, "compression": true, "compressible_share": 0.5}' "${NAMES[1]}"
    printf '}}]}\n'
} >"$WORKDIR/workload.json"
t0=$(now)
"$DEDUPCTL" vdo-sim --workload "$WORKDIR/workload.json" --intervals "$INTERVALS" \
    --interval-seconds "$INTERVAL" --seed "$SEED" --out "$WORKDIR/replay" >"$WORKDIR/vdo-sim.log" 2>&1 \
    || { cat "$WORKDIR/vdo-sim.log"; log "vdo-sim failed (workload: $WORKDIR/workload.json)"; KEEP=1; exit 1; }
log "made $WORKDIR/replay in $(calc "$(now) - $t0" 1) s ($(du -sh "$WORKDIR/replay" | cut -f1), workload $WORKDIR/workload.json)"

# ---------------------------------------------------------------- start both
hdr "start"
PORT=${PORT:-$(free_port)}
NE_PORT=${NE_PORT:-$(free_port "$PORT")}
DD_URL=http://127.0.0.1:$PORT; NE_URL=http://127.0.0.1:$NE_PORT
# shellcheck disable=SC2086 # DEDUPD_ARGS is a list of flags
"$DEDUPD" --listen "127.0.0.1:$PORT" --data-dir "$WORKDIR/data" --source "replay:$WORKDIR/replay" \
    --interval "$INTERVAL" $DEDUPD_ARGS >"$WORKDIR/dedupd.log" 2>&1 &
DD_PID=$!
if [ "$HAVE_NE" = 1 ]; then
    "$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" >"$WORKDIR/node-exporter.log" 2>&1 &
    NE_PID=$!
fi
if ! wait_http "$DD_URL/readyz" $(( 3 * INTERVAL + 30 )) "$DD_PID"; then
    tail -n 20 "$WORKDIR/dedupd.log"; log "dedupd did not become ready on $DD_URL"; KEEP=1; exit 1
fi
log "dedupd ready on $DD_URL (pid $DD_PID)"
if [ "$HAVE_NE" = 1 ]; then
    if ! wait_http "$NE_URL/metrics" 30 "$NE_PID"; then
        tail -n 20 "$WORKDIR/node-exporter.log"; log "node-exporter did not answer on $NE_URL"; KEEP=1; exit 1
    fi
    log "node-exporter ready on $NE_URL (pid $NE_PID)"
fi
PIDS=("$DD_PID"); [ -z "$NE_PID" ] || PIDS+=("$NE_PID")

# ---------------------------------------------------------------- 1. overhead window
# One tick per INTERVAL on an absolute schedule: scrape both /metrics once and note RSS.
# The warm-up ticks are scraped too (so caches are warm) but fall outside the window.
hdr "overhead: ${DURATION}s window after ${WARMUP}s warm-up, one /metrics scrape each per ${INTERVAL}s"
tick() {
    scrape dedupd "$DD_URL/metrics"
    [ -z "$NE_PID" ] || scrape ne "$NE_URL/metrics"
    printf '%s %s %s\n' "$(now)" "$(status_kib "$DD_PID" VmRSS)" \
        "$(if [ -z "$NE_PID" ]; then echo -; else status_kib "$NE_PID" VmRSS; fi)" >>"$WORKDIR/rss.tsv"
}
sleep_until() {
    local d; d=$(calc "$1 - $(now)" 3)
    if awk -v d="$d" 'BEGIN { exit !(d > 0) }'; then sleep "$d"; fi
}
T_BEGIN=$(now)
for ((k = 0; k * INTERVAL < WARMUP; k++)); do
    tick; sleep_until "$(calc "$T_BEGIN + ($k + 1) * $INTERVAL")"
done
sleep_until "$(calc "$T_BEGIN + $WARMUP")"
: >"$WORKDIR/scrape.dedupd"; : >"$WORKDIR/scrape.ne"; : >"$WORKDIR/rss.tsv"
declare -A TICKS0 TICKS1 HWM RSS0 RSS1 THR
for p in "${PIDS[@]}"; do TICKS0[$p]=$(ticks "$p"); RSS0[$p]=$(status_kib "$p" VmRSS); done
read -r BUSY0 TOTAL0 < <(busy_ticks)
W0=$(now)
for ((k = 0; k * INTERVAL < DURATION; k++)); do
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || { log "pid $p exited during the window"; tail -n 20 "$WORKDIR"/*.log; KEEP=1; exit 1; }
    done
    tick
    sleep_until "$(calc "$W0 + ($k + 1) * $INTERVAL")"
    [ $(( (k + 1) % (60 / INTERVAL > 0 ? 60 / INTERVAL : 1) )) != 0 ] || \
        log "  $(( (k + 1) * INTERVAL ))s: dedupd RSS $(status_kib "$DD_PID" VmRSS) KiB${NE_PID:+, node-exporter RSS $(status_kib "$NE_PID" VmRSS) KiB}"
done
sleep_until "$(calc "$W0 + $DURATION")"
for p in "${PIDS[@]}"; do
    TICKS1[$p]=$(ticks "$p"); HWM[$p]=$(status_kib "$p" VmHWM); RSS1[$p]=$(status_kib "$p" VmRSS); THR[$p]=$(threads "$p")
done
W1=$(now)
read -r BUSY1 TOTAL1 < <(busy_ticks)
WALL=$(calc "$W1 - $W0" 3)
MACHINE_BUSY=$(calc "100 * ($BUSY1 - $BUSY0) / ($TOTAL1 - $TOTAL0)" 1)

cpu_pct() { calc "100 * (${TICKS1[$1]} - ${TICKS0[$1]}) / $CLK_TCK / $WALL" 3; }
DD_CPU=$(cpu_pct "$DD_PID"); DD_HWM=$(calc "${HWM[$DD_PID]} / 1024" 1)
DD_SAMPLES=$(curl -s --max-time 10 "$DD_URL/metrics" | awk '$1 == "dedupd_samples_total" { print $2 }')
DD_SERR=$(curl -s --max-time 10 "$DD_URL/metrics" | awk '$1 == "dedupd_sampler_errors_total" { print $2 }')
DD_DROP=$(curl -s --max-time 10 "$DD_URL/metrics" | awk '$1 == "dedupd_samples_dropped_total" { print $2 }')
NV=$(curl -s --max-time 10 "$DD_URL/v1/volumes" | grep -o '"mode":' | wc -l)

log "window:     $WALL s wall, machine busy $MACHINE_BUSY % of $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), CLK_TCK $CLK_TCK"
printf '\n%-15s %10s %10s %9s %9s %8s %8s %14s %12s\n' process "CPU_%core" peak_MiB rss0_MiB rss1_MiB threads scrapes "metrics_bytes" "scrape_ms"
row() { # NAME PID SCRAPEFILE
    local s; read -r -a s < <(scrape_summary "$3")
    printf '%-15s %10s %10s %9s %9s %8s %8s %14s %12s\n' "$1" "$(cpu_pct "$2")" "$(calc "${HWM[$2]} / 1024" 1)" \
        "$(calc "${RSS0[$2]} / 1024" 1)" "$(calc "${RSS1[$2]} / 1024" 1)" "${THR[$2]}" "${s[1]}/${s[0]}" "${s[2]}" "${s[3]}/${s[4]}"
}
row dedupd "$DD_PID" dedupd
[ -z "$NE_PID" ] || row node-exporter "$NE_PID" ne
log "(CPU_%core: utime+stime over the window / wall, 100 = one core; peak = VmHWM at the window's end;"
log " rss0/rss1 = VmRSS at its start/end; scrapes = HTTP 200 of all; scrape_ms = median/max curl time)"
printf '\n%-34s %10s %10s\n' ratio CPU peak_RSS
if [ -n "$NE_PID" ]; then
    NE_CPU=$(cpu_pct "$NE_PID"); NE_HWM=$(calc "${HWM[$NE_PID]} / 1024" 1)
    printf '%-34s %10s %10s\n' "dedupd / node-exporter" "$(ratio "$DD_CPU" "$NE_CPU")" "$(ratio "$DD_HWM" "$NE_HWM")"
fi
printf '%-34s %10s %10s\n' "dedupd / goal (${GOAL_CPU_PCT} %, ${GOAL_RSS_MIB} MiB)" \
    "$(ratio "$DD_CPU" "$GOAL_CPU_PCT")" "$(ratio "$DD_HWM" "$GOAL_RSS_MIB")"
log "(goal ratios <= 1.00 meet the goal)"
log "dedupd:     $DD_SAMPLES samples so far (${NV} volumes in /v1/volumes), sampler errors $DD_SERR, dropped $DD_DROP"
log "store:      $(du -sh --apparent-size "$WORKDIR/data" | cut -f1) of files, $(du -sh "$WORKDIR/data" | cut -f1) allocated (RocksDB preallocates its log) in $WORKDIR/data"
# RSS trend over the window: least-squares slope of VmRSS, one point per tick
slope() { awk -v c="$1" '{ x = ($1 - t0) / 60; if (NR == 1) { t0 = $1; x = 0 } y = $c
    n++; sx += x; sy += y; sxx += x * x; sxy += x * y }
    END { d = n * sxx - sx * sx; if (n < 3 || d == 0) print "-"; else printf "%+.1f\n", (n * sxy - sx * sy) / d }' "$WORKDIR/rss.tsv"; }
log "RSS trend:  dedupd $(slope 2) KiB/min${NE_PID:+, node-exporter $(slope 3) KiB/min} (least squares over the $(wc -l <"$WORKDIR/rss.tsv") ticks)"

# ---------------------------------------------------------------- 2. wrk
if [ "$HAVE_WRK" = 1 ]; then
    hdr "wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${WRK_SECONDS}s --latency (the $(nproc) CPUs are shared by wrk and the server)"
    printf '%-26s %12s %10s %8s %8s\n' target req/s p99_ms non2xx errors
    declare -A RPS P99
    targets=("dedupd /v1/volumes|$DD_URL/v1/volumes" "dedupd /metrics|$DD_URL/metrics")
    [ -z "$NE_PID" ] || targets+=("node-exporter /metrics|$NE_URL/metrics")
    for t in "${targets[@]}"; do
        name=${t%%|*}; url=${t#*|}
        read -r rps p99 bad err < <(wrk_run "$url" "$WORKDIR/wrk-${name//[ \/]/_}.txt")
        RPS[$name]=$rps; P99[$name]=$p99
        printf '%-26s %12s %10s %8s %8s\n' "$name" "$rps" "$p99" "$bad" "$err"
    done
    if [ -n "$NE_PID" ]; then
        printf '%-26s %12s %10s\n' "ratio dedupd/node-exporter" \
            "$(ratio "${RPS[dedupd /metrics]}" "${RPS[node-exporter /metrics]}")" \
            "$(ratio "${P99[dedupd /metrics]}" "${P99[node-exporter /metrics]}")"
        log "(/metrics vs /metrics: req/s above 1 and p99 below 1 favour dedupd)"
    fi
    log "peak RSS after wrk: dedupd $(calc "$(status_kib "$DD_PID" VmHWM) / 1024" 1) MiB${NE_PID:+, node-exporter $(calc "$(status_kib "$NE_PID" VmHWM) / 1024" 1) MiB}"
fi

# ---------------------------------------------------------------- logs + stop
hdr "stop"
stop "$DD_PID"; DD_PID=""
log "dedupd exit status on SIGTERM: $STOP_RC (expected 0)"
if [ -n "$NE_PID" ]; then stop "$NE_PID"; NE_PID=""; log "node-exporter exit status on SIGTERM: $STOP_RC"; fi
n_bad=$(grep -c -E ': (warning|error|fatal|critical): ' "$WORKDIR/dedupd.log" || true)
log "dedupd log: $(wc -l <"$WORKDIR/dedupd.log") lines, $n_bad warning/error lines"
grep -E ': (warning|error|fatal|critical): ' "$WORKDIR/dedupd.log" | sort | uniq -c | sort -rn | head -n 5 || true
log "total time: $(calc "$(now) - $T_BEGIN" 0) s after the replay was made"
