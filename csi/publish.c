/*
 * CSIStorageCapacity publishing, pure part (publish.h): the object codec,
 * Kubernetes quantities, and the plan of writes under the coalescing rule.
 * The plan matches wants and haves by (node, class) after sorting both
 * (O((w + h) log(w + h))), so a reconcile of 20,000 objects stays in
 * milliseconds; the API calls and the rate limit are the caller's.
 */
#define _GNU_SOURCE
#include "csi/publish.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

const char *const dd_csi_pub_op_names[3] = {"create", "update", "delete"};

void dd_csi_pub_options_init(struct dd_csi_pub_options *o)
{
    o->threshold = 0.05;
    o->min_change = 1073741824;
    o->min_interval_ms = 60000;
}

bool dd_csi_pub_significant(const struct dd_csi_pub_options *o, int64_t old, int64_t new_value)
{
    if (old == new_value)
        return false;
    if ((old == 0) != (new_value == 0))
        return true;
    double d = fabs((double)new_value - (double)old);
    return d >= (double)o->min_change && d > o->threshold * fabs((double)old);
}

/* ---- quantities ---- */

__extension__ typedef unsigned __int128 u128;

static const struct {
    const char *s;
    unsigned base, power; /* mult = base^power */
} suffixes[] = {
    {"Ki", 1024, 1}, {"Mi", 1024, 2}, {"Gi", 1024, 3}, {"Ti", 1024, 4}, {"Pi", 1024, 5},
    {"Ei", 1024, 6}, {"k", 1000, 1},  {"M", 1000, 2},  {"G", 1000, 3},  {"T", 1000, 4},
    {"P", 1000, 5},  {"E", 1000, 6},  {"", 1, 0},
};

int dd_csi_quantity_parse(const char *s, int64_t *ret)
{
    u128 num = 0, den = 1, mult = 1;
    const u128 max = (u128)INT64_MAX;
    const char *p = s;
    unsigned digits = 0, frac = 0;

    if (!s)
        return -EINVAL;
    if (*p == '+')
        p++;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++digits > 30)
            return -ERANGE;
        num = num * (u128)10u + (u128)(unsigned)(*p - '0');
    }
    if (*p == '.') {
        p++;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++frac > 9)
                return -EINVAL; /* finer than a nano-byte: no whole number anyway */
            num = num * (u128)10u + (u128)(unsigned)(*p - '0');
            den *= 10;
            digits++;
        }
    }
    if (digits == 0)
        return -EINVAL;
    if ((*p == 'e' || *p == 'E') && ((p[1] >= '0' && p[1] <= '9') || p[1] == '-' || p[1] == '+')) {
        bool neg = p[1] == '-';
        unsigned e = 0, ed = 0;
        p += (p[1] == '-' || p[1] == '+') ? 2 : 1;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++ed > 2)
                return -ERANGE;
            e = e * 10 + (unsigned)(*p - '0');
        }
        if (ed == 0 || *p)
            return -EINVAL;
        if (neg ? e + frac > 18 : e > 18)
            return neg ? -EINVAL : -ERANGE;
        for (unsigned i = 0; i < e; i++) {
            if (neg)
                den *= 10;
            else
                mult *= 10;
        }
    } else {
        size_t i;
        for (i = 0; i < DD_ARRAY_SIZE(suffixes); i++)
            if (strcmp(p, suffixes[i].s) == 0)
                break;
        if (i == DD_ARRAY_SIZE(suffixes)) {
            if (strcmp(p, "m") != 0)
                return -EINVAL;
            den *= 1000; /* milli */
        } else {
            for (unsigned k = 0; k < suffixes[i].power; k++)
                mult *= suffixes[i].base;
        }
    }
    /* num * mult / den, whole and <= INT64_MAX */
    if (num > max * den / mult + 1)
        return -ERANGE;
    num *= mult;
    if (num % den)
        return -EINVAL;
    num /= den;
    if (num > max)
        return -ERANGE;
    *ret = (int64_t)num;
    return 0;
}

/* ---- objects ---- */

/* jansson's iteration takes a non-const object; nothing is changed. */
static json_t *unconst(const json_t *o)
{
    json_t *x;
    memcpy(&x, &o, sizeof(x));
    return x;
}

static int quantity_of(const json_t *o, const char *key, int64_t *ret)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return dd_csi_quantity_parse(json_string_value(v), ret);
    /* a number is what a hand-written object might hold: accepted when whole */
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *ret = (int64_t)json_integer_value(v);
        return 0;
    }
    return -EINVAL;
}

