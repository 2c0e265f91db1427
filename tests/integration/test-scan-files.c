/*
 * The estimator end to end on real files with known structure: every count
 * below follows from how the files were built, not from running the code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/scan/scan.h"
#include "helpers.h"

#define B DD_BLOCK_SIZE

struct fx {
    char *dir;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    fx->dir = tt_tmpdir();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    tt_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static uint8_t *random_bytes(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    tt_fill_random(p, len, &seed);
    return p;
}

static char *make_file(struct fx *fx, const char *name, const void *data, size_t len)
{
    char *p = tt_path(fx->dir, name);
    tt_write_file(p, data, len);
    return p;
}

/* Runs a scan over paths with options; returns it for inspection. */
static struct dd_scan *scan_paths(const struct dd_scan_options *opts, const char *const *paths,
                                  size_t n, int expect_run)
{
    struct dd_scan *scan = NULL;
    assert_int_equal(dd_scan_new(opts, &scan), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(dd_scan_add_path(scan, paths[i]), 0);
    assert_int_equal(dd_scan_run(scan), expect_run);
    return scan;
}

static struct dd_scan_options exact_opts(void)
{
    struct dd_scan_options o;
    dd_scan_options_init(&o);
    o.mode = DD_SCAN_MODE_EXACT;
    return o;
}

static void test_zeros_and_unique(void **state)
{
    struct fx *fx = *state;
    size_t zlen = 256 * B + 100; /* tail of 100 zero bytes pads to a zero block */
    uint8_t *zeros = calloc(1, zlen);
    uint8_t *rnd = random_bytes(1024 * B, 1);
    char *zp = make_file(fx, "zeros", zeros, zlen);
    char *rp = make_file(fx, "random", rnd, 1024 * B);
    struct dd_scan_options o = exact_opts();
    const char *paths[] = {zp, rp};
    struct dd_scan *scan = scan_paths(&o, paths, 2, 0);
    const struct dd_scan_result *r = dd_scan_get_result(scan);

    assert_int_equal(r->logical_bytes, zlen + 1024 * B);
    assert_int_equal(r->blocks_total, 257 + 1024);
    assert_int_equal(r->zero_blocks, 257);
    assert_int_equal(r->nonzero_blocks, 1024);
    assert_true(r->distinct_blocks == 1024.0);
    assert_true(fabs(r->dedup_ratio - 1.0) < 1e-12);
    assert_true(fabs(r->dedup_savings_percent - 100.0 * 257.0 / 1281.0) < 1e-9);
    dd_scan_free(scan);
    free(zeros);
    free(rnd);
    free(zp);
    free(rp);
}

static void test_repeated_n_times(void **state)
{
    struct fx *fx = *state;
    const size_t n = 7, pat = 16 * B;
    uint8_t *pattern = random_bytes(pat, 2);
    uint8_t *buf = malloc(n * pat);
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * pat, pattern, pat);
    char *p = make_file(fx, "repeated", buf, n * pat);
    struct dd_scan_options o = exact_opts();
    const char *paths[] = {p};
    struct dd_scan *scan = scan_paths(&o, paths, 1, 0);
    const struct dd_scan_result *r = dd_scan_get_result(scan);

    assert_int_equal(r->nonzero_blocks, 16 * n);
    assert_true(r->distinct_blocks == 16.0);
    assert_true(fabs(r->dedup_ratio - (double)n) < 1e-12);
    dd_scan_free(scan);
    free(pattern);
    free(buf);
    free(p);
}

static void test_shifted_copy_does_not_dedup(void **state)
{
    struct fx *fx = *state;
    uint8_t *a = random_bytes(64 * B, 3);
    uint8_t *shifted = malloc(64 * B + 1);
    shifted[0] = 0x5a;
    memcpy(shifted + 1, a, 64 * B);
    char *pa = make_file(fx, "a", a, 64 * B);
    char *pb = make_file(fx, "a-shifted", shifted, 64 * B + 1);
    char *pc = make_file(fx, "a-copy", a, 64 * B); /* an aligned copy in another file does */
    struct dd_scan_options o = exact_opts();
    const char *paths[] = {pa, pb, pc};
    struct dd_scan *scan = scan_paths(&o, paths, 3, 0);
    const struct dd_scan_result *r = dd_scan_get_result(scan);

    assert_int_equal(r->blocks_total, 64 + 65 + 64);
    assert_true(r->distinct_blocks == 64.0 + 65.0);
    dd_scan_free(scan);
    free(a);
    free(shifted);
    free(pa);
    free(pb);
    free(pc);
}

