/*
 * placement/kube without HTTP: Kubernetes quantities (good and bad, exact
 * values), the reference objects (tests/fixtures/k8s, the README's
 * scenario) applied and resolved pod -> claims -> class/PV -> pool and
 * node, GPU sums (limits without requests, init containers by max, MIG
 * names), generic ephemeral and truncated claims, refusals that name the
 * field and change nothing, relists that delete what they did not see
 * (hooks), the watch line splitter at every split position, and watch
 * event and list page decoding.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "helpers.h"
#include "placement/kube.h"

static json_t *fixture(const char *name)
{
    char rel[256];
    size_t len;
    json_error_t jerr;
    snprintf(rel, sizeof(rel), "k8s/%s", name);
    char *text = tt_fixture(rel, &len);
    json_t *o = json_loadb(text, len, 0, &jerr);
    if (!o)
        fail_msg("%s: %s", rel, jerr.text);
    free(text);
    return o;
}

static void test_quantity(void **state)
{
    static const struct {
        const char *s;
        uint64_t v, milli;
    } good[] = {
        {"0", 0, 0},
        {"1", 1, 1000},
        {"2", 2, 2000},
        {"500m", 1, 500},
        {"1500m", 2, 1500},
        {"0.5", 1, 500},
        {"+3", 3, 3000},
        {"1k", 1000, 1000000},
        {"1Ki", 1024, 1024000},
        {"500Gi", 536870912000ull, 536870912000000ull},
        {"1.5Gi", 1610612736ull, 1610612736000ull},
        {"1Ti", 1099511627776ull, 1099511627776000ull},
        {"1E", 1000000000000000000ull, 0 /* out of range below */},
        {"1e3", 1000, 1000000},
        {"5E-1", 1, 500},
        {"1054402556Ki", 1079708217344ull, 1079708217344000ull},
        {"95500m", 96, 95500},
        {"100n", 1, 1},
        {"0000000000000000000000000001", 1, 1000},
        {".5", 1, 500},
        {"5.", 5, 5000},
    };
    static const char *const bad[] = {"",   "-1",  "1x",  "Gi",   "1 Gi", "1.2.3", "e3",
                                      "1e", "1e+", "1Gb", "0x10", "nan",  "1..2",  "1KiB"};
    uint64_t v;
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(good); i++) {
        assert_int_equal(dd_kube_quantity(good[i].s, &v), 0);
        if (v != good[i].v)
            fail_msg("%s: %llu, expected %llu", good[i].s, (unsigned long long)v,
                     (unsigned long long)good[i].v);
        if (good[i].milli || strcmp(good[i].s, "0") == 0) {
            assert_int_equal(dd_kube_quantity_milli(good[i].s, &v), 0);
            if (v != good[i].milli)
                fail_msg("%s milli: %llu, expected %llu", good[i].s, (unsigned long long)v,
                         (unsigned long long)good[i].milli);
        }
    }
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        v = 77;
        if (dd_kube_quantity(bad[i], &v) != DD_E_PARSE)
            fail_msg("'%s' was not refused as malformed", bad[i]);
        assert_int_equal(v, 77);
    }
    assert_int_equal(dd_kube_quantity("1E", &v), 0);
    assert_int_equal(dd_kube_quantity_milli("1E", &v), DD_E_RANGE);
    assert_int_equal(dd_kube_quantity("16Ei", &v), DD_E_RANGE);
    assert_int_equal(dd_kube_quantity("1e400", &v), DD_E_RANGE);
    assert_int_equal(dd_kube_quantity("1e-400", &v), 0);
    assert_int_equal(v, 1);
}

struct hooklog {
    char lines[64][600];
    size_t n;
};

static void on_bound(void *ctx, const char *uid, const char *ns, const char *name, const char *node)
{
    struct hooklog *h = ctx;
    if (h->n < 64)
        snprintf(h->lines[h->n++], sizeof(h->lines[0]), "bound %s %s/%s %s", uid, ns, name, node);
}

