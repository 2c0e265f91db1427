/*
 * The Kubernetes list/watch client that feeds placement/kube: one thread
 * per kind (Pods, PVCs, PVs, StorageClasses, Nodes), each with its own
 * libcurl client (dedupd/http/client), doing what client-go's reflector
 * does (shared/reference/k8s/LIST-WATCH.md):
 *
 * - list in pages (limit=500, continue tokens; an expired token, 410,
 *   starts the list over), then watch from the list's resourceVersion with
 *   allowWatchBookmarks=true and a randomised timeoutSeconds;
 * - resource versions are opaque strings, passed back verbatim (escaped);
 *   every event and BOOKMARK moves the version the next watch starts from;
 * - an ERROR event with code 410, or HTTP 410 at the start of a watch:
 *   relist; a watch that ends (server timeout, closed connection, even
 *   mid-event): watch again from the last version; any other failure:
 *   retry after a backoff (doubling, full jitter);
 * - a relist every resync_s anyway (a missed event cannot last forever);
 * - the bearer token is re-read from its file every token_reread_s and
 *   after every 401 (projected service-account tokens rotate).
 *
 * Stopping (dd_kubewatch_free) is prompt: a request in flight is cancelled
 * within about a second, whatever the watch timeout.
 *
 * Where the API server is (dd_kubewatch_source_resolve): --kube-api URL
 * [--kube-token-file F] [--kube-ca-file F]; else in a pod
 * (KUBERNETES_SERVICE_HOST and _PORT set) https://HOST:PORT with the
 * service account's token and ca.crt; else none, and the extender answers
 * from pod annotations alone.
 */
#ifndef DD_KUBEWATCH_H
#define DD_KUBEWATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "placement/kube.h"

#define DD_KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct dd_kube_source {
    char url[1024];        /* "" when none */
    char token_file[1024]; /* "" when none */
    char ca_file[1024];    /* "" for the system store */
    /* "in-cluster", "--kube-api URL" or "none": for logs and explanations */
    char describe[1100];
};

/* From the flags (api_url may be "" or NULL) and, without them, the
 * environment and the service-account files. Never fails: "none" is an
 * answer. sa_dir NULL means DD_KUBE_SA_DIR (tests point it elsewhere). */
void dd_kubewatch_source_resolve(const char *api_url, const char *token_file, const char *ca_file,
                                 const char *sa_dir, struct dd_kube_source *ret);

struct dd_kubewatch_config {
    struct dd_kube_source src;
    double resync_s;         /* relist every; 0: 1800 */
    double watch_timeout_s;  /* timeoutSeconds asked, randomised down to 80 %; 0: 300 */
    double token_reread_s;   /* 0: 60 */
    unsigned backoff_min_ms; /* 0: 500 */
    unsigned backoff_max_ms; /* 0: 30000 */
    unsigned page_limit;     /* 0: DD_KUBE_LIST_LIMIT */
    /* The node role's mode (its own pods only): kinds is a mask of
     * 1 << DD_KUBE_POD ... (0: every kind); pod_field_selector, when not
     * "", is sent as fieldSelector on the Pod list and watch
     * ("spec.nodeName=gpu-a"); on_object, when set, gets every object listed
     * (as ADDED) and every watch event's object, on the kind's thread, after
     * the cache (which may then be NULL); obj is borrowed for the call. */
    unsigned kinds;
    char pod_field_selector[512];
    void (*on_object)(void *ctx, enum dd_kube_kind kind, enum dd_kube_event ev, const json_t *obj);
    void *object_ctx;
};

struct dd_kubewatch;

/* Checks the configuration and reads the token once (a bad token file is
 * an error at start). The cache is borrowed and must outlive the watch; it
 * may be NULL when on_object is set. */
int dd_kubewatch_new(const struct dd_kubewatch_config *c, struct dd_kube *cache,
                     struct dd_kubewatch **ret, char *errbuf, size_t errlen);
/* Starts the threads. 0 or -EAGAIN. */
int dd_kubewatch_start(struct dd_kubewatch *w);
/* Stops promptly, joins, frees. NULL-safe; returns NULL. */
struct dd_kubewatch *dd_kubewatch_free(struct dd_kubewatch *w);

struct dd_kubewatch_kind_stats {
    bool synced;             /* listed at least once */
    uint64_t lists;          /* complete lists (the first included) */
    uint64_t events;         /* watch events applied */
    uint64_t bookmarks;      /* BOOKMARK events */
    uint64_t refused;        /* objects the cache refused (list items and events) */
    uint64_t watch_errors;   /* failed requests, ERROR events, cut streams */
    uint64_t unauthorized;   /* 401 answers */
    double age_s;            /* since the last event, bookmark or list; since start if none */
    char rv[DD_KUBE_MAX_RV]; /* the version the next watch starts from */
    char last_error[256];    /* "" if none yet */
};
void dd_kubewatch_stats(struct dd_kubewatch *w, enum dd_kube_kind kind,
                        struct dd_kubewatch_kind_stats *ret);
/* Every kind watched listed at least once. */
bool dd_kubewatch_synced(struct dd_kubewatch *w);

/* Prometheus families: dedupd_kube_objects{kind}, dedupd_kube_watch_age_seconds{kind},
 * dedupd_kube_relists_total{kind}, dedupd_kube_watch_errors_total{kind},
 * dedupd_kube_events_total{kind}, dedupd_kube_refused_total{kind},
 * dedupd_kube_synced{kind}. */
void dd_kubewatch_metrics(struct dd_kubewatch *w, FILE *m);

#endif
