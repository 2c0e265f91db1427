/*
 * dedupctl: the command-line tool. For now one verb, `estimate`, which runs
 * the block-hash estimator (dedupd/scan) on files, directories and block
 * devices and prints a summary or --json.
 *
 * Exit status: 0 success; 1 an input or the run failed; 2 bad usage;
 * 3 with --keep-going, some inputs failed and the rest were estimated.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/dedupctl.h"
#include "dedupd/scan/scan.h"

#define EXIT_USAGE   2
#define EXIT_PARTIAL 3

static void usage_estimate(FILE *out)
{
    fputs("Usage: dedupctl estimate [OPTIONS] PATH...\n"
          "Estimate how much PATHs (files, directories, block devices) shrink on VDO.\n"
          "\n"
          "  --mode exact|sampled   keep every fingerprint, or a content-based sample\n"
          "                         (default: sampled above 1 GiB of input)\n"
          "  --max-memory SIZE      sampled mode: fingerprint table budget (default 32M)\n"
          "  --sampling-bits K      sampled mode: start at a 1/2^K sample\n"
          "  --index-memory GB      model VDO's dedup window: UDS index of GB\n"
          "                         (0.25, 0.5, 0.75 or 1..1024)\n"
          "  --sparse               the index is sparse (10x the window)\n"
          "  --window-blocks N      dedup window of N 4 KiB blocks (overrides the above)\n"
          "  --compress-sample N    LZ4 one distinct block in N (default: auto, <= 1/256)\n"
          "  --no-compress          skip the compression estimate\n"
          "  --threads N            reader/hasher threads (default: online CPUs)\n"
          "  --direct               read with O_DIRECT\n"
          "  --keep-going           estimate the other inputs when one fails\n"
          "  --json                 print the result as JSON\n"
          "  --progress / --no-progress  progress line on stderr (default: when a TTY)\n"
          "  -h, --help             this text\n"
          "\n"
          "Exit: 0 ok, 1 failed, 2 usage, 3 some inputs failed (--keep-going).\n",
          out);
}

static void usage(FILE *out)
{
    fputs("Usage: dedupctl COMMAND [OPTIONS]\n"
          "\n"
          "Commands:\n"
          "  estimate PATH...   estimate dedup + compression of data before it lands on VDO\n"
          "  vdostats [DEV...]  VDO statistics, as vdostats prints them (or --json)\n"
          "  vdo-sim            write a simulated VDO replay directory from a workload\n"
          "  status|volumes|history NAME --remote URL   ask a running dedupd\n"
          "  estimate --remote URL PATH...              run an estimate on a dedupd\n"
          "  model [retrain] --remote URL               the cost model: status, train now\n"
          "  cluster [NODE] --remote URL                a placement role's view of the nodes\n"
          "  place POD.json|- --remote URL              every node's score for a pod, and why\n"
          "  rightsize POD.json|- --remote URL          the pod right-sized (requests, limits,\n"
          "                                             annotations) and why\n"
          "  model fit --data FILE.jsonl [--holdout time|interleaved] [--prior-out F]\n"
          "                                             fit the prior and XGBoost offline\n"
          "  predict --remote URL --volume NAME [--write-mbps W] [--duplicate-share D]\n"
          "          [--cpu-load L] | --features FILE   predicted VDO CPU cost and latency\n"
          "\n"
          "Run 'dedupctl COMMAND --help' for a command's options.\n",
          out);
}

struct progress {
    struct dd_scan *scan;
    atomic_bool stop;
    pthread_t thread;
};

static void *progress_main(void *arg)
{
    struct progress *p = arg;
    struct timespec t0, now, nap = {.tv_sec = 0, .tv_nsec = 250000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* a line at once, then every 250 ms: a scan that ends before this
     * thread first runs still shows one (it used to show none) */
    for (bool first = true; first || !atomic_load(&p->stop); first = false) {
        uint64_t done, total;
        double el, rate;
        if (!first)
            nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        dd_scan_progress(p->scan, &done, &total);
        el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        rate = el > 0 ? (double)done / el : 0;
        fprintf(stderr, "\r%8.1f / %.1f MiB  %7.1f MiB/s", (double)done / 1048576.0,
                (double)total / 1048576.0, rate / 1048576.0);
        if (rate > 0 && total >= done)
            fprintf(stderr, "  ETA %5.0f s ", (double)(total - done) / rate);
        fflush(stderr);
    }
    fputs("\r\033[K", stderr);
    return NULL;
}

