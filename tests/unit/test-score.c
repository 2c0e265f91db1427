/*
 * placement/score, profile and ledger without HTTP: the scorer on reports
 * built in memory, the real cost model prior as the model.
 *
 * The monotone properties are table-driven: for each contention input
 * (pool writes, node CPU without VDO, CPU and IO pressure, run queue, VDO
 * cores in use, an in-flight ledger entry) and several starting levels, a
 * node with more of it never scores higher, and its slowdown is never
 * lower, than the same node with less. The absolute scale, neutral and
 * fast paths, each filter reason, GPU shortage, tie-breaking and the
 * explanation's fields are checked as well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/macro.h"
#include "helpers.h"
#include "placement/cluster.h"
#include "placement/costmodel.h"
#include "placement/extender.h"
#include "placement/ledger.h"
#include "placement/placer.h"
#include "placement/profile.h"
#include "placement/score.h"

#define NOW 1000000000ull
#define GIB 1073741824.0

/* ---- the model: the real prior ---- */

static int prior_predict(void *ctx, const struct dd_features *rows, size_t n, double *cost,
                         double *latency, bool *xgb, uint64_t *version, char *errbuf, size_t errlen)
{
    const struct dd_cm_prior *p = ctx;
    (void)errbuf;
    (void)errlen;
    for (size_t i = 0; i < n; i++) {
        float row[DD_CM_NFEATURES];
        dd_features_model_row(&rows[i], row);
        cost[i] = dd_cm_prior_predict(p, DD_CM_COST, row, NULL);
        latency[i] = dd_cm_prior_predict(p, DD_CM_LATENCY, row, NULL);
    }
    *xgb = false;
    *version = 0;
    return 0;
}

/* A model in which pool writes raise latency too (the prior's latency does
 * not depend on the write rate): latency grows with writes and CPU. */
static int write_sensitive_predict(void *ctx, const struct dd_features *rows, size_t n,
                                   double *cost, double *latency, bool *xgb, uint64_t *version,
                                   char *errbuf, size_t errlen)
{
    int r = prior_predict(ctx, rows, n, cost, latency, xgb, version, errbuf, errlen);
    for (size_t i = 0; i < n; i++) {
        double w = rows[i].v[DD_F_WRITE_MBPS];
        latency[i] *= 1 + (isfinite(w) ? w : 0) / 200.0;
    }
    *version = 7;
    return r;
}

/* ---- a node report in memory ---- */

struct node_spec {
    const char *name;
    const char *pool;
    double write_mbps, cpu_ex, cpu_psi, io_psi, run_queue, vdo_cores;
    double free_gib, phys_gib;
    const char *mode, *index_state;
    unsigned cores, gpus;
    double gpu_util;
    uint64_t age_ms;
};

static struct node_spec base_spec(const char *name)
{
    return (struct node_spec){.name = name,
                              .pool = "fast",
                              .write_mbps = 40,
                              .cpu_ex = 0.3,
                              .cpu_psi = 2,
                              .io_psi = 5,
                              .run_queue = 4,
                              .vdo_cores = 0.5,
                              .free_gib = 500,
                              .phys_gib = 1000,
                              .mode = "normal",
                              .index_state = "online",
                              .cores = 16,
                              .gpus = 4,
                              .gpu_util = 10,
                              .age_ms = 1000};
}

static void put_node(struct dd_cluster *c, const struct node_spec *s)
{
    struct dd_report r;
    assert_int_equal(dd_report_alloc(&r, s->gpus, 1, 0), 0);
    r.schema = DD_REPORT_SCHEMA;
    snprintf(r.node, sizeof(r.node), "%s", s->name);
    r.interval_s = 10;
    r.time_ms = NOW - s->age_ms;
    r.cores = s->cores;
    r.cpu_util_ex_vdo = s->cpu_ex;
    r.cpu_psi = s->cpu_psi;
    r.io_psi = s->io_psi;
    r.run_queue = s->run_queue;
    r.vdo_cpu_seconds = s->vdo_cores * r.interval_s;
    for (unsigned g = 0; g < s->gpus; g++) {
        r.gpus[g].index = g;
        r.gpus[g].util_gpu_percent = s->gpu_util;
    }
    struct dd_report_volume *v = &r.volumes[0];
    snprintf(v->name, sizeof(v->name), "vdo-%s", s->name);
    snprintf(v->pool, sizeof(v->pool), "%s", s->pool);
    snprintf(v->mode, sizeof(v->mode), "%s", s->mode);
    snprintf(v->index_state, sizeof(v->index_state), "%s", s->index_state);
    v->rotational = 0;
    v->physical_bytes = (int64_t)(s->phys_gib * GIB);
    v->physical_free_bytes = (int64_t)(s->free_gib * GIB);
    v->logical_bytes = v->physical_bytes * 3;
    v->logical_free_bytes = v->logical_bytes / 2;
    struct dd_features *f = &v->features;
    dd_features_clear(f);
    f->v[DD_F_WRITE_MBPS] = s->write_mbps;
    f->v[DD_F_READ_MBPS] = 100;
    f->v[DD_F_WRITE_IOPS] = s->write_mbps * 1e6 / 4096;
    f->v[DD_F_DEDUP_HIT_RATE] = 0.4;
    f->v[DD_F_INDEX_ENTRIES] = 5e6;
    f->v[DD_F_COMPRESSION] = 1;
    f->v[DD_F_PACKER_SAVINGS] = 0.2;
    f->v[DD_F_NODE_CPU_UTIL_EX_VDO] = s->cpu_ex;
    f->v[DD_F_CPU_PSI] = s->cpu_psi;
    f->v[DD_F_IO_PSI] = s->io_psi;
    f->v[DD_F_RUN_QUEUE] = s->run_queue;
    f->v[DD_F_DEDUP_RATIO] = 2.0;
    assert_int_equal(dd_cluster_put(c, &r, NOW - s->age_ms + 5), 0);
}

static struct dd_pod_profile gpu_pod(const char *uid, double gpus, double write, double read)
{
    struct dd_pod_profile p;
    memset(&p, 0, sizeof(p));
    snprintf(p.uid, sizeof(p.uid), "%s", uid);
    snprintf(p.ns, sizeof(p.ns), "ml");
    snprintf(p.name, sizeof(p.name), "pod-%s", uid);
    p.gpus = gpus;
    p.source = "annotations";
    p.n_claims = 1;
    struct dd_claim_load *c = &p.claims[0];
    snprintf(c->claim, sizeof(c->claim), "data-%s", uid);
    snprintf(c->pool, sizeof(c->pool), "fast");
    c->write_mbps = write;
    c->read_mbps = read;
    c->duplicate_share = 0.4; /* the pools' own share: the mix does not move */
    c->request_bytes = (uint64_t)(10 * GIB);
    c->known = true;
    return p;
}

