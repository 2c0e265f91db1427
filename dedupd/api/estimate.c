/*
 * Estimate jobs: POST /v1/estimate checks the request and the paths
 * against the configured roots and takes a job slot (429 when
 * MAX_RUNNING_JOBS run); everything slow — walking directories, the scan —
 * runs on the job's own thread (one scan thread each: a background estimate
 * must not take the node's CPUs), never on an HTTP worker. GET
 * /v1/estimate/{id} polls it. A finished job keeps only its result
 * document: the scan and its fingerprint table are freed (and the heap
 * trimmed) when it ends, so a daemon that ran big estimates goes back to
 * its usual size. Results are kept until their slot is reused, oldest
 * first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/api/request.h"
#include "dedupd/config.h"
#include "dedupd/scan/scan.h"

/* Estimate jobs kept (finished ones are dropped oldest first) and running. */
#define MAX_JOBS         16
#define MAX_RUNNING_JOBS 2

struct job {
    struct dd_estimate_jobs *owner;
    unsigned id;
    struct dd_scan *scan; /* while running; NULL once finished */
    json_t *paths;        /* the request's paths, walked by the job */
    pthread_t thread;
    bool started, done;
    int result;
    json_t *result_doc;               /* once finished: the result or the error */
    uint64_t bytes_done, bytes_total; /* once finished */
};

struct dd_estimate_jobs {
    pthread_mutex_t lock; /* guards everything */
    char roots[DD_CONFIG_MAX_ESTIMATE_ROOTS][1024];
    size_t n_roots;
    struct job jobs[MAX_JOBS];
    unsigned next_job;
};

int dd_estimate_jobs_new(struct dd_estimate_jobs **ret)
{
    struct dd_estimate_jobs *j = dd_calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    pthread_mutex_init(&j->lock, NULL);
    *ret = j;
    return 0;
}

/* Frees what a joined job holds. */
static void job_clear(struct job *j)
{
    dd_scan_free(j->scan);
    json_decref(j->paths);
    json_decref(j->result_doc);
    memset(j, 0, sizeof(*j));
}

struct dd_estimate_jobs *dd_estimate_jobs_free(struct dd_estimate_jobs *d)
{
    if (!d)
        return NULL;
    for (size_t i = 0; i < MAX_JOBS; i++) {
        struct job *j = &d->jobs[i];
        if (j->started) {
            pthread_mutex_lock(&d->lock);
            if (j->scan)
                dd_scan_cancel(j->scan);
            pthread_mutex_unlock(&d->lock);
            pthread_join(j->thread, NULL);
            job_clear(j);
        }
    }
    pthread_mutex_destroy(&d->lock);
    dd_free(d);
    return NULL;
}

void dd_estimate_jobs_set_roots(struct dd_estimate_jobs *d, const char (*roots)[1024], size_t n)
{
    pthread_mutex_lock(&d->lock);
    d->n_roots = n < DD_CONFIG_MAX_ESTIMATE_ROOTS ? n : DD_CONFIG_MAX_ESTIMATE_ROOTS;
    for (size_t i = 0; i < d->n_roots; i++)
        snprintf(d->roots[i], sizeof(d->roots[i]), "%s", roots[i]);
    pthread_mutex_unlock(&d->lock);
}

/* Is path (resolved) under one of the allowed roots? */
static bool allowed_path(struct dd_estimate_jobs *d, const char *path, char *why, size_t len)
{
    char real[PATH_MAX];
    /* a path that does not resolve and one outside the roots get the same
     * answer: an unauthenticated client cannot probe which files exist */
    if (!realpath(path, real)) {
        snprintf(why, len, "%.200s is not allowed (not under an estimate root)", path);
        return false;
    }
    bool ok = false;
    pthread_mutex_lock(&d->lock); /* SIGHUP replaces the roots */
    for (size_t i = 0; i < d->n_roots && !ok; i++) {
        char root[PATH_MAX];
        size_t rl;
        if (!realpath(d->roots[i], root))
            continue;
        rl = strlen(root);
        ok = strncmp(real, root, rl) == 0 && (real[rl] == '\0' || real[rl] == '/' || rl == 1);
    }
    pthread_mutex_unlock(&d->lock);
    if (ok)
        return true;
    snprintf(why, len, "%.200s is not allowed (not under an estimate root)", path);
    return false;
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    struct dd_estimate_jobs *d = j->owner;
    json_t *p, *doc = NULL;
    uint64_t done = 0, total = 0;
    size_t i;
    int r = 0;

    /* the directory walk: slow on big trees, so here and not on a worker */
    json_array_foreach(j->paths, i, p)
    {
        if (dd_scan_add_path(j->scan, json_string_value(p)) < 0) {
            const struct dd_scan_input *in =
                dd_scan_get_input(j->scan, dd_scan_n_inputs(j->scan) - 1);
            doc = json_pack("{s:s, s:s++}", "error", "bad_path", "message", json_string_value(p),
                            ": ", in && in->n_errors ? in->errors[0].message : "unusable");
            r = DD_E_INPUT;
            break;
        }
    }
    if (r == 0) {
        r = dd_scan_run(j->scan);
        doc = dd_scan_to_json(j->scan);
    }
    dd_scan_progress(j->scan, &done, &total);

    pthread_mutex_lock(&d->lock);
    j->result = r;
    j->result_doc = doc;
    j->bytes_done = done;
    j->bytes_total = total;
    dd_scan_free(j->scan);
    j->scan = NULL;
    __atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&d->lock);
    malloc_trim(0); /* give the fingerprint table's pages back */
    return NULL;
}

