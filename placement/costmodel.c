/*
 * The cost model: feature rows, the analytic prior and its fit, hold-out
 * evaluation, and XGBoost boosters (one per target) trained, evaluated,
 * explained and serialised through the XGBoost C API.
 *
 * Every XGBoost call goes through dd_xgb_check(), which turns its -1 into
 * DD_E_LIBRARY with XGBGetLastError() in errbuf. XGBoost keeps prediction
 * results in per-thread buffers: each predict copies them out before
 * returning, so a model may be shared by many threads once built.
 *
 * The saved form: "DDCM1\n", a 4-byte big-endian header length, a JSON
 * header (version, time, rows, evaluations, blob lengths and XXH3-64
 * checksums) and then each target's booster in UBJ. Loading checks every
 * length against the buffer and every checksum before XGBoost parses a
 * byte: XGBoost 1.7's UBJ reader crashes on some damaged input (found by
 * this file's test), so damage must never reach it.
 */
#include "placement/costmodel.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xgboost/c_api.h>
#include <xxhash.h>

#include "common/common.h"
#include "placement/xgb.h"

#define DD_CM_NAME_(id, key, ...) #key,
const char *const dd_cm_feature_names[DD_CM_NFEATURES] = {DD_FEATURES_MODEL(DD_CM_NAME_)};

#define DD_CM_TNAME_(id, key, ...) #key,
const char *const dd_cm_target_names[DD_CM_NTARGETS] = {DD_TARGETS(DD_CM_TNAME_)};

int dd_cm_row_from_json(json_t *features, float row[DD_CM_NFEATURES], bool strict, char *errbuf,
                        size_t errlen)
{
    struct dd_features f;
    int r = dd_features_from_json(features, strict ? DD_FEATURES_STRICT_MODEL : DD_FEATURES_LENIENT,
                                  "features", &f, errbuf, errlen);
    if (r < 0)
        return r;
    dd_features_model_row(&f, row);
    return 0;
}

/* ---- the prior ---- */

/*
 * Which data calibrates what (bench/README.md, "cost model"; every fit is
 * `dedupctl model fit --data FILE`, the prior fitted on the older 80 % of
 * the rows in time order):
 * Cost: the absolute scale and the work the proxy does like VDO come from
 * bench/calibrate (a userspace proxy on this project's 2-core machines, real
 * CPU; results/data.jsonl): new_block 0.3223 (hash, lookup, write),
 * index_lookup 0.005303 per doubling of the index (measured up to 256 Mi
 * entries), lz4 3.036, contention 0 (its CPU-seconds per GiB do not grow
 * with competing load). What the proxy does not do comes from the real
 * dm-vdo series (bench/vdo-vm-series/results/series.jsonl, emulated CPU:
 * shapes, not absolute costs) as a share of a new block's cost there at
 * 2 Mi entries (8.223 + 0.2528 x 21 = 13.53), times the proxy's (0.3223 +
 * 0.005303 x 21 = 0.4337): duplicate_verify 5.028 / 13.53 = 0.372 of it
 * (the proxy, comparing memory and writing nothing, fits -0.013), and
 * compression_on 2.370 / 13.53 = 0.175 of it (the proxy fits 0.027).
 * Latency: the proxy has no device, so its per-block time is not a device
 * write latency; these are the dm-vdo series' fitted coefficients (the dm
 * device's average write latency in ms, 1 MiB writes, emulated CPU), a
 * starting point the XGBoost model replaces once it beats it on the node's
 * own history.
 */
void dd_cm_prior_defaults(struct dd_cm_prior *p)
{
    static const struct dd_cm_prior calibrated = {
        .cost = {0.3223, 0.005303, 0.161, 0.0760, 3.036},
        .latency = {1.454, 0.03688, -0.03058, 0.1263, 5.127},
        .contention = {0.0, 0.0},
    };
    *p = calibrated;
}

static const char *const cost_terms[DD_CM_PRIOR_COST_TERMS] = {
    "new_block", "index_lookup", "duplicate_verify", "compression_on", "lz4"};
static const char *const latency_terms[DD_CM_PRIOR_LATENCY_TERMS] = {
    "base", "index_lookup", "duplicate_verify", "compression_on", "lz4"};

const char *dd_cm_prior_term_name(enum dd_cm_target t, size_t i)
{
    if (t == DD_CM_COST)
        return i < DD_CM_PRIOR_COST_TERMS ? cost_terms[i] : NULL;
    return i < DD_CM_PRIOR_LATENCY_TERMS ? latency_terms[i] : NULL;
}

size_t dd_cm_prior_nterms(enum dd_cm_target t)
{
    return t == DD_CM_COST ? DD_CM_PRIOR_COST_TERMS : DD_CM_PRIOR_LATENCY_TERMS;
}

static double clamp(double x, double lo, double hi)
{
    return isfinite(x) ? (x < lo ? lo : (x > hi ? hi : x)) : lo;
}

/* The prior's basis functions, before the contention factor, and that
 * factor: 1 + k L / (1 - L), which is 1 / (1 - L) for k = 1 (time on the CPU
 * share left) and 1 for k = 0 (CPU-seconds that other load does not
 * inflate). */
