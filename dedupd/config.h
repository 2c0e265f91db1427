/*
 * dedupd's configuration: defaults, then the JSON config file, then the
 * flags over it, checked as a whole. main.c builds it at start and again on
 * SIGHUP (the file re-read, the flags still winning); the daemon applies
 * what can change at run time (interval, retention, estimate roots, log
 * level, model thresholds, staleness bounds).
 *
 * Roles: node samples this node and pushes reports; placement keeps the
 * cluster view from reports and serves the model; all is both in one
 * process (its own reports are fed in-process).
 */
#ifndef DD_CONFIG_H
#define DD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/limits.h"
#include "placement/profile.h"

#define DD_CONFIG_MAX_ESTIMATE_ROOTS 16
#define DD_CONFIG_MAX_RS_EXCLUDE     8 /* --rightsize-exclude-namespace */

enum dd_role { DD_ROLE_ALL, DD_ROLE_NODE, DD_ROLE_PLACEMENT };

/* "all", "node", "placement" */
const char *dd_role_name(enum dd_role r);
static inline bool dd_role_has_node(enum dd_role r)
{
    return r != DD_ROLE_PLACEMENT;
}
static inline bool dd_role_has_placement(enum dd_role r)
{
    return r != DD_ROLE_NODE;
}

struct dd_pool_map {
    char volume[DD_NAME_MAX];
    char pool[DD_NAME_MAX];
};

struct dd_config {
    enum dd_role role;
    char listen[128];
    char data_dir[1024];
    char source[1200]; /* dm | sysfs | replay:DIR */
    char proc_root[1024];
    char sys_root[1024];
    double interval; /* seconds, fractions allowed */
    char config_file[1024];
    char token_file[1024];
    char tls_cert[1024], tls_key[1024], tls_client_ca[1024];
    char estimate_roots[DD_CONFIG_MAX_ESTIMATE_ROOTS][1024];
    size_t n_estimate_roots;
    unsigned retention_days;
    char log_level[16];
    unsigned http_threads; /* HTTP worker threads (default 4) */
    /* the cost model (roles all and placement) */
    unsigned min_train_samples; /* rows before XGBoost trains */
    unsigned retrain_every;     /* new volume samples between retrains */
    char prior_file[1024];      /* JSON prior coefficients; "" = calibrated defaults */
    /* right-sizing (roles all and placement; dedupd/rightsize.h) */
    unsigned rightsize_retrain_every;  /* new outcomes between retrains (200) */
    double rightsize_retrain_interval; /* seconds a pending outcome waits at most (600) */
    unsigned rightsize_min_outcomes;   /* outcomes before trees are trained (100) */
    /* node side: identity, pools, where reports go */
    char node_name[DD_NAME_MAX];     /* default: $NODE_NAME, then the host name */
    char placement_url[1024];        /* base URL; "" = no pushing */
    char placement_token_file[1024]; /* bearer token for POST /v1/reports */
    /* mutual TLS to the placement role: the node's client certificate and
     * key (both or neither; https only), and the CA that signed the
     * placement role's server certificate ("" = the system store) */
    char placement_cert_file[1024], placement_key_file[1024], placement_ca_file[1024];
    struct dd_pool_map pools[DD_MAX_VOLUMES_PER_NODE];
    size_t n_pools;
    /* placement side: a node whose newest report is older than stale_after
     * seconds is stale (0: 3 x the interval its report states); one silent
     * for forget_after seconds leaves the view */
    double stale_after, forget_after;
    /* the extender (roles all and placement) */
    char placement_mode[16];    /* "enforce" (default) or "shadow": score, answer neutral */
    unsigned neutral_score;     /* 0..10, nodes without a fresh report and pods not ours */
    double score_scale_percent; /* the slowdown that scores 5 (default 25) */
    double max_physical_use;    /* filter ceiling on a pool's physical use (default 0.95) */
    double ledger_ttl;          /* seconds a provisional ledger entry waits for its binding */
    double ledger_bound_ttl;    /* seconds a bound entry waits for the node's reports */
    /* pod profiles (config file "profiles"; "default" replaces the default) */
    struct dd_profile_def profiles[DD_MAX_PROFILES];
    size_t n_profiles;
    struct dd_profile_def default_profile;
    bool has_default_profile;
    /* placement side: the Kubernetes API (dedupd/kubewatch.h); "" and no
     * in-cluster environment: none, the extender reads pod annotations */
    char kube_api[1024], kube_token_file[1024], kube_ca_file[1024];
    char gpu_resources[DD_KUBE_MAX_GPU_RESOURCES][DD_NAME_MAX]; /* none: nvidia.com/gpu */
    size_t n_gpu_resources;
    /* placement side: leader election through a Lease (dedupd/leader.h);
     * off: this replica is always the leader */
    bool leader_elect;
    char lease_name[DD_NAME_MAX];      /* default dedupd-placement */
    char lease_namespace[DD_NAME_MAX]; /* "": the pod's namespace, else default */
    char pod_name[DD_NAME_MAX];        /* "": $POD_NAME; the identity and the pod labelled */
    double lease_duration, renew_deadline, retry_period; /* seconds: 15, 10, 2 */
    /* the right-sizing admission webhook (roles all, placement;
     * placement/admission.h) */
    char rightsize_mode[16];        /* "enforce" (default) or "recommend": annotate only */
    bool rightsize_no_cpu_limits;   /* set no CPU limits (and remove existing ones) */
    double rightsize_max_step;      /* a value moves at most x this or / this (default 2) */
    double rightsize_memory_margin; /* memory limit over the predicted/observed peak (0.2) */
    char rightsize_exclude[DD_CONFIG_MAX_RS_EXCLUDE][DD_NAME_MAX]; /* besides kube-system */
    size_t n_rightsize_exclude;
    /* node side: pod outcomes (dedupd/observe.h). cgroup_root: the cgroup v2
     * mount ("": <sys_root>/fs/cgroup); observe_pods: "auto" (on when the
     * node role has the Kubernetes API), "on", "off" */
    char cgroup_root[1024];
    char observe_pods[8];
    /* placement side: CSIStorageCapacity publishing (dedupd/capacitypub.h),
     * off by default */
    bool publish_capacity;
    char publish_capacity_namespace[DD_NAME_MAX];        /* "": as the Lease's */
    char publish_capacity_owner[2 * DD_NAME_MAX];        /* "KIND/NAME" or "" */
    char publish_capacity_node_key[DD_NAME_MAX];         /* default topology.dedupd.io/node */
    double publish_capacity_interval;                    /* seconds, default 60 */
    double publish_capacity_threshold;                   /* relative, default 0.05 */
    double publish_capacity_min_change;                  /* bytes, default 1 GiB */
    double publish_capacity_qps, publish_capacity_burst; /* writes: 10 a second, 20 */
    /* placement side: Events on the pods it scores (dedupd/podevents.h), off */
    bool pod_events;
    double pod_events_qps, pod_events_burst; /* writes: 5 a second, 20 */
    double pod_events_window;                /* seconds between events of one pod (60) */
    /* node side: push to every address of each --placement-url host name
     * (dedupd/push.h), re-resolved every interval seconds (30) */
    bool placement_resolve_all;
    double placement_resolve_interval;
};

