/*
 * The CSIStorageCapacity publisher (capacitypub.h). The thread owns the
 * HTTP client, the token and the table of objects listed; the decisions
 * (which writes, under which rule) are csi/publish's, the figures are
 * dedupd/api/csi.c's (the same rule as GET /v1/csi/capacity). The rest of
 * the daemon reads only the atomic counters.
 */
#define _GNU_SOURCE
#include "dedupd/capacitypub.h"

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
#include "dedupd/api/api.h"
#include "dedupd/http/client.h"
#include "dedupd/kubeclient.h"
#include "placement/kube.h"

#define MAX_REPLY        (64u << 20) /* a list page of 500 objects is ~300 KB; room to spare */
#define LIST_LIMIT       500
#define CONFLICT_RETRIES 3

struct obj {
    char name[DD_NAME_MAX], rv[DD_KUBE_MAX_RV];
    char node[DD_NAME_MAX], cls[DD_NAME_MAX];
    bool shaped, has_c, has_m, dead;
    int64_t c, m;
    uint64_t written_ms; /* the pass that wrote it (monotonic); 0: never by this leadership */
};

struct wrow {
    char node[DD_NAME_MAX], cls[DD_NAME_MAX], driver[DD_NAME_MAX];
    int64_t available, maximum;
};

enum { OP_CREATE, OP_UPDATE, OP_DELETE, OP_COUNT };

struct dd_capacitypub {
    struct dd_capacitypub_config cfg;
    struct dd_capacitypub_hooks hooks;
    atomic_bool stop;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* the thread's own */
    struct dd_kubeclient kc; /* the API server connection and its token */
    char coll_path[1024];
    char owner_path[1024], owner_kind[64], owner_api[32], owner_name[DD_NAME_MAX];
    json_t *owner_ref; /* NULL until read */
    struct obj *objs;
    size_t n_objs, cap_objs;
    bool listed;
    uint64_t listed_ms, leader_since_ms;
    uint64_t pass_ms; /* the pass's start: what written_ms records, so an object
                       * written late in one pass may be rewritten in the next */
    double tokens;
    uint64_t tokens_ms;
    char last_error[256];
    /* atomic counters */
    uint64_t writes[OP_COUNT], conflicts, errors, coalesced, deferred, throttled, passes;
    uint64_t objects, pass_us, skipped;
};

