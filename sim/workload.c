/*
 * Workloads and the generated cluster: nodes (GPUs, cores, memory, the
 * truth's hidden figures) and pods (profiles modelled on the thesis'
 * MLPerf workloads and further inference and fine-tuning pods), arriving in
 * deployments (bursts) and a steady Poisson stream. Everything is drawn
 * from the seed alone, so every policy sees the same cluster and pods.
 *
 * Per pod, three phases: stage (write the dataset or model copy into the
 * claim; data that dedups), load (read the model; the GPU waits), run
 * (the GPU computes while the input pipeline reads and checkpoints write).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "sim/sim.h"

/* name, GPUs, run s, stage MB @ MB/s dup, load MB @ MB/s, run read/GPU,
 * write, dup, GPU GiB/GPU, claim GiB, weight */
const struct sim_workload sim_workloads[] = {
    /* KiTS19 3D volumes: the heaviest input pipeline (thesis Fig 1) */
    {"3d-unet", {1, 2, 4, 0}, 1200, 2400, 30000, 600, 0.7, 200, 800, 250, 10, 0.3, 30, 100, 3},
    /* COCO detection */
    {"ssd-mobilenet", {1, 2, 0, 0}, 600, 1500, 20000, 500, 0.7, 100, 800, 180, 5, 0.3, 12, 50, 3},
    /* ImageNet, read in place (no staging) */
    {"resnet-50", {1, 2, 4, 0}, 1800, 3600, 0, 0, 0, 100, 800, 150, 10, 0.3, 20, 150, 3},
    /* inference: a model load, little input */
    {"bert-infer", {1, 0, 0, 0}, 300, 900, 0, 0, 0, 1300, 1000, 20, 2, 0.2, 8, 10, 2},
    /* LLM serving: a model copy (shared base weights dedup) then its load */
    {"llm-infer", {1, 2, 4, 0}, 600, 1800, 13000, 1000, 0.9, 13000, 1500, 30, 5, 0.5, 40, 30, 2},
    /* LLM fine-tuning: checkpoints of successive versions share blocks */
    {"llm-finetune",
     {2, 4, 0, 0},
     2400,
     4800,
     13000,
     800,
     0.9,
     13000,
     1500,
     300,
     150,
     0.6,
     70,
     200,
     1},
};
const size_t sim_n_workloads = sizeof(sim_workloads) / sizeof(sim_workloads[0]);

uint64_t sim_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

double sim_u01(uint64_t key)
{
    return ((double)(sim_mix(key) >> 11) + 0.5) / 9007199254740992.0;
}

double sim_normal(uint64_t key)
{
    double u1 = sim_u01(key), u2 = sim_u01(key ^ 0x5851f42d4c957f2dULL);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

double sim_rng_u01(struct sim_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return sim_u01(r->s);
}

static double uniform(struct sim_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * sim_rng_u01(r);
}

static double lognormal(struct sim_rng *r, double sigma)
{
    double u1 = sim_rng_u01(r), u2 = sim_rng_u01(r);
    return exp(sigma * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2) - sigma * sigma / 2);
}

static size_t pick_workload(struct sim_rng *r)
{
    double sum = 0, x;
    for (size_t i = 0; i < sim_n_workloads; i++)
        sum += sim_workloads[i].weight;
    x = sim_rng_u01(r) * sum;
    for (size_t i = 0; i < sim_n_workloads; i++) {
        if (x < sim_workloads[i].weight)
            return i;
        x -= sim_workloads[i].weight;
    }
    return sim_n_workloads - 1;
}

static int pick_gpus(struct sim_rng *r, const struct sim_workload *w)
{
    int n = 0;
    while (n < 4 && w->gpu_options[n])
        n++;
    return w->gpu_options[(size_t)(sim_rng_u01(r) * n) % (size_t)n];
}

static void make_pod(const struct sim_truth *t, struct sim_rng *r, size_t wi, int gpus,
                     double inflation, struct sim_pod *p)
{
    const struct sim_workload *w = &sim_workloads[wi];
    memset(p, 0, sizeof(*p));
    p->workload = (uint32_t)wi;
    p->gpus = gpus;
    /* what users ask (requests = limits): 6 cores and 48 GiB per GPU, times
     * --request-inflation (over-asking: the right-sizing experiments) */
    p->cpu = p->cpu_asked = 6.0 * gpus * inflation;
    p->mem_gib = p->mem_asked_gib = 48.0 * gpus * inflation;
    p->claim_bytes = w->claim_gib * 1073741824.0;
    p->phase[SIM_STAGE] =
        (struct sim_phase_io){w->stage_write_mbps > 0 ? w->stage_mb / w->stage_write_mbps : 0, 0,
                              w->stage_write_mbps, w->stage_dup, 1};
    p->phase[SIM_LOAD] = (struct sim_phase_io){w->load_mb / w->load_mbps, w->load_mbps, 0, 0, 1};
    p->phase[SIM_RUN] =
        (struct sim_phase_io){uniform(r, w->run_s_min, w->run_s_max), w->read_mbps_per_gpu * gpus,
                              w->write_mbps, w->dup_share, sim_truth_sensitivity(t, w->name)};
    /* the annotation a user writes: the run phase's rates, biased */
    p->annotated = sim_rng_u01(r) >= t->unannotated_share;
    p->ann_read =
        p->phase[SIM_RUN].read_mbps * t->annotation_bias * lognormal(r, t->annotation_sigma);
    p->ann_write =
        p->phase[SIM_RUN].write_mbps * t->annotation_bias * lognormal(r, t->annotation_sigma);
    p->ann_dup = w->dup_share;
    p->node = -1;
}

