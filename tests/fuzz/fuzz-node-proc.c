/*
 * Fuzz target for dedupd/node's pure parts: every input goes to every
 * parser (/proc/stat, loadavg, PSI, meminfo, diskstats, cgroup cpu.stat,
 * memory.current, io.stat), and what parses goes on to the derived figures.
 * Checked for each:
 *   - the code is 0 or one the parser documents; err NULL gives the same;
 *   - on failure the output is untouched and err names a line of the input
 *     (0 for the whole text) and a column within it (at most one past its
 *     end), in a printable message;
 *   - on success, structural facts recomputed here by a simpler route: as
 *     many cpuN / device / io.stat lines as the input holds, cpu numbers
 *     increasing, field counts in range, device names unique and found by
 *     lookup, values within their documented ranges;
 *   - a '\n' appended changes nothing (blank lines are skipped);
 *   - CPU utilisation and disk rates over pairs of parsed lines stay finite
 *     and in range: 0 <= util_excl_vdo <= util <= 1, vdo_seconds <= busy,
 *     rates non-negative, a reset interval all zeros.
 * A violated invariant aborts.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "dedupd/node/node.h"
#include "fuzz.h"

/* Inputs past this add nothing: every format's lines are short. */
#define MAX_INPUT (64u * 1024u)

/* ---- helpers ---- */

static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    }
    return true;
}

static bool is_blank_line(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    }
    return true;
}

/* Length of line no (1-based) of the text, or SIZE_MAX past the end. */
static size_t line_length(const char *text, size_t len, unsigned no)
{
    size_t pos = 0;

    for (unsigned i = 1; pos <= len; i++) {
        const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
        size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (i == no)
            return l;
        if (!nl)
            break;
        pos += l + 1;
    }
    return SIZE_MAX;
}

/* The error of a failed parse, checked against the input. */
static void check_error(const char *text, size_t len, const struct dd_parse_error *err)
{
    CHECK(err->message[0] != '\0' && printable(err->message));
    if (err->line == 0) {
        CHECK(err->column == 0);
        return;
    }
    {
        size_t l = line_length(text, len, err->line);
        CHECK(l != SIZE_MAX);
        CHECK(err->column >= 1 && err->column <= l + 1);
    }
}

/* Non-blank lines, and those whose first token starts with "cpu". */
static void count_lines(const char *text, size_t len, size_t *ret_lines, size_t *ret_cpu)
{
    size_t pos = 0, lines = 0, cpu = 0;

    while (pos < len) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - s) : len - pos, i = 0;

        if (!is_blank_line(s, l)) {
            lines++;
            while (s[i] == ' ' || s[i] == '\t')
                i++;
            if (l - i >= 3 && memcmp(s + i, "cpu", 3) == 0)
                cpu++;
        }
        pos += l + 1;
    }
    *ret_lines = lines;
    *ret_cpu = cpu;
}

static char *with_newline(const char *text, size_t len)
{
    char *t = malloc(len + 1);
    CHECK(t);
    if (len > 0)
        memcpy(t, text, len);
    t[len] = '\n';
    return t;
}

/* Field by field: the structs have padding, which memcmp would compare. */
static bool times_eq(const struct dd_cpu_times *a, const struct dd_cpu_times *b)
{
    return a->user == b->user && a->nice == b->nice && a->system == b->system &&
           a->idle == b->idle && a->iowait == b->iowait && a->irq == b->irq &&
           a->softirq == b->softirq && a->steal == b->steal && a->guest == b->guest &&
           a->guest_nice == b->guest_nice && a->n_fields == b->n_fields;
}

static bool psi_line_eq(const struct dd_psi_line *a, const struct dd_psi_line *b)
{
    return a->present == b->present && a->avg10 == b->avg10 && a->avg60 == b->avg60 &&
           a->avg300 == b->avg300 && a->total_us == b->total_us;
}

static bool disk_eq(const struct dd_diskstat *a, const struct dd_diskstat *b)
{
    return a->major == b->major && a->minor == b->minor && strcmp(a->name, b->name) == 0 &&
           a->n_fields == b->n_fields && a->reads == b->reads &&
           a->reads_merged == b->reads_merged && a->sectors_read == b->sectors_read &&
           a->read_ms == b->read_ms && a->writes == b->writes &&
           a->writes_merged == b->writes_merged && a->sectors_written == b->sectors_written &&
           a->write_ms == b->write_ms && a->in_flight == b->in_flight && a->io_ms == b->io_ms &&
           a->weighted_ms == b->weighted_ms && a->discards == b->discards &&
           a->discards_merged == b->discards_merged &&
           a->sectors_discarded == b->sectors_discarded && a->discard_ms == b->discard_ms &&
           a->flushes == b->flushes && a->flush_ms == b->flush_ms;
}

