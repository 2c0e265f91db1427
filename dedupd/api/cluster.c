/*
 * The placement role's cluster view over HTTP (api.h). A report is
 * authenticated by the HTTP layer (route marked mutating: the bearer token,
 * before the body is read), size-checked, decoded strictly
 * (placement/report: 400 naming the field), then published to the view
 * and its volume rows written in one store batch. Nothing of a rejected
 * report is kept. A report that came with a verified client certificate
 * must be its node's own: the certificate's identity (http.h:
 * peer_identity) must be the report's node name or "system:node:" + it,
 * else 403 identity_mismatch. With a token only, any holder of the token
 * may report as any node. A report older than the one held for its node (by the
 * node's clock) is refused with 409.
 *
 * Role all feeds its own node's reports in-process (no HTTP, no second
 * copy of the rows: the sampler stored them as "vol/<volume>").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/config.h"
#include "dedupd/metrics.h"
#include "dedupd/store/store.h"
#include "dedupd/trainer.h"
#include "placement/cluster.h"
#include "placement/ledger.h"

/* 401 and 413 (and 403 for a missing or untrusted client certificate) are
 * answered on the headers and counted by the HTTP layer */
enum reject { R_INVALID, R_STALE, R_STORE, R_IDENTITY, R_COUNT };
static const char *const reject_names[R_COUNT] = {"invalid", "out_of_order", "store", "identity"};

struct dd_cluster_api {
    struct dd_cluster *cluster;
    struct dd_store *store;
    struct dd_model_service *model;
    struct dd_ledger *ledger; /* borrowed; NULL: none */
    char role[16];
    uint64_t received, rows_stored, rejected[R_COUNT]; /* atomic */
    uint64_t last_forget_ms;                           /* atomic */
    /* role placement: no sampler runs the store's retention pass, this
     * thread does (retention, then downsampling of older history) */
    pthread_t housekeeper;
    bool housekeeping;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t wake;
    bool stop;
};

/* How often the placement role's store is trimmed: each pass deletes by
 * range, one tombstone per series with expired points. */
#define RETAIN_EVERY_MS (5u * 60u * 1000u)

static void *housekeeper_main(void *arg)
{
    struct dd_cluster_api *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += RETAIN_EVERY_MS / 1000u;
        while (!a->stop && pthread_cond_timedwait(&a->wake, &a->lock, &until) != ETIMEDOUT)
            ;
        if (a->stop)
            break;
        pthread_mutex_unlock(&a->lock);
        int n = dd_store_retain(a->store, dd_wall_ms());
        if (n < 0)
            dd_log_warning("store retention pass failed: %s", dd_strerror(n));
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static void options_of(const struct dd_config *c, struct dd_cluster_options *o)
{
    o->stale_after_s = c->stale_after;
    o->forget_after_s = c->forget_after;
}

int dd_cluster_api_new(const struct dd_config *c, struct dd_store *store,
                       struct dd_model_service *model, struct dd_cluster_api **ret)
{
    struct dd_cluster_api *a = dd_calloc(1, sizeof(*a));
    struct dd_cluster_options o;
    int r;
    if (!a)
        return -ENOMEM;
    options_of(c, &o);
    if ((r = dd_cluster_new(&o, &a->cluster)) < 0) {
        dd_free(a);
        return r;
    }
    a->store = store;
    a->model = model;
    snprintf(a->role, sizeof(a->role), "%s", dd_role_name(c->role));
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    /* roles with a node side: the sampler runs the retention pass */
    if (!dd_role_has_node(c->role)) {
        if (pthread_create(&a->housekeeper, NULL, housekeeper_main, a) != 0) {
            dd_cluster_api_free(a);
            return -EAGAIN;
        }
        a->housekeeping = true;
    }
    *ret = a;
    return 0;
}

struct dd_cluster_api *dd_cluster_api_free(struct dd_cluster_api *a)
{
    if (!a)
        return NULL;
    if (a->housekeeping) {
        pthread_mutex_lock(&a->lock);
        a->stop = true;
        pthread_cond_broadcast(&a->wake);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->housekeeper, NULL);
    }
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->wake);
    dd_cluster_free(a->cluster);
    dd_free(a);
    return NULL;
}