static void test_tail_block_is_zero_padded(void **state)
{
    struct fx *fx = *state;
    /* X = 100 random bytes then zeros (one full block on disk);
     * short = the same 100 bytes alone: padded, it IS block X */
    uint8_t *x = calloc(1, B);
    uint8_t *head = random_bytes(100, 4);
    memcpy(x, head, 100);
    char *px = make_file(fx, "full", x, B);
    char *ps = make_file(fx, "short", head, 100);
    /* 3 blocks + a 1000-byte tail, and a copy of it */
    uint8_t *t = random_bytes(3 * B + 1000, 5);
    char *pt = make_file(fx, "tail", t, 3 * B + 1000);
    char *pt2 = make_file(fx, "tail-copy", t, 3 * B + 1000);
    struct dd_scan_options o = exact_opts();
    const char *paths[] = {px, ps, pt, pt2};
    struct dd_scan *scan = scan_paths(&o, paths, 4, 0);
    const struct dd_scan_result *r = dd_scan_get_result(scan);

    assert_int_equal(r->logical_bytes, B + 100 + 2 * (3 * B + 1000));
    assert_int_equal(r->blocks_total, 1 + 1 + 4 + 4);
    assert_true(r->distinct_blocks == 1.0 + 4.0);
    dd_scan_free(scan);

    /* O_DIRECT reads (or the page-cache fallback where refused) count the same */
    o.direct = true;
    scan = scan_paths(&o, paths, 4, 0);
    r = dd_scan_get_result(scan);
    assert_int_equal(r->logical_bytes, B + 100 + 2 * (3 * B + 1000));
    assert_int_equal(r->blocks_total, 10);
    assert_true(r->distinct_blocks == 5.0);
    dd_scan_free(scan);
    free(x);
    free(head);
    free(t);
    free(px);
    free(ps);
    free(pt);
    free(pt2);
}

static void test_window_drops_old_duplicates(void **state)
{
    struct fx *fx = *state;
    /* A (16 blocks), 100 unique blocks, A again */
    uint8_t *a = random_bytes(16 * B, 6), *u = random_bytes(100 * B, 7);
    uint8_t *buf = malloc(132 * B);
    memcpy(buf, a, 16 * B);
    memcpy(buf + 16 * B, u, 100 * B);
    memcpy(buf + 116 * B, a, 16 * B);
    char *p = make_file(fx, "window", buf, 132 * B);
    const char *paths[] = {p};
    double got[3];
    const uint64_t windows[3] = {0, 200, 50};

    for (int i = 0; i < 3; i++) {
        struct dd_scan_options o = exact_opts();
        o.window_blocks = windows[i];
        o.threads = (unsigned)(1 + i); /* and the result must not depend on threads */
        struct dd_scan *scan = scan_paths(&o, paths, 1, 0);
        got[i] = dd_scan_get_result(scan)->distinct_blocks;
        assert_int_equal(dd_scan_get_result(scan)->window_blocks, windows[i]);
        dd_scan_free(scan);
    }
    assert_true(got[0] == 116.0); /* unbounded: the second A dedups */
    assert_true(got[1] == 116.0); /* A's first copy 116 posts back: inside 200 */
    assert_true(got[2] == 132.0); /* outside 50: written again */
    free(a);
    free(u);
    free(buf);
    free(p);
}

