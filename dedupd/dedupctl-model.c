/*
 * dedupctl model fit --data FILE [--holdout time|interleaved] [--prior-out FILE]
 *                    [--json]
 *
 * Fits the cost model offline to measurements in the store's per-volume
 * format, one JSON document per line ({"time_ms": T, "features": {...,
 * "cost": C, "latency": L}}: what dedupd stores, what bench/calibrate
 * writes). Rows are put in time order; per target, the prior's coefficients
 * are fitted on the older 80 % of the rows that have it and XGBoost is
 * trained on the same rows; both, and the built-in prior, are scored on the
 * newest 20 % (--holdout time, the default: how dedupd trains, a test of
 * extrapolation to what comes next). --holdout interleaved holds out every
 * 5th row of each target instead, so the hold-out spans the whole history
 * (a test of the shape). --prior-out writes the fitted coefficients in the
 * form `dedupd --prior-file` reads.
 *
 * Exit: 0 ok; 1 the data could not be read or is too small (named); 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/dedupctl.h"
#include "placement/costmodel.h"

/* Reads FILE's JSON lines into d; errbuf names the line on failure. */
static int read_lines(const char *path, struct dd_cm_data *d, char *errbuf, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int r = 0;

    if (!f) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        json_error_t je;
        json_t *doc, *t;
        lineno++;
        if (n == 0 || line[0] == '\n' || line[0] == '#')
            continue;
        doc = json_loadb(line, (size_t)n, 0, &je);
        if (!doc || !json_is_object(json_object_get(doc, "features"))) {
            snprintf(errbuf, errlen, "%s:%zu: %s", path, lineno,
                     doc ? "no \"features\" object" : je.text);
            json_decref(doc);
            r = -EINVAL;
            break;
        }
        t = json_object_get(doc, "time_ms");
        r = dd_cm_data_add_doc(
            d, doc, json_is_integer(t) ? (uint64_t)json_integer_value(t) : (uint64_t)lineno);
        json_decref(doc);
        if (r < 0) {
            snprintf(errbuf, errlen, "%s:%zu: %s", path, lineno, dd_strerror(r));
            break;
        }
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (r == 0 && (r = dd_cm_data_sort(d)) < 0)
        snprintf(errbuf, errlen, "%s: %s", path, dd_strerror(r));
    return r;
}

#define HOLDOUT_EVERY 5 /* interleaved: every 5th row, a fifth as in time order */

/* Target t's rows (finite target) in time order, split as dd_cm_train
 * splits them: the newest fifth (at least one row) held out, or
 * (interleaved) every 5th row moved to the end. */
struct split {
    size_t *idx, k, ntrain;
};

static int split_target(const struct dd_cm_data *d, enum dd_cm_target t, bool interleaved,
                        struct split *sp)
{
    size_t nhold, a = 0, b = 0, *held;
    sp->idx = dd_calloc(d->n ? 2 * d->n : 1, sizeof(size_t));
    if (!sp->idx)
        return -ENOMEM;
    held = sp->idx + d->n;
    sp->k = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (!isfinite(d->y[t][i]))
            continue;
        if (interleaved && (sp->k + 1) % HOLDOUT_EVERY == 0)
            held[b++] = i;
        else
            sp->idx[a++] = i;
        sp->k++;
    }
    if (interleaved) {
        memmove(sp->idx + a, held, b * sizeof(size_t));
        sp->ntrain = a;
        return 0;
    }
    nhold = (size_t)((double)sp->k * 0.2);
    sp->ntrain = sp->k - (nhold < 1 && sp->k ? 1 : nhold);
    return 0;
}

/* The prior fitted on, or scored on, rows idx[from, to) of target t. */
static int prior_rows(struct dd_cm_prior *p, const struct dd_cm_data *d, enum dd_cm_target t,
                      const size_t *idx, size_t from, size_t to, bool fit, struct dd_cm_eval *ret)
{
    size_t k = to - from;
    float *X = dd_calloc(k ? k * DD_CM_NFEATURES : 1, sizeof(float));
    double *y = dd_calloc(k ? k : 1, sizeof(double)), *pred = dd_calloc(k ? k : 1, sizeof(double));
    int r = -ENOMEM;

    if (X && y && pred) {
        for (size_t i = 0; i < k; i++) {
            memcpy(X + i * DD_CM_NFEATURES, d->X + idx[from + i] * DD_CM_NFEATURES,
                   sizeof(float) * DD_CM_NFEATURES);
            y[i] = d->y[t][idx[from + i]];
            pred[i] = dd_cm_prior_predict(p, t, X + i * DD_CM_NFEATURES, NULL);
        }
        if (fit) {
            r = dd_cm_prior_fit(p, t, X, y, k);
        } else {
            dd_cm_evaluate(pred, y, k, ret);
            r = 0;
        }
    }
    dd_free(X);
    dd_free(y);
    dd_free(pred);
    return r;
}

static json_t *eval_json(const struct dd_cm_eval *e)
{
    return json_pack("{s:o, s:o, s:I}", "mape_percent",
                     isfinite(e->mape_percent) ? json_real(e->mape_percent) : json_null(), "r2",
                     isfinite(e->r2) ? json_real(e->r2) : json_null(), "n", (json_int_t)e->n);
}

