/*
 * Pod outcomes on the node role (issue 13, the closed loop): every pod that
 * ran on this node leaves one outcome — what it used, from its cgroup v2
 * files, and how it ended, from the pod watch — stored in the node's store
 * (observations, keyed by the finish time and the pod UID) and POSTed to
 * the placement role's /v1/observations.
 *
 * Who calls what:
 *  - the sampler, every interval, with its pod scan and its store batch
 *    (dd_observer_sampled, on the sampler thread): the tracker
 *    (dedupd/node/node.h) accumulates each pod's figures; a pod whose
 *    cgroup is gone waits for its termination (the watch may be behind the
 *    kubelet) until the pod is terminal or deleted in the watch, or the
 *    grace period passes, then its outcome is built (dedupd/node/podmeta.h),
 *    added to the batch and queued for posting;
 *  - the pod watch (dedupd/kubewatch in node mode: Pods with
 *    fieldSelector spec.nodeName=NODE), on its thread
 *    (dd_observer_pod_object): each pod's metadata, kept while it may still
 *    be needed;
 *  - one poster thread: the queue to BASE/v1/observations with the report
 *    pusher's URL, token and TLS settings, retried with backoff (0.5 s
 *    doubling to 30 s, full jitter) on no answer, 5xx, 401, 408, 429;
 *    another 4xx drops the outcome (counted, logged). The queue is bounded
 *    (DD_OBSERVE_QUEUE_MAX; the oldest goes first when full): sampling
 *    never waits on the network.
 *
 * Without the Kubernetes API the outcomes carry the cgroup figures and the
 * pod UID only (namespace "", owner unknown): they are stored, not posted,
 * since the placement role keys history by owner. The same goes for a pod
 * the watch never showed. GPU memory per pod is not measured yet (NVML's
 * per-process accounting is not read): gpu_memory_bytes is left out.
 */
#ifndef DD_OBSERVE_H
#define DD_OBSERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "dedupd/config.h"
#include "dedupd/node/node.h"
#include "placement/kube.h"

struct dd_store_batch;

/* Outcomes waiting to be posted. At one pod a second ending on a node for
 * the length of the longest backoff (30 s) this holds 30; 1024 rides out a
 * placement role down for many minutes at a normal churn. */
#define DD_OBSERVE_QUEUE_MAX 1024u
/* Metadata of deleted pods kept for a late cgroup, seconds. */
#define DD_OBSERVE_META_KEEP_S 600.0

struct dd_observer;

/* have_kube: the pod watch runs (metadata will come). Sets up the poster's
 * client when c->placement_url is set (errbuf says what failed). */
int dd_observer_new(const struct dd_config *c, bool have_kube, struct dd_observer **ret,
                    char *errbuf, size_t errlen);
/* Starts the poster thread (none without a placement URL). 0 or -EAGAIN. */
int dd_observer_start(struct dd_observer *o);
/* Stops (a post in flight ends within its timeout) and frees. NULL-safe. */
struct dd_observer *dd_observer_free(struct dd_observer *o);

/* The pod watch's callback (dd_kubewatch_config.on_object). */
void dd_observer_pod_object(void *ctx, enum dd_kube_kind kind, enum dd_kube_event ev,
                            const json_t *obj);

/* The sampler's: pods is the interval's scan (NULL when it failed), dt the
 * seconds since the previous, now_ms the wall time; b the interval's batch
 * (NULL: outcomes are not stored this time, still posted). */
void dd_observer_sampled(struct dd_observer *o, const struct dd_pods *pods, double dt,
                         uint64_t now_ms, struct dd_store_batch *b);

/* Prometheus families dedupd_pods_observed, dedupd_pod_outcomes_total,
 * dedupd_pod_outcomes_posted_total, dedupd_pod_outcomes_unposted_total{reason},
 * dedupd_pod_outcome_queue_length, dedupd_pod_cgroups_skipped_total,
 * dedupd_pod_metadata_refused_total. */
void dd_observer_metrics(struct dd_observer *o, FILE *m);

#endif
