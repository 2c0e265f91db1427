/*
 * Internal parts of the estimator, each free of I/O so tests and fuzz targets
 * can drive them directly:
 *   fpset     open-addressing table of 128-bit fingerprints (fpset.c)
 *   packer    VDO packer simulation for compressed fragments (packer.c)
 *   estimator ordered merge of block records, sampling, window, the final
 *             figures and their confidence interval (estimator.c)
 *   hashing   zero check + XXH3 + sampled LZ4 over a buffer (blockhash.c)
 */
#ifndef DD_SCAN_INTERNAL_H
#define DD_SCAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dedupd/scan/scan.h"

/* ---- block records: what a worker hands to the ordered merge ---- */

/* csize values besides a fragment size 1..DD_VDO_COMPRESSED_DATA_SIZE-1 */
#define DD_CSIZE_NONE           0u      /* not LZ4'd (outside the sample) */
#define DD_CSIZE_INCOMPRESSIBLE 0xFFFFu /* LZ4 did not fit a packer slot */

struct dd_block_rec {
    uint64_t lo, hi; /* XXH3-128 of the block; both 0 for a zero block */
    uint16_t csize;
    uint8_t zero;
};

/* ---- fingerprint table ---- */

struct dd_fpentry {
    uint64_t lo, hi;
    uint64_t last_seq; /* post number of the last occurrence (window model) */
    uint32_t count;    /* occurrences seen */
    uint32_t writes;   /* occurrences VDO would have written (misses) */
    uint16_t csize;    /* see DD_CSIZE_* */
    uint16_t pad_;
    uint32_t pad2_;
};

struct dd_fpset {
    struct dd_fpentry *slots; /* lo == hi == 0 marks an empty slot */
    size_t cap;               /* power of two */
    size_t used;
};

int dd_fpset_init(struct dd_fpset *set, size_t cap);
void dd_fpset_release(struct dd_fpset *set);
/* Grows to new_cap (a power of two >= used / 0.7). */
int dd_fpset_resize(struct dd_fpset *set, size_t new_cap);
/* Finds the entry or inserts a zeroed one with the key. The table must have a
 * free slot (callers keep the load under DD_FPSET_MAX_LOAD). */
struct dd_fpentry *dd_fpset_upsert(struct dd_fpset *set, uint64_t lo, uint64_t hi,
                                   bool *ret_inserted);
struct dd_fpentry *dd_fpset_find(const struct dd_fpset *set, uint64_t lo, uint64_t hi);
/* Removes, in place, every entry for which drop() says true; on_drop (may be
 * NULL) sees each before it goes. Returns the number removed. */
size_t dd_fpset_prune(struct dd_fpset *set, bool (*drop)(const struct dd_fpentry *, void *),
                      void (*on_drop)(const struct dd_fpentry *, void *), void *ctx);
bool dd_fpset_is_full(const struct dd_fpset *set);

/* Starts loading the slot where lo would live: the merge prefetches a few
 * records ahead so table cache misses overlap instead of adding up. */
static inline void dd_fpset_prefetch(const struct dd_fpset *set, uint64_t lo)
{
    __builtin_prefetch(&set->slots[(size_t)lo & (set->cap - 1)], 1, 1);
}

#define DD_FPSET_MAX_LOAD_NUM 7u /* grow or prune past 7/10 full */
#define DD_FPSET_MAX_LOAD_DEN 10u

/* ---- VDO packer simulation ---- */

struct dd_packer {
    uint32_t free[DD_VDO_PACKER_BINS];  /* bytes left in each open bin */
    uint32_t slots[DD_VDO_PACKER_BINS]; /* fragments in each open bin */
    uint64_t blocks_written;
    uint64_t fragments;
};

void dd_packer_init(struct dd_packer *p);
/* Adds one compressed fragment of size bytes (1 .. DD_VDO_COMPRESSED_DATA_SIZE). */
void dd_packer_add(struct dd_packer *p, uint32_t size);
/* Writes out every open bin; returns blocks_written. */
uint64_t dd_packer_flush(struct dd_packer *p);

/* ---- estimator: the ordered merge ---- */

/* Fingerprints fall in nested slices: slice j holds those whose top j bits of
 * hi are zero (a 1/2^j share of the distinct blocks, whatever their order). */
#define DD_FP_LEVELS 64u

/* The compression figures of the writes of one slice's blocks, in write
 * order (the packer sees fragments as VDO's would). */
struct dd_comp_level {
    uint64_t eval_writes; /* writes LZ4-tried */
    uint64_t ok_writes;   /* of which compressible */
    uint64_t bytes;       /* fragment bytes of the compressible ones */
    struct dd_packer packer;
};

struct dd_estimator {
    bool sampled;
    unsigned k;      /* sampling bits: keep fps whose top k bits of hi are 0 */
    unsigned c;      /* compression bits: the LZ4 sample is slice max(k, c) */
    bool compress;   /* estimate compression at all */
    uint64_t window; /* 0 = unbounded */
    size_t max_cap;  /* sampled: table capacity limit (power of two) */
    struct dd_fpset set;
    uint64_t peak_table_bytes;

