/*
 * placement/admission without HTTP: golden AdmissionReview round trips on
 * the reference request (tests/fixtures/k8s/admission, from
 * shared/reference/k8s/admission) and a Deployment-created pod (empty
 * name, generateName, a sidecar and an init container, a user-set I/O
 * annotation), each response's patch decoded and checked op by op and
 * then applied; the opt-in rule; malformed reviews; and the policy on
 * predictions built here: margin, max step, no CPU limits, GPUs untouched,
 * an OOM-raised prediction and the OOM floor, static CPU manager nodes,
 * recommend mode, reinvocation. Also base64 against RFC 4648's vectors and
 * the reference response's patch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "helpers.h"
#include "placement/admission.h"

#define GIB 1073741824.0

static json_t *fixture(const char *name)
{
    char rel[256];
    size_t len;
    json_error_t je;
    snprintf(rel, sizeof(rel), "k8s/admission/%s", name);
    char *text = tt_fixture(rel, &len);
    json_t *doc = json_loadb(text, len, 0, &je);
    free(text);
    if (!doc)
        fail_msg("%s: %s", name, je.text);
    return doc;
}

/* Test-side base64 decoder (the project only encodes). */
static char *b64dec(const char *s)
{
    size_t n = strlen(s), j = 0;
    char *out = calloc(n + 1, 1);
    unsigned v = 0, bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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

static struct dd_rs_prediction prediction(double cpu, double mem, double rd, double wr)
{
    struct dd_rs_prediction p;
    memset(&p, 0, sizeof(p));
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        p.value[t] = (double)NAN;
        p.source[t] = "none";
        p.history.p95[t] = (double)NAN;
    }
    p.value[DD_RS_CPU] = cpu;
    p.value[DD_RS_MEMORY] = mem;
    p.value[DD_RS_READ] = rd;
    p.value[DD_RS_WRITE] = wr;
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        if (isfinite(p.value[t]))
            p.source[t] = "history";
    p.history.max_memory_bytes = (double)NAN;
    p.history.last_oom_memory_limit = (double)NAN;
    p.model_version = 0;
    return p;
}

static const struct dd_rs_live live3 = {
    .top_slowdown_pct = 4.5, .top_cpu_util = 0.3, .top_free_gpus = 6, .n_nodes = 3};

/* The decoded patch of a response, checked for its envelope. */
static json_t *response_patch(json_t *resp, const char *uid)
{
    json_t *r = json_object_get(resp, "response");
    assert_string_equal(json_string_value(json_object_get(resp, "apiVersion")),
                        "admission.k8s.io/v1");
    assert_string_equal(json_string_value(json_object_get(resp, "kind")), "AdmissionReview");
    assert_string_equal(json_string_value(json_object_get(r, "uid")), uid);
    assert_true(json_is_true(json_object_get(r, "allowed")));
    if (!json_object_get(r, "patch"))
        return NULL;
    assert_string_equal(json_string_value(json_object_get(r, "patchType")), "JSONPatch");
    char *dec = b64dec(json_string_value(json_object_get(r, "patch")));
    json_error_t je;
    json_t *p = json_loads(dec, 0, &je);
    free(dec);
    assert_non_null(p);
    assert_true(json_is_array(p));
    return p;
}

static void check_op(const json_t *patch, size_t i, const char *op, const char *path,
                     const char *value)
{
    const json_t *o = json_array_get(patch, i);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "op")), op);
    assert_string_equal(json_string_value(json_object_get(o, "path")), path);
    if (value)
        assert_string_equal(json_string_value(json_object_get(o, "value")), value);
}

/* A container's requests or limits value. */
static const char *q(const json_t *pod, size_t c, const char *which, const char *key)
{
    const json_t *ct =
        json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), c);
    return json_string_value(
        json_object_get(json_object_get(json_object_get(ct, "resources"), which), key));
}

static const char *ann(const json_t *pod, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), key));
}

/* Rewrites the review's pod; returns the patched copy of the pod. */
static json_t *rewrite(const struct dd_adm_options *o, const json_t *pod,
                       const struct dd_rs_prediction *p, bool static_nodes, struct dd_adm_result *r)
{
    char err[256] = "";
    assert_int_equal(dd_adm_rewrite(o, pod, p, &live3, static_nodes, r, err, sizeof(err)), 0);
    json_t *copy = json_deep_copy(pod);
    assert_int_equal(dd_adm_patch_apply(copy, r->patch, err, sizeof(err)), 0);
    return copy;
}

