/*
 * Fuzz target for common/parse.c. The input, as a NUL-terminated string (and
 * as raw bytes for dd_parse_u64_n), goes through every parser, and each answer
 * is checked against an oracle written here from the grammar in parse.h:
 *   - success and failure, and the error code, match the oracle (for sizes,
 *     only success and the value: which of PARSE/RANGE a bad size gets
 *     depends on where it is first seen to be bad);
 *   - the value matches strtoull/strtod on the same digits;
 *   - outputs are untouched on failure (pre-filled with a sentinel);
 *   - a size is always below 2^63.
 * A violated invariant aborts.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/parse.h"
#include "fuzz.h"

#define SENTINEL_U64 UINT64_C(0xdeadbeefcafef00d)
#define SENTINEL_DBL (-12345.678)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

/* True when the decimal digits b[0..len) are more than UINT64_MAX, compared
 * as digit strings. */
static bool digits_overflow(const char *b, size_t len)
{
    while (len > 1 && b[0] == '0')
        b++, len--;
    return len > 20 || (len == 20 && memcmp(b, "18446744073709551615", 20) > 0);
}

/*
 * What dd_parse_u64_n must answer for len bytes at b: decimal digits only, at
 * least one, value at most UINT64_MAX. parse.h says malformed wins over out
 * of range ("99999999999999999999x" is DD_E_PARSE); *ret_range_too is kept
 * for callers and is always false now.
 */
static int expect_u64(const char *b, size_t len, uint64_t *ret_value, bool *ret_range_too)
{
    char buf[24];
    char *end = NULL;
    unsigned long long v;
    size_t run = 0;

    *ret_range_too = false;
    if (len == 0)
        return DD_E_PARSE;
    while (run < len && is_digit(b[run]))
        run++;
    if (run < len)
        return DD_E_PARSE;
    if (digits_overflow(b, len))
        return DD_E_RANGE;
    while (len > 1 && b[0] == '0')
        b++, len--;
    memcpy(buf, b, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoull(buf, &end, 10);
    CHECK(errno == 0 && end == buf + len);
    *ret_value = (uint64_t)v;
    return 0;
}

static void check_u64_answer(int r, uint64_t got, int want_r, bool range_too, uint64_t want)
{
    CHECK(r == want_r || (range_too && r == DD_E_RANGE));
    if (r == 0)
        CHECK(got == want);
    else
        CHECK(got == SENTINEL_U64);
}

/* True when s matches digits[.digits][(e|E)[+-]digits], with at least one
 * mantissa digit (either side of the point): what dd_parse_double accepts. */
static bool is_decimal(const char *s, size_t len)
{
    size_t i = 0, digits = 0;

    while (i < len && is_digit(s[i]))
        i++, digits++;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < len && is_digit(s[i]))
            i++, exp_digits++;
        if (exp_digits == 0)
            return false;
    }
    return i == len;
}

/* What dd_parse_double must answer for the len bytes at s (no NUL inside). */
static int expect_double(const char *s, size_t len, double *ret_value)
{
    char buf[80];
    char *end = NULL;
    double v;

    if (!is_decimal(s, len))
        return DD_E_PARSE;
    /* parse.c's bound on a number's length: longer ones are out of range */
    if (len >= 64)
        return DD_E_RANGE;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtod(buf, &end);
    CHECK(end == buf + len);
    if (errno == ERANGE || !isfinite(v))
        return DD_E_RANGE;
    CHECK(v >= 0.0);
    *ret_value = v;
    return 0;
}

static bool is_unit(char c)
{
    return c != '\0' && strchr("KMGTPkmgtp", c) != NULL;
}

/* Splits s into number and unit suffix (K, KB, KiB in any case mix parse.h
 * allows); returns the number's length and the multiplier's power of 1024. */
static size_t split_unit(const char *s, size_t len, int *ret_power)
{
    static const char order[] = "KMGTP";
    size_t ulen = 0;

    if (len >= 3 && is_unit(s[len - 3]) && (s[len - 2] == 'i' || s[len - 2] == 'I') &&
        (s[len - 1] == 'B' || s[len - 1] == 'b'))
        ulen = 3;
    else if (len >= 2 && is_unit(s[len - 2]) && (s[len - 1] == 'B' || s[len - 1] == 'b'))
        ulen = 2;
    else if (len >= 1 && is_unit(s[len - 1]))
        ulen = 1;
    if (ulen == 0) {
        *ret_power = 0;
        return len;
    }
    char u = s[len - ulen];
    if (u >= 'a' && u <= 'z')
        u = (char)(u - 'a' + 'A');
    *ret_power = (int)(strchr(order, u) - order) + 1;
    return len - ulen;
}

