/*
 * Pod outcomes (observe.h). Three parts, three owners:
 *  - the tracker and the pods waiting for their termination: the sampler
 *    thread's only (dd_observer_sampled);
 *  - the metadata table: written by the watch thread, read by the sampler,
 *    under meta_lock; entries are copied out, never borrowed across the
 *    lock;
 *  - the post queue and the counters: under lock, drained by the poster
 *    thread, which holds no lock while it talks to the network.
 */
#define _GNU_SOURCE
#include "dedupd/observe.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/common.h"
#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "dedupd/http/http.h"
#include "dedupd/http/token.h"
#include "dedupd/node/podmeta.h"
#include "dedupd/push.h"
#include "dedupd/store/store.h"

#define BACKOFF_MIN_MS 500u
#define BACKOFF_MAX_MS 30000u
#define REPLY_MAX      (64u * 1024u)

struct meta_entry {
    struct dd_pod_meta m;
    bool deleted;
    uint64_t updated_ms; /* monotonic */
};

struct waiting {
    struct dd_pod_usage u;
    uint64_t gone_ms; /* monotonic: when the cgroup was found gone */
};

enum unposted { U_NO_METADATA, U_QUEUE_FULL, U_REJECTED, U_COUNT };
static const char *const unposted_names[U_COUNT] = {"no_metadata", "queue_full", "rejected"};

struct dd_observer {
    char node[DD_NAME_MAX];
    bool have_kube;
    double grace_s;

    /* the sampler thread's */
    struct dd_pod_tracker *tracker;
    struct waiting *wait;
    size_t n_wait, cap_wait;
    struct dd_pod_skip *prev_skips; /* logged last interval */
    size_t n_prev_skips;

    /* the watch thread writes, the sampler reads */
    pthread_mutex_t meta_lock;
    struct meta_entry *metas;
    size_t n_metas, cap_metas;
    uint64_t meta_refused;
    char meta_last_error[256];

    /* the poster */
    struct dd_http_client *client;
    char url[1024];
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t wake;
    bool stop;
    char *ring[DD_OBSERVE_QUEUE_MAX];
    size_t head, n;
    uint64_t outcomes, posted, failures, unposted[U_COUNT], skipped_cgroups;
    size_t tracked;
};

int dd_observer_new(const struct dd_config *c, bool have_kube, struct dd_observer **ret,
                    char *errbuf, size_t errlen)
{
    struct dd_observer *o = dd_calloc(1, sizeof(*o));
    struct dd_http_client_config cc = {0};
    char *token = NULL;
    int r;

    if (!o)
        return -ENOMEM;
    pthread_mutex_init(&o->meta_lock, NULL);
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->wake, NULL);
    snprintf(o->node, sizeof(o->node), "%s", c->node_name);
    o->have_kube = have_kube;
    /* the watch may trail the kubelet by a few events; a pod is not held
     * for its termination longer than three intervals (5 s at least) */
    o->grace_s = DD_MAX(3 * c->interval, 5.0);
    if ((r = dd_pod_tracker_new(&o->tracker)) < 0)
        goto fail;
    if (!c->placement_url[0]) {
        *ret = o;
        return 0;
    }
    snprintf(o->url, sizeof(o->url), "%s", c->placement_url);
    if (c->placement_token_file[0] &&
        (r = dd_token_read(c->placement_token_file, &token, errbuf, errlen)) < 0)
        goto fail;
    cc.base_url = c->placement_url;
    cc.token = token;
    cc.cert_file = c->placement_cert_file[0] ? c->placement_cert_file : NULL;
    cc.key_file = c->placement_key_file[0] ? c->placement_key_file : NULL;
    cc.ca_file = c->placement_ca_file[0] ? c->placement_ca_file : NULL;
    cc.connect_timeout_ms = 2000;
    cc.timeout_ms = 5000;
    if ((r = dd_http_client_new(&cc, &o->client, errbuf, errlen)) < 0)
        goto fail;
    if (token)
        explicit_bzero(token, strlen(token));
    dd_free(token);
    *ret = o;
    return 0;
