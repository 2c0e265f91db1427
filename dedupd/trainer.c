/*
 * The cost-model service (see model.h): prior, active model, trainer thread
 * and predictions.
 *
 * Training reads the newest rows of every "vol/<name>" series of the store
 * (the per-volume documents the sampler writes, features and targets
 * together; at most MAX_TRAIN_ROWS in all, shared between the series), puts
 * them in time order and trains one model per target (placement/costmodel).
 * Each trained model is stored as version N of "costmodel" with its summary
 * as version N of "costmodel-summary" (the summary first, so a model in the
 * store always has one), so a restart serves the same model and lists the
 * same versions; versions older than KEEP_VERSIONS are pruned. A stored
 * model that does not load (corrupt, truncated, another format) is logged
 * once and the prior serves until the next training.
 *
 * Runs have ids. A retrain request queues one (requests before it starts
 * share it) and waits a bounded time for it; the caller can poll the run by
 * id afterwards. Shutdown wakes every waiter before the state goes away.
 */
#define _GNU_SOURCE
#include "dedupd/trainer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/store/store.h"

/* Newest rows one training reads, all series together: two days of 10 s
 * samples of 6 volumes, ~9 MB of rows while training; 20 trees on them
 * take about a second on one core (bench/model-bench: 1.2 s for 100,000
 * rows with the larger model of earlier versions). */
#define MAX_TRAIN_ROWS 100000u
/* Scheduled trainings (by sample count) are at least this far apart; a
 * requested one (POST /v1/model/retrain) is not held back. A run on
 * MAX_TRAIN_ROWS takes about a second on one core, so this bounds training
 * to a few % of a core however fast rows arrive. */
#define MIN_SCHEDULED_GAP_MS 60000u
/* Model versions kept in the store and listed by /v1/model. */
#define KEEP_VERSIONS 20u
/* Finished runs remembered for polling. */
#define RUNS_KEPT 8u

#define MODEL_NAME   "costmodel"
#define SUMMARY_NAME "costmodel-summary"

struct dd_model_service {
    struct dd_store *store;
    struct dd_cm_prior prior;

    pthread_rwlock_t active_lock; /* guards model and serve_xgb */
    struct dd_cm_model *model;    /* latest trained or loaded; NULL = none */
    bool serve_xgb;               /* model beats the prior */

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake, done;
    pthread_t thread;
    bool thread_started, stop;
    struct dd_model_config cfg;
    uint64_t new_samples;
    uint64_t next_version;
    uint64_t last_train_ms;     /* monotonic */
    uint64_t last_scheduled_ms; /* the last run started by the sample count; 0 none */
    uint64_t queued_run;        /* a requested run not started yet; 0 = none */
    uint64_t last_run_id;       /* ids of runs, requested or scheduled */
    unsigned waiters;           /* retrain calls waiting on done */
    struct run {
        uint64_t id;
        enum { RUN_QUEUED, RUN_RUNNING, RUN_DONE } state;
        int result;
        char error[512];
        json_t *summary; /* when it trained */
        double seconds;
        size_t rows;
    } runs[RUNS_KEPT];    /* by id % RUNS_KEPT */
    json_t *last_summary; /* of the last run that trained */
    json_t *versions;     /* summaries, oldest first, at most KEEP_VERSIONS */
    uint64_t trainings, failures;
    double last_seconds;
};

/* ---- reading history ---- */

struct collect {
    struct dd_cm_data *d;
    int error;
};

static int collect_point(void *ud, uint64_t ts_ms, const void *value, size_t len)
{
    struct collect *c = ud;
    json_t *doc = json_loadb(value, len, 0, NULL);
    if (!doc)
        return 0; /* a sample that is not JSON teaches nothing */
    int r = dd_cm_data_add_doc(c->d, doc, ts_ms);
    json_decref(doc);
    if (r < 0) {
        c->error = r;
        return r;
    }
    return 0;
}

/* The node a series belongs to: "node/<node>/vol/<volume>" (a report
 * from that node) or "vol/<volume>" (this process's own sampler). */
static void series_node(const char *series, const char *self, char *node, size_t len)
{
    const char *slash;
    if (strncmp(series, "node/", 5) == 0 && (slash = strchr(series + 5, '/')) != NULL)
        snprintf(node, len, "%.*s", (int)(slash - (series + 5)), series + 5);
    else
        snprintf(node, len, "%s", self);
}

