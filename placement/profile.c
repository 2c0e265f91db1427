/*
 * Pod workload profiles: annotations -> per-claim load on dedupd pools.
 * See profile.h for the rules.
 */
#include "placement/profile.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

void dd_profile_set_init(struct dd_profile_set *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dflt.name, sizeof(s->dflt.name), "default");
    s->dflt.read_mbps = DD_PROFILE_DEFAULT_READ_MBPS;
    s->dflt.write_mbps = DD_PROFILE_DEFAULT_WRITE_MBPS;
    s->dflt.duplicate_share = (double)NAN;
}

const struct dd_profile_def *dd_profile_find(const struct dd_profile_set *s, const char *name)
{
    if (strcmp(name, "default") == 0)
        return &s->dflt;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->defs[i].name, name) == 0)
            return &s->defs[i];
    return NULL;
}

void dd_profile_set_release(struct dd_profile_set *s)
{
    dd_free(s->defs);
    s->defs = NULL;
    s->n = 0;
}

/* o[key] as a number in [lo, hi]; absent: *ret untouched. */
static int def_number(json_t *o, const char *name, const char *key, double lo, double hi,
                      double *ret, char *errbuf, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
        snprintf(errbuf, errlen, "profiles.%s.%s: expected a number %g..%g", name, key, lo, hi);
        return -EINVAL;
    }
    *ret = json_number_value(v);
    return 0;
}

int dd_profile_set_from_json(struct dd_profile_set *s, json_t *o, char *errbuf, size_t errlen)
{
    struct dd_profile_def *defs;
    const char *name;
    json_t *v;
    size_t n = 0;

    if (!json_is_object(o)) {
        snprintf(errbuf, errlen, "profiles: expected an object of named profiles");
        return -EINVAL;
    }
    if (json_object_size(o) > DD_MAX_PROFILES) {
        snprintf(errbuf, errlen, "profiles: more than %u", DD_MAX_PROFILES);
        return -EINVAL;
    }
    defs = dd_calloc(json_object_size(o) + 1, sizeof(*defs));
    if (!defs)
        return -ENOMEM;
    json_object_foreach(o, name, v)
    {
        struct dd_profile_def d = {.read_mbps = s->dflt.read_mbps,
                                   .write_mbps = s->dflt.write_mbps,
                                   .duplicate_share = (double)NAN};
        const char *k;
        json_t *unused;
        if (!json_is_object(v) || strlen(name) == 0 || strlen(name) >= sizeof(d.name)) {
            snprintf(errbuf, errlen,
                     "profiles.%.100s: expected an object under a name of 1..%zu "
                     "bytes",
                     name, sizeof(d.name) - 1);
            dd_free(defs);
            return -EINVAL;
        }
        json_object_foreach(v, k, unused)
        {
            if (strcmp(k, "read_mbps") != 0 && strcmp(k, "write_mbps") != 0 &&
                strcmp(k, "duplicate_share") != 0) {
                snprintf(errbuf, errlen,
                         "profiles.%.100s.%.100s: unknown (read_mbps, write_mbps, duplicate_share)",
                         name, k);
                dd_free(defs);
                return -EINVAL;
            }
        }
        snprintf(d.name, sizeof(d.name), "%s", name);
        if (def_number(v, name, "read_mbps", 0, 1e6, &d.read_mbps, errbuf, errlen) < 0 ||
            def_number(v, name, "write_mbps", 0, 1e6, &d.write_mbps, errbuf, errlen) < 0 ||
            def_number(v, name, "duplicate_share", 0, 1, &d.duplicate_share, errbuf, errlen) < 0) {
            dd_free(defs);
            return -EINVAL;
        }
        if (strcmp(name, "default") == 0)
            s->dflt = d;
        else
            defs[n++] = d;
    }
    dd_free(s->defs);
    s->defs = defs;
    s->n = n;
    return 0;
}

static void note(struct dd_pod_profile *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct dd_pod_profile *p, const char *fmt, ...)
{
    va_list ap;
    if (p->n_notes >= DD_PROFILE_MAX_NOTES)
        return;
    va_start(ap, fmt);
    vsnprintf(p->notes[p->n_notes++], sizeof(p->notes[0]), fmt, ap);
    va_end(ap);
}

/* An annotation's value in [lo, hi]: true and *ret set; "" is absent
 * (false, no note); anything else is noted and ignored. */
static bool annotation(struct dd_pod_profile *p, const char *where, const char *key,
                       const char *text, double lo, double hi, double *ret)
{
    double v;
    if (text[0] == '\0')
        return false;
    if (dd_parse_double(text, &v) < 0 || !(v >= lo && v <= hi)) {
        note(p, "%.80s annotation dedupd.io/%s=\"%.40s\" is not a number %g..%g: ignored", where,
             key, text, lo, hi);
        return false;
    }
    *ret = v;
    return true;
}

/* The named profile of an annotation, or NULL (noted when unknown). */
static const struct dd_profile_def *named(const struct dd_profile_set *s, struct dd_pod_profile *p,
                                          const char *where, const char *name)
{
    const struct dd_profile_def *d;
    if (name[0] == '\0')
        return NULL;
    d = dd_profile_find(s, name);
    if (!d)
        note(p, "%.80s annotation dedupd.io/profile=\"%.60s\" names no configured profile: ignored",
             where, name);
    return d;
}

