/*
 * The report pusher (push.h): per placement URL (--placement-url takes a
 * comma-separated list: every replica gets every report), a ring of
 * encoded reports under a mutex and one thread draining it through the
 * tree's HTTP client. The targets share nothing but the encoded text's
 * origin: one slow or dead replica never delays the others. The ring holds
 * JSON text, so the sampler's typed report is not kept past enqueue.
 *
 * With --placement-resolve-all a target is a (URL, address) pair and one
 * more thread, the resolver, re-resolves the names and swaps targets in and
 * out of the pusher's array under the pusher's lock (lock order: pusher,
 * then target); a retired target is stopped and freed outside that lock.
 */
#define _GNU_SOURCE
#include "dedupd/push.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"
#include "common/common.h"
#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "dedupd/http/http.h"
#include "dedupd/http/token.h"

/* Backoff after a failed push: 0.5 s doubling to 30 s, full jitter. */
#define BACKOFF_MIN_MS 500u
#define BACKOFF_MAX_MS 30000u
/* A placement role's reply is small; anything past this is not one. */
#define REPLY_MAX (64u * 1024u)

struct item {
    char *text;
    uint64_t queued_ms;
};

enum drop { D_QUEUE_FULL, D_EXPIRED, D_REJECTED, D_COUNT };
static const char *const drop_names[D_COUNT] = {"queue_full", "expired", "rejected"};

struct target {
    struct dd_http_client *client; /* the target thread's only */
    char url[1024];
    char addr[DD_PUSH_ADDR_MAX];            /* --placement-resolve-all: the address; else "" */
    char name[1024 + DD_PUSH_ADDR_MAX + 8]; /* for messages: the URL [at the address] */
    size_t url_i;                           /* which --placement-url */
    double interval;
    pthread_t thread;
    bool started;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    bool stop;
    struct item ring[DD_PUSH_QUEUE_MAX];
    size_t head, n;
    uint64_t sent, failures, dropped[D_COUNT];
    int last_status; /* last HTTP status or negative error */
    uint64_t last_success_ms;
    char last_error[256];
};

/* --placement-resolve-all: one --placement-url's name. */
struct name {
    char url[1024];
    size_t n_targets; /* under the pusher's lock */
    uint64_t resolve_failures, resolve_empty, truncated;
    bool failed_last; /* the last try failed (logged once per failure streak) */
};

struct dd_pusher {
    pthread_mutex_t lock; /* guards n, t, the names' n_targets and the retired totals */
    size_t n, cap;
    struct target **t;
    uint64_t no_address;                                               /* reports */
    uint64_t retired_sent, retired_failures, retired_dropped[D_COUNT]; /* retired targets' */

    bool resolve_all;
    size_t n_names;
    struct name names[DD_PUSH_MAX_TARGETS];
    struct dd_config *cfg; /* resolve-all: a copy, for new targets */
    char *token;
    double resolve_interval;
    pthread_t resolver;
    bool resolver_started;
    pthread_cond_t wake; /* the resolver's sleep; stop under lock */
    bool stop;
};

static struct target *target_free(struct target *p);

/* One target for url, with the token and TLS files already checked. */
static int target_new(const struct dd_config *c, const char *url, const char *addr,
                      const char *token, struct target **ret, char *errbuf, size_t errlen)
{
    struct target *p = dd_calloc(1, sizeof(*p));
    struct dd_http_client_config cc = {0};
    int r;

    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    snprintf(p->url, sizeof(p->url), "%s", url);
    snprintf(p->addr, sizeof(p->addr), "%s", addr ? addr : "");
    if (p->addr[0])
        snprintf(p->name, sizeof(p->name), "%s at %s", url, p->addr);
    else
        snprintf(p->name, sizeof(p->name), "%s", url);
    p->interval = c->interval;
    cc.base_url = url;
    cc.connect_addr = p->addr[0] ? p->addr : NULL;
    cc.token = token;
    cc.cert_file = c->placement_cert_file[0] ? c->placement_cert_file : NULL;
    cc.key_file = c->placement_key_file[0] ? c->placement_key_file : NULL;
    cc.ca_file = c->placement_ca_file[0] ? c->placement_ca_file : NULL;
    /* a report is due every interval: a request may not outlast it much */
    cc.connect_timeout_ms = 2000;
    cc.timeout_ms = 5000;
    if ((r = dd_http_client_new(&cc, &p->client, errbuf, errlen)) < 0) {
        target_free(p);
        return r;
    }
    *ret = p;
    return 0;
}

