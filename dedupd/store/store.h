/*
 * The daemon's time-series and observation store, on RocksDB (one directory,
 * one process). Values are opaque bytes to the store; the daemon stores JSON
 * text. Library code: it logs nothing above debug and returns errors, with a
 * message for the ones a user has to act on (dd_store_open).
 *
 * Column families and key layouts (all integers big-endian, so byte order is
 * time order):
 *
 *   samples       [u8 n][series id, n bytes][u64 timestamp ms]
 *                 "node" at 1700000000000 ms is the 13 bytes
 *                   04 6e 6f 64 65 | 00 00 01 8b cf e5 68 00
 *                 The length byte keeps "vol/a" (05 ...) and "vol/ab" (06 ...)
 *                 apart: no series' keys are a prefix range of another's, and
 *                 all of one series' keys are contiguous and time-ordered.
 *   observations  [u64 timestamp ms][id bytes]  (pod outcomes; id is free-form
 *                 and unprefixed: the timestamp is fixed-width)
 *   models        [u8 n][name, n bytes][u64 version]  (version >= 1)
 *   meta          "schema" -> decimal text, DD_STORE_SCHEMA_VERSION
 *
 * Durability: the write-ahead log is always on. A committed batch survives
 * kill -9 of the daemon (it is in the kernel when commit returns); with
 * sync=true it also survives power loss. One batch is atomic: after a crash
 * it is all there or not at all.
 *
 * Retention uses range deletes, not a compaction filter: dd_store_retain()
 * finds each series with one seek per series (never a scan of the data) and
 * writes one DeleteRange [series+0, series+cutoff) where the series has
 * points older than the cutoff. The points vanish from reads at once and
 * the space returns as compaction drops the covered files. A compaction
 * filter would delete only when compaction happens to visit a file (reads
 * would still see expired points), would run our code on RocksDB's
 * background threads and would need a clock inside the filter. Each range
 * tombstone costs reads a little until compaction folds it, so call retain
 * once per interval or less often (every few minutes is plenty).
 *
 * Threads: queries, gets and stats may run on any thread, concurrently with
 * each other and with the writer. Writes (batch commit, retain, put_model)
 * come from one thread at a time. Callbacks run under the store's read lock
 * and must not call the store's write functions.
 *
 * Disk full: a failed commit returns its error, counts the batch's samples
 * as dropped and leaves reads working. RocksDB keeps refusing writes after a
 * write error, so the next commit after a failure reopens the database
 * (at most once per recover_interval_ms); if it cannot be reopened for
 * writing it is reopened read-only, reads go on and later commits retry.
 */
#ifndef DD_STORE_STORE_H
#define DD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The on-disk layout above. A store with a higher version is refused. */
#define DD_STORE_SCHEMA_VERSION 1u

/* Longest series id or model name: the key holds the length in one byte.
 * "vol/" plus a dm name (at most 127 bytes, DM_NAME_LEN) fits. */
#define DD_STORE_SERIES_MAX 255u

/* Longest observation id: a pod namespace/name/uid is under 400 bytes. */
#define DD_STORE_OBS_ID_MAX 1024u

/* Largest value: a JSON sample of all of a node's volumes is tens of KiB;
 * a model in UBJ form is a few MiB. Values past this are refused, so a bug
 * cannot write (or a query hand back) unbounded blobs. */
#define DD_STORE_VALUE_MAX (1u << 20)
#define DD_STORE_MODEL_MAX (64u << 20)

/* Most points one query returns (a limit of 0 or above this is capped): two
 * weeks at 1-minute steps is 20,160 points, two days of unstepped 10-second
 * samples 17,280; with ~1 KiB values the array form stays under 50 MiB. */
#define DD_STORE_QUERY_MAX_POINTS 50000u

/* 14 days: enough history for the model to see two weekly cycles. */
#define DD_STORE_DEFAULT_RETENTION_MS (14ull * 24 * 3600 * 1000)

/* After a failed write, reopen attempts are at least this far apart: a full
 * disk is not fixed in milliseconds, and a reopen replays the WAL. */
#define DD_STORE_DEFAULT_RECOVER_INTERVAL_MS 10000u

/*
 * Space kept free on the store's file system: below it a commit is refused
 * with -ENOSPC (counted as dropped samples) before RocksDB writes anything,
 * and writing resumes by itself once space is back. RocksDB is not left to
 * meet a full disk: Debian's librocksdb 7.8 is built with assertions on, and
 * its info-log writer aborts the process on the second write after a failed
 * one (measured: a 64 MiB tmpfs filled under a running dedupd).
 */
#define DD_STORE_DEFAULT_MIN_FREE_BYTES (64ull << 20)

struct dd_store;
struct dd_store_batch;

