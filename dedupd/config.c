/*
 * The configuration: one table of string options shared by the config file
 * and the flags, the numeric and list options beside it, the check and the
 * effective configuration logged at start. See config.h for the order in
 * which sources apply.
 */
#define _GNU_SOURCE
#include "dedupd/config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/trainer.h"
#include "placement/report.h"

static const char *const role_names[] = {"all", "node", "placement"};

const char *dd_role_name(enum dd_role r)
{
    return (size_t)r < DD_ARRAY_SIZE(role_names) ? role_names[r] : "?";
}

static int role_parse(const char *s, enum dd_role *ret)
{
    for (size_t i = 0; i < DD_ARRAY_SIZE(role_names); i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *ret = (enum dd_role)i;
            return 0;
        }
    }
    return DD_E_USAGE;
}

void dd_config_defaults(struct dd_config *c)
{
    struct dd_model_config mc;
    memset(c, 0, sizeof(*c));
    c->role = DD_ROLE_ALL;
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:7450");
    snprintf(c->data_dir, sizeof(c->data_dir), "/var/lib/dedupd");
    snprintf(c->source, sizeof(c->source), "dm");
    snprintf(c->proc_root, sizeof(c->proc_root), "/proc");
    snprintf(c->sys_root, sizeof(c->sys_root), "/sys");
    c->interval = 10.0;
    c->retention_days = 14;
    c->http_threads = 4;
    snprintf(c->log_level, sizeof(c->log_level), "info");
    dd_model_config_defaults(&mc);
    c->min_train_samples = mc.min_train_samples;
    c->retrain_every = mc.retrain_every;
    c->stale_after = 0;
    c->forget_after = 3600;
    snprintf(c->placement_mode, sizeof(c->placement_mode), "enforce");
    c->neutral_score = 5;
    c->score_scale_percent = 25;
    c->max_physical_use = 0.95;
    c->ledger_ttl = 30;
    c->ledger_bound_ttl = 600;
    snprintf(c->lease_name, sizeof(c->lease_name), "dedupd-placement");
    c->lease_duration = 15;
    c->renew_deadline = 10;
    c->retry_period = 2;
    snprintf(c->rightsize_mode, sizeof(c->rightsize_mode), "enforce");
    c->rightsize_max_step = 2;
    c->rightsize_memory_margin = 0.2;
    c->rightsize_retrain_every = 200;
    c->rightsize_retrain_interval = 600;
    c->rightsize_min_outcomes = 100;
    snprintf(c->observe_pods, sizeof(c->observe_pods), "auto");
    snprintf(c->publish_capacity_node_key, sizeof(c->publish_capacity_node_key),
             "topology.dedupd.io/node");
    c->publish_capacity_interval = 60;
    c->publish_capacity_threshold = 0.05;
    c->publish_capacity_min_change = 1073741824.0;
    c->publish_capacity_qps = 10;
    c->publish_capacity_burst = 20;
    c->pod_events_qps = 5;
    c->pod_events_burst = 20;
    c->pod_events_window = 60;
    c->placement_resolve_interval = 30;
}

/* String options: the config file's key, the flag and where it goes. */
#define STR_OPT(key, flag, field)                                                                  \
    {                                                                                              \
        key, flag, offsetof(struct dd_config, field), sizeof(((struct dd_config *)0)->field)       \
    }
static const struct str_opt {
    const char *key, *flag;
    size_t offset, len;
} str_opts[] = {
    STR_OPT("listen", "listen", listen),
    STR_OPT("data_dir", "data-dir", data_dir),
    STR_OPT("source", "source", source),
    STR_OPT("proc_root", "proc-root", proc_root),
    STR_OPT("sys_root", "sys-root", sys_root),
    STR_OPT("token_file", "token-file", token_file),
    STR_OPT("tls_cert", "tls-cert", tls_cert),
    STR_OPT("tls_key", "tls-key", tls_key),
    STR_OPT("tls_client_ca", "tls-client-ca", tls_client_ca),
    STR_OPT("log_level", "log-level", log_level),
    STR_OPT("prior_file", "prior-file", prior_file),
    STR_OPT("node_name", "node-name", node_name),
    STR_OPT("placement_url", "placement-url", placement_url),
    STR_OPT("placement_token_file", "placement-token-file", placement_token_file),
    STR_OPT("placement_mode", "placement-mode", placement_mode),
    STR_OPT("kube_api", "kube-api", kube_api),
    STR_OPT("kube_token_file", "kube-token-file", kube_token_file),
    STR_OPT("kube_ca_file", "kube-ca-file", kube_ca_file),
    STR_OPT("placement_cert_file", "placement-cert-file", placement_cert_file),
    STR_OPT("placement_key_file", "placement-key-file", placement_key_file),
    STR_OPT("placement_ca_file", "placement-ca-file", placement_ca_file),
    STR_OPT("lease_name", "lease-name", lease_name),
    STR_OPT("lease_namespace", "lease-namespace", lease_namespace),
    STR_OPT("pod_name", "pod-name", pod_name),
    STR_OPT("rightsize_mode", "rightsize-mode", rightsize_mode),
    STR_OPT("cgroup_root", "cgroup-root", cgroup_root),
    STR_OPT("observe_pods", "observe-pods", observe_pods),
    STR_OPT("publish_capacity_namespace", "publish-capacity-namespace", publish_capacity_namespace),
    STR_OPT("publish_capacity_owner", "publish-capacity-owner", publish_capacity_owner),
    STR_OPT("publish_capacity_node_key", "publish-capacity-node-key", publish_capacity_node_key),
};

static int set_string(char *dst, size_t len, const char *v, const char *what, char *why,
                      size_t wlen);

/* --gpu-resource NAME (repeatable) / "gpu_resources": ["NAME", ...] */
static int add_gpu_resource(struct dd_config *c, const char *name, char *why, size_t wlen)
{
    if (c->n_gpu_resources >= DD_KUBE_MAX_GPU_RESOURCES) {
        snprintf(why, wlen, "at most %u GPU resource names", DD_KUBE_MAX_GPU_RESOURCES);
        return DD_E_RANGE;
    }
    if (!name[0] || strchr(name, ' ')) {
        snprintf(why, wlen, "GPU resource name '%.64s': expected e.g. nvidia.com/gpu", name);
        return DD_E_USAGE;
    }
    return set_string(c->gpu_resources[c->n_gpu_resources++], DD_NAME_MAX, name,
                      "GPU resource name", why, wlen);
}

