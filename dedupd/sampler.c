/*
 * The node sampler (sampler.h): one thread, one store batch and one
 * published snapshot per interval. Interval maths (rates, the interval's
 * packer savings, the cost target and its minimum write) is dedupd/vdo's
 * rates code; this file reads, assembles and publishes.
 *
 * State kept between intervals (previous stats, thread CPU, /proc/stat,
 * diskstats, pods) is sampler-thread only; the published snapshot is
 * guarded by the mutex and replaced whole.
 */
#define _GNU_SOURCE
#include "dedupd/sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/metrics.h"
#include "dedupd/node/node.h"
#include "dedupd/store/store.h"
#include "dedupd/vdo/source.h"
#include "dedupd/vdo/threads.h"

struct prev_volume {
    char name[DD_NAME_MAX];
    struct dd_vdo_stats stats;
};

struct dd_sampler {
    struct dd_config cfg; /* pools and interval change on reconfigure (under lock) */
    struct dd_store *store;
    struct dd_vdo_source *src;
    struct dd_nvml *nvml;
    struct dd_sampler_hooks hooks;
    pthread_t thread;
    bool started;

    pthread_mutex_t lock; /* guards everything down to the sampler-only state */
    pthread_cond_t wake;
    bool stop;
    char *volumes_json;  /* {"volumes": [...], "time_ms": N} */
    json_t *volume_docs; /* name -> volume document */
    char *node_json;
    char *metrics_text;
    struct dd_report report; /* the latest typed report */
    uint64_t samples, errors, dropped;
    bool ready;

    /* sampler-thread only */
    struct prev_volume *prev;
    size_t n_prev;
    struct dd_vdo_threads prev_threads;
    bool have_prev_threads;
    bool dm_absent_reported;
    struct dd_cpu_stat prev_cpu;
    bool have_prev_cpu;
    struct dd_diskstats prev_disks;
    bool have_prev_disks;
    struct dd_pods prev_pods;
    bool have_prev_pods;
    json_t *vol_errors;              /* name -> the error last logged for it */
    enum dd_store_state store_state; /* last logged */
    /* backing devices' rotational flag: a property of the device, read
     * from sysfs once per device rather than every interval */
    struct {
        char dev[64];
        int rotational;
    } rot_cache[DD_MAX_VOLUMES_PER_NODE];
    size_t n_rot;
};

/* What one interval of node readings gives (NaN where unavailable). */
struct node_now {
    double cpu_util, cpu_util_ex_vdo, load1, cpu_psi, io_psi, mem_available_gib;
    double run_queue;
    unsigned cores;
    struct dd_diskstats disks;
    bool have_disks;
};

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static struct prev_volume *find_prev(struct dd_sampler *s, const char *name)
{
    for (size_t i = 0; i < s->n_prev; i++) {
        if (strcmp(s->prev[i].name, name) == 0)
            return &s->prev[i];
    }
    return NULL;
}

/* The volume's dm device in diskstats: by major:minor when the source knows
 * it, else dm-<instance> (a replay of the simulator, which names it so). */
static const struct dd_diskstat *volume_disk(const struct dd_diskstats *ds,
                                             const struct dd_vdo_volume *v, uint64_t instance)
{
    char name[32];
    if (v->dm_major || v->dm_minor)
        return dd_diskstats_find_dev(ds, v->dm_major, v->dm_minor);
    snprintf(name, sizeof(name), "dm-%llu", (unsigned long long)instance);
    return dd_diskstats_find_name(ds, name);
}

/* The VDO volume's backing device in diskstats: the table names it as
 * MAJ:MIN or a path; a path that is a block device here is looked up by its
 * number (so /dev/mapper and /dev/disk/by-* links resolve), otherwise by
 * its last component (a replay's /dev/sdb). */
static const struct dd_diskstat *backing_disk(const struct dd_diskstats *ds,
                                              const struct dd_vdo_volume *v)
{
    unsigned maj, min;
    struct stat st;
    const char *base;
    char tail;

    if (!v->have_table || !v->table.device[0])
        return NULL;
    if (sscanf(v->table.device, "%u:%u%c", &maj, &min, &tail) == 2)
        return dd_diskstats_find_dev(ds, maj, min);
    if (stat(v->table.device, &st) == 0 && S_ISBLK(st.st_mode))
        return dd_diskstats_find_dev(ds, (uint32_t)major(st.st_rdev), (uint32_t)minor(st.st_rdev));
    base = strrchr(v->table.device, '/');
    return dd_diskstats_find_name(ds, base ? base + 1 : v->table.device);
}

/* iostat-like figures of one device over the interval; NULL when the device
 * is not in both samples or its counters went backwards. */
static json_t *disk_doc(const struct dd_diskstat *old, const struct dd_diskstat *cur, double dt)
{
    struct dd_disk_rates dr;
    if (!old || !cur || dd_disk_rates(old, cur, dt, &dr) < 0 || dr.reset)
        return NULL;
    return json_pack(
        "{s:s, s:f, s:f, s:f, s:f, s:o, s:o, s:f}", "device", cur->name, "read_iops", dr.read_iops,
        "write_iops", dr.write_iops, "read_mbps", dr.read_mbps, "write_mbps", dr.write_mbps,
        "read_latency_ms", dr.has_read_latency ? json_real(dr.read_latency_ms) : json_null(),
        "write_latency_ms", dr.has_write_latency ? json_real(dr.write_latency_ms) : json_null(),
        "util", dr.util);
}

