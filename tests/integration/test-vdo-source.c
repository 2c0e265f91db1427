/*
 * The VDO sources on real files: fixture replay (single snapshot, numbered
 * sequences, replay.json, proc trees, comment lines, broken parts, vanished
 * volumes), kvdo sysfs trees built from the kvdo 6.x and 8.x listings, and
 * libdevmapper where this kernel has no device-mapper (reported, not fatal).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/vdo/source.h"
#include "helpers.h"

static void mkdir_p(const char *path)
{
    char buf[8192];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

static void put(const char *dir, const char *name, const char *text)
{
    char *p = tt_path(dir, name);
    tt_write_file(p, text, strlen(text));
    free(p);
}

static void put_fixture(const char *dir, const char *name, const char *rel)
{
    size_t len;
    char *text = tt_fixture(rel, &len);
    char *p = tt_path(dir, name);
    tt_write_file(p, text, len);
    free(p);
    free(text);
}

static struct dd_vdo_source *open_or_fail(const char *spec, const char *sys_root)
{
    struct dd_vdo_source *src = NULL;
    char err[512] = "";
    if (dd_vdo_source_open(spec, sys_root, &src, err, sizeof(err)) != 0)
        fail_msg("open %s: %s", spec, err);
    return src;
}

static void test_replay_single_and_sequence(void **state)
{
    char *root = tt_tmpdir(), spec[4200], d[4200];
    struct dd_vdo_volume v;
    char **names = NULL, err[256];
    size_t n = 0;
    uint64_t w;
    (void)state;

    /* vdo0: one snapshot, straight from the real capture (with its # header) */
    snprintf(d, sizeof(d), "%s/vdo0", root);
    mkdir_p(d);
    char *raw = tt_path(d, "stats");
    {
        const char *src = getenv("DD_SOURCE_DIR");
        char from[4096];
        snprintf(from, sizeof(from),
                 "%s/tests/fixtures/vdo-real-6.12/set1-dmsetup-message-vdo0-stats.txt", src);
        FILE *f = fopen(from, "rb");
        char buf[16384];
        size_t got = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        tt_write_file(raw, buf, got); /* keeps the '#' lines: the source drops them */
    }
    free(raw);
    put_fixture(d, "status", "vdo-real-6.12/set1-dmsetup-status-vdo0.txt");
    put_fixture(d, "table", "vdo-real-6.12/set1-dmsetup-table-vdo0.txt");
    put_fixture(d, "config", "vdo-real-6.12/set1-dmsetup-message-vdo0-config.txt");
    /* v2: a sequence of two, then the last repeats */
    snprintf(d, sizeof(d), "%s/v2/0001", root);
    mkdir_p(d);
    put_fixture(d, "stats", "vdo-real-6.12/set1-dmsetup-message-lvm-stats.txt");
    snprintf(d, sizeof(d), "%s/v2/0002", root);
    mkdir_p(d);
    put_fixture(d, "stats", "vdo-real-6.12/set2-dmsetup-message-lvm-stats.txt");
    put(d, "status", "/dev/dm-1 normal - online sideways 1 2\n"); /* broken part */
    /* not volumes */
    snprintf(d, sizeof(d), "%s/proc/0001", root);
    mkdir_p(d);
    snprintf(d, sizeof(d), "%s/proc/0002", root);
    mkdir_p(d);
    put(root, "replay.json", "{\"interval_seconds\": 10}");

    snprintf(spec, sizeof(spec), "replay:%s", root);
    struct dd_vdo_source *src = open_or_fail(spec, NULL);
    assert_string_equal(dd_vdo_source_kind(src), "replay");
    assert_true(dd_vdo_source_interval(src) == 10.0);
    assert_int_equal(dd_vdo_source_list(src, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "v2");
    assert_string_equal(names[1], "vdo0");

    assert_int_equal(dd_vdo_source_read(src, "vdo0", &v), 0);
    assert_true(v.have_stats && v.have_status && v.have_table && v.have_config);
    assert_int_equal(v.status.used_blocks, 873360);
    assert_int_equal(v.table.physical_blocks, 3145728);
    dd_vdo_volume_release(&v);

    assert_int_equal(dd_vdo_source_read(src, "v2", &v), 0);
    assert_int_equal(dd_vdo_stats_u64(&v.stats, "biosIn.write", &w), 0);
    assert_int_equal(w, 98304); /* set1 */
    assert_false(v.have_status);
    dd_vdo_volume_release(&v);
    assert_non_null(strstr(dd_vdo_source_proc_root(src), "/proc/0001"));

    for (int step = 0; step < 3; step++) {
        dd_vdo_source_next(src);
        assert_int_equal(dd_vdo_source_read(src, "v2", &v), 0);
        assert_int_equal(dd_vdo_stats_u64(&v.stats, "biosIn.write", &w), 0);
        assert_int_equal(w, 131072); /* set2, and it repeats */
        assert_false(v.have_status);
        assert_non_null(strstr(v.status_error, "compression must be online or offline"));
        assert_non_null(strstr(v.status_error, "column"));
        dd_vdo_volume_release(&v);
    }
    assert_non_null(strstr(dd_vdo_source_proc_root(src), "/proc/0002"));

    /* a volume that is gone, and names that try to escape */
    assert_int_equal(dd_vdo_source_read(src, "gone", &v), -ENOENT);
    dd_vdo_volume_release(&v);
    assert_int_equal(dd_vdo_source_read(src, "../etc", &v), -EINVAL);
    dd_vdo_volume_release(&v);

    for (size_t i = 0; i < n; i++)
        dd_free(names[i]);
    dd_free(names);
    dd_vdo_source_free(src);
    tt_rmtree(root);
    free(root);
}

