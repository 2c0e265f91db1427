/*
 * The real dedupd on an ephemeral loopback port, fed by a replay made with
 * `dedupctl vdo-sim` (simulated volumes and a fake /proc): REST round trips
 * for every endpoint, restart keeps history, kill -9 loses at most one
 * interval, a corrupt or unwritable store fails start with a clear message,
 * 50 malformed requests each get the right 4xx while the daemon stays up,
 * and /metrics passes a strict text-format check.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "helpers.h"

struct daemon {
    pid_t pid;
    unsigned port;
    char log[4200];
};

static char *g_root, *g_replay, *g_sys;
/* --role for the next start() */
static const char *g_role = "all";
/* --config for the next start(), when set */
static const char *g_config;
/* daemons still running, killed at teardown if a test failed half way */
static pid_t g_pids[8];

static void track(pid_t pid, bool add)
{
    for (size_t i = 0; i < 8; i++) {
        if (add ? g_pids[i] == 0 : g_pids[i] == pid) {
            g_pids[i] = add ? pid : 0;
            return;
        }
    }
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Starts dedupd; returns false (with the log kept) if it exits first. */
static bool start(struct daemon *d, const char *data_dir, bool as_nobody)
{
    char spec[4300], data[4300];
    snprintf(d->log, sizeof(d->log), "%s/dedupd-%d.log", g_root, rand());
    snprintf(spec, sizeof(spec), "replay:%s", g_replay);
    snprintf(data, sizeof(data), "%s", data_dir);
    d->port = 0;
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        if (as_nobody && geteuid() == 0) {
            struct passwd *pw = getpwnam("nobody");
            if (setgid(pw ? pw->pw_gid : 65534) != 0 || setuid(pw ? pw->pw_uid : 65534) != 0)
                _exit(99);
        }
        const char *args[24] = {tt_bin("dedupd"),
                                "--role",
                                g_role,
                                "--listen",
                                "127.0.0.1:0",
                                "--data-dir",
                                data,
                                "--source",
                                spec,
                                "--sys-root",
                                g_sys,
                                "--interval",
                                "0.05",
                                "--estimate-root",
                                g_root};
        size_t na = 15;
        if (g_config) {
            args[na++] = "--config";
            args[na++] = g_config;
        }
        args[na] = NULL;
        char *argv[24];
        memcpy(argv, args, sizeof(argv)); /* execv's type, without a cast */
        execv(argv[0], argv);
        _exit(98);
    }
    track(d->pid, true);
    for (int i = 0; i < 200; i++) {
        char *text = NULL;
        FILE *f = fopen(d->log, "r");
        if (f) {
            char buf[8192];
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            buf[n] = '\0';
            fclose(f);
            text = strstr(buf, "(port ");
            if (text) {
                d->port = (unsigned)strtoul(text + 6, NULL, 10);
                return true;
            }
        }
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            track(d->pid, false);
            d->pid = 0;
            return false;
        }
        msleep(25);
    }
    fail_msg("dedupd did not start (log %s)", d->log);
    return false;
}

static int stop(struct daemon *d, int sig)
{
    int st = 0;
    kill(d->pid, sig);
    waitpid(d->pid, &st, 0);
    track(d->pid, false);
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *read_log(const struct daemon *d)
{
    return tt_read_text(d->log);
}

static struct tt_reply http(const struct daemon *d, const char *method, const char *path,
                            const char *body, size_t blen)
{
    char url[8192];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", d->port, path);
    return tt_http(url, method, body, blen, 20);
}

static json_t *get_json(const struct daemon *d, const char *path, long want)
{
    struct tt_reply r = http(d, "GET", path, NULL, 0);
    json_error_t e;
    if (r.status != want)
        fail_msg("GET %s: %ld, want %ld: %s", path, r.status, want, r.body);
    json_t *doc = json_loads(r.body, 0, &e);
    if (!doc)
        fail_msg("GET %s: not JSON: %s", path, r.body);
    free(r.body);
    return doc;
}

static void wait_ready(const struct daemon *d)
{
    for (int i = 0; i < 200; i++) {
        struct tt_reply r = http(d, "GET", "/readyz", NULL, 0);
        free(r.body);
        if (r.status == 200)
            return;
        msleep(20);
    }
    fail_msg("dedupd never became ready");
}

static size_t history_points(const struct daemon *d, const char *vol)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/volumes/%s/history?from=0", vol);
    json_t *doc = get_json(d, path, 200);
    size_t n = json_array_size(json_object_get(doc, "points"));
    json_decref(doc);
    return n;
}

