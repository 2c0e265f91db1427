/*
 * Fuzz target for the estimator's internal parts, driven the way scan.c drives
 * them: blocks are hashed with dd_hasher_run (zero check, XXH3, LZ4 trial) in
 * chunks, the records merged with dd_estimator_add, then dd_estimator_finish.
 *
 * Input layout (missing bytes read as 0):
 *   byte 0  bit 0: sampled mode; bits 1-4: initial_k (mod 9); bits 5-6:
 *           compress_bits; bit 7: compression off
 *   byte 1  bit 7: a dedup window of 1 + (bits 0-5) blocks, times 4096 when
 *           bit 6 is set; else no window
 *   byte 2  max_memory: 64 KiB + (byte mod 193) KiB, so that sampled mode
 *           raises k after a few hundred distinct blocks
 *   byte 3  blocks per hashed chunk and dd_estimator_add call: 1 + byte mod 64
 *   byte 4  expected_blocks, the table's up-front size hint: 256 x byte
 *           (0 = unknown); a hint only, so no result may depend on it
 *   rest    one selector byte per block (see next_block), so zero blocks and
 *           duplicates are common
 *
 * The target knows which blocks have the same content, since it made them,
 * and runs its own model of the dedup window over that. It checks:
 *   - every record: zero flag against memcmp, csize set exactly for the
 *     compression sample, the same fingerprint for the same content;
 *   - block counts exact in both modes; in exact mode distinct_blocks equals
 *     the model's; in sampled mode with k still 0 the estimate equals the
 *     model; the table stayed within max_memory;
 *   - in both modes the compression figures are exactly those of the model's
 *     writes of blocks in the final compression slice (top max(k, c) bits of
 *     the fingerprint zero), their fragments packed in write order: no trial
 *     of a block that left the sample when k grew is counted (issue 9);
 *   - 0 <= distinct <= nonzero, ci95_low <= savings <= ci95_high,
 *     estimated_physical_blocks <= distinct_blocks, the packer's bounds.
 * Everything is released, so the leak check covers the estimator too.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"
#include "fuzz.h"

#define BS        ((size_t)DD_BLOCK_SIZE)
#define MAX_CHUNK 64u
/* 256 MiB of stream, made and hashed chunk by chunk: room for the exact
 * table (65536 slots) to fill up, grow and prune. */
#define MAX_BLOCKS (1u << 16)
#define BIG_BURST  16384u

/* Selector byte: kind in the low 3 bits, argument (0..31) in the high 5. */
enum kind {
    K_ZERO,   /* a zero block */
    K_SPARSE, /* zero but one byte: value = arg, offset from the next byte */
    K_FIXED,  /* one of N_FIXED fixed patterns */
    K_SEEDED, /* pseudo-random (incompressible), one of N_SEEDS */
    K_HALF,   /* pseudo-random head, zero tail (compressible), one of N_SEEDS */
    K_RAW,    /* unique; the next 1 + (byte mod 64) input bytes tiled over it */
    K_BURST,  /* unique, highly compressible blocks: see burst_length() */
    K_ZERO2,  /* a zero block */
};

#define N_FIXED 5u
#define N_SEEDS 32u
#define N_POS   256u

/* Content ids of blocks that can repeat; unique and zero blocks have none. */
#define ID_FIXED  0u
#define ID_SEEDED (ID_FIXED + N_FIXED)
#define ID_HALF   (ID_SEEDED + N_SEEDS)
#define ID_SPARSE (ID_HALF + N_SEEDS)
#define N_IDS     (ID_SPARSE + N_POS * N_SEEDS)
#define ID_UNIQUE UINT32_MAX
#define ID_ZERO   (UINT32_MAX - 1u)

struct gen {
    const uint8_t *p, *end;
    uint64_t burst_left;
    uint64_t unique; /* stamps RAW and BURST blocks */
    uint64_t produced;
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = splitmix64(&seed);
        memcpy(p + i, &v, DD_MIN(len - i, sizeof(v)));
    }
}

/* Every non-zero block but K_SPARSE's starts with 8 non-zero bytes (magic and
 * kind) and a parameter: different (kind, parameter) means different content,
 * and none can equal a K_SPARSE block, which has a single non-zero byte. */
