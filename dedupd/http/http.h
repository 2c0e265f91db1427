/*
 * The daemon's HTTP server: libmicrohttpd for the protocol, jansson for
 * bodies, a small router with path parameters, JSON errors, body caps,
 * bearer-token auth for mutating routes, optional TLS, and per-route latency
 * histograms for /metrics.
 *
 * Routes are fixed at start. Handlers run on the server's threads and must
 * be thread-safe; they fill a dd_http_response and return. Errors are JSON:
 *   {"error": {"code": "not_found", "message": "no route for GET /v1/x"}}
 * with 400 (bad input, malformed JSON with its line and column), 401
 * (missing or wrong token), 403 (client certificate missing or not trusted,
 * when a client CA is set), 404, 405 (with Allow), 413 (body over the cap),
 * 414 (path too long), 500.
 *
 * Listening beyond loopback requires a token (start refuses otherwise). A
 * client certificate does not replace the token: mutating routes need both.
 */
#ifndef DD_HTTP_HTTP_H
#define DD_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

struct dd_http_server;

struct dd_http_request {
    const char *method;
    const char *path; /* decoded path, no query */
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    /* path parameters, in pattern order ("{name}" -> params[0]) */
    const char *params[4];
    size_t n_params;
    void *conn; /* opaque: for dd_http_query */
};

/* A query argument ("?from=..."), decoded; NULL when absent. */
const char *dd_http_query(const struct dd_http_request *req, const char *name);

struct dd_http_response {
    int status;
    char *body; /* owned (dd_malloc); NULL for an empty body */
    size_t len;
    const char *content_type; /* static string; default application/json */
};

/* Sets status and a JSON body (steals the reference to doc). Returns 0. */
int dd_http_reply_json(struct dd_http_response *resp, int status, json_t *doc);
/* Sets a JSON error body {"error": {"code": code, "message": ...}}. Returns 0. */
int dd_http_reply_error(struct dd_http_response *resp, int status, const char *code,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sets a text body (copied). */
int dd_http_reply_text(struct dd_http_response *resp, int status, const char *content_type,
                       const char *text, size_t len);
/* Parses the request body as a JSON object; on failure replies 400 naming
 * the line and column and returns NULL. */
json_t *dd_http_body_json(const struct dd_http_request *req, struct dd_http_response *resp);

typedef int (*dd_http_handler)(void *ctx, const struct dd_http_request *req,
                               struct dd_http_response *resp);

struct dd_http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/volumes/{name}/history": {x} matches one segment */
    dd_http_handler handler;
    void *ctx;
    bool mutating;    /* needs the bearer token when one is configured */
    const char *name; /* label in metrics; the pattern when NULL */
};

struct dd_http_config {
    const char *listen;   /* "ADDR:PORT" or "[ADDR]:PORT"; port 0 = ephemeral */
    const char *token;    /* bearer token; NULL = none (loopback only) */
    size_t max_body;      /* 0 = DD_HTTP_MAX_BODY */
    unsigned threads;     /* 0 = 2 */
    const char *tls_cert; /* PEM file paths; cert+key enable HTTPS */
    const char *tls_key;
    /* PEM file: every request must come with a client certificate that chains
     * to this CA (else 403 before routing, and the connection is closed).
     * Needs tls_cert and tls_key. */
    const char *tls_client_ca;
};

int dd_http_start(const struct dd_http_config *cfg, const struct dd_http_route *routes,
                  size_t n_routes, struct dd_http_server **ret, char *errbuf, size_t errlen);
/* The port actually bound (for an ephemeral port). */
uint16_t dd_http_port(const struct dd_http_server *srv);
/* Stops accepting, finishes in-flight requests, frees. Accepts NULL. */
void dd_http_stop(struct dd_http_server *srv);

/* Prometheus text lines for the HTTP layer: request counts by route and
 * status class, latency histograms per route, body rejections. */
void dd_http_metrics(struct dd_http_server *srv, FILE *out);

/* Parses "ADDR:PORT" / "[ADDR]:PORT"; true when ADDR is loopback. */
int dd_http_parse_listen(const char *listen, char *addr, size_t addrlen, uint16_t *ret_port,
                         bool *ret_loopback);

#endif