/* Prometheus text format 0.0.4, strictly: comments are HELP/TYPE with a
 * valid name and type; a family's TYPE precedes its samples and a family's
 * samples are contiguous; samples are name{label="value",...} value. */
static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    }
    return true;
}

static void family_of(const char *name, json_t *types, char *out, size_t len)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    snprintf(out, len, "%s", name);
    for (size_t i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(suffixes[i]);
        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0) {
            char base[256];
            snprintf(base, sizeof(base), "%.*s", (int)(nl - sl), name);
            const char *t = json_string_value(json_object_get(types, base));
            if (t && (strcmp(t, "histogram") == 0 || strcmp(t, "summary") == 0))
                snprintf(out, len, "%s", base);
        }
    }
}

static size_t check_metrics(const char *text)
{
    json_t *types = json_object(), *done = json_object();
    char current[256] = "";
    size_t samples = 0, lineno = 0;
    const char *line = text;

    while (*line) {
        const char *end = strchr(line, '\n');
        char buf[2048], fam[256];
        size_t len;
        lineno++;
        if (!end)
            fail_msg("metrics line %zu: no newline", lineno);
        len = (size_t)(end - line);
        if (len >= sizeof(buf))
            fail_msg("metrics line %zu: too long", lineno);
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = end + 1;
        if (buf[0] == '#') {
            char *name, *rest;
            if (strncmp(buf, "# HELP ", 7) != 0 && strncmp(buf, "# TYPE ", 7) != 0)
                continue; /* other comments are allowed */
            name = buf + 7;
            rest = strchr(name, ' ');
            if (!rest || !valid_name(name, (size_t)(rest - name)))
                fail_msg("metrics line %zu: bad name in '%s'", lineno, buf);
            *rest++ = '\0';
            if (buf[2] == 'T') {
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
                    strcmp(rest, "summary") && strcmp(rest, "untyped"))
                    fail_msg("metrics line %zu: bad type '%s'", lineno, rest);
                if (json_object_get(done, name))
                    fail_msg("metrics line %zu: TYPE of %s after its samples", lineno, name);
                json_object_set_new(types, name, json_string(rest));
            }
            continue;
        }
        /* a sample */
        char *p = buf, *q;
        while (*p && *p != '{' && *p != ' ')
            p++;
        if (!valid_name(buf, (size_t)(p - buf)))
            fail_msg("metrics line %zu: bad metric name in '%s'", lineno, buf);
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(p - buf), buf);
        if (*p == '{') {
            p++;
            while (*p != '}') {
                q = p;
                while (*p && *p != '=')
                    p++;
                if (!valid_name(q, (size_t)(p - q)) || p[1] != '"')
                    fail_msg("metrics line %zu: bad label in '%s'", lineno, buf);
                p += 2;
                while (*p && *p != '"') {
                    if (*p == '\\')
                        p++;
                    if (*p)
                        p++;
                }
                if (*p != '"')
                    fail_msg("metrics line %zu: unterminated label value", lineno);
                p++;
                if (*p == ',')
                    p++;
                else if (*p != '}')
                    fail_msg("metrics line %zu: expected ',' or '}'", lineno);
            }
            p++;
        }
        if (*p != ' ')
            fail_msg("metrics line %zu: no value in '%s'", lineno, buf);
        p++;
        char *vend;
        strtod(p, &vend);
        if (vend == p || (*vend && *vend != ' '))
            fail_msg("metrics line %zu: bad value in '%s'", lineno, buf);
        family_of(name, types, fam, sizeof(fam));
        if (strcmp(fam, current) != 0) {
            if (json_object_get(done, fam))
                fail_msg("metrics line %zu: samples of %s are not contiguous", lineno, fam);
            snprintf(current, sizeof(current), "%s", fam);
            json_object_set_new(done, fam, json_true());
        }
        samples++;
    }
    json_decref(types);
    json_decref(done);
    return samples;
}