struct world {
    struct dd_cluster *cluster;
    struct dd_cluster_snapshot *snap;
    struct dd_ledger *ledger;
    struct dd_ledger_view view;
    struct dd_cm_prior prior;
    struct dd_score_options opts;
    struct dd_score_env env;
};

static void world_open(struct world *w)
{
    struct dd_cluster_options co = {.stale_after_s = 0, .forget_after_s = 3600};
    memset(w, 0, sizeof(*w));
    assert_int_equal(dd_cluster_new(&co, &w->cluster), 0);
    assert_int_equal(dd_ledger_new(NULL, &w->ledger), 0);
    dd_cm_prior_defaults(&w->prior);
    dd_score_options_init(&w->opts);
}

/* Snapshot the cluster and the ledger (without exclude_uid). */
static void world_ready(struct world *w, const char *exclude_uid)
{
    if (w->snap)
        dd_cluster_snapshot_free(w->snap);
    dd_ledger_view_release(&w->view);
    w->snap = dd_cluster_snapshot(w->cluster);
    assert_non_null(w->snap);
    assert_int_equal(dd_ledger_view(w->ledger, exclude_uid, NOW, &w->view), 0);
    w->env = (struct dd_score_env){.cluster = w->snap,
                                   .ledger = &w->view,
                                   .model = {prior_predict, &w->prior},
                                   .kube_source = "none",
                                   .now_ms = NOW};
}

static void world_close(struct world *w)
{
    dd_cluster_snapshot_free(w->snap);
    dd_ledger_view_release(&w->view);
    dd_ledger_free(w->ledger);
    dd_cluster_free(w->cluster);
}

static struct dd_node_score score_one(struct world *w, const struct dd_pod_profile *pod,
                                      const char *node, bool explain)
{
    struct dd_node_score s;
    char err[256];
    const char *names[1] = {node};
    assert_int_equal(dd_score_pod(&w->opts, &w->env, pod, names, 1, DD_SCORE_PRIORITIZE, explain,
                                  &s, err, sizeof(err)),
                     0);
    return s;
}

/* ---- monotone properties ---- */

enum knob { K_WRITE, K_CPU, K_CPU_PSI, K_IO_PSI, K_RUNQ, K_VDO, K_LEDGER, K_NKNOBS };
static const char *const knob_names[K_NKNOBS] = {
    "pool writes", "node CPU without VDO", "CPU pressure", "IO pressure", "run queue",
    "VDO cores",   "ledger entries"};

static void apply(struct node_spec *s, enum knob k, double level)
{
    switch (k) {
    case K_WRITE:
        s->write_mbps = level * 400;
        break;
    case K_CPU:
        s->cpu_ex = level * 0.94;
        break;
    case K_CPU_PSI:
        s->cpu_psi = level * 90;
        break;
    case K_IO_PSI:
        s->io_psi = level * 90;
        break;
    case K_RUNQ:
        s->run_queue = level * 64;
        break;
    case K_VDO:
        s->vdo_cores = level * 12;
        break;
    default:
        break;
    }
}

static void test_more_contention_never_scores_higher(void **state)
{
    static const double levels[] = {0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0};
    const size_t nl = sizeof(levels) / sizeof(levels[0]);
    (void)state;
    for (int model = 0; model < 2; model++) {
        for (int k = 0; k < K_NKNOBS; k++) {
            double prev_slow = -1;
            int prev_score = 11;
            for (size_t li = 0; li < nl; li++) {
                struct world w;
                struct node_spec s = base_spec("n1");
                struct dd_pod_profile pod = gpu_pod("p", 1, 60, 200);
                world_open(&w);
                if (k == K_LEDGER) {
                    for (int e = 0; e < (int)(levels[li] * 20); e++) {
                        struct dd_ledger_entry le = {.gpus = 0, .n_loads = 1};
                        snprintf(le.uid, sizeof(le.uid), "other-%d", e);
                        snprintf(le.node, sizeof(le.node), "n1");
                        snprintf(le.loads[0].pool, sizeof(le.loads[0].pool), "fast");
                        le.loads[0].write_mbps = 30;
                        le.loads[0].read_mbps = 100;
                        le.loads[0].duplicate_share = 0.4;
                        assert_int_equal(dd_ledger_record(w.ledger, &le, NOW), 0);
                    }
                } else {
                    apply(&s, (enum knob)k, levels[li]);
                }
                put_node(w.cluster, &s);
                world_ready(&w, pod.uid);
                if (model == 1)
                    w.env.model.predict = write_sensitive_predict;
                struct dd_node_score sc = score_one(&w, &pod, "n1", false);
                assert_int_equal(sc.verdict, DD_VERDICT_OK);
                if (sc.score > prev_score || sc.slowdown_percent < prev_slow - 1e-9)
                    fail_msg("%s at level %.2f (model %d): score %d slowdown %.3f %% after %d / "
                             "%.3f %%",
                             knob_names[k], levels[li], model, sc.score, sc.slowdown_percent,
                             prev_score, prev_slow);
                prev_score = sc.score;
                prev_slow = sc.slowdown_percent;
                world_close(&w);
            }
            /* the knob matters at all: its highest level costs something */
            if (!(prev_slow > 0))
                fail_msg("%s (model %d): no slowdown even at the highest level", knob_names[k],
                         model);
        }
    }
}

static void test_absolute_scale(void **state)
{
    struct dd_score_options o;
    static const struct {
        double slow;
        int score;
    } table[] = {{0, 10}, {-3, 10}, {5, 8},   {10, 7},   {25, 5},
                 {50, 3}, {100, 2}, {225, 1}, {1000, 0}, {(double)INFINITY, 0}};
    (void)state;
    dd_score_options_init(&o);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        assert_int_equal(dd_score_from_slowdown(&o, table[i].slow), table[i].score);
    assert_int_equal(dd_score_from_slowdown(&o, (double)NAN), o.neutral_score);
    int prev = 10;
    for (double s = 0; s < 5000; s += 0.25) {
        int sc = dd_score_from_slowdown(&o, s);
        assert_true(sc <= prev && sc >= 0);
        prev = sc;
    }
}

