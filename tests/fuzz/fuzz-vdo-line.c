/*
 * Fuzz target for the dm-vdo status and table line parsers. The input is
 * cut at its first NUL (the parsers take C strings) and fed to both.
 * Invariants: success yields a consistent struct (used <= total, a known
 * table version and minimum I/O); failure names what was wrong.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/vdo.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    struct dd_vdo_status st;
    struct dd_vdo_table tb;
    struct dd_parse_error err;

    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    memset(&err, 0, sizeof(err));
    if (dd_vdo_status_parse(line, &st, &err) == 0)
        CHECK(st.used_blocks <= st.total_blocks && st.device[0] != '\0');
    else
        CHECK(err.message[0] != '\0');
    memset(&err, 0, sizeof(err));
    if (dd_vdo_table_parse(line, &tb, &err) == 0)
        CHECK((tb.version == 2 || tb.version == 4) &&
              (tb.minimum_io == 512 || tb.minimum_io == 4096));
    else
        CHECK(err.message[0] != '\0');
    free(line);
    return 0;
}
