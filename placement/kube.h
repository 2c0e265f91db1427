/*
 * The Kubernetes cache: the few fields placement uses of every Pod, PVC,
 * PV, StorageClass and Node, built from list items and watch events
 * (dedupd/kubewatch feeds it), so the extender resolves
 *   pod -> claims (PVCs, generic ephemeral "<pod>-<volume>", StatefulSet
 *   claims, which the controller writes into the pod's volumes) -> PVC ->
 *   StorageClass (pool: annotation dedupd.io/pool; none: not ours) and
 *   PV (pinned node: nodeAffinity, else the PVC's selected-node annotation)
 * from memory, never with an API call per request.
 *
 * Pure: common/ and jansson only, no I/O. Objects come in as jansson values
 * in the API's JSON shape (a real Pod, compact form):
 *   {"metadata":{"name":"trainer-0","namespace":"ml","uid":"6f1c...",
 *    "annotations":{"dedupd.io/read-mbps":"800"}},
 *    "spec":{"nodeName":"gpu-node-a","volumes":[{"name":"ckpt",
 *    "persistentVolumeClaim":{"claimName":"ckpt-trainer-0"}}],
 *    "containers":[{"resources":{"requests":{"nvidia.com/gpu":"2"}}}]},
 *    "status":{"phase":"Running"}}
 * Everything else in an object is dropped when it is applied (about 300
 * bytes a pod are kept), except a Node's labels (all of them: CSI topology
 * segments match nodes by label) and a StorageClass's parameters,
 * provisioner, binding mode and dedupd.io/expected-reduction and
 * dedupd.io/estimate annotations (csi/ capacity).
 *
 * Threads: one internal rwlock. Writers (the watch threads) take it for
 * each apply; readers (HTTP workers) for each lookup. Outputs are copies,
 * valid after the lock is gone. Hooks run on the writer's thread after the
 * lock is released, in event order per writer; they may call the readers.
 *
 * Refusals: an object whose kept field has the wrong type, a name longer
 * than DD_NAME_MAX - 1, a bad quantity or an annotation longer than its
 * buffer is refused with DD_E_PARSE (DD_E_RANGE for a quantity out of
 * range) and err names the field, e.g.
 *   "spec.containers[0].resources.requests[nvidia.com/gpu]: bad quantity '2x'"
 * A refused object changes nothing.
 */
#ifndef DD_PLACEMENT_KUBE_H
#define DD_PLACEMENT_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/limits.h"

/* DD_KUBE_NAMESPACE: a Namespace's labels only (the right-sizing webhook's
 * opt-in label, placement/admission.h). */
enum dd_kube_kind {
    DD_KUBE_POD,
    DD_KUBE_PVC,
    DD_KUBE_PV,
    DD_KUBE_SC,
    DD_KUBE_NODE,
    DD_KUBE_NAMESPACE,
    DD_KUBE_KINDS
};
enum dd_kube_event { DD_KUBE_ADDED, DD_KUBE_MODIFIED, DD_KUBE_DELETED };

/* "pod", "pvc", "pv", "storageclass", "node", "namespace" (metric labels,
 * messages) */
const char *dd_kube_kind_name(enum dd_kube_kind kind);
/* The collection path of a kind, cluster-wide: "/api/v1/pods",
 * "/apis/storage.k8s.io/v1/storageclasses", ... */
const char *dd_kube_kind_path(enum dd_kube_kind kind);

/* The annotations we read. */
#define DD_KUBE_ANN_POOL            "dedupd.io/pool" /* StorageClass */
#define DD_KUBE_ANN_READ_MBPS       "dedupd.io/read-mbps"
#define DD_KUBE_ANN_WRITE_MBPS      "dedupd.io/write-mbps"
#define DD_KUBE_ANN_DUPLICATE_SHARE "dedupd.io/duplicate-share"
#define DD_KUBE_ANN_PROFILE         "dedupd.io/profile"
#define DD_KUBE_ANN_SELECTED_NODE   "volume.kubernetes.io/selected-node"
/* StorageClass: the data reduction (logical / physical, >= 1) to expect of
 * the class's data not yet written (csi/ capacity), e.g. from
 * `dedupctl estimate`; and the estimate job that measured it. */
#define DD_KUBE_ANN_EXPECTED_REDUCTION "dedupd.io/expected-reduction"
#define DD_KUBE_ANN_ESTIMATE           "dedupd.io/estimate"
/* What a Node's labels and a StorageClass's parameters may hold (a longer
 * key or value, or more of them, refuses the object, naming the field). */
