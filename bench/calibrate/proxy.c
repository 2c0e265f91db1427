/*
 * The calibration proxy's engine (proxy.h says what it models and what it
 * leaves out). Everything large (index slots, reference counts, pool,
 * stream) is mmapped and pre-faulted at creation, so no page fault lands in
 * a measured pass, and so the index's page size can be chosen: by default
 * MADV_NOHUGEPAGE, because UDS's index lives in vmalloc memory mapped with
 * 4 KiB pages and its TLB misses are part of what grows with E.
 *
 * Invariants: the table never holds more than E + stream_blocks entries and
 * its capacity is at least (E + stream_blocks) / max_load, so a probe always
 * ends at an empty slot; block numbers [0, P) are pool blocks, [P, E) the
 * random pre-filled entries, [E, E + stream_blocks) the new blocks of the
 * current pass; at the start of every pass the table holds exactly the E
 * pre-filled entries.
 */
#define _GNU_SOURCE
#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lz4.h>
#include <murmurhash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "common/alloc.h"
#include "common/macro.h"

/* dm-vdo packer.h: a compressed block is a 36-byte header (version, 14
 * fragment sizes) and 4060 bytes of fragments; a fragment must be smaller
 * than that, because a block is only written compressed with >= 2 of them. */
#define CAL_MAX_SLOTS    14u
#define CAL_BIN_HEADER   (8u + 2u * CAL_MAX_SLOTS)
#define CAL_BIN_DATA     (CAL_BLOCK - CAL_BIN_HEADER)
#define CAL_MAX_FRAGMENT (CAL_BIN_DATA - 1u)
#define CAL_MAX_REFS     254u /* dm-vdo MAXIMUM_REFERENCE_COUNT */

enum block_kind { KIND_ZERO, KIND_DUP, KIND_NEW };

struct slot {
    uint64_t n0, n1;
    uint64_t loc; /* block number + 1; 0 = empty */
};

struct big {
    void *p;
    size_t bytes;
};

struct cal_engine {
    struct cal_engine_config cfg;
    struct big slots_m, refs_m, pool_m, stream_m;
    struct slot *slots;
    uint64_t cap;
    uint8_t *refs;   /* E + stream_blocks one-byte reference counts */
    uint8_t *pool;   /* P blocks */
    uint8_t *stream; /* stream_blocks blocks */
    uint8_t *kind;   /* per stream block (generation and re-stamping only) */
    uint64_t *undo;  /* slot numbers inserted in this pass */
    uint64_t n_undo;
    uint64_t next_pbn;
    int fd;
    uint64_t ring_pos;
    void *lz4_state;
    uint8_t *cbuf; /* LZ4 output, one block */
    uint8_t *bin;  /* the packer's open bin */
    uint32_t bin_used;
    unsigned bin_frags;
    uint64_t rng;
    bool prepared;
    struct cal_point pt;
    struct cal_index_info info;
};

/* wyrand (Wang Yi's wyhash PRNG): fast, and good enough for block contents
 * and uniform 128-bit names. */
static inline uint64_t wyrand(uint64_t *s)
{
    *s += 0xa0761d6478bd642fULL;
    unsigned __int128 t = (unsigned __int128)*s * (*s ^ 0xe7037ed1a0b428dbULL);
    return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

static inline double unit(uint64_t *s)
{
    return (double)(wyrand(s) >> 11) * 0x1.0p-53;
}

/* Lemire's multiply-shift reduction: a uniform 64-bit value to [0, n). */
static inline uint64_t reduce(uint64_t h, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)h * n) >> 64);
}

static double now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Stage timer for the profile pass: the TSC where there is one (constant
 * rate on the machines we use; converted with the pass's wall time). */
static inline uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

static int big_alloc(struct big *b, size_t bytes, int advice)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    if (advice)
        (void)madvise(p, bytes, advice);
#ifdef MADV_POPULATE_WRITE
    if (madvise(p, bytes, MADV_POPULATE_WRITE) != 0) {
        int err = errno;
        if (err != EINVAL) { /* EINVAL: kernel before 5.14, fall back to touching */
            munmap(p, bytes);
            return -err;
        }
        memset(p, 0, bytes);
    }
#else
    memset(p, 0, bytes);
#endif
    b->p = p;
    b->bytes = bytes;
    return 0;
}

static void big_free(struct big *b)
{
    if (b->p)
        munmap(b->p, b->bytes);
    b->p = NULL;
    b->bytes = 0;
}

