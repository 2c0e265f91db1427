/*
 * The Kubernetes cache (kube.h): five hash maps (pods and PVCs by
 * "ns/name", PVs, StorageClasses and Nodes by name) of compact records,
 * each one allocation with its strings packed behind it, replaced whole on
 * every event. Decoders read the fields we use, check their types and
 * lengths, and name the field they refuse.
 *
 * Invariants:
 * - A node entry exists while a Node object is cached (present) or any
 *   active pod (not terminated, with a node) names it; its gpu_req_milli is
 *   the sum of those pods' GPU requests, kept in thousandths so no float
 *   drift accumulates over millions of events.
 * - Hooks are collected under the write lock and run after it is released.
 * - Records carry the generation of the last (re)list or event that wrote
 *   them; dd_kube_relist_end drops those of an older generation.
 */
#define _GNU_SOURCE
#include "placement/kube.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

/* ---- kinds ---- */

static const char *const kind_names[DD_KUBE_KINDS] = {"pod",          "pvc",  "pv",
                                                      "storageclass", "node", "namespace"};
static const char *const kind_paths[DD_KUBE_KINDS] = {"/api/v1/pods",
                                                      "/api/v1/persistentvolumeclaims",
                                                      "/api/v1/persistentvolumes",
                                                      "/apis/storage.k8s.io/v1/storageclasses",
                                                      "/api/v1/nodes",
                                                      "/api/v1/namespaces"};

const char *dd_kube_kind_name(enum dd_kube_kind kind)
{
    return (unsigned)kind < DD_KUBE_KINDS ? kind_names[kind] : "?";
}

const char *dd_kube_kind_path(enum dd_kube_kind kind)
{
    return (unsigned)kind < DD_KUBE_KINDS ? kind_paths[kind] : "/";
}

/* ---- errors ---- */

/* ---- a chained hash map with intrusive entries ---- */

struct entry {
    struct entry *next;
    uint64_t hash;
    const char *key; /* inside the record */
    uint32_t gen;
};