static bool cancelled(void *ud)
{
    struct dd_capacitypub *p = ud;
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

/* A failure: counted, logged at warning when its text changes. */
static void failed(struct dd_capacitypub *p, const char *fmt, ...) _dd_printf_(2, 3);
static void failed(struct dd_capacitypub *p, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    add(&p->errors, 1);
    if (strcmp(msg, p->last_error) != 0) {
        dd_log_warning("capacity publisher: %s", msg);
        snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
    } else {
        dd_log_debug("capacity publisher: %s", msg);
    }
}

/* method path [body] -> status; *doc the parsed reply (NULL if none). */
static int call(struct dd_capacitypub *p, const char *method, const char *path, json_t *body,
                json_t **doc)
{
    struct dd_dynbuf reply;
    char err[512], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int st;

    *doc = NULL;
    if (body && !text)
        return -ENOMEM;
    dd_dynbuf_init(&reply, MAX_REPLY);
    st = dd_http_client_call(p->kc.client, method, path, text, &reply, err, sizeof(err));
    free(text);
    if (st < 0) {
        if (!cancelled(p))
            failed(p, "%s", err);
    } else {
        *doc = json_loadb(dd_dynbuf_str(&reply), dd_dynbuf_len(&reply), 0, NULL);
        if (st == 401)
            dd_kubeclient_refresh(&p->kc, true);
        if (st >= 300 && st != 404 && st != 409) {
            const char *m = json_string_value(json_object_get(*doc, "message"));
            failed(p, "%s %.300s: HTTP %d %.200s", method, path, st, m ? m : "");
        }
    }
    dd_dynbuf_free(&reply);
    return st;
}

/* prefix/namespaces/NS/KIND[/NAME], the names escaped; false when too long. */
static bool api_path(char *buf, size_t len, const char *prefix, const char *ns, const char *kind,
                     const char *name)
{
    char *ens = dd_http_client_escape(ns), *ename = name ? dd_http_client_escape(name) : NULL;
    int n = ens && (!name || ename) ? snprintf(buf, len, "%s/namespaces/%s/%s%s%s", prefix, ens,
                                               kind, name ? "/" : "", name ? ename : "")
                                    : -1;
    dd_free(ens);
    dd_free(ename);
    return n > 0 && (size_t)n < len;
}

static const struct {
    const char *kind, *api, *prefix, *resource;
} owner_kinds[] = {
    {"Deployment", "apps/v1", "/apis/apps/v1", "deployments"},
    {"ReplicaSet", "apps/v1", "/apis/apps/v1", "replicasets"},
    {"StatefulSet", "apps/v1", "/apis/apps/v1", "statefulsets"},
    {"Pod", "v1", "/api/v1", "pods"},
};

int dd_capacitypub_new(const struct dd_capacitypub_config *c, const struct dd_capacitypub_hooks *h,
                       struct dd_capacitypub **ret, char *errbuf, size_t errlen)
{
    struct dd_capacitypub *p;
    pthread_condattr_t ca;
    int r;

    if (!c->src.url[0] || !c->ns[0] || !c->node_key[0] || !h->csi) {
        snprintf(errbuf, errlen,
                 "--publish-capacity needs the Kubernetes API (--kube-api, or in-cluster in a "
                 "pod), a namespace and a node key");
        return DD_E_USAGE;
    }
    if (!(c->interval_s > 0) || !(c->qps > 0) || !(c->burst >= 1)) {
        snprintf(errbuf, errlen,
                 "--publish-capacity: expected an interval (%g s) and qps (%g) above 0, burst "
                 "(%g) at least 1",
                 c->interval_s, c->qps, c->burst);
        return DD_E_USAGE;
    }
    if (!(p = dd_calloc(1, sizeof(*p))))
        return -ENOMEM;
    p->cfg = *c;
    p->hooks = *h;
    p->cfg.opts.min_interval_ms = (uint64_t)(c->interval_s * 1000.0);
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (!api_path(p->coll_path, sizeof(p->coll_path), DD_CSI_PUB_API, c->ns, "csistoragecapacities",
                  NULL)) {
        snprintf(errbuf, errlen, "--publish-capacity-namespace: too long");
        dd_capacitypub_free(p);
        return DD_E_USAGE;
    }
    if (c->owner[0]) {
        const char *slash = strchr(c->owner, '/');
        size_t i = DD_ARRAY_SIZE(owner_kinds);
        if (slash && slash[1] && !strchr(slash + 1, '/'))
            for (i = 0; i < DD_ARRAY_SIZE(owner_kinds); i++)
                if (strlen(owner_kinds[i].kind) == (size_t)(slash - c->owner) &&
                    strncmp(owner_kinds[i].kind, c->owner, (size_t)(slash - c->owner)) == 0)
                    break;
        if (i == DD_ARRAY_SIZE(owner_kinds) || strlen(slash + 1) >= sizeof(p->owner_name) ||
            !api_path(p->owner_path, sizeof(p->owner_path), owner_kinds[i].prefix, c->ns,
                      owner_kinds[i].resource, slash + 1)) {
            snprintf(errbuf, errlen,
                     "--publish-capacity-owner '%.200s': expected KIND/NAME, KIND one of "
                     "Deployment, ReplicaSet, StatefulSet, Pod (in the publishing namespace)",
                     c->owner);
            dd_capacitypub_free(p);
            return DD_E_USAGE;
        }
        snprintf(p->owner_kind, sizeof(p->owner_kind), "%s", owner_kinds[i].kind);
        snprintf(p->owner_api, sizeof(p->owner_api), "%s", owner_kinds[i].api);
        snprintf(p->owner_name, sizeof(p->owner_name), "%s", slash + 1);
    }
    struct dd_kubeclient_config kcc = {
        .src = &c->src,
        .what = "capacity publisher",
        .token_reread_s = c->token_reread_s,
        .connect_timeout_ms = 5000,
        .timeout_ms = 30000,
        .cancel = cancelled,
        .cancel_ud = p,
    };
    if ((r = dd_kubeclient_init(&p->kc, &kcc, errbuf, errlen)) < 0) {
        dd_capacitypub_free(p);
        return r;
    }
    p->tokens = c->burst;
    p->tokens_ms = dd_mono_ms();
    *ret = p;
    return 0;
}

/* ---- the table of objects ---- */

static void forget_all(struct dd_capacitypub *p)
{
    p->n_objs = 0;
    p->listed = false;
    __atomic_store_n(&p->objects, 0, __ATOMIC_RELAXED);
}

static bool copy_str(char *dst, size_t len, const char *s)
{
    if (!s || strlen(s) >= len)
        return false;
    memcpy(dst, s, strlen(s) + 1);
    return true;
}

/* An object as the server holds it into o; false when it is unusable. */
static bool obj_from(struct dd_capacitypub *p, const json_t *doc, struct obj *o)
{
    struct dd_csi_pub_have h;
    char err[256];
    if (dd_csi_pub_decode(doc, p->cfg.node_key, &h, err, sizeof(err)) < 0)
        return false;
    memset(o, 0, sizeof(*o));
    if (!copy_str(o->name, sizeof(o->name), h.name) ||
        !copy_str(o->rv, sizeof(o->rv), h.resource_version))
        return false;
    o->shaped = h.node && copy_str(o->node, sizeof(o->node), h.node) &&
                copy_str(o->cls, sizeof(o->cls), h.storage_class);
    o->has_c = h.has_capacity;
    o->has_m = h.has_maximum;
    o->c = h.capacity;
    o->m = h.maximum;
    return true;
}

static struct obj *obj_add(struct dd_capacitypub *p)
{
    if (p->n_objs == p->cap_objs && DD_ARRAY_RESERVE(p->objs, p->cap_objs, p->n_objs + 1) < 0)
        return NULL;
    return &p->objs[p->n_objs++];
}

/* Lists our objects into the table (pages; an expired continue token starts over). */
static int list(struct dd_capacitypub *p)
{
    char path[2048], *cont = NULL;
    int restarts = 0;

    p->n_objs = 0;
    for (;;) {
        json_t *doc;
        char *ec = cont ? dd_http_client_escape(cont) : NULL;
        snprintf(path, sizeof(path), "%s?labelSelector=%s%%3D%s&limit=%d%s%s", p->coll_path,
                 "csi.storage.k8s.io%2Fmanaged-by", DD_CSI_PUB_MANAGED_BY, LIST_LIMIT,
                 ec ? "&continue=" : "", ec ? ec : "");
        dd_free(ec);
        int st = call(p, "GET", path, NULL, &doc);
        if (st == 410 && cont && restarts++ < 3) { /* the token expired: again */
            json_decref(doc);
            dd_free(cont);
            cont = NULL;
            p->n_objs = 0;
            continue;
        }
        if (st != 200 || !json_is_array(json_object_get(doc, "items"))) {
            if (st == 200)
                failed(p, "GET %.300s: not a list", p->coll_path);
            json_decref(doc);
            dd_free(cont);
            p->n_objs = 0;
            return -EIO;
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(doc, "items"), i, it)
        {
            struct obj o, *slot;
            if (!obj_from(p, it, &o))
                continue; /* no name or version: nothing a write could name */
            if (!(slot = obj_add(p))) {
                json_decref(doc);
                dd_free(cont);
                return -ENOMEM;
            }
            *slot = o;
        }
        const char *next =
            json_string_value(json_object_get(json_object_get(doc, "metadata"), "continue"));
        dd_free(cont);
        cont = next && next[0] ? dd_strdup(next) : NULL;
        json_decref(doc);
        if (!cont)
            break;
    }
    p->listed = true;
    p->listed_ms = dd_mono_ms();
    __atomic_store_n(&p->objects, p->n_objs, __ATOMIC_RELAXED);
    return 0;
}

/* The owner's uid, read once. */
static int owner_resolve(struct dd_capacitypub *p)
{
    json_t *doc;
    if (!p->owner_path[0] || p->owner_ref)
        return 0;
    int st = call(p, "GET", p->owner_path, NULL, &doc);
    const char *uid = json_string_value(json_object_get(json_object_get(doc, "metadata"), "uid"));
    if (st != 200 || !uid || !uid[0]) {
        if (st == 404)
            failed(p, "owner %s/%s not found in namespace %s: nothing is written", p->owner_kind,
                   p->owner_name, p->cfg.ns);
        json_decref(doc);
        return -ENOENT;
    }
    p->owner_ref = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", p->owner_api, "kind",
                             p->owner_kind, "name", p->owner_name, "uid", uid);
    json_decref(doc);
    return p->owner_ref ? 0 : -ENOMEM;
}

