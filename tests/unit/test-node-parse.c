/*
 * dedupd/node: the pure parsers, table-driven (lvm2 vdo_t.c style): good
 * inputs with the exact struct expected, bad inputs with the exact code,
 * line, column and message, and the output left untouched. The real
 * captures in tests/fixtures/node are parsed as a tripwire. The derived
 * figures (CPU utilisation with and without VDO, disk rates between the two
 * real 6.12 diskstats captures) are checked against numbers worked out by
 * hand from the inputs, written here as literal arithmetic. Every
 * allocation of the growing parsers is failed in turn.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/node/node.h"
#include "helpers.h"

/* cmocka 1.1 has no double comparison: |a - b| <= eps, both shown. */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                             \
            fail_msg("%s = %.17g, want %s = %.17g", #a, a_, #b, b_);                               \
    } while (0)

/* ---- bad inputs: one table for every parser ---- */

enum parser { P_STAT, P_LOADAVG, P_PSI, P_MEMINFO, P_DISKSTATS, P_CG_CPU, P_CG_U64, P_CG_IO };

struct bad {
    enum parser p;
    const char *text;
    size_t len; /* 0: strlen(text) */
    int code;
    unsigned line, column;
    const char *message;
};

/* Runs one parser into a sentinel-filled output; on failure checks that the
 * output is untouched. Returns the parser's code. */
static int run_parser(enum parser p, const char *text, size_t len, struct dd_parse_error *err)
{
    union {
        struct dd_cpu_stat stat;
        struct dd_loadavg loadavg;
        struct dd_psi psi;
        struct dd_meminfo meminfo;
        struct dd_diskstats disks;
        struct dd_cgroup_cpu cg_cpu;
        uint64_t u64;
        struct dd_cgroup_io io;
    } out, sentinel;
    int r = -1;

    memset(&out, 0x5a, sizeof(out));
    sentinel = out;
    switch (p) {
    case P_STAT:
        r = dd_node_stat_parse(text, len, &out.stat, err);
        if (r == 0)
            dd_cpu_stat_release(&out.stat);
        break;
    case P_LOADAVG:
        r = dd_node_loadavg_parse(text, len, &out.loadavg, err);
        break;
    case P_PSI:
        r = dd_node_psi_parse(text, len, &out.psi, err);
        break;
    case P_MEMINFO:
        r = dd_node_meminfo_parse(text, len, &out.meminfo, err);
        break;
    case P_DISKSTATS:
        r = dd_node_diskstats_parse(text, len, &out.disks, err);
        if (r == 0)
            dd_diskstats_release(&out.disks);
        break;
    case P_CG_CPU:
        r = dd_node_cgroup_cpu_parse(text, len, &out.cg_cpu, err);
        break;
    case P_CG_U64:
        r = dd_node_cgroup_u64_parse(text, len, &out.u64, err);
        break;
    case P_CG_IO:
        r = dd_node_cgroup_io_parse(text, len, &out.io, err);
        if (r == 0)
            dd_cgroup_io_release(&out.io);
        break;
    }
    if (r != 0)
        assert_memory_equal(&out, &sentinel, sizeof(out));
    return r;
}

#define MEM_OK                                                                                     \
    "MemTotal:       24683620 kB\nMemAvailable:   24157268 kB\nCached:          2955028 kB\n"      \
    "Dirty:                44 kB\nWriteback:             0 kB\n"
#define DISK_OK  "253 0 dm-0 1 2 3 4 5 6 7 8 9 10 11\n"
#define PSI_REST " avg60=0.00 avg300=0.00 total=0\n"
#define CPU_OK   "usage_usec 10\nuser_usec 7\nsystem_usec 3\n"