#define HDR 16u
static void put_header(uint8_t *blk, char kind, uint64_t param)
{
    static const char magic[7] = {'d', 'd', 'f', 'u', 'z', 'z', ':'};

    memcpy(blk, magic, sizeof(magic));
    blk[7] = (uint8_t)kind;
    for (unsigned i = 0; i < 8; i++)
        blk[8 + i] = (uint8_t)(param >> (8 * i));
}

static void make_fixed(uint8_t *blk, unsigned idx)
{
    static const char text[] = "dedupd estimator fuzz block: the quick brown fox\n";

    memset(blk, 0, BS);
    put_header(blk, 'F', idx);
    switch (idx) {
    case 0: /* text: compresses well */
        for (size_t i = HDR; i < BS; i++)
            blk[i] = (uint8_t)text[(i - HDR) % (sizeof(text) - 1)];
        break;
    case 1:
        memset(blk + HDR, 0xff, BS - HDR);
        break;
    case 2: /* a ramp */
        for (size_t i = HDR; i < BS; i++)
            blk[i] = (uint8_t)(i * 7u);
        break;
    case 3: /* incompressible */
        fill_random(blk + HDR, BS - HDR, UINT64_C(0xf00d));
        break;
    default: /* the header alone */
        break;
    }
}

/* Blocks in a K_BURST: mostly short, so that an input costs little, but long
 * enough to make sampled mode raise k; BIG_BURST takes the marker twice in a
 * row (0xfe 0xfe), so that only inputs meant for it fill the exact table. */
static uint64_t burst_length(struct gen *g, unsigned arg)
{
    if (arg < 16)
        return arg + 1u; /* 1..16 */
    if (arg < 31)
        return 32u * (arg - 15u); /* 32..480 */
    if (g->p < g->end && *g->p == 0xfe) {
        g->p++;
        return BIG_BURST;
    }
    return 1024u;
}

/* Makes the next block of the stream into blk; false at the end. */
static bool next_block(struct gen *g, uint8_t *blk, uint32_t *ret_id)
{
    unsigned sel, arg;

    if (g->produced >= MAX_BLOCKS)
        return false;
    g->produced++;
    if (g->burst_left > 0) {
        g->burst_left--;
        memset(blk, 0, BS);
        put_header(blk, 'U', g->unique++);
        *ret_id = ID_UNIQUE;
        return true;
    }
    if (g->p == g->end) {
        g->produced--;
        return false;
    }
    sel = *g->p++;
    arg = sel >> 3;
    switch ((enum kind)(sel & 7u)) {
    case K_ZERO:
    case K_ZERO2:
        memset(blk, 0, BS);
        *ret_id = ID_ZERO;
        return true;
    case K_SPARSE: {
        unsigned pos = g->p < g->end ? *g->p++ : 0;
        size_t off = pos * 16u + (pos & 15u); /* 0 .. 4095 */
        memset(blk, 0, BS);
        blk[off] = (uint8_t)arg;
        *ret_id = arg == 0 ? ID_ZERO : ID_SPARSE + pos * N_SEEDS + arg;
        return true;
    }
    case K_FIXED:
        make_fixed(blk, arg % N_FIXED);
        *ret_id = ID_FIXED + arg % N_FIXED;
        return true;
    case K_SEEDED:
        put_header(blk, 'S', arg);
        fill_random(blk + HDR, BS - HDR, arg);
        *ret_id = ID_SEEDED + arg;
        return true;
    case K_HALF: {
        size_t head = 1024u * (1u + arg % 3u);
        memset(blk, 0, BS);
        put_header(blk, 'H', arg);
        fill_random(blk + HDR, head, arg ^ UINT64_C(0x5eed));
        *ret_id = ID_HALF + arg;
        return true;
    }
    case K_RAW: {
        size_t want = g->p < g->end ? 1u + (size_t)(*g->p++ % 64u) : 1u;
        size_t n = DD_MIN(want, (size_t)(g->end - g->p));
        memset(blk, 0, BS);
        put_header(blk, 'R', g->unique++);
        for (size_t i = 0; n > 0 && HDR + i < BS; i++)
            blk[HDR + i] = g->p[i % n];
        g->p += n;
        *ret_id = ID_UNIQUE;
        return true;
    }
    case K_BURST:
        g->burst_left = burst_length(g, arg) - 1u;
        memset(blk, 0, BS);
        put_header(blk, 'U', g->unique++);
        *ret_id = ID_UNIQUE;
        return true;
    }
    abort();
}

