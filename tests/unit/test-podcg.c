/*
 * Pod outcomes, the pure parts and the cgroup reader: memory.stat, the pod
 * tracker over scans of a fake cgroup v2 tree in a temporary directory
 * (both kubelet drivers; a pod appearing, growing, skipped for a garbled
 * file, disappearing), pod metadata from Pod objects (owner, requests and
 * limits, termination causes, refusals naming the field) and the outcome
 * body.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "dedupd/node/node.h"
#include "dedupd/node/podmeta.h"
#include "helpers.h"
#include "placement/rightsize.h"

/* old cmocka has no assert_double_equal */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                             \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                                    \
    } while (0)

/* ---- memory.stat ---- */

static void test_memstat(void **state)
{
    (void)state;
    static const char good[] = "anon 10375168\nfile 84701184\nkernel 1216512\n"
                               "active_file 1921024\ninactive_file 82780160\npgfault 77\n";
    struct dd_cgroup_memstat m;
    struct dd_parse_error e = {0};

    assert_int_equal(dd_node_cgroup_memstat_parse(good, strlen(good), &m, &e), 0);
    assert_int_equal(m.anon, 10375168);
    assert_int_equal(m.file, 84701184);
    assert_int_equal(m.active_file, 1921024);
    assert_int_equal(m.inactive_file, 82780160);

    static const struct {
        const char *text, *msg;
        unsigned line;
    } bad[] = {
        {"anon 1\n", "inactive_file: missing", 0},
        {"inactive_file 1\ninactive_file 2\n", "a second time", 2},
        {"inactive_file x12\n", "inactive_file", 1},
        {"anon 1 2\ninactive_file 3\n", "fields", 1},
        {"inactive_file -5\n", "inactive_file", 1},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        struct dd_cgroup_memstat keep = {.anon = 42};
        memset(&e, 0, sizeof(e));
        assert_int_equal(dd_node_cgroup_memstat_parse(bad[i].text, strlen(bad[i].text), &keep, &e),
                         DD_E_PARSE);
        assert_int_equal(keep.anon, 42); /* untouched */
        assert_non_null(strstr(e.message, bad[i].msg));
        assert_int_equal(e.line, bad[i].line);
    }
}

/* ---- a fake cgroup tree ---- */

static char *g_root;

static void put(const char *dir, const char *file, const char *text)
{
    char *d = tt_path(g_root, dir), *p = tt_path(d, file);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", d);
    assert_int_equal(system(cmd), 0);
    tt_write_file(p, text, strlen(text));
    free(p);
    free(d);
}

static void rmdir_pod(const char *dir)
{
    char *d = tt_path(g_root, dir);
    tt_rmtree(d);
    free(d);
}

#define SYSTEMD_POD                                                                                \
    "kubepods.slice/kubepods-burstable.slice/"                                                     \
    "kubepods-burstable-pod1f2e3d4c_aaaa_bbbb_cccc_0123456789ab.slice"
#define SYSTEMD_UID "1f2e3d4c-aaaa-bbbb-cccc-0123456789ab"
#define CGFS_POD    "kubepods/besteffort/pod9a8b7c6d-1111-2222-3333-444455556666"
#define CGFS_UID    "9a8b7c6d-1111-2222-3333-444455556666"
#define GUAR_POD    "kubepods.slice/kubepods-pod77aa88bb_0000_1111_2222_333344445555.slice"
#define GUAR_UID    "77aa88bb-0000-1111-2222-333344445555"

static void cpu(const char *pod, unsigned long long usec)
{
    char t[256];
    snprintf(t, sizeof(t), "usage_usec %llu\nuser_usec %llu\nsystem_usec 0\nnr_periods 0\n", usec,
             usec);
    put(pod, "cpu.stat", t);
}

