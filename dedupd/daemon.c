/*
 * The daemon's wiring (daemon.h): which subsystems a role has, the order
 * they start in and the reverse order they stop in, and the few routes that
 * belong to the process as a whole (/healthz, /readyz, /metrics).
 *
 * Roles: node = sampler (+ pusher when --placement-url is set);
 * placement = model service + cluster view; all = both, the sampler's
 * reports fed to the cluster view in-process.
 */
#define _GNU_SOURCE
#include "dedupd/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/capacitypub.h"
#include "dedupd/estimaterefs.h"
#include "dedupd/http/http.h"
#include "dedupd/http/token.h"
#include "dedupd/kubewatch.h"
#include "dedupd/leader.h"
#include "dedupd/observe.h"
#include "dedupd/podevents.h"
#include "dedupd/push.h"
#include "dedupd/rightsize.h"
#include "dedupd/sampler.h"
#include "dedupd/store/store.h"
#include "dedupd/trainer.h"
#include "placement/cluster.h"
#include "placement/kube.h"
#include "placement/placer.h"

struct dd_daemon {
    struct dd_config cfg;
    struct dd_store *store;
    struct dd_model_service *model;     /* roles all, placement */
    struct dd_cluster_api *cluster;     /* roles all, placement */
    struct dd_extender_api *extender;   /* roles all, placement */
    struct dd_csi_api *csi;             /* roles all, placement: borrows the extender's placer */
    struct dd_rightsize *rightsize;     /* roles all, placement: outcomes and their model */
    struct dd_admission_api *admission; /* roles all, placement: the right-sizing webhook */
    struct dd_sampler *sampler;         /* roles all, node */
    struct dd_pusher *pusher;           /* a node with --placement-url */
    struct dd_observer *observer;       /* roles all, node: pod outcomes (--observe-pods) */
    struct dd_kubewatch *pod_watch;     /* the observer's: this node's pods */
    struct dd_estimate_jobs *estimates; /* roles all, node */
    struct dd_http_server *http;
    /* roles all, placement: the Kubernetes cache (kube NULL when the
     * source is "none") and its list/watch threads */
    struct dd_kube *kube;
    struct dd_kubewatch *kubewatch;
    struct dd_kube_source kube_source;
    /* --leader-elect: the Lease thread (NULL: always the leader) */
    struct dd_leader *leader;
    /* --publish-capacity: the CSIStorageCapacity publisher (NULL: off) */
    struct dd_capacitypub *capacitypub;
    /* --pod-events: the pod event sender (NULL: off) */
    struct dd_podevents *podevents;
    /* roles all, placement: dedupd.io/estimate job URLs followed */
    struct dd_estimate_refs *estimate_refs;
    unsigned kube_listed; /* atomic: 1 << kind for each kind listed once */
    struct dd_api_node node_api;
    struct dd_api_model model_api;
};

