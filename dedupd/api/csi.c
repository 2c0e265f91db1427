/*
 * The CSI-adjacent topology API (api.h; csi/README.md):
 *   POST /v1/csi/preferred   a CreateVolumeRequest (canonical JSON) or
 *                            {"accessibilityRequirements", "pvc": {namespace,
 *                            name}[, "pod": {namespace, name}]} -> the
 *                            requisite segments ordered for the PVC's pod
 *   GET  /v1/csi/capacity    ?storage_class=NAME&segment=K=V... [&explain=true]
 *   POST /v1/csi/capacity    a GetCapacityRequest -> GetCapacityResponse
 *   GET  /v1/csi/topology    ?node=NAME -> NodeGetInfoResponse
 *
 * Glue only: segments are matched to nodes with csi/'s matcher over the
 * Kubernetes cache's Node labels plus each reporting node's own dedupd keys;
 * nodes are scored by the extender's placer (the same snapshots, ledger and
 * model); the ordering and the capacity arithmetic are csi/'s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/common.h"
#include "csi/csi.h"
#include "dedupd/api/api.h"
#include "dedupd/config.h"
#include "dedupd/estimaterefs.h"
#include "placement/cluster.h"
#include "placement/kube.h"
#include "placement/ledger.h"
#include "placement/placer.h"
#include "placement/score.h"

enum verb { V_PREFERRED, V_CAPACITY, V_TOPOLOGY, V_COUNT };
static const char *const verb_names[V_COUNT] = {"preferred", "capacity", "topology"};
enum outcome { O_OK, O_BAD_REQUEST, O_NOT_FOUND, O_ERROR, O_COUNT };
static const char *const outcome_names[O_COUNT] = {"ok", "bad_request", "not_found", "error"};

struct dd_csi_api {
    struct dd_placer *placer; /* borrowed: the extender's */
    struct dd_csi_capacity_options copts;
    uint64_t max_use_bits;               /* copts.max_physical_use, atomic (SIGHUP) */
    uint64_t requests[V_COUNT][O_COUNT]; /* atomic */
    struct dd_estimate_refs *refs;       /* borrowed; NULL: job URLs not followed */
};

void dd_csi_api_set_estimates(struct dd_csi_api *a, struct dd_estimate_refs *refs)
{
    a->refs = refs;
}

/* The reduction the class's dedupd.io/estimate names (NaN: none or not
 * known yet; note says why). */
static double class_estimate(struct dd_csi_api *a, const struct dd_kube_class *cls, char *note,
                             size_t notelen)
{
    double v = (double)NAN;
    if (notelen)
        note[0] = '\0';
    switch (dd_csi_estimate_ref(cls->estimate, &v)) {
    case DD_CSI_ESTIMATE_NONE:
        return (double)NAN;
    case DD_CSI_ESTIMATE_NUMBER:
        return v;
    case DD_CSI_ESTIMATE_URL:
        if (a->refs)
            return dd_estimate_refs_get(a->refs, cls->estimate, note, notelen);
        if (notelen)
            snprintf(note, notelen, "dedupd.io/estimate: job URLs are not followed here");
        return (double)NAN;
    case DD_CSI_ESTIMATE_BAD:
        if (notelen)
            snprintf(note, notelen,
                     "dedupd.io/estimate '%.60s' ignored: expected a number from 1 to 1000 or "
                     "an estimate job URL (http://NODE:PORT/v1/estimate/ID)",
                     cls->estimate);
        return (double)NAN;
    }
    return (double)NAN;
}

static void options_from(const struct dd_config *c, struct dd_csi_capacity_options *o)
{
    dd_csi_capacity_options_init(o);
    o->max_physical_use = c->max_physical_use; /* the extender filter's ceiling */
}

int dd_csi_api_new(const struct dd_config *c, struct dd_placer *placer, struct dd_csi_api **ret)
{
    struct dd_csi_api *a = dd_calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->placer = placer;
    options_from(c, &a->copts);
    memcpy(&a->max_use_bits, &a->copts.max_physical_use, sizeof(a->max_use_bits));
    *ret = a;
    return 0;
}

struct dd_csi_api *dd_csi_api_free(struct dd_csi_api *a)
{
    dd_free(a);
    return NULL;
}

void dd_csi_api_reconfigure(struct dd_csi_api *a, const struct dd_config *c)
{
    struct dd_csi_capacity_options o;
    uint64_t bits;
    options_from(c, &o);
    memcpy(&bits, &o.max_physical_use, sizeof(bits));
    __atomic_store_n(&a->max_use_bits, bits, __ATOMIC_RELAXED);
}

static int count(struct dd_csi_api *a, enum verb v, enum outcome o)
{
    __atomic_add_fetch(&a->requests[v][o], 1, __ATOMIC_RELAXED);
    return 0;
}

/* ---- matching segments to nodes ---- */

/* Our own keys of a reporting node, as key/value pairs. */
struct own_keys {
    size_t n;
    const char *kv[2 * (DD_MAX_VOLUMES_PER_NODE + 1)];
    char keys[DD_MAX_VOLUMES_PER_NODE][sizeof(DD_CSI_KEY_POOL_PREFIX) + DD_NAME_MAX];
};

