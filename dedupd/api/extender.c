/*
 * The scheduler extender and placement REST (api.h): POST /scheduler/filter,
 * POST /scheduler/prioritize, POST /v1/placement, GET /v1/ledger.
 *
 * A request is decoded (placement/extender), its pod resolved against the
 * Kubernetes cache (placement/kube: claims, classes, pools, PVs) and turned
 * into a workload profile (placement/profile), then scored on a snapshot of
 * the cluster view and of the in-flight ledger (placement/score) with the
 * active cost model's batch predict. Everything here is glue; the decisions
 * are in placement/.
 *
 * kube-scheduler's rules for the answers (reference/k8s/README.md): the
 * filter answers HTTP 200 always, a malformed request with "Error" set;
 * prioritize answers a bare array with every requested node, or 400 with a
 * JSON error for a malformed request (kube-scheduler logs it and goes on
 * without us). Never a 5xx: when the model fails, prioritize answers the
 * neutral score for every node and logs why.
 *
 * Prioritize records the pod's provisional ledger entry on its best node
 * at once (kube-scheduler binds asynchronously); the pod watch confirms or
 * moves it (dd_extender_api_pod_bound).
 *
 * Shadow mode (--placement-mode shadow) scores, records and counts what it
 * would have done, but answers neutral: every node passes, every score is
 * the neutral one.
 *
 * A standby replica (leader election on, another replica holds the Lease:
 * dedupd/leader.h) answers the extender neutral without scoring or
 * recording anything (every node passes the filter, every score is the
 * neutral one; counted in dedupd_extender_standby_answers_total), so a
 * kube-scheduler that still reaches it during a hand-over is never
 * misled and never sees a 5xx. /v1/placement still scores (the model is
 * warm) and says "mode": "standby".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/api/api.h"
#include "dedupd/config.h"
#include "dedupd/podevents.h"
#include "dedupd/trainer.h"
#include "placement/cluster.h"
#include "placement/extender.h"
#include "placement/kube.h"
#include "placement/ledger.h"
#include "placement/placer.h"
#include "placement/profile.h"
#include "placement/score.h"

enum verb { V_FILTER, V_PRIORITIZE, V_PLACEMENT, V_COUNT };
static const char *const verb_names[V_COUNT] = {"filter", "prioritize", "placement"};
enum outcome { O_OK, O_BAD_REQUEST, O_MODEL_ERROR, O_COUNT };
static const char *const outcome_names[O_COUNT] = {"ok", "bad_request", "model_error"};

struct dd_extender_api {
    struct dd_placer *placer; /* owned: the ledger, options, profiles */
    /* atomic counters */
    uint64_t requests[V_COUNT][O_COUNT];
    uint64_t filtered[DD_FR_COUNT];
    uint64_t neutral_nodes, scored_nodes, recorded, ledger_full, bound, standby_answers;
    int neutral_score; /* atomic: the configured neutral score, for standby answers */
    /* leader election: NULL, always the leader */
    bool (*is_leader)(void *ud);
    void *leader_ud;
    struct dd_podevents *events; /* --pod-events: NULL off; borrowed */
};

static bool standby(const struct dd_extender_api *a)
{
    return a->is_leader && !a->is_leader(a->leader_ud);
}

void dd_extender_api_set_leader(struct dd_extender_api *a, bool (*is_leader)(void *ud), void *ud)
{
    a->leader_ud = ud;
    a->is_leader = is_leader;
}

void dd_extender_api_set_events(struct dd_extender_api *a, struct dd_podevents *events)
{
    a->events = events;
}

/* ---- configuration ---- */

static void options_from(const struct dd_config *c, struct dd_score_options *o,
                         struct dd_ledger_options *lo)
{
    dd_score_options_init(o);
    o->neutral_score = (int)c->neutral_score;
    o->scale_percent = c->score_scale_percent;
    o->max_physical_use = c->max_physical_use;
    if (lo) {
        dd_ledger_options_init(lo);
        lo->provisional_ttl_s = c->ledger_ttl;
        lo->bound_ttl_s = c->ledger_bound_ttl;
    }
}