static void fill_random(uint8_t *b, uint64_t *rng)
{
    for (size_t i = 0; i < CAL_BLOCK; i += 8) {
        uint64_t w = wyrand(rng);
        memcpy(b + i, &w, 8);
    }
}

/* Text-like data, log-line style: phrases from a fixed set of 32, each
 * followed by a number below 10000 and a space or newline. LZ4 keeps about
 * 44 % of such a block (--self-test prints it), so the packer fits two
 * fragments in a block, as it would for logs or text. */
static const char *const phrases[32] = {
    "the volume was written to ",
    "block device mapper ",
    "kernel thread on cpu ",
    "index lookup found ",
    "memory pressure is high at ",
    "the cluster scheduled pod ",
    "storage node reported ",
    "write latency in ms ",
    "compression saved blocks ",
    "dedupe advice was valid for ",
    "the recovery journal holds ",
    "slab summary update ",
    "reference count of block ",
    "logical blocks used ",
    "physical blocks free ",
    "data blocks used ",
    "hash zone queue depth ",
    "packer bins flushed ",
    "bio submission rate ",
    "the operating mode is normal ",
    "and then it ",
    "which is why ",
    "for each of the ",
    "as shown in table ",
    "it was not ",
    "from the start of ",
    "with a share of ",
    "by the end of ",
    "on node ",
    "at time ",
    "in namespace ",
    "so that ",
};

static void fill_text(uint8_t *b, uint64_t *rng)
{
    size_t p = 0;
    while (p < CAL_BLOCK) {
        uint64_t r = wyrand(rng);
        for (unsigned k = 0; k < 2 && p < CAL_BLOCK; k++, r >>= 32) {
            const char *w = phrases[r & 31u];
            size_t n = DD_MIN(strlen(w), CAL_BLOCK - p);
            memcpy(b + p, w, n);
            p += n;
            char num[8];
            size_t nd = 0;
            uint32_t v = (uint32_t)((r >> 5) & 0x3fffu) % 10000u;
            do {
                num[nd++] = (char)('0' + v % 10u);
                v /= 10u;
            } while (v);
            while (nd > 0 && p < CAL_BLOCK)
                b[p++] = (uint8_t)num[--nd];
            if (p < CAL_BLOCK)
                b[p++] = (uint8_t)(((r >> 28) & 3u) == 0 ? '\n' : ' ');
        }
    }
}

static void stamp(uint8_t *b, uint64_t *rng)
{
    uint64_t w = wyrand(rng);
    memcpy(b, &w, 8);
}

static bool block_is_zero(const uint8_t *b)
{
    /* word at a time with an early exit, like dm-vdo's is_zero_block() */
    for (size_t i = 0; i < CAL_BLOCK; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w)
            return false;
    }
    return true;
}

static inline struct slot *probe(struct cal_engine *e, uint64_t n0, uint64_t n1)
{
    uint64_t i = reduce(n0, e->cap);
    for (;;) {
        struct slot *s = &e->slots[i];
        if (s->loc == 0 || (s->n0 == n0 && s->n1 == n1))
            return s;
        if (++i == e->cap)
            i = 0;
    }
}

static int write_block(struct cal_engine *e, const uint8_t *b, struct cal_counts *c)
{
    off_t off = (off_t)((e->ring_pos++ % e->cfg.ring_blocks) * CAL_BLOCK);
    size_t done = 0;
    while (done < CAL_BLOCK) {
        ssize_t n = pwrite(e->fd, b + done, CAL_BLOCK - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)n;
    }
    c->data_writes++;
    return 0;
}

/* A bin of >= 2 fragments is a compressed block; a lone fragment goes out
 * uncompressed (dm-vdo's packer does the same); either is one 4 KiB write. */
static int flush_bin(struct cal_engine *e, struct cal_counts *c)
{
    if (e->bin_frags == 0)
        return 0;
    if (e->bin_frags >= 2)
        c->packed += e->bin_frags;
    int r = write_block(e, e->bin, c);
    e->bin_used = 0;
    e->bin_frags = 0;
    return r;
}

static int pack(struct cal_engine *e, const uint8_t *frag, uint32_t n, struct cal_counts *c)
{
    if (e->bin_frags == CAL_MAX_SLOTS || e->bin_used + n > CAL_BIN_DATA) {
        int r = flush_bin(e, c);
        if (r < 0)
            return r;
    }
    memcpy(e->bin + CAL_BIN_HEADER + e->bin_used, frag, n);
    e->bin_used += n;
    e->bin_frags++;
    return 0;
}

