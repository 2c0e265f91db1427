/*
 * The HTTP layer on a real libmicrohttpd server on an ephemeral loopback
 * port, driven by libcurl: routing with path parameters, JSON errors with
 * the right status (400 with position, 401, 404, 405 with Allow, 413, 414),
 * bearer tokens on mutating routes, the loopback-without-token rule, and the
 * metrics it exports.
 *
 * Then the red-team findings, with raw sockets where libcurl would hide
 * what is sent: 1,200 trickling connections from two loopback addresses
 * while a third still gets /healthz, the per-address limit, 401 and 413
 * answered before the body is sent (and no body byte buffered for 200
 * unauthenticated 1 MiB uploads), request parsing (encoded NUL, UTF-8,
 * Content-Length conflicts, too many query arguments, HEAD), and deferred
 * answers on a one-thread server. No wall-clock assertion: waits are poll
 * deadlines that fail the test when hit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/http/http.h"
#include "helpers.h"

static int h_echo(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    const char *q = dd_http_query(req, "q");
    (void)ctx;
    return dd_http_reply_json(resp, 200, json_pack("{s:s, s:s?}", "name", req->params[0], "q", q));
}

static int h_post(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    json_t *doc = dd_http_body_json(req, resp);
    (void)ctx;
    if (!doc)
        return 0;
    json_t *n = json_object_get(doc, "n");
    if (!json_is_integer(n)) {
        json_decref(doc);
        return dd_http_reply_error(resp, 400, "bad_request", "field 'n' must be an integer");
    }
    json_int_t v = json_integer_value(n);
    json_decref(doc);
    return dd_http_reply_json(resp, 201, json_pack("{s:I}", "twice", (json_int_t)(2 * v)));
}

static const struct dd_http_route routes[] = {
    {"GET", "/v1/echo/{name}", h_echo, NULL, false, NULL, 0},
    {"POST", "/v1/things", h_post, NULL, true, "things", 0},
};

struct reply {
    long status;
    char *body;
    size_t len;
    char allow[128];
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    r->body = realloc(r->body, r->len + size * n + 1);
    memcpy(r->body + r->len, p, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    if (size * n > 7 && strncasecmp(p, "Allow: ", 7) == 0)
        snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(size * n - 9), p + 7);
    return size * n;
}

static struct reply call(uint16_t port, const char *method, const char *path, const char *body,
                         size_t body_len, const char *token)
{
    struct reply r = {0};
    char url[4096], auth[256];
    struct curl_slist *hdr = NULL;
    CURL *c = curl_easy_init();
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    }
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (curl_easy_perform(c) != CURLE_OK)
        fail_msg("request %s %s failed", method, path);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    if (!r.body)
        r.body = strdup("");
    return r;
}

static const char *error_code(const struct reply *r, char *buf, size_t len)
{
    json_error_t e;
    json_t *doc = json_loads(r->body, 0, &e);
    if (!doc)
        fail_msg("error body is not JSON: %s", r->body);
    snprintf(buf, len, "%s",
             json_string_value(json_object_get(json_object_get(doc, "error"), "code")));
    json_decref(doc);
    return buf;
}

static void test_routes_and_errors(void **state)
{
    struct dd_http_config cfg = {.listen = "127.0.0.1:0", .token = "s3cret", .max_body = 1024};
    struct dd_http_server *srv = NULL;
    char err[256], code[64];
    (void)state;
    assert_int_equal(dd_http_start(&cfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)), 0);
    uint16_t port = dd_http_port(srv);
    assert_true(port > 0);

    struct reply r = call(port, "GET", "/v1/echo/vol-1?q=x%20y", NULL, 0, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"name\":\"vol-1\",\"q\":\"x y\"}");
    free(r.body);

    r = call(port, "GET", "/v1/nothing", NULL, 0, NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(error_code(&r, code, sizeof(code)), "not_found");
    free(r.body);

    r = call(port, "DELETE", "/v1/echo/a", NULL, 0, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    free(r.body);

    r = call(port, "POST", "/v1/things", "{\"n\": 21}", 9, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(error_code(&r, code, sizeof(code)), "unauthorized");
    free(r.body);
    r = call(port, "POST", "/v1/things", "{\"n\": 21}", 9, "wrong!");
    assert_int_equal(r.status, 401);
    free(r.body);
    r = call(port, "POST", "/v1/things", "{\"n\": 21}", 9, "s3cret");
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "{\"twice\":42}");
    free(r.body);

    r = call(port, "POST", "/v1/things", "{\"n\": 21,\n \"m\": }", 18, "s3cret");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "line 2, column"));
    free(r.body);
    r = call(port, "POST", "/v1/things", "[1,2]", 5, "s3cret");
    assert_int_equal(r.status, 400);
    free(r.body);
    r = call(port, "POST", "/v1/things", "{\"n\": \"x\"}", 10, "s3cret");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "'n' must be an integer"));
    free(r.body);

    char *big = malloc(5000);
    memset(big, ' ', 5000);
    big[0] = '{';
    big[4999] = '}';
    r = call(port, "POST", "/v1/things", big, 5000, "s3cret");
    assert_int_equal(r.status, 413);
    free(r.body);
    free(big);

    char path[3000] = "/v1/echo/";
    memset(path + 9, 'a', 2500);
    path[2509] = '\0';
    r = call(port, "GET", path, NULL, 0, NULL);
    assert_int_equal(r.status, 414);
    free(r.body);

    /* the server is still up and the metrics saw all of it */
    char *m = NULL;
    size_t mlen = 0;
    FILE *f = open_memstream(&m, &mlen);
    dd_http_metrics(srv, f);
    fclose(f);
    assert_non_null(
        strstr(m, "dedupd_http_requests_total{route=\"/v1/echo/{name}\",code=\"2xx\"} 1"));
    assert_non_null(strstr(m, "dedupd_http_requests_total{route=\"things\",code=\"4xx\"} 6"));
    assert_non_null(
        strstr(m, "dedupd_http_request_duration_seconds_bucket{route=\"things\",le=\"+Inf\"} 7"));
    assert_non_null(strstr(m, "dedupd_http_rejected_total{reason=\"body_too_large\"} 1"));
    assert_non_null(strstr(m, "dedupd_http_rejected_total{reason=\"unauthorized\"} 2"));
    free(m);
    dd_http_stop(srv);
}