static int configure(struct dd_extender_api *a, const struct dd_config *c)
{
    struct dd_score_options o;
    struct dd_profile_set s;
    options_from(c, &o, NULL);
    dd_profile_set_init(&s);
    if (c->has_default_profile)
        s.dflt = c->default_profile;
    s.n = c->n_profiles;
    s.defs = dd_calloc(c->n_profiles ? c->n_profiles : 1, sizeof(*s.defs));
    if (!s.defs)
        return -ENOMEM;
    memcpy(s.defs, c->profiles, c->n_profiles * sizeof(*s.defs));
    __atomic_store_n(&a->neutral_score, (int)c->neutral_score, __ATOMIC_RELAXED);
    int r = dd_placer_configure(a->placer, &o, &s, strcmp(c->placement_mode, "shadow") == 0);
    dd_profile_set_release(&s); /* the placer keeps its own copy */
    return r;
}

static int model_predict(void *ctx, const struct dd_features *rows, size_t n, double *cost,
                         double *latency, bool *xgb, uint64_t *version, char *errbuf, size_t errlen)
{
    struct dd_model_source src = {0};
    int r = dd_model_predict_batch(ctx, rows, n, cost, latency, &src, errbuf, errlen);
    *xgb = src.xgboost;
    *version = src.version;
    return r;
}

/* A filter or prioritize at thousands of names allocates and frees a few
 * MB (the parsed request, the scores, the reply); glibc gave that memory
 * back to the kernel after every request (its trim threshold follows its
 * mmap threshold, a few MB at most) and took it again, zeroed, on the next:
 * ~780 page faults a request at 5,000 names, 4 once memory is kept. The
 * placement role keeps up to 64 MB free per arena instead (in practice
 * the peak of one request per HTTP thread) and serves blocks below 32 MB
 * from its arenas. Process-wide, so set once, when the role starts. */
static void keep_request_memory(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

int dd_extender_api_new(const struct dd_config *c, struct dd_cluster *cluster,
                        struct dd_model_service *model, struct dd_extender_api **ret)
{
    struct dd_extender_api *a = dd_calloc(1, sizeof(*a));
    struct dd_score_options o;
    struct dd_ledger_options lo;
    struct dd_score_model m = {model_predict, model};
    int r;
    if (!a)
        return -ENOMEM;
    keep_request_memory();
    options_from(c, &o, &lo);
    if ((r = dd_placer_new(cluster, &lo, &m, &a->placer)) < 0 || (r = configure(a, c)) < 0) {
        dd_placer_free(a->placer);
        dd_free(a);
        return r;
    }
    *ret = a;
    return 0;
}

struct dd_extender_api *dd_extender_api_free(struct dd_extender_api *a)
{
    if (!a)
        return NULL;
    dd_placer_free(a->placer);
    dd_free(a);
    return NULL;
}

void dd_extender_api_reconfigure(struct dd_extender_api *a, const struct dd_config *c)
{
    if (configure(a, c) < 0)
        dd_log_warning("extender: out of memory applying the new configuration; the old stays");
}

void dd_extender_api_set_kube(struct dd_extender_api *a, struct dd_kube *kube, const char *source)
{
    dd_placer_set_kube(a->placer, kube, source);
}

struct dd_placer *dd_extender_api_placer(struct dd_extender_api *a)
{
    return a->placer;
}

struct dd_ledger *dd_extender_api_ledger(struct dd_extender_api *a)
{
    return dd_placer_ledger(a->placer);
}

/* ---- the pod watch's bindings: confirm, move or rebuild ledger entries ---- */

void dd_extender_api_pod_bound(struct dd_extender_api *a, const char *uid, const char *ns,
                               const char *name, const char *node)
{
    if (dd_placer_pod_bound(a->placer, uid, ns, name, node, dd_wall_ms()))
        __atomic_add_fetch(&a->bound, 1, __ATOMIC_RELAXED);
}

void dd_extender_api_pod_deleted(struct dd_extender_api *a, const char *uid)
{
    dd_placer_pod_deleted(a->placer, uid);
}

void dd_extender_api_rebuild_ledger(struct dd_extender_api *a)
{
    size_t n = dd_placer_rebuild_ledger(a->placer, dd_wall_ms());
    if (n)
        dd_log_info("ledger: %zu bound pod(s) back in flight after the first lists", n);
}

/* ---- one request ---- */

static void count(struct dd_extender_api *a, enum verb v, enum outcome o)
{
    __atomic_add_fetch(&a->requests[v][o], 1, __ATOMIC_RELAXED);
}

static void count_verdicts(struct dd_extender_api *a, const struct dd_node_score *s, size_t n,
                           bool filter)
{
    uint64_t neutral = 0, scored = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].verdict == DD_VERDICT_UNRESOLVABLE && filter)
            __atomic_add_fetch(&a->filtered[s[i].filter_reason], 1, __ATOMIC_RELAXED);
        else if (s[i].verdict == DD_VERDICT_NEUTRAL)
            neutral++;
        else if (s[i].verdict == DD_VERDICT_OK)
            scored++;
    }
    if (!filter) {
        __atomic_add_fetch(&a->neutral_nodes, neutral, __ATOMIC_RELAXED);
        __atomic_add_fetch(&a->scored_nodes, scored, __ATOMIC_RELAXED);
    }
}

