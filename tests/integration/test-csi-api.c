/*
 * The CSI-adjacent topology API through a real daemon on loopback: an
 * in-process `dedupd --role placement` (dd_daemon) whose Kubernetes cache
 * watches the test API server (tests/kubeapi.h) holding the reference
 * Nodes (with their labels, the CSI driver's topology key among them),
 * StorageClass vdo-dedup (made ours with dedupd.io/pool), PVC
 * ckpt-trainer-0 and pod trainer-0; node reports arrive on POST
 * /v1/reports. Checked: the reference CreateVolumeRequest's requisite
 * entries come back ordered by contention with reasons, the selected node
 * pinned first while the PVC carries it, the node without a report last;
 * the {"accessibilityRequirements", "pvc"} form; 400 naming the field;
 * GetCapacity by GET and POST moving with the pool's observed reduction
 * and the class's expected-reduction annotation; NodeGetInfoResponse.
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
#include "helpers.h"
#include "kubeapi.h"
#include "placement/report.h"
#include "reports.h"

#define GIB 1073741824.0

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

static void put(struct fx *f, enum dd_kube_kind kind, const char *rel)
{
    json_t *o = fixture(rel);
    if (kind == DD_KUBE_SC) {
        json_t *ann = json_object();
        json_object_set_new(ann, "dedupd.io/pool", json_string("fast"));
        json_object_set_new(json_object_get(o, "metadata"), "annotations", ann);
    }
    assert_int_equal(tt_kubeapi_put(f->api, kind, o), 0);
    json_decref(o);
}

static void report(struct fx *f, const char *node, double write_mbps, double cpu_ex, double io_psi,
                   double dedup_ratio)
{
    struct tt_node_report n = {.node = node,
                               .pool = "fast",
                               .physical_gib = 4000,
                               .physical_free_gib = 2000,
                               .logical_gib = 40000,
                               .logical_free_gib = 30000,
                               .dedup_ratio = dedup_ratio,
                               .with_load = true,
                               .write_mbps = write_mbps,
                               .cpu_ex = cpu_ex,
                               .io_psi = io_psi,
                               .gpus = 8};
    long st = tt_node_report_post(f->url, &n);
    if (st != 200 && st != 202)
        fail_msg("report %s: %ld", node, st);
}

static json_t *call(struct fx *f, const char *method, const char *path, const char *body, long want)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    struct tt_reply rep = tt_http(url, method, body, body ? strlen(body) : 0, 10);
    if (rep.status != want)
        fail_msg("%s %s: %ld (wanted %ld): %s", method, path, rep.status, want,
                 rep.body ? rep.body : "");
    json_error_t je;
    json_t *doc = json_loadb(rep.body, rep.len, 0, &je);
    if (!doc)
        fail_msg("%s %s: not JSON: %s", method, path, rep.body);
    free(rep.body);
    return doc;
}

static long status_of(struct fx *f, const char *method, const char *path, const char *body)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    struct tt_reply rep = tt_http(url, method, body, body ? strlen(body) : 0, 10);
    free(rep.body);
    return rep.status;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct dd_config c;
    bool help = false;
    char err[512] = "", dd[1100];
    assert_int_equal(tt_kubeapi_start(&f->api), 0);
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
                          "100000000"};
    enum { NARGS = sizeof(args) / sizeof(args[0]) };
    char bufs[NARGS][1100], *argv[NARGS + 1];
    int argc = NARGS;
    for (int i = 0; i < NARGS; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "%s", args[i]);
        argv[i] = bufs[i];
    }
    argv[NARGS] = NULL;
    if (dd_config_load(argc, argv, &c, &help, err, sizeof(err)) < 0)
        fail_msg("config: %s", err);
    if (dd_daemon_start(&c, &f->d, err, sizeof(err)) < 0)
        fail_msg("daemon: %s", err);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", dd_daemon_port(f->d));

    put(f, DD_KUBE_NODE, "k8s/node.gpu-node-a.json");
    put(f, DD_KUBE_NODE, "k8s/node.gpu-node-b.json");
    put(f, DD_KUBE_NODE, "k8s/node.gpu-node-c.json");
    put(f, DD_KUBE_SC, "k8s/storageclass.vdo-dedup.json");
    put(f, DD_KUBE_PVC, "k8s/pvc.ckpt-trainer-0.2-selected-node-after-prebind.json");
    put(f, DD_KUBE_POD, "k8s/pod.gpu-trainer.scheduled-view.json");
    /* a: busy; b: idle; c: no report */
    report(f, "gpu-node-a", 600, 0.85, 40, 2.0);
    report(f, "gpu-node-b", 5, 0.05, 1, 2.0);
    /* ready when the cache has the class, the nodes and the PVC's pod (the
     * preferred call finds the pod in the cache); a poll that runs out fails */
    size_t cvlen;
    char *cv =
        tt_fixture("k8s/csi/CreateVolumeRequest.wffc-selected-node.default.protojson.json", &cvlen);
    bool ready = false;
    for (int i = 0; i < 400 && !ready; i++) {
        if (status_of(f, "GET", "/v1/csi/capacity?storage_class=vdo-dedup", NULL) == 200 &&
            status_of(f, "GET", "/v1/csi/topology?node=gpu-node-c", NULL) == 200) {
            char url[1024];
            snprintf(url, sizeof(url), "%s/v1/csi/preferred", f->url);
            struct tt_reply rep = tt_http(url, "POST", cv, cvlen, 10);
            json_t *doc = rep.status == 200 ? json_loadb(rep.body, rep.len, 0, NULL) : NULL;
            const char *src = json_string_value(json_object_get(doc, "pod_source"));
            ready = src && strcmp(src, "cache") == 0;
            json_decref(doc);
            free(rep.body);
        }
        if (!ready)
            sleep_ms(25);
    }
    free(cv);
    if (!ready)
        fail_msg("the placement role's cache did not hold the class, the nodes and the pod "
                 "within 10 s");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    dd_daemon_stop(f->d);
    tt_kubeapi_stop(f->api);
    tt_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static const char *entry_node(json_t *pref, size_t i)
{
    return json_string_value(json_object_get(json_object_get(json_array_get(pref, i), "segments"),
                                             "topology.vdo.csi.example.io/node"));
}

