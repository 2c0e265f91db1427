/*
 * The right-sizing webhook's pure part (admission.h): the AdmissionReview
 * decoder, the opt-in rule, the rewrite policy, the JSON Patch (and a
 * small applier for the same ops, so /v1/rightsize can show the rewritten
 * object and tests can check a patch by applying it), base64 and the
 * response. Nothing here asks the model or the cluster: the prediction and
 * the live state come in as values.
 *
 * Invariants of a rewrite: GPU resources and init containers are never in
 * the patch; a request never exceeds its limit; the memory limit is never
 * below the floors (observed peak plus margin, OOM raise), whatever the
 * step; every "add" path's parent exists in the pod or is added by an
 * earlier op of the same patch.
 */
#define _GNU_SOURCE
#include "placement/admission.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "placement/kube.h"

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)

#define KEY_(id, key, unit) key,
static const char *const target_keys[DD_RS_NTARGETS] = {DD_RS_TARGETS(KEY_)};
#undef KEY_

/* ---- options ---- */

void dd_adm_options_init(struct dd_adm_options *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = DD_ADM_ENFORCE;
    o->max_step_up = 2.0;
    o->max_step_down = 0.5;
    o->memory_margin = 0.20;
    o->cpu_limit_headroom = 0.25;
    dd_adm_options_exclude(o, "kube-system");
}

int dd_adm_options_exclude(struct dd_adm_options *o, const char *ns)
{
    if (!ns || !ns[0] || strlen(ns) >= DD_NAME_MAX)
        return -EINVAL;
    for (size_t i = 0; i < o->n_exclude; i++)
        if (strcmp(o->exclude[i], ns) == 0)
            return 0;
    if (o->n_exclude == DD_ADM_MAX_EXCLUDE)
        return -ENOSPC;
    snprintf(o->exclude[o->n_exclude++], DD_NAME_MAX, "%s", ns);
    return 0;
}

int dd_adm_mode_parse(const char *s, enum dd_adm_mode *ret)
{
    if (s && strcmp(s, "enforce") == 0)
        *ret = DD_ADM_ENFORCE;
    else if (s && strcmp(s, "recommend") == 0)
        *ret = DD_ADM_RECOMMEND;
    else
        return -EINVAL;
    return 0;
}

const char *dd_adm_mode_name(enum dd_adm_mode m)
{
    return m == DD_ADM_RECOMMEND ? "recommend" : "enforce";
}

/* ---- the review ---- */

static int copy_str(const json_t *v, const char *what, char *out, size_t outlen, bool required,
                    char *err, size_t errlen)
{
    if (!v || json_is_null(v)) {
        if (required)
            return dd_fail(err, errlen, -EINVAL, "%s: missing", what);
        out[0] = '\0';
        return 0;
    }
    if (!json_is_string(v))
        return dd_fail(err, errlen, -EINVAL, "%s: expected a string", what);
    if (json_string_length(v) >= outlen)
        return dd_fail(err, errlen, -EINVAL, "%s: longer than %zu bytes", what, outlen - 1);
    if (required && json_string_length(v) == 0)
        return dd_fail(err, errlen, -EINVAL, "%s: expected a non-empty string", what);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    if (strlen(out) != json_string_length(v))
        return dd_fail(err, errlen, -EINVAL, "%s: contains a NUL byte", what);
    return 0;
}

int dd_adm_review_decode(const json_t *doc, struct dd_adm_review *ret, char *err, size_t errlen)
{
    const json_t *req, *v, *kind;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(doc))
        return dd_fail(err, errlen, -EINVAL, "expected an AdmissionReview object");
    req = json_object_get(doc, "request");
    if (!json_is_object(req))
        return dd_fail(err, errlen, -EINVAL, "request: expected an object");
    if ((r = copy_str(json_object_get(req, "uid"), "request.uid", ret->uid, sizeof(ret->uid), true,
                      err, errlen)) < 0) {
        ret->uid[0] = '\0';
        return r;
    }
    /* from here on the uid is known: the caller can answer */
    v = json_object_get(doc, "apiVersion");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), DD_ADM_API_VERSION) != 0))
        return dd_fail(err, errlen, -EINVAL, "apiVersion: expected \"%s\"", DD_ADM_API_VERSION);
    v = json_object_get(doc, "kind");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), "AdmissionReview") != 0))
        return dd_fail(err, errlen, -EINVAL, "kind: expected \"AdmissionReview\"");
    kind = json_object_get(req, "kind");
    if (!json_is_object(kind))
        return dd_fail(err, errlen, -EINVAL, "request.kind: expected an object");
    if ((r = copy_str(json_object_get(kind, "kind"), "request.kind.kind", ret->kind,
                      sizeof(ret->kind), true, err, errlen)) < 0 ||
        (r = copy_str(json_object_get(req, "namespace"), "request.namespace", ret->ns,
                      sizeof(ret->ns), false, err, errlen)) < 0 ||
        (r = copy_str(json_object_get(req, "operation"), "request.operation", ret->operation,
                      sizeof(ret->operation), true, err, errlen)) < 0)
        return r;
    v = json_object_get(req, "dryRun");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return dd_fail(err, errlen, -EINVAL, "request.dryRun: expected a boolean");
    ret->dry_run = json_is_true(v);
    v = json_object_get(req, "object");
    if (v && !json_is_null(v) && !json_is_object(v))
        return dd_fail(err, errlen, -EINVAL, "request.object: expected an object");
    ret->object = json_is_object(v) ? v : NULL;
    return 0;
}