/* ---- the rate limit ---- */

/* Waits for a write token until deadline (monotonic ms); false: none in
 * time, or stopping. */
static bool take_token(struct dd_capacitypub *p, uint64_t deadline)
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
        if (now + wait > deadline || atomic_load(&p->stop))
            return false;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (wait % 1000) * 1000000u;
        ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&p->lock);
        if (!atomic_load(&p->stop))
            pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        pthread_mutex_unlock(&p->lock);
    }
}

/* ---- writes ---- */

static void obj_set_values(struct dd_capacitypub *p, struct obj *o, const struct dd_csi_pub_want *w)
{
    o->has_c = o->has_m = true;
    o->c = w->capacity;
    o->m = w->maximum;
    o->written_ms = p->pass_ms;
}

static int do_create(struct dd_capacitypub *p, const struct dd_csi_pub_want *w)
{
    json_t *doc, *body = dd_csi_pub_object(w, p->cfg.node_key, p->cfg.ns, NULL, NULL, p->owner_ref);
    struct obj o, *slot;
    if (!body)
        return -ENOMEM;
    int st = call(p, "POST", p->coll_path, body, &doc);
    json_decref(body);
    if ((st == 200 || st == 201) && obj_from(p, doc, &o) && (slot = obj_add(p))) {
        *slot = o;
        obj_set_values(p, slot, w);
        add(&p->writes[OP_CREATE], 1);
    } else if (st == 200 || st == 201) {
        failed(p, "POST %.300s: the answer names no object", p->coll_path);
    }
    json_decref(doc);
    return st;
}