static const char *entry_reason(json_t *pref, size_t i)
{
    return json_string_value(json_object_get(json_array_get(pref, i), "reason"));
}

/* Does the document's text hold s? */
static bool mentions(const json_t *doc, const char *s)
{
    char *text = json_dumps(doc, 0);
    bool found = text && strstr(text, s);
    free(text);
    return found;
}

static void test_preferred(void **state)
{
    struct fx *f = *state;
    size_t len;
    char *cv =
        tt_fixture("k8s/csi/CreateVolumeRequest.wffc-selected-node.default.protojson.json", &len);

    /* the PVC names gpu-node-a: it stays first; c (no report) last */
    json_t *r = call(f, "POST", "/v1/csi/preferred", cv, 200);
    json_t *p = json_object_get(r, "preferred");
    assert_int_equal(json_array_size(p), 3);
    assert_string_equal(entry_node(p, 0), "gpu-node-a");
    assert_non_null(strstr(entry_reason(p, 0), "selected node"));
    assert_string_equal(entry_node(p, 1), "gpu-node-b");
    assert_string_equal(entry_node(p, 2), "gpu-node-c");
    assert_non_null(strstr(entry_reason(p, 2), "none reports to dedupd"));
    assert_true(json_is_null(json_object_get(json_array_get(p, 2), "report_age_seconds")));
    assert_true(json_is_number(json_object_get(json_array_get(p, 1), "report_age_seconds")));
    assert_string_equal(json_string_value(json_object_get(r, "pod_source")), "cache");
    json_int_t score_a = json_integer_value(json_object_get(json_array_get(p, 0), "score"));
    json_int_t score_b = json_integer_value(json_object_get(json_array_get(p, 1), "score"));
    assert_true(score_b > score_a); /* pinned, not better */
    json_decref(r);

    /* before the scheduler chose (no selected-node): by contention */
    put(f, DD_KUBE_PVC, "k8s/pvc.ckpt-trainer-0.1-pending-before-scheduling.json");
    for (int i = 0; i < 200; i++) {
        r = call(f, "POST", "/v1/csi/preferred", cv, 200);
        p = json_object_get(r, "preferred");
        if (strcmp(entry_node(p, 0), "gpu-node-b") == 0)
            break;
        json_decref(r);
        r = NULL;
        sleep_ms(25);
    }
    assert_non_null(r);
    assert_string_equal(entry_node(p, 0), "gpu-node-b");
    assert_non_null(strstr(entry_reason(p, 0), "predicted I/O slowdown"));
    assert_string_equal(entry_node(p, 1), "gpu-node-a");
    assert_string_equal(entry_node(p, 2), "gpu-node-c");
    json_decref(r);
    free(cv);

    /* the short form, with our own keys and a segment no node matches */
    r = call(f, "POST", "/v1/csi/preferred",
             "{\"accessibilityRequirements\":{\"requisite\":["
             "{\"segments\":{\"topology.dedupd.io/node\":\"gpu-node-a\"}},"
             "{\"segments\":{\"topology.kubernetes.io/zone\":\"mars-1a\"}},"
             "{\"segments\":{\"topology.dedupd.io/pool-fast\":\"true\"}},"
             "{\"segments\":{\"topology.dedupd.io/node\":\"gpu-node-a\"}}]},"
             "\"pvc\":{\"namespace\":\"ml\",\"name\":\"ckpt-trainer-0\"}}",
             200);
    p = json_object_get(r, "preferred");
    assert_int_equal(json_array_size(p), 3); /* the duplicate once */
    /* the pool segment's best node is b: it beats a alone */
    assert_string_equal(json_string_value(json_object_get(json_array_get(p, 0), "node")),
                        "gpu-node-b");
    assert_string_equal(json_string_value(json_object_get(json_array_get(p, 1), "node")),
                        "gpu-node-a");
    assert_non_null(strstr(entry_reason(p, 2), "no node"));
    json_decref(r);

    /* bad input names the field */
    r = call(f, "POST", "/v1/csi/preferred",
             "{\"accessibilityRequirements\":{\"requisite\":[{\"segments\":{\"k\":1}}]},"
             "\"parameters\":{\"csi.storage.k8s.io/pvc/name\":\"x\","
             "\"csi.storage.k8s.io/pvc/namespace\":\"ml\"}}",
             400);
    assert_true(mentions(r, "accessibilityRequirements.requisite[0].segments[k]"));
    json_decref(r);
    r = call(f, "POST", "/v1/csi/preferred", "{\"accessibilityRequirements\":{}}", 400);
    assert_true(mentions(r, "csi.storage.k8s.io/pvc/name"));
    json_decref(r);
    r = call(f, "POST", "/v1/csi/preferred",
             "{\"accessibilityRequirements\":{\"requisite\":[{}]},"
             "\"pvc\":{\"namespace\":\"ml\",\"name\":\"nope\"}}",
             404);
    json_decref(r);
}

