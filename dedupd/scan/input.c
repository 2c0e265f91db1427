/*
 * Turning paths into a list of files to read: stat the path, walk a directory
 * (name order, symlinks and special files skipped and counted, depth capped),
 * and ask libblkid what a block device holds. Nothing is read here beyond
 * directory entries and libblkid's superblock probes.
 *
 * Failures of a path are recorded on its input with the path and the system's
 * message; the caller decides whether they are fatal (--keep-going).
 */
#define _GNU_SOURCE
#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"

const char *dd_input_type_name(enum dd_input_type type)
{
    switch (type) {
    case DD_INPUT_FILE:
        return "file";
    case DD_INPUT_DIRECTORY:
        return "directory";
    case DD_INPUT_BLOCK_DEVICE:
        return "block_device";
    case DD_INPUT_UNKNOWN:
        break;
    }
    return "unknown";
}

int dd_scan_input_add_error(struct dd_scan_input *in, const char *path, const char *message)
{
    char *p, *m;

    if (in->n_errors >= DD_SCAN_MAX_REPORTED_ERRORS) {
        in->errors_dropped++;
        return 0;
    }
    if (DD_ARRAY_RESERVE(in->errors, in->errors_cap, in->n_errors + 1) < 0)
        return -ENOMEM;
    p = dd_strdup(path);
    m = dd_strdup(message);
    if (!p || !m) {
        dd_free(p);
        dd_free(m);
        return -ENOMEM;
    }
    in->errors[in->n_errors].path = p;
    in->errors[in->n_errors].message = m;
    in->n_errors++;
    return 0;
}

static void blkid_info_release(struct dd_blkid_info *b)
{
    dd_free(b->type);
    dd_free(b->usage);
    dd_free(b->label);
    dd_free(b->uuid);
    dd_free(b->signature);
    memset(b, 0, sizeof(*b));
}

void dd_scan_input_release(struct dd_scan_input *in)
{
    for (size_t i = 0; i < in->n_errors; i++) {
        dd_free(in->errors[i].path);
        dd_free(in->errors[i].message);
    }
    dd_free(in->errors);
    dd_free(in->path);
    blkid_info_release(&in->blkid);
    memset(in, 0, sizeof(*in));
}

static int add_file(struct dd_scan *scan, const char *path, uint64_t size, bool follow,
                    bool blockdev)
{
    struct scan_file *f;

    if (scan->n_files >= DD_SCAN_MAX_FILES)
        return DD_E_TOOBIG;
    if (DD_ARRAY_RESERVE(scan->files, scan->cap_files, scan->n_files + 1) < 0)
        return -ENOMEM;
    f = &scan->files[scan->n_files];
    memset(f, 0, sizeof(*f));
    f->path = dd_strdup(path);
    if (!f->path)
        return -ENOMEM;
    f->size = size;
    f->input = scan->n_inputs - 1;
    f->follow = follow;
    f->is_blockdev = blockdev;
    f->fd = -1;
    scan->n_files++;
    scan->total_bytes += size;
    return 0;
}

/* Duplicates a blkid tag value, or leaves *dst NULL when absent. */
static int take_tag(blkid_probe pr, const char *name, char **dst)
{
    const char *v = NULL;
    if (blkid_probe_lookup_value(pr, name, &v, NULL) != 0 || !v)
        return 0;
    *dst = dd_strdup(v);
    return *dst ? 0 : -ENOMEM;
}

/*
 * Probe what the device (or image file) holds. libblkid identifies VDO
 * volumes (TYPE "vdo", magic "dmvdo001") and LVM physical volumes
 * ("LVM2_member"); we name those signatures explicitly because an operator
 * about to estimate data on them most likely picked the wrong device.
 */
static int probe_blkid(const char *path, struct dd_blkid_info *info)
{
    blkid_probe pr = blkid_new_probe_from_filename(path);
    int r = 0;

    if (!pr)
        return errno ? -errno : DD_E_LIBRARY;
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL |
                                              BLKID_SUBLKS_UUID | BLKID_SUBLKS_USAGE);
    blkid_probe_enable_partitions(pr, 1);
    info->probed = true;
    info->size = (uint64_t)blkid_probe_get_size(pr);
    /* 1 = nothing found, -2 = ambiguous: both are answers, not failures */
    if (blkid_do_safeprobe(pr) == 0) {
        r = take_tag(pr, "TYPE", &info->type);
        if (r == 0)
            r = take_tag(pr, "USAGE", &info->usage);
        if (r == 0)
            r = take_tag(pr, "LABEL", &info->label);
        if (r == 0)
            r = take_tag(pr, "UUID", &info->uuid);
        if (r == 0 && !info->type)
            r = take_tag(pr, "PTTYPE", &info->type);
    }
    if (r == 0 && info->type) {
        const char *sig = NULL;
        if (strcmp(info->type, "vdo") == 0)
            sig = "VDO";
        else if (strncmp(info->type, "LVM", 3) == 0)
            sig = "LVM";
        if (sig) {
            info->signature = dd_strdup(sig);
            if (!info->signature)
                r = -ENOMEM;
        }
    }
    blkid_free_probe(pr);
    return r;
}

