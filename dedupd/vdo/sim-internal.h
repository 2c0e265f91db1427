/*
 * The simulator's own header (SQLite's btreeInt.h habit): the state stepped
 * by sim-model.c, printed by sim-format.c and driven by sim.c. Nothing here
 * does I/O.
 */
#ifndef DD_VDO_SIM_INTERNAL_H
#define DD_VDO_SIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dedupd/vdo/sim.h"

/* The threads of a bare-table volume in pid order (real-6.12 set1). */
#define SIM_THREADS 13u

/* Work terms of the cost function, each spread over the threads by its own
 * shares (sim-model.c). */
enum sim_term { TERM_BASE, TERM_INDEX, TERM_DEDUPE, TERM_COMPRESS, TERM_READ, TERM_COUNT };

struct sim_thread_info {
    const char *queue;
    char state; /* S, or I for the idle index threads */
    double share[TERM_COUNT];
};
extern const struct sim_thread_info sim_threads[SIM_THREADS];

/* One bios group of the stats reply. */
struct sim_bio {
    uint64_t read, write, empty_flush, discard, flush, fua;
};

/* Every leaf of the version-36 stats reply (mode is always "normal"). */
struct sim_stats {
    uint64_t version, data_blocks_used, overhead_blocks_used, logical_blocks_used, physical_blocks,
        logical_blocks, block_map_cache_size, block_size, complete_recoveries, read_only_recoveries,
        in_recovery_mode, recovery_percentage;
    uint64_t packer_fragments_written, packer_blocks_written, packer_fragments_in_packer;
    uint64_t slab_count, slabs_opened, slabs_reopened;
    uint64_t journal_disk_full, journal_slab_commits, journal_entries_started,
        journal_entries_written, journal_entries_committed, journal_blocks_started,
        journal_blocks_written, journal_blocks_committed;
    uint64_t sj_disk_full, sj_flush, sj_blocked, sj_blocks_written, sj_tail_busy;
    uint64_t summary_blocks_written;
    uint64_t refcounts_blocks_written;
    uint64_t bm_dirty, bm_clean, bm_free, bm_failed_pages, bm_incoming, bm_outgoing,
        bm_cache_pressure, bm_read_count, bm_write_count, bm_failed_reads, bm_failed_writes,
        bm_reclaimed, bm_read_outgoing, bm_found_in_cache, bm_discard_required, bm_wait_for_page,
        bm_fetch_required, bm_pages_loaded, bm_pages_saved, bm_flush_count;
    uint64_t advice_valid, advice_stale, concurrent_data_matches, concurrent_hash_collisions,
        curr_dedupe_queries;
    uint64_t err_invalid_advice, err_no_space, err_read_only;
    uint64_t instance, current_vios, max_vios, advice_timeouts, flush_out, logical_block_size;
    struct sim_bio bios_in, bios_in_partial, bios_out, bios_meta, bios_journal, bios_page_cache,
        bios_out_completed, bios_meta_completed, bios_journal_completed, bios_page_cache_completed,
        bios_acknowledged, bios_acknowledged_partial, bios_in_progress;
    uint64_t memory_bytes_used, memory_peak_bytes_used;
    uint64_t index_entries, index_posts_found, index_posts_not_found, index_queries_found,
        index_queries_not_found, index_updates_found, index_updates_not_found,
        index_entries_discarded;
};

/* One line of /proc/diskstats; times accumulate exactly and print floored. */
struct sim_disk {
    unsigned major, minor;
    char name[16];
    uint64_t reads, reads_merged, sectors_read;
    double read_ms;
    uint64_t writes, writes_merged, sectors_written;
    double write_ms;
    double io_ms, weighted_ms;
    uint64_t flushes;
    double flush_ms;
};

/* Fixed at creation. */
struct sim_geometry {
    uint64_t physical_blocks, logical_blocks;
    uint64_t slab_blocks, slab_count, slab_overhead; /* per slab: ref counts + slab journal */
    uint64_t index_disk_blocks;
    uint64_t data_capacity; /* slab_count x (slab_blocks - slab_overhead) */
    uint64_t index_capacity;
    double index_memory_gb;
    bool sparse;
};

