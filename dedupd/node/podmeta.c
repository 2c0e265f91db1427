/*
 * Pod metadata and the outcome body (podmeta.h). Every field read is
 * checked for its type; what a pod may legally omit reads as unknown, a
 * field of the wrong type or an unparsable quantity or time refuses the
 * pod with the field named. Sums saturate instead of wrapping.
 */
#include "dedupd/node/podmeta.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/microtime.h"
#include "placement/kube.h"

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

/* An optional string member into buf: absent or null is "", another type
 * or one too long refuses. */
static int get_str(const json_t *obj, const char *key, const char *where, char *buf, size_t len,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    char q[64];

    buf[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s%s: expected a string", where, key);
    if (json_string_length(v) >= len || strlen(json_string_value(v)) != json_string_length(v)) {
        dd_quote(q, sizeof(q), json_string_value(v), json_string_length(v), 40);
        return dd_fail(err, errlen, DD_E_PARSE, "%s%s: '%s' too long or not a name", where, key, q);
    }
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* An optional object or array member: NULL when absent or null. */
static int get_typed(const json_t *obj, const char *key, const char *where, bool array,
                     const json_t **ret, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);

    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (array ? !json_is_array(v) : !json_is_object(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s%s: expected %s", where, key,
                       array ? "an array" : "an object");
    if (array && json_array_size(v) > DD_POD_META_MAX_CONTAINERS)
        return dd_fail(err, errlen, DD_E_TOOBIG, "%s%s: more than %u entries", where, key,
                       DD_POD_META_MAX_CONTAINERS);
    *ret = v;
    return 0;
}

/* An RFC 3339 time member into Unix seconds; NaN when absent. */
static int get_time(const json_t *obj, const char *key, const char *where, double *ret, char *err,
                    size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    int64_t us;
    char q[64];

    *ret = (double)NAN;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s%s: expected an RFC 3339 time string", where,
                       key);
    if (dd_microtime_parse(json_string_value(v), json_string_length(v), &us) < 0) {
        dd_quote(q, sizeof(q), json_string_value(v), json_string_length(v), 40);
        return dd_fail(err, errlen, DD_E_PARSE, "%s%s: '%s' is not an RFC 3339 time", where, key,
                       q);
    }
    *ret = (double)us / 1e6;
    return 0;
}

/* jansson's iteration and copies take a non-const value; reading does not
 * change it */
static json_t *unconst(const json_t *o)
{
    json_t *r;
    memcpy(&r, &o, sizeof(r));
    return r;
}

/* ---- owner ---- */

static bool hash_char(char c)
{
    /* k8s.io/apimachinery rand.SafeEncodeString's alphabet */
    return c && strchr("bcdfghjklmnpqrstvwxz2456789", c) != NULL;
}

bool dd_pod_owner_deployment(const char *rs_name, const char *hash, char *ret, size_t len)
{
    const char *dash;
    size_t hl, nl;

    if (!rs_name || !ret || !len || !(dash = strrchr(rs_name, '-')) || dash == rs_name)
        return false;
    hl = strlen(dash + 1);
    if (hash && hash[0]) {
        if (strcmp(dash + 1, hash) != 0)
            return false;
    } else {
        if (hl < 6 || hl > 10)
            return false;
        for (size_t i = 0; i < hl; i++) {
            if (!hash_char(dash[1 + i]))
                return false;
        }
    }
    nl = (size_t)(dash - rs_name);
    if (nl >= len)
        return false;
    memcpy(ret, rs_name, nl);
    ret[nl] = '\0';
    return true;
}

static int read_owner(const json_t *md, const json_t *labels, struct dd_pod_meta *m, char *err,
                      size_t errlen)
{
    const json_t *refs, *ref;
    char kind[64], name[DD_NAME_MAX], where[64], hash[128] = "";
    size_t i;
    int r;

    if ((r = get_typed(md, "ownerReferences", "metadata.", true, &refs, err, errlen)) < 0)
        return r;
    if (labels && (r = get_str(labels, "pod-template-hash", "metadata.labels.", hash, sizeof(hash),
                               err, errlen)) < 0)
        return r;
    json_array_foreach(refs, i, ref)
    {
        const json_t *ctl;
        snprintf(where, sizeof(where), "metadata.ownerReferences[%zu].", i);
        if (!json_is_object(ref))
            return dd_fail(err, errlen, DD_E_PARSE,
                           "metadata.ownerReferences[%zu]: expected an object", i);
        ctl = json_object_get(ref, "controller");
        if (ctl && !json_is_boolean(ctl) && !json_is_null(ctl))
            return dd_fail(err, errlen, DD_E_PARSE, "%scontroller: expected a boolean", where);
        if (!json_is_true(ctl))
            continue;
        if ((r = get_str(ref, "kind", where, kind, sizeof(kind), err, errlen)) < 0 ||
            (r = get_str(ref, "name", where, name, sizeof(name), err, errlen)) < 0)
            return r;
        if (strcmp(kind, "ReplicaSet") == 0 &&
            dd_pod_owner_deployment(name, hash, m->owner_name, sizeof(m->owner_name))) {
            snprintf(m->owner_kind, sizeof(m->owner_kind), "Deployment");
        } else {
            snprintf(m->owner_kind, sizeof(m->owner_kind), "%s", kind);
            snprintf(m->owner_name, sizeof(m->owner_name), "%s", name);
        }
        return 0;
    }
    return 0;
}

/* ---- requests and limits ---- */

struct res {
    char name[DD_NAME_MAX];
    uint64_t sum_req, max_init_req; /* cpu in millicores, others in units */
    uint64_t sum_lim, max_init_lim;
    unsigned n_lim; /* regular containers and sidecars with a limit */
};

struct resources {
    struct res r[DD_POD_META_MAX_RESOURCES];
    size_t n;
    unsigned n_main; /* regular containers and sidecars */
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static int add_quantities(struct resources *rs, const json_t *list, bool limits, bool main,
                          const char *where, char *err, size_t errlen)
{
    const char *key;
    const json_t *v;

    json_object_foreach(unconst(list), key, v)
    {
        uint64_t q;
        size_t i;
        int r;
        char qs[64];
        bool cpu = strcmp(key, "cpu") == 0;

        if (json_is_integer(v) && json_integer_value(v) >= 0) {
            snprintf(qs, sizeof(qs), "%lld", (long long)json_integer_value(v));
        } else if (json_is_string(v) && json_string_length(v) < sizeof(qs)) {
            snprintf(qs, sizeof(qs), "%s", json_string_value(v));
        } else {
            return dd_fail(err, errlen, DD_E_PARSE, "%s[%.100s]: expected a quantity string", where,
                           key);
        }
        r = cpu ? dd_kube_quantity_milli(qs, &q) : dd_kube_quantity(qs, &q);
        if (r < 0) {
            char qq[64];
            dd_quote(qq, sizeof(qq), qs, strlen(qs), 40);
            return dd_fail(err, errlen, r, "%s[%.100s]: bad quantity '%s'", where, key, qq);
        }
        for (i = 0; i < rs->n; i++) {
            if (strcmp(rs->r[i].name, key) == 0)
                break;
        }
        if (i == rs->n) {
            if (rs->n == DD_POD_META_MAX_RESOURCES)
                return dd_fail(err, errlen, DD_E_TOOBIG, "%s: more than %u resource names", where,
                               DD_POD_META_MAX_RESOURCES);
            if (strlen(key) >= sizeof(rs->r[0].name))
                return dd_fail(err, errlen, DD_E_PARSE, "%s: a resource name too long", where);
            memset(&rs->r[i], 0, sizeof(rs->r[i]));
            snprintf(rs->r[i].name, sizeof(rs->r[i].name), "%s", key);
            rs->n++;
        }
        struct res *e = &rs->r[i];
        if (limits && main) {
            e->sum_lim = sat_add(e->sum_lim, q);
            e->n_lim++;
        } else if (limits) {
            e->max_init_lim = DD_MAX(e->max_init_lim, q);
        } else if (main) {
            e->sum_req = sat_add(e->sum_req, q);
        } else {
            e->max_init_req = DD_MAX(e->max_init_req, q);
        }
    }
    return 0;
}

static int read_containers(struct resources *rs, const json_t *spec, const char *key, bool init,
                           char *err, size_t errlen)
{
    const json_t *list, *c;
    size_t i;
    int r;

    if ((r = get_typed(spec, key, "spec.", true, &list, err, errlen)) < 0)
        return r;
    json_array_foreach(list, i, c)
    {
        const json_t *res, *req, *lim;
        char where[128], policy[32];
        bool main = !init;

        if (!json_is_object(c))
            return dd_fail(err, errlen, DD_E_PARSE, "spec.%s[%zu]: expected an object", key, i);
        snprintf(where, sizeof(where), "spec.%s[%zu].", key, i);
        if (init) {
            if ((r = get_str(c, "restartPolicy", where, policy, sizeof(policy), err, errlen)) < 0)
                return r;
            main = strcmp(policy, "Always") == 0; /* a sidecar runs alongside */
        }
        if (main)
            rs->n_main++;
        snprintf(where, sizeof(where), "spec.%s[%zu].", key, i);
        if ((r = get_typed(c, "resources", where, false, &res, err, errlen)) < 0)
            return r;
        if (!res)
            continue;
        snprintf(where, sizeof(where), "spec.%s[%zu].resources.", key, i);
        if ((r = get_typed(res, "requests", where, false, &req, err, errlen)) < 0 ||
            (r = get_typed(res, "limits", where, false, &lim, err, errlen)) < 0)
            return r;
        snprintf(where, sizeof(where), "spec.%s[%zu].resources.requests", key, i);
        if (req && (r = add_quantities(rs, req, false, main, where, err, errlen)) < 0)
            return r;
        snprintf(where, sizeof(where), "spec.%s[%zu].resources.limits", key, i);
        if (lim && (r = add_quantities(rs, lim, true, main, where, err, errlen)) < 0)
            return r;
    }
    return 0;
}

static json_t *quantity(const char *name, uint64_t v)
{
    char buf[32];
    if (strcmp(name, "cpu") == 0 && v % 1000u != 0)
        snprintf(buf, sizeof(buf), "%llum", (unsigned long long)v);
    else if (strcmp(name, "cpu") == 0)
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)(v / 1000u));
    else
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return json_string(buf);
}

