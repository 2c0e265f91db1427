/*
 * dedupd-sim: the cluster simulator's command line. One experiment per
 * run, over one or more seeds (--seeds K: seed, seed+1, ...); writes
 * DIR/summary.json (the fixed interface: every policy's makespan, mean and
 * p95 completion and GPU idle fraction, means over the seeds, with their
 * spread beside), DIR/results.csv (one row per seed and policy),
 * DIR/table.md and PNG plots (gnuplot). Bad arguments exit 2 naming the
 * argument; a failure inside a run exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "common/parse.h"
#include "sim/sim.h"

extern char **environ;

#ifndef DD_SIM_TRUTH_JSON
#define DD_SIM_TRUTH_JSON "sim/truth.json"
#endif

#define MAX_SEEDS 64
#define MAX_JOBS  16

static const char *const experiments[] = {"completion", "gpu-curve", "io-load", "dedup", "scale"};

struct agg {
    struct sim_result r[MAX_SEEDS];
    size_t n;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: dedupd-sim --experiment completion|gpu-curve|io-load|dedup|scale "
               "[--seed N] [--seeds K] [--nodes N --pods N] [--truth default|null|alt1|alt2] "
               "[--truth-file PATH] [--policies a,b,...] [--load X] [--score-scale PCT] [--jobs N] "
               "[--request-inflation X] [--rightsize [--rightsize-margin M] "
               "[--rightsize-every N] [--rightsize-max-down S]] [--quiet] --out DIR\n");
}

static int bad(const char *arg, const char *why)
{
    fprintf(stderr, "dedupd-sim: %s: %s\n", arg, why);
    usage(stderr);
    return 2;
}

static void defaults(struct sim_config *c)
{
    memset(c, 0, sizeof(*c));
    c->seed = 1;
    c->seeds = 1;
    c->truth_name = "default";
    c->truth_path = DD_SIM_TRUTH_JSON;
    c->interval_s = 10;
    c->dedup_pools = true;
    c->gpu_load = 0.35; /* leaves the scheduler a choice (docs/sim/README.md) */
    c->burst_share = 0.6;
    c->train_first_s = 900;
    c->train_every_s = 3600;
    c->extender_weight = 5; /* README's kube-scheduler configuration */
    c->request_inflation = 1;
    dd_adm_options_init(&c->rs_adm); /* the webhook's defaults */
    c->rs_every = 50; /* retrain every 50 outcomes: a run of 400 pods trains 7-8 times */
    c->policy_mask = (1u << SIM_P_COUNT) - 1;
}

static void experiment_defaults(struct sim_config *c)
{
    if (strcmp(c->experiment, "scale") == 0) {
        c->nodes = 5000;
        c->pods = 50000;
        c->policy_mask &= ~(1u << SIM_P_DEDUPD_PRIOR);
        c->interval_s = 30; /* reports every 30 s at 5,000 nodes (docs/sim/README.md) */
    } else if (strcmp(c->experiment, "gpu-curve") == 0) {
        c->nodes = 16;
        c->pods = 160;
        c->burst_share = 0.8;
        c->timeseries = true;
    } else {
        c->nodes = 32;
        c->pods = 400;
    }
    if (strcmp(c->experiment, "io-load") == 0) {
        c->bg_share = 1.0 / 3;
        c->bg_cpu = 0.6;
        c->bg_io = 0.5;
    }
}

/* ---- aggregation ---- */

static double field(const struct sim_result *r, size_t k)
{
    const double v[] = {r->makespan_s,        r->mean_completion_s,     r->p95_completion_s,
                        r->gpu_idle_fraction, r->gpu_idle_fraction_all, r->frag_all_free,
                        r->mean_deploy_s,     r->mean_wait_s,           r->mean_stretch,
                        r->mean_candidates};
    return v[k];
}
static const char *const field_names[] = {"makespan_s",
                                          "mean_completion_s",
                                          "p95_completion_s",
                                          "gpu_idle_fraction",
                                          "gpu_idle_fraction_all_gpus",
                                          "fragmentation_all_gpus_free_share",
                                          "mean_deployment_completion_s",
                                          "mean_wait_s",
                                          "mean_run_stretch",
                                          "mean_candidates"};
#define NFIELDS 10

static void mean_sd(const struct agg *a, size_t k, double *m, double *sd)
{
    double s = 0, q = 0;
    for (size_t i = 0; i < a->n; i++)
        s += field(&a->r[i], k);
    *m = a->n ? s / (double)a->n : (double)NAN;
    for (size_t i = 0; i < a->n; i++)
        q += (field(&a->r[i], k) - *m) * (field(&a->r[i], k) - *m);
    *sd = a->n > 1 ? sqrt(q / (double)(a->n - 1)) : 0;
}

/* Packing and right-sizing figures (every run; summary.json "packing" and
 * "rightsize", rightsize.csv). */
