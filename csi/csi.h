/*
 * CSI-adjacent topology (DESIGN.md; csi/README.md): the CSI messages a
 * cooperating VDO CSI controller and external-provisioner exchange, in
 * proto3 canonical JSON, and the pure decisions dedupd adds to them:
 *
 *   segments    what dedupd publishes per node, in NodeGetInfo's
 *               accessible_topology shape, under its own key prefix
 *               (never a CSI driver's keys):
 *                 topology.dedupd.io/node           the node name
 *                 topology.dedupd.io/pool-<pool>    "true", one per pool
 *                                                   the node reports
 *   matching    a segment {K: V, ...} names every node whose labels hold
 *               every K=V (the Kubernetes cache's Node labels, plus the
 *               node's own dedupd keys above), so a driver's keys work
 *               without configuration; an empty segment names every node;
 *   ordering    a TopologyRequirement's requisite entries, each once,
 *               best first by the pod's predicted slowdown (the scorer's),
 *               segments without a reporting node last, the selected
 *               node's segment pinned first;
 *   capacity    dedup-aware effective capacity of a pool's volume: what
 *               fits logically given its physical free space, the ledger's
 *               reservations and the reduction its data gets.
 *
 * Pure: common/ and jansson, no I/O, no placement/ types (the glue in
 * dedupd/api/csi.c turns the cluster view and the scorer's answers into
 * the plain values here).
 *
 * Decoding: both proto field spellings are accepted (camelCase as proto3
 * JSON writes them, snake_case as in csi.proto; both at once is refused),
 * int64 fields as decimal strings (canonical) or JSON integers (proto3 JSON
 * accepts both), never negative, fractional or out of range; map values
 * must be strings; unknown fields are ignored (protojson's DiscardUnknown:
 * a newer CSI spec adds fields). Every refusal names the field
 * ("accessibilityRequirements.requisite[2].segments[zone]: expected a
 * string"). Encoding is canonical: camelCase, int64 as strings, proto3
 * defaults (0, "", empty) left out, except GetCapacityResponse's wrapper
 * fields, which are written whenever set.
 *
 * Decoded strings are borrowed from the JSON document, which must outlive
 * the decoded value; release frees only the arrays.
 */
#ifndef DD_CSI_CSI_H
#define DD_CSI_CSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Our topology keys (README: the segment keys). */
#define DD_CSI_KEY_PREFIX      "topology.dedupd.io/"
#define DD_CSI_KEY_NODE        "topology.dedupd.io/node"
#define DD_CSI_KEY_POOL_PREFIX "topology.dedupd.io/pool-"
/* A pool name fits a label key's name part ("pool-" + pool <= 63) when it
 * is 1..58 characters of [A-Za-z0-9._-] starting and ending alphanumeric;
 * other pools get no key of their own (the node key still names them). */
#define DD_CSI_MAX_POOL_KEY_NAME 58u

/* Caps on what a request may hold. */
#define DD_CSI_MAX_TOPOLOGIES   20000u /* entries in requisite or preferred */
#define DD_CSI_MAX_SEGMENT_KEYS 64u
#define DD_CSI_MAX_KEY          320u /* bytes, NUL included */
#define DD_CSI_MAX_VALUE        256u
#define DD_CSI_MAX_PARAMETERS   128u
#define DD_CSI_MAX_BODY         (8u * 1024u * 1024u)

/* ---- segments ---- */

struct dd_csi_pair {
    const char *key, *value;
};

/* One Topology: its pairs sorted by key (keys are unique). */
struct dd_csi_segment {
    size_t n;
    struct dd_csi_pair *kv;
};

/* Segments compare by their sorted pairs (memcmp order). */
int dd_csi_segment_cmp(const struct dd_csi_segment *a, const struct dd_csi_segment *b);
/* {"segments": {K: V, ...}} */
json_t *dd_csi_segment_to_json(const struct dd_csi_segment *s);
/* Decodes a Topology object; path names it in errors. */
int dd_csi_segment_decode(const json_t *topology, const char *path, struct dd_csi_segment *ret,
                          char *err, size_t errlen);
void dd_csi_segment_release(struct dd_csi_segment *s);

/* Is pool usable in a key of its own (DD_CSI_MAX_POOL_KEY_NAME)? */
bool dd_csi_pool_key_ok(const char *pool);
/* Our segment of a node: {DD_CSI_KEY_NODE: node, DD_CSI_KEY_POOL_PREFIX
 * pool: "true" for each pool with a key of its own} as the segments map
 * (an object of strings). NULL on ENOMEM. */
json_t *dd_csi_node_segments(const char *node, const char *const *pools, size_t n_pools);

/* ---- matching segments to nodes ---- */

struct dd_csi_matcher;
/* Indexes segs[0..n) (borrowed; must outlive the matcher) by their first
 * pair. 0 or -ENOMEM. */
