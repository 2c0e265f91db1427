/*
 * The VDO stats simulator (dedupd/vdo/sim.h): workload parsing (good and bad
 * inputs with their exact messages), the published cost and latency
 * functions, and runs whose output is checked from the files alone, with an
 * independent reader written here: the stats key list and layout against the
 * real dm-vdo 6.12 capture, the counter invariants, determinism per seed, the
 * thread CPU and write latency relations, and node load from /proc/stat.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/vdo/sim.h"
#include "helpers.h"

/* ---- small readers, independent of the simulator's code ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (!f)
        fail_msg("open %s: %s", path, strerror(errno));
    for (;;) {
        size_t n;
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static char *slurpf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *slurpf(const char *fmt, ...)
{
    char *path, *s;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&path, fmt, ap);
    va_end(ap);
    assert_true(n > 0);
    s = slurp(path);
    free(path);
    return s;
}

static bool exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool exists(const char *fmt, ...)
{
    char *path;
    struct stat st;
    va_list ap;
    bool r;

    va_start(ap, fmt);
    assert_true(vasprintf(&path, fmt, ap) > 0);
    va_end(ap);
    r = lstat(path, &st) == 0;
    free(path);
    return r;
}

/* Skips the '#' lines of a reference capture. */
static const char *content(const char *text)
{
    while (*text == '#') {
        const char *nl = strchr(text, '\n');
        if (!nl)
            return text + strlen(text);
        text = nl + 1;
    }
    return text;
}

#define MAX_KEYS 256

struct kvs {
    char key[MAX_KEYS][96]; /* dotted path */
    char val[MAX_KEYS][32];
    size_t n;
    unsigned groups;
};

/* A minimal reader of the "{ key : value, group : { ... }, }" reply. */
static void parse_reply(const char *text, struct kvs *out)
{
    const char *p = content(text);
    char stack[8][48];
    unsigned depth = 0;

    memset(out, 0, sizeof(*out));
    while (*p == ' ')
        p++;
    assert_int_equal(*p, '{');
    p++;
    for (;;) {
        char name[48];
        size_t n = 0;

        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '}') {
            p++;
            if (depth == 0)
                break;
            depth--;
            continue;
        }
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
            assert_true(n + 1 < sizeof(name));
            name[n++] = *p++;
        }
        name[n] = '\0';
        assert_true(n > 0);
        assert_true(strncmp(p, " : ", 3) == 0);
        p += 3;
        while (*p == ' ')
            p++;
        if (*p == '{') {
            assert_true(depth < 8);
            snprintf(stack[depth++], sizeof(stack[0]), "%s", name);
            out->groups++;
            p++;
            continue;
        }
        assert_true(out->n < MAX_KEYS);
        {
            char *k = out->key[out->n];
            size_t used = 0;
            for (unsigned d = 0; d < depth; d++)
                used += (size_t)snprintf(k + used, sizeof(out->key[0]) - used, "%s.", stack[d]);
            snprintf(k + used, sizeof(out->key[0]) - used, "%s", name);
        }
        n = 0;
        while (*p && *p != ',') {
            assert_true(n + 1 < sizeof(out->val[0]));
            out->val[out->n][n++] = *p++;
        }
        out->val[out->n][n] = '\0';
        out->n++;
        assert_int_equal(*p, ',');
    }
    assert_string_equal(p, "\n");
}

static const char *kv_get(const struct kvs *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->key[i], key) == 0)
            return s->val[i];
    fail_msg("key %s missing", key);
    return NULL;
}

static unsigned long long num(const char *s)
{
    uint64_t x;
    if (dd_parse_u64(s, &x) != 0)
        fail_msg("not a number: '%s'", s);
    return (unsigned long long)x;
}

static unsigned long long kv_u(const struct kvs *s, const char *key)
{
    return num(kv_get(s, key));
}

