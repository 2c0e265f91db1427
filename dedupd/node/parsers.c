/*
 * The pure parsers of the node sampler (formats in node.h): /proc/stat,
 * /proc/loadavg, /proc/pressure/{cpu,io,memory}, /proc/meminfo, /proc/diskstats and the
 * cgroup v2 files cpu.stat, memory.current/peak and io.stat.
 *
 * All share one shape: the text (not NUL-terminated, at most
 * DD_NODE_FILE_MAX bytes, no NUL inside) is cut into lines at '\n', blank
 * lines are skipped, and each line into tokens at runs of spaces or tabs.
 * Numbers go through dd_parse_u64_n / dd_parse_double only. The first
 * problem found is reported with its 1-based line and byte column and the
 * name of the field, and nothing is written to the output. Arrays grow
 * through the allocation shim up to the caps in node.h.
 *
 * Left to others: reading the files (readers.c), deltas (derive.c).
 */
#include "dedupd/node/node.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* ---- lines, tokens and errors ---- */

struct line {
    const char *s;
    size_t len;
    unsigned no; /* 1-based */
};

struct lines {
    const char *text;
    size_t len, pos;
    unsigned no;
};

/* The next line that is not blank, without its '\n'; false at the end. */
static bool next_line(struct lines *it, struct line *ret)
{
    while (it->pos < it->len) {
        const char *start = it->text + it->pos;
        const char *nl = memchr(start, '\n', it->len - it->pos);
        size_t l = nl ? (size_t)(nl - start) : it->len - it->pos;
        bool blank = true;

        it->pos += l + (nl ? 1 : 0);
        it->no++;
        for (size_t i = 0; i < l && blank; i++)
            blank = start[i] == ' ' || start[i] == '\t';
        if (blank)
            continue;
        ret->s = start;
        ret->len = l;
        ret->no = it->no;
        return true;
    }
    return false;
}

struct tok {
    const char *s;
    size_t len;
    size_t col; /* 0-based byte offset in the line */
};

/* Most tokens any line here needs to keep: 20 in diskstats; io.stat and
 * PSI lines keep the first few and count the rest. */
#define MAX_TOKS 24u

/* Splits a line at runs of ' ' or '\t'. Stores the first max tokens and
 * returns how many there are in all. */
static size_t split(const struct line *l, struct tok *toks, size_t max)
{
    size_t n = 0, i = 0;

    while (i < l->len) {
        size_t start;

        while (i < l->len && (l->s[i] == ' ' || l->s[i] == '\t'))
            i++;
        if (i == l->len)
            break;
        start = i;
        while (i < l->len && l->s[i] != ' ' && l->s[i] != '\t')
            i++;
        if (n < max) {
            toks[n].s = l->s + start;
            toks[n].len = i - start;
            toks[n].col = start;
        }
        n++;
    }
    return n;
}

static bool tok_is(const struct tok *t, const char *word)
{
    size_t wl = strlen(word);
    return t->len == wl && memcmp(t->s, word, wl) == 0;
}

/* Bytes of a bad token quoted in a message. */
#define QUOTE_MAX 24u

static void quote(char *buf, size_t size, const char *s, size_t len)
{
    dd_quote(buf, size, s, len, QUOTE_MAX);
}

static int fail(struct dd_parse_error *err, int code, unsigned line, size_t col0, const char *fmt,
                ...) _dd_printf_(5, 6);

/* Records the error at a 0-based column of a line (line 0: the whole text)
 * and returns code. Columns fit: texts are at most DD_NODE_FILE_MAX bytes. */
static int fail(struct dd_parse_error *err, int code, unsigned line, size_t col0, const char *fmt,
                ...)
{
    char msg[sizeof(err->message)];
    va_list ap;

    if (!err)
        return code;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (void)dd_parse_error_set(err, line, line ? (unsigned)(col0 + 1) : 0, "%s", msg);
    return code;
}

/* "<what>: <problem> '<token>'" at the token. */
static int tok_fail(struct dd_parse_error *err, int code, unsigned line, const struct tok *t,
                    const char *what, const char *problem)
{
    char q[QUOTE_MAX + 4];

    if (!err)
        return code;
    quote(q, sizeof(q), t->s, t->len);
    return fail(err, code, line, t->col, "%s: %s '%s'", what, problem, q);
}

static int tok_u64(const struct tok *t, unsigned line, const char *what, uint64_t *ret,
                   struct dd_parse_error *err)
{
    int r = dd_parse_u64_n(t->s, t->len, ret);

    if (r == DD_E_RANGE)
        return tok_fail(err, DD_E_RANGE, line, t, what, "out of range");
    if (r < 0)
        return tok_fail(err, DD_E_PARSE, line, t, what, "not a number");
    return 0;
}

