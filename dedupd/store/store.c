/*
 * The time-series store on RocksDB: opening (with a clear message for each
 * way that fails), batched writes, range-delete retention, bounded queries
 * and models. Key layouts and the durability contract are in store.h.
 *
 * Invariants: s->db is open (read-write, or read-only after a failed
 * recovery) except for the moment a recovery swaps it, which happens under
 * the write side of s->lock; every other use of s->db holds the read side.
 * s->cf[] point into s->handles, which follow s->cf_names one to one; a
 * recovery replaces them too (NULL after one that failed), so even adding to
 * a write batch reads them under the read side (wb_put, wb_delete_range).
 * Iterators always carry both bounds, inside one series' key range, so a
 * query never reads another series' keys. RocksDB error strings are never
 * inspected here: store-rocks.c translates and frees them.
 *
 * Left to others: when to commit and retain (the daemon's sampler), what
 * values mean (JSON, written by the daemon), logging (the daemon).
 */
#include "dedupd/store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/store/store-internal.h"

dd_store_write_fn dd_store_test_write;

enum { CF_DEFAULT, CF_SAMPLES, CF_OBS, CF_MODELS, CF_META, CF_N_ };

static const char *const cf_names[CF_N_] = {
    [CF_DEFAULT] = "default", [CF_SAMPLES] = "samples", [CF_OBS] = "observations",
    [CF_MODELS] = "models",   [CF_META] = "meta",
};

static const char schema_key[] = "schema";
static const char downsampled_key[] = "downsampled_to";

/* Column families we keep open: ours plus any a newer dedupd added (RocksDB
 * refuses to open a database without naming all of them). More than this is
 * not a dedupd store. */
#define STORE_MAX_CFS 64u

/* [u8 n][n bytes][u64]: the longest sample or model key. */
#define KEY_MAX (1u + DD_STORE_SERIES_MAX + 8u)

struct dd_store {
    char *path;
    struct dd_store_options opts;

    pthread_rwlock_t lock; /* read: any use of db; write: swapping it */
    rocksdb_t *db;
    bool read_only;
    rocksdb_options_t *dbopts;
    rocksdb_writeoptions_t *wo, *wo_sync;
    char **cf_names; /* dd_strdup'd, ncf of them */
    rocksdb_column_family_handle_t **handles;
    size_t ncf;
    rocksdb_column_family_handle_t *cf[CF_N_];

    /* Under write_lock: writers are the sampler and the model trainer. */
    pthread_mutex_t write_lock;
    bool write_failed;
    bool low_space;       /* below min_free_bytes at the last commit */
    bool damage_reopened; /* the one reopen without compaction is done */
    uint64_t last_recover_ms;

    /* What dd_store_health reports, under health_lock (taken last, held
     * briefly, never around RocksDB calls). */
    pthread_mutex_t health_lock;
    bool damaged;
    char damage_msg[512];
    uint64_t damaged_at_ms;
    bool compaction_off;
    int fail_error; /* the last write's error while writes fail; 0 when OK */
    char fail_msg[512];
    uint64_t fail_since_ms;

    _Atomic uint64_t retention_ms;         /* opts.retention_ms, changed by SIGHUP */
    _Atomic uint64_t full_res_ms, step_ms; /* opts' downsampling, likewise */
    /* Buckets below this are thinned (meta "downsampled_to"); read at the
     * first retain. Used by retain only, one thread at a time. */
    uint64_t downsampled_to;
    bool downsampled_loaded;
    _Atomic uint64_t samples_written, samples_dropped, commits_failed, reopens;
    _Atomic uint64_t corruptions, tombstones;
};

struct dd_store_batch {
    struct dd_store *s;
    rocksdb_writebatch_t *wb;
    uint64_t samples;
};

/* Adds to a write batch in family cf. A batch names the family by its id,
 * which a recovery keeps, but the handle is read under the read side of
 * s->lock; -EROFS when a failed recovery left no database. */
static int wb_put(struct dd_store *s, rocksdb_writebatch_t *wb, int cf, const void *key,
                  size_t klen, const void *value, size_t vlen)
{
    int r = 0;

    pthread_rwlock_rdlock(&s->lock);
    if (s->cf[cf])
        rocksdb_writebatch_put_cf(wb, s->cf[cf], key, klen, value, vlen);
    else
        r = -EROFS;
    pthread_rwlock_unlock(&s->lock);
    return r;
}

static int wb_delete_range(struct dd_store *s, rocksdb_writebatch_t *wb, int cf, const void *lo,
                           size_t lolen, const void *hi, size_t hilen)
{
    int r = 0;

    pthread_rwlock_rdlock(&s->lock);
    if (s->cf[cf])
        rocksdb_writebatch_delete_range_cf(wb, s->cf[cf], lo, lolen, hi, hilen);
    else
        r = -EROFS;
    pthread_rwlock_unlock(&s->lock);
    return r;
}

/* --- Small helpers -------------------------------------------------------- */

static uint64_t now_realtime_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t now_monotonic_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xffu);
        v >>= 8;
    }
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Writes [u8 n][name] into key (KEY_MAX bytes). Returns its length or
 * -EINVAL for an empty or too long name. */
static int name_prefix(unsigned char *key, const char *name)
{
    size_t n;

    if (!name)
        return -EINVAL;
    n = strlen(name);
    if (n == 0 || n > DD_STORE_SERIES_MAX)
        return -EINVAL;
    key[0] = (unsigned char)n;
    memcpy(key + 1, name, n);
    return (int)(n + 1);
}

/*
 * The smallest key greater than every key starting with prefix[0..len):
 * trailing 0xff bytes dropped, the last other byte incremented. Returns the
 * new length, or 0 when there is none (all 0xff).
 */
static size_t prefix_successor(unsigned char *prefix, size_t len)
{
    while (len > 0 && prefix[len - 1] == 0xffu)
        len--;
    if (len == 0)
        return 0;
    prefix[len - 1]++;
    return len;
}

/* --- Health ----------------------------------------------------------------- */

/* Records corruption RocksDB reported (msg: its text). The first message is
 * kept: later ones are usually the same file seen again. */
static void note_damage(struct dd_store *s, const char *msg)
{
    atomic_fetch_add(&s->corruptions, 1);
    pthread_mutex_lock(&s->health_lock);
    if (!s->damaged) {
        s->damaged = true;
        s->damaged_at_ms = now_realtime_ms();
        snprintf(s->damage_msg, sizeof(s->damage_msg), "%s", msg);
    }
    pthread_mutex_unlock(&s->health_lock);
    dd_log_debug("store %s: corruption: %s", s->path, msg);
}

/* dd_rocks_status for an operation on s's data: corruption marks s
 * damaged. */
static int rocks_check(struct dd_store *s, char *err)
{
    char msg[512];
    int r = dd_rocks_status(err, msg, sizeof(msg));

    if (r == -EUCLEAN)
        note_damage(s, msg);
    return r;
}

/* The outcome of a write (r: 0 or its error, msg: why). */
static void note_write(struct dd_store *s, int r, const char *msg)
{
    pthread_mutex_lock(&s->health_lock);
    if (r == 0) {
        s->fail_error = 0;
        s->fail_msg[0] = '\0';
        s->fail_since_ms = 0;
    } else {
        if (s->fail_error == 0)
            s->fail_since_ms = now_realtime_ms();
        s->fail_error = r;
        snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", msg && *msg ? msg : dd_strerror(r));
    }
    pthread_mutex_unlock(&s->health_lock);
}

/* --- Directory checks ------------------------------------------------------ */

/* mkdir -p with mode 0750 for what it creates. Returns 0 or -errno. */
static int mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    struct stat st;
    size_t n = strlen(path);

    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end)
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -errno;
        if (!end)
            *p = '/';
        else
            break;
    }
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    return 0;
}

static bool dir_has_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    int n = snprintf(p, sizeof(p), "%s/%s", dir, name);

    return n > 0 && (size_t)n < sizeof(p) && access(p, F_OK) == 0;
}

/* Sums the sizes of regular files in dir whose name starts with / ends with
 * the given strings (either may be ""). */