/* ---- opt-in ---- */

const char *dd_adm_optin_name(enum dd_adm_optin o)
{
    static const char *const names[] = {"pod_annotation", "namespace_label", "not_opted_in",
                                        "opted_out", "excluded_namespace"};
    return (unsigned)o < DD_ARRAY_SIZE(names) ? names[o] : "?";
}

static const char *annotation(const json_t *pod, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), key));
}

enum dd_adm_optin dd_adm_opted_in(const struct dd_adm_options *o, const char *ns, const json_t *pod,
                                  const char *ns_label)
{
    const char *a = annotation(pod, DD_ADM_ANN_RIGHTSIZE);
    for (size_t i = 0; i < o->n_exclude; i++)
        if (ns && strcmp(ns, o->exclude[i]) == 0)
            return DD_ADM_OPT_EXCLUDED;
    if (a && strcmp(a, "true") == 0)
        return DD_ADM_OPT_POD;
    if (a && strcmp(a, "false") == 0)
        return DD_ADM_OPT_OUT;
    if (ns_label && strcmp(ns_label, "enabled") == 0)
        return DD_ADM_OPT_NAMESPACE;
    return DD_ADM_OPT_NONE;
}

/* ---- quantities ---- */

/* A quantity (string, or a JSON number as Go also accepts) in cores or
 * bytes; NaN when v is absent. */
static int quantity(const json_t *v, bool milli, const char *where, size_t idx, const char *which,
                    const char *res, double *ret, char *err, size_t errlen)
{
    uint64_t x;
    char buf[64];
    const char *s = buf;
    int r;

    *ret = (double)NAN;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) < 1e18) {
        snprintf(buf, sizeof(buf), "%.9g", json_number_value(v));
    } else {
        return dd_fail(err, errlen, -EINVAL, "spec.%s[%zu].resources.%s[%s]: expected a quantity",
                       where, idx, which, res);
    }
    r = milli ? dd_kube_quantity_milli(s, &x) : dd_kube_quantity(s, &x);
    if (r < 0)
        return dd_fail(err, errlen, -EINVAL, "spec.%s[%zu].resources.%s[%s]: bad quantity '%.40s'",
                       where, idx, which, res, s);
    *ret = milli ? (double)x / 1000.0 : (double)x;
    return 0;
}

static double cores_round(double c)
{
    return ceil(c * 1000.0 - 1e-6) / 1000.0;
}

static double mib_round(double b)
{
    return ceil(b / MIB - 1e-9) * MIB;
}

static void fmt_cpu(double c, char *buf, size_t len)
{
    unsigned long long m = (unsigned long long)llround(c * 1000.0);
    if (m % 1000 == 0)
        snprintf(buf, len, "%llu", m / 1000);
    else
        snprintf(buf, len, "%llum", m);
}

static void fmt_mem(double b, char *buf, size_t len)
{
    unsigned long long x = (unsigned long long)llround(b);
    if (x && x % (1ull << 30) == 0)
        snprintf(buf, len, "%lluGi", x >> 30);
    else if (x && x % (1ull << 20) == 0)
        snprintf(buf, len, "%lluMi", x >> 20);
    else
        snprintf(buf, len, "%llu", x);
}

static bool same(double a, double b, bool cpu)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return cpu ? llround(a * 1000.0) == llround(b * 1000.0) : llround(a) == llround(b);
}

/* ---- the pod's containers ---- */

struct ctr {
    const json_t *obj;
    bool has_resources, has_requests, has_limits;
    bool sidecar;
    double cpu_req, cpu_lim, mem_req, mem_lim, gpus;
};

struct podres {
    size_t n, n_init;
    struct ctr c[DD_RS_MAX_CONTAINERS], init[DD_RS_MAX_CONTAINERS];
};