static size_t prior_basis(const struct dd_cm_prior *p, enum dd_cm_target t, const float *row,
                          double x[DD_CM_PRIOR_MAX_TERMS], double *slow)
{
    double e = (double)row[DD_CM_INDEX_ENTRIES];
    double u = clamp((double)row[DD_CM_DEDUP_HIT_RATE], 0, 1);
    double n = 1 - u, c = clamp((double)row[DD_CM_COMPRESSION], 0, 1);
    double pk = clamp((double)row[DD_CM_PACKER_SAVINGS], 0, 1);
    double lg = log2(isfinite(e) && e > 2 ? e : 2);
    double load = clamp((double)row[DD_CM_NODE_CPU_UTIL_EX_VDO], 0, 0.95);

    *slow = 1.0 + p->contention[t] * load / (1.0 - load);
    x[0] = 1; /* both targets share the basis */
    x[1] = lg;
    x[2] = u;
    x[3] = c;
    x[4] = c * pk * n;
    return 5;
}

double dd_cm_prior_predict(const struct dd_cm_prior *p, enum dd_cm_target t,
                           const float row[DD_CM_NFEATURES], double terms[DD_CM_PRIOR_MAX_TERMS])
{
    double x[DD_CM_PRIOR_MAX_TERMS], slow, sum = 0;
    const double *coef = t == DD_CM_COST ? p->cost : p->latency;
    size_t k = prior_basis(p, t, row, x, &slow);

    for (size_t i = 0; i < k; i++) {
        double v = coef[i] * x[i] * slow;
        if (terms)
            terms[i] = v;
        sum += v;
    }
    return sum;
}

/* Solves the k x k system a x = b in place (Gaussian elimination with
 * partial pivoting). Returns 0 or -EINVAL when singular. */
static int solve(double a[DD_CM_PRIOR_MAX_TERMS][DD_CM_PRIOR_MAX_TERMS],
                 double b[DD_CM_PRIOR_MAX_TERMS], size_t k)
{
    for (size_t c = 0; c < k; c++) {
        size_t piv = c;
        for (size_t r = c + 1; r < k; r++) {
            if (fabs(a[r][c]) > fabs(a[piv][c]))
                piv = r;
        }
        if (fabs(a[piv][c]) < 1e-12)
            return -EINVAL;
        for (size_t j = 0; j < k; j++) {
            double tmp = a[c][j];
            a[c][j] = a[piv][j];
            a[piv][j] = tmp;
        }
        double tb = b[c];
        b[c] = b[piv];
        b[piv] = tb;
        for (size_t r = c + 1; r < k; r++) {
            double f = a[r][c] / a[c][c];
            for (size_t j = c; j < k; j++)
                a[r][j] -= f * a[c][j];
            b[r] -= f * b[c];
        }
    }
    for (size_t c = k; c-- > 0;) {
        for (size_t j = c + 1; j < k; j++)
            b[c] -= a[c][j] * b[j];
        b[c] /= a[c][c];
    }
    return 0;
}

/* Least squares for the coefficients with the contention factor of p fixed;
 * *ret_sse gets the weighted squared error. */
static int fit_linear(const struct dd_cm_prior *p, enum dd_cm_target t, const float *X,
                      const double *y, size_t n, double coef[DD_CM_PRIOR_MAX_TERMS],
                      double *ret_sse)
{
    double a[DD_CM_PRIOR_MAX_TERMS][DD_CM_PRIOR_MAX_TERMS] = {{0}}, b[DD_CM_PRIOR_MAX_TERMS] = {0};
    size_t k = dd_cm_prior_nterms(t), used = 0;
    double sse = 0;

    /* y = slow * sum(coef_i x_i); relative error: weight 1/y^2 */
    for (size_t r = 0; r < n; r++) {
        double x[DD_CM_PRIOR_MAX_TERMS], slow, w;
        if (!isfinite(y[r]) || y[r] <= 0)
            continue;
        prior_basis(p, t, X + r * DD_CM_NFEATURES, x, &slow);
        w = 1.0 / (y[r] * y[r]);
        for (size_t i = 0; i < k; i++) {
            for (size_t j = 0; j < k; j++)
                a[i][j] += w * slow * x[i] * slow * x[j];
            b[i] += w * slow * x[i] * y[r];
        }
        used++;
    }
    if (used < k || solve(a, b, k) < 0)
        return -EINVAL;
    for (size_t r = 0; r < n; r++) {
        double x[DD_CM_PRIOR_MAX_TERMS], slow, pred = 0;
        if (!isfinite(y[r]) || y[r] <= 0)
            continue;
        prior_basis(p, t, X + r * DD_CM_NFEATURES, x, &slow);
        for (size_t i = 0; i < k; i++)
            pred += b[i] * x[i] * slow;
        sse += (pred - y[r]) * (pred - y[r]) / (y[r] * y[r]);
    }
    memcpy(coef, b, k * sizeof(double));
    *ret_sse = sse;
    return 0;
}

/* The contention factor k is searched on a grid (0..3 by 0.05); for each k
 * the coefficients are a weighted linear least-squares fit. */
int dd_cm_prior_fit(struct dd_cm_prior *p, enum dd_cm_target t, const float *X, const double *y,
                    size_t n)
{
    struct dd_cm_prior trial = *p;
    double best_sse = (double)INFINITY, best_k = p->contention[t], best[DD_CM_PRIOR_MAX_TERMS];

    for (int step = 0; step <= 60; step++) {
        double coef[DD_CM_PRIOR_MAX_TERMS], sse;
        trial.contention[t] = 0.05 * step;
        if (fit_linear(&trial, t, X, y, n, coef, &sse) == 0 && sse < best_sse) {
            best_sse = sse;
            best_k = trial.contention[t];
            memcpy(best, coef, sizeof(best));
        }
    }
    if (!isfinite(best_sse))
        return -EINVAL;
    p->contention[t] = best_k;
    memcpy(t == DD_CM_COST ? p->cost : p->latency, best, dd_cm_prior_nterms(t) * sizeof(double));
    return 0;
}

