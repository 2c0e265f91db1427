/*
 * A pod's workload profile: the I/O it will bring to each dedupd pool it
 * uses, resolved from its annotations, its claims' annotations, a named
 * profile of the placement configuration, or a documented conservative
 * default. Pure: no I/O.
 *
 * Annotations (on the pod; the same on a PVC override the pod's for that
 * claim):
 *   dedupd.io/read-mbps        decimal MB/s (10^6 B/s), >= 0
 *   dedupd.io/write-mbps       decimal MB/s, >= 0
 *   dedupd.io/duplicate-share  0..1, the share of its writes VDO finds
 *                              already stored
 *   dedupd.io/profile          a profile named in the configuration
 * A figure not given comes from the named profile, else the default
 * profile. A malformed annotation never fails the pod: the default is used
 * and a note says which annotation and why.
 *
 * Split over claims: a claim with its own rate annotation keeps it; the
 * pod's rates are split evenly over its other claims — writes over the
 * read-write ones, reads over all of them. Only claims of a dedupd pool
 * (their StorageClass has dedupd.io/pool) are kept in the result: the rest
 * is not ours to score.
 */
#ifndef DD_PLACEMENT_PROFILE_H
#define DD_PLACEMENT_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/limits.h"
#include "placement/kube.h"

/* The default when a pod says nothing: a GPU training pod streaming its
 * dataset and writing checkpoints. Conservative: it assumes real load on
 * the pool; the duplicate share is the pool's own (NaN). */
#define DD_PROFILE_DEFAULT_READ_MBPS  200.0
#define DD_PROFILE_DEFAULT_WRITE_MBPS 50.0

struct dd_profile_def {
    char name[DD_NAME_MAX];
    double read_mbps, write_mbps; /* MB/s */
    double duplicate_share;       /* 0..1; NaN: the pool's own */
};

/* Named profiles of the placement configuration, and the default. */
struct dd_profile_set {
    struct dd_profile_def dflt;
    size_t n;
    struct dd_profile_def *defs; /* owned by the caller */
};

void dd_profile_set_init(struct dd_profile_set *s);
const struct dd_profile_def *dd_profile_find(const struct dd_profile_set *s, const char *name);
/* {"NAME": {"read_mbps": R, "write_mbps": W, "duplicate_share": D}, ...}
 * (the config file's "profiles"; "default" replaces the default). Fills
 * defs (dd_malloc'd; free with dd_profile_set_release). -EINVAL naming the
 * key on bad input. */
int dd_profile_set_from_json(struct dd_profile_set *s, json_t *o, char *errbuf, size_t errlen);
void dd_profile_set_release(struct dd_profile_set *s);

#define DD_PROFILE_MAX_NOTES 8

/* The pod's load on one claim of a dedupd pool. */
struct dd_claim_load {
    char claim[DD_NAME_MAX], pool[DD_NAME_MAX];
    double read_mbps, write_mbps, duplicate_share; /* duplicate_share NaN: the pool's own */
    uint64_t request_bytes;
    bool known;             /* the PVC is in the cache */
    bool bound;             /* bound to a PV: needs no new space */
    char node[DD_NAME_MAX]; /* the node its PV is pinned to, "" none */
};

struct dd_pod_profile {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX];
    double gpus;
    const char *source; /* "annotations", "profile", "learned" (placer.h), "default" (static) */
    char profile_name[DD_NAME_MAX];
    size_t n_claims; /* claims of dedupd pools */
    struct dd_claim_load claims[DD_KUBE_MAX_CLAIMS];
    size_t n_unknown_claims; /* claims not in the cache: neutral, never a reason to filter */
    size_t n_notes;
    char notes[DD_PROFILE_MAX_NOTES][192]; /* malformed annotations and the like */
};

void dd_profile_resolve(const struct dd_profile_set *s, const struct dd_kube_pod *pod,
                        struct dd_pod_profile *out);

/* The explanation's "profile" object. */
json_t *dd_profile_to_json(const struct dd_pod_profile *p);

#endif