static void test_replay_bad_stats(void **state)
{
    char *root = tt_tmpdir(), spec[4200], d[4200];
    struct dd_vdo_volume v;
    (void)state;
    snprintf(d, sizeof(d), "%s/bad", root);
    mkdir_p(d);
    put(d, "stats", "{ version : 36, dataBlocksUsed : 1\n  oops }");
    snprintf(d, sizeof(d), "%s/empty", root);
    mkdir_p(d);
    snprintf(spec, sizeof(spec), "replay:%s", root);
    struct dd_vdo_source *src = open_or_fail(spec, NULL);
    assert_int_equal(dd_vdo_source_read(src, "bad", &v), DD_E_PARSE);
    assert_string_equal(v.stats_error,
                        "stats: line 2, column 3: unexpected 'o': expected ',' or '}' after a "
                        "value");
    dd_vdo_volume_release(&v);
    assert_true(dd_vdo_source_read(src, "empty", &v) < 0);
    assert_non_null(strstr(v.stats_error, "no "));
    dd_vdo_volume_release(&v);
    dd_vdo_source_free(src);

    /* hostile files: a FIFO where a file should be is refused, not waited on */
    snprintf(d, sizeof(d), "%s/fifo", root);
    mkdir_p(d);
    put(d, "stats", "{ version : 36, }");
    char *fifo = tt_path(d, "status");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    free(fifo);
    src = open_or_fail(spec, NULL);
    assert_int_equal(dd_vdo_source_read(src, "fifo", &v), 0);
    assert_false(v.have_status);
    assert_non_null(strstr(v.status_error, "not a regular file"));
    dd_vdo_volume_release(&v);
    /* a volume directory without data keeps its own message */
    assert_int_equal(dd_vdo_source_read(src, "empty", &v), -ENODATA);
    assert_non_null(strstr(v.stats_error, "/stats nor "));
    dd_vdo_volume_release(&v);
    dd_vdo_source_free(src);

    char err[256];
    struct dd_vdo_source *none = NULL;
    /* a replay.json that is wrong fails the open and is named */
    put(root, "replay.json", "{\"interval_seconds\": \"ten\"}");
    assert_int_equal(dd_vdo_source_open(spec, NULL, &none, err, sizeof(err)), DD_E_PARSE);
    assert_non_null(strstr(err, "replay.json: interval_seconds must be a number"));
    put(root, "replay.json", "{\"interval_seconds\": ");
    assert_int_equal(dd_vdo_source_open(spec, NULL, &none, err, sizeof(err)), DD_E_PARSE);
    assert_non_null(strstr(err, "replay.json: line 1"));
    char *rj = tt_path(root, "replay.json");
    unlink(rj);
    assert_int_equal(mkfifo(rj, 0600), 0);
    assert_true(dd_vdo_source_open(spec, NULL, &none, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "not a regular file"));
    unlink(rj);
    free(rj);
    snprintf(spec, sizeof(spec), "replay:%s/nonexistent", root);
    assert_true(dd_vdo_source_open(spec, NULL, &none, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "nonexistent"));
    assert_int_equal(dd_vdo_source_open("bogus", NULL, &none, err, sizeof(err)), DD_E_USAGE);
    assert_non_null(strstr(err, "unknown source 'bogus'"));
    tt_rmtree(root);
    free(root);
}

/* Builds a sysfs tree from a "grep -H . DIR/FILES" listing, re-rooted. */
static void build_sysfs(const char *root, const char *listing_rel)
{
    size_t len;
    char *text = tt_fixture(listing_rel, &len), *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(l, ':');
        char path[4096], dir[4096];
        if (!colon || strncmp(l, "/sys/", 5) != 0)
            continue;
        *colon = '\0';
        snprintf(path, sizeof(path), "%s/%s", root, l + 5);
        snprintf(dir, sizeof(dir), "%s", path);
        *strrchr(dir, '/') = '\0';
        mkdir_p(dir);
        char val[256];
        snprintf(val, sizeof(val), "%s\n", colon + 1);
        tt_write_file(path, val, strlen(val));
    }
    free(text);
}

