/*
 * The node sampler's inputs: what the kernel says about the whole node (CPU,
 * run queue, pressure, memory, disks), about each Kubernetes pod (cgroup v2)
 * and, when NVIDIA's library is present, about each GPU.
 *
 * Each /proc and cgroup text has a pure parser here (text and length in,
 * struct out, no I/O; the text need not be NUL-terminated) and a thin reader
 * that takes a root prefix ("/proc", "/sys", or a fake tree in tests), reads
 * the file (at most DD_NODE_FILE_MAX bytes) and calls the parser. Parsers
 * name the failing line, 1-based byte column and field in *err (may be NULL).
 * The derived figures (CPU utilisation, disk rates) are pure too.
 *
 * Errors are negative: -errno from the readers, DD_E_PARSE (malformed),
 * DD_E_RANGE (a number that does not fit or is out of its domain),
 * DD_E_TOOBIG (past a cap below), -ENOMEM, -EINVAL (bad arguments). Outputs
 * named ret are written only on success; structs with a _release function
 * own their arrays and are released by it (which accepts NULL and zeroes).
 *
 * Units as the kernel writes them: /proc/stat in clock ticks (USER_HZ,
 * sysconf(_SC_CLK_TCK), 100 on Linux), meminfo in kB (KiB), diskstats in
 * 512-byte sectors and milliseconds, PSI totals and cpu.stat in
 * microseconds, memory.* and io.stat in bytes.
 *
 * Nothing here logs or sleeps; the sampling period and logging are the
 * caller's. NVML (nvml.c) is loaded at run time and never linked.
 */
#ifndef DD_NODE_NODE_H
#define DD_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/parse.h"

/* ==== caps (to move to common/limits.h) ==== */

/* Bytes read from one /proc or cgroup file. The largest is /proc/stat: on a
 * machine at NR_CPUS's top (8192, x86_64 CONFIG_NR_CPUS_RANGE_END) the cpu
 * lines take ~1 MiB, and the "intr" line holds one counter per interrupt
 * number, a few MiB more on machines with tens of thousands of MSI-X
 * vectors. 16 MiB is past any real file and still a bounded allocation. */
#define DD_NODE_FILE_MAX (16u * 1024u * 1024u)

/* cpuN lines kept from /proc/stat: one per online CPU, and NR_CPUS is at
 * most 8192 (x86_64 with MAXSMP, powerpc; arm64 allows 4096). */
#define DD_NODE_MAX_CPUS 8192u

/* Lines of /proc/diskstats kept: each partition, loop and dm device has
 * one; a large storage node has a few thousand. Past this it is not a real
 * diskstats. ~190 bytes each. */
#define DD_NODE_MAX_DISKS 65536u

/* A block device name, NUL included: the kernel's DISK_NAME_LEN is 32, and
 * partition names add a few characters ("nvme0n1p12"); twice that. */
#define DD_NODE_DISK_NAME_MAX 64u

/* Pods scanned on one node: kubelet's maxPods defaults to 110 (upstream's
 * large-cluster guidance) and distributions allow a few hundred; 16384 is
 * far past any of them. ~200 bytes plus the io.stat devices per pod. */
#define DD_NODE_MAX_PODS 16384u

/* Devices in one io.stat: one line per device the cgroup did I/O to. */
#define DD_NODE_MAX_IO_DEVICES 4096u

/* A pod UID as kept, NUL included. API server UIDs are RFC 4122 UUIDs (36
 * characters); static and mirror pods use a 32-character hash. Room for
 * both and some slack. */
#define DD_NODE_POD_UID_MAX 64u

/* GPUs reported by one NVML sample: servers hold at most 8 to 16; 64 is
 * past all of them. More are counted in n_total, not reported. */
#define DD_NODE_MAX_GPUS 64u

/* A GPU's name, NUL included: NVML_DEVICE_NAME_V2_BUFFER_SIZE (96). */
#define DD_NODE_GPU_NAME_MAX 96u