/* Is the backing block device rotational? sys_root/class/block/NAME/queue/
 * rotational, or its parent's for a partition; -1 when unknown. */
static int rotational(const char *sys_root, const char *dev)
{
    char path[PATH_MAX], buf[8];
    for (int parent = 0; parent < 2; parent++) {
        int fd;
        ssize_t n;
        if (parent)
            snprintf(path, sizeof(path), "%s/class/block/%s/../queue/rotational", sys_root, dev);
        else
            snprintf(path, sizeof(path), "%s/class/block/%s/queue/rotational", sys_root, dev);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            continue;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0 && (buf[0] == '0' || buf[0] == '1'))
            return buf[0] == '1';
    }
    return -1;
}

static int backing_rotational(struct dd_sampler *s, const char *dev)
{
    for (size_t i = 0; i < s->n_rot; i++) {
        if (strcmp(s->rot_cache[i].dev, dev) == 0)
            return s->rot_cache[i].rotational;
    }
    int r = rotational(s->cfg.sys_root, dev);
    if (r >= 0 && s->n_rot < DD_ARRAY_SIZE(s->rot_cache) &&
        strlen(dev) < sizeof(s->rot_cache[0].dev)) {
        snprintf(s->rot_cache[s->n_rot].dev, sizeof(s->rot_cache[0].dev), "%s", dev);
        s->rot_cache[s->n_rot++].rotational = r;
    }
    return r;
}

static int64_t blocks_bytes(uint64_t blocks, uint64_t block_size)
{
    return blocks <= (uint64_t)INT64_MAX / (block_size ? block_size : 1)
               ? (int64_t)(blocks * block_size)
               : -1;
}

/*
 * One volume's interval: the typed report entry (identity, sizes, the
 * features and targets) and the REST document (the same features, plus
 * VDO CPU by queue and iostat-like disk figures).
 */
static json_t *volume_sample(struct dd_sampler *s, const struct dd_vdo_volume *v,
                             const struct prev_volume *p, double dt, const struct dd_vdo_cpu *cpu,
                             const struct node_now *node, const struct dd_diskstats *prev_disks,
                             struct dd_report_volume *rv)
{
    json_t *o = json_object(), *disks = NULL;
    struct dd_vdo_derived der;
    struct dd_vdo_rates r = {0};
    struct dd_features *f = &rv->features;
    uint64_t instance = 0, physical = 0, data = 0, overhead = 0, logical = 0, logical_used = 0,
             version = 0;
    bool have_der =
        v->have_stats && dd_vdo_derive(&v->stats, v->have_config ? &v->config : NULL, &der) == 0;
    const struct dd_vdo_instance_cpu *ic = NULL;
    const char *mode = v->have_stats ? dd_vdo_stats_get(&v->stats, "mode") : NULL;

    dd_report_volume_clear(rv);
    snprintf(rv->name, sizeof(rv->name), "%s", v->name);
    pthread_mutex_lock(&s->lock); /* the pool map changes on SIGHUP */
    snprintf(rv->pool, sizeof(rv->pool), "%s", dd_config_pool(&s->cfg, v->name));
    pthread_mutex_unlock(&s->lock);
    snprintf(rv->mode, sizeof(rv->mode), "%s",
             mode ? mode : (v->have_status ? v->status.mode : ""));
    if (v->have_status)
        snprintf(rv->index_state, sizeof(rv->index_state), "%s", v->status.index_state);
    json_object_set_new(o, "name", json_string(v->name));
    json_object_set_new(o, "pool", json_string(rv->pool));
    json_object_set_new(o, "mode", mode ? json_string(mode) : json_null());
    if (v->stats_error[0])
        json_object_set_new(o, "error", json_string(v->stats_error));
    if (!have_der) {
        json_object_set_new(o, "features", json_object());
        return o;
    }
    (void)dd_vdo_stats_u64(&v->stats, "version", &version);
    (void)dd_vdo_stats_u64(&v->stats, "instance", &instance);
    (void)dd_vdo_stats_u64(&v->stats, "physicalBlocks", &physical);
    (void)dd_vdo_stats_u64(&v->stats, "dataBlocksUsed", &data);
    (void)dd_vdo_stats_u64(&v->stats, "overheadBlocksUsed", &overhead);
    rv->vdo_version = version < 1000 ? (int)version : 0;
    if (dd_vdo_stats_u64(&v->stats, "logicalBlocks", &logical) == 0 &&
        dd_vdo_stats_u64(&v->stats, "logicalBlocksUsed", &logical_used) == 0) {
        rv->logical_bytes = blocks_bytes(logical, der.block_size);
        rv->logical_free_bytes =
            blocks_bytes(logical > logical_used ? logical - logical_used : 0, der.block_size);
    }
    if (physical) {
        rv->physical_bytes = blocks_bytes(physical, der.block_size);
        rv->physical_free_bytes = blocks_bytes(
            physical > data + overhead ? physical - data - overhead : 0, der.block_size);
    }
    json_object_set_new(o, "instance", json_integer((json_int_t)instance));
    json_object_set_new(o, "size_kb", json_integer((json_int_t)der.size_kb));
    json_object_set_new(o, "used_kb", json_integer((json_int_t)der.used_kb));
    json_object_set_new(o, "used_percent", json_integer(der.used_percent));
    json_object_set_new(o, "saving_percent", json_integer(der.saving_percent));

