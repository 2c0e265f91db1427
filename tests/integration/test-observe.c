/*
 * Pod outcomes end to end: a real node-role dedupd samples a fake cgroup v2
 * tree (--cgroup-root; a replay source, so each interval is the replay's
 * 10 s whatever the pacing), watches its own pods on the loopback test API
 * server (tests/kubeapi.h; a pod of another node is there too), and POSTs
 * each outcome to a loopback receiver (the REST server, recording bodies).
 *
 * Two pods run and end: one OOMKilled (systemd driver, a ReplicaSet of a
 * Deployment, memory.peak present), one Completed (cgroupfs driver, a Job,
 * no memory.peak); a third pod cgroup is garbled (skipped, counted, no
 * crash). Checked: peak cores from the cpu.stat deltas over the replay's
 * interval, the working set without inactive file pages (and kept at its
 * peak), memory.peak counting only for the OOM kill, bytes -> MB/s over
 * the run the pod status gives, exit code and reason, the owner with the
 * pod-template hash stripped, requests and limits as quantity strings; then
 * the node's store holds both outcomes under their pod UIDs.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/http/http.h"
#include "dedupd/store/store.h"
#include "helpers.h"
#include "kubeapi.h"

#define NODE  "obs-node-7"
#define UID_A "5a1d0c3e-7f00-4e1b-9a55-0d3c2b1a0f01"
#define DIR_A                                                                                      \
    "kubepods.slice/kubepods-burstable.slice/"                                                     \
    "kubepods-burstable-pod5a1d0c3e_7f00_4e1b_9a55_0d3c2b1a0f01.slice"
#define UID_B "c0ffee00-1234-4abc-8def-00000000b0b0"
#define DIR_B "kubepods/besteffort/podc0ffee00-1234-4abc-8def-00000000b0b0"
#define DIR_Z "kubepods/burstable/pod99999999-0000-0000-0000-00000000dead"

static char *g_root, *g_cg;
static pid_t g_pid; /* the daemon, killed whatever happens */

/* ---- the receiver ---- */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *g_bodies; /* outcomes received */

static int h_obs(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    json_t *doc = dd_http_body_json(req, resp);
    (void)ctx;
    if (!doc)
        return 0;
    pthread_mutex_lock(&g_lock);
    json_array_append_new(g_bodies, doc);
    pthread_mutex_unlock(&g_lock);
    return dd_http_reply_json(resp, 200, json_pack("{s:b}", "stored", 1));
}

static int h_reports(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, json_pack("{s:b}", "accepted", 1));
}

static json_t *received(const char *uid)
{
    json_t *r = NULL, *b;
    size_t i;
    pthread_mutex_lock(&g_lock);
    json_array_foreach(g_bodies, i, b)
    {
        const char *u = json_string_value(json_object_get(b, "pod_uid"));
        if (u && strcmp(u, uid) == 0)
            r = json_incref(b);
    }
    pthread_mutex_unlock(&g_lock);
    return r;
}

/* ---- the fake cgroup tree: files replaced atomically (a sample never
 * reads half a file) ---- */

