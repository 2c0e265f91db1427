/*
 * The right-sizing admission webhook's routes (api.h): POST
 * /admission/mutate (kube-apiserver's AdmissionReview v1) and POST
 * /v1/rightsize (the same decision for a Pod, answered with the rewritten
 * object and the explanation). Glue only: the review, opt-in, policy and
 * patch are placement/admission; the prediction comes from the predictor
 * the daemon sets (the right-sizing service, dedupd/rightsize.h); the
 * live state from the extender's placer.
 *
 * Live state (dd_placer_live): the placer scores the pod on at most 64
 * nodes of the cluster view (every node when there are fewer; otherwise an
 * even stride over the name-sorted view, so a request costs the same at
 * 5,000 nodes as at 64), and the best 3 by score (then
 * slowdown) give dd_rs_live: their mean predicted slowdown, CPU
 * utilisation without VDO (node reports) and free GPUs (the Kubernetes
 * cache). The best one's dedupd.io/cpu-manager=static label decides the
 * static CPU manager shape. Nothing is recorded (no ledger entry: the pod
 * is not placed yet), so a dry run records nothing either: it is only
 * counted.
 *
 * Answers (kube-apiserver's rules): the webhook never denies. HTTP 200
 * with an AdmissionReview whose response is allowed, with the patch or
 * with a warning saying why the pod is unchanged: not opted in, excluded
 * namespace, not a Pod CREATE, no model, any internal error (fail open),
 * and a malformed review whose uid could be read. A body that is not JSON,
 * or a review without a readable uid, cannot be answered as a review (the
 * API server checks the uid): 400 with a JSON error, which kube-apiserver
 * treats as a failed call, and failurePolicy: Ignore admits the pod.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/config.h"
#include "placement/admission.h"
#include "placement/cluster.h"
#include "placement/kube.h"
#include "placement/placer.h"
#include "placement/score.h"

/* The largest review or pod body (a Pod is at most ~1.5 MB in etcd). */
#define ADM_MAX_BODY (3u * 1024u * 1024u)

#define ADM_OUTCOMES(X)                                                                            \
    X(PATCHED, "patched")                                                                          \
    X(RECOMMENDED, "recommended")                                                                  \
    X(UNCHANGED, "unchanged")                                                                      \
    X(NOT_OPTED_IN, "not_opted_in")                                                                \
    X(EXCLUDED, "excluded_namespace")                                                              \
    X(NOT_POD, "not_pod_create")                                                                   \
    X(MALFORMED, "malformed")                                                                      \
    X(ERROR, "error")
#define ADM_ENUM_(id, name) O_##id,
enum outcome { ADM_OUTCOMES(ADM_ENUM_) O_COUNT };
#undef ADM_ENUM_
#define ADM_NAME_(id, name) name,
static const char *const outcome_names[O_COUNT] = {ADM_OUTCOMES(ADM_NAME_)};
#undef ADM_NAME_

enum route { R_MUTATE, R_RIGHTSIZE, R_COUNT };
static const char *const route_names[R_COUNT] = {"mutate", "rightsize"};

struct dd_admission_api {
    struct dd_placer *placer; /* borrowed (the extender's) */
    pthread_mutex_t lock;     /* opts, gpu names (SIGHUP) */
    struct dd_adm_options opts;
    char gpu[DD_KUBE_MAX_GPU_RESOURCES][DD_NAME_MAX];
    const char *gpu_ptr[DD_KUBE_MAX_GPU_RESOURCES];
    size_t n_gpu;
    dd_admission_predict_fn predict;
    void *predict_ctx;
    uint64_t count[R_COUNT][O_COUNT]; /* atomic */
    uint64_t dry_runs;                /* atomic */
};