int dd_push_split_urls(const char *list, char (*urls)[1024], size_t max, size_t *ret_n)
{
    size_t n = 0, len;
    const char *p = list, *b;
    while (dd_list_next(&p, &b, &len)) {
        if (len) {
            if (n == max)
                return -E2BIG;
            if (len >= sizeof(urls[0]))
                return -ENAMETOOLONG;
            memcpy(urls[n], b, len);
            urls[n][len] = '\0';
            n++;
        }
    }
    *ret_n = n;
    return 0;
}

int dd_push_resolve(const char *url, char (*addrs)[DD_PUSH_ADDR_MAX], size_t max, size_t *ret_n,
                    size_t *ret_more, char *errbuf, size_t errlen)
{
    char host[1024], port[16];
    struct addrinfo hints = {0}, *res = NULL;
    size_t n = 0, more = 0;
    int r;

    if ((r = dd_http_url_host_port(url, host, sizeof(host), port, sizeof(port), errbuf, errlen)) <
        0)
        return r;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    r = getaddrinfo(host, port, &hints, &res);
    if (r == EAI_NONAME
#ifdef EAI_NODATA
        || r == EAI_NODATA
#endif
    ) {
        *ret_n = 0;
        *ret_more = 0;
        return 0;
    }
    if (r != 0) {
        snprintf(errbuf, errlen, "resolving '%.200s': %s", host,
                 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        return r == EAI_AGAIN ? -EAGAIN : DD_E_LIBRARY;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char a[DD_PUSH_ADDR_MAX];
        size_t at;
        int c = 1;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            getnameinfo(ai->ai_addr, ai->ai_addrlen, a, sizeof(a), NULL, 0, NI_NUMERICHOST) != 0)
            continue;
        /* insertion into the sorted list, each address once */
        for (at = 0; at < n && (c = strcmp(addrs[at], a)) < 0; at++)
            ;
        if (at < n && c == 0)
            continue;
        if (n == max) {
            more++;
            if (at == n)
                continue;
            n--; /* the largest makes room */
        }
        memmove(addrs[at + 1], addrs[at], (n - at) * sizeof(addrs[0]));
        memcpy(addrs[at], a, sizeof(a));
        n++;
    }
    freeaddrinfo(res);
    *ret_n = n;
    *ret_more = more;
    return 0;
}

size_t dd_push_addr_diff(const char (*have)[DD_PUSH_ADDR_MAX], size_t n_have,
                         const char (*want)[DD_PUSH_ADDR_MAX], size_t n_want, bool *keep, bool *add)
{
    size_t changes = 0;
    for (size_t i = 0; i < n_have; i++) {
        keep[i] = false;
        for (size_t j = 0; j < n_want && !keep[i]; j++)
            keep[i] = strcmp(have[i], want[j]) == 0;
        changes += !keep[i];
    }
    for (size_t j = 0; j < n_want; j++) {
        add[j] = true;
        for (size_t i = 0; i < n_have && add[j]; i++)
            add[j] = strcmp(have[i], want[j]) != 0;
        for (size_t k = 0; k < j && add[j]; k++) /* a duplicate in want: once */
            add[j] = strcmp(want[k], want[j]) != 0;
        changes += add[j];
    }
    return changes;
}