static int h_healthz(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static int h_readyz(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    (void)req;
    struct dd_store_health h;
    if (d->sampler && !dd_sampler_ready(d->sampler))
        return dd_http_reply_error(resp, 503, "not_ready", "no sample has been taken yet");
    /* a damaged store is not ready: sampling and serving go on, but the
     * history cannot be trusted, and the operator must act */
    if (dd_store_health(d->store, &h) == 0 && h.state == DD_STORE_DAMAGED)
        return dd_http_reply_error(resp, 503, "store_damaged", "store %s is damaged: %s. %s",
                                   h.path, h.detail, h.advice);
    return dd_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ready"));
}

static int h_metrics(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)req;
    if (!f)
        return -ENOMEM;
    if (d->sampler)
        dd_sampler_metrics(d->sampler, f);
    else /* a placement role samples nothing: its counters say so */
        fputs("# HELP dedupd_samples_total Sampling intervals completed.\n"
              "# TYPE dedupd_samples_total counter\ndedupd_samples_total 0\n",
              f);
    if (d->pusher)
        dd_pusher_metrics(d->pusher, f);
    if (d->observer)
        dd_observer_metrics(d->observer, f);
    /* one set of dedupd_kube_* families: role all shows the cache's */
    if (d->pod_watch && !d->kubewatch)
        dd_kubewatch_metrics(d->pod_watch, f);
    if (d->cluster)
        dd_cluster_api_metrics(d->cluster, f);
    if (d->extender)
        dd_extender_api_metrics(d->extender, f);
    if (d->rightsize)
        dd_rightsize_metrics(d->rightsize, f);
    if (d->admission)
        dd_admission_api_metrics(d->admission, f);
    if (d->csi)
        dd_csi_api_metrics(d->csi, f);
    if (d->model)
        dd_model_metrics(d->model, f);
    if (d->kubewatch)
        dd_kubewatch_metrics(d->kubewatch, f);
    if (d->extender)
        dd_leader_metrics(d->leader, f);
    if (d->capacitypub)
        dd_capacitypub_metrics(d->capacitypub, f);
    if (d->podevents)
        dd_podevents_metrics(d->podevents, f);
    if (d->estimate_refs)
        dd_estimate_refs_metrics(d->estimate_refs, f);
    dd_http_metrics(d->http, f);
    struct dd_store_health h;
    if (dd_store_health(d->store, &h) == 0)
        fprintf(f,
                "# HELP dedupd_store_state Store health: 0 ok, 1 degraded, 2 damaged.\n"
                "# TYPE dedupd_store_state gauge\ndedupd_store_state %d\n"
                "# HELP dedupd_store_corruptions_total Corruption errors RocksDB reported.\n"
                "# TYPE dedupd_store_corruptions_total counter\n"
                "dedupd_store_corruptions_total %llu\n",
                (int)h.state, (unsigned long long)h.corruptions);
    fclose(f);
    int r = dd_http_reply_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
    return r;
}

/* The sampler's hook: the model counts new rows, the cluster view (role
 * all) and the pusher get the report. */
static void sampled(void *ctx, const struct dd_report *r, size_t rows)
{
    struct dd_daemon *d = ctx;
    if (d->model && rows)
        dd_model_note_samples(d->model, rows);
    if (d->cluster)
        dd_cluster_api_ingest_local(d->cluster, r);
    if (d->pusher)
        dd_pusher_enqueue(d->pusher, r);
}

/* The sampler's pod scan goes to the outcome observer. */
static void sampled_pods(void *ctx, const struct dd_pods *pods, double dt, uint64_t now_ms,
                         struct dd_store_batch *b)
{
    struct dd_daemon *d = ctx;
    if (d->observer)
        dd_observer_sampled(d->observer, pods, dt, now_ms, b);
}

/* --observe-pods: the outcome observer and, with the Kubernetes API, the
 * watch of this node's pods (node mode: Pods only, fieldSelector
 * spec.nodeName=NODE, no cache). */
static int observer_start(struct dd_daemon *d, const struct dd_config *c, char *errbuf,
                          size_t errlen)
{
    struct dd_kube_source src;
    struct dd_kubewatch_config kc = {0};
    bool on = strcmp(c->observe_pods, "on") == 0;
    int r;

    if (strcmp(c->observe_pods, "off") == 0)
        return 0;
    dd_kubewatch_source_resolve(c->kube_api, c->kube_token_file, c->kube_ca_file, NULL, &src);
    if (!src.url[0] && !on) {
        dd_log_info("pod outcomes: off (no Kubernetes API: --kube-api, or in a pod; "
                    "--observe-pods on records cgroup figures alone)");
        return 0;
    }
    if ((r = dd_observer_new(c, src.url[0] != '\0', &d->observer, errbuf, errlen)) < 0)
        return r;
    if (!src.url[0]) {
        dd_log_info("pod outcomes: cgroup figures only (no Kubernetes API), stored, not posted");
        return 0;
    }
    kc.src = src;
    kc.kinds = 1u << DD_KUBE_POD;
    snprintf(kc.pod_field_selector, sizeof(kc.pod_field_selector), "spec.nodeName=%.400s",
             c->node_name);
    kc.on_object = dd_observer_pod_object;
    kc.object_ctx = d->observer;
    if ((r = dd_kubewatch_new(&kc, NULL, &d->pod_watch, errbuf, errlen)) < 0)
        return r;
    dd_log_info("pod outcomes: this node's pods from %s (%s)%s", src.describe, src.url,
                c->placement_url[0] ? ", posted to the placement role" : ", stored only");
    return 0;
}

