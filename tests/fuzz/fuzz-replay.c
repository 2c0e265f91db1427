/*
 * Fuzz target for the replay reader's decoders (dedupd/vdo/source-internal.h):
 * one input is the files of one replay snapshot, separated by lines "%%":
 * replay.json, then a volume's stats, status, table and config texts, each
 * read as dd_vdo_read_text reads a file (leading '#' lines dropped) and
 * parsed as dd_vdo_source_read parses them.
 * Invariants: comment stripping leaves a suffix of the text that does not
 * start with '#'; an accepted interval is in (0, 86400] and a refused one is
 * named with the file; each part is either parsed or has an error naming
 * the part, never both.
 */
#define _GNU_SOURCE
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/source-internal.h"
#include "fuzz.h"

/* A file's text as read from disk: a NUL-terminated copy, comments dropped. */
static char *file_text(const uint8_t *p, size_t n, size_t *ret_len)
{
    char *buf = dd_malloc(n + 1);
    size_t len = n;

    if (!buf)
        return NULL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    dd_vdo_text_strip_comments(buf, &len);
    CHECK(len <= n && buf[len] == '\0');
    CHECK(memcmp(buf, p + (n - len), len) == 0); /* a suffix of the file */
    CHECK(buf[0] != '#');
    *ret_len = len;
    return buf;
}

static void part(bool have, const char *error, const char *name)
{
    if (have) {
        CHECK(error[0] == '\0');
    } else if (error[0]) {
        CHECK(strncmp(error, name, strlen(name)) == 0 && error[strlen(name)] == ':');
    }
}

static void parts(char *text[5], size_t tlen[5], size_t n)
{
    /* replay.json */
    double interval = -1;
    char err[512] = "";
    if (dd_vdo_replay_json_parse(text[0], tlen[0], "DIR/replay.json", &interval, err,
                                 sizeof(err)) == 0) {
        CHECK(interval > 0 && interval <= 86400);
    } else {
        CHECK(interval == -1);
        CHECK(strncmp(err, "DIR/replay.json: ", 17) == 0);
    }

    /* the volume's parts (stats required; the others when present) */
    struct dd_vdo_volume v;
    memset(&v, 0, sizeof(v));
    dd_vdo_volume_fill(&v, text[1], tlen[1], n > 2 ? text[2] : NULL, n > 3 ? text[3] : NULL,
                       n > 4 ? text[4] : NULL, tlen[4]);
    if (text[1])
        CHECK(v.have_stats != (v.stats_error[0] != '\0'));
    part(v.have_stats, v.stats_error, "stats");
    part(v.have_status, v.status_error, "status");
    part(v.have_table, v.table_error, "table");
    part(v.have_config, v.config_error, "config");
    dd_vdo_volume_release(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *start[5] = {NULL}, *p = data, *end = data + size;
    size_t len[5] = {0};
    char *text[5] = {NULL};
    size_t tlen[5] = {0};
    size_t n = 0;

    if (size > 256 * 1024)
        return 0;
    /* split on "\n%%\n" */
    while (n < 5) {
        const uint8_t *sep = memmem(p, (size_t)(end - p), "\n%%\n", 4);
        start[n] = p;
        len[n] = sep ? (size_t)(sep - p) : (size_t)(end - p);
        n++;
        if (!sep)
            break;
        p = sep + 4;
    }
    for (size_t i = 0; i < n; i++)
        if (!(text[i] = file_text(start[i], len[i], &tlen[i])))
            break;
    if (text[n - 1])
        parts(text, tlen, n);
    for (size_t i = 0; i < 5; i++)
        dd_free(text[i]);
    return 0;
}