static const struct bad bad_cases[] = {
    /* /proc/stat */
    {P_STAT, "", 0, DD_E_PARSE, 0, 0, "no aggregate 'cpu' line"},
    {P_STAT, "intr 1 2 3\nctxt 5\n", 0, DD_E_PARSE, 0, 0, "no aggregate 'cpu' line"},
    {P_STAT, "cpu 1 2 3\n", 0, DD_E_PARSE, 1, 10,
     "cpu: 3 values, expected 4 to 10 (user nice system idle [iowait irq softirq steal guest "
     "guest_nice])"},
    {P_STAT, "cpu 1 2 3 4 5 6 7 8 9 10 11\n", 0, DD_E_PARSE, 1, 26,
     "cpu: 11 values, expected 4 to 10 (user nice system idle [iowait irq softirq steal guest "
     "guest_nice])"},
    {P_STAT, "cpu 1 2 x 4\n", 0, DD_E_PARSE, 1, 9, "cpu field 3 (system): not a number 'x'"},
    {P_STAT, "cpu 1 2 3 -4\n", 0, DD_E_PARSE, 1, 11, "cpu field 4 (idle): not a number '-4'"},
    {P_STAT, "cpu  1 2 3 18446744073709551616\n", 0, DD_E_RANGE, 1, 12,
     "cpu field 4 (idle): out of range '18446744073709551616'"},
    {P_STAT, "cpu 1 2 3 4\ncpu0 1 2 3 4 5 6 7 8 9 y\n", 0, DD_E_PARSE, 2, 24,
     "cpu0 field 10 (guest_nice): not a number 'y'"},
    {P_STAT, "cpu 1 2 3 4\ncpu 1 2 3 4\n", 0, DD_E_PARSE, 2, 1, "a second aggregate 'cpu' line"},
    {P_STAT, "cpu 1 2 3 4\ncpu1 1 2 3 4\ncpu0 1 2 3 4\n", 0, DD_E_PARSE, 3, 1,
     "cpu number: not above the previous line's 'cpu0'"},
    {P_STAT, "cpu 1 2 3 4\ncpu1 1 2 3 4\ncpu1 1 2 3 4\n", 0, DD_E_PARSE, 3, 1,
     "cpu number: not above the previous line's 'cpu1'"},
    {P_STAT, "cpu 1 2 3 4\ncpufreq 1 2 3 4\n", 0, DD_E_PARSE, 2, 1,
     "line name: neither cpu nor cpuN 'cpufreq'"},
    {P_STAT, "cpu 1 2 3 4\ncpu4294967296 1 2 3 4\n", 0, DD_E_RANGE, 2, 4,
     "cpu number: out of range '4294967296'"},
    {P_STAT, "cpu 1 2\0 3 4\n", 13, DD_E_PARSE, 1, 8, "NUL byte"},
    {P_STAT, "cpu 1 2 3 4\nintr 0\n\0", 20, DD_E_PARSE, 3, 1, "NUL byte"},

    /* /proc/loadavg */
    {P_LOADAVG, "", 0, DD_E_PARSE, 0, 0, "empty"},
    {P_LOADAVG, "\n \n", 0, DD_E_PARSE, 0, 0, "empty"},
    {P_LOADAVG, "0.69 1.26 1.98 1/87\n", 0, DD_E_PARSE, 1, 20,
     "4 fields, expected 5 (load1 load5 load15 runnable/total last_pid)"},
    {P_LOADAVG, "0.69 1.26 1.98 1/87 1914 7\n", 0, DD_E_PARSE, 1, 26,
     "6 fields, expected 5 (load1 load5 load15 runnable/total last_pid)"},
    {P_LOADAVG, "0.69 x 1.98 1/87 1914\n", 0, DD_E_PARSE, 1, 6,
     "field 2 (load5): not a number 'x'"},
    {P_LOADAVG, "-0.5 1.26 1.98 1/87 1914\n", 0, DD_E_PARSE, 1, 1,
     "field 1 (load1): not a number '-0.5'"},
    {P_LOADAVG, "0.69 1.26 1e13 1/87 1914\n", 0, DD_E_RANGE, 1, 11,
     "field 3 (load15): out of range '1e13'"},
    {P_LOADAVG, "0.69 1.26 1.98 187 1914\n", 0, DD_E_PARSE, 1, 16,
     "field 4 (runnable/total): no '/' in '187'"},
    {P_LOADAVG, "0.69 1.26 1.98 1/ 1914\n", 0, DD_E_PARSE, 1, 18,
     "field 4 (total): not a number ''"},
    {P_LOADAVG, "0.69 1.26 1.98 4294967296/87 1914\n", 0, DD_E_RANGE, 1, 16,
     "field 4 (runnable): out of range '4294967296'"},
    {P_LOADAVG, "0.69 1.26 1.98 1/87 2147483648\n", 0, DD_E_RANGE, 1, 21,
     "field 5 (last_pid): out of range '2147483648'"},
    {P_LOADAVG, "0.69 1.26 1.98 1/87 1914\nx\n", 0, DD_E_PARSE, 2, 1, "more than one line"},

    /* PSI */
    {P_PSI, "", 0, DD_E_PARSE, 0, 0, "no 'some' line"},
    {P_PSI, "full avg10=0.00" PSI_REST, 0, DD_E_PARSE, 0, 0, "no 'some' line"},
    {P_PSI, "some avg10=0.00 avg60=0.00 avg300=0.00\n", 0, DD_E_PARSE, 1, 39,
     "some: 3 values, expected avg10= avg60= avg300= total="},
    {P_PSI, "some avg60=0.00 avg10=0.00 avg300=0.00 total=0\n", 0, DD_E_PARSE, 1, 6,
     "some avg10: expected here, found 'avg60=0.00'"},
    {P_PSI, "some avg10=0.00 avg60=0.00 avg300=0.00 =5\n", 0, DD_E_PARSE, 1, 40,
     "some total: expected here, found '=5'"},
    {P_PSI, "some avg10=100.01" PSI_REST, 0, DD_E_RANGE, 1, 12,
     "some avg10: out of range '100.01'"},
    {P_PSI, "some avg10=" PSI_REST, 0, DD_E_PARSE, 1, 12, "some avg10: not a number ''"},
    {P_PSI, "some avg10=0.00 avg60=0.00 avg300=0.00 total=x\n", 0, DD_E_PARSE, 1, 46,
     "some total: not a number 'x'"},
    {P_PSI, "some avg10=0.00" PSI_REST "some avg10=0.00" PSI_REST, 0, DD_E_PARSE, 2, 1,
     "a second 'some' line"},
    {P_PSI, "some avg10=0.00" PSI_REST "full avg10=0.00" PSI_REST "full avg10=0.00" PSI_REST, 0,
     DD_E_PARSE, 3, 1, "a second 'full' line"},
    {P_PSI, "half avg10=0.00" PSI_REST, 0, DD_E_PARSE, 1, 1, "line: neither some nor full: 'half'"},
    {P_PSI, "some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616\n", 0, DD_E_RANGE, 1,
     46, "some total: out of range '18446744073709551616'"},

    /* /proc/meminfo */
    {P_MEMINFO, "MemTotal: 1 kB\nMemAvailable: 1 kB\nCached: 1 kB\nDirty: 1 kB\n", 0, DD_E_PARSE, 0,
     0, "Writeback: missing"},
    {P_MEMINFO, MEM_OK "MemTotal 5 kB\n", 0, DD_E_PARSE, 6, 1, "expected 'Key: value [kB]'"},
    {P_MEMINFO, MEM_OK " MemFree: 5 kB\n", 0, DD_E_PARSE, 6, 1, "expected 'Key: value [kB]'"},
    {P_MEMINFO, MEM_OK ": 5 kB\n", 0, DD_E_PARSE, 6, 1, "expected 'Key: value [kB]'"},
    {P_MEMINFO, MEM_OK "MemFree:    5 MB\n", 0, DD_E_PARSE, 6, 15, "MemFree: unit is not kB: 'MB'"},
    {P_MEMINFO, MEM_OK "MemFree:\n", 0, DD_E_PARSE, 6, 9, "MemFree: no value"},
    {P_MEMINFO, MEM_OK "MemFree: 5\n", 0, DD_E_PARSE, 6, 11, "MemFree: no kB unit"},
    {P_MEMINFO, MEM_OK "MemFree: 5 kB x\n", 0, DD_E_PARSE, 6, 15,
     "MemFree: more than a value and a unit"},
    {P_MEMINFO, MEM_OK "Dirty: 5 kB\n", 0, DD_E_PARSE, 6, 1, "Dirty: a second time"},
    {P_MEMINFO, MEM_OK "SwapFree: 0x10 kB\n", 0, DD_E_PARSE, 6, 11,
     "SwapFree: not a number '0x10'"},

    /* /proc/diskstats */
    {P_DISKSTATS, "253 0 dm-0 1 2 3 4 5 6 7 8 9 10\n", 0, DD_E_PARSE, 1, 32,
     "13 fields, expected 14, 18 or 20"},
    {P_DISKSTATS, "253 0 dm-0 1 2 3 4 5 6 7 8 9 10 11 12 13 14\n", 0, DD_E_PARSE, 1, 44,
     "17 fields, expected 14, 18 or 20"},
    {P_DISKSTATS, "253 0 dm-0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\n", 0, DD_E_PARSE, 1, 54,
     "21 fields, expected 14, 18 or 20"},
    {P_DISKSTATS, "4096 0 dm-0 1 2 3 4 5 6 7 8 9 10 11\n", 0, DD_E_RANGE, 1, 1,
     "field 1 (major): out of range '4096'"},
    {P_DISKSTATS, "253 1048576 dm-0 1 2 3 4 5 6 7 8 9 10 11\n", 0, DD_E_RANGE, 1, 5,
     "field 2 (minor): out of range '1048576'"},
    {P_DISKSTATS, "x 0 dm-0 1 2 3 4 5 6 7 8 9 10 11\n", 0, DD_E_PARSE, 1, 1,
     "field 1 (major): not a number 'x'"},
    {P_DISKSTATS,
     "8 0 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 2 3 4 5 6 7 8 9 10 "
     "11\n",
     0, DD_E_TOOBIG, 1, 5, "field 3 (name): too long 'aaaaaaaaaaaaaaaaaaaaaaaa...'"},
    {P_DISKSTATS, "253 0 dm-0 1 x 3 4 5 6 7 8 9 10 11\n", 0, DD_E_PARSE, 1, 14,
     "dm-0 field 5 (reads_merged): not a number 'x'"},
    {P_DISKSTATS, "253 0 dm-0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 -17\n", 0, DD_E_PARSE, 1, 51,
     "dm-0 field 20 (flush_ms): not a number '-17'"},
    {P_DISKSTATS, DISK_OK "7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n253 7 dm-0 1 2 3 4 5 6 7 8 9 10 11\n",
     0, DD_E_PARSE, 3, 1, "device dm-0: a second time (line 1)"},
    {P_DISKSTATS, DISK_OK "\n253 0 dm-9 1 2 3 4 5 6 7 8 9 10 11\n", 0, DD_E_PARSE, 3, 1,
     "device 253:0: a second time (line 1)"},

    /* cgroup cpu.stat */
    {P_CG_CPU, "usage_usec 10\nuser_usec 7\n", 0, DD_E_PARSE, 0, 0, "system_usec: missing"},
    {P_CG_CPU, "usage_usec 10 2\n", 0, DD_E_PARSE, 1, 15, "3 fields, expected 'key value'"},
    {P_CG_CPU, "nr_periods\n", 0, DD_E_PARSE, 1, 11, "1 fields, expected 'key value'"},
    {P_CG_CPU, CPU_OK "user_usec 8\n", 0, DD_E_PARSE, 4, 1, "user_usec: a second time"},
    {P_CG_CPU, "usage_usec 1.5\n", 0, DD_E_PARSE, 1, 12, "usage_usec: not a number '1.5'"},

    /* memory.current, memory.peak */
    {P_CG_U64, "", 0, DD_E_PARSE, 1, 1, "value: not a number ''"},
    {P_CG_U64, "max\n", 0, DD_E_PARSE, 1, 1, "value: not a number 'max'"},
    {P_CG_U64, " 12\n", 0, DD_E_PARSE, 1, 1, "value: not a number ' 12'"},
    {P_CG_U64, "12\n13\n", 0, DD_E_PARSE, 2, 1, "more than one line"},
    {P_CG_U64, "18446744073709551616", 0, DD_E_RANGE, 1, 1,
     "value: out of range '18446744073709551616'"},

    /* io.stat */
    {P_CG_IO, "8:0 rbytes=1 wbytes=2 rios=3\n", 0, DD_E_PARSE, 1, 29, "8:0: wios missing"},
    {P_CG_IO, "8 rbytes=1 wbytes=2 rios=3 wios=4\n", 0, DD_E_PARSE, 1, 1,
     "device: expected MAJ:MIN, found '8'"},
    {P_CG_IO, "8:x rbytes=1 wbytes=2 rios=3 wios=4\n", 0, DD_E_PARSE, 1, 3,
     "device minor: not a number 'x'"},
    {P_CG_IO, "8:0 rbytes wbytes=2 rios=3 wios=4\n", 0, DD_E_PARSE, 1, 5,
     "io.stat: expected key=value, found 'rbytes'"},
    {P_CG_IO, "8:0 rbytes=1 rbytes=2 wbytes=2 rios=3 wios=4\n", 0, DD_E_PARSE, 1, 14,
     "rbytes: a second time: 'rbytes=2'"},
    {P_CG_IO, "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n8:0 rbytes=1 wbytes=2 rios=3 wios=4\n", 0,
     DD_E_PARSE, 2, 1, "device 8:0: a second time"},
    {P_CG_IO, "8:0 rbytes=1 wbytes=-2 rios=3 wios=4\n", 0, DD_E_PARSE, 1, 21,
     "wbytes: not a number '-2'"},
};