/*
 * Kernel pseudo file systems: their files are made when read and stat()
 * reports a size of 0 (procfs) or a page (sysfs) whatever they hold, so a
 * scan would count nothing, or fail as a file that "shrank", and report an
 * estimate of data that is not stored anywhere. Returns the file system's
 * name, or NULL for any other.
 */
#define CONFIGFS_MAGIC_ 0x62656570 /* not in every <linux/magic.h> */
static const char *pseudo_fs_name(long f_type)
{
    static const struct {
        unsigned long magic;
        const char *name;
    } pseudo[] = {
        {PROC_SUPER_MAGIC, "proc"},       {SYSFS_MAGIC, "sysfs"},
        {DEBUGFS_MAGIC, "debugfs"},       {TRACEFS_MAGIC, "tracefs"},
        {CGROUP_SUPER_MAGIC, "cgroup"},   {CGROUP2_SUPER_MAGIC, "cgroup2"},
        {SECURITYFS_MAGIC, "securityfs"}, {BPF_FS_MAGIC, "bpf"},
        {CONFIGFS_MAGIC_, "configfs"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(pseudo); i++) {
        if ((unsigned long)f_type == pseudo[i].magic)
            return pseudo[i].name;
    }
    return NULL;
}

/* Records the error for a path on a pseudo file system; 0 when it is not on one. */
static int refuse_pseudo_fs(struct dd_scan_input *in, const char *path, const struct statfs *sfs)
{
    const char *fs = pseudo_fs_name((long)sfs->f_type);
    char msg[160];

    if (!fs)
        return 0;
    snprintf(msg, sizeof(msg),
             "on %s, a kernel pseudo file system: its files are generated when read and have "
             "no stored size; nothing to estimate",
             fs);
    if (dd_scan_input_add_error(in, path, msg) < 0)
        return -ENOMEM;
    return DD_E_BADTYPE;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int join_path(const char *dir, const char *name, char **ret)
{
    size_t ld = strlen(dir), ln = strlen(name);
    bool slash = ld > 0 && dir[ld - 1] == '/';
    char *p = dd_malloc(ld + ln + 2);

    if (!p)
        return -ENOMEM;
    memcpy(p, dir, ld);
    if (!slash)
        p[ld++] = '/';
    memcpy(p + ld, name, ln + 1);
    *ret = p;
    return 0;
}

static int walk(struct dd_scan *scan, struct dd_scan_input *in, int dirfd, const char *dirpath,
                unsigned depth);

/* Reads a directory's names, sorted, so the scan order (and with a window the
 * result) does not depend on the file system's hash order. */
static int read_names(int dirfd, char ***ret_names, size_t *ret_n)
{
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int fd2 = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    int r = 0;

    if (fd2 < 0)
        return -errno;
    d = fdopendir(fd2);
    if (!d) {
        r = -errno;
        close(fd2);
        return r;
    }
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (DD_ARRAY_RESERVE(names, cap, n + 1) < 0) {
            r = -ENOMEM;
            break;
        }
        names[n] = dd_strdup(de->d_name);
        if (!names[n]) {
            r = -ENOMEM;
            break;
        }
        n++;
        errno = 0;
    }
    if (r == 0 && errno != 0)
        r = -errno;
    closedir(d);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            dd_free(names[i]);
        dd_free(names);
        return r;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), name_cmp);
    *ret_names = names;
    *ret_n = n;
    return 0;
}

