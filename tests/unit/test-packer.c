/* The VDO packer simulation: slot and byte limits, best fit, flush. */
#include "common/common.h"
#include "dedupd/scan/scan-internal.h"
#include "helpers.h"

static uint64_t pack(const uint32_t *sizes, size_t n)
{
    struct dd_packer p;
    dd_packer_init(&p);
    for (size_t i = 0; i < n; i++)
        dd_packer_add(&p, sizes[i]);
    return dd_packer_flush(&p);
}

static void test_slot_limit(void **state)
{
    uint32_t s[28];
    (void)state;
    for (size_t i = 0; i < 28; i++)
        s[i] = 100; /* 14 x 100 bytes fit easily: the slot count is the limit */
    assert_int_equal(pack(s, 14), 1);
    assert_int_equal(pack(s, 15), 2);
    assert_int_equal(pack(s, 28), 2);
}

static void test_byte_limit(void **state)
{
    uint32_t big[4] = {3000, 3000, 3000, 3000};
    uint32_t halves[4] = {2030, 2030, 2030, 2030}; /* two fill a 4060-byte area exactly */
    uint32_t mixed[4] = {3000, 1000, 3000, 1000};  /* pairs of 4000 bytes */
    (void)state;
    assert_int_equal(pack(big, 4), 4);
    assert_int_equal(pack(halves, 4), 2);
    assert_int_equal(pack(mixed, 4), 2);
}

static void test_ignores_invalid_and_empty(void **state)
{
    struct dd_packer p;
    (void)state;
    dd_packer_init(&p);
    dd_packer_add(&p, 0);
    dd_packer_add(&p, DD_VDO_COMPRESSED_DATA_SIZE + 1);
    assert_int_equal(p.fragments, 0);
    assert_int_equal(dd_packer_flush(&p), 0);
    dd_packer_add(&p, DD_VDO_COMPRESSED_DATA_SIZE); /* a full area: written at once */
    assert_int_equal(p.blocks_written, 1);
}

static void test_many_small_fragments(void **state)
{
    struct dd_packer p;
    (void)state;
    dd_packer_init(&p);
    for (int i = 0; i < 14000; i++)
        dd_packer_add(&p, 200 + (uint32_t)(i % 50));
    /* 14 fragments of <= 249 bytes always fit: exactly 1000 blocks */
    assert_int_equal(dd_packer_flush(&p), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_limit),
        cmocka_unit_test(test_byte_limit),
        cmocka_unit_test(test_ignores_invalid_and_empty),
        cmocka_unit_test(test_many_small_fragments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
