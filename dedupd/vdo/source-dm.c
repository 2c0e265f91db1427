/*
 * The libdevmapper source: the only code that talks to device-mapper, and
 * only through libdevmapper calls (the way lvm2's dmvdostats.c fetches VDO
 * stats: one task per question, freed on every path). Never runs dmsetup.
 *
 * libdevmapper's own log lines are captured (not printed) and the last one
 * is used in our error messages. Where device-mapper is absent (no
 * /dev/mapper/control, as on our development machines) listing fails with a
 * plain message and the caller decides how loudly to say it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libdevmapper.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/source-internal.h"

static _Thread_local char dm_last_message[256];

static void capture_dm_log(int level, const char *file, int line, int dm_errno_or_class,
                           const char *f, ...) __attribute__((format(printf, 5, 6)));
static void capture_dm_log(int level, const char *file, int line, int dm_errno_or_class,
                           const char *f, ...)
{
    va_list ap;
    (void)file;
    (void)line;
    (void)dm_errno_or_class;
    if ((level & 7) > 4) /* keep errors (3) and warnings (4), drop notices and debug */
        return;
    va_start(ap, f);
    vsnprintf(dm_last_message, sizeof(dm_last_message), f, ap);
    va_end(ap);
    dd_log_debug("libdevmapper: %s", dm_last_message);
}

static const char *dm_why(void)
{
    return dm_last_message[0] ? dm_last_message : "no message from libdevmapper";
}

/* Runs a task on one device. Returns the task (caller destroys) or NULL. */
static struct dm_task *run_task(int type, const char *name, const char *message, int *ret_errno)
{
    struct dm_task *dmt = dm_task_create(type);

    *ret_errno = 0;
    if (!dmt) {
        *ret_errno = ENOMEM;
        return NULL;
    }
    dm_last_message[0] = '\0';
    if (type == DM_DEVICE_STATUS)
        (void)dm_task_no_flush(dmt); /* reading must never make a target commit */
    if (!dm_task_set_name(dmt, name) ||
        (message && (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, message))) ||
        !dm_task_run(dmt)) {
        *ret_errno = dm_task_get_errno(dmt) ? dm_task_get_errno(dmt) : EIO;
        dm_task_destroy(dmt);
        return NULL;
    }
    return dmt;
}

/* The first target of a status or table task, if it is "vdo". */
static bool vdo_target(struct dm_task *dmt, uint64_t *ret_length, const char **ret_params)
{
    uint64_t start = 0, length = 0;
    char *type = NULL, *params = NULL;

    (void)dm_get_next_target(dmt, NULL, &start, &length, &type, &params);
    if (!type || strcmp(type, "vdo") != 0)
        return false;
    *ret_length = length;
    *ret_params = params ? params : "";
    return true;
}

static int dm_list(void *impl, char ***ret_names, size_t *ret_n, char *errbuf, size_t errlen)
{
    struct dm_task *dmt = dm_task_create(DM_DEVICE_LIST);
    struct dm_names *nm;
    struct dd_strlist names = DD_STRLIST_INIT;
    unsigned next = 0;
    int r = 0;

    (void)impl;
    if (!dmt) {
        /* libdevmapper fails task creation when it cannot reach the driver */
        snprintf(errbuf, errlen, "device-mapper is not available: %.200s", dm_why());
        return -ENODEV;
    }
    dm_last_message[0] = '\0';
    if (!dm_task_run(dmt)) {
        snprintf(errbuf, errlen, "device-mapper is not available: %.200s", dm_why());
        dm_task_destroy(dmt);
        return -ENODEV;
    }
    nm = dm_task_get_names(dmt);
    if (nm && nm->dev) {
        do {
            int e;
            uint64_t length;
            const char *params;
            struct dm_task *st;

            nm = (struct dm_names *)(void *)((char *)nm + next);
            /* the table names the target type; a status task would make
             * thin-pool and cache targets commit their metadata */
            st = run_task(DM_DEVICE_TABLE, nm->name, NULL, &e);
            /* a device removed since the listing is simply not listed */
            if (st && vdo_target(st, &length, &params)) {
                r = dd_strlist_push(&names, nm->name);
                if (r < 0) {
                    dm_task_destroy(st);
                    break;
                }
            }
            if (st)
                dm_task_destroy(st);
            next = nm->next;
        } while (next);
    }
    dm_task_destroy(dmt);
    if (r < 0) {
        dd_strlist_release(&names);
        return r;
    }
    dd_strlist_sort(&names);
    *ret_names = dd_strlist_take(&names, ret_n);
    return 0;
}

