/*
 * The VDO source front end: opening by spec, dispatch through the ops table,
 * and what all sources share (parsing a volume's texts, reading small files).
 * The replay source lives here too: it is the one every test uses.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/vdo/source-internal.h"

void dd_vdo_volume_release(struct dd_vdo_volume *v)
{
    dd_vdo_stats_release(&v->stats);
    dd_vdo_stats_release(&v->config);
    memset(v, 0, sizeof(*v));
}

static void describe(char *buf, size_t len, const char *part, const struct dd_parse_error *err)
{
    if (err->line)
        snprintf(buf, len, "%s: line %u, column %u: %s", part, err->line, err->column,
                 err->message);
    else
        snprintf(buf, len, "%s: %s", part, err->message);
}

void dd_vdo_volume_fill(struct dd_vdo_volume *v, const char *stats, size_t stats_len,
                        const char *status, const char *table, const char *config,
                        size_t config_len)
{
    struct dd_parse_error err;

    if (stats) {
        memset(&err, 0, sizeof(err));
        if (dd_vdo_stats_parse(stats, stats_len, &v->stats, &err) == 0)
            v->have_stats = true;
        else
            describe(v->stats_error, sizeof(v->stats_error), "stats", &err);
    }
    if (status) {
        memset(&err, 0, sizeof(err));
        if (dd_vdo_status_parse(status, &v->status, &err) == 0)
            v->have_status = true;
        else
            describe(v->status_error, sizeof(v->status_error), "status", &err);
    }
    if (table) {
        memset(&err, 0, sizeof(err));
        if (dd_vdo_table_parse(table, &v->table, &err) == 0)
            v->have_table = true;
        else
            describe(v->table_error, sizeof(v->table_error), "table", &err);
    }
    if (config) {
        memset(&err, 0, sizeof(err));
        if (dd_vdo_stats_parse(config, config_len, &v->config, &err) == 0)
            v->have_config = true;
        else
            describe(v->config_error, sizeof(v->config_error), "config", &err);
    }
}

int dd_vdo_read_text(const char *path, char **ret_text, size_t *ret_len)
{
    /* O_NONBLOCK: a FIFO planted where a file should be must not hang us */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    size_t cap = 4096, len = 0;
    struct stat st;
    char *buf;
    int r = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    buf = dd_malloc(cap);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            char *nb;
            if (cap >= DD_VDO_MAX_REPLY_BYTES + 1) {
                r = DD_E_TOOBIG;
                break;
            }
            nb = dd_realloc(buf, cap * 2);
            if (!nb) {
                r = -ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > DD_VDO_MAX_REPLY_BYTES) {
            r = DD_E_TOOBIG;
            break;
        }
    }
    close(fd);
    if (r < 0) {
        dd_free(buf);
        return r;
    }
    buf[len] = '\0';
    dd_vdo_text_strip_comments(buf, &len);
    *ret_text = buf;
    *ret_len = len;
    return 0;
}

void dd_vdo_text_strip_comments(char *buf, size_t *len)
{
    char *body = buf;
    size_t n = *len;

    while (*body == '#') {
        char *nl = strchr(body, '\n');
        body = nl ? nl + 1 : buf + n;
    }
    n -= (size_t)(body - buf);
    memmove(buf, body, n + 1);
    *len = n;
}

int dd_vdo_pathf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- replay ---- */

struct replay {
    struct dd_vdo_source *src;
};

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int replay_list(void *impl, char ***ret_names, size_t *ret_n, char *errbuf, size_t errlen)
{
    struct replay *rp = impl;
    DIR *d = opendir(rp->src->dir);
    struct dirent *de;
    struct dd_strlist names = DD_STRLIST_INIT;
    int r = 0;

    if (!d) {
        r = -errno;
        snprintf(errbuf, errlen, "replay directory %s: %s", rp->src->dir, strerror(-r));
        return r;
    }
    while ((de = readdir(d))) {
        char path[4400];
        if (de->d_name[0] == '.' || strcmp(de->d_name, "proc") == 0)
            continue;
        dd_vdo_pathf(path, sizeof(path), "%s/%s", rp->src->dir, de->d_name);
        if (!is_dir(path))
            continue;
        r = dd_strlist_push(&names, de->d_name);
        if (r < 0)
            break;
    }
    closedir(d);
    if (r < 0) {
        dd_strlist_release(&names);
        return r;
    }
    dd_strlist_sort(&names);
    *ret_names = dd_strlist_take(&names, ret_n);
    return 0;
}

