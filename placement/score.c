/*
 * The pod's predicted I/O slowdown per candidate node, and the 0..10 score
 * (see score.h for the figure and its terms).
 */
#define _GNU_SOURCE
#include "placement/score.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

const char *const dd_verdict_names[3] = {"scored", "neutral", "unresolvable"};
#define DD_FR_NAME_(id, name) name,
const char *const dd_filter_reason_names[DD_FR_COUNT] = {DD_FILTER_REASONS(DD_FR_NAME_)};

/* MB/s (10^6 B/s) to GiB/s. */
#define MBPS_TO_GIBPS (1e6 / 1073741824.0)

void dd_score_options_init(struct dd_score_options *o)
{
    o->neutral_score = 5;
    o->scale_percent = 25;
    o->device_mbps_rotational = 200;
    o->device_mbps_ssd = 2000;
    o->space_margin = 0.10;
    o->max_physical_use = 0.95;
}

int dd_score_from_slowdown(const struct dd_score_options *o, double slowdown_percent)
{
    double s;
    if (isnan(slowdown_percent))
        return o->neutral_score;
    if (slowdown_percent <= 0)
        return 10;
    if (isinf(slowdown_percent))
        return 0;
    s = 10.0 / (1.0 + slowdown_percent / o->scale_percent);
    return (int)lround(s);
}

/* Queueing stretch of a busy share u: u / (1 - u), linear above 0.9. */
static double queue_stretch(double u)
{
    if (!(u > 0))
        return 0;
    if (u <= 0.9)
        return u / (1 - u);
    return 9.0 + (u - 0.9) * 100.0;
}

static double or_zero(double x)
{
    return isfinite(x) ? x : 0;
}

/* One claim placed on one node: what the scorer needs between the batch
 * prediction and the figure. */
struct claim_eval {
    const struct dd_claim_load *claim;
    const struct dd_report_volume *vol; /* NULL: the claim lives on another node */
    const struct dd_ledger_sum *ledger;
    double add_write, add_read; /* ledger + pod, MB/s */
    size_t row;                 /* its contended row; alone is row + 1 */
};

struct node_eval {
    const struct dd_cluster_node *cn; /* NULL: not scored (neutral or filtered) */
    size_t n_claims;
    struct claim_eval *claims; /* the pod's n_claims, in one array for all nodes */
};

/* Nodes whose rows go to the model in one call: big enough that a call's
 * overhead is noise, small enough that the rows (2 per claim, 160 B each)
 * stay a few hundred KiB and are reused, instead of megabytes of fresh
 * pages per request at 5,000 nodes. */
#define SCORE_CHUNK_NODES 256u

