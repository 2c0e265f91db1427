/*
 * Per-volume CPU time of VDO from its kernel threads (formats in threads.h).
 *
 * Four steps, only one of them doing I/O: dd_proc_stat_parse turns one
 * /proc/<pid>/stat text into fields (the comm runs to the LAST ')', since a
 * name may hold ')'); dd_vdo_thread_name_parse recognises "vdo0:bioQ3" and
 * its kind; dd_vdo_threads_scan lists a /proc tree and reads each stat file
 * (the I/O), keeping VDO kernel threads; dd_vdo_cpu_delta compares two scans.
 *
 * Invariants: a scan holds at most DD_VDO_MAX_THREADS threads, sorted by pid
 * with unique pids, and reads at most DD_PROC_STAT_LINE_MAX bytes a file.
 * Processes come and go while /proc is listed: a vanished one is counted,
 * an unreadable or garbled one is counted, and neither fails the scan; only
 * what would make every later read fail too (no memory, no descriptors) or
 * an unreadable proc_root does. The delta never goes negative and never moves
 * time from one thread to another: threads are matched by pid and starttime.
 *
 * Left to others: mapping instances to volume names (each volume's stats
 * carry its instance), the sampling period, and logging.
 */
#include "dedupd/vdo/threads.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

/* ---- /proc/<pid>/stat ---- */

/* proc_pid_stat(5) names of fields 1..52, space separated, for error messages. */
static const char stat_field_names[] =
    "pid comm state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt "
    "cmajflt utime stime cutime cstime priority nice num_threads itrealvalue "
    "starttime vsize rss rsslim startcode endcode startstack kstkesp kstkeip signal "
    "blocked sigignore sigcatch wchan nswap cnswap exit_signal processor rt_priority "
    "policy delayacct_blkio_ticks guest_time cguest_time start_data end_data "
    "start_brk arg_start arg_end env_start env_end exit_code";

enum {
    F_PID = 1,
    F_COMM = 2,
    F_STATE = 3,
    F_PPID = 4,
    F_FLAGS = 9,
    F_UTIME = 14,
    F_STIME = 15,
    F_STARTTIME = 22, /* the last field we need: fewer is an error */
};

/* Bytes of a bad token quoted in an error message. */
#define QUOTE_MAX 32u

