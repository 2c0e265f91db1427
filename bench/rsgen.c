/*
 * The synthetic outcome generator (rsgen.h): owners drawn from the seed,
 * runs drawn from (seed, index), every figure from the documented formulas.
 * Used by tests (test-rightsize, test-rightsize-daemon) and bench
 * (rightsize-gen, rightsize-train); never by the daemon.
 */
#define _GNU_SOURCE
#include "bench/rsgen.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define GIB 1073741824.0

static const struct fw {
    const char *name, *image;
    double cpu;
    int workload; /* fixed: 0 training, 1 inference, 2 preprocessing; -1 either */
} frameworks[] = {
    {"pytorch", "pytorch/pytorch:2.1.0-cuda12.1", 1.0, -1},
    {"tensorflow", "tensorflow/tensorflow:2.14.0-gpu", 1.2, -1},
    {"jax", "ghcr.io/nvidia/jax:23.10", 0.8, 0},
    {"vllm", "vllm/vllm-openai:v0.2.1", 0.6, 1},
    {"triton", "nvcr.io/nvidia/tritonserver:23.10-py3", 0.5, 1},
    {"spark", "apache/spark:3.5.0", 1.6, 2},
};
static const char *const workloads[] = {"training", "inference", "preprocessing"};
static const double w_cpu[] = {1.0, 0.5, 1.4}, w_read[] = {2.0, 0.5, 4.0},
                    w_write[] = {0.1, 0.02, 0.6}, w_run[] = {8.0, 2.0, 3.0},
                    w_host[] = {2.0, 1.0, 0.2}, w_bpp[] = {16.0, 2.2, 0.0};
static const struct model {
    const char *name;
    double params;
} models[] = {
    {"resnet50", 25.6e6},  {"ssd-mobilenet", 6.8e6}, {"unet3d", 19e6},
    {"bert-large", 340e6}, {"llama-2-7b", 6.7e9},    {"llama-2-13b", 13e9},
};
static const double cpus[] = {1, 2, 4, 8, 16};
static const double gpus[] = {0, 1, 2, 4, 8};
static const char *const kinds[] = {"ReplicaSet", "Job", "StatefulSet"};

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

struct rng {
    uint64_t s;
};

static double uni(struct rng *r)
{
    r->s = mix(r->s);
    return ((double)(r->s >> 11) + 0.5) / 9007199254740992.0;
}

static size_t pick(struct rng *r, size_t n)
{
    size_t k = (size_t)(uni(r) * (double)n);
    return k < n ? k : n - 1;
}

static double gauss(struct rng *r)
{
    double a = uni(r), b = uni(r);
    return sqrt(-2.0 * log(a)) * cos(2.0 * M_PI * b);
}

void dd_rsgen_init(struct dd_rsgen *g, uint64_t seed)
{
    g->seed = seed;
    g->owners = 120;
    g->noise = 0.04;
    g->effect = 0.25;
    g->start = 1.7e9;
}

struct owner {
    size_t fw, model, workload, kind, id;
    double cpu, gpus, mem_limit, effect[6];
};

static void owner_of(const struct dd_rsgen *g, size_t j, struct owner *o)
{
    struct rng r = {mix(g->seed * 1000003u + j)};
    o->id = j;
    o->fw = pick(&r, sizeof(frameworks) / sizeof(frameworks[0]));
    o->workload =
        frameworks[o->fw].workload >= 0 ? (size_t)frameworks[o->fw].workload : pick(&r, 2);
    o->model = o->workload == 2 ? pick(&r, 3) : pick(&r, sizeof(models) / sizeof(models[0]));
    o->kind = o->workload == 0 ? 1 : o->workload == 1 ? (pick(&r, 4) == 0 ? 2 : 0) : 1;
    o->cpu = cpus[pick(&r, 5)];
    o->gpus = o->workload == 2 ? 0 : gpus[1 + pick(&r, 4)];
    for (int t = 0; t < 6; t++)
        o->effect[t] = exp(g->effect * gauss(&r));
    /* limits sized with headroom most owners keep */
    double p = models[o->model].params;
    double mem = (GIB + 0.6 * GIB * sqrt(o->cpu) + w_host[o->workload] * p) * o->effect[1];
    o->mem_limit = ceil(mem * (1.15 + 0.6 * uni(&r)) / (64.0 * 1048576.0)) * 64.0 * 1048576.0;
}

