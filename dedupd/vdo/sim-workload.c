/*
 * The simulator's workload description: JSON (jansson) to struct
 * dd_vdo_workload, with every key checked. The grammar and the defaults are in
 * sim.h. This is the one file of the simulator that talks to jansson; its
 * errors (NULL plus json_error_t) become DD_E_PARSE with line and column.
 *
 * Invariants of a loaded workload: every value in its documented range,
 * duplicate_share + zero_share <= 1 for every volume in every phase, names
 * unique and safe as directory names, phases in non-decreasing at_interval
 * order, each override naming an existing volume.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/vdo/sim-internal.h"
#include "dedupd/vdo/sim.h"

/* index_entries: 2^40 records is a 4 TiB dense index, far past VDO's 1 TiB. */
#define MAX_INDEX_ENTRIES (1ull << 40)

enum key_type { K_NUMBER, K_BOOL, K_WHOLE, K_INDEX_MEMORY };

struct key_def {
    const char *name;
    enum key_type type;
    double min, max;
    unsigned set;  /* a dd_vdo_volume_params key (phases may set it) when non-zero */
    size_t offset; /* into dd_vdo_volume_params when set, else dd_vdo_volume_spec */
};

#define P_OFF(f) offsetof(struct dd_vdo_volume_params, f)
#define S_OFF(f) offsetof(struct dd_vdo_volume_spec, f)

static const struct key_def volume_keys[] = {
    {"write_mbps", K_NUMBER, 0, 100000, DD_VDO_SIM_SET_WRITE, P_OFF(write_mbps)},
    {"read_mbps", K_NUMBER, 0, 100000, DD_VDO_SIM_SET_READ, P_OFF(read_mbps)},
    {"duplicate_share", K_NUMBER, 0, 1, DD_VDO_SIM_SET_DUPLICATE, P_OFF(duplicate_share)},
    {"zero_share", K_NUMBER, 0, 1, DD_VDO_SIM_SET_ZERO, P_OFF(zero_share)},
    {"compressible_share", K_NUMBER, 0, 1, DD_VDO_SIM_SET_COMPRESSIBLE, P_OFF(compressible_share)},
    {"cpu_load", K_NUMBER, 0, DD_VDO_SIM_LOAD_MAX, DD_VDO_SIM_SET_CPU_LOAD, P_OFF(cpu_load)},
    {"compression", K_BOOL, 0, 0, DD_VDO_SIM_SET_COMPRESSION, P_OFF(compression)},
    {"index_entries", K_WHOLE, 0, (double)MAX_INDEX_ENTRIES, 0, S_OFF(index_entries)},
    {"stored_gib", K_NUMBER, 0, 4194304, 0, S_OFF(stored_gib)},
    {"physical_gib", K_NUMBER, 1, 262144, 0, S_OFF(physical_gib)},
    {"logical_gib", K_NUMBER, 1, 4194304, 0, S_OFF(logical_gib)},
    {"index_memory_gb", K_INDEX_MEMORY, 0.25, 1024, 0, S_OFF(index_memory_gb)},
    {"sparse_index", K_BOOL, 0, 0, 0, S_OFF(sparse_index)},
    {"fragments_per_block", K_WHOLE, 2, 14, 0, S_OFF(fragments_per_block)},
};

