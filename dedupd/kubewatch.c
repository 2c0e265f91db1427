/*
 * The list/watch threads (kubewatch.h). Each kind's thread owns its HTTP
 * client, its line splitter and its resourceVersion; the shared part is
 * the stop flag (read by the clients' cancel callback), the token (swapped
 * under a mutex, each thread rebuilds its client when the token changed)
 * and the per-kind counters (under the same mutex, read by metrics).
 *
 * Loop of one kind: list (pages) -> watch -> watch -> ... with a relist on
 * 410, on a stream we could not decode, and every resync_s. What a failure
 * means is decided in one place (kind_main); the steps only report it.
 */
#define _GNU_SOURCE
#include "dedupd/kubewatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/http/client.h"
#include "dedupd/http/token.h"
#include "dedupd/metrics.h"

/* What one step (a list, a watch) ended with. */
enum step {
    S_OK,      /* list complete / watch ended cleanly */
    S_GONE,    /* 410: relist */
    S_RELIST,  /* the stream could not be followed: relist */
    S_AUTH,    /* 401: re-read the token, back off */
    S_FAIL,    /* anything else: back off */
    S_STOPPED, /* cancelled */
};

struct kw;

struct dd_kubewatch {
    struct dd_kubewatch_config cfg;
    struct dd_kube *cache;
    atomic_bool stop;
    pthread_mutex_t lock; /* token, token_gen, the kinds' counters */
    pthread_cond_t wake;
    char *token;
    unsigned token_gen;
    uint64_t token_read_ms;
    uint64_t start_ms;
    struct kw {
        struct dd_kubewatch *w;
        enum dd_kube_kind kind;
        pthread_t thread;
        bool started;
        /* the thread's own */
        struct dd_http_client *client;
        unsigned client_token_gen;
        struct dd_kube_lines lines;
        enum step stream_end; /* set by the line callback */
        uint64_t watch_deadline_ms;
        unsigned seed;
        /* under w->lock */
        struct dd_kubewatch_kind_stats st;
        uint64_t last_ms;
    } kinds[DD_KUBE_KINDS];
};

static bool watched(const struct dd_kubewatch *w, int kind)
{
    return w->cfg.kinds == 0 || (w->cfg.kinds & (1u << kind)) != 0;
}

/* "&fieldSelector=..." for the kind's requests, or "" (s freed by the
 * caller). NULL on ENOMEM. */
static char *selector_query(const struct dd_kubewatch *w, enum dd_kube_kind kind)
{
    char *esc, *q;
    size_t n;

    if (kind != DD_KUBE_POD || !w->cfg.pod_field_selector[0])
        return dd_strdup("");
    if (!(esc = dd_http_client_escape(w->cfg.pod_field_selector)))
        return NULL;
    n = strlen(esc) + sizeof("&fieldSelector=");
    if ((q = dd_malloc(n)))
        snprintf(q, n, "&fieldSelector=%s", esc);
    dd_free(esc);
    return q;
}

/* The node role's list page: each item to on_object (as ADDED), the
 * page's version and continue token out. 0, or DD_E_PARSE with err. */
static int list_page_objects(struct dd_kubewatch *w, enum dd_kube_kind kind, const char *body,
                             size_t len, char *rv, size_t rvlen, char *cont, size_t contlen,
                             char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_loadb(body, len, 0, &je), *items, *md, *it;
    const char *s;
    size_t i;

    if (!json_is_object(doc)) {
        snprintf(err, errlen, "list page: %s", doc ? "not an object" : je.text);
        json_decref(doc);
        return DD_E_PARSE;
    }
    md = json_object_get(doc, "metadata");
    items = json_object_get(doc, "items");
    if ((items && !json_is_array(items) && !json_is_null(items)) || (md && !json_is_object(md))) {
        snprintf(err, errlen, "list page: items or metadata of the wrong type");
        json_decref(doc);
        return DD_E_PARSE;
    }
    s = json_string_value(json_object_get(md, "resourceVersion"));
    snprintf(rv, rvlen, "%s", s ? s : "");
    s = json_string_value(json_object_get(md, "continue"));
    snprintf(cont, contlen, "%s", s ? s : "");
    json_array_foreach(items, i, it)
    {
        if (json_is_object(it))
            w->cfg.on_object(w->cfg.object_ctx, kind, DD_KUBE_ADDED, it);
    }
    json_decref(doc);
    return 0;
}

static double cfg_or(double v, double d)
{
    return v > 0 ? v : d;
}

