/*
 * The daemon's HTTP server: libmicrohttpd for the protocol, jansson for
 * bodies, a small router with path parameters, JSON errors, body caps,
 * bearer-token auth for mutating routes, optional TLS, and per-route latency
 * histograms for /metrics.
 *
 * Routes are fixed at start. Handlers run on the server's worker threads and
 * must be thread-safe; they fill a dd_http_response and return, or hand the
 * request to another thread with dd_http_defer and return at once (a handler
 * that waits holds a worker, and every connection that worker serves waits
 * with it). HEAD is served by every GET route (headers, no body). Errors are
 * JSON:
 *   {"error": {"code": "not_found", "message": "no route for GET /v1/x"}}
 * with 400 (bad input, malformed JSON with its line and column; a path or
 * query value with an encoded NUL or not UTF-8; more than
 * DD_HTTP_MAX_QUERY_ARGS query arguments; two different Content-Length
 * headers, or Content-Length with Transfer-Encoding), 401 (missing or wrong
 * token), 403 (client certificate missing or not trusted, when a client CA
 * is set), 404, 405 (with Allow), 413 (body over the cap), 414 (path too
 * long), 500, 503 (a deferred request still open when the server stops).
 *
 * Everything decided by the request line and headers (route, method, token,
 * client certificate, Content-Length against the cap) is answered before any
 * body byte is read or buffered; such an early answer closes the connection.
 *
 * Connections: at most max_connections in all and per_ip_limit from one
 * address; one idle for idle_timeout_s (no byte in either direction) is
 * closed. Past a limit a new connection is accepted and closed at once.
 *
 * Listening beyond loopback requires a token or a client CA (start refuses
 * otherwise). Where both are set, a client certificate does not replace the
 * token: mutating routes need both. With a client CA and no token, the
 * verified certificate is what authenticates every request, mutating ones
 * included; handlers that act for a named party (a node's report) compare
 * that name with peer_identity.
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
    /* The verified client certificate's identity, for handlers that must
     * tie what a request claims to who sent it. NULL when the server has no
     * client CA (nothing was verified; a certificate offered anyway does
     * not count). Otherwise the certificate's subject CN, or, when it has
     * no CN, its first DNS subjectAltName; "" when it has neither, has two
     * CNs, or the name is longer than DD_HTTP_MAX_IDENTITY - 1 bytes or not
     * printable ASCII (such a certificate identifies nobody). */
    const char *peer_identity;
    void *conn;  /* opaque: for dd_http_query */
    void *state; /* opaque: for dd_http_defer */
};

/* A query argument ("?from=..."), decoded; NULL when absent. */
const char *dd_http_query(const struct dd_http_request *req, const char *name);
/* Every value of a repeated query argument ("?segment=a&segment=b"),
 * decoded, in order, into out[0..max); returns how many there are (which
 * may exceed max). Valid for the request's life. */
size_t dd_http_query_all(const struct dd_http_request *req, const char *name, const char **out,
                         size_t max);

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
    size_t max_body;  /* this route's body cap; 0 = the server's (dd_http_config) */
};

/*
 * Answering later. A handler calls dd_http_defer, hands the returned handle
 * to another thread and returns (what it put in resp is ignored); the
 * connection is suspended and holds no worker. That thread calls
 * dd_http_deferred_reply exactly once, which queues the answer and frees the
 * handle. NULL means the request cannot be deferred (out of memory, the
 * server is stopping, or it was deferred already): the handler answers
 * itself. dd_http_stop answers requests still deferred with 503; a handle
 * stays valid until its dd_http_deferred_reply, before or after the stop,
 * and the server's memory lives until the last one.
 */
struct dd_http_deferred;
struct dd_http_deferred *dd_http_defer(const struct dd_http_request *req);
/* Takes resp->body (sets it to NULL) and frees the handle. Returns 0, or
 * -ECONNABORTED when the request is gone (answered by dd_http_stop or
 * closed); the handle is freed either way. Any thread. */
int dd_http_deferred_reply(struct dd_http_deferred *h, struct dd_http_response *resp);

struct dd_http_config {
    const char *listen;   /* "ADDR:PORT" or "[ADDR]:PORT"; port 0 = ephemeral */
    const char *token;    /* bearer token; NULL = none (loopback only) */
    size_t max_body;      /* 0 = DD_HTTP_MAX_BODY */
    unsigned threads;     /* worker threads; 0 = DD_HTTP_THREADS, at most DD_HTTP_MAX_THREADS */
    const char *tls_cert; /* PEM file paths; cert+key enable HTTPS */
    const char *tls_key;
    /* PEM file: every request must come with a client certificate that chains
     * to this CA (else 403 before routing, and the connection is closed).
     * Needs tls_cert and tls_key. Its identity goes to handlers
     * (dd_http_request.peer_identity). */
    const char *tls_client_ca;
    /* Open connections in all; 0 = DD_HTTP_MAX_CONNECTIONS. Start raises the
     * RLIMIT_NOFILE soft limit toward the hard one to make room; where the
     * hard limit is lower the limit shrinks to fit (see
     * dedupd_http_connection_limit in the metrics). */
    unsigned max_connections;
    /* Open connections from one client address; 0 = DD_HTTP_PER_IP_CONNECTIONS.
     * Set it to max_connections to turn it off (many nodes behind one NAT). */
    unsigned per_ip_limit;
    /* Seconds a connection may stay silent (no byte either way) before it is
     * closed; 0 = DD_HTTP_IDLE_TIMEOUT_S. */
    unsigned idle_timeout_s;
};

/* *ret is set before the first request can reach a handler (handlers may
 * read the server through it); NULL or untouched when start fails. */
int dd_http_start(const struct dd_http_config *cfg, const struct dd_http_route *routes,
                  size_t n_routes, struct dd_http_server **ret, char *errbuf, size_t errlen);
/* The port actually bound (for an ephemeral port). */
uint16_t dd_http_port(const struct dd_http_server *srv);
/* Stops accepting, finishes in-flight requests, frees. Accepts NULL. */
void dd_http_stop(struct dd_http_server *srv);

/* Prometheus text lines for the HTTP layer: request counts by route and
 * status class, latency histograms per route, body rejections. */
void dd_http_metrics(struct dd_http_server *srv, FILE *out);

/* Loads a PEM certificate with its key (and, when ca_file is not NULL, a
 * PEM CA bundle) the way a TLS client will, so a bad file is an error at
 * start rather than at the first handshake: unreadable, not PEM, no
 * certificate in it, a key that is not the certificate's. errbuf names the
 * file. For the report pusher's mutual TLS. */
int dd_http_tls_check_client_files(const char *cert_file, const char *key_file, const char *ca_file,
                                   char *errbuf, size_t errlen);

/* Parses "ADDR:PORT" / "[ADDR]:PORT"; true when ADDR is loopback. */
int dd_http_parse_listen(const char *listen, char *addr, size_t addrlen, uint16_t *ret_port,
                         bool *ret_loopback);

#endif
