/*
 * Parser of the VDO `stats` and `config` message replies (format in vdo.h).
 *
 * A small recursive-descent parser over a cursor that tracks line and column:
 *   reply  := ws '{' members '}' ws
 *   members:= ( ws key ws ':' ws ( '{' members '}' | token ) ws ','? )*
 * The trailing comma after each member is optional (dm-vdo always writes it).
 * Keys and scalar values are tokens of [A-Za-z0-9_.+-] (values also '%');
 * anything else is an error naming where it stopped. Input size, nesting,
 * key count and token length are capped (common/limits.h), so truncated,
 * garbled or huge input fails cleanly. No I/O.
 */
#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/vdo.h"

/* (no "version": kvdo's sysfs has none, and nothing is derived from it) */
const char *const dd_vdo_required_keys[] = {
    "dataBlocksUsed",
    "overheadBlocksUsed",
    "logicalBlocksUsed",
    "physicalBlocks",
    "logicalBlocks",
    "blockSize",
    "mode",
    "inRecoveryMode",
    "instance",
    "packer.compressedFragmentsWritten",
    "packer.compressedBlocksWritten",
    "journal.blocks.written",
    "blockMap.pagesLoaded",
    "blockMap.pagesSaved",
    "hashLock.dedupeAdviceValid",
    "biosIn.read",
    "biosIn.write",
    "biosIn.discard",
    "biosIn.flush",
    "biosOut.read",
    "biosOut.write",
    "biosMeta.write",
    "index.entriesIndexed",
    "index.postsFound",
    "index.postsNotFound",
    NULL,
};

const char *const dd_vdo_v36_keys[] = {
    "version",
    "dataBlocksUsed",
    "overheadBlocksUsed",
    "logicalBlocksUsed",
    "physicalBlocks",
    "logicalBlocks",
    "blockMapCacheSize",
    "blockSize",
    "completeRecoveries",
    "readOnlyRecoveries",
    "mode",
    "inRecoveryMode",
    "recoveryPercentage",
    "packer.compressedFragmentsWritten",
    "packer.compressedBlocksWritten",
    "packer.compressedFragmentsInPacker",
    "allocator.slabCount",
    "allocator.slabsOpened",
    "allocator.slabsReopened",
    "journal.diskFull",
    "journal.slabJournalCommitsRequested",
    "journal.entries.started",
    "journal.entries.written",
    "journal.entries.committed",
    "journal.blocks.started",
    "journal.blocks.written",
    "journal.blocks.committed",
    "slabJournal.diskFullCount",
    "slabJournal.flushCount",
    "slabJournal.blockedCount",
    "slabJournal.blocksWritten",
    "slabJournal.tailBusyCount",
    "slabSummary.blocksWritten",
    "refCounts.blocksWritten",
    "blockMap.dirtyPages",
    "blockMap.cleanPages",
    "blockMap.freePages",
    "blockMap.failedPages",
    "blockMap.incomingPages",
    "blockMap.outgoingPages",
    "blockMap.cachePressure",
    "blockMap.readCount",
    "blockMap.writeCount",
    "blockMap.failedReads",
    "blockMap.failedWrites",
    "blockMap.reclaimed",
    "blockMap.readOutgoing",
    "blockMap.foundInCache",
    "blockMap.discardRequired",
    "blockMap.waitForPage",
    "blockMap.fetchRequired",
    "blockMap.pagesLoaded",
    "blockMap.pagesSaved",
    "blockMap.flushCount",
    "hashLock.dedupeAdviceValid",
    "hashLock.dedupeAdviceStale",
    "hashLock.concurrentDataMatches",
    "hashLock.concurrentHashCollisions",
    "hashLock.currDedupeQueries",
    "errors.invalidAdvicePBNCount",
    "errors.noSpaceErrorCount",
    "errors.readOnlyErrorCount",
    "instance",
    "currentVIOsInProgress",
    "maxVIOs",
    "dedupeAdviceTimeouts",
    "flushOut",
    "logicalBlockSize",
    "biosIn.read",
    "biosIn.write",
    "biosIn.emptyFlush",
    "biosIn.discard",
    "biosIn.flush",
    "biosIn.fua",
    "biosInPartial.read",
    "biosInPartial.write",
    "biosInPartial.emptyFlush",
    "biosInPartial.discard",
    "biosInPartial.flush",
    "biosInPartial.fua",
    "biosOut.read",
    "biosOut.write",
    "biosOut.emptyFlush",
    "biosOut.discard",
    "biosOut.flush",
    "biosOut.fua",
    "biosMeta.read",
    "biosMeta.write",
    "biosMeta.emptyFlush",
    "biosMeta.discard",
    "biosMeta.flush",
    "biosMeta.fua",
    "biosJournal.read",
    "biosJournal.write",
    "biosJournal.emptyFlush",
    "biosJournal.discard",
    "biosJournal.flush",
    "biosJournal.fua",
    "biosPageCache.read",
    "biosPageCache.write",
    "biosPageCache.emptyFlush",
    "biosPageCache.discard",
    "biosPageCache.flush",
    "biosPageCache.fua",
    "biosOutCompleted.read",
    "biosOutCompleted.write",
    "biosOutCompleted.emptyFlush",
    "biosOutCompleted.discard",
    "biosOutCompleted.flush",
    "biosOutCompleted.fua",
    "biosMetaCompleted.read",
    "biosMetaCompleted.write",
    "biosMetaCompleted.emptyFlush",
    "biosMetaCompleted.discard",
    "biosMetaCompleted.flush",
    "biosMetaCompleted.fua",
    "biosJournalCompleted.read",
    "biosJournalCompleted.write",
    "biosJournalCompleted.emptyFlush",
    "biosJournalCompleted.discard",
    "biosJournalCompleted.flush",
    "biosJournalCompleted.fua",
    "biosPageCacheCompleted.read",
    "biosPageCacheCompleted.write",
    "biosPageCacheCompleted.emptyFlush",
    "biosPageCacheCompleted.discard",
    "biosPageCacheCompleted.flush",
    "biosPageCacheCompleted.fua",
    "biosAcknowledged.read",
    "biosAcknowledged.write",
    "biosAcknowledged.emptyFlush",
    "biosAcknowledged.discard",
    "biosAcknowledged.flush",
    "biosAcknowledged.fua",
    "biosAcknowledgedPartial.read",
    "biosAcknowledgedPartial.write",
    "biosAcknowledgedPartial.emptyFlush",
    "biosAcknowledgedPartial.discard",
    "biosAcknowledgedPartial.flush",
    "biosAcknowledgedPartial.fua",
    "biosInProgress.read",
    "biosInProgress.write",
    "biosInProgress.emptyFlush",
    "biosInProgress.discard",
    "biosInProgress.flush",
    "biosInProgress.fua",
    "memoryUsage.bytesUsed",
    "memoryUsage.peakBytesUsed",
    "index.entriesIndexed",
    "index.postsFound",
    "index.postsNotFound",
    "index.queriesFound",
    "index.queriesNotFound",
    "index.updatesFound",
    "index.updatesNotFound",
    "index.entriesDiscarded",
    NULL,
};

