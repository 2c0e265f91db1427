/*
 * Pod events (podevents.h). The request side takes the mutex for a hash
 * lookup (claim) and a copy into the ring (submit); everything else (the
 * message, the JSON, the HTTP call, the token) is the sender thread's. The
 * dedupe table is a jansson object (uid -> claim time); when it passes
 * DEDUPE_MAX entries the expired ones are pruned, and when none are it is
 * cleared (a pod then may get a second event early: harmless).
 */
#define _GNU_SOURCE
#include "dedupd/podevents.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/common.h"
#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "dedupd/kubeclient.h"

#define MAX_REPLY  (1u << 20) /* an Event echoed back: a few KB */
#define DEDUPE_MAX 65536      /* pods remembered; ~100 bytes each */

enum { OUT_SENT, OUT_DROPPED, OUT_FAILED, OUT_STANDBY, OUT_COUNT };
static const char *const out_names[OUT_COUNT] = {"sent", "dropped_queue_full", "failed", "standby"};

struct dd_podevents {
    struct dd_podevents_config cfg;
    bool (*is_leader)(void *ud);
    void *leader_ud;
    atomic_bool stop;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* under lock */
    struct dd_pod_event *ring;
    size_t cap, head, n;
    json_t *seen; /* uid -> claim time (ms, monotonic) */
    /* the thread's own */
    struct dd_kubeclient kc; /* the API server connection and its token */
    double tokens;
    uint64_t tokens_ms, seq;
    char last_error[256];
    /* atomic counters */
    uint64_t outcomes[OUT_COUNT], deduped, queued;
};

static bool cancelled(void *ud)
{
    struct dd_podevents *p = ud;
    return atomic_load(&p->stop);
}

