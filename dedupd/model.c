/*
 * The cost-model service (see model.h): prior, active model, trainer thread
 * and predictions.
 *
 * Training reads every "vol/<name>" series of the store (the per-volume
 * documents the sampler writes, features and targets together), in time
 * order, at most MAX_TRAIN_ROWS of the newest rows, and trains one model per
 * target (placement/costmodel). Each trained model is stored as version N
 * of "costmodel" with its summary as version N of "costmodel-summary", so a
 * restart serves the same model and lists the same versions. A stored model
 * that does not load (corrupt, truncated, another format) is logged once and
 * the prior serves until the next training.
 */
#define _GNU_SOURCE
#include "dedupd/model.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "dedupd/store/store.h"

/* Newest rows one training reads: 14 days of 10 s samples of ~8 volumes;
 * training 200 rounds on them takes a few seconds on one core. */
#define MAX_TRAIN_ROWS 1000000u

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
    uint64_t last_train_ms;           /* monotonic */
    bool requested;                   /* a retrain was asked for */
    uint64_t runs_started, runs_done; /* a waiter waits for runs_done to pass its run */
    int last_result;
    char last_error[512];
    json_t *last_summary; /* of the last run that trained */
    json_t *versions;     /* summaries, oldest first */
    uint64_t trainings, failures;
    double last_seconds;
    size_t last_rows;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void dd_model_config_defaults(struct dd_model_config *c)
{
    memset(c, 0, sizeof(*c));
    c->min_train_samples = 500;
    c->retrain_every = 360;
    c->retrain_interval_s = 6 * 3600;
    c->rounds = 20;
}

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
    return c->d->n >= MAX_TRAIN_ROWS ? 1 : 0;
}