/* Records the pod on its best node (both modes: shadow's figures then
 * reflect what enforcing would have done). */
static void record_best(struct dd_extender_api *a, struct dd_placement *q,
                        const struct dd_node_score *s, size_t n)
{
    long r = dd_placer_record_best(q, s, n);
    if (r >= 0)
        __atomic_add_fetch(&a->recorded, 1, __ATOMIC_RELAXED);
    else if (r == -ENOSPC)
        __atomic_add_fetch(&a->ledger_full, 1, __ATOMIC_RELAXED);
}

/* dd_http_reply_json for the large replies: dumped once into a buffer
 * sized from hint (bytes expected), grown and dumped again only when the
 * guess was short, and handed to the response as it is (json_dumps grew a
 * buffer by doubling, copied it out, and the reply copied it again: a
 * tenth of a prioritize at 5,000 names). Steals doc. */
static int reply_json_sized(struct dd_http_response *resp, json_t *doc, size_t hint)
{
    const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(10);
    size_t cap = hint + 64, len;
    char *buf = doc ? dd_malloc(cap) : NULL;
    if (!buf)
        return dd_http_reply_json(resp, 200, doc); /* its out-of-memory answer */
    len = json_dumpb(doc, buf, cap, flags);
    if (len >= cap) { /* short guess: len is what it takes */
        char *grown = dd_realloc(buf, len + 1);
        if (!grown) {
            dd_free(buf);
            return dd_http_reply_json(resp, 200, doc);
        }
        buf = grown;
        cap = len + 1;
        len = json_dumpb(doc, buf, cap, flags);
    }
    if (len == 0 || len >= cap) { /* cannot happen for our trees */
        dd_free(buf);
        return dd_http_reply_json(resp, 200, doc);
    }
    json_decref(doc);
    buf[len] = '\0';
    dd_free(resp->body);
    resp->body = buf;
    resp->len = len;
    resp->status = 200;
    resp->content_type = "application/json";
    return 0;
}

/* Reply bytes to expect per node: the name, quotes and the fixed keys. */
static size_t reply_hint(const struct dd_extender_args *a)
{
    size_t sum = 0;
    for (size_t i = 0; i < a->n; i++)
        sum += json_string_length(a->values[i]) + 24;
    return sum;
}

