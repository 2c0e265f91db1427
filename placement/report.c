/*
 * The node report's codec. Encoding writes known figures only; decoding is
 * strict and names the failing field, so a placement role can answer a bad
 * report with a 400 that says what to fix, and nothing of a bad report is
 * kept (the result is written only on success).
 */
#include "placement/report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

int dd_report_alloc(struct dd_report *r, size_t n_gpus, size_t n_volumes, size_t n_pods)
{
    size_t gb = n_gpus * sizeof(*r->gpus), vb = n_volumes * sizeof(*r->volumes);
    char *block;

    memset(r, 0, sizeof(*r));
    if (n_gpus > DD_MAX_GPUS_PER_REPORT || n_volumes > DD_MAX_VOLUMES_PER_NODE ||
        n_pods > DD_MAX_PODS_PER_REPORT)
        return -E2BIG;
    /* one block for the three arrays: one allocation, one free */
    block = dd_calloc(1, gb + vb + n_pods * sizeof(*r->pods) + 1);
    if (!block)
        return -ENOMEM;
    r->schema = DD_REPORT_SCHEMA;
    r->gpus = (struct dd_report_gpu *)(void *)block;
    r->volumes = (struct dd_report_volume *)(void *)(block + gb);
    r->pods = (struct dd_report_pod *)(void *)(block + gb + vb);
    r->n_gpus = n_gpus;
    r->n_volumes = n_volumes;
    r->n_pods = n_pods;
    r->cpu_util = r->cpu_util_ex_vdo = r->cpu_psi = r->io_psi = r->run_queue = r->load1 =
        r->mem_available_gib = r->vdo_cpu_seconds = (double)NAN;
    for (size_t i = 0; i < n_volumes; i++)
        dd_report_volume_clear(&r->volumes[i]);
    for (size_t i = 0; i < n_gpus; i++)
        r->gpus[i].util_gpu_percent = r->gpus[i].util_memory_percent =
            r->gpus[i].memory_used_bytes = r->gpus[i].memory_total_bytes = (double)NAN;
    for (size_t i = 0; i < n_pods; i++)
        r->pods[i].cpu_cores = r->pods[i].memory_bytes = r->pods[i].io_read_mbps =
            r->pods[i].io_write_mbps = (double)NAN;
    return 0;
}

void dd_report_volume_clear(struct dd_report_volume *v)
{
    memset(v, 0, sizeof(*v));
    v->rotational = -1;
    v->logical_bytes = v->logical_free_bytes = v->physical_bytes = v->physical_free_bytes = -1;
    dd_features_clear(&v->features);
}

void dd_report_release(struct dd_report *r)
{
    if (!r)
        return;
    dd_free(r->gpus); /* the block */
    memset(r, 0, sizeof(*r));
}

int dd_report_copy(const struct dd_report *src, struct dd_report *ret)
{
    struct dd_report r;
    int e = dd_report_alloc(&r, src->n_gpus, src->n_volumes, src->n_pods);
    if (e < 0)
        return e;
    struct dd_report_gpu *g = r.gpus;
    struct dd_report_volume *v = r.volumes;
    struct dd_report_pod *p = r.pods;
    r = *src;
    r.gpus = g;
    r.volumes = v;
    r.pods = p;
    if (src->n_gpus)
        memcpy(g, src->gpus, src->n_gpus * sizeof(*g));
    if (src->n_volumes)
        memcpy(v, src->volumes, src->n_volumes * sizeof(*v));
    if (src->n_pods)
        memcpy(p, src->pods, src->n_pods * sizeof(*p));
    *ret = r;
    return 0;
}

/* ---- encoding ---- */

static void set_num(json_t *o, const char *key, double v)
{
    if (isfinite(v))
        json_object_set_new_nocheck(o, key, json_real(v));
}

static void set_i64(json_t *o, const char *key, int64_t v)
{
    if (v >= 0)
        json_object_set_new_nocheck(o, key, json_integer((json_int_t)v));
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v[0])
        json_object_set_new_nocheck(o, key, json_string(v));
}

