/*
 * The cost model on data with a known cost function: the VDO simulator's
 * stated relations (dedupd/vdo/sim.h: dd_vdo_sim_write_cost, _read_cost,
 * _write_latency_ms) plus its 5 % noise, on seeded random volumes. XGBoost
 * must reach a hold-out MAPE of at most 10 % on both targets and beat the
 * prior; constrained features must give monotone answers; a regime change
 * (the index grows past 2^27 entries and lookups cost more, as in the
 * thesis' Fig 23) must be recovered by retraining; saving and loading must
 * round-trip bit for bit, and corrupt blobs must be refused by name. The
 * prior's fit must recover coefficients from data of its own form.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/sim.h"
#include "helpers.h"
#include "placement/costmodel.h"

static double urand(uint64_t *st)
{
    return (double)(tt_rand64(st) >> 11) / 9007199254740992.0;
}

struct gen {
    uint64_t st;
    double index_boost; /* regime: extra cost per log2 E above 2^27 */
};

/* One simulated volume-interval: features and the simulator's targets. */
static void sim_row(struct gen *g, float row[DD_CM_NFEATURES], double y[DD_CM_NTARGETS],
                    double e_lo, double e_hi)
{
    struct dd_vdo_sim_point pt = {0};
    double w = 20 + 380 * urand(&g->st), r = 600 * urand(&g->st);
    pt.index_entries = exp(log(e_lo) + (log(e_hi) - log(e_lo)) * urand(&g->st));
    pt.duplicate_share = 0.9 * urand(&g->st);
    pt.zero_share = 0.05;
    pt.compressible_share = urand(&g->st) * (1 - pt.zero_share - pt.duplicate_share);
    pt.compression = urand(&g->st) < 0.5;
    pt.node_load = 0.85 * urand(&g->st);
    pt.write_mbps = w;
    pt.read_mbps = r;
    double gw = w * 1e6 / 1073741824.0, gr = r * 1e6 / 1073741824.0;
    double cost = dd_vdo_sim_thread_seconds(&pt, gw, gr) / gw;
    double lg = log2(pt.index_entries);
    if (lg > 27) /* the regime change: a larger index costs more per lookup */
        cost += g->index_boost * (lg - 27) / (1 - pt.node_load);
    y[DD_CM_COST] = cost * (1 + 0.05 * (2 * urand(&g->st) - 1));
    y[DD_CM_LATENCY] = dd_vdo_sim_write_latency_ms(&pt) * (1 + 0.05 * (2 * urand(&g->st) - 1));

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

static void gen_data(struct gen *g, struct dd_cm_data *d, size_t n, double e_lo, double e_hi,
                     uint64_t t0)
{
    for (size_t i = 0; i < n; i++) {
        float row[DD_CM_NFEATURES];
        double y[DD_CM_NTARGETS];
        sim_row(g, row, y, e_lo, e_hi);
        assert_int_equal(dd_cm_data_add(d, row, y, t0 + i * 10000), 0);
    }
}

static struct dd_cm_model *train(const struct dd_cm_data *d, uint64_t version)
{
    struct dd_cm_prior p;
    struct dd_cm_model *m = NULL;
    char err[512] = "";
    dd_cm_prior_defaults(&p);
    if (dd_cm_train(d, &p, NULL, version, 1000, &m, err, sizeof(err)) < 0)
        fail_msg("train: %s", err);
    return m;
}

static void test_sim_accuracy_and_monotone(void **state)
{
    struct gen g = {.st = 42};
    struct dd_cm_data d = {0};
    struct dd_cm_eval xe, pe;
    (void)state;
    gen_data(&g, &d, 3000, 1 << 20, 1 << 27, 0);
    struct dd_cm_model *m = train(&d, 1);
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        dd_cm_model_holdout(m, (enum dd_cm_target)t, &xe, &pe);
        print_message("%s: xgboost MAPE %.2f %% R2 %.3f, prior MAPE %.2f %% R2 %.3f (n %zu)\n",
                      dd_cm_target_names[t], xe.mape_percent, xe.r2, pe.mape_percent, pe.r2, xe.n);
        assert_true(xe.mape_percent <= 10.0);
        assert_true(xe.mape_percent < pe.mape_percent);
        assert_int_equal(xe.n, 600);
    }
    assert_true(dd_cm_model_beats_prior(m));

    /* monotone where constrained: node load for both targets, write rate
     * and IO pressure for latency, on 200 random rows */
    char err[256];
    for (int k = 0; k < 200; k++) {
        float row[DD_CM_NFEATURES], X[10 * DD_CM_NFEATURES];
        double y[DD_CM_NTARGETS], out[10];
        sim_row(&g, row, y, 1 << 20, 1 << 27);
        struct {
            enum dd_cm_feature f;
            double lo, hi;
            bool latency_only;
        } sweeps[] = {{DD_CM_NODE_CPU_UTIL_EX_VDO, 0, 0.9, false},
                      {DD_CM_RUN_QUEUE, 0, 4, false},
                      {DD_CM_WRITE_MBPS, 10, 500, true},
                      {DD_CM_IO_PSI, 0, 60, true}};
        for (size_t s = 0; s < DD_ARRAY_SIZE(sweeps); s++) {
            for (int i = 0; i < 10; i++) {
                memcpy(X + i * DD_CM_NFEATURES, row, sizeof(row));
                X[i * DD_CM_NFEATURES + (int)sweeps[s].f] =
                    (float)(sweeps[s].lo + (sweeps[s].hi - sweeps[s].lo) * i / 9.0);
            }
            for (int t = sweeps[s].latency_only ? DD_CM_LATENCY : 0; t < DD_CM_NTARGETS; t++) {
                assert_int_equal(
                    dd_cm_model_predict(m, (enum dd_cm_target)t, X, 10, out, err, sizeof(err)), 0);
                for (int i = 1; i < 10; i++) {
                    if (out[i] < out[i - 1])
                        fail_msg("%s falls from %g to %g as %s rises", dd_cm_target_names[t],
                                 out[i - 1], out[i], dd_cm_feature_names[sweeps[s].f]);
                }
            }
        }
    }

    /* SHAP contributions add up (in log space) to the prediction */
    float row[DD_CM_NFEATURES];
    double y[DD_CM_NTARGETS], c[DD_CM_NFEATURES + 1], pred, sum = 0;
    sim_row(&g, row, y, 1 << 20, 1 << 27);
    assert_int_equal(dd_cm_model_contribs(m, DD_CM_COST, row, c, err, sizeof(err)), 0);
    assert_int_equal(dd_cm_model_predict(m, DD_CM_COST, row, 1, &pred, err, sizeof(err)), 0);
    for (int i = 0; i <= DD_CM_NFEATURES; i++)
        sum += c[i];
    assert_true(fabs(exp(sum) - pred) / pred < 1e-3);
    dd_cm_model_free(m);
    dd_cm_data_release(&d);
}

