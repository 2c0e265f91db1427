/*
 * The simulator's texts: each file of a snapshot, printed from the state in
 * the exact layout of the real dm-vdo 6.12 captures and of the kernel's /proc
 * files (fs/proc/stat.c, block/genhd.c, kernel/sched/psi.c, fs/proc/uptime.c,
 * fs/proc/loadavg.c). No I/O: everything goes into a sim_buf.
 *
 * The stats reply is generated from one table in reply order, the order of
 * drivers/md/dm-vdo/message-stats.c; the unit test compares the keys and the
 * layout (numbers masked) with a real capture.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/sim-internal.h"

/* One snapshot file is a few KiB; diskstats of 64 volumes under 20 KiB. */
#define SIM_BUF_MAX (4u << 20)

void sim_buf_reset(struct sim_buf *b)
{
    b->len = 0;
    b->error = 0;
    if (b->p)
        b->p[0] = '\0';
}

void sim_buf_free(struct sim_buf *b)
{
    dd_free(b->p);
    memset(b, 0, sizeof(*b));
}

void sim_buf_printf(struct sim_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->error)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = room > 0 ? vsnprintf(b->p + b->len, room, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->error = -EINVAL;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        if (b->len + (size_t)n + 1 > SIM_BUF_MAX) {
            b->error = DD_E_TOOBIG;
            return;
        }
        {
            size_t cap = DD_MAX(b->cap * 2, DD_MAX((size_t)4096, b->len + (size_t)n + 1));
            char *p = dd_realloc(b->p, cap);
            if (!p) {
                b->error = -ENOMEM;
                return;
            }
            b->p = p;
            b->cap = cap;
        }
    }
}

/* ---- dm-vdo ---- */

enum sk_kind { SK_OPEN, SK_CLOSE, SK_U64, SK_MODE, SK_BIO };

struct stat_key {
    enum sk_kind kind;
    const char *name;
    size_t off;
};

#define U(n, f)                                                                                    \
    {                                                                                              \
        SK_U64, n, offsetof(struct sim_stats, f)                                                   \
    }
#define BIO(n, f)                                                                                  \
    {                                                                                              \
        SK_BIO, n, offsetof(struct sim_stats, f)                                                   \
    }
#define OPEN(n)                                                                                    \
    {                                                                                              \
        SK_OPEN, n, 0                                                                              \
    }
#define CLOSE                                                                                      \
    {                                                                                              \
        SK_CLOSE, NULL, 0                                                                          \
    }

