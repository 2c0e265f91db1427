/*
 * CSIStorageCapacity publishing through a real placement daemon on
 * loopback (in-process dd_daemon with --publish-capacity) against the test
 * API server (tests/kubeapi.h, which records the writes). Node reports
 * arrive on POST /v1/reports. Checked: one object per (node x class of
 * ours), values equal to GET /v1/csi/capacity for that node's segment,
 * labels, owner reference; an orphan of ours deleted, another manager's
 * object left alone; a move under the threshold not written; a move over
 * it written (through a forced 409: re-read and retried); a class removed
 * and a pool gone from a node deleted; a standby (another replica holds
 * the Lease) writes nothing; the write bucket leaves writes for later
 * passes (throttled) and they all land. And dedupd.io/estimate: a class naming a
 * completed estimate job's URL (served here by the test server at
 * /v1/estimate/ID in the node role's answer shape) or a number predicts
 * that reduction in GET /v1/csi/capacity; a running job does not yet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "dedupd/config.h"
#include "dedupd/daemon.h"
#include "dedupd/microtime.h"
#include "helpers.h"
#include "kubeapi.h"
#include "placement/report.h"
#include "reports.h"

#define GIB    1073741824.0
#define NS     "dedupd-system"
#define KEY    "topology.dedupd.io/node"
#define DEPLOY "/apis/apps/v1/namespaces/" NS "/deployments/dedupd-placement"

struct fx {
    struct tt_kubeapi *api;
    struct dd_daemon *d;
    char *dir;
    char url[64];
};

static json_t *fixture(const char *rel)
{
    size_t len;
    char *text = tt_fixture(rel, &len);
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    if (!doc)
        fail_msg("%s: %s", rel, je.text);
    free(text);
    return doc;
}

/* StorageClass vdo-dedup made ours under name, with an optional
 * expected-reduction annotation. */
static void put_class(struct fx *f, const char *name, const char *expected)
{
    json_t *o = fixture("k8s/storageclass.vdo-dedup.json"), *ann = json_object();
    json_object_set_new(ann, "dedupd.io/pool", json_string("fast"));
    if (expected)
        json_object_set_new(ann, "dedupd.io/expected-reduction", json_string(expected));
    json_object_set_new(json_object_get(o, "metadata"), "annotations", ann);
    json_object_set_new(json_object_get(o, "metadata"), "name", json_string(name));
    assert_int_equal(tt_kubeapi_put(f->api, DD_KUBE_SC, o), 0);
    json_decref(o);
}

static void report(struct fx *f, const char *node, const char *pool, double free_gib,
                   double dedup_ratio)
{
    struct tt_node_report n = {.node = node,
                               .pool = pool,
                               .physical_gib = 4000,
                               .physical_free_gib = free_gib,
                               .logical_gib = 40000,
                               .logical_free_gib = 30000,
                               .dedup_ratio = dedup_ratio};
    long st = tt_node_report_post(f->url, &n);
    if (st != 200 && st != 202 && st != 204)
        fail_msg("report %s: %ld", node, st);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long get_text(struct fx *f, const char *path, char **body)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    struct tt_reply rep = tt_http(url, "GET", NULL, 0, 10);
    *body = rep.body;
    return rep.status;
}

/* A counter or gauge of /metrics (-1 when absent). */
static double metric(struct fx *f, const char *name)
{
    char *text = NULL, pat[200];
    double v = -1;
    if (get_text(f, "/metrics", &text) == 200) {
        snprintf(pat, sizeof(pat), "\n%s ", name);
        const char *p = strstr(text, pat);
        if (p)
            v = strtod(p + strlen(pat), NULL);
    }
    free(text);
    return v;
}

/* Waits until the publisher has run n more passes (fails after 20 s). */
static void passes(struct fx *f, int n)
{
    double start = metric(f, "dedupd_capacity_publish_passes_total");
    for (int i = 0; i < 800; i++) {
        if (metric(f, "dedupd_capacity_publish_passes_total") >= start + n)
            return;
        sleep_ms(25);
    }
    fail_msg("the publisher did not run %d passes in 20 s", n);
}

/* GET /v1/csi/capacity for node's segment: available and maximum; false
 * while it does not answer 200 (the cache may not hold the class yet). */
static bool capacity(struct fx *f, const char *cls, const char *node, int64_t *avail, int64_t *max)
{
    char path[512], *body = NULL;
    snprintf(path, sizeof(path),
             "/v1/csi/capacity?storage_class=%s&segment=topology.dedupd.io%%2Fnode%%3D%s", cls,
             node);
    long st = get_text(f, path, &body);
    json_t *doc = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    const char *av = json_string_value(json_object_get(doc, "availableCapacity"));
    const char *mx = json_string_value(json_object_get(doc, "maximumVolumeSize"));
    bool ok = av && mx;
    if (ok) {
        *avail = strtoll(av, NULL, 10);
        *max = strtoll(mx, NULL, 10);
    }
    json_decref(doc);
    free(body);
    return ok;
}

