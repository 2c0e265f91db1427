/*
 * The cost model's REST: status and versions, retraining (202 with a run to
 * poll when a training outlasts the wait), runs, and predictions for
 * given features or for a volume of this node with a what-if (the pure
 * what-if is placement/features).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/api/request.h"
#include "dedupd/sampler.h"
#include "dedupd/trainer.h"
#include "placement/features.h"

static int h_model(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_api_model *d = ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, dd_model_status(d->model));
}

/* A retrain is answered when it finishes, or after this long with 202 and
 * the run to poll. The connection is suspended meanwhile (dd_http_defer):
 * no HTTP worker waits for a training. */
#define RETRAIN_WAIT_MS 10000u

static void retrain_answer(struct dd_http_response *resp, json_t *doc, int status)
{
    if (status == 409 || status == 500) {
        dd_http_reply_error(resp, status, status == 409 ? "not_enough_data" : "training_failed",
                            "%s", json_string_value(json_object_get(doc, "error")));
        json_decref(doc);
        return;
    }
    dd_http_reply_json(resp, status, doc);
}

/* Runs on the trainer's waiting thread (or at once when there is nothing
 * to wait for). */
static void retrain_done(void *arg, json_t *doc, int status)
{
    struct dd_http_response resp = {0};
    retrain_answer(&resp, doc, status);
    dd_http_deferred_reply(arg, &resp); /* frees resp.body */
    dd_free(resp.body);
}

static int h_model_retrain(void *ctx, const struct dd_http_request *req,
                           struct dd_http_response *resp)
{
    struct dd_api_model *d = ctx;
    struct dd_http_deferred *h = dd_http_defer(req);
    int r;

    if (!h)
        return dd_http_reply_error(resp, 503, "unavailable", "the server is stopping");
    r = dd_model_retrain_async(d->model, RETRAIN_WAIT_MS, retrain_done, h);
    if (r < 0) {
        struct dd_http_response busy = {0};
        dd_http_reply_error(&busy, 503, "busy",
                            "too many retrain requests waiting; poll GET /v1/model (%s)",
                            strerror(-r));
        dd_http_deferred_reply(h, &busy);
        dd_free(busy.body);
    }
    return 0;
}

static int h_model_run(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_api_model *d = ctx;
    uint64_t id;
    int status = 200;
    json_t *doc;

    if (dd_parse_u64(req->params[0], &id) < 0 || id == 0)
        return dd_http_reply_error(resp, 400, "bad_request", "run id: expected a positive integer");
    doc = dd_model_run(d->model, id, &status);
    if (!doc)
        return dd_http_reply_error(resp, 404, "not_found", "no run %llu (the last 8 runs are kept)",
                                   (unsigned long long)id);
    /* polling answers 200 with the run's own status inside */
    json_object_set_new(doc, "http_status", json_integer(status));
    return dd_http_reply_json(resp, 200, doc);
}

static int h_predict(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_api_model *d = ctx;
    json_t *doc = dd_http_body_json(req, resp), *out = NULL;
    struct dd_predict_request q;
    float row[DD_CM_NFEATURES];
    char err[512] = "";
    int r;

    if (!doc)
        return 0;
    r = dd_predict_request_from_json(doc, &q, err, sizeof(err));
    if (r == 0 && !q.volume) {
        memcpy(row, q.row, sizeof(row));
    } else if (r == 0) {
        struct dd_features f;
        r = d->sampler ? dd_sampler_volume_features(d->sampler, q.volume, &f) : -ENOENT;
        if (r < 0)
            snprintf(err, sizeof(err),
                     r == -EAGAIN
                         ? "volume: '%.128s' has no interval features yet (two samples needed)"
                         : "volume: no volume named '%.128s' on this node",
                     q.volume);
        if (r == 0 && q.what_if) {
            struct dd_what_if w;
            r = dd_what_if_from_json(q.what_if, "what_if", &w, err, sizeof(err));
            if (r == 0)
                dd_features_what_if(&f, &w);
        }
        if (r == 0)
            dd_features_model_row(&f, row);
    }
    if (r < 0) {
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request", "%s", err);
    }
    json_decref(doc);
    r = dd_model_predict(d->model, row, &out, err, sizeof(err));
    if (r < 0)
        return dd_http_reply_error(resp, 500, "predict_failed", "%s", err);
    return dd_http_reply_json(resp, 200, out);
}

size_t dd_api_model_routes(struct dd_api_model *ctx, struct dd_http_route *out)
{
    static const struct dd_http_route templ[] = {
        {"GET", "/v1/model", h_model, NULL, false, NULL, 0},
        {"POST", "/v1/model/retrain", h_model_retrain, NULL, true, NULL, 0},
        {"GET", "/v1/model/runs/{id}", h_model_run, NULL, false, NULL, 0},
        {"POST", "/v1/predict", h_predict, NULL, false, NULL, 0},
    };
    return dd_api_fill_routes(templ, DD_ARRAY_SIZE(templ), ctx->model ? ctx : NULL, ctx->role, out);
}
