/*
 * The kvdo sysfs source, for hosts running the out-of-tree kvdo module
 * (upstream dm-vdo has no sysfs statistics):
 *   kvdo 6.x  <sys>/kvdo/<pool>/statistics/<name>   (volume = pool name)
 *   kvdo 8.x  <sys>/block/dm-N/vdo/statistics/<name> (volume = dm/name)
 * One value per file. File names are the stats paths in snake case
 * (biosIn.write -> bios_in_write), with a few historical exceptions mapped
 * by hand; a file we do not know is kept under its own name. The reply is
 * rebuilt in the version-36 key order so everything downstream (vdostats,
 * derived figures) sees the same shape as from libdevmapper.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "dedupd/vdo/source-internal.h"

struct sysfs {
    char root[4096];
};

/* names kvdo spells differently from the snake case of the stats path */
static const struct {
    const char *file, *key;
} aliases[] = {
    {"currentVIOs_in_progress", "currentVIOsInProgress"},
    {"current_vios_in_progress", "currentVIOsInProgress"},
    {"maxVIOs", "maxVIOs"},
    {"max_vios", "maxVIOs"},
    {"errors_invalid_advicePBNCount", "errors.invalidAdvicePBNCount"},
    {"errors_invalid_advice_pbn_count", "errors.invalidAdvicePBNCount"},
    {"index_curr_dedupe_queries", "hashLock.currDedupeQueries"},
};

