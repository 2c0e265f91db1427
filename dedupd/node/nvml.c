/*
 * GPUs through NVIDIA's management library, loaded at run time with
 * dlopen("libnvidia-ml.so.1") so the daemon neither links nor builds against
 * it and runs unchanged on nodes without NVIDIA hardware. The few types and
 * function pointers used are declared here from nvml.h's stable ABI
 * (nvmlReturn_t is an int enum, 0 is NVML_SUCCESS; device handles are opaque
 * pointers; the _v2 entry points exist since driver 325).
 *
 * This file is NVML's one wrapper (STYLE 3): its return codes become an
 * "unavailable" state with nvmlErrorString's text, never an error of ours
 * and never a crash. Invariants: a session is either available (library
 * open, every symbol resolved, nvmlInit_v2 succeeded, so nvmlShutdown is
 * owed) or not, with a reason; a sample never reports more than
 * DD_NODE_MAX_GPUS devices. NVML is thread-safe, but one session should be
 * sampled from one thread at a time (it is not locked here).
 *
 * Left to others: mapping GPUs to pods (the device plugin knows), and when
 * to retry a session that was unavailable (open a new one).
 */
#include "dedupd/node/node.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

/* ---- the part of nvml.h we use ---- */

typedef int nvml_return_t;                 /* nvmlReturn_t */
typedef struct nvml_device *nvml_device_t; /* nvmlDevice_t, opaque */

struct nvml_utilization {     /* nvmlUtilization_t */
    unsigned int gpu, memory; /* percent */
};

struct nvml_memory {                      /* nvmlMemory_t (v1) */
    unsigned long long total, free, used; /* bytes */
};

#define NVML_SUCCESS 0

typedef nvml_return_t (*nvml_init_fn)(void);
typedef nvml_return_t (*nvml_shutdown_fn)(void);
typedef nvml_return_t (*nvml_count_fn)(unsigned int *);
typedef nvml_return_t (*nvml_handle_fn)(unsigned int, nvml_device_t *);
typedef nvml_return_t (*nvml_util_fn)(nvml_device_t, struct nvml_utilization *);
typedef nvml_return_t (*nvml_memory_fn)(nvml_device_t, struct nvml_memory *);
typedef nvml_return_t (*nvml_name_fn)(nvml_device_t, char *, unsigned int);
typedef const char *(*nvml_error_string_fn)(nvml_return_t);

#define NVML_DEFAULT_LIB "libnvidia-ml.so.1"

struct dd_nvml {
    void *lib; /* dlopen handle, or NULL */
    bool initialised;
    char reason[DD_NODE_REASON_MAX];
    nvml_init_fn init;
    nvml_shutdown_fn shutdown;
    nvml_count_fn count;
    nvml_handle_fn handle;
    nvml_util_fn util;
    nvml_memory_fn memory;
    nvml_name_fn name;
    nvml_error_string_fn error_string;
};

/* dlsym returns void *; ISO C has no conversion to a function pointer, POSIX
 * requires it to work: copy the bytes. */
static bool resolve(struct dd_nvml *n, const char *symbol, void *fnp, size_t size)
{
    void *p;

    (void)dlerror();
    p = dlsym(n->lib, symbol);
    if (!p) {
        const char *e = dlerror();
        snprintf(n->reason, sizeof(n->reason), "%s: %s", symbol, e ? e : "not found");
        return false;
    }
    memcpy(fnp, &p, size);
    return true;
}

#define RESOLVE(n, sym, field) resolve((n), (sym), &(n)->field, sizeof((n)->field))

/* NVML's text for a code, or the number when it has none. */
static void nvml_reason(const struct dd_nvml *n, char *buf, size_t size, const char *what,
                        nvml_return_t rc)
{
    const char *s = n->error_string ? n->error_string(rc) : NULL;

    if (s)
        snprintf(buf, size, "%s: %s", what, s);
    else
        snprintf(buf, size, "%s: NVML error %d", what, rc);
}