/* An "unavailable because" text (dlerror or nvmlErrorString), NUL included. */
#define DD_NODE_REASON_MAX 256u

/* ==== /proc/stat ==== */

/*
 * The "cpu" lines of /proc/stat (proc(5)), in clock ticks. Real, from a
 * 2-CPU VM on Linux 6.18 (tests/fixtures/node/proc-stat.txt):
 *
 *   cpu  265219 101338 132132 436252 3870 0 758 0 0 0
 *   cpu0 123851 46982 67065 230541 935 0 342 0 0 0
 *   cpu1 141368 54356 65067 205711 2934 0 416 0 0 0
 *   intr 1931277 0 0 0 ...
 *   ctxt 2229090
 *
 * The columns are user nice system idle iowait irq softirq steal guest
 * guest_nice. Kernels before 2.6.33 print fewer (2.6.0: 7, 2.6.11: 8,
 * 2.6.24: 9): at least 4 (user nice system idle) are required, missing ones
 * read as 0 and n_fields says how many there were; more than 10 is refused.
 * guest and guest_nice are already counted in user and nice. Offline CPUs
 * have no line, so cpu numbers may have gaps. Lines other than cpu* are not
 * checked; every cpu* line must parse.
 */
struct dd_cpu_times {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
    unsigned n_fields; /* columns present, 4..10 */
};

struct dd_cpu_line {
    uint32_t cpu; /* N of "cpuN" */
    struct dd_cpu_times t;
};

struct dd_cpu_stat {
    struct dd_cpu_times all;  /* the "cpu" line: every CPU together */
    struct dd_cpu_line *cpus; /* owned; the cpuN lines in file order */
    size_t n_cpus, cap;       /* n_cpus <= DD_NODE_MAX_CPUS */
};

/* Requires exactly one aggregate "cpu" line; cpuN numbers must increase
 * from line to line (the kernel lists online CPUs in order).
 * Returns 0, DD_E_PARSE, DD_E_RANGE, DD_E_TOOBIG or -ENOMEM; on failure *ret
 * is untouched. */
int dd_node_stat_parse(const char *text, size_t len, struct dd_cpu_stat *ret,
                       struct dd_parse_error *err);
void dd_cpu_stat_release(struct dd_cpu_stat *s);

/*
 * CPU use between two samples of one line (the aggregate or one CPU):
 *   busy  = user + nice + system + irq + softirq + steal
 *   total = busy + idle + iowait          (guest, guest_nice: inside user, nice)
 * each term as cur - prev, or 0 for a counter that went backwards (iowait
 * can on NO_HZ kernels, proc(5)). Seconds are
 * ticks / clk_tck. Excluding VDO: VDO's kernel threads ran vdo_seconds of
 * the busy time (dd_vdo_cpu_delta over the same interval), so
 *   util_excl_vdo = max(0, busy_seconds - vdo_seconds) / total_seconds
 * which is never negative even when the two samplings do not line up.
 * total_seconds is the capacity of the CPUs sampled (ncpus x wall time).
 */
struct dd_cpu_util {
    double busy_seconds, total_seconds;
    double vdo_seconds;   /* min(vdo_seconds given, busy_seconds) */
    bool valid;           /* total_seconds > 0; otherwise both fractions are 0 */
    double util;          /* busy / total, 0..1 */
    double util_excl_vdo; /* (busy - vdo) / total, 0..util */
};

/* Returns 0, or -EINVAL (NULL, clk_tck <= 0, vdo_seconds negative or not
 * finite). Pure. */
int dd_cpu_util(const struct dd_cpu_times *prev, const struct dd_cpu_times *cur, long clk_tck,
                double vdo_seconds, struct dd_cpu_util *ret);

/* ==== /proc/loadavg ==== */

/*
 * One line (proc(5)): "0.69 1.26 1.98 1/87 1914\n" — load averages over 1,
 * 5 and 15 minutes, runnable/total scheduling entities, the last pid
 * allocated. runnable counts the task reading the file, so the run queue
 * others see is runnable - 1.
 */
