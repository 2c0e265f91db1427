/*
 * Shared by store*.c and the store's tests only: the one place RocksDB
 * errors are translated (store-rocks.c), and the write hook tests use to
 * inject failures into the commit path (SQLite's test_vfs habit).
 */
#ifndef DD_STORE_STORE_INTERNAL_H
#define DD_STORE_STORE_INTERNAL_H

#include <stddef.h>

#include <rocksdb/c.h>

/*
 * Takes a RocksDB error string (NULL: no error) and frees it with
 * rocksdb_free. Returns 0 for NULL, else the negative code for it:
 * Corruption -EUCLEAN, a held LOCK -EBUSY, "No space left" -ENOSPC,
 * "File too large" -EFBIG, "Permission denied" -EACCES, "Read-only file
 * system" -EROFS, "No such file" -ENOENT, "Not a directory" -ENOTDIR,
 * Invalid argument -EINVAL, Not implemented -ENOTSUP, another IO error -EIO,
 * anything else DD_E_LIBRARY. The text goes to msg (may be NULL).
 */
int dd_rocks_status(char *err, char *msg, size_t msglen);

/*
 * Tests: when set, commits call this instead of rocksdb_write. To fail, set
 * *errptr to a RocksDB-style message allocated with malloc (the store frees
 * it with rocksdb_free); otherwise call rocksdb_write yourself.
 */
typedef void (*dd_store_write_fn)(rocksdb_t *db, const rocksdb_writeoptions_t *wo,
                                  rocksdb_writebatch_t *batch, char **errptr);
extern dd_store_write_fn dd_store_test_write;

struct dd_store;

/* Tests and measurements: flushes the memtables and compacts the samples
 * family fully (as RocksDB would in time). Returns 0 or an error. */
int dd_store_compact(struct dd_store *s);

#endif
