/*
 * dedupctl's remote verbs against a stand-in dedupd: a dd_http server on an
 * ephemeral loopback port in this process, answering the routes dedupctl
 * calls with canned documents. Checks that figures the daemon lacks print
 * as "-" (never "nan"), and that --token-file is read with
 * dedupd/http/token.h: missing, a FIFO, too short or empty are usage errors
 * (exit 2) naming the file, and a good token reaches mutating routes.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/http/http.h"
#include "helpers.h"

#define TOKEN "remote-test-token-0123456789"

static atomic_int full_node; /* 1: /v1/node has every figure */

static int h_health(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static int h_node(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    if (atomic_load(&full_node))
        return dd_http_reply_json(resp, 200,
                                  json_pack("{s:i, s:f, s:f, s:f}", "volumes", 2, "cpu_util", 0.25,
                                            "node_cpu_util_ex_vdo", 0.125, "run_queue", 3.0));
    /* the first sample is not in yet: only the count, and a null */
    return dd_http_reply_json(resp, 200,
                              json_pack("{s:i, s:n}", "volumes", 0, "node_cpu_util_ex_vdo"));
}

static int h_history(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200,
                              json_pack("{s:[{s:i, s:{s:{s:f, s:n}}}]}", "points", "time_ms", 1000,
                                        "sample", "features", "write_mbps", 12.5,
                                        "dedup_hit_rate"));
}

static int h_retrain(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, json_pack("{s:b}", "trained", 1));
}

static const struct dd_http_route routes[] = {
    {"GET", "/healthz", h_health, NULL, false, NULL, 0},
    {"GET", "/readyz", h_health, NULL, false, NULL, 0},
    {"GET", "/v1/node", h_node, NULL, false, NULL, 0},
    {"GET", "/v1/volumes/{name}/history", h_history, NULL, false, NULL, 0},
    {"POST", "/v1/model/retrain", h_retrain, NULL, true, NULL, 0},
};

static struct dd_http_server *srv;
static char url[64];
static char *dir;

static int start(void **state)
{
    struct dd_http_config cfg = {.listen = "127.0.0.1:0", .token = TOKEN};
    char err[256];
    (void)state;

    if (dd_http_start(&cfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)) < 0)
        fail_msg("server: %s", err);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", dd_http_port(srv));
    dir = tt_tmpdir();
    return 0;
}

static int stop(void **state)
{
    (void)state;
    dd_http_stop(srv);
    tt_rmtree(dir);
    free(dir);
    return 0;
}

/* Runs dedupctl with the arguments (NULL-terminated); returns its status. */
static int ctl(char **out, char **err, const char *verb, const char *a1, const char *a2,
               const char *a3)
{
    const char *argv[] = {tt_bin("dedupctl"), verb, "--remote", url, a1, a2, a3, NULL};
    return tt_run(argv, out, err);
}

static void test_status_missing_figures(void **state)
{
    char *out = NULL, *err = NULL;
    (void)state;

    atomic_store(&full_node, 0);
    assert_int_equal(ctl(&out, &err, "status", NULL, NULL, NULL), 0);
    assert_non_null(strstr(out, "ready"));
    if (!strstr(out, "volumes 0, CPU - (- without VDO threads), run queue -") || strstr(out, "nan"))
        fail_msg("status printed: %s", out);
    free(out);
    free(err);

    atomic_store(&full_node, 1);
    assert_int_equal(ctl(&out, &err, "status", NULL, NULL, NULL), 0);
    if (!strstr(out, "volumes 2, CPU 25.0 % (12.5 % without VDO threads), run queue 3"))
        fail_msg("status printed: %s", out);
    free(out);
    free(err);

    assert_int_equal(ctl(&out, &err, "history", "v1", NULL, NULL), 0);
    if (!strstr(out, "1000 12.5 MB/s hit - cost - latency - ms") || strstr(out, "nan"))
        fail_msg("history printed: %s", out);
    free(out);
    free(err);
}

static void token_file_fails(const char *path, const char *why)
{
    char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, "status", "--token-file", path, NULL);
    if (rc != 2 || !strstr(err, path) || !strstr(err, why))
        fail_msg("--token-file %s: exit %d, stderr: %s", path, rc, err);
    free(out);
    free(err);
}

static void test_token_file(void **state)
{
    char *out = NULL, *err = NULL;
    char *missing = tt_path(dir, "missing"), *fifo = tt_path(dir, "fifo");
    char *shorty = tt_path(dir, "short"), *empty = tt_path(dir, "empty");
    char *good = tt_path(dir, "good");
    (void)state;

    token_file_fails(missing, "No such file or directory");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    token_file_fails(fifo, "is a FIFO, not a regular file"); /* at once, no hang */
    tt_write_file(shorty, "abc\n", 4);
    token_file_fails(shorty, "at least 16");
    tt_write_file(empty, "", 0);
    token_file_fails(empty, "is empty");
    token_file_fails(dir, "is a directory");

    /* a good token reaches the mutating route; no token is refused there */
    tt_write_file(good, TOKEN "\n", strlen(TOKEN) + 1);
    assert_int_equal(ctl(&out, &err, "model", "retrain", "--token-file", good), 0);
    assert_non_null(strstr(out, "\"trained\": true"));
    free(out);
    free(err);
    assert_int_equal(ctl(&out, &err, "model", "retrain", NULL, NULL), 1);
    assert_non_null(strstr(err, "HTTP 401"));
    free(out);
    free(err);
    /* read-only verbs work with the token too */
    assert_int_equal(ctl(&out, &err, "status", "--token-file", good, NULL), 0);
    free(out);
    free(err);

    free(missing);
    free(fifo);
    free(shorty);
    free(empty);
    free(good);
}

static void test_unreachable(void **state)
{
    const char *argv[] = {tt_bin("dedupctl"), "status", "--remote", "http://127.0.0.1:1", NULL};
    char *out = NULL, *err = NULL;
    (void)state;

    assert_int_equal(tt_run(argv, &out, &err), 1);
    assert_non_null(strstr(err, "http://127.0.0.1:1/healthz: "));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_missing_figures),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
