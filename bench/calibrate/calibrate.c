/*
 * dedupd-calibrate: measures the proxy of VDO's per-block write work
 * (proxy.h) at one index size and prints one JSON line per measured point,
 * in the store's feature names (DESIGN.md "Feature and target names"), so
 * the cost model's prior can be fitted to it. A userspace proxy, not VDO.
 *
 * Two ways to run:
 *   - one point: options give the point; index build, point, JSON, exit;
 *   - --serve: the index is built once, then commands come on stdin, one a
 *     line, for a driver (calibrate.sh) that starts competing load between
 *     preparing and measuring a point:
 *         point dup=0.5 zero=0.05 compressible=0.5 compression=1 load=25
 *               seed=7 sweep=load       -> "prepared"    (stream generated)
 *         go                            -> one JSON line (the measurement)
 *         quit
 *     Keys a point leaves out take the command line's values. The first
 *     line out is "ready entries=E capacity=C build_s=S"; a bad command
 *     gets "error MESSAGE" and the loop goes on.
 *
 * After a point's measured passes comes one unmeasured profile pass that
 * times each step ("stages_cpu_s_per_gib"); --no-profile skips it.
 *
 * Node figures cover the measured window: CPU busy share from /proc/stat
 * without this process's own CPU (getrusage), PSI "some" from the change in
 * its total over the window (a percentage of wall time, avg10's unit; avg10
 * itself lags a 2-second window, it is kept in "node" for reference), and
 * the run queue as the mean of /proc/loadavg samples every 100 ms. The
 * /proc parsers are dedupd's own (dedupd/node).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/macro.h"
#include "common/parse.h"
#include "dedupd/node/node.h"
#include "proxy.h"

#define LINE_MAX_BYTES 1024

struct options {
    struct cal_engine_config eng;
    uint64_t min_bytes;
    double min_seconds;
    unsigned max_passes;
    bool profile; /* one extra pass with per-stage timers */
    bool serve;
    struct cal_point pt;
    double cpu_load; /* nominal stress-ng --cpu-load percent, a label */
    char sweep[32];
};

/* ---------------------------------------------------------------- node */

struct node_snap {
    struct dd_cpu_stat stat;
    bool have_stat;
    struct dd_node_psi psi;
    bool have_psi;
    double self_cpu; /* this process, every thread, seconds */
    double mono;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void node_snap_take(struct node_snap *s)
{
    struct rusage ru;

    memset(s, 0, sizeof(*s));
    s->have_stat = dd_node_read_stat("/proc", &s->stat, NULL) == 0;
    s->have_psi = dd_node_read_psi("/proc", &s->psi, NULL) == 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->self_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    s->mono = mono_now();
}

static void node_snap_release(struct node_snap *s)
{
    if (s->have_stat)
        dd_cpu_stat_release(&s->stat);
    s->have_stat = false;
}

struct rq_sampler {
    pthread_t thread;
    atomic_bool stop;
    double sum;
    unsigned n;
    double load1;
};

static void *rq_main(void *arg)
{
    struct rq_sampler *q = arg;
    const struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};

    while (!atomic_load(&q->stop)) {
        struct dd_loadavg la;
        if (dd_node_read_loadavg("/proc", &la, NULL) == 0) {
            /* run_queue is runnable - 1 (this reader); the worker counts,
             * as VDO's threads count in the daemon's samples */
            q->sum += (double)la.run_queue;
            q->n++;
            q->load1 = la.load1;
        }
        nanosleep(&tick, NULL);
    }
    return NULL;
}

static json_t *num_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static double psi_share(const struct node_snap *a, const struct node_snap *b, bool cpu)
{
    if (!a->have_psi || !b->have_psi)
        return (double)NAN;
    bool av = cpu ? a->psi.cpu_available : a->psi.io_available;
    bool bv = cpu ? b->psi.cpu_available : b->psi.io_available;
    const struct dd_psi_line *x = cpu ? &a->psi.cpu.some : &a->psi.io.some;
    const struct dd_psi_line *y = cpu ? &b->psi.cpu.some : &b->psi.io.some;
    double dt = b->mono - a->mono;
    if (!av || !bv || !x->present || !y->present || dt <= 0.0 || y->total_us < x->total_us)
        return (double)NAN;
    return 100.0 * (double)(y->total_us - x->total_us) / (dt * 1e6);
}

