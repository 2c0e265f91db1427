/*
 * Parsers of the dm-vdo / kvdo status and table lines (formats in vdo.h).
 * Lines are split into whitespace-separated tokens (at most 64, the line at
 * most DD_VDO_MAX_LINE bytes); an optional "<name>: " and the
 * "<start> <length> vdo" prefix that dmsetup prints are accepted and
 * skipped. Errors name the field and its column. No I/O.
 */
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/vdo.h"

#define MAX_TOKENS 64

struct tokens {
    const char *s[MAX_TOKENS];
    size_t len[MAX_TOKENS];
    unsigned col[MAX_TOKENS];
    size_t n;
};

static int tokenize(const char *line, struct tokens *t, struct dd_parse_error *err)
{
    size_t i = 0, len = strnlen(line, DD_VDO_MAX_LINE + 1);

    if (len > DD_VDO_MAX_LINE)
        return dd_parse_error_set(err, 1, 0, "line longer than %u bytes", DD_VDO_MAX_LINE);
    t->n = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r'))
            i++;
        if (i >= len)
            break;
        if (t->n == MAX_TOKENS)
            return dd_parse_error_set(err, 1, (unsigned)i + 1, "more than %d fields", MAX_TOKENS);
        t->s[t->n] = line + i;
        t->col[t->n] = (unsigned)i + 1;
        while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\n' && line[i] != '\r') {
            if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] == 0x7f)
                return dd_parse_error_set(err, 1, (unsigned)i + 1, "control byte 0x%02x",
                                          (unsigned)(unsigned char)line[i]);
            i++;
        }
        t->len[t->n] = (size_t)(line + i - t->s[t->n]);
        t->n++;
    }
    return 0;
}

static bool tok_is(const struct tokens *t, size_t i, const char *word)
{
    size_t wl = strlen(word);
    return i < t->n && t->len[i] == wl && memcmp(t->s[i], word, wl) == 0;
}

static int tok_u64(const struct tokens *t, size_t i, const char *field, uint64_t *ret,
                   struct dd_parse_error *err)
{
    if (i >= t->n)
        return dd_parse_error_set(err, 1, 0, "missing %s", field);
    if (dd_parse_u64_n(t->s[i], t->len[i], ret) < 0)
        return dd_parse_error_set(err, 1, t->col[i], "%s is not a non-negative integer: '%.*s'",
                                  field, (int)DD_MIN(t->len[i], (size_t)40), t->s[i]);
    return 0;
}

static int tok_copy(const struct tokens *t, size_t i, const char *field, char *dst, size_t len,
                    struct dd_parse_error *err)
{
    if (i >= t->n)
        return dd_parse_error_set(err, 1, 0, "missing %s", field);
    if (t->len[i] >= len)
        return dd_parse_error_set(err, 1, t->col[i], "%s longer than %zu characters", field,
                                  len - 1);
    memcpy(dst, t->s[i], t->len[i]);
    dst[t->len[i]] = '\0';
    return 0;
}

/* Index of the first field after "[name:] [<start> <length> vdo]". */
static size_t skip_prefix(const struct tokens *t, uint64_t *ret_length)
{
    size_t i = 0;
    uint64_t a, b;

    if (t->n > 0 && t->len[0] > 0 && t->s[0][t->len[0] - 1] == ':')
        i = 1;
    if (i + 2 < t->n && tok_is(t, i + 2, "vdo") && dd_parse_u64_n(t->s[i], t->len[i], &a) == 0 &&
        dd_parse_u64_n(t->s[i + 1], t->len[i + 1], &b) == 0) {
        if (ret_length)
            *ret_length = b;
        i += 3;
    }
    return i;
}

static bool one_of(const struct tokens *t, size_t i, const char *const *words)
{
    for (size_t k = 0; words[k]; k++) {
        if (tok_is(t, i, words[k]))
            return true;
    }
    return false;
}

int dd_vdo_status_parse(const char *line, struct dd_vdo_status *ret, struct dd_parse_error *err)
{
    static const char *const modes[] = {"normal", "recovering", "read-only", NULL};
    static const char *const index_states[] = {
        "closed", "closing", "error", "offline", "online", "opening", "suspended", "unknown", NULL};
    struct dd_vdo_status st;
    struct tokens t;
    size_t i;
    int r;

    memset(&st, 0, sizeof(st));
    r = tokenize(line, &t, err);
    if (r < 0)
        return r;
    i = skip_prefix(&t, NULL);
    if (t.n - i != 7)
        return dd_parse_error_set(err, 1, i < t.n ? t.col[i] : 0,
                                  "expected 7 status fields (device mode recovering index "
                                  "compression used total), found %zu",
                                  t.n - i);
    r = tok_copy(&t, i, "device", st.device, sizeof(st.device), err);
    if (r < 0)
        return r;
    if (!one_of(&t, i + 1, modes))
        return dd_parse_error_set(err, 1, t.col[i + 1],
                                  "mode must be normal, recovering or read-only");
    tok_copy(&t, i + 1, "mode", st.mode, sizeof(st.mode), err);
    if (tok_is(&t, i + 2, "recovering"))
        st.recovering = true;
    else if (!tok_is(&t, i + 2, "-"))
        return dd_parse_error_set(err, 1, t.col[i + 2], "recovery flag must be '-' or recovering");
    if (!one_of(&t, i + 3, index_states))
        return dd_parse_error_set(err, 1, t.col[i + 3], "unknown index state '%.*s'",
                                  (int)DD_MIN(t.len[i + 3], (size_t)20), t.s[i + 3]);
    tok_copy(&t, i + 3, "index state", st.index_state, sizeof(st.index_state), err);
    if (tok_is(&t, i + 4, "online"))
        st.compression = true;
    else if (!tok_is(&t, i + 4, "offline"))
        return dd_parse_error_set(err, 1, t.col[i + 4], "compression must be online or offline");
    r = tok_u64(&t, i + 5, "used blocks", &st.used_blocks, err);
    if (r == 0)
        r = tok_u64(&t, i + 6, "total blocks", &st.total_blocks, err);
    if (r < 0)
        return r;
    if (st.used_blocks > st.total_blocks)
        return dd_parse_error_set(err, 1, t.col[i + 5], "used blocks %llu exceed total %llu",
                                  (unsigned long long)st.used_blocks,
                                  (unsigned long long)st.total_blocks);
    *ret = st;
    return 0;
}

