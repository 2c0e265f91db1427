/*
 * The cluster view end to end on loopback: three real `dedupd --role node`
 * processes replaying different simulated nodes (other names, pools and
 * workloads) push reports to one real `dedupd --role placement` with a
 * token. Checked: /v1/cluster lists the three with fresh reports and their
 * pools; the placement role trains XGBoost on all three nodes' rows
 * (rows_by_node) within 10 % hold-out MAPE on both targets; a node killed
 * with SIGKILL turns stale after the bound and stays listed; a restarted
 * placement role has the live nodes back and its model from the store;
 * malformed and unauthenticated reports get 4xx and change nothing.
 * Every wait is a bounded poll that fails when it runs out.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "helpers.h"

#define TOKEN   "cluster-test-token-0123456789"
#define N_NODES 3

static char *g_root, *g_token_file, *g_replay[N_NODES];
static const char *const g_names[N_NODES] = {"gpu-a-01", "gpu-b-02", "cpu-c-03"};

struct daemon {
    pid_t pid;
    unsigned port;
    char log[4200];
};

/* daemons started and not yet stopped: a failed test kills them at
 * teardown, so ctest is not left waiting on their copies of its pipe */
static pid_t g_pids[2 * N_NODES + 2];

static void track(pid_t pid, bool add)
{
    for (size_t i = 0; i < sizeof(g_pids) / sizeof(g_pids[0]); i++) {
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

static void spawn(struct daemon *d, const char *const *argv)
{
    snprintf(d->log, sizeof(d->log), "%s/dedupd-%d.log", g_root, rand());
    d->pid = tt_daemon_fork(argv, d->log);
    track(d->pid, true);
    d->port = tt_daemon_port(d->log, 400);
    if (d->port)
        return;
    fail_msg("dedupd did not start (log %s)", d->log);
}

static void start_placement(struct daemon *d, const char *data)
{
    const char *argv[] = {"dedupd",      "--role",          "placement", "--listen",
                          "127.0.0.1:0", "--data-dir",      data,        "--token-file",
                          g_token_file,  "--stale-after",   "1.5",       "--min-train-samples",
                          "500",         "--retrain-every", "100000000", NULL};
    spawn(d, argv);
}

static void start_node(struct daemon *d, int i, unsigned placement_port)
{
    char data[4200], url[64], spec[4300], pool0[64], pool1[64];
    snprintf(data, sizeof(data), "%s/node-%d", g_root, i);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", placement_port);
    snprintf(spec, sizeof(spec), "replay:%s", g_replay[i]);
    /* pool names differ per node and from the device names */
    snprintf(pool0, sizeof(pool0), "v0=fast-%c", 'a' + i);
    snprintf(pool1, sizeof(pool1), "v1=bulk");
    const char *argv[] = {"dedupd",      "--role",
                          "node",        "--node-name",
                          g_names[i],    "--listen",
                          "127.0.0.1:0", "--data-dir",
                          data,          "--source",
                          spec,          "--interval",
                          "0.03",        "--placement-url",
                          url,           "--placement-token-file",
                          g_token_file,  "--pool",
                          pool0,         "--pool",
                          pool1,         NULL};
    spawn(d, argv);
}

static int stop(struct daemon *d, int sig)
{
    int st = 0;
    kill(d->pid, sig);
    waitpid(d->pid, &st, 0);
    track(d->pid, false);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One request through the tree's own client; the body is parsed as JSON
 * (NULL when it is not). */
static json_t *call(const struct daemon *d, const char *token, const char *method, const char *path,
                    const char *body, long *ret_status)
{
    char base[64], err[256];
    struct dd_http_client *c = NULL;
    struct dd_http_client_config cc = {.base_url = base, .token = token, .timeout_ms = 120000};
    struct dd_dynbuf reply;
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", d->port);
    assert_int_equal(dd_http_client_new(&cc, &c, err, sizeof(err)), 0);
    dd_dynbuf_init(&reply, 64u << 20);
    int st = dd_http_client_call(c, method, path, body, &reply, err, sizeof(err));
    if (st < 0)
        fail_msg("%s %s: %s", method, path, err);
    *ret_status = st;
    json_t *doc = json_loads(dd_dynbuf_str(&reply), 0, NULL);
    dd_dynbuf_free(&reply);
    dd_http_client_free(c);
    return doc;
}

static json_t *get_ok(const struct daemon *d, const char *path)
{
    long st;
    json_t *doc = call(d, NULL, "GET", path, NULL, &st);
    if (st != 200 || !doc)
        fail_msg("GET %s: %ld", path, st);
    return doc;
}

static json_t *find_node(json_t *cluster, const char *name)
{
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(cluster, "nodes"), i, n)
    {
        if (strcmp(json_string_value(json_object_get(n, "name")), name) == 0)
            return n;
    }
    return NULL;
}

static const char *pool_of(json_t *node, const char *volume)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(node, "volumes"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "name")), volume) == 0)
            return json_string_value(json_object_get(v, "pool"));
    }
    return NULL;
}

