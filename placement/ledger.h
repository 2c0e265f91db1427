/*
 * The in-flight ledger: pods placed but not yet visible in their node's
 * reports. kube-scheduler binds asynchronously, so the next pod is often
 * scored before the pod watch shows the last binding, and a node's report
 * shows a new pod's I/O only after its image pull and model load. Without
 * the ledger a burst of pods lands on the node that looked emptiest.
 *
 * An entry is keyed by the pod's UID and holds the pod's profile load per
 * pool (I/O rates, duplicate share, the space its unbound claims will
 * take) and its GPUs. Life of an entry:
 *   provisional  recorded by prioritize on the pod's best-scored node; it
 *                expires after provisional_ttl_s (default 30 s) unless
 *                the binding arrives;
 *   bound        the pod watch saw spec.nodeName: the entry is confirmed
 *                (or moved to the node the scheduler picked) and lasts
 *                until a report of that node shows the pod's I/O (at
 *                least observed_io_mbps read+write), or bound_ttl_s
 *                (default 600 s) after the binding.
 * Scoring a pod again replaces its entry; a pod's own entry never counts
 * against it (dd_ledger_view excludes it). After a restart the ledger is
 * rebuilt from the pod watch: every bound pod not yet seen doing I/O comes
 * back as a bound entry (dd_ledger_bind with the pod's load).
 * Pure and thread-safe (one mutex); no I/O.
 */
#ifndef DD_PLACEMENT_LEDGER_H
#define DD_PLACEMENT_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/limits.h"
#include "placement/kube.h"
#include "placement/report.h"

struct dd_ledger_options {
    double provisional_ttl_s; /* default 30 */
    double bound_ttl_s;       /* default 600 */
    double observed_io_mbps;  /* default 0.5 */
};
void dd_ledger_options_init(struct dd_ledger_options *o);

struct dd_ledger_load {
    char pool[DD_NAME_MAX];
    double read_mbps, write_mbps;
    double duplicate_share; /* NaN: the pool's own */
    uint64_t reserve_bytes; /* space the pod's unbound claims will take */
};

struct dd_ledger_entry {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX], node[DD_NAME_MAX];
    bool bound;
    uint64_t since_ms, expires_ms; /* set by the ledger */
    double gpus;
    size_t n_loads;
    struct dd_ledger_load loads[DD_KUBE_MAX_CLAIMS];
};

struct dd_ledger;

int dd_ledger_new(const struct dd_ledger_options *o, struct dd_ledger **ret);
struct dd_ledger *dd_ledger_free(struct dd_ledger *l);

/* A provisional entry (replaces the pod's entry, bound or not). */
int dd_ledger_record(struct dd_ledger *l, const struct dd_ledger_entry *e, uint64_t now_ms);
/* The pod is bound to node: its entry is confirmed or moved there. With no
 * entry, load (if not NULL) becomes a bound entry (the rebuild after a
 * restart); otherwise nothing. */
int dd_ledger_bind(struct dd_ledger *l, const char *uid, const char *node,
                   const struct dd_ledger_entry *load, uint64_t now_ms);
/* The pod is gone (deleted). Returns whether it had an entry. */
bool dd_ledger_remove(struct dd_ledger *l, const char *uid);
/* A report of r->node: bound entries whose pod shows I/O there leave.
 * Returns how many left. */
size_t dd_ledger_observe(struct dd_ledger *l, const struct dd_report *r, uint64_t now_ms);
/* Drops expired entries; returns how many. */
size_t dd_ledger_expire(struct dd_ledger *l, uint64_t now_ms);
size_t dd_ledger_size(struct dd_ledger *l);

/* What the ledger adds to one (node, pool), without one pod's own entry. */
struct dd_ledger_sum {
    char node[DD_NAME_MAX], pool[DD_NAME_MAX];
    double read_mbps, write_mbps;
    double dup_write_mbps; /* the duplicate part of write_mbps; NaN if any share unknown */
    uint64_t reserve_bytes;
    double provisional_gpus; /* GPUs of unbound entries (bound ones are in the pod cache) */
    unsigned entries;
};

/* A consistent, sorted copy of the live entries' sums for one scoring
 * request (one lock, then lock-free lookups). */
struct dd_ledger_view {
    size_t n;
    struct dd_ledger_sum *sums; /* sorted by node, pool; pool "" = the node's GPU sum */
};
int dd_ledger_view(struct dd_ledger *l, const char *exclude_uid, uint64_t now_ms,
                   struct dd_ledger_view *ret);
void dd_ledger_view_release(struct dd_ledger_view *v);
/* NULL when the ledger adds nothing there; pool "" for the node's GPUs. */
const struct dd_ledger_sum *dd_ledger_view_find(const struct dd_ledger_view *v, const char *node,
                                                const char *pool);

/* {"entries": [{"uid", "namespace", "name", "node", "state", "age_seconds",
 * "expires_in_seconds", "gpus", "loads": [...]}]}; node NULL for all. */
json_t *dd_ledger_to_json(struct dd_ledger *l, const char *node, uint64_t now_ms);

#endif