static void set_reason(struct dd_node_score *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_reason(struct dd_node_score *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
    va_end(ap);
}

/* The pool's volume on the node: the writable one with the most free
 * physical space (the one a provisioner filling the emptiest would pick).
 * Chosen from the node's volume summary (cluster.h): a pool's volumes are
 * found by hash, and the name compared once, on the first volume of their
 * group (pool_first): the others of the group carry the same name. Until
 * then no volume is touched. */
static const struct dd_report_volume *pool_volume(const struct dd_cluster_node *n, const char *pool,
                                                  uint64_t pool_hash)
{
    const struct dd_report *r = &n->report;
    long best = -1, group = -1;
    for (size_t i = 0; i < r->n_volumes && i < DD_MAX_VOLUMES_PER_NODE; i++) {
        if (n->pool_hash[i] != pool_hash)
            continue;
        if (n->pool_first[i] != group) {
            /* another name of the same hash, once the pool's group is known */
            if (group >= 0 || strcmp(r->volumes[n->pool_first[i]].pool, pool) != 0)
                continue;
            group = n->pool_first[i];
        }
        if (best < 0 ||
            ((n->vol_flags[best] & DD_CLUSTER_VOL_READ_ONLY) &&
             !(n->vol_flags[i] & DD_CLUSTER_VOL_READ_ONLY)) ||
            n->physical_free[i] > n->physical_free[best])
            best = (long)i;
    }
    return best >= 0 ? &r->volumes[best] : NULL;
}

/* The summary's flags of a volume of n. */
static unsigned vol_flags(const struct dd_cluster_node *n, const struct dd_report_volume *v)
{
    return n->vol_flags[v - n->report.volumes];
}

/* The pod's claims grouped by pool: first[k] is the first claim of claim
 * k's pool, so that each pool's volume is looked up once per node (a
 * report's volumes are cold in the cache at thousands of nodes). */
static void pool_groups(const struct dd_pod_profile *pod, size_t *first)
{
    for (size_t k = 0; k < pod->n_claims; k++) {
        first[k] = k;
        for (size_t j = 0; j < k; j++) {
            if (strcmp(pod->claims[j].pool, pod->claims[k].pool) == 0) {
                first[k] = j;
                break;
            }
        }
    }
}

/* pool_volume of every claim's pool on the node, once a pool. */
static void claim_volumes(const struct dd_pod_profile *pod, const size_t *first,
                          const uint64_t *pool_hash, const struct dd_cluster_node *n,
                          const struct dd_report_volume **vols)
{
    for (size_t k = 0; k < pod->n_claims; k++)
        vols[k] = first[k] < k ? vols[first[k]] : pool_volume(n, pod->claims[k].pool, pool_hash[k]);
}

/* How far ahead of the node being scored the loads of its successors are
 * started: the entry's header FAR nodes ahead, then, once that has
 * arrived, the volumes of the pod's pools and the GPUs NEAR nodes ahead.
 * At thousands of nodes the view is cold in the cache and scoring was a
 * chain of waits on memory, one node at a time. */
#define PREFETCH_FAR  16u
#define PREFETCH_NEAR 8u

/* The second stage: cn's summary is (being) loaded; start on the volume
 * pool_volume will pick for each of the pod's pools (by hash alone: a
 * hint) and on the name it will compare. */
static void prefetch_volumes(const struct dd_cluster_node *cn, const struct dd_pod_profile *pod,
                             const size_t *first, const uint64_t *pool_hash)
{
    const struct dd_report *r = &cn->report;
    for (size_t k = 0; k < pod->n_claims; k++) {
        long best = -1;
        if (first[k] < k)
            continue;
        for (size_t i = 0; i < r->n_volumes && i < DD_MAX_VOLUMES_PER_NODE; i++)
            if (cn->pool_hash[i] == pool_hash[k] &&
                (best < 0 || cn->physical_free[i] > cn->physical_free[best]))
                best = (long)i;
        if (best < 0)
            continue;
        const struct dd_report_volume *v = &r->volumes[best];
        __builtin_prefetch(r->volumes[cn->pool_first[best]].pool);
        __builtin_prefetch(&v->rotational);
        for (size_t off = 0; off < sizeof(v->features.v); off += 64)
            __builtin_prefetch((const char *)v->features.v + off);
    }
}

/* Physical bytes a claim of request_bytes takes on the pool: the pool's
 * observed reduction (logical over data blocks, at least 1), plus margin. */
static double space_need(const struct dd_score_options *o, const struct dd_report_volume *v,
                         uint64_t request_bytes)
{
    double red = v->features.v[DD_F_DEDUP_RATIO];
    if (!(red >= 1))
        red = 1;
    if (red > 20)
        red = 20; /* a nearly empty pool's ratio says little about new data */
    return (double)request_bytes / red * (1 + o->space_margin);
}

/* The hard facts of one node; DD_FR_NONE when it passes. */
static enum dd_filter_reason
hard_facts(const struct dd_score_options *o, const struct dd_score_env *env,
           const struct dd_pod_profile *pod, const struct dd_cluster_node *cn, const char *node,
           const struct dd_report_volume *const *vols, struct dd_node_score *s)
{
    /* space needed per pool by this pod's unbound claims */
    for (size_t i = 0; i < pod->n_claims; i++) {
        const struct dd_claim_load *c = &pod->claims[i];
        const struct dd_report_volume *v;
        if (c->node[0] && strcmp(c->node, node) != 0)
            continue; /* its volume lives elsewhere: kube-scheduler's VolumeBinding decides */
        v = vols[i];
        if (!v) {
            set_reason(s, "dedupd: no_pool: node has no volume of pool %.80s (claim %.80s)",
                       c->pool, c->claim);
            return DD_FR_NO_POOL;
        }
        if (vol_flags(cn, v) & DD_CLUSTER_VOL_READ_ONLY) {
            set_reason(s, "dedupd: read_only: pool %.80s (volume %.80s) is read-only", c->pool,
                       v->name);
            return DD_FR_READ_ONLY;
        }
        if (vol_flags(cn, v) & DD_CLUSTER_VOL_INDEX_DOWN) {
            set_reason(s, "dedupd: index_offline: pool %.80s (volume %.80s) index is %s", c->pool,
                       v->name, v->index_state);
            return DD_FR_INDEX_OFFLINE;
        }
        if (c->bound)
            continue;
        double need = 0;
        for (size_t k = 0; k < pod->n_claims; k++) /* every unbound claim of the pod there */
            if (!pod->claims[k].bound && strcmp(pod->claims[k].pool, c->pool) == 0)
                need += space_need(o, v, pod->claims[k].request_bytes);
        const struct dd_ledger_sum *ls = dd_ledger_view_find(env->ledger, node, c->pool);
        double reserved = ls ? (double)ls->reserve_bytes : 0;
        if (v->physical_free_bytes >= 0) {
            double free_b = (double)v->physical_free_bytes - reserved;
            if (free_b < need) {
                set_reason(s,
                           "dedupd: insufficient_space: pool %.80s has %.1f GiB free physical "
                           "(%.1f GiB reserved in flight), the pod needs %.1f GiB",
                           c->pool, (double)v->physical_free_bytes / 1073741824.0,
                           reserved / 1073741824.0, need / 1073741824.0);
                return DD_FR_NO_SPACE;
            }
            if (v->physical_bytes > 0) {
                double used =
                    (double)(v->physical_bytes - v->physical_free_bytes) + reserved + need;
                if (used / (double)v->physical_bytes > o->max_physical_use) {
                    set_reason(s,
                               "dedupd: physical_use_ceiling: pool %.80s would be %.1f %% used "
                               "(ceiling %.1f %%)",
                               c->pool, 100 * used / (double)v->physical_bytes,
                               100 * o->max_physical_use);
                    return DD_FR_CEILING;
                }
            }
        }
    }
    return DD_FR_NONE;
}

/* The contended and the alone rows of one claim. */
static void claim_rows(const struct dd_report_volume *v, const struct dd_claim_load *c,
                       const struct dd_ledger_sum *ls, struct dd_features *rows)
{
    struct dd_features *con = &rows[0], *alone = &rows[1];
    double lw = ls ? ls->write_mbps : 0, lr = ls ? ls->read_mbps : 0;
    double add = lw + c->write_mbps, dup = (double)NAN;
    struct dd_what_if w = {.write_mbps = add, .duplicate_share = (double)NAN, .cpu_load = 0};

    /* the added writes' duplicate share: the ledger's and the pod's mixed,
     * or the pool's own when any is unknown */
    if (add > 0 && (!ls || isfinite(ls->dup_write_mbps)) && isfinite(c->duplicate_share))
        dup = ((ls ? ls->dup_write_mbps : 0) + c->write_mbps * c->duplicate_share) / add;
    w.duplicate_share = dup;
    *con = v->features;
    dd_features_what_if(con, &w);
    con->v[DD_F_READ_MBPS] = or_zero(con->v[DD_F_READ_MBPS]) + lr + c->read_mbps;

    *alone = v->features;
    alone->v[DD_F_WRITE_MBPS] = 0;
    alone->v[DD_F_WRITE_IOPS] = 0;
    alone->v[DD_F_READ_MBPS] = c->read_mbps;
    alone->v[DD_F_NODE_CPU_UTIL_EX_VDO] = 0;
    alone->v[DD_F_CPU_PSI] = 0;
    alone->v[DD_F_IO_PSI] = 0;
    alone->v[DD_F_RUN_QUEUE] = 0;
    if (isfinite(c->duplicate_share))
        alone->v[DD_F_DEDUP_HIT_RATE] = c->duplicate_share;
    w.write_mbps = c->write_mbps;
    w.duplicate_share = c->duplicate_share;
    dd_features_what_if(alone, &w);
}

static json_t *features_used(const struct dd_features *f)
{
    json_t *o = json_object();
    for (int i = 0; i < DD_F_NMODEL; i++)
        if (isfinite(f->v[i]))
            json_object_set_new(o, dd_feature_table[i].key, json_real(f->v[i]));
    return o;
}

static json_t *pct(double x)
{
    return isfinite(x) ? json_real(100 * x) : json_null();
}

/* The node's figure from the predictions; explanation when asked. */
static void node_figure(const struct dd_score_options *o, const struct dd_score_env *env,
                        const struct dd_pod_profile *pod, struct node_eval *ne,
                        const struct dd_features *rows, const double *cost, const double *lat,
                        bool xgb, uint64_t version, bool explain, struct dd_node_score *s)
{
    const struct dd_report *r = &ne->cn->report;
    json_t *claims = explain ? json_array() : NULL;
    double cores = r->cores, util_ex = r->cpu_util_ex_vdo;
    double vdo_now =
        isfinite(r->vdo_cpu_seconds) && r->interval_s > 0 ? r->vdo_cpu_seconds / r->interval_s : 0;
    double vdo_add = 0, rho = (double)NAN, cpu_stretch = 0, weight_sum = 0, slow = 0;
    double alloc = (double)NAN, requested = (double)NAN, free_gpus = (double)NAN;
    const struct dd_ledger_sum *lg = dd_ledger_view_find(env->ledger, s->node, "");

    if (!isfinite(util_ex))
        util_ex = 0;
    for (size_t i = 0; i < ne->n_claims; i++) {
        struct claim_eval *ce = &ne->claims[i];
        if (ce->vol && isfinite(cost[ce->row]) && cost[ce->row] > 0)
            vdo_add += cost[ce->row] * ce->add_write * MBPS_TO_GIBPS;
    }
    if (cores > 0) {
        double avail = cores * (1 - util_ex);
        rho = avail > 0 ? (vdo_now + vdo_add) / avail : (double)INFINITY;
        cpu_stretch = queue_stretch(rho);
    }
    for (size_t i = 0; i < ne->n_claims; i++) {
        struct claim_eval *ce = &ne->claims[i];
        const struct dd_claim_load *c = ce->claim;
        double w = c->read_mbps + c->write_mbps, lat_s = 0, dev_u, dev_s, total;
        if (!ce->vol)
            continue; /* lives on another node: no figure here */
        if (lat[ce->row + 1] > 0 && isfinite(lat[ce->row]))
            lat_s = lat[ce->row] / lat[ce->row + 1] - 1;
        if (!(lat_s > 0))
            lat_s = 0;
        double bw = ce->vol->rotational == 1 ? o->device_mbps_rotational : o->device_mbps_ssd;
        dev_u =
            or_zero(ce->vol->features.v[DD_F_IO_PSI]) / 100.0 + (ce->add_write + ce->add_read) / bw;
        dev_s = queue_stretch(dev_u);
        total = (1 + lat_s) * (1 + dev_s) * (1 + cpu_stretch) - 1;
        if (w <= 0)
            w = 1e-9; /* all-zero rates: equal weights */
        slow += w * total;
        weight_sum += w;
        if (claims) {
            json_t *led =
                ce->ledger ? json_pack("{s:i, s:f, s:f, s:I}", "entries", (int)ce->ledger->entries,
                                       "write_mbps", ce->ledger->write_mbps, "read_mbps",
                                       ce->ledger->read_mbps, "reserve_bytes",
                                       (json_int_t)ce->ledger->reserve_bytes)
                           : json_pack("{s:i}", "entries", 0);
            json_array_append_new(
                claims,
                json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:{s:f, s:f, s:f}, s:{s:o, s:o, "
                          "s:o, s:o}}",
                          "claim", c->claim, "pool", c->pool, "volume", ce->vol->name, "mode",
                          ce->vol->mode, "features_used", features_used(&ce->vol->features),
                          "what_if", features_used(&rows[ce->row]), "ledger", led, "predicted",
                          "latency_ms_contended", lat[ce->row], "latency_ms_alone",
                          lat[ce->row + 1], "cost_cpu_s_per_gib", cost[ce->row], "terms",
                          "latency_stretch_percent", pct(lat_s), "device_busy_share",
                          json_real(dev_u), "device_stretch_percent", pct(dev_s),
                          "claim_stretch_percent", pct(total)));
        }
    }
    slow = weight_sum > 0 ? 100 * slow / weight_sum : 0;

    if (env->gpus.node_gpus && env->gpus.node_gpus(env->gpus.ctx, s->node, &alloc, &requested) == 0)
        free_gpus = alloc - requested - (lg ? lg->provisional_gpus : 0);
    if (isfinite(free_gpus) && free_gpus + 1e-9 < pod->gpus)
        slow = (double)INFINITY;

    s->verdict = DD_VERDICT_OK;
    s->slowdown_percent = slow;
    s->score = dd_score_from_slowdown(o, slow);
    if (isinf(slow))
        set_reason(s, "only %.0f GPUs free of the %.0f the pod requests", free_gpus, pod->gpus);
    if (!explain)
        return;
    s->explanation = json_pack(
        "{s:s, s:i, s:o, s:s, s:s, s:f, s:b, s:{s:s, s:I}, s:o, s:{s:o, s:f, s:f, s:f, s:o, s:o}, "
        "s:{s:f, s:o, s:o, s:f, s:o, s:o}, s:s}",
        "node", s->node, "score", s->score, "slowdown_percent",
        isfinite(slow) ? json_real(slow) : json_string("infinite"), "verdict",
        dd_verdict_names[s->verdict], "reason", s->reason, "report_age_seconds",
        dd_cluster_node_age_s(ne->cn, env->now_ms), "stale", false, "model", "source",
        xgb ? "xgboost" : "prior", "version", (json_int_t)version, "claims", claims, "cpu", "cores",
        cores > 0 ? json_real(cores) : json_null(), "util_ex_vdo", util_ex, "vdo_cores_now",
        vdo_now, "vdo_cores_added", vdo_add, "vdo_busy_share",
        isfinite(rho) ? json_real(rho) : json_null(), "stretch_percent", pct(cpu_stretch), "gpus",
        "requested_by_pod", pod->gpus, "allocatable",
        isfinite(alloc) ? json_real(alloc) : json_null(), "requested_by_bound_pods",
        isfinite(requested) ? json_real(requested) : json_null(), "provisional_in_ledger",
        lg ? lg->provisional_gpus : 0.0, "free",
        isfinite(free_gpus) ? json_real(free_gpus) : json_null(), "util_percent",
        isfinite(s->gpu_util) ? json_real(s->gpu_util) : json_null(), "scale",
        "score = round(10 / (1 + slowdown% / scale%))");
    json_object_set_new(s->explanation, "scale_percent", json_real(o->scale_percent));
}

static json_t *neutral_explanation(const struct dd_score_env *env, const struct dd_node_score *s,
                                   const struct dd_cluster_node *cn, bool stale)
{
    json_t *e = json_pack("{s:s, s:i, s:s, s:s, s:s}", "node", s->node, "score", s->score,
                          "verdict", dd_verdict_names[s->verdict], "reason", s->reason,
                          "kubernetes", env->kube_source ? env->kube_source : "none");
    if (cn) {
        json_object_set_new(e, "report_age_seconds",
                            json_real(dd_cluster_node_age_s(cn, env->now_ms)));
        json_object_set_new(e, "stale", json_boolean(stale));
    }
    return e;
}

void dd_node_scores_release(struct dd_node_score *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(s[i].explanation);
        s[i].explanation = NULL;
    }
}