int dd_pusher_new(const struct dd_config *c, struct dd_pusher **ret, char *errbuf, size_t errlen)
{
    struct dd_pusher *p = dd_calloc(1, sizeof(*p));
    char urls[DD_PUSH_MAX_TARGETS][1024];
    size_t n = 0;
    char *token = NULL;
    int r;

    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if ((r = dd_push_split_urls(c->placement_url, urls, DD_PUSH_MAX_TARGETS, &n)) < 0 || !n) {
        snprintf(errbuf, errlen, "--placement-url: expected 1 to %u URLs separated by commas",
                 DD_PUSH_MAX_TARGETS);
        r = r < 0 ? r : DD_E_USAGE;
        goto fail;
    }
    if (c->placement_token_file[0] &&
        (r = dd_token_read(c->placement_token_file, &token, errbuf, errlen)) < 0)
        goto fail;
    /* mutual TLS: the files are loaded once now, so a missing file, a key
     * that is not the certificate's or a CA file without a certificate is
     * an error at start; libcurl reads them again for every new
     * connection, so a certificate renewed in place is picked up */
    if ((c->placement_cert_file[0] || c->placement_ca_file[0]) &&
        (r = dd_http_tls_check_client_files(
             c->placement_cert_file[0] ? c->placement_cert_file : NULL,
             c->placement_key_file[0] ? c->placement_key_file : NULL,
             c->placement_ca_file[0] ? c->placement_ca_file : NULL, errbuf, errlen)) < 0)
        goto fail;
    p->resolve_all = c->placement_resolve_all;
    p->cap = p->resolve_all ? n * DD_PUSH_MAX_ADDRS : n;
    if (!(p->t = dd_calloc(p->cap, sizeof(p->t[0])))) {
        r = -ENOMEM;
        goto fail;
    }
    if (p->resolve_all) {
        /* the targets come with the first resolution (dd_pusher_start) */
        char host[1024], port[16];
        for (size_t i = 0; i < n; i++) {
            if ((r = dd_http_url_host_port(urls[i], host, sizeof(host), port, sizeof(port), errbuf,
                                           errlen)) < 0)
                goto fail;
            snprintf(p->names[i].url, sizeof(p->names[i].url), "%.1023s", urls[i]);
        }
        p->n_names = n;
        p->resolve_interval = c->placement_resolve_interval;
        if (!(p->cfg = dd_calloc(1, sizeof(*p->cfg)))) {
            r = -ENOMEM;
            goto fail;
        }
        *p->cfg = *c;
        p->token = token;
        *ret = p;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((r = target_new(c, urls[i], NULL, token, &p->t[i], errbuf, errlen)) < 0)
            goto fail;
        p->t[i]->url_i = i;
        p->n++;
    }
    dd_free(token);
    *ret = p;
    return 0;
fail:
    dd_free(token);
    dd_pusher_free(p);
    return r;
}

static void *pusher_main(void *arg);

/* Folds a target's counters into the retired totals (pusher lock held). */
static void retire_counts(struct dd_pusher *p, struct target *t)
{
    pthread_mutex_lock(&t->lock);
    p->retired_sent += t->sent;
    p->retired_failures += t->failures;
    for (size_t k = 0; k < D_COUNT; k++)
        p->retired_dropped[k] += t->dropped[k];
    pthread_mutex_unlock(&t->lock);
}

/* Resolves name i again and brings its targets in line: new addresses get
 * a started target, gone ones are retired. Runs in dd_pusher_start, then
 * only in the resolver thread (the only writer of the array). */
