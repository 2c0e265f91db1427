/*
 * Fuzz target for the POST /v1/predict body (dedupd/api/request.h and the
 * what-if it carries, placement/features.h) on arbitrary bytes, parsed as
 * dd_http_body_json does. Invariants: a refusal says which field is wrong
 * and hands nothing out; accepted features are finite and non-negative,
 * shares at most 1; an accepted volume is the document's string; an
 * accepted what-if is in range, and applying it to a volume's features
 * keeps the model row finite.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "dedupd/api/request.h"
#include "fuzz.h"
#include "placement/features.h"

static bool names_field(const char *err)
{
    static const char *const prefixes[] = {"give either", "volume: ", "features", "what_if"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return strstr(err, ": unknown field (volume, what_if, features)") != NULL;
}

static void what_if(json_t *wi)
{
    struct dd_what_if w;
    struct dd_features f;
    float row[DD_CM_NFEATURES];
    char err[512] = "";

    if (dd_what_if_from_json(wi, "what_if", &w, err, sizeof(err)) < 0) {
        CHECK(strncmp(err, "what_if", 7) == 0);
        return;
    }
    CHECK(isfinite(w.write_mbps) && w.write_mbps >= 0 && w.write_mbps <= 1e6);
    CHECK(isnan(w.duplicate_share) || (w.duplicate_share >= 0 && w.duplicate_share <= 1));
    CHECK(isfinite(w.cpu_load) && w.cpu_load >= 0 && w.cpu_load <= 1);
    /* a plain volume's features: the what-if keeps the row usable */
    memset(&f, 0, sizeof(f));
    for (size_t i = 0; i < DD_F_COUNT; i++)
        f.v[i] = 0.5;
    dd_features_what_if(&f, &w);
    dd_features_model_row(&f, row);
    for (int i = 0; i < DD_CM_NFEATURES; i++)
        CHECK(isfinite(row[i]) || isnan(row[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    struct dd_predict_request q;
    char err[512] = "";

    if (!doc)
        return 0;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }
    memset(&q, 0x5a, sizeof(q));
    int r = dd_predict_request_from_json(doc, &q, err, sizeof(err));
    if (r < 0) {
        CHECK(r == -EINVAL);
        CHECK(names_field(err));
        json_decref(doc);
        return 0;
    }
    CHECK(r == 0);
    if (q.volume) {
        CHECK(q.volume == json_string_value(json_object_get(doc, "volume")));
        CHECK(q.what_if == json_object_get(doc, "what_if"));
        if (q.what_if)
            what_if(q.what_if);
    } else {
        CHECK(json_object_get(doc, "features") && !json_object_get(doc, "what_if"));
        CHECK(q.what_if == NULL);
        for (int i = 0; i < DD_CM_NFEATURES; i++)
            CHECK(isfinite(q.row[i]) && q.row[i] >= 0);
        CHECK(q.row[DD_CM_DEDUP_HIT_RATE] <= 1 && q.row[DD_CM_NODE_CPU_UTIL_EX_VDO] <= 1);
    }
    /* a what-if is decoded whatever came with it */
    if (json_object_get(doc, "what_if"))
        what_if(json_object_get(doc, "what_if"));
    json_decref(doc);
    return 0;
}
