/*
 * Checked number parsing for everything that comes from outside (flags,
 * config, text formats). Each function accepts the whole string or nothing:
 * no leading spaces or signs, no trailing junk, no overflow. Outputs are
 * written only on success. Returns 0 or DD_E_PARSE / DD_E_RANGE; when a string
 * is both malformed and too large, the integer parsers say DD_E_PARSE.
 * Decimal numbers (dd_parse_double, dd_parse_size) longer than 63 characters
 * are refused with DD_E_RANGE: no value we accept needs more.
 */
#ifndef DD_COMMON_PARSE_H
#define DD_COMMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Where and why a text parser stopped. Parsers of outside formats (VDO stats
 * replies, status/table lines, /proc files, JSON bodies) fill one of these so
 * the message can name the line and column (both 1-based; 0 when unknown).
 */
struct dd_parse_error {
    unsigned line, column;
    char message[160];
};

/* Records a parse error (printf-style); returns DD_E_PARSE for convenience. */
int dd_parse_error_set(struct dd_parse_error *err, unsigned line, unsigned column, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

/*
 * Copies at most max bytes of s (len bytes) into buf for an error message:
 * bytes that are not printable ASCII become '?', and "..." marks a cut. buf
 * should hold max + 4 bytes. Outside input never reaches a message raw.
 */
void dd_quote(char *buf, size_t size, const char *s, size_t len, size_t max);

/* Decimal digits only, "0" .. "18446744073709551615". */
int dd_parse_u64(const char *s, uint64_t *ret_value);

/* Like dd_parse_u64, and the value must lie in [min, max]. */
int dd_parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *ret_value);

/* A finite decimal number ("0.25", "1e3"); no hex, inf or nan. */
int dd_parse_double(const char *s, double *ret_value);

/*
 * A byte size: a non-negative number, optionally fractional, with an optional
 * binary unit K, M, G, T or P (case-insensitive, optionally followed by "iB"
 * or "B": "64M", "0.5GiB", "4096"). The result is rounded down to whole bytes
 * and must fit in 63 bits.
 */
int dd_parse_size(const char *s, uint64_t *ret_bytes);

/* Parse a number of bytes from a buffer that need not be NUL-terminated. */
int dd_parse_u64_n(const char *s, size_t len, uint64_t *ret_value);

/* The next item of a comma-separated list at *p (advanced past it and its
 * comma), blanks and tabs trimmed: *b and *len (0: an empty item). false at
 * the end of the list. */
bool dd_list_next(const char **p, const char **b, size_t *len);

#endif
