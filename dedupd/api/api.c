/*
 * What every route table shares: the answer of a route this role does not
 * serve, and filling a table with its context (or with that answer).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>

#include "dedupd/api/api.h"

size_t dd_api_fill_routes(const struct dd_http_route *templ, size_t n, void *ctx, const char *role,
                          struct dd_http_route *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = templ[i];
        out[i].ctx = ctx;
        if (!ctx) {
            out[i].handler = dd_api_not_in_role;
            out[i].ctx = (void *)(uintptr_t)role;
        }
    }
    return n;
}

int dd_api_not_in_role(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    const char *role = ctx;
    bool placement =
        strncmp(req->path, "/v1/model", 9) == 0 || strcmp(req->path, "/v1/predict") == 0 ||
        strncmp(req->path, "/v1/cluster", 11) == 0 || strcmp(req->path, "/v1/reports") == 0 ||
        strcmp(req->path, "/v1/observations") == 0 || strncmp(req->path, "/v1/rightsize", 13) == 0;
    return dd_http_reply_error(resp, 404, "not_served",
                               "%s is served by dedupd with role %s; this one has role %s",
                               req->path, placement ? "placement or all" : "node or all", role);
}