    /* what one sample gives */
    f->v[DD_F_DEDUP_RATIO] = der.dedup_ratio;
    f->v[DD_F_INDEX_ENTRIES] = (double)der.index_entries;
    f->v[DD_F_INDEX_FILL] = der.index_fill;
    f->v[DD_F_STORED_GIB] = (double)data * (double)der.block_size / 1073741824.0;
    f->v[DD_F_PHYSICAL_USED_FRACTION] =
        physical ? (double)(data + overhead) / (double)physical : (double)NAN;
    f->v[DD_F_COMPRESSION] = v->have_status && v->status.compression ? 1 : 0;
    f->v[DD_F_PACKER_SAVINGS] = der.packer_savings;
    f->v[DD_F_OPERATING_MODE_NORMAL] = der.normal ? 1 : 0;

    /* what two samples give */
    if (p && dd_vdo_rates(&p->stats, &v->stats, dt, &r) == 0 && r.valid) {
        f->v[DD_F_WRITE_MBPS] = r.write_mb_per_s;
        f->v[DD_F_READ_MBPS] = r.read_mb_per_s;
        f->v[DD_F_WRITE_IOPS] = r.bios_in_write;
        f->v[DD_F_DEDUP_HIT_RATE] = r.dedup_hit_rate;
        f->v[DD_F_JOURNAL_BLOCKS_PER_S] = r.journal_blocks_per_s;
        f->v[DD_F_BLOCK_MAP_PAGES_PER_S] = r.block_map_pages_per_s;
        if (isfinite(r.packer_savings))
            f->v[DD_F_PACKER_SAVINGS] = r.packer_savings;
    }
    if (cpu && instance <= UINT32_MAX)
        ic = dd_vdo_cpu_for_instance(cpu, (uint32_t)instance);
    if (ic) {
        json_t *kinds = json_object();
        for (size_t k = 0; k < ic->n_kinds; k++)
            json_object_set_new(kinds, ic->kinds[k].kind, json_real(ic->kinds[k].seconds));
        json_object_set_new(o, "vdo_cpu_seconds", json_real(ic->seconds));
        json_object_set_new(o, "vdo_cpu_seconds_by_queue", kinds);
        f->target[DD_T_COST] = dd_vdo_cost_per_gib(&r, ic->seconds);
    }
    if (node) {
        /* node load: part of every volume's feature vector (DESIGN.md) */
        f->v[DD_F_NODE_CPU_UTIL_EX_VDO] = node->cpu_util_ex_vdo;
        f->v[DD_F_CPU_PSI] = node->cpu_psi;
        f->v[DD_F_IO_PSI] = node->io_psi;
        f->v[DD_F_RUN_QUEUE] = node->run_queue;
        const struct dd_diskstat *back = node->have_disks ? backing_disk(&node->disks, v) : NULL;
        if (back)
            rv->rotational = backing_rotational(s, back->name);
        if (node->have_disks && prev_disks) {
            const struct dd_diskstat *cur = volume_disk(&node->disks, v, instance);
            const struct dd_diskstat *old = volume_disk(prev_disks, v, instance);
            json_t *vd = disk_doc(old, cur, dt);
            json_t *bd = disk_doc(backing_disk(prev_disks, v), back, dt);
            json_t *lat = vd ? json_object_get(vd, "write_latency_ms") : NULL;
            if (lat && json_is_number(lat))
                /* target: latency = device write latency, ms */
                f->target[DD_T_LATENCY] = json_number_value(lat);
            disks = json_pack("{s:o, s:o}", "vdo", vd ? vd : json_null(), "backing",
                              bd ? bd : json_null());
        }
    }
    /* a figure outside its range (a counter glitch) is not a feature */
    for (size_t i = 0; i < DD_F_COUNT; i++) {
        if (isfinite(f->v[i]) && !dd_feature_value_ok((enum dd_feature)i, f->v[i]))
            f->v[i] = (double)NAN;
    }
    if (disks)
        json_object_set_new(o, "disks", disks);
    json_object_set_new(o, "features", dd_features_to_json(f));
    return o;
}

