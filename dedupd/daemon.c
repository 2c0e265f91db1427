/*
 * The daemon: sampler thread and REST handlers around one shared snapshot.
 *
 * Every interval the sampler lists the VDO volumes, reads each, scans the
 * VDO kernel threads in /proc, and turns two consecutive samples into each
 * volume's feature vector (names from DESIGN.md). It writes one store batch
 * per interval (series "vol/<name>" and "node"), applies retention now and
 * then, and publishes the new snapshot: prebuilt JSON and metrics text that
 * handlers copy under a mutex, so a request never waits on a sample.
 *
 * Where device-mapper is absent the sampler says so once and goes on with no
 * volumes; the daemon stays up. A failed store commit is counted as dropped
 * samples (/metrics) and sampling continues.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/daemon.h"
#include "dedupd/http/http.h"
#include "dedupd/model.h"
#include "dedupd/node/node.h"
#include "dedupd/scan/scan.h"
#include "dedupd/store/store.h"
#include "dedupd/vdo/source.h"
#include "dedupd/vdo/threads.h"

/* Estimate jobs kept (finished ones are dropped oldest first) and running. */
#define MAX_JOBS         16
#define MAX_RUNNING_JOBS 2

struct job {
    unsigned id;
    struct dd_scan *scan;
    pthread_t thread;
    bool started, done;
    int result;
    char error[256];
};

struct prev_volume {
    char name[128];
    struct dd_vdo_stats stats;
};

struct dd_daemon {
    struct dd_daemon_config cfg;
    struct dd_store *store;
    struct dd_vdo_source *src;
    struct dd_http_server *http;
    struct dd_model_service *model; /* roles all and placement */
    pthread_t sampler;
    bool sampler_started;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    bool stop;
    double interval;
    char *volumes_json;  /* {"volumes": [...]} */
    json_t *volume_docs; /* name -> volume object (sampler-owned copies) */
    char *node_json;
    char *metrics_text;
    uint64_t samples, sampler_errors, dropped;
    bool ready;
    struct job jobs[MAX_JOBS];
    unsigned next_job;

    /* sampler-only state */
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
    json_t *vol_errors; /* name -> the error last logged for it (logged once) */
    struct dd_nvml *nvml;
};

/* What one interval of node readings gives (NaN where unavailable). */
struct node_now {
    double cpu_util, cpu_util_ex_vdo, load1, cpu_psi, io_psi, mem_available_gib;
    double run_queue;
    struct dd_diskstats disks;
    bool have_disks;
};

/* ---- configuration ---- */

void dd_daemon_config_defaults(struct dd_daemon_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->role, sizeof(c->role), "all");
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:7450");
    snprintf(c->data_dir, sizeof(c->data_dir), "/var/lib/dedupd");
    snprintf(c->source, sizeof(c->source), "dm");
    snprintf(c->proc_root, sizeof(c->proc_root), "/proc");
    snprintf(c->sys_root, sizeof(c->sys_root), "/sys");
    c->interval = 10.0;
    c->retention_days = 14;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    struct dd_model_config mc;
    dd_model_config_defaults(&mc);
    c->min_train_samples = mc.min_train_samples;
    c->retrain_every = mc.retrain_every;
}

static int set_str(char *dst, size_t len, json_t *v, const char *key, char *errbuf, size_t errlen)
{
    if (!json_is_string(v)) {
        snprintf(errbuf, errlen, "'%s' must be a string", key);
        return DD_E_PARSE;
    }
    if (strlen(json_string_value(v)) >= len) {
        snprintf(errbuf, errlen, "'%s' is longer than %zu characters", key, len - 1);
        return DD_E_RANGE;
    }
    snprintf(dst, len, "%s", json_string_value(v));
    return 0;
}

int dd_daemon_config_file(struct dd_daemon_config *c, const char *path, char *errbuf, size_t errlen)
{
    static const struct {
        const char *key;
        size_t offset, len;
    } strings[] = {
        {"role", offsetof(struct dd_daemon_config, role),
         sizeof(((struct dd_daemon_config *)0)->role)},
        {"listen", offsetof(struct dd_daemon_config, listen), 128},
        {"data_dir", offsetof(struct dd_daemon_config, data_dir), 1024},
        {"source", offsetof(struct dd_daemon_config, source), 1200},
        {"proc_root", offsetof(struct dd_daemon_config, proc_root), 1024},
        {"sys_root", offsetof(struct dd_daemon_config, sys_root), 1024},
        {"token_file", offsetof(struct dd_daemon_config, token_file), 1024},
        {"tls_cert", offsetof(struct dd_daemon_config, tls_cert), 1024},
        {"tls_key", offsetof(struct dd_daemon_config, tls_key), 1024},
        {"tls_client_ca", offsetof(struct dd_daemon_config, tls_client_ca), 1024},
        {"log_level", offsetof(struct dd_daemon_config, log_level), 16},
        {"prior_file", offsetof(struct dd_daemon_config, prior_file), 1024},
    };
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *key;
    char why[256];
    int r = 0;

    if (!doc) {
        snprintf(errbuf, errlen, "config %s: line %d, column %d: %s", path, jerr.line, jerr.column,
                 jerr.text);
        return DD_E_PARSE;
    }
    if (!json_is_object(doc)) {
        snprintf(errbuf, errlen, "config %s: must be a JSON object", path);
        json_decref(doc);
        return DD_E_PARSE;
    }
    json_object_foreach(doc, key, v)
    {
        bool known = false;
        why[0] = '\0';
        for (size_t i = 0; i < DD_ARRAY_SIZE(strings) && !known; i++) {
            if (strcmp(key, strings[i].key) == 0) {
                known = true;
                r = set_str((char *)c + strings[i].offset, strings[i].len, v, key, why,
                            sizeof(why));
            }
        }
        if (known) {
        } else if (strcmp(key, "interval") == 0) {
            if (!json_is_number(v))
                r = DD_E_PARSE, snprintf(why, sizeof(why), "'interval' must be a number");
            else
                c->interval = json_number_value(v);
        } else if (strcmp(key, "retention_days") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 3650)
                r = DD_E_RANGE, snprintf(why, sizeof(why), "'retention_days' must be 0..3650");
            else
                c->retention_days = (unsigned)json_integer_value(v);
        } else if (strcmp(key, "min_train_samples") == 0 || strcmp(key, "retrain_every") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 100000000) {
                r = DD_E_RANGE;
                snprintf(why, sizeof(why), "'%s' must be an integer 1..100000000", key);
            } else if (key[0] == 'm') {
                c->min_train_samples = (unsigned)json_integer_value(v);
            } else {
                c->retrain_every = (unsigned)json_integer_value(v);
            }
        } else if (strcmp(key, "estimate_roots") == 0) {
            size_t i;
            json_t *e;
            if (!json_is_array(v) || json_array_size(v) > DD_DAEMON_MAX_ESTIMATE_ROOTS) {
                r = DD_E_PARSE;
                snprintf(why, sizeof(why), "'estimate_roots' must be an array of at most %d paths",
                         DD_DAEMON_MAX_ESTIMATE_ROOTS);
            } else {
                c->n_estimate_roots = 0;
                json_array_foreach(v, i, e)
                {
                    r = set_str(c->estimate_roots[i], sizeof(c->estimate_roots[i]), e,
                                "estimate_roots[]", why, sizeof(why));
                    if (r < 0)
                        break;
                    c->n_estimate_roots++;
                }
            }
        } else {
            r = DD_E_PARSE;
            snprintf(why, sizeof(why), "unknown key '%s'", key);
        }
        if (r < 0) {
            snprintf(errbuf, errlen, "config %s: %s", path, why);
            break;
        }
    }
    json_decref(doc);
    return r;
}