static int tok_u32(const struct tok *t, unsigned line, const char *what, uint32_t max,
                   uint32_t *ret, struct dd_parse_error *err)
{
    uint64_t v;
    int r = tok_u64(t, line, what, &v, err);

    if (r < 0)
        return r;
    if (v > max)
        return tok_fail(err, DD_E_RANGE, line, t, what, "out of range");
    *ret = (uint32_t)v;
    return 0;
}

/* A decimal number in [0, max]. */
static int tok_double(const struct tok *t, unsigned line, const char *what, double max, double *ret,
                      struct dd_parse_error *err)
{
    char buf[64];
    double v;
    int r;

    if (t->len >= sizeof(buf))
        return tok_fail(err, DD_E_RANGE, line, t, what, "too long a number");
    memcpy(buf, t->s, t->len);
    buf[t->len] = '\0';
    r = dd_parse_double(buf, &v);
    if (r == DD_E_RANGE)
        return tok_fail(err, DD_E_RANGE, line, t, what, "out of range");
    if (r < 0)
        return tok_fail(err, DD_E_PARSE, line, t, what, "not a number");
    if (!(v <= max))
        return tok_fail(err, DD_E_RANGE, line, t, what, "out of range");
    *ret = v;
    return 0;
}

/* The checks every parser starts with: size and NUL bytes. */
static int check_text(const char *text, size_t len, struct dd_parse_error *err)
{
    const char *nul;

    if (!text && len > 0)
        return fail(err, DD_E_PARSE, 0, 0, "no text");
    if (len > DD_NODE_FILE_MAX)
        return fail(err, DD_E_TOOBIG, 0, 0, "longer than %u bytes", DD_NODE_FILE_MAX);
    nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        unsigned line = 1;
        const char *bol = text;
        for (const char *p = text; p < nul; p++) {
            if (*p == '\n') {
                line++;
                bol = p + 1;
            }
        }
        return fail(err, DD_E_PARSE, line, (size_t)(nul - bol), "NUL byte");
    }
    return 0;
}

/* Splits "key=value" at the first '='; false if there is none or the key is
 * empty. */
static bool split_kv(const struct tok *t, struct tok *key, struct tok *value)
{
    const char *eq = memchr(t->s, '=', t->len);

    if (!eq || eq == t->s)
        return false;
    key->s = t->s;
    key->len = (size_t)(eq - t->s);
    key->col = t->col;
    value->s = eq + 1;
    value->len = t->len - key->len - 1;
    value->col = t->col + key->len + 1;
    return true;
}

/* ---- /proc/stat ---- */

static const char *const cpu_field_names[] = {"user", "nice",    "system", "idle",  "iowait",
                                              "irq",  "softirq", "steal",  "guest", "guest_nice"};

/* The 4..10 values of one cpu line (toks[1..n-1]). */
static int cpu_times_parse(const struct line *l, const struct tok *toks, size_t n,
                           struct dd_cpu_times *ret, struct dd_parse_error *err)
{
    uint64_t v[10] = {0};
    char what[48];
    int r;

    if (n - 1 < 4 || n - 1 > 10) {
        quote(what, sizeof(what), toks[0].s, toks[0].len);
        return fail(err, DD_E_PARSE, l->no, n - 1 > 10 ? toks[11].col : l->len,
                    "%s: %zu values, expected 4 to 10 (user nice system idle [iowait irq "
                    "softirq steal guest guest_nice])",
                    what, n - 1);
    }
    for (size_t i = 1; i < n; i++) {
        char name[QUOTE_MAX + 4];
        quote(name, sizeof(name), toks[0].s, toks[0].len);
        snprintf(what, sizeof(what), "%s field %zu (%s)", name, i, cpu_field_names[i - 1]);
        r = tok_u64(&toks[i], l->no, what, &v[i - 1], err);
        if (r < 0)
            return r;
    }
    memset(ret, 0, sizeof(*ret));
    ret->user = v[0];
    ret->nice = v[1];
    ret->system = v[2];
    ret->idle = v[3];
    ret->iowait = v[4];
    ret->irq = v[5];
    ret->softirq = v[6];
    ret->steal = v[7];
    ret->guest = v[8];
    ret->guest_nice = v[9];
    ret->n_fields = (unsigned)(n - 1);
    return 0;
}

void dd_cpu_stat_release(struct dd_cpu_stat *s)
{
    if (!s)
        return;
    dd_free(s->cpus);
    memset(s, 0, sizeof(*s));
}