static void remember(struct dd_sampler *s, struct dd_vdo_volume *vols, size_t n)
{
    for (size_t i = 0; i < s->n_prev; i++)
        dd_vdo_stats_release(&s->prev[i].stats);
    dd_free(s->prev);
    s->prev = dd_calloc(n ? n : 1, sizeof(*s->prev));
    s->n_prev = 0;
    if (!s->prev)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!vols[i].have_stats)
            continue;
        snprintf(s->prev[s->n_prev].name, sizeof(s->prev[s->n_prev].name), "%s", vols[i].name);
        s->prev[s->n_prev].stats = vols[i].stats; /* moved */
        memset(&vols[i].stats, 0, sizeof(vols[i].stats));
        vols[i].have_stats = false;
        s->n_prev++;
    }
}

/* Every GPU NVML reports, or why there are none; typed into the report. */
static json_t *gpus_doc(const struct dd_gpus *g, const char *why, struct dd_report *rep)
{
    json_t *arr;
    if (why)
        return json_pack("{s:b, s:s}", "available", 0, "reason", why);
    arr = json_array();
    rep->gpus_available = true;
    for (uint32_t i = 0; i < g->n && i < rep->n_gpus; i++) {
        const struct dd_gpu *x = &g->gpus[i];
        struct dd_report_gpu *rg = &rep->gpus[i];
        rg->index = x->index;
        snprintf(rg->name, sizeof(rg->name), "%s", x->name);
        if (x->has_util) {
            rg->util_gpu_percent = x->util_gpu_pct;
            rg->util_memory_percent = x->util_memory_pct;
        }
        if (x->has_memory) {
            rg->memory_used_bytes = (double)x->memory_used;
            rg->memory_total_bytes = (double)x->memory_total;
        }
        json_array_append_new(
            arr,
            json_pack("{s:i, s:s, s:o, s:o, s:o, s:o}", "index", (int)x->index, "name", x->name,
                      "util_gpu_percent", x->has_util ? json_integer(x->util_gpu_pct) : json_null(),
                      "util_memory_percent",
                      x->has_util ? json_integer(x->util_memory_pct) : json_null(),
                      "memory_used_bytes",
                      x->has_memory ? json_integer((json_int_t)x->memory_used) : json_null(),
                      "memory_total_bytes",
                      x->has_memory ? json_integer((json_int_t)x->memory_total) : json_null()));
    }
    return json_pack("{s:b, s:i, s:o}", "available", 1, "count", (int)g->n_total, "devices", arr);
}

/* NVML's sample, or why there is none (then g is empty). */
static const char *gpus_sample(struct dd_nvml *nvml, struct dd_gpus *g)
{
    const char *why = NULL;
    memset(g, 0, sizeof(*g));
    if (!nvml)
        return "NVML session not opened";
    if (!dd_nvml_available(nvml, &why))
        return why ? why : "unavailable";
    if (dd_nvml_sample(nvml, g) < 0 || !g->available) {
        g->n = 0;
        return g->reason[0] ? g->reason : "NVML sample failed";
    }
    return NULL;
}

static const char *qos_name(enum dd_pod_qos q)
{
    return q == DD_POD_GUARANTEED ? "guaranteed"
                                  : (q == DD_POD_BURSTABLE ? "burstable" : "besteffort");
}

/* Kubernetes pods on this node from cgroup v2 (kubelet's hierarchy under
 * sys_root): usage now and, from the second sample on, rates; typed into
 * the report (the first DD_MAX_PODS_PER_REPORT). now is consumed. */
static json_t *pods_doc(struct dd_sampler *s, struct dd_pods *now, int scan_error, double dt,
                        struct dd_report *rep)
{
    json_t *arr = json_array();
    if (scan_error < 0) {
        /* rates start again from the next good scan, not across the gap */
        dd_pods_release(&s->prev_pods);
        s->have_prev_pods = false;
        return json_pack("{s:i, s:o, s:s}", "count", 0, "pods", arr, "error",
                         dd_strerror(scan_error));
    }
    for (size_t i = 0; i < now->n; i++) {
        const struct dd_pod *p = &now->pods[i];
        const struct dd_pod *old = s->have_prev_pods ? dd_pods_find(&s->prev_pods, p->uid) : NULL;
        struct dd_report_pod *rp = i < rep->n_pods ? &rep->pods[i] : NULL;
        uint64_t rb = 0, wb = 0, orb = 0, owb = 0;
        json_t *o;

        for (size_t k = 0; k < p->io.n; k++) {
            rb += p->io.devs[k].rbytes;
            wb += p->io.devs[k].wbytes;
        }
        o = json_pack("{s:s, s:s, s:f, s:o, s:o}", "uid", p->uid, "qos", qos_name(p->qos),
                      "cpu_usage_seconds", (double)p->cpu.usage_usec / 1e6, "memory_current_bytes",
                      p->has_memory_current ? json_integer((json_int_t)p->memory_current)
                                            : json_null(),
                      "memory_peak_bytes",
                      p->has_memory_peak ? json_integer((json_int_t)p->memory_peak) : json_null());
        if (rp) {
            snprintf(rp->uid, sizeof(rp->uid), "%s", p->uid);
            snprintf(rp->qos, sizeof(rp->qos), "%s", qos_name(p->qos));
            if (p->has_memory_current)
                rp->memory_bytes = (double)p->memory_current;
        }
        if (p->has_io) {
            json_object_set_new(o, "io_read_bytes", json_integer((json_int_t)rb));
            json_object_set_new(o, "io_write_bytes", json_integer((json_int_t)wb));
        }
        /* rates only across the same pod whose counters did not go back */
        if (old && dt > 0 && p->cpu.usage_usec >= old->cpu.usage_usec) {
            double cores = (double)(p->cpu.usage_usec - old->cpu.usage_usec) / 1e6 / dt;
            json_object_set_new(o, "cpu_cores", json_real(cores));
            if (rp)
                rp->cpu_cores = cores;
        }
        if (old && dt > 0 && p->has_io && old->has_io) {
            for (size_t k = 0; k < old->io.n; k++) {
                orb += old->io.devs[k].rbytes;
                owb += old->io.devs[k].wbytes;
            }
            if (rb >= orb && wb >= owb) {
                double rm = (double)(rb - orb) / 1e6 / dt, wm = (double)(wb - owb) / 1e6 / dt;
                json_object_set_new(o, "io_read_mbps", json_real(rm));
                json_object_set_new(o, "io_write_mbps", json_real(wm));
                if (rp) {
                    rp->io_read_mbps = rm;
                    rp->io_write_mbps = wm;
                }
            }
        }
        json_array_append_new(arr, o);
    }
    dd_pods_release(&s->prev_pods);
    s->prev_pods = *now;
    memset(now, 0, sizeof(*now));
    s->have_prev_pods = true;
    return json_pack("{s:i, s:o}", "count", (int)json_array_size(arr), "pods", arr);
}

