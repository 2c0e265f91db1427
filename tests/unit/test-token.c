/*
 * dedupd/http/token: the content rules as a table (good tokens with what
 * they become, bad ones with the exact error and message), then real files:
 * a good one, missing, a directory, a FIFO with no writer (refused at once:
 * it used to hang start-up), the 4 KiB cap from both sides, NUL bytes, and
 * every allocation failing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/http/token.h"
#include "helpers.h"

#define T16 "0123456789abcdef"

static void test_parse_table(void **state)
{
    static const struct {
        const char *in;
        size_t len; /* 0: strlen(in) */
        int ret;
        const char *out; /* the token, or a part of the message */
    } cases[] = {
        {T16, 0, 0, T16},
        {T16 "\n", 0, 0, T16},
        {T16 "\r\n", 0, 0, T16},
        {T16 " \t\n\n", 0, 0, T16},
        {"eyJhbGciOiJSUzI1NiJ9.e30.sig-_~+/=", 0, 0, "eyJhbGciOiJSUzI1NiJ9.e30.sig-_~+/="},
        {"", 0, DD_E_PARSE, "is empty"},
        {"\0" T16, 17, DD_E_PARSE, "starts with a NUL byte"},
        {"\0\0\0\0", 4, DD_E_PARSE, "starts with a NUL byte"},
        {"a\0" T16, 18, DD_E_PARSE, "contains a NUL byte at offset 1"},
        {T16 "\n\0", 18, DD_E_PARSE, "contains a NUL byte at offset 17"},
        {"\n", 0, DD_E_PARSE, "holds only whitespace"},
        {" \t\r\n", 0, DD_E_PARSE, "holds only whitespace"},
        {"0123456789abcde", 0, DD_E_PARSE, "the token is 15 characters; at least 16"},
        {"0123456789abcde\n", 0, DD_E_PARSE, "the token is 15 characters"},
        {"0123456789 abcdef", 0, DD_E_PARSE, "byte 0x20 at offset 10 is not visible ASCII"},
        {" " T16, 0, DD_E_PARSE, "byte 0x20 at offset 0"},
        {"01234567\r\nX-Evil: 1", 0, DD_E_PARSE, "byte 0x0d at offset 8"},
        {T16 "\x7f", 0, DD_E_PARSE, "byte 0x7f at offset 16"},
        {T16 "\xc3\xa9", 0, DD_E_PARSE, "byte 0xc3 at offset 16"},
        {"\t" T16, 0, DD_E_PARSE, "byte 0x09 at offset 0"},
    };
    (void)state;

    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        char err[256] = "", *tok = NULL;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        int r = dd_token_parse(cases[i].in, len, &tok, err, sizeof(err));
        if (r != cases[i].ret || (r == 0 && strcmp(tok, cases[i].out) != 0) ||
            (r < 0 && (!strstr(err, cases[i].out) || tok != NULL)))
            fail_msg("case %zu: ret %d (want %d), token '%s', error '%s'", i, r, cases[i].ret,
                     tok ? tok : "(none)", err);
        dd_free(tok);
    }
}

static void test_parse_caps(void **state)
{
    static char buf[DD_TOKEN_MAX_BYTES + 2];
    char err[256], *tok = NULL;
    (void)state;

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(dd_token_parse(buf, DD_TOKEN_MAX_BYTES, &tok, err, sizeof(err)), 0);
    assert_int_equal(strlen(tok), DD_TOKEN_MAX_BYTES);
    dd_free(tok);
    tok = NULL;
    assert_int_equal(dd_token_parse(buf, DD_TOKEN_MAX_BYTES + 1, &tok, err, sizeof(err)),
                     DD_E_TOOBIG);
    assert_non_null(strstr(err, "longer than 4096 bytes"));
    assert_null(tok);

    dd_alloc_fail_at(1);
    assert_int_equal(dd_token_parse(T16, 16, &tok, err, sizeof(err)), -ENOMEM);
    dd_alloc_fail_at(0);
    assert_null(tok);
}

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = tt_tmpdir();
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tt_rmtree(dir);
    free(dir);
    return 0;
}

