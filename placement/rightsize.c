/*
 * Right-sizing (rightsize.h): a pod's static description from its JSON,
 * the fixed observation body and back, the training rows, the per-owner
 * history (the VPA-like fallback), the XGBoost boosters per target with
 * their category dictionary, their evaluation against the fallback on a
 * time-ordered hold-out, save/load, and the prediction.
 *
 * Invariants: a model (trees + dictionary + history) is immutable once
 * built; its parts are reference-counted so the service can make a new
 * model per outcome (one owner's history rebuilt, the rest shared) and
 * readers on other threads keep theirs. Every XGBoost call's -1 becomes
 * DD_E_LIBRARY with XGBoost's message. Pure: no I/O, no threads.
 */
#define _GNU_SOURCE
#include "placement/rightsize.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xgboost/c_api.h>
#include <xxhash.h>

#include "common/common.h"
#include "placement/kube.h"
#include "placement/xgb.h"

#define DD_RS_NAME_(id, key, unit) key,
const char *const dd_rs_target_names[DD_RS_NTARGETS] = {DD_RS_TARGETS(DD_RS_NAME_)};
#undef DD_RS_NAME_

#define DD_RS_FNAME_(id, name, kind) name,
const char *const dd_rs_feature_names[DD_RS_NFEATURES] = {DD_RS_FEATURES(DD_RS_FNAME_)};
#undef DD_RS_FNAME_

enum { NUM, CAT };
#define DD_RS_FKIND_(id, name, kind) kind,
_dd_unused_ static const int feature_kind[DD_RS_NFEATURES] = {DD_RS_FEATURES(DD_RS_FKIND_)};
#undef DD_RS_FKIND_

/* categorical feature i (0..DD_RS_NCAT) is column CAT0 + i */
#define CAT0 DD_RS_F_FRAMEWORK
_Static_assert(DD_RS_F_IMAGE - DD_RS_F_FRAMEWORK + 1 == DD_RS_NCAT, "categories are contiguous");

/* log(y + floor): a target may be 0 (no GPU, no writes); the floor is a
 * use too small to matter when sizing. */
static const double target_floor[DD_RS_NTARGETS] = {0.01, 1048576.0, 1048576.0, 0.01, 0.01, 1.0};

/* ---------------------------------------------------------------- strings */

/* An interning table: string -> index, open addressing on XXH3. */
struct strtab {
    char **s;
    size_t n, cap;
    uint32_t *slot; /* index + 1; 0 empty */
    size_t nslot;
};

static void strtab_release(struct strtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        dd_free(t->s[i]);
    dd_free(t->s);
    dd_free(t->slot);
    memset(t, 0, sizeof(*t));
}

static long strtab_find(const struct strtab *t, const char *s)
{
    if (!t->nslot)
        return -1;
    size_t h = (size_t)XXH3_64bits(s, strlen(s)) & (t->nslot - 1);
    for (;; h = (h + 1) & (t->nslot - 1)) {
        uint32_t v = t->slot[h];
        if (!v)
            return -1;
        if (strcmp(t->s[v - 1], s) == 0)
            return (long)(v - 1);
    }
}

static int strtab_rehash(struct strtab *t, size_t nslot)
{
    uint32_t *slot = dd_calloc(nslot, sizeof(*slot));
    if (!slot)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        size_t h = (size_t)XXH3_64bits(t->s[i], strlen(t->s[i])) & (nslot - 1);
        while (slot[h])
            h = (h + 1) & (nslot - 1);
        slot[h] = (uint32_t)(i + 1);
    }
    dd_free(t->slot);
    t->slot = slot;
    t->nslot = nslot;
    return 0;
}

/* Index of s, added when new. -ENOMEM. */
static long strtab_intern(struct strtab *t, const char *s)
{
    long i = strtab_find(t, s);
    if (i >= 0)
        return i;
    if ((t->n + 1) * 2 > t->nslot && strtab_rehash(t, t->nslot ? t->nslot * 2 : 64) < 0)
        return -ENOMEM;
    if (dd_array_reserve((void **)&t->s, &t->cap, t->n + 1, sizeof(*t->s)) < 0)
        return -ENOMEM;
    char *c = dd_strdup(s);
    if (!c)
        return -ENOMEM;
    t->s[t->n] = c;
    size_t h = (size_t)XXH3_64bits(s, strlen(s)) & (t->nslot - 1);
    while (t->slot[h])
        h = (h + 1) & (t->nslot - 1);
    t->slot[h] = (uint32_t)(t->n + 1);
    return (long)t->n++;
}

static int strtab_copy(struct strtab *dst, const struct strtab *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (strtab_intern(dst, src->s[i]) < 0)
            return -ENOMEM;
    }
    return 0;
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* ---------------------------------------------------------------- owners */

void dd_rs_owner_key(const char *ns, const char *owner_kind, const char *owner_name,
                     const char *pod_name, const char *pod_uid, char *buf, size_t len)
{
    if (owner_kind && *owner_kind && owner_name && *owner_name)
        snprintf(buf, len, "%s/%s/%s", ns ? ns : "", owner_kind, owner_name);
    else if (pod_name && *pod_name)
        snprintf(buf, len, "%s/Pod/%s", ns ? ns : "", pod_name);
    else
        snprintf(buf, len, "%s/Pod/uid:%s", ns ? ns : "", pod_uid ? pod_uid : "");
}

void dd_rs_pod_owner_key(const struct dd_rs_pod *pod, char *buf, size_t len)
{
    dd_rs_owner_key(pod->ns, pod->owner_kind, pod->owner_name,
                    *pod->name ? pod->name : pod->generate_name, pod->uid, buf, len);
}

int dd_rs_strip_template_hash(const char *rs_name, const char *hash, char *out, size_t len)
{
    /* k8s.io/apimachinery/pkg/util/rand SafeEncodeString: no vowels, no
     * 0, 1, 3 (no words, no look-alikes) */
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    const char *dash = strrchr(rs_name, '-');
    size_t n;
    bool digit = false, ok = true;

    snprintf(out, len, "%s", rs_name);
    if (!dash || dash == rs_name)
        return 0;
    n = strlen(dash + 1);
    if (hash && *hash) {
        ok = strcmp(dash + 1, hash) == 0;
    } else {
        ok = n >= 1 && n <= 10;
        for (const char *p = dash + 1; ok && *p; p++) {
            ok = strchr(alphabet, *p) != NULL;
            digit |= isdigit((unsigned char)*p) != 0;
        }
        ok = ok && digit;
    }
    if (!ok)
        return 0;
    snprintf(out, len, "%.*s", (int)(dash - rs_name), rs_name);
    return 1;
}

/* -------------------------------------------------------- image guesses */

static const struct {
    const char *needle, *framework, *workload;
} image_table[] = {
    {"vllm", "vllm", "inference"},
    {"tritonserver", "triton", "inference"},
    {"triton", "triton", "inference"},
    {"text-generation-inference", "tgi", "inference"},
    {"tgi", "tgi", "inference"},
    {"torchserve", "pytorch", "inference"},
    {"tensorflow/serving", "tensorflow", "inference"},
    {"tf-serving", "tensorflow", "inference"},
    {"deepspeed", "deepspeed", "training"},
    {"megatron", "megatron", "training"},
    {"nemo", "nemo", "training"},
    {"pytorch", "pytorch", "training"},
    {"torch", "pytorch", "training"},
    {"tensorflow", "tensorflow", "training"},
    {"jax", "jax", "training"},
    {"spark", "spark", "preprocessing"},
    {"dask", "dask", "preprocessing"},
    {"ray", "ray", "preprocessing"},
    {"dali", "dali", "preprocessing"},
};

void dd_rs_guess_from_image(const char *image, char *framework, size_t flen, char *workload,
                            size_t wlen)
{
    char low[256];
    size_t i;

    for (i = 0; image && image[i] && i + 1 < sizeof(low); i++)
        low[i] = (char)tolower((unsigned char)image[i]);
    low[i] = '\0';
    if (framework)
        copy_str(framework, flen, "");
    if (workload)
        copy_str(workload, wlen, "");
    for (i = 0; i < DD_ARRAY_SIZE(image_table); i++) {
        if (strstr(low, image_table[i].needle)) {
            if (framework)
                copy_str(framework, flen, image_table[i].framework);
            if (workload)
                copy_str(workload, wlen, image_table[i].workload);
            return;
        }
    }
}

/* ------------------------------------------------------------- pod parse */

static bool is_gpu_resource(const char *name, const char *const *gpu, size_t ngpu)
{
    if (!gpu || !ngpu)
        return strcmp(name, "nvidia.com/gpu") == 0;
    for (size_t i = 0; i < ngpu; i++) {
        if (gpu[i] && strcmp(name, gpu[i]) == 0)
            return true;
    }
    return false;
}

/* A quantity JSON value (string, or a number as some clients send) of
 * resource name -> cores (cpu), bytes (memory), count (the rest). */
static int quantity_value(json_t *v, const char *name, double *ret)
{
    char buf[64];
    uint64_t q;
    const char *s;

    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (!isfinite(d) || d < 0)
            return -EINVAL;
        *ret = d;
        return 0;
    }
    s = json_string_value(v);
    if (!s)
        return -EINVAL;
    if (strcmp(name, "cpu") == 0) {
        if (dd_kube_quantity_milli(s, &q) < 0)
            return -EINVAL;
        *ret = (double)q / 1000.0;
    } else if (dd_kube_quantity(s, &q) < 0) {
        return -EINVAL;
    } else {
        *ret = (double)q;
    }
    (void)buf;
    return 0;
}