struct cursor {
    const char *p, *end;
    unsigned line, col;
    struct dd_parse_error *err;
};

static void advance(struct cursor *c)
{
    if (*c->p == '\n') {
        c->line++;
        c->col = 1;
    } else {
        c->col++;
    }
    c->p++;
}

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        advance(c);
}

static bool token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-' || ch == '+' || ch == '%';
}

static int fail(struct cursor *c, const char *what)
{
    if (c->p >= c->end)
        return dd_parse_error_set(c->err, c->line, c->col, "unexpected end of input: %s", what);
    if ((unsigned char)*c->p >= 0x20 && (unsigned char)*c->p < 0x7f)
        return dd_parse_error_set(c->err, c->line, c->col, "unexpected '%c': %s", *c->p, what);
    return dd_parse_error_set(c->err, c->line, c->col, "unexpected byte 0x%02x: %s",
                              (unsigned)(unsigned char)*c->p, what);
}

/* Reads a token into buf (NUL-terminated). */
static int read_token(struct cursor *c, char *buf, size_t len, const char *what)
{
    size_t n = 0;

    while (c->p < c->end && token_char(*c->p)) {
        if (n + 1 >= len)
            return dd_parse_error_set(c->err, c->line, c->col, "%s longer than %zu characters",
                                      what, len - 1);
        buf[n++] = *c->p;
        advance(c);
    }
    if (n == 0)
        return fail(c, what);
    buf[n] = '\0';
    return 0;
}

static int add_leaf(struct dd_vdo_stats *s, const char *path, const char *value)
{
    struct dd_vdo_kv *kv;

    if (s->n >= DD_VDO_MAX_KEYS)
        return DD_E_TOOBIG;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->kv[i].key, path) == 0)
            return -EEXIST; /* a reply never repeats a path */
    }
    if (DD_ARRAY_RESERVE(s->kv, s->cap, s->n + 1) < 0)
        return -ENOMEM;
    kv = &s->kv[s->n];
    kv->key = dd_strdup(path);
    kv->value = dd_strdup(value);
    if (!kv->key || !kv->value) {
        dd_free(kv->key);
        dd_free(kv->value);
        return -ENOMEM;
    }
    s->n++;
    return 0;
}

/* Parses members up to and including the closing brace. path holds the
 * dotted prefix of this group (path_len bytes used). */
