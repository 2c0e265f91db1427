/*
 * The right-sizing service (rightsize.h). One mutex guards the training
 * rows, the pod-UID index and the current model pointer; the model itself
 * is immutable and reference-counted, so a prediction holds the lock only
 * to take a reference. Observations are written to the store under the
 * lock too (the store wants one writer at a time). The training thread
 * prepares its matrix under the lock (O(rows)), grows the trees without
 * it, then swaps in trees + the history as it stands by then.
 */
#define _GNU_SOURCE
#include "dedupd/rightsize.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/metrics.h"
#include "dedupd/store/store.h"

#define MODEL_NAME "rightsize"
#define ID_PREFIX  "rs/"

struct dd_rightsize {
    struct dd_store *store;
    struct dd_rightsize_options opt;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool started, stop, retrain_now, training;
    struct dd_rs_data *data;
    struct dd_rs_model *model; /* never NULL */
    json_t *uids;              /* pod_uid -> receive time ms (the store key) */
    size_t pending;            /* outcomes since the last training began */
    uint64_t first_pending_ms; /* monotonic */
    uint64_t observed, trainings, train_failures;
    double last_train_seconds;
    double seq;
    char last_error[512];
};

void dd_rightsize_options_init(struct dd_rightsize_options *o)
{
    o->retrain_every = 200;
    o->retrain_interval_ms = 600000;
    o->min_rows = 100;
}

static void options_fix(struct dd_rightsize_options *o)
{
    if (!o->retrain_every)
        o->retrain_every = 1;
    if (!o->min_rows)
        o->min_rows = 1;
}

/* Adds o to the rows and its owner's history (lock held). */
static int apply_locked(struct dd_rightsize *rs, const struct dd_rs_outcome *o)
{
    char key[3 * DD_NAME_MAX + 160];
    struct dd_rs_model *m;
    int r = dd_rs_data_add(rs->data, o, rs->seq++);
    if (r < 0)
        return r;
    dd_rs_owner_key(o->ns, o->owner_kind, o->owner_name, o->pod.name, o->pod_uid, key, sizeof(key));
    if ((r = dd_rs_model_with_history(rs->model, rs->data, key, &m)) < 0)
        return r;
    dd_rs_model_unref(rs->model);
    rs->model = m;
    return 0;
}

struct load_ctx {
    struct dd_rightsize *rs;
    size_t loaded, bad;
    uint64_t from_ms; /* the newest key seen */
};

static int load_one(void *ud, uint64_t ts_ms, const char *id, size_t id_len, const void *value,
                    size_t len)
{
    struct load_ctx *c = ud;
    struct dd_rs_outcome *o = NULL;
    char err[256];
    json_t *doc;

    c->from_ms = ts_ms;
    if (id_len < sizeof(ID_PREFIX) - 1 || memcmp(id, ID_PREFIX, sizeof(ID_PREFIX) - 1) != 0)
        return 0; /* someone else's observation */
    char uid[sizeof(o->pod_uid)];
    snprintf(uid, sizeof(uid), "%.*s", (int)(id_len - (sizeof(ID_PREFIX) - 1)),
             id + sizeof(ID_PREFIX) - 1);
    if (json_object_get(c->rs->uids, uid))
        return 0; /* loaded by the page before */
    if (!(o = dd_malloc(sizeof(*o))))
        return -ENOMEM;
    doc = json_loadb(value, len, 0, NULL);
    if (!doc || dd_rs_outcome_from_json(doc, o, err, sizeof(err)) < 0) {
        c->bad++;
    } else {
        int r = apply_locked(c->rs, o);
        if (r < 0) {
            json_decref(doc);
            dd_free(o);
            return r;
        }
        json_object_set_new(c->rs->uids, o->pod_uid, json_integer((json_int_t)ts_ms));
        c->loaded++;
    }
    json_decref(doc);
    dd_free(o);
    return 0;
}

