/*
 * The node report: what a node-role dedupd pushes to the placement role
 * after every sample (POST /v1/reports), typed, with its JSON codec.
 *
 * Wire form (schema 1; every figure a node cannot read is absent or null):
 *
 *   {"schema": 1, "node": "gpu-a-01", "interval_seconds": 10,
 *    "time_ms": 1764950400000,
 *    "node_info": {"cores": 64, "vdo_threads": 26},
 *    "load": {"cpu_util": 0.41, "cpu_util_ex_vdo": 0.33, "cpu_psi": 2.1,
 *             "io_psi": 0.4, "run_queue": 5, "load1": 7.2,
 *             "mem_available_gib": 210.5, "vdo_cpu_seconds": 0.8},
 *    "gpus": {"available": true, "devices": [{"index": 0, "name": "H100",
 *             "util_gpu_percent": 87, "util_memory_percent": 40,
 *             "memory_used_bytes": 1, "memory_total_bytes": 2}]},
 *    "volumes": [{"name": "vdo0", "pool": "fast", "mode": "normal",
 *             "index_state": "online", "vdo_version": 36,
 *             "rotational": false, "logical_bytes": 1, "logical_free_bytes": 1,
 *             "physical_bytes": 1, "physical_free_bytes": 1,
 *             "features": {"write_mbps": 12.5, ..., "cost": 0.4}}],
 *    "pods": [{"uid": "…", "qos": "burstable", "cpu_cores": 1.5,
 *              "memory_bytes": 1, "io_read_mbps": 3, "io_write_mbps": 1}]}
 *
 * What makes nodes comparable for one model trained across them travels
 * with each volume (VDO stats version, UDS index state, backing device
 * rotational or not, logical free space) and node (core count).
 *
 * Decoding is strict: unknown schema versions are refused naming the ones
 * accepted, names are checked (non-empty UTF-8 without control characters,
 * under DD_NAME_MAX; a node name as Kubernetes spells one), counts are
 * capped (common/limits.h), every number is range-checked, and every error
 * names the field ("volumes[2].features.write_mbps: ..."). Pure: no I/O.
 */
#ifndef DD_PLACEMENT_REPORT_H
#define DD_PLACEMENT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/limits.h"
#include "placement/features.h"

#define DD_REPORT_SCHEMA 1

struct dd_report_volume {
    char name[DD_NAME_MAX], pool[DD_NAME_MAX];
    char mode[24];        /* "normal", "recovering", "read-only"; "" unknown */
    char index_state[16]; /* "online", "offline", ...; "" unknown */
    int vdo_version;      /* stats version (36 on dm-vdo); 0 unknown */
    int rotational;       /* backing device: 1 rotational, 0 not, -1 unknown */
    /* bytes; -1 unknown */
    int64_t logical_bytes, logical_free_bytes, physical_bytes, physical_free_bytes;
    struct dd_features features;
};

struct dd_report_gpu {
    unsigned index;
    char name[96];
    double util_gpu_percent, util_memory_percent; /* NaN unknown */
    double memory_used_bytes, memory_total_bytes; /* NaN unknown */
};

struct dd_report_pod {
    char uid[64];
    char qos[16];
    double cpu_cores, memory_bytes, io_read_mbps, io_write_mbps; /* NaN unknown */
};

struct dd_report {
    unsigned schema;
    char node[DD_NAME_MAX];
    double interval_s;
    uint64_t time_ms; /* the node's clock at the sample */
    unsigned cores;   /* 0 unknown */
    unsigned vdo_threads;
    /* node load; NaN unknown */
    double cpu_util, cpu_util_ex_vdo, cpu_psi, io_psi, run_queue, load1, mem_available_gib,
        vdo_cpu_seconds;
    bool gpus_available;
    size_t n_gpus, n_volumes, n_pods;
    /* one allocation holds the three arrays (dd_report_alloc) */
    struct dd_report_gpu *gpus;
    struct dd_report_volume *volumes;
    struct dd_report_pod *pods;
};

/* Zeroes r, sets unknowns (NaN, -1) and allocates room for the counts
 * given (each within its cap). Returns 0 or -ENOMEM / -E2BIG. */
int dd_report_alloc(struct dd_report *r, size_t n_gpus, size_t n_volumes, size_t n_pods);
/* Sets every figure of v unknown (NaN, -1, ""). */
void dd_report_volume_clear(struct dd_report_volume *v);
void dd_report_release(struct dd_report *r);
/* A deep copy. Returns 0 or -ENOMEM. */
int dd_report_copy(const struct dd_report *src, struct dd_report *ret);

/* The wire form (schema 1). NULL on allocation failure. */
json_t *dd_report_to_json(const struct dd_report *r);
/* Strict decode; on failure -EINVAL and errbuf names the field. */
int dd_report_from_json(json_t *doc, struct dd_report *ret, char *errbuf, size_t errlen);

/* Is s a Kubernetes node name (a DNS subdomain: 1..253 of a-z 0-9 - .,
 * starting and ending alphanumeric)? */
bool dd_report_node_name_ok(const char *s);

/* The prefix of a Kubernetes node's client certificate CN
 * ("system:node:NAME", organisation system:nodes). */
#define DD_REPORT_K8S_NODE_PREFIX "system:node:"

/* Does a client certificate's identity (dd_http_request.peer_identity)
 * name this node? Yes when it is the node name itself or
 * "system:node:" + the node name; compared byte for byte (node names are
 * lower case). An empty identity names no node. */
bool dd_report_identity_names_node(const char *identity, const char *node);

#endif