static int ctr_decode(const struct dd_adm_options *o, const json_t *c, const char *where,
                      size_t idx, struct ctr *out, char *err, size_t errlen)
{
    static const char *const gpu_default[] = {DD_KUBE_GPU_DEFAULT};
    const char *const *gpu = o->gpu_resources ? o->gpu_resources : gpu_default;
    size_t n_gpu = o->gpu_resources ? o->n_gpu_resources : 1;
    const json_t *res, *req, *lim, *rp;
    int r;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(c))
        return dd_fail(err, errlen, -EINVAL, "spec.%s[%zu]: expected an object", where, idx);
    out->obj = c;
    res = json_object_get(c, "resources");
    if (res && !json_is_null(res) && !json_is_object(res))
        return dd_fail(err, errlen, -EINVAL, "spec.%s[%zu].resources: expected an object", where,
                       idx);
    req = json_object_get(res, "requests");
    lim = json_object_get(res, "limits");
    if ((req && !json_is_null(req) && !json_is_object(req)) ||
        (lim && !json_is_null(lim) && !json_is_object(lim)))
        return dd_fail(err, errlen, -EINVAL, "spec.%s[%zu].resources.%s: expected an object", where,
                       idx,
                       req && !json_is_object(req) && !json_is_null(req) ? "requests" : "limits");
    out->has_resources = json_is_object(res);
    out->has_requests = json_is_object(req);
    out->has_limits = json_is_object(lim);
    rp = json_object_get(c, "restartPolicy");
    out->sidecar = json_is_string(rp) && strcmp(json_string_value(rp), "Always") == 0;
    if ((r = quantity(json_object_get(req, "cpu"), true, where, idx, "requests", "cpu",
                      &out->cpu_req, err, errlen)) < 0 ||
        (r = quantity(json_object_get(lim, "cpu"), true, where, idx, "limits", "cpu", &out->cpu_lim,
                      err, errlen)) < 0 ||
        (r = quantity(json_object_get(req, "memory"), false, where, idx, "requests", "memory",
                      &out->mem_req, err, errlen)) < 0 ||
        (r = quantity(json_object_get(lim, "memory"), false, where, idx, "limits", "memory",
                      &out->mem_lim, err, errlen)) < 0)
        return r;
    /* Kubernetes defaults a missing request to the limit */
    if (isnan(out->cpu_req))
        out->cpu_req = out->cpu_lim;
    if (isnan(out->mem_req))
        out->mem_req = out->mem_lim;
    for (size_t g = 0; g < n_gpu; g++) {
        double q, l;
        if ((r = quantity(json_object_get(req, gpu[g]), false, where, idx, "requests", gpu[g], &q,
                          err, errlen)) < 0 ||
            (r = quantity(json_object_get(lim, gpu[g]), false, where, idx, "limits", gpu[g], &l,
                          err, errlen)) < 0)
            return r;
        out->gpus += isnan(q) ? (isnan(l) ? 0 : l) : q;
    }
    return 0;
}

static int podres_decode(const struct dd_adm_options *o, const json_t *pod, struct podres *p,
                         char *err, size_t errlen)
{
    const json_t *spec = json_object_get(pod, "spec"), *cs, *ics;
    int r;

    memset(p, 0, sizeof(*p));
    if (!json_is_object(pod))
        return dd_fail(err, errlen, -EINVAL, "object: expected a Pod object");
    if (!json_is_object(json_object_get(pod, "metadata")))
        return dd_fail(err, errlen, -EINVAL, "metadata: expected an object");
    if (!json_is_object(spec))
        return dd_fail(err, errlen, -EINVAL, "spec: expected an object");
    cs = json_object_get(spec, "containers");
    ics = json_object_get(spec, "initContainers");
    if (!json_is_array(cs) || json_array_size(cs) == 0)
        return dd_fail(err, errlen, -EINVAL, "spec.containers: expected a non-empty array");
    if (json_array_size(cs) > DD_RS_MAX_CONTAINERS)
        return dd_fail(err, errlen, -EINVAL, "spec.containers: more than %d containers",
                       DD_RS_MAX_CONTAINERS);
    if (ics && !json_is_null(ics) && !json_is_array(ics))
        return dd_fail(err, errlen, -EINVAL, "spec.initContainers: expected an array");
    if (json_array_size(ics) > DD_RS_MAX_CONTAINERS)
        return dd_fail(err, errlen, -EINVAL, "spec.initContainers: more than %d containers",
                       DD_RS_MAX_CONTAINERS);
    for (size_t i = 0; i < json_array_size(cs); i++)
        if ((r = ctr_decode(o, json_array_get(cs, i), "containers", i, &p->c[p->n++], err,
                            errlen)) < 0)
            return r;
    for (size_t i = 0; i < json_array_size(ics); i++)
        if ((r = ctr_decode(o, json_array_get(ics, i), "initContainers", i, &p->init[p->n_init++],
                            err, errlen)) < 0)
            return r;
    return 0;
}

/* ---- the policy ---- */

struct plan {
    double req, lim; /* pod level, regular containers; NaN: leave alone */
};

static void reason(json_t *reasons, const char *fmt, ...) _dd_printf_(2, 3);
static void reason(json_t *reasons, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(buf));
}

/* Sum of a field over the regular containers; NaN when one lacks it. */
static double sum_regular(const struct podres *p, size_t off)
{
    double s = 0;
    for (size_t i = 0; i < p->n; i++) {
        double v = *(const double *)((const char *)&p->c[i] + off);
        if (isnan(v))
            return (double)NAN;
        s += v;
    }
    return s;
}

