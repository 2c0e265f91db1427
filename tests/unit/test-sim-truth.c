/*
 * sim/truth: the cluster simulator's truth, alone (no placement code). Its
 * variants load from sim/truth.json; the forms behave as sim/truth.h states:
 * an idle node delivers everything, more demand never delivers more, a
 * slower device or background I/O delivers less, duplicates cost device
 * reads on a dedup pool only, the null truth costs nothing, and a pod at
 * half its input stretches by its sensitivity; a pod's use (right-sizing's
 * truth) grows with its GPUs, follows its owner's and run's draws, spikes
 * when drawn to, and is unknown for a workload the truth lacks. Bad files
 * are refused naming the key.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "sim/truth.h"

static void truth_path(char *buf, size_t len)
{
    const char *src = getenv("DD_SOURCE_DIR");
    assert_non_null(src);
    snprintf(buf, len, "%s/sim/truth.json", src);
}

static void load(const char *name, struct sim_truth *t)
{
    char path[4096], err[256];
    truth_path(path, sizeof(path));
    int r = sim_truth_load(path, name, t, err, sizeof(err));
    if (r < 0)
        fail_msg("%s: %s", name, err);
}

static const struct sim_truth_node NODE = {.cores = 64,
                                           .device_mbps = 2000,
                                           .hidden = 1,
                                           .index_entries = 1e6,
                                           .compression = false,
                                           .dedup = true};

static void test_variants_load(void **state)
{
    static const char *const names[] = {"default", "null", "alt1", "alt2"};
    struct sim_truth t;
    (void)state;
    for (size_t i = 0; i < 4; i++) {
        load(names[i], &t);
        assert_string_equal(t.name, names[i]);
        assert_true(t.emulation_factor > 0);
        assert_true(sim_truth_sensitivity(&t, "3d-unet") > 0);
    }
    load("null", &t);
    assert_true(t.null_truth);
    load("alt2", &t); /* inherits from default, changes the devices */
    assert_true(t.device_mbps_max < 2000);
}

static void test_idle_and_monotone(void **state)
{
    struct sim_truth t;
    struct sim_truth_state st;
    (void)state;
    load("default", &t);
    struct sim_truth_demand d = {0};
    sim_truth_eval(&t, &NODE, &d, &st);
    assert_true(st.delivered > 0.999);
    double last = 1.0;
    for (double rd = 100; rd <= 6000; rd += 100) { /* more reads never deliver more */
        d = (struct sim_truth_demand){.read_mbps = rd, .write_mbps = 100, .dup_write_mbps = 50};
        sim_truth_eval(&t, &NODE, &d, &st);
        assert_true(st.delivered <= last + 1e-12);
        assert_true(st.delivered > 0);
        last = st.delivered;
    }
    assert_true(last < 0.5); /* three times the device: capped */
    /* a slower device, background I/O, background CPU: never more */
    d = (struct sim_truth_demand){.read_mbps = 1200, .write_mbps = 200, .dup_write_mbps = 100};
    sim_truth_eval(&t, &NODE, &d, &st);
    double base = st.delivered;
    struct sim_truth_node n = NODE;
    n.device_mbps = 1500;
    sim_truth_eval(&t, &n, &d, &st);
    assert_true(st.delivered < base);
    n = NODE;
    n.bg_io_mbps = 500;
    sim_truth_eval(&t, &n, &d, &st);
    assert_true(st.delivered < base);
    assert_true(st.io_psi > 0);
}

static void test_verify_reads_and_plain_pools(void **state)
{
    struct sim_truth t;
    struct sim_truth_state dup, uniq, plain;
    (void)state;
    load("default", &t);
    struct sim_truth_demand dd = {.write_mbps = 800, .dup_write_mbps = 720};
    struct sim_truth_demand du = {.write_mbps = 800, .dup_write_mbps = 0};
    sim_truth_eval(&t, &NODE, &dd, &dup);
    sim_truth_eval(&t, &NODE, &du, &uniq);
    /* a duplicate is read back to verify: as much device work as a new block */
    assert_true(fabs(dup.device_util - uniq.device_util) < 1e-9);
    /* and VDO spends more CPU per GiB on it (the VM series' +24 %) */
    assert_true(dup.cost > uniq.cost);
    struct sim_truth_node n = NODE;
    n.dedup = false;
    sim_truth_eval(&t, &n, &dd, &plain);
    assert_true(plain.cost < uniq.cost);
    /* a plain pool writes every block; a dedup pool reads each duplicate back
     * instead: at one verify read per duplicate, the same device bytes */
    assert_true(fabs(plain.device_util - dup.device_util) < 1e-9);
}

