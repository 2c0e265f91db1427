/*
 * The REST API's request decoders: the bodies of POST /v1/estimate and POST
 * /v1/predict and the time query arguments, as pure functions (no HTTP, no
 * threads, no store), so the handlers and the fuzz targets share them. A
 * refusal returns -EINVAL and errbuf names the field; the handlers answer
 * it 400 with that message.
 */
#ifndef DD_API_REQUEST_H
#define DD_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "placement/costmodel.h"

/* Paths one estimate may name. */
#define DD_ESTIMATE_MAX_PATHS 64

/* POST /v1/estimate {"paths": ["...", ...], "mode": "exact"|"sampled"}. */
struct dd_estimate_request {
    const char *paths[DD_ESTIMATE_MAX_PATHS]; /* borrowed from the document */
    size_t n_paths;                           /* 1..DD_ESTIMATE_MAX_PATHS */
    bool has_mode;                            /* "mode" given */
    bool exact;                               /* "mode": "exact" */
};
/* Checks the shape only (the paths against the roots are the handler's). */
int dd_estimate_request_from_json(json_t *doc, struct dd_estimate_request *ret, char *errbuf,
                                  size_t errlen);

/* POST /v1/predict: either {"features": {...}} or {"volume": NAME} with an
 * optional "what_if" (decoded by dd_what_if_from_json once the volume's
 * features are known). */
struct dd_predict_request {
    const char *volume;         /* borrowed; NULL when features were given */
    json_t *what_if;            /* borrowed; NULL when absent */
    float row[DD_CM_NFEATURES]; /* the given features (strict), when volume is NULL */
};
int dd_predict_request_from_json(json_t *doc, struct dd_predict_request *ret, char *errbuf,
                                 size_t errlen);

/* A time query argument ("from", "to", "step"): Unix seconds, fractions
 * allowed, at most 1e11. Returns 0 with *ret_ms, or DD_E_PARSE. */
int dd_api_time_arg(const char *value, uint64_t *ret_ms);

#endif
