/*
 * Figures derived from a stats reply, and vdostats-compatible output.
 *
 * The output reproduces vdostats 8.x byte for byte (checked against real
 * captures from dm-vdo on Linux 6.12 in tests/fixtures/): the df-style table
 * (device column as wide as the longest name, at least 6; 1k-blocks or sizes;
 * Use% rounded; Space saving% truncated, 0 when nothing was written) and the
 * --verbose listing (labels padded to the longest label, then " : value").
 * Values vdostats prints as N/A in recovery or read-only mode are N/A here too.
 * The label table below maps each verbose line to its stats path; lines that
 * start with '=' are computed. A key absent from the reply (version 35 lacks
 * index.entriesDiscarded, version 36 lacks releaseVersion) drops its line.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/vdo.h"

struct verbose_line {
    const char *label;
    const char *key; /* stats path, or "=..." for a computed value */
};

static const struct verbose_line verbose_lines[] = {
    {"version", "version"},
    {"release version", "releaseVersion"},
    {"data blocks used", "dataBlocksUsed"},
    {"overhead blocks used", "overheadBlocksUsed"},
    {"logical blocks used", "logicalBlocksUsed"},
    {"physical blocks", "physicalBlocks"},
    {"logical blocks", "logicalBlocks"},
    {"1K-blocks", "=1k"},
    {"1K-blocks used", "=1k-used"},
    {"1K-blocks available", "=1k-available"},
    {"used percent", "=used-percent"},
    {"saving percent", "=saving-percent"},
    {"block map cache size", "blockMapCacheSize"},
    {"block size", "blockSize"},
    {"completed recovery count", "completeRecoveries"},
    {"read-only recovery count", "readOnlyRecoveries"},
    {"operating mode", "mode"},
    {"recovery progress (%)", "recoveryPercentage"},
    {"compressed fragments written", "packer.compressedFragmentsWritten"},
    {"compressed blocks written", "packer.compressedBlocksWritten"},
    {"compressed fragments in packer", "packer.compressedFragmentsInPacker"},
    {"slab count", "allocator.slabCount"},
    {"slabs opened", "allocator.slabsOpened"},
    {"slabs reopened", "allocator.slabsReopened"},
    {"journal disk full count", "journal.diskFull"},
    {"journal commits requested count", "journal.slabJournalCommitsRequested"},
    {"journal entries batching", "=batching:journal.entries"},
    {"journal entries started", "journal.entries.started"},
    {"journal entries writing", "=writing:journal.entries"},
    {"journal entries written", "journal.entries.written"},
    {"journal entries committed", "journal.entries.committed"},
    {"journal blocks batching", "=batching:journal.blocks"},
    {"journal blocks started", "journal.blocks.started"},
    {"journal blocks writing", "=writing:journal.blocks"},
    {"journal blocks written", "journal.blocks.written"},
    {"journal blocks committed", "journal.blocks.committed"},
    {"slab journal disk full count", "slabJournal.diskFullCount"},
    {"slab journal flush count", "slabJournal.flushCount"},
    {"slab journal blocked count", "slabJournal.blockedCount"},
    {"slab journal blocks written", "slabJournal.blocksWritten"},
    {"slab journal tail busy count", "slabJournal.tailBusyCount"},
    {"slab summary blocks written", "slabSummary.blocksWritten"},
    {"reference blocks written", "refCounts.blocksWritten"},
    {"block map dirty pages", "blockMap.dirtyPages"},
    {"block map clean pages", "blockMap.cleanPages"},
    {"block map free pages", "blockMap.freePages"},
    {"block map failed pages", "blockMap.failedPages"},
    {"block map incoming pages", "blockMap.incomingPages"},
    {"block map outgoing pages", "blockMap.outgoingPages"},
    {"block map cache pressure", "blockMap.cachePressure"},
    {"block map read count", "blockMap.readCount"},
    {"block map write count", "blockMap.writeCount"},
    {"block map failed reads", "blockMap.failedReads"},
    {"block map failed writes", "blockMap.failedWrites"},
    {"block map reclaimed", "blockMap.reclaimed"},
    {"block map read outgoing", "blockMap.readOutgoing"},
    {"block map found in cache", "blockMap.foundInCache"},
    {"block map discard required", "blockMap.discardRequired"},
    {"block map wait for page", "blockMap.waitForPage"},
    {"block map fetch required", "blockMap.fetchRequired"},
    {"block map pages loaded", "blockMap.pagesLoaded"},
    {"block map pages saved", "blockMap.pagesSaved"},
    {"block map flush count", "blockMap.flushCount"},
    {"dedupe advice valid", "hashLock.dedupeAdviceValid"},
    {"dedupe advice stale", "hashLock.dedupeAdviceStale"},
    {"concurrent data matches", "hashLock.concurrentDataMatches"},
    {"concurrent hash collisions", "hashLock.concurrentHashCollisions"},
    {"current dedupe queries", "hashLock.currDedupeQueries"},
    {"invalid advice PBN count", "errors.invalidAdvicePBNCount"},
    {"no space error count", "errors.noSpaceErrorCount"},
    {"read only error count", "errors.readOnlyErrorCount"},
    {"instance", "instance"},
    {"512 byte emulation", "=512"},
    {"current VDO IO requests in progress", "currentVIOsInProgress"},
    {"maximum VDO IO requests in progress", "maxVIOs"},
    {"dedupe advice timeouts", "dedupeAdviceTimeouts"},
    {"flush out", "flushOut"},
    {"write amplification ratio", "=write-amplification"},
    {"bios in read", "biosIn.read"},
    {"bios in write", "biosIn.write"},
    {"bios in empty flush", "biosIn.emptyFlush"},
    {"bios in discard", "biosIn.discard"},
    {"bios in flush", "biosIn.flush"},
    {"bios in fua", "biosIn.fua"},
    {"bios in partial read", "biosInPartial.read"},
    {"bios in partial write", "biosInPartial.write"},
    {"bios in partial empty flush", "biosInPartial.emptyFlush"},
    {"bios in partial discard", "biosInPartial.discard"},
    {"bios in partial flush", "biosInPartial.flush"},
    {"bios in partial fua", "biosInPartial.fua"},
    {"bios out read", "biosOut.read"},
    {"bios out write", "biosOut.write"},
    {"bios out empty flush", "biosOut.emptyFlush"},
    {"bios out discard", "biosOut.discard"},
    {"bios out flush", "biosOut.flush"},
    {"bios out fua", "biosOut.fua"},
    {"bios meta read", "biosMeta.read"},
    {"bios meta write", "biosMeta.write"},
    {"bios meta empty flush", "biosMeta.emptyFlush"},
    {"bios meta discard", "biosMeta.discard"},
    {"bios meta flush", "biosMeta.flush"},
    {"bios meta fua", "biosMeta.fua"},
    {"bios journal read", "biosJournal.read"},
    {"bios journal write", "biosJournal.write"},
    {"bios journal empty flush", "biosJournal.emptyFlush"},
    {"bios journal discard", "biosJournal.discard"},
    {"bios journal flush", "biosJournal.flush"},
    {"bios journal fua", "biosJournal.fua"},
    {"bios page cache read", "biosPageCache.read"},
    {"bios page cache write", "biosPageCache.write"},
    {"bios page cache empty flush", "biosPageCache.emptyFlush"},
    {"bios page cache discard", "biosPageCache.discard"},
    {"bios page cache flush", "biosPageCache.flush"},
    {"bios page cache fua", "biosPageCache.fua"},
    {"bios out completed read", "biosOutCompleted.read"},
    {"bios out completed write", "biosOutCompleted.write"},
    {"bios out completed empty flush", "biosOutCompleted.emptyFlush"},
    {"bios out completed discard", "biosOutCompleted.discard"},
    {"bios out completed flush", "biosOutCompleted.flush"},
    {"bios out completed fua", "biosOutCompleted.fua"},
    {"bios meta completed read", "biosMetaCompleted.read"},
    {"bios meta completed write", "biosMetaCompleted.write"},
    {"bios meta completed empty flush", "biosMetaCompleted.emptyFlush"},
    {"bios meta completed discard", "biosMetaCompleted.discard"},
    {"bios meta completed flush", "biosMetaCompleted.flush"},
    {"bios meta completed fua", "biosMetaCompleted.fua"},
    {"bios journal completed read", "biosJournalCompleted.read"},
    {"bios journal completed write", "biosJournalCompleted.write"},
    {"bios journal completed empty flush", "biosJournalCompleted.emptyFlush"},
    {"bios journal completed discard", "biosJournalCompleted.discard"},
    {"bios journal completed flush", "biosJournalCompleted.flush"},
    {"bios journal completed fua", "biosJournalCompleted.fua"},
    {"bios page cache completed read", "biosPageCacheCompleted.read"},
    {"bios page cache completed write", "biosPageCacheCompleted.write"},
    {"bios page cache completed empty flush", "biosPageCacheCompleted.emptyFlush"},
    {"bios page cache completed discard", "biosPageCacheCompleted.discard"},
    {"bios page cache completed flush", "biosPageCacheCompleted.flush"},
    {"bios page cache completed fua", "biosPageCacheCompleted.fua"},
    {"bios acknowledged read", "biosAcknowledged.read"},
    {"bios acknowledged write", "biosAcknowledged.write"},
    {"bios acknowledged empty flush", "biosAcknowledged.emptyFlush"},
    {"bios acknowledged discard", "biosAcknowledged.discard"},
    {"bios acknowledged flush", "biosAcknowledged.flush"},
    {"bios acknowledged fua", "biosAcknowledged.fua"},
    {"bios acknowledged partial read", "biosAcknowledgedPartial.read"},
    {"bios acknowledged partial write", "biosAcknowledgedPartial.write"},
    {"bios acknowledged partial empty flush", "biosAcknowledgedPartial.emptyFlush"},
    {"bios acknowledged partial discard", "biosAcknowledgedPartial.discard"},
    {"bios acknowledged partial flush", "biosAcknowledgedPartial.flush"},
    {"bios acknowledged partial fua", "biosAcknowledgedPartial.fua"},
    {"bios in progress read", "biosInProgress.read"},
    {"bios in progress write", "biosInProgress.write"},
    {"bios in progress empty flush", "biosInProgress.emptyFlush"},
    {"bios in progress discard", "biosInProgress.discard"},
    {"bios in progress flush", "biosInProgress.flush"},
    {"bios in progress fua", "biosInProgress.fua"},
    {"KVDO module bytes used", "memoryUsage.bytesUsed"},
    {"KVDO module peak bytes used", "memoryUsage.peakBytesUsed"},
    {"entries indexed", "index.entriesIndexed"},
    {"posts found", "index.postsFound"},
    {"posts not found", "index.postsNotFound"},
    {"queries found", "index.queriesFound"},
    {"queries not found", "index.queriesNotFound"},
    {"updates found", "index.updatesFound"},
    {"updates not found", "index.updatesNotFound"},
    {"entries discarded", "index.entriesDiscarded"},
};

