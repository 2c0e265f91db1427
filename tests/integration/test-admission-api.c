/*
 * The right-sizing webhook through a real daemon on loopback: an
 * in-process `dedupd --role placement` (dd_daemon) whose Kubernetes cache
 * watches the test API server (tests/kubeapi.h) holding the reference
 * Nodes (gpu-node-a and -b labelled dedupd.io/cpu-manager=static, c not),
 * StorageClass
 * vdo-dedup (ours), PVC ckpt-trainer-0, and Namespaces "ml" (labelled
 * dedupd.io/rightsize=enabled) and "vision" (not labelled); node reports
 * arrive on POST /v1/reports (a idle, b busy) and outcomes on POST
 * /v1/observations (the owners' history). Checked: the reference review is
 * opted in by its namespace's label and answered with a patch (exclusive
 * cores on the static node, GPUs untouched, the live state in the
 * annotation); a Deployment's pod (empty name) by its annotation, the
 * user's I/O annotation kept; not opted in, kube-system, not a Pod CREATE:
 * allowed unchanged with a warning; a dry run answered, counted and
 * recording nothing; malformed reviews answered (400 without a uid, an
 * allowed review with a warning with one), never crashing the daemon;
 * POST /v1/rightsize; the metrics.
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

static void put_obj(struct fx *f, enum dd_kube_kind kind, json_t *o)
{
    assert_int_equal(tt_kubeapi_put(f->api, kind, o), 0);
    json_decref(o);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct tt_reply post(struct fx *f, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    return tt_http(url, "POST", body, strlen(body), 10);
}

static json_t *post_json(struct fx *f, const char *path, const char *body, long want)
{
    struct tt_reply r = post(f, path, body);
    if (r.status != want)
        fail_msg("POST %s: %ld (wanted %ld): %s", path, r.status, want, r.body ? r.body : "");
    json_t *doc = json_loadb(r.body, r.len, 0, NULL);
    if (!doc)
        fail_msg("POST %s: not JSON: %s", path, r.body ? r.body : "");
    free(r.body);
    return doc;
}

static void report(struct fx *f, const char *node, double write_mbps, double cpu_ex, double io_psi)
{
    struct tt_node_report n = {.node = node,
                               .pool = "fast",
                               .physical_gib = 4000,
                               .physical_free_gib = 2000,
                               .logical_gib = 40000,
                               .logical_free_gib = 30000,
                               .dedup_ratio = 2.0,
                               .with_load = true,
                               .write_mbps = write_mbps,
                               .cpu_ex = cpu_ex,
                               .io_psi = io_psi,
                               .gpus = 8};
    long st = tt_node_report_post(f->url, &n);
    if (st != 200 && st != 202)
        fail_msg("report %s: %ld", node, st);
}

static void observe(struct fx *f, const char *uid, const char *ns, const char *kind,
                    const char *owner, double cpu, double mem, const char *reason)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"pod_uid\":\"%s\",\"namespace\":\"%s\",\"owner\":{\"kind\":\"%s\",\"name\":"
             "\"%s\"},\"annotations\":{},\"requests\":{\"cpu\":\"8\",\"memory\":\"64Gi\"},"
             "\"limits\":{\"cpu\":\"8\",\"memory\":\"64Gi\"},\"node\":\"gpu-node-a\","
             "\"started_at\":1000,\"finished_at\":4600,\"peak_cpu_cores\":%g,"
             "\"peak_memory_bytes\":%.0f,\"read_mbps\":250,\"write_mbps\":40,\"exit_code\":0,"
             "\"reason\":\"%s\"}",
             uid, ns, kind, owner, cpu, mem, reason);
    json_decref(post_json(f, "/v1/observations", body, 200));
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
                          "--rightsize-exclude-namespace",
                          "batch-system"};
    enum { NARGS = sizeof(args) / sizeof(args[0]) };
    char bufs[NARGS][1100], *argv[NARGS + 1];
    for (int i = 0; i < NARGS; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "%s", args[i]);
        argv[i] = bufs[i];
    }
    argv[NARGS] = NULL;
    if (dd_config_load(NARGS, argv, &c, &help, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
    if (dd_daemon_start(&c, &f->d, err, sizeof(err)) < 0)
        fail_msg("daemon: %s", err);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", dd_daemon_port(f->d));

    const char *nodes[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "k8s/node.gpu-node-%s.json", nodes[i]);
        json_t *n = fixture(rel);
        if (i < 2) /* the nodes with reports: whichever ranks first */
            json_object_set_new(json_object_get(json_object_get(n, "metadata"), "labels"),
                                "dedupd.io/cpu-manager", json_string("static"));
        put_obj(f, DD_KUBE_NODE, n);
    }
    json_t *sc = fixture("k8s/storageclass.vdo-dedup.json");
    json_object_set_new(json_object_get(sc, "metadata"), "annotations",
                        json_pack("{s:s}", "dedupd.io/pool", "fast"));
    put_obj(f, DD_KUBE_SC, sc);
    put_obj(f, DD_KUBE_PVC, fixture("k8s/pvc.ckpt-trainer-0.2-selected-node-after-prebind.json"));
    put_obj(f, DD_KUBE_NAMESPACE,
            json_pack("{s:{s:s, s:{s:s, s:s}}}", "metadata", "name", "ml", "labels",
                      "kubernetes.io/metadata.name", "ml", "dedupd.io/rightsize", "enabled"));
    put_obj(f, DD_KUBE_NAMESPACE,
            json_pack("{s:{s:s, s:{s:s}}}", "metadata", "name", "vision", "labels",
                      "kubernetes.io/metadata.name", "vision"));
    /* a: idle (ranked first), b: busy, c: no report */
    report(f, "gpu-node-a", 5, 0.05, 1);
    report(f, "gpu-node-b", 600, 0.85, 40);
    /* history: the StatefulSet trainer peaks at ~5 cores and ~40 GiB; the
     * Deployment loader at ~2 cores and ~6 GiB */
    for (int i = 0; i < 6; i++) {
        char uid[32];
        snprintf(uid, sizeof(uid), "st-%d", i);
        observe(f, uid, "ml", "StatefulSet", "trainer", 4.6 + 0.1 * i, (38 + i) * GIB, "Completed");
        snprintf(uid, sizeof(uid), "dep-%d", i);
        observe(f, uid, "vision", "Deployment", "loader", 1.8 + 0.05 * i, (5.5 + 0.1 * i) * GIB,
                "Completed");
    }
    /* the namespace label is in the cache: a namespace-opted-in pod says so */
    json_t *ref = fixture("k8s/admission/admission-review.request.pod-create.json");
    char *body = json_dumps(json_object_get(json_object_get(ref, "request"), "object"), 0);
    bool synced = false;
    for (int i = 0; i < 400 && !synced; i++) {
        json_t *r = post_json(f, "/v1/rightsize", body, 200);
        synced = strcmp(json_string_value(json_object_get(r, "opt_in")), "namespace_label") == 0;
        json_decref(r);
        if (!synced)
            sleep_ms(25);
    }
    free(body);
    json_decref(ref);
    if (!synced)
        fail_msg("the namespace label did not reach the cache within 10 s");
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

