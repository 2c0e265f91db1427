/*
 * dedupd/http/client against the project's own server (dd_http) on an
 * ephemeral loopback port: methods and JSON bodies, the bearer token on a
 * mutating route, statuses passed through, the reply cap, streaming and a
 * callback that stops it, connect and total timeouts, nothing listening,
 * keep-alive (many requests, one connection), bad configurations, and
 * HTTPS with a private CA and a client certificate (openssl CLI).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/http/client.h"
#include "dedupd/http/http.h"
#include "helpers.h"

#define TOKEN "test-token-0123456789abcdef"

static int h_echo(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    return dd_http_reply_json(resp, 200,
                              json_pack("{s:s, s:s, s:s?}", "method", req->method, "body",
                                        req->body, "q", dd_http_query(req, "q")));
}

static int h_report(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    json_t *doc = dd_http_body_json(req, resp);
    (void)ctx;
    if (!doc)
        return 0;
    json_decref(doc);
    return dd_http_reply_json(resp, 202, json_pack("{s:I}", "bytes", (json_int_t)req->body_len));
}

static int h_delete(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    resp->status = 204;
    return 0;
}

/* 100 000 bytes of text */
static int h_big(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    static char big[100000];
    (void)ctx;
    (void)req;
    memset(big, 'b', sizeof(big));
    return dd_http_reply_text(resp, 200, "text/plain", big, sizeof(big));
}

static int h_slow(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    struct timespec nap = {1, 500000000};
    (void)ctx;
    (void)req;
    nanosleep(&nap, NULL);
    return dd_http_reply_json(resp, 200, json_object());
}

static const struct dd_http_route routes[] = {
    {"GET", "/v1/echo", h_echo, NULL, false, NULL, 0},
    {"PUT", "/v1/echo", h_echo, NULL, false, NULL, 0},
    {"POST", "/v1/reports", h_report, NULL, true, NULL, 0},
    {"DELETE", "/v1/things/{name}", h_delete, NULL, false, NULL, 0},
    {"GET", "/v1/big", h_big, NULL, false, NULL, 0},
    {"GET", "/v1/slow", h_slow, NULL, false, NULL, 0},
};

struct fixture {
    struct dd_http_server *srv;
    char base[64];
};

static int start(void **state)
{
    static struct fixture f;
    struct dd_http_config cfg = {.listen = "127.0.0.1:0", .token = TOKEN, .threads = 4};
    char err[256];

    if (dd_http_start(&cfg, routes, DD_ARRAY_SIZE(routes), &f.srv, err, sizeof(err)) < 0)
        fail_msg("server: %s", err);
    snprintf(f.base, sizeof(f.base), "http://127.0.0.1:%u/", dd_http_port(f.srv));
    *state = &f;
    return 0;
}

static int stop(void **state)
{
    struct fixture *f = *state;
    dd_http_stop(f->srv);
    return 0;
}

static struct dd_http_client *client(const struct fixture *f, const char *token, long timeout_ms)
{
    struct dd_http_client_config cfg = {
        .base_url = f->base, .token = token, .timeout_ms = timeout_ms};
    struct dd_http_client *c = NULL;
    char err[256];
    if (dd_http_client_new(&cfg, &c, err, sizeof(err)) < 0)
        fail_msg("client: %s", err);
    return c;
}