/* The version-36 reply, in order: 156 leaves (a BIO entry is 6) in 26 groups. */
static const struct stat_key stat_keys[] = {
    U("version", version),
    U("dataBlocksUsed", data_blocks_used),
    U("overheadBlocksUsed", overhead_blocks_used),
    U("logicalBlocksUsed", logical_blocks_used),
    U("physicalBlocks", physical_blocks),
    U("logicalBlocks", logical_blocks),
    U("blockMapCacheSize", block_map_cache_size),
    U("blockSize", block_size),
    U("completeRecoveries", complete_recoveries),
    U("readOnlyRecoveries", read_only_recoveries),
    {SK_MODE, "mode", 0},
    U("inRecoveryMode", in_recovery_mode),
    U("recoveryPercentage", recovery_percentage),
    OPEN("packer"),
    U("compressedFragmentsWritten", packer_fragments_written),
    U("compressedBlocksWritten", packer_blocks_written),
    U("compressedFragmentsInPacker", packer_fragments_in_packer),
    CLOSE,
    OPEN("allocator"),
    U("slabCount", slab_count),
    U("slabsOpened", slabs_opened),
    U("slabsReopened", slabs_reopened),
    CLOSE,
    OPEN("journal"),
    U("diskFull", journal_disk_full),
    U("slabJournalCommitsRequested", journal_slab_commits),
    OPEN("entries"),
    U("started", journal_entries_started),
    U("written", journal_entries_written),
    U("committed", journal_entries_committed),
    CLOSE,
    OPEN("blocks"),
    U("started", journal_blocks_started),
    U("written", journal_blocks_written),
    U("committed", journal_blocks_committed),
    CLOSE,
    CLOSE,
    OPEN("slabJournal"),
    U("diskFullCount", sj_disk_full),
    U("flushCount", sj_flush),
    U("blockedCount", sj_blocked),
    U("blocksWritten", sj_blocks_written),
    U("tailBusyCount", sj_tail_busy),
    CLOSE,
    OPEN("slabSummary"),
    U("blocksWritten", summary_blocks_written),
    CLOSE,
    OPEN("refCounts"),
    U("blocksWritten", refcounts_blocks_written),
    CLOSE,
    OPEN("blockMap"),
    U("dirtyPages", bm_dirty),
    U("cleanPages", bm_clean),
    U("freePages", bm_free),
    U("failedPages", bm_failed_pages),
    U("incomingPages", bm_incoming),
    U("outgoingPages", bm_outgoing),
    U("cachePressure", bm_cache_pressure),
    U("readCount", bm_read_count),
    U("writeCount", bm_write_count),
    U("failedReads", bm_failed_reads),
    U("failedWrites", bm_failed_writes),
    U("reclaimed", bm_reclaimed),
    U("readOutgoing", bm_read_outgoing),
    U("foundInCache", bm_found_in_cache),
    U("discardRequired", bm_discard_required),
    U("waitForPage", bm_wait_for_page),
    U("fetchRequired", bm_fetch_required),
    U("pagesLoaded", bm_pages_loaded),
    U("pagesSaved", bm_pages_saved),
    U("flushCount", bm_flush_count),
    CLOSE,
    OPEN("hashLock"),
    U("dedupeAdviceValid", advice_valid),
    U("dedupeAdviceStale", advice_stale),
    U("concurrentDataMatches", concurrent_data_matches),
    U("concurrentHashCollisions", concurrent_hash_collisions),
    U("currDedupeQueries", curr_dedupe_queries),
    CLOSE,
    OPEN("errors"),
    U("invalidAdvicePBNCount", err_invalid_advice),
    U("noSpaceErrorCount", err_no_space),
    U("readOnlyErrorCount", err_read_only),
    CLOSE,
    U("instance", instance),
    U("currentVIOsInProgress", current_vios),
    U("maxVIOs", max_vios),
    U("dedupeAdviceTimeouts", advice_timeouts),
    U("flushOut", flush_out),
    U("logicalBlockSize", logical_block_size),
    BIO("biosIn", bios_in),
    BIO("biosInPartial", bios_in_partial),
    BIO("biosOut", bios_out),
    BIO("biosMeta", bios_meta),
    BIO("biosJournal", bios_journal),
    BIO("biosPageCache", bios_page_cache),
    BIO("biosOutCompleted", bios_out_completed),
    BIO("biosMetaCompleted", bios_meta_completed),
    BIO("biosJournalCompleted", bios_journal_completed),
    BIO("biosPageCacheCompleted", bios_page_cache_completed),
    BIO("biosAcknowledged", bios_acknowledged),
    BIO("biosAcknowledgedPartial", bios_acknowledged_partial),
    BIO("biosInProgress", bios_in_progress),
    OPEN("memoryUsage"),
    U("bytesUsed", memory_bytes_used),
    U("peakBytesUsed", memory_peak_bytes_used),
    CLOSE,
    OPEN("index"),
    U("entriesIndexed", index_entries),
    U("postsFound", index_posts_found),
    U("postsNotFound", index_posts_not_found),
    U("queriesFound", index_queries_found),
    U("queriesNotFound", index_queries_not_found),
    U("updatesFound", index_updates_found),
    U("updatesNotFound", index_updates_not_found),
    U("entriesDiscarded", index_entries_discarded),
    CLOSE,
};

static unsigned long long u64_at(const struct sim_stats *st, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)st + off, sizeof(v));
    return (unsigned long long)v;
}