json_t *dd_cm_prior_to_json(const struct dd_cm_prior *p)
{
    json_t *doc = json_object();
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        json_t *o = json_object();
        const double *coef = t == DD_CM_COST ? p->cost : p->latency;
        for (size_t i = 0; i < dd_cm_prior_nterms((enum dd_cm_target)t); i++)
            json_object_set_new(o, dd_cm_prior_term_name((enum dd_cm_target)t, i),
                                json_real(coef[i]));
        json_object_set_new(o, "cpu_contention", json_real(p->contention[t]));
        json_object_set_new(doc, dd_cm_target_names[t], o);
    }
    return doc;
}

/* A coefficient o[name] into *ret; -EINVAL naming it when absent or not a
 * finite number. */
static int prior_coef(json_t *o, enum dd_cm_target t, const char *name, double *ret, char *errbuf,
                      size_t errlen)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        snprintf(errbuf, errlen, "prior: %s.%s: expected a number", dd_cm_target_names[t], name);
        return -EINVAL;
    }
    *ret = json_number_value(v);
    return 0;
}

/* The four-term form before duplicate_verify: first + b log2 E + w n +
 * q c p n is, with n = 1 - u, (first + w) + b log2 E - w u + q c p n. */
static int prior_from_old(json_t *o, enum dd_cm_target t, double *coef, char *errbuf, size_t errlen)
{
    const char *first = t == DD_CM_COST ? "hash" : "base";
    double a, b, w, q;
    int r;

    if ((r = prior_coef(o, t, first, &a, errbuf, errlen)) < 0 ||
        (r = prior_coef(o, t, "index_lookup", &b, errbuf, errlen)) < 0 ||
        (r = prior_coef(o, t, "new_block_write", &w, errbuf, errlen)) < 0 ||
        (r = prior_coef(o, t, "compression", &q, errbuf, errlen)) < 0)
        return r;
    coef[0] = a + w;
    coef[1] = b;
    coef[2] = -w;
    coef[3] = 0;
    coef[4] = q;
    return 0;
}

int dd_cm_prior_from_json(struct dd_cm_prior *p, json_t *doc, char *errbuf, size_t errlen)
{
    struct dd_cm_prior np = *p;
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        enum dd_cm_target tg = (enum dd_cm_target)t;
        json_t *o = json_object_get(doc, dd_cm_target_names[t]);
        double *coef = t == DD_CM_COST ? np.cost : np.latency;
        bool old, cur;
        int r;
        if (!json_is_object(o)) {
            snprintf(errbuf, errlen, "prior: '%s' is missing or not an object",
                     dd_cm_target_names[t]);
            return -EINVAL;
        }
        old = json_object_get(o, "new_block_write") || json_object_get(o, "compression");
        cur = json_object_get(o, "duplicate_verify") || json_object_get(o, "compression_on") ||
              json_object_get(o, "lz4");
        if (old && cur) {
            snprintf(errbuf, errlen,
                     "prior: %s: mixes the four-term form (new_block_write, compression) and "
                     "the five-term form (duplicate_verify, compression_on, lz4)",
                     dd_cm_target_names[t]);
            return -EINVAL;
        }
        if (old) {
            if ((r = prior_from_old(o, tg, coef, errbuf, errlen)) < 0)
                return r;
        } else {
            for (size_t i = 0; i < dd_cm_prior_nterms(tg); i++) {
                if ((r = prior_coef(o, tg, dd_cm_prior_term_name(tg, i), &coef[i], errbuf,
                                    errlen)) < 0)
                    return r;
            }
        }
        json_t *k = json_object_get(o, "cpu_contention");
        if (k && (!json_is_number(k) || json_number_value(k) < 0 || json_number_value(k) > 10)) {
            snprintf(errbuf, errlen, "prior: %s.cpu_contention: expected a number 0..10",
                     dd_cm_target_names[t]);
            return -EINVAL;
        }
        np.contention[t] = k ? json_number_value(k) : 1.0;
    }
    *p = np;
    return 0;
}

/* ---- evaluation ---- */

void dd_cm_evaluate(const double *pred, const double *y, size_t n, struct dd_cm_eval *ret)
{
    double ape = 0, mean = 0, ssres = 0, sstot = 0;
    size_t m = 0, k = 0;

    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            continue;
        mean += y[i];
        k++;
    }
    mean = k ? mean / (double)k : 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            continue;
        ssres += (pred[i] - y[i]) * (pred[i] - y[i]);
        sstot += (y[i] - mean) * (y[i] - mean);
        if (y[i] > 0) {
            ape += fabs(pred[i] - y[i]) / y[i];
            m++;
        }
    }
    ret->n = k;
    ret->mape_percent = m ? 100.0 * ape / (double)m : (double)NAN;
    ret->r2 = sstot > 0 ? 1.0 - ssres / sstot : (double)NAN;
}

/* ---- training data ---- */