int dd_node_stat_parse(const char *text, size_t len, struct dd_cpu_stat *ret,
                       struct dd_parse_error *err)
{
    struct dd_cpu_stat st;
    struct lines it = {.text = text, .len = len};
    struct line l;
    bool have_all = false;
    int r;

    if (!ret)
        return -EINVAL;
    r = check_text(text, len, err);
    if (r < 0)
        return r;
    memset(&st, 0, sizeof(st));
    while (next_line(&it, &l)) {
        struct tok toks[MAX_TOKS];
        size_t n = split(&l, toks, MAX_TOKS);
        struct dd_cpu_times t;

        if (toks[0].len < 3 || memcmp(toks[0].s, "cpu", 3) != 0)
            continue; /* intr, ctxt, btime, ...: not ours to check */
        if (n > 11)
            n = 12; /* enough to report "too many" */
        if (toks[0].len == 3) {
            if (have_all) {
                r = fail(err, DD_E_PARSE, l.no, toks[0].col, "a second aggregate 'cpu' line");
                goto fail;
            }
            r = cpu_times_parse(&l, toks, n, &t, err);
            if (r < 0)
                goto fail;
            st.all = t;
            have_all = true;
        } else {
            struct tok num = {toks[0].s + 3, toks[0].len - 3, toks[0].col + 3};
            uint32_t cpu = 0; /* set by the parse below; 0 keeps -O3 quiet */

            r = tok_u32(&num, l.no, "cpu number", UINT32_MAX, &cpu, err);
            if (r == DD_E_PARSE)
                r = tok_fail(err, DD_E_PARSE, l.no, &toks[0], "line name", "neither cpu nor cpuN");
            if (r < 0)
                goto fail;
            if (st.n_cpus > 0 && cpu <= st.cpus[st.n_cpus - 1].cpu) {
                r = tok_fail(err, DD_E_PARSE, l.no, &toks[0], "cpu number",
                             "not above the previous line's");
                goto fail;
            }
            if (st.n_cpus >= DD_NODE_MAX_CPUS) {
                r = fail(err, DD_E_TOOBIG, l.no, toks[0].col, "more than %u cpuN lines",
                         DD_NODE_MAX_CPUS);
                goto fail;
            }
            r = cpu_times_parse(&l, toks, n, &t, err);
            if (r < 0)
                goto fail;
            r = DD_ARRAY_RESERVE(st.cpus, st.cap, st.n_cpus + 1);
            if (r < 0)
                goto fail;
            st.cpus[st.n_cpus].cpu = cpu;
            st.cpus[st.n_cpus].t = t;
            st.n_cpus++;
        }
    }
    if (!have_all) {
        r = fail(err, DD_E_PARSE, 0, 0, "no aggregate 'cpu' line");
        goto fail;
    }
    *ret = st;
    return 0;
fail:
    dd_cpu_stat_release(&st);
    return r;
}

/* ---- /proc/loadavg ---- */

int dd_node_loadavg_parse(const char *text, size_t len, struct dd_loadavg *ret,
                          struct dd_parse_error *err)
{
    static const char *const names[] = {"field 1 (load1)", "field 2 (load5)", "field 3 (load15)"};
    struct lines it = {.text = text, .len = len};
    struct dd_loadavg la;
    struct tok toks[MAX_TOKS], a, b;
    double loads[3];
    uint32_t last_pid;
    struct line l;
    const char *slash;
    size_t n;
    int r;

    if (!ret)
        return -EINVAL;
    r = check_text(text, len, err);
    if (r < 0)
        return r;
    if (!next_line(&it, &l))
        return fail(err, DD_E_PARSE, 0, 0, "empty");
    n = split(&l, toks, MAX_TOKS);
    if (n != 5)
        return fail(err, DD_E_PARSE, l.no, n > 5 ? toks[5].col : l.len,
                    "%zu fields, expected 5 (load1 load5 load15 runnable/total last_pid)", n);
    for (size_t i = 0; i < 3; i++) {
        /* the kernel prints at most 2^53/2048 (FIXED_1 = 2048): far below 1e12 */
        r = tok_double(&toks[i], l.no, names[i], 1e12, &loads[i], err);
        if (r < 0)
            return r;
    }
    slash = memchr(toks[3].s, '/', toks[3].len);
    if (!slash)
        return tok_fail(err, DD_E_PARSE, l.no, &toks[3], "field 4 (runnable/total)", "no '/' in");
    a = (struct tok){toks[3].s, (size_t)(slash - toks[3].s), toks[3].col};
    b = (struct tok){slash + 1, toks[3].len - a.len - 1, toks[3].col + a.len + 1};
    memset(&la, 0, sizeof(la));
    r = tok_u32(&a, l.no, "field 4 (runnable)", UINT32_MAX, &la.runnable, err);
    if (r < 0)
        return r;
    r = tok_u32(&b, l.no, "field 4 (total)", UINT32_MAX, &la.total, err);
    if (r < 0)
        return r;
    r = tok_u32(&toks[4], l.no, "field 5 (last_pid)", INT32_MAX, &last_pid, err);
    if (r < 0)
        return r;
    if (next_line(&it, &l))
        return fail(err, DD_E_PARSE, l.no, 0, "more than one line");
    la.load1 = loads[0];
    la.load5 = loads[1];
    la.load15 = loads[2];
    la.last_pid = last_pid;
    la.run_queue = la.runnable > 0 ? la.runnable - 1 : 0;
    *ret = la;
    return 0;
}