/* Our object for (node, class), a new reference, or NULL. */
static json_t *find(struct fx *f, const char *node, const char *cls)
{
    json_t *all = tt_kubeapi_cscs(f->api, NS), *o, *found = NULL;
    size_t i;
    json_array_foreach(all, i, o)
    {
        const char *n = json_string_value(
            json_object_get(json_object_get(o, "nodeTopology"), "matchLabels")
                ? json_object_get(
                      json_object_get(json_object_get(o, "nodeTopology"), "matchLabels"), KEY)
                : NULL);
        const char *c = json_string_value(json_object_get(o, "storageClassName"));
        if (n && c && strcmp(n, node) == 0 && strcmp(c, cls) == 0)
            found = json_incref(o);
    }
    json_decref(all);
    return found;
}

static int64_t q(const json_t *o, const char *key)
{
    return strtoll(json_string_value(json_object_get(o, key)), NULL, 10);
}

/* Does the object for (node, class) hold what GET /v1/csi/capacity says? */
static bool matches(struct fx *f, const char *node, const char *cls)
{
    int64_t a = -1, m = -1;
    json_t *o = find(f, node, cls);
    bool ok = capacity(f, cls, node, &a, &m) && o && q(o, "capacity") == a &&
              q(o, "maximumVolumeSize") == m;
    json_decref(o);
    return ok;
}

static size_t count_ops(struct fx *f, const char *op)
{
    json_t *w = tt_kubeapi_csc_writes(f->api), *e;
    size_t i, n = 0;
    json_array_foreach(w, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "op")), op) == 0)
            n++;
    }
    json_decref(w);
    return n;
}

/* qps: --publish-capacity-qps (NULL: the default; the burst is then 1) */
static void start_qps(struct fx *f, bool standby, const char *qps)
{
    struct dd_config c;
    bool help = false;
    char err[512] = "", dd[1100];
    f->dir = tt_tmpdir();
    snprintf(dd, sizeof(dd), "%s/data", f->dir);
    const char *args[] = {"dedupd",
                          "--role",
                          "placement",
                          "--listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          dd,
                          "--kube-api",
                          tt_kubeapi_url(f->api),
                          "--stale-after",
                          "3600",
                          "--min-train-samples",
                          "100000000",
                          "--publish-capacity",
                          "--publish-capacity-interval",
                          "0.1",
                          "--publish-capacity-namespace",
                          NS,
                          "--publish-capacity-owner",
                          "Deployment/dedupd-placement",
                          "--lease-namespace",
                          NS,
                          "--pod-name",
                          "replica-1",
                          "--retry-period",
                          "0.1",
                          "--leader-elect"};
    enum { NARGS = sizeof(args) / sizeof(args[0]) };
    char bufs[NARGS + 4][1100], *argv[NARGS + 5];
    int argc = standby ? NARGS : NARGS - 1;
    for (int i = 0; i < argc; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "%s", args[i]);
        argv[i] = bufs[i];
    }
    if (qps) {
        const char *more[] = {"--publish-capacity-qps", qps, "--publish-capacity-burst", "1"};
        for (int i = 0; i < 4; i++) {
            snprintf(bufs[argc], sizeof(bufs[argc]), "%s", more[i]);
            argv[argc] = bufs[argc];
            argc++;
        }
    }
    argv[argc] = NULL;
    if (dd_config_load(argc, argv, &c, &help, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
    if (dd_daemon_start(&c, &f->d, err, sizeof(err)) < 0)
        fail_msg("daemon: %s", err);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", dd_daemon_port(f->d));
}

static void start(struct fx *f, bool standby)
{
    start_qps(f, standby, NULL);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(tt_kubeapi_start(&f->api), 0);
    json_t *dep = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "apiVersion", "apps/v1", "kind",
                            "Deployment", "metadata", "name", "dedupd-placement", "namespace", NS,
                            "uid", "0b5e1d2c-dep-uid");
    tt_kubeapi_set_object(f->api, DEPLOY, dep);
    json_decref(dep);
    json_t *n = fixture("k8s/node.gpu-node-a.json");
    assert_int_equal(tt_kubeapi_put(f->api, DD_KUBE_NODE, n), 0);
    json_decref(n);
    n = fixture("k8s/node.gpu-node-b.json");
    assert_int_equal(tt_kubeapi_put(f->api, DD_KUBE_NODE, n), 0);
    json_decref(n);
    put_class(f, "vdo-dedup", NULL);
    put_class(f, "vdo-dedup-x3", "3");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    dd_daemon_stop(f->d);
    tt_kubeapi_stop(f->api);
    if (f->dir) {
        tt_rmtree(f->dir);
        free(f->dir);
    }
    free(f);
    return 0;
}