    uint64_t blocks_total, zero_blocks, nonzero_blocks;
    uint64_t writes_total;  /* exact mode: blocks VDO would write */
    uint64_t sample_count;  /* sampled: sum of count over the table */
    uint64_t sample_writes; /* sampled: sum of writes over the table */

    /*
     * comp[j]: every write of a block in slice j, for j >= max(k, c) (lower
     * levels are no longer kept up to date). When k grows past c the sample
     * moves to the next level, which already holds exactly its blocks' writes
     * from the start of the stream: trials of blocks that left the sample are
     * never counted, whatever the input order. A write lands in about two
     * levels on average (half the blocks of a slice are in the next).
     */
    struct dd_comp_level comp[DD_FP_LEVELS];
};

struct dd_estimator_config {
    bool sampled;
    unsigned initial_k;
    unsigned compress_bits;
    bool compress;
    uint64_t window;
    uint64_t max_memory;      /* sampled mode only */
    uint64_t expected_blocks; /* sizes the table up front (0 = unknown) */
};

int dd_estimator_init(struct dd_estimator *est, const struct dd_estimator_config *cfg);
void dd_estimator_release(struct dd_estimator *est);
/* Merges records in stream order. Fails only on out-of-memory. */
int dd_estimator_add(struct dd_estimator *est, const struct dd_block_rec *recs, size_t n);
/* Fills the block, dedup, compression and CI fields of *res (not the run,
 * byte or input fields). May be called once, at the end. */
void dd_estimator_finish(struct dd_estimator *est, struct dd_scan_result *res);

static inline bool dd_fp_in_slice(uint64_t hi, unsigned k)
{
    return k == 0 || (hi >> (64 - k)) == 0;
}

/* The compression sample is a slice too, nested in the fingerprint sample:
 * slice max(k, c). While k <= c it does not change as k grows; past that it is
 * the whole fingerprint sample, so it never has fewer blocks than that. */
static inline unsigned dd_compress_level(unsigned k, unsigned c)
{
    return k > c ? k : c;
}

static inline bool dd_fp_in_compress_sample(uint64_t hi, unsigned k, unsigned c)
{
    return dd_fp_in_slice(hi, dd_compress_level(k, c));
}

/* The deepest slice (at most DD_FP_LEVELS - 1) that hi is in. */
static inline unsigned dd_fp_level(uint64_t hi)
{
    return hi == 0 ? DD_FP_LEVELS - 1 : (unsigned)__builtin_clzll(hi);
}

/* ---- hashing a buffer of whole blocks ---- */

struct dd_hasher; /* per-thread: LZ4 state and scratch */

struct dd_hasher *dd_hasher_new(void);
struct dd_hasher *dd_hasher_free(struct dd_hasher *h);
/*
 * Fills one record per 4 KiB block of buf (len a multiple of 4 KiB). Blocks in
 * the compression sample for (k, c) are LZ4'd when compress is set.
 */
void dd_hasher_run(struct dd_hasher *h, const uint8_t *buf, size_t len, bool compress, unsigned k,
                   unsigned c, struct dd_block_rec *out);
/* Which code path dd_hasher_run uses ("avx2" or "baseline"). */
const char *dd_hasher_isa(void);

/* ---- the engine's state, shared by scan.c (reading) and input.c (walking) ---- */

#include <pthread.h>
#include <stdatomic.h>

struct scan_file {
    char *path;
    uint64_t size; /* expected size in bytes */
    size_t input;  /* index into dd_scan.inputs */
    bool follow;   /* a top-level path named by the user: symlinks followed */
    bool is_blockdev;
    int fd;            /* -1 until its first chunk is claimed */
    bool failed;       /* an error was seen; later chunks are not claimed */
    bool reported;     /* its first error is recorded on the input */
    bool claimed_all;  /* every chunk has been claimed */
    uint64_t inflight; /* chunks claimed but not yet merged; fd closes at 0 */
};

struct scan_slot {
    bool done;
    size_t file;
    uint64_t offset;
    uint64_t nblocks;
    int err; /* 0, -errno or DD_E_* */
    char message[160];
    struct dd_block_rec recs[DD_SCAN_CHUNK_BYTES / DD_BLOCK_SIZE];
};

struct dd_scan {
    struct dd_scan_options opts;
    struct dd_scan_input *inputs;
    size_t n_inputs, cap_inputs;
    struct scan_file *files;
    size_t n_files, cap_files;
    uint64_t total_bytes;

    /* run state, guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t claim_file;
    uint64_t claim_offset;
    uint64_t claim_seq, commit_seq;
    struct scan_slot *ring;
    size_t ring_size;
    struct dd_estimator est;
    int first_error;
    bool ran;

    atomic_uint_fast64_t bytes_done;
    atomic_bool cancel;
    struct dd_scan_result result;
};

/* input.c: record a failure against an input (copies both strings). */
int dd_scan_input_add_error(struct dd_scan_input *in, const char *path, const char *message);
/* input.c: stat/walk/probe one path into scan->inputs and scan->files. */
int dd_scan_input_add(struct dd_scan *scan, const char *path);
void dd_scan_input_release(struct dd_scan_input *in);

#endif