/* ---- /proc/pressure/{cpu,io,memory} ---- */

int dd_node_psi_parse(const char *text, size_t len, struct dd_psi *ret, struct dd_parse_error *err)
{
    static const char *const keys[] = {"avg10", "avg60", "avg300", "total"};
    struct lines it = {.text = text, .len = len};
    struct dd_psi psi;
    struct line l;
    int r;

    if (!ret)
        return -EINVAL;
    r = check_text(text, len, err);
    if (r < 0)
        return r;
    memset(&psi, 0, sizeof(psi));
    while (next_line(&it, &l)) {
        struct tok toks[MAX_TOKS];
        size_t n = split(&l, toks, MAX_TOKS);
        struct dd_psi_line pl;
        const char *kind;
        double avgs[3];

        if (tok_is(&toks[0], "some"))
            kind = "some";
        else if (tok_is(&toks[0], "full"))
            kind = "full";
        else
            return tok_fail(err, DD_E_PARSE, l.no, &toks[0], "line", "neither some nor full:");
        if ((kind[0] == 's' && psi.some.present) || (kind[0] == 'f' && psi.full.present))
            return fail(err, DD_E_PARSE, l.no, toks[0].col, "a second '%s' line", kind);
        if (n < 5)
            return fail(err, DD_E_PARSE, l.no, l.len,
                        "%s: %zu values, expected avg10= avg60= avg300= total=", kind, n - 1);
        memset(&pl, 0, sizeof(pl));
        for (size_t i = 0; i < 4; i++) {
            const struct tok *t = &toks[i + 1];
            struct tok key, value;
            char what[32];

            snprintf(what, sizeof(what), "%s %s", kind, keys[i]);
            if (!split_kv(t, &key, &value) || !tok_is(&key, keys[i]))
                return tok_fail(err, DD_E_PARSE, l.no, t, what, "expected here, found");
            if (i < 3)
                r = tok_double(&value, l.no, what, 100.0, &avgs[i], err);
            else
                r = tok_u64(&value, l.no, what, &pl.total_us, err);
            if (r < 0)
                return r;
        }
        pl.present = true;
        pl.avg10 = avgs[0];
        pl.avg60 = avgs[1];
        pl.avg300 = avgs[2];
        if (kind[0] == 's')
            psi.some = pl;
        else
            psi.full = pl;
    }
    if (!psi.some.present)
        return fail(err, DD_E_PARSE, 0, 0, "no 'some' line");
    *ret = psi;
    return 0;
}

/* ---- /proc/meminfo ---- */

struct mem_key {
    const char *name;
    size_t offset;
    bool required;
};

static const struct mem_key mem_keys[] = {
    {"MemTotal", offsetof(struct dd_meminfo, mem_total_kb), true},
    {"MemFree", offsetof(struct dd_meminfo, mem_free_kb), false},
    {"MemAvailable", offsetof(struct dd_meminfo, mem_available_kb), true},
    {"Buffers", offsetof(struct dd_meminfo, buffers_kb), false},
    {"Cached", offsetof(struct dd_meminfo, cached_kb), true},
    {"Dirty", offsetof(struct dd_meminfo, dirty_kb), true},
    {"Writeback", offsetof(struct dd_meminfo, writeback_kb), true},
    {"SwapTotal", offsetof(struct dd_meminfo, swap_total_kb), false},
    {"SwapFree", offsetof(struct dd_meminfo, swap_free_kb), false},
};

int dd_node_meminfo_parse(const char *text, size_t len, struct dd_meminfo *ret,
                          struct dd_parse_error *err)
{
    struct lines it = {.text = text, .len = len};
    bool seen[DD_ARRAY_SIZE(mem_keys)] = {false};
    struct dd_meminfo mi;
    struct line l;
    int r;

