/*
 * CPU time of VDO volumes, from their kernel threads.
 *
 * dm-vdo runs one kernel thread per work queue of each volume, named
 * "<prefix><instance>:<queue>": prefix "vdo" for upstream dm-vdo, "kvdo" for
 * the out-of-tree module ("dm_vdo" and "dm-vdo" are accepted too). Each is its
 * own process (pid == tid) under kthreadd (ppid 2), with PF_KTHREAD set in its
 * flags. Real lines of /proc/<pid>/stat, dm-vdo on Linux 6.12 (target vdo
 * v9.1.0, CLK_TCK 100), tests/fixtures/vdo-real-6.12/set1-proc-pid-stat-vdo.txt:
 *
 *   301 (vdo0:reqQ) S 2 0 0 0 -1 2129984 0 0 0 0 0 876 0 0 20 0 1 0 1323 0 0
 *       18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 1 0 0 0 0 0 0 0
 *       0 0 0 0 0 0 0
 *   347 (vdo1:hashQ0) S 2 0 0 0 -1 2129984 0 0 0 0 0 104 0 0 20 0 1 0 2194 ...
 *
 * (one line each, wrapped here). The fields are those of proc_pid_stat(5):
 * 1 pid, 2 comm in parentheses, 3 state, 4 ppid, ... 9 flags, ... 14 utime,
 * 15 stime, ... 22 starttime (clock ticks after boot), 52 in all on 6.12.
 * A comm may hold spaces and ')' (any byte but NUL: prctl(PR_SET_NAME)), so
 * it is everything between the first '(' and the LAST ')'. Fields after it
 * are integers; some may be negative (tpgid -1, priority, nice).
 *
 * The queue's "kind" is its name without trailing digits (bioQ3 -> bioQ,
 * cpuQ0 -> cpuQ, cpuQ -> cpuQ). Kinds seen on 6.12: reqQ, bioQ, ackQ, cpuQ,
 * journalQ, packerQ, logQ, physQ, hashQ, dedupeQ and the index's callbackW,
 * indexW, reader (two threads of that same name) and writer. Which exist
 * depends on the volume's thread configuration: a bare table with kernel
 * defaults (hash, logical and physical 0: one thread does all three, vdo.rst)
 * has reqQ and no journalQ/packerQ/logQ/physQ/hashQ; lvm2's defaults give
 * the reverse. Kernel threads spend their time in stime;
 * utime is 0 in every real capture, and both are summed.
 *
 * Instance numbers are not volume names, and a reloaded volume comes back
 * under a new instance (dm-vdo hands them out in increasing order and wraps
 * around). The caller maps instance -> volume at every sample (the volume's
 * stats carry its instance) and asks dd_vdo_cpu_for_instance() for the current
 * one. The delta follows threads, not instances, so an instance's figure only
 * ever holds time of threads that carry that instance now.
 *
 * Purity: dd_proc_stat_parse, dd_vdo_thread_name_parse, dd_vdo_threads_add
 * and dd_vdo_cpu_delta do no I/O. dd_vdo_threads_scan reads a /proc tree (or a
 * fake one for tests) and dd_clock_ticks asks sysconf().
 *
 * Errors are negative: -errno, DD_E_PARSE (malformed), DD_E_RANGE (a number
 * out of range), DD_E_TOOBIG (past a cap below). Outputs named ret are
 * written only on success.
 */
#ifndef DD_VDO_THREADS_H
#define DD_VDO_THREADS_H

#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "common/parse.h"

/* task->flags bit of kernel threads (include/linux/sched.h, unchanged since
 * 2.6): only kernel threads are counted, so a user process that names itself
 * "vdo0:reqQ" cannot add to a volume's CPU. */
#define DD_PF_KTHREAD 0x00200000u

/* ---- one /proc/<pid>/stat line ---- */

