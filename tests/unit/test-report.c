/*
 * placement/report and placement/cluster without HTTP: a report survives
 * its wire form; bad reports are refused naming the field and leave
 * nothing behind; the cluster view keeps the newest report per node,
 * refuses older ones, turns nodes stale after their bound and forgets
 * them after forget-after; snapshots outlive later puts.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "helpers.h"
#include "placement/cluster.h"
#include "placement/report.h"

static void sample_report(struct dd_report *r, const char *node, uint64_t t)
{
    assert_int_equal(dd_report_alloc(r, 1, 2, 1), 0);
    snprintf(r->node, sizeof(r->node), "%s", node);
    r->interval_s = 10;
    r->time_ms = t;
    r->cores = 32;
    r->cpu_util = 0.5;
    r->gpus_available = true;
    snprintf(r->gpus[0].name, sizeof(r->gpus[0].name), "H100");
    r->gpus[0].util_gpu_percent = 40;
    for (int i = 0; i < 2; i++) {
        struct dd_report_volume *v = &r->volumes[i];
        snprintf(v->name, sizeof(v->name), "vdo%d", i);
        snprintf(v->pool, sizeof(v->pool), "pool-%d", i);
        snprintf(v->mode, sizeof(v->mode), "normal");
        v->physical_free_bytes = 1000 + i;
        v->features.v[DD_F_WRITE_MBPS] = 12.5 * (i + 1);
        v->features.v[DD_F_DEDUP_HIT_RATE] = 0.4;
        v->features.v[DD_F_COMPRESSION] = 1;
        v->features.target[DD_T_COST] = 0.7;
    }
    snprintf(r->pods[0].uid, sizeof(r->pods[0].uid), "0b7c2f1e-uid");
    r->pods[0].cpu_cores = 1.5;
}

static void test_round_trip(void **state)
{
    struct dd_report a, b;
    char err[256];
    (void)state;
    sample_report(&a, "gpu-a-01", 1700000000000);
    json_t *doc = dd_report_to_json(&a);
    assert_int_equal(dd_report_from_json(doc, &b, err, sizeof(err)), 0);
    assert_string_equal(b.node, "gpu-a-01");
    assert_int_equal(b.n_volumes, 2);
    assert_string_equal(b.volumes[1].pool, "pool-1");
    assert_true(b.volumes[1].features.v[DD_F_WRITE_MBPS] == 25.0);
    assert_true(isnan(b.volumes[1].features.v[DD_F_READ_MBPS]));
    assert_true(b.volumes[0].features.target[DD_T_COST] == 0.7);
    assert_int_equal(b.volumes[0].physical_free_bytes, 1000);
    assert_int_equal(b.volumes[0].logical_free_bytes, -1);
    assert_int_equal(b.n_pods, 1);
    assert_true(b.pods[0].cpu_cores == 1.5);
    assert_true(b.gpus_available);
    json_t *again = dd_report_to_json(&b);
    assert_true(json_equal(doc, again));
    json_decref(again);
    json_decref(doc);
    dd_report_release(&a);
    dd_report_release(&b);
}

/* Each bad input: the error names the field. */
static void test_bad_reports(void **state)
{
    static const struct {
        const char *edit_path, *json_value, *needle;
    } cases[] = {
        {"schema", "2", "schema: unknown version (accepted: 1)"},
        {"node", "\"Node_A\"", "node:"},
        {"node", "\"\"", "node: empty"},
        {"interval_seconds", "0", "interval_seconds"},
        {"time_ms", "-5", "time_ms"},
        {"load", "{\"cpu_util\": 1.5}", "load.cpu_util"},
        {"load", "{\"cpu_utl\": 0.5}", "load.cpu_utl: unknown field"},
        {"volumes", "{}", "volumes: expected an array"},
        {"volumes", "[{\"name\": \"a/b\", \"features\": {}}]", "volumes[0].name: contains '/'"},
        {"volumes", "[{\"name\": \"a\"}]", "volumes[0].features: missing"},
        {"volumes", "[{\"name\": \"a\", \"features\": {\"compression\": 0.5}}]",
         "volumes[0].features.compression"},
        {"volumes", "[{\"name\": \"a\", \"features\": {\"wirte_mbps\": 1}}]",
         "volumes[0].features.wirte_mbps: unknown"},
        {"volumes", "[{\"name\": \"a\", \"features\": {}}, {\"name\": \"a\", \"features\": {}}]",
         "volumes[1].name: 'a' repeats"},
        {"pods", "[{\"qos\": \"burstable\"}]", "pods[0].uid: missing"},
        {"extra", "1", "report.extra: unknown field"},
    };
    char err[256];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dd_report a, b;
        sample_report(&a, "gpu-a-01", 1700000000000);
        json_t *doc = dd_report_to_json(&a);
        json_object_set_new(doc, cases[i].edit_path,
                            json_loads(cases[i].json_value, JSON_DECODE_ANY, NULL));
        memset(&b, 0x5a, sizeof(b));
        int r = dd_report_from_json(doc, &b, err, sizeof(err));
        if (r != -EINVAL || !strstr(err, cases[i].needle))
            fail_msg("case %zu: %d '%s', want '%s'", i, r, err, cases[i].needle);
        /* nothing written on failure */
        assert_int_equal(((unsigned char *)&b)[0], 0x5a);
        json_decref(doc);
        dd_report_release(&a);
    }
    /* caps */
    json_t *doc =
        json_pack("{s:i, s:s, s:i, s:I, s:o}", "schema", 1, "node", "n", "interval_seconds", 1,
                  "time_ms", (json_int_t)1, "volumes", json_array());
    json_t *vols = json_object_get(doc, "volumes");
    for (int i = 0; i < 65; i++)
        json_array_append_new(vols, json_pack("{s:s, s:{}}", "name", "x", "features"));
    struct dd_report b;
    assert_int_equal(dd_report_from_json(doc, &b, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at most 64"));
    json_decref(doc);
}

static void test_cluster_view(void **state)
{
    struct dd_cluster_options o = {.stale_after_s = 0, .forget_after_s = 100};
    struct dd_cluster *c;
    struct dd_report r;
    uint64_t t0 = 1700000000000;
    (void)state;
    assert_int_equal(dd_cluster_new(&o, &c), 0);
    sample_report(&r, "b-node", t0);
    assert_int_equal(dd_cluster_put(c, &r, t0 + 500), 0);
    sample_report(&r, "a-node", t0);
    assert_int_equal(dd_cluster_put(c, &r, t0), 0);

    struct dd_cluster_snapshot *s1 = dd_cluster_snapshot(c);
    assert_int_equal(s1->n, 2);
    assert_string_equal(s1->nodes[0]->report.node, "a-node"); /* sorted */
    /* newer report replaces, older is refused */
    sample_report(&r, "a-node", t0 + 10000);
    assert_int_equal(dd_cluster_put(c, &r, t0 + 10000), 0);
    sample_report(&r, "a-node", t0 + 5000);
    assert_int_equal(dd_cluster_put(c, &r, t0 + 11000), -ESTALE);
    /* the old snapshot still reads the old entry */
    assert_int_equal(s1->nodes[0]->report.time_ms, t0);
    struct dd_cluster_snapshot *s2 = dd_cluster_snapshot(c);
    const struct dd_cluster_node *a = dd_cluster_find(s2, "a-node");
    assert_non_null(a);
    assert_int_equal(a->reports, 2);
    assert_null(dd_cluster_find(s2, "c-node"));
    /* stale after 3 x the stated 10 s interval, counted from arrival */
    assert_false(dd_cluster_node_stale(&s2->opts, a, t0 + 10000 + 30000));
    assert_true(dd_cluster_node_stale(&s2->opts, a, t0 + 10000 + 30001));
    json_t *j = dd_cluster_node_json(&s2->opts, dd_cluster_find(s2, "b-node"), t0 + 2500, false);
    assert_true(fabs(json_real_value(json_object_get(j, "report_age_seconds")) - 2.0) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(j, "clock_skew_seconds")) - 0.5) < 1e-9);
    json_decref(j);
    dd_cluster_snapshot_free(s1);
    dd_cluster_snapshot_free(s2);
    /* forget-after: b (arrived t0+0.5 s) goes at +100.5 s, a stays */
    assert_int_equal(dd_cluster_forget(c, t0 + 101000), 1);
    s1 = dd_cluster_snapshot(c);
    assert_int_equal(s1->n, 1);
    assert_true(dd_cluster_remove(c, "a-node"));
    assert_int_equal(s1->n, 1); /* a snapshot is immutable */
    dd_cluster_snapshot_free(s1);
    dd_cluster_free(c);
}

