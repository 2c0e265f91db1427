/*
 * The cost model through the real daemon: dedupd replays a simulated node
 * (dedupctl vdo-sim: five volumes whose rates, duplicate shares, compression
 * and CPU load change every 10 intervals, with the simulator's stated cost
 * function and 5 % noise), stores the history in RocksDB, trains XGBoost on
 * request and serves it only because it beats the prior on the hold-out.
 * Checked: hold-out MAPE <= 10 % for both targets, what-if answers monotone
 * in the constrained inputs, 400s naming the field for bad input, the
 * model surviving a restart bit for bit (same answers), and a corrupt
 * stored model falling back to the prior with a logged error.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/store/store.h"
#include "helpers.h"

static char *g_root, *g_replay;

struct daemon {
    pid_t pid;
    unsigned port;
    char log[4200];
};

/* the daemon running, killed at teardown when a test fails half way (ctest
 * would otherwise wait on its copy of the output pipe until the timeout) */
static pid_t g_pid;

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static char *read_log(const struct daemon *d)
{
    return tt_read_text(d->log);
}

static void start(struct daemon *d, const char *data, const char *min_train)
{
    char spec[4300];
    snprintf(d->log, sizeof(d->log), "%s/dedupd-%d.log", g_root, rand());
    snprintf(spec, sizeof(spec), "replay:%s", g_replay);
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execl(tt_bin("dedupd"), "dedupd", "--listen", "127.0.0.1:0", "--data-dir", data, "--source",
              spec, "--interval", "0.01", "--min-train-samples", min_train, "--retrain-every",
              "100000000", (char *)NULL);
        _exit(98);
    }
    g_pid = d->pid;
    for (int i = 0; i < 400; i++) {
        char *text = read_log(d), *p = strstr(text, "(port ");
        if (p) {
            d->port = (unsigned)strtoul(p + 6, NULL, 10);
            free(text);
            return;
        }
        free(text);
        msleep(25);
    }
    fail_msg("dedupd did not start (log %s)", d->log);
}

