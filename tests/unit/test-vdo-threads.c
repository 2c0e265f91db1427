/*
 * dedupd/vdo/threads: /proc/<pid>/stat lines and VDO thread names, good and
 * bad, with the exact error (lvm2 vdo_t.c style); scans of fake /proc trees
 * built at test time from the real dm-vdo 6.12 captures in
 * tests/fixtures/vdo-real-6.12 (copied from the reference set, `#` header
 * lines kept), with entries that vanish or are garbled; the delta between
 * the two captures checked against sums taken here by a simpler route; and a
 * volume reload that changes instance numbers between two samples.
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/vdo/threads.h"
#include "helpers.h"

#define FIXTURES "tests/fixtures/vdo-real-6.12/"

/* the short line the bad cases are made from:
 * fields 1..22, utime 7, stime 9, starttime 50 (columns in comments below) */
#define BASE       "1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50"
#define AFTER_COMM ") S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50"

#define REAL_301                                                                                   \
    "301 (vdo0:reqQ) S 2 0 0 0 -1 2129984 0 0 0 0 0 876 0 0 20 0 1 0 1323 0 0 "                    \
    "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
#define REAL_347                                                                                   \
    "347 (vdo1:hashQ0) S 2 0 0 0 -1 2129984 0 0 0 0 0 104 0 0 20 0 1 0 2194 0 0 "                  \
    "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0"

/* ---- helpers ---- */

static char *fixture_path(const char *name)
{
    const char *src = getenv("DD_SOURCE_DIR");
    char *p;

    if (!src || !*src)
        fail_msg("DD_SOURCE_DIR is not set (run through ctest)");
    if (asprintf(&p, "%s/" FIXTURES "%s", src, name) < 0)
        fail_msg("asprintf");
    return p;
}

/* The whole file, NUL-terminated (read to EOF: /proc files have no size). */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    if (ferror(f))
        fail_msg("%s: read error", path);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static char *read_fixture(const char *name)
{
    char *path = fixture_path(name);
    char *text = read_text(path);
    free(path);
    return text;
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", path, strerror(errno));
}

/* Writes root/<pid>/stat with the given content. */
static void put_stat(const char *root, const char *pid, const char *content, size_t len)
{
    char *dir = tt_path(root, pid);
    char *file = tt_path(dir, "stat");

    make_dir(dir);
    tt_write_file(file, content, len);
    free(file);
    free(dir);
}

/* The leading decimal pid of a line, as a string. */
static void line_pid(const char *line, char *buf, size_t size)
{
    size_t n = 0;
    while (line[n] >= '0' && line[n] <= '9' && n + 1 < size) {
        buf[n] = line[n];
        n++;
    }
    buf[n] = '\0';
    assert_true(n > 0);
}

/* A fake /proc: one <pid>/stat per capture line ('#' lines skipped). */
static void build_tree_from_capture(const char *root, const char *capture)
{
    const char *p = capture;

    make_dir(root);
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (p[0] != '#' && p[0] != '\n') {
            char pid[16];
            line_pid(p, pid, sizeof(pid));
            put_stat(root, pid, p, len);
        }
        p += len;
    }
}

/* A full 52-field stat line of a (kernel) thread. */
static char *stat_line(unsigned pid, const char *comm, unsigned long flags,
                       unsigned long long utime, unsigned long long stime,
                       unsigned long long starttime)
{
    char *s;
    if (asprintf(&s,
                 "%u (%s) S 2 0 0 0 -1 %lu 0 0 0 0 %llu %llu 0 0 20 0 1 0 %llu 0 0 "
                 "18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 "
                 "0 0 0 0\n",
                 pid, comm, flags, utime, stime, starttime) < 0)
        fail_msg("asprintf");
    return s;
}

static void put_thread(const char *root, unsigned pid, const char *comm, unsigned long long ticks,
                       unsigned long long starttime)
{
    char name[16];
    char *line = stat_line(pid, comm, DD_PF_KTHREAD, 0, ticks, starttime);
    snprintf(name, sizeof(name), "%u", pid);
    put_stat(root, name, line, strlen(line));
    free(line);
}

static const struct dd_vdo_thread *find_pid(const struct dd_vdo_threads *t, uint32_t pid)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->threads[i].pid == pid)
            return &t->threads[i];
    }
    return NULL;
}

/* cmocka's fail_msg is not noreturn: these are, so the compiler sees that
 * what they return is never NULL. */
static const struct dd_vdo_thread *must_find(const struct dd_vdo_threads *t, uint32_t pid)
{
    const struct dd_vdo_thread *th = find_pid(t, pid);
    if (!th) {
        fail_msg("pid %u not found", pid);
        abort();
    }
    return th;
}

static const struct dd_vdo_instance_cpu *must_instance(const struct dd_vdo_cpu *cpu,
                                                       uint32_t instance)
{
    const struct dd_vdo_instance_cpu *ic = dd_vdo_cpu_for_instance(cpu, instance);
    if (!ic) {
        fail_msg("instance %u not found", instance);
        abort();
    }
    return ic;
}

static const struct dd_vdo_kind_cpu *must_kind(const struct dd_vdo_instance_cpu *ic,
                                               const char *kind)
{
    const struct dd_vdo_kind_cpu *kc = dd_vdo_instance_cpu_kind(ic, kind);
    if (!kc) {
        fail_msg("instance %u has no kind %s", ic->instance, kind);
        abort();
    }
    return kc;
}

/* ---- /proc/<pid>/stat lines ---- */