static int dir_sum(const char *dir, const char *prefix, const char *suffix, uint64_t *ret_bytes,
                   size_t *ret_count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t sum = 0;
    size_t count = 0, pl = strlen(prefix), sl = strlen(suffix);

    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        struct stat st;
        if (nl < pl + sl || strncmp(e->d_name, prefix, pl) != 0 ||
            strcmp(e->d_name + nl - sl, suffix) != 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        sum += (uint64_t)st.st_size;
        count++;
    }
    closedir(d);
    if (ret_bytes)
        *ret_bytes = sum;
    if (ret_count)
        *ret_count = count;
    return 0;
}

static int dir_error(const char *path, int r, char *errbuf, size_t errlen)
{
    if (r == -EACCES || r == -EPERM)
        return dd_fail(errbuf, errlen, r,
                       "cannot create or write store directory %s: %s; create it writable by the "
                       "user dedupd runs as (uid %u), or choose another directory",
                       path, strerror(-r), (unsigned)geteuid());
    if (r == -EROFS)
        return dd_fail(errbuf, errlen, r,
                       "cannot write store directory %s: it is on a read-only file system; put the "
                       "store on a writable file system",
                       path);
    return dd_fail(errbuf, errlen, r, "cannot create store directory %s: %s", path, strerror(-r));
}

/* What to do about a store RocksDB cannot open because its own files are
 * damaged: repair keeps the data files, moving away loses them. */
#define REPAIR_ADVICE                                                                              \
    "stop dedupd and run RocksDB's repair (ldb --db=%s repair), which rebuilds the file list "     \
    "from the .sst files; or restore it from a backup, or move the directory away so dedupd "      \
    "starts an empty store (its history and models are lost)"

/* The message for a RocksDB open error already translated to r. */
static int open_error(const char *path, int r, const char *rocks, char *errbuf, size_t errlen)
{
    switch (r) {
    case -EBUSY:
        return dd_fail(errbuf, errlen, r,
                       "store directory %s is locked by another process; is another dedupd "
                       "running? (RocksDB: %s)",
                       path, rocks);
    case -EUCLEAN:
        return dd_fail(errbuf, errlen, r,
                       "store directory %s is corrupt (RocksDB: %s); " REPAIR_ADVICE, path, rocks,
                       path);
    case -EACCES:
    case -EPERM:
    case -EROFS:
        return dir_error(path, r, errbuf, errlen);
    case -ENOSPC:
        return dd_fail(errbuf, errlen, r,
                       "no space to open store directory %s (RocksDB: %s); free space on its file "
                       "system",
                       path, rocks);
    default:
        return dd_fail(errbuf, errlen, r, "cannot open store directory %s: %s", path, rocks);
    }
}

/*
 * CURRENT names the live MANIFEST ("MANIFEST-000005\n"). RocksDB reports a
 * CURRENT that is a directory, or a MANIFEST it names that is gone, as a raw
 * I/O error; say what is wrong and what to do. Anything else (garbage in
 * either file) is left to RocksDB, which calls it corruption.
 */
static int check_current(const char *path, char *errbuf, size_t errlen)
{
    char p[PATH_MAX], text[128];
    struct stat st;
    ssize_t n;
    size_t len;
    int fd;

    snprintf(p, sizeof(p), "%s/CURRENT", path);
    if (lstat(p, &st) != 0)
        return 0;
    if (!S_ISREG(st.st_mode))
        return dd_fail(
            errbuf, errlen, -EUCLEAN,
            "store directory %s is corrupt: %s is a %s, not RocksDB's pointer to its "
            "MANIFEST; remove it (rmdir it if it is an empty directory), then " REPAIR_ADVICE,
            path, p, S_ISDIR(st.st_mode) ? "directory" : "special file", path);
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* RocksDB says why */
    n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    len = (size_t)n;
    if (text[len - 1] != '\n')
        return 0;
    text[len - 1] = '\0';
    if (strncmp(text, "MANIFEST-", 9) != 0 || strchr(text, '/'))
        return 0;
    if (!dir_has_file(path, text))
        return dd_fail(errbuf, errlen, -EUCLEAN,
                       "store directory %s is corrupt: CURRENT names %s, which is missing (the "
                       "MANIFEST lists the store's files; without it RocksDB cannot open "
                       "them); " REPAIR_ADVICE,
                       path, text, path);
    return 0;
}

/* --- Opening and closing the database ------------------------------------- */

static void db_close(struct dd_store *s)
{
    for (size_t i = 0; i < s->ncf; i++)
        if (s->handles[i])
            rocksdb_column_family_handle_destroy(s->handles[i]);
    memset(s->handles, 0, s->ncf * sizeof(*s->handles));
    memset(s->cf, 0, sizeof(s->cf));
    if (s->db)
        rocksdb_close(s->db);
    s->db = NULL;
    s->read_only = false;
}

static int add_cf_name(struct dd_store *s, const char *name)
{
    char *copy;

    if (s->ncf >= STORE_MAX_CFS)
        return -E2BIG;
    copy = dd_strdup(name);
    if (!copy)
        return -ENOMEM;
    s->cf_names[s->ncf] = copy;
    s->handles[s->ncf] = NULL;
    s->ncf++;
    return 0;
}

static void map_cfs(struct dd_store *s)
{
    for (size_t i = 0; i < s->ncf; i++)
        for (int c = 0; c < CF_N_; c++)
            if (strcmp(s->cf_names[i], cf_names[c]) == 0)
                s->cf[c] = s->handles[i];
}

/* Opens s->cf_names on s->path; rocks gets RocksDB's text on failure. */
static int db_open(struct dd_store *s, bool read_only, char *rocks, size_t rockslen)
{
    const rocksdb_options_t *cfopts[STORE_MAX_CFS];
    char *err = NULL;
    int r;

    for (size_t i = 0; i < s->ncf; i++)
        cfopts[i] = s->dbopts;
    if (read_only)
        s->db = rocksdb_open_for_read_only_column_families(s->dbopts, s->path, (int)s->ncf,
                                                           (const char *const *)s->cf_names, cfopts,
                                                           s->handles, 0, &err);
    else
        s->db = rocksdb_open_column_families(s->dbopts, s->path, (int)s->ncf,
                                             (const char *const *)s->cf_names, cfopts, s->handles,
                                             &err);
    r = dd_rocks_status(err, rocks, rockslen);
    if (r < 0 || !s->db) {
        s->db = NULL;
        memset(s->handles, 0, s->ncf * sizeof(*s->handles));
        return r < 0 ? r : DD_E_LIBRARY;
    }
    s->read_only = read_only;
    map_cfs(s);
    return 0;
}

/* Creates the families of ours an existing store lacks (an interrupted
 * creation; a later schema's additions). */
static int create_missing_cfs(struct dd_store *s, char *rocks, size_t rockslen)
{
    for (int c = 0; c < CF_N_; c++) {
        char *err = NULL;
        rocksdb_column_family_handle_t *h;
        int r;

        if (s->cf[c])
            continue;
        r = add_cf_name(s, cf_names[c]);
        if (r < 0)
            return r;
        h = rocksdb_create_column_family(s->db, s->dbopts, cf_names[c], &err);
        r = dd_rocks_status(err, rocks, rockslen);
        if (r < 0 || !h) {
            dd_free(s->cf_names[--s->ncf]);
            return r < 0 ? r : DD_E_LIBRARY;
        }
        s->handles[s->ncf - 1] = h;
        s->cf[c] = h;
    }
    return 0;
}

static int read_schema(struct dd_store *s, bool *ret_present, uint64_t *ret_version)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL, *v;
    size_t len = 0;
    uint64_t version;
    int r;

    v = rocksdb_get_cf(s->db, ro, s->cf[CF_META], schema_key, sizeof(schema_key) - 1, &len, &err);
    rocksdb_readoptions_destroy(ro);
    r = dd_rocks_status(err, NULL, 0);
    if (r < 0)
        return r;
    if (!v) {
        *ret_present = false;
        return 0;
    }
    r = dd_parse_u64_n(v, len, &version);
    rocksdb_free(v);
    if (r < 0)
        return -EUCLEAN;
    *ret_present = true;
    *ret_version = version;
    return 0;
}

