/*
 * dedupctl vdostats as scripts run it: the real binary over a replay
 * directory made from the real dm-vdo 6.12 captures must print what the real
 * vdostats printed (default, -h and --si byte for byte; --verbose except the
 * read counters vdostats' own reads moved), select devices the way vdostats
 * does, and fail with vdostats' messages.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/vdo/sim.h"
#include "helpers.h"

static const char *dedupctl(void)
{
    const char *p = getenv("DEDUPCTL");
    if (!p)
        fail_msg("DEDUPCTL is not set (run through ctest)");
    return p;
}

/* DIR/vdo0 and DIR/vg0-vpool0-vpool from one capture set. */
static char *make_replay(const char *set)
{
    char *root = tt_tmpdir();
    static const char *const vols[][2] = {{"vdo0", "vdo0"}, {"vg0-vpool0-vpool", "lvm"}};
    for (size_t v = 0; v < 2; v++) {
        char dir[4200], rel[200];
        size_t len;
        snprintf(dir, sizeof(dir), "%s/%s", root, vols[v][0]);
        mkdir(dir, 0755);
        snprintf(rel, sizeof(rel), "vdo-real-6.12/%s-dmsetup-message-%s-stats.txt", set,
                 vols[v][1]);
        char *text = tt_fixture(rel, &len);
        char *p = tt_path(dir, "stats");
        tt_write_file(p, text, len);
        free(p);
        free(text);
    }
    return root;
}

static char *run_ok(const char *spec, const char *opt, const char *dev)
{
    char *out = NULL, *err = NULL;
    const char *argv[9];
    int a = 0;
    argv[a++] = dedupctl();
    argv[a++] = "vdostats";
    argv[a++] = "--source";
    argv[a++] = spec;
    if (opt)
        argv[a++] = opt;
    if (dev)
        argv[a++] = dev;
    argv[a] = NULL;
    int rc = tt_run(argv, &out, &err);
    if (rc != 0)
        fail_msg("dedupctl vdostats %s: exit %d: %s", opt ? opt : "", rc, err);
    free(err);
    return out;
}

static void test_forms_match_real_vdostats(void **state)
{
    static const char *const sets[] = {"set1", "set2"};
    static const struct {
        const char *opt, *suffix;
    } forms[] = {{NULL, ""}, {"--human-readable", "-human-readable"}, {"--si", "-si"}};
    (void)state;
    for (size_t s = 0; s < DD_ARRAY_SIZE(sets); s++) {
        char *root = make_replay(sets[s]), spec[4200];
        snprintf(spec, sizeof(spec), "replay:%s", root);
        for (size_t f = 0; f < DD_ARRAY_SIZE(forms); f++) {
            char rel[200];
            snprintf(rel, sizeof(rel), "vdo-real-6.12/%s-vdostats%s.txt", sets[s], forms[f].suffix);
            char *want = tt_fixture(rel, NULL);
            char *got = run_ok(spec, forms[f].opt, NULL);
            if (strcmp(want, got) != 0)
                fail_msg("%s:\n--- real\n%s--- dedupctl\n%s", rel, want, got);
            free(want);
            free(got);
        }
        /* --verbose for one device, named as the real capture named it */
        char rel[200];
        snprintf(rel, sizeof(rel), "vdo-real-6.12/%s-vdostats-verbose-vdo0.txt", sets[s]);
        char *want = tt_fixture(rel, NULL);
        char *got = run_ok(spec, "--verbose", "vdo0");
        size_t differ = 0, lines = 0;
        char *sw = NULL, *sg = NULL;
        for (char *lw = strtok_r(want, "\n", &sw), *lg = strtok_r(got, "\n", &sg); lw || lg;
             lw = strtok_r(NULL, "\n", &sw), lg = strtok_r(NULL, "\n", &sg), lines++) {
            assert_non_null(lw);
            assert_non_null(lg);
            if (strcmp(lw, lg) == 0)
                continue;
            differ++;
            /* only counters moved by vdostats' own reads may differ */
            assert_true(strstr(lw, " read ") || strstr(lw, " read count") ||
                        strstr(lw, "found in cache"));
        }
        assert_int_equal(lines, 166);
        assert_true(differ <= 6);
        free(want);
        free(got);
        tt_rmtree(root);
        free(root);
    }
}