static void on_deleted(void *ctx, const char *uid, const char *ns, const char *name,
                       const char *node)
{
    struct hooklog *h = ctx;
    if (h->n < 64)
        snprintf(h->lines[h->n++], sizeof(h->lines[0]), "deleted %s %s/%s %s", uid, ns, name, node);
}

static void on_node(void *ctx, const char *node)
{
    struct hooklog *h = ctx;
    if (h->n < 64)
        snprintf(h->lines[h->n++], sizeof(h->lines[0]), "node %s", node);
}

static void on_relisted(void *ctx, enum dd_kube_kind kind)
{
    struct hooklog *h = ctx;
    if (h->n < 64)
        snprintf(h->lines[h->n++], sizeof(h->lines[0]), "relisted %s", dd_kube_kind_name(kind));
}

static struct dd_kube *new_cache(struct hooklog *log)
{
    struct dd_kube *k;
    assert_int_equal(dd_kube_new(&k, NULL, 0), 0);
    if (log) {
        struct dd_kube_hooks h = {log, on_bound, on_deleted, on_node, NULL};
        memset(log, 0, sizeof(*log));
        dd_kube_set_hooks(k, &h);
    }
    return k;
}

static void apply_ok(struct dd_kube *k, enum dd_kube_kind kind, enum dd_kube_event ev, json_t *o)
{
    char err[256] = "";
    if (dd_kube_apply(k, kind, ev, o, err, sizeof(err)) != 0)
        fail_msg("apply %s: %s", dd_kube_kind_name(kind), err);
}

/* The scenario's objects, with the class marked ours. */
static void load_scenario(struct dd_kube *k, const char *pvc_file)
{
    json_t *sc = fixture("storageclass.vdo-dedup.json");
    json_object_set_new(json_object_get(sc, "metadata"), "annotations",
                        json_pack("{s:s}", "dedupd.io/pool", "fast"));
    apply_ok(k, DD_KUBE_SC, DD_KUBE_ADDED, sc);
    json_decref(sc);
    const char *others[] = {"node.gpu-node-a.json", "node.gpu-node-b.json", "node.gpu-node-c.json"};
    for (size_t i = 0; i < DD_ARRAY_SIZE(others); i++) {
        json_t *o = fixture(others[i]);
        apply_ok(k, DD_KUBE_NODE, DD_KUBE_ADDED, o);
        json_decref(o);
    }
    json_t *pv = fixture("pv.ckpt-trainer-0.csi-node-affinity.json");
    apply_ok(k, DD_KUBE_PV, DD_KUBE_ADDED, pv);
    json_decref(pv);
    json_t *pvc = fixture(pvc_file);
    apply_ok(k, DD_KUBE_PVC, DD_KUBE_ADDED, pvc);
    json_decref(pvc);
}

