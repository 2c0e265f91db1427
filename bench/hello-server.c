/*
 * dedupd-hello-server: bench/extender.sh's baseline, a trivial libmicrohttpd
 * server with dedupd's threading model (dedupd/http/http.c:
 * MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
 * MHD_ALLOW_SUSPEND_RESUME and a pool of THREADS threads, 4 as the
 * daemon's default). Every request, GET or POST, gets
 * {"hello":"world"} (application/json) once its body has been read and
 * dropped, so the same wrk script posts the same body to both servers.
 *
 *   dedupd-hello-server PORT [THREADS]
 *
 * Listens on 127.0.0.1:PORT until SIGINT or SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

static const char hello[] = "{\"hello\":\"world\"}";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    static int first;
    struct MHD_Response *r;
    enum MHD_Result ret;
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (!*state) { /* the headers: answer once the body is in */
        *state = &first;
        return MHD_YES;
    }
    if (*upload_size) { /* a body chunk: dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    r = MHD_create_response_from_buffer(sizeof(hello) - 1, (void *)(uintptr_t)hello,
                                        MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* A decimal number 0..max; -1 otherwise. */
static int parse_uint(const char *s, unsigned long max, unsigned *ret)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -1;
    *ret = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    unsigned threads = 4;
    struct MHD_Daemon *d;
    unsigned port;

    if (argc < 2 || argc > 3 || parse_uint(argv[1], 65535, &port) < 0 || port == 0 ||
        (argc == 3 && (parse_uint(argv[2], 256, &threads) < 0 || threads == 0))) {
        fprintf(stderr, "usage: dedupd-hello-server PORT [THREADS]\n");
        return 2;
    }
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME,
                         (uint16_t)port, NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                         threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads,
                         MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "dedupd-hello-server: cannot listen on 127.0.0.1:%u\n", port);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