static void add(uint64_t *c, uint64_t n)
{
    __atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static void failed(struct dd_podevents *p, const char *fmt, ...) _dd_printf_(2, 3);
static void failed(struct dd_podevents *p, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    add(&p->outcomes[OUT_FAILED], 1);
    if (strcmp(msg, p->last_error) != 0) {
        dd_log_warning("pod events: %s", msg);
        snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
    } else {
        dd_log_debug("pod events: %s", msg);
    }
}

int dd_podevents_new(const struct dd_podevents_config *c, bool (*is_leader)(void *ud),
                     void *leader_ud, struct dd_podevents **ret, char *errbuf, size_t errlen)
{
    struct dd_podevents *p;
    pthread_condattr_t ca;
    int r;

    if (!c->src.url[0]) {
        snprintf(errbuf, errlen,
                 "--pod-events needs the Kubernetes API (--kube-api, or in-cluster in a pod)");
        return DD_E_USAGE;
    }
    if (!(c->qps > 0) || !(c->burst >= 1) || !(c->window_s >= 0)) {
        snprintf(errbuf, errlen,
                 "--pod-events: expected qps (%g) above 0, burst (%g) at least 1 and a window "
                 "(%g s) of at least 0",
                 c->qps, c->burst, c->window_s);
        return DD_E_USAGE;
    }
    if (!(p = dd_calloc(1, sizeof(*p))))
        return -ENOMEM;
    p->cfg = *c;
    p->is_leader = is_leader;
    p->leader_ud = leader_ud;
    p->cap = c->queue ? c->queue : 256;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (!(p->ring = dd_calloc(p->cap, sizeof(*p->ring))) || !(p->seen = json_object())) {
        dd_podevents_free(p);
        return -ENOMEM;
    }
    struct dd_kubeclient_config kcc = {
        .src = &c->src,
        .what = "pod events",
        .token_reread_s = c->token_reread_s,
        .connect_timeout_ms = 5000,
        .timeout_ms = 10000,
        .cancel = cancelled,
        .cancel_ud = p,
    };
    if ((r = dd_kubeclient_init(&p->kc, &kcc, errbuf, errlen)) < 0) {
        dd_podevents_free(p);
        return r;
    }
    p->tokens = c->burst;
    p->tokens_ms = dd_mono_ms();
    *ret = p;
    return 0;
}

/* ---- the request side ---- */

bool dd_podevents_claim(struct dd_podevents *p, const char *uid, uint64_t now_ms)
{
    uint64_t window = (uint64_t)(p->cfg.window_s * 1000.0);
    bool fresh = true;
    if (!uid || !uid[0])
        return false; /* nothing to name the pod by */
    pthread_mutex_lock(&p->lock);
    json_t *t = json_object_get(p->seen, uid);
    if (t && now_ms - (uint64_t)json_integer_value(t) < window) {
        fresh = false;
    } else {
        if (!t && json_object_size(p->seen) >= DEDUPE_MAX) {
            const char *k;
            void *tmp;
            json_t *v;
            json_object_foreach_safe(p->seen, tmp, k, v)
            {
                if (now_ms - (uint64_t)json_integer_value(v) >= window)
                    json_object_del(p->seen, k);
            }
            if (json_object_size(p->seen) >= DEDUPE_MAX)
                json_object_clear(p->seen);
        }
        json_object_set_new(p->seen, uid, json_integer((json_int_t)now_ms));
    }
    pthread_mutex_unlock(&p->lock);
    if (!fresh)
        add(&p->deduped, 1);
    return fresh;
}

void dd_podevents_submit(struct dd_podevents *p, const struct dd_pod_event *e)
{
    bool full;
    pthread_mutex_lock(&p->lock);
    full = p->n == p->cap;
    if (!full) {
        p->ring[(p->head + p->n) % p->cap] = *e;
        p->n++;
        __atomic_store_n(&p->queued, p->n, __ATOMIC_RELAXED);
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->lock);
    if (full)
        add(&p->outcomes[OUT_DROPPED], 1);
}

/* ---- the message ---- */

struct msg {
    char *buf;
    size_t len, used;
};

static void put(struct msg *m, const char *fmt, ...) _dd_printf_(2, 3);
static void put(struct msg *m, const char *fmt, ...)
{
    va_list ap;
    if (m->used + 1 >= m->len)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(m->buf + m->used, m->len - m->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        m->used = m->used + (size_t)n < m->len ? m->used + (size_t)n : m->len - 1;
}

static void put_slowdown(struct msg *m, double s)
{
    if (isinf(s))
        put(m, "not enough free GPUs");
    else if (isfinite(s))
        put(m, "predicted I/O slowdown %.1f%%", s);
    else
        put(m, "slowdown unknown");
}

static void put_pct(struct msg *m, const char *what, double v)
{
    if (isfinite(v))
        put(m, "%s %.1f%%", what, v);
    else
        put(m, "%s n/a", what);
}

void dd_pod_event_message(const struct dd_pod_event *e, char *buf, size_t len)
{
    size_t cap = len < DD_POD_EVENT_MAX_MESSAGE ? len : DD_POD_EVENT_MAX_MESSAGE;
    struct msg m = {buf, cap, 0};
    if (!cap)
        return;
    buf[0] = '\0';
    if (e->shadow)
        put(&m, "shadow mode (answered neutral); would prefer ");
    if (e->has_best) {
        put(&m, "%sbest node %s score %d (", e->shadow ? "" : "chose ", e->best.name,
            e->best.score);
        put_slowdown(&m, e->best.slowdown_percent);
        put(&m, ")");
        if (e->has_second) {
            put(&m, "; runner-up %s score %d (", e->second.name, e->second.score);
            put_slowdown(&m, e->second.slowdown_percent);
            put(&m, ")");
        } else {
            put(&m, "; no runner-up");
        }
        put(&m, "; terms on %s: ", e->best.name);
        put_pct(&m, "CPU stretch", e->cpu_stretch);
        put_pct(&m, ", device stretch", e->device_stretch);
        put_pct(&m, ", latency stretch", e->latency_stretch);
        if (isfinite(e->report_age_s))
            put(&m, "; report age %.0fs%s", e->report_age_s, e->stale ? " (stale)" : "");
        put(&m, "; model %s v%llu", e->model_source[0] ? e->model_source : "unknown",
            (unsigned long long)e->model_version);
        put(&m, "; ledger entries %d", e->ledger_entries);
    } else {
        put(&m, "no node scored (%s)", e->neutral_reason[0] ? e->neutral_reason : "neutral");
    }
    put(&m, "; nodes %u: %u scored, %u neutral", e->nodes, e->scored, e->neutral);
    unsigned nf = 0;
    for (int i = 0; i < DD_FR_COUNT; i++)
        nf += e->filtered[i];
    if (nf) {
        bool first = true;
        put(&m, ", %u filtered (", nf);
        for (int i = 0; i < DD_FR_COUNT; i++)
            if (e->filtered[i]) {
                put(&m, "%s%s %u", first ? "" : ", ", dd_filter_reason_names[i], e->filtered[i]);
                first = false;
            }
        put(&m, ")");
    }
}

/* ---- the sender ---- */

static void rfc3339(uint64_t wall_ms, char *buf, size_t len)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *event_json(struct dd_podevents *p, const struct dd_pod_event *e)
{
    char msg[DD_POD_EVENT_MAX_MESSAGE], name[DD_NAME_MAX], ts[32];
    uint64_t wall = dd_wall_ms();
    /* client-go names events NAME.<hex unix nanoseconds>; ours add a
     * sequence so two in one millisecond differ. A name stays a DNS
     * subdomain (<= 253): the pod's part is cut when needed. */
    snprintf(name, sizeof(name), "%.220s.%llx%04llx", e->name, (unsigned long long)wall,
             (unsigned long long)(p->seq++ & 0xffff));
    dd_pod_event_message(e, msg, sizeof(msg));
    rfc3339(wall, ts, sizeof(ts));
    json_t *ev = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:{s:s}, s:s, "
        "s:s, s:s, s:s, s:i, s:s}",
        "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace", e->ns,
        "involvedObject", "apiVersion", "v1", "kind", "Pod", "namespace", e->ns, "name", e->name,
        "uid", e->uid, "reason", e->shadow ? DD_POD_EVENT_REASON_SHADOW : DD_POD_EVENT_REASON,
        "message", msg, "type", "Normal", "source", "component", DD_POD_EVENT_COMPONENT,
        "reportingComponent", DD_POD_EVENT_COMPONENT, "action", "Scheduling", "firstTimestamp", ts,
        "lastTimestamp", ts, "count", 1, "reportingInstance", p->cfg.instance);
    if (ev && !p->cfg.instance[0])
        json_object_del(ev, "reportingInstance");
    return ev;
}

/* Waits for a write token; false when stopping. */
static bool take_token(struct dd_podevents *p)
{
    for (;;) {
        uint64_t now = dd_mono_ms();
        p->tokens =
            fmin(p->cfg.burst, p->tokens + (double)(now - p->tokens_ms) / 1000.0 * p->cfg.qps);
        p->tokens_ms = now;
        if (p->tokens >= 1) {
            p->tokens -= 1;
            return true;
        }
        uint64_t wait = (uint64_t)ceil((1 - p->tokens) / p->cfg.qps * 1000.0);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (wait % 1000) * 1000000u;
        ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&p->lock);
        if (!atomic_load(&p->stop))
            pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        pthread_mutex_unlock(&p->lock);
        if (atomic_load(&p->stop))
            return false;
    }
}

