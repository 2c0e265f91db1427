/*
 * The one entry point every fuzz target defines (libFuzzer's interface).
 * Built with -fsanitize=fuzzer it is driven by libFuzzer; built with
 * fuzz-main.c it replays a corpus (systemd's src/fuzz/fuzz.h habit).
 */
#ifndef DD_TESTS_FUZZ_H
#define DD_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input; returns 0. A violated invariant aborts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant a target checks: report where and abort, so libFuzzer and
 * the replay driver both see a crash. */
#include <stdio.h>
#include <stdlib.h>
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