fail:
    if (token)
        explicit_bzero(token, strlen(token));
    dd_free(token);
    dd_observer_free(o);
    return r;
}

static void *poster_main(void *arg);

int dd_observer_start(struct dd_observer *o)
{
    if (!o->client)
        return 0;
    if (pthread_create(&o->thread, NULL, poster_main, o) != 0)
        return -EAGAIN;
    o->started = true;
    return 0;
}

struct dd_observer *dd_observer_free(struct dd_observer *o)
{
    if (!o)
        return NULL;
    pthread_mutex_lock(&o->lock);
    o->stop = true;
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->lock);
    if (o->started)
        pthread_join(o->thread, NULL);
    for (size_t i = 0; i < o->n; i++)
        free(o->ring[(o->head + i) % DD_OBSERVE_QUEUE_MAX]);
    dd_http_client_free(o->client);
    dd_pod_tracker_free(o->tracker);
    dd_free(o->wait);
    dd_free(o->prev_skips);
    for (size_t i = 0; i < o->n_metas; i++)
        dd_pod_meta_release(&o->metas[i].m);
    dd_free(o->metas);
    pthread_mutex_destroy(&o->meta_lock);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->wake);
    dd_free(o);
    return NULL;
}

/* ---- metadata (the watch thread) ---- */

/* The entry of a UID (the API's, or a static pod's cgroup UID through its
 * mirror pod); under meta_lock. */
static struct meta_entry *meta_find(struct dd_observer *o, const char *uid)
{
    for (size_t i = 0; i < o->n_metas; i++) {
        if (strcmp(o->metas[i].m.uid, uid) == 0 || strcmp(o->metas[i].m.mirror_uid, uid) == 0)
            return &o->metas[i];
    }
    return NULL;
}

static void meta_remove(struct dd_observer *o, size_t i)
{
    dd_pod_meta_release(&o->metas[i].m);
    o->metas[i] = o->metas[--o->n_metas];
}

/* Deleted pods kept past DD_OBSERVE_META_KEEP_S go; under meta_lock. */
static void meta_expire(struct dd_observer *o, uint64_t now)
{
    for (size_t i = 0; i < o->n_metas;) {
        if (o->metas[i].deleted &&
            now - o->metas[i].updated_ms > (uint64_t)(DD_OBSERVE_META_KEEP_S * 1000.0))
            meta_remove(o, i);
        else
            i++;
    }
}

void dd_observer_pod_object(void *ctx, enum dd_kube_kind kind, enum dd_kube_event ev,
                            const json_t *obj)
{
    struct dd_observer *o = ctx;
    struct dd_pod_meta m;
    struct meta_entry *e;
    char err[256] = "";
    uint64_t now = dd_mono_ms();
    int r;

    if (kind != DD_KUBE_POD)
        return;
    r = dd_pod_meta_from_json(obj, &m, err, sizeof(err));
    pthread_mutex_lock(&o->meta_lock);
    if (r < 0) {
        o->meta_refused++;
        if (strcmp(err, o->meta_last_error) != 0)
            dd_log_warning("pod watch: a pod refused: %s", err);
        snprintf(o->meta_last_error, sizeof(o->meta_last_error), "%s", err);
        pthread_mutex_unlock(&o->meta_lock);
        return;
    }
    /* the field selector should keep other nodes' pods out; a server that
     * ignores it must not fill the table */
    if (m.node[0] && o->node[0] && strcmp(m.node, o->node) != 0) {
        pthread_mutex_unlock(&o->meta_lock);
        dd_pod_meta_release(&m);
        return;
    }
    meta_expire(o, now);
    e = meta_find(o, m.uid);
    if (!e) {
        if (o->n_metas >= DD_NODE_MAX_PODS) {
            size_t oldest = 0;
            for (size_t i = 1; i < o->n_metas; i++) {
                if (o->metas[i].updated_ms < o->metas[oldest].updated_ms)
                    oldest = i;
            }
            meta_remove(o, oldest);
        }
        if (DD_ARRAY_RESERVE(o->metas, o->cap_metas, o->n_metas + 1) < 0) {
            pthread_mutex_unlock(&o->meta_lock);
            dd_pod_meta_release(&m);
            return;
        }
        e = &o->metas[o->n_metas++];
        memset(e, 0, sizeof(*e));
    } else {
        dd_pod_meta_release(&e->m);
    }
    e->m = m;
    e->deleted = ev == DD_KUBE_DELETED;
    e->updated_ms = now;
    pthread_mutex_unlock(&o->meta_lock);
}