static void options_from(struct dd_admission_api *a, const struct dd_config *c)
{
    struct dd_adm_options o;
    const char *own = getenv("POD_NAMESPACE");
    dd_adm_options_init(&o);
    if (dd_adm_mode_parse(c->rightsize_mode, &o.mode) < 0)
        o.mode = DD_ADM_ENFORCE; /* dd_config_check refused anything else */
    o.no_cpu_limits = c->rightsize_no_cpu_limits;
    o.max_step_up = c->rightsize_max_step;
    o.max_step_down = 1.0 / c->rightsize_max_step;
    o.memory_margin = c->rightsize_memory_margin;
    if (own && own[0])
        dd_adm_options_exclude(&o, own);
    if (c->lease_namespace[0])
        dd_adm_options_exclude(&o, c->lease_namespace);
    for (size_t i = 0; i < c->n_rightsize_exclude; i++)
        dd_adm_options_exclude(&o, c->rightsize_exclude[i]);
    pthread_mutex_lock(&a->lock);
    a->n_gpu = 0;
    for (size_t i = 0; i < c->n_gpu_resources && i < DD_KUBE_MAX_GPU_RESOURCES; i++) {
        snprintf(a->gpu[i], sizeof(a->gpu[i]), "%s", c->gpu_resources[i]);
        a->gpu_ptr[i] = a->gpu[i];
        a->n_gpu++;
    }
    o.gpu_resources = a->n_gpu ? a->gpu_ptr : NULL;
    o.n_gpu_resources = a->n_gpu;
    a->opts = o;
    pthread_mutex_unlock(&a->lock);
}

int dd_admission_api_new(const struct dd_config *c, struct dd_placer *placer,
                         struct dd_admission_api **ret)
{
    struct dd_admission_api *a = dd_calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    a->placer = placer;
    options_from(a, c);
    *ret = a;
    return 0;
}

struct dd_admission_api *dd_admission_api_free(struct dd_admission_api *a)
{
    if (!a)
        return NULL;
    pthread_mutex_destroy(&a->lock);
    dd_free(a);
    return NULL;
}

void dd_admission_api_reconfigure(struct dd_admission_api *a, const struct dd_config *c)
{
    options_from(a, c);
}

void dd_admission_api_set_predictor(struct dd_admission_api *a, dd_admission_predict_fn fn,
                                    void *ctx)
{
    a->predict_ctx = ctx;
    a->predict = fn;
}

static void count(struct dd_admission_api *a, enum route r, enum outcome o)
{
    __atomic_add_fetch(&a->count[r][o], 1, __ATOMIC_RELAXED);
}

/* ---- live state ---- */

struct live {
    struct dd_placer_live p;
    bool static_nodes;
};

static int kube_free_gpus(void *ctx, const char *node, double *free_gpus)
{
    double alloc, req;
    int e = dd_kube_node_gpus(ctx, node, &alloc, &req);
    if (e == 0)
        *free_gpus = DD_MAX(alloc - req, 0.0);
    return e;
}

static void live_state(struct dd_admission_api *a, const json_t *pod, struct live *out)
{
    struct dd_placement q;
    struct dd_kube *kube;
    char err[256], label[32];

    memset(out, 0, sizeof(*out));
    out->p.rs = (struct dd_rs_live){(double)NAN, (double)NAN, (double)NAN, 0};
    if (!a->placer || dd_placer_begin(a->placer, pod, NULL, dd_wall_ms(), &q, err, sizeof(err)) < 0)
        return;
    kube = dd_placer_kube(a->placer);
    (void)dd_placer_live(&q, kube ? kube_free_gpus : NULL, kube, &out->p, err, sizeof(err));
    dd_placer_end(&q);
    if (out->p.n_top && kube &&
        dd_kube_node_label(kube, out->p.top[0], DD_ADM_NODE_CPU_MANAGER, label, sizeof(label)) ==
            0 &&
        strcmp(label, "static") == 0)
        out->static_nodes = true;
}

/* ---- the decision ---- */

struct decision {
    enum dd_adm_optin optin;
    struct live live;
    struct dd_adm_result res;
    bool have_res;
    enum dd_adm_mode mode;
    char warning[512]; /* "" when none */
    int http;          /* /v1/rightsize: 400 or 503 on failure, else 200 */
};

/* The pod as the cache resolves it: a controller's pod has no name yet,
 * and the object may lack the namespace the request names. NULL: pod
 * itself will do (no copy). */