/* ---- derived figures ---- */

static uint64_t get0(const struct dd_vdo_stats *s, const char *key)
{
    uint64_t v = 0;
    (void)dd_vdo_stats_u64(s, key, &v);
    return v;
}

int dd_vdo_derive(const struct dd_vdo_stats *stats, const struct dd_vdo_stats *config,
                  struct dd_vdo_derived *ret)
{
    struct dd_vdo_derived d;
    uint64_t physical, data, overhead, logical_used, used, frags;
    const char *mode = dd_vdo_stats_get(stats, "mode");

    memset(&d, 0, sizeof(d));
    if (dd_vdo_stats_u64(stats, "physicalBlocks", &physical) < 0 ||
        dd_vdo_stats_u64(stats, "dataBlocksUsed", &data) < 0 ||
        dd_vdo_stats_u64(stats, "overheadBlocksUsed", &overhead) < 0 ||
        dd_vdo_stats_u64(stats, "logicalBlocksUsed", &logical_used) < 0 ||
        dd_vdo_stats_u64(stats, "blockSize", &d.block_size) < 0 || !mode)
        return -ENOENT;
    /* VDO blocks are 4 KiB; accept any sane power of two, and refuse sizes
     * whose byte counts would not fit 64 bits rather than print garbage */
    if (d.block_size < 512 || d.block_size > (1u << 20) || (d.block_size & (d.block_size - 1)) ||
        physical > UINT64_MAX / d.block_size || data > UINT64_MAX - overhead)
        return DD_E_RANGE;
    d.in_recovery = get0(stats, "inRecoveryMode") != 0;
    d.read_only = strcmp(mode, "read-only") == 0;
    d.normal = !d.in_recovery && strcmp(mode, "normal") == 0;
    used = data + overhead;
    if (used > physical) /* never underflow "available" */
        used = physical;
    d.size_kb = physical * d.block_size / 1024;
    d.used_kb = used * d.block_size / 1024;
    d.available_kb = (physical - used) * d.block_size / 1024;
    d.used_percent = physical ? (int)(100.0 * (double)used / (double)physical + 0.5) : 0;
    d.saving_percent = logical_used > 0 && logical_used >= data
                           ? (int)(100.0 * (double)(logical_used - data) / (double)logical_used)
                           : 0;
    d.dedup_ratio = data > 0 ? (double)logical_used / (double)data : (double)NAN;
    frags = get0(stats, "packer.compressedFragmentsWritten");
    d.compression_share = data > 0 ? (double)frags / (double)data : (double)NAN;
    uint64_t cblocks = get0(stats, "packer.compressedBlocksWritten");
    double saved = frags > cblocks ? (double)(frags - cblocks) : 0.0;
    d.packer_savings = data > 0 || saved > 0 ? saved / ((double)data + saved) : (double)NAN;
    d.index_entries = get0(stats, "index.entriesIndexed");
    d.index_fill = (double)NAN;
    if (config) {
        const char *mem = dd_vdo_stats_get(config, "index.memorySize");
        const char *sparse = dd_vdo_stats_get(config, "index.isSparse");
        double gb;
        if (mem && dd_parse_double(mem, &gb) == 0 && gb > 0) {
            /* a dense 0.25 GB index holds 64 Mi records; sparse 10x */
            double cap = gb * 256.0 * 1024.0 * 1024.0;
            if (sparse && strcmp(sparse, "1") == 0)
                cap *= 10.0;
            d.index_fill = (double)d.index_entries / cap;
        }
    }
    {
        uint64_t in_w = get0(stats, "biosIn.write");
        double ratio =
            in_w ? (double)(get0(stats, "biosMeta.write") + get0(stats, "biosOut.write")) /
                       (double)in_w
                 : 0.0;
        d.write_amplification = round(ratio);
    }
    *ret = d;
    return 0;
}