static double add_nan(double a, double b)
{
    return isnan(a) ? b : isnan(b) ? a : a + b;
}

static double max_nan(double a, double b)
{
    return isnan(a) ? b : isnan(b) ? a : DD_MAX(a, b);
}

/* requests or limits of one resource map into *cpu, *mem, *gpu */
static int resource_map(json_t *map, const char *where, const char *const *gpu, size_t ngpu,
                        double *cpu, double *mem, double *gpus, char *err, size_t errlen)
{
    const char *k;
    json_t *v;

    *cpu = *mem = *gpus = (double)NAN;
    if (!map || json_is_null(map))
        return 0;
    if (!json_is_object(map)) {
        snprintf(err, errlen, "%s: expected an object of quantities", where);
        return -EINVAL;
    }
    json_object_foreach(map, k, v)
    {
        double x;
        bool g = is_gpu_resource(k, gpu, ngpu);
        if (strcmp(k, "cpu") != 0 && strcmp(k, "memory") != 0 && !g)
            continue;
        if (quantity_value(v, k, &x) < 0) {
            char q[48];
            const char *s = json_string_value(v);
            dd_quote(q, sizeof(q), s ? s : "(not a string)", s ? strlen(s) : 14, 32);
            snprintf(err, errlen, "%s.%s: bad quantity %s", where, k, q);
            return -EINVAL;
        }
        if (strcmp(k, "cpu") == 0)
            *cpu = x;
        else if (strcmp(k, "memory") == 0)
            *mem = x;
        else
            *gpus = add_nan(*gpus, x);
    }
    return 0;
}

static const char *str_at(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int string_field(json_t *o, const char *key, const char *where, char *dst, size_t len,
                        char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        dst[0] = '\0';
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= len) {
        snprintf(err, errlen, "%s%s: expected a string of at most %zu bytes", where, key, len - 1);
        return -EINVAL;
    }
    copy_str(dst, len, json_string_value(v));
    return 0;
}

static int parse_containers(json_t *arr, bool init, const char *where, const char *const *gpu,
                            size_t ngpu, struct dd_rs_pod *out, char *err, size_t errlen)
{
    size_t i;
    json_t *c;

    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "%s: expected an array", where);
        return -EINVAL;
    }
    json_array_foreach(arr, i, c)
    {
        char w[96];
        struct dd_rs_container *k;
        json_t *res;
        double gl;
        int r;

        if (!json_is_object(c)) {
            snprintf(err, errlen, "%s[%zu]: expected an object", where, i);
            return -EINVAL;
        }
        if (out->n_containers == DD_RS_MAX_CONTAINERS) {
            out->containers_truncated = true;
            continue;
        }
        k = &out->containers[out->n_containers];
        memset(k, 0, sizeof(*k));
        snprintf(w, sizeof(w), "%s[%zu].", where, i);
        if ((r = string_field(c, "name", w, k->name, sizeof(k->name), err, errlen)) < 0)
            return r;
        if (!init && !*out->image) {
            char img[sizeof(out->image)];
            if ((r = string_field(c, "image", w, img, sizeof(img), err, errlen)) < 0)
                return r;
            copy_str(out->image, sizeof(out->image), img);
        }
        res = json_object_get(c, "resources");
        if (res && !json_is_null(res) && !json_is_object(res)) {
            snprintf(err, errlen, "%s[%zu].resources: expected an object", where, i);
            return -EINVAL;
        }
        snprintf(w, sizeof(w), "%s[%zu].resources.requests", where, i);
        if ((r = resource_map(json_object_get(res, "requests"), w, gpu, ngpu, &k->cpu_request,
                              &k->memory_request, &k->gpus, err, errlen)) < 0)
            return r;
        snprintf(w, sizeof(w), "%s[%zu].resources.limits", where, i);
        if ((r = resource_map(json_object_get(res, "limits"), w, gpu, ngpu, &k->cpu_limit,
                              &k->memory_limit, &gl, err, errlen)) < 0)
            return r;
        /* extended resources: the limit is the request when only it is set */
        if (isnan(k->gpus))
            k->gpus = gl;
        /* Kubernetes defaults a missing request to the limit */
        if (isnan(k->cpu_request))
            k->cpu_request = k->cpu_limit;
        if (isnan(k->memory_request))
            k->memory_request = k->memory_limit;
        k->init = init;
        const char *rp = str_at(c, "restartPolicy");
        k->sidecar = init && rp && strcmp(rp, "Always") == 0;
        out->n_containers++;
    }
    return 0;
}

/* The scheduler's effective pod figures: regular containers and sidecars
 * summed, against the largest plain init container. */
static void effective(struct dd_rs_pod *p)
{
    double run[5] = {(double)NAN, (double)NAN, (double)NAN, (double)NAN, (double)NAN},
           ini[5] = {(double)NAN, (double)NAN, (double)NAN, (double)NAN, (double)NAN};
    for (size_t i = 0; i < p->n_containers; i++) {
        const struct dd_rs_container *c = &p->containers[i];
        double v[5] = {c->cpu_request, c->cpu_limit, c->memory_request, c->memory_limit, c->gpus};
        for (int j = 0; j < 5; j++) {
            if (c->init && !c->sidecar)
                ini[j] = max_nan(ini[j], v[j]);
            else
                run[j] = add_nan(run[j], v[j]);
        }
    }
    p->cpu_request = max_nan(run[0], ini[0]);
    p->cpu_limit = max_nan(run[1], ini[1]);
    p->memory_request = max_nan(run[2], ini[2]);
    p->memory_limit = max_nan(run[3], ini[3]);
    p->gpus = max_nan(run[4], ini[4]);
}

/* framework, model, workload from annotations, else from the image */
static int annotation_features(json_t *ann, struct dd_rs_pod *p, char *err, size_t errlen)
{
    char fw[64], wl[32];
    int r;

    if (ann && !json_is_null(ann) && !json_is_object(ann)) {
        snprintf(err, errlen, "metadata.annotations: expected an object");
        return -EINVAL;
    }
    if ((r = string_field(ann, "dedupd.io/framework", "annotations.", p->framework,
                          sizeof(p->framework), err, errlen)) < 0 ||
        (r = string_field(ann, "dedupd.io/model", "annotations.", p->model, sizeof(p->model), err,
                          errlen)) < 0 ||
        (r = string_field(ann, "dedupd.io/workload", "annotations.", p->workload,
                          sizeof(p->workload), err, errlen)) < 0 ||
        (r = string_field(ann, "dedupd.io/rightsize", "annotations.", p->rightsize,
                          sizeof(p->rightsize), err, errlen)) < 0)
        return r;
    if (*p->workload && strcmp(p->workload, "training") != 0 &&
        strcmp(p->workload, "inference") != 0 && strcmp(p->workload, "preprocessing") != 0) {
        snprintf(err, errlen,
                 "annotations.dedupd.io/workload: '%.31s' is not training, inference or "
                 "preprocessing",
                 p->workload);
        return -EINVAL;
    }
    dd_rs_guess_from_image(p->image, fw, sizeof(fw), wl, sizeof(wl));
    if (!*p->framework)
        copy_str(p->framework, sizeof(p->framework), fw);
    if (!*p->workload)
        copy_str(p->workload, sizeof(p->workload), wl);
    return 0;
}

static void pod_init(struct dd_rs_pod *p)
{
    memset(p, 0, sizeof(*p));
    p->cpu_request = p->cpu_limit = p->memory_request = p->memory_limit = p->gpus = (double)NAN;
}

int dd_rs_pod_from_json(const json_t *pod_c, const char *const *gpu_resources,
                        size_t n_gpu_resources, struct dd_rs_pod *out, char *err, size_t errlen)
{
    json_t *pod = (json_t *)(uintptr_t)pod_c, *meta, *spec, *owners, *vols, *v;
    size_t i;
    int r;

    pod_init(out);
    if (!json_is_object(pod)) {
        snprintf(err, errlen, "pod: expected an object");
        return -EINVAL;
    }
    meta = json_object_get(pod, "metadata");
    spec = json_object_get(pod, "spec");
    if (meta && !json_is_object(meta)) {
        snprintf(err, errlen, "metadata: expected an object");
        return -EINVAL;
    }
    if (!json_is_object(spec)) {
        snprintf(err, errlen, "spec: %s", spec ? "expected an object" : "missing");
        return -EINVAL;
    }
    if ((r = string_field(meta, "uid", "metadata.", out->uid, sizeof(out->uid), err, errlen)) < 0 ||
        (r = string_field(meta, "namespace", "metadata.", out->ns, sizeof(out->ns), err, errlen)) <
            0 ||
        (r = string_field(meta, "name", "metadata.", out->name, sizeof(out->name), err, errlen)) <
            0 ||
        (r = string_field(meta, "generateName", "metadata.", out->generate_name,
                          sizeof(out->generate_name), err, errlen)) < 0)
        return r;
    if (!json_is_array(json_object_get(spec, "containers")) ||
        json_array_size(json_object_get(spec, "containers")) == 0) {
        snprintf(err, errlen, "spec.containers: expected a non-empty array");
        return -EINVAL;
    }
    if ((r = parse_containers(json_object_get(spec, "containers"), false, "spec.containers",
                              gpu_resources, n_gpu_resources, out, err, errlen)) < 0 ||
        (r = parse_containers(json_object_get(spec, "initContainers"), true, "spec.initContainers",
                              gpu_resources, n_gpu_resources, out, err, errlen)) < 0)
        return r;
    effective(out);

    owners = json_object_get(meta, "ownerReferences");
    if (owners && !json_is_null(owners) && !json_is_array(owners)) {
        snprintf(err, errlen, "metadata.ownerReferences: expected an array");
        return -EINVAL;
    }
    json_t *own = NULL;
    json_array_foreach(owners, i, v)
    {
        if (!json_is_object(v) || !json_is_string(json_object_get(v, "kind")) ||
            !json_is_string(json_object_get(v, "name"))) {
            snprintf(err, errlen, "metadata.ownerReferences[%zu]: expected kind and name", i);
            return -EINVAL;
        }
        if (!own || json_is_true(json_object_get(v, "controller")))
            own = v;
    }
    if (own) {
        const char *kind = str_at(own, "kind"), *name = str_at(own, "name");
        if (strcmp(kind, "ReplicaSet") == 0 &&
            dd_rs_strip_template_hash(name,
                                      str_at(json_object_get(meta, "labels"), "pod-template-hash"),
                                      out->owner_name, sizeof(out->owner_name)) == 1)
            copy_str(out->owner_kind, sizeof(out->owner_kind), "Deployment");
        else {
            copy_str(out->owner_kind, sizeof(out->owner_kind), kind);
            copy_str(out->owner_name, sizeof(out->owner_name), name);
        }
    }
    vols = json_object_get(spec, "volumes");
    json_array_foreach(vols, i, v)
    {
        if (json_object_get(v, "persistentVolumeClaim") || json_object_get(v, "ephemeral"))
            out->n_claims++;
    }
    return annotation_features(json_object_get(meta, "annotations"), out, err, errlen);
}

