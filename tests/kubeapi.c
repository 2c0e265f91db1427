/*
 * The test Kubernetes API server (kubeapi.h). State, under one mutex:
 * per kind an array of objects in insertion order (deleted slots NULL, so
 * a page offset stays valid while objects change) with a key -> slot index,
 * and one event log for all kinds whose position is the resourceVersion.
 * A watch is a libmicrohttpd callback response that walks the log from
 * its start position, blocking on a condition variable for new entries
 * (thread-per-connection mode allows that), and writes each event line,
 * cut into pieces when asked. Fault switches are counters and generations
 * the watch callbacks look at.
 */
#define _GNU_SOURCE
#include "kubeapi.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "common/common.h"

static const char *const obj_kinds[DD_KUBE_KINDS] = {
    "Pod", "PersistentVolumeClaim", "PersistentVolume", "StorageClass", "Node", "Namespace"};
static const char *const api_versions[DD_KUBE_KINDS] = {"v1", "v1", "v1", "storage.k8s.io/v1",
                                                        "v1", "v1"};

enum ev_type { E_ADDED, E_MODIFIED, E_DELETED, E_BOOKMARK, E_ERROR };
static const char *const ev_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

struct logent {
    enum dd_kube_kind kind;
    enum ev_type type;
    char *line; /* the event's JSON and '\n'; NULL once compacted */
    size_t len;
    char node[256]; /* a pod's spec.nodeName (fieldSelector) */
};

struct store {
    json_t **objs; /* NULL: deleted */
    size_t n, cap;
    json_t *index; /* key -> slot (integer) */
};

struct tt_kubeapi {
    struct MHD_Daemon *mhd;
    char url[64];
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool stopping;
    struct store st[DD_KUBE_KINDS];
    struct logent *log;
    size_t nlog, caplog, compacted; /* positions below compacted: 410 */
    unsigned page_size;
    unsigned cont_expire; /* continue requests still to answer 410 */
    size_t split;
    unsigned cut[DD_KUBE_KINDS];
    unsigned end_gen[DD_KUBE_KINDS];
    char *token;
    struct tt_kubeapi_stats stats;
    json_t *requests; /* "VERB PATH" -> {"verb", "method", "path", "count"} */
    /* coordination.k8s.io/v1 Leases: "ns/name" -> object; versions of
     * their own ("lease.<n>"), opaque like the others */
    json_t *leases;
    unsigned long lease_seq;
    unsigned lease_conflicts_due; /* lease PUTs still to answer 409 */
    /* storage.k8s.io/v1 CSIStorageCapacities: "ns/name" -> object, versions
     * of their own ("csc.<n>"); writes recorded in order */
    json_t *cscs;
    unsigned long csc_seq, csc_names;
    unsigned csc_conflicts_due;
    json_t *csc_writes; /* [{"op", "name", "object"}] */
    /* other objects served on GET at their exact path (tt_kubeapi_set_object) */
    json_t *objects;
    /* core v1 Events created, in order */
    json_t *events;
};

/* A request's state between libmicrohttpd's calls: the body so far. */
struct conn {
    char *body;
    size_t len;
};

#define MAX_BODY (1u << 20)

/* "rv.<pos>.q": opaque to clients, parsed only here. */
static void rv_str(size_t pos, char *buf, size_t len)
{
    snprintf(buf, len, "rv.%zu.q", pos);
}

static bool rv_parse(const char *s, size_t *ret)
{
    char *end;
    unsigned long long v;
    if (strncmp(s, "rv.", 3) != 0 || s[3] < '0' || s[3] > '9')
        return false;
    errno = 0;
    v = strtoull(s + 3, &end, 10);
    if (errno || strcmp(end, ".q") != 0)
        return false;
    *ret = (size_t)v;
    return true;
}

static int log_add(struct tt_kubeapi *s, enum dd_kube_kind kind, enum ev_type type, json_t *obj)
{
    json_t *ev = json_pack("{s:s, s:O}", "type", ev_names[type], "object", obj);
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!text)
        return -ENOMEM;
    if (s->nlog == s->caplog) {
        size_t cap = s->caplog ? s->caplog * 2 : 256;
        struct logent *l = realloc(s->log, cap * sizeof(*l));
        if (!l) {
            free(text);
            return -ENOMEM;
        }
        s->log = l;
        s->caplog = cap;
    }
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (!line) {
        free(text);
        return -ENOMEM;
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    s->log[s->nlog] = (struct logent){kind, type, line, len + 1, ""};
    const char *node = json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
    snprintf(s->log[s->nlog].node, sizeof(s->log[s->nlog].node), "%s", node ? node : "");
    s->nlog++;
    pthread_cond_broadcast(&s->changed);
    return 0;
}

/* The key of an object: "ns/name" or "name"; false when it lacks them. */
static bool obj_key(enum dd_kube_kind kind, const json_t *obj, char *buf, size_t len)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    bool namespaced = kind == DD_KUBE_POD || kind == DD_KUBE_PVC;
    if (!name || !name[0] || (namespaced && (!ns || !ns[0])))
        return false;
    if (namespaced)
        snprintf(buf, len, "%s/%s", ns, name);
    else
        snprintf(buf, len, "%s", name);
    return true;
}

static void set_rv(json_t *obj, size_t pos)
{
    char rv[32];
    rv_str(pos, rv, sizeof(rv));
    json_object_set_new(json_object_get(obj, "metadata"), "resourceVersion", json_string(rv));
}

static int put(struct tt_kubeapi *s, enum dd_kube_kind kind, const json_t *in, bool event)
{
    char key[600];
    struct store *st;
    json_t *obj, *slot;
    enum ev_type type = E_ADDED;
    int r = 0;

    if ((unsigned)kind >= DD_KUBE_KINDS || !json_is_object(in) ||
        !obj_key(kind, in, key, sizeof(key)))
        return -EINVAL;
    obj = json_deep_copy(in);
    if (!obj)
        return -ENOMEM;
    json_object_set_new(obj, "kind", json_string(obj_kinds[kind]));
    json_object_set_new(obj, "apiVersion", json_string(api_versions[kind]));
    pthread_mutex_lock(&s->lock);
    st = &s->st[kind];
    set_rv(obj, s->nlog + (event ? 1 : 0));
    slot = json_object_get(st->index, key);
    if (slot) {
        size_t i = (size_t)json_integer_value(slot);
        json_decref(st->objs[i]);
        st->objs[i] = obj;
        type = E_MODIFIED;
    } else {
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 64;
            json_t **o = realloc(st->objs, cap * sizeof(*o));
            if (!o) {
                json_decref(obj);
                pthread_mutex_unlock(&s->lock);
                return -ENOMEM;
            }
            st->objs = o;
            st->cap = cap;
        }
        st->objs[st->n] = obj;
        json_object_set_new(st->index, key, json_integer((json_int_t)st->n));
        st->n++;
    }
    if (event)
        r = log_add(s, kind, type, obj);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int tt_kubeapi_put(struct tt_kubeapi *s, enum dd_kube_kind kind, const json_t *obj)
{
    return put(s, kind, obj, true);
}