static void resolve_name(struct dd_pusher *p, size_t i)
{
    struct name *nm = &p->names[i];
    char(*want)[DD_PUSH_ADDR_MAX] = dd_calloc(DD_PUSH_MAX_ADDRS, DD_PUSH_ADDR_MAX);
    char(*have)[DD_PUSH_ADDR_MAX] = dd_calloc(DD_PUSH_MAX_ADDRS, DD_PUSH_ADDR_MAX);
    struct target *fresh[DD_PUSH_MAX_ADDRS], *gone[DD_PUSH_MAX_ADDRS];
    bool keep[DD_PUSH_MAX_ADDRS], add[DD_PUSH_MAX_ADDRS];
    size_t n_want = 0, more = 0, n_have = 0, n_fresh = 0, n_gone = 0;
    char err[512] = "";
    int r;

    if (!want || !have)
        goto out;
    r = dd_push_resolve(nm->url, want, DD_PUSH_MAX_ADDRS, &n_want, &more, err, sizeof(err));
    pthread_mutex_lock(&p->lock);
    if (r < 0) {
        nm->resolve_failures++;
        pthread_mutex_unlock(&p->lock);
        if (!nm->failed_last)
            dd_log_warning("report push to %s: %s; keeping the last %zu address(es)", nm->url, err,
                           nm->n_targets);
        nm->failed_last = true;
        goto out;
    }
    if (nm->failed_last)
        dd_log_info("report push to %s: resolving again", nm->url);
    nm->failed_last = false;
    if (!n_want)
        nm->resolve_empty++;
    if (more)
        nm->truncated++;
    for (size_t k = 0; k < p->n; k++)
        if (p->t[k]->url_i == i)
            memcpy(have[n_have++], p->t[k]->addr, DD_PUSH_ADDR_MAX);
    pthread_mutex_unlock(&p->lock);

    if (!dd_push_addr_diff((const char(*)[DD_PUSH_ADDR_MAX])have, n_have,
                           (const char(*)[DD_PUSH_ADDR_MAX])want, n_want, keep, add))
        goto out;
    if (more)
        dd_log_warning("report push to %s: %zu more addresses than the %u kept", nm->url, more,
                       DD_PUSH_MAX_ADDRS);
    if (!n_want)
        dd_log_warning("report push to %s: the name has no address; reports to it are dropped",
                       nm->url);
    for (size_t j = 0; j < n_want; j++) {
        struct target *t;
        if (!add[j])
            continue;
        if (target_new(p->cfg, nm->url, want[j], p->token, &t, err, sizeof(err)) < 0) {
            dd_log_warning("report push to %s at %s: %s", nm->url, want[j], err);
            continue;
        }
        t->url_i = i;
        if (pthread_create(&t->thread, NULL, pusher_main, t) != 0) {
            target_free(t);
            continue;
        }
        t->started = true;
        fresh[n_fresh++] = t;
        dd_log_info("report push to %s: now also to %s", nm->url, want[j]);
    }
    pthread_mutex_lock(&p->lock);
    for (size_t k = 0; k < p->n;) {
        struct target *t = p->t[k];
        size_t h;
        for (h = 0; h < n_have && strcmp(have[h], t->addr) != 0; h++)
            ;
        if (t->url_i == i && h < n_have && !keep[h]) {
            retire_counts(p, t);
            gone[n_gone++] = t;
            p->t[k] = p->t[--p->n];
            nm->n_targets--;
            continue;
        }
        k++;
    }
    for (size_t j = 0; j < n_fresh; j++) {
        p->t[p->n++] = fresh[j]; /* room: at most DD_PUSH_MAX_ADDRS a name */
        nm->n_targets++;
    }
    pthread_mutex_unlock(&p->lock);
    for (size_t k = 0; k < n_gone; k++) {
        dd_log_info("report push to %s: %s is gone, its target retired", nm->url, gone[k]->addr);
        target_free(gone[k]);
    }
out:
    dd_free(want);
    dd_free(have);
}

