/*
 * dedupctl vdostats: the vdostats 8.x output (default df table,
 * --human-readable, --si, --verbose) from the same sources the daemon reads,
 * so scripts written for vdostats keep working; --json gives every key plus
 * the derived figures, status, table and config.
 *
 * Devices are matched as vdostats matches them: by dm name, by "dm-N", or by
 * a path that resolves to /dev/dm-N (or ends in /mapper/<name>).
 * --json --interval S takes a second sample S seconds later (a replay moves
 * to its next snapshot and uses replay.json's interval) and adds, per volume,
 * the per-second rates and the CPU time of the volume's VDO threads over the
 * interval, per queue type and per GiB written. The volume's threads are
 * found through its `instance` key in each sample, since instance numbers
 * change when a volume is reloaded.
 *
 * Exit status: 0 ok; 1 no VDO device, an unknown device, or a source error;
 * 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/dedupctl.h"
#include "dedupd/vdo/source.h"
#include "dedupd/vdo/threads.h"

static void usage(FILE *out)
{
    fputs("Usage: dedupctl vdostats [OPTIONS] [DEVICE...]\n"
          "Display configuration and statistics of VDO volumes, as vdostats does.\n"
          "\n"
          "  -v, --verbose, -a, --all   every statistic\n"
          "  --human-readable           sizes in powers of 1024\n"
          "  --si                       sizes in powers of 1000\n"
          "  --json                     every key, derived figures, status, table, config\n"
          "  --source dm|sysfs|replay:DIR   where to read (default: dm)\n"
          "  --sys-root DIR             /sys prefix for --source sysfs\n"
          "  --interval S               with --json: a second sample S seconds later;\n"
          "                             adds rates and VDO thread CPU per volume\n"
          "  --proc-root DIR            /proc prefix for the thread CPU (default /proc,\n"
          "                             or the replay's proc/ tree)\n"
          "  -h, --help                 this text\n",
          out);
}

static json_t *value_json(const char *v)
{
    uint64_t u;
    double d;
    if (dd_parse_u64(v, &u) == 0 && u <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)u);
    if (dd_parse_double(v, &d) == 0)
        return json_real(d);
    return json_string(v);
}

static json_t *stats_json(const struct dd_vdo_stats *s)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < s->n; i++)
        json_object_set_new(o, s->kv[i].key, value_json(s->kv[i].value));
    return o;
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *volume_json(const struct dd_vdo_volume *v)
{
    json_t *o = json_object();
    struct dd_vdo_derived d;
    char missing[512];

    json_object_set_new(o, "name", json_string(v->name));
    if (v->dm_major || v->dm_minor)
        json_object_set_new(o, "dm_device", json_sprintf("%u:%u", v->dm_major, v->dm_minor));
    json_object_set_new(o, "stats", v->have_stats ? stats_json(&v->stats) : json_null());
    json_object_set_new(o, "config", v->have_config ? stats_json(&v->config) : json_null());
    if (v->have_status)
        json_object_set_new(o, "status",
                            json_pack("{s:s, s:s, s:b, s:s, s:b, s:I, s:I}", "device",
                                      v->status.device, "mode", v->status.mode, "recovering",
                                      v->status.recovering, "index_state", v->status.index_state,
                                      "compression", v->status.compression, "used_blocks",
                                      (json_int_t)v->status.used_blocks, "total_blocks",
                                      (json_int_t)v->status.total_blocks));
    else
        json_object_set_new(o, "status", json_null());
    if (v->have_table)
        json_object_set_new(
            o, "table",
            json_pack("{s:i, s:s, s:I, s:i, s:I, s:I, s:b, s:b}", "version", (int)v->table.version,
                      "device", v->table.device, "physical_blocks",
                      (json_int_t)v->table.physical_blocks, "minimum_io", (int)v->table.minimum_io,
                      "block_map_cache_blocks", (json_int_t)v->table.block_map_cache_blocks,
                      "block_map_era", (json_int_t)v->table.block_map_era, "deduplication",
                      v->table.deduplication, "compression", v->table.compression));
    else
        json_object_set_new(o, "table", json_null());
    if (v->have_stats && dd_vdo_derive(&v->stats, v->have_config ? &v->config : NULL, &d) == 0) {
        json_t *dj = json_object();
        json_object_set_new(dj, "normal", json_boolean(d.normal));
        json_object_set_new(dj, "size_kb", json_integer((json_int_t)d.size_kb));
        json_object_set_new(dj, "used_kb", json_integer((json_int_t)d.used_kb));
        json_object_set_new(dj, "available_kb", json_integer((json_int_t)d.available_kb));
        json_object_set_new(dj, "used_percent", json_integer(d.used_percent));
        json_object_set_new(dj, "saving_percent", json_integer(d.saving_percent));
        json_object_set_new(dj, "dedup_ratio", num_or_null(d.dedup_ratio));
        json_object_set_new(dj, "compression_share", num_or_null(d.compression_share));
        json_object_set_new(dj, "index_entries", json_integer((json_int_t)d.index_entries));
        json_object_set_new(dj, "index_fill", num_or_null(d.index_fill));
        json_object_set_new(dj, "write_amplification", json_real(d.write_amplification));
        json_object_set_new(o, "derived", dj);
    } else {
        json_object_set_new(o, "derived", json_null());
    }
    json_object_set_new(o, "missing_keys",
                        v->have_stats && dd_vdo_stats_missing(&v->stats, missing, sizeof(missing))
                            ? json_string(missing)
                            : json_null());
    json_t *errs = json_object();
    if (v->stats_error[0])
        json_object_set_new(errs, "stats", json_string(v->stats_error));
    if (v->status_error[0])
        json_object_set_new(errs, "status", json_string(v->status_error));
    if (v->table_error[0])
        json_object_set_new(errs, "table", json_string(v->table_error));
    if (v->config_error[0])
        json_object_set_new(errs, "config", json_string(v->config_error));
    json_object_set_new(o, "errors", errs);
    return o;
}

static json_t *interval_json(const struct dd_vdo_volume *a, const struct dd_vdo_volume *b,
                             double dt, const struct dd_vdo_cpu *cpu)
{
    json_t *o = json_object(), *kinds;
    struct dd_vdo_rates r;
    uint64_t instance = 0, w1 = 0, w2 = 0;
    const struct dd_vdo_instance_cpu *ic = NULL;

    json_object_set_new(o, "seconds", json_real(dt));
    if (!a || !a->have_stats || !b->have_stats) {
        json_object_set_new(o, "valid", json_false());
        return o;
    }
    dd_vdo_rates(&a->stats, &b->stats, dt, &r);
    json_object_set_new(o, "valid", json_boolean(r.valid));
    if (r.not_normal)
        json_object_set_new(o, "error", json_string("not in normal mode: no rates"));
    if (r.valid) {
        json_object_set_new(o, "bios_in_read_per_s", json_real(r.bios_in_read));
        json_object_set_new(o, "bios_in_write_per_s", json_real(r.bios_in_write));
        json_object_set_new(o, "bios_in_discard_per_s", json_real(r.bios_in_discard));
        json_object_set_new(o, "bios_in_flush_per_s", json_real(r.bios_in_flush));
        json_object_set_new(o, "bios_out_read_per_s", json_real(r.bios_out_read));
        json_object_set_new(o, "bios_out_write_per_s", json_real(r.bios_out_write));
        json_object_set_new(o, "write_mb_per_s", json_real(r.write_mb_per_s));
        json_object_set_new(o, "dedup_hit_rate", num_or_null(r.dedup_hit_rate));
        json_object_set_new(o, "journal_blocks_per_s", json_real(r.journal_blocks_per_s));
        json_object_set_new(o, "block_map_pages_per_s", json_real(r.block_map_pages_per_s));
    }
    if (cpu && dd_vdo_stats_u64(&b->stats, "instance", &instance) == 0 && instance <= UINT32_MAX)
        ic = dd_vdo_cpu_for_instance(cpu, (uint32_t)instance);
    json_object_set_new(o, "instance", json_integer((json_int_t)instance));
    if (!ic) {
        json_object_set_new(o, "vdo_cpu_seconds", json_null());
        json_object_set_new(o, "vdo_cpu_seconds_per_gib_written", json_null());
        return o;
    }
    json_object_set_new(o, "vdo_cpu_seconds", json_real(ic->seconds));
    json_object_set_new(o, "vdo_threads", json_integer((json_int_t)ic->threads));
    kinds = json_object();
    for (size_t k = 0; k < ic->n_kinds; k++)
        json_object_set_new(kinds, ic->kinds[k].kind, json_real(ic->kinds[k].seconds));
    json_object_set_new(o, "vdo_cpu_seconds_by_queue", kinds);
    (void)dd_vdo_stats_u64(&a->stats, "biosIn.write", &w1);
    (void)dd_vdo_stats_u64(&b->stats, "biosIn.write", &w2);
    /* per GiB written: only over an interval whose counters are comparable */
    if (r.valid && w2 > w1)
        json_object_set_new(o, "vdo_cpu_seconds_per_gib_written",
                            json_real(ic->seconds / ((double)(w2 - w1) * 4096.0 / 1073741824.0)));
    else
        json_object_set_new(o, "vdo_cpu_seconds_per_gib_written", json_null());
    return o;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* vdostats' matching: dm name, dm-N, or a path resolving to /dev/dm-N. */
