/*
 * The simulator's model: the cost and latency functions of sim.h, the seeded
 * noise, each volume's geometry, and one interval's step of every counter the
 * stats reply, diskstats, /proc/stat, PSI and the VDO threads show. No I/O:
 * sim.c prints the state (sim-format.c) after each step.
 *
 * Invariants kept by sim_step (the tests check them on the output):
 *   - counters only grow; gauges (used blocks, entries, pages) stay in range;
 *   - dataBlocksUsed <= logicalBlocksUsed and dataBlocksUsed + block map pages
 *     <= the slabs' data capacity, so used <= physicalBlocks;
 *   - dedupeAdviceValid grows by the duplicates written, never more than the
 *     writes; new blocks that find no space fail (noSpaceErrorCount);
 *   - the packer moves only while compression is on;
 *   - block counts are whole: fractions are carried to the next interval, so
 *     long runs hold the stated shares exactly on average.
 * The workload's numbers are trusted to be in range (sim-workload.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/sim-internal.h"

#define BLOCKS_PER_GIB    262144.0       /* 4 KiB blocks */
#define BLOCKS_PER_MB     (1e6 / 4096.0) /* MB = 10^6 bytes */
#define SECTORS_PER_BLOCK 8u

/* Geometry as vdoformat lays it out (real-6.12 setup and set0): a 0.25 GB
 * dense index takes 778240 blocks, the recovery journal 8192 (32 MiB), and a
 * slab of 2^17 blocks keeps 257 for its reference counts and journal. */
#define INDEX_DISK_BLOCKS_PER_GB 3112960.0
#define JOURNAL_BLOCKS           8192u
#define SLAB_BLOCKS_MIN          (1u << 17)
#define SLAB_BLOCKS_MAX          (1u << 23)
#define SLABS_MAX                8192u
#define REFS_PER_BLOCK           4032u
#define SLAB_JOURNAL_BLOCKS      224u
#define INDEX_RECORDS_PER_GB     268435456.0 /* dense: 0.25 GB holds 64 Mi records */
#define SPARSE_FACTOR            10u

#define BM_ENTRIES_PER_PAGE       812u
#define CACHE_PAGES               32768u /* the table's 32768-block cache = blockMapCacheSize */
#define BM_ERA                    16380u /* journal blocks per block map era */
#define JOURNAL_ENTRIES_PER_BLOCK 55u
#define FLUSH_EVERY_BLOCKS        16384u /* the writers flush once per 64 MiB */
#define SLAB_JOURNAL_ALLOCS       725u   /* allocations per slab journal block written */

/* Module-wide kernel memory: two 0.25 GB volumes give the 821470528 bytes of
 * the real captures. */
#define MODULE_BASE_BYTES 16164160ull
#define CACHE_BYTES       134217728ull

#define UPTIME0   1000.0 /* seconds from boot to the first snapshot */
#define BOOT_TIME 1700000000.0

/* Carried fractions of each volume. */
enum { C_W, C_R, C_Z, C_U, C_C, C_REL, C_RZ, C_FETCH, C_BW, C_BR, C_COUNT };
_Static_assert(C_COUNT <= DD_ARRAY_SIZE(((struct sim_volume *)0)->carry), "carry slots");

/* Shares of each term per thread (rows sum to 1 over the threads). The index
 * term lands on the hashing and UDS threads, compression on cpuQ, reads on
 * the request and bio threads. */
const struct sim_thread_info sim_threads[SIM_THREADS] = {
    /*                BASE  INDEX DEDUPE COMPR READ */
    {"reqQ", 'S', {0.45, 0.00, 0.30, 0.15, 0.40}},
    {"bioQ0", 'S', {0.05, 0.00, 0.00, 0.00, 0.10}},
    {"bioQ1", 'S', {0.05, 0.00, 0.00, 0.00, 0.10}},
    {"bioQ2", 'S', {0.05, 0.00, 0.00, 0.00, 0.10}},
    {"bioQ3", 'S', {0.05, 0.00, 0.00, 0.00, 0.10}},
    {"ackQ", 'S', {0.10, 0.00, 0.00, 0.00, 0.10}},
    {"cpuQ", 'S', {0.15, 0.30, 0.20, 0.85, 0.10}},
    {"callbackW", 'S', {0.10, 0.05, 0.20, 0.00, 0.00}},
    {"dedupeQ", 'S', {0.00, 0.25, 0.30, 0.00, 0.00}},
    {"reader", 'I', {0.00, 0.00, 0.00, 0.00, 0.00}},
    {"reader", 'I', {0.00, 0.00, 0.00, 0.00, 0.00}},
    {"indexW", 'S', {0.00, 0.35, 0.00, 0.00, 0.00}},
    {"writer", 'I', {0.00, 0.05, 0.00, 0.00, 0.00}},
};

/* ---- the published relations ---- */

static double load_of(const struct dd_vdo_sim_point *pt)
{
    double l = pt->node_load;
    if (!(l > 0))
        return 0;
    return DD_MIN(l, DD_VDO_SIM_LOAD_MAX);
}

static double load_factor(const struct dd_vdo_sim_point *pt)
{
    return 1.0 / DD_MAX(0.05, 1.0 - load_of(pt));
}

static double log2_entries(const struct dd_vdo_sim_point *pt)
{
    return log2(DD_MAX(pt->index_entries, 2.0));
}

