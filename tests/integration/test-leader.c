/*
 * Leader election of the placement role (dedupd/leader.h) on loopback:
 * two real `dedupd --role placement --leader-elect` processes (pods
 * placement-a and placement-b in dedupd-system) against the in-process
 * test API server (tests/kubeapi), with short durations (Lease 2 s, renew
 * deadline 1.5 s, retry 0.3 s). One `dedupd --role node` process replays a
 * simulated node (gpu-node-a) and pushes every report to both replicas
 * (--placement-url A,B), so both hold the same history and train (warm
 * standby).
 *
 * Checked, in order (one cmocka test each; they share the processes):
 *   one leader   exactly one replica says dedupd_leader 1 on /metrics, on
 *                every poll; the Lease's holderIdentity is that replica's
 *                pod; its pod carries dedupd.io/leader=true, the other's
 *                "false"; the standby answers filter (every node passes)
 *                and prioritize (the neutral score) and says "standby" in
 *                /v1/placement, the leader "enforce";
 *   conflict     the server answers the next Lease PUT 409: the leader
 *                counts the conflict, reads the Lease again and renews it
 *                (the Lease's version moves on), and stays the leader;
 *   hand-over    both replicas train on the node's reports (the node counts
 *                deliveries to each URL); SIGTERM to the
 *                leader: it exits 0 having released the Lease and set its
 *                label false; the other becomes the leader (Lease holder,
 *                label true, dedupd_leader 1) within a bounded poll, and
 *                answers with the model it trained as a standby (same
 *                active version, an XGBoost model), never a 5xx; the
 *                server recorded the Lease and pod calls.
 * Every wait is a bounded poll that fails when it runs out; nothing asserts
 * on wall-clock time.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "helpers.h"
#include "kubeapi.h"
#include "placement/kube.h"

#define TOKEN      "leader-test-token-0123456789abcdef"
#define KUBE_TOKEN "kube-api-token-for-the-leader-test"
#define NS         "dedupd-system"
#define LEASE      "dedupd-placement"
#define INTERVALS  240

struct daemon {
    pid_t pid;
    unsigned port;
    char log[4200];
    const char *pod;
};

static char *g_root, *g_token_file, *g_kube_token_file, *g_replay;
static struct tt_kubeapi *g_api;
static struct daemon g_rep[2] = {{.pod = "placement-a"}, {.pod = "placement-b"}};
static struct daemon g_nodes[1];
static int g_leader = -1; /* index into g_rep */

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void show_log(const char *what, const struct daemon *d)
{
    char *text = d->log[0] ? tt_read_text(d->log) : NULL;
    if (!text)
        return;
    size_t len = strlen(text);
    printf("---- %s (%s), last lines:\n%s\n", what, d->log, text + (len > 3000 ? len - 3000 : 0));
    free(text);
}

static void show_logs(void)
{
    show_log("placement-a", &g_rep[0]);
    show_log("placement-b", &g_rep[1]);
}

