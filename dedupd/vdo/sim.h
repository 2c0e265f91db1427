/*
 * The VDO stats simulator (issue 3): from a workload description it writes a
 * replay directory of mutually consistent dm-vdo snapshots and a fake /proc
 * per snapshot, for the daemon, model and placement tests (fixture replay,
 * see source.h). Nothing here needs device-mapper.
 *
 * ---- Workload JSON ----
 *
 *   {"node": {"cpus": 2},
 *    "volumes": [{"name": "v1", "write_mbps": 200, "read_mbps": 400,
 *                 "duplicate_share": 0.5, "zero_share": 0.05,
 *                 "compressible_share": 0.3, "index_entries": 50000000,
 *                 "stored_gib": 300, "cpu_load": 0.25, "compression": true}],
 *    "phases": [{"at_interval": 100, "volumes": {"v1": {"cpu_load": 0.8}}}]}
 *
 * Top level: "volumes" (required, 1..DD_VDO_SIM_MAX_VOLUMES), "phases",
 * "node". Per volume ("name" required, the rest optional, default in []):
 *   name                1-63 of A-Z a-z 0-9 . _ + -, not starting with '.',
 *                       not "proc" or "replay.json" (they name replay files)
 *   write_mbps [0]      logical writes, MB/s (MB = 10^6 bytes, as
 *                       dd_vdo_rates), 0..100000
 *   read_mbps [0]       logical reads, MB/s, 0..100000
 *   duplicate_share [0] share of written blocks that dedupe (UDS advice valid)
 *   zero_share [0]      share of written blocks that are all zeros;
 *                       duplicate_share + zero_share <= 1
 *   compressible_share [0]  share of the NEW blocks (neither zero nor
 *                       duplicate) that compress; packed only with compression
 *   compression [false] VDO compression on (status "online")
 *   cpu_load [0]        non-VDO CPU share this volume's users put on the
 *                       node, 0..0.95; they add up (node load below)
 *   index_entries [0]   UDS records at the start, 0..2^40; grows by one per
 *                       new block written, up to the index capacity
 *   stored_gib [0]      logical data on the volume at the start (GiB), 0..2^22
 *   physical_gib [auto] backing size; auto = the stored data takes at most
 *                       half the slabs, and the run's writes all fit
 *   logical_gib [auto]  logical size; auto = 1.5 x stored + the run's
 *                       writes, at least the physical size
 *   index_memory_gb [auto]  0.25, 0.5, 0.75 or 1..1024; auto = the smallest
 *                       that holds 1.25 x index_entries
 *   sparse_index [false]  a sparse index holds 10x the records
 *   fragments_per_block [4]  compressed fragments per packed block, 2..14
 * "node": {"cpus": 1..1024 [2]}. Each phase: "at_interval" (required, 0-based
 * interval from which it applies; phases in non-decreasing order) and
 * "volumes": {name: {key: value}} overriding write_mbps, read_mbps,
 * duplicate_share, zero_share, compressible_share, cpu_load or compression
 * from that interval on (the sizes are fixed when the volume is made).
 * Unknown keys, wrong types and out-of-range values are errors whose message
 * names the key and the volume (or phase); JSON syntax errors give line and
 * column. Duplicate keys are errors.
 *
 * ---- Output ----
 *
 * N intervals give N + 1 snapshots: snapshot 1 is the state at the start,
 * snapshot k + 2 the state after interval k (k = 0..N-1). For N >= 1:
 *   OUT/replay.json              {"interval_seconds": S}
 *   OUT/<volume>/0001/{stats,status,table,config}, 0002/, ...
 *   OUT/proc/0001/, 0002/, ...   each a /proc root
 * For N = 0 (one snapshot): OUT/<volume>/{stats,...} and OUT/proc/.
 * The files hold what dmsetup prints, byte for byte in the layout of the real
 * dm-vdo 6.12 captures (reference/vdo/real-6.12, no '#' lines):
 *   stats   `dmsetup message V 0 stats`: the version-36 reply, 156 leaves
 *   status  `dmsetup status V`: "0 <sectors> vdo /dev/vdb normal - online
 *           offline <used> <total>" (compression online/offline)
 *   table   `dmsetup table V`: "0 <sectors> vdo V4 /dev/vdb <physical> 4096
 *           32768 16380" (a bare table, kernel defaults)
 *   config  `dmsetup message V 0 config`
 * Volume i (workload order) is dm-vdo instance i, dm-i (253:i) on /dev/vdX
 * (virtio disk i + 1, 254:16(i+1); vda is the root disk). Each /proc root:
 *   <pid>/stat, <pid>/comm  the 13 threads of a bare-table volume,
 *       vdo<i>:{reqQ bioQ0 bioQ1 bioQ2 bioQ3 ackQ cpuQ callbackW dedupeQ
 *       reader reader indexW writer}, pids 301 + 40 i + t, kernel threads
 *       (ppid 2, flags 2129984, utime 0), stime = cumulative CPU, CLK_TCK 100
 *   diskstats   20 fields: vda, each vdX, each dm-i
 *   stat        cpu and cpuN lines (USER_HZ), intr, ctxt, btime, ...
 *   pressure/cpu, pressure/io, pressure/memory   some/full avg10/60/300 total
 *   uptime, loadavg
 * Counter invariants, every volume, every snapshot: counters never decrease;
 * logicalBlocksUsed >= dataBlocksUsed; dataBlocksUsed + overheadBlocksUsed
 * <= physicalBlocks (status used/total agree); dedupeAdviceValid <=
 * biosIn.write; packer counters move only in intervals with compression on
 * (the packer is flushed at the end of the last such interval before a phase
 * turns it off, as VDO does); mode normal. At snapshot 1 the counters are
 * those of a volume just started (as the real set0: biosIn.read 96 from
 * probing, a few metadata bios, maxVIOs 32, the rest 0) and the gauges come
 * from stored_gib and index_entries.
 *
 * ---- The model (what tests and learned models can check) ----
 *
 * Per interval k, with the volume's keys in effect in k (after phases):
 *   L      node load = min(0.95, sum over volumes of cpu_load)
 *   E      index.entriesIndexed at the start of the interval (the previous
 *          snapshot), u = duplicate_share, z = zero_share,
 *          s = compressible_share, c = 1 if compression else 0
 *   f(L)   = 1 / max(0.05, 1 - L)
 *
 * Cost: VDO thread CPU seconds per GiB (2^30 bytes) written
 *   write_cost = f(L) * (A + B (1 - z) log2(max(E, 2)) + C u + D c s (1 - z - u))
 *   read_cost  = f(L) * R                   (per GiB read)
 *   A = 0.35, B = 0.045, C = 0.90, D = 1.60, R = 0.12 (DD_VDO_SIM_COST_*)
 * The interval's thread seconds are
 *   T = (write_cost * GiB_w + read_cost * GiB_r) * (1 + 0.05 e_cpu)
 * with GiB_w = delta(biosIn.write) * 4096 / 2^30, GiB_r likewise from
 * biosIn.read. T is spread over the 13 threads by fixed shares per term
 * (A: reqQ .45, bioQ0-3 .05 each, ackQ .10, cpuQ .15, callbackW .10;
 *  B: cpuQ .30, callbackW .05, dedupeQ .25, indexW .35, writer .05;
 *  C: reqQ .30, cpuQ .20, callbackW .20, dedupeQ .30; D: reqQ .15, cpuQ .85;
 *  R: reqQ .40, bioQ0-3 .10 each, ackQ .10, cpuQ .10; the readers idle);
 * each thread's stime is floor(100 x its cumulative seconds), so the observed
 * sum of stime deltas / 100 is within 13 x 0.01 s of T.
 *
 * Latency: dm-i's average write latency over the interval,
 * delta(write ticks) / delta(writes completed) in /proc/diskstats, is
 *   write_latency_ms = (0.20 + 0.015 (1 - z) log2(max(E, 2)) + 0.90 L / (1 - L)
 *                       + 0.50 r / (1 - r)) * (1 + 0.05 e_lat)
 *   r = min(0.95, (W_mbps (1 - z - u) + R_mbps) / 1500)  (backing device busy)
 * where W_mbps, R_mbps are the achieved rates (delta(biosIn.write/read) x
 * 4096 / 10^6 / S). Writes completed on dm-i count data writes and empty
 * flushes (as the real dm-0 line does), each at that latency. Reads:
 *   read_latency_ms = 0.10 + 0.30 L / (1 - L) + 0.50 r / (1 - r)   (no noise)
 *
 * Throughput: the rates are (1 + 0.02 e_rate) x requested; if the volumes'
 * CPU demand at those rates (with the 5 % CPU noise on top) exceeds 0.9 x
 * cpus x S x (1 - L), or one thread would need more than 0.95 x S, they are
 * scaled down to fit (VDO throughput falls as other load takes the CPU).
 * Block counts are whole; fractions carry to the next interval.
 *
 * Space: writes go to unmapped logical blocks first (block map pages grow,
 * in the overhead); past logicalBlocks they overwrite, releasing data blocks
 * in proportion. New blocks that find no free block (nor a block map page)
 * fail and count in errors.noSpaceErrorCount. Zero blocks take no data
 * block; duplicates add to hashLock.dedupeAdviceValid and index.postsFound;
 * every new block to index.postsNotFound and entriesIndexed (past the
 * index's capacity, entriesDiscarded); compressible new blocks become packer
 * fragments, fragments_per_block to a block.
 *
 * Node: each CPU's non-VDO busy share is L (1 + 0.02 e_load) (clipped so that
 * no CPU is over 100 % busy), split user 85 %, system 10 %, irq 2 %, softirq
 * 3 %; VDO thread time is added to system. The /proc/stat busy share over an
 * interval is therefore L (1 +- 0.02) + T_total / (cpus S). iowait share =
 * 0.3 r_max (1 - busy), r_max the largest r; PSI: cpu some = busy^3 (full 0),
 * io some = min(1, 0.8 r_max + iowait share), io full = 0.6 io some, memory 0;
 * avgN are exponential averages over N seconds, total in microseconds.
 *
 * Noise: e_X = dd_vdo_sim_noise(seed, volume, interval, DD_VDO_SIM_NOISE_X),
 * uniform in [-1, 1), a pure function of its arguments (splitmix64), so a
 * run is a pure function of (workload, intervals, S, seed) and a phase on one
 * volume does not change the noise of another.
 */