int dd_daemon_config_check(const struct dd_daemon_config *c, char *errbuf, size_t errlen)
{
    if (strcmp(c->role, "node") != 0 && strcmp(c->role, "placement") != 0 &&
        strcmp(c->role, "all") != 0) {
        snprintf(errbuf, errlen, "role '%s': expected node, placement or all", c->role);
        return DD_E_USAGE;
    }
    if (!(c->interval >= 0.01 && c->interval <= 3600)) {
        snprintf(errbuf, errlen, "interval %g: expected 0.01..3600 seconds", c->interval);
        return DD_E_USAGE;
    }
    if (!c->data_dir[0]) {
        snprintf(errbuf, errlen, "data directory: empty");
        return DD_E_USAGE;
    }
    return 0;
}

char *dd_daemon_config_json(const struct dd_daemon_config *c)
{
    json_t *roots = json_array(), *o;
    char *s;
    for (size_t i = 0; i < c->n_estimate_roots; i++)
        json_array_append_new(roots, json_string(c->estimate_roots[i]));
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:b, s:b, s:o, s:i, s:s, s:i, s:i, s:s}",
                  "role", c->role, "listen", c->listen, "data_dir", c->data_dir, "source",
                  c->source, "proc_root", c->proc_root, "sys_root", c->sys_root, "interval",
                  c->interval, "token", c->token_file[0] != '\0', "tls", c->tls_cert[0] != '\0',
                  "estimate_roots", roots, "retention_days", (int)c->retention_days, "log_level",
                  c->log_level, "min_train_samples", (int)c->min_train_samples, "retrain_every",
                  (int)c->retrain_every, "prior_file", c->prior_file);
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* ---- sampling ---- */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static struct prev_volume *find_prev(struct dd_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->n_prev; i++) {
        if (strcmp(d->prev[i].name, name) == 0)
            return &d->prev[i];
    }
    return NULL;
}

/* The per-volume document: identity, derived figures and, from the second
 * sample on, the interval's rates, VDO CPU and the feature vector. */
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

/* Writes an interval needs before its VDO CPU per GiB counts as the cost:
 * 4 MiB, about 40 clock ticks of CPU at the costs seen on real VDO. */
#define MIN_COST_BLOCKS 1024u

static json_t *volume_doc(const struct dd_vdo_volume *v, const struct prev_volume *p, double dt,
                          const struct dd_vdo_cpu *cpu, const struct node_now *node,
                          const struct dd_diskstats *prev_disks)
{
    json_t *o = json_object(), *f = json_object();
    struct dd_vdo_derived der;
    struct dd_vdo_rates r = {0};
    uint64_t instance = 0, w1 = 0, w2 = 0, physical = 0, data = 0, overhead = 0;
    bool have_der =
        v->have_stats && dd_vdo_derive(&v->stats, v->have_config ? &v->config : NULL, &der) == 0;
    const struct dd_vdo_instance_cpu *ic = NULL;

    json_object_set_new(o, "name", json_string(v->name));
    json_object_set_new(o, "mode",
                        v->have_stats && dd_vdo_stats_get(&v->stats, "mode")
                            ? json_string(dd_vdo_stats_get(&v->stats, "mode"))
                            : json_null());
    if (v->stats_error[0])
        json_object_set_new(o, "error", json_string(v->stats_error));
    if (!have_der) {
        json_object_set_new(o, "features", f);
        return o;
    }
    (void)dd_vdo_stats_u64(&v->stats, "instance", &instance);
    (void)dd_vdo_stats_u64(&v->stats, "physicalBlocks", &physical);
    (void)dd_vdo_stats_u64(&v->stats, "dataBlocksUsed", &data);
    (void)dd_vdo_stats_u64(&v->stats, "overheadBlocksUsed", &overhead);
    json_object_set_new(o, "instance", json_integer((json_int_t)instance));
    json_object_set_new(o, "size_kb", json_integer((json_int_t)der.size_kb));
    json_object_set_new(o, "used_kb", json_integer((json_int_t)der.used_kb));
    json_object_set_new(o, "used_percent", json_integer(der.used_percent));
    json_object_set_new(o, "saving_percent", json_integer(der.saving_percent));

    /* features (DESIGN.md names) that one sample gives */
    json_object_set_new(f, "dedup_ratio", num_or_null(der.dedup_ratio));
    json_object_set_new(f, "index_entries", json_integer((json_int_t)der.index_entries));
    json_object_set_new(f, "index_fill", num_or_null(der.index_fill));
    json_object_set_new(f, "stored_gib",
                        json_real((double)data * (double)der.block_size / 1073741824.0));
    json_object_set_new(
        f, "physical_used_fraction",
        num_or_null(physical ? (double)(data + overhead) / (double)physical : (double)NAN));
    json_object_set_new(f, "compression",
                        json_integer(v->have_status ? (v->status.compression ? 1 : 0) : 0));
    json_object_set_new(f, "packer_savings", num_or_null(der.packer_savings));
    json_object_set_new(f, "operating_mode_normal", json_integer(der.normal ? 1 : 0));

    if (p && dd_vdo_rates(&p->stats, &v->stats, dt, &r) == 0 && r.valid) {
        json_object_set_new(f, "write_mbps", json_real(r.write_mb_per_s));
        json_object_set_new(f, "read_mbps", json_real(r.bios_in_read * 4096.0 / 1e6));
        json_object_set_new(f, "write_iops", json_real(r.bios_in_write));
        json_object_set_new(f, "dedup_hit_rate", num_or_null(r.dedup_hit_rate));
        json_object_set_new(f, "journal_blocks_per_s", json_real(r.journal_blocks_per_s));
        json_object_set_new(f, "block_map_pages_per_s", json_real(r.block_map_pages_per_s));
        /* the packer's savings over this interval, when it stored anything:
         * the lifetime share lags what new writes get (the VM series saw
         * 0.03-0.14 while every new block was packed) */
        uint64_t f1 = 0, f2 = 0, c1 = 0, c2 = 0, d1 = 0, d2 = 0;
        if (dd_vdo_stats_u64(&p->stats, "packer.compressedFragmentsWritten", &f1) == 0 &&
            dd_vdo_stats_u64(&v->stats, "packer.compressedFragmentsWritten", &f2) == 0 &&
            dd_vdo_stats_u64(&p->stats, "packer.compressedBlocksWritten", &c1) == 0 &&
            dd_vdo_stats_u64(&v->stats, "packer.compressedBlocksWritten", &c2) == 0 &&
            dd_vdo_stats_u64(&p->stats, "dataBlocksUsed", &d1) == 0 &&
            dd_vdo_stats_u64(&v->stats, "dataBlocksUsed", &d2) == 0 && f2 >= f1 && c2 >= c1 &&
            d2 > d1) {
            double saved =
                (double)(f2 - f1) > (double)(c2 - c1) ? (double)((f2 - f1) - (c2 - c1)) : 0.0;
            json_object_set_new(f, "packer_savings",
                                json_real(saved / ((double)(d2 - d1) + saved)));
        }
    }
    if (cpu && instance <= UINT32_MAX)
        ic = dd_vdo_cpu_for_instance(cpu, (uint32_t)instance);
    if (ic) {
        json_t *kinds = json_object();
        for (size_t k = 0; k < ic->n_kinds; k++)
            json_object_set_new(kinds, ic->kinds[k].kind, json_real(ic->kinds[k].seconds));
        json_object_set_new(o, "vdo_cpu_seconds", json_real(ic->seconds));
        json_object_set_new(o, "vdo_cpu_seconds_by_queue", kinds);
        /* at least MIN_COST_BLOCKS written: a trickle (writes VDO counts
         * after the writer's fsync returned) over a clock tick of CPU is not
         * a cost (the VM series saw 61 CPU-s/GiB from 232 blocks) */
        if (p && r.valid && dd_vdo_stats_u64(&p->stats, "biosIn.write", &w1) == 0 &&
            dd_vdo_stats_u64(&v->stats, "biosIn.write", &w2) == 0 && w2 >= w1 + MIN_COST_BLOCKS)
            /* target: cost = VDO thread CPU-seconds per GiB written */
            json_object_set_new(
                f, "cost", json_real(ic->seconds / ((double)(w2 - w1) * 4096.0 / 1073741824.0)));
    }
    if (node) {
        /* node load: part of every volume's feature vector (DESIGN.md) */
        json_object_set_new(f, "node_cpu_util_ex_vdo", num_or_null(node->cpu_util_ex_vdo));
        json_object_set_new(f, "cpu_psi", num_or_null(node->cpu_psi));
        json_object_set_new(f, "io_psi", num_or_null(node->io_psi));
        json_object_set_new(f, "run_queue", num_or_null(node->run_queue));
        if (node->have_disks && prev_disks) {
            const struct dd_diskstat *cur = volume_disk(&node->disks, v, instance);
            const struct dd_diskstat *old = volume_disk(prev_disks, v, instance);
            json_t *vd = disk_doc(old, cur, dt);
            json_t *bd = disk_doc(backing_disk(prev_disks, v), backing_disk(&node->disks, v), dt);
            json_t *lat = vd ? json_object_get(vd, "write_latency_ms") : NULL;
            if (lat && json_is_number(lat))
                /* target: latency = device write latency, ms */
                json_object_set(f, "latency", lat);
            json_object_set_new(o, "disks",
                                json_pack("{s:o, s:o}", "vdo", vd ? vd : json_null(), "backing",
                                          bd ? bd : json_null()));
        }
    }
    json_object_set_new(o, "features", f);
    return o;
}