static void test_sysfs_kvdo6_and_kvdo8(void **state)
{
    char *root = tt_tmpdir(), d[4200], **names = NULL, err[256];
    size_t n = 0;
    struct dd_vdo_volume v;
    uint64_t val;
    (void)state;

    build_sysfs(root, "vdo/synth-kvdo6-sysfs-statistics-listing.txt");
    build_sysfs(root, "vdo/synth-kvdo8-sysfs-statistics-listing.txt");
    snprintf(d, sizeof(d), "%s/block/dm-2/dm", root);
    mkdir_p(d);
    put(d, "name", "vg0-vpool0-vpool\n");
    snprintf(d, sizeof(d), "%s/block/dm-2", root);
    put(d, "dev", "253:2\n");

    struct dd_vdo_source *src = open_or_fail("sysfs", root);
    assert_int_equal(dd_vdo_source_list(src, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "vdo0");
    assert_string_equal(names[1], "vg0-vpool0-vpool");

    /* kvdo 6.x: 143 files, all but index_max_dedupe_queries/write_policy mapped */
    assert_int_equal(dd_vdo_source_read(src, "vdo0", &v), 0);
    assert_int_equal(v.stats.n, 143);
    assert_int_equal(dd_vdo_stats_u64(&v.stats, "biosIn.write", &val), 0);
    assert_int_equal(val, 20000000);
    assert_int_equal(dd_vdo_stats_u64(&v.stats, "allocator.slabCount", &val), 0);
    assert_int_equal(val, 47);
    assert_non_null(dd_vdo_stats_get(&v.stats, "currentVIOsInProgress"));
    assert_non_null(dd_vdo_stats_get(&v.stats, "errors.invalidAdvicePBNCount"));
    assert_non_null(dd_vdo_stats_get(&v.stats, "write_policy")); /* kept, not dropped */
    assert_string_equal(v.stats.kv[0].key, "dataBlocksUsed");    /* v36 order */
    dd_vdo_volume_release(&v);

    /* kvdo 8.x under block/dm-2, named through dm/name */
    assert_int_equal(dd_vdo_source_read(src, "vg0-vpool0-vpool", &v), 0);
    assert_int_equal(v.stats.n, 154);
    assert_int_equal(v.dm_major, 253);
    assert_int_equal(v.dm_minor, 2);
    assert_non_null(dd_vdo_stats_get(&v.stats, "maxVIOs"));
    struct dd_vdo_derived der;
    assert_int_equal(dd_vdo_derive(&v.stats, NULL, &der), 0);
    dd_vdo_volume_release(&v);

    assert_int_equal(dd_vdo_source_read(src, "nope", &v), -ENOENT);
    dd_vdo_volume_release(&v);
    for (size_t i = 0; i < n; i++)
        dd_free(names[i]);
    dd_free(names);
    dd_vdo_source_free(src);

    /* an empty root is an error that names it */
    char *empty = tt_tmpdir();
    src = open_or_fail("sysfs", empty);
    assert_int_equal(dd_vdo_source_list(src, &names, &n, err, sizeof(err)), -ENODEV);
    assert_non_null(strstr(err, empty));
    dd_vdo_source_free(src);
    tt_rmtree(empty);
    free(empty);
    tt_rmtree(root);
    free(root);
}

static void test_dm_absent_is_reported(void **state)
{
    struct dd_vdo_source *src = open_or_fail("dm", NULL);
    char **names = NULL, err[512] = "";
    size_t n = 0;
    (void)state;
    if (access("/dev/mapper/control", F_OK) == 0 && geteuid() == 0) {
        int r = dd_vdo_source_list(src, &names, &n, err, sizeof(err));
        if (r == 0) {
            print_message("device-mapper is present here: listed %zu VDO volumes\n", n);
            for (size_t i = 0; i < n; i++)
                dd_free(names[i]);
            dd_free(names);
            dd_vdo_source_free(src);
            return;
        }
    }
    assert_int_equal(dd_vdo_source_list(src, &names, &n, err, sizeof(err)), -ENODEV);
    assert_non_null(strstr(err, "device-mapper is not available"));
    print_message("%s\n", err);
    dd_vdo_source_free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_single_and_sequence),
        cmocka_unit_test(test_replay_bad_stats),
        cmocka_unit_test(test_sysfs_kvdo6_and_kvdo8),
        cmocka_unit_test(test_dm_absent_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
