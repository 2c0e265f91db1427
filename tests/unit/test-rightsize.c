/*
 * placement/rightsize: pod and outcome decoding (owners, init containers
 * and sidecars, quantities, errors naming the field), the per-owner
 * history and its fallback, the OOM raise, the category dictionary's
 * stability across versions, save/load, and training on generated
 * outcomes with a known relation (bench/rsgen.h): hold-out MAPE <= 15 %
 * at 2,000 outcomes and better than at 200.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/rsgen.h"
#include "helpers.h"
#include "placement/rightsize.h"

static void near(double a, double b, double tol)
{
    if (!(fabs(a - b) <= tol))
        fail_msg("%.17g is not %.17g (within %g)", a, b, tol);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void test_pod(void **state)
{
    (void)state;
    json_t *j = parse(
        "{\"metadata\": {\"generateName\": \"web-5d8f7c9b4-\", \"namespace\": \"ml\", "
        "\"labels\": {\"pod-template-hash\": \"5d8f7c9b4\"}, "
        "\"ownerReferences\": [{\"kind\": \"ReplicaSet\", \"name\": \"web-5d8f7c9b4\", "
        "\"controller\": true}]},"
        " \"spec\": {\"containers\": [{\"name\": \"a\", \"image\": \"vllm/vllm-openai:v0.2\", "
        "\"resources\": {\"requests\": {\"cpu\": \"1500m\", \"memory\": \"4Gi\", "
        "\"nvidia.com/gpu\": \"1\"}, \"limits\": {\"memory\": \"8Gi\"}}},"
        "  {\"name\": \"b\", \"image\": \"busybox\", \"resources\": {\"limits\": {\"cpu\": "
        "\"1\"}}}],"
        " \"initContainers\": [{\"name\": \"init\", \"resources\": {\"requests\": {\"cpu\": "
        "\"4\"}}},"
        "  {\"name\": \"side\", \"restartPolicy\": \"Always\", \"resources\": {\"requests\": "
        "{\"cpu\": \"250m\"}}}],"
        " \"volumes\": [{\"name\": \"d\", \"persistentVolumeClaim\": {\"claimName\": \"x\"}}]}}");
    struct dd_rs_pod p;
    char err[256] = "", key[512];
    assert_int_equal(dd_rs_pod_from_json(j, NULL, 0, &p, err, sizeof(err)), 0);
    assert_string_equal(p.owner_kind, "Deployment");
    assert_string_equal(p.owner_name, "web");
    assert_string_equal(p.name, "");
    assert_string_equal(p.framework, "vllm");
    assert_string_equal(p.workload, "inference");
    assert_int_equal(p.n_containers, 4);
    assert_true(p.containers[3].sidecar && p.containers[2].init && !p.containers[2].sidecar);
    /* 1.5 + 1 (limit defaults the request) + 0.25 sidecar, against init 4 */
    near(p.cpu_request, 4.0, 1e-9);
    near(p.memory_request, 4.0 * 1073741824.0, 1);
    near(p.memory_limit, 8.0 * 1073741824.0, 1);
    near(p.gpus, 1.0, 1e-9);
    assert_int_equal(p.n_claims, 1);
    dd_rs_pod_owner_key(&p, key, sizeof(key));
    assert_string_equal(key, "ml/Deployment/web");
    json_decref(j);

    /* errors name the field */
    static const struct {
        const char *doc, *err;
    } bad[] = {
        {"[]", "pod"},
        {"{\"spec\": {}}", "spec.containers"},
        {"{\"spec\": {\"containers\": [{\"resources\": {\"limits\": {\"memory\": \"2x\"}}}]}}",
         "spec.containers[0].resources.limits.memory"},
        {"{\"metadata\": {\"annotations\": {\"dedupd.io/workload\": \"gaming\"}}, \"spec\": "
         "{\"containers\": [{}]}}",
         "annotations.dedupd.io/workload"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i].doc);
        err[0] = '\0';
        assert_int_equal(dd_rs_pod_from_json(j, NULL, 0, &p, err, sizeof(err)), -EINVAL);
        if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
            fail_msg("case %zu: '%s' does not start with '%s'", i, err, bad[i].err);
        json_decref(j);
    }
}