/* Copies s for a message: printable ASCII only, at most 40 characters. */
static const char *shown(const char *s, char *buf, size_t len)
{
    size_t i = 0;

    for (; s && *s && i + 4 < len && i < 40; s++)
        buf[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    if (s && *s && i + 4 < len) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* A name usable as a dm name and a directory of the replay tree. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= DD_VDO_SIM_NAME_MAX || s[0] == '.')
        return false;
    if (strcmp(s, "proc") == 0 || strcmp(s, "replay.json") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '+' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool index_memory_ok(double gb)
{
    return gb == 0.25 || gb == 0.5 || gb == 0.75 || (gb >= 1.0 && gb <= 1024.0 && floor(gb) == gb);
}

/* A JSON number that is a whole number (5e7 is accepted as 50000000). */
static bool whole_value(json_t *v, double *ret)
{
    double d;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *ret = (double)i;
        return true;
    }
    if (!json_is_real(v))
        return false;
    d = json_real_value(v);
    if (floor(d) != d)
        return false;
    *ret = d;
    return true;
}

/* Parses one volume key into spec or params; ctx prefixes messages. */
static int parse_key(const char *ctx, const struct key_def *k, json_t *v,
                     struct dd_vdo_volume_spec *spec, struct dd_vdo_volume_params *p,
                     struct dd_parse_error *err)
{
    char *base = k->set ? (char *)p : (char *)spec;
    double d = 0;

    switch (k->type) {
    case K_BOOL:
        if (!json_is_boolean(v))
            return dd_parse_error_set(err, 0, 0, "%s: '%s' must be true or false", ctx, k->name);
        *(bool *)(void *)(base + k->offset) = json_is_true(v);
        return 0;
    case K_NUMBER:
    case K_INDEX_MEMORY:
        if (!json_is_number(v))
            return dd_parse_error_set(err, 0, 0, "%s: '%s' must be a number", ctx, k->name);
        d = json_number_value(v);
        break;
    case K_WHOLE:
        if (!whole_value(v, &d)) {
            if (!json_is_number(v))
                return dd_parse_error_set(err, 0, 0, "%s: '%s' must be a number", ctx, k->name);
            dd_parse_error_set(err, 0, 0, "%s: '%s' must be a whole number (got %.15g)", ctx,
                               k->name, json_number_value(v));
            return DD_E_RANGE;
        }
        break;
    }
    if (k->type == K_INDEX_MEMORY ? !index_memory_ok(d) : (d < k->min || d > k->max)) {
        if (k->type == K_INDEX_MEMORY)
            dd_parse_error_set(err, 0, 0,
                               "%s: '%s' must be 0.25, 0.5, 0.75 or a whole number 1..1024 "
                               "(got %.15g)",
                               ctx, k->name, d);
        else
            dd_parse_error_set(err, 0, 0, "%s: '%s' must be between %.15g and %.15g (got %.15g)",
                               ctx, k->name, k->min, k->max, d);
        return DD_E_RANGE;
    }
    if (strcmp(k->name, "index_entries") == 0)
        *(uint64_t *)(void *)(base + k->offset) = (uint64_t)d;
    else if (strcmp(k->name, "fragments_per_block") == 0)
        *(unsigned *)(void *)(base + k->offset) = (unsigned)d;
    else
        *(double *)(void *)(base + k->offset) = d;
    return 0;
}

static const struct key_def *find_key(const char *name)
{
    for (size_t i = 0; i < DD_ARRAY_SIZE(volume_keys); i++)
        if (strcmp(volume_keys[i].name, name) == 0)
            return &volume_keys[i];
    return NULL;
}

static int check_shares(const char *ctx, const struct dd_vdo_volume_params *p,
                        struct dd_parse_error *err)
{
    if (p->duplicate_share + p->zero_share > 1.0 + 1e-12) {
        dd_parse_error_set(err, 0, 0,
                           "%s: 'duplicate_share' + 'zero_share' must not exceed 1 (got %g)", ctx,
                           p->duplicate_share + p->zero_share);
        return DD_E_RANGE;
    }
    return 0;
}

static int parse_volume(json_t *o, size_t i, struct dd_vdo_volume_spec *spec,
                        const struct dd_vdo_volume_spec *prev, struct dd_parse_error *err)
{
    json_t *name, *v;
    const char *key;
    char ctx[DD_VDO_SIM_NAME_MAX + 16], b[64];
    int r;

    if (!json_is_object(o))
        return dd_parse_error_set(err, 0, 0, "volume %zu: expected a JSON object", i + 1);
    name = json_object_get(o, "name");
    if (!name)
        return dd_parse_error_set(err, 0, 0, "volume %zu: missing key 'name'", i + 1);
    if (!json_is_string(name))
        return dd_parse_error_set(err, 0, 0, "volume %zu: 'name' must be a string", i + 1);
    if (!name_ok(json_string_value(name)) ||
        strlen(json_string_value(name)) != json_string_length(name)) {
        dd_parse_error_set(err, 0, 0,
                           "volume %zu: invalid name '%s' (1-63 of A-Z a-z 0-9 . _ + -, not "
                           "starting with '.', not 'proc' or 'replay.json')",
                           i + 1, shown(json_string_value(name), b, sizeof(b)));
        return DD_E_RANGE;
    }
    for (size_t j = 0; j < i; j++)
        if (strcmp(prev[j].name, json_string_value(name)) == 0)
            return dd_parse_error_set(err, 0, 0, "volume %zu: duplicate name '%s'", i + 1,
                                      json_string_value(name));

    memset(spec, 0, sizeof(*spec));
    snprintf(spec->name, sizeof(spec->name), "%s", json_string_value(name));
    spec->fragments_per_block = 4;
    snprintf(ctx, sizeof(ctx), "volume '%s'", spec->name);

    json_object_foreach((json_t *)o, key, v)
    {
        const struct key_def *k;
        if (strcmp(key, "name") == 0)
            continue;
        k = find_key(key);
        if (!k)
            return dd_parse_error_set(err, 0, 0, "%s: unknown key '%s'", ctx,
                                      shown(key, b, sizeof(b)));
        r = parse_key(ctx, k, v, spec, &spec->p, err);
        if (r < 0)
            return r;
    }
    return check_shares(ctx, &spec->p, err);
}

static int parse_override(const char *ctx, json_t *o, struct dd_vdo_phase_override *ov,
                          struct dd_parse_error *err)
{
    const char *key;
    json_t *v;
    char b[64];
    int r;

    if (!json_is_object(o))
        return dd_parse_error_set(err, 0, 0, "%s: expected a JSON object", ctx);
    json_object_foreach((json_t *)o, key, v)
    {
        const struct key_def *k = find_key(key);
        struct dd_vdo_volume_spec unused;
        if (!k)
            return dd_parse_error_set(err, 0, 0, "%s: unknown key '%s'", ctx,
                                      shown(key, b, sizeof(b)));
        if (!k->set)
            return dd_parse_error_set(err, 0, 0,
                                      "%s: '%s' cannot change in a phase (only rates, shares, "
                                      "cpu_load and compression can)",
                                      ctx, k->name);
        r = parse_key(ctx, k, v, &unused, &ov->p, err);
        if (r < 0)
            return r;
        ov->set |= k->set;
    }
    return 0;
}

void sim_apply_override(struct dd_vdo_volume_params *p, const struct dd_vdo_phase_override *o)
{
    if (o->set & DD_VDO_SIM_SET_WRITE)
        p->write_mbps = o->p.write_mbps;
    if (o->set & DD_VDO_SIM_SET_READ)
        p->read_mbps = o->p.read_mbps;
    if (o->set & DD_VDO_SIM_SET_DUPLICATE)
        p->duplicate_share = o->p.duplicate_share;
    if (o->set & DD_VDO_SIM_SET_ZERO)
        p->zero_share = o->p.zero_share;
    if (o->set & DD_VDO_SIM_SET_COMPRESSIBLE)
        p->compressible_share = o->p.compressible_share;
    if (o->set & DD_VDO_SIM_SET_CPU_LOAD)
        p->cpu_load = o->p.cpu_load;
    if (o->set & DD_VDO_SIM_SET_COMPRESSION)
        p->compression = o->p.compression;
}

static int parse_phase(json_t *o, size_t i, const struct dd_vdo_workload *w, unsigned prev_at,
                       struct dd_vdo_phase *ph, struct dd_parse_error *err)
{
    json_t *at, *vols, *v;
    const char *key;
    char b[64];
    double d;
    size_t n = 0;
    int r;

    if (!json_is_object(o))
        return dd_parse_error_set(err, 0, 0, "phase %zu: expected a JSON object", i + 1);
    json_object_foreach((json_t *)o, key, v)
    {
        if (strcmp(key, "at_interval") != 0 && strcmp(key, "volumes") != 0)
            return dd_parse_error_set(err, 0, 0, "phase %zu: unknown key '%s'", i + 1,
                                      shown(key, b, sizeof(b)));
    }
    at = json_object_get(o, "at_interval");
    if (!at)
        return dd_parse_error_set(err, 0, 0, "phase %zu: missing key 'at_interval'", i + 1);
    if (!whole_value(at, &d))
        return dd_parse_error_set(err, 0, 0, "phase %zu: 'at_interval' must be a whole number",
                                  i + 1);
    if (d < 0 || d > DD_VDO_SIM_MAX_INTERVALS) {
        dd_parse_error_set(err, 0, 0,
                           "phase %zu: 'at_interval' must be between 0 and %u (got %.15g)", i + 1,
                           DD_VDO_SIM_MAX_INTERVALS, d);
        return DD_E_RANGE;
    }
    ph->at_interval = (unsigned)d;
    if (ph->at_interval < prev_at) {
        dd_parse_error_set(err, 0, 0,
                           "phase %zu: 'at_interval' %u comes before the previous phase's %u "
                           "(phases must be in order)",
                           i + 1, ph->at_interval, prev_at);
        return DD_E_RANGE;
    }
    vols = json_object_get(o, "volumes");
    if (!vols)
        return dd_parse_error_set(err, 0, 0, "phase %zu: missing key 'volumes'", i + 1);
    if (!json_is_object(vols))
        return dd_parse_error_set(err, 0, 0, "phase %zu: 'volumes' must be an object", i + 1);
    if (json_object_size(vols) > 0) {
        ph->overrides = dd_calloc(json_object_size(vols), sizeof(*ph->overrides));
        if (!ph->overrides)
            return -ENOMEM;
    }
    json_object_foreach((json_t *)vols, key, v)
    {
        struct dd_vdo_phase_override *ov = &ph->overrides[n];
        char ctx[DD_VDO_SIM_NAME_MAX + 64];
        size_t vi;

        for (vi = 0; vi < w->n_volumes; vi++)
            if (strcmp(w->volumes[vi].name, key) == 0)
                break;
        if (vi == w->n_volumes)
            return dd_parse_error_set(err, 0, 0, "phase %zu: unknown volume '%s'", i + 1,
                                      shown(key, b, sizeof(b)));
        snprintf(ctx, sizeof(ctx), "phase %zu: volume '%s'", i + 1, w->volumes[vi].name);
        ov->volume = vi;
        r = parse_override(ctx, v, ov, err);
        if (r < 0)
            return r;
        ph->n_overrides = ++n;
    }
    return 0;
}

void dd_vdo_workload_release(struct dd_vdo_workload *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_phases; i++)
        dd_free(w->phases[i].overrides);
    dd_free(w->phases);
    dd_free(w->volumes);
    memset(w, 0, sizeof(*w));
}

