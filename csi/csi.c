/*
 * CSI-adjacent topology (csi.h): codecs of the CSI messages in proto3
 * canonical JSON, segment matching, the preferred ordering and the
 * effective-capacity arithmetic. Pure.
 */
#define _GNU_SOURCE
#include "csi/csi.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* jansson's iteration takes a non-const object; reading does not change it */
static json_t *unconst(const json_t *o)
{
    json_t *r;
    memcpy(&r, &o, sizeof(r));
    return r;
}

/* A key for an error message: printable ASCII, cut at 80 bytes. */
static const char *q(char *buf, size_t len, const char *s)
{
    dd_quote(buf, len, s, strlen(s), len > 4 ? len - 4 : 0);
    return buf;
}

/*
 * A field in either spelling: camel (proto3 JSON) or snake (csi.proto).
 * Absent or null: *ret NULL. Both: refused.
 */
static int field(const json_t *o, const char *camel, const char *snake, const char *path,
                 const json_t **ret, char *err, size_t errlen)
{
    const json_t *a = json_object_get(o, camel), *b = snake ? json_object_get(o, snake) : NULL;
    *ret = NULL;
    if (a && b && strcmp(camel, snake) != 0)
        return dd_fail(err, errlen, DD_E_PARSE, "%s%s%s: given as both %s and %s", path,
                       path[0] ? "." : "", camel, camel, snake);
    *ret = a ? a : b;
    if (*ret && json_is_null(*ret))
        *ret = NULL;
    return 0;
}

/* "path.camel" for messages */
static void sub(char *buf, size_t len, const char *path, const char *name)
{
    snprintf(buf, len, "%s%s%s", path, path[0] ? "." : "", name);
}