/* ---- golden round trips ---- */

static void test_reference_round_trip(void **state)
{
    (void)state;
    json_t *doc = fixture("admission-review.request.pod-create.json");
    struct dd_adm_review rv;
    struct dd_adm_options o;
    struct dd_adm_result r;
    char err[256] = "";

    assert_int_equal(dd_adm_review_decode(doc, &rv, err, sizeof(err)), 0);
    assert_string_equal(rv.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_string_equal(rv.kind, "Pod");
    assert_string_equal(rv.ns, "ml");
    assert_string_equal(rv.operation, "CREATE");
    assert_false(rv.dry_run);
    assert_non_null(rv.object);

    dd_adm_options_init(&o);
    /* no annotation: only the namespace label opts it in */
    assert_int_equal(dd_adm_opted_in(&o, rv.ns, rv.object, NULL), DD_ADM_OPT_NONE);
    assert_int_equal(dd_adm_opted_in(&o, rv.ns, rv.object, "enabled"), DD_ADM_OPT_NAMESPACE);

    struct dd_rs_prediction p = prediction(5.0, 40 * GIB, 800, 120);
    p.history.n = 7;
    p.history.max_memory_bytes = 42 * GIB;
    p.model_version = 3;
    p.source[DD_RS_CPU] = "model";
    assert_int_equal(dd_adm_rewrite(&o, rv.object, &p, &live3, false, &r, err, sizeof(err)), 0);
    assert_true(r.changed);
    json_t *resp = dd_adm_response(rv.uid, r.patch, NULL, 0);
    json_t *patch = response_patch(resp, rv.uid);
    assert_int_equal(json_array_size(patch), 5);
    check_op(patch, 0, "add", "/spec/containers/0/resources/requests/cpu", "5");
    check_op(patch, 1, "add", "/spec/containers/0/resources/requests/memory", "40Gi");
    check_op(patch, 2, "add", "/spec/containers/0/resources/limits/cpu", "6250m");
    /* 42 GiB observed peak x 1.2 = 51609.6 MiB, rounded up */
    check_op(patch, 3, "add", "/spec/containers/0/resources/limits/memory", "51610Mi");
    check_op(patch, 4, "add", "/metadata/annotations", NULL);
    json_t *anns = json_object_get(json_array_get(patch, 4), "value");
    assert_string_equal(json_string_value(json_object_get(anns, "dedupd.io/read-mbps")), "800.0");
    assert_string_equal(json_string_value(json_object_get(anns, "dedupd.io/write-mbps")), "120.0");
    json_t *pa = json_loads(
        json_string_value(json_object_get(anns, "dedupd.io/rightsize-prediction")), 0, NULL);
    assert_non_null(pa);
    assert_int_equal(json_integer_value(json_object_get(pa, "model_version")), 3);
    assert_true(json_real_value(
                    json_object_get(json_object_get(pa, "predicted"), "peak_cpu_cores")) == 5.0);
    assert_true(json_is_null(json_object_get(json_object_get(pa, "predicted"), "run_seconds")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(pa, "source"), "peak_cpu_cores")),
        "model");
    json_t *lv = json_object_get(pa, "live");
    assert_int_equal(json_integer_value(json_object_get(lv, "n_nodes")), 3);
    assert_true(json_real_value(json_object_get(lv, "top_slowdown_pct")) == 4.5);
    json_decref(pa);

    /* the patch applies to the request's object; GPUs are as they were */
    json_t *pod = json_deep_copy(rv.object);
    assert_int_equal(dd_adm_patch_apply(pod, patch, err, sizeof(err)), 0);
    assert_string_equal(q(pod, 0, "limits", "nvidia.com/gpu"), "2");
    assert_string_equal(q(pod, 0, "requests", "nvidia.com/gpu"), "2");
    assert_string_equal(q(pod, 0, "requests", "cpu"), "5");
    assert_string_equal(ann(pod, "dedupd.io/read-mbps"), "800.0");
    json_decref(pod);
    json_decref(patch);
    json_decref(resp);
    dd_adm_result_release(&r);
    json_decref(doc);
}

