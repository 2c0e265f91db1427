/*
 * The capped dynamic buffer (see dynbuf.h for the invariants). Growth
 * doubles from 64 bytes, clamped to cap + 1, so a buffer never holds much
 * more memory than its cap allows and appending n bytes one at a time costs
 * O(n). Every failure leaves the buffer exactly as it was.
 */
#include "common/dynbuf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/error.h"

#define DYNBUF_MIN_ALLOC 64u

void dd_dynbuf_init(struct dd_dynbuf *b, size_t cap)
{
    b->buf = NULL;
    b->len = 0;
    b->alloc = 0;
    /* cap + 1 (the NUL) must not wrap */
    b->cap = cap < (size_t)-1 ? cap : cap - 1;
}

void dd_dynbuf_free(struct dd_dynbuf *b)
{
    dd_free(b->buf);
    b->buf = NULL;
    b->len = 0;
    b->alloc = 0;
}

void dd_dynbuf_reset(struct dd_dynbuf *b)
{
    b->len = 0;
    if (b->buf)
        b->buf[0] = '\0';
}

/* Room for need content bytes plus the NUL; need <= cap. */
static int reserve(struct dd_dynbuf *b, size_t need)
{
    size_t a = b->alloc ? b->alloc : DYNBUF_MIN_ALLOC;
    char *p;

    if (need < b->alloc)
        return 0;
    while (a <= need) {
        if (a > (b->cap + 1) / 2) {
            a = b->cap + 1; /* the last step: exactly what the cap allows */
            break;
        }
        a *= 2;
    }
    if (a > b->cap + 1)
        a = b->cap + 1;
    p = dd_realloc(b->buf, a);
    if (!p)
        return -ENOMEM;
    b->buf = p;
    b->alloc = a;
    return 0;
}

int dd_dynbuf_append(struct dd_dynbuf *b, const void *data, size_t len)
{
    int r;

    if (len > b->cap - b->len)
        return DD_E_TOOBIG;
    r = reserve(b, b->len + len);
    if (r < 0)
        return r;
    if (len > 0)
        memcpy(b->buf + b->len, data, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return 0;
}

int dd_dynbuf_append_str(struct dd_dynbuf *b, const char *s)
{
    return dd_dynbuf_append(b, s, strlen(s));
}

int dd_dynbuf_vprintf(struct dd_dynbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, r;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n > b->cap - b->len)
        return DD_E_TOOBIG;
    r = reserve(b, b->len + (size_t)n);
    if (r < 0)
        return r;
    /* vsnprintf writes the NUL too: room for n + 1 bytes was reserved */
    (void)vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int dd_dynbuf_printf(struct dd_dynbuf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = dd_dynbuf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

const char *dd_dynbuf_str(const struct dd_dynbuf *b)
{
    return b->buf ? b->buf : "";
}

size_t dd_dynbuf_len(const struct dd_dynbuf *b)
{
    return b->len;
}

char *dd_dynbuf_take(struct dd_dynbuf *b, size_t *ret_len)
{
    char *p = b->buf;
    size_t len = b->len;

    if (!p) {
        p = dd_strdup("");
        if (!p)
            return NULL;
        len = 0;
    }
    b->buf = NULL;
    b->len = 0;
    b->alloc = 0;
    if (ret_len)
        *ret_len = len;
    return p;
}
