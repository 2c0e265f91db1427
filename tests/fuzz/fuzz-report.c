/*
 * Fuzz target for the node report decoder (placement/report.h) on arbitrary
 * bytes, as POST /v1/reports receives them. Invariants: a refusal names a
 * field and leaves the output untouched; an accepted report respects every
 * cap and range, and survives its own wire form unchanged; the cluster
 * view takes it and renders it.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "placement/cluster.h"
#include "placement/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct dd_report r, again;
    char err[512] = "";

    if (!doc)
        return 0;
    memset(&r, 0x5a, sizeof(r));
    int e = dd_report_from_json(doc, &r, err, sizeof(err));
    json_decref(doc);
    if (e < 0) {
        CHECK(e == -EINVAL || e == -ENOMEM || e == -E2BIG);
        CHECK(err[0] != '\0');
        CHECK(((unsigned char *)&r)[0] == 0x5a);
        return 0;
    }
    CHECK(dd_report_node_name_ok(r.node));
    CHECK(r.n_volumes <= DD_MAX_VOLUMES_PER_NODE && r.n_pods <= DD_MAX_PODS_PER_REPORT &&
          r.n_gpus <= DD_MAX_GPUS_PER_REPORT);
    CHECK(r.interval_s >= 0.01 && r.interval_s <= 3600 && r.time_ms > 0);
    for (size_t i = 0; i < r.n_volumes; i++) {
        CHECK(r.volumes[i].name[0] && r.volumes[i].pool[0]);
        for (size_t f = 0; f < DD_F_COUNT; f++) {
            double x = r.volumes[i].features.v[f];
            CHECK(isnan(x) || dd_feature_value_ok((enum dd_feature)f, x));
        }
    }
    /* the wire form decodes to the same report */
    json_t *wire = dd_report_to_json(&r);
    CHECK(wire != NULL);
    CHECK(dd_report_from_json(wire, &again, err, sizeof(err)) == 0);
    json_t *wire2 = dd_report_to_json(&again);
    CHECK(json_equal(wire, wire2));
    json_decref(wire);
    json_decref(wire2);
    dd_report_release(&again);

    /* the cluster view takes it and renders it */
    struct dd_cluster_options o = {.stale_after_s = 0, .forget_after_s = 3600};
    struct dd_cluster *c;
    CHECK(dd_cluster_new(&o, &c) == 0);
    char node[DD_NAME_MAX];
    memcpy(node, r.node, sizeof(node));
    CHECK(dd_cluster_put(c, &r, r.time_ms + 1000) == 0);
    struct dd_cluster_snapshot *s = dd_cluster_snapshot(c);
    CHECK(s && s->n == 1);
    const struct dd_cluster_node *n = dd_cluster_find(s, node);
    CHECK(n != NULL);
    json_t *j = dd_cluster_node_json(&s->opts, n, r.time_ms + 2000, true);
    CHECK(j != NULL);
    json_decref(j);
    dd_cluster_snapshot_free(s);
    dd_cluster_free(c);
    return 0;
}