/* Parses the body; NULL with a message on failure. */
static json_t *body_json(const struct dd_http_request *req, char *err, size_t errlen)
{
    json_error_t je;
    json_t *doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        snprintf(err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
    return doc;
}

/* A standby's answer: every node passes / scores neutral. Releases args
 * and doc. */
static int standby_answer(struct dd_extender_api *a, struct dd_http_response *resp, json_t *doc,
                          struct dd_extender_args *args, bool filter)
{
    struct dd_node_score *s = dd_calloc(args->n ? args->n : 1, sizeof(*s));
    json_t *out;
    int r;
    for (size_t i = 0; s && i < args->n; i++)
        s[i] =
            (struct dd_node_score){.node = args->names[i],
                                   .verdict = DD_VERDICT_NEUTRAL,
                                   .score = __atomic_load_n(&a->neutral_score, __ATOMIC_RELAXED)};
    __atomic_add_fetch(&a->standby_answers, 1, __ATOMIC_RELAXED);
    count(a, filter ? V_FILTER : V_PRIORITIZE, O_OK);
    if (filter)
        out = s ? dd_extender_filter_result(args, s) : dd_extender_filter_error("out of memory");
    else
        out = s ? dd_extender_prioritize_result(args, s) : NULL;
    dd_free(s);
    dd_extender_args_release(args);
    r = out ? dd_http_reply_json(resp, 200, out) : -ENOMEM;
    json_decref(doc); /* after the reply: full-Nodes items are borrowed from it */
    return r;
}

static int h_filter(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_extender_api *a = ctx;
    struct dd_extender_args args;
    struct dd_node_score *s = NULL;
    struct dd_placement q;
    char err[512] = "";
    json_t *doc = body_json(req, err, sizeof(err)), *out;
    int r;

    if (!doc || dd_extender_args_decode(doc, &args, err, sizeof(err)) < 0) {
        json_decref(doc);
        count(a, V_FILTER, O_BAD_REQUEST);
        return dd_http_reply_json(resp, 200, dd_extender_filter_error(err));
    }
    if (standby(a))
        return standby_answer(a, resp, doc, &args, true);
    if ((r = dd_placer_begin(a->placer, args.pod, NULL, dd_wall_ms(), &q, err, sizeof(err))) < 0) {
        dd_extender_args_release(&args);
        json_decref(doc);
        count(a, V_FILTER, O_BAD_REQUEST);
        return dd_http_reply_json(resp, 200, dd_extender_filter_error(err));
    }
    s = dd_malloc((args.n ? args.n : 1) * sizeof(*s)); /* dd_placer_score sets every field */
    if (!s ||
        dd_placer_score(&q, args.names, args.n, DD_SCORE_FILTER, false, s, err, sizeof(err)) < 0) {
        /* cannot happen short of memory: fail open, every node passes */
        for (size_t i = 0; s && i < args.n; i++)
            s[i] = (struct dd_node_score){.node = args.names[i], .verdict = DD_VERDICT_NEUTRAL};
        dd_log_warning("extender filter: %s; every node passes", s ? err : "out of memory");
    }
    if (s)
        count_verdicts(a, s, args.n, true);
    if (s && q.shadow) /* would have filtered (counted above); answers that all pass */
        for (size_t i = 0; i < args.n; i++)
            s[i].verdict = DD_VERDICT_NEUTRAL;
    count(a, V_FILTER, O_OK);
    out = s ? dd_extender_filter_result(&args, s) : dd_extender_filter_error("out of memory");
    /* full mode answers the Node objects as they came: about the body */
    size_t hint = args.full_nodes ? req->body_len : reply_hint(&args);
    dd_free(s);
    dd_placer_end(&q);
    dd_extender_args_release(&args);
    r = reply_json_sized(resp, out, hint);
    json_decref(doc); /* after the reply: full-Nodes items are borrowed from it */
    return r;
}

/* The largest "terms" value named key over the explanation's claims. */
static double claims_max(const json_t *x, const char *key)
{
    double best = (double)NAN;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(x, "claims"), i, c)
    {
        json_t *v = json_object_get(json_object_get(c, "terms"), key);
        if (json_is_number(v) && !(json_number_value(v) <= best))
            best = json_number_value(v);
    }
    return best;
}

/* The pod event's summary (podevents.h): counts from s, the best and
 * runner-up nodes, and the best one's terms from its explanation (scored
 * again with explain, on that node alone). Costs one small model batch,
 * once per pod per window; the message is built by the sender thread. */