/* "field 14 (utime)", or "field 60" past the named ones. */
static void field_label(char *buf, size_t size, unsigned field)
{
    const char *p = stat_field_names;
    size_t n;

    for (unsigned f = 1; f < field && p; f++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    n = p && field > 0 ? strcspn(p, " ") : 0;
    if (n > 0)
        snprintf(buf, size, "field %u (%.*s)", field, (int)n, p);
    else
        snprintf(buf, size, "field %u", field);
}

static void quote(char *buf, size_t size, const char *s, size_t len)
{
    dd_quote(buf, size, s, len, QUOTE_MAX);
}

/* Records the error at a 0-based byte offset and returns code. */
static int stat_error(struct dd_parse_error *err, int code, size_t offset, const char *fmt, ...)
    _dd_printf_(4, 5);

static int stat_error(struct dd_parse_error *err, int code, size_t offset, const char *fmt, ...)
{
    char msg[sizeof(err->message)];
    va_list ap;

    if (!err)
        return code; /* the scan does not ask why */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* offsets are bounded by DD_PROC_STAT_LINE_MAX */
    (void)dd_parse_error_set(err, 1, (unsigned)(offset + 1), "%s", msg);
    return code;
}

/* "field 14 (utime): <what> '<token>'". Formats only when there is an err. */
static int field_error(struct dd_parse_error *err, int code, size_t offset, unsigned field,
                       const char *what, const char *s, size_t len)
{
    char label[48], q[QUOTE_MAX + 4];

    if (!err)
        return code;
    field_label(label, sizeof(label), field);
    quote(q, sizeof(q), s, len);
    return stat_error(err, code, offset, "%s: %s '%s'", label, what, q);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* True for -?[0-9]+, the shape of every field after the state. */
static bool is_integer(const char *s, size_t len)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;

    if (i == len)
        return false;
    for (; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
    }
    return true;
}

/* A field we keep: a non-negative integer of at most max. */
static int stat_u64(const char *s, size_t len, size_t offset, unsigned field, uint64_t max,
                    uint64_t *ret, struct dd_parse_error *err)
{
    uint64_t v;

    if (!is_integer(s, len))
        return field_error(err, DD_E_PARSE, offset, field, "expected an integer, got", s, len);
    if (s[0] == '-')
        return field_error(err, DD_E_RANGE, offset, field, "negative:", s, len);
    if (dd_parse_u64_n(s, len, &v) < 0 || v > max)
        return field_error(err, DD_E_RANGE, offset, field, "out of range:", s, len);
    *ret = v;
    return 0;
}

/* One field after the comm: field 3 (state) or an integer. */
static int stat_field(const char *s, size_t len, size_t offset, unsigned field,
                      struct dd_proc_pid_stat *st, struct dd_parse_error *err)
{
    uint64_t v;
    int r;

    switch (field) {
    case F_STATE:
        if (len != 1 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
            return field_error(err, DD_E_PARSE, offset, field, "expected a letter, got", s, len);
        st->state = s[0];
        return 0;
    case F_PPID:
        r = stat_u64(s, len, offset, field, INT32_MAX, &v, err);
        if (r == 0)
            st->ppid = (uint32_t)v;
        return r;
    case F_FLAGS:
        return stat_u64(s, len, offset, field, UINT64_MAX, &st->flags, err);
    case F_UTIME:
        return stat_u64(s, len, offset, field, UINT64_MAX, &st->utime, err);
    case F_STIME:
        return stat_u64(s, len, offset, field, UINT64_MAX, &st->stime, err);
    case F_STARTTIME:
        return stat_u64(s, len, offset, field, UINT64_MAX, &st->starttime, err);
    default:
        if (is_integer(s, len))
            return 0;
        return field_error(err, DD_E_PARSE, offset, field, "expected an integer, got", s, len);
    }
}

int dd_proc_stat_parse(const char *text, size_t len, struct dd_proc_pid_stat *ret,
                       struct dd_parse_error *err)
{
    struct dd_proc_pid_stat st;
    const char *nul;
    size_t i, open, close, pos;
    unsigned field;
    uint64_t v;
    int r;

    memset(&st, 0, sizeof(st));
    if (!text)
        len = 0;
    if (len > DD_PROC_STAT_LINE_MAX)
        return stat_error(err, DD_E_TOOBIG, 0, "line longer than %u bytes", DD_PROC_STAT_LINE_MAX);
    if (len > 0 && text[len - 1] == '\n')
        len--;
    if (len == 0)
        return stat_error(err, DD_E_PARSE, 0, "empty line");
    nul = memchr(text, '\0', len);
    if (nul)
        return stat_error(err, DD_E_PARSE, (size_t)(nul - text), "NUL byte in the line");

    /* field 1: the pid, up to the first space */
    for (i = 0; i < len && text[i] != ' '; i++)
        ;
    if (i == 0)
        return stat_error(err, DD_E_PARSE, 0, "field 1 (pid): empty");
    r = stat_u64(text, i, 0, F_PID, INT32_MAX, &v, err);
    if (r < 0)
        return r;
    st.pid = (uint32_t)v;

    /* field 2: " (" comm ")", the comm running to the last ')' of the line */
    if (i + 1 >= len)
        return stat_error(err, DD_E_PARSE, len, "field 2 (comm): missing");
    open = i + 1;
    if (text[open] != '(')
        return stat_error(err, DD_E_PARSE, open, "field 2 (comm): expected '('");
    for (close = len - 1; close > open && text[close] != ')'; close--)
        ;
    if (close == open)
        return stat_error(err, DD_E_PARSE, open, "field 2 (comm): no closing ')'");
    if (close - open - 1 >= DD_PROC_COMM_MAX)
        return stat_error(err, DD_E_TOOBIG, open + 1, "field 2 (comm): longer than %u bytes",
                          DD_PROC_COMM_MAX - 1);
    memcpy(st.comm, text + open + 1, close - open - 1);
    st.comm[close - open - 1] = '\0';

    /* fields 3..: " token" each, to the end of the line */
    pos = close + 1;
    for (field = F_STATE; pos < len; field++) {
        size_t start = pos + 1, end;

        /* only possible right after the ')': later tokens end at a space */
        if (text[pos] != ' ')
            return stat_error(err, DD_E_PARSE, pos, "field 3 (state): expected ' ' after ')'");
        for (end = start; end < len && text[end] != ' '; end++)
            ;
        if (end == start) {
            char label[48];
            field_label(label, sizeof(label), field);
            return stat_error(err, DD_E_PARSE, start, "%s: empty", label);
        }
        r = stat_field(text + start, end - start, start, field, &st, err);
        if (r < 0)
            return r;
        pos = end;
    }
    if (field <= F_STARTTIME) {
        char label[48];
        field_label(label, sizeof(label), field);
        return stat_error(err, DD_E_PARSE, len,
                          "%s: missing (the line ends after field %u; %u needed)", label, field - 1,
                          (unsigned)F_STARTTIME);
    }
    *ret = st;
    return 0;
}

/* ---- thread names ---- */

static const char *const vdo_prefixes[] = {"vdo", "kvdo", "dm_vdo", "dm-vdo"};

int dd_vdo_thread_name_parse(const char *comm, struct dd_vdo_thread_name *ret)
{
    struct dd_vdo_thread_name name;
    const char *prefix = NULL;
    size_t len, i, digits, qlen, klen;
    uint64_t instance;
    int r;

    if (!comm)
        return DD_E_PARSE;
    len = strnlen(comm, DD_PROC_COMM_MAX);
    if (len >= DD_PROC_COMM_MAX)
        return DD_E_TOOBIG;
    /* no prefix is the beginning of another, so at most one matches */
    for (size_t p = 0; p < DD_ARRAY_SIZE(vdo_prefixes); p++) {
        if (strncmp(comm, vdo_prefixes[p], strlen(vdo_prefixes[p])) == 0)
            prefix = vdo_prefixes[p];
    }
    if (!prefix)
        return DD_E_PARSE;
    i = strlen(prefix);
    digits = i;
    while (is_digit(comm[i]))
        i++;
    if (i == digits || comm[i] != ':' || i + 1 == len)
        return DD_E_PARSE;
    r = dd_parse_u64_n(comm + digits, i - digits, &instance);
    if (r < 0 || instance > UINT32_MAX)
        return DD_E_RANGE;

    memset(&name, 0, sizeof(name));
    name.prefix = prefix;
    name.instance = (uint32_t)instance;
    qlen = len - i - 1;
    memcpy(name.queue, comm + i + 1, qlen);
    name.queue[qlen] = '\0';
    /* the kind: trailing digits stripped, unless that leaves nothing */
    for (klen = qlen; klen > 0 && is_digit(name.queue[klen - 1]); klen--)
        ;
    if (klen == 0)
        klen = qlen;
    memcpy(name.kind, name.queue, klen);
    name.kind[klen] = '\0';
    *ret = name;
    return 0;
}

/* ---- sets of threads ---- */

void dd_vdo_threads_release(struct dd_vdo_threads *t)
{
    if (!t)
        return;
    dd_free(t->threads);
    memset(t, 0, sizeof(*t));
}

int dd_vdo_threads_add(struct dd_vdo_threads *t, const struct dd_proc_pid_stat *st)
{
    struct dd_vdo_thread_name name;
    struct dd_vdo_thread *th;
    int r;

    if (!(st->flags & DD_PF_KTHREAD))
        return 0;
    if (dd_vdo_thread_name_parse(st->comm, &name) < 0)
        return 0;
    if (st->utime > UINT64_MAX - st->stime)
        return DD_E_RANGE;
    if (t->n >= DD_VDO_MAX_THREADS)
        return DD_E_TOOBIG;
    r = DD_ARRAY_RESERVE(t->threads, t->cap, t->n + 1);
    if (r < 0)
        return r;
    th = &t->threads[t->n++];
    memset(th, 0, sizeof(*th));
    th->pid = st->pid;
    th->instance = name.instance;
    th->starttime = st->starttime;
    th->ticks = st->utime + st->stime;
    memcpy(th->queue, name.queue, sizeof(th->queue));
    memcpy(th->kind, name.kind, sizeof(th->kind));
    return 1;
}

/* ---- the scan (I/O) ---- */

/* A /proc entry naming a process: all digits, a pid_t value. */
static bool pid_entry(const char *name, uint32_t *ret_pid)
{
    size_t len = strnlen(name, 11);
    uint64_t v;

    if (len == 0 || len > 10 || dd_parse_u64_n(name, len, &v) < 0 || v > INT32_MAX)
        return false;
    *ret_pid = (uint32_t)v;
    return true;
}

enum read_outcome { READ_OK, READ_VANISHED, READ_SKIPPED };

/* What a failed open or read of one stat file means: the process went away,
 * this one entry is bad, or (negative) nothing else would work either. */
static int classify_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ESRCH:
        return READ_VANISHED;
    case ENOMEM:
    case EMFILE:
    case ENFILE:
        return -e;
    default:
        return READ_SKIPPED;
    }
}