/*
 * Downsampling, applied by dd_store_retain: samples newer than
 * now - full_resolution_ms are all kept; older ones keep one point per
 * series per downsample_step_ms, the first point of each bucket
 * [k*step, (k+1)*step) in absolute time (so every pass, and every node,
 * agrees on the buckets), the others removed with one range tombstone per
 * bucket. Only whole buckets are thinned; a pass thins from where the last
 * one stopped (kept in meta "downsampled_to"), so each point is looked at
 * once. Thinned points do not come back when the window is widened later.
 * Placement role (5,000 nodes x 16 volumes every 10 s): 24 h at full
 * resolution, then 5 min, keeps 10 % of the rows of 14 days unthinned;
 * measured 179 bytes a row after compaction (~600-byte JSON rows, test-store
 * --bench-rows): 124 GB for the full-resolution day plus 4.1 GB per older
 * day, 177 GB at 14 days instead of 1.73 TB.
 */
#define DD_STORE_DEFAULT_FULL_RESOLUTION_MS 0u /* off: the agent keeps all */
#define DD_STORE_DEFAULT_DOWNSAMPLE_STEP_MS (5u * 60 * 1000)

struct dd_store_options {
    uint64_t retention_ms;        /* 0: keep everything */
    uint64_t recover_interval_ms; /* 0: reopen on every commit after a failure */
    uint64_t min_free_bytes;      /* 0: no reserve */
    /* 0: no downsampling. Otherwise the newest full_resolution_ms are kept
     * whole and older samples thinned to one per downsample_step_ms. */
    uint64_t full_resolution_ms;
    uint64_t downsample_step_ms; /* 0 with full_resolution_ms set: no thinning */
};

/*
 * Changes the retention of an open store (SIGHUP): the next dd_store_retain
 * deletes at now - retention_ms (0: keeps everything). Points an earlier,
 * shorter retention already deleted do not come back. Any thread.
 */
void dd_store_set_retention(struct dd_store *s, uint64_t retention_ms);

/* Changes the downsampling of an open store (as the options above; 0 turns
 * it off) from the next dd_store_retain on. Any thread. */
void dd_store_set_downsampling(struct dd_store *s, uint64_t full_resolution_ms, uint64_t step_ms);

/* Fills *o with the defaults above (what a NULL options pointer means). */
void dd_store_options_init(struct dd_store_options *o);

/*
 * Opens (creating it and missing parents, mode 0750) the store in directory
 * path. On failure errbuf says what happened, names the path and says what
 * to do. Returns 0 or:
 *   -EACCES, -EROFS, -ENOTDIR ...  the directory cannot be created or written
 *   -EBUSY      locked: another process (or handle) has the store open
 *   -EUCLEAN    RocksDB reports corruption, or CURRENT is missing next to a
 *               MANIFEST (opening would start an empty store over the data)
 *   -ENOTSUP    written by a newer dedupd (schema above ours)
 *   -EINVAL     a RocksDB database that is not a dedupd store, or bad args
 *   -ENOMEM, -EIO, DD_E_LIBRARY otherwise
 * *ret is set only on success; the caller frees it with dd_store_free().
 */
int dd_store_open(const char *path, const struct dd_store_options *opts, struct dd_store **ret,
                  char *errbuf, size_t errlen);

/* Closes the database (all committed batches are in the WAL already) and
 * frees the store. Open batches must be committed or freed first. Accepts
 * NULL; returns NULL. */
struct dd_store *dd_store_free(struct dd_store *s);

/* The directory the store was opened on (borrowed, lives as long as s). */
const char *dd_store_path(const struct dd_store *s);

/* --- Writing: one batch per sample interval ------------------------------ */

/* Starts an empty batch on s. The batch borrows s: commit or free it before
 * dd_store_free(s). */
int dd_store_batch_begin(struct dd_store *s, struct dd_store_batch **ret);

/* Adds one sample; value (len bytes, len <= DD_STORE_VALUE_MAX) is copied.
 * series: 1..DD_STORE_SERIES_MAX bytes, NUL-terminated. A sample with the
 * same series and timestamp replaces the old one. A refused sample (-EINVAL,
 * -E2BIG) counts as dropped. */
int dd_store_batch_put_sample(struct dd_store_batch *b, const char *series, uint64_t ts_ms,
                              const void *value, size_t len);

/* Adds one observation (id: 1..DD_STORE_OBS_ID_MAX bytes); value copied. */
int dd_store_batch_put_observation(struct dd_store_batch *b, uint64_t ts_ms, const char *id,
                                   const void *value, size_t len);

/*
 * Writes the batch atomically, WAL on; sync=true also fsyncs the WAL. Always
 * consumes b. Returns 0, or a negative error (-ENOSPC, -EFBIG, -EIO, -EROFS
 * while the store is read-only after a failed recovery...): its samples then
 * count as dropped. An empty batch writes nothing and returns 0.
 */
