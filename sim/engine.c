/*
 * The event loop: one policy over one generated cluster. Events are pod
 * arrivals, report ticks (every interval) and node events (a pod's phase
 * ends); between events every node's rates are constant, so a node is
 * advanced exactly to each event that touches it. A tick samples every
 * node's report from the truth (interval averages plus noise), hands it to
 * the placement library (ledger observe, cluster put) for the dedupd
 * policies, keeps training rows, retrains at set simulated times
 * (synchronously), redraws the pods' bursts and reschedules the nodes.
 *
 * Scheduling follows kube-scheduler: the basic fit (GPUs, CPU, memory
 * requests), the sampling of feasible nodes (percentageOfNodesToScore,
 * adaptive: 50 - nodes/125 %, at least 5 %, at least 100 nodes, from a
 * rotating start), the policy's scores, the highest one (ties at random).
 * The dedupd policies call the real placement code (placement/placer.h:
 * extender filter, then prioritize on what passed; weight x 10 added to
 * the default scores). Pods that fit nowhere wait, in arrival order, and
 * are retried when a pod finishes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "placement/admission.h"
#include "placement/costmodel.h"
#include "placement/placer.h"
#include "placement/rightsize.h"
#include "sim/sim.h"

const char *const sim_policy_names[SIM_P_COUNT] = {
    "default",          "gpu-binpack",  "capacity", "target-load", "dedupd",
    "dedupd-no-ledger", "dedupd-stale", "oracle",   "dedupd-prior"};

#define EPOCH_MS       1764950400000ULL /* the simulated clock starts here */
#define TRAIN_CAP      10000u           /* training rows kept (newest) */
#define TRAIN_PER_TICK 2000.0           /* rows sampled from one tick at most */
#define EVAL_CAP       4000u
#define EVAL_PER_TICK  200.0
#define JITTER_TABLE   4096u
#define POOL           "fast"
#define TLP_TARGET     40.0 /* Trimaran TargetLoadPacking's default target utilisation, % */
#define TOPOLVM_DIV    8.0  /* GiB divisor: a free 8 TiB pool scores log2(1024) = 10 */
#define BACKOFF_LIMIT  6    /* a Job's default backoffLimit: OOM kills before the pod fails */
#define GIB            1073741824.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the cost model as the extender serves it ---- */

struct row {
    float x[DD_CM_NFEATURES];
    double y[DD_CM_NTARGETS];
    uint64_t t;
};

struct ring {
    struct row *rows;
    size_t cap, n, head; /* head: the oldest when full */
};

static void ring_add(struct ring *r, const struct row *x)
{
    if (r->n < r->cap) {
        r->rows[(r->head + r->n++) % r->cap] = *x;
    } else {
        r->rows[r->head] = *x;
        r->head = (r->head + 1) % r->cap;
    }
}

struct served {
    struct dd_cm_prior prior;
    struct dd_cm_model *m;
    bool xgb; /* serving rule of dedupd/trainer.c: the model answers when it beats the prior */
};

static int served_predict(void *ctx, const struct dd_features *rows, size_t n, double *cost,
                          double *latency, bool *ret_xgb, uint64_t *ret_version, char *errbuf,
                          size_t errlen)
{
    struct served *s = ctx;
    float *X = dd_reallocarray(NULL, n ? n : 1, sizeof(float) * DD_CM_NFEATURES);
    int r = 0;
    if (!X)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        dd_features_model_row(&rows[i], X + i * DD_CM_NFEATURES);
    if (s->m && s->xgb) {
        r = dd_cm_model_predict(s->m, DD_CM_COST, X, n, cost, errbuf, errlen);
        if (r == 0)
            r = dd_cm_model_predict(s->m, DD_CM_LATENCY, X, n, latency, errbuf, errlen);
    } else {
        for (size_t i = 0; i < n; i++) {
            cost[i] = dd_cm_prior_predict(&s->prior, DD_CM_COST, X + i * DD_CM_NFEATURES, NULL);
            latency[i] =
                dd_cm_prior_predict(&s->prior, DD_CM_LATENCY, X + i * DD_CM_NFEATURES, NULL);
        }
    }
    dd_free(X);
    if (ret_xgb)
        *ret_xgb = s->m && s->xgb;
    if (ret_version)
        *ret_version = s->m ? dd_cm_model_version(s->m) : 0;
    return r;
}

/* ---- run state ---- */

struct node_rt {
    int *pods;
    size_t n, cap;
    int gpu_used;
    double cpu_used, mem_used, phys_used, index_entries, logical_mb, stored_mb;
    double last_t;
    uint64_t version;
    struct sim_truth_demand demand;
    struct sim_truth_state st;
    /* since the last report */
    double acc_t, acc_read, acc_write, acc_dup, acc_vdo, acc_iopsi, acc_cpu, acc_cpupsi, acc_runq,
        acc_lat, acc_cost_w;
    double cpu_metric; /* the node's CPU utilisation at the last tick (Trimaran) */
    double last_bind;  /* when a pod was last bound here */
};

struct hev {
    double t;
    uint32_t node;
    uint64_t version;
};

struct run {
    const struct sim_config *c;
    const struct sim_truth *t;
    const struct sim_cluster *cl;
    enum sim_policy p;
    uint64_t seed;
    struct sim_pod *pods;
    struct node_rt *nodes;
    struct hev *heap;  /* one entry per node at most */
    size_t *hpos;      /* node -> its heap index, SIZE_MAX: none */
    int *gpu_free;     /* per node */
    int *pending_gpus; /* beside pending[] */
    size_t nheap;
    int *pending;
    size_t npending, cappending;
    size_t start_index, finished;
    uint64_t tick;
    struct sim_rng rng;
    double jitter[JITTER_TABLE]; /* lognormal quantiles: the bursts, drawn by a hash */
    double normal[JITTER_TABLE]; /* standard normal quantiles: report noise */
    struct sim_truth_node *tn;   /* the truth's node view (index grows) */
    /* dedupd */
    bool dedupd, ledger;
    double bound_ttl_s;
    struct dd_cluster *cluster;
    struct dd_placer *placer;
    struct served served;
    struct ring train, eval;
    uint64_t version;
    double next_train;
    /* scratch */
    int *cand;
    const char **names, **names2;
    struct dd_node_score *scores, *scores2;
    double *total;
    /* right-sizing (c->rightsize): outcomes, the model, reruns to place */
    struct dd_rs_data *rsd;
    struct dd_rs_model *rsm;
    uint64_t rs_version;
    size_t rs_since, rs_pred_cpu_n, rs_pred_mem_n;
    double rs_cpu_err, rs_mem_err, max_cores, max_mem_gib;
    int *rerun;
    size_t nrerun, caprerun;
    /* metrics */
    double frag_sum, waiting_sum;
    size_t frag_n;
    struct sim_series *ts;
    struct sim_result *res;
};

/* The node events: an indexed binary heap with one entry per node (its
 * next phase end), moved in place when the node's rates change; a heap of
 * stale entries grew by every node at every tick. */
static void heap_swap(struct run *r, size_t i, size_t j)
{
    struct hev x = r->heap[i];
    r->heap[i] = r->heap[j];
    r->heap[j] = x;
    r->hpos[r->heap[i].node] = i;
    r->hpos[r->heap[j].node] = j;
}