static void test_stat_good(void **state)
{
    static char comm127[200];
    static const struct {
        const char *in;
        size_t len; /* 0: strlen */
        uint32_t pid;
        const char *comm;
        char state;
        uint32_t ppid;
        uint64_t flags, utime, stime, starttime;
    } cases[] = {
        {BASE, 0, 1, "c", 'S', 2, 2129984, 7, 9, 50},
        {BASE "\n", 0, 1, "c", 'S', 2, 2129984, 7, 9, 50},
        {REAL_301, 0, 301, "vdo0:reqQ", 'S', 2, 2129984, 0, 876, 1323},
        {REAL_347, 0, 347, "vdo1:hashQ0", 'S', 2, 2129984, 0, 104, 2194},
        /* the comm runs to the last ')' */
        {"4242 (a) b) c) R 1 0 0 0 -1 4194304 0 0 0 0 3 4 0 0 20 0 1 0 99", 0, 4242, "a) b) c", 'R',
         1, 4194304, 3, 4, 99},
        {"77 (Web Content) S 1 0 0 0 -1 4194304 0 0 0 0 1 2 0 0 20 0 1 0 3", 0, 77, "Web Content",
         'S', 1, 4194304, 1, 2, 3},
        /* a name that imitates fields cannot move them */
        {"78 (x) S 2 0 0 0 -1 2129984 0 0 0 0 9 9 0 0 20 0 1 0 5) S 2 0 0 0 -1 4194304 0 0 0 0 1 2 "
         "0 0 20 0 1 0 60",
         0, 78, "x) S 2 0 0 0 -1 2129984 0 0 0 0 9 9 0 0 20 0 1 0 5", 'S', 2, 4194304, 1, 2, 60},
        {"5 () I 2 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1", 0, 5, "", 'I', 2, 2129984, 0, 0,
         1},
        {"6 (a\nb) S 2 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1", 0, 6, "a\nb", 'S', 2, 2129984,
         0, 0, 1},
        {"7 ((sd-pam)) S 1 0 0 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 8", 0, 7, "(sd-pam)", 'S', 1,
         4194560, 0, 0, 8},
        /* extremes; negative values where they are not kept */
        {"2147483647 (c) S 2147483647 -5 0 0 -1 18446744073709551615 0 0 0 0 18446744073709551615 "
         "18446744073709551615 0 0 -100 -20 1 0 18446744073709551615",
         0, 2147483647u, "c", 'S', 2147483647u, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX},
        {"0 (swapper/0) R 0 0 0 0 -1 2097152 0 0 0 0 0 0 0 0 20 0 1 0 0", 0, 0, "swapper/0", 'R', 0,
         2097152, 0, 0, 0},
        {comm127, 0, 1, NULL, 'S', 2, 2129984, 7, 9, 50}, /* the longest comm kept */
    };
    (void)state;
    memcpy(comm127, "1 (", 3);
    memset(comm127 + 3, 'a', DD_PROC_COMM_MAX - 1);
    memcpy(comm127 + 3 + DD_PROC_COMM_MAX - 1, AFTER_COMM, sizeof(AFTER_COMM));
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        struct dd_proc_pid_stat st;
        struct dd_parse_error err = {0};
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        int r = dd_proc_stat_parse(cases[i].in, len, &st, &err);

        if (r != 0)
            fail_msg("case %zu: %d %s (column %u)", i, r, err.message, err.column);
        assert_int_equal(st.pid, cases[i].pid);
        if (cases[i].comm)
            assert_string_equal(st.comm, cases[i].comm);
        else
            assert_int_equal(strlen(st.comm), DD_PROC_COMM_MAX - 1);
        assert_int_equal(st.state, cases[i].state);
        assert_int_equal(st.ppid, cases[i].ppid);
        assert_true(st.flags == cases[i].flags);
        assert_true(st.utime == cases[i].utime);
        assert_true(st.stime == cases[i].stime);
        assert_true(st.starttime == cases[i].starttime);
    }
}