static int get_string(const json_t *o, const char *camel, const char *snake, const char *path,
                      size_t max, const char **ret, char *err, size_t errlen)
{
    const json_t *v;
    char p[256];
    int r;
    *ret = NULL;
    if ((r = field(o, camel, snake, path, &v, err, errlen)) < 0 || !v)
        return r;
    sub(p, sizeof(p), path, camel);
    if (!json_is_string(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected a string", p);
    if (json_string_length(v) >= max || strlen(json_string_value(v)) != json_string_length(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: longer than %zu bytes or holds a NUL byte", p,
                       max - 1);
    *ret = json_string_value(v);
    return 0;
}

/* An int64 field: a decimal string (canonical) or a JSON integer; >= 0. */
static int get_int64(const json_t *o, const char *camel, const char *snake, const char *path,
                     bool *present, int64_t *ret, char *err, size_t errlen)
{
    const json_t *v;
    char p[256];
    int r;
    *present = false;
    *ret = 0;
    if ((r = field(o, camel, snake, path, &v, err, errlen)) < 0 || !v)
        return r;
    sub(p, sizeof(p), path, camel);
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return dd_fail(err, errlen, DD_E_RANGE, "%s: negative", p);
        *ret = (int64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        uint64_t u;
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || dd_parse_u64(s, &u) < 0 || (s[0] == '0' && s[1]))
            return dd_fail(
                err, errlen, DD_E_PARSE,
                "%s: expected an int64 as a decimal string without sign or leading zeros", p);
        if (u > INT64_MAX)
            return dd_fail(err, errlen, DD_E_RANGE, "%s: out of the int64 range", p);
        *ret = (int64_t)u;
    } else {
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an int64 (a decimal string)", p);
    }
    *present = true;
    return 0;
}

static json_t *int64_json(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return json_string(buf);
}

/* A map<string,string> field: an object of strings, counted and bounded. */
static int get_str_map(const json_t *o, const char *camel, const char *snake, const char *path,
                       size_t max_n, json_t **ret, char *err, size_t errlen)
{
    const json_t *v, *x;
    const char *key;
    char p[256], kb[96];
    int r;
    *ret = NULL;
    if ((r = field(o, camel, snake, path, &v, err, errlen)) < 0 || !v)
        return r;
    sub(p, sizeof(p), path, camel);
    if (!json_is_object(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an object of strings", p);
    if (json_object_size(v) > max_n)
        return dd_fail(err, errlen, DD_E_PARSE, "%s: more than %zu entries", p, max_n);
    json_object_foreach(unconst(v), key, x)
    {
        if (!json_is_string(x))
            return dd_fail(err, errlen, DD_E_PARSE, "%s[%s]: expected a string", p,
                           q(kb, sizeof(kb), key));
        if (strlen(key) >= DD_CSI_MAX_KEY || json_string_length(x) >= 4096 ||
            strlen(json_string_value(x)) != json_string_length(x))
            return dd_fail(err, errlen, DD_E_PARSE, "%s[%s]: too long or holds a NUL byte", p,
                           q(kb, sizeof(kb), key));
    }
    *ret = unconst(v);
    return 0;
}

/* ---- segments ---- */

static int pair_cmp(const void *x, const void *y)
{
    const struct dd_csi_pair *a = x, *b = y;
    return strcmp(a->key, b->key);
}

int dd_csi_segment_cmp(const struct dd_csi_segment *a, const struct dd_csi_segment *b)
{
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        int c = strcmp(a->kv[i].key, b->kv[i].key);
        if (c)
            return c;
        if ((c = strcmp(a->kv[i].value, b->kv[i].value)))
            return c;
    }
    return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

json_t *dd_csi_segment_to_json(const struct dd_csi_segment *s)
{
    json_t *m = json_object();
    for (size_t i = 0; m && i < s->n; i++)
        json_object_set_new(m, s->kv[i].key, json_string(s->kv[i].value));
    return m ? json_pack("{s:o}", "segments", m) : NULL;
}

int dd_csi_segment_decode(const json_t *topology, const char *path, struct dd_csi_segment *ret,
                          char *err, size_t errlen)
{
    const json_t *segs, *v;
    const char *key;
    char p[256], kb[96];
    size_t i = 0;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(topology))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected a Topology object", path);
    if ((r = field(topology, "segments", NULL, path, &segs, err, errlen)) < 0)
        return r;
    if (!segs)
        return 0; /* an empty Topology */
    sub(p, sizeof(p), path, "segments");
    if (!json_is_object(segs))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an object of strings", p);
    if (json_object_size(segs) > DD_CSI_MAX_SEGMENT_KEYS)
        return dd_fail(err, errlen, DD_E_PARSE, "%s: more than %u keys", p,
                       DD_CSI_MAX_SEGMENT_KEYS);
    json_object_foreach(unconst(segs), key, v)
    {
        if (!key[0] || strlen(key) >= DD_CSI_MAX_KEY)
            return dd_fail(err, errlen, DD_E_PARSE, "%s: a key is empty or longer than %u bytes", p,
                           DD_CSI_MAX_KEY - 1);
        if (!json_is_string(v))
            return dd_fail(err, errlen, DD_E_PARSE, "%s[%s]: expected a string", p,
                           q(kb, sizeof(kb), key));
        if (json_string_length(v) >= DD_CSI_MAX_VALUE ||
            strlen(json_string_value(v)) != json_string_length(v))
            return dd_fail(err, errlen, DD_E_PARSE,
                           "%s[%s]: longer than %u bytes or holds a NUL byte", p,
                           q(kb, sizeof(kb), key), DD_CSI_MAX_VALUE - 1);
    }
    ret->n = json_object_size(segs);
    if (!ret->n)
        return 0;
    ret->kv = dd_calloc(ret->n, sizeof(*ret->kv));
    if (!ret->kv) {
        ret->n = 0;
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    }
    json_object_foreach(unconst(segs), key, v)
    {
        ret->kv[i].key = key;
        ret->kv[i].value = json_string_value(v);
        i++;
    }
    qsort(ret->kv, ret->n, sizeof(*ret->kv), pair_cmp);
    return 0;
}

void dd_csi_segment_release(struct dd_csi_segment *s)
{
    dd_free(s->kv);
    s->kv = NULL;
    s->n = 0;
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool dd_csi_pool_key_ok(const char *pool)
{
    size_t n = pool ? strlen(pool) : 0;
    if (n == 0 || n > DD_CSI_MAX_POOL_KEY_NAME || !alnum(pool[0]) || !alnum(pool[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum(pool[i]) && pool[i] != '-' && pool[i] != '_' && pool[i] != '.')
            return false;
    return true;
}

json_t *dd_csi_node_segments(const char *node, const char *const *pools, size_t n_pools)
{
    json_t *m = json_object();
    char key[sizeof(DD_CSI_KEY_POOL_PREFIX) + DD_CSI_MAX_POOL_KEY_NAME + 1];
    if (!m)
        return NULL;
    json_object_set_new(m, DD_CSI_KEY_NODE, json_string(node));
    for (size_t i = 0; i < n_pools; i++) {
        if (!dd_csi_pool_key_ok(pools[i]))
            continue;
        snprintf(key, sizeof(key), "%s%s", DD_CSI_KEY_POOL_PREFIX, pools[i]);
        json_object_set_new(m, key, json_string("true"));
    }
    return m;
}

/* ---- the matcher: an open-addressing table of (key, value) -> first segment ---- */

struct slot {
    uint64_t hash;
    size_t first; /* head of the chain in next[]; SIZE_MAX: empty */
};

struct dd_csi_matcher {
    const struct dd_csi_segment *segs;
    size_t n, nslots;
    struct slot *slots;
    size_t *next; /* next segment with the same first pair */
    size_t *all;  /* empty segments (match every node) */
    size_t n_all;
};

static uint64_t pair_hash(const char *k, const char *v)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over key, NUL, value */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;
    for (; *v; v++)
        h = (h ^ (unsigned char)*v) * 1099511628211ull;
    return h | 1; /* never 0 */
}

static struct slot *slot_find(const struct dd_csi_matcher *m, uint64_t h, const char *k,
                              const char *v, bool insert)
{
    for (size_t i = h & (m->nslots - 1);; i = (i + 1) & (m->nslots - 1)) {
        struct slot *s = &m->slots[i];
        if (!s->hash)
            return insert ? s : NULL;
        if (s->hash == h) {
            const struct dd_csi_pair *p = &m->segs[s->first].kv[0];
            if (strcmp(p->key, k) == 0 && strcmp(p->value, v) == 0)
                return s;
        }
    }
}

int dd_csi_matcher_new(const struct dd_csi_segment *segs, size_t n, struct dd_csi_matcher **ret)
{
    struct dd_csi_matcher *m = dd_calloc(1, sizeof(*m));
    size_t ns = 16;
    if (!m)
        return -ENOMEM;
    while (ns < 2 * n + 2)
        ns *= 2;
    m->segs = segs;
    m->n = n;
    m->nslots = ns;
    m->slots = dd_calloc(ns, sizeof(*m->slots));
    m->next = dd_calloc(n ? n : 1, sizeof(*m->next));
    m->all = dd_calloc(n ? n : 1, sizeof(*m->all));
    if (!m->slots || !m->next || !m->all) {
        dd_csi_matcher_free(m);
        return -ENOMEM;
    }
    /* chains in reverse so a walk visits segments in their order */
    for (size_t i = n; i-- > 0;) {
        if (!segs[i].n) {
            m->all[m->n_all++] = i;
            continue;
        }
        const struct dd_csi_pair *p = &segs[i].kv[0];
        uint64_t h = pair_hash(p->key, p->value);
        struct slot *s = slot_find(m, h, p->key, p->value, true);
        if (!s->hash) {
            s->hash = h;
            m->next[i] = SIZE_MAX;
        } else {
            m->next[i] = s->first;
        }
        s->first = i;
    }
    *ret = m;
    return 0;
}

void dd_csi_matcher_free(struct dd_csi_matcher *m)
{
    if (!m)
        return;
    dd_free(m->slots);
    dd_free(m->next);
    dd_free(m->all);
    dd_free(m);
}

/* Does the node hold key=value (labels, then extra)? */
static bool holds(const char *const *a, size_t na, const char *const *b, size_t nb, const char *k,
                  const char *v)
{
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[2 * i], k) == 0 && strcmp(a[2 * i + 1], v) == 0)
            return true;
    for (size_t i = 0; i < nb; i++)
        if (strcmp(b[2 * i], k) == 0 && strcmp(b[2 * i + 1], v) == 0)
            return true;
    return false;
}

size_t dd_csi_matcher_node(const struct dd_csi_matcher *m, const char *const *labels,
                           size_t n_labels, const char *const *extra, size_t n_extra,
                           void (*fn)(void *ctx, size_t seg), void *ctx)
{
    size_t hits = 0;
    for (size_t i = 0; i < m->n_all; i++, hits++)
        fn(ctx, m->all[i]);
    for (size_t j = 0; j < n_labels + n_extra; j++) {
        const char *k = j < n_labels ? labels[2 * j] : extra[2 * (j - n_labels)];
        const char *v = j < n_labels ? labels[2 * j + 1] : extra[2 * (j - n_labels) + 1];
        /* the same pair twice (in labels and extra): its segments once */
        if (j >= n_labels && holds(labels, n_labels, NULL, 0, k, v))
            continue;
        struct slot *s = slot_find(m, pair_hash(k, v), k, v, false);
        if (!s)
            continue;
        for (size_t i = s->first; i != SIZE_MAX; i = m->next[i]) {
            const struct dd_csi_segment *seg = &m->segs[i];
            bool ok = true;
            for (size_t p = 1; ok && p < seg->n; p++)
                ok = holds(labels, n_labels, extra, n_extra, seg->kv[p].key, seg->kv[p].value);
            if (ok) {
                fn(ctx, i);
                hits++;
            }
        }
    }
    return hits;
}

/* ---- TopologyRequirement ---- */

static int topo_list(const json_t *o, const char *name, const char *path, size_t *ret_n,
                     struct dd_csi_segment **ret, char *err, size_t errlen)
{
    const json_t *a, *t;
    char p[256], ep[300];
    size_t i;
    int r;

    *ret = NULL;
    *ret_n = 0;
    if ((r = field(o, name, NULL, path, &a, err, errlen)) < 0 || !a)
        return r;
    sub(p, sizeof(p), path, name);
    if (!json_is_array(a))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an array of Topology", p);
    if (json_array_size(a) > DD_CSI_MAX_TOPOLOGIES)
        return dd_fail(err, errlen, DD_E_PARSE, "%s: more than %u entries", p,
                       DD_CSI_MAX_TOPOLOGIES);
    if (!json_array_size(a))
        return 0;
    *ret = dd_calloc(json_array_size(a), sizeof(**ret));
    if (!*ret)
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    json_array_foreach(a, i, t)
    {
        snprintf(ep, sizeof(ep), "%s[%zu]", p, i);
        if ((r = dd_csi_segment_decode(t, ep, &(*ret)[i], err, errlen)) < 0) {
            for (size_t j = 0; j < i; j++)
                dd_csi_segment_release(&(*ret)[j]);
            dd_free(*ret);
            *ret = NULL;
            return r;
        }
    }
    *ret_n = json_array_size(a);
    return 0;
}

int dd_csi_topology_req_decode(const json_t *o, const char *path, struct dd_csi_topology_req *ret,
                               char *err, size_t errlen)
{
    int r;
    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(o))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected a TopologyRequirement object", path);
    if ((r = topo_list(o, "requisite", path, &ret->n_requisite, &ret->requisite, err, errlen)) <
            0 ||
        (r = topo_list(o, "preferred", path, &ret->n_preferred, &ret->preferred, err, errlen)) <
            0) {
        dd_csi_topology_req_release(ret);
        return r;
    }
    return 0;
}

static json_t *segs_json(const struct dd_csi_segment *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, dd_csi_segment_to_json(&s[i]));
    return a;
}

json_t *dd_csi_topology_req_to_json(const struct dd_csi_topology_req *t)
{
    json_t *o = json_object();
    if (o && t->n_requisite)
        json_object_set_new(o, "requisite", segs_json(t->requisite, t->n_requisite));
    if (o && t->n_preferred)
        json_object_set_new(o, "preferred", segs_json(t->preferred, t->n_preferred));
    return o;
}

void dd_csi_topology_req_release(struct dd_csi_topology_req *t)
{
    for (size_t i = 0; t->requisite && i < t->n_requisite; i++)
        dd_csi_segment_release(&t->requisite[i]);
    for (size_t i = 0; t->preferred && i < t->n_preferred; i++)
        dd_csi_segment_release(&t->preferred[i]);
    dd_free(t->requisite);
    dd_free(t->preferred);
    memset(t, 0, sizeof(*t));
}

const struct dd_csi_segment *dd_csi_entries_source(const struct dd_csi_topology_req *t)
{
    return t->n_requisite ? t->requisite : t->preferred;
}

struct keyed {
    const struct dd_csi_segment *s;
    size_t i;
};

static int keyed_cmp(const void *x, const void *y)
{
    const struct keyed *a = x, *b = y;
    int c = dd_csi_segment_cmp(a->s, b->s);
    return c ? c : (a->i < b->i ? -1 : a->i > b->i);
}

int dd_csi_entries(const struct dd_csi_topology_req *t, size_t **idx, long **pref_pos, size_t *n)
{
    const struct dd_csi_segment *src = dd_csi_entries_source(t);
    size_t ns = t->n_requisite ? t->n_requisite : t->n_preferred, k = 0;
    struct keyed *ks = dd_calloc(ns ? ns : 1, sizeof(*ks));
    bool *keep = dd_calloc(ns ? ns : 1, sizeof(*keep));
    long *pos = dd_calloc(ns ? ns : 1, sizeof(*pos)), *out_pos;
    size_t *out;

    *idx = NULL;
    *pref_pos = NULL;
    *n = 0;
    out = dd_calloc(ns ? ns : 1, sizeof(*out));
    out_pos = dd_calloc(ns ? ns : 1, sizeof(*out_pos));
    if (!ks || !keep || !pos || !out || !out_pos) {
        dd_free(ks);
        dd_free(keep);
        dd_free(pos);
        dd_free(out);
        dd_free(out_pos);
        return -ENOMEM;
    }
    for (size_t i = 0; i < ns; i++) {
        ks[i] = (struct keyed){&src[i], i};
        pos[i] = -1;
    }
    qsort(ks, ns, sizeof(*ks), keyed_cmp);
    for (size_t i = 0; i < ns; i++) /* the first of equal segments */
        keep[ks[i].i] = i == 0 || dd_csi_segment_cmp(ks[i - 1].s, ks[i].s) != 0;
    /* each preferred entry's first position, given to its kept twin */
    for (size_t p = 0; p < t->n_preferred; p++) {
        struct keyed key = {&t->preferred[p], 0};
        size_t lo = 0, hi = ns;
        while (lo < hi) { /* lower bound by segment */
            size_t mid = (lo + hi) / 2;
            if (dd_csi_segment_cmp(ks[mid].s, key.s) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < ns && dd_csi_segment_cmp(ks[lo].s, key.s) == 0 && pos[ks[lo].i] < 0)
            pos[ks[lo].i] = (long)p;
    }
    for (size_t i = 0; i < ns; i++) {
        if (!keep[i])
            continue;
        out[k] = i;
        out_pos[k] = pos[i];
        k++;
    }
    dd_free(ks);
    dd_free(keep);
    dd_free(pos);
    *idx = out;
    *pref_pos = out_pos;
    *n = k;
    return 0;
}

const char *const dd_csi_class_names[4] = {"scored", "filtered", "not_reporting", "no_node"};

static int rank_cmp(const void *x, const void *y)
{
    const struct dd_csi_rank *a = x, *b = y;
    if (a->pinned != b->pinned)
        return a->pinned ? -1 : 1;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    if (a->cls == DD_CSI_SCORED && a->score != b->score)
        return b->score - a->score;
    bool fa = isfinite(a->slowdown_percent), fb = isfinite(b->slowdown_percent);
    if (a->cls == DD_CSI_SCORED && fa != fb && !isnan(a->slowdown_percent) &&
        !isnan(b->slowdown_percent))
        return fa ? -1 : 1; /* infinite (no free GPUs) after finite */
    if (a->cls == DD_CSI_SCORED && fa && fb && a->slowdown_percent != b->slowdown_percent)
        return a->slowdown_percent < b->slowdown_percent ? -1 : 1;
    if (a->cls == DD_CSI_SCORED && isnan(a->slowdown_percent) != isnan(b->slowdown_percent))
        return isnan(a->slowdown_percent) ? 1 : -1;
    unsigned long pa = a->preferred_pos < 0 ? ULONG_MAX : (unsigned long)a->preferred_pos;
    unsigned long pb = b->preferred_pos < 0 ? ULONG_MAX : (unsigned long)b->preferred_pos;
    if (pa != pb)
        return pa < pb ? -1 : 1;
    return a->entry < b->entry ? -1 : a->entry > b->entry;
}

void dd_csi_order(struct dd_csi_rank *r, size_t n)
{
    qsort(r, n, sizeof(*r), rank_cmp);
}

/* ---- CreateVolumeRequest ---- */

/* volumeCapabilities: an array of objects, kept as given */
static int get_caps(const json_t *o, const char *path, json_t **ret, char *err, size_t errlen)
{
    const json_t *v, *x;
    size_t i;
    int r;
    *ret = NULL;
    if ((r = field(o, "volumeCapabilities", "volume_capabilities", path, &v, err, errlen)) < 0 ||
        !v)
        return r;
    if (!json_is_array(v))
        return dd_fail(err, errlen, DD_E_PARSE, "volumeCapabilities: expected an array");
    json_array_foreach(v, i, x)
    {
        if (!json_is_object(x))
            return dd_fail(err, errlen, DD_E_PARSE, "volumeCapabilities[%zu]: expected an object",
                           i);
    }
    *ret = json_incref(unconst(v));
    return 0;
}

int dd_csi_create_volume_decode(const json_t *doc, struct dd_csi_create_volume *ret, char *err,
                                size_t errlen)
{
    const json_t *cr, *ar;
    bool have;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(doc))
        return dd_fail(err, errlen, DD_E_PARSE, "CreateVolumeRequest: expected a JSON object");
    if ((r = get_string(doc, "name", NULL, "", 1024, &ret->name, err, errlen)) < 0 ||
        (r = field(doc, "capacityRange", "capacity_range", "", &cr, err, errlen)) < 0 ||
        (r = field(doc, "accessibilityRequirements", "accessibility_requirements", "", &ar, err,
                   errlen)) < 0)
        goto fail;
    if (!ret->name)
        ret->name = "";
    if (cr) {
        if (!json_is_object(cr)) {
            r = dd_fail(err, errlen, DD_E_PARSE, "capacityRange: expected an object");
            goto fail;
        }
        ret->has_capacity_range = true;
        if ((r = get_int64(cr, "requiredBytes", "required_bytes", "capacityRange", &have,
                           &ret->required_bytes, err, errlen)) < 0 ||
            (r = get_int64(cr, "limitBytes", "limit_bytes", "capacityRange", &have,
                           &ret->limit_bytes, err, errlen)) < 0)
            goto fail;
    }
    if ((r = get_caps(doc, "", &ret->volume_capabilities, err, errlen)) < 0 ||
        (r = get_str_map(doc, "parameters", NULL, "", DD_CSI_MAX_PARAMETERS, &ret->parameters, err,
                         errlen)) < 0)
        goto fail;
    if (ret->parameters)
        json_incref(ret->parameters);
    if (ar) {
        ret->has_accessibility = true;
        if ((r = dd_csi_topology_req_decode(ar, "accessibilityRequirements", &ret->accessibility,
                                            err, errlen)) < 0)
            goto fail;
    }
    return 0;
fail:
    dd_csi_create_volume_release(ret);
    return r;
}

json_t *dd_csi_create_volume_to_json(const struct dd_csi_create_volume *c)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (c->name && c->name[0])
        json_object_set_new(o, "name", json_string(c->name));
    if (c->has_capacity_range) {
        json_t *cr = json_object();
        if (c->required_bytes)
            json_object_set_new(cr, "requiredBytes", int64_json(c->required_bytes));
        if (c->limit_bytes)
            json_object_set_new(cr, "limitBytes", int64_json(c->limit_bytes));
        json_object_set_new(o, "capacityRange", cr);
    }
    if (c->volume_capabilities && json_array_size(c->volume_capabilities))
        json_object_set(o, "volumeCapabilities", c->volume_capabilities);
    if (c->parameters && json_object_size(c->parameters))
        json_object_set(o, "parameters", c->parameters);
    if (c->has_accessibility)
        json_object_set_new(o, "accessibilityRequirements",
                            dd_csi_topology_req_to_json(&c->accessibility));
    return o;
}

