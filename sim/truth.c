/*
 * The simulator's truth (truth.h): a node's storage under its pods' I/O,
 * and a pod's progress when its input is starved. Coefficients come from
 * sim/truth.json (sources beside each); this file holds only the forms.
 * Includes nothing of placement/, dedupd/ or the stats simulator.
 */
#include "sim/truth.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

/* Piecewise-linear interpolation of y over increasing x, flat outside. */
static double interp(const double *x, const double *y, size_t n, double v)
{
    if (!(v > x[0]))
        return y[0];
    for (size_t i = 1; i < n; i++) {
        if (v <= x[i]) {
            double w = (v - x[i - 1]) / (x[i] - x[i - 1]);
            return y[i - 1] + w * (y[i] - y[i - 1]);
        }
    }
    return y[n - 1];
}

/* Sakasegawa's M/G/c approximation: the response time over the service
 * time at per-server utilisation rho (capped below 1: above saturation the
 * rate is capped instead), c servers, arrival and service variability. */
static double queue_response(double rho, double c, double ca2, double cs2)
{
    if (!(rho > 0))
        return 1;
    if (rho > 0.97)
        rho = 0.97;
    double wq = (ca2 + cs2) / 2 * pow(rho, sqrt(2 * (c + 1)) - 1) / (c * (1 - rho));
    return 1 + wq;
}

#define SERVICE_CV2_DEVICE 0.5 /* NVMe service-time variability: mixed 4 KiB-1 MiB requests */
#define SERVICE_CV2_VDO    0.3 /* VDO per-block work is uniform (VM series sd/mean 0.05-0.2) */

void sim_truth_eval(const struct sim_truth *t, const struct sim_truth_node *n,
                    const struct sim_truth_demand *d, struct sim_truth_state *ret)
{
    struct sim_truth_state s = {0};
    double other = n->bg_cpu_cores + d->cpu_cores;
    double load = n->cores > 0 ? other / n->cores : 1;
    double u = d->write_mbps > 0 ? d->dup_write_mbps / d->write_mbps : 0;
    double write_gibps = d->write_mbps * 1e6 / 1073741824.0;

    if (load > 1)
        load = 1;
    s.cpu_util_ex_vdo = load;
    s.run_queue = other;
    if (t->null_truth) {
        s.delivered = 1;
        s.cost = 0.01;
        s.latency_ms = t->latency_ms_off;
        s.device_util = (d->read_mbps + d->write_mbps + n->bg_io_mbps) / n->device_mbps;
        *ret = s;
        return;
    }
    /* VDO CPU per GiB: the series' table, the index's power law, the
     * node's hidden factor; a plain volume does no hashing or lookups */
    double cost =
        interp(t->dup_points, n->compression ? t->cost_on : t->cost_off, SIM_TRUTH_DUP_POINTS, u) /
        t->emulation_factor;
    if (n->index_entries > 0 && t->index_ref_entries > 0)
        cost *= pow(n->index_entries / t->index_ref_entries, t->index_exponent);
    cost *= n->hidden;
    if (!n->dedup) {
        cost *= t->plain_volume_cost_share; /* the block map and journal only */
        u = 0;
    }
    double g = interp(t->load_points, t->load_throughput, SIM_TRUTH_LOAD_POINTS, load);
    double avail = n->cores - other;
    if (avail < 0.25)
        avail = 0.25;
    double par = t->vdo_parallel_threads < avail ? t->vdo_parallel_threads : avail;
    double cap_par = par / cost, cap_thread = 1 / (cost * t->busiest_thread_share);
    double cap = g * (cap_par < cap_thread ? cap_par : cap_thread);
    double rho_vdo = write_gibps / cap;

    /* the backing device: reads, new blocks (smaller when compressed),
     * verify reads of duplicates, background I/O */
    double new_mb = d->write_mbps * (1 - u) * (n->compression ? t->compressed_write_share : 1);
    double verify_mb = n->dedup ? d->write_mbps * u * t->verify_read_per_dup : 0;
    double traffic = d->read_mbps + new_mb + verify_mb + n->bg_io_mbps;
    double rho_dev = traffic / n->device_mbps;

    double ca2 = 1 + t->burst_cv * t->burst_cv;
    double r_dev = queue_response(rho_dev, t->device_servers, ca2, SERVICE_CV2_DEVICE);
    double r_vdo = queue_response(rho_vdo, t->vdo_parallel_threads, ca2, SERVICE_CV2_VDO);
    double rho = rho_dev > rho_vdo ? rho_dev : rho_vdo;
    double cap_share = rho > 1 ? 1 / rho : 1;
    /* the pods' own share of device traffic is what gets capped: background
     * I/O takes its part first */
    s.delivered = cap_share / (r_dev > r_vdo ? r_dev : r_vdo);
    s.cost = cost;
    s.vdo_cores = cost * write_gibps * cap_share;
    s.device_util = rho_dev;
    double lat_load = interp(t->load_points, t->load_latency, SIM_TRUTH_LOAD_POINTS, load);
    s.latency_ms = (n->compression ? t->latency_ms_on : t->latency_ms_off) * lat_load * r_dev *
                   (n->dedup ? n->hidden : 1);
    s.io_psi = 100 * (1 - 1 / r_dev) + (rho_dev > 1 ? 100 * (1 - 1 / rho_dev) : 0);
    if (s.io_psi > 100)
        s.io_psi = 100;
    s.cpu_psi = load > 0.7 ? 100 * (load - 0.7) / 0.3 : 0;
    s.run_queue = other + s.vdo_cores;
    *ret = s;
}