struct dd_loadavg {
    double load1, load5, load15;
    uint32_t runnable, total;
    uint32_t last_pid;
    uint32_t run_queue; /* runnable - 1 (the reader), 0 at least */
};

/* Returns 0, DD_E_PARSE or DD_E_RANGE; *ret untouched on failure. */
int dd_node_loadavg_parse(const char *text, size_t len, struct dd_loadavg *ret,
                          struct dd_parse_error *err);

/* ==== PSI: /proc/pressure/{cpu,io,memory} ==== */

/*
 * Pressure stall information (Documentation/accounting/psi.rst), real from
 * Linux 6.18 (tests/fixtures/node/proc-pressure-io.txt):
 *
 *   some avg10=0.00 avg60=0.12 avg300=0.17 total=31031982
 *   full avg10=0.00 avg60=0.07 avg300=0.09 total=26052998
 *
 * avgN are percentages (0..100) of wall time over N seconds; total is
 * cumulative stall time in microseconds. A "some" line is required; "full"
 * is optional (cpu has one since 5.13); each at most once, in any order.
 * The four keys must come first, in this order; key=value tokens after them
 * are ignored (room for the kernel to add some).
 */
struct dd_psi_line {
    bool present;
    double avg10, avg60, avg300;
    uint64_t total_us;
};

struct dd_psi {
    struct dd_psi_line some, full;
};

/* Returns 0, DD_E_PARSE or DD_E_RANGE; *ret untouched on failure. */
int dd_node_psi_parse(const char *text, size_t len, struct dd_psi *ret, struct dd_parse_error *err);

/* ==== /proc/meminfo ==== */

/*
 * "Key:   value kB" lines (proc(5)); a few have no unit (HugePages_Total).
 * Real, Linux 6.18 (tests/fixtures/node/proc-meminfo.txt):
 *
 *   MemTotal:       24683620 kB
 *   MemFree:        21372928 kB
 *   MemAvailable:   24157268 kB
 *
 * Every line must have that shape; unknown keys are skipped. MemTotal,
 * MemAvailable (3.14 and later), Cached, Dirty and Writeback are required
 * and must appear once; the others below are optional (0 when absent).
 */
struct dd_meminfo {
    uint64_t mem_total_kb, mem_free_kb, mem_available_kb;
    uint64_t buffers_kb, cached_kb, dirty_kb, writeback_kb;
    uint64_t swap_total_kb, swap_free_kb;
};

/* Returns 0, DD_E_PARSE or DD_E_RANGE; *ret untouched on failure. */
int dd_node_meminfo_parse(const char *text, size_t len, struct dd_meminfo *ret,
                          struct dd_parse_error *err);

/* ==== /proc/diskstats ==== */

/*
 * One line per block device (Documentation/admin-guide/iostats.rst): major,
 * minor, name, then 11 (before 4.18), 15 (4.18: discards) or 17 (5.5:
 * flushes) counters, so 14, 18 or 20 fields; columns are padded with
 * spaces. Real, dm-vdo on Linux 6.12 (tests/fixtures/node/set2-proc-diskstats-vdo.txt):
 *
 *    253       0 dm-0 131427 0 1051416 354404 278535 0 2228224 1032276 0 11924
 *        1650764 16384 0 131072 264084 0 0
 *
 * (one line, wrapped here). Sectors are 512 bytes whatever the device's
 * block size; times are milliseconds. Counters are unsigned long in the
 * kernel (they wrap at 2^32 on 32-bit kernels).
 */
struct dd_diskstat {
    uint32_t major, minor;
    char name[DD_NODE_DISK_NAME_MAX];
    unsigned n_fields; /* 14, 18 or 20 */
    uint64_t reads, reads_merged, sectors_read, read_ms;
    uint64_t writes, writes_merged, sectors_written, write_ms;
    uint64_t in_flight, io_ms, weighted_ms;
    uint64_t discards, discards_merged, sectors_discarded, discard_ms; /* 0 before 18 */
    uint64_t flushes, flush_ms;                                        /* 0 before 20 */
};

