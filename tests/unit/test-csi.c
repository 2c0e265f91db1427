/*
 * csi/ without HTTP: golden round trips of the reference CSI payloads
 * (tests/fixtures/k8s/csi, proto3 canonical JSON), both field spellings
 * and refusals naming the field, segments matched to the reference Nodes'
 * labels (placement/kube keeps them), the preferred ordering on an
 * in-memory cluster view scored by the real prior (less contention first,
 * the selected node pinned, segments without a reporting node last), and
 * the effective-capacity rule moving with the pool's observed reduction.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "csi/csi.h"
#include "helpers.h"
#include "placement/cluster.h"
#include "placement/costmodel.h"
#include "placement/kube.h"
#include "placement/ledger.h"
#include "placement/profile.h"
#include "placement/score.h"

#define NOW 1000000000ull
#define GIB 1073741824.0

static json_t *fixture(const char *rel)
{
    size_t len;
    char *text = tt_fixture(rel, &len);
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        fail_msg("%s: %s", rel, je.text);
    free(text);
    return doc;
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        fail_msg("test JSON: %s", je.text);
    return doc;
}

static void assert_json_equal(json_t *a, json_t *b)
{
    if (!json_equal(a, b)) {
        char *x = json_dumps(a, JSON_SORT_KEYS), *y = json_dumps(b, JSON_SORT_KEYS);
        fail_msg("JSON differs:\n%s\n%s", x, y);
    }
}

/* ---- golden round trips ---- */

static void test_round_trips(void **state)
{
    (void)state;
    char err[512];
    static const char *const cvs[] = {
        "k8s/csi/CreateVolumeRequest.wffc-selected-node.default.protojson.json",
        "k8s/csi/CreateVolumeRequest.wffc-selected-node.strict-topology.protojson.json"};
    for (size_t i = 0; i < 2; i++) {
        json_t *doc = fixture(cvs[i]);
        struct dd_csi_create_volume cv;
        assert_int_equal(dd_csi_create_volume_decode(doc, &cv, err, sizeof(err)), 0);
        assert_true(cv.has_accessibility && cv.has_capacity_range);
        assert_true(cv.required_bytes == 536870912000ll);
        assert_string_equal(dd_csi_parameter(cv.parameters, DD_CSI_PARAM_PVC_NAME),
                            "ckpt-trainer-0");
        assert_string_equal(dd_csi_parameter(cv.parameters, DD_CSI_PARAM_PVC_NAMESPACE), "ml");
        assert_int_equal(cv.accessibility.n_requisite, i == 0 ? 3 : 1);
        json_t *out = dd_csi_create_volume_to_json(&cv);
        assert_json_equal(out, doc);
        json_decref(out);
        dd_csi_create_volume_release(&cv);
        json_decref(doc);
    }

    json_t *doc = fixture("k8s/csi/GetCapacityRequest.gpu-node-a.protojson.json");
    struct dd_csi_get_capacity g;
    assert_int_equal(dd_csi_get_capacity_decode(doc, &g, err, sizeof(err)), 0);
    assert_true(g.has_topology && g.topology.n == 1);
    assert_string_equal(g.topology.kv[0].key, "topology.vdo.csi.example.io/node");
    json_t *out = dd_csi_get_capacity_to_json(&g);
    assert_json_equal(out, doc);
    json_decref(out);
    dd_csi_get_capacity_release(&g);
    json_decref(doc);

    doc = fixture("k8s/csi/GetCapacityResponse.protojson.json");
    struct dd_csi_capacity_response cr;
    assert_int_equal(dd_csi_capacity_response_decode(doc, &cr, err, sizeof(err)), 0);
    assert_true(cr.available_capacity == 3835405795328ll && cr.has_maximum && !cr.has_minimum);
    out = dd_csi_capacity_response_to_json(&cr);
    assert_json_equal(out, doc);
    json_decref(out);
    json_decref(doc);

    doc = fixture("k8s/csi/NodeGetInfoResponse.gpu-node-a.protojson.json");
    struct dd_csi_node_info ni;
    assert_int_equal(dd_csi_node_info_decode(doc, &ni, err, sizeof(err)), 0);
    assert_string_equal(ni.node_id, "gpu-node-a");
    assert_true(ni.max_volumes_per_node == 64);
    out = dd_csi_node_info_to_json(&ni);
    assert_json_equal(out, doc);
    json_decref(out);
    dd_csi_node_info_release(&ni);
    json_decref(doc);
}