static void remember(struct dd_daemon *d, struct dd_vdo_volume *vols, size_t n)
{
    for (size_t i = 0; i < d->n_prev; i++)
        dd_vdo_stats_release(&d->prev[i].stats);
    dd_free(d->prev);
    d->prev = dd_calloc(n ? n : 1, sizeof(*d->prev));
    d->n_prev = 0;
    if (!d->prev)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!vols[i].have_stats)
            continue;
        snprintf(d->prev[d->n_prev].name, sizeof(d->prev[d->n_prev].name), "%s", vols[i].name);
        d->prev[d->n_prev].stats = vols[i].stats; /* moved */
        memset(&vols[i].stats, 0, sizeof(vols[i].stats));
        vols[i].have_stats = false;
        d->n_prev++;
    }
}

/* A label value as the text format wants it: backslash, quote and newline
 * escaped (dm names may hold any of them). */
static void label_value(FILE *m, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', m);
        if (*v == '\n')
            fputs("\\n", m);
        else
            fputc(*v, m);
    }
}

/* Prometheus text format: every family is one contiguous group with its own
 * HELP and TYPE, so volumes are the inner loop. */
static void metrics_volumes(FILE *m, json_t *arr)
{
    static const char *const extra[] = {"used_percent", "saving_percent", "vdo_cpu_seconds"};
    json_t *keys = json_object(), *vol;
    const char *key;
    json_t *val;
    size_t i;

    json_array_foreach(arr, i, vol)
    {
        json_object_foreach(json_object_get(vol, "features"), key, val)
        {
            if (json_is_number(val))
                json_object_set_new(keys, key, json_true());
        }
    }
    json_object_foreach(keys, key, val)
    {
        fprintf(m, "# HELP dedupd_volume_%s Volume feature %s (DESIGN.md names).\n", key, key);
        fprintf(m, "# TYPE dedupd_volume_%s gauge\n", key);
        json_array_foreach(arr, i, vol)
        {
            json_t *x = json_object_get(json_object_get(vol, "features"), key);
            if (json_is_number(x)) {
                fprintf(m, "dedupd_volume_%s{volume=\"", key);
                label_value(m, json_string_value(json_object_get(vol, "name")));
                fprintf(m, "\"} %.10g\n", json_number_value(x));
            }
        }
    }
    for (size_t k = 0; k < DD_ARRAY_SIZE(extra); k++) {
        fprintf(m, "# HELP dedupd_volume_%s Volume %s.\n# TYPE dedupd_volume_%s gauge\n", extra[k],
                extra[k], extra[k]);
        json_array_foreach(arr, i, vol)
        {
            json_t *x = json_object_get(vol, extra[k]);
            if (json_is_number(x)) {
                fprintf(m, "dedupd_volume_%s{volume=\"", extra[k]);
                label_value(m, json_string_value(json_object_get(vol, "name")));
                fprintf(m, "\"} %.10g\n", json_number_value(x));
            }
        }
    }
    json_decref(keys);
}