/* Kubernetes deleted a Node: it leaves the cluster view at once. */
static void kube_node_deleted(void *ctx, const char *node)
{
    struct dd_daemon *d = ctx;
    if (d->cluster && dd_cluster_remove(dd_cluster_api_cluster(d->cluster), node))
        dd_log_info("node %s: deleted from Kubernetes, left the cluster view", node);
}

/* The Kubernetes cache and its watch (placement side), or the log line
 * saying there is none. */
/* The pod watch's bindings confirm, move or rebuild ledger entries. */
static void kube_pod_bound(void *ctx, const char *uid, const char *ns, const char *name,
                           const char *node)
{
    struct dd_daemon *d = ctx;
    if (d->extender)
        dd_extender_api_pod_bound(d->extender, uid, ns, name, node);
}

static void kube_pod_deleted(void *ctx, const char *uid, const char *ns, const char *name,
                             const char *node)
{
    struct dd_daemon *d = ctx;
    (void)ns;
    (void)name;
    (void)node;
    if (d->extender)
        dd_extender_api_pod_deleted(d->extender, uid);
}

/* The first lists of the kinds a pod's ledger entry is resolved from are
 * all in: bindings listed before their claims get their entries now. */
static void kube_relisted(void *ctx, enum dd_kube_kind kind)
{
    struct dd_daemon *d = ctx;
    const unsigned all =
        1u << DD_KUBE_POD | 1u << DD_KUBE_PVC | 1u << DD_KUBE_PV | 1u << DD_KUBE_SC;
    unsigned old = __atomic_fetch_or(&d->kube_listed, 1u << kind, __ATOMIC_ACQ_REL);
    if ((old & all) != all && ((old | 1u << kind) & all) == all && d->extender)
        dd_extender_api_rebuild_ledger(d->extender);
}

static int kube_start(struct dd_daemon *d, const struct dd_config *c, char *errbuf, size_t errlen)
{
    const char *gpus[DD_KUBE_MAX_GPU_RESOURCES];
    struct dd_kubewatch_config kc = {0};
    int r;

    dd_kubewatch_source_resolve(c->kube_api, c->kube_token_file, c->kube_ca_file, NULL,
                                &d->kube_source);
    dd_extender_api_set_kube(d->extender, NULL, dd_daemon_kube_source(d));
    if (!d->kube_source.url[0]) {
        dd_log_info("kubernetes: none (no --kube-api, not in a pod): the extender answers from "
                    "pod annotations alone");
        return 0;
    }
    for (size_t i = 0; i < c->n_gpu_resources; i++)
        gpus[i] = c->gpu_resources[i];
    if ((r = dd_kube_new(&d->kube, gpus, c->n_gpu_resources)) < 0) {
        snprintf(errbuf, errlen, "kubernetes cache: %s", dd_strerror(r));
        return r;
    }
    dd_kube_set_hooks(d->kube, &(struct dd_kube_hooks){.ctx = d,
                                                       .pod_bound = kube_pod_bound,
                                                       .pod_deleted = kube_pod_deleted,
                                                       .node_deleted = kube_node_deleted,
                                                       .relisted = kube_relisted});
    /* the extender has the cache before the watch threads start: their
     * first list's bindings (the ledger's rebuild) need it */
    dd_extender_api_set_kube(d->extender, d->kube, dd_daemon_kube_source(d));
    kc.src = d->kube_source;
    if ((r = dd_kubewatch_new(&kc, d->kube, &d->kubewatch, errbuf, errlen)) < 0)
        return r;
    if ((r = dd_kubewatch_start(d->kubewatch)) < 0) {
        snprintf(errbuf, errlen, "cannot start the Kubernetes watch threads");
        return r;
    }
    dd_log_info("kubernetes: %s (%s)", d->kube_source.describe, d->kube_source.url);
    return 0;
}