static int read_resources(const json_t *spec, struct dd_pod_meta *m, char *err, size_t errlen)
{
    struct resources *rs = dd_calloc(1, sizeof(*rs));
    int r;

    if (!rs)
        return -ENOMEM;
    if ((r = read_containers(rs, spec, "containers", false, err, errlen)) < 0 ||
        (r = read_containers(rs, spec, "initContainers", true, err, errlen)) < 0)
        goto out;
    m->requests = json_object();
    m->limits = json_object();
    if (!m->requests || !m->limits) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < rs->n; i++) {
        const struct res *e = &rs->r[i];
        uint64_t req = DD_MAX(e->sum_req, e->max_init_req);
        if (req > 0 && json_object_set_new(m->requests, e->name, quantity(e->name, req)) < 0) {
            r = -ENOMEM;
            goto out;
        }
        if (rs->n_main > 0 && e->n_lim == rs->n_main &&
            json_object_set_new(m->limits, e->name,
                                quantity(e->name, DD_MAX(e->sum_lim, e->max_init_lim))) < 0) {
            r = -ENOMEM;
            goto out;
        }
    }
    r = 0;
out:
    dd_free(rs);
    return r;
}

/* ---- termination ---- */

enum { RANK_NONE, RANK_COMPLETED, RANK_OTHER, RANK_DEADLINE, RANK_EVICTED, RANK_OOM };

