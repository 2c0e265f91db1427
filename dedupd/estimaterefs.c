/*
 * Following dedupd.io/estimate job URLs (estimaterefs.h). A table of URLs
 * under a mutex; the thread copies one URL out, fetches it with the tree's
 * HTTP client (libcurl) without the lock, and writes the outcome back. The
 * reply's meaning is csi/'s (dd_csi_estimate_job_reduction).
 */
#define _GNU_SOURCE
#include "dedupd/estimaterefs.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/common.h"
#include "common/dynbuf.h"
#include "csi/csi.h"
#include "dedupd/http/client.h"

#define RETRY_FAILED_MS 30000u
#define REPLY_MAX       (4u << 20) /* a job's answer with its per-input list */

enum state { S_PENDING, S_RUNNING, S_DONE, S_FAILED, S_COUNT };
static const char *const state_names[S_COUNT] = {"pending", "running", "done", "failed"};

struct ref {
    char url[DD_NAME_MAX];
    enum state state;
    double reduction;
    char why[200];
    uint64_t next_ms; /* monotonic: when to fetch again */
};

struct dd_estimate_refs {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_bool stop;
    pthread_t thread;
    bool started;
    uint64_t period_ms;
    struct ref refs[DD_ESTIMATE_REFS_MAX];
    size_t n;
};

static bool cancelled(void *ud)
{
    struct dd_estimate_refs *r = ud;
    return atomic_load(&r->stop);
}

int dd_estimate_refs_new(double period_s, struct dd_estimate_refs **ret)
{
    struct dd_estimate_refs *r = dd_calloc(1, sizeof(*r));
    pthread_condattr_t ca;
    if (!r)
        return -ENOMEM;
    r->period_ms = (uint64_t)((period_s > 0 ? period_s : 5) * 1000.0);
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->wake, &ca);
    pthread_condattr_destroy(&ca);
    *ret = r;
    return 0;
}

double dd_estimate_refs_get(struct dd_estimate_refs *r, const char *url, char *note, size_t notelen)
{
    double v = (double)NAN;
    size_t i;
    if (note && notelen)
        note[0] = '\0';
    if (strlen(url) >= DD_NAME_MAX)
        return v;
    pthread_mutex_lock(&r->lock);
    for (i = 0; i < r->n && strcmp(r->refs[i].url, url) != 0; i++)
        ;
    if (i == r->n) {
        if (r->n < DD_ESTIMATE_REFS_MAX) {
            struct ref *e = &r->refs[r->n++];
            memset(e, 0, sizeof(*e));
            snprintf(e->url, sizeof(e->url), "%s", url);
            e->state = S_PENDING;
            pthread_cond_broadcast(&r->wake);
            if (note && notelen)
                snprintf(note, notelen, "dedupd.io/estimate %.120s: not fetched yet", url);
        } else if (note && notelen) {
            snprintf(note, notelen, "dedupd.io/estimate: more than %u job URLs; not followed",
                     DD_ESTIMATE_REFS_MAX);
        }
    } else if (r->refs[i].state == S_DONE) {
        v = r->refs[i].reduction;
    } else if (note && notelen) {
        snprintf(note, notelen, "dedupd.io/estimate %.120s: %s%s%s", url,
                 state_names[r->refs[i].state], r->refs[i].why[0] ? ": " : "", r->refs[i].why);
    }
    pthread_mutex_unlock(&r->lock);
    return v;
}

