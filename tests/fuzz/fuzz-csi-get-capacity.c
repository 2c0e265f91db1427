/*
 * Fuzz target for GET/POST /v1/csi/capacity's decoders (csi/): a
 * GetCapacityRequest, and the capacity rule on figures taken from the
 * input's bytes. Invariants: a refusal says why; an accepted request
 * re-encodes to a message that decodes to the same; the reduction is
 * finite and >= 1; capacities are >= 0, maximum <= available, available
 * never above a known logical free space; the response encodes int64s as
 * strings that decode back.
 */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "csi/csi.h"
#include "fuzz.h"

static int64_t take(const uint8_t **p, size_t *n)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | (*n ? **p : 0);
        if (*n) {
            (*p)++;
            (*n)--;
        }
    }
    return (int64_t)(v >> 2) - (int64_t)(1ull << 60);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct dd_csi_get_capacity g, again;
    char err[512] = "", note[160];
    const char *src;

    if (doc) {
        if (dd_csi_get_capacity_decode(doc, &g, err, sizeof(err)) < 0) {
            CHECK(err[0] != '\0');
        } else {
            json_t *enc = dd_csi_get_capacity_to_json(&g);
            CHECK(dd_csi_get_capacity_decode(enc, &again, err, sizeof(err)) == 0);
            json_t *enc2 = dd_csi_get_capacity_to_json(&again);
            CHECK(json_equal(enc, enc2));
            json_decref(enc2);
            json_decref(enc);
            dd_csi_get_capacity_release(&again);
            dd_csi_get_capacity_release(&g);
        }
        json_decref(doc);
    }

    /* the rule on arbitrary figures */
    const uint8_t *p = data;
    size_t n = size;
    struct dd_csi_capacity_options o;
    dd_csi_capacity_options_init(&o);
    struct dd_csi_volume_space v = {.physical_bytes = take(&p, &n),
                                    .physical_free_bytes = take(&p, &n),
                                    .logical_free_bytes = take(&p, &n),
                                    .reserved_bytes = (uint64_t)take(&p, &n) & 0xffffffffffffull,
                                    .observed_reduction = (double)(take(&p, &n) % 4000) / 100.0,
                                    .read_only = n && (*p & 1)};
    char ann[16];
    size_t al = n < sizeof(ann) - 1 ? n : sizeof(ann) - 1;
    memcpy(ann, p, al);
    ann[al] = '\0';
    double red = dd_csi_reduction(&o, ann, v.observed_reduction, &src, note, sizeof(note));
    CHECK(isfinite(red) && red >= 1 && src != NULL);
    struct dd_csi_capacity c;
    dd_csi_capacity(&o, &v, red, &c);
    CHECK(c.available >= 0 && c.maximum >= 0 && c.maximum <= c.available);
    if (v.logical_free_bytes >= 0)
        CHECK(c.available <= v.logical_free_bytes);
    struct dd_csi_capacity_response cr = {c.available, true, true, c.maximum, 0}, back;
    json_t *j = dd_csi_capacity_response_to_json(&cr);
    CHECK(json_is_string(json_object_get(j, "availableCapacity")));
    CHECK(dd_csi_capacity_response_decode(j, &back, err, sizeof(err)) == 0);
    CHECK(back.available_capacity == cr.available_capacity &&
          back.maximum_volume_size == cr.maximum_volume_size);
    json_decref(j);
    return 0;
}