static const char *match_device(const char *arg, char **names, const struct dd_vdo_volume *vols,
                                size_t n)
{
    char real[PATH_MAX];
    const char *base = strrchr(arg, '/');

    for (size_t i = 0; i < n; i++) {
        char dmn[32];
        snprintf(dmn, sizeof(dmn), "dm-%u", vols[i].dm_minor);
        if (strcmp(arg, names[i]) == 0)
            return names[i];
        if ((vols[i].dm_major || vols[i].dm_minor) && strcmp(arg, dmn) == 0)
            return names[i];
        if (base && strstr(arg, "/mapper/") && strcmp(base + 1, names[i]) == 0)
            return names[i];
        if ((vols[i].dm_major || vols[i].dm_minor) && realpath(arg, real)) {
            char want[48];
            snprintf(want, sizeof(want), "/dev/%s", dmn);
            if (strcmp(real, want) == 0)
                return names[i];
        }
    }
    return NULL;
}

int dd_ctl_vdostats(int argc, char **argv)
{
    enum {
        OPT_HUMAN = 256,
        OPT_SI,
        OPT_JSON,
        OPT_SOURCE,
        OPT_SYS_ROOT,
        OPT_PROC_ROOT,
        OPT_INTERVAL
    };
    static const struct option longopts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"all", no_argument, NULL, 'a'},
        {"human-readable", no_argument, NULL, OPT_HUMAN},
        {"si", no_argument, NULL, OPT_SI},
        {"json", no_argument, NULL, OPT_JSON},
        {"source", required_argument, NULL, OPT_SOURCE},
        {"sys-root", required_argument, NULL, OPT_SYS_ROOT},
        {"proc-root", required_argument, NULL, OPT_PROC_ROOT},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    enum dd_vdostats_style style = DD_VDOSTATS_DF;
    const char *spec = "dm", *sys_root = NULL, *proc_root = NULL;
    double interval = 0;
    bool json = false, verbose = false, human = false, si = false;
    struct dd_vdo_source *src = NULL;
    struct dd_vdo_volume *vols = NULL;
    char **names = NULL, errbuf[512] = "";
    size_t n = 0, *pick = NULL, npick = 0;
    int c, r, ret = EXIT_FAILURE, width = 6;

    optind = 1;
    while ((c = getopt_long(argc, argv, "vah", longopts, NULL)) != -1) {
        switch (c) {
        case 'v':
        case 'a':
            verbose = true;
            break;
        case OPT_HUMAN:
            human = true;
            break;
        case OPT_SI:
            si = true;
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_SOURCE:
            spec = optarg;
            break;
        case OPT_SYS_ROOT:
            sys_root = optarg;
            break;
        case OPT_PROC_ROOT:
            proc_root = optarg;
            break;
        case OPT_INTERVAL:
            if (dd_parse_double(optarg, &interval) < 0 || interval <= 0 || interval > 3600) {
                fprintf(stderr,
                        "dedupctl: vdostats: invalid --interval '%s': expected seconds "
                        "in (0, 3600]\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (interval > 0 && !json) {
        fputs("dedupctl: vdostats: --interval needs --json\n", stderr);
        return 2;
    }
    style = verbose ? DD_VDOSTATS_VERBOSE
            : si    ? DD_VDOSTATS_SI
            : human ? DD_VDOSTATS_HUMAN
                    : DD_VDOSTATS_DF;

    r = dd_vdo_source_open(spec, sys_root, &src, errbuf, sizeof(errbuf));
    if (r < 0) {
        fprintf(stderr, "dedupctl: vdostats: %s\n", errbuf[0] ? errbuf : dd_strerror(r));
        return r == DD_E_USAGE ? 2 : EXIT_FAILURE;
    }
    r = dd_vdo_source_list(src, &names, &n, errbuf, sizeof(errbuf));
    if (r < 0) {
        fprintf(stderr, "dedupctl: vdostats: %s\n", errbuf[0] ? errbuf : dd_strerror(r));
        goto out;
    }
    if (n == 0) {
        fputs("dedupctl: vdostats: Could not find any VDO devices\n", stderr);
        goto out;
    }
    vols = dd_calloc(n, sizeof(*vols));
    if (!vols)
        goto out;
    for (size_t i = 0; i < n; i++) {
        r = dd_vdo_source_read(src, names[i], &vols[i]);
        if (r == -ENOENT && !vols[i].stats_error[0])
            snprintf(vols[i].stats_error, sizeof(vols[i].stats_error),
                     "stats: the volume disappeared while being read");
    }

    /* which volumes, in which order */
    pick = dd_calloc(n + (size_t)argc, sizeof(*pick));
    if (!pick)
        goto out;
    if (optind >= argc) {
        for (size_t i = 0; i < n; i++)
            pick[npick++] = i;
    } else {
        for (int a = optind; a < argc; a++) {
            const char *m = match_device(argv[a], names, vols, n);
            if (!m) {
                fprintf(stderr, "dedupctl: vdostats: '%s': Not a valid running VDO device\n",
                        argv[a]);
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                if (names[i] == m)
                    pick[npick++] = i;
            }
        }
    }
    for (size_t k = 0; k < npick; k++) {
        const char *label = optind < argc ? argv[optind + (int)k] : names[pick[k]];
        const char *base = strrchr(label, '/');
        width = DD_MAX(width, (int)strlen(base ? base + 1 : label));
    }

    ret = EXIT_SUCCESS;
    if (json && interval > 0) {
        /* a second sample: volumes and threads, the interval apart */
        struct dd_vdo_threads t1 = {0}, t2 = {0};
        struct dd_vdo_cpu cpu = {0};
        const char *pr = proc_root ? proc_root : dd_vdo_source_proc_root(src);
        bool have_cpu;
        double t0, dt;
        json_t *arr = json_array();

        have_cpu = dd_vdo_threads_scan(pr ? pr : "/proc", &t1) == 0;
        t0 = monotonic_seconds();
        if (dd_vdo_source_interval(src) > 0) {
            dt = dd_vdo_source_interval(src);
        } else {
            struct timespec nap = {.tv_sec = (time_t)interval,
                                   .tv_nsec = (long)((interval - (double)(time_t)interval) * 1e9)};
            nanosleep(&nap, NULL);
            dt = monotonic_seconds() - t0;
        }
        dd_vdo_source_next(src);
        pr = proc_root ? proc_root : dd_vdo_source_proc_root(src);
        have_cpu = have_cpu && dd_vdo_threads_scan(pr ? pr : "/proc", &t2) == 0 &&
                   dd_vdo_cpu_delta(&t1, &t2, dd_clock_ticks(), &cpu) == 0;
        for (size_t k = 0; k < npick; k++) {
            struct dd_vdo_volume b;
            const struct dd_vdo_volume *a = &vols[pick[k]];
            json_t *vj;
            /* by the listed name: v->name is a bounded copy */
            if (dd_vdo_source_read(src, names[pick[k]], &b) == -ENOENT) {
                vj = volume_json(a);
                json_object_set_new(
                    vj, "interval",
                    json_pack("{s:b, s:s}", "valid", 0, "error", "volume disappeared"));
            } else {
                vj = volume_json(&b);
                json_object_set_new(vj, "interval",
                                    interval_json(a, &b, dt, have_cpu ? &cpu : NULL));
            }
            dd_vdo_volume_release(&b);
            json_array_append_new(arr, vj);
        }
        dd_vdo_threads_release(&t1);
        dd_vdo_threads_release(&t2);
        dd_vdo_cpu_release(&cpu);
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        fputc('\n', stdout);
        json_decref(arr);
    } else if (json) {
        json_t *arr = json_array();
        for (size_t k = 0; k < npick; k++)
            json_array_append_new(arr, volume_json(&vols[pick[k]]));
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        fputc('\n', stdout);
        json_decref(arr);
    } else {
        dd_vdostats_print_header(stdout, style, width);
        for (size_t k = 0; k < npick; k++) {
            const struct dd_vdo_volume *v = &vols[pick[k]];
            /* vdostats prints the name it was given (verbose) or its basename */
            const char *label = optind < argc ? argv[optind + (int)k] : v->name;
            const char *base = strrchr(label, '/');
            if (!v->have_stats) {
                fprintf(stderr, "dedupctl: vdostats: '%s': %s\n", v->name,
                        v->stats_error[0] ? v->stats_error : "no statistics");
                ret = EXIT_FAILURE;
                continue;
            }
            r = dd_vdostats_print(stdout, style, width,
                                  style == DD_VDOSTATS_VERBOSE || !base ? label : base + 1,
                                  &v->stats);
            if (r < 0) {
                char missing[512];
                if (r == DD_E_RANGE)
                    fprintf(stderr,
                            "dedupctl: vdostats: '%s': values no VDO volume can have (block "
                            "size or block counts out of range)\n",
                            v->name);
                else if (dd_vdo_stats_missing(&v->stats, missing, sizeof(missing)) > 0)
                    fprintf(stderr, "dedupctl: vdostats: '%s': stats lack %s\n", v->name, missing);
                else
                    fprintf(stderr,
                            "dedupctl: vdostats: '%s': a size or block count is not a "
                            "number\n",
                            v->name);
                ret = EXIT_FAILURE;
            }
        }
    }
    if (ret == EXIT_SUCCESS && json) {
        size_t good = 0;
        for (size_t k = 0; k < npick; k++)
            good += vols[pick[k]].have_stats;
        if (good == 0) {
            fputs("dedupctl: vdostats: no volume's statistics could be read\n", stderr);
            ret = EXIT_FAILURE;
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dedupctl: vdostats: writing output: %s\n", strerror(errno));
        ret = EXIT_FAILURE;
    }
out:
    dd_free(pick);
    for (size_t i = 0; vols && i < n; i++)
        dd_vdo_volume_release(&vols[i]);
    dd_free(vols);
    dd_strv_free(names, n);
    dd_vdo_source_free(src);
    return ret;
}