static int parse_members(struct cursor *c, struct dd_vdo_stats *s, char *path, size_t path_len,
                         unsigned depth)
{
    char key[DD_VDO_MAX_TOKEN], value[DD_VDO_MAX_TOKEN];
    int r;

    for (;;) {
        size_t klen;

        skip_ws(c);
        if (c->p >= c->end)
            return fail(c, "expected a key or '}'");
        if (*c->p == '}') {
            advance(c);
            return 0;
        }
        r = read_token(c, key, sizeof(key), "key");
        if (r < 0)
            return r;
        klen = strlen(key);
        if (path_len + 1 + klen + 1 > DD_VDO_MAX_DEPTH * DD_VDO_MAX_TOKEN)
            return dd_parse_error_set(c->err, c->line, c->col, "key path too long");
        if (path_len)
            path[path_len] = '.';
        memcpy(path + path_len + (path_len ? 1 : 0), key, klen + 1);
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':')
            return fail(c, "expected ':' after a key");
        advance(c);
        skip_ws(c);
        if (c->p < c->end && *c->p == '{') {
            if (depth + 1 >= DD_VDO_MAX_DEPTH)
                return dd_parse_error_set(c->err, c->line, c->col, "groups nested deeper than %u",
                                          DD_VDO_MAX_DEPTH);
            advance(c);
            s->groups++;
            r = parse_members(c, s, path, path_len + (path_len ? 1 : 0) + klen, depth + 1);
        } else {
            r = read_token(c, value, sizeof(value), "value");
            if (r == 0)
                r = add_leaf(s, path, value);
            if (r == -EEXIST)
                return dd_parse_error_set(c->err, c->line, c->col, "duplicate key '%s'", path);
            if (r == DD_E_TOOBIG) {
                dd_parse_error_set(c->err, c->line, c->col, "more than %u keys", DD_VDO_MAX_KEYS);
                return DD_E_TOOBIG;
            }
        }
        if (r < 0)
            return r;
        path[path_len] = '\0';
        skip_ws(c);
        if (c->p < c->end && *c->p == ',')
            advance(c);
        else if (c->p < c->end && *c->p != '}')
            return fail(c, "expected ',' or '}' after a value");
    }
}

int dd_vdo_stats_parse(const char *text, size_t len, struct dd_vdo_stats *ret,
                       struct dd_parse_error *err)
{
    struct dd_vdo_stats s = {0};
    struct cursor c = {.p = text, .end = text + len, .line = 1, .col = 1, .err = err};
    char path[DD_VDO_MAX_DEPTH * DD_VDO_MAX_TOKEN];
    int r;

    memset(ret, 0, sizeof(*ret));
    if (len > DD_VDO_MAX_REPLY_BYTES) {
        dd_parse_error_set(err, 0, 0, "reply of %zu bytes exceeds %u", len, DD_VDO_MAX_REPLY_BYTES);
        return DD_E_TOOBIG;
    }
    path[0] = '\0';
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return fail(&c, "a reply starts with '{'");
    advance(&c);
    r = parse_members(&c, &s, path, 0, 0);
    if (r == 0) {
        skip_ws(&c);
        if (c.p < c.end)
            r = fail(&c, "text after the closing '}'");
    }
    if (r == 0 && s.n == 0)
        r = dd_parse_error_set(err, c.line, c.col, "reply holds no values");
    if (r < 0) {
        dd_vdo_stats_release(&s);
        return r;
    }
    *ret = s;
    return 0;
}

int dd_vdo_stats_add(struct dd_vdo_stats *s, const char *key, const char *value)
{
    return add_leaf(s, key, value);
}

void dd_vdo_stats_release(struct dd_vdo_stats *s)
{
    for (size_t i = 0; i < s->n; i++) {
        dd_free(s->kv[i].key);
        dd_free(s->kv[i].value);
    }
    dd_free(s->kv);
    memset(s, 0, sizeof(*s));
}

const char *dd_vdo_stats_get(const struct dd_vdo_stats *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->kv[i].key, key) == 0)
            return s->kv[i].value;
    }
    return NULL;
}

int dd_vdo_stats_u64(const struct dd_vdo_stats *s, const char *key, uint64_t *ret_value)
{
    const char *v = dd_vdo_stats_get(s, key);
    if (!v)
        return -ENOENT;
    return dd_parse_u64(v, ret_value) < 0 ? DD_E_PARSE : 0;
}

size_t dd_vdo_stats_missing(const struct dd_vdo_stats *s, char *buf, size_t len)
{
    size_t missing = 0, used = 0;

    if (len)
        buf[0] = '\0';
    for (size_t i = 0; dd_vdo_required_keys[i]; i++) {
        if (dd_vdo_stats_get(s, dd_vdo_required_keys[i]))
            continue;
        missing++;
        if (len && used < len) {
            int n =
                snprintf(buf + used, len - used, "%s%s", used ? ", " : "", dd_vdo_required_keys[i]);
            if (n > 0)
                used += (size_t)n;
        }
    }
    return missing;
}