/* --rightsize-exclude-namespace NS (repeatable) / "rightsize_exclude_namespaces": [...] */
static int add_rs_exclude(struct dd_config *c, const char *ns, char *why, size_t wlen)
{
    if (c->n_rightsize_exclude >= DD_CONFIG_MAX_RS_EXCLUDE) {
        snprintf(why, wlen, "at most %d excluded namespaces", DD_CONFIG_MAX_RS_EXCLUDE);
        return DD_E_RANGE;
    }
    if (!ns[0] || strchr(ns, '/') || strchr(ns, ' ')) {
        snprintf(why, wlen, "excluded namespace '%.64s': expected a namespace name", ns);
        return DD_E_USAGE;
    }
    return set_string(c->rightsize_exclude[c->n_rightsize_exclude++], DD_NAME_MAX, ns,
                      "excluded namespace", why, wlen);
}

static int set_string(char *dst, size_t len, const char *v, const char *what, char *why,
                      size_t wlen)
{
    if (strlen(v) >= len) {
        snprintf(why, wlen, "%s is longer than %zu characters", what, len - 1);
        return DD_E_RANGE;
    }
    snprintf(dst, len, "%s", v);
    return 0;
}

/* "VOLUME=POOL" or, from the file, the two strings. */
static int add_pool(struct dd_config *c, const char *volume, const char *pool, char *why,
                    size_t wlen)
{
    size_t i;
    if (!volume[0] || !pool[0]) {
        snprintf(why, wlen, "pool mapping: expected VOLUME=POOL with both names set");
        return DD_E_USAGE;
    }
    for (i = 0; i < c->n_pools && strcmp(c->pools[i].volume, volume) != 0; i++)
        ;
    if (i == c->n_pools) {
        if (c->n_pools >= DD_MAX_VOLUMES_PER_NODE) {
            snprintf(why, wlen, "pool mapping: at most %u volumes", DD_MAX_VOLUMES_PER_NODE);
            return DD_E_RANGE;
        }
        c->n_pools++;
    }
    if (set_string(c->pools[i].volume, sizeof(c->pools[i].volume), volume, "pool volume", why,
                   wlen) < 0 ||
        set_string(c->pools[i].pool, sizeof(c->pools[i].pool), pool, "pool name", why, wlen) < 0)
        return DD_E_RANGE;
    return 0;
}

static int parse_pool_arg(struct dd_config *c, const char *arg, char *why, size_t wlen)
{
    const char *eq = strchr(arg, '=');
    char volume[DD_NAME_MAX];
    if (!eq || (size_t)(eq - arg) >= sizeof(volume)) {
        snprintf(why, wlen, "--pool '%.64s': expected VOLUME=POOL", arg);
        return DD_E_USAGE;
    }
    memcpy(volume, arg, (size_t)(eq - arg));
    volume[eq - arg] = '\0';
    return add_pool(c, volume, eq + 1, why, wlen);
}

static int number_in(json_t *v, double lo, double hi, double *ret)
{
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi))
        return DD_E_RANGE;
    *ret = json_number_value(v);
    return 0;
}

/* Numeric options: the file's key, the flag, the range and where it goes. */
enum num_field {
    N_INTERVAL,
    N_RETENTION,
    N_MIN_TRAIN,
    N_RETRAIN,
    N_HTTP_THREADS,
    N_STALE,
    N_FORGET,
    N_NEUTRAL,
    N_SCALE,
    N_MAX_PHYS,
    N_LEDGER_TTL,
    N_LEDGER_BOUND_TTL,
    N_LEASE_DURATION,
    N_RENEW_DEADLINE,
    N_RETRY_PERIOD,
    N_RS_MAX_STEP,
    N_RS_MEMORY_MARGIN,
    N_RS_RETRAIN_EVERY,
    N_RS_RETRAIN_INTERVAL,
    N_RS_MIN_OUTCOMES,
    N_PUB_INTERVAL,
    N_PUB_THRESHOLD,
    N_PUB_MIN_CHANGE,
    N_PUB_QPS,
    N_PUB_BURST,
    N_EV_QPS,
    N_EV_BURST,
    N_EV_WINDOW,
    N_RESOLVE_INTERVAL
};
static const struct num_opt {
    const char *key, *flag;
    double lo, hi;
    bool integer;
    const char *unit;
} num_opts[] = {
    [N_INTERVAL] = {"interval", "interval", 0.01, 3600, false, "seconds"},
    [N_RETENTION] = {"retention_days", "retention-days", 0, 3650, true, "days"},
    [N_MIN_TRAIN] = {"min_train_samples", "min-train-samples", 1, 1e8, true, "samples"},
    [N_RETRAIN] = {"retrain_every", "retrain-every", 1, 1e8, true, "samples"},
    [N_HTTP_THREADS] = {"http_threads", "http-threads", 1, 256, true, "threads"},
    [N_STALE] = {"stale_after", "stale-after", 0, 86400 * 365.0, false, "seconds"},
    [N_FORGET] = {"forget_after", "forget-after", 1, 86400 * 365.0, false, "seconds"},
    [N_NEUTRAL] = {"neutral_score", "neutral-score", 0, 10, true, "score"},
    [N_SCALE] = {"score_scale", "score-scale", 1, 10000, false, "percent slowdown scoring 5"},
    [N_MAX_PHYS] = {"max_physical_use", "max-physical-use", 0.05, 1, false, "share"},
    [N_LEDGER_TTL] = {"ledger_ttl", "ledger-ttl", 1, 3600, false, "seconds"},
    [N_LEDGER_BOUND_TTL] = {"ledger_bound_ttl", "ledger-bound-ttl", 1, 86400, false, "seconds"},
    [N_LEASE_DURATION] = {"lease_duration", "lease-duration", 1, 3600, true, "seconds"},
    [N_RENEW_DEADLINE] = {"renew_deadline", "renew-deadline", 0.05, 3600, false, "seconds"},
    [N_RETRY_PERIOD] = {"retry_period", "retry-period", 0.01, 3600, false, "seconds"},
    [N_RS_MAX_STEP] = {"rightsize_max_step", "rightsize-max-step", 1.01, 100, false, "factor"},
    [N_RS_MEMORY_MARGIN] = {"rightsize_memory_margin", "rightsize-memory-margin", 0, 10, false,
                            "share over the peak"},
    [N_RS_RETRAIN_EVERY] = {"rightsize_retrain_every", "rightsize-retrain-every", 1, 1e8, true,
                            "outcomes"},
    [N_RS_RETRAIN_INTERVAL] = {"rightsize_retrain_interval", "rightsize-retrain-interval", 0.1,
                               86400 * 30.0, false, "seconds"},
    [N_RS_MIN_OUTCOMES] = {"rightsize_min_outcomes", "rightsize-min-outcomes", 1, 1e8, true,
                           "outcomes"},
    [N_PUB_INTERVAL] = {"publish_capacity_interval", "publish-capacity-interval", 0.05, 86400,
                        false, "seconds"},
    [N_PUB_THRESHOLD] = {"publish_capacity_threshold", "publish-capacity-threshold", 0, 1, false,
                         "share"},
    [N_PUB_MIN_CHANGE] = {"publish_capacity_min_change", "publish-capacity-min-change", 0, 9.2e18,
                          true, "bytes"},
    [N_PUB_QPS] = {"publish_capacity_qps", "publish-capacity-qps", 0.01, 10000, false,
                   "writes a second"},
    [N_PUB_BURST] = {"publish_capacity_burst", "publish-capacity-burst", 1, 100000, true, "writes"},
    [N_EV_QPS] = {"pod_events_qps", "pod-events-qps", 0.01, 10000, false, "events a second"},
    [N_EV_BURST] = {"pod_events_burst", "pod-events-burst", 1, 100000, true, "events"},
    [N_EV_WINDOW] = {"pod_events_window", "pod-events-window", 0, 86400, false, "seconds"},
    [N_RESOLVE_INTERVAL] = {"placement_resolve_interval", "placement-resolve-interval", 0.05, 86400,
                            false, "seconds"},
};

