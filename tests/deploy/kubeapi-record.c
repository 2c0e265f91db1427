/*
 * kubeapi-record: the test API server (tests/kubeapi.h) as a process, for
 * tests/deploy/check-deploy.sh. It loads the reference objects of
 * one or more directories (one per kind, the file name's prefix names the
 * kind; "deployment." files are served on GET at their own path, as the
 * capacity publisher's owner),
 * writes its URL to URL_FILE, serves until SIGTERM or SIGINT, then writes
 * every request it was sent (tt_kubeapi_requests: verb, method, path,
 * count) to REQUESTS_FILE as JSON. The deploy check compares those calls
 * with the rendered RBAC.
 *
 *   kubeapi-record FIXTURE_DIR[:FIXTURE_DIR...] URL_FILE REQUESTS_FILE
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kubeapi.h"

static const struct {
    const char *prefix;
    enum dd_kube_kind kind;
} prefixes[] = {
    {"pod.", DD_KUBE_POD},         {"pvc.", DD_KUBE_PVC},   {"pv.", DD_KUBE_PV},
    {"storageclass.", DD_KUBE_SC}, {"node.", DD_KUBE_NODE}, {"namespace.", DD_KUBE_NAMESPACE},
};

static int load_fixtures(struct tt_kubeapi *s, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (!d) {
        fprintf(stderr, "kubeapi-record: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "deployment.", 11) == 0) {
            char path[4096], url[1024];
            json_error_t err;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            json_t *obj = json_load_file(path, 0, &err);
            json_t *md = json_object_get(obj, "metadata");
            const char *ns = json_string_value(json_object_get(md, "namespace"));
            const char *name = json_string_value(json_object_get(md, "name"));
            if (!ns || !name) {
                fprintf(stderr, "kubeapi-record: %s: no metadata.namespace and name\n", path);
                json_decref(obj);
                closedir(d);
                return -1;
            }
            snprintf(url, sizeof(url), "/apis/apps/v1/namespaces/%s/deployments/%s", ns, name);
            tt_kubeapi_set_object(s, url, obj);
            json_decref(obj);
            n++;
            continue;
        }
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
            if (strncmp(e->d_name, prefixes[i].prefix, strlen(prefixes[i].prefix)) != 0)
                continue;
            char path[4096];
            json_error_t err;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            json_t *obj = json_load_file(path, 0, &err);
            if (!obj || tt_kubeapi_put(s, prefixes[i].kind, obj) < 0) {
                fprintf(stderr, "kubeapi-record: %s: %s\n", path, obj ? "refused" : err.text);
                json_decref(obj);
                closedir(d);
                return -1;
            }
            json_decref(obj);
            n++;
            break;
        }
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    struct tt_kubeapi *s;
    sigset_t set;
    int sig, n;
    FILE *f;

    if (argc != 4) {
        fprintf(stderr, "usage: kubeapi-record FIXTURE_DIR URL_FILE REQUESTS_FILE\n");
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before the server's threads start */
    if (tt_kubeapi_start(&s) < 0) {
        fprintf(stderr, "kubeapi-record: cannot start the test API server\n");
        return 1;
    }
    n = 0;
    for (char *dir = argv[1], *colon; dir && n >= 0; dir = colon ? colon + 1 : NULL) {
        if ((colon = strchr(dir, ':')))
            *colon = '\0';
        int k = load_fixtures(s, dir);
        n = k < 0 ? -1 : n + k;
    }
    if (n <= 0) {
        tt_kubeapi_stop(s);
        return 1;
    }
    f = fopen(argv[2], "w");
    if (!f || fprintf(f, "%s\n", tt_kubeapi_url(s)) < 0 || fclose(f) != 0) {
        fprintf(stderr, "kubeapi-record: %s: cannot write\n", argv[2]);
        tt_kubeapi_stop(s);
        return 1;
    }
    fprintf(stderr, "kubeapi-record: %d objects at %s\n", n, tt_kubeapi_url(s));
    sigwait(&set, &sig);
    json_t *reqs = tt_kubeapi_requests(s);
    tt_kubeapi_stop(s);
    int r = json_dump_file(reqs, argv[3], JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(reqs);
    if (r < 0) {
        fprintf(stderr, "kubeapi-record: %s: cannot write\n", argv[3]);
        return 1;
    }
    return 0;
}