static void test_stat_bad(void **state)
{
    static char too_long[DD_PROC_STAT_LINE_MAX + 2];
    static char comm128[200];
    static char field53[256];
    static const struct {
        const char *in;
        size_t len; /* 0: strlen */
        int ret;
        unsigned column;
        const char *message;
    } fixed[] = {
        {"", 0, DD_E_PARSE, 1, "empty line"},
        {"\n", 0, DD_E_PARSE, 1, "empty line"},
        {"1", 0, DD_E_PARSE, 2, "field 2 (comm): missing"},
        {"1 ", 0, DD_E_PARSE, 3, "field 2 (comm): missing"},
        {"1 c) S", 0, DD_E_PARSE, 3, "field 2 (comm): expected '('"},
        {"1 (c S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 3,
         "field 2 (comm): no closing ')'"},
        {"1 (c", 0, DD_E_PARSE, 3, "field 2 (comm): no closing ')'"},
        {" 1 (c) S", 0, DD_E_PARSE, 1, "field 1 (pid): empty"},
        {"x (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 1,
         "field 1 (pid): expected an integer, got 'x'"},
        {"-1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_RANGE, 1,
         "field 1 (pid): negative: '-1'"},
        {"2147483648 (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_RANGE, 1,
         "field 1 (pid): out of range: '2147483648'"},
        /* truncated */
        {"1 (c)", 0, DD_E_PARSE, 6,
         "field 3 (state): missing (the line ends after field 2; 22 needed)"},
        {"1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0", 0, DD_E_PARSE, 52,
         "field 22 (starttime): missing (the line ends after field 21; 22 needed)"},
        {"301 (vdo0:reqQ) S 2 0 0 0 -1 2129984 0 0 0 0 0 8", 0, DD_E_PARSE, 49,
         "field 16 (cutime): missing (the line ends after field 15; 22 needed)"},
        /* the state */
        {"1 (c) SS 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 7,
         "field 3 (state): expected a letter, got 'SS'"},
        {"1 (c) 1 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 7,
         "field 3 (state): expected a letter, got '1'"},
        {"1 (c)S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 6,
         "field 3 (state): expected ' ' after ')'"},
        /* separators */
        {"1 (c) S  2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 9,
         "field 4 (ppid): empty"},
        {BASE " ", 0, DD_E_PARSE, 56, "field 23 (vsize): empty"},
        {BASE "\n\n", 0, DD_E_PARSE, 53, "field 22 (starttime): expected an integer, got '50?'"},
        {BASE "\r\n", 0, DD_E_PARSE, 53, "field 22 (starttime): expected an integer, got '50?'"},
        /* non-numeric fields */
        {"1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 1a 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 36,
         "field 14 (utime): expected an integer, got '1a'"},
        {"1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 5x0", 0, DD_E_PARSE, 53,
         "field 22 (starttime): expected an integer, got '5x0'"},
        {"1 (c) S 2 0x10 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 11,
         "field 5 (pgrp): expected an integer, got '0x10'"},
        {"1 (c) S 2 0 0 0 - 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 17,
         "field 8 (tpgid): expected an integer, got '-'"},
        {"1 (c) S 2 0 0 0 -1 x 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 20,
         "field 9 (flags): expected an integer, got 'x'"},
        {"1 (c) S 2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 "
         "0 "
         "50",
         0, DD_E_PARSE, 11,
         "field 5 (pgrp): expected an integer, got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'"},
        {"1 (c) S 2 \x01 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_PARSE, 11,
         "field 5 (pgrp): expected an integer, got '?'"},
        /* numbers out of range */
        {"1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 18446744073709551616 9 0 0 20 0 1 0 50", 0, DD_E_RANGE,
         36, "field 14 (utime): out of range: '18446744073709551616'"},
        {"1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 -5 0 0 20 0 1 0 50", 0, DD_E_RANGE, 38,
         "field 15 (stime): negative: '-5'"},
        {"1 (c) S 2147483648 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_RANGE, 9,
         "field 4 (ppid): out of range: '2147483648'"},
        {"1 (c) S -1 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 0, DD_E_RANGE, 9,
         "field 4 (ppid): negative: '-1'"},
        {"1 (c) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 99999999999999999999999", 0,
         DD_E_RANGE, 53, "field 22 (starttime): out of range: '99999999999999999999999'"},
        /* a NUL byte, counted by len */
        {"1 (c\0) S 2 0 0 0 -1 2129984 0 0 0 0 7 9 0 0 20 0 1 0 50", 55, DD_E_PARSE, 5,
         "NUL byte in the line"},
    };
    struct {
        const char *in;
        size_t len;
        int ret;
        unsigned column;
        const char *message;
    } built[3];
    size_t n;

    (void)state;
    /* a line past the cap, a comm past its cap, a bad field past the named ones */
    memset(too_long, '0', sizeof(too_long) - 1);
    built[0].in = too_long;
    built[0].len = DD_PROC_STAT_LINE_MAX + 1;
    built[0].ret = DD_E_TOOBIG;
    built[0].column = 1;
    built[0].message = "line longer than 4096 bytes";
    memcpy(comm128, "1 (", 3);
    memset(comm128 + 3, 'a', 128);
    n = 3 + 128;
    memcpy(comm128 + n, AFTER_COMM, sizeof(AFTER_COMM));
    built[1].in = comm128;
    built[1].len = n + strlen(AFTER_COMM);
    built[1].ret = DD_E_TOOBIG;
    built[1].column = 4;
    built[1].message = "field 2 (comm): longer than 127 bytes";
    n = strlen(BASE);
    memcpy(field53, BASE, n);
    for (int i = 23; i <= 52; i++, n += 2)
        memcpy(field53 + n, " 0", 2);
    memcpy(field53 + n, " x", 3);
    built[2].in = field53;
    built[2].len = n + 2;
    built[2].ret = DD_E_PARSE;
    built[2].column = 116;
    built[2].message = "field 53: expected an integer, got 'x'";

    for (size_t i = 0; i < DD_ARRAY_SIZE(fixed) + DD_ARRAY_SIZE(built); i++) {
        bool is_fixed = i < DD_ARRAY_SIZE(fixed);
        const char *in = is_fixed ? fixed[i].in : built[i - DD_ARRAY_SIZE(fixed)].in;
        size_t len = is_fixed ? fixed[i].len : built[i - DD_ARRAY_SIZE(fixed)].len;
        int want = is_fixed ? fixed[i].ret : built[i - DD_ARRAY_SIZE(fixed)].ret;
        unsigned col = is_fixed ? fixed[i].column : built[i - DD_ARRAY_SIZE(fixed)].column;
        const char *msg = is_fixed ? fixed[i].message : built[i - DD_ARRAY_SIZE(fixed)].message;
        struct dd_proc_pid_stat st, before;
        struct dd_parse_error err = {0};
        int r;

        memset(&st, 0xab, sizeof(st));
        before = st;
        r = dd_proc_stat_parse(in, len ? len : strlen(in), &st, &err);
        if (r != want || err.column != col || strcmp(err.message, msg) != 0)
            fail_msg("case %zu: got %d column %u '%s', want %d column %u '%s'", i, r, err.column,
                     err.message, want, col, msg);
        assert_int_equal(err.line, 1);
        assert_memory_equal(&st, &before, sizeof(st)); /* untouched on failure */
        /* err may be NULL */
        assert_int_equal(dd_proc_stat_parse(in, len ? len : strlen(in), &st, NULL), want);
    }
    assert_int_equal(dd_proc_stat_parse(NULL, 0, &(struct dd_proc_pid_stat){0}, NULL), DD_E_PARSE);
}

/* ---- thread names ---- */