static void test_owner_and_image(void **state)
{
    (void)state;
    char out[64], fw[32], wl[32];
    assert_int_equal(dd_rs_strip_template_hash("web-5d8f7c9b4", NULL, out, sizeof(out)), 1);
    assert_string_equal(out, "web");
    assert_int_equal(dd_rs_strip_template_hash("my-service", NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "my-service");
    assert_int_equal(dd_rs_strip_template_hash("train-abc", "xyz", out, sizeof(out)), 0);
    dd_rs_guess_from_image("nvcr.io/nvidia/tritonserver:23.10", fw, sizeof(fw), wl, sizeof(wl));
    assert_string_equal(fw, "triton");
    assert_string_equal(wl, "inference");
    dd_rs_guess_from_image("PyTorch/PyTorch:2.1", fw, sizeof(fw), wl, sizeof(wl));
    assert_string_equal(fw, "pytorch");
    assert_string_equal(wl, "training");
    dd_rs_guess_from_image("nginx:1.25", fw, sizeof(fw), wl, sizeof(wl));
    assert_string_equal(fw, "");
}

static void outcome(struct dd_rs_outcome *o, const char *text)
{
    char err[256] = "";
    json_t *j = parse(text);
    if (dd_rs_outcome_from_json(j, o, err, sizeof(err)) < 0)
        fail_msg("outcome refused: %s", err);
    json_decref(j);
}

static void test_outcome(void **state)
{
    (void)state;
    struct dd_rs_outcome o, again;
    char err[256];
    outcome(&o, "{\"pod_uid\": \"u1\", \"namespace\": \"ml\", \"owner\": {\"kind\": "
                "\"ReplicaSet\", \"name\": \"api-7c9d5b4f8\"}, \"annotations\": "
                "{\"dedupd.io/rightsize-prediction\": \"{\\\"model_version\\\": 3, \\\"live\\\": "
                "{\\\"top_cpu_util\\\": 0.4, \\\"n_nodes\\\": 2}}\"}, \"requests\": {\"cpu\": "
                "\"500m\", \"memory\": \"1Gi\"}, \"limits\": {\"memory\": \"2Gi\"}, "
                "\"started_at\": 100, \"finished_at\": 160.5, \"peak_cpu_cores\": 0.3, "
                "\"exit_code\": 137, \"reason\": \"OOMKilled\"}");
    assert_string_equal(o.owner_kind, "Deployment");
    assert_string_equal(o.owner_name, "api");
    near(o.target[DD_RS_RUNTIME], 60.5, 1e-9);
    near(o.pod.cpu_request, 0.5, 1e-9);
    near(o.live.top_cpu_util, 0.4, 1e-9);
    assert_int_equal(o.live.n_nodes, 2);
    assert_true(isnan(o.target[DD_RS_MEMORY]));
    assert_int_equal(o.exit_code, 137);
    /* the stored form reads back the same */
    json_t *w = dd_rs_outcome_to_json(&o);
    assert_int_equal(dd_rs_outcome_from_json(w, &again, err, sizeof(err)), 0);
    json_t *w2 = dd_rs_outcome_to_json(&again);
    assert_true(json_equal(w, w2));
    json_decref(w);
    json_decref(w2);

    static const struct {
        const char *doc, *err;
    } bad[] = {
        {"{\"namespace\": \"a\", \"requests\": {}}", "pod_uid"},
        {"{\"pod_uid\": \"a\", \"requests\": {}}", "namespace"},
        {"{\"pod_uid\": \"a\", \"namespace\": \"b\"}", "requests"},
        {"{\"pod_uid\": \"a\", \"namespace\": \"b\", \"requests\": {\"cpu\": \"x\"}}",
         "requests.cpu"},
        {"{\"pod_uid\": \"a\", \"namespace\": \"b\", \"requests\": {}, \"peak_memory_bytes\": -1}",
         "peak_memory_bytes"},
        {"{\"pod_uid\": \"a\", \"namespace\": \"b\", \"requests\": {}, \"read_mbps\": \"7\"}",
         "read_mbps"},
        {"{\"pod_uid\": \"a\", \"namespace\": \"b\", \"requests\": {}, \"started_at\": 5, "
         "\"finished_at\": 4}",
         "finished_at"},
        {"{\"pod_uid\": \"a\", \"namespace\": \"b\", \"requests\": {}, \"owner\": 3}", "owner"},
        {"{\"pod_uid\": \"a\", \"namespace\": \"b\", \"requests\": {}, \"exit_code\": 1.5}",
         "exit_code"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = parse(bad[i].doc);
        err[0] = '\0';
        assert_int_equal(dd_rs_outcome_from_json(j, &o, err, sizeof(err)), -EINVAL);
        if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
            fail_msg("case %zu: '%s' does not start with '%s'", i, err, bad[i].err);
        json_decref(j);
    }
}

static void test_history_oom_replace(void **state)
{
    (void)state;
    struct dd_rs_data *d;
    struct dd_rs_model *m;
    struct dd_rs_prediction p;
    struct dd_rs_outcome o;
    char text[512];

    assert_int_equal(dd_rs_data_new(&d), 0);
    /* no model, no history: nothing */
    outcome(&o, "{\"pod_uid\": \"x\", \"namespace\": \"ml\", \"owner\": {\"kind\": \"Job\", "
                "\"name\": \"etl\"}, \"requests\": {}}");
    assert_int_equal(dd_rs_predict(NULL, &o.pod, NULL, &p), 0);
    assert_string_equal(p.source[DD_RS_CPU], "none");
    assert_true(isnan(p.value[DD_RS_CPU]));
    for (int i = 1; i <= 20; i++) {
        snprintf(text, sizeof(text),
                 "{\"pod_uid\": \"p%d\", \"namespace\": \"ml\", \"owner\": {\"kind\": \"Job\", "
                 "\"name\": \"etl\"}, \"requests\": {\"memory\": \"1Gi\"}, \"limits\": "
                 "{\"memory\": \"2Gi\"}, \"finished_at\": %d, \"peak_cpu_cores\": %d, "
                 "\"peak_memory_bytes\": 1e9, \"reason\": \"Completed\"}",
                 i, 1000 + i, i);
        outcome(&o, text);
        assert_int_equal(dd_rs_data_add(d, &o, i), 0);
    }
    /* a repeated pod replaces its earlier outcome */
    outcome(&o, "{\"pod_uid\": \"p20\", \"namespace\": \"ml\", \"owner\": {\"kind\": \"Job\", "
                "\"name\": \"etl\"}, \"requests\": {}, \"finished_at\": 1020, "
                "\"peak_cpu_cores\": 40}");
    assert_int_equal(dd_rs_data_add(d, &o, 21), 0);
    assert_int_equal(dd_rs_data_rows(d), 20);
    assert_int_equal(dd_rs_model_with_history(NULL, d, NULL, &m), 0);
    assert_int_equal(dd_rs_predict(m, &o.pod, NULL, &p), 0);
    assert_int_equal(p.history.n, 20);
    assert_string_equal(p.source[DD_RS_CPU], "history");
    /* p95 of 1..19 and 40: between 19 and 40, not 20 */
    assert_true(p.value[DD_RS_CPU] > 19 && p.value[DD_RS_CPU] < 40);
    near(p.value[DD_RS_MEMORY], 1e9, 1);
    assert_int_equal(p.history.oom_killed, 0);
    dd_rs_model_unref(m);

    /* an OOM kill at a 2 GiB limit raises the next memory prediction */
    outcome(&o, "{\"pod_uid\": \"p21\", \"namespace\": \"ml\", \"owner\": {\"kind\": \"Job\", "
                "\"name\": \"etl\"}, \"requests\": {\"memory\": \"1Gi\"}, \"limits\": "
                "{\"memory\": \"2Gi\"}, \"finished_at\": 1030, \"peak_memory_bytes\": 2147483648, "
                "\"exit_code\": 137, \"reason\": \"OOMKilled\"}");
    assert_int_equal(dd_rs_data_add(d, &o, 22), 0);
    assert_int_equal(dd_rs_model_with_history(NULL, d, "ml/Job/etl", &m), 0);
    assert_int_equal(dd_rs_predict(m, &o.pod, NULL, &p), 0);
    assert_int_equal(p.history.oom_killed, 1);
    assert_true(p.value[DD_RS_MEMORY] >= 2147483648.0 * DD_RS_OOM_FACTOR);
    /* another owner is not affected */
    struct dd_rs_pod other = o.pod;
    snprintf(other.owner_name, sizeof(other.owner_name), "other");
    assert_int_equal(dd_rs_predict(m, &other, NULL, &p), 0);
    assert_int_equal(p.history.n, 0);
    assert_string_equal(p.source[DD_RS_MEMORY], "none");
    dd_rs_model_unref(m);
    dd_rs_data_free(d);
}

static struct dd_rs_data *generated(size_t n, uint64_t seed)
{
    struct dd_rsgen g;
    struct dd_rs_data *d;
    dd_rsgen_init(&g, seed);
    assert_int_equal(dd_rs_data_new(&d), 0);
    for (size_t i = 0; i < n; i++) {
        struct dd_rs_outcome o;
        char err[256];
        json_t *j = dd_rsgen_outcome(&g, i);
        if (dd_rs_outcome_from_json(j, &o, err, sizeof(err)) < 0)
            fail_msg("generated outcome %zu: %s", i, err);
        json_decref(j);
        assert_int_equal(dd_rs_data_add(d, &o, (double)i), 0);
    }
    return d;
}

static double mape_of(const struct dd_rs_model *m, int t)
{
    json_t *s = dd_rs_model_summary(m);
    json_t *e = json_object_get(json_object_get(s, "targets"), dd_rs_target_names[t]);
    double v = json_number_value(json_object_get(e, "model_mape_percent"));
    if (!json_is_true(json_object_get(e, "served")))
        v = -v; /* not served: negative marks it */
    json_decref(s);
    return v;
}

static void test_learning_and_save(void **state)
{
    (void)state;
    struct dd_rs_data *small = generated(200, 11), *big = generated(2000, 11);
    struct dd_rs_model *m1, *m2, *loaded;
    char err[512];
    double worst = 0, sum_small = 0, sum_big = 0;

    assert_int_equal(dd_rs_train(small, NULL, NULL, 1, 1, &m1, err, sizeof(err)), 0);
    assert_int_equal(dd_rs_train(big, m1, NULL, 2, 2, &m2, err, sizeof(err)), 0);
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        double a = fabs(mape_of(m1, t)), b = mape_of(m2, t);
        print_message("%-18s 200: %5.1f %%  2000: %5.1f %%%s\n", dd_rs_target_names[t], a, fabs(b),
                      b < 0 ? " (not served)" : "");
        assert_true(b > 0); /* served: it beats the fallback */
        worst = fmax(worst, b);
        sum_small += a;
        sum_big += b;
    }
    assert_true(worst <= 15.0);
    assert_true(sum_big < sum_small);

    /* codes never change meaning: m2 started from m1's dictionary */
    struct dd_rsgen g;
    struct dd_rs_outcome o;
    float r1[DD_RS_NFEATURES], r2[DD_RS_NFEATURES];
    dd_rsgen_init(&g, 11);
    json_t *j = dd_rsgen_outcome(&g, 5);
    assert_int_equal(dd_rs_outcome_from_json(j, &o, err, sizeof(err)), 0);
    json_decref(j);
    dd_rs_model_row(m1, &o.pod, &o.live, r1);
    dd_rs_model_row(m2, &o.pod, &o.live, r2);
    for (int f = DD_RS_F_FRAMEWORK; f <= DD_RS_F_IMAGE; f++) {
        if (isnan(r1[f]))
            fail_msg("feature %d not encoded", f);
        near(r1[f], r2[f], 0);
    }

    /* save/load: the same predictions */
    void *blob, *blob2;
    size_t len, len2;
    struct dd_rs_prediction p1, p2;
    struct dd_rs_model *withhist;
    assert_int_equal(dd_rs_model_save(m2, &blob, &len), 0);
    assert_int_equal(dd_rs_model_load(blob, len, &loaded, err, sizeof(err)), 0);
    assert_int_equal(dd_rs_model_save(loaded, &blob2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(blob, blob2, len);
    assert_int_equal(dd_rs_model_version(loaded), 2);
    assert_int_equal(dd_rs_model_with_history(loaded, big, NULL, &withhist), 0);
    assert_int_equal(dd_rs_predict(m2, &o.pod, &o.live, &p1), 0);
    assert_int_equal(dd_rs_predict(withhist, &o.pod, &o.live, &p2), 0);
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        assert_string_equal(p1.source[t], p2.source[t]);
        near(p1.value[t], p2.value[t], fabs(p1.value[t]) * 1e-6);
    }
    assert_string_equal(p1.source[DD_RS_CPU], "model");
    /* damage is refused before XGBoost reads it */
    ((unsigned char *)blob)[len - 3] ^= 0x55;
    assert_int_equal(dd_rs_model_load(blob, len, &m1 /* unchanged on failure */, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "checksum"));
    assert_int_equal(dd_rs_model_load(blob, 10, &loaded, err, sizeof(err)) < 0, 1);
    free(blob);
    free(blob2);
    dd_rs_model_unref(withhist);
    dd_rs_model_unref(loaded);
    dd_rs_model_unref(m1);
    dd_rs_model_unref(m2);
    dd_rs_data_free(small);
    dd_rs_data_free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pod),
        cmocka_unit_test(test_owner_and_image),
        cmocka_unit_test(test_outcome),
        cmocka_unit_test(test_history_oom_replace),
        cmocka_unit_test(test_learning_and_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