static int train_once(struct dd_rightsize *rs)
{
    struct dd_rs_train_options to;
    struct dd_rs_prepared *p = NULL;
    struct dd_rs_model *trees = NULL, *m = NULL;
    char err[512] = "";
    uint64_t version, t0;
    int r;

    dd_rs_train_options_init(&to);
    to.min_rows = rs->opt.min_rows;
    pthread_mutex_lock(&rs->lock);
    rs->pending = 0;
    rs->retrain_now = false;
    rs->training = true;
    version = dd_rs_model_version(rs->model) + 1;
    r = dd_rs_train_prepare(rs->data, rs->model, &to, &p);
    pthread_mutex_unlock(&rs->lock);

    t0 = dd_mono_ms();
    if (r == 0)
        r = dd_rs_train_fit(p, version, dd_wall_ms(), &trees, err, sizeof(err));
    if (r == 0) {
        void *blob = NULL;
        size_t len = 0;
        r = dd_rs_model_save(trees, &blob, &len);
        if (r == 0) {
            r = dd_store_put_model(rs->store, MODEL_NAME, version, blob, len);
            if (r < 0)
                snprintf(err, sizeof(err), "storing model version %llu: %s",
                         (unsigned long long)version, dd_strerror(r));
            else if (version > 2)
                dd_store_delete_models_before(rs->store, MODEL_NAME, version - 1);
        } else {
            snprintf(err, sizeof(err), "saving the model: %s", dd_strerror(r));
        }
        dd_free(blob);
    }
    pthread_mutex_lock(&rs->lock);
    rs->training = false;
    rs->last_train_seconds = (double)(dd_mono_ms() - t0) / 1000.0;
    if (r == 0 && dd_rs_model_combine(trees, rs->model, &m) == 0) {
        dd_rs_model_unref(rs->model);
        rs->model = m;
        rs->trainings++;
        rs->last_error[0] = '\0';
    } else {
        rs->train_failures++;
        snprintf(rs->last_error, sizeof(rs->last_error), "%s",
                 *err ? err : dd_strerror(r < 0 ? r : -ENOMEM));
    }
    pthread_mutex_unlock(&rs->lock);
    if (r < 0 && r != -EINVAL)
        dd_log_warning("right-sizing: training failed: %s", err);
    dd_rs_prepared_free(p);
    dd_rs_model_unref(trees);
    return r;
}

static void *train_main(void *arg)
{
    struct dd_rightsize *rs = arg;
    pthread_mutex_lock(&rs->lock);
    while (!rs->stop) {
        uint64_t now = dd_mono_ms();
        bool due = rs->retrain_now || rs->pending >= rs->opt.retrain_every ||
                   (rs->pending && now - rs->first_pending_ms >= rs->opt.retrain_interval_ms);
        if (due && dd_rs_data_rows(rs->data) >= rs->opt.min_rows) {
            pthread_mutex_unlock(&rs->lock);
            train_once(rs);
            pthread_mutex_lock(&rs->lock);
            continue;
        }
        if (due) /* too few rows yet: wait for more */
            rs->retrain_now = false;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t wait_ms = 1000;
        if (rs->pending && rs->first_pending_ms + rs->opt.retrain_interval_ms > now)
            wait_ms = DD_MIN(wait_ms, rs->first_pending_ms + rs->opt.retrain_interval_ms - now);
        until.tv_sec += (time_t)(wait_ms / 1000);
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rs->wake, &rs->lock, &until);
    }
    pthread_mutex_unlock(&rs->lock);
    return NULL;
}

int dd_rightsize_new(struct dd_store *store, const struct dd_rightsize_options *o,
                     struct dd_rightsize **ret, char *errbuf, size_t errlen)
{
    struct dd_rightsize *rs = dd_calloc(1, sizeof(*rs));
    struct load_ctx lc = {0};
    void *blob = NULL;
    size_t len;
    uint64_t version;
    int r;