static void test_scenario(void **state)
{
    struct dd_kube_pod out;
    struct dd_kube *k = new_cache(NULL);
    char err[256] = "";
    double alloc, req;
    size_t counts[DD_KUBE_KINDS];
    (void)state;

    /* before scheduling: the claim is pending, no node */
    load_scenario(k, "pvc.ckpt-trainer-0.1-pending-before-scheduling.json");
    json_t *pod = fixture("pod.gpu-trainer.scheduled-view.json");
    assert_int_equal(dd_kube_pod_resolve(k, pod, &out, err, sizeof(err)), 0);
    assert_string_equal(out.name, "trainer-0");
    assert_string_equal(out.ns, "ml");
    assert_string_equal(out.uid, "6f1c2a9e-3b7d-4c52-9e41-0a8d7f3b2c11");
    assert_string_equal(out.node, "");
    assert_true(out.gpus == 2.0);
    assert_int_equal(out.n_claims, 2);
    assert_string_equal(out.claims[0].name, "ckpt-trainer-0");
    assert_true(out.claims[0].known && out.claims[0].ours && !out.claims[0].bound);
    assert_string_equal(out.claims[0].pool, "fast");
    assert_string_equal(out.claims[0].storage_class, "vdo-dedup");
    assert_string_equal(out.claims[0].node, "");
    assert_true(out.claims[0].request_bytes == 500ull << 30);
    assert_true(out.claims[0].read_write);
    assert_string_equal(out.claims[1].name, "imagenet-vdo");
    assert_false(out.claims[1].known);
    /* the pod is not cached: resolve does not add it */
    assert_int_equal(dd_kube_pod_lookup(k, "ml", "trainer-0", &out), -ENOENT);

    /* PreBind wrote the selected node */
    json_t *pvc = fixture("pvc.ckpt-trainer-0.2-selected-node-after-prebind.json");
    apply_ok(k, DD_KUBE_PVC, DD_KUBE_MODIFIED, pvc);
    json_decref(pvc);
    assert_int_equal(dd_kube_pod_resolve(k, pod, &out, err, sizeof(err)), 0);
    assert_string_equal(out.claims[0].node, "gpu-node-a");
    assert_false(out.claims[0].bound);

    /* bound: the PV's node affinity (topology.vdo.csi.example.io/node) */
    pvc = fixture("pvc.ckpt-trainer-0.3-bound.json");
    json_object_del(json_object_get(pvc, "metadata"), "annotations");
    apply_ok(k, DD_KUBE_PVC, DD_KUBE_MODIFIED, pvc);
    json_decref(pvc);
    assert_int_equal(dd_kube_pod_resolve(k, pod, &out, err, sizeof(err)), 0);
    assert_true(out.claims[0].bound);
    assert_string_equal(out.claims[0].node, "gpu-node-a");

    /* the pod, bound, in the cache: GPUs count on its node */
    json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("gpu-node-a"));
    apply_ok(k, DD_KUBE_POD, DD_KUBE_MODIFIED, pod);
    assert_int_equal(dd_kube_pod_lookup(k, "ml", "trainer-0", &out), 0);
    assert_string_equal(out.node, "gpu-node-a");
    assert_int_equal(dd_kube_node_gpus(k, "gpu-node-a", &alloc, &req), 0);
    assert_true(alloc == 8.0 && req == 2.0);
    assert_true(dd_kube_node_known(k, "gpu-node-b"));
    assert_false(dd_kube_node_known(k, "gpu-node-x"));
    assert_int_equal(dd_kube_node_gpus(k, "gpu-node-x", &alloc, &req), -ENOENT);
    dd_kube_counts(k, counts);
    assert_int_equal(counts[DD_KUBE_POD], 1);
    assert_int_equal(counts[DD_KUBE_PVC], 1);
    assert_int_equal(counts[DD_KUBE_PV], 1);
    assert_int_equal(counts[DD_KUBE_SC], 1);
    assert_int_equal(counts[DD_KUBE_NODE], 3);
    char pool[DD_NAME_MAX];
    assert_int_equal(dd_kube_class_pool(k, "vdo-dedup", pool, sizeof(pool)), 0);
    assert_string_equal(pool, "fast");
    assert_int_equal(dd_kube_class_pool(k, "nope", pool, sizeof(pool)), -ENOENT);

    /* terminated: no longer counts */
    json_object_set_new(json_object_get(pod, "status"), "phase", json_string("Succeeded"));
    apply_ok(k, DD_KUBE_POD, DD_KUBE_MODIFIED, pod);
    assert_int_equal(dd_kube_node_gpus(k, "gpu-node-a", &alloc, &req), 0);
    assert_true(req == 0.0);
    json_decref(pod);
    dd_kube_free(k);
}

