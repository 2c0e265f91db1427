/*
 * The in-flight ledger (see ledger.h). Entries live in one array guarded by
 * a mutex: a ledger holds the pods of the last minutes' bursts, hundreds,
 * not the cluster's pods, so a scan is cheaper than an index and a scoring
 * request reads it once, through dd_ledger_view.
 */
#define _GNU_SOURCE
#include "placement/ledger.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

struct dd_ledger {
    pthread_mutex_t lock;
    struct dd_ledger_options opts;
    size_t n, cap;
    struct dd_ledger_entry *entries;
};

void dd_ledger_options_init(struct dd_ledger_options *o)
{
    o->provisional_ttl_s = 30;
    o->bound_ttl_s = 600;
    o->observed_io_mbps = 0.5;
}

int dd_ledger_new(const struct dd_ledger_options *o, struct dd_ledger **ret)
{
    struct dd_ledger *l = dd_calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    if (o)
        l->opts = *o;
    else
        dd_ledger_options_init(&l->opts);
    pthread_mutex_init(&l->lock, NULL);
    *ret = l;
    return 0;
}

struct dd_ledger *dd_ledger_free(struct dd_ledger *l)
{
    if (!l)
        return NULL;
    pthread_mutex_destroy(&l->lock);
    dd_free(l->entries);
    dd_free(l);
    return NULL;
}

static uint64_t after(uint64_t now_ms, double s)
{
    return now_ms + (uint64_t)(s * 1000.0);
}

static struct dd_ledger_entry *find_locked(struct dd_ledger *l, const char *uid)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->entries[i].uid, uid) == 0)
            return &l->entries[i];
    return NULL;
}

/* A slot for a new entry (grown when full), or NULL (ENOMEM or the cap). */
static struct dd_ledger_entry *add_locked(struct dd_ledger *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct dd_ledger_entry *e;
        if (l->n >= DD_LEDGER_MAX_ENTRIES)
            return NULL;
        e = dd_realloc(l->entries, cap * sizeof(*e));
        if (!e)
            return NULL;
        l->entries = e;
        l->cap = cap;
    }
    return &l->entries[l->n++];
}

static void remove_at_locked(struct dd_ledger *l, size_t i)
{
    l->entries[i] = l->entries[--l->n];
}

int dd_ledger_record(struct dd_ledger *l, const struct dd_ledger_entry *e, uint64_t now_ms)
{
    struct dd_ledger_entry *slot;
    int r = 0;
    if (e->uid[0] == '\0' || e->node[0] == '\0')
        return -EINVAL;
    pthread_mutex_lock(&l->lock);
    slot = find_locked(l, e->uid);
    if (!slot)
        slot = add_locked(l);
    if (slot) {
        *slot = *e;
        slot->bound = false;
        slot->since_ms = now_ms;
        slot->expires_ms = after(now_ms, l->opts.provisional_ttl_s);
    } else {
        r = -ENOSPC;
    }
    pthread_mutex_unlock(&l->lock);
    return r;
}

int dd_ledger_bind(struct dd_ledger *l, const char *uid, const char *node,
                   const struct dd_ledger_entry *load, uint64_t now_ms)
{
    struct dd_ledger_entry *slot;
    int r = 0;
    if (uid[0] == '\0' || node[0] == '\0')
        return -EINVAL;
    pthread_mutex_lock(&l->lock);
    slot = find_locked(l, uid);
    if (!slot && load) {
        slot = add_locked(l);
        if (slot) {
            *slot = *load;
            snprintf(slot->uid, sizeof(slot->uid), "%s", uid);
        } else {
            r = -ENOSPC;
        }
    }
    if (slot && !(slot->bound && strcmp(slot->node, node) == 0)) {
        snprintf(slot->node, sizeof(slot->node), "%s", node);
        slot->bound = true;
        slot->since_ms = now_ms;
        slot->expires_ms = after(now_ms, l->opts.bound_ttl_s);
    }
    pthread_mutex_unlock(&l->lock);
    return r;
}

bool dd_ledger_remove(struct dd_ledger *l, const char *uid)
{
    bool found = false;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->entries[i].uid, uid) == 0) {
            remove_at_locked(l, i);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return found;
}

/* Does the report show this pod doing I/O? */
static bool shows_io(const struct dd_report *r, const char *uid, double min_mbps)
{
    for (size_t i = 0; i < r->n_pods; i++) {
        const struct dd_report_pod *p = &r->pods[i];
        double io = (isfinite(p->io_read_mbps) ? p->io_read_mbps : 0) +
                    (isfinite(p->io_write_mbps) ? p->io_write_mbps : 0);
        if (strcmp(p->uid, uid) == 0)
            return io >= min_mbps;
    }
    return false;
}

