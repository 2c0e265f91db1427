/*
 * --placement-resolve-all end to end on loopback, the way a headless
 * Service fans out: two real `dedupd --role placement` replicas listen on
 * 127.0.0.1:P and 127.0.0.2:P (the same port, two loopback addresses) and
 * one real `dedupd --role node` pushes to http://NAME:P, where NAME
 * resolves to both through a hosts file bind-mounted over /etc/hosts in a
 * private mount namespace (`unshare -rm`, the node daemon only). Checked:
 * both replicas list the node in /v1/cluster; the node's metrics carry one
 * target per address; the hosts file rewritten to one address retires the
 * other's target, and rewritten back brings it back. Unit part: the target
 * set update (dd_push_addr_diff) and dd_push_resolve on numeric hosts.
 * Every wait is a bounded poll that fails when it runs out.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "dedupd/push.h"
#include "helpers.h"

#define NAME "placement-replicas.resolve.test"

static char *g_root, *g_replay, *g_hosts;
static pid_t g_pids[3];

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The body of GET http://HOST:PORT/PATH, NULL when there is no answer. */
static char *get_text(const char *host, unsigned port, const char *path)
{
    char base[96], err[256];
    struct dd_http_client *c = NULL;
    struct dd_http_client_config cc = {.base_url = base, .timeout_ms = 10000};
    struct dd_dynbuf reply;
    char *text = NULL;
    snprintf(base, sizeof(base), "http://%s:%u", host, port);
    assert_int_equal(dd_http_client_new(&cc, &c, err, sizeof(err)), 0);
    dd_dynbuf_init(&reply, 16u << 20);
    if (dd_http_client_call(c, "GET", path, NULL, &reply, err, sizeof(err)) == 200)
        text = strdup(dd_dynbuf_str(&reply));
    dd_dynbuf_free(&reply);
    dd_http_client_free(c);
    return text;
}

static void write_hosts(const char *text)
{
    /* in place (same inode): the node's bind mount keeps seeing this file */
    FILE *f = fopen(g_hosts, "r+");
    if (!f)
        f = fopen(g_hosts, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 0), 0);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static unsigned start_placement(int i, const char *listen)
{
    char data[4200], log[4200];
    snprintf(data, sizeof(data), "%s/placement-%d", g_root, i);
    snprintf(log, sizeof(log), "%s/placement-%d.log", g_root, i);
    const char *argv[] = {"dedupd", "--role",     "placement", "--listen",
                          listen,   "--data-dir", data,        NULL};
    g_pids[i] = tt_daemon_fork(argv, log);
    unsigned port = tt_daemon_port(log, 400);
    if (!port)
        fail_msg("placement replica %d did not start (log %s)", i, log);
    return port;
}

/* The node daemon in its own user and mount namespace, the hosts file over
 * /etc/hosts there; its log and port as tt_daemon_fork's. */
static unsigned start_node(unsigned placement_port, char *log, size_t loglen)
{
    char data[4200], url[128], spec[4300], script[4400];
    snprintf(data, sizeof(data), "%s/node", g_root);
    snprintf(log, loglen, "%s/node.log", g_root);
    snprintf(url, sizeof(url), "http://" NAME ":%u", placement_port);
    snprintf(spec, sizeof(spec), "replay:%s", g_replay);
    snprintf(script, sizeof(script), "mount --bind '%s' /etc/hosts && exec \"$0\" \"$@\"", g_hosts);
    const char *argv[] = {"unshare",
                          "-rm",
                          "sh",
                          "-c",
                          script,
                          tt_bin("dedupd"),
                          "--role",
                          "node",
                          "--node-name",
                          "resolve-node-7",
                          "--listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          data,
                          "--source",
                          spec,
                          "--interval",
                          "0.05",
                          "--placement-url",
                          url,
                          "--placement-resolve-all",
                          "--placement-resolve-interval",
                          "0.2",
                          NULL};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execvp("unshare", (char *const *)(uintptr_t)argv);
        _exit(98);
    }
    g_pids[2] = pid;
    unsigned port = tt_daemon_port(log, 400);
    if (!port)
        fail_msg("the node daemon did not start under unshare (log %s)", log);
    return port;
}