void dd_kubewatch_source_resolve(const char *api_url, const char *token_file, const char *ca_file,
                                 const char *sa_dir, struct dd_kube_source *ret)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");

    memset(ret, 0, sizeof(*ret));
    if (!sa_dir)
        sa_dir = DD_KUBE_SA_DIR;
    if (api_url && api_url[0]) {
        snprintf(ret->url, sizeof(ret->url), "%s", api_url);
        snprintf(ret->token_file, sizeof(ret->token_file), "%s", token_file ? token_file : "");
        snprintf(ret->ca_file, sizeof(ret->ca_file), "%s", ca_file ? ca_file : "");
        snprintf(ret->describe, sizeof(ret->describe), "--kube-api %.1000s", api_url);
    } else if (host && host[0] && port && port[0]) {
        /* an IPv6 service address needs brackets in a URL */
        bool v6 = strchr(host, ':') != NULL;
        snprintf(ret->url, sizeof(ret->url), "https://%s%.200s%s:%.16s", v6 ? "[" : "", host,
                 v6 ? "]" : "", port);
        snprintf(ret->token_file, sizeof(ret->token_file), "%.900s/token", sa_dir);
        snprintf(ret->ca_file, sizeof(ret->ca_file), "%.900s/ca.crt", sa_dir);
        snprintf(ret->describe, sizeof(ret->describe), "in-cluster");
    } else {
        snprintf(ret->describe, sizeof(ret->describe), "none");
    }
}

static bool cancelled(void *ud)
{
    struct kw *k = ud;
    return atomic_load(&k->w->stop) ||
           (k->watch_deadline_ms && dd_mono_ms() > k->watch_deadline_ms);
}

static void note_error(struct kw *k, bool count, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_error(struct kw *k, bool count, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&k->w->lock);
    va_start(ap, fmt);
    vsnprintf(k->st.last_error, sizeof(k->st.last_error), fmt, ap);
    va_end(ap);
    if (count)
        k->st.watch_errors++;
    dd_log_debug("kube %s: %s", dd_kube_kind_name(k->kind), k->st.last_error);
    pthread_mutex_unlock(&k->w->lock);
}

/* Re-reads the token file when due (or forced); bumps token_gen when it
 * changed. A file that cannot be read keeps the old token. */
static void token_refresh(struct dd_kubewatch *w, bool force)
{
    char *tok = NULL, err[512];
    pthread_mutex_lock(&w->lock);
    if (!w->cfg.src.token_file[0] ||
        (!force && dd_mono_ms() - w->token_read_ms <
                       (uint64_t)(cfg_or(w->cfg.token_reread_s, 60) * 1000.0))) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    w->token_read_ms = dd_mono_ms();
    pthread_mutex_unlock(&w->lock);
    if (dd_token_read(w->cfg.src.token_file, &tok, err, sizeof(err)) < 0) {
        dd_log_debug("kube: %s (keeping the token read before)", err);
        return;
    }
    pthread_mutex_lock(&w->lock);
    if (!w->token || strcmp(w->token, tok) != 0) {
        if (w->token)
            explicit_bzero(w->token, strlen(w->token));
        dd_free(w->token);
        w->token = DD_TAKE_PTR(tok);
        w->token_gen++;
    }
    pthread_mutex_unlock(&w->lock);
    if (tok)
        explicit_bzero(tok, strlen(tok));
    dd_free(tok);
}

/* The thread's client, rebuilt when the token changed. */
static int client_get(struct kw *k)
{
    struct dd_kubewatch *w = k->w;
    struct dd_http_client_config cc = {0};
    char err[512];
    int r;

    pthread_mutex_lock(&w->lock);
    if (k->client && k->client_token_gen == w->token_gen) {
        pthread_mutex_unlock(&w->lock);
        return 0;
    }
    k->client = dd_http_client_free(k->client);
    cc.base_url = w->cfg.src.url;
    cc.token = w->token;
    cc.ca_file = w->cfg.src.ca_file[0] ? w->cfg.src.ca_file : NULL;
    cc.connect_timeout_ms = 5000;
    cc.timeout_ms = -1; /* watches end by timeoutSeconds or by the cancel deadline */
    cc.cancel = cancelled;
    cc.cancel_ud = k;
    r = dd_http_client_new(&cc, &k->client, err, sizeof(err));
    k->client_token_gen = w->token_gen;
    pthread_mutex_unlock(&w->lock);
    if (r < 0)
        note_error(k, true, "%s", err);
    return r;
}