int dd_ctl_model_fit(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},    {"prior-out", required_argument, NULL, 'o'},
        {"holdout", required_argument, NULL, 'H'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *data = NULL, *prior_out = NULL;
    struct dd_cm_data d = {0};
    struct dd_cm_prior builtin, fitted;
    struct dd_cm_model *m = NULL;
    bool as_json = false, interleaved = false;
    struct dd_cm_train_options opt;
    char err[1024] = "";
    json_t *doc = NULL, *h;
    struct split sp[DD_CM_NTARGETS] = {{0}};
    int c, ret = 1;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            data = optarg;
            break;
        case 'o':
            prior_out = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 'H':
            if (strcmp(optarg, "time") == 0) {
                interleaved = false;
            } else if (strcmp(optarg, "interleaved") == 0) {
                interleaved = true;
            } else {
                fprintf(stderr, "dedupctl: model fit: --holdout %s: expected time or interleaved\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            printf("Usage: dedupctl model fit --data FILE.jsonl [--holdout time|interleaved] "
                   "[--prior-out FILE] [--json]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!data || optind + 1 != argc || strcmp(argv[optind], "fit") != 0) {
        fprintf(stderr, "dedupctl: model fit: --data FILE is required\n");
        return 2;
    }
    if (read_lines(data, &d, err, sizeof(err)) < 0) {
        fprintf(stderr, "dedupctl: model fit: %s\n", err);
        goto out;
    }
    dd_cm_prior_defaults(&builtin);
    fitted = builtin;
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        enum dd_cm_target tg = (enum dd_cm_target)t;
        if (split_target(&d, tg, interleaved, &sp[t]) < 0 ||
            prior_rows(&fitted, &d, tg, sp[t].idx, 0, sp[t].ntrain, true, NULL) < 0) {
            fprintf(stderr,
                    "dedupctl: model fit: %s: too few rows or a singular system to fit the "
                    "prior (%zu rows to fit on)\n",
                    dd_cm_target_names[t], sp[t].ntrain);
            goto out;
        }
    }
    /* XGBoost holds out the same rows of each target */
    dd_cm_train_options_init(&opt);
    opt.holdout_every = interleaved ? HOLDOUT_EVERY : 0;
    if (dd_cm_train(&d, &fitted, &opt, 1, 0, &m, err, sizeof(err)) < 0) {
        fprintf(stderr, "dedupctl: model fit: %s\n", err);
        goto out;
    }
    doc = json_object();
    json_object_set_new(doc, "rows", json_integer((json_int_t)d.n));
    json_object_set_new(doc, "holdout_mode", json_string(interleaved ? "interleaved" : "time"));
    json_object_set_new(doc, "prior_builtin", dd_cm_prior_to_json(&builtin));
    json_object_set_new(doc, "prior_fitted", dd_cm_prior_to_json(&fitted));
    h = json_object();
    if (!as_json)
        printf("%zu rows; per target, %s\n%-8s %-16s %8s %8s %12s %10s\n", d.n,
               interleaved ? "scored on every 5th of its rows and fitted on the rest"
                           : "fitted on the older 80 % of its rows and scored on the newest 20 %",
               "TARGET", "MODEL", "FITTED", "SCORED", "MAPE %", "R2");
    for (int t = 0; t < DD_CM_NTARGETS; t++) {
        struct dd_cm_eval xe, fe, be;
        enum dd_cm_target tg = (enum dd_cm_target)t;
        dd_cm_model_holdout(m, tg, &xe, &fe);
        (void)prior_rows(&builtin, &d, tg, sp[t].idx, sp[t].ntrain, sp[t].k, false, &be);
        json_object_set_new(h, dd_cm_target_names[t],
                            json_pack("{s:o, s:o, s:o, s:I, s:I}", "xgboost", eval_json(&xe),
                                      "prior_fitted", eval_json(&fe), "prior_builtin",
                                      eval_json(&be), "fitted_rows", (json_int_t)sp[t].ntrain,
                                      "scored_rows", (json_int_t)(sp[t].k - sp[t].ntrain)));
        if (!as_json) {
            static const char *const names[] = {"xgboost", "prior (fitted)", "prior (built-in)"};
            const struct dd_cm_eval *ev[] = {&xe, &fe, &be};
            for (int k = 0; k < 3; k++)
                printf("%-8s %-16s %8zu %8zu %12.2f %10.3f\n", dd_cm_target_names[t], names[k],
                       sp[t].ntrain, sp[t].k - sp[t].ntrain, ev[k]->mape_percent, ev[k]->r2);
        }
    }
    json_object_set_new(doc, "holdout", h);
    if (as_json) {
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        if (text)
            puts(text);
        free(text);
    } else {
        char *text = json_dumps(json_object_get(doc, "prior_fitted"), JSON_REAL_PRECISION(6));
        printf("fitted prior: %s\n", text ? text : "?");
        free(text);
    }
    if (prior_out) {
        json_t *p = dd_cm_prior_to_json(&fitted);
        int w = json_dump_file(p, prior_out, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        json_decref(p);
        if (w < 0) {
            fprintf(stderr, "dedupctl: model fit: cannot write %s\n", prior_out);
            goto out;
        }
    }
    ret = 0;
out:
    for (int t = 0; t < DD_CM_NTARGETS; t++)
        dd_free(sp[t].idx);
    json_decref(doc);
    dd_cm_model_free(m);
    dd_cm_data_release(&d);
    return ret;
}