/* A client certificate's identity against a report's node name. */
static void test_identity_names_node(void **state)
{
    (void)state;
    assert_true(dd_report_identity_names_node("gpu-a-01", "gpu-a-01"));
    assert_true(dd_report_identity_names_node("system:node:gpu-a-01", "gpu-a-01"));
    assert_false(dd_report_identity_names_node("system:node:gpu-a-01", "gpu-b-02"));
    assert_false(dd_report_identity_names_node("gpu-a-01", "gpu-a-0"));
    assert_false(dd_report_identity_names_node("gpu-a-0", "gpu-a-01"));
    assert_false(dd_report_identity_names_node("GPU-A-01", "gpu-a-01"));
    assert_false(dd_report_identity_names_node("system:node:", ""));
    assert_false(dd_report_identity_names_node("", "gpu-a-01"));
    assert_false(dd_report_identity_names_node(NULL, "gpu-a-01"));
    /* only that prefix: another one is a different name */
    assert_false(dd_report_identity_names_node("system:nodes:gpu-a-01", "gpu-a-01"));
    assert_false(dd_report_identity_names_node("system:node:system:node:gpu-a-01", "gpu-a-01"));
    assert_false(dd_report_identity_names_node("xsystem:node:gpu-a-01", "gpu-a-01"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_reports),
        cmocka_unit_test(test_cluster_view),
        cmocka_unit_test(test_identity_names_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
