/*
 * Node reports for the tests and benches; see reports.h.
 */
#include "reports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/common.h"
#include "helpers.h"
#include "placement/report.h"

#define GIB 1073741824.0

json_t *tt_node_report_json(const struct tt_node_report *n)
{
    struct dd_report r;
    json_t *j;
    if (dd_report_alloc(&r, n->gpus, 1, 0) < 0)
        return NULL;
    r.schema = DD_REPORT_SCHEMA;
    snprintf(r.node, sizeof(r.node), "%s", n->node);
    r.interval_s = 10;
    r.time_ms = dd_wall_ms();
    r.cores = 64;
    if (n->with_load) {
        r.cpu_util_ex_vdo = n->cpu_ex;
        r.cpu_psi = 2;
        r.io_psi = n->io_psi;
        r.run_queue = 4;
        r.vdo_cpu_seconds = 5;
    }
    if (n->gpus) {
        r.gpus_available = true;
        for (unsigned g = 0; g < n->gpus; g++) {
            r.gpus[g].index = g;
            r.gpus[g].util_gpu_percent = 10;
        }
    }
    struct dd_report_volume *v = &r.volumes[0];
    snprintf(v->name, sizeof(v->name), "vdo0");
    snprintf(v->pool, sizeof(v->pool), "%s", n->pool);
    snprintf(v->mode, sizeof(v->mode), "normal");
    snprintf(v->index_state, sizeof(v->index_state), "online");
    v->vdo_version = 36;
    v->physical_bytes = (int64_t)(n->physical_gib * GIB);
    v->physical_free_bytes = (int64_t)(n->physical_free_gib * GIB);
    v->logical_bytes = (int64_t)(n->logical_gib * GIB);
    v->logical_free_bytes = (int64_t)(n->logical_free_gib * GIB);
    struct dd_features *ft = &v->features;
    dd_features_clear(ft);
    if (n->with_load) {
        ft->v[DD_F_WRITE_MBPS] = n->write_mbps;
        ft->v[DD_F_READ_MBPS] = 100;
        ft->v[DD_F_WRITE_IOPS] = n->write_mbps * 1e6 / 4096;
        ft->v[DD_F_DEDUP_HIT_RATE] = 0.4;
        ft->v[DD_F_INDEX_ENTRIES] = 5e6;
        ft->v[DD_F_COMPRESSION] = 1;
        ft->v[DD_F_PACKER_SAVINGS] = 0.2;
        ft->v[DD_F_NODE_CPU_UTIL_EX_VDO] = n->cpu_ex;
        ft->v[DD_F_CPU_PSI] = 2;
        ft->v[DD_F_IO_PSI] = n->io_psi;
        ft->v[DD_F_RUN_QUEUE] = 4;
    }
    ft->v[DD_F_DEDUP_RATIO] = n->dedup_ratio;
    j = dd_report_to_json(&r);
    dd_report_release(&r);
    return j;
}

long tt_node_report_post(const char *base_url, const struct tt_node_report *n)
{
    char url[512];
    json_t *j = tt_node_report_json(n);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    long status = 0;
    json_decref(j);
    if (!body)
        return 0;
    snprintf(url, sizeof(url), "%s/v1/reports", base_url);
    struct tt_reply rep = tt_http(url, "POST", body, strlen(body), 10);
    status = rep.status;
    free(rep.body);
    free(body);
    return status;
}
