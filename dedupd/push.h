/*
 * The node -> placement report pusher. --placement-url is one URL or a
 * comma-separated list (up to DD_PUSH_MAX_TARGETS; spaces around the commas
 * are ignored): every report goes to every URL, each with its own queue,
 * thread, connection and backoff, so standby placement replicas stay warm
 * and a dead one delays no other. What follows holds per URL. The sampler hands every report to
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
 *
 * --placement-resolve-all: a Kubernetes headless Service name resolves to
 * every replica's address, but a connection goes to one of them. With the
 * flag, each URL's host is resolved (getaddrinfo, IPv4 and IPv6) to all its
 * addresses when the pusher starts and again every
 * --placement-resolve-interval seconds (30; 5 at most while a name has no
 * address), and a target as above exists per (URL, address): its own queue,
 * thread, connection and backoff, connecting to that address while the URL
 * keeps its name (CURLOPT_CONNECT_TO: the Host header and TLS verification
 * still use the name). Targets are created and retired as addresses come
 * and go (at most DD_PUSH_MAX_ADDRS per URL, the lowest addresses in sorted
 * order kept); a retired target's queued reports are dropped. A failed
 * resolution (the resolver is unreachable, a temporary error) keeps the last
 * good set, logged and counted; a name with no address (NXDOMAIN, no
 * records) leaves that URL without targets, and each report meanwhile is
 * counted as dropped for reason no_address.
 */
#ifndef DD_PUSH_H
#define DD_PUSH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dedupd/config.h"
#include "placement/report.h"

/* Placement URLs a node pushes to at most. */
#define DD_PUSH_MAX_TARGETS 16u

/* Addresses one URL's name fans out to at most (--placement-resolve-all). */
#define DD_PUSH_MAX_ADDRS 64u
/* A numeric address as text, IPv6 with a zone included. */
#define DD_PUSH_ADDR_MAX 64u

struct dd_pusher;

/* Every address of url's host (getaddrinfo, AF_UNSPEC, TCP): numeric,
 * sorted, each once, the first max of them (*ret_more says how many more
 * there were). 0 with *ret_n >= 0 (0: the name has no address),
 * -EAGAIN (a temporary failure: try again later) or another negative error;
 * errbuf says what failed. */
int dd_push_resolve(const char *url, char (*addrs)[DD_PUSH_ADDR_MAX], size_t max, size_t *ret_n,
                    size_t *ret_more, char *errbuf, size_t errlen);

/* The target set update, pure: have[0..n_have) are the addresses with a
 * target, want[0..n_want) the fresh set. keep[i] says whether have[i] stays,
 * add[j] whether want[j] needs a new target. Returns the number of changes
 * (retired + added). */
size_t dd_push_addr_diff(const char (*have)[DD_PUSH_ADDR_MAX], size_t n_have,
                         const char (*want)[DD_PUSH_ADDR_MAX], size_t n_want, bool *keep,
                         bool *add);

/* Splits a comma-separated list into urls[0..*ret_n) (blanks around the
 * commas and empty items dropped). 0, -E2BIG (more than max) or
 * -ENAMETOOLONG (an item of 1024 bytes or more). */
int dd_push_split_urls(const char *list, char (*urls)[1024], size_t max, size_t *ret_n);

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

/* Statuses worth retrying: the placement role is down, overloaded, not
 * ready or (401) its token is being rotated. Other 4xx mean the body is
 * refused as it is. The report pusher and the pod-outcome poster
 * (dedupd/observe.c) both go by it. */
bool dd_push_retryable(int status);
/* Waits on cond (lock held) until ms pass or *stop; returns *stop. */
bool dd_push_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, const bool *stop, uint64_t ms);

#endif