int dd_cm_data_add(struct dd_cm_data *d, const float row[DD_CM_NFEATURES],
                   const double y[DD_CM_NTARGETS], uint64_t time_ms)
{
    bool any = false;

    for (int t = 0; t < DD_CM_NTARGETS; t++)
        any |= isfinite(y[t]) && y[t] > 0;
    if (!any)
        return 0;
    if (d->n == d->cap) {
        /* the four arrays grow together, to one capacity */
        size_t cap = d->cap ? d->cap * 2 : 256;
        float *x = dd_reallocarray(d->X, cap, sizeof(float) * DD_CM_NFEATURES);
        if (!x)
            return -ENOMEM;
        d->X = x;
        double *y0 = dd_reallocarray(d->y[0], cap, sizeof(double));
        if (!y0)
            return -ENOMEM;
        d->y[0] = y0;
        double *y1 = dd_reallocarray(d->y[1], cap, sizeof(double));
        if (!y1)
            return -ENOMEM;
        d->y[1] = y1;
        uint64_t *tm = dd_reallocarray(d->time_ms, cap, sizeof(uint64_t));
        if (!tm)
            return -ENOMEM;
        d->time_ms = tm;
        d->cap = cap;
    }
    memcpy(d->X + d->n * DD_CM_NFEATURES, row, sizeof(float) * DD_CM_NFEATURES);
    for (int t = 0; t < DD_CM_NTARGETS; t++)
        d->y[t][d->n] = isfinite(y[t]) && y[t] > 0 ? y[t] : (double)NAN;
    d->time_ms[d->n] = time_ms;
    d->n++;
    return 0;
}

int dd_cm_data_add_doc(struct dd_cm_data *d, json_t *doc, uint64_t time_ms)
{
    json_t *f = json_object_get(doc, "features");
    float row[DD_CM_NFEATURES];
    double y[DD_CM_NTARGETS];

    if (dd_cm_row_from_json(f, row, false, NULL, 0) < 0)
        return 0; /* no features: nothing to learn from */
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        json_t *v = json_object_get(f, dd_cm_target_names[t]);
        y[t] = json_is_number(v) ? json_number_value(v) : (double)NAN;
    }
    return dd_cm_data_add(d, row, y, time_ms);
}

struct time_index {
    uint64_t t;
    size_t i;
};

static int cmp_time(const void *a, const void *b)
{
    const struct time_index *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->i < y->i ? -1 : (x->i > y->i); /* stable */
}

/* Sorts an index by time, then moves the rows into that order. */
int dd_cm_data_sort(struct dd_cm_data *d)
{
    struct dd_cm_data out = {0};
    struct time_index *idx;

    if (d->n < 2)
        return 0;
    idx = dd_calloc(d->n, sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < d->n; i++)
        idx[i] = (struct time_index){d->time_ms[i], i};
    qsort(idx, d->n, sizeof(*idx), cmp_time);
    for (size_t k = 0; k < d->n; k++) {
        size_t i = idx[k].i;
        double y[DD_CM_NTARGETS] = {d->y[0][i], d->y[1][i]};
        if (dd_cm_data_add(&out, d->X + i * DD_CM_NFEATURES, y, d->time_ms[i]) < 0) {
            dd_free(idx);
            dd_cm_data_release(&out);
            return -ENOMEM;
        }
    }
    dd_free(idx);
    dd_cm_data_release(d);
    *d = out;
    return 0;
}

void dd_cm_data_release(struct dd_cm_data *d)
{
    dd_free(d->X);
    dd_free(d->y[0]);
    dd_free(d->y[1]);
    dd_free(d->time_ms);
    memset(d, 0, sizeof(*d));
}

/* ---- XGBoost models ---- */

struct dd_cm_model {
    uint64_t version, trained_at_ms;
    BoosterHandle booster[DD_CM_NTARGETS];
    size_t train_rows[DD_CM_NTARGETS], holdout_rows[DD_CM_NTARGETS];
    struct dd_cm_eval xgb[DD_CM_NTARGETS], prior[DD_CM_NTARGETS];
};

void dd_cm_train_options_init(struct dd_cm_train_options *o)
{
    /* 20 trees of depth 4: on the simulator's cost function nearly as
     * accurate as 200 of depth 6 (bench/model-bench, 20,000 rows: hold-out
     * MAPE 4.8 %/3.2 % against 3.3 %/2.7 %) and they predict 5,000 volumes in
     * under 2 ms on one core (200 of depth 6: ~40 ms). */
    o->rounds = 20;
    o->max_depth = 4;
    o->eta = 0.45;
    o->holdout_fraction = 0.2;
    o->holdout_every = 0;
    o->nthread = 1; /* a node agent leaves the CPUs to the workloads */
    o->seed = 0;
}

/* "(0,1,...)": +1 where more of the feature must never lower the target
 * (the feature table's mono column) */
static void monotone(enum dd_cm_target t, char *out, size_t len)
{
    size_t off = 0;
    off += (size_t)snprintf(out + off, len - off, "(");
    for (size_t f = 0; f < DD_CM_NFEATURES; f++)
        off += (size_t)snprintf(out + off, len - off, "%s%d", f ? "," : "",
                                dd_feature_table[f].mono[t]);
    snprintf(out + off, len - off, ")");
}

/* Rows of target t (finite y), in time order: indexes into d. */
static size_t target_rows(const struct dd_cm_data *d, enum dd_cm_target t, size_t *idx)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (isfinite(d->y[t][i]))
            idx[k++] = i;
    }
    return k;
}