static void mem(const char *pod, unsigned long long current, unsigned long long inactive)
{
    char t[256];
    snprintf(t, sizeof(t), "%llu\n", current);
    put(pod, "memory.current", t);
    snprintf(t, sizeof(t), "anon 1\nfile 2\nactive_file 0\ninactive_file %llu\n", inactive);
    put(pod, "memory.stat", t);
}

static void io(const char *pod, unsigned long long r1, unsigned long long w1, unsigned long long r2,
               unsigned long long w2)
{
    char t[512];
    snprintf(t, sizeof(t),
             "8:0 rbytes=%llu wbytes=%llu rios=1 wios=1 dbytes=0 dios=0\n"
             "253:1 rbytes=%llu wbytes=%llu rios=1 wios=1 dbytes=0 dios=0\n",
             r1, w1, r2, w2);
    put(pod, "io.stat", t);
}

static int setup(void **state)
{
    (void)state;
    g_root = tt_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_rmtree(g_root);
    free(g_root);
    return 0;
}

static void scan(struct dd_pod_tracker *t, double dt, double wall, struct dd_pod_usage **gone,
                 size_t *n_gone, struct dd_pods *out)
{
    struct dd_pods p;
    assert_int_equal(dd_node_pods_scan_root(g_root, &p), 0);
    assert_int_equal(dd_pod_tracker_update(t, &p, dt, wall, gone, n_gone), 0);
    if (out)
        *out = p;
    else
        dd_pods_release(&p);
}