/* ---------------------------------------------------------- observations */

static int number_field(json_t *doc, const char *key, double *ret, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, key);
    *ret = (double)NAN;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0) {
        snprintf(err, errlen, "%s: expected a non-negative number", key);
        return -EINVAL;
    }
    *ret = json_number_value(v);
    return 0;
}

static double live_num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) && isfinite(json_number_value(v)) ? json_number_value(v) : (double)NAN;
}

static void live_unknown(struct dd_rs_live *l)
{
    l->top_slowdown_pct = l->top_cpu_util = l->top_free_gpus = (double)NAN;
    l->n_nodes = 0;
}

int dd_rs_outcome_from_json(const json_t *doc_c, struct dd_rs_outcome *out, char *err,
                            size_t errlen)
{
    json_t *doc = (json_t *)(uintptr_t)doc_c, *owner, *ann, *v;
    double cpu, mem, gpus;
    int r;

    memset(out, 0, sizeof(*out));
    pod_init(&out->pod);
    live_unknown(&out->live);
    out->exit_code = INT32_MIN;
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        out->target[t] = (double)NAN;
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "body: expected a JSON object");
        return -EINVAL;
    }
    v = json_object_get(doc, "pod_uid");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= sizeof(out->pod_uid)) {
        snprintf(err, errlen, "pod_uid: expected a non-empty string of at most %zu bytes",
                 sizeof(out->pod_uid) - 1);
        return -EINVAL;
    }
    copy_str(out->pod_uid, sizeof(out->pod_uid), json_string_value(v));
    v = json_object_get(doc, "namespace");
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) >= sizeof(out->ns)) {
        snprintf(err, errlen, "namespace: expected a non-empty string of at most %zu bytes",
                 sizeof(out->ns) - 1);
        return -EINVAL;
    }
    copy_str(out->ns, sizeof(out->ns), json_string_value(v));
    owner = json_object_get(doc, "owner");
    if (owner && !json_is_null(owner)) {
        if (!json_is_object(owner)) {
            snprintf(err, errlen, "owner: expected an object {\"kind\", \"name\"}");
            return -EINVAL;
        }
        char kind[64], name[DD_NAME_MAX];
        if ((r = string_field(owner, "kind", "owner.", kind, sizeof(kind), err, errlen)) < 0 ||
            (r = string_field(owner, "name", "owner.", name, sizeof(name), err, errlen)) < 0)
            return r;
        if (strcmp(kind, "ReplicaSet") == 0 &&
            dd_rs_strip_template_hash(name, NULL, out->owner_name, sizeof(out->owner_name)) == 1)
            copy_str(out->owner_kind, sizeof(out->owner_kind), "Deployment");
        else {
            copy_str(out->owner_kind, sizeof(out->owner_kind), kind);
            copy_str(out->owner_name, sizeof(out->owner_name), name);
        }
    }
    struct dd_rs_pod *p = &out->pod;
    copy_str(p->uid, sizeof(p->uid), out->pod_uid);
    copy_str(p->ns, sizeof(p->ns), out->ns);
    copy_str(p->owner_kind, sizeof(p->owner_kind), out->owner_kind);
    copy_str(p->owner_name, sizeof(p->owner_name), out->owner_name);
    /* optional additions to the fixed body: the pod's name and image and
     * its claims, when the sender knows them */
    if ((r = string_field(doc, "name", "", p->name, sizeof(p->name), err, errlen)) < 0 ||
        (r = string_field(doc, "image", "", p->image, sizeof(p->image), err, errlen)) < 0 ||
        (r = string_field(doc, "node", "", out->node, sizeof(out->node), err, errlen)) < 0 ||
        (r = string_field(doc, "reason", "", out->reason, sizeof(out->reason), err, errlen)) < 0)
        return r;
    v = json_object_get(doc, "claims");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000) {
            snprintf(err, errlen, "claims: expected a count 0..1000");
            return -EINVAL;
        }
        p->n_claims = (size_t)json_integer_value(v);
    }
    ann = json_object_get(doc, "annotations");
    if (ann && !json_is_null(ann) && !json_is_object(ann)) {
        snprintf(err, errlen, "annotations: expected an object");
        return -EINVAL;
    }
    if ((r = annotation_features(ann, p, err, errlen)) < 0)
        return r;
    v = json_object_get(doc, "requests");
    if (!json_is_object(v)) {
        snprintf(err, errlen, "requests: %s",
                 v ? "expected an object of quantities" : "missing (use {} when none)");
        return -EINVAL;
    }
    if ((r = resource_map(v, "requests", NULL, 0, &p->cpu_request, &p->memory_request, &p->gpus,
                          err, errlen)) < 0 ||
        (r = resource_map(json_object_get(doc, "limits"), "limits", NULL, 0, &p->cpu_limit,
                          &p->memory_limit, &gpus, err, errlen)) < 0)
        return r;
    if (isnan(p->gpus))
        p->gpus = gpus;
    (void)cpu;
    (void)mem;
    if ((r = number_field(doc, "started_at", &out->started_at, err, errlen)) < 0 ||
        (r = number_field(doc, "finished_at", &out->finished_at, err, errlen)) < 0)
        return r;
    if (isfinite(out->started_at) && isfinite(out->finished_at) &&
        out->finished_at < out->started_at) {
        snprintf(err, errlen, "finished_at: before started_at");
        return -EINVAL;
    }
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        if (t == DD_RS_RUNTIME)
            continue;
        if ((r = number_field(doc, dd_rs_target_names[t], &out->target[t], err, errlen)) < 0)
            return r;
    }
    if (isfinite(out->started_at) && isfinite(out->finished_at))
        out->target[DD_RS_RUNTIME] = out->finished_at - out->started_at;
    v = json_object_get(doc, "exit_code");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN + 1 ||
            json_integer_value(v) > INT32_MAX) {
            snprintf(err, errlen, "exit_code: expected an integer");
            return -EINVAL;
        }
        out->exit_code = (int)json_integer_value(v);
    }
    /* the live state the webhook recorded with its prediction */
    json_t *pred = NULL;
    const char *ptext = str_at(ann, "dedupd.io/rightsize-prediction");
    if (ptext && (pred = json_loads(ptext, JSON_REJECT_DUPLICATES, NULL)) != NULL) {
        json_t *live = json_object_get(pred, "live");
        out->live.top_slowdown_pct = live_num(live, "top_slowdown_pct");
        out->live.top_cpu_util = live_num(live, "top_cpu_util");
        out->live.top_free_gpus = live_num(live, "top_free_gpus");
        double n = live_num(live, "n_nodes");
        out->live.n_nodes = isfinite(n) && n >= 0 && n < 1e9 ? (size_t)n : 0;
        json_decref(pred);
    }
    return 0;
}

/* a quantity string that reads back as x: whole units, else milli-units */
static json_t *quantity_json(double x, bool bytes)
{
    char b[64];
    if (bytes || x == floor(x))
        snprintf(b, sizeof(b), "%.0f", ceil(x));
    else
        snprintf(b, sizeof(b), "%.0fm", ceil(x * 1000.0 - 1e-6));
    return json_string(b);
}

static json_t *resources_json(double cpu, double mem, double gpus)
{
    json_t *o = json_object();
    if (!isnan(cpu))
        json_object_set_new(o, "cpu", quantity_json(cpu, false));
    if (!isnan(mem))
        json_object_set_new(o, "memory", quantity_json(mem, true));
    if (!isnan(gpus))
        json_object_set_new(o, "nvidia.com/gpu", quantity_json(gpus, true));
    return o;
}

static void set_num(json_t *o, const char *key, double v)
{
    if (isfinite(v))
        json_object_set_new(o, key, json_real(v));
}