/* Polls until cond(f) (fails after 20 s naming what). */
#define WAIT_FOR(cond, what)                                                                       \
    do {                                                                                           \
        int ok_ = 0;                                                                               \
        for (int i_ = 0; i_ < 800 && !(ok_ = (cond)); i_++)                                        \
            sleep_ms(25);                                                                          \
        if (!ok_)                                                                                  \
            fail_msg("timed out after 20 s waiting for %s", what);                                 \
    } while (0)

static size_t n_objects(struct fx *f)
{
    json_t *all = tt_kubeapi_cscs(f->api, NS);
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

static void test_publish(void **state)
{
    struct fx *f = *state;
    struct tt_kubeapi_stats st;

    /* before the daemon: an orphan of ours (another shape) and the
     * driver's own object (another manager) */
    json_t *orphan = fixture("k8s/csistoragecapacity.gpu-node-a.vdo-dedup.json");
    json_t *md = json_object_get(orphan, "metadata");
    json_object_set_new(md, "name", json_string("dedupd-csc-old"));
    json_object_set_new(md, "namespace", json_string(NS));
    json_object_set_new(json_object_get(md, "labels"), "csi.storage.k8s.io/managed-by",
                        json_string("dedupd.io"));
    assert_int_equal(tt_kubeapi_csc_put(f->api, orphan), 0);
    json_decref(orphan);
    json_t *foreign = fixture("k8s/csistoragecapacity.gpu-node-a.vdo-dedup.json");
    json_object_set_new(json_object_get(foreign, "metadata"), "namespace", json_string(NS));
    assert_int_equal(tt_kubeapi_csc_put(f->api, foreign), 0);
    json_decref(foreign);

    start(f, false);
    report(f, "gpu-node-a", "fast", 2000, 2.0);
    report(f, "gpu-node-b", "fast", 1000, 2.0);

    /* one object per (node x class), as GET /v1/csi/capacity answers */
    WAIT_FOR(n_objects(f) == 5 && matches(f, "gpu-node-a", "vdo-dedup") &&
                 matches(f, "gpu-node-b", "vdo-dedup") &&
                 matches(f, "gpu-node-a", "vdo-dedup-x3") &&
                 matches(f, "gpu-node-b", "vdo-dedup-x3"),
             "4 objects of ours beside the driver's");
    json_t *o = find(f, "gpu-node-a", "vdo-dedup");
    md = json_object_get(o, "metadata");
    json_t *labels = json_object_get(md, "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "csi.storage.k8s.io/managed-by")),
                        "dedupd.io");
    assert_string_equal(json_string_value(json_object_get(labels, "csi.storage.k8s.io/drivername")),
                        "vdo.csi.example.io");
    json_t *owner = json_array_get(json_object_get(md, "ownerReferences"), 0);
    assert_string_equal(json_string_value(json_object_get(owner, "kind")), "Deployment");
    assert_string_equal(json_string_value(json_object_get(owner, "uid")), "0b5e1d2c-dep-uid");
    assert_true(
        json_object_size(json_object_get(json_object_get(o, "nodeTopology"), "matchLabels")) == 1);
    /* 2000 GiB free x 2 */
    assert_true(q(o, "capacity") == (int64_t)(4000 * GIB));
    json_decref(o);
    json_t *all = tt_kubeapi_cscs(f->api, NS);
    bool orphan_left = false, foreign_left = false;
    size_t i;
    json_array_foreach(all, i, o)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
        orphan_left |= strcmp(name, "dedupd-csc-old") == 0;
        foreign_left |= strcmp(name, "csisc-7k2qd") == 0;
    }
    json_decref(all);
    assert_false(orphan_left);
    assert_true(foreign_left);
    assert_int_equal(count_ops(f, "create"), 4);
    assert_int_equal(count_ops(f, "delete"), 1);

    /* a move under the threshold (0.5 %): no write */
    report(f, "gpu-node-a", "fast", 2010, 2.0);
    passes(f, 5);
    assert_int_equal(count_ops(f, "update"), 0);
    assert_true(metric(f, "dedupd_capacity_publish_coalesced_total") >= 1);
    /* the API moved, the object did not */
    int64_t a = 0, m = 0;
    assert_true(capacity(f, "vdo-dedup", "gpu-node-a", &a, &m));
    assert_false(matches(f, "gpu-node-a", "vdo-dedup"));

    /* the pool's observed reduction rises 2 -> 3: written, through a 409 */
    tt_kubeapi_csc_conflicts(f->api, 1);
    report(f, "gpu-node-a", "fast", 2010, 3.0);
    WAIT_FOR(matches(f, "gpu-node-a", "vdo-dedup"), "the update of gpu-node-a / vdo-dedup");
    tt_kubeapi_stats(f->api, &st);
    assert_true(st.csc_conflicts >= 1);
    assert_true(metric(f, "dedupd_capacity_publish_conflicts_total") >= 1);
    /* the class with its own expected reduction did not move */
    assert_int_equal(count_ops(f, "update"), 1);

    /* a class goes away: its objects go */
    assert_int_equal(tt_kubeapi_delete(f->api, DD_KUBE_SC, NULL, "vdo-dedup-x3"), 0);
    WAIT_FOR(n_objects(f) == 3, "the deletion of vdo-dedup-x3's objects");
    assert_null(find(f, "gpu-node-a", "vdo-dedup-x3"));

    /* node b's pool goes away: its object goes */
    report(f, "gpu-node-b", "other", 1000, 2.0);
    WAIT_FOR(n_objects(f) == 2, "the deletion of gpu-node-b's object");
    assert_null(find(f, "gpu-node-b", "vdo-dedup"));
    o = find(f, "gpu-node-a", "vdo-dedup");
    assert_non_null(o);
    json_decref(o);
    assert_int_equal(count_ops(f, "delete"), 4);
    assert_true(metric(f, "dedupd_capacity_publish_objects") == 1);
}