struct map {
    struct entry **b;
    size_t nb, n;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct entry *map_find(const struct map *m, const char *key)
{
    uint64_t h;
    if (!m->nb)
        return NULL;
    h = hash_str(key);
    for (struct entry *e = m->b[h & (m->nb - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int map_grow(struct map *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64;
    struct entry **b = dd_calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        for (struct entry *e = m->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    dd_free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

/* Room for one more entry: done before any change, so an insert cannot fail
 * half way. */
static int map_reserve(struct map *m)
{
    return m->n + 1 > m->nb ? map_grow(m) : 0;
}

static void map_insert(struct map *m, struct entry *e)
{
    e->hash = hash_str(e->key);
    e->next = m->b[e->hash & (m->nb - 1)];
    m->b[e->hash & (m->nb - 1)] = e;
    m->n++;
}

static struct entry *map_remove(struct map *m, const char *key)
{
    uint64_t h;
    if (!m->nb)
        return NULL;
    h = hash_str(key);
    for (struct entry **pp = &m->b[h & (m->nb - 1)]; *pp; pp = &(*pp)->next) {
        struct entry *e = *pp;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            *pp = e->next;
            m->n--;
            return e;
        }
    }
    return NULL;
}

/* ---- records ---- */

enum { ANN_READ, ANN_WRITE, ANN_DUP, ANN_PROFILE, ANN_N };
static const char *const ann_keys[ANN_N] = {DD_KUBE_ANN_READ_MBPS, DD_KUBE_ANN_WRITE_MBPS,
                                            DD_KUBE_ANN_DUPLICATE_SHARE, DD_KUBE_ANN_PROFILE};
static const size_t ann_max[ANN_N] = {32, 32, 32, DD_NAME_MAX};

struct pclaim {
    const char *name;
    bool ephemeral;
};

struct pod {
    struct entry e; /* key "ns/name" */
    const char *uid, *ns, *name, *node, *phase, *ann[ANN_N];
    uint64_t gpu_milli;
    bool terminated, truncated;
    unsigned n_claims;
    struct pclaim claims[];
};

struct pvc {
    struct entry e; /* key "ns/name" */
    const char *sc, *volume, *selected_node, *ann[ANN_N];
    uint64_t request_bytes;
    bool bound, read_write;
};

struct pv {
    struct entry e;   /* key: name */
    const char *node; /* "" when not pinned */
    bool node_sure;   /* the key says it is a node name; else only a known node counts */
};

struct sc {
    struct entry e;
    const char *pool; /* "" when not ours */
    const char *provisioner, *binding_mode, *expected_reduction, *estimate;
    unsigned n_params;
    const char **params; /* n_params key, value pairs, packed behind the record */
};

/* A Node's labels: one allocation, n key/value pairs, strings behind. */
struct labels {
    size_t n;
    const char *kv[]; /* 2n: key, value, ... */
};

struct node {
    struct entry e;
    bool present; /* a Node object is cached */
    uint64_t gpu_alloc_milli, gpu_req_milli;
    size_t pods;           /* active pods naming it */
    struct labels *labels; /* of the cached Node object; NULL when none */
};

struct dd_kube {
    pthread_rwlock_t lock;
    struct map maps[DD_KUBE_KINDS];
    size_t nodes_present;
    uint32_t gen[DD_KUBE_KINDS];
    struct dd_kube_hooks hooks;
    size_t n_gpu;
    char gpu[DD_KUBE_MAX_GPU_RESOURCES][DD_NAME_MAX];
};

/* A hook call waiting for the lock to be released. */
enum hook_type { H_BOUND, H_DELETED, H_NODE };
struct hook {
    enum hook_type type;
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX], node[DD_NAME_MAX];
};
struct hooks {
    struct hook *v;
    size_t n, cap;
    struct hook inline_[2]; /* one event makes at most two */
};

static void hooks_init(struct hooks *h)
{
    h->v = h->inline_;
    h->n = 0;
    h->cap = DD_ARRAY_SIZE(h->inline_);
}

static struct hook *hooks_add(struct hooks *h, enum hook_type t)
{
    if (h->n == h->cap) {
        struct hook *v = NULL;
        size_t cap = 0;
        if (dd_array_reserve((void **)&v, &cap, h->cap * 2, sizeof(*v)) < 0)
            return NULL; /* out of memory: that hook is lost, the cache is right */
        memcpy(v, h->v, h->n * sizeof(*v));
        if (h->v != h->inline_)
            dd_free(h->v);
        h->v = v;
        h->cap = cap;
    }
    struct hook *x = &h->v[h->n++];
    memset(x, 0, sizeof(*x));
    x->type = t;
    return x;
}

static void hooks_run(struct dd_kube *k, struct hooks *h)
{
    const struct dd_kube_hooks *f = &k->hooks;
    for (size_t i = 0; i < h->n; i++) {
        struct hook *x = &h->v[i];
        if (x->type == H_BOUND && f->pod_bound)
            f->pod_bound(f->ctx, x->uid, x->ns, x->name, x->node);
        else if (x->type == H_DELETED && f->pod_deleted)
            f->pod_deleted(f->ctx, x->uid, x->ns, x->name, x->node);
        else if (x->type == H_NODE && f->node_deleted)
            f->node_deleted(f->ctx, x->node);
    }
    if (h->v != h->inline_)
        dd_free(h->v);
    hooks_init(h);
}

static void pod_hook(struct hooks *h, enum hook_type t, const struct pod *p)
{
    struct hook *x = hooks_add(h, t);
    if (!x)
        return;
    snprintf(x->uid, sizeof(x->uid), "%s", p->uid);
    snprintf(x->ns, sizeof(x->ns), "%s", p->ns);
    snprintf(x->name, sizeof(x->name), "%s", p->name);
    snprintf(x->node, sizeof(x->node), "%s", p->node);
}

/* ---- string packing: one block per record ---- */

struct pack {
    char *cur;
};

static size_t plen(const char *s)
{
    return s && *s ? strlen(s) + 1 : 0;
}

static const char *pput(struct pack *p, const char *s)
{
    size_t n = plen(s);
    const char *r = p->cur;
    if (!n)
        return "";
    memcpy(p->cur, s, n);
    p->cur += n;
    return r;
}

/* a + sep + b as one packed string */
static const char *pput2(struct pack *p, const char *a, char sep, const char *b)
{
    const char *r = p->cur;
    size_t na = strlen(a), nb = strlen(b);
    memcpy(p->cur, a, na);
    p->cur[na] = sep;
    memcpy(p->cur + na + 1, b, nb + 1);
    p->cur += na + nb + 2;
    return r;
}

/* ---- field readers: type and length checked, the path named ---- */

/* A string member, or NULL when absent or null. max counts the NUL. */
static int get_str(const json_t *o, const char *key, const char *path, size_t max, const char **ret,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected a string", path);
    if (json_string_length(v) >= max)
        return dd_fail(err, errlen, DD_E_PARSE, "%s: longer than %zu bytes", path, max - 1);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: holds a NUL byte", path);
    *ret = json_string_value(v);
    return 0;
}

/* An object member, or NULL when absent or null. */
static int get_obj(const json_t *o, const char *key, const char *path, const json_t **ret,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an object", path);
    *ret = v;
    return 0;
}

static int get_arr(const json_t *o, const char *key, const char *path, const json_t **ret,
                   char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an array", path);
    *ret = v;
    return 0;
}

struct meta {
    const char *name, *ns, *uid;
    const json_t *ann;
};

static int meta_decode(const json_t *obj, bool namespaced, struct meta *m, char *err, size_t errlen)
{
    const json_t *md;
    int r;
    memset(m, 0, sizeof(*m));
    if (!json_is_object(obj))
        return dd_fail(err, errlen, DD_E_PARSE, "object: expected a JSON object");
    if ((r = get_obj(obj, "metadata", "metadata", &md, err, errlen)) < 0)
        return r;
    if (!md)
        return dd_fail(err, errlen, DD_E_PARSE, "metadata: missing");
    if ((r = get_str(md, "name", "metadata.name", DD_NAME_MAX, &m->name, err, errlen)) < 0 ||
        (r = get_str(md, "namespace", "metadata.namespace", DD_NAME_MAX, &m->ns, err, errlen)) <
            0 ||
        (r = get_str(md, "uid", "metadata.uid", 128, &m->uid, err, errlen)) < 0 ||
        (r = get_obj(md, "annotations", "metadata.annotations", &m->ann, err, errlen)) < 0)
        return r;
    if (!m->name || !m->name[0] || strchr(m->name, '/'))
        return dd_fail(err, errlen, DD_E_PARSE, "metadata.name: missing, empty or holds '/'");
    if (namespaced && (!m->ns || !m->ns[0] || strchr(m->ns, '/')))
        return dd_fail(err, errlen, DD_E_PARSE, "metadata.namespace: missing, empty or holds '/'");
    return 0;
}

static int ann_get(const struct meta *m, const char *key, size_t max, const char **ret, char *err,
                   size_t errlen)
{
    char path[96];
    snprintf(path, sizeof(path), "metadata.annotations[%s]", key);
    return get_str(m->ann, key, path, max, ret, err, errlen);
}

static int read_anns(const struct meta *m, const char *out[ANN_N], char *err, size_t errlen)
{
    int r;
    for (size_t i = 0; i < ANN_N; i++)
        if ((r = ann_get(m, ann_keys[i], ann_max[i], &out[i], err, errlen)) < 0)
            return r;
    return 0;
}

/* "ns/name" into buf (DD_NAME_MAX * 2) */
static void nskey(char *buf, size_t len, const char *ns, const char *name)
{
    snprintf(buf, len, "%s/%s", ns, name);
}

/* ---- quantities ---- */

/*
 * Parses into mantissa digits (leading zeros dropped, at most 30
 * significant), a power of ten and a power of two, then scales exactly in
 * 128 bits, rounding a remaining fraction up.
 */
static int quantity(const char *s, unsigned scale10, uint64_t *ret)
{
    unsigned __int128 m = 0, v;
    int exp10 = 0, exp2 = 0, digits = 0;
    bool any = false, frac = false;
    const char *p = s;

    if (!s || !*s || strlen(s) > 64)
        return DD_E_PARSE;
    if (*p == '+')
        p++;
    for (; (*p >= '0' && *p <= '9') || (*p == '.' && !frac); p++) {
        if (*p == '.') {
            frac = true;
            continue;
        }
        any = true;
        if (m == 0 && *p == '0') {
            if (frac)
                exp10--;
            continue;
        }
        if (digits >= 30) { /* only zeros may follow without changing much: refuse */
            if (*p != '0')
                return DD_E_RANGE;
            if (!frac)
                exp10++;
            continue;
        }
        m = m * 10u + (unsigned)(*p - '0');
        digits++;
        if (frac)
            exp10--;
    }
    if (!any)
        return DD_E_PARSE;
    /* the suffix */
    static const struct {
        const char *s;
        int e10, e2;
    } sfx[] = {{"", 0, 0},    {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},
               {"k", 3, 0},   {"M", 6, 0},   {"G", 9, 0},   {"T", 12, 0},
               {"P", 15, 0},  {"E", 18, 0},  {"Ki", 0, 10}, {"Mi", 0, 20},
               {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60}};
    bool matched = false;
    for (size_t i = 0; i < DD_ARRAY_SIZE(sfx); i++) {
        if (strcmp(p, sfx[i].s) == 0) {
            exp10 += sfx[i].e10;
            exp2 += sfx[i].e2;
            matched = true;
            break;
        }
    }
    if (!matched) {
        int e = 0, sign = 1, nd = 0;
        if (*p != 'e' && *p != 'E')
            return DD_E_PARSE;
        p++;
        if (*p == '+' || *p == '-')
            sign = *p++ == '-' ? -1 : 1;
        for (; *p >= '0' && *p <= '9'; p++, nd++)
            if (e < 10000)
                e = e * 10 + (*p - '0');
        if (!nd || *p)
            return DD_E_PARSE;
        exp10 += sign * e;
    }
    if (m == 0) {
        *ret = 0;
        return 0;
    }
    exp10 += (int)scale10;
    v = m;
    for (; exp2 > 0; exp2--) {
        if (v >> 126)
            return DD_E_RANGE;
        v <<= 1;
    }
    if (exp10 > 40)
        return DD_E_RANGE;
    for (; exp10 > 0; exp10--) {
        if (v > ((unsigned __int128)~(unsigned __int128)0) / 10u)
            return DD_E_RANGE;
        v *= 10u;
    }
    if (exp10 < -45) {
        v = 1; /* a positive value this small rounds up to one unit */
    } else {
        bool rem = false;
        for (; exp10 < 0; exp10++) {
            rem |= (v % 10u) != 0;
            v /= 10u;
        }
        if (rem)
            v++;
    }
    if (v > UINT64_MAX)
        return DD_E_RANGE;
    *ret = (uint64_t)v;
    return 0;
}

int dd_kube_quantity(const char *s, uint64_t *ret)
{
    return quantity(s, 0, ret);
}

int dd_kube_quantity_milli(const char *s, uint64_t *ret)
{
    return quantity(s, 3, ret);
}

/* A quantity member (a string or, leniently, a JSON integer). */
static int get_qty(const json_t *o, const char *key, const char *path, bool milli, bool *present,
                   uint64_t *ret, char *err, size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    char buf[72];
    const char *s;
    int r;

    *present = false;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        s = buf;
    } else if (json_is_string(v)) {
        s = json_string_value(v);
    } else {
        return dd_fail(err, errlen, DD_E_PARSE, "%s[%s]: expected a quantity string", path, key);
    }
    r = milli ? dd_kube_quantity_milli(s, ret) : dd_kube_quantity(s, ret);
    if (r < 0) {
        char q[80];
        dd_quote(q, sizeof(q), s, strlen(s), 64);
        return dd_fail(err, errlen, r, "%s[%s]: %s quantity '%s'", path, key,
                       r == DD_E_RANGE ? "out of range" : "bad", q);
    }
    *present = true;
    return 0;
}

/* ---- decoders ---- */

/* GPU thousandths requested by one container list: summed (init: max). */
static int gpu_of(const struct dd_kube *k, const json_t *list, const char *what, bool init,
                  uint64_t *ret, char *err, size_t errlen)
{
    const json_t *c;
    size_t i;
    uint64_t total = 0;
    int r;

    json_array_foreach(list, i, c)
    {
        const json_t *res, *req, *lim;
        char path[96];
        uint64_t sum = 0;
        snprintf(path, sizeof(path), "spec.%s[%zu]", what, i);
        if (!json_is_object(c))
            return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an object", path);
        if ((r = get_obj(c, "resources", path, &res, err, errlen)) < 0)
            return r;
        if (!res)
            continue;
        snprintf(path, sizeof(path), "spec.%s[%zu].resources.requests", what, i);
        if ((r = get_obj(res, "requests", path, &req, err, errlen)) < 0)
            return r;
        snprintf(path, sizeof(path), "spec.%s[%zu].resources.limits", what, i);
        if ((r = get_obj(res, "limits", path, &lim, err, errlen)) < 0)
            return r;
        for (size_t g = 0; g < k->n_gpu; g++) {
            uint64_t q = 0;
            bool have = false;
            snprintf(path, sizeof(path), "spec.%s[%zu].resources.requests", what, i);
            if ((r = get_qty(req, k->gpu[g], path, true, &have, &q, err, errlen)) < 0)
                return r;
            if (!have) {
                snprintf(path, sizeof(path), "spec.%s[%zu].resources.limits", what, i);
                if ((r = get_qty(lim, k->gpu[g], path, true, &have, &q, err, errlen)) < 0)
                    return r;
            }
            if (q > UINT64_MAX / 4 - sum)
                return dd_fail(err, errlen, DD_E_RANGE, "spec.%s[%zu]: GPU requests out of range",
                               what, i);
            sum += q;
        }
        if (init)
            total = DD_MAX(total, sum);
        else if (sum > UINT64_MAX / 4 - total)
            return dd_fail(err, errlen, DD_E_RANGE, "spec.%s: GPU requests out of range", what);
        else
            total += sum;
    }
    *ret = total;
    return 0;
}

static int pod_decode(const struct dd_kube *k, const json_t *obj, struct pod **ret, char *err,
                      size_t errlen)
{
    struct meta m;
    const json_t *spec, *status, *vols, *ctrs, *inits, *v;
    const char *node = NULL, *phase = NULL, *ann[ANN_N];
    struct {
        const char *a, *b; /* claim name, or a "-" b for an ephemeral volume */
    } cl[DD_KUBE_MAX_CLAIMS];
    unsigned n = 0;
    bool truncated = false;
    uint64_t g_main = 0, g_init = 0;
    size_t i, need;
    int r;

    if ((r = meta_decode(obj, true, &m, err, errlen)) < 0 ||
        (r = get_obj(obj, "spec", "spec", &spec, err, errlen)) < 0 ||
        (r = get_obj(obj, "status", "status", &status, err, errlen)) < 0 ||
        (r = get_str(spec, "nodeName", "spec.nodeName", DD_NAME_MAX, &node, err, errlen)) < 0 ||
        (r = get_str(status, "phase", "status.phase", 16, &phase, err, errlen)) < 0 ||
        (r = read_anns(&m, ann, err, errlen)) < 0 ||
        (r = get_arr(spec, "volumes", "spec.volumes", &vols, err, errlen)) < 0 ||
        (r = get_arr(spec, "containers", "spec.containers", &ctrs, err, errlen)) < 0 ||
        (r = get_arr(spec, "initContainers", "spec.initContainers", &inits, err, errlen)) < 0)
        return r;
    json_array_foreach(vols, i, v)
    {
        const json_t *pvc, *eph;
        const char *vname, *claim;
        char path[96];
        snprintf(path, sizeof(path), "spec.volumes[%zu]", i);
        if (!json_is_object(v))
            return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an object", path);
        snprintf(path, sizeof(path), "spec.volumes[%zu].name", i);
        if ((r = get_str(v, "name", path, DD_NAME_MAX, &vname, err, errlen)) < 0)
            return r;
        snprintf(path, sizeof(path), "spec.volumes[%zu].persistentVolumeClaim", i);
        if ((r = get_obj(v, "persistentVolumeClaim", path, &pvc, err, errlen)) < 0)
            return r;
        snprintf(path, sizeof(path), "spec.volumes[%zu].ephemeral", i);
        if ((r = get_obj(v, "ephemeral", path, &eph, err, errlen)) < 0)
            return r;
        if (pvc) {
            snprintf(path, sizeof(path), "spec.volumes[%zu].persistentVolumeClaim.claimName", i);
            if ((r = get_str(pvc, "claimName", path, DD_NAME_MAX, &claim, err, errlen)) < 0)
                return r;
            if (!claim || !claim[0])
                return dd_fail(err, errlen, DD_E_PARSE, "%s: missing", path);
            if (n < DD_KUBE_MAX_CLAIMS)
                cl[n++] = (typeof(cl[0])){claim, NULL};
            else
                truncated = true;
        } else if (eph) {
            /* the ephemeral volume controller names the PVC <pod>-<volume> */
            if (!vname || !vname[0])
                return dd_fail(err, errlen, DD_E_PARSE, "spec.volumes[%zu].name: missing", i);
            if (strlen(m.name) + 1 + strlen(vname) >= DD_NAME_MAX)
                return dd_fail(err, errlen, DD_E_PARSE,
                               "spec.volumes[%zu]: ephemeral claim name '<pod>-<volume>' longer "
                               "than %u bytes",
                               i, DD_NAME_MAX - 1);
            if (n < DD_KUBE_MAX_CLAIMS)
                cl[n++] = (typeof(cl[0])){m.name, vname};
            else
                truncated = true;
        }
    }
    if ((r = gpu_of(k, ctrs, "containers", false, &g_main, err, errlen)) < 0 ||
        (r = gpu_of(k, inits, "initContainers", true, &g_init, err, errlen)) < 0)
        return r;

    need = sizeof(struct pod) + n * sizeof(struct pclaim) + strlen(m.ns) + strlen(m.name) + 2 +
           plen(m.ns) + plen(m.name) + plen(m.uid) + plen(node) + plen(phase);
    for (size_t a = 0; a < ANN_N; a++)
        need += plen(ann[a]);
    for (unsigned c = 0; c < n; c++)
        need += strlen(cl[c].a) + (cl[c].b ? strlen(cl[c].b) + 1 : 0) + 1;
    struct pod *p = dd_calloc(1, need);
    if (!p)
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    struct pack pk = {(char *)p + sizeof(struct pod) + n * sizeof(struct pclaim)};
    p->e.key = pput2(&pk, m.ns, '/', m.name);
    p->ns = pput(&pk, m.ns);
    p->name = pput(&pk, m.name);
    p->uid = pput(&pk, m.uid);
    p->node = pput(&pk, node);
    p->phase = pput(&pk, phase);
    for (size_t a = 0; a < ANN_N; a++)
        p->ann[a] = pput(&pk, ann[a]);
    for (unsigned c = 0; c < n; c++) {
        p->claims[c].name = cl[c].b ? pput2(&pk, cl[c].a, '-', cl[c].b) : pput(&pk, cl[c].a);
        p->claims[c].ephemeral = cl[c].b != NULL;
    }
    p->n_claims = n;
    p->truncated = truncated;
    p->gpu_milli = DD_MAX(g_main, g_init);
    p->terminated = phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
    *ret = p;
    return 0;
}

static int pvc_decode(const json_t *obj, struct pvc **ret, char *err, size_t errlen)
{
    struct meta m;
    const json_t *spec, *status, *res = NULL, *req = NULL, *modes, *x;
    const char *sc = NULL, *vol = NULL, *sel = NULL, *phase = NULL, *ann[ANN_N];
    uint64_t bytes = 0;
    bool have, rw = false;
    size_t i, need;
    int r;

    if ((r = meta_decode(obj, true, &m, err, errlen)) < 0 ||
        (r = get_obj(obj, "spec", "spec", &spec, err, errlen)) < 0 ||
        (r = get_obj(obj, "status", "status", &status, err, errlen)) < 0 ||
        (r = get_str(spec, "storageClassName", "spec.storageClassName", DD_NAME_MAX, &sc, err,
                     errlen)) < 0 ||
        (r = get_str(spec, "volumeName", "spec.volumeName", DD_NAME_MAX, &vol, err, errlen)) < 0 ||
        (r = get_str(status, "phase", "status.phase", 16, &phase, err, errlen)) < 0 ||
        (r = ann_get(&m, DD_KUBE_ANN_SELECTED_NODE, DD_NAME_MAX, &sel, err, errlen)) < 0 ||
        (r = read_anns(&m, ann, err, errlen)) < 0 ||
        (r = get_obj(spec, "resources", "spec.resources", &res, err, errlen)) < 0 ||
        (r = get_obj(res, "requests", "spec.resources.requests", &req, err, errlen)) < 0 ||
        (r = get_qty(req, "storage", "spec.resources.requests", false, &have, &bytes, err,
                     errlen)) < 0 ||
        (r = get_arr(spec, "accessModes", "spec.accessModes", &modes, err, errlen)) < 0)
        return r;
    /* no class in the spec: the beta annotation older clusters still set */
    if (!sc && (r = ann_get(&m, "volume.beta.kubernetes.io/storage-class", DD_NAME_MAX, &sc, err,
                            errlen)) < 0)
        return r;
    json_array_foreach(modes, i, x)
    {
        if (!json_is_string(x))
            return dd_fail(err, errlen, DD_E_PARSE, "spec.accessModes[%zu]: expected a string", i);
        if (strcmp(json_string_value(x), "ReadOnlyMany") != 0)
            rw = true;
    }
    if (!json_array_size(modes))
        rw = true;
    need =
        sizeof(struct pvc) + strlen(m.ns) + strlen(m.name) + 2 + plen(sc) + plen(vol) + plen(sel);
    for (size_t a = 0; a < ANN_N; a++)
        need += plen(ann[a]);
    struct pvc *c = dd_calloc(1, need);
    if (!c)
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    struct pack pk = {(char *)(c + 1)};
    c->e.key = pput2(&pk, m.ns, '/', m.name);
    c->sc = pput(&pk, sc);
    c->volume = pput(&pk, vol);
    c->selected_node = pput(&pk, sel);
    for (size_t a = 0; a < ANN_N; a++)
        c->ann[a] = pput(&pk, ann[a]);
    c->request_bytes = bytes;
    c->read_write = rw;
    c->bound = phase && strcmp(phase, "Bound") == 0;
    *ret = c;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The node a PV is pinned to: its one required node selector term holding
 * a single-value In expression. */
static int pv_node(const json_t *spec, const char **ret, bool *sure, char *err, size_t errlen)
{
    const json_t *na, *req, *terms, *t, *exprs, *e;
    size_t i, j;
    int r;

    *ret = NULL;
    *sure = false;
    if ((r = get_obj(spec, "nodeAffinity", "spec.nodeAffinity", &na, err, errlen)) < 0 ||
        (r = get_obj(na, "required", "spec.nodeAffinity.required", &req, err, errlen)) < 0 ||
        (r = get_arr(req, "nodeSelectorTerms", "spec.nodeAffinity.required.nodeSelectorTerms",
                     &terms, err, errlen)) < 0)
        return r;
    json_array_foreach(terms, i, t)
    {
        char path[128];
        snprintf(path, sizeof(path), "spec.nodeAffinity.required.nodeSelectorTerms[%zu]", i);
        if (!json_is_object(t))
            return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an object", path);
        snprintf(path, sizeof(path),
                 "spec.nodeAffinity.required.nodeSelectorTerms[%zu].matchExpressions", i);
        if ((r = get_arr(t, "matchExpressions", path, &exprs, err, errlen)) < 0)
            return r;
        json_array_foreach(exprs, j, e)
        {
            const char *key, *op;
            const json_t *vals;
            snprintf(path, sizeof(path),
                     "spec.nodeAffinity.required.nodeSelectorTerms[%zu].matchExpressions[%zu]", i,
                     j);
            if (!json_is_object(e))
                return dd_fail(err, errlen, DD_E_PARSE, "%s: expected an object", path);
            if ((r = get_str(e, "key", path, DD_NAME_MAX, &key, err, errlen)) < 0 ||
                (r = get_str(e, "operator", path, 32, &op, err, errlen)) < 0 ||
                (r = get_arr(e, "values", path, &vals, err, errlen)) < 0)
                return r;
            if (!key || !op || strcmp(op, "In") != 0 || json_array_size(vals) != 1)
                continue;
            const json_t *v0 = json_array_get(vals, 0);
            if (!json_is_string(v0) || json_string_length(v0) >= DD_NAME_MAX ||
                !json_string_length(v0))
                return dd_fail(err, errlen, DD_E_PARSE, "%s.values[0]: expected a node name", path);
            if (i > 0) { /* terms are ORed: more than one, no single node */
                *ret = NULL;
                *sure = false;
                return 0;
            }
            if (!*ret || strcmp(key, "kubernetes.io/hostname") == 0) {
                *ret = json_string_value(v0);
                *sure = strcmp(key, "kubernetes.io/hostname") == 0 || ends_with(key, "/node") ||
                        ends_with(key, "/hostname");
            }
        }
    }
    return 0;
}

static int pv_decode(const json_t *obj, struct pv **ret, char *err, size_t errlen)
{
    struct meta m;
    const json_t *spec;
    const char *node = NULL;
    bool sure = false;
    int r;

    if ((r = meta_decode(obj, false, &m, err, errlen)) < 0 ||
        (r = get_obj(obj, "spec", "spec", &spec, err, errlen)) < 0 ||
        (r = pv_node(spec, &node, &sure, err, errlen)) < 0)
        return r;
    struct pv *v = dd_calloc(1, sizeof(*v) + plen(m.name) + plen(node));
    if (!v)
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    struct pack pk = {(char *)(v + 1)};
    v->e.key = pput(&pk, m.name);
    v->node = pput(&pk, node);
    v->node_sure = sure;
    *ret = v;
    return 0;
}

/* jansson's iteration takes a non-const object; reading does not change it */
static json_t *unconst(const json_t *o)
{
    json_t *r;
    memcpy(&r, &o, sizeof(r));
    return r;
}

/* A string-valued map (labels, parameters): counts its pairs and bytes,
 * checking each value's type and length. */
static int str_map(const json_t *o, const char *path, size_t key_max, size_t val_max, size_t *ret_n,
                   size_t *ret_bytes, char *err, size_t errlen)
{
    const char *key;
    const json_t *v;
    *ret_n = 0;
    *ret_bytes = 0;
    json_object_foreach(unconst(o), key, v)
    {
        if (!json_is_string(v))
            return dd_fail(err, errlen, DD_E_PARSE, "%s[%.200s]: expected a string", path, key);
        if (strlen(key) >= key_max || json_string_length(v) >= val_max ||
            strlen(json_string_value(v)) != json_string_length(v))
            return dd_fail(err, errlen, DD_E_PARSE, "%s[%.200s]: too long or holds a NUL byte",
                           path, key);
        (*ret_n)++;
        *ret_bytes += strlen(key) + json_string_length(v) + 2;
    }
    return 0;
}

static void str_map_pack(const json_t *o, struct pack *pk, const char **kv)
{
    const char *key;
    const json_t *v;
    size_t i = 0;
    json_object_foreach(unconst(o), key, v)
    {
        const char *k = pk->cur;
        size_t nk = strlen(key) + 1, nv = json_string_length(v) + 1;
        memcpy(pk->cur, key, nk);
        pk->cur += nk;
        kv[i++] = k;
        kv[i] = pk->cur;
        memcpy(pk->cur, json_string_value(v), nv);
        pk->cur += nv;
        i++;
    }
}

static int sc_decode(const json_t *obj, struct sc **ret, char *err, size_t errlen)
{
    struct meta m;
    const char *pool = NULL, *prov = NULL, *mode = NULL, *red = NULL, *est = NULL;
    const json_t *params;
    size_t np = 0, pbytes = 0;
    int r;

    if ((r = meta_decode(obj, false, &m, err, errlen)) < 0 ||
        (r = ann_get(&m, DD_KUBE_ANN_POOL, DD_NAME_MAX, &pool, err, errlen)) < 0 ||
        (r = ann_get(&m, DD_KUBE_ANN_EXPECTED_REDUCTION, 32, &red, err, errlen)) < 0 ||
        (r = ann_get(&m, DD_KUBE_ANN_ESTIMATE, DD_NAME_MAX, &est, err, errlen)) < 0 ||
        (r = get_str(obj, "provisioner", "provisioner", DD_NAME_MAX, &prov, err, errlen)) < 0 ||
        (r = get_str(obj, "volumeBindingMode", "volumeBindingMode", 32, &mode, err, errlen)) < 0 ||
        (r = get_obj(obj, "parameters", "parameters", &params, err, errlen)) < 0 ||
        (r = str_map(params, "parameters", 2 * DD_NAME_MAX, 4096, &np, &pbytes, err, errlen)) < 0)
        return r;
    if (np > DD_KUBE_MAX_SC_PARAMS)
        return dd_fail(err, errlen, DD_E_PARSE, "parameters: more than %u", DD_KUBE_MAX_SC_PARAMS);
    struct sc *s = dd_calloc(1, sizeof(*s) + 2 * np * sizeof(char *) + plen(m.name) + plen(pool) +
                                    plen(prov) + plen(mode) + plen(red) + plen(est) + pbytes);
    if (!s)
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    s->params = (const char **)(s + 1);
    struct pack pk = {(char *)(s->params + 2 * np)};
    s->e.key = pput(&pk, m.name);
    s->pool = pput(&pk, pool);
    s->provisioner = pput(&pk, prov);
    s->binding_mode = pput(&pk, mode);
    s->expected_reduction = pput(&pk, red);
    s->estimate = pput(&pk, est);
    s->n_params = (unsigned)np;
    str_map_pack(params, &pk, s->params);
    *ret = s;
    return 0;
}

/* A Namespace: its name and labels, one allocation. */
struct nsrec {
    struct entry e;
    size_t n;
    const char *kv[]; /* 2n: key, value, ...; strings behind */
};

static int ns_decode(const json_t *obj, struct nsrec **ret, char *err, size_t errlen)
{
    struct meta m;
    const json_t *lab;
    size_t n = 0, bytes = 0;
    int r;
    if ((r = meta_decode(obj, false, &m, err, errlen)) < 0 ||
        (r = get_obj(json_object_get(obj, "metadata"), "labels", "metadata.labels", &lab, err,
                     errlen)) < 0 ||
        (r = str_map(lab, "metadata.labels", DD_KUBE_MAX_LABEL_KEY, DD_KUBE_MAX_LABEL_VALUE, &n,
                     &bytes, err, errlen)) < 0)
        return r;
    if (n > DD_KUBE_MAX_NODE_LABELS)
        return dd_fail(err, errlen, DD_E_PARSE, "metadata.labels: more than %u",
                       DD_KUBE_MAX_NODE_LABELS);
    struct nsrec *x = dd_calloc(1, sizeof(*x) + 2 * n * sizeof(char *) + plen(m.name) + bytes);
    if (!x)
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    struct pack pk = {(char *)(x->kv + 2 * n)};
    x->e.key = pput(&pk, m.name);
    x->n = n;
    str_map_pack(lab, &pk, x->kv);
    *ret = x;
    return 0;
}

/* A Node's labels (NULL when it has none). */
static int labels_decode(const struct meta *m, const json_t *obj, struct labels **ret, char *err,
                         size_t errlen)
{
    const json_t *md = json_object_get(obj, "metadata"), *lab;
    size_t n = 0, bytes = 0;
    int r;
    *ret = NULL;
    (void)m;
    if ((r = get_obj(md, "labels", "metadata.labels", &lab, err, errlen)) < 0 ||
        (r = str_map(lab, "metadata.labels", DD_KUBE_MAX_LABEL_KEY, DD_KUBE_MAX_LABEL_VALUE, &n,
                     &bytes, err, errlen)) < 0)
        return r;
    if (n > DD_KUBE_MAX_NODE_LABELS)
        return dd_fail(err, errlen, DD_E_PARSE, "metadata.labels: more than %u",
                       DD_KUBE_MAX_NODE_LABELS);
    if (!n)
        return 0;
    struct labels *l = dd_calloc(1, sizeof(*l) + 2 * n * sizeof(char *) + bytes);
    if (!l)
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    struct pack pk = {(char *)(l->kv + 2 * n)};
    l->n = n;
    str_map_pack(lab, &pk, l->kv);
    *ret = l;
    return 0;
}

/* A Node: its name and the allocatable GPUs (the new record is not yet in
 * the map; accounting fields are carried over by the caller). */
static int node_decode(const struct dd_kube *k, const json_t *obj, const char **ret_name,
                       uint64_t *ret_alloc, struct labels **ret_labels, char *err, size_t errlen)
{
    struct meta m;
    const json_t *status, *alloc;
    uint64_t sum = 0;
    int r;

    if ((r = meta_decode(obj, false, &m, err, errlen)) < 0 ||
        (r = get_obj(obj, "status", "status", &status, err, errlen)) < 0 ||
        (r = get_obj(status, "allocatable", "status.allocatable", &alloc, err, errlen)) < 0)
        return r;
    for (size_t g = 0; g < k->n_gpu; g++) {
        uint64_t q = 0;
        bool have;
        if ((r = get_qty(alloc, k->gpu[g], "status.allocatable", true, &have, &q, err, errlen)) < 0)
            return r;
        if (q > UINT64_MAX / 4 - sum)
            return dd_fail(err, errlen, DD_E_RANGE, "status.allocatable: GPUs out of range");
        sum += q;
    }
    if ((r = labels_decode(&m, obj, ret_labels, err, errlen)) < 0)
        return r;
    *ret_name = m.name;
    *ret_alloc = sum;
    return 0;
}

/* ---- the cache ---- */

int dd_kube_new(struct dd_kube **ret, const char *const *gpu_resources, size_t n_gpu_resources)
{
    struct dd_kube *k;
    if (n_gpu_resources > DD_KUBE_MAX_GPU_RESOURCES)
        return -EINVAL;
    for (size_t i = 0; i < n_gpu_resources; i++)
        if (!gpu_resources[i] || !gpu_resources[i][0] || strlen(gpu_resources[i]) >= DD_NAME_MAX)
            return -EINVAL;
    k = dd_calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    if (pthread_rwlock_init(&k->lock, NULL) != 0) {
        dd_free(k);
        return -ENOMEM;
    }
    if (n_gpu_resources == 0) {
        snprintf(k->gpu[0], sizeof(k->gpu[0]), "%s", DD_KUBE_GPU_DEFAULT);
        k->n_gpu = 1;
    }
    for (size_t i = 0; i < n_gpu_resources; i++)
        snprintf(k->gpu[k->n_gpu++], sizeof(k->gpu[0]), "%s", gpu_resources[i]);
    *ret = k;
    return 0;
}

struct dd_kube *dd_kube_free(struct dd_kube *k)
{
    if (!k)
        return NULL;
    for (size_t i = 0; i < DD_KUBE_KINDS; i++) {
        struct map *m = &k->maps[i];
        for (size_t b = 0; b < m->nb; b++) {
            for (struct entry *e = m->b[b], *next; e; e = next) {
                next = e->next;
                if (i == DD_KUBE_NODE)
                    dd_free(((struct node *)e)->labels);
                dd_free(e);
            }
        }
        dd_free(m->b);
    }
    pthread_rwlock_destroy(&k->lock);
    dd_free(k);
    return NULL;
}

void dd_kube_set_hooks(struct dd_kube *k, const struct dd_kube_hooks *h)
{
    pthread_rwlock_wrlock(&k->lock);
    k->hooks = *h;
    pthread_rwlock_unlock(&k->lock);
}

static bool pod_active(const struct pod *p)
{
    return p && !p->terminated && p->node[0];
}

/* The node entry for an active pod, made if needed (room reserved before). */
static struct node *node_entry(struct dd_kube *k, const char *name)
{
    struct node *n = (struct node *)map_find(&k->maps[DD_KUBE_NODE], name);
    if (n)
        return n;
    n = dd_calloc(1, sizeof(*n) + strlen(name) + 1);
    if (!n)
        return NULL;
    memcpy(n + 1, name, strlen(name) + 1);
    n->e.key = (const char *)(n + 1);
    n->e.gen = k->gen[DD_KUBE_NODE] - 1; /* not listed: a relist never drops it for that */
    map_insert(&k->maps[DD_KUBE_NODE], &n->e);
    return n;
}

static void node_maybe_free(struct dd_kube *k, struct node *n)
{
    if (!n->present && n->pods == 0) {
        map_remove(&k->maps[DD_KUBE_NODE], n->e.key);
        dd_free(n->labels);
        dd_free(n);
    }
}

/* Replaces (or with nw NULL removes) the pod at key, keeping the node
 * accounting and collecting hooks. Room in both maps is reserved. */
static void pod_replace(struct dd_kube *k, const char *key, struct pod *nw, struct hooks *h)
{
    struct pod *old = (struct pod *)map_remove(&k->maps[DD_KUBE_POD], key);
    bool oa = pod_active(old), na = pod_active(nw);
    bool same = oa && na && strcmp(old->node, nw->node) == 0;

    if (oa) {
        struct node *n = (struct node *)map_find(&k->maps[DD_KUBE_NODE], old->node);
        if (n) {
            n->gpu_req_milli -= DD_MIN(n->gpu_req_milli, old->gpu_milli);
            n->pods--;
            if (!same)
                node_maybe_free(k, n);
        }
        if (!same)
            pod_hook(h, H_DELETED, old);
    }
    if (nw) {
        nw->e.gen = k->gen[DD_KUBE_POD];
        map_insert(&k->maps[DD_KUBE_POD], &nw->e);
    }
    if (na) {
        struct node *n = node_entry(k, nw->node);
        if (n) {
            n->gpu_req_milli += nw->gpu_milli;
            n->pods++;
        }
        if (!same)
            pod_hook(h, H_BOUND, nw);
    }
    dd_free(old);
}

static void node_delete(struct dd_kube *k, struct node *n, struct hooks *h)
{
    struct hook *x;
    if (!n->present)
        return;
    n->present = false;
    n->gpu_alloc_milli = 0;
    dd_free(n->labels);
    n->labels = NULL;
    k->nodes_present--;
    if ((x = hooks_add(h, H_NODE)))
        snprintf(x->node, sizeof(x->node), "%s", n->e.key);
    node_maybe_free(k, n);
}

int dd_kube_apply(struct dd_kube *k, enum dd_kube_kind kind, enum dd_kube_event ev,
                  const json_t *obj, char *err, size_t errlen)
{
    struct entry *rec = NULL;
    const char *node_name = NULL;
    uint64_t node_alloc = 0;
    struct labels *node_labels = NULL;
    char key[2 * DD_NAME_MAX + 2];
    struct hooks h;
    int r = 0;

    if ((unsigned)kind >= DD_KUBE_KINDS || (unsigned)ev > DD_KUBE_DELETED)
        return dd_fail(err, errlen, -EINVAL, "unknown kind or event");
    if (ev == DD_KUBE_DELETED) {
        struct meta m;
        bool ns = kind == DD_KUBE_POD || kind == DD_KUBE_PVC;
        if ((r = meta_decode(obj, ns, &m, err, errlen)) < 0)
            return r;
        if (ns)
            nskey(key, sizeof(key), m.ns, m.name);
        else
            snprintf(key, sizeof(key), "%s", m.name);
    } else {
        switch (kind) {
        case DD_KUBE_POD:
            r = pod_decode(k, obj, (struct pod **)&rec, err, errlen);
            break;
        case DD_KUBE_PVC:
            r = pvc_decode(obj, (struct pvc **)&rec, err, errlen);
            break;
        case DD_KUBE_PV:
            r = pv_decode(obj, (struct pv **)&rec, err, errlen);
            break;
        case DD_KUBE_SC:
            r = sc_decode(obj, (struct sc **)&rec, err, errlen);
            break;
        case DD_KUBE_NAMESPACE:
            r = ns_decode(obj, (struct nsrec **)&rec, err, errlen);
            break;
        default:
            r = node_decode(k, obj, &node_name, &node_alloc, &node_labels, err, errlen);
            break;
        }
        if (r < 0)
            return r;
    }

    hooks_init(&h);
    pthread_rwlock_wrlock(&k->lock);
    /* room first: past this point nothing fails */
    if (map_reserve(&k->maps[kind]) < 0 ||
        (kind == DD_KUBE_POD && map_reserve(&k->maps[DD_KUBE_NODE]) < 0)) {
        pthread_rwlock_unlock(&k->lock);
        dd_free(rec);
        dd_free(node_labels);
        return dd_fail(err, errlen, -ENOMEM, "out of memory");
    }
    if (kind == DD_KUBE_NODE) {
        struct node *n;
        const char *name = ev == DD_KUBE_DELETED ? key : node_name;
        n = (struct node *)map_find(&k->maps[DD_KUBE_NODE], name);
        if (ev == DD_KUBE_DELETED) {
            if (n)
                node_delete(k, n, &h);
        } else if (n || (n = node_entry(k, name))) {
            if (!n->present)
                k->nodes_present++;
            n->present = true;
            n->gpu_alloc_milli = node_alloc;
            n->e.gen = k->gen[DD_KUBE_NODE];
            dd_free(n->labels);
            n->labels = node_labels;
            node_labels = NULL;
        } else {
            r = dd_fail(err, errlen, -ENOMEM, "out of memory");
        }
    } else if (kind == DD_KUBE_POD) {
        pod_replace(k, ev == DD_KUBE_DELETED ? key : rec->key, (struct pod *)rec, &h);
    } else {
        struct entry *old = map_remove(&k->maps[kind], ev == DD_KUBE_DELETED ? key : rec->key);
        if (rec) {
            rec->gen = k->gen[kind];
            map_insert(&k->maps[kind], rec);
        }
        dd_free(old);
    }
    pthread_rwlock_unlock(&k->lock);
    dd_free(node_labels); /* a deletion's, or one not taken */
    hooks_run(k, &h);
    return r;
}

void dd_kube_relist_begin(struct dd_kube *k, enum dd_kube_kind kind)
{
    pthread_rwlock_wrlock(&k->lock);
    k->gen[kind]++;
    pthread_rwlock_unlock(&k->lock);
}

size_t dd_kube_relist_end(struct dd_kube *k, enum dd_kube_kind kind)
{
    struct map *m = &k->maps[kind];
    struct hooks h;
    size_t gone = 0;

    hooks_init(&h);
    pthread_rwlock_wrlock(&k->lock);
    for (size_t b = 0; b < m->nb; b++) {
        for (struct entry *e = m->b[b], *next; e; e = next) {
            next = e->next;
            if (e->gen == k->gen[kind])
                continue;
            if (kind == DD_KUBE_NODE) {
                struct node *n = (struct node *)e;
                if (n->present) {
                    node_delete(k, n, &h); /* may free e; next is kept */
                    gone++;
                }
            } else if (kind == DD_KUBE_POD) {
                pod_replace(k, e->key, NULL, &h);
                gone++;
            } else {
                map_remove(m, e->key);
                dd_free(e);
                gone++;
            }
        }
    }
    pthread_rwlock_unlock(&k->lock);
    hooks_run(k, &h);
    if (k->hooks.relisted)
        k->hooks.relisted(k->hooks.ctx, kind);
    return gone;
}

int dd_kube_apply_list_page(struct dd_kube *k, enum dd_kube_kind kind, const char *body, size_t len,
                            char *ret_rv, size_t rvlen, char *ret_continue, size_t contlen,
                            size_t *ret_refused, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    const json_t *md, *items, *it;
    const char *rv = NULL, *cont = NULL;
    size_t i, refused = 0;
    char ierr[256];
    int r;

    if (!doc)
        return dd_fail(err, errlen, DD_E_PARSE, "list: line %d, column %d: %s", jerr.line,
                       jerr.column, jerr.text);
    if (!json_is_object(doc)) {
        r = dd_fail(err, errlen, DD_E_PARSE, "list: expected a JSON object");
        goto out;
    }
    if ((r = get_obj(doc, "metadata", "list metadata", &md, err, errlen)) < 0 ||
        (r = get_str(md, "resourceVersion", "list metadata.resourceVersion", rvlen, &rv, err,
                     errlen)) < 0 ||
        (r = get_str(md, "continue", "list metadata.continue", contlen, &cont, err, errlen)) < 0 ||
        (r = get_arr(doc, "items", "list items", &items, err, errlen)) < 0)
        goto out;
    if (r == 0 && (!md || !json_object_get(doc, "items"))) {
        r = dd_fail(err, errlen, DD_E_PARSE, "list: no %s", md ? "items" : "metadata");
        goto out;
    }
    json_array_foreach(items, i, it)
    {
        if (dd_kube_apply(k, kind, DD_KUBE_ADDED, it, ierr, sizeof(ierr)) < 0) {
            if (!refused)
                snprintf(err, errlen, "items[%zu]: %s", i, ierr);
            refused++;
        }
    }
    snprintf(ret_rv, rvlen, "%s", rv ? rv : "");
    snprintf(ret_continue, contlen, "%s", cont ? cont : "");
    *ret_refused = refused;
    r = 0;
out:
    json_decref(doc);
    return r;
}

/* ---- the watch stream ---- */

void dd_kube_lines_init(struct dd_kube_lines *l, size_t max)
{
    memset(l, 0, sizeof(*l));
    l->max = max;
}

void dd_kube_lines_reset(struct dd_kube_lines *l)
{
    l->len = 0;
    l->failed = 0;
}

void dd_kube_lines_release(struct dd_kube_lines *l)
{
    dd_free(l->buf);
    dd_kube_lines_init(l, l->max);
}

size_t dd_kube_lines_pending(const struct dd_kube_lines *l)
{
    return l->len;
}

static int emit(const char *line, size_t len, dd_kube_line_fn fn, void *ud)
{
    if (len && line[len - 1] == '\r')
        len--;
    return len ? fn(ud, line, len) : 0;
}

int dd_kube_lines_feed(struct dd_kube_lines *l, const char *data, size_t len, dd_kube_line_fn fn,
                       void *ud)
{
    int r;
    if (l->failed)
        return l->failed;
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (l->len + take > l->max)
            return l->failed = DD_E_TOOBIG;
        if (nl && l->len == 0) { /* a whole line in this piece: no copy */
            if ((r = emit(data, take, fn, ud)) < 0)
                return r;
        } else {
            if (l->len + take + 1 > l->alloc) {
                size_t a = DD_MAX(l->alloc * 2, l->len + take + 1);
                char *b = dd_realloc(l->buf, DD_MAX(a, 4096u));
                if (!b)
                    return l->failed = -ENOMEM;
                l->buf = b;
                l->alloc = DD_MAX(a, 4096u);
            }
            memcpy(l->buf + l->len, data, take);
            l->len += take;
            if (nl) {
                size_t n = l->len;
                l->len = 0;
                if ((r = emit(l->buf, n, fn, ud)) < 0)
                    return r;
            }
        }
        if (!nl)
            break;
        data += take + 1;
        len -= take + 1;
    }
    return 0;
}

int dd_kube_watch_event_decode(const char *line, size_t len, struct dd_kube_watch_event *ev,
                               char *err, size_t errlen)
{
    static const char *const types[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
    json_error_t jerr;
    json_t *doc = json_loadb(line, len, 0, &jerr), *obj;
    const char *type = NULL, *rv = NULL, *msg = NULL;
    const json_t *md = NULL;
    struct dd_kube_watch_event e;
    int r;

    memset(&e, 0, sizeof(e));
    if (!doc)
        return dd_fail(err, errlen, DD_E_PARSE, "watch event: column %d: %s", jerr.column,
                       jerr.text);
    if (!json_is_object(doc)) {
        r = dd_fail(err, errlen, DD_E_PARSE, "watch event: expected a JSON object");
        goto bad;
    }
    if ((r = get_str(doc, "type", "watch event type", 16, &type, err, errlen)) < 0)
        goto bad;
    for (e.type = 0; type && e.type < DD_ARRAY_SIZE(types); e.type++)
        if (strcmp(type, types[e.type]) == 0)
            break;
    if (!type || e.type == DD_ARRAY_SIZE(types)) {
        char q[40];
        dd_quote(q, sizeof(q), type ? type : "", type ? strlen(type) : 0, 16);
        r = dd_fail(err, errlen, DD_E_PARSE,
                    "watch event type: '%s' is not one of ADDED, MODIFIED, "
                    "DELETED, BOOKMARK, ERROR",
                    q);
        goto bad;
    }
    obj = json_object_get(doc, "object");
    if (!json_is_object(obj)) {
        r = dd_fail(err, errlen, DD_E_PARSE, "watch event object: expected a JSON object");
        goto bad;
    }
    if (e.type == DD_KUBE_W_ERROR) {
        const json_t *code = json_object_get(obj, "code");
        if ((r = get_str(obj, "message", "watch ERROR message", 1u << 16, &msg, err, errlen)) < 0)
            goto bad;
        if (json_is_integer(code) && json_integer_value(code) >= 0 &&
            json_integer_value(code) < 1000)
            e.code = (int)json_integer_value(code);
        if (msg)
            dd_quote(e.message, sizeof(e.message), msg, strlen(msg), sizeof(e.message) - 4);
    } else {
        if ((r = get_obj(obj, "metadata", "watch event object.metadata", &md, err, errlen)) < 0 ||
            (r = get_str(md, "resourceVersion", "watch event object.metadata.resourceVersion",
                         DD_KUBE_MAX_RV, &rv, err, errlen)) < 0)
            goto bad;
        snprintf(e.rv, sizeof(e.rv), "%s", rv ? rv : "");
    }
    e.object = json_incref(obj);
    json_decref(doc);
    *ev = e;
    return 0;
bad:
    json_decref(doc);
    return r;
}

void dd_kube_watch_event_release(struct dd_kube_watch_event *ev)
{
    json_decref(ev->object);
    ev->object = NULL;
}

/* ---- readers ---- */

static void copy(char *dst, size_t len, const char *s)
{
    snprintf(dst, len, "%s", s ? s : "");
}

static void fill_claim(struct dd_kube *k, const char *ns, const struct pclaim *pc,
                       struct dd_kube_claim *c)
{
    char key[2 * DD_NAME_MAX + 2];
    const struct pvc *v;

    memset(c, 0, sizeof(*c));
    copy(c->name, sizeof(c->name), pc->name);
    c->ephemeral = pc->ephemeral;
    c->read_write = true;
    nskey(key, sizeof(key), ns, pc->name);
    v = (const struct pvc *)map_find(&k->maps[DD_KUBE_PVC], key);
    if (!v)
        return;
    c->known = true;
    copy(c->storage_class, sizeof(c->storage_class), v->sc);
    if (v->sc[0]) {
        const struct sc *s = (const struct sc *)map_find(&k->maps[DD_KUBE_SC], v->sc);
        if (s && s->pool[0]) {
            c->ours = true;
            copy(c->pool, sizeof(c->pool), s->pool);
        }
    }
    c->bound = v->bound;
    c->request_bytes = v->request_bytes;
    c->read_write = v->read_write;
    copy(c->read_mbps, sizeof(c->read_mbps), v->ann[ANN_READ]);
    copy(c->write_mbps, sizeof(c->write_mbps), v->ann[ANN_WRITE]);
    copy(c->duplicate_share, sizeof(c->duplicate_share), v->ann[ANN_DUP]);
    copy(c->profile, sizeof(c->profile), v->ann[ANN_PROFILE]);
    if (v->volume[0]) {
        const struct pv *p = (const struct pv *)map_find(&k->maps[DD_KUBE_PV], v->volume);
        if (p && p->node[0]) {
            const struct node *n = (const struct node *)map_find(&k->maps[DD_KUBE_NODE], p->node);
            if (p->node_sure || (n && n->present))
                copy(c->node, sizeof(c->node), p->node);
        }
    }
    if (!c->node[0])
        copy(c->node, sizeof(c->node), v->selected_node);
}

static void fill_pod(struct dd_kube *k, const struct pod *p, struct dd_kube_pod *out)
{
    memset(out, 0, sizeof(*out));
    copy(out->uid, sizeof(out->uid), p->uid);
    copy(out->ns, sizeof(out->ns), p->ns);
    copy(out->name, sizeof(out->name), p->name);
    copy(out->node, sizeof(out->node), p->node);
    copy(out->phase, sizeof(out->phase), p->phase);
    out->gpus = (double)p->gpu_milli / 1000.0;
    copy(out->read_mbps, sizeof(out->read_mbps), p->ann[ANN_READ]);
    copy(out->write_mbps, sizeof(out->write_mbps), p->ann[ANN_WRITE]);
    copy(out->duplicate_share, sizeof(out->duplicate_share), p->ann[ANN_DUP]);
    copy(out->profile, sizeof(out->profile), p->ann[ANN_PROFILE]);
    out->n_claims = p->n_claims;
    out->claims_truncated = p->truncated;
    for (unsigned i = 0; i < p->n_claims; i++)
        fill_claim(k, p->ns, &p->claims[i], &out->claims[i]);
}

int dd_kube_pod_resolve(struct dd_kube *k, const json_t *pod, struct dd_kube_pod *out, char *err,
                        size_t errlen)
{
    struct pod *p;
    int r = pod_decode(k, pod, &p, err, errlen);
    if (r < 0)
        return r;
    pthread_rwlock_rdlock(&k->lock);
    fill_pod(k, p, out);
    pthread_rwlock_unlock(&k->lock);
    dd_free(p);
    return 0;
}

int dd_kube_pod_lookup(struct dd_kube *k, const char *ns, const char *name, struct dd_kube_pod *out)
{
    char key[2 * DD_NAME_MAX + 2];
    const struct pod *p;
    nskey(key, sizeof(key), ns, name);
    pthread_rwlock_rdlock(&k->lock);
    p = (const struct pod *)map_find(&k->maps[DD_KUBE_POD], key);
    if (p)
        fill_pod(k, p, out);
    pthread_rwlock_unlock(&k->lock);
    return p ? 0 : -ENOENT;
}

int dd_kube_node_gpus(struct dd_kube *k, const char *node, double *allocatable, double *requested)
{
    const struct node *n;
    pthread_rwlock_rdlock(&k->lock);
    n = (const struct node *)map_find(&k->maps[DD_KUBE_NODE], node);
    *allocatable = n ? (double)n->gpu_alloc_milli / 1000.0 : 0;
    *requested = n ? (double)n->gpu_req_milli / 1000.0 : 0;
    pthread_rwlock_unlock(&k->lock);
    return n ? 0 : -ENOENT;
}

bool dd_kube_node_known(struct dd_kube *k, const char *node)
{
    const struct node *n;
    bool known;
    pthread_rwlock_rdlock(&k->lock);
    n = (const struct node *)map_find(&k->maps[DD_KUBE_NODE], node);
    known = n && n->present;
    pthread_rwlock_unlock(&k->lock);
    return known;
}

int dd_kube_class_pool(struct dd_kube *k, const char *storage_class, char *ret_pool, size_t len)
{
    const struct sc *s;
    int r;
    pthread_rwlock_rdlock(&k->lock);
    s = (const struct sc *)map_find(&k->maps[DD_KUBE_SC], storage_class);
    r = !s ? -ENOENT : !s->pool[0] ? -ENODATA : 0;
    if (r == 0)
        copy(ret_pool, len, s->pool);
    pthread_rwlock_unlock(&k->lock);
    return r;
}

void dd_kube_counts(struct dd_kube *k, size_t counts[DD_KUBE_KINDS])
{
    pthread_rwlock_rdlock(&k->lock);
    for (size_t i = 0; i < DD_KUBE_KINDS; i++)
        counts[i] = k->maps[i].n;
    counts[DD_KUBE_NODE] = k->nodes_present;
    pthread_rwlock_unlock(&k->lock);
}

size_t dd_kube_foreach_bound_pod(struct dd_kube *k,
                                 void (*fn)(void *ctx, const char *uid, const char *ns,
                                            const char *name, const char *node, double gpus),
                                 void *ctx)
{
    const struct map *m = &k->maps[DD_KUBE_POD];
    size_t n = 0;
    pthread_rwlock_rdlock(&k->lock);
    for (size_t b = 0; b < m->nb; b++) {
        for (const struct entry *e = m->b[b]; e; e = e->next) {
            const struct pod *p = (const struct pod *)e;
            if (!pod_active(p))
                continue;
            fn(ctx, p->uid, p->ns, p->name, p->node, (double)p->gpu_milli / 1000.0);
            n++;
        }
    }
    pthread_rwlock_unlock(&k->lock);
    return n;
}

/* ---- readers for the CSI-adjacent API ---- */

size_t dd_kube_foreach_node(struct dd_kube *k,
                            void (*fn)(void *ctx, const char *node, const char *const *kv,
                                       size_t n_labels),
                            void *ctx)
{
    const struct map *m = &k->maps[DD_KUBE_NODE];
    size_t n = 0;
    pthread_rwlock_rdlock(&k->lock);
    for (size_t b = 0; b < m->nb; b++) {
        for (const struct entry *e = m->b[b]; e; e = e->next) {
            const struct node *x = (const struct node *)e;
            if (!x->present)
                continue;
            fn(ctx, x->e.key, x->labels ? x->labels->kv : NULL, x->labels ? x->labels->n : 0);
            n++;
        }
    }
    pthread_rwlock_unlock(&k->lock);
    return n;
}

int dd_kube_node_label(struct dd_kube *k, const char *node, const char *key, char *ret, size_t len)
{
    const struct node *n;
    int r = -ENOENT;
    pthread_rwlock_rdlock(&k->lock);
    n = (const struct node *)map_find(&k->maps[DD_KUBE_NODE], node);
    if (n && n->present) {
        r = -ENODATA;
        for (size_t i = 0; n->labels && i < n->labels->n; i++) {
            if (strcmp(n->labels->kv[2 * i], key) == 0) {
                copy(ret, len, n->labels->kv[2 * i + 1]);
                r = 0;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&k->lock);
    return r;
}

static void fill_class(const struct sc *s, struct dd_kube_class *out)
{
    memset(out, 0, sizeof(*out));
    copy(out->name, sizeof(out->name), s->e.key);
    copy(out->pool, sizeof(out->pool), s->pool);
    copy(out->provisioner, sizeof(out->provisioner), s->provisioner);
    copy(out->binding_mode, sizeof(out->binding_mode), s->binding_mode);
    copy(out->expected_reduction, sizeof(out->expected_reduction), s->expected_reduction);
    copy(out->estimate, sizeof(out->estimate), s->estimate);
    out->n_parameters = s->n_params;
}

int dd_kube_namespace_label(struct dd_kube *k, const char *ns, const char *key, char *ret,
                            size_t len)
{
    const struct nsrec *x;
    int r = -ENODATA;
    pthread_rwlock_rdlock(&k->lock);
    x = (const struct nsrec *)map_find(&k->maps[DD_KUBE_NAMESPACE], ns);
    if (!x)
        r = -ENOENT;
    for (size_t i = 0; x && i < x->n; i++) {
        if (strcmp(x->kv[2 * i], key) == 0) {
            snprintf(ret, len, "%s", x->kv[2 * i + 1]);
            r = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&k->lock);
    return r;
}

int dd_kube_class_lookup(struct dd_kube *k, const char *name, struct dd_kube_class *out)
{
    const struct sc *s;
    pthread_rwlock_rdlock(&k->lock);
    s = (const struct sc *)map_find(&k->maps[DD_KUBE_SC], name);
    if (s)
        fill_class(s, out);
    pthread_rwlock_unlock(&k->lock);
    return s ? 0 : -ENOENT;
}

size_t dd_kube_foreach_class(struct dd_kube *k,
                             void (*fn)(void *ctx, const struct dd_kube_class *cls), void *ctx)
{
    const struct map *m = &k->maps[DD_KUBE_SC];
    struct dd_kube_class c;
    size_t n = 0;
    pthread_rwlock_rdlock(&k->lock);
    for (size_t b = 0; b < m->nb; b++) {
        for (const struct entry *e = m->b[b]; e; e = e->next) {
            const struct sc *s = (const struct sc *)e;
            if (!s->pool[0])
                continue;
            fill_class(s, &c);
            fn(ctx, &c);
            n++;
        }
    }
    pthread_rwlock_unlock(&k->lock);
    return n;
}

/* external-provisioner strips the parameters it reserves
 * ("csi.storage.k8s.io/...": fstype, secrets, PVC metadata) before it
 * calls the driver: they take no part in the comparison. */
static bool reserved_param(const char *key)
{
    return strncmp(key, "csi.storage.k8s.io/", 19) == 0;
}

static bool params_equal(const struct sc *s, const json_t *params)
{
    size_t n_class = 0, n_req = 0;
    const char *key;
    const json_t *v;
    for (unsigned i = 0; i < s->n_params; i++) {
        if (reserved_param(s->params[2 * i]))
            continue;
        n_class++;
        const char *x = json_string_value(json_object_get(params, s->params[2 * i]));
        if (!x || strcmp(x, s->params[2 * i + 1]) != 0)
            return false;
    }
    json_object_foreach(unconst(params), key, v)
    {
        (void)v;
        if (!reserved_param(key))
            n_req++;
    }
    return n_class == n_req;
}

int dd_kube_class_by_parameters(struct dd_kube *k, const json_t *params, struct dd_kube_class *out,
                                size_t *ret_matches)
{
    const struct map *m = &k->maps[DD_KUBE_SC];
    const struct sc *best = NULL;
    size_t matches = 0;
    pthread_rwlock_rdlock(&k->lock);
    for (size_t b = 0; b < m->nb; b++) {
        for (const struct entry *e = m->b[b]; e; e = e->next) {
            const struct sc *s = (const struct sc *)e;
            if (!params_equal(s, params))
                continue;
            matches++;
            /* ours first, then the first name: the same answer every time */
            if (!best || (s->pool[0] && !best->pool[0]) ||
                (!s->pool[0] == !best->pool[0] && strcmp(s->e.key, best->e.key) < 0))
                best = s;
        }
    }
    if (best)
        fill_class(best, out);
    pthread_rwlock_unlock(&k->lock);
    if (ret_matches)
        *ret_matches = matches;
    return best ? 0 : -ENOENT;
}

int dd_kube_pvc_lookup(struct dd_kube *k, const char *ns, const char *name, struct dd_kube_pvc *out)
{
    char key[2 * DD_NAME_MAX + 2];
    const struct pvc *v;
    nskey(key, sizeof(key), ns, name);
    pthread_rwlock_rdlock(&k->lock);
    v = (const struct pvc *)map_find(&k->maps[DD_KUBE_PVC], key);
    if (v) {
        struct pclaim pc = {name, false};
        memset(out, 0, sizeof(*out));
        fill_claim(k, ns, &pc, &out->claim);
        copy(out->selected_node, sizeof(out->selected_node), v->selected_node);
        copy(out->volume, sizeof(out->volume), v->volume);
    }
    pthread_rwlock_unlock(&k->lock);
    return v ? 0 : -ENOENT;
}

int dd_kube_pod_using_claim(struct dd_kube *k, const char *ns, const char *claim,
                            struct dd_kube_pod *out)
{
    const struct map *m = &k->maps[DD_KUBE_POD];
    const struct pod *best = NULL;
    pthread_rwlock_rdlock(&k->lock);
    for (size_t b = 0; b < m->nb; b++) {
        for (const struct entry *e = m->b[b]; e; e = e->next) {
            const struct pod *p = (const struct pod *)e;
            if (strcmp(p->ns, ns) != 0)
                continue;
            for (unsigned i = 0; i < p->n_claims; i++) {
                if (strcmp(p->claims[i].name, claim) != 0)
                    continue;
                /* a live pod before a terminated one, then the first name */
                if (!best || (best->terminated && !p->terminated) ||
                    (best->terminated == p->terminated && strcmp(p->name, best->name) < 0))
                    best = p;
                break;
            }
        }
    }
    if (best)
        fill_pod(k, best, out);
    pthread_rwlock_unlock(&k->lock);
    return best ? 0 : -ENOENT;
}
