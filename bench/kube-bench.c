/*
 * bench/kube-cache.sh's program: the Kubernetes cache at cluster scale.
 * A child process runs the test API server (tests/kubeapi) loaded with
 * NODES nodes, PODS pods (shaped like the reference pod: a PVC, a
 * projected token volume, GPU requests, labels) and PVCS PVCs and PVs; the
 * parent runs placement/kube + dedupd/kubewatch against it, as the daemon
 * does, and prints:
 *   - the initial list: seconds until every kind is synced;
 *   - watch events applied per second (the child puts EVENTS pod changes),
 *     and the cache alone (the same event lines decoded and applied in one
 *     thread, no network);
 *   - the cache's memory: RSS growth of the parent over the sync, per pod
 *     (goal <= 1 KiB per cached pod; libcurl's buffers and page-size JSON
 *     are included, so it is an upper bound);
 * beside the baseline: the bytes of the list JSON the server sends.
 * Usage: dedupd-kube-bench [NODES PODS PVCS EVENTS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/kubewatch.h"
#include "kubeapi.h"
#include "placement/kube.h"

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            break;
    fclose(f);
    return v;
}

static json_t *make_pod(unsigned i, unsigned nodes, unsigned pvcs)
{
    char name[64], uid[64], node[64], claim[64];
    snprintf(name, sizeof(name), "trainer-%u", i);
    snprintf(uid, sizeof(uid), "6f1c2a9e-3b7d-4c52-9e41-%012u", i);
    snprintf(node, sizeof(node), "gpu-node-%u", i % nodes);
    snprintf(claim, sizeof(claim), "ckpt-%u", i % pvcs);
    return json_pack(
        "{s:{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s}}, "
        "s:{s:s, s:[{s:s, s:{s:s}}, {s:s, s:{s:[{s:{s:i, s:s}}], s:i}}], "
        "s:[{s:s, s:s, s:[s,s], s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}, "
        "s:[{s:s, s:s}, {s:s, s:s}]}], s:s, s:s, s:s, s:i, s:s}, "
        "s:{s:s, s:s, s:s, s:s}}",
        "metadata", "name", name, "namespace", "ml", "uid", uid, "creationTimestamp",
        "2025-05-14T09:21:07Z", "labels", "app.kubernetes.io/name", "trainer",
        "statefulset.kubernetes.io/pod-name", name, "annotations", "dedupd.io/read-mbps", "800",
        "spec", "nodeName", node, "volumes", "name", "ckpt", "persistentVolumeClaim", "claimName",
        claim, "name", "kube-api-access", "projected", "sources", "serviceAccountToken",
        "expirationSeconds", 3607, "path", "token", "defaultMode", 420, "containers", "name",
        "trainer", "image", "nvcr.io/nvidia/pytorch:24.05-py3", "command", "python",
        "/app/train.py", "resources", "limits", "cpu", "8", "memory", "64Gi", "nvidia.com/gpu", "1",
        "requests", "cpu", "8", "memory", "64Gi", "nvidia.com/gpu", "1", "volumeMounts", "name",
        "ckpt", "mountPath", "/ckpt", "name", "kube-api-access", "mountPath",
        "/var/run/secrets/kubernetes.io/serviceaccount", "restartPolicy", "Always", "dnsPolicy",
        "ClusterFirst", "schedulerName", "default-scheduler", "priority", 0, "serviceAccountName",
        "default", "status", "phase", "Running", "qosClass", "Guaranteed", "hostIP", "10.20.1.11",
        "podIP", "10.244.1.17");
}

static json_t *make_node(unsigned i)
{
    char name[64];
    snprintf(name, sizeof(name), "gpu-node-%u", i);
    return json_pack("{s:{s:s, s:{s:s, s:s, s:s}}, s:{s:[{s:s, s:s, s:s}]}, "
                     "s:{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s}}}",
                     "metadata", "name", name, "labels", "kubernetes.io/hostname", name,
                     "nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3",
                     "topology.vdo.csi.example.io/node", name, "spec", "taints", "effect",
                     "NoSchedule", "key", "nvidia.com/gpu", "value", "present", "status",
                     "allocatable", "cpu", "95500m", "memory", "1054402556Ki", "nvidia.com/gpu",
                     "8", "pods", "110", "capacity", "cpu", "96", "memory", "1056499708Ki",
                     "nvidia.com/gpu", "8", "pods", "110");
}

static json_t *make_pvc(unsigned i, unsigned nodes)
{
    char name[64], vol[64], node[64];
    snprintf(name, sizeof(name), "ckpt-%u", i);
    snprintf(vol, sizeof(vol), "pvc-e4c1b0a9-8d7e-4f6a-%012u", i);
    snprintf(node, sizeof(node), "gpu-node-%u", i % nodes);
    return json_pack("{s:{s:s, s:s, s:{s:s, s:s}}, s:{s:[s], s:{s:{s:s}}, s:s, s:s, s:s}, "
                     "s:{s:s, s:[s], s:{s:s}}}",
                     "metadata", "name", name, "namespace", "ml", "annotations",
                     "volume.kubernetes.io/selected-node", node,
                     "volume.kubernetes.io/storage-provisioner", "vdo.csi.example.io", "spec",
                     "accessModes", "ReadWriteOnce", "resources", "requests", "storage", "500Gi",
                     "storageClassName", "vdo-dedup", "volumeMode", "Filesystem", "volumeName", vol,
                     "status", "phase", "Bound", "accessModes", "ReadWriteOnce", "capacity",
                     "storage", "500Gi");
}

static json_t *make_pv(unsigned i, unsigned nodes)
{
    char name[64], node[64];
    snprintf(name, sizeof(name), "pvc-e4c1b0a9-8d7e-4f6a-%012u", i);
    snprintf(node, sizeof(node), "gpu-node-%u", i % nodes);
    return json_pack("{s:{s:s}, s:{s:[s], s:{s:s}, s:{s:s, s:s}, s:{s:{s:[{s:[{s:s, s:s, "
                     "s:[s]}]}]}}, s:s}, s:{s:s}}",
                     "metadata", "name", name, "spec", "accessModes", "ReadWriteOnce", "capacity",
                     "storage", "500Gi", "csi", "driver", "vdo.csi.example.io", "volumeHandle",
                     name, "nodeAffinity", "required", "nodeSelectorTerms", "matchExpressions",
                     "key", "topology.vdo.csi.example.io/node", "operator", "In", "values", node,
                     "storageClassName", "vdo-dedup", "status", "phase", "Bound");
}

static size_t dumped(const json_t *o)
{
    return json_dumpb(o, NULL, 0, JSON_COMPACT) + 1;
}

/* The child: load, tell the parent the URL and the list bytes, then do
 * what it asks ("events N") until its stdin closes. */
