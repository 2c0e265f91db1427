/*
 * The daemon's cost-model service: the prior, the active XGBoost model,
 * background training from the store's history, model versions in the
 * store, and predictions for REST. The model itself (placement/costmodel)
 * is pure; this file does the store I/O, the thread and the swapping.
 *
 * Serving rule: a trained model answers only while it beats the prior on its
 * hold-out for both targets; otherwise the prior answers. Every answer says
 * which ("source") and which version.
 *
 * Threads: predictions run on HTTP threads under a read lock on the active
 * model; the trainer builds a new model without the lock and swaps it in
 * under the write lock, so a prediction sees the old model or the new one,
 * never a mix.
 */
#ifndef DD_TRAINER_H
#define DD_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "placement/costmodel.h"

struct dd_store;

struct dd_model_config {
    unsigned min_train_samples; /* rows with a target before XGBoost trains (default 500) */
    unsigned retrain_every;     /* new volume samples between retrains (default 360) */
    double retrain_interval_s;  /* retrain at least this often when there is news (6 h) */
    unsigned rounds;            /* boosting rounds (default 20) */
    char prior_file[1024];      /* JSON prior coefficients; "" = the calibrated defaults */
    char node_name[256];        /* the node this process samples ("vol/" series are its) */
};

/* Inline: dd_config (config.c) takes its defaults without the trainer. */
static inline void dd_model_config_defaults(struct dd_model_config *c)
{
    *c = (struct dd_model_config){.min_train_samples = 500,
                                  .retrain_every = 360,
                                  .retrain_interval_s = 6 * 3600,
                                  .rounds = 20};
}

struct dd_model_service;

/*
 * Loads the prior (prior_file, when set: errbuf names a bad file) and the
 * latest model stored (a corrupt one is logged and the prior serves), then
 * starts the trainer thread. store is borrowed and must outlive the
 * service.
 */
int dd_model_service_new(struct dd_store *store, const struct dd_model_config *c,
                         struct dd_model_service **ret, char *errbuf, size_t errlen);
/* Stops the trainer (a training in progress finishes first) and waits for
 * retrain calls still waiting to leave. NULL-safe. */
struct dd_model_service *dd_model_service_free(struct dd_model_service *s);

/* The sampler stored n new volume samples. */
void dd_model_note_samples(struct dd_model_service *s, size_t n);
/* SIGHUP: new thresholds (the prior file is read at start only). */
void dd_model_reconfigure(struct dd_model_service *s, const struct dd_model_config *c);

/* GET /v1/model: {"active": {...}, "versions": [...], "training": {...}}. */
json_t *dd_model_status(struct dd_model_service *s);
/*
 * Queues a training run on the store's history (requests made before it
 * starts share it) and waits for it at most wait_ms. Returns the run's
 * document ({"run": id, "status": "queued" | "running" | "done" | "skipped"
 * | "failed", and when finished "seconds", "rows", "error" or the new
 * version's summary fields}) and its HTTP status in *ret_http: 200 done,
 * 409 skipped (too little history: "error" says how much), 500 failed, 202
 * still queued or running (with "poll": "/v1/model/runs/<id>").
 */
json_t *dd_model_retrain(struct dd_model_service *s, unsigned wait_ms, int *ret_http);
/*
 * The same without blocking the caller: a small thread waits (at most
 * wait_ms) and then calls cb(arg, doc, http) with what dd_model_retrain
 * would have returned (cb owns doc). Returns 0 (cb will be called exactly
 * once, possibly before this returns), -EBUSY (stopping, or 32 calls
 * waiting already) or another negative errno; then cb is not called.
 */
typedef void (*dd_model_retrain_cb)(void *arg, json_t *doc, int http);
int dd_model_retrain_async(struct dd_model_service *s, unsigned wait_ms, dd_model_retrain_cb cb,
                           void *arg);
/* A run's document by id (as above), or NULL when unknown or forgotten
 * (the last 8 runs are kept). */
json_t *dd_model_run(struct dd_model_service *s, uint64_t id, int *ret_http);

/*
 * One prediction: {"cost": ..., "latency_ms": ..., "source": "prior" |
 * "xgboost", "model_version": N, "explanation": {...}}. A NaN feature is
 * missing (XGBoost's missing value; the prior reads it as 0). Returns 0 or
 * an error.
 */
int dd_model_predict(struct dd_model_service *s, const float row[DD_CM_NFEATURES], json_t **ret,
                     char *errbuf, size_t errlen);

/* Which model answered a batch. */
struct dd_model_source {
    bool xgboost;     /* false: the prior */
    uint64_t version; /* the trained model's version (0: none trained) */
};

/*
 * Typed batch prediction with the active model (the prior or XGBoost, by
 * the serving rule above), no explanations: the scorer's call for
 * thousands of what-if rows at once. cost[n] and latency[n] are filled.
 * Thread-safe. Returns 0, -ENOMEM or DD_E_LIBRARY (errbuf).
 */
struct dd_features;
int dd_model_predict_batch(struct dd_model_service *s, const struct dd_features *rows, size_t n,
                           double *cost, double *latency, struct dd_model_source *ret_source,
                           char *errbuf, size_t errlen);

/* Prometheus families: active kind and version, hold-out figures, training
 * runs, their duration and failures. */
void dd_model_metrics(struct dd_model_service *s, FILE *m);

#endif
