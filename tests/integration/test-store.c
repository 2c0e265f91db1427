/*
 * The RocksDB store on real directories: batched puts, gets and range
 * queries with step and limit, series that are prefixes of each other,
 * retention by range delete, reopening, models, the open errors (newer
 * schema, not a store, locked, corrupt, unwritable parent), kill -9 during
 * sampling, and failed commits: injected through the write hook, and real
 * write errors from a file-size limit (RLIMIT_FSIZE stands in for a full
 * disk, which needs a small file system and root to make).
 *
 * Child processes re-execute this binary (/proc/self/exe --child-...), so
 * RocksDB never runs in a forked copy of a process that had its threads.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/store/store-internal.h"
#include "dedupd/store/store.h"
#include "helpers.h"

#define DAY_MS (24ull * 3600 * 1000)

/* --- Helpers ---------------------------------------------------------------- */

static struct dd_store *open_ok(const char *dir, const struct dd_store_options *o)
{
    struct dd_store *s = NULL;
    char err[1024] = "";
    int r = dd_store_open(dir, o, &s, err, sizeof(err));
    if (r != 0)
        fail_msg("open %s: %d %s", dir, r, err);
    return s;
}

static void put_samples(struct dd_store *s, const char *series, const uint64_t *ts, size_t n)
{
    struct dd_store_batch *b;
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    for (size_t i = 0; i < n; i++) {
        char v[96];
        int len = snprintf(v, sizeof(v), "{\"series\":\"%.40s\",\"ts\":%llu}", series,
                           (unsigned long long)ts[i]);
        assert_int_equal(dd_store_batch_put_sample(b, series, ts[i], v, (size_t)len), 0);
    }
    assert_int_equal(dd_store_batch_commit(b, false), 0);
}

/* The timestamps a query returns, checking each value names its series. */
struct seen {
    const char *series;
    uint64_t ts[64];
    size_t n;
};

static int record(void *ud, uint64_t ts, const void *value, size_t len)
{
    struct seen *sn = ud;
    char want[96];
    int wl = snprintf(want, sizeof(want), "{\"series\":\"%.40s\",\"ts\":%llu}", sn->series,
                      (unsigned long long)ts);
    assert_int_equal(len, (size_t)wl);
    assert_memory_equal(value, want, len);
    assert_true(sn->n < DD_ARRAY_SIZE(sn->ts));
    sn->ts[sn->n++] = ts;
    return 0;
}

static size_t query(struct dd_store *s, const char *series, uint64_t from, uint64_t to,
                    uint64_t step, size_t limit, struct seen *sn, bool *truncated)
{
    struct dd_store_query q = {
        .series = series, .from_ms = from, .to_ms = to, .step_ms = step, .limit = limit};
    int r;
    memset(sn, 0, sizeof(*sn));
    sn->series = series;
    r = dd_store_query(s, &q, record, sn, truncated);
    assert_true(r >= 0);
    assert_int_equal((size_t)r, sn->n);
    return sn->n;
}

static void assert_ts(const struct seen *sn, const uint64_t *want, size_t n)
{
    assert_int_equal(sn->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(sn->ts[i], want[i]);
}

/* Forks and execs this binary as `--child-MODE dir`, optionally as uid;
 * its stdout comes back on *ret_fd. */
static pid_t spawn_self(const char *mode, const char *dir, const struct passwd *as, int *ret_fd)
{
    int p[2];
    pid_t pid;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char a0[] = "test-store", m[64], d[4096];
        char *const argv[] = {a0, m, d, NULL};
        snprintf(m, sizeof(m), "%s", mode);
        snprintf(d, sizeof(d), "%s", dir);
        if (dup2(p[1], STDOUT_FILENO) < 0)
            _exit(120);
        if (as && (setgroups(0, NULL) != 0 || setgid(as->pw_gid) != 0 || setuid(as->pw_uid) != 0))
            _exit(121);
        execv("/proc/self/exe", argv);
        _exit(122);
    }
    close(p[1]);
    *ret_fd = p[0];
    return pid;
}

/* Reads fd to EOF into a NUL-terminated string (at most cap-1 bytes kept). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char tmp[4096];
        ssize_t got = read(fd, tmp, sizeof(tmp));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t k = DD_MIN((size_t)got, cap - 1 - n);
        memcpy(buf + n, tmp, k);
        n += k;
    }
    buf[n] = '\0';
    return n;
}

static int wait_exit(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* --- Children ---------------------------------------------------------------- */

/* Tries to open dir; prints "rc=N msg=..." and exits 0 when it opened. */
static int child_open(const char *dir)
{
    struct dd_store *s = NULL;
    char err[1024] = "";
    int r = dd_store_open(dir, NULL, &s, err, sizeof(err));
    printf("rc=%d msg=%s\n", r, err);
    fflush(stdout);
    dd_store_free(s);
    return r == 0 ? 0 : 1;
}

/* Commits batch i (three series at ts 1000 + 10 i) every 2 ms and reports
 * each committed i on stdout, until killed. */
static int child_writer(const char *dir)
{
    static const char *const series[] = {"node", "vol/a", "vol/ab"};
    struct dd_store *s = NULL;
    char err[1024];

    if (dd_store_open(dir, NULL, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 2;
    }
    for (uint64_t i = 0; i < 1000000; i++) {
        struct dd_store_batch *b;
        char line[32];
        int len;
        if (dd_store_batch_begin(s, &b) != 0)
            return 3;
        for (size_t k = 0; k < DD_ARRAY_SIZE(series); k++) {
            char v[64];
            int vl = snprintf(v, sizeof(v), "{\"i\":%llu}", (unsigned long long)i);
            if (dd_store_batch_put_sample(b, series[k], 1000 + 10 * i, v, (size_t)vl) != 0)
                return 4;
        }
        if (dd_store_batch_commit(b, false) != 0)
            return 5;
        len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)i);
        if (write(STDOUT_FILENO, line, (size_t)len) != len)
            return 6;
        usleep(2000);
    }
    return 0;
}

static int count_cb(void *ud, uint64_t ts, const void *v, size_t len)
{
    (void)ts, (void)v, (void)len;
    (*(size_t *)ud)++;
    return 0;
}

#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "child: %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            return 10;                                                                             \
        }                                                                                          \
    } while (0)

/* Real write errors: a file-size limit makes the WAL append fail with EFBIG
 * (as a full disk fails it with ENOSPC). The failed batch is dropped and
 * counted, reads go on, and the next commit reopens the database and
 * succeeds. Afterwards every committed batch and no dropped one is there. */
static int child_fsize(const char *dir)
{
    struct dd_store_options o;
    struct dd_store *s = NULL;
    struct dd_store_stats st;
    struct rlimit old, lim;
    char err[1024], value[1024];
    bool committed[400] = {false};
    int failed_at = -1, r;
    size_t n;

    dd_store_options_init(&o);
    o.recover_interval_ms = 0;
    memset(value, 'x', sizeof(value));
    CHILD_CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
    CHILD_CHECK(dd_store_open(dir, &o, &s, err, sizeof(err)) == 0);
    CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    for (int i = 0; i < 400; i++) {
        struct dd_store_batch *b;
        if (i == 5) {
            CHILD_CHECK(dd_store_get_stats(s, &st) == 0);
            lim = old;
            lim.rlim_cur = st.wal_bytes + 64 * 1024; /* room for ~20 batches */
            CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
        }
        CHILD_CHECK(dd_store_batch_begin(s, &b) == 0);
        CHILD_CHECK(dd_store_batch_put_sample(b, "node", (uint64_t)i, value, sizeof(value)) == 0);
        CHILD_CHECK(dd_store_batch_put_sample(b, "vol/x", (uint64_t)i, value, sizeof(value)) == 0);
        r = dd_store_batch_commit(b, false);
        if (r == 0) {
            committed[i] = true;
            if (failed_at >= 0 && i > failed_at + 1)
                break; /* recovered and wrote on */
            continue;
        }
        CHILD_CHECK(failed_at < 0); /* one failure, then the reopen fixes it */
        CHILD_CHECK(r == -EFBIG);
        failed_at = i;
        /* Reads keep working after the failure. */
        n = 0;
        struct dd_store_query q = {.series = "node", .from_ms = 0, .to_ms = UINT64_MAX};
        CHILD_CHECK(dd_store_query(s, &q, count_cb, &n, NULL) == i && n == (size_t)i);
        CHILD_CHECK(dd_store_get_stats(s, &st) == 0);
        CHILD_CHECK(st.samples_dropped == 2 && st.commits_failed == 1);
        printf("write failed at batch %d: %s\n", i, dd_strerror(r));
    }
    CHILD_CHECK(failed_at > 5);
    CHILD_CHECK(dd_store_get_stats(s, &st) == 0);
    CHILD_CHECK(st.reopens >= 1 && !st.read_only && st.samples_dropped == 2);
    printf("reopens %llu, written %llu, dropped %llu\n", (unsigned long long)st.reopens,
           (unsigned long long)st.samples_written, (unsigned long long)st.samples_dropped);
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    s = dd_store_free(s);

    CHILD_CHECK(dd_store_open(dir, &o, &s, err, sizeof(err)) == 0);
    for (int i = 0; i < 400; i++) {
        void *v = NULL;
        size_t len = 0;
        r = dd_store_get_sample(s, "vol/x", (uint64_t)i, &v, &len);
        CHILD_CHECK(committed[i] ? r == 0 && len == sizeof(value) : r == -ENOENT);
        dd_free(v);
    }
    dd_store_free(s);
    fflush(stdout);
    return 0;
}