static int write_schema(struct dd_store *s, char *rocks, size_t rockslen)
{
    char text[24];
    char *err = NULL;
    int n = snprintf(text, sizeof(text), "%u", DD_STORE_SCHEMA_VERSION);

    rocksdb_put_cf(s->db, s->wo_sync, s->cf[CF_META], schema_key, sizeof(schema_key) - 1, text,
                   (size_t)n, &err);
    return dd_rocks_status(err, rocks, rockslen);
}

static int check_schema(struct dd_store *s, char *errbuf, size_t errlen)
{
    char rocks[512];
    bool present = false;
    uint64_t version = 0;
    int r;

    r = read_schema(s, &present, &version);
    if (r == -EUCLEAN)
        return dd_fail(
            errbuf, errlen, r,
            "store directory %s is corrupt: its schema version is unreadable; restore it "
            "from a backup, or move the directory away so dedupd starts an empty store",
            s->path);
    if (r < 0)
        return dd_fail(errbuf, errlen, r, "cannot read the schema version of store %s: %s", s->path,
                       dd_strerror(r));
    if (!present) {
        /* A new store, or one whose creation was interrupted before this. */
        r = write_schema(s, rocks, sizeof(rocks));
        if (r < 0)
            return open_error(s->path, r, rocks, errbuf, errlen);
        return 0;
    }
    if (version > DD_STORE_SCHEMA_VERSION)
        return dd_fail(
            errbuf, errlen, -ENOTSUP,
            "store directory %s was written by a newer dedupd (schema version %llu; this "
            "dedupd reads up to %u); upgrade dedupd, or move the directory away so dedupd "
            "starts an empty store",
            s->path, (unsigned long long)version, DD_STORE_SCHEMA_VERSION);
    if (version == 0)
        return dd_fail(errbuf, errlen, -EUCLEAN,
                       "store directory %s is corrupt: schema version 0; restore it from a backup, "
                       "or move the directory away so dedupd starts an empty store",
                       s->path);
    /* Older versions would be migrated here; 1 is the first. */
    return 0;
}

/* Lists an existing store's families into s->cf_names. */
static int list_existing(struct dd_store *s, char *errbuf, size_t errlen)
{
    char rocks[512], *err = NULL, **names;
    size_t n = 0;
    bool have_meta = false;
    int r;

    names = rocksdb_list_column_families(s->dbopts, s->path, &n, &err);
    r = dd_rocks_status(err, rocks, sizeof(rocks));
    if (r < 0 && names) /* it returns an empty array even on failure */
        rocksdb_list_column_families_destroy(names, n);
    if (r < 0 || !names)
        return open_error(s->path, r < 0 ? r : DD_E_LIBRARY, rocks, errbuf, errlen);
    for (size_t i = 0; i < n && r == 0; i++) {
        have_meta = have_meta || strcmp(names[i], cf_names[CF_META]) == 0;
        r = add_cf_name(s, names[i]);
    }
    rocksdb_list_column_families_destroy(names, n);
    if (r == 0 && !have_meta) {
        /* Listing reads the MANIFEST leniently (garbage lists as just
         * "default"); a read-only open, which changes nothing, tells a
         * damaged store from a foreign database. */
        r = db_open(s, true, rocks, sizeof(rocks));
        if (r < 0)
            return open_error(s->path, r, rocks, errbuf, errlen);
        db_close(s);
        r = -E2BIG;
    }
    if (r == -E2BIG)
        return dd_fail(errbuf, errlen, -EINVAL,
                       "%s is a RocksDB database but not a dedupd store; move it away or choose "
                       "another directory",
                       s->path);
    if (r < 0)
        return dd_fail(errbuf, errlen, r, "cannot open store directory %s: %s", s->path,
                       dd_strerror(r));
    return 0;
}

void dd_store_options_init(struct dd_store_options *o)
{
    o->retention_ms = DD_STORE_DEFAULT_RETENTION_MS;
    o->recover_interval_ms = DD_STORE_DEFAULT_RECOVER_INTERVAL_MS;
    o->min_free_bytes = DD_STORE_DEFAULT_MIN_FREE_BYTES;
    o->full_resolution_ms = DD_STORE_DEFAULT_FULL_RESOLUTION_MS;
    o->downsample_step_ms = DD_STORE_DEFAULT_DOWNSAMPLE_STEP_MS;
}

static int setup_options(struct dd_store *s, bool create)
{
    s->dbopts = rocksdb_options_create();
    s->wo = rocksdb_writeoptions_create();
    s->wo_sync = rocksdb_writeoptions_create();
    if (!s->dbopts || !s->wo || !s->wo_sync)
        return -ENOMEM;
    rocksdb_options_set_create_if_missing(s->dbopts, create);
    rocksdb_options_set_create_missing_column_families(s->dbopts, create);
    /* 2-core nodes: one flush and one compaction at a time is plenty for a
     * few hundred samples per interval. */
    rocksdb_options_set_max_background_jobs(s->dbopts, 2);
    /* A WAL stays until every family with data in it is flushed; models and
     * meta are written rarely, so cap the WAL and let RocksDB flush them. */
    rocksdb_options_set_max_total_wal_size(s->dbopts, 16u << 20);
    /* Samples arrive at ~2 KiB per volume per interval: RocksDB's default
     * 64 MiB memtable would grow the agent's RSS for hours before its first
     * flush (measured: +110 KiB/min with 16 volumes at 10 s) and preallocate
     * a 69 MB WAL. 4 MiB memtables flush within the hour and cap both. */
    rocksdb_options_set_write_buffer_size(s->dbopts, 4u << 20);
    rocksdb_options_set_max_write_buffer_number(s->dbopts, 2);
    /* RocksDB's own LOG: three files of 1 MiB, not an unbounded one. */
    rocksdb_options_set_max_log_file_size(s->dbopts, 1u << 20);
    /* LZ4 where files are young and rewritten soon (L0, L1: cheap on a
     * 2-core node), ZSTD where history settles. */
    static const int per_level[7] = {
        rocksdb_lz4_compression,  rocksdb_lz4_compression,  rocksdb_zstd_compression,
        rocksdb_zstd_compression, rocksdb_zstd_compression, rocksdb_zstd_compression,
        rocksdb_zstd_compression,
    };
    rocksdb_options_set_num_levels(s->dbopts, 7);
    rocksdb_options_set_compression_per_level(s->dbopts, per_level, 7);
    rocksdb_options_set_keep_log_file_num(s->dbopts, 3);
    rocksdb_writeoptions_set_sync(s->wo, 0);
    rocksdb_writeoptions_set_sync(s->wo_sync, 1);
    return 0;
}