static void test_bad_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad_cases); i++) {
        const struct bad *b = &bad_cases[i];
        size_t len = b->len ? b->len : strlen(b->text);
        struct dd_parse_error err;
        int r;

        memset(&err, 0, sizeof(err));
        r = run_parser(b->p, b->text, len, &err);
        if (r != b->code || err.line != b->line || err.column != b->column ||
            strcmp(err.message, b->message) != 0)
            fail_msg("case %zu (%.40s): got %d at %u:%u \"%s\", want %d at %u:%u \"%s\"", i,
                     b->text, r, err.line, err.column, err.message, b->code, b->line, b->column,
                     b->message);
        /* without an err, the same answer */
        assert_int_equal(run_parser(b->p, b->text, len, NULL), b->code);
    }
}

/* ---- good inputs ---- */

/* Field by field: dd_cpu_times has tail padding, which memcmp would compare. */
static void assert_times(const struct dd_cpu_times *a, const struct dd_cpu_times *b)
{
    assert_true(a->user == b->user && a->nice == b->nice && a->system == b->system);
    assert_true(a->idle == b->idle && a->iowait == b->iowait && a->irq == b->irq);
    assert_true(a->softirq == b->softirq && a->steal == b->steal && a->guest == b->guest);
    assert_true(a->guest_nice == b->guest_nice);
    assert_int_equal(a->n_fields, b->n_fields);
}

