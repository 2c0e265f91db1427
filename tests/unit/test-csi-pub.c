/*
 * csi/publish: Kubernetes quantities (good and bad, table-driven), the
 * CSIStorageCapacity object codec against the reference object, and the
 * plan: creates for missing (segment x class), updates only past the
 * coalescing rule and the per-object interval, deletes of objects no
 * longer wanted, orphans and duplicates.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csi/csi.h"
#include "csi/publish.h"
#include "helpers.h"

#define GIB 1073741824LL

static void test_quantity(void **state)
{
    static const struct {
        const char *s;
        int r;
        int64_t v;
    } cases[] = {
        {"0", 0, 0},
        {"1099511627776", 0, 1099511627776LL},
        {"3572Gi", 0, 3572 * GIB},
        {"1Ti", 0, 1024 * GIB},
        {"1.5Gi", 0, 3 * GIB / 2},
        {"5G", 0, 5000000000LL},
        {"1k", 0, 1000},
        {"1e3", 0, 1000},
        {"1E6", 0, 1000000},
        {"1E", 0, 1000000000000000000LL},
        {"8Ei", -ERANGE, 0},
        {"9223372036854775807", 0, INT64_MAX},
        {"9223372036854775808", -ERANGE, 0},
        {"1500m", -EINVAL, 0},
        {"2000m", 0, 2},
        {"0.5", -EINVAL, 0},
        {"-1", -EINVAL, 0},
        {"", -EINVAL, 0},
        {"Gi", -EINVAL, 0},
        {"1Gb", -EINVAL, 0},
        {"1 Gi", -EINVAL, 0},
        {"1e", -EINVAL, 0},
        {"12e-1", -EINVAL, 0},
        {"120e-1", 0, 12},
        {"1e99", -ERANGE, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = -7;
        int r = dd_csi_quantity_parse(cases[i].s, &v);
        if (r != cases[i].r || (r == 0 && v != cases[i].v))
            fail_msg("quantity '%s': %d %lld, wanted %d %lld", cases[i].s, r, (long long)v,
                     cases[i].r, (long long)cases[i].v);
    }
}

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

static void test_codec(void **state)
{
    struct dd_csi_pub_have h;
    char err[256];
    (void)state;
    /* the reference object (the driver's key): decodes, not our shape for our key */
    json_t *ref = fixture("k8s/csistoragecapacity.gpu-node-a.vdo-dedup.json");
    json_object_set_new(json_object_get(ref, "metadata"), "resourceVersion", json_string("7"));
    assert_int_equal(dd_csi_pub_decode(ref, "topology.dedupd.io/node", &h, err, sizeof(err)), 0);
    assert_string_equal(h.name, "csisc-7k2qd");
    assert_true(h.has_capacity && h.capacity == 3572 * GIB);
    assert_null(h.node);
    assert_int_equal(
        dd_csi_pub_decode(ref, "topology.vdo.csi.example.io/node", &h, err, sizeof(err)), 0);
    assert_string_equal(h.node, "gpu-node-a");
    assert_string_equal(h.storage_class, "vdo-dedup");
    json_decref(ref);

    /* ours round-trips */
    struct dd_csi_pub_want w = {"gpu-node-b", "vdo-dedup", "vdo.csi.example.io", 5 * GIB, 4 * GIB};
    json_t *owner = json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", "apps/v1", "kind", "Deployment",
                              "name", "dedupd-placement", "uid", "u-1");
    json_t *o =
        dd_csi_pub_object(&w, "topology.dedupd.io/node", "dedupd-system", NULL, NULL, owner);
    assert_non_null(o);
    json_t *md = json_object_get(o, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "generateName")), "dedupd-csc-");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(md, "labels"), DD_CSI_PUB_LABEL_MANAGED)),
        "dedupd.io");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(md, "labels"), DD_CSI_PUB_LABEL_DRIVER)),
        "vdo.csi.example.io");
    assert_true(json_equal(json_array_get(json_object_get(md, "ownerReferences"), 0), owner));
    assert_string_equal(json_string_value(json_object_get(o, "capacity")), "5368709120");
    /* no name: refused with the field named */
    assert_int_equal(dd_csi_pub_decode(o, "topology.dedupd.io/node", &h, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "metadata.name"));
    json_object_set_new(md, "name", json_string("dedupd-csc-x"));
    json_object_set_new(md, "resourceVersion", json_string("rv.1"));
    assert_int_equal(dd_csi_pub_decode(o, "topology.dedupd.io/node", &h, err, sizeof(err)), 0);
    assert_string_equal(h.node, "gpu-node-b");
    assert_true(h.capacity == 5 * GIB && h.maximum == 4 * GIB && h.written_ms == 0);
    /* a second label or an expression: not our shape */
    json_object_set_new(json_object_get(json_object_get(o, "nodeTopology"), "matchLabels"), "zone",
                        json_string("a"));
    assert_int_equal(dd_csi_pub_decode(o, "topology.dedupd.io/node", &h, err, sizeof(err)), 0);
    assert_null(h.node);
    json_decref(o);
    json_decref(owner);
}