void sim_format_stats(struct sim_buf *b, const struct sim_volume *v)
{
    const struct sim_stats *st = &v->st;

    sim_buf_printf(b, "{ ");
    for (size_t i = 0; i < DD_ARRAY_SIZE(stat_keys); i++) {
        const struct stat_key *k = &stat_keys[i];
        struct sim_bio bio;
        switch (k->kind) {
        case SK_OPEN:
            sim_buf_printf(b, "%s : { ", k->name);
            break;
        case SK_CLOSE:
            sim_buf_printf(b, "}, ");
            break;
        case SK_U64:
            sim_buf_printf(b, "%s : %llu, ", k->name, u64_at(st, k->off));
            break;
        case SK_MODE:
            sim_buf_printf(b, "mode : normal, ");
            break;
        case SK_BIO:
            memcpy(&bio, (const char *)st + k->off, sizeof(bio));
            sim_buf_printf(b,
                           "%s : { read : %llu, write : %llu, emptyFlush : %llu, discard : %llu, "
                           "flush : %llu, fua : %llu, }, ",
                           k->name, (unsigned long long)bio.read, (unsigned long long)bio.write,
                           (unsigned long long)bio.empty_flush, (unsigned long long)bio.discard,
                           (unsigned long long)bio.flush, (unsigned long long)bio.fua);
            break;
        }
    }
    /* the kernel's reply ends in "}"; dmsetup prints it with a newline */
    sim_buf_printf(b, "}\n");
}

void sim_format_status(struct sim_buf *b, const struct sim_volume *v)
{
    sim_buf_printf(b, "0 %llu vdo /dev/%s normal - online %s %llu %llu\n",
                   (unsigned long long)v->geo.logical_blocks * 8ull, v->backing.name,
                   v->p.compression ? "online" : "offline",
                   (unsigned long long)(v->st.data_blocks_used + v->st.overhead_blocks_used),
                   (unsigned long long)v->geo.physical_blocks);
}

void sim_format_table(struct sim_buf *b, const struct sim_volume *v)
{
    sim_buf_printf(b, "0 %llu vdo V4 /dev/%s %llu 4096 32768 16380\n",
                   (unsigned long long)v->geo.logical_blocks * 8ull, v->backing.name,
                   (unsigned long long)v->geo.physical_blocks);
}

void sim_format_config(struct sim_buf *b, const struct sim_volume *v)
{
    char mem[16];
    double gb = v->geo.index_memory_gb;

    /* as write_index_memory() in dm-vdo's message-stats.c */
    if (gb == 0.25)
        snprintf(mem, sizeof(mem), "0.25");
    else if (gb == 0.5)
        snprintf(mem, sizeof(mem), "0.50");
    else if (gb == 0.75)
        snprintf(mem, sizeof(mem), "0.75");
    else
        snprintf(mem, sizeof(mem), "%u", (unsigned)gb);
    sim_buf_printf(b,
                   "{ version : 1, physicalSize : %llu, logicalSize : %llu, slabSize : %llu, "
                   "index :  { memorySize : %s, isSparse : %d, }, }\n",
                   (unsigned long long)v->geo.physical_blocks * 4096ull,
                   (unsigned long long)v->geo.logical_blocks * 4096ull,
                   (unsigned long long)v->geo.slab_blocks, mem, v->geo.sparse ? 1 : 0);
}

/* ---- /proc ---- */

unsigned sim_thread_pid(unsigned instance, unsigned t)
{
    return 301u + 40u * instance + t;
}

static unsigned long long ticks(double seconds)
{
    return seconds > 0 ? (unsigned long long)floor(seconds * 100.0 + 1e-9) : 0;
}