/* The same node figures score the same whatever else is in the request. */
static void test_score_independent_of_candidates(void **state)
{
    struct world w;
    struct node_spec a = base_spec("a"), b = base_spec("b"), c = base_spec("c");
    struct dd_pod_profile pod = gpu_pod("p", 1, 60, 200);
    struct dd_node_score out[3];
    const char *names[3] = {"a", "b", "c"};
    char err[128];
    (void)state;
    world_open(&w);
    b.cpu_ex = 0.9;
    c.cpu_ex = 0.05;
    put_node(w.cluster, &a);
    put_node(w.cluster, &b);
    put_node(w.cluster, &c);
    world_ready(&w, pod.uid);
    struct dd_node_score alone = score_one(&w, &pod, "a", false);
    assert_int_equal(dd_score_pod(&w.opts, &w.env, &pod, names, 3, DD_SCORE_PRIORITIZE, false, out,
                                  err, sizeof(err)),
                     0);
    assert_int_equal(out[0].score, alone.score);
    assert_true(fabs(out[0].slowdown_percent - alone.slowdown_percent) < 1e-9);
    assert_true(out[2].score >= out[0].score && out[0].score >= out[1].score);
    assert_int_equal(dd_score_best(out, 3), 2);
    world_close(&w);
}

/* Hundreds of candidates in one call (more than a model chunk, and than
 * the scorer's look-ahead), mixed: scored nodes of varied contention,
 * filtered ones (another pool, read-only), stale ones and names without a
 * report. Each node's verdict, score and slowdown equal scoring it alone. */
static void test_many_candidates_same_as_alone(void **state)
{
    enum { N = 600 };
    struct world w;
    static char names_buf[N][32];
    const char *names[N];
    struct dd_node_score *out = calloc(N, sizeof(*out));
    struct dd_pod_profile pod = gpu_pod("p", 1, 60, 200);
    char err[128];
    (void)state;
    assert_non_null(out);
    world_open(&w);
    for (int i = 0; i < N; i++) {
        snprintf(names_buf[i], sizeof(names_buf[i]), "node-%04d", (i * 7919) % N);
        names[i] = names_buf[i];
        if (i % 11 == 5)
            continue; /* no report */
        struct node_spec sp = base_spec(names[i]);
        sp.cpu_ex = 0.05 + 0.8 * (double)(i % 17) / 17.0;
        sp.write_mbps = 10.0 * (double)(i % 13);
        sp.io_psi = (double)(i % 7);
        if (i % 23 == 3)
            sp.pool = "slow";
        if (i % 29 == 4)
            sp.mode = "read-only";
        if (i % 31 == 6)
            sp.age_ms = 120000;
        put_node(w.cluster, &sp);
    }
    world_ready(&w, pod.uid);
    assert_int_equal(dd_score_pod(&w.opts, &w.env, &pod, names, N, DD_SCORE_PRIORITIZE, false, out,
                                  err, sizeof(err)),
                     0);
    int scored = 0, spread[11] = {0};
    for (int i = 0; i < N; i++) {
        struct dd_node_score one = score_one(&w, &pod, names[i], false);
        assert_ptr_equal(out[i].node, names[i]);
        if (out[i].verdict != one.verdict || out[i].score != one.score ||
            out[i].filter_reason != one.filter_reason || strcmp(out[i].reason, one.reason) != 0)
            fail_msg("%s: %d/%d '%s' in the batch, %d/%d '%s' alone", names[i], out[i].verdict,
                     out[i].score, out[i].reason, one.verdict, one.score, one.reason);
        if (isnan(one.slowdown_percent))
            assert_true(isnan(out[i].slowdown_percent));
        else
            assert_true(out[i].slowdown_percent == one.slowdown_percent);
        if (one.verdict == DD_VERDICT_OK) {
            scored++;
            spread[one.score]++;
        }
    }
    int distinct = 0;
    for (int k = 0; k <= 10; k++)
        distinct += spread[k] > 0;
    assert_true(scored > N / 2);
    assert_true(distinct >= 3); /* the contention varies: so do the scores */
    free(out);
    world_close(&w);
}

/* A node whose report has several volumes, each (pool, mode, index state,
 * free GiB); the rest as base_spec. */
struct vol_spec {
    const char *pool, *mode, *index_state;
    double free_gib;
};

static void put_node_volumes(struct dd_cluster *c, const char *name, const struct vol_spec *vs,
                             size_t nv)
{
    struct node_spec sp = base_spec(name);
    struct dd_report r;
    assert_int_equal(dd_report_alloc(&r, 1, nv, 0), 0);
    r.schema = DD_REPORT_SCHEMA;
    snprintf(r.node, sizeof(r.node), "%s", name);
    r.interval_s = 10;
    r.time_ms = NOW - sp.age_ms;
    r.cores = sp.cores;
    r.cpu_util_ex_vdo = sp.cpu_ex;
    r.vdo_cpu_seconds = sp.vdo_cores * r.interval_s;
    r.gpus[0].util_gpu_percent = 30;
    for (size_t i = 0; i < nv; i++) {
        struct dd_report_volume *v = &r.volumes[i];
        snprintf(v->name, sizeof(v->name), "vdo-%zu", i);
        snprintf(v->pool, sizeof(v->pool), "%s", vs[i].pool);
        snprintf(v->mode, sizeof(v->mode), "%s", vs[i].mode);
        snprintf(v->index_state, sizeof(v->index_state), "%s", vs[i].index_state);
        v->rotational = 0;
        v->physical_bytes = (int64_t)(1000 * GIB);
        v->physical_free_bytes = (int64_t)(vs[i].free_gib * GIB);
        v->logical_bytes = v->physical_bytes * 3;
        v->logical_free_bytes = v->logical_bytes / 2;
        dd_features_clear(&v->features);
        v->features.v[DD_F_WRITE_MBPS] = 40;
        v->features.v[DD_F_DEDUP_RATIO] = 2.0;
    }
    assert_int_equal(dd_cluster_put(c, &r, NOW - sp.age_ms + 5), 0);
}

/* Which of a node's volumes carries the pod's pool: the writable one with
 * the most free space, names compared exactly (pools whose names share a
 * prefix, several volumes a pool), and the filter's facts read from it. */
