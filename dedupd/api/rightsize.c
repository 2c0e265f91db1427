/*
 * The right-sizing REST (roles all, placement): POST /v1/observations
 * takes one pod outcome in the fixed body (placement/rightsize.h:
 * dd_rs_outcome_from_json; 400 naming the bad field; a repeated pod_uid
 * replaces the earlier outcome), stored before the answer; GET
 * /v1/rightsize/model shows the model's versions, rows and hold-out MAPE
 * per target against the history fallback. The outcome route is mutating:
 * the HTTP layer asks for the bearer token (when one is set) before the
 * body is read, like /v1/reports, and refuses bodies past
 * DD_API_OBSERVATION_MAX_BODY with 413.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/rightsize.h"

static int h_observe(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_rightsize *rs = ctx;
    json_t *doc = dd_http_body_json(req, resp);
    struct dd_rs_outcome *o;
    char err[512] = "";
    int r;

    if (!doc)
        return 0;
    if (!(o = dd_malloc(sizeof(*o)))) {
        json_decref(doc);
        return dd_http_reply_error(resp, 503, "unavailable", "out of memory");
    }
    r = dd_rs_outcome_from_json(doc, o, err, sizeof(err));
    json_decref(doc);
    if (r < 0) {
        dd_free(o);
        return dd_http_reply_error(resp, 400, "bad_request", "%s", err);
    }
    r = dd_rightsize_observe(rs, o, err, sizeof(err));
    if (r < 0) {
        dd_free(o);
        if (r == -EINVAL)
            return dd_http_reply_error(resp, 400, "bad_request", "%s", err);
        return dd_http_reply_error(resp, 503, "store", "outcome not recorded: %s", err);
    }
    json_t *out = json_pack("{s:s, s:b}", "pod_uid", o->pod_uid, "recorded", 1);
    dd_free(o);
    return dd_http_reply_json(resp, 200, out);
}

static int h_model(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)req;
    return dd_http_reply_json(resp, 200, dd_rightsize_status(ctx));
}

size_t dd_api_rightsize_routes(struct dd_rightsize *rs, const char *role, struct dd_http_route *out)
{
    static const struct dd_http_route templ[] = {
        {"POST", "/v1/observations", h_observe, NULL, true, NULL, DD_API_OBSERVATION_MAX_BODY},
        {"GET", "/v1/rightsize/model", h_model, NULL, false, NULL, 0},
    };
    return dd_api_fill_routes(templ, DD_ARRAY_SIZE(templ), rs, role, out);
}