/* Whether the replica at host:port lists the node. */
static bool lists_node(const char *host, unsigned port)
{
    char *text = get_text(host, port, "/v1/cluster");
    json_t *doc = text ? json_loads(text, 0, NULL) : NULL, *n;
    bool found = false;
    size_t i;
    json_array_foreach(json_object_get(doc, "nodes"), i, n)
    {
        found |= strcmp(json_string_value(json_object_get(n, "name")) ?: "", "resolve-node-7") == 0;
    }
    json_decref(doc);
    free(text);
    return found;
}

/* The value of the metric line that starts with series (-1: none). */
static double metric(const char *metrics, const char *series)
{
    size_t len = strlen(series);
    for (const char *p = metrics; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, len) == 0 && p[len] == ' ')
            return strtod(p + len + 1, NULL);
    }
    return -1;
}

/* Polls the node's metrics until the target set is exactly the given
 * addresses (each with a sent report when sent is true). */
static void wait_targets(unsigned node_port, const char *const *addrs, size_t n, unsigned pport)
{
    char series[256];
    for (int tries = 0; tries < 400; tries++) {
        char *m = get_text("127.0.0.1", node_port, "/metrics");
        size_t ok = 0;
        snprintf(series, sizeof(series),
                 "dedupd_push_resolve_addresses{target=\"http://" NAME ":%u\"}", pport);
        bool count_ok = m && metric(m, series) == (double)n;
        for (size_t i = 0; m && i < n; i++) {
            snprintf(series, sizeof(series),
                     "dedupd_push_target_reports_sent_total{target=\"http://" NAME
                     ":%u\",address=\"%s\"}",
                     pport, addrs[i]);
            ok += metric(m, series) > 0;
        }
        free(m);
        if (count_ok && ok == n)
            return;
        msleep(50);
    }
    fail_msg("the node's push targets did not become the %zu expected address(es)", n);
}

static void test_push_to_every_address(void **state)
{
    (void)state;
    char log[4200], probe[4400];
    int rc;

    write_hosts("127.0.0.1 " NAME "\n127.0.0.2 " NAME "\n");
    /* the real parts this needs: a private mount namespace as an
     * unprivileged-looking root, and a libc that gives both addresses */
    snprintf(probe, sizeof(probe),
             "unshare -rm sh -c \"mount --bind '%s' /etc/hosts && getent ahostsv4 " NAME
             " | grep -c STREAM | grep -qx 2\" 2>/dev/null",
             g_hosts);
    if (!tt_have_program("unshare") || !tt_have_program("getent"))
        tt_skip("unshare or getent is not installed");
    rc = system(probe);
    if (rc != 0)
        tt_skip("unshare -rm with a bind-mounted /etc/hosts is not permitted here, or the "
                "hosts file does not give both addresses (nsswitch 'hosts: files' first?)");

    unsigned port = start_placement(0, "127.0.0.1:0");
    char listen2[64];
    snprintf(listen2, sizeof(listen2), "127.0.0.2:%u", port);
    unsigned port2 = start_placement(1, listen2);
    assert_int_equal(port2, port);
    unsigned node_port = start_node(port, log, sizeof(log));

    /* both replicas get the node's reports */
    bool a = false, b = false;
    for (int tries = 0; tries < 400 && !(a && b); tries++) {
        a = a || lists_node("127.0.0.1", port);
        b = b || lists_node("127.0.0.2", port);
        if (!(a && b))
            msleep(50);
    }
    if (!a || !b)
        fail_msg("the node is listed by replica 127.0.0.1: %d, 127.0.0.2: %d (node log %s)", a, b,
                 log);
    const char *both[] = {"127.0.0.1", "127.0.0.2"};
    wait_targets(node_port, both, 2, port);

    /* the name loses an address: that target is retired */
    write_hosts("127.0.0.1 " NAME "\n");
    const char *one[] = {"127.0.0.1"};
    wait_targets(node_port, one, 1, port);
    char *m = get_text("127.0.0.1", node_port, "/metrics");
    assert_non_null(m);
    assert_null(strstr(m, "address=\"127.0.0.2\""));
    free(m);

    /* and gets it back: a new target for it; the replica hears again */
    write_hosts("127.0.0.2 " NAME "\n127.0.0.1 " NAME "\n");
    wait_targets(node_port, both, 2, port);
}