/* Every GPU NVML reports, or why there are none. */
static json_t *gpus_doc(struct dd_nvml *nvml)
{
    const char *why = NULL;
    struct dd_gpus g = {0};
    json_t *arr;

    if (!nvml)
        return json_pack("{s:b, s:s}", "available", 0, "reason", "NVML session not opened");
    if (!dd_nvml_available(nvml, &why))
        return json_pack("{s:b, s:s}", "available", 0, "reason", why ? why : "unavailable");
    if (dd_nvml_sample(nvml, &g) < 0 || !g.available)
        return json_pack("{s:b, s:s}", "available", 0, "reason",
                         g.reason[0] ? g.reason : "NVML sample failed");
    arr = json_array();
    for (uint32_t i = 0; i < g.n; i++) {
        const struct dd_gpu *x = &g.gpus[i];
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
    return json_pack("{s:b, s:i, s:o}", "available", 1, "count", (int)g.n_total, "devices", arr);
}

static const char *qos_name(enum dd_pod_qos q)
{
    return q == DD_POD_GUARANTEED ? "guaranteed"
                                  : (q == DD_POD_BURSTABLE ? "burstable" : "besteffort");
}

/* Kubernetes pods on this node from cgroup v2 (kubelet's hierarchy under
 * sys_root): usage now and, from the second sample on, rates. No hierarchy
 * is no pods. */
static json_t *pods_doc(struct dd_daemon *d, double dt, uint64_t *errors)
{
    struct dd_pods now = {0};
    json_t *arr = json_array();
    int r = dd_node_pods_scan(d->cfg.sys_root, &now);

    if (r < 0) {
        (*errors)++;
        /* rates start again from the next good scan, not across the gap */
        dd_pods_release(&d->prev_pods);
        d->have_prev_pods = false;
        return json_pack("{s:i, s:o, s:s}", "count", 0, "pods", arr, "error", dd_strerror(r));
    }
    for (size_t i = 0; i < now.n; i++) {
        const struct dd_pod *p = &now.pods[i];
        const struct dd_pod *old = d->have_prev_pods ? dd_pods_find(&d->prev_pods, p->uid) : NULL;
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
        if (p->has_io) {
            json_object_set_new(o, "io_read_bytes", json_integer((json_int_t)rb));
            json_object_set_new(o, "io_write_bytes", json_integer((json_int_t)wb));
        }
        /* rates only across the same pod whose counters did not go back */
        if (old && dt > 0 && p->cpu.usage_usec >= old->cpu.usage_usec)
            json_object_set_new(
                o, "cpu_cores",
                json_real((double)(p->cpu.usage_usec - old->cpu.usage_usec) / 1e6 / dt));
        if (old && dt > 0 && p->has_io && old->has_io) {
            for (size_t k = 0; k < old->io.n; k++) {
                orb += old->io.devs[k].rbytes;
                owb += old->io.devs[k].wbytes;
            }
            if (rb >= orb && wb >= owb) {
                json_object_set_new(o, "io_read_mbps", json_real((double)(rb - orb) / 1e6 / dt));
                json_object_set_new(o, "io_write_mbps", json_real((double)(wb - owb) / 1e6 / dt));
            }
        }
        json_array_append_new(arr, o);
    }
    dd_pods_release(&d->prev_pods);
    d->prev_pods = now;
    d->have_prev_pods = true;
    return json_pack("{s:i, s:o}", "count", (int)json_array_size(arr), "pods", arr);
}

static void metric_family(FILE *m, const char *name, const char *type, const char *help)
{
    fprintf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * One family with a sample per item of arr (GPUs, pods): the label from
 * the item's label_key (an integer or an escaped string), the value from
 * its key when the item has a number there. With always false, an empty
 * arr prints nothing at all.
 */
static void item_family(FILE *m, json_t *arr, const char *label, const char *label_key,
                        const char *key, const char *name, const char *help, bool always)
{
    json_t *x;
    size_t i;
    if (!always && !json_array_size(arr))
        return;
    metric_family(m, name, "gauge", help);
    json_array_foreach(arr, i, x)
    {
        json_t *l = json_object_get(x, label_key), *v = json_object_get(x, key);
        if (!json_is_number(v))
            continue;
        fprintf(m, "%s{%s=\"", name, label);
        if (json_is_integer(l))
            fprintf(m, "%lld", json_integer_value(l));
        else
            label_value(m, json_string_value(l));
        if (json_is_integer(v))
            fprintf(m, "\"} %lld\n", json_integer_value(v));
        else
            fprintf(m, "\"} %.10g\n", json_number_value(v));
    }
}

/* Node load, GPUs and pods from the node document. */
static void metrics_node(FILE *m, json_t *node)
{
    static const struct {
        const char *key, *name, *help;
    } gauges[] = {
        {"cpu_util", "dedupd_node_cpu_utilization", "Node CPU busy share over the interval (0-1)."},
        {"node_cpu_util_ex_vdo", "dedupd_node_cpu_utilization_ex_vdo",
         "Node CPU busy share without the VDO kernel threads (0-1)."},
        {"load1", "dedupd_node_load1", "1-minute load average."},
        {"run_queue", "dedupd_node_run_queue", "Runnable tasks (/proc/loadavg)."},
        {"cpu_psi", "dedupd_node_cpu_pressure_some_avg10", "CPU pressure, some, avg10 (%)."},
        {"io_psi", "dedupd_node_io_pressure_some_avg10", "IO pressure, some, avg10 (%)."},
        {"mem_available_gib", "dedupd_node_memory_available_gib", "MemAvailable in GiB."},
        {"vdo_cpu_seconds", "dedupd_node_vdo_cpu_seconds",
         "CPU seconds of all VDO kernel threads in the last interval."},
    };
    json_t *gpus = json_object_get(node, "gpus"), *pods = json_object_get(node, "pods");

    for (size_t k = 0; k < DD_ARRAY_SIZE(gauges); k++) {
        json_t *v = json_object_get(node, gauges[k].key);
        if (!json_is_number(v))
            continue;
        metric_family(m, gauges[k].name, "gauge", gauges[k].help);
        fprintf(m, "%s %.10g\n", gauges[k].name, json_number_value(v));
    }
    metric_family(m, "dedupd_gpus_available", "gauge", "1 when NVML can sample GPUs.");
    fprintf(m, "dedupd_gpus_available %d\n", json_is_true(json_object_get(gpus, "available")));
    json_t *devs = json_object_get(gpus, "devices"), *list = json_object_get(pods, "pods");
    item_family(m, devs, "gpu", "index", "util_gpu_percent", "dedupd_gpu_utilization_percent",
                "Share of the last NVML period a kernel ran.", false);
    item_family(m, devs, "gpu", "index", "memory_used_bytes", "dedupd_gpu_memory_used_bytes",
                "GPU memory in use.", false);
    metric_family(m, "dedupd_pods", "gauge", "Kubernetes pods found in cgroup v2.");
    fprintf(m, "dedupd_pods %zu\n", json_array_size(list));
    item_family(m, list, "pod_uid", "uid", "cpu_cores", "dedupd_pod_cpu_cores",
                "Pod CPU use over the interval, in cores.", true);
    item_family(m, list, "pod_uid", "uid", "memory_current_bytes", "dedupd_pod_memory_bytes",
                "Pod memory.current.", true);
}

/* A volume that cannot be read (gone between listing and reading, a stats
 * message refused...) is logged when its error first shows or changes, and
 * once more when it reads again: a warning per change, not per interval. */
static void note_volume_error(struct dd_daemon *d, const struct dd_vdo_volume *v)
{
    const char *err = v->stats_error[0] ? v->stats_error : NULL;
    json_t *old;

    if (!d->vol_errors && !(d->vol_errors = json_object()))
        return;
    old = json_object_get(d->vol_errors, v->name);
    if (err && !(old && strcmp(json_string_value(old), err) == 0)) {
        dd_log_warning("volume %s: %s", v->name, err);
        json_object_set_new(d->vol_errors, v->name, json_string_nocheck(err));
    } else if (!err && old) {
        dd_log_info("volume %s: readable again", v->name);
        json_object_del(d->vol_errors, v->name);
    }
}

static void sample_once(struct dd_daemon *d, double dt)
{
    char **names = NULL, errbuf[512] = "";
    size_t n = 0;
    struct dd_vdo_volume *vols = NULL;
    struct dd_vdo_threads th = {0};
    struct dd_vdo_cpu cpu = {0};
    bool have_cpu = false;
    const char *pr;
    json_t *arr = json_array(), *docs = json_object();
    struct dd_store_batch *b = NULL;
    uint64_t now = wall_ms(), errors = 0, dropped = 0;
    char *m = NULL, *vj = NULL, *nj = NULL;
    size_t mlen = 0;
    FILE *mf;
    int r;

    r = dd_vdo_source_list(d->src, &names, &n, errbuf, sizeof(errbuf));
    if (r < 0) {
        if (!d->dm_absent_reported) /* plainly, once */
            dd_log_warning("no VDO volumes can be read: %s; sampling the node only", errbuf);
        d->dm_absent_reported = true;
        errors++;
        n = 0;
    }
    vols = dd_calloc(n ? n : 1, sizeof(*vols));
    for (size_t i = 0; vols && i < n; i++) {
        if (dd_vdo_source_read(d->src, names[i], &vols[i]) < 0)
            errors++;
        note_volume_error(d, &vols[i]);
    }
    pr = d->cfg.proc_root;
    if (strcmp(d->cfg.proc_root, "/proc") == 0 && dd_vdo_source_proc_root(d->src))
        pr = dd_vdo_source_proc_root(d->src);
    if (dd_vdo_threads_scan(pr, &th) == 0) {
        have_cpu = d->have_prev_threads &&
                   dd_vdo_cpu_delta(&d->prev_threads, &th, dd_clock_ticks(), &cpu) == 0;
        dd_vdo_threads_release(&d->prev_threads);
        d->prev_threads = th;
        d->have_prev_threads = true;
    } else {
        errors++;
    }

    /* the node: CPU (without the VDO threads' share), load, pressure, memory, disks */
    struct node_now nn = {.cpu_util = (double)NAN,
                          .cpu_util_ex_vdo = (double)NAN,
                          .load1 = (double)NAN,
                          .cpu_psi = (double)NAN,
                          .io_psi = (double)NAN,
                          .mem_available_gib = (double)NAN,
                          .run_queue = (double)NAN};
    struct dd_parse_error perr;
    struct dd_cpu_stat cs;
    struct dd_loadavg la;
    struct dd_meminfo mi;
    struct dd_node_psi psi;
    double vdo_total = 0;
    for (size_t i = 0; have_cpu && i < cpu.n; i++)
        vdo_total += cpu.instances[i].seconds;
    if (dd_node_read_stat(pr, &cs, &perr) == 0) {
        struct dd_cpu_util cu;
        if (d->have_prev_cpu &&
            dd_cpu_util(&d->prev_cpu.all, &cs.all, dd_clock_ticks(), vdo_total, &cu) == 0 &&
            cu.valid) {
            nn.cpu_util = cu.util;
            nn.cpu_util_ex_vdo = cu.util_excl_vdo;
        }
        dd_cpu_stat_release(&d->prev_cpu);
        d->prev_cpu = cs;
        d->have_prev_cpu = true;
    } else {
        errors++;
    }
    if (dd_node_read_loadavg(pr, &la, &perr) == 0) {
        nn.load1 = la.load1;
        nn.run_queue = la.run_queue;
    }
    if (dd_node_read_meminfo(pr, &mi, &perr) == 0)
        nn.mem_available_gib = (double)mi.mem_available_kb / 1048576.0;
    if (dd_node_read_psi(pr, &psi, &perr) == 0) {
        if (psi.cpu_available && psi.cpu.some.present)
            nn.cpu_psi = psi.cpu.some.avg10;
        if (psi.io_available && psi.io.some.present)
            nn.io_psi = psi.io.some.avg10;
    }
    nn.have_disks = dd_node_read_diskstats(pr, &nn.disks, &perr) == 0;

    if (dd_store_batch_begin(d->store, &b) < 0)
        b = NULL;
    for (size_t i = 0; vols && i < n; i++) {
        json_t *doc = volume_doc(&vols[i], find_prev(d, vols[i].name), dt, have_cpu ? &cpu : NULL,
                                 &nn, d->have_prev_disks ? &d->prev_disks : NULL);
        char series[160], *text = json_dumps(doc, JSON_COMPACT);
        snprintf(series, sizeof(series), "vol/%.150s", vols[i].name);
        if (b && text)
            (void)dd_store_batch_put_sample(b, series, now, text, strlen(text));
        free(text);
        json_object_set(docs, vols[i].name, doc);
        json_array_append_new(arr, doc);
    }
    json_t *node = json_pack(
        "{s:I, s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:f}", "time_ms", (json_int_t)now,
        "volumes", (int)n, "vdo_threads", (json_int_t)(have_cpu ? th.n : 0), "cpu_util",
        num_or_null(nn.cpu_util), "node_cpu_util_ex_vdo", num_or_null(nn.cpu_util_ex_vdo), "load1",
        num_or_null(nn.load1), "run_queue", num_or_null(nn.run_queue), "cpu_psi",
        num_or_null(nn.cpu_psi), "io_psi", num_or_null(nn.io_psi), "mem_available_gib",
        num_or_null(nn.mem_available_gib), "vdo_cpu_seconds", vdo_total);
    json_object_set_new(node, "gpus", gpus_doc(d->nvml));
    json_object_set_new(node, "pods", pods_doc(d, dt, &errors));
    if (nn.have_disks) {
        dd_diskstats_release(&d->prev_disks);
        d->prev_disks = nn.disks;
        d->have_prev_disks = true;
        nn.have_disks = false;
    }
    nj = json_dumps(node, JSON_COMPACT);
    if (b && nj)
        (void)dd_store_batch_put_sample(b, "node", now, nj, strlen(nj));
    if (b && dd_store_batch_commit(b, false) < 0)
        dropped++;
    else if (b && d->model)
        dd_model_note_samples(d->model, n);
    if (d->samples % 60 == 0)
        (void)dd_store_retain(d->store, now);

    mf = open_memstream(&m, &mlen);
    if (mf) {
        struct dd_store_stats ss;
        metrics_volumes(mf, arr);
        metrics_node(mf, node);
        if (dd_store_get_stats(d->store, &ss) == 0) {
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
    json_t *top = json_pack("{s:o, s:I}", "volumes", arr, "time_ms", (json_int_t)now);
    vj = json_dumps(top, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(top);
    json_decref(node);
    remember(d, vols, n);

    pthread_mutex_lock(&d->lock);
    dd_free(d->volumes_json);
    free(d->node_json);
    free(d->metrics_text);
    json_decref(d->volume_docs);
    d->volumes_json = vj ? dd_strdup(vj) : NULL;
    d->node_json = nj;
    d->metrics_text = m;
    d->volume_docs = docs;
    d->samples++;
    d->sampler_errors += errors;
    d->dropped += dropped;
    d->ready = true;
    pthread_mutex_unlock(&d->lock);
    free(vj);

    for (size_t i = 0; i < n; i++) {
        if (vols)
            dd_vdo_volume_release(&vols[i]);
        dd_free(names[i]);
    }
    dd_free(vols);
    dd_free(names);
    dd_vdo_cpu_release(&cpu);
    dd_vdo_source_next(d->src);
}

static void *sampler_main(void *arg)
{
    struct dd_daemon *d = arg;
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);

    for (;;) {
        struct timespec now, until;
        double interval, dt;

        pthread_mutex_lock(&d->lock);
        interval = d->interval;
        pthread_mutex_unlock(&d->lock);
        clock_gettime(CLOCK_MONOTONIC, &now);
        dt = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
        last = now;
        /* a replay states its own interval: rates do not depend on pacing */
        if (dd_vdo_source_interval(d->src) > 0)
            dt = dd_vdo_source_interval(d->src);
        sample_once(d, dt);

        clock_gettime(CLOCK_REALTIME, &until);
        double secs = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + interval;
        until.tv_sec = (time_t)secs;
        until.tv_nsec = (long)((secs - (double)until.tv_sec) * 1e9);
        pthread_mutex_lock(&d->lock);
        while (!d->stop && pthread_cond_timedwait(&d->wake, &d->lock, &until) != ETIMEDOUT)
            ;
        bool stop = d->stop;
        pthread_mutex_unlock(&d->lock);
        if (stop)
            return NULL;
    }
}

/* ---- REST handlers ---- */

static int reply_copy(struct dd_daemon *d, char *const *text, struct dd_http_response *resp,
                      const char *type)
{
    int r;
    pthread_mutex_lock(&d->lock);
    if (!*text) {
        pthread_mutex_unlock(&d->lock);
        return dd_http_reply_error(resp, 503, "not_ready", "no sample has been taken yet");
    }
    r = dd_http_reply_text(resp, 200, type, *text, strlen(*text));
    pthread_mutex_unlock(&d->lock);
    return r;
}

static int h_healthz(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static int h_readyz(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    bool ready;
    (void)req;
    pthread_mutex_lock(&d->lock);
    ready = d->ready;
    pthread_mutex_unlock(&d->lock);
    if (!ready)
        return dd_http_reply_error(resp, 503, "not_ready", "no sample has been taken yet");
    return dd_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ready"));
}

static int h_volumes(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    (void)req;
    return reply_copy(d, &d->volumes_json, resp, "application/json");
}

static int h_node(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    (void)req;
    return reply_copy(d, &d->node_json, resp, "application/json");
}

static int h_volume(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    char *text = NULL;
    pthread_mutex_lock(&d->lock);
    json_t *doc = d->volume_docs ? json_object_get(d->volume_docs, req->params[0]) : NULL;
    if (doc)
        text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10));
    pthread_mutex_unlock(&d->lock);
    if (!text)
        return dd_http_reply_error(resp, 404, "not_found", "no VDO volume '%s'", req->params[0]);
    int r = dd_http_reply_text(resp, 200, "application/json", text, strlen(text));
    free(text);
    return r;
}

/* Parses a time query argument: Unix seconds (fractions allowed). */
static int time_arg(const struct dd_http_request *req, const char *name, uint64_t dflt,
                    uint64_t *ret_ms, struct dd_http_response *resp)
{
    const char *v = dd_http_query(req, name);
    double s;
    if (!v) {
        *ret_ms = dflt;
        return 0;
    }
    if (dd_parse_double(v, &s) < 0 || s > 1e11) {
        dd_http_reply_error(resp, 400, "bad_query",
                            "'%s' must be Unix seconds (a non-negative number), got '%.40s'", name,
                            v);
        return DD_E_PARSE;
    }
    *ret_ms = (uint64_t)(s * 1000.0);
    return 0;
}

static int h_history(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    uint64_t now = wall_ms(), from, to, step;
    struct dd_store_point *pts = NULL;
    size_t n = 0;
    bool truncated = false;
    char series[160];
    json_t *arr;
    int r;

    if (time_arg(req, "from", now > 3600000 ? now - 3600000 : 0, &from, resp) < 0 ||
        time_arg(req, "to", now, &to, resp) < 0 || time_arg(req, "step", 0, &step, resp) < 0)
        return 0;
    if (from > to)
        return dd_http_reply_error(resp, 400, "bad_query", "'from' is after 'to'");
    if (strlen(req->params[0]) > 150)
        return dd_http_reply_error(resp, 400, "bad_request", "volume name too long");
    snprintf(series, sizeof(series), "vol/%s", req->params[0]);
    struct dd_store_query q = {.series = series, .from_ms = from, .to_ms = to, .step_ms = step};
    r = dd_store_query_array(d->store, &q, &pts, &n, &truncated);
    if (r < 0)
        return dd_http_reply_error(resp, 500, "store", "history query failed: %s", dd_strerror(r));
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *sample = json_loadb(pts[i].value, pts[i].len, 0, NULL);
        json_array_append_new(arr, json_pack("{s:I, s:o}", "time_ms", (json_int_t)pts[i].ts_ms,
                                             "sample", sample ? sample : json_null()));
    }
    dd_store_points_free(pts, n);
    if (n == 0) {
        bool known;
        pthread_mutex_lock(&d->lock);
        known = d->volume_docs && json_object_get(d->volume_docs, req->params[0]);
        pthread_mutex_unlock(&d->lock);
        if (!known) {
            json_decref(arr);
            return dd_http_reply_error(resp, 404, "not_found",
                                       "no VDO volume '%s' now and no history for it",
                                       req->params[0]);
        }
    }
    return dd_http_reply_json(resp, 200,
                              json_pack("{s:s, s:I, s:I, s:I, s:b, s:o}", "name", req->params[0],
                                        "from_ms", (json_int_t)from, "to_ms", (json_int_t)to,
                                        "step_ms", (json_int_t)step, "truncated", truncated,
                                        "points", arr));
}

static int h_metrics(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)req;
    if (!f)
        return -ENOMEM;
    pthread_mutex_lock(&d->lock);
    fprintf(f,
            "# HELP dedupd_samples_total Sampling intervals completed.\n"
            "# TYPE dedupd_samples_total counter\ndedupd_samples_total %llu\n"
            "# HELP dedupd_sampler_errors_total Volume, /proc or listing reads that failed.\n"
            "# TYPE dedupd_sampler_errors_total counter\ndedupd_sampler_errors_total %llu\n"
            "# HELP dedupd_samples_dropped_total Intervals whose store write failed.\n"
            "# TYPE dedupd_samples_dropped_total counter\ndedupd_samples_dropped_total %llu\n",
            (unsigned long long)d->samples, (unsigned long long)d->sampler_errors,
            (unsigned long long)d->dropped);
    if (d->metrics_text)
        fputs(d->metrics_text, f);
    pthread_mutex_unlock(&d->lock);
    if (d->model)
        dd_model_metrics(d->model, f);
    dd_http_metrics(d->http, f);
    fclose(f);
    int r = dd_http_reply_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    free(buf);
    return r;
}

/* ---- estimate jobs ---- */

/* Is path (resolved) under one of the allowed roots? */
static bool allowed_path(struct dd_daemon *d, const char *path, char *why, size_t len)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        snprintf(why, len, "%.200s: %s", path, strerror(errno));
        return false;
    }
    for (size_t i = 0; i < d->cfg.n_estimate_roots; i++) {
        char root[PATH_MAX];
        size_t rl;
        if (!realpath(d->cfg.estimate_roots[i], root))
            continue;
        rl = strlen(root);
        if (strncmp(real, root, rl) == 0 && (real[rl] == '\0' || real[rl] == '/' || rl == 1))
            return true;
    }
    snprintf(why, len, "%.200s is outside the allowed estimate roots", path);
    return false;
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    int r = dd_scan_run(j->scan);
    j->result = r;
    __atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static int h_estimate_start(void *ctx, const struct dd_http_request *req,
                            struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    json_t *doc = dd_http_body_json(req, resp), *paths, *p;
    struct dd_scan_options o;
    struct dd_scan *scan = NULL;
    struct job *slot = NULL;
    size_t i, running = 0;
    char why[512];

    if (!doc)
        return 0;
    paths = json_object_get(doc, "paths");
    if (!json_is_array(paths) || json_array_size(paths) == 0 || json_array_size(paths) > 64) {
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request",
                                   "'paths' must be an array of 1..64 path strings");
    }
    if (d->cfg.n_estimate_roots == 0) {
        json_decref(doc);
        return dd_http_reply_error(resp, 403, "forbidden",
                                   "no estimate roots are configured (estimate_roots)");
    }
    dd_scan_options_init(&o);
    json_t *mode = json_object_get(doc, "mode");
    if (mode && !(json_is_string(mode) && (strcmp(json_string_value(mode), "exact") == 0 ||
                                           strcmp(json_string_value(mode), "sampled") == 0))) {
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request", "'mode' must be exact or sampled");
    }
    if (mode)
        o.mode = strcmp(json_string_value(mode), "exact") == 0 ? DD_SCAN_MODE_EXACT
                                                               : DD_SCAN_MODE_SAMPLED;
    o.threads = 1; /* a background job must not take the node's CPUs */
    json_array_foreach(paths, i, p)
    {
        if (!json_is_string(p)) {
            json_decref(doc);
            return dd_http_reply_error(resp, 400, "bad_request", "paths[%zu] is not a string", i);
        }
        if (!allowed_path(d, json_string_value(p), why, sizeof(why))) {
            json_decref(doc);
            return dd_http_reply_error(resp, 403, "forbidden", "%s", why);
        }
    }
    if (dd_scan_new(&o, &scan) < 0) {
        json_decref(doc);
        return -ENOMEM;
    }
    json_array_foreach(paths, i, p)
    {
        if (dd_scan_add_path(scan, json_string_value(p)) < 0) {
            const struct dd_scan_input *in = dd_scan_get_input(scan, dd_scan_n_inputs(scan) - 1);
            int r = dd_http_reply_error(resp, 400, "bad_path", "%s: %s", json_string_value(p),
                                        in && in->n_errors ? in->errors[0].message : "unusable");
            dd_scan_free(scan);
            json_decref(doc);
            return r;
        }
    }
    json_decref(doc);

    pthread_mutex_lock(&d->lock);
    for (i = 0; i < MAX_JOBS; i++) {
        struct job *j = &d->jobs[i];
        if (j->started && !__atomic_load_n(&j->done, __ATOMIC_ACQUIRE))
            running++;
    }
    for (i = 0; i < MAX_JOBS && running < MAX_RUNNING_JOBS; i++) {
        struct job *j = &d->jobs[(d->next_job + i) % MAX_JOBS];
        if (!j->started || __atomic_load_n(&j->done, __ATOMIC_ACQUIRE)) {
            slot = j;
            break;
        }
    }
    if (slot) {
        if (slot->started) {
            pthread_join(slot->thread, NULL);
            dd_scan_free(slot->scan);
        }
        memset(slot, 0, sizeof(*slot));
        slot->id = ++d->next_job;
        slot->scan = scan;
        slot->started = pthread_create(&slot->thread, NULL, job_main, slot) == 0;
    }
    unsigned id = slot && slot->started ? slot->id : 0;
    pthread_mutex_unlock(&d->lock);
    if (!id) {
        dd_scan_free(scan);
        return dd_http_reply_error(resp, 429, "busy", "%d estimates are already running",
                                   MAX_RUNNING_JOBS);
    }
    return dd_http_reply_json(resp, 202,
                              json_pack("{s:i, s:s}", "id", (int)id, "status", "running"));
}