/* A volume that cannot be read (gone between listing and reading, a stats
 * message refused...) is logged when its error first shows or changes, and
 * once more when it reads again: a warning per change, not per interval. */
static void note_volume_error(struct dd_sampler *s, const struct dd_vdo_volume *v)
{
    const char *err = v->stats_error[0] ? v->stats_error : NULL;
    json_t *old;

    if (!s->vol_errors && !(s->vol_errors = json_object()))
        return;
    old = json_object_get(s->vol_errors, v->name);
    if (err && !(old && strcmp(json_string_value(old), err) == 0)) {
        dd_log_warning("volume %s: %s", v->name, err);
        json_object_set_new(s->vol_errors, v->name, json_string_nocheck(err));
    } else if (!err && old) {
        dd_log_info("volume %s: readable again", v->name);
        json_object_del(s->vol_errors, v->name);
    }
}

/* The store's health, logged when it changes (the store itself logs
 * nothing above debug): what is wrong, and what the operator can do. */
static void note_store_health(struct dd_sampler *s)
{
    struct dd_store_health h;
    if (dd_store_health(s->store, &h) < 0 || h.state == s->store_state)
        return;
    if (h.state == DD_STORE_DAMAGED)
        dd_log_error("store %s is damaged: %s; %s", h.path, h.detail, h.advice);
    else if (h.state == DD_STORE_DEGRADED)
        dd_log_warning("store %s: %s; samples are dropped until this passes", h.path, h.detail);
    else
        dd_log_info("store %s: writing again", h.path);
    s->store_state = h.state;
}

/* Node load over the interval: CPU (without the VDO threads' share), load,
 * pressure, memory, disks. */
static void read_node(struct dd_sampler *s, const char *pr, double vdo_total, struct node_now *nn,
                      uint64_t *errors)
{
    struct dd_parse_error perr;
    struct dd_cpu_stat cs;
    struct dd_loadavg la;
    struct dd_meminfo mi;
    struct dd_node_psi psi;

    *nn = (struct node_now){.cpu_util = (double)NAN,
                            .cpu_util_ex_vdo = (double)NAN,
                            .load1 = (double)NAN,
                            .cpu_psi = (double)NAN,
                            .io_psi = (double)NAN,
                            .mem_available_gib = (double)NAN,
                            .run_queue = (double)NAN};
    if (dd_node_read_stat(pr, &cs, &perr) == 0) {
        struct dd_cpu_util cu;
        if (s->have_prev_cpu &&
            dd_cpu_util(&s->prev_cpu.all, &cs.all, dd_clock_ticks(), vdo_total, &cu) == 0 &&
            cu.valid) {
            nn->cpu_util = cu.util;
            nn->cpu_util_ex_vdo = cu.util_excl_vdo;
        }
        nn->cores = (unsigned)cs.n_cpus;
        dd_cpu_stat_release(&s->prev_cpu);
        s->prev_cpu = cs;
        s->have_prev_cpu = true;
    } else {
        (*errors)++;
    }
    if (dd_node_read_loadavg(pr, &la, &perr) == 0) {
        nn->load1 = la.load1;
        nn->run_queue = la.run_queue;
    }
    if (dd_node_read_meminfo(pr, &mi, &perr) == 0)
        nn->mem_available_gib = (double)mi.mem_available_kb / 1048576.0;
    if (dd_node_read_psi(pr, &psi, &perr) == 0) {
        if (psi.cpu_available && psi.cpu.some.present)
            nn->cpu_psi = psi.cpu.some.avg10;
        if (psi.io_available && psi.io.some.present)
            nn->io_psi = psi.io.some.avg10;
    }
    nn->have_disks = dd_node_read_diskstats(pr, &nn->disks, &perr) == 0;
}