    if (!ret)
        return -EINVAL;
    r = check_text(text, len, err);
    if (r < 0)
        return r;
    memset(&mi, 0, sizeof(mi));
    while (next_line(&it, &l)) {
        struct tok toks[MAX_TOKS], key;
        const char *colon = memchr(l.s, ':', l.len);
        struct line rest;
        size_t n, k;
        uint64_t v;
        char what[QUOTE_MAX + 4];

        if (!colon || colon == l.s || memchr(l.s, ' ', (size_t)(colon - l.s)) ||
            memchr(l.s, '\t', (size_t)(colon - l.s)))
            return fail(err, DD_E_PARSE, l.no, 0, "expected 'Key: value [kB]'");
        key = (struct tok){l.s, (size_t)(colon - l.s), 0};
        rest = (struct line){colon + 1, l.len - key.len - 1, l.no};
        n = split(&rest, toks, MAX_TOKS);
        for (size_t i = 0; i < DD_MIN(n, (size_t)MAX_TOKS); i++)
            toks[i].col += key.len + 1;
        quote(what, sizeof(what), key.s, key.len);
        if (n == 0)
            return fail(err, DD_E_PARSE, l.no, l.len, "%s: no value", what);
        if (n > 2)
            return fail(err, DD_E_PARSE, l.no, toks[2].col, "%s: more than a value and a unit",
                        what);
        if (n == 2 && !tok_is(&toks[1], "kB"))
            return tok_fail(err, DD_E_PARSE, l.no, &toks[1], what, "unit is not kB:");
        for (k = 0; k < DD_ARRAY_SIZE(mem_keys); k++) {
            if (tok_is(&key, mem_keys[k].name))
                break;
        }
        if (k == DD_ARRAY_SIZE(mem_keys))
            continue; /* a key we do not keep: its value may be anything */
        if (seen[k])
            return fail(err, DD_E_PARSE, l.no, 0, "%s: a second time", what);
        if (n != 2)
            return fail(err, DD_E_PARSE, l.no, l.len, "%s: no kB unit", what);
        r = tok_u64(&toks[0], l.no, what, &v, err);
        if (r < 0)
            return r;
        memcpy((char *)&mi + mem_keys[k].offset, &v, sizeof(v));
        seen[k] = true;
    }
    for (size_t k = 0; k < DD_ARRAY_SIZE(mem_keys); k++) {
        if (mem_keys[k].required && !seen[k])
            return fail(err, DD_E_PARSE, 0, 0, "%s: missing", mem_keys[k].name);
    }
    *ret = mi;
    return 0;
}

/* ---- /proc/diskstats ---- */

static const char *const disk_field_names[] = {"major",
                                               "minor",
                                               "name",
                                               "reads",
                                               "reads_merged",
                                               "sectors_read",
                                               "read_ms",
                                               "writes",
                                               "writes_merged",
                                               "sectors_written",
                                               "write_ms",
                                               "in_flight",
                                               "io_ms",
                                               "weighted_ms",
                                               "discards",
                                               "discards_merged",
                                               "sectors_discarded",
                                               "discard_ms",
                                               "flushes",
                                               "flush_ms"};

/* MINORBITS (include/linux/kdev_t.h): dev_t is 12 bits of major, 20 of minor. */
#define DISK_MAJOR_MAX ((1u << 12) - 1u)
#define DISK_MINOR_MAX ((1u << 20) - 1u)

void dd_diskstats_release(struct dd_diskstats *d)
{
    if (!d)
        return;
    dd_free(d->disks);
    memset(d, 0, sizeof(*d));
}

static int diskstat_line(const struct line *l, struct dd_diskstat *ret, struct dd_parse_error *err)
{
    struct tok toks[MAX_TOKS];
    size_t n = split(l, toks, MAX_TOKS);
    uint64_t v[17] = {0};
    struct dd_diskstat d;
    char what[128], qname[QUOTE_MAX + 4];
    int r;

    if (n != 14 && n != 18 && n != 20)
        return fail(err, DD_E_PARSE, l->no, n > 20 ? toks[20].col : l->len,
                    "%zu fields, expected 14, 18 or 20", n);
    memset(&d, 0, sizeof(d));
    r = tok_u32(&toks[0], l->no, "field 1 (major)", DISK_MAJOR_MAX, &d.major, err);
    if (r < 0)
        return r;
    r = tok_u32(&toks[1], l->no, "field 2 (minor)", DISK_MINOR_MAX, &d.minor, err);
    if (r < 0)
        return r;
    if (toks[2].len >= DD_NODE_DISK_NAME_MAX)
        return tok_fail(err, DD_E_TOOBIG, l->no, &toks[2], "field 3 (name)", "too long");
    memcpy(d.name, toks[2].s, toks[2].len);
    d.name[toks[2].len] = '\0';
    quote(qname, sizeof(qname), toks[2].s, toks[2].len); /* any byte but NUL may be there */
    for (size_t i = 3; i < n; i++) {
        snprintf(what, sizeof(what), "%s field %zu (%s)", qname, i + 1, disk_field_names[i]);
        r = tok_u64(&toks[i], l->no, what, &v[i - 3], err);
        if (r < 0)
            return r;
    }
    d.n_fields = (unsigned)n;
    d.reads = v[0];
    d.reads_merged = v[1];
    d.sectors_read = v[2];
    d.read_ms = v[3];
    d.writes = v[4];
    d.writes_merged = v[5];
    d.sectors_written = v[6];
    d.write_ms = v[7];
    d.in_flight = v[8];
    d.io_ms = v[9];
    d.weighted_ms = v[10];
    d.discards = v[11];
    d.discards_merged = v[12];
    d.sectors_discarded = v[13];
    d.discard_ms = v[14];
    d.flushes = v[15];
    d.flush_ms = v[16];
    *ret = d;
    return 0;
}