/* A copy of a pod's metadata: 1 found (ret to release; *final when the
 * pod is terminal or deleted), 0 none, -ENOMEM. */
static int meta_get(struct dd_observer *o, const char *uid, struct dd_pod_meta *ret, bool *final)
{
    struct meta_entry *e;
    int r = 0;

    pthread_mutex_lock(&o->meta_lock);
    e = meta_find(o, uid);
    if (e) {
        r = dd_pod_meta_copy(&e->m, ret) < 0 ? -ENOMEM : 1;
        *final = e->deleted || e->m.terminal;
    }
    pthread_mutex_unlock(&o->meta_lock);
    return r;
}

/* ---- outcomes (the sampler thread) ---- */

/* Queues an outcome's text (taken) for posting; counts what cannot be. */
static void enqueue(struct dd_observer *o, char *text)
{
    pthread_mutex_lock(&o->lock);
    if (o->n == DD_OBSERVE_QUEUE_MAX) {
        free(o->ring[o->head]);
        o->head = (o->head + 1) % DD_OBSERVE_QUEUE_MAX;
        o->n--;
        o->unposted[U_QUEUE_FULL]++;
    }
    o->ring[(o->head + o->n) % DD_OBSERVE_QUEUE_MAX] = text;
    o->n++;
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->lock);
}

static void finalise(struct dd_observer *o, const struct dd_pod_usage *u, struct dd_store_batch *b)
{
    struct dd_pod_meta m;
    bool final = false, have;
    json_t *body, *rec;
    char *text, *rtext;
    int r;

    r = meta_get(o, u->uid, &m, &final);
    have = r > 0;
    body = dd_pod_outcome_json(u, have ? &m : NULL, o->node, (double)NAN);
    if (have)
        dd_pod_meta_release(&m);
    if (!body)
        return;
    text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
    /* the store keeps the body and the raw cgroup figures behind it */
    rec = json_pack("{s:O, s:{s:s, s:i, s:f, s:b, s:I, s:b, s:I, s:I}, s:b}", "outcome", body,
                    "cgroup", "uid", u->uid, "reads", (int)u->reads, "cpu_seconds", u->cpu_seconds,
                    "has_memory_peak", u->has_memory_peak, "memory_peak_bytes",
                    (json_int_t)u->memory_peak, "has_io", u->has_io, "read_bytes",
                    (json_int_t)u->read_bytes, "write_bytes", (json_int_t)u->write_bytes,
                    "metadata", have);
    rtext = rec ? json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(rec);
    if (b && rtext) {
        double fin = json_number_value(json_object_get(body, "finished_at"));
        uint64_t ts = isfinite(fin) && fin > 0 ? (uint64_t)(fin * 1000.0) : dd_wall_ms();
        const char *uid = json_string_value(json_object_get(body, "pod_uid"));
        (void)dd_store_batch_put_observation(b, ts, uid ? uid : u->uid, rtext, strlen(rtext));
    }
    free(rtext);
    json_decref(body);
    pthread_mutex_lock(&o->lock);
    o->outcomes++;
    if (!have)
        o->unposted[U_NO_METADATA]++;
    pthread_mutex_unlock(&o->lock);
    if (!text)
        return;
    dd_log_debug("pod %s: outcome %s", u->uid, text);
    if (!have || !o->client) {
        free(text);
        return;
    }
    enqueue(o, text);
}