void dd_cluster_api_reconfigure(struct dd_cluster_api *a, const struct dd_config *c)
{
    struct dd_cluster_options o;
    options_of(c, &o);
    dd_cluster_set_options(a->cluster, &o);
}

struct dd_cluster *dd_cluster_api_cluster(struct dd_cluster_api *a)
{
    return a->cluster;
}

/* Silent nodes leave the view; checked at most once a second. */
static void forget_now_and_then(struct dd_cluster_api *a, uint64_t now)
{
    uint64_t last = __atomic_load_n(&a->last_forget_ms, __ATOMIC_RELAXED);
    if (now < last + 1000 || !__atomic_compare_exchange_n(&a->last_forget_ms, &last, now, false,
                                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    size_t gone = dd_cluster_forget(a->cluster, now);
    if (gone)
        dd_log_info("cluster: %zu silent node(s) left the view", gone);
}

void dd_cluster_api_set_ledger(struct dd_cluster_api *a, struct dd_ledger *ledger)
{
    a->ledger = ledger;
}

void dd_cluster_api_ingest_local(struct dd_cluster_api *a, const struct dd_report *r)
{
    struct dd_report copy;
    uint64_t now = dd_wall_ms();
    if (dd_report_copy(r, &copy) < 0)
        return;
    if (a->ledger)
        dd_ledger_observe(a->ledger, &copy, now);
    if (dd_cluster_put(a->cluster, &copy, now) == 0)
        __atomic_add_fetch(&a->received, 1, __ATOMIC_RELAXED);
    forget_now_and_then(a, now);
}

/* The rows of a report: one store batch, "node/<node>/vol/<volume>" ->
 * {"pool": ..., "features": {...}} (the shape training reads). */
static int store_rows(struct dd_cluster_api *a, const struct dd_report *r, size_t *ret_rows)
{
    struct dd_store_batch *b = NULL;
    size_t rows = 0;
    int e = dd_store_batch_begin(a->store, &b);
    if (e < 0)
        return e;
    for (size_t i = 0; i < r->n_volumes; i++) {
        const struct dd_report_volume *v = &r->volumes[i];
        char series[DD_SERIES_MAX], *text;
        json_t *doc =
            json_pack("{s:s, s:o}", "pool", v->pool, "features", dd_features_to_json(&v->features));
        if (!doc) {
            e = -ENOMEM;
            break;
        }
        text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10));
        json_decref(doc);
        snprintf(series, sizeof(series), "node/%s/vol/%s", r->node, v->name);
        e = text ? dd_store_batch_put_sample(b, series, r->time_ms, text, strlen(text)) : -ENOMEM;
        free(text);
        if (e < 0)
            break;
        rows++;
    }
    if (e == 0)
        e = dd_store_batch_commit(b, false);
    else
        dd_store_batch_free(b);
    if (e == 0)
        *ret_rows = rows;
    return e;
}