static void heap_fix(struct run *r, size_t i)
{
    while (i > 0 && r->heap[(i - 1) / 2].t > r->heap[i].t) {
        heap_swap(r, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t a = 2 * i + 1, b = a + 1, m = i;
        if (a < r->nheap && r->heap[a].t < r->heap[m].t)
            m = a;
        if (b < r->nheap && r->heap[b].t < r->heap[m].t)
            m = b;
        if (m == i)
            break;
        heap_swap(r, i, m);
        i = m;
    }
}

/* Sets node's next event (INFINITY: none). */
static void heap_set(struct run *r, uint32_t node, double t)
{
    size_t i = r->hpos[node];
    if (i == SIZE_MAX) {
        if (!isfinite(t))
            return;
        i = r->nheap++;
        r->heap[i] = (struct hev){t, node, 0};
        r->hpos[node] = i;
    } else if (!isfinite(t)) {
        heap_swap(r, i, r->nheap - 1);
        r->nheap--;
        r->hpos[node] = SIZE_MAX;
        if (i < r->nheap)
            heap_fix(r, i);
        return;
    } else {
        r->heap[i].t = t;
    }
    heap_fix(r, i);
}

/* The pod's demand in its phase, with this interval's burst. */
static void pod_demand(const struct sim_pod *p, struct sim_truth_demand *d)
{
    const struct sim_phase_io *ph = &p->phase[p->cur];
    d->read_mbps += ph->read_mbps * p->jitter;
    d->write_mbps += ph->write_mbps * p->jitter;
    d->dup_write_mbps += ph->write_mbps * p->jitter * ph->dup_share;
    d->cpu_cores += p->cur == SIM_RUN ? p->use_cpu : 1.0;
}

static void node_advance(struct run *r, size_t ni, double t)
{
    struct node_rt *n = &r->nodes[ni];
    double dt = t - n->last_t, f = n->st.delivered;
    if (!(dt > 0))
        return;
    for (size_t k = 0; k < n->n; k++) {
        struct sim_pod *p = &r->pods[n->pods[k]];
        const struct sim_phase_io *ph = &p->phase[p->cur];
        double rd = ph->read_mbps * p->jitter * f * dt, wr = ph->write_mbps * p->jitter * f * dt;
        p->left -= p->rate * dt;
        p->alloc_gpu_s += p->gpus * dt;
        if (p->cur == SIM_RUN)
            p->busy_gpu_s += p->gpus * dt * p->rate;
        p->io_read_mb += rd;
        p->io_write_mb += wr;
        p->cpu_req_s += p->cpu * dt;
        p->cpu_use_s += (p->cur == SIM_RUN ? p->use_cpu : 1.0) * dt;
        p->mem_req_s += p->mem_gib * dt;
        p->mem_use_s += p->use_mem_gib * dt;
        n->acc_read += rd;
        n->acc_write += wr;
        n->acc_dup += wr * ph->dup_share;
        if (r->tn[ni].dedup)
            n->index_entries += wr * (1 - ph->dup_share) * 1e6 / 4096;
        n->logical_mb += wr;
        n->stored_mb += wr * (r->tn[ni].dedup ? 1 - ph->dup_share : 1);
    }
    n->acc_vdo += n->st.vdo_cores * dt;
    n->acc_iopsi += n->st.io_psi * dt;
    n->acc_cpu += n->st.cpu_util_ex_vdo * dt;
    n->acc_cpupsi += n->st.cpu_psi * dt;
    n->acc_runq += n->st.run_queue * dt;
    n->acc_lat += n->st.latency_ms * dt;
    n->acc_t += dt;
    n->last_t = t;
}

static double phase_sensitivity(const struct sim_pod *p)
{
    return p->phase[p->cur].sensitivity;
}

static int node_recompute(struct run *r, size_t ni, double t)
{
    struct node_rt *n = &r->nodes[ni];
    double next = (double)INFINITY;
    memset(&n->demand, 0, sizeof(n->demand));
    for (size_t k = 0; k < n->n; k++)
        pod_demand(&r->pods[n->pods[k]], &n->demand);
    r->tn[ni].index_entries = n->index_entries;
    sim_truth_eval(r->t, &r->tn[ni], &n->demand, &n->st);
    for (size_t k = 0; k < n->n; k++) {
        struct sim_pod *p = &r->pods[n->pods[k]];
        p->rate = sim_truth_progress(r->t, phase_sensitivity(p), n->st.delivered);
        double e = p->left / p->rate;
        if (e < next)
            next = e;
    }
    heap_set(r, (uint32_t)ni, isfinite(next) ? t + (next > 0 ? next : 0) : (double)INFINITY);
    return 0;
}

static bool fits(const struct run *r, size_t ni, const struct sim_pod *p)
{
    const struct sim_node_static *s = &r->cl->nodes[ni];
    const struct node_rt *n = &r->nodes[ni];
    /* the free GPUs first, from a compact array: a full cluster is scanned
     * node by node for every pod */
    return r->gpu_free[ni] >= p->gpus && n->cpu_used + p->cpu <= s->cores &&
           n->mem_used + p->mem_gib <= s->mem_gib;
}

/* kube-scheduler's numFeasibleNodesToFind with the adaptive percentage. */
static size_t feasible_to_find(size_t n)
{
    if (n < 100)
        return n;
    long pct = 50 - (long)n / 125;
    if (pct < 5)
        pct = 5;
    size_t k = n * (size_t)pct / 100;
    return k < 100 ? 100 : k;
}

/* NodeResourcesFit (LeastAllocated) + NodeResourcesBalancedAllocation on
 * CPU and memory, with the pod, each 0..100 as kube-scheduler's int64. */
static double default_score(const struct run *r, size_t ni, const struct sim_pod *p)
{
    const struct sim_node_static *s = &r->cl->nodes[ni];
    const struct node_rt *n = &r->nodes[ni];
    double fc = (n->cpu_used + p->cpu) / s->cores, fm = (n->mem_used + p->mem_gib) / s->mem_gib;
    double least = floor(((1 - fc) * 100 + (1 - fm) * 100) / 2);
    double bal = floor((1 - fabs(fc - fm) / 2) * 100);
    return least + bal;
}

static double phys_free_gib(const struct run *r, size_t ni)
{
    return (r->cl->nodes[ni].phys_bytes - r->nodes[ni].phys_used) / 1073741824.0;
}

/* The truth's own estimate of how long the pod's run would take on a node
 * (the oracle): its short stage and load phases against what the node's
 * pods do now, its run phase against the run phases of the pods already
 * there (they are known: pods staging now read later), no future
 * arrivals and no bursts. */
static double truth_end(struct run *r, size_t ni, const struct sim_pod *p)
{
    struct node_rt *n = &r->nodes[ni];
    struct sim_truth_demand steady = {0};
    double total = 0;
    for (size_t k = 0; k < n->n; k++) {
        const struct sim_pod *q = &r->pods[n->pods[k]];
        const struct sim_phase_io *io = &q->phase[SIM_RUN];
        steady.read_mbps += io->read_mbps;
        steady.write_mbps += io->write_mbps;
        steady.dup_write_mbps += io->write_mbps * io->dup_share;
        steady.cpu_cores += q->use_cpu;
    }
    for (int ph = 0; ph < SIM_PHASES; ph++) {
        const struct sim_phase_io *io = &p->phase[ph];
        struct sim_truth_demand d = ph == SIM_RUN ? steady : n->demand;
        struct sim_truth_state st;
        if (!(io->nominal_s > 0))
            continue;
        d.read_mbps += io->read_mbps;
        d.write_mbps += io->write_mbps;
        d.dup_write_mbps += io->write_mbps * io->dup_share;
        d.cpu_cores += ph == SIM_RUN ? p->use_cpu : 1.0;
        sim_truth_eval(r->t, &r->tn[ni], &d, &st);
        total += io->nominal_s / sim_truth_progress(r->t, io->sensitivity, st.delivered);
    }
    return total;
}

static void fmt_rate(char *buf, size_t len, double x)
{
    snprintf(buf, len, "%.1f", x);
}

static void kube_pod(const struct run *r, const struct sim_pod *p, struct dd_kube_pod *kp)
{
    memset(kp, 0, sizeof(*kp));
    memcpy(kp->uid, p->uid, sizeof(p->uid));
    memcpy(kp->ns, "sim", 4);
    memcpy(kp->name, p->name, sizeof(p->name));
    snprintf(kp->phase, sizeof(kp->phase), "Pending");
    kp->gpus = p->gpus;
    if (p->annotated) {
        fmt_rate(kp->read_mbps, sizeof(kp->read_mbps), p->ann_read);
        fmt_rate(kp->write_mbps, sizeof(kp->write_mbps), p->ann_write);
        snprintf(kp->duplicate_share, sizeof(kp->duplicate_share), "%.2f", p->ann_dup);
    }
    kp->n_claims = 1;
    struct dd_kube_claim *c = &kp->claims[0];
    snprintf(c->name, sizeof(c->name), "data-%06u", p->id);
    c->known = c->ours = true;
    snprintf(c->pool, sizeof(c->pool), POOL);
    snprintf(c->storage_class, sizeof(c->storage_class), "dedupd-" POOL);
    c->request_bytes = (uint64_t)p->claim_bytes;
    c->read_write = true;
    c->ephemeral = true;
    (void)r;
}

static uint64_t ms_of(double t)
{
    return EPOCH_MS + (uint64_t)llround(t * 1000);
}

/* The dedupd extender on the candidates: filter, then prioritize on what
 * passed; total[] gets weight x 10 x score added (filtered: -1). */
static int dedupd_scores(struct run *r, const struct sim_pod *p, size_t nc, double t)
{
    struct dd_kube_pod kp;
    struct dd_placement q;
    char err[256];
    size_t n2 = 0;
    int e;
    double t0 = now_s();

    kube_pod(r, p, &kp);
    e = dd_placer_begin(r->placer, NULL, &kp, ms_of(t), &q, err, sizeof(err));
    if (e < 0) {
        fprintf(stderr, "dedupd-sim: placer: %s\n", err);
        return e;
    }
    for (size_t i = 0; i < nc; i++)
        r->names[i] = r->cl->nodes[r->cand[i]].name;
    /* one typed prioritize call: it gives the filter's verdicts too (the
     * same hard facts, score.h), and scores are absolute, so the nodes that
     * pass get the figures a prioritize on the filtered list would give */
    e = dd_placer_score(&q, r->names, nc, DD_SCORE_PRIORITIZE, false, r->scores2, err, sizeof(err));
    if (e < 0)
        goto out;
    for (size_t i = 0; i < nc; i++) {
        if (r->scores2[i].verdict == DD_VERDICT_UNRESOLVABLE)
            r->total[i] = -1;
        else
            r->scores2[n2++] = r->scores2[i];
    }
    r->res->scored_calls++;
    for (size_t i = 0, k = 0; i < nc; i++) {
        if (r->total[i] < 0)
            continue;
        r->total[i] += r->c->extender_weight * 10 * r->scores2[k++].score;
    }
    if (r->ledger)
        dd_placer_record_best(&q, r->scores2, n2);
    dd_node_scores_release(r->scores2, n2);
out:
    if (e < 0)
        fprintf(stderr, "dedupd-sim: scoring: %s\n", err);
    dd_placer_end(&q);
    r->res->t_placement += now_s() - t0;
    return e;
}

static int node_add_pod(struct node_rt *n, int pi)
{
    if (n->n == n->cap) {
        size_t cap = n->cap ? 2 * n->cap : 8;
        int *x = dd_reallocarray(n->pods, cap, sizeof(int));
        if (!x)
            return -ENOMEM;
        n->pods = x;
        n->cap = cap;
    }
    n->pods[n->n++] = pi;
    return 0;
}

static void pod_enter_phase(struct sim_pod *p)
{
    while (p->cur < SIM_PHASES && !(p->phase[p->cur].nominal_s > 0))
        p->cur++;
    if (p->cur < SIM_PHASES)
        p->left = p->phase[p->cur].nominal_s;
    /* an attempt whose peak passes its limit runs until the peak comes */
    if (p->cur == SIM_RUN && p->oom)
        p->left *= p->oom_at;
}

/* ---- what a pod uses, and right-sizing ---- */

/* The truth's use of this attempt: the owner's factors by (seed, owner),
 * the run's by (seed, pod, attempt); every policy and both settings of
 * --rightsize see the same draws. */
static void pod_truth_use(const struct run *r, struct sim_pod *p)
{
    uint64_t ko = sim_mix(r->seed * 0x2545f4914f6cdd1dULL ^ p->owner);
    uint64_t kr = sim_mix(sim_mix(r->seed * 977 + p->id) + p->attempt);
    struct sim_truth_pod d = {sim_workloads[p->workload].name,
                              p->gpus,
                              sim_normal(ko + 1),
                              sim_normal(ko + 2),
                              sim_normal(kr + 3),
                              sim_normal(kr + 4),
                              sim_u01(kr + 5)};
    struct sim_truth_use u;
    if (sim_truth_pod_use(r->t, &d, &u) < 0) /* a truth without the workload: asked is used */
        u = (struct sim_truth_use){p->cpu_asked / 2, p->cpu_asked / 2, p->mem_asked_gib / 2};
    p->use_peak_cpu = u.peak_cpu_cores;
    p->use_cpu = u.mean_cpu_cores;
    p->use_mem_gib = u.peak_memory_gib;
    p->oom_at = 0.1 + 0.8 * sim_u01(kr + 6);
}

/* The names right-sizing sees: framework, model, workload type, image. */
static const char *const rs_framework[] = {"pytorch", "tensorflow", "pytorch",
                                           "triton",  "vllm",       "deepspeed"};
static const char *const rs_type[] = {"training",  "training",  "training",
                                      "inference", "inference", "training"};

/* The pod as its controller creates it (asked: the user's requests and
 * limits; else this attempt's, as the node role reports them). */
static json_t *rs_pod_json(const struct sim_pod *p, bool asked)
{
    size_t w = p->workload < 6 ? p->workload : 0;
    const char *model = sim_workloads[p->workload].name;
    char owner[96], image[128];
    bool deployment = !(p->owner & 0x80000000u);
    double cpu = asked ? p->cpu_asked : p->cpu;
    double mem = (asked ? p->mem_asked_gib : p->mem_gib) * GIB;
    double mem_limit = (asked ? p->mem_asked_gib : p->mem_limit_gib) * GIB;
    if (deployment)
        snprintf(owner, sizeof(owner), "%s-d%u-7c9f5b4d8", model, p->owner & 0xffu);
    else
        snprintf(owner, sizeof(owner), "%s-job-%u", model, p->owner & 0xffu);
    snprintf(image, sizeof(image), "registry.sim.local/%s/%s:1", rs_framework[w], model);
    json_t *limits = json_pack("{s:f, s:i}", "memory", floor(mem_limit), "nvidia.com/gpu", p->gpus);
    double cpu_limit = asked ? p->cpu_asked : p->cpu_limit;
    if (isfinite(cpu_limit)) /* no_cpu_limits: a rewrite may remove it */
        json_object_set_new(limits, "cpu", json_real(cpu_limit));
    return json_pack("{s:{s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s, s:s}, s:[{s:s, s:s, s:b}]},"
                     " s:{s:[{s:s, s:s, s:{s:{s:f, s:f, s:i}, s:o}}],"
                     " s:[{s:s, s:{s:s}}]}}",
                     "metadata", "uid", p->uid, "namespace", "sim", "name", p->name, "labels",
                     "pod-template-hash", "7c9f5b4d8", "annotations", "dedupd.io/framework",
                     rs_framework[w], "dedupd.io/model", model, "dedupd.io/workload", rs_type[w],
                     "dedupd.io/rightsize", "true", "ownerReferences", "kind",
                     deployment ? "ReplicaSet" : "Job", "name", owner, "controller", 1, "spec",
                     "containers", "name", "main", "image", image, "resources", "requests", "cpu",
                     cpu, "memory", floor(mem), "nvidia.com/gpu", p->gpus, "limits", limits,
                     "volumes", "name", "data", "ephemeral", "volumeClaimTemplate", "sim");
}

static int rs_pod(const struct sim_pod *p, bool asked, struct dd_rs_pod *out)
{
    char err[256];
    json_t *j = rs_pod_json(p, asked);
    int e = j ? dd_rs_pod_from_json(j, NULL, 0, out, err, sizeof(err)) : -ENOMEM;
    json_decref(j);
    if (e < 0 && j)
        fprintf(stderr, "dedupd-sim: right-sizing: pod %s: %s\n", p->name, err);
    return e;
}

/*
 * The live state the webhook passes (dedupd/api/admission.c,
 * dd_placer_live): the placer scores the pod on at most 64 nodes of its
 * cluster view (an even stride), and the best 3 by score (then slowdown) give
 * their mean predicted slowdown, CPU utilisation without VDO (their
 * reports) and free GPUs. Only the dedupd policies run a placer (and
 * deliver reports); the others pass the live state as unknown.
 */
static int sim_free_gpus(void *ctx, const char *node, double *free_gpus)
{
    const struct run *r = ctx;
    for (size_t ni = 0; ni < r->cl->n_nodes; ni++)
        if (strcmp(r->cl->nodes[ni].name, node) == 0) {
            *free_gpus = r->gpu_free[ni];
            return 0;
        }
    return -ENOENT;
}

static int rs_live(struct run *r, const struct sim_pod *p, double t, struct dd_rs_live *out)
{
    struct dd_placer_live live;
    struct dd_kube_pod kp;
    struct dd_placement q;
    char err[256];
    int e;

    *out = (struct dd_rs_live){(double)NAN, (double)NAN, (double)NAN, 0};
    if (!r->dedupd)
        return 0;
    kube_pod(r, p, &kp);
    if ((e = dd_placer_begin(r->placer, NULL, &kp, ms_of(t), &q, err, sizeof(err))) < 0) {
        fprintf(stderr, "dedupd-sim: right-sizing live state: %s\n", err);
        return e;
    }
    /* the nodes' free GPUs as the Kubernetes cache has them: the
     * simulator's allocation (node names are "node-<index>"...) */
    e = dd_placer_live(&q, sim_free_gpus, r, &live, err, sizeof(err));
    dd_placer_end(&q);
    if (e < 0) {
        fprintf(stderr, "dedupd-sim: right-sizing live state: %s\n", err);
        return e;
    }
    *out = live.rs;
    return 0;
}

/*
 * Admission of an attempt at t: the truth's use is drawn; without
 * right-sizing the pod keeps what its user asked (requests = limits).
 * With it, the webhook's own decision: the prediction (dd_rs_predict with
 * the live state above), the rewrite (dd_adm_rewrite, the function POST
 * /admission/mutate runs, with r->c->rs_adm), its JSON Patch applied to
 * the pod (dd_adm_patch_apply) and the requests and limits read back from
 * the patched pod. The node CPU manager is never static here. The one
 * departure from a cluster: a request above the largest node, which would
 * leave the pod Pending for ever, is cut to that node and counted
 * (rs_clamped); the limit stays as written.
 */
static int rs_admit(struct run *r, struct sim_pod *p, double t)
{
    struct dd_rs_pod pod, out;
    struct dd_rs_prediction pr;
    struct dd_adm_result ar;
    char err[256];
    double t0 = now_s(), cpu, mem;
    bool rewritten = false;
    json_t *j;
    int e;

    if ((e = rs_live(r, p, t, &p->rs_live)) < 0)
        return e;
    if (!(j = rs_pod_json(p, true)))
        return -ENOMEM;
    if ((e = dd_rs_pod_from_json(j, NULL, 0, &pod, err, sizeof(err))) < 0)
        goto bad;
    if ((e = dd_rs_predict(r->rsm, &pod, &p->rs_live, &pr)) < 0) {
        snprintf(err, sizeof(err), "prediction failed");
        goto bad;
    }
    if ((e = dd_adm_rewrite(&r->c->rs_adm, j, &pr, &p->rs_live, false, &ar, err, sizeof(err))) < 0)
        goto bad;
    /* rewritten: a request or limit moved (not only the annotations) */
    for (size_t i = 0; i < ar.n_containers; i++) {
        const struct dd_adm_container *k = &ar.containers[i];
        const double *v[] = {k->cpu_request, k->cpu_limit, k->memory_request, k->memory_limit};
        for (size_t x = 0; x < 4; x++)
            if (isfinite(v[x][0]) != isfinite(v[x][1]) ||
                (isfinite(v[x][0]) && fabs(v[x][1] - v[x][0]) > 0.01 * v[x][0]))
                rewritten = true;
    }
    r->res->rs_rewritten += rewritten;
    e = dd_adm_patch_apply(j, ar.patch, err, sizeof(err));
    if (e == 0)
        e = dd_rs_pod_from_json(j, NULL, 0, &out, err, sizeof(err));
    dd_adm_result_release(&ar);
    if (e < 0)
        goto bad;
    json_decref(j);
    r->res->rs_admitted++;
    cpu = pr.value[DD_RS_CPU];
    mem = pr.value[DD_RS_MEMORY];
    if (isfinite(cpu) && cpu > 0) {
        r->rs_cpu_err += fabs(cpu - p->use_peak_cpu) / p->use_peak_cpu;
        r->rs_pred_cpu_n++;
    }
    if (isfinite(mem) && mem > 0) {
        r->rs_mem_err += fabs(mem / GIB - p->use_mem_gib) / p->use_mem_gib;
        r->rs_pred_mem_n++;
    }
    if (!isfinite(out.cpu_request) || !isfinite(out.memory_request) ||
        !isfinite(out.memory_limit)) {
        fprintf(stderr,
                "dedupd-sim: right-sizing: pod %s: the rewrite left no CPU or memory "
                "request or memory limit\n",
                p->name);
        return -EINVAL;
    }
    p->cpu = out.cpu_request;
    p->cpu_limit = out.cpu_limit;
    p->mem_gib = out.memory_request / GIB;
    p->mem_limit_gib = out.memory_limit / GIB;
    if (p->cpu > r->max_cores || p->mem_gib > r->max_mem_gib) {
        r->res->rs_clamped++;
        p->cpu = p->cpu > r->max_cores ? r->max_cores : p->cpu;
        p->mem_gib = p->mem_gib > r->max_mem_gib ? r->max_mem_gib : p->mem_gib;
    }
    if (strcmp(pr.source[DD_RS_MEMORY], "model") == 0)
        r->res->rs_from_model++;
    else if (strcmp(pr.source[DD_RS_MEMORY], "history") == 0)
        r->res->rs_from_history++;
    r->res->t_rightsize += now_s() - t0;
    return 0;
bad:
    fprintf(stderr, "dedupd-sim: right-sizing: pod %s: %s\n", p->name, err);
    json_decref(j);
    return e;
}

static int pod_admit(struct run *r, struct sim_pod *p, double t)
{
    int e;
    pod_truth_use(r, p);
    p->cpu = p->cpu_limit = p->cpu_asked;
    p->mem_gib = p->mem_limit_gib = p->mem_asked_gib;
    p->rs_live = (struct dd_rs_live){(double)NAN, (double)NAN, (double)NAN, 0};
    if (r->c->rightsize && (e = rs_admit(r, p, t)) < 0)
        return e;
    p->oom = p->use_mem_gib > p->mem_limit_gib;
    return 0;
}

/* An attempt's outcome (as the node role records it) into the model: the
 * owner's history at once, the trees every rs_every outcomes. */
static int rs_outcome(struct run *r, const struct sim_pod *p, double t, bool oom)
{
    struct dd_rs_outcome o;
    char err[256];
    double t0 = now_s();
    int e;
    if (!r->c->rightsize)
        return 0;
    memset(&o, 0, sizeof(o));
    if ((e = rs_pod(p, false, &o.pod)) < 0)
        return e;
    snprintf(o.pod_uid, sizeof(o.pod_uid), "%s", p->uid);
    snprintf(o.ns, sizeof(o.ns), "%s", o.pod.ns);
    snprintf(o.owner_kind, sizeof(o.owner_kind), "%s", o.pod.owner_kind);
    snprintf(o.owner_name, sizeof(o.owner_name), "%s", o.pod.owner_name);
    snprintf(o.node, sizeof(o.node), "%s", p->node >= 0 ? r->cl->nodes[p->node].name : "");
    o.started_at = (double)ms_of(p->run_start_s) / 1000;
    o.finished_at = (double)ms_of(t) / 1000;
    for (int k = 0; k < DD_RS_NTARGETS; k++)
        o.target[k] = (double)NAN;
    o.target[DD_RS_CPU] = p->use_peak_cpu;
    /* memory.peak of a killed attempt: where the limit stopped it */
    o.target[DD_RS_MEMORY] = (oom ? p->mem_limit_gib : p->use_mem_gib) * GIB;
    o.target[DD_RS_GPU_MEMORY] = p->gpus * sim_workloads[p->workload].gpu_mem_gib * GIB;
    o.target[DD_RS_RUNTIME] = t - p->run_start_s;
    o.exit_code = oom ? 137 : 0;
    snprintf(o.reason, sizeof(o.reason), "%s", oom ? "OOMKilled" : "Completed");
    o.live = p->rs_live; /* what the prediction annotation carries back */
    if ((e = dd_rs_data_add(r->rsd, &o, (double)r->finished)) < 0)
        return e;
    char key[3 * DD_NAME_MAX + 160];
    struct dd_rs_model *m = NULL;
    dd_rs_pod_owner_key(&o.pod, key, sizeof(key));
    if ((e = dd_rs_model_with_history(r->rsm, r->rsd, key, &m)) < 0)
        return e;
    dd_rs_model_unref(r->rsm);
    r->rsm = m;
    if (++r->rs_since >= r->c->rs_every) {
        struct dd_rs_train_options to;
        dd_rs_train_options_init(&to);
        e = dd_rs_train(r->rsd, r->rsm, &to, r->rs_version + 1, ms_of(t), &m, err, sizeof(err));
        if (e == 0) {
            dd_rs_model_unref(r->rsm);
            r->rsm = m;
            r->rs_version++;
            r->res->rs_trainings++;
            r->rs_since = 0;
        } else if (e != -EINVAL) { /* -EINVAL: too few outcomes yet */
            fprintf(stderr, "dedupd-sim: right-sizing training: %s\n", err);
            return e;
        }
    }
    r->res->t_rightsize += now_s() - t0;
    return 0;
}

/* Schedules pod pi at t; 1 placed, 0 not (fits nowhere), < 0 error. */
static int schedule(struct run *r, int pi, double t)
{
    struct sim_pod *p = &r->pods[pi];
    size_t N = r->cl->n_nodes, want = feasible_to_find(N), nc = 0, processed = 0;
    double t0 = now_s();
    int e;

    for (size_t i = 0; i < N && nc < want; i++) {
        size_t ni = (r->start_index + i) % N;
        processed = i + 1;
        if (fits(r, ni, p))
            r->cand[nc++] = (int)ni;
    }
    r->start_index = (r->start_index + processed) % N;
    if (nc == 0) {
        r->res->t_schedule += now_s() - t0;
        return 0;
    }
    for (size_t i = 0; i < nc; i++) {
        size_t ni = (size_t)r->cand[i];
        const struct node_rt *n = &r->nodes[ni];
        const struct sim_node_static *s = &r->cl->nodes[ni];
        switch (r->p) {
        case SIM_P_BINPACK:
            r->total[i] = floor((n->gpu_used + p->gpus) * 100.0 / s->gpus);
            break;
        case SIM_P_CAPACITY: {
            double g = phys_free_gib(r, ni) / TOPOLVM_DIV, sc = g > 1 ? floor(log2(g)) : 0;
            r->total[i] = (sc > 10 ? 10 : sc) * 1000 + default_score(r, ni, p);
            break;
        }
        case SIM_P_TARGETLOAD: {
            double u = 100 * (n->cpu_metric + p->cpu / s->cores);
            r->total[i] = u > 100 ? 0
                          : u <= TLP_TARGET
                              ? floor((100 - TLP_TARGET) * u / TLP_TARGET + TLP_TARGET)
                              : floor(TLP_TARGET * (100 - u) / (100 - TLP_TARGET));
            break;
        }
        default:
            r->total[i] = default_score(r, ni, p);
            break;
        }
    }
    r->res->t_schedule += now_s() - t0;
    if (r->dedupd && (e = dedupd_scores(r, p, nc, t)) < 0)
        return e;
    if (r->p == SIM_P_ORACLE) {
        double t1 = now_s();
        for (size_t i = 0; i < nc; i++) /* soonest end first; the default breaks ties */
            r->total[i] = -floor(truth_end(r, (size_t)r->cand[i], p)) * 1000 + r->total[i];
        r->res->t_oracle += now_s() - t1;
    }
    /* the highest total; ties at random (kube-scheduler's selectHost) */
    long best = -1;
    size_t ties = 0;
    for (size_t i = 0; i < nc; i++) {
        if (r->dedupd && r->total[i] < 0)
            continue;
        if (best < 0 || r->total[i] > r->total[best]) {
            best = (long)i;
            ties = 1;
        } else if (r->total[i] == r->total[best]) {
            ties++;
            if (sim_rng_u01(&r->rng) * (double)ties < 1)
                best = (long)i;
        }
    }
    if (best < 0)
        return 0;
    size_t ni = (size_t)r->cand[best];
    struct node_rt *n = &r->nodes[ni];
    node_advance(r, ni, t);
    if ((e = node_add_pod(n, pi)) < 0)
        return e;
    n->gpu_used += p->gpus;
    r->gpu_free[ni] -= p->gpus;
    n->cpu_used += p->cpu;
    n->mem_used += p->mem_gib;
    n->phys_used += p->claim_bytes / (r->tn[ni].dedup ? 2.0 : 1.0);
    p->node = (int)ni;
    p->start_s = t;
    p->run_start_s = t;
    p->busy_at_bind = p->busy_gpu_s;
    p->cur = 0;
    pod_enter_phase(p);
    n->last_bind = t;
    if (r->ledger)
        dd_placer_pod_bound(r->placer, p->uid, "sim", p->name, r->cl->nodes[ni].name, ms_of(t));
    r->res->placed++;
    r->res->candidates_sum += (double)nc;
    return node_recompute(r, ni, t) < 0 ? -ENOMEM : 1;
}

static int pending_add(struct run *r, int pi)
{
    if (r->npending == r->cappending) {
        size_t cap = r->cappending ? 2 * r->cappending : 256;
        int *x = dd_reallocarray(r->pending, cap, sizeof(int));
        if (!x)
            return -ENOMEM;
        r->pending = x;
        x = dd_reallocarray(r->pending_gpus, cap, sizeof(int));
        if (!x)
            return -ENOMEM;
        r->pending_gpus = x;
        r->cappending = cap;
    }
    r->pending_gpus[r->npending] = r->pods[pi].gpus;
    r->pending[r->npending++] = pi;
    return 0;
}

/* A node freed resources: the waiting pods that now fit there, in order. */
static int retry_pending(struct run *r, size_t freed, double t)
{
    size_t k = 0;
    for (size_t i = 0; i < r->npending; i++) {
        int pi = r->pending[i], g = r->pending_gpus[i], e = 0;
        if (g <= r->gpu_free[freed] && fits(r, freed, &r->pods[pi]))
            e = schedule(r, pi, t);
        if (e < 0)
            return e;
        if (e == 0) {
            r->pending_gpus[k] = g;
            r->pending[k++] = pi;
        }
    }
    r->npending = k;
    return 0;
}

/* A node's event: phases that ended move on; finished pods leave. */
static int node_event(struct run *r, size_t ni, double t)
{
    struct node_rt *n = &r->nodes[ni];
    bool freed = false;
    node_advance(r, ni, t);
    for (size_t k = 0; k < n->n;) {
        struct sim_pod *p = &r->pods[n->pods[k]];
        if (p->left > 1e-6 * (p->phase[p->cur].nominal_s + 1)) {
            k++;
            continue;
        }
        bool killed = p->cur == SIM_RUN && p->oom;
        if (!killed) {
            p->cur++;
            pod_enter_phase(p);
            if (p->cur < SIM_PHASES) {
                k++;
                continue;
            }
        }
        int e = rs_outcome(r, p, t, killed);
        if (e < 0)
            return e;
        p->finish_s = t;
        n->gpu_used -= p->gpus;
        r->gpu_free[ni] += p->gpus;
        n->cpu_used -= p->cpu;
        n->mem_used -= p->mem_gib;
        n->phys_used -= p->claim_bytes / (r->tn[ni].dedup ? 2.0 : 1.0);
        if (r->ledger)
            dd_placer_pod_deleted(r->placer, p->uid);
        int pi = n->pods[k];
        n->pods[k] = n->pods[--n->n];
        freed = true;
        if (killed) {
            /* the attempt's computing is lost; the Job creates a new pod
             * (a new UID, admitted again) unless its backoff ran out */
            p->lost_gpu_s += p->busy_gpu_s - p->busy_at_bind;
            r->res->oom_kills++;
            p->node = -1;
            if (++p->attempt > BACKOFF_LIMIT) {
                p->failed = true;
                r->res->failed_pods++;
                r->finished++;
                continue;
            }
            double killed_limit = p->mem_limit_gib;
            snprintf(p->uid, sizeof(p->uid), "pod-%06u-%u", p->id % 1000000u, p->attempt % 100u);
            if ((e = pod_admit(r, p, t)) < 0)
                return e;
            r->res->oom_raised += p->mem_limit_gib > killed_limit;
            if (r->nrerun == r->caprerun) {
                size_t cap = r->caprerun ? 2 * r->caprerun : 64;
                int *x = dd_reallocarray(r->rerun, cap, sizeof(int));
                if (!x)
                    return -ENOMEM;
                r->rerun = x;
                r->caprerun = cap;
            }
            r->rerun[r->nrerun++] = pi;
            continue;
        }
        r->finished++;
    }
    if (node_recompute(r, ni, t) < 0)
        return -ENOMEM;
    int e = freed ? retry_pending(r, ni, t) : 0;
    /* the reruns queue behind the pods already waiting */
    for (size_t i = 0; i < r->nrerun && e >= 0; i++) {
        e = schedule(r, r->rerun[i], t);
        if (e == 0)
            e = pending_add(r, r->rerun[i]);
    }
    r->nrerun = 0;
    return e < 0 ? e : 0;
}

/* ---- reports ---- */

static double noisy(const struct run *r, double x, uint64_t key)
{
    double v = x * (1 + r->t->report_noise * r->normal[sim_mix(key) & (JITTER_TABLE - 1)]);
    return v > 0 ? v : 0;
}

static int train_now(struct run *r, double t)
{
    struct dd_cm_data d = {0};
    struct dd_cm_train_options o;
    struct dd_cm_model *m = NULL;
    char err[256];
    double t0 = now_s();
    int e = 0;
    for (size_t i = 0; i < r->train.n && e == 0; i++) {
        const struct row *x = &r->train.rows[(r->train.head + i) % r->train.cap];
        e = dd_cm_data_add(&d, x->x, x->y, x->t);
    }
    if (e == 0 && d.n >= 20) {
        dd_cm_train_options_init(&o);
        o.seed = r->seed;
        e = dd_cm_train(&d, &r->served.prior, &o, ++r->version, ms_of(t), &m, err, sizeof(err));
        if (e == 0) {
            dd_cm_model_free(r->served.m);
            r->served.m = m;
            r->served.xgb = dd_cm_model_beats_prior(m);
            r->res->trainings++;
        } else if (!r->c->quiet) {
            fprintf(stderr, "dedupd-sim: training at t=%.0f s: %s\n", t, err);
        }
        e = 0; /* a failed run leaves the last model serving, as the daemon does */
    }
    dd_cm_data_release(&d);
    r->res->t_train += now_s() - t0;
    return e;
}

static int report_node(struct run *r, size_t ni, double t)
{
    struct node_rt *n = &r->nodes[ni];
    const struct sim_node_static *s = &r->cl->nodes[ni];
    struct dd_report rep;
    double iv = n->acc_t > 0 ? n->acc_t : r->c->interval_s;
    uint64_t key = sim_mix(r->seed ^ sim_mix(((uint64_t)ni << 24) ^ r->tick));
    int e;

    if ((e = dd_report_alloc(&rep, (size_t)s->gpus, 1, n->n)) < 0)
        return e;
    snprintf(rep.node, sizeof(rep.node), "%s", s->name);
    rep.interval_s = r->c->interval_s;
    rep.time_ms = ms_of(t);
    rep.cores = (unsigned)s->cores;
    rep.vdo_threads = 12;
    double util_ex = n->acc_cpu / iv, vdo = n->acc_vdo / iv;
    rep.cpu_util_ex_vdo = noisy(r, util_ex, key + 1);
    rep.cpu_util = rep.cpu_util_ex_vdo + vdo / s->cores;
    rep.cpu_psi = noisy(r, n->acc_cpupsi / iv, key + 2);
    rep.io_psi = noisy(r, n->acc_iopsi / iv, key + 3);
    rep.run_queue = noisy(r, n->acc_runq / iv, key + 4);
    rep.load1 = rep.run_queue;
    rep.mem_available_gib = s->mem_gib; /* less what the pods use, below */
    rep.vdo_cpu_seconds = noisy(r, n->acc_vdo, key + 5);
    rep.gpus_available = true;
    double busy = 0, mem = 0;
    for (size_t k = 0; k < n->n; k++) {
        const struct sim_pod *p = &r->pods[n->pods[k]];
        const struct sim_workload *w = &sim_workloads[p->workload];
        double share = p->cur == SIM_RUN    ? 1
                       : p->cur == SIM_LOAD ? 1 - p->left / p->phase[SIM_LOAD].nominal_s
                                            : 0;
        busy += p->cur == SIM_RUN ? p->gpus * p->rate : 0;
        mem += p->gpus * w->gpu_mem_gib * share;
        struct dd_report_pod *rp = &rep.pods[k];
        memcpy(rp->uid, p->uid, sizeof(p->uid));
        memcpy(rp->qos, "burstable", 10);
        rp->cpu_cores = p->cur == SIM_RUN ? p->use_cpu : 1.0;
        rp->memory_bytes = p->use_mem_gib * GIB;
        rep.mem_available_gib -= p->use_mem_gib;
        rp->io_read_mbps = p->io_read_mb / iv;
        rp->io_write_mbps = p->io_write_mb / iv;
    }
    for (int g = 0; g < s->gpus; g++) {
        struct dd_report_gpu *rg = &rep.gpus[g];
        rg->index = (unsigned)g;
        memcpy(rg->name, "H100", 5);
        rg->util_gpu_percent = 100 * busy / s->gpus;
        rg->util_memory_percent = rg->util_gpu_percent / 2;
        rg->memory_total_bytes = 80 * 1073741824.0;
        rg->memory_used_bytes = mem / s->gpus * 1073741824.0;
    }
    struct dd_report_volume *v = &rep.volumes[0];
    dd_report_volume_clear(v);
    snprintf(v->name, sizeof(v->name), "vdo0");
    snprintf(v->pool, sizeof(v->pool), POOL);
    snprintf(v->mode, sizeof(v->mode), "normal");
    snprintf(v->index_state, sizeof(v->index_state), "online");
    v->vdo_version = 36;
    v->rotational = 0;
    v->physical_bytes = (int64_t)s->phys_bytes;
    double used = n->phys_used + n->stored_mb * 1e6 * 0.0; /* claims hold their space */
    v->physical_free_bytes = (int64_t)(s->phys_bytes - used);
    v->logical_bytes = (int64_t)(s->phys_bytes * 4);
    v->logical_free_bytes = (int64_t)(s->phys_bytes * 4 - used * 2);
    struct dd_features *f = &v->features;
    double wr = n->acc_write / iv, rd = n->acc_read / iv;
    double hit = n->acc_write > 0 ? n->acc_dup / n->acc_write : 0;
    bool dedup = r->tn[ni].dedup, comp = r->tn[ni].compression;
    f->v[DD_F_WRITE_MBPS] = noisy(r, wr, key + 6);
    f->v[DD_F_READ_MBPS] = noisy(r, rd, key + 7);
    f->v[DD_F_WRITE_IOPS] = f->v[DD_F_WRITE_MBPS] * 1e6 / 4096;
    f->v[DD_F_DEDUP_HIT_RATE] = dedup ? hit : 0;
    f->v[DD_F_INDEX_ENTRIES] = dedup ? floor(n->index_entries) : 0;
    f->v[DD_F_COMPRESSION] = comp ? 1 : 0;
    f->v[DD_F_PACKER_SAVINGS] = comp ? (1 - r->t->compressed_write_share) * (1 - hit) : 0;
    f->v[DD_F_NODE_CPU_UTIL_EX_VDO] = rep.cpu_util_ex_vdo > 1 ? 1 : rep.cpu_util_ex_vdo;
    f->v[DD_F_CPU_PSI] = rep.cpu_psi;
    f->v[DD_F_IO_PSI] = rep.io_psi;
    f->v[DD_F_RUN_QUEUE] = rep.run_queue;
    f->v[DD_F_DEDUP_RATIO] = n->stored_mb > 0 ? n->logical_mb / n->stored_mb : 1;
    f->v[DD_F_STORED_GIB] = n->stored_mb * 1e6 / 1073741824.0;
    f->v[DD_F_PHYSICAL_USED_FRACTION] = used / s->phys_bytes;
    f->v[DD_F_OPERATING_MODE_NORMAL] = 1;
    /* the targets: VDO CPU per GiB written (when it wrote) and latency */
    double cost_true = wr > 0.5 ? (n->acc_vdo / (n->acc_write * 1e6 / 1073741824.0)) : (double)NAN;
    double lat_true = n->acc_lat / iv;
    f->target[DD_T_COST] = isfinite(cost_true) ? noisy(r, cost_true, key + 8) : (double)NAN;
    f->target[DD_T_LATENCY] = noisy(r, lat_true, key + 9);
    if (dd_feature_value_ok(DD_F_PACKER_SAVINGS, f->v[DD_F_PACKER_SAVINGS]) == false)
        f->v[DD_F_PACKER_SAVINGS] = 0;

    /* training rows from the reports that reach the placement role, as
     * the trainer reads stored ones */
    bool delivered = r->dedupd && (r->p != SIM_P_DEDUPD_STALE || r->tick == 0);
    if (delivered && isfinite(cost_true)) {
        struct row x;
        dd_features_model_row(f, x.x);
        x.t = rep.time_ms;
        double writing = (double)r->cl->n_nodes;
        if (sim_u01(key + 10) * writing < TRAIN_PER_TICK) {
            x.y[DD_CM_COST] = f->target[DD_T_COST];
            x.y[DD_CM_LATENCY] = f->target[DD_T_LATENCY];
            ring_add(&r->train, &x);
        }
        if (sim_u01(key + 11) * writing < EVAL_PER_TICK) {
            x.y[DD_CM_COST] = cost_true;
            x.y[DD_CM_LATENCY] = lat_true;
            ring_add(&r->eval, &x);
        }
    }
    /* interval done */
    n->acc_t = n->acc_read = n->acc_write = n->acc_dup = n->acc_vdo = n->acc_iopsi = n->acc_cpu =
        n->acc_cpupsi = n->acc_runq = n->acc_lat = 0;
    for (size_t k = 0; k < n->n; k++)
        r->pods[n->pods[k]].io_read_mb = r->pods[n->pods[k]].io_write_mb = 0;
    n->cpu_metric = rep.cpu_util;

    if (delivered) {
        /* bound ledger entries exist only where a pod was bound within
         * the bound TTL: elsewhere observing is a no-op, skipped */
        if (r->ledger && t - n->last_bind <= r->bound_ttl_s)
            dd_ledger_observe(dd_placer_ledger(r->placer), &rep, rep.time_ms);
        e = dd_cluster_put(r->cluster, &rep, rep.time_ms); /* takes rep */
        return e == -ESTALE ? 0 : e;
    }
    dd_report_release(&rep);
    return 0;
}

static int tick(struct run *r, double t)
{
    double t0 = now_s(), alloc = 0, busy = 0, mem = 0;
    size_t all_free = 0;
    int e = 0, max_free = 0;
    for (size_t ni = 0; ni < r->cl->n_nodes && e == 0; ni++) {
        struct node_rt *n = &r->nodes[ni];
        node_advance(r, ni, t);
        double r0 = now_s();
        if (!r->dedupd && r->p != SIM_P_TARGETLOAD) {
            n->cpu_metric = 0;
            n->acc_t = n->acc_read = n->acc_write = n->acc_dup = n->acc_vdo = n->acc_iopsi =
                n->acc_cpu = n->acc_cpupsi = n->acc_runq = n->acc_lat = 0;
        } else if (r->p == SIM_P_TARGETLOAD) {
            n->cpu_metric =
                n->acc_t > 0 ? (n->acc_cpu + n->acc_vdo / r->cl->nodes[ni].cores) / n->acc_t : 0;
            n->acc_t = n->acc_cpu = n->acc_vdo = 0;
        } else {
            e = report_node(r, ni, t);
        }
        r->res->t_reports += now_s() - r0;
        all_free += n->gpu_used == 0;
        if (r->gpu_free[ni] > max_free)
            max_free = r->gpu_free[ni];
        for (size_t k = 0; k < n->n; k++) {
            struct sim_pod *p = &r->pods[n->pods[k]];
            double cv = r->t->burst_cv;
            p->jitter =
                exp(cv * sim_normal(sim_mix(r->seed * 31 + p->id) ^ (r->tick + 1)) - cv * cv / 2);
            alloc += p->gpus;
            if (p->cur == SIM_RUN)
                busy += p->gpus * p->rate;
            mem += p->gpus * sim_workloads[p->workload].gpu_mem_gib *
                   (p->cur == SIM_RUN    ? 1
                    : p->cur == SIM_LOAD ? 1 - p->left / p->phase[SIM_LOAD].nominal_s
                                         : 0);
        }
        if (n->n && e == 0)
            e = node_recompute(r, ni, t);
    }
    if (t >= r->pods[0].arrival_s) {
        r->frag_sum += (double)all_free / (double)r->cl->n_nodes;
        r->frag_n++;
        /* waiting pods whose GPUs some node has free: CPU or memory
         * requests keep them out */
        for (size_t i = 0; i < r->npending; i++)
            r->waiting_sum += r->pending_gpus[i] <= max_free;
    }
    if (r->ts && r->ts->f)
        fprintf(r->ts->f, "%llu,%s,%.0f,%.4f,%.4f,%.1f\n", (unsigned long long)r->ts->seed,
                sim_policy_names[r->p], t, alloc / r->cl->total_gpus, busy / r->cl->total_gpus,
                mem);
    r->tick++;
    r->res->t_events += now_s() - t0;
    if (e == 0 && r->dedupd && r->p != SIM_P_DEDUPD_PRIOR && t >= r->next_train) {
        e = train_now(r, t);
        r->next_train = t + r->c->train_every_s;
    }
    return e;
}

/* The inverse error function (Giles' single-precision approximation). */
static double erfinv_approx(double x)
{
    double w = -log((1.0 - x) * (1.0 + x)), p;
    if (w < 5.0) {
        w -= 2.5;
        p = 2.81022636e-08;
        p = 3.43273939e-07 + p * w;
        p = -3.5233877e-06 + p * w;
        p = -4.39150654e-06 + p * w;
        p = 0.00021858087 + p * w;
        p = -0.00125372503 + p * w;
        p = -0.00417768164 + p * w;
        p = 0.246640727 + p * w;
        p = 1.50140941 + p * w;
    } else {
        w = sqrt(w) - 3;
        p = -0.000200214257;
        p = 0.000100950558 + p * w;
        p = 0.00134934322 + p * w;
        p = -0.00367342844 + p * w;
        p = 0.00573950773 + p * w;
        p = -0.0076224613 + p * w;
        p = 0.00943887047 + p * w;
        p = 1.00167406 + p * w;
        p = 2.83297682 + p * w;
    }
    return p * x;
}

static double mape(const double *pred, const double *y, size_t n)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(pred[i]) && isfinite(y[i]) && y[i] > 0) {
            s += fabs(pred[i] - y[i]) / y[i];
            k++;
        }
    }
    return k ? 100 * s / (double)k : (double)NAN;
}

