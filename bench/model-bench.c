/*
 * bench/model-bench: the cost model's speed, beside raw XGBoost in the same
 * run.
 *
 *   1. Batch prediction for N volumes (default 5,000): dd_cm_model_predict
 *      (what /v1/predict and placement use) against XGBoosterPredictFromDense
 *      called directly on a booster loaded from the same model bytes and the
 *      same matrix. Prints both medians and raw/ours (goal: ours <= 2 ms,
 *      ratio >= 0.8).
 *   2. Single-row prediction, and single-row prediction with SHAP
 *      contributions (what an explained answer costs), medians.
 *   3. Training time on R rows (default 100,000) with 1 thread (the
 *      daemon's setting) and with 2, and the hold-out MAPE it reached.
 *
 * Data: rows drawn from the VDO simulator's stated cost and latency
 * functions (dedupd/vdo/sim.h) with 5 % noise, as in test-costmodel. Times
 * are CLOCK_MONOTONIC medians of repeated runs; only the ratios taken in one
 * run mean much on a shared machine.
 *
 * Usage: dedupd-model-bench [--volumes N] [--rows R] [--reps K] [--rounds N]
 *                           [--depth D] [--eta E]   (model defaults otherwise)
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <xgboost/c_api.h>

#include "common/common.h"
#include "dedupd/vdo/sim.h"
#include "placement/costmodel.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t g_state = 88172645463325252ull;

static double urand(void)
{
    g_state ^= g_state << 13;
    g_state ^= g_state >> 7;
    g_state ^= g_state << 17;
    return (double)(g_state >> 11) / 9007199254740992.0;
}

static void sim_row(float *row, double *y)
{
    struct dd_vdo_sim_point pt = {0};
    double w = 20 + 380 * urand(), r = 600 * urand();
    pt.index_entries = exp(log(1 << 20) + (log(1 << 28) - log(1 << 20)) * urand());
    pt.duplicate_share = 0.9 * urand();
    pt.zero_share = 0.05;
    pt.compressible_share = urand() * (1 - pt.zero_share - pt.duplicate_share);
    pt.compression = urand() < 0.5;
    pt.node_load = 0.85 * urand();
    pt.write_mbps = w;
    pt.read_mbps = r;
    double gw = w * 1e6 / 1073741824.0, gr = r * 1e6 / 1073741824.0;
    y[DD_CM_COST] = dd_vdo_sim_thread_seconds(&pt, gw, gr) / gw * (1 + 0.05 * (2 * urand() - 1));
    y[DD_CM_LATENCY] = dd_vdo_sim_write_latency_ms(&pt) * (1 + 0.05 * (2 * urand() - 1));
    row[DD_CM_WRITE_MBPS] = (float)w;
    row[DD_CM_READ_MBPS] = (float)r;
    row[DD_CM_WRITE_IOPS] = (float)(w * 1e6 / 4096);
    row[DD_CM_DEDUP_HIT_RATE] = (float)pt.duplicate_share;
    row[DD_CM_INDEX_ENTRIES] = (float)pt.index_entries;
    row[DD_CM_COMPRESSION] = pt.compression ? 1.0f : 0.0f;
    row[DD_CM_PACKER_SAVINGS] = (float)(pt.compression ? pt.compressible_share * 0.5 : 0);
    row[DD_CM_NODE_CPU_UTIL_EX_VDO] = (float)pt.node_load;
    row[DD_CM_CPU_PSI] = (float)(100 * pt.node_load * pt.node_load);
    row[DD_CM_IO_PSI] = (float)(100 * dd_vdo_sim_backing_busy(&pt) * 0.5);
    row[DD_CM_RUN_QUEUE] = (float)(2 * pt.node_load);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The cost booster's bytes inside our saved form (header: "blobs" lengths). */