int sim_generate(const struct sim_config *c, const struct sim_truth *t, uint64_t seed,
                 struct sim_cluster *ret)
{
    struct sim_rng r = {sim_mix(seed * 7919 + 17)};
    struct sim_cluster cl = {0};
    double gpu_work = 0;

    cl.n_nodes = c->nodes;
    cl.n_pods = c->pods;
    cl.nodes = dd_calloc(c->nodes, sizeof(*cl.nodes));
    cl.pods = dd_calloc(c->pods ? c->pods : 1, sizeof(*cl.pods));
    if (!cl.nodes || !cl.pods) {
        sim_cluster_release(&cl);
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->nodes; i++) {
        struct sim_node_static *n = &cl.nodes[i];
        snprintf(n->name, sizeof(n->name), "gpu-%05zu", i);
        n->gpus = sim_rng_u01(&r) < 0.5 ? 8 : 4;
        n->cores = n->gpus == 8 ? 64 : 32;
        n->mem_gib = n->gpus == 8 ? 1024 : 512;
        n->phys_bytes = (n->gpus == 8 ? 8.0 : 4.0) * 1099511627776.0;
        n->truth.cores = n->cores;
        n->truth.device_mbps = uniform(&r, t->device_mbps_min, t->device_mbps_max);
        n->truth.hidden = lognormal(&r, t->hidden_sigma);
        n->truth.index_entries = exp(uniform(&r, log(2e5), log(2e7)));
        n->truth.compression = sim_rng_u01(&r) < 0.5;
        n->truth.dedup = c->dedup_pools;
        if (sim_rng_u01(&r) < c->bg_share) {
            n->truth.bg_cpu_cores = c->bg_cpu * n->cores;
            n->truth.bg_io_mbps = c->bg_io * n->truth.device_mbps;
        }
        cl.total_gpus += n->gpus;
    }
    /* pods: deployments (a burst of one workload) and a steady stream */
    for (size_t i = 0; i < c->pods;) {
        bool burst = sim_rng_u01(&r) < c->burst_share;
        size_t wi = pick_workload(&r);
        int gpus = pick_gpus(&r, &sim_workloads[wi]);
        size_t k = burst ? 2 + (size_t)(sim_rng_u01(&r) * 7) : 1; /* 2..8 replicas */
        for (size_t j = 0; j < k && i < c->pods; j++, i++) {
            make_pod(t, &r, wi, gpus, c->request_inflation > 0 ? c->request_inflation : 1,
                     &cl.pods[i]);
            cl.pods[i].group = (uint32_t)(burst ? i - j : i);
            /* the owner: one of 3 Deployments (bursts: every rollout of
             * one shares its history) or 3 recurring Jobs (single pods)
             * per workload, drawn by a hash (the stream above is
             * untouched) */
            cl.pods[i].owner = (burst ? 0 : 0x80000000u) | (uint32_t)(wi << 8) |
                               (uint32_t)(sim_mix(seed * 131 + (burst ? i - j : i)) % 3);
            double nominal = 0;
            for (int ph = 0; ph < SIM_PHASES; ph++)
                nominal += cl.pods[i].phase[ph].nominal_s;
            gpu_work += nominal * gpus;
        }
    }
    /* the arrival span that offers gpu_load of the cluster's GPUs */
    double span = gpu_work / (c->gpu_load * cl.total_gpus);
    double mean_gap = span / (double)(c->pods ? c->pods : 1), now = 0;
    for (size_t i = 0; i < c->pods; i++) {
        struct sim_pod *p = &cl.pods[i];
        if (p->group != i) { /* the rest of a deployment: within a few seconds */
            p->arrival_s = cl.pods[p->group].arrival_s + 0.2 * (double)(i - p->group);
        } else {
            now += -log(sim_rng_u01(&r)) * mean_gap;
            p->arrival_s = now;
        }
        p->id = (uint32_t)i;
        snprintf(p->uid, sizeof(p->uid), "pod-%06u", p->id);
        snprintf(p->name, sizeof(p->name), "%s-%06u", sim_workloads[p->workload].name, p->id);
    }
    /* deployments may overlap the next arrival: keep arrival order */
    for (size_t i = 1; i < c->pods; i++) {
        struct sim_pod x = cl.pods[i];
        size_t j = i;
        while (j > 0 && cl.pods[j - 1].arrival_s > x.arrival_s) {
            cl.pods[j] = cl.pods[j - 1];
            j--;
        }
        cl.pods[j] = x;
    }
    *ret = cl;
    return 0;
}

void sim_cluster_release(struct sim_cluster *c)
{
    dd_free(c->nodes);
    dd_free(c->pods);
    memset(c, 0, sizeof(*c));
}