static void test_device_selection_and_errors(void **state)
{
    char *root = make_replay("set1"), spec[4200];
    char *out = NULL, *err = NULL;
    (void)state;
    snprintf(spec, sizeof(spec), "replay:%s", root);

    /* one device: the name column shrinks to max(6, its length), as vdostats does */
    out = run_ok(spec, NULL, "vdo0");
    assert_string_equal(out, "Device 1k-blocks      Used Available Use% Space saving%\n"
                             "vdo0    12582912   3493440   9089472  28%           50%\n");
    free(out);
    /* a /dev/mapper path selects by its basename */
    out = run_ok(spec, NULL, "/dev/mapper/vg0-vpool0-vpool");
    assert_non_null(strstr(out, "\nvg0-vpool0-vpool  10485760"));
    free(out);

    const char *bad[] = {dedupctl(), "vdostats", "--source", spec, "nosuch", NULL};
    assert_int_equal(tt_run(bad, &out, &err), 1);
    assert_string_equal(err, "dedupctl: vdostats: 'nosuch': Not a valid running VDO device\n");
    free(out);
    free(err);

    char *empty = tt_tmpdir(), espec[4200];
    snprintf(espec, sizeof(espec), "replay:%s", empty);
    const char *none[] = {dedupctl(), "vdostats", "--source", espec, NULL};
    assert_int_equal(tt_run(none, &out, &err), 1);
    assert_string_equal(err, "dedupctl: vdostats: Could not find any VDO devices\n");
    free(out);
    free(err);
    tt_rmtree(empty);
    free(empty);

    const char *badsrc[] = {dedupctl(), "vdostats", "--source", "nfs", NULL};
    assert_int_equal(tt_run(badsrc, &out, &err), 2);
    assert_non_null(strstr(err, "unknown source 'nfs'"));
    free(out);
    free(err);
    tt_rmtree(root);
    free(root);
}

static void test_json(void **state)
{
    char *root = make_replay("set2"), spec[4200];
    json_error_t jerr;
    (void)state;
    snprintf(spec, sizeof(spec), "replay:%s", root);
    char *out = run_ok(spec, "--json", NULL);
    json_t *doc = json_loads(out, 0, &jerr);
    if (!doc)
        fail_msg("bad JSON: %s\n%s", jerr.text, out);
    assert_int_equal(json_array_size(doc), 2);
    json_t *v = json_array_get(doc, 1);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "vg0-vpool0-vpool");
    json_t *stats = json_object_get(v, "stats");
    assert_int_equal(json_object_size(stats), 156); /* every key */
    assert_int_equal(json_integer_value(json_object_get(stats, "biosIn.write")), 131072);
    json_t *d = json_object_get(v, "derived");
    assert_int_equal(json_integer_value(json_object_get(d, "saving_percent")), 24);
    assert_true(json_is_true(json_object_get(d, "normal")));
    assert_true(json_is_null(json_object_get(v, "missing_keys")));
    json_decref(doc);
    free(out);
    tt_rmtree(root);
    free(root);
}

/* Sums utime+stime per instance from a capture of /proc/<pid>/stat lines
 * (independently of the code under test: by "(vdoN:" and a field count), and
 * writes each line to root/<pid>/stat. */
