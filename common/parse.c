/*
 * Checked number parsing. strtoull/strtod are only called after the string
 * has been checked to hold what we accept, and their errno and end pointer
 * are always checked.
 */
#include "common/parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int dd_parse_u64_n(const char *s, size_t len, uint64_t *ret_value)
{
    uint64_t v = 0;

    if (len == 0)
        return DD_E_PARSE;
    /* malformed wins over out of range: "99999999999999999999x" is junk */
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return DD_E_PARSE;
    }
    for (size_t i = 0; i < len; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return DD_E_RANGE;
        v = v * 10 + d;
    }
    *ret_value = v;
    return 0;
}

int dd_parse_u64(const char *s, uint64_t *ret_value)
{
    if (!s)
        return DD_E_PARSE;
    return dd_parse_u64_n(s, strlen(s), ret_value);
}

int dd_parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret_value)
{
    uint64_t v;
    int r = dd_parse_u64(s, &v);
    if (r < 0)
        return r;
    if (v < min || v > max)
        return DD_E_RANGE;
    *ret_value = v;
    return 0;
}

/* Length of the leading "digits[.digits][e[+-]digits]" prefix, 0 if none. */
static size_t number_prefix(const char *s)
{
    size_t i = 0, digits = 0;

    while (is_digit(s[i]))
        i++, digits++;
    if (s[i] == '.') {
        i++;
        while (is_digit(s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (!is_digit(s[j]))
            return i;
        while (is_digit(s[j]))
            j++;
        i = j;
    }
    return i;
}

static int parse_double_prefix(const char *s, size_t len, double *ret_value)
{
    char buf[64];
    char *end = NULL;
    double v;

    if (len == 0 || len >= sizeof(buf))
        return len == 0 ? DD_E_PARSE : DD_E_RANGE;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtod(buf, &end);
    if (end != buf + len)
        return DD_E_PARSE;
    if (errno == ERANGE || !isfinite(v))
        return DD_E_RANGE;
    *ret_value = v;
    return 0;
}

int dd_parse_double(const char *s, double *ret_value)
{
    size_t len;

    if (!s)
        return DD_E_PARSE;
    len = number_prefix(s);
    if (len == 0 || s[len] != '\0')
        return DD_E_PARSE;
    return parse_double_prefix(s, len, ret_value);
}

int dd_parse_size(const char *s, uint64_t *ret_bytes)
{
    static const char units[] = "KMGTP";
    double v, mult = 1.0;
    size_t len;
    const char *u;
    int r;

    if (!s)
        return DD_E_PARSE;
    len = number_prefix(s);
    if (len == 0)
        return DD_E_PARSE;
    r = parse_double_prefix(s, len, &v);
    if (r < 0)
        return r;
    u = s + len;
    if (*u != '\0') {
        const char *p = strchr(units, *u >= 'a' && *u <= 'z' ? *u - 'a' + 'A' : *u);
        if (!p || *p == '\0')
            return DD_E_PARSE;
        for (long i = 0; i <= p - units; i++)
            mult *= 1024.0;
        u++;
        if ((u[0] == 'i' || u[0] == 'I') && (u[1] == 'B' || u[1] == 'b'))
            u += 2;
        else if (u[0] == 'B' || u[0] == 'b')
            u++;
        if (*u != '\0')
            return DD_E_PARSE;
    }
    v *= mult;
    if (!(v >= 0.0) || v >= 9223372036854775808.0)
        return DD_E_RANGE;
    *ret_bytes = (uint64_t)v;
    return 0;
}

int dd_parse_error_set(struct dd_parse_error *err, unsigned line, unsigned column, const char *fmt,
                       ...)
{
    va_list ap;

    if (!err)
        return DD_E_PARSE;
    err->line = line;
    err->column = column;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return DD_E_PARSE;
}

void dd_quote(char *buf, size_t size, const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max, o = 0;

    if (size == 0)
        return;
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    for (size_t i = 0; len > n && i < 3 && o + 1 < size; i++)
        buf[o++] = '.';
    buf[o] = '\0';
}

bool dd_list_next(const char **p, const char **ret_b, size_t *ret_len)
{
    const char *b = *p, *e;
    size_t len;
    if (!**p)
        return false;
    len = strcspn(b, ",");
    e = b + len;
    *p += len + (b[len] == ',');
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *ret_b = b;
    *ret_len = (size_t)(e - b);
    return true;
}
