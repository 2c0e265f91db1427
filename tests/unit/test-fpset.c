/*
 * The fingerprint table: insert/find, growth, and in-place pruning (the
 * backward-shift deletion must keep every survivor reachable, including
 * clusters that wrap around the end of the table).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"
#include "helpers.h"

static void test_insert_find(void **state)
{
    struct dd_fpset set;
    uint64_t rng = 1;
    bool inserted;
    (void)state;

    assert_int_equal(dd_fpset_init(&set, 1000), 0);
    assert_int_equal(set.cap, 1024);
    for (int i = 0; i < 720; i++) {
        uint64_t lo = tt_rand64(&rng), hi = tt_rand64(&rng);
        struct dd_fpentry *e = dd_fpset_upsert(&set, lo, hi, &inserted);
        assert_true(inserted);
        e->count = (uint32_t)i + 1;
    }
    assert_int_equal(set.used, 720); /* past 7/10 of 1024 */
    assert_true(dd_fpset_is_full(&set));
    rng = 1;
    for (int i = 0; i < 720; i++) {
        uint64_t lo = tt_rand64(&rng), hi = tt_rand64(&rng);
        struct dd_fpentry *e = dd_fpset_upsert(&set, lo, hi, &inserted);
        assert_false(inserted);
        assert_int_equal(e->count, i + 1);
    }
    assert_null(dd_fpset_find(&set, 12345, 67890));
    /* the all-zero fingerprint is storable (remapped), and stays distinct from empty */
    assert_int_equal(dd_fpset_resize(&set, 2048), 0);
    dd_fpset_upsert(&set, 0, 0, &inserted);
    assert_true(inserted);
    assert_non_null(dd_fpset_find(&set, 0, 0));
    assert_int_equal(dd_fpset_resize(&set, 16), DD_E_RANGE);   /* too small for 721 */
    assert_int_equal(dd_fpset_resize(&set, 3000), DD_E_RANGE); /* not a power of two */
    dd_fpset_release(&set);
}

static bool drop_odd(const struct dd_fpentry *e, void *ctx)
{
    (void)ctx;
    return (e->count & 1) != 0;
}

static void count_drop(const struct dd_fpentry *e, void *ctx)
{
    (void)e;
    (*(size_t *)ctx)++;
}

static void test_prune_keeps_survivors(void **state)
{
    /* Keys chosen so that all land in the last slots and wrap around: the
     * hard case for backward-shift deletion. */
    for (int round = 0; round < 50; round++) {
        struct dd_fpset set;
        uint64_t rng = (uint64_t)round + 100;
        size_t dropped = 0;
        bool inserted;
        const int n = 40;
        uint64_t keys[40][2];
        (void)state;

        assert_int_equal(dd_fpset_init(&set, 64), 0);
        for (int i = 0; i < n; i++) {
            /* home slots 56..63: a cluster that wraps */
            keys[i][0] = 56 + (tt_rand64(&rng) % 8) + (tt_rand64(&rng) << 8);
            keys[i][1] = tt_rand64(&rng) | 1;
            struct dd_fpentry *e = dd_fpset_upsert(&set, keys[i][0], keys[i][1], &inserted);
            assert_true(inserted);
            e->count = (uint32_t)i;
        }
        size_t removed = dd_fpset_prune(&set, drop_odd, count_drop, &dropped);
        assert_int_equal(removed, n / 2);
        assert_int_equal(dropped, n / 2);
        assert_int_equal(set.used, n / 2);
        for (int i = 0; i < n; i++) {
            struct dd_fpentry *e = dd_fpset_find(&set, keys[i][0], keys[i][1]);
            if (i % 2 == 0) {
                assert_non_null(e);
                assert_int_equal(e->count, i);
            } else {
                assert_null(e);
            }
        }
        dd_fpset_release(&set);
    }
}

static void test_alloc_failure(void **state)
{
    struct dd_fpset set;
    (void)state;
    dd_alloc_fail_at(1);
    assert_int_equal(dd_fpset_init(&set, 64), -ENOMEM);
    assert_int_equal(dd_fpset_init(&set, 64), 0);
    dd_alloc_fail_at(1);
    assert_int_equal(dd_fpset_resize(&set, 128), -ENOMEM);
    assert_int_equal(set.cap, 64); /* unchanged after the failure */
    dd_alloc_fail_at(0);
    dd_fpset_release(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find),
        cmocka_unit_test(test_prune_keeps_survivors),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