#define DD_KUBE_MAX_NODE_LABELS 256u
#define DD_KUBE_MAX_LABEL_KEY   320u /* prefix (253) + '/' + name (63) + NUL */
#define DD_KUBE_MAX_LABEL_VALUE 256u
#define DD_KUBE_MAX_SC_PARAMS   64u
/* The GPU resource name when none is configured. */
#define DD_KUBE_GPU_DEFAULT "nvidia.com/gpu"

struct dd_kube; /* the cache */

/* gpu_resources: the resource names counted as GPUs (copied); n 0 means
 * DD_KUBE_GPU_DEFAULT. At most DD_KUBE_MAX_GPU_RESOURCES. Returns 0,
 * -EINVAL or -ENOMEM. */
int dd_kube_new(struct dd_kube **ret, const char *const *gpu_resources, size_t n_gpu_resources);
/* Accepts NULL; returns NULL. */
struct dd_kube *dd_kube_free(struct dd_kube *k);

/*
 * Hooks, set once before the first apply (ctx borrowed). pod_bound: a
 * pod that is not terminated has a node (it was bound, or appeared bound:
 * the first list after a restart reports every running pod, which rebuilds
 * the ledger). pod_deleted: a pod that had a node was deleted or
 * terminated (Succeeded, Failed), or left in a relist. node_deleted: a Node
 * object went away. relisted: a list of kind was applied whole
 * (dd_kube_relist_end, after its other hooks): with one thread per kind, a
 * pod's claims and class may arrive after the pod's binding, so what the
 * bindings of the first lists could not resolve is resolved once every kind
 * has been listed. Any hook may be NULL.
 */
struct dd_kube_hooks {
    void *ctx;
    void (*pod_bound)(void *ctx, const char *uid, const char *ns, const char *name,
                      const char *node);
    void (*pod_deleted)(void *ctx, const char *uid, const char *ns, const char *name,
                        const char *node);
    void (*node_deleted)(void *ctx, const char *node);
    void (*relisted)(void *ctx, enum dd_kube_kind kind);
};
void dd_kube_set_hooks(struct dd_kube *k, const struct dd_kube_hooks *h);

/* Applies one object (a list item or a watch event's object); keeps only
 * what we use. DELETED needs only the metadata. Returns 0 or a refusal
 * (see above). */
int dd_kube_apply(struct dd_kube *k, enum dd_kube_kind kind, enum dd_kube_event ev,
                  const json_t *obj, char *err, size_t errlen);

/*
 * A (re)list: dd_kube_relist_begin opens a new generation of the kind;
 * every object applied after it is marked; dd_kube_relist_end deletes the
 * objects of that kind left unmarked (with hooks) and returns how many. A
 * list that fails half way is simply not ended: nothing is deleted, and the
 * next begin starts over. One writer per kind.
 */
void dd_kube_relist_begin(struct dd_kube *k, enum dd_kube_kind kind);
size_t dd_kube_relist_end(struct dd_kube *k, enum dd_kube_kind kind);

/*
 * One list page: {"kind":"PodList","metadata":{"resourceVersion":"RV",
 * "continue":"TOKEN"},"items":[...]}. Every item is applied as ADDED; an
 * item refused is skipped and counted in *ret_refused (the first refusal's
 * reason in err). ret_rv and ret_continue get the page's strings ("" when
 * absent). Returns 0, or DD_E_PARSE when the page itself is malformed (err
 * says where), DD_E_TOOBIG when a token does not fit its buffer.
 */
int dd_kube_apply_list_page(struct dd_kube *k, enum dd_kube_kind kind, const char *body, size_t len,
                            char *ret_rv, size_t rvlen, char *ret_continue, size_t contlen,
                            size_t *ret_refused, char *err, size_t errlen);

/* ---- the watch stream's framing (pure, fuzzed) ---- */

/*
 * The line splitter: a watch body is one JSON object per line, and chunk
 * boundaries fall anywhere, also inside an event. Bytes are buffered until
 * '\n' and each complete line is handed to on_line (without the newline;
 * empty lines skipped). A line longer than max is refused with DD_E_TOOBIG
 * and the splitter stays failed. on_line's negative return stops feeding and
 * is returned.
 */
struct dd_kube_lines {
    char *buf;
    size_t len, alloc, max;
    int failed;
};
typedef int (*dd_kube_line_fn)(void *ud, const char *line, size_t len);
void dd_kube_lines_init(struct dd_kube_lines *l, size_t max);
int dd_kube_lines_feed(struct dd_kube_lines *l, const char *data, size_t len, dd_kube_line_fn fn,
                       void *ud);
/* Bytes of an unfinished line (a connection closed mid-event leaves some). */
size_t dd_kube_lines_pending(const struct dd_kube_lines *l);
void dd_kube_lines_reset(struct dd_kube_lines *l);
void dd_kube_lines_release(struct dd_kube_lines *l);

