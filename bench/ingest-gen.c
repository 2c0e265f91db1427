/*
 * dedupd-ingest-gen: a load generator for bench/cluster-ingest.sh. It posts
 * node reports (placement/report's wire form, built with the report codec)
 * as NODES nodes with VOLUMES volumes each, every INTERVAL seconds, to one
 * placement role's /v1/reports, for DURATION seconds, on THREADS threads
 * (one keep-alive HTTP client each, the tree's client). Reports are sent
 * open-loop on a fixed schedule (NODES / INTERVAL per second); a report
 * whose turn came while the thread was still busy goes out late, and the
 * lateness is reported, so a slow server shows as lag, not as a lower rate
 * quietly accepted.
 *
 * Prints one JSON line: sent, accepted, errors, achieved reports/s, latency
 * p50/p90/p99/max (ms, request start to answer), the largest schedule lag,
 * and the generator's own CPU seconds.
 *
 *   dedupd-ingest-gen --url http://127.0.0.1:7450 --token-file F
 *       [--nodes 5000] [--volumes 16] [--interval 10] [--duration 60]
 *       [--threads 8] [--seed 1]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/common.h"
#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "dedupd/http/token.h"
#include "placement/report.h"

struct opts {
    const char *url;
    char *token;
    unsigned nodes, volumes, threads;
    double interval, duration;
    uint64_t seed;
};

struct worker {
    const struct opts *o;
    unsigned index;
    uint64_t start_ms;
    double *lat_ms; /* one per sent report */
    size_t n_lat, cap_lat;
    uint64_t sent, accepted, errors, max_lag_ms;
    char first_error[256];
};