static void send_one(struct dd_podevents *p, const struct dd_pod_event *e)
{
    char path[1024], err[512];
    struct dd_dynbuf reply;
    char *ens;
    int st;

    if (p->is_leader && !p->is_leader(p->leader_ud)) {
        add(&p->outcomes[OUT_STANDBY], 1);
        return;
    }
    if (!take_token(p))
        return;
    dd_kubeclient_refresh(&p->kc, false);
    json_t *ev = event_json(p, e);
    char *body = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!body || !(ens = dd_http_client_escape(e->ns))) {
        free(body);
        failed(p, "out of memory");
        return;
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ens);
    dd_free(ens);
    dd_dynbuf_init(&reply, MAX_REPLY);
    st = dd_http_client_call(p->kc.client, "POST", path, body, &reply, err, sizeof(err));
    free(body);
    if (st == 200 || st == 201) {
        add(&p->outcomes[OUT_SENT], 1);
    } else if (st < 0) {
        if (!cancelled(p))
            failed(p, "%s", err);
    } else {
        json_t *doc = json_loadb(dd_dynbuf_str(&reply), dd_dynbuf_len(&reply), 0, NULL);
        const char *m = json_string_value(json_object_get(doc, "message"));
        failed(p, "POST %.300s (pod %.100s/%.100s): HTTP %d %.200s", path, e->ns, e->name, st,
               m ? m : "");
        json_decref(doc);
        if (st == 401)
            dd_kubeclient_refresh(&p->kc, true);
    }
    dd_dynbuf_free(&reply);
}

static void *run(void *arg)
{
    struct dd_podevents *p = arg;
    for (;;) {
        struct dd_pod_event e;
        pthread_mutex_lock(&p->lock);
        while (!atomic_load(&p->stop) && p->n == 0)
            pthread_cond_wait(&p->wake, &p->lock);
        if (atomic_load(&p->stop)) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        e = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->n--;
        __atomic_store_n(&p->queued, p->n, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&p->lock);
        send_one(p, &e);
    }
    return NULL;
}

int dd_podevents_start(struct dd_podevents *p)
{
    if (pthread_create(&p->thread, NULL, run, p) != 0)
        return -EAGAIN;
    p->started = true;
    return 0;
}

struct dd_podevents *dd_podevents_free(struct dd_podevents *p)
{
    if (!p)
        return NULL;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (p->started)
        pthread_join(p->thread, NULL);
    dd_kubeclient_release(&p->kc);
    dd_free(p->ring);
    json_decref(p->seen);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    dd_free(p);
    return NULL;
}

void dd_podevents_metrics(struct dd_podevents *p, FILE *m)
{
    fputs("# HELP dedupd_pod_events_total Pod events (--pod-events) by outcome.\n"
          "# TYPE dedupd_pod_events_total counter\n",
          m);
    for (int i = 0; i < OUT_COUNT; i++)
        fprintf(m, "dedupd_pod_events_total{outcome=\"%s\"} %llu\n", out_names[i],
                (unsigned long long)get(&p->outcomes[i]));
    fprintf(m,
            "# HELP dedupd_pod_events_deduped_total Prioritize calls without an event: the pod "
            "had one within the window.\n# TYPE dedupd_pod_events_deduped_total counter\n"
            "dedupd_pod_events_deduped_total %llu\n"
            "# HELP dedupd_pod_events_queued Pod events waiting for the sender.\n"
            "# TYPE dedupd_pod_events_queued gauge\ndedupd_pod_events_queued %llu\n",
            (unsigned long long)get(&p->deduped), (unsigned long long)get(&p->queued));
}
