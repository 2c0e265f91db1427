/*
 * Replays fuzz inputs without a fuzzer (systemd's src/fuzz/fuzz-main.c, SQLite's
 * test/fuzzcheck.c): every argument is a file, or a directory whose regular
 * files are all run in byte order of their names (subdirectories and symlinks
 * in it are skipped). Each input is copied into a buffer of exactly its size,
 * so the sanitizers see reads past its end.
 *
 * Exits 0 when every input ran, 1 when an argument is missing or unreadable or
 * a directory holds no inputs, 2 on bad usage. A violated invariant aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Inputs larger than this are refused: no corpus entry should come close. */
#define MAX_INPUT_BYTES (64u << 20)

static const char *prog = "fuzz-replay";

/* Reads the whole of fd into a new buffer of exactly the file's size. */
static int read_all(int fd, const char *path, uint8_t **ret_data, size_t *ret_size)
{
    struct stat st;
    uint8_t *data;
    size_t size, done = 0;

    if (fstat(fd, &st) < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s: not a regular file\n", prog, path);
        return -1;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > MAX_INPUT_BYTES) {
        fprintf(stderr, "%s: %s: larger than %u bytes\n", prog, path, MAX_INPUT_BYTES);
        return -1;
    }
    size = (size_t)st.st_size;
    /* never a NULL pointer, not even for an empty input (as libFuzzer) */
    data = malloc(size > 0 ? size : 1);
    if (!data) {
        fprintf(stderr, "%s: %s: out of memory\n", prog, path);
        return -1;
    }
    while (done < size) {
        ssize_t n = read(fd, data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
            free(data);
            return -1;
        }
        if (n == 0) {
            fprintf(stderr, "%s: %s: file shrank while being read\n", prog, path);
            free(data);
            return -1;
        }
        done += (size_t)n;
    }
    *ret_data = data;
    *ret_size = size;
    return 0;
}

/* Runs one open input; display is the name used in messages. */
static int run_fd(int fd, const char *display)
{
    uint8_t *data = NULL;
    size_t size = 0;

    if (read_all(fd, display, &data, &size) < 0)
        return -1;
    printf("%s: %s (%zu bytes)\n", prog, display, size);
    /* the last line before a crash names the input that caused it */
    fflush(stdout);
    (void)LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Runs every regular file in the directory open as dfd; counts them in *ran. */
static int run_dir(int dfd, const char *path, unsigned long *ran)
{
    DIR *d = fdopendir(dfd);
    char **names = NULL;
    size_t n = 0, cap = 0;
    unsigned long before = *ran;
    int r = 0;

    if (!d) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        close(dfd);
        return -1;
    }
    for (;;) {
        struct dirent *de;

        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno != 0) {
                fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
                r = -1;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **p = realloc(names, ncap * sizeof(*names));
            if (!p) {
                fprintf(stderr, "%s: %s: out of memory\n", prog, path);
                r = -1;
                break;
            }
            names = p;
            cap = ncap;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            fprintf(stderr, "%s: %s: out of memory\n", prog, path);
            r = -1;
            break;
        }
        n++;
    }
    if (r == 0 && n > 1)
        qsort(names, n, sizeof(*names), cmp_names);

    for (size_t i = 0; r == 0 && i < n; i++) {
        struct stat st;
        char display[4096];
        int fd;

        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            fprintf(stderr, "%s: %s/%s: %s\n", prog, path, names[i], strerror(errno));
            r = -1;
            break;
        }
        if (!S_ISREG(st.st_mode))
            continue; /* subdirectories, symlinks, sockets: not inputs */
        snprintf(display, sizeof(display), "%s/%s", path, names[i]);
        fd = openat(dirfd(d), names[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, display, strerror(errno));
            r = -1;
            break;
        }
        r = run_fd(fd, display);
        close(fd);
        if (r == 0)
            (*ran)++;
    }
    if (r == 0 && *ran == before) {
        fprintf(stderr, "%s: %s: no inputs (no regular files in it)\n", prog, path);
        r = -1;
    }
    free_names(names, n);
    closedir(d);
    return r;
}

static int run_path(const char *path, unsigned long *ran)
{
    struct stat st;
    /* O_NONBLOCK: a FIFO is refused below instead of waited on */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    int r;

    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        return run_dir(fd, path, ran); /* takes fd */
    r = run_fd(fd, path);
    close(fd);
    if (r == 0)
        (*ran)++;
    return r;
}

int main(int argc, char **argv)
{
    unsigned long ran = 0;
    int failed = 0;

    if (argc > 0 && argv[0] && argv[0][0] != '\0') {
        const char *slash = strrchr(argv[0], '/');
        prog = slash ? slash + 1 : argv[0];
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIRECTORY...\n", prog);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (run_path(argv[i], &ran) < 0)
            failed = 1;
    }
    printf("%s: ran %lu input%s%s\n", prog, ran, ran == 1 ? "" : "s",
           failed ? " (some arguments failed)" : "");
    return failed;
}