struct dd_proc_pid_stat {
    uint32_t pid;                /* field 1, at most INT32_MAX */
    char comm[DD_PROC_COMM_MAX]; /* field 2, without the parentheses; no NUL inside */
    char state;                  /* field 3, a letter: R, S, D, I, Z, ... */
    uint32_t ppid;               /* field 4, at most INT32_MAX; 2 for kernel threads */
    uint64_t flags;              /* field 9, task->flags (DD_PF_KTHREAD) */
    uint64_t utime;              /* field 14, clock ticks in user mode */
    uint64_t stime;              /* field 15, clock ticks in kernel mode */
    uint64_t starttime;          /* field 22, clock ticks after boot when it started */
};

/*
 * Parses one /proc/<pid>/stat text of len bytes (not NUL-terminated; one
 * trailing '\n' allowed). At least 22 fields; every field after the comm must
 * be an integer (a leading '-' allowed where the value is not used), and those
 * kept must be non-negative and fit (leading zeros are accepted; the kernel
 * writes none). On failure *err (may be NULL) names the
 * field and its 1-based byte column, on line 1; *ret is untouched.
 * Returns 0, DD_E_PARSE, DD_E_RANGE or DD_E_TOOBIG (line or comm too long).
 */
int dd_proc_stat_parse(const char *text, size_t len, struct dd_proc_pid_stat *ret,
                       struct dd_parse_error *err);

/* ---- thread names ---- */

struct dd_vdo_thread_name {
    const char *prefix;           /* "vdo", "kvdo", "dm_vdo" or "dm-vdo": static, not owned */
    uint32_t instance;            /* dm-vdo's instance number */
    char queue[DD_PROC_COMM_MAX]; /* after the ':', e.g. "bioQ3"; never empty */
    char kind[DD_PROC_COMM_MAX];  /* queue without trailing digits, e.g. "bioQ"; a queue of
                                     digits only is its own kind, so never empty */
};

/*
 * Matches a comm (NUL-terminated) against ^(vdo|kvdo|dm_vdo|dm-vdo)([0-9]+):(.+)$.
 * Returns 0 for a VDO thread name; DD_E_PARSE when it is not one, DD_E_RANGE
 * when the instance does not fit in 32 bits and DD_E_TOOBIG when comm is
 * DD_PROC_COMM_MAX bytes or longer (neither is a VDO thread either).
 */
int dd_vdo_thread_name_parse(const char *comm, struct dd_vdo_thread_name *ret);

/* ---- the VDO threads of one moment ---- */

struct dd_vdo_thread {
    uint32_t pid;
    uint32_t instance;
    uint64_t starttime; /* with pid, the thread's identity: a pid may be reused */
    uint64_t ticks;     /* utime + stime, clock ticks */
    char queue[DD_PROC_COMM_MAX];
    char kind[DD_PROC_COMM_MAX];
};

/*
 * A set of VDO threads. Zero-initialise it (or take it from a scan) and free
 * it with dd_vdo_threads_release. After dd_vdo_threads_scan the threads are
 * sorted by pid and pids are unique; dd_vdo_threads_add only appends, and the
 * delta does not rely on either.
 */
struct dd_vdo_threads {
    struct dd_vdo_thread *threads; /* owned */
    size_t n, cap;                 /* n <= DD_VDO_MAX_THREADS */
    size_t skipped;                /* listed pids whose stat could not be read or parsed */
    size_t vanished;               /* listed pids gone (ENOENT/ESRCH) by the time stat was read */
};

/* Frees the threads and zeroes *t; accepts NULL. */
void dd_vdo_threads_release(struct dd_vdo_threads *t);

/*
 * Appends the thread of a parsed stat line when it is a VDO kernel thread
 * (PF_KTHREAD set and a VDO name). Returns 1 when added, 0 when the line is
 * some other process, DD_E_RANGE when utime + stime overflows, DD_E_TOOBIG
 * when t already holds DD_VDO_MAX_THREADS, or -ENOMEM (t unchanged on error).
 */
int dd_vdo_threads_add(struct dd_vdo_threads *t, const struct dd_proc_pid_stat *st);