static double xfield(const struct sim_result *r, size_t k)
{
    const double v[] = {r->mean_completion_s,
                        r->p95_completion_s,
                        r->makespan_s,
                        r->gpu_allocated_share,
                        r->gpu_computing_share,
                        r->waiting_gpus_free,
                        r->cpu_requested_over_used,
                        r->mem_requested_over_used,
                        (double)r->oom_kills,
                        (double)r->oom_raised,
                        (double)r->failed_pods,
                        (double)r->rs_admitted,
                        (double)r->rs_rewritten,
                        (double)r->rs_from_model,
                        (double)r->rs_from_history,
                        (double)r->rs_trainings,
                        r->rs_cpu_mape,
                        r->rs_mem_mape,
                        (double)r->rs_clamped};
    return v[k];
}
static const char *const xfield_names[] = {"mean_completion_s",
                                           "p95_completion_s",
                                           "makespan_s",
                                           "gpu_allocated_share",
                                           "gpu_computing_share",
                                           "pods_waiting_while_gpus_free",
                                           "cpu_requested_over_used",
                                           "memory_requested_over_used",
                                           "oom_kills",
                                           "oom_kills_memory_raised",
                                           "failed_pods",
                                           "rightsize_admitted",
                                           "rightsize_rewritten",
                                           "rightsize_memory_from_model",
                                           "rightsize_memory_from_history",
                                           "rightsize_trainings",
                                           "rightsize_cpu_mape_percent",
                                           "rightsize_memory_mape_percent",
                                           "rightsize_requests_cut_to_largest_node"};
#define NXFIELDS     19
#define NXFIELDS_ALL 11 /* the rest only when the run right-sizes */

static void xmean_sd(const struct agg *a, size_t k, double *m, double *sd)
{
    double s = 0, q = 0;
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++)
        if (isfinite(xfield(&a->r[i], k))) {
            s += xfield(&a->r[i], k);
            n++;
        }
    *m = n ? s / (double)n : (double)NAN;
    for (size_t i = 0; i < a->n; i++)
        if (isfinite(xfield(&a->r[i], k)))
            q += (xfield(&a->r[i], k) - *m) * (xfield(&a->r[i], k) - *m);
    *sd = n > 1 ? sqrt(q / (double)(n - 1)) : 0;
}

static json_t *num_or_null(double x);

static json_t *packing_json(const struct sim_config *c, struct agg *agg, size_t nfields)
{
    json_t *o = json_object();
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        if (!(c->policy_mask & (1u << p)) || agg[p].n == 0)
            continue;
        json_t *po = json_object(), *sd = json_object();
        for (size_t k = 0; k < nfields; k++) {
            double m, s;
            xmean_sd(&agg[p], k, &m, &s);
            json_object_set_new(po, xfield_names[k], num_or_null(m));
            json_object_set_new(sd, xfield_names[k], num_or_null(s));
        }
        json_object_set_new(po, "sd", sd);
        json_object_set_new(o, sim_policy_names[p], po);
    }
    return o;
}

/* With right-sizing against without, per policy: relative change of the
 * means, % (negative: lower with right-sizing). */
static json_t *rs_change_json(const struct sim_config *c, struct agg *off, struct agg *on)
{
    static const size_t keys[] = {0, 1, 2, 3, 4, 5, 6, 7};
    json_t *o = json_object();
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        if (!(c->policy_mask & (1u << p)) || off[p].n == 0 || on[p].n == 0)
            continue;
        json_t *po = json_object();
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            double a, b, s;
            char key[80];
            xmean_sd(&off[p], keys[i], &a, &s);
            xmean_sd(&on[p], keys[i], &b, &s);
            snprintf(key, sizeof(key), "%s_change_percent", xfield_names[keys[i]]);
            json_object_set_new(po, key, num_or_null(a != 0 ? 100 * (b - a) / a : (double)NAN));
        }
        json_object_set_new(o, sim_policy_names[p], po);
    }
    return o;
}

static void rs_csv(FILE *f, const struct sim_config *c, struct agg *agg, const char *setting)
{
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        for (size_t i = 0; i < agg[p].n; i++) {
            fprintf(f, "%llu,%s,%s", (unsigned long long)(c->seed + i), sim_policy_names[p],
                    setting);
            for (size_t k = 0; k < NXFIELDS; k++)
                fprintf(f, ",%.4f", xfield(&agg[p].r[i], k));
            fprintf(f, "\n");
        }
    }
}

static void rs_table(FILE *f, const struct sim_config *c, struct agg *off, struct agg *on)
{
    fprintf(f,
            "\n### Right-sizing (the placement library's model and the webhook's rewrite, "
            "placement/admission)\n\n%zu nodes, %zu pods, users' requests × %.2f, memory limit "
            "= request × %.2f, CPU limit = request × %.2f, each step within × %.2f .. × %.2f of "
            "what was asked, retrained every %u outcomes; mean over %u seed(s), the same seeds "
            "without and with right-sizing. "
            "GPU shares are of all GPUs over the makespan; *waiting* is the mean number of "
            "pods waiting while some node has their GPUs free (CPU or memory requests keep them "
            "out); requested/used integrates requests and use (CPU: mean cores, memory: peak "
            "working set) over the time pods are bound.\n\n",
            c->nodes, c->pods, c->request_inflation, 1 + c->rs_adm.memory_margin,
            1 + c->rs_adm.cpu_limit_headroom, c->rs_adm.max_step_down, c->rs_adm.max_step_up,
            c->rs_every, c->seeds);
    fprintf(f, "| policy | right-sizing | mean completion s | p95 completion s | GPUs allocated | "
               "GPUs computing | waiting, GPUs free | CPU requested/used | memory "
               "requested/used | OOM kills (raised) | failed | memory MAPE %% |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        if (!(c->policy_mask & (1u << p)) || off[p].n == 0)
            continue;
        for (int w = 0; w < 2; w++) {
            struct agg *a = w ? &on[p] : &off[p];
            double m[NXFIELDS], sd[NXFIELDS];
            for (size_t k = 0; k < NXFIELDS; k++)
                xmean_sd(a, k, &m[k], &sd[k]);
            fprintf(f,
                    "| %s | %s | %.0f ± %.0f | %.0f ± %.0f | %.3f | %.3f | %.1f | %.2f | %.2f | "
                    "%.1f (%.1f) | %.1f |",
                    sim_policy_names[p], w ? "on" : "off", m[0], sd[0], m[1], sd[1], m[3], m[4],
                    m[5], m[6], m[7], m[8], m[9], m[10]);
            if (w && isfinite(m[17]))
                fprintf(f, " %.1f |\n", m[17]);
            else
                fprintf(f, " — |\n");
        }
    }
}