static void put(const char *dir, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put(const char *dir, const char *file, const char *fmt, ...)
{
    char text[1024], path[2048], tmp[2100], cmd[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", g_cg, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/%s/%s", g_cg, dir, file);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    tt_write_file(tmp, text, strlen(text));
    assert_int_equal(rename(tmp, path), 0);
}

static void cpu(const char *dir, unsigned long long usec)
{
    put(dir, "cpu.stat", "usage_usec %llu\nuser_usec %llu\nsystem_usec 0\n", usec, usec);
}

static void mem(const char *dir, unsigned long long cur, unsigned long long inactive)
{
    put(dir, "memory.stat", "anon 4096\nfile 8192\nactive_file 0\ninactive_file %llu\n", inactive);
    put(dir, "memory.current", "%llu\n", cur);
}

/* ---- the pods ---- */

static char *rfc3339(time_t t)
{
    char *s = malloc(32);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return s;
}

static json_t *pod_a(const char *status)
{
    char text[4096];
    snprintf(
        text, sizeof(text),
        "{\"metadata\":{\"name\":\"trainer-6b7f8c9d54-q8z2m\",\"namespace\":\"vision\","
        "\"uid\":\"" UID_A "\",\"labels\":{\"pod-template-hash\":\"6b7f8c9d54\"},"
        "\"annotations\":{\"dedupd.io/framework\":\"pytorch\",\"dedupd.io/workload\":"
        "\"training\"},\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":"
        "\"ReplicaSet\",\"name\":\"trainer-6b7f8c9d54\",\"uid\":\"rs-1\",\"controller\":true}]},"
        "\"spec\":{\"nodeName\":\"" NODE "\",\"containers\":[{\"name\":\"train\",\"image\":"
        "\"pytorch/pytorch:2.3\",\"resources\":{\"requests\":{\"cpu\":\"2\",\"memory\":"
        "\"1Gi\"},\"limits\":{\"cpu\":\"3500m\",\"memory\":\"2Gi\"}}}]},\"status\":%s}",
        status);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("pod a: %s", je.text);
    return j;
}

static json_t *pod_b(const char *status)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"metadata\":{\"name\":\"etl-29012345-x7k2p\",\"namespace\":\"data\","
             "\"uid\":\"" UID_B "\",\"ownerReferences\":[{\"kind\":\"Job\",\"name\":"
             "\"etl-29012345\",\"controller\":true}]},"
             "\"spec\":{\"nodeName\":\"" NODE "\",\"containers\":[{\"name\":\"etl\"}]},"
             "\"status\":%s}",
             status);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("pod b: %s", je.text);
    return j;
}

/* ---- the daemon ---- */

static json_t *get_json(unsigned port, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct tt_reply r = tt_http(url, "GET", NULL, 0, 5);
    json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    free(r.body);
    return j;
}

static char *get_text(unsigned port, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct tt_reply r = tt_http(url, "GET", NULL, 0, 5);
    if (r.status != 200) {
        free(r.body);
        return NULL;
    }
    return r.body;
}

/* A pod of the node document's latest scan, or NULL. */
static json_t *node_pod(unsigned port, const char *uid)
{
    json_t *doc = get_json(port, "/v1/node"), *p, *r = NULL;
    size_t i;
    json_array_foreach(json_object_get(json_object_get(doc, "pods"), "pods"), i, p)
    {
        const char *u = json_string_value(json_object_get(p, "uid"));
        if (u && strcmp(u, uid) == 0)
            r = json_incref(p);
    }
    json_decref(doc);
    return r;
}

/* Polls until the node's scan shows the pod with that CPU time and memory
 * (both at once: the files of one step were all written). */
static void wait_seen(unsigned port, const char *uid, double cpu_s, double mem_bytes,
                      const char *log)
{
    for (int i = 0; i < 600; i++) {
        json_t *p = node_pod(port, uid);
        bool ok = p &&
                  fabs(json_number_value(json_object_get(p, "cpu_usage_seconds")) - cpu_s) < 1e-6 &&
                  json_number_value(json_object_get(p, "memory_current_bytes")) == mem_bytes;
        json_decref(p);
        if (ok)
            return;
        usleep(50 * 1000);
    }
    char *l = tt_read_text(log);
    fail_msg("the node never sampled pod %s at %.0f CPU s, %.0f bytes; log:\n%s", uid, cpu_s,
             mem_bytes, l);
}

static double metric(unsigned port, const char *line_prefix)
{
    char *m = get_text(port, "/metrics"), *p, want[256];
    double v = -1;
    snprintf(want, sizeof(want), "\n%s", line_prefix); /* a sample line, not # HELP */
    if (m && (p = strstr(m, want)))
        v = strtod(p + strlen(want), NULL);
    if (getenv("OBS_DEBUG") && m)
        tt_write_file(getenv("OBS_DEBUG"), m, strlen(m));
    free(m);
    return v;
}

struct obs_seen {
    size_t n;
    char ids[4][128];
};