/* The four write terms, s per GiB written, load factor included. */
static void write_terms(const struct dd_vdo_sim_point *pt, double t[TERM_COUNT])
{
    double f = load_factor(pt);
    double u = pt->duplicate_share, z = pt->zero_share;
    double fresh = DD_MAX(0.0, 1.0 - z - u);

    t[TERM_BASE] = f * DD_VDO_SIM_COST_A;
    t[TERM_INDEX] = f * DD_VDO_SIM_COST_B * (1.0 - z) * log2_entries(pt);
    t[TERM_DEDUPE] = f * DD_VDO_SIM_COST_C * u;
    t[TERM_COMPRESS] =
        pt->compression ? f * DD_VDO_SIM_COST_D * pt->compressible_share * fresh : 0.0;
    t[TERM_READ] = 0;
}

double dd_vdo_sim_write_cost(const struct dd_vdo_sim_point *pt)
{
    double t[TERM_COUNT];
    write_terms(pt, t);
    return t[TERM_BASE] + t[TERM_INDEX] + t[TERM_DEDUPE] + t[TERM_COMPRESS];
}

double dd_vdo_sim_read_cost(const struct dd_vdo_sim_point *pt)
{
    return load_factor(pt) * DD_VDO_SIM_COST_R;
}

double dd_vdo_sim_thread_seconds(const struct dd_vdo_sim_point *pt, double gib_written,
                                 double gib_read)
{
    return dd_vdo_sim_write_cost(pt) * gib_written + dd_vdo_sim_read_cost(pt) * gib_read;
}

double dd_vdo_sim_backing_busy(const struct dd_vdo_sim_point *pt)
{
    double fresh = DD_MAX(0.0, 1.0 - pt->zero_share - pt->duplicate_share);
    double r = (pt->write_mbps * fresh + pt->read_mbps) / DD_VDO_SIM_BACKING_MBPS;
    if (!(r > 0))
        return 0;
    return DD_MIN(r, 0.95);
}

double dd_vdo_sim_write_latency_ms(const struct dd_vdo_sim_point *pt)
{
    double l = load_of(pt), r = dd_vdo_sim_backing_busy(pt);
    return 0.20 + 0.015 * (1.0 - pt->zero_share) * log2_entries(pt) + 0.90 * l / (1.0 - l) +
           0.50 * r / (1.0 - r);
}