int dd_store_open(const char *path, const struct dd_store_options *opts, struct dd_store **ret,
                  char *errbuf, size_t errlen)
{
    struct dd_store *s;
    char rocks[512];
    bool existing;
    int r;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!path || !*path || !ret)
        return dd_fail(errbuf, errlen, -EINVAL, "no store directory given");
    if (strlen(path) >= PATH_MAX - 32)
        return dd_fail(errbuf, errlen, -ENAMETOOLONG, "store directory name too long: %.64s...",
                       path);

    s = dd_calloc(1, sizeof(*s));
    if (!s)
        return dd_fail(errbuf, errlen, -ENOMEM, "out of memory opening store %s", path);
    pthread_mutex_init(&s->write_lock, NULL);
    pthread_mutex_init(&s->health_lock, NULL);
    if (pthread_rwlock_init(&s->lock, NULL) != 0) {
        dd_free(s);
        return dd_fail(errbuf, errlen, -ENOMEM, "out of memory opening store %s", path);
    }
    if (opts)
        s->opts = *opts;
    else
        dd_store_options_init(&s->opts);
    atomic_store(&s->retention_ms, s->opts.retention_ms);
    atomic_store(&s->full_res_ms, s->opts.full_resolution_ms);
    atomic_store(&s->step_ms, s->opts.downsample_step_ms);
    s->path = dd_strdup(path);
    s->cf_names = dd_calloc(STORE_MAX_CFS, sizeof(*s->cf_names));
    s->handles = dd_calloc(STORE_MAX_CFS, sizeof(*s->handles));
    if (!s->path || !s->cf_names || !s->handles) {
        r = dd_fail(errbuf, errlen, -ENOMEM, "out of memory opening store %s", path);
        goto out_free;
    }

    r = mkdir_parents(path);
    if (r < 0) {
        r = dir_error(path, r, errbuf, errlen);
        goto out_free;
    }
    if (faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) != 0) {
        r = dir_error(path, -errno, errbuf, errlen);
        goto out_free;
    }

    existing = dir_has_file(path, "CURRENT");
    if (existing) {
        r = check_current(path, errbuf, errlen);
        if (r < 0)
            goto out_free;
    } else {
        size_t manifests = 0;
        if (dir_sum(path, "MANIFEST-", "", NULL, &manifests) == 0 && manifests > 0) {
            /* RocksDB would start an empty store and delete the data. */
            r = dd_fail(errbuf, errlen, -EUCLEAN,
                        "store directory %s is corrupt: it has a MANIFEST but no CURRENT file; "
                        "restore it from a backup, or move the directory away so dedupd starts an "
                        "empty store",
                        path);
            goto out_free;
        }
    }

    r = setup_options(s, !existing);
    if (r < 0) {
        r = dd_fail(errbuf, errlen, r, "out of memory opening store %s", path);
        goto out_free;
    }
    if (existing) {
        r = list_existing(s, errbuf, errlen);
        if (r < 0)
            goto out_free;
    } else {
        for (int c = 0; c < CF_N_ && r == 0; c++)
            r = add_cf_name(s, cf_names[c]);
        if (r < 0) {
            r = dd_fail(errbuf, errlen, r, "out of memory opening store %s", path);
            goto out_free;
        }
    }

    r = db_open(s, false, rocks, sizeof(rocks));
    if (r < 0) {
        r = open_error(path, r, rocks, errbuf, errlen);
        goto out_free;
    }
    /* Refuse a newer schema before creating anything in it (a new store
     * has all families already, and gets its version written here). */
    r = check_schema(s, errbuf, errlen);
    if (r < 0)
        goto out_free;
    r = create_missing_cfs(s, rocks, sizeof(rocks));
    if (r < 0) {
        r = open_error(path, r, rocks, errbuf, errlen);
        goto out_free;
    }
    /* Later opens must not create a store over a damaged directory. */
    rocksdb_options_set_create_if_missing(s->dbopts, 0);
    rocksdb_options_set_create_missing_column_families(s->dbopts, 0);
    *ret = s;
    return 0;

out_free:
    dd_store_free(s);
    return r;
}

struct dd_store *dd_store_free(struct dd_store *s)
{
    if (!s)
        return NULL;
    if (s->handles)
        db_close(s);
    for (size_t i = 0; i < s->ncf; i++)
        dd_free(s->cf_names[i]);
    dd_free(s->cf_names);
    dd_free(s->handles);
    if (s->dbopts)
        rocksdb_options_destroy(s->dbopts);
    if (s->wo)
        rocksdb_writeoptions_destroy(s->wo);
    if (s->wo_sync)
        rocksdb_writeoptions_destroy(s->wo_sync);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->health_lock);
    dd_free(s->path);
    dd_free(s);
    return NULL;
}

const char *dd_store_path(const struct dd_store *s)
{
    return s->path;
}

/* --- Writing ---------------------------------------------------------------- */

/*
 * After a failed write RocksDB keeps returning that error (its background
 * error) until the database is reopened, and the C API has no Resume().
 * Close and reopen read-write; when that fails (the disk is still full and
 * recovery must flush the memtables) reopen read-only so reads go on.
 */
static void recover(struct dd_store *s)
{
    char rocks[512];

    pthread_rwlock_wrlock(&s->lock);
    db_close(s);
    if (db_open(s, false, rocks, sizeof(rocks)) < 0) {
        dd_log_debug("store %s: reopen for writing failed: %s", s->path, rocks);
        if (db_open(s, true, rocks, sizeof(rocks)) < 0)
            dd_log_debug("store %s: reopen for reading failed: %s", s->path, rocks);
    }
    pthread_rwlock_unlock(&s->lock);
    s->last_recover_ms = now_monotonic_ms();
    atomic_fetch_add(&s->reopens, 1);
}

/* One write; msg (512 bytes) gets RocksDB's text on failure. */
static int write_once(struct dd_store *s, rocksdb_writebatch_t *wb, bool sync, char *msg)
{
    dd_store_write_fn fn = dd_store_test_write ? dd_store_test_write : rocksdb_write;
    char *err = NULL;
    int r;

    pthread_rwlock_rdlock(&s->lock);
    if (!s->db || s->read_only) {
        r = -EROFS;
        snprintf(msg, 512, "the store is open read-only after a failed recovery");
    } else {
        fn(s->db, sync ? s->wo_sync : s->wo, wb, &err);
        r = dd_rocks_status(err, msg, 512);
        if (r == -EUCLEAN)
            note_damage(s, msg);
    }
    pthread_rwlock_unlock(&s->lock);
    return r;
}

/* Is the file system below the reserve? msg (512 bytes) says by how much.
 * A statvfs that fails does not stop writes. Library code does not log: the
 * state shows in dd_store_health, and the daemon logs its changes. */
static bool below_reserve(struct dd_store *s, char *msg)
{
    struct statvfs fs;
    uint64_t avail;
    bool low;

    if (!s->opts.min_free_bytes || statvfs(s->path, &fs) != 0)
        return false;
    avail = (uint64_t)fs.f_bavail * (uint64_t)fs.f_frsize;
    low = avail < s->opts.min_free_bytes;
    if (low != s->low_space)
        dd_log_debug("store %s: %llu KiB free, %s the %llu MiB reserve", s->path,
                     (unsigned long long)(avail >> 10), low ? "below" : "above",
                     (unsigned long long)(s->opts.min_free_bytes >> 20));
    if (low)
        snprintf(msg, 512, "%llu KiB free on the store's file system, below the %llu MiB reserve",
                 (unsigned long long)(avail >> 10),
                 (unsigned long long)(s->opts.min_free_bytes >> 20));
    s->low_space = low;
    return low;
}

/*
 * After corruption RocksDB stops every write with its background error, and
 * a plain reopen does not help: the next compaction reads the damaged file
 * again (measured: every commit failed, each reopen flushed one more L0 file
 * that was never compacted). So reopen once with automatic compaction off;
 * flushes still work and new samples land in new files.
 */
static void recover_damaged(struct dd_store *s)
{
    s->damage_reopened = true;
    rocksdb_options_set_disable_auto_compactions(s->dbopts, 1);
    recover(s);
    pthread_mutex_lock(&s->health_lock);
    s->compaction_off = s->db && !s->read_only;
    pthread_mutex_unlock(&s->health_lock);
}

static int store_write_locked(struct dd_store *s, rocksdb_writebatch_t *wb, bool sync)
{
    char msg[512] = "";
    int r;

    if (below_reserve(s, msg)) {
        note_write(s, -ENOSPC, msg);
        return -ENOSPC;
    }
    r = write_once(s, wb, sync, msg);

    if (r == -EUCLEAN) {
        /* Damage does not pass with time: one reopen without compaction,
         * then fail at once. */
        if (!s->damage_reopened) {
            recover_damaged(s);
            r = write_once(s, wb, sync, msg);
        }
    } else if (r < 0 && (s->write_failed || s->read_only || !s->db) &&
               now_monotonic_ms() - s->last_recover_ms >= s->opts.recover_interval_ms) {
        recover(s);
        r = write_once(s, wb, sync, msg);
    }
    s->write_failed = r < 0;
    note_write(s, r, msg);
    return r;
}

/* Writes are serialised: the failure bookkeeping and the reserve's state
 * above have more than one writer (sampler, retention, model trainer). */
static int store_write(struct dd_store *s, rocksdb_writebatch_t *wb, bool sync)
{
    pthread_mutex_lock(&s->write_lock);
    int r = store_write_locked(s, wb, sync);
    pthread_mutex_unlock(&s->write_lock);
    return r;
}

int dd_store_batch_begin(struct dd_store *s, struct dd_store_batch **ret)
{
    struct dd_store_batch *b = dd_calloc(1, sizeof(*b));

    if (!b)
        return -ENOMEM;
    b->wb = rocksdb_writebatch_create();
    if (!b->wb) {
        dd_free(b);
        return -ENOMEM;
    }
    b->s = s;
    *ret = b;
    return 0;
}