static double sum_sidecars(const struct podres *p, size_t off)
{
    double s = 0;
    for (size_t i = 0; i < p->n_init; i++) {
        double v = *(const double *)((const char *)&p->init[i] + off);
        if (p->init[i].sidecar && !isnan(v))
            s += v;
    }
    return s;
}

static double step(const struct dd_adm_options *o, double old, double x, const char *what,
                   json_t *reasons)
{
    if (isnan(old) || old <= 0 || isnan(x))
        return x;
    if (x > old * o->max_step_up) {
        reason(reasons, "%s: capped at %g x the current value (max step up)", what, o->max_step_up);
        return old * o->max_step_up;
    }
    if (x < old * o->max_step_down) {
        reason(reasons, "%s: capped at %g x the current value (max step down)", what,
               o->max_step_down);
        return old * o->max_step_down;
    }
    return x;
}

static void plan_cpu(const struct dd_adm_options *o, const struct podres *p,
                     const struct dd_rs_prediction *pred, struct plan *pl, json_t *reasons)
{
    double P = pred->value[DD_RS_CPU];
    pl->req = pl->lim = (double)NAN;
    if (!isfinite(P) || P <= 0) {
        reason(reasons, "cpu: no prediction (source %s): left as it is",
               pred->source[DD_RS_CPU] ? pred->source[DD_RS_CPU] : "none");
        return;
    }
    double side = sum_sidecars(p, offsetof(struct ctr, cpu_req));
    double reg = DD_MAX(P - side, 0.1 * P);
    pl->req = step(o, sum_regular(p, offsetof(struct ctr, cpu_req)), reg, "cpu request", reasons);
    pl->req = DD_MAX(pl->req, DD_ADM_MIN_CPU_CORES);
    if (o->no_cpu_limits) {
        reason(reasons, "cpu: no limit (no_cpu_limits: CFS throttling hurts data loaders)");
        return;
    }
    pl->lim = step(o, sum_regular(p, offsetof(struct ctr, cpu_lim)),
                   pl->req * (1 + o->cpu_limit_headroom), "cpu limit", reasons);
    if (pl->lim < pl->req)
        pl->lim = pl->req;
}

static void plan_memory(const struct dd_adm_options *o, const struct podres *p,
                        const struct dd_rs_prediction *pred, struct plan *pl, json_t *reasons)
{
    const struct dd_rs_history *h = &pred->history;
    double P = pred->value[DD_RS_MEMORY];
    pl->req = pl->lim = (double)NAN;
    if (!isfinite(P) || P <= 0) {
        reason(reasons, "memory: no prediction (source %s): left as it is",
               pred->source[DD_RS_MEMORY] ? pred->source[DD_RS_MEMORY] : "none");
        return;
    }
    double side_req = sum_sidecars(p, offsetof(struct ctr, mem_req));
    double side_lim = sum_sidecars(p, offsetof(struct ctr, mem_lim));
    double reg = DD_MAX(P - side_req, 0.1 * P);
    pl->req =
        step(o, sum_regular(p, offsetof(struct ctr, mem_req)), reg, "memory request", reasons);
    pl->req = DD_MAX(pl->req, DD_ADM_MIN_MEMORY_BYTES);
    pl->lim = step(o, sum_regular(p, offsetof(struct ctr, mem_lim)),
                   pl->req * (1 + o->memory_margin), "memory limit", reasons);
    /* the floors win over the step */
    if (isfinite(h->max_memory_bytes) && h->max_memory_bytes > 0) {
        double floor = h->max_memory_bytes * (1 + o->memory_margin) - side_lim;
        if (pl->lim < floor) {
            pl->lim = floor;
            reason(reasons,
                   "memory limit: raised to the observed peak (%.0f bytes over %zu runs) plus "
                   "%g %%",
                   h->max_memory_bytes, h->n, o->memory_margin * 100);
        }
    }
    if (h->oom_killed > 0 && isfinite(h->last_oom_memory_limit) && h->last_oom_memory_limit > 0) {
        double floor = h->last_oom_memory_limit * DD_ADM_OOM_RAISE - side_lim;
        if (pl->lim < floor) {
            pl->lim = floor;
            reason(reasons,
                   "memory limit: raised to %g x the limit of the last OOMKilled run (%.0f bytes)",
                   DD_ADM_OOM_RAISE, h->last_oom_memory_limit);
        }
    }
    if (pl->req > pl->lim)
        pl->req = pl->lim;
}

/* Container i's share of a pod-level value: by current requests, else
 * limits, else equal. */
static void shares(const struct podres *p, bool cpu, double *w)
{
    bool all = true;
    double total = 0;
    for (size_t i = 0; i < p->n; i++) {
        double v = cpu ? p->c[i].cpu_req : p->c[i].mem_req;
        if (isnan(v) || v <= 0)
            all = false;
        w[i] = v;
        total += all ? v : 0;
    }
    for (size_t i = 0; i < p->n; i++)
        w[i] = all && total > 0 ? w[i] / total : 1.0 / (double)p->n;
}