/* Test-side base64 decoder. */
static char *b64dec(const char *s)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), j = 0;
    char *out = calloc(n + 1, 1);
    unsigned v = 0, bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *p = strchr(t, s[i]);
        assert_non_null(p);
        v = v << 6 | (unsigned)(p - t);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[j++] = (char)(v >> bits & 0xff);
        }
    }
    return out;
}

/* POSTs a review; checks the envelope; returns the decoded patch (NULL:
 * none) and the first warning (copied into warn). */
static json_t *mutate(struct fx *f, json_t *review, char *warn, size_t wlen)
{
    char *body = json_dumps(review, JSON_COMPACT);
    json_t *doc = post_json(f, "/admission/mutate", body, 200);
    free(body);
    json_t *r = json_object_get(doc, "response");
    assert_string_equal(json_string_value(json_object_get(doc, "apiVersion")),
                        "admission.k8s.io/v1");
    assert_string_equal(json_string_value(json_object_get(doc, "kind")), "AdmissionReview");
    assert_string_equal(
        json_string_value(json_object_get(r, "uid")),
        json_string_value(json_object_get(json_object_get(review, "request"), "uid")));
    assert_true(json_is_true(json_object_get(r, "allowed")));
    const char *w = json_string_value(json_array_get(json_object_get(r, "warnings"), 0));
    snprintf(warn, wlen, "%s", w ? w : "");
    json_t *patch = NULL;
    if (json_object_get(r, "patch")) {
        assert_string_equal(json_string_value(json_object_get(r, "patchType")), "JSONPatch");
        char *dec = b64dec(json_string_value(json_object_get(r, "patch")));
        patch = json_loads(dec, 0, NULL);
        free(dec);
        assert_true(json_is_array(patch));
    }
    json_decref(doc);
    return patch;
}