static void test_stat_good(void **state)
{
    static const struct {
        const char *text;
        struct dd_cpu_times all;
        size_t n_cpus;
        uint32_t last_cpu;
        struct dd_cpu_times last;
    } cases[] = {
        /* 2.6.33 and later: 10 columns; other lines skipped */
        {"cpu  265219 101338 132132 436252 3870 0 758 0 0 0\n"
         "cpu0 123851 46982 67065 230541 935 0 342 0 0 0\n"
         "cpu1 141368 54356 65067 205711 2934 0 416 1 2 3\n"
         "intr 1931277 0 0\nctxt 2229090\nbtime 1795484285\nsoftirq 1 2 3\n",
         {265219, 101338, 132132, 436252, 3870, 0, 758, 0, 0, 0, 10},
         2,
         1,
         {141368, 54356, 65067, 205711, 2934, 0, 416, 1, 2, 3, 10}},
        /* 2.6.0: 7 columns; 2.6.11: 8 (steal); no trailing newline */
        {"cpu 10 20 30 40 50 60 70\ncpu0 1 2 3 4 5 6 7 8",
         {10, 20, 30, 40, 50, 60, 70, 0, 0, 0, 7},
         1,
         0,
         {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 8}},
        /* 2.4: 4 columns; offline CPUs leave gaps; tabs and blank lines */
        {"\ncpu\t1 2 3 4\ncpu0 1 2 3 4\ncpu7 5 6 7 18446744073709551615\n\n",
         {1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 4},
         2,
         7,
         {5, 6, 7, UINT64_MAX, 0, 0, 0, 0, 0, 0, 4}},
        /* an aggregate line alone */
        {"cpu 0 0 0 0\n", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4}, 0, 0, {0}},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        struct dd_cpu_stat s;
        struct dd_parse_error err = {0};

        assert_int_equal(dd_node_stat_parse(cases[i].text, strlen(cases[i].text), &s, &err), 0);
        assert_times(&s.all, &cases[i].all);
        assert_int_equal(s.n_cpus, cases[i].n_cpus);
        if (s.n_cpus > 0) {
            assert_int_equal(s.cpus[s.n_cpus - 1].cpu, cases[i].last_cpu);
            assert_times(&s.cpus[s.n_cpus - 1].t, &cases[i].last);
        }
        dd_cpu_stat_release(&s);
        assert_null(s.cpus);
    }
    dd_cpu_stat_release(NULL);
}

static void test_loadavg_good(void **state)
{
    struct dd_loadavg la;

    (void)state;
    assert_int_equal(dd_node_loadavg_parse("0.69 1.26 1.98 1/87 1914\n", 25, &la, NULL), 0);
    assert_true(la.load1 == 0.69 && la.load5 == 1.26 && la.load15 == 1.98);
    assert_int_equal(la.runnable, 1);
    assert_int_equal(la.total, 87);
    assert_int_equal(la.last_pid, 1914);
    assert_int_equal(la.run_queue, 0); /* the reader itself */
    assert_int_equal(dd_node_loadavg_parse("12.00 8.50 4.25 9/1200 4194303", 30, &la, NULL), 0);
    assert_true(la.load1 == 12.0 && la.load5 == 8.5 && la.load15 == 4.25);
    assert_int_equal(la.run_queue, 8);
    assert_int_equal(la.total, 1200);
    assert_int_equal(la.last_pid, 4194303);
    /* 0 runnable cannot happen while reading, but must not wrap */
    assert_int_equal(dd_node_loadavg_parse("0 0 0 0/1 1", 11, &la, NULL), 0);
    assert_int_equal(la.run_queue, 0);
}

static void test_psi_good(void **state)
{
    struct dd_psi p;
    const char *both = "some avg10=0.09 avg60=3.65 avg300=7.24 total=777547315\n"
                       "full avg10=100.00 avg60=0.07 avg300=0.00 total=26052998\n";
    const char *some_only = "some avg10=1.50 avg60=2.00 avg300=0.25 total=12 future=1 x\n";
    const char *full_first = "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                             "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n";

    (void)state;
    assert_int_equal(dd_node_psi_parse(both, strlen(both), &p, NULL), 0);
    assert_true(p.some.present && p.full.present);
    assert_true(p.some.avg10 == 0.09 && p.some.avg60 == 3.65 && p.some.avg300 == 7.24);
    assert_true(p.some.total_us == 777547315u);
    assert_true(p.full.avg10 == 100.0 && p.full.avg60 == 0.07 && p.full.avg300 == 0.0);
    assert_true(p.full.total_us == 26052998u);
    /* cpu before 5.13: no full line; keys past the four are skipped */
    assert_int_equal(dd_node_psi_parse(some_only, strlen(some_only), &p, NULL), 0);
    assert_true(p.some.present && !p.full.present);
    assert_true(p.some.avg10 == 1.5 && p.some.avg60 == 2.0 && p.some.avg300 == 0.25);
    assert_true(p.some.total_us == 12 && p.full.total_us == 0);
    assert_int_equal(dd_node_psi_parse(full_first, strlen(full_first), &p, NULL), 0);
    assert_true(p.some.total_us == 5 && p.full.present);
}

