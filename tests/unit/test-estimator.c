/*
 * The ordered merge on synthetic fingerprint streams: exact counts, the VDO
 * dedup window (expiry and refresh), zero blocks, the sampled estimator's
 * accuracy and confidence-interval coverage, its memory bound, and the
 * compression arithmetic.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"
#include "helpers.h"

/* Fingerprint of content id (ids >= 1; 0 is the zero block). */
static struct dd_block_rec rec_of(uint64_t id, uint16_t csize)
{
    struct dd_block_rec r = {0};
    uint64_t s = id * 0x51ed2701u;
    if (id == 0) {
        r.zero = 1;
        return r;
    }
    r.lo = tt_rand64(&s);
    r.hi = tt_rand64(&s);
    r.csize = csize;
    return r;
}

static void feed(struct dd_estimator *est, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct dd_block_rec r = rec_of(ids[i], 0);
        assert_int_equal(dd_estimator_add(est, &r, 1), 0);
    }
}

static struct dd_scan_result run_ids(const struct dd_estimator_config *cfg, const uint64_t *ids,
                                     size_t n)
{
    struct dd_estimator est;
    struct dd_scan_result res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(dd_estimator_init(&est, cfg), 0);
    feed(&est, ids, n);
    dd_estimator_finish(&est, &res);
    dd_estimator_release(&est);
    return res;
}

static void test_exact_counts(void **state)
{
    /* 3 zero blocks, ids 1..4 with 1 x3, 2 x2 */
    const uint64_t ids[] = {1, 0, 2, 1, 3, 0, 1, 2, 4, 0};
    struct dd_estimator_config cfg = {0};
    struct dd_scan_result r = run_ids(&cfg, ids, DD_ARRAY_SIZE(ids));
    (void)state;
    assert_int_equal(r.blocks_total, 10);
    assert_int_equal(r.zero_blocks, 3);
    assert_int_equal(r.nonzero_blocks, 7);
    assert_true(r.distinct_blocks == 4.0);
    assert_true(fabs(r.dedup_ratio - 7.0 / 4.0) < 1e-12);
    assert_true(fabs(r.dedup_savings_percent - 60.0) < 1e-9); /* 1 - 4/10 */
    assert_true(r.ci95_low == r.ci95_high);
    assert_false(r.sampled);
}

static void test_window_expiry_and_refresh(void **state)
{
    struct dd_estimator_config cfg = {.window = 10};
    uint64_t ids[64];
    size_t n = 0;
    (void)state;

    /* A, 9 fillers, A: distance 10 <= window -> duplicate */
    ids[n++] = 1;
    for (uint64_t i = 0; i < 9; i++)
        ids[n++] = 100 + i;
    ids[n++] = 1;
    struct dd_scan_result r = run_ids(&cfg, ids, n);
    assert_true(r.distinct_blocks == 10.0);

    /* A, 10 fillers, A: distance 11 > window -> written again */
    n = 0;
    ids[n++] = 1;
    for (uint64_t i = 0; i < 10; i++)
        ids[n++] = 100 + i;
    ids[n++] = 1;
    r = run_ids(&cfg, ids, n);
    assert_true(r.distinct_blocks == 12.0);
    /* without a window the same stream dedups */
    struct dd_estimator_config unbounded = {0};
    r = run_ids(&unbounded, ids, n);
    assert_true(r.distinct_blocks == 11.0);

    /* a duplicate refreshes its record: A, 5 fillers, A, 8 fillers, A */
    n = 0;
    ids[n++] = 1;
    for (uint64_t i = 0; i < 5; i++)
        ids[n++] = 200 + i;
    ids[n++] = 1;
    for (uint64_t i = 0; i < 8; i++)
        ids[n++] = 300 + i;
    ids[n++] = 1;
    r = run_ids(&cfg, ids, n);
    assert_true(r.distinct_blocks == 14.0); /* 1 + 5 + 8; both repeats dedup */

    /* zero blocks are not posted, so they do not push records out */
    n = 0;
    ids[n++] = 1;
    for (int i = 0; i < 30; i++)
        ids[n++] = 0;
    ids[n++] = 1;
    r = run_ids(&cfg, ids, n);
    assert_true(r.distinct_blocks == 1.0);
    assert_int_equal(r.zero_blocks, 30);
}