static int do_update(struct dd_capacitypub *p, const struct dd_csi_pub_want *w, struct obj *o)
{
    char path[1400];
    int st = -EIO;
    if (!api_path(path, sizeof(path), DD_CSI_PUB_API, p->cfg.ns, "csistoragecapacities", o->name))
        return -ENAMETOOLONG;
    for (int tries = 0; tries < CONFLICT_RETRIES; tries++) {
        json_t *doc,
            *body = dd_csi_pub_object(w, p->cfg.node_key, p->cfg.ns, o->name, o->rv, p->owner_ref);
        if (!body)
            return -ENOMEM;
        st = call(p, "PUT", path, body, &doc);
        json_decref(body);
        if (st == 200) {
            struct obj n;
            if (obj_from(p, doc, &n))
                snprintf(o->rv, sizeof(o->rv), "%s", n.rv);
            obj_set_values(p, o, w);
            add(&p->writes[OP_UPDATE], 1);
            json_decref(doc);
            return st;
        }
        json_decref(doc);
        if (st == 404) { /* gone meanwhile: created again next pass */
            o->dead = true;
            return st;
        }
        if (st != 409)
            return st;
        /* another writer got there first: read the version and try again */
        add(&p->conflicts, 1);
        st = call(p, "GET", path, NULL, &doc);
        struct obj n;
        if (st == 404) {
            o->dead = true;
            json_decref(doc);
            return st;
        }
        if (st != 200 || !obj_from(p, doc, &n)) {
            json_decref(doc);
            return st;
        }
        snprintf(o->rv, sizeof(o->rv), "%s", n.rv);
        json_decref(doc);
    }
    return st;
}

static int do_delete(struct dd_capacitypub *p, struct obj *o)
{
    char path[1400];
    json_t *doc;
    if (!api_path(path, sizeof(path), DD_CSI_PUB_API, p->cfg.ns, "csistoragecapacities", o->name))
        return -ENAMETOOLONG;
    int st = call(p, "DELETE", path, NULL, &doc);
    json_decref(doc);
    if (st == 200 || st == 202 || st == 404) {
        o->dead = true;
        if (st != 404)
            add(&p->writes[OP_DELETE], 1);
    }
    return st;
}