static BoosterHandle raw_booster(const struct dd_cm_model *m)
{
    void *buf;
    size_t len, hlen;
    BoosterHandle b = NULL;
    if (dd_cm_model_save(m, &buf, &len) < 0)
        return NULL;
    const unsigned char *p = buf;
    hlen = (size_t)p[6] << 24 | (size_t)p[7] << 16 | (size_t)p[8] << 8 | p[9];
    json_t *h = json_loadb((const char *)p + 10, hlen, 0, NULL);
    size_t blen = (size_t)json_integer_value(json_array_get(json_object_get(h, "blobs"), 0));
    if (XGBoosterCreate(NULL, 0, &b) != 0 ||
        XGBoosterLoadModelFromBuffer(b, p + 10 + hlen, blen) != 0 ||
        XGBoosterSetParam(b, "nthread", "1") != 0) {
        fprintf(stderr, "raw booster: %s\n", XGBGetLastError());
        b = NULL;
    }
    json_decref(h);
    dd_free(buf);
    return b;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"volumes", required_argument, NULL, 'v'}, {"rows", required_argument, NULL, 'r'},
        {"reps", required_argument, NULL, 'k'},    {"rounds", required_argument, NULL, 'n'},
        {"depth", required_argument, NULL, 'd'},   {"eta", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    size_t nvol = 5000, nrows = 100000, reps = 200;
    unsigned rounds = 0, depth = 0;
    double eta = 0;
    struct dd_cm_prior prior;
    struct dd_cm_train_options o;
    struct dd_cm_model *m = NULL;
    struct dd_cm_data d = {0};
    char err[512];
    int c;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'v':
            nvol = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            nrows = strtoul(optarg, NULL, 10);
            break;
        case 'k':
            reps = strtoul(optarg, NULL, 10);
            break;
        case 'n':
            rounds = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            depth = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'e':
            eta = strtod(optarg, NULL);
            break;
        case 'h':
            printf("Usage: %s [--volumes N] [--rows R] [--reps K] [--rounds N] [--depth D] "
                   "[--eta E]\n",
                   argv[0]);
            return 0;
        default:
            return 2;
        }
    }
    if (nvol < 1 || nrows < 100 || reps < 3) {
        fprintf(stderr, "need --volumes >= 1, --rows >= 100, --reps >= 3\n");
        return 2;
    }
    for (size_t i = 0; i < nrows; i++) {
        float row[DD_CM_NFEATURES];
        double y[DD_CM_NTARGETS];
        sim_row(row, y);
        if (dd_cm_data_add(&d, row, y, i * 10000) < 0)
            return 1;
    }
    dd_cm_prior_defaults(&prior);
    dd_cm_train_options_init(&o);
    if (rounds)
        o.rounds = rounds;
    if (depth)
        o.max_depth = depth;
    if (eta > 0)
        o.eta = eta;

    /* 3. training (the model trained with 1 thread is the one measured below) */
    printf("== training on %zu rows (%u rounds, depth %u, eta %g, both targets)\n", nrows, o.rounds,
           o.max_depth, o.eta);
    for (unsigned th = 2; th >= 1; th--) { /* 2 first: the 1-thread model is kept */
        struct dd_cm_model *t = NULL;
        struct dd_cm_eval ec, el;
        o.nthread = th;
        double t0 = now_s();
        if (dd_cm_train(&d, &prior, &o, 1, 0, &t, err, sizeof(err)) < 0) {
            fprintf(stderr, "train: %s\n", err);
            return 1;
        }
        double secs = now_s() - t0;
        dd_cm_model_holdout(t, DD_CM_COST, &ec, NULL);
        dd_cm_model_holdout(t, DD_CM_LATENCY, &el, NULL);
        printf("  nthread %u: %.2f s (hold-out MAPE cost %.2f %%, latency %.2f %%)\n", th, secs,
               ec.mape_percent, el.mape_percent);
        if (th == 1)
            m = t;
        else
            dd_cm_model_free(t);
    }

    /* 1. batch prediction: ours vs raw XGBoost, same matrix, interleaved */
    float *X = calloc(nvol * DD_CM_NFEATURES, sizeof(float));
    double *out = calloc(nvol, sizeof(double)), *tours = calloc(reps, sizeof(double)),
           *traw = calloc(reps, sizeof(double));
    memcpy(X, d.X, nvol <= d.n ? nvol * DD_CM_NFEATURES * sizeof(float) : 0);
    for (size_t i = d.n; i < nvol; i++)
        memcpy(X + i * DD_CM_NFEATURES, d.X + (i % d.n) * DD_CM_NFEATURES,
               DD_CM_NFEATURES * sizeof(float));
    BoosterHandle raw = raw_booster(m);
    if (!raw)
        return 1;
    char iface[256];
    snprintf(iface, sizeof(iface),
             "{\"data\": [%llu, true], \"shape\": [%zu, %d], \"typestr\": \"<f4\", "
             "\"version\": 3}",
             (unsigned long long)(uintptr_t)X, nvol, DD_CM_NFEATURES);
    static const char cfg[] = "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
                              "\"iteration_end\": 0, \"strict_shape\": false, \"cache_id\": 0, "
                              "\"missing\": NaN}";
    double check = 0;
    for (size_t k = 0; k < reps + 5; k++) {
        const bst_ulong *shape;
        bst_ulong dim;
        const float *res;
        double t0 = now_s();
        if (dd_cm_model_predict(m, DD_CM_COST, X, nvol, out, err, sizeof(err)) < 0) {
            fprintf(stderr, "predict: %s\n", err);
            return 1;
        }
        double t1 = now_s();
        if (XGBoosterPredictFromDense(raw, iface, cfg, NULL, &shape, &dim, &res) != 0) {
            fprintf(stderr, "raw predict: %s\n", XGBGetLastError());
            return 1;
        }
        double t2 = now_s();
        if (k >= 5) { /* warm-up runs are not counted */
            tours[k - 5] = t1 - t0;
            traw[k - 5] = t2 - t1;
        }
        check += fabs(exp((double)res[0]) - out[0]);
    }
    double mo = median(tours, reps), mr = median(traw, reps);
    printf("== batch prediction, %zu volumes x %d features, median of %zu\n", nvol, DD_CM_NFEATURES,
           reps);
    printf("  dedupd (dd_cm_model_predict):        %8.3f ms\n", mo * 1e3);
    printf("  raw XGBoosterPredictFromDense:       %8.3f ms\n", mr * 1e3);
    printf("  raw / dedupd: %.2f (goal >= 0.8); dedupd / 2 ms goal: %.2f; answers differ by "
           "%.3g\n",
           mr / mo, mo * 1e3 / 2.0, check / (double)(reps + 5));

    /* 2. single rows */
    size_t singles = reps * 20;
    double *ts = calloc(singles, sizeof(double)), *tc = calloc(singles, sizeof(double));
    for (size_t k = 0; k < singles; k++) {
        double v, contrib[DD_CM_NFEATURES + 1];
        const float *row = d.X + (k % d.n) * DD_CM_NFEATURES;
        double t0 = now_s();
        (void)dd_cm_model_predict(m, DD_CM_COST, row, 1, &v, err, sizeof(err));
        double t1 = now_s();
        (void)dd_cm_model_contribs(m, DD_CM_COST, row, contrib, err, sizeof(err));
        double t2 = now_s();
        ts[k] = t1 - t0;
        tc[k] = t2 - t1;
    }
    printf("== single row, median of %zu\n", singles);
    printf("  predict:                      %8.1f us\n", median(ts, singles) * 1e6);
    printf("  SHAP contributions:           %8.1f us\n", median(tc, singles) * 1e6);

    XGBoosterFree(raw);
    free(X);
    free(out);
    free(tours);
    free(traw);
    free(ts);
    free(tc);
    dd_cm_model_free(m);
    dd_cm_data_release(&d);
    return 0;
}