static void test_compression_text_vs_random(void **state)
{
    struct fx *fx = *state;
    static const char *const words[] = {"model",  "dataset", "tensor", "batch",  "epoch",
                                        "weight", "layer",   "the",    "of",     "storage",
                                        "volume", "block",   "index",  "dedupe", "latency"};
    size_t len = 512 * B, pos = 0;
    char *text = malloc(len);
    uint64_t seed = 8;
    while (pos < len) {
        const char *w = words[tt_rand64(&seed) % DD_ARRAY_SIZE(words)];
        char num[24];
        int nl = snprintf(num, sizeof(num), " %u\n", (unsigned)(tt_rand64(&seed) % 100));
        for (size_t i = 0; w[i] && pos < len; i++)
            text[pos++] = w[i];
        for (int i = 0; i < nl && pos < len; i++)
            text[pos++] = num[i];
    }
    uint8_t *rnd = random_bytes(512 * B, 9);
    char *pt = make_file(fx, "text", text, len);
    char *pr = make_file(fx, "random", rnd, 512 * B);
    struct dd_scan_options o = exact_opts();
    o.compress_sample = 1;

    const char *tpaths[] = {pt};
    struct dd_scan *scan = scan_paths(&o, tpaths, 1, 0);
    const struct dd_scan_result *r = dd_scan_get_result(scan);
    assert_true(r->compression_estimated);
    assert_int_equal(r->compress_samples, 512);
    assert_true(r->compressible_fraction > 0.9);
    assert_true(r->compression_savings_percent > 10.0);
    assert_true(r->estimated_physical_blocks < r->distinct_blocks);
    dd_scan_free(scan);

    const char *rpaths[] = {pr};
    scan = scan_paths(&o, rpaths, 1, 0);
    r = dd_scan_get_result(scan);
    assert_true(r->compression_estimated);
    assert_true(r->compressible_fraction == 0.0);
    assert_true(r->compression_savings_percent == 0.0);
    assert_true(r->estimated_physical_blocks == r->distinct_blocks);
    dd_scan_free(scan);

    o.no_compress = true;
    scan = scan_paths(&o, tpaths, 1, 0);
    assert_false(dd_scan_get_result(scan)->compression_estimated);
    dd_scan_free(scan);
    free(text);
    free(rnd);
    free(pt);
    free(pr);
}

static void test_directory_walk(void **state)
{
    struct fx *fx = *state;
    char *d = tt_path(fx->dir, "tree"), *sub = tt_path(d, "sub"), *fifo = tt_path(d, "fifo");
    char *link = tt_path(d, "link"), *outside = tt_path(fx->dir, "outside");
    uint8_t *a = random_bytes(8 * B, 10), *o2 = random_bytes(32 * B, 11);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    char *f1 = tt_path(d, "f1"), *f2 = tt_path(sub, "f2");
    tt_write_file(f1, a, 8 * B);
    tt_write_file(f2, a, 8 * B); /* duplicate of f1, in a subdirectory */
    tt_write_file(outside, o2, 32 * B);
    assert_int_equal(symlink(outside, link), 0); /* must not be followed */
    assert_int_equal(mkfifo(fifo, 0600), 0);     /* must be skipped, not opened */

    struct dd_scan_options o = exact_opts();
    const char *paths[] = {d};
    struct dd_scan *scan = scan_paths(&o, paths, 1, 0);
    const struct dd_scan_result *r = dd_scan_get_result(scan);
    const struct dd_scan_input *in = dd_scan_get_input(scan, 0);
    assert_int_equal(in->type, DD_INPUT_DIRECTORY);
    assert_int_equal(in->files, 2);
    assert_int_equal(in->skipped, 2);
    assert_int_equal(in->bytes_read, 16 * B);
    assert_int_equal(r->blocks_total, 16);
    assert_true(r->distinct_blocks == 8.0);
    dd_scan_free(scan);
    free(a);
    free(o2);
    free(d);
    free(sub);
    free(fifo);
    free(link);
    free(outside);
    free(f1);
    free(f2);
}