/* ---- one pass ---- */

struct wants {
    struct wrow *rows;
    size_t n, cap;
    bool oom;
};

static void on_capacity(void *ctx, const char *node, const struct dd_kube_class *cls,
                        int64_t available, int64_t maximum)
{
    struct wants *x = ctx;
    if (x->n == x->cap && DD_ARRAY_RESERVE(x->rows, x->cap, x->n + 1) < 0) {
        x->oom = true;
        return;
    }
    struct wrow *r = &x->rows[x->n++];
    snprintf(r->node, sizeof(r->node), "%s", node);
    snprintf(r->cls, sizeof(r->cls), "%s", cls->name);
    snprintf(r->driver, sizeof(r->driver), "%s", cls->provisioner);
    r->available = available;
    r->maximum = maximum;
}

static void pass(struct dd_capacitypub *p, uint64_t deadline)
{
    const struct dd_capacitypub_hooks *h = &p->hooks;
    struct wants ws = {0};
    struct dd_csi_pub_want *want = NULL;
    struct dd_csi_pub_have *have = NULL;
    struct dd_csi_pub_plan plan = {0};
    uint64_t now = dd_mono_ms(), t0 = now;
    double relist = p->cfg.relist_s > 0 ? p->cfg.relist_s : 10 * p->cfg.interval_s;
    size_t k = 0;
    int r;

    add(&p->passes, 1); /* standby passes too: they show the thread runs */
    if (h->is_leader && !h->is_leader(h->leader_ud)) {
        if (p->listed || p->n_objs)
            forget_all(p);
        p->leader_since_ms = 0;
        return;
    }
    p->pass_ms = now;
    if (!p->leader_since_ms)
        p->leader_since_ms = now;
    if ((h->ready && !h->ready(h->ready_ud)) ||
        now - p->leader_since_ms < (uint64_t)(p->cfg.interval_s * 1000.0))
        return;
    dd_kubeclient_refresh(&p->kc, false);
    if (owner_resolve(p) < 0)
        return;
    if ((!p->listed || now - p->listed_ms >= (uint64_t)(relist * 1000.0)) && list(p) < 0)
        return;
    r = dd_csi_api_node_capacities(h->csi, on_capacity, &ws);
    if (r < 0 || ws.oom) {
        failed(p, "the capacities: %s", dd_strerror(r < 0 ? r : -ENOMEM));
        goto out;
    }
    want = dd_calloc(ws.n ? ws.n : 1, sizeof(*want));
    have = dd_calloc(p->n_objs ? p->n_objs : 1, sizeof(*have));
    if (!want || !have)
        goto out;
    for (size_t i = 0; i < ws.n; i++)
        want[i] = (struct dd_csi_pub_want){ws.rows[i].node, ws.rows[i].cls, ws.rows[i].driver,
                                           ws.rows[i].available, ws.rows[i].maximum};
    for (size_t i = 0; i < p->n_objs; i++) {
        const struct obj *o = &p->objs[i];
        have[i] = (struct dd_csi_pub_have){o->name,
                                           o->rv,
                                           o->shaped ? o->node : NULL,
                                           o->shaped ? o->cls : NULL,
                                           o->has_c,
                                           o->has_m,
                                           o->c,
                                           o->m,
                                           o->written_ms};
    }
    if (dd_csi_pub_plan(&p->cfg.opts, want, ws.n, have, p->n_objs, now, &plan) < 0)
        goto out;
    add(&p->coalesced, plan.coalesced);
    add(&p->deferred, plan.deferred);
    __atomic_store_n(&p->skipped, plan.skipped, __ATOMIC_RELAXED);
    /* the table grows with creates: the plan's have indices stay valid
     * (objects are only appended, and marked dead, during the writes) */
    for (size_t i = 0; i < plan.n && !atomic_load(&p->stop); i++) {
        const struct dd_csi_pub_action *a = &plan.actions[i];
        if (!take_token(p, deadline)) {
            add(&p->throttled, plan.n - i);
            break;
        }
        int st = a->op == DD_CSI_PUB_CREATE   ? do_create(p, &want[a->want])
                 : a->op == DD_CSI_PUB_UPDATE ? do_update(p, &want[a->want], &p->objs[a->have])
                                              : do_delete(p, &p->objs[a->have]);
        if (st == -ENOMEM)
            break;
    }
    /* drop what was deleted or vanished */
    for (size_t i = 0; i < p->n_objs; i++)
        if (!p->objs[i].dead)
            p->objs[k++] = p->objs[i];
    p->n_objs = k;
    __atomic_store_n(&p->objects, p->n_objs, __ATOMIC_RELAXED);
out:
    dd_csi_pub_plan_release(&plan);
    dd_free(want);
    dd_free(have);
    dd_free(ws.rows);
    __atomic_store_n(&p->pass_us, (dd_mono_ms() - t0) * 1000u, __ATOMIC_RELAXED);
}