int tt_kubeapi_load(struct tt_kubeapi *s, enum dd_kube_kind kind, const json_t *obj)
{
    return put(s, kind, obj, false);
}

int tt_kubeapi_delete(struct tt_kubeapi *s, enum dd_kube_kind kind, const char *ns,
                      const char *name)
{
    char key[600];
    json_t *slot, *obj;
    int r;
    if (ns)
        snprintf(key, sizeof(key), "%s/%s", ns, name);
    else
        snprintf(key, sizeof(key), "%s", name);
    pthread_mutex_lock(&s->lock);
    slot = json_object_get(s->st[kind].index, key);
    if (!slot) {
        pthread_mutex_unlock(&s->lock);
        return -ENOENT;
    }
    obj = s->st[kind].objs[json_integer_value(slot)];
    s->st[kind].objs[json_integer_value(slot)] = NULL;
    json_object_del(s->st[kind].index, key);
    set_rv(obj, s->nlog + 1);
    r = log_add(s, kind, E_DELETED, obj);
    json_decref(obj);
    pthread_mutex_unlock(&s->lock);
    return r;
}

void tt_kubeapi_rv(struct tt_kubeapi *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->lock);
    rv_str(s->nlog, buf, len);
    pthread_mutex_unlock(&s->lock);
}

/* ---- faults ---- */

void tt_kubeapi_set_page_size(struct tt_kubeapi *s, unsigned n)
{
    pthread_mutex_lock(&s->lock);
    s->page_size = n;
    pthread_mutex_unlock(&s->lock);
}

void tt_kubeapi_expire_continue(struct tt_kubeapi *s)
{
    pthread_mutex_lock(&s->lock);
    s->cont_expire++;
    pthread_mutex_unlock(&s->lock);
}

void tt_kubeapi_set_split(struct tt_kubeapi *s, size_t n)
{
    pthread_mutex_lock(&s->lock);
    s->split = n;
    pthread_mutex_unlock(&s->lock);
}

void tt_kubeapi_cut_next_event(struct tt_kubeapi *s, enum dd_kube_kind kind)
{
    pthread_mutex_lock(&s->lock);
    s->cut[kind]++;
    pthread_mutex_unlock(&s->lock);
}

void tt_kubeapi_bookmark(struct tt_kubeapi *s, enum dd_kube_kind kind)
{
    char rv[32];
    pthread_mutex_lock(&s->lock);
    rv_str(s->nlog + 1, rv, sizeof(rv));
    json_t *o = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}}", "kind", obj_kinds[kind], "apiVersion",
                          api_versions[kind], "metadata", "resourceVersion", rv, "annotations",
                          "k8s.io/initial-events-end", "true");
    log_add(s, kind, E_BOOKMARK, o);
    json_decref(o);
    pthread_mutex_unlock(&s->lock);
}

static json_t *status(int code, const char *reason, const char *message)
{
    return json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
                     "metadata", "status", "Failure", "message", message, "reason", reason, "code",
                     code);
}

void tt_kubeapi_error_410(struct tt_kubeapi *s, enum dd_kube_kind kind)
{
    json_t *o = status(410, "Expired", "too old resource version: 1 (2)");
    pthread_mutex_lock(&s->lock);
    log_add(s, kind, E_ERROR, o);
    pthread_mutex_unlock(&s->lock);
    json_decref(o);
}

void tt_kubeapi_compact(struct tt_kubeapi *s)
{
    pthread_mutex_lock(&s->lock);
    s->compacted = s->nlog;
    pthread_mutex_unlock(&s->lock);
}

void tt_kubeapi_end_watches(struct tt_kubeapi *s, enum dd_kube_kind kind)
{
    pthread_mutex_lock(&s->lock);
    s->end_gen[kind]++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

void tt_kubeapi_set_token(struct tt_kubeapi *s, const char *token)
{
    pthread_mutex_lock(&s->lock);
    free(s->token);
    s->token = token ? strdup(token) : NULL;
    pthread_mutex_unlock(&s->lock);
}

void tt_kubeapi_stats(struct tt_kubeapi *s, struct tt_kubeapi_stats *ret)
{
    pthread_mutex_lock(&s->lock);
    *ret = s->stats;
    pthread_mutex_unlock(&s->lock);
}

/* True when an API path names a collection (/api/v1/pods,
 * /apis/G/V/namespaces/NS/leases), false for one object or its
 * subresource (/api/v1/namespaces/NS/pods/NAME[/status]). */
static bool kind_of_path_is_collection(const char *url)
{
    const char *p;
    size_t skip, n = 0;

    if (strncmp(url, "/api/", 5) == 0)
        skip = 2;
    else if (strncmp(url, "/apis/", 6) == 0)
        skip = 3;
    else
        return false;
    /* segments after the group and version */
    const char *segs[8];
    p = url;
    while (*p && n < DD_ARRAY_SIZE(segs)) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        segs[n++] = p;
        p += strcspn(p, "/");
    }
    if (n <= skip)
        return false;
    size_t rest = n - skip;
    if (rest >= 3 && strncmp(segs[skip], "namespaces/", 11) == 0)
        rest -= 2;
    return rest == 1;
}

json_t *tt_kubeapi_requests(struct tt_kubeapi *s)
{
    json_t *arr = json_array(), *v;
    const char *key;

    pthread_mutex_lock(&s->lock);
    json_object_foreach(s->requests, key, v)
    {
        json_array_append_new(arr, json_deep_copy(v));
    }
    pthread_mutex_unlock(&s->lock);
    return arr;
}

/* The Kubernetes verb of a request, as RBAC names it (a GET of a
 * collection is list, of a named object get; watch=1 makes it watch). */