static bool init_guaranteed(const struct podres *p)
{
    for (size_t i = 0; i < p->n_init; i++) {
        const struct ctr *c = &p->init[i];
        if (isnan(c->cpu_lim) || isnan(c->mem_lim) || !same(c->cpu_req, c->cpu_lim, true) ||
            !same(c->mem_req, c->mem_lim, false))
            return false;
    }
    return true;
}

/* ---- JSON ---- */

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *dd_adm_prediction_json(const struct dd_rs_prediction *pred, const struct dd_rs_live *live)
{
    json_t *p = json_object(), *s = json_object(), *l;
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        json_object_set_new(p, target_keys[t], num_or_null(pred->value[t]));
        json_object_set_new(s, target_keys[t],
                            json_string(pred->source[t] ? pred->source[t] : "none"));
    }
    l = json_pack("{s:o, s:o, s:o, s:I}", "top_slowdown_pct",
                  num_or_null(live ? live->top_slowdown_pct : (double)NAN), "top_cpu_util",
                  num_or_null(live ? live->top_cpu_util : (double)NAN), "top_free_gpus",
                  num_or_null(live ? live->top_free_gpus : (double)NAN), "n_nodes",
                  (json_int_t)(live ? live->n_nodes : 0));
    return json_pack("{s:I, s:o, s:o, s:o}", "model_version", (json_int_t)pred->model_version,
                     "predicted", p, "source", s, "live", l);
}

static void escape_key(const char *k, char *out, size_t len)
{
    size_t j = 0;
    for (; *k && j + 3 < len; k++) {
        if (*k == '~' || *k == '/') {
            out[j++] = '~';
            out[j++] = *k == '~' ? '0' : '1';
        } else {
            out[j++] = *k;
        }
    }
    out[j] = '\0';
}

static void op_add(json_t *patch, const char *path, json_t *value)
{
    json_array_append_new(patch,
                          json_pack("{s:s, s:s, s:o}", "op", "add", "path", path, "value", value));
}

static json_t *resources_json(double cpu, double mem)
{
    json_t *o = json_object();
    char b[64];
    if (!isnan(cpu)) {
        fmt_cpu(cpu, b, sizeof(b));
        json_object_set_new(o, "cpu", json_string(b));
    }
    if (!isnan(mem)) {
        fmt_mem(mem, b, sizeof(b));
        json_object_set_new(o, "memory", json_string(b));
    }
    return o;
}

/* The ops that take container c from old to new values. */
static void container_ops(json_t *patch, const struct ctr *c, size_t idx,
                          const struct dd_adm_container *d, bool remove_cpu_limit)
{
    double nreq_cpu =
        same(d->cpu_request[0], d->cpu_request[1], true) ? (double)NAN : d->cpu_request[1];
    double nlim_cpu = same(d->cpu_limit[0], d->cpu_limit[1], true) ? (double)NAN : d->cpu_limit[1];
    double nreq_mem = same(d->memory_request[0], d->memory_request[1], false)
                          ? (double)NAN
                          : d->memory_request[1];
    double nlim_mem =
        same(d->memory_limit[0], d->memory_limit[1], false) ? (double)NAN : d->memory_limit[1];
    bool want_req = !isnan(nreq_cpu) || !isnan(nreq_mem);
    bool want_lim = !isnan(nlim_cpu) || !isnan(nlim_mem);
    bool rm =
        remove_cpu_limit &&
        json_object_get(json_object_get(json_object_get(c->obj, "resources"), "limits"), "cpu");
    char base[96], path[160];

    snprintf(base, sizeof(base), "/spec/containers/%zu/resources", idx);
    if (!c->has_resources) {
        if (!want_req && !want_lim)
            return;
        json_t *r = json_object();
        if (want_req)
            json_object_set_new(r, "requests", resources_json(nreq_cpu, nreq_mem));
        if (want_lim)
            json_object_set_new(r, "limits", resources_json(nlim_cpu, nlim_mem));
        op_add(patch, base, r);
        return;
    }
    for (int w = 0; w < 2; w++) {
        bool has = w == 0 ? c->has_requests : c->has_limits;
        double cpu = w == 0 ? nreq_cpu : nlim_cpu, mem = w == 0 ? nreq_mem : nlim_mem;
        const char *which = w == 0 ? "requests" : "limits";
        char b[64];
        if (isnan(cpu) && isnan(mem))
            continue;
        if (!has) {
            snprintf(path, sizeof(path), "%s/%s", base, which);
            op_add(patch, path, resources_json(cpu, mem));
            continue;
        }
        if (!isnan(cpu)) {
            fmt_cpu(cpu, b, sizeof(b));
            snprintf(path, sizeof(path), "%s/%s/cpu", base, which);
            op_add(patch, path, json_string(b));
        }
        if (!isnan(mem)) {
            fmt_mem(mem, b, sizeof(b));
            snprintf(path, sizeof(path), "%s/%s/memory", base, which);
            op_add(patch, path, json_string(b));
        }
    }
    if (rm) {
        snprintf(path, sizeof(path), "%s/limits/cpu", base);
        json_array_append_new(patch, json_pack("{s:s, s:s}", "op", "remove", "path", path));
    }
}