static void test_pool_volume_choice(void **state)
{
    static const struct vol_spec mixed[] = {
        {"fast", "read-only", "online", 900},  {"fast-2", "normal", "online", 950},
        {"fast", "normal", "online", 100},     {"slow", "normal", "online", 990},
        {"fast", "recovering", "online", 400}, {"fast", "normal", "online", 300},
    };
    static const struct vol_spec all_ro[] = {
        {"slow", "normal", "online", 500},
        {"fast", "read-only", "online", 900},
        {"fast", "read-only", "online", 800},
    };
    static const struct vol_spec offline[] = {
        {"fast", "normal", "offline", 900},
        {"fast", "normal", "online", 100},
    };
    static const struct vol_spec other[] = {
        {"fast-2", "normal", "online", 900},
        {"Fast", "normal", "online", 900},
    };
    struct world w;
    struct dd_pod_profile pod = gpu_pod("p", 1, 60, 200);
    const char *names[4] = {"mixed", "all-ro", "offline", "other"};
    struct dd_node_score out[4];
    char err[128];
    (void)state;
    world_open(&w);
    put_node_volumes(w.cluster, "mixed", mixed, DD_ARRAY_SIZE(mixed));
    put_node_volumes(w.cluster, "all-ro", all_ro, DD_ARRAY_SIZE(all_ro));
    put_node_volumes(w.cluster, "offline", offline, DD_ARRAY_SIZE(offline));
    put_node_volumes(w.cluster, "other", other, DD_ARRAY_SIZE(other));
    world_ready(&w, pod.uid);
    assert_int_equal(dd_score_pod(&w.opts, &w.env, &pod, names, 4, DD_SCORE_PRIORITIZE, true, out,
                                  err, sizeof(err)),
                     0);
    /* the recovering volume: writable, and the most free of the pool's */
    assert_int_equal(out[0].verdict, DD_VERDICT_OK);
    json_t *claim = json_array_get(json_object_get(out[0].explanation, "claims"), 0);
    assert_string_equal(json_string_value(json_object_get(claim, "volume")), "vdo-4");
    assert_true(fabs(out[0].gpu_util - 30) < 1e-9);
    assert_int_equal(out[1].filter_reason, DD_FR_READ_ONLY);
    assert_non_null(strstr(out[1].reason, "vdo-1")); /* the read-only one with the most free */
    assert_int_equal(out[2].filter_reason, DD_FR_INDEX_OFFLINE);
    assert_int_equal(out[3].filter_reason, DD_FR_NO_POOL);
    dd_node_scores_release(out, 4);
    world_close(&w);
}

/* ---- the placer's prediction memo ---- */

/* The prior, answering as an XGBoost model of a settable version, counting
 * the rows it predicts. */
struct counting_model {
    struct dd_cm_prior prior;
    uint64_t version;
    size_t rows;
};

static int counting_predict(void *ctx, const struct dd_features *rows, size_t n, double *cost,
                            double *latency, bool *xgb, uint64_t *version, char *errbuf,
                            size_t errlen)
{
    struct counting_model *m = ctx;
    int r =
        write_sensitive_predict(&m->prior, rows, n, cost, latency, xgb, version, errbuf, errlen);
    for (size_t i = 0; i < n; i++) /* a model version shows in its answers */
        cost[i] *= (double)m->version;
    m->rows += n;
    *xgb = true;
    *version = m->version;
    return r;
}

/* Scores through the placer (the memo) and, on the same snapshots,
 * straight from the model: they must agree exactly. Returns the rows the
 * model predicted for the placer's call. */
static size_t placer_scores(struct dd_placer *p, const struct dd_kube_pod *kp,
                            struct counting_model *m, const char *const *names, size_t n,
                            struct dd_node_score *out)
{
    struct dd_placement q;
    struct dd_node_score *raw = calloc(n, sizeof(*raw));
    char err[256];
    size_t before = m->rows, used;
    assert_non_null(raw);
    assert_int_equal(dd_placer_begin(p, NULL, kp, NOW, &q, err, sizeof(err)), 0);
    assert_int_equal(
        dd_placer_score(&q, names, n, DD_SCORE_PRIORITIZE, false, out, err, sizeof(err)), 0);
    used = m->rows - before;
    struct dd_score_env env = q.env;
    env.model = (struct dd_score_model){counting_predict, m};
    assert_int_equal(dd_score_pod(&q.opts, &env, &q.profile, names, n, DD_SCORE_PRIORITIZE, false,
                                  raw, err, sizeof(err)),
                     0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].verdict, raw[i].verdict);
        assert_int_equal(out[i].score, raw[i].score);
        if (!(isnan(raw[i].slowdown_percent) && isnan(out[i].slowdown_percent)))
            assert_true(out[i].slowdown_percent == raw[i].slowdown_percent);
    }
    free(raw);
    dd_placer_end(&q);
    return used;
}

/* A pod scored again is answered from the memo with the same scores; a
 * ledger entry on one node, a new report from another and a new model
 * version each show through at once (the changed rows are predicted
 * again, and the scores equal the model's). */