/* ---------------------------------------------------------------- measure */

/* What the measured window saw, from /proc and the engine. */
struct window {
    struct cal_result res;
    struct cal_index_info ix;
    double util, util_ex;     /* node busy share, and without this process */
    double cpu_psi, io_psi;   /* percent of the window, from PSI totals */
    double cpu_psi_avg10;     /* at the end, for reference */
    double run_queue, load1;  /* mean of the samples; last load1 */
    double self_cpu, seconds; /* this process's CPU, the window's wall time */
};

static json_t *build_doc(const struct options *o, const struct window *w)
{
    const struct cal_counts *c = &w->res.c;
    double bytes = (double)c->blocks * CAL_BLOCK;
    double gib = bytes / 1073741824.0;
    double wall = w->res.wall_seconds;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);

    json_t *doc = json_object(), *pt = json_object(), *f = json_object();
    json_t *cnt = json_object(), *node = json_object(), *idx = json_object();
    json_object_set_new(doc, "name", json_string("calibrate"));
    if (o->sweep[0])
        json_object_set_new(doc, "sweep", json_string(o->sweep));
    json_object_set_new(doc, "time_ms",
                        json_integer((json_int_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000));

    json_object_set_new(pt, "index_entries", json_integer((json_int_t)w->ix.entries));
    json_object_set_new(pt, "duplicate_share", json_real(o->pt.dup_share));
    json_object_set_new(pt, "zero_share", json_real(o->pt.zero_share));
    json_object_set_new(pt, "compressible_share", json_real(o->pt.compressible_share));
    json_object_set_new(pt, "compression", json_integer(o->pt.compression ? 1 : 0));
    json_object_set_new(pt, "cpu_load", json_real(o->cpu_load));
    json_object_set_new(doc, "point", pt);

    /* the store's per-volume features, as dedupd/daemon.c names them */
    json_object_set_new(f, "write_mbps", json_real(bytes / 1e6 / wall));
    json_object_set_new(f, "read_mbps", json_real(0.0));
    json_object_set_new(f, "write_iops", json_real((double)c->blocks / wall));
    /* logical used / data used over the stream: non-zero blocks per new one */
    json_object_set_new(f, "dedup_ratio",
                        c->fresh ? json_real((double)(c->blocks - c->zero) / (double)c->fresh)
                                 : json_null());
    json_object_set_new(f, "dedup_hit_rate", json_real((double)c->dup / (double)c->blocks));
    json_object_set_new(f, "index_entries", json_integer((json_int_t)w->ix.entries));
    json_object_set_new(f, "index_fill", json_real((double)w->ix.entries / (double)w->ix.capacity));
    json_object_set_new(f, "stored_gib",
                        json_real((double)w->ix.entries * CAL_BLOCK / 1073741824.0));
    json_object_set_new(f, "physical_used_fraction", json_null());
    json_object_set_new(f, "compression", json_integer(o->pt.compression ? 1 : 0));
    /* data blocks the packer saved: 1 - 4 KiB writes per new block */
    json_object_set_new(f, "packer_savings",
                        c->fresh ? json_real(1.0 - (double)c->data_writes / (double)c->fresh)
                                 : json_null());
    json_object_set_new(f, "operating_mode_normal", json_integer(1));
    json_object_set_new(f, "node_cpu_util_ex_vdo", num_or_null(w->util_ex));
    json_object_set_new(f, "cpu_psi", num_or_null(w->cpu_psi));
    json_object_set_new(f, "io_psi", num_or_null(w->io_psi));
    json_object_set_new(f, "run_queue", num_or_null(w->run_queue));
    json_object_set_new(f, "cost", json_real(w->res.cpu_seconds / gib));
    json_object_set_new(f, "latency", json_real(wall * 1000.0 / (double)c->blocks));
    json_object_set_new(doc, "features", f);

    json_object_set_new(doc, "throughput_mib_s", json_real(bytes / 1048576.0 / wall));
    json_object_set_new(doc, "cpu_seconds", json_real(w->res.cpu_seconds));
    json_object_set_new(doc, "wall_seconds", json_real(wall));
    json_object_set_new(doc, "hash", json_string("murmur3-x64-128"));

    json_object_set_new(cnt, "passes", json_integer(w->res.passes));
    json_object_set_new(cnt, "blocks", json_integer((json_int_t)c->blocks));
    json_object_set_new(cnt, "zero", json_integer((json_int_t)c->zero));
    json_object_set_new(cnt, "dup", json_integer((json_int_t)c->dup));
    json_object_set_new(cnt, "new", json_integer((json_int_t)c->fresh));
    json_object_set_new(cnt, "verify_fail", json_integer((json_int_t)c->verify_fail));
    json_object_set_new(cnt, "compressed", json_integer((json_int_t)c->compressed));
    json_object_set_new(cnt, "packed", json_integer((json_int_t)c->packed));
    json_object_set_new(cnt, "data_writes", json_integer((json_int_t)c->data_writes));
    json_object_set_new(cnt, "lz4_ratio",
                        c->lz4_in_bytes
                            ? json_real((double)c->lz4_out_bytes / (double)c->lz4_in_bytes)
                            : json_null());
    json_object_set_new(doc, "counts", cnt);

    json_object_set_new(node, "cpu_util", num_or_null(w->util));
    json_object_set_new(node, "self_cpu_seconds", json_real(w->self_cpu));
    json_object_set_new(node, "window_seconds", json_real(w->seconds));
    json_object_set_new(node, "cpu_psi_avg10", num_or_null(w->cpu_psi_avg10));
    json_object_set_new(node, "load1", num_or_null(w->load1));
    json_object_set_new(node, "ncpu", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(doc, "node", node);

    json_object_set_new(idx, "capacity", json_integer((json_int_t)w->ix.capacity));
    json_object_set_new(idx, "slot_bytes", json_integer(CAL_SLOT_BYTES));
    json_object_set_new(idx, "table_bytes", json_integer((json_int_t)w->ix.bytes));
    json_object_set_new(idx, "pool_blocks", json_integer((json_int_t)w->ix.pool_blocks));
    json_object_set_new(idx, "build_seconds", json_real(w->ix.build_seconds));
    json_object_set_new(idx, "hugepages", json_boolean(o->eng.hugepages));
    json_object_set_new(doc, "index", idx);

    if (w->res.have_stages && w->res.stages.blocks) {
        /* CPU seconds per logical GiB of the profile pass, per stage. The
         * ticks run on while the thread waits for a CPU, so under load they
         * add up to more than its CPU time: each stage gets its share of
         * the measured thread CPU time (preemption falls on a stage in
         * proportion to its length), and the raw ratio is kept. */
        const struct cal_stages *st = &w->res.stages;
        double gib_p = (double)st->blocks * CAL_BLOCK / 1073741824.0;
        double sum = (double)(st->zero_check + st->hash + st->lookup + st->verify + st->insert +
                              st->lz4 + st->write);
        double tick_s = sum / st->ticks_per_second;
        double k = sum > 0.0 ? st->cpu_seconds / sum / gib_p : 0.0;
        json_t *sg = json_object();
        json_object_set_new(sg, "zero_check", json_real((double)st->zero_check * k));
        json_object_set_new(sg, "hash", json_real((double)st->hash * k));
        json_object_set_new(sg, "lookup", json_real((double)st->lookup * k));
        json_object_set_new(sg, "verify_refcount", json_real((double)st->verify * k));
        json_object_set_new(sg, "insert", json_real((double)st->insert * k));
        json_object_set_new(sg, "lz4", json_real((double)st->lz4 * k));
        json_object_set_new(sg, "write", json_real((double)st->write * k));
        json_object_set_new(
            sg, "profile_cost",
            json_real(st->cpu_seconds / ((double)st->blocks * CAL_BLOCK / 1073741824.0)));
        json_object_set_new(sg, "ticks_per_second", json_real(st->ticks_per_second));
        json_object_set_new(
            sg, "ticks_over_cpu",
            num_or_null(st->cpu_seconds > 0.0 ? tick_s / st->cpu_seconds : (double)NAN));
        json_object_set_new(doc, "stages_cpu_s_per_gib", sg);
    }
    return doc;
}

static int measure(struct cal_engine *e, const struct options *o, json_t **ret_doc)
{
    struct node_snap a, b;
    struct rq_sampler q = {0};
    struct dd_cpu_util cu = {0};
    struct window w = {.util = (double)NAN,
                       .util_ex = (double)NAN,
                       .cpu_psi_avg10 = (double)NAN,
                       .run_queue = (double)NAN,
                       .load1 = (double)NAN};
    bool sampler;
    int r;

    cal_engine_index_info(e, &w.ix);
    atomic_init(&q.stop, false);
    node_snap_take(&a);
    sampler = pthread_create(&q.thread, NULL, rq_main, &q) == 0;
    r = cal_engine_run(e, o->min_bytes, o->min_seconds, o->max_passes, o->profile, &w.res);
    if (sampler) {
        atomic_store(&q.stop, true);
        pthread_join(q.thread, NULL);
    }
    node_snap_take(&b);
    if (r == 0) {
        w.self_cpu = DD_MAX(b.self_cpu - a.self_cpu, 0.0);
        w.seconds = b.mono - a.mono;
        if (a.have_stat && b.have_stat &&
            dd_cpu_util(&a.stat.all, &b.stat.all, sysconf(_SC_CLK_TCK), w.self_cpu, &cu) == 0 &&
            cu.valid) {
            w.util_ex = cu.util_excl_vdo;
            w.util = cu.util;
        }
        w.cpu_psi = psi_share(&a, &b, true);
        w.io_psi = psi_share(&a, &b, false);
        if (b.have_psi && b.psi.cpu_available)
            w.cpu_psi_avg10 = b.psi.cpu.some.avg10;
        if (q.n) {
            w.run_queue = q.sum / q.n;
            w.load1 = q.load1;
        }
        *ret_doc = build_doc(o, &w);
    }
    node_snap_release(&a);
    node_snap_release(&b);
    return r;
}

static int print_doc(json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(doc);
    if (!s)
        return -ENOMEM;
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    return 0;
}

/* ---------------------------------------------------------------- options */

static int parse_share(const char *s, double *ret)
{
    double x;
    int r = dd_parse_double(s, &x);
    if (r < 0)
        return r;
    if (x < 0.0 || x > 1.0)
        return DD_E_RANGE;
    *ret = x;
    return 0;
}

static int parse_bool01(const char *s, bool *ret)
{
    uint64_t v;
    int r = dd_parse_u64_range(s, 0, 1, &v);
    if (r == 0)
        *ret = v == 1;
    return r;
}

/* key=value of the serve protocol and the one-point options alike */
static int set_point_key(struct options *o, const char *key, const char *val)
{
    uint64_t u;
    int r;

    if (strcmp(key, "dup") == 0)
        return parse_share(val, &o->pt.dup_share);
    if (strcmp(key, "zero") == 0)
        return parse_share(val, &o->pt.zero_share);
    if (strcmp(key, "compressible") == 0)
        return parse_share(val, &o->pt.compressible_share);
    if (strcmp(key, "compression") == 0)
        return parse_bool01(val, &o->pt.compression);
    if (strcmp(key, "load") == 0) {
        double x;
        r = dd_parse_double(val, &x);
        if (r == 0 && (x < 0.0 || x > 100.0))
            r = DD_E_RANGE;
        if (r == 0)
            o->cpu_load = x;
        return r;
    }
    if (strcmp(key, "seed") == 0) {
        r = dd_parse_u64(val, &u);
        if (r == 0)
            o->pt.seed = u;
        return r;
    }
    if (strcmp(key, "sweep") == 0) {
        size_t n = strlen(val);
        if (n >= sizeof(o->sweep))
            return DD_E_TOOBIG;
        memcpy(o->sweep, val, n + 1);
        return 0;
    }
    return DD_E_USAGE;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: dedupd-calibrate [options]\n"
                 "Measures a userspace proxy of VDO's per-4-KiB-block write work (not VDO):\n"
                 "zero check, MurmurHash3 x64_128, index lookup/insert, verify, refcount, LZ4,\n"
                 "pwrite to a tmpfs file. Prints one JSON line per point.\n\n"
                 "Index and run:\n"
                 "  --entries N        index entries E (binary suffixes: 16M = 16 Mi; default 1M)\n"
                 "  --pool-blocks N    real blocks duplicates come from (default 64K, <= E)\n"
                 "  --max-load F       index capacity = (E + stream) / F (default 0.75)\n"
                 "  --hugepages        MADV_HUGEPAGE on the index (default MADV_NOHUGEPAGE)\n"
                 "  --stream-mib N     generated stream per pass, MiB (default 256)\n"
                 "  --ring-mib N       size of the write file, MiB (default 256)\n"
                 "  --write-dir DIR    tmpfs for the write file (default /dev/shm)\n"
                 "  --min-mib N        measure at least N MiB per point (default 256)\n"
                 "  --min-seconds F    and at least F s of wall time (default 2)\n"
                 "  --max-passes N     but at most N passes over the stream (default 64)\n"
                 "  --seed N           index and pool seed (default 1)\n"
                 "  --no-profile       skip the extra, unmeasured pass that times each stage\n"
                 "One point (without --serve):\n"
                 "  --dup F --zero F --compressible F --compression 0|1\n"
                 "  --load P           nominal competing load, percent (a label only)\n"
                 "  --sweep NAME       label\n"
                 "  --seed-point N     stream seed\n"
                 "Other:\n"
                 "  --serve            build the index, then take commands on stdin\n"
                 "                     (point k=v..., go, quit; see calibrate.c)\n"
                 "  --self-test        print the text generator's LZ4 ratio and exit\n"
                 "  -h, --help\n");
}