static bool normal_mode(const struct dd_vdo_stats *s)
{
    const char *mode = dd_vdo_stats_get(s, "mode");
    return mode && strcmp(mode, "normal") == 0 && get0(s, "inRecoveryMode") == 0;
}

/* cur - prev, or false when the counter went backwards */
static bool delta(const struct dd_vdo_stats *prev, const struct dd_vdo_stats *cur, const char *key,
                  double *ret)
{
    uint64_t a, b;
    if (dd_vdo_stats_u64(prev, key, &a) < 0 || dd_vdo_stats_u64(cur, key, &b) < 0 || b < a)
        return false;
    *ret = (double)(b - a);
    return true;
}

int dd_vdo_rates(const struct dd_vdo_stats *prev, const struct dd_vdo_stats *cur, double dt,
                 struct dd_vdo_rates *ret)
{
    struct dd_vdo_rates r;
    double in_r, in_w, in_d, in_f, out_r, out_w, adv, jb, loaded, saved;
    uint64_t i1, i2;

    memset(&r, 0, sizeof(r));
    r.dedup_hit_rate = (double)NAN;
    r.packer_savings = (double)NAN;
    r.seconds = dt;
    /* lvm2's guard: nothing derived from a volume that is not in normal mode */
    if (!normal_mode(prev) || !normal_mode(cur)) {
        r.not_normal = true;
        *ret = r;
        return 0;
    }
    /* another instance number means the volume was reloaded: counters restarted */
    if (!(dt > 0) || dd_vdo_stats_u64(prev, "instance", &i1) < 0 ||
        dd_vdo_stats_u64(cur, "instance", &i2) < 0 || i1 != i2 ||
        !delta(prev, cur, "biosIn.read", &in_r) || !delta(prev, cur, "biosIn.write", &in_w) ||
        !delta(prev, cur, "biosIn.discard", &in_d) || !delta(prev, cur, "biosIn.flush", &in_f) ||
        !delta(prev, cur, "biosOut.read", &out_r) || !delta(prev, cur, "biosOut.write", &out_w) ||
        !delta(prev, cur, "hashLock.dedupeAdviceValid", &adv) ||
        !delta(prev, cur, "journal.blocks.written", &jb) ||
        !delta(prev, cur, "blockMap.pagesLoaded", &loaded) ||
        !delta(prev, cur, "blockMap.pagesSaved", &saved)) {
        *ret = r;
        return 0;
    }
    r.valid = true;
    r.bios_in_read = in_r / dt;
    r.bios_in_write = in_w / dt;
    r.bios_in_discard = in_d / dt;
    r.bios_in_flush = in_f / dt;
    r.bios_out_read = out_r / dt;
    r.bios_out_write = out_w / dt;
    r.write_mb_per_s = in_w * 4096.0 / 1e6 / dt;
    if (in_w > 0)
        r.dedup_hit_rate = DD_MIN(adv / in_w, 1.0);
    r.journal_blocks_per_s = jb / dt;
    r.block_map_pages_per_s = (loaded + saved) / dt;
    r.read_mb_per_s = in_r * 4096.0 / 1e6 / dt;
    r.blocks_written = in_w;
    double frag, comp, data;
    if (delta(prev, cur, "packer.compressedFragmentsWritten", &frag) &&
        delta(prev, cur, "packer.compressedBlocksWritten", &comp) &&
        delta(prev, cur, "dataBlocksUsed", &data) && data > 0) {
        double packed = frag > comp ? frag - comp : 0.0;
        r.packer_savings = packed / (data + packed);
    }
    *ret = r;
    return 0;
}