static int stop(struct daemon *d)
{
    int st = 0;
    kill(d->pid, SIGTERM);
    waitpid(d->pid, &st, 0);
    g_pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static struct tt_reply http(const struct daemon *d, const char *method, const char *path,
                            const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", d->port, path);
    return tt_http(url, method, body, 0, 120);
}

static json_t *call_json(const struct daemon *d, const char *method, const char *path,
                         const char *body, long want)
{
    struct tt_reply r = http(d, method, path, body);
    if (r.status != want)
        fail_msg("%s %s: %ld, want %ld: %s", method, path, r.status, want, r.body);
    json_t *doc = json_loads(r.body, 0, NULL);
    if (!doc)
        fail_msg("%s %s: not JSON: %s", method, path, r.body);
    free(r.body);
    return doc;
}

/* POST /v1/model/retrain; a slow machine may answer 202 (the daemon waits
 * 10 s): then the run is polled until it is done. Returns the 200 body. */
static json_t *retrain(const struct daemon *d)
{
    struct tt_reply r = http(d, "POST", "/v1/model/retrain", "{}");
    json_t *doc = json_loads(r.body, 0, NULL);
    if (!doc || (r.status != 200 && r.status != 202))
        fail_msg("POST /v1/model/retrain: %ld %s", r.status, r.body);
    free(r.body);
    for (int i = 0; i < 600 && r.status == 202; i++) {
        char poll[128];
        snprintf(poll, sizeof(poll), "%s", json_string_value(json_object_get(doc, "poll")));
        json_decref(doc);
        msleep(200);
        doc = call_json(d, "GET", poll, NULL, 200);
        r.status = (long)json_integer_value(json_object_get(doc, "http_status"));
    }
    if (r.status != 200)
        fail_msg("retrain ended with %ld", r.status);
    return doc;
}

/* waits until the replay has been sampled to its end */
static void wait_samples(const struct daemon *d, double want)
{
    for (int i = 0; i < 6000; i++) {
        struct tt_reply r = http(d, "GET", "/metrics", NULL);
        const char *p = strstr(r.body, "\ndedupd_samples_total ");
        double n = p ? strtod(p + 22, NULL) : 0;
        free(r.body);
        if (n >= want)
            return;
        msleep(20);
    }
    fail_msg("the daemon did not reach %g samples", want);
}

static double mape(json_t *model, const char *target)
{
    json_t *h = json_object_get(json_object_get(model, "active"), "holdout");
    return json_number_value(json_object_get(json_object_get(h, target), "mape_percent"));
}

/* A what-if; dup < 0 leaves the volume's duplicate share as it is, so a
 * sweep moves only the constrained inputs. */
static json_t *predict_what_if(const struct daemon *d, const char *vol, double w, double dup,
                               double load)
{
    char body[256], dpart[64] = "";
    if (dup >= 0)
        snprintf(dpart, sizeof(dpart), "\"duplicate_share\": %g, ", dup);
    snprintf(body, sizeof(body),
             "{\"volume\": \"%s\", \"what_if\": {\"write_mbps\": %g, %s\"cpu_load\": %g}}", vol, w,
             dpart, load);
    return call_json(d, "POST", "/v1/predict", body, 200);
}

static void expect_400(const struct daemon *d, const char *body, const char *needle)
{
    struct tt_reply r = http(d, "POST", "/v1/predict", body);
    if (r.status != 400 || !strstr(r.body, needle))
        fail_msg("POST /v1/predict %s: %ld %s; want 400 naming '%s'", body, r.status, r.body,
                 needle);
    free(r.body);
}

static void test_train_serve_restart_corrupt(void **state)
{
    struct daemon d;
    char *data = tt_path(g_root, "data");
    (void)state;
    start(&d, data, "300");

    /* before any training: the prior answers, and says so */
    json_t *m = call_json(&d, "GET", "/v1/model", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "active"), "kind")),
                        "prior");
    json_decref(m);
    wait_samples(&d, 300);

    json_t *sum = retrain(&d);
    assert_int_equal(json_integer_value(json_object_get(sum, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(sum, "status")), "done");
    /* the run can be polled by id afterwards; unknown runs are 404 */
    char runpath[64];
    snprintf(runpath, sizeof(runpath), "/v1/model/runs/%lld",
             (long long)json_integer_value(json_object_get(sum, "run")));
    json_decref(sum);
    sum = call_json(&d, "GET", runpath, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(sum, "status")), "done");
    assert_int_equal(json_integer_value(json_object_get(sum, "http_status")), 200);
    json_decref(sum);
    json_decref(call_json(&d, "GET", "/v1/model/runs/999", NULL, 404));
    json_decref(call_json(&d, "GET", "/v1/model/runs/x", NULL, 400));
    m = call_json(&d, "GET", "/v1/model", NULL, 200);
    json_t *act = json_object_get(m, "active");
    print_message("hold-out MAPE: cost %.2f %%, latency %.2f %%\n", mape(m, "cost"),
                  mape(m, "latency"));
    assert_string_equal(json_string_value(json_object_get(act, "kind")), "xgboost");
    assert_int_equal(json_integer_value(json_object_get(act, "version")), 1);
    assert_true(mape(m, "cost") <= 10.0);
    assert_true(mape(m, "latency") <= 10.0);
    json_t *v1 = json_array_get(json_object_get(m, "versions"), 0);
    for (int t = 0; t < 2; t++) {
        const char *tn = t ? "latency" : "cost";
        json_t *h = json_object_get(json_object_get(v1, "holdout"), tn);
        double x =
            json_number_value(json_object_get(json_object_get(h, "xgboost"), "mape_percent"));
        double p = json_number_value(json_object_get(json_object_get(h, "prior"), "mape_percent"));
        print_message("%s: xgboost %.2f %% vs prior %.2f %%\n", tn, x, p);
        assert_true(x < p);
    }
    json_decref(m);

    /* what-ifs: more writes or more CPU load never predict lower latency.
     * A sweep starts from the volume's latest features; the replay may
     * still be sampling, so a sweep whose base moved between its calls
     * (any feature but the swept ones differs) is run again */
    bool swept = false;
    for (int attempt = 0; attempt < 20 && !swept; attempt++) {
        double prev_lat = 0, prev_cost = 0;
        json_t *base0 = NULL;
        swept = true;
        for (int i = 0; i < 6 && swept; i++) {
            json_t *p = predict_what_if(&d, "v1", 0, -1, 0.15 * i);
            json_t *base = json_deep_copy(json_object_get(p, "features"));
            json_object_del(base, "node_cpu_util_ex_vdo");
            swept = !base0 || json_equal(base, base0);
            if (!base0)
                base0 = json_incref(base);
            json_decref(base);
            if (swept) {
                double lat = json_number_value(json_object_get(p, "latency_ms"));
                double cost = json_number_value(json_object_get(p, "cost"));
                assert_string_equal(json_string_value(json_object_get(p, "source")), "xgboost");
                assert_int_equal(json_integer_value(json_object_get(p, "model_version")), 1);
                assert_string_equal(
                    json_string_value(json_object_get(
                        json_object_get(json_object_get(p, "explanation"), "cost"), "kind")),
                    "shap");
                assert_true(lat >= prev_lat && cost >= prev_cost);
                prev_lat = lat;
                prev_cost = cost;
            }
            json_decref(p);
        }
        json_decref(base0);
    }
    if (!swept)
        fail_msg("the CPU-load sweep never ran on a steady base");
    swept = false;
    for (int attempt = 0; attempt < 20 && !swept; attempt++) {
        double prev_lat = 0;
        json_t *base0 = NULL;
        swept = true;
        for (int i = 0; i < 6 && swept; i++) {
            json_t *p = predict_what_if(&d, "v2", 10 + 60.0 * i, -1, 0);
            json_t *base = json_deep_copy(json_object_get(p, "features"));
            json_object_del(base, "write_mbps");
            json_object_del(base, "write_iops");
            swept = !base0 || json_equal(base, base0);
            if (!base0)
                base0 = json_incref(base);
            json_decref(base);
            if (swept) {
                double lat = json_number_value(json_object_get(p, "latency_ms"));
                assert_true(lat >= prev_lat);
                prev_lat = lat;
            }
            json_decref(p);
        }
        json_decref(base0);
    }
    if (!swept)
        fail_msg("the write-rate sweep never ran on a steady base");

    /* bad input: 400 naming the field, and the daemon stays up */
    expect_400(&d, "{\"volume\": \"nosuch\"}", "volume: no volume named 'nosuch'");
    expect_400(&d, "{\"volume\": 7}", "volume: expected");
    expect_400(&d, "{\"volume\": \"v1\", \"what_if\": {\"write_mbps\": -5}}", "what_if.write_mbps");
    expect_400(&d, "{\"volume\": \"v1\", \"what_if\": {\"duplicate_share\": 1.5}}",
               "what_if.duplicate_share");
    expect_400(&d, "{\"volume\": \"v1\", \"what_if\": {\"cpu\": 0.5}}", "what_if.cpu: unknown");
    expect_400(&d, "{\"features\": {\"write_mbps\": 10}}", "features.read_mbps: missing");
    expect_400(&d, "{\"features\": {\"write_mbps\": \"NaN\"}}", "features.write_mbps");
    expect_400(&d, "{\"features\": {\"write_mbps\": NaN}}", "column");
    expect_400(&d, "{\"volume\": \"v1\", \"features\": {}}", "either");
    expect_400(&d, "{\"volumes\": \"v1\"}", "volumes: unknown field");
    expect_400(&d, "{\"volume\": \"v1\", \"what_if\": {\"duplicate_share\": 0.5}}",
               "what_if.duplicate_share: the share of added writes");
    /* quoted input cut in the middle of a character, or not UTF-8 at all:
     * still the 400, with the bad bytes as '?' */
    char longname[400];
    memset(longname, 'a', 127);
    snprintf(longname + 127, sizeof(longname) - 127, "\xc3\xa9\xc3\xa9");
    char body400[600];
    snprintf(body400, sizeof(body400), "{\"volume\": \"%s\"}", longname);
    expect_400(&d, body400, "no volume named 'aaaa");
    expect_400(&d, "{\"v\\u00e9\\u00e9\": 1}", "unknown field");
    expect_400(&d, "[1, 2]", "object");

    /* the full feature vector answers too, and the thin clients work */
    json_t *vol = call_json(&d, "GET", "/v1/volumes/v3", NULL, 200);
    json_t *req = json_pack("{s:O}", "features", json_object_get(vol, "features"));
    json_object_del(json_object_get(req, "features"), "cost");
    json_object_del(json_object_get(req, "features"), "latency");
    json_object_del(json_object_get(req, "features"), "operating_mode_normal");
    json_object_del(json_object_get(req, "features"), "journal_blocks_per_s");
    json_object_del(json_object_get(req, "features"), "block_map_pages_per_s");
    /* once the replay is over its intervals write nothing and use no CPU:
     * the hit rate and node CPU, ratios over the interval, are left out of
     * the document (how soon depends on the build's speed); a caller gives
     * every feature */
    static const char *const ratios[] = {"dedup_hit_rate", "node_cpu_util_ex_vdo"};
    json_t *rf = json_object_get(req, "features");
    for (size_t i = 0; i < sizeof(ratios) / sizeof(ratios[0]); i++) {
        if (!json_is_number(json_object_get(rf, ratios[i])))
            json_object_set_new(rf, ratios[i], json_real(0.25));
    }
    char *body = json_dumps(req, JSON_COMPACT);
    json_t *p1 = call_json(&d, "POST", "/v1/predict", body, 200);
    json_decref(vol);
    json_decref(req);

    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", d.port);
    const char *margv[] = {tt_bin("dedupctl"), "model", "--remote", url, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(tt_run(margv, &out, &err), 0);
    assert_non_null(strstr(out, "active: xgboost, version 1"));
    free(out);
    free(err);
    const char *pargv[] = {tt_bin("dedupctl"), "predict", "--remote",   url,   "--volume", "v2",
                           "--write-mbps",     "80",      "--cpu-load", "0.2", NULL};
    assert_int_equal(tt_run(pargv, &out, &err), 0);
    assert_non_null(strstr(out, "(xgboost, model version 1)"));
    free(out);
    free(err);
    const char *bargv[] = {tt_bin("dedupctl"), "predict", "--remote", url, "--volume", "zz", NULL};
    assert_int_equal(tt_run(bargv, &out, &err), 1);
    assert_non_null(strstr(err, "no volume named 'zz'"));
    free(out);
    free(err);
    assert_int_equal(stop(&d), 0);

    /* restart: the stored model serves again, with the same answers */
    start(&d, data, "300");
    m = call_json(&d, "GET", "/v1/model", NULL, 200);
    act = json_object_get(m, "active");
    assert_string_equal(json_string_value(json_object_get(act, "kind")), "xgboost");
    assert_int_equal(json_integer_value(json_object_get(act, "version")), 1);
    assert_int_equal(json_array_size(json_object_get(m, "versions")), 1);
    json_decref(m);
    json_t *p2 = call_json(&d, "POST", "/v1/predict", body, 200);
    assert_true(json_equal(json_object_get(p1, "cost"), json_object_get(p2, "cost")));
    assert_true(json_equal(json_object_get(p1, "latency_ms"), json_object_get(p2, "latency_ms")));
    json_decref(p2);
    assert_int_equal(stop(&d), 0);

    /* a corrupt model version 2 in the store: the prior answers, the log says
     * why (--min-train-samples past the history keeps it from retraining) */
    struct dd_store *s = NULL;
    char serr[512];
    assert_int_equal(dd_store_open(data, NULL, &s, serr, sizeof(serr)), 0);
    assert_int_equal(dd_store_put_model(s, "costmodel", 2, "DDCM1\n\0\0\0\x05{}xyz", 16), 0);
    dd_store_free(s);
    start(&d, data, "1000000");
    m = call_json(&d, "GET", "/v1/model", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "active"), "kind")),
                        "prior");
    json_decref(m);
    char *log = read_log(&d);
    assert_non_null(strstr(log, "stored cost model version 2 does not load"));
    free(log);
    p2 = call_json(&d, "POST", "/v1/predict", body, 200);
    assert_string_equal(json_string_value(json_object_get(p2, "source")), "prior");
    json_t *ex = json_object_get(json_object_get(p2, "explanation"), "cost");
    assert_string_equal(json_string_value(json_object_get(ex, "kind")), "prior_terms");
    /* the prior's terms add up to its answer */
    double sum_terms = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(ex, "terms"), k, v)
    {
        sum_terms += json_number_value(v);
    }
    assert_true(fabs(sum_terms - json_number_value(json_object_get(p2, "cost"))) < 1e-6);
    json_decref(p2);
    /* too little history for the threshold: 409, named */
    struct tt_reply r = http(&d, "POST", "/v1/model/retrain", "{}");
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(r.body, "--min-train-samples"));
    free(r.body);
    assert_int_equal(stop(&d), 0);

    /* with the usual threshold a daemon without a usable model trains at
     * start: version 3 replaces the broken one */
    start(&d, data, "300");
    bool trained = false;
    for (int i = 0; i < 3000 && !trained; i++) {
        m = call_json(&d, "GET", "/v1/model", NULL, 200);
        act = json_object_get(m, "active");
        trained = json_integer_value(json_object_get(act, "version")) == 3 &&
                  strcmp(json_string_value(json_object_get(act, "kind")), "xgboost") == 0;
        json_decref(m);
        if (!trained)
            msleep(20);
    }
    assert_true(trained);
    assert_int_equal(stop(&d), 0);
    json_decref(p1);
    free(body);
    free(data);
}