void sim_format_thread_stat(struct sim_buf *b, const struct sim_volume *v, unsigned t, unsigned pid,
                            unsigned cpus)
{
    /* the fields of a real dm-vdo kthread (real-6.12 set1), 52 in all */
    sim_buf_printf(b,
                   "%u (vdo%u:%s) %c 2 0 0 0 -1 2129984 0 0 0 0 0 %llu 0 0 20 0 1 0 %llu 0 0 "
                   "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 %u 0 0 0 0 0 0 0 0 0 "
                   "0 0 0 0\n",
                   pid, v->instance, sim_threads[t].queue, sim_threads[t].state,
                   ticks(v->thread_s[t]), (unsigned long long)v->starttime[t],
                   (t + v->instance) % (cpus ? cpus : 1));
}

void sim_format_thread_comm(struct sim_buf *b, const struct sim_volume *v, unsigned t)
{
    sim_buf_printf(b, "vdo%u:%s\n", v->instance, sim_threads[t].queue);
}

void sim_disk_name(unsigned index, char *buf, size_t len)
{
    char tmp[8];
    size_t n = 0;
    long x = (long)index;

    /* virtio_blk's naming: vda..vdz, vdaa.. */
    do {
        tmp[n++] = (char)('a' + x % 26);
        x = x / 26 - 1;
    } while (x >= 0 && n < sizeof(tmp));
    if (len == 0)
        return;
    {
        size_t o = 0;
        if (len > 2) {
            buf[o++] = 'v';
            buf[o++] = 'd';
        }
        while (n > 0 && o + 1 < len)
            buf[o++] = tmp[--n];
        buf[o] = '\0';
    }
}

static unsigned long long ms(double x)
{
    return x > 0 ? (unsigned long long)floor(x) : 0;
}

static void disk_line(struct sim_buf *b, const struct sim_disk *d)
{
    /* block/genhd.c diskstats_show(): 3 + 17 fields */
    sim_buf_printf(b,
                   "%4u %7u %s %llu %llu %llu %llu %llu %llu %llu %llu %u %llu %llu %u %u %u %u "
                   "%llu %llu\n",
                   d->major, d->minor, d->name, (unsigned long long)d->reads,
                   (unsigned long long)d->reads_merged, (unsigned long long)d->sectors_read,
                   ms(d->read_ms), (unsigned long long)d->writes,
                   (unsigned long long)d->writes_merged, (unsigned long long)d->sectors_written,
                   ms(d->write_ms), 0u, ms(d->io_ms), ms(d->weighted_ms), 0u, 0u, 0u, 0u,
                   (unsigned long long)d->flushes, ms(d->flush_ms));
}

void sim_format_diskstats(struct sim_buf *b, const struct sim *s)
{
    disk_line(b, &s->node.root);
    for (size_t i = 0; i < s->n_vol; i++)
        disk_line(b, &s->vol[i].backing);
    for (size_t i = 0; i < s->n_vol; i++)
        disk_line(b, &s->vol[i].dm);
}

struct cpu_ticks {
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
};

static struct cpu_ticks cpu_ticks_of(const struct sim_cpu *c)
{
    return (struct cpu_ticks){ticks(c->user),   ticks(c->nice), ticks(c->system),  ticks(c->idle),
                              ticks(c->iowait), ticks(c->irq),  ticks(c->softirq), ticks(c->steal)};
}

