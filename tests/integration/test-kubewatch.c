/*
 * dedupd/kubewatch against the loopback test API server (tests/kubeapi):
 * one test per item of shared/reference/k8s/LIST-WATCH.md — pages with
 * continue, an expired continue token (410), chunk boundaries inside an
 * event, BOOKMARK, ERROR 410, HTTP 410 at the start of a watch, a
 * connection closed mid-event, the token re-read after 401, opaque
 * resource versions passed back verbatim — plus the periodic resync, a
 * deleted Node leaving the cluster view, a prompt stop with nothing
 * listening, and where the API server is found (flags, in-cluster, none).
 * Polls fail when they run out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/kubewatch.h"
#include "helpers.h"
#include "kubeapi.h"
#include "placement/cluster.h"
#include "placement/kube.h"

#define TOKEN1 "token-one-0123456789abcdef"
#define TOKEN2 "token-two-0123456789abcdef"

struct fx {
    struct tt_kubeapi *api;
    struct dd_kube *cache;
    struct dd_kubewatch *w;
    char *dir;
    char token_file[1024];
};

static void nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Polls cond every 20 ms for up to 30 s; fails the test naming what. */
#define WAIT_FOR(cond, what)                                                                       \
    do {                                                                                           \
        int _i;                                                                                    \
        for (_i = 0; _i < 1500 && !(cond); _i++)                                                   \
            nap_ms(20);                                                                            \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for %s", what);                                            \
    } while (0)

static json_t *pod(const char *name, const char *node)
{
    return json_pack("{s:{s:s, s:s, s:s}, s:{s:s, s:[{s:s, s:{s:{s:s}}}]}, s:{s:s}}", "metadata",
                     "name", name, "namespace", "ml", "uid", name, "spec", "nodeName", node,
                     "containers", "name", "c", "resources", "requests", "nvidia.com/gpu", "1",
                     "status", "phase", "Running");
}

static json_t *node(const char *name)
{
    return json_pack("{s:{s:s}, s:{s:{s:s}}}", "metadata", "name", name, "status", "allocatable",
                     "nvidia.com/gpu", "8");
}

static void put(struct fx *f, enum dd_kube_kind kind, json_t *o)
{
    assert_int_equal(tt_kubeapi_put(f->api, kind, o), 0);
    json_decref(o);
}

static void load(struct fx *f, enum dd_kube_kind kind, json_t *o)
{
    assert_int_equal(tt_kubeapi_load(f->api, kind, o), 0);
    json_decref(o);
}

static size_t count(struct fx *f, enum dd_kube_kind kind)
{
    size_t c[DD_KUBE_KINDS];
    dd_kube_counts(f->cache, c);
    return c[kind];
}

static struct tt_kubeapi_stats api_stats(struct fx *f)
{
    struct tt_kubeapi_stats s;
    tt_kubeapi_stats(f->api, &s);
    return s;
}

static struct dd_kubewatch_kind_stats kw_stats(struct fx *f, enum dd_kube_kind kind)
{
    struct dd_kubewatch_kind_stats s;
    dd_kubewatch_stats(f->w, kind, &s);
    return s;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(tt_kubeapi_start(&f->api), 0);
    assert_int_equal(dd_kube_new(&f->cache, NULL, 0), 0);
    f->dir = tt_tmpdir();
    snprintf(f->token_file, sizeof(f->token_file), "%s/token", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    dd_kubewatch_free(f->w);
    tt_kubeapi_stop(f->api);
    dd_kube_free(f->cache);
    tt_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Starts the watch with quick backoffs; resync_s 0 is the default. */
static void start(struct fx *f, bool token, double resync_s)
{
    struct dd_kubewatch_config c = {0};
    char err[512] = "";
    dd_kubewatch_source_resolve(tt_kubeapi_url(f->api), token ? f->token_file : NULL, NULL, NULL,
                                &c.src);
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 200;
    c.resync_s = resync_s;
    c.token_reread_s = 0.05;
    if (dd_kubewatch_new(&c, f->cache, &f->w, err, sizeof(err)) < 0)
        fail_msg("kubewatch: %s", err);
    assert_int_equal(dd_kubewatch_start(f->w), 0);
}

static void wait_synced(struct fx *f)
{
    WAIT_FOR(dd_kubewatch_synced(f->w), "every kind listed");
}

/* LIST-WATCH.md: pages with continue */
static void test_pages(void **state)
{
    struct fx *f = *state;
    char name[32];
    tt_kubeapi_set_page_size(f->api, 2);
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        load(f, DD_KUBE_NODE, node(name));
    }
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        load(f, DD_KUBE_POD, pod(name, "n1"));
    }
    start(f, false, 0);
    wait_synced(f);
    assert_int_equal(count(f, DD_KUBE_NODE), 7);
    assert_int_equal(count(f, DD_KUBE_POD), 5);
    struct tt_kubeapi_stats s = api_stats(f);
    assert_int_equal(s.lists[DD_KUBE_NODE], 1);
    assert_int_equal(s.pages[DD_KUBE_NODE], 4);
    assert_int_equal(s.pages[DD_KUBE_POD], 3);
    double alloc, req;
    assert_int_equal(dd_kube_node_gpus(f->cache, "n1", &alloc, &req), 0);
    assert_true(alloc == 8.0 && req == 5.0);
}

/* an expired continue token: 410, the list starts over */
static void test_continue_expired(void **state)
{
    struct fx *f = *state;
    char name[32];
    tt_kubeapi_set_page_size(f->api, 2);
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        load(f, DD_KUBE_NODE, node(name));
    }
    tt_kubeapi_expire_continue(f->api);
    start(f, false, 0);
    wait_synced(f);
    assert_int_equal(count(f, DD_KUBE_NODE), 7);
    struct tt_kubeapi_stats s = api_stats(f);
    assert_int_equal(s.gone, 1);
    /* one of the five kinds got the 410 and listed twice */
    unsigned long lists = 0;
    for (int k = 0; k < DD_KUBE_KINDS; k++)
        lists += s.lists[k];
    assert_int_equal(lists, DD_KUBE_KINDS + 1);
    assert_int_equal(s.lists[DD_KUBE_NODE], 2);
    assert_int_equal(kw_stats(f, DD_KUBE_NODE).lists, 1);
}

