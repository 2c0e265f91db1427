/*
 * dedupctl estimate as a user runs it: the real binary, its exit codes, its
 * messages on bad input, and the stable JSON keys.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "helpers.h"

static const char *dedupctl(void)
{
    const char *p = getenv("DEDUPCTL");
    if (!p)
        fail_msg("DEDUPCTL is not set (run through ctest)");
    return p;
}

struct fx {
    char *dir, *file, *missing;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    uint64_t seed = 1;
    uint8_t *buf = malloc(64 * 4096);
    fx->dir = tt_tmpdir();
    fx->file = tt_path(fx->dir, "data");
    fx->missing = tt_path(fx->dir, "missing");
    tt_fill_random(buf, 32 * 4096, &seed);
    memcpy(buf + 32 * 4096, buf, 32 * 4096); /* 50 % duplicate */
    tt_write_file(fx->file, buf, 64 * 4096);
    free(buf);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    tt_rmtree(fx->dir);
    free(fx->dir);
    free(fx->file);
    free(fx->missing);
    free(fx);
    return 0;
}

static json_t *parse_or_fail(const char *text)
{
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    if (!doc)
        fail_msg("bad JSON at line %d: %s\n%s", err.line, err.text, text);
    return doc;
}

static void test_json_keys(void **state)
{
    static const char *const keys[] = {"logical_bytes",
                                       "blocks_total",
                                       "zero_blocks",
                                       "nonzero_blocks",
                                       "distinct_blocks",
                                       "dedup_ratio",
                                       "dedup_savings_percent",
                                       "compressible_fraction",
                                       "compressible_ci95_low",
                                       "compressible_ci95_high",
                                       "compression_low_support",
                                       "compress_samples",
                                       "compression_savings_percent",
                                       "estimated_physical_blocks",
                                       "data_reduction_percent",
                                       "mode",
                                       "sampling_rate",
                                       "ci95_low",
                                       "ci95_high",
                                       "window_blocks",
                                       "bytes_per_second",
                                       "inputs"};
    struct fx *fx = *state;
    char *out = NULL, *err = NULL;
    const char *argv[] = {dedupctl(), "estimate", "--json", fx->file, NULL};
    int rc = tt_run(argv, &out, &err);
    assert_int_equal(rc, 0);
    json_t *doc = parse_or_fail(out);
    for (size_t i = 0; i < DD_ARRAY_SIZE(keys); i++) {
        if (!json_object_get(doc, keys[i]))
            fail_msg("key %s missing", keys[i]);
    }
    assert_int_equal(json_integer_value(json_object_get(doc, "blocks_total")), 64);
    assert_int_equal(json_integer_value(json_object_get(doc, "distinct_blocks")), 32);
    assert_true(json_real_value(json_object_get(doc, "dedup_ratio")) == 2.0);
    assert_string_equal(json_string_value(json_object_get(doc, "mode")), "exact");
    assert_true(json_is_null(json_object_get(doc, "window_blocks")));
    /* every distinct block was LZ4'd: exact, so no interval and no flag */
    assert_true(json_real_value(json_object_get(doc, "compressible_ci95_low")) ==
                json_real_value(json_object_get(doc, "compressible_fraction")));
    assert_true(json_is_false(json_object_get(doc, "compression_low_support")));
    json_t *in = json_array_get(json_object_get(doc, "inputs"), 0);
    assert_string_equal(json_string_value(json_object_get(in, "type")), "file");
    assert_int_equal(json_integer_value(json_object_get(in, "bytes")), 64 * 4096);
    json_decref(doc);
    assert_string_equal(err, ""); /* no progress line when stderr is not a TTY */
    free(out);
    free(err);
}

static void test_summary_text(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    const char *argv[] = {dedupctl(), "estimate", fx->file, NULL};
    assert_int_equal(tt_run(argv, &out, NULL), 0);
    assert_non_null(strstr(out, "dedup ratio"));
    assert_non_null(strstr(out, "2.000"));
    assert_non_null(strstr(out, "estimated physical blocks"));
    free(out);
}

static void test_progress_line(void **state)
{
    struct fx *fx = *state;
    char *err = NULL;
    const char *argv[] = {dedupctl(), "estimate", "--progress", fx->file, NULL};
    assert_int_equal(tt_run(argv, NULL, &err), 0);
    /* bytes done of the known total, then the line is cleared */
    assert_non_null(strstr(err, "MiB"));
    assert_non_null(strstr(err, "\033[K"));
    free(err);
}

