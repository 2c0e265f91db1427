/*
 * VDO volumes as operators know them: the pure parsers of what dm-vdo and
 * kvdo report, the figures derived from them, and vdostats-compatible output.
 * Nothing in this header does I/O; the sources that fetch the texts
 * (libdevmapper, kvdo sysfs, fixture replay) are in source.h.
 *
 * The `stats` message reply is a nested "key : value," text on one line.
 * A real one from dm-vdo on Linux 6.12 (target vdo v9.1.0), shortened:
 *
 *   { version : 36, dataBlocksUsed : 81920, overheadBlocksUsed : 791440, ...
 *     mode : normal, inRecoveryMode : 0, recoveryPercentage : 100,
 *     packer : { compressedFragmentsWritten : 0, ... }, ...
 *     journal : { diskFull : 0, ..., entries : { started : 164222, ... }, ... },
 *     ... index : { entriesIndexed : 81920, ..., entriesDiscarded : 0, }, }
 *
 * Version 36 (dm-vdo) has 156 leaf values in 26 groups; version 35 (kvdo
 * 8.x) adds releaseVersion and lacks index.entriesDiscarded. Names repeat
 * across groups (read, write, ... in every bios group), so values are
 * addressed by their dotted path ("biosIn.write"), never by position. The
 * `config` reply (newer kernels) uses the same syntax:
 *
 *   { version : 1, physicalSize : 12884901888, logicalSize : 21474836480,
 *     slabSize : 131072, index :  { memorySize : 0.25, isSparse : 0, }, }
 *
 * Unknown keys are kept, in order, and exported; keys the project relies on
 * are listed in dd_vdo_required_keys and reported by name when missing.
 */
#ifndef DD_VDO_VDO_H
#define DD_VDO_VDO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/parse.h"

/* ---- stats and config replies ---- */

struct dd_vdo_kv {
    char *key;   /* dotted path, e.g. "journal.entries.started" */
    char *value; /* the token as written, e.g. "164222", "normal", "0.25" */
};

struct dd_vdo_stats {
    struct dd_vdo_kv *kv; /* leaves in reply order; owned */
    size_t n, cap;
    unsigned groups; /* nested groups seen */
};

/* Parses a stats or config reply. On failure *ret is left empty and err names
 * the line and column. Returns 0, DD_E_PARSE, DD_E_TOOBIG or -ENOMEM. */
int dd_vdo_stats_parse(const char *text, size_t len, struct dd_vdo_stats *ret,
                       struct dd_parse_error *err);
void dd_vdo_stats_release(struct dd_vdo_stats *s);
/* The value at a dotted path, or NULL. */
const char *dd_vdo_stats_get(const struct dd_vdo_stats *s, const char *key);
/* 0, -ENOENT (absent) or DD_E_PARSE (not a decimal integer). */
int dd_vdo_stats_u64(const struct dd_vdo_stats *s, const char *key, uint64_t *ret_value);
/* Appends one leaf (copies both strings); for sources that build a reply
 * from parts, such as kvdo's sysfs files. */
int dd_vdo_stats_add(struct dd_vdo_stats *s, const char *key, const char *value);
/* Every leaf of a version-36 reply, in reply order (NULL-terminated). */
extern const char *const dd_vdo_v36_keys[];
/* Keys the derived figures and the cost model rely on (NULL-terminated). */
extern const char *const dd_vdo_required_keys[];
/* Writes the missing required keys, comma separated, into buf; returns how
 * many are missing. */
size_t dd_vdo_stats_missing(const struct dd_vdo_stats *s, char *buf, size_t len);

/* ---- the status line ---- */

/*
 * dm-vdo and kvdo print (after "<start> <length> vdo", which dmsetup adds,
 * and "<name>: " when several devices are listed):
 *   <device> <mode> <recovering|-> <index state> <compression> <used> <total>
 * e.g. "/dev/vdb normal - online offline 873360 3145728". mode is normal,
 * recovering or read-only; index state is one of closed, closing, error,
 * offline, online, opening, suspended, unknown.
 */
struct dd_vdo_status {
    char device[128];
    char mode[24];
    bool recovering;
    char index_state[16];
    bool compression; /* "online" */
    uint64_t used_blocks, total_blocks;
};

/* Accepts the params alone or a whole dmsetup status line. */
int dd_vdo_status_parse(const char *line, struct dd_vdo_status *ret, struct dd_parse_error *err);

/* ---- the table line ---- */

/*
 * V4 (dm-vdo, kvdo 8):
 *   V4 <storage device> <physical blocks> <minimum I/O: 512|4096>
 *      <block map cache blocks> <block map era> [<key> <value>]...
 * V2 (kvdo 6.2): V2 <device> <physical blocks> <minimum I/O>
 *      <block map cache blocks> <era> <mdRaid5Mode on|off>
 *      <write policy sync|async|auto> <pool name> [<key> <value>]...
 * Optional keys: deduplication on|off, compression on|off, maxDiscard N,
 * ack/bio/bioRotationInterval/cpu/hash/logical/physical N. dm-vdo's own
 * defaults apply when a key is absent (deduplication on, compression off).
 */