static void test_meminfo_good(void **state)
{
    const char *text = "MemTotal:       24683620 kB\nMemFree:        21372928 kB\n"
                       "MemAvailable:   24157268 kB\nBuffers:           35440 kB\n"
                       "Cached:          2955028 kB\nActive(anon):       1524 kB\n"
                       "SwapTotal:             0 kB\nSwapFree:              0 kB\n"
                       "Dirty:                44 kB\nWriteback:             7 kB\n"
                       "HugePages_Total:       0\nHugepagesize:       2048 kB\n"
                       "Unknown:   whatever\n";
    struct dd_meminfo want = {.mem_total_kb = 24683620,
                              .mem_free_kb = 21372928,
                              .mem_available_kb = 24157268,
                              .buffers_kb = 35440,
                              .cached_kb = 2955028,
                              .dirty_kb = 44,
                              .writeback_kb = 7};
    struct dd_meminfo m;

    (void)state;
    assert_int_equal(dd_node_meminfo_parse(text, strlen(text), &m, NULL), 0);
    assert_memory_equal(&m, &want, sizeof(m));
    /* optional keys absent read as 0 */
    assert_int_equal(dd_node_meminfo_parse(MEM_OK, strlen(MEM_OK), &m, NULL), 0);
    assert_true(m.mem_free_kb == 0 && m.buffers_kb == 0 && m.mem_total_kb == 24683620);
}

static void test_diskstats_good(void **state)
{
    /* 14 (pre-4.18), 18 (4.18) and 20 (5.5) fields mixed, padded like the kernel */
    const char *text = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n"
                       "   8       1 sda1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n"
                       " 253       0 dm-0 131427 0 1051416 354404 278535 0 2228224 1032276 0 "
                       "11924 1650764 16384 0 131072 264084 0 0\n"
                       " 259 1048575 nvme0n1p12 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 0 "
                       "0 1 2\n";
    struct dd_diskstats d;
    const struct dd_diskstat *s;

    (void)state;
    assert_int_equal(dd_node_diskstats_parse(text, strlen(text), &d, NULL), 0);
    assert_int_equal(d.n, 4);
    s = dd_diskstats_find_name(&d, "sda");
    assert_non_null(s);
    assert_int_equal(s->n_fields, 14);
    assert_true(s->reads == 1 && s->weighted_ms == 11 && s->discards == 0 && s->flushes == 0);
    s = dd_diskstats_find_dev(&d, 8, 1);
    assert_non_null(s);
    assert_string_equal(s->name, "sda1");
    assert_int_equal(s->n_fields, 18);
    assert_true(s->discards == 12 && s->discard_ms == 15 && s->flushes == 0);
    s = dd_diskstats_find_name(&d, "dm-0");
    assert_non_null(s);
    assert_int_equal(s->n_fields, 20);
    assert_true(s->major == 253 && s->minor == 0);
    assert_true(s->reads == 131427 && s->sectors_read == 1051416 && s->read_ms == 354404);
    assert_true(s->writes == 278535 && s->sectors_written == 2228224 && s->write_ms == 1032276);
    assert_true(s->in_flight == 0 && s->io_ms == 11924 && s->weighted_ms == 1650764);
    assert_true(s->discards == 16384 && s->sectors_discarded == 131072 && s->discard_ms == 264084);
    s = dd_diskstats_find_dev(&d, 259, 1048575);
    assert_non_null(s);
    assert_true(s->reads == UINT64_MAX && s->flushes == 1 && s->flush_ms == 2);
    assert_null(dd_diskstats_find_name(&d, "dm-1"));
    assert_null(dd_diskstats_find_dev(&d, 253, 1));
    assert_null(dd_diskstats_find_name(NULL, "sda"));
    dd_diskstats_release(&d);
    /* empty: no devices */
    assert_int_equal(dd_node_diskstats_parse("", 0, &d, NULL), 0);
    assert_int_equal(d.n, 0);
    dd_diskstats_release(&d);
}

static void test_cgroup_good(void **state)
{
    const char *cpu = "usage_usec 1043213\nuser_usec 811020\nsystem_usec 232193\n"
                      "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\n"
                      "burst_usec 0\n";
    const char *io = "253:0 rbytes=1048576 wbytes=4194304 rios=256 wios=1024 dbytes=0 dios=0\n"
                     "8:16 wios=4 rios=3 wbytes=2 rbytes=1 cost.vrate=100.00\n";
    struct dd_cgroup_cpu c;
    struct dd_cgroup_io i;
    uint64_t v;

    (void)state;
    assert_int_equal(dd_node_cgroup_cpu_parse(cpu, strlen(cpu), &c, NULL), 0);
    assert_true(c.usage_usec == 1043213 && c.user_usec == 811020 && c.system_usec == 232193);
    assert_int_equal(dd_node_cgroup_u64_parse("524288\n", 7, &v, NULL), 0);
    assert_true(v == 524288);
    assert_int_equal(dd_node_cgroup_u64_parse("0", 1, &v, NULL), 0);
    assert_true(v == 0);
    assert_int_equal(dd_node_cgroup_io_parse(io, strlen(io), &i, NULL), 0);
    assert_int_equal(i.n, 2);
    assert_true(i.devs[0].major == 253 && i.devs[0].minor == 0);
    assert_true(i.devs[0].rbytes == 1048576 && i.devs[0].wbytes == 4194304);
    assert_true(i.devs[0].rios == 256 && i.devs[0].wios == 1024);
    assert_true(i.devs[1].major == 8 && i.devs[1].minor == 16);
    assert_true(i.devs[1].rbytes == 1 && i.devs[1].wbytes == 2 && i.devs[1].rios == 3 &&
                i.devs[1].wios == 4);
    dd_cgroup_io_release(&i);
    assert_int_equal(dd_node_cgroup_io_parse("", 0, &i, NULL), 0);
    assert_int_equal(i.n, 0);
    dd_cgroup_io_release(&i);
}

/* ---- real captures (tripwire: these must keep parsing) ---- */