void dd_config_defaults(struct dd_config *c);

/* Applies a JSON config file (keys as the flags, snake_case; "pools" is
 * an object {"VOLUME": "POOL"}). errbuf names the file, line and key. */
int dd_config_file(struct dd_config *c, const char *path, char *errbuf, size_t errlen);
/* The same for a parsed document (pure: no I/O); name is the file's, for
 * errbuf. On failure c may hold some of the document's keys. */
struct json_t;
int dd_config_from_json(struct dd_config *c, const char *name, struct json_t *doc, char *errbuf,
                        size_t errlen);

/*
 * The configuration as it stands: defaults, the file named by --config,
 * then the flags. Returns 0 (*help set for --help), 1 for a bad config file
 * (errbuf says why) or 2 for bad usage (already printed on stderr).
 */
int dd_config_load(int argc, char **argv, struct dd_config *ret, bool *help, char *errbuf,
                   size_t errlen);
void dd_config_usage(FILE *out);

/* Checks values; errbuf says which one is wrong. Fills the node name from
 * $NODE_NAME or the host name when unset. */
int dd_config_check(struct dd_config *c, char *errbuf, size_t errlen);

/* The effective configuration as one JSON line (no secrets). Caller frees. */
char *dd_config_json(const struct dd_config *c);

/* The pool of a volume: its --pool mapping, else the volume's own name. */
const char *dd_config_pool(const struct dd_config *c, const char *volume);

#endif