/* Trains target t's booster on rows idx[0..ntrain) (log of the target). */
static int fit_booster(struct dd_cm_model *m, const struct dd_cm_data *d, enum dd_cm_target t,
                       const size_t *idx, size_t ntrain, const struct dd_cm_train_options *o,
                       char *errbuf, size_t errlen)
{
    char depth[16], eta[32], nthread[16], seed[32], mono[128];
    const char *const params[][2] = {
        {"objective", "reg:squarederror"},
        {"tree_method", "hist"},
        {"max_depth", depth},
        {"eta", eta},
        {"nthread", nthread},
        {"seed", seed},
        {"monotone_constraints", mono},
        {"verbosity", "0"},
    };
    float *X = dd_calloc(ntrain * DD_CM_NFEATURES, sizeof(float));
    float *ylog = dd_calloc(ntrain, sizeof(float));
    int r = -ENOMEM;

    if (!X || !ylog)
        goto out;
    for (size_t i = 0; i < ntrain; i++) {
        memcpy(X + i * DD_CM_NFEATURES, d->X + idx[i] * DD_CM_NFEATURES,
               sizeof(float) * DD_CM_NFEATURES);
        ylog[i] = (float)log(d->y[t][idx[i]]);
    }
    snprintf(depth, sizeof(depth), "%u", o->max_depth);
    snprintf(eta, sizeof(eta), "%g", o->eta);
    snprintf(nthread, sizeof(nthread), "%u", o->nthread ? o->nthread : 1);
    snprintf(seed, sizeof(seed), "%llu", (unsigned long long)o->seed);
    monotone(t, mono, sizeof(mono));
    r = dd_xgb_train(&m->booster[t], X, ylog, ntrain, DD_CM_NFEATURES, params,
                     DD_ARRAY_SIZE(params), o->rounds, errbuf, errlen);
out:
    dd_free(X);
    dd_free(ylog);
    return r;
}

/* Evaluates target t's booster and the prior on rows idx[0..n). */
static int evaluate_rows(struct dd_cm_model *m, const struct dd_cm_data *d, enum dd_cm_target t,
                         const struct dd_cm_prior *p, const size_t *idx, size_t n, char *errbuf,
                         size_t errlen)
{
    float *X = dd_calloc(n * DD_CM_NFEATURES, sizeof(float));
    double *pred = dd_calloc(n, sizeof(double)), *ph = dd_calloc(n, sizeof(double));
    double *y = dd_calloc(n, sizeof(double));
    int r = -ENOMEM;

    if (!X || !pred || !ph || !y)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const float *row = d->X + idx[i] * DD_CM_NFEATURES;
        memcpy(X + i * DD_CM_NFEATURES, row, sizeof(float) * DD_CM_NFEATURES);
        y[i] = d->y[t][idx[i]];
        ph[i] = dd_cm_prior_predict(p, t, row, NULL);
    }
    r = dd_cm_model_predict(m, t, X, n, pred, errbuf, errlen);
    if (r == 0) {
        dd_cm_evaluate(pred, y, n, &m->xgb[t]);
        dd_cm_evaluate(ph, y, n, &m->prior[t]);
    }
out:
    dd_free(X);
    dd_free(pred);
    dd_free(ph);
    dd_free(y);
    return r;
}

/* Moves every k-th of the n indexes to the end, keeping order within the
 * two parts (the interleaved hold-out); returns how many moved. */
static size_t interleave(size_t *idx, size_t n, unsigned k, size_t *tmp)
{
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i + 1) % k == 0)
            tmp[b++] = idx[i];
        else
            idx[a++] = idx[i];
    }
    memcpy(idx + a, tmp, b * sizeof(*idx));
    return b;
}

static int train_one(struct dd_cm_model *m, const struct dd_cm_data *d, enum dd_cm_target t,
                     const struct dd_cm_prior *p, const struct dd_cm_train_options *o, char *errbuf,
                     size_t errlen)
{
    size_t *idx = dd_calloc(d->n ? 2 * d->n : 1, sizeof(*idx)), k, ntrain, nhold;
    int r;

    if (!idx)
        return -ENOMEM;
    k = target_rows(d, t, idx);
    if (o->holdout_every >= 2) {
        nhold = interleave(idx, k, o->holdout_every, idx + d->n);
    } else {
        nhold = (size_t)((double)k * o->holdout_fraction);
        if (nhold < 1)
            nhold = 1;
    }
    if (k < 20 || k - nhold < 10 || nhold < 1) {
        snprintf(errbuf, errlen, "%s: %zu rows with the target, at least 20 needed",
                 dd_cm_target_names[t], k);
        dd_free(idx);
        return -EINVAL;
    }
    ntrain = k - nhold;
    /* the hold-out: the newest rows (or every k-th), never trained on */
    r = fit_booster(m, d, t, idx, ntrain, o, errbuf, errlen);
    if (r == 0)
        r = evaluate_rows(m, d, t, p, idx + ntrain, nhold, errbuf, errlen);
    m->train_rows[t] = ntrain;
    m->holdout_rows[t] = nhold;
    dd_free(idx);
    return r;
}

int dd_cm_train(const struct dd_cm_data *d, const struct dd_cm_prior *p,
                const struct dd_cm_train_options *o, uint64_t version, uint64_t trained_at_ms,
                struct dd_cm_model **ret, char *errbuf, size_t errlen)
{
    struct dd_cm_train_options dflt;
    struct dd_cm_model *m = dd_calloc(1, sizeof(*m));
    int r = 0;

