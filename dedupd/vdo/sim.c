/*
 * dd_vdo_sim_run: drives the model (sim-model.c) interval by interval and
 * writes each snapshot's files (sim-format.c) into the replay directory laid
 * out in sim.h. The only file of the simulator that writes files.
 *
 * Every file is created new (O_EXCL, O_NOFOLLOW, close-on-exec) under a
 * directory fd of out_dir, which must be new or empty: a run never
 * overwrites or mixes with earlier output. The first failure stops the run;
 * what was written stays for inspection and err names the file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/vdo/sim-internal.h"
#include "dedupd/vdo/sim.h"

struct run {
    struct sim sim;
    struct sim_buf buf;
    int dfd;
    const char *out_dir;
    struct dd_parse_error *err;
};

static int io_error(struct run *r, const char *path, int code)
{
    dd_parse_error_set(r->err, 0, 0, "%s/%s: %s", r->out_dir, path, dd_strerror(code));
    return code;
}

static int make_dir(struct run *r, const char *path)
{
    if (mkdirat(r->dfd, path, 0755) < 0)
        return io_error(r, path, -errno);
    return 0;
}

/* Writes r->buf as a new file. */
static int write_buf(struct run *r, const char *path)
{
    const char *p = r->buf.p;
    size_t left = r->buf.len;
    int fd;

    if (r->buf.error)
        return io_error(r, path, r->buf.error);
    fd = openat(r->dfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return io_error(r, path, -errno);
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? -errno : -EIO;
            close(fd);
            return io_error(r, path, e);
        }
        p += n;
        left -= (size_t)n;
    }
    if (close(fd) < 0)
        return io_error(r, path, -errno);
    return 0;
}

/* path = fmt..., refusing truncation (names are short: it cannot happen). */
static int path_of(struct run *r, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int path_of(struct run *r, char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len) {
        dd_parse_error_set(r->err, 0, 0, "%s: path too long", r->out_dir);
        return -ENAMETOOLONG;
    }
    return 0;
}

typedef void (*volume_text_fn)(struct sim_buf *, const struct sim_volume *);

static int write_volume(struct run *r, const struct sim_volume *v, const char *dir)
{
    static const struct {
        const char *name;
        volume_text_fn fn;
    } files[] = {
        {"stats", sim_format_stats},
        {"status", sim_format_status},
        {"table", sim_format_table},
        {"config", sim_format_config},
    };
    char path[256];
    int e;

    for (size_t i = 0; i < DD_ARRAY_SIZE(files); i++) {
        sim_buf_reset(&r->buf);
        files[i].fn(&r->buf, v);
        e = path_of(r, path, sizeof(path), "%s/%s", dir, files[i].name);
        if (e == 0)
            e = write_buf(r, path);
        if (e < 0)
            return e;
    }
    return 0;
}

static int write_proc(struct run *r, const char *root, unsigned snapshot)
{
    const struct sim *s = &r->sim;
    char path[256];
    int e;

#define EMIT(expr, ...)                                                                            \
    do {                                                                                           \
        sim_buf_reset(&r->buf);                                                                    \
        expr;                                                                                      \
        e = path_of(r, path, sizeof(path), __VA_ARGS__);                                           \
        if (e == 0)                                                                                \
            e = write_buf(r, path);                                                                \
        if (e < 0)                                                                                 \
            return e;                                                                              \
    } while (0)

    EMIT(sim_format_proc_stat(&r->buf, s), "%s/stat", root);
    EMIT(sim_format_uptime(&r->buf, s), "%s/uptime", root);
    EMIT(sim_format_loadavg(&r->buf, s, snapshot), "%s/loadavg", root);
    EMIT(sim_format_diskstats(&r->buf, s), "%s/diskstats", root);
    e = path_of(r, path, sizeof(path), "%s/pressure", root);
    if (e == 0)
        e = make_dir(r, path);
    if (e < 0)
        return e;
    EMIT(sim_format_psi(&r->buf, &s->node.cpu_some, NULL), "%s/pressure/cpu", root);
    EMIT(sim_format_psi(&r->buf, &s->node.io_some, &s->node.io_full), "%s/pressure/io", root);
    EMIT(sim_format_psi(&r->buf, NULL, NULL), "%s/pressure/memory", root);
    for (size_t i = 0; i < s->n_vol; i++) {
        const struct sim_volume *v = &s->vol[i];
        for (unsigned t = 0; t < SIM_THREADS; t++) {
            unsigned pid = sim_thread_pid(v->instance, t);
            e = path_of(r, path, sizeof(path), "%s/%u", root, pid);
            if (e == 0)
                e = make_dir(r, path);
            if (e < 0)
                return e;
            EMIT(sim_format_thread_stat(&r->buf, v, t, pid, s->node.cpus), "%s/%u/stat", root, pid);
            EMIT(sim_format_thread_comm(&r->buf, v, t), "%s/%u/comm", root, pid);
        }
    }
#undef EMIT
    return 0;
}