struct dd_diskstats {
    struct dd_diskstat *disks; /* owned; in file order */
    size_t n, cap;             /* n <= DD_NODE_MAX_DISKS */
};

/* Lines may differ in their field count. Duplicate names or major:minor
 * are refused. Returns 0, DD_E_PARSE, DD_E_RANGE, DD_E_TOOBIG or -ENOMEM. */
int dd_node_diskstats_parse(const char *text, size_t len, struct dd_diskstats *ret,
                            struct dd_parse_error *err);
void dd_diskstats_release(struct dd_diskstats *d);
/* A device by name ("dm-0") or by number, or NULL. Borrowed from d. */
const struct dd_diskstat *dd_diskstats_find_name(const struct dd_diskstats *d, const char *name);
const struct dd_diskstat *dd_diskstats_find_dev(const struct dd_diskstats *d, uint32_t major,
                                                uint32_t minor);

/*
 * One device between two samples taken interval_s seconds apart. MB is 10^6
 * bytes. Latency is Δ(read_ms)/Δ(reads), likewise for writes: the average
 * time per completed request, queueing included (iostat's r_await/w_await);
 * 0 with has_*_latency false when no request completed. util is
 * Δio_ms / interval, clamped to 0..1 (iostat's %util / 100). When any
 * counter went backwards (device recreated under the same name, or a 32-bit
 * wrap) reset is set and every rate is 0.
 */
struct dd_disk_rates {
    bool reset;
    uint64_t reads, writes; /* completed in the interval */
    double read_iops, write_iops;
    double read_mbps, write_mbps; /* 10^6 bytes per second */
    bool has_read_latency, has_write_latency;
    double read_latency_ms, write_latency_ms;
    double util; /* 0..1 */
};

/* Returns 0, -EINVAL (NULL, interval_s not finite and > 0, or prev and cur
 * not the same major:minor) or DD_E_RANGE (an interval so small a rate is not
 * finite). Pure. */
int dd_disk_rates(const struct dd_diskstat *prev, const struct dd_diskstat *cur, double interval_s,
                  struct dd_disk_rates *ret);

/* ==== cgroup v2 files of one pod ==== */

/*
 * cpu.stat: "key value" lines; usage_usec, user_usec and system_usec are
 * required (always there, cpu controller or not), others are skipped:
 *
 *   usage_usec 1043213
 *   user_usec 811020
 *   system_usec 232193
 *   nr_periods 0
 */
struct dd_cgroup_cpu {
    uint64_t usage_usec, user_usec, system_usec;
};

int dd_node_cgroup_cpu_parse(const char *text, size_t len, struct dd_cgroup_cpu *ret,
                             struct dd_parse_error *err);

/* memory.current, memory.peak: one decimal number of bytes and a newline. */
int dd_node_cgroup_u64_parse(const char *text, size_t len, uint64_t *ret,
                             struct dd_parse_error *err);

/*
 * memory.stat: "key value" lines in bytes (and event counts); inactive_file
 * is required (every cgroup v2 kernel has it), anon, file and active_file
 * are kept when present (0 otherwise), others are skipped. Real, Linux 6.x:
 *
 *   anon 10375168
 *   file 84701184
 *   kernel 1216512
 *   ...
 *   active_file 1921024
 *   inactive_file 82780160
 *
 * The kubelet's working set (what eviction and `kubectl top` use) is
 * memory.current - inactive_file, floored at 0: page cache a data loader
 * filled and has not touched again is reclaimable and not counted.
 */
struct dd_cgroup_memstat {
    uint64_t anon, file, active_file, inactive_file;
};

int dd_node_cgroup_memstat_parse(const char *text, size_t len, struct dd_cgroup_memstat *ret,
                                 struct dd_parse_error *err);