double sim_truth_progress(const struct sim_truth *t, double s, double f)
{
    if (t->null_truth || !(s > 0))
        return 1;
    if (s >= 1)
        return f;
    if (!(f > 0.001))
        f = 0.001;
    s *= t->sensitivity_scale;
    if (s > 1)
        s = 1;
    return 1 / (1 + s * (1 / f - 1));
}

int sim_truth_pod_use(const struct sim_truth *t, const struct sim_truth_pod *p,
                      struct sim_truth_use *ret)
{
    size_t i;
    for (i = 0; i < t->n_use; i++)
        if (strcmp(t->use_name[i], p->workload) == 0)
            break;
    if (i == t->n_use)
        return -ENOENT;
    double g = p->gpus > 0 ? p->gpus : 0;
    /* lognormal factors with mean 1 (the sigma^2 / 2 shift) */
    double so = t->use_owner_sigma, sr = t->use_run_sigma;
    double cpu = (t->use_cpu_base[i] + t->use_cpu_per_gpu[i] * g) *
                 exp(so * p->z_owner_cpu - so * so / 2) * exp(sr * p->z_run_cpu - sr * sr / 2);
    double mem = (t->use_mem_base[i] + t->use_mem_per_gpu[i] * g) *
                 exp(so * p->z_owner_mem - so * so / 2) * exp(sr * p->z_run_mem - sr * sr / 2);
    if (p->u_spike < t->use_spike_share)
        mem *= t->use_spike_factor;
    ret->peak_cpu_cores = cpu;
    ret->mean_cpu_cores = cpu * t->use_cpu_mean_share;
    ret->peak_memory_gib = mem;
    return 0;
}

double sim_truth_sensitivity(const struct sim_truth *t, const char *name)
{
    for (size_t i = 0; i < t->n_sensitivity; i++)
        if (strcmp(t->sensitivity_name[i], name) == 0)
            return t->sensitivity[i];
    return 0;
}

/* ---- the JSON file ---- */

static int get_num(json_t *o, const char *key, double *ret, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0; /* inherited */
    if (json_is_object(v))
        v = json_object_get(v, "value");
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        snprintf(err, errlen, "truth: %s: not a number (or {\"value\": n, \"source\": ...})", key);
        return -EINVAL;
    }
    *ret = json_number_value(v);
    return 0;
}

static int get_arr(json_t *o, const char *key, double *ret, size_t n, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (json_is_object(v))
        v = json_object_get(v, "value");
    if (!json_is_array(v) || json_array_size(v) != n) {
        snprintf(err, errlen, "truth: %s: want an array of %zu numbers", key, n);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_number(x)) {
            snprintf(err, errlen, "truth: %s[%zu]: not a number", key, i);
            return -EINVAL;
        }
        ret[i] = json_number_value(x);
    }
    return 0;
}

/* "pod_use": {"value": {WORKLOAD: {"cpu_base", "cpu_per_gpu", "mem_base_gib",
 * "mem_per_gpu_gib"}}, "source": ...}; a variant may change some rows. */