static void test_window_prunes_table(void **state)
{
    /* 200k unique blocks through a window of 1000: the table must stay small */
    struct dd_estimator_config cfg = {.window = 1000};
    struct dd_estimator est;
    struct dd_scan_result r;
    (void)state;
    assert_int_equal(dd_estimator_init(&est, &cfg), 0);
    for (uint64_t i = 1; i <= 200000; i++) {
        struct dd_block_rec rec = rec_of(i, 0);
        assert_int_equal(dd_estimator_add(&est, &rec, 1), 0);
    }
    assert_true(est.set.cap <= (1u << 16)); /* never grew past the initial size */
    memset(&r, 0, sizeof(r));
    dd_estimator_finish(&est, &r);
    assert_true(r.distinct_blocks == 200000.0);
    dd_estimator_release(&est);
}

/* A stream of n blocks where content is drawn from a skewed pool so copy
 * counts vary (1 to dozens): the hard case for a ratio estimator. */
static uint64_t *skewed_stream(size_t n, uint64_t seed, double unique_share)
{
    uint64_t *ids = malloc(n * sizeof(*ids));
    uint64_t next = 1;
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++) {
        double u = (double)(tt_rand64(&seed) >> 11) / 9007199254740992.0;
        if (u < unique_share || next < 10) {
            ids[i] = next++;
        } else {
            /* repeat an earlier id, biased towards small ids (hot blocks) */
            double v = (double)(tt_rand64(&seed) >> 11) / 9007199254740992.0;
            ids[i] = 1 + (uint64_t)((double)(next - 1) * v * v * v);
        }
        if (tt_rand64(&seed) % 20 == 0)
            ids[i] = 0;
    }
    return ids;
}

static void test_sampled_accuracy_and_coverage(void **state)
{
    const size_t n = 200000;
    int covered = 0, rounds = 40;
    double worst = 0;
    (void)state;

    for (int round = 0; round < rounds; round++) {
        uint64_t *ids = skewed_stream(n, (uint64_t)round * 7919 + 1, 0.2 + 0.015 * round);
        struct dd_estimator_config exact = {0};
        struct dd_estimator_config sampled = {.sampled = true, .initial_k = 3};
        struct dd_scan_result re = run_ids(&exact, ids, n);
        struct dd_scan_result rs = run_ids(&sampled, ids, n);
        assert_true(rs.sampled);
        assert_int_equal(rs.sampling_bits, 3);
        assert_int_equal(rs.nonzero_blocks, re.nonzero_blocks); /* counted exactly */
        double err = fabs(rs.dedup_savings_percent - re.dedup_savings_percent);
        worst = DD_MAX(worst, err);
        if (re.dedup_savings_percent >= rs.ci95_low && re.dedup_savings_percent <= rs.ci95_high)
            covered++;
        assert_true(rs.ci95_low <= rs.dedup_savings_percent);
        assert_true(rs.ci95_high >= rs.dedup_savings_percent);
        free(ids);
    }
    print_message("sampled 1/8 on 200k blocks: worst error %.3f pp, CI covered %d/%d\n", worst,
                  covered, rounds);
    assert_true(worst < 2.0);
    assert_true(covered >= rounds * 85 / 100); /* a 95 % interval, allowing for chance */
}

static void test_sampled_memory_bound(void **state)
{
    struct dd_estimator_config cfg = {.sampled = true, .max_memory = 256 << 10};
    struct dd_estimator est;
    struct dd_scan_result r, re;
    const size_t n = 400000;
    uint64_t *ids = skewed_stream(n, 99, 0.5);
    struct dd_estimator_config exact = {0};
    (void)state;

    assert_int_equal(dd_estimator_init(&est, &cfg), 0);
    feed(&est, ids, n);
    memset(&r, 0, sizeof(r));
    dd_estimator_finish(&est, &r);
    assert_true(r.table_bytes <= (256u << 10));
    assert_true(r.sampling_bits >= 3); /* k rose to fit the budget */
    re = run_ids(&exact, ids, n);
    print_message("budget 256 KiB: k=%u savings %.2f%% vs exact %.2f%% CI [%.2f, %.2f]\n",
                  r.sampling_bits, r.dedup_savings_percent, re.dedup_savings_percent, r.ci95_low,
                  r.ci95_high);
    assert_true(fabs(r.dedup_savings_percent - re.dedup_savings_percent) < 3.0);
    dd_estimator_release(&est);
    free(ids);
}