static void set_num(struct dd_config *c, enum num_field f, double v)
{
    switch (f) {
    case N_INTERVAL:
        c->interval = v;
        break;
    case N_RETENTION:
        c->retention_days = (unsigned)v;
        break;
    case N_MIN_TRAIN:
        c->min_train_samples = (unsigned)v;
        break;
    case N_RETRAIN:
        c->retrain_every = (unsigned)v;
        break;
    case N_HTTP_THREADS:
        c->http_threads = (unsigned)v;
        break;
    case N_STALE:
        c->stale_after = v;
        break;
    case N_FORGET:
        c->forget_after = v;
        break;
    case N_NEUTRAL:
        c->neutral_score = (unsigned)v;
        break;
    case N_SCALE:
        c->score_scale_percent = v;
        break;
    case N_MAX_PHYS:
        c->max_physical_use = v;
        break;
    case N_LEDGER_TTL:
        c->ledger_ttl = v;
        break;
    case N_LEDGER_BOUND_TTL:
        c->ledger_bound_ttl = v;
        break;
    case N_LEASE_DURATION:
        c->lease_duration = v;
        break;
    case N_RENEW_DEADLINE:
        c->renew_deadline = v;
        break;
    case N_RETRY_PERIOD:
        c->retry_period = v;
        break;
    case N_RS_MAX_STEP:
        c->rightsize_max_step = v;
        break;
    case N_RS_MEMORY_MARGIN:
        c->rightsize_memory_margin = v;
        break;
    case N_RS_RETRAIN_EVERY:
        c->rightsize_retrain_every = (unsigned)v;
        break;
    case N_RS_RETRAIN_INTERVAL:
        c->rightsize_retrain_interval = v;
        break;
    case N_RS_MIN_OUTCOMES:
        c->rightsize_min_outcomes = (unsigned)v;
        break;
    case N_PUB_INTERVAL:
        c->publish_capacity_interval = v;
        break;
    case N_PUB_THRESHOLD:
        c->publish_capacity_threshold = v;
        break;
    case N_PUB_MIN_CHANGE:
        c->publish_capacity_min_change = v;
        break;
    case N_PUB_QPS:
        c->publish_capacity_qps = v;
        break;
    case N_PUB_BURST:
        c->publish_capacity_burst = v;
        break;
    case N_EV_QPS:
        c->pod_events_qps = v;
        break;
    case N_EV_BURST:
        c->pod_events_burst = v;
        break;
    case N_EV_WINDOW:
        c->pod_events_window = v;
        break;
    case N_RESOLVE_INTERVAL:
        c->placement_resolve_interval = v;
        break;
    }
}