/* Charges the ticks since *t0 to one stage (profile pass only). */
#define STAGE(prof, st, t0, field)                                                                 \
    do {                                                                                           \
        if (prof) {                                                                                \
            uint64_t t_ = ticks();                                                                 \
            (st)->field += t_ - *(t0);                                                             \
            *(t0) = t_;                                                                            \
        }                                                                                          \
    } while (0)

static inline __attribute__((always_inline)) int store_new(struct cal_engine *e, const uint8_t *b,
                                                           struct cal_counts *c, bool prof,
                                                           struct cal_stages *st, uint64_t *t0)
{
    int r;
    if (e->pt.compression) {
        int n = LZ4_compress_fast_extState(e->lz4_state, (const char *)b, (char *)e->cbuf,
                                           (int)CAL_BLOCK, (int)CAL_MAX_FRAGMENT, 1);
        STAGE(prof, st, t0, lz4);
        if (n > 0 && (uint32_t)n < CAL_BIN_DATA) {
            c->compressed++;
            c->lz4_in_bytes += CAL_BLOCK;
            c->lz4_out_bytes += (uint64_t)n;
            r = pack(e, e->cbuf, (uint32_t)n, c);
            STAGE(prof, st, t0, write);
            return r;
        }
    }
    r = write_block(e, b, c);
    STAGE(prof, st, t0, write);
    return r;
}

/*
 * One pass over the stream: the measured work. With prof (the profile pass,
 * never one of the measured ones) each stage's ticks are added up; the
 * always_inline copies keep the measured passes free of the timer calls.
 */
static inline __attribute__((always_inline)) int
run_pass_(struct cal_engine *e, struct cal_counts *c, bool prof, struct cal_stages *st)
{
    const uint64_t pool = e->cfg.pool_blocks;
    uint64_t t0 = prof ? ticks() : 0;
    for (uint64_t i = 0; i < e->cfg.stream_blocks; i++) {
        const uint8_t *b = e->stream + i * CAL_BLOCK;
        uint64_t h[2];
        int r;

        c->blocks++;
        bool zero = block_is_zero(b);
        STAGE(prof, st, &t0, zero_check);
        if (zero) {
            c->zero++;
            continue;
        }
        lmmh_x64_128(b, CAL_BLOCK, CAL_HASH_SEED, h);
        STAGE(prof, st, &t0, hash);
        struct slot *s = probe(e, h[0], h[1]);
        STAGE(prof, st, &t0, lookup);
        if (s->loc != 0) {
            uint64_t loc = s->loc - 1;
            if (loc < pool && memcmp(b, e->pool + loc * CAL_BLOCK, CAL_BLOCK) == 0) {
                if (e->refs[loc] < CAL_MAX_REFS)
                    e->refs[loc]++;
                c->dup++;
                STAGE(prof, st, &t0, verify);
                continue;
            }
            c->verify_fail++; /* a hash hit on other data: not deduplicated */
            STAGE(prof, st, &t0, verify);
        } else {
            uint64_t pbn = e->next_pbn++;
            s->n0 = h[0];
            s->n1 = h[1];
            s->loc = pbn + 1;
            e->undo[e->n_undo++] = (uint64_t)(s - e->slots);
            e->refs[pbn] = 1;
            STAGE(prof, st, &t0, insert);
        }
        c->fresh++;
        r = store_new(e, b, c, prof, st, &t0);
        if (r < 0)
            return r;
    }
    int r = flush_bin(e, c);
    STAGE(prof, st, &t0, write);
    return r;
}

static int run_pass(struct cal_engine *e, struct cal_counts *c)
{
    return run_pass_(e, c, false, NULL);
}

static int run_pass_profiled(struct cal_engine *e, struct cal_counts *c, struct cal_stages *st)
{
    return run_pass_(e, c, true, st);
}

static void undo_pass(struct cal_engine *e)
{
    for (uint64_t k = 0; k < e->n_undo; k++)
        memset(&e->slots[e->undo[k]], 0, sizeof(struct slot));
    memset(e->refs + e->cfg.entries, 0, e->next_pbn - e->cfg.entries);
    e->n_undo = 0;
    e->next_pbn = e->cfg.entries;
}

static void insert_prefill(struct cal_engine *e, uint64_t n0, uint64_t n1, uint64_t loc)
{
    struct slot *s = probe(e, n0, n1);
    s->n0 = n0;
    s->n1 = n1;
    s->loc = loc + 1;
}