static void test_real_captures(void **state)
{
    static const char *const psi_files[] = {
        "node/proc-pressure-cpu.txt", "node/proc-pressure-io.txt", "node/proc-pressure-memory.txt"};
    struct dd_parse_error err = {0};
    struct dd_cpu_stat s;
    struct dd_loadavg la;
    struct dd_meminfo m;
    struct dd_diskstats d;
    size_t len;
    char *text;

    (void)state;
    text = tt_fixture("node/proc-stat-1.txt", &len);
    assert_int_equal(dd_node_stat_parse(text, len, &s, &err), 0);
    assert_int_equal(s.n_cpus, 2);
    assert_int_equal(s.all.n_fields, 10);
    /* the aggregate is the CPUs' sum, give or take a tick each: the kernel
     * adds nanoseconds, then converts (283793 = 133717 + 150075 + 1 here) */
    assert_true(s.all.user >= s.cpus[0].t.user + s.cpus[1].t.user &&
                s.all.user <= s.cpus[0].t.user + s.cpus[1].t.user + 2);
    assert_true(s.all.idle >= s.cpus[0].t.idle + s.cpus[1].t.idle &&
                s.all.idle <= s.cpus[0].t.idle + s.cpus[1].t.idle + 2);
    dd_cpu_stat_release(&s);
    free(text);

    text = tt_fixture("node/proc-loadavg.txt", &len);
    assert_int_equal(dd_node_loadavg_parse(text, len, &la, &err), 0);
    assert_true(la.runnable >= 1 && la.total >= la.runnable && la.last_pid > 0);
    free(text);

    for (size_t i = 0; i < DD_ARRAY_SIZE(psi_files); i++) {
        struct dd_psi p;
        text = tt_fixture(psi_files[i], &len);
        assert_int_equal(dd_node_psi_parse(text, len, &p, &err), 0);
        /* 6.18 writes a full line for cpu too */
        assert_true(p.some.present && p.full.present);
        free(text);
    }

    text = tt_fixture("node/proc-meminfo.txt", &len);
    assert_int_equal(dd_node_meminfo_parse(text, len, &m, &err), 0);
    assert_true(m.mem_total_kb == 24683620);
    assert_true(m.mem_available_kb > 0 && m.mem_available_kb <= m.mem_total_kb);
    free(text);

    text = tt_fixture("node/proc-diskstats-6.18.txt", &len);
    assert_int_equal(dd_node_diskstats_parse(text, len, &d, &err), 0);
    assert_true(d.n > 0);
    for (size_t i = 0; i < d.n; i++)
        assert_int_equal(d.disks[i].n_fields, 20);
    dd_diskstats_release(&d);
    free(text);

    text = tt_fixture("node/set1-proc-diskstats-vdo.txt", &len);
    assert_int_equal(dd_node_diskstats_parse(text, len, &d, &err), 0);
    assert_int_equal(d.n, 8);
    assert_string_equal(d.disks[0].name, "vda");
    assert_string_equal(d.disks[7].name, "dm-3");
    dd_diskstats_release(&d);
    free(text);
}

/* ---- CPU utilisation ---- */

static void test_cpu_util(void **state)
{
    /* 2 CPUs over 5 s at 100 Hz: 1000 ticks of capacity. busy = user 200 +
     * nice 50 + system 100 + irq 20 + softirq 20 + steal 10 = 400; idle 550
     * + iowait 50 = 600; guest 80 is inside user and adds nothing. */
    struct dd_cpu_times prev = {1000, 100, 500, 9000, 30, 5, 5, 0, 40, 0, 10};
    struct dd_cpu_times cur = {1200, 150, 600, 9550, 80, 25, 25, 10, 120, 0, 10};
    struct dd_cpu_util u;

    (void)state;
    assert_int_equal(dd_cpu_util(&prev, &cur, 100, 0.0, &u), 0);
    assert_true(u.valid);
    assert_near(u.busy_seconds, 4.0, 1e-12);
    assert_near(u.total_seconds, 10.0, 1e-12);
    assert_near(u.util, 0.4, 1e-12);
    assert_near(u.util_excl_vdo, 0.4, 1e-12);

    /* VDO's threads ran 1.5 s of the 4 s busy: (4 - 1.5) / 10 */
    assert_int_equal(dd_cpu_util(&prev, &cur, 100, 1.5, &u), 0);
    assert_near(u.vdo_seconds, 1.5, 1e-12);
    assert_near(u.util, 0.4, 1e-12);
    assert_near(u.util_excl_vdo, 0.25, 1e-12);

    /* more VDO time than busy time (skewed samplings): 0, never negative */
    assert_int_equal(dd_cpu_util(&prev, &cur, 100, 7.0, &u), 0);
    assert_near(u.vdo_seconds, 4.0, 1e-12);
    assert_near(u.util_excl_vdo, 0.0, 0.0);
    assert_false(signbit(u.util_excl_vdo));

    /* at 250 Hz the same ticks are fewer seconds, the same fractions */
    assert_int_equal(dd_cpu_util(&prev, &cur, 250, 0.4, &u), 0);
    assert_near(u.busy_seconds, 1.6, 1e-12);
    assert_near(u.total_seconds, 4.0, 1e-12);
    assert_near(u.util_excl_vdo, (1.6 - 0.4) / 4.0, 1e-12);

    /* no time passed: no fraction, no division by zero */
    assert_int_equal(dd_cpu_util(&cur, &cur, 100, 0.5, &u), 0);
    assert_false(u.valid);
    assert_true(u.util == 0.0 && u.util_excl_vdo == 0.0 && u.total_seconds == 0.0);

    /* iowait went backwards (NO_HZ): that term counts 0, the rest stands:
     * busy 400, idle 550 + 0 */
    {
        struct dd_cpu_times back = cur;
        back.iowait = 10;
        assert_int_equal(dd_cpu_util(&prev, &back, 100, 0.0, &u), 0);
        assert_near(u.total_seconds, 9.5, 1e-12);
        assert_near(u.util, 400.0 / 950.0, 1e-12);
    }

    /* arguments */
    assert_int_equal(dd_cpu_util(NULL, &cur, 100, 0.0, &u), -EINVAL);
    assert_int_equal(dd_cpu_util(&prev, NULL, 100, 0.0, &u), -EINVAL);
    assert_int_equal(dd_cpu_util(&prev, &cur, 100, 0.0, NULL), -EINVAL);
    assert_int_equal(dd_cpu_util(&prev, &cur, 0, 0.0, &u), -EINVAL);
    assert_int_equal(dd_cpu_util(&prev, &cur, 100, -0.1, &u), -EINVAL);
    assert_int_equal(dd_cpu_util(&prev, &cur, 100, (double)NAN, &u), -EINVAL);
    assert_int_equal(dd_cpu_util(&prev, &cur, 100, (double)INFINITY, &u), -EINVAL);
}