int dd_store_batch_commit(struct dd_store_batch *b, bool sync);

/* Abandons a batch without writing. Accepts NULL; returns NULL. */
struct dd_store_batch *dd_store_batch_free(struct dd_store_batch *b);

/*
 * Deletes samples and observations older than now_ms - retention (nothing
 * when retention is 0 or not yet reached), and thins samples older than
 * now_ms - full_resolution (see downsampling above). One seek per series,
 * one range tombstone per series that has expired points, one seek and one
 * tombstone per bucket thinned. Returns the number of tombstones written
 * (>= 0) or a negative error.
 */
int dd_store_retain(struct dd_store *s, uint64_t now_ms);

/* --- Reading -------------------------------------------------------------- */

struct dd_store_query {
    const char *series;
    uint64_t from_ms, to_ms; /* inclusive; from_ms <= to_ms */
    /* 0: every sample. Otherwise the first sample of each bucket
     * [from + k*step, from + (k+1)*step) is returned; the rest are skipped
     * with a seek, not read. */
    uint64_t step_ms;
    size_t limit; /* 0 or above DD_STORE_QUERY_MAX_POINTS: that cap */
    /* Newest point first (step_ms must be 0): with a limit, the newest
     * points of the range rather than the oldest. */
    bool newest_first;
};

/* Called once per point in time order. value is borrowed for the call only.
 * Return 0 to go on, > 0 to stop (the query succeeds), < 0 to fail with it. */
typedef int (*dd_store_sample_cb)(void *userdata, uint64_t ts_ms, const void *value, size_t len);

/*
 * Runs q, calling cb per point. Returns the number of points delivered, or a
 * negative error (-EINVAL for a bad query, -EUCLEAN for a malformed key).
 * *ret_truncated (may be NULL) says whether the limit cut points off.
 */
int dd_store_query(struct dd_store *s, const struct dd_store_query *q, dd_store_sample_cb cb,
                   void *userdata, bool *ret_truncated);

struct dd_store_point {
    uint64_t ts_ms;
    void *value; /* owned by the array, dd_malloc'd, NUL-terminated past len */
    size_t len;
};

/* Like dd_store_query, into an array the caller frees with
 * dd_store_points_free(). *ret_points is NULL when no point matched. */
int dd_store_query_array(struct dd_store *s, const struct dd_store_query *q,
                         struct dd_store_point **ret_points, size_t *ret_n, bool *ret_truncated);
void dd_store_points_free(struct dd_store_point *points, size_t n);

/* One sample. *ret_value is dd_malloc'd (NUL-terminated past *ret_len), the
 * caller frees it with dd_free. Returns 0, -ENOENT, or an error. */
int dd_store_get_sample(struct dd_store *s, const char *series, uint64_t ts_ms, void **ret_value,
                        size_t *ret_len);

/* Called once per observation in time order; id and value are borrowed. */
typedef int (*dd_store_obs_cb)(void *userdata, uint64_t ts_ms, const char *id, size_t id_len,
                               const void *value, size_t len);

/* Observations with from_ms <= ts <= to_ms, at most limit (capped as for
 * samples). Returns the number delivered or a negative error. */
int dd_store_query_observations(struct dd_store *s, uint64_t from_ms, uint64_t to_ms, size_t limit,
                                dd_store_obs_cb cb, void *userdata, bool *ret_truncated);

/* Names of the sample series that start with prefix ("" for all), sorted
 * bytewise: one seek per name length and one per matching series (the
 * series under other prefixes are not read). The caller frees each name and the array
 * with dd_free. Returns 0, -EUCLEAN (a malformed key) or an error. */
int dd_store_list_series(struct dd_store *s, const char *prefix, char ***ret_names, size_t *ret_n);

/*
 * Every series under a prefix, newest points first: for the placement
 * role's rows, stored as series "node/<node>/vol/<volume>", the trainer asks
 * for prefix "node/" (or "node/<node>/") and gets each series' newest
 * points in [from_ms, to_ms], at most limit per series (0 or above
 * DD_STORE_QUERY_MAX_POINTS: that cap).
 */
struct dd_store_prefix_query {
    const char *prefix;      /* "" for every series */
    uint64_t from_ms, to_ms; /* inclusive */
    size_t limit;            /* per series */
};

/* Called per point: series by series in bytewise name order, each series'
 * points newest first. series and value are borrowed for the call. Return
 * 0 to go on, > 0 to end this series (the next one follows), < 0 to fail. */
typedef int (*dd_store_series_cb)(void *userdata, const char *series, uint64_t ts_ms,
                                  const void *value, size_t len);

/*
 * Runs q: lists the series (as dd_store_list_series), then one newest-first
 * query per series, each under the read lock by itself (writes go on
 * meanwhile; a series written during the scan may show its new points).
 * Returns the number of series visited or a negative error. *ret_truncated
 * (may be NULL): some series had more points than limit.
 */