/*
 * Reads proc_root/<digits>/stat for every all-digit entry of proc_root
 * ("/proc", or a fake tree in tests) and keeps the VDO kernel threads.
 * Kernel threads are processes, so thread-group leaders (the top level) are
 * all there is to list. An entry that vanished (ENOENT, ESRCH) counts in
 * vanished; one whose stat cannot be read, does not parse, or names another
 * pid counts in skipped; neither is an error. Other entries are ignored.
 * On success *ret (treated as uninitialised: release it first if it held a
 * scan) owns the result. Returns 0, or -errno when proc_root cannot be read,
 * -ENOMEM, -EMFILE/-ENFILE, DD_E_TOOBIG past DD_VDO_MAX_THREADS, -EINVAL for
 * NULL arguments; *ret is untouched then.
 */
int dd_vdo_threads_scan(const char *proc_root, struct dd_vdo_threads *ret);

/* ---- CPU seconds per instance between two scans ---- */

struct dd_vdo_kind_cpu {
    char kind[DD_PROC_COMM_MAX];
    size_t threads; /* threads of this kind in the current scan */
    uint64_t ticks; /* over the interval */
    double seconds; /* ticks / clk_tck */
};

struct dd_vdo_instance_cpu {
    uint32_t instance;
    size_t threads;                /* in the current scan */
    size_t new_threads;            /* of those, not in the previous scan */
    uint64_t ticks;                /* sum of kinds[].ticks (saturating) */
    double seconds;                /* ticks / clk_tck */
    struct dd_vdo_kind_cpu *kinds; /* sorted by kind (strcmp); points into the
                                      enclosing dd_vdo_cpu, which owns it */
    size_t n_kinds;
};

struct dd_vdo_cpu {
    struct dd_vdo_instance_cpu *instances; /* owned; sorted by instance, unique */
    size_t n;
    struct dd_vdo_kind_cpu *kinds; /* owned; every instance's kinds, in order */
    size_t n_kinds;
    long clk_tck;
};

/*
 * CPU time of each instance of cur between prev and cur (both borrowed).
 * A thread of cur is matched with prev by pid AND starttime: matched, it
 * contributes cur - prev ticks (0 if its count went backwards, which the
 * kernel never does); unmatched (new, or a reused pid) it contributes all
 * its ticks. That is right for threads started during the interval, as a
 * reloaded volume's are; a thread that existed before prev but was missing
 * from it (skipped) gets its whole life counted once. Threads only in prev
 * contribute nothing, so time of a vanished instance never lands on another
 * that took its number. Every instance with a thread in cur is listed, even
 * at 0. No I/O. Returns 0, -EINVAL (NULL scan, clk_tck <= 0) or -ENOMEM;
 * free *ret with dd_vdo_cpu_release.
 */
int dd_vdo_cpu_delta(const struct dd_vdo_threads *prev, const struct dd_vdo_threads *cur,
                     long clk_tck, struct dd_vdo_cpu *ret);

/* Frees and zeroes *cpu; accepts NULL. */
void dd_vdo_cpu_release(struct dd_vdo_cpu *cpu);

/* The figures of one instance, or NULL when cur had no thread of it (volume
 * gone, or its threads not visible from here: no host PID namespace). The
 * pointer is borrowed from cpu, valid until dd_vdo_cpu_release(cpu). */
const struct dd_vdo_instance_cpu *dd_vdo_cpu_for_instance(const struct dd_vdo_cpu *cpu,
                                                          uint32_t instance);

/* One kind of an instance (borrowed likewise), or NULL. */
const struct dd_vdo_kind_cpu *dd_vdo_instance_cpu_kind(const struct dd_vdo_instance_cpu *ic,
                                                       const char *kind);

/* ---- the clock ---- */

/* sysconf(_SC_CLK_TCK): the unit of utime, stime and starttime (100 on
 * Linux). Returns it, or a negative errno. The pure code above never calls it;
 * the caller passes the rate to dd_vdo_cpu_delta. */
long dd_clock_ticks(void);

#endif