static void test_endpoints(void **state)
{
    struct daemon d;
    char *data = tt_path(g_root, "data-endpoints");
    (void)state;
    assert_true(start(&d, data, false));
    wait_ready(&d);

    json_t *doc = get_json(&d, "/healthz", 200);
    json_decref(doc);
    doc = get_json(&d, "/v1/node", 200);
    assert_int_equal(json_integer_value(json_object_get(doc, "volumes")), 2);
    json_decref(doc);
    /* node load without the VDO threads recovers the simulated load (0.2, +-2 %),
     * and GPUs are reported unavailable with a reason (no NVML here) */
    bool have = false;
    for (int i = 0; i < 100 && !have; i++) {
        doc = get_json(&d, "/v1/node", 200);
        json_t *u = json_object_get(doc, "node_cpu_util_ex_vdo");
        have = json_is_number(u);
        if (have) {
            double util = json_number_value(u);
            if (util < 0.17 || util > 0.23)
                fail_msg("node CPU without VDO %.3f, simulated 0.2", util);
            json_t *g = json_object_get(doc, "gpus");
            if (g && json_is_false(json_object_get(g, "available")))
                assert_non_null(json_string_value(json_object_get(g, "reason")));
        }
        json_decref(doc);
        if (!have)
            msleep(20);
    }
    if (!have) /* a poll that runs out fails: no check silently does not run */
        fail_msg("/v1/node never had node_cpu_util_ex_vdo");
    doc = get_json(&d, "/v1/volumes", 200);
    assert_int_equal(json_array_size(json_object_get(doc, "volumes")), 2);
    json_decref(doc);
    /* features appear from the second sample on */
    have = false;
    for (int i = 0; i < 100 && !have; i++) {
        doc = get_json(&d, "/v1/volumes/v1", 200);
        json_t *cost = json_object_get(json_object_get(doc, "features"), "cost");
        have = json_is_number(cost);
        if (have) {
            assert_true(json_number_value(cost) > 0);
            /* the latency target from the dm device's diskstats */
            assert_true(json_number_value(
                            json_object_get(json_object_get(doc, "features"), "latency")) > 0);
            assert_true(json_is_number(
                json_object_get(json_object_get(doc, "features"), "dedup_hit_rate")));
        }
        json_decref(doc);
        if (!have)
            msleep(20);
    }
    if (!have)
        fail_msg("/v1/volumes/v1 never had the cost and latency targets");
    doc = get_json(&d, "/v1/volumes/nosuch", 404);
    json_decref(doc);
    assert_true(history_points(&d, "v1") >= 2);
    doc = get_json(&d, "/v1/volumes/v1/history?from=0&step=3600", 200);
    assert_int_equal(json_array_size(json_object_get(doc, "points")), 1);
    json_decref(doc);

    struct tt_reply r = http(&d, "GET", "/metrics", NULL, 0);
    assert_int_equal(r.status, 200);
    size_t samples = check_metrics(r.body);
    assert_true(samples > 20);
    assert_non_null(strstr(r.body, "dedupd_volume_cost{volume=\"v1\"}"));
    assert_non_null(strstr(r.body, "dedupd_http_request_duration_seconds_bucket"));
    free(r.body);

    /* dedupctl's thin clients against the same daemon */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", d.port);
    const char *vols_argv[] = {tt_bin("dedupctl"), "volumes", "--remote", url, NULL};
    char *out = NULL, *cerr = NULL;
    assert_int_equal(tt_run(vols_argv, &out, &cerr), 0);
    assert_non_null(strstr(out, "\nv1 "));
    assert_non_null(strstr(out, "\nv2 "));
    free(out);
    free(cerr);
    const char *hist_argv[] = {tt_bin("dedupctl"), "history", "--remote", url,
                               "--json",           "v1",      NULL};
    assert_int_equal(tt_run(hist_argv, &out, &cerr), 0);
    json_t *h = json_loads(out, 0, NULL);
    assert_true(json_array_size(json_object_get(h, "points")) >= 2);
    json_decref(h);
    free(out);
    free(cerr);
    const char *miss_argv[] = {tt_bin("dedupctl"), "history", "--remote", url, "nosuch", NULL};
    assert_int_equal(tt_run(miss_argv, &out, &cerr), 1);
    assert_non_null(strstr(cerr, "HTTP 404"));
    free(out);
    free(cerr);
    const char *stat_argv[] = {tt_bin("dedupctl"), "status", "--remote", url, NULL};
    assert_int_equal(tt_run(stat_argv, &out, &cerr), 0);
    assert_non_null(strstr(out, "ready"));
    free(out);
    free(cerr);

    /* an estimate job under the allowed root */
    char *f = tt_path(g_root, "estimate-me");
    char blocks[8192];
    memset(blocks, 7, sizeof(blocks));
    tt_write_file(f, blocks, sizeof(blocks));
    char body[4400];
    int blen = snprintf(body, sizeof(body), "{\"paths\": [\"%s\"], \"mode\": \"exact\"}", f);
    r = http(&d, "POST", "/v1/estimate", body, (size_t)blen);
    assert_int_equal(r.status, 202);
    json_t *job = json_loads(r.body, 0, NULL);
    free(r.body);
    char path[64];
    snprintf(path, sizeof(path), "/v1/estimate/%lld",
             (long long)json_integer_value(json_object_get(job, "id")));
    json_decref(job);
    bool fin = false;
    for (int i = 0; i < 200 && !fin; i++) {
        doc = get_json(&d, path, 200);
        fin = strcmp(json_string_value(json_object_get(doc, "status")), "running") != 0;
        if (fin) {
            assert_string_equal(json_string_value(json_object_get(doc, "status")), "done");
            json_t *res = json_object_get(doc, "result");
            assert_int_equal(json_integer_value(json_object_get(res, "blocks_total")), 2);
            assert_int_equal(json_integer_value(json_object_get(res, "distinct_blocks")), 1);
        }
        json_decref(doc);
        if (!fin)
            msleep(20);
    }
    if (!fin)
        fail_msg("estimate job %s never finished", path);
    free(f);

    /* a path that passes the root check but cannot be scanned (a FIFO): the
     * walk runs on the job's thread, so POST answers 202 and the job fails
     * naming the path */
    char *fifo = tt_path(g_root, "estimate-fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    blen = snprintf(body, sizeof(body), "{\"paths\": [\"%s\"]}", fifo);
    r = http(&d, "POST", "/v1/estimate", body, (size_t)blen);
    assert_int_equal(r.status, 202);
    job = json_loads(r.body, 0, NULL);
    free(r.body);
    snprintf(path, sizeof(path), "/v1/estimate/%lld",
             (long long)json_integer_value(json_object_get(job, "id")));
    json_decref(job);
    fin = false;
    for (int i = 0; i < 200 && !fin; i++) {
        doc = get_json(&d, path, 200);
        fin = strcmp(json_string_value(json_object_get(doc, "status")), "running") != 0;
        if (fin) {
            json_t *res = json_object_get(doc, "result");
            assert_string_equal(json_string_value(json_object_get(doc, "status")), "failed");
            assert_string_equal(json_string_value(json_object_get(res, "error")), "bad_path");
            assert_non_null(strstr(json_string_value(json_object_get(res, "message")), fifo));
        }
        json_decref(doc);
        if (!fin)
            msleep(20);
    }
    if (!fin)
        fail_msg("estimate job %s never finished", path);
    free(fifo);
    assert_int_equal(stop(&d, SIGTERM), 0);
    free(data);
}

static void test_restart_and_kill9(void **state)
{
    struct daemon d;
    char *data = tt_path(g_root, "data-restart");
    (void)state;
    assert_true(start(&d, data, false));
    wait_ready(&d);
    msleep(300);
    size_t before = history_points(&d, "v2");
    assert_true(before >= 2);
    assert_int_equal(stop(&d, SIGTERM), 0);
    assert_true(start(&d, data, false));
    wait_ready(&d);
    size_t after = history_points(&d, "v2");
    assert_true(after >= before); /* a clean restart keeps all of it */

    /* kill -9 mid-run: at most the interval in progress is lost */
    msleep(200);
    size_t seen = history_points(&d, "v2");
    assert_int_equal(stop(&d, SIGKILL), 128 + SIGKILL);
    assert_true(start(&d, data, false));
    wait_ready(&d);
    size_t recovered = history_points(&d, "v2");
    print_message("history: %zu before restart, %zu after; %zu seen before kill -9, %zu after\n",
                  before, after, seen, recovered);
    assert_true(recovered >= seen);
    assert_int_equal(stop(&d, SIGTERM), 0);
    free(data);
}

static void test_bad_stores(void **state)
{
    struct daemon d;
    char *data = tt_path(g_root, "data-corrupt");
    (void)state;
    assert_true(start(&d, data, false));
    wait_ready(&d);
    assert_int_equal(stop(&d, SIGTERM), 0);
    char *cur = tt_path(data, "CURRENT");
    tt_write_file(cur, "garbage\n", 8);
    free(cur);
    assert_false(start(&d, data, false));
    char *log = read_log(&d);
    assert_non_null(strstr(log, data));
    assert_non_null(strstr(log, "corrupt"));
    free(log);
    free(data);

    /* a data directory the daemon cannot create (unwritable parent) */
    char *parent = tt_path(g_root, "locked-parent");
    mkdir(parent, 0755);
    char *inner = tt_path(parent, "data");
    if (geteuid() != 0)
        chmod(parent, 0555);
    assert_false(start(&d, inner, true)); /* as nobody when root */
    log = read_log(&d);
    assert_non_null(strstr(log, inner));
    assert_non_null(strstr(log, "Permission denied"));
    free(log);
    free(inner);
    free(parent);
}

static void test_malformed_requests(void **state)
{
    static const struct {
        const char *method, *path, *body;
        long status;
    } cases[] = {
        {"GET", "/nope", NULL, 404},
        {"GET", "/v1", NULL, 404},
        {"GET", "/v1/volumes/", NULL, 404},
        {"GET", "/v1/volumes/v1/history/extra", NULL, 404},
        {"GET", "/v1/volumes/does-not-exist", NULL, 404},
        {"DELETE", "/v1/volumes", NULL, 405},
        {"POST", "/v1/volumes", "{}", 405},
        {"PUT", "/healthz", NULL, 405},
        {"POST", "/metrics", NULL, 405},
        {"GET", "/v1/estimate", NULL, 405},
        {"GET", "/v1/volumes/v1/history?from=abc", NULL, 400},
        {"GET", "/v1/volumes/v1/history?to=-5", NULL, 400},
        {"GET", "/v1/volumes/v1/history?from=100&to=50", NULL, 400},
        {"GET", "/v1/volumes/v1/history?step=x", NULL, 400},
        {"GET", "/v1/volumes/v1/history?from=1e300", NULL, 400},
        {"GET", "/v1/volumes/v1/history?from=nan", NULL, 400},
        {"GET", "/v1/estimate/abc", NULL, 400},
        {"GET", "/v1/estimate/999999", NULL, 404},
        {"POST", "/v1/estimate", "", 400},
        {"POST", "/v1/estimate", "{", 400},
        {"POST", "/v1/estimate", "not json", 400},
        {"POST", "/v1/estimate", "[]", 400},
        {"POST", "/v1/estimate", "42", 400},
        {"POST", "/v1/estimate", "{\"paths\": 1}", 400},
        {"POST", "/v1/estimate", "{\"paths\": []}", 400},
        {"POST", "/v1/estimate", "{\"paths\": [1]}", 400},
        {"POST", "/v1/estimate", "{\"paths\": \"/\"}", 400},
        {"POST", "/v1/estimate", "{\"paths\": [null]}", 400},
        {"POST", "/v1/estimate", "{\"paths\": [\"/etc/passwd\"]}", 403},
        {"POST", "/v1/estimate", "{\"paths\": [\"/\"]}", 403},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT/../../etc\"]}", 403},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT/../..\"]}", 403},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT/missing\"]}", 403},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT\"], \"mode\": \"fast\"}", 400},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT\"], \"mode\": 3}", 400},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT\"], \"paths\": []}", 400},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT\"]} trailing", 400},
        {"POST", "/v1/estimate", "{\"a\": \"\\ud800\"}", 400},
        {"POST", "/v1/estimate", "\xff\xfe{}", 400},
        {"POST", "/v1/estimate", "{\"paths\": [\"ROOT/a\\u0000b\"]}", 400},
        {"GET", "/v1/volumes/%2e%2e/history", NULL, 404},
        {"GET", "/v1/volumes/..%2f..%2fetc", NULL, 404},
        {"GET", "/v1/node/extra", NULL, 404},
        {"GET", "/readyz/x", NULL, 404},
        {"PATCH", "/v1/node", NULL, 405},
        {"OPTIONS", "/v1/volumes", NULL, 405},
        {"GET", "//v1/volumes", NULL, 404},
        {"GET", "/v1/volumes?x=1&x=2&&&", NULL, 200},
        {"POST", "/v1/estimate", "BIG", 413},
        {"GET", "LONG", NULL, 414},
    };
    struct daemon d;
    char *data = tt_path(g_root, "data-malformed");
    (void)state;
    assert_true(start(&d, data, false));
    wait_ready(&d);
    size_t n = 0;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        char body[8192], path[8192];
        const char *b = cases[i].body;
        size_t blen = b ? strlen(b) : 0;
        char *big = NULL;
        if (b && strcmp(b, "BIG") == 0) {
            blen = (2u << 20);
            big = malloc(blen);
            memset(big, ' ', blen);
            big[0] = '{';
            big[blen - 1] = '}';
            b = big;
        } else if (b) {
            /* ROOT stands for the allowed root */
            const char *at = strstr(b, "ROOT");
            if (at)
                snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - b), b, g_root, at + 4);
            else
                snprintf(body, sizeof(body), "%s", b);
            b = body;
            blen = strlen(body);
            if (strstr(cases[i].body, "\\u0000"))
                blen = strlen(body);
        }
        if (strcmp(cases[i].path, "LONG") == 0) {
            memset(path, 'a', 4000);
            path[0] = '/';
            path[4000] = '\0';
        } else {
            snprintf(path, sizeof(path), "%s", cases[i].path);
        }
        struct tt_reply r = http(&d, cases[i].method, path, b, blen);
        if (r.status != cases[i].status)
            fail_msg("case %zu %s %.60s: %ld, want %ld: %s", i, cases[i].method, cases[i].path,
                     r.status, cases[i].status, r.body);
        if (r.status >= 400) {
            json_t *e = json_loads(r.body, 0, NULL);
            assert_non_null(json_object_get(json_object_get(e, "error"), "message"));
            json_decref(e);
        }
        free(r.body);
        free(big);
        n++;
    }
    assert_int_equal(n, 50);
    json_t *doc = get_json(&d, "/healthz", 200); /* still up */
    json_decref(doc);
    assert_int_equal(stop(&d, SIGTERM), 0);
    free(data);
}