static void test_tracker_tree(void **state)
{
    struct dd_pod_tracker *t;
    struct dd_pod_usage *gone = NULL, u;
    struct dd_pods p;
    size_t n_gone = 99;
    (void)state;

    assert_int_equal(dd_pod_tracker_new(&t), 0);
    /* no hierarchy at all: no pods */
    scan(t, 10, 1000, &gone, &n_gone, NULL);
    assert_int_equal(n_gone, 0);
    assert_null(gone);
    assert_int_equal(dd_pod_tracker_count(t), 0);

    /* a systemd-driver pod and a cgroupfs one appear */
    cpu(SYSTEMD_POD, 1000000);
    mem(SYSTEMD_POD, 600u << 20, 200u << 20);
    io(SYSTEMD_POD, 1000, 10, 2000, 20);
    put(SYSTEMD_POD, "memory.peak", "943718400\n");
    cpu(CGFS_POD, 0);
    put(CGFS_POD, "memory.current", "4096\n"); /* no memory.stat: current alone */
    /* not pods: a container's cgroup, a control file, a stray name */
    put(SYSTEMD_POD "/cri-containerd-abc.scope", "cpu.stat",
        "usage_usec 1\nuser_usec 1\nsystem_usec 0\n");
    put("kubepods.slice", "cgroup.procs", "");
    put("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podBAD!.slice", "cpu.stat",
        "usage_usec 1\nuser_usec 1\nsystem_usec 0\n");
    scan(t, 10, 1000, &gone, &n_gone, NULL);
    assert_int_equal(n_gone, 0);
    assert_int_equal(dd_pod_tracker_count(t), 2);
    assert_true(dd_pod_tracker_get(t, SYSTEMD_UID, &u));
    assert_true(isnan(u.peak_cpu_cores)); /* one read: no rate yet */
    assert_int_equal(u.qos, DD_POD_BURSTABLE);
    assert_true(u.has_working_set);
    assert_int_equal(u.working_set, 400u << 20); /* 600 MiB - 200 MiB inactive file */
    assert_int_equal(u.read_bytes, 3000);
    assert_int_equal(u.write_bytes, 30);
    assert_true(u.has_memory_peak);
    assert_true(dd_pod_tracker_get(t, CGFS_UID, &u));
    assert_int_equal(u.qos, DD_POD_BESTEFFORT);
    assert_int_equal(u.working_set, 4096);
    assert_false(u.has_io);

    /* it grows: 25 CPU seconds over 10 s; the working set peaks */
    cpu(SYSTEMD_POD, 26000000);
    mem(SYSTEMD_POD, 1536u << 20, 512u << 20);
    scan(t, 10, 1010, &gone, &n_gone, NULL);
    /* then a garbled memory.stat: skipped (with the reason), not gone; the
     * next rate spans both intervals */
    cpu(SYSTEMD_POD, 30000000);
    put(SYSTEMD_POD, "memory.stat", "inactive_file lots\n");
    scan(t, 10, 1020, &gone, &n_gone, &p);
    assert_int_equal(n_gone, 0);
    assert_int_equal(p.skipped, 1);
    assert_int_equal(p.n_skips, 1);
    assert_string_equal(p.skips[0].uid, SYSTEMD_UID);
    assert_non_null(strstr(p.skips[0].reason, "memory.stat: line 1"));
    dd_pods_release(&p);
    mem(SYSTEMD_POD, 700u << 20, 100u << 20);
    cpu(SYSTEMD_POD, 34000000);
    scan(t, 10, 1030, &gone, &n_gone, NULL);
    assert_true(dd_pod_tracker_get(t, SYSTEMD_UID, &u));
    assert_near(u.peak_cpu_cores, 2.5, 1e-12); /* not (34-26)/10 */
    assert_int_equal(u.peak_working_set, 1024u << 20);
    assert_int_equal(u.working_set, 600u << 20);
    assert_near(u.cpu_seconds, 34.0, 1e-12);
    assert_int_equal(u.reads, 3);

    /* a device leaves io.stat: the bytes do not go down */
    io(SYSTEMD_POD, 5000, 50, 0, 0);
    put(SYSTEMD_POD, "io.stat", "8:0 rbytes=5000 wbytes=50 rios=1 wios=1\n");
    scan(t, 10, 1040, &gone, &n_gone, NULL);
    assert_true(dd_pod_tracker_get(t, SYSTEMD_UID, &u));
    assert_int_equal(u.read_bytes, 5000);
    assert_int_equal(u.write_bytes, 50);

    /* the pod's cgroup goes: handed back once, with what was last read */
    rmdir_pod(SYSTEMD_POD);
    scan(t, 10, 1050, &gone, &n_gone, NULL);
    assert_int_equal(n_gone, 1);
    assert_string_equal(gone[0].uid, SYSTEMD_UID);
    assert_near(gone[0].peak_cpu_cores, 2.5, 1e-12);
    assert_near(gone[0].first_seen, 1000, 0);
    assert_near(gone[0].last_seen, 1040, 0);
    assert_int_equal(gone[0].peak_working_set, 1024u << 20);
    dd_free(gone);
    assert_int_equal(dd_pod_tracker_count(t), 1);
    scan(t, 10, 1060, &gone, &n_gone, NULL);
    assert_int_equal(n_gone, 0);

    /* a Guaranteed pod directly under kubepods.slice; its counter goes
     * back (a new cgroup of the same UID): the peak stays */
    cpu(GUAR_POD, 5000000);
    scan(t, 10, 1070, &gone, &n_gone, NULL);
    cpu(GUAR_POD, 15000000);
    scan(t, 10, 1080, &gone, &n_gone, NULL);
    cpu(GUAR_POD, 100);
    scan(t, 10, 1090, &gone, &n_gone, NULL);
    assert_true(dd_pod_tracker_get(t, GUAR_UID, &u));
    assert_int_equal(u.qos, DD_POD_GUARANTEED);
    assert_near(u.peak_cpu_cores, 1.0, 1e-12);
    /* dt 0 gives no rate and no crash */
    cpu(GUAR_POD, 99000000);
    scan(t, 0, 1090, &gone, &n_gone, NULL);
    assert_true(dd_pod_tracker_get(t, GUAR_UID, &u));
    assert_near(u.peak_cpu_cores, 1.0, 1e-12);
    assert_int_equal(dd_pod_tracker_update(t, NULL, 1, 1, &gone, &n_gone), -EINVAL);
    dd_pod_tracker_free(t);
}

