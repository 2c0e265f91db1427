/*
 * Token files (token.h has the rules). The read is bounded twice: the file
 * must be a regular file (checked on the open descriptor, so a file swapped
 * for a FIFO after a stat cannot hang us), and at most DD_TOKEN_MAX_BYTES + 1
 * bytes are read, the extra byte only to tell "exactly the cap" from "over".
 * The token bytes live in a stack buffer that is wiped before returning.
 */
#include "dedupd/http/token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

static const char *kind_of(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "something else";
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int dd_token_parse(const void *data, size_t len, char **ret_token, char *errbuf, size_t errlen)
{
    const unsigned char *p = data;
    const void *nul;
    char *token;

    if (len > DD_TOKEN_MAX_BYTES) {
        snprintf(errbuf, errlen, "longer than %u bytes: not a token", DD_TOKEN_MAX_BYTES);
        return DD_E_TOOBIG;
    }
    if (len == 0) {
        snprintf(errbuf, errlen, "is empty");
        return DD_E_PARSE;
    }
    nul = memchr(p, '\0', len);
    if (nul) {
        size_t at = (size_t)((const unsigned char *)nul - p);
        if (at == 0)
            snprintf(errbuf, errlen, "starts with a NUL byte (binary or zeroed file?)");
        else
            snprintf(errbuf, errlen, "contains a NUL byte at offset %zu", at);
        return DD_E_PARSE;
    }
    while (len > 0 && is_space(p[len - 1]))
        len--;
    if (len == 0) {
        snprintf(errbuf, errlen, "holds only whitespace");
        return DD_E_PARSE;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e) {
            snprintf(errbuf, errlen,
                     "byte 0x%02x at offset %zu is not visible ASCII (a token goes in an HTTP "
                     "header: no spaces, control or non-ASCII bytes)",
                     p[i], i);
            return DD_E_PARSE;
        }
    }
    if (len < DD_TOKEN_MIN_CHARS) {
        snprintf(errbuf, errlen, "the token is %zu characters; at least %u are needed", len,
                 DD_TOKEN_MIN_CHARS);
        return DD_E_PARSE;
    }
    token = dd_malloc(len + 1);
    if (!token) {
        snprintf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(token, p, len);
    token[len] = '\0';
    *ret_token = token;
    return 0;
}

/* Reads at most cap bytes of fd into buf; the count, or -errno. */
static ssize_t read_bounded(int fd, unsigned char *buf, size_t cap)
{
    size_t done = 0;

    while (done < cap) {
        ssize_t n = read(fd, buf + done, cap - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int dd_token_read(const char *path, char **ret_token, char *errbuf, size_t errlen)
{
    unsigned char buf[DD_TOKEN_MAX_BYTES + 1];
    char why[256];
    struct stat st;
    ssize_t n;
    int fd, r;

    /* O_NONBLOCK: opening a FIFO with no writer returns at once (it would
     * block until one came); it is refused by the fstat below */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        r = -errno;
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror(-r));
        close(fd);
        return r;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(errbuf, errlen, "token file %s: is %s, not a regular file", path,
                 kind_of(st.st_mode));
        close(fd);
        return DD_E_BADTYPE;
    }
    n = read_bounded(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0) {
        snprintf(errbuf, errlen, "token file %s: %s", path, strerror((int)-n));
        return (int)n;
    }
    r = dd_token_parse(buf, (size_t)n, ret_token, why, sizeof(why));
    explicit_bzero(buf, sizeof(buf));
    if (r < 0)
        snprintf(errbuf, errlen, "token file %s: %s", path, why);
    return r;
}