static void test_thread_names(void **state)
{
    static char long_ok[DD_PROC_COMM_MAX], long_bad[DD_PROC_COMM_MAX + 1];
    static const struct {
        const char *comm;
        int ret;
        const char *prefix;
        uint32_t instance;
        const char *queue, *kind;
    } cases[] = {
        {"vdo0:reqQ", 0, "vdo", 0, "reqQ", "reqQ"},
        {"vdo12:bioQ3", 0, "vdo", 12, "bioQ3", "bioQ"},
        {"kvdo3:cpuQ0", 0, "kvdo", 3, "cpuQ0", "cpuQ"},
        {"dm_vdo1:journalQ", 0, "dm_vdo", 1, "journalQ", "journalQ"},
        {"dm-vdo7:hashQ12", 0, "dm-vdo", 7, "hashQ12", "hashQ"},
        {"vdo0:reader", 0, "vdo", 0, "reader", "reader"},
        {"vdo1:cpuQ", 0, "vdo", 1, "cpuQ", "cpuQ"},
        {"vdo1:callbackW", 0, "vdo", 1, "callbackW", "callbackW"},
        {"vdo00:reqQ", 0, "vdo", 0, "reqQ", "reqQ"}, /* the regex allows it */
        {"vdo4294967295:x", 0, "vdo", UINT32_MAX, "x", "x"},
        {"vdo0:123", 0, "vdo", 0, "123", "123"},         /* digits only: its own kind */
        {"vdo0:bio:Q1", 0, "vdo", 0, "bio:Q1", "bio:Q"}, /* (.+) takes the rest */
        {"vdo0:a b) c", 0, "vdo", 0, "a b) c", "a b) c"},
        {"vdo4294967296:x", DD_E_RANGE, NULL, 0, NULL, NULL},
        {"vdo99999999999999999999999:x", DD_E_RANGE, NULL, 0, NULL, NULL},
        {"kworker/0:1", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"kworker/u4:2-dm-vdo", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"vdox:reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"vdo:reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"vdo0:", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"vdo0reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"vdo0", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"VDO0:reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"dmvdo0:reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {" vdo0:reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"xvdo0:reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"vdo-0:reqQ", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"kvdo", DD_E_PARSE, NULL, 0, NULL, NULL},
        {"", DD_E_PARSE, NULL, 0, NULL, NULL},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        struct dd_vdo_thread_name name, before;
        int r;

        memset(&name, 0x5a, sizeof(name));
        before = name;
        r = dd_vdo_thread_name_parse(cases[i].comm, &name);
        if (r != cases[i].ret)
            fail_msg("'%s': got %d, want %d", cases[i].comm, r, cases[i].ret);
        if (r < 0) {
            assert_memory_equal(&name, &before, sizeof(name));
            continue;
        }
        assert_string_equal(name.prefix, cases[i].prefix);
        assert_int_equal(name.instance, cases[i].instance);
        assert_string_equal(name.queue, cases[i].queue);
        assert_string_equal(name.kind, cases[i].kind);
    }

    /* the comm cap: 127 bytes is a name, 128 is not */
    memcpy(long_ok, "vdo1:", 5);
    memset(long_ok + 5, 'q', sizeof(long_ok) - 6);
    long_ok[sizeof(long_ok) - 1] = '\0';
    {
        struct dd_vdo_thread_name name;
        assert_int_equal(dd_vdo_thread_name_parse(long_ok, &name), 0);
        assert_int_equal(strlen(name.queue), DD_PROC_COMM_MAX - 6);
    }
    memcpy(long_bad, "vdo1:", 5);
    memset(long_bad + 5, 'q', sizeof(long_bad) - 6);
    long_bad[sizeof(long_bad) - 1] = '\0';
    assert_int_equal(dd_vdo_thread_name_parse(long_bad, &(struct dd_vdo_thread_name){0}),
                     DD_E_TOOBIG);
    assert_int_equal(dd_vdo_thread_name_parse(NULL, &(struct dd_vdo_thread_name){0}), DD_E_PARSE);
}

/* ---- adding threads ---- */

static void test_add(void **state)
{
    struct dd_vdo_threads t = {0};
    struct dd_proc_pid_stat st = {.pid = 10,
                                  .comm = "vdo3:bioQ2",
                                  .state = 'S',
                                  .ppid = 2,
                                  .flags = 2129984,
                                  .utime = 1,
                                  .stime = 2,
                                  .starttime = 3};
    (void)state;

    assert_int_equal(dd_vdo_threads_add(&t, &st), 1);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.threads[0].pid, 10);
    assert_int_equal(t.threads[0].instance, 3);
    assert_true(t.threads[0].ticks == 3 && t.threads[0].starttime == 3);
    assert_string_equal(t.threads[0].queue, "bioQ2");
    assert_string_equal(t.threads[0].kind, "bioQ");

    /* a user process with a VDO name is not a VDO thread */
    st.flags = 4194304;
    assert_int_equal(dd_vdo_threads_add(&t, &st), 0);
    /* a kernel thread with another name neither */
    st.flags = 2129984;
    memcpy(st.comm, "kworker/0:1", sizeof("kworker/0:1"));
    assert_int_equal(dd_vdo_threads_add(&t, &st), 0);
    /* utime + stime past 64 bits */
    memcpy(st.comm, "vdo3:ackQ", sizeof("vdo3:ackQ"));
    st.utime = UINT64_MAX;
    assert_int_equal(dd_vdo_threads_add(&t, &st), DD_E_RANGE);
    st.utime = 0;
    st.stime = UINT64_MAX;
    assert_int_equal(dd_vdo_threads_add(&t, &st), 1);
    assert_int_equal(t.n, 2);

    /* the cap */
    while (t.n < DD_VDO_MAX_THREADS) {
        st.pid++;
        assert_int_equal(dd_vdo_threads_add(&t, &st), 1);
    }
    assert_int_equal(dd_vdo_threads_add(&t, &st), DD_E_TOOBIG);
    assert_int_equal(t.n, DD_VDO_MAX_THREADS);

    /* allocation failure leaves the set as it was */
    dd_vdo_threads_release(&t);
    dd_alloc_fail_at(1);
    assert_int_equal(dd_vdo_threads_add(&t, &st), -ENOMEM);
    dd_alloc_fail_at(0);
    assert_int_equal(t.n, 0);
    assert_null(t.threads);
    dd_vdo_threads_release(&t);
    dd_vdo_threads_release(NULL);
}

/* ---- scans of the real capture ---- */

struct kind_count {
    uint32_t instance;
    const char *kind;
    size_t threads;
};

/* Pids, instances and kinds of set1, from VM-RECIPE.md 6.3 and the comm
 * capture: instance 0 a bare table (13 threads), 1 lvm2 defaults (18). */
static const struct kind_count set1_kinds[] = {
    {0, "reqQ", 1},      {0, "bioQ", 4},     {0, "ackQ", 1},    {0, "cpuQ", 1},
    {0, "callbackW", 1}, {0, "dedupeQ", 1},  {0, "reader", 2},  {0, "indexW", 1},
    {0, "writer", 1},    {1, "journalQ", 1}, {1, "packerQ", 1}, {1, "bioQ", 4},
    {1, "ackQ", 1},      {1, "cpuQ", 2},     {1, "physQ", 1},   {1, "logQ", 1},
    {1, "callbackW", 1}, {1, "dedupeQ", 1},  {1, "hashQ", 1},   {1, "reader", 2},
    {1, "indexW", 1},    {1, "writer", 1},
};