static void test_deployment_pod(void **state)
{
    (void)state;
    json_t *doc = fixture("admission-review.request.deployment-pod.json");
    struct dd_adm_review rv;
    struct dd_adm_options o;
    struct dd_adm_result r;
    char err[256] = "";

    assert_int_equal(dd_adm_review_decode(doc, &rv, err, sizeof(err)), 0);
    assert_string_equal(rv.ns, "vision");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rv.object, "metadata"), "name")) ?: "",
        "");
    dd_adm_options_init(&o);
    assert_int_equal(dd_adm_opted_in(&o, rv.ns, rv.object, NULL), DD_ADM_OPT_POD);

    /* cpu 6.25 (sidecar 0.25 of it) -> 6 over loader 3 : metrics 1;
     * memory 10 GiB + the sidecar's 128 MiB -> 10 GiB over 12 : 4 */
    struct dd_rs_prediction p = prediction(6.25, 10 * GIB + 128.0 * 1024 * 1024, 300, 90);
    assert_int_equal(dd_adm_rewrite(&o, rv.object, &p, &live3, false, &r, err, sizeof(err)), 0);
    json_t *resp = dd_adm_response(rv.uid, r.patch, NULL, 0);
    json_t *patch = response_patch(resp, "3f9c2a71-5b0e-4d8a-9c61-2e7f4b8a1d05");
    size_t i = 0;
    check_op(patch, i++, "add", "/spec/containers/0/resources/requests/cpu", "4500m");
    check_op(patch, i++, "add", "/spec/containers/0/resources/requests/memory", "7680Mi");
    check_op(patch, i++, "add", "/spec/containers/0/resources/limits/cpu", "5625m");
    check_op(patch, i++, "add", "/spec/containers/0/resources/limits/memory", "9Gi");
    check_op(patch, i++, "add", "/spec/containers/1/resources/requests/cpu", "1500m");
    check_op(patch, i++, "add", "/spec/containers/1/resources/requests/memory", "2560Mi");
    /* metrics had no limits object: added whole */
    check_op(patch, i++, "add", "/spec/containers/1/resources/limits", NULL);
    json_t *lim = json_object_get(json_array_get(patch, i - 1), "value");
    assert_string_equal(json_string_value(json_object_get(lim, "cpu")), "1875m");
    assert_string_equal(json_string_value(json_object_get(lim, "memory")), "3Gi");
    /* annotations exist: one op per key, '/' escaped as ~1; the user's
     * write-mbps kept */
    check_op(patch, i++, "add", "/metadata/annotations/dedupd.io~1rightsize-prediction", NULL);
    check_op(patch, i++, "add", "/metadata/annotations/dedupd.io~1read-mbps", "300.0");
    assert_int_equal(json_array_size(patch), i);
    size_t k;
    json_t *op;
    json_array_foreach(patch, k, op)
    {
        const char *path = json_string_value(json_object_get(op, "path"));
        assert_null(strstr(path, "initContainers"));
        assert_null(strstr(path, "gpu"));
    }
    json_t *pod = json_deep_copy(rv.object);
    assert_int_equal(dd_adm_patch_apply(pod, patch, err, sizeof(err)), 0);
    assert_string_equal(ann(pod, "dedupd.io/write-mbps"), "50");
    assert_string_equal(ann(pod, "dedupd.io/rightsize"), "true");
    assert_string_equal(q(pod, 0, "limits", "nvidia.com/gpu"), "1");
    json_t *init =
        json_array_get(json_object_get(json_object_get(pod, "spec"), "initContainers"), 1);
    assert_true(json_equal(
        init,
        json_array_get(json_object_get(json_object_get(rv.object, "spec"), "initContainers"), 1)));
    json_decref(pod);
    json_decref(patch);
    json_decref(resp);
    dd_adm_result_release(&r);
    json_decref(doc);
}