json_t *dd_rs_outcome_to_json(const struct dd_rs_outcome *o)
{
    const struct dd_rs_pod *p = &o->pod;
    json_t *doc = json_object(), *ann = json_object();

    json_object_set_new(doc, "pod_uid", json_string(o->pod_uid));
    json_object_set_new(doc, "namespace", json_string(o->ns));
    json_object_set_new(doc, "owner",
                        json_pack("{s:s, s:s}", "kind", o->owner_kind, "name", o->owner_name));
    if (*p->framework)
        json_object_set_new(ann, "dedupd.io/framework", json_string(p->framework));
    if (*p->model)
        json_object_set_new(ann, "dedupd.io/model", json_string(p->model));
    if (*p->workload)
        json_object_set_new(ann, "dedupd.io/workload", json_string(p->workload));
    if (*p->rightsize)
        json_object_set_new(ann, "dedupd.io/rightsize", json_string(p->rightsize));
    if (o->live.n_nodes || isfinite(o->live.top_slowdown_pct) || isfinite(o->live.top_cpu_util) ||
        isfinite(o->live.top_free_gpus)) {
        json_t *live = json_object();
        set_num(live, "top_slowdown_pct", o->live.top_slowdown_pct);
        set_num(live, "top_cpu_util", o->live.top_cpu_util);
        set_num(live, "top_free_gpus", o->live.top_free_gpus);
        json_object_set_new(live, "n_nodes", json_integer((json_int_t)o->live.n_nodes));
        json_t *pred = json_pack("{s:o}", "live", live);
        char *text = json_dumps(pred, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
        if (text)
            json_object_set_new(ann, "dedupd.io/rightsize-prediction", json_string(text));
        free(text);
        json_decref(pred);
    }
    json_object_set_new(doc, "annotations", ann);
    json_object_set_new(doc, "requests",
                        resources_json(p->cpu_request, p->memory_request, p->gpus));
    json_object_set_new(doc, "limits", resources_json(p->cpu_limit, p->memory_limit, (double)NAN));
    if (*p->name)
        json_object_set_new(doc, "name", json_string(p->name));
    if (*p->image)
        json_object_set_new(doc, "image", json_string(p->image));
    if (p->n_claims)
        json_object_set_new(doc, "claims", json_integer((json_int_t)p->n_claims));
    if (*o->node)
        json_object_set_new(doc, "node", json_string(o->node));
    set_num(doc, "started_at", o->started_at);
    set_num(doc, "finished_at", o->finished_at);
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        if (t != DD_RS_RUNTIME)
            set_num(doc, dd_rs_target_names[t], o->target[t]);
    }
    if (o->exit_code != INT32_MIN)
        json_object_set_new(doc, "exit_code", json_integer(o->exit_code));
    if (*o->reason)
        json_object_set_new(doc, "reason", json_string(o->reason));
    return doc;
}

/* ---------------------------------------------------------- the data */

struct row {
    double time;
    uint32_t owner;
    int32_t cat[DD_RS_NCAT]; /* into d->cats; -1 for "" */
    float num[DD_RS_NFEATURES];
    double y[DD_RS_NTARGETS];
    double oom_limit; /* NaN: not OOMKilled */
    bool dead;        /* replaced by a later outcome of the same pod */
};

struct dd_rs_data {
    struct row *rows;
    size_t n, cap, live;
    struct strtab owners, cats[DD_RS_NCAT], uids;
    uint32_t *uid_row; /* per uid: its row */
    size_t uid_cap;
    /* per owner: its rows in insertion order */
    struct owner_rows {
        uint32_t *idx;
        size_t n, cap;
    } * by_owner;
    size_t by_owner_cap, n_by_owner;
};

int dd_rs_data_new(struct dd_rs_data **ret)
{
    *ret = dd_calloc(1, sizeof(**ret));
    return *ret ? 0 : -ENOMEM;
}

struct dd_rs_data *dd_rs_data_free(struct dd_rs_data *d)
{
    if (!d)
        return NULL;
    strtab_release(&d->owners);
    strtab_release(&d->uids);
    for (int i = 0; i < DD_RS_NCAT; i++)
        strtab_release(&d->cats[i]);
    for (size_t i = 0; i < d->n_by_owner; i++)
        dd_free(d->by_owner[i].idx);
    dd_free(d->by_owner);
    dd_free(d->uid_row);
    dd_free(d->rows);
    dd_free(d);
    return NULL;
}

size_t dd_rs_data_rows(const struct dd_rs_data *d)
{
    return d->live;
}

size_t dd_rs_data_owners(const struct dd_rs_data *d)
{
    return d->owners.n;
}

static const char *cat_value(const struct dd_rs_pod *p, int i, const char *owner_key, char *buf,
                             size_t len)
{
    switch (i + CAT0) {
    case DD_RS_F_FRAMEWORK:
        return p->framework;
    case DD_RS_F_MODEL:
        return p->model;
    case DD_RS_F_WORKLOAD:
        return p->workload;
    case DD_RS_F_OWNER_KIND:
        return p->owner_kind;
    case DD_RS_F_OWNER:
        return owner_key;
    default: {
        /* the image's repository: a new tag is the same program */
        const char *s = p->image, *slash = strrchr(s, '/'), *at = strchr(s, '@');
        const char *colon = strchr(slash ? slash : s, ':');
        size_t n = at ? (size_t)(at - s) : colon ? (size_t)(colon - s) : strlen(s);
        snprintf(buf, len, "%.*s", (int)n, s);
        return buf;
    }
    }
}

/* the static and live columns of a row (history columns are the caller's) */
static void static_columns(const struct dd_rs_pod *p, const struct dd_rs_live *l, float *num)
{
    for (int f = 0; f < DD_RS_NFEATURES; f++)
        num[f] = NAN;
    num[DD_RS_F_CPU_REQUEST] = (float)p->cpu_request;
    num[DD_RS_F_CPU_LIMIT] = (float)p->cpu_limit;
    num[DD_RS_F_MEMORY_REQUEST] = (float)p->memory_request;
    num[DD_RS_F_MEMORY_LIMIT] = (float)p->memory_limit;
    num[DD_RS_F_GPUS] = (float)p->gpus;
    num[DD_RS_F_N_CLAIMS] = (float)p->n_claims;
    num[DD_RS_F_N_CONTAINERS] = p->n_containers ? (float)p->n_containers : NAN;
    if (l) {
        num[DD_RS_F_LIVE_SLOWDOWN] = (float)l->top_slowdown_pct;
        num[DD_RS_F_LIVE_CPU_UTIL] = (float)l->top_cpu_util;
        num[DD_RS_F_LIVE_FREE_GPUS] = (float)l->top_free_gpus;
    }
}

int dd_rs_data_add(struct dd_rs_data *d, const struct dd_rs_outcome *o, double seq)
{
    char key[3 * DD_NAME_MAX + 160], img[256];
    struct row r;
    long owner, uid;

    memset(&r, 0, sizeof(r));
    r.time = isfinite(o->finished_at)  ? o->finished_at
             : isfinite(o->started_at) ? o->started_at
                                       : seq;
    dd_rs_owner_key(o->ns, o->owner_kind, o->owner_name, o->pod.name, o->pod_uid, key, sizeof(key));
    if (dd_array_reserve((void **)&d->by_owner, &d->by_owner_cap, d->owners.n + 1,
                         sizeof(*d->by_owner)) < 0)
        return -ENOMEM;
    if ((owner = strtab_intern(&d->owners, key)) < 0)
        return -ENOMEM;
    if ((size_t)owner == d->n_by_owner) {
        memset(&d->by_owner[owner], 0, sizeof(d->by_owner[owner]));
        d->n_by_owner++;
    }
    r.owner = (uint32_t)owner;
    for (int i = 0; i < DD_RS_NCAT; i++) {
        const char *s = cat_value(&o->pod, i, key, img, sizeof(img));
        long c = *s ? strtab_intern(&d->cats[i], s) : -1;
        if (*s && c < 0)
            return -ENOMEM;
        r.cat[i] = (int32_t)c;
    }
    static_columns(&o->pod, &o->live, r.num);
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        r.y[t] = o->target[t];
    r.oom_limit = (double)NAN;
    if (strcmp(o->reason, "OOMKilled") == 0) {
        r.oom_limit = isfinite(o->pod.memory_limit) ? o->pod.memory_limit : o->target[DD_RS_MEMORY];
        if (!isfinite(r.oom_limit))
            r.oom_limit = o->pod.memory_request;
    }
    if (dd_array_reserve((void **)&d->rows, &d->cap, d->n + 1, sizeof(*d->rows)) < 0)
        return -ENOMEM;
    struct owner_rows *orow = &d->by_owner[owner];
    if (dd_array_reserve((void **)&orow->idx, &orow->cap, orow->n + 1, sizeof(*orow->idx)) < 0)
        return -ENOMEM;
    size_t before = d->uids.n;
    if ((uid = strtab_intern(&d->uids, o->pod_uid)) < 0)
        return -ENOMEM;
    if (dd_array_reserve((void **)&d->uid_row, &d->uid_cap, d->uids.n, sizeof(*d->uid_row)) < 0)
        return -ENOMEM;
    if (d->uids.n == before) { /* a repeated pod: its earlier row is gone */
        d->rows[d->uid_row[uid]].dead = true;
        d->live--;
    }
    d->uid_row[uid] = (uint32_t)d->n;
    orow->idx[orow->n++] = (uint32_t)d->n;
    d->rows[d->n++] = r;
    d->live++;
    return 0;
}

/* ---------------------------------------------------------- history */

struct hist_entry {
    atomic_uint refs;
    char *key;
    struct dd_rs_history h;
    double gm[DD_RS_NTARGETS]; /* geometric mean of target + floor, minus floor; NaN none */
};

struct hist_table {
    atomic_uint refs;
    struct hist_entry **slot; /* open addressing on the key */
    size_t nslot, n;
};