/* Snapshot j (0-based) of the current state. */
static int write_snapshot(struct run *r, unsigned j)
{
    const struct sim *s = &r->sim;
    char dir[256];
    int e;

    for (size_t i = 0; i < s->n_vol; i++) {
        const char *name = s->vol[i].spec->name;
        if (s->intervals > 0) {
            e = path_of(r, dir, sizeof(dir), "%s/%04u", name, j + 1);
            if (e == 0)
                e = make_dir(r, dir);
        } else {
            e = path_of(r, dir, sizeof(dir), "%s", name);
        }
        if (e == 0)
            e = write_volume(r, &s->vol[i], dir);
        if (e < 0)
            return e;
    }
    if (s->intervals > 0) {
        e = path_of(r, dir, sizeof(dir), "proc/%04u", j + 1);
        if (e == 0)
            e = make_dir(r, dir);
    } else {
        e = path_of(r, dir, sizeof(dir), "proc");
    }
    if (e < 0)
        return e;
    return write_proc(r, dir, j);
}

/* Creates out_dir, or accepts it when it is an empty directory; opens it. */
static int open_out_dir(const char *out_dir, struct dd_parse_error *err)
{
    DIR *d;
    struct dirent *de;
    int fd, dup_fd, e = 0;

    if (mkdir(out_dir, 0755) < 0 && errno != EEXIST) {
        e = -errno;
        dd_parse_error_set(err, 0, 0, "%s: %s", out_dir, strerror(-e));
        return e;
    }
    fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        e = errno == ENOTDIR ? -EEXIST : -errno;
        dd_parse_error_set(err, 0, 0, "%s: %s", out_dir,
                           e == -EEXIST ? "exists and is not a directory" : strerror(-e));
        return e;
    }
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0 || !(d = fdopendir(dup_fd))) {
        e = -errno;
        if (dup_fd >= 0)
            close(dup_fd);
        close(fd);
        dd_parse_error_set(err, 0, 0, "%s: %s", out_dir, strerror(-e));
        return e;
    }
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno != 0) {
                e = -errno;
                dd_parse_error_set(err, 0, 0, "%s: %s", out_dir, strerror(-e));
            }
            break;
        }
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            e = -ENOTEMPTY;
            dd_parse_error_set(err, 0, 0,
                               "%s: directory not empty (the simulator writes only "
                               "into a new or empty directory)",
                               out_dir);
            break;
        }
    }
    closedir(d);
    if (e < 0) {
        close(fd);
        return e;
    }
    return fd;
}

int dd_vdo_sim_run(const struct dd_vdo_workload *w, unsigned intervals, double interval_seconds,
                   uint64_t seed, const char *out_dir, struct dd_parse_error *err)
{
    struct run r = {.dfd = -1, .out_dir = out_dir, .err = err};
    int e;

    if (!w || w->n_volumes == 0 || w->n_volumes > DD_VDO_SIM_MAX_VOLUMES) {
        dd_parse_error_set(err, 0, 0, "vdo-sim: no volumes in the workload");
        return -EINVAL;
    }
    if (intervals > DD_VDO_SIM_MAX_INTERVALS) {
        dd_parse_error_set(err, 0, 0, "vdo-sim: intervals must be at most %u (got %u)",
                           DD_VDO_SIM_MAX_INTERVALS, intervals);
        return -EINVAL;
    }
    if (!(interval_seconds >= 0.01 && interval_seconds <= 86400.0)) {
        dd_parse_error_set(err, 0, 0,
                           "vdo-sim: interval seconds must be between 0.01 and 86400 (got %g)",
                           interval_seconds);
        return -EINVAL;
    }
    if (!out_dir || !*out_dir) {
        dd_parse_error_set(err, 0, 0, "vdo-sim: no output directory");
        return -EINVAL;
    }
    e = sim_init(&r.sim, w, intervals, interval_seconds, seed, err);
    if (e < 0) {
        if (e == -ENOMEM)
            dd_parse_error_set(err, 0, 0, "vdo-sim: %s", dd_strerror(e));
        return e;
    }
    r.dfd = open_out_dir(out_dir, err);
    if (r.dfd < 0) {
        e = r.dfd;
        goto out;
    }

    if (intervals > 0) {
        sim_buf_reset(&r.buf);
        char num[32];
        double back = 0;
        /* the shortest text that reads back as the same double */
        snprintf(num, sizeof(num), "%.15g", interval_seconds);
        if (dd_parse_double(num, &back) != 0 || back != interval_seconds)
            snprintf(num, sizeof(num), "%.17g", interval_seconds);
        sim_buf_printf(&r.buf, "{\"interval_seconds\": %s}\n", num);
        e = write_buf(&r, "replay.json");
        if (e < 0)
            goto out;
    }
    for (size_t i = 0; i < r.sim.n_vol; i++) {
        e = make_dir(&r, r.sim.vol[i].spec->name);
        if (e < 0)
            goto out;
    }
    e = make_dir(&r, "proc");
    if (e < 0)
        goto out;
    e = write_snapshot(&r, 0);
    for (unsigned k = 0; e == 0 && k < intervals; k++) {
        sim_step(&r.sim);
        e = write_snapshot(&r, k + 1);
    }
out:
    if (r.dfd >= 0)
        close(r.dfd);
    sim_buf_free(&r.buf);
    sim_release(&r.sim);
    return e < 0 ? e : 0;
}