static void submit_event(struct dd_extender_api *a, struct dd_placement *q,
                         const struct dd_extender_args *args, const struct dd_node_score *s)
{
    struct dd_pod_event e;
    struct dd_node_score x;
    char err[256];
    long best = dd_score_best(s, args->n), second = -1;

    memset(&e, 0, sizeof(e));
    snprintf(e.uid, sizeof(e.uid), "%s", q->profile.uid);
    snprintf(e.ns, sizeof(e.ns), "%s", q->profile.ns);
    snprintf(e.name, sizeof(e.name), "%s", q->profile.name);
    e.shadow = q->shadow;
    e.nodes = (unsigned)args->n;
    e.cpu_stretch = e.device_stretch = e.latency_stretch = e.report_age_s = (double)NAN;
    for (size_t i = 0; i < args->n; i++) {
        if (s[i].verdict == DD_VERDICT_UNRESOLVABLE && s[i].filter_reason >= 0)
            e.filtered[s[i].filter_reason]++;
        else if (s[i].verdict == DD_VERDICT_NEUTRAL) {
            if (!e.neutral++)
                snprintf(e.neutral_reason, sizeof(e.neutral_reason), "%.60s: %.90s", s[i].node,
                         s[i].reason);
        } else if (s[i].verdict == DD_VERDICT_OK) {
            e.scored++;
            if ((long)i != best && (second < 0 || s[i].score > s[second].score ||
                                    (s[i].score == s[second].score &&
                                     s[i].slowdown_percent < s[second].slowdown_percent)))
                second = (long)i;
        }
    }
    if (best >= 0) {
        const char *name = s[best].node;
        e.has_best = true;
        snprintf(e.best.name, sizeof(e.best.name), "%s", s[best].node);
        e.best.score = s[best].score;
        e.best.slowdown_percent = s[best].slowdown_percent;
        if (second >= 0) {
            e.has_second = true;
            snprintf(e.second.name, sizeof(e.second.name), "%s", s[second].node);
            e.second.score = s[second].score;
            e.second.slowdown_percent = s[second].slowdown_percent;
        }
        if (dd_placer_score(q, &name, 1, DD_SCORE_PRIORITIZE, true, &x, err, sizeof(err)) == 0) {
            const json_t *ex = x.explanation, *model = json_object_get(ex, "model");
            json_t *age = json_object_get(ex, "report_age_seconds"), *c;
            size_t i;
            e.cpu_stretch =
                json_number_value(json_object_get(json_object_get(ex, "cpu"), "stretch_percent"));
            e.device_stretch = claims_max(ex, "device_stretch_percent");
            e.latency_stretch = claims_max(ex, "latency_stretch_percent");
            if (json_is_number(age))
                e.report_age_s = json_number_value(age);
            e.stale = json_is_true(json_object_get(ex, "stale"));
            snprintf(e.model_source, sizeof(e.model_source), "%s",
                     json_string_value(json_object_get(model, "source"))
                         ? json_string_value(json_object_get(model, "source"))
                         : "");
            e.model_version = (uint64_t)json_integer_value(json_object_get(model, "version"));
            json_array_foreach(json_object_get(ex, "claims"), i, c)
            {
                e.ledger_entries += (int)json_integer_value(
                    json_object_get(json_object_get(c, "ledger"), "entries"));
            }
            dd_node_scores_release(&x, 1);
        }
    }
    dd_podevents_submit(a->events, &e);
}

