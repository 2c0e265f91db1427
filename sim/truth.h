/*
 * The cluster simulator's truth: what a node's storage really does with the
 * I/O its pods bring, and how much a pod's run stretches when its input I/O
 * is starved. The placement code never sees this relation: it sees only the
 * node reports the simulator samples from it (with noise and staleness) and
 * learns its cost model from them.
 *
 * Independence (checked by tests/sim/test-sim.sh): this file and truth.c
 * include nothing from placement/, dedupd/ or the VDO stats simulator, and
 * share no formula or coefficient with the cost model's prior, the stats
 * simulator or the scorer's what-if. Coefficients live in sim/truth.json,
 * each with its source beside it; the form differs from the prior's in
 * these stated ways:
 *   - VDO CPU per GiB written is a table over the duplicate share (and
 *     compression), interpolated, from the real dm-vdo series' phases,
 *     times a power law in index entries (the prior: a linear sum with a
 *     log2 term);
 *   - competing CPU load does not raise CPU-seconds per GiB; it lowers
 *     VDO's throughput through the calibration bench's measured load curve
 *     (a table; the prior: a 1 / (1 - L) divisor);
 *   - VDO's busiest single thread (the request queue) caps a volume's write
 *     rate whatever the cores (thread saturation);
 *   - duplicates cost backing-device reads: dm-vdo reads a candidate back
 *     to verify it before sharing it (verify reads);
 *   - the backing device and VDO's threads queue as multi-server queues
 *     (Sakasegawa's approximation, with burstiness in the arrival
 *     variability), and above saturation the delivered rate is the capacity;
 *   - every node has a hidden factor on its VDO cost that no report shows;
 *   - pods' I/O comes in bursts (a per-interval multiplicative jitter).
 * A pod's GPU run stretches by its sensitivity times (1 / delivered - 1):
 * sensitivities come from the thesis' 5-25 % stretch under an I/O
 * bottleneck. The scorer's slowdown figure is never used for run times.
 *
 * Pure: no I/O except sim_truth_load (the JSON file, through jansson).
 */
#ifndef DD_SIM_TRUTH_H
#define DD_SIM_TRUTH_H

#include <stdbool.h>
#include <stddef.h>

#define SIM_TRUTH_DUP_POINTS    3 /* duplicate shares of the VM series: 0, 0.5, 0.9 */
#define SIM_TRUTH_LOAD_POINTS   5 /* stress-ng 0, 25, 50, 75, 100 % */
#define SIM_TRUTH_MAX_WORKLOADS 16

struct sim_truth {
    char name[32];
    bool null_truth; /* dedup and contention cost nothing */
    /* VDO CPU-seconds per GiB written, on the VM's emulated CPU, at the
     * duplicate shares dup_points[], compression off and on */
    double dup_points[SIM_TRUTH_DUP_POINTS];
    double cost_off[SIM_TRUTH_DUP_POINTS], cost_on[SIM_TRUTH_DUP_POINTS];
    double emulation_factor;                       /* emulated CPU-seconds per native one */
    double index_ref_entries;                      /* index size at which the table holds */
    double index_exponent;                         /* cost x (E / ref)^exponent */
    double busiest_thread_share;                   /* share of VDO CPU in its busiest thread */
    double vdo_parallel_threads;                   /* threads that share VDO's CPU work */
    double load_points[SIM_TRUTH_LOAD_POINTS];     /* other CPU load share */
    double load_throughput[SIM_TRUTH_LOAD_POINTS]; /* VDO throughput, relative */
    double load_latency[SIM_TRUTH_LOAD_POINTS];    /* write latency, relative */
    double verify_read_per_dup;              /* device bytes read per duplicate byte written */
    double compressed_write_share;           /* device bytes per new byte, compression on */
    double latency_ms_off, latency_ms_on;    /* write latency, idle, per compression */
    double device_servers;                   /* backing device queue: parallel servers */
    double burst_cv;                         /* pods' demand jitter, coefficient of variation */
    double hidden_sigma;                     /* per-node hidden factor, lognormal sigma */
    double device_mbps_min, device_mbps_max; /* backing-device bandwidth range */
    double sensitivity_scale;                /* multiplies every workload's sensitivity */
    /* annotations against actual I/O */
    double annotation_bias, annotation_sigma, unannotated_share;
    /* observation: relative noise of reported figures */
    double report_noise;
    double plain_volume_cost_share; /* VDO CPU of a plain (no dedup) volume */
    /* I/O sensitivity of each workload's GPU run (sim/workload.c names) */
    size_t n_sensitivity;
    char sensitivity_name[SIM_TRUTH_MAX_WORKLOADS][32];
    double sensitivity[SIM_TRUTH_MAX_WORKLOADS];
    /* what a pod really uses on its node (right-sizing's truth), per
     * workload: peak CPU cores = (cpu_base + cpu_per_gpu x GPUs) and peak
     * memory GiB = (mem_base + mem_per_gpu x GPUs), each times the owner's
     * lognormal factor (owner_sigma: one per Deployment or Job, kept across
     * its runs) and a run's lognormal noise (run_sigma); a run spikes its
     * memory by spike_factor with probability spike_share (a long batch, a
     * bigger evaluation set). Mean CPU over the run: peak x cpu_mean_share. */
    size_t n_use;
    char use_name[SIM_TRUTH_MAX_WORKLOADS][32];
    double use_cpu_base[SIM_TRUTH_MAX_WORKLOADS], use_cpu_per_gpu[SIM_TRUTH_MAX_WORKLOADS];
    double use_mem_base[SIM_TRUTH_MAX_WORKLOADS], use_mem_per_gpu[SIM_TRUTH_MAX_WORKLOADS];
    double use_owner_sigma, use_run_sigma, use_spike_share, use_spike_factor, use_cpu_mean_share;
};