    if (!m)
        return -ENOMEM;
    if (!o) {
        dd_cm_train_options_init(&dflt);
        o = &dflt;
    }
    m->version = version;
    m->trained_at_ms = trained_at_ms;
    for (int t = 0; t < DD_CM_NTARGETS && r == 0; t++)
        r = train_one(m, d, (enum dd_cm_target)t, p, o, errbuf, errlen);
    if (r < 0) {
        dd_cm_model_free(m);
        return r;
    }
    *ret = m;
    return 0;
}

struct dd_cm_model *dd_cm_model_free(struct dd_cm_model *m)
{
    if (m) {
        for (int t = 0; t < DD_CM_NTARGETS; t++) {
            if (m->booster[t])
                XGBoosterFree(m->booster[t]);
        }
        dd_free(m);
    }
    return NULL;
}

uint64_t dd_cm_model_version(const struct dd_cm_model *m)
{
    return m->version;
}

uint64_t dd_cm_model_trained_at(const struct dd_cm_model *m)
{
    return m->trained_at_ms;
}

void dd_cm_model_rows(const struct dd_cm_model *m, enum dd_cm_target t, size_t *train,
                      size_t *holdout)
{
    *train = m->train_rows[t];
    *holdout = m->holdout_rows[t];
}

void dd_cm_model_holdout(const struct dd_cm_model *m, enum dd_cm_target t, struct dd_cm_eval *xgb,
                         struct dd_cm_eval *prior)
{
    if (xgb)
        *xgb = m->xgb[t];
    if (prior)
        *prior = m->prior[t];
}

bool dd_cm_model_beats_prior(const struct dd_cm_model *m)
{
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        double a = m->xgb[t].mape_percent, b = m->prior[t].mape_percent;
        if (!isfinite(a) || (isfinite(b) && a >= b))
            return false;
    }
    return true;
}

/* One in-place prediction of n rows of type (0 value, 2 contributions);
 * *ret points into XGBoost's per-thread buffer: copy it before any other
 * XGBoost call on this thread. */
static int predict_raw(const struct dd_cm_model *m, enum dd_cm_target t, const float *X, size_t n,
                       int type, const float **ret, bst_ulong *ret_len, char *errbuf, size_t errlen)
{
    return dd_xgb_predict_dense(m->booster[t], X, n, DD_CM_NFEATURES, type, ret, ret_len, errbuf,
                                errlen);
}

int dd_cm_model_predict(const struct dd_cm_model *m, enum dd_cm_target t, const float *X, size_t n,
                        double *out, char *errbuf, size_t errlen)
{
    const float *res;
    bst_ulong len;
    int r;

    if (n == 0)
        return 0;
    r = predict_raw(m, t, X, n, 0, &res, &len, errbuf, errlen);
    if (r < 0)
        return r;
    if (len != n) {
        snprintf(errbuf, errlen, "XGBoost returned %llu values for %zu rows",
                 (unsigned long long)len, n);
        return DD_E_LIBRARY;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = exp((double)res[i]);
    return 0;
}

int dd_cm_model_contribs(const struct dd_cm_model *m, enum dd_cm_target t,
                         const float row[DD_CM_NFEATURES], double contrib[DD_CM_NFEATURES + 1],
                         char *errbuf, size_t errlen)
{
    static const char cfg[] = "{\"type\": 2, \"training\": false, \"iteration_begin\": 0, "
                              "\"iteration_end\": 0, \"strict_shape\": false}";
    DMatrixHandle dm = NULL;
    const bst_ulong *shape;
    const float *res;
    bst_ulong dim, len = 1;
    int r;

    /* XGBoost 1.7 computes contributions from a DMatrix only (not in place) */
    r = dd_xgb_check(XGDMatrixCreateFromMat(row, 1, DD_CM_NFEATURES, NAN, &dm), "creating a matrix",
                     errbuf, errlen);
    if (r == 0)
        r = dd_xgb_check(XGBoosterPredictFromDMatrix(m->booster[t], dm, cfg, &shape, &dim, &res),
                         "computing contributions", errbuf, errlen);
    if (r == 0) {
        for (bst_ulong i = 0; i < dim; i++)
            len *= shape[i];
        if (len != DD_CM_NFEATURES + 1) {
            snprintf(errbuf, errlen, "XGBoost returned %llu contributions for %d features",
                     (unsigned long long)len, DD_CM_NFEATURES);
            r = DD_E_LIBRARY;
        }
    }
    for (size_t i = 0; r == 0 && i <= DD_CM_NFEATURES; i++)
        contrib[i] = (double)res[i];
    if (dm)
        XGDMatrixFree(dm);
    return r;
}

/* ---- saving and loading ---- */

#define MAGIC     "DDCM1\n"
#define MAGIC_LEN 6

static json_t *eval_json(const struct dd_cm_eval *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "mape_percent",
                        isfinite(e->mape_percent) ? json_real(e->mape_percent) : json_null());
    json_object_set_new(o, "r2", isfinite(e->r2) ? json_real(e->r2) : json_null());
    json_object_set_new(o, "n", json_integer((json_int_t)e->n));
    return o;
}

static int eval_from_json(json_t *o, struct dd_cm_eval *e)
{
    json_t *mape = json_object_get(o, "mape_percent"), *r2 = json_object_get(o, "r2"),
           *n = json_object_get(o, "n");
    if (!json_is_integer(n) || json_integer_value(n) < 0 ||
        !(json_is_number(mape) || json_is_null(mape)) || !(json_is_number(r2) || json_is_null(r2)))
        return -EINVAL;
    e->mape_percent = json_is_number(mape) ? json_number_value(mape) : (double)NAN;
    e->r2 = json_is_number(r2) ? json_number_value(r2) : (double)NAN;
    e->n = (size_t)json_integer_value(n);
    return 0;
}

