/*
 * rightsize-train: the right-sizing model's training time and learning
 * curve on generated outcomes (bench/rsgen.h), beside baselines in the
 * same run: the per-owner history alone (what the fallback costs to build)
 * and training on a tenth of the rows.
 *   rightsize-train [N (100000)] [SEED (1)]
 * Prints, per size in 200, 500, 1000, 2000, 5000, N/10, N: the train time,
 * the history-only build time, and the hold-out MAPE per target of the
 * model and of the fallback.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench/rsgen.h"
#include "common/common.h"
#include "common/parse.h"
#include "placement/rightsize.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct dd_rsgen g;
    uint64_t n = 100000, seed = 1;
    size_t sizes[] = {200, 500, 1000, 2000, 5000, 0, 0};

    if ((argc > 1 && dd_parse_u64(argv[1], &n) < 0) ||
        (argc > 2 && dd_parse_u64(argv[2], &seed) < 0) || argc > 3 || n < 10) {
        fprintf(stderr, "usage: rightsize-train [N] [SEED]\n");
        return 2;
    }
    sizes[5] = (size_t)n / 10;
    sizes[6] = (size_t)n;
    dd_rsgen_init(&g, seed);
    printf("%-8s %9s %9s %7s", "rows", "train_s", "hist_s", "ratio");
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        printf(" %18.18s", dd_rs_target_names[t]);
    printf("\n");
    size_t last = 0;
    for (size_t s = 0; s < DD_ARRAY_SIZE(sizes); s++) {
        struct dd_rs_data *d;
        struct dd_rs_model *m = NULL, *h = NULL;
        char err[512];
        size_t rows = sizes[s];
        if (rows > n || rows <= last)
            continue;
        last = rows;
        if (dd_rs_data_new(&d) < 0)
            return 1;
        for (size_t i = 0; i < rows; i++) {
            struct dd_rs_outcome o;
            json_t *doc = dd_rsgen_outcome(&g, i);
            if (dd_rs_outcome_from_json(doc, &o, err, sizeof(err)) < 0 ||
                dd_rs_data_add(d, &o, (double)i) < 0) {
                fprintf(stderr, "outcome %zu: %s\n", i, err);
                return 1;
            }
            json_decref(doc);
        }
        double t0 = now_s();
        if (dd_rs_model_with_history(NULL, d, NULL, &h) < 0)
            return 1;
        double t1 = now_s();
        if (dd_rs_train(d, NULL, NULL, 1, 0, &m, err, sizeof(err)) < 0) {
            fprintf(stderr, "%zu rows: %s\n", rows, err);
            return 1;
        }
        double t2 = now_s();
        json_t *sum = dd_rs_model_summary(m);
        printf("%-8zu %9.3f %9.4f %7.1f", rows, t2 - t1, t1 - t0, (t2 - t1) / (t1 - t0));
        for (int t = 0; t < DD_RS_NTARGETS; t++) {
            json_t *e = json_object_get(json_object_get(sum, "targets"), dd_rs_target_names[t]);
            double a = json_number_value(json_object_get(e, "model_mape_percent"));
            double b = json_number_value(json_object_get(e, "fallback_mape_percent"));
            printf("  %7.1f%% / %6.1f%%", a, b);
        }
        printf("\n");
        fflush(stdout);
        json_decref(sum);
        dd_rs_model_unref(m);
        dd_rs_model_unref(h);
        dd_rs_data_free(d);
    }
    printf("(per target: model / fallback hold-out MAPE; ratio = train time / history build)\n");
    return 0;
}