static void own_keys(const struct dd_cluster_node *cn, const char *name, struct own_keys *o)
{
    size_t k = 0;
    o->n = 1;
    o->kv[0] = DD_CSI_KEY_NODE;
    o->kv[1] = name;
    for (size_t i = 0; cn && i < cn->report.n_volumes && i < DD_MAX_VOLUMES_PER_NODE; i++) {
        const char *pool = cn->report.volumes[i].pool;
        bool dup = false;
        if (!dd_csi_pool_key_ok(pool))
            continue;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(cn->report.volumes[j].pool, pool) == 0;
        if (dup)
            continue;
        snprintf(o->keys[k], sizeof(o->keys[k]), "%s%s", DD_CSI_KEY_POOL_PREFIX, pool);
        o->kv[2 * o->n] = o->keys[k];
        o->kv[2 * o->n + 1] = "true";
        o->n++;
        k++;
    }
}

struct hit {
    size_t entry, node; /* node: index into the snapshot */
};

struct match {
    const struct dd_cluster_snapshot *snap;
    const struct dd_csi_matcher *m;
    const char *selected; /* the selected node, or NULL */
    size_t n_entries;
    size_t *matched;      /* per entry: nodes matching (reporting or not) */
    bool *selected_match; /* per entry: the selected node matches */
    bool *seen;           /* per snapshot node: a Node object was matched */
    struct hit *hits;     /* (entry, reporting node) */
    size_t n_hits, cap_hits;
    long cur_node;  /* the node being matched: snapshot index, -1 not reporting */
    bool pool_keys; /* a segment names a pool key: build each node's (its volumes are cold) */
    bool cur_selected;
    bool oom;
};

static void on_match(void *ctx, size_t seg)
{
    struct match *x = ctx;
    x->matched[seg]++;
    if (x->cur_selected)
        x->selected_match[seg] = true;
    if (x->cur_node < 0)
        return;
    if (x->n_hits == x->cap_hits && DD_ARRAY_RESERVE(x->hits, x->cap_hits, x->n_hits + 1) < 0) {
        x->oom = true;
        return;
    }
    x->hits[x->n_hits++] = (struct hit){seg, (size_t)x->cur_node};
}

static void match_node(struct match *x, const char *name, const char *const *kv, size_t n)
{
    struct own_keys ok;
    long i = dd_cluster_find_index(x->snap, name);
    x->cur_node = i;
    x->cur_selected = x->selected && strcmp(x->selected, name) == 0;
    if (i >= 0)
        x->seen[i] = true;
    own_keys(i >= 0 && x->pool_keys ? x->snap->nodes[i] : NULL, name, &ok);
    dd_csi_matcher_node(x->m, kv, n, ok.kv, ok.n, on_match, x);
}

static void on_kube_node(void *ctx, const char *node, const char *const *kv, size_t n)
{
    match_node(ctx, node, kv, n);
}

static int hit_cmp(const void *p, const void *q)
{
    const struct hit *a = p, *b = q;
    if (a->entry != b->entry)
        return a->entry < b->entry ? -1 : 1;
    return a->node < b->node ? -1 : a->node > b->node;
}

/* Matches segs[0..n) against every Node object of the cache and every
 * reporting node without one. Hits come out sorted by entry. */
static int match_all(struct dd_kube *kube, const struct dd_cluster_snapshot *snap,
                     const struct dd_csi_segment *segs, size_t n, const char *selected,
                     struct match *x)
{
    struct dd_csi_matcher *m;
    int r;
    memset(x, 0, sizeof(*x));
    if ((r = dd_csi_matcher_new(segs, n, &m)) < 0)
        return r;
    x->snap = snap;
    x->m = m;
    x->selected = selected && selected[0] ? selected : NULL;
    x->n_entries = n;
    for (size_t i = 0; i < n && !x->pool_keys; i++)
        for (size_t k = 0; k < segs[i].n && !x->pool_keys; k++)
            x->pool_keys = strncmp(segs[i].kv[k].key, DD_CSI_KEY_POOL_PREFIX,
                                   sizeof(DD_CSI_KEY_POOL_PREFIX) - 1) == 0;
    x->matched = dd_calloc(n ? n : 1, sizeof(*x->matched));
    x->selected_match = dd_calloc(n ? n : 1, sizeof(*x->selected_match));
    x->seen = dd_calloc(snap->n ? snap->n : 1, sizeof(*x->seen));
    if (!x->matched || !x->selected_match || !x->seen) {
        dd_csi_matcher_free(m);
        return -ENOMEM;
    }
    if (kube)
        dd_kube_foreach_node(kube, on_kube_node, x);
    for (size_t i = 0; i < snap->n; i++)
        if (!x->seen[i])
            match_node(x, snap->nodes[i]->report.node, NULL, 0);
    dd_csi_matcher_free(m);
    x->m = NULL;
    if (x->oom)
        return -ENOMEM;
    qsort(x->hits, x->n_hits, sizeof(*x->hits), hit_cmp);
    return 0;
}

static void match_release(struct match *x)
{
    dd_free(x->matched);
    dd_free(x->selected_match);
    dd_free(x->seen);
    dd_free(x->hits);
}

/* ---- POST /v1/csi/preferred ---- */