static const json_t *op_at(const json_t *patch, const char *path)
{
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op)
    {
        if (strcmp(json_string_value(json_object_get(op, "path")), path) == 0)
            return op;
    }
    return NULL;
}

static const char *op_value(const json_t *patch, const char *path)
{
    return json_string_value(json_object_get(op_at(patch, path), "value"));
}

static double metric(struct fx *f, const char *line_prefix)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", f->url);
    struct tt_reply r = tt_http(url, "GET", NULL, 0, 10);
    assert_int_equal(r.status, 200);
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s", line_prefix); /* a sample, not its HELP line */
    const char *p = strstr(r.body, needle);
    double v = p ? strtod(p + strlen(needle), NULL) : -1;
    free(r.body);
    return v;
}

static void test_namespace_opt_in_and_static_cpus(void **state)
{
    struct fx *f = *state;
    json_t *rv = fixture("k8s/admission/admission-review.request.pod-create.json");
    char warn[512];
    json_t *patch = mutate(f, rv, warn, sizeof(warn));
    assert_non_null(patch);
    assert_string_equal(warn, "");
    /* the node ranked first is a static CPU manager node: integer CPUs,
     * requests == limits */
    if (getenv("DD_TEST_VERBOSE")) {
        char *b = json_dumps(rv, JSON_COMPACT);
        json_t *x = post_json(f, "/v1/rightsize", b, 200);
        json_dumpf(json_object_get(x, "live"), stderr, JSON_INDENT(1));
        json_dumpf(json_object_get(json_object_get(x, "explanation"), "reasons"), stderr,
                   JSON_INDENT(1));
        json_decref(x);
        free(b);
    }
    const char *cr = op_value(patch, "/spec/containers/0/resources/requests/cpu");
    const char *cl = op_value(patch, "/spec/containers/0/resources/limits/cpu");
    assert_non_null(cr);
    assert_non_null(cl);
    assert_string_equal(cr, cl);
    assert_null(strchr(cr, 'm'));
    const char *mr = op_value(patch, "/spec/containers/0/resources/requests/memory");
    const char *ml = op_value(patch, "/spec/containers/0/resources/limits/memory");
    if (mr || ml) /* 64Gi may already be right */
        assert_string_equal(mr ? mr : "64Gi", ml ? ml : "64Gi");
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op)
    {
        assert_null(strstr(json_string_value(json_object_get(op, "path")), "gpu"));
    }
    /* the prediction annotation carries the live state of the ranked nodes */
    const json_t *ann = json_object_get(op_at(patch, "/metadata/annotations"), "value");
    assert_non_null(ann);
    json_t *pa = json_loads(
        json_string_value(json_object_get(ann, "dedupd.io/rightsize-prediction")), 0, NULL);
    assert_non_null(pa);
    json_t *live = json_object_get(pa, "live");
    assert_true(json_integer_value(json_object_get(live, "n_nodes")) >= 1);
    assert_true(json_is_number(json_object_get(live, "top_cpu_util")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(pa, "source"), "peak_cpu_cores")),
        "history");
    json_decref(pa);

    /* /v1/rightsize says why, and shows the rewritten object */
    char *body = json_dumps(rv, JSON_COMPACT);
    json_t *rs = post_json(f, "/v1/rightsize", body, 200);
    free(body);
    if (getenv("DD_TEST_VERBOSE"))
        json_dumpf(rs, stderr, JSON_INDENT(1));
    assert_true(json_is_true(json_object_get(json_object_get(rs, "explanation"), "static_cpus")));
    json_t *lv = json_object_get(rs, "live");
    const char *top = json_string_value(json_array_get(json_object_get(lv, "top_nodes"), 0));
    assert_non_null(top);
    assert_true(strcmp(top, "gpu-node-a") == 0 || strcmp(top, "gpu-node-b") == 0);
    assert_true(json_is_true(json_object_get(lv, "static_cpu_manager")));
    json_t *ctr = json_array_get(
        json_object_get(json_object_get(json_object_get(rs, "object"), "spec"), "containers"), 0);
    json_t *res = json_object_get(ctr, "resources");
    assert_string_equal(json_string_value(json_object_get(json_object_get(res, "requests"), "cpu")),
                        cr);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(res, "limits"), "nvidia.com/gpu")), "2");
    json_decref(rs);
    json_decref(patch);
    json_decref(rv);
}

