/*
 * Kubernetes MicroTime (coordination.k8s.io Lease acquireTime/renewTime):
 * RFC 3339 with microseconds, written in UTC as
 * "2026-12-05T10:00:00.000000Z" (shared/reference/k8s/LIST-WATCH.md).
 *
 * A decoder of outside bytes (what the API server holds was written by any
 * client): the parser takes RFC 3339 date-times, "YYYY-MM-DDTHH:MM:SS",
 * an optional fraction of 1 to 9 digits (cut to microseconds) and "Z" or a
 * "+HH:MM"/"-HH:MM" offset; nothing else (no lower-case t/z, no leap
 * second, no space, years 0000..9999). Pure: no I/O, no locale, no time
 * zone database. Fuzzed by tests/fuzz/fuzz-microtime.c.
 */
#ifndef DD_MICROTIME_H
#define DD_MICROTIME_H

#include <stddef.h>
#include <stdint.h>

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" and its NUL */
#define DD_MICROTIME_LEN 28

/* Microseconds since the Unix epoch (UTC) as MicroTime into buf (at least
 * DD_MICROTIME_LEN bytes). 0, or DD_E_RANGE for a time outside years
 * 0000..9999 or a buffer too small (buf then ""). */
int dd_microtime_format(int64_t unix_us, char *buf, size_t len);

/* Parses s[0..len) (no NUL needed; one inside is refused) into
 * microseconds since the epoch. 0 or DD_E_PARSE. */
int dd_microtime_parse(const char *s, size_t len, int64_t *unix_us);

#endif