#ifndef DD_VDO_SIM_H
#define DD_VDO_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/parse.h"

/* ---- caps ---- */

/* Volumes in one workload: each is a dm-vdo instance with 13 threads and a
 * few hundred MiB of kernel memory; a node with more is not one we model. */
#define DD_VDO_SIM_MAX_VOLUMES 64u

/* Volume name, NUL included: dm names can be 127 bytes, but ours become
 * directory names and must stay readable in messages. */
#define DD_VDO_SIM_NAME_MAX 64u

/* Phases in one workload: one per interval is already more than any test
 * needs. */
#define DD_VDO_SIM_MAX_PHASES 10000u

/* Intervals in one run: snapshots are numbered in 4 digits (0001..9999). */
#define DD_VDO_SIM_MAX_INTERVALS 9998u

/* Workload text: a few hundred bytes per volume and phase. */
#define DD_VDO_SIM_MAX_WORKLOAD_BYTES (1u << 20)

/* ---- cost and latency constants (see the model above) ---- */

#define DD_VDO_SIM_COST_A       0.35  /* s/GiB: bio handling, block map, journal */
#define DD_VDO_SIM_COST_B       0.045 /* s/GiB per doubling of the index: hash + UDS */
#define DD_VDO_SIM_COST_C       0.90  /* s/GiB at 100 % duplicates: hash locks, verify */
#define DD_VDO_SIM_COST_D       1.60  /* s/GiB of new compressible data: LZ4 + packer */
#define DD_VDO_SIM_COST_R       0.12  /* s/GiB read */
#define DD_VDO_SIM_LOAD_MAX     0.95
#define DD_VDO_SIM_BACKING_MBPS 1500.0