/* ---- derived figures ---- */

static void check_util(const struct dd_cpu_times *a, const struct dd_cpu_times *b, double vdo)
{
    struct dd_cpu_util u;

    CHECK(dd_cpu_util(a, b, 100, vdo, &u) == 0);
    CHECK(isfinite(u.busy_seconds) && isfinite(u.total_seconds));
    CHECK(u.busy_seconds >= 0.0 && u.total_seconds >= u.busy_seconds);
    CHECK(u.vdo_seconds >= 0.0 && u.vdo_seconds <= u.busy_seconds && u.vdo_seconds <= vdo);
    CHECK(u.valid == (u.total_seconds > 0.0));
    CHECK(u.util >= 0.0 && u.util <= 1.0);
    CHECK(u.util_excl_vdo >= 0.0 && u.util_excl_vdo <= u.util);
    CHECK(!signbit(u.util_excl_vdo));
    if (!u.valid)
        CHECK(u.util == 0.0 && u.util_excl_vdo == 0.0);
}

static void check_rates(const struct dd_diskstat *p, const struct dd_diskstat *c, double interval)
{
    struct dd_diskstat cur = *c;
    struct dd_disk_rates r;
    int rc;

    cur.major = p->major;
    cur.minor = p->minor;
    rc = dd_disk_rates(p, &cur, interval, &r);
    CHECK(rc == 0 || rc == DD_E_RANGE);
    if (rc != 0)
        return;
    if (r.reset) {
        CHECK(r.reads == 0 && r.writes == 0 && r.read_iops == 0.0 && r.write_mbps == 0.0 &&
              !r.has_read_latency && !r.has_write_latency && r.util == 0.0);
        return;
    }
    CHECK(r.reads == cur.reads - p->reads && r.writes == cur.writes - p->writes);
    CHECK(isfinite(r.read_iops) && r.read_iops >= 0.0);
    CHECK(isfinite(r.write_iops) && r.write_iops >= 0.0);
    CHECK(isfinite(r.read_mbps) && r.read_mbps >= 0.0);
    CHECK(isfinite(r.write_mbps) && r.write_mbps >= 0.0);
    CHECK(r.has_read_latency == (r.reads > 0) && r.has_write_latency == (r.writes > 0));
    CHECK(isfinite(r.read_latency_ms) && r.read_latency_ms >= 0.0);
    CHECK(isfinite(r.write_latency_ms) && r.write_latency_ms >= 0.0);
    CHECK(r.util >= 0.0 && r.util <= 1.0);
}

/* ---- each parser ---- */

static void fuzz_stat(const char *text, size_t len, double vdo)
{
    struct dd_cpu_stat s, sentinel, s2;
    struct dd_parse_error err = {0};
    size_t lines, cpu;
    char *t2;
    int r;

    memset(&s, 0x5a, sizeof(s));
    sentinel = s;
    r = dd_node_stat_parse(text, len, &s, &err);
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
    t2 = with_newline(text, len);
    CHECK(dd_node_stat_parse(t2, len + 1, &s2, NULL) == r);
    free(t2);
    if (r != 0) {
        CHECK(memcmp(&s, &sentinel, sizeof(s)) == 0);
        check_error(text, len, &err);
        return;
    }
    count_lines(text, len, &lines, &cpu);
    CHECK(cpu == s.n_cpus + 1);
    CHECK(s.n_cpus <= DD_NODE_MAX_CPUS && s.n_cpus == s2.n_cpus);
    CHECK(times_eq(&s.all, &s2.all));
    CHECK(s.all.n_fields >= 4 && s.all.n_fields <= 10);
    for (size_t i = 0; i < s.n_cpus; i++) {
        CHECK(s.cpus[i].t.n_fields >= 4 && s.cpus[i].t.n_fields <= 10);
        CHECK(s.cpus[i].cpu == s2.cpus[i].cpu && times_eq(&s.cpus[i].t, &s2.cpus[i].t));
        if (i > 0)
            CHECK(s.cpus[i - 1].cpu < s.cpus[i].cpu);
    }
    check_util(&s.all, &s.all, vdo);
    for (size_t i = 0; i < s.n_cpus && i < 16; i++) {
        check_util(&s.all, &s.cpus[i].t, vdo);
        check_util(&s.cpus[i].t, &s.all, vdo);
    }
    dd_cpu_stat_release(&s);
    dd_cpu_stat_release(&s2);
}