/* The sensitivity of workload name (0 when unknown). */
double sim_truth_sensitivity(const struct sim_truth *t, const char *name);

/* A pod's static description as the truth sees it, and the standard
 * normal draws (z_*) and the uniform one (u_spike) that make its owner and
 * its run (the caller's counter-based generator: the truth draws nothing
 * itself). The requests are not an input: what a pod uses does not change
 * when its requests are rewritten. */
struct sim_truth_pod {
    const char *workload; /* sim/workload.c's name */
    int gpus;
    double z_owner_cpu, z_owner_mem, z_run_cpu, z_run_mem, u_spike;
};

struct sim_truth_use {
    double peak_cpu_cores, mean_cpu_cores, peak_memory_gib;
};

/* What the pod uses; -ENOENT when the workload has no row in pod_use. */
int sim_truth_pod_use(const struct sim_truth *t, const struct sim_truth_pod *p,
                      struct sim_truth_use *ret);

/* What a node is, hidden or not. */
struct sim_truth_node {
    double cores;
    double device_mbps;   /* backing device bandwidth */
    double hidden;        /* hidden factor on VDO cost (1 = none) */
    double index_entries; /* UDS index entries */
    bool compression;
    bool dedup;          /* VDO dedup pool; false: plain volume */
    double bg_cpu_cores; /* background CPU load */
    double bg_io_mbps;   /* background device I/O */
};

/* The demands on a node's pool this moment (MB/s) and the pods' CPU. */
struct sim_truth_demand {
    double read_mbps, write_mbps, dup_write_mbps, cpu_cores;
};

/* What the node does with them. */
struct sim_truth_state {
    double delivered;   /* share of demanded I/O served, 0..1 */
    double cost;        /* VDO CPU-s per GiB written (native) */
    double latency_ms;  /* write latency */
    double vdo_cores;   /* VDO CPU in use */
    double device_util; /* backing device busy share (may pass 1 before capping) */
    double cpu_util_ex_vdo, cpu_psi, io_psi, run_queue;
};

/* Loads variant name ("default", "null", "alt1", "alt2") from the JSON file
 * (each variant: "from" a base variant plus the keys it changes). Returns
 * 0, or -EINVAL / -ENOENT with err naming the key or the variant. */
int sim_truth_load(const char *path, const char *name, struct sim_truth *ret, char *err,
                   size_t errlen);

void sim_truth_eval(const struct sim_truth *t, const struct sim_truth_node *n,
                    const struct sim_truth_demand *d, struct sim_truth_state *ret);

/* A pod's progress rate (nominal seconds per second) at delivered share f,
 * with I/O sensitivity s (0: GPU-bound, 1: every second waits on I/O). */
double sim_truth_progress(const struct sim_truth *t, double s, double f);

#endif