static void test_bad_paths(void **state)
{
    struct fx *fx = *state;
    char *missing = tt_path(fx->dir, "no-such-file"), *fifo = tt_path(fx->dir, "a-fifo");
    uint8_t *a = random_bytes(4 * B, 12);
    char *good = make_file(fx, "good", a, 4 * B);
    struct dd_scan *scan = NULL;
    struct dd_scan_options o = exact_opts();
    assert_int_equal(mkfifo(fifo, 0600), 0);

    o.keep_going = true;
    assert_int_equal(dd_scan_new(&o, &scan), 0);
    assert_int_equal(dd_scan_add_path(scan, missing), -ENOENT);
    assert_int_equal(dd_scan_add_path(scan, fifo), DD_E_BADTYPE);
    assert_int_equal(dd_scan_add_path(scan, good), 0);
    assert_int_equal(dd_scan_run(scan), 0);
    const struct dd_scan_input *in0 = dd_scan_get_input(scan, 0);
    const struct dd_scan_input *in1 = dd_scan_get_input(scan, 1);
    assert_int_equal(in0->n_errors, 1);
    assert_string_equal(in0->errors[0].path, missing);
    assert_string_equal(in0->errors[0].message, strerror(ENOENT));
    assert_int_equal(in1->type, DD_INPUT_UNKNOWN);
    assert_non_null(strstr(in1->errors[0].message, "not a regular file"));
    assert_int_equal(dd_scan_get_result(scan)->inputs_failed, 2);
    assert_int_equal(dd_scan_get_result(scan)->blocks_total, 4); /* the good one counted */

    json_t *doc = dd_scan_to_json(scan);
    assert_non_null(doc);
    json_t *inputs = json_object_get(doc, "inputs");
    assert_int_equal(json_array_size(inputs), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(inputs, 0), "error")),
                        strerror(ENOENT));
    assert_true(json_is_null(json_object_get(json_array_get(inputs, 2), "error")));
    json_decref(doc);
    dd_scan_free(scan);
    free(missing);
    free(fifo);
    free(good);
    free(a);
}

static void test_file_changed_between_listing_and_reading(void **state)
{
    struct fx *fx = *state;
    uint8_t *a = random_bytes(8 * B, 13);
    char *p = make_file(fx, "changing", a, 8 * B);
    char *q = make_file(fx, "other", a, 8 * B);
    struct dd_scan *scan = NULL;
    struct dd_scan_options o = exact_opts();

    /* shrinks after listing: the run fails and names the file */
    assert_int_equal(dd_scan_new(&o, &scan), 0);
    assert_int_equal(dd_scan_add_path(scan, p), 0);
    assert_int_equal(truncate(p, 3 * B), 0);
    assert_int_equal(dd_scan_run(scan), DD_E_CHANGED);
    const struct dd_scan_input *in = dd_scan_get_input(scan, 0);
    assert_int_equal(in->n_errors, 1);
    assert_string_equal(in->errors[0].path, p);
    assert_non_null(strstr(in->errors[0].message, "changed"));
    dd_scan_free(scan);

    /* grows after listing, with --keep-going: reported, the other input counted */
    tt_write_file(p, a, 8 * B);
    o.keep_going = true;
    assert_int_equal(dd_scan_new(&o, &scan), 0);
    assert_int_equal(dd_scan_add_path(scan, p), 0);
    assert_int_equal(dd_scan_add_path(scan, q), 0);
    tt_append_file(p, a, B);
    assert_int_equal(dd_scan_run(scan), 0);
    assert_int_equal(dd_scan_get_input(scan, 0)->n_errors, 1);
    assert_int_equal(dd_scan_get_input(scan, 1)->n_errors, 0);
    assert_int_equal(dd_scan_get_input(scan, 1)->bytes_read, 8 * B);
    assert_int_equal(dd_scan_get_result(scan)->inputs_failed, 1);
    dd_scan_free(scan);
    free(a);
    free(p);
    free(q);
}

/*
 * Issue 9: files of kernel pseudo file systems are generated when read and
 * stat() gives no real size (0 on procfs, 4096 on sysfs): `estimate
 * /proc/...` counted 0 bytes and succeeded, a sysfs attribute failed as a
 * file that "shrank". Both are refused up front, naming the path and the file
 * system, as is a directory there.
 */
