/*
 * Logging: one line per call, written with a single fprintf so lines from
 * several threads do not interleave mid-line.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static atomic_int log_level = DD_LOG_WARNING;
static const char *log_ident = "dedupd";

void dd_log_set_level(enum dd_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum dd_log_level dd_log_get_level(void)
{
    return (enum dd_log_level)atomic_load(&log_level);
}

void dd_log_set_ident(const char *ident)
{
    log_ident = ident;
}

void dd_log(enum dd_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char line[2048];
    va_list ap;

    if ((int)level > atomic_load(&log_level))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s: %s\n", log_ident, names[level], line);
}