static int on_off(const struct tokens *t, size_t i, const char *key, bool *ret,
                  struct dd_parse_error *err)
{
    if (tok_is(t, i, "on"))
        *ret = true;
    else if (tok_is(t, i, "off"))
        *ret = false;
    else
        return dd_parse_error_set(err, 1, i < t->n ? t->col[i] : 0, "%s must be on or off", key);
    return 0;
}

static int table_option(const struct tokens *t, size_t i, struct dd_vdo_table *tb,
                        struct dd_parse_error *err)
{
    static const struct {
        const char *key;
        size_t offset;
    } counts[] = {
        {"ack", offsetof(struct dd_vdo_table, threads_ack)},
        {"bio", offsetof(struct dd_vdo_table, threads_bio)},
        {"bioRotationInterval", offsetof(struct dd_vdo_table, bio_rotation)},
        {"cpu", offsetof(struct dd_vdo_table, threads_cpu)},
        {"hash", offsetof(struct dd_vdo_table, threads_hash)},
        {"logical", offsetof(struct dd_vdo_table, threads_logical)},
        {"physical", offsetof(struct dd_vdo_table, threads_physical)},
    };
    uint64_t v;

    if (i + 1 >= t->n)
        return dd_parse_error_set(err, 1, t->col[i], "option '%.*s' has no value",
                                  (int)DD_MIN(t->len[i], (size_t)40), t->s[i]);
    if (tok_is(t, i, "deduplication"))
        return on_off(t, i + 1, "deduplication", &tb->deduplication, err);
    if (tok_is(t, i, "compression"))
        return on_off(t, i + 1, "compression", &tb->compression, err);
    if (tok_is(t, i, "maxDiscard"))
        return tok_u64(t, i + 1, "maxDiscard", &tb->max_discard_blocks, err);
    for (size_t k = 0; k < DD_ARRAY_SIZE(counts); k++) {
        if (tok_is(t, i, counts[k].key)) {
            int r = tok_u64(t, i + 1, counts[k].key, &v, err);
            if (r < 0)
                return r;
            if (v > 1024)
                return dd_parse_error_set(err, 1, t->col[i + 1], "%s %llu is out of range",
                                          counts[k].key, (unsigned long long)v);
            *(unsigned *)(void *)((char *)tb + counts[k].offset) = (unsigned)v;
            return 0;
        }
    }
    /* a key a newer kernel added: tolerated, the value skipped */
    return 0;
}

int dd_vdo_table_parse(const char *line, struct dd_vdo_table *ret, struct dd_parse_error *err)
{
    struct dd_vdo_table tb;
    struct tokens t;
    uint64_t v;
    size_t i, first_opt;
    int r;

    memset(&tb, 0, sizeof(tb));
    tb.deduplication = true; /* dm-vdo's defaults */
    tb.max_discard_blocks = 1;
    r = tokenize(line, &t, err);
    if (r < 0)
        return r;
    i = skip_prefix(&t, &tb.logical_sectors);
    if (tok_is(&t, i, "V4")) {
        tb.version = 4;
        first_opt = i + 6;
    } else if (tok_is(&t, i, "V2")) {
        tb.version = 2;
        first_opt = i + 9;
    } else {
        return dd_parse_error_set(err, 1, i < t.n ? t.col[i] : 0,
                                  "unsupported table version (expected V4 or V2)");
    }
    if (t.n < first_opt)
        return dd_parse_error_set(err, 1, 0, "V%u table needs %zu fields, found %zu", tb.version,
                                  first_opt - i, t.n - i);
    r = tok_copy(&t, i + 1, "storage device", tb.device, sizeof(tb.device), err);
    if (r == 0)
        r = tok_u64(&t, i + 2, "physical blocks", &tb.physical_blocks, err);
    if (r == 0)
        r = tok_u64(&t, i + 3, "minimum I/O size", &v, err);
    if (r < 0)
        return r;
    if (v != 512 && v != 4096)
        return dd_parse_error_set(err, 1, t.col[i + 3], "minimum I/O size must be 512 or 4096");
    tb.minimum_io = (unsigned)v;
    r = tok_u64(&t, i + 4, "block map cache blocks", &tb.block_map_cache_blocks, err);
    if (r == 0)
        r = tok_u64(&t, i + 5, "block map era", &tb.block_map_era, err);
    if (r < 0)
        return r;
    if (tb.version == 2) {
        bool raid5;
        r = on_off(&t, i + 6, "mdRaid5Mode", &raid5, err);
        if (r == 0)
            r = tok_copy(&t, i + 7, "write policy", tb.write_policy, sizeof(tb.write_policy), err);
        if (r == 0)
            r = tok_copy(&t, i + 8, "pool name", tb.pool_name, sizeof(tb.pool_name), err);
        if (r < 0)
            return r;
    }
    for (size_t k = first_opt; k < t.n; k += 2) {
        r = table_option(&t, k, &tb, err);
        if (r < 0)
            return r;
    }
    *ret = tb;
    return 0;
}