static void test_compression_arithmetic(void **state)
{
    struct dd_estimator_config cfg = {.compress = true};
    struct dd_estimator est;
    struct dd_scan_result r;
    (void)state;

    /* 1400 distinct blocks, half compress to 200 bytes (14 per block), half not */
    assert_int_equal(dd_estimator_init(&est, &cfg), 0);
    for (uint64_t i = 1; i <= 1400; i++) {
        struct dd_block_rec rec = rec_of(i, i % 2 ? 200 : DD_CSIZE_INCOMPRESSIBLE);
        assert_int_equal(dd_estimator_add(&est, &rec, 1), 0);
        assert_int_equal(dd_estimator_add(&est, &rec, 1), 0); /* a duplicate: not re-counted */
    }
    memset(&r, 0, sizeof(r));
    dd_estimator_finish(&est, &r);
    dd_estimator_release(&est);
    assert_true(r.compression_estimated);
    assert_int_equal(r.compress_samples, 1400);
    assert_true(fabs(r.compressible_fraction - 0.5) < 1e-12);
    /* 700 incompressible + 700 / 14 packed = 750 */
    assert_true(fabs(r.estimated_physical_blocks - 750.0) < 1e-9);
    assert_true(fabs(r.data_reduction_percent - 100.0 * (1.0 - 750.0 / 2800.0)) < 1e-9);

    /* compression off: physical = distinct, figures undefined */
    struct dd_estimator_config off = {0};
    const uint64_t ids[] = {1, 2, 3};
    r = run_ids(&off, ids, 3);
    assert_false(r.compression_estimated);
    assert_true(isnan(r.compressible_fraction));
    assert_true(r.estimated_physical_blocks == 3.0);
}

/*
 * Feeds ids the way scan.c does: in chunks, each hashed with the k and c the
 * estimator had when the chunk was claimed, so a record is LZ4'd (here: gets
 * its csize) only when it was in the compression sample then. Ids below
 * `compressible_below` compress to 1500 bytes, the others do not compress.
 */
static void feed_chunked(struct dd_estimator *est, const uint64_t *ids, size_t n,
                         uint64_t compressible_below)
{
    enum { CHUNK = 256 };
    struct dd_block_rec recs[CHUNK];

    for (size_t i = 0; i < n; i += CHUNK) {
        size_t len = DD_MIN((size_t)CHUNK, n - i);
        unsigned k = est->k, c = est->c;
        for (size_t j = 0; j < len; j++) {
            recs[j] = rec_of(ids[i + j], 0);
            if (!recs[j].zero && dd_fp_in_compress_sample(recs[j].hi, k, c))
                recs[j].csize =
                    ids[i + j] < compressible_below ? 1500 : (uint16_t)DD_CSIZE_INCOMPRESSIBLE;
        }
        assert_int_equal(dd_estimator_add(est, recs, len), 0);
    }
}

static struct dd_scan_result run_chunked(const struct dd_estimator_config *cfg, const uint64_t *ids,
                                         size_t n, uint64_t compressible_below)
{
    struct dd_estimator est;
    struct dd_scan_result res;
    memset(&res, 0, sizeof(res));
    assert_int_equal(dd_estimator_init(&est, cfg), 0);
    feed_chunked(&est, ids, n, compressible_below);
    dd_estimator_finish(&est, &res);
    dd_estimator_release(&est);
    return res;
}

/*
 * Issue 9: two inputs, one compressible and one not, in both orders, through
 * a fingerprint table small enough that k grows several times. The LZ4 trials
 * kept must be a uniform sample of the distinct blocks: the same blocks in
 * either order (so the same figures), exactly those in the 1/2^m slice that
 * compress_sampling_rate names, and within sampling error of exact mode.
 */
