/*
 * dedupd.io/estimate references to estimate jobs (README,
 * "dedupd.io/estimate"): a StorageClass annotated with the URL of a node
 * role's estimate job (http://NODE:7450/v1/estimate/7, from POST
 * /v1/estimate on a node that can read the data set) predicts the
 * reduction that job measured. The placement role fetches each URL the
 * capacity code asks about on a thread of its own (never on a request
 * thread): a finished job is kept for good (its figure does not change);
 * a running one is asked again every period; a failed, missing (404: the
 * node role restarted and forgot it) or unreachable one every 30 s. Until
 * a figure is in, the class predicts from its other sources (README: the
 * reduction rule). At most DD_ESTIMATE_REFS_MAX URLs are followed.
 *
 * Thread-safe: lookups from any thread, fetches on the refs thread.
 */
#ifndef DD_ESTIMATEREFS_H
#define DD_ESTIMATEREFS_H

#include <stddef.h>
#include <stdio.h>

#define DD_ESTIMATE_REFS_MAX 256u

struct dd_estimate_refs;

/* period_s: between tries of a pending or running job (0: 5). */
int dd_estimate_refs_new(double period_s, struct dd_estimate_refs **ret);
int dd_estimate_refs_start(struct dd_estimate_refs *r);
/* Stops (a fetch in flight ends within about a second), joins, frees.
 * NULL-safe; returns NULL. */
struct dd_estimate_refs *dd_estimate_refs_free(struct dd_estimate_refs *r);

/* The reduction the job at url measured; NaN while none is known (url is
 * then followed from now on), with note (may be NULL) saying why. */
double dd_estimate_refs_get(struct dd_estimate_refs *r, const char *url, char *note,
                            size_t notelen);

/* dedupd_estimate_refs{state}: followed URLs by state (pending, running,
 * done, failed). */
void dd_estimate_refs_metrics(struct dd_estimate_refs *r, FILE *m);

#endif