static void test_methods_and_bodies(void **state)
{
    struct fixture *f = *state;
    struct dd_http_client *c = client(f, NULL, 0);
    struct dd_dynbuf b;
    char err[512] = "";
    json_t *doc;

    /* the trailing '/' of the base is dropped */
    assert_int_equal(strchr(dd_http_client_base(c) + 7, '/'), NULL);
    dd_dynbuf_init(&b, DD_HTTP_CLIENT_MAX_REPLY);
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/echo?q=a%20b", NULL, &b, err, sizeof(err)),
                     200);
    doc = json_loads(dd_dynbuf_str(&b), 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(doc, "q")), "a b");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "");
    json_decref(doc);

    /* PUT with a body, then a GET on the same handle carries no body */
    assert_int_equal(dd_http_client_call(c, "PUT", "/v1/echo", "{\"x\":1}", &b, err, sizeof(err)),
                     200);
    assert_non_null(strstr(dd_dynbuf_str(&b), "\"method\":\"PUT\""));
    assert_non_null(strstr(dd_dynbuf_str(&b), "{\\\"x\\\":1}"));
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/echo", NULL, &b, err, sizeof(err)), 200);
    assert_non_null(strstr(dd_dynbuf_str(&b), "\"body\":\"\""));

    assert_int_equal(dd_http_client_call(c, "DELETE", "/v1/things/x", NULL, &b, err, sizeof(err)),
                     204);
    assert_int_equal(dd_dynbuf_len(&b), 0);
    /* keep-alive: every request so far went over one connection */
    assert_int_equal(dd_http_client_connections(c), 1);
    /* statuses are passed through: the caller decides (the server answers
     * these on the headers and closes the connection) */
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/nothing", NULL, &b, err, sizeof(err)), 404);
    assert_non_null(strstr(dd_dynbuf_str(&b), "not_found"));
    assert_int_equal(dd_http_client_call(c, "POST", "/v1/echo", "{}", &b, err, sizeof(err)), 405);
    dd_dynbuf_free(&b);
    dd_http_client_free(c);
}

static void test_token(void **state)
{
    struct fixture *f = *state;
    struct dd_http_client *anon = client(f, NULL, 0), *c = client(f, TOKEN, 0),
                          *wrong = client(f, TOKEN "x", 0);
    struct dd_dynbuf b;
    char err[512] = "";

    dd_dynbuf_init(&b, 4096);
    assert_int_equal(
        dd_http_client_call(anon, "POST", "/v1/reports", "{\"n\":1}", &b, err, sizeof(err)), 401);
    assert_int_equal(
        dd_http_client_call(wrong, "POST", "/v1/reports", "{\"n\":1}", &b, err, sizeof(err)), 401);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(
            dd_http_client_call(c, "POST", "/v1/reports", "{\"n\":12}", &b, err, sizeof(err)), 202);
        assert_string_equal(dd_dynbuf_str(&b), "{\"bytes\":8}");
    }
    /* a POST without a body sends an empty one (the server wants JSON) */
    assert_int_equal(dd_http_client_call(c, "POST", "/v1/reports", NULL, &b, err, sizeof(err)),
                     400);
    assert_int_equal(dd_http_client_connections(c), 1);
    dd_dynbuf_free(&b);
    dd_http_client_free(anon);
    dd_http_client_free(c);
    dd_http_client_free(wrong);
}

static void test_reply_cap(void **state)
{
    struct fixture *f = *state;
    struct dd_http_client *c = client(f, NULL, 0);
    struct dd_dynbuf b;
    char err[512] = "";

    dd_dynbuf_init(&b, 100000);
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/big", NULL, &b, err, sizeof(err)), 200);
    assert_int_equal(dd_dynbuf_len(&b), 100000);
    dd_dynbuf_free(&b);
    dd_dynbuf_init(&b, 99999);
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/big", NULL, &b, err, sizeof(err)),
                     DD_E_TOOBIG);
    assert_non_null(strstr(err, "/v1/big: the reply is larger than 99999 bytes"));
    assert_true(dd_dynbuf_len(&b) <= 99999);
    /* the client still works after an aborted transfer */
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/echo", NULL, &b, err, sizeof(err)), 200);
    dd_dynbuf_free(&b);
    dd_http_client_free(c);
}

struct counter {
    size_t bytes, calls, stop_after;
};

static int count(void *ud, const char *data, size_t len)
{
    struct counter *k = ud;
    for (size_t i = 0; i < len; i++)
        assert_int_equal(data[i], 'b');
    k->bytes += len;
    k->calls++;
    return k->stop_after && k->calls >= k->stop_after ? -ECANCELED : 0;
}