struct term {
    int rank;
    int exit_code;
    char reason[32];
    double finished_at;
};

static int read_terminated(const json_t *t, const char *where, struct term *ret, char *err,
                           size_t errlen)
{
    const json_t *code = json_object_get(t, "exitCode");
    char reason[256]; /* a runtime's reason may be long: kept cut to 31 bytes */
    int r;

    memset(ret, 0, sizeof(*ret));
    ret->exit_code = DD_POD_EXIT_UNKNOWN;
    if (code && !json_is_null(code)) {
        if (!json_is_integer(code) || json_integer_value(code) < INT32_MIN + 1 ||
            json_integer_value(code) > INT32_MAX)
            return dd_fail(err, errlen, DD_E_PARSE, "%sexitCode: expected a 32-bit integer", where);
        ret->exit_code = (int)json_integer_value(code);
    }
    if ((r = get_str(t, "reason", where, reason, sizeof(reason), err, errlen)) < 0 ||
        (r = get_time(t, "finishedAt", where, &ret->finished_at, err, errlen)) < 0)
        return r;
    if (!reason[0])
        snprintf(reason, sizeof(reason), "%s",
                 ret->exit_code == 0                     ? "Completed"
                 : ret->exit_code == DD_POD_EXIT_UNKNOWN ? ""
                                                         : "Error");
    snprintf(ret->reason, sizeof(ret->reason), "%.31s", reason);
    ret->rank = strcmp(reason, "OOMKilled") == 0   ? RANK_OOM
                : strcmp(reason, "Completed") == 0 ? RANK_COMPLETED
                : reason[0]                        ? RANK_OTHER
                                                   : RANK_NONE;
    return 0;
}