static int dm_read(void *impl, const char *name, struct dd_vdo_volume *v)
{
    struct dm_task *st, *tb = NULL, *ms = NULL, *cf = NULL;
    struct dm_info info;
    char status_line[DD_VDO_MAX_LINE], table_line[DD_VDO_MAX_LINE];
    const char *params = NULL, *stats = NULL, *config = NULL;
    uint64_t length = 0;
    bool have_table = false;
    int e;

    (void)impl;
    st = run_task(DM_DEVICE_STATUS, name, NULL, &e);
    if (!st) {
        /* the status call failed (a device gone shows up below instead):
         * either way the volume's sample says why */
        bool gone = e == ENXIO || e == ENODEV || e == ENOENT;
        snprintf(v->stats_error, sizeof(v->stats_error), "%s (%.150s)",
                 gone ? "stats: the volume disappeared while being read" : "status: failed",
                 dm_why());
        return gone ? -ENOENT : -e;
    }
    if (dm_task_get_info(st, &info) && info.exists) {
        v->dm_major = info.major;
        v->dm_minor = info.minor;
    } else {
        /* vanished between listing and reading: libdevmapper 1.02.205 runs
         * the status task successfully and reports exists = 0 (seen on
         * dm-vdo 6.12 in tests/vm), not an errno */
        dm_task_destroy(st);
        snprintf(v->stats_error, sizeof(v->stats_error),
                 "stats: the volume disappeared while being read");
        return -ENOENT;
    }
    if (!vdo_target(st, &length, &params)) {
        dm_task_destroy(st);
        snprintf(v->stats_error, sizeof(v->stats_error),
                 "stats: the volume's table is no longer a vdo target");
        return -ENOENT; /* replaced by a non-vdo table */
    }
    dd_vdo_pathf(status_line, sizeof(status_line), "%s", params);
    dm_task_destroy(st);

    tb = run_task(DM_DEVICE_TABLE, name, NULL, &e);
    table_line[0] = '\0';
    if (!tb)
        snprintf(v->table_error, sizeof(v->table_error), "table: %.200s", dm_why());
    else if (!vdo_target(tb, &length, &params))
        snprintf(v->table_error, sizeof(v->table_error), "table: no longer a vdo target");
    else if (dd_vdo_pathf(table_line, sizeof(table_line), "0 %llu vdo %s",
                          (unsigned long long)length, params) < 0)
        snprintf(v->table_error, sizeof(v->table_error), "table: longer than %u bytes",
                 DD_VDO_MAX_LINE);
    else
        have_table = true;
    ms = run_task(DM_DEVICE_TARGET_MSG, name, "stats", &e);
    if (ms)
        stats = dm_task_get_message_response(ms);
    if (!stats)
        snprintf(v->stats_error, sizeof(v->stats_error), "stats message: %.60s (%.150s)",
                 ms ? "no reply" : strerror(e), dm_why());
    /* the config message exists on newer kernels only */
    cf = run_task(DM_DEVICE_TARGET_MSG, name, "config", &e);
    if (cf)
        config = dm_task_get_message_response(cf);

    dd_vdo_volume_fill(v, stats, stats ? strlen(stats) : 0, status_line,
                       have_table ? table_line : NULL, config, config ? strlen(config) : 0);
    if (tb)
        dm_task_destroy(tb);
    if (ms)
        dm_task_destroy(ms);
    if (cf)
        dm_task_destroy(cf);
    return v->have_stats ? 0 : -EIO;
}

static void dm_free_impl(void *impl)
{
    /* the log hook stays installed: it is process-wide and other sources or
     * libdevmapper users in this process rely on it staying quiet */
    (void)impl;
}

static const struct dd_vdo_source_ops dm_ops = {
    .kind = "dm",
    .list = dm_list,
    .read = dm_read,
    .next = NULL,
    .free = dm_free_impl,
};

int dd_vdo_dm_open(struct dd_vdo_source *src, char *errbuf, size_t errlen)
{
    (void)errbuf;
    (void)errlen;
    dm_log_with_errno_init(capture_dm_log);
    src->ops = &dm_ops;
    src->impl = NULL;
    return 0;
}