static json_t *policies_json(const struct sim_config *c, struct agg *agg, bool fixed)
{
    json_t *o = json_object();
    for (size_t p = fixed ? 0 : SIM_P_FIXED; p < (fixed ? SIM_P_FIXED : SIM_P_COUNT); p++) {
        if (!(c->policy_mask & (1u << p)) || agg[p].n == 0)
            continue;
        json_t *po = json_object(), *sd = json_object();
        for (size_t k = 0; k < NFIELDS; k++) {
            double m, s;
            mean_sd(&agg[p], k, &m, &s);
            json_object_set_new(po, field_names[k], json_real(m));
            json_object_set_new(sd, field_names[k], json_real(s));
        }
        json_object_set_new(po, "sd", sd);
        json_object_set_new(o, sim_policy_names[p], po);
    }
    return o;
}

static json_t *num_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* dedupd against every other policy: relative change of the means, %. */
static json_t *versus_json(struct agg *agg, unsigned mask)
{
    json_t *o = json_object();
    if (agg[SIM_P_DEDUPD].n == 0)
        return o;
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        if (p == SIM_P_DEDUPD || !(mask & (1u << p)) || agg[p].n == 0)
            continue;
        json_t *po = json_object();
        for (size_t k = 0; k < 4; k++) {
            double md, mo, s;
            mean_sd(&agg[SIM_P_DEDUPD], k, &md, &s);
            mean_sd(&agg[p], k, &mo, &s);
            char key[64];
            snprintf(key, sizeof(key), "%s_change_percent", field_names[k]);
            json_object_set_new(po, key, num_or_null(mo != 0 ? 100 * (md - mo) / mo : (double)NAN));
        }
        json_object_set_new(o, sim_policy_names[p], po);
    }
    return o;
}

/* dedupd's rank among the fixed interface's policies by mean completion
 * (1: the lowest); 0 when it did not run. */
static int dedupd_rank(const struct sim_config *c, struct agg *agg)
{
    double md, mo, sd;
    int rank = 1;
    if (agg[SIM_P_DEDUPD].n == 0)
        return 0;
    mean_sd(&agg[SIM_P_DEDUPD], 1, &md, &sd);
    for (size_t p = 0; p < SIM_P_FIXED; p++) {
        if (p == SIM_P_DEDUPD || !(c->policy_mask & (1u << p)) || agg[p].n == 0)
            continue;
        mean_sd(&agg[p], 1, &mo, &sd);
        rank += mo < md;
    }
    return rank;
}

static json_t *model_json(const struct agg *a)
{
    double s[6] = {0};
    size_t n = 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct sim_result *r = &a->r[i];
        if (!isfinite(r->model_mape_cost))
            continue;
        s[0] += r->model_mape_cost;
        s[1] += r->model_mape_latency;
        s[2] += r->prior_mape_cost;
        s[3] += r->prior_mape_latency;
        s[4] += r->served_xgb;
        s[5] += r->trainings;
        n++;
    }
    if (!n)
        return json_null();
    return json_pack("{s:o, s:o, s:o, s:o, s:f, s:f, s:s}", "served_mape_cost_percent",
                     num_or_null(s[0] / (double)n), "served_mape_latency_percent",
                     num_or_null(s[1] / (double)n), "prior_mape_cost_percent",
                     num_or_null(s[2] / (double)n), "prior_mape_latency_percent",
                     num_or_null(s[3] / (double)n), "runs_serving_xgboost_share", s[4] / (double)n,
                     "trainings_per_run", s[5] / (double)n, "against",
                     "the truth's own cost and latency of sampled report intervals (no noise)");
}

static json_t *timing_json(const struct sim_config *c, struct agg *agg)
{
    json_t *o = json_object();
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        if (!(c->policy_mask & (1u << p)) || agg[p].n == 0)
            continue;
        double v[7] = {0};
        for (size_t i = 0; i < agg[p].n; i++) {
            const struct sim_result *r = &agg[p].r[i];
            v[0] += r->t_total;
            v[1] += r->t_events;
            v[2] += r->t_reports;
            v[3] += r->t_schedule;
            v[4] += r->t_placement;
            v[5] += r->t_train;
            v[6] += r->t_oracle;
        }
        json_object_set_new(o, sim_policy_names[p],
                            json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "total_s", v[0],
                                      "events_and_ticks_s", v[1], "reports_s", v[2],
                                      "sampling_and_scores_s", v[3], "placement_library_s", v[4],
                                      "training_s", v[5], "oracle_s", v[6]));
    }
    return o;
}