static void test_class_not_ours(void **state)
{
    struct dd_kube *k = new_cache(NULL);
    struct dd_kube_pod out;
    char err[256], pool[DD_NAME_MAX];
    (void)state;
    json_t *sc = fixture("storageclass.vdo-dedup.json"); /* no dedupd.io/pool */
    apply_ok(k, DD_KUBE_SC, DD_KUBE_ADDED, sc);
    json_decref(sc);
    json_t *pvc = fixture("pvc.ckpt-trainer-0.3-bound.json");
    apply_ok(k, DD_KUBE_PVC, DD_KUBE_ADDED, pvc);
    json_decref(pvc);
    json_t *pod = fixture("pod.gpu-trainer.scheduled-view.json");
    assert_int_equal(dd_kube_pod_resolve(k, pod, &out, err, sizeof(err)), 0);
    assert_true(out.claims[0].known && !out.claims[0].ours && out.claims[0].pool[0] == '\0');
    assert_int_equal(dd_kube_class_pool(k, "vdo-dedup", pool, sizeof(pool)), -ENODATA);
    json_decref(pod);
    dd_kube_free(k);
}

static json_t *gpu_pod(const char *name, const char *node)
{
    return json_pack("{s:{s:s, s:s, s:s}, s:{s:s, s:[], s:[]}, s:{s:s}}", "metadata", "name", name,
                     "namespace", "ml", "uid", name, "spec", "nodeName", node, "volumes",
                     "containers", "status", "phase", "Running");
}