/* snake_case is the same message; both spellings at once, wrong types,
 * bad int64s and strict responses are refused naming the field */
static void test_spellings_and_refusals(void **state)
{
    (void)state;
    char err[512];
    struct dd_csi_create_volume cv;
    json_t *snake = parse("{\"name\":\"v\",\"capacity_range\":{\"required_bytes\":\"10\"},"
                          "\"accessibility_requirements\":{\"requisite\":[{\"segments\":"
                          "{\"k\":\"a\"}}],\"preferred\":[{\"segments\":{\"k\":\"a\"}}]}}");
    assert_int_equal(dd_csi_create_volume_decode(snake, &cv, err, sizeof(err)), 0);
    assert_true(cv.required_bytes == 10 && cv.accessibility.n_preferred == 1);
    json_t *camel = dd_csi_create_volume_to_json(&cv);
    assert_non_null(json_object_get(camel, "accessibilityRequirements"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(camel, "capacityRange"),
                                                          "requiredBytes")),
                        "10");
    json_decref(camel);
    dd_csi_create_volume_release(&cv);
    json_decref(snake);

    static const struct {
        const char *doc, *field;
    } bad[] = {
        {"{\"capacityRange\":{\"requiredBytes\":\"1x\"}}", "capacityRange.requiredBytes"},
        {"{\"capacityRange\":{\"requiredBytes\":-1}}", "capacityRange.requiredBytes"},
        {"{\"capacityRange\":{\"requiredBytes\":\"99999999999999999999\"}}",
         "capacityRange.requiredBytes"},
        {"{\"capacityRange\":{\"requiredBytes\":1.5}}", "capacityRange.requiredBytes"},
        {"{\"capacityRange\":{},\"capacity_range\":{}}", "capacityRange"},
        {"{\"parameters\":{\"a\":1}}", "parameters[a]"},
        {"{\"accessibilityRequirements\":{\"requisite\":[{\"segments\":{\"z\":5}}]}}",
         "accessibilityRequirements.requisite[0].segments[z]"},
        {"{\"accessibilityRequirements\":{\"preferred\":{}}}",
         "accessibilityRequirements.preferred"},
        {"{\"volumeCapabilities\":[1]}", "volumeCapabilities[0]"},
        {"[]", "CreateVolumeRequest"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        json_t *d = parse(bad[i].doc);
        err[0] = '\0';
        assert_true(dd_csi_create_volume_decode(d, &cv, err, sizeof(err)) < 0);
        if (!strstr(err, bad[i].field))
            fail_msg("%s: '%s' does not name %s", bad[i].doc, err, bad[i].field);
        json_decref(d);
    }

    struct dd_csi_capacity_response cr;
    json_t *d = parse("{\"availableCapacity\":\"1\",\"extra\":\"2\"}");
    assert_true(dd_csi_capacity_response_decode(d, &cr, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "extra"));
    json_decref(d);
    d = parse("{\"available_capacity\":\"7\",\"minimum_volume_size\":\"0\"}");
    assert_int_equal(dd_csi_capacity_response_decode(d, &cr, err, sizeof(err)), 0);
    assert_true(cr.available_capacity == 7 && cr.has_minimum && !cr.has_maximum);
    json_decref(d);
    struct dd_csi_node_info ni;
    d = parse("{\"max_volumes_per_node\":\"3\"}");
    assert_true(dd_csi_node_info_decode(d, &ni, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "nodeId"));
    dd_csi_node_info_release(&ni);
    json_decref(d);
}

/* ---- segments and matching ---- */

static struct dd_kube *reference_cache(void)
{
    struct dd_kube *k;
    char err[256];
    static const char *const nodes[] = {"k8s/node.gpu-node-a.json", "k8s/node.gpu-node-b.json",
                                        "k8s/node.gpu-node-c.json"};
    assert_int_equal(dd_kube_new(&k, NULL, 0), 0);
    for (size_t i = 0; i < 3; i++) {
        json_t *n = fixture(nodes[i]);
        if (dd_kube_apply(k, DD_KUBE_NODE, DD_KUBE_ADDED, n, err, sizeof(err)) < 0)
            fail_msg("%s: %s", nodes[i], err);
        json_decref(n);
    }
    return k;
}