static void *resolver_main(void *arg)
{
    struct dd_pusher *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        double wait = p->resolve_interval;
        for (size_t i = 0; i < p->n_names; i++)
            if ((!p->names[i].n_targets || p->names[i].failed_last) && wait > 5.0)
                wait = 5.0; /* a name without addresses is tried again soon */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)(wait * 1e9) + (uint64_t)until.tv_nsec;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        while (!p->stop && pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
            ;
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < p->n_names; i++)
            resolve_name(p, i);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int dd_pusher_start(struct dd_pusher *p)
{
    if (p->resolve_all) {
        /* the first resolution here, so reports go out from the start */
        for (size_t i = 0; i < p->n_names; i++)
            resolve_name(p, i);
        if (pthread_create(&p->resolver, NULL, resolver_main, p) != 0)
            return -EAGAIN;
        p->resolver_started = true;
        return 0;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (pthread_create(&p->t[i]->thread, NULL, pusher_main, p->t[i]) != 0)
            return -EAGAIN;
        p->t[i]->started = true;
    }
    return 0;
}

struct dd_pusher *dd_pusher_free(struct dd_pusher *p)
{
    if (!p)
        return NULL;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (p->resolver_started)
        pthread_join(p->resolver, NULL);
    for (size_t i = 0; i < p->n; i++)
        target_free(p->t[i]);
    dd_free(p->t);
    dd_free(p->cfg);
    if (p->token)
        explicit_bzero(p->token, strlen(p->token));
    dd_free(p->token);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    dd_free(p);
    return NULL;
}

static struct target *target_free(struct target *p)
{
    if (!p)
        return NULL;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (p->started)
        pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->n; i++)
        free(p->ring[(p->head + i) % DD_PUSH_QUEUE_MAX].text);
    dd_http_client_free(p->client);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    dd_free(p);
    return NULL;
}

static void target_enqueue(struct target *p, char *text)
{
    pthread_mutex_lock(&p->lock);
    if (p->n == DD_PUSH_QUEUE_MAX) {
        free(p->ring[p->head].text);
        p->head = (p->head + 1) % DD_PUSH_QUEUE_MAX;
        p->n--;
        p->dropped[D_QUEUE_FULL]++;
    }
    p->ring[(p->head + p->n) % DD_PUSH_QUEUE_MAX] = (struct item){text, dd_mono_ms()};
    p->n++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void dd_pusher_enqueue(struct dd_pusher *p, const struct dd_report *r)
{
    json_t *doc = dd_report_to_json(r);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(doc);
    if (!text)
        return;
    pthread_mutex_lock(&p->lock);
    /* resolve-all: a name without an address gets nothing; counted */
    for (size_t i = 0; i < p->n_names; i++)
        p->no_address += p->names[i].n_targets == 0;
    /* encoded once; each target owns a copy (the last takes this one) */
    for (size_t i = 0; i < p->n; i++) {
        char *mine = i + 1 == p->n ? text : strdup(text);
        if (mine)
            target_enqueue(p->t[i], mine);
    }
    if (!p->n)
        free(text);
    pthread_mutex_unlock(&p->lock);
}

bool dd_push_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, const bool *stop, uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!*stop && pthread_cond_timedwait(cond, lock, &until) != ETIMEDOUT)
        ;
    return *stop;
}

bool dd_push_retryable(int status)
{
    return status < 0 || status >= 500 || status == 401 || status == 408 || status == 429;
}