static int h_estimate_get(void *ctx, const struct dd_http_request *req,
                          struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    uint64_t id;
    json_t *out = NULL;

    if (dd_parse_u64(req->params[0], &id) < 0)
        return dd_http_reply_error(resp, 400, "bad_request", "job id must be a number");
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < MAX_JOBS; i++) {
        struct job *j = &d->jobs[i];
        if (!j->started || j->id != id)
            continue;
        uint64_t done, total;
        dd_scan_progress(j->scan, &done, &total);
        bool finished = __atomic_load_n(&j->done, __ATOMIC_ACQUIRE);
        out = json_pack("{s:i, s:s, s:I, s:I}", "id", (int)j->id, "status",
                        finished ? (j->result == 0 ? "done" : "failed") : "running", "bytes_done",
                        (json_int_t)done, "bytes_total", (json_int_t)total);
        if (finished)
            json_object_set_new(out, "result", dd_scan_to_json(j->scan));
        break;
    }
    pthread_mutex_unlock(&d->lock);
    if (!out)
        return dd_http_reply_error(resp, 404, "not_found", "no estimate job %llu",
                                   (unsigned long long)id);
    return dd_http_reply_json(resp, 200, out);
}

/* ---- start/stop ---- */

static int h_not_in_role(void *ctx, const struct dd_http_request *req,
                         struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    bool model = strncmp(req->path, "/v1/model", 9) == 0 || strcmp(req->path, "/v1/predict") == 0;
    return dd_http_reply_error(resp, 404, "not_served",
                               "%s is served by dedupd with role %s; this one has role %s",
                               req->path, model ? "placement or all" : "node or all", d->cfg.role);
}