/* The index grows past 2^27 entries and lookups cost more: the old model
 * is wrong on the new regime; retraining once the new regime has K samples
 * in the history brings the hold-out error back under 10 %. */
static void test_regime_change(void **state)
{
    struct gen g = {.st = 7, .index_boost = 0.6};
    struct dd_cm_data d = {0}, fresh = {0};
    struct dd_cm_eval xe;
    char err[256];
    (void)state;
    gen_data(&g, &d, 2000, 1 << 20, 1 << 26, 0);
    struct dd_cm_model *old = train(&d, 1);

    /* the old model on the new regime */
    gen_data(&g, &fresh, 500, 1 << 28, 1 << 30, 0);
    double *pred = calloc(fresh.n, sizeof(double));
    assert_int_equal(dd_cm_model_predict(old, DD_CM_COST, fresh.X, fresh.n, pred, err, sizeof(err)),
                     0);
    dd_cm_evaluate(pred, fresh.y[DD_CM_COST], fresh.n, &xe);
    print_message("old model on the grown index: cost MAPE %.1f %%\n", xe.mape_percent);
    assert_true(xe.mape_percent > 20.0);
    free(pred);
    dd_cm_data_release(&fresh);

    /* history goes on in the new regime; retrain as samples arrive. The
     * hold-out is the newest 20 %: all new-regime rows, so this measures the
     * model on the regime it must now answer for. */
    static const size_t steps[] = {600, 800, 1000, 1500};
    size_t have = 0, recovered = 0;
    struct dd_cm_model *m = NULL;
    for (size_t i = 0; i < DD_ARRAY_SIZE(steps); i++) {
        struct dd_cm_eval xl;
        gen_data(&g, &d, steps[i] - have, 1 << 28, 1 << 30, (2000 + have) * 10000);
        have = steps[i];
        dd_cm_model_free(m);
        m = train(&d, 2 + i);
        dd_cm_model_holdout(m, DD_CM_COST, &xe, NULL);
        dd_cm_model_holdout(m, DD_CM_LATENCY, &xl, NULL);
        print_message("after %zu new-regime samples: hold-out MAPE cost %.2f %%, latency %.2f %%\n",
                      have, xe.mape_percent, xl.mape_percent);
        if (!recovered && xe.mape_percent <= 10.0 && xl.mape_percent <= 10.0)
            recovered = have;
    }
    print_message("recovered (both <= 10 %%) after %zu new-regime samples\n", recovered);
    assert_true(recovered > 0 && recovered <= 1500);
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        dd_cm_model_holdout(m, (enum dd_cm_target)t, &xe, NULL);
        assert_true(xe.mape_percent <= 10.0);
    }
    dd_cm_model_free(old);
    dd_cm_model_free(m);
    dd_cm_data_release(&d);
}