/* ---- pod metadata ---- */

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("bad test JSON: %s: %s", je.text, text);
    return j;
}

static const char POD_OOM[] =
    "{\"metadata\":{\"name\":\"trainer-7c4b9d6f58-x2x7k\",\"namespace\":\"ml-team\","
    "\"uid\":\"0b5e-uid\",\"labels\":{\"pod-template-hash\":\"7c4b9d6f58\"},"
    "\"annotations\":{\"dedupd.io/framework\":\"pytorch\","
    "\"kubectl.kubernetes.io/last-applied-configuration\":\"{...}\"},"
    "\"ownerReferences\":[{\"kind\":\"Node\",\"name\":\"x\"},"
    "{\"kind\":\"ReplicaSet\",\"name\":\"trainer-7c4b9d6f58\",\"controller\":true}]},"
    "\"spec\":{\"nodeName\":\"gpu-b\",\"containers\":["
    "{\"name\":\"main\",\"resources\":{\"requests\":{\"cpu\":\"1500m\",\"memory\":\"2Gi\","
    "\"nvidia.com/gpu\":\"1\"},\"limits\":{\"memory\":\"3Gi\",\"nvidia.com/gpu\":\"1\"}}},"
    "{\"name\":\"side\",\"resources\":{\"requests\":{\"cpu\":\"500m\"},\"limits\":{\"memory\":"
    "\"1Gi\"}}}],"
    "\"initContainers\":[{\"name\":\"fetch\",\"resources\":{\"requests\":{\"cpu\":\"4\"}}},"
    "{\"name\":\"proxy\",\"restartPolicy\":\"Always\",\"resources\":{\"requests\":{\"memory\":"
    "\"1Mi\"},"
    "\"limits\":{\"memory\":\"1Mi\"}}}]},"
    "\"status\":{\"phase\":\"Running\",\"startTime\":\"2026-01-05T10:00:00Z\","
    "\"containerStatuses\":[{\"name\":\"main\",\"restartCount\":1,"
    "\"state\":{\"terminated\":{\"exitCode\":143,\"reason\":\"Error\",\"finishedAt\":\"2026-01-"
    "05T10:20:00Z\"}},"
    "\"lastState\":{\"terminated\":{\"exitCode\":137,\"reason\":\"OOMKilled\",\"finishedAt\":"
    "\"2026-01-05T10:05:00Z\"}}},"
    "{\"name\":\"side\",\"state\":{\"running\":{}}}]}}";