static long long cap_of(json_t *r, const char *field)
{
    const char *s = json_string_value(json_object_get(r, field));
    if (!s)
        fail_msg("%s: not a string", field);
    return atoll(s);
}

static void test_capacity(void **state)
{
    struct fx *f = *state;
    const char *q = "/v1/csi/capacity?storage_class=vdo-dedup&segment="
                    "topology.vdo.csi.example.io%2Fnode%3Dgpu-node-b";
    json_t *r = call(f, "GET", q, NULL, 200);
    assert_int_equal(json_object_size(r), 3);
    long long a2 = cap_of(r, "availableCapacity"), m2 = cap_of(r, "maximumVolumeSize");
    assert_string_equal(json_string_value(json_object_get(r, "minimumVolumeSize")), "0");
    assert_true(a2 == (long long)(2000 * GIB * 2)); /* free x observed 2 */
    assert_true(m2 > 0 && m2 < a2);
    json_decref(r);

    /* the pool's observed reduction rises: so does the capacity */
    report(f, "gpu-node-b", 5, 0.05, 1, 3.0);
    r = call(f, "GET", q, NULL, 200);
    assert_true(cap_of(r, "availableCapacity") == (long long)(2000 * GIB * 3));
    assert_true(cap_of(r, "maximumVolumeSize") > m2);
    json_decref(r);

    /* explain wraps; a second segment key narrows (a and b share the zone) */
    r = call(f, "GET",
             "/v1/csi/capacity?storage_class=vdo-dedup&explain=true&segment="
             "topology.kubernetes.io%2Fzone%3Dus-east-1a&segment=kubernetes.io%2Fhostname%3Dgpu-"
             "node-a",
             NULL, 200);
    json_t *ex = json_object_get(r, "explanation");
    assert_non_null(json_object_get(r, "response"));
    assert_string_equal(json_string_value(json_object_get(ex, "best_node")), "gpu-node-a");
    assert_string_equal(json_string_value(json_object_get(ex, "reduction_source")), "observed");
    json_decref(r);

    /* POST a GetCapacityRequest: the class found by its parameters */
    size_t len;
    char *gc = tt_fixture("k8s/csi/GetCapacityRequest.gpu-node-a.protojson.json", &len);
    r = call(f, "POST", "/v1/csi/capacity", gc, 200);
    assert_true(cap_of(r, "availableCapacity") == (long long)(2000 * GIB * 2));
    json_decref(r);

    /* the class's expected reduction wins over the observed one */
    json_t *sc = fixture("k8s/storageclass.vdo-dedup.json");
    json_object_set_new(
        json_object_get(sc, "metadata"), "annotations",
        json_pack("{s:s, s:s}", "dedupd.io/pool", "fast", "dedupd.io/expected-reduction", "5"));
    assert_int_equal(tt_kubeapi_put(f->api, DD_KUBE_SC, sc), 0);
    json_decref(sc);
    long long got = 0;
    for (int i = 0; i < 200 && got != (long long)(2000 * GIB * 5); i++) {
        r = call(f, "POST", "/v1/csi/capacity", gc, 200);
        got = cap_of(r, "availableCapacity");
        json_decref(r);
        if (got != (long long)(2000 * GIB * 5))
            sleep_ms(25);
    }
    assert_true(got == (long long)(2000 * GIB * 5));
    free(gc);

    /* bad input */
    r = call(f, "GET", "/v1/csi/capacity?storage_class=vdo-dedup&segment=novalue", NULL, 400);
    assert_true(mentions(r, "segment[0]"));
    json_decref(r);
    r = call(f, "GET", "/v1/csi/capacity", NULL, 400);
    assert_true(mentions(r, "storage_class"));
    json_decref(r);
    r = call(f, "POST", "/v1/csi/capacity", "{\"accessibleTopology\":{\"segments\":[]}}", 400);
    assert_true(mentions(r, "accessibleTopology.segments"));
    json_decref(r);
}

static void test_topology(void **state)
{
    struct fx *f = *state;
    json_t *r = call(f, "GET", "/v1/csi/topology?node=gpu-node-a", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(r, "nodeId")), "gpu-node-a");
    json_t *segs = json_object_get(json_object_get(r, "accessibleTopology"), "segments");
    assert_string_equal(json_string_value(json_object_get(segs, "topology.dedupd.io/node")),
                        "gpu-node-a");
    assert_string_equal(json_string_value(json_object_get(segs, "topology.dedupd.io/pool-fast")),
                        "true");
    assert_int_equal(json_object_size(segs), 2);
    json_decref(r);
    json_decref(call(f, "GET", "/v1/csi/topology?node=nowhere", NULL, 404));
    json_decref(call(f, "GET", "/v1/csi/topology", NULL, 400));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_preferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topology, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
