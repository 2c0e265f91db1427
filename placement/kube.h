/*
 * PROVISIONAL: the types of the Kubernetes cache that placement/profile and
 * placement/score read (the cache itself lands from its own branch).
 */
#ifndef DD_PLACEMENT_KUBE_H
#define DD_PLACEMENT_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"

#define DD_KUBE_MAX_CLAIMS 16

struct dd_kube_claim {
    char name[DD_NAME_MAX];
    bool known;
    bool ours;
    char pool[DD_NAME_MAX];
    char storage_class[DD_NAME_MAX];
    bool bound;
    char node[DD_NAME_MAX];
    uint64_t request_bytes;
    bool read_write;
    char read_mbps[32], write_mbps[32], duplicate_share[32], profile[DD_NAME_MAX];
};

struct dd_kube_pod {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX], node[DD_NAME_MAX];
    double gpus;
    char read_mbps[32], write_mbps[32], duplicate_share[32], profile[DD_NAME_MAX];
    size_t n_claims;
    struct dd_kube_claim claims[DD_KUBE_MAX_CLAIMS];
    bool claims_truncated;
};

#endif