/* ---- output ---- */

static int run_gnuplot(const char *dir, const char *script)
{
    char path[4096];
    pid_t pid;
    int st;
    snprintf(path, sizeof(path), "%s/%s", dir, script);
    char prog[] = "gnuplot";
    char *argv[] = {prog, path, NULL};
    if (posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ) != 0) {
        fprintf(stderr, "dedupd-sim: gnuplot not found: %s written, PNG skipped\n", path);
        return 0;
    }
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "dedupd-sim: gnuplot %s failed\n", path);
    return 0;
}

static FILE *open_out(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    if (!f)
        fprintf(stderr, "dedupd-sim: %s: %s\n", path, strerror(errno));
    return f;
}

static void csv_rows(FILE *f, const struct sim_config *c, struct agg *agg, const char *pool)
{
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        for (size_t i = 0; i < agg[p].n; i++) {
            const struct sim_result *r = &agg[p].r[i];
            fprintf(f, "%llu,%s,%s,%s", (unsigned long long)(c->seed + i), c->truth_name, pool,
                    sim_policy_names[p]);
            for (size_t k = 0; k < NFIELDS; k++)
                fprintf(f, ",%.4f", field(r, k));
            fprintf(f, ",%.3f\n", r->t_total);
        }
    }
}

static void md_table(FILE *f, const struct sim_config *c, struct agg *agg, const char *title)
{
    double base[4], s;
    fprintf(f, "\n### %s\n\n", title);
    fprintf(f,
            "%zu nodes, %zu pods, truth `%s`, %u seed(s) from %llu; mean ± sd over seeds; "
            "Δ = dedupd against the row's policy (negative: dedupd is lower).\n\n",
            c->nodes, c->pods, c->truth_name, c->seeds, (unsigned long long)c->seed);
    fprintf(f, "dedupd ranks %d of the policies by mean completion.\n\n", dedupd_rank(c, agg));
    fprintf(f, "| policy | makespan s | mean completion s | p95 completion s | GPU idle "
               "(allocated) | GPU idle (all) | nodes all-free | mean wait s | run stretch | Δ "
               "mean completion | Δ p95 |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < 4; k++)
        mean_sd(&agg[SIM_P_DEDUPD], k, &base[k], &s);
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        if (!(c->policy_mask & (1u << p)) || agg[p].n == 0)
            continue;
        double m[NFIELDS], sd[NFIELDS];
        for (size_t k = 0; k < NFIELDS; k++)
            mean_sd(&agg[p], k, &m[k], &sd[k]);
        fprintf(f,
                "| %s | %.0f ± %.0f | %.0f ± %.0f | %.0f ± %.0f | %.3f ± %.3f | %.3f ± %.3f | "
                "%.3f | %.0f | %.1f %% |",
                sim_policy_names[p], m[0], sd[0], m[1], sd[1], m[2], sd[2], m[3], sd[3], m[4],
                sd[4], m[5], m[7], 100 * m[8]);
        if (p == SIM_P_DEDUPD || agg[SIM_P_DEDUPD].n == 0)
            fprintf(f, " — | — |\n");
        else
            fprintf(f, " %+.1f %% | %+.1f %% |\n", 100 * (base[1] - m[1]) / m[1],
                    100 * (base[2] - m[2]) / m[2]);
    }
}

static void bar_plot(const char *dir, const char *csv, const char *png, const char *title)
{
    FILE *g = open_out(dir, "plot.gp");
    if (!g)
        return;
    fprintf(g,
            "set terminal pngcairo size 1000,500 noenhanced\nset output '%s/%s'\n"
            "set datafile separator ','\nset style data histograms\n"
            "set style histogram errorbars gap 1 lw 1\nset style fill solid 0.7 border -1\n"
            "set ylabel 'seconds'\nset title '%s'\nset xtics rotate by -30\nset key top left\n"
            "set yrange [0:*]\n"
            "plot '%s/%s' every ::1 using 2:3:xtic(1) title 'mean completion', '' every ::1 "
            "using 4:5 title 'p95 completion'\n",
            dir, png, title, dir, csv);
    fclose(g);
    run_gnuplot(dir, "plot.gp");
}

static void write_bars_csv(const char *dir, const char *name, const struct sim_config *c,
                           struct agg *agg)
{
    FILE *f = open_out(dir, name);
    if (!f)
        return;
    fprintf(f, "policy,mean_completion_s,sd,p95_completion_s,sd\n");
    for (size_t p = 0; p < SIM_P_COUNT; p++) {
        double m1, s1, m2, s2;
        if (!(c->policy_mask & (1u << p)) || agg[p].n == 0)
            continue;
        mean_sd(&agg[p], 1, &m1, &s1);
        mean_sd(&agg[p], 2, &m2, &s2);
        fprintf(f, "%s,%.1f,%.1f,%.1f,%.1f\n", sim_policy_names[p], m1, s1, m2, s2);
    }
    fclose(f);
}

