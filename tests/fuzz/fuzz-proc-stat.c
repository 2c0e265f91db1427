/*
 * Fuzz target for dedupd/vdo/threads.c, the pure parts: dd_proc_stat_parse,
 * dd_vdo_thread_name_parse, dd_vdo_threads_add and dd_vdo_cpu_delta. Each
 * answer is checked against an oracle written here:
 *   - a stat line that parses is taken apart again with strrchr and strtoull
 *     and must give the same fields; with a '\n' appended it parses the same;
 *     one that fails leaves the output untouched and names a column inside
 *     the input, in a printable message;
 *   - a thread name is matched with POSIX regcomp/regexec against
 *     ^(vdo|kvdo|dm_vdo|dm-vdo)([0-9]+):(.+)$ (the input as a string, and the
 *     comm of a line that parsed);
 *   - the input's lines before the first empty one are a first scan, those
 *     after it a second; their delta must account for every current thread
 *     once, keep kinds and instances sorted, never go below zero, and (when
 *     the first scan has no duplicate pid+starttime) give exactly the ticks
 *     of a brute-force match.
 * A violated invariant aborts.
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "dedupd/vdo/threads.h"
#include "fuzz.h"

/* Inputs past this add nothing: the line cap is 4 KiB, and a delta of a few
 * hundred lines covers the grouping. */
#define MAX_INPUT (64u * 1024u)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* strtoull of exactly [s, s+len): the value, or false if it is not plain
 * digits (leading zeros allowed) that fit. */
static bool oracle_u64(const char *s, size_t len, uint64_t *ret)
{
    char buf[32];
    char *end = NULL;
    unsigned long long v;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
    }
    /* leading zeros are allowed, however many */
    while (len > 1 && s[0] == '0')
        s++, len--;
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoull(buf, &end, 10);
    if (errno == ERANGE || end != buf + len)
        return false;
    *ret = (uint64_t)v;
    return true;
}

/* ---- thread names, against regexec ---- */

static regex_t name_re;
static bool name_re_ready;

static void check_name(const char *comm)
{
    struct dd_vdo_thread_name name, sentinel;
    regmatch_t m[4];
    size_t len = strlen(comm);
    int r, want;
    uint64_t inst = 0;

    if (!name_re_ready) {
        CHECK(regcomp(&name_re, "^(vdo|kvdo|dm_vdo|dm-vdo)([0-9]+):(.+)$", REG_EXTENDED) == 0);
        name_re_ready = true;
    }
    memset(&name, 0x5a, sizeof(name));
    sentinel = name;
    r = dd_vdo_thread_name_parse(comm, &name);

    if (len >= DD_PROC_COMM_MAX)
        want = DD_E_TOOBIG;
    else if (regexec(&name_re, comm, 4, m, 0) != 0)
        want = DD_E_PARSE;
    else if (!oracle_u64(comm + m[2].rm_so, (size_t)(m[2].rm_eo - m[2].rm_so), &inst) ||
             inst > UINT32_MAX)
        want = DD_E_RANGE;
    else
        want = 0;
    CHECK(r == want);
    if (r != 0) {
        CHECK(memcmp(&name, &sentinel, sizeof(name)) == 0);
        return;
    }
    {
        size_t plen = (size_t)(m[1].rm_eo - m[1].rm_so);
        size_t qlen = (size_t)(m[3].rm_eo - m[3].rm_so), klen = qlen;

        CHECK(strlen(name.prefix) == plen && memcmp(name.prefix, comm, plen) == 0);
        CHECK(name.instance == inst);
        CHECK(strlen(name.queue) == qlen && memcmp(name.queue, comm + m[3].rm_so, qlen) == 0);
        while (klen > 0 && is_digit(name.queue[klen - 1]))
            klen--;
        if (klen == 0)
            klen = qlen;
        CHECK(strlen(name.kind) == klen && memcmp(name.kind, name.queue, klen) == 0);
    }
}

/* ---- one stat line ---- */

static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    }
    return true;
}

/* Takes the line apart again, differently: the comm is between the first '('
 * and the last ')', the rest splits on single spaces. */
