/*
 * One connection to the Kubernetes API server as the writers use it (leader
 * election, the CSIStorageCapacity publisher, pod events): a libcurl client
 * (dedupd/http/client.h) on the source's URL with its CA and bearer token.
 * The token is read from its file at start, re-read every token_reread_s
 * (projected service-account tokens rotate) and at once after a 401
 * (dd_kubeclient_refresh with force); a changed token gets a new client.
 * Not thread-safe: one thread (the owner's) uses a client.
 */
#ifndef DD_KUBECLIENT_H
#define DD_KUBECLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dedupd/http/client.h"
#include "dedupd/kubewatch.h"

struct dd_kubeclient_config {
    const struct dd_kube_source *src; /* copied; required: a URL */
    const char *what;                 /* log prefix ("leader election"); static */
    double token_reread_s;            /* 0: 60 */
    long connect_timeout_ms, timeout_ms;
    bool (*cancel)(void *ud); /* may be NULL */
    void *cancel_ud;
};

struct dd_kubeclient {
    struct dd_kube_source src;
    const char *what;
    double token_reread_s;
    long connect_timeout_ms, timeout_ms;
    bool (*cancel)(void *ud);
    void *cancel_ud;
    char *token; /* NULL: no token file */
    uint64_t token_read_ms;
    struct dd_http_client *client;
};

/* Reads the token (when the source names a file) and makes the client.
 * 0, or an error with errbuf saying why (k is released then). */
int dd_kubeclient_init(struct dd_kubeclient *k, const struct dd_kubeclient_config *c, char *errbuf,
                       size_t errlen);
/* Re-reads the token when due, or now with force (after a 401); a token
 * that cannot be read keeps the one read before (logged at debug). */
void dd_kubeclient_refresh(struct dd_kubeclient *k, bool force);
void dd_kubeclient_release(struct dd_kubeclient *k);

#endif