static void check_set1(const struct dd_vdo_threads *t)
{
    size_t per_instance[2] = {0, 0};
    char *comm = read_fixture("set1-proc-comm-vdo.txt");
    const char *p = comm;
    size_t lines = 0;

    assert_int_equal(t->n, 31);
    for (size_t i = 0; i < t->n; i++) {
        assert_true(t->threads[i].instance < 2);
        per_instance[t->threads[i].instance]++;
        if (i > 0)
            assert_true(t->threads[i - 1].pid < t->threads[i].pid);
    }
    assert_int_equal(per_instance[0], 13);
    assert_int_equal(per_instance[1], 18);

    for (size_t k = 0; k < DD_ARRAY_SIZE(set1_kinds); k++) {
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++)
            n += t->threads[i].instance == set1_kinds[k].instance &&
                 strcmp(t->threads[i].kind, set1_kinds[k].kind) == 0;
        if (n != set1_kinds[k].threads)
            fail_msg("instance %u kind %s: %zu threads, want %zu", set1_kinds[k].instance,
                     set1_kinds[k].kind, n, set1_kinds[k].threads);
    }

    /* tripwire: /proc/<pid>/comm agrees with the names the stat lines gave */
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (p[0] != '#' && len > 0) {
            char name[DD_PROC_COMM_MAX + 32];
            uint64_t pid;
            const struct dd_vdo_thread *th;
            const char *sp = memchr(p, ' ', len);

            assert_non_null(sp);
            assert_int_equal(dd_parse_u64_n(p, (size_t)(sp - p), &pid), 0);
            th = must_find(t, (uint32_t)pid);
            snprintf(name, sizeof(name), "vdo%u:%s", th->instance, th->queue);
            assert_int_equal(strlen(name), len - (size_t)(sp + 1 - p));
            assert_memory_equal(name, sp + 1, strlen(name));
            lines++;
        }
        p += nl ? len + 1 : len;
    }
    assert_int_equal(lines, 31);
    free(comm);
}

static void test_real_lines_tripwire(void **state)
{
    /* every line of both captures parses, and is a kernel thread under kthreadd */
    const char *names[] = {"set1-proc-pid-stat-vdo.txt", "set2-proc-pid-stat-vdo.txt"};
    (void)state;
    for (size_t f = 0; f < DD_ARRAY_SIZE(names); f++) {
        char *text = read_fixture(names[f]);
        const char *p = text;
        size_t lines = 0;

        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
            if (p[0] != '#') {
                struct dd_proc_pid_stat st;
                struct dd_vdo_thread_name name;
                struct dd_parse_error err = {0};
                int r = dd_proc_stat_parse(p, len, &st, &err);
                if (r != 0)
                    fail_msg("%s: %s (column %u)", names[f], err.message, err.column);
                assert_int_equal(st.ppid, 2);
                assert_true(st.flags & DD_PF_KTHREAD);
                assert_int_equal(dd_vdo_thread_name_parse(st.comm, &name), 0);
                assert_string_equal(name.prefix, "vdo");
                lines++;
            }
            p += len;
        }
        assert_int_equal(lines, 31);
        free(text);
    }
}

static void test_scan_real_set1(void **state)
{
    char *tmp = tt_tmpdir();
    char *root = tt_path(tmp, "proc");
    char *capture = read_fixture("set1-proc-pid-stat-vdo.txt");
    struct dd_vdo_threads t;
    const struct dd_vdo_thread *th;
    (void)state;

    build_tree_from_capture(root, capture);
    assert_int_equal(dd_vdo_threads_scan(root, &t), 0);
    assert_int_equal(t.skipped, 0);
    assert_int_equal(t.vanished, 0);
    check_set1(&t);

    th = must_find(&t, 301);
    assert_int_equal(th->instance, 0);
    assert_string_equal(th->queue, "reqQ");
    assert_true(th->ticks == 876 && th->starttime == 1323);
    th = must_find(&t, 347);
    assert_int_equal(th->instance, 1);
    assert_string_equal(th->queue, "hashQ0");
    assert_string_equal(th->kind, "hashQ");

    dd_vdo_threads_release(&t);
    free(capture);
    tt_rmtree(tmp);
    free(root);
    free(tmp);
}

/* Entries that vanish, are not processes, or hold junk, among the real ones. */
static void test_scan_tolerates_junk(void **state)
{
    char *tmp = tt_tmpdir();
    char *root = tt_path(tmp, "proc");
    char *capture = read_fixture("set1-proc-pid-stat-vdo.txt");
    struct dd_vdo_threads t;
    char *path, *line;
    char big[DD_PROC_STAT_LINE_MAX + 100];
    (void)state;

    build_tree_from_capture(root, capture);
    /* ignored: not processes */
    path = tt_path(root, "sys");
    make_dir(path);
    free(path);
    path = tt_path(root, "uptime");
    tt_write_file(path, "84.45 60.23\n", 12);
    free(path);
    path = tt_path(root, "self");
    assert_int_equal(symlink("301", path), 0);
    free(path);
    path = tt_path(root, "99999999999"); /* past pid_t */
    make_dir(path);
    free(path);
    /* ignored: processes that are not VDO kernel threads */
    line = stat_line(2, "kthreadd", 2129984, 0, 5, 19);
    put_stat(root, "2", line, strlen(line));
    free(line);
    line = stat_line(9008, "vdo0:reqQ", 4194304, 1000, 1000, 5000); /* a user process */
    put_stat(root, "9008", line, strlen(line));
    free(line);

    /* vanished: the directory is there, its stat is not */
    path = tt_path(root, "9001");
    make_dir(path);
    free(path);
    /* skipped: garbled, unreadable, not a directory, another pid, empty,
     * too long, a FIFO, ticks past 64 bits */
    put_stat(root, "9002", "garbage\n", 8);
    path = tt_path(root, "9003");
    make_dir(path);
    free(path);
    path = tt_path(root, "9003/stat");
    make_dir(path); /* read() gives EISDIR */
    free(path);
    path = tt_path(root, "9004");
    tt_write_file(path, "x", 1);
    free(path);
    line = stat_line(9999, "vdo0:reqQ", DD_PF_KTHREAD, 0, 5, 19);
    put_stat(root, "9005", line, strlen(line));
    free(line);
    put_stat(root, "9006", "", 0);
    memset(big, '1', sizeof(big));
    put_stat(root, "9007", big, sizeof(big));
    path = tt_path(root, "9010");
    make_dir(path);
    free(path);
    path = tt_path(root, "9010/stat");
    assert_int_equal(mkfifo(path, 0644), 0);
    free(path);
    /* utime + stime past 64 bits */
    line = stat_line(9012, "vdo0:reqQ", DD_PF_KTHREAD, UINT64_MAX, 1, 19);
    put_stat(root, "9012", line, strlen(line));
    free(line);

    assert_int_equal(dd_vdo_threads_scan(root, &t), 0);
    assert_int_equal(t.vanished, 1);
    assert_int_equal(t.skipped, 8);
    check_set1(&t);
    assert_null(find_pid(&t, 9008));
    assert_null(find_pid(&t, 9005));
    assert_null(find_pid(&t, 9999));

    dd_vdo_threads_release(&t);
    free(capture);
    tt_rmtree(tmp);
    free(root);
    free(tmp);
}

