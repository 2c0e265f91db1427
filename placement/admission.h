/*
 * The right-sizing admission webhook's decisions (issue 13, "Rewrite"):
 * AdmissionReview v1 in, the opt-in rule, the rewrite policy from a
 * prediction (placement/rightsize.h), the RFC 6902 JSONPatch and the
 * AdmissionReview response out. Pure: jansson and common/ only; the
 * daemon's glue (dedupd/api/admission.c) asks the model and the cluster.
 *
 * The request (reference/k8s/admission, compact on the wire):
 *   {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
 *    "request":{"uid":"705ab4f5-...","kind":{"group":"","version":"v1",
 *    "kind":"Pod"},"namespace":"ml","operation":"CREATE","dryRun":false,
 *    "object":{"metadata":{"name":"trainer-0",...},"spec":{...}},
 *    "userInfo":{...}}}
 * userInfo, options, oldObject are ignored. The response:
 *   {"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
 *    "response":{"uid":"705ab4f5-...","allowed":true,
 *    "patchType":"JSONPatch","patch":"<base64 of the JSON Patch>",
 *    "warnings":["..."]}}
 * The webhook never denies: "allowed" is always true (fail open).
 *
 * Opt-in: the pod annotation dedupd.io/rightsize: "true", or the
 * namespace label dedupd.io/rightsize=enabled (the AdmissionReview carries
 * no namespace labels: the caller reads them from its Kubernetes cache).
 * A pod annotation "false" opts out of a namespace's opt-in. Excluded
 * namespaces (kube-system and dedupd's own by default) are never touched.
 *
 * The rewrite policy (dd_adm_rewrite), from the pod-level prediction:
 *   - CPU: request = predicted peak cores; limit = request x (1 +
 *     cpu_limit_headroom) (default 0.25), or none at all with
 *     no_cpu_limits (existing CPU limits are removed: CFS throttling hurts
 *     data loaders).
 *   - Memory: request = predicted peak bytes; limit = request x (1 +
 *     memory_margin) (default 0.20).
 *   - Each pod-level value moves at most max_step_up x (default 2) or
 *     max_step_down x (default 0.5) from the current one per admission.
 *   - Then the floors, which win over the step: the memory limit is never
 *     below the owner's highest observed peak x (1 + memory_margin), and
 *     after an OOMKilled outcome never below 1.5 x the limit the pod was
 *     killed at (DD_ADM_OOM_RAISE); requests never exceed limits; at least
 *     10m CPU and 16 MiB memory.
 *   - The pod-level values go to the regular containers in proportion to
 *     their current requests (limits where no request; equal shares when
 *     a container has neither). Init containers and sidecars (init
 *     containers with restartPolicy: Always) keep theirs; the sidecars'
 *     requests are taken off the prediction first (at most 90 % of it).
 *   - GPU resources are never touched; neither is a resource the model has
 *     no basis for (NaN prediction).
 *   - Static CPU manager (static_cpu_nodes: the nodes the extender would
 *     rank first carry dedupd.io/cpu-manager=static): when the pod's
 *     predicted peak is at least one core, no_cpu_limits is off and every
 *     init container already has requests equal to limits, each regular
 *     container gets integer CPUs with requests == limits and memory
 *     requests == limits (Guaranteed QoS: exclusive cores), with the
 *     reason; otherwise the reason it was not done.
 *   - Quantities: CPU in millicores rounded up ("1500m", "2" when whole),
 *     memory in MiB rounded up ("4096Mi").
 *   - Annotations: dedupd.io/rightsize-prediction (the format in
 *     placement/rightsize.h, with the live state); in enforce mode also
 *     dedupd.io/read-mbps and dedupd.io/write-mbps from the predicted I/O
 *     (the extender's workload profile), never overwriting ones the pod
 *     has; in recommend mode dedupd.io/rightsize-recommendation (the
 *     per-container requests and limits that enforce would set, and the
 *     reasons) instead of any resource change.
 *   - A pod that already carries dedupd.io/rightsize-prediction was
 *     right-sized by an earlier invocation (reinvocationPolicy IfNeeded):
 *     it is left as it is, so the step is never applied twice.
 */
#ifndef DD_PLACEMENT_ADMISSION_H
#define DD_PLACEMENT_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/limits.h"
#include "placement/rightsize.h"

#define DD_ADM_ANN_RIGHTSIZE      "dedupd.io/rightsize"                /* pod: "true" | "false" */
#define DD_ADM_NS_LABEL           "dedupd.io/rightsize"                /* namespace: "enabled" */
#define DD_ADM_ANN_PREDICTION     "dedupd.io/rightsize-prediction"     /* rightsize.h format */
#define DD_ADM_ANN_RECOMMENDATION "dedupd.io/rightsize-recommendation" /* recommend mode */
#define DD_ADM_NODE_CPU_MANAGER   "dedupd.io/cpu-manager"              /* node label: "static" */
#define DD_ADM_API_VERSION        "admission.k8s.io/v1"

/* Excluded namespaces a configuration may list. */
#define DD_ADM_MAX_EXCLUDE 16
/* The memory limit after an OOMKilled run: at least this x the limit it
 * was killed at. */
#define DD_ADM_OOM_RAISE 1.5
/* The smallest values the rewrite sets. */
#define DD_ADM_MIN_CPU_CORES    0.01
#define DD_ADM_MIN_MEMORY_BYTES (16.0 * 1024 * 1024)

enum dd_adm_mode { DD_ADM_ENFORCE, DD_ADM_RECOMMEND };