/* Every run of digits (and '.') becomes N: the layout without the values. */
static char *mask_numbers(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    assert_non_null(out);
    for (const char *p = text; *p;) {
        if ((*p >= '0' && *p <= '9')) {
            while ((*p >= '0' && *p <= '9') || *p == '.')
                p++;
            *o++ = 'N';
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Fields of text separated by any of sep, into f (at most max); text is cut
 * in place. */
static size_t split_on(char *text, const char *sep, char **f, size_t max)
{
    size_t n = 0;
    char *p = text;

    for (;;) {
        while (*p && strchr(sep, *p))
            p++;
        if (!*p || n == max)
            return n;
        f[n++] = p;
        while (*p && !strchr(sep, *p))
            p++;
        if (*p)
            *p++ = '\0';
    }
}

/* Whitespace-separated fields of one line into f (at most max). */
static size_t split(char *line, char **f, size_t max)
{
    return split_on(line, " \n", f, max);
}

/* ---- workload parsing ---- */

static const char example[] =
    "{\"volumes\": [{\"name\": \"v1\", \"write_mbps\": 200, \"read_mbps\": 400,"
    " \"duplicate_share\": 0.5, \"zero_share\": 0.05, \"compressible_share\": 0.3,"
    " \"index_entries\": 50000000, \"stored_gib\": 300, \"cpu_load\": 0.25,"
    " \"compression\": true}],"
    " \"phases\": [{\"at_interval\": 100, \"volumes\": {\"v1\": {\"cpu_load\": 0.8}}}]}";

static void test_workload_good(void **state)
{
    struct dd_vdo_workload w = {0};
    struct dd_parse_error err = {0};
    struct dd_vdo_volume_params p;
    const struct dd_vdo_volume_spec *v;
    (void)state;

    assert_int_equal(dd_vdo_sim_load_workload(example, strlen(example), &w, &err), 0);
    assert_int_equal(w.cpus, 2);
    assert_int_equal(w.n_volumes, 1);
    v = &w.volumes[0];
    assert_string_equal(v->name, "v1");
    assert_true(v->p.write_mbps == 200 && v->p.read_mbps == 400);
    assert_true(v->p.duplicate_share == 0.5 && v->p.zero_share == 0.05);
    assert_true(v->p.compressible_share == 0.3 && v->p.cpu_load == 0.25);
    assert_true(v->p.compression);
    assert_int_equal(v->index_entries, 50000000);
    assert_true(v->stored_gib == 300);
    assert_true(v->physical_gib == 0 && v->logical_gib == 0 && v->index_memory_gb == 0);
    assert_int_equal(v->fragments_per_block, 4);
    assert_int_equal(w.n_phases, 1);
    assert_int_equal(w.phases[0].at_interval, 100);
    assert_int_equal(w.phases[0].n_overrides, 1);
    assert_int_equal(w.phases[0].overrides[0].set, DD_VDO_SIM_SET_CPU_LOAD);

    assert_int_equal(dd_vdo_sim_params_at(&w, 0, 99, &p), 0);
    assert_true(p.cpu_load == 0.25 && p.write_mbps == 200);
    assert_int_equal(dd_vdo_sim_params_at(&w, 0, 100, &p), 0);
    assert_true(p.cpu_load == 0.8 && p.write_mbps == 200 && p.compression);
    assert_int_equal(dd_vdo_sim_params_at(&w, 1, 0, &p), -EINVAL);
    assert_true(dd_vdo_sim_node_load(&w, 0) == 0.25);
    assert_true(dd_vdo_sim_node_load(&w, 500) == 0.8);
    dd_vdo_workload_release(&w);
    dd_vdo_workload_release(&w); /* twice: zeroed the first time */
    dd_vdo_workload_release(NULL);

    /* defaults, node, optional sizes, whole numbers written as reals */
    {
        static const char j[] =
            "{\"node\": {\"cpus\": 8}, \"volumes\": [{\"name\": \"a.b_c+d-1\"},"
            " {\"name\": \"x\", \"index_entries\": 5e7, \"physical_gib\": 100,"
            " \"logical_gib\": 1000, \"index_memory_gb\": 0.5, \"sparse_index\": true,"
            " \"fragments_per_block\": 14}], \"phases\": []}";
        assert_int_equal(dd_vdo_sim_load_workload(j, strlen(j), &w, &err), 0);
        assert_int_equal(w.cpus, 8);
        assert_int_equal(w.n_volumes, 2);
        assert_true(w.volumes[0].p.write_mbps == 0 && !w.volumes[0].p.compression);
        assert_int_equal(w.volumes[1].index_entries, 50000000);
        assert_true(w.volumes[1].index_memory_gb == 0.5 && w.volumes[1].sparse_index);
        assert_int_equal(w.volumes[1].fragments_per_block, 14);
        assert_int_equal(w.n_phases, 0);
        assert_true(dd_vdo_sim_node_load(&w, 0) == 0);
        dd_vdo_workload_release(&w);
    }
    /* loads add up, capped */
    {
        static const char j[] = "{\"volumes\": [{\"name\": \"a\", \"cpu_load\": 0.6},"
                                " {\"name\": \"b\", \"cpu_load\": 0.5}]}";
        assert_int_equal(dd_vdo_sim_load_workload(j, strlen(j), &w, &err), 0);
        assert_true(dd_vdo_sim_node_load(&w, 0) == DD_VDO_SIM_LOAD_MAX);
        dd_vdo_workload_release(&w);
    }
}

static void test_workload_bad(void **state)
{
    static const struct {
        const char *json;
        int ret;
        unsigned line, column;
        const char *message;
    } cases[] = {
        {"", DD_E_PARSE, 1, 0, "workload: invalid JSON: '[' or '{' expected near end of file"},
        {"{\"volumes\": [}", DD_E_PARSE, 1, 14,
         "workload: invalid JSON: unexpected token near '}'"},
        {"{\"volumes\": [], \"volumes\": []}", DD_E_PARSE, 1, 25,
         "workload: invalid JSON: duplicate object key near '\"volumes\"'"},
        {"[]", DD_E_PARSE, 0, 0, "workload: expected a JSON object"},
        {"{}", DD_E_PARSE, 0, 0, "workload: missing key 'volumes'"},
        {"{\"volumes\": {}}", DD_E_PARSE, 0, 0, "workload: 'volumes' must be an array"},
        {"{\"volumes\": []}", DD_E_PARSE, 0, 0, "workload: 'volumes' must not be empty"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phase\": []}", DD_E_PARSE, 0, 0,
         "workload: unknown key 'phase'"},
        {"{\"volumes\": [1]}", DD_E_PARSE, 0, 0, "volume 1: expected a JSON object"},
        {"{\"volumes\": [{\"write_mbps\": 1}]}", DD_E_PARSE, 0, 0, "volume 1: missing key 'name'"},
        {"{\"volumes\": [{\"name\": 7}]}", DD_E_PARSE, 0, 0, "volume 1: 'name' must be a string"},
        {"{\"volumes\": [{\"name\": \"a/b\"}]}", DD_E_RANGE, 0, 0,
         "volume 1: invalid name 'a/b' (1-63 of A-Z a-z 0-9 . _ + -, not starting with '.', "
         "not 'proc' or 'replay.json')"},
        {"{\"volumes\": [{\"name\": \"proc\"}]}", DD_E_RANGE, 0, 0,
         "volume 1: invalid name 'proc' (1-63 of A-Z a-z 0-9 . _ + -, not starting with '.', "
         "not 'proc' or 'replay.json')"},
        {"{\"volumes\": [{\"name\": \"v\"}, {\"name\": \"v\"}]}", DD_E_PARSE, 0, 0,
         "volume 2: duplicate name 'v'"},
        {"{\"volumes\": [{\"name\": \"v1\", \"writes_mbps\": 1}]}", DD_E_PARSE, 0, 0,
         "volume 'v1': unknown key 'writes_mbps'"},
        {"{\"volumes\": [{\"name\": \"v1\", \"write_mbps\": \"fast\"}]}", DD_E_PARSE, 0, 0,
         "volume 'v1': 'write_mbps' must be a number"},
        {"{\"volumes\": [{\"name\": \"v1\", \"compression\": 1}]}", DD_E_PARSE, 0, 0,
         "volume 'v1': 'compression' must be true or false"},
        {"{\"volumes\": [{\"name\": \"v1\", \"duplicate_share\": 1.5}]}", DD_E_RANGE, 0, 0,
         "volume 'v1': 'duplicate_share' must be between 0 and 1 (got 1.5)"},
        {"{\"volumes\": [{\"name\": \"v1\", \"cpu_load\": -0.1}]}", DD_E_RANGE, 0, 0,
         "volume 'v1': 'cpu_load' must be between 0 and 0.95 (got -0.1)"},
        {"{\"volumes\": [{\"name\": \"v1\", \"index_entries\": 1.5}]}", DD_E_RANGE, 0, 0,
         "volume 'v1': 'index_entries' must be a whole number (got 1.5)"},
        {"{\"volumes\": [{\"name\": \"v1\", \"index_entries\": -1}]}", DD_E_RANGE, 0, 0,
         "volume 'v1': 'index_entries' must be between 0 and 1099511627776 (got -1)"},
        {"{\"volumes\": [{\"name\": \"v1\", \"index_memory_gb\": 0.3}]}", DD_E_RANGE, 0, 0,
         "volume 'v1': 'index_memory_gb' must be 0.25, 0.5, 0.75 or a whole number 1..1024 "
         "(got 0.3)"},
        {"{\"volumes\": [{\"name\": \"v1\", \"fragments_per_block\": 15}]}", DD_E_RANGE, 0, 0,
         "volume 'v1': 'fragments_per_block' must be between 2 and 14 (got 15)"},
        {"{\"volumes\": [{\"name\": \"v1\", \"duplicate_share\": 0.7, \"zero_share\": 0.5}]}",
         DD_E_RANGE, 0, 0,
         "volume 'v1': 'duplicate_share' + 'zero_share' must not exceed 1 (got 1.2)"},
        {"{\"node\": {\"cpus\": 0}, \"volumes\": [{\"name\": \"v\"}]}", DD_E_RANGE, 0, 0,
         "node: 'cpus' must be between 1 and 1024 (got 0)"},
        {"{\"node\": {\"memory\": 1}, \"volumes\": [{\"name\": \"v\"}]}", DD_E_PARSE, 0, 0,
         "node: unknown key 'memory'"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": {}}", DD_E_PARSE, 0, 0,
         "workload: 'phases' must be an array"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"volumes\": {}}]}", DD_E_PARSE, 0, 0,
         "phase 1: missing key 'at_interval'"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at_interval\": 1}]}", DD_E_PARSE, 0, 0,
         "phase 1: missing key 'volumes'"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at\": 1}]}", DD_E_PARSE, 0, 0,
         "phase 1: unknown key 'at'"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at_interval\": 1, \"volumes\": "
         "{\"w\": {}}}]}",
         DD_E_PARSE, 0, 0, "phase 1: unknown volume 'w'"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at_interval\": 1, \"volumes\": "
         "{\"v\": {\"cpu\": 1}}}]}",
         DD_E_PARSE, 0, 0, "phase 1: volume 'v': unknown key 'cpu'"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at_interval\": 1, \"volumes\": "
         "{\"v\": {\"stored_gib\": 1}}}]}",
         DD_E_PARSE, 0, 0,
         "phase 1: volume 'v': 'stored_gib' cannot change in a phase (only rates, shares, "
         "cpu_load and compression can)"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at_interval\": 1, \"volumes\": "
         "{\"v\": {\"cpu_load\": 2}}}]}",
         DD_E_RANGE, 0, 0, "phase 1: volume 'v': 'cpu_load' must be between 0 and 0.95 (got 2)"},
        {"{\"volumes\": [{\"name\": \"v\", \"zero_share\": 0.5}], \"phases\": [{\"at_interval\": "
         "2, \"volumes\": {\"v\": {\"duplicate_share\": 0.6}}}]}",
         DD_E_RANGE, 0, 0,
         "phase 1: volume 'v': 'duplicate_share' + 'zero_share' must not exceed 1 (got 1.1)"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at_interval\": 5, \"volumes\": {}},"
         " {\"at_interval\": 4, \"volumes\": {}}]}",
         DD_E_RANGE, 0, 0,
         "phase 2: 'at_interval' 4 comes before the previous phase's 5 (phases must be in "
         "order)"},
        {"{\"volumes\": [{\"name\": \"v\"}], \"phases\": [{\"at_interval\": 10000, \"volumes\": "
         "{}}]}",
         DD_E_RANGE, 0, 0, "phase 1: 'at_interval' must be between 0 and 9998 (got 10000)"},
    };
    (void)state;

    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        struct dd_vdo_workload w = {.cpus = 77};
        struct dd_parse_error err = {0};
        int r = dd_vdo_sim_load_workload(cases[i].json, strlen(cases[i].json), &w, &err);
        if (r != cases[i].ret || strcmp(err.message, cases[i].message) != 0 ||
            err.line != cases[i].line || err.column != cases[i].column)
            fail_msg("case %zu: got %d %u:%u '%s'", i, r, err.line, err.column, err.message);
        assert_int_equal(w.cpus, 77); /* untouched on failure */
        assert_null(w.volumes);
    }
    /* too big, and NULL error pointer */
    {
        struct dd_vdo_workload w = {0};
        struct dd_parse_error err = {0};
        assert_int_equal(
            dd_vdo_sim_load_workload("{}", DD_VDO_SIM_MAX_WORKLOAD_BYTES + 1, &w, &err),
            DD_E_TOOBIG);
        assert_string_equal(err.message, "workload: larger than 1048576 bytes");
        assert_int_equal(dd_vdo_sim_load_workload("[", 1, &w, NULL), DD_E_PARSE);
    }
}

/* Every allocation of ours fails in turn: -ENOMEM, nothing leaks (ASan). */
static void test_workload_alloc_failures(void **state)
{
    static const char j[] =
        "{\"volumes\": [{\"name\": \"a\"}, {\"name\": \"b\"}], \"phases\": [{\"at_interval\": 1, "
        "\"volumes\": {\"a\": {\"cpu_load\": 0.5}, \"b\": {\"write_mbps\": 5}}}, "
        "{\"at_interval\": 2, \"volumes\": {\"b\": {\"compression\": true}}}]}";
    int r = -ENOMEM;
    (void)state;

    for (unsigned long n = 1; r == -ENOMEM && n < 100; n++) {
        struct dd_vdo_workload w = {0};
        dd_alloc_fail_at(n);
        r = dd_vdo_sim_load_workload(j, strlen(j), &w, NULL);
        dd_alloc_fail_at(0);
        if (r == 0) {
            assert_int_equal(w.n_phases, 2);
            dd_vdo_workload_release(&w);
        }
    }
    assert_int_equal(r, 0);
}

static void test_load_file(void **state)
{
    char *dir = tt_tmpdir(), *path = tt_path(dir, "w.json");
    struct dd_vdo_workload w = {0};
    struct dd_parse_error err = {0};
    (void)state;

    tt_write_file(path, example, strlen(example));
    assert_int_equal(dd_vdo_sim_load_workload_file(path, &w, &err), 0);
    assert_int_equal(w.n_volumes, 1);
    dd_vdo_workload_release(&w);
    assert_int_equal(dd_vdo_sim_load_workload_file(dir, &w, &err), DD_E_BADTYPE);
    unlink(path);
    assert_int_equal(dd_vdo_sim_load_workload_file(path, &w, &err), -ENOENT);
    assert_non_null(strstr(err.message, "w.json: No such file or directory"));
    free(path);
    tt_rmtree(dir);
    free(dir);
}

/* ---- the published functions, recomputed here from sim.h's text ---- */

static void test_cost_functions(void **state)
{
    struct dd_vdo_sim_point pt = {
        .index_entries = 50000000,
        .duplicate_share = 0.5,
        .zero_share = 0.05,
        .compressible_share = 0.3,
        .compression = true,
        .node_load = 0.25,
        .write_mbps = 200,
        .read_mbps = 400,
    };
    double f = 1 / 0.75, lg = log2(50000000.0);
    double cost = f * (0.35 + 0.045 * 0.95 * lg + 0.90 * 0.5 + 1.60 * 0.3 * 0.45);
    double r = (200 * 0.45 + 400) / 1500.0;
    double lat = 0.20 + 0.015 * 0.95 * lg + 0.90 * 0.25 / 0.75 + 0.50 * r / (1 - r);
    (void)state;

    assert_true(fabs(dd_vdo_sim_write_cost(&pt) - cost) < 1e-12);
    assert_true(fabs(dd_vdo_sim_read_cost(&pt) - 0.12 * f) < 1e-12);
    assert_true(fabs(dd_vdo_sim_thread_seconds(&pt, 2, 3) - (2 * cost + 3 * 0.12 * f)) < 1e-12);
    assert_true(fabs(dd_vdo_sim_backing_busy(&pt) - r) < 1e-12);
    assert_true(fabs(dd_vdo_sim_write_latency_ms(&pt) - lat) < 1e-12);
    assert_true(fabs(dd_vdo_sim_read_latency_ms(&pt) -
                     (0.10 + 0.30 * 0.25 / 0.75 + 0.50 * r / (1 - r))) < 1e-12);

    /* the shape the research found: dearer with load, index size, duplicates */
    {
        struct dd_vdo_sim_point q = pt;
        q.node_load = 0.8;
        assert_true(dd_vdo_sim_write_cost(&q) > 2.9 * dd_vdo_sim_write_cost(&pt));
        q = pt;
        q.index_entries *= 2;
        assert_true(fabs(dd_vdo_sim_write_cost(&q) - dd_vdo_sim_write_cost(&pt) -
                         f * 0.045 * 0.95) < 1e-12);
        q = pt;
        q.duplicate_share = 0.6;
        assert_true(dd_vdo_sim_write_cost(&q) > dd_vdo_sim_write_cost(&pt));
        q = pt;
        q.compression = false;
        assert_true(fabs(dd_vdo_sim_write_cost(&pt) - dd_vdo_sim_write_cost(&q) -
                         f * 1.6 * 0.3 * 0.45) < 1e-12);
        q = pt;
        q.node_load = 5; /* capped at 0.95: factor 1/0.05 */
        assert_true(fabs(dd_vdo_sim_read_cost(&q) - 0.12 / 0.05) < 1e-9);
        q.index_entries = 0; /* log2(max(E, 2)) = 1 */
        q.node_load = 0;
        q.duplicate_share = q.zero_share = 0;
        q.compression = false;
        assert_true(fabs(dd_vdo_sim_write_cost(&q) - (0.35 + 0.045)) < 1e-12);
    }
}

static void test_noise(void **state)
{
    double sum = 0, lo = 1, hi = -1;
    (void)state;
    for (uint32_t k = 0; k < 20000; k++) {
        double e = dd_vdo_sim_noise(42, 1, k, DD_VDO_SIM_NOISE_CPU);
        assert_true(e >= -1.0 && e < 1.0);
        sum += e;
        lo = fmin(lo, e);
        hi = fmax(hi, e);
    }
    assert_true(fabs(sum / 20000) < 0.03);
    assert_true(lo < -0.99 && hi > 0.99);
    assert_true(dd_vdo_sim_noise(1, 0, 0, 1) == dd_vdo_sim_noise(1, 0, 0, 1));
    assert_true(dd_vdo_sim_noise(1, 0, 0, 1) != dd_vdo_sim_noise(2, 0, 0, 1));
    assert_true(dd_vdo_sim_noise(1, 0, 0, 1) != dd_vdo_sim_noise(1, 1, 0, 1));
    assert_true(dd_vdo_sim_noise(1, 0, 0, 1) != dd_vdo_sim_noise(1, 0, 1, 1));
    assert_true(dd_vdo_sim_noise(1, 0, 0, 1) != dd_vdo_sim_noise(1, 0, 0, 2));
}

/* ---- a run ---- */

#define N_INT  5
#define N_SNAP (N_INT + 1)
#define SECS   10.0
#define SEED   20240501u
#define CPUS   8u

static const char run_json[] =
    "{\"node\": {\"cpus\": 8},"
    " \"volumes\": ["
    "  {\"name\": \"v1\", \"write_mbps\": 200, \"read_mbps\": 400, \"duplicate_share\": 0.5,"
    "   \"zero_share\": 0.05, \"compressible_share\": 0.3, \"index_entries\": 50000000,"
    "   \"stored_gib\": 300, \"cpu_load\": 0.25, \"compression\": true},"
    "  {\"name\": \"db-2\", \"write_mbps\": 80, \"read_mbps\": 20, \"duplicate_share\": 0.2,"
    "   \"zero_share\": 0.1, \"compressible_share\": 0.5, \"index_entries\": 1000000,"
    "   \"stored_gib\": 20, \"cpu_load\": 0.1}],"
    " \"phases\": [{\"at_interval\": 3, \"volumes\": {\"v1\": {\"cpu_load\": 0.5},"
    "   \"db-2\": {\"compression\": true, \"write_mbps\": 120}}}]}";

static const char *const vol_names[] = {"v1", "db-2"};

struct run_fixture {
    struct dd_vdo_workload w;
    char *dir;
    char *out;
    struct kvs stats[2][N_SNAP];
};

static struct run_fixture *run_once(const char *json, uint64_t seed)
{
    struct run_fixture *f = calloc(1, sizeof(*f));
    struct dd_parse_error err = {0};
    int r;

    assert_non_null(f);
    assert_int_equal(dd_vdo_sim_load_workload(json, strlen(json), &f->w, &err), 0);
    f->dir = tt_tmpdir();
    f->out = tt_path(f->dir, "replay");
    r = dd_vdo_sim_run(&f->w, N_INT, SECS, seed, f->out, &err);
    if (r != 0)
        fail_msg("run: %d %s", r, err.message);
    return f;
}

static void run_free(struct run_fixture *f)
{
    if (!f)
        return;
    dd_vdo_workload_release(&f->w);
    tt_rmtree(f->dir);
    free(f->out);
    free(f->dir);
    free(f);
}

static void load_stats(struct run_fixture *f)
{
    for (size_t v = 0; v < 2; v++)
        for (unsigned j = 0; j < N_SNAP; j++) {
            char *t = slurpf("%s/%s/%04u/stats", f->out, vol_names[v], j + 1);
            parse_reply(t, &f->stats[v][j]);
            free(t);
        }
}

static void test_run_layout(void **state)
{
    struct run_fixture *f = run_once(run_json, SEED);
    char *t;
    (void)state;

    t = slurpf("%s/replay.json", f->out);
    assert_string_equal(t, "{\"interval_seconds\": 10}\n");
    free(t);
    for (unsigned j = 1; j <= N_SNAP; j++) {
        static const char *const vf[] = {"stats", "status", "table", "config"};
        static const char *const pf[] = {"stat",           "uptime",       "loadavg",
                                         "diskstats",      "pressure/cpu", "pressure/io",
                                         "pressure/memory"};
        for (size_t v = 0; v < 2; v++)
            for (size_t i = 0; i < DD_ARRAY_SIZE(vf); i++)
                assert_true(exists("%s/%s/%04u/%s", f->out, vol_names[v], j, vf[i]));
        for (size_t i = 0; i < DD_ARRAY_SIZE(pf); i++)
            assert_true(exists("%s/proc/%04u/%s", f->out, j, pf[i]));
        for (unsigned inst = 0; inst < 2; inst++)
            for (unsigned th = 0; th < 13; th++) {
                assert_true(exists("%s/proc/%04u/%u/stat", f->out, j, 301 + 40 * inst + th));
                assert_true(exists("%s/proc/%04u/%u/comm", f->out, j, 301 + 40 * inst + th));
            }
    }
    assert_false(exists("%s/v1/%04u", f->out, N_SNAP + 1));
    assert_false(exists("%s/proc/%04u", f->out, N_SNAP + 1));
    assert_false(exists("%s/v1/stats", f->out));

    /* the thread names of a bare table, in pid order, and their stat lines */
    {
        static const char *const q[] = {"reqQ",   "bioQ0",  "bioQ1",     "bioQ2",   "bioQ3",
                                        "ackQ",   "cpuQ",   "callbackW", "dedupeQ", "reader",
                                        "reader", "indexW", "writer"};
        for (unsigned th = 0; th < 13; th++) {
            char want[32], *fields[64];
            size_t n;
            t = slurpf("%s/proc/0003/%u/comm", f->out, 341 + th);
            snprintf(want, sizeof(want), "vdo1:%s\n", q[th]);
            assert_string_equal(t, want);
            free(t);
            t = slurpf("%s/proc/0003/%u/stat", f->out, 341 + th);
            assert_non_null(strchr(t, '\n'));
            assert_string_equal(strchr(t, '\n'), "\n");
            n = split(t, fields, 64);
            assert_int_equal(n, 52);
            assert_int_equal(num(fields[0]), 341 + th);
            snprintf(want, sizeof(want), "(vdo1:%s)", q[th]);
            assert_string_equal(fields[1], want);
            assert_int_equal(num(fields[3]), 2);       /* ppid: kthreadd */
            assert_int_equal(num(fields[8]), 2129984); /* PF_KTHREAD | ... */
            assert_int_equal(num(fields[13]), 0);      /* utime */
            assert_true(num(fields[21]) < 100000);     /* started before the first snapshot */
            free(t);
        }
    }
    /* status, table, config of the first snapshot */
    {
        struct kvs *s = &f->stats[0][0];
        char want[256];
        load_stats(f);
        t = slurpf("%s/v1/0001/status", f->out);
        snprintf(want, sizeof(want), "0 %llu vdo /dev/vdb normal - online online %llu %llu\n",
                 kv_u(s, "logicalBlocks") * 8,
                 kv_u(s, "dataBlocksUsed") + kv_u(s, "overheadBlocksUsed"),
                 kv_u(s, "physicalBlocks"));
        assert_string_equal(t, want);
        free(t);
        t = slurpf("%s/db-2/0001/status", f->out);
        assert_non_null(strstr(t, " vdo /dev/vdc normal - online offline "));
        free(t);
        t = slurpf("%s/v1/0004/table", f->out);
        snprintf(want, sizeof(want), "0 %llu vdo V4 /dev/vdb %llu 4096 32768 16380\n",
                 kv_u(s, "logicalBlocks") * 8, kv_u(s, "physicalBlocks"));
        assert_string_equal(t, want);
        free(t);
        t = slurpf("%s/v1/0002/config", f->out);
        /* 1.25 x 50M entries fit a 0.25 GB index (64 Mi records) */
        snprintf(want, sizeof(want),
                 "{ version : 1, physicalSize : %llu, logicalSize : %llu, slabSize : 131072, "
                 "index :  { memorySize : 0.25, isSparse : 0, }, }\n",
                 kv_u(s, "physicalBlocks") * 4096, kv_u(s, "logicalBlocks") * 4096);
        assert_string_equal(t, want);
        free(t);
    }
    run_free(f);
}

static void test_run_stats_keys(void **state)
{
    struct run_fixture *f = run_once(run_json, SEED);
    char *fixture_path, *real, *real_mask;
    struct kvs ref;
    (void)state;

    fixture_path = tt_path(getenv("DD_SOURCE_DIR") ? getenv("DD_SOURCE_DIR") : ".",
                           "tests/fixtures/vdo-real-6.12/set1-dmsetup-message-vdo0-stats.txt");
    real = slurp(fixture_path);
    parse_reply(real, &ref);
    assert_int_equal(ref.n, 156);
    assert_int_equal(ref.groups, 26);
    real_mask = mask_numbers(content(real));
    load_stats(f);
    for (size_t v = 0; v < 2; v++)
        for (unsigned j = 0; j < N_SNAP; j++) {
            const struct kvs *s = &f->stats[v][j];
            char *t = slurpf("%s/%s/%04u/stats", f->out, vol_names[v], j + 1);
            char *mask = mask_numbers(t);
            assert_int_equal(s->n, ref.n);
            assert_int_equal(s->groups, ref.groups);
            for (size_t i = 0; i < ref.n; i++)
                assert_string_equal(s->key[i], ref.key[i]);
            /* byte-identical once the numbers are masked */
            assert_string_equal(mask, real_mask);
            free(mask);
            free(t);
        }
    free(real_mask);
    free(real);
    free(fixture_path);
    run_free(f);
}

static bool is_gauge(const char *key)
{
    static const char *const gauges[] = {
        "dataBlocksUsed",        "logicalBlocksUsed",          "blockMap.dirtyPages",
        "blockMap.cleanPages",   "blockMap.freePages",         "packer.compressedFragmentsInPacker",
        "currentVIOsInProgress", "hashLock.currDedupeQueries", "index.entriesIndexed",
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(gauges); i++)
        if (strcmp(key, gauges[i]) == 0)
            return true;
    return strcmp(key, "mode") == 0 || strncmp(key, "biosInProgress.", 15) == 0;
}

static void test_run_invariants(void **state)
{
    struct run_fixture *f = run_once(run_json, SEED);
    (void)state;

    load_stats(f);
    for (size_t v = 0; v < 2; v++) {
        for (unsigned j = 0; j < N_SNAP; j++) {
            const struct kvs *s = &f->stats[v][j];
            struct dd_vdo_volume_params p;
            char *st, *fields[16];
            unsigned k = j == 0 ? 0 : j - 1; /* the interval the snapshot closes */

            assert_string_equal(kv_get(s, "mode"), "normal");
            assert_int_equal(kv_u(s, "version"), 36);
            assert_int_equal(kv_u(s, "instance"), v);
            assert_true(kv_u(s, "logicalBlocksUsed") >= kv_u(s, "dataBlocksUsed"));
            assert_true(kv_u(s, "dataBlocksUsed") + kv_u(s, "overheadBlocksUsed") <=
                        kv_u(s, "physicalBlocks"));
            assert_true(kv_u(s, "logicalBlocksUsed") <= kv_u(s, "logicalBlocks"));
            assert_true(kv_u(s, "hashLock.dedupeAdviceValid") +
                            kv_u(s, "hashLock.dedupeAdviceStale") <=
                        kv_u(s, "biosIn.write"));
            assert_true(kv_u(s, "index.postsFound") <= kv_u(s, "biosIn.write"));
            assert_int_equal(kv_u(s, "blockMap.dirtyPages") + kv_u(s, "blockMap.cleanPages") +
                                 kv_u(s, "blockMap.freePages"),
                             32768);
            assert_int_equal(kv_u(s, "biosAcknowledged.write"), kv_u(s, "biosIn.write"));
            assert_int_equal(kv_u(s, "errors.noSpaceErrorCount"), 0);
            /* the status line agrees with the stats */
            st = slurpf("%s/%s/%04u/status", f->out, vol_names[v], j + 1);
            assert_int_equal(split(st, fields, 16), 10);
            assert_int_equal(num(fields[8]),
                             kv_u(s, "dataBlocksUsed") + kv_u(s, "overheadBlocksUsed"));
            assert_int_equal(num(fields[9]), kv_u(s, "physicalBlocks"));
            assert_int_equal(dd_vdo_sim_params_at(&f->w, v, k, &p), 0);
            assert_string_equal(fields[7], p.compression ? "online" : "offline");
            free(st);

            if (j == 0) {
                assert_int_equal(kv_u(s, "biosIn.write"), 0);
                assert_int_equal(kv_u(s, "index.entriesIndexed"), v == 0 ? 50000000 : 1000000);
                assert_int_equal(kv_u(s, "logicalBlocksUsed"), v == 0 ? 300u << 18 : 20u << 18);
                continue;
            }
            {
                const struct kvs *prev = &f->stats[v][j - 1];
                unsigned long long dw = kv_u(s, "biosIn.write") - kv_u(prev, "biosIn.write");
                unsigned long long dv = kv_u(s, "hashLock.dedupeAdviceValid") -
                                        kv_u(prev, "hashLock.dedupeAdviceValid");
                unsigned long long dfrag = kv_u(s, "packer.compressedFragmentsWritten") -
                                           kv_u(prev, "packer.compressedFragmentsWritten");
                double want_w = p.write_mbps * 1e6 / 4096 * SECS;

                for (size_t i = 0; i < s->n; i++)
                    if (!is_gauge(s->key[i]) && num(s->val[i]) < num(prev->val[i]))
                        fail_msg("%s: %s went back in snapshot %u", vol_names[v], s->key[i], j + 1);
                /* the requested rate, within its noise (nothing is throttled here) */
                assert_true(fabs((double)dw - want_w) <= 0.02 * want_w + 1);
                /* the interval hit rate is the duplicate share */
                assert_true(dv <= dw);
                assert_true(fabs((double)dv - (double)dw * p.duplicate_share) <= 1.0);
                /* the packer moves only while compression is on */
                if (!p.compression) {
                    assert_int_equal(dfrag, 0);
                    assert_int_equal(kv_u(s, "packer.compressedBlocksWritten"),
                                     kv_u(prev, "packer.compressedBlocksWritten"));
                } else {
                    assert_true(dfrag > 0);
                }
                /* every new block goes into the index */
                assert_int_equal(
                    kv_u(s, "index.entriesIndexed") - kv_u(prev, "index.entriesIndexed"),
                    kv_u(s, "index.postsNotFound") - kv_u(prev, "index.postsNotFound"));
            }
        }
    }
    /* db-2 turned compression on at interval 3: nothing packed before */
    assert_int_equal(kv_u(&f->stats[1][3], "packer.compressedFragmentsWritten"), 0);
    assert_true(kv_u(&f->stats[1][4], "packer.compressedFragmentsWritten") > 0);
    run_free(f);
}

/* Compares two trees file by file (names and bytes). Returns 0 when equal. */
static int tree_diff(const char *a, const char *b)
{
    DIR *d = opendir(a);
    struct dirent *de;
    int diff = 0;

    assert_non_null(d);
    while (!diff && (de = readdir(d))) {
        char *pa, *pb;
        struct stat sa, sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        pa = tt_path(a, de->d_name);
        pb = tt_path(b, de->d_name);
        assert_int_equal(lstat(pa, &sa), 0);
        if (lstat(pb, &sb) != 0) {
            diff = 1;
        } else if (S_ISDIR(sa.st_mode)) {
            diff = S_ISDIR(sb.st_mode) ? tree_diff(pa, pb) : 1;
        } else {
            char *ta = slurp(pa), *tb = slurp(pb);
            diff = strcmp(ta, tb) != 0;
            free(ta);
            free(tb);
        }
        free(pa);
        free(pb);
    }
    closedir(d);
    return diff;
}

static void test_run_determinism(void **state)
{
    struct run_fixture *a = run_once(run_json, SEED);
    struct run_fixture *b = run_once(run_json, SEED);
    struct run_fixture *c = run_once(run_json, SEED + 1);
    char *x, *y;
    (void)state;

    assert_int_equal(tree_diff(a->out, b->out), 0);
    assert_int_equal(tree_diff(b->out, a->out), 0);
    assert_int_equal(tree_diff(a->out, c->out), 1);
    /* the seed shows in the counters, thread CPU and latency alike */
    x = slurpf("%s/v1/0003/stats", a->out);
    y = slurpf("%s/v1/0003/stats", c->out);
    assert_string_not_equal(x, y);
    free(x);
    free(y);
    x = slurpf("%s/proc/0003/301/stat", a->out);
    y = slurpf("%s/proc/0003/301/stat", c->out);
    assert_string_not_equal(x, y);
    free(x);
    free(y);
    /* the first snapshot is the workload's start, with no noise in it */
    x = slurpf("%s/v1/0001/stats", a->out);
    y = slurpf("%s/v1/0001/stats", c->out);
    assert_string_equal(x, y);
    free(x);
    free(y);
    run_free(a);
    run_free(b);
    run_free(c);
}

/* Sum of the stime of instance inst's threads in snapshot j (1-based). */
static unsigned long long thread_ticks(const struct run_fixture *f, unsigned inst, unsigned j)
{
    unsigned long long sum = 0;
    for (unsigned th = 0; th < 13; th++) {
        char *t = slurpf("%s/proc/%04u/%u/stat", f->out, j, 301 + 40 * inst + th), *fields[64];
        assert_int_equal(split(t, fields, 64), 52);
        sum += num(fields[13]) + num(fields[14]);
        free(t);
    }
    return sum;
}

/* The dm device's fields in snapshot j: [3] writes completed, [7] write ms. */
static void dm_fields(const struct run_fixture *f, unsigned inst, unsigned j,
                      unsigned long long out[20])
{
    char *t = slurpf("%s/proc/%04u/diskstats", f->out, j), *lines[256], want[16];
    size_t n_lines = split_on(t, "\n", lines, 256);
    bool found = false;

    snprintf(want, sizeof(want), "dm-%u", inst);
    assert_int_equal(n_lines, 1 + 2 + 2); /* vda, vdb, vdc, dm-0, dm-1 */
    for (size_t l = 0; l < n_lines; l++) {
        char *fields[32];
        size_t n = split(lines[l], fields, 32);
        assert_int_equal(n, 20);
        if (strcmp(fields[2], want) == 0) {
            for (size_t i = 3; i < 20; i++)
                out[i] = num(fields[i]);
            found = true;
        }
    }
    free(t);
    assert_true(found);
}

static struct dd_vdo_sim_point point_at(const struct run_fixture *f, size_t v, unsigned k)
{
    struct dd_vdo_volume_params p;
    const struct kvs *prev = &f->stats[v][k], *cur = &f->stats[v][k + 1];
    struct dd_vdo_sim_point pt;

    assert_int_equal(dd_vdo_sim_params_at(&f->w, v, k, &p), 0);
    pt = (struct dd_vdo_sim_point){
        .index_entries = (double)kv_u(prev, "index.entriesIndexed"),
        .duplicate_share = p.duplicate_share,
        .zero_share = p.zero_share,
        .compressible_share = p.compressible_share,
        .compression = p.compression,
        .node_load = dd_vdo_sim_node_load(&f->w, k),
        .write_mbps =
            (double)(kv_u(cur, "biosIn.write") - kv_u(prev, "biosIn.write")) * 4096 / 1e6 / SECS,
        .read_mbps =
            (double)(kv_u(cur, "biosIn.read") - kv_u(prev, "biosIn.read")) * 4096 / 1e6 / SECS,
    };
    return pt;
}

static void test_run_cost_and_latency(void **state)
{
    struct run_fixture *f = run_once(run_json, SEED);
    (void)state;

    load_stats(f);
    for (size_t v = 0; v < 2; v++)
        for (unsigned k = 0; k < N_INT; k++) {
            const struct kvs *prev = &f->stats[v][k], *cur = &f->stats[v][k + 1];
            struct dd_vdo_sim_point pt = point_at(f, v, k);
            double gw = (double)(kv_u(cur, "biosIn.write") - kv_u(prev, "biosIn.write")) * 4096 /
                        1073741824.0;
            double gr = (double)(kv_u(cur, "biosIn.read") - kv_u(prev, "biosIn.read")) * 4096 /
                        1073741824.0;
            double t0 = dd_vdo_sim_thread_seconds(&pt, gw, gr);
            double obs = (double)(thread_ticks(f, (unsigned)v, k + 2) -
                                  thread_ticks(f, (unsigned)v, k + 1)) /
                         100.0;
            double e = dd_vdo_sim_noise(SEED, (uint32_t)v, k, DD_VDO_SIM_NOISE_CPU);
            unsigned long long a[20], b[20];
            double lat0, lat_obs;

            /* within the stated noise bound plus 13 threads' tick rounding ... */
            assert_true(t0 > 0.1);
            if (fabs(obs - t0) > DD_VDO_SIM_NOISE_CPU_BOUND * t0 + 0.13)
                fail_msg("%s interval %u: %.3f s observed, cost function %.3f", vol_names[v], k,
                         obs, t0);
            /* ... and exactly, given the noise of the seed */
            assert_true(fabs(obs - t0 * (1 + DD_VDO_SIM_NOISE_CPU_BOUND * e)) <= 0.13 + 1e-9);

            /* diskstats: average write latency of the dm device */
            dm_fields(f, (unsigned)v, k + 1, a);
            dm_fields(f, (unsigned)v, k + 2, b);
            assert_true(b[7] > a[7]);
            lat_obs = (double)(b[10] - a[10]) / (double)(b[7] - a[7]);
            lat0 = dd_vdo_sim_write_latency_ms(&pt);
            e = dd_vdo_sim_noise(SEED, (uint32_t)v, k, DD_VDO_SIM_NOISE_LAT);
            if (fabs(lat_obs - lat0) > DD_VDO_SIM_NOISE_LAT_BOUND * lat0 + 1e-3)
                fail_msg("%s interval %u: latency %.4f ms, relation %.4f", vol_names[v], k, lat_obs,
                         lat0);
            assert_true(fabs(lat_obs - lat0 * (1 + DD_VDO_SIM_NOISE_LAT_BOUND * e)) <=
                        2.0 / (double)(b[7] - a[7]));
            /* writes completed: the data writes and the empty flushes */
            assert_int_equal(b[7] - a[7], kv_u(cur, "biosIn.write") - kv_u(prev, "biosIn.write") +
                                              kv_u(cur, "biosIn.emptyFlush") -
                                              kv_u(prev, "biosIn.emptyFlush"));
            assert_int_equal(b[9] - a[9],
                             8 * (kv_u(cur, "biosIn.write") - kv_u(prev, "biosIn.write")));
        }
    /* the phase at interval 3 raised the load: v1 costs more per GiB there */
    {
        struct dd_vdo_sim_point before = point_at(f, 0, 2), after = point_at(f, 0, 3);
        assert_true(dd_vdo_sim_write_cost(&after) > 1.5 * dd_vdo_sim_write_cost(&before));
        assert_true(dd_vdo_sim_write_latency_ms(&after) > dd_vdo_sim_write_latency_ms(&before));
    }
    run_free(f);
}

struct cpu_line {
    unsigned long long busy, total;
};

static struct cpu_line cpu_of(const struct run_fixture *f, unsigned j)
{
    char *t = slurpf("%s/proc/%04u/stat", f->out, j), *fields[16];
    struct cpu_line c = {0};
    char *nl = strchr(t, '\n');

    assert_true(strncmp(t, "cpu  ", 5) == 0);
    assert_non_null(nl);
    *nl = '\0';
    assert_int_equal(split(t, fields, 16), 11);
    for (size_t i = 1; i <= 8; i++) {
        unsigned long long x = num(fields[i]);
        c.total += x;
        if (i != 4 && i != 5) /* idle, iowait */
            c.busy += x;
    }
    free(t);
    return c;
}

static void test_run_node_load(void **state)
{
    struct run_fixture *f = run_once(run_json, SEED);
    double bg[N_INT];
    (void)state;

    for (unsigned k = 0; k < N_INT; k++) {
        struct cpu_line a = cpu_of(f, k + 1), b = cpu_of(f, k + 2);
        double busy = (double)(b.busy - a.busy) / (double)(b.total - a.total);
        double vdo = 0, L = dd_vdo_sim_node_load(&f->w, k);
        for (unsigned inst = 0; inst < 2; inst++)
            vdo += (double)(thread_ticks(f, inst, k + 2) - thread_ticks(f, inst, k + 1));
        vdo /= CPUS * SECS * 100.0;
        /* the whole node's ticks over the interval */
        assert_true(llabs((long long)(b.total - a.total) - (long long)(CPUS * SECS * 100)) <=
                    8 * CPUS);
        bg[k] = busy - vdo;
        if (fabs(bg[k] - L) > DD_VDO_SIM_NOISE_LOAD_BOUND * L + 0.02)
            fail_msg("interval %u: busy %.4f - VDO %.4f vs cpu_load %.2f", k, busy, vdo, L);
    }
    /* the phase shows: 0.25 + 0.1 before, 0.5 + 0.1 after */
    assert_true(fabs(dd_vdo_sim_node_load(&f->w, 2) - 0.35) < 1e-12);
    assert_true(fabs(dd_vdo_sim_node_load(&f->w, 3) - 0.6) < 1e-12);
    assert_true(bg[3] - bg[2] > 0.2 && bg[4] - bg[1] > 0.2);

    /* uptime, PSI and loadavg move with it */
    {
        char *t = slurpf("%s/proc/%04u/uptime", f->out, N_SNAP), *fields[4];
        double avg10[2], avg60, avg300;
        unsigned long long total[2];
        assert_int_equal(split(t, fields, 4), 2);
        assert_string_equal(fields[0], "1050.00");
        free(t);
        for (unsigned i = 0; i < 2; i++) {
            t = slurpf("%s/proc/%04u/pressure/cpu", f->out, i == 0 ? 4u : 6u);
            assert_int_equal(sscanf(t, "some avg10=%lf avg60=%lf avg300=%lf total=%llu", &avg10[i],
                                    &avg60, &avg300, &total[i]),
                             4);
            assert_non_null(strstr(t, "\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"));
            free(t);
        }
        assert_true(avg10[1] > avg10[0] && total[1] > total[0]);
        t = slurpf("%s/proc/0006/pressure/memory", f->out);
        assert_string_equal(t, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        free(t);
        t = slurpf("%s/proc/0006/loadavg", f->out);
        {
            char *lf[8];
            assert_int_equal(split(t, lf, 8), 5);
            assert_non_null(strchr(lf[3], '/'));
            double load1;
            assert_int_equal(dd_parse_double(lf[0], &load1), 0);
            assert_true(load1 > 0.5);
        }
        free(t);
    }
    run_free(f);
}

/* A node that cannot keep up: one CPU, heavy writes, high load. The achieved
 * rate falls, VDO never takes more than the CPU left to it, and the cost per
 * GiB is still the function's. */
static void test_run_throttled(void **state)
{
    static const char j[] =
        "{\"node\": {\"cpus\": 1}, \"volumes\": [{\"name\": \"hot\", \"write_mbps\": 2000,"
        " \"duplicate_share\": 0.3, \"index_entries\": 100000000, \"cpu_load\": 0.7}]}";
    struct run_fixture *f = run_once(j, 7);
    (void)state;

    for (unsigned k = 0; k < N_INT; k++) {
        char *ta = slurpf("%s/hot/%04u/stats", f->out, k + 1);
        char *tb = slurpf("%s/hot/%04u/stats", f->out, k + 2);
        double dw, want = 2000 * 1e6 / 4096 * SECS, secs, t0;
        struct dd_vdo_sim_point pt;
        parse_reply(ta, &f->stats[0][k]);
        parse_reply(tb, &f->stats[0][k + 1]);
        free(ta);
        free(tb);
        dw = (double)(kv_u(&f->stats[0][k + 1], "biosIn.write") -
                      kv_u(&f->stats[0][k], "biosIn.write"));
        assert_true(dw < 0.5 * want);
        secs = (double)(thread_ticks(f, 0, k + 2) - thread_ticks(f, 0, k + 1)) / 100.0;
        assert_true(secs <= 0.9 * 1 * SECS * (1 - 0.7) + 0.13);
        assert_true(secs >= 0.8 * 0.9 * SECS * (1 - 0.7));
        pt = point_at(f, 0, k);
        t0 = dd_vdo_sim_thread_seconds(&pt, dw * 4096 / 1073741824.0, 0);
        assert_true(fabs(secs - t0) <= DD_VDO_SIM_NOISE_CPU_BOUND * t0 + 0.13);
    }
    run_free(f);
}

/* Sizes given too small: writes fail for space, logical space wraps, and
 * the invariants still hold. */
static void test_run_full_volume(void **state)
{
    static const char j[] =
        "{\"volumes\": [{\"name\": \"full\", \"write_mbps\": 300, \"stored_gib\": 1,"
        " \"logical_gib\": 2, \"physical_gib\": 4.5, \"zero_share\": 0.1}]}";
    struct dd_vdo_workload w = {0};
    struct dd_parse_error err = {0};
    char *dir = tt_tmpdir(), *out = tt_path(dir, "r");
    struct kvs prev, cur;
    (void)state;

    assert_int_equal(dd_vdo_sim_load_workload(j, strlen(j), &w, &err), 0);
    if (dd_vdo_sim_run(&w, N_INT, SECS, 3, out, &err) != 0)
        fail_msg("%s", err.message);
    for (unsigned s = 1; s <= N_SNAP; s++) {
        char *t = slurpf("%s/full/%04u/stats", out, s);
        parse_reply(t, &cur);
        free(t);
        assert_true(kv_u(&cur, "logicalBlocksUsed") >= kv_u(&cur, "dataBlocksUsed"));
        assert_true(kv_u(&cur, "dataBlocksUsed") + kv_u(&cur, "overheadBlocksUsed") <=
                    kv_u(&cur, "physicalBlocks"));
        assert_true(kv_u(&cur, "logicalBlocksUsed") <= kv_u(&cur, "logicalBlocks"));
        if (s > 1)
            for (size_t i = 0; i < cur.n; i++)
                if (!is_gauge(cur.key[i]) && num(cur.val[i]) < num(prev.val[i]))
                    fail_msg("%s went back in snapshot %u", cur.key[i], s);
        prev = cur;
    }
    assert_true(kv_u(&cur, "errors.noSpaceErrorCount") > 0);
    assert_int_equal(kv_u(&cur, "logicalBlocksUsed"), kv_u(&cur, "logicalBlocks"));
    assert_int_equal(kv_u(&cur, "physicalBlocks"), (unsigned long long)(4.5 * 262144));
    tt_rmtree(dir);
    free(out);
    free(dir);
    dd_vdo_workload_release(&w);
}

static void test_run_single_snapshot_and_refusals(void **state)
{
    struct dd_vdo_workload w = {0};
    struct dd_parse_error err = {0};
    char *dir = tt_tmpdir(), *out = tt_path(dir, "one"), *file = tt_path(dir, "file"), *t;
    (void)state;

    assert_int_equal(dd_vdo_sim_load_workload(example, strlen(example), &w, &err), 0);
    assert_int_equal(dd_vdo_sim_run(&w, 0, 5, 1, out, &err), 0);
    assert_true(exists("%s/v1/stats", out) && exists("%s/v1/config", out));
    assert_true(exists("%s/proc/stat", out) && exists("%s/proc/301/stat", out));
    assert_true(exists("%s/proc/pressure/io", out));
    assert_false(exists("%s/replay.json", out));
    assert_false(exists("%s/v1/0001", out));

    /* not again into the same directory, nor over a file */
    assert_int_equal(dd_vdo_sim_run(&w, 1, 5, 1, out, &err), -ENOTEMPTY);
    t = NULL;
    assert_true(asprintf(&t,
                         "%s: directory not empty (the simulator writes only into a new or "
                         "empty directory)",
                         out) > 0);
    assert_string_equal(err.message, t);
    free(t);
    tt_write_file(file, "x", 1);
    assert_int_equal(dd_vdo_sim_run(&w, 1, 5, 1, file, &err), -EEXIST);
    /* an existing empty directory is fine */
    tt_rmtree(out);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(dd_vdo_sim_run(&w, 2, 5, 1, out, &err), 0);
    assert_true(exists("%s/v1/0003/stats", out));

    /* bad arguments */
    assert_int_equal(dd_vdo_sim_run(&w, 1, 0, 1, out, &err), -EINVAL);
    assert_string_equal(err.message,
                        "vdo-sim: interval seconds must be between 0.01 and 86400 (got 0)");
    assert_int_equal(dd_vdo_sim_run(&w, DD_VDO_SIM_MAX_INTERVALS + 1, 1, 1, out, &err), -EINVAL);
    assert_int_equal(dd_vdo_sim_run(NULL, 1, 1, 1, out, &err), -EINVAL);
    dd_vdo_workload_release(&w);

    /* sizes that cannot hold the volume */
    {
        static const char j[] = "{\"volumes\": [{\"name\": \"small\", \"physical_gib\": 2}]}";
        assert_int_equal(dd_vdo_sim_load_workload(j, strlen(j), &w, &err), 0);
        assert_int_equal(dd_vdo_sim_run(&w, 1, 1, 1, out, &err), DD_E_RANGE);
        assert_string_equal(err.message, "volume 'small': physical_gib 2 is too small: the index "
                                         "and journal take 3.00 GiB, and one slab 0.5 GiB more");
        dd_vdo_workload_release(&w);
    }
    {
        static const char j[] =
            "{\"volumes\": [{\"name\": \"big\", \"stored_gib\": 100, \"physical_gib\": 8}]}";
        assert_int_equal(dd_vdo_sim_load_workload(j, strlen(j), &w, &err), 0);
        assert_int_equal(dd_vdo_sim_run(&w, 1, 1, 1, out, &err), DD_E_RANGE);
        assert_non_null(strstr(err.message, "volume 'big': the stored data needs "));
        dd_vdo_workload_release(&w);
    }
    {
        static const char j[] = "{\"volumes\": [{\"name\": \"ix\", \"index_entries\": 100000000,"
                                " \"index_memory_gb\": 0.25}]}";
        assert_int_equal(dd_vdo_sim_load_workload(j, strlen(j), &w, &err), 0);
        assert_int_equal(dd_vdo_sim_run(&w, 1, 1, 1, out, &err), DD_E_RANGE);
        assert_string_equal(err.message, "volume 'ix': index_entries 100000000 exceed the "
                                         "index's 67108864 records (index_memory_gb 0.25)");
        dd_vdo_workload_release(&w);
    }
    free(file);
    free(out);
    tt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload_good),
        cmocka_unit_test(test_workload_bad),
        cmocka_unit_test(test_workload_alloc_failures),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_cost_functions),
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_run_layout),
        cmocka_unit_test(test_run_stats_keys),
        cmocka_unit_test(test_run_invariants),
        cmocka_unit_test(test_run_determinism),
        cmocka_unit_test(test_run_cost_and_latency),
        cmocka_unit_test(test_run_node_load),
        cmocka_unit_test(test_run_throttled),
        cmocka_unit_test(test_run_full_volume),
        cmocka_unit_test(test_run_single_snapshot_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