static void test_gpus_and_claims(void **state)
{
    struct dd_kube *k;
    struct dd_kube_pod out;
    char err[256] = "";
    const char *res[] = {"nvidia.com/gpu", "nvidia.com/mig-1g.10gb"};
    (void)state;
    assert_int_equal(dd_kube_new(&k, res, 2), 0);
    json_t *p = gpu_pod("p", "n1");
    json_t *ctrs = json_object_get(json_object_get(p, "spec"), "containers");
    /* a request, a limit without request, a MIG slice, an unrelated resource */
    json_array_append_new(
        ctrs, json_pack("{s:{s:{s:s}}}", "resources", "requests", "nvidia.com/gpu", "1"));
    json_array_append_new(ctrs,
                          json_pack("{s:{s:{s:s}}}", "resources", "limits", "nvidia.com/gpu", "2"));
    json_array_append_new(ctrs, json_pack("{s:{s:{s:s, s:s}}}", "resources", "requests",
                                          "nvidia.com/mig-1g.10gb", "3", "cpu", "500m"));
    json_object_set_new(
        json_object_get(p, "spec"), "initContainers",
        json_pack("[{s:{s:{s:s}}}]", "resources", "requests", "nvidia.com/gpu", "4"));
    assert_int_equal(dd_kube_pod_resolve(k, p, &out, err, sizeof(err)), 0);
    assert_true(out.gpus == 6.0); /* max(1+2+3, 4) */
    json_object_set_new(
        json_object_get(p, "spec"), "initContainers",
        json_pack("[{s:{s:{s:s}}}]", "resources", "requests", "nvidia.com/gpu", "7"));
    assert_int_equal(dd_kube_pod_resolve(k, p, &out, err, sizeof(err)), 0);
    assert_true(out.gpus == 7.0);

    /* claims: PVC, generic ephemeral, plain volumes skipped, and truncation */
    json_t *vols = json_object_get(json_object_get(p, "spec"), "volumes");
    json_array_append_new(vols, json_pack("{s:s, s:{s:s}}", "name", "a", "persistentVolumeClaim",
                                          "claimName", "data"));
    json_array_append_new(vols, json_pack("{s:s, s:{}}", "name", "scratch", "ephemeral"));
    json_array_append_new(vols, json_pack("{s:s, s:{}}", "name", "tmp", "emptyDir"));
    assert_int_equal(dd_kube_pod_resolve(k, p, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n_claims, 2);
    assert_string_equal(out.claims[1].name, "p-scratch");
    assert_true(out.claims[1].ephemeral);
    for (int i = 0; i < 20; i++)
        json_array_append_new(vols, json_pack("{s:s, s:{s:s}}", "name", "x",
                                              "persistentVolumeClaim", "claimName", "c"));
    assert_int_equal(dd_kube_pod_resolve(k, p, &out, err, sizeof(err)), 0);
    assert_int_equal(out.n_claims, DD_KUBE_MAX_CLAIMS);
    assert_true(out.claims_truncated);
    json_decref(p);
    dd_kube_free(k);
}

static void test_refusals(void **state)
{
    static const struct {
        enum dd_kube_kind kind;
        const char *json, *err;
    } cases[] = {
        {DD_KUBE_POD, "[]", "object: expected a JSON object"},
        {DD_KUBE_POD, "{}", "metadata: missing"},
        {DD_KUBE_POD, "{\"metadata\":{\"name\":7,\"namespace\":\"a\"}}",
         "metadata.name: expected a string"},
        {DD_KUBE_POD, "{\"metadata\":{\"name\":\"p\"}}",
         "metadata.namespace: missing, empty or holds '/'"},
        {DD_KUBE_POD,
         "{\"metadata\":{\"name\":\"p\",\"namespace\":\"a\"},\"spec\":{\"containers\":[{"
         "\"resources\":{\"requests\":{\"nvidia.com/gpu\":\"2x\"}}}]}}",
         "spec.containers[0].resources.requests[nvidia.com/gpu]: bad quantity '2x'"},
        {DD_KUBE_POD,
         "{\"metadata\":{\"name\":\"p\",\"namespace\":\"a\",\"annotations\":{\"dedupd.io/"
         "read-mbps\":\"1234567890123456789012345678901234\"}}}",
         "metadata.annotations[dedupd.io/read-mbps]: longer than 31 bytes"},
        {DD_KUBE_POD,
         "{\"metadata\":{\"name\":\"p\",\"namespace\":\"a\"},\"spec\":{\"volumes\":[{\"name\":"
         "\"v\",\"persistentVolumeClaim\":{}}]}}",
         "spec.volumes[0].persistentVolumeClaim.claimName: missing"},
        {DD_KUBE_PVC,
         "{\"metadata\":{\"name\":\"c\",\"namespace\":\"a\"},\"spec\":{\"resources\":{"
         "\"requests\":{\"storage\":\"-1Gi\"}}}}",
         "spec.resources.requests[storage]: bad quantity '-1Gi'"},
        {DD_KUBE_PVC,
         "{\"metadata\":{\"name\":\"c\",\"namespace\":\"a\"},\"spec\":{\"accessModes\":[1]}}",
         "spec.accessModes[0]: expected a string"},
        {DD_KUBE_PV, "{\"metadata\":{\"name\":\"v\"},\"spec\":{\"nodeAffinity\":[]}}",
         "spec.nodeAffinity: expected an object"},
        {DD_KUBE_NODE,
         "{\"metadata\":{\"name\":\"n\"},\"status\":{\"allocatable\":{\"nvidia.com/gpu\":true}}}",
         "status.allocatable[nvidia.com/gpu]: expected a quantity string"},
        {DD_KUBE_SC, "{\"metadata\":{\"name\":\"a/b\"}}",
         "metadata.name: missing, empty or "
         "holds '/'"},
    };
    struct dd_kube *k = new_cache(NULL);
    size_t counts[DD_KUBE_KINDS];
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        char err[256] = "";
        json_t *o = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(o);
        int r = dd_kube_apply(k, cases[i].kind, DD_KUBE_ADDED, o, err, sizeof(err));
        if (r >= 0 || strcmp(err, cases[i].err) != 0)
            fail_msg("case %zu: %d '%s', expected '%s'", i, r, err, cases[i].err);
        json_decref(o);
    }
    dd_kube_counts(k, counts);
    for (size_t i = 0; i < DD_KUBE_KINDS; i++)
        assert_int_equal(counts[i], 0);
    dd_kube_free(k);
}