static void render_metrics(struct dd_sampler *s, json_t *vols, json_t *node, char **ret,
                           size_t *len)
{
    FILE *mf = open_memstream(ret, len);
    struct dd_store_stats ss;
    if (!mf) {
        *ret = NULL;
        return;
    }
    dd_metrics_volumes(mf, vols);
    dd_metrics_node(mf, node);
    if (dd_store_get_stats(s->store, &ss) == 0) {
        fprintf(mf,
                "# HELP dedupd_store_bytes Approximate size of the store on disk.\n"
                "# TYPE dedupd_store_bytes gauge\ndedupd_store_bytes %llu\n"
                "# HELP dedupd_store_samples_dropped_total Samples lost to failed writes.\n"
                "# TYPE dedupd_store_samples_dropped_total counter\n"
                "dedupd_store_samples_dropped_total %llu\n",
                (unsigned long long)ss.disk_bytes, (unsigned long long)ss.samples_dropped);
    }
    fclose(mf);
}

void dd_sampler_sample_once(struct dd_sampler *s, double dt)
{
    char **names = NULL, errbuf[512] = "";
    size_t n = 0, rows = 0;
    struct dd_vdo_volume *vols = NULL;
    struct dd_vdo_threads th = {0};
    struct dd_vdo_cpu cpu = {0};
    struct dd_gpus gpus;
    struct dd_pods pods = {0};
    struct dd_report rep;
    struct node_now nn;
    bool have_cpu = false;
    const char *pr, *gpu_why;
    json_t *arr = json_array(), *docs = json_object();
    struct dd_store_batch *b = NULL;
    uint64_t now = dd_wall_ms(), errors = 0, dropped = 0;
    char *m = NULL, *vj = NULL, *nj = NULL;
    size_t mlen = 0;
    double vdo_total = 0;
    int r, pods_r;

    r = dd_vdo_source_list(s->src, &names, &n, errbuf, sizeof(errbuf));
    if (r < 0) {
        if (!s->dm_absent_reported) /* plainly, once */
            dd_log_warning("no VDO volumes can be read: %s; sampling the node only", errbuf);
        s->dm_absent_reported = true;
        errors++;
        n = 0;
    }
    vols = dd_calloc(n ? n : 1, sizeof(*vols));
    for (size_t i = 0; vols && i < n; i++) {
        if (dd_vdo_source_read(s->src, names[i], &vols[i]) < 0)
            errors++;
        note_volume_error(s, &vols[i]);
    }
    pr = s->cfg.proc_root;
    if (strcmp(s->cfg.proc_root, "/proc") == 0 && dd_vdo_source_proc_root(s->src))
        pr = dd_vdo_source_proc_root(s->src);
    if (dd_vdo_threads_scan(pr, &th) == 0) {
        have_cpu = s->have_prev_threads &&
                   dd_vdo_cpu_delta(&s->prev_threads, &th, dd_clock_ticks(), &cpu) == 0;
        dd_vdo_threads_release(&s->prev_threads);
        s->prev_threads = th;
        s->have_prev_threads = true;
    } else {
        errors++;
    }
    for (size_t i = 0; have_cpu && i < cpu.n; i++)
        vdo_total += cpu.instances[i].seconds;
    read_node(s, pr, vdo_total, &nn, &errors);
    gpu_why = gpus_sample(s->nvml, &gpus);
    pods_r = s->cfg.cgroup_root[0] ? dd_node_pods_scan_root(s->cfg.cgroup_root, &pods)
                                   : dd_node_pods_scan(s->cfg.sys_root, &pods);
    if (pods_r < 0)
        errors++;

    /* the typed report: counts first, then each part fills its own */
    if (dd_report_alloc(&rep, gpus.n < DD_MAX_GPUS_PER_REPORT ? gpus.n : DD_MAX_GPUS_PER_REPORT,
                        vols ? (n < DD_MAX_VOLUMES_PER_NODE ? n : DD_MAX_VOLUMES_PER_NODE) : 0,
                        pods_r == 0
                            ? (pods.n < DD_MAX_PODS_PER_REPORT ? pods.n : DD_MAX_PODS_PER_REPORT)
                            : 0) < 0)
        (void)dd_report_alloc(&rep, 0, 0, 0);
    snprintf(rep.node, sizeof(rep.node), "%s", s->cfg.node_name);
    pthread_mutex_lock(&s->lock);
    rep.interval_s = s->cfg.interval;
    pthread_mutex_unlock(&s->lock);
    /* the report states the push cadence (staleness counts in it), not a
     * replay's nominal interval */
    rep.time_ms = now;
    rep.cores = nn.cores;
    rep.vdo_threads = have_cpu ? (unsigned)th.n : 0;
    rep.cpu_util = nn.cpu_util;
    rep.cpu_util_ex_vdo = nn.cpu_util_ex_vdo;
    rep.cpu_psi = nn.cpu_psi;
    rep.io_psi = nn.io_psi;
    rep.run_queue = nn.run_queue;
    rep.load1 = nn.load1;
    rep.mem_available_gib = nn.mem_available_gib;
    rep.vdo_cpu_seconds = vdo_total;

    if (dd_store_batch_begin(s->store, &b) < 0)
        b = NULL;
    if (s->hooks.pods)
        s->hooks.pods(s->hooks.ctx, pods_r == 0 ? &pods : NULL, dt, now, b);
    for (size_t i = 0; vols && i < n; i++) {
        struct dd_report_volume scratch, *rv = i < rep.n_volumes ? &rep.volumes[i] : &scratch;
        json_t *doc =
            volume_sample(s, &vols[i], find_prev(s, vols[i].name), dt, have_cpu ? &cpu : NULL, &nn,
                          s->have_prev_disks ? &s->prev_disks : NULL, rv);
        char series[DD_SERIES_MAX], *text = json_dumps(doc, JSON_COMPACT);
        snprintf(series, sizeof(series), "vol/%s", vols[i].name);
        if (b && text && dd_store_batch_put_sample(b, series, now, text, strlen(text)) == 0)
            rows++;
        free(text);
        json_object_set(docs, vols[i].name, doc);
        json_array_append_new(arr, doc);
    }
    json_t *node =
        json_pack("{s:s, s:I, s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:f}", "node_name",
                  s->cfg.node_name, "time_ms", (json_int_t)now, "volumes", (int)n, "vdo_threads",
                  (json_int_t)(have_cpu ? th.n : 0), "cpu_util", num_or_null(nn.cpu_util),
                  "node_cpu_util_ex_vdo", num_or_null(nn.cpu_util_ex_vdo), "load1",
                  num_or_null(nn.load1), "run_queue", num_or_null(nn.run_queue), "cpu_psi",
                  num_or_null(nn.cpu_psi), "io_psi", num_or_null(nn.io_psi), "mem_available_gib",
                  num_or_null(nn.mem_available_gib), "vdo_cpu_seconds", vdo_total);
    json_object_set_new(node, "gpus", gpus_doc(&gpus, gpu_why, &rep));
    json_object_set_new(node, "pods", pods_doc(s, &pods, pods_r, dt, &rep));
    if (nn.have_disks) {
        dd_diskstats_release(&s->prev_disks);
        s->prev_disks = nn.disks;
        s->have_prev_disks = true;
        nn.have_disks = false;
    }
    nj = json_dumps(node, JSON_COMPACT);
    if (b && nj)
        (void)dd_store_batch_put_sample(b, "node", now, nj, strlen(nj));
    if (b && dd_store_batch_commit(b, false) < 0) {
        dropped++;
        rows = 0;
    }
    if (!b)
        rows = 0;
    if (s->samples % 60 == 0)
        (void)dd_store_retain(s->store, now);
    note_store_health(s);

    render_metrics(s, arr, node, &m, &mlen);
    json_t *top = json_pack("{s:o, s:I}", "volumes", arr, "time_ms", (json_int_t)now);
    vj = json_dumps(top, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(top);
    json_decref(node);
    remember(s, vols, n);

    if (s->hooks.sampled)
        s->hooks.sampled(s->hooks.ctx, &rep, rows);

    pthread_mutex_lock(&s->lock);
    dd_free(s->volumes_json);
    dd_free(s->node_json);
    free(s->metrics_text);
    json_decref(s->volume_docs);
    dd_report_release(&s->report);
    s->volumes_json = vj ? dd_strdup(vj) : NULL;
    s->node_json = nj ? dd_strdup(nj) : NULL;
    s->metrics_text = m;
    s->volume_docs = docs;
    s->report = rep;
    s->samples++;
    s->errors += errors;
    s->dropped += dropped;
    s->ready = true;
    pthread_mutex_unlock(&s->lock);
    free(vj);
    free(nj);

    for (size_t i = 0; i < n; i++) {
        if (vols)
            dd_vdo_volume_release(&vols[i]);
        dd_free(names[i]);
    }
    dd_pods_release(&pods);
    dd_free(vols);
    dd_free(names);
    dd_vdo_cpu_release(&cpu);
    dd_vdo_source_next(s->src);
}

static void *sampler_main(void *arg)
{
    struct dd_sampler *s = arg;
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);

    for (;;) {
        struct timespec now, until;
        double interval, dt;

        pthread_mutex_lock(&s->lock);
        interval = s->cfg.interval;
        pthread_mutex_unlock(&s->lock);
        clock_gettime(CLOCK_MONOTONIC, &now);
        dt = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
        last = now;
        /* a replay states its own interval: rates do not depend on pacing */
        if (dd_vdo_source_interval(s->src) > 0)
            dt = dd_vdo_source_interval(s->src);
        dd_sampler_sample_once(s, dt);

        clock_gettime(CLOCK_REALTIME, &until);
        double secs = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + interval;
        until.tv_sec = (time_t)secs;
        until.tv_nsec = (long)((secs - (double)until.tv_sec) * 1e9);
        pthread_mutex_lock(&s->lock);
        while (!s->stop && pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT)
            ;
        bool stop = s->stop;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            return NULL;
    }
}