static enum step status_step(struct kw *k, int status, const char *what, const char *err)
{
    if (status == DD_E_CANCELLED && atomic_load(&k->w->stop))
        return S_STOPPED;
    if (status < 0) {
        note_error(k, true, "%s: %s", what, err);
        return S_FAIL;
    }
    if (status == 410) {
        note_error(k, false, "%s: 410 Gone", what);
        return S_GONE;
    }
    if (status == 401) {
        pthread_mutex_lock(&k->w->lock);
        k->st.unauthorized++;
        pthread_mutex_unlock(&k->w->lock);
        note_error(k, true, "%s: 401 Unauthorized (re-reading the token)", what);
        return S_AUTH;
    }
    note_error(k, true, "%s: HTTP %d%s", what, status,
               status == 403 ? " (RBAC: the service account lacks list/watch on this kind)" : "");
    return S_FAIL;
}

/* One whole list, page by page; on success the kind's rv is the list's. */
static enum step do_list(struct kw *k)
{
    struct dd_kubewatch *w = k->w;
    char cont[DD_KUBE_MAX_CONTINUE] = "", rv[DD_KUBE_MAX_RV] = "", err[512], path[8192];
    unsigned limit = w->cfg.page_limit ? w->cfg.page_limit : DD_KUBE_LIST_LIMIT;
    struct dd_dynbuf body;
    size_t refused_total = 0;
    enum step s = S_OK;

    dd_dynbuf_init(&body, DD_HTTP_CLIENT_MAX_REPLY);
    if (w->cache)
        dd_kube_relist_begin(w->cache, k->kind);
    for (;;) {
        char *esc = NULL, *sel;
        size_t refused = 0;
        int status;
        if (cont[0] && !(esc = dd_http_client_escape(cont))) {
            s = S_FAIL;
            break;
        }
        if (!(sel = selector_query(w, k->kind))) {
            dd_free(esc);
            s = S_FAIL;
            break;
        }
        snprintf(path, sizeof(path), "%s?limit=%u%s%s%s", dd_kube_kind_path(k->kind), limit,
                 esc ? "&continue=" : "", esc ? esc : "", sel);
        dd_free(esc);
        dd_free(sel);
        if (client_get(k) < 0) {
            s = S_FAIL;
            break;
        }
        status = dd_http_client_call(k->client, "GET", path, NULL, &body, err, sizeof(err));
        if (status != 200) {
            s = status_step(k, status, "list", err);
            break;
        }
        if (w->cfg.on_object &&
            list_page_objects(w, k->kind, dd_dynbuf_str(&body), dd_dynbuf_len(&body), rv,
                              sizeof(rv), cont, sizeof(cont), err, sizeof(err)) < 0) {
            note_error(k, true, "list: %s", err);
            s = S_FAIL;
            break;
        }
        if (w->cache && dd_kube_apply_list_page(w->cache, k->kind, dd_dynbuf_str(&body),
                                                dd_dynbuf_len(&body), rv, sizeof(rv), cont,
                                                sizeof(cont), &refused, err, sizeof(err)) < 0) {
            note_error(k, true, "list: %s", err);
            s = S_FAIL;
            break;
        }
        if (refused) {
            refused_total += refused;
            note_error(k, false, "list: %zu object(s) refused, first: %s", refused, err);
        }
        if (!cont[0])
            break;
    }
    dd_dynbuf_free(&body);
    if (s == S_OK) {
        size_t gone = w->cache ? dd_kube_relist_end(w->cache, k->kind) : 0;
        pthread_mutex_lock(&w->lock);
        k->st.synced = true;
        k->st.lists++;
        k->st.refused += refused_total;
        snprintf(k->st.rv, sizeof(k->st.rv), "%s", rv);
        k->last_ms = dd_mono_ms();
        pthread_mutex_unlock(&w->lock);
        dd_log_debug("kube %s: listed, version %s, %zu gone since the last list",
                     dd_kube_kind_name(k->kind), rv, gone);
    }
    return s;
}