/* --leader-elect: the Lease, this replica's identity and its pod. */
static int leader_new(struct dd_daemon *d, const struct dd_config *c, char *errbuf, size_t errlen)
{
    struct dd_leader_config lc = {0};
    const char *pod = getenv("POD_NAME");
    char ns[256];

    if (!d->kube_source.url[0]) {
        snprintf(errbuf, errlen,
                 "--leader-elect needs the Kubernetes API (--kube-api, or in-cluster in a pod)");
        return DD_E_USAGE;
    }
    lc.src = d->kube_source;
    dd_leader_pod_namespace(NULL, ns, sizeof(ns));
    snprintf(lc.lease_name, sizeof(lc.lease_name), "%s", c->lease_name);
    snprintf(lc.lease_namespace, sizeof(lc.lease_namespace), "%s",
             c->lease_namespace[0] ? c->lease_namespace
             : ns[0]               ? ns
                                   : "default");
    if (c->pod_name[0])
        pod = c->pod_name;
    if (pod && pod[0]) {
        snprintf(lc.pod_name, sizeof(lc.pod_name), "%s", pod);
        snprintf(lc.pod_namespace, sizeof(lc.pod_namespace), "%s", ns);
    }
    snprintf(lc.identity, sizeof(lc.identity), "%s", pod && pod[0] ? pod : c->node_name);
    lc.lease_duration_s = c->lease_duration;
    lc.renew_deadline_s = c->renew_deadline;
    lc.retry_period_s = c->retry_period;
    if (!lc.pod_namespace[0])
        dd_log_info("leader election: pod name or namespace unknown (POD_NAME, --pod-name, "
                    "POD_NAMESPACE): no pod label is written");
    return dd_leader_new(&lc, &d->leader, errbuf, errlen);
}

/* The publisher writes once the cache has listed every kind (an empty
 * class list would delete every object). */
static bool kube_ready(void *ud)
{
    struct dd_daemon *d = ud;
    return d->kubewatch && dd_kubewatch_synced(d->kubewatch);
}

/* --publish-capacity: the objects' namespace is the Lease's by default. */
static int capacitypub_new(struct dd_daemon *d, const struct dd_config *c, char *errbuf,
                           size_t errlen)
{
    struct dd_capacitypub_config pc = {0};
    char ns[256];

    if (!d->kube_source.url[0]) {
        snprintf(errbuf, errlen,
                 "--publish-capacity needs the Kubernetes API (--kube-api, or in-cluster in a "
                 "pod)");
        return DD_E_USAGE;
    }
    pc.src = d->kube_source;
    dd_leader_pod_namespace(NULL, ns, sizeof(ns));
    snprintf(pc.ns, sizeof(pc.ns), "%s",
             c->publish_capacity_namespace[0] ? c->publish_capacity_namespace
             : c->lease_namespace[0]          ? c->lease_namespace
             : ns[0]                          ? ns
                                              : "default");
    snprintf(pc.node_key, sizeof(pc.node_key), "%s", c->publish_capacity_node_key);
    snprintf(pc.owner, sizeof(pc.owner), "%s", c->publish_capacity_owner);
    pc.interval_s = c->publish_capacity_interval;
    pc.qps = c->publish_capacity_qps;
    pc.burst = c->publish_capacity_burst;
    dd_csi_pub_options_init(&pc.opts);
    pc.opts.threshold = c->publish_capacity_threshold;
    pc.opts.min_change = (int64_t)c->publish_capacity_min_change;
    struct dd_capacitypub_hooks h = {
        .csi = d->csi,
        .is_leader = d->leader ? dd_leader_is_leader_cb : NULL,
        .leader_ud = d->leader,
        .ready = kube_ready,
        .ready_ud = d,
    };
    return dd_capacitypub_new(&pc, &h, &d->capacitypub, errbuf, errlen);
}