static void test_prediction_memo(void **state)
{
    enum { N = 40 };
    struct world w;
    struct counting_model m = {.version = 3};
    struct dd_placer *p;
    struct dd_ledger_options lo;
    struct dd_score_options so;
    static char nbuf[N][16];
    const char *names[N];
    struct dd_node_score first[N], again[N];
    struct dd_kube_pod kp;
    uint64_t hits, misses;
    (void)state;
    world_open(&w);
    dd_cm_prior_defaults(&m.prior);
    for (int i = 0; i < N; i++) {
        snprintf(nbuf[i], sizeof(nbuf[i]), "n%02d", i);
        names[i] = nbuf[i];
        struct node_spec sp = base_spec(names[i]);
        sp.cpu_ex = 0.1 + 0.02 * i;
        sp.write_mbps = 5.0 * i;
        put_node(w.cluster, &sp);
    }
    dd_ledger_options_init(&lo);
    dd_score_options_init(&so);
    assert_int_equal(
        dd_placer_new(w.cluster, &lo, &(struct dd_score_model){counting_predict, &m}, &p), 0);
    assert_int_equal(dd_placer_configure(p, &so, NULL, false), 0);
    memset(&kp, 0, sizeof(kp));
    snprintf(kp.uid, sizeof(kp.uid), "memo-pod");
    snprintf(kp.ns, sizeof(kp.ns), "ml");
    snprintf(kp.name, sizeof(kp.name), "trainer");
    snprintf(kp.write_mbps, sizeof(kp.write_mbps), "80");
    snprintf(kp.read_mbps, sizeof(kp.read_mbps), "300");
    kp.gpus = 1;
    kp.n_claims = 1;
    snprintf(kp.claims[0].name, sizeof(kp.claims[0].name), "data");
    snprintf(kp.claims[0].pool, sizeof(kp.claims[0].pool), "fast");
    kp.claims[0].known = kp.claims[0].ours = kp.claims[0].read_write = true;
    kp.claims[0].request_bytes = (uint64_t)(10 * GIB);

    /* cold: every row predicted; then every row remembered */
    assert_int_equal(placer_scores(p, &kp, &m, names, N, first), 2 * N);
    assert_int_equal(placer_scores(p, &kp, &m, names, N, again), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(again[i].score, first[i].score);
    dd_placer_memo_stats(p, &hits, &misses);
    assert_int_equal(hits, 2 * N);
    assert_int_equal(misses, 2 * N);

    /* another pod in flight on n07: n07's rows change, no other node's */
    struct dd_ledger_entry le = {.gpus = 1, .n_loads = 1};
    snprintf(le.uid, sizeof(le.uid), "other");
    snprintf(le.node, sizeof(le.node), "n07");
    snprintf(le.loads[0].pool, sizeof(le.loads[0].pool), "fast");
    le.loads[0].write_mbps = 400;
    le.loads[0].read_mbps = 100;
    le.loads[0].duplicate_share = (double)NAN;
    assert_int_equal(dd_ledger_record(dd_placer_ledger(p), &le, NOW), 0);
    /* its contended row (the pod alone there is the same what-if) */
    assert_int_equal(placer_scores(p, &kp, &m, names, N, again), 1);
    assert_true(again[7].slowdown_percent > first[7].slowdown_percent);
    assert_true(again[7].score <= first[7].score);

    /* a new report from n12 with more writes: its rows again */
    struct node_spec busy = base_spec("n12");
    busy.cpu_ex = 0.1 + 0.02 * 12;
    busy.write_mbps = 900;
    busy.age_ms = 500;
    put_node(w.cluster, &busy);
    size_t changed = placer_scores(p, &kp, &m, names, N, again);
    assert_true(changed >= 1 && changed <= 2);
    assert_true(again[12].slowdown_percent > first[12].slowdown_percent);

    /* a new model version: nothing remembered applies */
    m.version = 4;
    assert_int_equal(placer_scores(p, &kp, &m, names, N, again), 2 * N);
    assert_true(again[0].slowdown_percent != first[0].slowdown_percent ||
                isinf(first[0].slowdown_percent));
    dd_placer_free(p);
    world_close(&w);
}

static void test_neutral_and_fast_paths(void **state)
{
    struct world w;
    struct node_spec a = base_spec("fresh"), old = base_spec("old");
    struct dd_pod_profile pod = gpu_pod("p", 1, 60, 200), cpu_pod = gpu_pod("c", 0, 60, 200),
                          no_pool = gpu_pod("n", 1, 60, 200);
    const char *names[3] = {"fresh", "old", "unknown"};
    struct dd_node_score out[3];
    char err[128];
    (void)state;
    no_pool.n_claims = 0;
    old.age_ms = 120000; /* 3 x 10 s interval = 30 s bound */
    world_open(&w);
    w.opts.neutral_score = 4;
    put_node(w.cluster, &a);
    put_node(w.cluster, &old);
    world_ready(&w, pod.uid);
    assert_int_equal(dd_score_pod(&w.opts, &w.env, &pod, names, 3, DD_SCORE_PRIORITIZE, true, out,
                                  err, sizeof(err)),
                     0);
    assert_int_equal(out[0].verdict, DD_VERDICT_OK);
    assert_int_equal(out[1].verdict, DD_VERDICT_NEUTRAL);
    assert_int_equal(out[1].score, 4);
    assert_non_null(strstr(out[1].reason, "stale"));
    assert_true(json_is_true(json_object_get(out[1].explanation, "stale")));
    assert_true(json_real_value(json_object_get(out[1].explanation, "report_age_seconds")) > 100);
    assert_int_equal(out[2].verdict, DD_VERDICT_NEUTRAL);
    assert_int_equal(out[2].score, 4);
    assert_non_null(strstr(out[2].reason, "no report"));
    dd_node_scores_release(out, 3);

    assert_int_equal(dd_score_pod(&w.opts, &w.env, &cpu_pod, names, 3, DD_SCORE_PRIORITIZE, false,
                                  out, err, sizeof(err)),
                     0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i].score, 4);
        assert_non_null(strstr(out[i].reason, "no GPU"));
    }
    assert_int_equal(dd_score_pod(&w.opts, &w.env, &no_pool, names, 3, DD_SCORE_PRIORITIZE, false,
                                  out, err, sizeof(err)),
                     0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i].verdict, DD_VERDICT_NEUTRAL);
    assert_int_equal(dd_score_best(out, 3), -1);
    world_close(&w);
}

static void test_filter_reasons(void **state)
{
    struct world w;
    struct node_spec ok = base_spec("ok"), other = base_spec("other-pool"),
                     ro = base_spec("read-only"), off = base_spec("index-off"),
                     full = base_spec("full"), ceil = base_spec("ceiling"),
                     rec = base_spec("recovering"), tight = base_spec("tight");
    struct dd_pod_profile pod = gpu_pod("p", 1, 60, 200);
    const char *names[8] = {"ok",   "other-pool", "read-only",  "index-off",
                            "full", "ceiling",    "recovering", "tight"};
    const enum dd_filter_reason want[8] = {DD_FR_NONE,          DD_FR_NO_POOL,  DD_FR_READ_ONLY,
                                           DD_FR_INDEX_OFFLINE, DD_FR_NO_SPACE, DD_FR_CEILING,
                                           DD_FR_NONE,          DD_FR_NO_SPACE};
    struct dd_node_score out[8];
    char err[128];
    (void)state;
    world_open(&w);
    other.pool = "bulk";
    ro.mode = "read-only";
    off.index_state = "offline";
    full.free_gib = 3;  /* 10 GiB / ratio 2 * 1.1 = 5.5 GiB needed */
    ceil.free_gib = 52; /* 948 + 5.5 of 1000 used: above 95 % */
    rec.mode = "recovering";
    tight.free_gib = 16; /* fits alone (94.7 % used after); 12 GiB reserved in flight: not */
    tight.phys_gib = 200;
    struct node_spec *all[8] = {&ok, &other, &ro, &off, &full, &ceil, &rec, &tight};
    for (int i = 0; i < 8; i++)
        put_node(w.cluster, all[i]);
    struct dd_ledger_entry le = {.n_loads = 1};
    snprintf(le.uid, sizeof(le.uid), "earlier");
    snprintf(le.node, sizeof(le.node), "tight");
    snprintf(le.loads[0].pool, sizeof(le.loads[0].pool), "fast");
    le.loads[0].reserve_bytes = (uint64_t)(12 * GIB);
    le.loads[0].duplicate_share = (double)NAN;
    assert_int_equal(dd_ledger_record(w.ledger, &le, NOW), 0);
    world_ready(&w, pod.uid);
    for (int what = 0; what < 2; what++) {
        assert_int_equal(dd_score_pod(&w.opts, &w.env, &pod, names, 8, (enum dd_score_what)what,
                                      false, out, err, sizeof(err)),
                         0);
        for (int i = 0; i < 8; i++) {
            if (out[i].filter_reason != want[i])
                fail_msg("%s: filter reason %d (%s), want %d", names[i], out[i].filter_reason,
                         out[i].reason, want[i]);
            if (want[i] != DD_FR_NONE) {
                assert_int_equal(out[i].verdict, DD_VERDICT_UNRESOLVABLE);
                assert_non_null(strstr(out[i].reason, dd_filter_reason_names[want[i]]));
            } else {
                assert_int_equal(out[i].verdict, DD_VERDICT_OK);
            }
        }
    }
    /* the pod's own reservation never counts against it */
    world_ready(&w, "earlier");
    assert_int_equal(dd_score_pod(&w.opts, &w.env, &pod, names, 8, DD_SCORE_FILTER, false, out, err,
                                  sizeof(err)),
                     0);
    assert_int_equal(out[7].filter_reason, DD_FR_NONE);
    world_close(&w);
}