static int serve(unsigned nodes, unsigned pods, unsigned pvcs, int in, int out)
{
    struct tt_kubeapi *api;
    size_t bytes = 0;
    char cmd[64];
    FILE *fin = fdopen(in, "r"), *fout = fdopen(out, "w");

    if (tt_kubeapi_start(&api) < 0)
        return 1;
    json_t *sc =
        json_pack("{s:{s:s, s:{s:s}}, s:s}", "metadata", "name", "vdo-dedup", "annotations",
                  "dedupd.io/pool", "fast", "provisioner", "vdo.csi.example.io");
    bytes += dumped(sc);
    tt_kubeapi_load(api, DD_KUBE_SC, sc);
    json_decref(sc);
    for (unsigned i = 0; i < nodes; i++) {
        json_t *o = make_node(i);
        bytes += dumped(o);
        tt_kubeapi_load(api, DD_KUBE_NODE, o);
        json_decref(o);
    }
    for (unsigned i = 0; i < pvcs; i++) {
        json_t *c = make_pvc(i, nodes), *v = make_pv(i, nodes);
        bytes += dumped(c) + dumped(v);
        tt_kubeapi_load(api, DD_KUBE_PVC, c);
        tt_kubeapi_load(api, DD_KUBE_PV, v);
        json_decref(c);
        json_decref(v);
    }
    for (unsigned i = 0; i < pods; i++) {
        json_t *o = make_pod(i, nodes, pvcs);
        bytes += dumped(o);
        tt_kubeapi_load(api, DD_KUBE_POD, o);
        json_decref(o);
    }
    fprintf(fout, "%s %zu\n", tt_kubeapi_url(api), bytes);
    fflush(fout);
    while (fgets(cmd, sizeof(cmd), fin)) {
        unsigned n;
        if (sscanf(cmd, "events %u", &n) == 1) {
            for (unsigned i = 0; i < n; i++) {
                json_t *o = make_pod(i % pods, nodes, pvcs);
                /* the pod moves to the next node: a real change */
                char node[64];
                snprintf(node, sizeof(node), "gpu-node-%u", (i + 1) % nodes);
                json_object_set_new(json_object_get(o, "spec"), "nodeName", json_string(node));
                tt_kubeapi_put(api, DD_KUBE_POD, o);
                json_decref(o);
            }
            fprintf(fout, "done\n");
            fflush(fout);
        }
    }
    tt_kubeapi_stop(api);
    return 0;
}

