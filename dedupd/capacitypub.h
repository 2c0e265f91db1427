/*
 * The CSIStorageCapacity publisher (--publish-capacity, off by default;
 * README "CSIStorageCapacity publishing"; csi/publish.h has the object
 * shape and the coalescing rule). One thread of the placement role:
 *
 * - every interval, while this replica is the leader (always without
 *   --leader-elect), the Kubernetes cache has listed every kind once, and
 *   one interval has passed since it became leader (its view has heard
 *   from every node: an empty view would delete every object), it asks
 *   dd_csi_api_node_capacities for the wanted (node x class) figures,
 *   plans the writes with csi/publish and makes them;
 * - the objects it owns are found by the label
 *   csi.storage.k8s.io/managed-by=dedupd.io: listed (in pages) when it
 *   becomes leader and every relist interval (10 intervals), kept in
 *   memory in between and adjusted from its own write answers; objects of
 *   another shape, duplicates and those of nodes or classes gone are
 *   deleted;
 * - an update is a PUT carrying the resourceVersion read; 409 Conflict
 *   re-reads the object (GET) and retries with the new version (at most 3
 *   tries); 404 forgets it (created again next pass);
 * - writes take a token from a bucket (qps, burst): a pass stops writing
 *   at its interval's end and the next pass plans again from what is
 *   there, so a big cluster converges at qps writes a second at most;
 * - with an owner (KIND/NAME: Deployment, ReplicaSet or Pod in the
 *   namespace), its uid is read once (GET) and every object written
 *   carries the ownerReference; nothing is written before it is known;
 * - a standby forgets what it listed (the next leadership lists again).
 *
 * The bearer token is re-read from its file every minute and after a 401.
 * Threads: the publisher's own; the counters are atomics (metrics).
 */
#ifndef DD_CAPACITYPUB_H
#define DD_CAPACITYPUB_H

#include <stdbool.h>
#include <stdio.h>

#include "csi/publish.h"
#include "dedupd/kubewatch.h"

struct dd_csi_api;

struct dd_capacitypub_config {
    struct dd_kube_source src;      /* required: a URL */
    char ns[256];                   /* the objects' namespace */
    char node_key[320];             /* nodeTopology's label key (topology.dedupd.io/node) */
    char owner[512];                /* "KIND/NAME" or "" */
    double interval_s;              /* between passes, and between rewrites of one object */
    double qps, burst;              /* the write bucket */
    double relist_s;                /* 0: 10 x interval */
    double token_reread_s;          /* 0: 60 */
    struct dd_csi_pub_options opts; /* min_interval_ms is set from interval_s */
};

struct dd_capacitypub_hooks {
    struct dd_csi_api *csi;      /* required, borrowed */
    bool (*is_leader)(void *ud); /* NULL: always */
    void *leader_ud;
    bool (*ready)(void *ud); /* NULL: always; the Kubernetes cache has listed */
    void *ready_ud;
};

struct dd_capacitypub;

/* Checks the configuration (errbuf names the value), reads the token. */
int dd_capacitypub_new(const struct dd_capacitypub_config *c, const struct dd_capacitypub_hooks *h,
                       struct dd_capacitypub **ret, char *errbuf, size_t errlen);
int dd_capacitypub_start(struct dd_capacitypub *p);
/* Stops (a request in flight is cancelled within about a second), joins,
 * frees. NULL-safe; returns NULL. */
struct dd_capacitypub *dd_capacitypub_free(struct dd_capacitypub *p);

/* dedupd_capacity_publish_writes_total{op}, ..._conflicts_total,
 * ..._errors_total, ..._coalesced_total, ..._deferred_total,
 * ..._throttled_total, ..._objects, ..._passes_total,
 * ..._pass_seconds (the last pass). */
void dd_capacitypub_metrics(struct dd_capacitypub *p, FILE *m);

#endif