static void test_scan_errors(void **state)
{
    char *tmp = tt_tmpdir();
    char *file = tt_path(tmp, "file");
    char *missing = tt_path(tmp, "missing");
    struct dd_vdo_threads t;
    (void)state;

    tt_write_file(file, "x", 1);
    memset(&t, 0x77, sizeof(t));
    assert_int_equal(dd_vdo_threads_scan(missing, &t), -ENOENT);
    assert_int_equal(dd_vdo_threads_scan(file, &t), -ENOTDIR);
    assert_int_equal(dd_vdo_threads_scan(NULL, &t), -EINVAL);
    assert_int_equal(dd_vdo_threads_scan(tmp, NULL), -EINVAL);
    assert_int_equal(t.n, (size_t)0x7777777777777777ull); /* untouched */

    /* an empty tree is an empty scan */
    assert_int_equal(dd_vdo_threads_scan(tmp, &t), 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(t.skipped, 0);
    dd_vdo_threads_release(&t);

    tt_rmtree(tmp);
    free(missing);
    free(file);
    free(tmp);
}

/* ---- the delta ---- */

struct sum {
    uint32_t instance;
    char kind[32];
    uint64_t ticks;
};

/*
 * The expected ticks per (instance, kind) of one capture, the simple way: the
 * real names hold no space, so split on spaces; fields 14 and 15 are tokens
 * 13 and 14; the name is "(vdoN:queue)".
 */
static size_t sum_capture(const char *text, struct sum *sums, size_t max)
{
    size_t n = 0;
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (p[0] != '#' && len > 0) {
            const char *tok[64];
            size_t tlen[64], nt = 0, i = 0;
            uint64_t inst, ut, st;
            struct sum s = {0};
            const char *colon;
            size_t klen;

            while (i < len && nt < 64) {
                tok[nt] = p + i;
                while (i < len && p[i] != ' ')
                    i++;
                tlen[nt] = (size_t)(p + i - tok[nt]);
                nt++;
                i++;
            }
            assert_int_equal(nt, 52);
            assert_true(tlen[1] > 5 && memcmp(tok[1], "(vdo", 4) == 0);
            colon = memchr(tok[1], ':', tlen[1]);
            assert_non_null(colon);
            assert_int_equal(dd_parse_u64_n(tok[1] + 4, (size_t)(colon - tok[1] - 4), &inst), 0);
            klen = tlen[1] - (size_t)(colon + 1 - tok[1]) - 1; /* without ')' */
            while (klen > 0 && colon[klen] >= '0' && colon[klen] <= '9')
                klen--;
            assert_true(klen < sizeof(s.kind));
            memcpy(s.kind, colon + 1, klen);
            assert_int_equal(dd_parse_u64_n(tok[13], tlen[13], &ut), 0);
            assert_int_equal(dd_parse_u64_n(tok[14], tlen[14], &st), 0);
            s.instance = (uint32_t)inst;
            s.ticks = ut + st;
            {
                size_t j;
                for (j = 0; j < n; j++) {
                    if (sums[j].instance == s.instance && strcmp(sums[j].kind, s.kind) == 0)
                        break;
                }
                if (j == n) {
                    assert_true(n < max);
                    sums[n++] = s;
                } else {
                    sums[j].ticks += s.ticks;
                }
            }
        }
        p += nl ? len + 1 : len;
    }
    return n;
}

/* The first number of a /proc/uptime capture's last line. */
static double capture_uptime(const char *name)
{
    char *text = read_fixture(name);
    const char *last = text + strlen(text);
    char num[32];
    size_t n;
    double v;

    while (last > text && last[-1] == '\n')
        last--;
    while (last > text && last[-1] != '\n')
        last--;
    n = strcspn(last, " \n");
    assert_true(n > 0 && n < sizeof(num));
    memcpy(num, last, n);
    num[n] = '\0';
    assert_int_equal(dd_parse_double(num, &v), 0);
    free(text);
    return v;
}