static int on_line(void *ud, const char *line, size_t len)
{
    struct kw *k = ud;
    struct dd_kubewatch *w = k->w;
    struct dd_kube_watch_event ev;
    char err[512];
    int r;

    if (dd_kube_watch_event_decode(line, len, &ev, err, sizeof(err)) < 0) {
        note_error(k, true, "watch: %s", err);
        k->stream_end = S_RELIST; /* we may have lost an event: start over */
        return DD_E_PARSE;
    }
    switch (ev.type) {
    case DD_KUBE_W_ERROR:
        if (ev.code == 410) {
            note_error(k, false, "watch: ERROR 410: %s", ev.message);
            k->stream_end = S_GONE;
        } else {
            note_error(k, true, "watch: ERROR %d: %s", ev.code, ev.message);
            k->stream_end = S_FAIL;
        }
        dd_kube_watch_event_release(&ev);
        return DD_E_CANCELLED;
    case DD_KUBE_W_BOOKMARK:
        pthread_mutex_lock(&w->lock);
        if (ev.rv[0])
            snprintf(k->st.rv, sizeof(k->st.rv), "%s", ev.rv);
        k->st.bookmarks++;
        k->last_ms = dd_mono_ms();
        pthread_mutex_unlock(&w->lock);
        break;
    default: {
        enum dd_kube_event kev = ev.type == DD_KUBE_W_ADDED      ? DD_KUBE_ADDED
                                 : ev.type == DD_KUBE_W_MODIFIED ? DD_KUBE_MODIFIED
                                                                 : DD_KUBE_DELETED;
        r = w->cache ? dd_kube_apply(w->cache, k->kind, kev, ev.object, err, sizeof(err)) : 0;
        if (w->cfg.on_object && json_is_object(ev.object))
            w->cfg.on_object(w->cfg.object_ctx, k->kind, kev, ev.object);
    }
        if (r < 0)
            note_error(k, false, "watch: object refused: %s", err);
        pthread_mutex_lock(&w->lock);
        if (r < 0)
            k->st.refused++;
        else
            k->st.events++;
        if (ev.rv[0])
            snprintf(k->st.rv, sizeof(k->st.rv), "%s", ev.rv);
        k->last_ms = dd_mono_ms();
        pthread_mutex_unlock(&w->lock);
        break;
    }
    dd_kube_watch_event_release(&ev);
    return 0;
}

static int on_data(void *ud, const char *data, size_t len)
{
    struct kw *k = ud;
    int r = dd_kube_lines_feed(&k->lines, data, len, on_line, k);
    if (r == DD_E_TOOBIG) {
        note_error(k, true, "watch: an event line passed %u bytes", DD_KUBE_MAX_EVENT_BYTES);
        k->stream_end = S_RELIST;
    }
    return r;
}

static enum step do_watch(struct kw *k, double until_resync_s)
{
    struct dd_kubewatch *w = k->w;
    char rv[DD_KUBE_MAX_RV], err[512], path[2048];
    double timeout = cfg_or(w->cfg.watch_timeout_s, 300);
    char *esc, *sel;
    int status;

    /* randomised like kube-apiserver's, so the kinds do not reconnect in step */
    timeout *= 0.8 + 0.2 * ((double)(rand_r(&k->seed) % 1000) / 1000.0);
    if (timeout > until_resync_s)
        timeout = until_resync_s;
    if (timeout < 1)
        timeout = 1;
    pthread_mutex_lock(&w->lock);
    snprintf(rv, sizeof(rv), "%s", k->st.rv);
    pthread_mutex_unlock(&w->lock);
    if (!(esc = dd_http_client_escape(rv)) || client_get(k) < 0) {
        dd_free(esc);
        return S_FAIL;
    }
    if (!(sel = selector_query(w, k->kind))) {
        dd_free(esc);
        return S_FAIL;
    }
    snprintf(path, sizeof(path),
             "%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u%s",
             dd_kube_kind_path(k->kind), esc, (unsigned)timeout, sel);
    dd_free(esc);
    dd_free(sel);
    dd_kube_lines_reset(&k->lines);
    k->stream_end = S_OK;
    /* a server that stops talking without closing is given up on */
    k->watch_deadline_ms = dd_mono_ms() + (uint64_t)(timeout * 1000.0) + 30000u;
    status = dd_http_client_stream(k->client, "GET", path, NULL, on_data, k, err, sizeof(err));
    k->watch_deadline_ms = 0;
    if (k->stream_end != S_OK)
        return atomic_load(&w->stop) ? S_STOPPED : k->stream_end;
    if (status == 200) {
        if (dd_kube_lines_pending(&k->lines)) {
            note_error(k, true, "watch: the stream ended inside an event (%zu bytes)",
                       dd_kube_lines_pending(&k->lines));
            return S_FAIL;
        }
        return S_OK;
    }
    if (status < 0 && status != DD_E_CANCELLED && dd_kube_lines_pending(&k->lines)) {
        note_error(k, true, "watch: the connection closed inside an event (%zu bytes): %s",
                   dd_kube_lines_pending(&k->lines), err);
        return S_FAIL;
    }
    if (status == DD_E_CANCELLED && !atomic_load(&w->stop)) {
        note_error(k, true, "watch: silent past its timeout; reconnecting");
        return S_FAIL;
    }
    return status_step(k, status, "watch", err);
}

