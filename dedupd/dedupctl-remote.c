/*
 * dedupctl's thin clients of the dedupd REST API (libcurl + jansson):
 *   dedupctl status   --remote URL            health, readiness and the node sample
 *   dedupctl volumes  --remote URL            one line per VDO volume
 *   dedupctl history  --remote URL NAME [--from S] [--to S] [--step S]
 *   dedupctl estimate --remote URL PATH...    start a job on the daemon, wait, print
 *   dedupctl model    --remote URL [retrain]  the cost model's status, or train it now
 *   dedupctl place    --remote URL POD.json|-  every node's score, verdict and why for a pod
 *                     (a Pod object, or {"namespace": NS, "name": NAME} of a cached pod)
 *   dedupctl rightsize --remote URL POD.json|-  the pod as the right-sizing webhook would
 *                     rewrite it (requests, limits, annotations) and why (POST
 *                     /v1/rightsize; a Pod object or an AdmissionReview)
 *   dedupctl cluster  --remote URL [NODE]     a placement role's cluster view: one line
 *                     per node (report age, stale, skew, GPUs) and per volume (pool,
 *                     mode, free physical space, write rate, cost)
 *   dedupctl predict  --remote URL --volume NAME [--write-mbps W] [--duplicate-share D]
 *                     [--cpu-load L]  |  --features FILE   cost and latency, with the source
 * --json prints the daemon's JSON as it came. A bearer token is read from
 * --token-file (dedupd/http/token.h: a missing, unreadable or malformed file
 * is a usage error) and sent with every request. Figures the daemon does not
 * have print as "-". Requests go through dedupd/http/client.h, one client
 * (one connection) for the whole run. Exit: 0 ok; 1 the daemon answered
 * with an error or could not be reached (the message says which); 2 bad
 * usage.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/dedupctl.h"
#include "dedupd/http/client.h"
#include "dedupd/http/token.h"

/* Performs a request; returns the HTTP status (or -1 with the reason in
 * err) and the parsed body. */
static long call(struct dd_http_client *hc, const char *method, const char *path, const char *body,
                 json_t **ret_doc, char *err, size_t errlen)
{
    struct dd_dynbuf b;
    const char *base = dd_http_client_base(hc);
    long status;

    *ret_doc = NULL;
    dd_dynbuf_init(&b, DD_HTTP_CLIENT_MAX_REPLY);
    status = dd_http_client_call(hc, method, path, body, &b, err, errlen);
    if (status < 0) {
        dd_dynbuf_free(&b);
        return -1;
    }
    if (dd_dynbuf_len(&b) > 0)
        *ret_doc = json_loads(dd_dynbuf_str(&b), 0, NULL);
    if (status >= 400) {
        json_t *e =
            *ret_doc ? json_object_get(json_object_get(*ret_doc, "error"), "message") : NULL;
        snprintf(err, errlen, "%.200s%.200s: HTTP %ld: %.500s", base, path, status,
                 e ? json_string_value(e) : dd_dynbuf_str(&b));
    } else if (!*ret_doc && status != 204) {
        snprintf(err, errlen, "%.200s%.200s: the reply is not JSON", base, path);
        status = -1;
    }
    dd_dynbuf_free(&b);
    return status;
}

/* A fraction as a percentage cell: "12.5 %", or "-" when undefined. */
static void percent(char *out, size_t len, double v)
{
    if (isfinite(v))
        snprintf(out, len, "%.1f %%", 100 * v);
    else
        snprintf(out, len, "-");
}

static void dump(json_t *doc)
{
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
}

static double num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : (double)NAN;
}

/* A table cell: "-" where the figure is undefined (an idle interval has no
 * hit rate and no cost per GiB). */
static void cell(char *out, size_t len, double v, int decimals)
{
    if (isfinite(v))
        snprintf(out, len, "%.*f", decimals, v);
    else
        snprintf(out, len, "-");
}