static int h_report(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_cluster_api *a = ctx;
    struct dd_report r;
    char err[512];
    size_t rows = 0, n_volumes;
    uint64_t now = dd_wall_ms();
    json_t *doc;
    int e;

    doc = dd_http_body_json(req, resp);
    if (!doc) {
        __atomic_add_fetch(&a->rejected[R_INVALID], 1, __ATOMIC_RELAXED);
        return 0;
    }
    e = dd_report_from_json(doc, &r, err, sizeof(err));
    json_decref(doc);
    if (e < 0) {
        __atomic_add_fetch(&a->rejected[R_INVALID], 1, __ATOMIC_RELAXED);
        return dd_http_reply_error(resp, 400, "bad_report", "%s", err);
    }
    char node[DD_NAME_MAX];
    snprintf(node, sizeof(node), "%s", r.node);
    /* a node reports as itself: the name its certificate gives it */
    if (req->peer_identity && !dd_report_identity_names_node(req->peer_identity, node)) {
        const char *id = req->peer_identity;
        dd_report_release(&r);
        __atomic_add_fetch(&a->rejected[R_IDENTITY], 1, __ATOMIC_RELAXED);
        char msg[768];
        if (id[0])
            snprintf(msg, sizeof(msg),
                     "the report is for node '%s' but the client certificate identifies '%s': "
                     "a certificate whose subject CN (else first DNS name) is NAME or "
                     "system:node:NAME may report for node NAME only",
                     node, id);
        else
            snprintf(msg, sizeof(msg),
                     "the report is for node '%s' but the client certificate names no node (no "
                     "usable subject CN or DNS name)",
                     node);
        return dd_http_reply_json(resp, 403,
                                  json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code",
                                            "identity_mismatch", "message", msg, "node", node,
                                            "certificate_identity", id));
    }
    for (size_t i = 0; i < r.n_volumes; i++) {
        /* "node/<node>/vol/<volume>" must fit a store series name */
        if (strlen(r.node) + strlen(r.volumes[i].name) + 10 > DD_STORE_SERIES_MAX) {
            dd_report_release(&r);
            __atomic_add_fetch(&a->rejected[R_INVALID], 1, __ATOMIC_RELAXED);
            return dd_http_reply_error(resp, 400, "bad_report",
                                       "volumes[%zu].name: the node and volume names together "
                                       "are longer than the store's %u-byte series names",
                                       i, DD_STORE_SERIES_MAX - 10);
        }
    }
    n_volumes = r.n_volumes;
    /* rows first: a report whose rows cannot be stored is not half-kept */
    if ((e = store_rows(a, &r, &rows)) < 0) {
        dd_report_release(&r);
        __atomic_add_fetch(&a->rejected[R_STORE], 1, __ATOMIC_RELAXED);
        return dd_http_reply_error(resp, 503, "store", "the report's rows cannot be stored: %s",
                                   dd_strerror(e));
    }
    if (a->ledger) /* pods this report shows doing I/O leave the ledger */
        dd_ledger_observe(a->ledger, &r, now);
    e = dd_cluster_put(a->cluster, &r, now); /* takes r */
    if (e == -ESTALE) {
        __atomic_add_fetch(&a->rejected[R_STALE], 1, __ATOMIC_RELAXED);
        return dd_http_reply_error(resp, 409, "out_of_order",
                                   "node %s: this report is older than the one held", node);
    }
    if (e < 0)
        return e;
    __atomic_add_fetch(&a->received, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&a->rows_stored, rows, __ATOMIC_RELAXED);
    if (a->model && rows)
        dd_model_note_samples(a->model, rows);
    forget_now_and_then(a, now);
    return dd_http_reply_json(resp, 202,
                              json_pack("{s:s, s:s, s:i, s:i}", "status", "accepted", "node", node,
                                        "volumes", (int)n_volumes, "rows_stored", (int)rows));
}

static int h_cluster(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_cluster_api *a = ctx;
    uint64_t now = dd_wall_ms();
    (void)req;
    forget_now_and_then(a, now);
    struct dd_cluster_snapshot *s = dd_cluster_snapshot(a->cluster);
    json_t *nodes = json_array();
    size_t stale = 0;
    if (!s || !nodes) {
        dd_cluster_snapshot_free(s);
        json_decref(nodes);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++) {
        json_t *n = dd_cluster_node_json(&s->opts, s->nodes[i], now, false);
        if (n) {
            stale += json_is_true(json_object_get(n, "stale"));
            json_array_append_new(nodes, n);
        }
    }
    dd_cluster_snapshot_free(s);
    return dd_http_reply_json(resp, 200,
                              json_pack("{s:o, s:i, s:i, s:I}", "nodes", nodes, "count",
                                        (int)json_array_size(nodes), "stale", (int)stale, "time_ms",
                                        (json_int_t)now));
}