/* --- Tests ---------------------------------------------------------------------- */

static void test_rocks_status_table(void **state)
{
    static const struct {
        const char *text;
        int code;
    } cases[] = {
        {"Corruption: CURRENT file does not end with newline", -EUCLEAN},
        {"IO error: While lock file: /d/LOCK: Resource temporarily unavailable", -EBUSY},
        {"IO error: lock hold by current process, acquire time 1 acquiring thread 2: /d/LOCK: "
         "No locks available",
         -EBUSY},
        {"IO error: No space left on device: While appending to file: /d/000004.log: No space "
         "left on device",
         -ENOSPC},
        {"IO error: While appending to file: /d/000004.log: File too large", -EFBIG},
        {"IO error: While open a file for appending: /d/LOCK: Permission denied", -EACCES},
        {"IO error: While mkdir if missing: /d: Read-only file system", -EROFS},
        {"IO error: No such file or directory: While opening a file for sequentially reading: "
         "/d/CURRENT: No such file or directory",
         -ENOENT},
        {"Invalid argument: Column families not opened: x", -EINVAL},
        {"Not implemented: x", -ENOTSUP},
        {"IO error: something else", -EIO},
        {"Busy: ", DD_E_LIBRARY},
    };
    char msg[256];
    (void)state;

    assert_int_equal(dd_rocks_status(NULL, msg, sizeof(msg)), 0);
    assert_string_equal(msg, "");
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        char *copy = strdup(cases[i].text); /* freed by dd_rocks_status */
        assert_non_null(copy);
        assert_int_equal(dd_rocks_status(copy, msg, sizeof(msg)), cases[i].code);
        assert_string_equal(msg, cases[i].text);
    }
}

static void test_put_get_query(void **state)
{
    static const uint64_t ts[] = {1000, 1900, 2000, 3100, 3500, 4000, 6000, 7999, 9000, 10000};
    char *dir = tt_tmpdir();
    struct dd_store *s = open_ok(dir, NULL);
    struct dd_store_stats st;
    struct dd_store_point *pts = NULL;
    struct seen sn;
    bool trunc = true;
    size_t n = 0;
    void *v = NULL;
    (void)state;

    put_samples(s, "node", ts, DD_ARRAY_SIZE(ts));

    assert_int_equal(dd_store_get_sample(s, "node", 3100, &v, &n), 0);
    assert_string_equal(v, "{\"series\":\"node\",\"ts\":3100}");
    assert_int_equal(n, strlen(v));
    dd_free(v);
    assert_int_equal(dd_store_get_sample(s, "node", 3101, &v, &n), -ENOENT);

    assert_int_equal(query(s, "node", 0, UINT64_MAX, 0, 0, &sn, &trunc), 10);
    assert_false(trunc);
    assert_ts(&sn, ts, 10);
    /* Both ends inclusive. */
    query(s, "node", 2000, 7999, 0, 0, &sn, &trunc);
    assert_ts(&sn, (const uint64_t[]){2000, 3100, 3500, 4000, 6000, 7999}, 6);
    query(s, "node", 2001, 2999, 0, 0, &sn, NULL);
    assert_int_equal(sn.n, 0);
    /* Newest first: with a limit, the newest points of the range; other
     * series (other prefixes) never leak in at either end. */
    put_samples(s, "nod", (const uint64_t[]){5000}, 1);
    put_samples(s, "node2", (const uint64_t[]){5000}, 1);
    struct dd_store_query nq = {
        .series = "node", .from_ms = 1500, .to_ms = 8500, .limit = 3, .newest_first = true};
    memset(&sn, 0, sizeof(sn));
    sn.series = "node";
    assert_int_equal(dd_store_query(s, &nq, record, &sn, &trunc), 3);
    assert_true(trunc);
    assert_ts(&sn, (const uint64_t[]){7999, 6000, 4000}, 3);
    nq.to_ms = UINT64_MAX;
    nq.from_ms = 0;
    nq.limit = 0;
    memset(&sn, 0, sizeof(sn));
    sn.series = "node";
    assert_int_equal(dd_store_query(s, &nq, record, &sn, &trunc), 10);
    assert_false(trunc);
    assert_int_equal(sn.ts[0], 10000);
    assert_int_equal(sn.ts[9], 1000);
    nq.step_ms = 10; /* not with a step */
    assert_int_equal(dd_store_query(s, &nq, record, &sn, &trunc), -EINVAL);
    /* Step 2500 from 1000: buckets [1000,3500) [3500,6000) [6000,8500) [8500,11000). */
    query(s, "node", 1000, 10000, 2500, 0, &sn, &trunc);
    assert_ts(&sn, (const uint64_t[]){1000, 3500, 6000, 9000}, 4);
    /* A step larger than the range keeps the first point only. */
    query(s, "node", 1500, 10000, 1000000, 0, &sn, NULL);
    assert_ts(&sn, (const uint64_t[]){1900}, 1);
    /* Limit: truncated only when points were cut off. */
    query(s, "node", 0, UINT64_MAX, 0, 3, &sn, &trunc);
    assert_ts(&sn, ts, 3);
    assert_true(trunc);
    query(s, "node", 0, UINT64_MAX, 0, 10, &sn, &trunc);
    assert_false(trunc);
    query(s, "node", 1000, 10000, 2500, 2, &sn, &trunc);
    assert_ts(&sn, (const uint64_t[]){1000, 3500}, 2);
    assert_true(trunc);

    /* Array form. */
    struct dd_store_query q = {.series = "node", .from_ms = 3000, .to_ms = 5000};
    assert_int_equal(dd_store_query_array(s, &q, &pts, &n, &trunc), 3);
    assert_int_equal(n, 3);
    assert_int_equal(pts[0].ts_ms, 3100);
    assert_string_equal(pts[2].value, "{\"series\":\"node\",\"ts\":4000}");
    dd_store_points_free(pts, n);
    q.series = "nothing";
    pts = (void *)1;
    assert_int_equal(dd_store_query_array(s, &q, &pts, &n, NULL), 0);
    assert_null(pts);
    assert_int_equal(n, 0);

    /* Bad queries. */
    q = (struct dd_store_query){.series = "node", .from_ms = 5, .to_ms = 4};
    assert_int_equal(dd_store_query(s, &q, record, &sn, NULL), -EINVAL);
    q = (struct dd_store_query){.series = "", .from_ms = 0, .to_ms = 4};
    assert_int_equal(dd_store_query(s, &q, record, &sn, NULL), -EINVAL);

    /* Overwrite: same series and timestamp replaces. */
    struct dd_store_batch *b;
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_put_sample(b, "node", 1000, "new", 3), 0);
    assert_int_equal(dd_store_batch_put_sample(b, "", 1000, "x", 1), -EINVAL);
    assert_int_equal(dd_store_batch_put_sample(b, "node", 1, NULL, DD_STORE_VALUE_MAX + 1),
                     -EINVAL);
    assert_int_equal(dd_store_batch_commit(b, true), 0);
    assert_int_equal(dd_store_get_sample(s, "node", 1000, &v, &n), 0);
    assert_string_equal(v, "new");
    dd_free(v);
    /* An empty batch writes nothing; an abandoned one neither. */
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_commit(b, false), 0);
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_put_sample(b, "node", 77, "x", 1), 0);
    assert_null(dd_store_batch_free(b));
    assert_int_equal(dd_store_get_sample(s, "node", 77, &v, &n), -ENOENT);

    assert_int_equal(dd_store_get_stats(s, &st), 0);
    assert_int_equal(st.samples_written, 13); /* 10 + "nod" + "node2" + one replaced */
    assert_int_equal(st.samples_dropped, 2);
    assert_int_equal(st.commits_failed, 0);
    assert_true(st.wal_bytes > 0);
    assert_int_equal(st.disk_bytes, st.sst_bytes + st.wal_bytes);
    assert_false(st.read_only);

    assert_null(dd_store_free(s));
    assert_null(dd_store_free(NULL));
    tt_rmtree(dir);
    free(dir);
}