/* The set update alone: kept, retired and added addresses. */
static void test_addr_diff(void **state)
{
    (void)state;
    char have[3][DD_PUSH_ADDR_MAX] = {"10.0.0.1", "10.0.0.2", "fd00::5"};
    char want[4][DD_PUSH_ADDR_MAX] = {"10.0.0.2", "10.0.0.9", "fd00::5", "10.0.0.9"};
    bool keep[3], add[4];
    assert_int_equal(dd_push_addr_diff((const char(*)[DD_PUSH_ADDR_MAX])have, 3,
                                       (const char(*)[DD_PUSH_ADDR_MAX])want, 4, keep, add),
                     2);
    assert_false(keep[0]);
    assert_true(keep[1]);
    assert_true(keep[2]);
    assert_false(add[0]);
    assert_true(add[1]);
    assert_false(add[2]);
    assert_false(add[3]); /* the duplicate once */
    /* all gone (a name without address) and all new */
    assert_int_equal(
        dd_push_addr_diff((const char(*)[DD_PUSH_ADDR_MAX])have, 3, NULL, 0, keep, add), 3);
    assert_false(keep[0] || keep[1] || keep[2]);
    assert_int_equal(
        dd_push_addr_diff(NULL, 0, (const char(*)[DD_PUSH_ADDR_MAX])want, 3, keep, add), 3);
    /* nothing changes */
    assert_int_equal(dd_push_addr_diff((const char(*)[DD_PUSH_ADDR_MAX])have, 3,
                                       (const char(*)[DD_PUSH_ADDR_MAX])have, 3, keep, add),
                     0);
}

static void test_resolve_numeric(void **state)
{
    (void)state;
    char addrs[4][DD_PUSH_ADDR_MAX], err[256];
    size_t n = 9, more = 9;
    assert_int_equal(
        dd_push_resolve("http://127.0.0.3:7450", addrs, 4, &n, &more, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(more, 0);
    assert_string_equal(addrs[0], "127.0.0.3");
    assert_int_equal(dd_push_resolve("https://[::1]/prefix", addrs, 4, &n, &more, err, sizeof(err)),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(addrs[0], "::1");
    /* the bound: one kept, one more counted */
    assert_int_equal(dd_push_resolve("http://127.0.0.3:1", addrs, 0, &n, &more, err, sizeof(err)),
                     0);
    assert_int_equal(n, 0);
    assert_int_equal(more, 1);
    /* not a URL: a clear error */
    assert_true(dd_push_resolve("ftp://x", addrs, 4, &n, &more, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "ftp://x"));
}

static int group_setup(void **state)
{
    (void)state;
    g_root = tt_tmpdir();
    g_replay = tt_path(g_root, "replay");
    g_hosts = tt_path(g_root, "hosts");
    char *wl = tt_path(g_root, "w.json");
    tt_random_workload(wl, 1, 300, 8, 4242);
    tt_vdo_sim(wl, 300, 5, g_replay);
    free(wl);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(g_pids) / sizeof(g_pids[0]); i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGTERM);
            waitpid(g_pids[i], NULL, 0);
        }
    }
    tt_rmtree(g_root);
    free(g_root);
    free(g_replay);
    free(g_hosts);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_diff),
        cmocka_unit_test(test_resolve_numeric),
        cmocka_unit_test(test_push_to_every_address),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