static json_t *side_json(double cpu_req, double cpu_lim, double mem_req, double mem_lim)
{
    return json_pack("{s:o, s:o}", "requests", resources_json(cpu_req, mem_req), "limits",
                     resources_json(cpu_lim, mem_lim));
}

static json_t *container_json(const struct dd_adm_container *d)
{
    return json_pack(
        "{s:s, s:I, s:o, s:o, s:f}", "name", d->name, "index", (json_int_t)d->index, "before",
        side_json(d->cpu_request[0], d->cpu_limit[0], d->memory_request[0], d->memory_limit[0]),
        "after",
        side_json(d->cpu_request[1], d->cpu_limit[1], d->memory_request[1], d->memory_limit[1]),
        "gpus", d->gpus);
}

void dd_adm_result_release(struct dd_adm_result *r)
{
    if (!r)
        return;
    json_decref(r->patch);
    json_decref(r->explanation);
    r->patch = r->explanation = NULL;
}

static void fmt_mbps(double v, char *buf, size_t len)
{
    snprintf(buf, len, "%.1f", v);
}

int dd_adm_rewrite(const struct dd_adm_options *o, const json_t *pod,
                   const struct dd_rs_prediction *pred, const struct dd_rs_live *live,
                   bool static_cpu_nodes, struct dd_adm_result *ret, char *err, size_t errlen)
{
    struct dd_adm_result res;
    struct podres *p = dd_calloc(1, sizeof(*p));
    struct plan cpu, mem;
    double wc[DD_RS_MAX_CONTAINERS], wm[DD_RS_MAX_CONTAINERS];
    json_t *reasons = json_array(), *anns, *have, *list;
    bool enforce = o->mode == DD_ADM_ENFORCE, static_cpus = false;
    int r;

    memset(&res, 0, sizeof(res));
    if (!p || !reasons) {
        dd_free(p);
        json_decref(reasons);
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    }
    if ((r = podres_decode(o, pod, p, err, errlen)) < 0) {
        dd_free(p);
        json_decref(reasons);
        return r;
    }
    res.patch = json_array();
    have = json_object_get(json_object_get(pod, "metadata"), "annotations");
    if (have && !json_is_object(have))
        have = NULL;

    if (have && json_object_get(have, DD_ADM_ANN_PREDICTION)) {
        reason(reasons, "already right-sized (%s is set; a reinvocation): left as it is",
               DD_ADM_ANN_PREDICTION);
        res.explanation =
            json_pack("{s:s, s:b, s:b, s:[], s:o}", "mode", dd_adm_mode_name(o->mode), "changed", 0,
                      "static_cpus", 0, "containers", "reasons", reasons);
        dd_free(p);
        *ret = res;
        return 0;
    }

    plan_cpu(o, p, pred, &cpu, reasons);
    plan_memory(o, p, pred, &mem, reasons);
    shares(p, true, wc);
    shares(p, false, wm);

    /* exclusive cores on static CPU manager nodes */
    if (static_cpu_nodes) {
        const char *why = NULL;
        if (o->no_cpu_limits)
            why = "no_cpu_limits is set (exclusive cores need CPU limits)";
        else if (isnan(cpu.req))
            why = "no CPU prediction";
        else if (cpu.req < 1.0)
            why = "the predicted CPU peak is below one core (a whole core would be wasted)";
        else if (!init_guaranteed(p))
            why = "an init container's requests differ from its limits (no Guaranteed QoS)";
        for (size_t i = 0; !why && isnan(mem.lim) && i < p->n; i++)
            if (isnan(p->c[i].mem_lim) || !same(p->c[i].mem_req, p->c[i].mem_lim, false))
                why = "no memory prediction and a container's memory request differs from its "
                      "limit";
        if (why) {
            reason(reasons, "static CPU manager nodes: not applied: %s", why);
        } else {
            static_cpus = true;
            reason(reasons,
                   "static CPU manager nodes (%s=static): integer CPUs with requests == limits "
                   "and memory requests == limits (Guaranteed QoS: exclusive cores for a pod "
                   "predicted to use %.2f cores)",
                   DD_ADM_NODE_CPU_MANAGER, cpu.req);
        }
    }

    res.n_containers = p->n;
    for (size_t i = 0; i < p->n; i++) {
        struct dd_adm_container *d = &res.containers[i];
        const struct ctr *c = &p->c[i];
        snprintf(d->name, sizeof(d->name), "%s",
                 json_string_value(json_object_get(c->obj, "name"))
                     ? json_string_value(json_object_get(c->obj, "name"))
                     : "");
        d->index = i;
        d->gpus = c->gpus;
        d->cpu_request[0] = d->cpu_request[1] = c->cpu_req;
        d->cpu_limit[0] = d->cpu_limit[1] = c->cpu_lim;
        d->memory_request[0] = d->memory_request[1] = c->mem_req;
        d->memory_limit[0] = d->memory_limit[1] = c->mem_lim;
        if (!isnan(cpu.req)) {
            d->cpu_request[1] = DD_MAX(cores_round(cpu.req * wc[i]), DD_ADM_MIN_CPU_CORES);
            d->cpu_limit[1] = isnan(cpu.lim) ? (double)NAN : cores_round(cpu.lim * wc[i]);
            if (!isnan(d->cpu_limit[1]) && d->cpu_limit[1] < d->cpu_request[1])
                d->cpu_limit[1] = d->cpu_request[1];
        }
        if (!isnan(mem.req)) {
            d->memory_request[1] = DD_MAX(mib_round(mem.req * wm[i]), DD_ADM_MIN_MEMORY_BYTES);
            d->memory_limit[1] = mib_round(mem.lim * wm[i]);
            if (d->memory_limit[1] < d->memory_request[1])
                d->memory_limit[1] = d->memory_request[1];
        }
        if (static_cpus) {
            double cores = DD_MAX(ceil(d->cpu_request[1] - 1e-6), 1.0);
            d->cpu_request[1] = d->cpu_limit[1] = cores;
            d->memory_request[1] = d->memory_limit[1];
        }
        if (enforce)
            container_ops(res.patch, c, i, d, o->no_cpu_limits && !static_cpus);
    }

    /* annotations */
    anns = json_object();
    list = json_array();
    for (size_t i = 0; i < res.n_containers; i++)
        json_array_append_new(list, container_json(&res.containers[i]));
    json_t *pj = dd_adm_prediction_json(pred, live);
    char *ps = json_dumps(pj, JSON_COMPACT);
    if (!ps || !list || !anns) {
        json_decref(pj);
        json_decref(list);
        json_decref(anns);
        json_decref(reasons);
        dd_adm_result_release(&res);
        dd_free(p);
        free(ps);
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    }
    json_object_set_new(anns, DD_ADM_ANN_PREDICTION, json_string(ps));
    free(ps);
    if (enforce) {
        static const struct {
            enum dd_rs_target t;
            const char *key;
        } io[] = {{DD_RS_READ, DD_KUBE_ANN_READ_MBPS}, {DD_RS_WRITE, DD_KUBE_ANN_WRITE_MBPS}};
        for (size_t i = 0; i < DD_ARRAY_SIZE(io); i++) {
            double v = pred->value[io[i].t];
            char b[64];
            if (!isfinite(v) || v < 0)
                continue;
            if (have && json_object_get(have, io[i].key)) {
                reason(reasons, "%s: kept the pod's own value", io[i].key);
                continue;
            }
            fmt_mbps(DD_MIN(v, 1e6), b, sizeof(b));
            json_object_set_new(anns, io[i].key, json_string(b));
        }
    } else {
        json_t *rec = json_pack("{s:O, s:O}", "containers", list, "reasons", reasons);
        char *rs = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
        json_decref(rec);
        if (rs)
            json_object_set_new(anns, DD_ADM_ANN_RECOMMENDATION, json_string(rs));
        free(rs);
        reason(reasons, "recommend mode: annotated only, requests and limits unchanged");
    }
    if (!have) {
        op_add(res.patch, "/metadata/annotations", json_deep_copy(anns));
    } else {
        const char *k;
        json_t *v;
        json_object_foreach(anns, k, v)
        {
            char esc[2 * DD_NAME_MAX], path[2 * DD_NAME_MAX + 32];
            escape_key(k, esc, sizeof(esc));
            snprintf(path, sizeof(path), "/metadata/annotations/%s", esc);
            op_add(res.patch, path, json_incref(v));
        }
    }
    res.changed = json_array_size(res.patch) > 0;
    res.static_cpus = static_cpus;
    res.explanation =
        json_pack("{s:s, s:b, s:b, s:o, s:o, s:o, s:o}", "mode", dd_adm_mode_name(o->mode),
                  "changed", res.changed, "static_cpus", static_cpus, "prediction", pj,
                  "annotations", anns, "containers", list, "reasons", reasons);
    dd_free(p);
    if (!res.explanation || !res.patch) {
        dd_adm_result_release(&res);
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    }
    *ret = res;
    return 0;
}