/*
 * io.stat: one line per device, "MAJ:MIN key=value ...":
 *
 *   253:0 rbytes=1048576 wbytes=4194304 rios=256 wios=1024 dbytes=0 dios=0
 *
 * rbytes, wbytes, rios and wios are required on each line; other keys
 * (dbytes, dios, and cost.* / latency stats when enabled) are skipped. An
 * empty file (no I/O yet) is zero devices.
 */
struct dd_cgroup_io_dev {
    uint32_t major, minor;
    uint64_t rbytes, wbytes, rios, wios;
};

struct dd_cgroup_io {
    struct dd_cgroup_io_dev *devs; /* owned; in file order */
    size_t n, cap;                 /* n <= DD_NODE_MAX_IO_DEVICES */
};

int dd_node_cgroup_io_parse(const char *text, size_t len, struct dd_cgroup_io *ret,
                            struct dd_parse_error *err);
void dd_cgroup_io_release(struct dd_cgroup_io *io);

/* ==== pods (reads a cgroup v2 tree) ==== */

/*
 * kubelet puts each pod in a cgroup named for its UID, under one of two
 * layouts (cgroupDriver):
 *   systemd:  kubepods.slice/kubepods-pod<UID_>.slice                 (Guaranteed)
 *             kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID_>.slice
 *             kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<UID_>.slice
 *   cgroupfs: kubepods/pod<UID>, kubepods/burstable/pod<UID>, kubepods/besteffort/pod<UID>
 * where UID_ is the UID with '-' written as '_' (systemd reserves '-' for
 * the hierarchy). Both are looked for under <sys_root>/fs/cgroup. UIDs are
 * reported with dashes; a UID must be 1..DD_NODE_POD_UID_MAX-1 characters
 * of [0-9a-zA-Z-] (as found: '_' only in the systemd form).
 */
enum dd_pod_qos { DD_POD_GUARANTEED, DD_POD_BURSTABLE, DD_POD_BESTEFFORT };

enum dd_cgroup_driver { DD_CGROUP_SYSTEMD, DD_CGROUP_CGROUPFS };

struct dd_pod {
    char uid[DD_NODE_POD_UID_MAX]; /* with dashes */
    enum dd_pod_qos qos;
    enum dd_cgroup_driver driver;
    bool has_memory_current, has_memory_peak, has_io; /* file present */
    struct dd_cgroup_cpu cpu;
    uint64_t memory_current, memory_peak; /* bytes; peak is 5.19 and later */
    struct dd_cgroup_io io;               /* owned by the pod */
    bool has_memory_stat;                 /* memory.stat present */
    struct dd_cgroup_memstat memory_stat;
};

/* A pod cgroup the scan skipped, and why: "memory.stat: line 3, column 15:
 * inactive_file: not a number" or "io.stat: Permission denied". */
struct dd_pod_skip {
    char uid[DD_NODE_POD_UID_MAX];
    char reason[DD_NODE_REASON_MAX];
};

struct dd_pods {
    struct dd_pod *pods; /* owned; sorted by uid, then driver */
    size_t n, cap;       /* n <= DD_NODE_MAX_PODS */
    size_t vanished;     /* pod cgroups removed while scanned */
    size_t skipped;      /* pod cgroups with a file unreadable or malformed */
    /* the skipped pods (owned, unsorted; n_skips == skipped): a pod skipped
     * this scan is still there, not gone */
    struct dd_pod_skip *skips;
    size_t n_skips, cap_skips;
};

/*
 * Scans <sys_root>/fs/cgroup ("/sys", or a fake tree) in both layouts. An
 * absent hierarchy (no kubepods.slice, no kubepods, no QoS directory) is no
 * pods, not an error; directories whose names are not pod cgroups are
 * ignored. cpu.stat is in every cgroup v2 directory, so its absence means
 * the pod went away (counted in vanished, like ENOENT/ENODEV on the
 * directory or a read); memory.current, memory.peak and io.stat absent
 * (controller not enabled, older kernel) clear has_*. A file unreadable
 * otherwise, or malformed, skips the pod (counted). Returns 0, -errno when a directory that exists
 * cannot be listed, -ENOMEM, -EMFILE/-ENFILE, DD_E_TOOBIG past
 * DD_NODE_MAX_PODS, -EINVAL; *ret untouched on failure.
 */