static void test_dry_run_and_optin(void **state)
{
    (void)state;
    json_t *doc = fixture("admission-review.request.pod-create.json");
    json_t *req = json_object_get(doc, "request");
    struct dd_adm_review rv;
    struct dd_adm_options o;
    char err[256] = "";

    json_object_set_new(req, "dryRun", json_true());
    assert_int_equal(dd_adm_review_decode(doc, &rv, err, sizeof(err)), 0);
    assert_true(rv.dry_run);

    dd_adm_options_init(&o);
    json_t *pod = json_object_get(req, "object");
    json_t *md = json_object_get(pod, "metadata");
    json_object_set_new(md, "annotations", json_pack("{s:s}", "dedupd.io/rightsize", "true"));
    assert_int_equal(dd_adm_opted_in(&o, "ml", pod, NULL), DD_ADM_OPT_POD);
    /* kube-system and dedupd's own namespace: never, whatever the pod says */
    assert_int_equal(dd_adm_opted_in(&o, "kube-system", pod, "enabled"), DD_ADM_OPT_EXCLUDED);
    assert_int_equal(dd_adm_options_exclude(&o, "dedupd-system"), 0);
    assert_int_equal(dd_adm_options_exclude(&o, "dedupd-system"), 0);
    assert_int_equal(o.n_exclude, 2);
    assert_int_equal(dd_adm_opted_in(&o, "dedupd-system", pod, NULL), DD_ADM_OPT_EXCLUDED);
    /* "false" opts out of the namespace's opt-in; other label values do not opt in */
    json_object_set_new(json_object_get(md, "annotations"), "dedupd.io/rightsize",
                        json_string("false"));
    assert_int_equal(dd_adm_opted_in(&o, "ml", pod, "enabled"), DD_ADM_OPT_OUT);
    json_object_del(md, "annotations");
    assert_int_equal(dd_adm_opted_in(&o, "ml", pod, "disabled"), DD_ADM_OPT_NONE);
    assert_string_equal(dd_adm_optin_name(DD_ADM_OPT_EXCLUDED), "excluded_namespace");

    /* a response without a patch: allowed, the warning, no patchType */
    const char *w[] = {"dedupd: not opted in", NULL};
    json_t *resp = dd_adm_response(rv.uid, NULL, w, 2);
    assert_null(response_patch(resp, rv.uid));
    json_t *r = json_object_get(resp, "response");
    assert_null(json_object_get(r, "patchType"));
    assert_int_equal(json_array_size(json_object_get(r, "warnings")), 1);
    json_decref(resp);
    json_decref(doc);
}

static void test_malformed_reviews(void **state)
{
    (void)state;
    static const struct {
        const char *json, *err, *uid;
    } cases[] = {
        {"[]", "expected an AdmissionReview object", ""},
        {"{}", "request: expected an object", ""},
        {"{\"request\":{}}", "request.uid: missing", ""},
        {"{\"request\":{\"uid\":7}}", "request.uid: expected a string", ""},
        {"{\"request\":{\"uid\":\"\"}}", "request.uid: expected a non-empty string", ""},
        {"{\"request\":{\"uid\":\"u1\"}}", "request.kind: expected an object", "u1"},
        {"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"request\":{\"uid\":\"u2\"}}",
         "apiVersion: expected \"admission.k8s.io/v1\"", "u2"},
        {"{\"request\":{\"uid\":\"u3\",\"kind\":{\"kind\":\"Pod\"}}}", "request.operation: missing",
         "u3"},
        {"{\"request\":{\"uid\":\"u4\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\","
         "\"dryRun\":\"yes\"}}",
         "request.dryRun: expected a boolean", "u4"},
        {"{\"request\":{\"uid\":\"u5\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\","
         "\"object\":\"pod\"}}",
         "request.object: expected an object", "u5"},
        {"{\"request\":{\"uid\":\"u6\",\"kind\":{\"kind\":\"Pod\"},\"operation\":\"CREATE\","
         "\"namespace\":[]}}",
         "request.namespace: expected a string", "u6"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        json_t *doc = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        struct dd_adm_review rv;
        char err[256] = "";
        assert_non_null(doc);
        assert_int_equal(dd_adm_review_decode(doc, &rv, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, cases[i].err);
        assert_string_equal(rv.uid, cases[i].uid);
        json_decref(doc);
    }

    /* pods the rewrite refuses, naming the field */
    static const struct {
        const char *pod, *err;
    } pods[] = {
        {"{\"metadata\":{},\"spec\":{}}", "spec.containers: expected a non-empty array"},
        {"{\"spec\":{\"containers\":[{}]}}", "metadata: expected an object"},
        {"{\"metadata\":{},\"spec\":{\"containers\":[7]}}",
         "spec.containers[0]: expected an object"},
        {"{\"metadata\":{},\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"memory\":"
         "\"lots\"}}}]}}",
         "spec.containers[0].resources.limits[memory]: bad quantity 'lots'"},
        {"{\"metadata\":{},\"spec\":{\"containers\":[{\"resources\":[]}]}}",
         "spec.containers[0].resources: expected an object"},
        {"{\"metadata\":{},\"spec\":{\"containers\":[{}],\"initContainers\":[{\"resources\":{"
         "\"requests\":{\"cpu\":true}}}]}}",
         "spec.initContainers[0].resources.requests[cpu]: expected a quantity"},
    };
    struct dd_adm_options o;
    dd_adm_options_init(&o);
    struct dd_rs_prediction p = prediction(1, GIB, (double)NAN, (double)NAN);
    for (size_t i = 0; i < DD_ARRAY_SIZE(pods); i++) {
        json_t *pod = json_loads(pods[i].pod, 0, NULL);
        struct dd_adm_result r;
        char err[256] = "";
        assert_non_null(pod);
        assert_int_equal(dd_adm_rewrite(&o, pod, &p, NULL, false, &r, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, pods[i].err);
        json_decref(pod);
    }
}

/* ---- the policy ---- */

static json_t *one_container(const char *cpu_req, const char *cpu_lim, const char *mem_req,
                             const char *mem_lim, const char *gpus)
{
    json_t *req = json_object(), *lim = json_object();
    if (cpu_req)
        json_object_set_new(req, "cpu", json_string(cpu_req));
    if (cpu_lim)
        json_object_set_new(lim, "cpu", json_string(cpu_lim));
    if (mem_req)
        json_object_set_new(req, "memory", json_string(mem_req));
    if (mem_lim)
        json_object_set_new(lim, "memory", json_string(mem_lim));
    if (gpus) {
        json_object_set_new(req, "nvidia.com/gpu", json_string(gpus));
        json_object_set_new(lim, "nvidia.com/gpu", json_string(gpus));
    }
    return json_pack("{s:{s:s}, s:{s:[{s:s, s:{s:o, s:o}}]}}", "metadata", "generateName", "p-",
                     "spec", "containers", "name", "c", "resources", "requests", req, "limits",
                     lim);
}

static bool has_reason(const struct dd_adm_result *r, const char *needle)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r->explanation, "reasons"), i, v)
    {
        if (strstr(json_string_value(v), needle))
            return true;
    }
    return false;
}

