/*
 * The node -> placement report pusher. The sampler hands every report to
 * dd_pusher_enqueue, which encodes it and queues it without blocking (a
 * bounded queue, DD_PUSH_QUEUE_MAX: when full the oldest report is dropped
 * and counted); one thread POSTs the queue in order to BASE/v1/reports
 * with the bearer token and/or the node's client certificate (mutual TLS:
 * --placement-cert-file/--placement-key-file, the server checked against
 * --placement-ca-file). A placement role that is down, slow or answering
 * 5xx/429/401 is retried with exponential backoff and full jitter (0.5 s
 * doubling to 30 s); a report still unsent after the queue's retention
 * (DD_PUSH_QUEUE_MAX intervals) is dropped and counted; a 4xx that says
 * the report itself is bad is dropped at once (counted, logged when the
 * reason changes). Sampling never waits on any of this.
 */
#ifndef DD_PUSH_H
#define DD_PUSH_H

#include <stdio.h>

#include "dedupd/config.h"
#include "placement/report.h"

struct dd_pusher;

/* Reads the token file (placement_token_file), loads the client
 * certificate, key and CA files once to check them (a bad or mismatched
 * file fails here, not at the first push) and sets up the client; errbuf
 * says what failed. */
int dd_pusher_new(const struct dd_config *c, struct dd_pusher **ret, char *errbuf, size_t errlen);
int dd_pusher_start(struct dd_pusher *p);
/* Stops the thread (a request in flight ends within its timeout). NULL-safe. */
struct dd_pusher *dd_pusher_free(struct dd_pusher *p);
/* Queues a copy of r (encoded now). Never blocks on the network. */
void dd_pusher_enqueue(struct dd_pusher *p, const struct dd_report *r);
void dd_pusher_metrics(struct dd_pusher *p, FILE *m);

#endif