int dd_node_pods_scan(const char *sys_root, struct dd_pods *ret);
/* The same under a cgroup v2 mount given directly ("/sys/fs/cgroup", or
 * --cgroup-root): dd_node_pods_scan(S) is dd_node_pods_scan_root(S/fs/cgroup). */
int dd_node_pods_scan_root(const char *cgroup_root, struct dd_pods *ret);
void dd_pods_release(struct dd_pods *p);
/* The pod with that UID (with dashes), or NULL. Borrowed from p. */
const struct dd_pod *dd_pods_find(const struct dd_pods *p, const char *uid);

/* ==== pod usage over a pod's life (podcg.c; pure) ==== */

/*
 * The pod tracker turns successive scans into each pod's figures over its
 * whole life, and says when a pod's cgroup is gone (its outcome is then
 * final: what was last read is what there is, the cgroup's files went with
 * it). Per pod:
 *   cpu_seconds     usage_usec / 1e6 of the last read (counted since the
 *                   cgroup was made, so a tracker started late still has it)
 *   peak_cpu_cores  the largest  delta(usage_usec) / 1e6 / elapsed  between
 *                   two reads, elapsed being the sum of the dt given since
 *                   the pod's previous read (a scan that skipped it adds
 *                   its dt); NaN until two reads; a counter that went back
 *                   (a new cgroup of the same UID) starts over
 *   working set     memory.current - memory.stat inactive_file (0 floor), the
 *                   kubelet's figure; memory.current alone without
 *                   memory.stat; peak_working_set its largest read
 *   memory_peak     memory.peak as last read (5.19+; page cache included)
 *   read/write      io.stat rbytes, wbytes summed over devices, the largest
 *                   sum read (a device leaving the list does not lower it)
 * A pod missing from a good scan, and not in its skipped list, is gone. A
 * failed scan (the caller does not call update) changes nothing.
 */
struct dd_pod_usage {
    char uid[DD_NODE_POD_UID_MAX];
    enum dd_pod_qos qos;
    double first_seen, last_seen; /* wall seconds of the first and last read */
    unsigned reads;
    double cpu_seconds;
    double peak_cpu_cores; /* NaN: fewer than two reads */
    bool has_working_set;
    uint64_t working_set, peak_working_set; /* bytes: last and largest */
    bool has_memory_peak;
    uint64_t memory_peak;
    bool has_io;
    uint64_t read_bytes, write_bytes;
    /* the tracker's own */
    uint64_t last_usage_usec;
    double since_read; /* dt summed since the last read */
};

struct dd_pod_tracker;

int dd_pod_tracker_new(struct dd_pod_tracker **ret);
/* Accepts NULL; returns NULL. */
struct dd_pod_tracker *dd_pod_tracker_free(struct dd_pod_tracker *t);
/*
 * One good scan, taken dt seconds after the previous one (<= 0 or not
 * finite: no rates this time) at wall (Unix seconds). The pods whose
 * cgroup is gone come back in *ret_gone (a new array, dd_free; NULL when
 * none) and leave the tracker. Returns 0, -EINVAL or -ENOMEM (the tracker
 * is then as before).
 */
int dd_pod_tracker_update(struct dd_pod_tracker *t, const struct dd_pods *scan, double dt,
                          double wall, struct dd_pod_usage **ret_gone, size_t *ret_n_gone);
/* Pods tracked now. */
size_t dd_pod_tracker_count(const struct dd_pod_tracker *t);
/* A copy of one tracked pod; false when not tracked. */
bool dd_pod_tracker_get(const struct dd_pod_tracker *t, const char *uid, struct dd_pod_usage *ret);

