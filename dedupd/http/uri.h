/*
 * The HTTP server's checks on the request target, as pure functions (no
 * libmicrohttpd, no connection), shared by http.c and the fuzz targets: the
 * raw request line's scan (an encoded NUL in the path, the query's argument
 * count), the decoded text checks (NUL, UTF-8), routing a decoded path
 * against a route pattern, and the scrub that keeps quoted client text in
 * an error message valid UTF-8.
 */
#ifndef DD_HTTP_URI_H
#define DD_HTTP_URI_H

#include <stdbool.h>
#include <stddef.h>

/* The raw request target (path and query, still percent-encoded): whether
 * the path holds "%00", and how many '&'-separated arguments the query has
 * (0 without a '?'). */
void dd_http_uri_scan(const char *uri, bool *ret_encoded_nul, unsigned *ret_n_args);

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one
 * (stray continuation, overlong form, surrogate, past U+10FFFF, cut off by
 * the string's NUL). */
size_t dd_http_utf8_seq(const unsigned char *p);

/* Replaces each byte of s that is not part of valid UTF-8 by '?'. */
void dd_http_utf8_scrub(char *s);

/* NULL when s (n bytes, decoded; nothing past them is read) is valid UTF-8
 * without NUL, else what is wrong ("contains an encoded NUL (%00)", "is not valid UTF-8"). */
const char *dd_http_text_problem(const char *s, size_t n);

/* Matches a decoded path against a route pattern ("{x}" matches one
 * non-empty segment); fills params (at most DD_HTTP_MAX_PARAMS, copied into
 * scratch, which needs strlen(path) + 1 bytes). */
bool dd_http_match(const char *pattern, const char *path, char *scratch, size_t scratch_len,
                   const char **params, size_t *n_params);

#endif