static void test_standby(void **state)
{
    struct fx *f = *state;
    char now[DD_MICROTIME_LEN], url[256];
    struct timespec ts;

    /* another replica holds the Lease for an hour */
    clock_gettime(CLOCK_REALTIME, &ts);
    dd_microtime_format((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, now, sizeof(now));
    json_t *lease =
        json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:i, s:s, s:s}}", "apiVersion",
                  "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", "dedupd-placement",
                  "namespace", NS, "spec", "holderIdentity", "replica-0", "leaseDurationSeconds",
                  3600, "acquireTime", now, "renewTime", now);
    char *body = json_dumps(lease, JSON_COMPACT);
    snprintf(url, sizeof(url), "%s/apis/coordination.k8s.io/v1/namespaces/%s/leases",
             tt_kubeapi_url(f->api), NS);
    struct tt_reply rep = tt_http(url, "POST", body, strlen(body), 10);
    assert_int_equal(rep.status, 201);
    free(rep.body);
    free(body);
    json_decref(lease);

    start(f, true);
    report(f, "gpu-node-a", "fast", 2000, 2.0);
    report(f, "gpu-node-b", "fast", 1000, 2.0);
    int64_t a, m;
    WAIT_FOR(capacity(f, "vdo-dedup", "gpu-node-a", &a, &m) && a > 0,
             "the standby's view and cache");
    passes(f, 10);
    json_t *w = tt_kubeapi_csc_writes(f->api);
    assert_int_equal(json_array_size(w), 0);
    json_decref(w);
    assert_int_equal(n_objects(f), 0);
    /* not even a list: a standby does not call the API for capacities */
    json_t *reqs = tt_kubeapi_requests(f->api), *e;
    size_t i;
    json_array_foreach(reqs, i, e)
    {
        if (strstr(json_string_value(json_object_get(e, "path")), "csistoragecapacities"))
            fail_msg("the standby called %s", json_string_value(json_object_get(e, "path")));
    }
    json_decref(reqs);
    assert_true(metric(f, "dedupd_leader") == 0);
}

/* GET /v1/csi/capacity?explain=true for (class, node): a new document. */
static json_t *explain(struct fx *f, const char *cls, const char *node)
{
    char path[512], *body = NULL;
    snprintf(path, sizeof(path),
             "/v1/csi/capacity?storage_class=%s&explain=true&segment="
             "topology.dedupd.io%%2Fnode%%3D%s",
             cls, node);
    long st = get_text(f, path, &body);
    json_t *doc = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return doc;
}

static bool source_is(struct fx *f, const char *cls, const char *want, double red)
{
    json_t *d = explain(f, cls, "gpu-node-a");
    json_t *ex = json_object_get(d, "explanation");
    const char *src = json_string_value(json_object_get(ex, "reduction_source"));
    bool ok = src && strcmp(src, want) == 0 &&
              fabs(json_number_value(json_object_get(ex, "reduction")) - red) < 1e-9;
    json_decref(d);
    return ok;
}

