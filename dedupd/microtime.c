/*
 * MicroTime (microtime.h): civil dates to days and back with Howard
 * Hinnant's algorithms (proleptic Gregorian, exact for every year here).
 */
#include "dedupd/microtime.h"

#include <stdbool.h>
#include <stdio.h>

#include "common/common.h"

#define US_PER_DAY 86400000000LL

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z */
static int64_t min_us(void)
{
    return days_from_civil(0, 1, 1) * US_PER_DAY;
}
static int64_t max_us(void)
{
    return (days_from_civil(9999, 12, 31) + 1) * US_PER_DAY - 1;
}

int dd_microtime_format(int64_t unix_us, char *buf, size_t len)
{
    int64_t y, days, rem;
    unsigned m, d;

    if (len)
        buf[0] = '\0';
    if (len < DD_MICROTIME_LEN || unix_us < min_us() || unix_us > max_us())
        return DD_E_RANGE;
    days = unix_us / US_PER_DAY;
    rem = unix_us % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / 1000000;
    snprintf(buf, len, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", (int)y, m, d, (int)(secs / 3600),
             (int)(secs / 60 % 60), (int)(secs % 60), (int)(rem % 1000000));
    return 0;
}

/* n decimal digits at s[*i] (all of them digits); false otherwise. */
static bool digits(const char *s, size_t len, size_t *i, unsigned n, unsigned *ret)
{
    unsigned v = 0;
    if (len - *i < n)
        return false;
    for (unsigned k = 0; k < n; k++) {
        char c = s[*i + k];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    *i += n;
    *ret = v;
    return true;
}

static bool lit(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

int dd_microtime_parse(const char *s, size_t len, int64_t *unix_us)
{
    unsigned year = 0, mon = 0, day = 0, hh = 0, mm = 0, ss = 0, oh = 0, om = 0;
    int64_t frac = 0;
    int sign = 0;
    size_t i = 0;

    if (!s || !digits(s, len, &i, 4, &year) || !lit(s, len, &i, '-') ||
        !digits(s, len, &i, 2, &mon) || !lit(s, len, &i, '-') || !digits(s, len, &i, 2, &day) ||
        !lit(s, len, &i, 'T') || !digits(s, len, &i, 2, &hh) || !lit(s, len, &i, ':') ||
        !digits(s, len, &i, 2, &mm) || !lit(s, len, &i, ':') || !digits(s, len, &i, 2, &ss))
        return DD_E_PARSE;
    if (mon < 1 || mon > 12 || day < 1 || day > month_days(year, mon) || hh > 23 || mm > 59 ||
        ss > 59)
        return DD_E_PARSE;
    if (i < len && s[i] == '.') {
        unsigned n = 0;
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (++n > 9)
                return DD_E_PARSE;
            if (n <= 6)
                frac = frac * 10 + (s[i] - '0');
            i++;
        }
        if (n == 0)
            return DD_E_PARSE;
        for (; n < 6; n++)
            frac *= 10;
    }
    if (i < len && s[i] == 'Z') {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        i++;
        if (!digits(s, len, &i, 2, &oh) || !lit(s, len, &i, ':') || !digits(s, len, &i, 2, &om) ||
            oh > 23 || om > 59)
            return DD_E_PARSE;
    } else {
        return DD_E_PARSE;
    }
    if (i != len)
        return DD_E_PARSE;
    int64_t t = days_from_civil(year, mon, day) * US_PER_DAY +
                ((int64_t)hh * 3600 + mm * 60 + ss) * 1000000 + frac;
    /* local time = UTC + offset */
    t -= (int64_t)sign * ((int64_t)oh * 3600 + om * 60) * 1000000;
    *unix_us = t;
    return 0;
}
