/*
 * The cluster view: the latest report of every node, when it arrived, how
 * many came, and whether the node is stale. Writers (the report handler)
 * put whole reports; readers (GET /v1/cluster, the scorer) take an
 * immutable snapshot and read it without locks for as long as they hold
 * it, so a burst of reports never blocks a scoring request for longer than
 * a pointer copy.
 *
 * Age counts from a report's arrival on this clock (the node's own clock
 * shows as skew: arrival - the report's time_ms). A node is stale when its
 * newest report is older than stale_after (0: 3 x the interval the node
 * states); it stays listed, stale, until forget_after, then leaves the
 * view (dd_cluster_forget). Pure: the caller passes the time.
 */
#ifndef DD_PLACEMENT_CLUSTER_H
#define DD_PLACEMENT_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "placement/report.h"

struct dd_cluster_options {
    double stale_after_s;  /* 0: 3 x the node's stated interval */
    double forget_after_s; /* > 0 */
};

/* dd_cluster_node.vol_flags */
#define DD_CLUSTER_VOL_READ_ONLY  0x1u /* mode "read-only" */
#define DD_CLUSTER_VOL_INDEX_DOWN 0x2u /* index_state "offline" or "error" */

/* One node's entry: immutable once published. */
struct dd_cluster_node {
    struct dd_report report;
    /* A summary of the volumes, derived from the report when it is put, so
     * that the scorer picks a pool's volume and checks it without touching
     * the volumes (about 1 KiB apart, cold in the cache at thousands of
     * nodes) until it has chosen one. Indexed like report.volumes, the
     * first min(n_volumes, DD_MAX_VOLUMES_PER_NODE) set. */
    uint64_t pool_hash[DD_MAX_VOLUMES_PER_NODE];    /* dd_cluster_name_hash(pool) */
    int64_t physical_free[DD_MAX_VOLUMES_PER_NODE]; /* physical_free_bytes */
    uint8_t pool_first[DD_MAX_VOLUMES_PER_NODE];    /* first volume with the same pool name */
    uint8_t vol_flags[DD_MAX_VOLUMES_PER_NODE];     /* DD_CLUSTER_VOL_* */
    double gpu_util; /* mean NVML utilisation of the GPUs that report it, %; NaN none */
    uint64_t arrived_ms;
    uint64_t reports; /* reports received from this node since it joined the view */
};

struct dd_cluster_snapshot {
    size_t n;
    const struct dd_cluster_node *const *nodes; /* sorted by name */
    struct dd_cluster_options opts;
};

struct dd_cluster;

int dd_cluster_new(const struct dd_cluster_options *o, struct dd_cluster **ret);
/* Accepts NULL; returns NULL. Snapshots still held stay valid. */
struct dd_cluster *dd_cluster_free(struct dd_cluster *c);
void dd_cluster_set_options(struct dd_cluster *c, const struct dd_cluster_options *o);

/* Publishes a node's newest report (taken: *r is emptied, on failure too).
 * A report older than the one held (by the node's clock) is refused with
 * -ESTALE and changes nothing. Returns 0, -ESTALE or -ENOMEM. */
int dd_cluster_put(struct dd_cluster *c, struct dd_report *r, uint64_t now_ms);
/* Removes nodes silent for forget_after; returns how many left. */
size_t dd_cluster_forget(struct dd_cluster *c, uint64_t now_ms);
/* Removes one node (Kubernetes deleted it); true when it was there. */
bool dd_cluster_remove(struct dd_cluster *c, const char *node);

/* The current view; release with dd_cluster_snapshot_free. NULL on ENOMEM. */
struct dd_cluster_snapshot *dd_cluster_snapshot(struct dd_cluster *c);
void dd_cluster_snapshot_free(struct dd_cluster_snapshot *s);
/* Binary search by name; NULL when absent. */
const struct dd_cluster_node *dd_cluster_find(const struct dd_cluster_snapshot *s,
                                              const char *node);
/* The same, as the node's position in s->nodes; -1 when absent. */
long dd_cluster_find_index(const struct dd_cluster_snapshot *s, const char *node);
/* Asks the CPU to start loading what a lookup of node and a first look at
 * its entry read (the name, the pool hashes, the report's header), without
 * waiting: a scorer walking thousands of nodes, cold in the cache, calls it
 * some nodes ahead so that the loads overlap. No effect on results. */
void dd_cluster_prefetch(const struct dd_cluster_snapshot *s, const char *node);
/* The hash node and pool names are indexed by (XXH3-64). */
uint64_t dd_cluster_name_hash(const char *name);

double dd_cluster_node_age_s(const struct dd_cluster_node *n, uint64_t now_ms);
/* The bound that applies to this node (stale_after, or 3 x its interval). */
double dd_cluster_stale_bound_s(const struct dd_cluster_options *o,
                                const struct dd_cluster_node *n);
bool dd_cluster_node_stale(const struct dd_cluster_options *o, const struct dd_cluster_node *n,
                           uint64_t now_ms);

/* GET /v1/cluster's node object: name, report_age_seconds, stale,
 * stale_after_seconds, reports, clock_skew_seconds, interval_seconds,
 * node_info, load, volumes [name, pool, mode, index_state, vdo_version,
 * rotational, physical_free_bytes, logical_free_bytes, ..., features],
 * gpus [...], pods (a count; detail adds the list). */
json_t *dd_cluster_node_json(const struct dd_cluster_options *o, const struct dd_cluster_node *n,
                             uint64_t now_ms, bool detail);

#endif