enum {
    OPT_MODE = 256,
    OPT_MAX_MEMORY,
    OPT_SAMPLING_BITS,
    OPT_INDEX_MEMORY,
    OPT_SPARSE,
    OPT_WINDOW_BLOCKS,
    OPT_COMPRESS_SAMPLE,
    OPT_NO_COMPRESS,
    OPT_THREADS,
    OPT_DIRECT,
    OPT_KEEP_GOING,
    OPT_JSON,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
};

/* Prints every recorded failure, naming the path; returns how many. */
static size_t print_input_errors(const struct dd_scan *scan, size_t first)
{
    size_t n = 0;
    for (size_t i = first; i < dd_scan_n_inputs(scan); i++) {
        const struct dd_scan_input *in = dd_scan_get_input(scan, i);
        for (size_t e = 0; e < in->n_errors; e++, n++)
            fprintf(stderr, "dedupctl: estimate: %s: %s\n", in->errors[e].path,
                    in->errors[e].message);
    }
    return n;
}

static int bad_value(const char *opt, const char *value, const char *what)
{
    fprintf(stderr, "dedupctl: estimate: invalid %s '%s': %s\n", opt, value, what);
    return EXIT_USAGE;
}

static int cmd_estimate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, OPT_MODE},
        {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
        {"sampling-bits", required_argument, NULL, OPT_SAMPLING_BITS},
        {"index-memory", required_argument, NULL, OPT_INDEX_MEMORY},
        {"sparse", no_argument, NULL, OPT_SPARSE},
        {"window-blocks", required_argument, NULL, OPT_WINDOW_BLOCKS},
        {"compress-sample", required_argument, NULL, OPT_COMPRESS_SAMPLE},
        {"no-compress", no_argument, NULL, OPT_NO_COMPRESS},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"keep-going", no_argument, NULL, OPT_KEEP_GOING},
        {"json", no_argument, NULL, OPT_JSON},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dd_scan_options opts;
    struct dd_scan *scan = NULL;
    struct progress prog = {0};
    bool json = false, sparse = false, have_window = false, progress_thread = false;
    int show_progress = -1;
    double index_gb = 0;
    uint64_t v;
    int c, r, ret = EXIT_FAILURE;

    dd_scan_options_init(&opts);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_MODE:
            if (strcmp(optarg, "exact") == 0)
                opts.mode = DD_SCAN_MODE_EXACT;
            else if (strcmp(optarg, "sampled") == 0)
                opts.mode = DD_SCAN_MODE_SAMPLED;
            else
                return bad_value("--mode", optarg, "expected exact or sampled");
            break;
        case OPT_MAX_MEMORY:
            if (dd_parse_size(optarg, &v) < 0 || v < (64u << 10))
                return bad_value("--max-memory", optarg, "expected a size of at least 64K");
            opts.max_memory = v;
            break;
        case OPT_SAMPLING_BITS:
            if (dd_parse_u64_range(optarg, 0, 40, &v) < 0)
                return bad_value("--sampling-bits", optarg, "expected 0..40");
            opts.sampling_bits = (int)v;
            break;
        case OPT_INDEX_MEMORY:
            if (dd_parse_double(optarg, &index_gb) < 0 ||
                dd_scan_window_from_index(index_gb, false, &v) < 0)
                return bad_value("--index-memory", optarg,
                                 "VDO accepts 0.25, 0.5, 0.75 or a whole number 1..1024 (GB)");
            break;
        case OPT_SPARSE:
            sparse = true;
            break;
        case OPT_WINDOW_BLOCKS:
            if (dd_parse_u64_range(optarg, 1, UINT64_MAX, &v) < 0)
                return bad_value("--window-blocks", optarg, "expected a positive integer");
            opts.window_blocks = v;
            have_window = true;
            break;
        case OPT_COMPRESS_SAMPLE:
            if (dd_parse_u64_range(optarg, 1, 1u << 30, &v) < 0)
                return bad_value("--compress-sample", optarg, "expected 1..2^30");
            opts.compress_sample = (uint32_t)v;
            break;
        case OPT_NO_COMPRESS:
            opts.no_compress = true;
            break;
        case OPT_THREADS:
            if (dd_parse_u64_range(optarg, 1, 256, &v) < 0)
                return bad_value("--threads", optarg, "expected 1..256");
            opts.threads = (unsigned)v;
            break;
        case OPT_DIRECT:
            opts.direct = true;
            break;
        case OPT_KEEP_GOING:
            opts.keep_going = true;
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_PROGRESS:
            show_progress = 1;
            break;
        case OPT_NO_PROGRESS:
            show_progress = 0;
            break;
        case 'h':
            usage_estimate(stdout);
            return EXIT_SUCCESS;
        default:
            usage_estimate(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs("dedupctl: estimate: no PATH given\n", stderr);
        usage_estimate(stderr);
        return EXIT_USAGE;
    }
    if (sparse && index_gb == 0 && !have_window)
        return bad_value("--sparse", "", "needs --index-memory");
    if (index_gb > 0 && !have_window)
        (void)dd_scan_window_from_index(index_gb, sparse, &opts.window_blocks);

    r = dd_scan_new(&opts, &scan);
    if (r < 0) {
        fprintf(stderr, "dedupctl: estimate: %s\n", dd_strerror(r));
        return EXIT_FAILURE;
    }
    for (int i = optind; i < argc; i++) {
        r = dd_scan_add_path(scan, argv[i]);
        if (r == -ENOMEM) {
            fprintf(stderr, "dedupctl: estimate: %s\n", dd_strerror(r));
            goto out;
        }
        if (r < 0 && !opts.keep_going) {
            print_input_errors(scan, dd_scan_n_inputs(scan) - 1);
            goto out;
        }
    }

    if (show_progress < 0)
        show_progress = isatty(STDERR_FILENO);
    if (show_progress) {
        prog.scan = scan;
        atomic_init(&prog.stop, false);
        progress_thread = pthread_create(&prog.thread, NULL, progress_main, &prog) == 0;
    }
    r = dd_scan_run(scan);
    if (progress_thread) {
        atomic_store(&prog.stop, true);
        pthread_join(prog.thread, NULL);
    }
    if (r < 0 && !opts.keep_going) {
        if (print_input_errors(scan, 0) == 0)
            fprintf(stderr, "dedupctl: estimate: %s\n", dd_strerror(r));
        goto out;
    }
    if (r == -ENOMEM || r == DD_E_TOOBIG) {
        fprintf(stderr, "dedupctl: estimate: %s\n", dd_strerror(r));
        goto out;
    }

    if (json) {
        json_t *doc = dd_scan_to_json(scan);
        if (!doc || json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) < 0) {
            fputs("dedupctl: estimate: cannot build JSON output\n", stderr);
            json_decref(doc);
            goto out;
        }
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        dd_scan_print_summary(scan, stdout);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "dedupctl: estimate: writing output: %s\n", strerror(errno));
        goto out;
    }
    ret = dd_scan_get_result(scan)->inputs_failed ? EXIT_PARTIAL : EXIT_SUCCESS;
    if (ret == EXIT_PARTIAL)
        print_input_errors(scan, 0);
out:
    dd_scan_free(scan);
    return ret;
}

int main(int argc, char **argv)
{
    dd_log_set_ident("dedupctl");
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(argv[1], "estimate") == 0) {
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--remote") == 0 || strncmp(argv[i], "--remote=", 9) == 0)
                return dd_ctl_remote("estimate", argc - 1, argv + 1);
        }
        return cmd_estimate(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "model") == 0 && argc > 2 && strcmp(argv[2], "fit") == 0)
        return dd_ctl_model_fit(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "volumes") == 0 ||
        strcmp(argv[1], "history") == 0 || strcmp(argv[1], "model") == 0 ||
        strcmp(argv[1], "cluster") == 0 || strcmp(argv[1], "place") == 0 ||
        strcmp(argv[1], "predict") == 0 || strcmp(argv[1], "rightsize") == 0)
        return dd_ctl_remote(argv[1], argc - 1, argv + 1);
    if (strcmp(argv[1], "vdostats") == 0)
        return dd_ctl_vdostats(argc - 1, argv + 1);
    if (strcmp(argv[1], "vdo-sim") == 0)
        return dd_ctl_vdo_sim(argc - 1, argv + 1);
    fprintf(stderr, "dedupctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