static void test_margin_and_step(void **state)
{
    (void)state;
    struct dd_adm_options o;
    struct dd_adm_result r;
    dd_adm_options_init(&o);

    /* step: 8 cores -> predicted 1 -> at most down to 4; 1 -> 10: up to 2 */
    json_t *pod = one_container("8", "8", "8Gi", "8Gi", NULL);
    struct dd_rs_prediction p = prediction(1.0, 1 * GIB, (double)NAN, (double)NAN);
    json_t *out = rewrite(&o, pod, &p, false, &r);
    assert_string_equal(q(out, 0, "requests", "cpu"), "4");
    assert_string_equal(q(out, 0, "requests", "memory"), "4Gi");
    assert_true(has_reason(&r, "max step down"));
    json_decref(out);
    dd_adm_result_release(&r);
    json_decref(pod);

    pod = one_container("1", "1", "1Gi", "1Gi", NULL);
    p = prediction(10.0, 10 * GIB, (double)NAN, (double)NAN);
    out = rewrite(&o, pod, &p, false, &r);
    assert_string_equal(q(out, 0, "requests", "cpu"), "2");
    assert_string_equal(q(out, 0, "limits", "cpu"), "2");
    assert_string_equal(q(out, 0, "requests", "memory"), "2Gi");
    assert_true(has_reason(&r, "max step up"));
    json_decref(out);
    dd_adm_result_release(&r);

    /* a configured step */
    o.max_step_up = 4;
    out = rewrite(&o, pod, &p, false, &r);
    assert_string_equal(q(out, 0, "requests", "cpu"), "4");
    json_decref(out);
    dd_adm_result_release(&r);
    dd_adm_options_init(&o);

    /* margin: the memory limit is never below the observed peak + margin,
     * even when the step would keep it lower */
    p = prediction(1.0, 1 * GIB, (double)NAN, (double)NAN);
    p.history.n = 4;
    p.history.max_memory_bytes = 5 * GIB;
    out = rewrite(&o, pod, &p, false, &r);
    assert_string_equal(q(out, 0, "limits", "memory"), "6Gi"); /* 5 GiB x 1.2 */
    assert_string_equal(q(out, 0, "requests", "memory"), "1Gi");
    assert_true(has_reason(&r, "observed peak"));
    json_decref(out);
    dd_adm_result_release(&r);
    o.memory_margin = 0.5;
    out = rewrite(&o, pod, &p, false, &r);
    assert_string_equal(q(out, 0, "limits", "memory"), "7680Mi"); /* 5 GiB x 1.5 */
    json_decref(out);
    dd_adm_result_release(&r);
    json_decref(pod);

    /* a pod with no resources at all: resources added whole, no step */
    pod = json_pack("{s:{s:s}, s:{s:[{s:s}]}}", "metadata", "name", "x", "spec", "containers",
                    "name", "c");
    dd_adm_options_init(&o);
    p = prediction(0.5, 512.0 * 1024 * 1024, (double)NAN, (double)NAN);
    out = rewrite(&o, pod, &p, false, &r);
    check_op(r.patch, 0, "add", "/spec/containers/0/resources", NULL);
    assert_string_equal(q(out, 0, "requests", "cpu"), "500m");
    assert_string_equal(q(out, 0, "limits", "cpu"), "625m");
    assert_string_equal(q(out, 0, "limits", "memory"), "615Mi"); /* 614.4 up */
    json_decref(out);
    dd_adm_result_release(&r);
    json_decref(pod);
}

