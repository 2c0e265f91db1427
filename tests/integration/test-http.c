/*
 * The HTTP layer on a real libmicrohttpd server on an ephemeral loopback
 * port, driven by libcurl: routing with path parameters, JSON errors with
 * the right status (400 with position, 401, 404, 405 with Allow, 413, 414),
 * bearer tokens on mutating routes, the loopback-without-token rule, and the
 * metrics it exports.
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
    {"GET", "/v1/echo/{name}", h_echo, NULL, false, NULL},
    {"POST", "/v1/things", h_post, NULL, true, "things"},
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

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_errors),
        cmocka_unit_test(test_listen_rules),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