static void test_meta_oom(void **state)
{
    struct dd_pod_meta m;
    char err[256] = "";
    json_t *j = load(POD_OOM);
    (void)state;

    assert_int_equal(dd_pod_meta_from_json(j, &m, err, sizeof(err)), 0);
    assert_string_equal(m.uid, "0b5e-uid");
    assert_string_equal(m.ns, "ml-team");
    assert_string_equal(m.node, "gpu-b");
    assert_string_equal(m.owner_kind, "Deployment");
    assert_string_equal(m.owner_name, "trainer");
    assert_string_equal(json_string_value(json_object_get(m.annotations, "dedupd.io/framework")),
                        "pytorch");
    assert_null(json_object_get(m.annotations, "kubectl.kubernetes.io/last-applied-configuration"));
    /* cpu: 1.5 + 0.5 (+ sidecar 0) = 2 against the init's 4: 4 */
    assert_string_equal(json_string_value(json_object_get(m.requests, "cpu")), "4");
    /* memory: 2Gi + the sidecar's 1Mi */
    assert_string_equal(json_string_value(json_object_get(m.requests, "memory")), "2148532224");
    assert_string_equal(json_string_value(json_object_get(m.requests, "nvidia.com/gpu")), "1");
    /* every regular container and the sidecar limit memory: summed */
    assert_string_equal(json_string_value(json_object_get(m.limits, "memory")), "4296015872");
    /* only one limits the GPU: no pod-level limit */
    assert_null(json_object_get(m.limits, "nvidia.com/gpu"));
    assert_null(json_object_get(m.limits, "cpu"));
    /* the earlier OOM kill is the cause */
    assert_string_equal(m.reason, "OOMKilled");
    assert_int_equal(m.exit_code, 137);
    assert_near(m.started_at, 1767607200.0, 0);
    assert_near(m.finished_at, 1767607200.0 + 1200, 0);
    assert_false(m.terminal);

    /* the outcome: OOMKilled lets memory.peak raise the peak */
    struct dd_pod_usage u = {.first_seen = 1767607190,
                             .last_seen = 1767608390,
                             .reads = 5,
                             .peak_cpu_cores = 2.5,
                             .has_working_set = true,
                             .peak_working_set = 1u << 30,
                             .has_memory_peak = true,
                             .memory_peak = 3u << 30,
                             .has_io = true,
                             .read_bytes = 2400000000u,
                             .write_bytes = 120000000};
    snprintf(u.uid, sizeof(u.uid), "cgroup-uid");
    json_t *o = dd_pod_outcome_json(&u, &m, "gpu-b", NAN);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "pod_uid")), "0b5e-uid");
    assert_string_equal(json_string_value(json_object_get(o, "namespace")), "ml-team");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "owner"), "kind")),
                        "Deployment");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "owner"), "name")),
                        "trainer");
    assert_string_equal(json_string_value(json_object_get(o, "node")), "gpu-b");
    assert_near(json_number_value(json_object_get(o, "started_at")), 1767607200.0, 0);
    assert_near(json_number_value(json_object_get(o, "finished_at")), 1767608400.0, 0);
    assert_near(json_number_value(json_object_get(o, "peak_cpu_cores")), 2.5, 0);
    assert_near(json_number_value(json_object_get(o, "peak_memory_bytes")), (double)(3u << 30), 0);
    assert_near(json_number_value(json_object_get(o, "read_mbps")), 2.0, 1e-12);
    assert_near(json_number_value(json_object_get(o, "write_mbps")), 0.1, 1e-12);
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 137);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "OOMKilled");
    assert_null(json_object_get(o, "gpu_memory_bytes"));
    /* the body is what the placement role's POST /v1/observations takes */
    struct dd_rs_outcome *rs = test_calloc(1, sizeof(*rs));
    err[0] = 0;
    assert_int_equal(dd_rs_outcome_from_json(o, rs, err, sizeof(err)), 0);
    assert_string_equal(rs->pod_uid, "0b5e-uid");
    assert_string_equal(rs->owner_kind, "Deployment");
    assert_string_equal(rs->owner_name, "trainer");
    assert_string_equal(rs->reason, "OOMKilled");
    assert_int_equal(rs->exit_code, 137);
    assert_near(rs->target[DD_RS_MEMORY], (double)(3u << 30), 0);
    assert_near(rs->target[DD_RS_RUNTIME], 1200.0, 1e-9);
    assert_near(rs->pod.cpu_request, 4.0, 1e-9);
    test_free(rs);
    json_decref(o);

    /* not OOMKilled: the working set only (page cache is not counted) */
    snprintf(m.reason, sizeof(m.reason), "Completed");
    o = dd_pod_outcome_json(&u, &m, "gpu-b", 5e9);
    assert_near(json_number_value(json_object_get(o, "peak_memory_bytes")), (double)(1u << 30), 0);
    assert_near(json_number_value(json_object_get(o, "gpu_memory_bytes")), 5e9, 0);
    json_decref(o);

    /* no metadata: the cgroup's UID and figures, times from the reads */
    o = dd_pod_outcome_json(&u, NULL, "gpu-b", NAN);
    assert_string_equal(json_string_value(json_object_get(o, "pod_uid")), "cgroup-uid");
    assert_string_equal(json_string_value(json_object_get(o, "namespace")), "");
    assert_near(json_number_value(json_object_get(o, "finished_at")), 1767608390, 0);
    assert_near(json_number_value(json_object_get(o, "read_mbps")), 2.0, 1e-12);
    assert_null(json_object_get(o, "reason"));
    assert_null(json_object_get(o, "exit_code"));
    /* namespace "" and no owner: the node stores it but does not post it,
     * and the placement role would refuse it, naming the field */
    rs = test_calloc(1, sizeof(*rs));
    assert_int_equal(dd_rs_outcome_from_json(o, rs, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "namespace"));
    test_free(rs);
    json_decref(o);

    struct dd_pod_meta c;
    assert_int_equal(dd_pod_meta_copy(&m, &c), 0);
    dd_pod_meta_release(&m);
    assert_string_equal(json_string_value(json_object_get(c.requests, "cpu")), "4");
    dd_pod_meta_release(&c);
    json_decref(j);
}