static json_t *resolvable(const json_t *pod, const char *ns)
{
    const json_t *md = json_object_get(pod, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *pns = json_string_value(json_object_get(md, "namespace"));
    if (name && name[0] && pns && pns[0])
        return NULL;
    json_t *copy = json_deep_copy(pod);
    json_t *cmd = json_object_get(copy, "metadata");
    if (!json_is_object(cmd))
        return copy;
    if (!name || !name[0]) {
        const char *gen = json_string_value(json_object_get(md, "generateName"));
        char buf[DD_NAME_MAX];
        snprintf(buf, sizeof(buf), "%.200s%s", gen && gen[0] && !strchr(gen, '/') ? gen : "pod-",
                 "admission");
        json_object_set_new(cmd, "name", json_string(buf));
    }
    if (!pns || !pns[0])
        json_object_set_new(cmd, "namespace", json_string(ns));
    return copy;
}

/*
 * Decides for pod in namespace ns. force: decide whatever the opt-in
 * (/v1/rightsize shows what would be done). Fills d; d->have_res when a
 * rewrite was made.
 */
static void decide(struct dd_admission_api *a, const char *ns, const json_t *pod, bool force,
                   struct decision *d)
{
    struct dd_adm_options o;
    struct dd_rs_prediction pred;
    char label[64] = "", err[512] = "";
    const char *lab = NULL;
    struct dd_kube *kube = a->placer ? dd_placer_kube(a->placer) : NULL;
    int r;

    memset(d, 0, sizeof(*d));
    d->http = 200;
    pthread_mutex_lock(&a->lock);
    o = a->opts;
    pthread_mutex_unlock(&a->lock);
    d->mode = o.mode;
    if (kube && dd_kube_namespace_label(kube, ns, DD_ADM_NS_LABEL, label, sizeof(label)) == 0)
        lab = label;
    d->optin = dd_adm_opted_in(&o, ns, pod, lab);
    if (!force && d->optin != DD_ADM_OPT_POD && d->optin != DD_ADM_OPT_NAMESPACE) {
        snprintf(d->warning, sizeof(d->warning), "dedupd: pod not right-sized (%s%s)",
                 dd_adm_optin_name(d->optin),
                 d->optin == DD_ADM_OPT_NONE ? ": no pod annotation dedupd.io/rightsize=\"true\" "
                                               "and no namespace label dedupd.io/rightsize=enabled"
                                             : "");
        return;
    }
    json_t *copy = resolvable(pod, ns);
    live_state(a, copy ? copy : pod, &d->live);
    json_decref(copy);
    if (!a->predict) {
        snprintf(d->warning, sizeof(d->warning),
                 "dedupd: pod not right-sized: no right-sizing model in this process");
        d->http = 503;
        return;
    }
    if ((r = a->predict(a->predict_ctx, pod, &d->live.p.rs, &pred, err, sizeof(err))) < 0) {
        snprintf(d->warning, sizeof(d->warning), "dedupd: pod not right-sized: prediction: %.400s",
                 err[0] ? err : dd_strerror(r));
        d->http = r == -EINVAL ? 400 : 503;
        return;
    }
    if ((r = dd_adm_rewrite(&o, pod, &pred, &d->live.p.rs, d->live.static_nodes, &d->res, err,
                            sizeof(err))) < 0) {
        snprintf(d->warning, sizeof(d->warning), "dedupd: pod not right-sized: %.400s", err);
        d->http = r == -EINVAL ? 400 : 503;
        return;
    }
    d->have_res = true;
}

static json_t *live_json(const struct live *l)
{
    json_t *top = json_array();
    for (size_t i = 0; i < l->p.n_top; i++)
        json_array_append_new(top, json_string(l->p.top[i]));
    json_t *o = dd_adm_prediction_json(&(struct dd_rs_prediction){.model_version = 0}, &l->p.rs);
    json_t *live = json_incref(json_object_get(o, "live"));
    json_decref(o);
    json_object_set_new(live, "top_nodes", top);
    json_object_set_new(live, "static_cpu_manager", json_boolean(l->static_nodes));
    return live;
}

/* ---- POST /admission/mutate ---- */

static int review_reply(struct dd_http_response *resp, const char *uid, const json_t *patch,
                        const char *warning)
{
    const char *w[1] = {warning && warning[0] ? warning : NULL};
    json_t *out = dd_adm_response(uid, patch, w, 1);
    if (!out)
        return -ENOMEM;
    return dd_http_reply_json(resp, 200, out);
}

static int h_mutate(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_admission_api *a = ctx;
    struct dd_adm_review rv;
    struct decision d;
    json_error_t je;
    char err[512] = "", warn[640];
    json_t *doc = json_loadb(req->body, req->body_len, 0, &je);
    int r;

    if (!doc) {
        count(a, R_MUTATE, O_MALFORMED);
        return dd_http_reply_error(resp, 400, "bad_request",
                                   "malformed JSON at line %d column %d: %s", je.line, je.column,
                                   je.text);
    }
    if (dd_adm_review_decode(doc, &rv, err, sizeof(err)) < 0) {
        count(a, R_MUTATE, O_MALFORMED);
        if (!rv.uid[0]) {
            json_decref(doc);
            return dd_http_reply_error(resp, 400, "bad_request", "AdmissionReview: %s", err);
        }
        snprintf(warn, sizeof(warn), "dedupd: malformed AdmissionReview (%s): admitted unchanged",
                 err);
        json_decref(doc);
        return review_reply(resp, rv.uid, NULL, warn);
    }
    if (rv.dry_run)
        __atomic_add_fetch(&a->dry_runs, 1, __ATOMIC_RELAXED);
    if (strcmp(rv.kind, "Pod") != 0 || strcmp(rv.operation, "CREATE") != 0 || !rv.object) {
        count(a, R_MUTATE, O_NOT_POD);
        snprintf(warn, sizeof(warn), "dedupd: only Pod CREATE is right-sized (got %.64s %.16s)",
                 rv.kind, rv.operation);
        r = review_reply(resp, rv.uid, NULL, warn);
        json_decref(doc);
        return r;
    }
    const char *ns = rv.ns[0] ? rv.ns
                     : json_string_value(json_object_get(json_object_get(rv.object, "metadata"),
                                                         "namespace"))
                         ?: "default";
    decide(a, ns, rv.object, false, &d);
    if (!d.have_res) {
        count(a, R_MUTATE,
              d.optin == DD_ADM_OPT_EXCLUDED                            ? O_EXCLUDED
              : d.optin == DD_ADM_OPT_NONE || d.optin == DD_ADM_OPT_OUT ? O_NOT_OPTED_IN
                                                                        : O_ERROR);
        if (d.optin == DD_ADM_OPT_POD || d.optin == DD_ADM_OPT_NAMESPACE)
            dd_log_warning("admission %s/%s: %s (admitted unchanged)", ns, rv.uid, d.warning);
        r = review_reply(resp, rv.uid, NULL, d.warning);
        json_decref(doc);
        return r;
    }
    count(a, R_MUTATE,
          !d.res.changed               ? O_UNCHANGED
          : d.mode == DD_ADM_RECOMMEND ? O_RECOMMENDED
                                       : O_PATCHED);
    dd_log_debug("admission %s/%s: %zu patch ops%s", ns, rv.uid, json_array_size(d.res.patch),
                 rv.dry_run ? " (dry run)" : "");
    r = review_reply(resp, rv.uid, d.res.patch, NULL);
    dd_adm_result_release(&d.res);
    json_decref(doc);
    return r;
}

/* ---- POST /v1/rightsize ---- */

static int h_rightsize(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_admission_api *a = ctx;
    json_t *doc = dd_http_body_json(req, resp), *out, *obj;
    const json_t *pod;
    struct decision d;
    const char *ns = NULL;
    char err[512];
    int r;

    if (!doc)
        return 0;
    pod = doc;
    if (json_is_object(json_object_get(doc, "request"))) { /* an AdmissionReview */
        struct dd_adm_review rv;
        if (dd_adm_review_decode(doc, &rv, err, sizeof(err)) < 0 || !rv.object) {
            count(a, R_RIGHTSIZE, O_MALFORMED);
            r = dd_http_reply_error(resp, 400, "bad_request", "AdmissionReview: %s",
                                    rv.object ? err : "request.object: missing");
            json_decref(doc);
            return r;
        }
        pod = rv.object;
        ns = json_string_value(json_object_get(json_object_get(doc, "request"), "namespace"));
    }
    if (!json_is_object(json_object_get(pod, "metadata")) ||
        !json_is_object(json_object_get(pod, "spec"))) {
        count(a, R_RIGHTSIZE, O_MALFORMED);
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request",
                                   "expected a Pod object (metadata, spec) or an AdmissionReview");
    }
    if (!ns || !ns[0])
        ns = json_string_value(json_object_get(json_object_get(pod, "metadata"), "namespace"));
    if (!ns || !ns[0])
        ns = "default";
    decide(a, ns, pod, true, &d);
    if (!d.have_res) {
        count(a, R_RIGHTSIZE, d.http == 400 ? O_MALFORMED : O_ERROR);
        r = dd_http_reply_error(resp, d.http == 200 ? 503 : d.http,
                                d.http == 400 ? "bad_request" : "model_unavailable", "%s",
                                d.warning);
        json_decref(doc);
        return r;
    }
    obj = json_deep_copy(pod);
    if (!obj || dd_adm_patch_apply(obj, d.res.patch, err, sizeof(err)) < 0) {
        /* our own patch on the pod it was made for: a bug if it happens */
        dd_log_warning("/v1/rightsize: the patch does not apply: %s", err);
        json_decref(obj);
        obj = json_null();
    }
    count(a, R_RIGHTSIZE,
          !d.res.changed               ? O_UNCHANGED
          : d.mode == DD_ADM_RECOMMEND ? O_RECOMMENDED
                                       : O_PATCHED);
    out = json_pack("{s:o, s:O, s:O, s:s, s:s, s:o}", "object", obj, "patch", d.res.patch,
                    "explanation", d.res.explanation, "namespace", ns, "opt_in",
                    dd_adm_optin_name(d.optin), "live", live_json(&d.live));
    dd_adm_result_release(&d.res);
    json_decref(doc);
    return out ? dd_http_reply_json(resp, 200, out) : -ENOMEM;
}