static unsigned arg(int argc, char **argv, int i, unsigned d)
{
    uint64_t v;
    if (argc <= i)
        return d;
    if (dd_parse_u64_range(argv[i], 1, 10000000, &v) < 0) {
        fprintf(stderr, "dedupd-kube-bench: '%s': expected a count 1..10000000\n", argv[i]);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    unsigned nodes = arg(argc, argv, 1, 5000), pods = arg(argc, argv, 2, 150000),
             pvcs = arg(argc, argv, 3, 50000), events = arg(argc, argv, 4, 100000);
    int to_child[2], from_child[2];
    char url[128], line[256], err[512];
    size_t bytes = 0;
    pid_t pid;

    if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0)
        return 1;
    pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        _exit(serve(nodes, pods, pvcs, to_child[0], from_child[1]));
    }
    close(to_child[0]);
    close(from_child[1]);
    FILE *fin = fdopen(from_child[0], "r"), *fout = fdopen(to_child[1], "w");
    if (!fgets(line, sizeof(line), fin) || sscanf(line, "%127s %zu", url, &bytes) != 2) {
        fprintf(stderr, "dedupd-kube-bench: the server did not start\n");
        return 1;
    }

    long rss0 = rss_kib();
    struct dd_kube *cache;
    struct dd_kubewatch *w;
    struct dd_kubewatch_config c = {0};
    if (dd_kube_new(&cache, NULL, 0) < 0)
        return 1;
    dd_kubewatch_source_resolve(url, NULL, NULL, NULL, &c.src);
    if (dd_kubewatch_new(&c, cache, &w, err, sizeof(err)) < 0) {
        fprintf(stderr, "dedupd-kube-bench: %s\n", err);
        return 1;
    }
    uint64_t t0 = dd_mono_ms();
    dd_kubewatch_start(w);
    while (!dd_kubewatch_synced(w)) {
        struct timespec t = {0, 5000000};
        nanosleep(&t, NULL);
        if (dd_mono_ms() - t0 > 600000) {
            fprintf(stderr, "dedupd-kube-bench: not synced after 600 s\n");
            return 1;
        }
    }
    uint64_t t1 = dd_mono_ms();
    long rss1 = rss_kib();
    size_t counts[DD_KUBE_KINDS];
    dd_kube_counts(cache, counts);

    struct dd_kubewatch_kind_stats st;
    dd_kubewatch_stats(w, DD_KUBE_POD, &st);
    uint64_t before = st.events, e0 = dd_mono_ms();
    fprintf(fout, "events %u\n", events);
    fflush(fout);
    for (;;) {
        dd_kubewatch_stats(w, DD_KUBE_POD, &st);
        if (st.events - before >= events)
            break;
        struct timespec t = {0, 2000000};
        nanosleep(&t, NULL);
        if (dd_mono_ms() - e0 > 600000) {
            fprintf(stderr, "dedupd-kube-bench: %" PRIu64 " of %u events after 600 s\n",
                    st.events - before, events);
            return 1;
        }
    }
    uint64_t e1 = dd_mono_ms();

    /* the cache alone: the same kind of event lines, decoded and applied
     * in this thread (no network, no server) */
    size_t n_lines = events;
    char **lines = calloc(n_lines, sizeof(*lines));
    for (size_t i = 0; i < n_lines; i++) {
        json_t *o = make_pod((unsigned)(i % pods), nodes, pvcs);
        char node[64];
        snprintf(node, sizeof(node), "gpu-node-%zu", (i + 7) % nodes);
        json_object_set_new(json_object_get(o, "spec"), "nodeName", json_string(node));
        json_object_set_new(o, "kind", json_string("Pod"));
        json_t *ev = json_pack("{s:s, s:o}", "type", "MODIFIED", "object", o);
        lines[i] = json_dumps(ev, JSON_COMPACT);
        json_decref(ev);
    }
    uint64_t a0 = dd_mono_ms();
    for (size_t i = 0; i < n_lines; i++) {
        struct dd_kube_watch_event ev;
        if (dd_kube_watch_event_decode(lines[i], strlen(lines[i]), &ev, err, sizeof(err)) < 0 ||
            dd_kube_apply(cache, DD_KUBE_POD, DD_KUBE_MODIFIED, ev.object, err, sizeof(err)) < 0) {
            fprintf(stderr, "dedupd-kube-bench: %s\n", err);
            return 1;
        }
        dd_kube_watch_event_release(&ev);
    }
    uint64_t a1 = dd_mono_ms();
    for (size_t i = 0; i < n_lines; i++)
        free(lines[i]);
    free(lines);
    double apply_s = (double)(a1 - a0) / 1000.0;
    double list_s = (double)(t1 - t0) / 1000.0, ev_s = (double)(e1 - e0) / 1000.0;
    double per_pod =
        (double)(rss1 - rss0) * 1024.0 / (double)(counts[DD_KUBE_POD] ? counts[DD_KUBE_POD] : 1);

    printf("cache: %zu nodes, %zu pods, %zu PVCs, %zu PVs, %zu classes\n", counts[DD_KUBE_NODE],
           counts[DD_KUBE_POD], counts[DD_KUBE_PVC], counts[DD_KUBE_PV], counts[DD_KUBE_SC]);
    printf("initial list: %.2f s for %.1f MiB of list JSON (baseline: %.1f MiB/s through the "
           "cache)\n",
           list_s, (double)bytes / 1048576.0,
           (double)bytes / 1048576.0 / (list_s > 0 ? list_s : 1));
    printf("watch: %u pod events applied in %.2f s: %.0f events/s (includes the server making "
           "them)\n",
           events, ev_s, (double)events / (ev_s > 0 ? ev_s : 1));
    printf("cache alone: %zu event lines decoded and applied in %.2f s: %.0f events/s\n", n_lines,
           apply_s, (double)n_lines / (apply_s > 0 ? apply_s : 0.001));
    printf("memory: RSS +%.1f MiB over the sync: %.0f bytes per cached pod (goal <= 1024; all "
           "kinds counted against pods), list JSON %.0f bytes per object\n",
           (double)(rss1 - rss0) / 1024.0, per_pod,
           (double)bytes / (double)(counts[DD_KUBE_NODE] + counts[DD_KUBE_POD] +
                                    counts[DD_KUBE_PVC] + counts[DD_KUBE_PV] + 1));
    fflush(stdout);
    dd_kubewatch_free(w);
    dd_kube_free(cache);
    fclose(fout);
    fclose(fin);
    waitpid(pid, NULL, 0);
    return 0;
}