static void *pusher_main(void *arg)
{
    struct target *p = arg;
    struct dd_dynbuf reply;
    unsigned backoff = 0, seed = (unsigned)dd_mono_ms();
    int logged_status = 0;

    dd_dynbuf_init(&reply, REPLY_MAX);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->n == 0)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop)
            break;
        /* reports older than the queue's retention are of no use */
        uint64_t retention = (uint64_t)(p->interval * 1000.0) * DD_PUSH_QUEUE_MAX;
        while (p->n && dd_mono_ms() - p->ring[p->head].queued_ms > retention) {
            free(p->ring[p->head].text);
            p->head = (p->head + 1) % DD_PUSH_QUEUE_MAX;
            p->n--;
            p->dropped[D_EXPIRED]++;
        }
        if (!p->n)
            continue;
        /* taken out of the ring while the lock is released: enqueue may
         * drop the oldest meanwhile, never the one in flight */
        struct item it = p->ring[p->head];
        p->ring[p->head].text = NULL;
        p->head = (p->head + 1) % DD_PUSH_QUEUE_MAX;
        p->n--;
        pthread_mutex_unlock(&p->lock);

        char err[256] = "";
        int status = dd_http_client_call(p->client, "POST", "/v1/reports", it.text, &reply, err,
                                         sizeof(err));

        pthread_mutex_lock(&p->lock);
        p->last_status = status;
        if (status >= 200 && status < 300) {
            p->sent++;
            p->last_success_ms = dd_mono_ms();
            backoff = 0;
            if (logged_status != 0)
                dd_log_info("report push to %s: delivering again", p->name);
            logged_status = 0;
            free(it.text);
            continue;
        }
        if (status > 0)
            snprintf(err, sizeof(err), "HTTP %d: %.200s", status, dd_dynbuf_str(&reply));
        snprintf(p->last_error, sizeof(p->last_error), "%s", err);
        if (status != logged_status)
            dd_log_warning("report push to %s: %s%s", p->name, err,
                           dd_push_retryable(status) ? "; retrying with backoff"
                                                     : "; report dropped");
        logged_status = status;
        if (!dd_push_retryable(status)) {
            p->dropped[D_REJECTED]++;
            free(it.text);
            continue;
        }
        p->failures++;
        /* back at the front, unless newer reports filled the ring */
        if (p->n < DD_PUSH_QUEUE_MAX) {
            p->head = (p->head + DD_PUSH_QUEUE_MAX - 1) % DD_PUSH_QUEUE_MAX;
            p->ring[p->head] = it;
            p->n++;
        } else {
            p->dropped[D_QUEUE_FULL]++;
            free(it.text);
        }
        backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2)
                          : BACKOFF_MIN_MS;
        /* full jitter: a fleet of nodes does not retry in step */
        if (dd_push_wait_ms(&p->wake, &p->lock, &p->stop, (uint64_t)rand_r(&seed) % (backoff + 1u)))
            break;
    }
    pthread_mutex_unlock(&p->lock);
    dd_dynbuf_free(&reply);
    return NULL;
}

/* One per-target series' labels: the URL, and the address under
 * --placement-resolve-all. */
static void target_labels(FILE *m, const struct target *t)
{
    fprintf(m, "{target=\"%s\"", t->url);
    if (t->addr[0])
        fprintf(m, ",address=\"%s\"", t->addr);
    fputc('}', m);
}

