/*
 * dedupd-csi-publish-bench (bench/csi-publish.sh): the API write rate of
 * CSIStorageCapacity publishing at N nodes x 4 classes, with the
 * coalescing rule and without it (the baseline: every change written),
 * in one run, against the loopback test API server (tests/kubeapi).
 *
 * Per mode: a fresh test API server with 4 StorageClasses of ours (pool
 * "fast"; two predict from the observed reduction, two from an
 * expected-reduction annotation) and an in-process placement daemon with
 * --publish-capacity (the write bucket opened wide so it does not cap the
 * baseline). N node reports go in, the publisher creates N x 4 objects
 * (timed: the first pass), then ROUNDS rounds each move every node's
 * figures the same seeded way and wait for two publisher passes; the
 * updates each round caused are counted from the server's record. The
 * movement per round: 80 % of the nodes drift by up to +-0.5 % of their
 * physical free space (writes, reads, deletes that cancel out), 20 % move
 * by up to +-10 % (a checkpoint landing or a data set removed), and 10 %
 * see their observed reduction move by up to +-5 %.
 *
 * Printed: per mode the time from the first report to the last object
 * created, the longest pass seen then (the creating one), the fastest pass
 * polled during the rounds (one with no or few writes: computing 4N
 * capacities and planning them against 4N objects), updates per round;
 * then writes per minute at the
 * default --publish-capacity-interval of 60 s (one pass a minute) for
 * both, and their ratio.
 *
 *   dedupd-csi-publish-bench [NODES] [ROUNDS] [INTERVAL_S]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/clock.h"
#include "dedupd/config.h"
#include "dedupd/daemon.h"
#include "kubeapi.h"
#include "placement/report.h"
#include "reports.h"

#define GIB 1073741824.0
#define NS  "dedupd-bench"

static const char *const classes[4][2] = {
    {"vdo-observed-a", NULL}, {"vdo-observed-b", NULL}, {"vdo-x2", "2"}, {"vdo-x3", "3"}};

struct node_state {
    double free_gib, ratio;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void) /* [0, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void die(const char *what)
{
    fprintf(stderr, "dedupd-csi-publish-bench: %s\n", what);
    exit(1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* /metrics at thousands of nodes runs to megabytes: the buffer is big */
#define HTTP_BUF (64u << 20)
struct http {
    CURL *c;
    char *buf;
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct http *h = ud;
    size_t k = sz * n, room = HTTP_BUF - 1 - h->len;
    memcpy(h->buf + h->len, p, k < room ? k : room);
    h->len += k < room ? k : room;
    h->buf[h->len] = '\0';
    return k;
}

/* One request on a kept connection; the status. */
static long request(struct http *h, const char *url, const char *body)
{
    long st = 0;
    h->len = 0;
    h->buf[0] = '\0';
    curl_easy_setopt(h->c, CURLOPT_URL, url);
    curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->c, CURLOPT_HTTPGET, body ? 0L : 1L);
    curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h->c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->c, CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(h->c) != CURLE_OK)
        return -1;
    curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

static void report(struct http *h, const char *base, unsigned i, const struct node_state *s)
{
    char node[32], url[256];
    snprintf(node, sizeof(node), "node-%05u", i);
    struct tt_node_report n = {.node = node,
                               .pool = "fast",
                               .physical_gib = 8000,
                               .physical_free_gib = s->free_gib,
                               .logical_gib = 80000,
                               .logical_free_gib = 60000,
                               .dedup_ratio = s->ratio};
    json_t *j = tt_node_report_json(&n);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!body)
        die("out of memory");
    snprintf(url, sizeof(url), "%s/v1/reports", base);
    long st = request(h, url, body);
    if (st < 200 || st > 299)
        die("a report was refused");
    free(body);
    json_decref(j);
}