int dd_sampler_new(const struct dd_config *c, struct dd_store *store,
                   const struct dd_sampler_hooks *hooks, struct dd_sampler **ret, char *errbuf,
                   size_t errlen)
{
    struct dd_sampler *s = dd_calloc(1, sizeof(*s));
    int r;
    if (!s)
        return -ENOMEM;
    s->cfg = *c;
    s->store = store;
    if (hooks)
        s->hooks = *hooks;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    if ((r = dd_vdo_source_open(c->source, c->sys_root, &s->src, errbuf, errlen)) < 0) {
        dd_sampler_free(s);
        return r;
    }
    /* GPUs through NVML loaded at run time; none is simply "unavailable" */
    if (dd_nvml_open(NULL, &s->nvml) < 0)
        s->nvml = NULL;
    *ret = s;
    return 0;
}

int dd_sampler_start(struct dd_sampler *s)
{
    if (pthread_create(&s->thread, NULL, sampler_main, s) != 0)
        return -EAGAIN;
    s->started = true;
    return 0;
}

struct dd_sampler *dd_sampler_free(struct dd_sampler *s)
{
    if (!s)
        return NULL;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->started)
        pthread_join(s->thread, NULL);
    for (size_t i = 0; i < s->n_prev; i++)
        dd_vdo_stats_release(&s->prev[i].stats);
    dd_free(s->prev);
    dd_vdo_threads_release(&s->prev_threads);
    dd_cpu_stat_release(&s->prev_cpu);
    dd_diskstats_release(&s->prev_disks);
    dd_pods_release(&s->prev_pods);
    json_decref(s->vol_errors);
    dd_nvml_free(s->nvml);
    dd_vdo_source_free(s->src);
    dd_free(s->volumes_json);
    dd_free(s->node_json);
    free(s->metrics_text);
    json_decref(s->volume_docs);
    dd_report_release(&s->report);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
    dd_free(s);
    return NULL;
}

