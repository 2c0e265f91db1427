/*
 * The cost model: what VDO's dedup costs in CPU and write latency for a
 * volume, from its feature vector (DESIGN.md names), as an analytic prior
 * and as XGBoost models trained on observed history.
 *
 * Targets: cost = VDO thread CPU-seconds per GiB written; latency = the dm
 * device's average write latency (ms). One model per target.
 *
 * The prior (a closed form; coefficients calibrated by bench/calibrate and
 * bench/vdo-vm-series, see dd_cm_prior_defaults):
 *
 *   cost    = [h  + b log2 E  + v u  + r c  + q c p n ] x (1 + k L / (1 - L))
 *   latency = [l0 + l1 log2 E + l2 u + l3 c + l4 c p n] x (1 + k' L / (1 - L))
 *
 * with E = index entries (at least 2), u = interval dedup hit rate (the
 * duplicate share, 0..1), n = 1 - u the new-block share, c = compression on,
 * p = packer savings (the interval's share of stored blocks the packer
 * saved: how compressible the new blocks are), L = node CPU utilisation
 * without the VDO threads (0..0.95). Terms, per block written:
 *   new_block (h, l0)         what a new block costs: hash, allocation,
 *                             index update, the write;
 *   index_lookup (b, l1)      the index lookup, growing with the index;
 *   duplicate_verify (v, l2)  what a duplicate costs beyond a new block:
 *                             dm-vdo reads the candidate back and compares
 *                             it before it shares it (the real dm-vdo series
 *                             measured +24-39 % CPU at 90 % duplicates, so
 *                             v > 0 there; the userspace proxy only compares
 *                             memory and skips the write, so v < 0 there);
 *   compression_on (r, l3)    a cost of every write while compression is on,
 *                             new or duplicate: the packer's bookkeeping, and
 *                             verifying a compressed candidate reads and
 *                             decompresses it;
 *   lz4 (q, l4)               LZ4 and packing of the compressible new blocks.
 * all slowed by the CPU share the rest of the node leaves: with k = 1 the
 * factor is 1 / (1 - L), the work divided by the CPU share left to VDO; the
 * fit finds k (0 says other load does not inflate the CPU seconds
 * themselves, only the time they take).
 *
 * Why this form. The prior had h + w n (new_block_write) + q c p n. A
 * duplicate term cannot sit beside both: u + n = 1, so h + v u + w n has
 * only two identifiable coefficients; the new-block write now lives in h
 * and v is what a duplicate costs beyond it (an old prior file converts
 * exactly: h = hash + w, v = -w). The old compression term scaled with n,
 * but on the real dm-vdo compression's extra cost shrank far less than the
 * new-block share (+4 to +8 CPU-s/GiB at 90 % duplicates where n-scaling
 * predicts +2). Forms tried on both data sets (hold-out MAPE of the fitted
 * prior, time order / interleaved; VDO series cost, calibration cost):
 *   q c p n (old)   15.7 / 13.1 %   14.4 / 6.8 %
 *   q c p           19.6 / 16.6 %   21.1 / 14.6 %
 *   r c             15.8 / 14.4 %   18.0 / 12.8 %
 *   r c + q c p n   14.3 / 12.6 %   13.8 / 6.7 %  <- chosen
 * c p alone loses the proxy's LZ4 (which works on new blocks only); c
 * alone loses how compressible the data is; the sum keeps both, and its
 * coefficients are positive on both data sets. A duplicate term growing
 * with the index (v u log2 E) did no better on either (16.4 / 13.1 %).
 * Zero blocks are not in the features (VDO does not count them apart), so
 * the prior has no zero-share term.
 *
 * XGBoost (C API) learns each target from history: trained on the older
 * (1 - holdout) share of rows in time order, evaluated on the newest share
 * against the prior; targets are learned in log space (relative errors
 * weigh alike across volumes) and explained with SHAP contributions in that
 * space. Monotone constraints: more write rate, write IOPS, node CPU load,
 * CPU or IO pressure or run queue never predicts a lower latency; more node
 * CPU load, CPU pressure or run queue never predicts a lower cost.
 *
 * Pure: no I/O. A trained model is immutable, so predictions from many
 * threads share it (each call copies its results out of XGBoost's
 * per-thread buffers); the caller swaps models atomically.
 */
#ifndef DD_PLACEMENT_COSTMODEL_H
#define DD_PLACEMENT_COSTMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "placement/features.h"

/* ---- features: the model's inputs are placement/features.h's model
 * list, in its order (DD_CM_x == DD_F_x) ---- */

#define DD_CM_ENUM_(id, ...) DD_CM_##id = DD_F_##id,
enum dd_cm_feature { DD_FEATURES_MODEL(DD_CM_ENUM_) DD_CM_NFEATURES = DD_F_NMODEL };