static int open_ring(struct cal_engine *e)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/dedupd-calibrate.XXXXXX", e->cfg.write_dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    (void)unlink(path); /* gone when we exit, however we exit */
    int r = posix_fallocate(fd, 0, (off_t)(e->cfg.ring_blocks * CAL_BLOCK));
    if (r != 0) {
        close(fd);
        return -r;
    }
    e->fd = fd;
    /* write the ring once so the measured pwrites overwrite resident pages */
    for (uint64_t k = 0; k < e->cfg.ring_blocks; k++) {
        struct cal_counts scratch = {0};
        r = write_block(e, e->bin, &scratch);
        if (r < 0)
            return r;
    }
    e->ring_pos = 0;
    return 0;
}

/* Maps and pre-faults every buffer, opens the write file. */
static int engine_alloc(struct cal_engine *e)
{
    const struct cal_engine_config *cfg = &e->cfg;
    uint64_t most = cfg->entries + cfg->stream_blocks;
    int r;

    e->cap = (uint64_t)((double)most / cfg->max_load) + 1;
    r = big_alloc(&e->slots_m, e->cap * sizeof(struct slot),
                  cfg->hugepages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    if (r < 0)
        return r;
    e->slots = e->slots_m.p;
    r = big_alloc(&e->refs_m, most, 0);
    if (r < 0)
        return r;
    e->refs = e->refs_m.p;
    r = big_alloc(&e->pool_m, cfg->pool_blocks * CAL_BLOCK, 0);
    if (r < 0)
        return r;
    e->pool = e->pool_m.p;
    /* the stream, then the undo list and a kind byte per block */
    r = big_alloc(&e->stream_m, cfg->stream_blocks * (CAL_BLOCK + 1 + sizeof(uint64_t)), 0);
    if (r < 0)
        return r;
    e->stream = e->stream_m.p;
    e->undo = (uint64_t *)(void *)(e->stream + cfg->stream_blocks * CAL_BLOCK);
    e->kind = (uint8_t *)(e->undo + cfg->stream_blocks);

    e->lz4_state = dd_aligned_alloc(64, (size_t)LZ4_sizeofState());
    e->cbuf = dd_aligned_alloc(64, CAL_BLOCK);
    e->bin = dd_aligned_alloc(64, CAL_BLOCK);
    if (!e->lz4_state || !e->cbuf || !e->bin)
        return -ENOMEM;
    memset(e->bin, 0, CAL_BLOCK);
    return open_ring(e);
}

/* Pool blocks are random data; their real names are spread evenly among
 * the random names, so their probe chains look like everyone else's. */
static void engine_fill(struct cal_engine *e)
{
    const struct cal_engine_config *cfg = &e->cfg;
    uint64_t j = 0, rnd_loc = cfg->pool_blocks;

    for (uint64_t k = 0; k < cfg->pool_blocks; k++)
        fill_random(e->pool + k * CAL_BLOCK, &e->rng);
    memset(e->refs, 1, cfg->entries);
    for (uint64_t k = 0; k < cfg->entries; k++) {
        uint64_t at = (uint64_t)(((unsigned __int128)j * cfg->entries) / cfg->pool_blocks);
        if (j < cfg->pool_blocks && k >= at) {
            uint64_t h[2];
            lmmh_x64_128(e->pool + j * CAL_BLOCK, CAL_BLOCK, CAL_HASH_SEED, h);
            insert_prefill(e, h[0], h[1], j);
            j++;
        } else {
            uint64_t n0 = wyrand(&e->rng), n1 = wyrand(&e->rng);
            insert_prefill(e, n0, n1, rnd_loc++);
        }
    }
    e->next_pbn = cfg->entries;
}

int cal_engine_new(const struct cal_engine_config *cfg, struct cal_engine **ret_engine)
{
    struct cal_engine *e;
    double start;
    int r;

    if (!cfg || !ret_engine || cfg->entries == 0 || cfg->pool_blocks == 0 ||
        cfg->pool_blocks > cfg->entries || cfg->stream_blocks == 0 || cfg->ring_blocks == 0 ||
        !(cfg->max_load > 0.05 && cfg->max_load <= 0.95) || !cfg->write_dir ||
        cfg->entries > (UINT64_C(1) << 34))
        return -EINVAL;
    e = dd_calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->fd = -1;
    e->cfg = *cfg;
    e->rng = cfg->seed ^ 0x9e3779b97f4a7c15ULL;
    start = now(CLOCK_MONOTONIC);
    r = engine_alloc(e);
    if (r < 0) {
        cal_engine_free(e);
        return r;
    }
    engine_fill(e);
    e->info.entries = cfg->entries;
    e->info.capacity = e->cap;
    e->info.pool_blocks = cfg->pool_blocks;
    e->info.bytes = e->slots_m.bytes;
    e->info.build_seconds = now(CLOCK_MONOTONIC) - start;
    *ret_engine = e;
    return 0;
}

struct cal_engine *cal_engine_free(struct cal_engine *e)
{
    if (!e)
        return NULL;
    big_free(&e->slots_m);
    big_free(&e->refs_m);
    big_free(&e->pool_m);
    big_free(&e->stream_m);
    if (e->fd >= 0)
        close(e->fd);
    dd_free(e->lz4_state);
    dd_free(e->cbuf);
    dd_free(e->bin);
    dd_free(e);
    return NULL;
}

void cal_engine_index_info(const struct cal_engine *e, struct cal_index_info *ret)
{
    *ret = e->info;
}

static bool share_ok(double x)
{
    return x >= 0.0 && x <= 1.0;
}

int cal_engine_prepare(struct cal_engine *e, const struct cal_point *pt)
{
    if (!share_ok(pt->zero_share) || !share_ok(pt->dup_share) ||
        !share_ok(pt->compressible_share) || pt->zero_share + pt->dup_share > 1.0 + 1e-9)
        return -EINVAL;
    e->pt = *pt;
    uint64_t rng = pt->seed * 0x2545f4914f6cdd1dULL + 1;
    double zu = pt->zero_share + pt->dup_share;
    for (uint64_t i = 0; i < e->cfg.stream_blocks; i++) {
        uint8_t *b = e->stream + i * CAL_BLOCK;
        double x = unit(&rng);
        if (x < pt->zero_share) {
            e->kind[i] = KIND_ZERO;
            memset(b, 0, CAL_BLOCK);
        } else if (x < zu) {
            e->kind[i] = KIND_DUP;
            memcpy(b, e->pool + reduce(wyrand(&rng), e->cfg.pool_blocks) * CAL_BLOCK, CAL_BLOCK);
        } else {
            e->kind[i] = KIND_NEW;
            if (unit(&rng) < pt->compressible_share)
                fill_text(b, &rng);
            else
                fill_random(b, &rng);
            stamp(b, &rng);
        }
    }
    e->rng = rng;
    e->prepared = true;
    return 0;
}

static void restamp(struct cal_engine *e)
{
    for (uint64_t i = 0; i < e->cfg.stream_blocks; i++)
        if (e->kind[i] == KIND_NEW)
            stamp(e->stream + i * CAL_BLOCK, &e->rng);
}

int cal_engine_run(struct cal_engine *e, uint64_t min_bytes, double min_seconds,
                   unsigned max_passes, bool profile, struct cal_result *ret)
{
    struct cal_result res = {0};
    int r = 0;

    if (!e->prepared)
        return -EINVAL;
    max_passes = DD_MAX(max_passes, 1u);
    while (res.passes < max_passes && (res.passes == 0 || res.c.blocks * CAL_BLOCK < min_bytes ||
                                       res.wall_seconds < min_seconds)) {
        if (res.passes > 0) /* keep new blocks new: their names were removed */
            restamp(e);
        double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
        r = run_pass(e, &res.c);
        double c1 = now(CLOCK_THREAD_CPUTIME_ID), w1 = now(CLOCK_MONOTONIC);
        undo_pass(e);
        if (r < 0)
            return r;
        res.cpu_seconds += c1 - c0;
        res.wall_seconds += w1 - w0;
        res.passes++;
    }
    if (profile) {
        struct cal_counts pc = {0};
        restamp(e);
        double c0 = now(CLOCK_THREAD_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
        uint64_t k0 = ticks();
        r = run_pass_profiled(e, &pc, &res.stages);
        uint64_t k1 = ticks();
        double c1 = now(CLOCK_THREAD_CPUTIME_ID), w1 = now(CLOCK_MONOTONIC);
        undo_pass(e);
        if (r < 0)
            return r;
        res.stages.blocks = pc.blocks;
        res.stages.cpu_seconds = c1 - c0;
        res.stages.ticks_per_second = w1 > w0 ? (double)(k1 - k0) / (w1 - w0) : 0.0;
        res.have_stages = res.stages.ticks_per_second > 0.0;
    }
    *ret = res;
    return 0;
}

double cal_text_ratio_sample(uint64_t seed)
{
    uint8_t b[CAL_BLOCK];
    char out[LZ4_COMPRESSBOUND(CAL_BLOCK)];
    uint64_t rng = seed;
    fill_text(b, &rng);
    stamp(b, &rng);
    int n = LZ4_compress_default((const char *)b, out, (int)CAL_BLOCK, (int)sizeof(out));
    return n > 0 ? (double)n / CAL_BLOCK : 1.0;
}
