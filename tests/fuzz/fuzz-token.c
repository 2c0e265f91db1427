/*
 * Fuzz target for the token-file rules (dedupd/http/token.h) on arbitrary
 * bytes. Invariants: a refusal says why and hands nothing out; an accepted
 * token is DD_TOKEN_MIN_CHARS..DD_TOKEN_MAX_BYTES visible ASCII characters,
 * a prefix of the input that differs from it only by trailing whitespace.
 */
#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/http/token.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "", *tok = NULL;
    size_t n;
    int r = dd_token_parse(data, size, &tok, err, sizeof(err));

    if (r < 0) {
        CHECK(tok == NULL);
        CHECK(err[0] != '\0');
        CHECK(r == DD_E_PARSE || r == DD_E_TOOBIG || r == -ENOMEM);
        return 0;
    }
    CHECK(r == 0 && tok != NULL);
    n = strlen(tok);
    CHECK(n >= DD_TOKEN_MIN_CHARS && n <= DD_TOKEN_MAX_BYTES && n <= size);
    CHECK(memcmp(tok, data, n) == 0);
    for (size_t i = 0; i < n; i++)
        CHECK(tok[i] > 0x20 && tok[i] < 0x7f);
    for (size_t i = n; i < size; i++)
        CHECK(data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r');
    dd_free(tok);
    return 0;
}