/* dedupctl model fit: data of the prior's own form (contention k = 0.5)
 * come back as that prior, scored on the newest fifth; bad lines are named */
static void test_model_fit_cli(void **state)
{
    char *data = tt_path(g_root, "fit.jsonl"), *out = tt_path(g_root, "prior.json");
    FILE *f = fopen(data, "w");
    uint64_t st = 99;
    (void)state;
    assert_non_null(f);
    for (int i = 0; i < 400; i++) {
        double e = pow(2, 20 + 8 * (double)(tt_rand64(&st) % 1000) / 1000.0);
        double u = 0.9 * (double)(tt_rand64(&st) % 1000) / 1000.0;
        double load = 0.8 * (double)(tt_rand64(&st) % 1000) / 1000.0;
        double c = (double)(tt_rand64(&st) % 2), s = 0.3 * (1 - u);
        double slow = 1 + 0.5 * load / (1 - load);
        double cost = (0.4 + 0.02 * log2(e) + 0.3 * (1 - u) + 1.5 * c * s) * slow;
        double lat = (0.2 + 0.01 * log2(e) + 0.1 * (1 - u) + 0.05 * c * s) * slow;
        fprintf(f,
                "{\"time_ms\": %d, \"features\": {\"index_entries\": %.0f, \"dedup_hit_rate\": "
                "%.6f, \"compression\": %.0f, \"packer_savings\": 0.3, "
                "\"node_cpu_util_ex_vdo\": %.6f, \"write_mbps\": 100, \"cost\": %.9f, "
                "\"latency\": %.9f}}\n",
                i, e, u, c, load, cost, lat);
    }
    fclose(f);
    const char *argv[] = {tt_bin("dedupctl"), "model", "fit",    "--data", data,
                          "--prior-out",      out,     "--json", NULL};
    char *sout = NULL, *serr = NULL;
    assert_int_equal(tt_run(argv, &sout, &serr), 0);
    json_t *doc = json_loads(sout, 0, NULL);
    assert_non_null(doc);
    json_t *pc = json_object_get(json_object_get(doc, "prior_fitted"), "cost");
    assert_true(fabs(json_number_value(json_object_get(pc, "cpu_contention")) - 0.5) < 1e-9);
    /* 0.4 + 0.3 (1 - u) is 0.7 per new block, 0.3 less per duplicate */
    assert_true(fabs(json_number_value(json_object_get(pc, "new_block")) - 0.7) < 1e-3);
    assert_true(fabs(json_number_value(json_object_get(pc, "duplicate_verify")) + 0.3) < 1e-3);
    assert_true(fabs(json_number_value(json_object_get(pc, "compression_on"))) < 1e-3);
    double m = json_number_value(json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "holdout"), "cost"), "prior_fitted"),
        "mape_percent"));
    assert_true(m < 0.1);
    json_decref(doc);
    free(sout);
    free(serr);
    /* the written prior is what dedupd --prior-file reads */
    json_t *pf = json_load_file(out, 0, NULL);
    assert_non_null(json_object_get(json_object_get(pf, "latency"), "cpu_contention"));
    json_decref(pf);

    f = fopen(data, "a");
    fputs("{\"time_ms\": 5, \"features\": \n", f);
    fclose(f);
    assert_int_equal(tt_run(argv, &sout, &serr), 1);
    assert_non_null(strstr(serr, "fit.jsonl:401"));
    free(sout);
    free(serr);
    free(data);
    free(out);
}

/* five volumes, phases every 10 intervals drawn from a seeded generator */
static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_root = tt_tmpdir();
    g_replay = tt_path(g_root, "replay");
    char *wl = tt_path(g_root, "w.json");
    tt_random_workload(wl, 5, 320, 8, 2024);
    tt_vdo_sim(wl, 320, 8, g_replay);
    free(wl);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        waitpid(g_pid, NULL, 0);
    }
    tt_rmtree(g_root);
    free(g_root);
    free(g_replay);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_serve_restart_corrupt),
        cmocka_unit_test(test_model_fit_cli),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