static void test_meta_causes(void **state)
{
    static const struct {
        const char *status, *reason;
        int exit_code;
        bool terminal;
    } cases[] = {
        {"{\"phase\":\"Failed\",\"reason\":\"Evicted\",\"message\":\"low on memory\"}", "Evicted",
         DD_POD_EXIT_UNKNOWN, true},
        {"{\"phase\":\"Failed\",\"reason\":\"DeadlineExceeded\",\"containerStatuses\":[{\"state\":"
         "{\"terminated\":{\"exitCode\":137,\"reason\":\"Error\"}}}]}",
         "DeadlineExceeded", 137, true},
        {"{\"phase\":\"Succeeded\",\"containerStatuses\":[{\"state\":{\"terminated\":{\"exitCode\":"
         "0,"
         "\"reason\":\"Completed\"}}}]}",
         "Completed", 0, true},
        {"{\"phase\":\"Failed\",\"containerStatuses\":[{\"state\":{\"terminated\":{\"exitCode\":0}}"
         "},"
         "{\"state\":{\"terminated\":{\"exitCode\":3}}}]}",
         "Error", 3, true},
        /* a pod-level eviction of a pod already OOM killed: OOMKilled */
        {"{\"phase\":\"Failed\",\"reason\":\"Evicted\",\"containerStatuses\":[{\"state\":{"
         "\"terminated\":{\"exitCode\":137,\"reason\":\"OOMKilled\"}}}]}",
         "OOMKilled", 137, true},
        {"{\"phase\":\"Running\",\"containerStatuses\":[{\"state\":{\"running\":{}}}]}", "",
         DD_POD_EXIT_UNKNOWN, false},
        {"{}", "", DD_POD_EXIT_UNKNOWN, false},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        char text[2048], err[256] = "";
        struct dd_pod_meta m;
        snprintf(
            text, sizeof(text),
            "{\"metadata\":{\"uid\":\"u%zu\",\"name\":\"p\",\"namespace\":\"n\"},\"status\":%s}", i,
            cases[i].status);
        json_t *j = load(text);
        assert_int_equal(dd_pod_meta_from_json(j, &m, err, sizeof(err)), 0);
        assert_string_equal(m.reason, cases[i].reason);
        assert_int_equal(m.exit_code, cases[i].exit_code);
        assert_int_equal(m.terminal, cases[i].terminal);
        /* no controller: owner unknown */
        assert_string_equal(m.owner_kind, "");
        dd_pod_meta_release(&m);
        json_decref(j);
    }
}