static int apply_use(json_t *o, struct sim_truth *t, char *err, size_t errlen)
{
    json_t *use = json_object_get(o, "pod_use");
    const char *k;
    json_t *row;
    if (!use)
        return 0;
    if (json_is_object(use) && json_object_get(use, "value"))
        use = json_object_get(use, "value");
    if (!json_is_object(use)) {
        snprintf(err, errlen, "truth: pod_use: want an object of workloads");
        return -EINVAL;
    }
    json_object_foreach(use, k, row)
    {
        static const char *const keys[] = {"cpu_base", "cpu_per_gpu", "mem_base_gib",
                                           "mem_per_gpu_gib"};
        double v[4];
        size_t i;
        if (!json_is_object(row) || strlen(k) >= sizeof(t->use_name[0])) {
            snprintf(err, errlen, "truth: pod_use.%s: want an object", k);
            return -EINVAL;
        }
        for (size_t j = 0; j < 4; j++) {
            json_t *x = json_object_get(row, keys[j]);
            if (!json_is_number(x) || !(json_number_value(x) >= 0)) {
                snprintf(err, errlen, "truth: pod_use.%s.%s: want a number >= 0", k, keys[j]);
                return -EINVAL;
            }
            v[j] = json_number_value(x);
        }
        for (i = 0; i < t->n_use; i++)
            if (strcmp(t->use_name[i], k) == 0)
                break;
        if (i == t->n_use) {
            if (i == SIM_TRUTH_MAX_WORKLOADS) {
                snprintf(err, errlen, "truth: pod_use: more than %d workloads",
                         SIM_TRUTH_MAX_WORKLOADS);
                return -EINVAL;
            }
            snprintf(t->use_name[i], sizeof(t->use_name[i]), "%s", k);
            t->n_use++;
        }
        t->use_cpu_base[i] = v[0];
        t->use_cpu_per_gpu[i] = v[1];
        t->use_mem_base[i] = v[2];
        t->use_mem_per_gpu[i] = v[3];
    }
    return 0;
}

static int apply(json_t *o, struct sim_truth *t, char *err, size_t errlen)
{
    struct {
        const char *key;
        double *p;
    } nums[] = {
        {"emulation_factor", &t->emulation_factor},
        {"index_ref_entries", &t->index_ref_entries},
        {"index_exponent", &t->index_exponent},
        {"busiest_thread_share", &t->busiest_thread_share},
        {"vdo_parallel_threads", &t->vdo_parallel_threads},
        {"verify_read_per_dup", &t->verify_read_per_dup},
        {"compressed_write_share", &t->compressed_write_share},
        {"latency_ms_off", &t->latency_ms_off},
        {"latency_ms_on", &t->latency_ms_on},
        {"device_servers", &t->device_servers},
        {"burst_cv", &t->burst_cv},
        {"hidden_sigma", &t->hidden_sigma},
        {"device_mbps_min", &t->device_mbps_min},
        {"device_mbps_max", &t->device_mbps_max},
        {"sensitivity_scale", &t->sensitivity_scale},
        {"annotation_bias", &t->annotation_bias},
        {"annotation_sigma", &t->annotation_sigma},
        {"unannotated_share", &t->unannotated_share},
        {"report_noise", &t->report_noise},
        {"plain_volume_cost_share", &t->plain_volume_cost_share},
        {"use_owner_sigma", &t->use_owner_sigma},
        {"use_run_sigma", &t->use_run_sigma},
        {"use_spike_share", &t->use_spike_share},
        {"use_spike_factor", &t->use_spike_factor},
        {"use_cpu_mean_share", &t->use_cpu_mean_share},
    };
    int r = 0;
    for (size_t i = 0; r == 0 && i < sizeof(nums) / sizeof(nums[0]); i++)
        r = get_num(o, nums[i].key, nums[i].p, err, errlen);
    if (r == 0)
        r = get_arr(o, "dup_points", t->dup_points, SIM_TRUTH_DUP_POINTS, err, errlen);
    if (r == 0)
        r = get_arr(o, "cost_off", t->cost_off, SIM_TRUTH_DUP_POINTS, err, errlen);
    if (r == 0)
        r = get_arr(o, "cost_on", t->cost_on, SIM_TRUTH_DUP_POINTS, err, errlen);
    if (r == 0)
        r = get_arr(o, "load_points", t->load_points, SIM_TRUTH_LOAD_POINTS, err, errlen);
    if (r == 0)
        r = get_arr(o, "load_throughput", t->load_throughput, SIM_TRUTH_LOAD_POINTS, err, errlen);
    if (r == 0)
        r = get_arr(o, "load_latency", t->load_latency, SIM_TRUTH_LOAD_POINTS, err, errlen);
    json_t *sens = json_object_get(o, "sensitivity");
    if (json_is_object(sens) && json_object_get(sens, "value"))
        sens = json_object_get(sens, "value");
    const char *k;
    json_t *x;
    json_object_foreach(sens, k, x)
    {
        size_t i;
        if (r < 0)
            break;
        if (!json_is_number(x) || strlen(k) >= sizeof(t->sensitivity_name[0])) {
            snprintf(err, errlen, "truth: sensitivity.%s: not a number", k);
            return -EINVAL;
        }
        for (i = 0; i < t->n_sensitivity; i++)
            if (strcmp(t->sensitivity_name[i], k) == 0)
                break;
        if (i == t->n_sensitivity) {
            if (i == SIM_TRUTH_MAX_WORKLOADS) {
                snprintf(err, errlen, "truth: sensitivity: more than %d workloads",
                         SIM_TRUTH_MAX_WORKLOADS);
                return -EINVAL;
            }
            snprintf(t->sensitivity_name[i], sizeof(t->sensitivity_name[i]), "%s", k);
            t->n_sensitivity++;
        }
        t->sensitivity[i] = json_number_value(x);
    }
    if (r == 0)
        r = apply_use(o, t, err, errlen);
    json_t *nt = json_object_get(o, "null_truth");
    if (r == 0 && nt)
        t->null_truth = json_is_true(nt);
    return r;
}

