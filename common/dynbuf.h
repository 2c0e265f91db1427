/*
 * A growable byte buffer with a cap fixed at init (curl's
 * docs/internals/DYNBUF.md). Every buffer that grows from outside input
 * (HTTP replies, files, command output) is one of these, so the cap is
 * decided where the buffer is made and not forgotten later.
 *
 * Invariants:
 * - len <= cap at all times; an append that would pass the cap fails with
 *   DD_E_TOOBIG and leaves the content as it was (unlike curl, which frees
 *   it: callers here often want to report what arrived before the cap).
 * - Once anything was appended, buf[len] == '\0', so the content is also a C
 *   string (which may hold earlier NUL bytes of binary data).
 * - Memory comes from the common/alloc.h shim; tests fail it with
 *   dd_alloc_fail_at. An allocation failure also leaves the content as it was.
 * - cap counts content bytes; the terminating NUL is extra.
 *
 * A value type: embed it, dd_dynbuf_init it, dd_dynbuf_free it. Not
 * thread-safe; one owner at a time.
 */
#ifndef DD_COMMON_DYNBUF_H
#define DD_COMMON_DYNBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/macro.h"

struct dd_dynbuf {
    char *buf;    /* NULL until the first append; owned */
    size_t len;   /* content bytes, NUL excluded */
    size_t alloc; /* bytes allocated at buf */
    size_t cap;   /* most content bytes ever held */
};

/* An empty buffer that will hold at most cap bytes. Allocates nothing. */
void dd_dynbuf_init(struct dd_dynbuf *b, size_t cap);
/* Frees the memory; the buffer is empty and may be used again (same cap). */
void dd_dynbuf_free(struct dd_dynbuf *b);
/* Empties the buffer but keeps its memory for reuse. */
void dd_dynbuf_reset(struct dd_dynbuf *b);

/* Appends len bytes. 0, DD_E_TOOBIG past the cap, -ENOMEM; on failure the
 * content is unchanged. */
int dd_dynbuf_append(struct dd_dynbuf *b, const void *data, size_t len);
/* Appends a C string (without its NUL). */
int dd_dynbuf_append_str(struct dd_dynbuf *b, const char *s);
/* Appends formatted text; same errors as dd_dynbuf_append (-EINVAL on a
 * format error). */
int dd_dynbuf_printf(struct dd_dynbuf *b, const char *fmt, ...) _dd_printf_(2, 3);
int dd_dynbuf_vprintf(struct dd_dynbuf *b, const char *fmt, va_list ap) _dd_printf_(2, 0);

/* The content as a C string: "" (a static string) while empty. Valid until
 * the next call that changes the buffer. */
const char *dd_dynbuf_str(const struct dd_dynbuf *b);
size_t dd_dynbuf_len(const struct dd_dynbuf *b);

/*
 * Hands the content over: returns a NUL-terminated string the caller frees
 * with dd_free (an empty buffer gives a new ""), its length in *ret_len (may
 * be NULL), and leaves the buffer empty with no memory. NULL only when an
 * empty buffer's "" cannot be allocated.
 */
char *dd_dynbuf_take(struct dd_dynbuf *b, size_t *ret_len);

#endif
