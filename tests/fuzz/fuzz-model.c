/*
 * Fuzz target for the cost model's parsers: a stored model blob's framing
 * (dd_cm_model_check: header, lengths, evaluations, checksums), and the
 * JSON it reads from outside (a /v1/predict feature vector, strict and
 * lenient; prior coefficients; a stored sample for training).
 * Invariants: a refused blob says why; a strict feature row that parses holds only
 * finite, non-negative values, shares at most 1; accepted prior coefficients
 * are finite; failures say why.
 */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "fuzz.h"
#include "placement/costmodel.h"

/* Our framing only: a fuzzer forges checksums (it reads the compared
 * strings), so fuzzed bytes must not reach XGBoost's own reader, which is
 * not safe on crafted input (XGBoost 1.7.4: a heap-buffer-overflow in
 * UBJReader::DecodeStr, found here). dd_cm_model_load checks the same
 * framing before XGBoost sees a byte; test-costmodel covers the load. */
static void blob(const uint8_t *data, size_t size)
{
    char err[512] = "";
    if (dd_cm_model_check(data, size, err, sizeof(err)) < 0)
        CHECK(strncmp(err, "model blob: ", 12) == 0);
}

static void json_inputs(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    float row[DD_CM_NFEATURES];
    struct dd_cm_prior p;
    struct dd_cm_data d = {0};
    char err[512] = "";

    if (!doc)
        return;
    json_t *f = json_object_get(doc, "features") ? json_object_get(doc, "features") : doc;
    if (dd_cm_row_from_json(f, row, true, err, sizeof(err)) == 0) {
        for (int i = 0; i < DD_CM_NFEATURES; i++)
            CHECK(isfinite(row[i]) && row[i] >= 0);
        CHECK(row[DD_CM_DEDUP_HIT_RATE] <= 1 && row[DD_CM_NODE_CPU_UTIL_EX_VDO] <= 1);
    } else {
        CHECK(strncmp(err, "features", 8) == 0);
    }
    (void)dd_cm_row_from_json(f, row, false, err, sizeof(err));
    dd_cm_prior_defaults(&p);
    if (dd_cm_prior_from_json(&p, doc, err, sizeof(err)) == 0) {
        for (int i = 0; i < DD_CM_PRIOR_COST_TERMS; i++)
            CHECK(isfinite(p.cost[i]));
        CHECK(p.contention[DD_CM_COST] >= 0 && p.contention[DD_CM_COST] <= 10);
    } else {
        CHECK(strncmp(err, "prior: ", 7) == 0);
    }
    CHECK(dd_cm_data_add_doc(&d, doc, 1) == 0);
    CHECK(d.n <= 1);
    dd_cm_data_release(&d);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    blob(data, size);
    json_inputs(data, size);
    return 0;
}