struct dd_store_batch *dd_store_batch_free(struct dd_store_batch *b)
{
    if (!b)
        return NULL;
    rocksdb_writebatch_destroy(b->wb);
    dd_free(b);
    return NULL;
}

int dd_store_batch_put_sample(struct dd_store_batch *b, const char *series, uint64_t ts_ms,
                              const void *value, size_t len)
{
    unsigned char key[KEY_MAX];
    int n = name_prefix(key, series);

    if (n < 0 || (!value && len)) {
        atomic_fetch_add(&b->s->samples_dropped, 1);
        return -EINVAL;
    }
    if (len > DD_STORE_VALUE_MAX) {
        atomic_fetch_add(&b->s->samples_dropped, 1);
        return -E2BIG;
    }
    put_be64(key + n, ts_ms);
    if (wb_put(b->s, b->wb, CF_SAMPLES, key, (size_t)n + 8, value ? value : "", len) < 0) {
        atomic_fetch_add(&b->s->samples_dropped, 1);
        return -EROFS;
    }
    b->samples++;
    return 0;
}

int dd_store_batch_put_observation(struct dd_store_batch *b, uint64_t ts_ms, const char *id,
                                   const void *value, size_t len)
{
    unsigned char key[8 + DD_STORE_OBS_ID_MAX];
    size_t n = id ? strlen(id) : 0;

    if (n == 0 || n > DD_STORE_OBS_ID_MAX || (!value && len))
        return -EINVAL;
    if (len > DD_STORE_VALUE_MAX)
        return -E2BIG;
    put_be64(key, ts_ms);
    memcpy(key + 8, id, n);
    return wb_put(b->s, b->wb, CF_OBS, key, 8 + n, value ? value : "", len);
}

int dd_store_batch_commit(struct dd_store_batch *b, bool sync)
{
    struct dd_store *s = b->s;
    uint64_t n = b->samples;
    int r = 0;

    if (rocksdb_writebatch_count(b->wb) > 0)
        r = store_write(s, b->wb, sync);
    if (r < 0) {
        atomic_fetch_add(&s->samples_dropped, n);
        atomic_fetch_add(&s->commits_failed, 1);
    } else {
        atomic_fetch_add(&s->samples_written, n);
    }
    dd_store_batch_free(b);
    return r;
}

/* --- Series ---------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the series name k[1..1+k[0]) to names. */
static int add_name(const unsigned char *k, char ***names, size_t *n, size_t *cap)
{
    char *name = dd_malloc((size_t)k[0] + 1);

    if (!name || DD_ARRAY_RESERVE(*names, *cap, *n + 1) < 0) {
        dd_free(name);
        return -ENOMEM;
    }
    memcpy(name, k + 1, k[0]);
    name[k[0]] = '\0';
    (*names)[(*n)++] = name;
    return 0;
}

/*
 * Keys start with the name's length, so the series under a prefix of L
 * bytes lie in one range per length n >= L: [n][prefix] up to its
 * successor. One seek per length plus one per matching series; the
 * series of other prefixes are never read.
 */
static int list_series_locked(struct dd_store *s, const char *prefix, char ***ret, size_t *ret_n)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_SAMPLES]);
    unsigned char next[KEY_MAX], lo[KEY_MAX];
    size_t plen_prefix = strlen(prefix), n = 0, cap = 0;
    char **names = NULL, *err = NULL;
    int r = 0;

    if (plen_prefix > DD_STORE_SERIES_MAX)
        goto done;
    for (size_t len = plen_prefix ? plen_prefix : 1; len <= DD_STORE_SERIES_MAX && r == 0; len++) {
        lo[0] = (unsigned char)len;
        memcpy(lo + 1, prefix, plen_prefix);
        rocksdb_iter_seek(it, (const char *)lo, 1 + plen_prefix);
        while (rocksdb_iter_valid(it)) {
            size_t klen, plen;
            const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
            if (klen < 1 + 1 + 8 || klen != 1u + k[0] + 8u) {
                r = -EUCLEAN;
                break;
            }
            if (k[0] != len || memcmp(k + 1, prefix, plen_prefix) != 0)
                break; /* past this length's range */
            r = add_name(k, &names, &n, &cap);
            if (r < 0)
                break;
            /* one seek per series: jump past its keys */
            plen = 1u + k[0];
            memcpy(next, k, plen);
            plen = prefix_successor(next, plen);
            if (plen == 0)
                break;
            rocksdb_iter_seek(it, (const char *)next, plen);
        }
    }
    if (r == 0) {
        rocksdb_iter_get_error(it, &err);
        r = rocks_check(s, err);
    }
done:
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            dd_free(names[i]);
        dd_free(names);
        return r;
    }
    /* keys order series by length first; callers want names in order */
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    *ret = names;
    *ret_n = n;
    return 0;
}

int dd_store_list_series(struct dd_store *s, const char *prefix, char ***ret_names, size_t *ret_n)
{
    int r;
    if (!s || !prefix || !ret_names || !ret_n)
        return -EINVAL;
    pthread_rwlock_rdlock(&s->lock);
    r = s->db ? list_series_locked(s, prefix, ret_names, ret_n) : -EIO;
    pthread_rwlock_unlock(&s->lock);
    return r;
}

struct prefix_point {
    dd_store_series_cb cb;
    void *userdata;
    const char *series;
};

static int prefix_point(void *userdata, uint64_t ts_ms, const void *value, size_t len)
{
    struct prefix_point *pp = userdata;

    return pp->cb(pp->userdata, pp->series, ts_ms, value, len);
}

int dd_store_query_prefix(struct dd_store *s, const struct dd_store_prefix_query *q,
                          dd_store_series_cb cb, void *userdata, bool *ret_truncated)
{
    struct prefix_point pp = {.cb = cb, .userdata = userdata};
    char **names = NULL;
    size_t n = 0, i;
    bool truncated = false;
    int r;

    if (!q || !q->prefix || !cb || q->from_ms > q->to_ms)
        return -EINVAL;
    r = dd_store_list_series(s, q->prefix, &names, &n);
    if (r < 0)
        return r;
    /* One query per series, each under the read lock on its own: a scan of
     * every node's history does not hold off a recovery for its whole run. */
    for (i = 0; i < n && r >= 0; i++) {
        struct dd_store_query sq = {.series = names[i],
                                    .from_ms = q->from_ms,
                                    .to_ms = q->to_ms,
                                    .limit = q->limit,
                                    .newest_first = true};
        bool t = false;
        pp.series = names[i];
        r = dd_store_query(s, &sq, prefix_point, &pp, &t);
        truncated = truncated || t;
    }
    for (i = 0; i < n; i++)
        dd_free(names[i]);
    dd_free(names);
    if (r < 0)
        return r;
    if (ret_truncated)
        *ret_truncated = truncated;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* --- Retention ---------------------------------------------------------------- */

/* Thins one series (key prefix p, plen bytes) over the buckets in
 * [from, until), both multiples of step: keeps the first point of each
 * bucket, one range tombstone for the rest. it is moved. */
static void thin_series(struct dd_store *s, rocksdb_iterator_t *it, rocksdb_writebatch_t *wb,
                        const unsigned char *p, size_t plen, uint64_t from, uint64_t until,
                        uint64_t step, int *count)
{
    unsigned char key[KEY_MAX], hi[KEY_MAX];

    memcpy(key, p, plen);
    memcpy(hi, p, plen);
    put_be64(key + plen, from);
    rocksdb_iter_seek(it, (const char *)key, plen + 8);
    while (rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        uint64_t ts, end;
        if (klen != plen + 8 || memcmp(k, p, plen) != 0)
            break;
        ts = get_be64(k + plen);
        if (ts >= until)
            break;
        end = ts - ts % step + step; /* <= until: both are multiples of step */
        rocksdb_iter_next(it);
        if (rocksdb_iter_valid(it)) {
            k = (const unsigned char *)rocksdb_iter_key(it, &klen);
            if (klen == plen + 8 && memcmp(k, p, plen) == 0 && get_be64(k + plen) < end) {
                put_be64(key + plen, ts + 1);
                put_be64(hi + plen, end);
                rocksdb_writebatch_delete_range_cf(wb, s->cf[CF_SAMPLES], (const char *)key,
                                                   plen + 8, (const char *)hi, plen + 8);
                (*count)++;
            }
        }
        put_be64(key + plen, end);
        rocksdb_iter_seek(it, (const char *)key, plen + 8);
    }
}

static int retain_samples(struct dd_store *s, rocksdb_writebatch_t *wb, uint64_t cutoff,
                          uint64_t thin_from, uint64_t thin_until, uint64_t step, int *count)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    unsigned char next[KEY_MAX], lo[KEY_MAX], hi[KEY_MAX];
    char *err = NULL;
    int r;

    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_SAMPLES]);
    rocksdb_iter_seek_to_first(it);
    /* One seek per series: read its oldest key, then jump past the series. */
    while (rocksdb_iter_valid(it)) {
        size_t klen, plen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen < 1 + 1 + 8 || klen != 1u + k[0] + 8u) {
            rocksdb_iter_destroy(it);
            rocksdb_readoptions_destroy(ro);
            return -EUCLEAN;
        }
        plen = 1u + k[0];
        uint64_t oldest = get_be64(k + plen);
        memcpy(next, k, plen);
        if (oldest < cutoff) {
            memcpy(lo, k, plen);
            memcpy(hi, k, plen);
            put_be64(lo + plen, 0);
            put_be64(hi + plen, cutoff);
            rocksdb_writebatch_delete_range_cf(wb, s->cf[CF_SAMPLES], (const char *)lo, plen + 8,
                                               (const char *)hi, plen + 8);
            (*count)++;
        }
        if (step) {
            uint64_t from = DD_MAX(DD_MAX(oldest, cutoff), thin_from);
            from -= from % step;
            if (from < thin_until)
                thin_series(s, it, wb, next, plen, from, thin_until, step, count);
        }
        plen = prefix_successor(next, plen);
        if (plen == 0)
            break;
        rocksdb_iter_seek(it, (const char *)next, plen);
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    r = rocks_check(s, err);
    return r;
}