int dd_score_pod(const struct dd_score_options *o, const struct dd_score_env *env,
                 const struct dd_pod_profile *pod, const char *const *nodes, size_t n,
                 enum dd_score_what what, bool explain, struct dd_node_score *out, char *errbuf,
                 size_t errlen)
{
    struct node_eval *ne = NULL;
    const struct dd_cluster_node **cns = NULL;
    struct claim_eval *ces = NULL;
    struct dd_features *rows = NULL;
    double *cost = NULL, *lat = NULL;
    bool fast = pod->gpus <= 0 || pod->n_claims == 0, xgb = false;
    size_t first[DD_KUBE_MAX_CLAIMS];
    uint64_t pool_hash[DD_KUBE_MAX_CLAIMS];
    const struct dd_report_volume *vols[DD_KUBE_MAX_CLAIMS];
    size_t max_rows = 2 * SCORE_CHUNK_NODES * pod->n_claims;
    uint64_t version = 0;
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        /* field by field: a compound literal zeroed the 256-byte reason
         * too, 1.5 MB of stores at 5,000 nodes */
        struct dd_node_score *s = &out[i];
        s->node = nodes[i];
        s->verdict = DD_VERDICT_NEUTRAL;
        s->filter_reason = DD_FR_NONE;
        s->reason[0] = '\0';
        s->score = o->neutral_score;
        s->slowdown_percent = (double)NAN;
        s->gpu_util = (double)NAN;
        s->explanation = NULL;
    }
    if (fast) {
        for (size_t i = 0; i < n; i++) {
            set_reason(&out[i], pod->gpus <= 0 ? "the pod requests no GPU"
                                               : "the pod uses no dedupd pool (or its claims are "
                                                 "not in the cache yet)");
            if (explain)
                out[i].explanation = neutral_explanation(env, &out[i], NULL, false);
        }
        return 0;
    }
    cns = dd_malloc((n ? n : 1) * sizeof(*cns));
    if (!cns) {
        r = -ENOMEM;
        goto out;
    }
    if (what == DD_SCORE_PRIORITIZE && n > 0) {
        ne = dd_calloc(n, sizeof(*ne));
        ces = dd_malloc(n * pod->n_claims * sizeof(*ces));
        /* not zeroed: claim_rows writes every row that is used */
        rows = dd_malloc(max_rows * sizeof(*rows));
        cost = dd_malloc(max_rows * sizeof(*cost));
        lat = dd_malloc(max_rows * sizeof(*lat));
        if (!ne || !ces || !rows || !cost || !lat) {
            r = -ENOMEM;
            goto out;
        }
    }
    pool_groups(pod, first);
    for (size_t k = 0; k < pod->n_claims; k++)
        pool_hash[k] = dd_cluster_name_hash(pod->claims[k].pool);

    /* the verdicts, and what each scored node's claims need; the loads of
     * the nodes ahead started on the way (cns[i] found at the second stage) */
    for (size_t i = 0; i < n && i < PREFETCH_FAR; i++)
        dd_cluster_prefetch(env->cluster, nodes[i]);
    for (size_t i = 0; i < n && i < PREFETCH_NEAR; i++)
        cns[i] = dd_cluster_find(env->cluster, nodes[i]);
    for (size_t i = 0; i < n; i++) {
        struct dd_node_score *s = &out[i];
        const struct dd_cluster_node *cn = cns[i];
        bool stale;
        if (i + PREFETCH_FAR < n)
            dd_cluster_prefetch(env->cluster, nodes[i + PREFETCH_FAR]);
        if (i + PREFETCH_NEAR < n) {
            cns[i + PREFETCH_NEAR] = dd_cluster_find(env->cluster, nodes[i + PREFETCH_NEAR]);
            if (cns[i + PREFETCH_NEAR])
                prefetch_volumes(cns[i + PREFETCH_NEAR], pod, first, pool_hash);
        }
        if (!cn) {
            set_reason(s, "no report from this node: neutral (fail open)");
            if (explain)
                s->explanation = neutral_explanation(env, s, NULL, false);
            continue;
        }
        stale = dd_cluster_node_stale(&env->cluster->opts, cn, env->now_ms);
        if (stale) {
            /* whole seconds as integers: formatting two doubles was most of
             * the cost of a large request whose nodes are all stale */
            set_reason(s, "its last report is %lld s old (stale after %lld s): neutral (fail open)",
                       llround(dd_cluster_node_age_s(cn, env->now_ms)),
                       llround(dd_cluster_stale_bound_s(&env->cluster->opts, cn)));
            if (explain)
                s->explanation = neutral_explanation(env, s, cn, true);
            continue;
        }
        s->gpu_util = cn->gpu_util;
        claim_volumes(pod, first, pool_hash, cn, vols);
        s->filter_reason = hard_facts(o, env, pod, cn, nodes[i], vols, s);
        if (s->filter_reason != DD_FR_NONE) {
            s->verdict = DD_VERDICT_UNRESOLVABLE;
            s->score = 0;
            if (explain)
                s->explanation = neutral_explanation(env, s, cn, false);
            continue;
        }
        s->verdict = DD_VERDICT_OK;
        if (what != DD_SCORE_PRIORITIZE)
            continue;
        ne[i].cn = cn;
        ne[i].claims = &ces[i * pod->n_claims];
        for (size_t k = 0; k < pod->n_claims; k++) {
            const struct dd_claim_load *c = &pod->claims[k];
            struct claim_eval *ce = &ne[i].claims[ne[i].n_claims++];
            *ce = (struct claim_eval){.claim = c};
            if (c->node[0] && strcmp(c->node, nodes[i]) != 0)
                continue; /* vol stays NULL */
            ce->vol = vols[k];
            ce->ledger = dd_ledger_view_find(env->ledger, nodes[i], c->pool);
            ce->add_write = (ce->ledger ? ce->ledger->write_mbps : 0) + c->write_mbps;
            ce->add_read = (ce->ledger ? ce->ledger->read_mbps : 0) + c->read_mbps;
        }
    }
    if (what != DD_SCORE_PRIORITIZE)
        goto out;

    /* the what-ifs, a chunk of nodes per model call, then their figures */
    for (size_t c0 = 0; c0 < n; c0 += SCORE_CHUNK_NODES) {
        size_t c1 = c0 + SCORE_CHUNK_NODES < n ? c0 + SCORE_CHUNK_NODES : n, n_rows = 0;
        for (size_t i = c0; i < c1; i++) {
            for (size_t k = 0; ne[i].cn && k < ne[i].n_claims; k++) {
                struct claim_eval *ce = &ne[i].claims[k];
                if (!ce->vol)
                    continue;
                ce->row = n_rows;
                claim_rows(ce->vol, ce->claim, ce->ledger, &rows[n_rows]);
                n_rows += 2;
            }
        }
        if (n_rows > 0 && (r = env->model.predict(env->model.ctx, rows, n_rows, cost, lat, &xgb,
                                                  &version, errbuf, errlen)) < 0)
            goto out;
        for (size_t i = c0; i < c1; i++)
            if (ne[i].cn)
                node_figure(o, env, pod, &ne[i], rows, cost, lat, xgb, version, explain, &out[i]);
    }
