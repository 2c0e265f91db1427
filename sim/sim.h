/*
 * The cluster simulator's own header (sim/: workload, engine, output,
 * main). A run is one policy over one generated cluster and pod list; the
 * engine drives the real placement library (placement/placer.h) for the
 * dedupd policies and the truth (sim/truth.h) for what really happens.
 */
#ifndef DD_SIM_SIM_H
#define DD_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "placement/admission.h"
#include "placement/rightsize.h"
#include "sim/truth.h"

enum sim_policy {
    SIM_P_DEFAULT,
    SIM_P_BINPACK,
    SIM_P_CAPACITY,
    SIM_P_TARGETLOAD,
    SIM_P_DEDUPD,
    SIM_P_DEDUPD_NO_LEDGER,
    SIM_P_DEDUPD_STALE,
    SIM_P_ORACLE,
    SIM_P_DEDUPD_PRIOR, /* sanity: the prior only, never trained */
    SIM_P_COUNT
};
extern const char *const sim_policy_names[SIM_P_COUNT];
#define SIM_P_FIXED 8 /* the fixed interface's policies come first */

enum sim_phase { SIM_STAGE, SIM_LOAD, SIM_RUN, SIM_PHASES };

struct sim_workload {
    const char *name;
    int gpu_options[4];
    double run_s_min, run_s_max;
    double stage_mb, stage_write_mbps, stage_dup;
    double load_mb, load_mbps;
    double read_mbps_per_gpu, write_mbps, dup_share;
    double gpu_mem_gib, claim_gib, weight;
};
extern const struct sim_workload sim_workloads[];
extern const size_t sim_n_workloads;

struct sim_phase_io {
    double nominal_s, read_mbps, write_mbps, dup_share, sensitivity;
};

struct sim_pod {
    uint32_t id, workload, group;
    char uid[16], name[48]; /* the pod's Kubernetes UID and name */
    int gpus;
    double cpu, mem_gib, arrival_s, claim_bytes;
    struct sim_phase_io phase[SIM_PHASES];
    bool annotated;
    double ann_read, ann_write, ann_dup;
    /* the owner (a Deployment for a burst, else one of a few recurring
     * Jobs of its workload) and what the user asked (requests = limits) */
    uint32_t owner;
    double cpu_asked, mem_asked_gib;
    /* per run */
    unsigned attempt;             /* OOM kills so far (each rerun is a new pod) */
    bool oom;                     /* this attempt's peak passes its memory limit */
    bool failed;                  /* the Job's backoffLimit ran out */
    double mem_limit_gib;         /* this attempt's memory limit */
    double cpu_limit;             /* this attempt's CPU limit (NaN: none; not enforced) */
    struct dd_rs_live rs_live;    /* the live state at its admission (right-sizing) */
    double use_cpu, use_peak_cpu; /* the truth: mean and peak cores of this attempt */
    double use_mem_gib;           /* the truth: this attempt's peak memory */
    double run_start_s;           /* this attempt's bind */
    double oom_at;                /* share of the run phase where its peak comes */
    double busy_at_bind;          /* busy_gpu_s when this attempt was bound */
    double lost_gpu_s;            /* GPU computing lost to OOM-killed attempts */
    double cpu_req_s, cpu_use_s;  /* core-seconds requested and used while bound */
    double mem_req_s, mem_use_s;  /* GiB-seconds requested and peak-used while bound */
    int node;
    int cur;
    double left; /* nominal seconds left in the phase */
    double rate, jitter;
    double start_s, finish_s;
    double alloc_gpu_s, busy_gpu_s;
    double io_read_mb, io_write_mb; /* since the node's last report */
};

struct sim_node_static {
    char name[32];
    int gpus;
    double cores, mem_gib, phys_bytes;
    struct sim_truth_node truth;
};

/* One experiment's setting. */
struct sim_config {
    const char *experiment;
    uint64_t seed;
    unsigned seeds;
    size_t nodes, pods;
    const char *truth_name, *truth_path, *out;
    double interval_s;
    bool dedup_pools;
    double bg_share;    /* share of nodes with background load */
    double bg_cpu;      /* their background CPU share of cores */
    double bg_io;       /* their background I/O share of device bandwidth */
    double gpu_load;    /* offered GPU load over the arrival span */
    double burst_share; /* share of pods arriving in deployments */
    double train_first_s, train_every_s;
    double extender_weight;
    double score_scale; /* dedupd's scale_percent (0: its default) */
    bool timeseries;
    bool quiet;
    double request_inflation;     /* users' CPU and memory requests x this (1: as generated) */
    bool rightsize;               /* this setting's runs right-size (placement/rightsize.h) */
    struct dd_adm_options rs_adm; /* the webhook's rewrite options (placement/admission.h) */
    unsigned rs_every;            /* retrain after this many outcomes */
    unsigned policy_mask;         /* bit per policy to run */
};

struct sim_cluster {
    size_t n_nodes, n_pods;
    struct sim_node_static *nodes;
    struct sim_pod *pods; /* by arrival */
    double total_gpus;
};

int sim_generate(const struct sim_config *c, const struct sim_truth *t, uint64_t seed,
                 struct sim_cluster *ret);
void sim_cluster_release(struct sim_cluster *c);

#define SIM_MAX_MODELS 8

struct sim_result {
    double makespan_s, mean_completion_s, p95_completion_s, gpu_idle_fraction,
        gpu_idle_fraction_all, frag_all_free, mean_deploy_s, mean_wait_s, mean_stretch,
        mean_candidates;
    double model_run_s[SIM_MAX_MODELS], model_completion_s[SIM_MAX_MODELS];
    size_t model_n[SIM_MAX_MODELS];
    size_t placed, scored_calls;
    double candidates_sum; /* feasible candidates over placements: the choice there was */
    /* the cost model against the truth (dedupd policies) */
    double model_mape_cost, model_mape_latency, prior_mape_cost, prior_mape_latency;
    bool served_xgb;
    unsigned trainings;
    /* where the time went (seconds) */
    double t_total, t_events, t_reports, t_schedule, t_placement, t_train, t_oracle;
    /* packing and right-sizing (every run; the rs_* figures only when it right-sizes) */
    double gpu_allocated_share, gpu_computing_share; /* over all GPUs and the makespan */
    double waiting_gpus_free;                        /* pods waiting while their GPUs are free */
    double cpu_requested_over_used, mem_requested_over_used;
    size_t oom_kills, oom_raised, failed_pods;
    size_t rs_admitted, rs_rewritten, rs_from_model, rs_from_history, rs_trainings;
    size_t rs_clamped;               /* rewritten requests above the largest node, cut to it */
    double rs_cpu_mape, rs_mem_mape; /* admitted predictions against the truth's peaks, % */
    double t_rightsize;
};

/* Timeseries rows (when c->timeseries): t, policy, allocated, busy, memory. */
struct sim_series {
    FILE *f;
    uint64_t seed;
};

int sim_run(const struct sim_config *c, const struct sim_truth *t, const struct sim_cluster *cl,
            enum sim_policy p, uint64_t seed, struct sim_series *ts, struct sim_result *ret);

/* Deterministic randomness: a counter-based generator (splitmix64), so a
 * draw depends on its key, not on the draws before it (policies see the
 * same bursts and noise). */
uint64_t sim_mix(uint64_t x);
double sim_u01(uint64_t key);
double sim_normal(uint64_t key);

struct sim_rng {
    uint64_t s;
};
double sim_rng_u01(struct sim_rng *r);

#endif
