/*
 * common/strlist: push copies, byte-order sort, find, take into a plain
 * array and free it, and every allocation failing in turn leaving the list
 * as it was. ASan's leak check is the teardown check.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "common/strlist.h"
#include "helpers.h"

static void test_push_sort_find(void **state)
{
    struct dd_strlist l = DD_STRLIST_INIT;
    char name[8] = "vdo1";
    static const char *const sorted[] = {"Vdo", "vdo0", "vdo1", "vdo1", "vdo10", "vdo2"};
    (void)state;

    assert_int_equal(dd_strlist_find(&l, "x"), -ENOENT);
    dd_strlist_sort(&l); /* empty: nothing to do */
    assert_int_equal(dd_strlist_push(&l, name), 0);
    name[0] = 'X'; /* a copy was pushed */
    assert_string_equal(l.v[0], "vdo1");
    for (const char *const *s = (const char *const[]){"vdo10", "vdo2", "Vdo", "vdo0", "vdo1", NULL};
         *s; s++)
        assert_int_equal(dd_strlist_push(&l, *s), 0);
    assert_int_equal(l.n, 6);
    assert_int_equal(dd_strlist_find(&l, "vdo2"), 2); /* push order */
    dd_strlist_sort(&l);
    for (size_t i = 0; i < l.n; i++)
        assert_string_equal(l.v[i], sorted[i]);
    assert_int_equal(dd_strlist_find(&l, "vdo1"), 2); /* the first of two */
    assert_int_equal(dd_strlist_find(&l, "vdo"), -ENOENT);
    dd_strlist_release(&l);
    assert_null(l.v);
    assert_int_equal(l.n, 0);
    dd_strlist_release(&l); /* twice is fine */
    assert_int_equal(dd_strlist_push(&l, "again"), 0);
    dd_strlist_release(&l);
}

static void test_take(void **state)
{
    struct dd_strlist l = DD_STRLIST_INIT;
    char **v;
    size_t n = 99;
    (void)state;

    v = dd_strlist_take(&l, &n);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_null(dd_strv_free(v, n));
    for (int i = 0; i < 40; i++) {
        char s[16];
        snprintf(s, sizeof(s), "n%02d", 39 - i);
        assert_int_equal(dd_strlist_push(&l, s), 0);
    }
    dd_strlist_sort(&l);
    v = dd_strlist_take(&l, &n);
    assert_int_equal(n, 40);
    assert_null(l.v);
    assert_int_equal(l.n, 0);
    assert_string_equal(v[0], "n00");
    assert_string_equal(v[39], "n39");
    assert_null(dd_strv_free(v, n));
}

static void test_alloc_failures(void **state)
{
    (void)state;

    for (unsigned long fail = 1;; fail++) {
        struct dd_strlist l = DD_STRLIST_INIT;
        size_t want = 0;
        int failed = 0;

        dd_alloc_fail_at(fail);
        for (int i = 0; i < 50; i++) {
            char s[16];
            int r;
            snprintf(s, sizeof(s), "name%d", i);
            r = dd_strlist_push(&l, s);
            if (r == -ENOMEM) {
                failed++;
            } else {
                assert_int_equal(r, 0);
                want++;
            }
            assert_int_equal(l.n, want);
            if (r == 0)
                assert_string_equal(l.v[l.n - 1], s);
        }
        dd_alloc_fail_at(0);
        dd_strlist_release(&l);
        if (!failed)
            break;
        assert_int_equal(failed, 1);
        assert_true(fail < 200);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_sort_find),
        cmocka_unit_test(test_take),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