out:
    dd_free(cns);
    dd_free(ne);
    dd_free(ces);
    dd_free(rows);
    dd_free(cost);
    dd_free(lat);
    if (r < 0)
        dd_node_scores_release(out, n);
    return r;
}

void dd_score_ledger_entry(const struct dd_score_options *o, const struct dd_score_env *env,
                           const struct dd_pod_profile *pod, const char *node,
                           struct dd_ledger_entry *ret)
{
    const struct dd_cluster_node *cn = env->cluster ? dd_cluster_find(env->cluster, node) : NULL;
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->uid, sizeof(ret->uid), "%s", pod->uid);
    snprintf(ret->ns, sizeof(ret->ns), "%s", pod->ns);
    snprintf(ret->name, sizeof(ret->name), "%s", pod->name);
    snprintf(ret->node, sizeof(ret->node), "%s", node);
    ret->gpus = pod->gpus;
    for (size_t i = 0; i < pod->n_claims && ret->n_loads < DD_KUBE_MAX_CLAIMS; i++) {
        const struct dd_claim_load *c = &pod->claims[i];
        struct dd_ledger_load *l;
        const struct dd_report_volume *v;
        if (c->node[0] && strcmp(c->node, node) != 0)
            continue;
        l = &ret->loads[ret->n_loads++];
        snprintf(l->pool, sizeof(l->pool), "%s", c->pool);
        l->read_mbps = c->read_mbps;
        l->write_mbps = c->write_mbps;
        l->duplicate_share = c->duplicate_share;
        if (c->bound)
            continue;
        v = cn ? pool_volume(cn, c->pool, dd_cluster_name_hash(c->pool)) : NULL;
        l->reserve_bytes = v ? (uint64_t)space_need(o, v, c->request_bytes) : c->request_bytes;
    }
}

long dd_score_best(const struct dd_node_score *s, size_t n)
{
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        const struct dd_node_score *x = &s[i], *b;
        if (x->verdict != DD_VERDICT_OK || isinf(x->slowdown_percent))
            continue;
        if (best < 0) {
            best = (long)i;
            continue;
        }
        b = &s[best];
        if (x->score != b->score) {
            if (x->score > b->score)
                best = (long)i;
            continue;
        }
        if (x->slowdown_percent != b->slowdown_percent) {
            if (x->slowdown_percent < b->slowdown_percent)
                best = (long)i;
            continue;
        }
        double xu = isfinite(x->gpu_util) ? x->gpu_util : 0,
               bu = isfinite(b->gpu_util) ? b->gpu_util : 0;
        if (xu < bu)
            best = (long)i;
    }
    return best;
}