/* The directory holding a volume's files for the current snapshot:
 * DIR/<vol> for a single snapshot, else DIR/<vol>/000N (clamped to the last). */
static int snapshot_dir(const struct dd_vdo_source *src, const char *base, char *out, size_t len)
{
    char probe[4400];
    unsigned last = 0;

    dd_vdo_pathf(probe, sizeof(probe), "%s/stats", base);
    if (access(probe, F_OK) == 0) {
        dd_vdo_pathf(out, len, "%s", base);
        return 0;
    }
    /* find the highest numbered snapshot up to the current one */
    for (unsigned i = 1; i <= src->snapshot + 1; i++) {
        dd_vdo_pathf(probe, sizeof(probe), "%s/%04u", base, i);
        if (!is_dir(probe))
            break;
        last = i;
    }
    if (last == 0)
        return -ENOENT;
    dd_vdo_pathf(out, len, "%s/%04u", base, last);
    return 0;
}

static int replay_read(void *impl, const char *name, struct dd_vdo_volume *v)
{
    struct replay *rp = impl;
    static const char *const parts[] = {"stats", "status", "table", "config"};
    char base[4400], dir[4500], path[4600];
    char *text[4] = {NULL, NULL, NULL, NULL};
    size_t len[4] = {0, 0, 0, 0};
    int r;

    if (strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return -EINVAL;
    dd_vdo_pathf(base, sizeof(base), "%s/%s", rp->src->dir, name);
    if (!is_dir(base))
        return -ENOENT;
    r = snapshot_dir(rp->src, base, dir, sizeof(dir));
    if (r < 0) {
        snprintf(v->stats_error, sizeof(v->stats_error), "stats: no %.100s/stats nor %.100s/0001/",
                 base, base);
        return -ENODATA; /* the volume is there; its data is not */
    }
    for (size_t i = 0; i < 4; i++) {
        dd_vdo_pathf(path, sizeof(path), "%s/%s", dir, parts[i]);
        r = dd_vdo_read_text(path, &text[i], &len[i]);
        if (r == -ENOENT && i > 0)
            continue; /* status, table and config are optional */
        if (r < 0) {
            char *msg = i == 0   ? v->stats_error
                        : i == 1 ? v->status_error
                        : i == 2 ? v->table_error
                                 : v->config_error;
            snprintf(msg, 256, "%s: %.160s: %.60s", parts[i], path,
                     r == -EINVAL ? "not a regular file" : dd_strerror(r));
            if (i == 0)
                break;
        }
    }
    snprintf(v->name, sizeof(v->name), "%s", name);
    dd_vdo_volume_fill(v, text[0], len[0], text[1], text[2], text[3], len[3]);
    for (size_t i = 0; i < 4; i++)
        dd_free(text[i]);
    return v->have_stats ? 0 : DD_E_PARSE;
}

static void replay_next(void *impl)
{
    struct replay *rp = impl;
    rp->src->snapshot++;
}

static void replay_free(void *impl)
{
    dd_free(impl);
}

static const struct dd_vdo_source_ops replay_ops = {
    .kind = "replay",
    .list = replay_list,
    .read = replay_read,
    .next = replay_next,
    .free = replay_free,
};

/* DIR/replay.json {"interval_seconds": S}: optional, but when present it
 * must be right, or the rates computed from it would be wrong. */
static int read_replay_json(struct dd_vdo_source *src, char *errbuf, size_t errlen)
{
    char path[4200], *text = NULL;
    size_t len = 0;
    int r;

    if (dd_vdo_pathf(path, sizeof(path), "%s/replay.json", src->dir) < 0)
        return -ENAMETOOLONG;
    r = dd_vdo_read_text(path, &text, &len);
    if (r == -ENOENT)
        return 0;
    if (r < 0) {
        snprintf(errbuf, errlen, "%.200s: %s", path,
                 r == -EINVAL ? "not a regular file" : dd_strerror(r));
        return r;
    }
    r = dd_vdo_replay_json_parse(text, len, path, &src->interval, errbuf, errlen);
    dd_free(text);
    return r;
}

int dd_vdo_replay_json_parse(const char *text, size_t len, const char *where, double *ret_interval,
                             char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr), *iv;

    if (!doc) {
        snprintf(errbuf, errlen, "%.200s: line %d, column %d: %.100s", where, jerr.line,
                 jerr.column, jerr.text);
        return DD_E_PARSE;
    }
    iv = json_object_get(doc, "interval_seconds");
    if (!json_is_number(iv) || !(json_number_value(iv) > 0) || json_number_value(iv) > 86400) {
        snprintf(errbuf, errlen, "%.200s: interval_seconds must be a number in (0, 86400]", where);
        json_decref(doc);
        return DD_E_PARSE;
    }
    *ret_interval = json_number_value(iv);
    json_decref(doc);
    return 0;
}