json_t *dd_cm_model_summary(const struct dd_cm_model *m)
{
    json_t *o = json_pack("{s:I, s:I, s:b}", "version", (json_int_t)m->version, "trained_at_ms",
                          (json_int_t)m->trained_at_ms, "beats_prior", dd_cm_model_beats_prior(m));
    json_t *h = json_object();
    for (int t = 0; t < DD_CM_NTARGETS; t++)
        json_object_set_new(h, dd_cm_target_names[t],
                            json_pack("{s:o, s:o, s:I, s:I}", "xgboost", eval_json(&m->xgb[t]),
                                      "prior", eval_json(&m->prior[t]), "train_rows",
                                      (json_int_t)m->train_rows[t], "holdout_rows",
                                      (json_int_t)m->holdout_rows[t]));
    json_object_set_new(o, "holdout", h);
    return o;
}

int dd_cm_summary_from_text(const void *text, size_t len, uint64_t version, json_t **ret,
                            char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), *v, *h, *x;
    const char *key;

    if (!o) {
        snprintf(errbuf, errlen, "not JSON (line %d, column %d: %s)", jerr.line, jerr.column,
                 jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(o)) {
        snprintf(errbuf, errlen, "not a JSON object");
        goto bad;
    }
    v = json_object_get(o, "version");
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) != version) {
        snprintf(errbuf, errlen, "version: expected %llu", (unsigned long long)version);
        goto bad;
    }
    h = json_object_get(o, "holdout");
    if (h && !json_is_object(h)) {
        snprintf(errbuf, errlen, "holdout: expected an object");
        goto bad;
    }
    for (int t = 0; h && t < DD_CM_NTARGETS; t++) {
        x = json_object_get(h, dd_cm_target_names[t]);
        if (x && !json_is_object(x)) {
            snprintf(errbuf, errlen, "holdout.%s: expected an object", dd_cm_target_names[t]);
            goto bad;
        }
    }
    h = json_object_get(o, "rows_by_node");
    if (h && !json_is_object(h)) {
        snprintf(errbuf, errlen, "rows_by_node: expected an object");
        goto bad;
    }
    json_object_foreach(h, key, x)
    {
        if (!json_is_integer(x) || json_integer_value(x) < 0) {
            snprintf(errbuf, errlen, "rows_by_node.%.64s: expected a non-negative integer", key);
            goto bad;
        }
    }
    *ret = o;
    return 0;
bad:
    json_decref(o);
    return -EINVAL;
}

int dd_cm_model_save(const struct dd_cm_model *m, void **ret, size_t *ret_len)
{
    char *blob[DD_CM_NTARGETS] = {NULL, NULL}, *hdr = NULL, *out = NULL;
    size_t blen[DD_CM_NTARGETS] = {0, 0}, hlen, total;
    json_t *h = dd_cm_model_summary(m);
    int r = DD_E_LIBRARY;

    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        const char *p;
        bst_ulong len;
        if (XGBoosterSaveModelToBuffer(m->booster[t], "{\"format\": \"ubj\"}", &len, &p) != 0)
            goto out;
        blob[t] = dd_malloc(len ? len : 1);
        if (!blob[t]) {
            r = -ENOMEM;
            goto out;
        }
        memcpy(blob[t], p, len);
        blen[t] = len;
    }
    json_object_set_new(h, "blobs", json_pack("[I, I]", (json_int_t)blen[0], (json_int_t)blen[1]));
    char sum[DD_CM_NTARGETS][20];
    for (int t = 0; t < DD_CM_NTARGETS; t++)
        snprintf(sum[t], sizeof(sum[t]), "%016llx",
                 (unsigned long long)XXH3_64bits(blob[t], blen[t]));
    json_object_set_new(h, "xxh3", json_pack("[s, s]", sum[0], sum[1]));
    hdr = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    if (!hdr) {
        r = -ENOMEM;
        goto out;
    }
    hlen = strlen(hdr);
    total = MAGIC_LEN + 4 + hlen + blen[0] + blen[1];
    out = dd_malloc(total);
    if (!out) {
        r = -ENOMEM;
        goto out;
    }
    memcpy(out, MAGIC, MAGIC_LEN);
    out[MAGIC_LEN] = (char)((hlen >> 24) & 0xff);
    out[MAGIC_LEN + 1] = (char)((hlen >> 16) & 0xff);
    out[MAGIC_LEN + 2] = (char)((hlen >> 8) & 0xff);
    out[MAGIC_LEN + 3] = (char)(hlen & 0xff);
    memcpy(out + MAGIC_LEN + 4, hdr, hlen);
    memcpy(out + MAGIC_LEN + 4 + hlen, blob[0], blen[0]);
    memcpy(out + MAGIC_LEN + 4 + hlen + blen[0], blob[1], blen[1]);
    *ret = out;
    *ret_len = total;
    r = 0;
out:
    json_decref(h);
    free(hdr);
    dd_free(blob[0]);
    dd_free(blob[1]);
    return r;
}

/*
 * The saved form without XGBoost: magic, header, lengths, evaluations and
 * checksums. Fills m's metadata and the boosters' offsets and lengths.
 */
