/*
 * The I/O half of the node sampler: reads /proc files under a root prefix
 * and hands them to the pure parsers (parsers.c), and walks kubelet's pod
 * cgroups under <sys_root>/fs/cgroup in both driver layouts.
 *
 * Invariants: no file is read past DD_NODE_FILE_MAX bytes, every fd is
 * opened close-on-exec (and non-blocking, so a FIFO in a fake tree cannot
 * hang a read), and a scan holds at most DD_NODE_MAX_PODS pods. Pods come
 * and go while the tree is listed: one that vanishes or is garbled is
 * counted, not fatal; only failures that would hit every later read too
 * (memory, descriptors) or an unlistable directory fail the scan.
 *
 * Left to others: which devices and pods matter, the sampling period and
 * logging.
 */
#include "dedupd/node/node.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

/* ---- files ---- */

/* First buffer for a file: /proc files report size 0, and most are under a
 * page or two. */
#define READ_CHUNK 4096u

static int read_file_at(int dfd, const char *path, size_t max, char **ret_text, size_t *ret_len)
{
    _dd_cleanup_(dd_freep) char *buf = NULL;
    /* max bytes, one more to tell a longer file, and the NUL */
    size_t limit = max > SIZE_MAX - 2 ? SIZE_MAX : max + 2;
    size_t cap = 0, len = 0;
    int fd, r = 0;

    do
        fd = openat(dfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    for (;;) {
        ssize_t n;

        if (cap - len < 2) {
            size_t ncap = cap == 0 ? READ_CHUNK : cap * 2;
            char *p;

            if (ncap > limit)
                ncap = limit;
            if (ncap <= cap) {
                r = DD_E_TOOBIG;
                break;
            }
            p = dd_realloc(buf, ncap);
            if (!p) {
                r = -ENOMEM;
                break;
            }
            buf = p;
            cap = ncap;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            r = DD_E_TOOBIG;
            break;
        }
    }
    close(fd);
    if (r < 0)
        return r;
    buf[len] = '\0';
    *ret_text = DD_TAKE_PTR(buf);
    if (ret_len)
        *ret_len = len;
    return 0;
}

int dd_node_read_file(const char *path, size_t max, char **ret_text, size_t *ret_len)
{
    if (!path || !ret_text)
        return -EINVAL;
    return read_file_at(AT_FDCWD, path, max, ret_text, ret_len);
}

/* Reads <root>/<rel> into a new buffer. */
static int read_under(const char *root, const char *rel, char **ret_text, size_t *ret_len)
{
    char path[PATH_MAX];
    int n;

    if (!root)
        return -EINVAL;
    n = snprintf(path, sizeof(path), "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    return read_file_at(AT_FDCWD, path, DD_NODE_FILE_MAX, ret_text, ret_len);
}

int dd_node_read_stat(const char *proc_root, struct dd_cpu_stat *ret, struct dd_parse_error *err)
{
    _dd_cleanup_(dd_freep) char *text = NULL;
    size_t len = 0;
    int r;

    if (!ret)
        return -EINVAL;
    r = read_under(proc_root, "stat", &text, &len);
    if (r < 0)
        return r;
    return dd_node_stat_parse(text, len, ret, err);
}

int dd_node_read_loadavg(const char *proc_root, struct dd_loadavg *ret, struct dd_parse_error *err)
{
    _dd_cleanup_(dd_freep) char *text = NULL;
    size_t len = 0;
    int r;

    if (!ret)
        return -EINVAL;
    r = read_under(proc_root, "loadavg", &text, &len);
    if (r < 0)
        return r;
    return dd_node_loadavg_parse(text, len, ret, err);
}

int dd_node_read_meminfo(const char *proc_root, struct dd_meminfo *ret, struct dd_parse_error *err)
{
    _dd_cleanup_(dd_freep) char *text = NULL;
    size_t len = 0;
    int r;

    if (!ret)
        return -EINVAL;
    r = read_under(proc_root, "meminfo", &text, &len);
    if (r < 0)
        return r;
    return dd_node_meminfo_parse(text, len, ret, err);
}

int dd_node_read_diskstats(const char *proc_root, struct dd_diskstats *ret,
                           struct dd_parse_error *err)
{
    _dd_cleanup_(dd_freep) char *text = NULL;
    size_t len = 0;
    int r;

    if (!ret)
        return -EINVAL;
    r = read_under(proc_root, "diskstats", &text, &len);
    if (r < 0)
        return r;
    return dd_node_diskstats_parse(text, len, ret, err);
}

/* One pressure file: 1 parsed, 0 unavailable, or an error. */
static int read_psi_one(const char *proc_root, const char *name, struct dd_psi *ret,
                        struct dd_parse_error *err)
{
    _dd_cleanup_(dd_freep) char *text = NULL;
    struct dd_parse_error e = {0};
    char rel[32];
    size_t len = 0;
    int r;

    snprintf(rel, sizeof(rel), "pressure/%s", name);
    r = read_under(proc_root, rel, &text, &len);
    /* ENOENT: no PSI; ENOTDIR: a fake tree's file in its place; EOPNOTSUPP:
     * built in but disabled (psi=0) */
    if (r == -ENOENT || r == -ENOTDIR || r == -EOPNOTSUPP)
        return 0;
    if (r < 0)
        return r;
    r = dd_node_psi_parse(text, len, ret, err ? &e : NULL);
    if (r < 0) {
        if (err)
            (void)dd_parse_error_set(err, e.line, e.column, "%s: %s", rel, e.message);
        return r;
    }
    return 1;
}

int dd_node_read_psi(const char *proc_root, struct dd_node_psi *ret, struct dd_parse_error *err)
{
    struct dd_node_psi p;
    int r;

    if (!proc_root || !ret)
        return -EINVAL;
    memset(&p, 0, sizeof(p));
    r = read_psi_one(proc_root, "cpu", &p.cpu, err);
    if (r < 0)
        return r;
    p.cpu_available = r > 0;
    r = read_psi_one(proc_root, "io", &p.io, err);
    if (r < 0)
        return r;
    p.io_available = r > 0;
    r = read_psi_one(proc_root, "memory", &p.memory, err);
    if (r < 0)
        return r;
    p.memory_available = r > 0;
    *ret = p;
    return 0;
}

/* ---- pods ---- */

/* Where kubelet puts pod cgroups, relative to <sys_root>/fs/cgroup. */
struct pod_dir {
    const char *dir;
    const char *prefix; /* then the UID */
    const char *suffix; /* after the UID */
    enum dd_pod_qos qos;
    enum dd_cgroup_driver driver;
};

static const struct pod_dir pod_dirs[] = {
    {"kubepods.slice", "kubepods-pod", ".slice", DD_POD_GUARANTEED, DD_CGROUP_SYSTEMD},
    {"kubepods.slice/kubepods-burstable.slice", "kubepods-burstable-pod", ".slice",
     DD_POD_BURSTABLE, DD_CGROUP_SYSTEMD},
    {"kubepods.slice/kubepods-besteffort.slice", "kubepods-besteffort-pod", ".slice",
     DD_POD_BESTEFFORT, DD_CGROUP_SYSTEMD},
    {"kubepods", "pod", "", DD_POD_GUARANTEED, DD_CGROUP_CGROUPFS},
    {"kubepods/burstable", "pod", "", DD_POD_BURSTABLE, DD_CGROUP_CGROUPFS},
    {"kubepods/besteffort", "pod", "", DD_POD_BESTEFFORT, DD_CGROUP_CGROUPFS},
};

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The UID of a pod cgroup's name, with dashes; false when the name is not
 * one (a QoS directory, a container, a control file). */
static bool pod_uid(const struct pod_dir *pd, const char *name, char *uid)
{
    size_t len = strlen(name), pl = strlen(pd->prefix), sl = strlen(pd->suffix), ul;
    char sep = pd->driver == DD_CGROUP_SYSTEMD ? '_' : '-';

    if (len <= pl + sl || strncmp(name, pd->prefix, pl) != 0 ||
        strcmp(name + len - sl, pd->suffix) != 0)
        return false;
    ul = len - pl - sl;
    if (ul >= DD_NODE_POD_UID_MAX)
        return false;
    for (size_t i = 0; i < ul; i++) {
        char c = name[pl + i];
        if (!is_alnum(c) && c != sep)
            return false;
        uid[i] = c == '_' ? '-' : c;
    }
    uid[ul] = '\0';
    return true;
}

enum { POD_OK, POD_VANISHED, POD_SKIPPED };

/* What a failed open or read means: the cgroup went away, this pod is bad,
 * or (negative) nothing else would work either. */
static int classify(int r)
{
    switch (r) {
    case -ENOENT:
    case -ENODEV:
        return POD_VANISHED;
    case -ENOMEM:
    case -EMFILE:
    case -ENFILE:
        return r;
    default:
        return POD_SKIPPED;
    }
}

/* A parser's failure: out of memory fails the scan, anything else is this
 * pod's problem, said in why. */
static int unparsed(int r, const char *file, const struct dd_parse_error *e, char *why)
{
    if (r == -ENOMEM)
        return r;
    if (e->line)
        snprintf(why, DD_NODE_REASON_MAX, "%s: line %u, column %u: %s", file, e->line, e->column,
                 e->message);
    else
        snprintf(why, DD_NODE_REASON_MAX, "%s: %s", file,
                 e->message[0] ? e->message : dd_strerror(r));
    return POD_SKIPPED;
}

/* A read's failure, said in why when it skips the pod. */
static int unread(int r, const char *file, char *why)
{
    int c = classify(r);
    if (c == POD_SKIPPED)
        snprintf(why, DD_NODE_REASON_MAX, "%s: %s", file, dd_strerror(r));
    return c;
}

/* Reads one optional file of the pod: POD_OK with *present saying whether
 * it was there (text then owned by the caller), or what unread says. */
static int read_optional(int pfd, const char *file, char **text, size_t *len, bool *present,
                         char *why)
{
    int r = read_file_at(pfd, file, DD_NODE_FILE_MAX, text, len);
    *present = r == 0;
    if (r == 0 || r == -ENOENT)
        return POD_OK;
    return unread(r, file, why);
}

/* Reads one pod's files into *pod (uid, qos, driver set). Returns POD_OK,
 * POD_VANISHED, POD_SKIPPED (why says which file and what) or a negative
 * error; pod->io is owned by pod only on POD_OK. */
static int read_pod(int pfd, struct dd_pod *pod, char *why)
{
    _dd_cleanup_(dd_freep) char *text = NULL;
    struct dd_parse_error e = {0};
    size_t len = 0;
    int r;

    r = read_file_at(pfd, "cpu.stat", DD_NODE_FILE_MAX, &text, &len);
    if (r < 0)
        return unread(r, "cpu.stat", why);
    r = dd_node_cgroup_cpu_parse(text, len, &pod->cpu, &e);
    if (r < 0)
        return unparsed(r, "cpu.stat", &e, why);
    dd_free(DD_TAKE_PTR(text));

    static const char *const files[] = {"memory.current", "memory.peak", "memory.stat", "io.stat"};
    for (size_t i = 0; i < DD_ARRAY_SIZE(files); i++) {
        bool present;
        r = read_optional(pfd, files[i], &text, &len, &present, why);
        if (r != POD_OK)
            return r;
        if (!present)
            continue;
        memset(&e, 0, sizeof(e));
        switch (i) {
        case 0:
            r = dd_node_cgroup_u64_parse(text, len, &pod->memory_current, &e);
            pod->has_memory_current = r == 0;
            break;
        case 1:
            r = dd_node_cgroup_u64_parse(text, len, &pod->memory_peak, &e);
            pod->has_memory_peak = r == 0;
            break;
        case 2:
            r = dd_node_cgroup_memstat_parse(text, len, &pod->memory_stat, &e);
            pod->has_memory_stat = r == 0;
            break;
        default:
            r = dd_node_cgroup_io_parse(text, len, &pod->io, &e);
            pod->has_io = r == 0;
            break;
        }
        if (r < 0)
            return unparsed(r, files[i], &e, why);
        dd_free(DD_TAKE_PTR(text));
    }
    return POD_OK;
}

void dd_pods_release(struct dd_pods *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        dd_cgroup_io_release(&p->pods[i].io);
    dd_free(p->pods);
    dd_free(p->skips);
    memset(p, 0, sizeof(*p));
}

/* Opens a directory under dfd; -ENOENT/-ENOTDIR when it is not there. */
static int open_dir_at(int dfd, const char *path)
{
    int fd;

    do
        fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int scan_pod_dir(int cgfd, const struct pod_dir *pd, struct dd_pods *pods)
{
    DIR *d;
    int dfd, r = 0;

    dfd = open_dir_at(cgfd, pd->dir);
    if (dfd == -ENOENT || dfd == -ENOTDIR)
        return 0; /* this layout or QoS class is not in use */
    if (dfd < 0)
        return dfd;
    d = fdopendir(dfd);
    if (!d) {
        r = -errno;
        close(dfd);
        return r;
    }
    for (;;) {
        struct dirent *de;
        struct dd_pod pod;
        char why[DD_NODE_REASON_MAX] = "";
        int pfd;

        errno = 0;
        de = readdir(d);
        if (!de) {
            r = errno ? -errno : 0;
            break;
        }
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        memset(&pod, 0, sizeof(pod));
        if (!pod_uid(pd, de->d_name, pod.uid))
            continue;
        pod.qos = pd->qos;
        pod.driver = pd->driver;
        pfd = open_dir_at(dirfd(d), de->d_name);
        if (pfd == -ENOTDIR)
            continue; /* a file with a pod's name: not a cgroup */
        r = pfd < 0 ? unread(pfd, "directory", why) : read_pod(pfd, &pod, why);
        if (pfd >= 0)
            close(pfd);
        if (r < 0) {
            dd_cgroup_io_release(&pod.io);
            break;
        }
        if (r == POD_VANISHED || r == POD_SKIPPED) {
            dd_cgroup_io_release(&pod.io);
            if (r == POD_VANISHED) {
                pods->vanished++;
                r = 0;
                continue;
            }
            pods->skipped++;
            r = DD_ARRAY_RESERVE(pods->skips, pods->cap_skips, pods->n_skips + 1);
            if (r < 0)
                break;
            struct dd_pod_skip *sk = &pods->skips[pods->n_skips++];
            snprintf(sk->uid, sizeof(sk->uid), "%s", pod.uid);
            snprintf(sk->reason, sizeof(sk->reason), "%s", why);
            continue;
        }
        if (pods->n >= DD_NODE_MAX_PODS) {
            dd_cgroup_io_release(&pod.io);
            r = DD_E_TOOBIG;
            break;
        }
        r = DD_ARRAY_RESERVE(pods->pods, pods->cap, pods->n + 1);
        if (r < 0) {
            dd_cgroup_io_release(&pod.io);
            break;
        }
        pods->pods[pods->n++] = pod;
    }
    closedir(d);
    return r;
}

static int cmp_pod(const void *a, const void *b)
{
    const struct dd_pod *x = a, *y = b;
    int c = strcmp(x->uid, y->uid);

    if (c != 0)
        return c;
    if (x->driver != y->driver)
        return (x->driver > y->driver) - (x->driver < y->driver);
    return (x->qos > y->qos) - (x->qos < y->qos);
}

int dd_node_pods_scan(const char *sys_root, struct dd_pods *ret)
{
    char path[PATH_MAX];
    int n;

    if (!sys_root || !ret)
        return -EINVAL;
    n = snprintf(path, sizeof(path), "%s/fs/cgroup", sys_root);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    return dd_node_pods_scan_root(path, ret);
}

int dd_node_pods_scan_root(const char *cgroup_root, struct dd_pods *ret)
{
    struct dd_pods pods;
    int cgfd, r = 0;

    if (!cgroup_root || !ret)
        return -EINVAL;
    memset(&pods, 0, sizeof(pods));
    cgfd = open_dir_at(AT_FDCWD, cgroup_root);
    if (cgfd == -ENOENT || cgfd == -ENOTDIR) {
        *ret = pods; /* no cgroup tree: no pods */
        return 0;
    }
    if (cgfd < 0)
        return cgfd;
    for (size_t i = 0; i < DD_ARRAY_SIZE(pod_dirs) && r == 0; i++)
        r = scan_pod_dir(cgfd, &pod_dirs[i], &pods);
    close(cgfd);
    if (r < 0) {
        dd_pods_release(&pods);
        return r;
    }
    if (pods.n > 1)
        qsort(pods.pods, pods.n, sizeof(*pods.pods), cmp_pod);
    *ret = pods;
    return 0;
}

const struct dd_pod *dd_pods_find(const struct dd_pods *p, const char *uid)
{
    size_t lo = 0, hi;

    if (!p || !uid)
        return NULL;
    hi = p->n;
    /* the first of equal uids: lower bound */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(p->pods[mid].uid, uid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n && strcmp(p->pods[lo].uid, uid) == 0 ? &p->pods[lo] : NULL;
}
