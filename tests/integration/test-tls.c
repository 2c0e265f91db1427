/*
 * HTTPS and client certificates on a real server (ephemeral loopback port,
 * libcurl client). The PKI is made at test time with the openssl CLI in a
 * temporary directory: a CA, a server certificate for 127.0.0.1 and a client
 * certificate signed by it, and an unrelated second CA with its own client
 * certificate.
 *
 * What is asserted is what a client really sees: HTTPS verifies against our
 * CA only, plain HTTP on the TLS port gets no HTTP answer, and with a client
 * CA configured a request without a certificate, with one from the other CA,
 * or with a certificate not made for client use is answered 403 "forbidden"
 * (libmicrohttpd only asks for the certificate; the server's own check in
 * http.c is what rejects) while the good certificate is served. Handlers
 * see the verified certificate's identity (CN, else first DNS name), and
 * a client CA stands in for the token beyond loopback.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/http/http.h"
#include "helpers.h"

/* Made by tt_openssl_pki: the CA, the server and client certificates the
 * tests below use, and for the identities handed to handlers, a node's
 * (CN=system:node:...), one with no CN but DNS names and one with two
 * CNs. */
static const char pki_script[] =
    "ca ca '/CN=dedupd test CA'\n"
    "leaf server /CN=127.0.0.1 ca server 2\n"
    "leaf client /CN=dedupctl ca client 3\n"
    "ca other-ca '/CN=unrelated CA'\n"
    "leaf other-client /CN=dedupctl other-ca client 4\n"
    "leaf node '/O=system:nodes/CN=system:node:gpu-a-01' ca client 5\n"
    "SAN=DNS:gpu-san-04,DNS:second.example leaf san-only /O=dedupd ca client_san 6\n"
    "leaf two-cn '/CN=gpu-a-01/CN=gpu-b-02' ca client 7\n";

static char *dir;

static char *pem(const char *name)
{
    return tt_path(dir, name);
}

static int make_pki(void **state)
{
    (void)state;
    dir = tt_tmpdir();
    tt_openssl_pki(dir, pki_script);
    return 0;
}

static int drop_pki(void **state)
{
    (void)state;
    tt_rmtree(dir);
    free(dir);
    return 0;
}

static int h_hello(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 200, json_pack("{s:s}", "hello", "tls"));
}

static int h_poke(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    (void)req;
    return dd_http_reply_json(resp, 202, json_pack("{s:b}", "poked", 1));
}

/* The identity the server hands handlers: null when none was verified. */
static int h_whoami(void *ctx, const struct dd_http_request *req, struct dd_http_response *resp)
{
    (void)ctx;
    return dd_http_reply_json(
        resp, 200,
        json_pack("{s:o}", "identity",
                  req->peer_identity ? json_string(req->peer_identity) : json_null()));
}

static const struct dd_http_route routes[] = {
    {"GET", "/v1/hello", h_hello, NULL, false, NULL, 0},
    {"POST", "/v1/poke", h_poke, NULL, true, NULL, 0},
    {"GET", "/v1/whoami", h_whoami, NULL, false, NULL, 0},
};

struct reply {
    CURLcode rc;
    char curl_err[CURL_ERROR_SIZE];
    long status;
    char *body;
    size_t len;
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

struct client {
    const char *scheme; /* "https" or "http" */
    const char *ca;     /* file name in dir for CURLOPT_CAINFO; NULL = system store */
    const char *cert;   /* client certificate name ("client" -> client.pem/.key) */
    const char *method; /* default GET */
    const char *token;  /* bearer token */
};

static struct reply call(uint16_t port, const char *path, const struct client *cl)
{
    struct reply r = {.rc = CURLE_OK};
    char url[256], auth[256], name[64];
    char *ca = NULL, *cert = NULL, *key = NULL;
    struct curl_slist *hdr = NULL;
    CURL *c = curl_easy_init();

    snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s", cl->scheme, port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r.curl_err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (cl->method && strcmp(cl->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    }
    if (cl->ca) {
        ca = pem(cl->ca);
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    }
    if (cl->cert) {
        snprintf(name, sizeof(name), "%s.pem", cl->cert);
        cert = pem(name);
        snprintf(name, sizeof(name), "%s.key", cl->cert);
        key = pem(name);
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    }
    if (cl->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cl->token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    free(ca);
    free(cert);
    free(key);
    if (!r.body)
        r.body = strdup("");
    return r;
}

/* Expects a JSON error with this code whose message contains want. */
static void assert_error(const struct reply *r, long status, const char *code, const char *want)
{
    json_error_t e;
    json_t *doc, *err;

    if (r->rc != CURLE_OK)
        fail_msg("expected HTTP %ld, the request failed: %s (%s)", status,
                 curl_easy_strerror(r->rc), r->curl_err);
    if (r->status != status)
        fail_msg("expected HTTP %ld, got %ld: %s", status, r->status, r->body);
    doc = json_loads(r->body, 0, &e);
    if (!doc)
        fail_msg("error body is not JSON: %s", r->body);
    err = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    if (!strstr(json_string_value(json_object_get(err, "message")), want))
        fail_msg("message lacks '%s': %s", want, r->body);
    json_decref(doc);
}

static void assert_ok(const struct reply *r, long status)
{
    if (r->rc != CURLE_OK)
        fail_msg("the request failed: %s (%s)", curl_easy_strerror(r->rc), r->curl_err);
    if (r->status != status)
        fail_msg("expected HTTP %ld, got %ld: %s", status, r->status, r->body);
}

static struct dd_http_server *start(const char *client_ca, const char *token)
{
    char *cert = pem("server.pem"), *key = pem("server.key");
    char *ca = client_ca ? pem(client_ca) : NULL;
    struct dd_http_config cfg = {.listen = "127.0.0.1:0",
                                 .token = token,
                                 .tls_cert = cert,
                                 .tls_key = key,
                                 .tls_client_ca = ca};
    struct dd_http_server *srv = NULL;
    char err[256];