/* Writes data to a file in the test directory and reads it as a token. */
static int read_file(const char *name, const void *data, size_t len, char **tok, char *err,
                     size_t errlen)
{
    char *path = tt_path(dir, name);
    int r;
    tt_write_file(path, data, len);
    r = dd_token_read(path, tok, err, errlen);
    free(path);
    return r;
}

static void test_read_files(void **state)
{
    static char big[DD_TOKEN_MAX_BYTES + 1];
    char err[512], *tok = NULL, *path;
    (void)state;

    assert_int_equal(read_file("good", T16 "\n", 17, &tok, err, sizeof(err)), 0);
    assert_string_equal(tok, T16);
    dd_free(tok);
    tok = NULL;

    assert_int_equal(read_file("empty", "", 0, &tok, err, sizeof(err)), DD_E_PARSE);
    assert_non_null(strstr(err, "/empty: is empty"));
    assert_int_equal(read_file("nul-first", "\0" T16, 17, &tok, err, sizeof(err)), DD_E_PARSE);
    assert_non_null(strstr(err, "/nul-first: starts with a NUL byte"));
    assert_int_equal(read_file("nul-in", "a\0bbbbbbbbbbbbbbbbbbbbbbbb", 26, &tok, err, sizeof(err)),
                     DD_E_PARSE);
    assert_non_null(strstr(err, "/nul-in: contains a NUL byte at offset 1"));
    assert_int_equal(read_file("short", "short\n", 6, &tok, err, sizeof(err)), DD_E_PARSE);
    assert_non_null(strstr(err, "token file "));
    assert_non_null(strstr(err, "/short: the token is 5 characters"));

    /* exactly the cap is read whole; one byte more is refused, not cut */
    memset(big, 'k', sizeof(big));
    assert_int_equal(read_file("cap", big, DD_TOKEN_MAX_BYTES, &tok, err, sizeof(err)), 0);
    assert_int_equal(strlen(tok), DD_TOKEN_MAX_BYTES);
    dd_free(tok);
    tok = NULL;
    assert_int_equal(read_file("over", big, sizeof(big), &tok, err, sizeof(err)), DD_E_TOOBIG);
    assert_non_null(strstr(err, "/over: longer than 4096 bytes"));
    /* 600 bytes (past the old 512-byte buffer) come through whole */
    assert_int_equal(read_file("600", big, 600, &tok, err, sizeof(err)), 0);
    assert_int_equal(strlen(tok), 600);
    dd_free(tok);
    tok = NULL;

    path = tt_path(dir, "missing");
    assert_int_equal(dd_token_read(path, &tok, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/missing: No such file or directory"));
    assert_int_equal(dd_token_read(dir, &tok, err, sizeof(err)), DD_E_BADTYPE);
    assert_non_null(strstr(err, "is a directory, not a regular file"));
    free(path);
    assert_int_equal(dd_token_read("/dev/null", &tok, err, sizeof(err)), DD_E_BADTYPE);
    assert_string_equal(err, "token file /dev/null: is a character device, not a regular file");
    assert_null(tok);
}

/* A FIFO nobody writes to: the read must return at once with an error
 * (the old fopen blocked for ever). ctest's timeout is the backstop; alarm
 * makes a hang fail this test in seconds instead. */
static void test_read_fifo(void **state)
{
    char err[512], *tok = NULL, *path = tt_path(dir, "fifo");
    int wfd;
    (void)state;

    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    assert_int_equal(dd_token_read(path, &tok, err, sizeof(err)), DD_E_BADTYPE);
    assert_non_null(strstr(err, "/fifo: is a FIFO, not a regular file"));
    /* with a writer holding it open, still refused without a read */
    wfd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(wfd >= 0);
    assert_int_equal(dd_token_read(path, &tok, err, sizeof(err)), DD_E_BADTYPE);
    close(wfd);
    alarm(0);
    assert_null(tok);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_caps),
        cmocka_unit_test(test_read_files),
        cmocka_unit_test(test_read_fifo),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