struct disk_ref {
    const struct dd_diskstat *d;
    unsigned line;
};

static int cmp_ref_name(const void *a, const void *b)
{
    const struct disk_ref *x = a, *y = b;
    int c = strcmp(x->d->name, y->d->name);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

static int cmp_ref_dev(const void *a, const void *b)
{
    const struct disk_ref *x = a, *y = b;
    if (x->d->major != y->d->major)
        return (x->d->major > y->d->major) - (x->d->major < y->d->major);
    if (x->d->minor != y->d->minor)
        return (x->d->minor > y->d->minor) - (x->d->minor < y->d->minor);
    return (x->line > y->line) - (x->line < y->line);
}

/* Refuses a name or major:minor seen twice, naming the later line. */
static int check_unique(const struct dd_diskstats *ds, const unsigned *lines,
                        struct dd_parse_error *err)
{
    _dd_cleanup_(dd_freep) struct disk_ref *refs = NULL;

    if (ds->n < 2)
        return 0;
    refs = dd_reallocarray(NULL, ds->n, sizeof(*refs));
    if (!refs)
        return -ENOMEM;
    for (size_t i = 0; i < ds->n; i++)
        refs[i] = (struct disk_ref){&ds->disks[i], lines[i]};
    qsort(refs, ds->n, sizeof(*refs), cmp_ref_name);
    for (size_t i = 1; i < ds->n; i++) {
        if (strcmp(refs[i].d->name, refs[i - 1].d->name) == 0) {
            char q[QUOTE_MAX + 4];
            quote(q, sizeof(q), refs[i].d->name, strlen(refs[i].d->name));
            return fail(err, DD_E_PARSE, refs[i].line, 0, "device %s: a second time (line %u)", q,
                        refs[i - 1].line);
        }
    }
    qsort(refs, ds->n, sizeof(*refs), cmp_ref_dev);
    for (size_t i = 1; i < ds->n; i++) {
        if (refs[i].d->major == refs[i - 1].d->major && refs[i].d->minor == refs[i - 1].d->minor)
            return fail(err, DD_E_PARSE, refs[i].line, 0, "device %u:%u: a second time (line %u)",
                        refs[i].d->major, refs[i].d->minor, refs[i - 1].line);
    }
    return 0;
}

int dd_node_diskstats_parse(const char *text, size_t len, struct dd_diskstats *ret,
                            struct dd_parse_error *err)
{
    _dd_cleanup_(dd_freep) unsigned *lines = NULL;
    struct lines it = {.text = text, .len = len};
    struct dd_diskstats ds;
    size_t lines_cap = 0;
    struct line l;
    int r;

    if (!ret)
        return -EINVAL;
    r = check_text(text, len, err);
    if (r < 0)
        return r;
    memset(&ds, 0, sizeof(ds));
    while (next_line(&it, &l)) {
        struct dd_diskstat d;

        if (ds.n >= DD_NODE_MAX_DISKS) {
            r = fail(err, DD_E_TOOBIG, l.no, 0, "more than %u devices", DD_NODE_MAX_DISKS);
            goto fail;
        }
        r = diskstat_line(&l, &d, err);
        if (r < 0)
            goto fail;
        r = DD_ARRAY_RESERVE(ds.disks, ds.cap, ds.n + 1);
        if (r < 0)
            goto fail;
        r = DD_ARRAY_RESERVE(lines, lines_cap, ds.n + 1);
        if (r < 0)
            goto fail;
        ds.disks[ds.n] = d;
        lines[ds.n] = l.no;
        ds.n++;
    }
    r = check_unique(&ds, lines, err);
    if (r < 0)
        goto fail;
    *ret = ds;
    return 0;
fail:
    dd_diskstats_release(&ds);
    return r;
}

const struct dd_diskstat *dd_diskstats_find_name(const struct dd_diskstats *d, const char *name)
{
    if (!d || !name)
        return NULL;
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->disks[i].name, name) == 0)
            return &d->disks[i];
    }
    return NULL;
}