static void fuzz_u64(const char *s, size_t slen, const uint8_t *data, size_t size)
{
    uint64_t want = 0, got;
    bool range_too;
    int want_r, r;

    /* the raw bytes, in a buffer of exactly their size */
    want_r = expect_u64((const char *)data, size, &want, &range_too);
    got = SENTINEL_U64;
    r = dd_parse_u64_n((const char *)data, size, &got);
    check_u64_answer(r, got, want_r, range_too, want);

    /* every short prefix of them */
    for (size_t n = 0; n <= size && n <= 24; n++) {
        uint64_t w = 0;
        bool rt;
        int wr = expect_u64((const char *)data, n, &w, &rt);
        got = SENTINEL_U64;
        r = dd_parse_u64_n((const char *)data, n, &got);
        check_u64_answer(r, got, wr, rt, w);
    }

    /* the string; dd_parse_u64 is dd_parse_u64_n over strlen */
    want_r = expect_u64(s, slen, &want, &range_too);
    got = SENTINEL_U64;
    r = dd_parse_u64(s, &got);
    check_u64_answer(r, got, want_r, range_too, want);
    {
        uint64_t got_n = SENTINEL_U64;
        CHECK(dd_parse_u64_n(s, slen, &got_n) == r && got_n == got);
    }

    /* ranges around the value, and fixed ones */
    struct {
        uint64_t min, max;
    } ranges[] = {
        {0, UINT64_MAX},
        {1, 100},
        {4096, UINT64_C(1) << 40},
        {UINT64_MAX, UINT64_MAX},
        {10, 9}, /* empty */
        {want, want},
        {want + 1, UINT64_MAX},
        {0, want - 1},
        {want > 0 ? want - 1 : 0, want < UINT64_MAX ? want + 1 : want},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint64_t min = ranges[i].min, max = ranges[i].max;
        int rr = r; /* what dd_parse_u64 said, then the range */
        if (rr == 0 && (want < min || want > max))
            rr = DD_E_RANGE;
        got = SENTINEL_U64;
        CHECK(dd_parse_u64_range(s, min, max, &got) == rr);
        if (rr == 0)
            CHECK(got == want);
        else
            CHECK(got == SENTINEL_U64);
    }
}

static void fuzz_double(const char *s, size_t slen)
{
    double want = 0.0, got = SENTINEL_DBL;
    int want_r = expect_double(s, slen, &want);
    int r = dd_parse_double(s, &got);

    CHECK(r == want_r);
    if (r == 0) {
        CHECK(isfinite(got) && got >= 0.0);
        CHECK(same_double(got, want));
    } else {
        CHECK(same_double(got, SENTINEL_DBL));
    }
}

static void fuzz_size(const char *s, size_t slen)
{
    uint64_t got = SENTINEL_U64;
    double num = 0.0;
    int power;
    size_t nlen = split_unit(s, slen, &power);
    int num_r = expect_double(s, nlen, &num);
    int r = dd_parse_size(s, &got);
    bool want_ok = false;
    uint64_t want = 0;

    if (num_r == 0) {
        /* a power of two: the product is exact unless it overflows */
        double bytes = num * ldexp(1.0, 10 * power);
        if (bytes < 9223372036854775808.0) {
            want_ok = true;
            want = (uint64_t)bytes;
        }
    }
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE);
    CHECK((r == 0) == want_ok);
    if (r == 0) {
        CHECK(got < (UINT64_C(1) << 63));
        CHECK(got == want);
    } else {
        CHECK(got == SENTINEL_U64);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    size_t slen;

    if (size > 4096)
        return 0; /* the parsers are linear; long inputs add nothing */
    s = malloc(size + 1);
    if (!s)
        return 0;
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    slen = strlen(s); /* stops at an embedded NUL */

    fuzz_u64(s, slen, data, size);
    fuzz_double(s, slen);
    fuzz_size(s, slen);

    free(s);
    return 0;
}