static void entry_unref(struct hist_entry *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1) {
        dd_free(e->key);
        dd_free(e);
    }
}

static void table_unref(struct hist_table *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        for (size_t i = 0; i < t->nslot; i++)
            entry_unref(t->slot[i]);
        dd_free(t->slot);
        dd_free(t);
    }
}

static const struct hist_entry *table_find(const struct hist_table *t, const char *key)
{
    if (!t || !t->nslot)
        return NULL;
    size_t h = (size_t)XXH3_64bits(key, strlen(key)) & (t->nslot - 1);
    for (;; h = (h + 1) & (t->nslot - 1)) {
        if (!t->slot[h])
            return NULL;
        if (strcmp(t->slot[h]->key, key) == 0)
            return t->slot[h];
    }
}

/* puts e (its reference taken) into t, which has room */
static void table_put(struct hist_table *t, struct hist_entry *e)
{
    size_t h = (size_t)XXH3_64bits(e->key, strlen(e->key)) & (t->nslot - 1);
    for (;; h = (h + 1) & (t->nslot - 1)) {
        if (!t->slot[h]) {
            t->slot[h] = e;
            t->n++;
            return;
        }
        if (strcmp(t->slot[h]->key, e->key) == 0) {
            entry_unref(t->slot[h]);
            t->slot[h] = e;
            return;
        }
    }
}

static struct hist_table *table_new(size_t owners)
{
    struct hist_table *t = dd_calloc(1, sizeof(*t));
    size_t n = 16;
    while (n < owners * 2 + 2)
        n *= 2;
    if (!t || !(t->slot = dd_calloc(n, sizeof(*t->slot)))) {
        dd_free(t);
        return NULL;
    }
    t->nslot = n;
    atomic_init(&t->refs, 1);
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the p-quantile of v[0..n) (sorted in place), linear between ranks */
static double quantile(double *v, size_t n, double p)
{
    if (!n)
        return (double)NAN;
    qsort(v, n, sizeof(*v), cmp_double);
    double pos = p * (double)(n - 1);
    size_t i = (size_t)pos;
    if (i + 1 >= n)
        return v[n - 1];
    return v[i] + (v[i + 1] - v[i]) * (pos - (double)i);
}

static int cmp_row_time(const void *a, const void *b, void *arg)
{
    const struct row *rows = arg;
    double x = rows[*(const uint32_t *)a].time, y = rows[*(const uint32_t *)b].time;
    if (x != y)
        return (x > y) - (x < y);
    return (*(const uint32_t *)a > *(const uint32_t *)b) -
           (*(const uint32_t *)a < *(const uint32_t *)b);
}

/* One owner's history from its live rows. */
static struct hist_entry *build_entry(const struct dd_rs_data *d, uint32_t owner)
{
    const struct owner_rows *o = &d->by_owner[owner];
    struct hist_entry *e = dd_calloc(1, sizeof(*e));
    uint32_t *idx = dd_calloc(o->n ? o->n : 1, sizeof(*idx));
    double *v = dd_calloc(DD_RS_HISTORY_WINDOW, sizeof(*v));
    size_t n = 0;

    if (!e || !idx || !v || !(e->key = dd_strdup(d->owners.s[owner]))) {
        if (e)
            dd_free(e->key);
        dd_free(e);
        dd_free(idx);
        dd_free(v);
        return NULL;
    }
    atomic_init(&e->refs, 1);
    for (size_t i = 0; i < o->n; i++) {
        if (!d->rows[o->idx[i]].dead)
            idx[n++] = o->idx[i];
    }
    qsort_r(idx, n, sizeof(*idx), cmp_row_time, d->rows);
    e->h.n = n;
    e->h.max_memory_bytes = (double)NAN;
    e->h.last_oom_memory_limit = (double)NAN;
    size_t first = n > DD_RS_HISTORY_WINDOW ? n - DD_RS_HISTORY_WINDOW : 0;
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        size_t k = 0, m = 0;
        double s = 0;
        for (size_t i = 0; i < n; i++) {
            double y = d->rows[idx[i]].y[t];
            if (!isfinite(y))
                continue;
            s += log(y + target_floor[t]);
            m++;
            if (i >= first)
                v[k++] = y;
        }
        e->h.p95[t] = quantile(v, k, DD_RS_FALLBACK_PERCENTILE);
        e->gm[t] = m ? exp(s / (double)m) - target_floor[t] : (double)NAN;
    }
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &d->rows[idx[i]];
        e->h.max_memory_bytes = max_nan(e->h.max_memory_bytes, r->y[DD_RS_MEMORY]);
        if (!isnan(r->oom_limit)) {
            e->h.oom_killed++;
            e->h.last_oom_memory_limit = r->oom_limit;
        }
    }
    dd_free(idx);
    dd_free(v);
    return e;
}

/* ---------------------------------------------------------- the model */

struct trees {
    atomic_uint refs;
    uint64_t version, trained_at_ms;
    BoosterHandle booster[DD_RS_NTARGETS]; /* NULL: not trained */
    bool served[DD_RS_NTARGETS];
    size_t train_rows[DD_RS_NTARGETS], holdout_rows[DD_RS_NTARGETS], fallback_rows[DD_RS_NTARGETS];
    double model_mape[DD_RS_NTARGETS], fallback_mape[DD_RS_NTARGETS];
    struct strtab dict[DD_RS_NCAT];
};

struct dd_rs_model {
    atomic_uint refs;
    struct trees *trees;     /* NULL: none */
    struct hist_table *hist; /* never NULL */
};

static void trees_unref(struct trees *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        for (int i = 0; i < DD_RS_NTARGETS; i++) {
            if (t->booster[i])
                XGBoosterFree(t->booster[i]);
        }
        for (int i = 0; i < DD_RS_NCAT; i++)
            strtab_release(&t->dict[i]);
        dd_free(t);
    }
}

struct dd_rs_model *dd_rs_model_ref(const struct dd_rs_model *m_c)
{
    struct dd_rs_model *m = (struct dd_rs_model *)(uintptr_t)m_c;
    if (m)
        atomic_fetch_add(&m->refs, 1);
    return m;
}

struct dd_rs_model *dd_rs_model_unref(struct dd_rs_model *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        trees_unref(m->trees);
        table_unref(m->hist);
        dd_free(m);
    }
    return NULL;
}

uint64_t dd_rs_model_version(const struct dd_rs_model *m)
{
    return m && m->trees ? m->trees->version : 0;
}

bool dd_rs_model_has_trees(const struct dd_rs_model *m)
{
    return m && m->trees;
}

size_t dd_rs_model_owners(const struct dd_rs_model *m)
{
    return m ? m->hist->n : 0;
}

static void history_empty(struct dd_rs_history *h)
{
    memset(h, 0, sizeof(*h));
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        h->p95[t] = (double)NAN;
    h->max_memory_bytes = h->last_oom_memory_limit = (double)NAN;
}

void dd_rs_model_history(const struct dd_rs_model *m, const char *key, struct dd_rs_history *out)
{
    const struct hist_entry *e = m ? table_find(m->hist, key) : NULL;
    if (e)
        *out = e->h;
    else
        history_empty(out);
}

int dd_rs_model_with_history(const struct dd_rs_model *m, const struct dd_rs_data *d,
                             const char *owner_key, struct dd_rs_model **ret)
{
    struct dd_rs_model *n = dd_calloc(1, sizeof(*n));
    size_t owners = d->owners.n + (m ? m->hist->n : 0);

    if (!n)
        return -ENOMEM;
    atomic_init(&n->refs, 1);
    if (!(n->hist = table_new(owners)))
        goto nomem;
    if (owner_key && m) {
        /* share every other owner's entry */
        for (size_t i = 0; i < m->hist->nslot; i++) {
            struct hist_entry *e = m->hist->slot[i];
            if (e) {
                atomic_fetch_add(&e->refs, 1);
                table_put(n->hist, e);
            }
        }
    }
    for (size_t o = 0; o < d->owners.n; o++) {
        if (owner_key && strcmp(d->owners.s[o], owner_key) != 0)
            continue;
        struct hist_entry *e = build_entry(d, (uint32_t)o);
        if (!e)
            goto nomem;
        table_put(n->hist, e);
    }
    if (m && m->trees) {
        n->trees = m->trees;
        atomic_fetch_add(&n->trees->refs, 1);
    }
    *ret = n;
    return 0;
nomem:
    dd_rs_model_unref(n);
    return -ENOMEM;
}

/* history columns of a row from an entry's figures */
static void history_columns(float *num, size_t n, const double gm[DD_RS_NTARGETS], double oom_limit)
{
    num[DD_RS_F_HIST_N] = (float)n;
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        num[DD_RS_F_HIST_CPU + t] = n ? (float)gm[t] : NAN;
    num[DD_RS_F_HIST_OOM_LIMIT] = (float)oom_limit;
}

void dd_rs_model_row(const struct dd_rs_model *m, const struct dd_rs_pod *pod,
                     const struct dd_rs_live *live, float row[DD_RS_NFEATURES])
{
    char key[3 * DD_NAME_MAX + 160], img[256];
    const struct hist_entry *e;

    dd_rs_pod_owner_key(pod, key, sizeof(key));
    static_columns(pod, live, row);
    for (int i = 0; i < DD_RS_NCAT; i++) {
        const char *s = cat_value(pod, i, key, img, sizeof(img));
        long c = (*s && m && m->trees) ? strtab_find(&m->trees->dict[i], s) : -1;
        row[CAT0 + i] = c >= 0 ? (float)c : NAN;
    }
    e = m ? table_find(m->hist, key) : NULL;
    if (e)
        history_columns(row, e->h.n, e->gm, e->h.last_oom_memory_limit);
    else {
        double none[DD_RS_NTARGETS];
        for (int t = 0; t < DD_RS_NTARGETS; t++)
            none[t] = (double)NAN;
        history_columns(row, 0, none, (double)NAN);
    }
}