static void check_fields(const char *data, size_t size, const struct dd_proc_pid_stat *st)
{
    char *c;
    const char *open, *close, *p;
    size_t len = size, ntok = 0;
    const char *tok[64];
    size_t tlen[64];
    uint64_t v;

    CHECK(size <= DD_PROC_STAT_LINE_MAX);
    CHECK(!memchr(data, '\0', size));
    if (len > 0 && data[len - 1] == '\n')
        len--;
    c = malloc(len + 1);
    CHECK(c);
    memcpy(c, data, len);
    c[len] = '\0';

    open = strchr(c, '(');
    close = strrchr(c, ')');
    CHECK(open && close && open < close);
    CHECK(open >= c + 2 && open[-1] == ' ');
    CHECK(oracle_u64(c, (size_t)(open - 1 - c), &v) && v == st->pid && v <= INT32_MAX);
    CHECK(strlen(st->comm) == (size_t)(close - open - 1));
    CHECK(memcmp(st->comm, open + 1, (size_t)(close - open - 1)) == 0);

    /* fields 3.. */
    p = close + 1;
    while (*p && ntok < 64) {
        const char *e;
        CHECK(*p == ' ');
        p++;
        e = strchr(p, ' ');
        if (!e)
            e = p + strlen(p);
        CHECK(e > p);
        tok[ntok] = p;
        tlen[ntok] = (size_t)(e - p);
        ntok++;
        p = e;
    }
    CHECK(ntok >= 20); /* fields 3..22 */
    CHECK(tlen[0] == 1 && tok[0][0] == st->state);
    CHECK(oracle_u64(tok[1], tlen[1], &v) && v == st->ppid && v <= INT32_MAX);
    CHECK(oracle_u64(tok[6], tlen[6], &v) && v == st->flags);
    CHECK(oracle_u64(tok[11], tlen[11], &v) && v == st->utime);
    CHECK(oracle_u64(tok[12], tlen[12], &v) && v == st->stime);
    CHECK(oracle_u64(tok[19], tlen[19], &v) && v == st->starttime);
    free(c);
}

static void fuzz_stat(const char *data, size_t size)
{
    struct dd_proc_pid_stat st, sentinel;
    struct dd_parse_error err;
    int r;

    memset(&st, 0xa5, sizeof(st));
    sentinel = st;
    memset(&err, 0, sizeof(err));
    r = dd_proc_stat_parse(data, size, &st, &err);
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
    /* err may be NULL, with the same answer */
    {
        struct dd_proc_pid_stat st2;
        CHECK(dd_proc_stat_parse(data, size, &st2, NULL) == r);
    }
    if (r != 0) {
        CHECK(memcmp(&st, &sentinel, sizeof(st)) == 0);
        CHECK(err.line == 1);
        CHECK(err.column >= 1 && err.column <= size + 1);
        CHECK(err.message[0] != '\0' && printable(err.message));
        return;
    }
    check_fields(data, size, &st);
    check_name(st.comm);

    /* a trailing newline changes nothing */
    if ((size == 0 || data[size - 1] != '\n') && size + 1 <= DD_PROC_STAT_LINE_MAX) {
        struct dd_proc_pid_stat st2;
        char *d2 = malloc(size + 1);
        CHECK(d2);
        memcpy(d2, data, size);
        d2[size] = '\n';
        CHECK(dd_proc_stat_parse(d2, size + 1, &st2, NULL) == 0);
        CHECK(memcmp(&st, &st2, sizeof(st)) == 0);
        free(d2);
    }

    /* dd_vdo_threads_add keeps exactly the VDO kernel threads */
    {
        struct dd_vdo_threads t = {0};
        struct dd_vdo_thread_name name;
        bool vdo = (st.flags & DD_PF_KTHREAD) && dd_vdo_thread_name_parse(st.comm, &name) == 0;
        int a = dd_vdo_threads_add(&t, &st);

        if (!vdo)
            CHECK(a == 0 && t.n == 0);
        else if (st.utime > UINT64_MAX - st.stime)
            CHECK(a == DD_E_RANGE && t.n == 0);
        else
            CHECK(a == 1 && t.n == 1 && t.threads[0].ticks == st.utime + st.stime &&
                  t.threads[0].instance == name.instance && t.threads[0].pid == st.pid &&
                  t.threads[0].starttime == st.starttime &&
                  strcmp(t.threads[0].kind, name.kind) == 0);
        dd_vdo_threads_release(&t);
    }
}

/* ---- the delta ---- */

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool unique_keys(const struct dd_vdo_threads *t)
{
    for (size_t i = 0; i < t->n; i++) {
        for (size_t j = i + 1; j < t->n; j++) {
            if (t->threads[i].pid == t->threads[j].pid &&
                t->threads[i].starttime == t->threads[j].starttime)
                return false;
        }
    }
    return true;
}