/* chunk boundaries inside an event */
static void test_split_events(void **state)
{
    struct fx *f = *state;
    char name[32];
    tt_kubeapi_set_split(f->api, 5);
    start(f, false, 0);
    wait_synced(f);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        put(f, DD_KUBE_POD, pod(name, "n1"));
    }
    WAIT_FOR(count(f, DD_KUBE_POD) == 20, "20 pods");
    struct dd_kubewatch_kind_stats s = kw_stats(f, DD_KUBE_POD);
    assert_int_equal(s.events, 20);
    assert_int_equal(s.watch_errors, 0);
    assert_int_equal(s.refused, 0);
    struct dd_kube_pod out;
    assert_int_equal(dd_kube_pod_lookup(f->cache, "ml", "p19", &out), 0);
    assert_string_equal(out.node, "n1");
}

/* BOOKMARK: the version moves, nothing else */
static void test_bookmark(void **state)
{
    struct fx *f = *state;
    char rv[64];
    start(f, false, 0);
    wait_synced(f);
    put(f, DD_KUBE_POD, pod("a", "n1"));
    WAIT_FOR(count(f, DD_KUBE_POD) == 1, "pod a");
    tt_kubeapi_bookmark(f->api, DD_KUBE_POD);
    tt_kubeapi_rv(f->api, rv, sizeof(rv));
    WAIT_FOR(kw_stats(f, DD_KUBE_POD).bookmarks == 1, "the bookmark");
    struct dd_kubewatch_kind_stats s = kw_stats(f, DD_KUBE_POD);
    assert_string_equal(s.rv, rv);
    assert_int_equal(s.events, 1);
    assert_int_equal(count(f, DD_KUBE_POD), 1);
    assert_true(api_stats(f).bookmarks_asked >= DD_KUBE_KINDS);
}

/* ERROR 410 in the stream: relist, then watch again */
static void test_error_410(void **state)
{
    struct fx *f = *state;
    start(f, false, 0);
    wait_synced(f);
    tt_kubeapi_error_410(f->api, DD_KUBE_POD);
    WAIT_FOR(api_stats(f).lists[DD_KUBE_POD] == 2, "a relist of pods");
    WAIT_FOR(kw_stats(f, DD_KUBE_POD).lists == 2, "the relist to complete");
    put(f, DD_KUBE_POD, pod("after", "n2"));
    WAIT_FOR(count(f, DD_KUBE_POD) == 1, "the pod put after the relist");
    assert_int_equal(api_stats(f).lists[DD_KUBE_NODE], 1);
}