/* The dedup window model, on content ids, and what the records said. */
struct model {
    uint64_t window;
    uint64_t blocks, zeros, nonzero, writes;
    /* over the writes whose record was LZ4'd (exact mode's figures) */
    uint64_t comp_eval, comp_ok, comp_bytes;
    /* each of those writes, in order: fingerprint hi and LZ4 size */
    uint64_t *w_hi;    /* [MAX_BLOCKS] */
    uint16_t *w_csize; /* [MAX_BLOCKS] */
    size_t n_w;
    uint64_t *last;  /* [N_IDS] post number of the last occurrence, 0 = none */
    uint64_t *fp;    /* [2 * N_IDS] fingerprint of each id once seen */
    uint16_t *csize; /* [N_IDS] LZ4 size once known, DD_CSIZE_NONE before */
};

static void model_add(struct model *m, uint32_t id, const struct dd_block_rec *rec)
{
    bool write;
    uint64_t seq;

    m->blocks++;
    if (id == ID_ZERO) {
        m->zeros++;
        return;
    }
    seq = ++m->nonzero;
    if (id == ID_UNIQUE) {
        write = true;
    } else {
        write = m->last[id] == 0 || (m->window && seq - m->last[id] > m->window);
        m->last[id] = seq;
    }
    if (!write)
        return;
    m->writes++;
    if (rec->csize != DD_CSIZE_NONE) {
        m->w_hi[m->n_w] = rec->hi;
        m->w_csize[m->n_w++] = rec->csize;
        m->comp_eval++;
        if (rec->csize != DD_CSIZE_INCOMPRESSIBLE) {
            m->comp_ok++;
            m->comp_bytes += rec->csize;
        }
    }
}

static void check_record(struct model *m, uint32_t id, const uint8_t *blk,
                         const struct dd_block_rec *rec, bool compress, unsigned k, unsigned c)
{
    static const uint8_t zero_block[DD_BLOCK_SIZE];
    bool is_zero = memcmp(blk, zero_block, BS) == 0;

    CHECK(is_zero == (id == ID_ZERO)); /* the generator's own promise */
    if (is_zero) {
        CHECK(rec->zero == 1);
        CHECK(rec->lo == 0 && rec->hi == 0);
        CHECK(rec->csize == DD_CSIZE_NONE);
        return;
    }
    CHECK(rec->zero == 0);
    CHECK((rec->csize != DD_CSIZE_NONE) == (compress && dd_fp_in_compress_sample(rec->hi, k, c)));
    CHECK(rec->csize == DD_CSIZE_NONE || rec->csize == DD_CSIZE_INCOMPRESSIBLE ||
          rec->csize < DD_VDO_COMPRESSED_DATA_SIZE);
    if (id == ID_UNIQUE)
        return;
    /* same content, same fingerprint and LZ4 size */
    if (m->fp[2 * id] == 0 && m->fp[2 * id + 1] == 0) {
        m->fp[2 * id] = rec->lo;
        m->fp[2 * id + 1] = rec->hi;
    } else {
        CHECK(m->fp[2 * id] == rec->lo && m->fp[2 * id + 1] == rec->hi);
    }
    if (rec->csize != DD_CSIZE_NONE) {
        if (m->csize[id] == DD_CSIZE_NONE)
            m->csize[id] = rec->csize;
        else
            CHECK(m->csize[id] == rec->csize);
    }
}

/* a <= b, allowing for rounding */
static bool le(double a, double b)
{
    return a <= b + 1e-9 * fmax(1.0, fabs(b));
}

static bool close_to(double a, double b)
{
    return le(a, b) && le(b, a);
}