static void *run(void *arg)
{
    struct dd_capacitypub *p = arg;
    uint64_t period = (uint64_t)(p->cfg.interval_s * 1000.0);
    if (period < 1)
        period = 1;
    while (!atomic_load(&p->stop)) {
        uint64_t start = dd_mono_ms(), next = start + period;
        pass(p, next);
        pthread_mutex_lock(&p->lock);
        while (!atomic_load(&p->stop) && dd_mono_ms() < next) {
            struct timespec ts;
            uint64_t left = next - dd_mono_ms();
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (left % 1000) * 1000000u;
            ts.tv_sec += (time_t)(left / 1000 + ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        }
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

int dd_capacitypub_start(struct dd_capacitypub *p)
{
    if (pthread_create(&p->thread, NULL, run, p) != 0)
        return -EAGAIN;
    p->started = true;
    return 0;
}

struct dd_capacitypub *dd_capacitypub_free(struct dd_capacitypub *p)
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
    json_decref(p->owner_ref);
    dd_free(p->objs);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    dd_free(p);
    return NULL;
}

void dd_capacitypub_metrics(struct dd_capacitypub *p, FILE *m)
{
    static const char *const ops[OP_COUNT] = {"create", "update", "delete"};
    fputs("# HELP dedupd_capacity_publish_writes_total CSIStorageCapacity writes accepted by the "
          "API server, by operation.\n# TYPE dedupd_capacity_publish_writes_total counter\n",
          m);
    for (int i = 0; i < OP_COUNT; i++)
        fprintf(m, "dedupd_capacity_publish_writes_total{op=\"%s\"} %llu\n", ops[i],
                (unsigned long long)get(&p->writes[i]));
    const struct {
        const char *name, *type, *help;
        uint64_t v;
    } rows[] = {
        {"conflicts_total", "counter", "Updates answered 409 Conflict (re-read and retried).",
         get(&p->conflicts)},
        {"errors_total", "counter", "Failed API calls.", get(&p->errors)},
        {"coalesced_total", "counter",
         "Objects whose capacity moved under the coalescing threshold (not written), per pass.",
         get(&p->coalesced)},
        {"deferred_total", "counter",
         "Rewrites due but held back by the per-object interval, per pass.", get(&p->deferred)},
        {"throttled_total", "counter", "Writes left for a later pass by the rate limit.",
         get(&p->throttled)},
        {"passes_total", "counter", "Passes run (a standby's included: they write nothing).",
         get(&p->passes)},
        {"objects", "gauge", "CSIStorageCapacity objects of ours known to exist.",
         get(&p->objects)},
        {"skipped_nodes", "gauge",
         "Node x class pairs without an object (a node name too long for a label value).",
         get(&p->skipped)},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(rows); i++)
        fprintf(m,
                "# HELP dedupd_capacity_publish_%s %s\n# TYPE dedupd_capacity_publish_%s %s\n"
                "dedupd_capacity_publish_%s %llu\n",
                rows[i].name, rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                (unsigned long long)rows[i].v);
    fprintf(m,
            "# HELP dedupd_capacity_publish_pass_seconds The last reconcile pass's duration, "
            "writes included.\n# TYPE dedupd_capacity_publish_pass_seconds gauge\n"
            "dedupd_capacity_publish_pass_seconds %.6f\n",
            (double)get(&p->pass_us) / 1e6);
}