void dd_sampler_reconfigure(struct dd_sampler *s, const struct dd_config *c)
{
    pthread_mutex_lock(&s->lock);
    s->cfg.interval = c->interval;
    memcpy(s->cfg.pools, c->pools, sizeof(c->pools));
    s->cfg.n_pools = c->n_pools;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

bool dd_sampler_ready(struct dd_sampler *s)
{
    pthread_mutex_lock(&s->lock);
    bool ready = s->ready;
    pthread_mutex_unlock(&s->lock);
    return ready;
}

char *dd_sampler_doc(struct dd_sampler *s, enum dd_sampler_doc which)
{
    pthread_mutex_lock(&s->lock);
    const char *t = which == DD_SAMPLER_VOLUMES ? s->volumes_json : s->node_json;
    char *copy = t ? dd_strdup(t) : NULL;
    pthread_mutex_unlock(&s->lock);
    return copy;
}

char *dd_sampler_volume_text(struct dd_sampler *s, const char *name)
{
    char *text = NULL, *copy;
    pthread_mutex_lock(&s->lock);
    json_t *doc = s->volume_docs ? json_object_get(s->volume_docs, name) : NULL;
    if (doc)
        text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10));
    pthread_mutex_unlock(&s->lock);
    copy = text ? dd_strdup(text) : NULL;
    free(text);
    return copy;
}

bool dd_sampler_has_volume(struct dd_sampler *s, const char *name)
{
    pthread_mutex_lock(&s->lock);
    bool known = s->volume_docs && json_object_get(s->volume_docs, name);
    pthread_mutex_unlock(&s->lock);
    return known;
}

int dd_sampler_volume_features(struct dd_sampler *s, const char *name, struct dd_features *ret)
{
    int r = -ENOENT;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->report.n_volumes; i++) {
        if (strcmp(s->report.volumes[i].name, name) == 0) {
            r = isfinite(s->report.volumes[i].features.v[DD_F_WRITE_MBPS]) ? 0 : -EAGAIN;
            if (r == 0)
                *ret = s->report.volumes[i].features;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

void dd_sampler_metrics(struct dd_sampler *s, FILE *f)
{
    pthread_mutex_lock(&s->lock);
    fprintf(f,
            "# HELP dedupd_samples_total Sampling intervals completed.\n"
            "# TYPE dedupd_samples_total counter\ndedupd_samples_total %llu\n"
            "# HELP dedupd_sampler_errors_total Volume, /proc or listing reads that failed.\n"
            "# TYPE dedupd_sampler_errors_total counter\ndedupd_sampler_errors_total %llu\n"
            "# HELP dedupd_samples_dropped_total Intervals whose store write failed.\n"
            "# TYPE dedupd_samples_dropped_total counter\ndedupd_samples_dropped_total %llu\n",
            (unsigned long long)s->samples, (unsigned long long)s->errors,
            (unsigned long long)s->dropped);
    if (s->metrics_text)
        fputs(s->metrics_text, f);
    pthread_mutex_unlock(&s->lock);
}
