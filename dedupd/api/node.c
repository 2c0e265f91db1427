/*
 * Node-local REST: the sampler's latest documents and the store's history
 * of a volume. Handlers copy the sampler's snapshot text and never wait on
 * a sample.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/api/request.h"
#include "dedupd/sampler.h"
#include "dedupd/store/store.h"

static int reply_doc(struct dd_api_node *a, enum dd_sampler_doc which,
                     struct dd_http_response *resp)
{
    char *text = dd_sampler_doc(a->sampler, which);
    if (!text)
        return dd_http_reply_error(resp, 503, "not_ready", "no sample has been taken yet");
    int r = dd_http_reply_text(resp, 200, "application/json", text, strlen(text));
    dd_free(text);
    return r;
}

static int h_volumes(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)req;
    return reply_doc(ctx, DD_SAMPLER_VOLUMES, resp);
}

static int h_node(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)req;
    return reply_doc(ctx, DD_SAMPLER_NODE, resp);
}

static int h_volume(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_api_node *a = ctx;
    char *text = dd_sampler_volume_text(a->sampler, req->params[0]);
    if (!text)
        return dd_http_reply_error(resp, 404, "not_found", "no VDO volume '%s'", req->params[0]);
    int r = dd_http_reply_text(resp, 200, "application/json", text, strlen(text));
    dd_free(text);
    return r;
}

/* Parses a time query argument: Unix seconds (fractions allowed). */
static int time_arg(const struct dd_http_request *req, const char *name, uint64_t dflt,
                    uint64_t *ret_ms, struct dd_http_response *resp)
{
    const char *v = dd_http_query(req, name);
    if (!v) {
        *ret_ms = dflt;
        return 0;
    }
    if (dd_api_time_arg(v, ret_ms) < 0) {
        dd_http_reply_error(resp, 400, "bad_query",
                            "'%s' must be Unix seconds (a non-negative number), got '%.40s'", name,
                            v);
        return DD_E_PARSE;
    }
    return 0;
}

static int h_history(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_api_node *a = ctx;
    uint64_t now = dd_wall_ms(), from, to, step;
    struct dd_store_point *pts = NULL;
    size_t n = 0;
    bool truncated = false;
    char series[DD_SERIES_MAX];
    json_t *arr;
    int r;

    if (time_arg(req, "from", now > 3600000 ? now - 3600000 : 0, &from, resp) < 0 ||
        time_arg(req, "to", now, &to, resp) < 0 || time_arg(req, "step", 0, &step, resp) < 0)
        return 0;
    if (from > to)
        return dd_http_reply_error(resp, 400, "bad_query", "'from' is after 'to'");
    if (strlen(req->params[0]) >= DD_NAME_MAX)
        return dd_http_reply_error(resp, 400, "bad_request", "volume name too long");
    snprintf(series, sizeof(series), "vol/%s", req->params[0]);
    struct dd_store_query q = {.series = series, .from_ms = from, .to_ms = to, .step_ms = step};
    r = dd_store_query_array(a->store, &q, &pts, &n, &truncated);
    if (r < 0)
        return dd_http_reply_error(resp, 500, "store", "history query failed: %s", dd_strerror(r));
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *sample = json_loadb(pts[i].value, pts[i].len, 0, NULL);
        json_array_append_new(arr, json_pack("{s:I, s:o}", "time_ms", (json_int_t)pts[i].ts_ms,
                                             "sample", sample ? sample : json_null()));
    }
    dd_store_points_free(pts, n);
    if (n == 0 && !dd_sampler_has_volume(a->sampler, req->params[0])) {
        json_decref(arr);
        return dd_http_reply_error(resp, 404, "not_found",
                                   "no VDO volume '%s' now and no history for it", req->params[0]);
    }
    return dd_http_reply_json(resp, 200,
                              json_pack("{s:s, s:I, s:I, s:I, s:b, s:o}", "name", req->params[0],
                                        "from_ms", (json_int_t)from, "to_ms", (json_int_t)to,
                                        "step_ms", (json_int_t)step, "truncated", truncated,
                                        "points", arr));
}

size_t dd_api_node_routes(struct dd_api_node *ctx, struct dd_http_route *out)
{
    static const struct dd_http_route templ[] = {
        {"GET", "/v1/node", h_node, NULL, false, NULL, 0},
        {"GET", "/v1/volumes", h_volumes, NULL, false, NULL, 0},
        {"GET", "/v1/volumes/{name}", h_volume, NULL, false, NULL, 0},
        {"GET", "/v1/volumes/{name}/history", h_history, NULL, false, NULL, 0},
    };
    return dd_api_fill_routes(templ, DD_ARRAY_SIZE(templ), ctx->sampler ? ctx : NULL, ctx->role,
                              out);
}
