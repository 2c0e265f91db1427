/*
 * dedupctl vdo-sim: writes a replay directory of mutually consistent VDO
 * snapshots (stats, status, table, config) and fake /proc trees from a
 * workload description, using the simulator in dedupd/vdo/sim.h (its header
 * states the cost, latency and noise models). The result is read back with
 * --source replay:DIR by every command that reads VDO.
 *
 * Exit status: 0 ok; 1 the workload or the run failed (named); 2 bad usage.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/dedupctl.h"
#include "dedupd/vdo/sim.h"

static void usage(FILE *out)
{
    fputs("Usage: dedupctl vdo-sim --workload FILE.json --intervals N --interval-seconds S\n"
          "                        --seed K --out DIR\n"
          "Simulate VDO volumes under a workload and write a replay directory.\n"
          "\n"
          "  --workload FILE      workload JSON (see README: keys, phases)\n"
          "  --intervals N        intervals to simulate (N+1 snapshots; 0: one snapshot)\n"
          "  --interval-seconds S nominal seconds per interval (default 10)\n"
          "  --seed K             noise seed (default 1); the same seed gives the same tree\n"
          "  --out DIR            new or empty directory to write\n",
          out);
}

static void print_error(const char *what, const struct dd_parse_error *err, int r)
{
    if (err->message[0] && err->line)
        fprintf(stderr, "dedupctl: vdo-sim: %s:%u:%u: %s\n", what, err->line, err->column,
                err->message);
    else if (err->message[0])
        fprintf(stderr, "dedupctl: vdo-sim: %s: %s\n", what, err->message);
    else
        fprintf(stderr, "dedupctl: vdo-sim: %s: %s\n", what, dd_strerror(r));
}

int dd_ctl_vdo_sim(int argc, char **argv)
{
    enum { OPT_WORKLOAD = 256, OPT_INTERVALS, OPT_INTERVAL_SECONDS, OPT_SEED, OPT_OUT };
    static const struct option longopts[] = {
        {"workload", required_argument, NULL, OPT_WORKLOAD},
        {"intervals", required_argument, NULL, OPT_INTERVALS},
        {"interval-seconds", required_argument, NULL, OPT_INTERVAL_SECONDS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"out", required_argument, NULL, OPT_OUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *workload = NULL, *out = NULL;
    uint64_t intervals = 0, seed = 1;
    double seconds = 10.0;
    bool have_intervals = false;
    struct dd_vdo_workload w;
    struct dd_parse_error err;
    int c, r;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_WORKLOAD:
            workload = optarg;
            break;
        case OPT_INTERVALS:
            if (dd_parse_u64_range(optarg, 0, 1000000, &intervals) < 0) {
                fprintf(stderr,
                        "dedupctl: vdo-sim: invalid --intervals '%s': expected "
                        "0..1000000\n",
                        optarg);
                return 2;
            }
            have_intervals = true;
            break;
        case OPT_INTERVAL_SECONDS:
            if (dd_parse_double(optarg, &seconds) < 0 || seconds < 0.01 || seconds > 86400) {
                fprintf(stderr,
                        "dedupctl: vdo-sim: invalid --interval-seconds '%s': expected "
                        "0.01..86400\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_SEED:
            if (dd_parse_u64(optarg, &seed) < 0) {
                fprintf(stderr, "dedupctl: vdo-sim: invalid --seed '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_OUT:
            out = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!workload || !out || !have_intervals || optind < argc) {
        fputs("dedupctl: vdo-sim: --workload, --intervals and --out are required\n", stderr);
        usage(stderr);
        return 2;
    }
    memset(&err, 0, sizeof(err));
    r = dd_vdo_sim_load_workload_file(workload, &w, &err);
    if (r < 0) {
        print_error(workload, &err, r);
        return EXIT_FAILURE;
    }
    memset(&err, 0, sizeof(err));
    r = dd_vdo_sim_run(&w, (unsigned)intervals, seconds, seed, out, &err);
    dd_vdo_workload_release(&w);
    if (r < 0) {
        print_error(out, &err, r);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
