/*
 * Fuzz target for the stored cost-model summaries (dd_cm_summary_from_text,
 * placement/costmodel.h) as the trainer reads them back from the store at
 * start: the first byte picks the version the summary is stored under, the
 * rest is the stored text. Invariants: a refusal says why and hands nothing
 * out; an accepted summary is an object naming that version, with the
 * holdout and rows_by_node shapes /v1/model reads, and dumps as JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "placement/costmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *sum = (json_t *)(uintptr_t)1;
    char err[512] = "";
    uint64_t version;

    if (size < 1)
        return 0;
    version = data[0] < 250 ? data[0] : (uint64_t)1 << (data[0] - 200);
    int r = dd_cm_summary_from_text(data + 1, size - 1, version, &sum, err, sizeof(err));
    if (r < 0) {
        CHECK(r == -EINVAL && err[0] != '\0');
        CHECK(sum == (json_t *)(uintptr_t)1);
        return 0;
    }
    CHECK(r == 0 && json_is_object(sum));
    CHECK((uint64_t)json_integer_value(json_object_get(sum, "version")) == version);
    json_t *h = json_object_get(sum, "holdout");
    CHECK(!h || json_is_object(h));
    for (int t = 0; h && t < DD_CM_NTARGETS; t++) {
        json_t *e = json_object_get(h, dd_cm_target_names[t]);
        CHECK(!e || json_is_object(e));
    }
    const char *key;
    json_t *x;
    json_object_foreach(json_object_get(sum, "rows_by_node"), key, x)
        CHECK(json_is_integer(x) && json_integer_value(x) >= 0);
    char *text = json_dumps(sum, JSON_COMPACT);
    CHECK(text != NULL);
    free(text);
    json_decref(sum);
    return 0;
}
