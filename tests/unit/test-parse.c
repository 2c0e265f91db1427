/* Table-driven good and bad cases for common/parse (lvm2 vdo_t.c style). */
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "helpers.h"

static void test_u64(void **state)
{
    static const struct {
        const char *in;
        int ret;
        uint64_t value;
    } cases[] = {
        {"0", 0, 0},
        {"42", 0, 42},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", DD_E_RANGE, 0},
        {"99999999999999999999999", DD_E_RANGE, 0},
        {"", DD_E_PARSE, 0},
        {"-1", DD_E_PARSE, 0},
        {"+1", DD_E_PARSE, 0},
        {" 1", DD_E_PARSE, 0},
        {"1 ", DD_E_PARSE, 0},
        {"0x10", DD_E_PARSE, 0},
        {"1e3", DD_E_PARSE, 0},
        {"12a", DD_E_PARSE, 0},
        {"99999999999999999999x", DD_E_PARSE, 0}, /* malformed wins over range */
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        uint64_t v = 777;
        int r = dd_parse_u64(cases[i].in, &v);
        assert_int_equal(r, cases[i].ret);
        assert_true(r == 0 ? v == cases[i].value : v == 777); /* untouched on failure */
    }
    assert_int_equal(dd_parse_u64(NULL, &(uint64_t){0}), DD_E_PARSE);
}

static void test_u64_range_and_n(void **state)
{
    uint64_t v = 0;
    (void)state;
    assert_int_equal(dd_parse_u64_range("5", 1, 10, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(dd_parse_u64_range("0", 1, 10, &v), DD_E_RANGE);
    assert_int_equal(dd_parse_u64_range("11", 1, 10, &v), DD_E_RANGE);
    assert_int_equal(dd_parse_u64_n("123456", 3, &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(dd_parse_u64_n("12", 0, &v), DD_E_PARSE);
}

static void test_double(void **state)
{
    static const struct {
        const char *in;
        int ret;
        double value;
    } cases[] = {
        {"0.25", 0, 0.25},        {"1", 0, 1.0},          {"1e3", 0, 1000.0},
        {".5", 0, 0.5},           {"5.", 0, 5.0},         {"1e999", DD_E_RANGE, 0},
        {"nan", DD_E_PARSE, 0},   {"inf", DD_E_PARSE, 0}, {"-1", DD_E_PARSE, 0},
        {"0x1p3", DD_E_PARSE, 0}, {"1e", DD_E_PARSE, 0},  {"", DD_E_PARSE, 0},
        {".", DD_E_PARSE, 0},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        double v = -7.0;
        int r = dd_parse_double(cases[i].in, &v);
        assert_int_equal(r, cases[i].ret);
        if (r == 0)
            assert_true(fabs(v - cases[i].value) < 1e-12);
        else
            assert_true(v == -7.0);
    }
}

static void test_size(void **state)
{
    static const struct {
        const char *in;
        int ret;
        uint64_t value;
    } cases[] = {
        {"4096", 0, 4096},         {"64K", 0, 64ull << 10},   {"64k", 0, 64ull << 10},
        {"32M", 0, 32ull << 20},   {"32MiB", 0, 32ull << 20}, {"32MB", 0, 32ull << 20},
        {"0.5G", 0, 512ull << 20}, {"1T", 0, 1ull << 40},     {"2P", 0, 2ull << 50},
        {"8192P", DD_E_RANGE, 0},  {"1X", DD_E_PARSE, 0},     {"1Mx", DD_E_PARSE, 0},
        {"M", DD_E_PARSE, 0},      {"-1M", DD_E_PARSE, 0},    {"", DD_E_PARSE, 0},
        {"1 M", DD_E_PARSE, 0},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        uint64_t v = 777;
        int r = dd_parse_size(cases[i].in, &v);
        assert_int_equal(r, cases[i].ret);
        assert_true(r == 0 ? v == cases[i].value : v == 777);
    }
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(dd_strerror(DD_E_PARSE), "malformed input");
    assert_string_equal(dd_strerror(-2), strerror(2));
    assert_string_equal(dd_strerror(DD_E_BASE - 5), "unknown error");
    for (int e = DD_E_FIRST_ + 1; e < DD_E_LAST_; e++)
        assert_non_null(dd_strerror(e));
}

static void test_alloc_failure_injection(void **state)
{
    (void)state;
    dd_alloc_fail_at(2);
    void *a = dd_malloc(8);
    void *b = dd_malloc(8);
    void *c = dd_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    dd_free(a);
    dd_free(c);
    dd_alloc_fail_at(0);
    assert_null(dd_reallocarray(NULL, SIZE_MAX / 2, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64),      cmocka_unit_test(test_u64_range_and_n),
        cmocka_unit_test(test_double),   cmocka_unit_test(test_size),
        cmocka_unit_test(test_strerror), cmocka_unit_test(test_alloc_failure_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