static const struct dd_csi_pub_action *find(const struct dd_csi_pub_plan *p, enum dd_csi_pub_op op,
                                            size_t want, size_t have)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->actions[i].op == op && (want == SIZE_MAX || p->actions[i].want == want) &&
            (have == SIZE_MAX || p->actions[i].have == have))
            return &p->actions[i];
    return NULL;
}

static void test_plan(void **state)
{
    struct dd_csi_pub_options o;
    struct dd_csi_pub_plan p;
    (void)state;
    dd_csi_pub_options_init(&o);
    assert_true(o.threshold == 0.05 && o.min_change == GIB && o.min_interval_ms == 60000);

    struct dd_csi_pub_want w[] = {
        {"n1", "fast", "", 100 * GIB, 90 * GIB},   /* 0: matches h0, +2 %: coalesced */
        {"n1", "slow", "", 200 * GIB, 180 * GIB},  /* 1: matches h1, +50 %: update */
        {"n2", "fast", "", 10 * GIB, 9 * GIB},     /* 2: missing: create */
        {"n3", "fast", "", 0, 0},                  /* 3: matches h3 (5 GiB): to zero, update */
        {"n4", "fast", "", 1000 * GIB, 900 * GIB}, /* 4: matches h4, +20 % but written 1 s ago */
        {"n5", "fast", "", 50 * GIB, 45 * GIB},    /* 5: equal to h5 */
        {"n1", "fast", "", 1, 1},                  /* 6: a second want of (n1, fast): ignored */
        {"a-node-name-that-is-far-too-long-for-a-kubernetes-label-value-xx", "fast", "", 1, 1},
    };
    struct dd_csi_pub_have h[] = {
        {"o0", "1", "n1", "fast", true, true, 98 * GIB, 88 * GIB, 0},
        {"o1", "1", "n1", "slow", true, true, 100 * GIB, 90 * GIB, 0},
        {"o2", "1", "gone", "fast", true, true, GIB, GIB, 0}, /* not wanted: delete */
        {"o3", "1", "n3", "fast", true, true, 5 * GIB, 5 * GIB, 0},
        {"o4", "1", "n4", "fast", true, true, 800 * GIB, 720 * GIB, 99000},
        {"o5", "1", "n5", "fast", true, true, 50 * GIB, 45 * GIB, 0},
        {"o6", "1", NULL, NULL, true, true, 0, 0, 0},                  /* orphan: delete */
        {"o7", "1", "n1", "slow", true, true, 100 * GIB, 90 * GIB, 0}, /* duplicate of o1 */
        {"o8", "1", "n5", "slow", false, false, 0, 0, 0},              /* unwanted, unreadable */
    };
    assert_int_equal(dd_csi_pub_plan(&o, w, 8, h, 9, 100000, &p), 0);
    assert_non_null(find(&p, DD_CSI_PUB_CREATE, 2, SIZE_MAX));
    assert_non_null(find(&p, DD_CSI_PUB_UPDATE, 1, 1));
    assert_non_null(find(&p, DD_CSI_PUB_UPDATE, 3, 3));
    assert_null(find(&p, DD_CSI_PUB_UPDATE, 0, SIZE_MAX));
    assert_null(find(&p, DD_CSI_PUB_UPDATE, 4, SIZE_MAX));
    assert_non_null(find(&p, DD_CSI_PUB_DELETE, SIZE_MAX, 2));
    assert_non_null(find(&p, DD_CSI_PUB_DELETE, SIZE_MAX, 6));
    assert_non_null(find(&p, DD_CSI_PUB_DELETE, SIZE_MAX, 7));
    assert_non_null(find(&p, DD_CSI_PUB_DELETE, SIZE_MAX, 8));
    assert_int_equal(p.n, 7);
    assert_int_equal(p.coalesced, 1);
    assert_int_equal(p.deferred, 1);
    assert_int_equal(p.unchanged, 1);
    assert_int_equal(p.skipped, 1);
    /* order: creates, updates by change (the zero crossing first), deletes */
    assert_int_equal(p.actions[0].op, DD_CSI_PUB_CREATE);
    assert_int_equal(p.actions[1].op, DD_CSI_PUB_UPDATE);
    assert_int_equal(p.actions[1].want, 3);
    assert_int_equal(p.actions[2].want, 1);
    for (size_t i = 3; i < p.n; i++)
        assert_int_equal(p.actions[i].op, DD_CSI_PUB_DELETE);
    dd_csi_pub_plan_release(&p);

    /* once the interval has passed, the deferred rewrite goes */
    assert_int_equal(dd_csi_pub_plan(&o, w, 6, h, 6, 99000 + 60000, &p), 0);
    assert_non_null(find(&p, DD_CSI_PUB_UPDATE, 4, 4));
    assert_int_equal(p.deferred, 0);
    dd_csi_pub_plan_release(&p);

    /* small pools: a 50 % move under min_change is not written */
    assert_false(dd_csi_pub_significant(&o, 100 << 20, 150 << 20));
    assert_true(dd_csi_pub_significant(&o, 100 * GIB, 106 * GIB));
    assert_false(dd_csi_pub_significant(&o, 100 * GIB, 104 * GIB));
    assert_true(dd_csi_pub_significant(&o, 0, 1));
    assert_true(dd_csi_pub_significant(&o, 1, 0));

    /* nothing either side */
    assert_int_equal(dd_csi_pub_plan(&o, NULL, 0, NULL, 0, 0, &p), 0);
    assert_int_equal(p.n, 0);
    dd_csi_pub_plan_release(&p);
}