static const char *request_verb(struct MHD_Connection *c, const char *method, const char *url)
{
    const char *watch = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "watch");
    bool collection = kind_of_path_is_collection(url);

    if (strcmp(method, "GET") == 0) {
        if (watch && (strcmp(watch, "1") == 0 || strcmp(watch, "true") == 0))
            return "watch";
        return collection ? "list" : "get";
    }
    if (strcmp(method, "POST") == 0)
        return "create";
    if (strcmp(method, "PUT") == 0)
        return "update";
    if (strcmp(method, "PATCH") == 0)
        return "patch";
    if (strcmp(method, "DELETE") == 0)
        return collection ? "deletecollection" : "delete";
    return method;
}

/* Records a request (under the lock), whatever is answered. */
static void record_request(struct tt_kubeapi *s, struct MHD_Connection *c, const char *method,
                           const char *url)
{
    const char *verb = request_verb(c, method, url);
    char key[1024];
    json_t *e;

    snprintf(key, sizeof(key), "%s %s", verb, url);
    e = json_object_get(s->requests, key);
    if (e) {
        json_object_set_new(e, "count",
                            json_integer(json_integer_value(json_object_get(e, "count")) + 1));
        return;
    }
    json_object_set_new(
        s->requests, key,
        json_pack("{s:s, s:s, s:s, s:i}", "verb", verb, "method", method, "path", url, "count", 1));
}

/* ---- HTTP ---- */

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned code, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static int kind_of(const char *url)
{
    for (int k = 0; k < DD_KUBE_KINDS; k++)
        if (strcmp(url, dd_kube_kind_path((enum dd_kube_kind)k)) == 0)
            return k;
    return -1;
}

static const char *list_kinds[DD_KUBE_KINDS] = {"PodList",
                                                "PersistentVolumeClaimList",
                                                "PersistentVolumeList",
                                                "StorageClassList",
                                                "NodeList",
                                                "NamespaceList"};

/* fieldSelector: only "spec.nodeName=NODE" on pods is served (what the
 * node role asks); *sel is NODE, or NULL without a selector. false: a
 * selector this server does not know (400, as the API server answers a
 * field label it does not support). */
static bool field_selector(struct MHD_Connection *c, int kind, const char **sel)
{
    const char *fs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fieldSelector");
    *sel = NULL;
    if (!fs || !fs[0])
        return true;
    if (kind != DD_KUBE_POD || strncmp(fs, "spec.nodeName=", 14) != 0)
        return false;
    *sel = fs + 14;
    return true;
}

static bool selected(const char *sel, const json_t *obj)
{
    const char *node;
    if (!sel)
        return true;
    node = json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
    return strcmp(node ? node : "", sel) == 0;
}

/* A continue token: "ct.<epoch>.<kind>.<offset>.<rv pos>" */
static enum MHD_Result serve_list(struct tt_kubeapi *s, struct MHD_Connection *c, int kind)
{
    const char *limit_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    const char *cont = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "continue");
    size_t offset = 0, rvpos, limit = SIZE_MAX;
    unsigned epoch = 0;
    int k2 = -1;
    char rv[32];
    const char *sel;

    if (!field_selector(c, kind, &sel))
        return reply_json(c, 400, status(400, "BadRequest", "field label not supported"));

    if (limit_s && limit_s[0]) {
        char *end;
        unsigned long long l = strtoull(limit_s, &end, 10);
        if (*end || l == 0)
            return reply_json(c, 400, status(400, "BadRequest", "bad limit"));
        limit = (size_t)l;
    }
    pthread_mutex_lock(&s->lock);
    rvpos = s->nlog;
    if (cont && cont[0]) {
        if (sscanf(cont, "ct.%u.%d.%zu.%zu", &epoch, &k2, &offset, &rvpos) != 4 || k2 != kind ||
            epoch != 7) {
            pthread_mutex_unlock(&s->lock);
            return reply_json(c, 400, status(400, "BadRequest", "bad continue token"));
        }
        if (s->cont_expire) {
            s->cont_expire--;
            s->stats.gone++;
            pthread_mutex_unlock(&s->lock);
            return reply_json(
                c, 410,
                status(410, "Expired",
                       "The provided continue parameter is too old to display a consistent list "
                       "result. You can start a new list without the continue parameter."));
        }
    } else {
        s->stats.lists[kind]++;
    }
    s->stats.pages[kind]++;
    if (s->page_size && s->page_size < limit)
        limit = s->page_size;
    struct store *st = &s->st[kind];
    json_t *items = json_array();
    size_t i = offset, taken = 0;
    for (; i < st->n && taken < limit; i++) {
        if (!st->objs[i] || !selected(sel, st->objs[i]))
            continue;
        json_t *it = json_copy(st->objs[i]); /* shallow: only the top keys change */
        json_object_del(it, "kind");
        json_object_del(it, "apiVersion");
        json_array_append_new(items, it);
        taken++;
    }
    while (i < st->n && !st->objs[i])
        i++;
    rv_str(rvpos, rv, sizeof(rv));
    json_t *md = json_pack("{s:s}", "resourceVersion", rv);
    if (i < st->n) {
        char tok[96];
        snprintf(tok, sizeof(tok), "ct.%u.%d.%zu.%zu", 7u, kind, i, rvpos);
        json_object_set_new(md, "continue", json_string(tok));
    }
    json_t *doc = json_pack("{s:s, s:s, s:o, s:o}", "kind", list_kinds[kind], "apiVersion",
                            api_versions[kind], "metadata", md, "items", items);
    /* serialise under the lock: the items share objects with the store */
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    pthread_mutex_unlock(&s->lock);
    if (!text)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

struct watch {
    struct tt_kubeapi *s;
    int fd; /* the connection's socket: a client gone is seen while idle */
    int kind;
    char node_sel[256]; /* fieldSelector spec.nodeName */
    bool has_sel;
    size_t pos; /* next log entry to look at */
    unsigned end_gen;
    bool bookmarks, end_after, cut_close;
    uint64_t deadline_ms;
    const char *pending; /* a log line being written */
    size_t plen, poff, cut_at;
};

static uint64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* The client closed its end (a watch writes nothing while idle, so
 * libmicrohttpd would not notice). */