int dd_csi_matcher_new(const struct dd_csi_segment *segs, size_t n, struct dd_csi_matcher **ret);
void dd_csi_matcher_free(struct dd_csi_matcher *m);
/* Calls fn(ctx, i) once for every segment i whose pairs the node holds:
 * labels[0..n_labels) and extra[0..n_extra) are key/value pairs (kv[2j]
 * the key, kv[2j+1] the value), labels first; a key in both counts with
 * either value. Cost: one hash lookup per pair, plus the other pairs of
 * each candidate segment. Returns the number of matches. */
size_t dd_csi_matcher_node(const struct dd_csi_matcher *m, const char *const *labels,
                           size_t n_labels, const char *const *extra, size_t n_extra,
                           void (*fn)(void *ctx, size_t seg), void *ctx);

/* ---- TopologyRequirement and the preferred ordering ---- */

struct dd_csi_topology_req {
    size_t n_requisite, n_preferred;
    struct dd_csi_segment *requisite, *preferred;
};
/* Decodes a TopologyRequirement object (path names it). */
int dd_csi_topology_req_decode(const json_t *o, const char *path, struct dd_csi_topology_req *ret,
                               char *err, size_t errlen);
json_t *dd_csi_topology_req_to_json(const struct dd_csi_topology_req *t);
void dd_csi_topology_req_release(struct dd_csi_topology_req *t);

/*
 * The entries to order: the requisite segments, each once (the first
 * occurrence kept), or the preferred ones when requisite is empty (CSI:
 * preferred is a subset of requisite when both are given). idx[0..*n)
 * gets indices into t->requisite (or t->preferred), pref_pos[0..*n) each
 * entry's first position in preferred (-1: not there). Both arrays are
 * dd_malloc'd by the call (free with dd_free). 0 or -ENOMEM.
 */
int dd_csi_entries(const struct dd_csi_topology_req *t, size_t **idx, long **pref_pos, size_t *n);
/* The entries' segments array (requisite, or preferred when empty). */
const struct dd_csi_segment *dd_csi_entries_source(const struct dd_csi_topology_req *t);

/* What the glue found for one entry. */
enum dd_csi_class {
    DD_CSI_SCORED,        /* a matching node with a report: scored (or neutral) */
    DD_CSI_FILTERED,      /* every matching node with a report fails a hard fact */
    DD_CSI_NOT_REPORTING, /* nodes match, none reports to dedupd */
    DD_CSI_NO_NODE,       /* no node matches */
};
extern const char *const dd_csi_class_names[4];

struct dd_csi_rank {
    size_t entry;            /* position in the entries list */
    enum dd_csi_class cls;   /* of the segment's best node */
    bool pinned;             /* the selected node's segment: stays first */
    int score;               /* the best node's 0..10 */
    double slowdown_percent; /* NaN: neutral or none */
    long preferred_pos;      /* the CO's preferred position, -1 none */
};
/*
 * Orders r[0..n) in place: pinned first (at most one should be), then by
 * class (scored, filtered, not reporting, no node), score descending,
 * slowdown ascending (NaN last), the CO's preferred position, then the
 * entry order. Deterministic.
 */
void dd_csi_order(struct dd_csi_rank *r, size_t n);

/* ---- CreateVolumeRequest ---- */

#define DD_CSI_PARAM_PVC_NAME      "csi.storage.k8s.io/pvc/name"
#define DD_CSI_PARAM_PVC_NAMESPACE "csi.storage.k8s.io/pvc/namespace"

struct dd_csi_create_volume {
    const char *name; /* "" when absent */
    bool has_capacity_range;
    int64_t required_bytes, limit_bytes;
    json_t *volume_capabilities; /* the array as given (a reference), NULL when absent */
    json_t *parameters;          /* object of strings (a reference), NULL when absent */
    bool has_accessibility;
    struct dd_csi_topology_req accessibility;
};
int dd_csi_create_volume_decode(const json_t *doc, struct dd_csi_create_volume *ret, char *err,
                                size_t errlen);
/* Canonical JSON of what was decoded (secrets are never kept). */
json_t *dd_csi_create_volume_to_json(const struct dd_csi_create_volume *c);
void dd_csi_create_volume_release(struct dd_csi_create_volume *c);
/* A parameter's value, NULL when absent. */
const char *dd_csi_parameter(const json_t *parameters, const char *key);

/* ---- GetCapacity ---- */

struct dd_csi_get_capacity {
    json_t *volume_capabilities; /* reference or NULL */
    json_t *parameters;          /* reference or NULL */
    bool has_topology;
    struct dd_csi_segment topology;
};
int dd_csi_get_capacity_decode(const json_t *doc, struct dd_csi_get_capacity *ret, char *err,
                               size_t errlen);
json_t *dd_csi_get_capacity_to_json(const struct dd_csi_get_capacity *g);
void dd_csi_get_capacity_release(struct dd_csi_get_capacity *g);

