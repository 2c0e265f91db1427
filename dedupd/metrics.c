/*
 * The sampler's Prometheus families (metrics.h). Feature families take
 * their HELP text from the feature table, so a new feature is exported
 * with its unit the moment it is added to the list.
 */
#define _GNU_SOURCE
#include "dedupd/metrics.h"

#include <string.h>

#include "common/common.h"
#include "placement/features.h"

void dd_metrics_label_value(FILE *m, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', m);
        if (*v == '\n')
            fputs("\\n", m);
        else
            fputc(*v, m);
    }
}

void dd_metrics_family(FILE *m, const char *name, const char *type, const char *help)
{
    fprintf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A feature key as a metric name: Prometheus spells units out, so a rate
 * key's "_per_s" becomes "_per_second" (promtool check metrics refuses
 * abbreviated units); the JSON keys stay as they are. */
static const char *volume_metric_name(const char *key, char *buf, size_t len)
{
    static const char suffix[] = "_per_s";
    size_t n = strlen(key), sn = sizeof(suffix) - 1;

    if (n > sn && strcmp(key + n - sn, suffix) == 0) {
        snprintf(buf, len, "%.*s_per_second", (int)(n - sn), key);
        return buf;
    }
    return key;
}

/* Volumes are the inner loop: a family stays contiguous. */
void dd_metrics_volumes(FILE *m, json_t *arr)
{
    static const char *const extra[] = {"used_percent", "saving_percent", "vdo_cpu_seconds"};
    json_t *keys = json_object(), *vol;
    const char *key;
    json_t *val;
    size_t i;

    json_array_foreach(arr, i, vol)
    {
        json_object_foreach(json_object_get(vol, "features"), key, val)
        {
            if (json_is_number(val))
                json_object_set_new(keys, key, json_true());
        }
    }
    json_object_foreach(keys, key, val)
    {
        int f = dd_feature_by_key(key), t = f < 0 ? dd_target_by_key(key) : -1;
        const char *help = f >= 0 ? dd_feature_table[f].help
                                  : (t >= 0 ? dd_target_table[t].help : "Volume figure.");
        const char *unit =
            f >= 0 ? dd_feature_table[f].unit : (t >= 0 ? dd_target_table[t].unit : "");
        char namebuf[128];
        const char *name = volume_metric_name(key, namebuf, sizeof(namebuf));
        fprintf(m, "# HELP dedupd_volume_%s %s (%s)\n", name, help, unit);
        fprintf(m, "# TYPE dedupd_volume_%s gauge\n", name);
        json_array_foreach(arr, i, vol)
        {
            json_t *x = json_object_get(json_object_get(vol, "features"), key);
            if (json_is_number(x)) {
                fprintf(m, "dedupd_volume_%s{volume=\"", name);
                dd_metrics_label_value(m, json_string_value(json_object_get(vol, "name")));
                fprintf(m, "\"} %.10g\n", json_number_value(x));
            }
        }
    }
    for (size_t k = 0; k < DD_ARRAY_SIZE(extra); k++) {
        fprintf(m, "# HELP dedupd_volume_%s Volume %s.\n# TYPE dedupd_volume_%s gauge\n", extra[k],
                extra[k], extra[k]);
        json_array_foreach(arr, i, vol)
        {
            json_t *x = json_object_get(vol, extra[k]);
            if (json_is_number(x)) {
                fprintf(m, "dedupd_volume_%s{volume=\"", extra[k]);
                dd_metrics_label_value(m, json_string_value(json_object_get(vol, "name")));
                fprintf(m, "\"} %.10g\n", json_number_value(x));
            }
        }
    }
    json_decref(keys);
}

/*
 * One family with a sample per item of arr (GPUs, pods): the label from
 * the item's label_key (an integer or an escaped string), the value from
 * its key when the item has a number there. With always false, an empty
 * arr prints nothing at all.
 */
static void item_family(FILE *m, json_t *arr, const char *label, const char *label_key,
                        const char *key, const char *name, const char *help, bool always)
{
    json_t *x;
    size_t i;
    if (!always && !json_array_size(arr))
        return;
    dd_metrics_family(m, name, "gauge", help);
    json_array_foreach(arr, i, x)
    {
        json_t *l = json_object_get(x, label_key), *v = json_object_get(x, key);
        if (!json_is_number(v))
            continue;
        fprintf(m, "%s{%s=\"", name, label);
        if (json_is_integer(l))
            fprintf(m, "%lld", json_integer_value(l));
        else
            dd_metrics_label_value(m, json_string_value(l));
        if (json_is_integer(v))
            fprintf(m, "\"} %lld\n", json_integer_value(v));
        else
            fprintf(m, "\"} %.10g\n", json_number_value(v));
    }
}

void dd_metrics_node(FILE *m, json_t *node)
{
    static const struct {
        const char *key, *name, *help;
    } gauges[] = {
        {"cpu_util", "dedupd_node_cpu_utilization", "Node CPU busy share over the interval (0-1)."},
        {"node_cpu_util_ex_vdo", "dedupd_node_cpu_utilization_ex_vdo",
         "Node CPU busy share without the VDO kernel threads (0-1)."},
        {"load1", "dedupd_node_load1", "1-minute load average."},
        {"run_queue", "dedupd_node_run_queue", "Runnable tasks (/proc/loadavg)."},
        {"cpu_psi", "dedupd_node_cpu_pressure_some_avg10", "CPU pressure, some, avg10 (%)."},
        {"io_psi", "dedupd_node_io_pressure_some_avg10", "IO pressure, some, avg10 (%)."},
        {"mem_available_gib", "dedupd_node_memory_available_gib", "MemAvailable in GiB."},
        {"vdo_cpu_seconds", "dedupd_node_vdo_cpu_seconds",
         "CPU seconds of all VDO kernel threads in the last interval."},
    };
    json_t *gpus = json_object_get(node, "gpus"), *pods = json_object_get(node, "pods");

    for (size_t k = 0; k < DD_ARRAY_SIZE(gauges); k++) {
        json_t *v = json_object_get(node, gauges[k].key);
        if (!json_is_number(v))
            continue;
        dd_metrics_family(m, gauges[k].name, "gauge", gauges[k].help);
        fprintf(m, "%s %.10g\n", gauges[k].name, json_number_value(v));
    }
    dd_metrics_family(m, "dedupd_gpus_available", "gauge", "1 when NVML can sample GPUs.");
    fprintf(m, "dedupd_gpus_available %d\n", json_is_true(json_object_get(gpus, "available")));
    json_t *devs = json_object_get(gpus, "devices"), *list = json_object_get(pods, "pods");
    item_family(m, devs, "gpu", "index", "util_gpu_percent", "dedupd_gpu_utilization_percent",
                "Share of the last NVML period a kernel ran.", false);
    item_family(m, devs, "gpu", "index", "memory_used_bytes", "dedupd_gpu_memory_used_bytes",
                "GPU memory in use.", false);
    dd_metrics_family(m, "dedupd_pods", "gauge", "Kubernetes pods found in cgroup v2.");
    fprintf(m, "dedupd_pods %zu\n", json_array_size(list));
    item_family(m, list, "pod_uid", "uid", "cpu_cores", "dedupd_pod_cpu_cores",
                "Pod CPU use over the interval, in cores.", true);
    item_family(m, list, "pod_uid", "uid", "memory_current_bytes", "dedupd_pod_memory_bytes",
                "Pod memory.current.", true);
}
