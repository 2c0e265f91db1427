/*
 * The placement call path (placer.h).
 */
#define _GNU_SOURCE
#include "placement/placer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/common.h"
#include "placement/costmodel.h"

/*
 * The prediction memo: what the model answered for a row, so that scoring
 * the same what-ifs again (kube-scheduler retries a pod; a Deployment's
 * pods share a profile, and each one placed changes the rows of one node
 * only) costs a lookup instead of a prediction. Keyed on the row exactly
 * as the model reads it (the float features: the node's report, the
 * pool's volume, the ledger's load and the pod's, as claim_rows built
 * them) and on the model that answered (XGBoost or the prior, and its
 * version): any change of input or model is a different key, so a hit is
 * what the model would answer now. Used only while XGBoost serves (a
 * batch costs about 1 us a row there; the prior costs less than a lookup).
 * Direct-mapped, fixed size; one mutex, held for a chunk's lookups or
 * inserts, never across a prediction.
 */
#define MEMO_SLOTS 65536u /* 4 rows a node at 5,000 nodes, several profiles */

struct memo_slot {
    uint64_t version; /* the model's */
    bool used;
    float row[DD_CM_NFEATURES];
    double cost, latency;
};

struct memo {
    pthread_mutex_t lock;
    struct memo_slot *slots; /* MEMO_SLOTS */
    uint64_t hits, misses;   /* under lock */
};

struct dd_placer {
    struct dd_cluster *cluster;
    struct dd_score_model model; /* the caller's; requests go through the memo */
    struct memo memo;
    struct dd_kube *kube; /* borrowed; NULL: none */
    char kube_source[1100];
    struct dd_ledger *ledger;

    pthread_rwlock_t cfg_lock; /* opts, profiles, shadow */
    struct dd_score_options opts;
    struct dd_profile_set profiles;
    bool shadow;
    dd_placer_learned_fn learned; /* NULL: none */
    void *learned_ctx;
};

int dd_placer_new(struct dd_cluster *cluster, const struct dd_ledger_options *lo,
                  const struct dd_score_model *model, struct dd_placer **ret)
{
    struct dd_placer *p = dd_calloc(1, sizeof(*p));
    int r;
    if (!p)
        return -ENOMEM;
    p->cluster = cluster;
    p->model = *model;
    snprintf(p->kube_source, sizeof(p->kube_source), "none");
    dd_score_options_init(&p->opts);
    dd_profile_set_init(&p->profiles);
    p->memo.slots = dd_calloc(MEMO_SLOTS, sizeof(*p->memo.slots));
    if (!p->memo.slots) {
        dd_free(p);
        return -ENOMEM;
    }
    if ((r = dd_ledger_new(lo, &p->ledger)) < 0) {
        dd_free(p->memo.slots);
        dd_free(p);
        return r;
    }
    pthread_mutex_init(&p->memo.lock, NULL);
    pthread_rwlock_init(&p->cfg_lock, NULL);
    *ret = p;
    return 0;
}

struct dd_placer *dd_placer_free(struct dd_placer *p)
{
    if (!p)
        return NULL;
    dd_ledger_free(p->ledger);
    dd_profile_set_release(&p->profiles);
    pthread_rwlock_destroy(&p->cfg_lock);
    pthread_mutex_destroy(&p->memo.lock);
    dd_free(p->memo.slots);
    dd_free(p);
    return NULL;
}

int dd_placer_configure(struct dd_placer *p, const struct dd_score_options *opts,
                        const struct dd_profile_set *profiles, bool shadow)
{
    struct dd_profile_set fresh;
    dd_profile_set_init(&fresh);
    if (profiles) {
        fresh.dflt = profiles->dflt;
        if (profiles->n) {
            fresh.defs = dd_calloc(profiles->n, sizeof(*fresh.defs));
            if (!fresh.defs)
                return -ENOMEM;
            memcpy(fresh.defs, profiles->defs, profiles->n * sizeof(*fresh.defs));
            fresh.n = profiles->n;
        }
    }
    pthread_rwlock_wrlock(&p->cfg_lock);
    p->opts = *opts;
    dd_profile_set_release(&p->profiles);
    p->profiles = fresh;
    p->shadow = shadow;
    pthread_rwlock_unlock(&p->cfg_lock);
    return 0;
}

