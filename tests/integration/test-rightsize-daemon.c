/*
 * Right-sizing through a real placement-role dedupd: generated outcomes
 * (bench/rsgen.h, a known relation) posted to POST /v1/observations in
 * batches of 200, 500, 1,000 and 2,000, the model retrained after each
 * (the interval trigger), its hold-out MAPE read from GET
 * /v1/rightsize/model: the learning curve improves and ends at or below
 * 15 % on every target. Bad bodies get 400 naming the field, a repeated
 * pod_uid replaces, and a restarted daemon serves the same model version
 * over the same outcomes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bench/rsgen.h"
#include "helpers.h"

static pid_t g_pid = -1;
static unsigned g_port;
static CURL *g_curl;

struct buf {
    char *p;
    size_t n;
};

static size_t sink(char *d, size_t s, size_t n, void *ud)
{
    struct buf *b = ud;
    char *p = realloc(b->p, b->n + s * n + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, d, s * n);
    b->n += s * n;
    p[b->n] = '\0';
    b->p = p;
    return s * n;
}

/* status code; *ret (may be NULL) the parsed body */
static long http(const char *method, const char *path, const char *body, json_t **ret)
{
    char url[256];
    struct buf b = {0};
    long code = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", g_port, path);
    curl_easy_reset(g_curl);
    curl_easy_setopt(g_curl, CURLOPT_URL, url);
    curl_easy_setopt(g_curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(g_curl, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(g_curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(g_curl, CURLOPT_TIMEOUT, 30L);
    if (body)
        curl_easy_setopt(g_curl, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(g_curl) != CURLE_OK)
        fail_msg("%s %s: no answer", method, path);
    curl_easy_getinfo(g_curl, CURLINFO_RESPONSE_CODE, &code);
    if (ret)
        *ret = b.p ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    return code;
}

static void start(const char *dir)
{
    char *db = tt_path(dir, "db"), *log = tt_path(dir, "log");
    const char *argv[] = {tt_bin("dedupd"),
                          "--role",
                          "placement",
                          "--listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          db,
                          "--log-level",
                          "info",
                          "--rightsize-retrain-every",
                          "100000",
                          "--rightsize-retrain-interval",
                          "0.2",
                          "--rightsize-min-outcomes",
                          "100",
                          NULL};
    unlink(log);
    g_pid = tt_daemon_fork(argv, log);
    g_port = tt_daemon_port(log, 400);
    if (!g_port)
        fail_msg("dedupd never logged its port");
    free(db);
    free(log);
}

static void stop(void)
{
    if (g_pid > 0) {
        kill(g_pid, SIGTERM);
        waitpid(g_pid, NULL, 0);
        g_pid = -1;
    }
}

/* polls GET /v1/rightsize/model until the model covers `outcomes` rows
 * with no training pending; fails after 60 s */
static json_t *model_for(size_t outcomes, json_int_t after_version)
{
    for (int i = 0; i < 1200; i++) {
        json_t *m = NULL;
        if (http("GET", "/v1/rightsize/model", NULL, &m) == 200 && m &&
            (size_t)json_integer_value(json_object_get(m, "outcomes")) == outcomes &&
            json_integer_value(json_object_get(m, "pending")) == 0 &&
            !json_is_true(json_object_get(m, "training")) &&
            json_integer_value(json_object_get(m, "version")) > after_version)
            return m;
        json_decref(m);
        usleep(50000);
    }
    fail_msg("no model over %zu outcomes within 60 s", outcomes);
    return NULL;
}

static void post_range(const struct dd_rsgen *g, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        json_t *o = dd_rsgen_outcome(g, i);
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        long code = http("POST", "/v1/observations", s, NULL);
        if (code != 200)
            fail_msg("outcome %zu: HTTP %ld", i, code);
        free(s);
    }
}

static void test_loop(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    static const size_t steps[] = {200, 500, 1000, 2000};
    double curve[4][6];
    struct dd_rsgen g;
    json_t *m = NULL, *e;
    json_int_t version = 0;
    size_t done = 0;
    static const char *const targets[] = {"peak_cpu_cores", "peak_memory_bytes", "gpu_memory_bytes",
                                          "read_mbps",      "write_mbps",        "run_seconds"};

    start(dir);
    /* bad bodies: 400 naming the field, nothing recorded */
    assert_int_equal(
        http("POST", "/v1/observations", "{\"namespace\": \"a\", \"requests\": {}}", &m), 400);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(m, "error"), "message")), "pod_uid"));
    json_decref(m);
    assert_int_equal(http("POST", "/v1/observations",
                          "{\"pod_uid\": \"a\", \"namespace\": "
                          "\"b\", \"requests\": {\"memory\": \"1Q\"}}",
                          NULL),
                     400);
    assert_int_equal(http("POST", "/v1/observations", "not json", NULL), 400);

    dd_rsgen_init(&g, 42);
    for (size_t s = 0; s < 4; s++) {
        post_range(&g, done, steps[s]);
        done = steps[s];
        m = model_for(done, version);
        version = json_integer_value(json_object_get(m, "version"));
        print_message("%5zu outcomes, version %lld:", done, (long long)version);
        for (int t = 0; t < 6; t++) {
            e = json_object_get(json_object_get(m, "targets"), targets[t]);
            curve[s][t] = json_number_value(json_object_get(e, "model_mape_percent"));
            print_message(" %s %.1f%% (fallback %.1f%%)%s", targets[t], curve[s][t],
                          json_number_value(json_object_get(e, "fallback_mape_percent")),
                          json_is_true(json_object_get(e, "served")) ? "" : " not served");
        }
        print_message("\n");
        json_decref(m);
    }
    double first = 0, last = 0;
    for (int t = 0; t < 6; t++) {
        first += curve[0][t];
        last += curve[3][t];
        if (!(curve[3][t] <= 15.0))
            fail_msg("%s: hold-out MAPE %.1f %% at 2,000 outcomes", targets[t], curve[3][t]);
    }
    if (!(last < first))
        fail_msg("no improvement: mean MAPE %.1f %% at 200, %.1f %% at 2,000", first / 6, last / 6);

    /* a repeated pod replaces: the count stays */
    post_range(&g, 1999, 2000);
    m = model_for(2000, version);
    json_decref(m);
    version++;

    /* a restart brings the model and the outcomes back */
    stop();
    start(dir);
    assert_int_equal(http("GET", "/v1/rightsize/model", NULL, &m), 200);
    assert_int_equal(json_integer_value(json_object_get(m, "version")), version);
    assert_int_equal(json_integer_value(json_object_get(m, "outcomes")), 2000);
    e = json_object_get(json_object_get(m, "targets"), "peak_cpu_cores");
    assert_true(json_is_true(json_object_get(e, "served")));
    json_decref(m);
    stop();
    tt_rmtree(dir);
    free(dir);
}

static int teardown(void **state)
{
    (void)state;
    stop();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_loop, teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_curl = curl_easy_init();
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_easy_cleanup(g_curl);
    curl_global_cleanup();
    return r;
}
