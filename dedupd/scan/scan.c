/*
 * The estimator's engine: reads the inputs in 1 MiB chunks on N threads and
 * merges the per-block records in stream order.
 *
 * Workers claim chunks in order under one lock (a claim is cheap: once per
 * MiB), read and hash them without the lock, then put the records in a ring
 * slot. Whoever finishes the chunk at the head of the ring merges every
 * consecutive finished slot into the estimator. The merge is in stream order
 * whatever the thread count, so results do not depend on scheduling, and the
 * ring (threads x DD_SCAN_INFLIGHT_PER_THREAD chunks) bounds what is held.
 *
 * A file is opened by the claim of its first chunk and closed when its last
 * chunk is merged; its size is checked at open and again at close, so a file
 * that shrinks or grows while read is reported, not silently mis-counted.
 * Blocks of a failed file merged before the failure stay counted (the error
 * names the file and offset).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"

void dd_scan_options_init(struct dd_scan_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->mode = DD_SCAN_MODE_AUTO;
    opts->sampling_bits = -1;
}

int dd_scan_window_from_index(double gb, bool sparse, uint64_t *ret_blocks)
{
    bool ok =
        gb == 0.25 || gb == 0.5 || gb == 0.75 || (gb >= 1.0 && gb <= 1024.0 && floor(gb) == gb);
    if (!ok)
        return DD_E_RANGE;
    *ret_blocks = (uint64_t)(gb * (double)DD_SCAN_WINDOW_BLOCKS_PER_GB) *
                  (sparse ? DD_SCAN_SPARSE_FACTOR : 1u);
    return 0;
}

int dd_scan_new(const struct dd_scan_options *opts, struct dd_scan **ret_scan)
{
    struct dd_scan *scan = dd_calloc(1, sizeof(*scan));

    if (!scan)
        return -ENOMEM;
    if (opts)
        scan->opts = *opts;
    else
        dd_scan_options_init(&scan->opts);
    if (scan->opts.threads > DD_SCAN_MAX_THREADS)
        scan->opts.threads = DD_SCAN_MAX_THREADS;
    pthread_mutex_init(&scan->lock, NULL);
    pthread_cond_init(&scan->cond, NULL);
    atomic_init(&scan->bytes_done, 0);
    atomic_init(&scan->cancel, false);
    *ret_scan = scan;
    return 0;
}

struct dd_scan *dd_scan_free(struct dd_scan *scan)
{
    if (!scan)
        return NULL;
    for (size_t i = 0; i < scan->n_inputs; i++)
        dd_scan_input_release(&scan->inputs[i]);
    dd_free(scan->inputs);
    for (size_t i = 0; i < scan->n_files; i++) {
        if (scan->files[i].fd >= 0)
            close(scan->files[i].fd);
        dd_free(scan->files[i].path);
    }
    dd_free(scan->files);
    dd_free(scan->ring);
    if (scan->ran)
        dd_estimator_release(&scan->est);
    pthread_mutex_destroy(&scan->lock);
    pthread_cond_destroy(&scan->cond);
    dd_free(scan);
    return NULL;
}

int dd_scan_add_path(struct dd_scan *scan, const char *path)
{
    if (scan->ran)
        return DD_E_USAGE;
    return dd_scan_input_add(scan, path);
}

void dd_scan_cancel(struct dd_scan *scan)
{
    atomic_store(&scan->cancel, true);
    pthread_mutex_lock(&scan->lock);
    pthread_cond_broadcast(&scan->cond);
    pthread_mutex_unlock(&scan->lock);
}

void dd_scan_progress(const struct dd_scan *scan, uint64_t *ret_done, uint64_t *ret_total)
{
    *ret_done = atomic_load(&scan->bytes_done);
    *ret_total = scan->total_bytes;
}

const struct dd_scan_result *dd_scan_get_result(const struct dd_scan *scan)
{
    return &scan->result;
}

size_t dd_scan_n_inputs(const struct dd_scan *scan)
{
    return scan->n_inputs;
}

const struct dd_scan_input *dd_scan_get_input(const struct dd_scan *scan, size_t i)
{
    return i < scan->n_inputs ? &scan->inputs[i] : NULL;
}

/* ---- running ---- */

