/*
 * Fuzz target for the CSIStorageCapacity publisher's decoders
 * (csi/publish): an object as listed from the API server, and Kubernetes
 * quantities. Invariants: a refusal says why; a decoded object has a name
 * and a version; node and class come together; a parsed quantity is >= 0
 * and prints back to a quantity that parses to the same; an object built
 * from a decoded one decodes to the same identity and values.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "csi/publish.h"
#include "fuzz.h"

#define KEY "topology.dedupd.io/node"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct dd_csi_pub_have h, again;
    char err[256] = "", q[64];
    int64_t v, back;

    if (doc) {
        if (dd_csi_pub_decode(doc, KEY, &h, err, sizeof(err)) < 0) {
            CHECK(err[0] != '\0');
        } else {
            CHECK(h.name && h.name[0] && h.resource_version && h.resource_version[0]);
            CHECK((h.node == NULL) == (h.storage_class == NULL));
            if (h.node && h.has_capacity && h.has_maximum) {
                struct dd_csi_pub_want w = {h.node, h.storage_class, "", h.capacity, h.maximum};
                json_t *o = dd_csi_pub_object(&w, KEY, "ns", h.name, h.resource_version, NULL);
                CHECK(o != NULL);
                CHECK(dd_csi_pub_decode(o, KEY, &again, err, sizeof(err)) == 0);
                CHECK(again.node && strcmp(again.node, h.node) == 0);
                CHECK(strcmp(again.storage_class, h.storage_class) == 0);
                CHECK(again.capacity == h.capacity && again.maximum == h.maximum);
                json_decref(o);
            }
        }
        json_decref(doc);
    }
    /* the bytes as a quantity */
    size_t n = size < sizeof(q) - 1 ? size : sizeof(q) - 1;
    memcpy(q, data, n);
    q[n] = '\0';
    if (dd_csi_quantity_parse(q, &v) == 0) {
        CHECK(v >= 0);
        snprintf(q, sizeof(q), "%lld", (long long)v);
        CHECK(dd_csi_quantity_parse(q, &back) == 0 && back == v);
    }
    return 0;
}