static int h_prioritize(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_extender_api *a = ctx;
    struct dd_extender_args args;
    struct dd_node_score *s;
    struct dd_placement q;
    char err[512] = "";
    json_t *doc = body_json(req, err, sizeof(err));
    int r;

    if (!doc || dd_extender_args_decode(doc, &args, err, sizeof(err)) < 0) {
        json_decref(doc);
        count(a, V_PRIORITIZE, O_BAD_REQUEST);
        return dd_http_reply_error(resp, 400, "bad_request", "%s", err);
    }
    if (standby(a))
        return standby_answer(a, resp, doc, &args, false);
    if ((r = dd_placer_begin(a->placer, args.pod, NULL, dd_wall_ms(), &q, err, sizeof(err))) < 0) {
        dd_extender_args_release(&args);
        json_decref(doc);
        count(a, V_PRIORITIZE, O_BAD_REQUEST);
        return dd_http_reply_error(resp, 400, "bad_request", "%s", err);
    }
    /* not zeroed: dd_placer_score sets every field of every node */
    s = dd_malloc((args.n ? args.n : 1) * sizeof(*s));
    if (!s) {
        dd_placer_end(&q);
        dd_extender_args_release(&args);
        json_decref(doc);
        return -ENOMEM;
    }
    if (dd_placer_score(&q, args.names, args.n, DD_SCORE_PRIORITIZE, false, s, err, sizeof(err)) <
        0) {
        dd_log_warning("extender prioritize: the cost model failed (%s): neutral scores", err);
        for (size_t i = 0; i < args.n; i++)
            s[i] = (struct dd_node_score){.node = args.names[i],
                                          .verdict = DD_VERDICT_NEUTRAL,
                                          .score = q.opts.neutral_score};
        count(a, V_PRIORITIZE, O_MODEL_ERROR);
    } else {
        count_verdicts(a, s, args.n, false);
        record_best(a, &q, s, args.n);
        count(a, V_PRIORITIZE, O_OK);
        /* pods we place only (GPUs and claims of ours), once per window */
        if (a->events && q.profile.gpus > 0 && q.profile.n_claims &&
            dd_podevents_claim(a->events, q.profile.uid, dd_mono_ms()))
            submit_event(a, &q, &args, s);
    }
    if (q.shadow)
        for (size_t i = 0; i < args.n; i++)
            s[i].score = q.opts.neutral_score;
    json_t *out = dd_extender_prioritize_result(&args, s);
    size_t hint = reply_hint(&args);
    dd_free(s);
    dd_placer_end(&q);
    dd_extender_args_release(&args);
    json_decref(doc); /* the reply holds references to the names it borrows */
    return reply_json_sized(resp, out, hint);
}

static int score_desc(const void *x, const void *y)
{
    const struct dd_node_score *a = x, *b = y;
    if (a->score != b->score)
        return b->score - a->score;
    if (isfinite(a->slowdown_percent) && isfinite(b->slowdown_percent) &&
        a->slowdown_percent != b->slowdown_percent)
        return a->slowdown_percent < b->slowdown_percent ? -1 : 1;
    return strcmp(a->node, b->node);
}

/* POST /v1/placement: a Pod object, or {"namespace", "name"} of a cached
 * pod; optional "nodes": [names] (default: every node in the view). */