/* HTTP 410 at the start of a watch (compacted history): relist */
static void test_http_410(void **state)
{
    struct fx *f = *state;
    start(f, false, 0);
    wait_synced(f);
    put(f, DD_KUBE_NODE, node("n1"));
    WAIT_FOR(count(f, DD_KUBE_NODE) == 1, "node n1");
    put(f, DD_KUBE_NODE, node("n2"));
    tt_kubeapi_compact(f->api);
    WAIT_FOR(count(f, DD_KUBE_NODE) == 2, "node n2");
    /* the watch of pods still points before the compaction */
    tt_kubeapi_end_watches(f->api, DD_KUBE_POD);
    WAIT_FOR(api_stats(f).gone >= 1, "a 410 answer");
    WAIT_FOR(kw_stats(f, DD_KUBE_POD).lists == 2, "a relist of pods");
    put(f, DD_KUBE_POD, pod("after", "n2"));
    WAIT_FOR(count(f, DD_KUBE_POD) == 1, "the pod put after the relist");
}

/* the connection closes in the middle of an event: reconnect from the
 * last version, the event comes again, whole */
static void test_cut_mid_event(void **state)
{
    struct fx *f = *state;
    start(f, false, 0);
    wait_synced(f);
    put(f, DD_KUBE_POD, pod("a", "n1"));
    WAIT_FOR(count(f, DD_KUBE_POD) == 1, "pod a");
    tt_kubeapi_cut_next_event(f->api, DD_KUBE_POD);
    put(f, DD_KUBE_POD, pod("b", "n1"));
    WAIT_FOR(count(f, DD_KUBE_POD) == 2, "pod b after the reconnect");
    struct dd_kubewatch_kind_stats s = kw_stats(f, DD_KUBE_POD);
    assert_true(s.watch_errors >= 1);
    assert_int_equal(s.refused, 0);
    assert_int_equal(s.events, 2);
    assert_true(api_stats(f).watches[DD_KUBE_POD] >= 2);
    assert_int_equal(api_stats(f).lists[DD_KUBE_POD], 1);
}

/* 401: the token is re-read, and the new one works */
static void test_token_401(void **state)
{
    struct fx *f = *state;
    tt_write_file(f->token_file, TOKEN1 "\n", strlen(TOKEN1) + 1);
    tt_kubeapi_set_token(f->api, TOKEN1);
    start(f, true, 0);
    wait_synced(f);
    assert_int_equal(api_stats(f).unauthorized, 0);
    /* the server rotates to a new token; the watch reconnects with the old */
    tt_kubeapi_set_token(f->api, TOKEN2);
    tt_kubeapi_end_watches(f->api, DD_KUBE_POD);
    WAIT_FOR(kw_stats(f, DD_KUBE_POD).unauthorized >= 1, "a 401");
    put(f, DD_KUBE_POD, pod("a", "n1"));
    /* the kubelet writes the new token into the file */
    tt_write_file(f->token_file, TOKEN2 "\n", strlen(TOKEN2) + 1);
    WAIT_FOR(count(f, DD_KUBE_POD) == 1, "pod a with the new token");
    assert_int_equal(api_stats(f).lists[DD_KUBE_POD], 1);
}

/* resource versions are opaque: passed back as they came, never
 * compared; a reconnect resumes without a relist */
static void test_opaque_rv(void **state)
{
    struct fx *f = *state;
    char rv[64];
    start(f, false, 0);
    wait_synced(f);
    for (int round = 0; round < 3; round++) {
        char name[32];
        snprintf(name, sizeof(name), "p%d", round);
        put(f, DD_KUBE_POD, pod(name, "n1"));
        WAIT_FOR(count(f, DD_KUBE_POD) == (size_t)round + 1, "the pod of the round");
        tt_kubeapi_end_watches(f->api, DD_KUBE_POD);
    }
    tt_kubeapi_rv(f->api, rv, sizeof(rv));
    assert_non_null(strstr(rv, ".q")); /* not a number */
    assert_string_equal(kw_stats(f, DD_KUBE_POD).rv, rv);
    WAIT_FOR(api_stats(f).watches[DD_KUBE_POD] >= 4, "the watches after each end");
    assert_int_equal(api_stats(f).gone, 0);
    assert_int_equal(api_stats(f).lists[DD_KUBE_POD], 1);
}

/* the periodic resync relists even when nothing fails */
static void test_resync(void **state)
{
    struct fx *f = *state;
    start(f, false, 0.3);
    wait_synced(f);
    WAIT_FOR(kw_stats(f, DD_KUBE_SC).lists >= 3, "two resyncs");
    assert_int_equal(api_stats(f).gone, 0);
}

/* a Node deleted from Kubernetes leaves the cluster view (the daemon's
 * hook, here on a view of our own) */
