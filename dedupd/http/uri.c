/*
 * The request target's checks (see uri.h), moved out of http.c so they can
 * be run without a server.
 */
#include "dedupd/http/uri.h"

#include <stdint.h>
#include <string.h>

#include "common/common.h"

void dd_http_uri_scan(const char *uri, bool *ret_encoded_nul, unsigned *ret_n_args)
{
    const char *q = strchr(uri, '?');
    size_t path_len = q ? (size_t)(q - uri) : strlen(uri);
    unsigned n_args = 0;
    bool nul = false;

    for (const char *p = uri; (p = strstr(p, "%00")) && (size_t)(p - uri) < path_len; p += 3)
        nul = true;
    if (q)
        for (const char *p = q; p; p = strchr(p + 1, '&'))
            n_args++;
    *ret_encoded_nul = nul;
    *ret_n_args = n_args;
}

/* Length of the valid UTF-8 sequence at p (1..4), reading at most avail
 * bytes, or 0 when it is not one (stray continuation, overlong form,
 * surrogate, past U+10FFFF, cut off by avail or a NUL). */
static size_t seq_n(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (n > avail)
        return 0; /* cut off: its continuation bytes are not ours to read */
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0; /* includes the NUL ending a cut-off sequence */
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

size_t dd_http_utf8_seq(const unsigned char *p)
{
    return seq_n(p, 4); /* NUL-terminated: a NUL ends a cut-off sequence */
}

/* Messages quote what the client sent and are cut to a buffer: a cut may
 * split a character and the input need not be UTF-8 at all. JSON strings
 * must be, so each invalid byte becomes '?' (and the status stays the
 * 4xx it is, rather than a 500 for a message jansson refuses). */
void dd_http_utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = dd_http_utf8_seq(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

/* NULL when s (n bytes) is valid UTF-8 without NUL, else what is wrong. */
const char *dd_http_text_problem(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    if (memchr(s, '\0', n))
        return "contains an encoded NUL (%00)";
    for (size_t i = 0; i < n;) {
        size_t k = seq_n(p + i, n - i);
        if (k == 0)
            return "is not valid UTF-8";
        i += k;
    }
    return NULL;
}

bool dd_http_match(const char *pattern, const char *path, char *scratch, size_t scratch_len,
                   const char **params, size_t *n_params)
{
    const char *p = pattern, *u = path;
    size_t used = 0;

    *n_params = 0;
    while (*p && *u) {
        if (*p == '{') {
            const char *end = strchr(u, '/');
            size_t len = end ? (size_t)(end - u) : strlen(u);
            if (len == 0 || *n_params >= DD_HTTP_MAX_PARAMS || used + len + 1 > scratch_len)
                return false;
            memcpy(scratch + used, u, len);
            scratch[used + len] = '\0';
            params[(*n_params)++] = scratch + used;
            used += len + 1;
            u += len;
            p = strchr(p, '}');
            if (!p)
                return false;
            p++;
            continue;
        }
        if (*p != *u)
            return false;
        p++;
        u++;
    }
    return *p == '\0' && *u == '\0';
}