static int check_container(const unsigned char *b, size_t len, struct dd_cm_model *m,
                           size_t off_ret[DD_CM_NTARGETS], size_t blen[DD_CM_NTARGETS],
                           char *errbuf, size_t errlen)
{
    json_t *h, *blobs, *ho;
    json_error_t je;
    size_t hlen, off;
    int r = -EINVAL;

    if (len < MAGIC_LEN + 4 || memcmp(b, MAGIC, MAGIC_LEN) != 0) {
        snprintf(errbuf, errlen, "model blob: no DDCM1 header");
        return -EINVAL;
    }
    hlen = (size_t)b[MAGIC_LEN] << 24 | (size_t)b[MAGIC_LEN + 1] << 16 |
           (size_t)b[MAGIC_LEN + 2] << 8 | b[MAGIC_LEN + 3];
    if (hlen > len - MAGIC_LEN - 4) {
        snprintf(errbuf, errlen, "model blob: header of %zu bytes past the end (%zu)", hlen, len);
        return -EINVAL;
    }
    h = json_loadb((const char *)b + MAGIC_LEN + 4, hlen, 0, &je);
    if (!h) {
        snprintf(errbuf, errlen, "model blob: header at column %d: %s", je.column, je.text);
        return -EINVAL;
    }
    blobs = json_object_get(h, "blobs");
    ho = json_object_get(h, "holdout");
    if (!json_is_integer(json_object_get(h, "version")) ||
        !json_is_integer(json_object_get(h, "trained_at_ms")) || json_array_size(blobs) != 2 ||
        !json_is_object(ho)) {
        snprintf(errbuf, errlen,
                 "model blob: header lacks version, trained_at_ms, blobs or "
                 "holdout");
        goto out;
    }
    m->version = (uint64_t)json_integer_value(json_object_get(h, "version"));
    m->trained_at_ms = (uint64_t)json_integer_value(json_object_get(h, "trained_at_ms"));
    off = MAGIC_LEN + 4 + hlen;
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        json_t *bl = json_array_get(blobs, (size_t)t),
               *e = json_object_get(ho, dd_cm_target_names[t]);
        json_t *tr = json_object_get(e, "train_rows"), *hr = json_object_get(e, "holdout_rows");
        const char *want = json_string_value(json_array_get(json_object_get(h, "xxh3"), (size_t)t));
        char got[20];
        if (!json_is_integer(bl) || json_integer_value(bl) <= 0 ||
            (uint64_t)json_integer_value(bl) > len - off || !json_is_integer(tr) ||
            !json_is_integer(hr) || json_integer_value(tr) < 0 || json_integer_value(hr) < 0 ||
            eval_from_json(json_object_get(e, "xgboost"), &m->xgb[t]) < 0 ||
            eval_from_json(json_object_get(e, "prior"), &m->prior[t]) < 0) {
            snprintf(errbuf, errlen, "model blob: %s: bad length or evaluation",
                     dd_cm_target_names[t]);
            goto out;
        }
        blen[t] = (size_t)json_integer_value(bl);
        snprintf(got, sizeof(got), "%016llx", (unsigned long long)XXH3_64bits(b + off, blen[t]));
        if (!want || strcmp(want, got) != 0) {
            snprintf(errbuf, errlen, "model blob: %s booster checksum %s, header says %s",
                     dd_cm_target_names[t], got, want ? want : "nothing");
            goto out;
        }
        m->train_rows[t] = (size_t)json_integer_value(tr);
        m->holdout_rows[t] = (size_t)json_integer_value(hr);
        off_ret[t] = off;
        off += blen[t];
    }
    if (off != len) {
        snprintf(errbuf, errlen, "model blob: %zu bytes after the boosters", len - off);
        goto out;
    }
    r = 0;
out:
    json_decref(h);
    return r;
}

int dd_cm_model_check(const void *buf, size_t len, char *errbuf, size_t errlen)
{
    struct dd_cm_model m = {0};
    size_t off[DD_CM_NTARGETS], blen[DD_CM_NTARGETS];
    return check_container(buf, len, &m, off, blen, errbuf, errlen);
}

int dd_cm_model_load(const void *buf, size_t len, struct dd_cm_model **ret, char *errbuf,
                     size_t errlen)
{
    struct dd_cm_model *m = dd_calloc(1, sizeof(*m));
    size_t off[DD_CM_NTARGETS], blen[DD_CM_NTARGETS];
    int r;

    if (!m)
        return -ENOMEM;
    r = check_container(buf, len, m, off, blen, errbuf, errlen);
    /* only bytes whose checksum matched reach XGBoost's reader */
    for (int t = 0; r == 0 && t < DD_CM_NTARGETS; t++) {
        /* nthread is not saved with a model (dd_xgb_load sets it); a model
         * saved before the feature list changed reads other columns */
        bst_ulong nf = 0;
        if ((r = dd_xgb_load(&m->booster[t], (const unsigned char *)buf + off[t], blen[t], &nf,
                             errbuf, errlen)) == 0 &&
            nf != DD_CM_NFEATURES) {
            snprintf(errbuf, errlen,
                     "model blob: %s booster has %llu features, this build's model has %d "
                     "(trained on an older feature list: retrain)",
                     dd_cm_target_names[t], (unsigned long long)nf, DD_CM_NFEATURES);
            r = -EINVAL;
        }
    }
    if (r < 0) {
        dd_cm_model_free(m);
        return r;
    }
    *ret = m;
    return 0;
}
