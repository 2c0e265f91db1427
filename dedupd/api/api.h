/*
 * The daemon's REST API, one route table per subsystem. Each table is
 * filled into the caller's array with its own context; the wiring
 * (daemon.c) collects them and starts the HTTP server with all of them.
 * A route a role does not serve answers 404 "not_served" naming the role
 * that does (dd_api_not_in_role).
 */
#ifndef DD_API_H
#define DD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dedupd/http/http.h"

struct dd_sampler;
struct dd_store;
struct dd_model_service;
struct dd_cluster_api;
struct dd_estimate_jobs;

/* Room for every table together. */
#define DD_API_MAX_ROUTES 48

/* The context of the node routes (owned by the caller, outliving the
 * server); sampler NULL: the routes answer not_served. */
struct dd_api_node {
    struct dd_sampler *sampler;
    struct dd_store *store;
    const char *role;
};
/* GET /v1/node, /v1/volumes, /v1/volumes/{name}, /v1/volumes/{name}/history.
 * Returns the routes added. */
size_t dd_api_node_routes(struct dd_api_node *ctx, struct dd_http_route *out);

/* POST /v1/estimate, GET /v1/estimate/{id}: estimate jobs on threads of
 * their own, under the configured roots. */
int dd_estimate_jobs_new(struct dd_estimate_jobs **ret);
/* Cancels and joins running jobs. NULL-safe. */
struct dd_estimate_jobs *dd_estimate_jobs_free(struct dd_estimate_jobs *j);
/* SIGHUP: the roots an estimate may read under. */
void dd_estimate_jobs_set_roots(struct dd_estimate_jobs *j, const char (*roots)[1024], size_t n);
size_t dd_api_estimate_routes(struct dd_estimate_jobs *jobs, struct dd_http_route *out);

/* The model routes' context; model NULL: not_served. sampler (may be
 * NULL) answers predictions for a named volume of this node. */
struct dd_api_model {
    struct dd_model_service *model;
    struct dd_sampler *sampler;
    const char *role;
};
/* GET /v1/model, POST /v1/model/retrain, GET /v1/model/runs/{id},
 * POST /v1/predict. */
size_t dd_api_model_routes(struct dd_api_model *ctx, struct dd_http_route *out);

/*
 * The placement role's cluster view: POST /v1/reports (node reports,
 * token-protected when a token is set), GET /v1/cluster and
 * /v1/cluster/nodes/{name}. Every accepted report replaces its node's
 * entry in the view and stores each volume's row as series
 * "node/<node>/vol/<volume>", so the model trains on every node's history.
 */
struct dd_config;
struct dd_report;
struct dd_cluster;
struct dd_ledger;
int dd_cluster_api_new(const struct dd_config *c, struct dd_store *store,
                       struct dd_model_service *model, struct dd_cluster_api **ret);
struct dd_cluster_api *dd_cluster_api_free(struct dd_cluster_api *a);
void dd_cluster_api_reconfigure(struct dd_cluster_api *a, const struct dd_config *c);
/* Role all: this node's own report, in-process; its rows are already in
 * the store as "vol/<volume>", so only the view is updated. */
void dd_cluster_api_ingest_local(struct dd_cluster_api *a, const struct dd_report *r);
/* Accepted reports end the ledger entries of pods they show doing I/O. */
void dd_cluster_api_set_ledger(struct dd_cluster_api *a, struct dd_ledger *ledger);
/* The view itself, for the scorer (borrowed). */
struct dd_cluster *dd_cluster_api_cluster(struct dd_cluster_api *a);
void dd_cluster_api_metrics(struct dd_cluster_api *a, FILE *m);
size_t dd_api_cluster_routes(struct dd_cluster_api *a, const char *role, struct dd_http_route *out);

/*
 * The scheduler extender and placement REST (roles all, placement):
 * POST /scheduler/filter, POST /scheduler/prioritize (kube-scheduler
 * extender v1, names and full-Nodes modes), POST /v1/placement (every
 * node's score and explanation for a pod), GET /v1/ledger. Owns the
 * in-flight ledger.
 */
struct dd_extender_api;
struct dd_kube;
struct dd_ledger;
int dd_extender_api_new(const struct dd_config *c, struct dd_cluster *cluster,
                        struct dd_model_service *model, struct dd_extender_api **ret);
struct dd_extender_api *dd_extender_api_free(struct dd_extender_api *a);
void dd_extender_api_reconfigure(struct dd_extender_api *a, const struct dd_config *c);
/* The Kubernetes cache (borrowed; NULL: none) and how it is configured
 * ("none", "in-cluster", "--kube-api URL"), shown in explanations. */
void dd_extender_api_set_kube(struct dd_extender_api *a, struct dd_kube *kube, const char *source);
struct dd_ledger *dd_extender_api_ledger(struct dd_extender_api *a);
/* Leader election: is_leader(ud) false makes filter and prioritize answer
 * neutral and /v1/placement say "mode": "standby". Not set: the leader.
 * Set before the server starts. */
void dd_extender_api_set_leader(struct dd_extender_api *a, bool (*is_leader)(void *ud), void *ud);
/* --pod-events: after each successful prioritize of a pod we place, a
 * summary goes to events (dedupd/podevents.h; borrowed, outlives a). */
struct dd_podevents;
void dd_extender_api_set_events(struct dd_extender_api *a, struct dd_podevents *events);
/* The pod watch's hooks: a binding confirms, moves or (after a restart)
 * rebuilds the pod's ledger entry; a deletion drops it. */
