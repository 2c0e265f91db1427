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

/* ---- Additions for the model service (dedupd/rightsize) and tests ---- */

/* An OOMKilled outcome raises its owner's next memory prediction to at
 * least the memory limit the killed run had (else its observed peak) times
 * this factor: the limit was too low by an unknown amount, and a quarter
 * more is the smallest step that reliably clears a working set that grew
 * past it without doubling the request. */
#define DD_RS_OOM_FACTOR 1.25

/* The history fallback looks at an owner's newest outcomes only (VPA
 * decays its histograms over 8 days; a count window is the same idea
 * without a clock in a pure function). */
#define DD_RS_HISTORY_WINDOW 200u

/* The fallback percentile (VPA's upper bound is its 95th). */
#define DD_RS_FALLBACK_PERCENTILE 0.95

/*
 * The model's input row, one list (the names are the saved model's column
 * names; a model whose list differs is refused at load):
 *   NUM  a number from the pod (requests and limits, cores and bytes, NaN
 *        unset), the live state, or the owner's history before this pod:
 *        hist_n outcomes, hist_<target> the geometric mean of each target
 *        over them (log space, so one large run does not dominate),
 *        hist_oom_limit the newest OOMKilled run's memory limit;
 *   CAT  a category, encoded by the model's dictionary: each distinct
 *        string gets the next integer code in order of first appearance in
 *        time order; a retrained model starts from its predecessor's
 *        dictionary and only appends, so a code never changes meaning
 *        across versions. A value the dictionary lacks (a new owner, a new
 *        image) is missing (NaN), which the trees route down their learned
 *        default branch. "" is missing too.
 */
#define DD_RS_FEATURES(X)                                                                          \
    X(CPU_REQUEST, "cpu_request", NUM)                                                             \
    X(CPU_LIMIT, "cpu_limit", NUM)                                                                 \
    X(MEMORY_REQUEST, "memory_request", NUM)                                                       \
    X(MEMORY_LIMIT, "memory_limit", NUM)                                                           \
    X(GPUS, "gpus", NUM)                                                                           \
    X(N_CLAIMS, "n_claims", NUM)                                                                   \
    X(N_CONTAINERS, "n_containers", NUM)                                                           \
    X(FRAMEWORK, "framework", CAT)                                                                 \
    X(MODEL, "model", CAT)                                                                         \
    X(WORKLOAD, "workload", CAT)                                                                   \
    X(OWNER_KIND, "owner_kind", CAT)                                                               \
    X(OWNER, "owner", CAT)                                                                         \
    X(IMAGE, "image", CAT)                                                                         \
    X(LIVE_SLOWDOWN, "top_slowdown_pct", NUM)                                                      \
    X(LIVE_CPU_UTIL, "top_cpu_util", NUM)                                                          \
    X(LIVE_FREE_GPUS, "top_free_gpus", NUM)                                                        \
    X(HIST_N, "hist_n", NUM)                                                                       \
    X(HIST_CPU, "hist_peak_cpu_cores", NUM)                                                        \
    X(HIST_MEMORY, "hist_peak_memory_bytes", NUM)                                                  \
    X(HIST_GPU_MEMORY, "hist_gpu_memory_bytes", NUM)                                               \
    X(HIST_READ, "hist_read_mbps", NUM)                                                            \
    X(HIST_WRITE, "hist_write_mbps", NUM)                                                          \
    X(HIST_RUNTIME, "hist_run_seconds", NUM)                                                       \
    X(HIST_OOM_LIMIT, "hist_oom_limit", NUM)

#define DD_RS_FENUM_(id, name, kind) DD_RS_F_##id,
enum dd_rs_feature { DD_RS_FEATURES(DD_RS_FENUM_) DD_RS_NFEATURES };
#undef DD_RS_FENUM_
extern const char *const dd_rs_feature_names[DD_RS_NFEATURES];

/* The categorical features, in list order. */
#define DD_RS_NCAT 6

/* The history key of an owner: "ns/Kind/name", or "ns/Pod/name" for a pod
 * without a controller (name: the pod's name, else its generateName), or
 * "ns/Pod/uid:UID" when neither is known. */
void dd_rs_owner_key(const char *ns, const char *owner_kind, const char *owner_name,
                     const char *pod_name, const char *pod_uid, char *buf, size_t len);
void dd_rs_pod_owner_key(const struct dd_rs_pod *pod, char *buf, size_t len);

/* The framework and workload an image name suggests (lower-cased
 * substring match, first hit wins; README has the table): vllm, triton,
 * tgi (text-generation-inference), torchserve and tensorflow/serving ->
 * inference; pytorch/torch, tensorflow, jax, deepspeed, megatron, nemo ->
 * training; spark, dask, ray, dali -> preprocessing. "" when none
 * matches. */
void dd_rs_guess_from_image(const char *image, char *framework, size_t flen, char *workload,
                            size_t wlen);

/* A ReplicaSet name's owning Deployment: "web-5d8f7c9b4" -> "web" when the
 * last segment looks like a pod-template hash (1-10 characters of
 * Kubernetes' SafeEncodeString alphabet, at least one digit) or equals
 * hash (the pod's pod-template-hash label; may be NULL). 1 when stripped. */
int dd_rs_strip_template_hash(const char *rs_name, const char *hash, char *out, size_t len);

