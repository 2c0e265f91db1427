/*
 * Fuzz target for the POST /v1/estimate body (dedupd/api/request.h) on
 * arbitrary bytes, parsed as dd_http_body_json does. Invariants: a refusal
 * names the field ('paths', 'mode' or paths[i]) and leaves the output
 * untouched; an accepted request has 1..64 paths, each the document's own
 * string in order, and a mode only when "mode" is exact or sampled.
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "dedupd/api/request.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    struct dd_estimate_request q;
    char err[512] = "";

    if (!doc)
        return 0;
    if (!json_is_object(doc)) { /* dd_http_body_json answers these itself */
        json_decref(doc);
        return 0;
    }
    memset(&q, 0x5a, sizeof(q));
    int r = dd_estimate_request_from_json(doc, &q, err, sizeof(err));
    json_t *paths = json_object_get(doc, "paths"), *mode = json_object_get(doc, "mode");
    if (r < 0) {
        CHECK(r == -EINVAL);
        CHECK(strncmp(err, "'paths'", 7) == 0 || strncmp(err, "'mode'", 6) == 0 ||
              strncmp(err, "paths[", 6) == 0);
        CHECK(((unsigned char *)&q)[0] == 0x5a);
        json_decref(doc);
        return 0;
    }
    CHECK(r == 0 && err[0] == '\0');
    CHECK(json_is_array(paths) && q.n_paths == json_array_size(paths));
    CHECK(q.n_paths >= 1 && q.n_paths <= DD_ESTIMATE_MAX_PATHS);
    for (size_t i = 0; i < q.n_paths; i++)
        CHECK(q.paths[i] == json_string_value(json_array_get(paths, i)));
    CHECK(q.has_mode == (mode != NULL));
    if (mode)
        CHECK(strcmp(json_string_value(mode), q.exact ? "exact" : "sampled") == 0);
    else
        CHECK(!q.exact);
    json_decref(doc);
    return 0;
}