static bool peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    char c;
    if (fd < 0 || poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return true;
    return (p.revents & POLLIN) && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static ssize_t watch_read(void *cls, uint64_t off, char *buf, size_t max)
{
    struct watch *w = cls;
    struct tt_kubeapi *s = w->s;
    ssize_t ret;
    (void)off;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (w->pending) {
            size_t n = w->plen - w->poff;
            if (w->cut_at && w->poff >= w->cut_at) {
                ret = MHD_CONTENT_READER_END_WITH_ERROR;
                break;
            }
            if (w->cut_at)
                n = DD_MIN(n, w->cut_at - w->poff);
            if (s->split)
                n = DD_MIN(n, s->split);
            n = DD_MIN(n, max);
            memcpy(buf, w->pending + w->poff, n);
            w->poff += n;
            if (w->poff == w->plen)
                w->pending = NULL;
            ret = (ssize_t)n;
            break;
        }
        if (s->stopping || w->end_after || w->end_gen != s->end_gen[w->kind] ||
            mono_ms() >= w->deadline_ms) {
            ret = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        bool found = false;
        while (w->pos < s->nlog) {
            struct logent *e = &s->log[w->pos++];
            if ((int)e->kind != w->kind || !e->line || (e->type == E_BOOKMARK && !w->bookmarks))
                continue;
            if (w->has_sel &&
                (e->type == E_ADDED || e->type == E_MODIFIED || e->type == E_DELETED) &&
                strcmp(e->node, w->node_sel) != 0)
                continue;
            w->pending = e->line;
            w->plen = e->len;
            w->poff = 0;
            w->cut_at = 0;
            if (e->type == E_ERROR)
                w->end_after = true;
            else if (e->type != E_BOOKMARK && s->cut[w->kind]) {
                s->cut[w->kind]--;
                w->cut_at = e->len / 2;
            }
            found = true;
            break;
        }
        if (found)
            continue;
        if (peer_gone(w->fd)) {
            ret = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->changed, &s->lock, &until);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}

static void watch_free(void *cls)
{
    struct watch *w = cls;
    pthread_mutex_lock(&w->s->lock);
    w->s->stats.open_watches[w->kind]--;
    pthread_mutex_unlock(&w->s->lock);
    free(w);
}

static enum MHD_Result serve_watch(struct tt_kubeapi *s, struct MHD_Connection *c, int kind)
{
    const char *rv = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "resourceVersion");
    const char *bm = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "allowWatchBookmarks");
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "timeoutSeconds");
    size_t pos;
    struct watch *w;
    const char *sel;

    if (!field_selector(c, kind, &sel))
        return reply_json(c, 400, status(400, "BadRequest", "field label not supported"));
    pthread_mutex_lock(&s->lock);
    if (!rv || !rv[0]) {
        pos = s->nlog;
    } else if (!rv_parse(rv, &pos) || pos < s->compacted || pos > s->nlog) {
        char msg[256];
        size_t nlog = s->nlog; /* read under the lock (TSan) */
        s->stats.gone++;
        pthread_mutex_unlock(&s->lock);
        snprintf(msg, sizeof(msg), "too old resource version: %.100s (%zu)", rv, nlog);
        return reply_json(c, 410, status(410, "Expired", msg));
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        pthread_mutex_unlock(&s->lock);
        return MHD_NO;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    w->fd = ci ? ci->connect_fd : -1;
    w->s = s;
    w->kind = kind;
    if (sel) {
        w->has_sel = true;
        snprintf(w->node_sel, sizeof(w->node_sel), "%s", sel);
    }
    w->pos = pos;
    w->end_gen = s->end_gen[kind];
    w->bookmarks = bm && strcmp(bm, "true") == 0;
    w->deadline_ms = mono_ms() + (to && atoll(to) > 0 ? (uint64_t)atoll(to) * 1000u : 1800000u);
    s->stats.watches[kind]++;
    s->stats.open_watches[kind]++;
    if (w->bookmarks)
        s->stats.bookmarks_asked++;
    pthread_mutex_unlock(&s->lock);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, watch_read, w, watch_free);
    if (!r) {
        watch_free(w);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- Leases and pod patches ---- */

/* "/apis/coordination.k8s.io/v1/namespaces/NS/leases[/NAME]": NS and NAME
 * (name "" for the collection); false for any other path. */
static bool lease_path(const char *url, char *ns, size_t nslen, char *name, size_t namelen)
{
    static const char pre[] = "/apis/coordination.k8s.io/v1/namespaces/";
    const char *p = url + sizeof(pre) - 1, *slash;
    if (strncmp(url, pre, sizeof(pre) - 1) != 0 || !(slash = strchr(p, '/')) || slash == p ||
        (size_t)(slash - p) >= nslen || strncmp(slash, "/leases", 7) != 0)
        return false;
    snprintf(ns, nslen, "%.*s", (int)(slash - p), p);
    p = slash + 7;
    if (!*p) {
        name[0] = '\0';
        return true;
    }
    if (*p != '/' || !p[1] || strchr(p + 1, '/') || strlen(p + 1) >= namelen)
        return false;
    snprintf(name, namelen, "%s", p + 1);
    return true;
}

/* "/api/v1/namespaces/NS/pods/NAME" */
static bool pod_path(const char *url, char *key, size_t len)
{
    static const char pre[] = "/api/v1/namespaces/";
    const char *p = url + sizeof(pre) - 1, *slash;
    if (strncmp(url, pre, sizeof(pre) - 1) != 0 || !(slash = strchr(p, '/')) || slash == p ||
        strncmp(slash, "/pods/", 6) != 0 || !slash[6] || strchr(slash + 6, '/'))
        return false;
    snprintf(key, len, "%.*s/%s", (int)(slash - p), p, slash + 6);
    return true;
}

static json_t *conflict(const char *name)
{
    char msg[512];
    snprintf(msg, sizeof(msg),
             "Operation cannot be fulfilled on leases.coordination.k8s.io \"%.200s\": the "
             "object has been modified; please apply your changes to the latest version and try "
             "again",
             name);
    return status(409, "Conflict", msg);
}

/* Under the lock: a new version into obj, which goes into the store. */
static void lease_store(struct tt_kubeapi *s, const char *key, json_t *obj)
{
    char rv[48];
    snprintf(rv, sizeof(rv), "lease.%lu", ++s->lease_seq);
    json_object_set_new(json_object_get(obj, "metadata"), "resourceVersion", json_string(rv));
    json_object_set_new(obj, "kind", json_string("Lease"));
    json_object_set_new(obj, "apiVersion", json_string("coordination.k8s.io/v1"));
    json_object_set(s->leases, key, obj);
}

static enum MHD_Result serve_lease(struct tt_kubeapi *s, struct MHD_Connection *c,
                                   const char *method, const char *ns, const char *name,
                                   const struct conn *cn)
{
    char key[600];
    json_t *body = NULL, *cur, *out;
    unsigned code;

    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        json_error_t je;
        body = cn->body ? json_loadb(cn->body, cn->len, 0, &je) : NULL;
        if (!json_is_object(body) || !json_is_object(json_object_get(body, "metadata"))) {
            json_decref(body);
            return reply_json(c, 400, status(400, "BadRequest", "expected a Lease object"));
        }
    }
    pthread_mutex_lock(&s->lock);
    if (strcmp(method, "POST") == 0 && !name[0]) {
        const char *bn =
            json_string_value(json_object_get(json_object_get(body, "metadata"), "name"));
        snprintf(key, sizeof(key), "%s/%s", ns, bn ? bn : "");
        if (!bn || !bn[0]) {
            code = 422;
            out = status(422, "Invalid", "metadata.name: Required value");
        } else if (json_object_get(s->leases, key)) {
            code = 409;
            out = status(409, "AlreadyExists", "leases.coordination.k8s.io already exists");
        } else {
            json_object_set_new(json_object_get(body, "metadata"), "namespace", json_string(ns));
            json_object_set_new(json_object_get(body, "metadata"), "uid", json_string(key));
            lease_store(s, key, body);
            code = 201;
            out = json_deep_copy(body);
        }
    } else if (name[0] && strcmp(method, "GET") == 0) {
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        cur = json_object_get(s->leases, key);
        code = cur ? 200 : 404;
        out = cur ? json_deep_copy(cur) : status(404, "NotFound", "lease not found");
    } else if (name[0] && strcmp(method, "PUT") == 0) {
        const char *rv = json_string_value(
            json_object_get(json_object_get(body, "metadata"), "resourceVersion"));
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        cur = json_object_get(s->leases, key);
        const char *have = cur ? json_string_value(json_object_get(json_object_get(cur, "metadata"),
                                                                   "resourceVersion"))
                               : NULL;
        if (!cur) {
            code = 404;
            out = status(404, "NotFound", "lease not found");
        } else if (s->lease_conflicts_due || !rv || !have || strcmp(rv, have) != 0) {
            if (s->lease_conflicts_due)
                s->lease_conflicts_due--;
            s->stats.lease_conflicts++;
            code = 409;
            out = conflict(name);
        } else {
            json_object_set(json_object_get(body, "metadata"), "name",
                            json_object_get(json_object_get(cur, "metadata"), "name"));
            json_object_set_new(json_object_get(body, "metadata"), "namespace", json_string(ns));
            lease_store(s, key, body);
            s->stats.lease_updates++;
            code = 200;
            out = json_deep_copy(body);
        }
    } else {
        code = 405;
        out = status(405, "MethodNotAllowed", "not served for leases here");
    }
    pthread_mutex_unlock(&s->lock);
    json_decref(body);
    return reply_json(c, code, out);
}