/* mkdir -p for the fake cgroup tree */
static void mkdirs(const char *path)
{
    char *buf = strdup(path);
    assert_non_null(buf);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
    free(buf);
}

static void write_pod_file(const char *dir, const char *name, const char *text)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    tt_write_file(path, text, strlen(text));
}

static char g_pod_burstable[4300];

/* A kubelet cgroup v2 tree (systemd driver) with two pods. */
static void make_sys_tree(void)
{
    char dir[4300];
    snprintf(dir, sizeof(dir),
             "%s/fs/cgroup/kubepods.slice/kubepods-pod0b1c2d3e_0000_4000_8000_000000000001.slice",
             g_sys);
    mkdirs(dir);
    write_pod_file(dir, "cpu.stat", "usage_usec 5000000\nuser_usec 4000000\nsystem_usec 1000000\n");
    write_pod_file(dir, "memory.current", "734003200\n");
    write_pod_file(dir, "memory.peak", "1073741824\n");
    write_pod_file(dir, "io.stat",
                   "253:0 rbytes=1048576 wbytes=4194304 rios=256 wios=1024 "
                   "dbytes=0 dios=0\n");
    snprintf(g_pod_burstable, sizeof(g_pod_burstable),
             "%s/fs/cgroup/kubepods.slice/kubepods-burstable.slice/"
             "kubepods-burstable-pod9f8e7d6c_1111_4222_8333_444455556666.slice",
             g_sys);
    mkdirs(g_pod_burstable);
    write_pod_file(g_pod_burstable, "cpu.stat",
                   "usage_usec 1000000\nuser_usec 600000\nsystem_usec 400000\n");
    write_pod_file(g_pod_burstable, "memory.current", "52428800\n");
}