static int resolve(json_t *variants, const char *name, struct sim_truth *t, int depth, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(variants, name);
    if (!json_is_object(v)) {
        snprintf(err, errlen, "--truth: no variant '%s' in truth.json", name);
        return -ENOENT;
    }
    const char *from = json_string_value(json_object_get(v, "from"));
    if (from) {
        if (depth > 4) {
            snprintf(err, errlen, "truth: variant '%s': \"from\" nests too deep", name);
            return -EINVAL;
        }
        int r = resolve(variants, from, t, depth + 1, err, errlen);
        if (r < 0)
            return r;
    }
    return apply(v, t, err, errlen);
}

static bool sane(const struct sim_truth *t, char *err, size_t errlen)
{
    if (!(t->emulation_factor > 0) || !(t->busiest_thread_share > 0) ||
        !(t->vdo_parallel_threads >= 1) || !(t->device_servers >= 1) || !(t->device_mbps_min > 0) ||
        !(t->device_mbps_max >= t->device_mbps_min) || !(t->latency_ms_off > 0) ||
        !(t->latency_ms_on > 0)) {
        snprintf(err, errlen, "truth '%s': a coefficient is missing or out of range", t->name);
        return false;
    }
    for (size_t i = 0; i < SIM_TRUTH_DUP_POINTS; i++)
        if (!(t->cost_off[i] > 0) || !(t->cost_on[i] > 0)) {
            snprintf(err, errlen, "truth '%s': cost_off/cost_on must be > 0", t->name);
            return false;
        }
    if (!(t->use_owner_sigma >= 0) || !(t->use_run_sigma >= 0) || !(t->use_spike_share >= 0) ||
        !(t->use_spike_share <= 1) || !(t->use_spike_factor >= 1) || !(t->use_cpu_mean_share > 0) ||
        !(t->use_cpu_mean_share <= 1) || t->n_use == 0) {
        snprintf(err, errlen,
                 "truth '%s': pod_use or a use_* coefficient is missing or out of range", t->name);
        return false;
    }
    for (size_t i = 1; i < SIM_TRUTH_LOAD_POINTS; i++)
        if (!(t->load_points[i] > t->load_points[i - 1])) {
            snprintf(err, errlen, "truth '%s': load_points must increase", t->name);
            return false;
        }
    return true;
}

int sim_truth_load(const char *path, const char *name, struct sim_truth *ret, char *err,
                   size_t errlen)
{
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    struct sim_truth t;
    int r;
    if (!doc) {
        snprintf(err, errlen, "truth: %s: %s (line %d)", path, je.text, je.line);
        return -EINVAL;
    }
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", name);
    r = resolve(json_object_get(doc, "variants"), name, &t, 0, err, errlen);
    json_decref(doc);
    if (r < 0)
        return r;
    if (!sane(&t, err, errlen))
        return -EINVAL;
    *ret = t;
    return 0;
}