double dd_vdo_cost_per_gib(const struct dd_vdo_rates *r, double cpu_seconds)
{
    if (!r->valid || !isfinite(cpu_seconds) || cpu_seconds < 0 ||
        r->blocks_written < (double)DD_VDO_MIN_COST_BLOCKS)
        return (double)NAN;
    return cpu_seconds / (r->blocks_written * 4096.0 / 1073741824.0);
}

/* ---- vdostats output ---- */

void dd_vdostats_print_header(FILE *out, enum dd_vdostats_style style, int name_width)
{
    if (style == DD_VDOSTATS_VERBOSE)
        return;
    fprintf(out, "%-*s %9s %9s %9s %4s %13s\n", name_width, "Device",
            style == DD_VDOSTATS_DF ? "1k-blocks" : "Size", "Used", "Available", "Use%",
            "Space saving%");
}

static void print_size(FILE *out, uint64_t bytes, bool si)
{
    static const char units[] = {'B', 'K', 'M', 'G', 'T'};
    double v = (double)bytes, div = si ? 1000.0 : 1024.0;
    size_t u = 0;

    while (v >= div && u + 1 < sizeof(units)) {
        v /= div;
        u++;
    }
    fprintf(out, "%8.1f%c ", v, units[u]);
}

static int print_df(FILE *out, enum dd_vdostats_style style, int name_width, const char *name,
                    const struct dd_vdo_derived *d)
{
    if (d->in_recovery) {
        fprintf(out, "%-*s %9llu %9s %9s %3s %12s\n", name_width, name,
                (unsigned long long)d->size_kb, "N/A", "N/A", "N/A", "N/A");
        return 0;
    }
    if (style == DD_VDOSTATS_DF) {
        fprintf(out, "%-*s %9llu %9llu %9llu ", name_width, name, (unsigned long long)d->size_kb,
                (unsigned long long)d->used_kb, (unsigned long long)d->available_kb);
    } else {
        bool si = style == DD_VDOSTATS_SI;
        fprintf(out, "%-*s ", name_width, name);
        print_size(out, d->size_kb * 1024, si);
        print_size(out, d->used_kb * 1024, si);
        print_size(out, d->available_kb * 1024, si);
    }
    fprintf(out, "%3d%% %12d%%\n", d->used_percent, d->saving_percent);
    return 0;
}