struct dd_adm_options {
    enum dd_adm_mode mode;
    bool no_cpu_limits;
    double max_step_up;        /* > 1; default 2 */
    double max_step_down;      /* 0 < x < 1; default 0.5 */
    double memory_margin;      /* >= 0; default 0.20 */
    double cpu_limit_headroom; /* >= 0; default 0.25 */
    char exclude[DD_ADM_MAX_EXCLUDE][DD_NAME_MAX];
    size_t n_exclude; /* default: kube-system */
    /* GPU resource names (never touched); NULL: nvidia.com/gpu */
    const char *const *gpu_resources;
    size_t n_gpu_resources;
};
void dd_adm_options_init(struct dd_adm_options *o);
/* Adds an excluded namespace (idempotent). 0 or -ENOSPC/-EINVAL. */
int dd_adm_options_exclude(struct dd_adm_options *o, const char *ns);
/* "enforce" | "recommend" -> mode; -EINVAL otherwise. */
int dd_adm_mode_parse(const char *s, enum dd_adm_mode *ret);
const char *dd_adm_mode_name(enum dd_adm_mode m);

/* ---- the review ---- */

struct dd_adm_review {
    char uid[128];        /* request.uid; set even when decoding fails later */
    char kind[64];        /* request.kind.kind ("Pod") */
    char ns[DD_NAME_MAX]; /* request.namespace ("" for a cluster-scoped object) */
    char operation[16];   /* CREATE, UPDATE, ... */
    bool dry_run;         /* request.dryRun */
    const json_t *object; /* request.object, borrowed from the document; NULL if null */
};
/*
 * Decodes an AdmissionReview v1. Returns 0, or -EINVAL with err naming the
 * field ("request.uid: expected a non-empty string"); ret->uid is filled
 * as soon as it is readable, so a malformed review whose uid is known can
 * still be answered (allowed, with a warning). ret->object borrows doc.
 */
int dd_adm_review_decode(const json_t *doc, struct dd_adm_review *ret, char *err, size_t errlen);

/* ---- opt-in ---- */

enum dd_adm_optin {
    DD_ADM_OPT_POD,       /* annotation dedupd.io/rightsize: "true" */
    DD_ADM_OPT_NAMESPACE, /* namespace label dedupd.io/rightsize=enabled */
    DD_ADM_OPT_NONE,      /* neither */
    DD_ADM_OPT_OUT,       /* annotation "false" */
    DD_ADM_OPT_EXCLUDED,  /* an excluded namespace */
};
/* "pod_annotation", "namespace_label", "not_opted_in", "opted_out", "excluded_namespace" */
const char *dd_adm_optin_name(enum dd_adm_optin o);
/* ns: the pod's namespace (the review's, else the object's; "" default);
 * ns_label: the namespace's dedupd.io/rightsize label (NULL none). */
enum dd_adm_optin dd_adm_opted_in(const struct dd_adm_options *o, const char *ns, const json_t *pod,
                                  const char *ns_label);

/* ---- the rewrite ---- */

/* What the rewrite decided for one regular container (NaN: unset). */
struct dd_adm_container {
    char name[DD_NAME_MAX];
    size_t index; /* in spec.containers */
    double cpu_request[2], cpu_limit[2], memory_request[2], memory_limit[2]; /* [0] old, [1] new */
    double gpus;                                                             /* untouched */
};

struct dd_adm_result {
    json_t *patch;       /* a JSON Patch array (owned; [] when nothing changes) */
    json_t *explanation; /* owned: {"mode", "containers": [...], "reasons": [...], ...} */
    bool changed;        /* patch is not empty */
    bool static_cpus;    /* the static-CPU-manager shape was applied */
    size_t n_containers;
    struct dd_adm_container containers[DD_RS_MAX_CONTAINERS];
};
void dd_adm_result_release(struct dd_adm_result *r);

/*
 * Rewrites pod (a Pod object) from pred and live as described above into
 * ret (patch and explanation). static_cpu_nodes: the best-ranked nodes
 * have dedupd.io/cpu-manager=static. Returns 0, or -EINVAL with err naming
 * the field of a pod that cannot be rewritten (containers not an array, a
 * bad quantity), or -ENOMEM; ret is written only on success.
 */
int dd_adm_rewrite(const struct dd_adm_options *o, const json_t *pod,
                   const struct dd_rs_prediction *pred, const struct dd_rs_live *live,
                   bool static_cpu_nodes, struct dd_adm_result *ret, char *err, size_t errlen);

/* The dedupd.io/rightsize-prediction annotation's JSON (rightsize.h). */
json_t *dd_adm_prediction_json(const struct dd_rs_prediction *pred, const struct dd_rs_live *live);

/* ---- the patch and the response ---- */

/*
 * Applies a JSON Patch of "add", "remove" and "replace" ops (what
 * dd_adm_rewrite emits; paths with ~0 and ~1 escapes, array indexes and
 * "-") to doc in place. Returns 0, or -EINVAL with err naming the op that
 * does not apply (the document may then be half patched: apply to a copy).
 */
int dd_adm_patch_apply(json_t *doc, const json_t *patch, char *err, size_t errlen);

/* Standard base64 (RFC 4648, with padding) of len bytes; NULL on ENOMEM.
 * The caller frees with dd_free. No dependency of ours offers one. */
char *dd_adm_base64(const void *data, size_t len);

/* The AdmissionReview response: uid echoed, allowed true, the patch
 * (base64, patchType JSONPatch) when patch is a non-empty array, and the
 * warnings (NULL entries skipped). NULL on ENOMEM. */
json_t *dd_adm_response(const char *uid, const json_t *patch, const char *const *warnings,
                        size_t n_warnings);

#endif