/*
 * The training sample, stratified by node and series: MAX_TRAIN_ROWS are
 * shared equally between the nodes that have history, and each node's
 * share equally between its volumes; each series gives its newest rows up
 * to its share (the store keeps older history downsampled, so a share
 * reaches further back in time than its count suggests). A node with many
 * volumes or a long history cannot crowd out the others, and a run stays
 * bounded however large the cluster. Rows per node go to by_node.
 */
static int read_history(struct dd_store *store, const char *self, struct dd_cm_data *d,
                        json_t *by_node)
{
    static const char *const prefixes[] = {"vol/", "node/"};
    char **names[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    json_t *series_per_node = json_object();
    char node[DD_NAME_MAX];
    int r = 0;

    for (size_t p = 0; r >= 0 && p < 2; p++)
        r = dd_store_list_series(store, prefixes[p], &names[p], &n[p]);
    for (size_t p = 0; r >= 0 && p < 2; p++) {
        for (size_t i = 0; i < n[p]; i++) {
            series_node(names[p][i], self, node, sizeof(node));
            json_t *c = json_object_get(series_per_node, node);
            json_object_set_new(series_per_node, node,
                                json_integer(c ? json_integer_value(c) + 1 : 1));
        }
    }
    size_t nodes = json_object_size(series_per_node);
    for (size_t p = 0; r >= 0 && p < 2; p++) {
        for (size_t i = 0; r >= 0 && i < n[p]; i++) {
            series_node(names[p][i], self, node, sizeof(node));
            size_t per_node = MAX_TRAIN_ROWS / (nodes ? nodes : 1);
            size_t share =
                per_node / (size_t)json_integer_value(json_object_get(series_per_node, node));
            size_t before = d->n;
            struct collect c = {d, 0};
            struct dd_store_query q = {.series = names[p][i],
                                       .from_ms = 0,
                                       .to_ms = UINT64_MAX,
                                       .limit = share ? share : 1,
                                       .newest_first = true};
            r = dd_store_query(store, &q, collect_point, &c, NULL);
            if (c.error < 0)
                r = c.error;
            json_t *k = json_object_get(by_node, node);
            json_object_set_new(
                by_node, node,
                json_integer((k ? json_integer_value(k) : 0) + (json_int_t)(d->n - before)));
        }
    }
    for (size_t p = 0; p < 2; p++) {
        for (size_t i = 0; i < n[p]; i++)
            dd_free(names[p][i]);
        dd_free(names[p]);
    }
    json_decref(series_per_node);
    return r < 0 ? r : dd_cm_data_sort(d);
}

/* ---- training ---- */

static bool active_state(struct dd_model_service *s, uint64_t *ret_version);

static void swap_in(struct dd_model_service *s, struct dd_cm_model *m)
{
    struct dd_cm_model *old;
    pthread_rwlock_wrlock(&s->active_lock);
    old = s->model;
    s->model = m;
    s->serve_xgb = m && dd_cm_model_beats_prior(m);
    pthread_rwlock_unlock(&s->active_lock);
    dd_cm_model_free(old);
}

/* One training run. Called on the trainer thread without s->lock. */
static int train_now(struct dd_model_service *s, uint64_t version, unsigned min_rows,
                     unsigned rounds, json_t **ret_summary, size_t *ret_rows, char *errbuf,
                     size_t errlen)
{
    struct dd_cm_data d = {0};
    struct dd_cm_train_options o;
    struct dd_cm_model *m = NULL;
    void *blob = NULL;
    size_t blen = 0, rows_cost = 0;
    json_t *summary;
    char *text;
    int r;

    json_t *by_node = json_object();
    r = read_history(s->store, s->cfg.node_name, &d, by_node);
    if (r < 0) {
        snprintf(errbuf, errlen, "reading the history: %s", dd_strerror(r));
        goto out;
    }
    for (size_t i = 0; i < d.n; i++)
        rows_cost += isfinite(d.y[DD_CM_COST][i]);
    *ret_rows = d.n;
    if (min_rows < 20)
        min_rows = 20; /* the fewest a model is trained on (placement/costmodel) */
    if (d.n < min_rows) {
        snprintf(errbuf, errlen,
                 "%zu samples with a cost or latency in the history (%zu with a cost); "
                 "training needs %u (--min-train-samples, at least 20)",
                 d.n, rows_cost, min_rows);
        r = -EINVAL;
        goto out;
    }
    dd_cm_train_options_init(&o);
    o.rounds = rounds;
    r = dd_cm_train(&d, &s->prior, &o, version, dd_wall_ms(), &m, errbuf, errlen);
    if (r < 0)
        goto out;
    r = dd_cm_model_save(m, &blob, &blen);
    if (r < 0) {
        snprintf(errbuf, errlen, "serialising the model: %s", dd_strerror(r));
        goto out;
    }
    summary = dd_cm_model_summary(m);
    if (summary) /* which nodes' history the model learned from */
        json_object_set(summary, "rows_by_node", by_node);
    text = summary ? json_dumps(summary, JSON_COMPACT) : NULL;
    if (!text) {
        json_decref(summary);
        snprintf(errbuf, errlen, "serialising the model summary: out of memory");
        r = -ENOMEM;
        goto out;
    }
    /* the summary first: a stored model always has its summary, and a
     * summary without its model (a failed write) is replaced by the next
     * run, which reuses the version */
    r = dd_store_put_model(s->store, SUMMARY_NAME, version, text, strlen(text));
    if (r == 0)
        r = dd_store_put_model(s->store, MODEL_NAME, version, blob, blen);
    free(text);
    if (r < 0) {
        snprintf(errbuf, errlen, "storing model version %llu: %s", (unsigned long long)version,
                 dd_strerror(r));
        json_decref(summary);
        goto out;
    }
    if (version > KEEP_VERSIONS) { /* pruning is best effort: the next run tries again */
        (void)dd_store_delete_models_before(s->store, MODEL_NAME, version + 1 - KEEP_VERSIONS);
        (void)dd_store_delete_models_before(s->store, SUMMARY_NAME, version + 1 - KEEP_VERSIONS);
    }
    swap_in(s, m);
    m = NULL;
    *ret_summary = summary;
out:
    json_decref(by_node);
    dd_free(blob);
    dd_cm_model_free(m);
    dd_cm_data_release(&d);
    return r;
}

static void log_run(const json_t *summary, double secs, size_t rows, bool serving)
{
    json_t *h = json_object_get(summary, "holdout");
    double v[4];
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        json_t *e = json_object_get(h, dd_cm_target_names[t]);
        v[2 * t] =
            json_number_value(json_object_get(json_object_get(e, "xgboost"), "mape_percent"));
        v[2 * t + 1] =
            json_number_value(json_object_get(json_object_get(e, "prior"), "mape_percent"));
    }
    dd_log_info("model v%lld trained on %zu samples in %.2f s: hold-out MAPE cost %.2f %% (prior "
                "%.2f %%), latency %.2f %% (prior %.2f %%); serving %s",
                json_integer_value(json_object_get(summary, "version")), rows, secs, v[0], v[1],
                v[2], v[3], serving ? "xgboost" : "the prior");
}