/* "write_mbps", ... in enum order (the JSON names). */
extern const char *const dd_cm_feature_names[DD_CM_NFEATURES];

enum dd_cm_target {
    DD_CM_COST = DD_T_COST,
    DD_CM_LATENCY = DD_T_LATENCY,
    DD_CM_NTARGETS = DD_T_COUNT
};
/* "cost", "latency" */
extern const char *const dd_cm_target_names[DD_CM_NTARGETS];

/*
 * A feature row from a JSON "features" object. Lenient (history rows): a
 * missing, null or non-number feature is NaN (XGBoost's missing value).
 * Strict (API input): every feature must be present and a finite number,
 * rates, counts and shares not negative, shares not above 1; errbuf names
 * the feature ("features.write_mbps: ...") and -EINVAL is returned.
 */
int dd_cm_row_from_json(json_t *features, float row[DD_CM_NFEATURES], bool strict, char *errbuf,
                        size_t errlen);

/* ---- the prior ---- */

#define DD_CM_PRIOR_COST_TERMS    5 /* h, b, v, r, q */
#define DD_CM_PRIOR_LATENCY_TERMS 5 /* l0, l1, l2, l3, l4 */
#define DD_CM_PRIOR_MAX_TERMS     5

struct dd_cm_prior {
    double cost[DD_CM_PRIOR_COST_TERMS];
    double latency[DD_CM_PRIOR_LATENCY_TERMS];
    double contention[DD_CM_NTARGETS]; /* k per target, see above */
};

/* The calibrated defaults (bench/calibrate/results/prior-fit.json). */
void dd_cm_prior_defaults(struct dd_cm_prior *p);
/* Names of the terms of a target: "new_block" (latency: "base"),
 * "index_lookup", "duplicate_verify", "compression_on", "lz4". */
const char *dd_cm_prior_term_name(enum dd_cm_target t, size_t i);
size_t dd_cm_prior_nterms(enum dd_cm_target t);

/* The prior's prediction; terms (may be NULL) get each term's share of it
 * (they add up to the prediction). */
double dd_cm_prior_predict(const struct dd_cm_prior *p, enum dd_cm_target t,
                           const float row[DD_CM_NFEATURES], double terms[DD_CM_PRIOR_MAX_TERMS]);

/* Fits target t's coefficients and contention factor: k on a grid 0..3,
 * the coefficients by least squares on relative error (weights 1/y^2) over
 * rows whose target is finite and positive. Returns 0, -EINVAL (fewer rows
 * than terms, or a singular system). */
int dd_cm_prior_fit(struct dd_cm_prior *p, enum dd_cm_target t, const float *X, const double *y,
                    size_t n);

/* Prior coefficients to and from JSON {"cost": {"new_block": h, ...,
 * "cpu_contention": k}, ...} (a missing cpu_contention is 1). A target in
 * the earlier four-term form ({"hash" or "base", "index_lookup",
 * "new_block_write", "compression"}) is read and converted exactly (see
 * above); a target with keys of both forms is refused. */
json_t *dd_cm_prior_to_json(const struct dd_cm_prior *p);
int dd_cm_prior_from_json(struct dd_cm_prior *p, json_t *doc, char *errbuf, size_t errlen);

/* ---- evaluation ---- */

struct dd_cm_eval {
    double mape_percent; /* mean |pred - y| / y over y > 0, in % */
    double r2;           /* 1 - SSres / SStot; NaN when y is constant */
    size_t n;
};

void dd_cm_evaluate(const double *pred, const double *y, size_t n, struct dd_cm_eval *ret);

/* ---- training data ---- */

struct dd_cm_data {
    float *X;                  /* n rows of DD_CM_NFEATURES */
    double *y[DD_CM_NTARGETS]; /* NaN where a row lacks the target */
    uint64_t *time_ms;         /* rows in time order */
    size_t n, cap;
};

/* Appends a row (copied). Rows must come in time order; a row with neither
 * target finite is skipped. Returns 0 or -ENOMEM. */
int dd_cm_data_add(struct dd_cm_data *d, const float row[DD_CM_NFEATURES],
                   const double y[DD_CM_NTARGETS], uint64_t time_ms);
/* Appends a stored volume document ({"features": {...}} with the targets
 * "cost" and "latency" among the features). */
int dd_cm_data_add_doc(struct dd_cm_data *d, json_t *doc, uint64_t time_ms);
/* Sorts rows by time (stable, O(n log n)), for data gathered series by
 * series. Returns 0 or -ENOMEM (d unchanged). */
int dd_cm_data_sort(struct dd_cm_data *d);
void dd_cm_data_release(struct dd_cm_data *d);

/* ---- XGBoost models ---- */