/* Polls cond every 50 ms, at most 1200 times (a minute); fails naming what. */
#define WAIT_FOR(cond, ...)                                                                        \
    do {                                                                                           \
        int wait_i_;                                                                               \
        for (wait_i_ = 0; wait_i_ < 1200 && !(cond); wait_i_++)                                    \
            msleep(50);                                                                            \
        if (wait_i_ == 1200) {                                                                     \
            show_logs();                                                                           \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

static void spawn(struct daemon *d, const char *const *argv)
{
    snprintf(d->log, sizeof(d->log), "%s/dedupd-%d.log", g_root, rand());
    d->pid = tt_daemon_fork(argv, d->log);
    d->port = tt_daemon_port(d->log, 1200);
    if (d->port)
        return;
    show_log("dedupd", d);
    fail_msg("dedupd did not start (log %s)", d->log);
}

static int stop(struct daemon *d, int sig)
{
    int st = 0;
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void start_replica(int i)
{
    char data[4200];
    snprintf(data, sizeof(data), "%s/placement-%d", g_root, i);
    const char *argv[] = {"dedupd",
                          "--role",
                          "placement",
                          "--listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          data,
                          "--token-file",
                          g_token_file,
                          "--kube-api",
                          tt_kubeapi_url(g_api),
                          "--kube-token-file",
                          g_kube_token_file,
                          "--leader-elect",
                          "--pod-name",
                          g_rep[i].pod,
                          "--lease-duration",
                          "2",
                          "--renew-deadline",
                          "1.5",
                          "--retry-period",
                          "0.3",
                          "--min-train-samples",
                          "50",
                          "--retrain-every",
                          "100000000",
                          "--stale-after",
                          "3600",
                          NULL};
    spawn(&g_rep[i], argv);
}

/* One node daemon pushing every report to both replicas. */
static void start_node(int i)
{
    char data[4200], url[128], spec[4300];
    snprintf(data, sizeof(data), "%s/node-%d", g_root, i);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u, http://127.0.0.1:%u", g_rep[0].port,
             g_rep[1].port);
    snprintf(spec, sizeof(spec), "replay:%s", g_replay);
    const char *argv[] = {"dedupd",      "--role",
                          "node",        "--node-name",
                          "gpu-node-a",  "--listen",
                          "127.0.0.1:0", "--data-dir",
                          data,          "--source",
                          spec,          "--interval",
                          "0.03",        "--pool",
                          "v0=ml-dedup", "--placement-url",
                          url,           "--placement-token-file",
                          g_token_file,  NULL};
    spawn(&g_nodes[i], argv);
}

/* ---- HTTP ---- */

struct reply {
    long status;
    char *raw;
    json_t *doc;
};

/* With Content-Type: application/json and the token (body NULL: none). */
static struct reply http(unsigned port, const char *method, const char *path, const char *body)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          "Authorization: Bearer " TOKEN, NULL};
    struct reply r = {0};
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct tt_reply t = tt_http_headers(url, method, body, 0, 60, headers);
    r.status = t.status;
    r.raw = t.body;
    r.doc = json_loads(r.raw, 0, NULL);
    return r;
}

static void reply_free(struct reply *r)
{
    free(r->raw);
    json_decref(r->doc);
    memset(r, 0, sizeof(*r));
}

static json_t *get_ok(unsigned port, const char *path)
{
    struct reply r = http(port, "GET", path, NULL);
    if (r.status != 200 || !r.doc)
        fail_msg("GET %s: %ld %.300s", path, r.status, r.raw);
    json_t *doc = json_incref(r.doc);
    reply_free(&r);
    return doc;
}

/* A sample of /metrics (no labels); -1 when missing or unreachable. */
static double metric(unsigned port, const char *name)
{
    struct reply r = http(port, "GET", "/metrics", NULL);
    char needle[128];
    double v = -1;
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *p = r.status == 200 ? strstr(r.raw, needle) : NULL;
    if (p)
        v = strtod(p + strlen(needle), NULL);
    reply_free(&r);
    return v;
}

/* ---- the API server's view ---- */

static char *lease_holder(void)
{
    json_t *l = tt_kubeapi_lease(g_api, NS, LEASE);
    const char *h =
        json_string_value(json_object_get(json_object_get(l, "spec"), "holderIdentity"));
    char *ret = strdup(h ? h : "");
    json_decref(l);
    return ret;
}

static bool holder_is(const char *pod)
{
    char *h = lease_holder();
    bool yes = strcmp(h, pod) == 0;
    free(h);
    return yes;
}

/* The pod's dedupd.io/leader label ("" when none). */
static bool label_is(const char *pod, const char *want)
{
    json_t *p = tt_kubeapi_get(g_api, DD_KUBE_POD, NS, pod);
    const char *v = json_string_value(json_object_get(
        json_object_get(json_object_get(p, "metadata"), "labels"), "dedupd.io/leader"));
    bool yes = strcmp(v ? v : "", want) == 0;
    json_decref(p);
    return yes;
}

/* Which replica says dedupd_leader 1: its index, -1 for none, -2 for both. */
static int leaders(void)
{
    int who = -1;
    for (int i = 0; i < 2; i++) {
        if (g_rep[i].pid <= 0)
            continue;
        if (metric(g_rep[i].port, "dedupd_leader") == 1)
            who = who == -1 ? i : -2;
    }
    return who;
}