static void on_node_deleted(void *ctx, const char *name)
{
    dd_cluster_remove(ctx, name);
}

static bool in_view(struct dd_cluster *c, const char *name)
{
    struct dd_cluster_snapshot *s = dd_cluster_snapshot(c);
    bool there = dd_cluster_find(s, name) != NULL;
    dd_cluster_snapshot_free(s);
    return there;
}

static void test_node_deleted(void **state)
{
    struct fx *f = *state;
    struct dd_cluster_options o = {0, 3600};
    struct dd_cluster *c;
    struct dd_report r;
    assert_int_equal(dd_cluster_new(&o, &c), 0);
    assert_int_equal(dd_report_alloc(&r, 0, 0, 0), 0);
    snprintf(r.node, sizeof(r.node), "gpu-a");
    r.interval_s = 10;
    r.time_ms = 1700000000000;
    assert_int_equal(dd_cluster_put(c, &r, 1700000000500), 0);
    struct dd_kube_hooks h = {.ctx = c, .node_deleted = on_node_deleted};
    dd_kube_set_hooks(f->cache, &h);
    load(f, DD_KUBE_NODE, node("gpu-a"));
    start(f, false, 0);
    wait_synced(f);
    assert_true(dd_kube_node_known(f->cache, "gpu-a"));
    assert_true(in_view(c, "gpu-a"));
    assert_int_equal(tt_kubeapi_delete(f->api, DD_KUBE_NODE, NULL, "gpu-a"), 0);
    WAIT_FOR(!in_view(c, "gpu-a"), "gpu-a to leave the cluster view");
    assert_false(dd_kube_node_known(f->cache, "gpu-a"));
    f->w = dd_kubewatch_free(f->w); /* before the view it calls into */
    dd_cluster_free(c);
}

/* nothing listening: the threads back off, and stopping does not wait */
static void test_stop_unreachable(void **state)
{
    struct fx *f = *state;
    struct dd_kubewatch_config c = {0};
    char err[512];
    (void)state;
    dd_kubewatch_source_resolve("http://127.0.0.1:1", NULL, NULL, NULL, &c.src);
    c.backoff_min_ms = 20;
    c.backoff_max_ms = 60000;
    assert_int_equal(dd_kubewatch_new(&c, f->cache, &f->w, err, sizeof(err)), 0);
    assert_int_equal(dd_kubewatch_start(f->w), 0);
    WAIT_FOR(kw_stats(f, DD_KUBE_POD).watch_errors >= 3, "three failed lists");
    assert_non_null(strstr(kw_stats(f, DD_KUBE_POD).last_error, "127.0.0.1:1"));
    assert_false(dd_kubewatch_synced(f->w));
    f->w = dd_kubewatch_free(f->w);
}

/* a watch that is idle is cancelled at stop, not at its timeout */
static void test_stop_idle_watch(void **state)
{
    struct fx *f = *state;
    start(f, false, 0);
    wait_synced(f);
    WAIT_FOR(api_stats(f).open_watches[DD_KUBE_POD] == 1, "an open pod watch");
    f->w = dd_kubewatch_free(f->w);
    WAIT_FOR(api_stats(f).open_watches[DD_KUBE_POD] == 0, "the watch to close");
}

static void test_source(void **state)
{
    struct dd_kube_source s;
    (void)state;
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    dd_kubewatch_source_resolve(NULL, NULL, NULL, NULL, &s);
    assert_string_equal(s.describe, "none");
    assert_string_equal(s.url, "");
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    dd_kubewatch_source_resolve("", NULL, NULL, "/sa", &s);
    assert_string_equal(s.describe, "in-cluster");
    assert_string_equal(s.url, "https://10.96.0.1:443");
    assert_string_equal(s.token_file, "/sa/token");
    assert_string_equal(s.ca_file, "/sa/ca.crt");
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    dd_kubewatch_source_resolve(NULL, NULL, NULL, NULL, &s);
    assert_string_equal(s.url, "https://[fd00::1]:443");
    assert_string_equal(s.token_file, DD_KUBE_SA_DIR "/token");
    /* the flag wins over the environment */
    dd_kubewatch_source_resolve("http://127.0.0.1:8001", "/t", NULL, NULL, &s);
    assert_string_equal(s.describe, "--kube-api http://127.0.0.1:8001");
    assert_string_equal(s.token_file, "/t");
    assert_string_equal(s.ca_file, "");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bookmark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_410, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_410, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_mid_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opaque_rv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_idle_watch, setup, teardown),
        cmocka_unit_test(test_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