int dd_store_query_prefix(struct dd_store *s, const struct dd_store_prefix_query *q,
                          dd_store_series_cb cb, void *userdata, bool *ret_truncated);

/* --- Models --------------------------------------------------------------- */

/* Stores a model version (>= 1), synced: models are rare and costly to
 * rebuild. data is copied. */
int dd_store_put_model(struct dd_store *s, const char *name, uint64_t version, const void *data,
                       size_t len);

/* Deletes the versions of a model below version (one range tombstone,
 * synced). Returns 0 or an error. */
int dd_store_delete_models_before(struct dd_store *s, const char *name, uint64_t version);

/* Reads version (0: the latest) of a model. *ret_data is dd_malloc'd; the
 * caller frees it. *ret_version (may be NULL) gets the version read.
 * Returns 0, -ENOENT or an error. */
int dd_store_get_model(struct dd_store *s, const char *name, uint64_t version, void **ret_data,
                       size_t *ret_len, uint64_t *ret_version);

/* --- Stats ---------------------------------------------------------------- */

struct dd_store_stats {
    uint64_t disk_bytes; /* sst_bytes + wal_bytes: approximate size on disk */
    uint64_t sst_bytes;  /* "rocksdb.total-sst-files-size" over all families */
    uint64_t wal_bytes;  /* the live *.log files in the directory */
    /* Since open: */
    uint64_t samples_written; /* in committed batches */
    uint64_t samples_dropped; /* in failed commits, or refused by put */
    uint64_t commits_failed;
    uint64_t reopens; /* recoveries after a failed write */
    bool read_only;   /* the last recovery could only open for reading */
    /* Operations (writes, reads, compactions seen through a write) that met
     * corruption; > 0 means the store is DAMAGED (dd_store_health). */
    uint64_t corruptions;
    /* Range tombstones written by dd_store_retain (retention and
     * downsampling together). */
    uint64_t tombstones;
};

int dd_store_get_stats(struct dd_store *s, struct dd_store_stats *ret);

/* --- Health ----------------------------------------------------------------- */

/*
 * What an operator must know about the store, for /readyz, metrics and the
 * log. The daemon logs each change of state once (this library does not).
 *
 *   OK        writes succeed.
 *   DEGRADED  writes fail for a reason that can pass by itself: the file
 *             system is below the reserve or returned an I/O error, or the
 *             last recovery could only reopen read-only. Samples are counted
 *             as dropped; the store retries (recover_interval_ms).
 *   DAMAGED   RocksDB found corruption (a checksum mismatch in a .sst file,
 *             a bad block) on a read, a write or in a background compaction.
 *             It does not heal: it stays DAMAGED until dedupd is stopped and
 *             the directory repaired or moved away (advice says how).
 *             Meanwhile the store reopens once with automatic compaction
 *             off, so new samples are written again (compaction would meet
 *             the damaged file and stop every write); reads that touch the
 *             damaged block fail with -EUCLEAN, others work; space freed by
 *             retention is not reclaimed until repair. If writes still fail,
 *             they fail at once (-EUCLEAN), counted as dropped.
 */
enum dd_store_state {
    DD_STORE_OK,
    DD_STORE_DEGRADED,
    DD_STORE_DAMAGED,
};

/* "ok", "degraded", "damaged". */
const char *dd_store_state_name(enum dd_store_state state);

struct dd_store_health {
    enum dd_store_state state;
    int error;            /* the negative errno behind the state; 0 when OK */
    uint64_t since_ms;    /* CLOCK_REALTIME ms when this state was entered */
    const char *path;     /* the store directory (borrowed, lives as long as s) */
    char detail[512];     /* RocksDB's message ("Corruption: block checksum
                           * mismatch: ... in DIR/000021.sst offset ...") or ours */
    char advice[1024];    /* what the operator should do; names the path */
    uint64_t corruptions; /* operations that met corruption, since open */
    bool compaction_off;  /* reopened without compaction after damage */
};

/* Fills *ret (never fails on a valid store; returns 0). Any thread. */
int dd_store_health(struct dd_store *s, struct dd_store_health *ret);

/*
 * Offline repair of a store directory dedupd does not have open (stop it
 * first): runs RocksDB's RepairDB, which rebuilds the MANIFEST and CURRENT
 * from the .sst and WAL files and moves every file it cannot read in full to
 * DIR/lost/: the samples in a file with one damaged block are all lost
 * (measured: a 3 MiB file of 3,000 samples for one bad 279-byte block);
 * everything else stays. An empty directory named CURRENT is removed first.
 * On failure errbuf says why. Returns 0, -EBUSY (open by a process) or
 * another error.
 */
int dd_store_repair(const char *path, char *errbuf, size_t errlen);

#endif
