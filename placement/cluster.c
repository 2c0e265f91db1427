/*
 * The cluster view's storage: a name-sorted array of reference-counted,
 * immutable node entries under one mutex, and a cached snapshot that holds
 * a reference on each entry. A put replaces one entry and drops the cached
 * snapshot; the next reader builds a new one (O(nodes) pointer copies), and
 * every reader after it shares it with one reference count increment.
 * Entries and snapshots are freed by whoever drops the last reference, so
 * a reader never waits for a writer beyond the mutex's pointer work.
 */
#include "placement/cluster.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/common.h"

struct entry {
    struct dd_cluster_node node; /* first: snapshots point here */
    int refs;                    /* atomic */
    uint64_t name_hash;          /* dd_cluster_name_hash of the node's name */
};

struct snap {
    struct dd_cluster_snapshot pub; /* first */
    int refs;                       /* atomic */
    struct entry **entries;
    /* name -> index, open addressing: a lookup touches this table and the
     * one node it finds, not the log2(n) nodes of a binary search (at
     * 5,000 nodes, cold in the cache, that was most of a request) */
    uint64_t *hashes; /* of entries[i]'s name */
    uint32_t *slots;  /* index + 1; 0 empty */
    size_t mask;
};

struct dd_cluster {
    pthread_mutex_t lock;
    struct dd_cluster_options opts;
    struct entry **entries; /* sorted by node name */
    size_t n, cap;
    struct snap *cached; /* NULL after a change */
};

static void entry_unref(struct entry *e)
{
    if (e && __atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        dd_report_release(&e->node.report);
        dd_free(e);
    }
}

static void snap_unref(struct snap *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        for (size_t i = 0; i < s->pub.n; i++)
            entry_unref(s->entries[i]);
        dd_free(s->entries);
        dd_free(s->hashes);
        dd_free(s->slots);
        dd_free(s);
    }
}

int dd_cluster_new(const struct dd_cluster_options *o, struct dd_cluster **ret)
{
    struct dd_cluster *c = dd_calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->opts = *o;
    *ret = c;
    return 0;
}

struct dd_cluster *dd_cluster_free(struct dd_cluster *c)
{
    if (!c)
        return NULL;
    snap_unref(c->cached);
    for (size_t i = 0; i < c->n; i++)
        entry_unref(c->entries[i]);
    dd_free(c->entries);
    pthread_mutex_destroy(&c->lock);
    dd_free(c);
    return NULL;
}

void dd_cluster_set_options(struct dd_cluster *c, const struct dd_cluster_options *o)
{
    pthread_mutex_lock(&c->lock);
    c->opts = *o;
    snap_unref(c->cached); /* snapshots carry the options */
    c->cached = NULL;
    pthread_mutex_unlock(&c->lock);
}

/* Index of node's entry, or where it would go (*found false). */
static size_t search(struct entry *const *entries, size_t n, const char *node, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(entries[mid]->node.report.node, node);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void changed(struct dd_cluster *c)
{
    snap_unref(c->cached);
    c->cached = NULL;
}

/* The node's volume summary (cluster.h) from its report. */
static void summarise(struct dd_cluster_node *n)
{
    const struct dd_report *r = &n->report;
    size_t nv = r->n_volumes < DD_MAX_VOLUMES_PER_NODE ? r->n_volumes : DD_MAX_VOLUMES_PER_NODE;
    double sum = 0;
    size_t gpus = 0;
    for (size_t v = 0; v < nv; v++) {
        const struct dd_report_volume *vol = &r->volumes[v];
        n->pool_hash[v] = dd_cluster_name_hash(vol->pool);
        n->physical_free[v] = vol->physical_free_bytes;
        n->pool_first[v] = (uint8_t)v;
        for (size_t u = 0; u < v; u++) {
            if (n->pool_hash[u] == n->pool_hash[v] && strcmp(r->volumes[u].pool, vol->pool) == 0) {
                n->pool_first[v] = n->pool_first[u];
                break;
            }
        }
        n->vol_flags[v] = 0;
        if (strcmp(vol->mode, "read-only") == 0)
            n->vol_flags[v] |= DD_CLUSTER_VOL_READ_ONLY;
        if (strcmp(vol->index_state, "offline") == 0 || strcmp(vol->index_state, "error") == 0)
            n->vol_flags[v] |= DD_CLUSTER_VOL_INDEX_DOWN;
    }
    for (size_t g = 0; g < r->n_gpus; g++) {
        if (isfinite(r->gpus[g].util_gpu_percent)) {
            sum += r->gpus[g].util_gpu_percent;
            gpus++;
        }
    }
    n->gpu_util = gpus ? sum / (double)gpus : (double)NAN;
}

int dd_cluster_put(struct dd_cluster *c, struct dd_report *r, uint64_t now_ms)
{
    struct entry *e = dd_calloc(1, sizeof(*e)), *old = NULL;
    bool found;
    size_t i;

    if (!e) {
        dd_report_release(r);
        return -ENOMEM;
    }
    e->node.report = *r; /* taken */
    e->name_hash = dd_cluster_name_hash(e->node.report.node);
    summarise(&e->node);
    memset(r, 0, sizeof(*r));
    e->node.arrived_ms = now_ms;
    e->node.reports = 1;
    e->refs = 1;

    pthread_mutex_lock(&c->lock);
    i = search(c->entries, c->n, e->node.report.node, &found);
    if (found) {
        old = c->entries[i];
        if (e->node.report.time_ms < old->node.report.time_ms) {
            pthread_mutex_unlock(&c->lock);
            entry_unref(e);
            return -ESTALE;
        }
        e->node.reports = old->node.reports + 1;
        c->entries[i] = e;
    } else {
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            struct entry **grown = dd_reallocarray(c->entries, cap, sizeof(*grown));
            if (!grown) {
                pthread_mutex_unlock(&c->lock);
                entry_unref(e);
                return -ENOMEM;
            }
            c->entries = grown;
            c->cap = cap;
        }
        memmove(&c->entries[i + 1], &c->entries[i], (c->n - i) * sizeof(*c->entries));
        c->entries[i] = e;
        c->n++;
    }
    changed(c);
    pthread_mutex_unlock(&c->lock);
    entry_unref(old);
    return 0;
}