static void test_gpus_and_explanation(void **state)
{
    struct world w;
    struct node_spec a = base_spec("a");
    struct dd_pod_profile pod = gpu_pod("p", 2, 60, 200);
    (void)state;
    world_open(&w);
    put_node(w.cluster, &a);
    world_ready(&w, pod.uid);
    w.env.model.predict = write_sensitive_predict;
    struct dd_node_score s = score_one(&w, &pod, "a", true);
    json_t *e = s.explanation;
    assert_int_equal(s.verdict, DD_VERDICT_OK);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "model"), "source")),
                        "prior");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "model"), "version")),
                     7);
    assert_false(json_is_true(json_object_get(e, "stale")));
    assert_true(json_is_number(json_object_get(e, "report_age_seconds")));
    json_t *c0 = json_array_get(json_object_get(e, "claims"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "pool")), "fast");
    assert_true(json_is_object(json_object_get(c0, "features_used")));
    assert_true(json_is_object(json_object_get(c0, "ledger")));
    assert_true(
        json_is_number(json_object_get(json_object_get(c0, "terms"), "latency_stretch_percent")));
    assert_true(json_is_number(json_object_get(json_object_get(e, "cpu"), "stretch_percent")));
    assert_true(fabs(json_real_value(json_object_get(e, "slowdown_percent")) - s.slowdown_percent) <
                1e-9);
    dd_node_scores_release(&s, 1);
    world_close(&w);
}

/* GPUs from the cache: 4 allocatable, 3 requested by bound pods. */
static int three_of_four(void *ctx, const char *node, double *alloc, double *req)
{
    (void)ctx;
    (void)node;
    *alloc = 4;
    *req = 3;
    return 0;
}

static void test_gpu_shortage(void **state)
{
    struct world w;
    struct node_spec a = base_spec("a");
    struct dd_pod_profile one = gpu_pod("one", 1, 60, 200), two = gpu_pod("two", 2, 60, 200);
    (void)state;
    world_open(&w);
    put_node(w.cluster, &a);
    world_ready(&w, "none");
    w.env.gpus.node_gpus = three_of_four;
    struct dd_node_score s = score_one(&w, &one, "a", false);
    assert_true(s.score > 0);
    s = score_one(&w, &two, "a", false);
    assert_int_equal(s.score, 0);
    assert_true(isinf(s.slowdown_percent));
    /* a provisional entry takes the last free GPU */
    struct dd_ledger_entry le = {.gpus = 1};
    snprintf(le.uid, sizeof(le.uid), "first");
    snprintf(le.node, sizeof(le.node), "a");
    assert_int_equal(dd_ledger_record(w.ledger, &le, NOW), 0);
    world_ready(&w, "one");
    w.env.gpus.node_gpus = three_of_four;
    s = score_one(&w, &one, "a", false);
    assert_int_equal(s.score, 0);
    world_close(&w);
}

/* Equal nodes: ties go to the first name; lower GPU utilisation breaks them. */
static void test_ties(void **state)
{
    struct world w;
    struct node_spec a = base_spec("a"), b = base_spec("b");
    struct dd_pod_profile pod = gpu_pod("p", 1, 60, 200);
    const char *names[2] = {"a", "b"};
    struct dd_node_score out[2];
    char err[128];
    (void)state;
    world_open(&w);
    put_node(w.cluster, &a);
    put_node(w.cluster, &b);
    world_ready(&w, pod.uid);
    assert_int_equal(dd_score_pod(&w.opts, &w.env, &pod, names, 2, DD_SCORE_PRIORITIZE, false, out,
                                  err, sizeof(err)),
                     0);
    assert_int_equal(dd_score_best(out, 2), 0);
    out[0].gpu_util = 90;
    out[1].gpu_util = 10;
    assert_int_equal(dd_score_best(out, 2), 1);
    world_close(&w);
}

/* ---- ledger ---- */

static void test_ledger_life(void **state)
{
    struct dd_ledger_options o;
    struct dd_ledger *l;
    struct dd_ledger_view v;
    struct dd_ledger_entry e = {.gpus = 1, .n_loads = 1};
    (void)state;
    dd_ledger_options_init(&o);
    assert_int_equal(dd_ledger_new(&o, &l), 0);
    /* an empty ledger's view is empty (no qsort of a NULL array: UBSan) */
    assert_int_equal(dd_ledger_view(l, NULL, NOW, &v), 0);
    assert_int_equal(v.n, 0);
    assert_null(dd_ledger_view_find(&v, "a", "fast"));
    dd_ledger_view_release(&v);
    snprintf(e.uid, sizeof(e.uid), "u1");
    snprintf(e.node, sizeof(e.node), "a");
    snprintf(e.loads[0].pool, sizeof(e.loads[0].pool), "fast");
    e.loads[0].write_mbps = 50;
    e.loads[0].duplicate_share = 0.5;
    assert_int_equal(dd_ledger_record(l, &e, NOW), 0);
    /* scoring again replaces, on another node */
    snprintf(e.node, sizeof(e.node), "b");
    assert_int_equal(dd_ledger_record(l, &e, NOW), 0);
    assert_int_equal(dd_ledger_size(l), 1);
    assert_int_equal(dd_ledger_view(l, NULL, NOW, &v), 0);
    assert_null(dd_ledger_view_find(&v, "a", "fast"));
    const struct dd_ledger_sum *s = dd_ledger_view_find(&v, "b", "fast");
    assert_non_null(s);
    assert_true(fabs(s->write_mbps - 50) < 1e-9 && fabs(s->dup_write_mbps - 25) < 1e-9);
    assert_true(fabs(dd_ledger_view_find(&v, "b", "")->provisional_gpus - 1) < 1e-9);
    dd_ledger_view_release(&v);
    /* its own entry is not counted */
    assert_int_equal(dd_ledger_view(l, "u1", NOW, &v), 0);
    assert_int_equal(v.n, 0);
    dd_ledger_view_release(&v);
    /* provisional expires after 30 s unless bound */
    assert_int_equal(dd_ledger_expire(l, NOW + 29000), 0);
    assert_int_equal(dd_ledger_bind(l, "u1", "c", NULL, NOW + 29000), 0); /* moved by the binding */
    assert_int_equal(dd_ledger_expire(l, NOW + 31000), 0);
    assert_int_equal(dd_ledger_view(l, NULL, NOW + 31000, &v), 0);
    assert_non_null(dd_ledger_view_find(&v, "c", "fast"));
    assert_int_equal(dd_ledger_view_find(&v, "c", "")->provisional_gpus,
                     0); /* bound: in the cache */
    dd_ledger_view_release(&v);
    /* a report of c that shows the pod's I/O ends it; one without does not */
    struct dd_report r;
    assert_int_equal(dd_report_alloc(&r, 0, 0, 1), 0);
    snprintf(r.node, sizeof(r.node), "c");
    snprintf(r.pods[0].uid, sizeof(r.pods[0].uid), "u1");
    r.pods[0].io_read_mbps = 0;
    r.pods[0].io_write_mbps = 0.1;
    assert_int_equal(dd_ledger_observe(l, &r, NOW + 40000), 0);
    r.pods[0].io_write_mbps = 80;
    snprintf(r.node, sizeof(r.node), "b");
    assert_int_equal(dd_ledger_observe(l, &r, NOW + 40000), 0); /* another node */
    snprintf(r.node, sizeof(r.node), "c");
    assert_int_equal(dd_ledger_observe(l, &r, NOW + 40000), 1);
    assert_int_equal(dd_ledger_size(l), 0);
    dd_report_release(&r);
    /* the rebuild after a restart: a binding with the pod's load */
    assert_int_equal(dd_ledger_bind(l, "u2", "a", NULL, NOW), 0);
    assert_int_equal(dd_ledger_size(l), 0);
    assert_int_equal(dd_ledger_bind(l, "u2", "a", &e, NOW), 0);
    assert_int_equal(dd_ledger_size(l), 1);
    json_t *j = dd_ledger_to_json(l, "a", NOW);
    json_t *je = json_array_get(json_object_get(j, "entries"), 0);
    assert_string_equal(json_string_value(json_object_get(je, "uid")), "u2");
    assert_string_equal(json_string_value(json_object_get(je, "state")), "bound");
    json_decref(j);
    assert_true(dd_ledger_remove(l, "u2"));
    assert_false(dd_ledger_remove(l, "u2"));
    /* bound entries expire after bound_ttl_s */
    assert_int_equal(dd_ledger_bind(l, "u3", "a", &e, NOW), 0);
    assert_int_equal(dd_ledger_expire(l, NOW + 599000), 0);
    assert_int_equal(dd_ledger_expire(l, NOW + 600000), 1);
    dd_ledger_free(l);
}