static void test_hooks_and_relist(void **state)
{
    struct hooklog log;
    struct dd_kube *k = new_cache(&log);
    size_t counts[DD_KUBE_KINDS];
    double alloc, req;
    (void)state;

    json_t *a = gpu_pod("a", ""), *b = gpu_pod("b", "n1");
    apply_ok(k, DD_KUBE_POD, DD_KUBE_ADDED, a);
    apply_ok(k, DD_KUBE_POD, DD_KUBE_ADDED, b);
    assert_int_equal(log.n, 1);
    assert_string_equal(log.lines[0], "bound b ml/b n1");
    /* the scheduler binds a */
    json_object_set_new(json_object_get(a, "spec"), "nodeName", json_string("n1"));
    apply_ok(k, DD_KUBE_POD, DD_KUBE_MODIFIED, a);
    assert_int_equal(log.n, 2);
    assert_string_equal(log.lines[1], "bound a ml/a n1");
    /* a MODIFIED that changes nothing we track calls nothing */
    apply_ok(k, DD_KUBE_POD, DD_KUBE_MODIFIED, a);
    assert_int_equal(log.n, 2);

    json_t *node = json_pack("{s:{s:s}, s:{s:{s:s}}}", "metadata", "name", "n1", "status",
                             "allocatable", "nvidia.com/gpu", "8");
    apply_ok(k, DD_KUBE_NODE, DD_KUBE_ADDED, node);
    assert_int_equal(dd_kube_node_gpus(k, "n1", &alloc, &req), 0);
    assert_true(alloc == 8.0);

    /* a relist that sees only b and no node: a and n1 leave, with hooks */
    dd_kube_relist_begin(k, DD_KUBE_POD);
    apply_ok(k, DD_KUBE_POD, DD_KUBE_ADDED, b);
    assert_int_equal(dd_kube_relist_end(k, DD_KUBE_POD), 1);
    assert_int_equal(log.n, 3);
    assert_string_equal(log.lines[2], "deleted a ml/a n1");
    dd_kube_relist_begin(k, DD_KUBE_NODE);
    assert_int_equal(dd_kube_relist_end(k, DD_KUBE_NODE), 1);
    assert_int_equal(log.n, 4);
    assert_string_equal(log.lines[3], "node n1");
    assert_false(dd_kube_node_known(k, "n1"));
    /* b still counts on n1 while it runs there */
    assert_int_equal(dd_kube_node_gpus(k, "n1", &alloc, &req), 0);
    assert_true(alloc == 0.0);

    apply_ok(k, DD_KUBE_POD, DD_KUBE_DELETED, b);
    assert_int_equal(log.n, 5);
    assert_string_equal(log.lines[4], "deleted b ml/b n1");
    assert_int_equal(dd_kube_node_gpus(k, "n1", &alloc, &req), -ENOENT);
    /* a deleted node that was never there calls nothing */
    apply_ok(k, DD_KUBE_NODE, DD_KUBE_DELETED, node);
    assert_int_equal(log.n, 5);
    dd_kube_counts(k, counts);
    assert_int_equal(counts[DD_KUBE_POD], 0);
    assert_int_equal(counts[DD_KUBE_NODE], 0);
    json_decref(a);
    json_decref(b);
    json_decref(node);
    dd_kube_free(k);
}

struct collected {
    char lines[8][128];
    size_t n;
};

static int collect(void *ud, const char *line, size_t len)
{
    struct collected *c = ud;
    if (c->n < 8)
        snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%.*s", (int)len, line);
    return 0;
}