static json_t *find_pod(json_t *node, const char *uid)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(json_object_get(node, "pods"), "pods"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "uid")), uid) == 0)
            return p;
    }
    return NULL;
}

/* Pods from the cgroup tree, per-volume disk figures for the VDO device and
 * its backing device, node load in /metrics. */
static void test_node_pods_and_disks(void **state)
{
    struct daemon d;
    char *data = tt_path(g_root, "data-pods");
    (void)state;
    assert_true(start(&d, data, false));
    wait_ready(&d);

    json_t *node = get_json(&d, "/v1/node", 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(node, "pods"), "count")),
                     2);
    json_t *g = find_pod(node, "0b1c2d3e-0000-4000-8000-000000000001");
    assert_non_null(g);
    assert_string_equal(json_string_value(json_object_get(g, "qos")), "guaranteed");
    assert_int_equal(json_integer_value(json_object_get(g, "memory_current_bytes")), 734003200);
    assert_int_equal(json_integer_value(json_object_get(g, "memory_peak_bytes")), 1073741824);
    assert_int_equal(json_integer_value(json_object_get(g, "io_write_bytes")), 4194304);
    json_t *b = find_pod(node, "9f8e7d6c-1111-4222-8333-444455556666");
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "qos")), "burstable");
    assert_true(json_is_null(json_object_get(b, "memory_peak_bytes"))); /* no file */
    json_decref(node);

    /* the burstable pod uses CPU: its rate appears once a sample sees it */
    write_pod_file(g_pod_burstable, "cpu.stat",
                   "usage_usec 61000000\nuser_usec 50600000\nsystem_usec 10400000\n");
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        node = get_json(&d, "/v1/node", 200);
        json_t *c =
            json_object_get(find_pod(node, "9f8e7d6c-1111-4222-8333-444455556666"), "cpu_cores");
        seen = json_is_number(c) && json_number_value(c) > 0;
        json_decref(node);
        if (!seen)
            msleep(20);
    }
    assert_true(seen);

    /* per-volume disks: the VDO device and the backing device it sits on */
    json_t *v = get_json(&d, "/v1/volumes/v1", 200);
    json_t *disks = json_object_get(v, "disks");
    assert_non_null(disks);
    json_t *vd = json_object_get(disks, "vdo"), *bd = json_object_get(disks, "backing");
    assert_true(json_number_value(json_object_get(vd, "write_iops")) > 0);
    assert_true(json_number_value(json_object_get(bd, "write_iops")) > 0);
    assert_true(json_number_value(json_object_get(bd, "util")) >= 0);
    assert_string_not_equal(json_string_value(json_object_get(vd, "device")),
                            json_string_value(json_object_get(bd, "device")));
    json_decref(v);

    struct tt_reply r = http(&d, "GET", "/metrics", NULL, 0);
    assert_int_equal(r.status, 200);
    check_metrics(r.body);
    assert_non_null(strstr(r.body, "\ndedupd_node_cpu_utilization_ex_vdo "));
    assert_non_null(strstr(r.body, "\ndedupd_node_run_queue "));
    assert_non_null(strstr(r.body, "\ndedupd_pods 2\n"));
    assert_non_null(strstr(r.body, "\ndedupd_gpus_available 0\n"));
    assert_non_null(
        strstr(r.body, "dedupd_pod_memory_bytes{pod_uid=\"0b1c2d3e-0000-4000-8000-000000000001\"} "
                       "734003200\n"));
    free(r.body);
    assert_int_equal(stop(&d, SIGTERM), 0);
    free(data);
}

