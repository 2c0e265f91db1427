/*
 * The pod tracker (node.h, "pod usage over a pod's life"): each pod
 * cgroup's figures accumulated from scan to scan, and the pods whose cgroup
 * went away handed back with what was last read. Pure: the scans are read
 * by readers.c, the clock is the caller's.
 *
 * Invariants: the tracked pods are sorted by UID with no two alike (a scan
 * may list one UID twice, under both cgroup drivers on a node migrating
 * between them: the first is taken); a pod is either tracked or handed back
 * once, never both; an update that fails changes nothing.
 */
#include "dedupd/node/node.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

struct dd_pod_tracker {
    struct dd_pod_usage *pods; /* sorted by uid */
    size_t n;
};

int dd_pod_tracker_new(struct dd_pod_tracker **ret)
{
    struct dd_pod_tracker *t;

    if (!ret)
        return -EINVAL;
    t = dd_calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    *ret = t;
    return 0;
}

struct dd_pod_tracker *dd_pod_tracker_free(struct dd_pod_tracker *t)
{
    if (!t)
        return NULL;
    dd_free(t->pods);
    dd_free(t);
    return NULL;
}

size_t dd_pod_tracker_count(const struct dd_pod_tracker *t)
{
    return t ? t->n : 0;
}

static const struct dd_pod_usage *find(const struct dd_pod_tracker *t, const char *uid)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->pods[mid].uid, uid);
        if (c == 0)
            return &t->pods[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool dd_pod_tracker_get(const struct dd_pod_tracker *t, const char *uid, struct dd_pod_usage *ret)
{
    const struct dd_pod_usage *u;

    if (!t || !uid || !ret || !(u = find(t, uid)))
        return false;
    *ret = *u;
    return true;
}

static bool skipped(const struct dd_pods *scan, const char *uid)
{
    for (size_t i = 0; i < scan->n_skips; i++) {
        if (strcmp(scan->skips[i].uid, uid) == 0)
            return true;
    }
    return false;
}

/* The kubelet's working set: memory.current less the inactive file pages,
 * never below 0; memory.current alone when memory.stat is not there. */
static uint64_t working_set(const struct dd_pod *p)
{
    if (!p->has_memory_stat)
        return p->memory_current;
    return p->memory_current > p->memory_stat.inactive_file
               ? p->memory_current - p->memory_stat.inactive_file
               : 0;
}

/* One read of a pod: u is its tracked state (zeroed for a new pod). */
static void read_into(struct dd_pod_usage *u, const struct dd_pod *p, double dt, double wall)
{
    bool first = u->reads == 0;
    double elapsed = u->since_read + (isfinite(dt) && dt > 0 ? dt : 0);

    if (first) {
        snprintf(u->uid, sizeof(u->uid), "%s", p->uid);
        u->first_seen = wall;
        u->peak_cpu_cores = (double)NAN;
    } else if (p->cpu.usage_usec < u->last_usage_usec) {
        /* a new cgroup under the same UID (or a counter reset): the peak
         * so far stays, the next rate starts from this read */
    } else if (elapsed > 0) {
        double cores = (double)(p->cpu.usage_usec - u->last_usage_usec) / 1e6 / elapsed;
        if (isfinite(cores) && (isnan(u->peak_cpu_cores) || cores > u->peak_cpu_cores))
            u->peak_cpu_cores = cores;
    }
    u->qos = p->qos;
    u->last_seen = wall;
    u->reads++;
    u->since_read = 0;
    u->last_usage_usec = p->cpu.usage_usec;
    u->cpu_seconds = (double)p->cpu.usage_usec / 1e6;
    if (p->has_memory_current) {
        uint64_t ws = working_set(p);
        u->working_set = ws;
        if (!u->has_working_set || ws > u->peak_working_set)
            u->peak_working_set = ws;
        u->has_working_set = true;
    }
    if (p->has_memory_peak) {
        u->memory_peak = p->memory_peak;
        u->has_memory_peak = true;
    }
    if (p->has_io) {
        uint64_t rb = 0, wb = 0;
        for (size_t k = 0; k < p->io.n; k++) {
            /* saturating: a garbled counter cannot wrap the sum */
            rb = rb + p->io.devs[k].rbytes < rb ? UINT64_MAX : rb + p->io.devs[k].rbytes;
            wb = wb + p->io.devs[k].wbytes < wb ? UINT64_MAX : wb + p->io.devs[k].wbytes;
        }
        if (!u->has_io || rb > u->read_bytes)
            u->read_bytes = rb;
        if (!u->has_io || wb > u->write_bytes)
            u->write_bytes = wb;
        u->has_io = true;
    }
}

int dd_pod_tracker_update(struct dd_pod_tracker *t, const struct dd_pods *scan, double dt,
                          double wall, struct dd_pod_usage **ret_gone, size_t *ret_n_gone)
{
    struct dd_pod_usage *next = NULL, *gone = NULL;
    size_t nn = 0, ng = 0, i = 0, j = 0;
    double add = isfinite(dt) && dt > 0 ? dt : 0;

    if (!t || !scan || !ret_gone || !ret_n_gone || (scan->n && !scan->pods))
        return -EINVAL;
    if (t->n + scan->n > 0 && !(next = dd_calloc(t->n + scan->n, sizeof(*next))))
        return -ENOMEM;
    if (t->n && !(gone = dd_calloc(t->n, sizeof(*gone)))) {
        dd_free(next);
        return -ENOMEM;
    }
    /* a merge of two lists sorted by uid: tracked pods, scanned pods */
    while (i < t->n || j < scan->n) {
        const struct dd_pod *p = j < scan->n ? &scan->pods[j] : NULL;
        int c = i == t->n ? 1 : !p ? -1 : strcmp(t->pods[i].uid, p->uid);

        if (p && j > 0 && strcmp(scan->pods[j - 1].uid, p->uid) == 0) {
            j++; /* the same UID under the other driver: the first counts */
            continue;
        }
        if (c < 0) { /* tracked, not in this scan */
            struct dd_pod_usage u = t->pods[i++];
            if (skipped(scan, u.uid)) {
                u.since_read += add;
                next[nn++] = u;
            } else {
                gone[ng++] = u;
            }
            continue;
        }
        struct dd_pod_usage u = {0};
        if (c == 0)
            u = t->pods[i++];
        read_into(&u, p, dt, wall);
        next[nn++] = u;
        j++;
    }
    dd_free(t->pods);
    t->pods = next;
    t->n = nn;
    if (ng == 0) {
        dd_free(gone);
        gone = NULL;
    }
    *ret_gone = gone;
    *ret_n_gone = ng;
    return 0;
}
