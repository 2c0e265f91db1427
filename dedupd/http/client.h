/*
 * THE HTTP client of the tree (libcurl): dedupctl's remote verbs, the node's
 * report pusher (POST BASE/v1/reports every interval), and the Kubernetes
 * watch (a streaming GET).
 *
 * A client is a long-lived object: one base URL, one optional bearer token,
 * TLS settings and timeouts, and one CURL handle kept between requests, so
 * consecutive requests to the same server reuse the connection (keep-alive,
 * and the TLS session). Make it once per thread and keep it.
 *
 * Threads: a client is used by one thread at a time (one client per
 * thread); different clients may run at once in different threads. libcurl's
 * global initialisation is done once, on the first dd_http_client_new, and
 * never undone.
 *
 * Results: a request returns the HTTP status (100..599) whenever the server
 * answered, 4xx and 5xx included: what a status means is the caller's
 * business. A negative value means no complete answer: -ETIMEDOUT (connect
 * or total timeout), -ECONNREFUSED (nothing listening), -ENOMEM,
 * DD_E_TOOBIG (the reply passed the buffer's cap), the error a streaming
 * callback returned, or DD_E_LIBRARY (anything else curl reports: TLS
 * failures, resolution, a reset connection). errbuf then reads
 * "URL: curl's message", e.g.
 *   "http://127.0.0.1:1/healthz: Failed to connect to 127.0.0.1 port 1 ..."
 * The token never appears in messages. Nothing is logged.
 */
#ifndef DD_HTTP_CLIENT_H
#define DD_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/dynbuf.h"

struct dd_http_client;

struct dd_http_client_config {
    /* "http://HOST:PORT" or "https://HOST:PORT[/prefix]"; a trailing '/' is
     * dropped. Required. Only http and https are followed; redirects are not. */
    const char *base_url;
    /* Sent as "Authorization: Bearer TOKEN" with every request; NULL for
     * none. Must be visible ASCII (dd_token_read's tokens are). */
    const char *token;
    /* PEM CA bundle to verify an https server; NULL: the system store. */
    const char *ca_file;
    /* PEM client certificate and key (mutual TLS): both or neither. */
    const char *cert_file;
    const char *key_file;
    /* Optional: a numeric IPv4 or IPv6 address (no brackets) to connect to
     * instead of resolving the URL's host (libcurl's CURLOPT_CONNECT_TO, the
     * URL's port kept): the URL keeps its name, so the Host header and TLS
     * verification still use it. The pusher's per-address targets. */
    const char *connect_addr;
    /* Milliseconds to connect; 0: 5000. */
    long connect_timeout_ms;
    /* Milliseconds for a whole request, body included; 0: 30000; -1: no
     * limit (a watch: it ends when the server or the callback ends it). */
    long timeout_ms;
    /* Optional: asked about once a second while a request waits, and with
     * each piece of data; true stops the request, which returns
     * DD_E_CANCELLED (a watch thread stopping at SIGTERM). Any thread may
     * make it true; it must be cheap and thread-safe. */
    bool (*cancel)(void *ud);
    void *cancel_ud;
};

/* Copies every string of cfg. Returns 0, -EINVAL (no base URL, not http or
 * https, a token with bytes that cannot go in a header, cert without key),
 * -ENOMEM or DD_E_LIBRARY, with the reason in errbuf. */
int dd_http_client_new(const struct dd_http_client_config *cfg, struct dd_http_client **ret,
                       char *errbuf, size_t errlen);
/* Closes the connection and frees. Accepts NULL; returns NULL. */
struct dd_http_client *dd_http_client_free(struct dd_http_client *c);

/*
 * One request to BASE + path (path starts with '/', may carry a query; it is
 * used as given: escape names with curl_easy_escape or similar). method is
 * "GET", "POST", "PUT", "DELETE", ...; json_body, when not NULL, is sent with
 * "Content-Type: application/json" (a POST without one sends an empty body).
 * The reply body goes into *reply (reset first, its cap is the limit; the
 * caller inits and frees it). Returns the HTTP status or a negative error
 * (see above).
 */
int dd_http_client_call(struct dd_http_client *c, const char *method, const char *path,
                        const char *json_body, struct dd_dynbuf *reply, char *errbuf,
                        size_t errlen);

/* As dd_http_client_call, with the body's Content-Type named (NULL:
 * application/json): a Kubernetes PATCH says
 * "application/merge-patch+json". content_type must be a plain header
 * value (no CR or LF), at most 100 characters. */
int dd_http_client_call_type(struct dd_http_client *c, const char *method, const char *path,
                             const char *content_type, const char *body, struct dd_dynbuf *reply,
                             char *errbuf, size_t errlen);

/* Streaming: called with each piece of the reply body as it arrives (pieces
 * do not respect lines or JSON documents). Return 0 to go on, or a negative
 * error to stop: the request then returns that error. */
typedef int (*dd_http_client_data_fn)(void *ud, const char *data, size_t len);

/* As dd_http_client_call, but the body of a 2xx reply goes to on_data
 * (nothing is kept); another status's body is dropped, the status says what
 * happened. For watches, use a client whose timeout_ms is -1. */
int dd_http_client_stream(struct dd_http_client *c, const char *method, const char *path,
                          const char *json_body, dd_http_client_data_fn on_data, void *ud,
                          char *errbuf, size_t errlen);

/* Connections opened so far (1 after many requests to one server that keeps
 * them alive): for tests and the pusher's metrics. */
unsigned long dd_http_client_connections(const struct dd_http_client *c);

/* s percent-encoded for a query value (every byte but A-Z a-z 0-9 - . _ ~);
 * the caller frees with dd_free. NULL on ENOMEM. */
char *dd_http_client_escape(const char *s);

/* The host (IPv6 without brackets) and port (the scheme's default when the
 * URL names none) of an http or https URL, parsed by libcurl. 0, -EINVAL
 * (not such a URL, errbuf says why) or -ENAMETOOLONG. */
int dd_http_url_host_port(const char *url, char *host, size_t hlen, char *port, size_t plen,
                          char *errbuf, size_t errlen);

/* The base URL as stored (no trailing '/'), for messages. */
const char *dd_http_client_base(const struct dd_http_client *c);

#endif
