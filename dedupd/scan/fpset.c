/*
 * Fingerprint table: open addressing with linear probing over 32-byte
 * entries, indexed by the low fingerprint word (XXH3 output is uniform, so no
 * further mixing is needed). An all-zero key marks an empty slot; the one
 * fingerprint that is genuinely all zero (probability 2^-128) is stored as
 * lo = 1, which merges it with one other equally unlikely value.
 *
 * Pruning removes entries in place with backward-shift deletion, so the
 * table never needs a second copy of itself to shrink: this keeps the
 * sampled mode's memory bound a real bound.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"

/*
 * Large tables are 2 MiB-aligned and asked to use transparent huge pages:
 * probes are random, and with 4 KiB pages nearly every probe of a large table
 * also misses the TLB (a two-level walk under virtualisation). Small ones use
 * calloc, whose fresh pages need no memset.
 */
#define HUGE_PAGE      (2u << 20)
#define HUGE_THRESHOLD (8u << 20)

static struct dd_fpentry *alloc_slots(size_t cap)
{
    size_t bytes = cap * sizeof(struct dd_fpentry);
    struct dd_fpentry *slots;

    if (bytes < HUGE_THRESHOLD)
        return dd_calloc(cap, sizeof(struct dd_fpentry));
    slots = dd_aligned_alloc(HUGE_PAGE, bytes);
    if (!slots)
        return NULL;
    (void)madvise(slots, bytes, MADV_HUGEPAGE);
    memset(slots, 0, bytes);
    return slots;
}

static inline void fix_key(uint64_t *lo, uint64_t *hi)
{
    if (dd_unlikely(*lo == 0 && *hi == 0))
        *lo = 1;
}

static inline bool slot_empty(const struct dd_fpentry *e)
{
    return e->lo == 0 && e->hi == 0;
}

int dd_fpset_init(struct dd_fpset *set, size_t cap)
{
    size_t c = 16;

    while (c < cap)
        c <<= 1;
    set->slots = alloc_slots(c);
    if (!set->slots)
        return -ENOMEM;
    set->cap = c;
    set->used = 0;
    return 0;
}

void dd_fpset_release(struct dd_fpset *set)
{
    dd_free(set->slots);
    set->slots = NULL;
    set->cap = set->used = 0;
}

bool dd_fpset_is_full(const struct dd_fpset *set)
{
    return (set->used + 1) * DD_FPSET_MAX_LOAD_DEN > set->cap * DD_FPSET_MAX_LOAD_NUM;
}

static struct dd_fpentry *probe(struct dd_fpentry *slots, size_t mask, uint64_t lo, uint64_t hi)
{
    size_t i = (size_t)lo & mask;

    for (;;) {
        struct dd_fpentry *e = &slots[i];
        if (slot_empty(e) || (e->lo == lo && e->hi == hi))
            return e;
        i = (i + 1) & mask;
    }
}

int dd_fpset_resize(struct dd_fpset *set, size_t new_cap)
{
    struct dd_fpentry *slots;

    if (new_cap < 16 || (new_cap & (new_cap - 1)) != 0 ||
        set->used * DD_FPSET_MAX_LOAD_DEN > new_cap * DD_FPSET_MAX_LOAD_NUM)
        return DD_E_RANGE;
    slots = alloc_slots(new_cap);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < set->cap; i++) {
        const struct dd_fpentry *e = &set->slots[i];
        if (!slot_empty(e))
            *probe(slots, new_cap - 1, e->lo, e->hi) = *e;
    }
    dd_free(set->slots);
    set->slots = slots;
    set->cap = new_cap;
    return 0;
}

struct dd_fpentry *dd_fpset_upsert(struct dd_fpset *set, uint64_t lo, uint64_t hi,
                                   bool *ret_inserted)
{
    struct dd_fpentry *e;

    fix_key(&lo, &hi);
    e = probe(set->slots, set->cap - 1, lo, hi);
    if (slot_empty(e)) {
        memset(e, 0, sizeof(*e));
        e->lo = lo;
        e->hi = hi;
        set->used++;
        *ret_inserted = true;
    } else {
        *ret_inserted = false;
    }
    return e;
}

struct dd_fpentry *dd_fpset_find(const struct dd_fpset *set, uint64_t lo, uint64_t hi)
{
    struct dd_fpentry *e;

    fix_key(&lo, &hi);
    e = probe(set->slots, set->cap - 1, lo, hi);
    return slot_empty(e) ? NULL : e;
}

/* Backward-shift deletion of slot i (Knuth 6.4, algorithm R). */
static void delete_at(struct dd_fpset *set, size_t i)
{
    size_t mask = set->cap - 1;
    size_t hole = i, j = i;

    for (;;) {
        j = (j + 1) & mask;
        struct dd_fpentry *e = &set->slots[j];
        if (slot_empty(e))
            break;
        size_t home = (size_t)e->lo & mask;
        /* e may move into the hole if its home is not cyclically in (hole, j] */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            set->slots[hole] = *e;
            hole = j;
        }
    }
    memset(&set->slots[hole], 0, sizeof(set->slots[hole]));
    set->used--;
}

size_t dd_fpset_prune(struct dd_fpset *set, bool (*drop)(const struct dd_fpentry *, void *),
                      void (*on_drop)(const struct dd_fpentry *, void *), void *ctx)
{
    size_t removed = 0;

    /* After a deletion slot i holds a shifted entry, so look at it again.
     * Entries only move towards i (or wrap to the end), so none is skipped;
     * a wrapped one may be looked at twice, which is harmless. */
    for (size_t i = 0; i < set->cap;) {
        struct dd_fpentry *e = &set->slots[i];
        if (!slot_empty(e) && drop(e, ctx)) {
            if (on_drop)
                on_drop(e, ctx);
            delete_at(set, i);
            removed++;
            continue;
        }
        i++;
    }
    return removed;
}
