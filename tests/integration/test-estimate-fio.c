/*
 * The estimator on fio-made data (fio --dedupe_percentage=P), data no one
 * tuned for:
 *  - exact mode equals an independent brute-force count: every 4 KiB block of
 *    the file sorted by memcmp, distinct runs counted (no hashing at all);
 *  - sampled mode, with the default budget (which on 1 GiB may keep every
 *    fingerprint) and with a forced 1/4 sample, stays within 1 percentage
 *    point of exact savings on inputs of at least 1 GiB;
 *  - both fio dedupe modes: "repeat" (duplicates next to each other, which
 *    flatters an estimator) and "working_set" (duplicates spread out).
 * DD_FIO_SIZE_MB sets the file size (default 1024).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/scan/scan.h"
#include "helpers.h"

static const uint8_t zero_block[DD_BLOCK_SIZE];

static int block_cmp(const void *a, const void *b)
{
    return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, DD_BLOCK_SIZE);
}

/* Brute force: sort all blocks by content and count distinct non-zero ones. */
static void brute_force(const char *path, uint64_t *ret_distinct, uint64_t *ret_zero,
                        uint64_t *ret_blocks)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size % DD_BLOCK_SIZE, 0); /* fio writes whole blocks */
    size_t n = (size_t)st.st_size / DD_BLOCK_SIZE;
    const uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    assert_true(map != MAP_FAILED);
    const uint8_t **blocks = malloc(n * sizeof(*blocks));
    for (size_t i = 0; i < n; i++)
        blocks[i] = map + i * DD_BLOCK_SIZE;
    qsort(blocks, n, sizeof(*blocks), block_cmp);
    uint64_t distinct = 0, zero = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(blocks[i], zero_block, DD_BLOCK_SIZE) == 0) {
            zero++;
            continue;
        }
        if (i == 0 || memcmp(blocks[i], blocks[i - 1], DD_BLOCK_SIZE) != 0)
            distinct++;
    }
    free(blocks);
    munmap((void *)(uintptr_t)map, (size_t)st.st_size);
    close(fd);
    *ret_distinct = distinct;
    *ret_zero = zero;
    *ret_blocks = n;
}

static void fio_make(const char *path, unsigned mb, unsigned pct, const char *mode)
{
    char size[32], dp[48], dm[48], fn[512];
    snprintf(size, sizeof(size), "--size=%uM", mb);
    snprintf(dp, sizeof(dp), "--dedupe_percentage=%u", pct);
    snprintf(dm, sizeof(dm), "--dedupe_mode=%s", mode);
    snprintf(fn, sizeof(fn), "--filename=%s", path);
    const char *argv[] = {"/usr/bin/fio",
                          "--name=gen",
                          fn,
                          "--rw=write",
                          "--bs=4k",
                          size,
                          dp,
                          dm,
                          "--dedupe_working_set_percentage=10",
                          "--refill_buffers",
                          "--ioengine=psync",
                          "--output=/dev/null",
                          NULL};
    assert_int_equal(tt_run(argv, NULL, NULL), 0);
}

static struct dd_scan_result estimate(const char *path, enum dd_scan_mode mode, int bits)
{
    struct dd_scan *scan = NULL;
    struct dd_scan_options o;
    struct dd_scan_result r;
    dd_scan_options_init(&o);
    o.mode = mode;
    o.sampling_bits = bits;
    o.no_compress = true;
    assert_int_equal(dd_scan_new(&o, &scan), 0);
    assert_int_equal(dd_scan_add_path(scan, path), 0);
    assert_int_equal(dd_scan_run(scan), 0);
    r = *dd_scan_get_result(scan);
    dd_scan_free(scan);
    return r;
}

static void run_case(unsigned pct, const char *mode)
{
    const char *env = getenv("DD_FIO_SIZE_MB");
    unsigned mb = env ? (unsigned)strtoul(env, NULL, 10) : 1024;
    char *dir = tt_tmpdir(), *path = tt_path(dir, "fio.dat");
    uint64_t distinct, zero, blocks;

    if (access("/usr/bin/fio", X_OK) != 0)
        fail_msg("fio is not installed (apt-get install fio)");
    fio_make(path, mb, pct, mode);
    brute_force(path, &distinct, &zero, &blocks);

    struct dd_scan_result ex = estimate(path, DD_SCAN_MODE_EXACT, -1);
    assert_int_equal(ex.blocks_total, blocks);
    assert_int_equal(ex.zero_blocks, zero);
    assert_true(ex.distinct_blocks == (double)distinct);

    struct dd_scan_result sd = estimate(path, DD_SCAN_MODE_SAMPLED, -1);
    struct dd_scan_result ss = estimate(path, DD_SCAN_MODE_SAMPLED, 2);
    print_message("fio %u%% %-11s %u MiB: brute %llu distinct; exact %.3f%%; sampled 1/%.0f "
                  "%.3f%% [%.2f, %.2f]; sampled 1/%.0f %.3f%% [%.2f, %.2f]\n",
                  pct, mode, mb, (unsigned long long)distinct, ex.dedup_savings_percent,
                  1 / sd.sampling_rate, sd.dedup_savings_percent, sd.ci95_low, sd.ci95_high,
                  1 / ss.sampling_rate, ss.dedup_savings_percent, ss.ci95_low, ss.ci95_high);
    assert_true(ss.sampling_bits >= 2); /* a 1/4 sample really was taken */
    if (mb >= 1024) {
        assert_true(fabs(sd.dedup_savings_percent - ex.dedup_savings_percent) <= 1.0);
        assert_true(fabs(ss.dedup_savings_percent - ex.dedup_savings_percent) <= 1.0);
    }
    /* and fio made what it was asked for (its unique share is within ~0.3 pt) */
    assert_true(fabs(ex.dedup_savings_percent - (double)pct) < 2.0);
    tt_rmtree(dir);
    free(dir);
    free(path);
}

static void test_p0(void **state)
{
    (void)state;
    run_case(0, "repeat");
}
static void test_p25(void **state)
{
    (void)state;
    run_case(25, "repeat");
}
static void test_p50(void **state)
{
    (void)state;
    run_case(50, "repeat");
}
static void test_p75(void **state)
{
    (void)state;
    run_case(75, "repeat");
}
static void test_p90(void **state)
{
    (void)state;
    run_case(90, "repeat");
}
static void test_p50_working_set(void **state)
{
    (void)state;
    run_case(50, "working_set");
}
static void test_p90_working_set(void **state)
{
    (void)state;
    run_case(90, "working_set");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_p0),
        cmocka_unit_test(test_p25),
        cmocka_unit_test(test_p50),
        cmocka_unit_test(test_p75),
        cmocka_unit_test(test_p90),
        cmocka_unit_test(test_p50_working_set),
        cmocka_unit_test(test_p90_working_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