static struct run *run_slot(struct dd_model_service *s, uint64_t id)
{
    return &s->runs[id % RUNS_KEPT];
}

/* Starts remembering run id (evicting the run RUNS_KEPT before it). */
static struct run *run_new(struct dd_model_service *s, uint64_t id)
{
    struct run *r = run_slot(s, id);
    json_decref(r->summary);
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->state = RUN_QUEUED;
    return r;
}

/* Appends a summary, keeping the newest KEEP_VERSIONS. */
static void add_version(struct dd_model_service *s, json_t *summary)
{
    json_array_append(s->versions, summary);
    while (json_array_size(s->versions) > KEEP_VERSIONS)
        json_array_remove(s->versions, 0);
}

static void *trainer_main(void *arg)
{
    struct dd_model_service *s = arg;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        uint64_t now = dd_mono_ms();
        /* scheduled runs are spaced: a placement role fed by thousands of
         * nodes passes --retrain-every samples many times a second, and each
         * run reads up to MAX_TRAIN_ROWS of history */
        bool spaced = !s->last_scheduled_ms || now - s->last_scheduled_ms >= MIN_SCHEDULED_GAP_MS;
        bool due = s->queued_run ||
                   (spaced && s->new_samples >= s->cfg.retrain_every && s->cfg.retrain_every > 0) ||
                   (s->new_samples > 0 &&
                    (double)(now - s->last_train_ms) >= s->cfg.retrain_interval_s * 1000.0);
        if (s->stop)
            break;
        if (!due) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&s->wake, &s->lock, &until);
            continue;
        }
        uint64_t version = s->next_version, id = s->queued_run;
        struct run *run = id ? run_slot(s, id) : run_new(s, ++s->last_run_id);
        unsigned min_rows = s->cfg.min_train_samples;
        unsigned rounds = s->cfg.rounds;
        id = run->id;
        run->state = RUN_RUNNING;
        if (!s->queued_run)
            s->last_scheduled_ms = now;
        s->queued_run = 0;
        s->new_samples = 0;
        s->last_train_ms = now;
        pthread_mutex_unlock(&s->lock);

        json_t *summary = NULL;
        char err[512] = "";
        size_t rows = 0;
        uint64_t t0 = dd_mono_ms();
        int r = train_now(s, version, min_rows, rounds, &summary, &rows, err, sizeof(err));
        double secs = (double)(dd_mono_ms() - t0) / 1000.0;

        pthread_mutex_lock(&s->lock);
        run = run_slot(s, id);
        if (run->id == id) { /* not evicted meanwhile */
            run->state = RUN_DONE;
            run->result = r;
            run->rows = rows;
            run->seconds = secs;
            snprintf(run->error, sizeof(run->error), "%s", r < 0 ? err : "");
            run->summary = json_incref(summary);
        }
        s->last_seconds = secs;
        if (r == 0) {
            s->trainings++;
            s->next_version = version + 1;
            json_decref(s->last_summary);
            s->last_summary = json_incref(summary);
            add_version(s, summary);
            uint64_t v;
            log_run(summary, secs, rows, active_state(s, &v));
        } else if (r != -EINVAL) {
            s->failures++;
            dd_log_warning("model training failed: %s", err);
        } else {
            dd_log_debug("model training skipped: %s", err);
        }
        json_decref(summary);
        pthread_cond_broadcast(&s->done);
    }
    /* waiters see stop and leave */
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- start and stop ---- */