    if (!rs)
        return -ENOMEM;
    rs->store = store;
    if (o)
        rs->opt = *o;
    else
        dd_rightsize_options_init(&rs->opt);
    options_fix(&rs->opt);
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->wake, NULL);
    lc.rs = rs;
    if (!(rs->uids = json_object()) || dd_rs_data_new(&rs->data) < 0 ||
        dd_rs_model_with_history(NULL, rs->data, NULL, &rs->model) < 0) {
        r = -ENOMEM;
        snprintf(errbuf, errlen, "right-sizing: out of memory");
        goto fail;
    }
    /* every stored outcome, oldest first (a replaced pod has one key) */
    pthread_mutex_lock(&rs->lock);
    for (bool more = true; more;) {
        /* a query returns at most DD_STORE_QUERY_MAX_POINTS: page on by
         * time, from the last key's millisecond again (its pods already
         * loaded are skipped) */
        uint64_t from = lc.from_ms;
        more = false;
        r = dd_store_query_observations(store, from, UINT64_MAX, 0, load_one, &lc, &more);
        if (r <= 0)
            break;
        if (more && lc.from_ms == from)
            lc.from_ms++; /* a whole page in one millisecond: cannot page within it */
    }
    pthread_mutex_unlock(&rs->lock);
    if (r < 0) {
        snprintf(errbuf, errlen, "right-sizing: reading stored outcomes: %s", dd_strerror(r));
        goto fail;
    }
    if (lc.bad)
        dd_log_warning("right-sizing: %zu stored outcomes could not be read and are skipped",
                       lc.bad);
    r = dd_store_get_model(store, MODEL_NAME, 0, &blob, &len, &version);
    if (r == 0) {
        struct dd_rs_model *trees, *m;
        char err[512];
        if (dd_rs_model_load(blob, len, &trees, err, sizeof(err)) == 0) {
            if (dd_rs_model_combine(trees, rs->model, &m) == 0) {
                dd_rs_model_unref(rs->model);
                rs->model = m;
            }
            dd_rs_model_unref(trees);
        } else {
            /* a model this build cannot read: retrain from the outcomes */
            dd_log_warning("right-sizing: stored model version %llu not loaded (%s); retraining",
                           (unsigned long long)version, err);
            rs->retrain_now = true;
        }
        dd_free(blob);
    } else if (r != -ENOENT) {
        dd_log_warning("right-sizing: reading the stored model: %s", dd_strerror(r));
        rs->retrain_now = true;
    } else if (lc.loaded) {
        rs->retrain_now = true;
    }
    dd_log_info("right-sizing: %zu outcomes of %zu owners loaded, model version %llu", lc.loaded,
                dd_rs_data_owners(rs->data), (unsigned long long)dd_rs_model_version(rs->model));
    if ((r = -pthread_create(&rs->thread, NULL, train_main, rs)) < 0) {
        snprintf(errbuf, errlen, "right-sizing: starting the training thread: %s", strerror(-r));
        goto fail;
    }
    rs->started = true;
    *ret = rs;
    return 0;
fail:
    dd_rightsize_free(rs);
    return r;
}

struct dd_rightsize *dd_rightsize_free(struct dd_rightsize *rs)
{
    if (!rs)
        return NULL;
    if (rs->started) {
        pthread_mutex_lock(&rs->lock);
        rs->stop = true;
        pthread_cond_signal(&rs->wake);
        pthread_mutex_unlock(&rs->lock);
        pthread_join(rs->thread, NULL);
    }
    dd_rs_model_unref(rs->model);
    dd_rs_data_free(rs->data);
    json_decref(rs->uids);
    pthread_cond_destroy(&rs->wake);
    pthread_mutex_destroy(&rs->lock);
    dd_free(rs);
    return NULL;
}

int dd_rightsize_predict(struct dd_rightsize *rs, const struct dd_rs_pod *pod,
                         const struct dd_rs_live *live, struct dd_rs_prediction *out)
{
    struct dd_rs_model *m;
    int r;

    pthread_mutex_lock(&rs->lock);
    m = dd_rs_model_ref(rs->model);
    pthread_mutex_unlock(&rs->lock);
    r = dd_rs_predict(m, pod, live, out);
    dd_rs_model_unref(m);
    return r;
}

bool dd_rightsize_has_outcomes(struct dd_rightsize *rs)
{
    bool any;
    pthread_mutex_lock(&rs->lock);
    any = dd_rs_data_rows(rs->data) > 0;
    pthread_mutex_unlock(&rs->lock);
    return any;
}