static void test_stream(void **state)
{
    struct fixture *f = *state;
    struct dd_http_client *c = client(f, NULL, -1);
    struct counter k = {0};
    char err[512] = "";

    assert_int_equal(dd_http_client_stream(c, "GET", "/v1/big", NULL, count, &k, err, sizeof(err)),
                     200);
    assert_int_equal(k.bytes, 100000);
    assert_true(k.calls >= 1);
    k = (struct counter){.stop_after = 1};
    assert_int_equal(dd_http_client_stream(c, "GET", "/v1/big", NULL, count, &k, err, sizeof(err)),
                     -ECANCELED);
    assert_int_equal(k.calls, 1);
    assert_non_null(strstr(err, "/v1/big: reading the reply: "));
    dd_http_client_free(c);
}

static void test_failures(void **state)
{
    struct fixture *f = *state;
    struct dd_http_client *c = client(f, NULL, 300), *gone;
    struct dd_http_client_config cfg = {0};
    struct dd_http_server *srv;
    struct dd_http_config scfg = {.listen = "127.0.0.1:0"};
    struct dd_dynbuf b;
    char err[512] = "", base[64];

    dd_dynbuf_init(&b, 4096);
    /* total timeout: the handler sleeps 1.5 s */
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/slow", NULL, &b, err, sizeof(err)),
                     -ETIMEDOUT);
    assert_non_null(strstr(err, "/v1/slow: "));
    assert_non_null(strstr(err, "imed out")); /* curl's own words */
    dd_http_client_free(c);

    /* nothing listening: a port that was just ours */
    if (dd_http_start(&scfg, routes, 1, &srv, err, sizeof(err)) < 0)
        fail_msg("server: %s", err);
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", dd_http_port(srv));
    dd_http_stop(srv);
    cfg.base_url = base;
    assert_int_equal(dd_http_client_new(&cfg, &gone, err, sizeof(err)), 0);
    assert_int_equal(dd_http_client_call(gone, "GET", "/healthz", NULL, &b, err, sizeof(err)),
                     -ECONNREFUSED);
    assert_non_null(strstr(err, base));
    assert_non_null(strstr(err, "/healthz: "));
    dd_http_client_free(gone);
    dd_dynbuf_free(&b);

    /* configurations refused at creation */
    static const struct {
        struct dd_http_client_config cfg;
        const char *why;
    } bad[] = {
        {{.base_url = NULL}, "must start with http:// or https://"},
        {{.base_url = "127.0.0.1:7450"}, "must start with http://"},
        {{.base_url = "file:///etc/passwd"}, "must start with http://"},
        {{.base_url = "http://x", .token = "abc\r\nX-Evil: 1"}, "cannot go in an HTTP header"},
        {{.base_url = "http://x", .token = "abc def"}, "(0x20)"},
        {{.base_url = "https://x", .cert_file = "c.pem"}, "needs its key"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        struct dd_http_client *x = NULL;
        err[0] = '\0';
        assert_int_equal(dd_http_client_new(&bad[i].cfg, &x, err, sizeof(err)), -EINVAL);
        assert_null(x);
        if (!strstr(err, bad[i].why))
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].why);
    }
    assert_null(dd_http_client_free(NULL));
}

/* Every allocation of creation and of a request failing in turn. */
static void test_alloc_failures(void **state)
{
    struct fixture *f = *state;
    struct dd_http_client_config cfg = {.base_url = f->base, .token = TOKEN, .ca_file = "ca.pem"};

    for (unsigned long n = 1;; n++) {
        struct dd_http_client *c = NULL;
        struct dd_dynbuf b;
        char err[512];
        int r;

        dd_dynbuf_init(&b, 4096);
        dd_alloc_fail_at(n);
        r = dd_http_client_new(&cfg, &c, err, sizeof(err));
        if (r == 0) {
            cfg.ca_file = NULL;
            dd_http_client_free(c);
            cfg.ca_file = "ca.pem";
        }
        dd_alloc_fail_at(0);
        dd_dynbuf_free(&b);
        if (r == 0)
            break;
        assert_int_equal(r, -ENOMEM);
        assert_null(c);
        assert_true(n < 50);
    }
}