static double urand(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

/* A plausible report of node k at time t: VOLUMES volumes with every model
 * feature and both targets, a few pods. */
static char *make_report(const struct opts *o, unsigned k, uint64_t t, uint64_t *rng)
{
    struct dd_report r;
    if (dd_report_alloc(&r, 0, o->volumes, 8) < 0)
        return NULL;
    snprintf(r.node, sizeof(r.node), "node-%05u", k);
    r.interval_s = o->interval;
    r.time_ms = t;
    r.cores = 64;
    r.cpu_util = urand(rng);
    r.cpu_util_ex_vdo = r.cpu_util * 0.9;
    r.cpu_psi = 10 * urand(rng);
    r.io_psi = 5 * urand(rng);
    r.run_queue = 20 * urand(rng);
    r.load1 = r.run_queue;
    r.mem_available_gib = 200;
    r.vdo_cpu_seconds = urand(rng);
    for (unsigned i = 0; i < o->volumes; i++) {
        struct dd_report_volume *v = &r.volumes[i];
        snprintf(v->name, sizeof(v->name), "vdo%u", i);
        snprintf(v->pool, sizeof(v->pool), "pool-%u", i % 4);
        snprintf(v->mode, sizeof(v->mode), "normal");
        snprintf(v->index_state, sizeof(v->index_state), "online");
        v->vdo_version = 36;
        v->rotational = 0;
        v->logical_bytes = 1ll << 42;
        v->logical_free_bytes = (int64_t)((double)(1ll << 41) * urand(rng));
        v->physical_bytes = 1ll << 40;
        v->physical_free_bytes = (int64_t)((double)(1ll << 39) * urand(rng));
        for (size_t f = 0; f < DD_F_COUNT; f++) {
            double x = urand(rng);
            switch (dd_feature_table[f].kind) {
            case DD_FK_FLAG:
                x = x < 0.5 ? 0 : 1;
                break;
            case DD_FK_SHARE:
                break;
            default:
                x *= 500;
            }
            v->features.v[f] = x;
        }
        v->features.target[DD_T_COST] = 0.3 + urand(rng);
        v->features.target[DD_T_LATENCY] = 0.2 + urand(rng);
    }
    for (size_t i = 0; i < r.n_pods; i++) {
        snprintf(r.pods[i].uid, sizeof(r.pods[i].uid), "%08x-0000-4000-8000-%012x", k, (unsigned)i);
        snprintf(r.pods[i].qos, sizeof(r.pods[i].qos), "burstable");
        r.pods[i].cpu_cores = 4 * urand(rng);
        r.pods[i].memory_bytes = 1e9 * urand(rng);
    }
    json_t *doc = dd_report_to_json(&r);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    dd_report_release(&r);
    return text;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct opts *o = w->o;
    struct dd_http_client *c = NULL;
    struct dd_http_client_config cc = {
        .base_url = o->url, .token = o->token, .connect_timeout_ms = 2000, .timeout_ms = 10000};
    struct dd_dynbuf reply;
    char err[256];
    uint64_t rng = o->seed * 7919 + w->index;
    /* this thread's nodes: every threads-th, each due once per interval */
    double rate = (double)o->nodes / o->interval / (double)o->threads; /* reports/s */
    uint64_t total = (uint64_t)(rate * o->duration);

    if (dd_http_client_new(&cc, &c, err, sizeof(err)) < 0) {
        snprintf(w->first_error, sizeof(w->first_error), "%s", err);
        return NULL;
    }
    dd_dynbuf_init(&reply, 1u << 20);
    for (uint64_t k = 0; k < total; k++) {
        uint64_t due = w->start_ms + (uint64_t)((double)k * 1000.0 / rate);
        uint64_t now = dd_mono_ms();
        if (now < due) {
            struct timespec ts = {(time_t)((due - now) / 1000),
                                  (long)((due - now) % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        } else if (now - due > w->max_lag_ms) {
            w->max_lag_ms = now - due;
        }
        unsigned node = (unsigned)((k * o->threads + w->index) % o->nodes);
        char *body = make_report(o, node, dd_wall_ms(), &rng);
        if (!body)
            break;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int st = dd_http_client_call(c, "POST", "/v1/reports", body, &reply, err, sizeof(err));
        clock_gettime(CLOCK_MONOTONIC, &b);
        free(body);
        w->sent++;
        if (st == 202) {
            w->accepted++;
        } else {
            w->errors++;
            if (!w->first_error[0])
                snprintf(w->first_error, sizeof(w->first_error), "%d %.200s %.40s", st,
                         st > 0 ? dd_dynbuf_str(&reply) : "", st > 0 ? "" : err);
        }
        if (DD_ARRAY_RESERVE(w->lat_ms, w->cap_lat, w->n_lat + 1) < 0)
            break;
        w->lat_ms[w->n_lat++] =
            (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    }
    dd_dynbuf_free(&reply);
    dd_http_client_free(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return (double)NAN;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"token-file", required_argument, NULL, 't'},
        {"nodes", required_argument, NULL, 'n'},
        {"volumes", required_argument, NULL, 'v'},
        {"interval", required_argument, NULL, 'i'},
        {"duration", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 'j'},
        {"seed", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {
        .nodes = 5000, .volumes = 16, .threads = 8, .interval = 10, .duration = 60, .seed = 1};
    const char *token_file = NULL;
    char err[512];
    uint64_t v;
    int c;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'u':
            o.url = optarg;
            break;
        case 't':
            token_file = optarg;
            break;
        case 'n':
            bad = dd_parse_u64_range(optarg, 1, 1000000, &v) < 0, o.nodes = (unsigned)v;
            break;
        case 'v':
            bad = dd_parse_u64_range(optarg, 1, DD_MAX_VOLUMES_PER_NODE, &v) < 0,
            o.volumes = (unsigned)v;
            break;
        case 'j':
            bad = dd_parse_u64_range(optarg, 1, 256, &v) < 0, o.threads = (unsigned)v;
            break;
        case 's':
            bad = dd_parse_u64(optarg, &o.seed) < 0;
            break;
        case 'i':
            bad = dd_parse_double(optarg, &o.interval) < 0 || !(o.interval > 0);
            break;
        case 'd':
            bad = dd_parse_double(optarg, &o.duration) < 0 || !(o.duration > 0);
            break;
        default:
            bad = 1;
        }
        if (bad) {
            fprintf(stderr,
                    "dedupd-ingest-gen: bad option (see the header of bench/ingest-gen.c)\n");
            return 2;
        }
    }
    if (!o.url) {
        fprintf(stderr, "dedupd-ingest-gen: --url is required\n");
        return 2;
    }
    if (token_file && dd_token_read(token_file, &o.token, err, sizeof(err)) < 0) {
        fprintf(stderr, "dedupd-ingest-gen: %s\n", err);
        return 2;
    }
    struct worker *w = dd_calloc(o.threads, sizeof(*w));
    pthread_t *th = dd_calloc(o.threads, sizeof(*th));
    if (!w || !th)
        return 1;
    uint64_t start = dd_mono_ms() + 200;
    for (unsigned i = 0; i < o.threads; i++) {
        w[i] = (struct worker){.o = &o, .index = i, .start_ms = start};
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0)
            return 1;
    }
    uint64_t sent = 0, accepted = 0, errors = 0, lag = 0;
    size_t n = 0;
    const char *first = "";
    for (unsigned i = 0; i < o.threads; i++) {
        pthread_join(th[i], NULL);
        sent += w[i].sent, accepted += w[i].accepted, errors += w[i].errors;
        n += w[i].n_lat;
        lag = w[i].max_lag_ms > lag ? w[i].max_lag_ms : lag;
        if (!first[0] && w[i].first_error[0])
            first = w[i].first_error;
    }
    double elapsed = (double)(dd_mono_ms() - start) / 1000.0;
    double *all = dd_calloc(n ? n : 1, sizeof(*all));
    size_t k = 0;
    for (unsigned i = 0; i < o.threads; i++) {
        memcpy(all + k, w[i].lat_ms, w[i].n_lat * sizeof(*all));
        k += w[i].n_lat;
    }
    qsort(all, n, sizeof(*all), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    json_t *out =
        json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:s}", "sent",
                  (json_int_t)sent, "accepted", (json_int_t)accepted, "errors", (json_int_t)errors,
                  "seconds", elapsed, "reports_per_s", (double)sent / elapsed, "target_per_s",
                  (double)o.nodes / o.interval, "p50_ms", pct(all, n, 50), "p90_ms",
                  pct(all, n, 90), "p99_ms", pct(all, n, 99), "max_ms", n ? all[n - 1] : 0.0,
                  "max_lag_ms", (json_int_t)lag, "generator_cpu_s", cpu, "first_error", first);
    char *text = json_dumps(out, JSON_COMPACT);
    puts(text);
    free(text);
    json_decref(out);
    for (unsigned i = 0; i < o.threads; i++)
        dd_free(w[i].lat_ms);
    dd_free(all);
    dd_free(w);
    dd_free(th);
    dd_free(o.token);
    return errors ? 1 : 0;
}