/* The served model and the prior against the truth's own targets. */
static void model_error(struct run *r)
{
    size_t n = r->eval.n;
    float *X = dd_reallocarray(NULL, n ? n : 1, sizeof(float) * DD_CM_NFEATURES);
    double *pc = dd_reallocarray(NULL, n ? n : 1, sizeof(double) * 4);
    double *y = dd_reallocarray(NULL, n ? n : 1, sizeof(double) * 2);
    char err[128];
    r->res->model_mape_cost = r->res->model_mape_latency = (double)NAN;
    r->res->prior_mape_cost = r->res->prior_mape_latency = (double)NAN;
    if (!X || !pc || !y || n == 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct row *x = &r->eval.rows[(r->eval.head + i) % r->eval.cap];
        memcpy(X + i * DD_CM_NFEATURES, x->x, sizeof(x->x));
        y[i] = x->y[DD_CM_COST];
        y[n + i] = x->y[DD_CM_LATENCY];
        pc[2 * n + i] = dd_cm_prior_predict(&r->served.prior, DD_CM_COST, x->x, NULL);
        pc[3 * n + i] = dd_cm_prior_predict(&r->served.prior, DD_CM_LATENCY, x->x, NULL);
    }
    r->res->prior_mape_cost = mape(pc + 2 * n, y, n);
    r->res->prior_mape_latency = mape(pc + 3 * n, y + n, n);
    if (r->served.m && r->served.xgb &&
        dd_cm_model_predict(r->served.m, DD_CM_COST, X, n, pc, err, sizeof(err)) == 0 &&
        dd_cm_model_predict(r->served.m, DD_CM_LATENCY, X, n, pc + n, err, sizeof(err)) == 0) {
        r->res->model_mape_cost = mape(pc, y, n);
        r->res->model_mape_latency = mape(pc + n, y + n, n);
    } else { /* the prior serves */
        r->res->model_mape_cost = r->res->prior_mape_cost;
        r->res->model_mape_latency = r->res->prior_mape_latency;
    }
out:
    dd_free(X);
    dd_free(pc);
    dd_free(y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void metrics(struct run *r)
{
    struct sim_result *res = r->res;
    size_t n = r->cl->n_pods;
    double first = (double)INFINITY, last = 0, sum = 0, alloc = 0, busy = 0, wait = 0, stretch = 0;
    double creq = 0, cuse = 0, mreq = 0, muse = 0;
    double *ct = dd_reallocarray(NULL, n ? n : 1, sizeof(double));
    double *gmax = dd_calloc(n ? n : 1, sizeof(double));
    double *gmin = dd_calloc(n ? n : 1, sizeof(double));
    size_t groups = 0;
    double dsum = 0, span;
    if (!ct || !gmax || !gmin)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const struct sim_pod *p = &r->pods[i];
        double c = p->finish_s - p->arrival_s;
        if (p->arrival_s < first)
            first = p->arrival_s;
        if (p->finish_s > last)
            last = p->finish_s;
        ct[i] = c;
        sum += c;
        wait += p->start_s - p->arrival_s;
        double nominal = 0;
        for (int ph = 0; ph < SIM_PHASES; ph++)
            nominal += p->phase[ph].nominal_s;
        stretch += (p->finish_s - p->start_s) / nominal - 1;
        alloc += p->alloc_gpu_s;
        busy += p->busy_gpu_s - p->lost_gpu_s; /* an OOM-killed attempt computed nothing */
        creq += p->cpu_req_s;
        cuse += p->cpu_use_s;
        mreq += p->mem_req_s;
        muse += p->mem_use_s;
        if (p->workload < SIM_MAX_MODELS) {
            res->model_run_s[p->workload] += p->finish_s - p->start_s;
            res->model_completion_s[p->workload] += c;
            res->model_n[p->workload]++;
        }
    }
    /* deployments: a group's first arrival to its last finish */
    for (size_t i = 0; i < n; i++) {
        const struct sim_pod *p = &r->pods[i];
        size_t g = p->group < n ? p->group : 0;
        if (gmax[g] == 0) {
            gmin[g] = p->arrival_s;
            groups++;
        }
        if (p->finish_s > gmax[g])
            gmax[g] = p->finish_s;
        if (p->arrival_s < gmin[g])
            gmin[g] = p->arrival_s;
    }
    for (size_t g = 0; g < n; g++)
        if (gmax[g] > 0)
            dsum += gmax[g] - gmin[g];
    res->mean_deploy_s = groups ? dsum / (double)groups : 0;
    for (size_t m = 0; m < SIM_MAX_MODELS; m++) {
        if (res->model_n[m]) {
            res->model_run_s[m] /= (double)res->model_n[m];
            res->model_completion_s[m] /= (double)res->model_n[m];
        }
    }
    qsort(ct, n, sizeof(double), cmp_double);
    res->makespan_s = n ? last - first : 0;
    res->mean_completion_s = n ? sum / (double)n : 0;
    res->mean_wait_s = n ? wait / (double)n : 0;
    res->mean_stretch = n ? stretch / (double)n : 0;
    res->mean_candidates = res->placed ? res->candidates_sum / (double)res->placed : 0;
    /* p95 by the nearest-rank method: the ceil(0.95 n)-th smallest */
    res->p95_completion_s = n ? ct[(size_t)ceil(0.95 * (double)n) - 1] : 0;
    res->gpu_idle_fraction = alloc > 0 ? (alloc - busy) / alloc : 0;
    res->gpu_idle_fraction_all =
        res->makespan_s > 0 ? (alloc - busy) / (r->cl->total_gpus * res->makespan_s) : 0;
    res->frag_all_free = r->frag_n ? r->frag_sum / (double)r->frag_n : 0;
    span = r->cl->total_gpus * res->makespan_s;
    res->gpu_allocated_share = span > 0 ? alloc / span : 0;
    res->gpu_computing_share = span > 0 ? busy / span : 0;
    res->waiting_gpus_free = r->frag_n ? r->waiting_sum / (double)r->frag_n : 0;
    res->cpu_requested_over_used = cuse > 0 ? creq / cuse : (double)NAN;
    res->mem_requested_over_used = muse > 0 ? mreq / muse : (double)NAN;
    res->rs_cpu_mape =
        r->rs_pred_cpu_n ? 100 * r->rs_cpu_err / (double)r->rs_pred_cpu_n : (double)NAN;
    res->rs_mem_mape =
        r->rs_pred_mem_n ? 100 * r->rs_mem_err / (double)r->rs_pred_mem_n : (double)NAN;
out:
    dd_free(ct);
    dd_free(gmax);
    dd_free(gmin);
}

int sim_run(const struct sim_config *c, const struct sim_truth *t, const struct sim_cluster *cl,
            enum sim_policy p, uint64_t seed, struct sim_series *ts, struct sim_result *ret)
{
    struct run r = {0};
    struct sim_result res = {0};
    size_t N = cl->n_nodes, want = feasible_to_find(N);
    double t0 = now_s(), next_tick = 0;
    size_t ai = 0;
    int e = 0;

    r.c = c;
    r.t = t;
    r.cl = cl;
    r.p = p;
    r.seed = seed;
    r.ts = ts;
    r.res = &res;
    r.rng.s = sim_mix(seed * 1000003 + (uint64_t)p);
    r.dedupd = p == SIM_P_DEDUPD || p == SIM_P_DEDUPD_NO_LEDGER || p == SIM_P_DEDUPD_STALE ||
               p == SIM_P_DEDUPD_PRIOR;
    r.ledger = r.dedupd && p != SIM_P_DEDUPD_NO_LEDGER;
    r.pods = dd_reallocarray(NULL, cl->n_pods ? cl->n_pods : 1, sizeof(*r.pods));
    r.nodes = dd_calloc(N, sizeof(*r.nodes));
    r.tn = dd_calloc(N, sizeof(*r.tn));
    r.heap = dd_calloc(N, sizeof(*r.heap));
    r.hpos = dd_reallocarray(NULL, N, sizeof(*r.hpos));
    r.gpu_free = dd_calloc(N, sizeof(int));
    r.cand = dd_calloc(want ? want : 1, sizeof(int));
    r.names = dd_calloc(want ? want : 1, sizeof(char *));
    r.names2 = dd_calloc(want ? want : 1, sizeof(char *));
    r.scores = dd_calloc(want ? want : 1, sizeof(*r.scores));
    r.scores2 = dd_calloc(want ? want : 1, sizeof(*r.scores2));
    r.total = dd_calloc(want ? want : 1, sizeof(double));
    r.train.cap = TRAIN_CAP;
    r.eval.cap = EVAL_CAP;
    r.train.rows = dd_calloc(TRAIN_CAP, sizeof(struct row));
    r.eval.rows = dd_calloc(EVAL_CAP, sizeof(struct row));
    if (!r.pods || !r.nodes || !r.tn || !r.heap || !r.hpos || !r.gpu_free || !r.cand || !r.names ||
        !r.names2 || !r.scores || !r.scores2 || !r.total || !r.train.rows || !r.eval.rows) {
        e = -ENOMEM;
        goto out;
    }
    memcpy(r.pods, cl->pods, cl->n_pods * sizeof(*r.pods));
    for (size_t i = 0; i < N; i++) {
        r.hpos[i] = SIZE_MAX;
        r.gpu_free[i] = cl->nodes[i].gpus;
        if (cl->nodes[i].cores > r.max_cores)
            r.max_cores = cl->nodes[i].cores;
        if (cl->nodes[i].mem_gib > r.max_mem_gib)
            r.max_mem_gib = cl->nodes[i].mem_gib;
    }
    if (c->rightsize && (e = dd_rs_data_new(&r.rsd)) < 0)
        goto out;
    for (size_t i = 0; i < cl->n_pods; i++)
        r.pods[i].jitter = 1;
    for (size_t i = 0; i < N; i++) {
        r.tn[i] = cl->nodes[i].truth;
        r.nodes[i].index_entries = cl->nodes[i].truth.dedup ? cl->nodes[i].truth.index_entries : 0;
        r.nodes[i].st.delivered = 1;
        r.nodes[i].last_bind = -(double)INFINITY;
    }
    for (size_t i = 0; i < JITTER_TABLE; i++) {
        /* the lognormal's quantile at (i + 0.5) / n: mean 1, cv burst_cv */
        double cv = t->burst_cv, sg = sqrt(log(1 + cv * cv));
        double z = sqrt(2) * erfinv_approx(2 * ((double)i + 0.5) / JITTER_TABLE - 1);
        r.jitter[i] = exp(sg * z - sg * sg / 2);
        r.normal[i] = z;
    }
    dd_cm_prior_defaults(&r.served.prior);
    r.next_train = c->train_first_s;
    if (r.dedupd) {
        struct dd_cluster_options co = {.stale_after_s = 0, .forget_after_s = 1e9};
        struct dd_ledger_options lo;
        struct dd_score_options so;
        struct dd_score_model model = {served_predict, &r.served};
        dd_ledger_options_init(&lo);
        r.bound_ttl_s = lo.bound_ttl_s;
        dd_score_options_init(&so);
        if (c->score_scale > 0)
            so.scale_percent = c->score_scale;
        if ((e = dd_cluster_new(&co, &r.cluster)) < 0 ||
            (e = dd_placer_new(r.cluster, &lo, &model, &r.placer)) < 0 ||
            (e = dd_placer_configure(r.placer, &so, NULL, false)) < 0)
            goto out;
    }

    while (r.finished < cl->n_pods && e >= 0) {
        double ta = ai < cl->n_pods ? r.pods[ai].arrival_s : (double)INFINITY;
        double th = r.nheap ? r.heap[0].t : (double)INFINITY;
        if (th <= next_tick && th <= ta) {
            struct hev ev = r.heap[0];
            double t1 = now_s();
            e = node_event(&r, ev.node, ev.t);
            res.t_events += now_s() - t1;
        } else if (next_tick <= ta) {
            e = tick(&r, next_tick);
            next_tick += c->interval_s;
        } else {
            int pi = (int)ai++;
            e = pod_admit(&r, &r.pods[pi], ta);
            if (e == 0)
                e = schedule(&r, pi, ta);
            if (e == 0)
                e = pending_add(&r, pi);
        }
    }
    if (e < 0)
        goto out;
    metrics(&r);
    if (r.dedupd)
        model_error(&r);
    res.served_xgb = r.served.m && r.served.xgb;
    res.t_total = now_s() - t0;
    *ret = res;
out:
    if (r.placer)
        dd_placer_free(r.placer);
    dd_cluster_free(r.cluster);
    dd_cm_model_free(r.served.m);
    for (size_t i = 0; r.nodes && i < N; i++)
        dd_free(r.nodes[i].pods);
    dd_free(r.nodes);
    dd_free(r.tn);
    dd_free(r.pods);
    dd_free(r.heap);
    dd_free(r.hpos);
    dd_free(r.gpu_free);
    dd_free(r.pending_gpus);
    dd_free(r.pending);
    dd_free(r.cand);
    dd_free(r.names);
    dd_free(r.names2);
    dd_free(r.scores);
    dd_free(r.scores2);
    dd_free(r.total);
    dd_free(r.train.rows);
    dd_free(r.eval.rows);
    dd_free(r.rerun);
    dd_rs_model_unref(r.rsm);
    dd_rs_data_free(r.rsd);
    return e;
}