static int load_prior(struct dd_cm_prior *p, const char *path, char *errbuf, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    char why[256];
    int r;

    if (!doc) {
        snprintf(errbuf, errlen, "prior file %s: line %d column %d: %s", path, je.line, je.column,
                 je.text);
        return -EINVAL;
    }
    r = dd_cm_prior_from_json(p, doc, why, sizeof(why));
    json_decref(doc);
    if (r < 0)
        snprintf(errbuf, errlen, "prior file %s: %s", path, why);
    return r;
}

/* The latest stored model and every stored summary. */
static void load_stored(struct dd_model_service *s)
{
    void *blob = NULL;
    size_t len = 0;
    uint64_t version = 0;
    char err[512];
    int r = dd_store_get_model(s->store, MODEL_NAME, 0, &blob, &len, &version);

    if (r == -ENOENT)
        return;
    if (r < 0) {
        dd_log_error("reading the stored cost model: %s; serving the prior", dd_strerror(r));
        return;
    }
    s->next_version = version + 1;
    struct dd_cm_model *m = NULL;
    if (dd_cm_model_load(blob, len, &m, err, sizeof(err)) < 0)
        dd_log_error("stored cost model version %llu does not load (%s); serving the prior "
                     "until the next training",
                     (unsigned long long)version, err);
    else
        swap_in(s, m);
    dd_free(blob);
    for (uint64_t v = version > KEEP_VERSIONS ? version + 1 - KEEP_VERSIONS : 1; v <= version;
         v++) {
        void *text = NULL;
        size_t tl;
        json_t *sum;
        if (dd_store_get_model(s->store, SUMMARY_NAME, v, &text, &tl, NULL) < 0)
            continue;
        r = dd_cm_summary_from_text(text, tl, v, &sum, err, sizeof(err));
        dd_free(text);
        if (r < 0) {
            dd_log_warning("stored cost model summary version %llu: %s; not listed",
                           (unsigned long long)v, err);
            continue;
        }
        json_decref(s->last_summary);
        s->last_summary = json_incref(sum);
        add_version(s, sum);
        json_decref(sum);
    }
    if (m)
        dd_log_info("serving stored cost model version %llu (%s)", (unsigned long long)version,
                    s->serve_xgb ? "xgboost" : "it does not beat the prior: the prior answers");
}

int dd_model_service_new(struct dd_store *store, const struct dd_model_config *c,
                         struct dd_model_service **ret, char *errbuf, size_t errlen)
{
    struct dd_model_service *s = dd_calloc(1, sizeof(*s));
    int r;

