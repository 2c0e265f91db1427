/*
 * common/dynbuf: the cap (exactly at it, one past it, with printf), the NUL
 * terminator, take/reset/free, and every allocation failing in turn
 * (curl's torture habit) leaving the content unchanged. ASan's leak check
 * is the teardown check.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "common/dynbuf.h"
#include "helpers.h"

static void test_empty(void **state)
{
    struct dd_dynbuf b;
    char *s;
    size_t len = 99;
    (void)state;

    dd_dynbuf_init(&b, 16);
    assert_string_equal(dd_dynbuf_str(&b), "");
    assert_int_equal(dd_dynbuf_len(&b), 0);
    assert_null(b.buf); /* init allocates nothing */
    s = dd_dynbuf_take(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    dd_free(s);
    dd_dynbuf_free(&b);
    dd_dynbuf_free(&b); /* twice is fine */
}

static void test_append_and_cap(void **state)
{
    struct dd_dynbuf b;
    (void)state;

    dd_dynbuf_init(&b, 10);
    assert_int_equal(dd_dynbuf_append_str(&b, "hello"), 0);
    assert_int_equal(dd_dynbuf_append(&b, "", 0), 0);
    assert_string_equal(dd_dynbuf_str(&b), "hello");
    assert_int_equal(dd_dynbuf_append_str(&b, "world"), 0); /* exactly the cap */
    assert_int_equal(dd_dynbuf_len(&b), 10);
    assert_string_equal(dd_dynbuf_str(&b), "helloworld");
    assert_int_equal(dd_dynbuf_append_str(&b, "!"), DD_E_TOOBIG);
    assert_string_equal(dd_dynbuf_str(&b), "helloworld"); /* unchanged */
    assert_int_equal(dd_dynbuf_append(&b, "", 0), 0);     /* nothing still fits */
    assert_true(b.alloc <= 11);                           /* never past cap + NUL */

    dd_dynbuf_reset(&b);
    assert_string_equal(dd_dynbuf_str(&b), "");
    assert_int_equal(dd_dynbuf_append_str(&b, "0123456789x"), DD_E_TOOBIG);
    assert_int_equal(dd_dynbuf_len(&b), 0);
    dd_dynbuf_free(&b);

    /* a zero cap holds nothing, but the empty append works */
    dd_dynbuf_init(&b, 0);
    assert_int_equal(dd_dynbuf_append(&b, "", 0), 0);
    assert_string_equal(dd_dynbuf_str(&b), "");
    assert_int_equal(dd_dynbuf_append_str(&b, "x"), DD_E_TOOBIG);
    dd_dynbuf_free(&b);

    /* the largest cap does not wrap */
    dd_dynbuf_init(&b, (size_t)-1);
    assert_int_equal(dd_dynbuf_append_str(&b, "ok"), 0);
    assert_string_equal(dd_dynbuf_str(&b), "ok");
    dd_dynbuf_free(&b);
}

static void test_binary_and_growth(void **state)
{
    struct dd_dynbuf b;
    char *s;
    size_t len;
    (void)state;

    dd_dynbuf_init(&b, 100000);
    assert_int_equal(dd_dynbuf_append(&b, "a\0b", 3), 0);
    assert_int_equal(dd_dynbuf_len(&b), 3);
    assert_memory_equal(dd_dynbuf_str(&b), "a\0b\0", 4);
    for (int i = 0; i < 30000; i++)
        assert_int_equal(dd_dynbuf_append(&b, "xyz", 3), 0);
    assert_int_equal(dd_dynbuf_len(&b), 90003);
    assert_int_equal(dd_dynbuf_str(&b)[90003], '\0');
    {
        static char big[10000];
        assert_int_equal(dd_dynbuf_append(&b, big, sizeof(big)), DD_E_TOOBIG);
        assert_int_equal(dd_dynbuf_append(&b, big, 100000 - 90003), 0); /* to the cap */
        assert_int_equal(dd_dynbuf_len(&b), 100000);
        assert_int_equal(b.alloc, 100001);
        dd_dynbuf_reset(&b);
        assert_int_equal(dd_dynbuf_append(&b, "a\0b", 3), 0);
        for (int i = 0; i < 30000; i++)
            assert_int_equal(dd_dynbuf_append(&b, "xyz", 3), 0);
    }
    s = dd_dynbuf_take(&b, &len);
    assert_int_equal(len, 90003);
    assert_int_equal(s[len], '\0');
    assert_null(b.buf);
    assert_int_equal(dd_dynbuf_len(&b), 0);
    dd_free(s);
    /* usable again after take */
    assert_int_equal(dd_dynbuf_append_str(&b, "again"), 0);
    assert_string_equal(dd_dynbuf_str(&b), "again");
    dd_dynbuf_free(&b);
}