static int parse_node(json_t *o, struct dd_vdo_workload *w, struct dd_parse_error *err)
{
    const char *key;
    json_t *v;
    char b[64];
    double d;

    if (!json_is_object(o))
        return dd_parse_error_set(err, 0, 0, "workload: 'node' must be an object");
    json_object_foreach((json_t *)o, key, v)
    {
        if (strcmp(key, "cpus") != 0)
            return dd_parse_error_set(err, 0, 0, "node: unknown key '%s'",
                                      shown(key, b, sizeof(b)));
        if (!whole_value(v, &d))
            return dd_parse_error_set(err, 0, 0, "node: 'cpus' must be a whole number");
        if (d < 1 || d > 1024) {
            dd_parse_error_set(err, 0, 0, "node: 'cpus' must be between 1 and 1024 (got %.15g)", d);
            return DD_E_RANGE;
        }
        w->cpus = (unsigned)d;
    }
    return 0;
}

/* Applies the phases in order and checks the shares each one leaves. */
static int check_phases(const struct dd_vdo_workload *w, struct dd_parse_error *err)
{
    struct dd_vdo_volume_params *cur = dd_calloc(w->n_volumes, sizeof(*cur));
    int r = 0;

    if (!cur)
        return -ENOMEM;
    for (size_t v = 0; v < w->n_volumes; v++)
        cur[v] = w->volumes[v].p;
    for (size_t i = 0; i < w->n_phases && r == 0; i++) {
        const struct dd_vdo_phase *ph = &w->phases[i];
        for (size_t j = 0; j < ph->n_overrides && r == 0; j++) {
            const struct dd_vdo_phase_override *o = &ph->overrides[j];
            char ctx[DD_VDO_SIM_NAME_MAX + 64];
            sim_apply_override(&cur[o->volume], o);
            snprintf(ctx, sizeof(ctx), "phase %zu: volume '%s'", i + 1, w->volumes[o->volume].name);
            r = check_shares(ctx, &cur[o->volume], err);
        }
    }
    dd_free(cur);
    return r;
}