struct collect {
    const struct dd_csi_matcher *m;
    char seen[8][64]; /* per segment: the nodes, as letters */
};

static void on_seg(void *ctx, size_t seg)
{
    struct collect *c = ctx;
    (void)c;
    (void)seg;
}

static struct collect *cur;
static const char *cur_node;
static void on_seg_record(void *ctx, size_t seg)
{
    (void)ctx;
    size_t l = strlen(cur->seen[seg]);
    cur->seen[seg][l] = cur_node[strlen(cur_node) - 1];
}

static void on_node(void *ctx, const char *node, const char *const *kv, size_t n)
{
    struct collect *c = ctx;
    const char *own[2] = {DD_CSI_KEY_NODE, node};
    cur = c;
    cur_node = node;
    dd_csi_matcher_node(c->m, kv, n, own, 1, on_seg_record, NULL);
}

static void test_matching(void **state)
{
    (void)state;
    char err[256], v[64];
    struct dd_kube *k = reference_cache();
    assert_int_equal(
        dd_kube_node_label(k, "gpu-node-b", "topology.kubernetes.io/zone", v, sizeof(v)), 0);
    assert_string_equal(v, "us-east-1a");
    assert_int_equal(dd_kube_node_label(k, "gpu-node-b", "nope", v, sizeof(v)), -ENODATA);

    json_t *req = parse("{\"requisite\":["
                        "{\"segments\":{\"topology.vdo.csi.example.io/node\":\"gpu-node-b\"}},"
                        "{\"segments\":{\"topology.kubernetes.io/zone\":\"us-east-1a\","
                        "\"nvidia.com/gpu.product\":\"NVIDIA-A100-SXM4-80GB\"}},"
                        "{\"segments\":{}},"
                        "{\"segments\":{\"topology.dedupd.io/node\":\"gpu-node-c\"}},"
                        "{\"segments\":{\"topology.kubernetes.io/zone\":\"us-west-2a\"}}]}");
    struct dd_csi_topology_req t;
    assert_int_equal(
        dd_csi_topology_req_decode(req, "accessibilityRequirements", &t, err, sizeof(err)), 0);
    struct collect c;
    memset(&c, 0, sizeof(c));
    struct dd_csi_matcher *m;
    assert_int_equal(dd_csi_matcher_new(t.requisite, t.n_requisite, &m), 0);
    c.m = m;
    assert_int_equal(dd_kube_foreach_node(k, on_node, &c), 3);
    /* order of letters depends on the cache's iteration: sort them */
    for (size_t i = 0; i < 5; i++) {
        size_t l = strlen(c.seen[i]);
        for (size_t a = 0; a < l; a++)
            for (size_t b = a + 1; b < l; b++)
                if (c.seen[i][b] < c.seen[i][a]) {
                    char x = c.seen[i][a];
                    c.seen[i][a] = c.seen[i][b];
                    c.seen[i][b] = x;
                }
    }
    assert_string_equal(c.seen[0], "b");   /* the driver's own key */
    assert_string_equal(c.seen[1], "b");   /* two keys: only b has an A100 */
    assert_string_equal(c.seen[2], "abc"); /* an empty segment: every node */
    assert_string_equal(c.seen[3], "c");   /* our own key */
    assert_string_equal(c.seen[4], "");    /* no node */
    (void)on_seg;
    dd_csi_matcher_free(m);
    dd_csi_topology_req_release(&t);
    json_decref(req);

    /* our segment of a node: the node key and one key per pool that fits */
    const char *pools[] = {"fast", "bad pool", "slow"};
    json_t *segs = dd_csi_node_segments("gpu-node-a", pools, 3);
    json_t *want = parse("{\"topology.dedupd.io/node\":\"gpu-node-a\","
                         "\"topology.dedupd.io/pool-fast\":\"true\","
                         "\"topology.dedupd.io/pool-slow\":\"true\"}");
    assert_json_equal(segs, want);
    json_decref(segs);
    json_decref(want);
    dd_kube_free(k);
}