static json_t *fixture_json(const char *rel)
{
    size_t len;
    char *text = tt_fixture(rel, &len);
    json_t *doc = json_loadb(text, len, 0, NULL);
    if (!doc)
        fail_msg("%s: not JSON", rel);
    free(text);
    return doc;
}

static struct reply post_fixture(unsigned port, const char *path, const char *rel)
{
    json_t *doc = fixture_json(rel);
    char *text = json_dumps(doc, JSON_COMPACT);
    struct reply r = http(port, "POST", path, text);
    free(text);
    json_decref(doc);
    return r;
}

static json_int_t model_version(unsigned port, char *kind, size_t len)
{
    json_t *m = get_ok(port, "/v1/model");
    json_t *a = json_object_get(m, "active");
    json_int_t v = json_integer_value(json_object_get(a, "version"));
    snprintf(kind, len, "%s",
             json_string_value(json_object_get(a, "kind"))
                 ? json_string_value(json_object_get(a, "kind"))
                 : "");
    json_decref(m);
    return v;
}

static void retrain(unsigned port)
{
    struct reply r = http(port, "POST", "/v1/model/retrain", "{}");
    long st = r.status;
    for (int i = 0; i < 600 && st == 202; i++) {
        char poll[128];
        snprintf(poll, sizeof(poll), "%s", json_string_value(json_object_get(r.doc, "poll")));
        reply_free(&r);
        msleep(200);
        r = http(port, "GET", poll, NULL);
        st = (long)json_integer_value(json_object_get(r.doc, "http_status"));
    }
    if (st != 200) {
        show_logs();
        fail_msg("retrain on port %u ended with %ld: %.300s", port, st, r.raw);
    }
    reply_free(&r);
}

/* ---- the checks ---- */

static void test_one_leader(void **state)
{
    (void)state;
    WAIT_FOR(leaders() >= 0, "one leader among the two replicas");
    g_leader = leaders();
    int standby = 1 - g_leader;
    /* never two at once, over many polls */
    for (int i = 0; i < 40; i++) {
        int who = leaders();
        if (who != g_leader) {
            show_logs();
            fail_msg("poll %d: leader %d, was %d", i, who, g_leader);
        }
        msleep(50);
    }
    assert_true(holder_is(g_rep[g_leader].pod));
    assert_true(metric(g_rep[standby].port, "dedupd_leader") == 0);
    assert_true(metric(g_rep[standby].port, "dedupd_leader_election") == 1);
    WAIT_FOR(label_is(g_rep[g_leader].pod, "true") && label_is(g_rep[standby].pod, "false"),
             "the leader's pod labelled true, the standby's false");

    /* the standby answers neutral: every node passes, every score neutral */
    struct reply r = post_fixture(g_rep[standby].port, "/scheduler/filter",
                                  "k8s/extender/filter.request.node-names.json");
    if (r.status != 200)
        fail_msg("standby filter: %ld %s", r.status, r.raw);
    json_t *req = fixture_json("k8s/extender/filter.request.node-names.json");
    json_t *names = json_object_get(req, "NodeNames");
    assert_int_equal(json_array_size(json_object_get(r.doc, "NodeNames")), json_array_size(names));
    assert_int_equal(json_object_size(json_object_get(r.doc, "FailedNodes")), 0);
    json_decref(req);
    reply_free(&r);
    r = post_fixture(g_rep[standby].port, "/scheduler/prioritize",
                     "k8s/extender/prioritize.request.node-names.json");
    if (r.status != 200 || !json_is_array(r.doc))
        fail_msg("standby prioritize: %ld %s", r.status, r.raw);
    for (size_t i = 0; i < json_array_size(r.doc); i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(r.doc, i), "Score")), 5);
    reply_free(&r);
    assert_true(metric(g_rep[standby].port, "dedupd_extender_standby_answers_total") == 2);

    json_t *pod = fixture_json("k8s/pod.gpu-trainer.scheduled-view.json");
    char *text = json_dumps(pod, JSON_COMPACT);
    json_decref(pod);
    for (int i = 0; i < 2; i++) {
        r = http(g_rep[i].port, "POST", "/v1/placement", text);
        if (r.status != 200)
            fail_msg("/v1/placement on %s: %ld %s", g_rep[i].pod, r.status, r.raw);
        const char *mode = json_string_value(json_object_get(r.doc, "mode"));
        assert_non_null(mode);
        assert_string_equal(mode, i == g_leader ? "enforce" : "standby");
        reply_free(&r);
    }
    free(text);
}