static void test_lines(void **state)
{
    const char text[] = "{\"type\":\"ADDED\"}\n{\"type\":\"BOOKMARK\"}\r\n\n{\"x\":1}\n";
    size_t n = strlen(text);
    struct dd_kube_lines l;
    (void)state;
    /* every pair of split positions, three pieces */
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            struct collected c = {0};
            dd_kube_lines_init(&l, 64);
            assert_int_equal(dd_kube_lines_feed(&l, text, i, collect, &c), 0);
            assert_int_equal(dd_kube_lines_feed(&l, text + i, j - i, collect, &c), 0);
            assert_int_equal(dd_kube_lines_feed(&l, text + j, n - j, collect, &c), 0);
            assert_int_equal(c.n, 3);
            assert_string_equal(c.lines[0], "{\"type\":\"ADDED\"}");
            assert_string_equal(c.lines[1], "{\"type\":\"BOOKMARK\"}");
            assert_string_equal(c.lines[2], "{\"x\":1}");
            assert_int_equal(dd_kube_lines_pending(&l), 0);
            dd_kube_lines_release(&l);
        }
    }
    /* a half event stays pending; a line past the cap fails and stays failed */
    struct collected c = {0};
    dd_kube_lines_init(&l, 16);
    assert_int_equal(dd_kube_lines_feed(&l, "{\"type\":", 8, collect, &c), 0);
    assert_int_equal(dd_kube_lines_pending(&l), 8);
    assert_int_equal(dd_kube_lines_feed(&l, "\"ADDED\",\"x\":1}\n", 15, collect, &c), DD_E_TOOBIG);
    assert_int_equal(dd_kube_lines_feed(&l, "{}\n", 3, collect, &c), DD_E_TOOBIG);
    assert_int_equal(c.n, 0);
    dd_kube_lines_reset(&l);
    assert_int_equal(dd_kube_lines_feed(&l, "{}\n", 3, collect, &c), 0);
    assert_int_equal(c.n, 1);
    dd_kube_lines_release(&l);
}