static int file_key(struct dd_config *c, const char *key, json_t *v, char *why, size_t wlen)
{
    for (size_t i = 0; i < DD_ARRAY_SIZE(str_opts); i++) {
        if (strcmp(key, str_opts[i].key) != 0)
            continue;
        if (!json_is_string(v)) {
            snprintf(why, wlen, "'%s' must be a string", key);
            return DD_E_PARSE;
        }
        return set_string((char *)c + str_opts[i].offset, str_opts[i].len, json_string_value(v),
                          key, why, wlen);
    }
    for (size_t i = 0; i < DD_ARRAY_SIZE(num_opts); i++) {
        const struct num_opt *o = &num_opts[i];
        double x;
        if (strcmp(key, o->key) != 0)
            continue;
        if ((o->integer && !json_is_integer(v)) || number_in(v, o->lo, o->hi, &x) < 0) {
            snprintf(why, wlen, "'%s' must be %s %g..%g (%s)", key,
                     o->integer ? "an integer" : "a number", o->lo, o->hi, o->unit);
            return DD_E_RANGE;
        }
        set_num(c, (enum num_field)i, x);
        return 0;
    }
    if (strcmp(key, "leader_elect") == 0) {
        if (!json_is_boolean(v)) {
            snprintf(why, wlen, "'leader_elect' must be true or false");
            return DD_E_PARSE;
        }
        c->leader_elect = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "rightsize_no_cpu_limits") == 0) {
        if (!json_is_boolean(v)) {
            snprintf(why, wlen, "'rightsize_no_cpu_limits' must be true or false");
            return DD_E_PARSE;
        }
        c->rightsize_no_cpu_limits = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "rightsize_exclude_namespaces") == 0) {
        size_t i;
        json_t *e;
        int r;
        if (!json_is_array(v)) {
            snprintf(why, wlen, "'rightsize_exclude_namespaces' must be an array of namespaces");
            return DD_E_PARSE;
        }
        c->n_rightsize_exclude = 0;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                snprintf(why, wlen, "'rightsize_exclude_namespaces[%zu]' must be a string", i);
                return DD_E_PARSE;
            }
            if ((r = add_rs_exclude(c, json_string_value(e), why, wlen)) < 0)
                return r;
        }
        return 0;
    }
    if (strcmp(key, "publish_capacity") == 0) {
        if (!json_is_boolean(v)) {
            snprintf(why, wlen, "'publish_capacity' must be true or false");
            return DD_E_PARSE;
        }
        c->publish_capacity = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "placement_resolve_all") == 0) {
        if (!json_is_boolean(v)) {
            snprintf(why, wlen, "'placement_resolve_all' must be true or false");
            return DD_E_PARSE;
        }
        c->placement_resolve_all = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "pod_events") == 0) {
        if (!json_is_boolean(v)) {
            snprintf(why, wlen, "'pod_events' must be true or false");
            return DD_E_PARSE;
        }
        c->pod_events = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "role") == 0) {
        if (!json_is_string(v) || role_parse(json_string_value(v), &c->role) < 0) {
            snprintf(why, wlen, "'role' must be node, placement or all");
            return DD_E_PARSE;
        }
        return 0;
    }
    if (strcmp(key, "estimate_roots") == 0) {
        size_t i;
        json_t *e;
        if (!json_is_array(v) || json_array_size(v) > DD_CONFIG_MAX_ESTIMATE_ROOTS) {
            snprintf(why, wlen, "'estimate_roots' must be an array of at most %d paths",
                     DD_CONFIG_MAX_ESTIMATE_ROOTS);
            return DD_E_PARSE;
        }
        c->n_estimate_roots = 0;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                snprintf(why, wlen, "'estimate_roots[%zu]' must be a string", i);
                return DD_E_PARSE;
            }
            if (set_string(c->estimate_roots[i], sizeof(c->estimate_roots[i]), json_string_value(e),
                           "estimate_roots[]", why, wlen) < 0)
                return DD_E_RANGE;
            c->n_estimate_roots++;
        }
        return 0;
    }
    if (strcmp(key, "gpu_resources") == 0) {
        size_t i;
        json_t *e;
        int r;
        if (!json_is_array(v)) {
            snprintf(why, wlen, "'gpu_resources' must be an array of resource names");
            return DD_E_PARSE;
        }
        c->n_gpu_resources = 0;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                snprintf(why, wlen, "'gpu_resources[%zu]' must be a string", i);
                return DD_E_PARSE;
            }
            if ((r = add_gpu_resource(c, json_string_value(e), why, wlen)) < 0)
                return r;
        }
        return 0;
    }
    if (strcmp(key, "pools") == 0) {
        const char *vol;
        json_t *p;
        if (!json_is_object(v)) {
            snprintf(why, wlen, "'pools' must be an object {\"VOLUME\": \"POOL\"}");
            return DD_E_PARSE;
        }
        c->n_pools = 0;
        json_object_foreach(v, vol, p)
        {
            int r;
            if (!json_is_string(p)) {
                snprintf(why, wlen, "'pools.%.64s' must be a string (the pool name)", vol);
                return DD_E_PARSE;
            }
            if ((r = add_pool(c, vol, json_string_value(p), why, wlen)) < 0)
                return r;
        }
        return 0;
    }
    if (strcmp(key, "profiles") == 0) {
        struct dd_profile_set set;
        char perr[256];
        dd_profile_set_init(&set);
        if (dd_profile_set_from_json(&set, v, perr, sizeof(perr)) < 0) {
            snprintf(why, wlen, "'profiles': %.200s", perr);
            return DD_E_PARSE;
        }
        c->n_profiles = set.n;
        memcpy(c->profiles, set.defs, set.n * sizeof(*set.defs));
        c->has_default_profile = json_object_get(v, "default") != NULL;
        c->default_profile = set.dflt;
        dd_profile_set_release(&set);
        return 0;
    }
    snprintf(why, wlen, "unknown key '%.64s'", key);
    return DD_E_PARSE;
}

int dd_config_from_json(struct dd_config *c, const char *name, json_t *doc, char *errbuf,
                        size_t errlen)
{
    const char *key;
    json_t *v;
    char why[256];
    int r = 0;

    if (!json_is_object(doc)) {
        snprintf(errbuf, errlen, "config %s: must be a JSON object", name);
        return DD_E_PARSE;
    }
    json_object_foreach(doc, key, v)
    {
        why[0] = '\0';
        if ((r = file_key(c, key, v, why, sizeof(why))) < 0) {
            snprintf(errbuf, errlen, "config %s: %s", name, why);
            break;
        }
    }
    return r;
}

int dd_config_file(struct dd_config *c, const char *path, char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    int r;

    if (!doc) {
        snprintf(errbuf, errlen, "config %s: line %d, column %d: %s", path, jerr.line, jerr.column,
                 jerr.text);
        return DD_E_PARSE;
    }
    r = dd_config_from_json(c, path, doc, errbuf, errlen);
    json_decref(doc);
    return r;
}