static void test_pseudo_fs_refused(void **state)
{
    static const struct {
        const char *path, *fs;
    } cases[] = {
        {"/proc/cpuinfo", "proc"},
        {"/proc/self/status", "proc"},
        {"/proc/sys/kernel", "proc"},
        {"/sys/kernel/mm/transparent_hugepage/enabled", "sysfs"},
        {"/sys/kernel/uevent_seqnum", "sysfs"},
        {"/sys/kernel", "sysfs"},
    };
    size_t ran = 0;
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        struct dd_scan_options o = exact_opts();
        struct dd_scan *scan = NULL;
        const struct dd_scan_input *in;
        char want[64];
        if (access(cases[i].path, R_OK) != 0)
            continue;
        ran++;
        assert_int_equal(dd_scan_new(&o, &scan), 0);
        assert_int_equal(dd_scan_add_path(scan, cases[i].path), DD_E_BADTYPE);
        in = dd_scan_get_input(scan, 0);
        assert_int_equal(in->n_errors, 1);
        assert_string_equal(in->errors[0].path, cases[i].path);
        snprintf(want, sizeof(want), "on %s, a kernel pseudo file system", cases[i].fs);
        assert_non_null(strstr(in->errors[0].message, want));
        assert_int_equal(in->files, 0);
        dd_scan_free(scan);
    }
    if (ran == 0)
        tt_skip("neither /proc nor /sys readable here; case not run");
}

static void test_permission_denied(void **state)
{
    struct fx *fx = *state;
    uint8_t *a = random_bytes(B, 14);
    char *p = make_file(fx, "secret", a, B);
    pid_t pid;
    int status;

    assert_int_equal(chmod(p, 0000), 0);
    assert_int_equal(chmod(fx->dir, 0755), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* as root, drop to nobody so the permission check applies */
        struct dd_scan *scan = NULL;
        struct dd_scan_options o = exact_opts();
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("nobody");
            uid_t uid = pw ? pw->pw_uid : 65534;
            gid_t gid = pw ? pw->pw_gid : 65534;
            if (setgid(gid) != 0 || setuid(uid) != 0)
                _exit(10);
        }
        if (dd_scan_new(&o, &scan) < 0 || dd_scan_add_path(scan, p) < 0)
            _exit(11);
        int r = dd_scan_run(scan);
        const struct dd_scan_input *in = dd_scan_get_input(scan, 0);
        int ok = r == -EACCES && in->n_errors == 1 &&
                 strcmp(in->errors[0].message, strerror(EACCES)) == 0 &&
                 strcmp(in->errors[0].path, p) == 0;
        dd_scan_free(scan);
        _exit(ok ? 0 : 12);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(a);
    free(p);
}

static void test_blkid_signatures(void **state)
{
    struct fx *fx = *state;
    uint8_t *img = calloc(1, 1 << 20);
    memcpy(img, "dmvdo001", 8); /* the VDO geometry block's magic */
    char *p = make_file(fx, "vdo.img", img, 1 << 20);
    struct dd_scan_options o = exact_opts();
    const char *paths[] = {p};
    struct dd_scan *scan = scan_paths(&o, paths, 1, 0);
    const struct dd_scan_input *in = dd_scan_get_input(scan, 0);
    assert_true(in->blkid.probed);
    assert_string_equal(in->blkid.type, "vdo");
    assert_string_equal(in->blkid.signature, "VDO");
    dd_scan_free(scan);
    free(p);
    free(img);

    if (!tt_have_program("mke2fs")) {
        print_message("mke2fs not installed: ext4 probe not run\n");
        return;
    }
    char *e = tt_path(fx->dir, "ext4.img");
    tt_write_file(e, "", 0);
    assert_int_equal(truncate(e, 8 << 20), 0);
    const char *argv[] = {"/sbin/mke2fs", "-q", "-F", "-t", "ext4", "-L", "dd-label", e, NULL};
    if (access(argv[0], X_OK) != 0)
        argv[0] = "/usr/sbin/mke2fs";
    assert_int_equal(tt_run(argv, NULL, NULL), 0);
    const char *epaths[] = {e};
    scan = scan_paths(&o, epaths, 1, 0);
    in = dd_scan_get_input(scan, 0);
    assert_string_equal(in->blkid.type, "ext4");
    assert_string_equal(in->blkid.label, "dd-label");
    assert_non_null(in->blkid.uuid);
    assert_null(in->blkid.signature);
    dd_scan_free(scan);
    free(e);
}