/* Formats a computed verbose value; returns false when the line is omitted. */
static bool computed_value(const char *what, const struct dd_vdo_stats *s,
                           const struct dd_vdo_derived *d, char *buf, size_t len)
{
    bool na = d->in_recovery || d->read_only;

    if (strcmp(what, "1k") == 0)
        snprintf(buf, len, "%llu", (unsigned long long)d->size_kb);
    else if (strcmp(what, "1k-used") == 0)
        snprintf(buf, len, na ? "N/A" : "%llu", (unsigned long long)d->used_kb);
    else if (strcmp(what, "1k-available") == 0)
        snprintf(buf, len, na ? "N/A" : "%llu", (unsigned long long)d->available_kb);
    else if (strcmp(what, "used-percent") == 0)
        snprintf(buf, len, na ? "N/A" : "%d", d->used_percent);
    else if (strcmp(what, "saving-percent") == 0)
        snprintf(buf, len, na ? "N/A" : "%d", d->saving_percent);
    else if (strcmp(what, "512") == 0)
        snprintf(buf, len, "%s", get0(s, "logicalBlockSize") == 512 ? "on" : "off");
    else if (strcmp(what, "write-amplification") == 0)
        snprintf(buf, len, "%.2f", d->write_amplification);
    else if (strncmp(what, "batching:", 9) == 0 || strncmp(what, "writing:", 8) == 0) {
        bool batching = what[0] == 'b';
        const char *group = strchr(what, ':') + 1;
        char k1[64], k2[64];
        uint64_t a, b;
        snprintf(k1, sizeof(k1), "%s.%s", group, batching ? "started" : "written");
        snprintf(k2, sizeof(k2), "%s.%s", group, batching ? "written" : "committed");
        if (dd_vdo_stats_u64(s, k1, &a) < 0 || dd_vdo_stats_u64(s, k2, &b) < 0)
            return false;
        snprintf(buf, len, "%llu", (unsigned long long)(a >= b ? a - b : 0));
    } else {
        return false;
    }
    return true;
}

