/*
 * The hot loop: for each 4 KiB block, a zero check, an XXH3-128 fingerprint
 * and, for the blocks in the compression sample, an LZ4 trial.
 *
 * Two traps measured on our machines (PERF-NOTES.md) shape this file:
 * - Debian's libxxhash dispatches to AVX2/AVX-512 only through the *_dispatch
 *   entry points; plain XXH3_128bits runs 3-4x slower. We call the dispatcher.
 * - Its AVX paths return without vzeroupper, and legacy-SSE code run after
 *   that (our baseline-compiled loop, LZ4) pays a large transition penalty.
 *   So the loop is built twice: for AVX2 (VEX-encoded, no penalty) and for
 *   baseline x86-64, chosen once at run time; the AVX2 build clears the upper
 *   halves itself before LZ4 and before returning.
 */
#include <lz4.h>
#include <stdatomic.h>
#include <string.h>
#include <xxh_x86dispatch.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"

struct dd_hasher {
    void *lz4_state;
    char dst[DD_VDO_COMPRESSED_DATA_SIZE];
};

struct dd_hasher *dd_hasher_new(void)
{
    struct dd_hasher *h = dd_calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->lz4_state = dd_aligned_alloc(64, (size_t)LZ4_sizeofState());
    if (!h->lz4_state) {
        dd_free(h);
        return NULL;
    }
    return h;
}

struct dd_hasher *dd_hasher_free(struct dd_hasher *h)
{
    if (h) {
        dd_free(h->lz4_state);
        dd_free(h);
    }
    return NULL;
}

/* Fragment size VDO would pack, or DD_CSIZE_INCOMPRESSIBLE. VDO keeps a
 * compressed block only if it is smaller than a packer slot's data area. */
static uint16_t lz4_trial(struct dd_hasher *h, const uint8_t *block)
{
    int n = LZ4_compress_fast_extState(h->lz4_state, (const char *)block, h->dst,
                                       (int)DD_BLOCK_SIZE, (int)DD_VDO_COMPRESSED_DATA_SIZE - 1, 1);
    if (n <= 0)
        return DD_CSIZE_INCOMPRESSIBLE;
    return (uint16_t)n;
}

/* Most data blocks have a non-zero word within their first 64 bytes, so look
 * there first and scan the whole block only when that is all zero: the full
 * scan cost as much as the hash itself. */
static inline bool is_zero_block(const uint64_t *w)
{
    uint64_t head = 0, acc = 0;
    for (size_t i = 0; i < 8; i++)
        head |= w[i];
    if (head != 0)
        return false;
    for (size_t i = 8; i < DD_BLOCK_SIZE / 8; i++)
        acc |= w[i];
    return acc == 0;
}

/* The loop body, instantiated per ISA below. */
#define HASH_LOOP_BODY(ZEROUPPER)                                                                  \
    size_t nblocks = len / DD_BLOCK_SIZE;                                                          \
    for (size_t b = 0; b < nblocks; b++) {                                                         \
        const uint8_t *blk = buf + b * DD_BLOCK_SIZE;                                              \
        const uint64_t *w = (const uint64_t *)(const void *)blk;                                   \
        struct dd_block_rec *r = &out[b];                                                          \
        r->csize = DD_CSIZE_NONE;                                                                  \
        if (is_zero_block(w)) {                                                                    \
            r->lo = r->hi = 0;                                                                     \
            r->zero = 1;                                                                           \
            continue;                                                                              \
        }                                                                                          \
        XXH128_hash_t fp = XXH3_128bits_dispatch(blk, DD_BLOCK_SIZE);                              \
        r->lo = fp.low64;                                                                          \
        r->hi = fp.high64;                                                                         \
        r->zero = 0;                                                                               \
        if (compress && dd_fp_in_compress_sample(r->hi, k, c)) {                                   \
            ZEROUPPER;                                                                             \
            r->csize = lz4_trial(h, blk);                                                          \
        }                                                                                          \
    }                                                                                              \
    ZEROUPPER;

static void hash_loop_baseline(struct dd_hasher *h, const uint8_t *buf, size_t len, bool compress,
                               unsigned k, unsigned c, struct dd_block_rec *out)
{
    HASH_LOOP_BODY((void)0)
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_PATH 1
__attribute__((target("avx2"))) static void hash_loop_avx2(struct dd_hasher *h, const uint8_t *buf,
                                                           size_t len, bool compress, unsigned k,
                                                           unsigned c, struct dd_block_rec *out)
{
    HASH_LOOP_BODY(_mm256_zeroupper())
}
#endif

static bool use_avx2(void)
{
#ifdef HAVE_AVX2_PATH
    /* benign race: every thread computes the same answer */
    static atomic_int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v == 1;
#else
    return false;
#endif
}

const char *dd_hasher_isa(void)
{
    return use_avx2() ? "avx2" : "baseline";
}

void dd_hasher_run(struct dd_hasher *h, const uint8_t *buf, size_t len, bool compress, unsigned k,
                   unsigned c, struct dd_block_rec *out)
{
#ifdef HAVE_AVX2_PATH
    if (use_avx2()) {
        hash_loop_avx2(h, buf, len, compress, k, c, out);
        return;
    }
#endif
    hash_loop_baseline(h, buf, len, compress, k, c, out);
}
