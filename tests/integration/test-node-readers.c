/*
 * dedupd/node readers against fake /proc and /sys trees built in a
 * temporary directory at test time: the real captures in tests/fixtures/node
 * (the dm-vdo 6.12 diskstats sets and this build host's /proc files) as the
 * files' bodies, PSI present, partly present and absent, kubelet's pod
 * cgroups in both driver layouts (systemd and cgroupfs) with pods that are
 * complete, lack optional files, are garbled or vanish, and NVML's
 * unavailable paths (no library, a library without NVML's symbols). Every
 * allocation of a pod scan is failed in turn.
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
#include "dedupd/node/node.h"
#include "helpers.h"

/* ---- helpers ---- */

/* mkdir -p */
static void make_dirs_at(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(path, 0755) < 0 && errno != EEXIST)
                fail_msg("mkdir %s: %s", path, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
}

static void make_dirs(const char *path)
{
    char *p = strdup(path);
    assert_non_null(p);
    make_dirs_at(p);
    free(p);
}

/* mkdir -p of root/rel. */
static void make_dirs_in(const char *root, const char *rel)
{
    char *path;

    if (asprintf(&path, "%s/%s", root, rel) < 0)
        fail_msg("asprintf");
    make_dirs_at(path);
    free(path);
}

/* Writes root/rel (its directories made first). */
static void put(const char *root, const char *rel, const char *text)
{
    char *path, *slash;

    if (asprintf(&path, "%s/%s", root, rel) < 0)
        fail_msg("asprintf");
    slash = strrchr(path, '/');
    *slash = '\0';
    make_dirs(path);
    *slash = '/';
    tt_write_file(path, text, strlen(text));
    free(path);
}

/* root/rel gets the body of a fixture. */
static void put_fixture(const char *root, const char *rel, const char *fixture)
{
    char *body = tt_fixture(fixture, NULL);
    put(root, rel, body);
    free(body);
}

static char *join(const char *a, const char *b)
{
    char *p;
    if (asprintf(&p, "%s/%s", a, b) < 0)
        fail_msg("asprintf");
    return p;
}

#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                             \
            fail_msg("%s = %.17g, want %s = %.17g", #a, a_, #b, b_);                               \
    } while (0)

/* ---- /proc ---- */

static void test_proc_readers(void **state)
{
    char *tmp = tt_tmpdir(), *proc = join(tmp, "proc");
    struct dd_parse_error err = {0};
    struct dd_cpu_stat s1, s2;
    struct dd_cpu_util u;
    struct dd_loadavg la;
    struct dd_meminfo mi;
    struct dd_node_psi psi;

    (void)state;
    put_fixture(proc, "stat", "node/proc-stat-1.txt");
    put_fixture(proc, "loadavg", "node/proc-loadavg.txt");
    put_fixture(proc, "meminfo", "node/proc-meminfo.txt");
    put_fixture(proc, "pressure/cpu", "node/proc-pressure-cpu.txt");
    put_fixture(proc, "pressure/io", "node/proc-pressure-io.txt");
    put_fixture(proc, "pressure/memory", "node/proc-pressure-memory.txt");

    assert_int_equal(dd_node_read_stat(proc, &s1, &err), 0);
    assert_int_equal(s1.n_cpus, 2);
    put_fixture(proc, "stat", "node/proc-stat-2.txt");
    assert_int_equal(dd_node_read_stat(proc, &s2, &err), 0);
    /* busy 135 + 16 + 1 = 152 ticks, idle 71 (see test-node-parse.c) */
    assert_int_equal(dd_cpu_util(&s1.all, &s2.all, 100, 0.0, &u), 0);
    assert_near(u.util, 152.0 / 223.0, 1e-12);
    dd_cpu_stat_release(&s1);
    dd_cpu_stat_release(&s2);

    assert_int_equal(dd_node_read_loadavg(proc, &la, &err), 0);
    assert_true(la.runnable >= 1 && la.run_queue == la.runnable - 1 && la.total > 0);

    assert_int_equal(dd_node_read_meminfo(proc, &mi, &err), 0);
    /* the values of tests/fixtures/node/proc-meminfo.txt */
    assert_true(mi.mem_total_kb == 24683620 && mi.mem_available_kb == 23998996);
    assert_true(mi.cached_kb == 3001040 && mi.dirty_kb == 5228 && mi.writeback_kb == 0);

    assert_int_equal(dd_node_read_psi(proc, &psi, &err), 0);
    assert_true(psi.cpu_available && psi.io_available && psi.memory_available);
    assert_true(psi.io.some.present && psi.io.full.present);
    assert_true(psi.cpu.some.present && psi.cpu.full.present);

    free(proc);
    tt_rmtree(tmp);
    free(tmp);
}