    if (!s)
        return -ENOMEM;
    s->store = store;
    s->cfg = *c;
    s->next_version = 1;
    s->versions = json_array();
    pthread_rwlock_init(&s->active_lock, NULL);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    dd_cm_prior_defaults(&s->prior);
    if (c->prior_file[0] && (r = load_prior(&s->prior, c->prior_file, errbuf, errlen)) < 0) {
        dd_model_service_free(s);
        return r;
    }
    if (store)
        load_stored(s);
    s->last_train_ms = dd_mono_ms();
    /* a store with history but no model trains at once */
    if (store && !s->model)
        s->new_samples = s->cfg.retrain_every;
    if (store && pthread_create(&s->thread, NULL, trainer_main, s) != 0) {
        snprintf(errbuf, errlen, "cannot start the model trainer thread");
        dd_model_service_free(s);
        return -EAGAIN;
    }
    s->thread_started = store != NULL;
    *ret = s;
    return 0;
}

struct dd_model_service *dd_model_service_free(struct dd_model_service *s)
{
    if (!s)
        return NULL;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->lock);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    /* a retrain call still waiting sees stop and leaves: wait for it */
    pthread_mutex_lock(&s->lock);
    while (s->waiters > 0)
        pthread_cond_wait(&s->done, &s->lock);
    pthread_mutex_unlock(&s->lock);
    dd_cm_model_free(s->model);
    for (size_t i = 0; i < RUNS_KEPT; i++)
        json_decref(s->runs[i].summary);
    json_decref(s->last_summary);
    json_decref(s->versions);
    pthread_rwlock_destroy(&s->active_lock);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
    dd_free(s);
    return NULL;
}