/* n rows through target t's booster into out (the target's own units).
 * Copies results out of XGBoost's per-thread buffer at once. */
static int predict_rows(BoosterHandle b, int t, const float *X, size_t n, double *out, char *err,
                        size_t errlen)
{
    const float *res;
    bst_ulong total;
    int r;

    if (!n)
        return 0;
    r = dd_xgb_predict_dense(b, X, n, DD_RS_NFEATURES, 0, &res, &total, err, errlen);
    if (r < 0)
        return r;
    if (total != n) {
        snprintf(err, errlen, "XGBoost returned %llu values for %zu rows",
                 (unsigned long long)total, n);
        return DD_E_LIBRARY;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = DD_MAX(0.0, exp((double)res[i]) - target_floor[t]);
    return 0;
}

int dd_rs_predict(const struct dd_rs_model *m, const struct dd_rs_pod *pod,
                  const struct dd_rs_live *live, struct dd_rs_prediction *out)
{
    char key[3 * DD_NAME_MAX + 160];
    float row[DD_RS_NFEATURES];
    struct dd_rs_live none;
    int ret = 0;

    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        out->value[t] = (double)NAN;
        out->source[t] = "none";
    }
    out->model_version = 0;
    history_empty(&out->history);
    if (!pod)
        return -EINVAL;
    if (!live) {
        live_unknown(&none);
        live = &none;
    }
    dd_rs_pod_owner_key(pod, key, sizeof(key));
    dd_rs_model_history(m, key, &out->history);
    if (m && m->trees) {
        out->model_version = m->trees->version;
        dd_rs_model_row(m, pod, live, row);
    }
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        double v;
        if (m && m->trees && m->trees->booster[t] && m->trees->served[t] &&
            predict_rows(m->trees->booster[t], t, row, 1, &v, NULL, 0) == 0 && isfinite(v)) {
            out->value[t] = v;
            out->source[t] = "model";
        } else if (out->history.n && isfinite(out->history.p95[t])) {
            out->value[t] = out->history.p95[t];
            out->source[t] = "history";
        }
    }
    /* an OOM kill says the limit was too low, whatever the trees think */
    if (out->history.oom_killed && isfinite(out->history.last_oom_memory_limit)) {
        double floor_v = out->history.last_oom_memory_limit * DD_RS_OOM_FACTOR;
        if (!isfinite(out->value[DD_RS_MEMORY]) || out->value[DD_RS_MEMORY] < floor_v) {
            out->value[DD_RS_MEMORY] = floor_v;
            out->source[DD_RS_MEMORY] = "history";
        }
    }
    return ret;
}

/* ---------------------------------------------------------- training */

void dd_rs_train_options_init(struct dd_rs_train_options *o)
{
    /* 150 rounds of depth 5 at eta 0.1: on the generator (bench/rsgen.c)
     * the hold-out MAPE stops improving past ~120 rounds; depth 5 lets a
     * tree combine requests, framework, workload and history */
    o->rounds = 150;
    o->max_depth = 5;
    o->eta = 0.1;
    o->holdout_fraction = 0.2;
    o->min_rows = 50;
    o->nthread = 1;
}

/* Per-owner running figures while rows are replayed in time order. */
struct running {
    size_t n;
    double logsum[DD_RS_NTARGETS];
    size_t cnt[DD_RS_NTARGETS];
    double oom_limit;
    uint32_t *seen; /* row indexes so far, time order */
    size_t nseen, cap;
};

static double mape(const double *pred, const double *y, const unsigned char *use, size_t n,
                   size_t *count)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((use && !use[i]) || !(y[i] > 0) || !isfinite(pred[i]))
            continue;
        s += fabs(pred[i] - y[i]) / y[i];
        k++;
    }
    if (count)
        *count = k;
    return k ? 100.0 * s / (double)k : (double)NAN;
}

static int train_target(struct trees *tr, int t, size_t n, const double *Y, const float *X,
                        const double *fb, const struct dd_rs_train_options *o, char *err,
                        size_t errlen)
{
    size_t k = 0, nhold, ntrain, nf = 0;
    uint32_t *idx = dd_calloc(n ? n : 1, sizeof(*idx));
    float *Xt = NULL, *yl = NULL;
    double *pred = NULL, *y = NULL, *f = NULL;
    unsigned char *use = NULL;
    char depth[16], eta[32], nthread[16];
    const char *const params[][2] = {
        {"objective", "reg:squarederror"},
        {"tree_method", "hist"},
        {"max_depth", depth},
        {"eta", eta},
        {"nthread", nthread},
        {"seed", "0"},
        {"min_child_weight", "2"},
        {"verbosity", "0"},
    };
    int r = -ENOMEM;

    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        double v = Y[i * DD_RS_NTARGETS + (size_t)t];
        if (isfinite(v) && v >= 0)
            idx[k++] = (uint32_t)i; /* position in time order */
    }
    tr->model_mape[t] = tr->fallback_mape[t] = (double)NAN;
    if (k < o->min_rows || k < 10) {
        dd_free(idx);
        return 0; /* not enough: no booster */
    }
    nhold = (size_t)((double)k * o->holdout_fraction);
    nhold = DD_MAX(nhold, 1);
    ntrain = k - nhold;
    Xt = dd_calloc(k * DD_RS_NFEATURES, sizeof(float));
    yl = dd_calloc(ntrain, sizeof(float));
    pred = dd_calloc(nhold, sizeof(double));
    y = dd_calloc(nhold, sizeof(double));
    f = dd_calloc(nhold, sizeof(double));
    use = dd_calloc(nhold, 1);
    if (!Xt || !yl || !pred || !y || !f || !use)
        goto out;
    for (size_t i = 0; i < k; i++) {
        memcpy(Xt + i * DD_RS_NFEATURES, X + (size_t)idx[i] * DD_RS_NFEATURES,
               sizeof(float) * DD_RS_NFEATURES);
        double v = Y[(size_t)idx[i] * DD_RS_NTARGETS + (size_t)t];
        if (i < ntrain)
            yl[i] = (float)log(v + target_floor[t]);
        else {
            y[i - ntrain] = v;
            f[i - ntrain] = fb[(size_t)idx[i] * DD_RS_NTARGETS + (size_t)t];
        }
    }
    snprintf(depth, sizeof(depth), "%u", o->max_depth);
    snprintf(eta, sizeof(eta), "%g", o->eta);
    snprintf(nthread, sizeof(nthread), "%u", o->nthread ? o->nthread : 1);
    r = dd_xgb_train(&tr->booster[t], Xt, yl, ntrain, DD_RS_NFEATURES, params,
                     DD_ARRAY_SIZE(params), o->rounds, err, errlen);
    /* predictions share the model across threads: one thread each */
    if (r == 0)
        r = dd_xgb_check(XGBoosterSetParam(tr->booster[t], "nthread", "1"), "setting nthread", err,
                         errlen);
    if (r == 0)
        r = predict_rows(tr->booster[t], t, Xt + ntrain * DD_RS_NFEATURES, nhold, pred, err,
                         errlen);
    if (r < 0)
        goto out;
    for (size_t i = 0; i < nhold; i++) {
        use[i] = isfinite(f[i]) ? 1 : 0;
        nf += use[i];
    }
    tr->train_rows[t] = ntrain;
    tr->holdout_rows[t] = nhold;
    tr->fallback_mape[t] = mape(f, y, use, nhold, &tr->fallback_rows[t]);
    if (tr->fallback_rows[t]) {
        /* compared on the same rows */
        double mm = mape(pred, y, use, nhold, NULL);
        tr->served[t] = isfinite(mm) && mm < tr->fallback_mape[t];
    } else {
        tr->served[t] = isfinite(mape(pred, y, NULL, nhold, NULL));
    }
    tr->model_mape[t] = mape(pred, y, NULL, nhold, NULL);
    (void)nf;
out:
    dd_free(idx);
    dd_free(Xt);
    dd_free(yl);
    dd_free(pred);
    dd_free(y);
    dd_free(f);
    dd_free(use);
    return r;
}

struct dd_rs_prepared {
    struct dd_rs_train_options o;
    struct trees *tr; /* the dictionary filled; no boosters yet */
    size_t n;
    float *X;   /* n x DD_RS_NFEATURES, time order */
    double *Y;  /* n x DD_RS_NTARGETS */
    double *fb; /* n x DD_RS_NTARGETS: the fallback before each row */
};

void dd_rs_prepared_free(struct dd_rs_prepared *p)
{
    if (!p)
        return;
    trees_unref(p->tr);
    dd_free(p->X);
    dd_free(p->Y);
    dd_free(p->fb);
    dd_free(p);
}