void dd_extender_api_pod_bound(struct dd_extender_api *a, const char *uid, const char *ns,
                               const char *name, const char *node);
void dd_extender_api_pod_deleted(struct dd_extender_api *a, const char *uid);
/* Every bound pod of the cache through dd_extender_api_pod_bound: the
 * rebuild after a restart, once the first lists of pods, claims, volumes
 * and classes are all in (a binding listed before its pod's claims could
 * not be resolved). Pods with an entry keep it. */
void dd_extender_api_rebuild_ledger(struct dd_extender_api *a);
void dd_extender_api_metrics(struct dd_extender_api *a, FILE *m);
size_t dd_api_extender_routes(struct dd_extender_api *a, const char *role,
                              struct dd_http_route *out);

/* The extender's placer (borrowed): the CSI API scores with it. */
struct dd_placer;
struct dd_placer *dd_extender_api_placer(struct dd_extender_api *a);

/*
 * The CSI-adjacent topology API (roles all, placement; csi/README.md):
 * POST /v1/csi/preferred, GET and POST /v1/csi/capacity, GET
 * /v1/csi/topology. Scores with the extender's placer (its ledger, cache
 * and model). CSIStorageCapacity publishing (dedupd/capacitypub.h) calls
 * the same capacity rule per (node x class) through
 * dd_csi_api_node_capacities below.
 */
struct dd_csi_api;
int dd_csi_api_new(const struct dd_config *c, struct dd_placer *placer, struct dd_csi_api **ret);
struct dd_csi_api *dd_csi_api_free(struct dd_csi_api *a);
void dd_csi_api_reconfigure(struct dd_csi_api *a, const struct dd_config *c);
void dd_csi_api_metrics(struct dd_csi_api *a, FILE *m);
/* dedupd.io/estimate job URLs are followed through refs (borrowed, may be
 * NULL: only the number form is read). Set before the server starts. */
struct dd_estimate_refs;
void dd_csi_api_set_estimates(struct dd_csi_api *a, struct dd_estimate_refs *refs);
/*
 * For the CSIStorageCapacity publisher (dedupd/capacitypub.h): fn(ctx,
 * node, class, available, maximum) once per reporting node and cached
 * StorageClass of ours whose pool the node has a volume of, with the
 * figures GET /v1/csi/capacity?storage_class=CLASS&segment=
 * topology.dedupd.io/node=NODE answers (the same rule, ledger and
 * snapshot path). Returns the calls, -ENODATA without a Kubernetes cache,
 * -ENOMEM.
 */
struct dd_kube_class;
typedef void (*dd_csi_node_capacity_fn)(void *ctx, const char *node,
                                        const struct dd_kube_class *cls, int64_t available,
                                        int64_t maximum);
int dd_csi_api_node_capacities(struct dd_csi_api *a, dd_csi_node_capacity_fn fn, void *ctx);
size_t dd_api_csi_routes(struct dd_csi_api *a, const char *role, struct dd_http_route *out);

/*
 * The right-sizing admission webhook (roles all, placement;
 * placement/admission.h): POST /admission/mutate (AdmissionReview v1 in,
 * allowed with a JSONPatch or a warning out; never denies) and POST
 * /v1/rightsize (a Pod or an AdmissionReview -> the rewritten object, the
 * patch and the explanation, whatever the opt-in). Live state from the
 * extender's placer (borrowed); the prediction from the predictor.
 */
struct dd_admission_api;
struct dd_rs_live;
struct dd_rs_prediction;
/* pod: the Pod object as admitted (no name for a controller's pod); live
 * may be NULL. 0, or a negative error with err (-EINVAL: the pod is bad). */
typedef int (*dd_admission_predict_fn)(void *ctx, const json_t *pod, const struct dd_rs_live *live,
                                       struct dd_rs_prediction *out, char *err, size_t errlen);
int dd_admission_api_new(const struct dd_config *c, struct dd_placer *placer,
                         struct dd_admission_api **ret);
struct dd_admission_api *dd_admission_api_free(struct dd_admission_api *a);
void dd_admission_api_reconfigure(struct dd_admission_api *a, const struct dd_config *c);
/* Not set: every opted-in pod is admitted unchanged with a warning. Set
 * before the server starts. */
void dd_admission_api_set_predictor(struct dd_admission_api *a, dd_admission_predict_fn fn,
                                    void *ctx);
void dd_admission_api_metrics(struct dd_admission_api *a, FILE *m);
size_t dd_api_admission_routes(struct dd_admission_api *a, const char *role,
                               struct dd_http_route *out);

/*
 * Right-sizing (roles all, placement; dedupd/rightsize.h): POST
 * /v1/observations (one pod outcome, token-protected like /v1/reports),
 * GET /v1/rightsize/model. rs NULL: not_served.
 */
struct dd_rightsize;
/* An outcome is a few hundred bytes; annotations may carry a prediction. */
#define DD_API_OBSERVATION_MAX_BODY (64u * 1024u)
size_t dd_api_rightsize_routes(struct dd_rightsize *rs, const char *role,
                               struct dd_http_route *out);

/* Copies templ[n] into out with ctx; a NULL ctx (the subsystem is not in
 * this role) makes every route answer dd_api_not_in_role for role.
 * Returns n. */
size_t dd_api_fill_routes(const struct dd_http_route *templ, size_t n, void *ctx, const char *role,
                          struct dd_http_route *out);

/* The 404 of a route this role does not serve; ctx is the role name. */
int dd_api_not_in_role(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp);

#endif