/* ---- HTTPS with a private CA and a client certificate ---- */

static const char pki_script[] =
    "set -e\n"
    "printf '[req]\\ndistinguished_name=dn\\nprompt=no\\n[dn]\\nCN=x\\n"
    "[ca]\\nbasicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign\\n"
    "[server]\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n"
    "subjectAltName=IP:127.0.0.1\\n"
    "[client]\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=clientAuth\\n' > o.cnf\n"
    "key='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
    "openssl req -x509 -new -config o.cnf -extensions ca $key -days 2 -keyout ca.key "
    "-out ca.pem -subj /CN=ca 2>/dev/null\n"
    "for n in server client; do\n"
    "  openssl req -new -config o.cnf $key -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null\n"
    "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 2 "
    "-extfile o.cnf -extensions $n -out $n.pem 2>/dev/null\n"
    "done\n";

static void test_tls(void **state)
{
    char *dir = tt_tmpdir(), *script, *out = NULL, *serr = NULL;
    char err[512] = "", base[64], ca[512], cert[512], key[512], scert[512], skey[512];
    struct dd_http_server *srv;
    struct dd_http_client *c;
    struct dd_dynbuf b;
    (void)state;

    if (!tt_have_program("openssl"))
        fail_msg("the openssl CLI is needed for the TLS test certificates");
    if (asprintf(&script, "cd '%s' && { %s}", dir, pki_script) < 0)
        fail_msg("asprintf");
    if (tt_run((const char *const[]){"/bin/sh", "-c", script, NULL}, &out, &serr) != 0)
        fail_msg("openssl: %s%s", out, serr);
    free(script);
    free(out);
    free(serr);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/client.pem", dir);
    snprintf(key, sizeof(key), "%s/client.key", dir);
    snprintf(scert, sizeof(scert), "%s/server.pem", dir);
    snprintf(skey, sizeof(skey), "%s/server.key", dir);
    struct dd_http_config scfg = {
        .listen = "127.0.0.1:0", .tls_cert = scert, .tls_key = skey, .tls_client_ca = ca};
    if (dd_http_start(&scfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)) < 0)
        fail_msg("server: %s", err);
    snprintf(base, sizeof(base), "https://127.0.0.1:%u", dd_http_port(srv));
    dd_dynbuf_init(&b, 4096);

    /* the server's CA and our certificate: answered */
    struct dd_http_client_config cfg = {
        .base_url = base, .ca_file = ca, .cert_file = cert, .key_file = key};
    assert_int_equal(dd_http_client_new(&cfg, &c, err, sizeof(err)), 0);
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/echo", NULL, &b, err, sizeof(err)), 200);
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/echo", NULL, &b, err, sizeof(err)), 200);
    assert_int_equal(dd_http_client_connections(c), 1);
    dd_http_client_free(c);

    /* no client certificate: the server says 403 */
    cfg.cert_file = cfg.key_file = NULL;
    assert_int_equal(dd_http_client_new(&cfg, &c, err, sizeof(err)), 0);
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/echo", NULL, &b, err, sizeof(err)), 403);
    dd_http_client_free(c);

    /* the system store does not know our CA: a TLS error with curl's words */
    cfg.ca_file = NULL;
    assert_int_equal(dd_http_client_new(&cfg, &c, err, sizeof(err)), 0);
    assert_int_equal(dd_http_client_call(c, "GET", "/v1/echo", NULL, &b, err, sizeof(err)),
                     DD_E_LIBRARY);
    assert_non_null(strstr(err, base));
    assert_non_null(strstr(err, "certificate"));
    dd_http_client_free(c);

    dd_dynbuf_free(&b);
    dd_http_stop(srv);
    tt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_methods_and_bodies),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_reply_cap),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