void sim_format_proc_stat(struct sim_buf *b, const struct sim *s)
{
    const struct sim_node *n = &s->node;
    struct cpu_ticks sum = {0};
    unsigned long long sirq = n->intr / 2, part[10], rest;
    static const unsigned share[10] = {0, 40, 0, 5, 20, 0, 0, 20, 0, 15};

    for (unsigned c = 0; c < n->cpus; c++) {
        struct cpu_ticks t = cpu_ticks_of(&n->cpu[c]);
        sum.user += t.user;
        sum.nice += t.nice;
        sum.system += t.system;
        sum.idle += t.idle;
        sum.iowait += t.iowait;
        sum.irq += t.irq;
        sum.softirq += t.softirq;
        sum.steal += t.steal;
    }
    /* fs/proc/stat.c: "cpu  " (two spaces), then one line per CPU */
    sim_buf_printf(b, "cpu  %llu %llu %llu %llu %llu %llu %llu %llu 0 0\n", sum.user, sum.nice,
                   sum.system, sum.idle, sum.iowait, sum.irq, sum.softirq, sum.steal);
    for (unsigned c = 0; c < n->cpus; c++) {
        struct cpu_ticks t = cpu_ticks_of(&n->cpu[c]);
        sim_buf_printf(b, "cpu%u %llu %llu %llu %llu %llu %llu %llu %llu 0 0\n", c, t.user, t.nice,
                       t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal);
    }
    sim_buf_printf(b, "intr %llu 9 %llu 0 0 0 0 0 0 0 1 0 0 0 0 0 0\n", (unsigned long long)n->intr,
                   (unsigned long long)(n->intr - 10));
    sim_buf_printf(b, "ctxt %llu\nbtime %llu\nprocesses %llu\nprocs_running %u\nprocs_blocked %u\n",
                   (unsigned long long)n->ctxt, (unsigned long long)n->boot_time,
                   (unsigned long long)n->processes,
                   (unsigned)DD_MAX(1.0, round(n->last_busy * n->cpus)), 0u);
    rest = sirq;
    for (unsigned i = 0; i < 10; i++) {
        part[i] = sirq * share[i] / 100u;
        rest -= part[i];
    }
    part[9] += rest;
    sim_buf_printf(b, "softirq %llu", sirq);
    for (unsigned i = 0; i < 10; i++)
        sim_buf_printf(b, " %llu", part[i]);
    sim_buf_printf(b, "\n");
}

/* "%lu.%02lu" of a percentage, truncated as the kernel's LOAD_FRAC. */
static void pct(char *buf, size_t len, double share)
{
    unsigned long long c = (unsigned long long)floor(DD_MAX(0.0, share) * 10000.0 + 1e-6);
    snprintf(buf, len, "%llu.%02llu", c / 100, c % 100);
}

static void psi_line(struct sim_buf *b, const char *kind, const struct sim_psi *p)
{
    char a[3][32];

    pct(a[0], sizeof(a[0]), p ? p->avg10 : 0);
    pct(a[1], sizeof(a[1]), p ? p->avg60 : 0);
    pct(a[2], sizeof(a[2]), p ? p->avg300 : 0);
    sim_buf_printf(b, "%s avg10=%s avg60=%s avg300=%s total=%llu\n", kind, a[0], a[1], a[2],
                   p ? (unsigned long long)floor(p->total_us) : 0ull);
}

void sim_format_psi(struct sim_buf *b, const struct sim_psi *some, const struct sim_psi *full)
{
    psi_line(b, "some", some);
    psi_line(b, "full", full);
}

void sim_format_uptime(struct sim_buf *b, const struct sim *s)
{
    double idle = 0;
    unsigned long long up = (unsigned long long)floor(s->node.uptime * 100.0 + 1e-6), id;

    for (unsigned c = 0; c < s->node.cpus; c++)
        idle += s->node.cpu[c].idle;
    id = (unsigned long long)floor(idle * 100.0 + 1e-6);
    sim_buf_printf(b, "%llu.%02llu %llu.%02llu\n", up / 100, up % 100, id / 100, id % 100);
}

void sim_format_loadavg(struct sim_buf *b, const struct sim *s, unsigned snapshot)
{
    const struct sim_node *n = &s->node;
    unsigned long long l[3] = {(unsigned long long)floor(n->load1 * 100.0 + 0.5),
                               (unsigned long long)floor(n->load5 * 100.0 + 0.5),
                               (unsigned long long)floor(n->load15 * 100.0 + 0.5)};
    unsigned threads = 150u + SIM_THREADS * (unsigned)s->n_vol;

    sim_buf_printf(b, "%llu.%02llu %llu.%02llu %llu.%02llu %u/%u %u\n", l[0] / 100, l[0] % 100,
                   l[1] / 100, l[1] % 100, l[2] / 100, l[2] % 100,
                   (unsigned)DD_MAX(1.0, round(n->last_busy * n->cpus)), threads,
                   4000u + 3u * snapshot);
}