static void test_deployment_pod(void **state)
{
    struct fx *f = *state;
    json_t *rv = fixture("k8s/admission/admission-review.request.deployment-pod.json");
    char warn[512];
    json_t *patch = mutate(f, rv, warn, sizeof(warn));
    assert_non_null(patch);
    assert_string_equal(warn, "");
    /* history ~2 cores over loader 3 : metrics 1 (the sidecar's 250m off) */
    assert_non_null(op_value(patch, "/spec/containers/0/resources/requests/cpu"));
    assert_non_null(op_at(patch, "/spec/containers/1/resources/limits"));
    assert_non_null(op_at(patch, "/metadata/annotations/dedupd.io~1rightsize-prediction"));
    assert_non_null(op_at(patch, "/metadata/annotations/dedupd.io~1read-mbps"));
    assert_null(op_at(patch, "/metadata/annotations/dedupd.io~1write-mbps"));
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op)
    {
        assert_null(strstr(json_string_value(json_object_get(op, "path")), "initContainers"));
    }
    json_decref(patch);
    json_decref(rv);
}

static void test_unchanged_with_warning(void **state)
{
    struct fx *f = *state;
    char warn[512];
    /* the reference pod in a namespace without the label */
    json_t *rv = fixture("k8s/admission/admission-review.request.pod-create.json");
    json_t *req = json_object_get(rv, "request");
    json_object_set_new(req, "namespace", json_string("vision"));
    assert_null(mutate(f, rv, warn, sizeof(warn)));
    assert_non_null(strstr(warn, "not_opted_in"));
    /* kube-system and a configured exclusion, whatever the annotation */
    json_object_set_new(json_object_get(json_object_get(req, "object"), "metadata"), "annotations",
                        json_pack("{s:s}", "dedupd.io/rightsize", "true"));
    json_object_set_new(req, "namespace", json_string("kube-system"));
    assert_null(mutate(f, rv, warn, sizeof(warn)));
    assert_non_null(strstr(warn, "excluded_namespace"));
    json_object_set_new(req, "namespace", json_string("batch-system"));
    assert_null(mutate(f, rv, warn, sizeof(warn)));
    assert_non_null(strstr(warn, "excluded_namespace"));
    /* not a Pod CREATE */
    json_object_set_new(req, "namespace", json_string("ml"));
    json_object_set_new(req, "operation", json_string("UPDATE"));
    assert_null(mutate(f, rv, warn, sizeof(warn)));
    assert_non_null(strstr(warn, "only Pod CREATE"));
    json_decref(rv);
}

static void test_dry_run_records_nothing(void **state)
{
    struct fx *f = *state;
    char warn[512], url[128];
    double before = metric(f, "dedupd_admission_dry_run_total ");
    snprintf(url, sizeof(url), "%s/v1/ledger", f->url);
    struct tt_reply l0 = tt_http(url, "GET", NULL, 0, 10);
    json_t *rv = fixture("k8s/admission/admission-review.request.pod-create.json");
    json_object_set_new(json_object_get(rv, "request"), "dryRun", json_true());
    json_t *patch = mutate(f, rv, warn, sizeof(warn));
    assert_non_null(patch); /* answered as it would be */
    assert_true(metric(f, "dedupd_admission_dry_run_total ") == before + 1);
    struct tt_reply l1 = tt_http(url, "GET", NULL, 0, 10);
    assert_int_equal(l0.status, 200);
    assert_string_equal(l0.body, l1.body); /* no ledger entry */
    free(l0.body);
    free(l1.body);
    json_decref(patch);
    json_decref(rv);
}