/* ---- profiles ---- */

static struct dd_kube_claim claim(const char *name, const char *pool, bool rw)
{
    struct dd_kube_claim c;
    memset(&c, 0, sizeof(c));
    snprintf(c.name, sizeof(c.name), "%s", name);
    c.known = true;
    c.ours = pool != NULL;
    snprintf(c.pool, sizeof(c.pool), "%s", pool ? pool : "");
    c.read_write = rw;
    c.request_bytes = 1u << 30;
    return c;
}

static void test_profiles(void **state)
{
    struct dd_profile_set set;
    struct dd_kube_pod pod;
    struct dd_pod_profile p;
    char err[256];
    json_t *cfg;
    (void)state;
    dd_profile_set_init(&set);
    cfg = json_loads("{\"trainer\": {\"read_mbps\": 800, \"write_mbps\": 30, "
                     "\"duplicate_share\": 0.7}, \"default\": {\"write_mbps\": 20}}",
                     0, NULL);
    assert_int_equal(dd_profile_set_from_json(&set, cfg, err, sizeof(err)), 0);
    json_decref(cfg);
    assert_true(fabs(set.dflt.write_mbps - 20) < 1e-9);
    cfg = json_loads("{\"x\": {\"write_mbps\": -1}}", 0, NULL);
    assert_int_equal(dd_profile_set_from_json(&set, cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "profiles.x.write_mbps"));
    json_decref(cfg);
    cfg = json_loads("{\"x\": {\"writes\": 1}}", 0, NULL);
    assert_int_equal(dd_profile_set_from_json(&set, cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "writes"));
    json_decref(cfg);

    /* the pod's annotations split: writes over rw claims, reads over all,
     * claims of other classes dropped, unknown claims counted */
    memset(&pod, 0, sizeof(pod));
    snprintf(pod.uid, sizeof(pod.uid), "u");
    pod.gpus = 2;
    snprintf(pod.write_mbps, sizeof(pod.write_mbps), "100");
    snprintf(pod.read_mbps, sizeof(pod.read_mbps), "300");
    snprintf(pod.duplicate_share, sizeof(pod.duplicate_share), "0.25");
    pod.claims[0] = claim("ckpt", "fast", true);
    pod.claims[1] = claim("data", "bulk", false);
    pod.claims[2] = claim("scratch", NULL, true);
    pod.claims[3] = claim("later", "fast", true);
    pod.claims[3].known = false;
    pod.n_claims = 4;
    dd_profile_resolve(&set, &pod, &p);
    assert_string_equal(p.source, "annotations");
    assert_int_equal(p.n_claims, 2);
    assert_int_equal(p.n_unknown_claims, 1);
    /* rw claims: ckpt, scratch (later is unknown but still counted in the split) */
    assert_true(fabs(p.claims[0].write_mbps - 100.0 / 3) < 1e-9);
    assert_true(fabs(p.claims[0].read_mbps - 75) < 1e-9);
    assert_true(fabs(p.claims[1].write_mbps) < 1e-9); /* read-only claim */
    assert_true(fabs(p.claims[1].duplicate_share - 0.25) < 1e-9);
    assert_int_equal(p.n_notes, 0);

    /* malformed annotations: noted, default used, never a failure */
    snprintf(pod.write_mbps, sizeof(pod.write_mbps), "lots");
    snprintf(pod.duplicate_share, sizeof(pod.duplicate_share), "1.5");
    snprintf(pod.read_mbps, sizeof(pod.read_mbps), "%s", "");
    snprintf(pod.profile, sizeof(pod.profile), "nope");
    pod.n_claims = 1;
    dd_profile_resolve(&set, &pod, &p);
    assert_int_equal(p.n_notes, 3);
    assert_non_null(strstr(p.notes[0], "nope"));
    assert_non_null(strstr(p.notes[1], "write-mbps"));
    assert_non_null(strstr(p.notes[2], "duplicate-share"));
    assert_true(fabs(p.claims[0].write_mbps - 20) < 1e-9);
    assert_true(isnan(p.claims[0].duplicate_share));
    assert_string_equal(p.source, "default");

    /* a named profile, and a PVC's own annotation overriding for its claim */
    snprintf(pod.profile, sizeof(pod.profile), "trainer");
    snprintf(pod.write_mbps, sizeof(pod.write_mbps), "%s", "");
    snprintf(pod.duplicate_share, sizeof(pod.duplicate_share), "%s", "");
    pod.claims[1] = claim("ckpt2", "fast", true);
    snprintf(pod.claims[1].write_mbps, sizeof(pod.claims[1].write_mbps), "5");
    pod.n_claims = 2;
    dd_profile_resolve(&set, &pod, &p);
    assert_string_equal(p.source, "profile");
    assert_true(fabs(p.claims[0].write_mbps - 30) < 1e-9); /* all the pod's writes */
    assert_true(fabs(p.claims[1].write_mbps - 5) < 1e-9);
    assert_true(fabs(p.claims[0].read_mbps - 400) < 1e-9);
    assert_true(fabs(p.claims[0].duplicate_share - 0.7) < 1e-9);
    json_t *j = dd_profile_to_json(&p);
    assert_int_equal(json_array_size(json_object_get(j, "claims")), 2);
    json_decref(j);
    dd_profile_set_release(&set);
}