static int parse_workload(json_t *root, struct dd_vdo_workload *w, struct dd_parse_error *err)
{
    json_t *vols, *phases, *node, *v;
    const char *key;
    char b[64];
    int r;

    if (!json_is_object(root))
        return dd_parse_error_set(err, 0, 0, "workload: expected a JSON object");
    json_object_foreach((json_t *)root, key, v)
    {
        if (strcmp(key, "volumes") != 0 && strcmp(key, "phases") != 0 && strcmp(key, "node") != 0)
            return dd_parse_error_set(err, 0, 0, "workload: unknown key '%s'",
                                      shown(key, b, sizeof(b)));
    }
    w->cpus = 2;
    node = json_object_get(root, "node");
    if (node) {
        r = parse_node(node, w, err);
        if (r < 0)
            return r;
    }

    vols = json_object_get(root, "volumes");
    if (!vols)
        return dd_parse_error_set(err, 0, 0, "workload: missing key 'volumes'");
    if (!json_is_array(vols))
        return dd_parse_error_set(err, 0, 0, "workload: 'volumes' must be an array");
    if (json_array_size(vols) == 0)
        return dd_parse_error_set(err, 0, 0, "workload: 'volumes' must not be empty");
    if (json_array_size(vols) > DD_VDO_SIM_MAX_VOLUMES) {
        dd_parse_error_set(err, 0, 0, "workload: more than %u volumes", DD_VDO_SIM_MAX_VOLUMES);
        return DD_E_TOOBIG;
    }
    w->volumes = dd_calloc(json_array_size(vols), sizeof(*w->volumes));
    if (!w->volumes)
        return -ENOMEM;
    for (size_t i = 0; i < json_array_size(vols); i++) {
        r = parse_volume(json_array_get(vols, i), i, &w->volumes[i], w->volumes, err);
        if (r < 0)
            return r;
        w->n_volumes = i + 1;
    }

    phases = json_object_get(root, "phases");
    if (!phases)
        return 0;
    if (!json_is_array(phases))
        return dd_parse_error_set(err, 0, 0, "workload: 'phases' must be an array");
    if (json_array_size(phases) > DD_VDO_SIM_MAX_PHASES) {
        dd_parse_error_set(err, 0, 0, "workload: more than %u phases", DD_VDO_SIM_MAX_PHASES);
        return DD_E_TOOBIG;
    }
    if (json_array_size(phases) > 0) {
        w->phases = dd_calloc(json_array_size(phases), sizeof(*w->phases));
        if (!w->phases)
            return -ENOMEM;
    }
    for (size_t i = 0; i < json_array_size(phases); i++) {
        unsigned prev_at = i > 0 ? w->phases[i - 1].at_interval : 0;
        /* counted first, so that release frees a half-parsed phase */
        w->n_phases = i + 1;
        r = parse_phase(json_array_get(phases, i), i, w, prev_at, &w->phases[i], err);
        if (r < 0)
            return r;
    }
    return check_phases(w, err);
}

