/*
 * rightsize-gen: prints N synthetic pod outcomes (bench/rsgen.h), one
 * POST /v1/observations body per line.
 *   rightsize-gen [N (1000)] [SEED (1)]
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench/rsgen.h"
#include "common/parse.h"

int main(int argc, char **argv)
{
    struct dd_rsgen g;
    uint64_t n = 1000, seed = 1;

    if ((argc > 1 && dd_parse_u64(argv[1], &n) < 0) ||
        (argc > 2 && dd_parse_u64(argv[2], &seed) < 0) || argc > 3) {
        fprintf(stderr, "usage: rightsize-gen [N] [SEED]\n");
        return 2;
    }
    dd_rsgen_init(&g, seed);
    for (uint64_t i = 0; i < n; i++) {
        json_t *o = dd_rsgen_outcome(&g, (size_t)i);
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
        json_decref(o);
        if (!s || puts(s) == EOF) {
            free(s);
            return 1;
        }
        free(s);
    }
    return 0;
}