/* Sleeps ms or until stop; returns true on stop. */
static bool nap(struct dd_kubewatch *w, uint64_t ms)
{
    struct timespec until;
    bool stop;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!atomic_load(&w->stop) &&
           pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT)
        ;
    stop = atomic_load(&w->stop);
    pthread_mutex_unlock(&w->lock);
    return stop;
}

static void *kind_main(void *arg)
{
    struct kw *k = arg;
    struct dd_kubewatch *w = k->w;
    unsigned bmin = w->cfg.backoff_min_ms ? w->cfg.backoff_min_ms : 500;
    unsigned bmax = w->cfg.backoff_max_ms ? w->cfg.backoff_max_ms : 30000;
    uint64_t resync_ms = (uint64_t)(cfg_or(w->cfg.resync_s, 1800) * 1000.0);
    uint64_t listed_ms = 0;
    unsigned backoff = 0;
    bool need_list = true;

    while (!atomic_load(&w->stop)) {
        enum step s;
        token_refresh(w, false);
        if (!need_list && dd_mono_ms() - listed_ms >= resync_ms)
            need_list = true; /* periodic resync */
        if (need_list) {
            s = do_list(k);
            if (s == S_OK) {
                need_list = false;
                listed_ms = dd_mono_ms();
            }
        } else {
            double left = (double)(resync_ms - (dd_mono_ms() - listed_ms)) / 1000.0;
            s = do_watch(k, left);
        }
        switch (s) {
        case S_OK:
            backoff = 0;
            continue;
        case S_GONE:
        case S_RELIST:
            need_list = true;
            backoff = 0;
            continue;
        case S_STOPPED:
            break;
        case S_AUTH:
            token_refresh(w, true);
            __attribute__((fallthrough)); /* and back off */
        case S_FAIL:
            backoff = backoff ? DD_MIN(backoff * 2, bmax) : bmin;
            /* full jitter: many replicas do not retry in step */
            if (nap(w, (uint64_t)(bmin / 2 + (unsigned)rand_r(&k->seed) % (backoff + 1u))))
                break;
            continue;
        }
        break;
    }
    return NULL;
}

int dd_kubewatch_new(const struct dd_kubewatch_config *c, struct dd_kube *cache,
                     struct dd_kubewatch **ret, char *errbuf, size_t errlen)
{
    struct dd_kubewatch *w;
    int r;

    if (!cache && !c->on_object) {
        snprintf(errbuf, errlen, "kube watch: neither a cache nor an object callback");
        return -EINVAL;
    }
    if (strncmp(c->src.url, "http://", 7) != 0 && strncmp(c->src.url, "https://", 8) != 0) {
        snprintf(errbuf, errlen, "kube api '%.200s': expected http://HOST:PORT or https://...",
                 c->src.url);
        return -EINVAL;
    }
    w = dd_calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->cfg = *c;
    w->cache = cache;
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    w->start_ms = dd_mono_ms();
    if (c->src.token_file[0]) {
        char *tok = NULL;
        if ((r = dd_token_read(c->src.token_file, &tok, errbuf, errlen)) < 0) {
            dd_kubewatch_free(w);
            return r;
        }
        w->token = tok;
        w->token_read_ms = dd_mono_ms();
    }
    for (int i = 0; i < DD_KUBE_KINDS; i++) {
        struct kw *k = &w->kinds[i];
        k->w = w;
        k->kind = (enum dd_kube_kind)i;
        k->seed = (unsigned)(dd_mono_ms() * 2654435761u) ^ (unsigned)i;
        k->last_ms = w->start_ms;
        dd_kube_lines_init(&k->lines, DD_KUBE_MAX_EVENT_BYTES);
        /* an early client: a bad URL or CA shows at start, not in a thread */
        struct dd_http_client_config cc = {.base_url = c->src.url,
                                           .token = w->token,
                                           .ca_file = c->src.ca_file[0] ? c->src.ca_file : NULL,
                                           .timeout_ms = -1,
                                           .cancel = cancelled,
                                           .cancel_ud = k};
        if ((r = dd_http_client_new(&cc, &k->client, errbuf, errlen)) < 0) {
            dd_kubewatch_free(w);
            return r;
        }
    }
    *ret = w;
    return 0;
}