/* RFC 7386 JSON merge patch of patch onto target (in place). */
static void merge_patch(json_t *target, json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v)
    {
        json_t *t = json_object_get(target, k);
        if (json_is_null(v))
            json_object_del(target, k);
        else if (json_is_object(v) && json_is_object(t))
            merge_patch(t, v);
        else if (json_is_object(v)) {
            json_t *n = json_object();
            merge_patch(n, v);
            json_object_set_new(target, k, n);
        } else
            json_object_set(target, k, v);
    }
}

static enum MHD_Result serve_pod(struct tt_kubeapi *s, struct MHD_Connection *c, const char *method,
                                 const char *key, const struct conn *cn)
{
    json_t *slot, *obj = NULL, *patch = NULL;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");

    if (strcmp(method, "PATCH") == 0) {
        if (!ct || strncmp(ct, "application/merge-patch+json", 28) != 0)
            return reply_json(c, 415,
                              status(415, "UnsupportedMediaType",
                                     "the body of the request was in an unknown format"));
        patch = cn->body ? json_loadb(cn->body, cn->len, 0, NULL) : NULL;
        if (!json_is_object(patch)) {
            json_decref(patch);
            return reply_json(c, 400, status(400, "BadRequest", "expected a JSON merge patch"));
        }
    } else if (strcmp(method, "GET") != 0) {
        return reply_json(c, 405, status(405, "MethodNotAllowed", "GET and PATCH only"));
    }
    pthread_mutex_lock(&s->lock);
    slot = json_object_get(s->st[DD_KUBE_POD].index, key);
    if (slot)
        obj = json_deep_copy(s->st[DD_KUBE_POD].objs[json_integer_value(slot)]);
    if (patch && obj)
        s->stats.pod_patches++;
    pthread_mutex_unlock(&s->lock);
    if (!obj) {
        json_decref(patch);
        return reply_json(c, 404, status(404, "NotFound", "pod not found"));
    }
    if (patch) {
        merge_patch(obj, patch);
        json_decref(patch);
        if (put(s, DD_KUBE_POD, obj, true) < 0) {
            json_decref(obj);
            return reply_json(c, 422, status(422, "Invalid", "the patched pod is not valid"));
        }
        json_decref(obj);
        pthread_mutex_lock(&s->lock);
        obj = json_deep_copy(
            s->st[DD_KUBE_POD]
                .objs[json_integer_value(json_object_get(s->st[DD_KUBE_POD].index, key))]);
        pthread_mutex_unlock(&s->lock);
    }
    return reply_json(c, 200, obj);
}

json_t *tt_kubeapi_lease(struct tt_kubeapi *s, const char *ns, const char *name)
{
    char key[600];
    json_t *o;
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&s->lock);
    o = json_object_get(s->leases, key);
    o = o ? json_deep_copy(o) : NULL;
    pthread_mutex_unlock(&s->lock);
    return o;
}