int dd_rs_train_prepare(const struct dd_rs_data *d, const struct dd_rs_model *prev,
                        const struct dd_rs_train_options *o, struct dd_rs_prepared **ret)
{
    struct dd_rs_prepared *p = dd_calloc(1, sizeof(*p));
    struct running *run = dd_calloc(d->owners.n ? d->owners.n : 1, sizeof(*run));
    uint32_t *order = dd_calloc(d->n ? d->n : 1, sizeof(*order));
    double *win = dd_calloc(DD_RS_HISTORY_WINDOW, sizeof(double));
    int32_t *code[DD_RS_NCAT] = {0};
    size_t rows = d->live ? d->live : 1, n = 0;
    struct trees *tr;
    int r = -ENOMEM;

    if (!p || !run || !order || !win)
        goto out;
    if (o)
        p->o = *o;
    else
        dd_rs_train_options_init(&p->o);
    p->X = dd_calloc(rows * DD_RS_NFEATURES, sizeof(float));
    p->Y = dd_calloc(rows * DD_RS_NTARGETS, sizeof(double));
    p->fb = dd_calloc(rows * DD_RS_NTARGETS, sizeof(double));
    if (!p->X || !p->Y || !p->fb || !(p->tr = dd_calloc(1, sizeof(*p->tr))))
        goto out;
    tr = p->tr;
    atomic_init(&tr->refs, 1);
    for (size_t i = 0; i < d->n; i++) {
        if (!d->rows[i].dead)
            order[n++] = (uint32_t)i;
    }
    qsort_r(order, n, sizeof(*order), cmp_row_time, d->rows);
    /* the dictionary: the predecessor's codes first, then new values in
     * time order of their first appearance */
    for (int c = 0; c < DD_RS_NCAT; c++) {
        if (prev && prev->trees && strtab_copy(&tr->dict[c], &prev->trees->dict[c]) < 0)
            goto out;
        if (!(code[c] = dd_calloc(d->cats[c].n ? d->cats[c].n : 1, sizeof(int32_t))))
            goto out;
        for (size_t i = 0; i < d->cats[c].n; i++)
            code[c][i] = -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct row *rw = &d->rows[order[i]];
        struct running *ru = &run[rw->owner];
        float *x = p->X + i * DD_RS_NFEATURES;
        double gm[DD_RS_NTARGETS];

        memcpy(x, rw->num, sizeof(rw->num));
        memcpy(p->Y + i * DD_RS_NTARGETS, rw->y, sizeof(rw->y));
        for (int c = 0; c < DD_RS_NCAT; c++) {
            int32_t v = rw->cat[c];
            if (v >= 0 && code[c][v] < 0) {
                long k = strtab_intern(&tr->dict[c], d->cats[c].s[v]);
                if (k < 0)
                    goto out;
                code[c][v] = (int32_t)k;
            }
            x[CAT0 + c] = v >= 0 ? (float)code[c][v] : (float)NAN;
        }
        /* history before this row: what dd_rs_predict would have seen */
        for (int t = 0; t < DD_RS_NTARGETS; t++)
            gm[t] = ru->cnt[t] ? exp(ru->logsum[t] / (double)ru->cnt[t]) - target_floor[t]
                               : (double)NAN;
        history_columns(x, ru->n, gm, ru->n ? ru->oom_limit : (double)NAN);
        /* the fallback as it stood: p95 over the owner's newest window */
        size_t first = ru->nseen > DD_RS_HISTORY_WINDOW ? ru->nseen - DD_RS_HISTORY_WINDOW : 0;
        for (int t = 0; t < DD_RS_NTARGETS; t++) {
            size_t k = 0;
            for (size_t j = first; j < ru->nseen; j++) {
                double y = d->rows[ru->seen[j]].y[t];
                if (isfinite(y))
                    win[k++] = y;
            }
            p->fb[i * DD_RS_NTARGETS + (size_t)t] = quantile(win, k, DD_RS_FALLBACK_PERCENTILE);
        }
        /* then the row joins its owner's history */
        if (ru->n == 0)
            ru->oom_limit = (double)NAN;
        ru->n++;
        for (int t = 0; t < DD_RS_NTARGETS; t++) {
            if (isfinite(rw->y[t])) {
                ru->logsum[t] += log(rw->y[t] + target_floor[t]);
                ru->cnt[t]++;
            }
        }
        if (!isnan(rw->oom_limit))
            ru->oom_limit = rw->oom_limit;
        if (dd_array_reserve((void **)&ru->seen, &ru->cap, ru->nseen + 1, sizeof(*ru->seen)) < 0)
            goto out;
        ru->seen[ru->nseen++] = order[i];
    }
    p->n = n;
    *ret = p;
    p = NULL;
    r = 0;
out:
    dd_rs_prepared_free(p);
    if (run) {
        for (size_t i = 0; i < d->owners.n; i++)
            dd_free(run[i].seen);
    }
    dd_free(run);
    dd_free(order);
    dd_free(win);
    for (int c = 0; c < DD_RS_NCAT; c++)
        dd_free(code[c]);
    return r;
}

size_t dd_rs_prepared_rows(const struct dd_rs_prepared *p)
{
    return p->n;
}

int dd_rs_train_fit(struct dd_rs_prepared *p, uint64_t version, uint64_t trained_at_ms,
                    struct dd_rs_model **ret, char *err, size_t errlen)
{
    struct dd_rs_model *m;
    bool any = false;
    int r = 0;

    p->tr->version = version;
    p->tr->trained_at_ms = trained_at_ms;
    for (int t = 0; t < DD_RS_NTARGETS && r == 0; t++) {
        if (p->tr->booster[t]) {
            XGBoosterFree(p->tr->booster[t]);
            p->tr->booster[t] = NULL;
        }
        r = train_target(p->tr, t, p->n, p->Y, p->X, p->fb, &p->o, err, errlen);
        any |= p->tr->booster[t] != NULL;
    }
    if (r < 0)
        return r;
    if (!any) {
        snprintf(err, errlen, "%zu outcomes: no target has %u with a value yet", p->n,
                 p->o.min_rows);
        return -EINVAL;
    }
    if (!(m = dd_calloc(1, sizeof(*m))) || !(m->hist = table_new(0))) {
        dd_free(m);
        return -ENOMEM;
    }
    atomic_init(&m->refs, 1);
    m->trees = p->tr;
    atomic_fetch_add(&p->tr->refs, 1);
    *ret = m;
    return 0;
}

int dd_rs_model_combine(const struct dd_rs_model *trees_from, const struct dd_rs_model *hist_from,
                        struct dd_rs_model **ret)
{
    struct dd_rs_model *m = dd_calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    atomic_init(&m->refs, 1);
    if (hist_from) {
        m->hist = hist_from->hist;
        atomic_fetch_add(&m->hist->refs, 1);
    } else if (!(m->hist = table_new(0))) {
        dd_free(m);
        return -ENOMEM;
    }
    if (trees_from && trees_from->trees) {
        m->trees = trees_from->trees;
        atomic_fetch_add(&m->trees->refs, 1);
    }
    *ret = m;
    return 0;
}

int dd_rs_train(const struct dd_rs_data *d, const struct dd_rs_model *prev,
                const struct dd_rs_train_options *o, uint64_t version, uint64_t trained_at_ms,
                struct dd_rs_model **ret, char *err, size_t errlen)
{
    struct dd_rs_prepared *p = NULL;
    struct dd_rs_model *trees = NULL, *hist = NULL;
    int r = dd_rs_train_prepare(d, prev, o, &p);

    if (r == 0)
        r = dd_rs_train_fit(p, version, trained_at_ms, &trees, err, errlen);
    if (r == 0)
        r = dd_rs_model_with_history(NULL, d, NULL, &hist);
    if (r == 0)
        r = dd_rs_model_combine(trees, hist, ret);
    dd_rs_prepared_free(p);
    dd_rs_model_unref(trees);
    dd_rs_model_unref(hist);
    return r;
}

/* ---------------------------------------------------------- summary */

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *dd_rs_model_summary(const struct dd_rs_model *m)
{
    json_t *doc = json_object(), *targets = json_object(), *cats = json_object();
    const struct trees *tr = m ? m->trees : NULL;

    json_object_set_new(doc, "version", json_integer((json_int_t)(tr ? tr->version : 0)));
    json_object_set_new(doc, "trained_at_ms",
                        json_integer((json_int_t)(tr ? tr->trained_at_ms : 0)));
    for (int t = 0; tr && t < DD_RS_NTARGETS; t++) {
        json_object_set_new(targets, dd_rs_target_names[t],
                            json_pack("{s:I, s:I, s:o, s:o, s:I, s:b}", "train_rows",
                                      (json_int_t)tr->train_rows[t], "holdout_rows",
                                      (json_int_t)tr->holdout_rows[t], "model_mape_percent",
                                      num_or_null(tr->model_mape[t]), "fallback_mape_percent",
                                      num_or_null(tr->fallback_mape[t]), "fallback_rows",
                                      (json_int_t)tr->fallback_rows[t], "served", tr->served[t]));
    }
    for (int c = 0; tr && c < DD_RS_NCAT; c++)
        json_object_set_new(cats, dd_rs_feature_names[CAT0 + c],
                            json_integer((json_int_t)tr->dict[c].n));
    json_object_set_new(doc, "targets", targets);
    json_object_set_new(doc, "categories", cats);
    return doc;
}

/* ---------------------------------------------------------- save/load */

#define MAGIC     "DDRS1"
#define MAGIC_LEN 5u