bool dd_placer_shadow(struct dd_placer *p)
{
    bool s;
    pthread_rwlock_rdlock(&p->cfg_lock);
    s = p->shadow;
    pthread_rwlock_unlock(&p->cfg_lock);
    return s;
}

void dd_placer_set_kube(struct dd_placer *p, struct dd_kube *kube, const char *source)
{
    p->kube = kube;
    snprintf(p->kube_source, sizeof(p->kube_source), "%s", source ? source : "none");
}

void dd_placer_set_learned(struct dd_placer *p, dd_placer_learned_fn fn, void *ctx)
{
    p->learned = fn;
    p->learned_ctx = ctx;
}

/* The default profile's rates replaced by the learned ones, when the pod
 * would otherwise get the default (see dd_placer_set_learned). */
static void learned_profile(struct dd_placer *p, const json_t *pod_json, struct dd_placement *q)
{
    double read = (double)NAN, write = (double)NAN;
    char why[160] = "";
    struct dd_profile_set set;
    if (!p->learned || !pod_json || strcmp(q->profile.source, "default") != 0 ||
        q->profile.gpus <= 0 || q->profile.n_claims == 0)
        return;
    if (!p->learned(p->learned_ctx, pod_json, &read, &write, why, sizeof(why)) || !isfinite(read) ||
        !isfinite(write) || read < 0 || write < 0)
        return;
    pthread_rwlock_rdlock(&p->cfg_lock);
    set = p->profiles; /* a shallow copy: the named profiles are shared, read only */
    set.dflt.read_mbps = read;
    set.dflt.write_mbps = write;
    dd_profile_resolve(&set, &q->pod, &q->profile);
    pthread_rwlock_unlock(&p->cfg_lock);
    q->profile.source = "learned";
    if (q->profile.n_notes < DD_PROFILE_MAX_NOTES)
        snprintf(q->profile.notes[q->profile.n_notes++], sizeof(q->profile.notes[0]),
                 "learned: %.150s", why);
}

const char *dd_placer_kube_source(struct dd_placer *p)
{
    return p->kube_source;
}

struct dd_kube *dd_placer_kube(struct dd_placer *p)
{
    return p->kube;
}

struct dd_ledger *dd_placer_ledger(struct dd_placer *p)
{
    return p->ledger;
}

/* With no Kubernetes cache, a pod may name its pool itself
 * (dedupd.io/pool): its claims, or the pod as one claim, are on it. */
static void pool_from_annotation(const json_t *pod, struct dd_kube_pod *kp)
{
    json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    const char *pool = json_string_value(json_object_get(ann, "dedupd.io/pool"));
    if (!pool || !pool[0] || strlen(pool) >= DD_NAME_MAX)
        return;
    if (kp->n_claims == 0) {
        kp->n_claims = 1;
        memset(&kp->claims[0], 0, sizeof(kp->claims[0]));
        snprintf(kp->claims[0].name, sizeof(kp->claims[0].name), "(pod)");
        kp->claims[0].read_write = true;
    }
    for (size_t i = 0; i < kp->n_claims; i++) {
        struct dd_kube_claim *c = &kp->claims[i];
        if (c->known)
            continue;
        c->known = c->ours = true;
        snprintf(c->pool, sizeof(c->pool), "%s", pool);
    }
}

void dd_placer_memo_stats(struct dd_placer *p, uint64_t *ret_hits, uint64_t *ret_misses)
{
    pthread_mutex_lock(&p->memo.lock);
    *ret_hits = p->memo.hits;
    *ret_misses = p->memo.misses;
    pthread_mutex_unlock(&p->memo.lock);
}

/* The scorer's model (dd_score_model.predict): the placer's model through
 * the memo. */