/* Is a better than b (the scorer's order: not filtered, score, slowdown)? */
static bool better(const struct dd_node_score *a, const struct dd_node_score *b)
{
    bool fa = a->verdict == DD_VERDICT_UNRESOLVABLE, fb = b->verdict == DD_VERDICT_UNRESOLVABLE;
    if (fa != fb)
        return fb;
    if (a->score != b->score)
        return a->score > b->score;
    double sa = isnan(a->slowdown_percent) ? (double)INFINITY : a->slowdown_percent;
    double sb = isnan(b->slowdown_percent) ? (double)INFINITY : b->slowdown_percent;
    if (sa != sb)
        return sa < sb;
    return strcmp(a->node, b->node) < 0;
}

/* The pod: named, or the cached one using the claim, or the claim alone. */
static int find_pod(struct dd_kube *kube, const json_t *pod_ref, const char *ns, const char *claim,
                    const struct dd_kube_pvc *pvc, struct dd_kube_pod *pod, const char **how,
                    char *err, size_t errlen)
{
    if (pod_ref && json_object_get(pod_ref, "metadata")) {
        *how = "request";
        return dd_kube_pod_resolve(kube, pod_ref, pod, err, errlen);
    }
    if (pod_ref) {
        const char *pns = json_string_value(json_object_get(pod_ref, "namespace"));
        const char *pn = json_string_value(json_object_get(pod_ref, "name"));
        if (!pns || !pn) {
            snprintf(err, errlen, "pod: expected {\"namespace\", \"name\"} or a Pod object");
            return -EINVAL;
        }
        if (dd_kube_pod_lookup(kube, pns, pn, pod) < 0) {
            snprintf(err, errlen, "pod %.200s/%.200s is not in the Kubernetes cache", pns, pn);
            return -ENOENT;
        }
        *how = "request";
        return 0;
    }
    if (dd_kube_pod_using_claim(kube, ns, claim, pod) == 0) {
        *how = "cache";
        return 0;
    }
    /* no pod yet (Immediate binding): the claim alone, which scores neutral */
    memset(pod, 0, sizeof(*pod));
    snprintf(pod->ns, sizeof(pod->ns), "%s", ns);
    snprintf(pod->name, sizeof(pod->name), "(no pod uses claim %.200s)", claim);
    pod->n_claims = 1;
    pod->claims[0] = pvc->claim;
    *how = "none";
    return 0;
}

static int bad(struct dd_csi_api *a, enum verb v, struct dd_http_response *resp, int status,
               const char *msg)
{
    count(a, v, status == 404 ? O_NOT_FOUND : status == 400 ? O_BAD_REQUEST : O_ERROR);
    return dd_http_reply_error(resp, status,
                               status == 404   ? "not_found"
                               : status == 400 ? "bad_request"
                                               : "unavailable",
                               "%s", msg);
}