int dd_rs_model_save(const struct dd_rs_model *m, void **ret, size_t *ret_len)
{
    const struct trees *tr = m ? m->trees : NULL;
    json_t *h, *tj, *dict, *names;
    char *blob[DD_RS_NTARGETS] = {0}, *hdr = NULL, *out = NULL;
    size_t blen[DD_RS_NTARGETS] = {0}, hlen, total, off;
    int r = -ENOMEM;

    if (!tr)
        return -EINVAL;
    h = json_object();
    tj = json_object();
    dict = json_object();
    names = json_array();
    json_object_set_new(h, "version", json_integer((json_int_t)tr->version));
    json_object_set_new(h, "trained_at_ms", json_integer((json_int_t)tr->trained_at_ms));
    for (int f = 0; f < DD_RS_NFEATURES; f++)
        json_array_append_new(names, json_string(dd_rs_feature_names[f]));
    json_object_set_new(h, "features", names);
    for (int c = 0; c < DD_RS_NCAT; c++) {
        json_t *a = json_array();
        for (size_t i = 0; i < tr->dict[c].n; i++)
            json_array_append_new(a, json_string(tr->dict[c].s[i]));
        json_object_set_new(dict, dd_rs_feature_names[CAT0 + c], a);
    }
    json_object_set_new(h, "dictionary", dict);
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        char sum[20] = "";
        if (tr->booster[t]) {
            const char *p;
            bst_ulong len;
            if (XGBoosterSaveModelToBuffer(tr->booster[t], "{\"format\": \"ubj\"}", &len, &p) !=
                0) {
                r = DD_E_LIBRARY;
                goto out;
            }
            if (!(blob[t] = dd_malloc(len ? len : 1)))
                goto out;
            memcpy(blob[t], p, len);
            blen[t] = len;
            snprintf(sum, sizeof(sum), "%016llx",
                     (unsigned long long)XXH3_64bits(blob[t], blen[t]));
        }
        json_object_set_new(tj, dd_rs_target_names[t],
                            json_pack("{s:I, s:s, s:I, s:I, s:I, s:o, s:o, s:b}", "blob",
                                      (json_int_t)blen[t], "xxh3", sum, "train_rows",
                                      (json_int_t)tr->train_rows[t], "holdout_rows",
                                      (json_int_t)tr->holdout_rows[t], "fallback_rows",
                                      (json_int_t)tr->fallback_rows[t], "model_mape_percent",
                                      num_or_null(tr->model_mape[t]), "fallback_mape_percent",
                                      num_or_null(tr->fallback_mape[t]), "served", tr->served[t]));
    }
    json_object_set_new(h, "targets", tj);
    tj = NULL;
    if (!(hdr = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17))))
        goto out;
    hlen = strlen(hdr);
    total = MAGIC_LEN + 4 + hlen;
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        total += blen[t];
    if (!(out = dd_malloc(total)))
        goto out;
    memcpy(out, MAGIC, MAGIC_LEN);
    for (int i = 0; i < 4; i++)
        out[MAGIC_LEN + (size_t)i] = (char)((hlen >> (24 - 8 * i)) & 0xff);
    memcpy(out + MAGIC_LEN + 4, hdr, hlen);
    off = MAGIC_LEN + 4 + hlen;
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        if (blen[t])
            memcpy(out + off, blob[t], blen[t]);
        off += blen[t];
    }
    *ret = out;
    *ret_len = total;
    r = 0;
out:
    json_decref(h);
    free(hdr);
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        dd_free(blob[t]);
    return r;
}

static double num_or_nan(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : (double)NAN;
}

int dd_rs_model_load(const void *buf, size_t len, struct dd_rs_model **ret, char *err,
                     size_t errlen)
{
    const unsigned char *b = buf;
    struct trees *tr = NULL;
    json_t *h = NULL, *targets, *dict, *names;
    json_error_t je;
    size_t hlen, off, boff[DD_RS_NTARGETS] = {0}, blen[DD_RS_NTARGETS] = {0};
    bool same;
    int r = -EINVAL;

    if (len < MAGIC_LEN + 4 || memcmp(b, MAGIC, MAGIC_LEN) != 0) {
        snprintf(err, errlen, "rightsize model: no DDRS1 header");
        return -EINVAL;
    }
    hlen = (size_t)b[MAGIC_LEN] << 24 | (size_t)b[MAGIC_LEN + 1] << 16 |
           (size_t)b[MAGIC_LEN + 2] << 8 | b[MAGIC_LEN + 3];
    if (hlen > len - MAGIC_LEN - 4) {
        snprintf(err, errlen, "rightsize model: header of %zu bytes past the end (%zu)", hlen, len);
        return -EINVAL;
    }
    if (!(h = json_loadb((const char *)b + MAGIC_LEN + 4, hlen, 0, &je))) {
        snprintf(err, errlen, "rightsize model: header at column %d: %s", je.column, je.text);
        return -EINVAL;
    }
    if (!(tr = dd_calloc(1, sizeof(*tr)))) {
        r = -ENOMEM;
        goto out;
    }
    atomic_init(&tr->refs, 1);
    targets = json_object_get(h, "targets");
    dict = json_object_get(h, "dictionary");
    names = json_object_get(h, "features");
    if (!json_is_integer(json_object_get(h, "version")) ||
        json_integer_value(json_object_get(h, "version")) < 1 ||
        !json_is_integer(json_object_get(h, "trained_at_ms")) || !json_is_object(targets) ||
        !json_is_object(dict) || !json_is_array(names)) {
        snprintf(err, errlen,
                 "rightsize model: header lacks version, trained_at_ms, targets, dictionary or "
                 "features");
        goto out;
    }
    tr->version = (uint64_t)json_integer_value(json_object_get(h, "version"));
    tr->trained_at_ms = (uint64_t)json_integer_value(json_object_get(h, "trained_at_ms"));
    same = json_array_size(names) == DD_RS_NFEATURES;
    for (int f = 0; same && f < DD_RS_NFEATURES; f++) {
        const char *s = json_string_value(json_array_get(names, (size_t)f));
        same = s && strcmp(s, dd_rs_feature_names[f]) == 0;
    }
    if (!same) {
        snprintf(err, errlen,
                 "rightsize model: trained on another feature list than this build's (retrain)");
        goto out;
    }
    for (int c = 0; c < DD_RS_NCAT; c++) {
        json_t *a = json_object_get(dict, dd_rs_feature_names[CAT0 + c]), *v;
        size_t i;
        if (!json_is_array(a)) {
            snprintf(err, errlen, "rightsize model: dictionary.%s: expected an array",
                     dd_rs_feature_names[CAT0 + c]);
            goto out;
        }
        json_array_foreach(a, i, v)
        {
            long k;
            if (!json_is_string(v) || (k = strtab_intern(&tr->dict[c], json_string_value(v))) < 0 ||
                (size_t)k != i) {
                snprintf(err, errlen, "rightsize model: dictionary.%s[%zu]: bad or repeated",
                         dd_rs_feature_names[CAT0 + c], i);
                goto out;
            }
        }
    }
    off = MAGIC_LEN + 4 + hlen;
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        json_t *e = json_object_get(targets, dd_rs_target_names[t]);
        json_t *bl = json_object_get(e, "blob");
        const char *want = str_at(e, "xxh3");
        char got[20];
        if (!json_is_object(e) || !json_is_integer(bl) || json_integer_value(bl) < 0 ||
            (uint64_t)json_integer_value(bl) > len - off || !want) {
            snprintf(err, errlen, "rightsize model: %s: bad or missing length",
                     dd_rs_target_names[t]);
            goto out;
        }
        blen[t] = (size_t)json_integer_value(bl);
        boff[t] = off;
        if (blen[t]) {
            snprintf(got, sizeof(got), "%016llx",
                     (unsigned long long)XXH3_64bits(b + off, blen[t]));
            if (strcmp(want, got) != 0) {
                snprintf(err, errlen, "rightsize model: %s booster checksum %s, header says %.20s",
                         dd_rs_target_names[t], got, want);
                goto out;
            }
        }
        json_t *tr_rows = json_object_get(e, "train_rows"),
               *ho = json_object_get(e, "holdout_rows"), *fr = json_object_get(e, "fallback_rows");
        tr->train_rows[t] = json_is_integer(tr_rows) && json_integer_value(tr_rows) >= 0
                                ? (size_t)json_integer_value(tr_rows)
                                : 0;
        tr->holdout_rows[t] =
            json_is_integer(ho) && json_integer_value(ho) >= 0 ? (size_t)json_integer_value(ho) : 0;
        tr->fallback_rows[t] =
            json_is_integer(fr) && json_integer_value(fr) >= 0 ? (size_t)json_integer_value(fr) : 0;
        tr->model_mape[t] = num_or_nan(json_object_get(e, "model_mape_percent"));
        tr->fallback_mape[t] = num_or_nan(json_object_get(e, "fallback_mape_percent"));
        tr->served[t] = json_is_true(json_object_get(e, "served")) && blen[t] > 0;
        off += blen[t];
    }
    if (off != len) {
        snprintf(err, errlen, "rightsize model: %zu bytes after the boosters", len - off);
        goto out;
    }
    r = 0;
    /* only bytes whose checksum matched reach XGBoost's reader */
    for (int t = 0; r == 0 && t < DD_RS_NTARGETS; t++) {
        bst_ulong nf = 0;
        if (!blen[t])
            continue;
        if ((r = dd_xgb_load(&tr->booster[t], b + boff[t], blen[t], &nf, err, errlen)) == 0 &&
            nf != DD_RS_NFEATURES) {
            snprintf(err, errlen, "rightsize model: %s booster has %llu features, not %d",
                     dd_rs_target_names[t], (unsigned long long)nf, DD_RS_NFEATURES);
            r = -EINVAL;
        }
    }
    if (r == 0) {
        struct dd_rs_model *m = dd_calloc(1, sizeof(*m));
        if (!m || !(m->hist = table_new(0))) {
            dd_free(m);
            r = -ENOMEM;
            goto out;
        }
        atomic_init(&m->refs, 1);
        m->trees = tr;
        tr = NULL;
        *ret = m;
    }
out:
    trees_unref(tr);
    json_decref(h);
    return r;
}