int dd_rightsize_observe(struct dd_rightsize *rs, const struct dd_rs_outcome *o, char *err,
                         size_t errlen)
{
    char id[sizeof(ID_PREFIX) + sizeof(o->pod_uid)];
    struct dd_store_batch *b = NULL;
    json_t *doc;
    char *text;
    uint64_t ts;
    int r;

    if (!*o->pod_uid || !*o->ns) {
        snprintf(err, errlen, "%s: missing", *o->pod_uid ? "namespace" : "pod_uid");
        return -EINVAL;
    }
    doc = dd_rs_outcome_to_json(o);
    text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(doc);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(id, sizeof(id), ID_PREFIX "%s", o->pod_uid);
    pthread_mutex_lock(&rs->lock);
    json_t *seen = json_object_get(rs->uids, o->pod_uid);
    /* a repeated pod is written over its first key: one key per pod */
    ts = seen ? (uint64_t)json_integer_value(seen) : dd_wall_ms();
    if ((r = dd_store_batch_begin(rs->store, &b)) == 0 &&
        (r = dd_store_batch_put_observation(b, ts, id, text, strlen(text))) == 0) {
        r = dd_store_batch_commit(b, false);
        b = NULL;
    }
    dd_store_batch_free(b);
    if (r < 0) {
        snprintf(err, errlen, "store: %s", dd_strerror(r));
    } else {
        if (!seen)
            json_object_set_new(rs->uids, o->pod_uid, json_integer((json_int_t)ts));
        if ((r = apply_locked(rs, o)) < 0)
            snprintf(err, errlen, "out of memory");
        rs->observed++;
        if (rs->pending++ == 0)
            rs->first_pending_ms = dd_mono_ms();
        if (rs->pending >= rs->opt.retrain_every)
            pthread_cond_signal(&rs->wake);
    }
    pthread_mutex_unlock(&rs->lock);
    free(text);
    return r;
}

void dd_rightsize_retrain(struct dd_rightsize *rs)
{
    pthread_mutex_lock(&rs->lock);
    rs->retrain_now = true;
    pthread_cond_signal(&rs->wake);
    pthread_mutex_unlock(&rs->lock);
}

json_t *dd_rightsize_status(struct dd_rightsize *rs)
{
    struct dd_rs_model *m;
    json_t *doc;

    pthread_mutex_lock(&rs->lock);
    m = dd_rs_model_ref(rs->model);
    doc = dd_rs_model_summary(m);
    json_object_set_new(doc, "outcomes", json_integer((json_int_t)dd_rs_data_rows(rs->data)));
    json_object_set_new(doc, "owners", json_integer((json_int_t)dd_rs_data_owners(rs->data)));
    json_object_set_new(doc, "pending", json_integer((json_int_t)rs->pending));
    json_object_set_new(doc, "training", json_boolean(rs->training));
    json_object_set_new(doc, "trainings", json_integer((json_int_t)rs->trainings));
    json_object_set_new(doc, "last_train_seconds", json_real(rs->last_train_seconds));
    json_object_set_new(doc, "last_error",
                        *rs->last_error ? json_string(rs->last_error) : json_null());
    json_object_set_new(doc, "retrain_every", json_integer((json_int_t)rs->opt.retrain_every));
    json_object_set_new(doc, "min_rows", json_integer((json_int_t)rs->opt.min_rows));
    pthread_mutex_unlock(&rs->lock);
    dd_rs_model_unref(m);
    return doc;
}

void dd_rightsize_metrics(struct dd_rightsize *rs, FILE *f)
{
    uint64_t observed, trainings, failures, version;
    size_t rows;

    pthread_mutex_lock(&rs->lock);
    observed = rs->observed;
    trainings = rs->trainings;
    failures = rs->train_failures;
    version = dd_rs_model_version(rs->model);
    rows = dd_rs_data_rows(rs->data);
    pthread_mutex_unlock(&rs->lock);
    dd_metrics_family(f, "dedupd_rightsize_observations_total", "counter",
                      "Pod outcomes accepted since start (a repeated pod counts again).");
    fprintf(f, "dedupd_rightsize_observations_total %llu\n", (unsigned long long)observed);
    dd_metrics_family(f, "dedupd_rightsize_outcomes", "gauge",
                      "Pod outcomes the right-sizing model learns from.");
    fprintf(f, "dedupd_rightsize_outcomes %zu\n", rows);
    dd_metrics_family(f, "dedupd_rightsize_trainings_total", "counter",
                      "Right-sizing trainings, by result.");
    fprintf(f, "dedupd_rightsize_trainings_total{result=\"ok\"} %llu\n",
            (unsigned long long)trainings);
    fprintf(f, "dedupd_rightsize_trainings_total{result=\"failed\"} %llu\n",
            (unsigned long long)failures);
    dd_metrics_family(f, "dedupd_rightsize_model_version", "gauge",
                      "Version of the right-sizing model served (0: none).");
    fprintf(f, "dedupd_rightsize_model_version %llu\n", (unsigned long long)version);
}
