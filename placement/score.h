/*
 * Scoring: how much would this pod's I/O be slowed on each candidate node?
 *
 * For each candidate node and each dedupd pool the pod's claims use there,
 * the active cost model is asked two what-ifs in one batch:
 *   contended  the pool as its node reported it, plus what the in-flight
 *              ledger holds there, plus this pod's writes at its duplicate
 *              share;
 *   alone      the same pool (index size, compression, packer savings)
 *              carrying only this pod: no other writes, an idle node.
 * From them, per claim:
 *   latency stretch  L_contended / L_alone - 1 (>= 0), the model's write
 *                    latency;
 *   device stretch   q(io_psi/100 + added MB/s / device MB/s): the backing
 *                    device's busy share, with the pod's and the ledger's
 *                    reads and writes over a nominal bandwidth (rotational
 *                    or not, configurable);
 * and per node:
 *   CPU stretch      q(VDO cores needed / cores left by the rest of the
 *                    node): the VDO cores the node's report shows plus the
 *                    model's CPU-seconds per GiB times the pod's and the
 *                    ledger's added writes, over cores x (1 - CPU share
 *                    without VDO);
 * with q(u) = u / (1 - u) (queueing), continued linearly above u = 0.9 so
 * it stays finite and increasing. A claim's stretch is
 * (1 + latency)(1 + device)(1 + CPU) - 1; the pod's predicted I/O slowdown
 * is the claims' stretches weighted by their share of the pod's MB/s, in
 * percent. Too few free GPUs (allocatable - requested by bound pods -
 * provisional ledger entries) make the slowdown infinite (score 0).
 *
 * The score is absolute: score = round(10 / (1 + slowdown% / scale%)),
 * scale 25 % by default (0 % -> 10, 5 % -> 8, 25 % -> 5, 100 % -> 2), so the
 * same slowdown always gives the same score whatever the other candidates.
 * More contention (writes, CPU load, pressure, run queue, ledger entries)
 * never raises it, as long as the model is monotone in those inputs (the
 * prior is; XGBoost is trained with monotone constraints from
 * placement/features).
 *
 * Neutral (a configurable score, default 5, with the reason): pods without
 * GPUs or without claims of a dedupd pool (a fast path: nothing is
 * predicted), nodes without a report or with a stale one.
 *
 * Filter verdicts come from hard facts only (a reason in
 * FailedAndUnresolvableNodes): the node has no volume of the pool; the
 * pool is read-only or its index offline; free physical space, less the
 * ledger's reservations, is below what the pod's unbound claims need after
 * the pool's observed reduction (logical over physical data blocks) plus a
 * margin; or physical use would pass the ceiling. A recovering volume is
 * writable: scored, not filtered. A node without a fresh report passes
 * (fail open).
 *
 * Pure: the model is a callback, the cluster view and the ledger are
 * snapshots. Thread-safe for concurrent calls.
 */
#ifndef DD_PLACEMENT_SCORE_H
#define DD_PLACEMENT_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "placement/cluster.h"
#include "placement/features.h"
#include "placement/ledger.h"
#include "placement/profile.h"

struct dd_score_options {
    int neutral_score;             /* 0..10, default 5 */
    double scale_percent;          /* the slowdown that scores 5; default 25 */
    double device_mbps_rotational; /* nominal backing-device bandwidth; default 200 */
    double device_mbps_ssd;        /* default 2000 (also when unknown) */
    double space_margin;           /* extra over the reduced need; default 0.10 */
    double max_physical_use;       /* ceiling on physical use after the pod; default 0.95 */
};
void dd_score_options_init(struct dd_score_options *o);

/* The active cost model on n rows: cost (CPU-s/GiB) and latency (ms). */
struct dd_score_model {
    int (*predict)(void *ctx, const struct dd_features *rows, size_t n, double *cost,
                   double *latency, bool *ret_xgboost, uint64_t *ret_version, char *errbuf,
                   size_t errlen);
    void *ctx;
};

/* GPUs of a node from the Kubernetes cache: 0, or < 0 when unknown. */
struct dd_score_gpus {
    int (*node_gpus)(void *ctx, const char *node, double *allocatable, double *requested);
    void *ctx;
};

struct dd_score_env {
    const struct dd_cluster_snapshot *cluster;
    const struct dd_ledger_view *ledger; /* without the pod's own entry */
    struct dd_score_model model;
    struct dd_score_gpus gpus; /* node_gpus NULL: no Kubernetes cache */
    const char *kube_source;   /* shown in explanations ("none": annotations only) */
    uint64_t now_ms;
};

enum dd_verdict { DD_VERDICT_OK, DD_VERDICT_NEUTRAL, DD_VERDICT_UNRESOLVABLE };
extern const char *const dd_verdict_names[3];

/* Filter reasons, by category (metrics label them). */
#define DD_FILTER_REASONS(X)                                                                       \
    X(NO_POOL, "no_pool")                                                                          \
    X(READ_ONLY, "read_only")                                                                      \
    X(INDEX_OFFLINE, "index_offline")                                                              \
    X(NO_SPACE, "insufficient_space")                                                              \
    X(CEILING, "physical_use_ceiling")
#define DD_FR_ENUM_(id, name) DD_FR_##id,
enum dd_filter_reason { DD_FR_NONE = -1, DD_FILTER_REASONS(DD_FR_ENUM_) DD_FR_COUNT };
extern const char *const dd_filter_reason_names[DD_FR_COUNT];

struct dd_node_score {
    const char *node;        /* the caller's string */
    enum dd_verdict verdict; /* UNRESOLVABLE: filtered (reason) */
    enum dd_filter_reason filter_reason;
    char reason[256];        /* why filtered or neutral; "" when scored */
    int score;               /* 0..10 */
    double slowdown_percent; /* NaN when neutral or filtered; INFINITY: no free GPUs */
    double gpu_util;         /* mean NVML GPU utilisation, %, for ties; NaN unknown */
    json_t *explanation;     /* when asked for; owned */
};

enum dd_score_what {
    DD_SCORE_FILTER,     /* hard facts only, no prediction */
    DD_SCORE_PRIORITIZE, /* scores (filter verdicts too) */
};

/*
 * Scores pod on nodes[0..n) into out[0..n). explain: build each node's
 * explanation. Returns 0, or a negative error with errbuf (the model
 * failed, out of memory); out is then released.
 */
int dd_score_pod(const struct dd_score_options *o, const struct dd_score_env *env,
                 const struct dd_pod_profile *pod, const char *const *nodes, size_t n,
                 enum dd_score_what what, bool explain, struct dd_node_score *out, char *errbuf,
                 size_t errlen);
void dd_node_scores_release(struct dd_node_score *s, size_t n);

/* The ledger entry of pod placed on node: its claims' loads on the pools
 * there (claims pinned to another node left out) and, for unbound claims,
 * the physical space they will take after the pool's observed reduction
 * (plus the margin), from the node's report in env (none: the requested
 * bytes). */
void dd_score_ledger_entry(const struct dd_score_options *o, const struct dd_score_env *env,
                           const struct dd_pod_profile *pod, const char *node,
                           struct dd_ledger_entry *ret);

/* The absolute scale: slowdown (%) -> 0..10. */
int dd_score_from_slowdown(const struct dd_score_options *o, double slowdown_percent);

/* The best node: highest score, then lowest slowdown, then lowest GPU
 * utilisation, then the first name; -1 when none is scored (all neutral or
 * filtered). */
long dd_score_best(const struct dd_node_score *s, size_t n);

#endif