static void slot_error(struct scan_slot *s, int err, const char *fmt, ...) _dd_printf_(3, 4);
static void slot_error(struct scan_slot *s, int err, const char *fmt, ...)
{
    va_list ap;
    s->err = err;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof(s->message), fmt, ap);
    va_end(ap);
}

/* Opens a file at its first claim; checks it is still what the walk saw. */
static int open_file(struct dd_scan *scan, struct scan_file *f, struct scan_slot *s)
{
    int flags = O_RDONLY | O_CLOEXEC | (f->follow ? 0 : O_NOFOLLOW);
    struct stat st;
    int fd = -1;

    if (scan->opts.direct) {
        fd = open(f->path, flags | O_DIRECT);
        if (fd < 0 && errno == EINVAL)
            dd_log_debug("%s: O_DIRECT refused, reading through the page cache", f->path);
    }
    if (fd < 0)
        fd = open(f->path, flags);
    if (fd < 0) {
        slot_error(s, -errno, "%s", strerror(errno));
        return s->err;
    }
    if (fstat(fd, &st) < 0) {
        slot_error(s, -errno, "%s", strerror(errno));
        close(fd);
        return s->err;
    }
    if (!f->is_blockdev && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size)) {
        slot_error(s, DD_E_CHANGED, "changed between listing and reading (size %llu, now %llu)",
                   (unsigned long long)f->size, (unsigned long long)st.st_size);
        close(fd);
        return s->err;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    f->fd = fd;
    return 0;
}

/*
 * Claims the next chunk (lock held). Returns false when there is nothing left.
 * A file that cannot be opened still yields one slot carrying the error, so the
 * error is merged (and reported) in stream order.
 */
static bool claim(struct dd_scan *scan, struct scan_slot *s, uint64_t *ret_len)
{
    for (;;) {
        struct scan_file *f;

        if (scan->claim_file >= scan->n_files)
            return false;
        f = &scan->files[scan->claim_file];
        if (f->failed || f->size == 0 || scan->claim_offset >= f->size) {
            scan->claim_file++;
            scan->claim_offset = 0;
            continue;
        }
        memset(s, 0, offsetof(struct scan_slot, recs));
        s->file = scan->claim_file;
        s->offset = scan->claim_offset;
        if (f->fd < 0 && open_file(scan, f, s) < 0) {
            f->failed = true;
            scan->claim_file++;
            scan->claim_offset = 0;
            *ret_len = 0;
            return true;
        }
        *ret_len = DD_MIN((uint64_t)DD_SCAN_CHUNK_BYTES, f->size - scan->claim_offset);
        scan->claim_offset += *ret_len;
        f->inflight++;
        if (scan->claim_offset >= f->size)
            f->claimed_all = true;
        return true;
    }
}

/* Reads len bytes at offset; zero-pads the tail to a whole block. */
static void read_chunk(struct dd_scan *scan, const struct scan_file *f, struct scan_slot *s,
                       uint8_t *buf, uint64_t len)
{
    uint64_t got = 0;
    size_t want = (size_t)((len + DD_BLOCK_SIZE - 1) / DD_BLOCK_SIZE * DD_BLOCK_SIZE);

    while (got < len) {
        ssize_t n = pread(f->fd, buf + got, want - got, (off_t)(s->offset + got));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            slot_error(s, -errno, "read at offset %llu: %s", (unsigned long long)(s->offset + got),
                       strerror(errno));
            return;
        }
        if (n == 0) {
            slot_error(s, DD_E_CHANGED, "shrank while being read (ended at %llu of %llu bytes)",
                       (unsigned long long)(s->offset + got), (unsigned long long)f->size);
            return;
        }
        got += (uint64_t)n;
    }
    /* a file that grew shows more bytes past the expected end; ignore them here,
     * the size check at close reports it */
    if (want > len)
        memset(buf + len, 0, want - len);
    s->nblocks = want / DD_BLOCK_SIZE;
    atomic_fetch_add(&scan->bytes_done, len);
}