enum {
    OPT_ENTRIES = 256,
    OPT_POOL,
    OPT_MAXLOAD,
    OPT_HUGE,
    OPT_STREAM,
    OPT_RING,
    OPT_WDIR,
    OPT_MINMIB,
    OPT_MINSEC,
    OPT_MAXPASS,
    OPT_SEED,
    OPT_DUP,
    OPT_ZERO,
    OPT_COMPRESSIBLE,
    OPT_COMPRESSION,
    OPT_LOAD,
    OPT_SWEEP,
    OPT_SEEDPOINT,
    OPT_SERVE,
    OPT_SELFTEST,
    OPT_NOPROFILE,
};

static int parse_options(int argc, char **argv, struct options *o, bool *ret_selftest)
{
    static const struct option longopts[] = {
        {"entries", required_argument, NULL, OPT_ENTRIES},
        {"pool-blocks", required_argument, NULL, OPT_POOL},
        {"max-load", required_argument, NULL, OPT_MAXLOAD},
        {"hugepages", no_argument, NULL, OPT_HUGE},
        {"stream-mib", required_argument, NULL, OPT_STREAM},
        {"ring-mib", required_argument, NULL, OPT_RING},
        {"write-dir", required_argument, NULL, OPT_WDIR},
        {"min-mib", required_argument, NULL, OPT_MINMIB},
        {"min-seconds", required_argument, NULL, OPT_MINSEC},
        {"max-passes", required_argument, NULL, OPT_MAXPASS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"dup", required_argument, NULL, OPT_DUP},
        {"zero", required_argument, NULL, OPT_ZERO},
        {"compressible", required_argument, NULL, OPT_COMPRESSIBLE},
        {"compression", required_argument, NULL, OPT_COMPRESSION},
        {"load", required_argument, NULL, OPT_LOAD},
        {"sweep", required_argument, NULL, OPT_SWEEP},
        {"seed-point", required_argument, NULL, OPT_SEEDPOINT},
        {"serve", no_argument, NULL, OPT_SERVE},
        {"no-profile", no_argument, NULL, OPT_NOPROFILE},
        {"self-test", no_argument, NULL, OPT_SELFTEST},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t v;
    double x;
    int c, r = 0;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const char *name = "";
        switch (c) {
        case OPT_ENTRIES:
            name = "--entries";
            r = dd_parse_size(optarg, &o->eng.entries);
            break;
        case OPT_POOL:
            name = "--pool-blocks";
            r = dd_parse_size(optarg, &o->eng.pool_blocks);
            break;
        case OPT_MAXLOAD:
            name = "--max-load";
            r = dd_parse_double(optarg, &o->eng.max_load);
            break;
        case OPT_HUGE:
            o->eng.hugepages = true;
            break;
        case OPT_STREAM:
            name = "--stream-mib";
            r = dd_parse_u64_range(optarg, 1, 65536, &v);
            o->eng.stream_blocks = v * 256;
            break;
        case OPT_RING:
            name = "--ring-mib";
            r = dd_parse_u64_range(optarg, 1, 65536, &v);
            o->eng.ring_blocks = v * 256;
            break;
        case OPT_WDIR:
            o->eng.write_dir = optarg;
            break;
        case OPT_MINMIB:
            name = "--min-mib";
            r = dd_parse_u64_range(optarg, 0, 1 << 20, &v);
            o->min_bytes = v << 20;
            break;
        case OPT_MINSEC:
            name = "--min-seconds";
            r = dd_parse_double(optarg, &x);
            if (r == 0 && (x < 0.0 || x > 3600.0))
                r = DD_E_RANGE;
            o->min_seconds = x;
            break;
        case OPT_MAXPASS:
            name = "--max-passes";
            r = dd_parse_u64_range(optarg, 1, 100000, &v);
            o->max_passes = (unsigned)v;
            break;
        case OPT_SEED:
            name = "--seed";
            r = dd_parse_u64(optarg, &o->eng.seed);
            break;
        case OPT_DUP:
            name = "--dup";
            r = set_point_key(o, "dup", optarg);
            break;
        case OPT_ZERO:
            name = "--zero";
            r = set_point_key(o, "zero", optarg);
            break;
        case OPT_COMPRESSIBLE:
            name = "--compressible";
            r = set_point_key(o, "compressible", optarg);
            break;
        case OPT_COMPRESSION:
            name = "--compression";
            r = set_point_key(o, "compression", optarg);
            break;
        case OPT_LOAD:
            name = "--load";
            r = set_point_key(o, "load", optarg);
            break;
        case OPT_SWEEP:
            name = "--sweep";
            r = set_point_key(o, "sweep", optarg);
            break;
        case OPT_SEEDPOINT:
            name = "--seed-point";
            r = set_point_key(o, "seed", optarg);
            break;
        case OPT_SERVE:
            o->serve = true;
            break;
        case OPT_SELFTEST:
            *ret_selftest = true;
            break;
        case OPT_NOPROFILE:
            o->profile = false;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return DD_E_USAGE;
        }
        if (r < 0) {
            fprintf(stderr, "dedupd-calibrate: %s '%s': %s\n", name, optarg, dd_strerror(r));
            return r;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dedupd-calibrate: unexpected argument '%s'\n", argv[optind]);
        return DD_E_USAGE;
    }
    if (o->eng.pool_blocks > o->eng.entries)
        o->eng.pool_blocks = o->eng.entries;
    if (o->pt.zero_share + o->pt.dup_share > 1.0) {
        fprintf(stderr, "dedupd-calibrate: --zero + --dup must be at most 1\n");
        return DD_E_RANGE;
    }
    return 0;
}

/* ---------------------------------------------------------------- serve */

static void reply_error(const char *what, int r)
{
    printf("error %s: %s\n", what, dd_strerror(r));
    fflush(stdout);
}

static int serve(struct cal_engine *e, struct options *o)
{
    char line[LINE_MAX_BYTES];
    const struct options base = *o; /* each point starts from the command line's */
    bool prepared = false;

    while (fgets(line, sizeof(line), stdin)) {
        char *save = NULL, *tok;
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        tok = strtok_r(line, " \t", &save);
        if (!tok)
            continue;
        if (strcmp(tok, "quit") == 0)
            break;
        if (strcmp(tok, "go") == 0) {
            json_t *doc = NULL;
            if (!prepared) {
                reply_error("go", DD_E_USAGE);
                continue;
            }
            int r = measure(e, o, &doc);
            if (r < 0) {
                reply_error("measure", r);
                continue;
            }
            if (print_doc(doc) < 0)
                return -ENOMEM;
            continue;
        }
        if (strcmp(tok, "point") != 0) {
            reply_error("unknown command", DD_E_USAGE);
            continue;
        }
        struct options p = base;
        int r = 0;
        while (r == 0 && (tok = strtok_r(NULL, " \t", &save))) {
            char *eq = strchr(tok, '=');
            if (!eq) {
                r = DD_E_PARSE;
                break;
            }
            *eq = '\0';
            r = set_point_key(&p, tok, eq + 1);
        }
        if (r == 0 && p.pt.zero_share + p.pt.dup_share > 1.0)
            r = DD_E_RANGE;
        if (r == 0)
            r = cal_engine_prepare(e, &p.pt);
        if (r < 0) {
            reply_error("point", r);
            prepared = false;
            continue;
        }
        *o = p;
        prepared = true;
        printf("prepared\n");
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options o = {
        .eng = {.entries = UINT64_C(1) << 20,
                .pool_blocks = UINT64_C(1) << 16,
                .stream_blocks = 256 * 256,
                .ring_blocks = 256 * 256,
                .max_load = 0.75,
                .write_dir = "/dev/shm",
                .seed = 1},
        .min_bytes = UINT64_C(256) << 20,
        .min_seconds = 2.0,
        .max_passes = 64,
        .profile = true,
        .pt = {.zero_share = 0.05, .dup_share = 0.5, .compressible_share = 0.5, .seed = 1},
    };
    struct cal_engine *e = NULL;
    struct cal_index_info ix;
    bool selftest = false;
    int r;

    r = parse_options(argc, argv, &o, &selftest);
    if (r < 0)
        return 2;
    if (selftest) {
        double sum = 0.0, worst = 0.0;
        for (uint64_t s = 1; s <= 64; s++) {
            double x = cal_text_ratio_sample(s);
            sum += x;
            worst = DD_MAX(worst, x);
        }
        printf("text-like block LZ4 ratio: mean %.3f, worst %.3f of 64 (want <= 0.5)\n", sum / 64.0,
               worst);
        return worst <= 0.5 ? 0 : 1;
    }
    fprintf(stderr, "dedupd-calibrate: building an index of %llu entries...\n",
            (unsigned long long)o.eng.entries);
    r = cal_engine_new(&o.eng, &e);
    if (r < 0) {
        fprintf(stderr, "dedupd-calibrate: cannot set up the engine: %s\n", dd_strerror(r));
        if (o.serve)
            reply_error("setup", r);
        return 1;
    }
    cal_engine_index_info(e, &ix);
    fprintf(stderr,
            "dedupd-calibrate: index %llu entries, capacity %llu (%.2f GiB), built in %.1f s\n",
            (unsigned long long)ix.entries, (unsigned long long)ix.capacity,
            (double)ix.bytes / 1073741824.0, ix.build_seconds);
    if (o.serve) {
        printf("ready entries=%llu capacity=%llu build_s=%.2f\n", (unsigned long long)ix.entries,
               (unsigned long long)ix.capacity, ix.build_seconds);
        fflush(stdout);
        r = serve(e, &o);
    } else {
        json_t *doc = NULL;
        r = cal_engine_prepare(e, &o.pt);
        if (r == 0)
            r = measure(e, &o, &doc);
        if (r == 0)
            r = print_doc(doc);
        if (r < 0)
            fprintf(stderr, "dedupd-calibrate: %s\n", dd_strerror(r));
    }
    cal_engine_free(e);
    return r < 0 ? 1 : 0;
}