static int retain_observations(struct dd_store *s, rocksdb_writebatch_t *wb, uint64_t cutoff,
                               int *count)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    unsigned char lo[8], hi[8];
    char *err = NULL;

    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_OBS]);
    rocksdb_iter_seek_to_first(it);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen >= 8 && get_be64(k) < cutoff) {
            put_be64(lo, 0);
            put_be64(hi, cutoff);
            rocksdb_writebatch_delete_range_cf(wb, s->cf[CF_OBS], (const char *)lo, 8,
                                               (const char *)hi, 8);
            (*count)++;
        }
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rocks_check(s, err);
}

static int get_copy(struct dd_store *s, rocksdb_column_family_handle_t *cf, const void *key,
                    size_t klen, size_t max, void **ret_value, size_t *ret_len);

/* Reads meta "downsampled_to" once (absent: 0, nothing thinned yet). */
static int load_downsampled(struct dd_store *s)
{
    void *v = NULL;
    size_t len = 0;
    uint64_t to = 0;
    int r;

    if (s->downsampled_loaded)
        return 0;
    r = get_copy(s, s->cf[CF_META], downsampled_key, sizeof(downsampled_key) - 1, 32, &v, &len);
    if (r == -ENOENT)
        r = 0;
    else if (r == 0 && dd_parse_u64_n(v, len, &to) < 0)
        r = -EUCLEAN;
    dd_free(v);
    if (r == 0) {
        s->downsampled_to = to;
        s->downsampled_loaded = true;
    }
    return r;
}

int dd_store_retain(struct dd_store *s, uint64_t now_ms)
{
    rocksdb_writebatch_t *wb;
    uint64_t cutoff = 0, thin_until = 0;
    uint64_t retention = atomic_load(&s->retention_ms);
    uint64_t full_res = atomic_load(&s->full_res_ms), step = atomic_load(&s->step_ms);
    char text[24];
    int count = 0, r;

    if (retention && now_ms > retention)
        cutoff = now_ms - retention;
    if (full_res && step && now_ms > full_res)
        thin_until = (now_ms - full_res) - (now_ms - full_res) % step;
    else
        step = 0;
    if (cutoff == 0 && step == 0)
        return 0;
    wb = rocksdb_writebatch_create();
    pthread_rwlock_rdlock(&s->lock);
    r = s->db ? 0 : -EIO;
    if (r == 0 && step)
        r = load_downsampled(s);
    if (r == 0)
        r = retain_samples(s, wb, cutoff, s->downsampled_to, thin_until, step, &count);
    if (r == 0 && cutoff)
        r = retain_observations(s, wb, cutoff, &count);
    pthread_rwlock_unlock(&s->lock);
    if (r == 0 && step && thin_until > s->downsampled_to) {
        int n = snprintf(text, sizeof(text), "%llu", (unsigned long long)thin_until);
        r = wb_put(s, wb, CF_META, downsampled_key, sizeof(downsampled_key) - 1, text, (size_t)n);
    }
    /* Not synced: a crash before the next sync only means the next call
     * writes the same tombstones again. */
    if (r == 0 && rocksdb_writebatch_count(wb) > 0)
        r = store_write(s, wb, false);
    rocksdb_writebatch_destroy(wb);
    if (r == 0) {
        atomic_fetch_add(&s->tombstones, (uint64_t)count);
        if (step && thin_until > s->downsampled_to)
            s->downsampled_to = thin_until;
    }
    return r < 0 ? r : count;
}

void dd_store_set_downsampling(struct dd_store *s, uint64_t full_resolution_ms, uint64_t step_ms)
{
    atomic_store(&s->full_res_ms, full_resolution_ms);
    atomic_store(&s->step_ms, step_ms);
}

int dd_store_compact(struct dd_store *s)
{
    char *err = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    int r = -EIO;

    rocksdb_flushoptions_set_wait(fo, 1);
    pthread_rwlock_rdlock(&s->lock);
    if (s->db) {
        rocksdb_flush_cf(s->db, fo, s->cf[CF_SAMPLES], &err);
        r = rocks_check(s, err);
        if (r == 0)
            rocksdb_compact_range_cf(s->db, s->cf[CF_SAMPLES], NULL, 0, NULL, 0);
    }
    pthread_rwlock_unlock(&s->lock);
    rocksdb_flushoptions_destroy(fo);
    return r;
}

void dd_store_set_retention(struct dd_store *s, uint64_t retention_ms)
{
    atomic_store(&s->retention_ms, retention_ms);
}

/* --- Reading -------------------------------------------------------------------- */

static size_t cap_limit(size_t limit)
{
    return limit == 0 || limit > DD_STORE_QUERY_MAX_POINTS ? DD_STORE_QUERY_MAX_POINTS : limit;
}

/* Runs q under the read lock (the caller holds it). */
static int query_locked(struct dd_store *s, const struct dd_store_query *q, dd_store_sample_cb cb,
                        void *userdata, bool *ret_truncated)
{
    unsigned char lo[KEY_MAX], hi[KEY_MAX], seek[KEY_MAX];
    size_t limit = cap_limit(q->limit), hilen;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    char *err = NULL;
    bool truncated = false;
    int n, count = 0, r = 0;
    size_t plen;

    n = name_prefix(lo, q->series);
    if (n < 0 || q->from_ms > q->to_ms || (q->newest_first && q->step_ms))
        return -EINVAL;
    plen = (size_t)n;
    memcpy(hi, lo, plen);
    memcpy(seek, lo, plen);
    put_be64(lo + plen, q->from_ms);
    if (q->to_ms == UINT64_MAX) {
        hilen = prefix_successor(hi, plen);
    } else {
        put_be64(hi + plen, q->to_ms + 1);
        hilen = plen + 8;
    }

    ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, plen + 8);
    if (hilen > 0) /* 0: a name of 0xff bytes, no key follows its range */
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hilen);
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_SAMPLES]);
    if (q->newest_first) {
        put_be64(seek + plen, q->to_ms); /* the last key <= to */
        rocksdb_iter_seek_for_prev(it, (const char *)seek, plen + 8);
    } else {
        rocksdb_iter_seek(it, (const char *)lo, plen + 8);
    }
    while (rocksdb_iter_valid(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        const char *v;
        uint64_t ts;

        if (klen != plen + 8 || memcmp(k, lo, plen) != 0) {
            r = -EUCLEAN;
            break;
        }
        if ((size_t)count == limit) {
            truncated = true;
            break;
        }
        ts = get_be64(k + plen);
        v = rocksdb_iter_value(it, &vlen);
        count++;
        r = cb(userdata, ts, v, vlen);
        if (r != 0)
            break;
        if (q->newest_first) {
            rocksdb_iter_prev(it);
        } else if (q->step_ms == 0) {
            rocksdb_iter_next(it);
        } else {
            /* Jump to the start of the next bucket. */
            uint64_t bucket = (ts - q->from_ms) / q->step_ms, next;
            if (__builtin_mul_overflow(bucket + 1, q->step_ms, &next) ||
                __builtin_add_overflow(next, q->from_ms, &next) || next > q->to_ms)
                break;
            put_be64(seek + plen, next);
            rocksdb_iter_seek(it, (const char *)seek, plen + 8);
        }
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err) {
        int e = rocks_check(s, err);
        if (r >= 0)
            r = e;
    }
    if (r < 0)
        return r;
    if (ret_truncated)
        *ret_truncated = truncated;
    return count;
}

