/*
 * Node reports as the integration tests and benches send them to a
 * placement role: one VDO volume "vdo0" (VDO version 36, mode normal, index
 * online) on a node of 64 cores, with optional GPU and load readings. One
 * builder for test-csi-api, test-csi-publish, test-admission-api and
 * bench/csi-publish.c (they differ only in the figures).
 */
#ifndef DD_TESTS_REPORTS_H
#define DD_TESTS_REPORTS_H

#include <stdbool.h>

#include <jansson.h>

struct tt_node_report {
    const char *node, *pool;
    double physical_gib, physical_free_gib, logical_gib, logical_free_gib;
    double dedup_ratio;
    /* load: node CPU without VDO (0..1), IO pressure, the volume's write
     * MB/s (read 100 MB/s, 40 % duplicates, compression on); with_load
     * false leaves every feature but the dedup ratio unset */
    bool with_load;
    double write_mbps, cpu_ex, io_psi;
    unsigned gpus; /* GPU readings at 10 % utilisation; 0: none */
};

/* The report document (dd_report_to_json); NULL on ENOMEM. */
json_t *tt_node_report_json(const struct tt_node_report *n);
/* POSTs it to BASE/v1/reports; returns the HTTP status (0: no answer). */
long tt_node_report_post(const char *base_url, const struct tt_node_report *n);

#endif
