/*
 * dedupd: flags and config, roles, signals, start/stop order.
 *
 *   dedupd --role node|placement|all ... (dedupd/config.c: dd_config_usage)
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
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/daemon.h"

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

int main(int argc, char **argv)
{
    struct dd_config cfg;
    struct dd_daemon *d = NULL;
    char errbuf[1024] = "", *eff;
    bool help = false;
    sigset_t set;
    int sig, r;

    dd_log_set_ident("dedupd");
    dd_log_set_level(DD_LOG_INFO);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("dedupd %s\n", DD_VERSION);
        return 0;
    }
    r = dd_config_load(argc, argv, &cfg, &help, errbuf, sizeof(errbuf));
    if (r == 1)
        fprintf(stderr, "dedupd: %s\n", errbuf);
    if (r == 2)
        dd_config_usage(stderr);
    if (r != 0)
        return r;
    if (help) {
        dd_config_usage(stdout);
        return 0;
    }
    if (dd_config_check(&cfg, errbuf, sizeof(errbuf)) < 0 || set_log_level(cfg.log_level) < 0) {
        fprintf(stderr, "dedupd: %s\n",
                errbuf[0] ? errbuf : "log level: expected error, warning, info or debug");
        return 2;
    }
    eff = dd_config_json(&cfg);
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
    dd_log_info("listening on %s (port %u), role %s, node %s, source %s", cfg.listen,
                (unsigned)dd_daemon_port(d), dd_role_name(cfg.role), cfg.node_name, cfg.source);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            struct dd_config nc;
            opterr = 0; /* the flags were checked at start */
            if (dd_config_load(argc, argv, &nc, &help, errbuf, sizeof(errbuf)) != 0 ||
                dd_config_check(&nc, errbuf, sizeof(errbuf)) < 0) {
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