static void fuzz_loadavg(const char *text, size_t len)
{
    struct dd_loadavg la, sentinel, la2;
    struct dd_parse_error err = {0};
    char *t2;
    int r;

    memset(&la, 0x5a, sizeof(la));
    sentinel = la;
    r = dd_node_loadavg_parse(text, len, &la, &err);
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
    t2 = with_newline(text, len);
    CHECK(dd_node_loadavg_parse(t2, len + 1, &la2, NULL) == r);
    free(t2);
    if (r != 0) {
        CHECK(memcmp(&la, &sentinel, sizeof(la)) == 0);
        check_error(text, len, &err);
        return;
    }
    CHECK(memcmp(&la, &la2, sizeof(la)) == 0);
    CHECK(isfinite(la.load1) && la.load1 >= 0.0 && la.load1 <= 1e12);
    CHECK(isfinite(la.load5) && la.load5 >= 0.0 && la.load5 <= 1e12);
    CHECK(isfinite(la.load15) && la.load15 >= 0.0 && la.load15 <= 1e12);
    CHECK(la.run_queue == (la.runnable > 0 ? la.runnable - 1 : 0));
    CHECK(la.last_pid <= INT32_MAX);
}

static void check_psi_line(const struct dd_psi_line *l)
{
    if (!l->present) {
        CHECK(l->avg10 == 0.0 && l->avg60 == 0.0 && l->avg300 == 0.0 && l->total_us == 0);
        return;
    }
    CHECK(l->avg10 >= 0.0 && l->avg10 <= 100.0);
    CHECK(l->avg60 >= 0.0 && l->avg60 <= 100.0);
    CHECK(l->avg300 >= 0.0 && l->avg300 <= 100.0);
}

static void fuzz_psi(const char *text, size_t len)
{
    struct dd_psi p, sentinel, p2;
    struct dd_parse_error err = {0};
    size_t lines, cpu;
    char *t2;
    int r;

    memset(&p, 0x5a, sizeof(p));
    sentinel = p;
    r = dd_node_psi_parse(text, len, &p, &err);
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
    t2 = with_newline(text, len);
    CHECK(dd_node_psi_parse(t2, len + 1, &p2, NULL) == r);
    free(t2);
    if (r != 0) {
        CHECK(memcmp(&p, &sentinel, sizeof(p)) == 0);
        check_error(text, len, &err);
        return;
    }
    CHECK(psi_line_eq(&p.some, &p2.some) && psi_line_eq(&p.full, &p2.full));
    CHECK(p.some.present);
    check_psi_line(&p.some);
    check_psi_line(&p.full);
    count_lines(text, len, &lines, &cpu);
    CHECK(lines == (p.full.present ? 2u : 1u));
}

static void fuzz_meminfo(const char *text, size_t len)
{
    struct dd_meminfo m, sentinel, m2;
    struct dd_parse_error err = {0};
    char *t2;
    int r;

    memset(&m, 0x5a, sizeof(m));
    sentinel = m;
    r = dd_node_meminfo_parse(text, len, &m, &err);
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
    t2 = with_newline(text, len);
    CHECK(dd_node_meminfo_parse(t2, len + 1, &m2, NULL) == r);
    free(t2);
    if (r != 0) {
        CHECK(memcmp(&m, &sentinel, sizeof(m)) == 0);
        check_error(text, len, &err);
        return;
    }
    CHECK(memcmp(&m, &m2, sizeof(m)) == 0);
    /* the required keys are in the text */
    CHECK(memmem(text, len, "MemTotal:", 9) && memmem(text, len, "MemAvailable:", 13) &&
          memmem(text, len, "Cached:", 7) && memmem(text, len, "Dirty:", 6) &&
          memmem(text, len, "Writeback:", 10));
}