/* ---- the cost model ---- */

static int h_model(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, dd_model_status(d->model));
}

/* Waits this long for a retrain before answering 202 with the run to poll:
 * an HTTP worker (two in the pool) is not held for a whole training. */
#define RETRAIN_WAIT_MS 10000u

static int h_model_retrain(void *ctx, const struct dd_http_request *req,
                           struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    int status = 500;
    json_t *doc;
    (void)req;
    doc = dd_model_retrain(d->model, RETRAIN_WAIT_MS, &status);
    if (status == 409 || status == 500) {
        int r =
            dd_http_reply_error(resp, status, status == 409 ? "not_enough_data" : "training_failed",
                                "%s", json_string_value(json_object_get(doc, "error")));
        json_decref(doc);
        return r;
    }
    return dd_http_reply_json(resp, status, doc);
}

static int h_model_run(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    uint64_t id;
    int status = 200;
    json_t *doc;

    if (dd_parse_u64(req->params[0], &id) < 0 || id == 0)
        return dd_http_reply_error(resp, 400, "bad_request", "run id: expected a positive integer");
    doc = dd_model_run(d->model, id, &status);
    if (!doc)
        return dd_http_reply_error(resp, 404, "not_found", "no run %llu (the last 8 runs are kept)",
                                   (unsigned long long)id);
    /* polling answers 200 with the run's own status inside */
    json_object_set_new(doc, "http_status", json_integer(status));
    return dd_http_reply_json(resp, 200, doc);
}