/* Is a better than b as the pod's cause? */
static bool better(const struct term *a, const struct term *b)
{
    if (a->rank != b->rank)
        return a->rank > b->rank;
    if ((a->exit_code != 0) != (b->exit_code != 0))
        return a->exit_code != 0 && a->exit_code != DD_POD_EXIT_UNKNOWN;
    return isfinite(a->finished_at) &&
           (!isfinite(b->finished_at) || a->finished_at > b->finished_at);
}

static int read_status(const json_t *st, struct dd_pod_meta *m, char *err, size_t errlen)
{
    const json_t *list, *cs;
    struct term best = {
        .rank = RANK_NONE, .exit_code = DD_POD_EXIT_UNKNOWN, .finished_at = (double)NAN};
    char reason[256];
    size_t i;
    int r;

    if ((r = get_str(st, "phase", "status.", m->phase, sizeof(m->phase), err, errlen)) < 0 ||
        (r = get_str(st, "reason", "status.", reason, sizeof(reason), err, errlen)) < 0 ||
        (r = get_time(st, "startTime", "status.", &m->started_at, err, errlen)) < 0 ||
        (r = get_typed(st, "containerStatuses", "status.", true, &list, err, errlen)) < 0)
        return r;
    m->terminal = strcmp(m->phase, "Succeeded") == 0 || strcmp(m->phase, "Failed") == 0;
    json_array_foreach(list, i, cs)
    {
        static const char *const which[] = {"state", "lastState"};
        char where[96];

        if (!json_is_object(cs))
            return dd_fail(err, errlen, DD_E_PARSE,
                           "status.containerStatuses[%zu]: expected an object", i);
        for (size_t w = 0; w < 2; w++) {
            const json_t *s, *t = NULL;
            struct term cur;
            snprintf(where, sizeof(where), "status.containerStatuses[%zu].", i);
            if ((r = get_typed(cs, which[w], where, false, &s, err, errlen)) < 0)
                return r;
            snprintf(where, sizeof(where), "status.containerStatuses[%zu].%s.", i, which[w]);
            if (s && (r = get_typed(s, "terminated", where, false, &t, err, errlen)) < 0)
                return r;
            if (!t)
                continue;
            snprintf(where, sizeof(where), "status.containerStatuses[%zu].%s.terminated.", i,
                     which[w]);
            if ((r = read_terminated(t, where, &cur, err, errlen)) < 0)
                return r;
            /* the run ended when its last container did (lastState is an
             * earlier run of a restarted one) */
            if (w == 0 && isfinite(cur.finished_at) &&
                (!isfinite(m->finished_at) || cur.finished_at > m->finished_at))
                m->finished_at = cur.finished_at;
            if (better(&cur, &best))
                best = cur;
        }
    }
    /* the pod's own cause, unless a container was OOM killed */
    if (best.rank < RANK_EVICTED &&
        (strcmp(reason, "Evicted") == 0 || strcmp(reason, "DeadlineExceeded") == 0)) {
        snprintf(m->reason, sizeof(m->reason), "%.31s", reason);
        m->exit_code = best.exit_code;
        return 0;
    }
    if (best.rank > RANK_NONE) {
        snprintf(m->reason, sizeof(m->reason), "%s", best.reason);
        m->exit_code = best.exit_code;
    }
    return 0;
}

