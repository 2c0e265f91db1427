/*
 * Minimal leveled logging to stderr. Libraries log at DD_LOG_DEBUG only; the
 * programs decide what a failure means and log it once.
 */
#ifndef DD_COMMON_LOG_H
#define DD_COMMON_LOG_H

#include "common/macro.h"

enum dd_log_level { DD_LOG_ERROR, DD_LOG_WARNING, DD_LOG_INFO, DD_LOG_DEBUG };

void dd_log_set_level(enum dd_log_level level);
enum dd_log_level dd_log_get_level(void);
/* Prefix for every line, e.g. the program name. The string is borrowed. */
void dd_log_set_ident(const char *ident);
void dd_log(enum dd_log_level level, const char *fmt, ...) _dd_printf_(2, 3);

#define dd_log_error(...)   dd_log(DD_LOG_ERROR, __VA_ARGS__)
#define dd_log_warning(...) dd_log(DD_LOG_WARNING, __VA_ARGS__)
#define dd_log_info(...)    dd_log(DD_LOG_INFO, __VA_ARGS__)
#define dd_log_debug(...)   dd_log(DD_LOG_DEBUG, __VA_ARGS__)

#endif
