/*
 * The calibration proxy: a userspace stand-in for the CPU work dm-vdo does on
 * each 4 KiB write, used to measure what that work costs on a node. It is NOT
 * VDO: no recovery journal, slab journal, block map, bio plumbing or device
 * I/O; only the per-block data path, in one thread:
 *
 *   zero check  -> zero block: counted, nothing else (VDO maps it to zero)
 *   MurmurHash3 x64_128 of the 4 KiB, seed 0x62ea60be (VDO's record name)
 *   lookup in an in-memory index of 128-bit names -> 64-bit block number
 *   hit  -> verify: memcmp against the stored copy (VDO reads and compares
 *           the candidate), then a 1-byte reference count increment
 *   miss -> insert the name, set the new block's reference count; with
 *           compression on, LZ4 (VDO's fragment limits) and a packer bin of
 *           up to 14 fragments; "write" = pwrite of 4 KiB (raw block or full
 *           packer bin) into a preallocated, unlinked file on a tmpfs
 *
 * The index is an open-addressing (linear probing) table of 24-byte slots,
 * pre-filled to E entries and sized so it never rehashes; its slots are
 * spread over several GiB at large E, so lookups miss caches and TLB more as
 * E grows. E - P of the entries are random names; P of them ("the pool") are
 * the names of real blocks kept in memory, and duplicates in the stream are
 * copies of pool blocks, so a duplicate is found by its real hash and
 * verified against real data.
 *
 * A point's stream is generated before it is measured and its generation is
 * never timed. Entries a pass inserted are removed after it, which restores
 * the table exactly (linear probing: every chain through a removed slot
 * belongs to an entry also removed), so every pass starts at E entries.
 *
 * Not thread-safe: one engine, one thread.
 */
#ifndef DD_BENCH_CALIBRATE_PROXY_H
#define DD_BENCH_CALIBRATE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAL_BLOCK      4096u
#define CAL_HASH_SEED  0x62ea60beu /* dm-vdo data-vio.c, hash_data_vio() */
#define CAL_SLOT_BYTES 24u         /* 128-bit name + 64-bit location */

struct cal_engine_config {
    uint64_t entries;       /* E: index entries before every pass */
    uint64_t pool_blocks;   /* P: real blocks duplicates are drawn from (<= E) */
    uint64_t stream_blocks; /* blocks of one pass (the generated stream) */
    uint64_t ring_blocks;   /* size of the write file, in blocks */
    double max_load;        /* index capacity = (E + stream) / max_load */
    const char *write_dir;  /* tmpfs directory for the write file (borrowed) */
    bool hugepages;         /* MADV_HUGEPAGE on the index (default: NOHUGEPAGE) */
    uint64_t seed;
};

/* What one measured point asks for. Shares are of all blocks except
 * compressible, which is the share of new blocks that are text-like. */
struct cal_point {
    double zero_share, dup_share, compressible_share;
    bool compression;
    uint64_t seed;
};

struct cal_counts {
    uint64_t blocks; /* logical 4 KiB blocks processed, zero ones included */
    uint64_t zero, dup, fresh;
    uint64_t verify_fail;                 /* index hit whose data differed: written as new */
    uint64_t compressed;                  /* new blocks LZ4 brought under VDO's fragment limit */
    uint64_t packed;                      /* fragments that went out in a bin of >= 2 */
    uint64_t data_writes;                 /* 4 KiB pwrites of data (raw blocks + packer bins) */
    uint64_t lz4_in_bytes, lz4_out_bytes; /* over blocks that compressed */
};

/* Ticks per stage over one extra, unmeasured pass (the profile pass): where
 * a block's time goes. Ticks are TSC cycles on x86 (ns elsewhere); the
 * timer calls themselves add a little to every stage. */
struct cal_stages {
    uint64_t zero_check, hash, lookup, verify, insert, lz4, write;
    uint64_t blocks;         /* blocks of the profile pass */
    double cpu_seconds;      /* its thread CPU time, timers included */
    double ticks_per_second; /* measured against CLOCK_MONOTONIC */
};

struct cal_result {
    double cpu_seconds;  /* CLOCK_THREAD_CPUTIME_ID of the worker, summed */
    double wall_seconds; /* CLOCK_MONOTONIC over the passes, summed */
    unsigned passes;
    struct cal_counts c;
    bool have_stages;
    struct cal_stages stages;
};

struct cal_index_info {
    uint64_t entries, capacity, pool_blocks;
    double build_seconds;
    uint64_t bytes; /* slot array */
};

struct cal_engine;

/* Allocates and pre-fills everything (may take a minute at 256 Mi entries).
 * Returns 0, -EINVAL for a bad config, -ENOMEM or -errno from the write file. */
int cal_engine_new(const struct cal_engine_config *cfg, struct cal_engine **ret_engine);
struct cal_engine *cal_engine_free(struct cal_engine *e);

void cal_engine_index_info(const struct cal_engine *e, struct cal_index_info *ret);

/* Generates the point's stream (not timed). -EINVAL on shares out of range. */
int cal_engine_prepare(struct cal_engine *e, const struct cal_point *pt);

/*
 * Runs passes over the prepared stream until at least min_bytes were
 * processed and min_seconds of wall time passed, or max_passes ran. New
 * blocks are re-stamped between passes (not timed) so they stay new. With
 * profile, one more pass follows with per-stage timers (ret->stages); it is
 * not part of cpu_seconds or wall_seconds. Returns 0, -EINVAL before
 * cal_engine_prepare, or -errno from pwrite.
 */
int cal_engine_run(struct cal_engine *e, uint64_t min_bytes, double min_seconds,
                   unsigned max_passes, bool profile, struct cal_result *ret);

/* The LZ4 ratio of one text-like block (for --self-test). */
double cal_text_ratio_sample(uint64_t seed);

#endif
