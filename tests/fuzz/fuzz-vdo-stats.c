/*
 * Fuzz target for the VDO stats/config reply parser and everything that
 * consumes a parsed reply: lookups, the required-key check, derived figures,
 * rates between two replies, and every vdostats output form.
 * Invariants: a failed parse leaves nothing behind and names a position; a
 * successful one holds 1..DD_VDO_MAX_KEYS leaves with non-empty keys.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/vdo.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dd_vdo_stats s;
    struct dd_parse_error err;
    struct dd_vdo_derived d;
    struct dd_vdo_rates r;
    char missing[256];
    char *buf = NULL;
    size_t blen = 0;
    FILE *out;
    int ret;

    memset(&err, 0, sizeof(err));
    ret = dd_vdo_stats_parse((const char *)data, size, &s, &err);
    if (ret != 0) {
        CHECK(s.n == 0 && s.kv == NULL);
        CHECK(ret == DD_E_PARSE || ret == DD_E_TOOBIG);
        CHECK(err.message[0] != '\0');
        return 0;
    }
    CHECK(s.n >= 1 && s.n <= DD_VDO_MAX_KEYS);
    for (size_t i = 0; i < s.n; i++) {
        CHECK(s.kv[i].key[0] != '\0' && s.kv[i].value[0] != '\0');
        CHECK(dd_vdo_stats_get(&s, s.kv[i].key) != NULL);
    }
    (void)dd_vdo_stats_missing(&s, missing, sizeof(missing));
    if (dd_vdo_derive(&s, &s, &d) == 0) {
        CHECK(d.used_kb <= d.size_kb);
        CHECK(d.used_kb + d.available_kb <= d.size_kb + 1);
        CHECK(d.saving_percent >= 0 && d.saving_percent <= 100);
    }
    CHECK(dd_vdo_rates(&s, &s, 1.0, &r) == 0);
    out = open_memstream(&buf, &blen);
    if (out) {
        for (int style = DD_VDOSTATS_DF; style <= DD_VDOSTATS_VERBOSE; style++) {
            dd_vdostats_print_header(out, (enum dd_vdostats_style)style, 16);
            (void)dd_vdostats_print(out, (enum dd_vdostats_style)style, 16, "fuzz", &s);
        }
        fclose(out);
        free(buf);
    }
    dd_vdo_stats_release(&s);
    return 0;
}