static int h_preferred(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_csi_api *a = ctx;
    struct dd_kube *kube = dd_placer_kube(a->placer);
    json_t *doc = dd_http_body_json(req, resp);
    struct dd_csi_create_volume cv;
    struct dd_csi_topology_req *tr = NULL, own_tr;
    const json_t *pod_ref = NULL;
    const char *ns = NULL, *claim = NULL, *how = "";
    struct dd_kube_pvc pvc;
    struct dd_kube_pod *pod = NULL;
    struct dd_placement q;
    bool begun = false;
    struct match mx = {0};
    struct dd_csi_segment *segs = NULL;
    struct dd_csi_rank *ranks = NULL;
    struct dd_node_score *s = NULL;
    const char **names = NULL;
    long *node_slot = NULL, *best = NULL;
    size_t *idx = NULL, n = 0, n_names = 0;
    long *pref = NULL;
    char err[512] = "";
    int status = 0, r;
    const struct dd_csi_segment *src;
    size_t h = 0;
    long pinned = -1;
    json_t *list, *out;
    uint64_t now;

    memset(&cv, 0, sizeof(cv));
    memset(&own_tr, 0, sizeof(own_tr));
    if (!doc)
        return count(a, V_PREFERRED, O_BAD_REQUEST);
    if (json_object_get(doc, "pvc")) {
        const json_t *p = json_object_get(doc, "pvc"), *ar;
        ar = json_object_get(doc, "accessibilityRequirements");
        if (!ar)
            ar = json_object_get(doc, "accessibility_requirements");
        ns = json_string_value(json_object_get(p, "namespace"));
        claim = json_string_value(json_object_get(p, "name"));
        if (!ns || !claim || !ns[0] || !claim[0]) {
            status = 400;
            snprintf(err, sizeof(err), "pvc: expected {\"namespace\", \"name\"} (strings)");
        } else if (!ar) {
            status = 400;
            snprintf(err, sizeof(err), "accessibilityRequirements: missing");
        } else if (dd_csi_topology_req_decode(ar, "accessibilityRequirements", &own_tr, err,
                                              sizeof(err)) < 0) {
            status = 400;
        }
        tr = &own_tr;
        pod_ref = json_object_get(doc, "pod");
    } else if (dd_csi_create_volume_decode(doc, &cv, err, sizeof(err)) < 0) {
        status = 400;
    } else {
        ns = dd_csi_parameter(cv.parameters, DD_CSI_PARAM_PVC_NAMESPACE);
        claim = dd_csi_parameter(cv.parameters, DD_CSI_PARAM_PVC_NAME);
        tr = &cv.accessibility;
        if (!claim || !claim[0] || !ns || !ns[0]) {
            status = 400;
            snprintf(err, sizeof(err),
                     "parameters: %s and %s missing (external-provisioner "
                     "--extra-create-metadata passes them)",
                     DD_CSI_PARAM_PVC_NAME, DD_CSI_PARAM_PVC_NAMESPACE);
        } else if (!cv.has_accessibility) {
            status = 400;
            snprintf(err, sizeof(err), "accessibilityRequirements: missing");
        }
    }
    if (!status && tr->n_requisite == 0 && tr->n_preferred == 0) {
        status = 400;
        snprintf(err, sizeof(err), "accessibilityRequirements: no requisite or preferred entry");
    }
    if (!status && !kube) {
        status = 503;
        snprintf(err, sizeof(err),
                 "no Kubernetes cache (kubernetes: %s): the PVC and its pod cannot be found",
                 dd_placer_kube_source(a->placer));
    }
    if (!status && dd_kube_pvc_lookup(kube, ns, claim, &pvc) < 0) {
        status = 404;
        snprintf(err, sizeof(err), "pvc %.200s/%.200s is not in the Kubernetes cache", ns, claim);
    }
    if (!status) {
        pod = dd_calloc(1, sizeof(*pod));
        if (!pod)
            goto oom;
        if ((r = find_pod(kube, pod_ref, ns, claim, &pvc, pod, &how, err, sizeof(err))) < 0)
            status = r == -ENOENT ? 404 : 400;
    }
    if (!status && dd_placer_begin(a->placer, NULL, pod, dd_wall_ms(), &q, err, sizeof(err)) < 0)
        status = 400;
    if (status) {
        dd_free(pod);
        dd_csi_create_volume_release(&cv);
        dd_csi_topology_req_release(&own_tr);
        json_decref(doc);
        return bad(a, V_PREFERRED, resp, status, err);
    }
    begun = true;

    /* the entries and the nodes each matches */
    src = dd_csi_entries_source(tr);
    if (dd_csi_entries(tr, &idx, &pref, &n) < 0)
        goto oom;
    segs = dd_calloc(n ? n : 1, sizeof(*segs));
    ranks = dd_calloc(n ? n : 1, sizeof(*ranks));
    best = dd_calloc(n ? n : 1, sizeof(*best));
    if (!segs || !ranks || !best)
        goto oom;
    for (size_t i = 0; i < n; i++)
        segs[i] = src[idx[i]];
    if (match_all(kube, q.snap, segs, n, pvc.selected_node, &mx) < 0)
        goto oom;

    /* score every reporting node some entry matches, once */
    node_slot = dd_calloc(q.snap->n ? q.snap->n : 1, sizeof(*node_slot));
    names = dd_calloc(mx.n_hits ? mx.n_hits : 1, sizeof(*names));
    if (!node_slot || !names)
        goto oom;
    for (size_t i = 0; i < q.snap->n; i++)
        node_slot[i] = -1;
    for (size_t k = 0; k < mx.n_hits; k++) {
        size_t nd = mx.hits[k].node;
        if (node_slot[nd] < 0) {
            node_slot[nd] = (long)n_names;
            names[n_names++] = q.snap->nodes[nd]->report.node;
        }
    }
    s = dd_calloc(n_names ? n_names : 1, sizeof(*s));
    if (!s)
        goto oom;
    if (dd_placer_score(&q, names, n_names, DD_SCORE_PRIORITIZE, false, s, err, sizeof(err)) < 0) {
        dd_log_warning("csi preferred: the cost model failed (%s): neutral scores", err);
        for (size_t i = 0; i < n_names; i++)
            s[i] = (struct dd_node_score){.node = names[i],
                                          .verdict = DD_VERDICT_NEUTRAL,
                                          .score = q.opts.neutral_score,
                                          .slowdown_percent = NAN};
        snprintf(s[0].reason, sizeof(s[0].reason), "the cost model failed: neutral");
    }

    /* each entry's best node, its class */
    for (size_t e = 0; e < n; e++) {
        struct dd_csi_rank *rk = &ranks[e];
        best[e] = -1;
        for (; h < mx.n_hits && mx.hits[h].entry == e; h++) {
            long sl = node_slot[mx.hits[h].node];
            if (best[e] < 0 || better(&s[sl], &s[best[e]]))
                best[e] = sl;
        }
        rk->entry = e;
        rk->preferred_pos = pref[e];
        rk->slowdown_percent = NAN;
        if (best[e] >= 0) {
            rk->cls =
                s[best[e]].verdict == DD_VERDICT_UNRESOLVABLE ? DD_CSI_FILTERED : DD_CSI_SCORED;
            rk->score = s[best[e]].score;
            rk->slowdown_percent = s[best[e]].slowdown_percent;
        } else {
            rk->cls = mx.matched[e] ? DD_CSI_NOT_REPORTING : DD_CSI_NO_NODE;
        }
        /* the selected node's segment: the first the CO prefers */
        if (mx.selected_match[e] &&
            (pinned < 0 || (unsigned long)pref[e] < (unsigned long)pref[pinned]))
            pinned = (long)e;
    }
    if (pinned >= 0)
        ranks[pinned].pinned = true;
    dd_csi_order(ranks, n);

    list = json_array();
    now = q.now_ms;
    for (size_t i = 0; i < n; i++) {
        const struct dd_csi_rank *rk = &ranks[i];
        size_t e = rk->entry;
        json_t *o = dd_csi_segment_to_json(&segs[e]);
        char reason[640];
        json_t *age = json_null(), *node = json_null();
        const char *pre =
            rk->pinned ? "selected node (" DD_KUBE_ANN_SELECTED_NODE "): kept first; " : "";
        if (best[e] >= 0) {
            const struct dd_node_score *b = &s[best[e]];
            const struct dd_cluster_node *cn = dd_cluster_find(q.snap, b->node);
            if (cn)
                age = json_real(round(dd_cluster_node_age_s(cn, now) * 1000) / 1000);
            node = json_string(b->node);
            if (b->verdict == DD_VERDICT_OK)
                snprintf(reason, sizeof(reason),
                         "%sbest of %zu matching node(s): %s, predicted I/O slowdown %.1f %%", pre,
                         mx.matched[e], b->node, b->slowdown_percent);
            else if (b->verdict == DD_VERDICT_NEUTRAL)
                snprintf(reason, sizeof(reason), "%sbest of %zu matching node(s): %s, neutral: %s",
                         pre, mx.matched[e], b->node, b->reason[0] ? b->reason : "no prediction");
            else
                snprintf(reason, sizeof(reason),
                         "%severy reporting node of the segment fails a hard fact; %s: %s", pre,
                         b->node, b->reason);
        } else if (rk->cls == DD_CSI_NOT_REPORTING) {
            snprintf(reason, sizeof(reason),
                     "%s%zu node(s) match the segment, none reports to dedupd", pre, mx.matched[e]);
        } else {
            snprintf(reason, sizeof(reason),
                     "%sno node's labels (or dedupd keys) match the segment", pre);
        }
        json_object_set_new(o, "score", json_integer(rk->cls == DD_CSI_SCORED ? rk->score : 0));
        json_object_set_new(o, "reason", json_string(reason));
        json_object_set_new(o, "report_age_seconds", age);
        json_object_set_new(o, "node", node);
        json_object_set_new(o, "matching_nodes", json_integer((json_int_t)mx.matched[e]));
        json_object_set_new(o, "class", json_string(dd_csi_class_names[rk->cls]));
        json_array_append_new(list, o);
    }
    out = json_pack("{s:o, s:{s:s, s:s, s:s, s:s}, s:s}", "preferred", list, "pvc", "namespace", ns,
                    "name", claim, "selected_node", pvc.selected_node, "pod", pod->name,
                    "pod_source", how);
    dd_node_scores_release(s, n_names);
    dd_free(s);
    dd_free(names);
    dd_free(node_slot);
    match_release(&mx);
    dd_free(best);
    dd_free(ranks);
    dd_free(segs);
    dd_free(idx);
    dd_free(pref);
    dd_placer_end(&q);
    dd_free(pod);
    dd_csi_create_volume_release(&cv);
    dd_csi_topology_req_release(&own_tr);
    json_decref(doc);
    count(a, V_PREFERRED, O_OK);
    return dd_http_reply_json(resp, 200, out);
oom:
    dd_free(s);
    dd_free(names);
    dd_free(node_slot);
    match_release(&mx);
    dd_free(best);
    dd_free(ranks);
    dd_free(segs);
    dd_free(idx);
    dd_free(pref);
    if (begun)
        dd_placer_end(&q);
    dd_free(pod);
    dd_csi_create_volume_release(&cv);
    dd_csi_topology_req_release(&own_tr);
    json_decref(doc);
    count(a, V_PREFERRED, O_ERROR);
    return -ENOMEM;
}