static void test_listen_rules(void **state)
{
    char addr[64], err[256];
    uint16_t port;
    bool lo;
    struct dd_http_server *srv = NULL;
    (void)state;
    assert_int_equal(dd_http_parse_listen("127.0.0.1:7450", addr, sizeof(addr), &port, &lo), 0);
    assert_true(lo);
    assert_int_equal(port, 7450);
    assert_int_equal(dd_http_parse_listen("[::1]:80", addr, sizeof(addr), &port, &lo), 0);
    assert_true(lo);
    assert_string_equal(addr, "::1");
    assert_int_equal(dd_http_parse_listen("0.0.0.0:7450", addr, sizeof(addr), &port, &lo), 0);
    assert_false(lo);
    assert_int_equal(dd_http_parse_listen("localhost:7450", addr, sizeof(addr), &port, &lo),
                     DD_E_PARSE);
    assert_int_equal(dd_http_parse_listen("127.0.0.1:99999", addr, sizeof(addr), &port, &lo),
                     DD_E_PARSE);
    assert_int_equal(dd_http_parse_listen("127.0.0.1", addr, sizeof(addr), &port, &lo), DD_E_PARSE);

    struct dd_http_config open_cfg = {.listen = "0.0.0.0:0"};
    assert_int_equal(dd_http_start(&open_cfg, routes, 2, &srv, err, sizeof(err)), DD_E_USAGE);
    assert_non_null(strstr(err, "without a token"));
    struct dd_http_config bad = {.listen = "nowhere"};
    assert_int_equal(dd_http_start(&bad, routes, 2, &srv, err, sizeof(err)), DD_E_PARSE);
    assert_non_null(strstr(err, "'nowhere'"));
    struct dd_http_config tls = {
        .listen = "127.0.0.1:0", .tls_cert = "/nonexistent.pem", .tls_key = "/nonexistent.key"};
    assert_true(dd_http_start(&tls, routes, 2, &srv, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent.pem"));
}

/* ---- raw sockets ---- */

static int atoi_status(const char *p)
{
    int v = 0;
    for (int i = 0; i < 3 && p[i] >= '0' && p[i] <= '9'; i++)
        v = v * 10 + (p[i] - '0');
    return v;
}

/* Every wait below ends here at the latest; hitting it fails the test. */
#define DEADLINE_MS 10000

static int connect_from(const char *src, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail_msg("socket: %s", strerror(errno));
    inet_pton(AF_INET, src, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        fail_msg("bind %s: %s", src, strerror(errno));
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        fail_msg("connect from %s: %s", src, strerror(errno));
    return fd;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0)
            fail_msg("send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Reads until the server closes (or resets) the connection; fails at the
 * deadline. Returns the bytes read (NUL-terminated in buf). */
static size_t read_to_close(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, DEADLINE_MS);
        if (r == 0)
            fail_msg("no answer within the deadline (got %zu bytes: %.*s)", len, (int)len, buf);
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap - 1)
            break;
    }
    buf[len] = '\0';
    return len;
}

/* One request from src with "Connection: close"; the status, or -1 when
 * the server closed without an answer. The whole answer in buf. */
static int raw_from(const char *src, uint16_t port, const char *req, char *buf, size_t cap)
{
    int fd = connect_from(src, port), status = -1;
    send_all(fd, req, strlen(req));
    read_to_close(fd, buf, cap);
    close(fd);
    if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
        status = atoi_status(buf + 9);
    return status;
}

static int raw(uint16_t port, const char *req, char *buf, size_t cap)
{
    return raw_from("127.0.0.1", port, req, buf, cap);
}

/* True when the server has closed fd (EOF or reset pending). */
static bool closed_by_server(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* The caller frees the text. (Static: open_memstream keeps the addresses
 * until fclose, and gcc's -Wdangling-pointer cannot see that it ends here.) */
static char *metrics_text(struct dd_http_server *srv)
{
    static char *m;
    static size_t mlen;
    m = NULL;
    FILE *f = open_memstream(&m, &mlen);
    dd_http_metrics(srv, f);
    fclose(f);
    return m;
}

static int h_health(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static const struct dd_http_route health_routes[] = {
    {"GET", "/healthz", h_health, NULL, false, NULL, 0},
};

/* Finding 1: connections past libmicrohttpd's old limit (~1,020 with
 * select), sending a header line and no more, lock nobody out. */
static void test_many_connections(void **state)
{
    struct dd_http_config cfg = {.listen = "127.0.0.1:0"};
    struct dd_http_server *srv = NULL;
    enum { N = 1200 };
    static int fds[N];
    static const char partial[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    char err[256], buf[4096];
    (void)state;

    assert_int_equal(dd_http_start(&cfg, health_routes, 1, &srv, err, sizeof(err)), 0);
    uint16_t port = dd_http_port(srv);
    for (int i = 0; i < N; i++) {
        fds[i] = connect_from(i % 2 ? "127.0.0.2" : "127.0.0.3", port);
        send_all(fds[i], partial, sizeof(partial) - 1);
    }
    /* a trickler's next line: it keeps its connection, and so do the rest */
    for (int i = 0; i < N; i += 2)
        send_all(fds[i], "X-Slow: 1\r\n", 11);
    assert_int_equal(raw(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
                         sizeof(buf)),
                     200);
    int open_n = 0;
    for (int i = 0; i < N; i++)
        open_n += !closed_by_server(fds[i]);
    print_message("held %d connections open while /healthz answered 200\n", open_n);
    assert_int_equal(open_n, N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    char *m = metrics_text(srv);
    assert_non_null(strstr(m, "dedupd_http_connection_limit{scope=\"total\"} 8192"));
    assert_non_null(strstr(m, "dedupd_http_connection_limit{scope=\"per_address\"} 1024"));
    free(m);
    dd_http_stop(srv);
}

/* Finding 1: one address gets per_ip_limit connections, the excess is
 * closed, and another address is still served. */
static void test_per_address_limit(void **state)
{
    struct dd_http_config cfg = {.listen = "127.0.0.1:0", .per_ip_limit = 20};
    struct dd_http_server *srv = NULL;
    enum { N = 30 };
    int fds[N], closed = 0;
    char err[256], buf[4096];
    (void)state;

    assert_int_equal(dd_http_start(&cfg, health_routes, 1, &srv, err, sizeof(err)), 0);
    uint16_t port = dd_http_port(srv);
    for (int i = 0; i < N; i++) {
        fds[i] = connect_from("127.0.0.2", port);
        send_all(fds[i], "GET /healthz HTTP/1.1\r\n", 23);
    }
    /* the excess is accepted and closed: wait for it, up to the deadline */
    for (int waited = 0; closed < N - 20; waited += 10) {
        if (waited > DEADLINE_MS)
            fail_msg("only %d of %d excess connections were closed", closed, N - 20);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        closed = 0;
        for (int i = 0; i < N; i++)
            closed += closed_by_server(fds[i]);
    }
    assert_int_equal(raw_from("127.0.0.2", port, "GET /healthz HTTP/1.1\r\n\r\n", buf, sizeof(buf)),
                     -1);
    assert_int_equal(raw_from("127.0.0.3", port,
                              "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
                              sizeof(buf)),
                     200);
    closed = 0;
    for (int i = 0; i < N; i++)
        closed += closed_by_server(fds[i]);
    assert_int_equal(closed, N - 20);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    dd_http_stop(srv);
}

static long rss_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "re");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

/* Finding 2: a wrong token or a body over the cap is answered on the
 * headers, before the client sends the body; nothing is buffered. */
static void test_early_reject(void **state)
{
    struct dd_http_config cfg = {.listen = "127.0.0.1:0", .token = "s3cret"};
    struct dd_http_server *srv = NULL;
    char err[256], buf[4096], req[512];
    enum { N = 200, BODY = 1 << 20, SENT = 64 * 1024 };
    static int fds[N];
    (void)state;

    assert_int_equal(dd_http_start(&cfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)), 0);
    uint16_t port = dd_http_port(srv);

    /* headers only: the body never comes, the answer must */
    snprintf(req, sizeof(req),
             "POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
             "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
             8 * BODY);
    assert_int_equal(raw(port, req, buf, sizeof(buf)), 401);
    assert_non_null(strstr(buf, "\"unauthorized\""));
    snprintf(req, sizeof(req),
             "POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
             "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
             8 * BODY);
    assert_int_equal(raw(port, req, buf, sizeof(buf)), 413);
    assert_non_null(strstr(buf, "\"payload_too_large\""));
    snprintf(req, sizeof(req), "GET /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
             BODY);
    assert_int_equal(raw(port, req, buf, sizeof(buf)), 404);

    /* 200 unauthenticated 1 MiB uploads, the first 64 KiB of each sent */
    char *chunk = calloc(1, SENT);
    long before = rss_kib();
    snprintf(req, sizeof(req),
             "POST /v1/things HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
             "Content-Length: %d\r\n\r\n",
             BODY);
    for (int i = 0; i < N; i++) {
        fds[i] = connect_from("127.0.0.2", port);
        send_all(fds[i], req, strlen(req));
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        (void)!send(fds[i], chunk, SENT, MSG_NOSIGNAL); /* as much as the socket takes */
        fcntl(fds[i], F_SETFL, 0);
    }
    int n401 = 0;
    for (int i = 0; i < N; i++) {
        read_to_close(fds[i], buf, sizeof(buf));
        n401 += strncmp(buf, "HTTP/1.1 401", 12) == 0;
        close(fds[i]);
    }
    free(chunk);
    char *m = metrics_text(srv);
    print_message("%d x 1 MiB unauthenticated uploads: %d answered 401, process RSS %+ld KiB, "
                  "body bytes buffered at most: %s\n",
                  N, n401, rss_kib() - before, strstr(m, "\ndedupd_http_body_bytes_max ") + 28);
    /* a reset may beat the answer to the client; what counts is the server */
    assert_true(n401 > N / 2);
    assert_non_null(strstr(m, "dedupd_http_body_bytes_max 0\n"));
    free(m);
    dd_http_stop(srv);
}

/* Finding 3: request parsing. */
static void test_parsing(void **state)
{
    struct dd_http_config cfg = {.listen = "127.0.0.1:0", .token = "s3cret"};
    struct dd_http_server *srv = NULL;
    char err[256], buf[8192];
    (void)state;
    assert_int_equal(dd_http_start(&cfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)), 0);
    uint16_t port = dd_http_port(srv);
    static const struct {
        const char *req;
        int status;
        const char *says;
    } cases[] = {
        {"GET /v1/echo/v1%00/history HTTP/1.1\r\n", 400, "encoded NUL"},
        {"GET /v1/echo/v1%00 HTTP/1.1\r\n", 400, "encoded NUL"},
        {"GET /v1/echo/a?q=x%00y HTTP/1.1\r\n", 400, "query argument 'q' contains an encoded NUL"},
        {"GET /v1/echo/caf%C3%A9 HTTP/1.1\r\n", 200, "\"name\":\"caf\xc3\xa9\""},
        {"GET /v1/echo/%ff%fe HTTP/1.1\r\n", 400, "the path is not valid UTF-8"},
        {"GET /v1/echo/%C0%AF HTTP/1.1\r\n", 400, "the path is not valid UTF-8"},
        {"GET /v1/echo/a?q=%ed%a0%80 HTTP/1.1\r\n", 400, "query argument 'q' is not valid UTF-8"},
        {"POST /v1/things HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 9\r\n"
         "Content-Length: 10\r\n",
         400, "two different Content-Length"},
        {"POST /v1/things HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 9\r\n"
         "Transfer-Encoding: chunked\r\n",
         400, "both Content-Length and Transfer-Encoding"},
        {"HEAD /v1/echo/a HTTP/1.1\r\n", 200, NULL},
        {"HEAD /v1/things HTTP/1.1\r\n", 405, NULL},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        char req[1024];
        snprintf(req, sizeof(req), "%sHost: x\r\nConnection: close\r\n\r\n%s", cases[i].req,
                 strncmp(cases[i].req, "POST", 4) == 0 ? "{\"n\": 21}" : "");
        int st = raw(port, req, buf, sizeof(buf));
        if (st != cases[i].status || (cases[i].says && !strstr(buf, cases[i].says)))
            fail_msg("case %zu (%.40s): got %d, want %d with '%s':\n%s", i, cases[i].req, st,
                     cases[i].status, cases[i].says ? cases[i].says : "", buf);
    }
    /* HEAD: the GET's headers ({"name":"a","q":null} is 21 bytes), no body */
    raw(port, "HEAD /v1/echo/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof(buf));
    if (!strstr(buf, "Content-Length: 21\r\n"))
        fail_msg("HEAD answer: %s", buf);
    assert_non_null(strstr(buf, "\r\n\r\n"));
    assert_string_equal(strstr(buf, "\r\n\r\n"), "\r\n\r\n");
    raw(port, "DELETE /v1/echo/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
        sizeof(buf));
    assert_non_null(strstr(buf, "Allow: GET, HEAD\r\n"));

    /* query arguments: up to the cap served, past it 400, and every count
     * answered (past ~477 libmicrohttpd used to close without a word) */
    static const unsigned counts[] = {
        DD_HTTP_MAX_QUERY_ARGS, DD_HTTP_MAX_QUERY_ARGS + 1, 477, 478, 1000, 3000};
    for (size_t i = 0; i < DD_ARRAY_SIZE(counts); i++) {
        size_t cap = 64 + counts[i] * 8, len;
        char *req = malloc(cap);
        len = (size_t)snprintf(req, cap, "GET /v1/echo/a?q=1");
        for (unsigned k = 1; k < counts[i]; k++)
            len += (size_t)snprintf(req + len, cap - len, "&a%u=1", k % 1000);
        snprintf(req + len, cap - len, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        int st = raw(port, req, buf, sizeof(buf));
        free(req);
        int want = counts[i] <= DD_HTTP_MAX_QUERY_ARGS ? 200 : 400;
        if (st != want)
            fail_msg("%u query arguments: got %d, want %d: %s", counts[i], st, want, buf);
    }
    dd_http_stop(srv);
}
/* ---- deferred answers ---- */

/* The slow route defers; a thread answers once the test releases it. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct dd_http_deferred *handle;
    bool release;
    int reply_result;
    pthread_t thread;
} slow = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *slow_answerer(void *arg)
{
    struct dd_http_response resp = {0};
    struct timespec until;
    (void)arg;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DEADLINE_MS / 1000;
    pthread_mutex_lock(&slow.lock);
    while (!slow.release && pthread_cond_timedwait(&slow.cond, &slow.lock, &until) == 0)
        ;
    struct dd_http_deferred *h = slow.handle;
    slow.handle = NULL;
    pthread_mutex_unlock(&slow.lock);
    dd_http_reply_json(&resp, 200, json_pack("{s:s}", "answered", "later"));
    int r = dd_http_deferred_reply(h, &resp);
    pthread_mutex_lock(&slow.lock);
    slow.reply_result = r;
    pthread_mutex_unlock(&slow.lock);
    return NULL;
}

static int h_slow(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct dd_http_deferred *h = dd_http_defer(req);
    (void)ctx;
    if (!h)
        return dd_http_reply_error(resp, 503, "busy", "cannot defer");
    assert_null(dd_http_defer(req)); /* once */
    pthread_mutex_lock(&slow.lock);
    slow.handle = h;
    slow.release = false;
    pthread_mutex_unlock(&slow.lock);
    pthread_create(&slow.thread, NULL, slow_answerer, NULL);
    return 0;
}

static const struct dd_http_route defer_routes[] = {
    {"GET", "/healthz", h_health, NULL, false, NULL, 0},
    {"GET", "/v1/slow", h_slow, NULL, false, NULL, 0},
};

static bool slow_pending(void)
{
    pthread_mutex_lock(&slow.lock);
    bool p = slow.handle != NULL;
    pthread_mutex_unlock(&slow.lock);
    return p;
}

static void wait_slow_pending(void)
{
    for (int waited = 0; !slow_pending(); waited += 5) {
        if (waited > DEADLINE_MS)
            fail_msg("the slow handler never deferred");
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Finding 5: with one worker, a deferred request holds no thread: others
 * are answered meanwhile, then the deferred one; a stop answers 503 to one
 * still deferred, and its late reply is refused without harm. */
static void test_deferred(void **state)
{
    struct dd_http_config cfg = {.listen = "127.0.0.1:0", .threads = 1};
    struct dd_http_server *srv = NULL;
    static const char get_slow[] = "GET /v1/slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char err[256], buf[4096];
    (void)state;

    assert_int_equal(dd_http_start(&cfg, defer_routes, 2, &srv, err, sizeof(err)), 0);
    uint16_t port = dd_http_port(srv);
    int fd = connect_from("127.0.0.1", port);
    send_all(fd, get_slow, sizeof(get_slow) - 1);
    wait_slow_pending();
    for (int i = 0; i < 5; i++)
        assert_int_equal(raw(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                             buf, sizeof(buf)),
                         200);
    assert_false(closed_by_server(fd)); /* still waiting for its answer */
    pthread_mutex_lock(&slow.lock);
    slow.release = true;
    pthread_cond_signal(&slow.cond);
    pthread_mutex_unlock(&slow.lock);
    read_to_close(fd, buf, sizeof(buf));
    close(fd);
    pthread_join(slow.thread, NULL);
    assert_int_equal(slow.reply_result, 0);
    assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(buf, "{\"answered\":\"later\"}"));

    /* stopped while deferred: 503, and the late reply only frees */
    fd = connect_from("127.0.0.1", port);
    send_all(fd, get_slow, sizeof(get_slow) - 1);
    wait_slow_pending();
    dd_http_stop(srv);
    read_to_close(fd, buf, sizeof(buf));
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 503", 12) == 0);
    assert_non_null(strstr(buf, "\"shutting_down\""));
    pthread_mutex_lock(&slow.lock);
    slow.release = true;
    pthread_cond_signal(&slow.cond);
    pthread_mutex_unlock(&slow.lock);
    pthread_join(slow.thread, NULL);
    assert_int_equal(slow.reply_result, -ECONNABORTED);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_errors), cmocka_unit_test(test_listen_rules),
        cmocka_unit_test(test_many_connections),  cmocka_unit_test(test_per_address_limit),
        cmocka_unit_test(test_early_reject),      cmocka_unit_test(test_parsing),
        cmocka_unit_test(test_deferred),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
