/*
 * Messages for our error codes. The table is generated from DD_ERROR_MAP and
 * a static assertion keeps table and enum in step (dm-vdo status-codes.c).
 */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/macro.h"

static const char *const messages[] = {
#define DD_X_MSG(name, msg) msg,
    DD_ERROR_MAP(DD_X_MSG)
#undef DD_X_MSG
};

_Static_assert(DD_ARRAY_SIZE(messages) == (size_t)(DD_E_LAST_ - DD_E_FIRST_ - 1),
               "DD_ERROR_MAP and the message table disagree");

const char *dd_strerror(int err)
{
    if (err > DD_E_FIRST_ && err < DD_E_LAST_)
        return messages[err - DD_E_FIRST_ - 1];
    if (err < 0 && err > -4096)
        return strerror(-err);
    if (err == 0)
        return "success";
    return "unknown error";
}

int dd_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