static int h_placement(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_extender_api *a = ctx;
    json_t *doc = dd_http_body_json(req, resp), *nodes_in, *out, *list;
    struct dd_kube_pod cached;
    struct dd_node_score *s = NULL;
    const char **names = NULL;
    const json_t *pod = NULL;
    struct dd_placement q;
    char err[512] = "";
    size_t n = 0;
    int r;

    if (!doc)
        return 0;
    if (json_object_get(doc, "metadata")) {
        pod = doc;
    } else {
        const char *ns = json_string_value(json_object_get(doc, "namespace"));
        const char *name = json_string_value(json_object_get(doc, "name"));
        if (!ns || !name) {
            json_decref(doc);
            count(a, V_PLACEMENT, O_BAD_REQUEST);
            return dd_http_reply_error(resp, 400, "bad_request",
                                       "expected a Pod object or {\"namespace\", \"name\"}");
        }
        if (!dd_placer_kube(a->placer) ||
            dd_kube_pod_lookup(dd_placer_kube(a->placer), ns, name, &cached) < 0) {
            /* the reply first: ns and name live in doc */
            r = dd_http_reply_error(resp, 404, "not_found",
                                    "pod %.200s/%.200s is not in the Kubernetes cache (%s)", ns,
                                    name, dd_placer_kube_source(a->placer));
            json_decref(doc);
            count(a, V_PLACEMENT, O_BAD_REQUEST);
            return r;
        }
    }
    if ((r = dd_placer_begin(a->placer, pod, pod ? NULL : &cached, dd_wall_ms(), &q, err,
                             sizeof(err))) < 0) {
        json_decref(doc);
        count(a, V_PLACEMENT, O_BAD_REQUEST);
        return dd_http_reply_error(resp, 400, "bad_request", "%s", err);
    }
    nodes_in = json_object_get(doc, "nodes");
    if (json_is_array(nodes_in)) {
        n = json_array_size(nodes_in);
        if (n > DD_EXTENDER_MAX_NODES)
            n = DD_EXTENDER_MAX_NODES;
        names = dd_calloc(n ? n : 1, sizeof(*names));
        for (size_t i = 0; names && i < n; i++) {
            names[i] = json_string_value(json_array_get(nodes_in, i));
            if (!names[i] || !names[i][0]) {
                dd_free(names);
                dd_placer_end(&q);
                json_decref(doc);
                return dd_http_reply_error(resp, 400, "bad_request",
                                           "nodes[%zu]: expected a node name", i);
            }
        }
    } else {
        n = q.snap->n;
        names = dd_calloc(n ? n : 1, sizeof(*names));
        for (size_t i = 0; names && i < n; i++)
            names[i] = q.snap->nodes[i]->report.node;
    }
    s = names ? dd_calloc(n ? n : 1, sizeof(*s)) : NULL;
    if (!s) {
        dd_free(names);
        dd_placer_end(&q);
        json_decref(doc);
        return -ENOMEM;
    }
    r = dd_placer_score(&q, names, n, DD_SCORE_PRIORITIZE, true, s, err, sizeof(err));
    if (r < 0) {
        dd_free(s);
        dd_free(names);
        dd_placer_end(&q);
        json_decref(doc);
        count(a, V_PLACEMENT, O_MODEL_ERROR);
        return dd_http_reply_error(resp, 503, "model_unavailable", "%s", err);
    }
    long best = dd_score_best(s, n);
    const char *best_name = best >= 0 ? s[best].node : NULL;
    qsort(s, n, sizeof(*s), score_desc);
    list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = s[i].explanation ? json_incref(s[i].explanation) : json_object();
        json_object_set_new(e, "node", json_string(s[i].node));
        json_object_set_new(e, "score", json_integer(s[i].score));
        json_object_set_new(e, "verdict", json_string(dd_verdict_names[s[i].verdict]));
        json_object_set_new(e, "reason", json_string(s[i].reason));
        json_array_append_new(list, e);
    }
    out = json_pack("{s:o, s:s, s:s, s:o, s:o}", "pod", dd_profile_to_json(&q.profile), "mode",
                    standby(a) ? "standby"
                    : q.shadow ? "shadow"
                               : "enforce",
                    "kubernetes", dd_placer_kube_source(a->placer), "best",
                    best_name ? json_string(best_name) : json_null(), "nodes", list);
    json_object_set_new(json_object_get(out, "pod"), "uid", json_string(q.profile.uid));
    json_object_set_new(json_object_get(out, "pod"), "namespace", json_string(q.profile.ns));
    json_object_set_new(json_object_get(out, "pod"), "name", json_string(q.profile.name));
    dd_node_scores_release(s, n);
    dd_free(s);
    dd_free(names);
    dd_placer_end(&q);
    json_decref(doc);
    count(a, V_PLACEMENT, O_OK);
    return dd_http_reply_json(resp, 200, out);
}

static int h_ledger(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_extender_api *a = ctx;
    struct dd_ledger *l = dd_placer_ledger(a->placer);
    uint64_t now = dd_wall_ms();
    dd_ledger_expire(l, now);
    return dd_http_reply_json(resp, 200, dd_ledger_to_json(l, dd_http_query(req, "node"), now));
}