void dd_csi_create_volume_release(struct dd_csi_create_volume *c)
{
    json_decref(c->volume_capabilities);
    json_decref(c->parameters);
    dd_csi_topology_req_release(&c->accessibility);
    memset(c, 0, sizeof(*c));
}

const char *dd_csi_parameter(const json_t *parameters, const char *key)
{
    return json_string_value(json_object_get(parameters, key));
}

/* ---- GetCapacity ---- */

int dd_csi_get_capacity_decode(const json_t *doc, struct dd_csi_get_capacity *ret, char *err,
                               size_t errlen)
{
    const json_t *t;
    int r;
    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(doc))
        return dd_fail(err, errlen, DD_E_PARSE, "GetCapacityRequest: expected a JSON object");
    if ((r = get_caps(doc, "", &ret->volume_capabilities, err, errlen)) < 0 ||
        (r = get_str_map(doc, "parameters", NULL, "", DD_CSI_MAX_PARAMETERS, &ret->parameters, err,
                         errlen)) < 0 ||
        (r = field(doc, "accessibleTopology", "accessible_topology", "", &t, err, errlen)) < 0)
        goto fail;
    if (ret->parameters)
        json_incref(ret->parameters);
    if (t) {
        ret->has_topology = true;
        if ((r = dd_csi_segment_decode(t, "accessibleTopology", &ret->topology, err, errlen)) < 0)
            goto fail;
    }
    return 0;