static void models_out(const char *dir, const struct sim_config *c, struct agg *agg)
{
    FILE *f = open_out(dir, "models.csv"), *m = open_out(dir, "models.md"), *g;
    if (!f || !m) {
        if (f)
            fclose(f);
        if (m)
            fclose(m);
        return;
    }
    fprintf(f, "model,default_run_s,dedupd_run_s,oracle_run_s,default_completion_s,"
               "dedupd_completion_s\n");
    fprintf(m, "\n### Per-model run time (bind to finish), mean over pods and seeds\n\n"
               "| model | I/O sensitivity | default s | dedupd s | Δ | oracle s |\n"
               "|---|---|---|---|---|---|\n");
    for (size_t w = 0; w < sim_n_workloads && w < SIM_MAX_MODELS; w++) {
        double v[5] = {0};
        const size_t ps[3] = {SIM_P_DEFAULT, SIM_P_DEDUPD, SIM_P_ORACLE};
        for (size_t j = 0; j < 3; j++) {
            double s = 0, n = 0;
            for (size_t i = 0; i < agg[ps[j]].n; i++)
                if (agg[ps[j]].r[i].model_n[w]) {
                    s += agg[ps[j]].r[i].model_run_s[w];
                    n++;
                }
            v[j] = n > 0 ? s / n : (double)NAN;
        }
        for (size_t j = 0; j < 2; j++) {
            double s = 0, n = 0;
            for (size_t i = 0; i < agg[ps[j]].n; i++)
                if (agg[ps[j]].r[i].model_n[w]) {
                    s += agg[ps[j]].r[i].model_completion_s[w];
                    n++;
                }
            v[3 + j] = n > 0 ? s / n : (double)NAN;
        }
        fprintf(f, "%s,%.1f,%.1f,%.1f,%.1f,%.1f\n", sim_workloads[w].name, v[0], v[1], v[2], v[3],
                v[4]);
        fprintf(m, "| %s | see truth.json | %.0f | %.0f | %+.1f %% | %.0f |\n",
                sim_workloads[w].name, v[0], v[1], 100 * (v[1] - v[0]) / v[0], v[2]);
    }
    fclose(f);
    fclose(m);
    (void)c;
    if (agg[SIM_P_DEFAULT].n == 0 || agg[SIM_P_DEDUPD].n == 0 || agg[SIM_P_ORACLE].n == 0)
        return; /* the plot compares those three */
    if ((g = open_out(dir, "models.gp")) != NULL) {
        fprintf(g,
                "set terminal pngcairo size 900,450 noenhanced\nset output '%s/models.png'\n"
                "set datafile separator ','\nset style data histograms\n"
                "set style fill solid 0.7 border -1\nset ylabel 'run time, s'\n"
                "set title 'Per-model run time (thesis Fig 10)'\nset key top left\n"
                "set yrange [0:*]\n"
                "plot '%s/models.csv' every ::1 using 2:xtic(1) title 'default', '' every ::1 "
                "using 3 title 'dedupd', '' every ::1 using 4 title 'oracle'\n",
                dir, dir);
        fclose(g);
        run_gnuplot(dir, "models.gp");
    }
}

static void curve_plot(const char *dir)
{
    FILE *g = open_out(dir, "curve.gp");
    if (!g)
        return;
    fprintf(g,
            "set terminal pngcairo size 1000,700 noenhanced\nset output '%s/gpu-curve.png'\n"
            "set datafile separator ','\nset multiplot layout 2,1\nset key top right\n"
            "set xlabel 'time, s'\nset ylabel 'GPUs computing (share of all)'\n"
            "set title 'GPU utilisation over time, first seed (thesis Fig 11)'\n"
            "plot '< grep \",default,\" %s/timeseries.csv' using 3:5 with lines title "
            "'default', '< grep \",dedupd,\" %s/timeseries.csv' using 3:5 with lines title "
            "'dedupd'\n"
            "set ylabel 'GPU memory in use, GiB'\nset title 'GPU memory over time'\n"
            "plot '< grep \",default,\" %s/timeseries.csv' using 3:6 with lines title "
            "'default', '< grep \",dedupd,\" %s/timeseries.csv' using 3:6 with lines title "
            "'dedupd'\nunset multiplot\n",
            dir, dir, dir, dir, dir);
    fclose(g);
    run_gnuplot(dir, "curve.gp");
}

/* One seed's policies, run by --jobs threads: each run has its own
 * placer, cluster view and model, so runs are independent and the results
 * do not depend on the number of threads. */
struct work {
    const struct sim_config *c;
    const struct sim_truth *t;
    const struct sim_cluster *cl;
    struct agg *agg;
    FILE *series;
    uint64_t seed;
    unsigned slot;
    size_t next; /* the next policy to take (atomic) */
    int error;
};

/* The policies, longest runs first, so two threads finish together. */
static const enum sim_policy run_order[SIM_P_COUNT] = {
    SIM_P_DEDUPD,  SIM_P_DEDUPD_STALE, SIM_P_DEDUPD_NO_LEDGER, SIM_P_DEDUPD_PRIOR, SIM_P_ORACLE,
    SIM_P_BINPACK, SIM_P_DEFAULT,      SIM_P_CAPACITY,         SIM_P_TARGETLOAD};