size_t dd_ledger_observe(struct dd_ledger *l, const struct dd_report *r, uint64_t now_ms)
{
    size_t gone = 0;
    (void)now_ms;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n;) {
        struct dd_ledger_entry *e = &l->entries[i];
        if (e->bound && strcmp(e->node, r->node) == 0 &&
            shows_io(r, e->uid, l->opts.observed_io_mbps)) {
            remove_at_locked(l, i);
            gone++;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return gone;
}

size_t dd_ledger_expire(struct dd_ledger *l, uint64_t now_ms)
{
    size_t gone = 0;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n;) {
        if (l->entries[i].expires_ms <= now_ms) {
            remove_at_locked(l, i);
            gone++;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&l->lock);
    return gone;
}

size_t dd_ledger_size(struct dd_ledger *l)
{
    size_t n;
    pthread_mutex_lock(&l->lock);
    n = l->n;
    pthread_mutex_unlock(&l->lock);
    return n;
}

/* One part of a sum: an entry's GPUs (load -1, pool "") or one of its
 * loads, pointing into the entries (valid under the lock). */
struct part {
    const char *node, *pool;
    const struct dd_ledger_entry *e;
    long load;
};

static int part_cmp(const void *a, const void *b)
{
    const struct part *x = a, *y = b;
    int c = strcmp(x->node, y->node);
    return c ? c : strcmp(x->pool, y->pool);
}

/*
 * The parts of every live entry are sorted by (node, pool) and summed run
 * by run: O(n log n) in the entries (a linear search per entry made a view
 * O(n^2), which a cluster-scale ledger of hundreds of entries paid on every
 * scoring request).
 */
int dd_ledger_view(struct dd_ledger *l, const char *exclude_uid, uint64_t now_ms,
                   struct dd_ledger_view *ret)
{
    struct dd_ledger_sum *sums = NULL;
    struct part *parts = NULL;
    size_t n = 0, np = 0, max = 0;

    memset(ret, 0, sizeof(*ret));
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n; i++)
        max += 1 + l->entries[i].n_loads;
    if (max) {
        parts = dd_reallocarray(NULL, max, sizeof(*parts));
        if (!parts) {
            pthread_mutex_unlock(&l->lock);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct dd_ledger_entry *e = &l->entries[i];
        if (e->expires_ms <= now_ms || (exclude_uid && strcmp(e->uid, exclude_uid) == 0))
            continue;
        parts[np++] = (struct part){e->node, "", e, -1};
        for (size_t k = 0; k < e->n_loads; k++)
            parts[np++] = (struct part){e->node, e->loads[k].pool, e, (long)k};
    }
    if (np)
        qsort(parts, np, sizeof(*parts), part_cmp);
    for (size_t i = 0; i < np; i++) /* runs of equal (node, pool) */
        n += i == 0 || part_cmp(&parts[i - 1], &parts[i]) != 0;
    if (n) {
        sums = dd_calloc(n, sizeof(*sums));
        if (!sums) {
            pthread_mutex_unlock(&l->lock);
            dd_free(parts);
            return -ENOMEM;
        }
    }
    for (size_t i = 0, k = 0; i < np; i++) {
        const struct part *p = &parts[i];
        struct dd_ledger_sum *s;
        if (i > 0 && part_cmp(&parts[i - 1], p) == 0) {
            s = &sums[k - 1];
        } else {
            s = &sums[k++]; /* the entries' names fit: they were checked on the way in */
            memcpy(s->node, p->node, strnlen(p->node, sizeof(s->node) - 1));
            memcpy(s->pool, p->pool, strnlen(p->pool, sizeof(s->pool) - 1));
        }
        s->entries++;
        if (p->load < 0) {
            if (!p->e->bound)
                s->provisional_gpus += p->e->gpus;
            continue;
        }
        const struct dd_ledger_load *ld = &p->e->loads[p->load];
        s->read_mbps += ld->read_mbps;
        s->write_mbps += ld->write_mbps;
        s->dup_write_mbps += ld->write_mbps * ld->duplicate_share; /* NaN stays NaN */
        s->reserve_bytes += ld->reserve_bytes;
    }
    pthread_mutex_unlock(&l->lock);
    dd_free(parts);
    ret->n = n;
    ret->sums = sums;
    return 0;
}

void dd_ledger_view_release(struct dd_ledger_view *v)
{
    dd_free(v->sums);
    memset(v, 0, sizeof(*v));
}

/* bsearch's key: the strings themselves, not copies in a sum */
static int find_cmp(const void *key, const void *elem)
{
    const struct part *k = key;
    const struct dd_ledger_sum *y = elem;
    int c = strcmp(k->node, y->node);
    return c ? c : strcmp(k->pool, y->pool);
}

const struct dd_ledger_sum *dd_ledger_view_find(const struct dd_ledger_view *v, const char *node,
                                                const char *pool)
{
    struct part key = {node, pool, NULL, 0};
    if (v->n == 0)
        return NULL;
    return bsearch(&key, v->sums, v->n, sizeof(*v->sums), find_cmp);
}

json_t *dd_ledger_to_json(struct dd_ledger *l, const char *node, uint64_t now_ms)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n; i++) {
        const struct dd_ledger_entry *e = &l->entries[i];
        json_t *loads;
        if (node && strcmp(e->node, node) != 0)
            continue;
        loads = json_array();
        for (size_t k = 0; k < e->n_loads; k++) {
            const struct dd_ledger_load *ld = &e->loads[k];
            json_t *o = json_pack("{s:s, s:f, s:f, s:I}", "pool", ld->pool, "read_mbps",
                                  ld->read_mbps, "write_mbps", ld->write_mbps, "reserve_bytes",
                                  (json_int_t)ld->reserve_bytes);
            if (isfinite(ld->duplicate_share))
                json_object_set_new(o, "duplicate_share", json_real(ld->duplicate_share));
            json_array_append_new(loads, o);
        }
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:o}", "uid", e->uid,
                           "namespace", e->ns, "name", e->name, "node", e->node, "state",
                           e->bound ? "bound" : "provisional", "age_seconds",
                           (double)(now_ms > e->since_ms ? now_ms - e->since_ms : 0) / 1000.0,
                           "expires_in_seconds",
                           (double)(e->expires_ms > now_ms ? e->expires_ms - now_ms : 0) / 1000.0,
                           "gpus", e->gpus, "loads", loads));
    }
    pthread_mutex_unlock(&l->lock);
    return json_pack("{s:o}", "entries", arr);
}
