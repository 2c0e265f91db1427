/*
 * The dedupd daemon: wiring only. It starts the subsystems in order (store,
 * model service, cluster view, sampler, report pusher, estimate jobs, HTTP
 * with every subsystem's routes) and stops them in reverse; each subsystem
 * owns and frees its own resources. Only dedupd/ uses this header.
 */
#ifndef DD_DAEMON_H
#define DD_DAEMON_H

#include <stdint.h>

#include "dedupd/config.h"

struct dd_daemon;

/* Opens the store, the VDO source and the HTTP server; starts the sampler
 * (and pusher) for roles node and all. errbuf names what failed. */
int dd_daemon_start(const struct dd_config *c, struct dd_daemon **ret, char *errbuf, size_t errlen);
/* SIGHUP: takes what can change at run time (interval, retention,
 * estimate roots, pools, model thresholds, staleness bounds) from c. */
void dd_daemon_reload(struct dd_daemon *d, const struct dd_config *c);
/* SIGTERM: stops accepting, finishes in-flight requests and the current
 * sample, flushes the store, frees. NULL-safe. */
void dd_daemon_stop(struct dd_daemon *d);
uint16_t dd_daemon_port(const struct dd_daemon *d);
/* The Kubernetes cache (roles all and placement), NULL when there is no
 * Kubernetes source; and that source in words: "in-cluster",
 * "--kube-api URL" or "none" (for explanations). */
struct dd_kube;
struct dd_kube *dd_daemon_kube(const struct dd_daemon *d);
const char *dd_daemon_kube_source(const struct dd_daemon *d);

#endif
