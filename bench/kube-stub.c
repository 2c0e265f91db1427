/*
 * bench/csi.sh's Kubernetes API: the test API server (tests/kubeapi)
 * loaded with NODES Node objects "node-%05u" (labels: kubernetes.io/hostname,
 * the reference CSI driver's topology key topology.vdo.csi.example.io/node,
 * topology.kubernetes.io/zone "zone-<k % 10>"), StorageClass vdo-dedup
 * (dedupd.io/pool: pool-0, WaitForFirstConsumer, the reference
 * parameters), PVC ml/ckpt-trainer-0 and pod ml/trainer-0 (2 GPUs) using
 * it. Prints the URL on stdout, then serves until stdin closes or a signal.
 * Usage: dedupd-kube-stub NODES
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "kubeapi.h"

int main(int argc, char **argv)
{
    unsigned nodes = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 5000;
    struct tt_kubeapi *api;
    char name[32], zone[32];
    if (tt_kubeapi_start(&api) < 0) {
        fprintf(stderr, "kube-stub: cannot start\n");
        return 1;
    }
    for (unsigned k = 0; k < nodes; k++) {
        snprintf(name, sizeof(name), "node-%05u", k);
        snprintf(zone, sizeof(zone), "zone-%u", k % 10);
        json_t *n = json_pack("{s:{s:s, s:{s:s, s:s, s:s, s:s}}, s:{s:{s:s, s:s}}}", "metadata",
                              "name", name, "labels", "kubernetes.io/hostname", name,
                              "topology.vdo.csi.example.io/node", name,
                              "topology.kubernetes.io/zone", zone, "nvidia.com/gpu.present", "true",
                              "status", "allocatable", "nvidia.com/gpu", "8", "cpu", "64");
        tt_kubeapi_load(api, DD_KUBE_NODE, n);
        json_decref(n);
    }
    json_t *sc =
        json_pack("{s:{s:s, s:{s:s}}, s:s, s:s, s:{s:s, s:s}}", "metadata", "name", "vdo-dedup",
                  "annotations", "dedupd.io/pool", "pool-0", "provisioner", "vdo.csi.example.io",
                  "volumeBindingMode", "WaitForFirstConsumer", "parameters",
                  "csi.storage.k8s.io/fstype", "xfs", "vdo.csi.example.io/pool", "default");
    json_t *pvc = json_pack("{s:{s:s, s:s}, s:{s:s, s:[s], s:{s:{s:s}}}, s:{s:s}}", "metadata",
                            "name", "ckpt-trainer-0", "namespace", "ml", "spec", "storageClassName",
                            "vdo-dedup", "accessModes", "ReadWriteOnce", "resources", "requests",
                            "storage", "500Gi", "status", "phase", "Pending");
    json_t *pod = json_pack(
        "{s:{s:s, s:s, s:s}, s:{s:[{s:s, s:{s:s}}], s:[{s:s, s:{s:{s:s}}}]}, s:{s:s}}", "metadata",
        "name", "trainer-0", "namespace", "ml", "uid", "uid-trainer-0", "spec", "volumes", "name",
        "ckpt", "persistentVolumeClaim", "claimName", "ckpt-trainer-0", "containers", "name",
        "trainer", "resources", "requests", "nvidia.com/gpu", "2", "status", "phase", "Pending");
    tt_kubeapi_load(api, DD_KUBE_SC, sc);
    tt_kubeapi_load(api, DD_KUBE_PVC, pvc);
    tt_kubeapi_load(api, DD_KUBE_POD, pod);
    json_decref(sc);
    json_decref(pvc);
    json_decref(pod);
    printf("%s\n", tt_kubeapi_url(api));
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof(buf)) > 0)
        ;
    tt_kubeapi_stop(api);
    return 0;
}