static void test_no_cpu_limits_and_gpus(void **state)
{
    (void)state;
    struct dd_adm_options o;
    struct dd_adm_result r;
    dd_adm_options_init(&o);
    o.no_cpu_limits = true;

    json_t *pod = one_container("4", "4", "8Gi", "8Gi", "4");
    struct dd_rs_prediction p = prediction(3.0, 6 * GIB, (double)NAN, (double)NAN);
    json_t *out = rewrite(&o, pod, &p, false, &r);
    assert_string_equal(q(out, 0, "requests", "cpu"), "3");
    assert_null(q(out, 0, "limits", "cpu"));
    assert_string_equal(q(out, 0, "limits", "memory"), "7373Mi"); /* 7372.8 up */
    assert_string_equal(q(out, 0, "limits", "nvidia.com/gpu"), "4");
    assert_string_equal(q(out, 0, "requests", "nvidia.com/gpu"), "4");
    bool removed = false;
    size_t i;
    json_t *op;
    json_array_foreach(r.patch, i, op)
    {
        if (strcmp(json_string_value(json_object_get(op, "op")), "remove") == 0) {
            assert_string_equal(json_string_value(json_object_get(op, "path")),
                                "/spec/containers/0/resources/limits/cpu");
            removed = true;
        }
        assert_null(strstr(json_string_value(json_object_get(op, "path")), "gpu"));
    }
    assert_true(removed);
    assert_int_equal(r.containers[0].gpus, 4);
    json_decref(out);
    dd_adm_result_release(&r);
    json_decref(pod);

    /* a configured GPU resource is never touched either; a resource
     * without a prediction is left alone */
    const char *gpus[] = {"amd.com/gpu"};
    o.gpu_resources = gpus;
    o.n_gpu_resources = 1;
    pod = json_pack("{s:{}, s:{s:[{s:{s:{s:s, s:s}}}]}}", "metadata", "spec", "containers",
                    "resources", "limits", "amd.com/gpu", "2", "memory", "2Gi");
    p = prediction((double)NAN, 1 * GIB, (double)NAN, (double)NAN);
    out = rewrite(&o, pod, &p, false, &r);
    assert_int_equal(r.containers[0].gpus, 2);
    assert_string_equal(q(out, 0, "limits", "amd.com/gpu"), "2");
    assert_null(q(out, 0, "requests", "cpu"));
    assert_true(has_reason(&r, "cpu: no prediction"));
    json_decref(out);
    dd_adm_result_release(&r);
    json_decref(pod);
}