static void fuzz_diskstats(const char *text, size_t len, double interval)
{
    struct dd_diskstats d, sentinel, d2;
    struct dd_parse_error err = {0};
    size_t lines, cpu;
    char *t2;
    int r;

    memset(&d, 0x5a, sizeof(d));
    sentinel = d;
    r = dd_node_diskstats_parse(text, len, &d, &err);
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
    t2 = with_newline(text, len);
    CHECK(dd_node_diskstats_parse(t2, len + 1, &d2, NULL) == r);
    free(t2);
    if (r != 0) {
        CHECK(memcmp(&d, &sentinel, sizeof(d)) == 0);
        check_error(text, len, &err);
        return;
    }
    count_lines(text, len, &lines, &cpu);
    CHECK(d.n == lines && d.n == d2.n && d.n <= DD_NODE_MAX_DISKS);
    for (size_t i = 0; i < d.n; i++) {
        const struct dd_diskstat *s = &d.disks[i];
        size_t nl = strlen(s->name);

        CHECK(disk_eq(s, &d2.disks[i]));
        CHECK(s->n_fields == 14 || s->n_fields == 18 || s->n_fields == 20);
        CHECK(nl > 0 && nl < DD_NODE_DISK_NAME_MAX && !strchr(s->name, ' ') &&
              !strchr(s->name, '\t') && !strchr(s->name, '\n'));
        CHECK(s->major < 4096 && s->minor < (1u << 20));
        if (s->n_fields < 18)
            CHECK(s->discards == 0 && s->discard_ms == 0 && s->sectors_discarded == 0);
        if (s->n_fields < 20)
            CHECK(s->flushes == 0 && s->flush_ms == 0);
        /* unique, so the lookups find this very entry */
        CHECK(dd_diskstats_find_name(&d, s->name) == s);
        CHECK(dd_diskstats_find_dev(&d, s->major, s->minor) == s);
        if (i < 32) {
            check_rates(s, s, interval);
            check_rates(s, &d.disks[(i + 1) % d.n], interval);
            check_rates(&d.disks[(i + 1) % d.n], s, interval);
        }
    }
    dd_diskstats_release(&d);
    dd_diskstats_release(&d2);
}

static void fuzz_cgroup(const char *text, size_t len)
{
    struct dd_parse_error err = {0};
    int r;

    {
        struct dd_cgroup_cpu c, sentinel, c2;
        memset(&c, 0x5a, sizeof(c));
        sentinel = c;
        r = dd_node_cgroup_cpu_parse(text, len, &c, &err);
        CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
        CHECK(dd_node_cgroup_cpu_parse(text, len, &c2, NULL) == r);
        if (r != 0) {
            CHECK(memcmp(&c, &sentinel, sizeof(c)) == 0);
            check_error(text, len, &err);
        } else {
            CHECK(memcmp(&c, &c2, sizeof(c)) == 0);
        }
    }
    {
        uint64_t v = 0x5a5a5a5a5a5a5a5aull, v2;
        size_t l = len > 0 && text[len - 1] == '\n' ? len - 1 : len, z = 0;
        bool digits = l > 0;

        memset(&err, 0, sizeof(err));
        r = dd_node_cgroup_u64_parse(text, len, &v, &err);
        CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
        CHECK(dd_node_cgroup_u64_parse(text, len, &v2, NULL) == r);
        for (size_t i = 0; i < l && digits; i++)
            digits = text[i] >= '0' && text[i] <= '9';
        if (r != 0) {
            CHECK(v == 0x5a5a5a5a5a5a5a5aull);
            check_error(text, len, &err);
        } else {
            /* strtoull on the digits (leading zeros dropped) agrees */
            char buf[24];
            CHECK(digits);
            while (l - z > 1 && text[z] == '0')
                z++;
            CHECK(l - z <= 20);
            memcpy(buf, text + z, l - z);
            buf[l - z] = '\0';
            errno = 0;
            CHECK(strtoull(buf, NULL, 10) == v && errno == 0 && v2 == v);
        }
    }
    {
        struct dd_cgroup_io io, sentinel, io2;
        size_t lines, cpu;

        memset(&io, 0x5a, sizeof(io));
        sentinel = io;
        memset(&err, 0, sizeof(err));
        r = dd_node_cgroup_io_parse(text, len, &io, &err);
        CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG);
        CHECK(dd_node_cgroup_io_parse(text, len, &io2, NULL) == r);
        if (r != 0) {
            CHECK(memcmp(&io, &sentinel, sizeof(io)) == 0);
            check_error(text, len, &err);
            return;
        }
        count_lines(text, len, &lines, &cpu);
        CHECK(io.n == lines && io.n == io2.n && io.n <= DD_NODE_MAX_IO_DEVICES);
        for (size_t i = 0; i < io.n; i++) {
            CHECK(memcmp(&io.devs[i], &io2.devs[i], sizeof(io.devs[i])) == 0);
            for (size_t j = 0; j < i; j++)
                CHECK(io.devs[j].major != io.devs[i].major || io.devs[j].minor != io.devs[i].minor);
        }
        dd_cgroup_io_release(&io);
        dd_cgroup_io_release(&io2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    /* knobs for the derived figures, from the input's first bytes */
    double vdo = size > 0 ? (double)data[0] / 16.0 : 0.0;
    double interval = size > 1 ? ldexp(1.0 + (double)data[1], (int)(data[1] % 64) - 40) : 1.0;

    if (size > MAX_INPUT)
        return 0;
    fuzz_stat(text, size, vdo);
    fuzz_loadavg(text, size);
    fuzz_psi(text, size);
    fuzz_meminfo(text, size);
    fuzz_diskstats(text, size, interval);
    fuzz_cgroup(text, size);
    return 0;
}