static void proc_tree(const char *rel, const char *root, double ticks[2])
{
    char *text = tt_fixture(rel, NULL), *save = NULL;
    ticks[0] = ticks[1] = 0;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char dir[4200], *sp = strchr(l, ' ');
        *sp = '\0';
        snprintf(dir, sizeof(dir), "%s/%s", root, l);
        mkdir(dir, 0755);
        *sp = ' ';
        char *p = tt_path(dir, "stat");
        tt_write_file(p, l, strlen(l));
        free(p);
        int inst = strstr(l, "(vdo0:") ? 0 : 1;
        char *after = strrchr(l, ')') + 2; /* field 3 onwards */
        unsigned long long f[20] = {0};
        int n = 0;
        for (char *tok = after; n < 13 && tok; n++) {
            f[n] = strtoull(tok, NULL, 10);
            tok = strchr(tok, ' ');
            if (tok)
                tok++;
        }
        ticks[inst] += (double)(f[11] + f[12]); /* fields 14 and 15 */
    }
    free(text);
}

static void test_interval_rates_and_thread_cpu(void **state)
{
    char *root = tt_tmpdir();
    static const char *const vols[][2] = {{"vdo0", "vdo0"}, {"vg0-vpool0-vpool", "lvm"}};
    double t1[2], t2[2];
    json_error_t jerr;
    (void)state;
    for (size_t v = 0; v < 2; v++) {
        for (int s = 1; s <= 2; s++) {
            char dir[4200], rel[200];
            size_t len;
            snprintf(dir, sizeof(dir), "%s/%s", root, vols[v][0]);
            mkdir(dir, 0755);
            snprintf(dir, sizeof(dir), "%s/%s/%04d", root, vols[v][0], s);
            mkdir(dir, 0755);
            snprintf(rel, sizeof(rel), "vdo-real-6.12/set%d-dmsetup-message-%s-stats.txt", s,
                     vols[v][1]);
            char *text = tt_fixture(rel, &len), *p = tt_path(dir, "stats");
            tt_write_file(p, text, len);
            free(p);
            free(text);
        }
    }
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/proc", root);
    mkdir(dir, 0755);
    snprintf(dir, sizeof(dir), "%s/proc/0001", root);
    mkdir(dir, 0755);
    proc_tree("vdo-real-6.12/set1-proc-pid-stat-vdo.txt", dir, t1);
    snprintf(dir, sizeof(dir), "%s/proc/0002", root);
    mkdir(dir, 0755);
    proc_tree("vdo-real-6.12/set2-proc-pid-stat-vdo.txt", dir, t2);
    char *p = tt_path(root, "replay.json");
    tt_write_file(p, "{\"interval_seconds\": 40}", 24);
    free(p);

    char spec[4200];
    snprintf(spec, sizeof(spec), "replay:%s", root);
    char *out = run_ok(spec, "--json", "--interval=1");
    json_t *doc = json_loads(out, 0, &jerr);
    if (!doc)
        fail_msg("bad JSON: %s\n%s", jerr.text, out);
    for (size_t v = 0; v < 2; v++) {
        json_t *iv = json_object_get(json_array_get(doc, v), "interval");
        assert_true(json_is_true(json_object_get(iv, "valid")));
        assert_true(json_real_value(json_object_get(iv, "seconds")) == 40.0);
        assert_int_equal(json_integer_value(json_object_get(iv, "instance")), v);
        double cpu = json_real_value(json_object_get(iv, "vdo_cpu_seconds"));
        double want = (t2[v] - t1[v]) / 100.0; /* CLK_TCK 100, as captured */
        if (fabs(cpu - want) > 1e-8 * want)
            fail_msg("%s: cpu %.3f s, want %.3f s", vols[v][0], cpu, want);
        json_t *byq = json_object_get(iv, "vdo_cpu_seconds_by_queue");
        assert_true(json_object_size(byq) >= 8);
        double sum = 0;
        const char *k;
        json_t *val;
        json_object_foreach(byq, k, val) sum += json_real_value(val);
        assert_true(fabs(sum - cpu) < 1e-8 * (cpu + 1));
    }
    /* vdo0: set1 -> set2 wrote 278528 - 163840 blocks in 40 s */
    json_t *iv0 = json_object_get(json_array_get(doc, 0), "interval");
    double gib = (278528.0 - 163840.0) * 4096.0 / 1073741824.0;
    assert_true(fabs(json_real_value(json_object_get(iv0, "bios_in_write_per_s")) -
                     (278528.0 - 163840.0) / 40.0) < 1e-9);
    /* JSON carries 10 significant digits */
    double per_gib = (t2[0] - t1[0]) / 100.0 / gib;
    assert_true(fabs(json_real_value(json_object_get(iv0, "vdo_cpu_seconds_per_gib_written")) -
                     per_gib) < 1e-8 * per_gib);
    print_message("vdo0: %.2f VDO CPU s over the interval, %.2f s per GiB written\n",
                  (t2[0] - t1[0]) / 100.0, (t2[0] - t1[0]) / 100.0 / gib);
    json_decref(doc);
    free(out);
    tt_rmtree(root);
    free(root);
}