static void test_delta_real(void **state)
{
    char *tmp = tt_tmpdir();
    char *root1 = tt_path(tmp, "proc1"), *root2 = tt_path(tmp, "proc2");
    char *c1 = read_fixture("set1-proc-pid-stat-vdo.txt");
    char *c2 = read_fixture("set2-proc-pid-stat-vdo.txt");
    char *tck_text = read_fixture("set1-getconf-CLK_TCK.txt");
    struct dd_vdo_threads t1, t2;
    struct dd_vdo_cpu cpu;
    struct sum s1[64], s2[64];
    size_t n1, n2;
    uint64_t tck, total[2] = {0, 0};
    const char *last;
    (void)state;

    /* CLK_TCK: the capture's last line */
    last = strrchr(tck_text, '\n');
    assert_non_null(last);
    while (last > tck_text && last[-1] != '\n')
        last--;
    assert_int_equal(dd_parse_u64_n(last, strcspn(last, "\n"), &tck), 0);
    assert_int_equal(tck, 100);

    build_tree_from_capture(root1, c1);
    build_tree_from_capture(root2, c2);
    assert_int_equal(dd_vdo_threads_scan(root1, &t1), 0);
    assert_int_equal(dd_vdo_threads_scan(root2, &t2), 0);
    assert_int_equal(dd_vdo_cpu_delta(&t1, &t2, (long)tck, &cpu), 0);

    n1 = sum_capture(c1, s1, DD_ARRAY_SIZE(s1));
    n2 = sum_capture(c2, s2, DD_ARRAY_SIZE(s2));
    assert_int_equal(n1, n2);
    assert_int_equal(cpu.n, 2);
    assert_int_equal(cpu.n_kinds, n2);
    for (size_t i = 0; i < n2; i++) {
        const struct dd_vdo_instance_cpu *ic = must_instance(&cpu, s2[i].instance);
        const struct dd_vdo_kind_cpu *kc = must_kind(ic, s2[i].kind);
        uint64_t want = s2[i].ticks;

        /* both captures list the threads in the same (pid) order */
        assert_true(strcmp(s1[i].kind, s2[i].kind) == 0 && s1[i].instance == s2[i].instance);
        want -= s1[i].ticks;
        if (kc->ticks != want)
            fail_msg("instance %u kind %s: %llu ticks, want %llu", s2[i].instance, s2[i].kind,
                     (unsigned long long)kc->ticks, (unsigned long long)want);
        assert_true(fabs(kc->seconds - (double)want / 100.0) < 1e-9);
        total[s2[i].instance] += want;
    }
    /* and the totals, also worked out by hand with awk: vdo0 2639 - 1500, vdo1 1438 - 1126 */
    assert_true(total[0] == 1139 && total[1] == 312);
    for (uint32_t inst = 0; inst < 2; inst++) {
        const struct dd_vdo_instance_cpu *ic = must_instance(&cpu, inst);
        uint64_t sum = 0;
        assert_true(ic->ticks == total[inst]);
        assert_true(fabs(ic->seconds - (double)total[inst] / 100.0) < 1e-9);
        assert_int_equal(ic->threads, inst == 0 ? 13 : 18);
        assert_int_equal(ic->new_threads, 0);
        for (size_t k = 0; k < ic->n_kinds; k++) {
            sum += ic->kinds[k].ticks;
            if (k > 0)
                assert_true(strcmp(ic->kinds[k - 1].kind, ic->kinds[k].kind) < 0);
        }
        assert_true(sum == ic->ticks);
    }
    assert_true(fabs(must_instance(&cpu, 0)->seconds - 11.39) < 1e-9);
    assert_true(fabs(must_instance(&cpu, 1)->seconds - 3.12) < 1e-9);
    assert_int_equal(must_kind(must_instance(&cpu, 0), "reqQ")->ticks, 1321 - 876);
    assert_int_equal(must_kind(must_instance(&cpu, 0), "bioQ")->ticks,
                     (62 + 55 + 59 + 58) - (26 + 23 + 25 + 23));
    assert_int_equal(must_kind(must_instance(&cpu, 1), "cpuQ")->ticks, (146 + 143) - (105 + 106));
    assert_null(dd_vdo_cpu_for_instance(&cpu, 2));
    assert_null(dd_vdo_instance_cpu_kind(must_instance(&cpu, 0), "hashQ"));
    {
        /* plausible: a fraction of the 39.4 s between the captures, on 2 vCPUs */
        double interval =
            capture_uptime("set2-proc-uptime.txt") - capture_uptime("set1-proc-uptime.txt");
        assert_true(fabs(interval - 39.4) < 1e-6);
        for (size_t i = 0; i < cpu.n; i++)
            assert_true(cpu.instances[i].seconds > 0.0 && cpu.instances[i].seconds < 2 * interval);
    }
    dd_vdo_cpu_release(&cpu);

    /* the same scan twice: nothing happened */
    assert_int_equal(dd_vdo_cpu_delta(&t2, &t2, 100, &cpu), 0);
    for (size_t i = 0; i < cpu.n; i++)
        assert_true(cpu.instances[i].ticks == 0 && cpu.instances[i].new_threads == 0);
    dd_vdo_cpu_release(&cpu);

    /* backwards in time: never negative */
    assert_int_equal(dd_vdo_cpu_delta(&t2, &t1, 100, &cpu), 0);
    for (size_t i = 0; i < cpu.n; i++)
        assert_true(cpu.instances[i].ticks == 0 && cpu.instances[i].seconds == 0.0);
    dd_vdo_cpu_release(&cpu);

    dd_vdo_threads_release(&t1);
    dd_vdo_threads_release(&t2);
    free(tck_text);
    free(c1);
    free(c2);
    tt_rmtree(tmp);
    free(root1);
    free(root2);
    free(tmp);
}

/*
 * Volume A is instance 0 at the first sample and comes back as instance 2
 * (new threads, new pids, one of them a reused pid of A's old threads); B
 * stays instance 1; a new volume C takes the freed number 0. No instance may
 * inherit another's past, and nothing goes negative.
 */
static void test_delta_reload(void **state)
{
    char *tmp = tt_tmpdir();
    char *r1 = tt_path(tmp, "proc1"), *r2 = tt_path(tmp, "proc2");
    struct dd_vdo_threads t1, t2;
    struct dd_vdo_cpu cpu;
    const struct dd_vdo_instance_cpu *ic;
    (void)state;

    make_dir(r1);
    make_dir(r2);
    /* first sample: A = instance 0, B = instance 1 */
    put_thread(r1, 100, "vdo0:reqQ", 500, 1000);
    put_thread(r1, 101, "vdo0:bioQ0", 100, 1001);
    put_thread(r1, 102, "vdo0:reader", 0, 1002);
    put_thread(r1, 200, "vdo1:journalQ", 300, 2000);
    put_thread(r1, 201, "vdo1:cpuQ0", 50, 2001);
    /* second sample: A = instance 2, B unchanged, C = instance 0 */
    put_thread(r2, 300, "vdo2:reqQ", 40, 5000);
    put_thread(r2, 301, "vdo2:bioQ0", 7, 5001);
    put_thread(r2, 100, "vdo2:reader", 3, 5002); /* A's old pid 100, reused */
    put_thread(r2, 200, "vdo1:journalQ", 350, 2000);
    put_thread(r2, 201, "vdo1:cpuQ0", 40, 2001); /* went backwards: 0, not -10 */
    put_thread(r2, 400, "vdo0:reqQ", 9, 5100);

    assert_int_equal(dd_vdo_threads_scan(r1, &t1), 0);
    assert_int_equal(dd_vdo_threads_scan(r2, &t2), 0);
    assert_int_equal(dd_vdo_cpu_delta(&t1, &t2, 100, &cpu), 0);
    assert_int_equal(cpu.n, 3);

    /* the caller, told by A's stats that A is now instance 2 */
    ic = must_instance(&cpu, 2);
    assert_true(ic->ticks == 40 + 7 + 3);
    assert_true(fabs(ic->seconds - 0.5) < 1e-12);
    assert_int_equal(ic->threads, 3);
    assert_int_equal(ic->new_threads, 3);
    assert_int_equal(ic->n_kinds, 3);
    assert_string_equal(ic->kinds[0].kind, "bioQ");
    assert_true(ic->kinds[0].ticks == 7);
    assert_string_equal(ic->kinds[1].kind, "reader");
    assert_true(ic->kinds[1].ticks == 3);
    assert_string_equal(ic->kinds[2].kind, "reqQ");
    assert_true(ic->kinds[2].ticks == 40);

    ic = must_instance(&cpu, 1);
    assert_true(ic->ticks == 50);
    assert_int_equal(ic->new_threads, 0);
    assert_true(must_kind(ic, "cpuQ")->ticks == 0);

    /* C: its own 9 ticks, none of A's old 600 */
    ic = must_instance(&cpu, 0);
    assert_true(ic->ticks == 9);
    assert_int_equal(ic->threads, 1);
    assert_int_equal(ic->new_threads, 1);
    for (size_t i = 0; i < cpu.n; i++)
        assert_true(cpu.instances[i].seconds >= 0.0);
    assert_null(dd_vdo_cpu_for_instance(&cpu, 3));
    dd_vdo_cpu_release(&cpu);

    dd_vdo_threads_release(&t1);
    dd_vdo_threads_release(&t2);
    tt_rmtree(tmp);
    free(r1);
    free(r2);
    free(tmp);
}