static int memo_predict(void *ctx, const struct dd_features *rows, size_t n, double *cost,
                        double *latency, bool *ret_xgb, uint64_t *ret_version, char *errbuf,
                        size_t errlen)
{
    struct dd_placer *p = ctx;
    const struct dd_score_model *m = &p->model;
    float(*x)[DD_CM_NFEATURES] = NULL;
    uint32_t *slot = NULL, *miss = NULL;
    struct dd_features *mrows = NULL;
    double *mcost = NULL, *mlat = NULL;
    size_t n_miss = 0;
    bool xgb, xgb2;
    uint64_t version, version2;
    int r;

    /* which model serves now (no rows: nothing predicted) */
    if ((r = m->predict(m->ctx, rows, 0, cost, latency, &xgb, &version, errbuf, errlen)) < 0)
        return r;
    if (!xgb || n == 0) /* the prior: cheaper than a lookup */
        return m->predict(m->ctx, rows, n, cost, latency, ret_xgb, ret_version, errbuf, errlen);

    x = dd_malloc(n * sizeof(*x));
    slot = dd_malloc(n * sizeof(*slot));
    miss = dd_malloc(n * sizeof(*miss));
    if (!x || !slot || !miss) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        dd_features_model_row(&rows[i], x[i]);
        slot[i] = (uint32_t)(XXH3_64bits(x[i], sizeof(x[i])) & (MEMO_SLOTS - 1));
    }
    pthread_mutex_lock(&p->memo.lock);
    for (size_t i = 0; i < n; i++) {
        const struct memo_slot *e = &p->memo.slots[slot[i]];
        if (e->used && e->version == version && memcmp(e->row, x[i], sizeof(x[i])) == 0) {
            cost[i] = e->cost;
            latency[i] = e->latency;
        } else {
            miss[n_miss++] = (uint32_t)i;
        }
    }
    p->memo.hits += n - n_miss;
    p->memo.misses += n_miss;
    pthread_mutex_unlock(&p->memo.lock);
    if (n_miss == 0)
        goto done;

    mrows = dd_malloc(n_miss * sizeof(*mrows));
    mcost = dd_malloc(n_miss * sizeof(*mcost));
    mlat = dd_malloc(n_miss * sizeof(*mlat));
    if (!mrows || !mcost || !mlat) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < n_miss; j++)
        mrows[j] = rows[miss[j]];
    r = m->predict(m->ctx, mrows, n_miss, mcost, mlat, &xgb2, &version2, errbuf, errlen);
    if (r < 0)
        goto out;
    if (xgb2 != xgb || version2 != version) {
        /* the model changed in between: the hits are the old one's; all
         * rows again from the new one, nothing remembered */
        r = m->predict(m->ctx, rows, n, cost, latency, ret_xgb, ret_version, errbuf, errlen);
        goto out;
    }
    pthread_mutex_lock(&p->memo.lock);
    for (size_t j = 0; j < n_miss; j++) {
        struct memo_slot *e = &p->memo.slots[slot[miss[j]]];
        cost[miss[j]] = mcost[j];
        latency[miss[j]] = mlat[j];
        e->used = true;
        e->version = version;
        memcpy(e->row, x[miss[j]], sizeof(e->row));
        e->cost = mcost[j];
        e->latency = mlat[j];
    }
    pthread_mutex_unlock(&p->memo.lock);
done:
    *ret_xgb = xgb;
    *ret_version = version;
out:
    dd_free(x);
    dd_free(slot);
    dd_free(miss);
    dd_free(mrows);
    dd_free(mcost);
    dd_free(mlat);
    return r;
}

static int node_gpus(void *ctx, const char *node, double *alloc, double *requested)
{
    return dd_kube_node_gpus(ctx, node, alloc, requested);
}