/* The real dm-vdo 6.12 captures through the reader, then the rates of the
 * VDO volume (dm-0) between them, against the numbers worked out by hand. */
static void test_diskstats_real(void **state)
{
    char *tmp = tt_tmpdir(), *proc = join(tmp, "proc");
    static const char *const vdo_devs[] = {"dm-0", "dm-1", "dm-2", "dm-3"};
    struct dd_parse_error err = {0};
    struct dd_diskstats s1, s2;
    struct dd_disk_rates r;
    const struct dd_diskstat *p, *c;

    (void)state;
    put_fixture(proc, "diskstats", "node/set1-proc-diskstats-vdo.txt");
    assert_int_equal(dd_node_read_diskstats(proc, &s1, &err), 0);
    put_fixture(proc, "diskstats", "node/set2-proc-diskstats-vdo.txt");
    assert_int_equal(dd_node_read_diskstats(proc, &s2, &err), 0);
    /* tripwire: every device of the capture, with 6.12's 20 fields */
    assert_int_equal(s1.n, 8);
    assert_int_equal(s2.n, 8);
    for (size_t i = 0; i < DD_ARRAY_SIZE(vdo_devs); i++) {
        p = dd_diskstats_find_name(&s1, vdo_devs[i]);
        c = dd_diskstats_find_dev(&s2, 253, (uint32_t)i);
        assert_non_null(p);
        assert_non_null(c);
        assert_string_equal(c->name, vdo_devs[i]);
        assert_int_equal(p->n_fields, 20);
        assert_int_equal(c->n_fields, 20);
    }

    /* vdo0 (dm-0) over an assumed 60 s: 114691 writes of 917504 sectors in
     * 486556 ms; 131267 reads of 1050136 sectors in 354148 ms; 6852 io ms */
    p = dd_diskstats_find_name(&s1, "dm-0");
    c = dd_diskstats_find_name(&s2, "dm-0");
    assert_non_null(p);
    assert_non_null(c);
    assert_int_equal(dd_disk_rates(p, c, 60.0, &r), 0);
    assert_near(r.write_iops, 114691.0 / 60.0, 1e-9);
    assert_near(r.write_mbps, 917504.0 * 512.0 / 1e6 / 60.0, 1e-9);
    assert_near(r.write_latency_ms, 486556.0 / 114691.0, 1e-12);
    assert_near(r.read_iops, 131267.0 / 60.0, 1e-9);
    assert_near(r.read_mbps, 1050136.0 * 512.0 / 1e6 / 60.0, 1e-9);
    assert_near(r.read_latency_ms, 354148.0 / 131267.0, 1e-12);
    assert_near(r.util, 6852.0 / 60000.0, 1e-12);

    /* vdb (vdo0's backing disk) by number */
    p = dd_diskstats_find_dev(&s1, 254, 16);
    c = dd_diskstats_find_dev(&s2, 254, 16);
    assert_non_null(p);
    assert_non_null(c);
    assert_string_equal(c->name, "vdb");
    /* 6762 -> 13950 writes, 14309 -> 24675 ms */
    assert_int_equal(dd_disk_rates(p, c, 60.0, &r), 0);
    assert_near(r.write_latency_ms, (24675.0 - 14309.0) / (13950.0 - 6762.0), 1e-12);

    dd_diskstats_release(&s1);
    dd_diskstats_release(&s2);
    free(proc);
    tt_rmtree(tmp);
    free(tmp);
}