static void log_skips(struct dd_observer *o, const struct dd_pods *pods)
{
    for (size_t i = 0; i < pods->n_skips; i++) {
        bool before = false;
        for (size_t j = 0; j < o->n_prev_skips && !before; j++)
            before = strcmp(o->prev_skips[j].uid, pods->skips[i].uid) == 0 &&
                     strcmp(o->prev_skips[j].reason, pods->skips[i].reason) == 0;
        if (!before)
            dd_log_warning("pod cgroup %s skipped: %s (its figures stay as last read)",
                           pods->skips[i].uid, pods->skips[i].reason);
    }
    dd_free(o->prev_skips);
    o->prev_skips = NULL;
    o->n_prev_skips = 0;
    if (pods->n_skips && (o->prev_skips = dd_calloc(pods->n_skips, sizeof(*o->prev_skips)))) {
        memcpy(o->prev_skips, pods->skips, pods->n_skips * sizeof(*o->prev_skips));
        o->n_prev_skips = pods->n_skips;
    }
}

void dd_observer_sampled(struct dd_observer *o, const struct dd_pods *pods, double dt,
                         uint64_t now_ms, struct dd_store_batch *b)
{
    struct dd_pod_usage *gone = NULL;
    size_t n_gone = 0;
    uint64_t now = dd_mono_ms();

    if (pods) {
        log_skips(o, pods);
        if (dd_pod_tracker_update(o->tracker, pods, dt, (double)now_ms / 1000.0, &gone, &n_gone) <
            0)
            n_gone = 0;
        for (size_t i = 0; i < n_gone; i++) {
            if (DD_ARRAY_RESERVE(o->wait, o->cap_wait, o->n_wait + 1) < 0) {
                finalise(o, &gone[i], b); /* no room to wait: now */
                continue;
            }
            o->wait[o->n_wait++] = (struct waiting){gone[i], now};
        }
        dd_free(gone);
        pthread_mutex_lock(&o->lock);
        o->skipped_cgroups += pods->skipped;
        o->tracked = dd_pod_tracker_count(o->tracker);
        pthread_mutex_unlock(&o->lock);
    }
    /* a gone pod is final once the watch says it ended (or there is no
     * watch), or when the grace period is over */
    for (size_t i = 0; i < o->n_wait;) {
        struct dd_pod_meta m;
        bool final = false;
        int r = o->have_kube ? meta_get(o, o->wait[i].u.uid, &m, &final) : 0;
        if (r > 0)
            dd_pod_meta_release(&m);
        if (!o->have_kube || final || (double)(now - o->wait[i].gone_ms) / 1000.0 >= o->grace_s) {
            finalise(o, &o->wait[i].u, b);
            o->wait[i] = o->wait[--o->n_wait];
            continue;
        }
        i++;
    }
}

/* ---- the poster ---- */