int dd_nvml_open(const char *lib_path, struct dd_nvml **ret)
{
    struct dd_nvml *n;
    nvml_return_t rc;

    if (!ret)
        return -EINVAL;
    n = dd_calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    if (!lib_path)
        lib_path = NVML_DEFAULT_LIB;
    (void)dlerror();
    n->lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        const char *e = dlerror();
        snprintf(n->reason, sizeof(n->reason), "%s", e ? e : "dlopen failed");
        *ret = n;
        return 0;
    }
    /* nvmlErrorString first, so later failures can be explained */
    if (!RESOLVE(n, "nvmlErrorString", error_string) || !RESOLVE(n, "nvmlInit_v2", init) ||
        !RESOLVE(n, "nvmlShutdown", shutdown) || !RESOLVE(n, "nvmlDeviceGetCount_v2", count) ||
        !RESOLVE(n, "nvmlDeviceGetHandleByIndex_v2", handle) ||
        !RESOLVE(n, "nvmlDeviceGetUtilizationRates", util) ||
        !RESOLVE(n, "nvmlDeviceGetMemoryInfo", memory) || !RESOLVE(n, "nvmlDeviceGetName", name)) {
        n->error_string = NULL;
        *ret = n;
        return 0;
    }
    rc = n->init();
    if (rc != NVML_SUCCESS) {
        nvml_reason(n, n->reason, sizeof(n->reason), "nvmlInit_v2", rc);
        *ret = n;
        return 0;
    }
    n->initialised = true;
    *ret = n;
    return 0;
}

struct dd_nvml *dd_nvml_free(struct dd_nvml *nvml)
{
    if (!nvml)
        return NULL;
    if (nvml->initialised)
        (void)nvml->shutdown(); /* nothing to do if it fails: we are leaving */
    if (nvml->lib)
        (void)dlclose(nvml->lib);
    dd_free(nvml);
    return NULL;
}

bool dd_nvml_available(const struct dd_nvml *nvml, const char **ret_reason)
{
    if (!nvml) {
        if (ret_reason)
            *ret_reason = "no NVML session";
        return false;
    }
    if (!nvml->initialised && ret_reason)
        *ret_reason = nvml->reason;
    return nvml->initialised;
}

int dd_nvml_sample(struct dd_nvml *nvml, struct dd_gpus *ret)
{
    unsigned int count = 0;
    nvml_return_t rc;

    if (!nvml || !ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    if (!nvml->initialised) {
        snprintf(ret->reason, sizeof(ret->reason), "%s", nvml->reason);
        return 0;
    }
    rc = nvml->count(&count);
    if (rc != NVML_SUCCESS) {
        nvml_reason(nvml, ret->reason, sizeof(ret->reason), "nvmlDeviceGetCount_v2", rc);
        return 0;
    }
    if (count == 0) {
        snprintf(ret->reason, sizeof(ret->reason), "no NVIDIA GPU");
        return 0;
    }
    ret->available = true;
    ret->n_total = count;
    ret->n = DD_MIN(count, DD_NODE_MAX_GPUS);
    for (uint32_t i = 0; i < ret->n; i++) {
        struct dd_gpu *g = &ret->gpus[i];
        struct nvml_utilization u = {0, 0};
        struct nvml_memory m = {0, 0, 0};
        nvml_device_t dev = NULL;

        g->index = i;
        if (nvml->handle(i, &dev) != NVML_SUCCESS)
            continue; /* lost, or no permission: the figures stay absent */
        if (nvml->name(dev, g->name, (unsigned int)sizeof(g->name)) != NVML_SUCCESS)
            g->name[0] = '\0';
        g->name[sizeof(g->name) - 1] = '\0';
        if (nvml->util(dev, &u) == NVML_SUCCESS) {
            g->has_util = true;
            g->util_gpu_pct = u.gpu;
            g->util_memory_pct = u.memory;
        }
        if (nvml->memory(dev, &m) == NVML_SUCCESS) {
            g->has_memory = true;
            g->memory_used = m.used;
            g->memory_total = m.total;
        }
    }
    return 0;
}