static int walk_entry(struct dd_scan *scan, struct dd_scan_input *in, int dirfd, const char *path,
                      const char *name, unsigned depth)
{
    struct stat st;
    int r;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return dd_scan_input_add_error(in, path, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        in->files++;
        in->size += (uint64_t)st.st_size;
        return add_file(scan, path, (uint64_t)st.st_size, false, false);
    }
    if (S_ISDIR(st.st_mode)) {
        int sub;
        if (depth + 1 >= DD_SCAN_MAX_DEPTH)
            return dd_scan_input_add_error(in, path, "directory tree too deep; not followed");
        sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            return dd_scan_input_add_error(in, path, strerror(errno));
        /* a pseudo file system mounted inside the tree (a chroot's /proc):
         * not data, skipped like the special files below */
        struct statfs sfs;
        if (fstatfs(sub, &sfs) == 0 && pseudo_fs_name((long)sfs.f_type)) {
            close(sub);
            in->skipped++;
            return 0;
        }
        r = walk(scan, in, sub, path, depth + 1);
        close(sub);
        return r;
    }
    /* symlinks, sockets, FIFOs, devices inside a tree are not data to estimate */
    in->skipped++;
    return 0;
}

static int walk(struct dd_scan *scan, struct dd_scan_input *in, int dirfd, const char *dirpath,
                unsigned depth)
{
    char **names = NULL;
    size_t n = 0;
    int r = read_names(dirfd, &names, &n);

    if (r < 0) {
        if (r == -ENOMEM)
            return r;
        return dd_scan_input_add_error(in, dirpath, strerror(-r));
    }
    for (size_t i = 0; i < n && r >= 0; i++) {
        char *path = NULL;
        r = join_path(dirpath, names[i], &path);
        if (r == 0)
            r = walk_entry(scan, in, dirfd, path, names[i], depth);
        dd_free(path);
    }
    for (size_t i = 0; i < n; i++)
        dd_free(names[i]);
    dd_free(names);
    return r;
}

static int blockdev_size(const char *path, uint64_t *ret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint64_t size = 0;
    int r = 0;

    if (fd < 0)
        return -errno;
    if (ioctl(fd, BLKGETSIZE64, &size) < 0)
        r = -errno;
    close(fd);
    if (r == 0)
        *ret = size;
    return r;
}

int dd_scan_input_add(struct dd_scan *scan, const char *path)
{
    struct dd_scan_input *in;
    struct stat st;
    int r;

    if (DD_ARRAY_RESERVE(scan->inputs, scan->cap_inputs, scan->n_inputs + 1) < 0)
        return -ENOMEM;
    in = &scan->inputs[scan->n_inputs];
    memset(in, 0, sizeof(*in));
    in->path = dd_strdup(path);
    if (!in->path)
        return -ENOMEM;
    scan->n_inputs++;

    if (stat(path, &st) < 0) {
        r = -errno;
        if (dd_scan_input_add_error(in, path, strerror(-r)) < 0)
            return -ENOMEM;
        return r;
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        struct statfs sfs;
        if (statfs(path, &sfs) == 0) {
            r = refuse_pseudo_fs(in, path, &sfs);
            if (r < 0) {
                in->type = S_ISREG(st.st_mode) ? DD_INPUT_FILE : DD_INPUT_DIRECTORY;
                return r;
            }
        }
    }
    if (S_ISREG(st.st_mode)) {
        in->type = DD_INPUT_FILE;
        in->files = 1;
        in->size = (uint64_t)st.st_size;
        /* an image file may hold a file system or a VDO volume: say so */
        if (st.st_size >= 64 * 1024 && probe_blkid(path, &in->blkid) < 0)
            blkid_info_release(&in->blkid);
        if (in->blkid.probed && !in->blkid.type)
            blkid_info_release(&in->blkid);
        return add_file(scan, path, (uint64_t)st.st_size, true, false);
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t size = 0;
        in->type = DD_INPUT_BLOCK_DEVICE;
        r = blockdev_size(path, &size);
        if (r < 0) {
            if (dd_scan_input_add_error(in, path, strerror(-r)) < 0)
                return -ENOMEM;
            return r;
        }
        in->size = size;
        r = probe_blkid(path, &in->blkid);
        if (r == -ENOMEM)
            return r;
        if (r < 0)
            dd_log_debug("%s: blkid probe failed: %s", path, dd_strerror(r));
        return add_file(scan, path, size, true, true);
    }
    if (S_ISDIR(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        in->type = DD_INPUT_DIRECTORY;
        if (fd < 0) {
            r = -errno;
            if (dd_scan_input_add_error(in, path, strerror(-r)) < 0)
                return -ENOMEM;
            return r;
        }
        r = walk(scan, in, fd, path, 0);
        close(fd);
        if (r < 0)
            return r;
        return in->n_errors ? DD_E_INPUT : 0;
    }
    in->type = DD_INPUT_UNKNOWN;
    if (dd_scan_input_add_error(in, path, dd_strerror(DD_E_BADTYPE)) < 0)
        return -ENOMEM;
    return DD_E_BADTYPE;
}