/* What instance `instance` must show, by brute force. */
static uint64_t brute_ticks(const struct dd_vdo_threads *prev, const struct dd_vdo_threads *cur,
                            uint32_t instance, size_t *ret_threads, size_t *ret_new)
{
    uint64_t sum = 0;

    *ret_threads = *ret_new = 0;
    for (size_t i = 0; i < cur->n; i++) {
        const struct dd_vdo_thread *c = &cur->threads[i];
        const struct dd_vdo_thread *p = NULL;
        if (c->instance != instance)
            continue;
        for (size_t j = 0; j < prev->n && !p; j++) {
            if (prev->threads[j].pid == c->pid && prev->threads[j].starttime == c->starttime)
                p = &prev->threads[j];
        }
        (*ret_threads)++;
        if (!p)
            (*ret_new)++;
        sum = add_sat(sum, !p ? c->ticks : c->ticks >= p->ticks ? c->ticks - p->ticks : 0);
    }
    return sum;
}

static void check_delta(const struct dd_vdo_threads *prev, const struct dd_vdo_threads *cur)
{
    struct dd_vdo_cpu cpu;
    size_t threads = 0, kinds = 0;
    bool exact = unique_keys(prev);

    CHECK(dd_vdo_cpu_delta(prev, cur, 100, &cpu) == 0);
    CHECK(cpu.clk_tck == 100);
    for (size_t i = 0; i < cpu.n; i++) {
        const struct dd_vdo_instance_cpu *ic = &cpu.instances[i];
        uint64_t sum = 0;
        size_t kthreads = 0;

        if (i > 0)
            CHECK(cpu.instances[i - 1].instance < ic->instance);
        CHECK(dd_vdo_cpu_for_instance(&cpu, ic->instance) == ic);
        CHECK(ic->n_kinds >= 1 && ic->kinds == cpu.kinds + kinds);
        CHECK(ic->new_threads <= ic->threads);
        for (size_t k = 0; k < ic->n_kinds; k++) {
            const struct dd_vdo_kind_cpu *kc = &ic->kinds[k];
            if (k > 0)
                CHECK(strcmp(ic->kinds[k - 1].kind, kc->kind) < 0);
            CHECK(kc->kind[0] != '\0' && kc->threads >= 1);
            CHECK(dd_vdo_instance_cpu_kind(ic, kc->kind) == kc);
            CHECK(isfinite(kc->seconds) && kc->seconds >= 0.0);
            CHECK(kc->seconds == (double)kc->ticks / 100.0);
            sum = add_sat(sum, kc->ticks);
            kthreads += kc->threads;
        }
        CHECK(sum == ic->ticks && kthreads == ic->threads);
        CHECK(isfinite(ic->seconds) && ic->seconds >= 0.0);
        CHECK(ic->seconds == (double)ic->ticks / 100.0);
        if (exact) {
            size_t bt, bn;
            CHECK(brute_ticks(prev, cur, ic->instance, &bt, &bn) == ic->ticks);
            CHECK(bt == ic->threads && bn == ic->new_threads);
        }
        threads += ic->threads;
        kinds += ic->n_kinds;
    }
    CHECK(threads == cur->n && kinds == cpu.n_kinds);
    /* an instance with no current thread is not listed */
    for (size_t i = 0; i < prev->n; i++) {
        bool in_cur = false;
        for (size_t j = 0; j < cur->n && !in_cur; j++)
            in_cur = cur->threads[j].instance == prev->threads[i].instance;
        if (!in_cur)
            CHECK(dd_vdo_cpu_for_instance(&cpu, prev->threads[i].instance) == NULL);
    }
    dd_vdo_cpu_release(&cpu);
}

static void fuzz_delta(const char *data, size_t size)
{
    struct dd_vdo_threads scans[2];
    size_t i = 0, which = 0;

    memset(scans, 0, sizeof(scans));
    while (i < size) {
        const char *nl = memchr(data + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (data + i)) : size - i;
        struct dd_proc_pid_stat st;

        if (len == 0)
            which = 1;
        else if (dd_proc_stat_parse(data + i, len, &st, NULL) == 0)
            (void)dd_vdo_threads_add(&scans[which], &st);
        i += len + 1;
    }
    check_delta(&scans[0], &scans[1]);
    check_delta(&scans[1], &scans[0]);
    check_delta(&scans[1], &scans[1]);
    dd_vdo_threads_release(&scans[0]);
    dd_vdo_threads_release(&scans[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char *s;

    if (size > MAX_INPUT)
        return 0;
    fuzz_stat(text, size);

    /* the input as a thread name, up to its first NUL */
    s = malloc(size + 1);
    CHECK(s);
    memcpy(s, data, size);
    s[size] = '\0';
    check_name(s);
    free(s);

    fuzz_delta(text, size);
    return 0;
}
