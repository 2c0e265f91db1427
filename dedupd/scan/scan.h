/*
 * The block-hash data-reduction estimator: how much a data set will shrink
 * on VDO before it is written there.
 *
 * Inputs are regular files, directories (walked recursively, symlinks not
 * followed) and block devices. Each regular file is a stream of 4 KiB blocks
 * from its own offset 0; its tail is zero-padded to a whole block, as a file
 * system stores it. Per block: zero check (VDO stores no zero blocks), XXH3
 * 128-bit fingerprint, duplicate detection across all inputs together, in the
 * order the inputs were given (directories in name order).
 *
 * Use: dd_scan_new(), dd_scan_add_path() for each input, dd_scan_run(), then
 * read dd_scan_get_result() / dd_scan_to_json(), then dd_scan_free().
 * dd_scan_run() may be called once. dd_scan_cancel() and dd_scan_progress()
 * may be called from other threads while it runs.
 */
#ifndef DD_SCAN_SCAN_H
#define DD_SCAN_SCAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

enum dd_scan_mode {
    DD_SCAN_MODE_AUTO,    /* sampled when the inputs total more than 1 GiB */
    DD_SCAN_MODE_EXACT,   /* every distinct fingerprint is kept */
    DD_SCAN_MODE_SAMPLED, /* content-based sampling in bounded memory */
};

/* Inputs larger than this use sampled mode under DD_SCAN_MODE_AUTO. */
#define DD_SCAN_AUTO_SAMPLED_BYTES (1ull << 30)
/* Default fingerprint-table budget in sampled mode. */
#define DD_SCAN_DEFAULT_MAX_MEMORY (32ull << 20)
/* Fewer LZ4 trials than this, drawn from more blocks, flag the compression
 * figures as having little support: the 95 % interval of the compressible
 * share is then wider than about +-5 points, and the packer simulation's
 * last, partly filled bins (up to 16) weigh more than 4 % of its blocks.
 * The automatic compression sample aims at ~1024 trials, so a default run
 * is flagged only when the fingerprint sample itself is that small. */
#define DD_SCAN_MIN_COMPRESS_TRIALS 400u
/* Blocks a dense UDS index remembers per GB of index memory (64 Mi per
 * 0.25 GB, i.e. about 256 GiB of recent data); a sparse index covers 10x. */
#define DD_SCAN_WINDOW_BLOCKS_PER_GB (256ull << 20)
#define DD_SCAN_SPARSE_FACTOR        10u

struct dd_scan_options {
    enum dd_scan_mode mode;
    /* Sampled mode: bytes the fingerprint table may use, growth included
     * (0 = DD_SCAN_DEFAULT_MAX_MEMORY). It picks the sampling slice 1/2^k. */
    uint64_t max_memory;
    /* Sampled mode: start with this k instead of 0 (-1 = let memory decide). */
    int sampling_bits;
    /* Dedup window in blocks; 0 = unbounded. Set from --index-memory/--sparse
     * with dd_scan_window_from_index(), or directly (--window-blocks). */
    uint64_t window_blocks;
    /* LZ4 one distinct block in this many (0 = automatic, at most 1 in 256
     * and at least ~1024 blocks), or one in 2^k when the fingerprint sample
     * is sparser (the LZ4 sample is drawn from it); compression is off when
     * no_compress. */
    uint32_t compress_sample;
    bool no_compress;
    unsigned threads; /* 0 = online CPUs */
    bool direct;      /* O_DIRECT reads (falls back to buffered where refused) */
    bool keep_going;  /* a failed input is recorded and the others go on */
};

void dd_scan_options_init(struct dd_scan_options *opts);

/* VDO accepts index memory 0.25, 0.5, 0.75 or a whole number 1..1024 (GB).
 * Returns 0 and the window in blocks, or DD_E_RANGE. */
int dd_scan_window_from_index(double index_memory_gb, bool sparse, uint64_t *ret_blocks);

enum dd_input_type {
    DD_INPUT_UNKNOWN,
    DD_INPUT_FILE,
    DD_INPUT_DIRECTORY,
    DD_INPUT_BLOCK_DEVICE,
};

const char *dd_input_type_name(enum dd_input_type type);

/* What libblkid says a block device (or image file) holds. Strings are owned
 * by the scan; NULL when absent. */
