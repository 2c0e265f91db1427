/*
 * dedupd: flags and config, roles, signals, start/stop order.
 *
 *   dedupd --role node|placement|all --listen ADDR:PORT --data-dir DIR
 *          --source dm|sysfs|replay:DIR --proc-root DIR --sys-root DIR
 *          --interval SECONDS --config FILE --token-file FILE
 *          --tls-cert FILE --tls-key FILE --tls-client-ca FILE
 *          --min-train-samples N --retrain-every N --prior-file FILE
 *
 * Order: defaults, config file, then flags over it; check; log the
 * effective config; block the signals in every thread; start (store,
 * source, model, HTTP, sampler); then wait for signals: SIGHUP builds the
 * configuration again the same way (the file re-read, the flags still over
 * it) and applies what can change at run time (interval, retention,
 * estimate roots, log level, model retraining thresholds), SIGTERM/SIGINT stop
 * (HTTP stops accepting and finishes in-flight requests, the sampler
 * finishes its sample, the store closes) and exit 0.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/daemon.h"

static void usage(FILE *out)
{
    fputs("Usage: dedupd [OPTIONS]\n"
          "  --role node|placement|all   (default all)\n"
          "  --listen ADDR:PORT          (default 127.0.0.1:7450)\n"
          "  --data-dir DIR              RocksDB store (default /var/lib/dedupd)\n"
          "  --source dm|sysfs|replay:DIR  VDO statistics (default dm)\n"
          "  --proc-root DIR --sys-root DIR  /proc and /sys prefixes\n"
          "  --interval SECONDS          sampling interval (default 10; fractions allowed)\n"
          "  --config FILE               JSON config (keys as the flags, snake_case)\n"
          "  --token-file FILE           bearer token for mutating endpoints\n"
          "  --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]  HTTPS\n"
          "  --estimate-root DIR         allow /v1/estimate under DIR (repeatable)\n"
          "  --retention-days N          history kept (default 14)\n"
          "  --log-level error|warning|info|debug\n"
          "  --min-train-samples N       samples before the XGBoost cost model trains (500)\n"
          "  --retrain-every N           new volume samples between retrains (360)\n"
          "  --prior-file FILE           cost-model prior coefficients (JSON)\n",
          out);
}

static int set_log_level(const char *name)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    for (size_t i = 0; i < DD_ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            dd_log_set_level((enum dd_log_level)i);
            return 0;
        }
    }
    return DD_E_USAGE;
}

static int copy_arg(char *dst, size_t len, const char *flag)
{
    if (strlen(optarg) >= len) {
        fprintf(stderr, "dedupd: %s: longer than %zu characters\n", flag, len - 1);
        return -1;
    }
    snprintf(dst, len, "%s", optarg);
    return 0;
}

/*
 * The configuration as it stands: defaults, then the JSON config file, then
 * the flags over it. Run at start and again on SIGHUP, so a flag keeps
 * winning over the file it overrides. Returns 0 (help set for --help), 1 a
 * bad config file (errbuf says why) or 2 bad usage (already printed).
 */
