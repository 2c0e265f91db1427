/*
 * Kubernetes Events carrying the placement explanation (--pod-events, off
 * by default; README "Pod events"). After a prioritize (enforce or shadow)
 * of a pod we place (GPUs and claims of a dedupd pool), the extender copies
 * a small summary (struct dd_pod_event) into a bounded queue; one sender
 * thread builds the message and POSTs a core v1 Event
 * (/api/v1/namespaces/NS/events) on the pod, so `kubectl describe pod`
 * shows why (kubectl describe lists core v1 events by involvedObject;
 * events.k8s.io/v1 objects are the same objects seen through another
 * version, and core v1 is served by every API server we support).
 *
 * - dedupe: one event per pod UID per window (kube-scheduler retries an
 *   unschedulable pod every few seconds): dd_podevents_claim answers true
 *   once per window, and the request builds a summary only then;
 * - a full queue drops the summary and counts it; a token bucket (qps,
 *   burst) paces the whole process's writes; the sender waits for a token;
 * - fail open: API errors are logged (once per distinct text) and counted;
 *   the extender's answer never depends on them;
 * - only the leader writes: a summary dequeued while this replica is a
 *   standby is dropped (counted as standby); a standby's extender answers
 *   neutral before scoring and submits nothing anyway.
 *
 * The bearer token is re-read from its file every minute and after a 401.
 * Threads: the sender's own; claim and submit are thread-safe (one mutex,
 * no I/O under it).
 */
#ifndef DD_PODEVENTS_H
#define DD_PODEVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dedupd/kubewatch.h"
#include "placement/profile.h"
#include "placement/score.h"

#define DD_POD_EVENT_REASON        "DedupdScored"
#define DD_POD_EVENT_REASON_SHADOW "DedupdShadowScored"
#define DD_POD_EVENT_COMPONENT     "dedupd"
/* Kubernetes truncates longer event messages */
#define DD_POD_EVENT_MAX_MESSAGE 1024

/* One node's figures (NaN: unknown). */
struct dd_pod_event_node {
    char name[DD_NAME_MAX];
    int score;
    double slowdown_percent; /* INFINITY: not enough free GPUs */
};

/* What the request copies for the sender: plain values, no pointers. */
struct dd_pod_event {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX];
    bool shadow;
    bool has_best, has_second;
    struct dd_pod_event_node best, second;
    /* the best node's terms, percent (the claims' largest for device and
     * latency); NaN: unknown */
    double cpu_stretch, device_stretch, latency_stretch;
    double report_age_s;
    bool stale;
    char model_source[16]; /* "xgboost", "prior", "" unknown */
    uint64_t model_version;
    int ledger_entries; /* in-flight entries on the best node's pools */
    unsigned nodes, scored, neutral;
    unsigned filtered[DD_FR_COUNT];
    char neutral_reason[160]; /* when no node was scored: the first reason */
};

struct dd_podevents_config {
    struct dd_kube_source src; /* required: a URL */
    char instance[256];        /* reportingInstance (the pod or node name); "" none */
    double qps, burst;         /* the write bucket */
    double window_s;           /* one event per pod UID per window */
    unsigned queue;            /* 0: 256 */
    double token_reread_s;     /* 0: 60 */
};

struct dd_podevents;

/* Checks the configuration (errbuf names the value), reads the token. */
int dd_podevents_new(const struct dd_podevents_config *c, bool (*is_leader)(void *ud),
                     void *leader_ud, struct dd_podevents **ret, char *errbuf, size_t errlen);
int dd_podevents_start(struct dd_podevents *p);
/* Stops (a request in flight is cancelled within about a second), joins,
 * frees; what is queued is dropped. NULL-safe; returns NULL. */
struct dd_podevents *dd_podevents_free(struct dd_podevents *p);

/* True when no event was claimed for uid within the window (and claims
 * it now): the caller then builds a summary and submits it. */
bool dd_podevents_claim(struct dd_podevents *p, const char *uid, uint64_t now_ms);
/* Queues a copy; a full queue drops it (counted). */
void dd_podevents_submit(struct dd_podevents *p, const struct dd_pod_event *e);

/* The message of e (at most DD_POD_EVENT_MAX_MESSAGE - 1 bytes), into buf. */
void dd_pod_event_message(const struct dd_pod_event *e, char *buf, size_t len);

/* dedupd_pod_events_total{outcome="sent|dropped_queue_full|failed|standby"},
 * dedupd_pod_events_deduped_total, dedupd_pod_events_queued. */
void dd_podevents_metrics(struct dd_podevents *p, FILE *m);

#endif
