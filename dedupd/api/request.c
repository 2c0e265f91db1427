/*
 * The REST API's request decoders (see request.h): what the handlers of
 * api/estimate.c, api/model.c and api/node.c read from a request before they
 * touch the node.
 */
#include "dedupd/api/request.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

int dd_estimate_request_from_json(json_t *doc, struct dd_estimate_request *ret, char *errbuf,
                                  size_t errlen)
{
    json_t *paths = json_object_get(doc, "paths"), *mode = json_object_get(doc, "mode"), *p;
    struct dd_estimate_request q = {0};
    size_t i;

    if (!json_is_array(paths) || json_array_size(paths) == 0 ||
        json_array_size(paths) > DD_ESTIMATE_MAX_PATHS) {
        snprintf(errbuf, errlen, "'paths' must be an array of 1..%d path strings",
                 DD_ESTIMATE_MAX_PATHS);
        return -EINVAL;
    }
    if (mode && !(json_is_string(mode) && (strcmp(json_string_value(mode), "exact") == 0 ||
                                           strcmp(json_string_value(mode), "sampled") == 0))) {
        snprintf(errbuf, errlen, "'mode' must be exact or sampled");
        return -EINVAL;
    }
    q.has_mode = mode != NULL;
    q.exact = mode && strcmp(json_string_value(mode), "exact") == 0;
    json_array_foreach(paths, i, p)
    {
        if (!json_is_string(p)) {
            snprintf(errbuf, errlen, "paths[%zu] is not a string", i);
            return -EINVAL;
        }
        q.paths[q.n_paths++] = json_string_value(p);
    }
    *ret = q;
    return 0;
}

int dd_predict_request_from_json(json_t *doc, struct dd_predict_request *ret, char *errbuf,
                                 size_t errlen)
{
    json_t *vol, *feat, *wi, *x;
    const char *key;
    int r;

    json_object_foreach(doc, key, x)
    {
        if (strcmp(key, "volume") != 0 && strcmp(key, "features") != 0 &&
            strcmp(key, "what_if") != 0) {
            snprintf(errbuf, errlen, "%s: unknown field (volume, what_if, features)", key);
            return -EINVAL;
        }
    }
    vol = json_object_get(doc, "volume");
    feat = json_object_get(doc, "features");
    wi = json_object_get(doc, "what_if");
    if ((vol != NULL) == (feat != NULL) || (feat && wi)) {
        snprintf(errbuf, errlen, "give either 'volume' (and optionally 'what_if') or 'features'");
        return -EINVAL;
    }
    if (feat) {
        r = dd_cm_row_from_json(feat, ret->row, true, errbuf, errlen);
        if (r < 0)
            return r;
        ret->volume = NULL;
        ret->what_if = NULL;
        return 0;
    }
    if (!json_is_string(vol)) {
        snprintf(errbuf, errlen, "volume: expected a volume name (string)");
        return -EINVAL;
    }
    ret->volume = json_string_value(vol);
    ret->what_if = wi;
    return 0;
}

int dd_api_time_arg(const char *value, uint64_t *ret_ms)
{
    double s;
    if (dd_parse_double(value, &s) < 0 || !(s >= 0 && s <= 1e11))
        return DD_E_PARSE;
    *ret_ms = (uint64_t)(s * 1000.0);
    return 0;
}