#define DD_VDO_SIM_NOISE_CPU_BOUND  0.05 /* thread seconds x (1 +- this) */
#define DD_VDO_SIM_NOISE_LAT_BOUND  0.05 /* write latency x (1 +- this) */
#define DD_VDO_SIM_NOISE_RATE_BOUND 0.02 /* achieved rates x (1 +- this) */
#define DD_VDO_SIM_NOISE_LOAD_BOUND 0.02 /* per-CPU background load x (1 +- this) */

/* Noise channels for dd_vdo_sim_noise(). The load channel of CPU c is
 * DD_VDO_SIM_NOISE_LOAD + c, with volume = DD_VDO_SIM_NODE. */
enum dd_vdo_sim_noise_channel {
    DD_VDO_SIM_NOISE_CPU = 1,
    DD_VDO_SIM_NOISE_LAT = 2,
    DD_VDO_SIM_NOISE_RATE_W = 3,
    DD_VDO_SIM_NOISE_RATE_R = 4,
    DD_VDO_SIM_NOISE_LOAD = 16,
};
#define DD_VDO_SIM_NODE 0xffffffffu

/* ---- workload ---- */

/* The keys a phase may change. */
struct dd_vdo_volume_params {
    double write_mbps, read_mbps; /* MB/s, 10^6 bytes */
    double duplicate_share, zero_share, compressible_share;
    double cpu_load;
    bool compression;
};