/* Polls /v1/cluster until every named node is listed and fresh. */
static json_t *wait_fresh(const struct daemon *p, int n)
{
    for (int tries = 0; tries < 600; tries++) {
        json_t *c = get_ok(p, "/v1/cluster");
        int fresh = 0;
        for (int i = 0; i < n; i++) {
            json_t *node = find_node(c, g_names[i]);
            fresh += node && json_is_false(json_object_get(node, "stale")) &&
                     json_array_size(json_object_get(node, "volumes")) == 2;
        }
        if (fresh == n)
            return c;
        json_decref(c);
        msleep(50);
    }
    fail_msg("the placement role did not list %d fresh nodes", n);
    return NULL;
}

/* Waits until a node's replay has been sampled to its end. */
static void wait_samples(const struct daemon *d, double want)
{
    for (int i = 0; i < 6000; i++) {
        char url[128];
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", d->port);
        struct tt_reply r = tt_http(url, "GET", NULL, 0, 60);
        const char *p = strstr(r.body, "\ndedupd_samples_total ");
        double n = p ? strtod(p + 22, NULL) : 0;
        free(r.body);
        if (n >= want)
            return;
        msleep(20);
    }
    fail_msg("node did not reach %g samples", want);
}

/* POST /v1/model/retrain with the token, polling a 202 to its end. */
static json_t *retrain(const struct daemon *p)
{
    long st;
    json_t *doc = call(p, TOKEN, "POST", "/v1/model/retrain", "{}", &st);
    for (int i = 0; i < 600 && st == 202; i++) {
        char poll[128];
        snprintf(poll, sizeof(poll), "%s", json_string_value(json_object_get(doc, "poll")));
        json_decref(doc);
        msleep(200);
        doc = get_ok(p, poll);
        st = (long)json_integer_value(json_object_get(doc, "http_status"));
    }
    if (st != 200)
        fail_msg("retrain ended with %ld", st);
    return doc;
}

static double mape(json_t *model, const char *target)
{
    json_t *h = json_object_get(json_object_get(model, "active"), "holdout");
    return json_number_value(json_object_get(json_object_get(h, target), "mape_percent"));
}

static void expect_status(const struct daemon *p, const char *token, const char *body, long want,
                          const char *needle)
{
    long st;
    json_t *doc = call(p, token, "POST", "/v1/reports", body, &st);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (st != want || (needle && (!text || !strstr(text, needle))))
        fail_msg("POST /v1/reports %.80s: %ld %s; want %ld naming '%s'", body, st,
                 text ? text : "(not JSON)", want, needle ? needle : "");
    free(text);
    json_decref(doc);
}

/* POST /v1/reports with the token and Content-Length len, and no body:
 * the answer the headers alone get, up to the connection's close. */