static void test_compression_sample_order_independent(void **state)
{
    const size_t half = 100000, n = 2 * half;
    const uint64_t split = half + 1; /* ids 1..half compress, half+1..n do not */
    uint64_t *ab = malloc(n * sizeof(*ab)), *ba = malloc(n * sizeof(*ba));
    struct dd_estimator_config sampled = {
        .sampled = true, .compress = true, .compress_bits = 2, .max_memory = 256 << 10};
    struct dd_estimator_config exact = {.compress = true, .compress_bits = 2};
    struct dd_scan_result rab, rba, rex;
    uint64_t in_slice = 0, in_slice_ok = 0;
    unsigned m;
    (void)state;

    assert_non_null(ab);
    assert_non_null(ba);
    for (size_t i = 0; i < n; i++) {
        ab[i] = 1 + i;              /* compressible input first */
        ba[i] = 1 + (i + half) % n; /* random input first */
    }
    rab = run_chunked(&sampled, ab, n, split);
    rba = run_chunked(&sampled, ba, n, split);
    rex = run_chunked(&exact, ab, n, split);

    assert_true(rab.sampling_bits >= 5); /* the sample thinned several times */
    assert_int_equal(rab.sampling_bits, rba.sampling_bits);
    m = DD_MAX(rab.sampling_bits, 2u);
    for (uint64_t id = 1; id <= n; id++) {
        struct dd_block_rec r = rec_of(id, 0);
        if (dd_fp_in_slice(r.hi, m)) {
            in_slice++;
            in_slice_ok += id < split;
        }
    }
    print_message("k=%u: compressible %.4f (%llu trials) compressible first, %.4f (%llu) "
                  "random first, exact %.4f (%llu); slice 1/2^%u holds %llu blocks, %llu "
                  "compressible\n",
                  rab.sampling_bits, rab.compressible_fraction,
                  (unsigned long long)rab.compress_samples, rba.compressible_fraction,
                  (unsigned long long)rba.compress_samples, rex.compressible_fraction,
                  (unsigned long long)rex.compress_samples, m, (unsigned long long)in_slice,
                  (unsigned long long)in_slice_ok);

    /* the order does not matter at all: the same blocks were kept */
    assert_true(rab.compressible_fraction == rba.compressible_fraction);
    assert_true(rab.compression_savings_percent == rba.compression_savings_percent);
    /* the rate describes the sample: the trials are exactly the slice */
    assert_true(rab.compress_sampling_rate == ldexp(1.0, -(int)m));
    assert_int_equal(rab.compress_samples, in_slice);
    assert_int_equal(rba.compress_samples, in_slice);
    assert_true(rab.compressible_fraction == (double)in_slice_ok / (double)in_slice);
    /* and it agrees with exact mode within 4 standard errors of a proportion
     * over that many trials (a 1 in 16000 chance of a false failure for a
     * random fingerprint set; this one is fixed, so the test is repeatable) */
    double p = rex.compressible_fraction;
    double se = sqrt(p * (1.0 - p) / (double)rab.compress_samples);
    assert_true(fabs(rab.compressible_fraction - p) <= 4.0 * se);
    free(ab);
    free(ba);
}

static void test_empty_and_all_zero(void **state)
{
    struct dd_estimator_config cfg = {0};
    const uint64_t zeros[] = {0, 0, 0, 0};
    struct dd_scan_result r = run_ids(&cfg, NULL, 0);
    (void)state;
    assert_int_equal(r.blocks_total, 0);
    assert_true(isnan(r.dedup_savings_percent));
    assert_true(isnan(r.dedup_ratio));
    r = run_ids(&cfg, zeros, 4);
    assert_true(r.distinct_blocks == 0.0);
    assert_true(isnan(r.dedup_ratio));
    assert_true(r.dedup_savings_percent == 100.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_counts),
        cmocka_unit_test(test_window_expiry_and_refresh),
        cmocka_unit_test(test_window_prunes_table),
        cmocka_unit_test(test_sampled_accuracy_and_coverage),
        cmocka_unit_test(test_sampled_memory_bound),
        cmocka_unit_test(test_compression_arithmetic),
        cmocka_unit_test(test_compression_sample_order_independent),
        cmocka_unit_test(test_empty_and_all_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