void dd_pusher_metrics(struct dd_pusher *p, FILE *m)
{
    uint64_t sent, failures, dropped[D_COUNT];
    size_t queued = 0;
    uint64_t *sent_t;
    size_t *queued_t;

    pthread_mutex_lock(&p->lock);
    sent_t = dd_calloc(p->n + 1, sizeof(*sent_t));
    queued_t = dd_calloc(p->n + 1, sizeof(*queued_t));
    if (!sent_t || !queued_t) {
        pthread_mutex_unlock(&p->lock);
        dd_free(sent_t);
        dd_free(queued_t);
        return;
    }
    sent = p->retired_sent;
    failures = p->retired_failures;
    for (size_t k = 0; k < D_COUNT; k++)
        dropped[k] = p->retired_dropped[k];
    for (size_t i = 0; i < p->n; i++) {
        struct target *t = p->t[i];
        pthread_mutex_lock(&t->lock);
        sent += sent_t[i] = t->sent;
        failures += t->failures;
        for (size_t k = 0; k < D_COUNT; k++)
            dropped[k] += t->dropped[k];
        queued = t->n > queued ? t->n : queued;
        queued_t[i] = t->n;
        pthread_mutex_unlock(&t->lock);
    }
    fprintf(m,
            "# HELP dedupd_push_reports_sent_total Node reports the placement role accepted "
            "(every placement URL's together).\n"
            "# TYPE dedupd_push_reports_sent_total counter\n"
            "dedupd_push_reports_sent_total %llu\n"
            "# HELP dedupd_push_failures_total Report pushes that failed and were retried.\n"
            "# TYPE dedupd_push_failures_total counter\n"
            "dedupd_push_failures_total %llu\n"
            "# HELP dedupd_push_reports_dropped_total Node reports never delivered, by reason.\n"
            "# TYPE dedupd_push_reports_dropped_total counter\n",
            (unsigned long long)sent, (unsigned long long)failures);
    for (size_t i = 0; i < D_COUNT; i++)
        fprintf(m, "dedupd_push_reports_dropped_total{reason=\"%s\"} %llu\n", drop_names[i],
                (unsigned long long)dropped[i]);
    if (p->resolve_all)
        fprintf(m, "dedupd_push_reports_dropped_total{reason=\"no_address\"} %llu\n",
                (unsigned long long)p->no_address);
    fprintf(m,
            "# HELP dedupd_push_queue_length Node reports waiting to be sent (the longest "
            "queue of the placement URLs).\n"
            "# TYPE dedupd_push_queue_length gauge\ndedupd_push_queue_length %zu\n",
            queued);
    fputs("# HELP dedupd_push_target_reports_sent_total Node reports accepted, per placement "
          "URL (and address, with --placement-resolve-all).\n"
          "# TYPE dedupd_push_target_reports_sent_total counter\n",
          m);
    for (size_t i = 0; i < p->n; i++) {
        fputs("dedupd_push_target_reports_sent_total", m);
        target_labels(m, p->t[i]);
        fprintf(m, " %llu\n", (unsigned long long)sent_t[i]);
    }
    fputs("# HELP dedupd_push_target_queue_length Node reports waiting, per placement URL (and "
          "address).\n"
          "# TYPE dedupd_push_target_queue_length gauge\n",
          m);
    for (size_t i = 0; i < p->n; i++) {
        fputs("dedupd_push_target_queue_length", m);
        target_labels(m, p->t[i]);
        fprintf(m, " %zu\n", queued_t[i]);
    }
    if (p->resolve_all) {
        fputs("# HELP dedupd_push_resolve_addresses Addresses a placement URL's name resolved "
              "to (targets), with --placement-resolve-all.\n"
              "# TYPE dedupd_push_resolve_addresses gauge\n",
              m);
        for (size_t i = 0; i < p->n_names; i++)
            fprintf(m, "dedupd_push_resolve_addresses{target=\"%s\"} %zu\n", p->names[i].url,
                    p->names[i].n_targets);
        fputs("# HELP dedupd_push_resolve_failures_total Resolutions of a placement URL's name "
              "that failed (the last good addresses kept).\n"
              "# TYPE dedupd_push_resolve_failures_total counter\n",
              m);
        for (size_t i = 0; i < p->n_names; i++)
            fprintf(m, "dedupd_push_resolve_failures_total{target=\"%s\"} %llu\n", p->names[i].url,
                    (unsigned long long)p->names[i].resolve_failures);
        fputs("# HELP dedupd_push_resolve_empty_total Resolutions of a placement URL's name "
              "that found no address.\n"
              "# TYPE dedupd_push_resolve_empty_total counter\n",
              m);
        for (size_t i = 0; i < p->n_names; i++)
            fprintf(m, "dedupd_push_resolve_empty_total{target=\"%s\"} %llu\n", p->names[i].url,
                    (unsigned long long)p->names[i].resolve_empty);
    }
    pthread_mutex_unlock(&p->lock);
    dd_free(sent_t);
    dd_free(queued_t);
}
