/*
 * dedupctl vdostats: the vdostats 8.x output (default df table,
 * --human-readable, --si, --verbose) from the same sources the daemon reads,
 * so scripts written for vdostats keep working; --json gives every key plus
 * the derived figures, status, table and config.
 *
 * Devices are matched as vdostats matches them: by dm name, by "dm-N", or by
 * a path that resolves to /dev/dm-N (or ends in /mapper/<name>).
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

#include <jansson.h>

#include "common/common.h"
#include "dedupd/dedupctl.h"
#include "dedupd/vdo/source.h"

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
          "  --proc-root DIR            /proc prefix (accepted for symmetry; unused here)\n"
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
    enum { OPT_HUMAN = 256, OPT_SI, OPT_JSON, OPT_SOURCE, OPT_SYS_ROOT, OPT_PROC_ROOT };
    static const struct option longopts[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"all", no_argument, NULL, 'a'},
        {"human-readable", no_argument, NULL, OPT_HUMAN},
        {"si", no_argument, NULL, OPT_SI},
        {"json", no_argument, NULL, OPT_JSON},
        {"source", required_argument, NULL, OPT_SOURCE},
        {"sys-root", required_argument, NULL, OPT_SYS_ROOT},
        {"proc-root", required_argument, NULL, OPT_PROC_ROOT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    enum dd_vdostats_style style = DD_VDOSTATS_DF;
    const char *spec = "dm", *sys_root = NULL;
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
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return 2;
        }
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
        if (r == -ENOENT)
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
    if (json) {
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
            if (dd_vdostats_print(stdout, style, width,
                                  style == DD_VDOSTATS_VERBOSE || !base ? label : base + 1,
                                  &v->stats) < 0) {
                char missing[512];
                dd_vdo_stats_missing(&v->stats, missing, sizeof(missing));
                fprintf(stderr, "dedupctl: vdostats: '%s': stats lack %s\n", v->name, missing);
                ret = EXIT_FAILURE;
            }
        }
    }
out:
    dd_free(pick);
    for (size_t i = 0; i < n; i++) {
        if (vols)
            dd_vdo_volume_release(&vols[i]);
        dd_free(names[i]);
    }
    dd_free(vols);
    dd_free(names);
    dd_vdo_source_free(src);
    return ret;
}