static int h_cluster_node(void *ctx, const struct dd_http_request *req,
                          struct dd_http_response *resp)
{
    struct dd_cluster_api *a = ctx;
    uint64_t now = dd_wall_ms();
    struct dd_cluster_snapshot *s = dd_cluster_snapshot(a->cluster);
    if (!s)
        return -ENOMEM;
    const struct dd_cluster_node *n = dd_cluster_find(s, req->params[0]);
    json_t *doc = n ? dd_cluster_node_json(&s->opts, n, now, true) : NULL;
    dd_cluster_snapshot_free(s);
    if (!doc)
        return dd_http_reply_error(resp, 404, "not_found",
                                   "no node '%.200s' in the cluster view (never reported, or "
                                   "silent past forget-after)",
                                   req->params[0]);
    return dd_http_reply_json(resp, 200, doc);
}

void dd_cluster_api_metrics(struct dd_cluster_api *a, FILE *m)
{
    uint64_t now = dd_wall_ms();
    struct dd_cluster_snapshot *s = dd_cluster_snapshot(a->cluster);
    size_t stale = 0;

    dd_metrics_family(m, "dedupd_reports_received_total", "counter",
                      "Node reports accepted by this placement role.");
    fprintf(m, "dedupd_reports_received_total %llu\n",
            (unsigned long long)__atomic_load_n(&a->received, __ATOMIC_RELAXED));
    dd_metrics_family(m, "dedupd_reports_rejected_total", "counter",
                      "Node reports refused, by reason (401, 413 and a missing or untrusted "
                      "client certificate: the HTTP layer's counts).");
    for (size_t i = 0; i < R_COUNT; i++)
        fprintf(m, "dedupd_reports_rejected_total{reason=\"%s\"} %llu\n", reject_names[i],
                (unsigned long long)__atomic_load_n(&a->rejected[i], __ATOMIC_RELAXED));
    dd_metrics_family(m, "dedupd_report_rows_stored_total", "counter",
                      "Volume rows of node reports written to the store.");
    fprintf(m, "dedupd_report_rows_stored_total %llu\n",
            (unsigned long long)__atomic_load_n(&a->rows_stored, __ATOMIC_RELAXED));
    if (!s)
        return;
    dd_metrics_family(m, "dedupd_cluster_report_age_seconds", "gauge",
                      "Seconds since the node's newest report arrived.");
    for (size_t i = 0; i < s->n; i++) {
        fprintf(m, "dedupd_cluster_report_age_seconds{node=\"");
        dd_metrics_label_value(m, s->nodes[i]->report.node);
        fprintf(m, "\"} %.3f\n", dd_cluster_node_age_s(s->nodes[i], now));
        stale += dd_cluster_node_stale(&s->opts, s->nodes[i], now);
    }
    dd_metrics_family(m, "dedupd_cluster_nodes", "gauge", "Nodes in the cluster view.");
    fprintf(m, "dedupd_cluster_nodes %zu\n", s->n);
    dd_metrics_family(m, "dedupd_cluster_nodes_stale", "gauge",
                      "Nodes whose newest report is older than their stale bound.");
    fprintf(m, "dedupd_cluster_nodes_stale %zu\n", stale);
    dd_cluster_snapshot_free(s);
}

size_t dd_api_cluster_routes(struct dd_cluster_api *a, const char *role, struct dd_http_route *out)
{
    static const struct dd_http_route templ[] = {
        /* the cap is checked on the headers, before any byte is read */
        {"POST", "/v1/reports", h_report, NULL, true, NULL, DD_REPORT_MAX_BODY},
        {"GET", "/v1/cluster", h_cluster, NULL, false, NULL, 0},
        {"GET", "/v1/cluster/nodes/{name}", h_cluster_node, NULL, false, NULL, 0},
    };
    return dd_api_fill_routes(templ, DD_ARRAY_SIZE(templ), a, role, out);
}