void dd_config_usage(FILE *out)
{
    fputs("Usage: dedupd [OPTIONS]\n"
          "  --version                   print the version and exit\n"
          "  --role node|placement|all   (default all)\n"
          "  --listen ADDR:PORT          (default 127.0.0.1:7450)\n"
          "  --data-dir DIR              RocksDB store (default /var/lib/dedupd)\n"
          "  --source dm|sysfs|replay:DIR  VDO statistics (default dm)\n"
          "  --proc-root DIR --sys-root DIR  /proc and /sys prefixes\n"
          "  --interval SECONDS          sampling interval (default 10; fractions allowed)\n"
          "  --config FILE               JSON config (keys as the flags, snake_case)\n"
          "  --token-file FILE           bearer token for mutating endpoints\n"
          "  --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]  HTTPS\n"
          "  --estimate-root DIR         allow /v1/estimate under DIR (repeatable)\n"
          "  --retention-days N          history kept (default 14)\n"
          "  --log-level error|warning|info|debug\n"
          "  --http-threads N            HTTP worker threads (default 4)\n"
          "  --min-train-samples N       samples before the XGBoost cost model trains (500)\n"
          "  --retrain-every N           new volume samples between retrains (360)\n"
          "  --prior-file FILE           cost-model prior coefficients (JSON)\n"
          "  --rightsize-retrain-every N    new pod outcomes between right-sizing retrains (200)\n"
          "  --rightsize-retrain-interval S a pending outcome waits at most S seconds (600)\n"
          "  --rightsize-min-outcomes N     outcomes before right-sizing trees train (100)\n"
          " node role:\n"
          "  --node-name NAME            (default $NODE_NAME, then the host name)\n"
          "  --placement-url BASE[,BASE...]  push every report to each BASE/v1/reports\n"
          "  --placement-resolve-all     push to every address of each BASE's host name\n"
          "                              (a headless Service: every replica)\n"
          "  --placement-resolve-interval S  re-resolve the names every S seconds (30)\n"
          "  --placement-token-file F    bearer token for the placement role\n"
          "  --placement-cert-file F --placement-key-file F  client certificate (https)\n"
          "  --placement-ca-file F       CA of the placement role's certificate\n"
          "  --pool VOLUME=POOL          the pool a volume belongs to (repeatable)\n"
          "  --cgroup-root DIR           cgroup v2 mount with the pods (SYS_ROOT/fs/cgroup)\n"
          "  --observe-pods auto|on|off  record and report pod outcomes (auto: with the\n"
          "                              Kubernetes API: --kube-api or in a pod)\n"
          " placement role:\n"
          "  --stale-after SECONDS       report age that makes a node stale (3 x its interval)\n"
          "  --forget-after SECONDS      a silent node leaves the view (default 3600)\n"
          "  --placement-mode MODE       enforce (default) or shadow: score, answer neutral\n"
          "  --neutral-score N           score of nodes without a fresh report (default 5)\n"
          "  --score-scale PERCENT       the predicted slowdown that scores 5 (default 25)\n"
          "  --max-physical-use SHARE    filter pools above this physical use (default 0.95)\n"
          "  --ledger-ttl SECONDS        a placed pod counts this long before it binds (30)\n"
          "  --ledger-bound-ttl SECONDS  a bound pod counts until its I/O shows, at most (600)\n"
          "  --kube-api URL [--kube-token-file F] [--kube-ca-file F]  the Kubernetes API\n"
          "                              (default: in-cluster when in a pod, else none)\n"
          "  --gpu-resource NAME         a GPU resource name (repeatable; nvidia.com/gpu)\n"
          "  --leader-elect              elect one leader among replicas through a Lease; the\n"
          "                              others answer the extender neutral (default off)\n"
          "  --lease-name NAME           the Lease (default dedupd-placement)\n"
          "  --lease-namespace NS        (default $POD_NAMESPACE, the service account's, else\n"
          "                              default)\n"
          "  --pod-name NAME             this replica's pod: the Lease holder identity and the\n"
          "                              pod labelled dedupd.io/leader (default $POD_NAME, else\n"
          "                              the node name)\n"
          "  --lease-duration SECONDS    a leader's term without renewal (default 15)\n"
          "  --renew-deadline SECONDS    a leader steps down when not renewed within (10)\n"
          "  --retry-period SECONDS      between tries to acquire or renew (default 2)\n"
          " right-sizing admission webhook (placement role):\n"
          "  --rightsize-mode MODE       enforce (default) or recommend: annotate only\n"
          "  --rightsize-no-cpu-limits   set no CPU limits (and remove existing ones)\n"
          "  --rightsize-max-step X      a request or limit moves at most x X or / X per\n"
          "                              admission (default 2)\n"
          "  --rightsize-memory-margin M memory limit >= peak x (1 + M) (default 0.2)\n"
          "  --rightsize-exclude-namespace NS  never right-size pods of NS (repeatable;\n"
          "                              kube-system and $POD_NAMESPACE always)\n"
          "  --publish-capacity          keep CSIStorageCapacity objects per (node x class of\n"
          "                              ours) through the API server (leader only; off)\n"
          "  --publish-capacity-namespace NS  where they live (default: the Lease's namespace)\n"
          "  --publish-capacity-interval SECONDS  between passes and between rewrites of one\n"
          "                              object (default 60)\n"
          "  --publish-capacity-threshold SHARE  rewrite when a value moves more than this\n"
          "                              share of it (default 0.05) ...\n"
          "  --publish-capacity-min-change BYTES  ... and at least this much (default 1 GiB)\n"
          "  --publish-capacity-qps N    writes a second at most (default 10)\n"
          "  --publish-capacity-burst N  writes at once at most (default 20)\n"
          "  --publish-capacity-owner KIND/NAME  owner of every object (Deployment,\n"
          "                              ReplicaSet, StatefulSet or Pod; default none)\n"
          "  --publish-capacity-node-key KEY  nodeTopology's label key (default\n"
          "                              topology.dedupd.io/node)\n"
          "  --pod-events                post an Event on each pod prioritize scores, with\n"
          "                              the explanation (leader only; off)\n"
          "  --pod-events-window SECONDS one event per pod per window (default 60)\n"
          "  --pod-events-qps N          events a second at most (default 5)\n"
          "  --pod-events-burst N        events at once at most (default 20)\n",
          out);
}