/* ---- applying a patch ---- */

static int unescape(const char *s, size_t n, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (j + 1 >= outlen)
            return -1;
        if (s[i] == '~') {
            if (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1'))
                return -1;
            out[j++] = s[i + 1] == '0' ? '~' : '/';
            i++;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return 0;
}

static bool index_of(const char *tok, size_t size, bool allow_end, size_t *ret)
{
    uint64_t v;
    if (allow_end && strcmp(tok, "-") == 0) {
        *ret = size;
        return true;
    }
    if (!tok[0] || (tok[0] == '0' && tok[1]) || dd_parse_u64(tok, &v) < 0 || v > size ||
        (!allow_end && v == size))
        return false;
    *ret = (size_t)v;
    return true;
}

static int apply_one(json_t *doc, const json_t *op, size_t i, char *err, size_t errlen)
{
    const char *o = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    json_t *value = json_object_get(op, "value"), *cur = doc;
    char tok[1024];
    const char *p;

    if (!o || !path || path[0] != '/')
        return dd_fail(err, errlen, -EINVAL, "patch[%zu]: expected op and a path starting with '/'",
                       i);
    bool add = strcmp(o, "add") == 0, rep = strcmp(o, "replace") == 0,
         rm = strcmp(o, "remove") == 0;
    if (!add && !rep && !rm)
        return dd_fail(err, errlen, -EINVAL, "patch[%zu]: op '%.20s' not supported", i, o);
    if (!rm && !value)
        return dd_fail(err, errlen, -EINVAL, "patch[%zu]: no value", i);
    for (p = path + 1;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        size_t idx;
        if (unescape(p, n, tok, sizeof(tok)) < 0)
            return dd_fail(err, errlen, -EINVAL, "patch[%zu]: bad path '%.200s'", i, path);
        if (slash) { /* descend */
            json_t *next = json_is_object(cur) ? json_object_get(cur, tok)
                           : json_is_array(cur) && index_of(tok, json_array_size(cur), false, &idx)
                               ? json_array_get(cur, idx)
                               : NULL;
            if (!next)
                return dd_fail(err, errlen, -EINVAL, "patch[%zu]: '%.200s': no parent", i, path);
            cur = next;
            p = slash + 1;
            continue;
        }
        if (json_is_object(cur)) {
            if ((rm || rep) && !json_object_get(cur, tok))
                return dd_fail(err, errlen, -EINVAL, "patch[%zu]: '%.200s': no such member", i,
                               path);
            if (rm)
                return json_object_del(cur, tok) == 0 ? 0 : -EINVAL;
            return json_object_set(cur, tok, value) == 0 ? 0 : -ENOMEM;
        }
        if (json_is_array(cur) && index_of(tok, json_array_size(cur), add, &idx)) {
            if (rm)
                return json_array_remove(cur, idx) == 0 ? 0 : -EINVAL;
            if (rep)
                return json_array_set(cur, idx, value) == 0 ? 0 : -ENOMEM;
            return json_array_insert(cur, idx, value) == 0 ? 0 : -ENOMEM;
        }
        return dd_fail(err, errlen, -EINVAL, "patch[%zu]: '%.200s': no such location", i, path);
    }
}

int dd_adm_patch_apply(json_t *doc, const json_t *patch, char *err, size_t errlen)
{
    size_t i;
    const json_t *op;
    int r;
    if (!json_is_array(patch))
        return dd_fail(err, errlen, -EINVAL, "patch: expected an array");
    json_array_foreach(patch, i, op)
    {
        if (!json_is_object(op))
            return dd_fail(err, errlen, -EINVAL, "patch[%zu]: expected an object", i);
        if ((r = apply_one(doc, op, i, err, errlen)) < 0)
            return r;
    }
    return 0;
}

/* ---- base64 and the response ---- */

char *dd_adm_base64(const void *data, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    char *out = dd_malloc((len + 2) / 3 * 4 + 1), *o = out;
    size_t i = 0;
    if (!out)
        return NULL;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
        *o++ = tab[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < len ? tab[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

json_t *dd_adm_response(const char *uid, const json_t *patch, const char *const *warnings,
                        size_t n_warnings)
{
    json_t *resp = json_pack("{s:s, s:b}", "uid", uid ? uid : "", "allowed", 1), *w;
    if (!resp)
        return NULL;
    if (json_array_size(patch) > 0) {
        char *s = json_dumps(patch, JSON_COMPACT), *b = s ? dd_adm_base64(s, strlen(s)) : NULL;
        free(s);
        if (!b) {
            json_decref(resp);
            return NULL;
        }
        json_object_set_new(resp, "patchType", json_string("JSONPatch"));
        json_object_set_new(resp, "patch", json_string(b));
        dd_free(b);
    }
    w = json_array();
    for (size_t i = 0; i < n_warnings; i++)
        if (warnings[i])
            json_array_append_new(w, json_string(warnings[i]));
    if (json_array_size(w) > 0)
        json_object_set_new(resp, "warnings", w);
    else
        json_decref(w);
    return json_pack("{s:s, s:s, s:o}", "apiVersion", DD_ADM_API_VERSION, "kind", "AdmissionReview",
                     "response", resp);
}