static void test_conflict_retried(void **state)
{
    (void)state;
    struct tt_kubeapi_stats before, after;
    assert_true(g_leader >= 0);
    double conflicts = metric(g_rep[g_leader].port, "dedupd_leader_lease_conflicts_total");
    double transitions = metric(g_rep[g_leader].port, "dedupd_leader_transitions_total");
    tt_kubeapi_stats(g_api, &before);
    tt_kubeapi_lease_conflicts(g_api, 1);
    WAIT_FOR(metric(g_rep[g_leader].port, "dedupd_leader_lease_conflicts_total") > conflicts,
             "the leader counting the 409");
    /* and renewing after it: accepted updates go on */
    tt_kubeapi_stats(g_api, &after);
    assert_true(after.lease_conflicts > before.lease_conflicts);
    unsigned long updates = after.lease_updates;
    WAIT_FOR((tt_kubeapi_stats(g_api, &after), after.lease_updates > updates + 2),
             "Lease renewals after the conflict");
    assert_true(holder_is(g_rep[g_leader].pod));
    assert_int_equal(leaders(), g_leader);
    assert_true(metric(g_rep[g_leader].port, "dedupd_leader_transitions_total") == transitions);
}

static void test_handover_warm(void **state)
{
    (void)state;
    char kind[64], kind2[64];
    assert_true(g_leader >= 0);
    int old = g_leader, next = 1 - g_leader;

    /* both replicas train on the same node's reports: one node daemon
     * delivers each to both URLs */
    WAIT_FOR(metric(g_nodes[0].port, "dedupd_samples_total") >= 150, "node %d's samples", 0);
    for (int i = 0; i < 2; i++) {
        char name[160];
        WAIT_FOR(metric(g_rep[i].port, "dedupd_reports_received_total") >= 100, "reports at %s",
                 g_rep[i].pod);
        snprintf(name, sizeof(name),
                 "dedupd_push_target_reports_sent_total{target=\"http://127.0.0.1:%u\"}",
                 g_rep[i].port);
        WAIT_FOR(metric(g_nodes[0].port, name) >= 100, "the node's deliveries to %s", g_rep[i].pod);
    }
    retrain(g_rep[0].port);
    retrain(g_rep[1].port);
    json_int_t v = model_version(g_rep[next].port, kind, sizeof(kind));
    assert_true(v >= 1);
    assert_string_equal(kind, "xgboost");
    printf("standby %s: model version %lld, %s\n", g_rep[next].pod, (long long)v, kind);

    assert_int_equal(stop(&g_rep[old], SIGTERM), 0);
    /* released at stop: label false, then the other takes it */
    WAIT_FOR(label_is(g_rep[old].pod, "false"), "the old leader's label false");
    WAIT_FOR(leaders() == next, "%s taking over", g_rep[next].pod);
    g_leader = next;
    WAIT_FOR(holder_is(g_rep[next].pod), "the Lease naming %s", g_rep[next].pod);
    WAIT_FOR(label_is(g_rep[next].pod, "true"), "the new leader's label true");
    json_t *lease = tt_kubeapi_lease(g_api, NS, LEASE);
    assert_true(json_integer_value(
                    json_object_get(json_object_get(lease, "spec"), "leaseTransitions")) >= 1);
    json_decref(lease);

    /* warm: the model it trained as a standby answers */
    json_int_t v2 = model_version(g_rep[next].port, kind2, sizeof(kind2));
    assert_true(v2 == v);
    assert_string_equal(kind2, kind);
    struct reply r = post_fixture(g_rep[next].port, "/scheduler/prioritize",
                                  "k8s/extender/prioritize.request.node-names.json");
    if (r.status != 200 || !json_is_array(r.doc))
        fail_msg("new leader prioritize: %ld %s", r.status, r.raw);
    reply_free(&r);
    json_t *pod = fixture_json("k8s/pod.gpu-trainer.scheduled-view.json");
    char *text = json_dumps(pod, JSON_COMPACT);
    json_decref(pod);
    r = http(g_rep[next].port, "POST", "/v1/placement", text);
    free(text);
    if (r.status != 200)
        fail_msg("/v1/placement on the new leader: %ld %s", r.status, r.raw);
    assert_string_equal(json_string_value(json_object_get(r.doc, "mode")), "enforce");
    reply_free(&r);
    assert_true(metric(g_rep[next].port, "dedupd_leader_transitions_total") >= 1);

    /* what the server recorded: the Lease's verbs and both pods' patches */
    json_t *calls = tt_kubeapi_requests(g_api);
    char *ctext = json_dumps(calls, JSON_COMPACT);
    const char *want[] = {
        "\"verb\":\"get\",\"method\":\"GET\",\"path\":\"/apis/coordination.k8s.io/v1/"
        "namespaces/" NS "/leases/" LEASE "\"",
        "\"verb\":\"update\",\"method\":\"PUT\",\"path\":\"/apis/coordination.k8s.io/v1/"
        "namespaces/" NS "/leases/" LEASE "\"",
        "\"verb\":\"create\",\"method\":\"POST\",\"path\":\"/apis/coordination.k8s.io/v1/"
        "namespaces/" NS "/leases\"",
        "\"verb\":\"patch\",\"method\":\"PATCH\",\"path\":\"/api/v1/namespaces/" NS
        "/pods/placement-a\"",
        "\"verb\":\"patch\",\"method\":\"PATCH\",\"path\":\"/api/v1/namespaces/" NS
        "/pods/placement-b\"",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(ctext, want[i]))
            fail_msg("no recorded call %s in %s", want[i], ctext);
    free(ctext);
    json_decref(calls);
}

