/*
 * Milliseconds from the two clocks the daemon uses: wall time (Unix ms:
 * sample times, report arrival, store keys) and monotonic time (intervals,
 * backoff, ages that must not jump with the wall clock).
 */
#ifndef DD_COMMON_CLOCK_H
#define DD_COMMON_CLOCK_H

#include <stdint.h>

uint64_t dd_wall_ms(void);
uint64_t dd_mono_ms(void);

#endif