static void test_meta_owner(void **state)
{
    char n[64];
    (void)state;
    assert_true(dd_pod_owner_deployment("web-5d8f7c9b4", "5d8f7c9b4", n, sizeof(n)));
    assert_string_equal(n, "web");
    assert_true(dd_pod_owner_deployment("my-app-v2-7c4b9d6f58", NULL, n, sizeof(n)));
    assert_string_equal(n, "my-app-v2");
    assert_false(dd_pod_owner_deployment("web-5d8f7c9b4", "other", n, sizeof(n)));
    assert_false(dd_pod_owner_deployment("standalone-rs", NULL, n, sizeof(n))); /* 'a','e' */
    assert_false(dd_pod_owner_deployment("nodash", NULL, n, sizeof(n)));
    assert_false(dd_pod_owner_deployment("-5d8f7c9b4", NULL, n, sizeof(n)));

    /* a Job keeps its kind and name; a ReplicaSet of no Deployment too */
    json_t *j = load("{\"metadata\":{\"uid\":\"u\",\"ownerReferences\":[{\"kind\":\"Job\","
                     "\"name\":\"etl-28391\",\"controller\":true}]}}");
    struct dd_pod_meta m;
    char err[256];
    assert_int_equal(dd_pod_meta_from_json(j, &m, err, sizeof(err)), 0);
    assert_string_equal(m.owner_kind, "Job");
    assert_string_equal(m.owner_name, "etl-28391");
    dd_pod_meta_release(&m);
    json_decref(j);
    j = load("{\"metadata\":{\"uid\":\"u\",\"ownerReferences\":[{\"kind\":\"ReplicaSet\","
             "\"name\":\"plain-rs\",\"controller\":true}]}}");
    assert_int_equal(dd_pod_meta_from_json(j, &m, err, sizeof(err)), 0);
    assert_string_equal(m.owner_kind, "ReplicaSet");
    assert_string_equal(m.owner_name, "plain-rs");
    dd_pod_meta_release(&m);
    json_decref(j);
}

static void test_meta_refused(void **state)
{
    static const struct {
        const char *pod, *err;
    } bad[] = {
        {"[]", "pod: expected an object"},
        {"{}", "metadata: missing"},
        {"{\"metadata\":{\"name\":\"p\"}}", "metadata.uid: missing"},
        {"{\"metadata\":{\"uid\":7}}", "metadata.uid: expected a string"},
        {"{\"metadata\":{\"uid\":\"u\"},\"spec\":{\"containers\":[{\"resources\":{\"requests\":"
         "{\"cpu\":\"2x\"}}}]}}",
         "spec.containers[0].resources.requests[cpu]: bad quantity '2x'"},
        {"{\"metadata\":{\"uid\":\"u\"},\"spec\":{\"initContainers\":[{},{\"resources\":{"
         "\"limits\":"
         "{\"memory\":true}}}]}}",
         "spec.initContainers[1].resources.limits[memory]: expected a quantity string"},
        {"{\"metadata\":{\"uid\":\"u\"},\"status\":{\"startTime\":\"yesterday\"}}",
         "status.startTime: 'yesterday' is not an RFC 3339 time"},
        {"{\"metadata\":{\"uid\":\"u\"},\"status\":{\"containerStatuses\":[{\"state\":{"
         "\"terminated\":"
         "{\"exitCode\":\"137\"}}}]}}",
         "status.containerStatuses[0].state.terminated.exitCode: expected a 32-bit integer"},
        {"{\"metadata\":{\"uid\":\"u\",\"annotations\":{\"a\":1}}}",
         "metadata.annotations[a]: expected a string"},
        {"{\"metadata\":{\"uid\":\"u\",\"ownerReferences\":{}}}",
         "metadata.ownerReferences: expected an array"},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        struct dd_pod_meta m = {.exit_code = 42};
        char err[256] = "";
        json_t *j = load(bad[i].pod);
        int r = dd_pod_meta_from_json(j, &m, err, sizeof(err));
        assert_true(r < 0);
        assert_int_equal(m.exit_code, 42); /* untouched */
        if (strcmp(err, bad[i].err) != 0)
            fail_msg("case %zu: '%s', expected '%s'", i, err, bad[i].err);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memstat),
        cmocka_unit_test_setup_teardown(test_tracker_tree, setup, teardown),
        cmocka_unit_test(test_meta_oom),
        cmocka_unit_test(test_meta_causes),
        cmocka_unit_test(test_meta_owner),
        cmocka_unit_test(test_meta_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