    if (dd_http_start(&cfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)) < 0)
        fail_msg("start: %s", err);
    free(cert);
    free(key);
    free(ca);
    return srv;
}

static void test_https(void **state)
{
    struct dd_http_server *srv = start(NULL, NULL);
    uint16_t port = dd_http_port(srv);
    struct reply r;
    (void)state;

    r = call(port, "/v1/hello", &(struct client){.scheme = "https", .ca = "ca.pem"});
    assert_ok(&r, 200);
    assert_string_equal(r.body, "{\"hello\":\"tls\"}");
    free(r.body);

    /* our CA is what makes it trusted: the system store alone does not */
    r = call(port, "/v1/hello", &(struct client){.scheme = "https"});
    assert_int_equal(r.rc, CURLE_PEER_FAILED_VERIFICATION);
    free(r.body);
    r = call(port, "/v1/hello", &(struct client){.scheme = "https", .ca = "other-ca.pem"});
    assert_int_equal(r.rc, CURLE_PEER_FAILED_VERIFICATION);
    free(r.body);

    /* plain HTTP on the TLS port: the handshake fails, no HTTP answer at all */
    r = call(port, "/v1/hello", &(struct client){.scheme = "http"});
    if (r.rc == CURLE_OK)
        fail_msg("plain HTTP on the TLS port was answered %ld: %s", r.status, r.body);
    assert_int_equal(r.status, 0);
    free(r.body);

    /* a client certificate is not asked for, and one offered does not hurt */
    r = call(port, "/v1/hello",
             &(struct client){.scheme = "https", .ca = "ca.pem", .cert = "other-client"});
    assert_ok(&r, 200);
    free(r.body);
    dd_http_stop(srv);
}

static void test_client_certificates(void **state)
{
    struct dd_http_server *srv = start("ca.pem", "s3cret");
    uint16_t port = dd_http_port(srv);
    struct reply r;
    (void)state;

    r = call(port, "/v1/hello", &(struct client){.scheme = "https", .ca = "ca.pem"});
    assert_error(&r, 403, "forbidden", "client certificate required: none was presented");
    free(r.body);

    r = call(port, "/v1/hello",
             &(struct client){.scheme = "https", .ca = "ca.pem", .cert = "other-client"});
    /* the reason is gnutls's own sentence (3.7), without its trailing space */
    assert_error(&r, 403, "forbidden",
                 "client certificate required: The certificate is NOT trusted. The certificate "
                 "issuer is unknown.");
    assert_non_null(strstr(r.body, "unknown.\"}}"));
    free(r.body);

    /* signed by the right CA, but made for servers (extendedKeyUsage serverAuth) */
    r = call(port, "/v1/hello",
             &(struct client){.scheme = "https", .ca = "ca.pem", .cert = "server"});
    assert_error(&r, 403, "forbidden", "does not match the intended purpose");
    free(r.body);

    /* the rejection comes before routing: an unknown path is 403, not 404 */
    r = call(port, "/v1/nothing", &(struct client){.scheme = "https", .ca = "ca.pem"});
    assert_error(&r, 403, "forbidden", "client certificate");
    free(r.body);

    r = call(port, "/v1/hello",
             &(struct client){.scheme = "https", .ca = "ca.pem", .cert = "client"});
    assert_ok(&r, 200);
    assert_string_equal(r.body, "{\"hello\":\"tls\"}");
    free(r.body);

    /* the certificate does not replace the token on mutating routes */
    r = call(
        port, "/v1/poke",
        &(struct client){.scheme = "https", .ca = "ca.pem", .cert = "client", .method = "POST"});
    assert_error(&r, 401, "unauthorized", "Bearer");
    free(r.body);
    r = call(port, "/v1/poke",
             &(struct client){.scheme = "https",
                              .ca = "ca.pem",
                              .cert = "client",
                              .method = "POST",
                              .token = "s3cret"});
    assert_ok(&r, 202);
    free(r.body);
    /* nor the token the certificate */
    r = call(
        port, "/v1/poke",
        &(struct client){.scheme = "https", .ca = "ca.pem", .method = "POST", .token = "s3cret"});
    assert_error(&r, 403, "forbidden", "client certificate");
    free(r.body);

    char *m = NULL;
    size_t mlen = 0;
    FILE *f = open_memstream(&m, &mlen);
    dd_http_metrics(srv, f);
    fclose(f);
    assert_non_null(strstr(m, "dedupd_http_rejected_total{reason=\"client_certificate\"} 5"));
    free(m);
    dd_http_stop(srv);
}

static void expect_identity(uint16_t port, const char *cert, const char *want)
{
    struct reply r =
        call(port, "/v1/whoami", &(struct client){.scheme = "https", .ca = "ca.pem", .cert = cert});
    char expect[256];
    assert_ok(&r, 200);
    if (want)
        snprintf(expect, sizeof(expect), "{\"identity\":\"%s\"}", want);
    else
        snprintf(expect, sizeof(expect), "{\"identity\":null}");
    if (strcmp(r.body, expect) != 0)
        fail_msg("certificate %s: expected %s, got %s", cert ? cert : "(none)", expect, r.body);
    free(r.body);
}

/* What handlers learn of the client: the verified certificate's subject
 * CN, else its first DNS name; nothing when no client CA verified it. */
static void test_peer_identity(void **state)
{
    struct dd_http_server *srv = start(NULL, NULL);
    (void)state;
    /* no client CA: a certificate offered is not verified, so names nobody */
    expect_identity(dd_http_port(srv), "node", NULL);
    expect_identity(dd_http_port(srv), NULL, NULL);
    dd_http_stop(srv);

    srv = start("ca.pem", NULL);
    uint16_t port = dd_http_port(srv);
    expect_identity(port, "client", "dedupctl");
    expect_identity(port, "node", "system:node:gpu-a-01");
    /* no CN: the first DNS subjectAltName */
    expect_identity(port, "san-only", "gpu-san-04");
    /* two CNs: ambiguous, verified but naming nobody */
    expect_identity(port, "two-cn", "");
    /* nothing is kept between requests: the first certificate again */
    expect_identity(port, "client", "dedupctl");
    dd_http_stop(srv);
}

/* Beyond loopback a client CA authenticates like a token does. */
static void test_client_ca_instead_of_token(void **state)
{
    char *cert = pem("server.pem"), *key = pem("server.key"), *ca = pem("ca.pem");
    struct dd_http_server *srv = NULL;
    char err[256];
    (void)state;

    struct dd_http_config open_cfg = {.listen = "0.0.0.0:0", .tls_cert = cert, .tls_key = key};
    assert_int_equal(
        dd_http_start(&open_cfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)),
        DD_E_USAGE);
    assert_non_null(strstr(err, "--tls-client-ca"));
    struct dd_http_config ca_cfg = {
        .listen = "0.0.0.0:0", .tls_cert = cert, .tls_key = key, .tls_client_ca = ca};
    if (dd_http_start(&ca_cfg, routes, DD_ARRAY_SIZE(routes), &srv, err, sizeof(err)) < 0)
        fail_msg("start on 0.0.0.0 with a client CA: %s", err);
    uint16_t port = dd_http_port(srv);
    /* no token set: the certificate is what lets a mutating request in */
    struct reply r = call(
        port, "/v1/poke",
        &(struct client){.scheme = "https", .ca = "ca.pem", .cert = "client", .method = "POST"});
    assert_ok(&r, 202);
    free(r.body);
    r = call(port, "/v1/poke",
             &(struct client){.scheme = "https", .ca = "ca.pem", .method = "POST"});
    assert_error(&r, 403, "forbidden", "none was presented");
    free(r.body);
    dd_http_stop(srv);
    free(cert);
    free(key);
    free(ca);
}