/* Reads dfd/<name>/stat into buf (size bytes, one more than the longest text
 * accepted). Returns a read_outcome or a negative errno. */
static int read_stat(int dfd, const char *name, char *buf, size_t size, size_t *ret_len)
{
    char path[16];
    size_t nlen = strlen(name), done = 0;
    int fd, r = READ_OK;

    /* name is at most 10 digits (pid_entry) */
    memcpy(path, name, nlen);
    memcpy(path + nlen, "/stat", sizeof("/stat"));
    /* O_NONBLOCK: a FIFO in a fake tree is refused, not waited on */
    do
        fd = openat(dfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return classify_errno(errno);
    while (done < size) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = classify_errno(errno);
            break;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    if (r == READ_OK && done == size)
        r = READ_SKIPPED; /* longer than any stat line */
    *ret_len = done;
    return r;
}

static int scan_one(int dfd, const char *name, uint32_t pid, struct dd_vdo_threads *t)
{
    char buf[DD_PROC_STAT_LINE_MAX + 1];
    struct dd_proc_pid_stat st;
    size_t len = 0;
    int r;

    r = read_stat(dfd, name, buf, sizeof(buf), &len);
    if (r < 0)
        return r;
    if (r == READ_VANISHED) {
        t->vanished++;
        return 0;
    }
    if (r == READ_SKIPPED || dd_proc_stat_parse(buf, len, &st, NULL) < 0 || st.pid != pid) {
        t->skipped++;
        return 0;
    }
    r = dd_vdo_threads_add(t, &st);
    if (r == DD_E_RANGE) {
        t->skipped++;
        return 0;
    }
    return r < 0 ? r : 0;
}

static int cmp_thread_pid(const void *a, const void *b)
{
    const struct dd_vdo_thread *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

int dd_vdo_threads_scan(const char *proc_root, struct dd_vdo_threads *ret)
{
    struct dd_vdo_threads t;
    DIR *d;
    int dfd, r = 0;

    if (!proc_root || !ret)
        return -EINVAL;
    memset(&t, 0, sizeof(t));
    dfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    d = fdopendir(dfd);
    if (!d) {
        r = -errno;
        close(dfd);
        return r;
    }
    for (;;) {
        struct dirent *de;
        uint32_t pid;

        errno = 0;
        de = readdir(d);
        if (!de) {
            r = errno ? -errno : 0;
            break;
        }
        if (!pid_entry(de->d_name, &pid))
            continue; /* self, sys, net, ...: not processes */
        r = scan_one(dirfd(d), de->d_name, pid, &t);
        if (r < 0)
            break;
    }
    closedir(d);
    if (r < 0) {
        dd_vdo_threads_release(&t);
        return r;
    }
    /* /proc lists in pid order already; a fake tree need not */
    if (t.n > 1)
        qsort(t.threads, t.n, sizeof(*t.threads), cmp_thread_pid);
    *ret = t;
    return 0;
}

/* ---- the delta (pure) ---- */

struct thread_key {
    uint32_t pid;
    uint64_t starttime;
    uint64_t ticks;
};

struct thread_delta {
    const struct dd_vdo_thread *th;
    uint64_t ticks;
    bool is_new;
};

static int cmp_key(const void *a, const void *b)
{
    const struct thread_key *x = a, *y = b;
    if (x->pid != y->pid)
        return (x->pid > y->pid) - (x->pid < y->pid);
    return (x->starttime > y->starttime) - (x->starttime < y->starttime);
}

static int cmp_delta(const void *a, const void *b)
{
    const struct thread_delta *x = a, *y = b;
    int c;

    if (x->th->instance != y->th->instance)
        return (x->th->instance > y->th->instance) - (x->th->instance < y->th->instance);
    c = strcmp(x->th->kind, y->th->kind);
    if (c != 0)
        return c;
    return (x->th->pid > y->th->pid) - (x->th->pid < y->th->pid);
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static double ticks_to_seconds(uint64_t ticks, long clk_tck)
{
    return (double)ticks / (double)clk_tck;
}

int dd_vdo_cpu_delta(const struct dd_vdo_threads *prev, const struct dd_vdo_threads *cur,
                     long clk_tck, struct dd_vdo_cpu *ret)
{
    _dd_cleanup_(dd_freep) struct thread_key *keys = NULL;
    _dd_cleanup_(dd_freep) struct thread_delta *items = NULL;
    _dd_cleanup_(dd_freep) struct dd_vdo_instance_cpu *instances = NULL;
    _dd_cleanup_(dd_freep) struct dd_vdo_kind_cpu *kinds = NULL;
    size_t n_inst = 0, n_kinds = 0;

    if (!prev || !cur || !ret || clk_tck <= 0)
        return -EINVAL;
    if ((prev->n > 0 && !prev->threads) || (cur->n > 0 && !cur->threads))
        return -EINVAL;

    /* prev's threads by identity, for lookups */
    if (prev->n > 0) {
        keys = dd_reallocarray(NULL, prev->n, sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        for (size_t i = 0; i < prev->n; i++) {
            keys[i].pid = prev->threads[i].pid;
            keys[i].starttime = prev->threads[i].starttime;
            keys[i].ticks = prev->threads[i].ticks;
        }
        qsort(keys, prev->n, sizeof(*keys), cmp_key);
    }

    /* each of cur's threads with its share of the interval */
    if (cur->n > 0) {
        items = dd_reallocarray(NULL, cur->n, sizeof(*items));
        if (!items)
            return -ENOMEM;
    }
    for (size_t i = 0; i < cur->n; i++) {
        const struct dd_vdo_thread *th = &cur->threads[i];
        struct thread_key want = {.pid = th->pid, .starttime = th->starttime};
        const struct thread_key *was =
            keys ? bsearch(&want, keys, prev->n, sizeof(*keys), cmp_key) : NULL;

        items[i].th = th;
        items[i].is_new = !was;
        if (!was)
            items[i].ticks = th->ticks;
        else
            items[i].ticks = th->ticks >= was->ticks ? th->ticks - was->ticks : 0;
    }

    /* grouped by instance, then kind */
    if (cur->n > 1)
        qsort(items, cur->n, sizeof(*items), cmp_delta);
    for (size_t i = 0; i < cur->n; i++) {
        bool same_inst = i > 0 && items[i].th->instance == items[i - 1].th->instance;
        if (!same_inst)
            n_inst++;
        if (!same_inst || strcmp(items[i].th->kind, items[i - 1].th->kind) != 0)
            n_kinds++;
    }
    if (n_inst > 0) {
        instances = dd_calloc(n_inst, sizeof(*instances));
        kinds = dd_calloc(n_kinds, sizeof(*kinds));
        if (!instances || !kinds)
            return -ENOMEM;
    }

    for (size_t i = 0, ii = 0, ki = 0; i < cur->n; i++) {
        const struct thread_delta *it = &items[i];
        struct dd_vdo_instance_cpu *ic;
        struct dd_vdo_kind_cpu *kc;
        bool same_inst = i > 0 && it->th->instance == items[i - 1].th->instance;

        if (!same_inst) {
            instances[ii].instance = it->th->instance;
            instances[ii].kinds = &kinds[ki];
            ii++;
        }
        ic = &instances[ii - 1];
        if (!same_inst || strcmp(it->th->kind, items[i - 1].th->kind) != 0) {
            memcpy(kinds[ki].kind, it->th->kind, sizeof(kinds[ki].kind));
            ki++;
            ic->n_kinds++;
        }
        kc = &kinds[ki - 1];
        kc->threads++;
        kc->ticks = add_sat(kc->ticks, it->ticks);
        ic->threads++;
        ic->new_threads += it->is_new ? 1 : 0;
        ic->ticks = add_sat(ic->ticks, it->ticks);
    }
    for (size_t i = 0; i < n_inst; i++)
        instances[i].seconds = ticks_to_seconds(instances[i].ticks, clk_tck);
    for (size_t i = 0; i < n_kinds; i++)
        kinds[i].seconds = ticks_to_seconds(kinds[i].ticks, clk_tck);

    memset(ret, 0, sizeof(*ret));
    ret->instances = DD_TAKE_PTR(instances);
    ret->n = n_inst;
    ret->kinds = DD_TAKE_PTR(kinds);
    ret->n_kinds = n_kinds;
    ret->clk_tck = clk_tck;
    return 0;
}

void dd_vdo_cpu_release(struct dd_vdo_cpu *cpu)
{
    if (!cpu)
        return;
    dd_free(cpu->instances);
    dd_free(cpu->kinds);
    memset(cpu, 0, sizeof(*cpu));
}

const struct dd_vdo_instance_cpu *dd_vdo_cpu_for_instance(const struct dd_vdo_cpu *cpu,
                                                          uint32_t instance)
{
    size_t lo = 0, hi;

    if (!cpu)
        return NULL;
    hi = cpu->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cpu->instances[mid].instance == instance)
            return &cpu->instances[mid];
        if (cpu->instances[mid].instance < instance)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct dd_vdo_kind_cpu *dd_vdo_instance_cpu_kind(const struct dd_vdo_instance_cpu *ic,
                                                       const char *kind)
{
    if (!ic || !kind)
        return NULL;
    for (size_t i = 0; i < ic->n_kinds; i++) {
        if (strcmp(ic->kinds[i].kind, kind) == 0)
            return &ic->kinds[i];
    }
    return NULL;
}

/* ---- the clock (asks the system; kept apart from the pure code) ---- */

long dd_clock_ticks(void)
{
    long r;

    errno = 0;
    r = sysconf(_SC_CLK_TCK);
    if (r <= 0)
        return errno ? -errno : -EINVAL;
    return r;
}