static void test_series_do_not_mix(void **state)
{
    /* Prefixes of each other, as text and as key bytes. */
    char longest[DD_STORE_SERIES_MAX + 1], toolong[DD_STORE_SERIES_MAX + 2], ff[8];
    const char *names[] = {"v", "vol/", "vol/a", "vol/ab", "vol/a/b", "vol/b", longest, ff};
    char *dir = tt_tmpdir();
    struct dd_store *s = open_ok(dir, NULL);
    struct dd_store_batch *b;
    struct seen sn;
    (void)state;

    memset(longest, 'l', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    memset(toolong, 'l', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = '\0';
    memset(ff, 0xff, sizeof(ff) - 1);
    ff[sizeof(ff) - 1] = '\0';

    /* Series i gets points 0..i, all interleaved in time. */
    for (size_t i = 0; i < DD_ARRAY_SIZE(names); i++) {
        uint64_t ts[16];
        for (size_t k = 0; k <= i; k++)
            ts[k] = 100 * k + i;
        put_samples(s, names[i], ts, i + 1);
    }
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_put_sample(b, toolong, 1, "x", 1), -EINVAL);
    assert_int_equal(dd_store_batch_commit(b, false), 0);

    for (size_t i = 0; i < DD_ARRAY_SIZE(names); i++) {
        query(s, names[i], 0, UINT64_MAX, 0, 0, &sn, NULL);
        assert_int_equal(sn.n, i + 1);
        for (size_t k = 0; k <= i; k++)
            assert_int_equal(sn.ts[k], 100 * k + i);
        query(s, names[i], 100, 199, 0, 0, &sn, NULL);
        assert_int_equal(sn.n, i >= 1 ? 1 : 0);
    }
    query(s, "vol", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_int_equal(sn.n, 0);

    /* listing: every series once, bytewise order, by prefix */
    char **list = NULL;
    size_t nlist = 0;
    assert_int_equal(dd_store_list_series(s, "vol/", &list, &nlist), 0);
    const char *want[] = {"vol/", "vol/a", "vol/a/b", "vol/ab", "vol/b"};
    assert_int_equal(nlist, DD_ARRAY_SIZE(want));
    for (size_t i = 0; i < nlist; i++) {
        assert_string_equal(list[i], want[i]);
        dd_free(list[i]);
    }
    dd_free(list);
    assert_int_equal(dd_store_list_series(s, "", &list, &nlist), 0);
    assert_int_equal(nlist, DD_ARRAY_SIZE(names));
    for (size_t i = 0; i < nlist; i++)
        dd_free(list[i]);
    dd_free(list);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

struct prefix_seen {
    char series[8][64];
    uint64_t ts[8][8];
    size_t npts[8], nseries;
};

static int prefix_record(void *ud, const char *series, uint64_t ts, const void *v, size_t len)
{
    struct prefix_seen *ps = ud;
    char want[96];
    int wl = snprintf(want, sizeof(want), "{\"series\":\"%.40s\",\"ts\":%llu}", series,
                      (unsigned long long)ts);
    assert_int_equal(len, (size_t)wl);
    assert_memory_equal(v, want, len);
    if (ps->nseries == 0 || strcmp(ps->series[ps->nseries - 1], series) != 0) {
        assert_true(ps->nseries < 8);
        snprintf(ps->series[ps->nseries++], sizeof(ps->series[0]), "%s", series);
    }
    size_t i = ps->nseries - 1;
    assert_true(ps->npts[i] < 8);
    ps->ts[i][ps->npts[i]++] = ts;
    return 0;
}

/* The placement role's layout: node/<node>/vol/<volume>. A prefix visits
 * exactly its series (not "node2/..." or "nodes"), in name order, each
 * newest first up to the per-series limit. */
static void test_query_prefix(void **state)
{
    const char *names[] = {"node/a/vol/x", "node/a/vol/y", "node/b/vol/x", "node/bb/vol/x",
                           "nodes",        "node",         "vol/x",        "node2/a/vol/x"};
    char *dir = tt_tmpdir();
    struct dd_store *s = open_ok(dir, NULL);
    struct prefix_seen ps;
    bool trunc = false;
    char **list;
    size_t n;
    (void)state;

    for (size_t i = 0; i < DD_ARRAY_SIZE(names); i++)
        put_samples(s, names[i], (const uint64_t[]){100, 200, 300, 400, 500}, 5);

    assert_int_equal(dd_store_list_series(s, "node/", &list, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(list[0], "node/a/vol/x");
    assert_string_equal(list[3], "node/bb/vol/x");
    for (size_t i = 0; i < n; i++)
        dd_free(list[i]);
    dd_free(list);

    struct dd_store_prefix_query q = {.prefix = "node/", .from_ms = 0, .to_ms = 450, .limit = 3};
    memset(&ps, 0, sizeof(ps));
    assert_int_equal(dd_store_query_prefix(s, &q, prefix_record, &ps, &trunc), 4);
    assert_true(trunc);
    assert_int_equal(ps.nseries, 4);
    const char *want[] = {"node/a/vol/x", "node/a/vol/y", "node/b/vol/x", "node/bb/vol/x"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(ps.series[i], want[i]);
        assert_int_equal(ps.npts[i], 3);
        assert_int_equal(ps.ts[i][0], 400);
        assert_int_equal(ps.ts[i][2], 200);
    }
    /* One node; no limit: not truncated. */
    q = (struct dd_store_prefix_query){.prefix = "node/b/", .from_ms = 0, .to_ms = UINT64_MAX};
    memset(&ps, 0, sizeof(ps));
    assert_int_equal(dd_store_query_prefix(s, &q, prefix_record, &ps, &trunc), 1);
    assert_false(trunc);
    assert_int_equal(ps.npts[0], 5);
    assert_int_equal(ps.ts[0][0], 500);
    /* Nothing under it; bad queries. */
    q.prefix = "node/c";
    assert_int_equal(dd_store_query_prefix(s, &q, prefix_record, &ps, NULL), 0);
    q.prefix = NULL;
    assert_int_equal(dd_store_query_prefix(s, &q, prefix_record, &ps, NULL), -EINVAL);
    q = (struct dd_store_prefix_query){.prefix = "", .from_ms = 5, .to_ms = 4};
    assert_int_equal(dd_store_query_prefix(s, &q, prefix_record, &ps, NULL), -EINVAL);
    /* All series. */
    q.from_ms = 0;
    q.to_ms = UINT64_MAX;
    q.limit = 1;
    memset(&ps, 0, sizeof(ps));
    assert_int_equal(dd_store_query_prefix(s, &q, prefix_record, &ps, NULL), 8);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

static int obs_count(void *ud, uint64_t ts, const char *id, size_t idl, const void *v, size_t len)
{
    (void)ts, (void)id, (void)idl, (void)v, (void)len;
    (*(size_t *)ud)++;
    return 0;
}

static void test_retention(void **state)
{
    const uint64_t base = 1700000000000ull, now = base + 20 * DAY_MS;
    const char *names[] = {"node", "vol/x", "vol/xy"};
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store *s;
    struct dd_store_batch *b;
    struct seen sn;
    size_t n = 0;
    (void)state;

    dd_store_options_init(&o);
    assert_int_equal(o.retention_ms, 14 * DAY_MS);
    s = open_ok(dir, &o);
    /* One point a day for 21 days, per series; observations likewise. */
    for (size_t i = 0; i < DD_ARRAY_SIZE(names); i++) {
        uint64_t ts[21];
        for (size_t d = 0; d < 21; d++)
            ts[d] = base + d * DAY_MS;
        put_samples(s, names[i], ts, 21);
    }
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    for (uint64_t d = 0; d < 21; d++)
        assert_int_equal(dd_store_batch_put_observation(b, base + d * DAY_MS, "ns/pod", "{}", 2),
                         0);
    assert_int_equal(dd_store_batch_commit(b, false), 0);

    /* Nothing old yet: no tombstones. */
    assert_int_equal(dd_store_retain(s, base + 10 * DAY_MS), 0);
    /* Cutoff = base + 6 days: days 0..5 go, 6..20 stay (the cutoff point stays). */
    assert_int_equal(dd_store_retain(s, now), (int)DD_ARRAY_SIZE(names) + 1);
    for (size_t i = 0; i < DD_ARRAY_SIZE(names); i++) {
        query(s, names[i], 0, UINT64_MAX, 0, 0, &sn, NULL);
        assert_int_equal(sn.n, 15);
        assert_int_equal(sn.ts[0], base + 6 * DAY_MS);
        assert_int_equal(sn.ts[14], base + 20 * DAY_MS);
    }
    assert_int_equal(dd_store_query_observations(s, 0, UINT64_MAX, 0, obs_count, &n, NULL), 15);
    assert_int_equal(n, 15);
    /* Again at the same time: nothing left to delete, nothing written. */
    assert_int_equal(dd_store_retain(s, now), 0);
    /* New points after retention are kept. */
    put_samples(s, "vol/x", (const uint64_t[]){now + 1}, 1);
    query(s, "vol/x", now, UINT64_MAX, 0, 0, &sn, NULL);
    assert_ts(&sn, (const uint64_t[]){now, now + 1}, 2);
    dd_store_free(s);

    /* Survives reopening; retention 0 keeps everything. */
    o.retention_ms = 0;
    s = open_ok(dir, &o);
    assert_int_equal(dd_store_retain(s, now + 100 * DAY_MS), 0);
    query(s, "node", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_int_equal(sn.n, 15);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

static void test_reopen_and_models(void **state)
{
    char *dir = tt_tmpdir(), *sub = tt_path(dir, "a/b/store");
    struct dd_store *s;
    struct dd_store_stats st;
    struct seen sn;
    void *v = NULL;
    size_t n = 0;
    uint64_t ver = 0;
    (void)state;

    s = open_ok(sub, NULL); /* creates the parents */
    assert_string_equal(dd_store_path(s), sub);
    put_samples(s, "node", (const uint64_t[]){5, 6, 7}, 3);
    assert_int_equal(dd_store_put_model(s, "placement", 1, "m1", 2), 0);
    assert_int_equal(dd_store_put_model(s, "placement", 2, "m2-longer", 9), 0);
    assert_int_equal(dd_store_put_model(s, "placement2", 9, "other", 5), 0);
    assert_int_equal(dd_store_put_model(s, "placement", 0, "x", 1), -EINVAL);
    dd_store_free(s);

    s = open_ok(sub, NULL);
    query(s, "node", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_ts(&sn, (const uint64_t[]){5, 6, 7}, 3);
    assert_int_equal(dd_store_get_model(s, "placement", 0, &v, &n, &ver), 0);
    assert_int_equal(ver, 2);
    assert_string_equal(v, "m2-longer");
    dd_free(v);
    assert_int_equal(dd_store_get_model(s, "placement", 1, &v, &n, NULL), 0);
    assert_string_equal(v, "m1");
    dd_free(v);
    assert_int_equal(dd_store_get_model(s, "placement", 3, &v, &n, NULL), -ENOENT);
    assert_int_equal(dd_store_get_model(s, "placemen", 0, &v, &n, NULL), -ENOENT);
    /* pruning old versions leaves the newer ones and other names alone */
    assert_int_equal(dd_store_delete_models_before(s, "placement", 2), 0);
    assert_int_equal(dd_store_get_model(s, "placement", 1, &v, &n, NULL), -ENOENT);
    assert_int_equal(dd_store_get_model(s, "placement", 0, &v, &n, &ver), 0);
    assert_int_equal(ver, 2);
    dd_free(v);
    assert_int_equal(dd_store_get_model(s, "placement2", 9, &v, &n, NULL), 0);
    dd_free(v);
    assert_int_equal(dd_store_get_stats(s, &st), 0);
    assert_true(st.disk_bytes > 0);
    print_message("store after reopen: %llu bytes (sst %llu, wal %llu)\n",
                  (unsigned long long)st.disk_bytes, (unsigned long long)st.sst_bytes,
                  (unsigned long long)st.wal_bytes);
    dd_store_free(s);
    free(sub);
    tt_rmtree(dir);
    free(dir);
}

/* Writes meta/schema with RocksDB directly, as a newer dedupd would. */
static void raw_set_schema(const char *dir, const char *version)
{
    const char *names[] = {"default", "samples", "observations", "models", "meta", "future"};
    const rocksdb_options_t *cfo[6];
    rocksdb_column_family_handle_t *h[6];
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *err = NULL;

    rocksdb_options_set_create_missing_column_families(o, 1);
    for (int i = 0; i < 6; i++)
        cfo[i] = o;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, 6, names, cfo, h, &err);
    if (err)
        fail_msg("raw open: %s", err);
    rocksdb_put_cf(db, wo, h[4], "schema", 6, version, strlen(version), &err);
    assert_null(err);
    for (int i = 0; i < 6; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
}

static void test_schema_and_foreign_db(void **state)
{
    char *dir = tt_tmpdir(), *other = tt_path(dir, "plain-rocksdb");
    struct dd_store *s = NULL;
    char err[1024];
    (void)state;

    dd_store_free(open_ok(dir, NULL));
    raw_set_schema(dir, "1"); /* the same version, plus a family we do not know */
    s = open_ok(dir, NULL);
    put_samples(s, "node", (const uint64_t[]){1}, 1);
    dd_store_free(s);

    raw_set_schema(dir, "2");
    s = NULL;
    assert_int_equal(dd_store_open(dir, NULL, &s, err, sizeof(err)), -ENOTSUP);
    assert_null(s);
    print_message("%s\n", err);
    assert_non_null(strstr(err, dir));
    assert_non_null(strstr(err, "newer dedupd (schema version 2; this dedupd reads up to 1)"));

    raw_set_schema(dir, "garbage");
    assert_int_equal(dd_store_open(dir, NULL, &s, err, sizeof(err)), -EUCLEAN);

    /* A RocksDB database that is not ours is left alone. */
    rocksdb_options_t *o = rocksdb_options_create();
    char *rerr = NULL;
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_t *db = rocksdb_open(o, other, &rerr);
    assert_null(rerr);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    assert_int_equal(dd_store_open(other, NULL, &s, err, sizeof(err)), -EINVAL);
    print_message("%s\n", err);
    assert_non_null(strstr(err, "not a dedupd store"));

    free(other);
    tt_rmtree(dir);
    free(dir);
}

static void test_locked(void **state)
{
    char *dir = tt_tmpdir();
    struct dd_store *s = open_ok(dir, NULL), *s2 = NULL;
    char err[1024], out[4096];
    int fd;
    pid_t pid;
    (void)state;

    /* The same process. */
    assert_int_equal(dd_store_open(dir, NULL, &s2, err, sizeof(err)), -EBUSY);
    assert_null(s2);
    assert_non_null(strstr(err, "is locked by another process; is another dedupd running?"));
    assert_non_null(strstr(err, dir));

    /* Another process. */
    pid = spawn_self("--child-open", dir, NULL, &fd);
    read_all(fd, out, sizeof(out));
    close(fd);
    assert_int_equal(wait_exit(pid), 1);
    print_message("%s", out);
    assert_non_null(strstr(out, "rc=-16 ")); /* -EBUSY */
    assert_non_null(strstr(out, "is locked by another process; is another dedupd running?"));

    /* Released on close. */
    dd_store_free(s);
    dd_store_free(open_ok(dir, NULL));
    tt_rmtree(dir);
    free(dir);
}

static void expect_corrupt(const char *dir, const char *what)
{
    struct dd_store *s = NULL;
    char err[1024];
    int r = dd_store_open(dir, NULL, &s, err, sizeof(err));

    print_message("%s: %s\n", what, err);
    assert_int_equal(r, -EUCLEAN);
    assert_null(s);
    assert_non_null(strstr(err, dir));
    assert_non_null(strstr(err, "corrupt"));
    assert_non_null(strstr(err, "restore it from a backup, or move the directory away"));
}

static char *find_manifest(const char *dir)
{
    char cur[256] = "";
    char *p = tt_path(dir, "CURRENT");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(cur, sizeof(cur), f));
    fclose(f);
    free(p);
    cur[strcspn(cur, "\n")] = '\0';
    return tt_path(dir, cur);
}

static void test_corrupt(void **state)
{
    static const char garbage[] = "\x13\x37 this is not a manifest \x00\xff\xfe garbage";
    char *dir = tt_tmpdir(), *cur = tt_path(dir, "CURRENT"), *man;
    struct dd_store *s;
    (void)state;

    /* CURRENT overwritten. */
    s = open_ok(dir, NULL);
    put_samples(s, "node", (const uint64_t[]){1, 2}, 2);
    dd_store_free(s);
    man = find_manifest(dir);
    tt_write_file(cur, garbage, sizeof(garbage) - 1);
    expect_corrupt(dir, "CURRENT overwritten");
    tt_rmtree(dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    free(man);

    /* MANIFEST overwritten. */
    s = open_ok(dir, NULL);
    put_samples(s, "node", (const uint64_t[]){1, 2}, 2);
    dd_store_free(s);
    man = find_manifest(dir);
    tt_write_file(man, garbage, sizeof(garbage) - 1);
    expect_corrupt(dir, "MANIFEST overwritten");
    tt_rmtree(dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    free(man);

    /* CURRENT gone: RocksDB would start over; we refuse. */
    s = open_ok(dir, NULL);
    dd_store_free(s);
    assert_int_equal(unlink(cur), 0);
    expect_corrupt(dir, "CURRENT removed");

    free(cur);
    tt_rmtree(dir);
    free(dir);
}

/* Damage to RocksDB's own files that it reports as a raw I/O error: the
 * message names the path, says what is wrong and what to do, and the repair
 * it advises works. */
static void test_open_advice(void **state)
{
    char *dir = tt_tmpdir(), *cur = tt_path(dir, "CURRENT"), *man;
    struct dd_store *s = NULL;
    struct seen sn;
    char err[1024];
    (void)state;

    /* The MANIFEST that CURRENT names is gone. */
    s = open_ok(dir, NULL);
    put_samples(s, "node", (const uint64_t[]){1, 2}, 2);
    dd_store_free(s);
    s = open_ok(dir, NULL); /* the samples are in an .sst now */
    dd_store_free(s);
    man = find_manifest(dir);
    assert_int_equal(unlink(man), 0);
    expect_corrupt(dir, "MANIFEST missing");
    assert_int_equal(dd_store_open(dir, NULL, &s, err, sizeof(err)), -EUCLEAN);
    assert_non_null(strstr(err, "CURRENT names MANIFEST-"));
    assert_non_null(strstr(err, "which is missing"));
    assert_non_null(strstr(err, "stop dedupd and run RocksDB's repair"));
    free(man);
    assert_int_equal(dd_store_repair(dir, err, sizeof(err)), 0);
    s = open_ok(dir, NULL);
    query(s, "node", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_ts(&sn, (const uint64_t[]){1, 2}, 2);
    dd_store_free(s);

    /* CURRENT is a directory. */
    assert_int_equal(unlink(cur), 0);
    assert_int_equal(mkdir(cur, 0700), 0);
    expect_corrupt(dir, "CURRENT a directory");
    assert_int_equal(dd_store_open(dir, NULL, &s, err, sizeof(err)), -EUCLEAN);
    assert_non_null(strstr(err, "/CURRENT is a directory, not RocksDB's pointer to its MANIFEST"));
    assert_non_null(strstr(err, "rmdir"));
    assert_int_equal(dd_store_repair(dir, err, sizeof(err)), 0);
    s = open_ok(dir, NULL);
    query(s, "node", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_ts(&sn, (const uint64_t[]){1, 2}, 2);
    dd_store_free(s);

    /* A non-empty directory is not removed by the repair. */
    assert_int_equal(unlink(cur), 0);
    assert_int_equal(mkdir(cur, 0700), 0);
    char *inner = tt_path(cur, "x");
    tt_write_file(inner, "x", 1);
    assert_int_equal(dd_store_repair(dir, err, sizeof(err)), -EISDIR);
    print_message("%s\n", err);
    assert_non_null(strstr(err, "is a directory that is not empty"));
    free(inner);
    free(cur);
    tt_rmtree(dir);
    free(dir);
}

static void test_unwritable_parent(void **state)
{
    char *dir = tt_tmpdir(), *parent = tt_path(dir, "ro"), *store = tt_path(parent, "store");
    char out[4096];
    (void)state;

    assert_int_equal(mkdir(parent, 0755), 0);
    if (geteuid() == 0) {
        /* Root ignores modes: try as nobody, who may enter but not write. */
        struct passwd *pw = getpwnam("nobody");
        int fd;
        pid_t pid;
        if (!pw) {
            print_message("no user nobody: skipped\n");
            goto out;
        }
        assert_int_equal(chmod(dir, 0755), 0);
        pid = spawn_self("--child-open", store, pw, &fd);
        read_all(fd, out, sizeof(out));
        close(fd);
        assert_int_equal(wait_exit(pid), 1);
    } else {
        struct dd_store *s = NULL;
        char err[1024];
        assert_int_equal(chmod(parent, 0555), 0);
        int r = dd_store_open(store, NULL, &s, err, sizeof(err));
        snprintf(out, sizeof(out), "rc=%d msg=%s\n", r, err);
        assert_int_equal(chmod(parent, 0755), 0);
    }
    print_message("%s", out);
    assert_non_null(strstr(out, "rc=-13 ")); /* -EACCES */
    assert_non_null(strstr(out, store));
    assert_non_null(strstr(out, "Permission denied; create it writable by the user dedupd runs"));
out:
    free(store);
    free(parent);
    tt_rmtree(dir);
    free(dir);
}

static void test_kill9_durability(void **state)
{
    char *dir = tt_tmpdir();
    char out[1 << 16];
    size_t got = 0, last = 0, lines = 0;
    struct dd_store *s;
    struct dd_store_point *pts[3];
    size_t n[3];
    const char *series[] = {"node", "vol/a", "vol/ab"};
    int fd;
    pid_t pid;
    (void)state;

    pid = spawn_self("--child-writer", dir, NULL, &fd);
    /* Wait for 50 committed batches, then kill mid-sampling. */
    while (lines < 50) {
        ssize_t k = read(fd, out + got, sizeof(out) - 1 - got);
        assert_true(k > 0);
        for (ssize_t i = 0; i < k; i++)
            lines += out[got + (size_t)i] == '\n';
        got += (size_t)k;
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(wait_exit(pid), 128 + SIGKILL);
    got += read_all(fd, out + got, sizeof(out) - got);
    close(fd);
    /* The last complete line is the last batch the child saw committed. */
    for (char *line = out; *line;) {
        char *nl = strchr(line, '\n');
        uint64_t v;
        if (!nl)
            break;
        assert_int_equal(dd_parse_u64_n(line, (size_t)(nl - line), &v), 0);
        last = (size_t)v;
        line = nl + 1;
    }

    s = open_ok(dir, NULL);
    for (int k = 0; k < 3; k++) {
        struct dd_store_query q = {.series = series[k], .from_ms = 0, .to_ms = UINT64_MAX};
        assert_true(dd_store_query_array(s, &q, &pts[k], &n[k], NULL) >= 0);
    }
    print_message("child reported batch %zu committed; %zu batches on disk after kill -9\n", last,
                  n[0]);
    /* Batches are atomic: every series has the same count. All reported ones
     * are there, and at most the one in flight beyond them. */
    assert_int_equal(n[0], n[1]);
    assert_int_equal(n[0], n[2]);
    assert_true(n[0] >= last + 1);
    assert_true(n[0] <= last + 2);
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n[k]; i++) {
            char want[32];
            snprintf(want, sizeof(want), "{\"i\":%zu}", i);
            assert_int_equal(pts[k][i].ts_ms, 1000 + 10 * i);
            assert_string_equal(pts[k][i].value, want);
        }
        dd_store_points_free(pts[k], n[k]);
    }
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

static int hook_calls;

static void failing_write(rocksdb_t *db, const rocksdb_writeoptions_t *wo, rocksdb_writebatch_t *wb,
                          char **errptr)
{
    (void)db, (void)wo, (void)wb;
    hook_calls++;
    *errptr = strdup("IO error: No space left on device: While appending to file: "
                     "/x/000004.log: No space left on device");
}

static void test_commit_failure_counts_dropped(void **state)
{
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store *s;
    struct dd_store_batch *b;
    struct dd_store_stats st;
    struct seen sn;
    (void)state;

    dd_store_options_init(&o);
    o.recover_interval_ms = 0;
    s = open_ok(dir, &o);
    put_samples(s, "node", (const uint64_t[]){1, 2}, 2);

    dd_store_test_write = failing_write;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(dd_store_batch_begin(s, &b), 0);
        assert_int_equal(dd_store_batch_put_sample(b, "node", 10, "a", 1), 0);
        assert_int_equal(dd_store_batch_put_sample(b, "vol/a", 10, "b", 1), 0);
        assert_int_equal(dd_store_batch_put_sample(b, "vol/b", 10, "c", 1), 0);
        assert_int_equal(dd_store_batch_commit(b, false), -ENOSPC);
        /* Reads go on. */
        query(s, "node", 0, UINT64_MAX, 0, 0, &sn, NULL);
        assert_ts(&sn, (const uint64_t[]){1, 2}, 2);
    }
    /* The second failure tried a reopen and the write again. */
    assert_int_equal(hook_calls, 3);
    assert_int_equal(dd_store_get_stats(s, &st), 0);
    assert_int_equal(st.samples_written, 2);
    assert_int_equal(st.samples_dropped, 6);
    assert_int_equal(st.commits_failed, 2);
    assert_int_equal(st.reopens, 1);
    assert_false(st.read_only);
    /* Other writers see the same error and do not count samples. */
    assert_int_equal(dd_store_put_model(s, "m", 1, "x", 1), -ENOSPC);
    dd_store_test_write = NULL;

    /* Space is back: writes succeed. */
    put_samples(s, "node", (const uint64_t[]){3}, 1);
    query(s, "node", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_ts(&sn, (const uint64_t[]){1, 2, 3}, 3);
    assert_int_equal(dd_store_get_stats(s, &st), 0);
    assert_int_equal(st.samples_written, 3);
    assert_int_equal(st.samples_dropped, 6);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

/* A recovery that cannot reopen the store at all (its directory is gone)
 * leaves no database and no family handles: adding to a batch or writing a
 * model then fails with -EROFS (it dereferenced a NULL handle before). */
static void test_failed_recovery_leaves_no_db(void **state)
{
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store *s;
    struct dd_store_batch *b;
    struct dd_store_stats st;
    (void)state;

    dd_store_options_init(&o);
    o.recover_interval_ms = 0;
    s = open_ok(dir, &o);
    dd_store_test_write = failing_write;
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_put_sample(b, "node", 10, "a", 1), 0);
    assert_int_equal(dd_store_batch_commit(b, false), -ENOSPC);
    tt_rmtree(dir);
    /* this commit fails too, and its recovery finds no directory, for
     * writing or reading */
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_put_sample(b, "node", 11, "a", 1), 0);
    assert_int_equal(dd_store_batch_commit(b, false), -EROFS);
    dd_store_test_write = NULL;
    assert_int_equal(dd_store_get_stats(s, &st), 0);
    assert_int_equal(st.reopens, 1);

    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_put_sample(b, "node", 12, "a", 1), -EROFS);
    assert_int_equal(dd_store_batch_put_observation(b, 12, "obs", "x", 1), -EROFS);
    assert_int_equal(dd_store_batch_commit(b, false), 0); /* an empty batch */
    assert_int_equal(dd_store_put_model(s, "m", 1, "x", 1), -EROFS);
    assert_int_equal(dd_store_delete_models_before(s, "m", 5), -EROFS);
    assert_int_equal(dd_store_get_stats(s, &st), 0);
    assert_int_equal(st.samples_dropped, 3);
    dd_store_free(s);
    free(dir);
}

static void test_real_write_failure(void **state)
{
    char *dir = tt_tmpdir();
    char out[4096];
    int fd, rc;
    pid_t pid;
    (void)state;

    pid = spawn_self("--child-fsize", dir, NULL, &fd);
    read_all(fd, out, sizeof(out));
    close(fd);
    rc = wait_exit(pid);
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "write failed at batch"));
    tt_rmtree(dir);
    free(dir);
}

/* SIGHUP raises the retention: the next pass deletes at the new cutoff, so
 * points the old cutoff would have deleted stay; lowering it deletes more. */
static void test_set_retention(void **state)
{
    const uint64_t base = 1700000000000ull, now = base + 20 * DAY_MS;
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store *s;
    struct seen sn;
    uint64_t ts[21];
    (void)state;

    dd_store_options_init(&o);
    o.retention_ms = 7 * DAY_MS;
    s = open_ok(dir, &o);
    for (size_t d = 0; d < 21; d++)
        ts[d] = base + d * DAY_MS;
    put_samples(s, "vol/x", ts, 21);
    dd_store_set_retention(s, 18 * DAY_MS); /* raised before any pass */
    assert_int_equal(dd_store_retain(s, now), 1);
    query(s, "vol/x", 0, UINT64_MAX, 0, 0, &sn, NULL);
    /* cutoff base + 2 days, not base + 13 days */
    assert_int_equal(sn.n, 19);
    assert_int_equal(sn.ts[0], base + 2 * DAY_MS);
    dd_store_set_retention(s, 0); /* keep everything */
    assert_int_equal(dd_store_retain(s, now + 100 * DAY_MS), 0);
    query(s, "vol/x", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_int_equal(sn.n, 19);
    dd_store_set_retention(s, 5 * DAY_MS); /* lowered */
    assert_int_equal(dd_store_retain(s, now), 1);
    query(s, "vol/x", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_int_equal(sn.n, 6);
    assert_int_equal(sn.ts[0], base + 15 * DAY_MS);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

/* Every 10 s for 3 h on two series, one at bucket starts, one 7 s after. */
static void put_every_10s(struct dd_store *s, uint64_t base, uint64_t hours)
{
    struct dd_store_batch *b;
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    for (uint64_t t = base; t < base + hours * 3600000; t += 10000) {
        assert_int_equal(dd_store_batch_put_sample(b, "vol/x", t, "{}", 2), 0);
        assert_int_equal(dd_store_batch_put_sample(b, "vol/y", t + 7000, "{}", 2), 0);
    }
    assert_int_equal(dd_store_batch_commit(b, false), 0);
}

static size_t count_points(struct dd_store *s, const char *series, uint64_t from, uint64_t to,
                           struct dd_store_point **ret)
{
    struct dd_store_query q = {.series = series, .from_ms = from, .to_ms = to};
    size_t n = 0;
    assert_true(dd_store_query_array(s, &q, ret, &n, NULL) >= 0);
    return n;
}

/* Full resolution for the newest hour, then the first point of each
 * 5-minute bucket (absolute time); the pass resumes where it stopped, also
 * after reopening. */
static void test_downsampling(void **state)
{
    const uint64_t step = 300000, base = 5666667ull * step, hour = 3600000;
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store_point *p;
    struct dd_store *s;
    size_t n;
    (void)state;

    dd_store_options_init(&o);
    assert_int_equal(o.full_resolution_ms, 0); /* off unless asked for */
    o.retention_ms = 0;
    o.full_resolution_ms = hour;
    o.downsample_step_ms = step;
    s = open_ok(dir, &o);
    put_every_10s(s, base, 3);
    assert_int_equal(count_points(s, "vol/x", 0, UINT64_MAX, &p), 1080);
    dd_store_points_free(p, 1080);

    /* now = base + 3 h: [base, base + 2 h) thinned, 24 buckets a series. */
    assert_int_equal(dd_store_retain(s, base + 3 * hour), 48);
    n = count_points(s, "vol/x", 0, base + 2 * hour - 1, &p);
    assert_int_equal(n, 24);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i].ts_ms, base + i * step);
    dd_store_points_free(p, n);
    n = count_points(s, "vol/y", 0, base + 2 * hour - 1, &p);
    assert_int_equal(n, 24);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i].ts_ms, base + i * step + 7000);
    dd_store_points_free(p, n);
    /* The newest hour and the not yet whole bucket are untouched. */
    n = count_points(s, "vol/x", base + 2 * hour, UINT64_MAX, &p);
    assert_int_equal(n, 360);
    dd_store_points_free(p, n);
    assert_int_equal(dd_store_retain(s, base + 3 * hour + step - 1), 0);
    dd_store_free(s);

    /* Reopened: resumes at base + 2 h; ten minutes on, two buckets more. */
    s = open_ok(dir, &o);
    assert_int_equal(dd_store_retain(s, base + 3 * hour), 0);
    assert_int_equal(dd_store_retain(s, base + 3 * hour + 2 * step), 4);
    n = count_points(s, "vol/x", 0, UINT64_MAX, &p);
    assert_int_equal(n, 24 + 2 + 360 - 60);
    dd_store_points_free(p, n);
    /* Turned off by the setter: nothing more is thinned. */
    dd_store_set_downsampling(s, 0, step);
    assert_int_equal(dd_store_retain(s, base + 10 * hour), 0);
    dd_store_set_downsampling(s, hour, step);
    assert_int_equal(dd_store_retain(s, base + 10 * hour), 2 * (360 - 60) / 30);
    n = count_points(s, "vol/y", 0, UINT64_MAX, &p);
    assert_int_equal(n, 36);
    dd_store_points_free(p, n);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

/* Not a test: `test-store --bench-rows N DIR` writes N rows of a ~600-byte
 * JSON volume document (5 nodes x 16 volumes every 10 s, counters that
 * move), compacts, and prints the SST bytes per row. */
static int bench_rows(const char *arg, const char *dir)
{
    struct dd_store_options o;
    struct dd_store *s = NULL;
    struct dd_store_stats st;
    uint64_t rows = 0, n, seed = 42;
    char err[1024];

    if (dd_parse_u64(arg, &n) < 0)
        return 2;
    dd_store_options_init(&o);
    o.retention_ms = 0;
    o.min_free_bytes = 0;
    if (dd_store_open(dir, &o, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (uint64_t t = 1700000000000ull; rows < n; t += 10000) {
        struct dd_store_batch *b;
        CHILD_CHECK(dd_store_batch_begin(s, &b) == 0);
        for (int node = 0; node < 5; node++)
            for (int vol = 0; vol < 16 && rows < n; vol++, rows++) {
                char series[64], v[1024];
                uint64_t r = tt_rand64(&seed), i = (t - 1700000000000ull) / 10000;
                snprintf(series, sizeof(series), "node/worker-%04d.cluster.local/vol/vdo-pv-%02d",
                         node, vol);
                int len = snprintf(
                    v, sizeof(v),
                    "{\"ts\":%llu,\"node\":\"worker-%04d.cluster.local\",\"volume\":\"vdo-pv-%"
                    "02d\","
                    "\"pool\":\"vg-vdo/pool0\",\"logical_blocks\":268435456,\"physical_blocks\":"
                    "67108864,\"data_blocks_used\":%llu,\"overhead_blocks_used\":%llu,"
                    "\"logical_blocks_used\":%llu,\"bios_in_write\":%llu,\"bios_in_read\":%llu,"
                    "\"dedupe_advice_valid\":%llu,\"dedupe_advice_stale\":%llu,"
                    "\"compressed_fragments_written\":%llu,\"write_mib_s\":%.2f,"
                    "\"read_mib_s\":%.2f,\"savings_percent\":%.1f,\"packer_savings\":%.3f,"
                    "\"cpu_seconds\":{\"kvdo_bio\":%.3f,\"kvdo_cpu\":%.3f,\"kvdo_hash\":%.3f},"
                    "\"mode\":\"normal\",\"index_state\":\"online\"}",
                    (unsigned long long)t, node, vol,
                    (unsigned long long)(1000000 + i * 37 + (uint64_t)vol),
                    (unsigned long long)(40000 + i / 50), (unsigned long long)(2000000 + i * 91),
                    (unsigned long long)(i * 1200 + (r & 1023)),
                    (unsigned long long)(i * 700 + (r >> 10 & 511)),
                    (unsigned long long)(i * 300 + (r >> 20 & 255)),
                    (unsigned long long)(r >> 30 & 63), (unsigned long long)(i * 150),
                    (double)(r >> 40 & 4095) / 40.0, (double)(r >> 12 & 2047) / 50.0,
                    30.0 + (double)(r >> 50 & 255) / 10.0, (double)(r >> 8 & 999) / 1000.0,
                    (double)i * 0.011, (double)i * 0.023, (double)i * 0.017);
                CHILD_CHECK(len > 0 && (size_t)len < sizeof(v));
                CHILD_CHECK(dd_store_batch_put_sample(b, series, t, v, (size_t)len) == 0);
            }
        CHILD_CHECK(dd_store_batch_commit(b, false) == 0);
    }
    CHILD_CHECK(dd_store_compact(s) == 0);
    CHILD_CHECK(dd_store_get_stats(s, &st) == 0);
    printf("rows %llu sst_bytes %llu bytes/row %.1f\n", (unsigned long long)rows,
           (unsigned long long)st.sst_bytes, (double)st.sst_bytes / (double)rows);
    dd_store_free(s);
    return 0;
}

/* --- Damage -------------------------------------------------------------------- */

/* Writes batches of 100 samples of 1 KiB each on "vol/NN" at ts, ts+1...;
 * returns how many commits failed. */
static int write_kib(struct dd_store *s, uint64_t ts, int batches)
{
    char value[1024];
    int failed = 0;

    memset(value, 'v', sizeof(value));
    for (int i = 0; i < batches; i++, ts++) {
        struct dd_store_batch *b;
        assert_int_equal(dd_store_batch_begin(s, &b), 0);
        for (int k = 0; k < 100; k++) {
            char series[16];
            snprintf(series, sizeof(series), "vol/%02d", k);
            snprintf(value, 32, "{\"ts\":%llu,\"k\":%d}", (unsigned long long)ts, k);
            assert_int_equal(dd_store_batch_put_sample(b, series, ts, value, sizeof(value)), 0);
        }
        failed += dd_store_batch_commit(b, false) < 0;
    }
    return failed;
}

/* The largest .sst in dir (the samples family's). */
static char *largest_sst(const char *dir, off_t *ret_size)
{
    char *best = NULL;
    off_t size = 0;
    DIR *d = opendir(dir);
    struct dirent *e;

    assert_non_null(d);
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        char *p;
        struct stat st;
        if (nl < 4 || strcmp(e->d_name + nl - 4, ".sst") != 0)
            continue;
        p = tt_path(dir, e->d_name);
        assert_int_equal(stat(p, &st), 0);
        if (st.st_size > size) {
            free(best);
            best = p;
            size = st.st_size;
        } else {
            free(p);
        }
    }
    closedir(d);
    assert_non_null(best);
    *ret_size = size;
    return best;
}

/* Overwrites 64 bytes in the middle of the data blocks of the largest .sst,
 * as a bad sector or a stray write would. */
static void corrupt_sst(const char *dir)
{
    off_t size;
    char *p = largest_sst(dir, &size), junk[64];
    int fd = open(p, O_RDWR | O_CLOEXEC);

    memset(junk, 0x5a, sizeof(junk));
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, sizeof(junk), size / 3), (ssize_t)sizeof(junk));
    close(fd);
    print_message("corrupted %s at %lld\n", p, (long long)(size / 3));
    free(p);
}

/* Reads every point of vol/00..vol/99; returns the first error or 0. */
static int read_everything(struct dd_store *s, size_t *ret_points)
{
    size_t n = 0;
    int first = 0;

    for (int k = 0; k < 100; k++) {
        char series[16];
        snprintf(series, sizeof(series), "vol/%02d", k);
        struct dd_store_query q = {.series = series, .from_ms = 0, .to_ms = UINT64_MAX};
        int r = dd_store_query(s, &q, count_cb, &n, NULL);
        if (r < 0 && first == 0)
            first = r;
    }
    *ret_points = n;
    return first;
}

/*
 * A corrupted data block in a real .sst: compaction meets it, RocksDB sets a
 * background error and refuses every later write with it ("Corruption:
 * block checksum mismatch ... in DIR/NNNNNN.sst"); reads of that block fail
 * with -EUCLEAN. Without handling, every commit failed from then on (a reopen
 * only ran into the same compaction again). Now the store says DAMAGED with
 * RocksDB's message and advice, reopens once without compaction and writes
 * go on; after dd_store_repair the store opens clean with the rest of its
 * data.
 */
static void test_corrupt_sst(void **state)
{
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store_health h;
    struct dd_store_stats st;
    struct dd_store *s;
    char err[1024];
    size_t before = 0, after = 0;
    int failed = 0, r;
    (void)state;

    dd_store_options_init(&o);
    o.recover_interval_ms = 0;
    o.min_free_bytes = 0;
    /* Two L0 files of ~3 MiB (closing flushes the memtable on reopen). */
    for (int round = 0; round < 2; round++) {
        s = open_ok(dir, &o);
        assert_int_equal(write_kib(s, 1000 + (uint64_t)round * 1000, 30), 0);
        dd_store_free(s);
    }
    s = open_ok(dir, &o);
    assert_int_equal(dd_store_health(s, &h), 0);
    assert_int_equal(h.state, DD_STORE_OK);
    assert_string_equal(dd_store_state_name(h.state), "ok");
    assert_int_equal(read_everything(s, &before), 0);
    dd_store_free(s);
    corrupt_sst(dir);

    /* Open works (RocksDB does not read data blocks at open); writing on
     * flushes more files until a compaction reads the damaged block. */
    s = open_ok(dir, &o);
    for (int i = 0; i < 40 && h.state == DD_STORE_OK; i++) {
        failed += write_kib(s, 10000 + (uint64_t)i * 10, 10);
        assert_int_equal(dd_store_health(s, &h), 0);
    }
    if (h.state == DD_STORE_OK) {
        /* Compaction has not met it yet: a read will. */
        r = read_everything(s, &after);
        assert_int_equal(r, -EUCLEAN);
        assert_int_equal(dd_store_health(s, &h), 0);
    }
    print_message("health: %s (%d) detail: %s\nadvice: %s\n", dd_store_state_name(h.state), h.error,
                  h.detail, h.advice);
    assert_int_equal(h.state, DD_STORE_DAMAGED);
    assert_string_equal(dd_store_state_name(h.state), "damaged");
    assert_int_equal(h.error, -EUCLEAN);
    assert_string_equal(h.path, dir);
    assert_non_null(strstr(h.detail, "Corruption:"));
    assert_non_null(strstr(h.detail, ".sst"));
    assert_non_null(strstr(h.advice, dir));
    assert_non_null(strstr(h.advice, "stop dedupd"));
    assert_non_null(strstr(h.advice, "repair"));
    assert_non_null(strstr(h.advice, "move"));
    assert_true(h.since_ms > 0);
    assert_true(h.corruptions >= 1);

    /* Sampling goes on: writes succeed (compaction is off after the first
     * failed write), reads that miss the damaged block work. */
    assert_int_equal(write_kib(s, 50000, 60), 0);
    assert_int_equal(dd_store_get_stats(s, &st), 0);
    print_message("after damage: written %llu, dropped %llu, failed commits %llu, reopens %llu, "
                  "corruptions %llu, compaction off %d\n",
                  (unsigned long long)st.samples_written, (unsigned long long)st.samples_dropped,
                  (unsigned long long)st.commits_failed, (unsigned long long)st.reopens,
                  (unsigned long long)st.corruptions, h.compaction_off);
    assert_true(st.corruptions >= 1);
    assert_int_equal(failed, 0);
    assert_int_equal(st.samples_dropped, 0);
    struct dd_store_query q = {.series = "vol/07", .from_ms = 50000, .to_ms = UINT64_MAX};
    size_t n = 0;
    assert_int_equal(dd_store_query(s, &q, count_cb, &n, NULL), 60);
    /* Still damaged: it does not heal by itself. */
    assert_int_equal(dd_store_health(s, &h), 0);
    assert_int_equal(h.state, DD_STORE_DAMAGED);
    dd_store_free(s);

    /* Repair while open is refused; offline it keeps what is readable. */
    s = open_ok(dir, &o);
    assert_int_equal(dd_store_repair(dir, err, sizeof(err)), -EBUSY);
    assert_non_null(strstr(err, "stop dedupd first"));
    dd_store_free(s);
    assert_int_equal(dd_store_repair(dir, err, sizeof(err)), 0);
    s = open_ok(dir, &o);
    r = read_everything(s, &after);
    assert_int_equal(dd_store_health(s, &h), 0);
    print_message("after repair: %d, %zu points (%zu before the damage, +6000 since), %s\n", r,
                  after, before, dd_store_state_name(h.state));
    assert_int_equal(r, 0);
    assert_int_equal(h.state, DD_STORE_OK);
    char *lost = tt_path(dir, "lost");
    struct stat lst;
    assert_int_equal(stat(lost, &lst), 0); /* where RepairDB put the damaged file */
    free(lost);
    assert_true(after < before + 6000 + 100 * 400);
    assert_true(after >= 6000);
    assert_int_equal(write_kib(s, 90000, 5), 0);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

static int corrupt_calls;

static void corrupt_write(rocksdb_t *db, const rocksdb_writeoptions_t *wo, rocksdb_writebatch_t *wb,
                          char **errptr)
{
    (void)db, (void)wo, (void)wb;
    corrupt_calls++;
    *errptr = strdup("Corruption: block checksum mismatch: stored = 1, computed = 2, type = 4 "
                     "in /x/000021.sst offset 105149 size 279");
}

/* When writes still fail after the one reopen, they fail at once: no
 * reopen per commit, every sample counted as dropped, no crash. */
static void test_damaged_fails_fast(void **state)
{
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store_health h;
    struct dd_store_stats st;
    struct dd_store *s;
    struct seen sn;
    (void)state;

    dd_store_options_init(&o);
    o.recover_interval_ms = 0;
    s = open_ok(dir, &o);
    put_samples(s, "node", (const uint64_t[]){1, 2}, 2);
    dd_store_test_write = corrupt_write;
    for (int i = 0; i < 5; i++) {
        struct dd_store_batch *b;
        assert_int_equal(dd_store_batch_begin(s, &b), 0);
        assert_int_equal(dd_store_batch_put_sample(b, "node", 10 + (uint64_t)i, "a", 1), 0);
        assert_int_equal(dd_store_batch_put_sample(b, "vol/a", 10 + (uint64_t)i, "b", 1), 0);
        assert_int_equal(dd_store_batch_commit(b, false), -EUCLEAN);
    }
    dd_store_test_write = NULL;
    /* The first failure: one reopen and one retry; then one call each. */
    assert_int_equal(corrupt_calls, 6);
    assert_int_equal(dd_store_get_stats(s, &st), 0);
    assert_int_equal(st.reopens, 1);
    assert_int_equal(st.samples_dropped, 10);
    assert_int_equal(st.commits_failed, 5);
    assert_int_equal(st.corruptions, 6);
    assert_int_equal(dd_store_health(s, &h), 0);
    assert_int_equal(h.state, DD_STORE_DAMAGED);
    assert_non_null(strstr(h.detail, "000021.sst"));
    query(s, "node", 0, UINT64_MAX, 0, 0, &sn, NULL);
    assert_ts(&sn, (const uint64_t[]){1, 2}, 2);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

/* Below the reserve: DEGRADED with -ENOSPC and advice, back to OK when a
 * write succeeds again; nothing logged above debug (store.c has no other
 * log call). */
static void test_health_low_space(void **state)
{
    char *dir = tt_tmpdir();
    struct dd_store_options o;
    struct dd_store_health h;
    struct dd_store *s;
    struct dd_store_batch *b;
    (void)state;

    dd_store_options_init(&o);
    o.min_free_bytes = UINT64_MAX / 2;
    s = open_ok(dir, &o);
    assert_int_equal(dd_store_health(s, &h), 0);
    assert_int_equal(h.state, DD_STORE_OK);
    assert_int_equal(h.error, 0);
    assert_string_equal(h.detail, "");
    assert_int_equal(dd_store_batch_begin(s, &b), 0);
    assert_int_equal(dd_store_batch_put_sample(b, "node", 1, "a", 1), 0);
    assert_int_equal(dd_store_batch_commit(b, false), -ENOSPC);
    assert_int_equal(dd_store_health(s, &h), 0);
    print_message("%s: %s; %s\n", dd_store_state_name(h.state), h.detail, h.advice);
    assert_int_equal(h.state, DD_STORE_DEGRADED);
    assert_int_equal(h.error, -ENOSPC);
    assert_non_null(strstr(h.detail, "below the"));
    assert_non_null(strstr(h.advice, dir));
    assert_non_null(strstr(h.advice, "free space"));
    dd_store_free(s);

    o.min_free_bytes = 0;
    s = open_ok(dir, &o);
    put_samples(s, "node", (const uint64_t[]){1}, 1);
    assert_int_equal(dd_store_health(s, &h), 0);
    assert_int_equal(h.state, DD_STORE_OK);
    dd_store_free(s);
    tt_rmtree(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rocks_status_table),
        cmocka_unit_test(test_put_get_query),
        cmocka_unit_test(test_series_do_not_mix),
        cmocka_unit_test(test_query_prefix),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_set_retention),
        cmocka_unit_test(test_downsampling),
        cmocka_unit_test(test_reopen_and_models),
        cmocka_unit_test(test_schema_and_foreign_db),
        cmocka_unit_test(test_locked),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_open_advice),
        cmocka_unit_test(test_unwritable_parent),
        cmocka_unit_test(test_kill9_durability),
        cmocka_unit_test(test_commit_failure_counts_dropped),
        cmocka_unit_test(test_failed_recovery_leaves_no_db),
        cmocka_unit_test(test_real_write_failure),
        cmocka_unit_test(test_corrupt_sst),
        cmocka_unit_test(test_damaged_fails_fast),
        cmocka_unit_test(test_health_low_space),
    };

    if (argc == 3 && strcmp(argv[1], "--child-open") == 0)
        return child_open(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--child-writer") == 0)
        return child_writer(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--child-fsize") == 0)
        return child_fsize(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--bench-rows") == 0)
        return bench_rows(argv[2], argv[3]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