size_t dd_api_extender_routes(struct dd_extender_api *a, const char *role,
                              struct dd_http_route *out)
{
    const struct dd_http_route templ[] = {
        {"POST", "/scheduler/filter", h_filter, NULL, false, NULL, DD_EXTENDER_MAX_BODY},
        {"POST", "/scheduler/prioritize", h_prioritize, NULL, false, NULL, DD_EXTENDER_MAX_BODY},
        {"POST", "/v1/placement", h_placement, NULL, false, NULL, DD_EXTENDER_MAX_BODY},
        {"GET", "/v1/ledger", h_ledger, NULL, false, NULL, 0},
    };
    return dd_api_fill_routes(templ, DD_ARRAY_SIZE(templ), a, role, out);
}

void dd_extender_api_metrics(struct dd_extender_api *a, FILE *m)
{
    bool shadow = dd_placer_shadow(a->placer);
    fputs("# HELP dedupd_extender_requests_total Extender and placement requests by verb and "
          "outcome.\n# TYPE dedupd_extender_requests_total counter\n",
          m);
    for (int v = 0; v < V_COUNT; v++)
        for (int o = 0; o < O_COUNT; o++)
            fprintf(m, "dedupd_extender_requests_total{verb=\"%s\",outcome=\"%s\"} %llu\n",
                    verb_names[v], outcome_names[o],
                    (unsigned long long)__atomic_load_n(&a->requests[v][o], __ATOMIC_RELAXED));
    fprintf(m,
            "# HELP dedupd_extender_filtered_nodes_total Nodes the filter found unresolvable, by "
            "reason (in shadow mode: would have).\n"
            "# TYPE dedupd_extender_filtered_nodes_total counter\n");
    for (int r = 0; r < DD_FR_COUNT; r++)
        fprintf(m, "dedupd_extender_filtered_nodes_total{reason=\"%s\"} %llu\n",
                dd_filter_reason_names[r],
                (unsigned long long)__atomic_load_n(&a->filtered[r], __ATOMIC_RELAXED));
    fprintf(m,
            "# HELP dedupd_extender_scored_nodes_total Nodes prioritize scored from the model.\n"
            "# TYPE dedupd_extender_scored_nodes_total counter\n"
            "dedupd_extender_scored_nodes_total %llu\n"
            "# HELP dedupd_extender_neutral_nodes_total Nodes prioritize scored neutral (no or "
            "stale report, pod without GPUs or pools).\n"
            "# TYPE dedupd_extender_neutral_nodes_total counter\n"
            "dedupd_extender_neutral_nodes_total %llu\n"
            "# HELP dedupd_extender_shadow 1 when answers are neutral (--placement-mode shadow).\n"
            "# TYPE dedupd_extender_shadow gauge\ndedupd_extender_shadow %d\n"
            "# HELP dedupd_extender_standby_answers_total Filter and prioritize calls answered "
            "neutral because this replica is a standby (leader election).\n"
            "# TYPE dedupd_extender_standby_answers_total counter\n"
            "dedupd_extender_standby_answers_total %llu\n"
            "# HELP dedupd_ledger_entries In-flight ledger entries.\n"
            "# TYPE dedupd_ledger_entries gauge\ndedupd_ledger_entries %zu\n"
            "# HELP dedupd_ledger_recorded_total Provisional entries recorded by prioritize.\n"
            "# TYPE dedupd_ledger_recorded_total counter\ndedupd_ledger_recorded_total %llu\n"
            "# HELP dedupd_ledger_full_total Pods scored but not recorded: the ledger was full.\n"
            "# TYPE dedupd_ledger_full_total counter\ndedupd_ledger_full_total %llu\n"
            "# HELP dedupd_ledger_bindings_total Bindings from the pod watch applied.\n"
            "# TYPE dedupd_ledger_bindings_total counter\ndedupd_ledger_bindings_total %llu\n",
            (unsigned long long)__atomic_load_n(&a->scored_nodes, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&a->neutral_nodes, __ATOMIC_RELAXED),
            shadow ? 1 : 0,
            (unsigned long long)__atomic_load_n(&a->standby_answers, __ATOMIC_RELAXED),
            dd_ledger_size(dd_placer_ledger(a->placer)),
            (unsigned long long)__atomic_load_n(&a->recorded, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&a->ledger_full, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&a->bound, __ATOMIC_RELAXED));
}