/* role placement keeps no node side: no sampling, node routes say where to go */
static void test_role_placement(void **state)
{
    struct daemon d;
    char *data = tt_path(g_root, "data-placement");
    (void)state;
    g_role = "placement";
    bool ok = start(&d, data, false);
    g_role = "all";
    assert_true(ok);
    json_t *doc = get_json(&d, "/readyz", 200);
    json_decref(doc);
    doc = get_json(&d, "/v1/volumes", 404);
    json_t *e = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "not_served");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "role placement"));
    json_decref(doc);
    struct tt_reply r = http(&d, "GET", "/metrics", NULL, 0);
    assert_int_equal(r.status, 200);
    check_metrics(r.body);
    assert_non_null(strstr(r.body, "\ndedupd_samples_total 0\n"));
    free(r.body);
    /* the model lives with placement: its routes answer there */
    doc = get_json(&d, "/v1/model", 200);
    json_decref(doc);
    assert_int_equal(stop(&d, SIGTERM), 0);

    /* role node: samples, but sends model questions to placement */
    char *ndata = tt_path(g_root, "data-node");
    g_role = "node";
    ok = start(&d, ndata, false);
    g_role = "all";
    assert_true(ok);
    wait_ready(&d);
    doc = get_json(&d, "/v1/model", 404);
    e = json_object_get(doc, "error");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")),
                           "role placement or all; this one has role node"));
    json_decref(doc);
    doc = get_json(&d, "/v1/volumes", 200);
    json_decref(doc);
    assert_int_equal(stop(&d, SIGTERM), 0);
    free(ndata);
    free(data);
}