json_t *tt_kubeapi_get(struct tt_kubeapi *s, enum dd_kube_kind kind, const char *ns,
                       const char *name)
{
    char key[600];
    json_t *slot, *o = NULL;
    if (ns)
        snprintf(key, sizeof(key), "%s/%s", ns, name);
    else
        snprintf(key, sizeof(key), "%s", name);
    pthread_mutex_lock(&s->lock);
    slot = json_object_get(s->st[kind].index, key);
    if (slot)
        o = json_deep_copy(s->st[kind].objs[json_integer_value(slot)]);
    pthread_mutex_unlock(&s->lock);
    return o;
}

void tt_kubeapi_lease_conflicts(struct tt_kubeapi *s, unsigned n)
{
    pthread_mutex_lock(&s->lock);
    s->lease_conflicts_due += n;
    pthread_mutex_unlock(&s->lock);
}

/* ---- CSIStorageCapacities ---- */

/* "/apis/storage.k8s.io/v1/namespaces/NS/csistoragecapacities[/NAME]" */
static bool csc_path(const char *url, char *ns, size_t nslen, char *name, size_t namelen)
{
    static const char pre[] = "/apis/storage.k8s.io/v1/namespaces/",
                      coll[] = "/csistoragecapacities";
    const char *p = url + sizeof(pre) - 1, *slash;
    if (strncmp(url, pre, sizeof(pre) - 1) != 0 || !(slash = strchr(p, '/')) || slash == p ||
        (size_t)(slash - p) >= nslen || strncmp(slash, coll, sizeof(coll) - 1) != 0)
        return false;
    snprintf(ns, nslen, "%.*s", (int)(slash - p), p);
    p = slash + sizeof(coll) - 1;
    if (!*p) {
        name[0] = '\0';
        return true;
    }
    if (*p != '/' || !p[1] || strchr(p + 1, '/') || strlen(p + 1) >= namelen)
        return false;
    snprintf(name, namelen, "%s", p + 1);
    return true;
}

/* Does obj's metadata.labels hold every k=v of the selector (equality
 * terms "k=v" or "k==v", comma-separated; "" selects all)? */
static bool selects(const json_t *obj, const char *sel)
{
    const json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
    char term[512];
    while (sel && *sel) {
        size_t n = strcspn(sel, ",");
        snprintf(term, sizeof(term), "%.*s", (int)n, sel);
        sel += n + (sel[n] == ',');
        char *eq = strchr(term, '=');
        if (!eq)
            return false; /* only equality terms are served here */
        *eq = '\0';
        const char *want = eq[1] == '=' ? eq + 2 : eq + 1;
        const char *have = json_string_value(json_object_get(labels, term));
        if (!have || strcmp(have, want) != 0)
            return false;
    }
    return true;
}

/* Under the lock: a new version into obj, which goes into the store. */
static void csc_store(struct tt_kubeapi *s, const char *key, json_t *obj, const char *op)
{
    char rv[48];
    snprintf(rv, sizeof(rv), "csc.%lu", ++s->csc_seq);
    json_object_set_new(json_object_get(obj, "metadata"), "resourceVersion", json_string(rv));
    json_object_set_new(obj, "kind", json_string("CSIStorageCapacity"));
    json_object_set_new(obj, "apiVersion", json_string("storage.k8s.io/v1"));
    json_object_set(s->cscs, key, obj);
    if (op)
        json_array_append_new(
            s->csc_writes,
            json_pack("{s:s, s:s, s:O}", "op", op, "name",
                      json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")),
                      "object", obj));
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of ns's objects, sorted (the caller frees the array). */
static const char **csc_keys(struct tt_kubeapi *s, const char *ns, size_t *ret_n)
{
    size_t n = 0, len = strlen(ns);
    const char **keys = calloc(json_object_size(s->cscs) + 1, sizeof(*keys));
    const char *k;
    json_t *v;
    if (!keys)
        return NULL;
    json_object_foreach(s->cscs, k, v)
    {
        if (strncmp(k, ns, len) == 0 && k[len] == '/')
            keys[n++] = k;
    }
    qsort(keys, n, sizeof(*keys), str_cmp);
    *ret_n = n;
    return keys;
}

static enum MHD_Result serve_csc(struct tt_kubeapi *s, struct MHD_Connection *c, const char *method,
                                 const char *ns, const char *name, const struct conn *cn)
{
    char key[600];
    json_t *body = NULL, *cur, *out;
    unsigned code;

    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        json_error_t je;
        body = cn->body ? json_loadb(cn->body, cn->len, 0, &je) : NULL;
        if (!json_is_object(body) || !json_is_object(json_object_get(body, "metadata"))) {
            json_decref(body);
            return reply_json(c, 400,
                              status(400, "BadRequest", "expected a CSIStorageCapacity object"));
        }
        if (!json_is_string(json_object_get(body, "storageClassName"))) {
            json_decref(body);
            return reply_json(c, 422, status(422, "Invalid", "storageClassName: Required value"));
        }
    }
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&s->lock);
    if (strcmp(method, "GET") == 0 && !name[0]) {
        const char *sel = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "labelSelector");
        const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
        const char *cont = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "continue");
        size_t n = 0, from = 0, limit = lim ? strtoul(lim, NULL, 10) : 0, i;
        const char **keys = csc_keys(s, ns, &n);
        json_t *items = json_array();
        char rv[48], next[64] = "";
        if (cont &&
            (strncmp(cont, "csc-cont.", 9) != 0 || (from = strtoul(cont + 9, NULL, 10)) > n)) {
            free(keys);
            json_decref(items);
            pthread_mutex_unlock(&s->lock);
            return reply_json(c, 410, status(410, "Expired", "the continue token is invalid"));
        }
        for (i = from; keys && i < n && (!limit || json_array_size(items) < limit); i++) {
            json_t *o = json_object_get(s->cscs, keys[i]);
            if (!selects(o, sel))
                continue;
            json_t *copy = json_deep_copy(o);
            json_object_del(copy, "kind");
            json_object_del(copy, "apiVersion");
            json_array_append_new(items, copy);
        }
        if (i < n)
            snprintf(next, sizeof(next), "csc-cont.%zu", i);
        free(keys);
        snprintf(rv, sizeof(rv), "csc.%lu", s->csc_seq);
        out = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "kind", "CSIStorageCapacityList",
                        "apiVersion", "storage.k8s.io/v1", "metadata", "resourceVersion", rv,
                        "continue", next, "items", items);
        if (!next[0])
            json_object_del(json_object_get(out, "metadata"), "continue");
        code = 200;
    } else if (strcmp(method, "POST") == 0 && !name[0]) {
        json_t *md = json_object_get(body, "metadata");
        const char *bn = json_string_value(json_object_get(md, "name"));
        const char *gn = json_string_value(json_object_get(md, "generateName"));
        char gen[300];
        if ((!bn || !bn[0]) && gn && gn[0]) {
            snprintf(gen, sizeof(gen), "%.250s%05lu", gn, ++s->csc_names);
            json_object_set_new(md, "name", json_string(gen));
            bn = json_string_value(json_object_get(md, "name"));
        }
        snprintf(key, sizeof(key), "%s/%s", ns, bn ? bn : "");
        if (!bn || !bn[0]) {
            code = 422;
            out = status(422, "Invalid", "metadata.name: Required value");
        } else if (json_object_get(s->cscs, key)) {
            code = 409;
            out =
                status(409, "AlreadyExists", "csistoragecapacities.storage.k8s.io already exists");
        } else {
            json_object_set_new(md, "namespace", json_string(ns));
            json_object_set_new(md, "uid", json_string(key));
            json_object_del(md, "resourceVersion");
            csc_store(s, key, body, "create");
            s->stats.csc_creates++;
            code = 201;
            out = json_deep_copy(body);
        }
    } else if (name[0] && strcmp(method, "GET") == 0) {
        cur = json_object_get(s->cscs, key);
        code = cur ? 200 : 404;
        out = cur ? json_deep_copy(cur)
                  : status(404, "NotFound", "csistoragecapacities.storage.k8s.io not found");
    } else if (name[0] && strcmp(method, "PUT") == 0) {
        json_t *md = json_object_get(body, "metadata");
        const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
        cur = json_object_get(s->cscs, key);
        const char *have = cur ? json_string_value(json_object_get(json_object_get(cur, "metadata"),
                                                                   "resourceVersion"))
                               : NULL;
        if (!cur) {
            code = 404;
            out = status(404, "NotFound", "csistoragecapacities.storage.k8s.io not found");
        } else if (s->csc_conflicts_due || !rv || !have || strcmp(rv, have) != 0) {
            if (s->csc_conflicts_due)
                s->csc_conflicts_due--;
            s->stats.csc_conflicts++;
            code = 409;
            out = status(409, "Conflict",
                         "Operation cannot be fulfilled on csistoragecapacities.storage.k8s.io: "
                         "the object has been modified; please apply your changes to the latest "
                         "version and try again");
        } else {
            json_object_set_new(md, "name", json_string(name));
            json_object_set_new(md, "namespace", json_string(ns));
            json_object_set(md, "uid", json_object_get(json_object_get(cur, "metadata"), "uid"));
            csc_store(s, key, body, "update");
            s->stats.csc_updates++;
            code = 200;
            out = json_deep_copy(body);
        }
    } else if (name[0] && strcmp(method, "DELETE") == 0) {
        cur = json_object_get(s->cscs, key);
        if (!cur) {
            code = 404;
            out = status(404, "NotFound", "csistoragecapacities.storage.k8s.io not found");
        } else {
            json_array_append_new(s->csc_writes, json_pack("{s:s, s:s, s:O}", "op", "delete",
                                                           "name", name, "object", cur));
            out = json_deep_copy(cur);
            json_object_del(s->cscs, key);
            s->stats.csc_deletes++;
            code = 200;
        }
    } else {
        code = 405;
        out = status(405, "MethodNotAllowed", "not served for csistoragecapacities here");
    }
    pthread_mutex_unlock(&s->lock);
    json_decref(body);
    return reply_json(c, code, out);
}