enum dd_kube_watch_type {
    DD_KUBE_W_ADDED,
    DD_KUBE_W_MODIFIED,
    DD_KUBE_W_DELETED,
    DD_KUBE_W_BOOKMARK,
    DD_KUBE_W_ERROR
};
/* One decoded watch line. object is owned (json_decref it, or
 * dd_kube_watch_event_release). rv: the object's metadata.resourceVersion
 * ("" for ERROR); code and message: an ERROR's Status (code 0 if none). */
struct dd_kube_watch_event {
    enum dd_kube_watch_type type;
    json_t *object;
    char rv[DD_KUBE_MAX_RV];
    int code;
    char message[256];
};
/* Decodes {"type":...,"object":{...}}. Returns 0 or DD_E_PARSE with err
 * naming what is wrong; ev is written only on success. */
int dd_kube_watch_event_decode(const char *line, size_t len, struct dd_kube_watch_event *ev,
                               char *err, size_t errlen);
void dd_kube_watch_event_release(struct dd_kube_watch_event *ev);

/* ---- readers ---- */

struct dd_kube_claim {
    char name[DD_NAME_MAX]; /* PVC name */
    bool known;             /* PVC in the cache */
    bool ours;              /* its StorageClass has dedupd.io/pool */
    char pool[DD_NAME_MAX];
    char storage_class[DD_NAME_MAX];
    bool bound; /* PVC bound to a PV */
    /* the node the volume is pinned to: the PV's required nodeAffinity (a
     * single-value In on kubernetes.io/hostname, on a key ending in
     * "/node" or "/hostname", or whose value names a known node), else the
     * PVC's volume.kubernetes.io/selected-node; "" if none */
    char node[DD_NAME_MAX];
    uint64_t request_bytes; /* spec.resources.requests.storage (quantity, rounded up) */
    bool read_write;        /* an access mode other than ReadOnlyMany (true when unknown) */
    bool ephemeral;         /* a generic ephemeral volume's claim ("<pod>-<volume>") */
    /* the PVC's dedupd.io/ annotations, raw strings ("" if absent) */
    char read_mbps[32], write_mbps[32], duplicate_share[32], profile[DD_NAME_MAX];
};

struct dd_kube_pod {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX], node[DD_NAME_MAX]; /* node: spec.nodeName */
    char phase[16]; /* status.phase, "" if none */
    /* the configured GPU resources: containers' requests (limits when no
     * request) summed, init containers by max (Kubernetes' effective request) */
    double gpus;
    char read_mbps[32], write_mbps[32], duplicate_share[32], profile[DD_NAME_MAX];
    size_t n_claims;
    struct dd_kube_claim claims[DD_KUBE_MAX_CLAIMS];
    bool claims_truncated; /* more than DD_KUBE_MAX_CLAIMS claims; the first kept */
};

/* Resolves a pod object (the scheduler's, perhaps not cached yet) against
 * the cache. Returns 0 or a refusal (err names the field). */
int dd_kube_pod_resolve(struct dd_kube *k, const json_t *pod, struct dd_kube_pod *out, char *err,
                        size_t errlen);
/* The cached pod ns/name, resolved. 0 or -ENOENT. */
int dd_kube_pod_lookup(struct dd_kube *k, const char *ns, const char *name,
                       struct dd_kube_pod *out);
/* A node's GPUs: status.allocatable of the GPU resources, and the requests
 * of its non-terminated pods. 0, or -ENOENT when no Node object and no pod
 * names it (both outputs 0 then). */
int dd_kube_node_gpus(struct dd_kube *k, const char *node, double *allocatable, double *requested);
/* True when a Node object of that name is cached. */
bool dd_kube_node_known(struct dd_kube *k, const char *node);
/* A StorageClass's pool: 0 and the pool, -ENOENT (no such class) or
 * -ENODATA (the class is not ours). */
int dd_kube_class_pool(struct dd_kube *k, const char *storage_class, char *ret_pool, size_t len);
/* Cached objects per kind (Node: Node objects only). */
void dd_kube_counts(struct dd_kube *k, size_t counts[DD_KUBE_KINDS]);
/* Calls fn for every non-terminated pod with a node, under the read lock
 * (fn must not call a writer). For rebuilding the ledger. Returns the
 * number of calls. */
size_t dd_kube_foreach_bound_pod(struct dd_kube *k,
                                 void (*fn)(void *ctx, const char *uid, const char *ns,
                                            const char *name, const char *node, double gpus),
                                 void *ctx);