const struct dd_diskstat *dd_diskstats_find_dev(const struct dd_diskstats *d, uint32_t major,
                                                uint32_t minor)
{
    if (!d)
        return NULL;
    for (size_t i = 0; i < d->n; i++) {
        if (d->disks[i].major == major && d->disks[i].minor == minor)
            return &d->disks[i];
    }
    return NULL;
}

/* ---- cgroup v2 flat keyed files: cpu.stat, memory.stat ---- */

/* "key value" lines; the n keys asked for are kept in v (seen says which),
 * the others skipped. A line of another shape, a key twice or a value that
 * is not a u64 is an error naming the line. */
static int flat_keyed_parse(const char *text, size_t len, const char *const *keys, size_t n,
                            uint64_t *v, bool *seen, struct dd_parse_error *err)
{
    struct lines it = {.text = text, .len = len};
    struct line l;
    int r = check_text(text, len, err);

    if (r < 0)
        return r;
    while (next_line(&it, &l)) {
        struct tok toks[MAX_TOKS];
        size_t nt = split(&l, toks, MAX_TOKS), k;

        if (nt != 2)
            return fail(err, DD_E_PARSE, l.no, nt > 2 ? toks[2].col : l.len,
                        "%zu fields, expected 'key value'", nt);
        for (k = 0; k < n; k++) {
            if (tok_is(&toks[0], keys[k]))
                break;
        }
        if (k == n)
            continue; /* nr_periods, kernel_stack, pgfault, ...: not kept */
        if (seen[k])
            return fail(err, DD_E_PARSE, l.no, toks[0].col, "%s: a second time", keys[k]);
        r = tok_u64(&toks[1], l.no, keys[k], &v[k], err);
        if (r < 0)
            return r;
        seen[k] = true;
    }
    return 0;
}

int dd_node_cgroup_cpu_parse(const char *text, size_t len, struct dd_cgroup_cpu *ret,
                             struct dd_parse_error *err)
{
    static const char *const keys[] = {"usage_usec", "user_usec", "system_usec"};
    bool seen[3] = {false};
    uint64_t v[3] = {0};
    int r;

    if (!ret)
        return -EINVAL;
    r = flat_keyed_parse(text, len, keys, DD_ARRAY_SIZE(keys), v, seen, err);
    if (r < 0)
        return r;
    for (size_t k = 0; k < DD_ARRAY_SIZE(keys); k++) {
        if (!seen[k])
            return fail(err, DD_E_PARSE, 0, 0, "%s: missing", keys[k]);
    }
    ret->usage_usec = v[0];
    ret->user_usec = v[1];
    ret->system_usec = v[2];
    return 0;
}

int dd_node_cgroup_memstat_parse(const char *text, size_t len, struct dd_cgroup_memstat *ret,
                                 struct dd_parse_error *err)
{
    static const char *const keys[] = {"anon", "file", "active_file", "inactive_file"};
    bool seen[4] = {false};
    uint64_t v[4] = {0};
    int r;

    if (!ret)
        return -EINVAL;
    r = flat_keyed_parse(text, len, keys, DD_ARRAY_SIZE(keys), v, seen, err);
    if (r < 0)
        return r;
    if (!seen[3])
        return fail(err, DD_E_PARSE, 0, 0, "inactive_file: missing");
    ret->anon = v[0];
    ret->file = v[1];
    ret->active_file = v[2];
    ret->inactive_file = v[3];
    return 0;
}

/* ---- cgroup v2: memory.current, memory.peak ---- */

int dd_node_cgroup_u64_parse(const char *text, size_t len, uint64_t *ret,
                             struct dd_parse_error *err)
{
    struct tok t;
    uint64_t v;
    int r;

    if (!ret)
        return -EINVAL;
    r = check_text(text, len, err);
    if (r < 0)
        return r;
    if (len > 0 && text[len - 1] == '\n')
        len--;
    t = (struct tok){text, len, 0};
    if (len > 0 && memchr(text, '\n', len))
        return fail(err, DD_E_PARSE, 2, 0, "more than one line");
    r = tok_u64(&t, 1, "value", &v, err);
    if (r < 0)
        return r;
    *ret = v;
    return 0;
}