void dd_model_note_samples(struct dd_model_service *s, size_t n)
{
    pthread_mutex_lock(&s->lock);
    s->new_samples += n;
    if (s->new_samples >= s->cfg.retrain_every)
        pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

void dd_model_reconfigure(struct dd_model_service *s, const struct dd_model_config *c)
{
    pthread_mutex_lock(&s->lock);
    s->cfg.min_train_samples = c->min_train_samples;
    s->cfg.retrain_every = c->retrain_every;
    s->cfg.retrain_interval_s = c->retrain_interval_s;
    s->cfg.rounds = c->rounds;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

/* A run's status document and its HTTP status. Under s->lock. */
static json_t *run_json(const struct run *r, int *ret_http)
{
    static const char *const states[] = {"queued", "running", "done"};
    const char *status = states[r->state];
    json_t *doc;

    *ret_http = 202;
    if (r->state == RUN_DONE) {
        status = r->result == 0 ? "done" : (r->result == -EINVAL ? "skipped" : "failed");
        *ret_http = r->result == 0 ? 200 : (r->result == -EINVAL ? 409 : 500);
    }
    doc = r->summary ? json_deep_copy(r->summary) : json_object();
    json_object_set_new(doc, "run", json_integer((json_int_t)r->id));
    json_object_set_new(doc, "status", json_string(status));
    if (r->state == RUN_DONE) {
        json_object_set_new(doc, "seconds", json_real(r->seconds));
        json_object_set_new(doc, "rows", json_integer((json_int_t)r->rows));
        if (r->error[0])
            json_object_set_new(doc, "error", json_string_nocheck(r->error));
    }
    return doc;
}

/* Most retrain calls waiting at once (each async one holds a small thread). */
#define MAX_RETRAIN_WAITERS 32u

static json_t *no_history(int *ret_http)
{
    *ret_http = 409;
    return json_pack("{s:s, s:s}", "status", "skipped", "error",
                     "this daemon keeps no history to train on");
}

static struct timespec deadline_after(unsigned wait_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

/* Under s->lock: queues a run (requests made before it starts share it) and
 * counts the caller as a waiter. Returns the run's id. */
static uint64_t retrain_enqueue_locked(struct dd_model_service *s)
{
    uint64_t id;
    if (!s->queued_run)
        s->queued_run = run_new(s, ++s->last_run_id)->id;
    id = s->queued_run;
    pthread_cond_broadcast(&s->wake);
    s->waiters++;
    return id;
}

/* Under s->lock: waits for run id until the deadline or a stop, then
 * returns its document and stops counting the caller as a waiter. */
static json_t *retrain_wait_locked(struct dd_model_service *s, uint64_t id,
                                   const struct timespec *until, int *ret_http)
{
    json_t *doc;
    while (!s->stop && run_slot(s, id)->id == id && run_slot(s, id)->state != RUN_DONE) {
        if (pthread_cond_timedwait(&s->done, &s->lock, until) == ETIMEDOUT)
            break;
    }
    if (run_slot(s, id)->id == id) {
        doc = run_json(run_slot(s, id), ret_http);
        if (*ret_http == 202)
            json_object_set_new(doc, "poll",
                                json_sprintf("/v1/model/runs/%llu", (unsigned long long)id));
    } else {
        *ret_http = 503;
        doc = json_pack("{s:I, s:s}", "run", (json_int_t)id, "status", "forgotten");
    }
    s->waiters--;
    pthread_cond_broadcast(&s->done); /* a shutdown may wait for the last waiter */
    return doc;
}

json_t *dd_model_retrain(struct dd_model_service *s, unsigned wait_ms, int *ret_http)
{
    struct timespec until;
    json_t *doc;
    uint64_t id;

    if (!s->thread_started)
        return no_history(ret_http);
    until = deadline_after(wait_ms);
    pthread_mutex_lock(&s->lock);
    id = retrain_enqueue_locked(s);
    doc = retrain_wait_locked(s, id, &until, ret_http);
    pthread_mutex_unlock(&s->lock);
    return doc;
}

struct retrain_waiter {
    struct dd_model_service *s;
    uint64_t id;
    struct timespec until;
    dd_model_retrain_cb cb;
    void *arg;
};

static void *retrain_waiter_main(void *arg)
{
    struct retrain_waiter *w = arg;
    dd_model_retrain_cb cb = w->cb;
    void *cb_arg = w->arg;
    int http = 500;
    json_t *doc;

    pthread_mutex_lock(&w->s->lock);
    doc = retrain_wait_locked(w->s, w->id, &w->until, &http);
    /* from here on the service may be freed: only the callback runs */
    pthread_mutex_unlock(&w->s->lock);
    dd_free(w);
    cb(cb_arg, doc, http);
    return NULL;
}

int dd_model_retrain_async(struct dd_model_service *s, unsigned wait_ms, dd_model_retrain_cb cb,
                           void *arg)
{
    struct retrain_waiter *w;
    pthread_attr_t attr;
    pthread_t t;
    int r;

    if (!s->thread_started) {
        int http;
        json_t *doc = no_history(&http);
        cb(arg, doc, http);
        return 0;
    }
    w = dd_calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct retrain_waiter){.s = s, .until = deadline_after(wait_ms), .cb = cb, .arg = arg};
    pthread_mutex_lock(&s->lock);
    if (s->stop || s->waiters >= MAX_RETRAIN_WAITERS) {
        pthread_mutex_unlock(&s->lock);
        dd_free(w);
        return -EBUSY;
    }
    /* counted as a waiter before the thread exists, so a shutdown waits for it */
    w->id = retrain_enqueue_locked(s);
    pthread_mutex_unlock(&s->lock);

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 128u * 1024u);
    r = pthread_create(&t, &attr, retrain_waiter_main, w);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        pthread_mutex_lock(&s->lock);
        s->waiters--;
        pthread_cond_broadcast(&s->done);
        pthread_mutex_unlock(&s->lock);
        dd_free(w);
        return -r;
    }
    return 0;
}

json_t *dd_model_run(struct dd_model_service *s, uint64_t id, int *ret_http)
{
    json_t *doc = NULL;
    pthread_mutex_lock(&s->lock);
    if (id > 0 && run_slot(s, id)->id == id)
        doc = run_json(run_slot(s, id), ret_http);
    pthread_mutex_unlock(&s->lock);
    return doc;
}

/* ---- status ---- */

/* Which model answers now, and its version (0: none trained). */
static bool active_state(struct dd_model_service *s, uint64_t *ret_version)
{
    bool xgb;
    pthread_rwlock_rdlock(&s->active_lock);
    xgb = s->model && s->serve_xgb;
    *ret_version = s->model ? dd_cm_model_version(s->model) : 0;
    pthread_rwlock_unlock(&s->active_lock);
    return xgb;
}

static json_t *holdout_of(json_t *summary, const char *kind)
{
    json_t *o = json_object(), *h = json_object_get(summary, "holdout");
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        json_t *e = json_object_get(json_object_get(h, dd_cm_target_names[t]), kind);
        json_object_set_new(o, dd_cm_target_names[t],
                            json_pack("{s:O?, s:O?}", "mape_percent",
                                      json_object_get(e, "mape_percent"), "r2",
                                      json_object_get(e, "r2")));
    }
    return o;
}