static void check_result(const struct dd_estimator_config *cfg, const struct model *m,
                         const struct dd_scan_result *r)
{
    const double T = (double)r->blocks_total, N = (double)r->nonzero_blocks;
    const double Z = (double)r->zero_blocks, D = r->distinct_blocks;

    /* counts are exact in both modes */
    CHECK(r->blocks_total == m->blocks);
    CHECK(r->zero_blocks == m->zeros);
    CHECK(r->nonzero_blocks == m->nonzero);
    CHECK(r->blocks_total == r->zero_blocks + r->nonzero_blocks);
    CHECK(r->sampled == cfg->sampled);
    CHECK(r->window_blocks == cfg->window);
    CHECK(r->sampling_rate == ldexp(1.0, -(int)r->sampling_bits));

    /* distinct blocks */
    CHECK(isfinite(D));
    CHECK(D >= 0.0 && le(D, N));
    CHECK(m->nonzero == 0 ? D == 0.0 : le(1.0, D));
    if (!cfg->sampled) {
        CHECK(r->sampling_bits == 0);
        CHECK(D == floor(D));
        CHECK(D == (double)m->writes);
    } else {
        CHECK(r->sampling_bits >= cfg->initial_k && r->sampling_bits <= 63);
        /* the table fits max_memory, doubling included (scan.h) */
        CHECK(r->table_bytes + r->table_bytes / 2 <= cfg->max_memory);
        if (r->sampling_bits == 0) /* nothing was sampled away: exact */
            CHECK(close_to(D, (double)m->writes));
    }
    if (D > 0)
        CHECK(isfinite(r->dedup_ratio) && le(1.0, r->dedup_ratio));
    else
        CHECK(isnan(r->dedup_ratio));

    /* savings and their interval */
    if (T > 0) {
        CHECK(isfinite(r->dedup_savings_percent));
        CHECK(isfinite(r->ci95_low) && isfinite(r->ci95_high));
        CHECK(le(r->ci95_low, r->dedup_savings_percent));
        CHECK(le(r->dedup_savings_percent, r->ci95_high));
        CHECK(le(100.0 * Z / T, r->ci95_low));
        CHECK(le(r->ci95_high, 100.0));
        if (!cfg->sampled)
            CHECK(r->ci95_low == r->ci95_high);
        CHECK(isfinite(r->data_reduction_percent));
        CHECK(le(r->dedup_savings_percent, r->data_reduction_percent));
        CHECK(le(r->data_reduction_percent, 100.0));
    } else {
        CHECK(isnan(r->dedup_savings_percent));
        CHECK(isnan(r->ci95_low) && isnan(r->ci95_high));
        CHECK(isnan(r->data_reduction_percent));
    }

    /* compression */
    CHECK(r->estimated_physical_blocks >= 0.0);
    CHECK(le(r->estimated_physical_blocks, D));
    if (!cfg->compress) {
        CHECK(!r->compression_estimated);
        CHECK(r->compress_sampling_rate == 0.0);
        CHECK(r->estimated_physical_blocks == D);
        CHECK(isnan(r->compressible_fraction));
        return;
    }
    const unsigned level = dd_compress_level(r->sampling_bits, cfg->compress_bits);
    CHECK(r->compress_sampling_rate == ldexp(1.0, -(int)level));
    CHECK(r->compression_estimated == (r->compress_samples > 0));
    if (!cfg->sampled) {
        CHECK(r->compress_samples == m->comp_eval);
        if (cfg->compress_bits == 0)
            CHECK(r->compress_samples == m->writes);
    }
    /* the figures are those of the final slice's writes, in write order */
    uint64_t eval = 0, ok = 0, bytes = 0;
    struct dd_packer pk;
    dd_packer_init(&pk);
    for (size_t i = 0; i < m->n_w; i++) {
        if (!dd_fp_in_slice(m->w_hi[i], level))
            continue;
        eval++;
        if (m->w_csize[i] != DD_CSIZE_INCOMPRESSIBLE) {
            ok++;
            bytes += m->w_csize[i];
            dd_packer_add(&pk, m->w_csize[i]);
        }
    }
    CHECK(r->compress_samples == eval);
    if (eval > 0) {
        double frags = (double)pk.fragments;
        double packed = (double)dd_packer_flush(&pk);
        CHECK(r->compressible_fraction == (double)ok / (double)eval);
        if (ok > 0) {
            CHECK(r->mean_fragment_bytes == (double)bytes / (double)ok);
            CHECK(r->packing_blocks_per_fragment == packed / frags);
        }
        CHECK(le(r->compressible_ci95_low, r->compressible_fraction));
        CHECK(le(r->compressible_fraction, r->compressible_ci95_high));
        CHECK(r->compressible_ci95_low >= 0.0 && r->compressible_ci95_high <= 1.0);
        CHECK(r->compression_low_support == (level > 0 && eval < DD_SCAN_MIN_COMPRESS_TRIALS));
    }
    if (!r->compression_estimated) {
        CHECK(r->estimated_physical_blocks == D);
        CHECK(isnan(r->compressible_fraction));
        return;
    }
    CHECK(r->compressible_fraction >= 0.0 && r->compressible_fraction <= 1.0);
    if (!cfg->sampled)
        CHECK(r->compressible_fraction == (double)m->comp_ok / (double)m->comp_eval);
    if (r->compressible_fraction > 0.0) {
        double bpf = r->packing_blocks_per_fragment, mean = r->mean_fragment_bytes;
        CHECK(isfinite(bpf) && isfinite(mean));
        /* a packed block holds 1..14 fragments and at most its data area */
        CHECK(le(1.0 / DD_VDO_MAX_COMPRESSION_SLOTS, bpf) && le(bpf, 1.0));
        CHECK(mean >= 1.0 && mean < DD_VDO_COMPRESSED_DATA_SIZE);
        CHECK(le(mean / DD_VDO_COMPRESSED_DATA_SIZE, bpf));
        if (!cfg->sampled)
            CHECK(mean == (double)m->comp_bytes / (double)m->comp_ok);
    } else {
        CHECK(isnan(r->packing_blocks_per_fragment) && isnan(r->mean_fragment_bytes));
        CHECK(r->estimated_physical_blocks == D);
    }
    if (D > 0)
        CHECK(le(-0.0, r->compression_savings_percent) &&
              le(r->compression_savings_percent, 100.0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t conf[5] = {0};
    struct dd_estimator_config cfg = {0};
    struct dd_estimator est;
    struct dd_scan_result res;
    struct model m = {0};
    struct gen g = {0};
    struct dd_hasher *h = NULL;
    uint8_t *buf = NULL;
    struct dd_block_rec *recs = NULL;
    uint32_t ids[MAX_CHUNK];
    size_t chunk;
    int r;

    if (size > 0)
        memcpy(conf, data, DD_MIN(size, sizeof(conf)));
    cfg.sampled = conf[0] & 1u;
    cfg.initial_k = ((conf[0] >> 1) & 15u) % 9u;
    cfg.compress_bits = (conf[0] >> 5) & 3u;
    cfg.compress = !(conf[0] & 0x80u);
    cfg.window = (conf[1] & 0x80u) ? (1u + (conf[1] & 63u)) * ((conf[1] & 0x40u) ? 4096u : 1u) : 0;
    cfg.max_memory = (64u + conf[2] % 193u) * 1024u;
    chunk = 1u + conf[3] % MAX_CHUNK;
    cfg.expected_blocks = (uint64_t)conf[4] * 256u;
    g.p = data + DD_MIN(size, sizeof(conf));
    g.end = data + size;

    m.window = cfg.window;
    m.last = calloc(N_IDS, sizeof(*m.last));
    m.fp = calloc(2 * N_IDS, sizeof(*m.fp));
    m.csize = calloc(N_IDS, sizeof(*m.csize));
    m.w_hi = calloc(MAX_BLOCKS, sizeof(*m.w_hi));
    m.w_csize = calloc(MAX_BLOCKS, sizeof(*m.w_csize));
    buf = aligned_alloc(64, MAX_CHUNK * BS);
    recs = calloc(MAX_CHUNK, sizeof(*recs));
    h = dd_hasher_new();
    CHECK(m.last && m.fp && m.csize && m.w_hi && m.w_csize && buf && recs && h);
    CHECK(dd_estimator_init(&est, &cfg) == 0);

    for (;;) {
        size_t n = 0;
        unsigned k = est.k, c = est.c; /* as scan.c reads them when it claims a chunk */

        while (n < chunk && next_block(&g, buf + n * BS, &ids[n]))
            n++;
        if (n == 0)
            break;
        memset(recs, 0xa5, n * sizeof(*recs)); /* every field must be written */
        dd_hasher_run(h, buf, n * BS, cfg.compress, k, c, recs);
        for (size_t i = 0; i < n; i++) {
            check_record(&m, ids[i], buf + i * BS, &recs[i], cfg.compress, k, c);
            model_add(&m, ids[i], &recs[i]);
        }
        r = dd_estimator_add(&est, recs, n);
        CHECK(r == 0); /* fails only on out-of-memory; the table here is small */
        CHECK(est.blocks_total == m.blocks);
    }

    memset(&res, 0, sizeof(res));
    dd_estimator_finish(&est, &res);
    check_result(&cfg, &m, &res);

    dd_estimator_release(&est);
    dd_hasher_free(h);
    free(recs);
    free(buf);
    free(m.w_csize);
    free(m.w_hi);
    free(m.csize);
    free(m.fp);
    free(m.last);
    return 0;
}
