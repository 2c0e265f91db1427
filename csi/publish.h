/*
 * CSIStorageCapacity publishing, the pure part (csi/README.md,
 * "CSIStorageCapacity publishing"): which storage.k8s.io/v1
 * CSIStorageCapacity objects should exist, with what values, and which
 * writes the coalescing rule allows. The API client that lists, creates,
 * updates and deletes them is dedupd/capacitypub.c.
 *
 * One object per (node segment x StorageClass of ours), shaped as
 * (shared/reference/k8s/objects/csistoragecapacity.gpu-node-a.vdo-dedup.json):
 *
 *   {"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
 *    "metadata": {"generateName": "dedupd-csc-", "namespace": NS,
 *                 "labels": {"csi.storage.k8s.io/managed-by": "dedupd.io",
 *                            "csi.storage.k8s.io/drivername": PROVISIONER},
 *                 "ownerReferences": [...]},
 *    "nodeTopology": {"matchLabels": {NODE_KEY: NODE}},
 *    "storageClassName": CLASS,
 *    "capacity": "N", "maximumVolumeSize": "N"}
 *
 * NODE_KEY is topology.dedupd.io/node unless configured; capacities are
 * plain byte counts (a Kubernetes quantity without suffix). The object's
 * identity is (nodeTopology, storageClassName): an object of ours whose
 * selector is anything but {NODE_KEY: NODE} is an orphan (deleted), and of
 * two objects with the same identity the first by name is kept.
 *
 * The coalescing rule: an existing object is rewritten when capacity or
 * maximumVolumeSize moves by more than `threshold` of its written value
 * AND by at least `min_change` bytes, or crosses zero (0 -> something,
 * something -> 0: "nothing fits" is never held back), or a field is
 * missing or unreadable; and at most once per `min_interval_ms` per object
 * (a rewrite due sooner waits: counted as deferred). Creates and deletes
 * are never held back.
 *
 * Pure: jansson and common/ only. Decoded strings are borrowed from the
 * JSON document.
 */
#ifndef DD_CSI_PUBLISH_H
#define DD_CSI_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DD_CSI_PUB_API           "/apis/storage.k8s.io/v1"
#define DD_CSI_PUB_LABEL_MANAGED "csi.storage.k8s.io/managed-by"
#define DD_CSI_PUB_MANAGED_BY    "dedupd.io"
#define DD_CSI_PUB_LABEL_DRIVER  "csi.storage.k8s.io/drivername"
#define DD_CSI_PUB_GENERATE_NAME "dedupd-csc-"
/* A label value (the node name in matchLabels) is at most 63 characters:
 * nodes with longer names get no object (counted, README). */
#define DD_CSI_PUB_MAX_LABEL_VALUE 63u

struct dd_csi_pub_options {
    double threshold;         /* relative, default 0.05 */
    int64_t min_change;       /* bytes, default 1 GiB */
    uint64_t min_interval_ms; /* per object between rewrites, default 60 s */
};
void dd_csi_pub_options_init(struct dd_csi_pub_options *o);

/* Is moving a written value from old to new worth a write (the rule above,
 * without the interval)? */
bool dd_csi_pub_significant(const struct dd_csi_pub_options *o, int64_t old, int64_t new_value);

/* What should exist (strings borrowed). */
struct dd_csi_pub_want {
    const char *node, *storage_class;
    const char *driver; /* the class's provisioner: the drivername label; "" none */
    int64_t capacity, maximum;
};

/* What exists (strings borrowed). */
struct dd_csi_pub_have {
    const char *name, *resource_version;
    const char *node;          /* NULL: not our shape (an orphan) */
    const char *storage_class; /* NULL: not our shape */
    bool has_capacity, has_maximum;
    int64_t capacity, maximum;
    uint64_t written_ms; /* when we last wrote it (the caller's clock); 0: never */
};

/*
 * A CSIStorageCapacity object as listed into a have: name and
 * resourceVersion required (else -EINVAL, err says which), capacities as
 * Kubernetes quantities (dd_csi_quantity_parse; unreadable or absent:
 * has_* false); node and storage_class set only when nodeTopology is
 * exactly {"matchLabels": {node_key: NODE}} and storageClassName is a
 * non-empty string. written_ms is 0.
 */
int dd_csi_pub_decode(const json_t *obj, const char *node_key, struct dd_csi_pub_have *ret,
                      char *err, size_t errlen);

/*
 * The object to write for w in namespace ns: name NULL (a create:
 * generateName) or the object's name with resource_version (an update,
 * carrying the version read). owner (may be NULL) is one ownerReference
 * object, copied. NULL on ENOMEM.
 */
json_t *dd_csi_pub_object(const struct dd_csi_pub_want *w, const char *node_key, const char *ns,
                          const char *name, const char *resource_version, const json_t *owner);

/*
 * A Kubernetes quantity as bytes: an integer with an optional binary
 * (Ki Mi Gi Ti Pi Ei) or decimal (k M G T P E) suffix, or a decimal
 * exponent (e3, E6); fractions only where the result is a whole number
 * ("1.5Gi"). 0, or -EINVAL (not a quantity, negative, not whole) or
 * -ERANGE (above INT64_MAX).
 */
int dd_csi_quantity_parse(const char *s, int64_t *ret);

enum dd_csi_pub_op { DD_CSI_PUB_CREATE, DD_CSI_PUB_UPDATE, DD_CSI_PUB_DELETE };
extern const char *const dd_csi_pub_op_names[3];

struct dd_csi_pub_action {
    enum dd_csi_pub_op op;
    size_t want;   /* index into wants (create, update); SIZE_MAX for delete */
    size_t have;   /* index into haves (update, delete); SIZE_MAX for create */
    double change; /* update: the larger relative move of the two values */
};

struct dd_csi_pub_plan {
    struct dd_csi_pub_action *actions; /* creates, updates by change (largest first), deletes */
    size_t n;
    size_t unchanged; /* objects whose values equal the wanted ones */
    size_t coalesced; /* objects whose change is under the rule: not written */
    size_t deferred;  /* rewrites due but written less than min_interval ago */
    size_t skipped;   /* wants with a node name too long for a label value */
};

/*
 * The writes that make haves[0..nh) into wants[0..nw) under the rule, at
 * now_ms (the clock of written_ms). Wants with the same (node, class)
 * count once (the first). 0 or -ENOMEM; release with dd_csi_pub_plan_release.
 */
int dd_csi_pub_plan(const struct dd_csi_pub_options *o, const struct dd_csi_pub_want *wants,
                    size_t nw, const struct dd_csi_pub_have *haves, size_t nh, uint64_t now_ms,
                    struct dd_csi_pub_plan *ret);
void dd_csi_pub_plan_release(struct dd_csi_pub_plan *p);

#endif