static int load_config(int argc, char **argv, struct dd_daemon_config *out, bool *help,
                       char *errbuf, size_t errlen)
{
    enum {
        O_ROLE = 256,
        O_LISTEN,
        O_DATA,
        O_SOURCE,
        O_PROC,
        O_SYS,
        O_INTERVAL,
        O_CONFIG,
        O_TOKEN,
        O_CERT,
        O_KEY,
        O_CA,
        O_ROOT,
        O_RETENTION,
        O_LOG,
        O_MIN_TRAIN,
        O_RETRAIN,
        O_PRIOR,
    };
    static const struct option longopts[] = {
        {"role", required_argument, NULL, O_ROLE},
        {"listen", required_argument, NULL, O_LISTEN},
        {"data-dir", required_argument, NULL, O_DATA},
        {"source", required_argument, NULL, O_SOURCE},
        {"proc-root", required_argument, NULL, O_PROC},
        {"sys-root", required_argument, NULL, O_SYS},
        {"interval", required_argument, NULL, O_INTERVAL},
        {"config", required_argument, NULL, O_CONFIG},
        {"token-file", required_argument, NULL, O_TOKEN},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"tls-client-ca", required_argument, NULL, O_CA},
        {"estimate-root", required_argument, NULL, O_ROOT},
        {"retention-days", required_argument, NULL, O_RETENTION},
        {"log-level", required_argument, NULL, O_LOG},
        {"min-train-samples", required_argument, NULL, O_MIN_TRAIN},
        {"retrain-every", required_argument, NULL, O_RETRAIN},
        {"prior-file", required_argument, NULL, O_PRIOR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dd_daemon_config cfg, flags;
    const char *config_file = NULL;
    int c;
    uint64_t v;

    /* first pass: the config file, so flags can override it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_file = argv[i] + 9;
    }
    dd_daemon_config_defaults(&cfg);
    if (config_file) {
        if (dd_daemon_config_file(&cfg, config_file, errbuf, errlen) < 0)
            return 1;
        snprintf(cfg.config_file, sizeof(cfg.config_file), "%s", config_file);
    }
    flags = cfg;
    optind = 0; /* GNU getopt: start over (SIGHUP parses again) */
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case O_ROLE:
            r = copy_arg(flags.role, sizeof(flags.role), "--role");
            break;
        case O_LISTEN:
            r = copy_arg(flags.listen, sizeof(flags.listen), "--listen");
            break;
        case O_DATA:
            r = copy_arg(flags.data_dir, sizeof(flags.data_dir), "--data-dir");
            break;
        case O_SOURCE:
            r = copy_arg(flags.source, sizeof(flags.source), "--source");
            break;
        case O_PROC:
            r = copy_arg(flags.proc_root, sizeof(flags.proc_root), "--proc-root");
            break;
        case O_SYS:
            r = copy_arg(flags.sys_root, sizeof(flags.sys_root), "--sys-root");
            break;
        case O_CONFIG:
            break;
        case O_TOKEN:
            r = copy_arg(flags.token_file, sizeof(flags.token_file), "--token-file");
            break;
        case O_CERT:
            r = copy_arg(flags.tls_cert, sizeof(flags.tls_cert), "--tls-cert");
            break;
        case O_KEY:
            r = copy_arg(flags.tls_key, sizeof(flags.tls_key), "--tls-key");
            break;
        case O_CA:
            r = copy_arg(flags.tls_client_ca, sizeof(flags.tls_client_ca), "--tls-client-ca");
            break;
        case O_LOG:
            r = copy_arg(flags.log_level, sizeof(flags.log_level), "--log-level");
            break;
        case O_INTERVAL:
            if (dd_parse_double(optarg, &flags.interval) < 0) {
                fprintf(stderr, "dedupd: --interval '%s': expected seconds\n", optarg);
                return 2;
            }
            break;
        case O_RETENTION:
            if (dd_parse_u64_range(optarg, 0, 3650, &v) < 0) {
                fprintf(stderr, "dedupd: --retention-days '%s': expected 0..3650\n", optarg);
                return 2;
            }
            flags.retention_days = (unsigned)v;
            break;
        case O_MIN_TRAIN:
        case O_RETRAIN:
            if (dd_parse_u64_range(optarg, 1, 100000000, &v) < 0) {
                fprintf(stderr, "dedupd: %s '%s': expected 1..100000000 samples\n",
                        c == O_MIN_TRAIN ? "--min-train-samples" : "--retrain-every", optarg);
                return 2;
            }
            if (c == O_MIN_TRAIN)
                flags.min_train_samples = (unsigned)v;
            else
                flags.retrain_every = (unsigned)v;
            break;
        case O_PRIOR:
            r = copy_arg(flags.prior_file, sizeof(flags.prior_file), "--prior-file");
            break;
        case O_ROOT:
            if (flags.n_estimate_roots >= DD_DAEMON_MAX_ESTIMATE_ROOTS) {
                fprintf(stderr, "dedupd: at most %d --estimate-root\n",
                        DD_DAEMON_MAX_ESTIMATE_ROOTS);
                return 2;
            }
            r = copy_arg(flags.estimate_roots[flags.n_estimate_roots],
                         sizeof(flags.estimate_roots[0]), "--estimate-root");
            flags.n_estimate_roots++;
            break;
        case 'h':
            *help = true;
            return 0;
        default:
            return 2;
        }
        if (r < 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "dedupd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    *out = flags;
    return 0;
}

int main(int argc, char **argv)
{
    struct dd_daemon_config cfg;
    struct dd_daemon *d = NULL;
    char errbuf[1024] = "", *eff;
    bool help = false;
    sigset_t set;
    int sig, r;

    dd_log_set_ident("dedupd");
    dd_log_set_level(DD_LOG_INFO);
    r = load_config(argc, argv, &cfg, &help, errbuf, sizeof(errbuf));
    if (r == 1)
        fprintf(stderr, "dedupd: %s\n", errbuf);
    if (r == 2)
        usage(stderr);
    if (r != 0)
        return r;
    if (help) {
        usage(stdout);
        return 0;
    }
    if (dd_daemon_config_check(&cfg, errbuf, sizeof(errbuf)) < 0 ||
        set_log_level(cfg.log_level) < 0) {
        fprintf(stderr, "dedupd: %s\n",
                errbuf[0] ? errbuf : "log level: expected error, warning, info or debug");
        return 2;
    }
    eff = dd_daemon_config_json(&cfg);
    dd_log_info("effective config: %s", eff ? eff : "?");
    free(eff);

    /* every thread inherits the mask; only this one takes the signals */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (dd_daemon_start(&cfg, &d, errbuf, sizeof(errbuf)) < 0) {
        fprintf(stderr, "dedupd: %s\n", errbuf);
        return 1;
    }
    dd_log_info("listening on %s (port %u), role %s, source %s", cfg.listen,
                (unsigned)dd_daemon_port(d), cfg.role, cfg.source);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            struct dd_daemon_config nc;
            opterr = 0; /* the flags were checked at start */
            if (load_config(argc, argv, &nc, &help, errbuf, sizeof(errbuf)) != 0 ||
                dd_daemon_config_check(&nc, errbuf, sizeof(errbuf)) < 0) {
                dd_log_warning("reload: %s; keeping the running configuration",
                               errbuf[0] ? errbuf : "bad configuration");
                continue;
            }
            (void)set_log_level(nc.log_level);
            dd_daemon_reload(d, &nc);
            cfg = nc;
            dd_log_info("reloaded: interval %g s, retention %u days", cfg.interval,
                        cfg.retention_days);
            continue;
        }
        dd_log_info("stopping on signal %d", sig);
        break;
    }
    dd_daemon_stop(d);
    return 0;
}