struct dd_blkid_info {
    bool probed;
    uint64_t size;
    char *type;      /* TYPE, e.g. "ext4", "vdo", "LVM2_member" */
    char *usage;     /* USAGE, e.g. "filesystem", "raid", "other" */
    char *label;     /* LABEL */
    char *uuid;      /* UUID */
    char *signature; /* "VDO" or "LVM" when such a signature is present */
};

struct dd_scan_error {
    char *path;    /* the file that failed (may be inside a directory input) */
    char *message; /* what happened, e.g. "Permission denied" */
};

struct dd_scan_input {
    char *path;
    enum dd_input_type type;
    uint64_t size;       /* bytes expected (sum of file sizes for a directory) */
    uint64_t bytes_read; /* bytes actually read */
    uint64_t files;      /* regular files (1 for a file input) */
    uint64_t skipped;    /* directory entries skipped: symlinks, special files */
    struct dd_blkid_info blkid;
    struct dd_scan_error *errors; /* failures for this input, in order */
    size_t n_errors, errors_cap;
    uint64_t errors_dropped; /* past DD_SCAN_MAX_REPORTED_ERRORS */
};

struct dd_scan_result {
    bool sampled;
    unsigned sampling_bits; /* k: fingerprints kept are a 1/2^k slice */
    double sampling_rate;   /* 1/2^k */
    uint64_t logical_bytes; /* bytes of input, before tail padding */
    uint64_t blocks_total;
    uint64_t zero_blocks;
    uint64_t nonzero_blocks;
    double distinct_blocks; /* blocks VDO would write (estimate when sampled) */
    double dedup_ratio;     /* nonzero / distinct; NaN when distinct is 0 */
    double dedup_savings_percent;
    double ci95_low, ci95_high; /* for dedup_savings_percent */
    uint64_t window_blocks;     /* 0 = unbounded */
    /* Compression (NaN when not estimated). */
    bool compression_estimated;
    double compress_sampling_rate; /* share of distinct blocks LZ4'd: 1/2^max(k, c) */
    uint64_t compress_samples;     /* writes of distinct blocks LZ4'd */
    double compressible_fraction;
    double compressible_ci95_low, compressible_ci95_high; /* equal to it when all were tried */
    /* a sample (not every block) of fewer than DD_SCAN_MIN_COMPRESS_TRIALS */
    bool compression_low_support;
    double compression_savings_percent; /* of the deduplicated data */
    double mean_fragment_bytes;         /* mean LZ4 size of compressible blocks */
    double packing_blocks_per_fragment; /* VDO packer simulation */
    double estimated_physical_blocks;
    double data_reduction_percent;
    /* Run. */
    double seconds;
    double bytes_per_second;
    unsigned threads;
    uint64_t table_bytes; /* peak fingerprint table size */
    uint64_t inputs_failed;
};

struct dd_scan;

int dd_scan_new(const struct dd_scan_options *opts, struct dd_scan **ret_scan);
struct dd_scan *dd_scan_free(struct dd_scan *scan);

/*
 * Adds an input: stats it, walks a directory, probes a block device. A failure
 * of the path itself (missing, permission denied, special file) is recorded
 * on the input and returned as a negative error; the input stays listed.
 */
int dd_scan_add_path(struct dd_scan *scan, const char *path);

/*
 * Reads and hashes every input. Returns 0, or the first error when a read
 * fails without keep_going (the message is in the input's errors), or
 * DD_E_CANCELLED.
 */
int dd_scan_run(struct dd_scan *scan);

void dd_scan_cancel(struct dd_scan *scan);

/* Safe to call from any thread while running. */
void dd_scan_progress(const struct dd_scan *scan, uint64_t *ret_done, uint64_t *ret_total);

const struct dd_scan_result *dd_scan_get_result(const struct dd_scan *scan);
size_t dd_scan_n_inputs(const struct dd_scan *scan);
const struct dd_scan_input *dd_scan_get_input(const struct dd_scan *scan, size_t i);

/* The stable JSON form (keys in README). Returns a new reference or NULL. */
json_t *dd_scan_to_json(const struct dd_scan *scan);
/* A readable summary. */
void dd_scan_print_summary(const struct dd_scan *scan, FILE *out);

#endif