/* A what-if on a volume's latest features: the pod adds write_mbps at
 * duplicate_share, and cpu_load more of the node's CPU is taken. */
static int apply_what_if(float row[DD_CM_NFEATURES], json_t *wi, char *err, size_t len)
{
    static const char *const keys[] = {"write_mbps", "duplicate_share", "cpu_load"};
    double v[3] = {0, (double)NAN, 0};
    const char *key;
    json_t *x;

    if (!json_is_object(wi)) {
        snprintf(err, len, "what_if: expected an object");
        return -EINVAL;
    }
    json_object_foreach(wi, key, x)
    {
        size_t k = 0;
        while (k < 3 && strcmp(key, keys[k]) != 0)
            k++;
        if (k == 3) {
            snprintf(err, len, "what_if.%s: unknown (write_mbps, duplicate_share, cpu_load)", key);
            return -EINVAL;
        }
        if (!json_is_number(x) || !isfinite(json_number_value(x)) || json_number_value(x) < 0 ||
            (k > 0 && json_number_value(x) > 1) || json_number_value(x) > 1e6) {
            snprintf(err, len, "what_if.%s: expected a number %s", key,
                     k == 0 ? "0..1000000 (MB/s)" : "0..1 (a share)");
            return -EINVAL;
        }
        v[k] = json_number_value(x);
    }
    if (isfinite(v[1]) && !(v[0] > 0)) {
        snprintf(err, len,
                 "what_if.duplicate_share: the share of added writes; give "
                 "what_if.write_mbps > 0 with it");
        return -EINVAL;
    }
    double w0 = isfinite(row[DD_CM_WRITE_MBPS]) ? (double)row[DD_CM_WRITE_MBPS] : 0;
    double u0 = isfinite(row[DD_CM_DEDUP_HIT_RATE]) ? (double)row[DD_CM_DEDUP_HIT_RATE] : 0;
    double l0 =
        isfinite(row[DD_CM_NODE_CPU_UTIL_EX_VDO]) ? (double)row[DD_CM_NODE_CPU_UTIL_EX_VDO] : 0;
    if (v[0] > 0) {
        double u = isfinite(v[1]) ? (u0 * w0 + v[1] * v[0]) / (w0 + v[0]) : u0;
        row[DD_CM_WRITE_MBPS] = (float)(w0 + v[0]);
        double iops0 = isfinite(row[DD_CM_WRITE_IOPS]) ? (double)row[DD_CM_WRITE_IOPS] : 0;
        row[DD_CM_WRITE_IOPS] = (float)(iops0 + v[0] * 1e6 / 4096.0);
        row[DD_CM_DEDUP_HIT_RATE] = (float)u; /* dedup_ratio, a lifetime figure, stays */
    }
    row[DD_CM_NODE_CPU_UTIL_EX_VDO] = (float)(l0 + v[2] > 1 ? 1 : l0 + v[2]);
    return 0;
}

static int h_predict(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_daemon *d = ctx;
    json_t *doc = dd_http_body_json(req, resp), *vol, *feat, *wi, *out = NULL;
    float row[DD_CM_NFEATURES];
    char err[512] = "";
    const char *key;
    json_t *x;
    int r;

    if (!doc)
        return 0;
    json_object_foreach(doc, key, x)
    {
        if (strcmp(key, "volume") != 0 && strcmp(key, "features") != 0 &&
            strcmp(key, "what_if") != 0) {
            r = dd_http_reply_error(resp, 400, "bad_request",
                                    "%s: unknown field (volume, what_if, features)", key);
            json_decref(doc);
            return r;
        }
    }
    vol = json_object_get(doc, "volume");
    feat = json_object_get(doc, "features");
    wi = json_object_get(doc, "what_if");
    if ((vol != NULL) == (feat != NULL) || (feat && wi)) {
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request",
                                   "give either 'volume' (and optionally 'what_if') or 'features'");
    }
    if (feat) {
        r = dd_cm_row_from_json(feat, row, true, err, sizeof(err));
    } else if (!json_is_string(vol)) {
        r = -EINVAL;
        snprintf(err, sizeof(err), "volume: expected a volume name (string)");
    } else {
        pthread_mutex_lock(&d->lock);
        json_t *v = d->volume_docs ? json_object_get(d->volume_docs, json_string_value(vol)) : NULL;
        json_t *f = v ? json_object_get(v, "features") : NULL;
        r = f && json_is_number(json_object_get(f, "write_mbps"))
                ? dd_cm_row_from_json(f, row, false, err, sizeof(err))
                : -EINVAL;
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
            snprintf(err, sizeof(err),
                     v ? "volume: '%.128s' has no interval features yet (two samples needed)"
                       : "volume: no volume named '%.128s' on this node",
                     json_string_value(vol));
        if (r == 0 && wi)
            r = apply_what_if(row, wi, err, sizeof(err));
    }
    if (r < 0) {
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request", "%s", err);
    }
    json_decref(doc);
    r = dd_model_predict(d->model, row, &out, err, sizeof(err));
    if (r < 0)
        return dd_http_reply_error(resp, 500, "predict_failed", "%s", err);
    return dd_http_reply_json(resp, 200, out);
}

