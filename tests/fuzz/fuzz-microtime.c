/*
 * Fuzz target for Kubernetes MicroTime (dedupd/microtime.h), the Lease
 * times another client wrote. Invariants: a refusal leaves the output
 * alone; an accepted time formats (when in years 0000..9999 after its
 * offset) as 27 bytes "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" that parse back to the
 * same microsecond; an input already in that canonical form formats back
 * to itself byte for byte.
 */
#include <string.h>

#include "common/common.h"
#include "dedupd/microtime.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int64_t sentinel = 0x5a5a5a5a5a5aLL;
    int64_t t = sentinel, t2 = 0;
    char buf[DD_MICROTIME_LEN];
    int r = dd_microtime_parse((const char *)data, size, &t);

    if (r < 0) {
        CHECK(r == DD_E_PARSE);
        CHECK(t == sentinel);
        return 0;
    }
    CHECK(r == 0);
    if (dd_microtime_format(t, buf, sizeof(buf)) < 0) {
        CHECK(buf[0] == '\0');
        return 0; /* an offset took it out of 0000..9999 */
    }
    CHECK(strlen(buf) == DD_MICROTIME_LEN - 1);
    CHECK(buf[10] == 'T' && buf[19] == '.' && buf[26] == 'Z');
    CHECK(dd_microtime_parse(buf, strlen(buf), &t2) == 0);
    CHECK(t2 == t);
    if (size == DD_MICROTIME_LEN - 1 && data[size - 1] == 'Z' && data[19] == '.')
        CHECK(memcmp(buf, data, size) == 0);
    /* a buffer too small is refused, never overrun */
    CHECK(dd_microtime_format(t, buf, DD_MICROTIME_LEN - 1) < 0 && buf[0] == '\0');
    return 0;
}