size_t dd_api_admission_routes(struct dd_admission_api *a, const char *role,
                               struct dd_http_route *out)
{
    const struct dd_http_route templ[] = {
        {"POST", "/admission/mutate", h_mutate, NULL, false, NULL, ADM_MAX_BODY},
        {"POST", "/v1/rightsize", h_rightsize, NULL, false, NULL, ADM_MAX_BODY},
    };
    return dd_api_fill_routes(templ, DD_ARRAY_SIZE(templ), a, role, out);
}

void dd_admission_api_metrics(struct dd_admission_api *a, FILE *m)
{
    fputs("# HELP dedupd_admission_requests_total Right-sizing requests by route and outcome "
          "(every outcome but patched and recommended admits the pod unchanged).\n"
          "# TYPE dedupd_admission_requests_total counter\n",
          m);
    for (int r = 0; r < R_COUNT; r++)
        for (int o = 0; o < O_COUNT; o++)
            fprintf(m, "dedupd_admission_requests_total{route=\"%s\",outcome=\"%s\"} %llu\n",
                    route_names[r], outcome_names[o],
                    (unsigned long long)__atomic_load_n(&a->count[r][o], __ATOMIC_RELAXED));
    fprintf(m,
            "# HELP dedupd_admission_dry_run_total Dry-run reviews (answered, nothing "
            "recorded).\n# TYPE dedupd_admission_dry_run_total counter\n"
            "dedupd_admission_dry_run_total %llu\n",
            (unsigned long long)__atomic_load_n(&a->dry_runs, __ATOMIC_RELAXED));
}