static void *poster_main(void *arg)
{
    struct dd_observer *o = arg;
    struct dd_dynbuf reply;
    unsigned backoff = 0, seed = (unsigned)dd_mono_ms() ^ 0x9e3779b9u;
    int logged = 0;

    dd_dynbuf_init(&reply, REPLY_MAX);
    pthread_mutex_lock(&o->lock);
    for (;;) {
        while (!o->stop && o->n == 0)
            pthread_cond_wait(&o->wake, &o->lock);
        if (o->stop)
            break;
        char *text = o->ring[o->head];
        o->ring[o->head] = NULL;
        o->head = (o->head + 1) % DD_OBSERVE_QUEUE_MAX;
        o->n--;
        pthread_mutex_unlock(&o->lock);

        char err[256] = "";
        int status = dd_http_client_call(o->client, "POST", "/v1/observations", text, &reply, err,
                                         sizeof(err));

        pthread_mutex_lock(&o->lock);
        if (status >= 200 && status < 300) {
            o->posted++;
            backoff = 0;
            if (logged != 0)
                dd_log_info("pod outcomes to %s: delivering again", o->url);
            logged = 0;
            free(text);
            continue;
        }
        if (status > 0)
            snprintf(err, sizeof(err), "HTTP %d: %.200s", status, dd_dynbuf_str(&reply));
        if (status != logged)
            dd_log_warning("pod outcome to %s/v1/observations: %s%s", o->url, err,
                           dd_push_retryable(status) ? "; retrying with backoff"
                                                     : "; outcome dropped");
        logged = status;
        if (!dd_push_retryable(status)) {
            o->unposted[U_REJECTED]++;
            free(text);
            continue;
        }
        o->failures++;
        if (o->n < DD_OBSERVE_QUEUE_MAX) { /* back at the front */
            o->head = (o->head + DD_OBSERVE_QUEUE_MAX - 1) % DD_OBSERVE_QUEUE_MAX;
            o->ring[o->head] = text;
            o->n++;
        } else {
            o->unposted[U_QUEUE_FULL]++;
            free(text);
        }
        backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
                          : BACKOFF_MIN_MS;
        if (dd_push_wait_ms(&o->wake, &o->lock, &o->stop, (uint64_t)rand_r(&seed) % (backoff + 1u)))
            break;
    }
    pthread_mutex_unlock(&o->lock);
    dd_dynbuf_free(&reply);
    return NULL;
}

void dd_observer_metrics(struct dd_observer *o, FILE *m)
{
    uint64_t refused;

    pthread_mutex_lock(&o->meta_lock);
    refused = o->meta_refused;
    pthread_mutex_unlock(&o->meta_lock);
    pthread_mutex_lock(&o->lock);
    fprintf(m,
            "# HELP dedupd_pods_observed Pod cgroups tracked on this node now.\n"
            "# TYPE dedupd_pods_observed gauge\ndedupd_pods_observed %zu\n"
            "# HELP dedupd_pod_outcomes_total Pod outcomes recorded (cgroup gone).\n"
            "# TYPE dedupd_pod_outcomes_total counter\ndedupd_pod_outcomes_total %llu\n"
            "# HELP dedupd_pod_outcomes_posted_total Pod outcomes the placement role accepted.\n"
            "# TYPE dedupd_pod_outcomes_posted_total counter\n"
            "dedupd_pod_outcomes_posted_total %llu\n"
            "# HELP dedupd_pod_outcomes_unposted_total Pod outcomes stored but not posted, by "
            "reason.\n"
            "# TYPE dedupd_pod_outcomes_unposted_total counter\n",
            o->tracked, (unsigned long long)o->outcomes, (unsigned long long)o->posted);
    for (size_t i = 0; i < U_COUNT; i++)
        fprintf(m, "dedupd_pod_outcomes_unposted_total{reason=\"%s\"} %llu\n", unposted_names[i],
                (unsigned long long)o->unposted[i]);
    fprintf(m,
            "# HELP dedupd_pod_outcome_queue_length Pod outcomes waiting to be posted.\n"
            "# TYPE dedupd_pod_outcome_queue_length gauge\ndedupd_pod_outcome_queue_length %zu\n"
            "# HELP dedupd_pod_cgroups_skipped_total Pod cgroup reads skipped (a file "
            "unreadable or malformed).\n"
            "# TYPE dedupd_pod_cgroups_skipped_total counter\n"
            "dedupd_pod_cgroups_skipped_total %llu\n"
            "# HELP dedupd_pod_metadata_refused_total Pods from the watch that could not be "
            "decoded.\n"
            "# TYPE dedupd_pod_metadata_refused_total counter\n"
            "dedupd_pod_metadata_refused_total %llu\n",
            o->n, (unsigned long long)o->skipped_cgroups, (unsigned long long)refused);
    pthread_mutex_unlock(&o->lock);
}
