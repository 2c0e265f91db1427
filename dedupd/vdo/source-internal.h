/*
 * The table of functions each VDO source implements (SQLite's VFS habit), and
 * helpers the sources share. Only source*.c include this (and the replay
 * fuzz target, for the pure decoders below).
 */
#ifndef DD_VDO_SOURCE_INTERNAL_H
#define DD_VDO_SOURCE_INTERNAL_H

#include "dedupd/vdo/source.h"

struct dd_vdo_source_ops {
    const char *kind;
    int (*list)(void *impl, char ***ret_names, size_t *ret_n, char *errbuf, size_t errlen);
    int (*read)(void *impl, const char *name, struct dd_vdo_volume *ret);
    void (*next)(void *impl);
    void (*free)(void *impl);
};

struct dd_vdo_source {
    const struct dd_vdo_source_ops *ops;
    void *impl;
    double interval;      /* replay.json */
    char proc_root[4200]; /* replay: current proc tree */
    char dir[4096];       /* replay: its directory */
    unsigned snapshot;    /* replay: 0-based snapshot index */
};

/* Parses the texts of one volume into v (any text may be NULL). */
void dd_vdo_volume_fill(struct dd_vdo_volume *v, const char *stats, size_t stats_len,
                        const char *status, const char *table, const char *config,
                        size_t config_len);

/* Reads a small text file whole (at most DD_VDO_MAX_REPLY_BYTES), dropping
 * leading '#' comment lines. Returns 0, -errno or DD_E_TOOBIG. */
int dd_vdo_read_text(const char *path, char **ret_text, size_t *ret_len);
/* The comment stripping of dd_vdo_read_text (pure): drops leading lines
 * starting with '#' from buf (*len bytes, NUL-terminated), in place. */
void dd_vdo_text_strip_comments(char *buf, size_t *len);
/* DIR/replay.json's text: {"interval_seconds": S}, S in (0, 86400]. where
 * names the file in errbuf. Returns 0 or DD_E_PARSE. */
int dd_vdo_replay_json_parse(const char *text, size_t len, const char *where, double *ret_interval,
                             char *errbuf, size_t errlen);

int dd_vdo_dm_open(struct dd_vdo_source *src, char *errbuf, size_t errlen);
int dd_vdo_sysfs_open(struct dd_vdo_source *src, const char *sys_root, char *errbuf, size_t errlen);
int dd_vdo_replay_open(struct dd_vdo_source *src, const char *dir, char *errbuf, size_t errlen);

/* snprintf for paths and lines: returns -ENAMETOOLONG instead of silently
 * truncating (callers that cannot fail check the result where it matters). */
int dd_vdo_pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
