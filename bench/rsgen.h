/*
 * Synthetic pod outcomes with a KNOWN relation between a pod's static
 * description and what it uses, for the right-sizing tests and benchmarks
 * (README, "Right-sizing": what it is). Deterministic: outcome i of a seed
 * is always the same. The form is multiplicative with power laws, a
 * saturating GPU-memory curve, per-owner random effects and log-normal
 * noise, which axis-aligned trees can only approximate step by step:
 *
 *   peak_cpu_cores  = c^0.75 * Fcpu[framework] * Wcpu[workload] * (1 + 0.3 u) * e_cpu * n
 *   peak_memory     = (1 GiB + 0.6 GiB * sqrt(c) + host[workload] * P) * e_mem * n
 *   gpu_memory      = g * 80 GiB * (1 - exp(-bpp[workload] * P / (g * 40 GiB))) * e_gpu * n
 *                     (0 without GPUs)
 *   read_mbps       = 40 * sqrt(c) * Wread[workload] * e_io * n / (1 + u)
 *   write_mbps      = read_mbps * Wwrite[workload] * n
 *   run_seconds     = 300 * Wrun[workload] * (1 + P / 1e9)^0.35 / max(g, 1)^0.7 * e_run * n
 *
 * c: the CPU request (cores), g: GPUs, P: the model's parameters, u: the
 * live CPU utilisation of the top nodes (0.1..0.9), e_x: the owner's
 * random effect exp(N(0, 0.25^2)) per target, n: per-run noise
 * exp(N(0, 0.04^2)). An owner (a Deployment or Job) keeps its framework,
 * model, workload, requests and effects; a run whose peak memory passes
 * its limit is OOMKilled (its recorded peak is the limit).
 */
#ifndef DD_BENCH_RSGEN_H
#define DD_BENCH_RSGEN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct dd_rsgen {
    uint64_t seed;
    size_t owners; /* distinct workloads (default 120) */
    double noise;  /* per-run log-normal sigma (default 0.04) */
    double effect; /* per-owner log-normal sigma (default 0.25) */
    double start;  /* Unix seconds of outcome 0 (default 1.7e9) */
};

void dd_rsgen_init(struct dd_rsgen *g, uint64_t seed);

/* Outcome i as a POST /v1/observations body (a new reference). */
json_t *dd_rsgen_outcome(const struct dd_rsgen *g, size_t i);

/* The true (noise-free) value of target t ("peak_cpu_cores", ...) of
 * outcome i, for checks of the generator itself. */
double dd_rsgen_truth(const struct dd_rsgen *g, size_t i, const char *target);

#endif