/* One fetch of url: the state and reduction it leaves. */
static enum state fetch(struct dd_estimate_refs *r, const char *url, double *red, char *why,
                        size_t whylen)
{
    const char *p = strstr(url, "/v1/estimate/");
    char base[DD_NAME_MAX], err[512];
    struct dd_http_client *c = NULL;
    struct dd_dynbuf reply;
    enum state st = S_FAILED;

    if (!p || (size_t)(p - url) >= sizeof(base)) {
        snprintf(why, whylen, "not an estimate job URL");
        return S_FAILED;
    }
    memcpy(base, url, (size_t)(p - url));
    base[p - url] = '\0';
    struct dd_http_client_config cc = {.base_url = base,
                                       .connect_timeout_ms = 3000,
                                       .timeout_ms = 5000,
                                       .cancel = cancelled,
                                       .cancel_ud = r};
    if (dd_http_client_new(&cc, &c, err, sizeof(err)) < 0) {
        snprintf(why, whylen, "%.190s", err);
        return S_FAILED;
    }
    dd_dynbuf_init(&reply, REPLY_MAX);
    int code = dd_http_client_call(c, "GET", p, NULL, &reply, err, sizeof(err));
    if (code < 0) {
        snprintf(why, whylen, "%.190s", err);
    } else if (code == 404) {
        snprintf(why, whylen, "no such job (404: the node role may have restarted)");
    } else if (code != 200) {
        snprintf(why, whylen, "HTTP %d", code);
    } else {
        json_t *doc = json_loadb(dd_dynbuf_str(&reply), dd_dynbuf_len(&reply), 0, NULL);
        int k = doc ? dd_csi_estimate_job_reduction(doc, red, why, whylen) : -EINVAL;
        if (!doc)
            snprintf(why, whylen, "the answer is not JSON");
        st = k == 0 ? S_DONE : k == -EAGAIN ? S_RUNNING : S_FAILED;
        if (k == -EAGAIN)
            why[0] = '\0';
        json_decref(doc);
    }
    dd_dynbuf_free(&reply);
    dd_http_client_free(c);
    return st;
}

static void *run(void *arg)
{
    struct dd_estimate_refs *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stop)) {
        uint64_t now = dd_mono_ms(), wake = now + r->period_ms;
        size_t i;
        for (i = 0; i < r->n; i++)
            if (r->refs[i].state != S_DONE && r->refs[i].next_ms <= now)
                break;
        if (i < r->n) {
            char url[DD_NAME_MAX], why[200] = "";
            double red = (double)NAN;
            snprintf(url, sizeof(url), "%s", r->refs[i].url);
            pthread_mutex_unlock(&r->lock);
            enum state st = fetch(r, url, &red, why, sizeof(why));
            pthread_mutex_lock(&r->lock);
            /* entries are only appended: i still names url */
            struct ref *e = &r->refs[i];
            e->state = st;
            e->reduction = red;
            snprintf(e->why, sizeof(e->why), "%s", why);
            e->next_ms = dd_mono_ms() + (st == S_FAILED ? RETRY_FAILED_MS : r->period_ms);
            if (st == S_DONE)
                dd_log_info("dedupd.io/estimate %s: reduction %.3g", url, red);
            else if (st == S_FAILED)
                dd_log_warning("dedupd.io/estimate %s: %s", url, why);
            continue;
        }
        for (i = 0; i < r->n; i++)
            if (r->refs[i].state != S_DONE && r->refs[i].next_ms < wake)
                wake = r->refs[i].next_ms;
        struct timespec ts;
        uint64_t left = wake > now ? wake - now : 1;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (left % 1000) * 1000000u;
        ts.tv_sec += (time_t)(left / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&r->wake, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int dd_estimate_refs_start(struct dd_estimate_refs *r)
{
    if (pthread_create(&r->thread, NULL, run, r) != 0)
        return -EAGAIN;
    r->started = true;
    return 0;
}

struct dd_estimate_refs *dd_estimate_refs_free(struct dd_estimate_refs *r)
{
    if (!r)
        return NULL;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, true);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    if (r->started)
        pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    dd_free(r);
    return NULL;
}

void dd_estimate_refs_metrics(struct dd_estimate_refs *r, FILE *m)
{
    size_t n[S_COUNT] = {0};
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        n[r->refs[i].state]++;
    pthread_mutex_unlock(&r->lock);
    fputs("# HELP dedupd_estimate_refs Estimate job URLs named by dedupd.io/estimate, by "
          "state.\n# TYPE dedupd_estimate_refs gauge\n",
          m);
    for (int s = 0; s < S_COUNT; s++)
        fprintf(m, "dedupd_estimate_refs{state=\"%s\"} %zu\n", state_names[s], n[s]);
}
