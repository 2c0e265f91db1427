/*
 * The placement decision as one typed call path, shared by the daemon's
 * extender routes (dedupd/api/extender.c: HTTP and JSON around it) and the
 * cluster simulator (sim/: typed calls, an injected clock): resolve a pod
 * against the Kubernetes cache into a workload profile, take snapshots of
 * the cluster view and of the in-flight ledger (without the pod's own
 * entry), score candidate nodes, and record the pod on its best node.
 *
 * Use: dd_placer_begin (pod as a JSON object or already resolved), then
 * dd_placer_score on the candidates as often as needed, optionally
 * dd_placer_record_best, then dd_placer_end. Thread-safe: many requests
 * at once; dd_placer_configure may run beside them (SIGHUP).
 *
 * While XGBoost serves, its predictions are remembered per row (the exact
 * model input) and model version: the same what-if again is a lookup
 * (placer.c, the prediction memo). Scores are the same with or without.
 */
#ifndef DD_PLACEMENT_PLACER_H
#define DD_PLACEMENT_PLACER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "placement/cluster.h"
#include "placement/kube.h"
#include "placement/ledger.h"
#include "placement/profile.h"
#include "placement/rightsize.h"
#include "placement/score.h"

struct dd_placer;

/* cluster and model borrowed; the ledger is the placer's own. */
int dd_placer_new(struct dd_cluster *cluster, const struct dd_ledger_options *lo,
                  const struct dd_score_model *model, struct dd_placer **ret);
struct dd_placer *dd_placer_free(struct dd_placer *p);
/* Copies opts and profiles (profiles may be NULL: the default only). */
int dd_placer_configure(struct dd_placer *p, const struct dd_score_options *opts,
                        const struct dd_profile_set *profiles, bool shadow);
bool dd_placer_shadow(struct dd_placer *p);
/* The Kubernetes cache (borrowed; NULL: none) and how it is configured
 * ("none", "in-cluster", "--kube-api URL"), shown in explanations. Set
 * before the first request. */
void dd_placer_set_kube(struct dd_placer *p, struct dd_kube *kube, const char *source);
const char *dd_placer_kube_source(struct dd_placer *p);
struct dd_kube *dd_placer_kube(struct dd_placer *p);

/*
 * A learned I/O profile (the right-sizing service's prediction from the
 * pod's owner history and static features, dedupd/rightsize.h): asked for
 * a pod with GPUs and dedupd claims whose profile would otherwise be the
 * default (no I/O annotation, no dedupd.io/profile), with the pod object
 * of the request. Returns true and sets read and write MB/s (finite, >= 0)
 * and a note ("learned: ..." says from what) when it knows the pod; the
 * pod's profile then takes them in place of the default's read and write
 * rates, with source "learned" (claims' own annotations still win). Runs
 * on the request path, from many threads at once: it must be cheap and
 * thread-safe. A binding confirms the provisional entry and keeps its
 * load; a ledger rebuilt after a restart (no request, no pod object) uses
 * the default.
 */
typedef bool (*dd_placer_learned_fn)(void *ctx, const json_t *pod_json, double *read_mbps,
                                     double *write_mbps, char *note, size_t notelen);
/* Set before the first request (fn NULL: none). */
void dd_placer_set_learned(struct dd_placer *p, dd_placer_learned_fn fn, void *ctx);
struct dd_ledger *dd_placer_ledger(struct dd_placer *p);
/* A snapshot of the cluster view the placer scores on (the CSI API's
 * capacity and topology read it); free with dd_cluster_snapshot_free.
 * NULL on ENOMEM. */
struct dd_cluster_snapshot *dd_placer_snapshot(struct dd_placer *p);

/* The prediction memo's lookups since the placer was made: rows answered
 * from it, and rows the model predicted. Only while XGBoost serves (the
 * prior is predicted directly, not counted). */
void dd_placer_memo_stats(struct dd_placer *p, uint64_t *ret_hits, uint64_t *ret_misses);

/* One request's state. */
struct dd_placement {
    struct dd_placer *placer;
    struct dd_score_options opts;
    bool shadow;
    struct dd_kube_pod pod;
    struct dd_pod_profile profile;
    struct dd_cluster_snapshot *snap;
    struct dd_ledger_view view;
    struct dd_score_env env;
    uint64_t now_ms;
};

/*
 * Starts a request at now_ms for pod_json (resolved against the cache; with
 * no cache, an empty one, and a pod annotation dedupd.io/pool naming the
 * pool of its claims) or for an already resolved pod (pod_json NULL).
 * Expired ledger entries are dropped first. Returns 0, or a negative error
 * with err naming what is wrong with the pod.
 */
int dd_placer_begin(struct dd_placer *p, const json_t *pod_json, const struct dd_kube_pod *pod,
                    uint64_t now_ms, struct dd_placement *q, char *err, size_t errlen);
/* dd_score_pod on the request's snapshots. */
int dd_placer_score(struct dd_placement *q, const char *const *nodes, size_t n,
                    enum dd_score_what what, bool explain, struct dd_node_score *out, char *err,
                    size_t errlen);
/* Records the pod on its best node (dd_score_best); returns that index,
 * -1 when no node is scored, or -ENOSPC when the ledger is full. */
long dd_placer_record_best(struct dd_placement *q, const struct dd_node_score *s, size_t n);
void dd_placer_end(struct dd_placement *q);

/*
 * The live state a right-sizing prediction takes (struct dd_rs_live), as
 * the admission webhook and the simulator compute it: the request's pod is
 * scored on at most DD_PLACER_LIVE_CANDIDATES nodes of its snapshot (an
 * even stride), and the best DD_PLACER_LIVE_TOP by score (then slowdown,
 * then name; unresolvable ones never) give their mean predicted slowdown,
 * mean CPU utilisation without VDO (their reports) and mean free GPUs as
 * gpus() has them (a node it answers < 0 for is left out of that mean;
 * gpus NULL: unknown). out->top names those nodes, best first. out is
 * always set (NaN and 0 where unknown); returns 0, or dd_placer_score's
 * error with err naming it.
 */
#define DD_PLACER_LIVE_CANDIDATES 64
#define DD_PLACER_LIVE_TOP        3
typedef int (*dd_placer_gpus_fn)(void *ctx, const char *node, double *free_gpus);
struct dd_placer_live {
    struct dd_rs_live rs;
    size_t n_top;
    char top[DD_PLACER_LIVE_TOP][DD_NAME_MAX];
};
int dd_placer_live(struct dd_placement *q, dd_placer_gpus_fn gpus, void *ctx,
                   struct dd_placer_live *out, char *err, size_t errlen);

/* The pod watch: a binding confirms, moves or (after a restart) rebuilds
 * the pod's entry from the cached pod; a deletion drops it. Returns false
 * when the binding could not be applied (a full ledger) or the pod is not
 * one we place (no GPUs or no dedupd claims: its entry is dropped). */
bool dd_placer_pod_bound(struct dd_placer *p, const char *uid, const char *ns, const char *name,
                         const char *node, uint64_t now_ms);
void dd_placer_pod_deleted(struct dd_placer *p, const char *uid);
/* Every bound pod of the cache through dd_placer_pod_bound: the rebuild
 * after a restart, once the first lists of pods, claims, volumes and
 * classes are all in (a binding listed before its pod's claims cannot be
 * resolved). Pods with an entry keep it. Returns the entries bound. */
size_t dd_placer_rebuild_ledger(struct dd_placer *p, uint64_t now_ms);

#endif