static void test_psi_availability(void **state)
{
    char *tmp = tt_tmpdir(), *proc = join(tmp, "proc");
    struct dd_parse_error err = {0};
    struct dd_node_psi psi;

    (void)state;
    make_dirs_in(tmp, "proc");
    /* before 4.20, or CONFIG_PSI off: no /proc/pressure at all */
    memset(&psi, 0x5a, sizeof(psi));
    assert_int_equal(dd_node_read_psi(proc, &psi, &err), 0);
    assert_false(psi.cpu_available || psi.io_available || psi.memory_available);
    assert_false(psi.cpu.some.present || psi.io.some.present || psi.memory.full.present);

    /* cpu only, from before 5.13 (no full line) */
    put(proc, "pressure/cpu", "some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n");
    assert_int_equal(dd_node_read_psi(proc, &psi, &err), 0);
    assert_true(psi.cpu_available && !psi.io_available && !psi.memory_available);
    assert_true(psi.cpu.some.present && !psi.cpu.full.present && psi.cpu.some.total_us == 4);
    assert_true(psi.cpu.some.avg300 == 3.0);

    /* a garbled file is an error naming the file */
    put(proc, "pressure/io", "some avg10=1.00 avg60=2.00 avg300=3.00 total=x\n");
    assert_int_equal(dd_node_read_psi(proc, &psi, &err), DD_E_PARSE);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 46);
    assert_string_equal(err.message, "pressure/io: some total: not a number 'x'");
    assert_int_equal(dd_node_read_psi(proc, &psi, NULL), DD_E_PARSE);

    /* and a directory in a file's place is not "absent" */
    put(proc, "pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    make_dirs_in(proc, "pressure/memory");
    assert_int_equal(dd_node_read_psi(proc, &psi, &err), -EISDIR);

    assert_int_equal(dd_node_read_psi(NULL, &psi, &err), -EINVAL);
    free(proc);
    tt_rmtree(tmp);
    free(tmp);
}