static int h_estimate_start(void *ctx, const struct dd_http_request *req,
                            struct dd_http_response *resp)
{
    struct dd_estimate_jobs *d = ctx;
    json_t *doc = dd_http_body_json(req, resp);
    struct dd_estimate_request q;
    struct dd_scan_options o;
    struct dd_scan *scan = NULL;
    struct job *slot = NULL;
    size_t i, running = 0;
    char why[512];

    if (!doc)
        return 0;
    if (dd_estimate_request_from_json(doc, &q, why, sizeof(why)) < 0) {
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request", "%s", why);
    }
    pthread_mutex_lock(&d->lock);
    size_t n_roots = d->n_roots;
    pthread_mutex_unlock(&d->lock);
    if (n_roots == 0) {
        json_decref(doc);
        return dd_http_reply_error(resp, 403, "forbidden",
                                   "no estimate roots are configured (estimate_roots)");
    }
    dd_scan_options_init(&o);
    if (q.has_mode)
        o.mode = q.exact ? DD_SCAN_MODE_EXACT : DD_SCAN_MODE_SAMPLED;
    o.threads = 1; /* a background job must not take the node's CPUs */
    for (i = 0; i < q.n_paths; i++) {
        if (!allowed_path(d, q.paths[i], why, sizeof(why))) {
            json_decref(doc);
            return dd_http_reply_error(resp, 403, "forbidden", "%s", why);
        }
    }
    if (dd_scan_new(&o, &scan) < 0) {
        json_decref(doc);
        return -ENOMEM;
    }

    pthread_mutex_lock(&d->lock);
    for (i = 0; i < MAX_JOBS; i++) {
        struct job *j = &d->jobs[i];
        if (j->started && !__atomic_load_n(&j->done, __ATOMIC_ACQUIRE))
            running++;
    }
    for (i = 0; i < MAX_JOBS && running < MAX_RUNNING_JOBS; i++) {
        struct job *j = &d->jobs[(d->next_job + i) % MAX_JOBS];
        if (!j->started || __atomic_load_n(&j->done, __ATOMIC_ACQUIRE)) {
            slot = j;
            break;
        }
    }
    if (slot) {
        if (slot->started) {
            pthread_join(slot->thread, NULL); /* finished: returns at once */
            job_clear(slot);
        }
        slot->owner = d;
        slot->id = ++d->next_job;
        slot->scan = scan;
        slot->paths = json_incref(json_object_get(doc, "paths")); /* checked: strings */
        slot->started = pthread_create(&slot->thread, NULL, job_main, slot) == 0;
        if (!slot->started) {
            json_decref(slot->paths);
            memset(slot, 0, sizeof(*slot));
        }
    }
    unsigned id = slot && slot->started ? slot->id : 0;
    pthread_mutex_unlock(&d->lock);
    json_decref(doc);
    if (!id) {
        dd_scan_free(scan);
        return dd_http_reply_error(resp, 429, "busy", "%d estimates are already running",
                                   MAX_RUNNING_JOBS);
    }
    return dd_http_reply_json(resp, 202,
                              json_pack("{s:i, s:s}", "id", (int)id, "status", "running"));
}

static int h_estimate_get(void *ctx, const struct dd_http_request *req,
                          struct dd_http_response *resp)
{
    struct dd_estimate_jobs *d = ctx;
    uint64_t id;
    json_t *out = NULL;

    if (dd_parse_u64(req->params[0], &id) < 0)
        return dd_http_reply_error(resp, 400, "bad_request", "job id must be a number");
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < MAX_JOBS; i++) {
        struct job *j = &d->jobs[i];
        if (!j->started || j->id != id)
            continue;
        uint64_t done = j->bytes_done, total = j->bytes_total;
        bool finished = __atomic_load_n(&j->done, __ATOMIC_ACQUIRE);
        if (!finished)
            dd_scan_progress(j->scan, &done, &total);
        out = json_pack("{s:i, s:s, s:I, s:I}", "id", (int)j->id, "status",
                        finished ? (j->result == 0 ? "done" : "failed") : "running", "bytes_done",
                        (json_int_t)done, "bytes_total", (json_int_t)total);
        if (finished && j->result_doc)
            json_object_set(out, "result", j->result_doc);
        break;
    }
    pthread_mutex_unlock(&d->lock);
    if (!out)
        return dd_http_reply_error(resp, 404, "not_found", "no estimate job %llu",
                                   (unsigned long long)id);
    return dd_http_reply_json(resp, 200, out);
}

size_t dd_api_estimate_routes(struct dd_estimate_jobs *jobs, struct dd_http_route *out)
{
    out[0] = (struct dd_http_route){"POST", "/v1/estimate", h_estimate_start, jobs, true, NULL, 0};
    out[1] =
        (struct dd_http_route){"GET", "/v1/estimate/{id}", h_estimate_get, jobs, false, NULL, 0};
    return 2;
}