struct dd_vdo_table {
    unsigned version;         /* 2 or 4 */
    uint64_t logical_sectors; /* from a whole dmsetup line; 0 if not given */
    char device[128];
    uint64_t physical_blocks;
    unsigned minimum_io;
    uint64_t block_map_cache_blocks;
    uint64_t block_map_era;
    bool deduplication, compression;
    uint64_t max_discard_blocks;
    unsigned threads_ack, threads_bio, bio_rotation, threads_cpu, threads_hash, threads_logical,
        threads_physical;
    char write_policy[8]; /* V2 only */
    char pool_name[64];   /* V2 only */
};

int dd_vdo_table_parse(const char *line, struct dd_vdo_table *ret, struct dd_parse_error *err);

/* ---- derived figures (lvm2's guards: no value outside normal mode unless
 * asked, no underflow, no division by zero) ---- */

struct dd_vdo_derived {
    bool normal;      /* mode is normal and not in recovery */
    bool in_recovery; /* inRecoveryMode */
    bool read_only;   /* mode "read-only" */
    uint64_t block_size;
    uint64_t size_kb, used_kb, available_kb; /* vdostats 1K-blocks */
    int used_percent;                        /* rounded, as vdostats Use% */
    int saving_percent;       /* truncated, as vdostats Space saving%; 0 when nothing written */
    double dedup_ratio;       /* logical used / data used; NaN when undefined */
    double compression_share; /* compressed fragments / data blocks; NaN when undefined */
    /* Share of the blocks VDO would need without the packer that the packer
     * saved: (fragments - compressed blocks) / (data blocks + that), 0..1;
     * NaN when nothing is stored. (compression_share can pass 1: a 4 KiB
     * block holds up to 14 fragments.) */
    double packer_savings;
    uint64_t index_entries;
    double index_fill;          /* entries / window entries of the configured index; NaN unknown */
    double write_amplification; /* vdostats' rounded ratio */
};

/* Fills *ret from one stats reply (config may be NULL: index fill is then
 * unknown). Returns 0; -ENOENT when a basic key is missing (name them with
 * dd_vdo_stats_missing); DD_E_RANGE when the values cannot be a VDO volume's
 * (a block size that is not a power of two in 512..1 MiB, sizes past 64 bits). */
int dd_vdo_derive(const struct dd_vdo_stats *stats, const struct dd_vdo_stats *config,
                  struct dd_vdo_derived *ret);

/* Per-interval rates from two samples dt seconds apart. A counter that went
 * backwards or a changed instance (the volume was reloaded) gives no rate, and
 * neither does a sample outside normal mode (not_normal): valid is false. */
struct dd_vdo_rates {
    bool valid;
    bool not_normal;
    double seconds;
    double bios_in_read, bios_in_write, bios_in_discard, bios_in_flush; /* per second */
    double bios_out_read, bios_out_write;                               /* per second */
    double write_mb_per_s; /* biosIn.write x 4 KiB / s (MB = 10^6 bytes) */
    double dedup_hit_rate; /* d(dedupeAdviceValid) / d(biosIn.write); NaN if no writes */
    double journal_blocks_per_s, block_map_pages_per_s; /* journal and block-map pressure */
    double read_mb_per_s;                               /* biosIn.read x 4 KiB / s */
    double blocks_written; /* d(biosIn.write): 4 KiB writes in the interval */
    /* The packer's savings over this interval, when it stored anything: the
     * share of the interval's blocks the packer saved, (d fragments - d
     * compressed blocks) / (d data blocks + that), 0..1; NaN when nothing
     * was stored or the packer counters are absent. The lifetime share
     * lags what new writes get (a real dm-vdo series saw 0.03-0.14 while
     * every new block was packed). */
    double packer_savings;
};

/* Writes an interval needs before its VDO CPU per GiB counts as the cost:
 * 4 MiB, about 40 clock ticks of CPU at the costs seen on real VDO (a
 * trickle written after the writer's fsync over one clock tick gave 61
 * CPU-s/GiB from 232 blocks in the VM series). */
#define DD_VDO_MIN_COST_BLOCKS 1024u

/* The cost target: VDO thread CPU-seconds per GiB written over the
 * interval; NaN when the rates are not valid or fewer than
 * DD_VDO_MIN_COST_BLOCKS were written. */
double dd_vdo_cost_per_gib(const struct dd_vdo_rates *r, double cpu_seconds);

int dd_vdo_rates(const struct dd_vdo_stats *prev, const struct dd_vdo_stats *cur, double dt,
                 struct dd_vdo_rates *ret);

/* ---- vdostats-compatible output ---- */

enum dd_vdostats_style {
    DD_VDOSTATS_DF,      /* default: 1k-blocks table */
    DD_VDOSTATS_HUMAN,   /* --human-readable (powers of 1024) */
    DD_VDOSTATS_SI,      /* --si (powers of 1000) */
    DD_VDOSTATS_VERBOSE, /* --verbose */
};

/* The df-style header for a device column of name_width (vdostats uses the
 * longest name, at least 6). */
void dd_vdostats_print_header(FILE *out, enum dd_vdostats_style style, int name_width);
/* One device, in the given style (verbose prints its own "name : " header). */
int dd_vdostats_print(FILE *out, enum dd_vdostats_style style, int name_width, const char *name,
                      const struct dd_vdo_stats *stats);

#endif