struct dd_cm_train_options {
    unsigned rounds;         /* boosting rounds (default 20) */
    unsigned max_depth;      /* default 4 */
    double eta;              /* default 0.45 */
    double holdout_fraction; /* newest share held out (default 0.2) */
    /* 0: hold out the newest holdout_fraction (time order: how dedupd
     * trains, a test of extrapolation); k >= 2: hold out every k-th row of
     * each target instead (interleaved: the hold-out spans the whole
     * history, a test of shape) */
    unsigned holdout_every;
    unsigned nthread; /* default 1 */
    uint64_t seed;
};

void dd_cm_train_options_init(struct dd_cm_train_options *o);

struct dd_cm_model;

/*
 * Trains one model per target on d (time order kept: the newest
 * holdout_fraction of each target's rows is held out, or every
 * holdout_every-th row), evaluates it and
 * the prior p on the hold-out. A target needs at least 20 rows. version and
 * trained_at_ms are recorded as given. Returns 0, -EINVAL (too few rows;
 * errbuf says which target), DD_E_LIBRARY (XGBoost's error in errbuf).
 */
int dd_cm_train(const struct dd_cm_data *d, const struct dd_cm_prior *p,
                const struct dd_cm_train_options *o, uint64_t version, uint64_t trained_at_ms,
                struct dd_cm_model **ret, char *errbuf, size_t errlen);
/* Accepts NULL; returns NULL. */
struct dd_cm_model *dd_cm_model_free(struct dd_cm_model *m);

uint64_t dd_cm_model_version(const struct dd_cm_model *m);
uint64_t dd_cm_model_trained_at(const struct dd_cm_model *m);
/* Rows each target was trained and evaluated on. */
void dd_cm_model_rows(const struct dd_cm_model *m, enum dd_cm_target t, size_t *train,
                      size_t *holdout);
/* Hold-out figures of the model and of the prior for target t. */
void dd_cm_model_holdout(const struct dd_cm_model *m, enum dd_cm_target t, struct dd_cm_eval *xgb,
                         struct dd_cm_eval *prior);
/* True when the model's hold-out MAPE is below the prior's for every target. */
bool dd_cm_model_beats_prior(const struct dd_cm_model *m);

/*
 * Predicts target t for n rows (row-major, DD_CM_NFEATURES each; NaN is
 * missing) into out[n]. Thread-safe. Returns 0 or DD_E_LIBRARY (errbuf).
 */
int dd_cm_model_predict(const struct dd_cm_model *m, enum dd_cm_target t, const float *X, size_t n,
                        double *out, char *errbuf, size_t errlen);
/*
 * SHAP contributions of one row to target t, in log space:
 * contrib[DD_CM_NFEATURES] is the bias, and exp(sum of all) is the
 * prediction. Thread-safe. Returns 0 or DD_E_LIBRARY.
 */
int dd_cm_model_contribs(const struct dd_cm_model *m, enum dd_cm_target t,
                         const float row[DD_CM_NFEATURES], double contrib[DD_CM_NFEATURES + 1],
                         char *errbuf, size_t errlen);

/*
 * Serialises the model (its metadata and both boosters in XGBoost's UBJ
 * form) into a new buffer (dd_malloc'd). Loading a saved model and saving it
 * again gives the same bytes.
 */
int dd_cm_model_save(const struct dd_cm_model *m, void **ret, size_t *ret_len);
/* Returns 0, -EINVAL (not a model blob, truncated or corrupt: errbuf says
 * what) or DD_E_LIBRARY. XGBoost parses only boosters whose checksum
 * matched: its own reader is not safe on damaged input (XGBoost 1.7.4's UBJ
 * reader reads past the buffer on some; found by tests/fuzz/fuzz-model). */
int dd_cm_model_load(const void *buf, size_t len, struct dd_cm_model **ret, char *errbuf,
                     size_t errlen);

/* The saved form's framing alone (magic, header, lengths, evaluations,
 * checksums), without XGBoost: 0 or -EINVAL with errbuf saying what. */
int dd_cm_model_check(const void *buf, size_t len, char *errbuf, size_t errlen);

/* The model's summary for /v1/model: version, trained_at_ms, rows, and
 * hold-out figures of the model and the prior per target. */
json_t *dd_cm_model_summary(const struct dd_cm_model *m);
/* Decodes a stored summary (dd_cm_model_summary's JSON, with "rows_by_node"
 * added by the trainer) stored as version: a JSON object whose "version" is
 * that version, "holdout" (when present) an object of objects per target,
 * "rows_by_node" (when present) an object of non-negative integers.
 * Returns 0 with a new reference in *ret, or -EINVAL (errbuf says why). */
int dd_cm_summary_from_text(const void *text, size_t len, uint64_t version, json_t **ret,
                            char *errbuf, size_t errlen);

#endif