static void test_malformed(void **state)
{
    struct fx *f = *state;
    static const char *const no_uid[] = {"not json", "[]", "{\"request\":{}}",
                                         "{\"request\":{\"uid\":\"", "{\"request\":{\"uid\":12}}"};
    for (size_t i = 0; i < sizeof(no_uid) / sizeof(no_uid[0]); i++) {
        json_t *e = post_json(f, "/admission/mutate", no_uid[i], 400);
        assert_non_null(json_object_get(json_object_get(e, "error"), "message"));
        json_decref(e);
    }
    static const char *const with_uid[] = {
        "{\"request\":{\"uid\":\"u-1\"}}",
        "{\"request\":{\"uid\":\"u-1\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\","
        "\"object\":7}}",
        "{\"request\":{\"uid\":\"u-1\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\","
        "\"namespace\":\"ml\",\"object\":{\"metadata\":{},\"spec\":{\"containers\":[{"
        "\"resources\":{\"limits\":{\"memory\":\"lots\"}}}]}}}}",
    };
    for (size_t i = 0; i < sizeof(with_uid) / sizeof(with_uid[0]); i++) {
        json_t *rv = json_loads(with_uid[i], 0, NULL);
        char warn[512];
        assert_null(mutate(f, rv, warn, sizeof(warn)));
        assert_true(warn[0] != '\0');
        json_decref(rv);
    }
    /* /v1/rightsize: 400 naming what is wrong */
    json_t *e = post_json(f, "/v1/rightsize", "{\"spec\":{}}", 400);
    json_decref(e);
    e = post_json(f, "/v1/rightsize",
                  "{\"metadata\":{\"namespace\":\"ml\"},\"spec\":{\"containers\":[{\"resources\":"
                  "{\"requests\":{\"cpu\":\"x\"}}}]}}",
                  400);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(e, "error"), "message")),
               "spec.containers[0].resources.requests"));
    json_decref(e);
    /* still serving */
    assert_true(
        metric(f, "dedupd_admission_requests_total{route=\"mutate\",outcome=\"malformed\"} ") >= 7);
    assert_true(
        metric(f, "dedupd_admission_requests_total{route=\"mutate\",outcome=\"patched\"} ") >= 1);
}

/* dedupctl rightsize against the daemon: the table, the reasons and the
 * rewritten object; --json the daemon's document; a bad file is usage. */
/* The extender's workload profile learned from the owner's outcomes: the
 * reference pod (StatefulSet ml/trainer, 2 GPUs, claim ckpt-trainer-0 of
 * pool fast) has no I/O annotation, so /v1/placement takes the
 * right-sizing prediction (the history's 250 MB/s read, 40 MB/s write)
 * instead of the default (200 / 50); its own annotation still wins; an
 * owner without outcomes keeps the default. The pod's rates split over
 * its two claims, so the claim of ours carries half of each. */
static const json_t *claim_load(const json_t *pod, const char *claim)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(pod, "claims"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "claim")), claim) == 0)
            return c;
    }
    fail_msg("no claim %s in the profile", claim);
    return NULL;
}