/* The two real /proc/stat samples: the aggregate's figures, worked out by
 * hand from the captured numbers (see the fixture files). */
static void test_cpu_util_real(void **state)
{
    struct dd_cpu_stat a, b;
    struct dd_cpu_util u;
    char *t1, *t2;
    size_t l1, l2;

    (void)state;
    t1 = tt_fixture("node/proc-stat-1.txt", &l1);
    t2 = tt_fixture("node/proc-stat-2.txt", &l2);
    assert_int_equal(dd_node_stat_parse(t1, l1, &a, NULL), 0);
    assert_int_equal(dd_node_stat_parse(t2, l2, &b, NULL), 0);
    /* cpu  283793 101338 144844 459668 3962 0 905 0 0 0
     * cpu  283928 101338 144860 459739 3962 0 906 0 0 0
     * busy = 135 + 0 + 16 + 0 + 1 + 0 = 152; idle = 71 + 0 */
    assert_int_equal(dd_cpu_util(&a.all, &b.all, 100, 0.5, &u), 0);
    assert_near(u.busy_seconds, 1.52, 1e-12);
    assert_near(u.total_seconds, 2.23, 1e-12);
    assert_near(u.util, 152.0 / 223.0, 1e-12);
    assert_near(u.util_excl_vdo, (152.0 - 50.0) / 223.0, 1e-12);
    dd_cpu_stat_release(&a);
    dd_cpu_stat_release(&b);
    free(t1);
    free(t2);
}

/* ---- disk rates ---- */

static void test_disk_rates_real(void **state)
{
    struct dd_diskstats s1, s2;
    const struct dd_diskstat *p, *c;
    struct dd_disk_rates r;
    char *t1, *t2;
    size_t l1, l2;

    (void)state;
    t1 = tt_fixture("node/set1-proc-diskstats-vdo.txt", &l1);
    t2 = tt_fixture("node/set2-proc-diskstats-vdo.txt", &l2);
    assert_int_equal(dd_node_diskstats_parse(t1, l1, &s1, NULL), 0);
    assert_int_equal(dd_node_diskstats_parse(t2, l2, &s2, NULL), 0);

    /* dm-0 (vdo0), as if 10 s apart:
     *   set1: 253 0 dm-0 160 0 1280 256 163844 0 1310720 545720 0 5072 545976 0 0 0 0 0 0
     *   set2: 253 0 dm-0 131427 0 1051416 354404 278535 0 2228224 1032276 0 11924 1650764
     *         16384 0 131072 264084 0 0
     * reads 131267, sectors 1050136, read ms 354148; writes 114691, sectors
     * 917504, write ms 486556; io ms 6852 */
    p = dd_diskstats_find_name(&s1, "dm-0");
    c = dd_diskstats_find_name(&s2, "dm-0");
    assert_non_null(p);
    assert_non_null(c);
    assert_int_equal(dd_disk_rates(p, c, 10.0, &r), 0);
    assert_false(r.reset);
    assert_true(r.reads == 131267 && r.writes == 114691);
    assert_near(r.read_iops, 13126.7, 1e-9);
    assert_near(r.write_iops, 11469.1, 1e-9);
    assert_near(r.read_mbps, 1050136.0 * 512.0 / 1e6 / 10.0, 1e-9);
    assert_near(r.read_mbps, 53.7669632, 1e-9);
    assert_near(r.write_mbps, 46.9762048, 1e-9);
    assert_true(r.has_read_latency && r.has_write_latency);
    assert_near(r.read_latency_ms, 354148.0 / 131267.0, 1e-12);
    assert_near(r.write_latency_ms, 486556.0 / 114691.0, 1e-12);
    assert_near(r.util, 0.6852, 1e-12);

    /* dm-3 (vg0-lv0) chosen by number: no reads, so no read latency;
     *   387 -> 516 writes, 786432 -> 1048576 sectors, 6472 -> 8476 ms */
    p = dd_diskstats_find_dev(&s1, 253, 3);
    c = dd_diskstats_find_dev(&s2, 253, 3);
    assert_non_null(p);
    assert_non_null(c);
    assert_int_equal(dd_disk_rates(p, c, 2.0, &r), 0);
    assert_false(r.has_read_latency);
    assert_true(r.read_latency_ms == 0.0 && r.read_iops == 0.0 && r.read_mbps == 0.0);
    assert_near(r.write_iops, 64.5, 1e-12);
    assert_near(r.write_mbps, 262144.0 * 512.0 / 1e6 / 2.0, 1e-9);
    assert_near(r.write_latency_ms, 2004.0 / 129.0, 1e-12);
    /* io ms 6472 -> 8476: 2004 ms in 2 s, clamped to 1 */
    assert_near(r.util, 1.0, 0.0);

    /* the same sample twice: nothing happened, no latency, no NaN */
    assert_int_equal(dd_disk_rates(c, c, 1.0, &r), 0);
    assert_false(r.has_read_latency || r.has_write_latency || r.reset);
    assert_true(r.read_iops == 0.0 && r.write_mbps == 0.0 && r.util == 0.0);

    /* backwards (device recreated): reset, every rate 0 */
    assert_int_equal(dd_disk_rates(c, p, 1.0, &r), 0);
    assert_true(r.reset);
    assert_true(r.write_iops == 0.0 && r.reads == 0 && !r.has_write_latency);

    /* arguments */
    assert_int_equal(dd_disk_rates(p, c, 0.0, &r), -EINVAL);
    assert_int_equal(dd_disk_rates(p, c, -1.0, &r), -EINVAL);
    assert_int_equal(dd_disk_rates(p, c, (double)NAN, &r), -EINVAL);
    assert_int_equal(dd_disk_rates(p, c, (double)INFINITY, &r), -EINVAL);
    assert_int_equal(dd_disk_rates(NULL, c, 1.0, &r), -EINVAL);
    assert_int_equal(dd_disk_rates(p, c, 1.0, NULL), -EINVAL);
    assert_int_equal(dd_disk_rates(dd_diskstats_find_name(&s1, "dm-0"), c, 1.0, &r), -EINVAL);
    /* a rate that would be infinite */
    {
        struct dd_diskstat big = *c;
        big.writes = UINT64_MAX;
        assert_int_equal(dd_disk_rates(p, &big, 1e-300, &r), DD_E_RANGE);
    }

    dd_diskstats_release(&s1);
    dd_diskstats_release(&s2);
    free(t1);
    free(t2);
}