/* Does the class's estimate_note (explain) hold what? */
static bool note_has(struct fx *f, const char *cls, const char *what)
{
    json_t *d = explain(f, cls, "gpu-node-a");
    const char *why =
        json_string_value(json_object_get(json_object_get(d, "explanation"), "estimate_note"));
    bool yes = why && strstr(why, what);
    json_decref(d);
    return yes;
}

static void put_estimate_class(struct fx *f, const char *name, const char *estimate)
{
    json_t *o = fixture("k8s/storageclass.vdo-dedup.json");
    json_object_set_new(
        json_object_get(o, "metadata"), "annotations",
        json_pack("{s:s, s:s}", "dedupd.io/pool", "fast", "dedupd.io/estimate", estimate));
    json_object_set_new(json_object_get(o, "metadata"), "name", json_string(name));
    assert_int_equal(tt_kubeapi_put(f->api, DD_KUBE_SC, o), 0);
    json_decref(o);
}

static void test_estimate(void **state)
{
    struct fx *f = *state;
    char url[256];
    /* the node role's GET /v1/estimate/{id} answers, as the test server serves them */
    json_t *done =
        json_pack("{s:i, s:s, s:I, s:I, s:{s:I, s:I, s:f, s:s}}", "id", 41, "status", "done",
                  "bytes_done", (json_int_t)4096000, "bytes_total", (json_int_t)4096000, "result",
                  "blocks_total", (json_int_t)1000, "estimated_physical_blocks", (json_int_t)250,
                  "dedup_ratio", 3.2, "mode", "exact");
    json_t *running = json_pack("{s:i, s:s, s:I, s:I}", "id", 42, "status", "running", "bytes_done",
                                (json_int_t)1, "bytes_total", (json_int_t)100);
    tt_kubeapi_set_object(f->api, "/v1/estimate/41", done);
    tt_kubeapi_set_object(f->api, "/v1/estimate/42", running);
    json_decref(done);
    json_decref(running);
    snprintf(url, sizeof(url), "%s/v1/estimate/41", tt_kubeapi_url(f->api));
    put_estimate_class(f, "vdo-est-job", url);
    snprintf(url, sizeof(url), "%s/v1/estimate/42", tt_kubeapi_url(f->api));
    put_estimate_class(f, "vdo-est-running", url);
    put_estimate_class(f, "vdo-est-number", "2.5");
    put_estimate_class(f, "vdo-est-bad", "lots");

    start(f, false);
    report(f, "gpu-node-a", "fast", 2000, 2.0);
    /* the job's figure: 1000 blocks into 250 -> 4 */
    WAIT_FOR(source_is(f, "vdo-est-job", "estimate", 4.0), "vdo-est-job predicting 4 (the job)");
    int64_t a, m;
    assert_true(capacity(f, "vdo-est-job", "gpu-node-a", &a, &m));
    assert_true(a == (int64_t)(2000 * 4 * GIB));
    WAIT_FOR(source_is(f, "vdo-est-number", "estimate", 2.5), "vdo-est-number predicting 2.5");
    /* running: the observed figure meanwhile, and why (once fetched) */
    WAIT_FOR(note_has(f, "vdo-est-running", "running"), "vdo-est-running's note");
    assert_true(source_is(f, "vdo-est-running", "observed", 2.0));
    /* malformed: ignored, said so */
    assert_true(source_is(f, "vdo-est-bad", "observed", 2.0));
    assert_true(note_has(f, "vdo-est-bad", "ignored"));
    /* the publisher writes what the rule says */
    WAIT_FOR(matches(f, "gpu-node-a", "vdo-est-job"), "the vdo-est-job object");
    assert_true(metric(f, "dedupd_estimate_refs{state=\"done\"}") == 1);
}

/* The write bucket: at 4 writes a second, burst 1, and passes every
 * 0.1 s, the 4 creates cannot go in one pass: the rest are left for later
 * passes (throttled) and all get written. */
static void test_rate_limit(void **state)
{
    struct fx *f = *state;
    start_qps(f, false, "4");
    report(f, "gpu-node-a", "fast", 2000, 2.0);
    report(f, "gpu-node-b", "fast", 1000, 2.0);
    WAIT_FOR(n_objects(f) == 4, "4 objects through the bucket");
    assert_true(metric(f, "dedupd_capacity_publish_throttled_total") >= 1);
    assert_int_equal(count_ops(f, "create"), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_standby, setup, teardown),
        cmocka_unit_test_setup_teardown(test_estimate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