/* Bits of dd_vdo_phase_override.set, one per key of dd_vdo_volume_params. */
enum {
    DD_VDO_SIM_SET_WRITE = 1u << 0,
    DD_VDO_SIM_SET_READ = 1u << 1,
    DD_VDO_SIM_SET_DUPLICATE = 1u << 2,
    DD_VDO_SIM_SET_ZERO = 1u << 3,
    DD_VDO_SIM_SET_COMPRESSIBLE = 1u << 4,
    DD_VDO_SIM_SET_CPU_LOAD = 1u << 5,
    DD_VDO_SIM_SET_COMPRESSION = 1u << 6,
};

struct dd_vdo_volume_spec {
    char name[DD_VDO_SIM_NAME_MAX];
    struct dd_vdo_volume_params p; /* in effect from interval 0 */
    uint64_t index_entries;
    double stored_gib;
    double physical_gib;    /* 0: sized for the run */
    double logical_gib;     /* 0: sized for the run */
    double index_memory_gb; /* 0: sized from index_entries */
    bool sparse_index;
    unsigned fragments_per_block;
};

struct dd_vdo_phase_override {
    size_t volume; /* index into dd_vdo_workload.volumes */
    unsigned set;  /* DD_VDO_SIM_SET_* bits: which fields of p apply */
    struct dd_vdo_volume_params p;
};

struct dd_vdo_phase {
    unsigned at_interval;
    struct dd_vdo_phase_override *overrides; /* owned */
    size_t n_overrides;
};

struct dd_vdo_workload {
    unsigned cpus;
    struct dd_vdo_volume_spec *volumes; /* owned */
    size_t n_volumes;
    struct dd_vdo_phase *phases; /* owned; at_interval non-decreasing */
    size_t n_phases;
};

