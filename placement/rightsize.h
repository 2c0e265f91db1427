/*
 * Right-sizing: what a pod will really use — peak CPU cores, peak memory,
 * GPU memory, read and write MB/s, run time — predicted from its static
 * description and the cluster's live state, and learned from the observed
 * outcomes of earlier pods (the closed loop). Pure: no I/O.
 *
 * Contract between the parts (the implementation may add to it, not change
 * it):
 *   - dd_rs_pod_from_json: a Pod object (AdmissionReview's request.object,
 *     a cached pod, a file) -> its static description.
 *   - dd_rs_outcome_from_json: the fixed POST /v1/observations body -> one
 *     outcome (the store keeps its JSON; a repeated pod_uid replaces it).
 *   - dd_rs_predict: model (may be NULL: history and requests only) + the
 *     owner's history + live state -> one prediction per target with its
 *     source. placement/admission turns a prediction into requests and
 *     limits and a JSONPatch; this file does not rewrite anything.
 */
#ifndef DD_PLACEMENT_RIGHTSIZE_H
#define DD_PLACEMENT_RIGHTSIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/limits.h"

/* Targets, per pod (containers summed; init containers by max). */
#define DD_RS_TARGETS(X)                                                                           \
    X(CPU, "peak_cpu_cores", "cores")                                                              \
    X(MEMORY, "peak_memory_bytes", "bytes")                                                        \
    X(GPU_MEMORY, "gpu_memory_bytes", "bytes")                                                     \
    X(READ, "read_mbps", "MB/s")                                                                   \
    X(WRITE, "write_mbps", "MB/s")                                                                 \
    X(RUNTIME, "run_seconds", "s")

#define DD_RS_ENUM_(id, key, unit) DD_RS_##id,
enum dd_rs_target { DD_RS_TARGETS(DD_RS_ENUM_) DD_RS_NTARGETS };
#undef DD_RS_ENUM_

/* "peak_cpu_cores", ... in enum order (the JSON keys of an outcome). */
extern const char *const dd_rs_target_names[DD_RS_NTARGETS];

#define DD_RS_MAX_CONTAINERS 32

/* Requests and limits of one container; NaN where not set. */
struct dd_rs_container {
    char name[DD_NAME_MAX];
    double cpu_request, cpu_limit;       /* cores */
    double memory_request, memory_limit; /* bytes */
    double gpus;                         /* the configured GPU resources */
    bool init;                           /* in spec.initContainers */
    bool sidecar;                        /* an init container with restartPolicy: Always */
};

/* A pod's static description (the model's static features come from it). */
struct dd_rs_pod {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX], generate_name[DD_NAME_MAX];
    /* The owning workload: a ReplicaSet "web-5d8f7c9b4" becomes
     * Deployment "web" (the pod-template hash stripped), so a Deployment's
     * pods share one history across rollouts. "" when the pod has no
     * controller (the history is then keyed by namespace/name). */
    char owner_kind[64], owner_name[DD_NAME_MAX];
    /* dedupd.io/framework, dedupd.io/model, dedupd.io/workload (training |
     * inference | preprocessing), else guessed from the image name. */
    char framework[64], model[128], workload[32];
    char image[256]; /* the first regular container's image */
    size_t n_containers;
    struct dd_rs_container containers[DD_RS_MAX_CONTAINERS];
    bool containers_truncated;
    /* Effective pod requests/limits (regular containers summed, init
     * containers by max, as the scheduler counts them); NaN when unset. */
    double cpu_request, cpu_limit, memory_request, memory_limit, gpus;
    size_t n_claims;
    char rightsize[16]; /* dedupd.io/rightsize as given ("" none) */
};

/* Parses a Pod object. Tolerant of what a pod may legally omit (name empty
 * with generateName set, no resources, no annotations); -EINVAL with err
 * naming the field ("spec.containers[1].resources.limits.memory: ...") for
 * what cannot be a pod. gpu_resources: the configured GPU resource names
 * (NULL: "nvidia.com/gpu"). */
int dd_rs_pod_from_json(const json_t *pod, const char *const *gpu_resources, size_t n_gpu_resources,
                        struct dd_rs_pod *out, char *err, size_t errlen);

/* Live state at admission (no node chosen yet): the nodes the extender
 * would rank first for this pod now. NaN where unknown. The admission
 * webhook records it, with the prediction, in the pod's annotation
 * dedupd.io/rightsize-prediction:
 *   {"model_version": N, "predicted": {"peak_cpu_cores": x, ...},
 *    "source": {"peak_cpu_cores": "model"|"history"|"none", ...},
 *    "live": {"top_slowdown_pct": x, "top_cpu_util": x, "top_free_gpus": x,
 *             "n_nodes": N}}
 * so an outcome (whose "annotations" carry it back) tells the trainer what
 * the live state was when the pod was admitted. */
struct dd_rs_live {
    double top_slowdown_pct; /* the best candidates' predicted I/O slowdown, % */
    double top_cpu_util;     /* their CPU utilisation without VDO, 0..1 */
    double top_free_gpus;    /* their free GPUs */
    size_t n_nodes;          /* nodes the figures come from (0: none) */
};

/* One observed outcome (POST /v1/observations, or the node role). */
struct dd_rs_outcome {
    char pod_uid[128], ns[DD_NAME_MAX], owner_kind[64], owner_name[DD_NAME_MAX];
    char node[DD_NAME_MAX];
    struct dd_rs_pod pod;           /* static description: annotations, requests, limits */
    double started_at, finished_at; /* Unix seconds; NaN unknown */
    double target[DD_RS_NTARGETS];  /* NaN unknown; RUNTIME from finished - started */
    int exit_code;                  /* INT32_MIN unknown */
    char reason[32];                /* OOMKilled, Evicted, DeadlineExceeded, Completed, "" */
    struct dd_rs_live live;         /* from the dedupd.io/rightsize-prediction annotation */
};

/* The fixed body of POST /v1/observations. -EINVAL with err naming the
 * field. */
int dd_rs_outcome_from_json(const json_t *doc, struct dd_rs_outcome *out, char *err, size_t errlen);
json_t *dd_rs_outcome_to_json(const struct dd_rs_outcome *o);

/* Trained models (one per target, with their category dictionary) and the
 * per-owner history index; immutable once built. The service rebuilds the
 * history part on every new outcome (cheap) and retrains the trees on its
 * own schedule, then swaps the whole object. */
struct dd_rs_model;

/* What the history of one owner holds. */
struct dd_rs_history {
    size_t n;                     /* outcomes of this owner */
    double p95[DD_RS_NTARGETS];   /* per-owner percentile (the VPA-like fallback) */
    double max_memory_bytes;      /* highest observed peak memory; NaN none */
    size_t oom_killed;            /* OOMKilled outcomes */
    double last_oom_memory_limit; /* memory limit of the newest OOMKilled run; NaN none */
};

struct dd_rs_prediction {
    double value[DD_RS_NTARGETS]; /* NaN: no basis for this target */
    /* "model" (XGBoost, served only while it beats the history fallback),
     * "history" (the owner's percentile), "none" */
    const char *source[DD_RS_NTARGETS];
    uint64_t model_version; /* 0: no model */
    struct dd_rs_history history;
};

/* m may be NULL (no model yet). Always fills out; returns 0 or -EINVAL. */
int dd_rs_predict(const struct dd_rs_model *m, const struct dd_rs_pod *pod,
                  const struct dd_rs_live *live, struct dd_rs_prediction *out);

#endif