/* ==== readers (I/O): <proc_root>/stat and so on ==== */

/* Each reads one file under proc_root ("/proc" or a fake tree) and parses
 * it. Returns the parser's codes, -errno from open/read (-ENOENT when the
 * file is absent), DD_E_TOOBIG past DD_NODE_FILE_MAX. err (may be NULL) is
 * set only for parse errors. */
int dd_node_read_stat(const char *proc_root, struct dd_cpu_stat *ret, struct dd_parse_error *err);
int dd_node_read_loadavg(const char *proc_root, struct dd_loadavg *ret, struct dd_parse_error *err);
int dd_node_read_meminfo(const char *proc_root, struct dd_meminfo *ret, struct dd_parse_error *err);
int dd_node_read_diskstats(const char *proc_root, struct dd_diskstats *ret,
                           struct dd_parse_error *err);

/* The three pressure files; each absent one (no /proc/pressure before 4.20,
 * CONFIG_PSI off, or "psi=0": the files exist but reads fail with
 * EOPNOTSUPP) is reported unavailable, which is not an error. */
struct dd_node_psi {
    bool cpu_available, io_available, memory_available;
    struct dd_psi cpu, io, memory; /* zero when unavailable */
};

/* Returns 0, a parse error (err says which file in its message), or -errno
 * for a failure other than absence. */
int dd_node_read_psi(const char *proc_root, struct dd_node_psi *ret, struct dd_parse_error *err);

/* Reads a whole file, at most max bytes, into a new NUL-terminated buffer
 * (freed with dd_free); for the readers above and tests. Returns 0, -errno,
 * DD_E_TOOBIG or -ENOMEM. */
int dd_node_read_file(const char *path, size_t max, char **ret_text, size_t *ret_len);

/* ==== GPUs (nvml.c; NVML loaded at run time) ==== */

struct dd_gpu {
    uint32_t index;
    char name[DD_NODE_GPU_NAME_MAX]; /* "" when NVML would not say */
    bool has_util, has_memory;
    uint32_t util_gpu_pct;              /* % of the last sample period a kernel ran */
    uint32_t util_memory_pct;           /* % of it device memory was read or written */
    uint64_t memory_used, memory_total; /* bytes */
};

struct dd_gpus {
    bool available;                  /* false: no library, no driver, no GPU */
    char reason[DD_NODE_REASON_MAX]; /* why not, when unavailable */
    uint32_t n;                      /* devices reported, <= DD_NODE_MAX_GPUS */
    uint32_t n_total;                /* devices NVML counted */
    struct dd_gpu gpus[DD_NODE_MAX_GPUS];
};

/* An NVML session: the library handle and nvmlInit_v2 done. Opaque. */
struct dd_nvml;

/*
 * dlopen()s lib_path (NULL: "libnvidia-ml.so.1"), resolves the functions and
 * calls nvmlInit_v2. A missing library, symbol, driver or failing init is
 * not an error: *ret is a session that reports unavailable with the reason.
 * Returns 0, or -ENOMEM / -EINVAL (ret NULL). Free with dd_nvml_free.
 */
int dd_nvml_open(const char *lib_path, struct dd_nvml **ret);
/* nvmlShutdown and dlclose; accepts NULL, returns NULL. */
struct dd_nvml *dd_nvml_free(struct dd_nvml *nvml);
/* True when the session can sample; *ret_reason (may be NULL) gets the
 * reason otherwise (borrowed from nvml). */
bool dd_nvml_available(const struct dd_nvml *nvml, const char **ret_reason);
/*
 * One sample of every device. Unavailable, or nvmlDeviceGetCount failing,
 * gives ret->available false with the reason; a device whose handle or
 * figures NVML will not give has has_* false. Returns 0 or -EINVAL.
 */
int dd_nvml_sample(struct dd_nvml *nvml, struct dd_gpus *ret);

#endif