void tt_kubeapi_csc_conflicts(struct tt_kubeapi *s, unsigned n)
{
    pthread_mutex_lock(&s->lock);
    s->csc_conflicts_due += n;
    pthread_mutex_unlock(&s->lock);
}

json_t *tt_kubeapi_cscs(struct tt_kubeapi *s, const char *ns)
{
    size_t n = 0;
    json_t *arr = json_array();
    pthread_mutex_lock(&s->lock);
    const char **keys = csc_keys(s, ns, &n);
    for (size_t i = 0; keys && i < n; i++)
        json_array_append_new(arr, json_deep_copy(json_object_get(s->cscs, keys[i])));
    free(keys);
    pthread_mutex_unlock(&s->lock);
    return arr;
}

int tt_kubeapi_csc_put(struct tt_kubeapi *s, const json_t *obj)
{
    json_t *o = json_deep_copy(obj), *md = json_object_get(o, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    char key[600];
    if (!ns || !name) {
        json_decref(o);
        return -EINVAL;
    }
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    pthread_mutex_lock(&s->lock);
    if (!json_object_get(md, "uid"))
        json_object_set_new(md, "uid", json_string(key));
    csc_store(s, key, o, NULL);
    pthread_mutex_unlock(&s->lock);
    json_decref(o);
    return 0;
}

json_t *tt_kubeapi_csc_writes(struct tt_kubeapi *s)
{
    json_t *w;
    pthread_mutex_lock(&s->lock);
    w = json_deep_copy(s->csc_writes);
    pthread_mutex_unlock(&s->lock);
    return w;
}

void tt_kubeapi_set_object(struct tt_kubeapi *s, const char *path, const json_t *obj)
{
    pthread_mutex_lock(&s->lock);
    json_object_set_new(s->objects, path, json_deep_copy(obj));
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result serve_object(struct tt_kubeapi *s, struct MHD_Connection *c,
                                    const char *method, json_t *obj)
{
    (void)s;
    if (strcmp(method, "GET") != 0) {
        json_decref(obj);
        return reply_json(c, 405, status(405, "MethodNotAllowed", "GET only"));
    }
    return reply_json(c, 200, obj);
}

/* ---- core v1 Events ---- */

/* "/api/v1/namespaces/NS/events" (the collection only) */
static bool events_path(const char *url, char *ns, size_t nslen)
{
    static const char pre[] = "/api/v1/namespaces/";
    const char *p = url + sizeof(pre) - 1, *slash;
    if (strncmp(url, pre, sizeof(pre) - 1) != 0 || !(slash = strchr(p, '/')) || slash == p ||
        (size_t)(slash - p) >= nslen || strcmp(slash, "/events") != 0)
        return false;
    snprintf(ns, nslen, "%.*s", (int)(slash - p), p);
    return true;
}

static enum MHD_Result serve_events(struct tt_kubeapi *s, struct MHD_Connection *c,
                                    const char *method, const char *ns, const struct conn *cn)
{
    json_t *body, *md, *inv;
    const char *name, *bns;
    if (strcmp(method, "GET") == 0) {
        json_t *items = json_array(), *e;
        size_t i;
        pthread_mutex_lock(&s->lock);
        json_array_foreach(s->events, i, e)
        {
            if (strcmp(
                    json_string_value(json_object_get(json_object_get(e, "metadata"), "namespace")),
                    ns) == 0)
                json_array_append_new(items, json_deep_copy(e));
        }
        pthread_mutex_unlock(&s->lock);
        return reply_json(c, 200,
                          json_pack("{s:s, s:s, s:{}, s:o}", "kind", "EventList", "apiVersion",
                                    "v1", "metadata", "items", items));
    }
    if (strcmp(method, "POST") != 0)
        return reply_json(c, 405, status(405, "MethodNotAllowed", "GET and POST only"));
    body = cn->body ? json_loadb(cn->body, cn->len, 0, NULL) : NULL;
    md = json_object_get(body, "metadata");
    inv = json_object_get(body, "involvedObject");
    name = json_string_value(json_object_get(md, "name"));
    bns = json_string_value(json_object_get(md, "namespace"));
    const char *ins = json_string_value(json_object_get(inv, "namespace"));
    if (!json_is_object(body) || !name || !name[0] || !json_is_object(inv) ||
        (bns && strcmp(bns, ns) != 0) || !ins || strcmp(ins, ns) != 0) {
        json_decref(body);
        return reply_json(c, 422,
                          status(422, "Invalid",
                                 "expected an Event with metadata.name and an involvedObject in "
                                 "the request's namespace"));
    }
    json_object_set_new(md, "namespace", json_string(ns));
    pthread_mutex_lock(&s->lock);
    size_t i;
    json_t *e;
    json_array_foreach(s->events, i, e)
    {
        const json_t *m = json_object_get(e, "metadata");
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0 &&
            strcmp(json_string_value(json_object_get(m, "namespace")), ns) == 0) {
            pthread_mutex_unlock(&s->lock);
            json_decref(body);
            return reply_json(c, 409, status(409, "AlreadyExists", "events already exists"));
        }
    }
    json_array_append(s->events, body);
    pthread_mutex_unlock(&s->lock);
    return reply_json(c, 201, body);
}

json_t *tt_kubeapi_events(struct tt_kubeapi *s)
{
    json_t *e;
    pthread_mutex_lock(&s->lock);
    e = json_deep_copy(s->events);
    pthread_mutex_unlock(&s->lock);
    return e;
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct conn *cn = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (cn) {
        free(cn->body);
        free(cn);
        *con_cls = NULL;
    }
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct tt_kubeapi *s = cls;
    struct conn *cn = *con_cls;
    char ns[256], name[256], key[600];
    (void)version;
    if (!cn) { /* first call: headers only */
        if (!(cn = calloc(1, sizeof(*cn))))
            return MHD_NO;
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cn->len + *upload_size <= MAX_BODY) {
            char *b = realloc(cn->body, cn->len + *upload_size + 1);
            if (!b)
                return MHD_NO;
            memcpy(b + cn->len, upload, *upload_size);
            cn->len += *upload_size;
            b[cn->len] = '\0';
            cn->body = b;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&s->lock);
    record_request(s, c, method, url);
    if (s->token) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, s->token) != 0) {
            s->stats.unauthorized++;
            pthread_mutex_unlock(&s->lock);
            return reply_json(c, 401, status(401, "Unauthorized", "Unauthorized"));
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (lease_path(url, ns, sizeof(ns), name, sizeof(name)))
        return serve_lease(s, c, method, ns, name, cn);
    if (csc_path(url, ns, sizeof(ns), name, sizeof(name)))
        return serve_csc(s, c, method, ns, name, cn);
    if (events_path(url, ns, sizeof(ns)))
        return serve_events(s, c, method, ns, cn);
    pthread_mutex_lock(&s->lock);
    json_t *fixed = json_object_get(s->objects, url);
    fixed = fixed ? json_deep_copy(fixed) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (fixed)
        return serve_object(s, c, method, fixed);
    if (pod_path(url, key, sizeof(key)))
        return serve_pod(s, c, method, key, cn);
    if (strcmp(method, "GET") != 0)
        return reply_json(c, 405, status(405, "MethodNotAllowed", "only GET is served"));
    int kind = kind_of(url);
    if (kind < 0)
        return reply_json(c, 404,
                          status(404, "NotFound",
                                 "the server could not find the "
                                 "requested resource"));
    const char *watch = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "watch");
    if (watch && (strcmp(watch, "1") == 0 || strcmp(watch, "true") == 0))
        return serve_watch(s, c, kind);
    return serve_list(s, c, kind);
}