static double metric(struct http *h, const char *base, const char *name)
{
    char url[256], pat[200];
    snprintf(url, sizeof(url), "%s/metrics", base);
    if (request(h, url, NULL) != 200)
        return -1;
    snprintf(pat, sizeof(pat), "\n%s ", name);
    const char *p = strstr(h->buf, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

static double g_fastest = -1; /* the smallest pass time polled during the rounds */

static void wait_passes(struct http *h, const char *base, int n)
{
    double start = metric(h, base, "dedupd_capacity_publish_passes_total");
    if (start < 0)
        die("no dedupd_capacity_publish_passes_total on /metrics");
    for (int i = 0; i < 24000; i++) {
        double t = metric(h, base, "dedupd_capacity_publish_pass_seconds");
        if (t > 0 && (g_fastest < 0 || t < g_fastest))
            g_fastest = t;
        if (metric(h, base, "dedupd_capacity_publish_passes_total") >= start + n)
            return;
        sleep_ms(5);
    }
    die("the publisher stopped running passes");
}

struct result {
    double create_s, create_pass_s, steady_pass_s;
    unsigned long creates, updates_total;
    unsigned long updates[64];
};

static void run(bool coalesce, unsigned nodes, unsigned rounds, double interval, struct result *res)
{
    struct tt_kubeapi *api;
    struct dd_daemon *d;
    struct dd_config c;
    struct http h = {curl_easy_init(), malloc(HTTP_BUF), 0};
    struct node_state *st = calloc(nodes, sizeof(*st));
    char err[512], dir[] = "/tmp/dedupd-csi-publish-bench.XXXXXX", base[64], ivs[32];
    bool help = false;

    if (!h.c || !h.buf || !st || !mkdtemp(dir) || tt_kubeapi_start(&api) < 0)
        die("setup");
    for (size_t k = 0; k < 4; k++) {
        json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:s, s:s}", "apiVersion",
                              "storage.k8s.io/v1", "kind", "StorageClass", "metadata", "name",
                              classes[k][0], "annotations", "dedupd.io/pool", "fast", "provisioner",
                              "vdo.csi.example.io", "volumeBindingMode", "WaitForFirstConsumer");
        if (classes[k][1])
            json_object_set_new(json_object_get(json_object_get(o, "metadata"), "annotations"),
                                "dedupd.io/expected-reduction", json_string(classes[k][1]));
        tt_kubeapi_put(api, DD_KUBE_SC, o);
        json_decref(o);
    }
    snprintf(ivs, sizeof(ivs), "%g", interval);
    const char *args[] = {"dedupd",
                          "--role",
                          "placement",
                          "--listen",
                          "127.0.0.1:0",
                          "--data-dir",
                          dir,
                          "--kube-api",
                          tt_kubeapi_url(api),
                          "--stale-after",
                          "3600",
                          "--min-train-samples",
                          "100000000",
                          "--publish-capacity",
                          "--publish-capacity-namespace",
                          NS,
                          "--publish-capacity-interval",
                          ivs,
                          "--publish-capacity-qps",
                          "10000",
                          "--publish-capacity-burst",
                          "100000",
                          "--publish-capacity-threshold",
                          coalesce ? "0.05" : "0",
                          "--publish-capacity-min-change",
                          coalesce ? "1073741824" : "0",
                          "--log-level",
                          "error",
                          NULL};
    enum { NARGS = sizeof(args) / sizeof(args[0]) - 1 };
    char bufs[NARGS][1100], *argv[NARGS + 1];
    int argc = NARGS;
    for (int i = 0; i < NARGS; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "%s", args[i]);
        argv[i] = bufs[i];
    }
    argv[NARGS] = NULL;
    if (dd_config_load(argc, argv, &c, &help, err, sizeof(err)) != 0 ||
        dd_daemon_start(&c, &d, err, sizeof(err)) < 0)
        die(err);
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", dd_daemon_port(d));

    rng = 0x9e3779b97f4a7c15ull; /* the same movements in both modes */
    for (unsigned i = 0; i < nodes; i++) {
        st[i].free_gib = 1000 + 6000 * uniform();
        st[i].ratio = 1.5 + 2.5 * uniform();
    }
    uint64_t t0 = dd_mono_ms();
    for (unsigned i = 0; i < nodes; i++)
        report(&h, base, i, &st[i]);
    struct tt_kubeapi_stats s;
    double pass_max = 0;
    for (;;) {
        tt_kubeapi_stats(api, &s);
        pass_max = fmax(pass_max, metric(&h, base, "dedupd_capacity_publish_pass_seconds"));
        if (s.csc_creates >= 4ul * nodes)
            break;
        if (dd_mono_ms() - t0 > 600000)
            die("the objects were not created in 10 minutes");
        sleep_ms(20);
    }
    res->create_s = (double)(dd_mono_ms() - t0) / 1000.0;
    /* the creating pass's time shows in the gauge from its end until the
     * next pass ends: the largest value seen is the creating pass */
    double start = metric(&h, base, "dedupd_capacity_publish_passes_total");
    if (start < 0)
        die("no dedupd_capacity_publish_passes_total on /metrics");
    while (metric(&h, base, "dedupd_capacity_publish_passes_total") < start + 2) {
        pass_max = fmax(pass_max, metric(&h, base, "dedupd_capacity_publish_pass_seconds"));
        sleep_ms(5);
    }
    res->create_pass_s = pass_max;
    res->creates = s.csc_creates;
    unsigned long before = s.csc_updates;
    g_fastest = -1;
    for (unsigned r = 0; r < rounds && r < 64; r++) {
        for (unsigned i = 0; i < nodes; i++) {
            double u = uniform();
            if (u < 0.8)
                st[i].free_gib *= 1 + (uniform() - 0.5) * 0.01;
            else
                st[i].free_gib *= 1 + (uniform() - 0.5) * 0.2;
            if (uniform() < 0.1)
                st[i].ratio = fmax(1.0, st[i].ratio * (1 + (uniform() - 0.5) * 0.1));
            report(&h, base, i, &st[i]);
        }
        wait_passes(&h, base, 2);
        tt_kubeapi_stats(api, &s);
        res->updates[r] = s.csc_updates - before;
        before = s.csc_updates;
        res->updates_total += res->updates[r];
    }
    res->steady_pass_s = g_fastest;
    dd_daemon_stop(d);
    tt_kubeapi_stop(api);
    curl_easy_cleanup(h.c);
    free(h.buf);
    free(st);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "dedupd-csi-publish-bench: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
    unsigned nodes = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 5000;
    unsigned rounds = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 6;
    double interval = argc > 3 ? strtod(argv[3], NULL) : 1.0;
    struct result r[2];

    if (!nodes || !rounds || rounds > 64 || !(interval > 0))
        die("usage: dedupd-csi-publish-bench [NODES] [ROUNDS<=64] [INTERVAL_S]");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int m = 0; m < 2; m++) {
        memset(&r[m], 0, sizeof(r[m]));
        run(m == 0, nodes, rounds, interval, &r[m]);
        printf("%s: %u nodes x 4 classes: %lu objects created in %.2f s (creating pass %.2f s); "
               "updates per round:",
               m == 0 ? "coalesced (5 %, 1 GiB)" : "baseline (every change)", nodes, r[m].creates,
               r[m].create_s, r[m].create_pass_s);
        for (unsigned k = 0; k < rounds; k++)
            printf(" %lu", r[m].updates[k]);
        printf("; fastest pass polled during the rounds %.3f s\n", r[m].steady_pass_s);
        fflush(stdout);
    }
    double wc = (double)r[0].updates_total / rounds, wb = (double)r[1].updates_total / rounds;
    printf("writes per minute at --publish-capacity-interval 60 (one pass a minute, capacities "
           "moving every minute): coalesced %.0f, baseline %.0f, ratio %.3f (%.1fx fewer)\n",
           wc, wb, wb > 0 ? wc / wb : 0, wc > 0 ? wb / wc : 0);
    printf("with the default bucket (--publish-capacity-qps 10): at most 600 writes a minute; "
           "the baseline would be %s\n",
           wb > 600 ? "capped by it (objects fall behind)" : "under it");
    curl_global_cleanup();
    return 0;
}
