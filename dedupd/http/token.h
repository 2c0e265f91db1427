/*
 * Bearer tokens from files (--token-file for dedupd and dedupctl; later a
 * service-account token). A token goes into an HTTP header, so what is
 * accepted is narrow:
 *
 * - the path names a regular file: it is opened O_RDONLY | O_CLOEXEC |
 *   O_NONBLOCK and anything else (a FIFO, a device, a directory) is refused
 *   before a read, so a FIFO cannot hang start-up;
 * - at most DD_TOKEN_MAX_BYTES bytes (common/limits.h): longer files are an
 *   error, never cut;
 * - not empty, and no NUL byte anywhere (a file of NULs used to read as an
 *   empty token, which turned auth off on loopback; "a\0bbbb..." read as "a");
 * - trailing whitespace (the newline of `echo x > file`, a CR, spaces, tabs)
 *   is stripped; what remains must be visible ASCII (0x21-0x7e: no spaces
 *   or control bytes, which would break or smuggle header lines);
 * - at least DD_TOKEN_MIN_CHARS characters after stripping.
 *
 * Errors name the file and the problem in errbuf, e.g.
 *   "token file /etc/dedupd/token: contains a NUL byte at offset 1"
 * and return -errno (open/read), DD_E_BADTYPE (not a regular file),
 * DD_E_TOOBIG (too long) or DD_E_PARSE (the content). Pure apart from
 * dd_token_read's open/read; no logging.
 */
#ifndef DD_HTTP_TOKEN_H
#define DD_HTTP_TOKEN_H

#include <stddef.h>

/* Reads and checks the token file at path. On success *ret_token is a new
 * NUL-terminated string the caller frees with dd_free. */
int dd_token_read(const char *path, char **ret_token, char *errbuf, size_t errlen);

/* The checks on content already read (len bytes of data, NULs included);
 * errbuf gets the problem without a file name. Same ownership as above. */
int dd_token_parse(const void *data, size_t len, char **ret_token, char *errbuf, size_t errlen);

#endif