int tt_kubeapi_start(struct tt_kubeapi **ret)
{
    struct tt_kubeapi *s = calloc(1, sizeof(*s));
    struct sockaddr_in sa = {0};
    const union MHD_DaemonInfo *info;

    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    for (int k = 0; k < DD_KUBE_KINDS; k++)
        s->st[k].index = json_object();
    s->requests = json_object();
    s->leases = json_object();
    s->cscs = json_object();
    s->csc_writes = json_array();
    s->objects = json_object();
    s->events = json_array();
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                              NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
                              MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    if (!s->mhd) {
        tt_kubeapi_stop(s);
        return -EADDRNOTAVAIL;
    }
    info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", info ? (unsigned)info->port : 0u);
    *ret = s;
    return 0;
}

const char *tt_kubeapi_url(const struct tt_kubeapi *s)
{
    return s->url;
}

void tt_kubeapi_stop(struct tt_kubeapi *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    for (int k = 0; k < DD_KUBE_KINDS; k++) {
        for (size_t i = 0; i < s->st[k].n; i++)
            json_decref(s->st[k].objs[i]);
        free(s->st[k].objs);
        json_decref(s->st[k].index);
    }
    for (size_t i = 0; i < s->nlog; i++)
        free(s->log[i].line);
    free(s->log);
    free(s->token);
    json_decref(s->requests);
    json_decref(s->leases);
    json_decref(s->cscs);
    json_decref(s->csc_writes);
    json_decref(s->objects);
    json_decref(s->events);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->changed);
    free(s);
}