fail:
    dd_csi_get_capacity_release(ret);
    return r;
}

json_t *dd_csi_get_capacity_to_json(const struct dd_csi_get_capacity *g)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (g->volume_capabilities && json_array_size(g->volume_capabilities))
        json_object_set(o, "volumeCapabilities", g->volume_capabilities);
    if (g->parameters && json_object_size(g->parameters))
        json_object_set(o, "parameters", g->parameters);
    if (g->has_topology)
        json_object_set_new(o, "accessibleTopology", dd_csi_segment_to_json(&g->topology));
    return o;
}

void dd_csi_get_capacity_release(struct dd_csi_get_capacity *g)
{
    json_decref(g->volume_capabilities);
    json_decref(g->parameters);
    dd_csi_segment_release(&g->topology);
    memset(g, 0, sizeof(*g));
}

/* Only the named fields (either spelling) may appear. */
static int only_fields(const json_t *doc, const char *what, const char *const *names, size_t n,
                       char *err, size_t errlen)
{
    const char *key;
    const json_t *v;
    char kb[96];
    json_object_foreach(unconst(doc), key, v)
    {
        bool ok = false;
        for (size_t i = 0; !ok && i < n; i++)
            ok = strcmp(key, names[i]) == 0;
        if (!ok)
            return dd_fail(err, errlen, DD_E_PARSE, "%s: unknown field %s", what,
                           q(kb, sizeof(kb), key));
    }
    return 0;
}