int dd_vdo_replay_open(struct dd_vdo_source *src, const char *dir, char *errbuf, size_t errlen)
{
    struct replay *rp;
    int r;

    if (strlen(dir) >= sizeof(src->dir) - 64) {
        snprintf(errbuf, errlen, "replay directory path too long");
        return -ENAMETOOLONG;
    }
    if (!is_dir(dir)) {
        snprintf(errbuf, errlen, "replay directory %s: %s", dir, strerror(ENOTDIR));
        return -ENOTDIR;
    }
    rp = dd_calloc(1, sizeof(*rp));
    if (!rp)
        return -ENOMEM;
    rp->src = src;
    dd_vdo_pathf(src->dir, sizeof(src->dir), "%s", dir);
    src->ops = &replay_ops;
    src->impl = rp;
    r = read_replay_json(src, errbuf, errlen);
    if (r < 0) {
        dd_free(rp);
        src->impl = NULL;
        return r;
    }
    return 0;
}

/* ---- front end ---- */

int dd_vdo_source_open(const char *spec, const char *sys_root, struct dd_vdo_source **ret,
                       char *errbuf, size_t errlen)
{
    struct dd_vdo_source *src = dd_calloc(1, sizeof(*src));
    int r;

    if (!src)
        return -ENOMEM;
    if (strcmp(spec, "dm") == 0)
        r = dd_vdo_dm_open(src, errbuf, errlen);
    else if (strcmp(spec, "sysfs") == 0)
        r = dd_vdo_sysfs_open(src, sys_root ? sys_root : "/sys", errbuf, errlen);
    else if (strncmp(spec, "replay:", 7) == 0 && spec[7] != '\0')
        r = dd_vdo_replay_open(src, spec + 7, errbuf, errlen);
    else {
        snprintf(errbuf, errlen, "unknown source '%s' (expected dm, sysfs or replay:DIR)", spec);
        r = DD_E_USAGE;
    }
    if (r < 0) {
        dd_free(src);
        return r;
    }
    *ret = src;
    return 0;
}

struct dd_vdo_source *dd_vdo_source_free(struct dd_vdo_source *src)
{
    if (src) {
        if (src->ops && src->ops->free)
            src->ops->free(src->impl);
        dd_free(src);
    }
    return NULL;
}

const char *dd_vdo_source_kind(const struct dd_vdo_source *src)
{
    return src->ops->kind;
}

int dd_vdo_source_list(struct dd_vdo_source *src, char ***ret_names, size_t *ret_n, char *errbuf,
                       size_t errlen)
{
    return src->ops->list(src->impl, ret_names, ret_n, errbuf, errlen);
}

int dd_vdo_source_read(struct dd_vdo_source *src, const char *name, struct dd_vdo_volume *ret)
{
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->name, sizeof(ret->name), "%s", name);
    return src->ops->read(src->impl, name, ret);
}

void dd_vdo_source_next(struct dd_vdo_source *src)
{
    if (src->ops->next)
        src->ops->next(src->impl);
}

double dd_vdo_source_interval(const struct dd_vdo_source *src)
{
    return src->interval;
}

const char *dd_vdo_source_proc_root(struct dd_vdo_source *src)
{
    char seq[4300];

    if (src->ops != &replay_ops)
        return NULL;
    dd_vdo_pathf(seq, sizeof(seq), "%s/proc/%04u", src->dir, src->snapshot + 1);
    if (is_dir(seq)) {
        dd_vdo_pathf(src->proc_root, sizeof(src->proc_root), "%s", seq);
        return src->proc_root;
    }
    /* a sequence shorter than the replay: its last tree repeats */
    for (unsigned i = src->snapshot; i >= 1; i--) {
        dd_vdo_pathf(seq, sizeof(seq), "%s/proc/%04u", src->dir, i);
        if (is_dir(seq)) {
            dd_vdo_pathf(src->proc_root, sizeof(src->proc_root), "%s", seq);
            return src->proc_root;
        }
    }
    dd_vdo_pathf(seq, sizeof(seq), "%s/proc", src->dir);
    if (!is_dir(seq))
        return NULL;
    dd_vdo_pathf(src->proc_root, sizeof(src->proc_root), "%s", seq);
    return src->proc_root;
}