/* ---- the pod ---- */

void dd_pod_meta_release(struct dd_pod_meta *m)
{
    if (!m)
        return;
    json_decref(m->annotations);
    json_decref(m->requests);
    json_decref(m->limits);
    memset(m, 0, sizeof(*m));
}

int dd_pod_meta_copy(const struct dd_pod_meta *m, struct dd_pod_meta *ret)
{
    struct dd_pod_meta c = *m;

    c.annotations = m->annotations ? json_deep_copy(m->annotations) : NULL;
    c.requests = m->requests ? json_deep_copy(m->requests) : NULL;
    c.limits = m->limits ? json_deep_copy(m->limits) : NULL;
    if ((m->annotations && !c.annotations) || (m->requests && !c.requests) ||
        (m->limits && !c.limits)) {
        dd_pod_meta_release(&c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

static int read_annotations(const json_t *md, struct dd_pod_meta *m, char *err, size_t errlen)
{
    const json_t *ann, *v;
    const char *key;
    int r;

    if ((r = get_typed(md, "annotations", "metadata.", false, &ann, err, errlen)) < 0)
        return r;
    if (!(m->annotations = json_object()))
        return -ENOMEM;
    json_object_foreach(unconst(ann), key, v)
    {
        if (!json_is_string(v))
            return dd_fail(err, errlen, DD_E_PARSE,
                           "metadata.annotations[%.100s]: expected a string", key);
        if (strcmp(key, LAST_APPLIED) == 0)
            continue;
        if (strcmp(key, "kubernetes.io/config.mirror") == 0 &&
            (r = get_str(ann, key, "metadata.annotations.", m->mirror_uid, sizeof(m->mirror_uid),
                         err, errlen)) < 0)
            return r;
        if (json_object_set_new(m->annotations, key, json_copy(unconst(v))) < 0)
            return -ENOMEM;
    }
    return 0;
}

int dd_pod_meta_from_json(const json_t *pod, struct dd_pod_meta *ret, char *err, size_t errlen)
{
    struct dd_pod_meta m;
    const json_t *md, *spec, *st, *labels;
    int r;

    if (!pod || !ret)
        return -EINVAL;
    if (!json_is_object(pod))
        return dd_fail(err, errlen, DD_E_PARSE, "pod: expected an object");
    memset(&m, 0, sizeof(m));
    m.started_at = m.finished_at = (double)NAN;
    m.exit_code = DD_POD_EXIT_UNKNOWN;
    if ((r = get_typed(pod, "metadata", "", false, &md, err, errlen)) < 0 ||
        (r = get_typed(pod, "spec", "", false, &spec, err, errlen)) < 0 ||
        (r = get_typed(pod, "status", "", false, &st, err, errlen)) < 0)
        return r;
    if (!md) {
        r = dd_fail(err, errlen, DD_E_PARSE, "metadata: missing");
        goto fail;
    }
    if ((r = get_str(md, "uid", "metadata.", m.uid, sizeof(m.uid), err, errlen)) < 0 ||
        (r = get_str(md, "namespace", "metadata.", m.ns, sizeof(m.ns), err, errlen)) < 0 ||
        (r = get_str(md, "name", "metadata.", m.name, sizeof(m.name), err, errlen)) < 0 ||
        (r = get_typed(md, "labels", "metadata.", false, &labels, err, errlen)) < 0 ||
        (r = read_owner(md, labels, &m, err, errlen)) < 0 ||
        (r = read_annotations(md, &m, err, errlen)) < 0)
        goto fail;
    if (!m.uid[0]) {
        r = dd_fail(err, errlen, DD_E_PARSE, "metadata.uid: missing");
        goto fail;
    }
    if (spec &&
        ((r = get_str(spec, "nodeName", "spec.", m.node, sizeof(m.node), err, errlen)) < 0 ||
         (r = read_resources(spec, &m, err, errlen)) < 0))
        goto fail;
    if (!m.requests && (!(m.requests = json_object()) || !(m.limits = json_object()))) {
        r = -ENOMEM;
        goto fail;
    }
    if (st && (r = read_status(st, &m, err, errlen)) < 0)
        goto fail;
    *ret = m;
    return 0;
fail:
    dd_pod_meta_release(&m);
    return r;
}

/* ---- the outcome ---- */

static int set_num(json_t *o, const char *key, double v)
{
    return isfinite(v) ? json_object_set_new(o, key, json_real(v)) : 0;
}

json_t *dd_pod_outcome_json(const struct dd_pod_usage *u, const struct dd_pod_meta *m,
                            const char *node, double gpu_memory_bytes)
{
    json_t *o = json_object();
    double started, finished, run, peak;
    bool oom = m && strcmp(m->reason, "OOMKilled") == 0;
    int r = 0;

    if (!o || !u)
        goto fail;
    started = m && isfinite(m->started_at) ? m->started_at : u->first_seen;
    finished = m && isfinite(m->finished_at) ? m->finished_at : u->last_seen;
    if (finished < started)
        finished = started;
    run = finished - started;
    r |= json_object_set_new(o, "pod_uid", json_string(m && m->uid[0] ? m->uid : u->uid));
    r |= json_object_set_new(o, "namespace", json_string(m ? m->ns : ""));
    r |= json_object_set_new(
        o, "owner",
        json_pack("{s:s, s:s}", "kind", m ? m->owner_kind : "", "name", m ? m->owner_name : ""));
    r |= json_object_set_new(o, "annotations",
                             m && m->annotations ? json_deep_copy(m->annotations) : json_object());
    r |= json_object_set_new(o, "requests",
                             m && m->requests ? json_deep_copy(m->requests) : json_object());
    r |= json_object_set_new(o, "limits",
                             m && m->limits ? json_deep_copy(m->limits) : json_object());
    r |= json_object_set_new(o, "node", json_string(node ? node : ""));
    r |= set_num(o, "started_at", started);
    r |= set_num(o, "finished_at", finished);
    r |= set_num(o, "peak_cpu_cores", u->peak_cpu_cores);
    if (u->has_working_set || (oom && u->has_memory_peak)) {
        peak = u->has_working_set ? (double)u->peak_working_set : 0;
        if (oom && u->has_memory_peak && (double)u->memory_peak > peak)
            peak = (double)u->memory_peak;
        r |= set_num(o, "peak_memory_bytes", peak);
    }
    r |= set_num(o, "gpu_memory_bytes", gpu_memory_bytes);
    if (u->has_io && run > 0) {
        r |= set_num(o, "read_mbps", (double)u->read_bytes / 1e6 / run);
        r |= set_num(o, "write_mbps", (double)u->write_bytes / 1e6 / run);
    }
    if (m && m->exit_code != DD_POD_EXIT_UNKNOWN)
        r |= json_object_set_new(o, "exit_code", json_integer(m->exit_code));
    if (m && m->reason[0])
        r |= json_object_set_new(o, "reason", json_string(m->reason));
    if (r)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}
