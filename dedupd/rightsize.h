/*
 * The right-sizing service of the placement role (roles all, placement):
 * every observed pod outcome (POST /v1/observations, the node role's
 * reports) is stored in the store's observations column family, rebuilds
 * its owner's history at once, and every retrain_every new outcomes (or
 * retrain_interval_ms after the first new one) the models are retrained on
 * the service's own thread, never on an HTTP worker. The model
 * (placement/rightsize.h: trees, category dictionary, per-owner history)
 * is immutable; readers take a reference, writers swap in a new one.
 *
 * Store layout: an outcome is the observation (receive time ms, "rs/" +
 * pod_uid) whose value is dd_rs_outcome_to_json's text. A repeated pod_uid
 * is written again under the key (first receive time, same id), which
 * replaces the value in place: one key per pod UID, so a restart reads
 * each pod once. The trees are the model "rightsize" (dd_rs_model_save),
 * newest version served after a restart. The receive time (not the pod's
 * own finished_at) keys the row so the store's retention counts from when
 * dedupd learned of it.
 *
 * Threads: predict, observe and status may run on any thread at once.
 */
#ifndef DD_RIGHTSIZE_H
#define DD_RIGHTSIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "placement/rightsize.h"

struct dd_store;
struct dd_rightsize;

struct dd_rightsize_options {
    unsigned retrain_every;       /* new outcomes that start a retrain (default 200) */
    uint64_t retrain_interval_ms; /* a pending outcome waits at most this (default 600 s) */
    unsigned min_rows;            /* outcomes before trees are trained (default 100) */
};

void dd_rightsize_options_init(struct dd_rightsize_options *o);

/* Loads the stored outcomes and the newest stored model, starts the
 * training thread. store is borrowed and must outlive the service. On
 * failure errbuf says why. */
int dd_rightsize_new(struct dd_store *store, const struct dd_rightsize_options *o,
                     struct dd_rightsize **ret, char *errbuf, size_t errlen);
/* Stops the thread (a training in progress finishes first). NULL-safe;
 * returns NULL. */
struct dd_rightsize *dd_rightsize_free(struct dd_rightsize *rs);

/* The prediction for pod with the current model and history (live may be
 * NULL: unknown). Thread-safe. 0 or a negative error. */
int dd_rightsize_predict(struct dd_rightsize *rs, const struct dd_rs_pod *pod,
                         const struct dd_rs_live *live, struct dd_rs_prediction *out);

/* Whether any outcome is held (a cheap check before a prediction on a
 * hot path: without outcomes every prediction is "none"). Thread-safe. */
bool dd_rightsize_has_outcomes(struct dd_rightsize *rs);

/* Records one outcome (a repeated pod_uid replaces the earlier one): the
 * store first (committed before this returns), then the history. Returns
 * 0, -EINVAL (err names the field), or a store error (err says so). */
int dd_rightsize_observe(struct dd_rightsize *rs, const struct dd_rs_outcome *o, char *err,
                         size_t errlen);

/* GET /v1/rightsize/model: {"version", "trained_at_ms", "outcomes",
 * "owners", "pending", "training", "last_error", "targets": {"peak_cpu_cores":
 * {"train_rows", "holdout_rows", "model_mape_percent",
 * "fallback_mape_percent", "served"}, ...}, "categories": {...}}. A new
 * reference. */
json_t *dd_rightsize_status(struct dd_rightsize *rs);

/* Starts a retrain now (when at least one outcome is pending or no model
 * exists); returns at once. */
void dd_rightsize_retrain(struct dd_rightsize *rs);

/* Prometheus lines (dedupd_rightsize_*). */
#include <stdio.h>
void dd_rightsize_metrics(struct dd_rightsize *rs, FILE *m);

#endif