static void test_delta_args(void **state)
{
    struct dd_vdo_threads empty = {0}, one = {0};
    struct dd_proc_pid_stat st = {
        .pid = 5, .comm = "vdo0:reqQ", .flags = DD_PF_KTHREAD, .stime = 3};
    struct dd_vdo_cpu cpu;
    (void)state;

    assert_int_equal(dd_vdo_cpu_delta(NULL, &empty, 100, &cpu), -EINVAL);
    assert_int_equal(dd_vdo_cpu_delta(&empty, NULL, 100, &cpu), -EINVAL);
    assert_int_equal(dd_vdo_cpu_delta(&empty, &empty, 0, &cpu), -EINVAL);
    assert_int_equal(dd_vdo_cpu_delta(&empty, &empty, -1, &cpu), -EINVAL);
    assert_int_equal(dd_vdo_cpu_delta(&empty, &empty, 100, NULL), -EINVAL);
    assert_int_equal(dd_vdo_cpu_delta(&empty, &empty, 100, &cpu), 0);
    assert_int_equal(cpu.n, 0);
    assert_null(dd_vdo_cpu_for_instance(&cpu, 0));
    dd_vdo_cpu_release(&cpu);
    dd_vdo_cpu_release(NULL);
    assert_null(dd_vdo_cpu_for_instance(NULL, 0));
    assert_null(dd_vdo_instance_cpu_kind(NULL, "reqQ"));

    /* a first sample against nothing: each thread's whole life */
    assert_int_equal(dd_vdo_threads_add(&one, &st), 1);
    assert_int_equal(dd_vdo_cpu_delta(&empty, &one, 100, &cpu), 0);
    assert_int_equal(cpu.n, 1);
    assert_true(cpu.instances[0].ticks == 3 && cpu.instances[0].new_threads == 1);
    dd_vdo_cpu_release(&cpu);

    /* saturating sums */
    st.pid = 6;
    st.stime = UINT64_MAX;
    assert_int_equal(dd_vdo_threads_add(&one, &st), 1);
    assert_int_equal(dd_vdo_cpu_delta(&empty, &one, 100, &cpu), 0);
    assert_true(cpu.instances[0].ticks == UINT64_MAX);
    dd_vdo_cpu_release(&cpu);
    dd_vdo_threads_release(&one);
}

/* Every allocation of a scan and a delta fails in turn: -ENOMEM, no leak. */
static void test_alloc_failures(void **state)
{
    char *tmp = tt_tmpdir();
    char *root = tt_path(tmp, "proc");
    char *capture = read_fixture("set1-proc-pid-stat-vdo.txt");
    struct dd_vdo_threads t, t0 = {0};
    struct dd_vdo_cpu cpu;
    unsigned long n;
    int r;
    (void)state;

    build_tree_from_capture(root, capture);
    for (n = 1;; n++) {
        dd_alloc_fail_at(n);
        r = dd_vdo_threads_scan(root, &t);
        dd_alloc_fail_at(0);
        if (r == 0)
            break;
        assert_int_equal(r, -ENOMEM);
        assert_true(n < 100);
    }
    assert_true(n > 1);
    for (n = 1;; n++) {
        dd_alloc_fail_at(n);
        r = dd_vdo_cpu_delta(&t, &t, 100, &cpu);
        dd_alloc_fail_at(0);
        if (r == 0)
            break;
        assert_int_equal(r, -ENOMEM);
        assert_true(n < 100);
    }
    assert_true(n > 1);
    dd_vdo_cpu_release(&cpu);
    for (n = 1;; n++) {
        dd_alloc_fail_at(n);
        r = dd_vdo_cpu_delta(&t0, &t, 100, &cpu);
        dd_alloc_fail_at(0);
        if (r == 0)
            break;
        assert_int_equal(r, -ENOMEM);
    }
    dd_vdo_cpu_release(&cpu);
    dd_vdo_threads_release(&t);
    free(capture);
    tt_rmtree(tmp);
    free(root);
    free(tmp);
}

/* ---- the live system (read only) ---- */

static void test_live_proc(void **state)
{
    struct dd_vdo_threads t;
    struct dd_proc_pid_stat st;
    struct dd_parse_error err = {0};
    char *self;
    long tck;
    (void)state;

    tck = dd_clock_ticks();
    assert_true(tck > 0);
    if (access("/proc/self/stat", R_OK) != 0)
        tt_skip("/proc/self/stat is not readable here");
    /* our own line, in the format of the kernel we run on */
    self = read_text("/proc/self/stat");
    if (dd_proc_stat_parse(self, strlen(self), &st, &err) != 0)
        fail_msg("/proc/self/stat: %s (column %u)", err.message, err.column);
    assert_int_equal(st.pid, (uint32_t)getpid());
    assert_false(st.flags & DD_PF_KTHREAD);
    free(self);
    /* a scan of the real /proc works (VDO threads or not) */
    assert_int_equal(dd_vdo_threads_scan("/proc", &t), 0);
    for (size_t i = 0; i < t.n; i++)
        assert_true(t.threads[i].kind[0] != '\0');
    dd_vdo_threads_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat_good),           cmocka_unit_test(test_stat_bad),
        cmocka_unit_test(test_thread_names),        cmocka_unit_test(test_add),
        cmocka_unit_test(test_real_lines_tripwire), cmocka_unit_test(test_scan_real_set1),
        cmocka_unit_test(test_scan_tolerates_junk), cmocka_unit_test(test_scan_errors),
        cmocka_unit_test(test_delta_real),          cmocka_unit_test(test_delta_reload),
        cmocka_unit_test(test_delta_args),          cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_live_proc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