void dd_profile_resolve(const struct dd_profile_set *s, const struct dd_kube_pod *pod,
                        struct dd_pod_profile *out)
{
    const struct dd_profile_def *base;
    double read, write, dup;
    bool r_set, w_set, d_set;
    size_t n_rw = 0, n_all = 0;
    struct {
        bool r, w, d, rw;
        double read, write, dup;
    } own[DD_KUBE_MAX_CLAIMS];

    memset(out, 0, sizeof(*out));
    snprintf(out->uid, sizeof(out->uid), "%s", pod->uid);
    snprintf(out->ns, sizeof(out->ns), "%s", pod->ns);
    snprintf(out->name, sizeof(out->name), "%s", pod->name);
    out->gpus = pod->gpus;

    base = named(s, out, "pod", pod->profile);
    out->source = base ? "profile" : "default";
    if (!base)
        base = &s->dflt;
    snprintf(out->profile_name, sizeof(out->profile_name), "%s", base->name);
    read = base->read_mbps;
    write = base->write_mbps;
    dup = base->duplicate_share;
    r_set = annotation(out, "pod", "read-mbps", pod->read_mbps, 0, 1e6, &read);
    w_set = annotation(out, "pod", "write-mbps", pod->write_mbps, 0, 1e6, &write);
    d_set = annotation(out, "pod", "duplicate-share", pod->duplicate_share, 0, 1, &dup);
    if (r_set || w_set || d_set)
        out->source = "annotations";
    if (pod->claims_truncated)
        note(out, "the pod has more than %d claims: the rest are not scored", DD_KUBE_MAX_CLAIMS);

    /* each claim's own annotations first, to know what the pod's rates split over */
    for (size_t i = 0; i < pod->n_claims && i < DD_KUBE_MAX_CLAIMS; i++) {
        const struct dd_kube_claim *c = &pod->claims[i];
        char where[DD_NAME_MAX + 8];
        const struct dd_profile_def *cd;
        snprintf(where, sizeof(where), "claim %.200s", c->name);
        cd = named(s, out, where, c->profile);
        own[i].read = cd ? cd->read_mbps : 0;
        own[i].write = cd ? cd->write_mbps : 0;
        own[i].dup = cd ? cd->duplicate_share : dup;
        own[i].r = annotation(out, where, "read-mbps", c->read_mbps, 0, 1e6, &own[i].read) || cd;
        own[i].w = annotation(out, where, "write-mbps", c->write_mbps, 0, 1e6, &own[i].write) || cd;
        own[i].d = annotation(out, where, "duplicate-share", c->duplicate_share, 0, 1, &own[i].dup);
        own[i].rw = c->read_write;
        if (!own[i].r)
            n_all++;
        if (!own[i].w && c->read_write)
            n_rw++;
    }
    for (size_t i = 0; i < pod->n_claims && i < DD_KUBE_MAX_CLAIMS; i++) {
        const struct dd_kube_claim *c = &pod->claims[i];
        struct dd_claim_load *l;
        if (!c->known) {
            out->n_unknown_claims++;
            continue;
        }
        if (!c->ours)
            continue;
        l = &out->claims[out->n_claims++];
        snprintf(l->claim, sizeof(l->claim), "%s", c->name);
        snprintf(l->pool, sizeof(l->pool), "%s", c->pool);
        snprintf(l->node, sizeof(l->node), "%s", c->node);
        l->read_mbps = own[i].r ? own[i].read : read / (double)(n_all ? n_all : 1);
        l->write_mbps = own[i].w        ? own[i].write
                        : c->read_write ? write / (double)(n_rw ? n_rw : 1)
                                        : 0;
        l->duplicate_share = own[i].d ? own[i].dup : dup;
        l->request_bytes = c->request_bytes;
        l->known = true;
        l->bound = c->bound;
    }
}

json_t *dd_profile_to_json(const struct dd_pod_profile *p)
{
    json_t *claims = json_array(), *notes = json_array();
    for (size_t i = 0; i < p->n_claims; i++) {
        const struct dd_claim_load *c = &p->claims[i];
        json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:I, s:b}", "claim", c->claim, "pool", c->pool,
                              "read_mbps", c->read_mbps, "write_mbps", c->write_mbps,
                              "request_bytes", (json_int_t)c->request_bytes, "bound", c->bound);
        json_object_set_new(o, "duplicate_share",
                            isfinite(c->duplicate_share) ? json_real(c->duplicate_share)
                                                         : json_string("pool's own"));
        json_array_append_new(claims, o);
    }
    for (size_t i = 0; i < p->n_notes; i++) {
        json_t *n = json_string(p->notes[i]); /* NULL if a cut split a UTF-8 character */
        json_array_append_new(notes, n ? n : json_string("a malformed dedupd.io/ annotation"));
    }
    return json_pack("{s:f, s:s, s:s, s:o, s:I, s:o}", "gpus", p->gpus, "source", p->source,
                     "profile", p->profile_name, "claims", claims, "unknown_claims",
                     (json_int_t)p->n_unknown_claims, "notes", notes);
}
