/*
 * Fuzz target for POST /v1/csi/preferred's decoders (csi/): a
 * CreateVolumeRequest, or the short form's TopologyRequirement, then the
 * entries (each requisite segment once), the label matcher over the
 * segments and the ordering. Invariants: a refusal says why; an accepted
 * request re-encodes and decodes again to the same message; entries are
 * unique and each names a real segment; every segment matches a node made
 * of its own pairs; the order is a permutation with pinned first.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csi/csi.h"
#include "fuzz.h"

static void count_hit(void *ctx, size_t seg)
{
    (void)seg;
    (*(size_t *)ctx)++;
}

static void check_topology(const struct dd_csi_topology_req *t)
{
    size_t *idx, n;
    long *pos;
    const struct dd_csi_segment *src = dd_csi_entries_source(t);
    size_t ns = t->n_requisite ? t->n_requisite : t->n_preferred;
    if (dd_csi_entries(t, &idx, &pos, &n) < 0)
        return;
    CHECK(n <= ns);
    for (size_t i = 0; i < n; i++) {
        CHECK(idx[i] < ns);
        CHECK(pos[i] < (long)t->n_preferred);
        for (size_t j = 0; j < i; j++)
            CHECK(dd_csi_segment_cmp(&src[idx[i]], &src[idx[j]]) != 0);
    }
    /* each entry matched by a node holding exactly its pairs */
    struct dd_csi_segment *segs = calloc(n ? n : 1, sizeof(*segs));
    struct dd_csi_matcher *m;
    CHECK(segs != NULL);
    for (size_t i = 0; i < n; i++)
        segs[i] = src[idx[i]];
    if (dd_csi_matcher_new(segs, n, &m) == 0) {
        for (size_t i = 0; i < n && i < 64; i++) {
            const char *kv[2 * DD_CSI_MAX_SEGMENT_KEYS];
            size_t hits = 0;
            for (size_t p = 0; p < segs[i].n; p++) {
                kv[2 * p] = segs[i].kv[p].key;
                kv[2 * p + 1] = segs[i].kv[p].value;
            }
            dd_csi_matcher_node(m, kv, segs[i].n, NULL, 0, count_hit, &hits);
            CHECK(hits >= 1 && hits <= n);
        }
        dd_csi_matcher_free(m);
    }
    struct dd_csi_rank *r = calloc(n ? n : 1, sizeof(*r));
    CHECK(r != NULL);
    for (size_t i = 0; i < n; i++)
        r[i] = (struct dd_csi_rank){.entry = i,
                                    .cls = (enum dd_csi_class)(idx[i] % 4),
                                    .pinned = i == n / 2,
                                    .score = (int)(idx[i] % 11),
                                    .slowdown_percent =
                                        idx[i] % 5 == 0 ? (double)NAN : (double)(idx[i] % 7),
                                    .preferred_pos = pos[i]};
    dd_csi_order(r, n);
    if (n)
        CHECK(r[0].pinned);
    unsigned char *seen = calloc(n ? n : 1, 1);
    CHECK(seen != NULL);
    for (size_t i = 0; i < n; i++) {
        CHECK(r[i].entry < n && !seen[r[i].entry]);
        seen[r[i].entry] = 1;
        if (i > 1)
            CHECK(r[i - 1].cls <= r[i].cls);
    }
    free(seen);
    free(r);
    free(segs);
    free(idx);
    free(pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct dd_csi_create_volume cv, again;
    struct dd_csi_topology_req t;
    char err[512] = "";

    if (!doc)
        return 0;
    if (dd_csi_create_volume_decode(doc, &cv, err, sizeof(err)) < 0) {
        CHECK(err[0] != '\0');
    } else {
        CHECK(cv.required_bytes >= 0 && cv.limit_bytes >= 0);
        json_t *enc = dd_csi_create_volume_to_json(&cv);
        CHECK(enc != NULL);
        CHECK(dd_csi_create_volume_decode(enc, &again, err, sizeof(err)) == 0);
        json_t *enc2 = dd_csi_create_volume_to_json(&again);
        CHECK(json_equal(enc, enc2));
        json_decref(enc2);
        dd_csi_create_volume_release(&again);
        json_decref(enc);
        check_topology(&cv.accessibility);
        dd_csi_create_volume_release(&cv);
    }
    /* the short form's requirement */
    const json_t *ar = json_object_get(doc, "accessibilityRequirements");
    if (ar) {
        err[0] = '\0';
        if (dd_csi_topology_req_decode(ar, "accessibilityRequirements", &t, err, sizeof(err)) ==
            0) {
            check_topology(&t);
            dd_csi_topology_req_release(&t);
        } else {
            CHECK(err[0] != '\0');
        }
    }
    json_decref(doc);
    return 0;
}