int dd_kubewatch_start(struct dd_kubewatch *w)
{
    for (int i = 0; i < DD_KUBE_KINDS; i++) {
        if (!watched(w, i))
            continue;
        if (pthread_create(&w->kinds[i].thread, NULL, kind_main, &w->kinds[i]) != 0)
            return -EAGAIN;
        w->kinds[i].started = true;
    }
    return 0;
}

struct dd_kubewatch *dd_kubewatch_free(struct dd_kubewatch *w)
{
    if (!w)
        return NULL;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < DD_KUBE_KINDS; i++) {
        struct kw *k = &w->kinds[i];
        if (k->started)
            pthread_join(k->thread, NULL);
        dd_http_client_free(k->client);
        dd_kube_lines_release(&k->lines);
    }
    if (w->token)
        explicit_bzero(w->token, strlen(w->token));
    dd_free(w->token);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    dd_free(w);
    return NULL;
}

void dd_kubewatch_stats(struct dd_kubewatch *w, enum dd_kube_kind kind,
                        struct dd_kubewatch_kind_stats *ret)
{
    struct kw *k = &w->kinds[kind];
    pthread_mutex_lock(&w->lock);
    *ret = k->st;
    ret->age_s = (double)(dd_mono_ms() - k->last_ms) / 1000.0;
    pthread_mutex_unlock(&w->lock);
}

bool dd_kubewatch_synced(struct dd_kubewatch *w)
{
    bool all = true;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < DD_KUBE_KINDS; i++)
        all = all && (!watched(w, i) || w->kinds[i].st.synced);
    pthread_mutex_unlock(&w->lock);
    return all;
}

void dd_kubewatch_metrics(struct dd_kubewatch *w, FILE *m)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"dedupd_kube_objects", "gauge", "Objects in the Kubernetes cache, by kind."},
        {"dedupd_kube_watch_age_seconds", "gauge",
         "Seconds since the last watch event, bookmark or list of the kind."},
        {"dedupd_kube_relists_total", "counter",
         "Lists after the first (410 Gone, undecodable stream, periodic resync)."},
        {"dedupd_kube_watch_errors_total", "counter",
         "Failed list/watch requests, ERROR events and streams cut inside an event."},
        {"dedupd_kube_events_total", "counter", "Watch events applied to the cache."},
        {"dedupd_kube_refused_total", "counter",
         "Objects the cache refused (a field of the wrong type or too long)."},
        {"dedupd_kube_synced", "gauge", "1 once the kind has been listed."},
    };
    struct dd_kubewatch_kind_stats st[DD_KUBE_KINDS];
    size_t counts[DD_KUBE_KINDS];

    memset(counts, 0, sizeof(counts));
    if (w->cache)
        dd_kube_counts(w->cache, counts);
    for (int i = 0; i < DD_KUBE_KINDS; i++)
        dd_kubewatch_stats(w, (enum dd_kube_kind)i, &st[i]);
    for (size_t f = 0; f < DD_ARRAY_SIZE(fam); f++) {
        dd_metrics_family(m, fam[f].name, fam[f].type, fam[f].help);
        for (int i = 0; i < DD_KUBE_KINDS; i++) {
            if (!watched(w, i))
                continue;
            fprintf(m, "%s{kind=\"%s\"} ", fam[f].name, dd_kube_kind_name((enum dd_kube_kind)i));
            switch (f) {
            case 0:
                fprintf(m, "%zu\n", counts[i]);
                break;
            case 1:
                fprintf(m, "%.3f\n", st[i].age_s);
                break;
            case 2:
                fprintf(m, "%llu\n", (unsigned long long)(st[i].lists ? st[i].lists - 1 : 0));
                break;
            case 3:
                fprintf(m, "%llu\n", (unsigned long long)st[i].watch_errors);
                break;
            case 4:
                fprintf(m, "%llu\n", (unsigned long long)st[i].events);
                break;
            case 5:
                fprintf(m, "%llu\n", (unsigned long long)st[i].refused);
                break;
            default:
                fprintf(m, "%d\n", st[i].synced ? 1 : 0);
                break;
            }
        }
    }
}