static void remove_at(struct dd_cluster *c, size_t i)
{
    entry_unref(c->entries[i]);
    memmove(&c->entries[i], &c->entries[i + 1], (c->n - i - 1) * sizeof(*c->entries));
    c->n--;
}

size_t dd_cluster_forget(struct dd_cluster *c, uint64_t now_ms)
{
    size_t gone = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = c->n; i-- > 0;) {
        if (dd_cluster_node_age_s(&c->entries[i]->node, now_ms) > c->opts.forget_after_s) {
            remove_at(c, i);
            gone++;
        }
    }
    if (gone)
        changed(c);
    pthread_mutex_unlock(&c->lock);
    return gone;
}

bool dd_cluster_remove(struct dd_cluster *c, const char *node)
{
    bool found;
    pthread_mutex_lock(&c->lock);
    size_t i = search(c->entries, c->n, node, &found);
    if (found) {
        remove_at(c, i);
        changed(c);
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

uint64_t dd_cluster_name_hash(const char *name)
{
    return XXH3_64bits(name, strlen(name));
}

/* The name index of a snapshot whose entries are set. */
static int index_build(struct snap *s)
{
    size_t size = 16;
    while (size < 2 * s->pub.n)
        size *= 2;
    s->hashes = dd_calloc(s->pub.n ? s->pub.n : 1, sizeof(*s->hashes));
    s->slots = dd_calloc(size, sizeof(*s->slots));
    if (!s->hashes || !s->slots)
        return -ENOMEM;
    s->mask = size - 1;
    for (size_t i = 0; i < s->pub.n; i++) {
        uint64_t h = s->entries[i]->name_hash;
        size_t k = (size_t)h & s->mask;
        s->hashes[i] = h;
        while (s->slots[k])
            k = (k + 1) & s->mask;
        s->slots[k] = (uint32_t)(i + 1);
    }
    return 0;
}

struct dd_cluster_snapshot *dd_cluster_snapshot(struct dd_cluster *c)
{
    struct snap *s;
    pthread_mutex_lock(&c->lock);
    if (!c->cached) {
        s = dd_calloc(1, sizeof(*s));
        struct entry **entries = s ? dd_calloc(c->n ? c->n : 1, sizeof(*entries)) : NULL;
        if (!entries) {
            dd_free(s);
            pthread_mutex_unlock(&c->lock);
            return NULL;
        }
        for (size_t i = 0; i < c->n; i++) {
            entries[i] = c->entries[i];
            __atomic_add_fetch(&entries[i]->refs, 1, __ATOMIC_RELAXED);
        }
        s->entries = entries;
        s->pub.n = c->n;
        if (index_build(s) < 0) {
            s->refs = 1;
            snap_unref(s);
            pthread_mutex_unlock(&c->lock);
            return NULL;
        }
        /* an entry begins with its node: the pointer arrays line up */
        s->pub.nodes = (const struct dd_cluster_node *const *)(void *)entries;
        s->pub.opts = c->opts;
        s->refs = 1; /* the cache's */
        c->cached = s;
    }
    s = c->cached;
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&c->lock);
    return &s->pub;
}

void dd_cluster_snapshot_free(struct dd_cluster_snapshot *s)
{
    snap_unref((struct snap *)(void *)s);
}

long dd_cluster_find_index(const struct dd_cluster_snapshot *s, const char *node)
{
    const struct snap *sn = (const struct snap *)(const void *)s;
    uint64_t h = dd_cluster_name_hash(node);
    for (size_t k = (size_t)h & sn->mask; sn->slots[k]; k = (k + 1) & sn->mask) {
        size_t i = sn->slots[k] - 1;
        if (sn->hashes[i] == h && strcmp(s->nodes[i]->report.node, node) == 0)
            return (long)i;
    }
    return -1;
}

void dd_cluster_prefetch(const struct dd_cluster_snapshot *s, const char *node)
{
    const struct snap *sn = (const struct snap *)(const void *)s;
    uint64_t h = dd_cluster_name_hash(node);
    for (size_t k = (size_t)h & sn->mask; sn->slots[k]; k = (k + 1) & sn->mask) {
        size_t i = sn->slots[k] - 1;
        if (sn->hashes[i] != h)
            continue;
        const struct dd_cluster_node *n = s->nodes[i];
        const struct dd_report *r = &n->report;
        __builtin_prefetch(r->node);
        __builtin_prefetch(&r->interval_s);
        __builtin_prefetch(&r->vdo_cpu_seconds);
        __builtin_prefetch(&r->volumes);
        __builtin_prefetch(&n->pool_hash[0]);
        __builtin_prefetch(&n->pool_hash[8]);
        __builtin_prefetch(&n->physical_free[0]);
        __builtin_prefetch(&n->physical_free[8]);
        __builtin_prefetch(&n->pool_first[0]); /* and vol_flags */
        __builtin_prefetch(&n->arrived_ms);    /* and gpu_util */
        return;
    }
}

const struct dd_cluster_node *dd_cluster_find(const struct dd_cluster_snapshot *s, const char *node)
{
    long i = dd_cluster_find_index(s, node);
    return i >= 0 ? s->nodes[i] : NULL;
}

double dd_cluster_node_age_s(const struct dd_cluster_node *n, uint64_t now_ms)
{
    return now_ms > n->arrived_ms ? (double)(now_ms - n->arrived_ms) / 1000.0 : 0.0;
}

double dd_cluster_stale_bound_s(const struct dd_cluster_options *o, const struct dd_cluster_node *n)
{
    return o->stale_after_s > 0 ? o->stale_after_s : 3.0 * n->report.interval_s;
}

bool dd_cluster_node_stale(const struct dd_cluster_options *o, const struct dd_cluster_node *n,
                           uint64_t now_ms)
{
    return dd_cluster_node_age_s(n, now_ms) > dd_cluster_stale_bound_s(o, n);
}

json_t *dd_cluster_node_json(const struct dd_cluster_options *o, const struct dd_cluster_node *n,
                             uint64_t now_ms, bool detail)
{
    const struct dd_report *r = &n->report;
    json_t *wire = dd_report_to_json(r), *out;
    if (!wire)
        return NULL;
    double skew = ((double)n->arrived_ms - (double)r->time_ms) / 1000.0;
    out =
        json_pack("{s:s, s:f, s:b, s:f, s:I, s:f, s:f, s:I}", "name", r->node, "report_age_seconds",
                  dd_cluster_node_age_s(n, now_ms), "stale", dd_cluster_node_stale(o, n, now_ms),
                  "stale_after_seconds", dd_cluster_stale_bound_s(o, n), "reports",
                  (json_int_t)n->reports, "clock_skew_seconds", skew, "interval_seconds",
                  r->interval_s, "report_time_ms", (json_int_t)r->time_ms);
    if (!out) {
        json_decref(wire);
        return NULL;
    }
    json_object_set(out, "node_info", json_object_get(wire, "node_info"));
    json_object_set(out, "load", json_object_get(wire, "load"));
    json_object_set(out, "volumes", json_object_get(wire, "volumes"));
    json_t *devs = json_object_get(json_object_get(wire, "gpus"), "devices"), *v;
    json_object_set_new(out, "gpus", devs ? json_incref(devs) : json_array());
    /* the API lists every volume key, null where the node could not say */
    size_t i;
    json_array_foreach(json_object_get(out, "volumes"), i, v)
    {
        static const char *const keys[] = {"mode", "physical_free_bytes", "logical_free_bytes"};
        for (size_t k = 0; k < DD_ARRAY_SIZE(keys); k++) {
            if (!json_object_get(v, keys[k]))
                json_object_set_new(v, keys[k], json_null());
        }
    }
    json_object_set_new(out, "gpus_available", json_boolean(r->gpus_available));
    json_object_set_new(out, "pod_count", json_integer((json_int_t)r->n_pods));
    if (detail)
        json_object_set(out, "pods", json_object_get(wire, "pods"));
    json_decref(wire);
    return out;
}