/* ---- /v1/csi/capacity ---- */

static bool truthy(const char *v)
{
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* A segment's map alone ({} for none). */
static json_t *segments_of(const struct dd_csi_segment *seg)
{
    json_t *t, *m;
    if (!seg)
        return json_object();
    t = dd_csi_segment_to_json(seg);
    m = json_incref(json_object_get(t, "segments"));
    json_decref(t);
    return m ? m : json_object();
}

/* The options now (--max-physical-use changes on SIGHUP). */
static void current_options(struct dd_csi_api *a, struct dd_csi_capacity_options *o)
{
    uint64_t bits = __atomic_load_n(&a->max_use_bits, __ATOMIC_RELAXED);
    *o = a->copts;
    memcpy(&o->max_physical_use, &bits, sizeof(bits));
}

/* The capacity rule on one volume of the class's pool: the one place both
 * GET /v1/csi/capacity and the CSIStorageCapacity publisher use. */
static void volume_capacity(const struct dd_csi_capacity_options *o,
                            const struct dd_ledger_view *view, const struct dd_report *rp,
                            const struct dd_report_volume *v, const struct dd_kube_class *cls,
                            double estimate, struct dd_csi_volume_space *sp,
                            struct dd_csi_capacity *c, double *red, const char **src, char *note,
                            size_t notelen)
{
    const struct dd_ledger_sum *ls = dd_ledger_view_find(view, rp->node, cls->pool);
    *sp = (struct dd_csi_volume_space){
        .physical_bytes = v->physical_bytes,
        .physical_free_bytes = v->physical_free_bytes,
        .logical_free_bytes = v->logical_free_bytes,
        .reserved_bytes = ls ? ls->reserve_bytes : 0,
        .observed_reduction = v->features.v[DD_F_DEDUP_RATIO],
        .read_only = strcmp(v->mode, "read-only") == 0,
    };
    *red = dd_csi_reduction_with_estimate(o, cls->expected_reduction, estimate,
                                          sp->observed_reduction, src, note, notelen);
    dd_csi_capacity(o, sp, *red, c);
}

/* Does c answer for the segment rather than the best so far? */
static bool capacity_better(const struct dd_csi_capacity *c, const struct dd_csi_capacity *best,
                            bool have_best)
{
    return !have_best || c->available > best->available ||
           (c->available == best->available && c->maximum > best->maximum);
}

/* The capacity of class on the nodes seg matches (seg NULL: every node). */
static int capacity(struct dd_csi_api *a, const struct dd_kube_class *cls,
                    const struct dd_csi_segment *seg, bool explain, struct dd_http_response *resp)
{
    struct dd_kube *kube = dd_placer_kube(a->placer);
    struct dd_cluster_snapshot *snap = NULL;
    struct dd_ledger_view view = {0};
    struct dd_csi_segment all = {0};
    struct match mx = {0};
    struct dd_csi_capacity best = {0}, c;
    struct dd_csi_capacity_options o;
    const char *best_node = NULL, *best_vol = NULL, *best_src = "none";
    double best_red = 1;
    char note[160] = "", best_note[160] = "";
    uint64_t now = dd_wall_ms();
    size_t considered = 0;

    char est_note[200];
    current_options(a, &o);
    double estimate = class_estimate(a, cls, est_note, sizeof(est_note));
    snap = dd_placer_snapshot(a->placer);
    if (!snap || dd_ledger_view(dd_placer_ledger(a->placer), NULL, now, &view) < 0 ||
        match_all(kube, snap, seg ? seg : &all, 1, NULL, &mx) < 0) {
        match_release(&mx);
        dd_ledger_view_release(&view);
        dd_cluster_snapshot_free(snap);
        count(a, V_CAPACITY, O_ERROR);
        return -ENOMEM;
    }
    json_t *nodes = explain ? json_array() : NULL;
    for (size_t k = 0; k < mx.n_hits; k++) {
        const struct dd_cluster_node *cn = snap->nodes[mx.hits[k].node];
        const struct dd_report *rp = &cn->report;
        for (size_t i = 0; i < rp->n_volumes; i++) {
            const struct dd_report_volume *v = &rp->volumes[i];
            struct dd_csi_volume_space sp;
            const char *src;
            double red;
            if (strcmp(v->pool, cls->pool) != 0)
                continue;
            volume_capacity(&o, &view, rp, v, cls, estimate, &sp, &c, &red, &src, note,
                            sizeof(note));
            considered++;
            if (nodes && json_array_size(nodes) < 100)
                json_array_append_new(
                    nodes, json_pack("{s:s, s:s, s:I, s:I, s:f, s:s, s:b, s:I, s:I, s:I, s:b}",
                                     "node", rp->node, "volume", v->name, "available_bytes",
                                     (json_int_t)c.available, "maximum_volume_bytes",
                                     (json_int_t)c.maximum, "reduction", red, "reduction_source",
                                     src, "stale", dd_cluster_node_stale(&snap->opts, cn, now),
                                     "physical_free_bytes", (json_int_t)v->physical_free_bytes,
                                     "reserved_bytes", (json_int_t)sp.reserved_bytes,
                                     "logical_free_bytes", (json_int_t)v->logical_free_bytes,
                                     "logical_capped", c.logical_capped));
            if (capacity_better(&c, &best, best_node != NULL)) {
                best = c;
                best_node = rp->node;
                best_vol = v->name;
                best_red = red;
                best_src = src;
                snprintf(best_note, sizeof(best_note), "%s", note);
            }
        }
    }
    struct dd_csi_capacity_response cr = {best.available, true, true, best.maximum, 0};
    json_t *out = dd_csi_capacity_response_to_json(&cr);
    if (explain) {
        json_t *ex = json_pack(
            "{s:s, s:s, s:o, s:I, s:I, s:o, s:o, s:f, s:s, s:f, s:f, s:o}", "storage_class",
            cls->name, "pool", cls->pool, "segment", segments_of(seg), "matching_nodes",
            (json_int_t)mx.matched[0], "pool_volumes", (json_int_t)considered, "best_node",
            best_node ? json_string(best_node) : json_null(), "best_volume",
            best_vol ? json_string(best_vol) : json_null(), "reduction", best_red,
            "reduction_source", best_src, "safety_margin", o.safety_margin, "max_physical_use",
            o.max_physical_use, "volumes", nodes);
        if (best_note[0])
            json_object_set_new(ex, "note", json_string(best_note));
        if (est_note[0])
            json_object_set_new(ex, "estimate_note", json_string(est_note));
        if (cls->estimate[0])
            json_object_set_new(ex, "estimate", json_string(cls->estimate));
        out = json_pack("{s:o, s:o}", "response", out, "explanation", ex);
    }
    match_release(&mx);
    dd_ledger_view_release(&view);
    dd_cluster_snapshot_free(snap);
    count(a, V_CAPACITY, O_OK);
    return dd_http_reply_json(resp, 200, out);
}

static int class_check(struct dd_csi_api *a, const struct dd_kube_class *cls,
                       struct dd_http_response *resp)
{
    char err[400];
    if (cls->pool[0])
        return 1;
    snprintf(err, sizeof(err), "storage_class: %.200s has no %s annotation (not a dedupd class)",
             cls->name, DD_KUBE_ANN_POOL);
    bad(a, V_CAPACITY, resp, 400, err);
    return 0;
}

static int h_capacity_get(void *ctx, const struct dd_http_request *req,
                          struct dd_http_response *resp)
{
    struct dd_csi_api *a = ctx;
    struct dd_kube *kube = dd_placer_kube(a->placer);
    const char *sc = dd_http_query(req, "storage_class"), *vals[DD_CSI_MAX_SEGMENT_KEYS];
    size_t nv = dd_http_query_all(req, "segment", vals, DD_CSI_MAX_SEGMENT_KEYS);
    struct dd_csi_pair kv[DD_CSI_MAX_SEGMENT_KEYS];
    char keys[DD_CSI_MAX_SEGMENT_KEYS][DD_CSI_MAX_KEY];
    struct dd_csi_segment seg = {0, kv};
    struct dd_kube_class cls;
    char err[400];

    if (!sc || !sc[0])
        return bad(a, V_CAPACITY, resp, 400, "storage_class: missing");
    if (nv > DD_CSI_MAX_SEGMENT_KEYS)
        return bad(a, V_CAPACITY, resp, 400, "segment: too many");
    for (size_t i = 0; i < nv; i++) {
        const char *eq = strchr(vals[i], '=');
        size_t kl = eq ? (size_t)(eq - vals[i]) : 0;
        if (!eq || kl == 0 || kl >= DD_CSI_MAX_KEY || strlen(eq + 1) >= DD_CSI_MAX_VALUE) {
            snprintf(err, sizeof(err), "segment[%zu]: expected KEY=VALUE (percent-encoded)", i);
            return bad(a, V_CAPACITY, resp, 400, err);
        }
        memcpy(keys[i], vals[i], kl);
        keys[i][kl] = '\0';
        for (size_t j = 0; j < seg.n; j++) {
            if (strcmp(kv[j].key, keys[i]) == 0) {
                snprintf(err, sizeof(err), "segment[%zu]: key %.200s given twice", i, keys[i]);
                return bad(a, V_CAPACITY, resp, 400, err);
            }
        }
        kv[seg.n++] = (struct dd_csi_pair){keys[i], eq + 1};
    }
    /* sorted by key, as decoded segments are */
    for (size_t i = 1; i < seg.n; i++)
        for (size_t j = i; j > 0 && strcmp(kv[j - 1].key, kv[j].key) > 0; j--) {
            struct dd_csi_pair t = kv[j];
            kv[j] = kv[j - 1];
            kv[j - 1] = t;
        }
    if (!kube) {
        snprintf(err, sizeof(err), "storage_class: no Kubernetes cache (kubernetes: %s)",
                 dd_placer_kube_source(a->placer));
        return bad(a, V_CAPACITY, resp, 503, err);
    }
    if (dd_kube_class_lookup(kube, sc, &cls) < 0) {
        snprintf(err, sizeof(err), "storage_class: %.200s is not in the Kubernetes cache", sc);
        return bad(a, V_CAPACITY, resp, 404, err);
    }
    if (!class_check(a, &cls, resp))
        return 0;
    return capacity(a, &cls, &seg, truthy(dd_http_query(req, "explain")), resp);
}

static int h_capacity_post(void *ctx, const struct dd_http_request *req,
                           struct dd_http_response *resp)
{
    struct dd_csi_api *a = ctx;
    struct dd_kube *kube = dd_placer_kube(a->placer);
    json_t *doc = dd_http_body_json(req, resp);
    struct dd_csi_get_capacity g;
    struct dd_kube_class cls;
    char err[512];
    int r;

    if (!doc)
        return count(a, V_CAPACITY, O_BAD_REQUEST);
    if (dd_csi_get_capacity_decode(doc, &g, err, sizeof(err)) < 0) {
        json_decref(doc);
        return bad(a, V_CAPACITY, resp, 400, err);
    }
    if (!kube) {
        snprintf(err, sizeof(err), "parameters: no Kubernetes cache to find the class (%s)",
                 dd_placer_kube_source(a->placer));
        r = bad(a, V_CAPACITY, resp, 503, err);
    } else {
        json_t *empty = json_object();
        if (dd_kube_class_by_parameters(kube, g.parameters ? g.parameters : empty, &cls, NULL) < 0)
            r = bad(a, V_CAPACITY, resp, 404,
                    "parameters: no StorageClass in the Kubernetes cache has these parameters");
        else if (!class_check(a, &cls, resp))
            r = 0;
        else
            r = capacity(a, &cls, g.has_topology ? &g.topology : NULL,
                         truthy(dd_http_query(req, "explain")), resp);
        json_decref(empty);
    }
    dd_csi_get_capacity_release(&g);
    json_decref(doc);
    return r;
}

/* ---- GET /v1/csi/topology ---- */

static int h_topology(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_csi_api *a = ctx;
    struct dd_kube *kube = dd_placer_kube(a->placer);
    const char *node = dd_http_query(req, "node");
    struct dd_cluster_snapshot *snap;
    const char *pools[DD_MAX_VOLUMES_PER_NODE];
    size_t np = 0;
    char err[400];

    if (!node || !node[0])
        return bad(a, V_TOPOLOGY, resp, 400, "node: missing");
    if (!dd_report_node_name_ok(node))
        return bad(a, V_TOPOLOGY, resp, 400, "node: not a Kubernetes node name");
    snap = dd_placer_snapshot(a->placer);
    if (!snap)
        return -ENOMEM;
    const struct dd_cluster_node *cn = dd_cluster_find(snap, node);
    if (!cn && !(kube && dd_kube_node_known(kube, node))) {
        dd_cluster_snapshot_free(snap);
        snprintf(err, sizeof(err), "node: %.200s neither reports to dedupd nor is a cached Node",
                 node);
        return bad(a, V_TOPOLOGY, resp, 404, err);
    }
    for (size_t i = 0; cn && i < cn->report.n_volumes && i < DD_MAX_VOLUMES_PER_NODE; i++) {
        bool dup = false;
        for (size_t j = 0; j < np && !dup; j++)
            dup = strcmp(pools[j], cn->report.volumes[i].pool) == 0;
        if (!dup)
            pools[np++] = cn->report.volumes[i].pool;
    }
    json_t *segs = dd_csi_node_segments(node, pools, np);
    json_t *out =
        json_pack("{s:s, s:{s:o}}", "nodeId", node, "accessibleTopology", "segments", segs);
    dd_cluster_snapshot_free(snap);
    count(a, V_TOPOLOGY, O_OK);
    return dd_http_reply_json(resp, 200, out);
}

/* ---- the CSIStorageCapacity publisher's figures ---- */

struct classes {
    struct dd_kube_class *c;
    size_t n, cap;
    bool oom;
};

static void on_class(void *ctx, const struct dd_kube_class *cls)
{
    struct classes *x = ctx;
    if (x->n == x->cap && DD_ARRAY_RESERVE(x->c, x->cap, x->n + 1) < 0) {
        x->oom = true;
        return;
    }
    x->c[x->n++] = *cls;
}

int dd_csi_api_node_capacities(struct dd_csi_api *a, dd_csi_node_capacity_fn fn, void *ctx)
{
    struct dd_kube *kube = dd_placer_kube(a->placer);
    struct dd_cluster_snapshot *snap;
    struct dd_ledger_view view = {0};
    struct classes cl = {0};
    struct dd_csi_capacity_options o;
    int calls = 0;

    if (!kube)
        return -ENODATA;
    current_options(a, &o);
    dd_kube_foreach_class(kube, on_class, &cl);
    snap = dd_placer_snapshot(a->placer);
    if (cl.oom || !snap ||
        dd_ledger_view(dd_placer_ledger(a->placer), NULL, dd_wall_ms(), &view) < 0) {
        dd_free(cl.c);
        dd_cluster_snapshot_free(snap);
        return -ENOMEM;
    }
    /* per node and class: the best volume of the pool, as capacity() picks
     * among the volumes a node segment matches */
    double *est = dd_calloc(cl.n ? cl.n : 1, sizeof(*est));
    if (!est) {
        dd_ledger_view_release(&view);
        dd_cluster_snapshot_free(snap);
        dd_free(cl.c);
        return -ENOMEM;
    }
    for (size_t j = 0; j < cl.n; j++)
        est[j] = class_estimate(a, &cl.c[j], NULL, 0);
    for (size_t k = 0; k < snap->n; k++) {
        const struct dd_report *rp = &snap->nodes[k]->report;
        for (size_t j = 0; j < cl.n; j++) {
            struct dd_csi_capacity best = {0}, c;
            bool have = false;
            for (size_t i = 0; i < rp->n_volumes; i++) {
                struct dd_csi_volume_space sp;
                const char *src;
                double red;
                if (strcmp(rp->volumes[i].pool, cl.c[j].pool) != 0)
                    continue;
                volume_capacity(&o, &view, rp, &rp->volumes[i], &cl.c[j], est[j], &sp, &c, &red,
                                &src, NULL, 0);
                if (capacity_better(&c, &best, have))
                    best = c;
                have = true;
            }
            if (have) {
                fn(ctx, rp->node, &cl.c[j], best.available, best.maximum);
                calls++;
            }
        }
    }
    dd_free(est);
    dd_ledger_view_release(&view);
    dd_cluster_snapshot_free(snap);
    dd_free(cl.c);
    return calls;
}

size_t dd_api_csi_routes(struct dd_csi_api *a, const char *role, struct dd_http_route *out)
{
    const struct dd_http_route templ[] = {
        {"POST", "/v1/csi/preferred", h_preferred, NULL, false, NULL, DD_CSI_MAX_BODY},
        {"GET", "/v1/csi/capacity", h_capacity_get, NULL, false, NULL, 0},
        {"POST", "/v1/csi/capacity", h_capacity_post, NULL, false, NULL, DD_CSI_MAX_BODY},
        {"GET", "/v1/csi/topology", h_topology, NULL, false, NULL, 0},
    };
    return dd_api_fill_routes(templ, DD_ARRAY_SIZE(templ), a, role, out);
}

void dd_csi_api_metrics(struct dd_csi_api *a, FILE *m)
{
    fputs("# HELP dedupd_csi_requests_total CSI-adjacent topology requests by verb and "
          "outcome.\n# TYPE dedupd_csi_requests_total counter\n",
          m);
    for (int v = 0; v < V_COUNT; v++)
        for (int o = 0; o < O_COUNT; o++)
            fprintf(m, "dedupd_csi_requests_total{verb=\"%s\",outcome=\"%s\"} %llu\n",
                    verb_names[v], outcome_names[o],
                    (unsigned long long)__atomic_load_n(&a->requests[v][o], __ATOMIC_RELAXED));
}