/* SIGHUP reloads the config file, and a flag still wins over it */
static void test_sighup_reload(void **state)
{
    struct daemon d;
    char *data = tt_path(g_root, "data-hup"), *conf = tt_path(g_root, "hup.json");
    static const char first[] = "{\"interval\": 5, \"retention_days\": 3}\n";
    static const char second[] = "{\"interval\": 9, \"retention_days\": 7}\n";
    static const char broken[] = "{\"interval\": \n";
    (void)state;
    tt_write_file(conf, first, strlen(first));
    g_config = conf;
    bool ok = start(&d, data, false);
    g_config = NULL;
    assert_true(ok);
    char *log = read_log(&d);
    assert_non_null(strstr(log, "\"retention_days\":3"));
    assert_non_null(strstr(log, "\"interval\":0.05")); /* the flag over the file's 5 */
    free(log);

    tt_write_file(conf, second, strlen(second));
    kill(d.pid, SIGHUP);
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        log = read_log(&d);
        seen = strstr(log, "reloaded: interval 0.05 s, retention 7 days") != NULL;
        free(log);
        if (!seen)
            msleep(20);
    }
    assert_true(seen);

    /* a broken file keeps the running configuration, and the daemon up */
    tt_write_file(conf, broken, strlen(broken));
    kill(d.pid, SIGHUP);
    seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        log = read_log(&d);
        seen = strstr(log, "keeping the running configuration") != NULL;
        free(log);
        if (!seen)
            msleep(20);
    }
    assert_true(seen);
    json_t *doc = get_json(&d, "/healthz", 200);
    json_decref(doc);
    assert_int_equal(stop(&d, SIGTERM), 0);
    free(conf);
    free(data);
}

