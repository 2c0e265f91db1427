/*
 * Node reports over mutual TLS, end to end on loopback with real processes:
 * a `dedupd --role placement` serving HTTPS that requires client
 * certificates (and has no token: the certificate is the authentication),
 * and `dedupd --role node` daemons pushing with --placement-cert-file,
 * --placement-key-file and --placement-ca-file. The PKI is made at test time
 * with the openssl CLI (tt_openssl_pki; a missing openssl fails).
 *
 * Checked: a node whose certificate is CN=system:node:NAME, and one whose
 * CN is the bare NAME, reach /v1/cluster; a node daemon pushing under
 * another node's name with that certificate, and a report POSTed directly
 * with it, get 403 identity_mismatch naming both names and change nothing
 * (counted as rejected{reason="identity"}); a token-only placement role
 * still takes a token-only node's reports; the pusher's flags are checked
 * at start (exit 2 for a certificate without its key or without https,
 * exit 1 naming the file for a key that is not the certificate's).
 * Every wait is a bounded poll that fails when it runs out.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "helpers.h"

#define TOKEN "cluster-tls-test-token-0123456789"

static char *g_root, *g_pki, *g_replay, *g_token_file;

static const char pki_script[] =
    "ca ca '/CN=dedupd cluster test CA'\n"
    "leaf server /CN=127.0.0.1 ca server 2\n"
    "leaf node-a '/O=system:nodes/CN=system:node:gpu-a-01' ca client 3\n"
    "leaf node-c /CN=gpu-c-03 ca client 4\n"
    "leaf viewer /CN=dedupctl ca client 5\n";

struct daemon {
    pid_t pid;
    unsigned port;
    char log[4200];
};

/* Every daemon started and not yet stopped: the teardown kills what a
 * failed test left running (a leftover would hold its store's lock and
 * the test's output pipe). */
static pid_t g_live[8];

static void live_add(pid_t pid)
{
    for (size_t i = 0; i < sizeof(g_live) / sizeof(g_live[0]); i++) {
        if (g_live[i] == 0) {
            g_live[i] = pid;
            return;
        }
    }
    kill(pid, SIGKILL);
    fail_msg("more than %zu daemons at once", sizeof(g_live) / sizeof(g_live[0]));
}