struct sim_volume {
    const struct dd_vdo_volume_spec *spec; /* borrowed from the workload */
    unsigned instance;
    struct sim_geometry geo;
    struct dd_vdo_volume_params p; /* in effect for the current interval */
    struct sim_stats st;
    double carry[16];    /* fractional block counts carried on */
    uint64_t cum_allocs; /* data blocks ever allocated */
    uint64_t cum_journal_entries;
    uint64_t era;                    /* block map eras passed */
    double thread_s[SIM_THREADS];    /* cumulative CPU seconds */
    uint64_t starttime[SIM_THREADS]; /* clock ticks after boot */
    struct sim_disk dm, backing;
    double last_busy; /* r of the last interval, for the node's iowait and PSI */
};

struct sim_cpu {
    double user, nice, system, idle, iowait, irq, softirq, steal; /* seconds */
};

struct sim_psi {
    double avg10, avg60, avg300; /* share 0..1 */
    double total_us;
};

struct sim_node {
    unsigned cpus;
    double uptime, boot_time;
    struct sim_cpu *cpu; /* cpus entries */
    struct sim_psi cpu_some, io_some, io_full;
    double load1, load5, load15;
    double last_busy;
    uint64_t ctxt, intr, processes;
    struct sim_disk root;
    double root_carry;
};

struct sim {
    const struct dd_vdo_workload *w;
    uint64_t seed;
    double seconds; /* per interval */
    unsigned intervals;
    struct sim_volume *vol; /* w->n_volumes entries */
    size_t n_vol;
    struct sim_node node;
    size_t next_phase; /* first phase not yet applied */
    unsigned interval; /* the next interval to run */
};

/* sim-model.c */
int sim_init(struct sim *s, const struct dd_vdo_workload *w, unsigned intervals, double seconds,
             uint64_t seed, struct dd_parse_error *err);
void sim_release(struct sim *s);
/* Runs interval s->interval and advances. */
void sim_step(struct sim *s);
uint64_t sim_overhead_blocks(const struct sim_geometry *g, uint64_t logical_used);
uint64_t sim_block_map_pages(uint64_t logical_used);

/* sim-format.c: a growable text buffer and the file texts. */
struct sim_buf {
    char *p;
    size_t len, cap;
    int error; /* first error (-ENOMEM, DD_E_TOOBIG); later appends are dropped */
};
void sim_buf_reset(struct sim_buf *b);
void sim_buf_free(struct sim_buf *b);
void sim_buf_printf(struct sim_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sim_format_stats(struct sim_buf *b, const struct sim_volume *v);
void sim_format_status(struct sim_buf *b, const struct sim_volume *v);
void sim_format_table(struct sim_buf *b, const struct sim_volume *v);
void sim_format_config(struct sim_buf *b, const struct sim_volume *v);
void sim_format_thread_stat(struct sim_buf *b, const struct sim_volume *v, unsigned t, unsigned pid,
                            unsigned cpus);
void sim_format_thread_comm(struct sim_buf *b, const struct sim_volume *v, unsigned t);
void sim_format_diskstats(struct sim_buf *b, const struct sim *s);
void sim_format_proc_stat(struct sim_buf *b, const struct sim *s);
void sim_format_psi(struct sim_buf *b, const struct sim_psi *some, const struct sim_psi *full);
void sim_format_uptime(struct sim_buf *b, const struct sim *s);
void sim_format_loadavg(struct sim_buf *b, const struct sim *s, unsigned snapshot);
unsigned sim_thread_pid(unsigned instance, unsigned t);
/* "vd" + letters of virtio disk index i (0 = vda), into buf. */
void sim_disk_name(unsigned index, char *buf, size_t len);

/* sim-workload.c */
void sim_apply_override(struct dd_vdo_volume_params *p, const struct dd_vdo_phase_override *o);

#endif