int dd_csi_capacity_response_decode(const json_t *doc, struct dd_csi_capacity_response *ret,
                                    char *err, size_t errlen)
{
    static const char *const names[] = {"availableCapacity", "available_capacity",
                                        "maximumVolumeSize", "maximum_volume_size",
                                        "minimumVolumeSize", "minimum_volume_size"};
    bool have;
    int r;
    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(doc))
        return dd_fail(err, errlen, DD_E_PARSE, "GetCapacityResponse: expected a JSON object");
    if ((r = only_fields(doc, "GetCapacityResponse", names, DD_ARRAY_SIZE(names), err, errlen)) <
            0 ||
        (r = get_int64(doc, "availableCapacity", "available_capacity", "", &have,
                       &ret->available_capacity, err, errlen)) < 0 ||
        (r = get_int64(doc, "maximumVolumeSize", "maximum_volume_size", "", &ret->has_maximum,
                       &ret->maximum_volume_size, err, errlen)) < 0 ||
        (r = get_int64(doc, "minimumVolumeSize", "minimum_volume_size", "", &ret->has_minimum,
                       &ret->minimum_volume_size, err, errlen)) < 0)
        return r;
    return 0;
}

json_t *dd_csi_capacity_response_to_json(const struct dd_csi_capacity_response *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "availableCapacity", int64_json(r->available_capacity));
    if (r->has_maximum)
        json_object_set_new(o, "maximumVolumeSize", int64_json(r->maximum_volume_size));
    if (r->has_minimum)
        json_object_set_new(o, "minimumVolumeSize", int64_json(r->minimum_volume_size));
    return o;
}

