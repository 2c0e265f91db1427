/*
 * Error codes. Functions return 0 (or a count) on success and a negative
 * value on failure: -errno for system errors, or one of our own DD_E_* codes,
 * which live below DD_E_BASE so they never collide with errno values
 * (libuv's UV_ERRNO_MAP pattern). dd_strerror() names either kind.
 */
#ifndef DD_COMMON_ERROR_H
#define DD_COMMON_ERROR_H

#include <stddef.h>

#include "common/macro.h"

/* X(name, message) — the one list that generates enum and messages. */
#define DD_ERROR_MAP(X)                                                                            \
    X(PARSE, "malformed input")                                                                    \
    X(RANGE, "value out of range")                                                                 \
    X(TOOBIG, "input exceeds a configured limit")                                                  \
    X(BADTYPE, "not a regular file, directory or block device")                                    \
    X(CHANGED, "input changed size while being read")                                              \
    X(INPUT, "part of an input could not be read")                                                 \
    X(LIBRARY, "a library call failed")                                                            \
    X(CANCELLED, "operation cancelled")                                                            \
    X(USAGE, "invalid usage")

#define DD_E_BASE (-20000)

enum dd_error {
    DD_E_FIRST_ = DD_E_BASE,
#define DD_X_ENUM(name, msg) DD_E_##name,
    DD_ERROR_MAP(DD_X_ENUM)
#undef DD_X_ENUM
        DD_E_LAST_
};

/* Message for a negative return value (either -errno or DD_E_*). Never NULL. */
const char *dd_strerror(int err);

/* Formats the message into err (when err and errlen) and returns code: the
 * one-line failure of a decoder that reports what and where. */
int dd_fail(char *err, size_t errlen, int code, const char *fmt, ...) _dd_printf_(4, 5);

#endif
