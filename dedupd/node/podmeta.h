/*
 * What the node role knows of a pod from the Kubernetes API (its own
 * node's pods, from a watch with fieldSelector spec.nodeName=NODE), and
 * the outcome it reports when the pod's cgroup is gone: the fixed body of
 * POST /v1/observations (issue 13), built from the cgroup figures
 * (node.h's pod tracker) and this metadata.
 *
 * Pure: jansson values in, structs and jansson values out; no I/O, no
 * clock. A decoder of outside bytes (fuzzed by tests/fuzz/fuzz-podcg.c).
 *
 * A Pod object, as much as is read (real shape, compact):
 *   {"metadata":{"name":"web-5d8f7c9b4-x2x7k","namespace":"ml","uid":"6f1c...",
 *    "labels":{"pod-template-hash":"5d8f7c9b4"},
 *    "annotations":{"dedupd.io/framework":"pytorch"},
 *    "ownerReferences":[{"kind":"ReplicaSet","name":"web-5d8f7c9b4","controller":true}]},
 *    "spec":{"nodeName":"gpu-a","containers":[{"name":"main","resources":
 *     {"requests":{"cpu":"2","memory":"4Gi"},"limits":{"memory":"8Gi"}}}]},
 *    "status":{"phase":"Failed","startTime":"2026-01-05T10:00:00Z",
 *     "containerStatuses":[{"name":"main","state":{"terminated":{"exitCode":137,
 *      "reason":"OOMKilled","finishedAt":"2026-01-05T10:20:00Z"}}}]}}
 *
 * Rules (README, "Pod outcomes"):
 *  - owner: the controller ownerReference; a ReplicaSet "NAME-HASH" whose
 *    HASH is the pod's pod-template-hash label (or, without the label, a
 *    last segment of 6..10 characters of Kubernetes' name-hash alphabet
 *    bcdfghjklmnpqrstvwxz2456789) is reported as Deployment NAME, so a
 *    Deployment's pods share one history across rollouts. No controller:
 *    kind and name "".
 *  - requests/limits: the pod's effective figures as Kubernetes quantity
 *    strings, per resource name: regular containers and sidecars (init
 *    containers with restartPolicy Always) summed, other init containers by
 *    max, the larger of the two (the scheduler's rule, without pod
 *    overhead). A limit only when every regular container and sidecar sets
 *    one for that resource (otherwise the pod is not bounded). CPU in
 *    millicores ("2500m") unless whole, others in whole units.
 *  - annotations: all, string values, except
 *    kubectl.kubernetes.io/last-applied-configuration (a copy of the
 *    manifest, often the largest).
 *  - termination: every terminated record of a regular container (state
 *    and lastState, so a restarted container's OOM counts) and the pod's
 *    status.reason; the cause reported is the first of OOMKilled (a
 *    container's reason), Evicted, DeadlineExceeded (the pod's reason), then
 *    a container's own reason (Error, Completed, ContainerCannotRun, ...;
 *    "Completed" or "Error" by exit code when it has none); exit_code the
 *    chosen container record's, unknown for a pod reason with none.
 */
#ifndef DD_NODE_PODMETA_H
#define DD_NODE_PODMETA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/limits.h"
#include "dedupd/node/node.h"

/* Resource names kept per pod (cpu, memory, ephemeral-storage, hugepages,
 * a few device plugins'); past this the pod is refused, naming it. */
#define DD_POD_META_MAX_RESOURCES 32u
/* Containers read per list (spec.containers, initContainers, statuses):
 * a pod of more is not one a kubelet would run. */
#define DD_POD_META_MAX_CONTAINERS 256u

#define DD_POD_EXIT_UNKNOWN INT32_MIN

struct dd_pod_meta {
    char uid[128], ns[DD_NAME_MAX], name[DD_NAME_MAX], node[DD_NAME_MAX];
    /* a mirror pod's kubernetes.io/config.mirror: the static pod's UID,
     * which names its cgroup; "" otherwise */
    char mirror_uid[128];
    char owner_kind[64], owner_name[DD_NAME_MAX];
    json_t *annotations;       /* owned: {"key": "value"} */
    json_t *requests, *limits; /* owned: {"cpu": "2500m", "memory": "4294967296"} */
    char phase[16];            /* status.phase; "" none */
    double started_at;         /* status.startTime, Unix seconds; NaN */
    double finished_at;        /* the latest state.terminated.finishedAt; NaN */
    bool terminal;             /* phase Succeeded or Failed */
    int exit_code;             /* DD_POD_EXIT_UNKNOWN when none */
    char reason[32];           /* "" when none */
};

/* Decodes a Pod. Returns 0, or DD_E_PARSE / DD_E_RANGE / DD_E_TOOBIG with
 * err naming the field ("spec.containers[1].resources.requests[cpu]: bad
 * quantity '2x'"), -ENOMEM; *ret written only on success (release it). */
int dd_pod_meta_from_json(const json_t *pod, struct dd_pod_meta *ret, char *err, size_t errlen);
/* Frees the JSON members and zeroes. Accepts NULL. */
void dd_pod_meta_release(struct dd_pod_meta *m);
/* A deep copy (the JSON members copied). 0 or -ENOMEM. */
int dd_pod_meta_copy(const struct dd_pod_meta *m, struct dd_pod_meta *ret);

/*
 * The owner of a ReplicaSet-controlled pod as its Deployment: "web-5d8f7c9b4"
 * with hash "5d8f7c9b4" (the label; NULL or "" to judge by the name alone)
 * -> "web". Writes the Deployment's name and returns true, or false when
 * the name does not end in such a hash.
 */
bool dd_pod_owner_deployment(const char *rs_name, const char *hash, char *ret, size_t len);

/*
 * The outcome of a pod whose cgroup is gone (POST /v1/observations body):
 * pod_uid (the API's, else the cgroup's), namespace, owner {kind, name},
 * annotations, requests, limits ("" and {} without metadata), node,
 * started_at (status.startTime, else the first read), finished_at (the
 * latest container finishedAt, else the last read), peak_cpu_cores,
 * peak_memory_bytes (the peak working set; for an OOMKilled pod at least
 * memory.peak: the kernel reclaims page cache before it kills, so the
 * charge at the kill was working set), read_mbps and write_mbps (io.stat
 * bytes / 10^6 / run seconds), gpu_memory_bytes (when finite), exit_code
 * and reason (when known). Figures that are unknown are left out. A new
 * object, NULL on ENOMEM.
 */
json_t *dd_pod_outcome_json(const struct dd_pod_usage *u, const struct dd_pod_meta *m,
                            const char *node, double gpu_memory_bytes);

#endif