/* ---- NodeGetInfoResponse ---- */

int dd_csi_node_info_decode(const json_t *doc, struct dd_csi_node_info *ret, char *err,
                            size_t errlen)
{
    static const char *const names[] = {"nodeId",
                                        "node_id",
                                        "maxVolumesPerNode",
                                        "max_volumes_per_node",
                                        "accessibleTopology",
                                        "accessible_topology"};
    const json_t *t;
    bool have;
    int r;
    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(doc))
        return dd_fail(err, errlen, DD_E_PARSE, "NodeGetInfoResponse: expected a JSON object");
    if ((r = only_fields(doc, "NodeGetInfoResponse", names, DD_ARRAY_SIZE(names), err, errlen)) <
            0 ||
        (r = get_string(doc, "nodeId", "node_id", "", 1024, &ret->node_id, err, errlen)) < 0 ||
        (r = get_int64(doc, "maxVolumesPerNode", "max_volumes_per_node", "", &have,
                       &ret->max_volumes_per_node, err, errlen)) < 0 ||
        (r = field(doc, "accessibleTopology", "accessible_topology", "", &t, err, errlen)) < 0)
        return r;
    if (!ret->node_id || !ret->node_id[0])
        return dd_fail(err, errlen, DD_E_PARSE, "nodeId: missing or empty");
    if (t) {
        ret->has_topology = true;
        if ((r = dd_csi_segment_decode(t, "accessibleTopology", &ret->topology, err, errlen)) < 0)
            return r;
    }
    return 0;
}

