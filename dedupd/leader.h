/*
 * Leader election of the placement role through a coordination.k8s.io/v1
 * Lease (shared/reference/k8s/LIST-WATCH.md, "Leases"), as client-go's
 * leaderelection does it:
 *
 * - one thread; every retry_period it GETs the Lease (creating it with a
 *   POST when it is missing) and, when it holds it or the holder's term
 *   is over, PUTs it back with itself as holder, renewTime now, carrying
 *   the metadata.resourceVersion it read (opaque: passed back verbatim);
 * - 409 Conflict (another writer got there first, or the version read is
 *   stale): re-read and retry at once (at most 3 tries a round);
 * - another holder's term is over when both renewTime +
 *   leaseDurationSeconds has passed by this replica's wall clock and the
 *   Lease has not changed for leaseDurationSeconds by its monotonic clock
 *   (so a holder whose clock runs behind ours is not deposed while it still
 *   renews); an empty holderIdentity is free at once;
 * - a leader whose renewals fail steps down when renew_deadline passes
 *   without a successful one (before its term ends at lease_duration, so
 *   two leaders never overlap when clocks agree), at once when the Lease
 *   names another holder;
 * - the leader labels its own pod dedupd.io/leader="true" (a JSON merge
 *   PATCH of metadata.labels, when the pod's name and namespace are known),
 *   a standby sets it "false" (once at start, and after stepping down), so
 *   the dedupd-placement Service selects the leader alone;
 * - stopping (SIGTERM) while leader releases the Lease (holderIdentity "",
 *   leaseDurationSeconds 1: a standby takes over at its next try instead
 *   of waiting out the term), then sets the label "false".
 *
 * The bearer token is re-read from its file every minute and after a 401.
 */
#ifndef DD_LEADER_H
#define DD_LEADER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dedupd/kubewatch.h"

#define DD_LEADER_LABEL "dedupd.io/leader"

struct dd_leader_config {
    struct dd_kube_source src; /* required: a URL */
    char lease_name[256];
    char lease_namespace[256];
    char identity[256];      /* the holderIdentity written */
    char pod_name[256];      /* "": no pod label */
    char pod_namespace[256]; /* "": no pod label */
    double lease_duration_s; /* written as leaseDurationSeconds (whole seconds) */
    double renew_deadline_s;
    double retry_period_s;
    double token_reread_s; /* 0: 60 */
};

struct dd_leader;

/* Checks the configuration, reads the token once. */
int dd_leader_new(const struct dd_leader_config *c, struct dd_leader **ret, char *errbuf,
                  size_t errlen);
/* Starts the thread. 0 or -EAGAIN. */
int dd_leader_start(struct dd_leader *l);
/* True while this replica holds the Lease. NULL (no election): true. */
bool dd_leader_is_leader(const struct dd_leader *l);
/* For hooks taking a void *: dd_leader_is_leader(ud). */
bool dd_leader_is_leader_cb(void *ud);
/* Stops the thread; a leader releases the Lease and unsets its label
 * first (each request bounded by the client timeout). The object stays
 * readable (metrics, dd_leader_is_leader: false once released) until
 * dd_leader_free. NULL-safe. */
void dd_leader_stop(struct dd_leader *l);
/* dd_leader_stop, then frees. NULL-safe; NULL. */
struct dd_leader *dd_leader_free(struct dd_leader *l);

/* dedupd_leader (gauge 0/1), dedupd_leader_transitions_total,
 * dedupd_leader_election (1 with --leader-elect),
 * dedupd_leader_lease_conflicts_total, dedupd_leader_lease_errors_total.
 * l NULL: a placement role without election, always the leader. */
void dd_leader_metrics(struct dd_leader *l, FILE *m);

/* The namespace this pod runs in: $POD_NAMESPACE, else the service
 * account's namespace file under sa_dir (NULL: DD_KUBE_SA_DIR), else "". */
void dd_leader_pod_namespace(const char *sa_dir, char *buf, size_t len);

#endif