static size_t post_headers_only(const struct daemon *p, size_t len, char *buf, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    char req[512];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {60, 0};
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int n = snprintf(req, sizeof(req),
                     "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                     "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     len);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    for (;;) {
        ssize_t k = recv(fd, buf + got, cap - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    close(fd);
    return got;
}

static void test_cluster_end_to_end(void **state)
{
    struct daemon p, nodes[N_NODES];
    char *pdata = tt_path(g_root, "placement");
    json_t *c, *m;
    (void)state;

    start_placement(&p, pdata);
    for (int i = 0; i < N_NODES; i++)
        start_node(&nodes[i], i, p.port);

    /* every node listed, fresh, with its pools */
    c = wait_fresh(&p, N_NODES);
    for (int i = 0; i < N_NODES; i++) {
        char fast[32];
        json_t *n = find_node(c, g_names[i]);
        snprintf(fast, sizeof(fast), "fast-%c", 'a' + i);
        assert_string_equal(pool_of(n, "v0"), fast);
        assert_string_equal(pool_of(n, "v1"), "bulk");
        assert_true(json_is_number(json_object_get(n, "report_age_seconds")));
        assert_true(json_is_number(json_object_get(n, "clock_skew_seconds")));
        assert_true(json_integer_value(json_object_get(n, "reports")) >= 1);
        json_t *v = json_array_get(json_object_get(n, "volumes"), 0);
        assert_true(json_is_object(json_object_get(v, "features")));
        assert_non_null(json_object_get(v, "physical_free_bytes"));
        assert_non_null(json_object_get(v, "logical_free_bytes"));
        assert_non_null(json_object_get(v, "mode"));
    }
    json_decref(c);
    c = get_ok(&p, "/v1/cluster/nodes/gpu-b-02");
    assert_string_equal(json_string_value(json_object_get(c, "name")), "gpu-b-02");
    json_decref(c);

    /* dedupctl cluster: every node and its pools in the table; one node;
     * a node the view does not have is an error */
    {
        char url[64], *out = NULL, *err = NULL;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", p.port);
        const char *all[] = {tt_bin("dedupctl"), "cluster", "--remote", url, NULL};
        assert_int_equal(tt_run(all, &out, &err), 0);
        for (int i = 0; i < N_NODES; i++) {
            char fast[32];
            snprintf(fast, sizeof(fast), "pool fast-%c ", 'a' + i);
            assert_non_null(strstr(out, g_names[i]));
            assert_non_null(strstr(out, fast));
        }
        assert_non_null(strstr(out, "fresh"));
        free(out);
        free(err);
        const char *one[] = {tt_bin("dedupctl"), "cluster", "gpu-b-02", "--remote", url, NULL};
        assert_int_equal(tt_run(one, &out, &err), 0);
        assert_non_null(strstr(out, "gpu-b-02"));
        assert_null(strstr(out, g_names[0]));
        free(out);
        free(err);
        const char *none[] = {tt_bin("dedupctl"), "cluster", "no-such-node", "--remote", url, NULL};
        assert_int_equal(tt_run(none, &out, &err), 1);
        assert_non_null(strstr(err, "404"));
        free(out);
        free(err);
    }

    /* bad reports change nothing */
    long st;
    json_t *before = get_ok(&p, "/v1/cluster");
    size_t n_before = json_array_size(json_object_get(before, "nodes"));
    json_decref(before);
    const char *intruder = "{\"schema\": 1, \"node\": \"intruder\", \"interval_seconds\": 1, "
                           "\"time_ms\": 1700000000000, \"volumes\": []}";
    expect_status(&p, NULL, intruder, 401, NULL);
    expect_status(&p, "wrong-token-wrong-token-wrong", intruder, 401, NULL);
    expect_status(&p, TOKEN, "{\"schema\": 1, \"node\": \"intruder\"", 400, "line");
    expect_status(&p, TOKEN,
                  "{\"schema\": 7, \"node\": \"intruder\", \"interval_seconds\": 1, "
                  "\"time_ms\": 1700000000000, \"volumes\": []}",
                  400, "accepted: 1");
    expect_status(&p, TOKEN,
                  "{\"schema\": 1, \"node\": \"intruder\", \"interval_seconds\": 1, "
                  "\"time_ms\": 1700000000000, \"volumes\": [{\"name\": \"v0\", "
                  "\"features\": {\"write_mbps\": -3}}]}",
                  400, "volumes[0].features.write_mbps");
    expect_status(&p, TOKEN,
                  "{\"schema\": 1, \"node\": \"Intruder!\", \"interval_seconds\": 1, "
                  "\"time_ms\": 1700000000000, \"volumes\": []}",
                  400, "node");
    /* over the report cap (512 KiB): 413 on the headers, before any body
     * byte is sent (a client still sending when the server closes may
     * see the reset before the answer) */
    char answer[4096];
    size_t got = post_headers_only(&p, 600u * 1024u, answer, sizeof(answer));
    if (strncmp(answer, "HTTP/1.1 413", 12) != 0 || !strstr(answer, "payload_too_large"))
        fail_msg("a 600 KiB report's headers: %.*s", (int)got, answer);
    c = call(&p, NULL, "GET", "/v1/cluster/nodes/intruder", NULL, &st);
    assert_int_equal(st, 404);
    json_decref(c);
    c = get_ok(&p, "/v1/cluster");
    assert_int_equal(json_array_size(json_object_get(c, "nodes")), n_before);
    json_decref(c);

    /* training on every node's rows */
    for (int i = 0; i < N_NODES; i++)
        wait_samples(&nodes[i], 320);
    m = retrain(&p);
    json_decref(m);
    m = get_ok(&p, "/v1/model");
    json_t *active = json_object_get(m, "active");
    /* the active version's summary carries it */
    json_t *vs = json_object_get(m, "versions");
    json_t *by_node = json_object_get(json_array_get(vs, json_array_size(vs) - 1), "rows_by_node");
    char *mtext = json_dumps(m, JSON_COMPACT);
    if (json_object_size(by_node) != N_NODES)
        fail_msg("rows_by_node should name %d nodes: %s", N_NODES, mtext);
    for (int i = 0; i < N_NODES; i++)
        assert_true(json_integer_value(json_object_get(by_node, g_names[i])) > 100);
    printf("cluster model: cost MAPE %.2f %%, latency MAPE %.2f %%, kind %s\n", mape(m, "cost"),
           mape(m, "latency"), json_string_value(json_object_get(active, "kind")));
    if (!(mape(m, "cost") <= 10 && mape(m, "latency") <= 10))
        fail_msg("hold-out MAPE above 10 %%: %s", mtext);
    uint64_t version = (uint64_t)json_integer_value(json_object_get(active, "version"));
    free(mtext);
    json_decref(m);

    /* a node killed with SIGKILL turns stale and stays listed */
    assert_int_equal(stop(&nodes[2], SIGKILL), 128 + SIGKILL);
    for (int tries = 0;; tries++) {
        c = get_ok(&p, "/v1/cluster");
        json_t *n = find_node(c, g_names[2]);
        assert_non_null(n);
        bool stale = json_is_true(json_object_get(n, "stale"));
        double age = json_number_value(json_object_get(n, "report_age_seconds"));
        json_decref(c);
        if (stale) {
            assert_true(age > 1.5);
            break;
        }
        if (tries > 400)
            fail_msg("the killed node never turned stale");
        msleep(50);
    }
    /* the live ones stay fresh */
    json_decref(wait_fresh(&p, 2));

    /* a restarted placement role: the live nodes back within an interval or
     * so (their queued reports retry with backoff), the model from the store */
    assert_int_equal(stop(&p, SIGTERM), 0);
    unsigned old_port = p.port;
    (void)old_port;
    /* the nodes push to the old port: restart on the same one */
    {
        char listen[64], *data = pdata;
        snprintf(listen, sizeof(listen), "127.0.0.1:%u", old_port);
        const char *argv[] = {"dedupd",     "--role",          "placement", "--listen",
                              listen,       "--data-dir",      data,        "--token-file",
                              g_token_file, "--stale-after",   "1.5",       "--min-train-samples",
                              "500",        "--retrain-every", "100000000", NULL};
        spawn(&p, argv);
    }
    json_decref(wait_fresh(&p, 2));
    m = get_ok(&p, "/v1/model");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "active"), "version")),
                     (json_int_t)version);
    json_decref(m);

    for (int i = 0; i < 2; i++)
        assert_int_equal(stop(&nodes[i], SIGTERM), 0);
    assert_int_equal(stop(&p, SIGTERM), 0);
    free(pdata);
}

/* three nodes, two volumes each, different workloads and seeds */
static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_root = tt_tmpdir();
    g_token_file = tt_path(g_root, "token");
    tt_write_file(g_token_file, TOKEN "\n", strlen(TOKEN) + 1);
    for (int n = 0; n < N_NODES; n++) {
        char name[32], *wl;
        snprintf(name, sizeof(name), "replay-%d", n);
        g_replay[n] = tt_path(g_root, name);
        snprintf(name, sizeof(name), "w-%d.json", n);
        wl = tt_path(g_root, name);
        tt_random_workload(wl, 2, 320, 8 + 8 * (unsigned)n, 77 + (uint64_t)n * 1000);
        tt_vdo_sim(wl, 320, (unsigned)(11 + n), g_replay[n]);
        free(wl);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(g_pids) / sizeof(g_pids[0]); i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
        }
    }
    tt_rmtree(g_root);
    free(g_root);
    free(g_token_file);
    for (int n = 0; n < N_NODES; n++)
        free(g_replay[n]);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_end_to_end),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