static void test_save_load(void **state)
{
    struct gen g = {.st = 3};
    struct dd_cm_data d = {0};
    void *a = NULL, *b = NULL;
    size_t alen, blen;
    char err[256];
    (void)state;
    gen_data(&g, &d, 400, 1 << 20, 1 << 27, 0);
    struct dd_cm_model *m = train(&d, 9), *m2 = NULL;
    assert_int_equal(dd_cm_model_save(m, &a, &alen), 0);
    assert_int_equal(dd_cm_model_load(a, alen, &m2, err, sizeof(err)), 0);
    assert_int_equal(dd_cm_model_version(m2), 9);
    assert_int_equal(dd_cm_model_save(m2, &b, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    /* same answers */
    double p1[50], p2[50];
    assert_int_equal(dd_cm_model_predict(m, DD_CM_LATENCY, d.X, 50, p1, err, sizeof(err)), 0);
    assert_int_equal(dd_cm_model_predict(m2, DD_CM_LATENCY, d.X, 50, p2, err, sizeof(err)), 0);
    assert_memory_equal(p1, p2, sizeof(p1));

    /* corrupt blobs: refused with a reason, never a crash */
    struct dd_cm_model *bad = NULL;
    assert_int_equal(dd_cm_model_load("garbage", 7, &bad, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no DDCM1 header"));
    assert_true(dd_cm_model_load(a, alen / 2, &bad, err, sizeof(err)) < 0);
    unsigned char *c = malloc(alen);
    memcpy(c, a, alen);
    c[6] = 0x7f; /* header length past the end */
    assert_int_equal(dd_cm_model_load(c, alen, &bad, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "past the end"));
    memcpy(c, a, alen);
    for (size_t i = alen - 200; i < alen; i++) /* the second booster's tail */
        c[i] ^= 0x5a;
    assert_true(dd_cm_model_load(c, alen, &bad, err, sizeof(err)) < 0);
    assert_null(bad);
    uint64_t st = 11;
    for (int k = 0; k < 200; k++) { /* random damage anywhere */
        memcpy(c, a, alen);
        for (int j = 0; j < 4; j++)
            c[tt_rand64(&st) % alen] = (unsigned char)tt_rand64(&st);
        if (dd_cm_model_load(c, alen, &bad, err, sizeof(err)) == 0)
            bad = dd_cm_model_free(bad); /* damage in a float can load */
    }
    free(c);
    dd_free(a);
    dd_free(b);
    dd_cm_model_free(m);
    dd_cm_model_free(m2);
    dd_cm_data_release(&d);
}

/* The prior's fit recovers the coefficients of data of its own form. */
static void test_prior_fit(void **state)
{
    struct dd_cm_prior truth = {.cost = {0.5, 0.03, 0.4, 0.1, 2.0},
                                .latency = {0.3, 0.02, 0.2, 0.05, 0.1}};
    struct dd_cm_prior fit;
    struct gen g = {.st = 5};
    struct dd_cm_data d = {0};
    (void)state;
    for (int i = 0; i < 500; i++) {
        float row[DD_CM_NFEATURES];
        double y[DD_CM_NTARGETS];
        sim_row(&g, row, y, 1 << 20, 1 << 28);
        y[DD_CM_COST] = dd_cm_prior_predict(&truth, DD_CM_COST, row, NULL);
        y[DD_CM_LATENCY] = dd_cm_prior_predict(&truth, DD_CM_LATENCY, row, NULL);
        assert_int_equal(dd_cm_data_add(&d, row, y, (uint64_t)i), 0);
    }
    dd_cm_prior_defaults(&fit);
    assert_int_equal(dd_cm_prior_fit(&fit, DD_CM_COST, d.X, d.y[DD_CM_COST], d.n), 0);
    assert_int_equal(dd_cm_prior_fit(&fit, DD_CM_LATENCY, d.X, d.y[DD_CM_LATENCY], d.n), 0);
    for (int i = 0; i < DD_CM_PRIOR_COST_TERMS; i++)
        assert_true(fabs(fit.cost[i] - truth.cost[i]) < 1e-3 * (1 + fabs(truth.cost[i])));
    for (int i = 0; i < DD_CM_PRIOR_LATENCY_TERMS; i++)
        assert_true(fabs(fit.latency[i] - truth.latency[i]) < 1e-3 * (1 + fabs(truth.latency[i])));
    /* the terms add up to the prediction */
    double terms[DD_CM_PRIOR_MAX_TERMS], sum = 0;
    double p = dd_cm_prior_predict(&fit, DD_CM_COST, d.X, terms);
    for (int i = 0; i < DD_CM_PRIOR_COST_TERMS; i++)
        sum += terms[i];
    assert_true(fabs(sum - p) < 1e-9);
    /* too few rows */
    assert_int_equal(dd_cm_prior_fit(&fit, DD_CM_COST, d.X, d.y[DD_CM_COST], 3), -EINVAL);
    /* JSON round trip */
    json_t *j = dd_cm_prior_to_json(&fit);
    struct dd_cm_prior back;
    char err[256];
    dd_cm_prior_defaults(&back);
    assert_int_equal(dd_cm_prior_from_json(&back, j, err, sizeof(err)), 0);
    assert_memory_equal(&back, &fit, sizeof(fit));
    json_object_del(json_object_get(j, "latency"), "base");
    assert_int_equal(dd_cm_prior_from_json(&back, j, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "latency.base"));
    json_decref(j);
    dd_cm_data_release(&d);
}

/* A prior file in the earlier four-term form (hash/base + b log2 E + w n +
 * q c p n) reads as the same predictions; a mix of the forms is refused. */
static void test_prior_old_form(void **state)
{
    static const double a = 0.35, b = 0.045, w = 0.2, q = 1.6, la = 0.2, lb = 0.015, lw = 0.1,
                        lq = 0.05;
    json_t *j = json_pack("{s:{s:f, s:f, s:f, s:f, s:f}, s:{s:f, s:f, s:f, s:f}}", "cost", "hash",
                          a, "index_lookup", b, "new_block_write", w, "compression", q,
                          "cpu_contention", 0.5, "latency", "base", la, "index_lookup", lb,
                          "new_block_write", lw, "compression", lq);
    struct dd_cm_prior p;
    struct gen g = {.st = 9};
    char err[256];
    (void)state;
    dd_cm_prior_defaults(&p);
    assert_int_equal(dd_cm_prior_from_json(&p, j, err, sizeof(err)), 0);
    assert_true(p.contention[DD_CM_COST] == 0.5 && p.contention[DD_CM_LATENCY] == 1.0);
    for (int i = 0; i < 50; i++) {
        float row[DD_CM_NFEATURES];
        double y[DD_CM_NTARGETS];
        sim_row(&g, row, y, 1 << 20, 1 << 28);
        double lg = log2((double)row[DD_CM_INDEX_ENTRIES]),
               n = 1 - (double)row[DD_CM_DEDUP_HIT_RATE];
        double cs = (double)row[DD_CM_COMPRESSION] * (double)row[DD_CM_PACKER_SAVINGS] * n;
        double load = (double)row[DD_CM_NODE_CPU_UTIL_EX_VDO];
        double c = (a + b * lg + w * n + q * cs) * (1 + 0.5 * load / (1 - load));
        double l = (la + lb * lg + lw * n + lq * cs) * (1 + load / (1 - load));
        assert_true(fabs(dd_cm_prior_predict(&p, DD_CM_COST, row, NULL) - c) < 1e-9 * c);
        assert_true(fabs(dd_cm_prior_predict(&p, DD_CM_LATENCY, row, NULL) - l) < 1e-9 * l);
    }
    json_object_set_new(json_object_get(j, "cost"), "lz4", json_real(1));
    assert_int_equal(dd_cm_prior_from_json(&p, j, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "prior: cost: mixes"));
    json_object_del(json_object_get(j, "cost"), "lz4");
    json_object_del(json_object_get(j, "latency"), "compression");
    assert_int_equal(dd_cm_prior_from_json(&p, j, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "latency.compression"));
    json_decref(j);
}

static void test_strict_features(void **state)
{
    float row[DD_CM_NFEATURES];
    char err[256];
    (void)state;
    json_t *f = json_object();
    for (int i = 0; i < DD_CM_NFEATURES; i++)
        json_object_set_new(f, dd_cm_feature_names[i],
                            dd_feature_table[i].kind == DD_FK_FLAG ? json_integer(1)
                                                                   : json_real(0.5));
    assert_int_equal(dd_cm_row_from_json(f, row, true, err, sizeof(err)), 0);
    /* a flag is 0 or 1 */
    json_object_set_new(f, "compression", json_real(0.5));
    assert_int_equal(dd_cm_row_from_json(f, row, true, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "features.compression"));
    json_object_set_new(f, "compression", json_integer(0));
    /* unknown keys are refused in strict mode, ignored in lenient */
    json_object_set_new(f, "write_mpbs", json_real(1));
    assert_int_equal(dd_cm_row_from_json(f, row, true, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "features.write_mpbs: unknown"));
    assert_int_equal(dd_cm_row_from_json(f, row, false, err, sizeof(err)), 0);
    json_object_del(f, "write_mpbs");
    json_object_set_new(f, "write_mbps", json_real(-1));
    assert_int_equal(dd_cm_row_from_json(f, row, true, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "features.write_mbps"));
    json_object_set_new(f, "write_mbps", json_real(1));
    json_object_set_new(f, "dedup_hit_rate", json_real(1.5));
    assert_int_equal(dd_cm_row_from_json(f, row, true, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "features.dedup_hit_rate"));
    json_object_set_new(f, "dedup_hit_rate", json_string("NaN"));
    assert_int_equal(dd_cm_row_from_json(f, row, true, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "features.dedup_hit_rate: expected a number"));
    json_object_del(f, "dedup_hit_rate");
    assert_int_equal(dd_cm_row_from_json(f, row, true, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "features.dedup_hit_rate: missing"));
    /* lenient: missing is NaN */
    assert_int_equal(dd_cm_row_from_json(f, row, false, err, sizeof(err)), 0);
    assert_true(isnan(row[DD_CM_DEDUP_HIT_RATE]));
    json_decref(f);
}

/* Many threads predicting on one model get the same answers as one. */
struct pred_job {
    const struct dd_cm_model *m;
    const float *X;
    size_t n;
    double *out;
};

static void *pred_thread(void *arg)
{
    struct pred_job *j = arg;
    char err[256];
    for (int k = 0; k < 50; k++) {
        if (dd_cm_model_predict(j->m, DD_CM_COST, j->X, j->n, j->out, err, sizeof(err)) < 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_predict(void **state)
{
    struct gen g = {.st = 9};
    struct dd_cm_data d = {0};
    char err[256];
    (void)state;
    gen_data(&g, &d, 500, 1 << 20, 1 << 27, 0);
    struct dd_cm_model *m = train(&d, 1);
    double *ref = calloc(d.n, sizeof(double));
    assert_int_equal(dd_cm_model_predict(m, DD_CM_COST, d.X, d.n, ref, err, sizeof(err)), 0);
    pthread_t th[4];
    struct pred_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct pred_job){m, d.X, d.n, calloc(d.n, sizeof(double))};
        assert_int_equal(pthread_create(&th[i], NULL, pred_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        assert_null(rv);
        assert_memory_equal(jobs[i].out, ref, d.n * sizeof(double));
        free(jobs[i].out);
    }
    free(ref);
    dd_cm_model_free(m);
    dd_cm_data_release(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_features),    cmocka_unit_test(test_prior_fit),
        cmocka_unit_test(test_prior_old_form),     cmocka_unit_test(test_sim_accuracy_and_monotone),
        cmocka_unit_test(test_regime_change),      cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_concurrent_predict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
