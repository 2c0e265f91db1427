/*
 * Where VDO statistics come from. One interface, three sources:
 *   dm         libdevmapper: every dm device whose table has target type
 *              "vdo"; its status, table, and the `stats` and `config`
 *              messages (config exists on newer kernels only; its absence is
 *              normal). Never shells out to dmsetup.
 *   sysfs      kvdo 6.x (/sys/kvdo/<pool>/statistics/<name>) and kvdo 8.x
 *              (/sys/block/dm-N/vdo/statistics/<name>), one value per file,
 *              under a root prefix (a fake /sys tree in tests).
 *   replay:DIR fixture replay: DIR/<volume>/{stats,status,table,config}, or a
 *              numbered sequence DIR/<volume>/0001/... replayed one snapshot
 *              per dd_vdo_source_next() (the last one repeats). Leading '#'
 *              comment lines in the files are ignored, so reference captures
 *              can be dropped in as they are. DIR/proc/ and DIR/replay.json are
 *              not volumes.
 *
 * A source is opaque; a read fills a dd_vdo_volume with parsed values and,
 * per part, an error message naming the volume and the part. Library code: it
 * logs at debug level only and returns errors.
 */
#ifndef DD_VDO_SOURCE_H
#define DD_VDO_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "dedupd/vdo/vdo.h"

struct dd_vdo_source;

/* One volume, one sample. Owned by the caller; release with
 * dd_vdo_volume_release(). */
struct dd_vdo_volume {
    char name[128];
    unsigned dm_major, dm_minor; /* 0/0 when unknown (replay, kvdo 6) */
    struct dd_vdo_stats stats;   /* empty when stats_error is set */
    struct dd_vdo_stats config;  /* empty when the kernel has no config message */
    struct dd_vdo_status status;
    struct dd_vdo_table table;
    bool have_stats, have_config, have_status, have_table;
    char stats_error[256], status_error[256], table_error[256], config_error[256];
};

void dd_vdo_volume_release(struct dd_vdo_volume *v);

/*
 * spec is "dm", "sysfs" or "replay:DIR"; sys_root is the /sys prefix for the
 * sysfs source ("/sys" when NULL). On failure errbuf says why.
 */
int dd_vdo_source_open(const char *spec, const char *sys_root, struct dd_vdo_source **ret,
                       char *errbuf, size_t errlen);
struct dd_vdo_source *dd_vdo_source_free(struct dd_vdo_source *src);
const char *dd_vdo_source_kind(const struct dd_vdo_source *src);

/* Names of the VDO volumes now present, sorted (byte order). The caller frees
 * the array and each name with dd_strv_free (common/strlist.h). A source that cannot list at all
 * (no device-mapper) returns a negative error and says why in errbuf. */
int dd_vdo_source_list(struct dd_vdo_source *src, char ***ret_names, size_t *ret_n, char *errbuf,
                       size_t errlen);

/* Reads one volume. Returns 0 when at least the stats were read; -ENOENT when
 * the volume is gone (it vanished between listing and reading); another
 * negative error otherwise. Part failures are in the *_error fields. */
int dd_vdo_source_read(struct dd_vdo_source *src, const char *name, struct dd_vdo_volume *ret);

/* Replay: move to the next snapshot. Live sources: nothing to do. */
void dd_vdo_source_next(struct dd_vdo_source *src);

/* Replay: the nominal seconds between snapshots from DIR/replay.json (0 when
 * absent or for live sources). */
double dd_vdo_source_interval(const struct dd_vdo_source *src);

/* Replay: DIR/proc (or DIR/proc/000N for a sequence) for the current
 * snapshot, when present; NULL otherwise. Borrowed until the next call. */
const char *dd_vdo_source_proc_root(struct dd_vdo_source *src);

#endif