struct dd_csi_capacity_response {
    int64_t available_capacity;
    bool has_maximum, has_minimum; /* Int64Value wrappers: set or not */
    int64_t maximum_volume_size, minimum_volume_size;
};
/* Strict: an object of these three fields only, each an int64 string. */
int dd_csi_capacity_response_decode(const json_t *doc, struct dd_csi_capacity_response *ret,
                                    char *err, size_t errlen);
json_t *dd_csi_capacity_response_to_json(const struct dd_csi_capacity_response *r);

/* ---- NodeGetInfoResponse ---- */

struct dd_csi_node_info {
    const char *node_id;
    int64_t max_volumes_per_node; /* 0: no limit (left out) */
    bool has_topology;
    struct dd_csi_segment topology;
};
/* Strict: nodeId required, the rest typed. */
int dd_csi_node_info_decode(const json_t *doc, struct dd_csi_node_info *ret, char *err,
                            size_t errlen);
json_t *dd_csi_node_info_to_json(const struct dd_csi_node_info *n);
void dd_csi_node_info_release(struct dd_csi_node_info *n);

/* ---- effective capacity ---- */

/*
 * The capacity rule (README):
 *   reduction   the class's dedupd.io/expected-reduction when set (>= 1),
 *               else the pool's observed reduction (logical over physical
 *               data blocks, the report's dedup_ratio) clamped to
 *               [1, max_reduction], else 1;
 *   free        physical free - the ledger's reservations (>= 0);
 *   available   min(free x reduction, logical free);
 *   maximum     the largest single claim the extender's space filter lets
 *               through: min(free x reduction / (1 + safety_margin),
 *               (max_physical_use x physical - used - reserved) x reduction
 *               / (1 + safety_margin), logical free), at least 0.
 * Unknown figures (-1) are left out of the min; with no physical figure
 * both are 0. A read-only volume has 0.
 */
struct dd_csi_capacity_options {
    double safety_margin;    /* default 0.10: the scorer's space margin */
    double max_physical_use; /* default 0.95: the scorer's ceiling */
    double max_reduction;    /* default 20: as the scorer caps the observed ratio */
};
void dd_csi_capacity_options_init(struct dd_csi_capacity_options *o);

struct dd_csi_volume_space {
    int64_t physical_bytes, physical_free_bytes, logical_free_bytes; /* -1 unknown */
    uint64_t reserved_bytes;                                         /* the ledger's */
    double observed_reduction;                                       /* NaN unknown */
    bool read_only;
};

/* The reduction to predict: from the class annotation (raw string, "" or
 * NULL: none), else observed. *source gets "storage_class", "observed" or
 * "none"; a malformed annotation is ignored and *note says why ("" when
 * fine; notelen may be 0). */
double dd_csi_reduction(const struct dd_csi_capacity_options *o, const char *annotation,
                        double observed, const char **source, char *note, size_t notelen);

/*
 * dedupd.io/estimate on a StorageClass (README, "dedupd.io/estimate"):
 *   "2.4"                                   the reduction itself (a number
 *                                           1..1000, as expected-reduction)
 *   "http://NODE:7450/v1/estimate/7"        a completed estimate job of a
 *                                           node role (POST /v1/estimate),
 *                                           fetched by the placement role
 * Anything else is DD_CSI_ESTIMATE_BAD. *ret_number gets the number.
 */
enum dd_csi_estimate_kind {
    DD_CSI_ESTIMATE_NONE,
    DD_CSI_ESTIMATE_NUMBER,
    DD_CSI_ESTIMATE_URL,
    DD_CSI_ESTIMATE_BAD
};
enum dd_csi_estimate_kind dd_csi_estimate_ref(const char *value, double *ret_number);
/* The reduction an estimate job predicts, from GET /v1/estimate/{id}'s
 * answer {"status": "done", "result": {...}} (or the result alone, as
 * `dedupctl estimate --json` prints it): blocks_total over
 * estimated_physical_blocks (zero elimination, dedup and compression),
 * clamped to 1..1000. 0; -EAGAIN while "running"; -EINVAL with err saying
 * why (failed, no figure, not a job). */
int dd_csi_estimate_job_reduction(const json_t *doc, double *ret, char *err, size_t errlen);
/* As dd_csi_reduction, with the class's resolved dedupd.io/estimate between
 * the annotation and the observed figure: estimate (NaN: none) is used
 * when the expected-reduction annotation is absent or malformed; *source
 * is then "estimate". */
double dd_csi_reduction_with_estimate(const struct dd_csi_capacity_options *o,
                                      const char *annotation, double estimate, double observed,
                                      const char **source, char *note, size_t notelen);

struct dd_csi_capacity {
    int64_t available, maximum;
    double free_physical; /* after reservations */
    bool logical_capped;  /* the logical free space bounded available */
};
void dd_csi_capacity(const struct dd_csi_capacity_options *o, const struct dd_csi_volume_space *v,
                     double reduction, struct dd_csi_capacity *out);

#endif
