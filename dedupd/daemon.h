/*
 * The dedupd daemon's parts as main.c wires them: the effective
 * configuration, the sampler (VDO source + /proc threads -> features ->
 * store, one batch per interval) and the REST handlers. Only dedupd/ uses
 * this header.
 */
#ifndef DD_DAEMON_H
#define DD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DD_DAEMON_MAX_ESTIMATE_ROOTS 16

struct dd_daemon_config {
    char role[16]; /* node | placement | all */
    char listen[128];
    char data_dir[1024];
    char source[1200]; /* dm | sysfs | replay:DIR */
    char proc_root[1024];
    char sys_root[1024];
    double interval; /* seconds, fractions allowed */
    char config_file[1024];
    char token_file[1024];
    char tls_cert[1024], tls_key[1024], tls_client_ca[1024];
    char estimate_roots[DD_DAEMON_MAX_ESTIMATE_ROOTS][1024];
    size_t n_estimate_roots;
    unsigned retention_days;
    char log_level[16];
    /* the cost model (roles all and placement) */
    unsigned min_train_samples; /* rows before XGBoost trains */
    unsigned retrain_every;     /* new volume samples between retrains */
    char prior_file[1024];      /* JSON prior coefficients; "" = calibrated defaults */
};

void dd_daemon_config_defaults(struct dd_daemon_config *c);
/* Applies a JSON config file (keys as the flags, snake_case). errbuf names
 * the file, line and key on failure. */
int dd_daemon_config_file(struct dd_daemon_config *c, const char *path, char *errbuf,
                          size_t errlen);
/* Checks values; errbuf says which one is wrong. */
int dd_daemon_config_check(const struct dd_daemon_config *c, char *errbuf, size_t errlen);
/* The effective configuration as one JSON line (no secrets). Caller frees. */
char *dd_daemon_config_json(const struct dd_daemon_config *c);

struct dd_daemon;

/* Opens the store, the VDO source and the HTTP server; starts the sampler.
 * errbuf names what failed and what to do. */
int dd_daemon_start(const struct dd_daemon_config *c, struct dd_daemon **ret, char *errbuf,
                    size_t errlen);
/* SIGHUP: takes what can change at run time (interval, log level, retention,
 * estimate roots, model retraining thresholds) from c. */
void dd_daemon_reload(struct dd_daemon *d, const struct dd_daemon_config *c);
/* SIGTERM: stops accepting, finishes in-flight requests and the current
 * sample, flushes the store, frees. */
void dd_daemon_stop(struct dd_daemon *d);
uint16_t dd_daemon_port(const struct dd_daemon *d);

#endif