static void test_read_errors(void **state)
{
    char *tmp = tt_tmpdir(), *proc = join(tmp, "proc"), *path;
    struct dd_parse_error err = {0};
    struct dd_cpu_stat s;
    struct dd_loadavg la;
    struct dd_meminfo mi;
    struct dd_diskstats d;
    char *text = NULL, longroot[5000];
    size_t len = 0;

    (void)state;
    make_dirs_in(tmp, "proc");
    assert_int_equal(dd_node_read_stat(proc, &s, &err), -ENOENT);
    assert_int_equal(dd_node_read_loadavg(proc, &la, &err), -ENOENT);
    assert_int_equal(dd_node_read_meminfo(proc, &mi, &err), -ENOENT);
    assert_int_equal(dd_node_read_diskstats(proc, &d, &err), -ENOENT);
    assert_int_equal(dd_node_read_stat(NULL, &s, &err), -EINVAL);
    assert_int_equal(dd_node_read_stat(proc, NULL, &err), -EINVAL);
    memset(longroot, 'a', sizeof(longroot) - 1);
    longroot[sizeof(longroot) - 1] = '\0';
    assert_int_equal(dd_node_read_stat(longroot, &s, &err), -ENAMETOOLONG);

    /* a parse error comes through with its place */
    put(proc, "loadavg", "0.1 0.2 0.3 1/2\n");
    assert_int_equal(dd_node_read_loadavg(proc, &la, &err), DD_E_PARSE);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 16);

    /* the size cap, at and past it */
    put(proc, "f", "0123456789");
    path = join(proc, "f");
    assert_int_equal(dd_node_read_file(path, 10, &text, &len), 0);
    assert_int_equal(len, 10);
    assert_string_equal(text, "0123456789");
    dd_free(text);
    assert_int_equal(dd_node_read_file(path, 9, &text, &len), DD_E_TOOBIG);
    assert_int_equal(dd_node_read_file(path, 0, &text, &len), DD_E_TOOBIG);
    put(proc, "empty", "");
    free(path);
    path = join(proc, "empty");
    assert_int_equal(dd_node_read_file(path, 0, &text, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    dd_free(text);
    /* a file past the first buffer (4 KiB) grows it */
    {
        char *big = malloc(20001);
        assert_non_null(big);
        memset(big, 'x', 20000);
        big[20000] = '\0';
        put(proc, "big", big);
        free(path);
        path = join(proc, "big");
        assert_int_equal(dd_node_read_file(path, 20000, &text, &len), 0);
        assert_int_equal(len, 20000);
        assert_memory_equal(text, big, 20000);
        dd_free(text);
        assert_int_equal(dd_node_read_file(path, 19999, &text, &len), DD_E_TOOBIG);
        free(big);
    }
    assert_int_equal(dd_node_read_file(NULL, 10, &text, &len), -EINVAL);
    free(path);
    free(proc);
    tt_rmtree(tmp);
    free(tmp);
}

/* ---- pods ---- */

#define UID_G  "0b3c5f6e-1111-4a2b-9c3d-5e6f7a8b9c0d"
#define UID_G_ "0b3c5f6e_1111_4a2b_9c3d_5e6f7a8b9c0d"
#define UID_B  "7d1e2f3a-2222-4b5c-8d9e-0f1a2b3c4d5e"
#define UID_B_ "7d1e2f3a_2222_4b5c_8d9e_0f1a2b3c4d5e"
#define UID_E  "c4d5e6f7-3333-4c6d-ae0f-1a2b3c4d5e6f"
#define UID_E_ "c4d5e6f7_3333_4c6d_ae0f_1a2b3c4d5e6f"
/* a static pod: its UID is a hash, no dashes */
#define UID_S "6f1c8a2b9d3e4f5061728394a5b6c7d8"

#define CPU_STAT(u, us, sy)                                                                        \
    "usage_usec " #u "\nuser_usec " #us "\nsystem_usec " #sy "\nnr_periods 0\nnr_throttled 0\n"    \
    "throttled_usec 0\nnr_bursts 0\nburst_usec 0\n"

/* One pod's files under root/dir. */
static void put_pod(const char *root, const char *dir, const char *cpu, const char *cur,
                    const char *peak, const char *io)
{
    char *rel;

    make_dirs_in(root, dir);
#define PUT_ONE(name, text)                                                                        \
    do {                                                                                           \
        if (text) {                                                                                \
            if (asprintf(&rel, "%s/%s", dir, name) < 0)                                            \
                fail_msg("asprintf");                                                              \
            put(root, rel, text);                                                                  \
            free(rel);                                                                             \
        }                                                                                          \
    } while (0)
    PUT_ONE("cpu.stat", cpu);
    PUT_ONE("memory.current", cur);
    PUT_ONE("memory.peak", peak);
    PUT_ONE("io.stat", io);
#undef PUT_ONE
}

static const struct dd_pod *must_pod(const struct dd_pods *p, const char *uid)
{
    const struct dd_pod *pod = dd_pods_find(p, uid);
    if (!pod) {
        fail_msg("pod %s not found", uid);
        abort();
    }
    return pod;
}

/* The same pods in one layout; the checks do not depend on which. */
static void check_pods(const struct dd_pods *p, enum dd_cgroup_driver driver)
{
    const struct dd_pod *g = must_pod(p, UID_G), *b = must_pod(p, UID_B), *e = must_pod(p, UID_E);

    assert_int_equal(p->n, 3);
    /* sorted by uid */
    for (size_t i = 1; i < p->n; i++)
        assert_true(strcmp(p->pods[i - 1].uid, p->pods[i].uid) < 0);

    assert_int_equal(g->qos, DD_POD_GUARANTEED);
    assert_int_equal(g->driver, driver);
    assert_true(g->cpu.usage_usec == 1043213 && g->cpu.user_usec == 811020 &&
                g->cpu.system_usec == 232193);
    assert_true(g->has_memory_current && g->memory_current == 524288000);
    assert_true(g->has_memory_peak && g->memory_peak == 734003200);
    assert_true(g->has_io && g->io.n == 2);
    assert_true(g->io.devs[0].major == 253 && g->io.devs[0].minor == 0);
    assert_true(g->io.devs[0].rbytes == 1048576 && g->io.devs[0].wbytes == 4194304 &&
                g->io.devs[0].rios == 256 && g->io.devs[0].wios == 1024);
    assert_true(g->io.devs[1].major == 254 && g->io.devs[1].minor == 16 && g->io.devs[1].wios == 9);

    /* before 5.19: no memory.peak; no I/O yet: an empty io.stat */
    assert_int_equal(b->qos, DD_POD_BURSTABLE);
    assert_true(b->cpu.usage_usec == 10 && b->cpu.user_usec == 6 && b->cpu.system_usec == 4);
    assert_true(b->has_memory_current && b->memory_current == 4096);
    assert_false(b->has_memory_peak);
    assert_true(b->has_io && b->io.n == 0);

    /* memory and io controllers not enabled for the subtree */
    assert_int_equal(e->qos, DD_POD_BESTEFFORT);
    assert_true(e->cpu.usage_usec == 0);
    assert_false(e->has_memory_current || e->has_memory_peak || e->has_io);
    assert_null(dd_pods_find(p, "no-such-pod"));
}

#define IO_G                                                                                       \
    "253:0 rbytes=1048576 wbytes=4194304 rios=256 wios=1024 dbytes=0 dios=0\n"                     \
    "254:16 rbytes=0 wbytes=36864 rios=0 wios=9 dbytes=0 dios=0\n"

static void test_pods_systemd(void **state)
{
    char *tmp = tt_tmpdir(), *sys = join(tmp, "sys");
    const char *cg = "fs/cgroup/kubepods.slice";
    struct dd_pods p;
    char dir[512];

    (void)state;
    snprintf(dir, sizeof(dir), "%s/kubepods-pod" UID_G_ ".slice", cg);
    put_pod(sys, dir, CPU_STAT(1043213, 811020, 232193), "524288000\n", "734003200\n", IO_G);
    /* a container below the pod is not a pod */
    snprintf(dir, sizeof(dir), "%s/kubepods-pod" UID_G_ ".slice/cri-containerd-abc.scope", cg);
    put_pod(sys, dir, CPU_STAT(1, 1, 0), "1\n", NULL, "");
    snprintf(dir, sizeof(dir), "%s/kubepods-burstable.slice/kubepods-burstable-pod" UID_B_ ".slice",
             cg);
    put_pod(sys, dir, CPU_STAT(10, 6, 4), "4096\n", NULL, "");
    snprintf(dir, sizeof(dir),
             "%s/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_E_ ".slice", cg);
    put_pod(sys, dir, CPU_STAT(0, 0, 0), NULL, NULL, NULL);
    /* the slice's own files and odd names are ignored */
    put(sys, "fs/cgroup/kubepods.slice/cpu.stat", CPU_STAT(99, 99, 0));
    put(sys, "fs/cgroup/kubepods.slice/kubepods-podfile.slice", "not a directory\n");
    make_dirs_in(sys, "fs/cgroup/kubepods.slice/kubepods-pod.slice");
    make_dirs_in(sys, "fs/cgroup/kubepods.slice/kubepods-podab-cd.slice"); /* '-' in systemd form */
    make_dirs_in(sys, "fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-pod" UID_B_
                      ".slice.bak");
    make_dirs_in(sys, "fs/cgroup/system.slice/kubepods-pod" UID_G_ ".slice");

    assert_int_equal(dd_node_pods_scan(sys, &p), 0);
    assert_int_equal(p.vanished, 0);
    assert_int_equal(p.skipped, 0);
    check_pods(&p, DD_CGROUP_SYSTEMD);
    dd_pods_release(&p);
    assert_null(p.pods);
    dd_pods_release(NULL);

    free(sys);
    tt_rmtree(tmp);
    free(tmp);
}

static void test_pods_cgroupfs(void **state)
{
    char *tmp = tt_tmpdir(), *sys = join(tmp, "sys");
    struct dd_pods p;

    (void)state;
    put_pod(sys, "fs/cgroup/kubepods/pod" UID_G, CPU_STAT(1043213, 811020, 232193), "524288000\n",
            "734003200\n", IO_G);
    put_pod(sys, "fs/cgroup/kubepods/pod" UID_G "/0123456789abcdef", CPU_STAT(1, 1, 0), "1\n", NULL,
            "");
    put_pod(sys, "fs/cgroup/kubepods/burstable/pod" UID_B, CPU_STAT(10, 6, 4), "4096\n", NULL, "");
    put_pod(sys, "fs/cgroup/kubepods/besteffort/pod" UID_E, CPU_STAT(0, 0, 0), NULL, NULL, NULL);
    make_dirs_in(sys, "fs/cgroup/kubepods/pod" UID_G_); /* '_' in cgroupfs form: not a pod */

    assert_int_equal(dd_node_pods_scan(sys, &p), 0);
    assert_int_equal(p.vanished, 0);
    assert_int_equal(p.skipped, 0);
    check_pods(&p, DD_CGROUP_CGROUPFS);
    dd_pods_release(&p);

    free(sys);
    tt_rmtree(tmp);
    free(tmp);
}

/* Pods that vanish, are garbled, and a static pod; both layouts at once. */
static void test_pods_mixed(void **state)
{
    char *tmp = tt_tmpdir(), *sys = join(tmp, "sys");
    struct dd_pods p;
    const struct dd_pod *s;

    (void)state;
    /* a static pod (hash UID) in the cgroupfs layout */
    put_pod(sys, "fs/cgroup/kubepods/burstable/pod" UID_S, CPU_STAT(5, 3, 2), "8192\n", "9000\n",
            "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n");
    /* gone between the listing and the reads: no cpu.stat */
    make_dirs_in(sys, "fs/cgroup/kubepods/besteffort/pod" UID_E);
    /* garbled files */
    put_pod(sys, "fs/cgroup/kubepods.slice/kubepods-pod" UID_G_ ".slice", "usage_usec x\n", NULL,
            NULL, NULL);
    put_pod(sys,
            "fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_B_
            ".slice",
            CPU_STAT(1, 1, 0), "1\n", NULL, "8:0 rbytes=1\n");

    assert_int_equal(dd_node_pods_scan(sys, &p), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.vanished, 1);
    assert_int_equal(p.skipped, 2);
    s = must_pod(&p, UID_S);
    assert_int_equal(s->driver, DD_CGROUP_CGROUPFS);
    assert_int_equal(s->qos, DD_POD_BURSTABLE);
    assert_true(s->memory_peak == 9000 && s->io.n == 1 && s->io.devs[0].wios == 4);
    dd_pods_release(&p);

    free(sys);
    tt_rmtree(tmp);
    free(tmp);
}

static void test_pods_absent(void **state)
{
    char *tmp = tt_tmpdir(), *sys = join(tmp, "sys"), *none = join(tmp, "none");
    struct dd_pods p;

    (void)state;
    /* no /sys at all, no fs/cgroup, a cgroup tree without Kubernetes */
    memset(&p, 0x5a, sizeof(p));
    assert_int_equal(dd_node_pods_scan(none, &p), 0);
    assert_true(p.n == 0 && p.pods == NULL && p.vanished == 0 && p.skipped == 0);
    make_dirs_in(tmp, "sys");
    assert_int_equal(dd_node_pods_scan(sys, &p), 0);
    assert_int_equal(p.n, 0);
    put(sys, "fs/cgroup/cgroup.controllers", "cpu io memory\n");
    make_dirs_in(sys, "fs/cgroup/system.slice");
    assert_int_equal(dd_node_pods_scan(sys, &p), 0);
    assert_int_equal(p.n, 0);
    /* QoS directories only */
    make_dirs_in(sys, "fs/cgroup/kubepods.slice/kubepods-burstable.slice");
    make_dirs_in(sys, "fs/cgroup/kubepods/besteffort");
    assert_int_equal(dd_node_pods_scan(sys, &p), 0);
    assert_int_equal(p.n, 0);
    dd_pods_release(&p);

    assert_int_equal(dd_node_pods_scan(NULL, &p), -EINVAL);
    assert_int_equal(dd_node_pods_scan(sys, NULL), -EINVAL);
    free(none);
    free(sys);
    tt_rmtree(tmp);
    free(tmp);
}

static void test_pods_alloc_failures(void **state)
{
    char *tmp = tt_tmpdir(), *sys = join(tmp, "sys");
    unsigned long n;

    (void)state;
    put_pod(sys, "fs/cgroup/kubepods/pod" UID_G, CPU_STAT(1, 1, 0), "1\n", "2\n", IO_G);
    put_pod(sys, "fs/cgroup/kubepods/burstable/pod" UID_B, CPU_STAT(1, 1, 0), "1\n", NULL, IO_G);
    for (n = 1;; n++) {
        struct dd_pods p;
        int r;

        memset(&p, 0x5a, sizeof(p));
        dd_alloc_fail_at(n);
        r = dd_node_pods_scan(sys, &p);
        dd_alloc_fail_at(0);
        if (r == 0) {
            assert_int_equal(p.n, 2);
            dd_pods_release(&p);
            break;
        }
        assert_int_equal(r, -ENOMEM);
    }
    assert_true(n > 8);
    free(sys);
    tt_rmtree(tmp);
    free(tmp);
}

/* ---- NVML ---- */

static void check_unavailable(struct dd_nvml *nvml, const char *want_in_reason)
{
    const char *reason = NULL;
    struct dd_gpus *g = malloc(sizeof(*g));

    assert_non_null(g);
    assert_false(dd_nvml_available(nvml, &reason));
    assert_non_null(reason);
    if (!strstr(reason, want_in_reason))
        fail_msg("reason \"%s\" does not mention \"%s\"", reason, want_in_reason);
    memset(g, 0x5a, sizeof(*g));
    assert_int_equal(dd_nvml_sample(nvml, g), 0);
    assert_false(g->available);
    assert_int_equal(g->n, 0);
    assert_string_equal(g->reason, reason);
    free(g);
}

static void test_nvml_unavailable(void **state)
{
    struct dd_nvml *nvml = NULL;
    const char *reason = NULL;

    (void)state;
    /* no library */
    assert_int_equal(dd_nvml_open("/nonexistent/dedupd-test/libnvidia-ml.so.1", &nvml), 0);
    assert_non_null(nvml);
    check_unavailable(nvml, "/nonexistent/dedupd-test/libnvidia-ml.so.1");
    nvml = dd_nvml_free(nvml);
    assert_null(nvml);

    /* a library that is not NVML: the first symbol looked up is missing */
    assert_int_equal(dd_nvml_open("libm.so.6", &nvml), 0);
    check_unavailable(nvml, "nvmlErrorString");
    nvml = dd_nvml_free(nvml);

    /* the default library: absent on build hosts; on a GPU host it works */
    assert_int_equal(dd_nvml_open(NULL, &nvml), 0);
    if (!dd_nvml_available(nvml, &reason)) {
        print_message("NVML unavailable here: %s\n", reason);
        check_unavailable(nvml, "");
    } else {
        struct dd_gpus *g = malloc(sizeof(*g));
        assert_non_null(g);
        assert_int_equal(dd_nvml_sample(nvml, g), 0);
        print_message("NVML: %u GPU(s)%s%s\n", g->n, g->available ? "" : ", ", g->reason);
        assert_true(g->n <= DD_NODE_MAX_GPUS && g->n <= g->n_total);
        for (uint32_t i = 0; i < g->n; i++) {
            assert_int_equal(g->gpus[i].index, i);
            assert_true(!g->gpus[i].has_util || g->gpus[i].util_gpu_pct <= 100);
            assert_true(!g->gpus[i].has_memory ||
                        g->gpus[i].memory_used <= g->gpus[i].memory_total);
            print_message("GPU %u: %s util %u%% memory %llu/%llu\n", i, g->gpus[i].name,
                          g->gpus[i].util_gpu_pct, (unsigned long long)g->gpus[i].memory_used,
                          (unsigned long long)g->gpus[i].memory_total);
        }
        free(g);
    }
    nvml = dd_nvml_free(nvml);

    /* arguments and memory */
    assert_null(dd_nvml_free(NULL));
    assert_false(dd_nvml_available(NULL, &reason));
    assert_int_equal(dd_nvml_sample(NULL, &(struct dd_gpus){0}), -EINVAL);
    assert_int_equal(dd_nvml_open(NULL, NULL), -EINVAL);
    dd_alloc_fail_at(1);
    assert_int_equal(dd_nvml_open("/nonexistent", &nvml), -ENOMEM);
    dd_alloc_fail_at(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_readers),        cmocka_unit_test(test_diskstats_real),
        cmocka_unit_test(test_psi_availability),    cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_pods_systemd),        cmocka_unit_test(test_pods_cgroupfs),
        cmocka_unit_test(test_pods_mixed),          cmocka_unit_test(test_pods_absent),
        cmocka_unit_test(test_pods_alloc_failures), cmocka_unit_test(test_nvml_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