/* ---- readers for the CSI-adjacent API (csi/, dedupd/api/csi.c) ---- */

/*
 * Node labels are kept (metadata.labels of the cached Node object, all of
 * them, as strings) so a CSI topology segment {K: V} can name the nodes
 * whose labels hold K=V: a CSI driver's own topology keys then work
 * without configuration.
 *
 * dd_kube_foreach_node calls fn for every cached Node object with its
 * labels as n_labels key/value pairs (kv[2i] the key, kv[2i+1] the value),
 * under the read lock: fn must not call a writer, and the strings are
 * valid only during the call. Returns the number of calls.
 */
size_t dd_kube_foreach_node(struct dd_kube *k,
                            void (*fn)(void *ctx, const char *node, const char *const *kv,
                                       size_t n_labels),
                            void *ctx);
/* One label of a cached Node: 0, -ENOENT (no Node object), -ENODATA (no
 * such label). */
int dd_kube_node_label(struct dd_kube *k, const char *node, const char *key, char *ret, size_t len);

/* One label of a cached Namespace: 0, -ENOENT (no such Namespace),
 * -ENODATA (no such label). */
int dd_kube_namespace_label(struct dd_kube *k, const char *ns, const char *key, char *ret,
                            size_t len);

struct dd_kube_class {
    char name[DD_NAME_MAX], pool[DD_NAME_MAX]; /* pool "" when not ours */
    char provisioner[DD_NAME_MAX];
    char binding_mode[32];       /* volumeBindingMode, "" when unset (Immediate) */
    char expected_reduction[32]; /* dedupd.io/expected-reduction, raw ("" if absent) */
    char estimate[DD_NAME_MAX];  /* dedupd.io/estimate, raw ("" if absent) */
    size_t n_parameters;
};
/* A cached StorageClass by name: 0 or -ENOENT. */
int dd_kube_class_lookup(struct dd_kube *k, const char *name, struct dd_kube_class *out);
/* Calls fn for every cached StorageClass of ours (with dedupd.io/pool),
 * under the read lock (fn must not call a writer; out is valid during the
 * call). For the CSIStorageCapacity publisher. Returns the number of calls. */
size_t dd_kube_foreach_class(struct dd_kube *k,
                             void (*fn)(void *ctx, const struct dd_kube_class *cls), void *ctx);
/* The StorageClass whose parameters equal params (a JSON object of
 * strings: the same keys, the same values), as external-provisioner passes
 * them to GetCapacity; keys under "csi.storage.k8s.io/" (which
 * external-provisioner strips or adds) are left out on both sides. Several: one of ours (with
 * dedupd.io/pool) first, then the first name; *ret_matches (may be NULL) counts them. 0 or -ENOENT.
 */
int dd_kube_class_by_parameters(struct dd_kube *k, const json_t *params, struct dd_kube_class *out,
                                size_t *ret_matches);

struct dd_kube_pvc {
    struct dd_kube_claim claim;      /* resolved as a pod's claim is */
    char selected_node[DD_NAME_MAX]; /* volume.kubernetes.io/selected-node, "" if none */
    char volume[DD_NAME_MAX];        /* spec.volumeName, "" when unbound */
};
/* A cached PVC: 0 or -ENOENT. */
int dd_kube_pvc_lookup(struct dd_kube *k, const char *ns, const char *name,
                       struct dd_kube_pvc *out);
/* The cached pod of namespace ns that uses claim (a PVC of its volumes, a
 * generic ephemeral "<pod>-<volume>" or a StatefulSet claim): a live one
 * before a terminated one, then the first name. A scan of the pods (not
 * an index): fine for CreateVolume's rate. 0 or -ENOENT. */
int dd_kube_pod_using_claim(struct dd_kube *k, const char *ns, const char *claim,
                            struct dd_kube_pod *out);

/* ---- Kubernetes quantities (pure, fuzzed) ---- */

/*
 * A resource.Quantity string: a number (digits, optional fraction, an
 * optional leading '+') and a suffix: binary Ki Mi Gi Ti Pi Ei, decimal
 * n u m k M G T P E or none, or an exponent e/E with a signed integer
 * ("1e3", "5E-1"). Negative values are refused (nothing we read is).
 * dd_kube_quantity gives the value in whole units rounded up (as
 * Quantity.Value()), dd_kube_quantity_milli in thousandths rounded up (as
 * MilliValue(): "500m" -> 500, "2" -> 2000). 0, DD_E_PARSE, or DD_E_RANGE
 * when the value passes 2^64 - 1.
 */
int dd_kube_quantity(const char *s, uint64_t *ret);
int dd_kube_quantity_milli(const char *s, uint64_t *ret);

#endif