static void test_missing_path(void **state)
{
    struct fx *fx = *state;
    char *out = NULL, *err = NULL;
    const char *argv[] = {dedupctl(), "estimate", fx->missing, fx->file, NULL};
    assert_int_equal(tt_run(argv, &out, &err), 1);
    assert_non_null(strstr(err, fx->missing));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_string_equal(out, "");
    free(out);
    free(err);
}

/* Issue 9: /proc files report size 0; the estimate was 0 bytes, exit 0 */
static void test_proc_file_refused(void **state)
{
    char *out = NULL, *err = NULL;
    const char *argv[] = {dedupctl(), "estimate", "/proc/cpuinfo", NULL};
    (void)state;
    if (access("/proc/cpuinfo", R_OK) != 0)
        tt_skip("/proc/cpuinfo is not readable here");
    assert_int_equal(tt_run(argv, &out, &err), 1);
    assert_non_null(strstr(err, "/proc/cpuinfo"));
    assert_non_null(strstr(err, "pseudo file system"));
    assert_string_equal(out, "");
    free(out);
    free(err);
}

static void test_keep_going(void **state)
{
    struct fx *fx = *state;
    char *out = NULL, *err = NULL;
    const char *argv[] = {dedupctl(), "estimate", "--keep-going", "--json", fx->missing,
                          fx->file,   NULL};
    assert_int_equal(tt_run(argv, &out, &err), 3);
    assert_non_null(strstr(err, fx->missing));
    json_t *doc = parse_or_fail(out);
    json_t *inputs = json_object_get(doc, "inputs");
    assert_int_equal(json_array_size(inputs), 2);
    json_t *bad = json_array_get(inputs, 0);
    assert_string_equal(json_string_value(json_object_get(bad, "path")), fx->missing);
    assert_string_equal(json_string_value(json_object_get(bad, "error")),
                        "No such file or directory");
    assert_int_equal(json_integer_value(json_object_get(doc, "blocks_total")), 64);
    json_decref(doc);
    free(out);
    free(err);
}

static void test_usage_errors(void **state)
{
    struct fx *fx = *state;
    static const struct {
        const char *opt, *value, *expect;
    } cases[] = {
        {"--mode", "bogus", "--mode"},
        {"--index-memory", "0.3", "--index-memory"},
        {"--threads", "0", "--threads"},
        {"--max-memory", "12Q", "--max-memory"},
        {"--window-blocks", "-5", "--window-blocks"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        char *err = NULL;
        const char *argv[] = {dedupctl(), "estimate", cases[i].opt, cases[i].value, fx->file, NULL};
        assert_int_equal(tt_run(argv, NULL, &err), 2);
        assert_non_null(strstr(err, cases[i].expect));
        free(err);
    }
    char *err = NULL;
    const char *noargs[] = {dedupctl(), "estimate", NULL};
    assert_int_equal(tt_run(noargs, NULL, &err), 2);
    assert_non_null(strstr(err, "no PATH"));
    free(err);
    const char *unknown[] = {dedupctl(), "frobnicate", NULL};
    assert_int_equal(tt_run(unknown, NULL, &err), 2);
    free(err);
    (void)state;
}

static void test_index_window(void **state)
{
    struct fx *fx = *state;
    char *out = NULL;
    const char *dense[] = {dedupctl(), "estimate", "--json", "--index-memory",
                           "0.25",     fx->file,   NULL};
    assert_int_equal(tt_run(dense, &out, NULL), 0);
    json_t *doc = parse_or_fail(out);
    assert_int_equal(json_integer_value(json_object_get(doc, "window_blocks")), 64ll << 20);
    json_decref(doc);
    free(out);
    const char *sparse[] = {dedupctl(), "estimate", "--json", "--index-memory",
                            "1",        "--sparse", fx->file, NULL};
    assert_int_equal(tt_run(sparse, &out, NULL), 0);
    doc = parse_or_fail(out);
    assert_int_equal(json_integer_value(json_object_get(doc, "window_blocks")), 2560ll << 20);
    json_decref(doc);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summary_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_path, setup, teardown),
        cmocka_unit_test(test_proc_file_refused),
        cmocka_unit_test_setup_teardown(test_keep_going, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_window, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