int dd_vdo_sim_load_workload(const char *json_text, size_t len, struct dd_vdo_workload *ret,
                             struct dd_parse_error *err)
{
    struct dd_vdo_workload w = {0};
    json_error_t jerr;
    json_t *root;
    int r;

    if (!json_text && len > 0)
        return dd_parse_error_set(err, 0, 0, "workload: no input");
    if (len > DD_VDO_SIM_MAX_WORKLOAD_BYTES) {
        dd_parse_error_set(err, 0, 0, "workload: larger than %u bytes",
                           DD_VDO_SIM_MAX_WORKLOAD_BYTES);
        return DD_E_TOOBIG;
    }
    root = json_loadb(json_text ? json_text : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return -ENOMEM;
        return dd_parse_error_set(err, jerr.line > 0 ? (unsigned)jerr.line : 0,
                                  jerr.column > 0 ? (unsigned)jerr.column : 0,
                                  "workload: invalid JSON: %s", jerr.text);
    }
    r = parse_workload(root, &w, err);
    json_decref(root);
    if (r < 0) {
        dd_vdo_workload_release(&w);
        return r;
    }
    *ret = w;
    return 0;
}

int dd_vdo_sim_load_workload_file(const char *path, struct dd_vdo_workload *ret,
                                  struct dd_parse_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    struct stat st;
    int fd, r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        dd_parse_error_set(err, 0, 0, "%s: %s", path, strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        dd_parse_error_set(err, 0, 0, "%s: %s", path, strerror(-r));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        dd_parse_error_set(err, 0, 0, "%s: not a regular file", path);
        r = DD_E_BADTYPE;
        goto out;
    }
    if ((uint64_t)st.st_size > DD_VDO_SIM_MAX_WORKLOAD_BYTES) {
        dd_parse_error_set(err, 0, 0, "%s: larger than %u bytes", path,
                           DD_VDO_SIM_MAX_WORKLOAD_BYTES);
        r = DD_E_TOOBIG;
        goto out;
    }
    /* one byte more than allowed, to see a file that grew */
    buf = dd_malloc(DD_VDO_SIM_MAX_WORKLOAD_BYTES + 1);
    if (!buf) {
        r = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, DD_VDO_SIM_MAX_WORKLOAD_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            dd_parse_error_set(err, 0, 0, "%s: %s", path, strerror(-r));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > DD_VDO_SIM_MAX_WORKLOAD_BYTES) {
            dd_parse_error_set(err, 0, 0, "%s: larger than %u bytes", path,
                               DD_VDO_SIM_MAX_WORKLOAD_BYTES);
            r = DD_E_TOOBIG;
            goto out;
        }
    }
    r = dd_vdo_sim_load_workload(buf, len, ret, err);
out:
    dd_free(buf);
    close(fd);
    return r;
}

int dd_vdo_sim_params_at(const struct dd_vdo_workload *w, size_t v, unsigned k,
                         struct dd_vdo_volume_params *ret)
{
    struct dd_vdo_volume_params p;

    if (!w || v >= w->n_volumes)
        return -EINVAL;
    p = w->volumes[v].p;
    for (size_t i = 0; i < w->n_phases && w->phases[i].at_interval <= k; i++)
        for (size_t j = 0; j < w->phases[i].n_overrides; j++)
            if (w->phases[i].overrides[j].volume == v)
                sim_apply_override(&p, &w->phases[i].overrides[j]);
    *ret = p;
    return 0;
}

double dd_vdo_sim_node_load(const struct dd_vdo_workload *w, unsigned k)
{
    double sum = 0;

    for (size_t v = 0; w && v < w->n_volumes; v++) {
        struct dd_vdo_volume_params p;
        if (dd_vdo_sim_params_at(w, v, k, &p) == 0)
            sum += p.cpu_load;
    }
    return DD_MIN(sum, DD_VDO_SIM_LOAD_MAX);
}