/* --pod-events: reportingInstance is this replica's pod (or node) name. */
static int podevents_new(struct dd_daemon *d, const struct dd_config *c, char *errbuf,
                         size_t errlen)
{
    struct dd_podevents_config ec = {0};
    const char *pod = c->pod_name[0] ? c->pod_name : getenv("POD_NAME");
    int r;

    if (!d->kube_source.url[0]) {
        snprintf(errbuf, errlen,
                 "--pod-events needs the Kubernetes API (--kube-api, or in-cluster in a pod)");
        return DD_E_USAGE;
    }
    ec.src = d->kube_source;
    snprintf(ec.instance, sizeof(ec.instance), "%s", pod && pod[0] ? pod : c->node_name);
    ec.qps = c->pod_events_qps;
    ec.burst = c->pod_events_burst;
    ec.window_s = c->pod_events_window;
    r = dd_podevents_new(&ec, d->leader ? dd_leader_is_leader_cb : NULL, d->leader, &d->podevents,
                         errbuf, errlen);
    if (r == 0)
        dd_extender_api_set_events(d->extender, d->podevents);
    return r;
}

struct dd_kube *dd_daemon_kube(const struct dd_daemon *d)
{
    return d->kube;
}

const char *dd_daemon_kube_source(const struct dd_daemon *d)
{
    return d->kube_source.describe[0] ? d->kube_source.describe : "none";
}

static void model_config(const struct dd_config *c, struct dd_model_config *mc)
{
    dd_model_config_defaults(mc);
    mc->min_train_samples = c->min_train_samples;
    mc->retrain_every = c->retrain_every;
    snprintf(mc->prior_file, sizeof(mc->prior_file), "%s", c->prior_file);
    snprintf(mc->node_name, sizeof(mc->node_name), "%s", c->node_name);
}

/* The webhook's predictor: the admitted pod's static description and the
 * right-sizing service's prediction. */
static int admission_predict(void *ctx, const json_t *pod, const struct dd_rs_live *live,
                             struct dd_rs_prediction *out, char *err, size_t errlen)
{
    struct dd_daemon *d = ctx;
    const char *gpus[DD_KUBE_MAX_GPU_RESOURCES];
    struct dd_rs_pod *p = dd_calloc(1, sizeof(*p)); /* ~20 KB: off the worker's stack */
    int r;
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < d->cfg.n_gpu_resources; i++)
        gpus[i] = d->cfg.gpu_resources[i];
    r = dd_rs_pod_from_json(pod, d->cfg.n_gpu_resources ? gpus : NULL, d->cfg.n_gpu_resources, p,
                            err, errlen);
    if (r == 0 && (r = dd_rightsize_predict(d->rightsize, p, live, out)) < 0)
        snprintf(err, errlen, "the right-sizing model: %s", dd_strerror(r));
    dd_free(p);
    return r;
}

/* The extender's learned I/O profile (placement/placer.h): the
 * right-sizing prediction of the pod's read and write MB/s, when the
 * owner's history or the trained model gives one for both. */