int dd_placer_begin(struct dd_placer *p, const json_t *pod_json, const struct dd_kube_pod *pod,
                    uint64_t now_ms, struct dd_placement *q, char *err, size_t errlen)
{
    int r;
    memset(q, 0, sizeof(*q));
    q->placer = p;
    q->now_ms = now_ms;
    if (!pod_json) {
        q->pod = *pod;
    } else if (p->kube) {
        if ((r = dd_kube_pod_resolve(p->kube, pod_json, &q->pod, err, errlen)) < 0)
            return r;
    } else {
        /* no cache: an empty one decodes the pod itself (claims unknown) */
        struct dd_kube *empty;
        if ((r = dd_kube_new(&empty, NULL, 0)) < 0)
            return r;
        r = dd_kube_pod_resolve(empty, pod_json, &q->pod, err, errlen);
        dd_kube_free(empty);
        if (r < 0)
            return r;
        pool_from_annotation(pod_json, &q->pod);
    }
    pthread_rwlock_rdlock(&p->cfg_lock);
    q->opts = p->opts;
    q->shadow = p->shadow;
    dd_profile_resolve(&p->profiles, &q->pod, &q->profile);
    pthread_rwlock_unlock(&p->cfg_lock);
    learned_profile(p, pod_json, q);

    dd_ledger_expire(p->ledger, now_ms);
    q->snap = dd_cluster_snapshot(p->cluster);
    if (!q->snap)
        return -ENOMEM;
    r = dd_ledger_view(p->ledger, q->profile.uid[0] ? q->profile.uid : NULL, now_ms, &q->view);
    if (r < 0) {
        dd_cluster_snapshot_free(q->snap);
        q->snap = NULL;
        return r;
    }
    q->env = (struct dd_score_env){.cluster = q->snap,
                                   .ledger = &q->view,
                                   .model = {memo_predict, p},
                                   .gpus = {p->kube ? node_gpus : NULL, p->kube},
                                   .kube_source = p->kube_source,
                                   .now_ms = now_ms};
    return 0;
}

int dd_placer_score(struct dd_placement *q, const char *const *nodes, size_t n,
                    enum dd_score_what what, bool explain, struct dd_node_score *out, char *err,
                    size_t errlen)
{
    return dd_score_pod(&q->opts, &q->env, &q->profile, nodes, n, what, explain, out, err, errlen);
}

long dd_placer_record_best(struct dd_placement *q, const struct dd_node_score *s, size_t n)
{
    long best = dd_score_best(s, n);
    struct dd_ledger_entry e;
    if (best < 0 || !q->profile.uid[0])
        return -1;
    dd_score_ledger_entry(&q->opts, &q->env, &q->profile, s[best].node, &e);
    if (dd_ledger_record(q->placer->ledger, &e, q->now_ms) < 0)
        return -ENOSPC;
    return best;
}

void dd_placer_end(struct dd_placement *q)
{
    dd_ledger_view_release(&q->view);
    dd_cluster_snapshot_free(q->snap);
    q->snap = NULL;
}

static int live_order(const void *x, const void *y)
{
    const struct dd_node_score *a = x, *b = y;
    bool fa = a->verdict != DD_VERDICT_UNRESOLVABLE, fb = b->verdict != DD_VERDICT_UNRESOLVABLE;
    if (fa != fb)
        return fa ? -1 : 1;
    if (a->score != b->score)
        return b->score - a->score;
    if (isfinite(a->slowdown_percent) != isfinite(b->slowdown_percent))
        return isfinite(a->slowdown_percent) ? -1 : 1;
    if (isfinite(a->slowdown_percent) && a->slowdown_percent != b->slowdown_percent)
        return a->slowdown_percent < b->slowdown_percent ? -1 : 1;
    return strcmp(a->node, b->node);
}

int dd_placer_live(struct dd_placement *q, dd_placer_gpus_fn gpus, void *ctx,
                   struct dd_placer_live *out, char *err, size_t errlen)
{
    struct dd_node_score s[DD_PLACER_LIVE_CANDIDATES];
    const char *names[DD_PLACER_LIVE_CANDIDATES];
    double sd = 0, cpu = 0, free_gpus = 0;
    size_t n_sd = 0, n_cpu = 0, n_gpus = 0, n;
    int e = 0;