/* vdo-sim writes a replay; vdostats reads it back; the VDO thread CPU per
 * GiB written that comes out recovers the simulator's stated cost function
 * (within its +-5 % noise and the 10 ms tick of 13 threads). */
static void test_sim_roundtrip(void **state)
{
    static const char workload[] =
        "{\"volumes\": [{\"name\": \"ds\", \"write_mbps\": 150, \"read_mbps\": 0, "
        "\"duplicate_share\": 0.6, \"zero_share\": 0.05, \"compressible_share\": 0.3, "
        "\"index_entries\": 2000000, \"stored_gib\": 40, \"cpu_load\": 0.3, "
        "\"compression\": true}]}";
    char *root = tt_tmpdir(), *wl = tt_path(root, "w.json"), *out = tt_path(root, "replay");
    char spec[4200], *text = NULL, *err = NULL;
    json_error_t jerr;
    (void)state;
    tt_write_file(wl, workload, strlen(workload));
    const char *sim[] = {
        dedupctl(), "vdo-sim", "--workload", wl,      "--intervals", "2", "--interval-seconds",
        "60",       "--seed",  "7",          "--out", out,           NULL};
    if (tt_run(sim, NULL, &err) != 0)
        fail_msg("vdo-sim: %s", err);
    free(err);
    snprintf(spec, sizeof(spec), "replay:%s", out);
    text = run_ok(spec, "--json", "--interval=1");
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("bad JSON: %s", jerr.text);
    json_t *v = json_array_get(doc, 0);
    json_t *iv = json_object_get(v, "interval");
    assert_true(json_is_true(json_object_get(iv, "valid")));
    assert_true(json_real_value(json_object_get(iv, "seconds")) == 60.0);
    double got = json_real_value(json_object_get(iv, "vdo_cpu_seconds_per_gib_written"));

    /* E is entriesIndexed at the interval's start: the first snapshot */
    char *s1 = tt_path(out, "ds/0001/stats");
    FILE *f = fopen(s1, "r");
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *e = strstr(buf, "entriesIndexed : ");
    assert_non_null(e);
    struct dd_vdo_sim_point pt = {
        .index_entries = strtod(e + 17, NULL),
        .duplicate_share = 0.6,
        .zero_share = 0.05,
        .compressible_share = 0.3,
        .compression = true,
        .node_load = 0.3,
    };
    double want = dd_vdo_sim_write_cost(&pt);
    print_message("simulated %.3f CPU s/GiB written, model %.3f (E = %.0f)\n", got, want,
                  pt.index_entries);
    assert_true(fabs(got - want) <= 0.07 * want);
    /* and the dedup hit rate follows the duplicate share */
    double hit = json_real_value(json_object_get(iv, "dedup_hit_rate"));
    assert_true(hit > 0.5 && hit < 0.7);
    json_decref(doc);
    free(text);
    free(s1);
    free(wl);
    free(out);
    tt_rmtree(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms_match_real_vdostats),
        cmocka_unit_test(test_device_selection_and_errors),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_interval_rates_and_thread_cpu),
        cmocka_unit_test(test_sim_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