static bool learned_profile(void *ctx, const json_t *pod, double *read_mbps, double *write_mbps,
                            char *note, size_t notelen)
{
    struct dd_daemon *d = ctx;
    struct dd_rs_prediction pred;
    char err[256];
    bool ok;
    if (!dd_rightsize_has_outcomes(d->rightsize) ||
        admission_predict(ctx, pod, NULL, &pred, err, sizeof(err)) < 0)
        return false;
    ok = isfinite(pred.value[DD_RS_READ]) && isfinite(pred.value[DD_RS_WRITE]) &&
         strcmp(pred.source[DD_RS_READ], "none") != 0 &&
         strcmp(pred.source[DD_RS_WRITE], "none") != 0;
    if (!ok)
        return false;
    *read_mbps = pred.value[DD_RS_READ];
    *write_mbps = pred.value[DD_RS_WRITE];
    snprintf(note, notelen,
             "right-sizing %s/%s (model version %" PRIu64 ", %zu outcomes of the owner): "
             "read %.1f MB/s, write %.1f MB/s",
             pred.source[DD_RS_READ], pred.source[DD_RS_WRITE], pred.model_version, pred.history.n,
             *read_mbps, *write_mbps);
    return true;
}

int dd_daemon_start(const struct dd_config *c, struct dd_daemon **ret, char *errbuf, size_t errlen)
{
    struct dd_daemon *d = dd_calloc(1, sizeof(*d));
    struct dd_store_options so;
    struct dd_http_config hc = {0};
    struct dd_http_route routes[DD_API_MAX_ROUTES];
    const char *role = dd_role_name(c->role);
    char *token = NULL;
    size_t n = 0;
    int r;

    if (!d)
        return -ENOMEM;
    d->cfg = *c;
    dd_store_options_init(&so);
    so.retention_ms = (uint64_t)c->retention_days * 24u * 3600u * 1000u;
    if (c->role == DD_ROLE_PLACEMENT) {
        /* every node's rows: the last day at full resolution, older ones one
         * per 5 minutes per series (at 5,000 nodes x 16 volumes every 10 s,
         * ~177 GB for 14 days instead of ~1.7 TB; dedupd/store/store.h) */
        so.full_resolution_ms = 24u * 3600u * 1000u;
        so.downsample_step_ms = 5u * 60u * 1000u;
    }
    if ((r = dd_store_open(c->data_dir, &so, &d->store, errbuf, errlen)) < 0)
        goto fail;
    if (c->token_file[0] && (r = dd_token_read(c->token_file, &token, errbuf, errlen)) < 0)
        goto fail;
    if (dd_role_has_placement(c->role)) {
        struct dd_model_config mc;
        model_config(c, &mc);
        if ((r = dd_model_service_new(d->store, &mc, &d->model, errbuf, errlen)) < 0)
            goto fail;
        if ((r = dd_cluster_api_new(c, d->store, d->model, &d->cluster)) < 0) {
            snprintf(errbuf, errlen, "cluster view: %s", dd_strerror(r));
            goto fail;
        }
        if ((r = dd_extender_api_new(c, dd_cluster_api_cluster(d->cluster), d->model,
                                     &d->extender)) < 0) {
            snprintf(errbuf, errlen, "extender: %s", dd_strerror(r));
            goto fail;
        }
        dd_cluster_api_set_ledger(d->cluster, dd_extender_api_ledger(d->extender));
        if ((r = dd_csi_api_new(c, dd_extender_api_placer(d->extender), &d->csi)) < 0) {
            snprintf(errbuf, errlen, "csi: %s", dd_strerror(r));
            goto fail;
        }
        struct dd_rightsize_options ro;
        dd_rightsize_options_init(&ro);
        ro.retrain_every = c->rightsize_retrain_every;
        ro.retrain_interval_ms = (uint64_t)(c->rightsize_retrain_interval * 1000.0);
        ro.min_rows = c->rightsize_min_outcomes;
        if ((r = dd_rightsize_new(d->store, &ro, &d->rightsize, errbuf, errlen)) < 0)
            goto fail;
        if ((r = dd_admission_api_new(c, dd_extender_api_placer(d->extender), &d->admission)) < 0) {
            snprintf(errbuf, errlen, "admission: %s", dd_strerror(r));
            goto fail;
        }
        dd_admission_api_set_predictor(d->admission, admission_predict, d);
        dd_placer_set_learned(dd_extender_api_placer(d->extender), learned_profile, d);
        if ((r = dd_estimate_refs_new(0, &d->estimate_refs)) < 0 ||
            (r = dd_estimate_refs_start(d->estimate_refs)) < 0) {
            snprintf(errbuf, errlen, "estimate references: %s", dd_strerror(r));
            goto fail;
        }
        dd_csi_api_set_estimates(d->csi, d->estimate_refs);
        /* before the HTTP server: the extender reads the cache from its first request */
        if ((r = kube_start(d, c, errbuf, errlen)) < 0)
            goto fail;
        if (c->leader_elect) {
            if ((r = leader_new(d, c, errbuf, errlen)) < 0)
                goto fail;
            dd_extender_api_set_leader(d->extender, dd_leader_is_leader_cb, d->leader);
        }
        if (c->publish_capacity && (r = capacitypub_new(d, c, errbuf, errlen)) < 0)
            goto fail;
        if (c->pod_events && (r = podevents_new(d, c, errbuf, errlen)) < 0)
            goto fail;
    }
    if (dd_role_has_node(c->role)) {
        struct dd_sampler_hooks hooks = {.ctx = d, .sampled = sampled, .pods = sampled_pods};
        if ((r = observer_start(d, c, errbuf, errlen)) < 0)
            goto fail;
        if ((r = dd_sampler_new(c, d->store, &hooks, &d->sampler, errbuf, errlen)) < 0)
            goto fail;
        if (c->placement_url[0] && (r = dd_pusher_new(c, &d->pusher, errbuf, errlen)) < 0)
            goto fail;
        if ((r = dd_estimate_jobs_new(&d->estimates)) < 0)
            goto fail;
        dd_estimate_jobs_set_roots(d->estimates, c->estimate_roots, c->n_estimate_roots);
    }

    routes[n++] = (struct dd_http_route){"GET", "/healthz", h_healthz, d, false, NULL, 0};
    routes[n++] = (struct dd_http_route){"GET", "/readyz", h_readyz, d, false, NULL, 0};
    routes[n++] = (struct dd_http_route){"GET", "/metrics", h_metrics, d, false, NULL, 0};
    d->node_api = (struct dd_api_node){d->sampler, d->store, role};
    n += dd_api_node_routes(&d->node_api, routes + n);
    if (d->estimates) {
        n += dd_api_estimate_routes(d->estimates, routes + n);
    } else {
        routes[n++] = (struct dd_http_route){
            "POST", "/v1/estimate", dd_api_not_in_role, (void *)(uintptr_t)role, false, NULL, 0};
        routes[n++] = (struct dd_http_route){
            "GET", "/v1/estimate/{id}", dd_api_not_in_role, (void *)(uintptr_t)role, false, NULL,
            0};
    }
    d->model_api = (struct dd_api_model){d->model, d->sampler, role};
    n += dd_api_model_routes(&d->model_api, routes + n);
    n += dd_api_cluster_routes(d->cluster, role, routes + n);
    n += dd_api_extender_routes(d->extender, role, routes + n);
    n += dd_api_csi_routes(d->csi, role, routes + n);
    n += dd_api_rightsize_routes(d->rightsize, role, routes + n);
    n += dd_api_admission_routes(d->admission, role, routes + n);

    hc.listen = c->listen;
    hc.token = token;
    hc.threads = c->http_threads;
    hc.tls_cert = c->tls_cert[0] ? c->tls_cert : NULL;
    hc.tls_key = c->tls_key[0] ? c->tls_key : NULL;
    hc.tls_client_ca = c->tls_client_ca[0] ? c->tls_client_ca : NULL;
    r = dd_http_start(&hc, routes, n, &d->http, errbuf, errlen);
    dd_free(token);
    token = NULL;
    if (r < 0)
        goto fail;
    /* with the server up: a new leader answers at once */
    if (d->leader && (r = dd_leader_start(d->leader)) < 0) {
        snprintf(errbuf, errlen, "cannot start the leader election thread");
        goto fail;
    }
    if (d->podevents && (r = dd_podevents_start(d->podevents)) < 0) {
        snprintf(errbuf, errlen, "cannot start the pod event sender thread");
        goto fail;
    }
    if (d->capacitypub && (r = dd_capacitypub_start(d->capacitypub)) < 0) {
        snprintf(errbuf, errlen, "cannot start the capacity publisher thread");
        goto fail;
    }
    if (d->pusher && (r = dd_pusher_start(d->pusher)) < 0) {
        snprintf(errbuf, errlen, "cannot start the report pusher thread");
        goto fail;
    }
    if (d->observer && (r = dd_observer_start(d->observer)) < 0) {
        snprintf(errbuf, errlen, "cannot start the pod outcome poster thread");
        goto fail;
    }
    if (d->pod_watch && (r = dd_kubewatch_start(d->pod_watch)) < 0) {
        snprintf(errbuf, errlen, "cannot start the pod watch thread");
        goto fail;
    }
    if (d->sampler && (r = dd_sampler_start(d->sampler)) < 0) {
        snprintf(errbuf, errlen, "cannot start the sampler thread");
        goto fail;
    }
    *ret = d;
    return 0;
fail:
    dd_free(token);
    dd_daemon_stop(d);
    return r;
}