static int read_token(const char *path, char **ret, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char buf[512];
    size_t n;
    if (!f) {
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror(errno));
        return -errno;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n < 16) {
        snprintf(errbuf, errlen, "token file %s: the token must be at least 16 characters", path);
        return DD_E_USAGE;
    }
    *ret = dd_strdup(buf);
    return *ret ? 0 : -ENOMEM;
}

int dd_daemon_start(const struct dd_daemon_config *c, struct dd_daemon **ret, char *errbuf,
                    size_t errlen)
{
    struct dd_daemon *d = dd_calloc(1, sizeof(*d));
    struct dd_store_options so;
    struct dd_http_config hc = {0};
    char *token = NULL;
    bool node_side;
    int r;

    if (!d)
        return -ENOMEM;
    d->cfg = *c;
    d->interval = c->interval;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->wake, NULL);

    dd_store_options_init(&so);
    so.retention_ms = (uint64_t)c->retention_days * 24u * 3600u * 1000u;
    r = dd_store_open(c->data_dir, &so, &d->store, errbuf, errlen);
    if (r < 0)
        goto fail;
    /* role placement keeps no node side: no VDO source, no sampler */
    node_side = strcmp(c->role, "placement") != 0;
    if (node_side && (r = dd_vdo_source_open(c->source, c->sys_root, &d->src, errbuf, errlen)) < 0)
        goto fail;
    if (c->token_file[0] && (r = read_token(c->token_file, &token, errbuf, errlen)) < 0)
        goto fail;
    /* GPUs through NVML loaded at run time; none is simply "unavailable" */
    if (node_side && dd_nvml_open(NULL, &d->nvml) < 0)
        d->nvml = NULL;
    if (!node_side)
        d->ready = true;
    /* the cost model: in roles all and placement */
    if (strcmp(c->role, "node") != 0) {
        struct dd_model_config mc;
        dd_model_config_defaults(&mc);
        mc.min_train_samples = c->min_train_samples;
        mc.retrain_every = c->retrain_every;
        snprintf(mc.prior_file, sizeof(mc.prior_file), "%s", c->prior_file);
        if ((r = dd_model_service_new(d->store, &mc, &d->model, errbuf, errlen)) < 0)
            goto fail;
    }

    static const struct dd_http_route templ[] = {
        {"GET", "/healthz", h_healthz, NULL, false, NULL},
        {"GET", "/readyz", h_readyz, NULL, false, NULL},
        {"GET", "/metrics", h_metrics, NULL, false, NULL},
        {"GET", "/v1/node", h_node, NULL, false, NULL},
        {"GET", "/v1/volumes", h_volumes, NULL, false, NULL},
        {"GET", "/v1/volumes/{name}", h_volume, NULL, false, NULL},
        {"GET", "/v1/volumes/{name}/history", h_history, NULL, false, NULL},
        {"POST", "/v1/estimate", h_estimate_start, NULL, true, NULL},
        {"GET", "/v1/estimate/{id}", h_estimate_get, NULL, false, NULL},
        {"GET", "/v1/model", h_model, NULL, false, NULL},
        {"POST", "/v1/model/retrain", h_model_retrain, NULL, true, NULL},
        {"GET", "/v1/model/runs/{id}", h_model_run, NULL, false, NULL},
        {"POST", "/v1/predict", h_predict, NULL, false, NULL},
    };
    struct dd_http_route routes[DD_ARRAY_SIZE(templ)];
    for (size_t i = 0; i < DD_ARRAY_SIZE(templ); i++) {
        routes[i] = templ[i];
        routes[i].ctx = d;
        /* node data lives with node-role daemons, the model with placement:
         * say so rather than 404 */
        bool model_route = strncmp(templ[i].pattern, "/v1/model", 9) == 0 ||
                           strcmp(templ[i].pattern, "/v1/predict") == 0;
        if (model_route ? !d->model : (!node_side && strncmp(templ[i].pattern, "/v1/", 4) == 0))
            routes[i].handler = h_not_in_role;
    }
    hc.listen = c->listen;
    hc.token = token;
    hc.tls_cert = c->tls_cert[0] ? c->tls_cert : NULL;
    hc.tls_key = c->tls_key[0] ? c->tls_key : NULL;
    hc.tls_client_ca = c->tls_client_ca[0] ? c->tls_client_ca : NULL;
    r = dd_http_start(&hc, routes, DD_ARRAY_SIZE(routes), &d->http, errbuf, errlen);
    dd_free(token);
    token = NULL;
    if (r < 0)
        goto fail;
    if (node_side && pthread_create(&d->sampler, NULL, sampler_main, d) != 0) {
        snprintf(errbuf, errlen, "cannot start the sampler thread");
        r = -EAGAIN;
        goto fail;
    }
    d->sampler_started = node_side;
    *ret = d;
    return 0;
fail:
    dd_free(token);
    dd_daemon_stop(d);
    return r;
}

void dd_daemon_reload(struct dd_daemon *d, const struct dd_daemon_config *c)
{
    pthread_mutex_lock(&d->lock);
    d->interval = c->interval;
    d->cfg.retention_days = c->retention_days;
    memcpy(d->cfg.estimate_roots, c->estimate_roots, sizeof(c->estimate_roots));
    d->cfg.n_estimate_roots = c->n_estimate_roots;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->lock);
    if (d->model) {
        struct dd_model_config mc;
        dd_model_config_defaults(&mc);
        mc.min_train_samples = c->min_train_samples;
        mc.retrain_every = c->retrain_every;
        dd_model_reconfigure(d->model, &mc);
    }
}

uint16_t dd_daemon_port(const struct dd_daemon *d)
{
    return dd_http_port(d->http);
}

void dd_daemon_stop(struct dd_daemon *d)
{
    if (!d)
        return;
    /* stop accepting first, then finish the sample in progress */
    dd_http_stop(d->http);
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->lock);
    if (d->sampler_started)
        pthread_join(d->sampler, NULL);
    for (size_t i = 0; i < MAX_JOBS; i++) {
        if (d->jobs[i].started) {
            dd_scan_cancel(d->jobs[i].scan);
            pthread_join(d->jobs[i].thread, NULL);
            dd_scan_free(d->jobs[i].scan);
        }
    }
    for (size_t i = 0; i < d->n_prev; i++)
        dd_vdo_stats_release(&d->prev[i].stats);
    dd_free(d->prev);
    dd_vdo_threads_release(&d->prev_threads);
    dd_cpu_stat_release(&d->prev_cpu);
    dd_diskstats_release(&d->prev_disks);
    dd_pods_release(&d->prev_pods);
    json_decref(d->vol_errors);
    dd_model_service_free(d->model); /* a training in progress finishes */
    dd_nvml_free(d->nvml);
    dd_vdo_source_free(d->src);
    dd_store_free(d->store); /* committed batches are in the WAL */
    dd_free(d->volumes_json);
    free(d->node_json);
    free(d->metrics_text);
    json_decref(d->volume_docs);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->wake);
    dd_free(d);
}