static void test_threads_do_not_change_results(void **state)
{
    struct fx *fx = *state;
    /* several chunks, many duplicates across chunk boundaries, a window */
    size_t len = 5 * DD_SCAN_CHUNK_BYTES + 3 * B + 17;
    uint8_t *buf = malloc(len), *pat = random_bytes(37 * B, 15);
    uint64_t seed = 16;
    for (size_t off = 0; off < len; off += B) {
        size_t n = DD_MIN((size_t)B, len - off);
        if (tt_rand64(&seed) % 3 == 0)
            tt_fill_random(buf + off, n, &seed);
        else
            memcpy(buf + off, pat + (tt_rand64(&seed) % 37) * B, n);
    }
    char *p = make_file(fx, "mixed", buf, len);
    const char *paths[] = {p};
    double first = -1;
    for (unsigned t = 1; t <= 8; t *= 2) {
        struct dd_scan_options o = exact_opts();
        o.threads = t;
        o.window_blocks = 300;
        struct dd_scan *scan = scan_paths(&o, paths, 1, 0);
        double d = dd_scan_get_result(scan)->distinct_blocks;
        if (first < 0)
            first = d;
        assert_true(d == first);
        dd_scan_free(scan);
    }
    free(buf);
    free(pat);
    free(p);
}

/* A file of nblocks distinct blocks: 1640 random bytes and zeros each (LZ4
 * fragments of about 1.7 KB: compressible) or wholly random (not). */
static char *make_blocks_file(struct fx *fx, const char *name, size_t nblocks, bool compressible,
                              uint64_t seed)
{
    uint8_t *buf = calloc(nblocks, B);
    char *p;
    assert_non_null(buf);
    for (size_t i = 0; i < nblocks; i++)
        tt_fill_random(buf + i * B, compressible ? 1640 : B, &seed);
    p = make_file(fx, name, buf, nblocks * B);
    free(buf);
    return p;
}

/*
 * Issue 9: one compressible and one random file (32 MiB each), read in both
 * orders through a fingerprint table of 128 KiB, so k grows from 0 to 4 while
 * the first file is read. The compression sample must be the same uniform
 * draw of the distinct blocks in both orders (so the same figures) and agree
 * with exact mode within sampling error. The old code kept the trials taken
 * before k grew and reported the file read first.
 */
static void test_compression_sample_input_order(void **state)
{
    struct fx *fx = *state;
    const size_t nb = 8192;
    char *pc = make_blocks_file(fx, "compressible", nb, true, 31);
    char *pr = make_blocks_file(fx, "random", nb, false, 32);
    const char *cr[] = {pc, pr}, *rc[] = {pr, pc};
    struct dd_scan_options o;
    struct dd_scan *s1, *s2, *s3;
    const struct dd_scan_result *a, *b, *ex;

    dd_scan_options_init(&o);
    o.mode = DD_SCAN_MODE_SAMPLED;
    o.max_memory = 128 << 10;
    s1 = scan_paths(&o, cr, 2, 0);
    s2 = scan_paths(&o, rc, 2, 0);
    o = exact_opts();
    o.compress_sample = 1; /* every distinct block: the true share */
    s3 = scan_paths(&o, cr, 2, 0);
    a = dd_scan_get_result(s1);
    b = dd_scan_get_result(s2);
    ex = dd_scan_get_result(s3);
    print_message("k=%u: compressible %.4f (%llu trials) compressible file first, %.4f (%llu) "
                  "random first, exact %.4f (%llu)\n",
                  a->sampling_bits, a->compressible_fraction,
                  (unsigned long long)a->compress_samples, b->compressible_fraction,
                  (unsigned long long)b->compress_samples, ex->compressible_fraction,
                  (unsigned long long)ex->compress_samples);
    assert_true(a->sampling_bits >= 3); /* the sample thinned */
    assert_int_equal(a->sampling_bits, b->sampling_bits);
    assert_true(ex->compressible_fraction == 0.5);
    /* the same blocks were tried in both orders */
    assert_int_equal(a->compress_samples, b->compress_samples);
    assert_true(a->compressible_fraction == b->compressible_fraction);
    /* compress_sampling_rate describes the sample: trials ~ distinct x rate
     * (binomial, 4 standard deviations) */
    double want = (double)(2 * nb) * a->compress_sampling_rate;
    assert_true(fabs((double)a->compress_samples - want) <= 4.0 * sqrt(want));
    /* within 4 standard errors of a proportion over that many trials of the
     * exact share, and inside the reported interval */
    double se = sqrt(0.25 / (double)a->compress_samples);
    assert_true(fabs(a->compressible_fraction - 0.5) <= 4.0 * se);
    assert_true(a->compressible_ci95_low <= 0.5 && 0.5 <= a->compressible_ci95_high);
    dd_scan_free(s1);
    dd_scan_free(s2);
    dd_scan_free(s3);
    free(pc);
    free(pr);
}