static void record_error(struct dd_scan *scan, struct scan_file *f, int err, const char *message)
{
    struct dd_scan_input *in = &scan->inputs[f->input];

    f->failed = true;
    if (f->reported)
        return;
    f->reported = true;
    if (dd_scan_input_add_error(in, f->path, message) < 0 && scan->first_error == 0)
        scan->first_error = -ENOMEM;
    if (!scan->opts.keep_going && scan->first_error == 0) {
        scan->first_error = err;
        atomic_store(&scan->cancel, true);
    }
}

static void close_file(struct dd_scan *scan, struct scan_file *f)
{
    struct stat st;

    if (!f->failed && !f->is_blockdev && fstat(f->fd, &st) == 0 &&
        (uint64_t)st.st_size != f->size) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s while being read (size %llu, now %llu)",
                 (uint64_t)st.st_size > f->size ? "grew" : "shrank", (unsigned long long)f->size,
                 (unsigned long long)st.st_size);
        record_error(scan, f, DD_E_CHANGED, msg);
    }
    close(f->fd);
    f->fd = -1;
}

/* Merges every consecutive finished slot at the head of the ring (lock held). */
static void merge_ready(struct dd_scan *scan)
{
    for (;;) {
        struct scan_slot *s = &scan->ring[scan->commit_seq % scan->ring_size];
        struct scan_file *f;

        if (!s->done || scan->commit_seq == scan->claim_seq)
            return;
        f = &scan->files[s->file];
        if (s->err) {
            record_error(scan, f, s->err, s->message);
        } else if (!f->failed && !atomic_load(&scan->cancel)) {
            scan->inputs[f->input].bytes_read +=
                DD_MIN(s->nblocks * DD_BLOCK_SIZE, f->size - s->offset);
            int r = dd_estimator_add(&scan->est, s->recs, s->nblocks);
            if (r < 0 && scan->first_error == 0) {
                scan->first_error = r;
                atomic_store(&scan->cancel, true);
            }
        }
        if (f->inflight > 0)
            f->inflight--;
        /* never close while another worker may still pread this fd */
        if (f->fd >= 0 && f->inflight == 0 && (f->claimed_all || f->failed))
            close_file(scan, f);
        s->done = false;
        scan->commit_seq++;
        pthread_cond_broadcast(&scan->cond);
    }
}

struct worker {
    struct dd_scan *scan;
    struct dd_hasher *hasher;
    uint8_t *buf;
    pthread_t thread;
    int err;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct dd_scan *scan = w->scan;
    const bool compress = !scan->opts.no_compress;

    pthread_mutex_lock(&scan->lock);
    for (;;) {
        struct scan_slot *s;
        uint64_t len = 0;
        unsigned k, c;

        while (!atomic_load(&scan->cancel) && scan->claim_seq >= scan->commit_seq + scan->ring_size)
            pthread_cond_wait(&scan->cond, &scan->lock);
        if (atomic_load(&scan->cancel))
            break;
        s = &scan->ring[scan->claim_seq % scan->ring_size];
        if (!claim(scan, s, &len))
            break;
        scan->claim_seq++;
        k = scan->est.k;
        c = scan->est.c;
        pthread_mutex_unlock(&scan->lock);

        if (s->err == 0) {
            struct scan_file *f = &scan->files[s->file];
            read_chunk(scan, f, s, w->buf, len);
            if (s->err == 0)
                dd_hasher_run(w->hasher, w->buf, s->nblocks * DD_BLOCK_SIZE, compress, k, c,
                              s->recs);
        }

        pthread_mutex_lock(&scan->lock);
        s->done = true;
        merge_ready(scan);
    }
    pthread_cond_broadcast(&scan->cond);
    pthread_mutex_unlock(&scan->lock);
    return NULL;
}

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : (unsigned)DD_MIN(n, (long)DD_SCAN_MAX_THREADS);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* LZ4 one block in 2^c: about 1 in 256 (LZ4 costs 25-40x a hash), but never
 * fewer than ~1024 trials on small inputs. */