json_t *dd_report_to_json(const struct dd_report *r)
{
    json_t *doc = json_object(), *info = json_object(), *load = json_object(),
           *gpus = json_object(), *devs = json_array(), *vols = json_array(), *pods = json_array();

    if (!doc || !info || !load || !gpus || !devs || !vols || !pods) {
        json_decref(doc), json_decref(info), json_decref(load), json_decref(gpus);
        json_decref(devs), json_decref(vols), json_decref(pods);
        return NULL;
    }
    json_object_set_new(doc, "schema", json_integer(DD_REPORT_SCHEMA));
    json_object_set_new(doc, "node", json_string(r->node));
    json_object_set_new(doc, "interval_seconds", json_real(r->interval_s));
    json_object_set_new(doc, "time_ms", json_integer((json_int_t)r->time_ms));
    if (r->cores)
        json_object_set_new(info, "cores", json_integer(r->cores));
    json_object_set_new(info, "vdo_threads", json_integer(r->vdo_threads));
    json_object_set_new(doc, "node_info", info);
    set_num(load, "cpu_util", r->cpu_util);
    set_num(load, "cpu_util_ex_vdo", r->cpu_util_ex_vdo);
    set_num(load, "cpu_psi", r->cpu_psi);
    set_num(load, "io_psi", r->io_psi);
    set_num(load, "run_queue", r->run_queue);
    set_num(load, "load1", r->load1);
    set_num(load, "mem_available_gib", r->mem_available_gib);
    set_num(load, "vdo_cpu_seconds", r->vdo_cpu_seconds);
    json_object_set_new(doc, "load", load);
    json_object_set_new(gpus, "available", json_boolean(r->gpus_available));
    for (size_t i = 0; i < r->n_gpus; i++) {
        const struct dd_report_gpu *g = &r->gpus[i];
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer(g->index));
        json_object_set_new(o, "name", json_string(g->name));
        set_num(o, "util_gpu_percent", g->util_gpu_percent);
        set_num(o, "util_memory_percent", g->util_memory_percent);
        set_num(o, "memory_used_bytes", g->memory_used_bytes);
        set_num(o, "memory_total_bytes", g->memory_total_bytes);
        json_array_append_new(devs, o);
    }
    json_object_set_new(gpus, "devices", devs);
    json_object_set_new(doc, "gpus", gpus);
    for (size_t i = 0; i < r->n_volumes; i++) {
        const struct dd_report_volume *v = &r->volumes[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(v->name));
        json_object_set_new(o, "pool", json_string(v->pool));
        set_str(o, "mode", v->mode);
        set_str(o, "index_state", v->index_state);
        if (v->vdo_version > 0)
            json_object_set_new(o, "vdo_version", json_integer(v->vdo_version));
        if (v->rotational >= 0)
            json_object_set_new(o, "rotational", json_boolean(v->rotational));
        set_i64(o, "logical_bytes", v->logical_bytes);
        set_i64(o, "logical_free_bytes", v->logical_free_bytes);
        set_i64(o, "physical_bytes", v->physical_bytes);
        set_i64(o, "physical_free_bytes", v->physical_free_bytes);
        json_object_set_new(o, "features", dd_features_to_json(&v->features));
        json_array_append_new(vols, o);
    }
    json_object_set_new(doc, "volumes", vols);
    for (size_t i = 0; i < r->n_pods; i++) {
        const struct dd_report_pod *p = &r->pods[i];
        json_t *o = json_object();
        json_object_set_new(o, "uid", json_string(p->uid));
        set_str(o, "qos", p->qos);
        set_num(o, "cpu_cores", p->cpu_cores);
        set_num(o, "memory_bytes", p->memory_bytes);
        set_num(o, "io_read_mbps", p->io_read_mbps);
        set_num(o, "io_write_mbps", p->io_write_mbps);
        json_array_append_new(pods, o);
    }
    json_object_set_new(doc, "pods", pods);
    return doc;
}

/* ---- decoding ---- */

bool dd_report_node_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

bool dd_report_identity_names_node(const char *identity, const char *node)
{
    size_t plen = sizeof(DD_REPORT_K8S_NODE_PREFIX) - 1;
    if (!identity || !node || !node[0])
        return false;
    if (strncmp(identity, DD_REPORT_K8S_NODE_PREFIX, plen) == 0 &&
        strcmp(identity + plen, node) == 0)
        return true;
    return strcmp(identity, node) == 0;
}

struct dec {
    char *err;
    size_t len;
};

static int fail(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct dec *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, d->len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Known keys of an object: anything else is refused (a typo in a report
 * would otherwise silently lose a figure). keys is NULL-terminated. */
static int only_keys(struct dec *d, json_t *o, const char *where, const char *const *keys)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        size_t k = 0;
        while (keys[k] && strcmp(keys[k], key) != 0)
            k++;
        if (!keys[k])
            return fail(d, "%s.%.64s: unknown field", where, key);
    }
    return 0;
}

static int get_obj(struct dec *d, json_t *o, const char *key, const char *where, bool required,
                   json_t **ret)
{
    json_t *v = json_object_get(o, key);
    *ret = NULL;
    if (!v || json_is_null(v))
        return required ? fail(d, "%s%s: missing", where, key) : 0;
    if (!json_is_object(v))
        return fail(d, "%s%s: expected an object", where, key);
    *ret = v;
    return 0;
}