static void test_null_truth(void **state)
{
    struct sim_truth t;
    struct sim_truth_state st;
    (void)state;
    load("null", &t);
    struct sim_truth_demand d = {.read_mbps = 9000, .write_mbps = 3000, .dup_write_mbps = 1000};
    sim_truth_eval(&t, &NODE, &d, &st);
    assert_true(st.delivered == 1.0);
    assert_true(sim_truth_progress(&t, 0.25, 0.1) == 1.0);
}

static void test_progress(void **state)
{
    struct sim_truth t;
    (void)state;
    load("default", &t);
    /* a pod at half its input stretches by its sensitivity (thesis 5-25 %) */
    double s = sim_truth_sensitivity(&t, "3d-unet");
    assert_true(fabs(1 / sim_truth_progress(&t, s, 0.5) - (1 + s)) < 1e-9);
    assert_true(sim_truth_progress(&t, s, 1.0) == 1.0);
    assert_true(sim_truth_progress(&t, 1.0, 0.3) == 0.3); /* stage and load wait entirely */
    assert_true(sim_truth_progress(&t, 0, 0.3) == 1.0);
}

static void test_pod_use(void **state)
{
    static const char *const workloads[] = {"3d-unet",    "ssd-mobilenet", "resnet-50",
                                            "bert-infer", "llm-infer",     "llm-finetune"};
    struct sim_truth t;
    struct sim_truth_use u1, u4, hi, sp;
    (void)state;
    load("default", &t);
    for (size_t i = 0; i < 6; i++) {
        struct sim_truth_pod p = {workloads[i], 1, 0, 0, 0, 0, 0.99};
        assert_int_equal(sim_truth_pod_use(&t, &p, &u1), 0);
        p.gpus = 4;
        assert_int_equal(sim_truth_pod_use(&t, &p, &u4), 0);
        assert_true(u4.peak_cpu_cores > u1.peak_cpu_cores);
        assert_true(u4.peak_memory_gib > u1.peak_memory_gib);
        assert_true(u1.mean_cpu_cores < u1.peak_cpu_cores && u1.mean_cpu_cores > 0);
        p.z_owner_mem = 1; /* a hungrier owner */
        assert_int_equal(sim_truth_pod_use(&t, &p, &hi), 0);
        assert_true(hi.peak_memory_gib > u4.peak_memory_gib);
        assert_true(fabs(hi.peak_cpu_cores - u4.peak_cpu_cores) < 1e-9);
        p.z_owner_mem = 0;
        p.u_spike = 0; /* a run drawn to spike */
        assert_int_equal(sim_truth_pod_use(&t, &p, &sp), 0);
        assert_true(fabs(sp.peak_memory_gib / u4.peak_memory_gib - t.use_spike_factor) < 1e-9);
    }
    struct sim_truth_pod unknown = {"no-such-workload", 1, 0, 0, 0, 0, 0.5};
    assert_int_equal(sim_truth_pod_use(&t, &unknown, &u1), -ENOENT);
}

static void test_bad_files(void **state)
{
    static const struct {
        const char *json, *name, *want;
        int err;
    } cases[] = {
        {"{\"variants\": {\"default\": {\"emulation_factor\": \"x\"}}}", "default",
         "emulation_factor", -EINVAL},
        {"{\"variants\": {\"default\": {\"cost_off\": [1, 2]}}}", "default", "cost_off", -EINVAL},
        {"{\"variants\": {\"default\": {}}}", "nope", "nope", -ENOENT},
        {"{\"variants\": {\"a\": {\"from\": \"a\"}}}", "a", "nests", -EINVAL},
        {"{\"variants\": {\"default\": {}}}", "default", "missing or out of range", -EINVAL},
        {"not json", "default", "truth:", -EINVAL},
        {"{\"variants\": {\"default\": {\"pod_use\": {\"x\": {\"cpu_base\": 1}}}}}", "default",
         "pod_use.x.cpu_per_gpu", -EINVAL},
    };
    char dir[4096], path[4200], err[256];
    struct sim_truth t;
    (void)state;
    snprintf(dir, sizeof(dir), "%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(path, sizeof(path), "%s/test-sim-truth-%d.json", dir, (int)getpid());
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(cases[i].json, f);
        fclose(f);
        err[0] = 0;
        int r = sim_truth_load(path, cases[i].name, &t, err, sizeof(err));
        if (r != cases[i].err || !strstr(err, cases[i].want))
            fail_msg("case %zu: %d '%s', want %d '%s'", i, r, err, cases[i].err, cases[i].want);
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variants_load),
        cmocka_unit_test(test_idle_and_monotone),
        cmocka_unit_test(test_verify_reads_and_plain_pools),
        cmocka_unit_test(test_null_truth),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_pod_use),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