static void test_watch_event(void **state)
{
    struct dd_kube_watch_event ev;
    char err[256];
    const char *l;
    (void)state;
    l = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
        "\"resourceVersion\":\"opaque/7\"}}}";
    assert_int_equal(dd_kube_watch_event_decode(l, strlen(l), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.type, DD_KUBE_W_ADDED);
    assert_string_equal(ev.rv, "opaque/7");
    assert_string_equal(json_string_value(json_object_get(ev.object, "kind")), "Pod");
    dd_kube_watch_event_release(&ev);
    l = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\","
        "\"metadata\":{\"resourceVersion\":\"b-12\"}}}";
    assert_int_equal(dd_kube_watch_event_decode(l, strlen(l), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.type, DD_KUBE_W_BOOKMARK);
    assert_string_equal(ev.rv, "b-12");
    dd_kube_watch_event_release(&ev);
    l = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":"
        "{},\"status\":\"Failure\",\"message\":\"too old resource version: 123 (456)\","
        "\"reason\":\"Expired\",\"code\":410}}";
    assert_int_equal(dd_kube_watch_event_decode(l, strlen(l), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.type, DD_KUBE_W_ERROR);
    assert_int_equal(ev.code, 410);
    assert_string_equal(ev.message, "too old resource version: 123 (456)");
    dd_kube_watch_event_release(&ev);

    static const struct {
        const char *line, *err;
    } bad[] = {
        {"{\"type\":\"ADDED\"", "watch event: column 15: '}' expected near end of file"},
        {"[]", "watch event: expected a JSON object"},
        {"{\"type\":\"SYNC\",\"object\":{}}",
         "watch event type: 'SYNC' is not one of ADDED, MODIFIED, DELETED, BOOKMARK, ERROR"},
        {"{\"type\":\"ADDED\",\"object\":3}", "watch event object: expected a JSON object"},
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":5}}}",
         "watch event object.metadata.resourceVersion: expected a string"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        assert_int_equal(
            dd_kube_watch_event_decode(bad[i].line, strlen(bad[i].line), &ev, err, sizeof(err)),
            DD_E_PARSE);
        if (strcmp(err, bad[i].err) != 0)
            fail_msg("bad[%zu]: '%s', expected '%s'", i, err, bad[i].err);
    }
}

static void test_list_page(void **state)
{
    struct dd_kube *k = new_cache(NULL);
    char rv[DD_KUBE_MAX_RV], cont[DD_KUBE_MAX_CONTINUE], err[256] = "";
    size_t refused = 9, counts[DD_KUBE_KINDS];
    const char *page =
        "{\"kind\":\"NodeList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"x9\","
        "\"continue\":\"tok\"},\"items\":[{\"metadata\":{\"name\":\"n1\"}},{\"metadata\":{}},"
        "{\"metadata\":{\"name\":\"n2\"}}]}";
    (void)state;
    assert_int_equal(dd_kube_apply_list_page(k, DD_KUBE_NODE, page, strlen(page), rv, sizeof(rv),
                                             cont, sizeof(cont), &refused, err, sizeof(err)),
                     0);
    assert_string_equal(rv, "x9");
    assert_string_equal(cont, "tok");
    assert_int_equal(refused, 1);
    assert_string_equal(err, "items[1]: metadata.name: missing, empty or holds '/'");
    dd_kube_counts(k, counts);
    assert_int_equal(counts[DD_KUBE_NODE], 2);
    page = "{\"kind\":\"NodeList\",\"items\":[]}";
    assert_int_equal(dd_kube_apply_list_page(k, DD_KUBE_NODE, page, strlen(page), rv, sizeof(rv),
                                             cont, sizeof(cont), &refused, err, sizeof(err)),
                     DD_E_PARSE);
    assert_string_equal(err, "list: no metadata");
    page = "<html>";
    assert_int_equal(dd_kube_apply_list_page(k, DD_KUBE_NODE, page, strlen(page), rv, sizeof(rv),
                                             cont, sizeof(cont), &refused, err, sizeof(err)),
                     DD_E_PARSE);
    dd_kube_free(k);
}

/* relisted: once per whole list, after the list's own hooks */
static void test_relisted_hook(void **state)
{
    (void)state;
    struct hooklog log;
    struct dd_kube *k;
    assert_int_equal(dd_kube_new(&k, NULL, 0), 0);
    struct dd_kube_hooks h = {&log, on_bound, on_deleted, on_node, on_relisted};
    memset(&log, 0, sizeof(log));
    dd_kube_set_hooks(k, &h);
    json_t *a = gpu_pod("a", "n1");
    dd_kube_relist_begin(k, DD_KUBE_POD);
    apply_ok(k, DD_KUBE_POD, DD_KUBE_ADDED, a);
    assert_int_equal(dd_kube_relist_end(k, DD_KUBE_POD), 0);
    dd_kube_relist_begin(k, DD_KUBE_PVC);
    assert_int_equal(dd_kube_relist_end(k, DD_KUBE_PVC), 0);
    dd_kube_relist_begin(k, DD_KUBE_POD);
    assert_int_equal(dd_kube_relist_end(k, DD_KUBE_POD), 1);
    assert_int_equal(log.n, 5);
    assert_string_equal(log.lines[0], "bound a ml/a n1");
    assert_string_equal(log.lines[1], "relisted pod");
    assert_string_equal(log.lines[2], "relisted pvc");
    assert_string_equal(log.lines[3], "deleted a ml/a n1");
    assert_string_equal(log.lines[4], "relisted pod");
    json_decref(a);
    dd_kube_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantity),       cmocka_unit_test(test_scenario),
        cmocka_unit_test(test_class_not_ours), cmocka_unit_test(test_gpus_and_claims),
        cmocka_unit_test(test_refusals),       cmocka_unit_test(test_hooks_and_relist),
        cmocka_unit_test(test_lines),          cmocka_unit_test(test_watch_event),
        cmocka_unit_test(test_list_page),      cmocka_unit_test(test_relisted_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