/* The pusher's check of its files at start. */
static void test_client_files_check(void **state)
{
    char err[512];
    char *node = pem("node.pem"), *node_key = pem("node.key"), *client_key = pem("client.key");
    char *ca = pem("ca.pem"), *empty = pem("empty.pem"), *missing = pem("missing.pem");
    (void)state;

    tt_write_file(empty, "", 0);
    assert_int_equal(dd_http_tls_check_client_files(node, node_key, ca, err, sizeof(err)), 0);
    assert_int_equal(dd_http_tls_check_client_files(node, node_key, NULL, err, sizeof(err)), 0);
    assert_int_equal(dd_http_tls_check_client_files(NULL, NULL, ca, err, sizeof(err)), 0);

    assert_int_equal(dd_http_tls_check_client_files(node, NULL, NULL, err, sizeof(err)),
                     DD_E_USAGE);
    assert_non_null(strstr(err, "needs its key"));
    /* another certificate's key */
    assert_true(dd_http_tls_check_client_files(node, client_key, ca, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, node));
    assert_non_null(strstr(err, "do not match"));
    assert_true(dd_http_tls_check_client_files(missing, node_key, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
    assert_true(dd_http_tls_check_client_files(node, empty, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "empty"));
    /* a key is no CA bundle */
    assert_true(dd_http_tls_check_client_files(NULL, NULL, node_key, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, node_key));
    free(node);
    free(node_key);
    free(client_key);
    free(ca);
    free(empty);
    free(missing);
}

static void test_tls_config_errors(void **state)
{
    struct dd_http_server *srv = NULL;
    char err[256];
    char *ca = pem("ca.pem"), *cert = pem("server.pem");
    (void)state;

    /* a client CA without a server certificate would be silently plain HTTP */
    struct dd_http_config no_tls = {.listen = "127.0.0.1:0", .tls_client_ca = ca};
    assert_int_equal(dd_http_start(&no_tls, routes, 2, &srv, err, sizeof(err)), DD_E_USAGE);
    assert_non_null(strstr(err, "client CA"));
    struct dd_http_config half = {.listen = "127.0.0.1:0", .tls_cert = cert};
    assert_int_equal(dd_http_start(&half, routes, 2, &srv, err, sizeof(err)), DD_E_USAGE);
    assert_non_null(strstr(err, "both a certificate and a key"));
    struct dd_http_config missing_ca = {.listen = "127.0.0.1:0",
                                        .tls_cert = cert,
                                        .tls_key = cert,
                                        .tls_client_ca = "/nonexistent-ca.pem"};
    assert_true(dd_http_start(&missing_ca, routes, 2, &srv, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent-ca.pem"));
    assert_null(srv);
    free(ca);
    free(cert);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_tls_config_errors),
        cmocka_unit_test(test_peer_identity),
        cmocka_unit_test(test_client_ca_instead_of_token),
        cmocka_unit_test(test_client_files_check),
    };
    int r = cmocka_run_group_tests(tests, make_pki, drop_pki);
    curl_global_cleanup();
    return r;
}