/*
 * Issue 9: with --sampling-bits 8 the LZ4 sample was 1 in 2^(8 + c), a few
 * trials (compressible 1.0 with 0 % savings). It is now the fingerprint
 * sample itself, and a sample that small is flagged.
 */
static void test_compression_sample_sampling_bits_8(void **state)
{
    struct fx *fx = *state;
    const size_t nb = 4096;
    char *pc = make_blocks_file(fx, "compressible", nb, true, 33);
    char *pr = make_blocks_file(fx, "random", nb, false, 34);
    const char *paths[] = {pc, pr};
    struct dd_scan_options o;
    struct dd_scan *scan;
    const struct dd_scan_result *r;

    dd_scan_options_init(&o);
    o.mode = DD_SCAN_MODE_SAMPLED;
    o.sampling_bits = 8;
    scan = scan_paths(&o, paths, 2, 0);
    r = dd_scan_get_result(scan);
    print_message("sampling bits 8: %llu trials, compressible %.3f [%.3f, %.3f]\n",
                  (unsigned long long)r->compress_samples, r->compressible_fraction,
                  r->compressible_ci95_low, r->compressible_ci95_high);
    assert_int_equal(r->sampling_bits, 8);
    assert_true(r->compress_sampling_rate == r->sampling_rate);
    /* 8192 distinct blocks / 256 = 32 expected (binomial, 4 sd) */
    assert_true(r->compress_samples >= 10 && r->compress_samples <= 55);
    assert_true(r->compression_low_support);
    assert_true(r->compressible_ci95_low <= 0.5 && 0.5 <= r->compressible_ci95_high);
    assert_true(r->compressible_ci95_high - r->compressible_ci95_low > 0.2);
    json_t *doc = dd_scan_to_json(scan);
    assert_non_null(doc);
    assert_true(json_is_true(json_object_get(doc, "compression_low_support")));
    assert_true(json_is_real(json_object_get(doc, "compressible_ci95_low")));
    json_decref(doc);
    dd_scan_free(scan);

    /* every block tried: exact, not flagged, the interval is the point */
    o = exact_opts();
    o.compress_sample = 1;
    scan = scan_paths(&o, paths, 1, 0);
    r = dd_scan_get_result(scan);
    assert_false(r->compression_low_support);
    assert_true(r->compressible_ci95_low == 1.0 && r->compressible_ci95_high == 1.0);
    dd_scan_free(scan);
    free(pc);
    free(pr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zeros_and_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_n_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shifted_copy_does_not_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_block_is_zero_padded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_drops_old_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compression_text_vs_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_changed_between_listing_and_reading, setup,
                                        teardown),
        cmocka_unit_test(test_pseudo_fs_refused),
        cmocka_unit_test_setup_teardown(test_permission_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blkid_signatures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_do_not_change_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compression_sample_input_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compression_sample_sampling_bits_8, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