/* ---- training data: outcomes as rows (a repeated pod_uid replaces) ---- */
struct dd_rs_data;
int dd_rs_data_new(struct dd_rs_data **ret);
struct dd_rs_data *dd_rs_data_free(struct dd_rs_data *d);
/* Adds (or replaces by pod_uid) one outcome; time is its finished_at, else
 * started_at, else seq (the caller's receive order). Returns 0 or -ENOMEM. */
int dd_rs_data_add(struct dd_rs_data *d, const struct dd_rs_outcome *o, double seq);
/* Live rows (replaced ones not counted), distinct owners. */
size_t dd_rs_data_rows(const struct dd_rs_data *d);
size_t dd_rs_data_owners(const struct dd_rs_data *d);

struct dd_rs_train_options {
    unsigned rounds;         /* default 150 */
    unsigned max_depth;      /* default 5 */
    double eta;              /* default 0.1 */
    double holdout_fraction; /* newest share held out, default 0.2 */
    unsigned min_rows;       /* rows with a target before it is trained, default 50 */
    unsigned nthread;        /* default 1 */
};
void dd_rs_train_options_init(struct dd_rs_train_options *o);

/*
 * Trains one booster per target on d (time order: the newest
 * holdout_fraction held out, never trained on), evaluates each on the
 * hold-out against the history fallback (the owner's p95 over its earlier
 * outcomes, as it stood before each hold-out row), and serves a target's
 * booster only while its MAPE is lower (on the rows where the fallback had
 * a value; on all rows when it never had one). Targets are learned as
 * log(y + floor) (relative errors weigh alike; zeros allowed). prev (may be
 * NULL) lends its category dictionary. The model's history is d's.
 * A target with fewer than min_rows rows gets no booster. Returns 0,
 * -EINVAL (no target had enough rows: err says), -ENOMEM or DD_E_LIBRARY.
 */
int dd_rs_train(const struct dd_rs_data *d, const struct dd_rs_model *prev,
                const struct dd_rs_train_options *o, uint64_t version, uint64_t trained_at_ms,
                struct dd_rs_model **ret, char *err, size_t errlen);

/* dd_rs_train in two steps, for a service that must not hold its lock
 * while trees grow: prepare (the rows in time order with their history
 * features and fallback, the dictionary; O(rows), under the caller's lock
 * on d), then fit (XGBoost; d not touched). The fitted model has the
 * trees and an empty history: combine it with a model holding the
 * current history. */
struct dd_rs_prepared;
int dd_rs_train_prepare(const struct dd_rs_data *d, const struct dd_rs_model *prev,
                        const struct dd_rs_train_options *o, struct dd_rs_prepared **ret);
size_t dd_rs_prepared_rows(const struct dd_rs_prepared *p);
int dd_rs_train_fit(struct dd_rs_prepared *p, uint64_t version, uint64_t trained_at_ms,
                    struct dd_rs_model **ret, char *err, size_t errlen);
void dd_rs_prepared_free(struct dd_rs_prepared *p);
/* A new model with trees_from's trees (may be NULL: none) and
 * hist_from's history (may be NULL: empty), both shared. */
int dd_rs_model_combine(const struct dd_rs_model *trees_from, const struct dd_rs_model *hist_from,
                        struct dd_rs_model **ret);

/* A new model with m's trees (shared; m may be NULL: none) and d's
 * history, all owners (owner_key NULL) or one owner's rebuilt (the rest
 * shared with m). Cheap for one owner: the service calls it per outcome. */
int dd_rs_model_with_history(const struct dd_rs_model *m, const struct dd_rs_data *d,
                             const char *owner_key, struct dd_rs_model **ret);

/* Models are reference-counted (readers on many threads). */
struct dd_rs_model *dd_rs_model_ref(const struct dd_rs_model *m);
struct dd_rs_model *dd_rs_model_unref(struct dd_rs_model *m); /* NULL-safe; returns NULL */

uint64_t dd_rs_model_version(const struct dd_rs_model *m); /* 0: no trees */
bool dd_rs_model_has_trees(const struct dd_rs_model *m);
/* The history of an owner key (zeroes and NaN when unknown). */
void dd_rs_model_history(const struct dd_rs_model *m, const char *owner_key,
                         struct dd_rs_history *out);
size_t dd_rs_model_owners(const struct dd_rs_model *m);

/* {"version", "trained_at_ms", "targets": {NAME: {"train_rows",
 * "holdout_rows", "model_mape_percent", "fallback_mape_percent",
 * "fallback_rows", "served"}}, "categories": {NAME: count}} */
json_t *dd_rs_model_summary(const struct dd_rs_model *m);

/* Trees and dictionary (not the history: it is rebuilt from the stored
 * outcomes) in "DDRS1" framing: magic, header length, a JSON header
 * (version, evaluations, dictionary, feature names, booster lengths and
 * XXH3 checksums), the boosters in XGBoost UBJ. Load checks every length
 * and checksum before XGBoost reads a byte; -EINVAL with err saying what. */
int dd_rs_model_save(const struct dd_rs_model *m, void **ret, size_t *ret_len);
int dd_rs_model_load(const void *buf, size_t len, struct dd_rs_model **ret, char *err,
                     size_t errlen);

/* The row dd_rs_predict feeds the trees (for tests and explanations). */
void dd_rs_model_row(const struct dd_rs_model *m, const struct dd_rs_pod *pod,
                     const struct dd_rs_live *live, float row[DD_RS_NFEATURES]);

#endif