json_t *dd_model_status(struct dd_model_service *s)
{
    json_t *active, *training, *doc;
    bool xgb;
    uint64_t version;

    xgb = active_state(s, &version);
    pthread_mutex_lock(&s->lock);
    json_t *summary = NULL, *v;
    size_t i;
    json_array_foreach(s->versions, i, v)
    {
        if ((uint64_t)json_integer_value(json_object_get(v, "version")) == version)
            summary = v;
    }
    active = json_pack("{s:s, s:I, s:o}", "kind", xgb ? "xgboost" : "prior", "version",
                       (json_int_t)version, "holdout",
                       summary ? holdout_of(summary, xgb ? "xgboost" : "prior") : json_null());
    /* which nodes' history the active model learned from */
    if (summary && json_object_get(summary, "rows_by_node"))
        json_object_set(active, "rows_by_node", json_object_get(summary, "rows_by_node"));
    training =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "min_train_samples",
                  (json_int_t)s->cfg.min_train_samples, "retrain_every",
                  (json_int_t)s->cfg.retrain_every, "new_samples", (json_int_t)s->new_samples,
                  "runs", (json_int_t)s->last_run_id, "trainings", (json_int_t)s->trainings,
                  "failures", (json_int_t)s->failures, "last_seconds", s->last_seconds);
    if (s->last_run_id) {
        int http;
        json_object_set_new(training, "last_run", run_json(run_slot(s, s->last_run_id), &http));
    }
    /* a copy: the trainer appends to the live array after the lock drops */
    doc =
        json_pack("{s:o, s:o, s:o, s:o}", "active", active, "versions", json_deep_copy(s->versions),
                  "training", training, "prior", dd_cm_prior_to_json(&s->prior));
    pthread_mutex_unlock(&s->lock);
    return doc;
}

/* ---- predictions ---- */

static json_t *features_json(const float row[DD_CM_NFEATURES])
{
    json_t *o = json_object();
    for (size_t f = 0; f < DD_CM_NFEATURES; f++)
        json_object_set_new(o, dd_cm_feature_names[f],
                            isfinite(row[f]) ? json_real(row[f]) : json_null());
    return o;
}

static json_t *prior_explanation(const struct dd_cm_prior *p, enum dd_cm_target t,
                                 const float row[DD_CM_NFEATURES], double *ret_value)
{
    double terms[DD_CM_PRIOR_MAX_TERMS];
    json_t *o = json_object();
    *ret_value = dd_cm_prior_predict(p, t, row, terms);
    for (size_t i = 0; i < dd_cm_prior_nterms(t); i++)
        json_object_set_new(o, dd_cm_prior_term_name(t, i), json_real(terms[i]));
    double load = row[DD_CM_NODE_CPU_UTIL_EX_VDO];
    load = isfinite(load) ? (load < 0 ? 0 : (load > 0.95 ? 0.95 : load)) : 0;
    return json_pack("{s:s, s:o, s:f}", "kind", "prior_terms", "terms", o, "cpu_share_left",
                     1.0 - load);
}

int dd_model_predict(struct dd_model_service *s, const float row[DD_CM_NFEATURES], json_t **ret,
                     char *errbuf, size_t errlen)
{
    json_t *expl = json_object();
    double value[DD_CM_NTARGETS];
    uint64_t version = 0;
    bool xgb;
    int r = 0;

    pthread_rwlock_rdlock(&s->active_lock);
    xgb = s->model && s->serve_xgb;
    if (s->model)
        version = dd_cm_model_version(s->model);
    for (int t = 0; t < DD_CM_NTARGETS && r == 0; t++) {
        enum dd_cm_target tg = (enum dd_cm_target)t;
        if (!xgb) {
            json_object_set_new(expl, dd_cm_target_names[t],
                                prior_explanation(&s->prior, tg, row, &value[t]));
            continue;
        }
        double c[DD_CM_NFEATURES + 1];
        r = dd_cm_model_predict(s->model, tg, row, 1, &value[t], errbuf, errlen);
        if (r == 0)
            r = dd_cm_model_contribs(s->model, tg, row, c, errbuf, errlen);
        if (r == 0) {
            json_t *o = json_object();
            for (size_t f = 0; f < DD_CM_NFEATURES; f++)
                json_object_set_new(o, dd_cm_feature_names[f], json_real(c[f]));
            json_object_set_new(expl, dd_cm_target_names[t],
                                json_pack("{s:s, s:s, s:f, s:o}", "kind", "shap", "space", "log",
                                          "base", c[DD_CM_NFEATURES], "contributions", o));
        }
    }
    pthread_rwlock_unlock(&s->active_lock);
    if (r < 0) {
        json_decref(expl);
        return r;
    }
    *ret = json_pack("{s:f, s:f, s:s, s:I, s:o, s:o}", "cost", value[DD_CM_COST], "latency_ms",
                     value[DD_CM_LATENCY], "source", xgb ? "xgboost" : "prior", "model_version",
                     (json_int_t)version, "explanation", expl, "features", features_json(row));
    return 0;
}