int dd_config_load(int argc, char **argv, struct dd_config *ret, bool *help, char *errbuf,
                   size_t errlen)
{
    enum {
        O_STR = 256,
        O_NUM = 512,
        O_ROLE = 768,
        O_CONFIG,
        O_ROOT,
        O_POOL,
        O_GPU,
        O_ELECT,
        O_RS_NO_CPU_LIMITS,
        O_RS_EXCLUDE,
        O_PUBLISH,
        O_POD_EVENTS,
        O_RESOLVE_ALL
    };
    struct option longopts[DD_ARRAY_SIZE(str_opts) + DD_ARRAY_SIZE(num_opts) + 16];
    struct dd_config cfg;
    const char *config_file = NULL;
    char why[256];
    size_t n = 0;
    int c;

    for (size_t i = 0; i < DD_ARRAY_SIZE(str_opts); i++)
        longopts[n++] = (struct option){str_opts[i].flag, required_argument, NULL, O_STR + (int)i};
    for (size_t i = 0; i < DD_ARRAY_SIZE(num_opts); i++)
        longopts[n++] = (struct option){num_opts[i].flag, required_argument, NULL, O_NUM + (int)i};
    longopts[n++] = (struct option){"role", required_argument, NULL, O_ROLE};
    longopts[n++] = (struct option){"config", required_argument, NULL, O_CONFIG};
    longopts[n++] = (struct option){"estimate-root", required_argument, NULL, O_ROOT};
    longopts[n++] = (struct option){"pool", required_argument, NULL, O_POOL};
    longopts[n++] = (struct option){"gpu-resource", required_argument, NULL, O_GPU};
    longopts[n++] = (struct option){"leader-elect", no_argument, NULL, O_ELECT};
    longopts[n++] =
        (struct option){"rightsize-no-cpu-limits", no_argument, NULL, O_RS_NO_CPU_LIMITS};
    longopts[n++] =
        (struct option){"rightsize-exclude-namespace", required_argument, NULL, O_RS_EXCLUDE};
    longopts[n++] = (struct option){"publish-capacity", no_argument, NULL, O_PUBLISH};
    longopts[n++] = (struct option){"pod-events", no_argument, NULL, O_POD_EVENTS};
    longopts[n++] = (struct option){"placement-resolve-all", no_argument, NULL, O_RESOLVE_ALL};
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n++] = (struct option){NULL, 0, NULL, 0};

    /* first pass: the config file, so flags can override it */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_file = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_file = argv[i] + 9;
    }
    dd_config_defaults(&cfg);
    if (config_file) {
        if (dd_config_file(&cfg, config_file, errbuf, errlen) < 0)
            return 1;
        snprintf(cfg.config_file, sizeof(cfg.config_file), "%s", config_file);
    }
    /* repeatable flags add to the file's lists (a --pool for a volume the
     * file maps replaces that mapping) */
    optind = 0; /* GNU getopt: start over (SIGHUP parses again) */
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = 0;
        why[0] = '\0';
        if (c >= O_STR && c < O_STR + (int)DD_ARRAY_SIZE(str_opts)) {
            const struct str_opt *o = &str_opts[c - O_STR];
            r = set_string((char *)&cfg + o->offset, o->len, optarg, o->flag, why, sizeof(why));
        } else if (c >= O_NUM && c < O_NUM + (int)DD_ARRAY_SIZE(num_opts)) {
            const struct num_opt *o = &num_opts[c - O_NUM];
            double x;
            if (dd_parse_double(optarg, &x) < 0 || !(x >= o->lo && x <= o->hi) ||
                (o->integer && x != floor(x))) {
                snprintf(why, sizeof(why), "'%.64s': expected %s %g..%g (%s)", optarg,
                         o->integer ? "an integer" : "a number", o->lo, o->hi, o->unit);
                fprintf(stderr, "dedupd: --%s %s\n", o->flag, why);
                return 2;
            }
            set_num(&cfg, (enum num_field)(c - O_NUM), x);
        } else {
            switch (c) {
            case O_ROLE:
                if (role_parse(optarg, &cfg.role) < 0) {
                    fprintf(stderr, "dedupd: --role '%s': expected node, placement or all\n",
                            optarg);
                    return 2;
                }
                break;
            case O_CONFIG:
                break;
            case O_ROOT:
                if (cfg.n_estimate_roots >= DD_CONFIG_MAX_ESTIMATE_ROOTS) {
                    fprintf(stderr, "dedupd: at most %d --estimate-root\n",
                            DD_CONFIG_MAX_ESTIMATE_ROOTS);
                    return 2;
                }
                r = set_string(cfg.estimate_roots[cfg.n_estimate_roots],
                               sizeof(cfg.estimate_roots[0]), optarg, "--estimate-root", why,
                               sizeof(why));
                if (r == 0)
                    cfg.n_estimate_roots++;
                break;
            case O_POOL:
                r = parse_pool_arg(&cfg, optarg, why, sizeof(why));
                break;
            case O_GPU:
                r = add_gpu_resource(&cfg, optarg, why, sizeof(why));
                break;
            case O_ELECT:
                cfg.leader_elect = true;
                break;
            case O_RS_NO_CPU_LIMITS:
                cfg.rightsize_no_cpu_limits = true;
                break;
            case O_RS_EXCLUDE:
                r = add_rs_exclude(&cfg, optarg, why, sizeof(why));
                break;
            case O_PUBLISH:
                cfg.publish_capacity = true;
                break;
            case O_POD_EVENTS:
                cfg.pod_events = true;
                break;
            case O_RESOLVE_ALL:
                cfg.placement_resolve_all = true;
                break;
            case 'h':
                *help = true;
                return 0;
            default:
                return 2;
            }
        }
        if (r < 0) {
            fprintf(stderr, "dedupd: %s\n", why);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dedupd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    *ret = cfg;
    return 0;
}

/* --placement-url: one URL or a comma-separated list (blanks around the
 * commas ignored, at most 16: dedupd/push.h); each http:// or https://
 * (https only when tls_flag names the TLS file set), without quotes, backslashes or control bytes
 * (it names a metric label). */