static void test_oom(void **state)
{
    (void)state;
    struct dd_adm_options o;
    struct dd_adm_result r1, r2;
    dd_adm_options_init(&o);
    json_t *pod = one_container("2", "2", "4Gi", "4Gi", NULL);

    /* a prediction raised after an OOMKilled run gives a higher limit */
    struct dd_rs_prediction before = prediction(2, 3 * GIB, (double)NAN, (double)NAN);
    struct dd_rs_prediction after = prediction(2, 4.5 * GIB, (double)NAN, (double)NAN);
    after.history.n = 3;
    after.history.oom_killed = 1;
    after.history.last_oom_memory_limit = 4 * GIB;
    json_t *a = rewrite(&o, pod, &before, false, &r1);
    json_t *b = rewrite(&o, pod, &after, false, &r2);
    assert_true(r2.containers[0].memory_limit[1] > r1.containers[0].memory_limit[1]);
    /* and never below 1.5 x the limit it was killed at */
    assert_true(r2.containers[0].memory_limit[1] >= 6 * GIB);
    assert_string_equal(q(b, 0, "limits", "memory"), "6Gi");
    assert_true(has_reason(&r2, "OOMKilled"));
    json_decref(a);
    json_decref(b);
    dd_adm_result_release(&r1);
    dd_adm_result_release(&r2);

    /* the OOM floor also wins over a low prediction and the step */
    struct dd_rs_prediction low = prediction(2, 1 * GIB, (double)NAN, (double)NAN);
    low.history.oom_killed = 2;
    low.history.last_oom_memory_limit = 8 * GIB;
    b = rewrite(&o, pod, &low, false, &r2);
    assert_string_equal(q(b, 0, "limits", "memory"), "12Gi");
    assert_string_equal(q(b, 0, "requests", "memory"), "2Gi"); /* step down 0.5 */
    json_decref(b);
    dd_adm_result_release(&r2);
    json_decref(pod);
}

static void test_static_cpu_manager(void **state)
{
    (void)state;
    struct dd_adm_options o;
    struct dd_adm_result r;
    dd_adm_options_init(&o);
    json_t *pod = one_container("4", "6", "8Gi", "12Gi", "1");

    struct dd_rs_prediction p = prediction(2.4, 6 * GIB, (double)NAN, (double)NAN);
    json_t *out = rewrite(&o, pod, &p, true, &r);
    assert_true(r.static_cpus);
    assert_string_equal(q(out, 0, "requests", "cpu"), "3");
    assert_string_equal(q(out, 0, "limits", "cpu"), "3");
    assert_string_equal(q(out, 0, "requests", "memory"), q(out, 0, "limits", "memory"));
    assert_true(has_reason(&r, "Guaranteed QoS"));
    json_decref(out);
    dd_adm_result_release(&r);

    /* the same pod on nodes without the label: Burstable as predicted */
    out = rewrite(&o, pod, &p, false, &r);
    assert_false(r.static_cpus);
    assert_string_equal(q(out, 0, "requests", "cpu"), "2400m");
    json_decref(out);
    dd_adm_result_release(&r);

    /* below one core it does not help, and says so */
    p = prediction(0.3, 6 * GIB, (double)NAN, (double)NAN);
    json_decref(pod);
    pod = one_container("500m", "1", "8Gi", "12Gi", NULL);
    out = rewrite(&o, pod, &p, true, &r);
    assert_false(r.static_cpus);
    assert_true(has_reason(&r, "below one core"));
    json_decref(out);
    dd_adm_result_release(&r);

    /* no_cpu_limits excludes it */
    o.no_cpu_limits = true;
    p = prediction(2.4, 6 * GIB, (double)NAN, (double)NAN);
    out = rewrite(&o, pod, &p, true, &r);
    assert_false(r.static_cpus);
    assert_true(has_reason(&r, "no_cpu_limits"));
    json_decref(out);
    dd_adm_result_release(&r);
    json_decref(pod);
}

static void test_recommend_and_reinvocation(void **state)
{
    (void)state;
    json_t *doc = fixture("admission-review.request.deployment-pod.json");
    json_t *pod = json_object_get(json_object_get(doc, "request"), "object");
    struct dd_adm_options o;
    struct dd_adm_result r;
    dd_adm_options_init(&o);
    o.mode = DD_ADM_RECOMMEND;
    struct dd_rs_prediction p = prediction(2, 4 * GIB, 100, 100);
    json_t *out = rewrite(&o, pod, &p, false, &r);
    size_t i;
    json_t *op;
    json_array_foreach(r.patch, i, op)
    {
        assert_non_null(
            strstr(json_string_value(json_object_get(op, "path")), "/metadata/annotations/"));
    }
    assert_int_equal(json_array_size(r.patch), 2); /* prediction + recommendation */
    json_t *rec = json_loads(ann(out, "dedupd.io/rightsize-recommendation"), 0, NULL);
    assert_non_null(rec);
    assert_int_equal(json_array_size(json_object_get(rec, "containers")), 2);
    assert_null(ann(out, "dedupd.io/read-mbps"));
    assert_string_equal(q(out, 0, "requests", "cpu"), "3");
    json_decref(rec);
    dd_adm_result_release(&r);

    /* reinvoked on the pod it already annotated: nothing more */
    o.mode = DD_ADM_ENFORCE;
    struct dd_adm_result r2;
    char err[128];
    assert_int_equal(dd_adm_rewrite(&o, out, &p, &live3, false, &r2, err, sizeof(err)), 0);
    assert_false(r2.changed);
    assert_int_equal(json_array_size(r2.patch), 0);
    assert_true(has_reason(&r2, "already right-sized"));
    dd_adm_result_release(&r2);
    json_decref(out);
    json_decref(doc);
}