void dd_model_metrics(struct dd_model_service *s, FILE *m)
{
    uint64_t version;
    bool xgb = active_state(s, &version);

    pthread_mutex_lock(&s->lock);
    fprintf(m,
            "# HELP dedupd_model_active_xgboost 1 when the XGBoost model answers, 0 the prior.\n"
            "# TYPE dedupd_model_active_xgboost gauge\ndedupd_model_active_xgboost %d\n"
            "# HELP dedupd_model_version Version of the latest model trained or loaded.\n"
            "# TYPE dedupd_model_version gauge\ndedupd_model_version %llu\n"
            "# HELP dedupd_model_trainings_total Training runs that produced a model.\n"
            "# TYPE dedupd_model_trainings_total counter\ndedupd_model_trainings_total %llu\n"
            "# HELP dedupd_model_training_failures_total Training runs that failed.\n"
            "# TYPE dedupd_model_training_failures_total counter\n"
            "dedupd_model_training_failures_total %llu\n"
            "# HELP dedupd_model_training_seconds Duration of the last training run.\n"
            "# TYPE dedupd_model_training_seconds gauge\ndedupd_model_training_seconds %.3f\n",
            xgb, (unsigned long long)version, (unsigned long long)s->trainings,
            (unsigned long long)s->failures, s->last_seconds);
    if (s->last_summary) {
        json_t *h = json_object_get(s->last_summary, "holdout");
        fprintf(m, "# HELP dedupd_model_holdout_mape_percent Hold-out MAPE of the latest "
                   "model and of the prior.\n"
                   "# TYPE dedupd_model_holdout_mape_percent gauge\n");
        for (int t = 0; t < DD_CM_NTARGETS; t++) {
            static const char *const kinds[] = {"xgboost", "prior"};
            for (size_t k = 0; k < 2; k++) {
                json_t *v = json_object_get(
                    json_object_get(json_object_get(h, dd_cm_target_names[t]), kinds[k]),
                    "mape_percent");
                if (json_is_number(v))
                    fprintf(m,
                            "dedupd_model_holdout_mape_percent{target=\"%s\",kind=\"%s\"} "
                            "%.6g\n",
                            dd_cm_target_names[t], kinds[k], json_number_value(v));
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
}

int dd_model_predict_batch(struct dd_model_service *s, const struct dd_features *rows, size_t n,
                           double *cost, double *latency, struct dd_model_source *ret_source,
                           char *errbuf, size_t errlen)
{
    float *X = dd_reallocarray(NULL, n ? n : 1, sizeof(float) * DD_CM_NFEATURES);
    struct dd_model_source src = {0};
    int r = 0;

    if (!X)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        dd_features_model_row(&rows[i], X + i * DD_CM_NFEATURES);
    pthread_rwlock_rdlock(&s->active_lock);
    src.xgboost = s->model && s->serve_xgb;
    src.version = s->model ? dd_cm_model_version(s->model) : 0;
    if (src.xgboost) {
        r = dd_cm_model_predict(s->model, DD_CM_COST, X, n, cost, errbuf, errlen);
        if (r == 0)
            r = dd_cm_model_predict(s->model, DD_CM_LATENCY, X, n, latency, errbuf, errlen);
    } else {
        for (size_t i = 0; i < n; i++) {
            cost[i] = dd_cm_prior_predict(&s->prior, DD_CM_COST, X + i * DD_CM_NFEATURES, NULL);
            latency[i] =
                dd_cm_prior_predict(&s->prior, DD_CM_LATENCY, X + i * DD_CM_NFEATURES, NULL);
        }
    }
    pthread_rwlock_unlock(&s->active_lock);
    dd_free(X);
    if (r == 0 && ret_source)
        *ret_source = src;
    return r;
}
