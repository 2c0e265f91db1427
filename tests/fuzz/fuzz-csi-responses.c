/*
 * Fuzz target for the strict decoders of the responses (csi/):
 * GetCapacityResponse and NodeGetInfoResponse. Invariants: a refusal says
 * why; an accepted message re-encodes canonically and decodes again to the
 * same values.
 */
#include <string.h>

#include <jansson.h>

#include "csi/csi.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct dd_csi_capacity_response cr, cr2;
    struct dd_csi_node_info ni, ni2;
    char err[512] = "";

    if (!doc)
        return 0;
    if (dd_csi_capacity_response_decode(doc, &cr, err, sizeof(err)) == 0) {
        json_t *enc = dd_csi_capacity_response_to_json(&cr);
        CHECK(dd_csi_capacity_response_decode(enc, &cr2, err, sizeof(err)) == 0);
        CHECK(memcmp(&cr, &cr2, sizeof(cr)) == 0);
        json_decref(enc);
    } else {
        CHECK(err[0] != '\0');
    }
    err[0] = '\0';
    if (dd_csi_node_info_decode(doc, &ni, err, sizeof(err)) == 0) {
        CHECK(ni.node_id && ni.node_id[0] && ni.max_volumes_per_node >= 0);
        json_t *enc = dd_csi_node_info_to_json(&ni);
        CHECK(dd_csi_node_info_decode(enc, &ni2, err, sizeof(err)) == 0);
        CHECK(strcmp(ni.node_id, ni2.node_id) == 0 &&
              ni.max_volumes_per_node == ni2.max_volumes_per_node &&
              ni.topology.n == ni2.topology.n);
        for (size_t i = 0; i < ni.topology.n; i++)
            CHECK(strcmp(ni.topology.kv[i].key, ni2.topology.kv[i].key) == 0 &&
                  strcmp(ni.topology.kv[i].value, ni2.topology.kv[i].value) == 0);
        dd_csi_node_info_release(&ni2);
        json_decref(enc);
    } else {
        CHECK(err[0] != '\0');
    }
    dd_csi_node_info_release(&ni);
    json_decref(doc);
    return 0;
}