/* ---- allocation failures and arguments ---- */

static void test_alloc_failures(void **state)
{
    const char *stat = "cpu 1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\n";
    const char *io = "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n8:1 rbytes=1 wbytes=2 rios=3 wios=4\n";
    char *disks;
    size_t dlen;
    int r;

    (void)state;
    disks = tt_fixture("node/set2-proc-diskstats-vdo.txt", &dlen);
    for (unsigned long n = 1;; n++) {
        struct dd_cpu_stat s;
        dd_alloc_fail_at(n);
        r = dd_node_stat_parse(stat, strlen(stat), &s, NULL);
        dd_alloc_fail_at(0);
        if (r == 0) {
            dd_cpu_stat_release(&s);
            assert_true(n > 1);
            break;
        }
        assert_int_equal(r, -ENOMEM);
    }
    for (unsigned long n = 1;; n++) {
        struct dd_diskstats d;
        dd_alloc_fail_at(n);
        r = dd_node_diskstats_parse(disks, dlen, &d, NULL);
        dd_alloc_fail_at(0);
        if (r == 0) {
            dd_diskstats_release(&d);
            assert_true(n > 3); /* disks, lines, the uniqueness check */
            break;
        }
        assert_int_equal(r, -ENOMEM);
    }
    for (unsigned long n = 1;; n++) {
        struct dd_cgroup_io i;
        dd_alloc_fail_at(n);
        r = dd_node_cgroup_io_parse(io, strlen(io), &i, NULL);
        dd_alloc_fail_at(0);
        if (r == 0) {
            dd_cgroup_io_release(&i);
            assert_true(n > 1);
            break;
        }
        assert_int_equal(r, -ENOMEM);
    }
    free(disks);
}

static void test_args(void **state)
{
    struct dd_cpu_stat s;
    struct dd_parse_error err = {0};
    char big = 'x';

    (void)state;
    assert_int_equal(dd_node_stat_parse("cpu 1 2 3 4", 11, NULL, NULL), -EINVAL);
    assert_int_equal(dd_node_loadavg_parse("", 0, NULL, NULL), -EINVAL);
    assert_int_equal(dd_node_psi_parse("", 0, NULL, NULL), -EINVAL);
    assert_int_equal(dd_node_meminfo_parse("", 0, NULL, NULL), -EINVAL);
    assert_int_equal(dd_node_diskstats_parse("", 0, NULL, NULL), -EINVAL);
    assert_int_equal(dd_node_cgroup_cpu_parse("", 0, NULL, NULL), -EINVAL);
    assert_int_equal(dd_node_cgroup_u64_parse("", 0, NULL, NULL), -EINVAL);
    assert_int_equal(dd_node_cgroup_io_parse("", 0, NULL, NULL), -EINVAL);
    /* a length past the cap is refused before the text is looked at */
    assert_int_equal(dd_node_stat_parse(&big, (size_t)DD_NODE_FILE_MAX + 1, &s, &err), DD_E_TOOBIG);
    assert_string_equal(err.message, "longer than 16777216 bytes");
    /* NULL text with length 0 is an empty text */
    assert_int_equal(dd_node_diskstats_parse(NULL, 0, &(struct dd_diskstats){0}, NULL), 0);
}

/* Caps: DD_NODE_MAX_CPUS cpuN lines pass, one more is refused. */
static void test_caps(void **state)
{
    size_t cap = 32 + (size_t)(DD_NODE_MAX_CPUS + 1) * 24, len = 0;
    char *text = malloc(cap);
    struct dd_parse_error err = {0};
    struct dd_cpu_stat s;

    (void)state;
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "cpu 1 2 3 4\n");
    for (unsigned i = 0; i < DD_NODE_MAX_CPUS; i++)
        len += (size_t)snprintf(text + len, cap - len, "cpu%u 1 2 3 4\n", i);
    assert_int_equal(dd_node_stat_parse(text, len, &s, &err), 0);
    assert_int_equal(s.n_cpus, DD_NODE_MAX_CPUS);
    dd_cpu_stat_release(&s);
    len += (size_t)snprintf(text + len, cap - len, "cpu%u 1 2 3 4\n", DD_NODE_MAX_CPUS);
    assert_int_equal(dd_node_stat_parse(text, len, &s, &err), DD_E_TOOBIG);
    assert_int_equal(err.line, DD_NODE_MAX_CPUS + 2);
    assert_string_equal(err.message, "more than 8192 cpuN lines");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_stat_good),
        cmocka_unit_test(test_loadavg_good),
        cmocka_unit_test(test_psi_good),
        cmocka_unit_test(test_meminfo_good),
        cmocka_unit_test(test_diskstats_good),
        cmocka_unit_test(test_cgroup_good),
        cmocka_unit_test(test_real_captures),
        cmocka_unit_test(test_cpu_util),
        cmocka_unit_test(test_cpu_util_real),
        cmocka_unit_test(test_disk_rates_real),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