int dd_csi_pub_decode(const json_t *obj, const char *node_key, struct dd_csi_pub_have *ret,
                      char *err, size_t errlen)
{
    const json_t *md = json_object_get(obj, "metadata"), *nt, *ml, *v;
    const char *name, *rv, *sc, *key;
    struct dd_csi_pub_have h = {0};

    if (!json_is_object(obj) || !json_is_object(md)) {
        snprintf(err, errlen, "metadata: missing (not an object)");
        return -EINVAL;
    }
    name = json_string_value(json_object_get(md, "name"));
    rv = json_string_value(json_object_get(md, "resourceVersion"));
    if (!name || !name[0]) {
        snprintf(err, errlen, "metadata.name: missing");
        return -EINVAL;
    }
    if (!rv || !rv[0]) {
        snprintf(err, errlen, "metadata.resourceVersion: missing (object %.200s)", name);
        return -EINVAL;
    }
    h.name = name;
    h.resource_version = rv;
    h.has_capacity = quantity_of(obj, "capacity", &h.capacity) == 0;
    h.has_maximum = quantity_of(obj, "maximumVolumeSize", &h.maximum) == 0;
    nt = json_object_get(obj, "nodeTopology");
    ml = json_object_get(nt, "matchLabels");
    sc = json_string_value(json_object_get(obj, "storageClassName"));
    /* exactly {"matchLabels": {node_key: NODE}}: no expressions, one label */
    if (json_is_object(nt) && json_object_size(nt) == 1 && json_is_object(ml) &&
        json_object_size(ml) == 1 && sc && sc[0]) {
        json_object_foreach(unconst(ml), key, v)
        {
            if (strcmp(key, node_key) == 0 && json_is_string(v) && json_string_value(v)[0]) {
                h.node = json_string_value(v);
                h.storage_class = sc;
            }
        }
    }
    *ret = h;
    return 0;
}

static json_t *quantity(int64_t v)
{
    char b[32];
    snprintf(b, sizeof(b), "%lld", (long long)(v < 0 ? 0 : v));
    return json_string(b);
}

json_t *dd_csi_pub_object(const struct dd_csi_pub_want *w, const char *node_key, const char *ns,
                          const char *name, const char *resource_version, const json_t *owner)
{
    json_t *labels = json_object(), *md = json_object(), *ml = json_object(), *o = json_object();
    if (!labels || !md || !ml || !o)
        goto oom;
    if (json_object_set_new(labels, DD_CSI_PUB_LABEL_MANAGED, json_string(DD_CSI_PUB_MANAGED_BY)))
        goto oom;
    if (w->driver && w->driver[0] &&
        json_object_set_new(labels, DD_CSI_PUB_LABEL_DRIVER, json_string(w->driver)))
        goto oom;
    if (name)
        json_object_set_new(md, "name", json_string(name));
    else
        json_object_set_new(md, "generateName", json_string(DD_CSI_PUB_GENERATE_NAME));
    json_object_set_new(md, "namespace", json_string(ns));
    if (resource_version)
        json_object_set_new(md, "resourceVersion", json_string(resource_version));
    json_object_set_new(md, "labels", labels);
    labels = NULL;
    if (owner)
        json_object_set_new(md, "ownerReferences", json_pack("[O]", owner));
    json_object_set_new(ml, node_key, json_string(w->node));
    json_object_set_new(o, "apiVersion", json_string("storage.k8s.io/v1"));
    json_object_set_new(o, "kind", json_string("CSIStorageCapacity"));
    json_object_set_new(o, "metadata", md);
    md = NULL;
    json_object_set_new(o, "nodeTopology", json_pack("{s:o}", "matchLabels", ml));
    ml = NULL;
    json_object_set_new(o, "storageClassName", json_string(w->storage_class));
    json_object_set_new(o, "capacity", quantity(w->capacity));
    json_object_set_new(o, "maximumVolumeSize", quantity(w->maximum));
    /* every set above may fail only on ENOMEM: check the result whole */
    if (json_object_size(o) != 7 || !json_object_get(json_object_get(o, "metadata"), "labels"))
        goto oom;
    return o;
oom:
    json_decref(labels);
    json_decref(md);
    json_decref(ml);
    json_decref(o);
    return NULL;
}

/* ---- the plan ---- */

struct key_ref {
    const char *node, *cls;
    size_t i;
    const char *tie; /* haves: the name (first kept) */
};