static int read_history(struct dd_store *store, struct dd_cm_data *d)
{
    char **names = NULL;
    size_t n = 0;
    int r = dd_store_list_series(store, "vol/", &names, &n);

    for (size_t i = 0; r >= 0 && i < n && d->n < MAX_TRAIN_ROWS; i++) {
        struct collect c = {d, 0};
        struct dd_store_query q = {.series = names[i], .from_ms = 0, .to_ms = UINT64_MAX};
        r = dd_store_query(store, &q, collect_point, &c, NULL);
        if (c.error < 0)
            r = c.error;
    }
    for (size_t i = 0; i < n; i++)
        dd_free(names[i]);
    dd_free(names);
    if (r < 0)
        return r;
    dd_cm_data_sort(d);
    return 0;
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

    r = read_history(s->store, &d);
    if (r < 0) {
        snprintf(errbuf, errlen, "reading the history: %s", dd_strerror(r));
        goto out;
    }
    for (size_t i = 0; i < d.n; i++)
        rows_cost += isfinite(d.y[DD_CM_COST][i]);
    *ret_rows = d.n;
    if (d.n < min_rows || d.n < 20) {
        snprintf(errbuf, errlen,
                 "%zu samples with a target in the history (%zu with cost); "
                 "training needs %u (--min-train-samples)",
                 d.n, rows_cost, min_rows);
        r = -EINVAL;
        goto out;
    }
    dd_cm_train_options_init(&o);
    o.rounds = rounds;
    r = dd_cm_train(&d, &s->prior, &o, version, wall_ms(), &m, errbuf, errlen);
    if (r < 0)
        goto out;
    r = dd_cm_model_save(m, &blob, &blen);
    if (r < 0) {
        snprintf(errbuf, errlen, "serialising the model: %s", dd_strerror(r));
        goto out;
    }
    summary = dd_cm_model_summary(m);
    text = json_dumps(summary, JSON_COMPACT);
    /* the model first: a summary never names a model that is not stored */
    r = dd_store_put_model(s->store, MODEL_NAME, version, blob, blen);
    if (r == 0 && text)
        r = dd_store_put_model(s->store, SUMMARY_NAME, version, text, strlen(text));
    free(text);
    if (r < 0) {
        snprintf(errbuf, errlen, "storing model version %llu: %s", (unsigned long long)version,
                 dd_strerror(r));
        json_decref(summary);
        goto out;
    }
    swap_in(s, m);
    m = NULL;
    *ret_summary = summary;
out:
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

static void *trainer_main(void *arg)
{
    struct dd_model_service *s = arg;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        uint64_t now = mono_ms();
        bool due = s->requested ||
                   (s->new_samples >= s->cfg.retrain_every && s->cfg.retrain_every > 0) ||
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
        uint64_t version = s->next_version, run = ++s->runs_started;
        unsigned min_rows = s->cfg.min_train_samples;
        unsigned rounds = s->cfg.rounds;
        s->requested = false;
        s->new_samples = 0;
        s->last_train_ms = now;
        pthread_mutex_unlock(&s->lock);

        json_t *summary = NULL;
        char err[512] = "";
        size_t rows = 0;
        uint64_t t0 = mono_ms();
        int r = train_now(s, version, min_rows, rounds, &summary, &rows, err, sizeof(err));
        double secs = (double)(mono_ms() - t0) / 1000.0;

        pthread_mutex_lock(&s->lock);
        s->runs_done = run;
        s->last_result = r;
        s->last_rows = rows;
        s->last_seconds = secs;
        snprintf(s->last_error, sizeof(s->last_error), "%s", r < 0 ? err : "");
        if (r == 0) {
            s->trainings++;
            s->next_version = version + 1;
            json_decref(s->last_summary);
            s->last_summary = json_incref(summary);
            json_array_append_new(s->versions, summary);
            uint64_t v;
            log_run(summary, secs, rows, active_state(s, &v));
        } else if (r != -EINVAL) {
            s->failures++;
            dd_log_warning("model training failed: %s", err);
        } else {
            dd_log_debug("model training skipped: %s", err);
        }
        pthread_cond_broadcast(&s->done);
    }
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
    for (uint64_t v = 1; v <= version; v++) {
        void *text = NULL;
        size_t tl;
        json_t *sum;
        if (dd_store_get_model(s->store, SUMMARY_NAME, v, &text, &tl, NULL) < 0)
            continue;
        sum = json_loadb(text, tl, 0, NULL);
        dd_free(text);
        if (json_is_object(sum)) {
            json_decref(s->last_summary);
            s->last_summary = json_incref(sum);
            json_array_append_new(s->versions, sum);
        } else {
            json_decref(sum);
        }
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
    s->last_train_ms = mono_ms();
    /* a store with history but no model trains at once */
    s->requested = false;
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
    pthread_mutex_unlock(&s->lock);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    dd_cm_model_free(s->model);
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

int dd_model_retrain(struct dd_model_service *s, json_t **ret, char *errbuf, size_t errlen)
{
    uint64_t mine;
    int r;

    if (!s->thread_started) {
        snprintf(errbuf, errlen, "this daemon keeps no history to train on");
        return -EINVAL;
    }
    pthread_mutex_lock(&s->lock);
    /* the run that starts after this request is ours */
    mine = s->runs_started + 1;
    s->requested = true;
    pthread_cond_broadcast(&s->wake);
    while (s->runs_done < mine && !s->stop)
        pthread_cond_wait(&s->done, &s->lock);
    r = s->stop && s->runs_done < mine ? -ECANCELED : s->last_result;
    if (r == 0)
        *ret = json_incref(s->last_summary);
    else
        snprintf(errbuf, errlen, "%s", s->last_error[0] ? s->last_error : dd_strerror(r));
    pthread_mutex_unlock(&s->lock);
    return r;
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
    training = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:s?}", "min_train_samples",
        (json_int_t)s->cfg.min_train_samples, "retrain_every", (json_int_t)s->cfg.retrain_every,
        "new_samples", (json_int_t)s->new_samples, "runs", (json_int_t)s->runs_done, "failures",
        (json_int_t)s->failures, "last_seconds", s->last_seconds, "last_rows",
        (json_int_t)s->last_rows, "last_error", s->last_error[0] ? s->last_error : NULL);
    doc = json_pack("{s:o, s:O, s:o, s:o}", "active", active, "versions", s->versions, "training",
                    training, "prior", dd_cm_prior_to_json(&s->prior));
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