/* ---- setup ---- */

static json_t *placement_pod(const char *name)
{
    return json_pack("{s:{s:s, s:s, s:s, s:{s:s, s:s}}, s:{s:s, s:[{s:s}]}, s:{s:s}}", "metadata",
                     "name", name, "namespace", NS, "uid", name, "labels", "app.kubernetes.io/name",
                     "dedupd", "app.kubernetes.io/component", "placement", "spec", "nodeName",
                     "control-0", "containers", "name", "dedupd", "status", "phase", "Running");
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    srand((unsigned)getpid());
    g_root = tt_tmpdir();
    g_token_file = tt_path(g_root, "token");
    tt_write_file(g_token_file, TOKEN "\n", strlen(TOKEN) + 1);
    g_kube_token_file = tt_path(g_root, "kube-token");
    tt_write_file(g_kube_token_file, KUBE_TOKEN "\n", strlen(KUBE_TOKEN) + 1);
    char *wl = tt_path(g_root, "w.json");
    g_replay = tt_path(g_root, "replay");
    tt_random_workload(wl, 1, INTERVALS, 16, 4242);
    tt_vdo_sim(wl, INTERVALS, 17, g_replay);
    free(wl);

    assert_int_equal(tt_kubeapi_start(&g_api), 0);
    tt_kubeapi_set_token(g_api, KUBE_TOKEN);
    for (int i = 0; i < 2; i++) {
        json_t *p = placement_pod(g_rep[i].pod);
        assert_int_equal(tt_kubeapi_put(g_api, DD_KUBE_POD, p), 0);
        json_decref(p);
    }
    json_t *n = fixture_json("k8s/node.gpu-node-a.json");
    assert_int_equal(tt_kubeapi_put(g_api, DD_KUBE_NODE, n), 0);
    json_decref(n);
    /* the pods' namespace, as the downward API sets it */
    setenv("POD_NAMESPACE", NS, 1);
    for (int i = 0; i < 2; i++)
        start_replica(i);
    start_node(0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_nodes[0].pid > 0)
        stop(&g_nodes[0], SIGTERM);
    for (int i = 0; i < 2; i++) {
        if (g_rep[i].pid > 0)
            stop(&g_rep[i], SIGTERM);
    }
    tt_kubeapi_stop(g_api);
    tt_rmtree(g_root);
    free(g_root);
    free(g_token_file);
    free(g_kube_token_file);
    free(g_replay);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_leader),
        cmocka_unit_test(test_conflict_retried),
        cmocka_unit_test(test_handover_warm),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