/*
 * Parses and checks a workload (len bytes of JSON, no NUL needed). On success
 * *ret owns the result (release it with dd_vdo_workload_release); on failure
 * *ret is untouched and err (may be NULL) says why: line and column for JSON
 * syntax, 0/0 with a message naming key and volume or phase otherwise.
 * Returns 0, DD_E_PARSE (syntax, unknown key, wrong type), DD_E_RANGE (a value
 * out of range), DD_E_TOOBIG (past a cap above) or -ENOMEM.
 */
int dd_vdo_sim_load_workload(const char *json_text, size_t len, struct dd_vdo_workload *ret,
                             struct dd_parse_error *err);

/* Reads path (at most DD_VDO_SIM_MAX_WORKLOAD_BYTES) and loads it as above;
 * I/O errors are -errno with the path in err. */
int dd_vdo_sim_load_workload_file(const char *path, struct dd_vdo_workload *ret,
                                  struct dd_parse_error *err);

/* Frees what w owns and zeroes it; accepts NULL and a zeroed workload. */
void dd_vdo_workload_release(struct dd_vdo_workload *w);

/* The keys of volume v in effect during interval k (phases applied).
 * Returns 0 or -EINVAL (v out of range). */
int dd_vdo_sim_params_at(const struct dd_vdo_workload *w, size_t v, unsigned k,
                         struct dd_vdo_volume_params *ret);

/* L of interval k: min(DD_VDO_SIM_LOAD_MAX, sum of the volumes' cpu_load). */
double dd_vdo_sim_node_load(const struct dd_vdo_workload *w, unsigned k);

/* ---- the cost and latency functions (pure; noise not included) ---- */

/* One volume in one interval: the inputs of the relations above. */
struct dd_vdo_sim_point {
    double index_entries;      /* E: entriesIndexed at the interval's start */
    double duplicate_share;    /* u */
    double zero_share;         /* z */
    double compressible_share; /* s */
    bool compression;          /* c */
    double node_load;          /* L (capped at DD_VDO_SIM_LOAD_MAX inside) */
    double write_mbps;         /* achieved, MB/s (latency only) */
    double read_mbps;          /* achieved, MB/s (latency only) */
};

/* VDO thread CPU seconds per GiB written. */
double dd_vdo_sim_write_cost(const struct dd_vdo_sim_point *pt);
/* VDO thread CPU seconds per GiB read. */
double dd_vdo_sim_read_cost(const struct dd_vdo_sim_point *pt);
/* write_cost x gib_written + read_cost x gib_read. */
double dd_vdo_sim_thread_seconds(const struct dd_vdo_sim_point *pt, double gib_written,
                                 double gib_read);
/* r: the backing device's busy share used by the latencies. */
double dd_vdo_sim_backing_busy(const struct dd_vdo_sim_point *pt);
/* Average write latency of the volume's dm device, ms, before noise. */
double dd_vdo_sim_write_latency_ms(const struct dd_vdo_sim_point *pt);
/* Average read latency of the volume's dm device, ms. */
double dd_vdo_sim_read_latency_ms(const struct dd_vdo_sim_point *pt);

/* e in [-1, 1): the noise of (seed, volume, interval, channel). */
double dd_vdo_sim_noise(uint64_t seed, uint32_t volume, uint32_t interval, uint32_t channel);

/* ---- the run ---- */

/*
 * Simulates `intervals` intervals of interval_seconds (0.01..86400) and
 * writes the replay directory out_dir: created (its parent must exist), or
 * an existing empty directory; anything else is refused (-EEXIST, or
 * -ENOTEMPTY for a non-empty directory). On an error after writing started
 * the partial tree is left for inspection. Returns 0, -EINVAL (bad
 * arguments), DD_E_RANGE (a volume does not fit its given sizes), -errno, or
 * -ENOMEM; err (may be NULL) names the file or the volume.
 */
int dd_vdo_sim_run(const struct dd_vdo_workload *w, unsigned intervals, double interval_seconds,
                   uint64_t seed, const char *out_dir, struct dd_parse_error *err);

#endif