static void live_remove(pid_t pid)
{
    for (size_t i = 0; i < sizeof(g_live) / sizeof(g_live[0]); i++) {
        if (g_live[i] == pid)
            g_live[i] = 0;
    }
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static char *pki(const char *name)
{
    return tt_path(g_pki, name);
}

static void spawn(struct daemon *d, const char *const *argv)
{
    snprintf(d->log, sizeof(d->log), "%s/dedupd-%d.log", g_root, rand());
    d->pid = tt_daemon_fork(argv, d->log);
    live_add(d->pid);
    d->port = tt_daemon_port(d->log, 400);
    if (d->port)
        return;
    fail_msg("dedupd did not start (log %s)", d->log);
}

static int stop(struct daemon *d)
{
    int st = 0;
    kill(d->pid, SIGTERM);
    waitpid(d->pid, &st, 0);
    live_remove(d->pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void start_placement(struct daemon *d, const char *name, bool tls)
{
    char *data = tt_path(g_root, name), *cert = pki("server.pem"), *key = pki("server.key"),
         *ca = pki("ca.pem");
    if (tls) {
        const char *argv[] = {
            "dedupd",     "--role", "placement", "--listen", "127.0.0.1:0",     "--data-dir", data,
            "--tls-cert", cert,     "--tls-key", key,        "--tls-client-ca", ca,           NULL};
        spawn(d, argv);
    } else {
        const char *argv[] = {"dedupd",     "--role", "placement",    "--listen",   "127.0.0.1:0",
                              "--data-dir", data,     "--token-file", g_token_file, NULL};
        spawn(d, argv);
    }
    free(data);
    free(cert);
    free(key);
    free(ca);
}

/* A node daemon named name pushing to placement_port; cert "" for a
 * token-only node over plain HTTP. */
static void start_node(struct daemon *d, const char *name, unsigned placement_port,
                       const char *cert)
{
    char data[4200], url[64], spec[4300], certf[4200], keyf[4200], caf[4200];
    snprintf(data, sizeof(data), "%s/node-%s", g_root, name);
    snprintf(spec, sizeof(spec), "replay:%s", g_replay);
    snprintf(certf, sizeof(certf), "%s/%s.pem", g_pki, cert);
    snprintf(keyf, sizeof(keyf), "%s/%s.key", g_pki, cert);
    snprintf(caf, sizeof(caf), "%s/ca.pem", g_pki);
    if (cert[0]) {
        snprintf(url, sizeof(url), "https://127.0.0.1:%u", placement_port);
        const char *argv[] = {"dedupd",      "--role",
                              "node",        "--node-name",
                              name,          "--listen",
                              "127.0.0.1:0", "--data-dir",
                              data,          "--source",
                              spec,          "--interval",
                              "0.1",         "--placement-url",
                              url,           "--placement-cert-file",
                              certf,         "--placement-key-file",
                              keyf,          "--placement-ca-file",
                              caf,           NULL};
        spawn(d, argv);
    } else {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", placement_port);
        const char *argv[] = {"dedupd",      "--role",
                              "node",        "--node-name",
                              name,          "--listen",
                              "127.0.0.1:0", "--data-dir",
                              data,          "--source",
                              spec,          "--interval",
                              "0.1",         "--placement-url",
                              url,           "--placement-token-file",
                              g_token_file,  NULL};
        spawn(d, argv);
    }
}

/* One request through the tree's own client, over HTTPS with the given
 * client certificate ("" = plain HTTP with the token). */
static json_t *call(const struct daemon *d, const char *cert, const char *method, const char *path,
                    const char *body, long *ret_status)
{
    char base[64], err[256], certf[4200], keyf[4200], caf[4200];
    struct dd_http_client *c = NULL;
    struct dd_http_client_config cc = {.base_url = base, .timeout_ms = 60000};
    struct dd_dynbuf reply;
    if (cert[0]) {
        snprintf(base, sizeof(base), "https://127.0.0.1:%u", d->port);
        snprintf(certf, sizeof(certf), "%s/%s.pem", g_pki, cert);
        snprintf(keyf, sizeof(keyf), "%s/%s.key", g_pki, cert);
        snprintf(caf, sizeof(caf), "%s/ca.pem", g_pki);
        cc.cert_file = certf;
        cc.key_file = keyf;
        cc.ca_file = caf;
    } else {
        snprintf(base, sizeof(base), "http://127.0.0.1:%u", d->port);
        cc.token = TOKEN;
    }
    assert_int_equal(dd_http_client_new(&cc, &c, err, sizeof(err)), 0);
    dd_dynbuf_init(&reply, 16u << 20);
    int st = dd_http_client_call(c, method, path, body, &reply, err, sizeof(err));
    if (st < 0)
        fail_msg("%s %s: %s", method, path, err);
    *ret_status = st;
    json_t *doc = json_loads(dd_dynbuf_str(&reply), 0, NULL);
    dd_dynbuf_free(&reply);
    dd_http_client_free(c);
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

/* Polls /v1/cluster until every named node is listed; returns the view. */
static json_t *wait_listed(const struct daemon *p, const char *cert, const char *const *names,
                           size_t n)
{
    for (int tries = 0; tries < 400; tries++) {
        long st;
        json_t *c = call(p, cert, "GET", "/v1/cluster", NULL, &st);
        size_t found = 0;
        if (st != 200)
            fail_msg("GET /v1/cluster: %ld", st);
        for (size_t i = 0; i < n; i++)
            found += find_node(c, names[i]) != NULL;
        if (found == n)
            return c;
        json_decref(c);
        msleep(50);
    }
    fail_msg("the placement role did not list %s and the others", names[0]);
    return NULL;
}

/* A counter from a daemon's /metrics ("name{labels}" exactly); -1 absent. */
static double metric(const struct daemon *d, const char *cert, const char *series)
{
    char base[64], err[256], certf[4200], keyf[4200], caf[4200], needle[256];
    struct dd_http_client *c = NULL;
    struct dd_http_client_config cc = {.base_url = base, .timeout_ms = 60000};
    struct dd_dynbuf reply;
    double v = -1;
    if (cert[0]) {
        snprintf(base, sizeof(base), "https://127.0.0.1:%u", d->port);
        snprintf(certf, sizeof(certf), "%s/%s.pem", g_pki, cert);
        snprintf(keyf, sizeof(keyf), "%s/%s.key", g_pki, cert);
        snprintf(caf, sizeof(caf), "%s/ca.pem", g_pki);
        cc.cert_file = certf;
        cc.key_file = keyf;
        cc.ca_file = caf;
    } else {
        snprintf(base, sizeof(base), "http://127.0.0.1:%u", d->port);
    }
    assert_int_equal(dd_http_client_new(&cc, &c, err, sizeof(err)), 0);
    dd_dynbuf_init(&reply, 16u << 20);
    if (dd_http_client_call(c, "GET", "/metrics", NULL, &reply, err, sizeof(err)) != 200)
        fail_msg("GET /metrics: %s", err);
    snprintf(needle, sizeof(needle), "\n%s ", series);
    const char *p = strstr(dd_dynbuf_str(&reply), needle);
    if (p)
        v = strtod(p + strlen(needle), NULL);
    dd_dynbuf_free(&reply);
    dd_http_client_free(c);
    return v;
}

static const char *error_field(json_t *doc, const char *field)
{
    return json_string_value(json_object_get(json_object_get(doc, "error"), field));
}

static void test_mutual_tls_reports(void **state)
{
    struct daemon p, a, c, impostor;
    (void)state;

    start_placement(&p, "placement-tls", true);
    start_node(&a, "gpu-a-01", p.port, "node-a"); /* CN=system:node:gpu-a-01 */
    start_node(&c, "gpu-c-03", p.port, "node-c"); /* CN=gpu-c-03 */
    /* pushes as gpu-b-02 with gpu-a-01's certificate */
    start_node(&impostor, "gpu-b-02", p.port, "node-a");

    json_decref(wait_listed(&p, "viewer", (const char *const[]){"gpu-a-01", "gpu-c-03"}, 2));
    /* the impostor's reports are refused, counted on both sides */
    for (int tries = 0;; tries++) {
        double refused = metric(&p, "viewer", "dedupd_reports_rejected_total{reason=\"identity\"}");
        double dropped =
            metric(&impostor, "", "dedupd_push_reports_dropped_total{reason=\"rejected\"}");
        if (refused >= 3 && dropped >= 3)
            break;
        if (tries > 400)
            fail_msg("the impostor's reports were not refused (placement %g, node %g; log %s)",
                     refused, dropped, impostor.log);
        msleep(50);
    }
    char *log = tt_read_text(impostor.log);
    if (!strstr(log, "HTTP 403") || !strstr(log, "identity_mismatch"))
        fail_msg("the impostor's log does not say why its reports are dropped: %s", log);
    free(log);
    assert_int_equal(stop(&impostor), 0);

    /* a report POSTed directly with gpu-a-01's certificate for another node */
    long st;
    json_t *before = call(&p, "viewer", "GET", "/v1/cluster", NULL, &st);
    size_t n_before = json_array_size(json_object_get(before, "nodes"));
    json_decref(before);
    const char *other = "{\"schema\": 1, \"node\": \"gpu-c-03\", \"interval_seconds\": 1, "
                        "\"time_ms\": 4102444800000, \"volumes\": []}";
    json_t *doc = call(&p, "node-a", "POST", "/v1/reports", other, &st);
    assert_int_equal(st, 403);
    assert_string_equal(error_field(doc, "code"), "identity_mismatch");
    assert_string_equal(error_field(doc, "node"), "gpu-c-03");
    assert_string_equal(error_field(doc, "certificate_identity"), "system:node:gpu-a-01");
    assert_non_null(strstr(error_field(doc, "message"), "'gpu-c-03'"));
    assert_non_null(strstr(error_field(doc, "message"), "'system:node:gpu-a-01'"));
    json_decref(doc);
    /* a certificate naming no node at all (CN=dedupctl) reports for nobody */
    doc = call(&p, "viewer", "POST", "/v1/reports", other, &st);
    assert_int_equal(st, 403);
    assert_string_equal(error_field(doc, "certificate_identity"), "dedupctl");
    json_decref(doc);
    /* nothing changed: gpu-c-03's report is its own (a far-future time_ms
     * would have replaced it), gpu-b-02 never appeared */
    json_t *after = call(&p, "viewer", "GET", "/v1/cluster/nodes/gpu-c-03", NULL, &st);
    assert_int_equal(st, 200);
    assert_true(json_number_value(json_object_get(after, "interval_seconds")) < 0.5);
    json_decref(after);
    after = call(&p, "viewer", "GET", "/v1/cluster/nodes/gpu-b-02", NULL, &st);
    assert_int_equal(st, 404);
    json_decref(after);
    after = call(&p, "viewer", "GET", "/v1/cluster", NULL, &st);
    assert_int_equal(json_array_size(json_object_get(after, "nodes")), n_before);
    json_decref(after);
    /* the placement role has no token: its own name with the certificate is
     * enough (202), a certificate from nowhere is not (403 on the headers) */
    const char *own = "{\"schema\": 1, \"node\": \"gpu-a-01\", \"interval_seconds\": 1, "
                      "\"time_ms\": 4102444800000, \"volumes\": []}";
    doc = call(&p, "node-a", "POST", "/v1/reports", own, &st);
    assert_int_equal(st, 202);
    json_decref(doc);

    assert_int_equal(stop(&a), 0);
    assert_int_equal(stop(&c), 0);
    assert_int_equal(stop(&p), 0);
}

/* A token-only placement role and node, as before certificates. */
static void test_token_only(void **state)
{
    struct daemon p, n;
    (void)state;
    start_placement(&p, "placement-token", false);
    start_node(&n, "gpu-a-01", p.port, "");
    json_decref(wait_listed(&p, "", (const char *const[]){"gpu-a-01"}, 1));
    /* with a token only, the name is not checked: any holder may report as
     * any node (README says so) */
    long st;
    json_t *doc = call(&p, "", "POST", "/v1/reports",
                       "{\"schema\": 1, \"node\": \"gpu-z-26\", \"interval_seconds\": 1, "
                       "\"time_ms\": 1700000000000, \"volumes\": []}",
                       &st);
    assert_int_equal(st, 202);
    json_decref(doc);
    assert_int_equal(stop(&n), 0);
    assert_int_equal(stop(&p), 0);
}

/* dedupd with these arguments exits with want and says needle on stderr. */
static void expect_start_error(const char *const *extra, int want, const char *needle)
{
    char *data = tt_path(g_root, "bad-start"), spec[4300];
    const char *argv[32] = {tt_bin("dedupd"), "--role",     "node", "--listen",
                            "127.0.0.1:0",    "--data-dir", data,   "--source"};
    size_t n = 8;
    snprintf(spec, sizeof(spec), "replay:%s", g_replay);
    argv[n++] = spec;
    for (size_t i = 0; extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = tt_run(argv, &out, &err);
    if (rc != want || !strstr(err, needle))
        fail_msg("%s ...: exit %d (want %d), stderr lacks '%s': %s", extra[0], rc, want, needle,
                 err);
    free(out);
    free(err);
    free(data);
}

static void test_flags_checked_at_start(void **state)
{
    char *cert = pki("node-a.pem"), *key = pki("node-a.key"), *other_key = pki("node-c.key"),
         *ca = pki("ca.pem");
    (void)state;
    expect_start_error((const char *const[]){"--placement-url", "https://127.0.0.1:1",
                                             "--placement-cert-file", cert, NULL},
                       2, "--placement-cert-file needs --placement-key-file");
    expect_start_error((const char *const[]){"--placement-url", "https://127.0.0.1:1",
                                             "--placement-key-file", key, NULL},
                       2, "--placement-key-file needs --placement-cert-file");
    expect_start_error((const char *const[]){"--placement-url", "http://127.0.0.1:1",
                                             "--placement-cert-file", cert, "--placement-key-file",
                                             key, NULL},
                       2, "needs an https:// placement url");
    expect_start_error((const char *const[]){"--placement-ca-file", ca, NULL}, 2,
                       "set --placement-url too");
    expect_start_error((const char *const[]){"--placement-url", "https://127.0.0.1:1",
                                             "--placement-cert-file", cert, "--placement-key-file",
                                             other_key, NULL},
                       1, "do not match");
    expect_start_error((const char *const[]){"--placement-url", "https://127.0.0.1:1",
                                             "--placement-cert-file", "/nonexistent/node.pem",
                                             "--placement-key-file", key, NULL},
                       1, "/nonexistent/node.pem");
    free(cert);
    free(key);
    free(other_key);
    free(ca);
}

static int group_setup(void **state)
{
    char *wl;
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g_root = tt_tmpdir();
    g_pki = tt_path(g_root, "pki");
    if (mkdir(g_pki, 0700) < 0)
        fail_msg("mkdir %s", g_pki);
    tt_openssl_pki(g_pki, pki_script);
    g_token_file = tt_path(g_root, "token");
    tt_write_file(g_token_file, TOKEN "\n", strlen(TOKEN) + 1);
    g_replay = tt_path(g_root, "replay");
    wl = tt_path(g_root, "w.json");
    tt_random_workload(wl, 1, 400, 8, 4242);
    tt_vdo_sim(wl, 400, 5, g_replay);
    free(wl);
    return 0;
}

/* Each test's teardown (cmocka runs it after a failure too). */
static int kill_live(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(g_live) / sizeof(g_live[0]); i++) {
        if (g_live[i] > 0) {
            kill(g_live[i], SIGKILL);
            waitpid(g_live[i], NULL, 0);
            g_live[i] = 0;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    kill_live(state);
    tt_rmtree(g_root);
    free(g_root);
    free(g_pki);
    free(g_replay);
    free(g_token_file);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_flags_checked_at_start, kill_live),
        cmocka_unit_test_teardown(test_mutual_tls_reports, kill_live),
        cmocka_unit_test_teardown(test_token_only, kill_live),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