static int obs_cb(void *ud, uint64_t ts, const char *id, size_t id_len, const void *value,
                  size_t len)
{
    struct obs_seen *s = ud;
    (void)ts;
    (void)value;
    (void)len;
    if (s->n < 4)
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%.*s", (int)id_len, id);
    s->n++;
    return 0;
}

static void test_outcomes(void **state)
{
    struct tt_kubeapi *api;
    struct dd_http_server *srv;
    char err[256], wl[1200], replay[1200], spec[1300], listen_recv[64], placement[128], log[1300],
        data[1200];
    (void)state;

    g_root = tt_tmpdir();
    g_cg = tt_path(g_root, "cgroup");
    g_bodies = json_array();
    snprintf(wl, sizeof(wl), "%s/workload.json", g_root);
    snprintf(replay, sizeof(replay), "%s/replay", g_root);
    snprintf(spec, sizeof(spec), "replay:%s", replay);
    snprintf(log, sizeof(log), "%s/dedupd.log", g_root);
    snprintf(data, sizeof(data), "%s/data", g_root);
    tt_random_workload(wl, 1, 400, 8, 4242);
    tt_vdo_sim(wl, 400, 7, replay);

    /* the tree before the daemon: two pods running, one garbled */
    cpu(DIR_A, 1000000);
    mem(DIR_A, 600ull << 20, 200ull << 20);
    put(DIR_A, "memory.peak", "%llu\n", 3ull << 30);
    put(DIR_A, "io.stat", "259:0 rbytes=0 wbytes=0 rios=0 wios=0\n");
    cpu(DIR_B, 0);
    mem(DIR_B, 100ull << 20, 0);
    put(DIR_B, "io.stat", "8:0 rbytes=0 wbytes=0 rios=0 wios=0\n");
    put(DIR_Z, "cpu.stat", "usage_usec twelve\n");

    time_t t0 = time(NULL) - 300;
    char *start = rfc3339(t0), *fin = rfc3339(t0 + 100), status[1024];
    assert_int_equal(tt_kubeapi_start(&api), 0);
    snprintf(status, sizeof(status),
             "{\"phase\":\"Running\",\"startTime\":\"%s\",\"containerStatuses\":[{\"name\":"
             "\"train\",\"state\":{\"running\":{\"startedAt\":\"%s\"}}}]}",
             start, start);
    json_t *a = pod_a(status), *b = pod_b(status);
    assert_int_equal(tt_kubeapi_put(api, DD_KUBE_POD, a), 0);
    assert_int_equal(tt_kubeapi_put(api, DD_KUBE_POD, b), 0);
    json_decref(a);
    json_decref(b);
    /* another node's pod with the same owner: never this node's business */
    json_t *other = json_loads("{\"metadata\":{\"name\":\"x\",\"namespace\":\"vision\",\"uid\":"
                               "\"other-1\"},\"spec\":{\"nodeName\":\"elsewhere\"}}",
                               0, NULL);
    assert_int_equal(tt_kubeapi_put(api, DD_KUBE_POD, other), 0);
    json_decref(other);

    struct dd_http_route routes[] = {
        {"POST", "/v1/observations", h_obs, NULL, false, NULL, 0},
        {"POST", "/v1/reports", h_reports, NULL, false, NULL, 0},
    };
    struct dd_http_config hc = {.listen = "127.0.0.1:0", .threads = 2};
    assert_int_equal(dd_http_start(&hc, routes, 2, &srv, err, sizeof(err)), 0);
    snprintf(listen_recv, sizeof(listen_recv), "127.0.0.1:%u", dd_http_port(srv));
    snprintf(placement, sizeof(placement), "http://%s", listen_recv);

    const char *argv[] = {tt_bin("dedupd"),
                          "--role",
                          "node",
                          "--listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          data,
                          "--source",
                          spec,
                          "--proc-root",
                          "/nonexistent-proc",
                          "--interval",
                          "0.1",
                          "--node-name",
                          NODE,
                          "--cgroup-root",
                          g_cg,
                          "--kube-api",
                          tt_kubeapi_url(api),
                          "--placement-url",
                          placement,
                          "--log-level",
                          "debug",
                          NULL};
    char proc[1300];
    snprintf(proc, sizeof(proc), "%s/proc", replay);
    argv[10] = proc;
    pid_t pid = g_pid = tt_daemon_fork(argv, log);
    unsigned port = tt_daemon_port(log, 1200);
    if (!port) {
        char *l = tt_read_text(log);
        fail_msg("dedupd did not start:\n%s", l);
    }

    /* both pods seen once, the garbled one skipped */
    wait_seen(port, UID_A, 1.0, (double)(600ull << 20), log);
    wait_seen(port, UID_B, 0.0, (double)(100ull << 20), log);
    assert_true(metric(port, "dedupd_pod_cgroups_skipped_total ") >= 1);
    assert_true(metric(port, "dedupd_pods_observed ") == 2);

    /* they work: A 25 CPU s in one replay interval (10 s) = 2.5 cores, its
     * working set 1.5 GiB - 0.5 GiB inactive = 1 GiB; B 5 CPU s */
    cpu(DIR_A, 26000000);
    mem(DIR_A, 1536ull << 20, 512ull << 20);
    put(DIR_A, "io.stat", "259:0 rbytes=3000000000 wbytes=1000000000 rios=9 wios=9\n");
    cpu(DIR_B, 5000000);
    mem(DIR_B, 900ull << 20, 600ull << 20);
    put(DIR_B, "io.stat",
        "8:0 rbytes=500000000 wbytes=0 rios=1 wios=0\n"
        "8:16 rbytes=0 wbytes=200000000 rios=0 wios=1\n");
    wait_seen(port, UID_A, 26.0, (double)(1536ull << 20), log);
    wait_seen(port, UID_B, 5.0, (double)(900ull << 20), log);
    /* then less: the peaks stay */
    cpu(DIR_A, 27000000);
    mem(DIR_A, 700ull << 20, 100ull << 20);
    mem(DIR_B, 200ull << 20, 100ull << 20);
    wait_seen(port, UID_A, 27.0, (double)(700ull << 20), log);
    wait_seen(port, UID_B, 5.0, (double)(200ull << 20), log);

    /* they end: A OOMKilled, B Completed; then the cgroups go */
    snprintf(status, sizeof(status),
             "{\"phase\":\"Failed\",\"startTime\":\"%s\",\"containerStatuses\":[{\"name\":"
             "\"train\",\"state\":{\"terminated\":{\"exitCode\":137,\"reason\":\"OOMKilled\","
             "\"startedAt\":\"%s\",\"finishedAt\":\"%s\"}}}]}",
             start, start, fin);
    a = pod_a(status);
    assert_int_equal(tt_kubeapi_put(api, DD_KUBE_POD, a), 0);
    json_decref(a);
    snprintf(status, sizeof(status),
             "{\"phase\":\"Succeeded\",\"startTime\":\"%s\",\"containerStatuses\":[{\"name\":"
             "\"etl\",\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\","
             "\"finishedAt\":\"%s\"}}}]}",
             start, fin);
    b = pod_b(status);
    assert_int_equal(tt_kubeapi_put(api, DD_KUBE_POD, b), 0);
    json_decref(b);
    char *d = tt_path(g_cg, DIR_A);
    tt_rmtree(d);
    free(d);
    d = tt_path(g_cg, DIR_B);
    tt_rmtree(d);
    free(d);

    json_t *oa = NULL, *ob = NULL;
    for (int i = 0; i < 600 && !(oa && ob); i++) {
        if (!oa)
            oa = received(UID_A);
        if (!ob)
            ob = received(UID_B);
        if (!(oa && ob))
            usleep(50 * 1000);
    }
    if (!oa || !ob) {
        char *l = tt_read_text(log);
        fail_msg("outcomes not received (a %p, b %p); log:\n%s", (void *)oa, (void *)ob, l);
    }

    /* A */
    assert_string_equal(json_string_value(json_object_get(oa, "namespace")), "vision");
    assert_string_equal(json_string_value(json_object_get(json_object_get(oa, "owner"), "kind")),
                        "Deployment");
    assert_string_equal(json_string_value(json_object_get(json_object_get(oa, "owner"), "name")),
                        "trainer");
    assert_string_equal(json_string_value(json_object_get(json_object_get(oa, "annotations"),
                                                          "dedupd.io/workload")),
                        "training");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(oa, "requests"), "memory")),
        "1073741824");
    assert_string_equal(json_string_value(json_object_get(json_object_get(oa, "requests"), "cpu")),
                        "2");
    assert_string_equal(json_string_value(json_object_get(json_object_get(oa, "limits"), "cpu")),
                        "3500m");
    assert_string_equal(json_string_value(json_object_get(oa, "node")), NODE);
    assert_true(json_number_value(json_object_get(oa, "started_at")) == (double)t0);
    assert_true(json_number_value(json_object_get(oa, "finished_at")) == (double)(t0 + 100));
    assert_true(fabs(json_number_value(json_object_get(oa, "peak_cpu_cores")) - 2.5) < 1e-9);
    /* OOMKilled: memory.peak (3 GiB) over the 1 GiB working set */
    assert_true(json_number_value(json_object_get(oa, "peak_memory_bytes")) ==
                (double)(3ull << 30));
    assert_true(fabs(json_number_value(json_object_get(oa, "read_mbps")) - 30.0) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(oa, "write_mbps")) - 10.0) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(oa, "exit_code")), 137);
    assert_string_equal(json_string_value(json_object_get(oa, "reason")), "OOMKilled");
    assert_null(json_object_get(oa, "gpu_memory_bytes"));

    /* B: the working set without inactive file pages, at its peak */
    assert_string_equal(json_string_value(json_object_get(ob, "namespace")), "data");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ob, "owner"), "kind")),
                        "Job");
    assert_true(json_number_value(json_object_get(ob, "peak_memory_bytes")) ==
                (double)(300ull << 20));
    assert_true(fabs(json_number_value(json_object_get(ob, "peak_cpu_cores")) - 0.5) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(ob, "read_mbps")) - 5.0) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(ob, "write_mbps")) - 2.0) < 1e-9);
    assert_int_equal(json_integer_value(json_object_get(ob, "exit_code")), 0);
    assert_string_equal(json_string_value(json_object_get(ob, "reason")), "Completed");
    assert_int_equal(json_object_size(json_object_get(ob, "requests")), 0);
    json_decref(oa);
    json_decref(ob);
    assert_true(metric(port, "dedupd_pod_outcomes_posted_total ") == 2);
    pthread_mutex_lock(&g_lock);
    assert_int_equal(json_array_size(g_bodies), 2); /* once each, the other node's never */
    pthread_mutex_unlock(&g_lock);

    /* the store has both, keyed by pod UID */
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    g_pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct dd_store *store;
    struct dd_store_options so;
    dd_store_options_init(&so);
    assert_int_equal(dd_store_open(data, &so, &store, err, sizeof(err)), 0);
    struct obs_seen seen = {0};
    assert_true(dd_store_query_observations(store, 0, UINT64_MAX / 2, 100, obs_cb, &seen, NULL) >=
                0);
    dd_store_free(store);
    assert_int_equal(seen.n, 2);
    assert_true((strcmp(seen.ids[0], UID_A) == 0 && strcmp(seen.ids[1], UID_B) == 0) ||
                (strcmp(seen.ids[0], UID_B) == 0 && strcmp(seen.ids[1], UID_A) == 0));

    dd_http_stop(srv);
    tt_kubeapi_stop(api);
    free(start);
    free(fin);
    json_decref(g_bodies);
    tt_rmtree(g_root);
    free(g_cg);
    free(g_root);
}

static int teardown(void **state)
{
    (void)state;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        waitpid(g_pid, NULL, 0);
    }
    g_pid = 0;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_outcomes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
