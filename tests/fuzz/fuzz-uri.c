/*
 * Fuzz target for the HTTP server's request-target checks
 * (dedupd/http/uri.h) and the values handlers read from it: one input is a
 * raw request target ("/v1/volumes/a%20b/history?from=1&to=2"), taken
 * through the server's steps with libmicrohttpd's own unescaping: the raw
 * scan (encoded NUL, argument count), the decoded path's text check, the
 * route table, each query argument's text check, and the time arguments
 * (dedupd/api/request.h) and ids the handlers parse.
 * Invariants: the raw scan agrees with the text; an encoded NUL is what the
 * decoded path's check names; the text check accepts exactly what jansson
 * takes as a JSON string; a matched route's parameters are non-empty
 * segments that rebuild the path; an error message quoting any of it is
 * valid JSON text after the scrub; an accepted time is at most 1e11 s.
 */
#define _GNU_SOURCE
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "common/common.h"
#include "dedupd/api/request.h"
#include "dedupd/http/uri.h"
#include "fuzz.h"

static const char *const patterns[] = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/node",
    "/v1/volumes",
    "/v1/volumes/{name}",
    "/v1/volumes/{name}/history",
    "/v1/estimate",
    "/v1/estimate/{id}",
    "/v1/model",
    "/v1/model/retrain",
    "/v1/model/runs/{id}",
    "/v1/predict",
    "/v1/reports",
    "/v1/cluster",
    "/v1/cluster/nodes/{name}",
};

/* A decoded text (n bytes) as a handler or the server would see it. */
static void text(const char *s, size_t n)
{
    /* exactly n bytes: the check must not read past them */
    char *exact = dd_malloc(n ? n : 1);
    if (!exact)
        return;
    memcpy(exact, s, n);
    const char *why = dd_http_text_problem(exact, n);
    dd_free(exact);
    bool has_nul = memchr(s, '\0', n) != NULL;
    json_t *j = json_stringn(s, n);

    if (has_nul)
        CHECK(why && strstr(why, "NUL"));
    else
        CHECK((why == NULL) == (j != NULL));
    json_decref(j);

    /* quoted in an error message and cut to its buffer, then scrubbed:
     * always a JSON string (a 4xx, never a 500 for the message) */
    char msg[512];
    snprintf(msg, sizeof(msg), "no route for GET %.*s", (int)n, s);
    dd_http_utf8_scrub(msg);
    j = json_string(msg);
    CHECK(j != NULL);
    json_decref(j);
    if (!has_nul && why == NULL && n < 400)
        CHECK(strncmp(msg + 17, s, n) == 0); /* valid text is left alone */
}

static void route(const char *path, size_t n)
{
    char scratch[DD_HTTP_MAX_PATH + 1];
    const char *params[DD_HTTP_MAX_PARAMS];
    size_t np;

    if (n >= DD_HTTP_MAX_PATH) /* answered 414 before routing */
        return;
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        if (!dd_http_match(patterns[i], path, scratch, n + 1, params, &np))
            continue;
        /* rebuild: the pattern with each {x} replaced by its parameter */
        char again[DD_HTTP_MAX_PATH + 64];
        size_t len = 0, k = 0;
        for (const char *p = patterns[i]; *p;) {
            if (*p == '{') {
                CHECK(k < np);
                size_t pl = strlen(params[k]);
                CHECK(pl > 0 && !strchr(params[k], '/'));
                CHECK(len + pl < sizeof(again));
                memcpy(again + len, params[k++], pl);
                len += pl;
                p = strchr(p, '}') + 1;
            } else {
                CHECK(len + 1 < sizeof(again));
                again[len++] = *p++;
            }
        }
        again[len] = '\0';
        CHECK(k == np && strcmp(again, path) == 0);
        if (np > 0 && strstr(patterns[i], "{id}")) {
            uint64_t id;
            (void)dd_parse_u64(params[0], &id);
        }
    }
}

static void query(char *q)
{
    for (char *arg = q; arg;) {
        char *amp = strchr(arg, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(arg, '=');
        if (eq)
            *eq = '\0';
        /* libmicrohttpd: '+' is a space in a query, then %XX */
        for (char *p = arg; *p; p++)
            *p = *p == '+' ? ' ' : *p;
        size_t kl = MHD_http_unescape(arg);
        text(arg, kl);
        if (eq) {
            char *v = eq + 1;
            for (char *p = v; *p; p++)
                *p = *p == '+' ? ' ' : *p;
            size_t vl = MHD_http_unescape(v);
            text(v, vl);
            uint64_t ms;
            if (!memchr(v, '\0', vl) && dd_api_time_arg(v, &ms) == 0)
                CHECK(ms <= (uint64_t)1e14);
        }
        arg = amp ? amp + 1 : NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *uri;
    bool nul;
    unsigned n_args;

    /* a request line holds no NUL; the server caps what it reads */
    if (size > 16384 || memchr(data, '\0', size))
        return 0;
    uri = dd_malloc(size + 1);
    if (!uri)
        return 0;
    memcpy(uri, data, size);
    uri[size] = '\0';

    dd_http_uri_scan(uri, &nul, &n_args);
    char *q = strchr(uri, '?');
    size_t path_len = q ? (size_t)(q - uri) : size;
    unsigned amps = 0;
    for (const char *p = q; p && *p; p++)
        amps += *p == '&';
    CHECK(n_args == (q ? amps + 1 : 0));
    CHECK(nul == (memmem(uri, path_len, "%00", 3) != NULL));

    if (q)
        *q = '\0';
    size_t n = MHD_http_unescape(uri);
    CHECK(n <= path_len);
    CHECK(nul == (memchr(uri, '\0', n) != NULL)); /* only %00 decodes to a NUL */
    text(uri, n);
    if (!nul && dd_http_text_problem(uri, n) == NULL)
        route(uri, n);
    if (q && n_args <= DD_HTTP_MAX_QUERY_ARGS)
        query(q + 1);
    dd_free(uri);
    return 0;
}