    memset(out, 0, sizeof(*out));
    out->rs = (struct dd_rs_live){(double)NAN, (double)NAN, (double)NAN, 0};
    n = DD_MIN(q->snap->n, (size_t)DD_PLACER_LIVE_CANDIDATES);
    for (size_t i = 0; i < n; i++)
        names[i] = q->snap->nodes[i * q->snap->n / n]->report.node;
    if (!n || (e = dd_placer_score(q, names, n, DD_SCORE_PRIORITIZE, false, s, err, errlen)) < 0)
        return e;
    qsort(s, n, sizeof(*s), live_order);
    for (size_t i = 0; i < n && out->n_top < DD_PLACER_LIVE_TOP; i++) {
        const struct dd_cluster_node *cn;
        double g;
        if (s[i].verdict == DD_VERDICT_UNRESOLVABLE)
            break;
        snprintf(out->top[out->n_top++], DD_NAME_MAX, "%s", s[i].node);
        if (isfinite(s[i].slowdown_percent)) {
            sd += s[i].slowdown_percent;
            n_sd++;
        }
        cn = dd_cluster_find(q->snap, s[i].node);
        if (cn && isfinite(cn->report.cpu_util_ex_vdo)) {
            cpu += cn->report.cpu_util_ex_vdo;
            n_cpu++;
        }
        if (gpus && gpus(ctx, s[i].node, &g) == 0) {
            free_gpus += g;
            n_gpus++;
        }
    }
    dd_node_scores_release(s, n);
    out->rs.n_nodes = out->n_top;
    out->rs.top_slowdown_pct = n_sd ? sd / (double)n_sd : (double)NAN;
    out->rs.top_cpu_util = n_cpu ? cpu / (double)n_cpu : (double)NAN;
    out->rs.top_free_gpus = n_gpus ? free_gpus / (double)n_gpus : (double)NAN;
    return 0;
}

bool dd_placer_pod_bound(struct dd_placer *p, const char *uid, const char *ns, const char *name,
                         const char *node, uint64_t now_ms)
{
    struct dd_kube_pod kp;
    struct dd_pod_profile prof;
    struct dd_ledger_entry e;
    struct dd_score_env env = {0};
    struct dd_score_options o;
    struct dd_cluster_snapshot *snap;

    /* the common case: prioritize recorded it; the binding confirms */
    if (!p->kube || dd_kube_pod_lookup(p->kube, ns, name, &kp) < 0)
        return dd_ledger_bind(p->ledger, uid, node, NULL, now_ms) == 0;
    pthread_rwlock_rdlock(&p->cfg_lock);
    dd_profile_resolve(&p->profiles, &kp, &prof);
    o = p->opts;
    pthread_rwlock_unlock(&p->cfg_lock);
    if (prof.gpus <= 0 || prof.n_claims == 0) { /* not a pod we place */
        dd_ledger_remove(p->ledger, uid);
        return false;
    }
    snap = dd_cluster_snapshot(p->cluster);
    env.cluster = snap;
    dd_score_ledger_entry(&o, &env, &prof, node, &e);
    dd_cluster_snapshot_free(snap);
    return dd_ledger_bind(p->ledger, uid, node, &e, now_ms) == 0;
}

void dd_placer_pod_deleted(struct dd_placer *p, const char *uid)
{
    dd_ledger_remove(p->ledger, uid);
}

struct bound_pod {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX], node[DD_NAME_MAX];
};
struct bound_pods {
    struct bound_pod *v;
    size_t n, cap;
};

static void collect_bound(void *ctx, const char *uid, const char *ns, const char *name,
                          const char *node, double gpus)
{
    struct bound_pods *b = ctx;
    (void)gpus;
    if (dd_array_reserve((void **)&b->v, &b->cap, b->n + 1, sizeof(*b->v)) < 0)
        return; /* out of memory: that pod's entry is not rebuilt */
    struct bound_pod *x = &b->v[b->n++];
    snprintf(x->uid, sizeof(x->uid), "%s", uid);
    snprintf(x->ns, sizeof(x->ns), "%s", ns);
    snprintf(x->name, sizeof(x->name), "%s", name);
    snprintf(x->node, sizeof(x->node), "%s", node);
}

size_t dd_placer_rebuild_ledger(struct dd_placer *p, uint64_t now_ms)
{
    struct bound_pods b = {0};
    size_t bound = 0;
    if (!p->kube)
        return 0;
    /* copied out first: the callback runs under the cache's read lock */
    dd_kube_foreach_bound_pod(p->kube, collect_bound, &b);
    for (size_t i = 0; i < b.n; i++)
        bound += dd_placer_pod_bound(p, b.v[i].uid, b.v[i].ns, b.v[i].name, b.v[i].node, now_ms);
    dd_free(b.v);
    return bound;
}

struct dd_cluster_snapshot *dd_placer_snapshot(struct dd_placer *p)
{
    return dd_cluster_snapshot(p->cluster);
}