int dd_store_query(struct dd_store *s, const struct dd_store_query *q, dd_store_sample_cb cb,
                   void *userdata, bool *ret_truncated)
{
    int r;

    if (!q || !cb)
        return -EINVAL;
    pthread_rwlock_rdlock(&s->lock);
    r = s->db ? query_locked(s, q, cb, userdata, ret_truncated) : -EIO;
    pthread_rwlock_unlock(&s->lock);
    return r;
}

struct points {
    struct dd_store_point *p;
    size_t n, cap;
};

static void *copy_value(const void *v, size_t len)
{
    char *c = dd_malloc(len + 1);

    if (!c)
        return NULL;
    if (len)
        memcpy(c, v, len);
    c[len] = '\0';
    return c;
}

static int collect(void *userdata, uint64_t ts_ms, const void *value, size_t len)
{
    struct points *pts = userdata;
    void *c;

    if (DD_ARRAY_RESERVE(pts->p, pts->cap, pts->n + 1) < 0)
        return -ENOMEM;
    c = copy_value(value, len);
    if (!c)
        return -ENOMEM;
    pts->p[pts->n++] = (struct dd_store_point){.ts_ms = ts_ms, .value = c, .len = len};
    return 0;
}

int dd_store_query_array(struct dd_store *s, const struct dd_store_query *q,
                         struct dd_store_point **ret_points, size_t *ret_n, bool *ret_truncated)
{
    struct points pts = {0};
    int r = dd_store_query(s, q, collect, &pts, ret_truncated);

    if (r < 0) {
        dd_store_points_free(pts.p, pts.n);
        return r;
    }
    *ret_points = pts.p;
    *ret_n = pts.n;
    return r;
}

void dd_store_points_free(struct dd_store_point *points, size_t n)
{
    if (!points)
        return;
    for (size_t i = 0; i < n; i++)
        dd_free(points[i].value);
    dd_free(points);
}

/* rocksdb_get_cf into a dd_malloc'd copy. */
static int get_copy(struct dd_store *s, rocksdb_column_family_handle_t *cf, const void *key,
                    size_t klen, size_t max, void **ret_value, size_t *ret_len)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL, *v;
    size_t len = 0;
    void *c;
    int r;

    v = rocksdb_get_cf(s->db, ro, cf, key, klen, &len, &err);
    rocksdb_readoptions_destroy(ro);
    r = rocks_check(s, err);
    if (r < 0)
        return r;
    if (!v)
        return -ENOENT;
    if (len > max) {
        rocksdb_free(v);
        return -E2BIG;
    }
    c = copy_value(v, len);
    rocksdb_free(v);
    if (!c)
        return -ENOMEM;
    *ret_value = c;
    *ret_len = len;
    return 0;
}

int dd_store_get_sample(struct dd_store *s, const char *series, uint64_t ts_ms, void **ret_value,
                        size_t *ret_len)
{
    unsigned char key[KEY_MAX];
    int n = name_prefix(key, series), r;

    if (n < 0)
        return -EINVAL;
    put_be64(key + n, ts_ms);
    pthread_rwlock_rdlock(&s->lock);
    r = s->db ? get_copy(s, s->cf[CF_SAMPLES], key, (size_t)n + 8, DD_STORE_VALUE_MAX, ret_value,
                         ret_len)
              : -EIO;
    pthread_rwlock_unlock(&s->lock);
    return r;
}

static int query_obs_locked(struct dd_store *s, uint64_t from_ms, uint64_t to_ms, size_t limit,
                            dd_store_obs_cb cb, void *userdata, bool *ret_truncated)
{
    unsigned char lo[8], hi[8];
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    char *err = NULL;
    bool truncated = false;
    int count = 0, r = 0;

    put_be64(lo, from_ms);
    rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, 8);
    if (to_ms != UINT64_MAX) {
        put_be64(hi, to_ms + 1);
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 8);
    }
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_OBS]);
    for (rocksdb_iter_seek(it, (const char *)lo, 8); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen <= 8) {
            r = -EUCLEAN;
            break;
        }
        if ((size_t)count == limit) {
            truncated = true;
            break;
        }
        count++;
        r = cb(userdata, get_be64(k), (const char *)k + 8, klen - 8, v, vlen);
        if (r != 0)
            break;
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err) {
        int e = rocks_check(s, err);
        if (r >= 0)
            r = e;
    }
    if (r < 0)
        return r;
    if (ret_truncated)
        *ret_truncated = truncated;
    return count;
}

int dd_store_query_observations(struct dd_store *s, uint64_t from_ms, uint64_t to_ms, size_t limit,
                                dd_store_obs_cb cb, void *userdata, bool *ret_truncated)
{
    int r;

    if (!cb || from_ms > to_ms)
        return -EINVAL;
    pthread_rwlock_rdlock(&s->lock);
    r = s->db ? query_obs_locked(s, from_ms, to_ms, cap_limit(limit), cb, userdata, ret_truncated)
              : -EIO;
    pthread_rwlock_unlock(&s->lock);
    return r;
}

/* --- Models ------------------------------------------------------------------- */

int dd_store_put_model(struct dd_store *s, const char *name, uint64_t version, const void *data,
                       size_t len)
{
    unsigned char key[KEY_MAX];
    rocksdb_writebatch_t *wb;
    int n = name_prefix(key, name), r;

    if (n < 0 || version == 0 || (!data && len))
        return -EINVAL;
    if (len > DD_STORE_MODEL_MAX)
        return -E2BIG;
    put_be64(key + n, version);
    wb = rocksdb_writebatch_create();
    r = wb_put(s, wb, CF_MODELS, key, (size_t)n + 8, data ? data : "", len);
    if (r == 0)
        r = store_write(s, wb, true);
    rocksdb_writebatch_destroy(wb);
    return r;
}

int dd_store_delete_models_before(struct dd_store *s, const char *name, uint64_t version)
{
    unsigned char lo[KEY_MAX], hi[KEY_MAX];
    rocksdb_writebatch_t *wb;
    int n = name_prefix(lo, name), r;

    if (n < 0)
        return -EINVAL;
    if (version <= 1)
        return 0;
    memcpy(hi, lo, (size_t)n);
    put_be64(lo + n, 1);
    put_be64(hi + n, version);
    wb = rocksdb_writebatch_create();
    r = wb_delete_range(s, wb, CF_MODELS, lo, (size_t)n + 8, hi, (size_t)n + 8);
    if (r == 0)
        r = store_write(s, wb, true);
    rocksdb_writebatch_destroy(wb);
    return r;
}

