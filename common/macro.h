/*
 * Small language helpers shared by every directory: array sizes, the cleanup
 * attribute (systemd's _cleanup_) and TAKE_PTR to hand an owned pointer on.
 * Uses nothing of ours.
 */
#ifndef DD_COMMON_MACRO_H
#define DD_COMMON_MACRO_H

#include <stddef.h>

#define DD_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define dd_likely(x)   __builtin_expect(!!(x), 1)
#define dd_unlikely(x) __builtin_expect(!!(x), 0)

#define DD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DD_MAX(a, b) ((a) > (b) ? (a) : (b))

#define _dd_cleanup_(f)   __attribute__((cleanup(f)))
#define _dd_unused_       __attribute__((unused))
#define _dd_printf_(a, b) __attribute__((format(printf, a, b)))
#define _dd_nodiscard_    __attribute__((warn_unused_result))

/* Returns *p and sets *p to NULL: the caller now owns the value. */
#define DD_TAKE_PTR(p)                                                                             \
    ({                                                                                             \
        __typeof__(p) *_pp = &(p);                                                                 \
        __typeof__(p) _v = *_pp;                                                                   \
        *_pp = NULL;                                                                               \
        _v;                                                                                        \
    })

#endif