/* ---- patch, base64 ---- */

static void test_base64_and_patch(void **state)
{
    (void)state;
    static const char *const v[][2] = {{"", ""},
                                       {"f", "Zg=="},
                                       {"fo", "Zm8="},
                                       {"foo", "Zm9v"},
                                       {"foob", "Zm9vYg=="},
                                       {"fooba", "Zm9vYmE="},
                                       {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < DD_ARRAY_SIZE(v); i++) {
        char *b = dd_adm_base64(v[i][0], strlen(v[i][0]));
        assert_string_equal(b, v[i][1]);
        dd_free(b);
    }
    /* the reference response's patch is the base64 of the decoded patch
     * in compact form */
    json_t *dec = fixture("admission-review.response.patch.decoded.json");
    json_t *want = fixture("admission-review.response.patch.json");
    json_t *resp = dd_adm_response("705ab4f5-6393-11e8-b7cc-42010a800002", dec, NULL, 0);
    assert_true(json_equal(resp, want));
    json_decref(resp);
    json_decref(want);

    /* and applies to the reference pod (~1 unescaped) */
    json_t *doc = fixture("admission-review.request.pod-create.json");
    json_t *pod = json_object_get(json_object_get(doc, "request"), "object");
    char err[256] = "";
    assert_int_equal(dd_adm_patch_apply(pod, dec, err, sizeof(err)), 0);
    assert_string_equal(q(pod, 0, "limits", "dedup.example.io/vdo"), "1");
    assert_string_equal(ann(pod, "dedup.example.io/logical-request-bytes"), "2199023255552");

    static const struct {
        const char *patch, *err;
    } bad[] = {
        {"{}", "patch: expected an array"},
        {"[{\"op\":\"move\",\"path\":\"/a\"}]", "patch[0]: op 'move' not supported"},
        {"[{\"op\":\"add\",\"path\":\"/no/such\",\"value\":1}]", "patch[0]: '/no/such': no parent"},
        {"[{\"op\":\"remove\",\"path\":\"/metadata/nope\"}]",
         "patch[0]: '/metadata/nope': no such member"},
        {"[{\"op\":\"add\",\"path\":\"/spec/containers/7\",\"value\":1}]",
         "patch[0]: '/spec/containers/7': no such location"},
        {"[{\"op\":\"add\",\"path\":\"x\",\"value\":1}]",
         "patch[0]: expected op and a path starting with '/'"},
        {"[{\"op\":\"add\",\"path\":\"/a~2\",\"value\":1}]", "patch[0]: bad path '/a~2'"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        json_t *p = json_loads(bad[i].patch, 0, NULL);
        assert_int_equal(dd_adm_patch_apply(pod, p, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, bad[i].err);
        json_decref(p);
    }
    json_t *p =
        json_loads("[{\"op\":\"add\",\"path\":\"/spec/containers/-\",\"value\":{}},"
                   "{\"op\":\"replace\",\"path\":\"/spec/containers/1\",\"value\":{\"a\":1}},"
                   "{\"op\":\"remove\",\"path\":\"/spec/containers/0\"}]",
                   0, NULL);
    assert_int_equal(dd_adm_patch_apply(pod, p, err, sizeof(err)), 0);
    json_t *cs = json_object_get(json_object_get(pod, "spec"), "containers");
    assert_int_equal(json_array_size(cs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cs, 0), "a")), 1);
    json_decref(p);
    json_decref(dec);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_round_trip),
        cmocka_unit_test(test_deployment_pod),
        cmocka_unit_test(test_dry_run_and_optin),
        cmocka_unit_test(test_malformed_reviews),
        cmocka_unit_test(test_margin_and_step),
        cmocka_unit_test(test_no_cpu_limits_and_gpus),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_static_cpu_manager),
        cmocka_unit_test(test_recommend_and_reinvocation),
        cmocka_unit_test(test_base64_and_patch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