/* An optional number in [lo, hi]; absent or null leaves *ret as it is. */
static int get_num(struct dec *d, json_t *o, const char *key, const char *where, double lo,
                   double hi, double *ret)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fail(d, "%s%s: expected a number", where, key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return fail(d, "%s%s: %g is out of range (%g..%g)", where, key, x, lo, hi);
    *ret = x;
    return 0;
}

static int get_i64(struct dec *d, json_t *o, const char *key, const char *where, int64_t *ret)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(d, "%s%s: expected a non-negative integer", where, key);
    *ret = (int64_t)json_integer_value(v);
    return 0;
}

/* A name: non-empty, under cap, no control characters (jansson has
 * checked UTF-8), no '/' when slash is false (it separates store keys). */
static int get_name(struct dec *d, json_t *o, const char *key, const char *where, bool required,
                    bool slash, char *dst, size_t cap)
{
    json_t *v = json_object_get(o, key);
    const char *s;
    if (!v || json_is_null(v))
        return required ? fail(d, "%s%s: missing", where, key) : 0;
    if (!json_is_string(v))
        return fail(d, "%s%s: expected a string", where, key);
    s = json_string_value(v);
    if (json_string_length(v) != strlen(s))
        return fail(d, "%s%s: contains a NUL character", where, key);
    if (!s[0] && required)
        return fail(d, "%s%s: empty", where, key);
    if (strlen(s) >= cap)
        return fail(d, "%s%s: longer than %zu bytes", where, key, cap - 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return fail(d, "%s%s: contains a control character", where, key);
        if (*p == '/' && !slash)
            return fail(d, "%s%s: contains '/'", where, key);
    }
    snprintf(dst, cap, "%s", s);
    return 0;
}

static int get_array(struct dec *d, json_t *o, const char *key, const char *where, size_t cap,
                     json_t **ret)
{
    json_t *v = json_object_get(o, key);
    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return fail(d, "%s%s: expected an array", where, key);
    if (json_array_size(v) > cap)
        return fail(d, "%s%s: %zu entries, at most %zu", where, key, json_array_size(v), cap);
    *ret = v;
    return 0;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ < 0)                                                                                \
            return r_;                                                                             \
    } while (0)

static int dec_volume(struct dec *d, json_t *o, size_t i, struct dd_report_volume *v)
{
    static const char *const keys[] = {"name",           "pool",
                                       "mode",           "index_state",
                                       "vdo_version",    "rotational",
                                       "logical_bytes",  "logical_free_bytes",
                                       "physical_bytes", "physical_free_bytes",
                                       "features",       NULL};
    char where[48], fwhere[64];
    double ver = 0;
    json_t *f, *rot;

    snprintf(where, sizeof(where), "volumes[%zu].", i);
    if (!json_is_object(o))
        return fail(d, "volumes[%zu]: expected an object", i);
    snprintf(fwhere, sizeof(fwhere), "volumes[%zu]", i);
    TRY(only_keys(d, o, fwhere, keys));
    dd_report_volume_clear(v);
    TRY(get_name(d, o, "name", where, true, false, v->name, sizeof(v->name)));
    TRY(get_name(d, o, "pool", where, false, true, v->pool, sizeof(v->pool)));
    if (!v->pool[0]) /* the default pool is the volume's name */
        snprintf(v->pool, sizeof(v->pool), "%s", v->name);
    TRY(get_name(d, o, "mode", where, false, true, v->mode, sizeof(v->mode)));
    TRY(get_name(d, o, "index_state", where, false, true, v->index_state, sizeof(v->index_state)));
    TRY(get_num(d, o, "vdo_version", where, 0, 1000, &ver));
    v->vdo_version = (int)ver;
    rot = json_object_get(o, "rotational");
    if (rot && !json_is_null(rot)) {
        if (!json_is_boolean(rot))
            return fail(d, "%srotational: expected true or false", where);
        v->rotational = json_is_true(rot);
    }
    TRY(get_i64(d, o, "logical_bytes", where, &v->logical_bytes));
    TRY(get_i64(d, o, "logical_free_bytes", where, &v->logical_free_bytes));
    TRY(get_i64(d, o, "physical_bytes", where, &v->physical_bytes));
    TRY(get_i64(d, o, "physical_free_bytes", where, &v->physical_free_bytes));
    TRY(get_obj(d, o, "features", where, true, &f));
    snprintf(fwhere, sizeof(fwhere), "volumes[%zu].features", i);
    return dd_features_from_json(f, DD_FEATURES_STRICT_PRESENT, fwhere, &v->features, d->err,
                                 d->len);
}