/* duplicates in requisite come out once; preferred positions found */
static void test_entries(void **state)
{
    (void)state;
    char err[256];
    json_t *req =
        parse("{\"requisite\":[{\"segments\":{\"k\":\"a\"}},{\"segments\":{\"k\":\"b\"}},"
              "{\"segments\":{\"k\":\"a\"}},{\"segments\":{\"k\":\"c\"}}],"
              "\"preferred\":[{\"segments\":{\"k\":\"c\"}},{\"segments\":{\"k\":\"a\"}}]}");
    struct dd_csi_topology_req t;
    size_t *idx, n;
    long *pos;
    assert_int_equal(dd_csi_topology_req_decode(req, "x", &t, err, sizeof(err)), 0);
    assert_int_equal(dd_csi_entries(&t, &idx, &pos, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 3);
    assert_int_equal(pos[0], 1);
    assert_int_equal(pos[1], -1);
    assert_int_equal(pos[2], 0);
    free(idx);
    free(pos);
    dd_csi_topology_req_release(&t);
    json_decref(req);
}

/* ---- the preferred ordering on an in-memory view ---- */

static int prior_predict(void *ctx, const struct dd_features *rows, size_t n, double *cost,
                         double *latency, bool *xgb, uint64_t *version, char *errbuf, size_t errlen)
{
    const struct dd_cm_prior *p = ctx;
    (void)errbuf;
    (void)errlen;
    for (size_t i = 0; i < n; i++) {
        float row[DD_CM_NFEATURES];
        dd_features_model_row(&rows[i], row);
        cost[i] = dd_cm_prior_predict(p, DD_CM_COST, row, NULL);
        latency[i] = dd_cm_prior_predict(p, DD_CM_LATENCY, row, NULL);
    }
    *xgb = false;
    *version = 0;
    return 0;
}

static void put_node(struct dd_cluster *c, const char *name, double write_mbps, double cpu_ex,
                     double io_psi, double free_gib, double dedup_ratio)
{
    struct dd_report r;
    assert_int_equal(dd_report_alloc(&r, 4, 1, 0), 0);
    r.schema = DD_REPORT_SCHEMA;
    snprintf(r.node, sizeof(r.node), "%s", name);
    r.interval_s = 10;
    r.time_ms = NOW - 1000;
    r.cores = 16;
    r.cpu_util_ex_vdo = cpu_ex;
    r.cpu_psi = 2;
    r.io_psi = io_psi;
    r.run_queue = 4;
    r.vdo_cpu_seconds = 5;
    for (unsigned g = 0; g < 4; g++) {
        r.gpus[g].index = g;
        r.gpus[g].util_gpu_percent = 10;
    }
    struct dd_report_volume *v = &r.volumes[0];
    snprintf(v->name, sizeof(v->name), "vdo0");
    snprintf(v->pool, sizeof(v->pool), "fast");
    snprintf(v->mode, sizeof(v->mode), "normal");
    snprintf(v->index_state, sizeof(v->index_state), "online");
    v->rotational = 0;
    v->physical_bytes = (int64_t)(1000 * GIB);
    v->physical_free_bytes = (int64_t)(free_gib * GIB);
    v->logical_bytes = v->physical_bytes * 3;
    v->logical_free_bytes = v->logical_bytes / 2;
    struct dd_features *f = &v->features;
    dd_features_clear(f);
    f->v[DD_F_WRITE_MBPS] = write_mbps;
    f->v[DD_F_READ_MBPS] = 100;
    f->v[DD_F_WRITE_IOPS] = write_mbps * 1e6 / 4096;
    f->v[DD_F_DEDUP_HIT_RATE] = 0.4;
    f->v[DD_F_INDEX_ENTRIES] = 5e6;
    f->v[DD_F_COMPRESSION] = 1;
    f->v[DD_F_PACKER_SAVINGS] = 0.2;
    f->v[DD_F_NODE_CPU_UTIL_EX_VDO] = cpu_ex;
    f->v[DD_F_CPU_PSI] = 2;
    f->v[DD_F_IO_PSI] = io_psi;
    f->v[DD_F_RUN_QUEUE] = 4;
    f->v[DD_F_DEDUP_RATIO] = dedup_ratio;
    assert_int_equal(dd_cluster_put(c, &r, NOW - 995), 0);
}

/* The glue's ranking, in short: each entry's node scored, ranked. */
static void rank_entries(const struct dd_score_env *env, const struct dd_score_options *o,
                         const struct dd_pod_profile *pod, const char *const *nodes, size_t n,
                         long pinned, struct dd_csi_rank *ranks, struct dd_node_score *s)
{
    char err[256];
    size_t n_scored = 0;
    const char *names[8];
    for (size_t i = 0; i < n; i++)
        if (nodes[i])
            names[n_scored++] = nodes[i];
    assert_int_equal(
        dd_score_pod(o, env, pod, names, n_scored, DD_SCORE_PRIORITIZE, false, s, err, sizeof(err)),
        0);
    for (size_t i = 0, k = 0; i < n; i++) {
        ranks[i] = (struct dd_csi_rank){.entry = i,
                                        .preferred_pos = (long)i,
                                        .slowdown_percent = NAN,
                                        .pinned = (long)i == pinned};
        if (!nodes[i]) {
            ranks[i].cls = DD_CSI_NO_NODE;
            continue;
        }
        ranks[i].cls = s[k].verdict == DD_VERDICT_UNRESOLVABLE ? DD_CSI_FILTERED : DD_CSI_SCORED;
        ranks[i].score = s[k].score;
        ranks[i].slowdown_percent = s[k].slowdown_percent;
        k++;
    }
    dd_csi_order(ranks, n);
}

static void test_preferred_by_contention(void **state)
{
    (void)state;
    struct dd_cluster_options co = {.stale_after_s = 0, .forget_after_s = 3600};
    struct dd_cluster *c;
    struct dd_ledger *l;
    struct dd_ledger_view view;
    struct dd_cm_prior prior;
    struct dd_score_options o;
    assert_int_equal(dd_cluster_new(&co, &c), 0);
    assert_int_equal(dd_ledger_new(NULL, &l), 0);
    dd_cm_prior_defaults(&prior);
    dd_score_options_init(&o);
    /* a: busy; b: idle; c: middling; d: no room for the claim */
    put_node(c, "gpu-node-a", 400, 0.8, 40, 500, 2);
    put_node(c, "gpu-node-b", 5, 0.05, 1, 500, 2);
    put_node(c, "gpu-node-c", 100, 0.4, 10, 500, 2);
    put_node(c, "gpu-node-d", 5, 0.05, 1, 0.5, 2);
    struct dd_cluster_snapshot *snap = dd_cluster_snapshot(c);
    assert_int_equal(dd_ledger_view(l, NULL, NOW, &view), 0);
    struct dd_score_env env = {.cluster = snap,
                               .ledger = &view,
                               .model = {prior_predict, &prior},
                               .kube_source = "none",
                               .now_ms = NOW};
    struct dd_pod_profile pod;
    memset(&pod, 0, sizeof(pod));
    snprintf(pod.uid, sizeof(pod.uid), "u1");
    pod.gpus = 2;
    pod.source = "annotations";
    pod.n_claims = 1;
    snprintf(pod.claims[0].claim, sizeof(pod.claims[0].claim), "ckpt");
    snprintf(pod.claims[0].pool, sizeof(pod.claims[0].pool), "fast");
    pod.claims[0].write_mbps = 200;
    pod.claims[0].read_mbps = 400;
    pod.claims[0].duplicate_share = NAN;
    pod.claims[0].request_bytes = (uint64_t)(100 * GIB);
    pod.claims[0].known = true;

    /* the CO's order: a, b, c, d, then a segment no node matches */
    const char *nodes[] = {"gpu-node-a", "gpu-node-b", "gpu-node-c", "gpu-node-d", NULL};
    struct dd_csi_rank r[5];
    struct dd_node_score s[4];
    rank_entries(&env, &o, &pod, nodes, 5, -1, r, s);
    assert_int_equal(r[0].entry, 1); /* idle b first */
    assert_int_equal(r[1].entry, 2);
    assert_int_equal(r[2].entry, 0); /* busy a after c */
    assert_int_equal(r[3].entry, 3); /* d: filtered (insufficient space) */
    assert_int_equal(r[3].cls, DD_CSI_FILTERED);
    assert_non_null(strstr(s[3].reason, "insufficient_space"));
    assert_int_equal(r[4].entry, 4); /* no node: last */
    assert_int_equal(r[4].cls, DD_CSI_NO_NODE);
    assert_true(r[0].slowdown_percent < r[1].slowdown_percent);
    assert_true(r[1].slowdown_percent < r[2].slowdown_percent);
    dd_node_scores_release(s, 4);

    /* the selected node (a) stays first; the rest is reordered behind it */
    rank_entries(&env, &o, &pod, nodes, 5, 0, r, s);
    assert_int_equal(r[0].entry, 0);
    assert_true(r[0].pinned);
    assert_int_equal(r[1].entry, 1);
    assert_int_equal(r[2].entry, 2);
    assert_int_equal(r[3].entry, 3);
    dd_node_scores_release(s, 4);

    dd_ledger_view_release(&view);
    dd_cluster_snapshot_free(snap);
    dd_ledger_free(l);
    dd_cluster_free(c);
}

/* ---- effective capacity ---- */

static void test_capacity(void **state)
{
    (void)state;
    struct dd_csi_capacity_options o;
    struct dd_csi_capacity c2, c3, cx;
    const char *src;
    char note[160];
    dd_csi_capacity_options_init(&o);
    struct dd_csi_volume_space v = {.physical_bytes = (int64_t)(1000 * GIB),
                                    .physical_free_bytes = (int64_t)(400 * GIB),
                                    .logical_free_bytes = (int64_t)(5000 * GIB),
                                    .reserved_bytes = (uint64_t)(100 * GIB),
                                    .observed_reduction = 2.0};

    /* the pool's observed reduction moves: so does the capacity */
    double red = dd_csi_reduction(&o, "", v.observed_reduction, &src, note, sizeof(note));
    assert_true(red == 2.0);
    assert_string_equal(src, "observed");
    dd_csi_capacity(&o, &v, red, &c2);
    assert_true(c2.available == (int64_t)(300 * GIB * 2)); /* (400 - 100) x 2 */
    v.observed_reduction = 3.0;
    red = dd_csi_reduction(&o, NULL, v.observed_reduction, &src, note, sizeof(note));
    dd_csi_capacity(&o, &v, red, &c3);
    assert_true(c3.available == (int64_t)(300 * GIB * 3));
    assert_true(c3.available > c2.available && c3.maximum > c2.maximum);
    /* maximum: the margin and the ceiling (950 - 600 used - 100 reserved = 250 GiB) */
    assert_true(c3.maximum == (int64_t)floor(250 * GIB * 3 / 1.1));
    assert_true(c3.maximum <= c3.available);

    /* the class's annotation wins over the observed ratio */
    red = dd_csi_reduction(&o, "4.5", v.observed_reduction, &src, note, sizeof(note));
    assert_true(red == 4.5);
    assert_string_equal(src, "storage_class");
    /* a malformed one is ignored with a note */
    red = dd_csi_reduction(&o, "lots", v.observed_reduction, &src, note, sizeof(note));
    assert_true(red == 3.0);
    assert_non_null(strstr(note, "dedupd.io/expected-reduction"));
    /* an absurd observed ratio is capped; none at all is 1 */
    assert_true(dd_csi_reduction(&o, NULL, 500, &src, note, sizeof(note)) == 20);
    assert_true(dd_csi_reduction(&o, NULL, NAN, &src, note, sizeof(note)) == 1);
    assert_string_equal(src, "none");

    /* never above the logical free space */
    v.logical_free_bytes = (int64_t)(100 * GIB);
    dd_csi_capacity(&o, &v, 3, &cx);
    assert_true(cx.available == (int64_t)(100 * GIB) && cx.logical_capped);
    assert_true(cx.maximum <= cx.available);
    /* read-only, or reservations beyond the free space: nothing */
    v.read_only = true;
    dd_csi_capacity(&o, &v, 3, &cx);
    assert_true(cx.available == 0 && cx.maximum == 0);
    v.read_only = false;
    v.reserved_bytes = (uint64_t)(500 * GIB);
    dd_csi_capacity(&o, &v, 3, &cx);
    assert_true(cx.available == 0 && cx.maximum == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_spellings_and_refusals),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_entries),
        cmocka_unit_test(test_preferred_by_contention),
        cmocka_unit_test(test_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