static unsigned compress_bits(const struct dd_scan *scan)
{
    uint64_t blocks = scan->total_bytes / DD_BLOCK_SIZE, n = scan->opts.compress_sample;
    unsigned c = 0;

    if (n == 0) {
        while (c < 8 && (blocks >> (c + 1)) >= 1024)
            c++;
        return c;
    }
    while (c < 32 && (2ull << c) <= n)
        c++;
    return c;
}

int dd_scan_run(struct dd_scan *scan)
{
    struct dd_estimator_config cfg = {0};
    struct worker *workers = NULL;
    unsigned nthreads;
    double t0;
    int r;

    if (scan->ran)
        return DD_E_USAGE;
    scan->ran = true;

    cfg.sampled =
        scan->opts.mode == DD_SCAN_MODE_SAMPLED ||
        (scan->opts.mode == DD_SCAN_MODE_AUTO && scan->total_bytes > DD_SCAN_AUTO_SAMPLED_BYTES);
    cfg.initial_k = scan->opts.sampling_bits > 0 ? (unsigned)scan->opts.sampling_bits : 0;
    cfg.compress = !scan->opts.no_compress;
    cfg.compress_bits = compress_bits(scan);
    cfg.window = scan->opts.window_blocks;
    cfg.max_memory = scan->opts.max_memory;
    cfg.expected_blocks = scan->total_bytes / DD_BLOCK_SIZE + scan->n_files;
    r = dd_estimator_init(&scan->est, &cfg);
    if (r < 0) {
        scan->ran = false;
        return r;
    }

    nthreads = scan->opts.threads ? scan->opts.threads : online_cpus();
    scan->ring_size = (size_t)nthreads * DD_SCAN_INFLIGHT_PER_THREAD;
    scan->ring = dd_calloc(scan->ring_size, sizeof(*scan->ring));
    workers = dd_calloc(nthreads, sizeof(*workers));
    if (!scan->ring || !workers) {
        r = -ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < nthreads; i++) {
        workers[i].scan = scan;
        workers[i].hasher = dd_hasher_new();
        workers[i].buf = dd_aligned_alloc(DD_BLOCK_SIZE, DD_SCAN_CHUNK_BYTES);
        if (!workers[i].hasher || !workers[i].buf) {
            r = -ENOMEM;
            goto out;
        }
    }

    t0 = now_seconds();
    /* the calling thread is worker 0 */
    for (unsigned i = 1; i < nthreads; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            nthreads = i;
            break;
        }
    }
    worker_main(&workers[0]);
    for (unsigned i = 1; i < nthreads; i++)
        pthread_join(workers[i].thread, NULL);

    /* files left open by a cancelled run */
    for (size_t i = 0; i < scan->n_files; i++) {
        if (scan->files[i].fd >= 0) {
            close(scan->files[i].fd);
            scan->files[i].fd = -1;
        }
    }

    memset(&scan->result, 0, sizeof(scan->result));
    dd_estimator_finish(&scan->est, &scan->result);
    scan->result.seconds = now_seconds() - t0;
    for (size_t i = 0; i < scan->n_inputs; i++) {
        scan->result.logical_bytes += scan->inputs[i].bytes_read;
        if (scan->inputs[i].n_errors)
            scan->result.inputs_failed++;
    }
    scan->result.bytes_per_second =
        scan->result.seconds > 0 ? (double)scan->result.logical_bytes / scan->result.seconds : 0;
    scan->result.threads = nthreads;

    r = scan->first_error;
    if (r == 0 && atomic_load(&scan->cancel))
        r = DD_E_CANCELLED;
out:
    if (workers) {
        for (unsigned i = 0; i < nthreads; i++) {
            dd_hasher_free(workers[i].hasher);
            dd_free(workers[i].buf);
        }
        dd_free(workers);
    }
    return r;
}