static int dec_gpu(struct dec *d, json_t *o, size_t i, struct dd_report_gpu *g)
{
    static const char *const keys[] = {"index",
                                       "name",
                                       "util_gpu_percent",
                                       "util_memory_percent",
                                       "memory_used_bytes",
                                       "memory_total_bytes",
                                       NULL};
    char where[48], w2[48];
    double idx = -1;
    snprintf(where, sizeof(where), "gpus.devices[%zu].", i);
    snprintf(w2, sizeof(w2), "gpus.devices[%zu]", i);
    if (!json_is_object(o))
        return fail(d, "%s: expected an object", w2);
    TRY(only_keys(d, o, w2, keys));
    TRY(get_num(d, o, "index", where, 0, 1024, &idx));
    if (idx < 0)
        return fail(d, "%sindex: missing", where);
    g->index = (unsigned)idx;
    TRY(get_name(d, o, "name", where, false, true, g->name, sizeof(g->name)));
    TRY(get_num(d, o, "util_gpu_percent", where, 0, 100, &g->util_gpu_percent));
    TRY(get_num(d, o, "util_memory_percent", where, 0, 100, &g->util_memory_percent));
    TRY(get_num(d, o, "memory_used_bytes", where, 0, 1e15, &g->memory_used_bytes));
    TRY(get_num(d, o, "memory_total_bytes", where, 0, 1e15, &g->memory_total_bytes));
    return 0;
}

static int dec_pod(struct dec *d, json_t *o, size_t i, struct dd_report_pod *p)
{
    static const char *const keys[] = {"uid",          "qos",           "cpu_cores", "memory_bytes",
                                       "io_read_mbps", "io_write_mbps", NULL};
    char where[48], w2[48];
    snprintf(where, sizeof(where), "pods[%zu].", i);
    snprintf(w2, sizeof(w2), "pods[%zu]", i);
    if (!json_is_object(o))
        return fail(d, "%s: expected an object", w2);
    TRY(only_keys(d, o, w2, keys));
    TRY(get_name(d, o, "uid", where, true, false, p->uid, sizeof(p->uid)));
    TRY(get_name(d, o, "qos", where, false, false, p->qos, sizeof(p->qos)));
    TRY(get_num(d, o, "cpu_cores", where, 0, 1e6, &p->cpu_cores));
    TRY(get_num(d, o, "memory_bytes", where, 0, 1e18, &p->memory_bytes));
    TRY(get_num(d, o, "io_read_mbps", where, 0, 1e9, &p->io_read_mbps));
    TRY(get_num(d, o, "io_write_mbps", where, 0, 1e9, &p->io_write_mbps));
    return 0;
}