/* ---- the extender's wire format ---- */

static void test_extender_codec(void **state)
{
    static const struct {
        const char *body;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"{\"Pod\":{\"metadata\":{}},\"Nodes\":null,\"NodeNames\":[\"a\",\"b\"]}", NULL},
        {"{\"Pod\":{\"metadata\":{}},\"NodeNames\":[\"a\",\"b\",\"a\"]}", "listed twice"},
        {"{\"Pod\":{\"metadata\":{}},\"NodeNames\":[\"a\",\"\"]}", "NodeNames[1]"},
        {"{\"Pod\":{\"metadata\":{}},\"NodeNames\":[\"a\",7]}", "NodeNames[1]"},
        {"{\"Pod\":{\"metadata\":{}},\"NodeNames\":\"a\"}", "NodeNames"},
        {"{\"Pod\":{\"metadata\":{}},\"Nodes\":null,\"NodeNames\":null}", "neither"},
        {"{\"NodeNames\":[\"a\"]}", "Pod"},
        {"{\"Pod\":{\"metadata\":{}},\"Nodes\":{\"items\":[{\"metadata\":{}}]}}",
         "Nodes.items[0].metadata.name"},
        {"[1]", "JSON object"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = json_loads(cases[i].body, 0, NULL);
        struct dd_extender_args a;
        char err[256] = "";
        int r;
        assert_non_null(doc);
        r = dd_extender_args_decode(doc, &a, err, sizeof(err));
        if (cases[i].error) {
            if (r != -EINVAL || !strstr(err, cases[i].error))
                fail_msg("case %zu: %d '%s', want '%s'", i, r, err, cases[i].error);
        } else {
            assert_int_equal(r, 0);
            struct dd_node_score s[2] = {
                {.node = "a", .verdict = DD_VERDICT_UNRESOLVABLE, .score = 0},
                {.node = "b", .verdict = DD_VERDICT_OK, .score = 8}};
            snprintf(s[0].reason, sizeof(s[0].reason), "dedupd: no_pool: x");
            json_t *f = dd_extender_filter_result(&a, s);
            char *text = json_dumps(f, JSON_COMPACT);
            assert_string_equal(text,
                                "{\"Nodes\":null,\"NodeNames\":[\"b\"],\"FailedNodes\":{},"
                                "\"FailedAndUnresolvableNodes\":{\"a\":\"dedupd: no_pool: x\"},"
                                "\"Error\":\"\"}");
            free(text);
            json_decref(f);
            json_t *p = dd_extender_prioritize_result(&a, s);
            text = json_dumps(p, JSON_COMPACT);
            assert_string_equal(text,
                                "[{\"Host\":\"a\",\"Score\":0},{\"Host\":\"b\",\"Score\":8}]");
            free(text);
            json_decref(p);
            dd_extender_args_release(&a);
        }
        json_decref(doc);
    }
}

/* Thousands of names: duplicates found wherever they are, and the
 * prioritize reply (which borrows the request's strings) still whole once
 * the request document is gone. */
static void test_extender_many_names(void **state)
{
    enum { N = 5000 };
    (void)state;
    for (int dup = 0; dup < 3; dup++) {
        json_t *doc = json_pack("{s:{s:{}}, s:n, s:[]}", "Pod", "metadata", "Nodes", "NodeNames");
        json_t *arr = json_object_get(doc, "NodeNames");
        char name[32], err[256] = "";
        struct dd_extender_args a;
        for (int i = 0; i < N; i++) {
            /* dup 1: the last repeats the first; dup 2: two in the middle */
            int k = dup == 1 && i == N - 1 ? 0 : dup == 2 && i == 2501 ? 2500 : i;
            snprintf(name, sizeof(name), "gpu-node-%d.example", k);
            json_array_append_new(arr, json_string(name));
        }
        int r = dd_extender_args_decode(doc, &a, err, sizeof(err));
        if (dup) {
            assert_int_equal(r, -EINVAL);
            assert_non_null(strstr(err, dup == 1 ? "gpu-node-0.example is listed twice"
                                                 : "gpu-node-2500.example is listed twice"));
            json_decref(doc);
            continue;
        }
        assert_int_equal(r, 0);
        assert_int_equal(a.n, N);
        struct dd_node_score *s = calloc(N, sizeof(*s));
        assert_non_null(s);
        for (int i = 0; i < N; i++)
            s[i] = (struct dd_node_score){.node = a.names[i], .score = i % 12 - 1};
        json_t *p = dd_extender_prioritize_result(&a, s);
        dd_extender_args_release(&a);
        json_decref(doc);
        free(s);
        assert_int_equal(json_array_size(p), N);
        for (int i = 0; i < N; i++) {
            json_t *h = json_array_get(p, (size_t)i);
            snprintf(name, sizeof(name), "gpu-node-%d.example", i);
            assert_string_equal(json_string_value(json_object_get(h, "Host")), name);
            int want = i % 12 - 1 < 0 ? 0 : i % 12 - 1 > 10 ? 10 : i % 12 - 1;
            assert_int_equal(json_integer_value(json_object_get(h, "Score")), want);
        }
        json_decref(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_more_contention_never_scores_higher),
        cmocka_unit_test(test_absolute_scale),
        cmocka_unit_test(test_score_independent_of_candidates),
        cmocka_unit_test(test_many_candidates_same_as_alone),
        cmocka_unit_test(test_pool_volume_choice),
        cmocka_unit_test(test_prediction_memo),
        cmocka_unit_test(test_neutral_and_fast_paths),
        cmocka_unit_test(test_filter_reasons),
        cmocka_unit_test(test_gpus_and_explanation),
        cmocka_unit_test(test_gpu_shortage),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_ledger_life),
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_extender_codec),
        cmocka_unit_test(test_extender_many_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