static int placement_urls_check(const char *list, const char *tls_flag, char *errbuf, size_t errlen)
{
    size_t n = 0, len;
    const char *p = list, *b;
    while (dd_list_next(&p, &b, &len)) {
        const char *e = b + len;
        if (e > b) {
            bool bad = false;
            for (const char *q = b; q < e; q++)
                bad |= *q == '"' || *q == '\\' || (unsigned char)*q < 0x20 || *q == 0x7f;
            bool https = (size_t)(e - b) >= 8 && strncmp(b, "https://", 8) == 0;
            bool http = (size_t)(e - b) >= 7 && strncmp(b, "http://", 7) == 0;
            if (!bad && http && tls_flag) { /* the message test-cluster-tls expects */
                snprintf(errbuf, errlen, "%s needs an https:// placement url (got '%.*s')",
                         tls_flag, (int)(e - b > 200 ? 200 : e - b), b);
                return DD_E_USAGE;
            }
            if (bad || !(https || http)) {
                snprintf(errbuf, errlen,
                         "placement url '%.*s': expected http://HOST:PORT or https://... "
                         "(several: separated by commas)",
                         (int)(e - b > 200 ? 200 : e - b), b);
                return DD_E_USAGE;
            }
            n++;
        }
    }
    if (n == 0 || n > 16) {
        snprintf(errbuf, errlen, "placement url '%.200s': expected 1 to 16 URLs", list);
        return DD_E_USAGE;
    }
    return 0;
}

int dd_config_check(struct dd_config *c, char *errbuf, size_t errlen)
{
    if (!(c->interval >= 0.01 && c->interval <= 3600)) {
        snprintf(errbuf, errlen, "interval %g: expected 0.01..3600 seconds", c->interval);
        return DD_E_USAGE;
    }
    if (!c->data_dir[0]) {
        snprintf(errbuf, errlen, "data directory: empty");
        return DD_E_USAGE;
    }
    if (!c->node_name[0]) {
        const char *env = getenv("NODE_NAME");
        if (env && env[0] && strlen(env) < sizeof(c->node_name))
            snprintf(c->node_name, sizeof(c->node_name), "%s", env);
        else if (gethostname(c->node_name, sizeof(c->node_name) - 1) < 0 || !c->node_name[0])
            snprintf(c->node_name, sizeof(c->node_name), "localhost");
        else /* as the kubelet names a node after its host: lower case */
            for (char *p = c->node_name; *p; p++) {
                *p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.'))
                    *p = '-';
            }
        /* a host name that is still no node name ("(none)" before init
         * names the host) gives the fallback rather than a refusal */
        if (!(env && env[0]) && !dd_report_node_name_ok(c->node_name))
            snprintf(c->node_name, sizeof(c->node_name), "localhost");
    }
    /* a node name goes into store keys and URLs: Kubernetes' own rule, as
     * the placement role checks it in every report */
    if (!dd_report_node_name_ok(c->node_name)) {
        snprintf(errbuf, errlen,
                 "node name '%.64s': expected a Kubernetes node name (a-z, 0-9, '-', '.')",
                 c->node_name);
        return DD_E_USAGE;
    }
    if (c->placement_url[0] && placement_urls_check(c->placement_url, NULL, errbuf, errlen) < 0)
        return DD_E_USAGE;
    if (c->placement_resolve_all && !c->placement_url[0]) {
        snprintf(errbuf, errlen, "--placement-resolve-all needs --placement-url");
        return DD_E_USAGE;
    }
    if (c->placement_url[0] && c->role == DD_ROLE_PLACEMENT) {
        snprintf(errbuf, errlen, "--placement-url is for roles node and all (a node pushes)");
        return DD_E_USAGE;
    }
    if (strcmp(c->observe_pods, "auto") != 0 && strcmp(c->observe_pods, "on") != 0 &&
        strcmp(c->observe_pods, "off") != 0) {
        snprintf(errbuf, errlen, "observe-pods '%.8s': expected auto, on or off", c->observe_pods);
        return DD_E_USAGE;
    }
    if (strcmp(c->placement_mode, "enforce") != 0 && strcmp(c->placement_mode, "shadow") != 0) {
        snprintf(errbuf, errlen, "placement mode '%.16s': expected enforce or shadow",
                 c->placement_mode);
        return DD_E_USAGE;
    }
    if (strcmp(c->rightsize_mode, "enforce") != 0 && strcmp(c->rightsize_mode, "recommend") != 0) {
        snprintf(errbuf, errlen, "rightsize mode '%.16s': expected enforce or recommend",
                 c->rightsize_mode);
        return DD_E_USAGE;
    }
    if (c->kube_api[0] && strncmp(c->kube_api, "http://", 7) != 0 &&
        strncmp(c->kube_api, "https://", 8) != 0) {
        snprintf(errbuf, errlen, "kube api '%.200s': expected http://HOST:PORT or https://...",
                 c->kube_api);
        return DD_E_USAGE;
    }
    if ((c->placement_cert_file[0] != '\0') != (c->placement_key_file[0] != '\0')) {
        snprintf(errbuf, errlen, "%s",
                 c->placement_cert_file[0]
                     ? "--placement-cert-file needs --placement-key-file (the certificate's key)"
                     : "--placement-key-file needs --placement-cert-file (the key's certificate)");
        return DD_E_USAGE;
    }
    if ((c->placement_cert_file[0] || c->placement_ca_file[0]) && !c->placement_url[0]) {
        snprintf(errbuf, errlen,
                 "--placement-%s-file is for pushing reports: set --placement-url too",
                 c->placement_cert_file[0] ? "cert" : "ca");
        return DD_E_USAGE;
    }
    /* over plain HTTP a certificate would never be sent, nor the server's
     * checked: a silent downgrade, refused */
    if ((c->placement_cert_file[0] || c->placement_ca_file[0]) &&
        placement_urls_check(c->placement_url,
                             c->placement_cert_file[0] ? "--placement-cert-file"
                                                       : "--placement-ca-file",
                             errbuf, errlen) < 0)
        return DD_E_USAGE;
    if (c->leader_elect && !dd_role_has_placement(c->role)) {
        snprintf(errbuf, errlen, "--leader-elect is for the placement role");
        return DD_E_USAGE;
    }
    if (c->leader_elect &&
        !(c->lease_duration > c->renew_deadline && c->renew_deadline > c->retry_period)) {
        snprintf(errbuf, errlen,
                 "leader election: expected --lease-duration (%g) > --renew-deadline (%g) > "
                 "--retry-period (%g)",
                 c->lease_duration, c->renew_deadline, c->retry_period);
        return DD_E_USAGE;
    }
    if (c->publish_capacity && !dd_role_has_placement(c->role)) {
        snprintf(errbuf, errlen, "--publish-capacity is for the placement role");
        return DD_E_USAGE;
    }
    if (c->pod_events && !dd_role_has_placement(c->role)) {
        snprintf(errbuf, errlen, "--pod-events is for the placement role");
        return DD_E_USAGE;
    }
    if (c->publish_capacity && !c->publish_capacity_node_key[0]) {
        snprintf(errbuf, errlen, "--publish-capacity-node-key is empty");
        return DD_E_USAGE;
    }
    if (c->leader_elect && !c->lease_name[0]) {
        snprintf(errbuf, errlen, "leader election: --lease-name is empty");
        return DD_E_USAGE;
    }
    if (c->stale_after > 0 && c->forget_after < c->stale_after) {
        snprintf(errbuf, errlen, "forget-after %g s is shorter than stale-after %g s",
                 c->forget_after, c->stale_after);
        return DD_E_USAGE;
    }
    return 0;
}