json_t *dd_csi_node_info_to_json(const struct dd_csi_node_info *n)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "nodeId", json_string(n->node_id ? n->node_id : ""));
    if (n->max_volumes_per_node)
        json_object_set_new(o, "maxVolumesPerNode", int64_json(n->max_volumes_per_node));
    if (n->has_topology)
        json_object_set_new(o, "accessibleTopology", dd_csi_segment_to_json(&n->topology));
    return o;
}

void dd_csi_node_info_release(struct dd_csi_node_info *n)
{
    dd_csi_segment_release(&n->topology);
}

/* ---- effective capacity ---- */

void dd_csi_capacity_options_init(struct dd_csi_capacity_options *o)
{
    o->safety_margin = 0.10;
    o->max_physical_use = 0.95;
    o->max_reduction = 20;
}

double dd_csi_reduction(const struct dd_csi_capacity_options *o, const char *annotation,
                        double observed, const char **source, char *note, size_t notelen)
{
    if (notelen)
        note[0] = '\0';
    if (annotation && annotation[0]) {
        double v;
        if (dd_parse_double(annotation, &v) == 0 && isfinite(v) && v >= 1 && v <= 1000) {
            *source = "storage_class";
            return v;
        }
        if (notelen) {
            char b[48];
            snprintf(note, notelen,
                     "dedupd.io/expected-reduction '%s' ignored: expected a number from 1 to 1000",
                     q(b, sizeof(b), annotation));
        }
    }
    if (observed >= 1 && isfinite(observed)) {
        *source = "observed";
        return observed > o->max_reduction ? o->max_reduction : observed;
    }
    *source = "none";
    return 1;
}