/* dedupd.io/estimate: references and a job's figure (csi/csi.h) */
static void test_estimate_ref(void **state)
{
    double v = 0, r = 0;
    char err[256];
    struct dd_csi_capacity_options o;
    const char *src;
    (void)state;
    assert_int_equal(dd_csi_estimate_ref("", &v), DD_CSI_ESTIMATE_NONE);
    assert_int_equal(dd_csi_estimate_ref("2.5", &v), DD_CSI_ESTIMATE_NUMBER);
    assert_true(v == 2.5);
    assert_int_equal(dd_csi_estimate_ref("0.5", &v), DD_CSI_ESTIMATE_BAD);
    assert_int_equal(dd_csi_estimate_ref("http://10.0.0.5:7450/v1/estimate/7", &v),
                     DD_CSI_ESTIMATE_URL);
    assert_int_equal(dd_csi_estimate_ref("http://10.0.0.5:7450/v1/other", &v), DD_CSI_ESTIMATE_BAD);
    assert_int_equal(dd_csi_estimate_ref("http://a b/v1/estimate/7", &v), DD_CSI_ESTIMATE_BAD);
    assert_int_equal(dd_csi_estimate_ref("job-7", &v), DD_CSI_ESTIMATE_BAD);

    json_t *j = json_loads("{\"status\":\"done\",\"result\":{\"blocks_total\":1000,"
                           "\"estimated_physical_blocks\":400}}",
                           0, NULL);
    assert_int_equal(dd_csi_estimate_job_reduction(j, &r, err, sizeof(err)), 0);
    assert_true(r == 2.5);
    json_decref(j);
    /* the bare result, as dedupctl estimate --json prints it */
    j = json_loads("{\"blocks_total\":100,\"estimated_physical_blocks\":100}", 0, NULL);
    assert_int_equal(dd_csi_estimate_job_reduction(j, &r, err, sizeof(err)), 0);
    assert_true(r == 1);
    json_decref(j);
    j = json_loads("{\"status\":\"running\"}", 0, NULL);
    assert_int_equal(dd_csi_estimate_job_reduction(j, &r, err, sizeof(err)), -EAGAIN);
    json_decref(j);
    j = json_loads("{\"status\":\"failed\",\"result\":{\"message\":\"no such file\"}}", 0, NULL);
    assert_int_equal(dd_csi_estimate_job_reduction(j, &r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no such file"));
    json_decref(j);
    j = json_loads("{\"status\":\"done\",\"result\":{\"blocks_total\":0,"
                   "\"estimated_physical_blocks\":0}}",
                   0, NULL);
    assert_int_equal(dd_csi_estimate_job_reduction(j, &r, err, sizeof(err)), -EINVAL);
    json_decref(j);
    j = json_loads("{\"status\":\"done\",\"result\":{\"blocks_total\":10,"
                   "\"estimated_physical_blocks\":null}}",
                   0, NULL);
    assert_int_equal(dd_csi_estimate_job_reduction(j, &r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "estimated_physical_blocks"));
    json_decref(j);

    /* precedence: expected-reduction, then the estimate, then observed */
    dd_csi_capacity_options_init(&o);
    assert_true(dd_csi_reduction_with_estimate(&o, "3", 4, 2, &src, NULL, 0) == 3);
    assert_string_equal(src, "storage_class");
    assert_true(dd_csi_reduction_with_estimate(&o, "", 4, 2, &src, NULL, 0) == 4);
    assert_string_equal(src, "estimate");
    assert_true(dd_csi_reduction_with_estimate(&o, "", (double)NAN, 2, &src, NULL, 0) == 2);
    assert_string_equal(src, "observed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantity),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_estimate_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