/* ---- cgroup v2: io.stat ---- */

void dd_cgroup_io_release(struct dd_cgroup_io *io)
{
    if (!io)
        return;
    dd_free(io->devs);
    memset(io, 0, sizeof(*io));
}

/* "MAJ:MIN" */
static int io_dev(const struct tok *t, unsigned line, struct dd_cgroup_io_dev *d,
                  struct dd_parse_error *err)
{
    const char *colon = memchr(t->s, ':', t->len);
    struct tok a, b;
    int r;

    if (!colon)
        return tok_fail(err, DD_E_PARSE, line, t, "device", "expected MAJ:MIN, found");
    a = (struct tok){t->s, (size_t)(colon - t->s), t->col};
    b = (struct tok){colon + 1, t->len - a.len - 1, t->col + a.len + 1};
    r = tok_u32(&a, line, "device major", DISK_MAJOR_MAX, &d->major, err);
    if (r < 0)
        return r;
    return tok_u32(&b, line, "device minor", DISK_MINOR_MAX, &d->minor, err);
}

static int io_line(const struct line *l, struct dd_cgroup_io_dev *ret, struct dd_parse_error *err)
{
    static const char *const keys[] = {"rbytes", "wbytes", "rios", "wios"};
    struct dd_cgroup_io_dev d;
    bool seen[4] = {false};
    uint64_t v[4] = {0};
    struct tok first;
    size_t i = 0, n = 0;
    int r;

    memset(&d, 0, sizeof(d));
    /* tokens one at a time: a line may hold more than MAX_TOKS of them */
    while (i < l->len) {
        struct tok t, key, value;
        size_t k;

        while (i < l->len && (l->s[i] == ' ' || l->s[i] == '\t'))
            i++;
        if (i == l->len)
            break;
        t.s = l->s + i;
        t.col = i;
        while (i < l->len && l->s[i] != ' ' && l->s[i] != '\t')
            i++;
        t.len = (size_t)(l->s + i - t.s);
        if (n++ == 0) {
            first = t;
            r = io_dev(&first, l->no, &d, err);
            if (r < 0)
                return r;
            continue;
        }
        if (!split_kv(&t, &key, &value))
            return tok_fail(err, DD_E_PARSE, l->no, &t, "io.stat", "expected key=value, found");
        for (k = 0; k < DD_ARRAY_SIZE(keys); k++) {
            if (tok_is(&key, keys[k]))
                break;
        }
        if (k == DD_ARRAY_SIZE(keys))
            continue; /* dbytes, dios, cost.*: not kept */
        if (seen[k])
            return tok_fail(err, DD_E_PARSE, l->no, &t, keys[k], "a second time:");
        r = tok_u64(&value, l->no, keys[k], &v[k], err);
        if (r < 0)
            return r;
        seen[k] = true;
    }
    for (size_t k = 0; k < DD_ARRAY_SIZE(keys); k++) {
        if (!seen[k])
            return fail(err, DD_E_PARSE, l->no, l->len, "%u:%u: %s missing", d.major, d.minor,
                        keys[k]);
    }
    d.rbytes = v[0];
    d.wbytes = v[1];
    d.rios = v[2];
    d.wios = v[3];
    *ret = d;
    return 0;
}

int dd_node_cgroup_io_parse(const char *text, size_t len, struct dd_cgroup_io *ret,
                            struct dd_parse_error *err)
{
    struct lines it = {.text = text, .len = len};
    struct dd_cgroup_io io;
    struct line l;
    int r;

    if (!ret)
        return -EINVAL;
    r = check_text(text, len, err);
    if (r < 0)
        return r;
    memset(&io, 0, sizeof(io));
    while (next_line(&it, &l)) {
        struct dd_cgroup_io_dev d;

        if (io.n >= DD_NODE_MAX_IO_DEVICES) {
            r = fail(err, DD_E_TOOBIG, l.no, 0, "more than %u devices", DD_NODE_MAX_IO_DEVICES);
            goto fail;
        }
        r = io_line(&l, &d, err);
        if (r < 0)
            goto fail;
        for (size_t i = 0; i < io.n; i++) {
            if (io.devs[i].major == d.major && io.devs[i].minor == d.minor) {
                r = fail(err, DD_E_PARSE, l.no, 0, "device %u:%u: a second time", d.major, d.minor);
                goto fail;
            }
        }
        r = DD_ARRAY_RESERVE(io.devs, io.cap, io.n + 1);
        if (r < 0)
            goto fail;
        io.devs[io.n++] = d;
    }
    *ret = io;
    return 0;
fail:
    dd_cgroup_io_release(&io);
    return r;
}