static void snake_of(const char *key, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = key; *p && o + 2 < len; p++) {
        if (*p == '.') {
            out[o++] = '_';
        } else if (*p >= 'A' && *p <= 'Z') {
            out[o++] = '_';
            out[o++] = (char)(*p - 'A' + 'a');
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* The stats key a kvdo file name stands for, or NULL. No static state:
 * sources may be read from several threads. */
static const char *key_for_file(const char *file)
{
    char snake[128];

    for (size_t i = 0; i < DD_ARRAY_SIZE(aliases); i++) {
        if (strcmp(aliases[i].file, file) == 0)
            return aliases[i].key;
    }
    for (size_t i = 0; dd_vdo_v36_keys[i]; i++) {
        snake_of(dd_vdo_v36_keys[i], snake, sizeof(snake));
        if (strcmp(snake, file) == 0)
            return dd_vdo_v36_keys[i];
    }
    return NULL;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Reads a one-value file, trimming the newline; NULL on failure. */
static char *read_value(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (dd_vdo_read_text(path, &text, &len) < 0)
        return NULL;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    return text;
}

static int sysfs_list(void *impl, char ***ret_names, size_t *ret_n, char *errbuf, size_t errlen)
{
    struct sysfs *s = impl;
    struct dd_strlist names = DD_STRLIST_INIT;
    char path[4400];
    struct dirent *de;
    DIR *d;
    int r = 0;

    /* kvdo 6.x */
    dd_vdo_pathf(path, sizeof(path), "%s/kvdo", s->root);
    if ((d = opendir(path))) {
        while (r == 0 && (de = readdir(d))) {
            char st[4600];
            if (de->d_name[0] == '.')
                continue;
            dd_vdo_pathf(st, sizeof(st), "%s/%s/statistics", path, de->d_name);
            if (is_dir(st))
                r = dd_strlist_push(&names, de->d_name);
        }
        closedir(d);
    }
    /* kvdo 8.x */
    dd_vdo_pathf(path, sizeof(path), "%s/block", s->root);
    if (r == 0 && (d = opendir(path))) {
        while (r == 0 && (de = readdir(d))) {
            char st[4600];
            char *dmname;
            if (strncmp(de->d_name, "dm-", 3) != 0)
                continue;
            dd_vdo_pathf(st, sizeof(st), "%s/%s/vdo/statistics", path, de->d_name);
            if (!is_dir(st))
                continue;
            dd_vdo_pathf(st, sizeof(st), "%s/%s/dm/name", path, de->d_name);
            dmname = read_value(st);
            r = dd_strlist_push(&names, dmname && *dmname ? dmname : de->d_name);
            dd_free(dmname);
        }
        closedir(d);
    }
    if (r < 0) {
        dd_strlist_release(&names);
        return r;
    }
    if (names.n == 0 && !is_dir(path)) {
        snprintf(errbuf, errlen, "no kvdo statistics under %s (neither kvdo/ nor block/)", s->root);
        return -ENODEV;
    }
    dd_strlist_sort(&names);
    *ret_names = dd_strlist_take(&names, ret_n);
    return 0;
}

/* The statistics directory of a volume, and its dm-N (kvdo 8.x). */
static int find_stats_dir(struct sysfs *s, const char *name, char *out, size_t len, char *dm,
                          size_t dmlen)
{
    char path[4400];
    DIR *d;
    struct dirent *de;

    dm[0] = '\0';
    dd_vdo_pathf(path, sizeof(path), "%s/kvdo/%s/statistics", s->root, name);
    if (is_dir(path)) {
        dd_vdo_pathf(out, len, "%s", path);
        return 0;
    }
    dd_vdo_pathf(path, sizeof(path), "%s/block", s->root);
    d = opendir(path);
    if (!d)
        return -ENOENT;
    while ((de = readdir(d))) {
        char p[4600];
        char *dmname;
        bool match;
        if (strncmp(de->d_name, "dm-", 3) != 0)
            continue;
        dd_vdo_pathf(p, sizeof(p), "%s/%s/dm/name", path, de->d_name);
        dmname = read_value(p);
        match = (dmname && strcmp(dmname, name) == 0) || strcmp(de->d_name, name) == 0;
        dd_free(dmname);
        dd_vdo_pathf(p, sizeof(p), "%s/%s/vdo/statistics", path, de->d_name);
        if (match && is_dir(p)) {
            dd_vdo_pathf(out, len, "%s", p);
            dd_vdo_pathf(dm, dmlen, "%s/%s/dev", path, de->d_name);
            closedir(d);
            return 0;
        }
    }
    closedir(d);
    return -ENOENT;
}

struct file_value {
    char *file, *value;
    const char *key; /* the stats key, or NULL for a file we do not know */
};

static int sysfs_read(void *impl, const char *name, struct dd_vdo_volume *v)
{
    struct sysfs *s = impl;
    char dir[4400], devpath[4400];
    struct file_value *fv = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d;
    int r = 0;

    if (strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return -EINVAL;
    if (find_stats_dir(s, name, dir, sizeof(dir), devpath, sizeof(devpath)) < 0)
        return -ENOENT;
    d = opendir(dir);
    if (!d)
        return errno == ENOENT ? -ENOENT : -EIO;
    while (r == 0 && (de = readdir(d))) {
        char p[4700];
        char *value;
        if (de->d_name[0] == '.')
            continue;
        dd_vdo_pathf(p, sizeof(p), "%s/%s", dir, de->d_name);
        value = read_value(p);
        if (!value || !*value) {
            dd_free(value);
            continue; /* unreadable counters are left out, not fatal */
        }
        if (DD_ARRAY_RESERVE(fv, cap, n + 1) < 0 || !(fv[n].file = dd_strdup(de->d_name))) {
            dd_free(value);
            r = -ENOMEM;
            break;
        }
        fv[n].key = key_for_file(de->d_name); /* mapped once per file */
        fv[n++].value = value;
    }
    closedir(d);
    /* rebuild in version-36 order, then the files we do not know */
    for (size_t k = 0; r == 0 && dd_vdo_v36_keys[k]; k++) {
        for (size_t i = 0; i < n; i++) {
            if (fv[i].file && fv[i].key && strcmp(fv[i].key, dd_vdo_v36_keys[k]) == 0) {
                r = dd_vdo_stats_add(&v->stats, fv[i].key, fv[i].value);
                dd_free(fv[i].file);
                fv[i].file = NULL;
                break;
            }
        }
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        if (fv[i].file)
            r = dd_vdo_stats_add(&v->stats, fv[i].file, fv[i].value);
    }
    for (size_t i = 0; i < n; i++) {
        dd_free(fv[i].file);
        dd_free(fv[i].value);
    }
    dd_free(fv);
    if (r < 0) {
        dd_vdo_stats_release(&v->stats);
        return r;
    }
    if (devpath[0]) {
        char *dev = read_value(devpath);
        uint64_t ma, mi;
        char *colon = dev ? strchr(dev, ':') : NULL;
        if (colon && dd_parse_u64_n(dev, (size_t)(colon - dev), &ma) == 0 &&
            dd_parse_u64(colon + 1, &mi) == 0 && ma < 4096 && mi < (1u << 20)) {
            v->dm_major = (unsigned)ma;
            v->dm_minor = (unsigned)mi;
        }
        dd_free(dev);
    }
    v->have_stats = v->stats.n > 0;
    if (!v->have_stats)
        snprintf(v->stats_error, sizeof(v->stats_error), "stats: %.200s holds no values", dir);
    return v->have_stats ? 0 : -EIO;
}

static void sysfs_free(void *impl)
{
    dd_free(impl);
}

static const struct dd_vdo_source_ops sysfs_ops = {
    .kind = "sysfs",
    .list = sysfs_list,
    .read = sysfs_read,
    .next = NULL,
    .free = sysfs_free,
};

int dd_vdo_sysfs_open(struct dd_vdo_source *src, const char *sys_root, char *errbuf, size_t errlen)
{
    struct sysfs *s;

    if (strlen(sys_root) >= sizeof(s->root) - 300) {
        snprintf(errbuf, errlen, "sys root path too long");
        return -ENAMETOOLONG;
    }
    s = dd_calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    dd_vdo_pathf(s->root, sizeof(s->root), "%s", sys_root);
    src->ops = &sysfs_ops;
    src->impl = s;
    return 0;
}
