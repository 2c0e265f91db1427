/*
 * The node sampler: every interval it lists the VDO volumes, reads each,
 * scans the VDO kernel threads in /proc, reads node load, GPUs and pod
 * cgroups, and turns two consecutive samples into each volume's features
 * (placement/features.h; the interval maths is dedupd/vdo's rates code).
 *
 * Each interval gives:
 *  - one store batch: series "vol/<name>" (the volume document) and "node";
 *  - a typed node report (placement/report.h) handed to the hook (the
 *    pusher, or the in-process cluster view in role all);
 *  - the REST documents and metrics text, published as one snapshot that
 *    readers copy under a mutex, so a request never waits on a sample.
 *
 * Where device-mapper is absent the sampler says so once and goes on with no
 * volumes. A failed store commit is counted (dropped samples) and sampling
 * goes on.
 */
#ifndef DD_SAMPLER_H
#define DD_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "dedupd/config.h"
#include "placement/report.h"

struct dd_store;
struct dd_store_batch;
struct dd_pods;
struct dd_vdo_source;
struct dd_sampler;

struct dd_sampler_hooks {
    void *ctx;
    /* After each interval's store commit, on the sampler thread: the typed
     * report (borrowed for the call) and the volume rows stored (0 when the
     * commit failed). Must not block for long. */
    void (*sampled)(void *ctx, const struct dd_report *r, size_t rows_stored);
    /* Each interval, on the sampler thread, after the pod cgroup scan
     * (--cgroup-root): the scan (borrowed; NULL when it failed), the seconds
     * since the previous interval, the wall time, and the interval's store
     * batch (NULL when none) to add rows to before it commits. May be NULL. */
    void (*pods)(void *ctx, const struct dd_pods *pods, double dt, uint64_t now_ms,
                 struct dd_store_batch *b);
};

/* Opens the VDO source and NVML; store is borrowed. The thread starts
 * with dd_sampler_start. errbuf says what failed. */
int dd_sampler_new(const struct dd_config *c, struct dd_store *store,
                   const struct dd_sampler_hooks *hooks, struct dd_sampler **ret, char *errbuf,
                   size_t errlen);
int dd_sampler_start(struct dd_sampler *s);
/* Stops the thread (the sample in progress finishes) and frees. NULL-safe. */
struct dd_sampler *dd_sampler_free(struct dd_sampler *s);

/* Takes one sample now on the caller's thread (tests; not while started). */
void dd_sampler_sample_once(struct dd_sampler *s, double dt);

/* SIGHUP: a new interval and pool mapping. */
void dd_sampler_reconfigure(struct dd_sampler *s, const struct dd_config *c);

/* True once a sample has been published. */
bool dd_sampler_ready(struct dd_sampler *s);

enum dd_sampler_doc { DD_SAMPLER_VOLUMES, DD_SAMPLER_NODE };
/* A copy of the latest document text (dd_free), or NULL before the first
 * sample (or on ENOMEM). */
char *dd_sampler_doc(struct dd_sampler *s, enum dd_sampler_doc which);
/* One volume's latest document as text (dd_free), NULL when unknown. */
char *dd_sampler_volume_text(struct dd_sampler *s, const char *name);
/* Is there a volume of that name now? */
bool dd_sampler_has_volume(struct dd_sampler *s, const char *name);
/* The latest typed features of a volume; -ENOENT when unknown, -EAGAIN
 * before its second sample (no interval yet). */
int dd_sampler_volume_features(struct dd_sampler *s, const char *name, struct dd_features *ret);

/* Sampler counters and the latest volume/node families. */
void dd_sampler_metrics(struct dd_sampler *s, FILE *m);

#endif