int dd_ctl_remote(const char *verb, int argc, char **argv)
{
    enum {
        O_REMOTE = 256,
        O_JSON,
        O_TOKEN,
        O_FROM,
        O_TO,
        O_STEP,
        O_MODE,
        O_VOLUME,
        O_WMBPS,
        O_DUP,
        O_LOAD,
        O_FEATURES
    };
    static const struct option longopts[] = {
        {"remote", required_argument, NULL, O_REMOTE},
        {"json", no_argument, NULL, O_JSON},
        {"token-file", required_argument, NULL, O_TOKEN},
        {"from", required_argument, NULL, O_FROM},
        {"to", required_argument, NULL, O_TO},
        {"step", required_argument, NULL, O_STEP},
        {"mode", required_argument, NULL, O_MODE},
        {"volume", required_argument, NULL, O_VOLUME},
        {"write-mbps", required_argument, NULL, O_WMBPS},
        {"duplicate-share", required_argument, NULL, O_DUP},
        {"cpu-load", required_argument, NULL, O_LOAD},
        {"features", required_argument, NULL, O_FEATURES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *remote = NULL, *token_file = NULL, *from = NULL, *to = NULL, *step = NULL,
               *mode = NULL, *volume = NULL, *features = NULL;
    const char *what_if[3] = {NULL, NULL, NULL}; /* write_mbps, duplicate_share, cpu_load */
    bool json = false;
    char err[1024] = "", path[2048];
    json_t *doc = NULL;
    char *token = NULL;
    struct dd_http_client *api = NULL;
    int c, ret = 1;
    double dummy;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_REMOTE:
            remote = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_TOKEN:
            token_file = optarg;
            break;
        case O_FROM:
            from = optarg;
            break;
        case O_TO:
            to = optarg;
            break;
        case O_STEP:
            step = optarg;
            break;
        case O_MODE:
            mode = optarg;
            break;
        case O_VOLUME:
            volume = optarg;
            break;
        case O_WMBPS:
        case O_DUP:
        case O_LOAD:
            what_if[c - O_WMBPS] = optarg;
            break;
        case O_FEATURES:
            features = optarg;
            break;
        case 'h':
            printf("Usage: dedupctl %s --remote http://ADDR:PORT [--json] [--token-file F] ...\n",
                   verb);
            return 0;
        default:
            return 2;
        }
    }
    if (!remote || strncmp(remote, "http", 4) != 0) {
        fprintf(stderr, "dedupctl: %s: --remote http://ADDR:PORT is required\n", verb);
        return 2;
    }
    for (const char *const *t = (const char *const[]){from, to, step, NULL}; *t; t++) {
        if (*t && dd_parse_double(*t, &dummy) < 0) {
            fprintf(stderr, "dedupctl: %s: '%s' is not a number of seconds\n", verb, *t);
            return 2;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (what_if[i] && dd_parse_double(what_if[i], &dummy) < 0) {
            fprintf(stderr, "dedupctl: %s: '%s' is not a number\n", verb, what_if[i]);
            return 2;
        }
    }
    if (token_file && dd_token_read(token_file, &token, err, sizeof(err)) < 0) {
        fprintf(stderr, "dedupctl: %s: --token-file: %s\n", verb, err);
        return 2;
    }
    {
        struct dd_http_client_config hcfg = {.base_url = remote, .token = token};
        if (dd_http_client_new(&hcfg, &api, err, sizeof(err)) < 0) {
            fprintf(stderr, "dedupctl: %s: --remote: %s\n", verb, err);
            dd_free(token);
            return 2;
        }
    }

    if (strcmp(verb, "status") == 0) {
        json_t *node = NULL;
        long h = call(api, "GET", "/healthz", NULL, &doc, err, sizeof(err));
        json_decref(doc);
        doc = NULL;
        if (h != 200)
            goto fail;
        long rd = call(api, "GET", "/readyz", NULL, &doc, err, sizeof(err));
        json_decref(doc);
        doc = NULL;
        if (call(api, "GET", "/v1/node", NULL, &node, err, sizeof(err)) != 200 && rd == 200)
            goto fail;
        if (json) {
            dump(node ? node : json_null());
        } else {
            printf("dedupd at %s: %s\n", remote, rd == 200 ? "ready" : "not ready yet");
            if (node) {
                char cpu[32], ex[32], rq[32];
                percent(cpu, sizeof(cpu), num(node, "cpu_util"));
                percent(ex, sizeof(ex), num(node, "node_cpu_util_ex_vdo"));
                cell(rq, sizeof(rq), num(node, "run_queue"), 0);
                printf("  volumes %lld, CPU %s (%s without VDO threads), run queue %s\n",
                       (long long)json_integer_value(json_object_get(node, "volumes")), cpu, ex,
                       rq);
            }
        }
        json_decref(node);
        ret = 0;
    } else if (strcmp(verb, "volumes") == 0) {
        if (call(api, "GET", "/v1/volumes", NULL, &doc, err, sizeof(err)) != 200)
            goto fail;
        if (json) {
            dump(doc);
        } else {
            size_t i;
            json_t *v;
            printf("%-24s %6s %8s %10s %10s %10s\n", "VOLUME", "USE%", "SAVING%", "WRITE MB/s",
                   "DEDUP HIT", "CPU s/GiB");
            json_array_foreach(json_object_get(doc, "volumes"), i, v)
            {
                json_t *f = json_object_get(v, "features");
                char w[16], hit[16], cost[16];
                cell(w, sizeof(w), num(f, "write_mbps"), 1);
                cell(hit, sizeof(hit), num(f, "dedup_hit_rate"), 2);
                cell(cost, sizeof(cost), num(f, "cost"), 2);
                printf("%-24s %6.0f %8.0f %10s %10s %10s\n",
                       json_string_value(json_object_get(v, "name")), num(v, "used_percent"),
                       num(v, "saving_percent"), w, hit, cost);
            }
        }
        ret = 0;
    } else if (strcmp(verb, "history") == 0) {
        if (optind + 1 != argc) {
            fprintf(stderr, "dedupctl: history: exactly one volume NAME\n");
            ret = 2;
            goto out;
        }
        char *name = curl_easy_escape(NULL, argv[optind], 0);
        snprintf(path, sizeof(path), "/v1/volumes/%s/history?from=%s&to=%s&step=%s", name,
                 from ? from : "0", to ? to : "99999999999", step ? step : "0");
        curl_free(name);
        if (call(api, "GET", path, NULL, &doc, err, sizeof(err)) != 200)
            goto fail;
        if (json) {
            dump(doc);
        } else {
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(doc, "points"), i, p)
            {
                json_t *f = json_object_get(json_object_get(p, "sample"), "features");
                char w[32], hit[32], cost[32], lat[32];
                cell(w, sizeof(w), num(f, "write_mbps"), 1);
                cell(hit, sizeof(hit), num(f, "dedup_hit_rate"), 2);
                cell(cost, sizeof(cost), num(f, "cost"), 3);
                cell(lat, sizeof(lat), num(f, "latency"), 3);
                printf("%lld %s MB/s hit %s cost %s latency %s ms\n",
                       (long long)json_integer_value(json_object_get(p, "time_ms")), w, hit, cost,
                       lat);
            }
        }
        ret = 0;
    } else if (strcmp(verb, "estimate") == 0) {
        json_t *paths = json_array(), *req;
        char *body;
        for (int i = optind; i < argc; i++)
            json_array_append_new(paths, json_string(argv[i]));
        if (json_array_size(paths) == 0) {
            fprintf(stderr, "dedupctl: estimate: no PATH given\n");
            json_decref(paths);
            ret = 2;
            goto out;
        }
        req = json_pack("{s:o}", "paths", paths);
        if (mode)
            json_object_set_new(req, "mode", json_string(mode));
        body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        long st = call(api, "POST", "/v1/estimate", body, &doc, err, sizeof(err));
        free(body);
        if (st != 202)
            goto fail;
        snprintf(path, sizeof(path), "/v1/estimate/%lld",
                 (long long)json_integer_value(json_object_get(doc, "id")));
        for (;;) {
            struct timespec nap = {0, 100000000};
            json_decref(doc);
            if (call(api, "GET", path, NULL, &doc, err, sizeof(err)) != 200)
                goto fail;
            if (strcmp(json_string_value(json_object_get(doc, "status")), "running") != 0)
                break;
            nanosleep(&nap, NULL);
        }
        dump(json ? doc : json_object_get(doc, "result"));
        ret = strcmp(json_string_value(json_object_get(doc, "status")), "done") == 0 ? 0 : 1;
    } else if (strcmp(verb, "model") == 0) {
        bool retrain = optind < argc && strcmp(argv[optind], "retrain") == 0;
        if (optind < argc && !retrain) {
            fprintf(stderr, "dedupctl: model: unknown argument '%s' (retrain?)\n", argv[optind]);
            ret = 2;
            goto out;
        }
        long st = call(api, retrain ? "POST" : "GET", retrain ? "/v1/model/retrain" : "/v1/model",
                       retrain ? "{}" : NULL, &doc, err, sizeof(err));
        /* a long training answers 202 with the run to poll */
        while (retrain && st == 202) {
            struct timespec nap = {1, 0};
            const char *poll = json_string_value(json_object_get(doc, "poll"));
            if (!poll) {
                snprintf(err, sizeof(err), "the daemon answered 202 without a run to poll");
                goto fail;
            }
            snprintf(path, sizeof(path), "%s", poll);
            json_decref(doc);
            doc = NULL;
            nanosleep(&nap, NULL);
            if (call(api, "GET", path, NULL, &doc, err, sizeof(err)) != 200)
                goto fail;
            st = json_integer_value(json_object_get(doc, "http_status"));
            if (st != 200 && st != 202) {
                snprintf(err, sizeof(err), "training %s: %s",
                         json_string_value(json_object_get(doc, "status")),
                         json_string_value(json_object_get(doc, "error")));
                goto fail;
            }
        }
        if (st != 200)
            goto fail;
        if (json || retrain) {
            dump(doc);
        } else {
            json_t *a = json_object_get(doc, "active"), *h = json_object_get(a, "holdout"), *v;
            size_t i;
            printf("active: %s, version %lld\n", json_string_value(json_object_get(a, "kind")),
                   (long long)json_integer_value(json_object_get(a, "version")));
            printf("%-8s %-8s %12s %12s %12s %12s %10s\n", "VERSION", "SERVES", "COST MAPE%",
                   "PRIOR MAPE%", "LAT MAPE%", "PRIOR MAPE%", "ROWS");
            json_array_foreach(json_object_get(doc, "versions"), i, v)
            {
                json_t *vh = json_object_get(v, "holdout");
                json_t *hc = json_object_get(vh, "cost"), *hl = json_object_get(vh, "latency");
                printf("%-8lld %-8s %12.2f %12.2f %12.2f %12.2f %10lld\n",
                       (long long)json_integer_value(json_object_get(v, "version")),
                       json_is_true(json_object_get(v, "beats_prior")) ? "xgboost" : "prior",
                       num(json_object_get(hc, "xgboost"), "mape_percent"),
                       num(json_object_get(hc, "prior"), "mape_percent"),
                       num(json_object_get(hl, "xgboost"), "mape_percent"),
                       num(json_object_get(hl, "prior"), "mape_percent"),
                       (long long)(json_integer_value(json_object_get(hc, "train_rows")) +
                                   json_integer_value(json_object_get(hc, "holdout_rows"))));
            }
            (void)h;
        }
        ret = 0;
    } else if (strcmp(verb, "place") == 0) {
        json_error_t je;
        json_t *pod;
        char *body;
        if (optind + 1 != argc) {
            fprintf(stderr, "dedupctl: place: exactly one POD.json (or - for stdin)\n");
            ret = 2;
            goto out;
        }
        pod = strcmp(argv[optind], "-") == 0 ? json_loadf(stdin, 0, &je)
                                             : json_load_file(argv[optind], 0, &je);
        if (!pod) {
            fprintf(stderr, "dedupctl: place: %s: line %d column %d: %s\n", argv[optind], je.line,
                    je.column, je.text);
            ret = 2;
            goto out;
        }
        body = json_dumps(pod, JSON_COMPACT);
        json_decref(pod);
        long st = call(api, "POST", "/v1/placement", body, &doc, err, sizeof(err));
        free(body);
        if (st != 200)
            goto fail;
        if (json) {
            dump(doc);
        } else {
            json_t *p = json_object_get(doc, "pod"), *n, *note;
            size_t i;
            printf("pod %s/%s: %.0f GPUs, profile %s (%s), mode %s, kubernetes %s, best %s\n",
                   json_string_value(json_object_get(p, "namespace")),
                   json_string_value(json_object_get(p, "name")), num(p, "gpus"),
                   json_string_value(json_object_get(p, "profile")),
                   json_string_value(json_object_get(p, "source")),
                   json_string_value(json_object_get(doc, "mode")),
                   json_string_value(json_object_get(doc, "kubernetes")),
                   json_is_string(json_object_get(doc, "best"))
                       ? json_string_value(json_object_get(doc, "best"))
                       : "-");
            json_array_foreach(json_object_get(p, "notes"), i, note)
                printf("  note: %s\n", json_string_value(note));
            printf("%-32s %5s %-12s %10s  %s\n", "NODE", "SCORE", "VERDICT", "SLOWDOWN%", "WHY");
            json_array_foreach(json_object_get(doc, "nodes"), i, n)
            {
                char slow[32];
                json_t *sd = json_object_get(n, "slowdown_percent");
                if (json_is_string(sd))
                    snprintf(slow, sizeof(slow), "%s", json_string_value(sd));
                else
                    cell(slow, sizeof(slow), num(n, "slowdown_percent"), 1);
                printf("%-32s %5lld %-12s %10s  %s\n",
                       json_string_value(json_object_get(n, "node")),
                       (long long)json_integer_value(json_object_get(n, "score")),
                       json_string_value(json_object_get(n, "verdict")), slow,
                       json_string_value(json_object_get(n, "reason")));
            }
        }
        ret = 0;
    } else if (strcmp(verb, "rightsize") == 0) {
        json_error_t je;
        json_t *pod;
        char *body;
        if (optind + 1 != argc) {
            fprintf(stderr, "dedupctl: rightsize: exactly one POD.json (or - for stdin)\n");
            ret = 2;
            goto out;
        }
        pod = strcmp(argv[optind], "-") == 0 ? json_loadf(stdin, 0, &je)
                                             : json_load_file(argv[optind], 0, &je);
        if (!pod) {
            fprintf(stderr, "dedupctl: rightsize: %s: line %d column %d: %s\n", argv[optind],
                    je.line, je.column, je.text);
            ret = 2;
            goto out;
        }
        body = json_dumps(pod, JSON_COMPACT);
        json_decref(pod);
        long st = call(api, "POST", "/v1/rightsize", body, &doc, err, sizeof(err));
        free(body);
        if (st != 200)
            goto fail;
        if (json) {
            dump(doc);
        } else {
            json_t *ex = json_object_get(doc, "explanation"), *ct, *rsn;
            size_t i;
            printf("namespace %s: opt-in %s, mode %s, %s%s\n",
                   json_string_value(json_object_get(doc, "namespace")),
                   json_string_value(json_object_get(doc, "opt_in")),
                   json_string_value(json_object_get(ex, "mode")),
                   json_is_true(json_object_get(ex, "changed")) ? "changed" : "unchanged",
                   json_is_true(json_object_get(ex, "static_cpus")) ? ", exclusive CPUs" : "");
            printf("%-24s %-9s %-9s %-18s %-18s\n", "CONTAINER", "", "", "BEFORE", "AFTER");
            json_array_foreach(json_object_get(ex, "containers"), i, ct)
            {
                static const char *const rows[4][2] = {{"requests", "cpu"},
                                                       {"limits", "cpu"},
                                                       {"requests", "memory"},
                                                       {"limits", "memory"}};
                for (size_t k = 0; k < 4; k++) {
                    const char *b = json_string_value(json_object_get(
                        json_object_get(json_object_get(ct, "before"), rows[k][0]), rows[k][1]));
                    const char *a = json_string_value(json_object_get(
                        json_object_get(json_object_get(ct, "after"), rows[k][0]), rows[k][1]));
                    printf("%-24s %-9s %-9s %-18s %-18s\n",
                           k ? "" : json_string_value(json_object_get(ct, "name")), rows[k][0],
                           rows[k][1], b ? b : "-", a ? a : "-");
                }
            }
            json_array_foreach(json_object_get(ex, "reasons"), i, rsn)
                printf("  why: %s\n", json_string_value(rsn));
            printf("rewritten object:\n");
            dump(json_object_get(doc, "object"));
        }
        ret = 0;
    } else if (strcmp(verb, "cluster") == 0) {
        if (optind + 1 < argc) {
            fprintf(stderr, "dedupctl: cluster: at most one NODE\n");
            ret = 2;
            goto out;
        }
        if (optind < argc) {
            char *name = curl_easy_escape(NULL, argv[optind], 0);
            snprintf(path, sizeof(path), "/v1/cluster/nodes/%s", name);
            curl_free(name);
        } else {
            snprintf(path, sizeof(path), "/v1/cluster");
        }
        if (call(api, "GET", path, NULL, &doc, err, sizeof(err)) != 200)
            goto fail;
        if (json) {
            dump(doc);
        } else {
            json_t *nodes = json_object_get(doc, "nodes"), *one = NULL, *n;
            size_t i;
            if (!nodes) { /* a single node's document */
                one = json_array();
                json_array_append(one, doc);
                nodes = one;
            }
            printf("%-32s %8s %6s %8s %5s %8s\n", "NODE", "AGE s", "STALE", "SKEW s", "GPUS",
                   "REPORTS");
            json_array_foreach(nodes, i, n)
            {
                json_t *v;
                size_t k;
                char age[32], skew[32];
                cell(age, sizeof(age), num(n, "report_age_seconds"), 1);
                cell(skew, sizeof(skew), num(n, "clock_skew_seconds"), 1);
                printf("%-32s %8s %6s %8s %5zu %8lld\n",
                       json_string_value(json_object_get(n, "name")), age,
                       json_is_true(json_object_get(n, "stale")) ? "stale" : "fresh", skew,
                       json_array_size(json_object_get(n, "gpus")),
                       (long long)json_integer_value(json_object_get(n, "reports")));
                json_array_foreach(json_object_get(n, "volumes"), k, v)
                {
                    json_t *f = json_object_get(v, "features");
                    char free_gib[32], w[32], cost[32];
                    cell(free_gib, sizeof(free_gib), num(v, "physical_free_bytes") / 1073741824.0,
                         1);
                    cell(w, sizeof(w), num(f, "write_mbps"), 1);
                    cell(cost, sizeof(cost), num(f, "cost"), 2);
                    printf("  %-22s pool %-20s %-8s free %8s GiB  write %8s MB/s  cost %6s "
                           "CPU s/GiB\n",
                           json_string_value(json_object_get(v, "name")),
                           json_string_value(json_object_get(v, "pool")),
                           json_string_value(json_object_get(v, "mode")), free_gib, w, cost);
                }
            }
            json_decref(one);
        }
        ret = 0;
    } else if (strcmp(verb, "predict") == 0) {
        json_t *req;
        char *body;
        if ((volume != NULL) == (features != NULL)) {
            fprintf(stderr, "dedupctl: predict: give --volume NAME or --features FILE\n");
            ret = 2;
            goto out;
        }
        if (features) {
            json_error_t je;
            json_t *f = strcmp(features, "-") == 0 ? json_loadf(stdin, 0, &je)
                                                   : json_load_file(features, 0, &je);
            if (!f) {
                fprintf(stderr, "dedupctl: predict: %s: line %d column %d: %s\n", features, je.line,
                        je.column, je.text);
                ret = 2;
                goto out;
            }
            req = json_pack("{s:o}", "features", f);
        } else {
            static const char *const keys[] = {"write_mbps", "duplicate_share", "cpu_load"};
            json_t *wi = json_object();
            for (int i = 0; i < 3; i++) {
                if (what_if[i]) {
                    double x = 0;
                    (void)dd_parse_double(what_if[i], &x);
                    json_object_set_new(wi, keys[i], json_real(x));
                }
            }
            req = json_pack("{s:s}", "volume", volume);
            if (json_object_size(wi))
                json_object_set_new(req, "what_if", wi);
            else
                json_decref(wi);
        }
        body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        long st = call(api, "POST", "/v1/predict", body, &doc, err, sizeof(err));
        free(body);
        if (st != 200)
            goto fail;
        if (json)
            dump(doc);
        else
            printf("cost %.3f CPU-s/GiB, write latency %.3f ms (%s, model version %lld)\n",
                   num(doc, "cost"), num(doc, "latency_ms"),
                   json_string_value(json_object_get(doc, "source")),
                   (long long)json_integer_value(json_object_get(doc, "model_version")));
        ret = 0;
    }
    goto out;
fail:
    fprintf(stderr, "dedupctl: %s: %s\n", verb, err);
    ret = 1;
out:
    json_decref(doc);
    dd_http_client_free(api);
    dd_free(token);
    return ret;
}