static int key_cmp(const void *p, const void *q)
{
    const struct key_ref *a = p, *b = q;
    int c = strcmp(a->node, b->node);
    if (c)
        return c;
    if ((c = strcmp(a->cls, b->cls)))
        return c;
    if (a->tie && b->tie && (c = strcmp(a->tie, b->tie)))
        return c;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int action_cmp(const void *p, const void *q)
{
    const struct dd_csi_pub_action *a = p, *b = q;
    if (a->op != b->op)
        return a->op < b->op ? -1 : 1;
    if (a->op == DD_CSI_PUB_UPDATE && a->change != b->change)
        return a->change > b->change ? -1 : 1;
    size_t x = a->op == DD_CSI_PUB_CREATE ? a->want : a->have;
    size_t y = b->op == DD_CSI_PUB_CREATE ? b->want : b->have;
    return x < y ? -1 : x > y;
}

static double rel_change(int64_t old, int64_t new_value)
{
    /* crossing zero ("nothing fits" or "fits again") goes first */
    if ((old == 0) != (new_value == 0))
        return (double)INFINITY;
    return old == 0 ? 0 : fabs((double)new_value - (double)old) / fabs((double)old);
}

static int push(struct dd_csi_pub_plan *p, size_t *cap, struct dd_csi_pub_action a)
{
    if (p->n == *cap && DD_ARRAY_RESERVE(p->actions, *cap, p->n + 1) < 0)
        return -ENOMEM;
    p->actions[p->n++] = a;
    return 0;
}

int dd_csi_pub_plan(const struct dd_csi_pub_options *o, const struct dd_csi_pub_want *wants,
                    size_t nw, const struct dd_csi_pub_have *haves, size_t nh, uint64_t now_ms,
                    struct dd_csi_pub_plan *ret)
{
    struct dd_csi_pub_plan p = {0};
    struct key_ref *w = dd_calloc(nw ? nw : 1, sizeof(*w)), *h = dd_calloc(nh ? nh : 1, sizeof(*h));
    size_t cap = 0, n_w = 0, n_h = 0, i = 0, j = 0;

    if (!w || !h)
        goto oom;
    for (size_t k = 0; k < nw; k++) {
        if (strlen(wants[k].node) > DD_CSI_PUB_MAX_LABEL_VALUE) {
            p.skipped++;
            continue;
        }
        w[n_w++] = (struct key_ref){wants[k].node, wants[k].storage_class, k, NULL};
    }
    for (size_t k = 0; k < nh; k++) {
        if (!haves[k].node || !haves[k].storage_class) {
            if (push(&p, &cap, (struct dd_csi_pub_action){DD_CSI_PUB_DELETE, SIZE_MAX, k, 0}) < 0)
                goto oom;
            continue;
        }
        h[n_h++] = (struct key_ref){haves[k].node, haves[k].storage_class, k, haves[k].name};
    }
    qsort(w, n_w, sizeof(*w), key_cmp);
    qsort(h, n_h, sizeof(*h), key_cmp);
    while (i < n_w || j < n_h) {
        int c = i == n_w ? 1 : j == n_h ? -1 : strcmp(w[i].node, h[j].node);
        if (c == 0)
            c = strcmp(w[i].cls, h[j].cls);
        if (c < 0) { /* wanted, missing */
            if (push(&p, &cap, (struct dd_csi_pub_action){DD_CSI_PUB_CREATE, w[i].i, SIZE_MAX, 0}) <
                0)
                goto oom;
        } else if (c > 0) { /* there, not wanted */
            if (push(&p, &cap, (struct dd_csi_pub_action){DD_CSI_PUB_DELETE, SIZE_MAX, h[j].i, 0}) <
                0)
                goto oom;
            j++;
            continue;
        } else {
            const struct dd_csi_pub_want *x = &wants[w[i].i];
            const struct dd_csi_pub_have *y = &haves[h[j].i];
            bool missing = !y->has_capacity || !y->has_maximum;
            bool sig = missing || dd_csi_pub_significant(o, y->capacity, x->capacity) ||
                       dd_csi_pub_significant(o, y->maximum, x->maximum);
            if (sig && y->written_ms && now_ms < y->written_ms + o->min_interval_ms) {
                p.deferred++;
            } else if (sig) {
                double ch = missing ? (double)INFINITY
                                    : fmax(rel_change(y->capacity, x->capacity),
                                           rel_change(y->maximum, x->maximum));
                if (push(&p, &cap,
                         (struct dd_csi_pub_action){DD_CSI_PUB_UPDATE, w[i].i, h[j].i, ch}) < 0)
                    goto oom;
            } else if (y->capacity == x->capacity && y->maximum == x->maximum) {
                p.unchanged++;
            } else {
                p.coalesced++;
            }
            j++;
            /* further objects of the same identity: duplicates */
            while (j < n_h && strcmp(h[j].node, w[i].node) == 0 &&
                   strcmp(h[j].cls, w[i].cls) == 0) {
                if (push(&p, &cap,
                         (struct dd_csi_pub_action){DD_CSI_PUB_DELETE, SIZE_MAX, h[j].i, 0}) < 0)
                    goto oom;
                j++;
            }
        }
        /* further wants of the same identity count once */
        size_t k = i + 1;
        while (k < n_w && strcmp(w[k].node, w[i].node) == 0 && strcmp(w[k].cls, w[i].cls) == 0)
            k++;
        i = k;
    }
    if (p.n)
        qsort(p.actions, p.n, sizeof(*p.actions), action_cmp);
    dd_free(w);
    dd_free(h);
    *ret = p;
    return 0;
oom:
    dd_free(w);
    dd_free(h);
    dd_free(p.actions);
    return -ENOMEM;
}

void dd_csi_pub_plan_release(struct dd_csi_pub_plan *p)
{
    dd_free(p->actions);
    p->actions = NULL;
    p->n = 0;
}