double dd_vdo_sim_read_latency_ms(const struct dd_vdo_sim_point *pt)
{
    double l = load_of(pt), r = dd_vdo_sim_backing_busy(pt);
    return 0.10 + 0.30 * l / (1.0 - l) + 0.50 * r / (1.0 - r);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double dd_vdo_sim_noise(uint64_t seed, uint32_t volume, uint32_t interval, uint32_t channel)
{
    uint64_t x = splitmix64(seed);
    x = splitmix64(x ^ ((uint64_t)volume * 0xd6e8feb86659fd93ull));
    x = splitmix64(x ^ ((uint64_t)interval * 0xa0761d6478bd642full));
    x = splitmix64(x ^ ((uint64_t)channel * 0xe7037ed1a0b428dbull));
    /* 53 bits -> [0, 1) -> [-1, 1) */
    return (double)(x >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* ---- geometry ---- */

uint64_t sim_block_map_pages(uint64_t logical_used)
{
    uint64_t leaves = (logical_used + BM_ENTRIES_PER_PAGE - 1) / BM_ENTRIES_PER_PAGE;
    return leaves + (leaves + BM_ENTRIES_PER_PAGE - 1) / BM_ENTRIES_PER_PAGE;
}

uint64_t sim_overhead_blocks(const struct sim_geometry *g, uint64_t logical_used)
{
    return g->index_disk_blocks + JOURNAL_BLOCKS + g->slab_count * g->slab_overhead +
           sim_block_map_pages(logical_used);
}

static uint64_t slab_overhead(uint64_t slab_blocks)
{
    return (slab_blocks + REFS_PER_BLOCK - 1) / REFS_PER_BLOCK + SLAB_JOURNAL_BLOCKS;
}

static uint64_t round_up_gib(double blocks)
{
    double g = ceil(blocks / BLOCKS_PER_GIB);
    return (uint64_t)DD_MAX(1.0, g) * (uint64_t)BLOCKS_PER_GIB;
}

/* Takes the whole part of x plus the carried fraction; keeps the rest. */
static uint64_t take(double x, double *carry)
{
    double e = (x > 0 ? x : 0) + *carry;
    double n = floor(e);
    *carry = e - n;
    return (uint64_t)n;
}

/* The keys of volume v in interval k, given those of k - 1 and the phases
 * from *cursor on; advances *cursor past the phases applied. */
static void advance(const struct dd_vdo_workload *w, size_t v, unsigned k, size_t *cursor,
                    struct dd_vdo_volume_params *p)
{
    while (*cursor < w->n_phases && w->phases[*cursor].at_interval <= k) {
        const struct dd_vdo_phase *ph = &w->phases[*cursor];
        for (size_t j = 0; j < ph->n_overrides; j++)
            if (ph->overrides[j].volume == v)
                sim_apply_override(p, &ph->overrides[j]);
        (*cursor)++;
    }
}

static double fresh_share(const struct dd_vdo_volume_params *p)
{
    return DD_MAX(0.0, 1.0 - p->duplicate_share - p->zero_share);
}

static int geometry(const struct sim *s, size_t vi, struct sim_geometry *g,
                    struct dd_parse_error *err)
{
    const struct dd_vdo_volume_spec *spec = &s->w->volumes[vi];
    const double mems[] = {0.25, 0.5, 0.75};
    struct dd_vdo_volume_params p = spec->p;
    double need_idx = (double)spec->index_entries * 1.25 + 1.0;
    double logical0 = round(spec->stored_gib * BLOCKS_PER_GIB);
    double writes = 0, fresh = 0, data0, cf, need;
    uint64_t fixed;
    size_t cursor = 0;

    memset(g, 0, sizeof(*g));
    g->sparse = spec->sparse_index;
    /* index */
    g->index_memory_gb = spec->index_memory_gb;
    if (g->index_memory_gb == 0) {
        for (size_t i = 0; i < DD_ARRAY_SIZE(mems) && g->index_memory_gb == 0; i++)
            if (mems[i] * INDEX_RECORDS_PER_GB * (g->sparse ? SPARSE_FACTOR : 1) >= need_idx)
                g->index_memory_gb = mems[i];
        if (g->index_memory_gb == 0) {
            double gb = ceil(need_idx / (INDEX_RECORDS_PER_GB * (g->sparse ? SPARSE_FACTOR : 1)));
            g->index_memory_gb = DD_MIN(gb, 1024.0);
        }
    }
    g->index_capacity =
        (uint64_t)(g->index_memory_gb * INDEX_RECORDS_PER_GB) * (g->sparse ? SPARSE_FACTOR : 1);
    if (spec->index_entries > g->index_capacity) {
        dd_parse_error_set(err, 0, 0,
                           "volume '%s': index_entries %llu exceed the index's %llu records "
                           "(index_memory_gb %g%s)",
                           spec->name, (unsigned long long)spec->index_entries,
                           (unsigned long long)g->index_capacity, g->index_memory_gb,
                           g->sparse ? ", sparse" : "");
        return DD_E_RANGE;
    }
    g->index_disk_blocks =
        (uint64_t)(g->index_memory_gb * INDEX_DISK_BLOCKS_PER_GB) * (g->sparse ? SPARSE_FACTOR : 1);
    fixed = g->index_disk_blocks + JOURNAL_BLOCKS;

    /* what the run may write, at most */
    for (unsigned k = 0; k < s->intervals; k++) {
        double wk;
        advance(s->w, vi, k, &cursor, &p);
        wk = p.write_mbps * BLOCKS_PER_MB * s->seconds * (1.0 + DD_VDO_SIM_NOISE_RATE_BOUND) + 1;
        writes += wk;
        fresh += wk * fresh_share(&p);
    }
    cf = spec->p.compression
             ? 1.0 - spec->p.compressible_share * (1.0 - 1.0 / (double)spec->fragments_per_block)
             : 1.0;
    data0 = round(logical0 * fresh_share(&spec->p) * cf);

    /* logical size */
    if (spec->logical_gib > 0) {
        g->logical_blocks = (uint64_t)round(spec->logical_gib * BLOCKS_PER_GIB);
        if (logical0 > (double)g->logical_blocks) {
            dd_parse_error_set(err, 0, 0, "volume '%s': stored_gib %g exceeds logical_gib %g",
                               spec->name, spec->stored_gib, spec->logical_gib);
            return DD_E_RANGE;
        }
    } else {
        /* thin provisioned with room to spare, as volumes are made */
        g->logical_blocks = round_up_gib(1.5 * logical0 + writes + 1);
    }

    /* physical size and slabs */
    need = data0 + fresh + (double)sim_block_map_pages(g->logical_blocks);
    if (spec->physical_gib > 0) {
        g->physical_blocks = (uint64_t)round(spec->physical_gib * BLOCKS_PER_GIB);
        g->slab_blocks = SLAB_BLOCKS_MIN;
        if (g->physical_blocks < fixed + SLAB_BLOCKS_MIN) {
            dd_parse_error_set(err, 0, 0,
                               "volume '%s': physical_gib %g is too small: the index and "
                               "journal take %.2f GiB, and one slab 0.5 GiB more",
                               spec->name, spec->physical_gib, (double)fixed / BLOCKS_PER_GIB);
            return DD_E_RANGE;
        }
        while ((g->physical_blocks - fixed) / g->slab_blocks > SLABS_MAX &&
               g->slab_blocks < SLAB_BLOCKS_MAX)
            g->slab_blocks *= 2;
        g->slab_count = DD_MIN((g->physical_blocks - fixed) / g->slab_blocks, SLABS_MAX);
    } else {
        /* half full at the start, and room for everything the run writes */
        double start = data0 + (double)sim_block_map_pages((uint64_t)logical0);
        double want = DD_MAX(need * 1.1, 2.0 * start) + 1;
        g->slab_blocks = SLAB_BLOCKS_MIN;
        while (want / (double)(g->slab_blocks - slab_overhead(g->slab_blocks)) > SLABS_MAX &&
               g->slab_blocks < SLAB_BLOCKS_MAX)
            g->slab_blocks *= 2;
        g->slab_count =
            (uint64_t)ceil(want / (double)(g->slab_blocks - slab_overhead(g->slab_blocks)));
        g->slab_count = DD_MIN(DD_MAX(g->slab_count, 1u), SLABS_MAX);
        g->physical_blocks = fixed + g->slab_count * g->slab_blocks;
    }
    g->slab_overhead = slab_overhead(g->slab_blocks);
    g->data_capacity = g->slab_count * (g->slab_blocks - g->slab_overhead);
    if (data0 + (double)sim_block_map_pages((uint64_t)logical0) > (double)g->data_capacity) {
        dd_parse_error_set(err, 0, 0,
                           "volume '%s': the stored data needs %.0f blocks, the slabs hold %llu "
                           "(raise physical_gib)",
                           spec->name, data0 + (double)sim_block_map_pages((uint64_t)logical0),
                           (unsigned long long)g->data_capacity);
        return DD_E_RANGE;
    }
    if (spec->logical_gib == 0 && g->logical_blocks < g->physical_blocks)
        g->logical_blocks = round_up_gib((double)g->physical_blocks);
    return 0;
}

/* ---- the initial state ---- */

static void init_volume(struct sim *s, size_t vi)
{
    struct sim_volume *v = &s->vol[vi];
    const struct dd_vdo_volume_spec *spec = v->spec;
    struct sim_stats *st = &v->st;
    double logical0 = round(spec->stored_gib * BLOCKS_PER_GIB);
    double cf = v->p.compression ? 1.0 - v->p.compressible_share *
                                             (1.0 - 1.0 / (double)spec->fragments_per_block)
                                 : 1.0;
    uint64_t data0 = (uint64_t)round(logical0 * fresh_share(&v->p) * cf);
    uint64_t usable = v->geo.slab_blocks - v->geo.slab_overhead;
    char disk[16];

    st->version = 36;
    st->logical_blocks_used = (uint64_t)logical0;
    st->data_blocks_used = DD_MIN(data0, st->logical_blocks_used);
    st->overhead_blocks_used = sim_overhead_blocks(&v->geo, st->logical_blocks_used);
    st->physical_blocks = v->geo.physical_blocks;
    st->logical_blocks = v->geo.logical_blocks;
    st->block_map_cache_size = CACHE_BYTES;
    st->block_size = 4096;
    st->recovery_percentage = 100;
    st->slab_count = v->geo.slab_count;
    st->slabs_opened =
        DD_MIN(v->geo.slab_count,
               (st->data_blocks_used + sim_block_map_pages(st->logical_blocks_used) + usable - 1) /
                   usable);
    st->bm_free = CACHE_PAGES;
    st->instance = v->instance;
    st->max_vios = 32;
    st->logical_block_size = 4096;
    /* what the real set0 shows right after creation: udev probing reads and
     * the first metadata writes */
    st->bios_in.read = 96;
    st->bios_acknowledged.read = 96;
    st->bios_meta = (struct sim_bio){.read = 2, .write = 2, .flush = 1, .fua = 1};
    st->bios_meta_completed = (struct sim_bio){.read = 2, .write = 1, .empty_flush = 1, .flush = 1};
    st->index_entries = spec->index_entries;

    for (unsigned t = 0; t < SIM_THREADS; t++)
        v->starttime[t] = (uint64_t)(20 + v->instance) * 100u + t * 3u;

    v->dm = (struct sim_disk){.major = 253, .minor = v->instance};
    snprintf(v->dm.name, sizeof(v->dm.name), "dm-%u", v->instance);
    v->dm.reads = 96;
    v->dm.sectors_read = 96 * SECTORS_PER_BLOCK;
    v->dm.read_ms = 96 * 0.5;
    v->backing = (struct sim_disk){.major = 254, .minor = 16u * (v->instance + 1)};
    sim_disk_name(v->instance + 1, disk, sizeof(disk));
    snprintf(v->backing.name, sizeof(v->backing.name), "%s", disk);
    /* vdoformat and the load: the geometry and super blocks, the index */
    v->backing.reads = 64;
    v->backing.sectors_read = 64 * SECTORS_PER_BLOCK + 2 * SECTORS_PER_BLOCK;
    v->backing.read_ms = 64 * 0.3;
    v->backing.writes = 2;
    v->backing.sectors_written = 2 * SECTORS_PER_BLOCK;
    v->backing.write_ms = 2.0;
    v->backing.flushes = 1;
    v->backing.flush_ms = 0.4;
}

static void init_node(struct sim *s)
{
    struct sim_node *n = &s->node;
    double l = dd_vdo_sim_node_load(s->w, 0);

    n->uptime = UPTIME0;
    n->boot_time = BOOT_TIME;
    for (unsigned c = 0; c < n->cpus; c++) {
        struct sim_cpu *cpu = &n->cpu[c];
        cpu->user = 0.85 * l * UPTIME0;
        cpu->system = 0.10 * l * UPTIME0;
        cpu->irq = 0.02 * l * UPTIME0;
        cpu->softirq = 0.03 * l * UPTIME0;
        cpu->idle = (1.0 - l) * UPTIME0;
    }
    n->last_busy = l;
    n->cpu_some = (struct sim_psi){l * l * l, l * l * l, l * l * l, l * l * l * UPTIME0 * 1e6};
    n->load1 = n->load5 = n->load15 = l * n->cpus;
    n->ctxt = (uint64_t)(UPTIME0 * 2000.0 * n->cpus);
    n->intr = (uint64_t)(UPTIME0 * 1000.0 * n->cpus);
    n->processes = 1200;
    n->root = (struct sim_disk){.major = 254, .minor = 0, .name = "vda"};
    n->root.reads = 800;
    n->root.reads_merged = 300;
    n->root.sectors_read = 700000;
    n->root.read_ms = 780;
    n->root.writes = 110;
    n->root.writes_merged = 130;
    n->root.sectors_written = 92000;
    n->root.write_ms = 140;
    n->root.io_ms = 950;
    n->root.weighted_ms = 920;
    n->root.flushes = 22;
    n->root.flush_ms = 6;
}

int sim_init(struct sim *s, const struct dd_vdo_workload *w, unsigned intervals, double seconds,
             uint64_t seed, struct dd_parse_error *err)
{
    uint64_t memory = MODULE_BASE_BYTES;
    int r;

    memset(s, 0, sizeof(*s));
    s->w = w;
    s->seed = seed;
    s->seconds = seconds;
    s->intervals = intervals;
    s->n_vol = w->n_volumes;
    s->vol = dd_calloc(w->n_volumes, sizeof(*s->vol));
    s->node.cpus = w->cpus ? w->cpus : 2;
    s->node.cpu = dd_calloc(s->node.cpus, sizeof(*s->node.cpu));
    if (!s->vol || !s->node.cpu) {
        sim_release(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->n_vol; i++) {
        struct sim_volume *v = &s->vol[i];
        v->spec = &w->volumes[i];
        v->instance = (unsigned)i;
        r = geometry(s, i, &v->geo, err);
        if (r < 0) {
            sim_release(s);
            return r;
        }
    }
    /* interval 0's keys */
    for (size_t i = 0; i < s->n_vol; i++) {
        size_t cursor = 0;
        s->vol[i].p = w->volumes[i].p;
        advance(w, i, 0, &cursor, &s->vol[i].p);
        s->next_phase = cursor;
    }
    for (size_t i = 0; i < s->n_vol; i++) {
        init_volume(s, i);
        memory += (uint64_t)(s->vol[i].geo.index_memory_gb * 1073741824.0) + CACHE_BYTES;
    }
    for (size_t i = 0; i < s->n_vol; i++) {
        s->vol[i].st.memory_bytes_used = memory;
        s->vol[i].st.memory_peak_bytes_used = memory;
    }
    init_node(s);
    return 0;
}

void sim_release(struct sim *s)
{
    if (!s)
        return;
    dd_free(s->vol);
    dd_free(s->node.cpu);
    memset(s, 0, sizeof(*s));
}

/* ---- one interval ---- */

static void bio_add(struct sim_bio *b, uint64_t read, uint64_t write, uint64_t empty_flush,
                    uint64_t flush, uint64_t fua)
{
    b->read += read;
    b->write += write;
    b->empty_flush += empty_flush;
    b->flush += flush;
    b->fua += fua;
}

static struct dd_vdo_sim_point point_of(const struct sim_volume *v, double load)
{
    return (struct dd_vdo_sim_point){
        .index_entries = (double)v->st.index_entries,
        .duplicate_share = v->p.duplicate_share,
        .zero_share = v->p.zero_share,
        .compressible_share = v->p.compressible_share,
        .compression = v->p.compression,
        .node_load = load,
    };
}

/* Seconds per GiB of each term (writes: the first four, reads: TERM_READ). */
static void terms_of(const struct dd_vdo_sim_point *pt, double t[TERM_COUNT])
{
    write_terms(pt, t);
    t[TERM_READ] = dd_vdo_sim_read_cost(pt);
}

/* The busiest thread's seconds for gw GiB written and gr read. */
static double busiest_thread(const double t[TERM_COUNT], double gw, double gr)
{
    double most = 0;
    for (unsigned i = 0; i < SIM_THREADS; i++) {
        double x = 0;
        for (unsigned k = 0; k < TERM_COUNT; k++)
            x += t[k] * sim_threads[i].share[k] * (k == TERM_READ ? gr : gw);
        most = DD_MAX(most, x);
    }
    return most;
}

/* Whether volume v has compression on in interval k + 1 (k the current one). */
static bool compression_next(const struct sim *s, size_t v)
{
    struct dd_vdo_volume_params p = s->vol[v].p;
    size_t cursor = s->next_phase;
    advance(s->w, v, s->interval + 1, &cursor, &p);
    return p.compression;
}

static void disk_add_write(struct sim_disk *d, uint64_t ios, uint64_t merged, uint64_t sectors,
                           double ms)
{
    d->writes += ios;
    d->writes_merged += merged;
    d->sectors_written += sectors;
    d->write_ms += ms;
}

static void disk_add_read(struct sim_disk *d, uint64_t ios, uint64_t merged, uint64_t sectors,
                          double ms)
{
    d->reads += ios;
    d->reads_merged += merged;
    d->sectors_read += sectors;
    d->read_ms += ms;
}

/* Moves volume v by W blocks written and R read in the current interval at
 * node load L; returns its VDO thread seconds. */
static double volume_step(struct sim *s, size_t vi, uint64_t W, uint64_t R, double L)
{
    struct sim_volume *v = &s->vol[vi];
    struct sim_stats *st = &v->st;
    const struct sim_geometry *g = &v->geo;
    const unsigned fpb = v->spec->fragments_per_block ? v->spec->fragments_per_block : 4;
    const double S = s->seconds;
    const double z = v->p.zero_share, u = v->p.duplicate_share;
    const bool comp = v->p.compression;
    struct dd_vdo_sim_point pt = point_of(v, L);
    uint64_t Z, U, N, C, l = st->logical_blocks_used, d = st->data_blocks_used;
    uint64_t room, want_fresh, map_failed, fresh_max, bm_upper, free_blocks, in_p, packed, frags,
        failed_frag = 0, ok_u;
    uint64_t failed, w_ok, fresh, over, rel = 0, alloc, bm_old, bm_new, fetch, F, entries;
    uint64_t jb_total, ef_total, d_jb, d_ef, sj_total, d_sj, rc_total, d_rc, era_total;
    uint64_t d_saved = 0, r_out, bw, br, ios;
    double t[TERM_COUNT], gw, gr, seconds = 0, noise, lat_w, lat_r, r, ms_w, ms_r;

    /* room: the block map grows first, for writes to unmapped addresses; those
     * that would need a map page with no block left for it fail */
    room = g->data_capacity > d ? g->data_capacity - d : 0;
    want_fresh = DD_MIN(W, g->logical_blocks - l);
    fresh_max = want_fresh;
    if (sim_block_map_pages(l + fresh_max) > room) {
        uint64_t lo = 0, hi = fresh_max;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo + 1) / 2;
            if (sim_block_map_pages(l + mid) <= room)
                lo = mid;
            else
                hi = mid - 1;
        }
        fresh_max = lo;
    }
    map_failed = want_fresh - fresh_max;
    bm_old = sim_block_map_pages(l);
    bm_upper = sim_block_map_pages(l + fresh_max);
    free_blocks = room > bm_upper ? room - bm_upper : 0;

    /* what the writes that can be mapped are */
    Z = take((double)(W - map_failed) * z, &v->carry[C_Z]);
    U = take((double)(W - map_failed) * u, &v->carry[C_U]);
    if (Z > W - map_failed)
        Z = W - map_failed;
    if (Z + U > W - map_failed) {
        v->carry[C_U] += (double)(Z + U - (W - map_failed));
        U = W - map_failed - Z;
    }
    N = W - map_failed - Z - U;
    C = comp ? take((double)N * v->p.compressible_share, &v->carry[C_C]) : 0;
    if (C > N)
        C = N;

    /* the packer: full bins are written; flushed when compression goes off */
    in_p = st->packer_fragments_in_packer + C;
    packed = 0;
    frags = 0;
    if (comp) {
        packed = in_p / fpb;
        frags = packed * fpb;
        if (in_p > frags && s->interval + 1 < s->intervals && !compression_next(s, vi)) {
            packed++;
            frags = in_p;
        }
        if (packed > free_blocks) {
            packed = free_blocks;
            frags = packed * fpb;
        }
        in_p -= frags;
        if (in_p >= fpb) { /* no room for them: those fragments' writes fail */
            failed_frag = in_p - (fpb - 1);
            in_p = fpb - 1;
        }
    }
    ok_u = DD_MIN(N - C, free_blocks - packed);
    failed = map_failed + (N - C - ok_u) + failed_frag;
    alloc = packed + ok_u;
    w_ok = W - failed;

    /* logical space: fresh addresses first, then overwrites, which release
     * their old blocks in proportion */
    fresh = DD_MIN(w_ok, fresh_max);
    over = w_ok - fresh;
    if (over > 0 && l > 0)
        rel = DD_MIN(d, take((double)over * (double)d / (double)l, &v->carry[C_REL]));
    d = d - rel + alloc;
    l += fresh;
    if (d > l)
        d = l;
    bm_new = sim_block_map_pages(l);

    /* the index: every new block is posted; a full index drops old records */
    st->index_posts_found += U;
    st->index_posts_not_found += N;
    st->index_entries += N;
    if (st->index_entries > g->index_capacity) {
        st->index_entries_discarded += st->index_entries - g->index_capacity;
        st->index_entries = g->index_capacity;
    }
    st->advice_valid += U;
    st->concurrent_data_matches = st->advice_valid / 1000u;

    /* flushes from the writers, the recovery journal, slab journals */
    F = (st->bios_in.write + W) / FLUSH_EVERY_BLOCKS - st->bios_in.write / FLUSH_EVERY_BLOCKS;
    entries = w_ok + (bm_new - bm_old);
    v->cum_journal_entries += entries;
    jb_total = v->cum_journal_entries / JOURNAL_ENTRIES_PER_BLOCK + st->bios_in.flush + F;
    d_jb = jb_total - st->journal_blocks_started;
    ef_total = st->bios_in.flush + F + jb_total / 32u;
    d_ef = ef_total - st->bios_journal.empty_flush;
    v->cum_allocs += alloc;
    sj_total = v->cum_allocs / SLAB_JOURNAL_ALLOCS;
    d_sj = sj_total - st->sj_blocks_written;
    rc_total = v->cum_allocs / 40320u;
    d_rc = rc_total - st->refcounts_blocks_written;

    /* the block map cache: new pages and read misses are fetched; at each era
     * the dirty pages are written back and stay resident as clean */
    fetch = (bm_new - bm_old) + take((double)R / 8120.0, &v->carry[C_FETCH]);
    era_total = jb_total / BM_ERA;
    if (era_total > v->era) {
        d_saved = st->bm_dirty;
        st->bm_clean = DD_MIN(CACHE_PAGES, st->bm_clean + st->bm_dirty);
        st->bm_dirty = 0;
        st->bm_flush_count += era_total - v->era;
        v->era = era_total;
    }
    st->bm_dirty = DD_MIN(CACHE_PAGES, st->bm_dirty + fetch);
    if (st->bm_clean + st->bm_dirty > CACHE_PAGES)
        st->bm_clean = CACHE_PAGES - st->bm_dirty;
    st->bm_free = CACHE_PAGES - st->bm_dirty - st->bm_clean;
    st->bm_pages_saved += d_saved;
    st->bm_read_count += W + R;
    st->bm_write_count += w_ok;
    st->bm_fetch_required += fetch;
    st->bm_pages_loaded += fetch;
    st->bm_wait_for_page = (uint64_t)((double)(st->bm_read_count + st->bm_write_count) * 0.055);
    {
        uint64_t lookups = st->bm_read_count + st->bm_write_count;
        uint64_t miss = st->bm_wait_for_page + st->bm_fetch_required;
        if (lookups > miss && lookups - miss > st->bm_found_in_cache)
            st->bm_found_in_cache = lookups - miss;
    }

    /* the bios */
    r_out = R - DD_MIN(R, take((double)R * z, &v->carry[C_RZ]));
    bio_add(&st->bios_in, R, W, F, F, 0);
    bio_add(&st->bios_acknowledged, R, W, F, F, 0);
    bio_add(&st->bios_out, r_out, alloc, 0, 0, 0);
    bio_add(&st->bios_out_completed, r_out, alloc, 0, 0, 0);
    bio_add(&st->bios_journal, 0, d_jb, d_ef, d_jb + d_ef, d_jb);
    bio_add(&st->bios_journal_completed, 0, 0, d_jb + d_ef, d_jb + d_ef, 0);
    bio_add(&st->bios_page_cache, fetch, d_saved, 0, 0, 0);
    bio_add(&st->bios_page_cache_completed, fetch, d_saved, 0, 0, 0);
    bio_add(&st->bios_meta, fetch, d_jb + 2 * d_sj + d_saved + d_rc, d_ef, d_jb + d_ef + d_sj,
            d_jb);
    /* as on the real virtio disk: the journal's FUA writes complete as flushes */
    bio_add(&st->bios_meta_completed, fetch, d_sj + d_saved + d_rc, d_jb + d_ef + d_sj,
            d_jb + d_ef + d_sj, 0);
    st->flush_out = st->bios_in.flush;

    /* the journals and the packer */
    st->journal_entries_started += entries;
    st->journal_entries_written += entries;
    st->journal_entries_committed += entries;
    st->journal_blocks_started = jb_total;
    st->journal_blocks_written = jb_total;
    st->journal_blocks_committed = jb_total;
    st->sj_blocks_written = sj_total;
    st->summary_blocks_written = sj_total;
    st->refcounts_blocks_written = rc_total;
    st->packer_fragments_written += frags;
    st->packer_blocks_written += packed;
    st->packer_fragments_in_packer = in_p;
    st->err_no_space += failed;

    /* space */
    st->data_blocks_used = d;
    st->logical_blocks_used = l;
    st->overhead_blocks_used = sim_overhead_blocks(g, l);
    {
        uint64_t usable = g->slab_blocks - g->slab_overhead;
        uint64_t opened = DD_MIN(g->slab_count, (d + bm_new + usable - 1) / usable);
        st->slabs_opened = DD_MAX(st->slabs_opened, opened);
    }

    /* CPU: the cost function at the achieved rates */
    gw = (double)W / BLOCKS_PER_GIB;
    gr = (double)R / BLOCKS_PER_GIB;
    pt.write_mbps = (double)W / BLOCKS_PER_MB / S;
    pt.read_mbps = (double)R / BLOCKS_PER_MB / S;
    terms_of(&pt, t);
    noise = 1.0 + DD_VDO_SIM_NOISE_CPU_BOUND *
                      dd_vdo_sim_noise(s->seed, (uint32_t)vi, s->interval, DD_VDO_SIM_NOISE_CPU);
    for (unsigned i = 0; i < SIM_THREADS; i++) {
        double x = 0;
        for (unsigned k = 0; k < TERM_COUNT; k++)
            x += t[k] * sim_threads[i].share[k] * (k == TERM_READ ? gr : gw);
        v->thread_s[i] += x * noise;
        seconds += x * noise;
    }

    /* the dm device: every write and empty flush at the interval's latency */
    r = dd_vdo_sim_backing_busy(&pt);
    lat_w = dd_vdo_sim_write_latency_ms(&pt) *
            (1.0 + DD_VDO_SIM_NOISE_LAT_BOUND *
                       dd_vdo_sim_noise(s->seed, (uint32_t)vi, s->interval, DD_VDO_SIM_NOISE_LAT));
    lat_r = dd_vdo_sim_read_latency_ms(&pt);
    ms_w = (double)(W + F) * lat_w;
    ms_r = (double)R * lat_r;
    disk_add_write(&v->dm, W + F, 0, W * SECTORS_PER_BLOCK, ms_w);
    disk_add_read(&v->dm, R, 0, R * SECTORS_PER_BLOCK, ms_r);
    v->dm.io_ms += DD_MIN(S * 1000.0, (ms_w + ms_r) / 8.0);
    v->dm.weighted_ms += ms_w + ms_r;

    /* the backing disk: data and metadata, merged into larger requests */
    bw = alloc + d_jb + 2 * d_sj + d_saved + d_rc;
    br = r_out + fetch;
    ios = DD_MIN(bw, take((double)bw * 0.08, &v->carry[C_BW]));
    ms_w = (double)ios * (1.0 + r / (1.0 - r));
    disk_add_write(&v->backing, ios, bw - ios, bw * SECTORS_PER_BLOCK, ms_w);
    ios = DD_MIN(br, take((double)br * 0.25, &v->carry[C_BR]));
    ms_r = (double)ios * (0.3 + 0.5 * r / (1.0 - r));
    disk_add_read(&v->backing, ios, br - ios, br * SECTORS_PER_BLOCK, ms_r);
    v->backing.flushes += d_jb + d_ef + d_sj;
    v->backing.flush_ms += (double)(d_jb + d_ef + d_sj) * 0.4;
    v->backing.io_ms += DD_MIN(S * 1000.0, (ms_w + ms_r) / 2.0);
    v->backing.weighted_ms += ms_w + ms_r;

    /* VIOs in flight at the peak: Little's law with a burst factor */
    {
        double vios = 32.0 + (double)(W + R) / S * lat_w / 1000.0 * 4.0;
        uint64_t mv = (uint64_t)DD_MIN(2048.0, vios);
        st->max_vios = DD_MAX(st->max_vios, mv);
    }

    v->last_busy = r;
    return seconds;
}

static void psi_update(struct sim_psi *p, double share, double S)
{
    double a10 = exp(-S / 10.0), a60 = exp(-S / 60.0), a300 = exp(-S / 300.0);
    p->avg10 = p->avg10 * a10 + share * (1.0 - a10);
    p->avg60 = p->avg60 * a60 + share * (1.0 - a60);
    p->avg300 = p->avg300 * a300 + share * (1.0 - a300);
    p->total_us += share * S * 1e6;
}

static void node_step(struct sim *s, double L, double vdo_seconds, double r_max, uint64_t blocks)
{
    struct sim_node *n = &s->node;
    const double S = s->seconds;
    double vdo = vdo_seconds / ((double)n->cpus * S), busy = 0, iow_sum = 0;
    double a1 = exp(-S / 60.0), a5 = exp(-S / 300.0), a15 = exp(-S / 900.0), target;

    vdo = DD_MIN(vdo, 1.0);
    for (unsigned c = 0; c < n->cpus; c++) {
        struct sim_cpu *cpu = &n->cpu[c];
        double e =
            dd_vdo_sim_noise(s->seed, DD_VDO_SIM_NODE, s->interval, DD_VDO_SIM_NOISE_LOAD + c);
        double bg = L * (1.0 + DD_VDO_SIM_NOISE_LOAD_BOUND * e);
        double b, iow;
        bg = DD_MAX(0.0, DD_MIN(bg, 1.0 - vdo));
        b = bg + vdo;
        iow = 0.3 * r_max * (1.0 - b);
        cpu->user += 0.85 * bg * S;
        cpu->system += (0.10 * bg + vdo) * S;
        cpu->irq += 0.02 * bg * S;
        cpu->softirq += 0.03 * bg * S;
        cpu->iowait += iow * S;
        cpu->idle += DD_MAX(0.0, 1.0 - b - iow) * S;
        busy += b;
        iow_sum += iow;
    }
    busy /= n->cpus;
    iow_sum /= n->cpus;
    n->last_busy = busy;
    psi_update(&n->cpu_some, busy * busy * busy, S);
    psi_update(&n->io_some, DD_MIN(1.0, 0.8 * r_max + iow_sum), S);
    psi_update(&n->io_full, 0.6 * DD_MIN(1.0, 0.8 * r_max + iow_sum), S);
    target = (busy + iow_sum) * n->cpus;
    n->load1 = n->load1 * a1 + target * (1.0 - a1);
    n->load5 = n->load5 * a5 + target * (1.0 - a5);
    n->load15 = n->load15 * a15 + target * (1.0 - a15);
    n->ctxt += (uint64_t)(S * 2000.0 * n->cpus) + blocks / 4u;
    n->intr += (uint64_t)(S * 1000.0 * n->cpus) + blocks / 8u;
    n->processes += 3;
    n->uptime += S;
    /* the root disk: a trickle of logging */
    {
        uint64_t w = take(S * 0.2, &n->root_carry);
        disk_add_write(&n->root, w, w, w * 16u, (double)w * 0.8);
        n->root.io_ms += (double)w * 0.8;
        n->root.weighted_ms += (double)w * 0.8;
    }
}

void sim_step(struct sim *s)
{
    const double S = s->seconds;
    double L, demand_total = 0, cap, g = 1, vdo_seconds = 0, r_max = 0;
    double wreq[DD_VDO_SIM_MAX_VOLUMES], rreq[DD_VDO_SIM_MAX_VOLUMES];
    double demand[DD_VDO_SIM_MAX_VOLUMES], fv[DD_VDO_SIM_MAX_VOLUMES];
    uint64_t blocks = 0;

    /* this interval's keys */
    for (size_t i = 0; i < s->n_vol; i++) {
        size_t cursor = s->next_phase;
        advance(s->w, i, s->interval, &cursor, &s->vol[i].p);
        if (i + 1 == s->n_vol)
            s->next_phase = cursor;
    }
    L = 0;
    for (size_t i = 0; i < s->n_vol; i++)
        L += s->vol[i].p.cpu_load;
    L = DD_MIN(L, DD_VDO_SIM_LOAD_MAX);

    /* requested work and the CPU it needs */
    for (size_t i = 0; i < s->n_vol; i++) {
        struct sim_volume *v = &s->vol[i];
        struct dd_vdo_sim_point pt = point_of(v, L);
        double t[TERM_COUNT], most;
        double ew = dd_vdo_sim_noise(s->seed, (uint32_t)i, s->interval, DD_VDO_SIM_NOISE_RATE_W);
        double er = dd_vdo_sim_noise(s->seed, (uint32_t)i, s->interval, DD_VDO_SIM_NOISE_RATE_R);
        wreq[i] = v->p.write_mbps * BLOCKS_PER_MB * S * (1.0 + DD_VDO_SIM_NOISE_RATE_BOUND * ew);
        rreq[i] = v->p.read_mbps * BLOCKS_PER_MB * S * (1.0 + DD_VDO_SIM_NOISE_RATE_BOUND * er);
        terms_of(&pt, t);
        demand[i] = ((t[TERM_BASE] + t[TERM_INDEX] + t[TERM_DEDUPE] + t[TERM_COMPRESS]) * wreq[i] +
                     t[TERM_READ] * rreq[i]) /
                    BLOCKS_PER_GIB * (1.0 + DD_VDO_SIM_NOISE_CPU_BOUND);
        most = busiest_thread(t, wreq[i] / BLOCKS_PER_GIB, rreq[i] / BLOCKS_PER_GIB) *
               (1.0 + DD_VDO_SIM_NOISE_CPU_BOUND);
        fv[i] = most > 0.95 * S ? 0.95 * S / most : 1.0;
        demand_total += fv[i] * demand[i];
    }
    cap = 0.9 * (double)s->node.cpus * S * (1.0 - L);
    if (demand_total > cap)
        g = cap / demand_total;

    for (size_t i = 0; i < s->n_vol; i++) {
        struct sim_volume *v = &s->vol[i];
        uint64_t W = take(wreq[i] * fv[i] * g, &v->carry[C_W]);
        uint64_t R = take(rreq[i] * fv[i] * g, &v->carry[C_R]);
        vdo_seconds += volume_step(s, i, W, R, L);
        r_max = DD_MAX(r_max, v->last_busy);
        blocks += W + R;
    }
    node_step(s, L, vdo_seconds, r_max, blocks);
    s->interval++;
}