enum dd_csi_estimate_kind dd_csi_estimate_ref(const char *value, double *ret_number)
{
    double v;
    if (!value || !value[0])
        return DD_CSI_ESTIMATE_NONE;
    if (dd_parse_double(value, &v) == 0) {
        if (!(isfinite(v) && v >= 1 && v <= 1000))
            return DD_CSI_ESTIMATE_BAD;
        *ret_number = v;
        return DD_CSI_ESTIMATE_NUMBER;
    }
    if ((strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0) &&
        strstr(value, "/v1/estimate/")) {
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                return DD_CSI_ESTIMATE_BAD;
        return DD_CSI_ESTIMATE_URL;
    }
    return DD_CSI_ESTIMATE_BAD;
}

int dd_csi_estimate_job_reduction(const json_t *doc, double *ret, char *err, size_t errlen)
{
    const json_t *res = doc, *bt, *pb;
    const char *status = json_string_value(json_object_get(doc, "status"));
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "not an estimate job (a JSON object)");
        return -EINVAL;
    }
    if (status) {
        if (strcmp(status, "running") == 0)
            return -EAGAIN;
        if (strcmp(status, "done") != 0) {
            const char *m =
                json_string_value(json_object_get(json_object_get(doc, "result"), "message"));
            snprintf(err, errlen, "the estimate job %.20s%s%.200s", status, m ? ": " : "",
                     m ? m : "");
            return -EINVAL;
        }
        res = json_object_get(doc, "result");
    }
    bt = json_object_get(res, "blocks_total");
    pb = json_object_get(res, "estimated_physical_blocks");
    if (!json_is_number(bt) || !json_is_number(pb)) {
        snprintf(err, errlen,
                 "result.blocks_total and result.estimated_physical_blocks: expected numbers");
        return -EINVAL;
    }
    double total = json_number_value(bt), phys = json_number_value(pb);
    if (!(total > 0) || !(phys >= 0) || !isfinite(total) || !isfinite(phys)) {
        snprintf(err, errlen, "the estimate read no data (blocks_total %g)", total);
        return -EINVAL;
    }
    double r = phys > 0 ? total / phys : 1000;
    *ret = r < 1 ? 1 : r > 1000 ? 1000 : r;
    return 0;
}

double dd_csi_reduction_with_estimate(const struct dd_csi_capacity_options *o,
                                      const char *annotation, double estimate, double observed,
                                      const char **source, char *note, size_t notelen)
{
    double r = dd_csi_reduction(o, annotation, observed, source, note, notelen);
    if (strcmp(*source, "storage_class") != 0 && isfinite(estimate) && estimate >= 1 &&
        estimate <= 1000) {
        *source = "estimate";
        return estimate;
    }
    return r;
}

static int64_t clamp64(double v)
{
    if (!(v > 0))
        return 0;
    if (v >= 9.2e18)
        return INT64_MAX;
    return (int64_t)floor(v);
}

void dd_csi_capacity(const struct dd_csi_capacity_options *o, const struct dd_csi_volume_space *v,
                     double reduction, struct dd_csi_capacity *out)
{
    memset(out, 0, sizeof(*out));
    if (!(reduction >= 1) || !isfinite(reduction))
        reduction = 1;
    if (v->read_only || v->physical_free_bytes < 0)
        return;
    double free_b = (double)v->physical_free_bytes - (double)v->reserved_bytes;
    if (free_b < 0)
        free_b = 0;
    out->free_physical = free_b;
    double avail = free_b * reduction;
    double maxv = free_b * reduction / (1 + o->safety_margin);
    if (v->physical_bytes > 0) {
        double used = (double)(v->physical_bytes - v->physical_free_bytes);
        double room =
            o->max_physical_use * (double)v->physical_bytes - used - (double)v->reserved_bytes;
        double m2 = room * reduction / (1 + o->safety_margin);
        if (m2 < maxv)
            maxv = m2;
    }
    if (v->logical_free_bytes >= 0) {
        if ((double)v->logical_free_bytes < avail) {
            avail = (double)v->logical_free_bytes;
            out->logical_capped = true;
        }
        if ((double)v->logical_free_bytes < maxv)
            maxv = (double)v->logical_free_bytes;
    }
    out->available = clamp64(avail);
    out->maximum = clamp64(maxv);
    if (v->logical_free_bytes >= 0) { /* exactly: doubles round large int64s */
        if (out->available > v->logical_free_bytes)
            out->available = v->logical_free_bytes;
        if (out->maximum > v->logical_free_bytes)
            out->maximum = v->logical_free_bytes;
    }
    if (out->maximum > out->available)
        out->maximum = out->available;
}