static void test_printf(void **state)
{
    struct dd_dynbuf b;
    (void)state;

    dd_dynbuf_init(&b, 12);
    assert_int_equal(dd_dynbuf_printf(&b, "%s=%d", "n", 42), 0);
    assert_int_equal(dd_dynbuf_printf(&b, "%s", ""), 0);
    assert_string_equal(dd_dynbuf_str(&b), "n=42");
    assert_int_equal(dd_dynbuf_printf(&b, ",%05d", 7), 0);
    assert_string_equal(dd_dynbuf_str(&b), "n=42,00007");
    assert_int_equal(dd_dynbuf_printf(&b, "%s", "abc"), DD_E_TOOBIG); /* 13 > 12 */
    assert_string_equal(dd_dynbuf_str(&b), "n=42,00007");
    assert_int_equal(dd_dynbuf_printf(&b, "%s", "ab"), 0); /* exactly 12 */
    assert_string_equal(dd_dynbuf_str(&b), "n=42,00007ab");
    dd_dynbuf_free(&b);
}

/* Fails the 1st, 2nd, ... allocation of a sequence of appends until one run
 * needs no failure: each failure returns -ENOMEM and keeps the content. */
static void test_alloc_failures(void **state)
{
    (void)state;

    for (unsigned long fail = 1;; fail++) {
        struct dd_dynbuf b;
        char expect[4096] = "";
        size_t elen = 0;
        int failed = 0;

        dd_dynbuf_init(&b, 4000);
        dd_alloc_fail_at(fail);
        for (int i = 0; i < 300; i++) {
            char piece[16];
            int n = snprintf(piece, sizeof(piece), "%d,", i);
            int r =
                (i % 2) ? dd_dynbuf_printf(&b, "%d,", i) : dd_dynbuf_append(&b, piece, (size_t)n);
            if (r == -ENOMEM) {
                failed++;
            } else if (r == DD_E_TOOBIG) {
                assert_true(elen + (size_t)n > 4000);
            } else {
                assert_int_equal(r, 0);
                memcpy(expect + elen, piece, (size_t)n + 1);
                elen += (size_t)n;
            }
            assert_int_equal(dd_dynbuf_len(&b), elen);
            assert_string_equal(dd_dynbuf_str(&b), expect);
        }
        dd_alloc_fail_at(0);
        dd_dynbuf_free(&b);
        if (!failed)
            break; /* the sequence made fewer than `fail` allocations */
        assert_int_equal(failed, 1);
        assert_true(fail < 100);
    }

    /* take of an empty buffer allocates "" and reports a failure as NULL */
    {
        struct dd_dynbuf b;
        size_t len = 7;
        dd_dynbuf_init(&b, 8);
        dd_alloc_fail_at(1);
        assert_null(dd_dynbuf_take(&b, &len));
        dd_alloc_fail_at(0);
        assert_int_equal(len, 7); /* untouched on failure */
        dd_dynbuf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_append_and_cap),
        cmocka_unit_test(test_binary_and_growth),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