/* the six targets of run i; noise off gives the truth */
static void compute(const struct dd_rsgen *g, size_t i, bool noisy, struct owner *o, double *util,
                    double y[6], double *t0)
{
    struct rng r = {mix(mix(g->seed) ^ (i * 0x632be59bd9b4e019ull + 1))};
    double n[6], p, c, gp;
    owner_of(g, pick(&r, g->owners ? g->owners : 1), o);
    *util = 0.1 + 0.8 * uni(&r);
    for (int t = 0; t < 6; t++)
        n[t] = noisy ? exp(g->noise * gauss(&r)) : 1.0;
    p = models[o->model].params;
    c = o->cpu;
    gp = o->gpus;
    y[0] = pow(c, 0.75) * frameworks[o->fw].cpu * w_cpu[o->workload] * (1 + 0.3 * *util) *
           o->effect[0] * n[0];
    y[1] = (GIB + 0.6 * GIB * sqrt(c) + w_host[o->workload] * p) * o->effect[1] * n[1];
    y[2] = gp > 0 ? gp * 80 * GIB * (1 - exp(-w_bpp[o->workload] * p / (gp * 40 * GIB))) *
                        o->effect[2] * n[2]
                  : 0;
    y[3] = 40 * sqrt(c) * w_read[o->workload] * o->effect[3] * n[3] / (1 + *util);
    y[4] = y[3] * w_write[o->workload] * n[4];
    y[5] = 300 * w_run[o->workload] * pow(1 + p / 1e9, 0.35) / pow(gp > 1 ? gp : 1, 0.7) *
           o->effect[5] * n[5];
    *t0 = g->start + 60.0 * (double)i;
}

double dd_rsgen_truth(const struct dd_rsgen *g, size_t i, const char *target)
{
    static const char *const names[] = {"peak_cpu_cores", "peak_memory_bytes", "gpu_memory_bytes",
                                        "read_mbps",      "write_mbps",        "run_seconds"};
    struct owner o;
    double y[6], u, t0;
    compute(g, i, false, &o, &u, y, &t0);
    for (int t = 0; t < 6; t++) {
        if (strcmp(names[t], target) == 0)
            return y[t];
    }
    return NAN;
}

json_t *dd_rsgen_outcome(const struct dd_rsgen *g, size_t i)
{
    struct owner o;
    double y[6], u, t0;
    char uid[64], name[96], cpu[32], mem[32], gpu[16], pred[160];
    bool oom;

    compute(g, i, true, &o, &u, y, &t0);
    oom = y[1] > o.mem_limit;
    snprintf(uid, sizeof(uid), "%016llx-%zu", (unsigned long long)g->seed, i);
    if (o.kind == 0)
        snprintf(name, sizeof(name), "%s-%s-%zu-7c9d5b%zu4", frameworks[o.fw].name,
                 models[o.model].name, o.id, i / 500 % 10); /* a rollout every 500 runs */
    else
        snprintf(name, sizeof(name), "%s-%s-%zu", frameworks[o.fw].name, models[o.model].name,
                 o.id);
    snprintf(cpu, sizeof(cpu), "%g", o.cpu);
    snprintf(mem, sizeof(mem), "%.0f", o.mem_limit / 1.25);
    snprintf(gpu, sizeof(gpu), "%g", o.gpus);
    snprintf(pred, sizeof(pred),
             "{\"live\": {\"top_cpu_util\": %.4f, \"top_slowdown_pct\": %.2f, \"n_nodes\": 3}}", u,
             20.0 * u);
    json_t *req = json_pack("{s:s, s:s}", "cpu", cpu, "memory", mem);
    json_t *lim = json_pack("{s:s, s:s}", "cpu", cpu, "memory", "");
    char ml[32];
    snprintf(ml, sizeof(ml), "%.0f", o.mem_limit);
    json_object_set_new(lim, "memory", json_string(ml));
    if (o.gpus > 0) {
        json_object_set_new(req, "nvidia.com/gpu", json_string(gpu));
        json_object_set_new(lim, "nvidia.com/gpu", json_string(gpu));
    }
    json_t *ann = json_pack("{s:s, s:s, s:s}", "dedupd.io/framework", frameworks[o.fw].name,
                            "dedupd.io/model", models[o.model].name, "dedupd.io/workload",
                            workloads[o.workload]);
    if (i % 2) /* half the pods were admitted through the webhook */
        json_object_set_new(ann, "dedupd.io/rightsize-prediction", json_string(pred));
    return json_pack("{s:s, s:s, s:{s:s, s:s}, s:o, s:o, s:o, s:s, s:s, s:f, s:f, s:f, s:f, "
                     "s:f, s:f, s:f, s:i, s:s}",
                     "pod_uid", uid, "namespace", "ml", "owner", "kind", kinds[o.kind], "name",
                     name, "annotations", ann, "requests", req, "limits", lim, "node", "gpu-node-1",
                     "image", frameworks[o.fw].image, "started_at", t0, "finished_at", t0 + y[5],
                     "peak_cpu_cores", y[0], "peak_memory_bytes", oom ? o.mem_limit : y[1],
                     "gpu_memory_bytes", y[2], "read_mbps", y[3], "write_mbps", y[4], "exit_code",
                     oom ? 137 : 0, "reason", oom ? "OOMKilled" : "Completed");
}