static int latest_model_version(struct dd_store *s, const unsigned char *prefix, size_t plen,
                                uint64_t *ret_version)
{
    unsigned char lo[KEY_MAX], hi[KEY_MAX];
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    char *err = NULL;
    size_t hilen;
    int r = -ENOENT, e;

    memcpy(lo, prefix, plen);
    memcpy(hi, prefix, plen);
    hilen = prefix_successor(hi, plen);
    rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, plen);
    if (hilen > 0)
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hilen);
    it = rocksdb_create_iterator_cf(s->db, ro, s->cf[CF_MODELS]);
    rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)rocksdb_iter_key(it, &klen);
        if (klen == plen + 8) {
            *ret_version = get_be64(k + plen);
            r = 0;
        } else {
            r = -EUCLEAN;
        }
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    e = rocks_check(s, err);
    return e < 0 ? e : r;
}

int dd_store_get_model(struct dd_store *s, const char *name, uint64_t version, void **ret_data,
                       size_t *ret_len, uint64_t *ret_version)
{
    unsigned char key[KEY_MAX];
    int n = name_prefix(key, name), r = 0;

    if (n < 0)
        return -EINVAL;
    pthread_rwlock_rdlock(&s->lock);
    if (!s->db)
        r = -EIO;
    if (r == 0 && version == 0)
        r = latest_model_version(s, key, (size_t)n, &version);
    if (r == 0) {
        put_be64(key + n, version);
        r = get_copy(s, s->cf[CF_MODELS], key, (size_t)n + 8, DD_STORE_MODEL_MAX, ret_data,
                     ret_len);
    }
    pthread_rwlock_unlock(&s->lock);
    if (r == 0 && ret_version)
        *ret_version = version;
    return r;
}

/* --- Stats ------------------------------------------------------------------- */

int dd_store_get_stats(struct dd_store *s, struct dd_store_stats *ret)
{
    struct dd_store_stats st = {0};
    int r = 0;

    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; s->db && i < s->ncf; i++) {
        char *v = rocksdb_property_value_cf(s->db, s->handles[i], "rocksdb.total-sst-files-size");
        uint64_t bytes;
        if (!v)
            continue;
        if (dd_parse_u64(v, &bytes) == 0)
            st.sst_bytes += bytes;
        rocksdb_free(v);
    }
    st.read_only = s->read_only || !s->db;
    pthread_rwlock_unlock(&s->lock);
    r = dir_sum(s->path, "", ".log", &st.wal_bytes, NULL);
    if (r < 0)
        return r;
    st.disk_bytes = st.sst_bytes + st.wal_bytes;
    st.samples_written = atomic_load(&s->samples_written);
    st.samples_dropped = atomic_load(&s->samples_dropped);
    st.commits_failed = atomic_load(&s->commits_failed);
    st.reopens = atomic_load(&s->reopens);
    st.corruptions = atomic_load(&s->corruptions);
    st.tombstones = atomic_load(&s->tombstones);
    *ret = st;
    return 0;
}

/* --- Health ------------------------------------------------------------------ */

const char *dd_store_state_name(enum dd_store_state state)
{
    switch (state) {
    case DD_STORE_OK:
        return "ok";
    case DD_STORE_DEGRADED:
        return "degraded";
    case DD_STORE_DAMAGED:
        return "damaged";
    }
    return "unknown";
}

static void damaged_advice(const struct dd_store *s, bool compaction_off, char *buf, size_t len)
{
    snprintf(buf, len,
             "store %s is damaged: RocksDB found corruption (detail names the file). %s "
             "History in the damaged block cannot be read, so model training fails. To repair: "
             "stop dedupd; copy %s somewhere safe; then run RocksDB's repair on it (ldb "
             "--db=%s repair, or dd_store_repair), which keeps the files it can read and "
             "moves the damaged ones to %s/lost/ (their samples are lost), or move %s away so "
             "dedupd starts an empty store "
             "(all its history and trained models are lost; the model retrains as new history "
             "accumulates). Then start dedupd.",
             s->path,
             compaction_off ? "New samples are still written, with compaction off: disk use "
                              "grows and retention frees no space until the repair."
                            : "Samples are dropped until the repair.",
             s->path, s->path, s->path, s->path);
}

static void degraded_advice(const struct dd_store *s, int error, bool read_only, char *buf,
                            size_t len)
{
    if (error == -ENOSPC)
        snprintf(buf, len,
                 "free space on the file system holding %s (dedupd keeps %llu MiB free there); "
                 "samples are dropped until then and writing resumes by itself",
                 s->path, (unsigned long long)(s->opts.min_free_bytes >> 20));
    else if (read_only)
        snprintf(buf, len,
                 "store %s could only be reopened read-only after a failed write; check its "
                 "file system (space, permissions, dmesg for I/O errors); dedupd retries and "
                 "resumes writing by itself, or restart it once the cause is fixed",
                 s->path);
    else
        snprintf(buf, len,
                 "writes to store %s fail; check its file system (space, quota, dmesg for I/O "
                 "errors); dedupd retries every %llu s and resumes by itself",
                 s->path, (unsigned long long)(s->opts.recover_interval_ms / 1000));
}

int dd_store_health(struct dd_store *s, struct dd_store_health *ret)
{
    struct dd_store_health h = {.path = s->path};
    bool read_only;

    pthread_rwlock_rdlock(&s->lock);
    read_only = s->read_only || !s->db;
    pthread_rwlock_unlock(&s->lock);
    h.corruptions = atomic_load(&s->corruptions);

    pthread_mutex_lock(&s->health_lock);
    h.compaction_off = s->compaction_off;
    if (s->damaged) {
        h.state = DD_STORE_DAMAGED;
        h.error = -EUCLEAN;
        h.since_ms = s->damaged_at_ms;
        snprintf(h.detail, sizeof(h.detail), "%s", s->damage_msg);
    } else if (s->fail_error < 0 || read_only) {
        h.state = DD_STORE_DEGRADED;
        h.error = s->fail_error < 0 ? s->fail_error : -EROFS;
        h.since_ms = s->fail_since_ms;
        snprintf(h.detail, sizeof(h.detail), "%s",
                 s->fail_error < 0 ? s->fail_msg : "the store is open read-only");
    }
    pthread_mutex_unlock(&s->health_lock);

    if (h.state == DD_STORE_DAMAGED)
        damaged_advice(s, h.compaction_off && !read_only, h.advice, sizeof(h.advice));
    else if (h.state == DD_STORE_DEGRADED)
        degraded_advice(s, h.error, read_only, h.advice, sizeof(h.advice));
    *ret = h;
    return 0;
}

/* --- Repair ------------------------------------------------------------------ */

int dd_store_repair(const char *path, char *errbuf, size_t errlen)
{
    char cur[PATH_MAX], rocks[512], *err = NULL;
    rocksdb_options_t *o;
    struct stat st;
    int n, r;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!path || !*path)
        return dd_fail(errbuf, errlen, -EINVAL, "no store directory given");
    if (stat(path, &st) != 0)
        return dd_fail(errbuf, errlen, -errno, "cannot repair store %s: %s", path, strerror(errno));
    n = snprintf(cur, sizeof(cur), "%s/CURRENT", path);
    if (n < 0 || (size_t)n >= sizeof(cur))
        return dd_fail(errbuf, errlen, -ENAMETOOLONG, "store directory name too long: %.64s...",
                       path);
    /* RepairDB writes a new CURRENT by rename, which a directory in its place
     * blocks; an empty one holds nothing. */
    if (lstat(cur, &st) == 0 && S_ISDIR(st.st_mode) && rmdir(cur) != 0)
        return dd_fail(errbuf, errlen, -EISDIR,
                       "cannot repair store %s: %s is a directory that is not empty (%s); move it "
                       "away and run the repair again",
                       path, cur, strerror(errno));
    o = rocksdb_options_create();
    if (!o)
        return dd_fail(errbuf, errlen, -ENOMEM, "out of memory repairing store %s", path);
    rocksdb_options_set_create_if_missing(o, 0);
    rocksdb_repair_db(o, path, &err);
    rocksdb_options_destroy(o);
    r = dd_rocks_status(err, rocks, sizeof(rocks));
    if (r == -EBUSY)
        return dd_fail(errbuf, errlen, r,
                       "cannot repair store %s: it is open (is dedupd running?); stop dedupd first "
                       "(RocksDB: %s)",
                       path, rocks);
    if (r < 0)
        return dd_fail(errbuf, errlen, r, "repair of store %s failed (RocksDB: %s)", path, rocks);
    return 0;
}