char *dd_config_json(const struct dd_config *c)
{
    json_t *roots = json_array(), *pools = json_object(), *o;
    char *s;
    for (size_t i = 0; i < c->n_estimate_roots; i++)
        json_array_append_new(roots, json_string(c->estimate_roots[i]));
    for (size_t i = 0; i < c->n_pools; i++)
        json_object_set_new(pools, c->pools[i].volume, json_string(c->pools[i].pool));
    o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:b, s:b, s:o, s:i, s:s, s:i, s:i, s:s, "
        "s:i, s:s, s:s, s:b, s:s, s:s, s:s, s:o, s:f, s:f}",
        "role", dd_role_name(c->role), "listen", c->listen, "data_dir", c->data_dir, "source",
        c->source, "proc_root", c->proc_root, "sys_root", c->sys_root, "interval", c->interval,
        "token", c->token_file[0] != '\0', "tls", c->tls_cert[0] != '\0', "estimate_roots", roots,
        "retention_days", (int)c->retention_days, "log_level", c->log_level, "min_train_samples",
        (int)c->min_train_samples, "retrain_every", (int)c->retrain_every, "prior_file",
        c->prior_file, "http_threads", (int)c->http_threads, "node_name", c->node_name,
        "placement_url", c->placement_url, "placement_token", c->placement_token_file[0] != '\0',
        "placement_cert_file", c->placement_cert_file, "placement_key_file", c->placement_key_file,
        "placement_ca_file", c->placement_ca_file, "pools", pools, "stale_after", c->stale_after,
        "forget_after", c->forget_after);
    if (o) {
        json_object_set_new(o, "cgroup_root", json_string(c->cgroup_root));
        json_object_set_new(o, "observe_pods", json_string(c->observe_pods));
    }
    if (o) {
        json_t *profiles = json_array();
        for (size_t i = 0; i < c->n_profiles; i++)
            json_array_append_new(profiles, json_string(c->profiles[i].name));
        json_object_set_new(o, "placement_mode", json_string(c->placement_mode));
        json_object_set_new(o, "neutral_score", json_integer(c->neutral_score));
        json_object_set_new(o, "score_scale", json_real(c->score_scale_percent));
        json_object_set_new(o, "max_physical_use", json_real(c->max_physical_use));
        json_object_set_new(o, "ledger_ttl", json_real(c->ledger_ttl));
        json_object_set_new(o, "ledger_bound_ttl", json_real(c->ledger_bound_ttl));
        json_object_set_new(o, "profiles", profiles);
    }
    if (o) { /* the Kubernetes options (no secrets: the token file's name only) */
        json_t *gpus = json_array();
        for (size_t i = 0; i < c->n_gpu_resources; i++)
            json_array_append_new(gpus, json_string(c->gpu_resources[i]));
        json_object_set_new(o, "kube_api", json_string(c->kube_api));
        json_object_set_new(o, "kube_token", json_boolean(c->kube_token_file[0] != '\0'));
        json_object_set_new(o, "gpu_resources", gpus);
        json_object_set_new(o, "leader_elect", json_boolean(c->leader_elect));
        json_object_set_new(o, "lease_name", json_string(c->lease_name));
        json_object_set_new(o, "lease_namespace", json_string(c->lease_namespace));
        json_object_set_new(o, "pod_name", json_string(c->pod_name));
        json_object_set_new(o, "lease_duration", json_real(c->lease_duration));
        json_object_set_new(o, "renew_deadline", json_real(c->renew_deadline));
        json_object_set_new(o, "retry_period", json_real(c->retry_period));
        json_object_set_new(o, "publish_capacity", json_boolean(c->publish_capacity));
        json_object_set_new(o, "publish_capacity_namespace",
                            json_string(c->publish_capacity_namespace));
        json_object_set_new(o, "publish_capacity_owner", json_string(c->publish_capacity_owner));
        json_object_set_new(o, "publish_capacity_node_key",
                            json_string(c->publish_capacity_node_key));
        json_object_set_new(o, "publish_capacity_interval",
                            json_real(c->publish_capacity_interval));
        json_object_set_new(o, "publish_capacity_threshold",
                            json_real(c->publish_capacity_threshold));
        json_object_set_new(o, "publish_capacity_min_change",
                            json_real(c->publish_capacity_min_change));
        json_object_set_new(o, "publish_capacity_qps", json_real(c->publish_capacity_qps));
        json_object_set_new(o, "publish_capacity_burst", json_real(c->publish_capacity_burst));
    }
    if (o) { /* the right-sizing webhook */
        json_t *ex = json_array();
        for (size_t i = 0; i < c->n_rightsize_exclude; i++)
            json_array_append_new(ex, json_string(c->rightsize_exclude[i]));
        json_object_set_new(o, "rightsize_mode", json_string(c->rightsize_mode));
        json_object_set_new(o, "rightsize_no_cpu_limits", json_boolean(c->rightsize_no_cpu_limits));
        json_object_set_new(o, "rightsize_max_step", json_real(c->rightsize_max_step));
        json_object_set_new(o, "rightsize_memory_margin", json_real(c->rightsize_memory_margin));
        json_object_set_new(o, "rightsize_exclude_namespaces", ex);
    }
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

const char *dd_config_pool(const struct dd_config *c, const char *volume)
{
    for (size_t i = 0; i < c->n_pools; i++) {
        if (strcmp(c->pools[i].volume, volume) == 0)
            return c->pools[i].pool;
    }
    return volume;
}
