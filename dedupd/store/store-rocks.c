/*
 * Translates RocksDB's error strings into our negative codes, in this one
 * file. The C API returns a malloc'd Status::ToString() ("Corruption: ...",
 * "IO error: While lock file: DIR/LOCK: Resource temporarily unavailable"),
 * never a code, so the class is read from the prefix and the errno text the
 * posix Env appends. Every string is freed here, whatever its class.
 */
#include "dedupd/store/store-internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int classify(const char *e)
{
    if (starts_with(e, "Corruption:"))
        return -EUCLEAN;
    /* Another process: fcntl(F_SETLK) fails with EAGAIN ("While lock file").
     * This process: RocksDB's own table of held locks ("lock hold by current
     * process ... No locks available"). */
    if (strstr(e, "While lock file") || strstr(e, "lock hold by current process"))
        return -EBUSY;
    if (strstr(e, "No space left on device") || strstr(e, "No space"))
        return -ENOSPC;
    if (strstr(e, "File too large"))
        return -EFBIG;
    if (strstr(e, "Permission denied"))
        return -EACCES;
    if (strstr(e, "Read-only file system"))
        return -EROFS;
    if (strstr(e, "No such file or directory"))
        return -ENOENT;
    if (strstr(e, "Not a directory"))
        return -ENOTDIR;
    if (starts_with(e, "Invalid argument:"))
        return -EINVAL;
    if (starts_with(e, "Not implemented:"))
        return -ENOTSUP;
    if (starts_with(e, "IO error:"))
        return -EIO;
    return DD_E_LIBRARY;
}

int dd_rocks_status(char *err, char *msg, size_t msglen)
{
    int r;

    if (!err) {
        if (msg && msglen)
            msg[0] = '\0';
        return 0;
    }
    r = classify(err);
    if (msg && msglen)
        snprintf(msg, msglen, "%s", err);
    rocksdb_free(err);
    return r;
}