void dd_daemon_reload(struct dd_daemon *d, const struct dd_config *c)
{
    d->cfg.retention_days = c->retention_days;
    dd_store_set_retention(d->store, (uint64_t)c->retention_days * 24u * 3600u * 1000u);
    if (d->sampler)
        dd_sampler_reconfigure(d->sampler, c);
    if (d->estimates)
        dd_estimate_jobs_set_roots(d->estimates, c->estimate_roots, c->n_estimate_roots);
    if (d->cluster)
        dd_cluster_api_reconfigure(d->cluster, c);
    if (d->extender)
        dd_extender_api_reconfigure(d->extender, c);
    if (d->csi)
        dd_csi_api_reconfigure(d->csi, c);
    if (d->admission)
        dd_admission_api_reconfigure(d->admission, c);
    if (d->model) {
        struct dd_model_config mc;
        model_config(c, &mc);
        dd_model_reconfigure(d->model, &mc);
    }
}

uint16_t dd_daemon_port(const struct dd_daemon *d)
{
    return dd_http_port(d->http);
}

void dd_daemon_stop(struct dd_daemon *d)
{
    if (!d)
        return;
    /* give the Lease up first (a standby takes over while this one
     * finishes), then stop accepting, then the producers, then what they
     * feed */
    dd_leader_stop(d->leader); /* still read by /metrics and the extender until HTTP stops */
    dd_http_stop(d->http);
    /* reads the leader, the cache and the CSI API: before them */
    dd_capacitypub_free(d->capacitypub);
    dd_podevents_free(d->podevents); /* the extender submits to it: after HTTP */
    dd_kubewatch_free(d->kubewatch); /* cancels its requests: prompt */
    dd_kube_free(d->kube);
    dd_kubewatch_free(d->pod_watch);
    dd_sampler_free(d->sampler);   /* finishes the sample in progress */
    dd_observer_free(d->observer); /* after the sampler and the watch that feed it */
    dd_pusher_free(d->pusher);
    dd_estimate_jobs_free(d->estimates);
    dd_csi_api_free(d->csi);                 /* before the extender: it borrows its placer */
    dd_estimate_refs_free(d->estimate_refs); /* after the CSI API, which reads it */
    dd_extender_api_free(d->extender);
    dd_leader_free(d->leader);
    dd_cluster_api_free(d->cluster);
    dd_admission_api_free(d->admission); /* borrows the extender's placer */
    dd_rightsize_free(d->rightsize);     /* a training in progress finishes */
    dd_model_service_free(d->model);     /* a training in progress finishes */
    dd_store_free(d->store);             /* committed batches are in the WAL */
    dd_free(d);
}