static double metric_value(const char *text, const char *name)
{
    char key[256];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

/*
 * A full disk while running, for real: the store on a 256 MiB tmpfs that a
 * filler file then fills. The daemon keeps serving (RocksDB is never left to
 * meet the full disk: below the store's reserve commits are refused), counts
 * the samples it could not store, says so in its log, and stores again once
 * the space is back. Needs root for the mount; skipped (said so) without it.
 */
static void test_disk_full(void **state)
{
    struct daemon d;
    char *mnt = tt_path(g_root, "small"), *data = tt_path(mnt, "data");
    char *filler = tt_path(mnt, "filler");
    (void)state;
    mkdir(mnt, 0755);
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=256m") != 0) {
        int e = errno;
        free(filler);
        free(data);
        free(mnt);
        tt_skip("disk-full test: cannot mount a tmpfs (%s)", strerror(e));
    }
    assert_true(start(&d, data, false));
    wait_ready(&d);
    while (history_points(&d, "v1") < 3)
        msleep(20);

    /* fill the file system to the last byte */
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    static char chunk[1 << 16];
    memset(chunk, 0xa5, sizeof(chunk));
    for (;;) {
        ssize_t w = write(fd, chunk, sizeof(chunk));
        if (w <= 0)
            break;
    }
    for (size_t n = 4096; n >= 1; n /= 2) { /* the last partial pages */
        while (write(fd, chunk, n) > 0)
            ;
    }
    close(fd);

    /* samples are dropped, counted, and the daemon keeps serving */
    double dropped = 0;
    for (int i = 0; i < 500 && dropped <= 0; i++) {
        struct tt_reply r = http(&d, "GET", "/metrics", NULL, 0);
        assert_int_equal(r.status, 200);
        dropped = metric_value(r.body, "dedupd_samples_dropped_total");
        free(r.body);
        if (dropped <= 0)
            msleep(20);
    }
    assert_true(dropped > 0);
    char *log = read_log(&d);
    assert_non_null(strstr(log, "below the 64 MiB reserve"));
    free(log);
    json_t *doc = get_json(&d, "/v1/volumes", 200);
    assert_int_equal(json_array_size(json_object_get(doc, "volumes")), 2);
    json_decref(doc);
    doc = get_json(&d, "/healthz", 200);
    json_decref(doc);
    size_t before = history_points(&d, "v1");

    /* space comes back: new samples are stored again */
    unlink(filler);
    bool stored = false;
    for (int i = 0; i < 1500 && !stored; i++) {
        stored = history_points(&d, "v1") >= before + 3;
        if (!stored)
            msleep(20);
    }
    assert_true(stored);
    assert_int_equal(stop(&d, SIGTERM), 0);
    umount2(mnt, MNT_DETACH);
    free(filler);
    free(data);
    free(mnt);
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_root = tt_tmpdir();
    chmod(g_root, 0755);
    char *wl = tt_path(g_root, "w.json");
    g_replay = tt_path(g_root, "replay");
    g_sys = tt_path(g_root, "sys");
    make_sys_tree();
    static const char workload[] =
        "{\"volumes\": [{\"name\": \"v1\", \"write_mbps\": 120, \"duplicate_share\": 0.5, "
        "\"index_entries\": 1000000, \"stored_gib\": 10, \"cpu_load\": 0.2}, "
        "{\"name\": \"v2\", \"write_mbps\": 40, \"read_mbps\": 300, "
        "\"duplicate_share\": 0.1}]}";
    tt_write_file(wl, workload, strlen(workload));
    tt_vdo_sim(wl, 400, 5, g_replay);
    free(wl);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < 8; i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
        }
    }
    /* a failed disk-full test may leave its tmpfs mounted */
    char *mnt = tt_path(g_root, "small");
    umount2(mnt, MNT_DETACH);
    free(mnt);
    tt_rmtree(g_root);
    free(g_root);
    free(g_replay);
    free(g_sys);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),           cmocka_unit_test(test_restart_and_kill9),
        cmocka_unit_test(test_bad_stores),          cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_node_pods_and_disks), cmocka_unit_test(test_role_placement),
        cmocka_unit_test(test_sighup_reload),       cmocka_unit_test(test_disk_full),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