static void test_learned_profile(void **state)
{
    struct fx *f = *state;
    json_t *ref = fixture("k8s/admission/admission-review.request.pod-create.json");
    json_t *pod = json_deep_copy(json_object_get(json_object_get(ref, "request"), "object"));
    json_decref(ref);
    json_t *meta = json_object_get(pod, "metadata");

    char *body = json_dumps(pod, JSON_COMPACT);
    json_t *r = post_json(f, "/v1/placement", body, 200);
    free(body);
    const json_t *prof = json_object_get(r, "pod");
    assert_string_equal(json_string_value(json_object_get(prof, "source")), "learned");
    char *notes = json_dumps(json_object_get(prof, "notes"), 0);
    assert_non_null(strstr(notes, "learned: right-sizing history/history"));
    free(notes);
    /* the pod's rates split evenly over its two claims (the other one is not
     * in the cache, so its access mode is unknown), as for any profile */
    const json_t *c = claim_load(prof, "ckpt-trainer-0");
    assert_true(fabs(json_number_value(json_object_get(c, "read_mbps")) - 125) < 1e-6);
    assert_true(fabs(json_number_value(json_object_get(c, "write_mbps")) - 20) < 1e-6);
    json_decref(r);

    /* its own annotation wins */
    json_object_set_new(meta, "annotations", json_pack("{s:s}", "dedupd.io/read-mbps", "10"));
    body = json_dumps(pod, JSON_COMPACT);
    r = post_json(f, "/v1/placement", body, 200);
    free(body);
    prof = json_object_get(r, "pod");
    assert_string_equal(json_string_value(json_object_get(prof, "source")), "annotations");
    c = claim_load(prof, "ckpt-trainer-0");
    assert_true(fabs(json_number_value(json_object_get(c, "read_mbps")) - 5) < 1e-6);
    json_decref(r);

    /* another owner, no outcomes: the default */
    json_object_del(meta, "annotations");
    json_object_set_new(json_array_get(json_object_get(meta, "ownerReferences"), 0), "name",
                        json_string("never-seen"));
    body = json_dumps(pod, JSON_COMPACT);
    r = post_json(f, "/v1/placement", body, 200);
    free(body);
    prof = json_object_get(r, "pod");
    assert_string_equal(json_string_value(json_object_get(prof, "source")), "default");
    c = claim_load(prof, "ckpt-trainer-0");
    assert_true(fabs(json_number_value(json_object_get(c, "read_mbps")) - 100) < 1e-6);
    json_decref(r);
    json_decref(pod);
}

/* Without --pod-events a prioritize writes no Event: no events object
 * (no metric lines) and nothing POSTed to the API server. */
static void test_no_pod_events_when_off(void **state)
{
    struct fx *f = *state;
    json_t *args = fixture("k8s/extender/prioritize.request.node-names.json");
    char *body = json_dumps(args, JSON_COMPACT);
    struct tt_reply r = post(f, "/scheduler/prioritize", body);
    assert_int_equal(r.status, 200);
    free(r.body);
    free(body);
    json_decref(args);
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", f->url);
    struct tt_reply m = tt_http(url, "GET", NULL, 0, 10);
    assert_int_equal(m.status, 200);
    assert_null(strstr(m.body, "dedupd_pod_events"));
    assert_non_null(strstr(m.body, "dedupd_extender_requests_total"));
    free(m.body);
    json_t *ev = tt_kubeapi_events(f->api);
    assert_int_equal(json_array_size(ev), 0);
    json_decref(ev);
}

static void test_dedupctl(void **state)
{
    struct fx *f = *state;
    char path[1200], *out = NULL, *err = NULL;
    snprintf(path, sizeof(path), "%s/pod.json", f->dir);
    json_t *rv = fixture("k8s/admission/admission-review.request.deployment-pod.json");
    assert_int_equal(
        json_dump_file(json_object_get(json_object_get(rv, "request"), "object"), path, 0), 0);
    json_decref(rv);
    const char *argv[] = {tt_bin("dedupctl"), "rightsize", "--remote", f->url, path, NULL};
    assert_int_equal(tt_run(argv, &out, &err), 0);
    assert_non_null(strstr(out, "opt-in pod_annotation"));
    assert_non_null(strstr(out, "loader"));
    assert_non_null(strstr(out, "rewritten object:"));
    assert_non_null(strstr(out, "dedupd.io/rightsize-prediction"));
    free(out);
    free(err);
    const char *jargv[] = {
        tt_bin("dedupctl"), "rightsize", "--json", "--remote", f->url, path, NULL};
    assert_int_equal(tt_run(jargv, &out, &err), 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(json_object_get(doc, "explanation"));
    json_decref(doc);
    free(out);
    free(err);
    const char *bad[] = {tt_bin("dedupctl"),  "rightsize", "--remote", f->url,
                         "/nonexistent.json", NULL};
    assert_int_equal(tt_run(bad, &out, &err), 2);
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_namespace_opt_in_and_static_cpus),
        cmocka_unit_test(test_deployment_pod),
        cmocka_unit_test(test_unchanged_with_warning),
        cmocka_unit_test(test_dry_run_records_nothing),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_learned_profile),
        cmocka_unit_test(test_no_pod_events_when_off),
        cmocka_unit_test(test_dedupctl),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
