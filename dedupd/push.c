/*
 * The report pusher (push.h): per placement URL (--placement-url takes a
 * comma-separated list: every replica gets every report), a ring of
 * encoded reports under a mutex and one thread draining it through the
 * tree's HTTP client. The targets share nothing but the encoded text's
 * origin: one slow or dead replica never delays the others. The ring holds
 * JSON text, so the sampler's typed report is not kept past enqueue.
 */
#define _GNU_SOURCE
#include "dedupd/push.h"

#include <errno.h>
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

struct dd_pusher {
    size_t n;
    struct target *t[DD_PUSH_MAX_TARGETS];
};

static struct target *target_free(struct target *p);

/* One target for url, with the token and TLS files already checked. */
static int target_new(const struct dd_config *c, const char *url, const char *token,
                      struct target **ret, char *errbuf, size_t errlen)
{
    struct target *p = dd_calloc(1, sizeof(*p));
    struct dd_http_client_config cc = {0};
    int r;

    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    snprintf(p->url, sizeof(p->url), "%s", url);
    p->interval = c->interval;
    cc.base_url = url;
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

int dd_pusher_new(const struct dd_config *c, struct dd_pusher **ret, char *errbuf, size_t errlen)
{
    struct dd_pusher *p = dd_calloc(1, sizeof(*p));
    char urls[DD_PUSH_MAX_TARGETS][1024];
    size_t n = 0;
    char *token = NULL;
    int r;

    if (!p)
        return -ENOMEM;
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
    for (size_t i = 0; i < n; i++) {
        if ((r = target_new(c, urls[i], token, &p->t[i], errbuf, errlen)) < 0)
            goto fail;
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

int dd_pusher_start(struct dd_pusher *p)
{
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
    for (size_t i = 0; i < p->n; i++)
        target_free(p->t[i]);
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
    /* encoded once; each target owns a copy (the last takes this one) */
    for (size_t i = 0; i < p->n; i++) {
        char *mine = i + 1 == p->n ? text : strdup(text);
        if (mine)
            target_enqueue(p->t[i], mine);
    }
    if (!p->n)
        free(text);
}

/* Waits until ms passes or stop; returns stop. Called with the lock held. */
static bool wait_ms(struct target *p, uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!p->stop && pthread_cond_timedwait(&p->wake, &p->lock, &until) != ETIMEDOUT)
        ;
    return p->stop;
}

/* Statuses worth retrying: the placement role is down, overloaded, not
 * ready or (401) its token is being rotated. Other 4xx mean this report
 * is refused as it is. */
static bool retryable(int status)
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
                dd_log_info("report push to %s: delivering again", p->url);
            logged_status = 0;
            free(it.text);
            continue;
        }
        if (status > 0)
            snprintf(err, sizeof(err), "HTTP %d: %.200s", status, dd_dynbuf_str(&reply));
        snprintf(p->last_error, sizeof(p->last_error), "%s", err);
        if (status != logged_status)
            dd_log_warning("report push to %s: %s%s", p->url, err,
                           retryable(status) ? "; retrying with backoff" : "; report dropped");
        logged_status = status;
        if (!retryable(status)) {
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
        if (wait_ms(p, (uint64_t)rand_r(&seed) % (backoff + 1u)))
            break;
    }
    pthread_mutex_unlock(&p->lock);
    dd_dynbuf_free(&reply);
    return NULL;
}

void dd_pusher_metrics(struct dd_pusher *p, FILE *m)
{
    uint64_t sent = 0, failures = 0, dropped[D_COUNT] = {0}, sent_t[DD_PUSH_MAX_TARGETS];
    size_t queued = 0, queued_t[DD_PUSH_MAX_TARGETS];
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
    fprintf(m,
            "# HELP dedupd_push_queue_length Node reports waiting to be sent (the longest "
            "queue of the placement URLs).\n"
            "# TYPE dedupd_push_queue_length gauge\ndedupd_push_queue_length %zu\n",
            queued);
    fputs("# HELP dedupd_push_target_reports_sent_total Node reports accepted, per placement "
          "URL.\n# TYPE dedupd_push_target_reports_sent_total counter\n",
          m);
    for (size_t i = 0; i < p->n; i++)
        fprintf(m, "dedupd_push_target_reports_sent_total{target=\"%s\"} %llu\n", p->t[i]->url,
                (unsigned long long)sent_t[i]);
    fputs("# HELP dedupd_push_target_queue_length Node reports waiting, per placement URL.\n"
          "# TYPE dedupd_push_target_queue_length gauge\n",
          m);
    for (size_t i = 0; i < p->n; i++)
        fprintf(m, "dedupd_push_target_queue_length{target=\"%s\"} %zu\n", p->t[i]->url,
                queued_t[i]);
}