static void *worker(void *arg)
{
    struct work *w = arg;
    for (;;) {
        size_t k = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED);
        if (k >= SIM_P_COUNT)
            return NULL;
        size_t p = (size_t)run_order[k];
        if (!(w->c->policy_mask & (1u << p)))
            continue;
        struct sim_series ts = {w->series, w->seed};
        struct sim_result *res = &w->agg[p].r[w->slot];
        int e = sim_run(w->c, w->t, w->cl, (enum sim_policy)p, w->seed, &ts, res);
        if (e < 0) {
            __atomic_store_n(&w->error, e, __ATOMIC_RELAXED);
            return NULL;
        }
        if (!w->c->quiet)
            fprintf(stderr, "seed %llu %-16s mean completion %8.0f s  p95 %8.0f s  (%.2f s)\n",
                    (unsigned long long)w->seed, sim_policy_names[p], res->mean_completion_s,
                    res->p95_completion_s, res->t_total);
    }
}

/* Runs every seed and policy of one setting into agg. */
static int run_all(const struct sim_config *c, const struct sim_truth *t, struct agg *agg,
                   FILE *series, unsigned jobs)
{
    for (unsigned s = 0; s < c->seeds; s++) {
        struct sim_cluster cl;
        pthread_t th[MAX_JOBS];
        unsigned started = 0;
        struct work w = {c, t, &cl, agg, s == 0 ? series : NULL, c->seed + s, s, 0, 0};
        int e = sim_generate(c, t, w.seed, &cl);
        if (e < 0)
            return e;
        for (unsigned j = 1; j < jobs; j++)
            if (pthread_create(&th[started], NULL, worker, &w) == 0)
                started++;
        worker(&w);
        for (unsigned j = 0; j < started; j++)
            pthread_join(th[j], NULL);
        sim_cluster_release(&cl);
        if (w.error < 0)
            return w.error;
        for (size_t p = 0; p < SIM_P_COUNT; p++)
            if (c->policy_mask & (1u << p))
                agg[p].n = s + 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"experiment", required_argument, NULL, 'e'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"seeds", required_argument, NULL, 'k'},
                                         {"nodes", required_argument, NULL, 'n'},
                                         {"pods", required_argument, NULL, 'p'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"truth", required_argument, NULL, 't'},
                                         {"truth-file", required_argument, NULL, 'f'},
                                         {"policies", required_argument, NULL, 'P'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"score-scale", required_argument, NULL, 'S'},
                                         {"load", required_argument, NULL, 'l'},
                                         {"jobs", required_argument, NULL, 'j'},
                                         {"rightsize", no_argument, NULL, 'R'},
                                         {"rightsize-margin", required_argument, NULL, 'M'},
                                         {"rightsize-every", required_argument, NULL, 'E'},
                                         {"rightsize-max-down", required_argument, NULL, 'D'},
                                         {"request-inflation", required_argument, NULL, 'I'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct sim_config c;
    struct sim_truth truth;
    uint64_t v, nodes = 0, pods = 0;
    const char *policies = NULL;
    double load = 0, x;
    bool rightsize = false, rs_tuned = false;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned jobs = ncpu >= 2 ? 2 : 1; /* this project's machines have 2 cores */
    char err[512];
    int o;

    defaults(&c);
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'e':
            c.experiment = optarg;
            break;
        case 's':
            if (dd_parse_u64(optarg, &c.seed) < 0)
                return bad("--seed", "want a non-negative integer");
            break;
        case 'k':
            if (dd_parse_u64_range(optarg, 1, MAX_SEEDS, &v) < 0)
                return bad("--seeds", "want an integer 1..64");
            c.seeds = (unsigned)v;
            break;
        case 'n':
            if (dd_parse_u64_range(optarg, 1, 100000, &nodes) < 0)
                return bad("--nodes", "want an integer 1..100000");
            break;
        case 'p':
            if (dd_parse_u64_range(optarg, 1, 10000000, &pods) < 0)
                return bad("--pods", "want an integer 1..10000000");
            break;
        case 'o':
            c.out = optarg;
            break;
        case 't':
            c.truth_name = optarg;
            break;
        case 'f':
            c.truth_path = optarg;
            break;
        case 'P':
            policies = optarg;
            break;
        case 'q':
            c.quiet = true;
            break;
        case 'S':
            if (dd_parse_double(optarg, &c.score_scale) < 0 || !(c.score_scale > 0))
                return bad("--score-scale", "want a positive percentage");
            break;
        case 'j':
            if (dd_parse_u64_range(optarg, 1, MAX_JOBS, &v) < 0)
                return bad("--jobs", "want an integer 1..16");
            jobs = (unsigned)v;
            break;
        case 'l':
            if (dd_parse_double(optarg, &load) < 0 || !(load > 0.05 && load <= 2))
                return bad("--load", "want the offered GPU load, 0.05..2");
            break;
        case 'R':
            rightsize = true;
            break;
        case 'M':
            /* the memory limit over the request: the webhook's memory_margin + 1 */
            if (dd_parse_double(optarg, &x) < 0 || !(x >= 1 && x <= 3))
                return bad("--rightsize-margin", "want a factor 1..3");
            c.rs_adm.memory_margin = x - 1;
            rs_tuned = true;
            break;
        case 'D':
            /* the webhook's max_step_down (0 < x < 1) */
            if (dd_parse_double(optarg, &x) < 0 || !(x >= 0.01 && x < 1))
                return bad("--rightsize-max-down", "want a share 0.01..0.99");
            c.rs_adm.max_step_down = x;
            rs_tuned = true;
            break;
        case 'E':
            if (dd_parse_u64_range(optarg, 1, 1000000, &v) < 0)
                return bad("--rightsize-every", "want an integer 1..1000000");
            c.rs_every = (unsigned)v;
            rs_tuned = true;
            break;
        case 'I':
            if (dd_parse_double(optarg, &c.request_inflation) < 0 ||
                !(c.request_inflation >= 0.25 && c.request_inflation <= 2.5))
                return bad("--request-inflation", "want a factor 0.25..2.5");
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return bad(optind > 1 && argv[optind - 1] ? argv[optind - 1] : "arguments",
                       "unknown option or missing value");
        }
    }
    if (optind < argc)
        return bad(argv[optind], "unexpected argument");
    if (!c.experiment)
        return bad("--experiment", "missing (completion|gpu-curve|io-load|dedup|scale)");
    bool known = false;
    for (size_t i = 0; i < sizeof(experiments) / sizeof(experiments[0]); i++)
        known |= strcmp(c.experiment, experiments[i]) == 0;
    if (!known)
        return bad("--experiment", "want completion|gpu-curve|io-load|dedup|scale");
    if (!c.out || !c.out[0])
        return bad("--out", "missing: the directory to write");
    if (strcmp(c.truth_name, "default") != 0 && strcmp(c.truth_name, "null") != 0 &&
        strcmp(c.truth_name, "alt1") != 0 && strcmp(c.truth_name, "alt2") != 0)
        return bad("--truth", "want default|null|alt1|alt2");
    if (rs_tuned && !rightsize)
        return bad("--rightsize-margin/-every/-max-down", "need --rightsize");
    if ((nodes == 0) != (pods == 0))
        return bad(nodes ? "--pods" : "--nodes", "--nodes and --pods go together");
    experiment_defaults(&c);
    if (load > 0)
        c.gpu_load = load;
    if (nodes) {
        c.nodes = nodes;
        c.pods = pods;
    }
    if (policies) {
        char buf[512];
        char *save = NULL;
        snprintf(buf, sizeof(buf), "%s", policies);
        c.policy_mask = 0;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            size_t p;
            for (p = 0; p < SIM_P_COUNT; p++)
                if (strcmp(tok, sim_policy_names[p]) == 0)
                    break;
            if (p == SIM_P_COUNT)
                return bad("--policies", "unknown policy name");
            c.policy_mask |= 1u << p;
        }
    }
    int e = sim_truth_load(c.truth_path, c.truth_name, &truth, err, sizeof(err));
    if (e < 0) /* a missing variant names --truth, anything else the file */
        return bad(e == -ENOENT ? "--truth" : "--truth-file", err);
    if (mkdir(c.out, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "dedupd-sim: --out %s: %s\n", c.out, strerror(errno));
        return 2;
    }

    struct agg *agg = dd_calloc(SIM_P_COUNT, sizeof(*agg));
    struct agg *agg2 = dd_calloc(SIM_P_COUNT, sizeof(*agg2));
    struct agg *agg3 = dd_calloc(SIM_P_COUNT, sizeof(*agg3));
    FILE *series = NULL;
    if (!agg || !agg2 || !agg3)
        return 1;
    if (c.timeseries) {
        series = open_out(c.out, "timeseries.csv");
        if (series)
            fprintf(series, "seed,policy,t_s,gpus_allocated_share,gpus_computing_share,"
                            "gpu_memory_gib\n");
    }
    e = run_all(&c, &truth, agg, series, jobs);
    if (series)
        fclose(series);
    struct sim_config plain = c;
    if (e == 0 && strcmp(c.experiment, "dedup") == 0) {
        plain.dedup_pools = false;
        e = run_all(&plain, &truth, agg2, NULL, jobs);
    }
    /* --rightsize: the same seeds and policies again, right-sizing */
    struct sim_config rsc = c;
    rsc.rightsize = true;
    if (e == 0 && rightsize)
        e = run_all(&rsc, &truth, agg3, NULL, jobs);
    if (e < 0) {
        fprintf(stderr, "dedupd-sim: run failed: %s\n", dd_strerror(e));
        return 1;
    }

    json_t *sum = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:s, s:f, s:f, s:o, s:o, s:o, s:o}", "experiment", c.experiment,
        "seed", (json_int_t)c.seed, "seeds", (json_int_t)c.seeds, "nodes", (json_int_t)c.nodes,
        "pods", (json_int_t)c.pods, "truth", c.truth_name, "interval_s", c.interval_s,
        "extender_weight", c.extender_weight, "policies", policies_json(&c, agg, true),
        "extra_policies", policies_json(&c, agg, false), "dedupd_versus",
        versus_json(agg, c.policy_mask), "cost_model", model_json(&agg[SIM_P_DEDUPD]));
    if (strcmp(c.experiment, "dedup") == 0)
        json_object_set_new(sum, "non_dedup",
                            json_pack("{s:o, s:o}", "policies", policies_json(&plain, agg2, true),
                                      "dedupd_versus", versus_json(agg2, c.policy_mask)));
    char path[4096];
    json_object_set_new(sum, "dedupd_rank_by_mean_completion", json_integer(dedupd_rank(&c, agg)));
    json_object_set_new(sum, "request_inflation", json_real(c.request_inflation));
    json_object_set_new(sum, "packing", packing_json(&c, agg, NXFIELDS_ALL));
    if (rightsize)
        json_object_set_new(
            sum, "rightsize",
            json_pack("{s:f, s:f, s:f, s:f, s:I, s:s, s:s, s:o, s:o, s:o}", "margin",
                      1 + c.rs_adm.memory_margin, "cpu_limit_headroom", c.rs_adm.cpu_limit_headroom,
                      "max_down", c.rs_adm.max_step_down, "max_up", c.rs_adm.max_step_up,
                      "retrain_every", (json_int_t)c.rs_every, "rewrite",
                      "the admission webhook's: placement/admission dd_adm_rewrite, its JSON "
                      "Patch applied, requests and limits read back from the patched pod",
                      "live_state",
                      "dedupd policies: the placer's best 3 of up to 64 nodes, as the webhook; "
                      "other policies: unknown (no placer)",
                      "without", packing_json(&c, agg, NXFIELDS_ALL), "with",
                      packing_json(&rsc, agg3, NXFIELDS), "change", rs_change_json(&c, agg, agg3)));
    snprintf(path, sizeof(path), "%s/summary.json", c.out);
    if (!sum || json_dump_file(sum, path, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) < 0) {
        fprintf(stderr, "dedupd-sim: writing %s failed\n", path);
        return 1;
    }
    json_decref(sum);
    /* wall-clock figures apart: summary.json is the same for the same seed */
    json_t *tj =
        json_pack("{s:I, s:o}", "jobs", (json_int_t)jobs, "per_policy_s", timing_json(&c, agg));
    snprintf(path, sizeof(path), "%s/timing.json", c.out);
    if (!tj || json_dump_file(tj, path, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) < 0)
        fprintf(stderr, "dedupd-sim: writing %s failed\n", path);
    json_decref(tj);

    FILE *f = open_out(c.out, "results.csv");
    if (f) {
        fprintf(f, "seed,truth,pool,policy");
        for (size_t k = 0; k < NFIELDS; k++)
            fprintf(f, ",%s", field_names[k]);
        fprintf(f, ",wall_s\n");
        csv_rows(f, &c, agg, c.dedup_pools ? "dedup" : "plain");
        if (strcmp(c.experiment, "dedup") == 0)
            csv_rows(f, &plain, agg2, "plain");
        fclose(f);
    }
    f = open_out(c.out, "table.md");
    if (f) {
        fprintf(f, "## dedupd-sim --experiment %s (a simulator: not measured on a cluster)\n",
                c.experiment);
        md_table(f, &c, agg, strcmp(c.experiment, "dedup") == 0 ? "dedup (VDO) pools" : "policies");
        if (strcmp(c.experiment, "dedup") == 0)
            md_table(f, &plain, agg2, "plain (non-dedup) pools");
        if (rightsize)
            rs_table(f, &c, agg, agg3);
        fclose(f);
    }
    if (rightsize && (f = open_out(c.out, "rightsize.csv")) != NULL) {
        fprintf(f, "seed,policy,rightsize");
        for (size_t k = 0; k < NXFIELDS; k++)
            fprintf(f, ",%s", xfield_names[k]);
        fprintf(f, "\n");
        rs_csv(f, &c, agg, "off");
        rs_csv(f, &rsc, agg3, "on");
        fclose(f);
    }
    write_bars_csv(c.out, "bars.csv", &c, agg);
    bar_plot(c.out, "bars.csv", "completion.png", c.experiment);
    if (strcmp(c.experiment, "completion") == 0)
        models_out(c.out, &c, agg);
    if (strcmp(c.experiment, "gpu-curve") == 0)
        curve_plot(c.out);
    if (strcmp(c.experiment, "dedup") == 0) {
        write_bars_csv(c.out, "bars-plain.csv", &plain, agg2);
        FILE *g = open_out(c.out, "dedup.gp");
        if (g) {
            fprintf(g,
                    "set terminal pngcairo size 1000,500 noenhanced\nset output "
                    "'%s/dedup.png'\nset datafile separator ','\nset style data histograms\n"
                    "set style histogram errorbars gap 1 lw 1\nset style fill solid 0.7 border "
                    "-1\nset ylabel 'mean completion, s'\nset xtics rotate by -30\n"
                    "set title 'dedup (VDO) pools against plain pools (thesis Fig 24/25)'\n"
                    "set yrange [0:*]\nplot '%s/bars.csv' every ::1 using 2:3:xtic(1) title 'dedup "
                    "pools', '%s/bars-plain.csv' every ::1 using 2:3 title 'plain pools'\n",
                    c.out, c.out, c.out);
            fclose(g);
            run_gnuplot(c.out, "dedup.gp");
        }
    }
    dd_free(agg);
    dd_free(agg2);
    dd_free(agg3);
    return 0;
}