static int decode(struct dec *d, json_t *doc, struct dd_report *r)
{
    static const char *const keys[] = {"schema", "node", "interval_seconds", "time_ms", "node_info",
                                       "load",   "gpus", "volumes",          "pods",    NULL};
    static const char *const info_keys[] = {"cores", "vdo_threads", NULL};
    static const char *const load_keys[] = {
        "cpu_util", "cpu_util_ex_vdo",   "cpu_psi",         "io_psi", "run_queue",
        "load1",    "mem_available_gib", "vdo_cpu_seconds", NULL};
    static const char *const gpu_keys[] = {"available", "devices", NULL};
    json_t *schema, *t, *info, *load, *gpus, *devs = NULL, *vols, *pods, *x;
    double interval = 0, cores = 0, threads = 0;
    size_t i;

    if (!json_is_object(doc))
        return fail(d, "report: expected a JSON object");
    schema = json_object_get(doc, "schema");
    if (!schema)
        return fail(d, "schema: missing (accepted: %d)", DD_REPORT_SCHEMA);
    if (!json_is_integer(schema) || json_integer_value(schema) != DD_REPORT_SCHEMA)
        return fail(d, "schema: unknown version (accepted: %d)", DD_REPORT_SCHEMA);
    TRY(only_keys(d, doc, "report", keys));
    TRY(get_name(d, doc, "node", "", true, false, r->node, sizeof(r->node)));
    if (!dd_report_node_name_ok(r->node))
        return fail(d, "node: '%.64s' is not a Kubernetes node name (a-z, 0-9, '-', '.')", r->node);
    if (!json_object_get(doc, "interval_seconds"))
        return fail(d, "interval_seconds: missing");
    TRY(get_num(d, doc, "interval_seconds", "", 0.01, 3600, &interval));
    r->interval_s = interval;
    t = json_object_get(doc, "time_ms");
    if (!t)
        return fail(d, "time_ms: missing");
    if (!json_is_integer(t) || json_integer_value(t) <= 0)
        return fail(d, "time_ms: expected a positive integer (Unix milliseconds)");
    r->time_ms = (uint64_t)json_integer_value(t);

    TRY(get_obj(d, doc, "node_info", "", false, &info));
    if (info) {
        TRY(only_keys(d, info, "node_info", info_keys));
        TRY(get_num(d, info, "cores", "node_info.", 0, 1 << 20, &cores));
        TRY(get_num(d, info, "vdo_threads", "node_info.", 0, 1 << 24, &threads));
        r->cores = (unsigned)cores;
        r->vdo_threads = (unsigned)threads;
    }
    TRY(get_obj(d, doc, "load", "", false, &load));
    if (load) {
        TRY(only_keys(d, load, "load", load_keys));
        TRY(get_num(d, load, "cpu_util", "load.", 0, 1, &r->cpu_util));
        TRY(get_num(d, load, "cpu_util_ex_vdo", "load.", 0, 1, &r->cpu_util_ex_vdo));
        TRY(get_num(d, load, "cpu_psi", "load.", 0, 100, &r->cpu_psi));
        TRY(get_num(d, load, "io_psi", "load.", 0, 100, &r->io_psi));
        TRY(get_num(d, load, "run_queue", "load.", 0, 1e7, &r->run_queue));
        TRY(get_num(d, load, "load1", "load.", 0, 1e7, &r->load1));
        TRY(get_num(d, load, "mem_available_gib", "load.", 0, 1e9, &r->mem_available_gib));
        TRY(get_num(d, load, "vdo_cpu_seconds", "load.", 0, 1e9, &r->vdo_cpu_seconds));
    }
    TRY(get_obj(d, doc, "gpus", "", false, &gpus));
    if (gpus) {
        TRY(only_keys(d, gpus, "gpus", gpu_keys));
        x = json_object_get(gpus, "available");
        if (x && !json_is_boolean(x))
            return fail(d, "gpus.available: expected true or false");
        r->gpus_available = json_is_true(x);
        TRY(get_array(d, gpus, "devices", "gpus.", DD_MAX_GPUS_PER_REPORT, &devs));
    }
    TRY(get_array(d, doc, "volumes", "", DD_MAX_VOLUMES_PER_NODE, &vols));
    if (!vols)
        return fail(d, "volumes: missing (an empty array when the node has none)");
    TRY(get_array(d, doc, "pods", "", DD_MAX_PODS_PER_REPORT, &pods));

    /* room for the arrays, keeping the figures read so far */
    struct dd_report head = *r;
    TRY(dd_report_alloc(r, devs ? json_array_size(devs) : 0, json_array_size(vols),
                        pods ? json_array_size(pods) : 0));
    struct dd_report_gpu *g = r->gpus;
    struct dd_report_volume *v = r->volumes;
    struct dd_report_pod *p = r->pods;
    size_t ng = r->n_gpus, nv = r->n_volumes, np = r->n_pods;
    *r = head;
    r->gpus = g, r->volumes = v, r->pods = p;
    r->n_gpus = ng, r->n_volumes = nv, r->n_pods = np;

    json_array_foreach(devs, i, x) TRY(dec_gpu(d, x, i, &r->gpus[i]));
    json_array_foreach(vols, i, x)
    {
        TRY(dec_volume(d, x, i, &r->volumes[i]));
        for (size_t k = 0; k < i; k++) {
            if (strcmp(r->volumes[k].name, r->volumes[i].name) == 0)
                return fail(d, "volumes[%zu].name: '%.64s' repeats volumes[%zu]", i,
                            r->volumes[i].name, k);
        }
    }
    json_array_foreach(pods, i, x) TRY(dec_pod(d, x, i, &r->pods[i]));
    return 0;
}

int dd_report_from_json(json_t *doc, struct dd_report *ret, char *errbuf, size_t errlen)
{
    struct dec d = {errbuf, errlen};
    struct dd_report r;
    memset(&r, 0, sizeof(r));
    r.schema = DD_REPORT_SCHEMA;
    r.cpu_util = r.cpu_util_ex_vdo = r.cpu_psi = r.io_psi = r.run_queue = r.load1 =
        r.mem_available_gib = r.vdo_cpu_seconds = (double)NAN;
    int e = decode(&d, doc, &r);
    if (e < 0) {
        dd_report_release(&r);
        return e;
    }
    *ret = r;
    return 0;
}