static int print_verbose(FILE *out, const char *name, const struct dd_vdo_stats *s,
                         const struct dd_vdo_derived *d)
{
    char values[DD_ARRAY_SIZE(verbose_lines)][64];
    bool shown[DD_ARRAY_SIZE(verbose_lines)];
    size_t width = 0;

    for (size_t i = 0; i < DD_ARRAY_SIZE(verbose_lines); i++) {
        const struct verbose_line *l = &verbose_lines[i];
        const char *v;

        shown[i] = false;
        if (l->key[0] == '=') {
            shown[i] = computed_value(l->key + 1, s, d, values[i], sizeof(values[i]));
        } else if ((v = dd_vdo_stats_get(s, l->key))) {
            bool na = false;
            if (strcmp(l->key, "dataBlocksUsed") == 0)
                na = d->in_recovery || d->read_only;
            else if (strcmp(l->key, "overheadBlocksUsed") == 0 ||
                     strcmp(l->key, "logicalBlocksUsed") == 0)
                na = d->in_recovery;
            else if (strcmp(l->key, "recoveryPercentage") == 0)
                na = !d->in_recovery;
            snprintf(values[i], sizeof(values[i]), "%s", na ? "N/A" : v);
            shown[i] = true;
        }
        if (shown[i])
            width = DD_MAX(width, strlen(l->label));
    }
    fprintf(out, "%s : \n", name);
    for (size_t i = 0; i < DD_ARRAY_SIZE(verbose_lines); i++) {
        if (shown[i])
            fprintf(out, "  %-*s : %s\n", (int)width, verbose_lines[i].label, values[i]);
    }
    return 0;
}

int dd_vdostats_print(FILE *out, enum dd_vdostats_style style, int name_width, const char *name,
                      const struct dd_vdo_stats *stats)
{
    struct dd_vdo_derived d;
    int r = dd_vdo_derive(stats, NULL, &d);

    if (r < 0)
        return r;
    if (style == DD_VDOSTATS_VERBOSE)
        return print_verbose(out, name, stats, &d);
    return print_df(out, style, name_width, name, &d);
}
